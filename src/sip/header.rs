//! Header field names: the ones a proxy, registrar or load balancer looks at
//! are a type; everything else is `Other` and stays byte-exact in the message.

/// A header field name. Compact forms (RFC 3261 §7.3.3 and the IANA registry)
/// map to the same variant as the long form; matching is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderName {
    Accept,
    AcceptContact,
    Allow,
    AllowEvents,
    Authorization,
    AuthenticationInfo,
    CallId,
    Contact,
    ContentEncoding,
    ContentLength,
    ContentType,
    CSeq,
    Date,
    Event,
    Expires,
    From,
    Identity,
    MaxForwards,
    MinExpires,
    Path,
    ProxyAuthenticate,
    ProxyAuthorization,
    ProxyRequire,
    RecordRoute,
    ReferTo,
    ReferredBy,
    Require,
    RetryAfter,
    Route,
    Server,
    SessionExpires,
    Subject,
    Supported,
    Timestamp,
    To,
    Unsupported,
    UserAgent,
    Via,
    Warning,
    WwwAuthenticate,
    /// Any other name; the message keeps its bytes.
    Other,
}

impl HeaderName {
    /// Classify a field name as received (already stripped of whitespace).
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        use HeaderName::*;
        if name.len() == 1 {
            return match name[0] | 0x20 {
                b'a' => AcceptContact,
                b'b' => ReferredBy,
                b'c' => ContentType,
                b'e' => ContentEncoding,
                b'f' => From,
                b'i' => CallId,
                b'k' => Supported,
                b'l' => ContentLength,
                b'm' => Contact,
                b'o' => Event,
                b'r' => ReferTo,
                b's' => Subject,
                b't' => To,
                b'u' => AllowEvents,
                b'v' => Via,
                b'x' => SessionExpires,
                b'y' => Identity,
                _ => Other,
            };
        }
        // Candidates by length and first letter, then one case-insensitive compare.
        let first = name.first().map_or(0, |b| b | 0x20);
        let candidate = match (name.len(), first) {
            (2, b't') => To,
            (3, b'v') => Via,
            (4, b'f') => From,
            (4, b'c') => CSeq,
            (4, b'd') => Date,
            (4, b'p') => Path,
            (5, b'a') => Allow,
            (5, b'e') => Event,
            (5, b'r') => Route,
            (6, b'a') => Accept,
            (6, b's') => Server,
            (7, b'c') => CallId,
            (7, b'e') => Expires,
            (7, b'r') => Require,
            (7, b's') => Subject,
            (7, b'w') => Warning,
            (8, b'i') => Identity,
            (8, b'r') => ReferTo,
            (9, b's') => Supported,
            (9, b't') => Timestamp,
            (10, b'u') => UserAgent,
            (11, b'm') => MinExpires,
            (11, b'r') => ReferredBy,
            (11, b'u') => Unsupported,
            (12, b'a') => AllowEvents,
            (12, b'c') => ContentType,
            (12, b'm') => MaxForwards,
            (12, b'r') => RecordRoute,
            (13, b'a') => Authorization,
            (13, b'p') => ProxyRequire,
            (14, b'a') => AcceptContact,
            (14, b'c') => ContentLength,
            (15, b's') => SessionExpires,
            (16, b'c') => ContentEncoding,
            (16, b'w') => WwwAuthenticate,
            (18, b'p') => ProxyAuthenticate,
            (19, b'a') => AuthenticationInfo,
            (19, b'p') => ProxyAuthorization,
            _ => return Other,
        };
        if name.eq_ignore_ascii_case(candidate.as_str().as_bytes()) {
            return candidate;
        }
        // Names that share a length and first letter.
        let second = match candidate {
            CallId => Contact,
            ReferredBy => RetryAfter,
            _ => return Other,
        };
        if name.eq_ignore_ascii_case(second.as_str().as_bytes()) {
            second
        } else {
            Other
        }
    }

    /// The canonical long form, as Siphon writes it.
    pub fn as_str(self) -> &'static str {
        use HeaderName::*;
        match self {
            Accept => "Accept",
            AcceptContact => "Accept-Contact",
            Allow => "Allow",
            AllowEvents => "Allow-Events",
            Authorization => "Authorization",
            AuthenticationInfo => "Authentication-Info",
            CallId => "Call-ID",
            Contact => "Contact",
            ContentEncoding => "Content-Encoding",
            ContentLength => "Content-Length",
            ContentType => "Content-Type",
            CSeq => "CSeq",
            Date => "Date",
            Event => "Event",
            Expires => "Expires",
            From => "From",
            Identity => "Identity",
            MaxForwards => "Max-Forwards",
            MinExpires => "Min-Expires",
            Path => "Path",
            ProxyAuthenticate => "Proxy-Authenticate",
            ProxyAuthorization => "Proxy-Authorization",
            ProxyRequire => "Proxy-Require",
            RecordRoute => "Record-Route",
            ReferTo => "Refer-To",
            ReferredBy => "Referred-By",
            Require => "Require",
            RetryAfter => "Retry-After",
            Route => "Route",
            Server => "Server",
            SessionExpires => "Session-Expires",
            Subject => "Subject",
            Supported => "Supported",
            Timestamp => "Timestamp",
            To => "To",
            Unsupported => "Unsupported",
            UserAgent => "User-Agent",
            Via => "Via",
            Warning => "Warning",
            WwwAuthenticate => "WWW-Authenticate",
            Other => "(other)",
        }
    }

    /// Header fields that may appear at most once. A second copy is the
    /// classic message-smuggling vector, so the parser rejects it.
    pub fn is_single_instance(self) -> bool {
        matches!(
            self,
            HeaderName::ContentLength
                | HeaderName::CSeq
                | HeaderName::CallId
                | HeaderName::From
                | HeaderName::To
                | HeaderName::MaxForwards
        )
    }

    /// A bit per single-instance header, for the parser's "seen" mask.
    pub(crate) fn single_bit(self) -> u8 {
        match self {
            HeaderName::ContentLength => 1,
            HeaderName::CSeq => 2,
            HeaderName::CallId => 4,
            HeaderName::From => 8,
            HeaderName::To => 16,
            HeaderName::MaxForwards => 32,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: &[HeaderName] = &[
        HeaderName::Accept,
        HeaderName::AcceptContact,
        HeaderName::Allow,
        HeaderName::AllowEvents,
        HeaderName::Authorization,
        HeaderName::AuthenticationInfo,
        HeaderName::CallId,
        HeaderName::Contact,
        HeaderName::ContentEncoding,
        HeaderName::ContentLength,
        HeaderName::ContentType,
        HeaderName::CSeq,
        HeaderName::Date,
        HeaderName::Event,
        HeaderName::Expires,
        HeaderName::From,
        HeaderName::Identity,
        HeaderName::MaxForwards,
        HeaderName::MinExpires,
        HeaderName::Path,
        HeaderName::ProxyAuthenticate,
        HeaderName::ProxyAuthorization,
        HeaderName::ProxyRequire,
        HeaderName::RecordRoute,
        HeaderName::ReferTo,
        HeaderName::ReferredBy,
        HeaderName::Require,
        HeaderName::RetryAfter,
        HeaderName::Route,
        HeaderName::Server,
        HeaderName::SessionExpires,
        HeaderName::Subject,
        HeaderName::Supported,
        HeaderName::Timestamp,
        HeaderName::To,
        HeaderName::Unsupported,
        HeaderName::UserAgent,
        HeaderName::Via,
        HeaderName::Warning,
        HeaderName::WwwAuthenticate,
    ];

    #[test]
    fn every_long_form_round_trips_in_any_case() {
        for &h in ALL {
            assert_eq!(HeaderName::from_bytes(h.as_str().as_bytes()), h, "{h:?}");
            let upper = h.as_str().to_ascii_uppercase();
            assert_eq!(HeaderName::from_bytes(upper.as_bytes()), h, "{upper}");
            let lower = h.as_str().to_ascii_lowercase();
            assert_eq!(HeaderName::from_bytes(lower.as_bytes()), h, "{lower}");
        }
    }

    #[test]
    fn compact_forms() {
        let pairs = [
            ("i", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("f", HeaderName::From),
            ("t", HeaderName::To),
            ("v", HeaderName::Via),
            ("l", HeaderName::ContentLength),
            ("k", HeaderName::Supported),
            ("c", HeaderName::ContentType),
            ("s", HeaderName::Subject),
            ("e", HeaderName::ContentEncoding),
            ("o", HeaderName::Event),
            ("r", HeaderName::ReferTo),
            ("u", HeaderName::AllowEvents),
            ("x", HeaderName::SessionExpires),
            ("y", HeaderName::Identity),
            ("b", HeaderName::ReferredBy),
            ("a", HeaderName::AcceptContact),
            ("V", HeaderName::Via),
        ];
        for (n, h) in pairs {
            assert_eq!(HeaderName::from_bytes(n.as_bytes()), h, "{n}");
        }
        assert_eq!(HeaderName::from_bytes(b"z"), HeaderName::Other);
    }

    #[test]
    fn near_misses_are_other() {
        for n in [
            "C%6Fntact",
            "Vias",
            "Fromm",
            "Contacts",
            "",
            "Call-IE",
            "X-Via",
        ] {
            assert_eq!(
                HeaderName::from_bytes(n.as_bytes()),
                HeaderName::Other,
                "{n}"
            );
        }
    }
}
