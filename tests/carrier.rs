//! The carrier load balancer over real loopback sockets: routing rules
//! (prefix tables, source ACLs, header regexes, rewrites, reply and
//! drop), selection over destination sets, OPTIONS health probing,
//! passive marking, fallback sets, max_load, the admin API and reload.
//!
//! Runtimes are started one at a time (see `common`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use siphon::config::Config;
use siphon::metrics::{Admin, Metrics};
use siphon::proxy::Hosts;
use siphon::routing::health::AdminState;
use siphon::rt::{Control, Runtime};
use siphon::sip::Method;
use siphon::testkit::Ua;

mod common;
use common::{free_port, http, lock, method, start_on, status, Proxy};

const T: Duration = Duration::from_secs(3);

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, T).unwrap()
}

/// A scratch directory for config and prefix files, removed at the end.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("siphon-carrier-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Start a runtime from a config file (so that reload can read it again).
fn start_file(path: &Path) -> (Runtime, Arc<Config>, std::sync::MutexGuard<'static, ()>) {
    let guard = lock();
    let cfg = Arc::new(Config::load(path).unwrap());
    let rt = Runtime::start(cfg.clone(), Arc::new(Hosts::default())).unwrap();
    (rt, cfg, guard)
}

fn listen(addr: SocketAddr) -> String {
    format!("[server]\nshards = 1\n[[listen]]\ntransport = \"udp\"\naddr = \"{addr}\"\n")
}

/// Send a MESSAGE to `ruri` through `proxy`; the UAS it reaches (if any
/// of `uases` gets it within `wait`) answers 200.
fn route_one(uac: &Ua, proxy: SocketAddr, ruri: &str, id: &str, uases: &[&Ua]) -> Option<usize> {
    uac.send(
        proxy,
        &uac.request("MESSAGE", ruri, id, &format!("z9hG4bK{id}"), 1, ""),
    )
    .unwrap();
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        for (i, u) in uases.iter().enumerate() {
            if let Some(Ok((m, _))) = u.recv() {
                u.send(proxy, &u.response(&m, 200, "OK")).unwrap();
                status(uac, 200);
                return Some(i);
            }
        }
    }
    None
}

fn short(uas: &[&Ua]) {
    for u in uas {
        u.set_timeout(Duration::from_millis(20)).unwrap();
    }
}

#[test]
fn weighted_70_30_prefix_routing_rewrite_and_source_acl() {
    let dir = Dir::new("rules");
    let (a, b, uk, london) = (
        ua("127.0.8.2"),
        ua("127.0.8.3"),
        ua("127.0.8.4"),
        ua("127.0.8.5"),
    );
    short(&[&a, &b, &uk, &london]);
    let table = dir.write(
        "intl.csv",
        "prefix,destination\n# UK, and London on its own trunk\n+44,uk\n+4420,london\n",
    );
    let extra = format!(
        r#"
[acl]
trusted = ["127.0.8.0/28"]

[prefix_table.intl]
file = "{}"

[[route]]
name = "unknown-source"
match = {{ source_not = ["trusted"] }}
action = "reply"
code = 403
reason = "Unknown Source"

[[route]]
name = "scanner"
match = {{ header = {{ name = "User-Agent", regex = "^friendly-scanner" }} }}
action = "drop"

[[route]]
name = "north-america"
match = {{ user_prefix = "+1" }}
destination = "us"
rewrite = {{ strip = 1, prepend = "00" }}

[[route]]
name = "international"
match = {{ prefix_table = "intl" }}

[destination.us]
algorithm = "weighted"
targets = [{{ uri = "sip:{}", weight = 70 }}, {{ uri = "sip:{}", weight = 30 }}]

[destination.uk]
targets = [{{ uri = "sip:{}" }}]

[destination.london]
targets = [{{ uri = "sip:{}" }}]
"#,
        table.display(),
        a.addr,
        b.addr,
        uk.addr,
        london.addr
    );
    let p: Proxy = start_on(1, "127.0.8.1", &["udp"], &extra);
    let uac = ua("127.0.8.6");

    // 70/30, exactly, over 100 calls (smooth weighted round-robin on one
    // shard), with the user rewritten: "+1" stripped of "+", "00" before.
    let mut hits = [0; 2];
    for i in 0..100 {
        let ruri = format!("sip:+1555000{i:04}@carrier.example");
        let got = route_one(&uac, p.addr, &ruri, &format!("w{i}"), &[&a, &b]).expect("routed");
        hits[got] += 1;
    }
    assert_eq!(hits, [70, 30]);

    // After a whole period of the weights the order starts again at a.
    a.set_timeout(T).unwrap();
    uac.send(
        p.addr,
        &uac.request(
            "MESSAGE",
            "sip:+15551234@carrier.example",
            "rw",
            "z9hG4bKrw",
            1,
            "",
        ),
    )
    .unwrap();
    let m = method(&a, Method::Message);
    assert_eq!(
        m.request_uri_bytes().unwrap(),
        b"sip:0015551234@carrier.example"
    );
    a.send(p.addr, &a.response(&m, 200, "OK")).unwrap();
    status(&uac, 200);
    short(&[&a]);

    // Longest prefix: +4420 (London) over +44.
    let got = route_one(
        &uac,
        p.addr,
        "sip:+442071234567@x.example",
        "lpm1",
        &[&uk, &london],
    );
    assert_eq!(got, Some(1));
    let got = route_one(
        &uac,
        p.addr,
        "sip:+447700900123@x.example",
        "lpm2",
        &[&uk, &london],
    );
    assert_eq!(got, Some(0));
    // No rule matches: the Request-URI's own host (nobody there), so
    // check a number in no table goes nowhere configured.
    let got = route_one(
        &uac,
        p.addr,
        "sip:+8112345@127.0.8.9",
        "none",
        &[&a, &b, &uk, &london],
    );
    assert_eq!(got, None);

    // A source outside the ACL: 403 with the configured reason.
    let stranger = ua("127.0.8.77");
    stranger
        .send(
            p.addr,
            &stranger.request("INVITE", "sip:+15551234@x", "acl", "z9hG4bKacl", 1, ""),
        )
        .unwrap();
    let r = status(&stranger, 403);
    assert_eq!(r.reason(), b"Unknown Source");
    // Its ACK is not counted again on the route.
    stranger
        .send(
            p.addr,
            &stranger.request("ACK", "sip:+15551234@x", "acl", "z9hG4bKacl", 1, ""),
        )
        .unwrap();

    // A scanner's User-Agent: dropped, no answer.
    uac.send(
        p.addr,
        &uac.request(
            "OPTIONS",
            "sip:+15551234@x",
            "scan",
            "z9hG4bKscan",
            1,
            "User-Agent: friendly-scanner\r\n",
        ),
    )
    .unwrap();
    uac.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uac.recv().is_none(), "a dropped request gets no answer");

    let routing = p.rt.routing.load();
    let matched: Vec<(String, u64)> = routing
        .routes
        .iter()
        .map(|r| (r.cfg.name.clone(), r.matched.load(Ordering::Relaxed)))
        .collect();
    assert_eq!(
        matched,
        [
            ("unknown-source".to_string(), 1),
            ("scanner".to_string(), 1),
            ("north-america".to_string(), 101),
            ("international".to_string(), 2),
        ]
    );
    let denied = routing.routes[0].responses[3].load(Ordering::Relaxed);
    assert_eq!(denied, 1, "the 403 counted as a 4xx of its route");
    let s = p.rt.snapshot();
    let drops: u64 = s
        .drops
        .iter()
        .filter(|(d, _)| d.as_str() == "route_drop")
        .map(|(_, n)| *n)
        .sum();
    assert_eq!(drops, 1);
}

/// Answer every OPTIONS probe at `uas` with `code` (none while it is 0;
/// stop when it is u16::MAX), for at most `secs`.
fn responder(uas: Ua, code: Arc<AtomicU16>, secs: u64) -> std::thread::JoinHandle<u32> {
    std::thread::spawn(move || {
        uas.set_timeout(Duration::from_millis(20)).unwrap();
        let end = Instant::now() + Duration::from_secs(secs);
        let mut answered = 0;
        while Instant::now() < end {
            let c = code.load(Ordering::Relaxed);
            if c == u16::MAX {
                break;
            }
            if let Some(Ok((m, from))) = uas.recv() {
                if m.method() == Some(Method::Options) && c != 0 {
                    uas.send(from, &uas.response(&m, c, "Probe")).unwrap();
                    answered += 1;
                }
            }
        }
        answered
    })
}

/// Wait (bounded) until `cond` holds of the set's target `t`.
fn wait_for(
    p: &Proxy,
    set: &str,
    t: usize,
    what: &str,
    cond: impl Fn(&siphon::routing::health::Status) -> bool,
) -> siphon::routing::health::Status {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let routing = p.rt.routing.load();
        let target = &routing.set(set).unwrap().targets[t];
        let s = target.health.status(p.rt.epoch.tick(Instant::now()));
        if cond(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{what}: still {s:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn probing_takes_a_silent_target_out_and_brings_it_back() {
    let (a, b) = (ua("127.0.8.20"), ua("127.0.8.21"));
    let (a_addr, b_addr) = (a.addr, b.addr);
    let extra = format!(
        r#"
[proxy]
mode = "stateful"

[[route]]
name = "all"
destination = "trunks"

[destination.trunks]
algorithm = "round-robin"
targets = [{{ uri = "sip:{a_addr}" }}, {{ uri = "sip:{b_addr}" }}]
probe = {{ mode = "all", interval_ms = 200, timeout_ms = 100, down_after = 2, up_after = 2 }}
"#
    );
    let p = start_on(2, "127.0.8.19", &["udp"], &extra);
    let (code_a, code_b) = (Arc::new(AtomicU16::new(200)), Arc::new(AtomicU16::new(0)));
    let ta = responder(a, code_a.clone(), 20);
    let tb = responder(b, code_b.clone(), 20);

    // b never answers: down after two probe timeouts, with the reason.
    let s = wait_for(&p, "trunks", 1, "b down", |s| !s.up);
    assert!(!s.available);
    assert_eq!(
        s.reason.map(|w| w.describe()),
        Some("probe timeout (local 408)".to_string())
    );
    assert!(s.probes_failed >= 2, "{s:?}");
    // a answers 200: up, and it never flapped.
    let s = wait_for(&p, "trunks", 0, "a probed", |s| s.probes_sent >= 3);
    assert!(s.up && s.available && s.changes == 0, "{s:?}");

    // A 503 to probes counts as dead too; then b answers 200 and is back
    // after two good probes.
    code_b.store(503, Ordering::Relaxed);
    let s = wait_for(&p, "trunks", 1, "b answers 503", |s| {
        s.last_code == Some(503)
    });
    assert!(!s.up);
    code_b.store(200, Ordering::Relaxed);
    let s = wait_for(&p, "trunks", 1, "b back up", |s| s.up);
    assert_eq!(s.last_code, Some(200));
    assert_eq!(s.changes, 2, "one down, one up: {s:?}");

    // The admin state: drain takes a out of selection; probing goes on.
    let routing = p.rt.routing.load();
    let now = p.rt.epoch.tick(Instant::now());
    routing.set("trunks").unwrap().targets[0]
        .health
        .set_admin(AdminState::Drain, now);
    assert!(!routing.set("trunks").unwrap().targets[0]
        .health
        .available(now));

    code_a.store(u16::MAX, Ordering::Relaxed);
    code_b.store(u16::MAX, Ordering::Relaxed);
    assert!(ta.join().unwrap() >= 3);
    assert!(tb.join().unwrap() >= 2);
}

#[test]
fn passive_timeout_failover_max_load_and_fallback() {
    let (dead, live, spare) = (ua("127.0.8.31"), ua("127.0.8.32"), ua("127.0.8.33"));
    let extra = format!(
        r#"
[proxy]
mode = "stateful"
branch_timeout_ms = 300

[[route]]
name = "all"
destination = "main"

[destination.main]
algorithm = "priority"
targets = [{{ uri = "sip:{}", priority = 1 }}, {{ uri = "sip:{}", priority = 2, max_load = 1 }}]
fallback = "spare"
probe = {{ mode = "off", passive_hold_ms = 60000 }}

[destination.spare]
targets = [{{ uri = "sip:{}" }}]
"#,
        dead.addr, live.addr, spare.addr
    );
    let p = start_on(1, "127.0.8.30", &["udp"], &extra);
    let uac = ua("127.0.8.34");
    let ruri = "sip:+15550001@carrier.example";

    // Call 1: the priority-1 target never answers: after the branch
    // timeout the call fails over to priority 2, and the silent target is
    // marked down (passive).
    uac.send(
        p.addr,
        &uac.request("INVITE", ruri, "c1", "z9hG4bKc1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    method(&dead, Method::Invite);
    let inv = method(&live, Method::Invite);
    live.send(p.addr, &live.response(&inv, 180, "Ringing"))
        .unwrap();
    status(&uac, 180);
    let routing = p.rt.routing.load();
    let main = routing.set("main").unwrap();
    let now = p.rt.epoch.tick(Instant::now());
    let s = main.targets[0].health.status(now);
    assert!(!s.up, "passively down: {s:?}");
    assert_eq!(s.reason.map(|w| w.describe()), Some("timeout".to_string()));
    assert_eq!(main.targets[0].stats.failovers.load(Ordering::Relaxed), 1);
    // The ringing call holds the live target's only slot (max_load 1).
    assert_eq!(main.targets[1].stats.load(), 1);

    // Call 2: target 1 is down and target 2 is full: the fallback set.
    uac.send(
        p.addr,
        &uac.request("INVITE", ruri, "c2", "z9hG4bKc2", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let inv2 = method(&spare, Method::Invite);
    spare
        .send(p.addr, &spare.response(&inv2, 486, "Busy"))
        .unwrap();
    status(&uac, 486);
    dead.set_timeout(Duration::from_millis(100)).unwrap();
    assert!(dead.recv().is_none(), "a down target is never selected");

    // Call 1 ends: the slot is free again.
    live.send(p.addr, &live.response(&inv, 200, "OK")).unwrap();
    status(&uac, 200);
    let deadline = Instant::now() + T;
    while main.targets[1].stats.load() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(main.targets[1].stats.load(), 0);
}

#[test]
fn a_whole_set_down_without_fallback_is_503() {
    let t = ua("127.0.8.41");
    let extra = format!(
        "[[route]]\nname = \"all\"\ndestination = \"d\"\n[destination.d]\ntargets = [{{ uri = \"sip:{}\" }}]\n",
        t.addr
    );
    let p = start_on(1, "127.0.8.40", &["udp"], &extra);
    let routing = p.rt.routing.load();
    routing.set("d").unwrap().targets[0]
        .health
        .set_admin(AdminState::Down, 0);
    let uac = ua("127.0.8.42");
    uac.send(
        p.addr,
        &uac.request("MESSAGE", "sip:x@y", "m1", "z9hG4bKm1", 1, ""),
    )
    .unwrap();
    let r = status(&uac, 503);
    assert_eq!(r.reason(), b"No Destination Available");
    t.set_timeout(Duration::from_millis(100)).unwrap();
    assert!(t.recv().is_none());
}

/// One HTTP request to the admin listener: status and body.
fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn reload_and_the_admin_api() {
    let dir = Dir::new("reload");
    let (a, b) = (ua("127.0.8.51"), ua("127.0.8.52"));
    short(&[&a, &b]);
    let addr: SocketAddr = format!("127.0.8.50:{}", free_port("127.0.8.50"))
        .parse()
        .unwrap();
    let sets = format!(
        "[destination.a]\ntargets = [{{ uri = \"sip:{}\" }}]\n[destination.b]\ntargets = [{{ uri = \"sip:{}\" }}]\n[registrar]\ndomains = [\"example.com\"]\n",
        a.addr, b.addr
    );
    let config = |to: &str| {
        format!(
            "{}[[route]]\nname = \"all\"\nmatch = {{ method = \"MESSAGE\" }}\ndestination = \"{to}\"\n{sets}",
            listen(addr)
        )
    };
    let path = dir.write("siphon.toml", &config("a"));
    let (rt, cfg, _guard) = start_file(&path);
    let control = Arc::new(Control::new(&rt, cfg, path.clone()));
    let metrics = Metrics::start_with(
        "127.0.8.50:0".parse().unwrap(),
        rt.counters(),
        Vec::new(),
        Some(control.clone() as Arc<dyn Admin>),
    )
    .unwrap();
    let uac = ua("127.0.8.53");
    assert_eq!(route_one(&uac, addr, "sip:1@x", "r1", &[&a, &b]), Some(0));

    // The admin API: sets and targets.
    let (code, body) = http(metrics.addr, "GET", "/admin/sets");
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(v["generation"], 0);
    assert_eq!(v["sets"][0]["name"], "a");
    assert_eq!(v["sets"][0]["targets"][0]["uri"], format!("sip:{}", a.addr));
    assert_eq!(v["sets"][0]["targets"][0]["state"], "up");
    assert_eq!(v["sets"][0]["targets"][0]["requests"], 1);
    assert_eq!(
        v["sets"][0]["targets"][0]["responses"]["2xx"], 0,
        "stateless: no per-target responses"
    );
    // Drain a's target through the API: it is no longer picked (a whole
    // set unavailable: 503).
    let (code, body) = http(metrics.addr, "POST", "/admin/sets/a/targets/0/drain");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["state"], "drain");
    assert_eq!(
        http(metrics.addr, "POST", "/admin/sets/a/targets/9/drain").0,
        404
    );
    assert_eq!(
        http(metrics.addr, "POST", "/admin/sets/a/targets/0/sleep").0,
        404
    );
    uac.send(
        addr,
        &uac.request("MESSAGE", "sip:1@x", "r2", "z9hG4bKr2", 1, ""),
    )
    .unwrap();
    status(&uac, 503);

    // Reload to route to b: new requests go to b; a's target keeps its
    // admin state (health is kept across a reload).
    std::fs::write(&path, config("b")).unwrap();
    let (code, body) = http(metrics.addr, "POST", "/admin/reload");
    assert_eq!(code, 200, "{body}");
    let v = json(&body);
    assert_eq!(
        (v["reloaded"].clone(), v["generation"].clone()),
        (true.into(), 1.into())
    );
    assert_eq!(route_one(&uac, addr, "sip:1@x", "r3", &[&a, &b]), Some(1));
    let (_, body) = http(metrics.addr, "GET", "/admin/sets/a");
    assert_eq!(json(&body)["targets"][0]["admin"], "drain");

    // A bad config is rejected with its error; the running table stays.
    std::fs::write(&path, config("nowhere")).unwrap();
    let (code, body) = http(metrics.addr, "POST", "/admin/reload");
    assert_eq!(code, 422);
    let err = json(&body)["error"].as_str().unwrap().to_string();
    assert!(
        err.contains("route[0].destination: unknown destination \"nowhere\""),
        "{err}"
    );
    assert!(err.starts_with(&path.display().to_string()), "{err}");
    assert!(control.reload().is_err());
    assert_eq!(rt.routing.load().generation, 1);
    assert_eq!(route_one(&uac, addr, "sip:1@x", "r4", &[&a, &b]), Some(1));

    // A changed listener is not applied, and says so.
    std::fs::write(
        &path,
        config("b").replace("shards = 1", "shards = 1\nuser_agent = \"X\""),
    )
    .unwrap();
    let r = control.reload().unwrap();
    assert_eq!(r.restart_needed, ["server"]);

    // Bindings of an AOR, stats, and the Prometheus series.
    let reg = uac.request(
        "REGISTER",
        "sip:example.com",
        "reg1",
        "z9hG4bKreg1",
        1,
        "Expires: 600\r\n",
    );
    let reg = String::from_utf8(reg)
        .unwrap()
        .replace("To: <sip:example.com>", "To: <sip:alice@example.com>")
        .into_bytes();
    uac.set_timeout(T).unwrap();
    uac.send(addr, &reg).unwrap();
    status(&uac, 200);
    let (code, body) = http(metrics.addr, "GET", "/admin/aor/alice@example.com");
    assert_eq!(code, 200);
    let v = json(&body);
    assert_eq!(
        v["bindings"][0]["contact"],
        format!("sip:alice@{}", uac.addr)
    );
    let (_, body) = http(metrics.addr, "GET", "/admin/stats");
    let v = json(&body);
    assert_eq!(v["routes"][0]["name"], "all");
    assert!(
        v["counters"]["udp_datagrams_received_total"]
            .as_u64()
            .unwrap()
            >= 5
    );
    let (_, text) = http(metrics.addr, "GET", "/metrics");
    assert!(
        text.contains(&format!(
            "siphon_target_requests_total{{set=\"b\",target=\"sip:{}\"}} 2\n",
            b.addr
        )),
        "{text}"
    );
    assert!(text.contains("# TYPE siphon_target_final_response_seconds histogram\n"));
    assert!(text.contains("siphon_route_requests_total{route=\"all\"} "));
    assert_eq!(http(metrics.addr, "GET", "/admin/nope").0, 404);
    assert_eq!(http(metrics.addr, "GET", "/admin/reload").0, 405);
    drop(metrics);
}

#[test]
fn the_admin_api_is_off_when_asked() {
    let cfg = Config::parse(
        "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[metrics]\nlisten = \"0.0.0.0:9060\"\n",
        Path::new("t.toml"),
    )
    .unwrap();
    assert!(!cfg.metrics.unwrap().admin, "off by default off loopback");
    let cfg = Config::parse(
        "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[metrics]\n",
        Path::new("t.toml"),
    )
    .unwrap();
    let m = cfg.metrics.unwrap();
    assert_eq!(m.listen, "127.0.0.1:9060".parse().unwrap());
    assert!(m.admin, "on by default on loopback");
}

#[test]
fn a_target_names_the_listener_its_requests_leave_from() {
    let _guard = lock();
    let (one, two) = (
        SocketAddr::new("127.0.8.60".parse().unwrap(), free_port("127.0.8.60")),
        SocketAddr::new("127.0.8.61".parse().unwrap(), free_port("127.0.8.61")),
    );
    let uas = ua("127.0.8.62");
    let text = format!(
        "[server]\nshards = 1\n[[listen]]\ntransport = \"udp\"\naddr = \"{one}\"\n[[listen]]\ntransport = \"udp\"\naddr = \"{two}\"\n[[route]]\nname = \"all\"\ndestination = \"d\"\n[destination.d]\ntargets = [{{ uri = \"sip:{}\", listener = \"{two}\" }}]\n",
        uas.addr
    );
    let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
    let _rt = Runtime::start(Arc::new(cfg), Arc::new(Hosts::default())).unwrap();
    let uac = ua("127.0.8.63");
    uac.send(
        one,
        &uac.request("MESSAGE", "sip:x@y", "l1", "z9hG4bKl1", 1, ""),
    )
    .unwrap();
    let (m, from) = uas.expect();
    assert_eq!(m.method(), Some(Method::Message));
    assert_eq!(from, two, "sent from the named listener");
    let via = m.top_via().unwrap();
    assert_eq!(
        (via.host, via.port),
        (two.ip().to_string().as_bytes(), Some(two.port()))
    );
}
