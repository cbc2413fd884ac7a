//! UDP on a shard: one SO_REUSEPORT socket per UDP listener, built with
//! socket2 (explicit buffer sizes, with a warning when the kernel clamps
//! them) and driven by glommio. Every datagram goes through the shard's
//! `proxy::Core`; the answer leaves from the listener the core chose.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use glommio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::shard::Shard;
use super::stats::Counters;
use super::{StartError, STOP_POLL};
use crate::config::{Config, Transport};
use crate::proxy::{Drop, Flow, Transmit};

/// Socket buffers: 4 MiB holds ~4k INVITEs of burst. Linux caps it at
/// net.core.rmem_max / wmem_max (4 MiB on the development machines).
const SOCKET_BUFFER: usize = 4 << 20;

/// Bind this shard's socket for every UDP listener.
pub(super) fn bind_all(
    cfg: &Config,
    shard: usize,
) -> Result<Vec<(SocketAddr, UdpSocket)>, StartError> {
    let mut out = Vec::new();
    for l in cfg.listen.iter().filter(|l| l.transport == Transport::Udp) {
        let err = |source| StartError::Bind {
            transport: Transport::Udp,
            addr: l.addr,
            source,
        };
        let domain = if l.addr.is_ipv4() {
            Domain::IPV4
        } else {
            Domain::IPV6
        };
        let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP)).map_err(err)?;
        s.set_reuse_port(true).map_err(err)?;
        if l.addr.is_ipv6() {
            s.set_only_v6(true).map_err(err)?;
        }
        set_buffers(&s, l.addr, shard == 0);
        s.bind(&l.addr.into()).map_err(err)?;
        let sock = UdpSocket::from(s);
        sock.set_read_timeout(Some(STOP_POLL))
            .map_err(|e| StartError::Bind {
                transport: Transport::Udp,
                addr: l.addr,
                source: std::io::Error::other(e.to_string()),
            })?;
        out.push((l.addr, sock));
    }
    Ok(out)
}

/// Ask for big buffers and say so when the kernel gives less (it caps them
/// at net.core.rmem_max / wmem_max and reports double what it keeps).
fn set_buffers(s: &Socket, addr: SocketAddr, warn: bool) {
    let _ = s.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = s.set_send_buffer_size(SOCKET_BUFFER);
    for (what, got) in [
        ("SO_RCVBUF", s.recv_buffer_size()),
        ("SO_SNDBUF", s.send_buffer_size()),
    ] {
        if let Ok(got) = got {
            if warn && got / 2 < SOCKET_BUFFER {
                tracing::warn!(
                    "udp {addr}: {what} clamped to {} KiB (asked {} KiB); raise net.core.{}mem_max to absorb bursts",
                    (got / 2) >> 10,
                    SOCKET_BUFFER >> 10,
                    if what == "SO_RCVBUF" { "r" } else { "w" }
                );
            }
        }
    }
}

/// Serve every UDP socket of this shard until it stops.
pub(super) async fn serve(shard: &Rc<Shard>) {
    let mut tasks = Vec::new();
    for (&local, sock) in shard.udp.iter() {
        let (sock, shard) = (sock.clone(), shard.clone());
        tasks.push(glommio::spawn_local(async move {
            recv_loop(local, sock, shard).await;
        }));
    }
    for t in tasks {
        t.await;
    }
}

async fn recv_loop(local: SocketAddr, sock: Rc<UdpSocket>, shard: Rc<Shard>) {
    let counters = &shard.counters;
    let mut buf = vec![0u8; 65_536];
    while !shard.stopping() {
        let (n, remote) = match sock.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) if is_timeout(&e) => continue,
            Err(_) => {
                Counters::add(&counters.recv_errors, 1);
                continue;
            }
        };
        Counters::add(&counters.datagrams_in, 1);
        Counters::add(&counters.bytes_in, n as u64);
        let data = Bytes::copy_from_slice(&buf[..n]);
        let flow = Flow {
            transport: Transport::Udp,
            local,
            remote,
            conn: None,
        };
        let outcome = shard.core.borrow_mut().handle(data, flow);
        shard.dispatch(outcome).await;
    }
}

/// Send one datagram from the listener the core chose.
pub(super) async fn send(shard: &Shard, t: Transmit) {
    let counters = &shard.counters;
    let Some(sock) = shard.udp.get(&t.local) else {
        counters.dropped(Drop::Unsent);
        return;
    };
    match sock.send_to(&t.data, t.dest).await {
        Ok(n) => {
            Counters::add(&counters.datagrams_out, 1);
            Counters::add(&counters.bytes_out, n as u64);
        }
        Err(_) => Counters::add(&counters.send_errors, 1),
    }
}

fn is_timeout(e: &glommio::GlommioError<()>) -> bool {
    matches!(e, glommio::GlommioError::TimedOut(_))
        || matches!(e, glommio::GlommioError::IoError(io) if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock))
}
