//! Responses generated locally (RFC 3261 §8.2.6): errors, 100 Trying, and
//! answers to OPTIONS. Via, From, To, Call-ID and CSeq are copied from the
//! request as received; To gets our tag unless it has one or this is a 100.

use std::fmt::Display;
use std::io::Write;

use super::addr::NameAddr;
use super::header::HeaderName;
use super::message::{Message, ParseError, Span};

/// Write a response to `req` into `out` (cleared first).
///
/// `extra` header fields go after the copied ones; `Content-Length: 0`
/// ends the header section (these responses have no body).
pub fn build(
    req: &Message,
    code: u16,
    reason: &dyn Display,
    to_tag: &[u8],
    extra: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) {
    build_from(req, None, code, reason, to_tag, extra, out)
}

/// [`build`] for a request received from `source`: the top Via of the
/// response carries `received` and `rport` as the server transport adds
/// them to the request (RFC 3261 §18.2.1, RFC 3581 §4).
#[allow(clippy::too_many_arguments)]
pub fn build_from(
    req: &Message,
    source: Option<std::net::SocketAddr>,
    code: u16,
    reason: &dyn Display,
    to_tag: &[u8],
    extra: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) {
    let mut stamp = source.and_then(|s| req.top_via().ok().map(|v| (v, s)));
    out.clear();
    // Writes to a Vec cannot fail.
    let _ = write!(out, "SIP/2.0 {code} ");
    let phrase_start = out.len();
    let _ = write!(out, "{reason}");
    // A reason phrase never spans lines (RFC 3261 §25.1 Reason-Phrase).
    for b in &mut out[phrase_start..] {
        if *b == b'\r' || *b == b'\n' {
            *b = b' ';
        }
    }
    out.extend_from_slice(b"\r\n");
    // Single-instance headers are copied once (the first): a request that
    // repeated them (RFC 4475 §3.3.8) still gets a well-formed answer.
    let mut copied: u8 = 0;
    for f in req.fields() {
        if let Some(i) = f.name.single_index() {
            if copied & (1 << i) != 0 {
                continue;
            }
            copied |= 1 << i;
        }
        let name = match f.name {
            HeaderName::Via if stamp.is_some() => {
                // The first Via field holds the top value: stamp it in place.
                let Some((via, source)) = stamp.take() else {
                    continue;
                };
                let (value, top) = (f.value, via.span);
                if top.start < value.start || top.end > value.end {
                    copy(out, "Via", req.slice(value));
                    continue;
                }
                out.extend_from_slice(b"Via: ");
                out.extend_from_slice(req.slice(Span {
                    start: value.start,
                    end: top.start,
                }));
                if !super::edit::write_stamped_via(&via, req.slice(top), source, out) {
                    out.extend_from_slice(req.slice(top));
                }
                out.extend_from_slice(req.slice(Span {
                    start: top.end,
                    end: value.end,
                }));
                out.extend_from_slice(b"\r\n");
                continue;
            }
            HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => f.name,
            HeaderName::To => {
                copy(out, "To", req.slice(f.value));
                // RFC 3261 §8.2.6.2: add a tag unless one is there (and not to a 100).
                let has_tag = NameAddr::parse(req.slice(f.value), HeaderName::To)
                    .is_ok_and(|a| a.tag().is_some());
                if code > 100 && !has_tag && !to_tag.is_empty() {
                    out.truncate(out.len() - 2);
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(to_tag);
                    out.extend_from_slice(b"\r\n");
                }
                continue;
            }
            // RFC 3261 §8.2.6.1: a 100 echoes Timestamp.
            HeaderName::Timestamp if code == 100 => f.name,
            _ => continue,
        };
        copy(out, name.as_str(), req.slice(f.value));
    }
    for (name, value) in extra {
        copy(out, name, value);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
}

/// Write the answer to a request that failed to parse: the error's status
/// code and reason phrase (`400 Duplicate Content-Length`). Returns false,
/// writing nothing, when the input was not a readable request: a response
/// or garbage is dropped and counted, never answered.
pub fn build_error(
    err: &ParseError,
    to_tag: &[u8],
    extra: &[(&str, &[u8])],
    out: &mut Vec<u8>,
) -> bool {
    let Some(req) = err.message().filter(|m| m.is_request()) else {
        return false;
    };
    // Without a Via there is nowhere to send the answer (RFC 3261 §18.2.2).
    if req.header(HeaderName::Via).is_none() {
        return false;
    }
    let e = err.error();
    build(req, e.status(), &e, to_tag, extra, out);
    true
}

/// Write one header field `name: value` and its CRLF.
pub(crate) fn copy(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Error, Framing, Limits};
    use bytes::Bytes;

    const REQ: &[u8] = b"OPTIONS sip:proxy.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/UDP b.example.com;branch=z9hG4bK2\r\n\
v: SIP/2.0/TCP c.example.com;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
To: <sip:proxy.example.com>\r\n\
f: Alice <sip:alice@example.com>;tag=abc\r\n\
Call-ID: 12345@a.example.com\r\n\
CSeq: 7 OPTIONS\r\n\
Timestamp: 54\r\n\
Content-Length: 0\r\n\r\n";

    fn parse(s: &[u8]) -> Result<Message, ParseError> {
        Message::parse(
            Bytes::copy_from_slice(s),
            Framing::Datagram,
            &Limits::default(),
        )
    }

    #[test]
    fn copies_the_dialog_headers_and_adds_a_tag() {
        let req = parse(REQ).unwrap();
        let mut out = Vec::new();
        build(
            &req,
            200,
            &"OK",
            b"srv1",
            &[("Allow", b"INVITE, ACK")],
            &mut out,
        );
        let r = parse(&out).unwrap();
        assert_eq!((r.status(), r.reason()), (Some(200), &b"OK"[..]));
        let vias: Vec<_> = r.vias().map(|v| v.unwrap().host).collect();
        assert_eq!(
            vias,
            vec![&b"a.example.com"[..], b"b.example.com", b"c.example.com"]
        );
        assert_eq!(r.to().unwrap().tag(), Some(&b"srv1"[..]));
        assert_eq!(r.from().unwrap().tag(), Some(&b"abc"[..]));
        assert_eq!(r.call_id(), req.call_id());
        assert_eq!(
            r.cseq().map(|c| (c.seq, c.method)),
            req.cseq().map(|c| (c.seq, c.method))
        );
        assert_eq!(r.header(HeaderName::Allow), Some(&b"INVITE, ACK"[..]));
        assert_eq!(r.header(HeaderName::Timestamp), None);
        assert_eq!(r.content_length(), Some(0));
    }

    #[test]
    fn trying_has_no_tag_and_echoes_timestamp() {
        let req = parse(REQ).unwrap();
        let mut out = Vec::new();
        build(&req, 100, &"Trying", b"srv1", &[], &mut out);
        let r = parse(&out).unwrap();
        assert_eq!(r.to().unwrap().tag(), None);
        assert_eq!(r.header(HeaderName::Timestamp), Some(&b"54"[..]));
    }

    #[test]
    fn existing_tag_is_kept() {
        let s = String::from_utf8_lossy(REQ)
            .replace("To: <sip:proxy.example.com>", "To: <sip:p@x>;tag=theirs");
        let req = parse(s.as_bytes()).unwrap();
        let mut out = Vec::new();
        build(&req, 486, &"Busy Here", b"mine", &[], &mut out);
        assert_eq!(
            parse(&out).unwrap().to().unwrap().tag(),
            Some(&b"theirs"[..])
        );
    }

    #[test]
    fn repeated_single_instance_headers_are_copied_once() {
        let s = String::from_utf8_lossy(REQ).replace(
            "Call-ID: 12345@a.example.com\r\n",
            "Call-ID: 12345@a.example.com\r\nCall-ID: other\r\nCSeq: 9 OPTIONS\r\nTo: <sip:x@y>\r\nf: <sip:z@y>\r\n",
        );
        let err = parse(s.as_bytes()).unwrap_err();
        let mut out = Vec::new();
        assert!(build_error(&err, b"t", &[], &mut out));
        let r = parse(&out).unwrap();
        assert_eq!(
            (r.status(), r.call_id()),
            (Some(400), &b"12345@a.example.com"[..])
        );
        assert_eq!(r.cseq().unwrap().seq, 9, "the first CSeq in the request");
        assert_eq!(r.from().unwrap().tag(), Some(&b"abc"[..]));
        assert_eq!(r.vias().count(), 3, "every Via is kept");
    }

    #[test]
    fn error_answers_carry_the_reason() {
        let s =
            String::from_utf8_lossy(REQ).replace("Content-Length: 0", "Content-Length: 0\r\nl: 5");
        let err = parse(s.as_bytes()).unwrap_err();
        assert_eq!(
            err.error(),
            Error::DuplicateHeader(HeaderName::ContentLength)
        );
        let mut out = Vec::new();
        assert!(build_error(&err, b"t", &[], &mut out));
        let r = parse(&out).unwrap();
        assert_eq!(
            (r.status(), r.reason()),
            (Some(400), &b"Duplicate Content-Length"[..])
        );
        assert_eq!(r.call_id(), b"12345@a.example.com");
        // Responses and garbage are not answered.
        let err = parse(b"SIP/2.0 200 OK\r\nl: 1\r\nl: 2\r\n\r\n").unwrap_err();
        assert!(!build_error(&err, b"t", &[], &mut out));
        let err = parse(b"\x16\x03\x01garbage\r\n\r\n").unwrap_err();
        assert!(!build_error(&err, b"t", &[], &mut out));
    }

    #[test]
    fn a_reply_to_a_received_request_carries_received_and_rport() {
        let req = parse(REQ).unwrap();
        let mut out = Vec::new();
        let from: std::net::SocketAddr = "192.0.2.9:5099".parse().unwrap();
        build_from(&req, Some(from), 483, &"Too Many Hops", b"t", &[], &mut out);
        let r = parse(&out).unwrap();
        let vias: Vec<_> = r.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 3, "every Via value is still there");
        assert_eq!(
            vias[0].received(),
            Some(&b"192.0.2.9"[..]),
            "RFC 3261 §18.2.1"
        );
        assert_eq!(vias[0].branch(), Some(&b"z9hG4bK1"[..]));
        assert_eq!(vias[1].host, b"b.example.com");
        assert_eq!(vias[1].received(), None);
        // With rport asked for, its value is filled in (RFC 3581 §4).
        let with_rport = String::from_utf8(REQ.to_vec())
            .unwrap()
            .replace("branch=z9hG4bK1,", "branch=z9hG4bK1;rport,");
        let req = parse(with_rport.as_bytes()).unwrap();
        build_from(&req, Some(from), 100, &"Trying", b"", &[], &mut out);
        let r = parse(&out).unwrap();
        let top = r.top_via().unwrap();
        assert_eq!(top.rport(), Some(Some(5099)));
        assert_eq!(top.received(), Some(&b"192.0.2.9"[..]));
        // No source, no stamp: the Via as received.
        build(&req, 100, &"Trying", b"", &[], &mut out);
        assert_eq!(parse(&out).unwrap().top_via().unwrap().rport(), Some(None));
    }
}
