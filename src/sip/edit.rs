//! Forwarding as an edit list: the received bytes plus a few edits, applied
//! in one pass into a reused buffer (Kamailio calls these "lumps").
//!
//! Headers that are not edited come out byte-exact, folding and odd
//! whitespace included; only the edited spans are rewritten. Edits refer to
//! the message they were made for: always pass the same `Message` to the
//! methods and to [`Edits::apply`].

use std::io::Write;

use super::error::Error;
use super::header::HeaderName;
use super::lex::CommaSplit;
use super::message::{Message, Span};

/// Write the Via value `raw` (parsed as `via`) stamped with where its
/// message came from (RFC 3261 §18.2.1, RFC 3581 §4): `received=IP` when
/// `source` differs from the sent-by host (or always, with `rport`), and
/// `rport=PORT` when the sender asked for it. Returns false, writing
/// nothing, when the value needs no stamp.
pub(crate) fn write_stamped_via(
    via: &super::via::Via<'_>,
    raw: &[u8],
    source: std::net::SocketAddr,
    out: &mut Vec<u8>,
) -> bool {
    let ip = source.ip();
    let rport = via.rport().is_some();
    let same_host = std::str::from_utf8(via.host)
        .ok()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        == Some(ip);
    if same_host && !rport {
        return false;
    }
    // Everything before the parameters, as received.
    let params_at = raw.len() - via.params.as_bytes().len();
    out.extend_from_slice(&raw[..params_at]);
    for p in via.params.iter() {
        if p.name.eq_ignore_ascii_case(b"received") {
            continue;
        }
        out.push(b';');
        out.extend_from_slice(p.name);
        if p.name.eq_ignore_ascii_case(b"rport") {
            let _ = write!(out, "={}", source.port());
        } else if let Some(v) = p.value {
            out.push(b'=');
            out.extend_from_slice(v);
        }
    }
    // RFC 3581 §4: with rport, received is added even if it matches.
    let _ = write!(out, ";received={ip}");
    true
}

/// A set of edits against one message. Reuse it across messages with
/// [`Edits::clear`] so that forwarding allocates nothing in steady state.
#[derive(Debug, Default, Clone)]
pub struct Edits {
    lumps: Vec<Lump>,
    /// Bytes of every insertion, back to back.
    arena: Vec<u8>,
}

/// Replace `buf[at..del_end]` with `arena[ins]`.
#[derive(Debug, Clone, Copy)]
struct Lump {
    at: u32,
    del_end: u32,
    ins: Span,
    /// Order of creation: among edits at one position, earlier goes first.
    seq: u32,
}

impl Edits {
    pub fn new() -> Edits {
        Edits::default()
    }

    /// Forget every edit, keeping the allocations.
    pub fn clear(&mut self) {
        self.lumps.clear();
        self.arena.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.lumps.is_empty()
    }

    /// Insert `Via: value` above every existing Via (RFC 3261 §16.6 step 8).
    pub fn insert_via(&mut self, msg: &Message, value: &[u8]) {
        let at = first_field(msg, HeaderName::Via)
            .map_or(msg.layout().headers_start, |f| f.line.start as usize);
        self.insert_field(at, "Via", value);
    }

    /// Remove the topmost Via value (a proxy forwarding a response, §16.7
    /// step 3). If it shares its field with others, only it goes.
    pub fn remove_top_via(&mut self, msg: &Message) -> Result<(), Error> {
        self.remove_first_value(msg, HeaderName::Via)
    }

    /// Remove the first Route value (loose routing, RFC 3261 §16.4).
    pub fn remove_first_route(&mut self, msg: &Message) -> Result<(), Error> {
        self.remove_first_value(msg, HeaderName::Route)
    }

    /// Set Max-Forwards, adding the field if it is absent (§16.6 step 3).
    pub fn set_max_forwards(&mut self, msg: &Message, n: u8) {
        let digits = itoa_u8(n);
        match first_field(msg, HeaderName::MaxForwards) {
            Some(f) => self.replace(f.value, digits.as_bytes()),
            None => self.insert_field(msg.layout().headers_end, "Max-Forwards", digits.as_bytes()),
        }
    }

    /// Insert `Record-Route: value` above the existing ones (§16.6 step 4).
    /// `value` is the name-addr, e.g. `<sip:proxy.example.com;lr>`.
    pub fn insert_record_route(&mut self, msg: &Message, value: &[u8]) {
        let at = first_field(msg, HeaderName::RecordRoute)
            .map_or(msg.layout().headers_end, |f| f.line.start as usize);
        self.insert_field(at, "Record-Route", value);
    }

    /// Insert `Route: value` above the existing ones.
    pub fn insert_route(&mut self, msg: &Message, value: &[u8]) {
        let at = first_field(msg, HeaderName::Route)
            .map_or(msg.layout().headers_end, |f| f.line.start as usize);
        self.insert_field(at, "Route", value);
    }

    /// Add a header field after the existing ones.
    pub fn add_header(&mut self, msg: &Message, name: &str, value: &[u8]) {
        self.insert_field(msg.layout().headers_end, name, value);
    }

    /// Remove every field with this name.
    pub fn remove_headers(&mut self, msg: &Message, name: HeaderName) {
        for i in 0..msg.fields().len() {
            if msg.fields()[i].name == name {
                self.remove_field(msg, i);
            }
        }
    }

    /// Remove the `index`-th header field (as in [`Message::fields`]).
    pub fn remove_field(&mut self, msg: &Message, index: usize) {
        if let Some(f) = msg.fields().get(index) {
            self.replace(f.line, b"");
        }
    }

    /// Add `;param` to the URI of the first Contact value, writing an
    /// addr-spec as a name-addr so that the parameter belongs to the URI,
    /// not to the header (RFC 3261 §20.10). False without a Contact, for
    /// `*`, or for a value that does not look like one.
    pub fn add_contact_uri_param(&mut self, msg: &Message, param: &[u8]) -> bool {
        let Some(f) = first_field(msg, HeaderName::Contact) else {
            return false;
        };
        let v = msg.slice(f.value);
        let start = f.value.start;
        let at = |i: usize| Span {
            start: start + i as u32,
            end: start + i as u32,
        };
        let mut with = Vec::with_capacity(param.len() + 2);
        with.push(b';');
        with.extend_from_slice(param);
        if let Some(lt) = unquoted(v, b'<') {
            let Some(gt) = v[lt..].iter().position(|&c| c == b'>') else {
                return false;
            };
            self.replace(at(lt + gt), &with);
            return true;
        }
        if v.first() == Some(&b'*') || v.is_empty() {
            return false;
        }
        let end = v
            .iter()
            .position(|&c| matches!(c, b';' | b',' | b' ' | b'\t'))
            .unwrap_or(v.len());
        with.push(b'>');
        self.replace(at(0), b"<");
        self.replace(at(end), &with);
        true
    }

    /// Replace the URI of the first Contact value with `uri`, writing an
    /// addr-spec as a name-addr (its parameters stay the header's). False
    /// without a Contact, for `*`, or for a value that does not look like
    /// one.
    pub fn set_contact_uri(&mut self, msg: &Message, uri: &[u8]) -> bool {
        let Some(f) = first_field(msg, HeaderName::Contact) else {
            return false;
        };
        let v = msg.slice(f.value);
        let start = f.value.start as usize;
        if let Some(lt) = unquoted(v, b'<') {
            let Some(gt) = v[lt..].iter().position(|&c| c == b'>') else {
                return false;
            };
            self.replace(Span::new(start + lt + 1, start + lt + gt), uri);
            return true;
        }
        let v_trim = v.iter().take_while(|c| matches!(c, b' ' | b'\t')).count();
        if v.get(v_trim).is_none_or(|&c| c == b'*') {
            return false;
        }
        let end = v
            .iter()
            .skip(v_trim)
            .position(|&c| matches!(c, b';' | b',' | b' ' | b'\t'))
            .map_or(v.len(), |p| p + v_trim);
        let mut with = Vec::with_capacity(uri.len() + 2);
        with.push(b'<');
        with.extend_from_slice(uri);
        with.push(b'>');
        self.replace(Span::new(start + v_trim, start + end), &with);
        true
    }

    /// Replace the Request-URI (§16.6 step 2, §16.5 retargeting).
    pub fn set_request_uri(&mut self, msg: &Message, uri: &[u8]) {
        if let Some(span) = msg.request_uri_span() {
            self.replace(span, uri);
        }
    }

    /// Replace a response's Status-Line (a proxy turning a 503 into a 500,
    /// RFC 3261 §16.7 step 6). Does nothing to a request.
    pub fn set_status_line(&mut self, msg: &Message, code: u16, reason: &[u8]) {
        if msg.is_request() {
            return;
        }
        let l = msg.layout();
        let mut line = format!("SIP/2.0 {code} ").into_bytes();
        line.extend(
            reason
                .iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        line.extend_from_slice(b"\r\n");
        self.replace(
            Span {
                start: l.start as u32,
                end: l.headers_start as u32,
            },
            &line,
        );
    }

    /// Stamp the top Via with where the request really came from (RFC 3261
    /// §18.2.1, RFC 3581 §4): `received=IP` when `source` differs from the
    /// sent-by host (or always, with `rport`), and `rport=PORT` when the
    /// sender asked for it. The top Via value is rewritten; other Via
    /// values and fields stay byte-exact. Returns false if there is no
    /// parsable top Via.
    pub fn stamp_top_via(&mut self, msg: &Message, source: std::net::SocketAddr) -> bool {
        let Ok(via) = msg.top_via() else { return false };
        let s = self.arena.len();
        if write_stamped_via(&via, msg.slice(via.span), source, &mut self.arena) {
            self.push(via.span.start as usize, via.span.end as usize, s);
        }
        true
    }

    /// Add `Content-Length` when the message has none, as a stream
    /// transport requires (RFC 3261 §18.3, §20.14): a UDP message may omit
    /// it, and must not lose its framing when forwarded over TCP.
    pub fn ensure_content_length(&mut self, msg: &Message) {
        if msg.content_length().is_none() {
            let len = msg.body().len().to_string();
            self.add_header(msg, "Content-Length", len.as_bytes());
        }
    }

    /// Write the edited message into `out` (cleared first).
    ///
    /// Edits are applied in position order. An edit anchored inside text
    /// that another edit deletes is dropped (removing a field wins over
    /// changing its value), so conflicting edits never panic, duplicate
    /// bytes or glue text onto a neighbouring field.
    pub fn apply(&mut self, msg: &Message, out: &mut Vec<u8>) {
        out.clear();
        let buf = msg.buffer();
        let start = msg.layout().start;
        let end = msg.body_span().end as usize;
        out.reserve(end - start + self.arena.len());
        self.lumps.sort_unstable_by_key(|l| (l.at, l.seq));
        let mut cursor = start;
        // Start of the deletion that `cursor` is the end of.
        let mut deleted_from = start;
        for l in &self.lumps {
            let at = l.at as usize;
            if at > deleted_from && at < cursor {
                // Anchored inside text an earlier edit deleted: drop it.
                continue;
            }
            if at > cursor {
                out.extend_from_slice(&buf[cursor..at]);
                cursor = at;
            }
            out.extend_from_slice(&self.arena[l.ins.range()]);
            if l.del_end as usize > cursor {
                deleted_from = at;
                cursor = l.del_end as usize;
            }
        }
        out.extend_from_slice(&buf[cursor.min(end)..end]);
    }

    fn remove_first_value(&mut self, msg: &Message, name: HeaderName) -> Result<(), Error> {
        if self.remove_list_value(msg, name, 0)? {
            Ok(())
        } else {
            Err(Error::MissingHeader(name))
        }
    }

    /// Remove the `k`-th value (0 = topmost) of the list header `name`,
    /// across fields as in [`Message::list_values`]. The only value of a
    /// field takes the whole field with it; otherwise the value and one
    /// adjacent comma go. `Ok(false)` if there is no such value.
    pub fn remove_list_value(
        &mut self,
        msg: &Message,
        name: HeaderName,
        k: usize,
    ) -> Result<bool, Error> {
        // Find the field holding value k, and k's neighbours in it.
        let mut seen = 0;
        for f in msg.fields().iter().filter(|f| f.name == name) {
            let base = f.value.start as usize;
            let mut parts = CommaSplit::new(msg.slice(f.value));
            let mut prev: Option<std::ops::Range<usize>> = None;
            while let Some(part) = parts.next() {
                let part = part.map_err(|()| Error::BadHeader(name))?;
                if seen < k {
                    seen += 1;
                    prev = Some(part);
                    continue;
                }
                let next = parts
                    .next()
                    .transpose()
                    .map_err(|()| Error::BadHeader(name))?;
                let span = match (prev, next) {
                    // The only value: the whole field goes.
                    (None, None) => f.line,
                    // Up to where the next value starts.
                    (_, Some(next)) => Span::new(base + part.start, base + next.start),
                    // The last of several: from the end of the previous one.
                    (Some(prev), None) => Span::new(base + prev.end, base + part.end),
                };
                self.replace(span, b"");
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Keep only the values of list header `name` for which `keep(k)` is
    /// true (k counts values across fields, 0 = topmost, as in
    /// [`Message::list_values`]). A field that keeps all its values is left
    /// byte-exact; one that keeps none is removed; one that keeps some is
    /// rewritten as its kept values joined by `, `. Use this rather than
    /// several `remove_list_value` calls on the same field, whose deletions
    /// would overlap.
    pub fn retain_list_values(
        &mut self,
        msg: &Message,
        name: HeaderName,
        mut keep: impl FnMut(usize) -> bool,
    ) -> Result<(), Error> {
        let mut k = 0;
        for f in msg.fields().iter().filter(|f| f.name == name) {
            let value = msg.slice(f.value);
            let (mut total, mut kept) = (0, 0);
            for part in CommaSplit::new(value) {
                part.map_err(|()| Error::BadHeader(name))?;
                kept += usize::from(keep(k + total));
                total += 1;
            }
            match kept {
                _ if kept == total => {}
                0 => self.replace(f.line, b""),
                _ => {
                    let s = self.arena.len();
                    let mut first = true;
                    for (i, part) in CommaSplit::new(value).flatten().enumerate() {
                        if keep(k + i) {
                            if !first {
                                self.arena.extend_from_slice(b", ");
                            }
                            first = false;
                            self.arena.extend_from_slice(&value[part]);
                        }
                    }
                    self.push(f.value.start as usize, f.value.end as usize, s);
                }
            }
            k += total;
        }
        Ok(())
    }

    fn insert_field(&mut self, at: usize, name: &str, value: &[u8]) {
        let s = self.arena.len();
        // Writing to a Vec cannot fail.
        let _ = write!(self.arena, "{name}: ");
        self.arena.extend_from_slice(value);
        self.arena.extend_from_slice(b"\r\n");
        self.push(at, at, s);
    }

    fn replace(&mut self, span: Span, with: &[u8]) {
        let s = self.arena.len();
        self.arena.extend_from_slice(with);
        self.push(span.start as usize, span.end as usize, s);
    }

    fn push(&mut self, at: usize, del_end: usize, ins_start: usize) {
        let seq = self.lumps.len() as u32;
        self.lumps.push(Lump {
            at: at as u32,
            del_end: del_end as u32,
            ins: Span::new(ins_start, self.arena.len()),
            seq,
        });
    }
}

/// The first `c` of `v` outside a quoted string.
fn unquoted(v: &[u8], c: u8) -> Option<usize> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, &b) in v.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ if b == c && !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn first_field(msg: &Message, name: HeaderName) -> Option<&super::message::HeaderField> {
    msg.fields().iter().find(|f| f.name == name)
}

/// A `u8` in decimal without going through `fmt`.
struct SmallNum {
    buf: [u8; 3],
    len: usize,
}

impl SmallNum {
    fn as_bytes(&self) -> &[u8] {
        &self.buf[3 - self.len..]
    }
}

fn itoa_u8(mut n: u8) -> SmallNum {
    let mut buf = [0u8; 3];
    let mut len = 0;
    loop {
        buf[2 - len] = b'0' + n % 10;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    SmallNum { buf, len }
}

#[cfg(test)]
#[path = "edit_tests.rs"]
mod tests;
