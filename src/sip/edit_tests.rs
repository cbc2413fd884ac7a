use super::*;
use crate::sip::{Framing, Limits};
use bytes::Bytes;

const REQ: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds, SIP/2.0/TCP second.example.com;branch=z9hG4bK2\r\n\
Via: SIP/2.0/UDP third.example.com;branch=z9hG4bK3\r\n\
Max-Forwards: 70\r\n\
Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 314159 INVITE\r\n\
X-Odd:   keep   this ;; exactly\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

fn parse(s: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(s),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap()
}

#[test]
fn forwarding_edits_in_one_pass() {
    let m = parse(REQ.as_bytes());
    let mut e = Edits::new();
    e.insert_via(&m, b"SIP/2.0/UDP proxy.example.com;branch=z9hG4bKnew");
    e.set_max_forwards(&m, 69);
    e.remove_first_route(&m).unwrap();
    e.insert_record_route(&m, b"<sip:proxy.example.com;lr>");
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let f = parse(&out);
    let vias: Vec<_> = f.vias().map(|v| v.unwrap().host).collect();
    assert_eq!(
        vias,
        vec![
            &b"proxy.example.com"[..],
            b"pc33.atlanta.example.com",
            b"second.example.com",
            b"third.example.com"
        ]
    );
    assert_eq!(f.max_forwards(), Ok(Some(69)));
    let routes: Vec<_> = f.routes().map(|r| r.unwrap().uri).collect();
    assert_eq!(routes, vec![&b"sip:p2.example.com;lr"[..]]);
    let rr: Vec<_> = f.record_routes().map(|r| r.unwrap().uri).collect();
    assert_eq!(rr, vec![&b"sip:proxy.example.com;lr"[..]]);
    assert_eq!(f.body(), b"v=0\n");
    // Untouched headers are byte-exact.
    let text = String::from_utf8(out.clone()).unwrap();
    assert!(text.contains("X-Odd:   keep   this ;; exactly\r\n"));
    assert!(text.contains("From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"));
    // Reuse: clear and apply nothing gives the original back.
    e.clear();
    e.apply(&m, &mut out);
    assert_eq!(out, REQ.as_bytes());
}

#[test]
fn remove_top_via_of_a_response() {
    let m = parse(REQ.as_bytes());
    let mut e = Edits::new();
    e.remove_top_via(&m).unwrap();
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let f = parse(&out);
    let hosts: Vec<_> = f.vias().map(|v| v.unwrap().host).collect();
    assert_eq!(
        hosts,
        vec![&b"second.example.com"[..], b"third.example.com"]
    );
    // Removing again takes the whole remaining first field's value.
    let mut e = Edits::new();
    e.remove_top_via(&f).unwrap();
    e.apply(&f, &mut out);
    let g = parse(&out);
    assert_eq!(g.top_via().unwrap().host, b"third.example.com");
    assert_eq!(g.header_values(HeaderName::Via).count(), 1);
}

#[test]
fn max_forwards_inserted_when_absent_and_uri_replaced() {
    let s = REQ.replace("Max-Forwards: 70\r\n", "");
    let m = parse(s.as_bytes());
    let mut e = Edits::new();
    e.set_max_forwards(&m, 70);
    e.set_request_uri(&m, b"sip:bob@192.0.2.4:5062");
    e.add_header(&m, "X-Added", b"yes");
    e.remove_headers(&m, HeaderName::Route);
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let f = parse(&out);
    assert_eq!(f.max_forwards(), Ok(Some(70)));
    assert_eq!(f.request_uri_bytes(), Some(&b"sip:bob@192.0.2.4:5062"[..]));
    assert_eq!(f.header_by_name("x-added"), Some(&b"yes"[..]));
    assert_eq!(f.routes().count(), 0);
}

#[test]
fn overlapping_edits_are_clipped_not_duplicated() {
    let m = parse(REQ.as_bytes());
    let mut e = Edits::new();
    e.remove_headers(&m, HeaderName::MaxForwards);
    e.set_max_forwards(&m, 5); // edits inside a deleted field
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let f = parse(&out);
    // The deletion won; the neighbours are intact.
    assert_eq!(f.header_values(HeaderName::MaxForwards).count(), 0);
    assert_eq!(f.routes().count(), 2);
    assert_eq!(f.fields().len(), m.fields().len() - 1);
}

#[test]
fn trailing_datagram_noise_is_not_forwarded() {
    let mut d = REQ.as_bytes().to_vec();
    d.extend_from_slice(b"INVITE noise");
    let m = parse(&d);
    let mut e = Edits::new();
    e.set_max_forwards(&m, 1);
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    assert!(out.ends_with(b"\r\n\r\nv=0\n"));
}

#[test]
fn small_numbers() {
    for n in [0u8, 7, 10, 69, 100, 255] {
        assert_eq!(itoa_u8(n).as_bytes(), n.to_string().as_bytes());
    }
}

#[test]
fn stamp_received_and_rport() {
    let base = REQ.replace(
        "SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds",
        "SIP/2.0/UDP 192.0.2.10:5070;rport;branch=z9hG4bK776asdhds;received=1.1.1.1",
    );
    let m = parse(base.as_bytes());
    let mut e = Edits::new();
    assert!(e.stamp_top_via(&m, "192.0.2.10:40000".parse().unwrap()));
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    let f = parse(&out);
    let v = f.top_via().unwrap();
    assert_eq!(v.rport(), Some(Some(40000)));
    assert_eq!(v.received(), Some(&b"192.0.2.10"[..]));
    assert_eq!(v.branch(), Some(&b"z9hG4bK776asdhds"[..]));
    assert_eq!(f.vias().count(), 3, "the other Via values survive");

    // Without rport, received only when the host differs.
    let m = parse(REQ.as_bytes());
    let mut e = Edits::new();
    assert!(e.stamp_top_via(&m, "198.51.100.7:5060".parse().unwrap()));
    e.apply(&m, &mut out);
    let f = parse(&out);
    assert_eq!(f.top_via().unwrap().received(), Some(&b"198.51.100.7"[..]));
    assert_eq!(f.top_via().unwrap().rport(), None);

    let same = REQ.replace("pc33.atlanta.example.com;branch", "[2001:db8::1];branch");
    let m = parse(same.as_bytes());
    let mut e = Edits::new();
    assert!(e.stamp_top_via(&m, "[2001:db8::1]:5060".parse().unwrap()));
    assert!(e.is_empty(), "nothing to stamp");
}

#[test]
fn remove_any_list_value() {
    let s = REQ.replace("Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n", "Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com;lr>\r\n");
    let m = parse(s.as_bytes());
    let routes = |out: &[u8]| -> Vec<Vec<u8>> {
        parse(out)
            .routes()
            .map(|r| r.unwrap().uri.to_vec())
            .collect()
    };
    let mut out = Vec::new();
    for (k, want) in [(0, ["p2", "p3"]), (1, ["p1", "p3"]), (2, ["p1", "p2"])] {
        let mut e = Edits::new();
        assert_eq!(e.remove_list_value(&m, HeaderName::Route, k), Ok(true));
        e.apply(&m, &mut out);
        let want: Vec<Vec<u8>> = want
            .iter()
            .map(|h| format!("sip:{h}.example.com;lr").into_bytes())
            .collect();
        assert_eq!(routes(&out), want, "k={k}");
    }
    assert_eq!(
        Edits::new().remove_list_value(&m, HeaderName::Route, 3),
        Ok(false)
    );
}

#[test]
fn retain_list_values_across_fields() {
    let s = REQ.replace("Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\n", "Route: <sip:p1.example.com;lr>,\r\n <sip:p2.example.com;lr>\r\nRoute: <sip:p3.example.com;lr>, <sip:p4.example.com;lr>\r\n");
    let m = parse(s.as_bytes());
    let routes = |out: &[u8]| -> Vec<String> {
        parse(out)
            .routes()
            .map(|r| {
                String::from_utf8(r.unwrap().uri.to_vec())
                    .unwrap()
                    .replace(".example.com;lr", "")
                    .replace("sip:", "")
            })
            .collect()
    };
    let mut out = Vec::new();
    for (drop, want) in [
        (&[0, 1][..], &["p3", "p4"][..]),
        (&[0, 3], &["p2", "p3"]),
        (&[1, 2], &["p1", "p4"]),
        (&[0, 1, 2, 3], &[]),
        (&[], &["p1", "p2", "p3", "p4"]),
    ] {
        let mut e = Edits::new();
        e.retain_list_values(&m, HeaderName::Route, |k| !drop.contains(&k))
            .unwrap();
        e.apply(&m, &mut out);
        assert_eq!(routes(&out), want, "drop {drop:?}");
        if drop.is_empty() {
            assert_eq!(out, s.as_bytes(), "nothing dropped: byte-exact");
        }
    }
}

#[test]
fn a_contact_uri_parameter_goes_inside_the_uri() {
    let contact = |c: &str| {
        let m = parse(format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContact: {c}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        let mut e = Edits::new();
        let added = e.add_contact_uri_param(&m, b"alias=192.0.2.7~5062~1");
        let mut out = Vec::new();
        e.apply(&m, &mut out);
        let f = parse(&out);
        (
            added,
            String::from_utf8(f.header(HeaderName::Contact).unwrap().to_vec()).unwrap(),
        )
    };
    assert_eq!(
        contact("\"A <b>\" <sip:a@10.0.0.1:5060;transport=udp>;expires=60"),
        (
            true,
            "\"A <b>\" <sip:a@10.0.0.1:5060;transport=udp;alias=192.0.2.7~5062~1>;expires=60"
                .into()
        )
    );
    assert_eq!(
        contact("sip:a@10.0.0.1;expires=60"),
        (
            true,
            "<sip:a@10.0.0.1;alias=192.0.2.7~5062~1>;expires=60".into()
        )
    );
    assert_eq!(
        contact("sip:a@10.0.0.1"),
        (true, "<sip:a@10.0.0.1;alias=192.0.2.7~5062~1>".into())
    );
    assert_eq!(contact("*"), (false, "*".into()));
}
