//! `register` then `calls --users` against a real registrar: a stateful
//! `siphon::rt::Runtime` with Record-Route and `[registrar]`, started in
//! this process on 127.0.5.3x. 200 users registered with the UAS as their
//! contact, refreshed once, then 200 calls to them, routed by the
//! location service to the UAS; before that, a call to a user nobody
//! registered fails. Bounded: about 4 s.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use siphon::config::Config;
use siphon::proxy::Hosts;
use siphon::rt::Runtime;
use siphon_loadtest::args::{Aor, Mode, RunConfig};
use siphon_loadtest::uac;

fn free_udp_port(ip: &str) -> u16 {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap().port()
}

#[test]
fn register_users_then_call_them_through_the_location_service() {
    let (proxy_ip, uac_ip, uas_ip) = ("127.0.5.31", "127.0.5.32", "127.0.5.33");
    let (proxy_port, uas_port) = (free_udp_port(proxy_ip), free_udp_port(uas_ip));
    let text = format!(
        "[server]\nshards = 2\n[[listen]]\ntransport = \"udp\"\naddr = \"{proxy_ip}:{proxy_port}\"\n\
         [proxy]\nmode = \"stateful\"\nrecord_route = true\n\
         [registrar]\ndomains = [\"example.com\"]\ndefault_expires = 3600\n"
    );
    let cfg = Config::parse(&text, Path::new("registrar.toml")).unwrap();
    let rt = Runtime::start(Arc::new(cfg), Arc::new(Hosts::default())).unwrap();
    let uas: std::net::SocketAddr = format!("{uas_ip}:{uas_port}").parse().unwrap();

    // Before anyone registered: user0 is not found (404), a failed call.
    let before = RunConfig {
        mode: Mode::Calls,
        proxy: format!("{proxy_ip}:{proxy_port}").parse().unwrap(),
        uac: uac_ip.parse().unwrap(),
        uas: Some(uas),
        rate: 1,
        duration: Duration::from_millis(500),
        sockets: 1,
        hold: Duration::ZERO,
        timeout: Duration::from_secs(2),
        tick: None,
        tsv: None,
        label: "registrar".into(),
        aor: Aor {
            users: Some(200),
            ..Aor::default()
        },
        threads: 1,
    };
    let r = uac::run(&before).unwrap();
    assert_eq!((r.attempted, r.failed, r.timeouts), (1, 1, 0), "{r:#?}");
    assert_eq!(r.uas.unwrap().invites, 0, "{r:#?}");

    let mut run = RunConfig {
        mode: Mode::Register,
        proxy: format!("{proxy_ip}:{proxy_port}").parse().unwrap(),
        uac: uac_ip.parse().unwrap(),
        uas: None,
        rate: 400,
        duration: Duration::from_secs(1),
        sockets: 4,
        hold: Duration::from_millis(20),
        timeout: Duration::from_secs(2),
        tick: None,
        tsv: None,
        label: "registrar".into(),
        aor: Aor {
            users: Some(200),
            contact: Some(uas),
            ..Aor::default()
        },
        threads: 2,
    };
    // Two rounds: 200 registrations, then 200 refreshes (CSeq 2).
    let r = uac::run(&run).unwrap();
    assert!(r.passed(), "{r:#?}");
    assert_eq!(
        (r.attempted, r.completed, r.bad_answers),
        (400, 400, 0),
        "{r:#?}"
    );
    assert!(r.p50_us.is_some() && r.uas.is_none() && r.threads == 2);

    run.mode = Mode::Calls;
    run.uas = Some(uas);
    run.rate = 200;
    run.timeout = Duration::from_secs(3);
    run.threads = 1;
    let r = uac::run(&run).unwrap();
    assert!(r.passed(), "{r:#?}");
    assert_eq!((r.attempted, r.completed), (200, 200), "{r:#?}");
    let u = r.uas.unwrap();
    assert_eq!((u.invites, u.byes, u.unexpected), (200, 200, 0), "{r:#?}");

    drop(rt);
}
