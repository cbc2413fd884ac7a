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
    assert_eq!(siphon(&[]).0, 2);
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
