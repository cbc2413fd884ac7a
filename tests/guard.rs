//! The guard (`[guard]`) over real loopback sockets: a flood from one
//! address is banned while another address's calls go through; the admin
//! API lists and lifts bans; a banned source can be answered instead of
//! dropped. Password guessing is in `registrar.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use siphon::config::Config;
use siphon::metrics::{Admin, Metrics};
use siphon::proxy::Drop;
use siphon::rt::Control;
use siphon::sip::Method;
use siphon::testkit::Ua;

mod common;
use common::{http, method, settled, start_on, status};

const T: Duration = Duration::from_secs(3);

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, T).unwrap()
}

/// Everything `ua` has been sent until it is quiet for 200 ms.
fn drain(ua: &Ua) -> usize {
    ua.set_timeout(Duration::from_millis(200)).unwrap();
    let mut n = 0;
    while ua.recv().is_some() {
        n += 1;
    }
    ua.set_timeout(T).unwrap();
    n
}

#[test]
fn a_flood_from_one_address_is_banned_while_another_calls() {
    let guard = "[guard]\nmax_requests = 50\nwindow_ms = 5000\nban_s = 60\n";
    let p = start_on(1, "127.0.13.1", &["udp"], guard);
    let (attacker, uac, uas) = (ua("127.0.13.2"), ua("127.0.13.3"), ua("127.0.13.4"));
    let ruri = format!("sip:x@{}", uas.addr);
    for i in 0..300 {
        let m = attacker.request(
            "OPTIONS",
            &ruri,
            &format!("f{i}"),
            &format!("z9hG4bKf{i}"),
            1,
            "",
        );
        attacker.send(p.addr, &m).unwrap();
    }
    let s = settled(&p.rt, |s| s.dropped(Drop::Banned) >= 250);
    assert_eq!(s.dropped(Drop::Banned), 250, "{s:?}");
    assert_eq!(
        drain(&uas),
        50,
        "max_requests reached the next hop, no more"
    );

    // Another address calls through as usual.
    let invite = uac.request("INVITE", &ruri, "call-1", "z9hG4bKc1", 1, "");
    uac.send(p.addr, &invite).unwrap();
    let inv = method(&uas, Method::Invite);
    uas.send(p.addr, &uas.response(&inv, 200, "OK")).unwrap();
    status(&uac, 200);

    // The admin API lists the ban, then lifts it.
    let cfg = Config::parse(
        &format!(
            "[[listen]]\ntransport = \"udp\"\naddr = \"{}\"\n{guard}",
            p.addr
        ),
        "t.toml".as_ref(),
    )
    .unwrap();
    let control = Arc::new(Control::new(&p.rt, Arc::new(cfg), PathBuf::from("t.toml")));
    let metrics = Metrics::start_with(
        "127.0.13.1:0".parse().unwrap(),
        p.rt.counters(),
        Vec::new(),
        Some(control as Arc<dyn Admin>),
    )
    .unwrap();
    let (code, body) = http(metrics.addr, "GET", "/admin/bans");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["bans"][0]["address"], "127.0.13.2", "{body}");
    assert_eq!(v["bans"][0]["reason"], "flood");
    assert_eq!(v["bans"][0]["drops"], 250);
    assert!(v["bans"][0]["remaining_s"].as_u64().unwrap() > 50);
    assert_eq!(v["flood_bans"], 1);
    let (_, text) = http(metrics.addr, "GET", "/metrics");
    assert!(text.contains("siphon_bans_active 1\n"), "{text}");
    assert!(text.contains("reason=\"banned\"} 250\n"), "{text}");
    assert_eq!(
        http(metrics.addr, "DELETE", "/admin/bans/127.0.13.9").0,
        404
    );
    assert_eq!(http(metrics.addr, "DELETE", "/admin/bans/nonsense").0, 400);
    assert_eq!(
        http(metrics.addr, "DELETE", "/admin/bans/127.0.13.2").0,
        200
    );
    let (_, body) = http(metrics.addr, "GET", "/admin/bans");
    assert!(body.starts_with("{\"bans\":[]"), "{body}");
    // Lifted: its requests go through again.
    let m = attacker.request("OPTIONS", &ruri, "after", "z9hG4bKafter", 1, "");
    attacker.send(p.addr, &m).unwrap();
    method(&uas, Method::Options);
}

#[test]
fn a_banned_source_can_be_answered_503_instead() {
    let p = start_on(
        2,
        "127.0.13.11",
        &["udp"],
        "[guard]\nmax_requests = 5\naction = \"503\"\n",
    );
    let (attacker, uas) = (ua("127.0.13.12"), ua("127.0.13.13"));
    let ruri = format!("sip:x@{}", uas.addr);
    for i in 0..5 {
        let m = attacker.request(
            "OPTIONS",
            &ruri,
            &format!("g{i}"),
            &format!("z9hG4bKg{i}"),
            1,
            "",
        );
        attacker.send(p.addr, &m).unwrap();
        method(&uas, Method::Options);
    }
    let m = attacker.request("OPTIONS", &ruri, "g5", "z9hG4bKg5", 1, "");
    attacker.send(p.addr, &m).unwrap();
    status(&attacker, 503);
    assert_eq!(drain(&uas), 0);
}
