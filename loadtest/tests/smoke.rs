//! The generator against a real proxy: a `siphon::rt::Runtime` started in
//! this process on 127.0.5.1x, a few hundred calls and OPTIONS, bounded
//! (about 3 s in all). One runtime for both runs: each sizes glommio's
//! locked memory to the process's whole RLIMIT_MEMLOCK.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use siphon::config::Config;
use siphon::proxy::Hosts;
use siphon::rt::Runtime;
use siphon_loadtest::args::{Mode, RunConfig};
use siphon_loadtest::uac;

fn free_udp_port(ip: &str) -> u16 {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap().port()
}

#[test]
fn calls_and_options_through_a_stateless_proxy() {
    let (proxy_ip, uac_ip, uas_ip) = ("127.0.5.11", "127.0.5.12", "127.0.5.13");
    let (proxy_port, uas_port) = (free_udp_port(proxy_ip), free_udp_port(uas_ip));
    let text = format!(
        "[server]\nshards = 2\n[[listen]]\ntransport = \"udp\"\naddr = \"{proxy_ip}:{proxy_port}\"\n\
         [[route]]\nname = \"uas\"\nmatch = {{ user_prefix = \"service\" }}\ndestination = \"uas\"\n\
         [destination.uas]\ntargets = [{{ uri = \"sip:{uas_ip}:{uas_port}\" }}]\n"
    );
    let cfg = Config::parse(&text, Path::new("smoke.toml")).unwrap();
    let rt = Runtime::start(Arc::new(cfg), Arc::new(Hosts::default())).unwrap();

    let mut run = RunConfig {
        mode: Mode::Calls,
        proxy: format!("{proxy_ip}:{proxy_port}").parse().unwrap(),
        uac: uac_ip.parse().unwrap(),
        uas: Some(format!("{uas_ip}:{uas_port}").parse().unwrap()),
        rate: 300,
        duration: Duration::from_secs(1),
        sockets: 4,
        hold: Duration::from_millis(20),
        timeout: Duration::from_secs(3),
        tick: None,
        tsv: None,
        label: "smoke".into(),
        aor: Default::default(),
        threads: 1,
    };
    let r = uac::run(&run).unwrap();
    assert!(r.passed(), "{r:#?}");
    assert_eq!(
        (r.attempted, r.completed, r.failed),
        (300, 300, 0),
        "{r:#?}"
    );
    let uas = r.uas.unwrap();
    // Every call reached the UAS once (plus any retransmission), was
    // acknowledged and hung up.
    assert_eq!(uas.invites, 300, "{r:#?}");
    assert_eq!(
        (uas.acks, uas.byes),
        (300 + uas.invite_retrans, 300),
        "{r:#?}"
    );
    let (p50, p99, max) = (r.p50_us.unwrap(), r.p99_us.unwrap(), r.max_us.unwrap());
    assert!(
        0 < p50 && p50 <= p99 && p99 <= max && max < 3_000_000,
        "{r:#?}"
    );
    assert!(r.achieved_cps > 250.0 && r.achieved_cps <= 300.5, "{r:#?}");
    // The proxy relayed six datagrams per call, and no more than the
    // retransmissions and their answers on top.
    let s = rt.snapshot();
    assert!(s.datagrams_out >= 6 * 300, "{s:?}");

    run.mode = Mode::Options;
    run.uas = None;
    run.rate = 200;
    let r = uac::run(&run).unwrap();
    assert!(r.passed(), "{r:#?}");
    assert_eq!((r.attempted, r.completed), (200, 200), "{r:#?}");
    assert!(r.p50_us.is_some() && r.uas.is_none());
    drop(rt);
}
