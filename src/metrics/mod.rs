//! The metrics and admin listener: `GET /metrics` (Prometheus text format
//! 0.0.4), `GET /health`, and the admin API under `/admin/` (JSON, see
//! [`Admin`]), on a thread of its own so that a scrape never touches a
//! shard. It reads the shards' counters (relaxed atomics) and sums them.
//! Bounded: one connection at a time, 8 KiB of request head, 64 KiB of
//! body, 2 s to send it.

pub mod json;

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rt::{Counters, Snapshot, SERIES};

/// The admin API and the metrics that are not per-shard counters: the
/// runtime implements it (routing table, health, registrar, reload).
pub trait Admin: Send + Sync {
    /// Append Prometheus text (with HELP/TYPE lines) to `out`.
    fn metrics(&self, out: &mut String);
    /// Answer `method path` with a status and a JSON body, or `None` for
    /// a path the admin API does not know (404).
    fn handle(&self, method: &str, path: &str, body: &[u8]) -> Option<(u16, String)>;
}

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
        Metrics::start_with(addr, shards, Vec::new(), None)
    }

    /// As `start`, with process-wide `gauges` besides the shards' series,
    /// and the admin API when `admin` is given.
    pub fn start_with(
        addr: SocketAddr,
        shards: Vec<Arc<Counters>>,
        gauges: Vec<Gauge>,
        admin: Option<Arc<dyn Admin>>,
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
                            let _ = serve(conn, &shards, &gauges, admin.as_deref());
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

fn serve(
    mut conn: TcpStream,
    shards: &[Arc<Counters>],
    gauges: &[Gauge],
    admin: Option<&dyn Admin>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.set_write_timeout(Some(Duration::from_secs(2)))?;
    let Some((method, path, body)) = read_request(&mut conn)? else {
        return respond(&mut conn, "400 Bad Request", "text/plain", "bad request\n");
    };
    match (method.as_str(), path.as_str()) {
        ("GET", "/metrics") => {
            let per: Vec<Snapshot> = shards.iter().map(|c| Snapshot::of(c)).collect();
            let mut text = render(&per);
            for (name, help, read) in gauges {
                let _ = writeln!(
                    text,
                    "# HELP {name} {help}.\n# TYPE {name} gauge\n{name} {}",
                    read()
                );
            }
            if let Some(a) = admin {
                a.metrics(&mut text);
            }
            respond(&mut conn, "200 OK", "text/plain; version=0.0.4", &text)
        }
        ("GET", "/health") => respond(&mut conn, "200 OK", "text/plain", "ok\n"),
        (m, p) if p.starts_with("/admin/") => match admin.and_then(|a| a.handle(m, p, &body)) {
            Some((code, json)) => respond(&mut conn, &status_line(code), "application/json", &json),
            None if admin.is_none() => respond(
                &mut conn,
                "404 Not Found",
                "application/json",
                "{\"error\":\"the admin API is off ([metrics] admin)\"}\n",
            ),
            None => respond(
                &mut conn,
                "404 Not Found",
                "application/json",
                "{\"error\":\"not found\"}\n",
            ),
        },
        ("GET", _) => respond(&mut conn, "404 Not Found", "text/plain", "not found\n"),
        _ => respond(
            &mut conn,
            "405 Method Not Allowed",
            "text/plain",
            "method not allowed\n",
        ),
    }
}

/// Most of a request head, and the body its Content-Length announces
/// (bounded): method, path (query included), body. `None` if it is not
/// an HTTP request we accept.
fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<(String, String, Vec<u8>)>> {
    const HEAD_MAX: usize = 8192;
    const BODY_MAX: usize = 65_536;
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut buf)?;
        if n == 0 || req.len() + n > HEAD_MAX + BODY_MAX {
            return Ok(None);
        }
        req.extend_from_slice(&buf[..n]);
        if req.len() > HEAD_MAX && !req.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&req[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let (method, path) = (
        first.next().unwrap_or_default().to_string(),
        first.next().unwrap_or_default().to_string(),
    );
    let length = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    if length > BODY_MAX {
        return Ok(None);
    }
    let mut body = req[head_end..].to_vec();
    while body.len() < length {
        let n = conn.read(&mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        body.extend_from_slice(&buf[..n]);
    }
    body.truncate(length);
    Ok(Some((method, path, body)))
}

fn status_line(code: u16) -> String {
    let reason = match code {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Entity",
        _ => "Error",
    };
    format!("{code} {reason}")
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
    let name = "siphon_shard_overloaded";
    let _ = writeln!(
        out,
        "# HELP {name} 1 while the shard is behind the offered load (new calls and REGISTERs refused).\n# TYPE {name} gauge"
    );
    for (i, s) in shards.iter().enumerate() {
        let _ = writeln!(out, "{name}{{shard=\"{i}\"}} {}", s.overloaded());
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
