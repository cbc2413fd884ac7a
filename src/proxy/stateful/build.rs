//! Messages the transaction layer writes itself: the ACK for a non-2xx
//! final (RFC 3261 §17.1.1.3), the CANCEL of a pending leg (§9.1), and
//! responses forwarded upstream with our Via removed (§16.7 step 3) and,
//! where §16.7 says so, a new status line or aggregated challenges.

use crate::config::Transport;
use crate::sip::response::copy as field;
use crate::sip::{Edits, HeaderName, Message};

/// An ACK or CANCEL for the request `req` we sent on a leg: the same
/// Request-URI, Call-ID, From, CSeq number, Route set and our Via (only
/// ours), with `method` in CSeq. `to` is the To header value: the
/// response's for an ACK (it has the tag), the request's for a CANCEL.
pub(super) fn derived_request(
    req: &Message,
    method: &str,
    to: &[u8],
    extra: &[(&str, &[u8])],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.request_uri_bytes().unwrap_or_default());
    out.extend_from_slice(b" SIP/2.0\r\n");
    if let Ok(v) = req.top_via() {
        field(&mut out, "Via", req.slice(v.span));
    }
    field(&mut out, "Max-Forwards", b"70");
    for r in req.header_values(HeaderName::Route) {
        field(&mut out, "Route", r);
    }
    field(
        &mut out,
        "From",
        req.header(HeaderName::From).unwrap_or_default(),
    );
    field(&mut out, "To", to);
    field(&mut out, "Call-ID", req.call_id());
    let seq = req.cseq().map_or(0, |c| c.seq);
    field(&mut out, "CSeq", format!("{seq} {method}").as_bytes());
    for (n, v) in extra {
        field(&mut out, n, v);
    }
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// A response from downstream as it goes upstream: our Via removed, a
/// Content-Length over a stream, the status line replaced when `status`
/// is given (§16.7 step 6: 503 becomes 500), and `extra` header fields
/// added (challenges from other branches, §16.7 step 7), after the
/// edits already in `edits` (topology hiding's). `None` if the response
/// has no Via of ours to remove.
pub(super) fn upstream_response(
    edits: &mut Edits,
    resp: &Message,
    transport: Transport,
    status: Option<(u16, &str)>,
    extra: &[(HeaderName, Vec<u8>)],
    contact_param: Option<&[u8]>,
) -> Option<Vec<u8>> {
    edits.remove_top_via(resp).ok()?;
    if let Some(p) = contact_param {
        edits.add_contact_uri_param(resp, p);
    }
    if let Some((code, reason)) = status {
        edits.set_status_line(resp, code, reason.as_bytes());
    }
    for (name, value) in extra {
        edits.add_header(resp, name.as_str(), value);
    }
    if transport == Transport::Tcp {
        edits.ensure_content_length(resp);
    }
    let mut out = Vec::with_capacity(resp.as_bytes().len() + 64);
    edits.apply(resp, &mut out);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, Limits, Method};
    use bytes::Bytes;

    fn parse(s: &str) -> Message {
        Message::parse(
            Bytes::from(s.to_string()),
            Framing::Datagram,
            &Limits::default(),
        )
        .unwrap()
    }

    const SENT: &str = "INVITE sip:bob@192.0.2.5 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsfx\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKuac\r\nMax-Forwards: 69\r\nRoute: <sip:192.0.2.7;lr>\r\nFrom: <sip:alice@a>;tag=f1\r\nTo: <sip:bob@b>\r\nCall-ID: cid\r\nCSeq: 7 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn cancel_and_ack_follow_the_request() {
        let req = parse(SENT);
        let cancel = parse(
            std::str::from_utf8(&derived_request(
                &req,
                "CANCEL",
                req.header(HeaderName::To).unwrap(),
                &[("Reason", b"SIP;cause=200")],
            ))
            .unwrap(),
        );
        assert_eq!(cancel.method(), Some(Method::Cancel));
        assert_eq!(cancel.request_uri_bytes(), Some(&b"sip:bob@192.0.2.5"[..]));
        let vias: Vec<_> = cancel.vias().map(Result::unwrap).collect();
        assert_eq!(vias.len(), 1, "only our Via (§9.1)");
        assert_eq!(vias[0].branch(), Some(&b"z9hG4bKsfx"[..]));
        assert_eq!(cancel.cseq().unwrap().seq, 7);
        assert_eq!(cancel.cseq().unwrap().method, Method::Cancel);
        assert_eq!(
            cancel.header(HeaderName::Route),
            Some(&b"<sip:192.0.2.7;lr>"[..])
        );
        assert_eq!(cancel.call_id(), b"cid");
        assert_eq!(cancel.header_by_name("Reason"), Some(&b"SIP;cause=200"[..]));
        assert_eq!(cancel.body(), b"");

        let ack = parse(
            std::str::from_utf8(&derived_request(&req, "ACK", b"<sip:bob@b>;tag=t9", &[])).unwrap(),
        );
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.to().unwrap().tag(), Some(&b"t9"[..]));
        assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    }

    #[test]
    fn upstream_response_pops_our_via_and_can_rewrite_the_status() {
        let resp = parse("SIP/2.0 503 Service Unavailable\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKsfx\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKuac\r\nFrom: <sip:alice@a>;tag=f1\r\nTo: <sip:bob@b>;tag=t\r\nCall-ID: cid\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n");
        let mut e = Edits::new();
        let out = upstream_response(
            &mut e,
            &resp,
            Transport::Udp,
            Some((500, "Server Internal Error")),
            &[(HeaderName::WwwAuthenticate, b"Digest realm=\"x\"".to_vec())],
            None,
        )
        .unwrap();
        let m = parse(std::str::from_utf8(&out).unwrap());
        assert_eq!(m.status(), Some(500));
        assert_eq!(m.reason(), b"Server Internal Error");
        assert_eq!(m.vias().count(), 1);
        assert_eq!(
            m.header(HeaderName::WwwAuthenticate),
            Some(&b"Digest realm=\"x\""[..])
        );
        e.clear();
        let plain = upstream_response(&mut e, &resp, Transport::Udp, None, &[], None).unwrap();
        assert!(plain.starts_with(b"SIP/2.0 503 Service Unavailable\r\n"));
    }
}
