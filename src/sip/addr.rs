//! name-addr / addr-spec values (RFC 3261 §20.10, §20.20, §20.39, §25.1):
//! From, To, Contact, Route, Record-Route, Path.
//!
//! In addr-spec form (no `<>`) everything after the URI's first `;` is a
//! header parameter, not a URI parameter (RFC 3261 §20, RFC 4475 §3.3.12),
//! and the URI may not contain `,`, `;` or `?` (RFC 4475 §3.1.2.13).

use super::error::Error;
use super::header::HeaderName;
use super::lex::{self, Params};
use super::message::{Message, Span};
use super::uri::{Uri, UriError};

/// One name-addr or addr-spec with its header parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name as received (quoted strings keep their quotes).
    pub display_name: Option<&'a [u8]>,
    /// The URI text (inside `<>` when bracketed).
    pub uri: &'a [u8],
    /// True for name-addr form (`<...>`).
    pub bracketed: bool,
    pub params: Params<'a>,
    /// Where this value sits in the message buffer.
    pub span: Span,
}

impl<'a> NameAddr<'a> {
    /// Parse one value, reporting errors as `BadHeader(name)`.
    pub fn parse(s: &'a [u8], name: HeaderName) -> Result<NameAddr<'a>, Error> {
        let bad = Error::BadHeader(name);
        let s = lex::trim(s);
        let mut display_name = None;
        let lt = if s.first() == Some(&b'"') {
            let q_end = lex::quoted_end(s, 0).ok_or(bad)?;
            display_name = Some(&s[..q_end]);
            let lt = lex::skip_ws(s, q_end);
            if s.get(lt) != Some(&b'<') {
                return Err(bad);
            }
            Some(lt)
        } else {
            match memchr::memchr(b'<', s) {
                Some(lt) => {
                    // display-name = *(token LWS); LWS before '<' is optional
                    // in practice (RFC 4475 §3.1.1.6).
                    let dn = lex::trim(&s[..lt]);
                    if !dn.iter().all(|&b| lex::is_token(b) || lex::is_ws(b)) {
                        return Err(bad);
                    }
                    if !dn.is_empty() {
                        display_name = Some(dn);
                    }
                    Some(lt)
                }
                None => None,
            }
        };
        let (uri, bracketed, rest) = match lt {
            Some(lt) => {
                let gt = lt + memchr::memchr(b'>', &s[lt..]).ok_or(bad)?;
                let uri = &s[lt + 1..gt];
                // No whitespace inside the brackets (RFC 4475 §3.1.2.14).
                if uri.is_empty() || uri.iter().any(|&b| lex::is_ws(b)) {
                    return Err(bad);
                }
                (uri, true, gt + 1)
            }
            None => {
                let end = s
                    .iter()
                    .position(|&b| b == b';' || lex::is_ws(b))
                    .unwrap_or(s.len());
                let uri = &s[..end];
                if uri.is_empty()
                    || uri
                        .iter()
                        .any(|&b| matches!(b, b',' | b'?' | b'"' | b'<' | b'>'))
                {
                    return Err(bad);
                }
                (uri, false, end)
            }
        };
        let params = Params::parse(&s[rest..]).map_err(|()| bad)?;
        Ok(NameAddr {
            display_name,
            uri,
            bracketed,
            params,
            span: Span::default(),
        })
    }

    /// The URI, parsed. Other schemes than sip/sips/tel are
    /// `UnsupportedScheme`: fine in From/To/Contact (RFC 4475 §3.3.4), but
    /// not a place a proxy can send to.
    pub fn uri(&self) -> Result<Uri<'a>, UriError> {
        Uri::parse(self.uri)
    }

    /// The `tag` parameter (From/To).
    pub fn tag(&self) -> Option<&'a [u8]> {
        self.params.get("tag").flatten()
    }

    /// The `expires` parameter (Contact); `Err` if present but not a number.
    pub fn expires(&self) -> Option<Result<u32, Error>> {
        self.params.get("expires").map(|v| {
            v.and_then(lex::parse_u32)
                .ok_or(Error::BadHeader(HeaderName::Contact))
        })
    }

    /// The `q` parameter (Contact) in thousandths: `q=0.5` → 500.
    pub fn q(&self) -> Option<Result<u16, Error>> {
        self.params.get("q").map(|v| {
            v.and_then(parse_qvalue)
                .ok_or(Error::BadHeader(HeaderName::Contact))
        })
    }
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`.
fn parse_qvalue(v: &[u8]) -> Option<u16> {
    let (int, frac) = match memchr::memchr(b'.', v) {
        Some(d) => (&v[..d], &v[d + 1..]),
        None => (v, &b""[..]),
    };
    if frac.len() > 3 || !frac.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut thousandths = 0u16;
    for i in 0..3 {
        thousandths = thousandths * 10 + frac.get(i).map_or(0, |d| u16::from(d - b'0'));
    }
    match int {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A Contact value: `*` or an address (RFC 3261 §20.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contact<'a> {
    Star,
    Addr(NameAddr<'a>),
}

impl Message {
    /// From (RFC 3261 §20.20). A single value: commas belong to it.
    pub fn from(&self) -> Result<NameAddr<'_>, Error> {
        self.single_addr(HeaderName::From)
    }

    /// To (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr<'_>, Error> {
        self.single_addr(HeaderName::To)
    }

    fn single_addr(&self, name: HeaderName) -> Result<NameAddr<'_>, Error> {
        let f = self
            .fields()
            .iter()
            .find(|f| f.name == name)
            .ok_or(Error::MissingHeader(name))?;
        let mut a = NameAddr::parse(self.slice(f.value), name)?;
        a.span = f.value;
        Ok(a)
    }

    /// Every Route value, topmost first.
    pub fn routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + '_ {
        self.addr_list(HeaderName::Route)
    }

    /// Every Record-Route value, topmost first.
    pub fn record_routes(&self) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + '_ {
        self.addr_list(HeaderName::RecordRoute)
    }

    /// Every Path value (RFC 3327).
    pub fn paths(&self) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + '_ {
        self.addr_list(HeaderName::Path)
    }

    /// Every value of a name-addr list header.
    pub fn addr_list(
        &self,
        name: HeaderName,
    ) -> impl Iterator<Item = Result<NameAddr<'_>, Error>> + '_ {
        self.list_values(name).map(move |r| {
            let span = r?;
            let mut a = NameAddr::parse(self.slice(span), name)?;
            a.span = span;
            Ok(a)
        })
    }

    /// Every Contact value; `*` only when it is the sole value.
    pub fn contacts(&self) -> impl Iterator<Item = Result<Contact<'_>, Error>> + '_ {
        let star = {
            let mut vals = self.header_values(HeaderName::Contact);
            match (vals.next(), vals.next()) {
                (Some(b"*"), None) => Some(Ok(Contact::Star)),
                _ => None,
            }
        };
        let list = star.is_none().then(|| {
            self.addr_list(HeaderName::Contact)
                .map(|r| r.map(Contact::Addr))
        });
        star.into_iter().chain(list.into_iter().flatten())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn na(s: &str) -> Result<NameAddr<'_>, Error> {
        NameAddr::parse(s.as_bytes(), HeaderName::To)
    }

    #[test]
    fn forms() {
        let a = na(
            "\"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8",
        )
        .unwrap();
        assert_eq!(a.display_name, Some(&b"\"J Rosenberg \\\\\\\"\""[..]));
        assert_eq!(
            (a.uri, a.bracketed, a.tag()),
            (&b"sip:jdrosen@example.com"[..], true, Some(&b"98asjd8"[..]))
        );
        let a = na("sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n").unwrap();
        assert_eq!(
            (a.uri, a.bracketed, a.tag()),
            (
                &b"sip:vivekg@chair-dnrc.example.com"[..],
                false,
                Some(&b"1918181833n"[..])
            )
        );
        let a = na("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(a.display_name, Some(&b"caller"[..]));
        // addr-spec: the param is a header param (cparam01)
        let a = na("sip:+19725552222@gw1.example.net;unknownparam").unwrap();
        assert_eq!(a.uri, b"sip:+19725552222@gw1.example.net");
        assert!(a.params.contains("unknownparam"));
        // name-addr: the param is a URI param (cparam02)
        let a = na("<sip:+19725552222@gw1.example.net;unknownparam>").unwrap();
        assert_eq!(a.uri, b"sip:+19725552222@gw1.example.net;unknownparam");
        assert!(a.params.is_empty());
        let a = na("isbn:2983792873").unwrap();
        assert_eq!(a.uri, b"isbn:2983792873");
    }

    #[test]
    fn malformed() {
        for s in [
            "\"Mr. J. User <sip:j.user@example.com>",
            "Bell, Alexander <sip:a.g.bell@example.com>;tag=43",
            "\"Watson, Thomas\" < sip:t.watson@example.org >",
            "sip:user@example.com?Route=%3Csip:sip.example.com%3E",
            "<sip:a@b",
            "<sip:a@b>;;",
            "",
        ] {
            assert!(na(s).is_err(), "{s}");
        }
    }

    #[test]
    fn qvalues_and_expires() {
        let a = na("<sip:a@b>;q=0.33;expires=3600").unwrap();
        assert_eq!(a.q(), Some(Ok(330)));
        assert_eq!(a.expires(), Some(Ok(3600)));
        assert_eq!(na("<sip:a@b>;q=1").unwrap().q(), Some(Ok(1000)));
        assert!(na("<sip:a@b>;q=1.5").unwrap().q().unwrap().is_err());
        assert!(na("<sip:a@b>;expires=4294967296")
            .unwrap()
            .expires()
            .unwrap()
            .is_err());
    }
}
