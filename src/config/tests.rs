use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("test.toml"))
}

const FULL: &str = r#"
[server]
shards = 2
user_agent = "Siphon-test"
log_format = "json"
log_level = "debug"
coalesce_us = 250
spread = true

[[listen]]
transport = "udp"
addr = "127.0.0.1:5060"

[[listen]]
transport = "TCP"
addr = "[::1]:5060"
advertise = "sip.example.com:5060"

[proxy]
mode = "stateless"
record_route = true
max_forwards = 30
udp_max_size = 0

[[route]]
name = "us"
match = { domain = "Example.COM", user_prefix = "+1", method = "INVITE" }
destination = "carrier_a"

[[route]]
name = "default"
destination = "carrier_b"

[destination.carrier_a]
targets = [
    { uri = "sip:127.0.0.1:5080", weight = 70, priority = 1 },
    { uri = "sip:[::1]:5090;transport=tcp" },
]

[destination.carrier_b]
targets = [{ uri = "sip:GW.example.net" }]

[metrics]
listen = "127.0.0.1:9090"
"#;

#[test]
fn a_full_config() {
    let c = parse(FULL).unwrap();
    assert_eq!(
        c.server,
        Server {
            shards: 2,
            user_agent: "Siphon-test".into(),
            log_format: LogFormat::Json,
            log_level: LogLevel::Debug,
            coalesce_us: 250,
            spread: true,
            overload_backlog: 128,
            overload_occupancy: 90,
        }
    );
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.listen[1].transport, Transport::Tcp);
    assert_eq!(c.listen[1].addr, "[::1]:5060".parse().unwrap());
    assert_eq!(
        c.listen[1].advertise.as_deref(),
        Some("sip.example.com:5060")
    );
    assert_eq!(
        c.proxy,
        Proxy {
            mode: Mode::Stateless,
            record_route: true,
            max_forwards: 30,
            udp_max_size: 0,
            transaction: TransactionCfg::default(),
            dispatch: Dispatch::Socket,
            nat: Nat::Auto,
            topology_secret: None,
            call_setup_s: 300,
            call_timeout_s: 43_200,
        }
    );
    assert_eq!(c.routes[0].matcher.domain, ["example.com"]);
    assert_eq!(c.routes[0].matcher.method, ["INVITE"]);
    assert_eq!(c.routes[0].matcher.user_prefix, ["+1"]);
    let a = &c.destinations[dest(&c.routes[0])];
    assert_eq!(a.name, "carrier_a");
    assert_eq!(
        (
            a.targets[0].host.as_str(),
            a.targets[0].port,
            a.targets[0].weight,
            a.targets[0].priority
        ),
        ("127.0.0.1", 5080, 70, 1)
    );
    assert_eq!(
        (
            a.targets[1].host.as_str(),
            a.targets[1].transport,
            a.targets[1].weight
        ),
        ("::1", Transport::Tcp, 1)
    );
    let b = &c.destinations[dest(&c.routes[1])];
    assert_eq!(
        (b.targets[0].host.as_str(), b.targets[0].port),
        ("gw.example.net", 5060)
    );
    assert_eq!(
        c.metrics,
        Some(Metrics {
            listen: "127.0.0.1:9090".parse().unwrap(),
            admin: true,
        })
    );
}

#[test]
fn defaults() {
    let c = parse("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n").unwrap();
    assert!(c.server.shards >= 1);
    assert!(c.server.user_agent.starts_with("Siphon/"));
    assert_eq!(
        (c.server.log_format, c.server.log_level),
        (LogFormat::Text, LogLevel::Info)
    );
    assert_eq!(
        c.proxy,
        Proxy {
            mode: Mode::Stateless,
            record_route: false,
            max_forwards: 70,
            udp_max_size: 1300,
            transaction: TransactionCfg::default(),
            dispatch: Dispatch::Socket,
            nat: Nat::Auto,
            topology_secret: None,
            call_setup_s: 300,
            call_timeout_s: 43_200,
        }
    );
    assert!(c.routes.is_empty() && c.destinations.is_empty() && c.metrics.is_none());
    assert_eq!(c.tcp, Tcp::default());
    assert_eq!(
        (c.tcp.max_connections, c.tcp.idle_timeout.as_secs()),
        (4096, 180)
    );
}

#[test]
fn stateful_keys() {
    let c = parse("[proxy]\nmode = \"stateful\"\nt1_ms = 100\nt2_ms = 800\nt4_ms = 1000\ntimer_c_ms = 60000\nbranch_timeout_ms = 2000\nmax_transactions = 5000\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h1\" }, { uri = \"sip:h2\" }]\nfork = \"parallel\"\nfailover_codes = [486, 503]\nmax_attempts = 1\n[destination.b]\ntargets = [{ uri = \"sip:h1\" }, { uri = \"sip:h2\" }]\n").unwrap();
    assert_eq!(c.proxy.mode, Mode::Stateful);
    assert_eq!(
        c.proxy.transaction,
        TransactionCfg {
            t1_ms: 100,
            t2_ms: 800,
            t4_ms: 1000,
            timer_c_ms: 60_000,
            branch_timeout_ms: 2000,
            max_transactions: 5000,
        }
    );
    let a = &c.destinations[0];
    assert_eq!(
        (a.fork, a.failover_codes.as_slice(), a.max_attempts),
        (Fork::Parallel, &[486, 503][..], 1)
    );
    let b = &c.destinations[1];
    assert_eq!(
        (b.fork, b.failover_codes.as_slice(), b.max_attempts),
        (Fork::Serial, &[408, 500, 503][..], 2),
        "defaults: serial, 408/500/503, every target"
    );
}

#[test]
fn tcp_keys() {
    let c = parse("[[listen]]\ntransport = \"tcp\"\naddr = \"127.0.0.1:5060\"\n[tcp]\nmax_connections = 10\nidle_timeout = 30\nconnect_timeout_ms = 250\nmessage_timeout_ms = 5000\nmax_per_source = 8\n").unwrap();
    assert_eq!(
        c.tcp,
        Tcp {
            max_connections: 10,
            idle_timeout: std::time::Duration::from_secs(30),
            connect_timeout: std::time::Duration::from_millis(250),
            message_timeout: std::time::Duration::from_millis(5000),
            max_per_source: 8,
        }
    );
}

/// Each bad config is rejected with an error naming the line and the key.
#[test]
fn errors_name_file_line_and_key() {
    let cases: &[(&str, &str)] = &[
        ("[server]\nshards = 2\ncolour = \"blue\"\n", "test.toml:3: unknown field `colour`"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:99999\"\n", "test.toml:3: listen[0].addr: \"127.0.0.1:99999\" is not an IP address and port"),
        ("[[listen]]\ntransport = \"sctp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: listen[0].transport: \"sctp\": expected \"udp\" or \"tcp\""),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:0\"\n", "test.toml:3: listen[0].addr: port 0 is not allowed"),
        ("[server]\nspread = true\n[proxy]\nmode = \"stateful\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: server.spread: in stateful mode spreading needs proxy.dispatch = \"call-id\" (a transaction's retransmissions, ACK and CANCEL must reach the shard that holds it)"),
        ("[server]\ncoalesce_us = 20000\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: server.coalesce_us: 20000 is out of range 0..=10000"),
        ("[server]\nshards = 0\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: server.shards: 0 is out of range 1..=256"),
        ("[proxy]\nmax_forwards = 300\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: proxy.max_forwards: 300 is out of range 1..=255"),
        ("[server]\nlog_format = \"xml\"\n", "test.toml:2: server.log_format: \"xml\": expected \"text\" or \"json\""),
        ("[server]\nlog_level = \"loud\"\n", "test.toml:2: server.log_level: \"loud\": expected error"),
        ("[proxy]\nmode = \"fast\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: proxy.mode: \"fast\": expected"),
        ("[proxy]\nt1_ms = 10\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: proxy.t1_ms: 10 is out of range 50..=10000"),
        ("[proxy]\nt1_ms = 5000\nt2_ms = 4000\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml: proxy.t2_ms: must not be below proxy.t1_ms"),
        ("[proxy]\nmax_transactions = 0\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: proxy.max_transactions: 0 is out of range"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\nfork = \"random\"\n", "test.toml:6: destination.a.fork: \"random\": expected \"serial\" or \"parallel\""),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\nfailover_codes = [503, 200]\n", "test.toml:6: destination.a.failover_codes: 200 is out of range 300..=699"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\nmax_attempts = 0\n", "test.toml:6: destination.a.max_attempts: 0 is out of range 1..=16"),
        ("", "test.toml: listen: at least one [[listen]] is needed"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[route]]\nname = \"x\"\ndestination = \"nope\"\n", "test.toml:6: route[0].destination: unknown destination \"nope\""),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"mailto:x@y\" }]\n", "test.toml:5: destination.a.targets[0].uri: \"mailto:x@y\": not a sip: URI"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = []\n", "test.toml:5: destination.a.targets: a destination needs at least one target"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:6: listen[1].addr: udp 127.0.0.1:5060 is listed twice"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\nadvertise = \"a b\"\n", "test.toml:4: listen[0].advertise: \"a b\" is not a host or host:port"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[route]]\nname = \"x\"\nmatch = { method = \"IN VITE\" }\ndestination = \"a\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\n", "test.toml:6: route[0].match.method: \"IN VITE\" is not a method name"),
        ("[[listen]\n", "test.toml:1: "),
        ("[tcp]\nidle_timeout = 0\n[[listen]]\ntransport = \"tcp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: tcp.idle_timeout: 0 is out of range 1..=86400"),
        ("[tcp]\nmax_connections = -1\n[[listen]]\ntransport = \"tcp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: tcp.max_connections: -1 is out of range"),
        ("[tcp]\nlinger = 1\n[[listen]]\ntransport = \"tcp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: unknown field `linger`"),
        ("[guard]\naction = \"tarpit\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: guard.action: \"tarpit\": \"drop\", \"403\" or \"503\""),
        ("[guard]\nexempt = [\"trunks\"]\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: guard.exempt: \"trunks\" is neither an [acl] name nor an address"),
        ("[guard]\nwindow_ms = 10\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: guard.window_ms: 10 is out of range 100..=3600000"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[route]]\nname = \"x\"\naction = \"drop\"\nburst = 5\n", "test.toml:7: route[0].burst: only with cps"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\ncps = 0\n", "test.toml:6: destination.a.cps: 0 is out of range 1..=1000000"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[[route]]\nname = \"x\"\naction = \"drop\"\nheaders = { remove = [\"Via\"] }\n", "test.toml:7: route[0].headers: \"Via\": Via, Route, Record-Route, Call-ID, CSeq, From, To, Max-Forwards, Content-Length and Contact are the proxy's to manage"),
        ("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{ uri = \"sip:h\" }]\nheaders = { add = { \"X-A\" = \"{who}\" } }\n", "test.toml:6: destination.a.headers: X-A: {who} is not one of"),
        ("[guard]\nban = 1\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n", "test.toml:2: unknown field `ban`"),
    ];
    for (text, want) in cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "got {e:?}\nwant {want:?}...");
    }
}

#[test]
fn unreadable_file() {
    let e = Config::load(Path::new("/nonexistent/siphon.toml")).unwrap_err();
    assert_eq!(e.line, 0);
    assert!(
        e.to_string()
            .starts_with("/nonexistent/siphon.toml: cannot read"),
        "{e}"
    );
}

fn dest(r: &Route) -> usize {
    match r.action {
        Action::Destination(d) => d,
        ref other => panic!("route {} is {other:?}", r.name),
    }
}

#[test]
fn routing_errors_name_file_line_and_key() {
    let l = "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n";
    let d = "[destination.a]\ntargets = [{ uri = \"sip:h\" }]\n";
    let cases: Vec<(String, &str)> = vec![
        (format!("{l}{d}[[route]]\nname = \"x\"\nmatch = {{ source = [\"10.0.0.0/33\"] }}\ndestination = \"a\"\n"), "test.toml:8: route[0].match.source: \"10.0.0.0/33\" is neither an [acl] name nor an address"),
        (format!("{l}{d}[acl]\nx = [\"banana\"]\n"), "test.toml:7: acl.x: "),
        (format!("{l}{d}[[route]]\nname = \"x\"\nmatch = {{ header = {{ name = \"X\", regex = \"(\" }} }}\ndestination = \"a\"\n"), "test.toml:8: route[0].match.header.regex: \"(\": "),
        (format!("{l}{d}[[route]]\nname = \"x\"\nmatch = {{ prefix_table = \"t\" }}\n"), "test.toml:8: route[0].match.prefix_table: unknown prefix table \"t\""),
        (format!("{l}{d}[[route]]\nname = \"x\"\naction = \"reply\"\n"), "test.toml:8: route[0].code: \"reply\" needs a code"),
        (format!("{l}{d}[[route]]\nname = \"x\"\naction = \"reply\"\ncode = 200\n"), "test.toml:9: route[0].code: 200 is out of range 300..=699"),
        (format!("{l}{d}[[route]]\nname = \"x\"\ndestination = \"a\"\ncode = 403\n"), "test.toml: route[0].code: code and reason go with action = \"reply\""),
        (format!("{l}{d}[[route]]\nname = \"x\"\ndestination = \"a\"\nrewrite = {{ prepend = \"a@b\" }}\n"), "test.toml: route[0].rewrite.prepend: \"a@b\": only characters allowed in a URI user"),
        (format!("{l}{d}algorithm = \"fastest\"\n"), "test.toml:6: destination.a.algorithm: \"fastest\": expected \"round-robin\""),
        (format!("{l}{d}hash_key = \"call-id\"\n"), "test.toml:6: destination.a.hash_key: only with algorithm = \"hash\""),
        (format!("{l}{d}fallback = \"a\"\n"), "test.toml:6: destination.a.fallback: a set cannot fall back to itself"),
        (format!("{l}{d}fallback = \"b\"\n[destination.b]\ntargets = [{{ uri = \"sip:g\" }}]\nfallback = \"a\"\n"), "test.toml:6: destination.a.fallback: fallbacks form a cycle"),
        (format!("{l}{d}probe = {{ mode = \"sometimes\" }}\n"), "test.toml:6: destination.a.probe.mode: \"sometimes\": expected"),
        (format!("{l}{d}probe = {{ interval_ms = 1000, timeout_ms = 2000 }}\n"), "test.toml: destination.a.probe.timeout_ms: must not be above interval_ms"),
        (format!("{l}{d}probe = {{ alive_codes = [\"2x\"] }}\n"), "test.toml:6: destination.a.probe.alive_codes: "),
        (format!("{l}[destination.a]\ntargets = [{{ uri = \"sip:h\", listener = \"127.0.0.1:5061\" }}]\n"), "test.toml:5: destination.a.targets[0].listener: \"127.0.0.1:5061\" is not the address of a udp [[listen]]"),
        (format!("{l}[destination.a]\ntargets = [{{ uri = \"sip:h\" }}, {{ uri = \"sip:h\" }}]\n"), "test.toml:5: destination.a.targets[1].uri: \"sip:h\" is listed twice"),
        (format!("{l}[prefix_table.t]\nfile = \"/nonexistent/p.csv\"\n"), "test.toml:5: prefix_table.t.file: /nonexistent/p.csv"),
    ];
    for (text, want) in &cases {
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with(want), "got {e:?}\nwant {want:?}...");
    }
}

#[test]
fn prefix_tables_load_relative_to_the_config_and_resolve_destinations() {
    let dir = std::env::temp_dir().join(format!("siphon-cfg-prefix-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("p.csv"),
        "prefix,destination\n+44,a\n+4420,b\n+49\n",
    )
    .unwrap();
    std::fs::write(dir.join("bad.csv"), "+44,a\n+1,nowhere\n").unwrap();
    let text = |file: &str| {
        format!("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[destination.a]\ntargets = [{{ uri = \"sip:h\" }}]\n[destination.b]\ntargets = [{{ uri = \"sip:g\" }}]\n[prefix_table.t]\nfile = \"{file}\"\n[[route]]\nname = \"r\"\nmatch = {{ prefix_table = \"t\", source_not = \"10.0.0.0/8\" }}\n")
    };
    let c = Config::parse(&text("p.csv"), &dir.join("siphon.toml")).unwrap();
    let t = &c.prefix_tables[0].table;
    assert_eq!(t.lookup(b"+442071234567"), Some((5, 1)));
    assert_eq!(t.lookup(b"+4477"), Some((3, 0)));
    assert_eq!(t.lookup(b"+4930"), Some((3, NO_DESTINATION)));
    assert_eq!(c.routes[0].action, Action::FromTable);
    assert_eq!(c.routes[0].matcher.source_not, ["10.0.0.0/8"]);
    let e = Config::parse(&text("bad.csv"), &dir.join("siphon.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.csv:2: unknown destination \"nowhere\""),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn digest_offers_md5_alone_unless_told() {
    let c = parse(
        "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[auth]\nrealm = \"r\"\n",
    )
    .unwrap();
    let a = c.auth.as_ref().unwrap();
    assert_eq!(a.algorithms, [crate::auth::Algorithm::Md5]);
    let c = parse("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[auth]\nrealm = \"r\"\nalgorithms = [\"SHA-256\", \"MD5\"]\n").unwrap();
    assert_eq!(
        c.auth.unwrap().algorithms,
        [crate::auth::Algorithm::Sha256, crate::auth::Algorithm::Md5]
    );
}
