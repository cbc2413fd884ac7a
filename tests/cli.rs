//! The `siphon` binary's `parse` subcommand, run as a process.

use std::process::Command;

fn siphon(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn corpus(f: &str) -> String {
    format!("{}/tests/corpus/{f}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn parse_reports_ok_answer_and_drop() {
    let (code, out) = siphon(&["parse", &corpus("rfc4475/wsinv.dat")]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("wsinv.dat: OK request INVITE sip:vivekg@chair-dnrc.example.com;unknownparam"),
        "{out}"
    );
    assert!(out.contains("3 Via, body 150 bytes"), "{out}");

    let (code, out) = siphon(&[
        "parse",
        &corpus("rfc4475/mcl01.dat"),
        &corpus("rfc4475/badvers.dat"),
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("mcl01.dat: 400 Duplicate Content-Length"),
        "{out}"
    );
    assert!(
        out.contains("badvers.dat: 505 Version Not Supported"),
        "{out}"
    );

    let (code, out) = siphon(&["parse", &corpus("rfc4475/bigcode.dat")]);
    assert_eq!(code, 1);
    assert!(out.contains("bigcode.dat: drop Bad Status Code"), "{out}");
}

#[test]
fn stream_framing_requires_content_length() {
    let (code, out) = siphon(&["parse", "--stream", &corpus("rfc4475/inv2543.dat")]);
    assert_eq!(code, 1);
    assert!(out.contains("400 Missing Content-Length"), "{out}");
}

#[test]
fn usage_and_bad_invocations() {
    let (code, out) = siphon(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("siphon parse"));
    assert_eq!(siphon(&["--bogus"]).0, 2);
    assert_eq!(siphon(&["parse"]).0, 2);
    assert_eq!(siphon(&["parse", "/nonexistent/file"]).0, 1);
}

#[test]
fn check_validates_configs() {
    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/siphon.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("siphon.toml: OK (2 listeners, 0 routes, 0 destinations"),
        "{out}"
    );
    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/edge-example.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("edge-example.toml: OK (2 listeners, 3 routes, 3 destinations, 0 prefix table entries, 2 shards)"),
        "{out}"
    );
    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/stateful.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("stateful.toml: OK (2 listeners, 2 routes, 2 destinations"),
        "{out}"
    );

    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/carrier.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(
            "carrier.toml: OK (2 listeners, 3 routes, 2 destinations, 1 prefix table entries"
        ),
        "{out}"
    );

    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/registrar.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("registrar.toml: OK (2 listeners"), "{out}");

    let (code, out) = siphon(&[
        "check",
        "--config",
        &format!("{}/config/secure-edge.toml", env!("CARGO_MANIFEST_DIR")),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("secure-edge.toml: OK (2 listeners"), "{out}");

    let dir = std::env::temp_dir().join(format!("siphon-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\ncolour = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_siphon"))
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("{}:4: unknown field `colour`", bad.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `siphon --config FILE` serves UDP, answers OPTIONS, and stops with exit
/// status 0 on SIGTERM (sent by PID with kill(1)).
#[test]
fn runs_and_stops_on_sigterm() {
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    let port = UdpSocket::bind("127.0.2.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("siphon-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nshards = 1\nlog_format = \"json\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.2.1:{port}\"\n"
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_siphon"))
        .arg("--config")
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();

    let ua = UdpSocket::bind("127.0.2.2:0").unwrap();
    ua.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let me = ua.local_addr().unwrap();
    let options = format!("OPTIONS sip:127.0.2.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKrun;rport\r\nMax-Forwards: 70\r\nFrom: <sip:t@{me}>;tag=1\r\nTo: <sip:127.0.2.1>\r\nCall-ID: run-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n");
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        // Retry until the shards are up (bounded by the deadline).
        ua.send_to(options.as_bytes(), ("127.0.2.1", port)).unwrap();
        if let Ok((n, _)) = ua.recv_from(&mut buf) {
            break String::from_utf8_lossy(&buf[..n]).into_owned();
        }
        assert!(Instant::now() < deadline, "no answer from siphon");
    };
    assert!(answer.starts_with("SIP/2.0 200 OK\r\n"), "{answer}");

    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "siphon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    // Logs are JSON lines (log_format = "json").
    let lines: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|v| v["fields"]["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("1 shards serving udp 127.0.2.1:")),
        "{err}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("stopped: 1 datagrams in, 1 out, 0 forwarded, 1 answered")),
        "{err}"
    );
    assert!(lines.iter().all(|v| v["level"].is_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// SIGHUP reloads the routing from the config file (sent by PID with
/// kill(1)); a config that does not validate is rejected, logged with its
/// error, and the running table stays.
#[test]
fn sighup_reloads_and_a_bad_config_is_rejected() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream, UdpSocket};
    use std::time::{Duration, Instant};

    let port = UdpSocket::bind("127.0.2.5:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let http = TcpListener::bind("127.0.2.5:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("siphon-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("hup.toml");
    let text = |dest: &str| {
        format!(
            "[server]\nshards = 1\nlog_format = \"json\"\n[[listen]]\ntransport = \"udp\"\naddr = \"127.0.2.5:{port}\"\n[metrics]\nlisten = \"{http}\"\n[[route]]\nname = \"all\"\ndestination = \"{dest}\"\n[destination.a]\ntargets = [{{ uri = \"sip:127.0.2.6:5060\" }}]\n[destination.b]\ntargets = [{{ uri = \"sip:127.0.2.7:5060\" }}]\n"
        )
    };
    std::fs::write(&cfg, text("a")).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_siphon"))
        .arg("--config")
        .arg(&cfg)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // GET /admin/sets, once the listener is up (bounded).
    let generation = || -> Option<u64> {
        let mut c = TcpStream::connect(http).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        c.write_all(b"GET /admin/sets HTTP/1.1\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        let body = out.split_once("\r\n\r\n")?.1;
        serde_json::from_str::<serde_json::Value>(body).ok()?["generation"].as_u64()
    };
    let wait_for = |want: u64| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if generation() == Some(want) {
                return;
            }
            assert!(Instant::now() < deadline, "generation {want} never seen");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let hup = || {
        let s = std::process::Command::new("kill")
            .arg("-HUP")
            .arg(child.id().to_string())
            .status()
            .unwrap();
        assert!(s.success());
    };
    wait_for(0);
    std::fs::write(&cfg, text("b")).unwrap();
    hup();
    wait_for(1);
    std::fs::write(&cfg, text("nowhere")).unwrap();
    hup();
    // The rejection is logged; give it time to land, then check that the
    // table did not change.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(generation(), Some(1));
    let kill = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(kill.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "siphon did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let messages: Vec<String> = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["fields"]["message"].as_str().map(str::to_string))
        .collect();
    assert!(
        messages.iter().any(
            |m| m.starts_with(&format!("reloaded {} in ", cfg.display()))
                && m.ends_with("1 routes, 2 destination sets")
        ),
        "{err}"
    );
    assert!(
        messages.iter().any(|m| m
            .starts_with("reload rejected, the running configuration stays: ")
            && m.contains("route[0].destination: unknown destination \"nowhere\"")),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
