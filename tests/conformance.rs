//! RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests), driven by
//! the corpora's MANIFEST.tsv files in `tests/corpus/` (byte-exact copies).
//!
//! Every manifest row must have an expectation below: a row without one
//! fails the run, so the corpus and this table cannot drift apart. A valid
//! message must parse and pass `Message::validate`, and its key fields are
//! asserted; an invalid one must fail with the error class the RFC asks
//! for, and the status we would answer with must be one the manifest's
//! `expected_action` allows (or "drop" for a response).
//! Deliberate deviations are listed in README.md ("Conformance").

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use siphon::sip::uri::{Host, Scheme, Uri};
use siphon::sip::{
    frame_stream, Contact, Error, Framing, HeaderName, Limits, Message, Method, Status, Transport,
};

type Check = fn(&Message);

enum Expect {
    /// Parses and validates; then the check runs.
    Accept(Check),
    /// An invalid message whose fault the RFC lets us ignore ("ignore Date
    /// (or 400 if Date is used)"): accepted, then the check runs.
    Ignore(Check),
    /// Fails (at parse or validate) with exactly this error.
    Reject(Error),
    /// The manifest says to assert nothing (test.dat): it must not panic.
    NoVerdict,
}

fn corpus(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(dir)
}

fn manifest(dir: &str) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(corpus(dir).join("MANIFEST.tsv")).unwrap();
    let mut lines = text.lines();
    let cols: Vec<&str> = lines.next().unwrap().split('\t').collect();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            cols.iter()
                .map(|c| c.to_string())
                .zip(l.split('\t').map(str::to_string))
                .collect()
        })
        .collect()
}

fn parse_and_validate(data: &[u8]) -> Result<Message, (Error, bool)> {
    match Message::parse(
        Bytes::copy_from_slice(data),
        Framing::Datagram,
        &Limits::default(),
    ) {
        Ok(m) => match m.validate() {
            Ok(()) => Ok(m),
            Err(e) => Err((e, m.is_request())),
        },
        Err(e) => Err((e.error(), e.is_request())),
    }
}

fn run(dir: &str, file_col: &str, table: fn(&str) -> Option<Expect>) -> usize {
    let rows = manifest(dir);
    assert!(!rows.is_empty());
    let mut checked = 0;
    for row in &rows {
        let name = row["file"].as_str();
        let file = row.get(file_col).map_or(name, String::as_str);
        let data = std::fs::read(corpus(dir).join(file)).unwrap();
        let verdict = row.get("rfc_verdict").unwrap();
        let action = row.get("expected_action").unwrap();
        let expect = table(name)
            .unwrap_or_else(|| panic!("{dir}/{name}: no expectation for this manifest row"));
        match (expect, parse_and_validate(&data)) {
            (Expect::Accept(check), Ok(m)) => {
                assert!(
                    verdict.starts_with("valid"),
                    "{name}: accepted, but the manifest says {verdict}"
                );
                check(&m);
            }
            (Expect::Ignore(check), Ok(m)) => {
                assert!(
                    action.starts_with("ignore"),
                    "{name}: ignored, but the manifest says {action}"
                );
                check(&m);
            }
            (Expect::Accept(_) | Expect::Ignore(_), Err(e)) => {
                panic!("{name}: rejected with {e:?}, expected to accept ({action})")
            }
            (Expect::Reject(want), Err((got, is_request))) => {
                assert_eq!(got, want, "{name}: wrong error");
                if is_request {
                    let status = got.status().to_string();
                    assert!(
                        action.contains(&status),
                        "{name}: we would answer {status}, manifest allows {action}"
                    );
                } else {
                    assert!(
                        action.contains("drop"),
                        "{name}: dropped, manifest says {action}"
                    );
                }
            }
            (Expect::Reject(want), Ok(_)) => {
                panic!("{name}: accepted, expected {want:?} ({action})")
            }
            (Expect::NoVerdict, _) => assert_eq!(verdict, "unreferenced"),
        }
        checked += 1;
    }
    checked
}

#[test]
fn rfc4475_torture_tests() {
    assert_eq!(run("rfc4475", "file", rfc4475), 50);
}

#[test]
fn rfc5118_ipv6_torture_tests() {
    assert_eq!(run("rfc5118", "wire_file", rfc5118), 12);
}

fn vias(m: &Message) -> Vec<siphon::sip::Via<'_>> {
    m.vias().collect::<Result<_, _>>().unwrap()
}

fn ruri(m: &Message) -> Uri<'_> {
    m.request_uri().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn rfc4475(name: &str) -> Option<Expect> {
    use Expect::*;
    Some(match name {
        "wsinv.dat" => Accept(|m| {
            // Folding, LWS around ':' ';' '/', compact and long forms.
            assert_eq!(m.method(), Some(Method::Invite));
            assert_eq!(m.max_forwards(), Ok(Some(68)));
            assert_eq!(m.cseq().unwrap().seq, 9);
            let v = vias(m);
            assert_eq!(v.len(), 3);
            assert_eq!(v[0].host, b"192.0.2.2");
            assert_eq!(v[1].transport, Transport::Tcp);
            assert_eq!(v[2].branch(), Some(&b"z9hG4bK30239"[..]));
            assert_eq!(m.to().unwrap().tag(), Some(&b"1918181833n"[..]));
            assert_eq!(m.from().unwrap().tag(), Some(&b"98asjd8"[..]));
            assert_eq!(m.header(HeaderName::Subject), Some(&b""[..]));
            // The unknown header's value is kept byte-exact.
            assert_eq!(
                m.header_by_name("UnknownHeaderWithUnusualValue"),
                Some(&b";;,,;;,;"[..])
            );
            assert_eq!(
                m.header_by_name("NewFangledHeader"),
                Some(&b"newfangled value\r\n continued newfangled value"[..])
            );
            let c: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
            let Contact::Addr(c) = c[0] else { panic!() };
            assert_eq!(c.q(), Some(Ok(330)));
            assert_eq!(
                m.routes().next().unwrap().unwrap().uri,
                b"sip:services.example.com;lr;unknownwith=value;unknown-no-value"
            );
            assert_eq!(m.body().len(), 150);
        }),
        "intmeth.dat" => Accept(|m| {
            assert_eq!(m.method(), Some(Method::Other));
            assert_eq!(
                m.method_bytes(),
                b"!interesting-Method0123456789_*+`.%indeed'~"
            );
            let u = ruri(m);
            assert_eq!(
                u.user,
                Some(&b"1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"[..])
            );
            assert_eq!(
                u.password,
                Some(&b"&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"[..])
            );
            assert_eq!(u.host, Host::Name(b"example.com"));
            // Raw NUL, BEL and DEL inside the quoted display name survive.
            assert_eq!(
                m.to().unwrap().display_name,
                Some(&b"\"BEL:\\\x07 NUL:\\\x00 DEL:\\\x7f\""[..])
            );
            assert_eq!(m.from().unwrap().tag(), Some(&b"_token~1'+`*%!-."[..]));
            assert_eq!(m.max_forwards(), Ok(Some(255)));
            // An extension header whose value is UTF-8 (with a BOM), kept as is.
            let ext = m.header_by_name("extensionHeader-!.%*+_`'~").unwrap();
            assert!(ext.starts_with(b"\xef\xbb\xbf") && std::str::from_utf8(ext).is_ok());
        }),
        "esc01.dat" => Accept(|m| {
            let u = ruri(m);
            assert_eq!(u.user, Some(&b"sips%3Auser%40example.com"[..]));
            assert_eq!(u.user_decoded().unwrap().as_ref(), b"sips:user@example.com");
            assert_eq!(u.host, Host::Name(b"example.net"));
            let to = m.to().unwrap().uri().unwrap();
            assert!(to.equivalent(&Uri::parse(b"sip:user@example.com").unwrap()));
            let from = m.from().unwrap().uri().unwrap();
            assert_eq!(from.user_decoded().unwrap().as_ref(), b"I have spaces");
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            let c = c.uri().unwrap();
            // %6C%72 is "lr"; "v%61lue%25%34%31" decodes once to "value%41", not "valueA".
            assert!(c.equivalent(
                &Uri::parse(b"sip:caller@host5.example.net;lr;name=value%2541").unwrap()
            ));
            assert!(
                !c.equivalent(&Uri::parse(b"sip:caller@host5.example.net;lr;name=valueA").unwrap())
            );
        }),
        "escnull.dat" => Accept(|m| {
            let to = m.to().unwrap().uri().unwrap();
            assert_eq!(to.user_decoded().unwrap().as_ref(), b"null-\x00-null");
            let c: Vec<_> = m.contacts().collect::<Result<_, _>>().unwrap();
            assert_eq!(c.len(), 2);
            let users: Vec<Vec<u8>> = c
                .iter()
                .map(|c| match c {
                    Contact::Addr(a) => a.uri().unwrap().user_decoded().unwrap().into_owned(),
                    Contact::Star => panic!(),
                })
                .collect();
            assert_eq!(users, vec![b"\x00".to_vec(), b"\x00\x00".to_vec()]);
        }),
        "esc02.dat" => Accept(|m| {
            assert_eq!(m.method(), Some(Method::Other));
            assert_eq!(m.method_bytes(), b"RE%47IST%45R");
            assert_eq!(m.to().unwrap().display_name, Some(&b"\"%Z%45\""[..]));
            // C%6Fntact is an unknown header, so there are two Contacts.
            assert_eq!(m.contacts().count(), 2);
            assert!(m.header_by_name("C%6Fntact").is_some());
        }),
        "lwsdisp.dat" => Accept(|m| {
            assert_eq!(m.from().unwrap().display_name, Some(&b"caller"[..]));
            assert_eq!(m.from().unwrap().tag(), Some(&b"323"[..]));
        }),
        "longreq.dat" => Accept(|m| {
            assert!(m.call_id().len() > 100);
            assert!(m.from().unwrap().tag().unwrap().len() > 100);
            assert!(m.to().unwrap().display_name.unwrap().len() > 100);
            assert_eq!(vias(m).len(), 34);
            assert!(m.header_by_name("Unknown-LongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLongLong-Name").is_some());
        }),
        "dblreq.dat" => Accept(|m| {
            // The REGISTER alone; the INVITE octets after it are noise.
            assert_eq!(m.method(), Some(Method::Register));
            assert_eq!(m.as_bytes().len(), 300);
            assert!(m.body().is_empty());
            assert!(!m.as_bytes().windows(6).any(|w| w == b"INVITE"));
        }),
        "semiuri.dat" => Accept(|m| {
            let u = ruri(m);
            assert_eq!(u.user, Some(&b"user;par=u%40example.net"[..]));
            assert_eq!(u.host, Host::Name(b"example.com"));
            assert!(u.params.is_empty());
        }),
        "transports.dat" => Accept(|m| {
            let t: Vec<_> = vias(m).iter().map(|v| v.transport).collect();
            assert_eq!(
                t,
                [
                    Transport::Udp,
                    Transport::Sctp,
                    Transport::Tls,
                    Transport::Other,
                    Transport::Tcp
                ]
            );
        }),
        "mpart01.dat" => Accept(|m| {
            assert_eq!(m.body().len(), 553);
            assert!(m.body().contains(&0));
            assert_eq!(m.content_type(), Some(&b"multipart/mixed"[..]));
        }),
        "unreason.dat" => Accept(|m| {
            assert_eq!(m.status(), Some(200));
            assert!(std::str::from_utf8(m.reason()).unwrap().contains("простое"));
        }),
        "noreason.dat" => Accept(|m| {
            assert_eq!(m.status(), Some(100));
            assert_eq!(m.reason(), b"");
        }),
        "badinv01.dat" => Reject(Error::BadHeader(HeaderName::Via)),
        "clerr.dat" => Reject(Error::ContentLengthExceedsMessage),
        "ncl.dat" => Reject(Error::BadContentLength),
        // RFC 3261 §8.1.1.5: the reason says the number is too large.
        "scalar02.dat" => Reject(Error::CSeqTooLarge),
        "scalarlg.dat" => Reject(Error::CSeqTooLarge),
        "quotbal.dat" => Reject(Error::BadHeader(HeaderName::To)),
        "ltgtruri.dat" => Reject(Error::BadRequestUri),
        "lwsruri.dat" => Reject(Error::BadRequestUri),
        "lwsstart.dat" => Reject(Error::BadRequestUri),
        "trws.dat" => Reject(Error::MalformedStartLine),
        "escruri.dat" => Reject(Error::RequestUriHeaders),
        "baddate.dat" => Ignore(|m| {
            // Date is not used for processing, so it is ignored (allowed by
            // RFC 4475 §3.1.2.12); it stays byte-exact for forwarding.
            assert_eq!(
                m.header(HeaderName::Date),
                Some(&b"Fri, 01 Jan 2010 16:00:00 EST"[..])
            );
        }),
        "regbadct.dat" => Reject(Error::BadHeader(HeaderName::Contact)),
        "badaspec.dat" => Reject(Error::BadHeader(HeaderName::To)),
        // The archive copy lacks the empty line after the headers, which a
        // datagram parser sees before the display-name fault; both are 400.
        "baddn.dat" => Reject(Error::UnterminatedHeaders),
        "badvers.dat" => Reject(Error::VersionNotSupported),
        "mismatch01.dat" => Reject(Error::CSeqMethodMismatch),
        "mismatch02.dat" => Reject(Error::UnknownMethodCSeqMismatch),
        "bigcode.dat" => Reject(Error::BadStatusCode),
        "badbranch.dat" => Accept(|m| {
            // Syntactically valid; the bare cookie means RFC 2543 matching.
            let v = m.top_via().unwrap();
            assert_eq!(v.branch(), Some(&b"z9hG4bK"[..]));
            assert!(!v.is_rfc3261_branch());
        }),
        "insuf.dat" => Reject(Error::MissingHeader(HeaderName::From)),
        "unkscm.dat" => Accept(|m| {
            // Well-formed: the proxy answers 416 when it routes it.
            let e = m.request_uri().unwrap_err();
            assert_eq!((e, e.status()), (Error::UnsupportedUriScheme, 416));
        }),
        "novelsc.dat" => Accept(|m| {
            assert_eq!(m.request_uri().unwrap_err().status(), 416);
        }),
        "unksm2.dat" => Accept(|m| {
            assert_eq!(m.to().unwrap().uri, b"isbn:2983792873");
            assert!(
                m.to().unwrap().uri().is_err(),
                "not a SIP URI: a registrar answers 400"
            );
            assert_eq!(m.from().unwrap().uri, b"http://www.example.com");
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            assert_eq!(c.uri, b"name:John_Smith");
            assert_eq!(ruri(m).scheme, Scheme::Sip);
        }),
        "bext01.dat" => Accept(|m| {
            let pr: Vec<_> = m.proxy_require().collect::<Result<_, _>>().unwrap();
            assert_eq!(
                pr,
                [&b"noProxiesSupportThis"[..], b"norDoAnyProxiesSupportThis"]
            );
            assert_eq!(m.require().count(), 2);
        }),
        "invut.dat" => Accept(|m| {
            assert_eq!(m.content_type(), Some(&b"application/unknownformat"[..]));
        }),
        "regaut01.dat" => Accept(|m| {
            assert!(m
                .header(HeaderName::Authorization)
                .unwrap()
                .starts_with(b"NoOneKnowsThisScheme"));
        }),
        "multi01.dat" => Reject(Error::DuplicateHeader(HeaderName::CSeq)),
        "mcl01.dat" => Reject(Error::DuplicateHeader(HeaderName::ContentLength)),
        "bcast.dat" => Accept(|m| {
            let v = vias(m);
            assert_eq!(v[1].host, b"255.255.255.255");
        }),
        "zeromf.dat" => Accept(|m| {
            assert_eq!(m.max_forwards(), Ok(Some(0)));
        }),
        "cparam01.dat" => Accept(|m| {
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            assert!(c.params.contains("unknownparam"), "a contact-param");
            assert!(
                c.uri().unwrap().param("unknownparam").is_none(),
                "not a url-parameter"
            );
        }),
        "cparam02.dat" => Accept(|m| {
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            assert!(!c.params.contains("unknownparam"));
            assert_eq!(c.uri().unwrap().param("unknownparam"), Some(None));
        }),
        "regescrt.dat" => Accept(|m| {
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            assert_eq!(
                c.uri().unwrap().headers,
                Some(&b"Route=%3Csip:sip.example.com%3E"[..])
            );
        }),
        "sdp01.dat" => Accept(|m| {
            assert_eq!(
                m.header(HeaderName::Accept),
                Some(&b"text/nobodyKnowsThis"[..])
            );
        }),
        "inv2543.dat" => Accept(|m| {
            let v = m.top_via().unwrap();
            assert_eq!(v.branch(), None);
            assert_eq!(m.from().unwrap().tag(), None);
            assert_eq!(m.content_length(), None);
            assert_eq!(m.max_forwards(), Ok(None));
            assert_eq!(m.body().len(), 105);
        }),
        "test.dat" => NoVerdict,
        _ => return None,
    })
}

fn rfc5118(name: &str) -> Option<Expect> {
    use Expect::*;
    Some(match name {
        "ipv6-good" => Accept(|m| {
            assert_eq!(ruri(m).host, Host::V6(b"2001:db8::10", v6("2001:db8::10")));
            assert_eq!(m.top_via().unwrap().host, b"[2001:db8::9:1]");
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            assert!(matches!(c.uri().unwrap().host, Host::V6(_, a) if a == v6("2001:db8::1")));
        }),
        "ipv6-bad" => Reject(Error::BadRequestUri),
        "port-ambiguous" => Accept(|m| {
            let u = ruri(m);
            assert_eq!(
                (u.host, u.port),
                (
                    Host::V6(b"2001:db8::10:5070", v6("2001:db8::10:5070")),
                    None
                )
            );
        }),
        "port-unambiguous" => Accept(|m| {
            let u = ruri(m);
            assert_eq!(
                (u.host, u.port),
                (Host::V6(b"2001:db8::10", v6("2001:db8::10")), Some(5070))
            );
        }),
        "via-received-param-with-delim" => Accept(|m| {
            assert_eq!(
                m.top_via().unwrap().received(),
                Some(&b"[2001:db8::9:255]"[..])
            );
        }),
        "via-received-param-no-delim" => Accept(|m| {
            assert_eq!(
                m.top_via().unwrap().received(),
                Some(&b"2001:db8::9:255"[..])
            );
        }),
        "ipv6-in-sdp" => Accept(|m| {
            assert!(m.body().windows(17).any(|w| w == b"IN IP6 2001:db8::"));
        }),
        "mult-ip-in-header" => Accept(|m| {
            let v = vias(m);
            assert_eq!(v.len(), 3);
            assert_eq!(
                (v[0].host, v[0].port),
                (&b"[2001:db8::9:1]"[..], Some(6050))
            );
            assert_eq!((v[1].host, v[1].port), (&b"192.0.2.1"[..], None));
            assert_eq!((v[2].host, v[2].port), (&b"[2001:db8::9:255]"[..], None));
            assert_eq!(v[2].received(), Some(&b"192.0.2.200"[..]));
        }),
        "mult-ip-in-sdp" => Accept(|m| {
            assert!(m.body().windows(6).any(|w| w == b"IN IP4"));
            assert!(m.body().windows(6).any(|w| w == b"IN IP6"));
        }),
        "ipv4-mapped-ipv6" => Accept(|m| {
            let v = vias(m);
            assert_eq!(
                (v[0].host, v[0].port),
                (&b"[::ffff:192.0.2.10]"[..], Some(19823))
            );
            assert_eq!((v[1].host, v[1].port), (&b"[::ffff:192.0.2.2]"[..], None));
            let Contact::Addr(c) = m.contacts().next().unwrap().unwrap() else {
                panic!()
            };
            let Host::V6(_, a) = c.uri().unwrap().host else {
                panic!()
            };
            assert_eq!(a.to_ipv4_mapped(), Some(Ipv4Addr::new(192, 0, 2, 2)));
        }),
        "ipv6-bug-abnf-3-colons" => Accept(|m| {
            // Tolerated (RFC 5118 §4.10): the same address as the 2-colon form.
            let Host::V6(_, a) = ruri(m).host else {
                panic!()
            };
            assert_eq!(IpAddr::V6(a), IpAddr::V6(v6("2001:db8::192.0.2.1")));
        }),
        "ipv6-correct-abnf-2-colons" => Accept(|m| {
            let Host::V6(_, a) = ruri(m).host else {
                panic!()
            };
            assert_eq!(a, v6("2001:db8::192.0.2.1"));
        }),
        _ => return None,
    })
}

/// Over a stream the same framing faults behave as RFC 4475 requires:
/// wait for more (clerr), or give up on the connection (ncl, mcl01).
#[test]
fn rfc4475_framing_over_streams() {
    let limits = Limits::default();
    let read = |f: &str| std::fs::read(corpus("rfc4475").join(f)).unwrap();
    // The headers are whole; the body is shorter than its Content-Length.
    let clerr = read("clerr.dat");
    assert!(matches!(
        frame_stream(&clerr, &limits),
        Ok(Status::Body(n)) if n > clerr.len()
    ));
    let e = frame_stream(&read("ncl.dat"), &limits).unwrap_err();
    assert_eq!(e, Error::BadContentLength);
    assert!(e.is_framing());
    let e = frame_stream(&read("mcl01.dat"), &limits).unwrap_err();
    assert_eq!(e, Error::DuplicateHeader(HeaderName::ContentLength));
    assert!(e.is_framing());
    // A valid message frames to exactly its length.
    let wsinv = read("wsinv.dat");
    assert_eq!(
        frame_stream(&wsinv, &limits),
        Ok(Status::Complete(wsinv.len()))
    );
    // The trailing INVITE of dblreq is a second message on a stream.
    let dbl = read("dblreq.dat");
    let Ok(Status::Complete(n)) = frame_stream(&dbl, &limits) else {
        panic!()
    };
    assert_eq!(n, 300);
}

/// The corpus is byte-exact: its SHA-256 sums are checked by `.ci/run`
/// with sha256sum; here we check sizes against the manifest, which needs
/// no hashing code.
#[test]
fn corpus_files_have_manifest_sizes() {
    for row in manifest("rfc4475") {
        let len = std::fs::metadata(corpus("rfc4475").join(&row["file"]))
            .unwrap()
            .len();
        assert_eq!(len.to_string(), row["bytes"], "{}", row["file"]);
    }
    for row in manifest("rfc5118") {
        let len = std::fs::metadata(corpus("rfc5118").join(&row["wire_file"]))
            .unwrap()
            .len();
        assert_eq!(len.to_string(), row["wire_bytes"], "{}", row["file"]);
        let len = std::fs::metadata(corpus("rfc5118").join(&row["file"]))
            .unwrap()
            .len();
        assert_eq!(len.to_string(), row["archive_bytes"], "{}", row["file"]);
    }
}

/// The RFC 5118 archive files use bare LF line ends (the `wire/` copies are
/// CRLF). Where the archive's Content-Length is right (the manifest lists
/// no change but LF->CRLF), the LF file parses to the same message.
#[test]
fn rfc5118_archive_files_with_bare_lf_parse() {
    let mut checked = 0;
    for row in manifest("rfc5118") {
        if row["wire_changes"] != "LF->CRLF" || !row["rfc_verdict"].starts_with("valid") {
            continue;
        }
        let lf = std::fs::read(corpus("rfc5118").join(&row["file"])).unwrap();
        let crlf = std::fs::read(corpus("rfc5118").join(&row["wire_file"])).unwrap();
        assert!(
            !lf.windows(2).any(|w| w == b"\r\n"),
            "{}: bare LF only",
            row["file"]
        );
        let (a, b) = (
            parse_and_validate(&lf).unwrap(),
            parse_and_validate(&crlf).unwrap(),
        );
        assert_eq!(
            a.request_uri_bytes(),
            b.request_uri_bytes(),
            "{}",
            row["file"]
        );
        assert_eq!(a.fields().len(), b.fields().len(), "{}", row["file"]);
        assert_eq!(a.call_id(), b.call_id());
        let vias = |m: &Message| {
            m.vias()
                .map(|v| v.unwrap().host.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(vias(&a), vias(&b));
        assert_eq!(a.body(), b.body());
        checked += 1;
    }
    assert_eq!(checked, 6);
}
