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
    #[inline]
    pub fn from_bytes(name: &[u8]) -> HeaderName {
        HeaderName::from_folded(name, Folded::of(name))
    }

    /// Classify a name given its case-folded first 16 bytes (see
    /// [`Folded`]): one length dispatch and one or two word compares.
    #[inline]
    pub(crate) fn from_folded(name: &[u8], f: Folded) -> HeaderName {
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
        if name.len() > 16 {
            // Rare long names: compare the few candidates directly.
            for h in [ProxyAuthenticate, AuthenticationInfo, ProxyAuthorization] {
                if name.eq_ignore_ascii_case(h.as_str().as_bytes()) {
                    return h;
                }
            }
            return Other;
        }
        f.lookup().unwrap_or(Other)
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
        self.single_index().is_some()
    }

    /// A slot per single-instance header, for the parser's "seen" mask.
    #[inline]
    pub(crate) fn single_index(self) -> Option<usize> {
        match self {
            HeaderName::ContentLength => Some(0),
            HeaderName::CSeq => Some(1),
            HeaderName::CallId => Some(2),
            HeaderName::From => Some(3),
            HeaderName::To => Some(4),
            HeaderName::MaxForwards => Some(5),
            _ => None,
        }
    }
}

/// The first 16 bytes of a name, each OR-ed with 0x20, in two
/// little-endian words (zero past the end of the name). On token characters
/// `| 0x20` folds ASCII case and maps nothing else onto a letter or `-`, so
/// equal values mean names equal case-insensitively (RFC 3261 §7.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folded {
    lo: u64,
    hi: u64,
}

impl Folded {
    /// Fold `name` (only its first 16 bytes count).
    #[inline]
    pub(crate) fn of(name: &[u8]) -> Folded {
        let mut w = [0u8; 16];
        let n = name.len().min(16);
        w[..n].copy_from_slice(&name[..n]);
        Folded::from_words(w, n)
    }

    /// Fold the name of `len` bytes at `buf[pos..]` with two word loads
    /// when 16 bytes are available there (the common case inside a message).
    #[inline]
    pub(crate) fn at(buf: &[u8], pos: usize, len: usize) -> Folded {
        match buf.get(pos..pos + 16) {
            Some(w) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(w);
                Folded::from_words(a, len.min(16))
            }
            None => Folded::of(&buf[pos..pos + len]),
        }
    }

    #[inline]
    fn from_words(w: [u8; 16], n: usize) -> Folded {
        let (lo_w, hi_w) = w.split_at(8);
        let mut lo = [0u8; 8];
        let mut hi = [0u8; 8];
        lo.copy_from_slice(lo_w);
        hi.copy_from_slice(hi_w);
        let (ml, mh) = MASK[n.min(16)];
        Folded {
            lo: (u64::from_le_bytes(lo) | FOLD) & ml,
            hi: (u64::from_le_bytes(hi) | FOLD) & mh,
        }
    }

    /// The fast path of header indexing: if a known name of at most 15
    /// bytes starts at `buf[pos]` and is followed directly by `:` before
    /// `end`, its name and the colon's index. Equality with a canonical
    /// name proves the bytes are letters or `-` except that `| 0x20` also
    /// maps CR onto `-`, so the name bytes are also checked to be above
    /// 0x20. Anything else (unknown names, LWS before the colon) is `None`
    /// and takes the byte-by-byte path.
    #[inline]
    pub(crate) fn known_name_at(buf: &[u8], pos: usize, end: usize) -> Option<(HeaderName, usize)> {
        const COLONS: u64 = 0x3a3a_3a3a_3a3a_3a3a;
        const LO: u64 = 0x0101_0101_0101_0101;
        const HI: u64 = 0x8080_8080_8080_8080;
        const BELOW_SP: u64 = 0x2121_2121_2121_2121;
        let w = buf.get(pos..pos + 16)?;
        let (mut a, mut c) = ([0u8; 8], [0u8; 8]);
        a.copy_from_slice(&w[..8]);
        c.copy_from_slice(&w[8..]);
        let (lo, hi) = (u64::from_le_bytes(a), u64::from_le_bytes(c));
        // "Has zero byte" on word ^ ':::…': the lowest flag is a real ':'.
        let zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
        let (cl, ch) = (zero(lo ^ COLONS), zero(hi ^ COLONS));
        let n = if cl != 0 {
            (cl.trailing_zeros() / 8) as usize
        } else if ch != 0 {
            8 + (ch.trailing_zeros() / 8) as usize
        } else {
            return None;
        };
        if n < 2 || pos + n >= end {
            return None;
        }
        let (ml, mh) = MASK[n];
        let f = Folded {
            lo: (lo | FOLD) & ml,
            hi: (hi | FOLD) & mh,
        };
        let h = f.lookup()?;
        // No byte of the name below 0x21 (bytes past it are forced to 0xff).
        let below = |x: u64| x.wrapping_sub(BELOW_SP) & !x & HI;
        if below(lo | !ml) != 0 || below(hi | !mh) != 0 {
            return None;
        }
        Some((h, pos + n))
    }

    /// Bucket in `BY_HASH`.
    #[inline]
    const fn bucket(self) -> usize {
        let x = self.lo ^ self.hi.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x.wrapping_mul(0xe062_48b4_a124_0c23) >> 57) as usize
    }

    /// The known header with exactly this folded name.
    #[inline]
    fn lookup(self) -> Option<HeaderName> {
        match BY_HASH[self.bucket()] {
            Some((f, h)) if f.lo == self.lo && f.hi == self.hi => Some(h),
            _ => None,
        }
    }

    const fn of_str(s: &str) -> Folded {
        let b = s.as_bytes();
        let (mut lo, mut hi) = (0u64, 0u64);
        let mut i = 0;
        while i < b.len() {
            let v = (b[i] | 0x20) as u64;
            if i < 8 {
                lo |= v << (8 * i);
            } else {
                hi |= v << (8 * (i - 8));
            }
            i += 1;
        }
        Folded { lo, hi }
    }
}

const FOLD: u64 = 0x2020_2020_2020_2020;

/// Byte masks for the first `n` bytes of the two words, n = 0..=16.
static MASK: [(u64, u64); 17] = {
    let mut t = [(0u64, 0u64); 17];
    let mut n = 1;
    while n <= 16 {
        let lo = if n >= 8 {
            u64::MAX
        } else {
            (1u64 << (8 * n)) - 1
        };
        let hi = if n >= 16 {
            u64::MAX
        } else if n > 8 {
            (1u64 << (8 * (n - 8))) - 1
        } else {
            0
        };
        t[n] = (lo, hi);
        n += 1;
    }
    t
};

/// Known names of at most 16 bytes.
const KNOWN: [(Folded, HeaderName); 37] = [
    (Folded::of_str("accept"), HeaderName::Accept),
    (Folded::of_str("accept-contact"), HeaderName::AcceptContact),
    (Folded::of_str("allow"), HeaderName::Allow),
    (Folded::of_str("allow-events"), HeaderName::AllowEvents),
    (Folded::of_str("authorization"), HeaderName::Authorization),
    (Folded::of_str("call-id"), HeaderName::CallId),
    (Folded::of_str("contact"), HeaderName::Contact),
    (
        Folded::of_str("content-encoding"),
        HeaderName::ContentEncoding,
    ),
    (Folded::of_str("content-length"), HeaderName::ContentLength),
    (Folded::of_str("content-type"), HeaderName::ContentType),
    (Folded::of_str("cseq"), HeaderName::CSeq),
    (Folded::of_str("date"), HeaderName::Date),
    (Folded::of_str("event"), HeaderName::Event),
    (Folded::of_str("expires"), HeaderName::Expires),
    (Folded::of_str("from"), HeaderName::From),
    (Folded::of_str("identity"), HeaderName::Identity),
    (Folded::of_str("max-forwards"), HeaderName::MaxForwards),
    (Folded::of_str("min-expires"), HeaderName::MinExpires),
    (Folded::of_str("path"), HeaderName::Path),
    (Folded::of_str("proxy-require"), HeaderName::ProxyRequire),
    (Folded::of_str("record-route"), HeaderName::RecordRoute),
    (Folded::of_str("refer-to"), HeaderName::ReferTo),
    (Folded::of_str("referred-by"), HeaderName::ReferredBy),
    (Folded::of_str("require"), HeaderName::Require),
    (Folded::of_str("retry-after"), HeaderName::RetryAfter),
    (Folded::of_str("route"), HeaderName::Route),
    (Folded::of_str("server"), HeaderName::Server),
    (
        Folded::of_str("session-expires"),
        HeaderName::SessionExpires,
    ),
    (Folded::of_str("subject"), HeaderName::Subject),
    (Folded::of_str("supported"), HeaderName::Supported),
    (Folded::of_str("timestamp"), HeaderName::Timestamp),
    (Folded::of_str("to"), HeaderName::To),
    (Folded::of_str("unsupported"), HeaderName::Unsupported),
    (Folded::of_str("user-agent"), HeaderName::UserAgent),
    (Folded::of_str("via"), HeaderName::Via),
    (Folded::of_str("warning"), HeaderName::Warning),
    (
        Folded::of_str("www-authenticate"),
        HeaderName::WwwAuthenticate,
    ),
];

/// `KNOWN` by a multiplicative hash of the folded words: one probe per
/// lookup. The multiplier was searched offline to be collision-free for
/// these names; building the table panics at compile time on a collision,
/// so a new name that collides cannot slip in unnoticed.
static BY_HASH: [Option<(Folded, HeaderName)>; 128] = {
    let mut t: [Option<(Folded, HeaderName)>; 128] = [None; 128];
    let mut i = 0;
    while i < KNOWN.len() {
        let h = KNOWN[i].0.bucket();
        assert!(
            t[h].is_none(),
            "header name hash collision: pick another multiplier"
        );
        t[h] = Some(KNOWN[i]);
        i += 1;
    }
    t
};

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
    fn fast_path_agrees_with_the_slow_path() {
        let pad = "________________";
        for &h in ALL {
            for name in [h.as_str().to_string(), h.as_str().to_ascii_uppercase()] {
                let line = format!("{name}: x\r\n{pad}");
                let got = Folded::known_name_at(line.as_bytes(), 0, line.len() - 2 - pad.len());
                if name.len() <= 15 {
                    assert_eq!(got, Some((h, name.len())), "{name}");
                } else {
                    assert_eq!(got, None, "{name}");
                }
            }
        }
        // CR folds onto '-' under | 0x20: it must not pass for Call-ID.
        let evil = b"Call\rID: x\r\n______________";
        assert_eq!(Folded::known_name_at(evil, 0, 11), None);
        // LWS before the colon, unknown names and compact forms take the slow path.
        for line in [
            "Via : x\r\n________________",
            "X-Via: x\r\n________________",
            "v: x\r\n________________",
        ] {
            assert_eq!(
                Folded::known_name_at(line.as_bytes(), 0, line.find('\r').unwrap()),
                None,
                "{line}"
            );
        }
        // A colon beyond the line end does not count.
        assert_eq!(
            Folded::known_name_at(b"Via\r\nTo: x\r\n__________", 0, 3),
            None
        );
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
