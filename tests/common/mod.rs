//! What the loopback test files share: starting a runtime on a free port
//! (one at a time) and waiting for counters to settle.
//!
//! Runtimes are started one at a time: each sizes glommio's locked
//! io_memory to the process's whole RLIMIT_MEMLOCK budget.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use siphon::config::Config;
use siphon::proxy::Hosts;
use siphon::rt::{Runtime, Snapshot};
use siphon::sip::{Message, Method};
use siphon::testkit::Ua;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub struct Proxy {
    pub rt: Runtime,
    /// The listening address (UDP, and TCP on the same port when asked).
    pub addr: SocketAddr,
    _guard: MutexGuard<'static, ()>,
}

pub fn lock() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A port free for both UDP and TCP on `ip`: bind, read, release (the
/// shards bind it next with SO_REUSEPORT).
pub fn free_port(ip: &str) -> u16 {
    loop {
        let u = std::net::UdpSocket::bind((ip, 0)).unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
}

/// Start a proxy on `ip` with `shards` shards, listening on the given
/// transports on one free port; `extra` is appended to the config.
pub fn start_on(shards: usize, ip: &str, transports: &[&str], extra: &str) -> Proxy {
    start_with(shards, "", ip, transports, extra)
}

/// `start_on` with more `[server]` keys (`server`, one per line).
pub fn start_with(
    shards: usize,
    server: &str,
    ip: &str,
    transports: &[&str],
    extra: &str,
) -> Proxy {
    let guard = lock();
    let port = free_port(ip);
    let addr = SocketAddr::new(ip.parse().unwrap(), port);
    let mut text = format!("[server]\nshards = {shards}\n{server}");
    for t in transports {
        text += &format!("[[listen]]\ntransport = \"{t}\"\naddr = \"{addr}\"\n");
    }
    text += extra;
    let cfg = Config::parse(&text, Path::new("test.toml")).unwrap();
    let rt = Runtime::start(Arc::new(cfg), Arc::new(Hosts::default())).unwrap();
    Proxy {
        rt,
        addr,
        _guard: guard,
    }
}

/// Start a runtime on `addr` held by another socket: it must fail with
/// `cannot listen on TRANSPORT ADDR: …`.
pub fn assert_port_in_use(transport: &str, addr: SocketAddr) {
    let _guard = lock();
    let text = format!(
        "[server]\nshards = 1\n[[listen]]\ntransport = \"{transport}\"\naddr = \"{addr}\"\n"
    );
    let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
    let err = Runtime::start(Arc::new(cfg), Arc::new(Hosts::default()))
        .err()
        .expect("must fail");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {transport} {addr}: ")),
        "{err}"
    );
}

/// The counters once `done` holds, or after 3 s (then the caller's
/// assertions report what they are).
pub fn settled(rt: &Runtime, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    settled_for(rt, Duration::from_secs(3), done)
}

/// [`settled`] waiting at most `wait`.
pub fn settled_for(rt: &Runtime, wait: Duration, done: impl Fn(&Snapshot) -> bool) -> Snapshot {
    let deadline = Instant::now() + wait;
    loop {
        let s = rt.snapshot();
        if done(&s) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The next message at `ua`, which must be a response with this status.
pub fn status(ua: &Ua, code: u16) -> Message {
    let (m, _) = ua.expect();
    assert_eq!(
        m.status(),
        Some(code),
        "got {:?}",
        String::from_utf8_lossy(m.as_bytes())
    );
    m
}

/// The next message at `ua`, which must be a request with this method.
pub fn method(ua: &Ua, want: Method) -> Message {
    let (m, _) = ua.expect();
    assert_eq!(
        m.method(),
        Some(want),
        "got {:?}",
        String::from_utf8_lossy(m.as_bytes())
    );
    m
}

/// `METHOD path` to the HTTP listener at `addr`: the status and the body.
pub fn http(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(
        c,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    let code = out[9..12].parse().unwrap();
    let body = out.split_once("\r\n\r\n").unwrap().1.to_string();
    (code, body)
}
