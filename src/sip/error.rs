//! One error type for everything that can be wrong with a SIP message.
//!
//! Every variant says what was wrong, and maps to the status code and reason
//! phrase a proxy answers a bad request with (RFC 3261 §16.3, §21.4). For a
//! bad response there is nobody to answer: the caller drops and counts it.

use std::fmt;

use super::header::HeaderName;

/// What is wrong with a message. Small and `Copy`, like `httparse::Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// Nothing but CRLFs (or nothing at all).
    Empty,
    /// The message is larger than the configured limit.
    MessageTooLarge,
    /// More header fields than the configured limit.
    TooManyHeaders,
    /// A datagram ended before the empty line that closes the header section.
    UnterminatedHeaders,
    /// The first line is neither a Request-Line nor a Status-Line.
    MalformedStartLine,
    /// A Request-Line whose method is not a `token` (RFC 3261 §7.1,
    /// §25.1): a NUL or another byte no method may hold.
    BadMethod,
    /// `SIP/x.y` other than `SIP/2.0` (RFC 3261 §8.2.2 → 505).
    VersionNotSupported,
    /// A status code that is not three digits in 100..=699.
    BadStatusCode,
    /// A header line without a valid field name and colon.
    MalformedHeaderLine,
    /// The Request-URI does not parse.
    BadRequestUri,
    /// The Request-URI carries `?headers`, which RFC 3261 §19.1.5 forbids there.
    RequestUriHeaders,
    /// The Request-URI names port 0: a request is sent to the port its
    /// URI names (RFC 3261 §19.1.2, §18.1.1), and a port is 1–65535.
    BadRequestUriPort,
    /// A Request-URI scheme we do not handle (RFC 3261 §8.2.2.1 → 416).
    UnsupportedUriScheme,
    /// Content-Length is not a non-negative decimal that fits in 32 bits.
    BadContentLength,
    /// Content-Length says more than the datagram holds (RFC 3261 §18.3).
    ContentLengthExceedsMessage,
    /// A stream message without Content-Length (RFC 3261 §18.3, §20.14).
    MissingContentLength,
    /// A single-instance header field appears more than once.
    DuplicateHeader(HeaderName),
    /// A mandatory header field (RFC 3261 §8.1.1) is absent.
    MissingHeader(HeaderName),
    /// A header field's value does not parse.
    BadHeader(HeaderName),
    /// A CSeq sequence number of 2^31 or more (RFC 3261 §8.1.1.5: it
    /// "MUST be less than 2**31").
    CSeqTooLarge,
    /// CSeq method differs from the Request-Line method.
    CSeqMethodMismatch,
    /// As above, for a method we do not know: 501 is preferred (RFC 4475 §3.1.2.18).
    UnknownMethodCSeqMismatch,
}

impl Error {
    /// The status code for answering a request that failed this way.
    pub fn status(self) -> u16 {
        match self {
            Error::VersionNotSupported => 505,
            Error::UnsupportedUriScheme => 416,
            Error::MessageTooLarge => 513,
            Error::UnknownMethodCSeqMismatch => 501,
            _ => 400,
        }
    }

    /// True when the message cannot even be framed (so a stream connection
    /// carrying it must be closed: RFC 4475 §3.1.2.3, §3.3.9).
    pub fn is_framing(self) -> bool {
        matches!(
            self,
            Error::BadContentLength
                | Error::DuplicateHeader(HeaderName::ContentLength)
                | Error::MissingContentLength
                | Error::MessageTooLarge
        )
    }
}

/// The reason phrase: `400 Duplicate Content-Length`, `505 Version Not Supported`.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Empty => f.write_str("Empty Message"),
            Error::MessageTooLarge => f.write_str("Message Too Large"),
            Error::TooManyHeaders => f.write_str("Too Many Headers"),
            Error::UnterminatedHeaders => f.write_str("Unterminated Header Section"),
            Error::MalformedStartLine => f.write_str("Malformed Start Line"),
            Error::BadMethod => f.write_str("Bad Method"),
            Error::VersionNotSupported => f.write_str("Version Not Supported"),
            Error::BadStatusCode => f.write_str("Bad Status Code"),
            Error::MalformedHeaderLine => f.write_str("Malformed Header Line"),
            Error::BadRequestUri => f.write_str("Bad Request-URI"),
            Error::RequestUriHeaders => f.write_str("Headers Not Allowed In Request-URI"),
            Error::BadRequestUriPort => f.write_str("Bad Request-URI Port"),
            Error::UnsupportedUriScheme => f.write_str("Unsupported URI Scheme"),
            Error::BadContentLength => f.write_str("Bad Content-Length"),
            Error::ContentLengthExceedsMessage => f.write_str("Content-Length Exceeds Message"),
            Error::MissingContentLength => f.write_str("Missing Content-Length"),
            Error::DuplicateHeader(h) => write!(f, "Duplicate {}", h.as_str()),
            Error::MissingHeader(h) => write!(f, "Missing {}", h.as_str()),
            Error::BadHeader(h) => write!(f, "Bad {}", h.as_str()),
            Error::CSeqTooLarge => f.write_str("CSeq Number Too Large"),
            Error::CSeqMethodMismatch => f.write_str("CSeq Method Mismatch"),
            Error::UnknownMethodCSeqMismatch => f.write_str("Not Implemented"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_phrases_name_the_fault() {
        let e = Error::DuplicateHeader(HeaderName::ContentLength);
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (400, "Duplicate Content-Length")
        );
        let e = Error::VersionNotSupported;
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (505, "Version Not Supported")
        );
        assert_eq!(Error::UnsupportedUriScheme.status(), 416);
        assert_eq!(
            Error::MissingHeader(HeaderName::CallId).to_string(),
            "Missing Call-ID"
        );
    }

    #[test]
    fn framing_errors_are_flagged() {
        assert!(Error::BadContentLength.is_framing());
        assert!(Error::DuplicateHeader(HeaderName::ContentLength).is_framing());
        assert!(!Error::DuplicateHeader(HeaderName::CallId).is_framing());
    }
}
