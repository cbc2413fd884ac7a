use super::*;
use crate::config;
use crate::registrar::journal::decode;
use crate::sip::{Framing, Limits};

fn cfg() -> config::Registrar {
    config::Registrar {
        domains: vec!["example.com".into()],
        default_expires: 3600,
        min_expires: 60,
        max_expires: 7200,
        max_contacts: 3,
        max_bindings: 100,
        partitions: 16,
        journal_dir: None,
        fsync: crate::registrar::Fsync::Never,
        compact_interval: std::time::Duration::from_secs(300),
        fork: config::Fork::Parallel,
        nat_ping_interval_s: 30,
        nat_ping_misses: 3,
    }
}

const NOW: u64 = 1_000_000;

fn req(call_id: &str, cseq: u32, extra: &str) -> Message {
    let text = format!(
        "REGISTER sip:example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK{cseq}{call_id}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@example.com>;tag=1\r\n\
         To: <sip:alice@example.com>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: {cseq} REGISTER\r\n\
         {extra}Content-Length: 0\r\n\r\n"
    );
    Message::parse(text.into(), Framing::Datagram, &Limits::default()).unwrap()
}

fn src() -> Source {
    Source {
        addr: "10.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        conn: 0,
        nat: crate::config::Nat::Auto,
        via_moved: false,
    }
}

fn run(reg: &Registrar, m: &Message) -> (Reply, Vec<u8>) {
    let mut j = Vec::new();
    let r = register(reg, m, b"alice@example.com", src(), NOW, &mut j);
    (r, j)
}

fn contacts(r: &Reply) -> Vec<String> {
    r.headers
        .iter()
        .filter(|h| h.0 == "Contact")
        .map(|h| String::from_utf8(h.1.clone()).unwrap())
        .collect()
}

#[test]
fn add_refresh_query_and_remove() {
    let reg = Registrar::in_memory(cfg());
    let (r, j) = run(&reg, &req("c1", 1, "Contact: <sip:a@10.0.0.1>\r\n"));
    assert_eq!((r.code, r.changed), (200, true));
    assert_eq!(contacts(&r), vec!["<sip:a@10.0.0.1>;expires=3600"]);
    let d = decode(&j);
    assert_eq!(d.entries.len(), 1);
    assert_eq!(d.entries[0].aor, b"alice@example.com");

    // Refresh with a shorter Expires header; add a second contact with q.
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            2,
            "Contact: <sip:a@10.0.0.1>, <sip:b@10.0.0.2>;q=0.5\r\nExpires: 600\r\n",
        ),
    );
    assert_eq!(r.code, 200);
    assert_eq!(
        contacts(&r),
        vec![
            "<sip:a@10.0.0.1>;expires=600",
            "<sip:b@10.0.0.2>;expires=600;q=0.500"
        ]
    );

    // A query (no Contact) changes nothing and lists both.
    let (r, j) = run(&reg, &req("c1", 3, ""));
    assert_eq!((r.code, r.changed, j.len()), (200, false, 0));
    assert_eq!(contacts(&r).len(), 2);

    // Remove one with expires=0 on the contact.
    let (r, _) = run(
        &reg,
        &req("c1", 4, "Contact: <sip:a@10.0.0.1>;expires=0\r\n"),
    );
    assert_eq!(contacts(&r), vec!["<sip:b@10.0.0.2>;expires=600;q=0.500"]);
    assert!(r.headers.iter().any(|h| h.0 == "Date"));
}

#[test]
fn wildcard_removes_everything_and_needs_expires_zero() {
    let reg = Registrar::in_memory(cfg());
    run(&reg, &req("c1", 1, "Contact: <sip:a@h1>, <sip:b@h2>\r\n"));
    let (r, _) = run(&reg, &req("c2", 1, "Contact: *\r\n"));
    assert_eq!((r.code, r.reason), (400, "Invalid Wildcard Contact"));
    let (r, _) = run(&reg, &req("c2", 1, "Contact: *\r\nExpires: 5\r\n"));
    assert_eq!(r.code, 400);
    let (r, j) = run(&reg, &req("c2", 1, "Contact: *\r\nExpires: 0\r\n"));
    assert_eq!((r.code, contacts(&r).len()), (200, 0));
    assert!(reg.store.get(b"alice@example.com").is_none());
    assert_eq!(decode(&j).entries[0].bindings.len(), 0);
}

#[test]
fn too_brief_is_423_with_min_expires_and_long_is_cut() {
    let reg = Registrar::in_memory(cfg());
    let (r, _) = run(&reg, &req("c1", 1, "Contact: <sip:a@h>;expires=30\r\n"));
    assert_eq!(r.code, 423);
    assert_eq!(r.headers, vec![("Min-Expires", b"60".to_vec())]);
    assert!(reg.store.get(b"alice@example.com").is_none());
    let (r, _) = run(
        &reg,
        &req("c1", 2, "Contact: <sip:a@h>\r\nExpires: 999999\r\n"),
    );
    assert_eq!(contacts(&r), vec!["<sip:a@h>;expires=7200"]);
}

#[test]
fn call_id_and_cseq_ordering() {
    let reg = Registrar::in_memory(cfg());
    run(&reg, &req("c1", 10, "Contact: <sip:a@h>\r\n"));
    // Same Call-ID, lower CSeq: refused, nothing changes.
    let (r, j) = run(&reg, &req("c1", 9, "Contact: <sip:a@h>;expires=0\r\n"));
    assert_eq!((r.code, r.reason, j.len()), (400, "Invalid CSeq Number", 0));
    assert_eq!(
        reg.store.get(b"alice@example.com").unwrap().bindings.len(),
        1
    );
    // The same CSeq again: a retransmission, answered 200.
    let (r, _) = run(&reg, &req("c1", 10, "Contact: <sip:a@h>\r\n"));
    assert_eq!(r.code, 200);
    // Another Call-ID may change it whatever its CSeq.
    let (r, _) = run(&reg, &req("other", 1, "Contact: <sip:a@h>;expires=0\r\n"));
    assert_eq!((r.code, contacts(&r).len()), (200, 0));
}

#[test]
fn equivalent_uris_are_one_binding() {
    let reg = Registrar::in_memory(cfg());
    run(&reg, &req("c1", 1, "Contact: <sip:a@EXAMPLE.net:5060>\r\n"));
    let (r, _) = run(&reg, &req("c1", 2, "Contact: <sip:a@example.net:5060>\r\n"));
    assert_eq!(contacts(&r).len(), 1);
    // The default port spelled out is not the same URI (§19.1.4).
    let (r, _) = run(&reg, &req("c1", 3, "Contact: <sip:a@example.net>\r\n"));
    assert_eq!(contacts(&r).len(), 2);
}

#[test]
fn outbound_instance_and_reg_id_replace_by_pair() {
    let reg = Registrar::in_memory(cfg());
    let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
    run(
        &reg,
        &req(
            "c1",
            1,
            &format!("Contact: <sip:a@10.0.0.1:1111>;{inst};reg-id=1\r\n"),
        ),
    );
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            2,
            &format!("Contact: <sip:a@10.0.0.1:2222>;{inst};reg-id=1\r\n"),
        ),
    );
    let c = contacts(&r);
    assert_eq!(c.len(), 1, "{c:?}");
    assert!(c[0].starts_with("<sip:a@10.0.0.1:2222>;expires=3600;+sip.instance="));
    assert!(c[0].ends_with(";reg-id=1"));
    let b = &reg.store.get(b"alice@example.com").unwrap().bindings[0];
    assert_eq!(b.reg_id, 1);
}

#[test]
fn path_is_stored_and_echoed_when_supported() {
    let reg = Registrar::in_memory(cfg());
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            1,
            "Path: <sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>\r\nSupported: path\r\nContact: <sip:a@h>\r\n",
        ),
    );
    assert_eq!(r.code, 200);
    let path = r.headers.iter().find(|h| h.0 == "Path").unwrap();
    assert_eq!(
        path.1,
        b"<sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>"
    );
    let rec = reg.store.get(b"alice@example.com").unwrap();
    assert_eq!(rec.bindings[0].path.len(), 2);
}

#[test]
fn bounds_and_bad_input() {
    let reg = Registrar::in_memory(cfg());
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            1,
            "Contact: <sip:1@h>, <sip:2@h>, <sip:3@h>, <sip:4@h>\r\n",
        ),
    );
    assert_eq!((r.code, r.reason), (403, "Too Many Contacts"));
    let (r, _) = run(
        &reg,
        &req("c1", 1, "Require: foo, path\r\nContact: <sip:1@h>\r\n"),
    );
    assert_eq!(r.code, 420);
    assert_eq!(r.headers, vec![("Unsupported", b"foo".to_vec())]);
    let (r, _) = run(&reg, &req("c1", 1, "Contact: <sip:1@h>;q=7\r\n"));
    assert_eq!(r.code, 400);
    let (r, _) = run(&reg, &req("c1", 1, "Contact: <sip:1@h>;expires=x\r\n"));
    assert_eq!(r.code, 400);
    assert!(reg.store.is_empty());

    let mut small = cfg();
    small.max_bindings = 1;
    let reg = Registrar::in_memory(small);
    run(&reg, &req("c1", 1, "Contact: <sip:1@h>\r\n"));
    let (r, _) = run(&reg, &req("c1", 2, "Contact: <sip:2@h>\r\n"));
    assert_eq!(r.code, 503);
    assert_eq!(r.headers, vec![("Retry-After", b"60".to_vec())]);
}

#[test]
fn dates() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(1_289_690_940), "Sat, 13 Nov 2010 23:29:00 GMT");
    assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
}

#[test]
fn a_received_parameter_from_a_proxy_in_front_is_where_the_binding_is_reached() {
    let reg = Registrar::in_memory(cfg());
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            1,
            "Contact: <sip:a@192.168.1.5:5060>;received=\"sip:203.0.113.7:40000\"\r\n",
        ),
    );
    assert_eq!(r.code, 200);
    let rec = reg.store.get(b"alice@example.com").unwrap();
    let b = &rec.bindings[0];
    assert_eq!(b.source, "203.0.113.7:40000".parse().unwrap());
    assert!(b.nat);
    assert_eq!(&*b.contact, b"sip:a@192.168.1.5:5060");
    let (r, _) = run(
        &reg,
        &req(
            "c1",
            2,
            "Contact: <sip:a@10.0.0.1>;received=\"sip:example.net\"\r\n",
        ),
    );
    assert_eq!((r.code, r.reason), (400, "Bad Contact received"));
}

#[test]
fn nat_is_detected_from_the_via_and_the_contact() {
    // The helper's source is 10.0.0.1:5060 and its Via says so.
    let nat = |contact: &str| {
        let reg = Registrar::in_memory(cfg());
        run(&reg, &req("n", 1, &format!("Contact: <{contact}>\r\n")));
        let rec = reg.store.get(b"alice@example.com").unwrap();
        rec.bindings[0].nat
    };
    assert!(!nat("sip:a@10.0.0.1:5060"), "the source itself");
    assert!(nat("sip:a@192.168.7.7:5060"), "private, not the source");
    assert!(nat("sip:a@100.64.1.1"), "RFC 6598 shared space");
    assert!(
        !nat("sip:a@198.51.100.9:5070"),
        "public: a third-party registration"
    );
    assert!(nat("sip:a@198.51.100.9:5070;ob"), "outbound asked for");
}
