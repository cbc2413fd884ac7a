//! REGISTER processing (RFC 3261 §10.3 steps 2 and 5–8), sans-IO. The
//! caller has already decided that the request is for us (step 1), and
//! authenticated it (steps 3–4); `register` does the rest and says what
//! to answer. A change is applied to the table and its journal record is
//! appended to `journal`; the caller sends the answer only once that
//! record is written.
//!
//! Choices, where the RFC leaves room or where this registrar departs
//! from it:
//! - **Retransmissions.** A REGISTER with the Call-ID of a binding and the
//!   *same* CSeq is applied again (§10.3 step 7 asks for a higher CSeq):
//!   the registrar answers without a transaction, so a retransmitted
//!   REGISTER must get its 200 again, not an error. A *lower* CSeq is
//!   refused with 400 "Invalid CSeq Number" and changes nothing.
//! - **Contact comparison** is URI equivalence (§19.1.4); a Contact with
//!   both `+sip.instance` and `reg-id` (RFC 5626) replaces the binding
//!   with the same pair whatever its URI.
//! - **Too many contacts** for one AOR (`max_contacts`): 403; the table
//!   full (`max_bindings`): 503 with Retry-After.
//! - **Path** (RFC 3327) values are stored and echoed in the 200 when
//!   the UA said `Supported: path`.

use std::net::SocketAddr;

use super::journal;
use super::store::{Binding, UpdateError};
use super::Registrar;
use crate::config::Transport;
use crate::proxy::branch::StableHash;
use crate::sip::addr::Contact;
use crate::sip::uri::Uri;
use crate::sip::Message;

/// Extension tags this registrar understands (Require).
const SUPPORTED: &[&[u8]] = &[b"path", b"outbound", b"gruu"];

/// What to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub reason: &'static str,
    /// Extra header fields, in order.
    pub headers: Vec<(&'static str, Vec<u8>)>,
    /// The table changed (a journal record was appended).
    pub changed: bool,
}

impl Reply {
    fn new(code: u16, reason: &'static str) -> Reply {
        Reply {
            code,
            reason,
            headers: Vec::new(),
            changed: false,
        }
    }
}

/// Who sent the REGISTER.
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub addr: SocketAddr,
    pub transport: Transport,
    /// The listener it arrived on.
    pub local: SocketAddr,
    /// Over a stream, the connection (the runtime's id; 0: none).
    pub conn: u64,
    /// `[registrar] nat`, and whether the top Via's sent-by is not the
    /// source address (the UA does not know the address we see: a NAT
    /// is between us, RFC 3581).
    pub nat: crate::config::Nat,
    pub via_moved: bool,
}

/// The address of a `received` Contact parameter: a quoted SIP URI with
/// an IP host (`"sip:192.0.2.7:5062"`, `;transport=tcp` allowed).
fn received_addr(v: &[u8]) -> Option<(SocketAddr, Transport)> {
    let v = v
        .strip_prefix(b"\"")
        .and_then(|v| v.strip_suffix(b"\""))
        .unwrap_or(v);
    let u = Uri::parse(v).ok()?;
    let ip = u.host.ip()?;
    let transport = match u.transport() {
        Some(t) if t.eq_ignore_ascii_case(b"tcp") => Transport::Tcp,
        None => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case(b"udp") => Transport::Udp,
        Some(_) => return None,
    };
    Some((SocketAddr::new(ip, u.port_or_default()), transport))
}

/// Remove the binding of `aor` whose Contact is `contact` (a NATed UA
/// that stopped answering keep-alives), journaling the change. False if
/// it was not there.
pub fn remove_binding(reg: &Registrar, aor: &[u8], contact: &[u8], journal: &mut Vec<u8>) -> bool {
    let r = reg.store.update(aor, |old| {
        if !old.iter().any(|b| &*b.contact == contact) {
            return Err(());
        }
        Ok(old
            .iter()
            .filter(|b| &*b.contact != contact)
            .cloned()
            .collect())
    });
    match r {
        Ok(u) => {
            let bindings = u.record.as_ref().map_or(&[][..], |r| &r.bindings);
            journal::encode(journal, u.seq, aor, bindings);
            true
        }
        Err(_) => false,
    }
}

/// A private or shared address, never reachable from outside its NAT:
/// RFC 1918, RFC 6598 (carrier-grade NAT), link-local, IPv6 unique local.
pub fn is_private(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(a) => {
            let o = a.octets();
            a.is_private() || a.is_link_local() || (o[0] == 100 && (o[1] & 0xc0) == 64)
        }
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// A binding from `src` with this Contact is behind a NAT (`Nat::Auto`,
/// after Kamailio's `nat_uac_test`): the Via moved, the Contact is a
/// private or shared address (RFC 1918, RFC 6598) that is not the
/// source, or it asks for an outbound flow (`;ob`, RFC 5626 §5).
fn nated(src: &Source, contact: &[u8]) -> bool {
    use crate::config::Nat;
    match src.nat {
        Nat::Off => false,
        Nat::Always => true,
        Nat::Auto if src.via_moved => true,
        Nat::Auto => Uri::parse(contact).is_ok_and(|u| {
            let private_elsewhere = u
                .host
                .ip()
                .is_some_and(|ip| is_private(ip) && ip != src.addr.ip());
            private_elsewhere || u.param("ob").is_some()
        }),
    }
}

/// Process a REGISTER for `aor` at `now` (unix seconds).
pub fn register(
    reg: &Registrar,
    msg: &Message,
    aor: &[u8],
    src: Source,
    now: u64,
    journal: &mut Vec<u8>,
) -> Reply {
    // Step 2: extensions the UA requires.
    let mut unsupported: Vec<u8> = Vec::new();
    for tag in msg.require() {
        let Ok(tag) = tag else {
            return Reply::new(400, "Bad Require");
        };
        if !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(tag)) {
            if !unsupported.is_empty() {
                unsupported.extend_from_slice(b", ");
            }
            unsupported.extend_from_slice(tag);
        }
    }
    if !unsupported.is_empty() {
        let mut r = Reply::new(420, "Bad Extension");
        r.headers.push(("Unsupported", unsupported));
        return r;
    }
    let header_expires = match msg.expires() {
        Ok(e) => e,
        Err(_) => return Reply::new(400, "Bad Expires"),
    };
    let cseq = match msg.cseq() {
        Some(c) => c.seq,
        None => return Reply::new(400, "Bad CSeq"),
    };
    let call_id = {
        let mut h = StableHash::default();
        h.write(msg.call_id());
        h.finish()
    };
    let path_ok = msg
        .supported()
        .flatten()
        .any(|t| t.eq_ignore_ascii_case(b"path"));
    let mut path: Vec<Box<[u8]>> = Vec::new();
    for p in msg.paths() {
        match p {
            Ok(a) if a.uri().is_ok() => {
                let mut v = Vec::with_capacity(a.uri.len() + 2);
                v.push(b'<');
                v.extend_from_slice(a.uri);
                v.push(b'>');
                path.push(v.into_boxed_slice());
            }
            _ => return Reply::new(400, "Bad Path"),
        }
        if path.len() > 8 {
            return Reply::new(400, "Too Many Path Values");
        }
    }

    // Steps 5–6: the contacts and their expiry.
    let mut wanted: Vec<Wanted<'_>> = Vec::new();
    let mut star = false;
    for c in msg.contacts() {
        match c {
            Ok(Contact::Star) => star = true,
            Ok(Contact::Addr(a)) => {
                let Ok(uri) = a.uri() else {
                    return Reply::new(400, "Bad Contact URI");
                };
                let expires = match a.expires() {
                    Some(Ok(e)) => e,
                    Some(Err(_)) => return Reply::new(400, "Bad Contact Expires"),
                    None => header_expires.unwrap_or(reg.cfg.default_expires),
                };
                let q = match a.q() {
                    Some(Ok(q)) => q,
                    Some(Err(_)) => return Reply::new(400, "Bad Contact q-value"),
                    None => 1000,
                };
                let instance = a.params.get("+sip.instance").flatten();
                // A proxy in front that saw the NAT (Kamailio's
                // `add_rcv_param`): `;received="sip:IP:PORT"`.
                let received = match a.params.get("received") {
                    None => None,
                    Some(v) => match v.and_then(received_addr) {
                        Some(r) => Some(r),
                        None => return Reply::new(400, "Bad Contact received"),
                    },
                };
                let reg_id = match a.params.get("reg-id") {
                    None => 0,
                    Some(v) => match v.and_then(crate::sip::lex::parse_u32) {
                        Some(n) if n > 0 => n,
                        _ => return Reply::new(400, "Bad reg-id"),
                    },
                };
                wanted.push(Wanted {
                    text: a.uri,
                    uri,
                    expires,
                    q,
                    instance,
                    reg_id,
                    received,
                });
            }
            Err(_) => return Reply::new(400, "Bad Contact"),
        }
        if wanted.len() > reg.cfg.max_contacts {
            return Reply::new(403, "Too Many Contacts");
        }
    }
    if star && (!wanted.is_empty() || header_expires != Some(0)) {
        return Reply::new(400, "Invalid Wildcard Contact");
    }
    for w in &mut wanted {
        if w.expires != 0 && w.expires < reg.cfg.min_expires {
            let mut r = Reply::new(423, "Interval Too Brief");
            r.headers
                .push(("Min-Expires", reg.cfg.min_expires.to_string().into_bytes()));
            return r;
        }
        w.expires = w.expires.min(reg.cfg.max_expires);
    }

    // Step 7: apply, all or nothing.
    let update = if wanted.is_empty() && !star {
        None
    } else {
        let max = reg.cfg.max_contacts;
        let r = reg.store.update(aor, |old| {
            apply(old, &wanted, star, call_id, cseq, &path, src, now, max)
        });
        match r {
            Ok(u) => Some(u),
            Err(UpdateError::Refused(reply)) => return reply,
            Err(UpdateError::Full) => {
                let mut r = Reply::new(503, "Registrar Full");
                r.headers.push(("Retry-After", b"60".to_vec()));
                return r;
            }
        }
    };

    // Step 8: 200 with every binding now current.
    let mut reply = Reply::new(200, "OK");
    let record = match &update {
        Some(u) => {
            let bindings = u.record.as_ref().map_or(&[][..], |r| &r.bindings);
            journal::encode(journal, u.seq, aor, bindings);
            reply.changed = true;
            u.record.clone()
        }
        None => reg.store.get(aor),
    };
    if let Some(r) = record {
        for b in r.live(now) {
            reply.headers.push(("Contact", contact_value(b, now)));
        }
    }
    if path_ok && !path.is_empty() {
        reply.headers.push(("Path", path.join(&b", "[..])));
    }
    reply.headers.push(("Date", http_date(now).into_bytes()));
    reply
}

/// One Contact of the request.
struct Wanted<'m> {
    text: &'m [u8],
    uri: Uri<'m>,
    expires: u32,
    q: u16,
    instance: Option<&'m [u8]>,
    reg_id: u32,
    /// Where a proxy in front saw it (`received` Contact parameter).
    received: Option<(SocketAddr, Transport)>,
}

impl Wanted<'_> {
    fn same_as(&self, b: &Binding) -> bool {
        if let (Some(i), Some(bi)) = (self.instance, &b.instance) {
            if self.reg_id != 0 && self.reg_id == b.reg_id {
                return i == &**bi;
            }
        }
        // Byte-equal URIs are equivalent: the common refresh needs no parse.
        if *b.contact == *self.text {
            return true;
        }
        match Uri::parse(&b.contact) {
            Ok(u) => u.equivalent(&self.uri),
            Err(_) => *b.contact == *self.text,
        }
    }
}

/// The AOR's bindings after the request (§10.3 steps 6–7), or the answer
/// that refuses it.
#[allow(clippy::too_many_arguments)]
fn apply(
    old: &[Binding],
    wanted: &[Wanted<'_>],
    star: bool,
    call_id: u64,
    cseq: u32,
    path: &[Box<[u8]>],
    src: Source,
    now: u64,
    max: usize,
) -> Result<Vec<Binding>, Reply> {
    let out_of_order = |b: &Binding| b.call_id == call_id && cseq < b.cseq;
    let mut next: Vec<Binding> = Vec::with_capacity(old.len() + wanted.len());
    if star {
        // Remove every binding, except those this request is older than.
        for b in old.iter().filter(|b| b.live(now)) {
            if out_of_order(b) {
                return Err(Reply::new(400, "Invalid CSeq Number"));
            }
        }
        return Ok(next);
    }
    next.extend(old.iter().filter(|b| b.live(now)).cloned());
    for w in wanted {
        let at = next.iter().position(|b| w.same_as(b));
        if let Some(i) = at {
            if out_of_order(&next[i]) {
                return Err(Reply::new(400, "Invalid CSeq Number"));
            }
        }
        if w.expires == 0 {
            if let Some(i) = at {
                next.remove(i);
            }
            continue;
        }
        let b = Binding {
            contact: w.text.into(),
            expires: now + u64::from(w.expires),
            q: w.q,
            cseq,
            call_id,
            path: path.to_vec().into_boxed_slice(),
            instance: w.instance.map(Into::into),
            reg_id: w.reg_id,
            source: w.received.map_or(src.addr, |r| r.0),
            transport: w.received.map_or(src.transport, |r| r.1),
            local: Some(src.local),
            conn: if w.received.is_some() { 0 } else { src.conn },
            // With `received`, the address a proxy in front saw is where
            // it is reached.
            nat: w.received.is_some() || (src.transport == Transport::Udp && nated(&src, w.text)),
        };
        match at {
            Some(i) => next[i] = b,
            None => next.push(b),
        }
    }
    if next.len() > max {
        return Err(Reply::new(403, "Too Many Contacts"));
    }
    Ok(next)
}

/// `<uri>;expires=N[;q=…][;+sip.instance=…;reg-id=…]` for a 200.
fn contact_value(b: &Binding, now: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(b.contact.len() + 48);
    v.push(b'<');
    v.extend_from_slice(&b.contact);
    v.extend_from_slice(b">;expires=");
    v.extend_from_slice(b.expires.saturating_sub(now).to_string().as_bytes());
    if b.q != 1000 {
        v.extend_from_slice(format!(";q={}.{:03}", b.q / 1000, b.q % 1000).as_bytes());
    }
    if let Some(i) = &b.instance {
        v.extend_from_slice(b";+sip.instance=");
        v.extend_from_slice(i);
        if b.reg_id != 0 {
            v.extend_from_slice(format!(";reg-id={}", b.reg_id).as_bytes());
        }
    }
    v
}

/// RFC 1123 date (RFC 3261 §20.17), e.g. `Sat, 13 Nov 2010 23:29:00 GMT`.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests;
