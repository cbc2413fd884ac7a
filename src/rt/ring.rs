//! The shard's I/O backend: one io_uring per shard, and the only module of
//! Siphon with `unsafe` code (every block says why it is sound).
//!
//! One `io_uring_enter` per wake-up submits everything the last wake-up
//! decided (datagrams, stream writes, connects, re-armed receives, wake-ups
//! of other shards) and waits for the next completions, with the timer
//! wheel's next deadline as its timeout and, when coalescing is on,
//! io_uring's `min_wait`: a shard with work waiting lets more arrive for
//! up to that long, and an idle shard is never woken for nothing.
//!
//! - UDP: one multishot `RECVMSG` per socket over a ring of provided
//!   buffers (the kernel picks a buffer per datagram); sends are `SEND`
//!   with a destination address, one SQE per datagram, each with its own
//!   completion (the stateful proxy must learn which request the kernel
//!   refused).
//! - TCP: a multishot `ACCEPT` per listener, a multishot `RECV` per
//!   connection from the same buffer ring, one `SEND` in flight per
//!   connection (the caller queues the rest in order), `CONNECT` linked to
//!   a timeout.
//! - Wake-ups from other threads: an eventfd read by the ring; other
//!   shards write it with a `WRITE` SQE of their own ring (no syscall of
//!   theirs), other threads with write(2).
//! - Flags: `SINGLE_ISSUER` (only the shard thread submits) and
//!   `DEFER_TASKRUN` (completions are produced only when the shard asks,
//!   inside its `io_uring_enter`, never by interrupting it).
//!
//! Memory the kernel reads or writes belongs to the ring until the
//! operation's last completion: send buffers, addresses and timespecs live
//! in slots owned here and are handed back (or dropped) at that completion;
//! receive buffers come from the provided-buffer ring and go back to the
//! kernel only once the borrow handed to the caller has ended.

use std::fs::File;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::slab;

/// Submission queue entries; a full queue is submitted early.
const SQ_ENTRIES: u32 = 4096;
/// Completion queue entries (the kernel keeps overflow beyond this).
const CQ_ENTRIES: u32 = 16384;
/// Provided receive buffers (a power of two) and their size: the largest
/// UDP payload after the header RECVMSG writes first (16 bytes and the
/// source address), so no datagram is ever cut. Only the pages a message
/// touches become resident.
const BUF_COUNT: u16 = 256;
const BUF_SIZE: usize = 65_536 + 128;
/// The buffer group of the provided buffers.
const BUF_GROUP: u16 = 0;
/// Datagram and stream sends in flight before `send_to` refuses more.
const MAX_SENDS: usize = 16_384;

/// What an operation is, in the top byte of its user_data; the low 32 bits
/// are the caller's token or a slot of ours.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
enum Kind {
    RecvFrom = 1,
    SendTo = 2,
    Accept = 3,
    Recv = 4,
    Send = 5,
    Connect = 6,
    LinkTimeout = 7,
    WakeRead = 8,
    WakeWrite = 9,
    Cancel = 10,
}

impl Kind {
    fn of(user_data: u64) -> Option<Kind> {
        Some(match user_data >> 56 {
            1 => Kind::RecvFrom,
            2 => Kind::SendTo,
            3 => Kind::Accept,
            4 => Kind::Recv,
            5 => Kind::Send,
            6 => Kind::Connect,
            7 => Kind::LinkTimeout,
            8 => Kind::WakeRead,
            9 => Kind::WakeWrite,
            10 => Kind::Cancel,
            _ => return None,
        })
    }

    fn tag(self, index: u32) -> u64 {
        ((self as u64) << 56) | index as u64
    }
}

/// One completion as the shard sees it. Borrowed data is valid until the
/// next call that takes the ring mutably.
#[derive(Debug)]
pub enum Event<'a, T> {
    /// A datagram on UDP socket `sock` (the index `recv_from` was given).
    Datagram {
        sock: u32,
        from: SocketAddr,
        data: &'a [u8],
    },
    /// A receive on a UDP socket failed (counted; the receive goes on).
    RecvError { sock: u32, errno: i32 },
    /// A datagram was sent (`Ok(bytes)`) or refused (`Err(errno)`).
    Sent { tag: T, res: Result<usize, i32> },
    /// A connection accepted on listener `listener`.
    Accepted {
        listener: u32,
        res: Result<OwnedFd, i32>,
    },
    /// Bytes read from stream `conn`.
    StreamData { conn: u32, data: &'a [u8] },
    /// Stream `conn` will not be read any more: end of stream (`None`) or
    /// an error. Its receive is over.
    StreamEnd { conn: u32, errno: Option<i32> },
    /// A write on stream `conn` finished: bytes written or an error; the
    /// buffer comes back with the offset it started at.
    Written {
        conn: u32,
        res: Result<usize, i32>,
        data: Vec<u8>,
        offset: usize,
    },
    /// A connect on stream `conn` finished (a timeout is `ETIMEDOUT`).
    Connected { conn: u32, res: Result<(), i32> },
    /// The eventfd was written: another thread has something for us.
    Woken,
}

/// A socket address in the form the kernel reads.
#[derive(Clone, Copy)]
#[repr(C)]
union RawAddr {
    v4: libc::sockaddr_in,
    v6: libc::sockaddr_in6,
}

impl RawAddr {
    fn new(a: SocketAddr) -> (RawAddr, libc::socklen_t) {
        match a {
            SocketAddr::V4(a) => {
                let v4 = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.ip().octets()),
                    },
                    sin_zero: [0; 8],
                };
                (
                    RawAddr { v4 },
                    std::mem::size_of::<libc::sockaddr_in>() as _,
                )
            }
            SocketAddr::V6(a) => {
                let v6 = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: a.flowinfo(),
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                (
                    RawAddr { v6 },
                    std::mem::size_of::<libc::sockaddr_in6>() as _,
                )
            }
        }
    }

    fn as_ptr(&self) -> *const libc::sockaddr {
        self as *const RawAddr as *const libc::sockaddr
    }
}

/// A socket address as the kernel wrote it (sockaddr_in or sockaddr_in6).
fn parse_addr(name: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*name.first()?, *name.get(1)?]) as i32;
    let port = u16::from_be_bytes([*name.get(2)?, *name.get(3)?]);
    match family {
        libc::AF_INET => {
            let ip: [u8; 4] = name.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
        }
        libc::AF_INET6 => {
            let flow = u32::from_ne_bytes(name.get(4..8)?.try_into().ok()?);
            let ip: [u8; 16] = name.get(8..24)?.try_into().ok()?;
            let scope = u32::from_ne_bytes(name.get(24..28)?.try_into().ok()?);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(ip),
                port,
                flow,
                scope,
            )))
        }
        _ => None,
    }
}

/// A datagram in flight: its bytes and destination stay here until the
/// kernel has completed the send.
struct SendSlot<T> {
    data: Vec<u8>,
    addr: RawAddr,
    tag: T,
}

/// A stream write in flight.
struct WriteSlot {
    conn: u32,
    data: Vec<u8>,
    offset: usize,
}

/// A connect in flight: its address and its timeout.
struct ConnectSlot {
    conn: u32,
    addr: RawAddr,
    timeout: types::Timespec,
}

/// Slots with stable addresses (each boxed once), reused through a free
/// list: a send does not allocate a slot once the table has grown.
struct Slots<S> {
    items: Vec<Box<Option<S>>>,
    free: Vec<u32>,
    live: usize,
}

impl<S> Slots<S> {
    fn new() -> Self {
        Slots {
            items: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    fn insert(&mut self, s: S) -> (u32, &S) {
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                self.items.push(Box::new(None));
                (self.items.len() - 1) as u32
            }
        };
        self.live += 1;
        let slot = &mut *self.items[i as usize];
        (i, slot.insert(s))
    }

    fn remove(&mut self, i: u32) -> Option<S> {
        let s = self.items.get_mut(i as usize)?.take()?;
        self.free.push(i);
        self.live -= 1;
        Some(s)
    }

    /// Free the boxes a burst left, past the last slot in flight, once
    /// fewer than a quarter are in flight (see `rt::slab`). Slots in
    /// flight keep their boxes and indices. True if memory was freed.
    fn shrink(&mut self) -> bool {
        let room = self.items.capacity();
        if !slab::worth_shrinking(room, self.live, slab::SHRINK_MIN) {
            return false;
        }
        let keep = slab::compact_free(&mut self.free, self.items.len());
        self.items.truncate(keep);
        self.items.shrink_to(keep);
        self.free.shrink_to(self.free.len());
        self.items.capacity() < room
    }
}

/// The provided-buffer ring: `BUF_COUNT` buffers of `BUF_SIZE` bytes and
/// the page-aligned ring of entries that lends them to the kernel.
struct Buffers {
    entries: *mut types::BufRingEntry,
    layout: std::alloc::Layout,
    memory: Vec<u8>,
    /// Our tail: entries up to it have been published to the kernel.
    tail: u16,
    /// Buffers the caller has seen, to lend again at the next submit.
    returned: Vec<u16>,
    /// Set when the kernel may still use the entries: never freed.
    leak: bool,
}

impl Buffers {
    fn new() -> io::Result<Buffers> {
        let layout = std::alloc::Layout::from_size_align(
            BUF_COUNT as usize * std::mem::size_of::<types::BufRingEntry>(),
            4096,
        )
        .map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size; the memory is zeroed,
        // which is a valid (empty) ring of entries, and freed in Drop with
        // the same layout.
        let entries = unsafe { std::alloc::alloc_zeroed(layout) } as *mut types::BufRingEntry;
        if entries.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut b = Buffers {
            entries,
            layout,
            memory: vec![0u8; BUF_COUNT as usize * BUF_SIZE],
            tail: 0,
            returned: (0..BUF_COUNT).collect(),
            leak: false,
        };
        b.publish();
        Ok(b)
    }

    /// Lend every returned buffer to the kernel again.
    fn publish(&mut self) {
        if self.returned.is_empty() {
            return;
        }
        let base = self.memory.as_mut_ptr();
        for bid in self.returned.drain(..) {
            let i = (self.tail & (BUF_COUNT - 1)) as usize;
            // SAFETY: `i < BUF_COUNT`, the number of entries allocated; the
            // entry at our tail is not one the kernel reads (it reads only
            // entries below the published tail), and the buffer `bid` is
            // no longer borrowed (see `returned`).
            unsafe {
                let e = &mut *self.entries.add(i);
                e.set_addr(base.add(bid as usize * BUF_SIZE) as u64);
                e.set_len(BUF_SIZE as u32);
                e.set_bid(bid);
            }
            self.tail = self.tail.wrapping_add(1);
        }
        // SAFETY: the tail field overlays the first entry's `resv` field, a
        // u16 the kernel reads concurrently: stored atomically with release
        // ordering so the entries written above are seen first.
        unsafe {
            let tail =
                types::BufRingEntry::tail(self.entries) as *const std::sync::atomic::AtomicU16;
            (*tail).store(self.tail, std::sync::atomic::Ordering::Release);
        }
    }

    /// The first `len` bytes of buffer `bid`, which a completion just
    /// handed to us (the kernel does not touch it until it is published
    /// again).
    fn get(&mut self, bid: u16, len: usize) -> &[u8] {
        self.returned.push(bid);
        let start = bid as usize * BUF_SIZE;
        &self.memory[start..start + len.min(BUF_SIZE)]
    }
}

impl Drop for Buffers {
    fn drop(&mut self) {
        if self.leak {
            return;
        }
        // SAFETY: allocated in `new` with this layout; the ring quiesced
        // (no operation in flight) before its fields are dropped.
        unsafe { std::alloc::dealloc(self.entries as *mut u8, self.layout) }
    }
}

/// Wakes a shard from any thread: a write to its eventfd.
#[derive(Debug)]
pub struct Waker {
    fd: File,
}

impl Waker {
    pub fn new() -> io::Result<Waker> {
        // SAFETY: eventfd(2) has no memory arguments; a non-negative
        // result is a new descriptor that only this `File` owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: as above: a fresh descriptor, owned by nobody else.
        Ok(Waker {
            fd: unsafe { File::from_raw_fd(fd) },
        })
    }

    /// Wake the shard (from a thread that is not a shard). A full counter
    /// (EAGAIN) means a wake-up is already pending.
    pub fn wake(&self) {
        let _ = (&self.fd).write(&1u64.to_ne_bytes());
    }
}

/// `n` atomics, zero, in memory fresh from the allocator's zeroed path
/// (`calloc`: for a large table, pages the kernel maps on first touch),
/// so that a large table costs no RSS until it is used, which a loop
/// storing zeros would not guarantee. For tables that are dropped and
/// made anew to give memory back (the stateful INVITE directory).
pub fn zeroed_atomics(n: usize) -> Box<[std::sync::atomic::AtomicU64]> {
    use std::sync::atomic::AtomicU64;
    if n == 0 {
        return Box::new([]);
    }
    // Only fails past isize::MAX bytes; tables here are sized from config
    // values bounded far below that.
    let layout = std::alloc::Layout::array::<AtomicU64>(n).expect("table size");
    // SAFETY: the layout's size is not zero (n > 0).
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut AtomicU64;
    if p.is_null() {
        std::alloc::handle_alloc_error(layout);
    }
    // SAFETY: `p` is the global allocator's block for `n` AtomicU64 with
    // their alignment (the layout `Box<[AtomicU64]>` frees it with), all
    // bytes zero, and all-zero bytes are a valid AtomicU64 (it has the
    // bit validity of u64): a fully initialised slice, owned by the box.
    unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(p, n)) }
}

/// Hand the free memory of the C heap back to the kernel: glibc's
/// `malloc_trim(0)` releases the free pages inside every arena, not only
/// at the top of the heap as its automatic trimming does. After a flood
/// has drained, freed contexts otherwise stay resident for good, spread
/// over pages that a few live allocations keep (docs/benchmarks.md,
/// "Memory after a flood"). Walks the arenas under their locks, so it is
/// for the housekeeping tick after tables shrank, not the hot path. A
/// no-op where the C library is not glibc.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim takes no pointer and touches only the
    // allocator's own arenas, each under its lock; glibc documents it as
    // MT-Safe, callable from any thread at any time. Its result (whether
    // memory was released) is not needed.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Let the kernel pick a random socket of `fd`'s SO_REUSEPORT group for
/// each datagram (a classic BPF program attached with
/// SO_ATTACH_REUSEPORT_CBPF: `ld rand; mod #n; ret a`), instead of the
/// hash of the 4-tuple that sends all of one peer's traffic to one shard.
/// `n` is the number of sockets in the group.
pub fn spread_randomly(fd: RawFd, n: u32) -> io::Result<()> {
    const SKF_AD_OFF: i32 = -0x1000;
    const SKF_AD_RANDOM: i32 = 56;
    let code = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: (SKF_AD_OFF + SKF_AD_RANDOM) as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_ALU | libc::BPF_MOD | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: n.max(1),
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_A) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
    ];
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: `prog` and the instructions it points to live on this stack
    // frame for the duration of the call; the kernel copies the program.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            &prog as *const libc::sock_fprog as *const libc::c_void,
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// One word to add to another shard's eventfd.
static ONE: [u8; 8] = 1u64.to_ne_bytes();

/// A completion, copied out of the completion queue.
#[derive(Clone, Copy, Debug)]
pub struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

/// A shard's ring. `T` is what the caller attaches to a datagram send and
/// gets back with its completion.
pub struct Ring<T> {
    ring: IoUring,
    bufs: Buffers,
    sends: Slots<SendSlot<T>>,
    writes: Slots<WriteSlot>,
    connects: Slots<ConnectSlot>,
    /// UDP sockets, by the index given to `recv_from`.
    udp: Vec<RawFd>,
    /// TCP listeners, by index.
    listeners: Vec<RawFd>,
    /// Streams being read, by connection token: re-armed when the kernel
    /// ran out of buffers.
    streams: std::collections::HashMap<u32, RawFd>,
    /// Multishot receives to arm again at the next submit.
    rearm: Vec<u64>,
    /// The header RECVMSG fills in: the kernel reads it at submission.
    msghdr: Box<libc::msghdr>,
    waker: Arc<Waker>,
    wake_buf: Box<[u8; 8]>,
    /// Operations whose last completion has not come yet.
    inflight: usize,
    /// io_uring's min_wait (coalescing), when on.
    min_wait_us: u32,
}

impl<T> Ring<T> {
    /// A ring with `coalesce_us` of min_wait (0: off), woken by `waker`.
    pub fn new(coalesce_us: u32, waker: Arc<Waker>) -> io::Result<Ring<T>> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)?;
        if coalesce_us > 0 && !ring.params().is_feature_min_timeout() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "server.coalesce_us needs io_uring min_wait (Linux 6.12 or later); set it to 0",
            ));
        }
        let bufs = Buffers::new()?;
        // SAFETY: the entries are page aligned and stay allocated (and
        // unmoved: `Buffers` holds a raw pointer) until after the ring is
        // dropped; BUF_COUNT is a power of two.
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                bufs.entries as u64,
                BUF_COUNT,
                BUF_GROUP,
                0,
            )?;
        }
        // SAFETY: an all-zero msghdr is valid (no name, no iovecs).
        let mut msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msghdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in6>() as _;
        let mut r = Ring {
            ring,
            bufs,
            sends: Slots::new(),
            writes: Slots::new(),
            connects: Slots::new(),
            udp: Vec::new(),
            listeners: Vec::new(),
            streams: std::collections::HashMap::new(),
            rearm: Vec::new(),
            msghdr,
            waker,
            wake_buf: Box::new([0; 8]),
            inflight: 0,
            min_wait_us: coalesce_us,
        };
        r.arm(Kind::WakeRead.tag(0));
        Ok(r)
    }

    /// Queue an SQE, submitting what is queued when the queue is full.
    ///
    /// # Safety
    /// Whatever the entry points to must stay valid until its last
    /// completion.
    unsafe fn push(&mut self, e: squeue::Entry) {
        loop {
            // SAFETY: the caller's promise, passed on.
            if unsafe { self.ring.submission().push(&e) }.is_ok() {
                return;
            }
            // The queue is full: hand it to the kernel now (no wait).
            if let Err(err) = self.ring.submit() {
                if err.raw_os_error() != Some(libc::EBUSY) {
                    tracing::error!("io_uring submit: {err}");
                }
            }
        }
    }

    /// (Re-)arm the multishot or one-shot receive named by `user_data`.
    fn arm(&mut self, user_data: u64) {
        let index = user_data as u32;
        let e = match Kind::of(user_data) {
            Some(Kind::RecvFrom) => {
                let Some(&fd) = self.udp.get(index as usize) else {
                    return;
                };
                opcode::RecvMsgMulti::new(types::Fd(fd), &*self.msghdr, BUF_GROUP).build()
            }
            Some(Kind::Accept) => {
                let Some(&fd) = self.listeners.get(index as usize) else {
                    return;
                };
                opcode::AcceptMulti::new(types::Fd(fd))
                    .flags(libc::SOCK_CLOEXEC)
                    .build()
            }
            Some(Kind::Recv) => {
                let Some(&fd) = self.streams.get(&index) else {
                    return;
                };
                opcode::RecvMulti::new(types::Fd(fd), BUF_GROUP).build()
            }
            Some(Kind::WakeRead) => opcode::Read::new(
                types::Fd(self.waker.fd.as_raw_fd()),
                self.wake_buf.as_mut_ptr(),
                8,
            )
            .build(),
            _ => return,
        };
        self.inflight += 1;
        // SAFETY: the msghdr and the wake buffer are boxed and live as long
        // as the ring; provided buffers are handled by `Buffers`; the
        // descriptors are the caller's (an operation on a descriptor
        // closed too early fails, it does not touch our memory).
        unsafe { self.push(e.user_data(user_data)) };
    }

    /// Receive datagrams on `fd` from now on, reported as socket `sock`
    /// (indices from 0, in order).
    pub fn recv_from(&mut self, fd: RawFd) -> u32 {
        self.udp.push(fd);
        let sock = (self.udp.len() - 1) as u32;
        self.arm(Kind::RecvFrom.tag(sock));
        sock
    }

    /// Accept connections on listener `fd` from now on.
    pub fn accept(&mut self, fd: RawFd) -> u32 {
        self.listeners.push(fd);
        let l = (self.listeners.len() - 1) as u32;
        self.arm(Kind::Accept.tag(l));
        l
    }

    /// Read stream `fd` as connection `conn` until it ends.
    pub fn recv_stream(&mut self, conn: u32, fd: RawFd) {
        self.streams.insert(conn, fd);
        self.arm(Kind::Recv.tag(conn));
    }

    /// Send a datagram from `fd`. Refused (the data comes back) when
    /// `MAX_SENDS` are in flight.
    pub fn send_to(
        &mut self,
        fd: RawFd,
        dest: SocketAddr,
        data: Vec<u8>,
        tag: T,
    ) -> Result<(), (Vec<u8>, T)> {
        if self.sends.live + self.writes.live >= MAX_SENDS {
            return Err((data, tag));
        }
        let (addr, addr_len) = RawAddr::new(dest);
        let (i, slot) = self.sends.insert(SendSlot { data, addr, tag });
        let e = opcode::Send::new(types::Fd(fd), slot.data.as_ptr(), slot.data.len() as u32)
            .dest_addr(slot.addr.as_ptr())
            .dest_addr_len(addr_len)
            .build()
            .user_data(Kind::SendTo.tag(i));
        self.inflight += 1;
        // SAFETY: the bytes and the address live in the boxed slot until
        // the send's completion removes it.
        unsafe { self.push(e) };
        Ok(())
    }

    /// Write `data[offset..]` on stream `fd` of connection `conn`; the
    /// caller keeps at most one write per connection in flight.
    pub fn write(&mut self, conn: u32, fd: RawFd, data: Vec<u8>, offset: usize) {
        let (i, slot) = self.writes.insert(WriteSlot { conn, data, offset });
        let rest = &slot.data[slot.offset.min(slot.data.len())..];
        let e = opcode::Send::new(types::Fd(fd), rest.as_ptr(), rest.len() as u32)
            .flags(libc::MSG_NOSIGNAL)
            .build()
            .user_data(Kind::Send.tag(i));
        self.inflight += 1;
        // SAFETY: the bytes live in the boxed slot until the completion.
        unsafe { self.push(e) };
    }

    /// Connect stream `fd` (connection `conn`) to `dest`, giving up after
    /// `timeout`.
    pub fn connect(&mut self, conn: u32, fd: RawFd, dest: SocketAddr, timeout: Duration) {
        let (addr, addr_len) = RawAddr::new(dest);
        let timeout = types::Timespec::from(timeout);
        let (i, slot) = self.connects.insert(ConnectSlot {
            conn,
            addr,
            timeout,
        });
        let connect = opcode::Connect::new(types::Fd(fd), slot.addr.as_ptr(), addr_len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(Kind::Connect.tag(i));
        let limit = opcode::LinkTimeout::new(&slot.timeout)
            .build()
            .user_data(Kind::LinkTimeout.tag(i));
        self.inflight += 2;
        // SAFETY: the address and the timespec live in the boxed slot until
        // the connect's completion, which comes after both are read (the
        // timeout is read when the pair is submitted).
        unsafe {
            self.push(connect);
            self.push(limit);
        }
    }

    /// Wake another shard through its eventfd, with an SQE of this ring
    /// (submitted with the next wait: no syscall now).
    pub fn wake(&mut self, other: &Waker) {
        let e = opcode::Write::new(types::Fd(other.fd.as_raw_fd()), ONE.as_ptr(), 8)
            .build()
            .user_data(Kind::WakeWrite.tag(0));
        self.inflight += 1;
        // SAFETY: `ONE` is static; the caller holds `other` (an Arc shared
        // by every shard for the runtime's life), so its descriptor stays
        // open while the write is queued.
        unsafe { self.push(e) };
    }

    /// Submit everything queued and wait for at least one completion, at
    /// most `timeout` (None: until something happens); then copy the
    /// completions into `out`.
    pub fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Cqe>) -> io::Result<()> {
        self.bufs.publish();
        while let Some(ud) = self.rearm.pop() {
            self.arm(ud);
        }
        let ts = timeout.map(types::Timespec::from);
        let (want, min_wait) = if self.min_wait_us > 0 {
            (64, self.min_wait_us)
        } else {
            (1, 0)
        };
        let mut args = types::SubmitArgs::new();
        if min_wait > 0 {
            args = args.min_wait_usec(min_wait);
        }
        let r = match &ts {
            Some(ts) => self
                .ring
                .submitter()
                .submit_with_args(want, &args.timespec(ts)),
            None => self.ring.submitter().submit_with_args(want, &args),
        };
        if let Err(e) = r {
            match e.raw_os_error() {
                Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN) => {}
                _ => return Err(e),
            }
        }
        self.reap(out);
        Ok(())
    }

    /// Copy what is in the completion queue into `out`.
    fn reap(&mut self, out: &mut Vec<Cqe>) {
        out.clear();
        for c in self.ring.completion() {
            out.push(Cqe {
                user_data: c.user_data(),
                res: c.result(),
                flags: c.flags(),
            });
        }
    }

    /// What completion `c` means. Multishot receives that ended are armed
    /// again at the next wait (unless their stream ended).
    pub fn event(&mut self, c: &Cqe) -> Option<Event<'_, T>> {
        let index = c.user_data as u32;
        let kind = Kind::of(c.user_data)?;
        let more = cqueue::more(c.flags);
        if !more {
            self.inflight = self.inflight.saturating_sub(1);
        }
        match kind {
            Kind::RecvFrom => {
                if !more {
                    self.rearm.push(c.user_data);
                }
                if c.res < 0 {
                    // Out of buffers: the datagrams wait in the socket
                    // until the receive is armed again.
                    return (c.res != -libc::ENOBUFS).then_some(Event::RecvError {
                        sock: index,
                        errno: -c.res,
                    });
                }
                let bid = cqueue::buffer_select(c.flags)?;
                let msghdr = &*self.msghdr;
                let data = self.bufs.get(bid, c.res as usize);
                let len = data.len();
                let msg = types::RecvMsgOut::parse(data, msghdr).ok()?;
                if msg.is_payload_truncated() || msg.is_name_data_truncated() {
                    return Some(Event::RecvError {
                        sock: index,
                        errno: libc::EMSGSIZE,
                    });
                }
                let from = parse_addr(msg.name_data())?;
                // The payload ends the buffer (after the header, the name
                // and the control data).
                let payload = msg.payload_data().len();
                Some(Event::Datagram {
                    sock: index,
                    from,
                    data: &data[len - payload..],
                })
            }
            Kind::SendTo => {
                let slot = self.sends.remove(index)?;
                Some(Event::Sent {
                    tag: slot.tag,
                    res: if c.res < 0 {
                        Err(-c.res)
                    } else {
                        Ok(c.res as usize)
                    },
                })
            }
            Kind::Accept => {
                if !more {
                    self.rearm.push(c.user_data);
                }
                let res = if c.res < 0 {
                    Err(-c.res)
                } else {
                    // SAFETY: a successful accept returns a new descriptor
                    // that nothing else owns.
                    Ok(unsafe { OwnedFd::from_raw_fd(c.res) })
                };
                Some(Event::Accepted {
                    listener: index,
                    res,
                })
            }
            Kind::Recv => {
                if c.res == -libc::ENOBUFS && !more {
                    self.rearm.push(c.user_data);
                    return None;
                }
                if c.res <= 0 {
                    if !more {
                        self.streams.remove(&index);
                    }
                    return Some(Event::StreamEnd {
                        conn: index,
                        errno: (c.res < 0).then_some(-c.res),
                    });
                }
                if !more {
                    // The multishot receive stopped without an error (the
                    // kernel may end one at any time): keep reading.
                    self.rearm.push(c.user_data);
                }
                let bid = cqueue::buffer_select(c.flags)?;
                Some(Event::StreamData {
                    conn: index,
                    data: self.bufs.get(bid, c.res as usize),
                })
            }
            Kind::Send => {
                let slot = self.writes.remove(index)?;
                Some(Event::Written {
                    conn: slot.conn,
                    res: if c.res < 0 {
                        Err(-c.res)
                    } else {
                        Ok(c.res as usize)
                    },
                    data: slot.data,
                    offset: slot.offset,
                })
            }
            Kind::Connect => {
                let slot = self.connects.remove(index)?;
                Some(Event::Connected {
                    conn: slot.conn,
                    res: match c.res {
                        0 => Ok(()),
                        e if -e == libc::ECANCELED => Err(libc::ETIMEDOUT),
                        e => Err(-e),
                    },
                })
            }
            Kind::WakeRead => {
                self.rearm.push(c.user_data);
                Some(Event::Woken)
            }
            Kind::LinkTimeout | Kind::WakeWrite | Kind::Cancel => None,
        }
    }

    /// Give back what a burst of sends left: the slots past the last one
    /// in flight, and spare room in the stream map and the re-arm list.
    /// For the shard's housekeeping; true if a table gave back room (the
    /// re-arm list does not count: it is small).
    pub fn shrink(&mut self) -> bool {
        if self.rearm.is_empty() && self.rearm.capacity() > 1024 {
            self.rearm = Vec::new();
        }
        let mut freed = self.sends.shrink() | self.writes.shrink() | self.connects.shrink();
        if self.streams.capacity() > 4 * self.streams.len().max(256) {
            self.streams.shrink_to(self.streams.len());
            freed = true;
        }
        freed
    }

    /// Whether no operation is in flight but the receives that run for
    /// the ring's life.
    pub fn quiet(&self) -> bool {
        self.sends.live == 0 && self.writes.live == 0 && self.connects.live == 0
    }

    /// Cancel everything in flight and wait (bounded) for the kernel to
    /// let go of our memory.
    fn quiesce(&mut self) -> bool {
        let cancel = opcode::AsyncCancel2::new(types::CancelBuilder::any())
            .build()
            .user_data(Kind::Cancel.tag(0));
        // SAFETY: a cancel points at no memory of ours.
        unsafe { self.push(cancel) };
        let mut out = Vec::new();
        for _ in 0..200 {
            if self.inflight == 0 {
                return true;
            }
            let ts = types::Timespec::from(Duration::from_millis(5));
            let args = types::SubmitArgs::new().timespec(&ts);
            let _ = self.ring.submitter().submit_with_args(1, &args);
            self.reap(&mut out);
            for c in &out {
                let _ = self.event(c);
            }
            self.rearm.clear();
        }
        self.inflight == 0
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        if !self.quiesce() {
            // The kernel may still write into the receive buffers or read
            // a send: leak them rather than free memory it may use.
            tracing::warn!(
                "io_uring: operations still in flight at shutdown; their buffers are leaked"
            );
            self.bufs.leak = true;
            std::mem::forget(std::mem::take(&mut self.bufs.memory));
            std::mem::forget(std::mem::replace(&mut self.sends, Slots::new()));
            std::mem::forget(std::mem::replace(&mut self.writes, Slots::new()));
            std::mem::forget(std::mem::replace(&mut self.connects, Slots::new()));
            std::mem::forget(std::mem::replace(
                &mut self.msghdr,
                // SAFETY: an all-zero msghdr is valid.
                Box::new(unsafe { std::mem::zeroed() }),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    fn events(ring: &mut Ring<u32>, timeout: Duration) -> Vec<String> {
        let mut cqes = Vec::new();
        ring.wait(Some(timeout), &mut cqes).unwrap();
        let mut out = Vec::new();
        for c in &cqes {
            if let Some(e) = ring.event(c) {
                out.push(match e {
                    Event::Datagram { from, data, .. } => {
                        format!("dgram {from} {}", String::from_utf8_lossy(data))
                    }
                    Event::Sent { tag, res, .. } => format!("sent {tag} {res:?}"),
                    e => format!("{e:?}"),
                });
            }
        }
        out
    }

    #[test]
    fn datagrams_in_and_out_with_one_enter() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        ring.recv_from(sock.as_raw_fd());
        peer.send_to(b"hello", sock.local_addr().unwrap()).unwrap();
        let got = events(&mut ring, Duration::from_secs(2));
        assert_eq!(
            got,
            vec![format!("dgram {} hello", peer.local_addr().unwrap())]
        );
        ring.send_to(
            sock.as_raw_fd(),
            peer.local_addr().unwrap(),
            b"world".to_vec(),
            7,
        )
        .unwrap();
        let got = events(&mut ring, Duration::from_secs(2));
        assert_eq!(got, vec!["sent 7 Ok(5)".to_string()]);
        let mut buf = [0u8; 16];
        let (n, from) = peer.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"world"[..], sock.local_addr().unwrap())
        );
    }

    #[test]
    fn a_burst_of_sends_gives_its_slots_back_once_done() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = peer.local_addr().unwrap();
        let n = 3000;
        for i in 0..n {
            ring.send_to(sock.as_raw_fd(), to, vec![b'x'; 8], i)
                .unwrap();
        }
        assert_eq!(ring.sends.items.len(), n as usize);
        assert!(!ring.shrink(), "all in flight: kept");
        assert_eq!(ring.sends.items.len(), n as usize);
        let mut sent = 0;
        for _ in 0..100 {
            sent += events(&mut ring, Duration::from_millis(50))
                .iter()
                .filter(|e| e.starts_with("sent "))
                .count();
            if sent == n as usize {
                break;
            }
        }
        assert_eq!(sent, n as usize);
        assert!(ring.quiet());
        assert!(ring.shrink());
        assert_eq!(ring.sends.items.capacity(), 0);
        assert!(!ring.shrink(), "nothing more to give");
        // Sends go on as before.
        ring.send_to(sock.as_raw_fd(), to, b"again".to_vec(), 9)
            .unwrap();
        assert_eq!(
            events(&mut ring, Duration::from_secs(2)),
            vec!["sent 9 Ok(5)".to_string()]
        );
    }

    #[test]
    fn zeroed_atomics_are_zero_and_usable() {
        use std::sync::atomic::Ordering;
        assert!(zeroed_atomics(0).is_empty());
        let t = zeroed_atomics(1 << 20);
        assert_eq!(t.len(), 1 << 20);
        assert!(t
            .iter()
            .step_by(4093)
            .all(|a| a.load(Ordering::Relaxed) == 0));
        t[12_345].store(7, Ordering::Relaxed);
        assert_eq!(t[12_345].swap(0, Ordering::Relaxed), 7);
    }

    #[test]
    fn a_send_in_flight_late_in_the_slots_keeps_its_slot() {
        let mut s: Slots<u32> = Slots::new();
        for i in 0..2000 {
            s.insert(i);
        }
        for i in 0..1999 {
            s.remove(i);
        }
        // Slot 1999 is still in flight: only its box and those before stay.
        assert!(s.shrink());
        assert_eq!(s.items.len(), 2000);
        assert_eq!(s.items[1999].as_ref(), &Some(1999));
        // The lowest free slot is reused first.
        assert_eq!(s.insert(7).0, 0);
        assert_eq!(s.remove(1999), Some(1999));
        assert_eq!(s.remove(0), Some(7));
        assert!(s.shrink());
        assert!(s.items.is_empty() && s.free.is_empty());
    }

    fn sock_room(s: &UdpSocket) -> usize {
        socket2::SockRef::from(s).recv_buffer_size().unwrap_or(0)
    }

    #[test]
    fn a_burst_larger_than_the_buffers_is_received_whole() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let s2 = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        // Room in the socket for the whole burst (the kernel's default
        // would drop some before the ring sees them).
        s2.set_recv_buffer_size(4 << 20).unwrap();
        s2.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let sock: UdpSocket = s2.into();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        ring.recv_from(sock.as_raw_fd());
        // Three times the buffers, or what the socket can hold when
        // net.core.rmem_max keeps it small (~1.5 KiB per tiny datagram).
        let room = sock_room(&sock);
        let n = (BUF_COUNT as usize * 3).min(room / 1536);
        for i in 0..n {
            peer.send_to(format!("{i}").as_bytes(), sock.local_addr().unwrap())
                .unwrap();
        }
        let mut seen = Vec::new();
        for _ in 0..50 {
            for e in events(&mut ring, Duration::from_millis(100)) {
                seen.push(e.rsplit(' ').next().unwrap().to_string());
            }
            if seen.len() == n {
                break;
            }
        }
        let want: Vec<String> = (0..n).map(|i| i.to_string()).collect();
        assert_eq!(seen, want, "every datagram, in order");
    }

    #[test]
    fn the_largest_datagram_is_not_cut() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        ring.recv_from(sock.as_raw_fd());
        let big = vec![b'x'; 65_507];
        peer.send_to(&big, sock.local_addr().unwrap()).unwrap();
        let mut cqes = Vec::new();
        ring.wait(Some(Duration::from_secs(2)), &mut cqes).unwrap();
        let lens: Vec<usize> = cqes
            .iter()
            .filter_map(|c| match ring.event(c) {
                Some(Event::Datagram { data, .. }) => Some(data.len()),
                _ => None,
            })
            .collect();
        assert_eq!(lens, vec![65_507]);
    }

    #[test]
    fn a_refused_send_reports_its_tag() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        // 0.0.0.0 port 0 is not a destination.
        ring.send_to(
            sock.as_raw_fd(),
            "127.0.0.1:0".parse().unwrap(),
            b"x".to_vec(),
            3,
        )
        .unwrap();
        let got = events(&mut ring, Duration::from_secs(2));
        assert_eq!(got.len(), 1);
        assert!(got[0].starts_with("sent 3 Err("), "{got:?}");
    }

    #[test]
    fn a_waker_from_another_thread_ends_the_wait() {
        let waker = Arc::new(Waker::new().unwrap());
        let mut ring: Ring<u32> = Ring::new(0, waker.clone()).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            waker.wake();
        });
        let started = std::time::Instant::now();
        let got = events(&mut ring, Duration::from_secs(5));
        assert_eq!(got, vec!["Woken".to_string()]);
        assert!(started.elapsed() < Duration::from_secs(4));
        t.join().unwrap();
    }

    #[test]
    fn a_spread_group_sends_one_peer_to_every_socket() {
        let a = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        a.set_reuse_port(true).unwrap();
        a.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let at = a.local_addr().unwrap().as_socket().unwrap();
        let b = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
        b.set_reuse_port(true).unwrap();
        b.bind(&at.into()).unwrap();
        spread_randomly(a.as_raw_fd(), 2).unwrap();
        let (a, b): (UdpSocket, UdpSocket) = (a.into(), b.into());
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            peer.send_to(b"x", at).unwrap();
        }
        let count = |s: &UdpSocket| {
            let mut n = 0;
            let mut buf = [0u8; 4];
            while s.recv_from(&mut buf).is_ok() {
                n += 1;
            }
            n
        };
        let (na, nb) = (count(&a), count(&b));
        assert_eq!(na + nb, 200);
        // One 4-tuple: hashing would put all 200 on one socket.
        assert!(na >= 50 && nb >= 50, "{na} / {nb}");
    }

    #[test]
    fn a_wait_ends_at_its_timeout() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let got = events(&mut ring, Duration::from_millis(10));
        assert!(got.is_empty());
    }

    #[test]
    fn tcp_accept_read_write_and_end() {
        use std::io::{Read, Write};
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ring.accept(listener.as_raw_fd());
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let mut cqes = Vec::new();
        ring.wait(Some(Duration::from_secs(2)), &mut cqes).unwrap();
        let fd = match ring.event(&cqes[0]) {
            Some(Event::Accepted { res: Ok(fd), .. }) => fd,
            e => panic!("{e:?}"),
        };
        ring.recv_stream(9, fd.as_raw_fd());
        client.write_all(b"ping").unwrap();
        ring.wait(Some(Duration::from_secs(2)), &mut cqes).unwrap();
        match ring.event(&cqes[0]) {
            Some(Event::StreamData { conn: 9, data }) => assert_eq!(data, b"ping"),
            e => panic!("{e:?}"),
        }
        ring.write(9, fd.as_raw_fd(), b"pong".to_vec(), 0);
        ring.wait(Some(Duration::from_secs(2)), &mut cqes).unwrap();
        match ring.event(&cqes[0]) {
            Some(Event::Written { conn: 9, res, .. }) => assert_eq!(res, Ok(4)),
            e => panic!("{e:?}"),
        }
        let mut buf = [0u8; 4];
        client.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"pong");
        drop(client);
        ring.wait(Some(Duration::from_secs(2)), &mut cqes).unwrap();
        match ring.event(&cqes[0]) {
            Some(Event::StreamEnd {
                conn: 9,
                errno: None,
            }) => {}
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn a_connect_that_is_refused_says_so() {
        let mut ring: Ring<u32> = Ring::new(0, Arc::new(Waker::new().unwrap())).unwrap();
        // A port nobody listens on: bind one, note it, let it go.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        ring.connect(1, s.as_raw_fd(), port, Duration::from_secs(2));
        let mut cqes = Vec::new();
        let mut got = None;
        for _ in 0..10 {
            ring.wait(Some(Duration::from_millis(200)), &mut cqes)
                .unwrap();
            for c in &cqes {
                if let Some(Event::Connected { conn, res }) = ring.event(c) {
                    got = Some((conn, res));
                }
            }
            if got.is_some() {
                break;
            }
        }
        assert_eq!(got, Some((1, Err(libc::ECONNREFUSED))));
    }
}
