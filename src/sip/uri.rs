//! SIP, SIPS and TEL URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118).
//!
//! [`Uri::parse`] borrows its input and never allocates: every component is
//! a slice of the input, validated left to right by a byte-class table
//! (`lex::Params` then re-walks the parameters to check their structure).
//! Escapes (`%HH`) are validated but kept as received, so a proxy forwards
//! exactly what it was given and decoding happens at most once, only when
//! somebody asks (RFC 4475 §3.1.1.3).

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use super::error::Error;
use super::header::HeaderName;
use super::lex::{parse_u32, Params};

/// The URI schemes a proxy routes on. Anything else is answered with 416
/// (RFC 3261 §8.2.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
}

impl Scheme {
    /// The canonical (lower-case) scheme name, without the colon.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
        }
    }
}

/// The host part of a SIP/SIPS URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host<'a> {
    /// A host name as received (case kept; compare case-insensitively).
    Name(&'a [u8]),
    V4(Ipv4Addr),
    /// The text between the brackets as received, and the address it names
    /// (RFC 5118 §4.10 lets the text differ from the canonical form).
    V6(&'a [u8], Ipv6Addr),
    /// A `tel:` URI has no host.
    None,
}

impl Host<'_> {
    /// The address, when the host is one.
    pub fn ip(&self) -> Option<std::net::IpAddr> {
        match *self {
            Host::V4(a) => Some(a.into()),
            Host::V6(_, a) => Some(a.into()),
            Host::Name(_) | Host::None => None,
        }
    }
}

/// Why a URI was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UriError {
    /// Not a syntactically valid URI of a scheme we handle.
    Malformed,
    /// A well-formed absoluteURI of some other scheme (RFC 3261 §8.2.2.1 → 416).
    UnsupportedScheme,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UriError::Malformed => "malformed URI",
            UriError::UnsupportedScheme => "unsupported URI scheme",
        })
    }
}

impl std::error::Error for UriError {}

/// A Request-URI that fails to parse: 400, or 416 for a foreign scheme.
impl From<UriError> for Error {
    fn from(e: UriError) -> Error {
        match e {
            UriError::Malformed => Error::BadRequestUri,
            UriError::UnsupportedScheme => Error::UnsupportedUriScheme,
        }
    }
}

/// A parsed URI borrowing the input. Escapes are NOT decoded in the stored
/// slices. `PartialEq` is byte-wise structural equality; use
/// [`Uri::equivalent`] for the RFC 3261 §19.1.4 comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    pub scheme: Scheme,
    /// SIP/SIPS: the userinfo user, raw (may contain `;` and escapes, as in
    /// `user;par=u%40example.net`). TEL: the telephone number.
    pub user: Option<&'a [u8]>,
    /// Everything after the first `:` of the userinfo, raw.
    pub password: Option<&'a [u8]>,
    /// `Host::None` for TEL.
    pub host: Host<'a>,
    pub port: Option<u16>,
    /// uri-parameters (TEL: the `par` list), raw, starting at the first `;`.
    pub params: Params<'a>,
    /// The text after `?`, raw (SIP/SIPS only).
    pub headers: Option<&'a [u8]>,
}

/// The scheme of `s` if it starts like an absoluteURI: `ALPHA *( ALPHA /
/// DIGIT / "+" / "-" / "." ) ":"` (RFC 3261 §25.1). Lets a caller tell a
/// foreign scheme (416) from garbage (400).
pub fn scheme_of(s: &[u8]) -> Option<&[u8]> {
    if !s.first()?.is_ascii_alphabetic() {
        return None;
    }
    let end = s
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))?;
    (s[end] == b':').then_some(&s[..end])
}

/// `s` with `%HH` escapes decoded exactly once; borrowed when there are none.
/// A `%` not followed by two hex digits is kept literally.
pub fn percent_decode(s: &[u8]) -> Cow<'_, [u8]> {
    if memchr::memchr(b'%', s).is_none() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(Unescape::new(s).collect())
}

impl<'a> Uri<'a> {
    /// Parse a SIP, SIPS or TEL URI. The input must be exactly the URI: no
    /// angle brackets, no surrounding or embedded whitespace.
    pub fn parse(s: &'a [u8]) -> Result<Uri<'a>, UriError> {
        let name = scheme_of(s).ok_or(UriError::Malformed)?;
        let rest = &s[name.len() + 1..];
        // Scheme names are case-insensitive (RFC 3261 §19.1.1).
        let scheme = if name.eq_ignore_ascii_case(b"sip") {
            Scheme::Sip
        } else if name.eq_ignore_ascii_case(b"sips") {
            Scheme::Sips
        } else if name.eq_ignore_ascii_case(b"tel") {
            Scheme::Tel
        } else if rest.iter().all(|&b| is_opaque(b)) {
            return Err(UriError::UnsupportedScheme);
        } else {
            return Err(UriError::Malformed);
        };
        match scheme {
            Scheme::Tel => parse_tel(rest),
            _ => parse_sip(scheme, rest),
        }
    }

    /// The user with `%HH` escapes decoded exactly once (RFC 4475 §3.1.1.3:
    /// `value%2541` becomes `value%41`). Allocates only if there is a `%`.
    pub fn user_decoded(&self) -> Option<Cow<'a, [u8]>> {
        self.user.map(percent_decode)
    }

    /// A uri-parameter by name (case-insensitive); `Some(None)` for a
    /// parameter without a value such as `;lr`.
    pub fn param(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.params.get(name)
    }

    /// The `transport` parameter (RFC 3261 §19.1.1).
    pub fn transport(&self) -> Option<&'a [u8]> {
        self.param("transport").flatten()
    }

    /// The `maddr` parameter (RFC 3261 §19.1.1).
    pub fn maddr(&self) -> Option<&'a [u8]> {
        self.param("maddr").flatten()
    }

    /// The `user` parameter (`user=phone`, RFC 3261 §19.1.1).
    pub fn user_param(&self) -> Option<&'a [u8]> {
        self.param("user").flatten()
    }

    /// True if the URI carries `;lr`, i.e. names a loose router (RFC 3261 §16.4).
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// 5061 for SIPS, 5060 otherwise (RFC 3261 §19.1.2). A TEL URI has no
    /// transport of its own; it gets 5060 like SIP.
    pub fn default_port(&self) -> u16 {
        match self.scheme {
            Scheme::Sips => 5061,
            _ => 5060,
        }
    }

    /// The explicit port, or the scheme's default.
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or_else(|| self.default_port())
    }

    /// URI equivalence (RFC 3261 §19.1.4 for SIP/SIPS, RFC 3966 §4 for TEL).
    /// Never allocates: escaped and unescaped forms are compared as decoded
    /// byte streams.
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        if self.scheme != other.scheme {
            return false;
        }
        if self.scheme == Scheme::Tel {
            return tel_equivalent(self, other);
        }
        // Userinfo is case-sensitive; everything else is not (§19.1.4).
        opt_eq(self.user, other.user, eq_decoded)
            && opt_eq(self.password, other.password, eq_decoded)
            && host_eq(&self.host, &other.host)
            // An absent port is not the same as the default one (§19.1.4).
            && self.port == other.port
            && params_equivalent(self.params, other.params, false)
            && headers_equivalent(self.headers.unwrap_or(b""), other.headers.unwrap_or(b""))
    }

    /// Append the URI's text: lower-case scheme, then every component as
    /// received (escapes kept). Parsing the output gives an equal `Uri`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.scheme.as_str().as_bytes());
        out.push(b':');
        if let Some(user) = self.user {
            out.extend_from_slice(user);
            if self.scheme != Scheme::Tel {
                if let Some(password) = self.password {
                    out.push(b':');
                    out.extend_from_slice(password);
                }
                out.push(b'@');
            }
        }
        match self.host {
            Host::Name(name) => out.extend_from_slice(name),
            Host::V4(addr) => {
                for (i, octet) in addr.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push(b'.');
                    }
                    push_decimal(out, octet.into());
                }
            }
            Host::V6(text, addr) => {
                out.push(b'[');
                if text.is_empty() {
                    // Only reachable for a hand-built Uri; Vec never fails.
                    let _ = std::io::Write::write_fmt(out, format_args!("{addr}"));
                } else {
                    out.extend_from_slice(text);
                }
                out.push(b']');
            }
            Host::None => {}
        }
        if let Some(port) = self.port {
            out.push(b':');
            push_decimal(out, port);
        }
        out.extend_from_slice(self.params.as_bytes());
        if let Some(headers) = self.headers {
            out.push(b'?');
            out.extend_from_slice(headers);
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

// Byte classes of RFC 3261 §25.1, one bit per context. `%` is in none of
// them: escapes are checked separately by `scan`.
const USER: u8 = 1 << 0; // unreserved / user-unreserved
const PASSWORD: u8 = 1 << 1; // unreserved / "&" / "=" / "+" / "$" / ","
const PARAMS: u8 = 1 << 2; // paramchar plus the ";" and "=" around it
const HEADERS: u8 = 1 << 3; // hnv-unreserved / unreserved plus "&" and "="
const HOST: u8 = 1 << 4; // hostname characters ("_" tolerated)

static CLASS: [u8; 256] = build_classes();

const fn build_classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let alnum = b.is_ascii_alphanumeric();
        // unreserved = alphanum / mark (RFC 3261 §25.1)
        let unreserved = alnum
            || matches!(
                b,
                b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
            );
        let mut class = 0;
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/') {
            class |= USER;
        }
        if unreserved || matches!(b, b'&' | b'=' | b'+' | b'$' | b',') {
            class |= PASSWORD;
        }
        if unreserved
            || matches!(
                b,
                b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b';' | b'='
            )
        {
            class |= PARAMS;
        }
        if unreserved
            || matches!(
                b,
                b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$' | b'&' | b'='
            )
        {
            class |= HEADERS;
        }
        if alnum || matches!(b, b'-' | b'.' | b'_') {
            class |= HOST;
        }
        table[i] = class;
        i += 1;
    }
    table
}

/// The end of the run of `class` bytes and well-formed escapes from `i`.
/// A `%` without two hex digits ends the run, so the caller rejects it.
fn scan(s: &[u8], mut i: usize, class: u8) -> usize {
    while let Some(&b) = s.get(i) {
        if CLASS[usize::from(b)] & class != 0 {
            i += 1;
        } else if b == b'%'
            && s.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && s.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            i += 3;
        } else {
            break;
        }
    }
    i
}

fn all_of(s: &[u8], class: u8) -> bool {
    scan(s, 0, class) == s.len()
}

/// What an absoluteURI of a foreign scheme may contain: visible ASCII
/// without the delimiters that would end it inside a header (§25.1 uric).
fn is_opaque(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'<' | b'>' | b'"')
}

/// `[ userinfo ] hostport uri-parameters [ headers ]` (RFC 3261 §19.1.1).
fn parse_sip(scheme: Scheme, rest: &[u8]) -> Result<Uri<'_>, UriError> {
    // userinfo is whatever precedes the first '@' (RFC 3261 §19.1.1; '@' is
    // legal nowhere else), so a '?' before it belongs to the user (RFC 4475
    // §3.1.1.2). Scanning the user and password classes finds that '@', if
    // the prefix is a valid userinfo, in the same pass that validates it;
    // otherwise the URI has no userinfo, and a stray '@' will fail the
    // hostport/parameter/header scan that follows.
    let end_user = scan(rest, 0, USER);
    let (end_info, password) = match rest.get(end_user) {
        Some(b':') => {
            let end_pw = scan(rest, end_user + 1, PASSWORD);
            (end_pw, Some(&rest[end_user + 1..end_pw]))
        }
        _ => (end_user, None),
    };
    let (user, password, hostport) = if rest.get(end_info) == Some(&b'@') {
        if end_user == 0 {
            return Err(UriError::Malformed);
        }
        (Some(&rest[..end_user]), password, &rest[end_info + 1..])
    } else {
        (None, None, rest)
    };
    let (host, mut i) = parse_host(hostport)?;
    let mut port = None;
    if hostport.get(i) == Some(&b':') {
        let digits = &hostport[i + 1..];
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        // port = 1*DIGIT; it must also fit the transport's 16 bits.
        let p = parse_u32(&digits[..n]).and_then(|p| u16::try_from(p).ok());
        port = Some(p.ok_or(UriError::Malformed)?);
        i += 1 + n;
    }
    let (params, headers) = parse_tail(hostport, i, true)?;
    Ok(Uri {
        scheme,
        user,
        password,
        host,
        port,
        params,
        headers,
    })
}

/// `host` at the start of `s`, and where it ends.
fn parse_host(s: &[u8]) -> Result<(Host<'_>, usize), UriError> {
    if s.first() == Some(&b'[') {
        // IPv6reference (RFC 3261 §25.1, RFC 5118 §4.3: a ":5070" inside
        // the brackets is part of the address, not a port).
        let close = memchr::memchr(b']', s).ok_or(UriError::Malformed)?;
        let text = &s[1..close];
        let addr = parse_v6(text).ok_or(UriError::Malformed)?;
        return Ok((Host::V6(text, addr), close + 1));
    }
    let mut end = 0;
    while let Some(&b) = s.get(end) {
        if CLASS[usize::from(b)] & HOST == 0 {
            break;
        }
        // No empty labels: no leading '.', no ".." (§25.1 hostname); a
        // single trailing dot is allowed.
        if b == b'.' && (end == 0 || s[end - 1] == b'.') {
            return Err(UriError::Malformed);
        }
        end += 1;
    }
    let name = &s[..end];
    let first = *name.first().ok_or(UriError::Malformed)?;
    // A top label cannot start with a digit (§25.1 toplabel), so an
    // all-numeric host must be an IPv4address; "1.2.3.999" is neither.
    if first.is_ascii_digit() && name.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        let addr = parse_v4(name).ok_or(UriError::Malformed)?;
        return Ok((Host::V4(addr), end));
    }
    Ok((Host::Name(name), end))
}

/// Dotted quad, 1-3 digits per octet, each at most 255 (RFC 3261 §25.1).
fn parse_v4(s: &[u8]) -> Option<Ipv4Addr> {
    // The caller has checked that `s` is only digits and dots.
    let mut octets = [0u8; 4];
    let (mut n, mut value, mut digits) = (0, 0u16, 0);
    for &b in s {
        if b == b'.' {
            if digits == 0 || n == 3 {
                return None;
            }
            octets[n] = u8::try_from(value).ok()?;
            (n, value, digits) = (n + 1, 0, 0);
        } else {
            digits += 1;
            if digits > 3 {
                return None;
            }
            value = value * 10 + u16::from(b - b'0');
        }
    }
    if digits == 0 || n != 3 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(Ipv4Addr::from(octets))
}

/// The address between the brackets. RFC 5118 §4.10: the RFC 3261 grammar
/// admits "2001:db8:::192.0.2.1", meaning "2001:db8::192.0.2.1"; std does
/// not, so the ":::" is collapsed in a stack copy first.
fn parse_v6(text: &[u8]) -> Option<Ipv6Addr> {
    let mut buf = [0u8; 64];
    if text.len() > buf.len() {
        return None;
    }
    // A plain search: a memmem Finder costs more than these few bytes.
    let text = match text.windows(3).position(|w| w == b":::") {
        Some(k) => {
            let n = text.len() - 1;
            buf[..k].copy_from_slice(&text[..k]);
            buf[k..n].copy_from_slice(&text[k + 1..]);
            &buf[..n]
        }
        None => text,
    };
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// `*( ";" uri-parameter ) [ "?" headers ]` from `s[i..]`.
fn parse_tail(
    s: &[u8],
    i: usize,
    headers_allowed: bool,
) -> Result<(Params<'_>, Option<&[u8]>), UriError> {
    if i < s.len() && s[i] != b';' && s[i] != b'?' {
        return Err(UriError::Malformed);
    }
    // paramchar excludes '?', so the first '?' ends the parameters.
    let end = scan(s, i, PARAMS);
    // lex::Params checks the `;name[=value]` structure: no empty names or
    // values (RFC 3261 §25.1 pname/pvalue are 1*paramchar).
    let params = Params::parse(&s[i..end]).map_err(|()| UriError::Malformed)?;
    if end == s.len() {
        return Ok((params, None));
    }
    if s[end] != b'?' || !headers_allowed {
        return Err(UriError::Malformed);
    }
    let headers = &s[end + 1..];
    // headers = "?" header *( "&" header ); header = hname "=" hvalue,
    // with a non-empty hname and no '=' inside either (§25.1).
    let well_formed = all_of(headers, HEADERS)
        && headers.split(|&b| b == b'&').all(|h| {
            memchr::memchr(b'=', h)
                .is_some_and(|eq| eq > 0 && memchr::memchr(b'=', &h[eq + 1..]).is_none())
        });
    if !well_formed {
        return Err(UriError::Malformed);
    }
    Ok((params, Some(headers)))
}

/// `telephone-subscriber` (RFC 3966 §3): a global number ("+" then digits
/// and visual separators) or a local one (hex digits, "*", "#",
/// separators), then `;par` parameters. No userinfo, host, port or headers.
fn parse_tel(rest: &[u8]) -> Result<Uri<'_>, UriError> {
    let end = memchr::memchr(b';', rest).unwrap_or(rest.len());
    let number = &rest[..end];
    let (digits, global) = match number.strip_prefix(b"+") {
        Some(d) => (d, true),
        None => (number, false),
    };
    let is_digit = |b: u8| {
        if global {
            b.is_ascii_digit()
        } else {
            b.is_ascii_hexdigit() || b == b'*' || b == b'#'
        }
    };
    let valid = digits
        .iter()
        .all(|&b| is_digit(b) || is_visual_separator(b))
        && digits.iter().any(|&b| is_digit(b));
    if !valid {
        return Err(UriError::Malformed);
    }
    let (params, _) = parse_tail(rest, end, false)?;
    Ok(Uri {
        scheme: Scheme::Tel,
        user: Some(number),
        password: None,
        host: Host::None,
        port: None,
        params,
        headers: None,
    })
}

/// RFC 3966 §3 visual-separator: ignored when numbers are compared.
fn is_visual_separator(b: u8) -> bool {
    matches!(b, b'-' | b'.' | b'(' | b')')
}

/// Decodes `%HH` on the fly so comparisons need no buffer. A `%` that does
/// not start an escape (only possible in a hand-built `Uri`) passes through.
struct Unescape<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Unescape<'a> {
    fn new(s: &'a [u8]) -> Self {
        Unescape { s, i: 0 }
    }
}

impl Iterator for Unescape<'_> {
    type Item = u8;

    fn next(&mut self) -> Option<u8> {
        let b = *self.s.get(self.i)?;
        if b == b'%' {
            let hi = self.s.get(self.i + 1).and_then(|&h| hex_value(h));
            let lo = self.s.get(self.i + 2).and_then(|&l| hex_value(l));
            if let (Some(hi), Some(lo)) = (hi, lo) {
                self.i += 3;
                return Some(hi << 4 | lo);
            }
        }
        self.i += 1;
        Some(b)
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn has_escape(s: &[u8]) -> bool {
    s.contains(&b'%')
}

fn eq_decoded(a: &[u8], b: &[u8]) -> bool {
    a == b || ((has_escape(a) || has_escape(b)) && Unescape::new(a).eq(Unescape::new(b)))
}

fn eq_decoded_ci(a: &[u8], b: &[u8]) -> bool {
    let lower = |s| Unescape::new(s).map(|c: u8| c.to_ascii_lowercase());
    a.eq_ignore_ascii_case(b) || ((has_escape(a) || has_escape(b)) && lower(a).eq(lower(b)))
}

fn opt_eq(a: Option<&[u8]>, b: Option<&[u8]>, eq: fn(&[u8], &[u8]) -> bool) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => eq(a, b),
        _ => false,
    }
}

/// Host names case-insensitively, addresses as addresses: a name never
/// matches an address, even one it resolves to (§19.1.4).
fn host_eq(a: &Host<'_>, b: &Host<'_>) -> bool {
    match (a, b) {
        (Host::Name(a), Host::Name(b)) => a.eq_ignore_ascii_case(b),
        (Host::V4(a), Host::V4(b)) => a == b,
        (Host::V6(_, a), Host::V6(_, b)) => a == b,
        (Host::None, Host::None) => true,
        _ => false,
    }
}

/// How two names or values are compared: case-insensitively, after
/// unescaping. Without a '%' on either side that is a plain ASCII case-fold,
/// so the parameter comparisons pick once which one they need.
type CaseFold = fn(&[u8], &[u8]) -> bool;

/// The first parameter named `name`.
fn lookup<'p>(params: Params<'p>, name: &[u8], eq: CaseFold) -> Option<Option<&'p [u8]>> {
    params.iter().find(|p| eq(p.name, name)).map(|p| p.value)
}

/// §19.1.4: user, ttl, method, maddr and transport must be in both or
/// neither; any other parameter is compared only if both have it. RFC 3966
/// §4 (`tel`): every parameter must be in both.
fn params_equivalent(a: Params<'_>, b: Params<'_>, tel: bool) -> bool {
    let escaped = has_escape(a.as_bytes()) || has_escape(b.as_bytes());
    let eq: CaseFold = if escaped {
        eq_decoded_ci
    } else {
        <[u8]>::eq_ignore_ascii_case
    };
    match (params_one_way(a, b, tel, eq), params_one_way(b, a, tel, eq)) {
        (Some(x), Some(y)) => tel || x == y,
        _ => false,
    }
}

/// Each parameter of `a` against `b`: `None` on a conflict, otherwise the
/// set of must-match names `a` has (bit i for `MUST_MATCH[i]`). Only the
/// first occurrence of a name counts, on both sides, so that a URI with a
/// repeated name is still equivalent to itself.
fn params_one_way(a: Params<'_>, b: Params<'_>, tel: bool, eq: CaseFold) -> Option<u8> {
    const MUST_MATCH: [&[u8]; 5] = [b"user", b"ttl", b"method", b"maddr", b"transport"];
    let mut must_match = 0u8;
    for (k, p) in a.iter().enumerate() {
        if let Some(i) = MUST_MATCH.iter().position(|n| eq(p.name, n)) {
            must_match |= 1 << i;
        }
        if a.iter().take(k).any(|q| eq(q.name, p.name)) {
            continue;
        }
        let matches = match (p.value, lookup(b, p.name, eq)) {
            (_, None) => !tel,
            (None, Some(None)) => true,
            (Some(x), Some(Some(y))) => {
                // RFC 3966 §4: ext, and a phone-context that is a number, are
                // compared digit by digit without visual separators.
                let digits =
                    eq(p.name, b"ext") || (eq(p.name, b"phone-context") && x.starts_with(b"+"));
                if tel && digits {
                    tel_digits_eq(x, y)
                } else {
                    eq(x, y)
                }
            }
            _ => false,
        };
        if !matches {
            return None;
        }
    }
    Some(must_match)
}

/// §19.1.4: every header must be in both, in any order. Names are matched
/// case-insensitively (compact forms too); values exactly, after unescaping.
fn headers_equivalent(a: &[u8], b: &[u8]) -> bool {
    fn fields(h: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
        h.split(|&c| c == b'&')
            .filter(|f| !f.is_empty())
            .map(|f| match memchr::memchr(b'=', f) {
                Some(eq) => (&f[..eq], &f[eq + 1..]),
                None => (f, &b""[..]),
            })
    }
    fn name_eq(a: &[u8], b: &[u8]) -> bool {
        eq_decoded_ci(a, b) || {
            let (x, y) = (HeaderName::from_bytes(a), HeaderName::from_bytes(b));
            x == y && x != HeaderName::Other
        }
    }
    let contains = |h: &[u8], (n, v): (&[u8], &[u8])| {
        fields(h).any(|(m, w)| name_eq(n, m) && eq_decoded(v, w))
    };
    a == b
        || (fields(a).count() == fields(b).count()
            && fields(a).all(|f| contains(b, f))
            && fields(b).all(|f| contains(a, f)))
}

/// RFC 3966 §4: both global or both local, same digits ignoring visual
/// separators and case, same parameters.
fn tel_equivalent(a: &Uri<'_>, b: &Uri<'_>) -> bool {
    let (x, y) = (a.user.unwrap_or(b""), b.user.unwrap_or(b""));
    x.starts_with(b"+") == y.starts_with(b"+")
        && tel_digits_eq(x, y)
        && params_equivalent(a.params, b.params, true)
}

fn tel_digits_eq(a: &[u8], b: &[u8]) -> bool {
    let x = Unescape::new(a)
        .filter(|&c| !is_visual_separator(c))
        .map(|c| c.to_ascii_lowercase());
    let y = Unescape::new(b)
        .filter(|&c| !is_visual_separator(c))
        .map(|c| c.to_ascii_lowercase());
    x.eq(y)
}

/// Decimal without `format!`, for the serializer.
fn push_decimal(out: &mut Vec<u8>, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[cfg(test)]
#[path = "uri_tests.rs"]
mod tests;
