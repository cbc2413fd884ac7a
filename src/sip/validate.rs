//! The Request-URI accessor and `Message::validate`: every typed accessor
//! a proxy relies on, run once, so a request that would trip one of them
//! later is answered with 400 (and the reason) before any state is made.

use super::addr::Contact;
use super::error::Error;
use super::header::HeaderName;
use super::message::Message;
use super::uri::{Uri, UriError};

impl Message {
    /// The Request-URI, parsed. `UnsupportedUriScheme` (416) for a
    /// well-formed URI of a scheme we do not route; `RequestUriHeaders`
    /// when it carries `?headers` (RFC 3261 §19.1.5, RFC 4475 §3.1.2.11);
    /// `BadRequestUriPort` for port 0, which the grammar (`1*DIGIT`)
    /// allows but no request can be sent to (a port is 1–65535).
    pub fn request_uri(&self) -> Result<Uri<'_>, Error> {
        let raw = self.request_uri_bytes().ok_or(Error::BadRequestUri)?;
        let uri = Uri::parse(raw)?;
        if uri.headers.is_some() {
            return Err(Error::RequestUriHeaders);
        }
        if uri.port == Some(0) {
            return Err(Error::BadRequestUriPort);
        }
        Ok(uri)
    }

    /// Parse everything a proxy reads: the Request-URI (an unknown scheme is
    /// not a syntax error: the proxy answers 416 when it routes), every Via
    /// value, From, To, Contact, Route, Record-Route, Max-Forwards and the
    /// option-tag lists. Addresses may use any URI scheme (RFC 4475
    /// §3.3.4), but a `sip:`/`sips:`/`tel:` URI must be well-formed.
    pub fn validate(&self) -> Result<(), Error> {
        if self.is_request() {
            match self.request_uri() {
                Ok(_) | Err(Error::UnsupportedUriScheme) => {}
                Err(e) => return Err(e),
            }
        }
        for v in self.vias() {
            v?;
        }
        check_uri(self.from()?.uri, HeaderName::From)?;
        check_uri(self.to()?.uri, HeaderName::To)?;
        for c in self.contacts() {
            if let Contact::Addr(a) = c? {
                check_uri(a.uri, HeaderName::Contact)?;
            }
        }
        for name in [HeaderName::Route, HeaderName::RecordRoute] {
            for r in self.addr_list(name) {
                check_uri(r?.uri, name)?;
            }
        }
        self.max_forwards()?;
        for name in [
            HeaderName::Supported,
            HeaderName::Require,
            HeaderName::ProxyRequire,
        ] {
            for t in self.tokens(name) {
                t?;
            }
        }
        Ok(())
    }
}

fn check_uri(raw: &[u8], name: HeaderName) -> Result<(), Error> {
    match Uri::parse(raw) {
        Ok(_) | Err(UriError::UnsupportedScheme) => Ok(()),
        Err(UriError::Malformed) => Err(Error::BadHeader(name)),
    }
}

#[cfg(test)]
mod tests {
    use crate::sip::{Error, Framing, HeaderName, Limits, Message};
    use bytes::Bytes;

    fn msg(ruri: &str, extra: &str) -> Message {
        let s = format!(
            "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n{extra}\r\n"
        );
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    #[test]
    fn request_uri_errors_map_to_answers() {
        assert!(msg("sip:a@b", "").request_uri().is_ok());
        assert_eq!(
            msg("sip:2001:db8::10", "").request_uri(),
            Err(Error::BadRequestUri)
        );
        assert_eq!(
            msg("sip:a@b?Route=x", "").request_uri(),
            Err(Error::RequestUriHeaders)
        );
        assert_eq!(
            msg("mailto:a@b", "").request_uri(),
            Err(Error::UnsupportedUriScheme)
        );
        for zero in ["sip:a@b:0", "sips:b:000;lr", "sip:[2001:db8::1]:0"] {
            assert_eq!(
                msg(zero, "").request_uri(),
                Err(Error::BadRequestUriPort),
                "{zero}"
            );
            assert_eq!(msg(zero, "").validate(), Err(Error::BadRequestUriPort));
        }
        assert_eq!(Error::BadRequestUriPort.status(), 400);
        assert_eq!(msg("sip:a@b:1", "").request_uri().unwrap().port, Some(1));
        assert_eq!(msg("mailto:a@b", "").validate(), Ok(()));
    }

    #[test]
    fn validate_reaches_every_header_a_proxy_reads() {
        assert_eq!(msg("sip:a@b", "").validate(), Ok(()));
        let cases = [
            (
                "Via: SIP/2.0/UDP ok;branch=z9hG4bK2, garbage\r\n",
                HeaderName::Via,
            ),
            ("Contact: <sip:a@b:99999>\r\n", HeaderName::Contact),
            ("Route: <sip:p1;lr>, <sip:[zz]>\r\n", HeaderName::Route),
            ("Record-Route: sip:x;lr>\r\n", HeaderName::RecordRoute),
            ("Max-Forwards: 256\r\n", HeaderName::MaxForwards),
            ("Proxy-Require: a b\r\n", HeaderName::ProxyRequire),
        ];
        for (h, name) in cases {
            assert_eq!(
                msg("sip:a@b", h).validate(),
                Err(Error::BadHeader(name)),
                "{h}"
            );
        }
        // Other schemes in addresses are not errors (RFC 4475 §3.3.4).
        assert_eq!(
            msg("sip:a@b", "Contact: <name:John_Smith>\r\n").validate(),
            Ok(())
        );
    }
}
