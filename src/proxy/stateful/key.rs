//! Server transaction keys (RFC 3261 §17.2.3): the top Via's branch and
//! sent-by and the method, where ACK and CANCEL look for the INVITE;
//! for a branch without the magic cookie (RFC 2543), the Request-URI,
//! From tag, Call-ID, CSeq number and the whole top Via.

use crate::sip::{Message, Method};

/// The key of the server transaction `msg` belongs to. ACK and CANCEL get
/// the key of the INVITE they refer to (§17.2.3, §9.2): an ACK for a
/// non-2xx is absorbed by it, a CANCEL finds the response context to
/// cancel.
pub(super) fn server_key(msg: &Message, method: Method) -> Option<Box<[u8]>> {
    let via = msg.top_via().ok()?;
    let class: &[u8] = match method {
        Method::Ack | Method::Cancel | Method::Invite => b"INVITE",
        _ => msg.method_bytes(),
    };
    let mut k = Vec::with_capacity(96);
    if via.is_rfc3261_branch() {
        k.push(b'3');
        k.extend_from_slice(class);
        k.push(0);
        k.extend_from_slice(via.branch().unwrap_or_default());
        k.push(0);
        // Hosts compare case-insensitively; the port defaults to 5060.
        k.extend(via.host.iter().map(u8::to_ascii_lowercase));
        k.extend_from_slice(&via.port.unwrap_or(5060).to_le_bytes());
    } else {
        k.push(b'2');
        k.extend_from_slice(class);
        k.push(0);
        k.extend_from_slice(msg.request_uri_bytes().unwrap_or_default());
        k.push(0);
        k.extend_from_slice(msg.from().ok().and_then(|f| f.tag()).unwrap_or_default());
        k.push(0);
        k.extend_from_slice(msg.call_id());
        k.push(0);
        k.extend_from_slice(&msg.cseq().map_or(0, |c| c.seq).to_le_bytes());
        k.extend_from_slice(msg.slice(via.span));
    }
    Some(k.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, Limits};
    use bytes::Bytes;

    fn msg(method: &str, via: &str, ruri: &str) -> Message {
        let s = format!("{method} {ruri} SIP/2.0\r\nVia: {via}\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n");
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    fn key(method: &str, via: &str, ruri: &str) -> Box<[u8]> {
        let m = msg(method, via, ruri);
        server_key(&m, m.method().unwrap()).unwrap()
    }

    #[test]
    fn ack_and_cancel_find_the_invite_other_methods_do_not() {
        let via = "SIP/2.0/UDP a.example.com:5060;branch=z9hG4bK1";
        let inv = key("INVITE", via, "sip:b@h");
        assert_eq!(key("ACK", via, "sip:b@h"), inv);
        assert_eq!(key("CANCEL", via, "sip:b@h"), inv);
        assert_ne!(key("BYE", via, "sip:b@h"), inv);
        assert_eq!(
            key(
                "INVITE",
                "SIP/2.0/UDP A.example.com;branch=z9hG4bK1",
                "sip:b@h"
            ),
            inv,
            "host case and the default port do not matter"
        );
        assert_ne!(
            key(
                "INVITE",
                "SIP/2.0/UDP a.example.com:5061;branch=z9hG4bK1",
                "sip:b@h"
            ),
            inv,
            "another sent-by is another transaction"
        );
        assert_ne!(
            key(
                "INVITE",
                "SIP/2.0/UDP a.example.com;branch=z9hG4bK2",
                "sip:b@h"
            ),
            inv
        );
    }

    #[test]
    fn rfc2543_requests_are_matched_on_their_fields() {
        let via = "SIP/2.0/UDP a.example.com;branch=old1";
        let inv = key("INVITE", via, "sip:b@h");
        assert_eq!(key("ACK", via, "sip:b@h"), inv);
        assert_ne!(key("INVITE", via, "sip:c@h"), inv);
        assert_ne!(
            key("INVITE", "SIP/2.0/UDP a.example.com;branch=old2", "sip:b@h"),
            inv
        );
    }
}
