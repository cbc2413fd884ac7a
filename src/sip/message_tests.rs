use super::*;

fn parse(s: &[u8]) -> Result<Message, ParseError> {
    Message::parse(
        Bytes::copy_from_slice(s),
        Framing::Datagram,
        &Limits::default(),
    )
}

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

#[test]
fn request_line_headers_and_body() {
    let m = parse(INVITE).unwrap();
    assert!(m.is_request());
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(
        m.request_uri_bytes(),
        Some(&b"sip:bob@biloxi.example.com"[..])
    );
    assert_eq!(m.fields().len(), 9);
    assert_eq!(m.header(HeaderName::MaxForwards), Some(&b"70"[..]));
    assert_eq!(m.call_id(), b"a84b4c76e66710@pc33.atlanta.example.com");
    let c = m.cseq().unwrap();
    assert_eq!((c.seq, c.method), (314159, Method::Invite));
    assert_eq!(m.content_length(), Some(4));
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.as_bytes(), INVITE);
    assert_eq!(
        m.header_by_name("content-type"),
        Some(&b"application/sdp"[..])
    );
    assert_eq!(m.header_by_name("c"), Some(&b"application/sdp"[..]));
}

#[test]
fn response_status_line() {
    let r = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nTo: <sip:b@h>;tag=1\r\nFrom: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let m = parse(r).unwrap();
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.reason(), b"Ringing");
    assert_eq!(m.method(), None);
    let bad = b"SIP/2.0 4294967301 Big\r\n\r\n";
    assert_eq!(parse(bad).unwrap_err().error(), Error::BadStatusCode);
    let bad = b"SIP/2.0 099 Low\r\n\r\n";
    assert_eq!(parse(bad).unwrap_err().error(), Error::BadStatusCode);
}

#[test]
fn leading_crlf_and_trailing_noise_are_outside_the_message() {
    let mut d = b"\r\n\r\n".to_vec();
    d.extend_from_slice(INVITE);
    d.extend_from_slice(b"garbage after the body");
    let m = parse(&d).unwrap();
    assert_eq!(m.as_bytes(), INVITE);
    assert_eq!(parse(b"\r\n\r\n").unwrap_err().error(), Error::Empty);
}

#[test]
fn datagram_without_content_length_takes_the_rest() {
    let s = String::from_utf8_lossy(INVITE).replace("Content-Length: 4\r\n", "");
    let m = parse(s.as_bytes()).unwrap();
    assert_eq!(m.body(), b"v=0\n");
    let e = Message::parse(
        Bytes::from(s.into_bytes()),
        Framing::Stream,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(e.error(), Error::MissingContentLength);
}

#[test]
fn content_length_larger_than_datagram_is_an_error() {
    let s = String::from_utf8_lossy(INVITE).replace("Content-Length: 4", "Content-Length: 40");
    let e = parse(s.as_bytes()).unwrap_err();
    assert_eq!(e.error(), Error::ContentLengthExceedsMessage);
    assert!(e.is_request(), "the index survives so a 400 can be built");
}

#[test]
fn single_instance_headers_must_be_single() {
    for (h, name) in [
        ("Call-ID: x\r\n", HeaderName::CallId),
        ("i: x\r\n", HeaderName::CallId),
        ("CSeq: 1 INVITE\r\n", HeaderName::CSeq),
        ("From: <sip:x@y>\r\n", HeaderName::From),
        ("t: <sip:x@y>\r\n", HeaderName::To),
        ("Max-Forwards: 3\r\n", HeaderName::MaxForwards),
        ("l: 4\r\n", HeaderName::ContentLength),
    ] {
        let s = String::from_utf8_lossy(INVITE).replace("Contact:", &format!("{h}Contact:"));
        let e = parse(s.as_bytes()).unwrap_err();
        assert_eq!(e.error(), Error::DuplicateHeader(name), "{h}");
        assert_eq!(
            e.error().to_string(),
            format!("Duplicate {}", name.as_str())
        );
    }
}

#[test]
fn mandatory_headers() {
    for (h, name) in [
        (
            "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n",
            HeaderName::CallId,
        ),
        ("CSeq: 314159 INVITE\r\n", HeaderName::CSeq),
        ("To: Bob <sip:bob@biloxi.example.com>\r\n", HeaderName::To),
    ] {
        let s = String::from_utf8_lossy(INVITE).replace(h, "");
        assert_eq!(
            parse(s.as_bytes()).unwrap_err().error(),
            Error::MissingHeader(name)
        );
    }
}

#[test]
fn start_line_errors() {
    let cases: [(&[u8], Error); 13] = [
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", Error::BadRequestUri),
        (
            b"INVITE sip:a@b SIP/2.0 \r\n\r\n",
            Error::MalformedStartLine,
        ),
        (
            b"INVITE sip:a@b SIP/7.0\r\n\r\n",
            Error::VersionNotSupported,
        ),
        (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", Error::BadRequestUri),
        (b"INVITE sip:a@b; lr SIP/2.0\r\n\r\n", Error::BadRequestUri),
        (b"INVITE sip:a@b\r\n\r\n", Error::MalformedStartLine),
        (b"\x00\x01\x02\r\n\r\n", Error::MalformedStartLine),
        (b"INV\x00ITE sip:a@b SIP/2.0\r\n\r\n", Error::BadMethod),
        (b"INVITE\x01 sip:a@b sip/2.0\r\n\r\n", Error::BadMethod),
        (b"IN(VITE sip:a@b SIP/7.0\r\n\r\n", Error::BadMethod),
        (
            b"INV\x00ITE sip:a@b HTTP/1.1\r\n\r\n",
            Error::MalformedStartLine,
        ),
        (b"INV\x00ITE\r\n\r\n", Error::MalformedStartLine),
        (b"\x16\x03\x01 hello\r\n\r\n", Error::MalformedStartLine),
    ];
    for (m, e) in cases {
        assert_eq!(
            parse(m).unwrap_err().error(),
            e,
            "{}",
            String::from_utf8_lossy(m)
        );
    }
}

#[test]
fn a_method_that_is_not_a_token_is_a_bad_request_not_garbage() {
    // RFC 3261 §7.1, §25.1: Method is a token; a NUL in it makes the
    // request bad, but it is still a request with headers to answer.
    let s = String::from_utf8_lossy(INVITE).replacen("INVITE", "INV\0ITE", 1);
    let e = parse(s.as_bytes()).unwrap_err();
    assert_eq!(e.error(), Error::BadMethod);
    assert_eq!(
        (e.error().status(), e.error().to_string()),
        (400, "Bad Method".into())
    );
    assert!(e.is_request());
    let m = e.message().unwrap();
    assert_eq!(m.method(), Some(Method::Other));
    assert_eq!(m.method_bytes(), b"INV\0ITE");
    assert_eq!(
        m.request_uri_bytes(),
        Some(&b"sip:bob@biloxi.example.com"[..])
    );
    assert_eq!(m.call_id(), b"a84b4c76e66710@pc33.atlanta.example.com");
}

#[test]
fn cseq_checks() {
    let s = String::from_utf8_lossy(INVITE).replace("CSeq: 314159 INVITE", "CSeq: 314159 OPTIONS");
    assert_eq!(
        parse(s.as_bytes()).unwrap_err().error(),
        Error::CSeqMethodMismatch
    );
    let cseq = |v: &str| {
        let s = String::from_utf8_lossy(INVITE).replace("314159 INVITE", v);
        parse(s.as_bytes()).map(|m| m.cseq().unwrap().seq)
    };
    // RFC 3261 §8.1.1.5: below 2^31, however many digits say so.
    assert_eq!(cseq("2147483647 INVITE").unwrap(), 2_147_483_647);
    assert_eq!(cseq("0002147483647 INVITE").unwrap(), 2_147_483_647);
    for big in [
        "2147483648",
        "4294967295",
        "4294967296",
        "36893488147419103232",
    ] {
        let e = cseq(&format!("{big} INVITE")).unwrap_err();
        assert_eq!(e.error(), Error::CSeqTooLarge, "{big}");
        assert_eq!(
            (e.error().status(), e.error().to_string()),
            (400, "CSeq Number Too Large".into())
        );
        assert!(e.is_request(), "answerable: the header index is there");
    }
    // Not a number at all, or no method: still just a bad CSeq.
    for bad in ["INVITE", "2147483648", "-1 INVITE", "1x INVITE"] {
        assert_eq!(
            cseq(bad).unwrap_err().error(),
            Error::BadHeader(HeaderName::CSeq),
            "{bad}"
        );
    }
    let s =
        String::from_utf8_lossy(INVITE).replace("CSeq: 314159 INVITE", "CSeq: 0009\r\n  INVITE");
    assert_eq!(parse(s.as_bytes()).unwrap().cseq().unwrap().seq, 9);
}

#[test]
fn limits_are_enforced() {
    let tight = Limits {
        max_message_size: 100,
        max_headers: 128,
    };
    let e = Message::parse(Bytes::from_static(INVITE), Framing::Datagram, &tight).unwrap_err();
    assert_eq!(e.error(), Error::MessageTooLarge);
    let few = Limits {
        max_message_size: 65535,
        max_headers: 3,
    };
    let e = Message::parse(Bytes::from_static(INVITE), Framing::Datagram, &few).unwrap_err();
    assert_eq!(e.error(), Error::TooManyHeaders);
}

#[test]
fn folded_headers_and_lws_before_colon() {
    let s = b"OPTIONS sip:a@b SIP/2.0\r\nVia  : SIP/2.0/UDP\r\n h;branch=z9hG4bK1\r\nTo :\r\n <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nX-Y: one\r\n two\r\n\r\n";
    let m = parse(s).unwrap();
    assert_eq!(
        m.header(HeaderName::Via),
        Some(&b"SIP/2.0/UDP\r\n h;branch=z9hG4bK1"[..])
    );
    assert_eq!(m.header(HeaderName::To), Some(&b"<sip:a@b>"[..]));
    assert_eq!(m.header_by_name("x-y"), Some(&b"one\r\n two"[..]));
}

#[test]
fn header_line_without_colon_is_malformed() {
    let s = String::from_utf8_lossy(INVITE).replace("Max-Forwards: 70", "Max-Forwards 70");
    assert_eq!(
        parse(s.as_bytes()).unwrap_err().error(),
        Error::MalformedHeaderLine
    );
}
