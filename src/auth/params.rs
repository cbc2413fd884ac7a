//! Parsing `Digest` credentials and challenges (RFC 7616 §3.3, §3.4;
//! RFC 3261 §25.1 `credentials` / `challenge`): the scheme, then
//! comma-separated `name=value` auth-params whose values are tokens or
//! quoted strings (with backslash quoted-pairs).
//!
//! Bounded and total: a header over 8 KiB, a value over 1 KiB or more than
//! 32 parameters is refused, and no input panics. A parameter given twice
//! is refused too, rather than letting the first or the last one win.

use std::borrow::Cow;

use super::Algorithm;
use crate::sip::lex::{is_ws, quoted_end, skip_ws, token_end, unquote};

/// Longest header value handled.
const MAX_HEADER: usize = 8 * 1024;
/// Longest parameter value (a long `uri` still fits).
pub(crate) const MAX_VALUE: usize = 1024;
/// Most parameters in one header.
const MAX_PARAMS: usize = 32;

/// A parameter value, unquoted.
type Value<'a> = Cow<'a, [u8]>;

/// The auth-params after `Digest`, in a header value.
pub(crate) fn digest_params(value: &[u8]) -> Result<&[u8], &'static str> {
    if value.len() > MAX_HEADER {
        return Err("header too long");
    }
    let start = skip_ws(value, 0);
    let end = token_end(value, start);
    let scheme = value.get(start..end).unwrap_or_default();
    if !scheme.eq_ignore_ascii_case(b"digest") {
        return Err("not a Digest header");
    }
    // The scheme is followed by whitespace (`LWS` in RFC 3261 §25.1).
    match value.get(end) {
        Some(&b) if is_ws(b) => Ok(&value[end..]),
        Some(_) => Err("not a Digest header"),
        None => Ok(&[]),
    }
}

/// Calls `f(name, value)` for each auth-param, in order.
pub(crate) fn for_each_param<'a>(
    s: &'a [u8],
    mut f: impl FnMut(&'a [u8], Value<'a>) -> Result<(), &'static str>,
) -> Result<(), &'static str> {
    let mut i = 0;
    let mut count = 0;
    loop {
        i = skip_ws(s, i);
        let Some(&b) = s.get(i) else {
            return Ok(());
        };
        // Empty list elements are allowed (RFC 7230 §7 `#rule`).
        if b == b',' {
            i += 1;
            continue;
        }
        let name_end = token_end(s, i);
        if name_end == i {
            return Err("bad parameter name");
        }
        let name = &s[i..name_end];
        i = skip_ws(s, name_end);
        if s.get(i) != Some(&b'=') {
            return Err("parameter without value");
        }
        i = skip_ws(s, i + 1);
        let (value, end) = match s.get(i) {
            Some(b'"') => {
                let end = quoted_end(s, i).ok_or("unterminated quoted string")?;
                // The raw length bounds the unquoted one: check before
                // copying anything.
                if end - i > MAX_VALUE + 2 {
                    return Err("parameter too long");
                }
                (unquote(&s[i..end]), end)
            }
            Some(_) => {
                let end = token_end(s, i);
                if end == i {
                    return Err("bad parameter value");
                }
                if end - i > MAX_VALUE {
                    return Err("parameter too long");
                }
                (Cow::Borrowed(&s[i..end]), end)
            }
            None => return Err("parameter without value"),
        };
        count += 1;
        if count > MAX_PARAMS {
            return Err("too many parameters");
        }
        f(name, value)?;
        i = skip_ws(s, end);
        match s.get(i) {
            None => return Ok(()),
            Some(b',') => i += 1,
            Some(_) => return Err("expected comma"),
        }
    }
}

/// `name` in lowercase, in `buf` (no allocation per parameter); a name
/// longer than any known one comes back empty, and so matches nothing.
fn lower<'b>(name: &[u8], buf: &'b mut [u8; 16]) -> &'b [u8] {
    let Some(dst) = buf.get_mut(..name.len()) else {
        return &[];
    };
    for (d, s) in dst.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    dst
}

/// Stores `value` into an empty slot; a second one is an error.
fn set<'a>(slot: &mut Option<Value<'a>>, value: Value<'a>) -> Result<(), &'static str> {
    if slot.is_some() {
        return Err("duplicate parameter");
    }
    *slot = Some(value);
    Ok(())
}

/// The parameters of `Authorization` / `Proxy-Authorization: Digest ...`
/// that verification uses, as received (unknown ones are ignored, as
/// RFC 7616 §3.4 asks).
#[derive(Default, Debug)]
pub(crate) struct RawCredentials<'a> {
    pub(crate) username: Option<Value<'a>>,
    pub(crate) realm: Option<Value<'a>>,
    pub(crate) nonce: Option<Value<'a>>,
    pub(crate) uri: Option<Value<'a>>,
    pub(crate) response: Option<Value<'a>>,
    pub(crate) algorithm: Option<Value<'a>>,
    pub(crate) cnonce: Option<Value<'a>>,
    pub(crate) opaque: Option<Value<'a>>,
    pub(crate) qop: Option<Value<'a>>,
    pub(crate) nc: Option<Value<'a>>,
    pub(crate) userhash: Option<Value<'a>>,
}

impl<'a> RawCredentials<'a> {
    pub(crate) fn parse(value: &'a [u8]) -> Result<RawCredentials<'a>, &'static str> {
        let mut c = RawCredentials::default();
        for_each_param(digest_params(value)?, |name, v| {
            let slot = match lower(name, &mut [0; 16]) {
                b"username" => &mut c.username,
                b"realm" => &mut c.realm,
                b"nonce" => &mut c.nonce,
                b"uri" => &mut c.uri,
                b"response" => &mut c.response,
                b"algorithm" => &mut c.algorithm,
                b"cnonce" => &mut c.cnonce,
                b"opaque" => &mut c.opaque,
                b"qop" => &mut c.qop,
                b"nc" => &mut c.nc,
                b"userhash" => &mut c.userhash,
                _ => return Ok(()),
            };
            set(slot, v)
        })?;
        Ok(c)
    }

    /// Checks the parameters a verifier needs (the realm was looked at
    /// first, by the caller).
    pub(crate) fn into_checked(self) -> Result<Credentials<'a>, &'static str> {
        let username = self.username.ok_or("missing username")?;
        let nonce = self.nonce.ok_or("missing nonce")?;
        let uri = self.uri.ok_or("missing uri")?;
        let response = self.response.ok_or("missing response")?;
        // RFC 7616 §3.4: absent means MD5 (RFC 2617 compatibility).
        let (algorithm, sess) = match self.algorithm {
            None => (Algorithm::Md5, false),
            Some(a) => Algorithm::parse_sess(&a).ok_or("unsupported algorithm")?,
        };
        if let Some(u) = &self.userhash {
            if u.eq_ignore_ascii_case(b"true") {
                return Err("userhash not supported");
            }
        }
        let qop = match self.qop {
            None => None,
            Some(q) if q.eq_ignore_ascii_case(b"auth") => {
                let nc_text = self.nc.ok_or("missing nc")?;
                let nc = parse_nc(&nc_text).ok_or("bad nc")?;
                let cnonce = self.cnonce.ok_or("missing cnonce")?;
                Some(Qop {
                    nc,
                    nc_text,
                    cnonce,
                })
            }
            Some(_) => return Err("unsupported qop"),
        };
        // RFC 7616 §3.4.2: the -sess HA1 is keyed with the cnonce.
        if sess && qop.is_none() {
            return Err("missing cnonce");
        }
        if response.is_empty() || !response.iter().all(u8::is_ascii_hexdigit) {
            return Err("response not hex");
        }
        if response.len() != algorithm.hex_len() {
            return Err("bad response length");
        }
        Ok(Credentials {
            username,
            nonce,
            uri,
            response,
            algorithm,
            sess,
            qop,
        })
    }
}

/// Credentials with everything verification needs present and well-formed.
pub(crate) struct Credentials<'a> {
    pub(crate) username: Value<'a>,
    pub(crate) nonce: Value<'a>,
    pub(crate) uri: Value<'a>,
    /// Hex digits of the algorithm's length, either case.
    pub(crate) response: Value<'a>,
    pub(crate) algorithm: Algorithm,
    /// `MD5-sess` / `SHA-256-sess`.
    pub(crate) sess: bool,
    /// Present for `qop=auth`, absent for the RFC 2069 form.
    pub(crate) qop: Option<Qop<'a>>,
}

pub(crate) struct Qop<'a> {
    pub(crate) nc: u32,
    /// The count as sent: the response hashes this text.
    pub(crate) nc_text: Value<'a>,
    pub(crate) cnonce: Value<'a>,
}

/// `nc-value = 8LHEX` (RFC 7616 §3.4; either case accepted).
fn parse_nc(s: &[u8]) -> Option<u32> {
    if s.len() != 8 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        let d = char::from(b).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

/// The parameters of a `WWW-Authenticate` / `Proxy-Authenticate: Digest`
/// challenge that a client needs.
#[derive(Default, Debug)]
pub(crate) struct Challenge<'a> {
    pub(crate) realm: Option<Value<'a>>,
    pub(crate) nonce: Option<Value<'a>>,
    pub(crate) algorithm: Option<Value<'a>>,
    pub(crate) qop: Option<Value<'a>>,
    pub(crate) opaque: Option<Value<'a>>,
    pub(crate) stale: Option<Value<'a>>,
}

impl<'a> Challenge<'a> {
    pub(crate) fn parse(value: &'a [u8]) -> Result<Challenge<'a>, &'static str> {
        let mut c = Challenge::default();
        for_each_param(digest_params(value)?, |name, v| {
            let slot = match lower(name, &mut [0; 16]) {
                b"realm" => &mut c.realm,
                b"nonce" => &mut c.nonce,
                b"algorithm" => &mut c.algorithm,
                b"qop" => &mut c.qop,
                b"opaque" => &mut c.opaque,
                b"stale" => &mut c.stale,
                _ => return Ok(()),
            };
            set(slot, v)
        })?;
        Ok(c)
    }

    /// True if the `qop` list (`"auth,auth-int"`) offers `auth`.
    pub(crate) fn offers_auth(qop: &[u8]) -> bool {
        qop.split(|&b| b == b',')
            .any(|q| crate::sip::lex::trim(q).eq_ignore_ascii_case(b"auth"))
    }
}

/// Appends `s` as a quoted string: `"` and `\` escaped; CR and LF, which
/// no quoted-pair may carry (RFC 3261 §25.1), are dropped so a value can
/// never start a new header line.
pub(crate) fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\r' | '\n' => {}
            _ => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(s: &str) -> Result<Vec<(String, String)>, &'static str> {
        let mut out = Vec::new();
        for_each_param(s.as_bytes(), |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            ));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn tokens_quoted_strings_and_escapes() {
        let p = params(r#" a=1 ,b = "x, \"y\" \\z",, c="" , "#).unwrap();
        assert_eq!(
            p,
            [
                ("a".into(), "1".into()),
                ("b".into(), r#"x, "y" \z"#.into()),
                ("c".into(), String::new()),
            ]
        );
        assert_eq!(params("").unwrap(), []);
        assert_eq!(params("a=1 b=2"), Err("expected comma"));
        assert_eq!(params("a"), Err("parameter without value"));
        assert_eq!(params("a="), Err("parameter without value"));
        assert_eq!(params("=1"), Err("bad parameter name"));
        assert_eq!(params("a=\"1"), Err("unterminated quoted string"));
        assert_eq!(params("a=<x>"), Err("bad parameter value"));
    }

    #[test]
    fn limits() {
        let long = "x".repeat(MAX_VALUE + 1);
        assert_eq!(params(&format!("a={long}")), Err("parameter too long"));
        assert_eq!(params(&format!("a=\"{long}\"")), Err("parameter too long"));
        assert!(params(&format!("a=\"{}\"", &long[1..])).is_ok());
        let many = (0..=MAX_PARAMS)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(params(&many), Err("too many parameters"));
        let huge = format!("Digest a=1{}", " ".repeat(MAX_HEADER));
        assert_eq!(digest_params(huge.as_bytes()), Err("header too long"));
    }

    #[test]
    fn scheme() {
        assert!(digest_params(b"Digest a=1").is_ok());
        assert!(digest_params(b"  dIgEsT\r\n a=1").is_ok());
        assert_eq!(
            digest_params(b"Basic QWxhZGRpbg=="),
            Err("not a Digest header")
        );
        assert_eq!(digest_params(b"Digesta=1"), Err("not a Digest header"));
        assert_eq!(digest_params(b"Digest,a=1"), Err("not a Digest header"));
        assert_eq!(digest_params(b""), Err("not a Digest header"));
    }

    #[test]
    fn duplicates_are_refused() {
        let r = RawCredentials::parse(b"Digest username=\"a\", USERNAME=\"b\"");
        assert_eq!(r.err(), Some("duplicate parameter"));
    }

    #[test]
    fn nc_is_eight_hex_digits() {
        assert_eq!(parse_nc(b"00000001"), Some(1));
        assert_eq!(parse_nc(b"0000001F"), Some(31));
        assert_eq!(parse_nc(b"ffffffff"), Some(u32::MAX));
        assert_eq!(parse_nc(b"1"), None);
        assert_eq!(parse_nc(b"000000001"), None);
        assert_eq!(parse_nc(b"0000000g"), None);
        assert_eq!(parse_nc(b"+0000001"), None);
    }

    #[test]
    fn qop_lists() {
        assert!(Challenge::offers_auth(b"auth"));
        assert!(Challenge::offers_auth(b"auth-int, auth"));
        assert!(!Challenge::offers_auth(b"auth-int"));
    }

    #[test]
    fn quoting_escapes_and_drops_line_breaks() {
        let mut s = String::new();
        push_quoted(&mut s, "a\"b\\c\r\nd");
        assert_eq!(s, r#""a\"b\\cd""#);
    }
}
