//! The metrics listener: `GET /metrics` (Prometheus text format 0.0.4) and
//! `GET /health`, on a thread of its own so that a scrape never touches a
//! shard. It reads the shards' counters (relaxed atomics) and sums them.
//! Bounded: one connection at a time, 8 KiB of request, 2 s to send it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rt::{Counters, Snapshot, SERIES};

/// A running metrics listener.
pub struct Metrics {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A gauge read at each scrape: name, help, reader.
pub type Gauge = (
    &'static str,
    &'static str,
    Arc<dyn Fn() -> u64 + Send + Sync>,
);

impl Metrics {
    /// Listen on `addr` and serve the sum of `shards`' counters.
    pub fn start(addr: SocketAddr, shards: Vec<Arc<Counters>>) -> std::io::Result<Metrics> {
        Metrics::start_with(addr, shards, Vec::new())
    }

    /// As `start`, with process-wide `gauges` besides the shards' series.
    pub fn start_with(
        addr: SocketAddr,
        shards: Vec<Arc<Counters>>,
        gauges: Vec<Gauge>,
    ) -> std::io::Result<Metrics> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("siphon-metrics".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let _ = serve(conn, &shards, &gauges);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(20))
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })?;
        Ok(Metrics {
            addr,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, shards: &[Arc<Counters>], gauges: &[Gauge]) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = conn.read(&mut buf)?;
        if n == 0 || req.len() + n > 8192 {
            return respond(&mut conn, "400 Bad Request", "text/plain", "bad request\n");
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = req.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, path) = (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    );
    match (method, path) {
        (b"GET", b"/metrics") => {
            let per: Vec<Snapshot> = shards.iter().map(|c| Snapshot::of(c)).collect();
            let mut text = render(&per);
            for (name, help, read) in gauges {
                let _ = writeln!(
                    text,
                    "# HELP {name} {help}.\n# TYPE {name} gauge\n{name} {}",
                    read()
                );
            }
            respond(&mut conn, "200 OK", "text/plain; version=0.0.4", &text)
        }
        (b"GET", b"/health") => respond(&mut conn, "200 OK", "text/plain", "ok\n"),
        (b"GET", _) => respond(&mut conn, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
        ),
    }
}

fn respond(conn: &mut TcpStream, status: &str, ctype: &str, body: &str) -> std::io::Result<()> {
    let head = format!("HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

/// The Prometheus text for per-shard counters (a `shard` label each).
pub fn render(shards: &[Snapshot]) -> String {
    let mut out = String::with_capacity(8192);
    for (name, help, get) in SERIES {
        let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} counter");
        for (i, s) in shards.iter().enumerate() {
            let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", get(s));
        }
    }
    let name = "siphon_tcp_connections";
    let _ = writeln!(
        out,
        "# HELP {name} TCP connections open.\n# TYPE {name} gauge"
    );
    for (i, s) in shards.iter().enumerate() {
        let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", s.tcp_open());
    }
    let name = "siphon_transactions_active";
    let _ = writeln!(
        out,
        "# HELP {name} response contexts in the transaction tables.\n# TYPE {name} gauge"
    );
    for (i, s) in shards.iter().enumerate() {
        let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", s.transactions_active());
    }
    let name = "siphon_dropped_total";
    let _ = writeln!(
        out,
        "# HELP {name} messages dropped, by reason.\n# TYPE {name} counter"
    );
    for (i, s) in shards.iter().enumerate() {
        for (reason, n) in &s.drops {
            let _ = writeln!(
                out,
                "{name}{{shard=\"{i}\",reason=\"{}\"}} {n}",
                reason.as_str()
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let c = Counters::default();
        Counters::add(&c.datagrams_in, 7);
        c.dropped(crate::proxy::Drop::Garbage);
        let text = render(&[Snapshot::of(&c), Snapshot::default()]);
        assert!(text.contains("# TYPE siphon_udp_datagrams_received_total counter\n"));
        assert!(text.contains("siphon_udp_datagrams_received_total{shard=\"0\"} 7\n"));
        assert!(text.contains("siphon_dropped_total{shard=\"0\",reason=\"garbage\"} 1\n"));
        // Every sample line is `name{labels} value`.
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(
                series.starts_with("siphon_") && series.ends_with('}'),
                "{l}"
            );
            value.parse::<u64>().unwrap();
        }
    }
}
