//! The zero-copy message: the received `Bytes` plus an index of spans.
//!
//! `Message::parse` does one pass over the start line and header section:
//! it finds every header field with memchr, classifies its name, checks the
//! few things that must hold for any message to be processed at all
//! (framing, single-instance headers, mandatory headers, CSeq), and stops.
//! Everything else (URIs, Via, addresses) is parsed on demand by typed
//! accessors in the sibling modules, borrowing from the same buffer.

use bytes::Bytes;

use super::error::Error;
use super::framing::{empty_line, next_line, Framing, Limits};
use super::header::{Folded, HeaderName};
use super::lex;
use super::method::Method;

/// A byte range in the message buffer. `u32` keeps the index compact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Span {
        // Messages are bounded by `Limits::max_message_size`, far below 4 GiB.
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    #[inline]
    pub fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    #[inline]
    pub fn len(self) -> usize {
        (self.end - self.start) as usize
    }

    #[inline]
    pub fn is_empty(self) -> bool {
        self.end == self.start
    }
}

/// One header field as indexed by the parser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderField {
    pub name: HeaderName,
    /// The field name as received (compact or long form, any case).
    pub name_span: Span,
    /// The value, trimmed; may still contain folded line breaks.
    pub value: Span,
    /// The whole field from its first byte to just past its line terminator.
    pub line: Span,
}

/// A view of one header field, borrowing the message.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    pub name: HeaderName,
    pub name_bytes: &'a [u8],
    pub value: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StartLine {
    Request {
        method: Method,
        method_span: Span,
        uri: Span,
    },
    Response {
        code: u16,
        reason: Span,
    },
}

/// CSeq (RFC 3261 §20.16), parsed eagerly because every layer needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
    method_span: Span,
}

/// A parsed SIP request or response over the received bytes.
#[derive(Clone)]
pub struct Message {
    buf: Bytes,
    /// The message is `buf[start..end]`: leading CRLFs and trailing
    /// datagram noise (RFC 4475 §3.1.1.8) are outside it.
    start: u32,
    end: u32,
    line: StartLine,
    /// Start of the header section (just after the start line).
    headers_start: u32,
    /// Start of the empty line that ends the header section.
    headers_end: u32,
    fields: Vec<HeaderField>,
    body: Span,
    cseq: Option<CSeq>,
    call_id: Option<Span>,
    content_length: Option<u32>,
}

/// A message that failed to parse. When the start line and header index
/// could be built, `message()` returns them so that a request can still be
/// answered (RFC 3261 §8.2.6 copies Via, From, To, Call-ID and CSeq).
#[derive(Clone)]
pub struct ParseError {
    error: Error,
    partial: Option<Box<Message>>,
}

impl ParseError {
    pub fn error(&self) -> Error {
        self.error
    }

    /// The partly parsed message, if the start line and headers were readable.
    pub fn message(&self) -> Option<&Message> {
        self.partial.as_deref()
    }

    /// True if the bad message was a request (so it deserves an answer).
    pub fn is_request(&self) -> bool {
        self.partial.as_ref().is_some_and(|m| m.is_request())
    }
}

impl std::fmt::Debug for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ParseError({:?}, partial: {})",
            self.error,
            self.partial.is_some()
        )
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl std::error::Error for ParseError {}

impl From<Error> for ParseError {
    fn from(error: Error) -> Self {
        ParseError {
            error,
            partial: None,
        }
    }
}

impl Message {
    /// Parse one message. `buf` is a whole datagram, or one frame cut by
    /// [`frame_stream`](super::framing::frame_stream).
    pub fn parse(buf: Bytes, framing: Framing, limits: &Limits) -> Result<Message, ParseError> {
        let b: &[u8] = &buf;
        let start = super::framing::keepalive_len(b);
        if start == b.len() {
            return Err(Error::Empty.into());
        }
        if b.len() - start > limits.max_message_size {
            return Err(Error::MessageTooLarge.into());
        }
        let first = next_line(b, start).ok_or(Error::MalformedStartLine)?;
        let (line, line_error) = parse_start_line(b, start, first.end)?;

        let mut msg = Message {
            buf: Bytes::new(),
            start: start as u32,
            end: b.len() as u32,
            line,
            headers_start: first.next as u32,
            headers_end: first.next as u32,
            fields: Vec::with_capacity(limits.max_headers.min(24)),
            body: Span::default(),
            cseq: None,
            call_id: None,
            content_length: None,
        };
        let mut first_error: Option<Error> = line_error;
        // Single-instance headers seen (a bit each) and their values, so the
        // checks after the loop need no second pass over the fields.
        let mut seen: u8 = 0;
        let mut singles = [Span::default(); 6];
        let mut via = false;
        let mut pos = first.next;
        let body_start = loop {
            if let Some(body) = empty_line(b, pos) {
                msg.headers_end = pos as u32;
                break body;
            }
            let Some(l) = next_line(b, pos) else {
                msg.headers_end = b.len() as u32;
                first_error.get_or_insert(Error::UnterminatedHeaders);
                break b.len();
            };
            if msg.fields.len() == limits.max_headers {
                msg.headers_end = pos as u32;
                first_error = Some(Error::TooManyHeaders);
                break b.len();
            }
            match index_field(b, pos, l.end, l.next) {
                Some(f) => {
                    if let Some(i) = f.name.single_index() {
                        if seen & (1 << i) != 0 {
                            first_error.get_or_insert(Error::DuplicateHeader(f.name));
                        } else {
                            singles[i] = f.value;
                        }
                        seen |= 1 << i;
                    }
                    via |= f.name == HeaderName::Via;
                    msg.fields.push(f);
                }
                None => {
                    first_error.get_or_insert(Error::MalformedHeaderLine);
                }
            }
            pos = l.next;
        };
        msg.buf = buf;
        let single = |h: HeaderName| {
            h.single_index()
                .filter(|&i| seen & (1 << i) != 0)
                .map(|i| singles[i])
        };
        let found = Found {
            content_length: single(HeaderName::ContentLength),
            cseq: single(HeaderName::CSeq),
            call_id: single(HeaderName::CallId),
            via,
            from: single(HeaderName::From).is_some(),
            to: single(HeaderName::To).is_some(),
        };
        if let Err(e) = msg.finish(body_start, framing, found) {
            first_error.get_or_insert(e);
        }
        match first_error {
            None => Ok(msg),
            Some(error) => Err(ParseError {
                error,
                partial: Some(Box::new(msg)),
            }),
        }
    }

    /// Body framing, mandatory headers and CSeq, after the index is built.
    fn finish(&mut self, body_start: usize, framing: Framing, found: Found) -> Result<(), Error> {
        let b: &[u8] = &self.buf;
        let Found {
            content_length: cl_value,
            cseq: cseq_value,
            call_id,
            via,
            from,
            to,
        } = found;
        self.call_id = call_id;
        // Body (RFC 3261 §18.3).
        let avail = b.len() - body_start;
        let body_len = match cl_value {
            Some(v) => {
                let n = lex::parse_u32(&b[v.range()]).ok_or(Error::BadContentLength)? as usize;
                self.content_length = Some(n as u32);
                if n > avail {
                    self.body = Span::new(body_start, b.len());
                    return Err(Error::ContentLengthExceedsMessage);
                }
                n
            }
            None if framing == Framing::Stream => {
                self.body = Span::new(body_start, b.len());
                return Err(Error::MissingContentLength);
            }
            None => avail,
        };
        self.body = Span::new(body_start, body_start + body_len);
        self.end = self.body.end;

        // Mandatory headers (RFC 3261 §8.1.1; Max-Forwards is added by a proxy).
        let cseq_value = cseq_value.ok_or(Error::MissingHeader(HeaderName::CSeq))?;
        for (present, name) in [
            (via, HeaderName::Via),
            (from, HeaderName::From),
            (to, HeaderName::To),
        ] {
            if !present {
                return Err(Error::MissingHeader(name));
            }
        }
        match call_id {
            Some(v) if !v.is_empty() => {}
            _ => return Err(Error::MissingHeader(HeaderName::CallId)),
        }
        let cseq = parse_cseq(b, cseq_value)?;
        self.cseq = Some(cseq);
        if let StartLine::Request {
            method,
            method_span,
            ..
        } = self.line
        {
            let same = if method == Method::Other {
                b[method_span.range()] == b[cseq.method_span.range()]
            } else {
                method == cseq.method
            };
            if !same {
                return Err(if method == Method::Other {
                    Error::UnknownMethodCSeqMismatch
                } else {
                    Error::CSeqMethodMismatch
                });
            }
        }
        Ok(())
    }

    // ---- start line ----

    pub fn is_request(&self) -> bool {
        matches!(self.line, StartLine::Request { .. })
    }

    /// The request method; `None` for a response.
    pub fn method(&self) -> Option<Method> {
        match self.line {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request method as received (useful for `Method::Other`).
    pub fn method_bytes(&self) -> &[u8] {
        match self.line {
            StartLine::Request { method_span, .. } => self.slice(method_span),
            StartLine::Response { .. } => b"",
        }
    }

    /// The Request-URI as received; `None` for a response.
    pub fn request_uri_bytes(&self) -> Option<&[u8]> {
        match self.line {
            StartLine::Request { uri, .. } => Some(self.slice(uri)),
            StartLine::Response { .. } => None,
        }
    }

    pub(crate) fn request_uri_span(&self) -> Option<Span> {
        match self.line {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code; `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.line {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase (any octets, RFC 4475 §3.1.1.12); empty for a request.
    pub fn reason(&self) -> &[u8] {
        match self.line {
            StartLine::Response { reason, .. } => self.slice(reason),
            StartLine::Request { .. } => b"",
        }
    }

    // ---- headers ----

    /// Every header field in order.
    pub fn headers(&self) -> impl Iterator<Item = Header<'_>> + '_ {
        self.fields.iter().map(move |f| self.view(f))
    }

    /// The indexed fields (spans into `buffer()`).
    pub fn fields(&self) -> &[HeaderField] {
        &self.fields
    }

    /// The value of the first field with this name.
    pub fn header(&self, name: HeaderName) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .map(|f| self.slice(f.value))
    }

    /// The values of every field with this name, in order.
    pub fn header_values(&self, name: HeaderName) -> impl Iterator<Item = &[u8]> + '_ {
        self.fields
            .iter()
            .filter(move |f| f.name == name)
            .map(move |f| self.slice(f.value))
    }

    /// The first field whose name matches `name` case-insensitively; works
    /// for unknown headers too (compact forms only match known names).
    pub fn header_by_name(&self, name: &str) -> Option<&[u8]> {
        let known = HeaderName::from_bytes(name.as_bytes());
        self.fields
            .iter()
            .find(|f| {
                if known == HeaderName::Other {
                    f.name == HeaderName::Other
                        && self
                            .slice(f.name_span)
                            .eq_ignore_ascii_case(name.as_bytes())
                } else {
                    f.name == known
                }
            })
            .map(|f| self.slice(f.value))
    }

    /// Call-ID (always present in a parsed message).
    pub fn call_id(&self) -> &[u8] {
        self.call_id.map_or(&b""[..], |s| self.slice(s))
    }

    /// CSeq (always present in a parsed message).
    pub fn cseq(&self) -> Option<CSeq> {
        self.cseq
    }

    /// The CSeq method as received.
    pub fn cseq_method_bytes(&self) -> &[u8] {
        self.cseq.map_or(&b""[..], |c| self.slice(c.method_span))
    }

    pub fn content_length(&self) -> Option<u32> {
        self.content_length
    }

    // ---- bytes ----

    /// The message exactly as received, from its start line to the end of
    /// its body (without leading keepalives or trailing datagram noise).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[self.start as usize..self.end as usize]
    }

    /// The buffer that spans index into (it may extend beyond the message).
    pub fn buffer(&self) -> &Bytes {
        &self.buf
    }

    pub fn body(&self) -> &[u8] {
        self.slice(self.body)
    }

    /// The body as `Bytes`, sharing the receive buffer.
    pub fn body_bytes(&self) -> Bytes {
        self.buf.slice(self.body.range())
    }

    pub(crate) fn body_span(&self) -> Span {
        self.body
    }

    /// Offsets of the start line, header section and empty line.
    pub(crate) fn layout(&self) -> Layout {
        Layout {
            start: self.start as usize,
            headers_start: self.headers_start as usize,
            headers_end: self.headers_end as usize,
        }
    }

    #[inline]
    pub fn slice(&self, s: Span) -> &[u8] {
        &self.buf[s.range()]
    }

    fn view<'a>(&'a self, f: &HeaderField) -> Header<'a> {
        Header {
            name: f.name,
            name_bytes: self.slice(f.name_span),
            value: self.slice(f.value),
        }
    }
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("line", &self.line)
            .field("headers", &self.fields.len())
            .field("body", &self.body.len())
            .finish()
    }
}

/// What the indexing loop noticed, for the checks that follow it.
struct Found {
    content_length: Option<Span>,
    cseq: Option<Span>,
    call_id: Option<Span>,
    via: bool,
    from: bool,
    to: bool,
}

/// Where the parts of a message sit in its buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    pub start: usize,
    pub headers_start: usize,
    pub headers_end: usize,
}

/// Request-Line or Status-Line (RFC 3261 §7.1, §7.2). Exactly one SP between
/// elements: extra or trailing whitespace is rejected rather than forwarded
/// (RFC 4475 §3.1.2.9, §3.1.2.10).
///
/// A line that starts like a request (`token SP`, or any method in a line
/// that ends like a Request-Line) yields a start line even when the rest
/// is wrong, with the fault beside it, so the header index is still built
/// and the request can be answered (400, or 505 for a version).
fn parse_start_line(
    b: &[u8],
    start: usize,
    end: usize,
) -> Result<(StartLine, Option<Error>), Error> {
    let l = &b[start..end];
    if l.starts_with(b"SIP/") {
        // SIP-Version SP Status-Code SP Reason-Phrase
        let sp = memchr::memchr(b' ', l).ok_or(Error::MalformedStartLine)?;
        check_version(&l[..sp])?;
        let rest = &l[sp + 1..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits != 3 || !matches!(rest.get(3), None | Some(b' ')) {
            return Err(Error::BadStatusCode);
        }
        let code = u16::from(rest[0] - b'0') * 100
            + u16::from(rest[1] - b'0') * 10
            + u16::from(rest[2] - b'0');
        if !(100..=699).contains(&code) {
            return Err(Error::BadStatusCode);
        }
        // A missing SP before an empty reason is tolerated (RFC 4475 §3.1.1.13).
        let reason_start = (start + sp + 1 + 4).min(end);
        return Ok((
            StartLine::Response {
                code,
                reason: Span::new(reason_start, end),
            },
            None,
        ));
    }
    // Method SP Request-URI SP SIP-Version
    let mut m_end = lex::token_end(l, 0);
    let token_method = m_end > 0 && l.get(m_end) == Some(&b' ');
    if !token_method {
        // A method with a byte outside `token` (a NUL, a control
        // character: `INV\0ITE`) in a line that otherwise reads as a
        // Request-Line (`x SP y SP SIP/…`) is a bad request, answered 400
        // once the headers are indexed; anything else is not SIP at all.
        m_end = match memchr::memchr(b' ', l) {
            Some(sp) if sp > 0 && ends_with_version(l, sp) => sp,
            _ => return Err(Error::MalformedStartLine),
        };
    }
    let method = Method::from_bytes(&l[..m_end]);
    let method_span = Span::new(start, start + m_end);
    let v_sp = memchr::memrchr(b' ', l).filter(|&v| v > m_end);
    let uri_end = v_sp.unwrap_or(l.len());
    let line = StartLine::Request {
        method,
        method_span,
        uri: Span::new(start + m_end + 1, start + uri_end),
    };
    if !token_method {
        return Ok((line, Some(Error::BadMethod)));
    }
    let Some(v_sp) = v_sp else {
        return Ok((line, Some(Error::MalformedStartLine)));
    };
    if let Err(e) = check_version(&l[v_sp + 1..]) {
        return Ok((line, Some(e)));
    }
    let uri = &l[m_end + 1..v_sp];
    // Embedded whitespace or <> around the URI: 400 (RFC 4475 §3.1.2.7, §3.1.2.8).
    // (CR and LF cannot occur inside the line; '>' alone is left to the URI parser.)
    if uri.is_empty() || uri[0] == b'<' || memchr::memchr2(b' ', b'\t', uri).is_some() {
        return Ok((line, Some(Error::BadRequestUri)));
    }
    Ok((line, None))
}

/// The last element of `l`, after an SP beyond `sp`, starts like a
/// SIP-Version (`SIP/`, any case).
fn ends_with_version(l: &[u8], sp: usize) -> bool {
    memchr::memrchr(b' ', l)
        .filter(|&v| v > sp)
        .and_then(|v| l.get(v + 1..v + 5))
        .is_some_and(|v| v.eq_ignore_ascii_case(b"SIP/"))
}

/// `SIP/2.0` is all we speak; another well-formed version is 505.
fn check_version(v: &[u8]) -> Result<(), Error> {
    if v == b"SIP/2.0" {
        return Ok(());
    }
    let Some(rest) = v.get(4..).filter(|_| v[..4].eq_ignore_ascii_case(b"SIP/")) else {
        return Err(Error::MalformedStartLine);
    };
    let mut parts = rest.split(|&b| b == b'.');
    let ok =
        |p: Option<&[u8]>| p.is_some_and(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit));
    if ok(parts.next()) && ok(parts.next()) && parts.next().is_none() {
        if rest == b"2.0" {
            return Ok(()); // `sip/2.0`: the version is case-insensitive
        }
        return Err(Error::VersionNotSupported);
    }
    Err(Error::MalformedStartLine)
}

/// Index the header field in `b[pos..end]` (`next` is where the next line
/// starts). `None` if it is not `token *WS ":" value`.
#[inline]
fn index_field(b: &[u8], pos: usize, end: usize, next: usize) -> Option<HeaderField> {
    let (name, name_end, i) = match Folded::known_name_at(b, pos, end) {
        Some((name, colon)) => (name, colon, colon),
        None => {
            let name_end = lex::token_end(&b[..end], pos);
            if name_end == pos {
                return None;
            }
            let mut i = name_end;
            while i < end && (b[i] == b' ' || b[i] == b'\t') {
                i += 1;
            }
            if i >= end || b[i] != b':' {
                return None;
            }
            let name =
                HeaderName::from_folded(&b[pos..name_end], Folded::at(b, pos, name_end - pos));
            (name, name_end, i)
        }
    };
    // Values almost always look like `: value` with nothing trailing: test
    // that shape first, and fall back to the general trims (which also
    // skip folded line breaks, RFC 3261 §7.3.1).
    let mut vs = i + 1;
    if b.get(vs) == Some(&b' ') && b.get(vs + 1).is_some_and(|&c| c > b' ') {
        vs += 1;
    } else {
        vs = lex::skip_ws(&b[..end], vs);
    }
    let mut ve = end;
    if ve > vs && b[ve - 1] <= b' ' {
        while ve > vs && lex::is_ws(b[ve - 1]) {
            ve -= 1;
        }
    }
    Some(HeaderField {
        name,
        name_span: Span::new(pos, name_end),
        value: Span::new(vs, ve),
        line: Span::new(pos, next),
    })
}

/// `CSeq = 1*DIGIT LWS Method` with the number below 2^31 (RFC 3261
/// §8.1.1.5: "expressible as a 32-bit unsigned integer and MUST be less
/// than 2**31"). A well-formed CSeq whose number is larger, by any number
/// of digits, is `CSeqTooLarge`, so the 400 says why.
fn parse_cseq(b: &[u8], v: Span) -> Result<CSeq, Error> {
    let s = &b[v.range()];
    let bad = Error::BadHeader(HeaderName::CSeq);
    let d = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if d == 0 {
        return Err(bad);
    }
    let m = lex::skip_ws(s, d);
    if m == d {
        return Err(bad);
    }
    let m_end = lex::token_end(s, m);
    if m_end == m || m_end != s.len() {
        return Err(bad);
    }
    let seq = lex::parse_u32(&s[..d])
        .filter(|&n| n < 1 << 31)
        .ok_or(Error::CSeqTooLarge)?;
    let start = v.start as usize;
    Ok(CSeq {
        seq,
        method: Method::from_bytes(&s[m..m_end]),
        method_span: Span::new(start + m, start + m_end),
    })
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
