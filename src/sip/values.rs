//! Scalar and token-list header values: Max-Forwards, Expires, Content-Type,
//! Supported, Require, Proxy-Require, Allow (RFC 3261 §20).

use super::error::Error;
use super::header::HeaderName;
use super::lex;
use super::message::Message;

impl Message {
    /// Max-Forwards (RFC 3261 §20.22): `Ok(None)` when absent. Leading zeros
    /// are fine (RFC 4475 §3.1.1.1); values above 255 are an error.
    pub fn max_forwards(&self) -> Result<Option<u8>, Error> {
        self.header(HeaderName::MaxForwards)
            .map(|v| {
                lex::parse_u32(v)
                    .and_then(|n| u8::try_from(n).ok())
                    .ok_or(Error::BadHeader(HeaderName::MaxForwards))
            })
            .transpose()
    }

    /// Expires (RFC 3261 §20.19), delta-seconds below 2^32.
    pub fn expires(&self) -> Result<Option<u32>, Error> {
        self.header(HeaderName::Expires)
            .map(|v| lex::parse_u32(v).ok_or(Error::BadHeader(HeaderName::Expires)))
            .transpose()
    }

    /// The media type of Content-Type without parameters, e.g. `application/sdp`.
    pub fn content_type(&self) -> Option<&[u8]> {
        let v = self.header(HeaderName::ContentType)?;
        let end = memchr::memchr(b';', v).unwrap_or(v.len());
        Some(lex::trim(&v[..end]))
    }

    /// The option tags or method names of every field with this name
    /// (Supported, Require, Proxy-Require, Unsupported, Allow).
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        self.list_values(name).filter_map(move |r| match r {
            Ok(span) if span.is_empty() => None, // `Supported:` may be empty
            Ok(span) if lex::is_token_str(self.slice(span)) => Some(Ok(self.slice(span))),
            _ => Some(Err(Error::BadHeader(name))),
        })
    }

    pub fn supported(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        self.tokens(HeaderName::Supported)
    }

    pub fn require(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        self.tokens(HeaderName::Require)
    }

    pub fn proxy_require(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        self.tokens(HeaderName::ProxyRequire)
    }

    pub fn allow(&self) -> impl Iterator<Item = Result<&[u8], Error>> + '_ {
        self.tokens(HeaderName::Allow)
    }
}

#[cfg(test)]
mod tests {
    use crate::sip::{Error, Framing, HeaderName, Limits, Message};
    use bytes::Bytes;

    fn msg(extra: &str) -> Message {
        let s = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    #[test]
    fn scalars() {
        assert_eq!(msg("Max-Forwards: 0068\r\n").max_forwards(), Ok(Some(68)));
        assert_eq!(msg("").max_forwards(), Ok(None));
        assert_eq!(
            msg("Max-Forwards: 300\r\n").max_forwards(),
            Err(Error::BadHeader(HeaderName::MaxForwards))
        );
        assert_eq!(msg("Expires: 3600\r\n").expires(), Ok(Some(3600)));
        assert!(msg("Expires: 10000000000000000\r\n").expires().is_err());
        assert_eq!(
            msg("c: application/sdp ; charset=x\r\n").content_type(),
            Some(&b"application/sdp"[..])
        );
    }

    #[test]
    fn token_lists() {
        let m = msg("Require: nothingSpecial, foo\r\nProxy-Require: noOtherProxiesSupportThisEither\r\nSupported:\r\nk: 100rel\r\nAllow: INVITE, ACK,BYE\r\n");
        let r: Vec<_> = m.require().collect::<Result<_, _>>().unwrap();
        assert_eq!(r, vec![&b"nothingSpecial"[..], b"foo"]);
        assert_eq!(m.proxy_require().count(), 1);
        let s: Vec<_> = m.supported().collect::<Result<_, _>>().unwrap();
        assert_eq!(s, vec![&b"100rel"[..]]);
        assert_eq!(m.allow().count(), 3);
        assert!(msg("Require: a b\r\n").require().any(|r| r.is_err()));
    }
}
