//! UDP sockets of a shard: one SO_REUSEPORT socket per UDP listener, and
//! in stateful mode one of its own per listener, built with socket2
//! (explicit buffer sizes, with a warning when the kernel clamps them).
//! The shard's ring reads and writes them (`ring.rs`).

use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use socket2::Socket;

use super::StartError;
use crate::config::{Config, Transport};

/// Socket buffers: 4 MiB holds ~4k INVITEs of burst. Linux caps it at
/// net.core.rmem_max / wmem_max (4 MiB on the development machines).
const SOCKET_BUFFER: usize = 4 << 20;

/// Bind this shard's socket for every UDP listener.
pub(super) fn bind_all(
    cfg: &Config,
    shard: usize,
) -> Result<Vec<(SocketAddr, Socket)>, StartError> {
    let mut out = Vec::new();
    for l in cfg.listen.iter().filter(|l| l.transport == Transport::Udp) {
        let err = |source| StartError::Bind {
            transport: Transport::Udp,
            addr: l.addr,
            source,
        };
        let s = super::socket_for(l.addr, Transport::Udp).map_err(err)?;
        s.set_reuse_port(true).map_err(err)?;
        set_buffers(&s, l.addr, shard == 0);
        s.bind(&l.addr.into()).map_err(err)?;
        if cfg.server.spread && cfg.server.shards > 1 {
            super::ring::spread_randomly(s.as_raw_fd(), cfg.server.shards as u32).map_err(err)?;
        }
        out.push((l.addr, s));
    }
    Ok(out)
}

/// Stateful mode: one UDP socket of this shard's own per UDP listener
/// (without `advertise`: behind NAT the public port would not be known),
/// bound to the listener's address and a port the kernel picks, without
/// SO_REUSEPORT. Requests the shard forwards leave from it and name it in
/// their Via, so their responses come back to this shard and never need
/// a hand-off. Bound before the shards start, so that every shard knows
/// every shard's sockets (they are all "us").
pub(super) fn bind_outbound(cfg: &Config) -> Result<Vec<(SocketAddr, Socket)>, StartError> {
    let mut out = Vec::new();
    for l in cfg
        .listen
        .iter()
        .filter(|l| l.transport == Transport::Udp && l.advertise.is_none())
    {
        let at = SocketAddr::new(l.addr.ip(), 0);
        let err = |source| StartError::Bind {
            transport: Transport::Udp,
            addr: at,
            source,
        };
        let s = super::socket_for(at, Transport::Udp).map_err(err)?;
        set_buffers(&s, at, false);
        s.bind(&at.into()).map_err(err)?;
        out.push((l.addr, s));
    }
    Ok(out)
}

/// The address a socket is bound to.
pub(super) fn bound(s: &Socket) -> Option<SocketAddr> {
    s.local_addr().ok().and_then(|a| a.as_socket())
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
