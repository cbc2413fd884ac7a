//! Lexical pieces shared by the header parsers (RFC 3261 §25.1): tokens,
//! linear whitespace, quoted strings, comma lists and `;name=value` params.
//!
//! Header values handed to these functions may still contain folded line
//! breaks (CRLF followed by SP/HT); they are treated as whitespace, which is
//! what RFC 3261 §7.3.1 says unfolding means.

/// Character classes, one bit each, looked up in a 256-entry table: a
/// branch-free test per byte on the parser's hottest loops.
const TOKEN: u8 = 1;
const PARAM: u8 = 2;
const WS: u8 = 4;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let token = matches!(b,
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9'
            | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~');
        let param = token || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'$' | b'(' | b')');
        let ws = matches!(b, b' ' | b'\t' | b'\r' | b'\n');
        let mut class = 0;
        if token {
            class |= TOKEN;
        }
        if param {
            class |= PARAM;
        }
        if ws {
            class |= WS;
        }
        t[i] = class;
        i += 1;
    }
    t
};

/// `token` characters (RFC 3261 §25.1).
#[inline(always)]
pub(crate) fn is_token(b: u8) -> bool {
    CLASS[b as usize] & TOKEN != 0
}

/// Characters of an unquoted parameter name or value: `token` plus the
/// URI `paramchar` extras `[ ] / : & $ ( )` (RFC 3261 §19.1.1, §25.1), so
/// one parser serves URI parameters and header parameters (whose `host`
/// values include IPv6 references, with or without brackets: RFC 5118 §4.5).
#[inline(always)]
pub(crate) fn is_param_char(b: u8) -> bool {
    CLASS[b as usize] & PARAM != 0
}

/// Whitespace inside a (possibly folded) header value.
#[inline(always)]
pub(crate) fn is_ws(b: u8) -> bool {
    CLASS[b as usize] & WS != 0
}

/// Skip whitespace from `i`.
#[inline]
pub(crate) fn skip_ws(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    i + rest.iter().position(|&b| !is_ws(b)).unwrap_or(rest.len())
}

/// Trim whitespace at both ends.
pub(crate) fn trim(s: &[u8]) -> &[u8] {
    let start = skip_ws(s, 0);
    let mut end = s.len();
    while end > start && is_ws(s[end - 1]) {
        end -= 1;
    }
    &s[start..end]
}

/// The end of a run of token characters starting at `i`.
#[inline]
pub(crate) fn token_end(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&b| !is_token(b))
        .unwrap_or(rest.len())
}

/// The end of a run of [`is_param_char`] characters starting at `i`.
#[inline]
pub(crate) fn param_end(s: &[u8], i: usize) -> usize {
    let rest = s.get(i..).unwrap_or_default();
    i + rest
        .iter()
        .position(|&b| !is_param_char(b))
        .unwrap_or(rest.len())
}

/// True if `s` is a non-empty token.
pub(crate) fn is_token_str(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_token(b))
}

/// Given `s[i] == b'"'`, the index just past the closing quote. Quoted-pairs
/// (`\` + any octet but CR/LF) are honoured; any other octet is allowed
/// inside, so UTF-8 and raw NUL/BEL/DEL survive (RFC 4475 §3.1.1.2).
pub(crate) fn quoted_end(s: &[u8], i: usize) -> Option<usize> {
    debug_assert_eq!(s.get(i), Some(&b'"'));
    let mut j = i + 1;
    while j < s.len() {
        match s[j] {
            b'"' => return Some(j + 1),
            b'\\' => {
                let next = *s.get(j + 1)?;
                if next == b'\r' || next == b'\n' {
                    return None;
                }
                j += 2;
            }
            _ => j += 1,
        }
    }
    None
}

/// Decimal digits only (leading zeros fine), at most `u32::MAX`.
pub(crate) fn parse_u32(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(b - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    u32::try_from(v).ok()
}

/// Splits a header value at commas that are outside quoted strings and
/// angle brackets. Yields each element trimmed, as a range into the value,
/// so callers can turn it back into a span of the message.
#[derive(Clone)]
pub(crate) struct CommaSplit<'a> {
    s: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> CommaSplit<'a> {
    pub(crate) fn new(s: &'a [u8]) -> Self {
        CommaSplit {
            s,
            pos: 0,
            done: false,
        }
    }
}

/// One element of a comma list: its range in the value, or an error when a
/// quoted string or `<` was never closed.
pub(crate) type Element = Result<std::ops::Range<usize>, ()>;

impl Iterator for CommaSplit<'_> {
    type Item = Element;

    fn next(&mut self) -> Option<Element> {
        if self.done {
            return None;
        }
        let s = self.s;
        let start = self.pos;
        let mut i = start;
        // Jump from one byte that matters to the next: `"` opens a quoted
        // string, `<` a URI that runs to `>`, `,` ends the element.
        while let Some(k) = memchr::memchr3(b'"', b'<', b',', &s[i..]) {
            i += k;
            let end = match s[i] {
                b'"' => quoted_end(s, i),
                b'<' => memchr::memchr(b'>', &s[i..]).map(|e| i + e + 1),
                _ => break,
            };
            match end {
                Some(e) => i = e,
                None => {
                    self.done = true;
                    return Some(Err(()));
                }
            }
        }
        if i >= s.len() || s[i] != b',' {
            i = s.len();
            self.done = true;
        }
        self.pos = i + 1;
        let a = skip_ws(s, start);
        let mut b = i;
        while b > a && is_ws(s[b - 1]) {
            b -= 1;
        }
        Some(Ok(a..b))
    }
}

/// A parameter looked up by [`Params::parse_find`]: `Some(None)` when it
/// is present without a value.
pub(crate) type Found<'a> = Option<Option<&'a [u8]>>;

/// `*( SEMI generic-param )` as received: validated once, iterated on demand.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    raw: &'a [u8],
}

/// One `name[=value]` parameter. `value` keeps quotes if it was quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a [u8],
    pub value: Option<&'a [u8]>,
}

impl<'a> Params<'a> {
    /// Validate `raw`, which must be empty or start with `;` (after
    /// whitespace). Names and unquoted values are runs of
    /// [`is_param_char`]; values may also be quoted strings; whitespace may
    /// surround `;` and `=`.
    pub(crate) fn parse(raw: &'a [u8]) -> Result<Params<'a>, ()> {
        let p = Params { raw };
        let mut it = p.iter_checked();
        for r in &mut it {
            r?;
        }
        Ok(p)
    }

    /// [`Params::parse`] that also returns the first parameter named
    /// `name` (ASCII case-insensitive), found in the same pass.
    pub(crate) fn parse_find(raw: &'a [u8], name: &str) -> Result<(Params<'a>, Found<'a>), ()> {
        let p = Params { raw };
        let mut found = None;
        for r in p.iter_checked() {
            let param = r?;
            if found.is_none() && param.name.eq_ignore_ascii_case(name.as_bytes()) {
                found = Some(param.value);
            }
        }
        Ok((p, found))
    }

    /// A `Params` with nothing in it.
    pub const fn empty() -> Params<'static> {
        Params { raw: b"" }
    }

    /// The raw bytes, starting at the first `;` (or empty).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.raw
    }

    pub fn is_empty(&self) -> bool {
        trim(self.raw).is_empty()
    }

    /// Every parameter, in order.
    pub fn iter(&self) -> impl Iterator<Item = Param<'a>> + 'a {
        // Validated at construction, so errors cannot occur here.
        self.iter_checked().map_while(Result::ok)
    }

    /// The first parameter with this name (case-insensitive).
    /// `Some(None)` is a parameter without a value, like `;lr`.
    pub fn get(&self, name: &str) -> Option<Option<&'a [u8]>> {
        self.iter()
            .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
            .map(|p| p.value)
    }

    /// True if a parameter with this name is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn iter_checked(&self) -> ParamIter<'a> {
        ParamIter { s: self.raw, i: 0 }
    }
}

impl std::fmt::Debug for Params<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Params({:?})", String::from_utf8_lossy(self.raw))
    }
}

struct ParamIter<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for ParamIter<'a> {
    type Item = Result<Param<'a>, ()>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let mut i = skip_ws(s, self.i);
        if i >= s.len() {
            return None;
        }
        if s[i] != b';' {
            self.i = s.len();
            return Some(Err(()));
        }
        i = skip_ws(s, i + 1);
        let name_end = param_end(s, i);
        if name_end == i {
            self.i = s.len();
            return Some(Err(()));
        }
        let name = &s[i..name_end];
        i = skip_ws(s, name_end);
        let mut value = None;
        if i < s.len() && s[i] == b'=' {
            i = skip_ws(s, i + 1);
            let v_end = match s.get(i) {
                Some(b'"') => quoted_end(s, i),
                _ => Some(param_end(s, i)).filter(|&e| e > i),
            };
            let Some(v_end) = v_end else {
                self.i = s.len();
                return Some(Err(()));
            };
            value = Some(&s[i..v_end]);
            i = v_end;
        }
        self.i = i;
        // The next thing must be another `;` or the end.
        let after = skip_ws(s, i);
        if after < s.len() && s[after] != b';' {
            self.i = s.len();
            return Some(Err(()));
        }
        Some(Ok(Param { name, value }))
    }
}

/// Removes the quotes and quoted-pair backslashes of a quoted string.
pub fn unquote(v: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if v.len() < 2 || v[0] != b'"' || v[v.len() - 1] != b'"' {
        return std::borrow::Cow::Borrowed(v);
    }
    let inner = &v[1..v.len() - 1];
    if !inner.contains(&b'\\') {
        return std::borrow::Cow::Borrowed(inner);
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 1 < inner.len() {
            i += 1;
        }
        out.push(inner[i]);
        i += 1;
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u32_parsing() {
        assert_eq!(parse_u32(b"0009"), Some(9));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        assert_eq!(parse_u32(b"4294967296"), None);
        assert_eq!(parse_u32(b"00000000000000000000000042"), Some(42));
        assert_eq!(parse_u32(b"-1"), None);
        assert_eq!(parse_u32(b""), None);
        assert_eq!(parse_u32(b"12a"), None);
        assert_eq!(parse_u32(b"99999999999999999999"), None);
    }

    #[test]
    fn comma_split_respects_quotes_and_brackets() {
        let v = br#""a, b" <sip:x@y;p=1,2>;q=1 , <sip:z> ,"#;
        let parts: Vec<_> = CommaSplit::new(v).map(|r| &v[r.unwrap()]).collect();
        assert_eq!(
            parts,
            vec![&br#""a, b" <sip:x@y;p=1,2>;q=1"#[..], b"<sip:z>", b""]
        );
        assert!(CommaSplit::new(b"\"open, x").any(|r| r.is_err()));
        assert!(CommaSplit::new(b"<sip:open, x").any(|r| r.is_err()));
    }

    #[test]
    fn params_with_lws_and_quotes() {
        let p = Params::parse(b" ;   tag    = 1918181833n ; lr;x=\"a;b\"").unwrap();
        let v: Vec<_> = p.iter().collect();
        assert_eq!(v.len(), 3);
        assert_eq!(p.get("TAG"), Some(Some(&b"1918181833n"[..])));
        assert_eq!(p.get("lr"), Some(None));
        assert_eq!(p.get("x"), Some(Some(&b"\"a;b\""[..])));
        assert_eq!(p.get("nope"), None);
        assert!(Params::parse(b";;").is_err());
        assert!(Params::parse(b";a=").is_err());
        assert!(Params::parse(b";a b").is_err());
        assert!(Params::parse(b";received=[2001:db8::9:255]").is_ok());
        assert!(Params::parse(b";received=2001:db8::9:255").is_ok());
        assert_eq!(
            Params::parse(b";ext=1(23);x=a/b").unwrap().get("ext"),
            Some(Some(&b"1(23)"[..]))
        );
        assert!(Params::parse(b";a=<b>").is_err());
        assert!(Params::parse(b";a=b,c").is_err());
    }

    #[test]
    fn quoted_strings() {
        let s = br#""J Rosenberg \\\"" <x>"#;
        assert_eq!(quoted_end(s, 0), Some(18));
        assert_eq!(quoted_end(b"\"abc", 0), None);
        assert_eq!(&*unquote(br#""a\"b""#), b"a\"b");
    }
}
