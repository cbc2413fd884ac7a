//! Where one SIP message ends (RFC 3261 §18.3), for datagrams and streams.
//!
//! Streams: the header section ends at the first empty line; Content-Length
//! is mandatory and says how long the body is. Datagrams: one datagram is
//! one message; Content-Length, when present, may cut trailing octets off,
//! and may not claim more than arrived. Leading CRLFs are keepalives
//! (RFC 5626 §3.5.1) and are reported as such on streams.

use super::error::Error;
use super::header::HeaderName;
use super::lex;

/// Limits applied to every message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (start line + headers + body) in bytes.
    pub max_message_size: usize,
    /// Most header fields (lines, not comma-separated values).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        // 64 KiB is the largest UDP datagram; 128 header fields is generous
        // (a long Via/Record-Route chain) but bounds the index.
        Limits {
            max_message_size: 65_535,
            max_headers: 128,
        }
    }
}

/// How the message arrived: it decides what a missing or oversized
/// Content-Length means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Datagram,
    Stream,
}

/// The outcome of framing a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// The buffer starts with this many bytes of CR/LF keepalive; consume
    /// them and frame again. Two CRLFs are a ping that wants a CRLF pong.
    Keepalive(usize),
    /// A whole message of this many bytes starts the buffer.
    Complete(usize),
    /// More bytes are needed: the headers have not ended.
    Partial,
    /// The headers are whole and the message is this many bytes; more are
    /// needed (a reader waits for them without framing again).
    Body(usize),
}

/// Number of leading CR/LF bytes.
pub fn keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count()
}

/// Frame the next message of a stream (TCP/TLS).
///
/// An error means the stream cannot be resynchronised: the transport should
/// answer if it can and close the connection (RFC 4475 §3.1.2.3, §3.3.9).
pub fn frame_stream(buf: &[u8], limits: &Limits) -> Result<Status, Error> {
    let skip = keepalive_len(buf);
    if skip > 0 {
        return Ok(Status::Keepalive(skip));
    }
    let mut pos;
    let mut content_length = None;
    let mut headers = 0usize;
    // Skip the start line, then look at each header line for Content-Length.
    // Every line is followed by at least the empty line, so a line that
    // ends the buffer means more is coming (maybe a folded continuation).
    match next_line(buf, 0) {
        Some(first) if first.next < buf.len() => pos = first.next,
        _ => return partial(buf, limits),
    }
    loop {
        if let Some(body) = empty_line(buf, pos) {
            let Some(len) = content_length else {
                return Err(Error::MissingContentLength);
            };
            let total = body + len as usize;
            if total > limits.max_message_size {
                return Err(Error::MessageTooLarge);
            }
            return Ok(if buf.len() >= total {
                Status::Complete(total)
            } else {
                Status::Body(total)
            });
        }
        let line = match next_line(buf, pos) {
            Some(line) if line.next < buf.len() => line,
            _ => return partial(buf, limits),
        };
        headers += 1;
        if headers > limits.max_headers {
            return Err(Error::TooManyHeaders);
        }
        let l = &buf[pos..line.end];
        if let Some(colon) = memchr::memchr(b':', l) {
            let name = lex::trim(&l[..colon]);
            if HeaderName::from_bytes(name) == HeaderName::ContentLength {
                if content_length.is_some() {
                    return Err(Error::DuplicateHeader(HeaderName::ContentLength));
                }
                let v =
                    lex::parse_u32(lex::trim(&l[colon + 1..])).ok_or(Error::BadContentLength)?;
                content_length = Some(v);
            }
        }
        pos = line.next;
    }
}

fn partial(buf: &[u8], limits: &Limits) -> Result<Status, Error> {
    if buf.len() > limits.max_message_size {
        Err(Error::MessageTooLarge)
    } else {
        Ok(Status::Partial)
    }
}

/// A logical line (folded continuation lines included).
pub(crate) struct Line {
    /// End of the content, before the final CRLF (or LF).
    pub end: usize,
    /// Start of the next line.
    pub next: usize,
}

/// The logical line starting at `pos`: runs to a LF that is not followed by
/// SP/HT (RFC 3261 §7.3.1 folding). `None` if the buffer ends first.
#[inline]
pub(crate) fn next_line(buf: &[u8], pos: usize) -> Option<Line> {
    let mut from = pos;
    loop {
        let nl = from + find_lf(&buf[from..])?;
        match buf.get(nl + 1) {
            Some(b' ' | b'\t') => from = nl + 1,
            // At the end of the buffer a continuation could still follow on a
            // stream; the stream framer treats `next == len` as partial.
            _ => {
                return Some(Line {
                    end: strip_cr(buf, pos, nl),
                    next: nl + 1,
                })
            }
        }
    }
}

/// The first LF in `s`. On x86-64 with AVX2 the searcher is built once and
/// called directly, skipping `memchr::memchr`'s per-call dispatch (it is
/// a third of the cost of finding a 40-byte line's end).
#[inline]
fn find_lf(s: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    {
        use memchr::arch::x86_64::avx2::memchr::One;
        use std::sync::OnceLock;
        static LF: OnceLock<Option<One>> = OnceLock::new();
        if let Some(one) = LF.get_or_init(|| One::new(b'\n')) {
            return one.find(s);
        }
    }
    memchr::memchr(b'\n', s)
}

#[inline]
fn strip_cr(buf: &[u8], pos: usize, nl: usize) -> usize {
    if nl > pos && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    }
}

/// If an empty line (CRLF or bare LF) starts at `pos`, where the body begins.
#[inline]
pub(crate) fn empty_line(buf: &[u8], pos: usize) -> Option<usize> {
    match buf.get(pos)? {
        b'\n' => Some(pos + 1),
        b'\r' if buf.get(pos + 1) == Some(&b'\n') => Some(pos + 2),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits {
        max_message_size: 4096,
        max_headers: 16,
    };

    #[test]
    fn complete_partial_and_keepalive() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcNEXT";
        assert_eq!(frame_stream(m, &L), Ok(Status::Complete(m.len() - 4)));
        assert_eq!(
            frame_stream(&m[..m.len() - 6], &L),
            Ok(Status::Body(m.len() - 4))
        );
        assert_eq!(frame_stream(&m[..30], &L), Ok(Status::Partial));
        assert_eq!(frame_stream(b"\r\n\r\nOPT", &L), Ok(Status::Keepalive(4)));
        assert_eq!(frame_stream(b"", &L), Ok(Status::Partial));
    }

    #[test]
    fn content_length_is_required_and_single() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(frame_stream(m, &L), Err(Error::MissingContentLength));
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 1\r\n\r\nab";
        assert_eq!(
            frame_stream(m, &L),
            Err(Error::DuplicateHeader(HeaderName::ContentLength))
        );
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: -999\r\n\r\n";
        assert_eq!(frame_stream(m, &L), Err(Error::BadContentLength));
    }

    #[test]
    fn folded_content_length_and_limits() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n 2\r\n\r\nab";
        assert_eq!(frame_stream(m, &L), Ok(Status::Complete(m.len())));
        let big = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 5000\r\n\r\n";
        assert_eq!(frame_stream(big, &L), Err(Error::MessageTooLarge));
        let endless = vec![b'a'; 5000];
        assert_eq!(frame_stream(&endless, &L), Err(Error::MessageTooLarge));
        let mut many = b"OPTIONS sip:a@b SIP/2.0\r\n".to_vec();
        for _ in 0..17 {
            many.extend_from_slice(b"X: y\r\n");
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(frame_stream(&many, &L), Err(Error::TooManyHeaders));
    }
}
