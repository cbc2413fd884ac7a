//! Topology hiding (Kamailio `topos`, OpenSIPS `topology_hiding`): on a
//! route with `hide = true`, each side of a dialog sees Siphon and nothing
//! behind it. Every request Siphon forwards in such a dialog carries one
//! Via (ours), one Record-Route (ours) and a Contact naming Siphon; every
//! response it relays carries only the receiver's own Vias and Record-Route
//! entries, ours, and a Contact naming Siphon.
//!
//! There is no dialog table: what a side must not see travels sealed
//! (ChaCha20-Poly1305 under a key of this node) in the headers Siphon adds,
//! and comes back in the messages that answer or follow them:
//!
//! - the Vias it removed from a request, in a `th` parameter of its own Via
//!   (the response brings it back; they are put back in the response);
//! - the Record-Route entries of the side a request came from, in a `th`
//!   parameter of its own Record-Route; the other side's entries, taken out
//!   of the dialog-creating response, in the one it puts in that response.
//!   Each side's route set then holds our entry with the other side's
//!   entries sealed in it, which a request in the dialog brings back as its
//!   Route: they become its Route headers on the other side;
//! - a Contact URI, in the user part of the Contact Siphon puts in its
//!   place (`sip:TOKEN@siphon`): the remote target of the other side, so
//!   every request in the dialog comes to Siphon, which opens the token
//!   into the Request-URI.
//!
//! The cost is bytes, not state: a token is the sealed text plus 28 bytes,
//! in base64 (4/3); no memory, no lookup, nothing lost on a restart when
//! `[proxy] topology_secret` is set (without it the key is made at start,
//! and the dialogs of an earlier run cannot be followed: their requests get
//! 404). Sealing is deterministic (the nonce is a keyed hash of the sealed
//! text), so a retransmission forwarded again is byte-identical and a side
//! sees one remote target for one contact. A token opens only under the
//! key that made it and only as the kind it was made for (Via, Route or
//! Contact), so a forged or altered one is refused, never routed.

use std::hash::Hasher;
use std::net::SocketAddr;
use std::sync::OnceLock;

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use siphasher::sip128::{Hasher128, SipHasher24};

use crate::config::Transport;
use crate::sip::edit::write_stamped_via;
use crate::sip::uri::Uri;
use crate::sip::{Edits, HeaderName, Message, Method, NameAddr, Via};

/// The URI / Via parameter holding a sealed list.
pub const PARAM: &str = "th";

/// What a token holds; part of the authenticated data, so one kind cannot
/// be presented as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The Vias taken out of a request.
    Via = b'v' as isize,
    /// Record-Route entries of one side, in the order they are used as
    /// Route headers.
    Route = b'r' as isize,
    /// A Contact URI.
    Contact = b'c' as isize,
}

/// Seals and opens tokens under this node's key.
pub struct Sealer {
    key: LessSafeKey,
    nonce_key: [u8; 16],
}

const TAG_LEN: usize = 16;

impl Sealer {
    /// From `[proxy] topology_secret` (every node and every restart that
    /// shares it opens the others' tokens), or the key made at start.
    pub fn new(secret: Option<&str>) -> Sealer {
        let material = match secret {
            Some(s) => derive(s),
            None => *boot_key(),
        };
        let (k, n) = material.split_at(32);
        let key = UnboundKey::new(&CHACHA20_POLY1305, k)
            .unwrap_or_else(|_| unreachable!("a 32-byte ChaCha20-Poly1305 key"));
        let mut nonce_key = [0u8; 16];
        nonce_key.copy_from_slice(n);
        Sealer {
            key: LessSafeKey::new(key),
            nonce_key,
        }
    }

    /// Append the token for `plain` to `out` (base64url, no padding: safe
    /// in a URI user part and a parameter value).
    pub fn seal(&self, kind: Kind, plain: &[u8], out: &mut Vec<u8>) {
        let mut h = SipHasher24::new_with_key(&self.nonce_key);
        h.write_u8(kind as u8);
        h.write(plain);
        let digest = h.finish128().as_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&digest[..NONCE_LEN]);
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + TAG_LEN);
        buf.extend_from_slice(&nonce);
        buf.extend_from_slice(plain);
        // Sealing fails only for inputs of gigabytes.
        let Ok(tag) = self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from([kind as u8]),
            &mut buf[NONCE_LEN..],
        ) else {
            return;
        };
        buf.extend_from_slice(tag.as_ref());
        base64url(&buf, out);
    }

    /// The text sealed in `token`, if it is a token of ours of this kind.
    pub fn open(&self, kind: Kind, token: &[u8]) -> Option<Vec<u8>> {
        let mut buf = unbase64url(token)?;
        if buf.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&buf[..NONCE_LEN]);
        let plain_len = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from([kind as u8]),
                &mut buf[NONCE_LEN..],
            )
            .ok()?
            .len();
        buf.copy_within(NONCE_LEN..NONCE_LEN + plain_len, 0);
        buf.truncate(plain_len);
        Some(buf)
    }
}

/// The listener a hidden message leaves by: how Siphon names itself to
/// the side it goes to (its Via, Record-Route and Contact).
#[derive(Debug, Clone, Copy)]
pub struct Face<'a> {
    pub host: &'a str,
    pub port: u16,
    pub transport: Transport,
}

impl Face<'_> {
    /// `sip:[user@]host:port[;transport=tcp]`, then `;lr` and `;th=` for a
    /// Record-Route entry.
    fn uri(&self, user: Option<&[u8]>, rr: Option<Option<&[u8]>>, out: &mut Vec<u8>) {
        out.extend_from_slice(b"sip:");
        if let Some(u) = user {
            out.extend_from_slice(u);
            out.push(b'@');
        }
        out.extend_from_slice(self.host.as_bytes());
        out.push(b':');
        out.extend_from_slice(self.port.to_string().as_bytes());
        if self.transport == Transport::Tcp {
            out.extend_from_slice(b";transport=tcp");
        }
        if let Some(th) = rr {
            out.extend_from_slice(b";lr");
            if let Some(t) = th {
                out.extend_from_slice(b";th=");
                out.extend_from_slice(t);
            }
        }
    }

    /// Our Record-Route value, with `routes` (packed) sealed in it.
    fn record_route(&self, s: &Sealer, routes: &[u8]) -> Vec<u8> {
        let mut token = Vec::new();
        if !routes.is_empty() {
            s.seal(Kind::Route, routes, &mut token);
        }
        let mut v = b"<".to_vec();
        self.uri(
            None,
            Some((!token.is_empty()).then_some(&token[..])),
            &mut v,
        );
        v.push(b'>');
        v
    }

    /// Put our Contact in place of the first one, its URI (with `alias`,
    /// a NAT alias for it) sealed in the user part.
    fn replace_contact(&self, s: &Sealer, e: &mut Edits, msg: &Message, alias: Option<&[u8]>) {
        let Some(value) = msg.header(HeaderName::Contact) else {
            return;
        };
        let Ok(addr) = NameAddr::parse(value, HeaderName::Contact) else {
            return;
        };
        if addr.uri == b"*" {
            return;
        }
        let mut plain = addr.uri.to_vec();
        if let Some(a) = alias {
            plain.push(b';');
            plain.extend_from_slice(a);
        }
        let mut token = Vec::new();
        s.seal(Kind::Contact, &plain, &mut token);
        let mut uri = Vec::with_capacity(token.len() + 48);
        self.uri(Some(&token), None, &mut uri);
        e.set_contact_uri(msg, &uri);
    }
}

/// The edits for a request leaving toward a hidden side (`msg` came from
/// `source`): every Via goes (the top one stamped with received/rport),
/// sealed into the returned `;th=TOKEN` for our own Via; every
/// Record-Route entry goes, sealed into ours (not for ACK and CANCEL); the
/// Contact becomes ours (not for REGISTER: a registrar
/// must see the contact it binds, and Path is how an edge stays in that
/// path, RFC 3327).
pub fn hide_request(
    s: &Sealer,
    e: &mut Edits,
    msg: &Message,
    source: SocketAddr,
    face: Face<'_>,
    method: Method,
    alias: Option<&[u8]>,
) -> Vec<u8> {
    // The top Via stamped with where the request came from; the others
    // as received.
    let mut values = msg
        .list_values(HeaderName::Via)
        .flatten()
        .map(|span| msg.slice(span));
    let top = values.next();
    let mut stamped = Vec::new();
    let top = match top {
        Some(raw)
            if Via::parse(raw)
                .is_ok_and(|via| write_stamped_via(&via, raw, source, &mut stamped)) =>
        {
            Some(&stamped[..])
        }
        other => other,
    };
    let vias = pack(top.into_iter().chain(values));
    e.remove_headers(msg, HeaderName::Via);
    let mut suffix = format!(";{PARAM}=").into_bytes();
    s.seal(Kind::Via, &vias, &mut suffix);
    if !matches!(method, Method::Ack | Method::Cancel) {
        let routes = pack(
            msg.list_values(HeaderName::RecordRoute)
                .flatten()
                .map(|r| msg.slice(r)),
        );
        e.remove_headers(msg, HeaderName::RecordRoute);
        e.insert_record_route(msg, &face.record_route(s, &routes));
    }
    if method != Method::Register {
        face.replace_contact(s, e, msg, alias);
    }
    suffix
}

/// The edits for a response from a hidden side going back through our
/// Via: the Vias sealed in its `th` parameter (`vias`, from [`open_vias`];
/// the response goes where the first says) are put back;
/// in the Record-Route, the entries above ours (the hidden side's) are
/// sealed into ours, reversed into the order a Route set toward them
/// uses, and the entries sealed in ours come back below it; a 1xx or 2xx
/// Contact becomes ours (not a REGISTER's). `None` if our Record-Route
/// entry's token does not open: the response is dropped.
pub fn restore_response(
    s: &Sealer,
    e: &mut Edits,
    resp: &Message,
    vias: &[Vec<u8>],
    face: Face<'_>,
    is_me: impl Fn(&Uri<'_>) -> bool,
    alias: Option<&[u8]>,
) -> Option<()> {
    for v in vias {
        e.insert_via(resp, v);
    }
    let rr: Vec<&[u8]> = resp
        .list_values(HeaderName::RecordRoute)
        .flatten()
        .map(|r| resp.slice(r))
        .collect();
    if !rr.is_empty() {
        let ours = rr.iter().position(|v| {
            NameAddr::parse(v, HeaderName::RecordRoute)
                .ok()
                .and_then(|a| a.uri().ok())
                .is_some_and(|u| is_me(&u))
        });
        let (theirs, back) = match ours {
            Some(k) => (&rr[..k], open_route_entry(s, rr[k])),
            None => (&rr[..], Some(Vec::new())),
        };
        let back = back?;
        e.remove_headers(resp, HeaderName::RecordRoute);
        e.insert_record_route(
            resp,
            &face.record_route(s, &pack(theirs.iter().rev().copied())),
        );
        for v in &back {
            e.insert_record_route(resp, v);
        }
    }
    // A REGISTER's answer lists the UA's own bindings (its request kept
    // its Contact): they stay.
    let register = resp.cseq().is_some_and(|c| c.method == Method::Register);
    if resp.status().is_some_and(|c| (101..300).contains(&c)) && !register {
        face.replace_contact(s, e, resp, alias);
    }
    Some(())
}

/// The Vias sealed in our Via's `th` parameter, top first; `None` if the
/// token does not open or holds none.
pub fn open_vias(s: &Sealer, via_token: &[u8]) -> Option<Vec<Vec<u8>>> {
    let sealed = s.open(Kind::Via, via_token)?;
    let vias: Vec<Vec<u8>> = unpack(&sealed)?.into_iter().map(<[u8]>::to_vec).collect();
    (!vias.is_empty()).then_some(vias)
}

/// The `th` parameter of a Route or Record-Route value of ours: the
/// entries sealed in it (none without one). `None` if it does not open.
pub fn open_route_entry(s: &Sealer, value: &[u8]) -> Option<Vec<Vec<u8>>> {
    let addr = NameAddr::parse(value, HeaderName::Route).ok()?;
    let uri = addr.uri().ok()?;
    open_routes(s, &uri)
}

/// The entries sealed in our Route URI `uri` (none without `th`).
pub fn open_routes(s: &Sealer, uri: &Uri<'_>) -> Option<Vec<Vec<u8>>> {
    match uri.param(PARAM) {
        None => Some(Vec::new()),
        Some(token) => {
            let plain = s.open(Kind::Route, token?)?;
            Some(unpack(&plain)?.into_iter().map(<[u8]>::to_vec).collect())
        }
    }
}

/// The `th` parameter of a Via value, if it has one.
pub fn via_token<'a>(via: &Via<'a>) -> Option<&'a [u8]> {
    via.params.get(PARAM).flatten()
}

/// 32 bytes of AEAD key and 16 of nonce key from a configured secret
/// (SHA-256, one domain-separated hash each).
fn derive(secret: &str) -> [u8; 48] {
    use sha2::{Digest, Sha256};
    let mut out = [0u8; 48];
    let k = Sha256::new()
        .chain_update(b"siphon topology key\0")
        .chain_update(secret.as_bytes())
        .finalize();
    let n = Sha256::new()
        .chain_update(b"siphon topology nonce\0")
        .chain_update(secret.as_bytes())
        .finalize();
    out[..32].copy_from_slice(&k);
    out[32..].copy_from_slice(&n[..16]);
    out
}

/// One key for every shard of this run when none is configured.
fn boot_key() -> &'static [u8; 48] {
    static KEY: OnceLock<[u8; 48]> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = [0u8; 48];
        crate::secret::os_random(&mut k);
        k
    })
}

/// Values of one header as sealed text: each as a 2-byte big-endian
/// length and its bytes. A value longer than 65,535 bytes (the parser's
/// limits never let one through) is cut.
pub fn pack<'a>(values: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        let v = &v[..v.len().min(u16::MAX as usize)];
        out.extend_from_slice(&(v.len() as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The values of [`pack`]; `None` if the text is not a packed list.
pub fn unpack(mut b: &[u8]) -> Option<Vec<&[u8]>> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let len = usize::from(u16::from_be_bytes([*b.first()?, *b.get(1)?]));
        let v = b.get(2..2 + len)?;
        out.push(v);
        b = &b[2 + len..];
    }
    Some(out)
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64url(data: &[u8], out: &mut Vec<u8>) {
    out.reserve(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        let chars = c.len() + 1;
        for i in 0..chars {
            out.push(B64[(n >> (18 - 6 * i) & 63) as usize]);
        }
    }
}

fn unbase64url(s: &[u8]) -> Option<Vec<u8>> {
    if s.len() % 4 == 1 {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for c in s.chunks(4) {
        let mut n = 0u32;
        for (i, &ch) in c.iter().enumerate() {
            n |= val(ch)? << (18 - 6 * i);
        }
        for i in 0..c.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_as_what_it_was_sealed_as() {
        let s = Sealer::new(Some("secret"));
        for plain in [&b""[..], b"x", b"sip:alice@10.0.0.5:5062;transport=tcp"] {
            let mut t = Vec::new();
            s.seal(Kind::Contact, plain, &mut t);
            assert!(t
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_')));
            assert_eq!(s.open(Kind::Contact, &t).as_deref(), Some(plain));
            // Another kind, another key, or one changed character: refused.
            assert_eq!(s.open(Kind::Route, &t), None);
            assert_eq!(Sealer::new(Some("other")).open(Kind::Contact, &t), None);
            let mut bad = t.clone();
            bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
            assert_eq!(s.open(Kind::Contact, &bad), None);
            // The sealed text does not show.
            if !plain.is_empty() {
                assert!(!t.windows(plain.len()).any(|w| w == plain));
            }
        }
        assert_eq!(s.open(Kind::Via, b"not-a-token"), None);
        assert_eq!(s.open(Kind::Via, b"%%%"), None);
    }

    #[test]
    fn sealing_is_deterministic_and_keyed() {
        let a = Sealer::new(Some("k"));
        let (mut t1, mut t2, mut t3) = (Vec::new(), Vec::new(), Vec::new());
        a.seal(Kind::Via, b"SIP/2.0/UDP 10.0.0.1", &mut t1);
        a.seal(Kind::Via, b"SIP/2.0/UDP 10.0.0.1", &mut t2);
        a.seal(Kind::Via, b"SIP/2.0/UDP 10.0.0.2", &mut t3);
        assert_eq!(t1, t2);
        assert_ne!(t1, t3);
        // Two runs without a secret share nothing; shards of one run do.
        let (b, c) = (Sealer::new(None), Sealer::new(None));
        let mut t = Vec::new();
        b.seal(Kind::Via, b"v", &mut t);
        assert_eq!(c.open(Kind::Via, &t).as_deref(), Some(&b"v"[..]));
        assert_eq!(a.open(Kind::Via, &t), None);
    }

    #[test]
    fn packed_lists_round_trip_and_garbage_is_refused() {
        let vals: [&[u8]; 3] = [b"<sip:a;lr>", b"", b"<sip:b;lr>, x"];
        let p = pack(vals);
        assert_eq!(unpack(&p).unwrap(), vals);
        assert_eq!(unpack(&[0, 5, b'a']), None);
        assert_eq!(unpack(&[0]), None);
        assert_eq!(unpack(b"").unwrap().len(), 0);
    }

    #[test]
    fn base64url_round_trips_every_length() {
        let data: Vec<u8> = (0..=255u8).collect();
        for n in 0..40 {
            let mut t = Vec::new();
            base64url(&data[..n], &mut t);
            assert_eq!(unbase64url(&t).unwrap(), &data[..n]);
        }
        assert_eq!(unbase64url(b"A"), None);
    }
}
