//! UDP in batches: recvmmsg with kernel receive timestamps (SO_TIMESTAMPNS)
//! into fixed buffers, and a send queue flushed with sendmmsg. Nothing here
//! allocates per datagram.

use std::io::{IoSlice, IoSliceMut};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::sys::socket::{
    recvmmsg, sendmmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    MultiHeaders, SockaddrStorage,
};
use nix::sys::time::TimeSpec;

/// Datagrams per recvmmsg/sendmmsg call.
pub const BATCH: usize = 32;
/// Receive buffer per datagram. The messages of these scenarios are under
/// 1 KiB; a longer datagram is cut and reported as truncated.
pub const SLOT: usize = 4096;
/// Socket buffers asked for (the kernel caps them at net.core.*mem_max).
const SOCKET_BUFFER: usize = 4 << 20;

/// The wall clock in ns, the clock of SO_TIMESTAMPNS.
pub fn realtime_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// A blocking UDP socket with big buffers and, if asked, receive
/// timestamps (without them `Got::ts` is the time of the receive call).
/// Reads and writes pass MSG_DONTWAIT where they must not wait.
pub fn bind(addr: SocketAddr, timestamps: bool) -> std::io::Result<UdpSocket> {
    let s = UdpSocket::bind(addr)?;
    let _ = setsockopt(&s, sockopt::RcvBuf, &SOCKET_BUFFER);
    let _ = setsockopt(&s, sockopt::SndBuf, &SOCKET_BUFFER);
    if timestamps {
        setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)?;
    }
    Ok(s)
}

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Got {
    pub len: usize,
    pub from: Option<SocketAddr>,
    /// Kernel receive time (wall clock, ns).
    pub ts: i64,
    /// Longer than `SLOT`: cut.
    pub truncated: bool,
}

/// Buffers and headers for recvmmsg, reused across calls.
pub struct RecvBatch {
    bufs: Vec<u8>,
    /// The socket has SO_TIMESTAMPNS on (see `bind`).
    timestamps: bool,
    headers: MultiHeaders<SockaddrStorage>,
    got: Vec<Got>,
}

impl RecvBatch {
    /// For a socket bound with `timestamps` as given.
    pub fn new(timestamps: bool) -> RecvBatch {
        RecvBatch {
            bufs: vec![0u8; BATCH * SLOT],
            timestamps,
            headers: headers(),
            got: Vec::with_capacity(BATCH),
        }
    }

    /// Receive up to `BATCH` datagrams. `wait`: block for the first one
    /// (up to the socket's read timeout) and take what else is queued;
    /// otherwise return at once (EAGAIN when nothing is there).
    pub fn recv(&mut self, fd: RawFd, wait: bool) -> nix::Result<usize> {
        self.got.clear();
        let flags = if wait {
            MsgFlags::MSG_WAITFORONE
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        let mut chunks = self.bufs.chunks_mut(SLOT);
        let slices: [[IoSliceMut<'_>; 1]; BATCH] =
            std::array::from_fn(|_| [IoSliceMut::new(chunks.next().unwrap_or_default())]);
        let mut missing_ts = false;
        {
            let res = recvmmsg(fd, &mut self.headers, slices.iter(), flags, None)?;
            for m in res {
                let ts = m.cmsgs().find_map(|c| match c {
                    ControlMessageOwned::ScmTimestampns(t) => Some(ns(t)),
                    _ => None,
                });
                missing_ts |= ts.is_none();
                self.got.push(Got {
                    len: m.bytes.min(SLOT),
                    from: m.address.and_then(to_std),
                    ts: ts.unwrap_or_else(realtime_ns),
                    truncated: m.flags.contains(MsgFlags::MSG_TRUNC),
                });
            }
        }
        if missing_ts && self.timestamps {
            // The kernel shrinks msg_controllen to what it wrote; start
            // afresh so the next datagrams have room for their timestamp.
            self.headers = headers();
        }
        Ok(self.got.len())
    }

    /// Datagram `i` of the last call and its bytes.
    pub fn get(&self, i: usize) -> (Got, &[u8]) {
        let g = self.got[i];
        (g, &self.bufs[i * SLOT..i * SLOT + g.len])
    }
}

fn headers() -> MultiHeaders<SockaddrStorage> {
    MultiHeaders::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)))
}

fn ns(t: TimeSpec) -> i64 {
    t.tv_sec() * 1_000_000_000 + t.tv_nsec()
}

fn to_std(a: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6().map(|v6| SocketAddr::V6((*v6).into()))
}

/// Datagrams waiting to go out of one socket: their bytes end to end in
/// one buffer, with a destination and a tag each. `flush` reports the
/// time it handed each tagged datagram to the kernel.
pub struct SendQueue {
    data: Vec<u8>,
    /// (end offset in `data`, tag) per datagram; NO_TAG when untagged.
    ends: Vec<(usize, u64)>,
    addrs: Vec<Option<SockaddrStorage>>,
    headers: MultiHeaders<SockaddrStorage>,
}

/// The tag of a datagram nobody needs a send time for.
pub const NO_TAG: u64 = u64::MAX;

/// What a flush did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    pub sent: u64,
    pub errors: u64,
}

impl Default for SendQueue {
    fn default() -> Self {
        SendQueue::new()
    }
}

impl SendQueue {
    pub fn new() -> SendQueue {
        SendQueue {
            data: Vec::with_capacity(BATCH * 1024),
            ends: Vec::with_capacity(BATCH),
            addrs: Vec::with_capacity(BATCH),
            headers: MultiHeaders::preallocate(BATCH, None),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// The buffer to write the next datagram into (after what is queued);
    /// `push` then closes it.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        &mut self.data
    }

    /// Close the datagram written since the last `push` (or `discard`).
    pub fn push(&mut self, dest: SocketAddr, tag: u64) {
        self.ends.push((self.data.len(), tag));
        self.addrs.push(Some(SockaddrStorage::from(dest)));
    }

    /// Queue a copy of `bytes`.
    pub fn push_bytes(&mut self, bytes: &[u8], dest: SocketAddr, tag: u64) {
        self.data.extend_from_slice(bytes);
        self.push(dest, tag);
    }

    /// Send everything queued with sendmmsg, `BATCH` at a time; `sent`
    /// gets each tagged datagram's tag and the wall-clock time (ns) it
    /// reached the receiving socket, interpolated over its batch's call
    /// (loopback delivers during the send). A datagram the kernel refuses
    /// is counted as an error and dropped (retransmissions cover requests).
    pub fn flush(&mut self, sock: &UdpSocket, mut sent: impl FnMut(u64, i64)) -> Flushed {
        let fd = sock.as_raw_fd();
        let mut out = Flushed::default();
        let mut i = 0;
        let no_cmsgs: [ControlMessage<'_>; 0] = [];
        while i < self.ends.len() {
            let n = (self.ends.len() - i).min(BATCH);
            let mut slices = [[IoSlice::new(&[])]; BATCH];
            for (k, s) in slices.iter_mut().take(n).enumerate() {
                let start = if i + k == 0 {
                    0
                } else {
                    self.ends[i + k - 1].0
                };
                s[0] = IoSlice::new(&self.data[start..self.ends[i + k].0]);
            }
            let before = realtime_ns();
            let r = sendmmsg(
                fd,
                &mut self.headers,
                slices[..n].iter(),
                &self.addrs[i..i + n],
                no_cmsgs,
                MsgFlags::MSG_DONTWAIT,
            )
            .map(|r| r.count());
            let took = match r {
                Ok(k) if k > 0 => k,
                Ok(_) | Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                    // Full send buffer: this one waits (the socket blocks).
                    let start = if i == 0 { 0 } else { self.ends[i - 1].0 };
                    let dest = self.addrs[i].and_then(to_std);
                    match dest.map(|d| sock.send_to(&self.data[start..self.ends[i].0], d)) {
                        Some(Ok(_)) => 1,
                        _ => {
                            out.errors += 1;
                            i += 1;
                            continue;
                        }
                    }
                }
                Err(_) => {
                    // This datagram is refused (the error belongs to the
                    // first of the batch); skip it and go on.
                    out.errors += 1;
                    i += 1;
                    continue;
                }
            };
            // The kernel hands each datagram to its receiver before the
            // next: datagram j of k is in the peer's queue about
            // (j + 1) / k of the way through the call.
            let spent = realtime_ns() - before;
            for (j, &(_, tag)) in self.ends[i..i + took].iter().enumerate() {
                if tag != NO_TAG {
                    sent(tag, before + spent * (j as i64 + 1) / took as i64);
                }
            }
            out.sent += took as u64;
            i += took;
        }
        self.data.clear();
        self.ends.clear();
        self.addrs.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_goes_out_in_batches_and_arrives_with_timestamps() {
        let rx = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let tx = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let to = rx.local_addr().unwrap();
        let mut q = SendQueue::new();
        for i in 0..(BATCH + 5) {
            q.push_bytes(
                format!("datagram {i}").as_bytes(),
                to,
                if i % 2 == 0 { i as u64 } else { NO_TAG },
            );
        }
        let before = realtime_ns();
        let mut tags = Vec::new();
        let f = q.flush(&tx, |tag, t| tags.push((tag, t)));
        assert_eq!(
            f,
            Flushed {
                sent: BATCH as u64 + 5,
                errors: 0
            }
        );
        assert!(q.is_empty());
        assert_eq!(
            tags.iter().map(|t| t.0).collect::<Vec<_>>(),
            (0..BATCH as u64 + 5).step_by(2).collect::<Vec<_>>()
        );
        let after = realtime_ns();
        assert!(
            tags.iter().all(|&(_, t)| t > before && t <= after),
            "{tags:?}"
        );
        // Interpolated over the batch: later datagrams, later times.
        assert!(tags.windows(2).all(|w| w[0].1 <= w[1].1), "{tags:?}");

        let mut b = RecvBatch::new(true);
        assert_eq!(b.recv(rx.as_raw_fd(), false), Ok(BATCH));
        let (g, bytes) = b.get(3);
        assert_eq!(bytes, b"datagram 3");
        assert_eq!(g.from, Some(tx.local_addr().unwrap()));
        assert!(!g.truncated);
        assert!(
            g.ts >= before && g.ts <= realtime_ns(),
            "a kernel timestamp of now"
        );
        assert_eq!(b.recv(rx.as_raw_fd(), false), Ok(5));
        assert_eq!(b.get(4).1, format!("datagram {}", BATCH + 4).as_bytes());
        assert_eq!(b.recv(rx.as_raw_fd(), false), Err(Errno::EAGAIN));
    }

    #[test]
    fn long_datagrams_are_cut_and_flagged() {
        let rx = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let tx = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        tx.send_to(&vec![b'x'; SLOT + 10], rx.local_addr().unwrap())
            .unwrap();
        let mut b = RecvBatch::new(true);
        assert_eq!(b.recv(rx.as_raw_fd(), true), Ok(1));
        let (g, bytes) = b.get(0);
        assert!(g.truncated);
        assert_eq!(bytes.len(), SLOT);
    }
}
