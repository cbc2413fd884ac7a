//! Via (RFC 3261 §20.42, §18.2.1; RFC 3581 rport): every value of every Via
//! field, with whitespace allowed around `/`, `:` and `;` as the grammar's
//! SWS/LWS permits (RFC 4475 §3.1.1.1).

use super::error::Error;
use super::header::HeaderName;
use super::lex::{self, Params};
use super::message::{Message, Span};

/// The RFC 3261 branch prefix (§8.1.1.7).
pub const MAGIC_COOKIE: &[u8] = b"z9hG4bK";

/// A Via transport. Unknown ones stay `Other` (RFC 4475 §3.1.1.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    TlsSctp,
    Ws,
    Wss,
    Other,
}

impl Transport {
    pub fn from_bytes(b: &[u8]) -> Transport {
        let eq = |s: &str| b.eq_ignore_ascii_case(s.as_bytes());
        if eq("UDP") {
            Transport::Udp
        } else if eq("TCP") {
            Transport::Tcp
        } else if eq("TLS") {
            Transport::Tls
        } else if eq("SCTP") {
            Transport::Sctp
        } else if eq("TLS-SCTP") {
            Transport::TlsSctp
        } else if eq("WS") {
            Transport::Ws
        } else if eq("WSS") {
            Transport::Wss
        } else {
            Transport::Other
        }
    }

    /// Reliable transports need no retransmissions (RFC 3261 §17.1.1.2).
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp | Transport::Other)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Sctp => "SCTP",
            Transport::TlsSctp => "TLS-SCTP",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
            Transport::Other => "OTHER",
        }
    }
}

/// One via-parm, borrowing the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Via<'a> {
    pub transport: Transport,
    /// The transport token as received.
    pub transport_bytes: &'a [u8],
    /// The sent-by host as received (an IPv6 reference keeps its brackets).
    pub host: &'a [u8],
    pub port: Option<u16>,
    pub params: Params<'a>,
    /// The branch parameter, found while the parameters were validated
    /// (transaction matching reads it for every message).
    pub branch: Option<&'a [u8]>,
    /// Where this value sits in the message buffer.
    pub span: Span,
}

impl<'a> Via<'a> {
    /// Parse one via-parm.
    pub fn parse(s: &'a [u8]) -> Result<Via<'a>, Error> {
        let bad = Error::BadHeader(HeaderName::Via);
        // sent-protocol = "SIP" SLASH "2.0" SLASH transport, SLASH = SWS "/" SWS
        let mut i = lex::skip_ws(s, 0);
        if s[i..].starts_with(b"SIP/2.0/") {
            // The usual spelling, without SWS around the slashes.
            i += 8;
        } else {
            let name_end = lex::token_end(s, i);
            if !s[i..name_end].eq_ignore_ascii_case(b"SIP") {
                return Err(bad);
            }
            i = slash(s, name_end).ok_or(bad)?;
            let ver_end = lex::token_end(s, i);
            if &s[i..ver_end] != b"2.0" {
                return Err(bad);
            }
            i = slash(s, ver_end).ok_or(bad)?;
        }
        let t_end = lex::token_end(s, i);
        if t_end == i {
            return Err(bad);
        }
        let transport_bytes = &s[i..t_end];
        // LWS sent-by
        let h = lex::skip_ws(s, t_end);
        if h == t_end {
            return Err(bad);
        }
        let (host, port, rest) = host_port(s, h).ok_or(bad)?;
        let (params, branch) = Params::parse_find(&s[rest..], "branch").map_err(|()| bad)?;
        Ok(Via {
            transport: Transport::from_bytes(transport_bytes),
            transport_bytes,
            host,
            port,
            params,
            branch: branch.flatten(),
            span: Span::default(),
        })
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&'a [u8]> {
        self.branch
    }

    /// True if the branch starts with the magic cookie and has something
    /// after it; otherwise RFC 2543 matching applies (RFC 4475 §3.2.1).
    pub fn is_rfc3261_branch(&self) -> bool {
        self.branch()
            .is_some_and(|b| b.len() > MAGIC_COOKIE.len() && b.starts_with(MAGIC_COOKIE))
    }

    pub fn received(&self) -> Option<&'a [u8]> {
        self.params.get("received").flatten()
    }

    /// `rport` (RFC 3581): `Some(None)` when present without a value.
    /// An unparsable value reads as present-without-value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok()))
    }

    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.params.get("maddr").flatten()
    }

    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
    }
}

/// `SWS "/" SWS` starting at `i`; returns the index after it.
fn slash(s: &[u8], i: usize) -> Option<usize> {
    let i = lex::skip_ws(s, i);
    (s.get(i) == Some(&b'/')).then(|| lex::skip_ws(s, i + 1))
}

/// `host [ ":" port ]` at `i`: returns host, port and the index after them.
pub(crate) fn host_port(s: &[u8], i: usize) -> Option<(&[u8], Option<u16>, usize)> {
    let host_end = if s.get(i) == Some(&b'[') {
        let close = i + memchr::memchr(b']', &s[i..])?;
        let inner = &s[i + 1..close];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|b| b.is_ascii_hexdigit() || *b == b':' || *b == b'.')
        {
            return None;
        }
        close + 1
    } else {
        let host_char = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_');
        let e = i + s[i..]
            .iter()
            .position(|b| !host_char(b))
            .unwrap_or(s.len() - i);
        if e == i {
            return None;
        }
        e
    };
    let host = &s[i..host_end];
    let c = lex::skip_ws(s, host_end);
    if s.get(c) != Some(&b':') {
        return Some((host, None, host_end));
    }
    let p = lex::skip_ws(s, c + 1);
    let p_end = p + s[p..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len() - p);
    let port = lex::parse_u32(&s[p..p_end]).and_then(|n| u16::try_from(n).ok())?;
    Some((host, Some(port), p_end))
}

impl Message {
    /// Every Via value, top first, across comma lists and repeated fields.
    pub fn vias(&self) -> impl Iterator<Item = Result<Via<'_>, Error>> + '_ {
        self.list_values(HeaderName::Via).map(move |r| {
            let span = r?;
            if span.is_empty() {
                return Err(Error::BadHeader(HeaderName::Via));
            }
            let mut v = Via::parse(self.slice(span))?;
            v.span = span;
            Ok(v)
        })
    }

    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via<'_>, Error> {
        self.vias()
            .next()
            .unwrap_or(Err(Error::MissingHeader(HeaderName::Via)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, Limits};
    use bytes::Bytes;

    fn msg(vias: &str) -> Message {
        let s = format!(
            "OPTIONS sip:a@b SIP/2.0\r\n{vias}To: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    #[test]
    fn tortuous_vias_from_rfc4475_wsinv() {
        let m = msg("Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\nv:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n");
        let v: Vec<_> = m.vias().collect::<Result<_, _>>().unwrap();
        assert_eq!(v.len(), 3);
        assert_eq!(
            (v[0].transport, v[0].host, v[0].branch()),
            (Transport::Udp, &b"192.0.2.2"[..], Some(&b"390skdjuw"[..]))
        );
        assert!(!v[0].is_rfc3261_branch());
        assert_eq!(
            (v[1].transport, v[1].host),
            (Transport::Tcp, &b"spindle.example.com"[..])
        );
        assert_eq!(v[1].branch(), Some(&b"z9hG4bK9ikj8"[..]));
        assert_eq!(v[2].branch(), Some(&b"z9hG4bK30239"[..]));
        assert!(v[2].is_rfc3261_branch());
        assert_eq!(
            m.slice(v[2].span),
            b"SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239"
        );
    }

    #[test]
    fn sent_by_params_and_rport() {
        let m = msg("Via: SIP/2.0/UDP [2001:db8::9:1]:5070;branch=z9hG4bKabc;rport;received=[2001:db8::9:255];maddr=224.2.0.1;ttl=16\r\n");
        let v = m.top_via().unwrap();
        assert_eq!((v.host, v.port), (&b"[2001:db8::9:1]"[..], Some(5070)));
        assert_eq!(v.rport(), Some(None));
        assert_eq!(v.received(), Some(&b"[2001:db8::9:255]"[..]));
        assert_eq!(v.maddr(), Some(&b"224.2.0.1"[..]));
        assert_eq!(v.ttl(), Some(16));
        let m = msg("Via: SIP/2.0/TLS h.example.com;rport=5061;branch=z9hG4bK1\r\n");
        assert_eq!(m.top_via().unwrap().rport(), Some(Some(5061)));
        assert!(m.top_via().unwrap().transport.is_reliable());
    }

    #[test]
    fn unknown_transport_is_kept() {
        let m = msg("Via: SIP/2.0/NOTATRANSPORT h;branch=z9hG4bK1\r\n");
        let v = m.top_via().unwrap();
        assert_eq!(
            (v.transport, v.transport_bytes),
            (Transport::Other, &b"NOTATRANSPORT"[..])
        );
    }

    #[test]
    fn extraneous_separators_are_errors() {
        // RFC 4475 §3.1.2.1 badinv01
        let m = msg("Via: SIP/2.0/UDP 192.0.2.15;;,;,,\r\n");
        assert_eq!(m.top_via(), Err(Error::BadHeader(HeaderName::Via)));
        for bad in [
            "SIP/2.0 h",
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:99999",
            "SIP/2.0/UDP h:",
            "SIP/2.0/UDP [zz]",
        ] {
            assert!(Via::parse(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
