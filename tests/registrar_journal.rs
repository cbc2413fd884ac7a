//! Bindings survive SIGKILL: REGISTERs for distinct users are sent as fast
//! as the answers come back; siphon is killed with SIGKILL in the middle
//! of the load; a new siphon on the same journal must hold every binding
//! that was acknowledged with a 200 (and may hold some that were not).

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use siphon::sip::{Framing, HeaderName, Limits, Message};

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A siphon process, killed (SIGKILL, by its PID) and reaped when
/// dropped, so that a failing test leaves nothing running.
struct Siphon(Child);

impl Siphon {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Siphon {
    fn drop(&mut self) {
        self.kill();
    }
}

fn start(config: &std::path::Path) -> Siphon {
    Siphon(
        Command::new(env!("CARGO_BIN_EXE_siphon"))
            .args(["--config", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn register(me: SocketAddr, user: u32, extra: &str) -> Vec<u8> {
    format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{user}-{extra_len};rport\r\nMax-Forwards: 70\r\nFrom: <sip:u{user}@example.com>;tag=t{user}\r\nTo: <sip:u{user}@example.com>\r\nCall-ID: kill-{user}\r\nCSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n",
        extra_len = extra.len(),
        cseq = if extra.is_empty() { 2 } else { 1 },
    )
    .into_bytes()
}

fn parse(buf: &[u8]) -> Option<Message> {
    Message::parse(buf.to_vec().into(), Framing::Datagram, &Limits::default()).ok()
}

/// The user number in a response's To (`u<N>@`).
fn user_of(m: &Message) -> Option<u32> {
    let to = m.header(HeaderName::To)?;
    let s = std::str::from_utf8(to).ok()?;
    let at = s.find("sip:u")? + 5;
    s[at..].split('@').next()?.parse().ok()
}

/// Wait until siphon answers a REGISTER query (it is up), at most 10 s.
fn wait_up(sock: &UdpSocket, to: SocketAddr) {
    let me = sock.local_addr().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        sock.send_to(&register(me, 999_999, ""), to).unwrap();
        if sock.recv_from(&mut buf).is_ok() {
            return;
        }
    }
    panic!("siphon did not come up");
}

#[test]
fn every_acknowledged_binding_survives_sigkill() {
    let dir = std::env::temp_dir().join(format!("siphon-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let config = dir.join("siphon.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nshards = 2\nlog_level = \"error\"\n[[listen]]\ntransport = \"udp\"\naddr = \"{to}\"\n\
             [registrar]\ndomains = [\"example.com\"]\njournal_dir = \"journal\"\nfsync = \"never\"\ncompact_interval_s = 1\n"
        ),
    )
    .unwrap();
    let mut child = start(&config);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    wait_up(&sock, to);
    let me = sock.local_addr().unwrap();

    // Send with a window of 64 outstanding; a receiver thread collects the
    // 200s. Kill once 3000 are acknowledged (compaction runs every second
    // meanwhile, so the kill can land in any phase of it).
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let done = Arc::new(AtomicBool::new(false));
    let rx = {
        let sock = sock.try_clone().unwrap();
        let (acked, done) = (acked.clone(), done.clone());
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while !done.load(Ordering::Relaxed) {
                if let Ok((n, _)) = sock.recv_from(&mut buf) {
                    if let Some(m) = parse(&buf[..n]) {
                        if m.status() == Some(200) {
                            if let Some(u) = user_of(&m) {
                                acked.lock().unwrap().insert(u);
                            }
                        }
                    }
                }
            }
        })
    };
    let started = Instant::now();
    let mut sent = 0u32;
    let mut killed = false;
    while started.elapsed() < Duration::from_secs(20) && sent < 200_000 {
        let n = acked.lock().unwrap().len() as u32;
        if n >= 3000 && !killed {
            // SIGKILL by PID, while REGISTERs are in flight: a burst of
            // 256 more just before it, so that a busy machine that let
            // the window drain still kills mid-load.
            for _ in 0..256 {
                let contact = format!("Contact: <sip:u{sent}@10.0.0.1:5060>\r\n");
                sock.send_to(&register(me, sent, &contact), to).unwrap();
                sent += 1;
            }
            child.kill();
            killed = true;
            break;
        }
        if sent < n + 64 {
            let contact = format!("Contact: <sip:u{sent}@10.0.0.1:5060>\r\n");
            sock.send_to(&register(me, sent, &contact), to).unwrap();
            sent += 1;
        } else {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    assert!(killed, "3000 REGISTERs were not acknowledged within 20 s");
    std::thread::sleep(Duration::from_millis(400));
    done.store(true, Ordering::Relaxed);
    rx.join().unwrap();
    let acked: Vec<u32> = acked.lock().unwrap().iter().copied().collect();
    assert!((sent as usize) > acked.len(), "the kill must land mid-load");

    // Restart on the same journal; query every acknowledged AOR.
    let mut child = start(&config);
    let q = UdpSocket::bind("127.0.0.1:0").unwrap();
    q.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    wait_up(&q, to);
    let me = q.local_addr().unwrap();
    let mut buf = [0u8; 4096];
    let mut missing = Vec::new();
    for &u in &acked {
        q.send_to(&register(me, u, ""), to).unwrap();
        let (n, _) = q.recv_from(&mut buf).unwrap();
        let m = parse(&buf[..n]).unwrap();
        let want = format!("<sip:u{u}@10.0.0.1:5060>");
        let has = m
            .header_values(HeaderName::Contact)
            .any(|c| c.starts_with(want.as_bytes()));
        if !has {
            missing.push(u);
        }
    }
    child.kill();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged bindings lost: {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
}
