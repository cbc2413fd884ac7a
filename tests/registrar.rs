//! The registrar, digest authentication and location routing over
//! loopback, with the Rust UA: register, refresh, unregister, wildcard,
//! 423, challenge and authenticated retry, wrong password, replayed nonce,
//! calls to registered users (stateless, stateful parallel and serial),
//! Path, expiry.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use siphon::auth::client_response;
use siphon::sip::{HeaderName, Message};
use siphon::testkit::Ua;

const REG: &str = "[registrar]\ndomains = [\"example.com\"]\nmin_expires = 1\n";

fn register(ua: &Ua, user: &str, call_id: &str, cseq: u32, extra: &str) -> Vec<u8> {
    let addr = ua.addr;
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK-{call_id}-{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{user}@example.com>;tag=f{cseq}\r\nTo: <sip:{user}@example.com>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn contacts(m: &Message) -> Vec<String> {
    m.header_values(HeaderName::Contact)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

fn ua() -> Ua {
    Ua::bind("127.0.0.1", Duration::from_secs(3)).unwrap()
}

/// Send and return the answer.
fn ask(ua: &Ua, to: SocketAddr, msg: &[u8]) -> Message {
    ua.send(to, msg).unwrap();
    ua.expect().0
}

/// Digest credentials for a REGISTER to `sip:example.com`, answering `ch`.
fn reg_cred(ch: &str, user: &str, password: &str, nc: u32) -> String {
    client_response(ch, user, password, "REGISTER", "sip:example.com", "cn", nc).unwrap()
}

/// A REGISTER with `contact` (a Contact line) and the credentials `cred`,
/// and its answer.
fn ask_authed(
    ua: &Ua,
    to: SocketAddr,
    user: &str,
    call_id: &str,
    cseq: u32,
    contact: &str,
    cred: &str,
) -> Message {
    let extra = format!("{contact}Authorization: {cred}\r\n");
    ask(ua, to, &register(ua, user, call_id, cseq, &extra))
}

#[test]
fn register_refresh_query_unregister_wildcard_and_423() {
    let p = common::start_on(1, "127.0.0.1", &["udp"], REG);
    let u = ua();
    let c = format!("<sip:bob@{}>", u.addr);

    let r = ask(
        &u,
        p.addr,
        &register(&u, "bob", "r1", 1, &format!("Contact: {c}\r\n")),
    );
    assert_eq!(r.status(), Some(200));
    assert_eq!(contacts(&r), vec![format!("{c};expires=3600")]);
    assert!(r.header(HeaderName::Date).is_some());

    // Refresh with Expires: 60, and a second contact.
    let r = ask(
        &u,
        p.addr,
        &register(
            &u,
            "bob",
            "r1",
            2,
            &format!("Contact: {c}, <sip:bob@10.9.9.9>;q=0.1\r\nExpires: 60\r\n"),
        ),
    );
    assert_eq!(
        contacts(&r),
        vec![
            format!("{c};expires=60"),
            "<sip:bob@10.9.9.9>;expires=60;q=0.100".to_string()
        ]
    );
    // A query.
    let r = ask(&u, p.addr, &register(&u, "bob", "r1", 3, ""));
    assert_eq!((r.status(), contacts(&r).len()), (Some(200), 2));
    // 423 below min_expires (1 s here): 0 < expires < 1 is impossible, so
    // use a registrar whose minimum is higher in the next test; here the
    // unregister of one contact.
    let r = ask(
        &u,
        p.addr,
        &register(
            &u,
            "bob",
            "r1",
            4,
            "Contact: <sip:bob@10.9.9.9>;expires=0\r\n",
        ),
    );
    assert_eq!(contacts(&r), vec![format!("{c};expires=60")]);
    // Wildcard.
    let r = ask(
        &u,
        p.addr,
        &register(&u, "bob", "r1", 5, "Contact: *\r\nExpires: 0\r\n"),
    );
    assert_eq!((r.status(), contacts(&r).len()), (Some(200), 0));
    let r = ask(&u, p.addr, &register(&u, "bob", "r1", 6, "Contact: *\r\n"));
    assert_eq!(r.status(), Some(400));
    // A domain not served.
    let other = String::from_utf8(register(&u, "bob", "r2", 1, &format!("Contact: {c}\r\n")))
        .unwrap()
        .replace("To: <sip:bob@example.com>", "To: <sip:bob@example.org>");
    let r = ask(&u, p.addr, other.as_bytes());
    assert_eq!(r.status(), Some(403));
    assert_eq!(r.reason(), b"Domain Not Served");
    let s = common::settled(&p.rt, |s| s.registers >= 7);
    assert_eq!(s.registers, 7);
}

#[test]
fn interval_too_brief_and_a_binding_that_expires() {
    let p = common::start_on(
        1,
        "127.0.0.1",
        &["udp"],
        // carol is a provisioned user (auth users), not challenged.
        "[registrar]\ndomains = [\"example.com\"]\nmin_expires = 2\n[auth]\nregister = false\nusers = { carol = \"x\" }\n",
    );
    let u = ua();
    let c = format!("<sip:carol@{}>", u.addr);
    let r = ask(
        &u,
        p.addr,
        &register(&u, "carol", "e1", 1, &format!("Contact: {c};expires=1\r\n")),
    );
    assert_eq!(r.status(), Some(423));
    assert_eq!(r.header(HeaderName::MinExpires), Some(&b"2"[..]));
    let r = ask(
        &u,
        p.addr,
        &register(&u, "carol", "e1", 2, &format!("Contact: {c};expires=2\r\n")),
    );
    assert_eq!(contacts(&r), vec![format!("{c};expires=2")]);
    std::thread::sleep(Duration::from_millis(2100));
    let r = ask(&u, p.addr, &register(&u, "carol", "e1", 3, ""));
    assert_eq!((r.status(), contacts(&r).len()), (Some(200), 0));
    // No live binding: 480, for a known user and an unknown AOR alike
    // (the answer does not tell which users exist).
    let caller = ua();
    let inv = caller.request("INVITE", "sip:carol@example.com", "x1", "z9hG4bKx1", 1, "");
    assert_eq!(ask(&caller, p.addr, &inv).status(), Some(480));
    let inv = caller.request("INVITE", "sip:nobody@example.com", "x2", "z9hG4bKx2", 1, "");
    assert_eq!(ask(&caller, p.addr, &inv).status(), Some(480));
}

const AUTH: &str = "[registrar]\ndomains = [\"example.com\"]\n[auth]\nrealm = \"example.com\"\nalgorithms = [\"SHA-256\", \"MD5\"]\nrequests = [\"INVITE\"]\nusers = { alice = \"wonderland\", bob = \"builder\" }\n";

fn challenge(m: &Message, name: HeaderName, alg: &str) -> String {
    m.header_values(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .find(|v| v.contains(&format!("algorithm={alg}")))
        .unwrap_or_else(|| panic!("no {alg} challenge in {m:?}"))
}

#[test]
fn digest_challenge_retry_wrong_password_and_replay() {
    let p = common::start_on(1, "127.0.0.1", &["udp"], AUTH);
    let u = ua();
    let c = format!("Contact: <sip:alice@{}>\r\n", u.addr);
    let r = ask(&u, p.addr, &register(&u, "alice", "a1", 1, &c));
    assert_eq!(r.status(), Some(401));
    let offered: Vec<String> = r
        .header_values(HeaderName::WwwAuthenticate)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    assert_eq!(offered.len(), 2, "SHA-256 and MD5: {offered:?}");
    assert!(offered[0].contains("algorithm=SHA-256"));
    assert!(offered[1].contains("algorithm=MD5"));

    for (i, alg) in ["SHA-256", "MD5"].iter().enumerate() {
        // A fresh challenge (nonce) for each algorithm.
        let r = ask(&u, p.addr, &register(&u, "alice", "a1", 100 + i as u32, &c));
        let ch = challenge(&r, HeaderName::WwwAuthenticate, alg);
        let cseq = 2 + i as u32 * 10;
        let cred = reg_cred(&ch, "alice", "wonderland", 1);
        let ok = ask_authed(&u, p.addr, "alice", "a1", cseq, &c, &cred);
        assert_eq!(ok.status(), Some(200), "{alg}");
        // The same credentials again (the same nc) on a new transaction:
        // a replay, challenged afresh.
        let again = ask_authed(&u, p.addr, "alice", "a1", cseq + 1, &c, &cred);
        assert_eq!(again.status(), Some(401), "{alg} replay");
        // A retransmission of the accepted REGISTER gets its 200 again.
        let rt = ask_authed(&u, p.addr, "alice", "a1", cseq, &c, &cred);
        assert_eq!(rt.status(), Some(200), "{alg} retransmission");
        // The next nc on the same nonce is fine.
        let cred2 = reg_cred(&ch, "alice", "wonderland", 2);
        let ok = ask_authed(&u, p.addr, "alice", "a1", cseq + 2, &c, &cred2);
        assert_eq!(ok.status(), Some(200), "{alg} nc=2");
    }

    // Wrong password: 403; somebody else's AOR: 403.
    let ch = challenge(&r, HeaderName::WwwAuthenticate, "MD5");
    let bad = reg_cred(&ch, "alice", "rabbit", 9);
    let no = ask_authed(&u, p.addr, "alice", "a1", 50, &c, &bad);
    assert_eq!(no.status(), Some(403));
    let bobs = reg_cred(&ch, "bob", "builder", 1);
    let no = ask_authed(&u, p.addr, "alice", "a1", 51, &c, &bobs);
    assert_eq!(no.status(), Some(403));
    let s = common::settled(&p.rt, |s| s.auth_failures >= 2);
    assert_eq!(s.auth_failures, 2);
    assert!(s.auth_challenges >= 3);
}

/// A stateful proxy with auth on INVITE: alice registers (authenticated),
/// bob calls her (407, then with credentials), she answers, bob gets 200.
#[test]
fn authenticated_call_to_a_registered_user() {
    let p = common::start_on(
        1,
        "127.0.0.1",
        &["udp"],
        &format!("[proxy]\nmode = \"stateful\"\n{AUTH}"),
    );
    let alice = ua();
    let c = format!("Contact: <sip:alice@{}>\r\n", alice.addr);
    let r = ask(&alice, p.addr, &register(&alice, "alice", "a1", 1, &c));
    let ch = challenge(&r, HeaderName::WwwAuthenticate, "SHA-256");
    let cred = reg_cred(&ch, "alice", "wonderland", 1);
    let r = ask_authed(&alice, p.addr, "alice", "a1", 2, &c, &cred);
    assert_eq!(r.status(), Some(200));

    let bob = ua();
    let invite = |cseq: u32, extra: &str| {
        String::from_utf8(bob.request(
            "INVITE",
            "sip:alice@example.com",
            "call1",
            &format!("z9hG4bKc{cseq}"),
            cseq,
            extra,
        ))
        .unwrap()
        .replace(
            &format!("From: <sip:alice@{}>", bob.addr),
            "From: <sip:bob@example.com>",
        )
        .into_bytes()
    };
    let r = ask(&bob, p.addr, &invite(1, ""));
    assert_eq!(r.status(), Some(407));
    let ch = challenge(&r, HeaderName::ProxyAuthenticate, "MD5");
    let cred = client_response(
        &ch,
        "bob",
        "builder",
        "INVITE",
        "sip:alice@example.com",
        "y",
        1,
    )
    .unwrap();
    bob.send(
        p.addr,
        &invite(2, &format!("Proxy-Authorization: {cred}\r\n")),
    )
    .unwrap();
    let (trying, _) = bob.expect();
    assert_eq!(trying.status(), Some(100));
    let (inv, from) = alice.expect();
    assert_eq!(
        inv.request_uri_bytes(),
        Some(format!("sip:alice@{}", alice.addr).as_bytes())
    );
    alice.send(from, &alice.response(&inv, 200, "OK")).unwrap();
    let (ok, _) = bob.expect();
    assert_eq!(ok.status(), Some(200));
}

#[test]
fn stateless_call_goes_to_the_best_contact_with_path_as_route() {
    let p = common::start_on(1, "127.0.0.1", &["udp"], REG);
    let hi = ua();
    let lo = ua();
    let r = ask(
        &hi,
        p.addr,
        &register(
            &hi,
            "dave",
            "d1",
            1,
            &format!(
                "Contact: <sip:dave@{}>;q=0.9, <sip:dave@{}>;q=0.2\r\nPath: <sip:{};lr>\r\nSupported: path\r\n",
                hi.addr, lo.addr, hi.addr
            ),
        ),
    );
    assert_eq!(r.status(), Some(200));
    assert!(r.header(HeaderName::Path).is_some());
    let caller = ua();
    caller
        .send(
            p.addr,
            &caller.request("MESSAGE", "sip:dave@example.com", "m1", "z9hG4bKm1", 1, ""),
        )
        .unwrap();
    // The Path (our `hi` UA) is the next hop, as a Route.
    let (m, _) = hi.expect();
    assert_eq!(
        m.request_uri_bytes(),
        Some(format!("sip:dave@{}", hi.addr).as_bytes())
    );
    assert_eq!(
        m.header(HeaderName::Route),
        Some(format!("<sip:{};lr>", hi.addr).as_bytes())
    );
    lo.set_timeout(Duration::from_millis(200)).unwrap();
    assert!(lo.recv().is_none(), "stateless: only the best contact");
}

#[test]
fn stateful_parallel_and_serial_forks_to_contacts() {
    for fork in ["parallel", "serial"] {
        let p = common::start_on(
            1,
            "127.0.0.1",
            &["udp"],
            &format!("[proxy]\nmode = \"stateful\"\n{REG}fork = \"{fork}\"\n"),
        );
        let a = ua();
        let b = ua();
        let r = ask(
            &a,
            p.addr,
            &register(
                &a,
                "erin",
                "e1",
                1,
                &format!(
                    "Contact: <sip:erin@{}>;q=1, <sip:erin@{}>;q=0.5\r\n",
                    a.addr, b.addr
                ),
            ),
        );
        assert_eq!(r.status(), Some(200));
        let caller = ua();
        caller
            .send(
                p.addr,
                &caller.request("INVITE", "sip:erin@example.com", "f1", "z9hG4bKf1", 1, ""),
            )
            .unwrap();
        assert_eq!(caller.expect().0.status(), Some(100));
        let (inv_a, from_a) = a.expect();
        if fork == "parallel" {
            // a rings (a CANCEL waits for a provisional, §9.1); b answers.
            a.send(from_a, &a.response(&inv_a, 180, "Ringing")).unwrap();
            assert_eq!(caller.expect().0.status(), Some(180));
            let (inv_b, from_b) = b.expect();
            b.send(from_b, &b.response(&inv_b, 200, "OK")).unwrap();
            assert_eq!(caller.expect().0.status(), Some(200));
            // a is cancelled.
            let (cancel, _) = a.expect();
            assert_eq!(cancel.method_bytes(), b"CANCEL");
        } else {
            // Serial: the best contact first; its 486 moves on to the next.
            b.set_timeout(Duration::from_millis(200)).unwrap();
            assert!(b.recv().is_none(), "serial: one at a time");
            b.set_timeout(Duration::from_secs(3)).unwrap();
            a.send(from_a, &a.response(&inv_a, 486, "Busy Here"))
                .unwrap();
            let (ack, _) = a.expect();
            assert_eq!(ack.method_bytes(), b"ACK");
            let (inv_b, from_b) = b.expect();
            assert_eq!(
                inv_b.request_uri_bytes(),
                Some(format!("sip:erin@{}", b.addr).as_bytes())
            );
            b.send(from_b, &b.response(&inv_b, 200, "OK")).unwrap();
            assert_eq!(caller.expect().0.status(), Some(200));
        }
    }
}

/// Users from a users file, one with HA1s only (MD5 and SHA-256), as in
/// config/registrar-users.txt: both challenges can be answered.
#[test]
fn users_file_with_ha1_credentials() {
    let dir = std::env::temp_dir().join(format!("siphon-users-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("users.txt");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/config/registrar-users.txt"),
        &file,
    )
    .unwrap();
    let p = common::start_on(
        1,
        "127.0.0.1",
        &["udp"],
        &format!(
            "{REG}[auth]\nrealm = \"example.com\"\nalgorithms = [\"SHA-256\", \"MD5\"]\nusers_file = \"{}\"\n",
            file.display()
        ),
    );
    let u = ua();
    let c = format!("Contact: <sip:carol@{}>\r\n", u.addr);
    for (i, alg) in ["SHA-256", "MD5"].iter().enumerate() {
        let cseq = 1 + 2 * i as u32;
        let r = ask(&u, p.addr, &register(&u, "carol", "h1", cseq, &c));
        assert_eq!(r.status(), Some(401));
        let ch = challenge(&r, HeaderName::WwwAuthenticate, alg);
        let cred = reg_cred(&ch, "carol", "carol-secret", 1);
        let ok = ask_authed(&u, p.addr, "carol", "h1", cseq + 1, &c, &cred);
        assert_eq!(ok.status(), Some(200), "{alg}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `algorithms` orders the challenges (for UAs that take the first one,
/// such as SIPp 3.6.1) and refuses credentials for one not offered.
#[test]
fn configured_algorithms_order_and_limit_the_challenges() {
    let p = common::start_on(
        1,
        "127.0.0.1",
        &["udp"],
        &format!("{REG}[auth]\nrealm = \"example.com\"\nalgorithms = [\"MD5\"]\nusers = {{ alice = \"w\" }}\n"),
    );
    let u = ua();
    let c = format!("Contact: <sip:alice@{}>\r\n", u.addr);
    let r = ask(&u, p.addr, &register(&u, "alice", "g1", 1, &c));
    let offered: Vec<&[u8]> = r.header_values(HeaderName::WwwAuthenticate).collect();
    assert_eq!(offered.len(), 1);
    let md5 = String::from_utf8_lossy(offered[0]).into_owned();
    assert!(md5.contains("algorithm=MD5"), "{md5}");
    // An SHA-256 answer to the same nonce: not offered, 400.
    let sha = md5.replace("algorithm=MD5", "algorithm=SHA-256");
    let cred = reg_cred(&sha, "alice", "w", 1);
    let r = ask_authed(&u, p.addr, "alice", "g1", 2, &c, &cred);
    assert_eq!(
        (r.status(), r.reason()),
        (Some(400), &b"Digest Algorithm Not Offered"[..])
    );
    let cred = reg_cred(&md5, "alice", "w", 1);
    let r = ask_authed(&u, p.addr, "alice", "g1", 3, &c, &cred);
    assert_eq!(r.status(), Some(200));
}

/// A UA registered over TCP is called over the connection it registered
/// on (its Contact names a port nobody listens on).
#[test]
fn a_tcp_registration_is_called_over_its_connection() {
    let p = common::start_on(
        1,
        "127.0.0.1",
        &["udp", "tcp"],
        &format!("[proxy]\nmode = \"stateful\"\n{REG}"),
    );
    let mut phone =
        siphon::testkit::TcpUa::connect("127.0.0.1", p.addr, Duration::from_secs(3)).unwrap();
    let me = phone.addr;
    let reg = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKtcpreg\r\nMax-Forwards: 70\r\nFrom: <sip:frank@example.com>;tag=1\r\nTo: <sip:frank@example.com>\r\nCall-ID: tcpreg\r\nCSeq: 1 REGISTER\r\nContact: <sip:frank@127.0.0.1:9;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    );
    phone.send(reg.as_bytes()).unwrap();
    assert_eq!(phone.expect().status(), Some(200));
    let caller = ua();
    caller
        .send(
            p.addr,
            &caller.request("INVITE", "sip:frank@example.com", "t1", "z9hG4bKt1", 1, ""),
        )
        .unwrap();
    assert_eq!(caller.expect().0.status(), Some(100));
    let inv = phone.expect();
    assert_eq!(inv.method_bytes(), b"INVITE");
    assert_eq!(
        inv.request_uri_bytes(),
        Some(&b"sip:frank@127.0.0.1:9;transport=tcp"[..])
    );
    let ok = phone.response(&inv, 200, "OK");
    phone.send(&ok).unwrap();
    assert_eq!(caller.expect().0.status(), Some(200));
}

/// What `svcrack` does: guess passwords for a known user. A nonce serves
/// `max_nonce_failures` failed guesses, then is stale (a fresh challenge);
/// `[guard] auth_failures` failures from one address ban it (no answer at
/// all); a user elsewhere registers as usual.
#[test]
fn password_guessing_wears_out_nonces_and_bans_the_guesser() {
    let p = common::start_on(
        1,
        "127.0.14.1",
        &["udp"],
        &format!("{AUTH}max_nonce_failures = 3\n[guard]\nmax_requests = 0\nauth_failures = 8\n"),
    );
    let u = Ua::bind("127.0.14.2", Duration::from_secs(3)).unwrap();
    let c = format!("Contact: <sip:alice@{}>\r\n", u.addr);
    let mut cseq = 1;
    let fresh = |u: &Ua, cseq: &mut u32| {
        *cseq += 1;
        let r = ask(u, p.addr, &register(u, "alice", "g1", *cseq, &c));
        assert_eq!(r.status(), Some(401));
        challenge(&r, HeaderName::WwwAuthenticate, "MD5")
    };
    let mut failures = 0;
    for round in 0..2 {
        let ch = fresh(&u, &mut cseq);
        for nc in 1..=3 {
            cseq += 1;
            let guess = reg_cred(&ch, "alice", &format!("guess{round}{nc}"), nc);
            let r = ask_authed(&u, p.addr, "alice", "g1", cseq, &c, &guess);
            assert_eq!(r.status(), Some(403), "round {round} guess {nc}");
            failures += 1;
        }
        // The nonce is worn out: even the right password is sent back for
        // a fresh challenge.
        cseq += 1;
        let right = reg_cred(&ch, "alice", "wonderland", 4);
        let r = ask_authed(&u, p.addr, "alice", "g1", cseq, &c, &right);
        assert_eq!(r.status(), Some(401), "round {round}: stale");
        assert!(challenge(&r, HeaderName::WwwAuthenticate, "MD5").contains("stale=true"));
    }
    let ch = fresh(&u, &mut cseq);
    for nc in 1..=2 {
        cseq += 1;
        let guess = reg_cred(&ch, "alice", "guess-last", nc);
        let r = ask_authed(&u, p.addr, "alice", "g1", cseq, &c, &guess);
        assert_eq!(r.status(), Some(403));
        failures += 1;
    }
    assert_eq!(failures, 8);
    // Banned: nothing answers it any more, whatever it sends.
    u.set_timeout(Duration::from_millis(300)).unwrap();
    u.send(p.addr, &register(&u, "alice", "g2", 1, &c)).unwrap();
    assert!(u.recv().is_none(), "a banned source gets no answer");
    let s = common::settled(&p.rt, |s| s.dropped(siphon::proxy::Drop::Banned) >= 1);
    assert_eq!(s.dropped(siphon::proxy::Drop::Banned), 1);
    assert_eq!(s.auth_failures, 8);
    // alice herself, from her own address, registers.
    let a = Ua::bind("127.0.14.3", Duration::from_secs(3)).unwrap();
    let c = format!("Contact: <sip:alice@{}>\r\n", a.addr);
    let r = ask(&a, p.addr, &register(&a, "alice", "a1", 1, &c));
    let ch = challenge(&r, HeaderName::WwwAuthenticate, "MD5");
    let ok = ask_authed(
        &a,
        p.addr,
        "alice",
        "a1",
        2,
        &c,
        &reg_cred(&ch, "alice", "wonderland", 1),
    );
    assert_eq!(ok.status(), Some(200));
}
