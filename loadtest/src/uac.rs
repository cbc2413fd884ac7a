//! The generator's loop: the UAC's source sockets and (for `calls`) the
//! UAS's socket, served by one thread in ticks. Each tick drains every
//! socket without waiting, answers, fires due timers, starts the calls
//! now due, and sends what all that queued with one sendmmsg per socket;
//! then it sleeps until the next start or timer, but at least a tick
//! (100 to 500 µs: about two call starts) after the last wake-up. So the
//! wake-ups follow time, not messages, and their cost is shared by every
//! message of a tick. The tick trades smoothness for CPU: bursts make the
//! proxy queue (latency) and wake less often (its CPU per call).
//!
//! Calls live in a ring of fixed slots indexed by call number (the
//! in-flight cap: rate x (timeout + hold + 1 s)); the Call-ID carries the
//! number, so an answer finds its call without hashing. Timers are FIFO
//! queues, each holding entries of one fixed delay, so they stay ordered
//! without a heap: hold (ACK to BYE), one per retransmission interval
//! (500 ms doubling), and the timeouts, which follow start order and are
//! found by walking the ring from its oldest call.
//!
//! `register` runs `--threads` such loops, each with its own sockets and
//! its block of users (`RegisterPlan`), and adds up their reports.
//!
//! Latency is INVITE (or OPTIONS, REGISTER) to its 2xx, from when the first
//! transmission reached the proxy's socket to the kernel's receive
//! timestamp of the answer, less the time the INVITE waited in the UAS
//! (its receive timestamp to when the UAS's 200 reached the proxy): what
//! is left is the proxy's two traversals, not this loop's ticks.

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use nix::errno::Errno;
use siphon::sip::{Framing, Limits, Message, Method};

use crate::args::{Mode, RunConfig};
use crate::msgs::{parse_call_id, RegisterPlan, Registers, Requests, SERVICE};
use crate::net::{bind, realtime_ns, Got, RecvBatch, SendQueue, BATCH, NO_TAG};
use crate::pace::Pacer;
use crate::report::Report;
use crate::uas::Uas;

/// RFC 3261 T1 (ms).
const T1_MS: u64 = 500;
/// Retransmission intervals: T1 << level.
const LEVELS: usize = 8;
/// Non-INVITE requests stop doubling at T2 = 4 s (level 3).
const T2_LEVEL: usize = 3;
/// Ring slots at most (about 64 bytes each).
const MAX_SLOTS: u64 = 2 << 20;
/// Spare BYE buffers kept for reuse.
const POOL_MAX: usize = 1 << 16;
/// Receive batches per socket per loop, so sending is never starved.
const MAX_BATCHES: usize = 16;
/// Shortest and longest tick (time between wake-ups).
const TICK_MIN_NS: u64 = 100_000;
const TICK_MAX_NS: u64 = 500_000;
/// Call starts per tick the tick length aims at: each start brings about
/// six datagrams per tick (INVITE, ACK, BYE, 180, 200, 200), so bursts
/// stay near a dozen datagrams up to 20k calls/s.
const STARTS_PER_TICK: u64 = 2;
/// Longest sleep when nothing is due (the UAS must still answer).
const IDLE_MAX_NS: u64 = 5_000_000;
const FREE: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    /// INVITE or OPTIONS sent, no answer yet (retransmitting).
    Calling,
    /// A provisional answer to INVITE: no more retransmissions.
    Proceeding,
    /// 2xx answered with ACK; BYE after the hold.
    Holding,
    /// BYE sent (retransmitting).
    Byeing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The INVITE or OPTIONS.
    Initial,
    Bye,
}

#[derive(Debug, Clone, Copy)]
struct Timer {
    n: u64,
    due: u64,
    kind: Kind,
}

struct Slot {
    n: u64,
    state: State,
    sock: u16,
    /// When the call started (ns since the run's epoch).
    start: u64,
    /// Wall-clock ns when the INVITE (OPTIONS) first reached the proxy's
    /// socket; 0 before.
    sent: i64,
    /// When the INVITE reached the UAS, and when its 200 reached the
    /// proxy; 0 when unknown.
    uas_rx: i64,
    uas_tx: i64,
    /// The BYE, written when the 2xx arrives (a pooled buffer).
    bye: Vec<u8>,
}

impl Slot {
    fn free() -> Slot {
        Slot {
            n: FREE,
            state: State::Free,
            sock: 0,
            start: 0,
            sent: 0,
            uas_rx: 0,
            uas_tx: 0,
            bye: Vec::new(),
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Completed,
    Failed,
    Timeout,
}

/// Counters of the UAC.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UacTotals {
    pub attempted: u64,
    pub completed: u64,
    pub failed: u64,
    pub timeouts: u64,
    pub retransmissions: u64,
    pub unexpected: u64,
    pub send_errors: u64,
    /// From the first start to the last start plus one interval, ns.
    pub window_ns: u64,
    pub start_lag_max_ns: u64,
    /// Time INVITEs spent in the UAS, taken out of the latencies.
    pub uas_wait_ns_sum: u64,
    pub uas_wait_count: u64,
    /// 200s to REGISTER that did not list the user's contact (failed).
    pub bad_answers: u64,
    /// REGISTERs not sent because the user's previous one was still
    /// unanswered (RFC 3261 §10.2 forbids overlapping them); failed.
    pub overlaps: u64,
}

impl UacTotals {
    /// The totals of two loops run side by side.
    pub fn add(&mut self, o: &UacTotals) {
        self.attempted += o.attempted;
        self.completed += o.completed;
        self.failed += o.failed;
        self.timeouts += o.timeouts;
        self.retransmissions += o.retransmissions;
        self.unexpected += o.unexpected;
        self.send_errors += o.send_errors;
        self.window_ns = self.window_ns.max(o.window_ns);
        self.start_lag_max_ns = self.start_lag_max_ns.max(o.start_lag_max_ns);
        self.uas_wait_ns_sum += o.uas_wait_ns_sum;
        self.uas_wait_count += o.uas_wait_count;
        self.bad_answers += o.bad_answers;
        self.overlaps += o.overlaps;
    }
}

/// Thread `t` of `threads`'s share of `total` (rate, sockets): an even
/// split, the first `total % threads` one more.
pub fn share(total: u64, threads: u64, t: u64) -> u64 {
    total / threads + u64::from(t < total % threads)
}

/// The tick for a rate: about `STARTS_PER_TICK` starts, within bounds.
pub fn tick_ns(rate: u32) -> u64 {
    (STARTS_PER_TICK * 1_000_000_000 / rate.max(1) as u64).clamp(TICK_MIN_NS, TICK_MAX_NS)
}

/// The in-flight cap for a run: calls that can be unfinished at once.
pub fn ring_size(rate: u32, timeout: Duration, hold: Duration) -> u64 {
    let ms = timeout.as_millis() as u64 + hold.as_millis() as u64 + 1000;
    (rate as u64 * ms / 1000).clamp(1024, MAX_SLOTS)
}

pub struct Uac {
    mode: Mode,
    proxy: SocketAddr,
    socks: Vec<UdpSocket>,
    uas: Option<Uas>,
    reqs: Vec<Requests>,
    /// `register`: the REGISTER writers (one per socket) and this loop's
    /// users.
    regs: Vec<Registers>,
    plan: Option<RegisterPlan>,
    queues: Vec<SendQueue>,
    run_id: u32,
    pacer: Pacer,
    tick_ns: u64,
    hold_ns: u64,
    timeout_ns: u64,
    slots: Vec<Slot>,
    cap: u64,
    /// Calls started so far (the next call number).
    next: u64,
    /// No call older than this is unfinished.
    oldest: u64,
    live: u64,
    holds: VecDeque<Timer>,
    retx: [VecDeque<Timer>; LEVELS],
    pool: Vec<Vec<u8>>,
    limits: Limits,
    epoch: Instant,
    pub hist: Histogram<u64>,
    pub totals: UacTotals,
}

impl Uac {
    /// Bind `cfg.sockets` sockets on the UAC address, and the UAS (calls).
    pub fn new(cfg: &RunConfig, run_id: u32) -> std::io::Result<Uac> {
        Uac::part(cfg, run_id, 0, 1)
    }

    /// Loop `t` of `threads`: its share of the rate, the sockets and (for
    /// `register`) the users; the UAS (calls) only in loop 0.
    pub fn part(cfg: &RunConfig, run_id: u32, t: usize, threads: usize) -> std::io::Result<Uac> {
        let (tt, nt) = (t as u64, threads.max(1) as u64);
        let rate = share(cfg.rate as u64, nt, tt).max(1) as u32;
        let sockets = share(cfg.sockets as u64, nt, tt).max(1) as usize;
        let mut socks = Vec::with_capacity(sockets);
        let mut reqs = Vec::with_capacity(sockets);
        let mut regs = Vec::new();
        let service = match cfg.mode {
            Mode::Calls => Some(SERVICE),
            Mode::Options | Mode::Register => None,
        };
        let plan = match cfg.mode {
            Mode::Register => Some(RegisterPlan::split(cfg.aor.users.unwrap_or(1), nt, tt)),
            _ => None,
        };
        for _ in 0..sockets {
            let s = bind(SocketAddr::new(cfg.uac, 0), true)?;
            let local = s.local_addr()?;
            let mut r = Requests::new(local, cfg.proxy, service, run_id);
            if let (Mode::Calls, Some(n)) = (cfg.mode, cfg.aor.users) {
                r = r.with_users(n, &cfg.aor.domain);
            }
            reqs.push(r);
            if plan.is_some() {
                regs.push(Registers::new(
                    local,
                    &cfg.aor.domain,
                    cfg.aor.contact,
                    cfg.aor.expires,
                    run_id,
                ));
            }
            socks.push(s);
        }
        let cap = ring_size(rate, cfg.timeout, cfg.hold);
        let uas = match (cfg.mode, cfg.uas) {
            (Mode::Calls, Some(addr)) if t == 0 => Some(Uas::bind(addr, cap as usize, run_id)?),
            _ => None,
        };
        let total = Pacer::total_for(rate, cfg.duration.as_millis() as u64);
        Ok(Uac {
            mode: cfg.mode,
            proxy: cfg.proxy,
            queues: (0..sockets).map(|_| SendQueue::new()).collect(),
            socks,
            uas,
            reqs,
            regs,
            plan,
            run_id,
            pacer: Pacer::new(rate, total),
            tick_ns: cfg
                .tick
                .map_or_else(|| tick_ns(rate), |t| t.as_nanos() as u64),
            hold_ns: cfg.hold.as_nanos() as u64,
            timeout_ns: cfg.timeout.as_nanos() as u64,
            slots: (0..cap).map(|_| Slot::free()).collect(),
            cap,
            next: 0,
            oldest: 0,
            live: 0,
            holds: VecDeque::new(),
            retx: std::array::from_fn(|_| VecDeque::new()),
            pool: Vec::new(),
            limits: Limits::default(),
            epoch: Instant::now(),
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid"),
            totals: UacTotals::default(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Start every call on schedule, then wait for the last ones to end;
    /// returns when none is in flight or by `deadline` at the latest.
    pub fn run(&mut self, deadline: Instant) {
        self.epoch = Instant::now();
        let deadline_ns = deadline.saturating_duration_since(self.epoch).as_nanos() as u64;
        let tick = self.tick_ns;
        // Behind schedule, catch up by at most 5 ms of starts per tick.
        let max_starts = (self.pacer.rate() as u64 / 200).max(64);
        let socks = std::mem::take(&mut self.socks);
        let mut uas = self.uas.take();
        let mut batch = RecvBatch::new(true);
        loop {
            let woke = self.now();
            let mut busy = false;
            if let Some(u) = uas.as_mut() {
                busy |= self.drain_uas(u, &mut batch);
            }
            for s in &socks {
                busy |= self.drain(s, &mut batch);
            }
            let now = self.now();
            self.expire(now);
            let due = self.pacer.due_by(now).min(self.next + max_starts);
            while self.next < due {
                let lag = now.saturating_sub(self.pacer.at(self.next));
                self.totals.start_lag_max_ns = self.totals.start_lag_max_ns.max(lag);
                self.start(now);
                if self.next == self.pacer.total() {
                    self.totals.window_ns = self.pacer.window_ns().max(now + self.pacer.at(1));
                }
            }
            if let Some(u) = uas.as_mut() {
                self.flush_uas(u);
            }
            self.flush(&socks);
            if self.next == self.pacer.total() && self.live == 0 {
                break;
            }
            if now >= deadline_ns {
                self.fail_all();
                break;
            }
            if !busy {
                // Sleep to the next start or timer, a tick after the last
                // wake-up at the soonest.
                let now = self.now();
                let wake = self
                    .next_event()
                    .max(woke + tick)
                    .min(now + IDLE_MAX_NS)
                    .min(deadline_ns);
                if wake > now {
                    std::thread::sleep(Duration::from_nanos(wake - now));
                }
            }
        }
        self.socks = socks;
        self.uas = uas;
    }

    /// The UAS's counters (calls).
    pub fn uas_stats(&self) -> Option<crate::uas::UasStats> {
        self.uas.as_ref().map(|u| u.stats)
    }

    /// Answer what the UAS socket holds (bounded); true if more may wait.
    fn drain_uas(&mut self, uas: &mut Uas, batch: &mut RecvBatch) -> bool {
        let fd = uas.sock.as_raw_fd();
        for _ in 0..MAX_BATCHES {
            let n = match batch.recv(fd, false) {
                Ok(n) => n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return false,
                Err(_) => {
                    uas.stats.unexpected += 1;
                    return false;
                }
            };
            for k in 0..n {
                let (g, data) = batch.get(k);
                let Some(from) = g.from.filter(|_| !g.truncated) else {
                    uas.stats.unexpected += 1;
                    continue;
                };
                if let Some(i) = uas.handle(data, from).and_then(|n| self.slot_of(n)) {
                    let s = &mut self.slots[i];
                    if s.uas_rx == 0 {
                        s.uas_rx = g.ts;
                    }
                }
            }
            if n < BATCH {
                return false;
            }
        }
        true
    }

    /// Send the UAS's answers, noting when each call's 200 left.
    fn flush_uas(&mut self, uas: &mut Uas) {
        if uas.queue.is_empty() {
            return;
        }
        let (slots, cap) = (&mut self.slots, self.cap);
        let f = uas.queue.flush(&uas.sock, |n, t| {
            let slot = &mut slots[(n % cap) as usize];
            if slot.n == n && slot.uas_tx == 0 {
                slot.uas_tx = t;
            }
        });
        uas.stats.send_errors += f.errors;
    }

    /// Receive what socket `s` holds (bounded); true if more may wait.
    fn drain(&mut self, s: &UdpSocket, batch: &mut RecvBatch) -> bool {
        for _ in 0..MAX_BATCHES {
            let n = match batch.recv(s.as_raw_fd(), false) {
                Ok(n) => n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => return false,
                Err(_) => {
                    self.totals.unexpected += 1;
                    return false;
                }
            };
            let now = self.now();
            for k in 0..n {
                let (g, data) = batch.get(k);
                self.on_datagram(g, data, now);
            }
            if n < BATCH {
                return false;
            }
        }
        true
    }

    /// The earliest of the next start and every timer (ns since epoch).
    fn next_event(&self) -> u64 {
        let mut t = u64::MAX;
        if self.next < self.pacer.total() {
            t = self.pacer.at(self.next);
        }
        if let Some(h) = self.holds.front() {
            t = t.min(h.due);
        }
        for q in &self.retx {
            if let Some(r) = q.front() {
                t = t.min(r.due);
            }
        }
        if self.live > 0 {
            let s = &self.slots[(self.oldest % self.cap) as usize];
            if s.n == self.oldest {
                t = t.min(s.start + self.timeout_ns);
            }
        }
        t
    }

    fn slot_of(&self, n: u64) -> Option<usize> {
        let i = (n % self.cap) as usize;
        (self.slots[i].n == n && self.slots[i].state != State::Free).then_some(i)
    }

    /// Start call number `self.next`.
    fn start(&mut self, now: u64) {
        let n = self.next;
        self.next += 1;
        if let Some(p) = self.plan {
            // A UA sends no new REGISTER before the previous one has its
            // final response or has timed out (RFC 3261 §10.2): with the
            // user's last one unanswered, this refresh is skipped and
            // counted as failed. (Sending it would also let a
            // retransmission of the older CSeq arrive after it and be
            // refused.)
            if n >= p.count && self.slot_of(n - p.count).is_some() {
                self.totals.attempted += 1;
                self.totals.failed += 1;
                self.totals.overlaps += 1;
                return;
            }
        }
        let i = (n % self.cap) as usize;
        if self.slots[i].state != State::Free {
            // Only when the ring is smaller than rate x timeout (MAX_SLOTS):
            // the call it holds is at least that old.
            self.end(i, End::Timeout);
        }
        // A user always leaves from the same socket (one proxy shard sees
        // its REGISTERs in order).
        let key = match self.plan {
            Some(p) => p.attempt(n).0 - p.first,
            None => n,
        };
        let sock = (key % self.socks_len() as u64) as usize;
        let s = &mut self.slots[i];
        s.n = n;
        s.state = State::Calling;
        s.sock = sock as u16;
        s.start = now;
        s.sent = 0;
        s.uas_rx = 0;
        s.uas_tx = 0;
        self.send_initial(sock, n, n);
        self.retx[0].push_back(Timer {
            n,
            due: now + T1_MS * 1_000_000,
            kind: Kind::Initial,
        });
        self.live += 1;
        self.totals.attempted += 1;
    }

    fn socks_len(&self) -> usize {
        self.reqs.len()
    }

    /// Queue the INVITE or OPTIONS of call `n`; `tag` asks for its send time.
    fn send_initial(&mut self, sock: usize, n: u64, tag: u64) {
        let q = &mut self.queues[sock];
        match (self.mode, self.plan) {
            (Mode::Calls, _) => self.reqs[sock].invite(q.buf(), n),
            (Mode::Register, Some(p)) => {
                let (user, cseq) = p.attempt(n);
                self.regs[sock].register(q.buf(), user, cseq)
            }
            _ => self.reqs[sock].options(q.buf(), n),
        }
        q.push(self.proxy, tag);
    }

    /// Hold timers, retransmissions and timeouts due by `now`.
    fn expire(&mut self, now: u64) {
        while let Some(t) = self.holds.front().copied().filter(|t| t.due <= now) {
            self.holds.pop_front();
            let Some(i) = self.slot_of(t.n) else { continue };
            if self.slots[i].state != State::Holding {
                continue;
            }
            let s = &mut self.slots[i];
            s.state = State::Byeing;
            self.queues[s.sock as usize].push_bytes(&s.bye, self.proxy, NO_TAG);
            self.retx[0].push_back(Timer {
                n: t.n,
                due: now + T1_MS * 1_000_000,
                kind: Kind::Bye,
            });
        }
        for level in 0..LEVELS {
            while let Some(t) = self.retx[level].front().copied().filter(|t| t.due <= now) {
                self.retx[level].pop_front();
                let Some(i) = self.slot_of(t.n) else { continue };
                let s = &self.slots[i];
                let sock = s.sock as usize;
                match (t.kind, s.state) {
                    (Kind::Initial, State::Calling) => self.send_initial(sock, t.n, NO_TAG),
                    (Kind::Bye, State::Byeing) => {
                        self.queues[sock].push_bytes(&s.bye, self.proxy, NO_TAG)
                    }
                    _ => continue,
                }
                self.totals.retransmissions += 1;
                // Timer A doubles without bound (until the timeout); timer
                // E stops at T2 (RFC 3261 §17.1.1.2, §17.1.2.2).
                let cap = if t.kind == Kind::Initial && self.mode == Mode::Calls {
                    LEVELS - 1
                } else {
                    T2_LEVEL
                };
                let next = (level + 1).min(cap);
                self.retx[next].push_back(Timer {
                    n: t.n,
                    due: now + (T1_MS << next) * 1_000_000,
                    kind: t.kind,
                });
            }
        }
        // Timeouts: calls start in order, so walk from the oldest.
        while self.oldest < self.next {
            let i = (self.oldest % self.cap) as usize;
            let s = &self.slots[i];
            if s.n == self.oldest && s.state != State::Free {
                if s.start + self.timeout_ns > now {
                    break;
                }
                self.end(i, End::Timeout);
            }
            self.oldest += 1;
        }
    }

    /// Fail every call still in flight (the run's deadline passed).
    fn fail_all(&mut self) {
        for n in self.oldest..self.next {
            if let Some(i) = self.slot_of(n) {
                self.end(i, End::Timeout);
            }
        }
        self.oldest = self.next;
    }

    fn end(&mut self, i: usize, how: End) {
        let s = &mut self.slots[i];
        s.state = State::Free;
        s.n = FREE;
        let mut bye = std::mem::take(&mut s.bye);
        if bye.capacity() > 0 && self.pool.len() < POOL_MAX {
            bye.clear();
            self.pool.push(bye);
        }
        self.live -= 1;
        match how {
            End::Completed => self.totals.completed += 1,
            End::Failed => self.totals.failed += 1,
            End::Timeout => {
                self.totals.failed += 1;
                self.totals.timeouts += 1;
            }
        }
    }

    fn flush(&mut self, socks: &[UdpSocket]) {
        for (i, s) in socks.iter().enumerate() {
            if self.queues[i].is_empty() {
                continue;
            }
            let (slots, cap) = (&mut self.slots, self.cap);
            let f = self.queues[i].flush(s, |n, t| {
                let slot = &mut slots[(n % cap) as usize];
                if slot.n == n && slot.sent == 0 {
                    slot.sent = t;
                }
            });
            self.totals.send_errors += f.errors;
        }
    }

    /// One datagram on a UAC socket.
    fn on_datagram(&mut self, g: Got, data: &[u8], now: u64) {
        let msg = match (
            g.truncated,
            Message::parse(
                Bytes::copy_from_slice(data),
                Framing::Datagram,
                &self.limits,
            ),
        ) {
            (false, Ok(m)) if !m.is_request() => m,
            _ => {
                self.totals.unexpected += 1;
                return;
            }
        };
        let (Some(id), Some(status), Some(cseq)) = (
            parse_call_id(msg.call_id(), self.run_id),
            msg.status(),
            msg.cseq(),
        ) else {
            self.totals.unexpected += 1;
            return;
        };
        // The Call-ID carries the call number, or for REGISTER the user,
        // whose CSeq then names the attempt.
        let n = match self.plan {
            Some(p) => match p.number(id, cseq.seq) {
                Some(n) => n,
                None => {
                    self.totals.unexpected += 1;
                    return;
                }
            },
            None => id,
        };
        let Some(i) = self.slot_of(n) else {
            // A call already finished (or never ours): a late answer.
            self.totals.unexpected += 1;
            return;
        };
        let state = self.slots[i].state;
        let initial = match self.mode {
            Mode::Calls => Method::Invite,
            Mode::Options => Method::Options,
            Mode::Register => Method::Register,
        };
        match (cseq.method, state) {
            (m, State::Calling | State::Proceeding) if m == initial => {
                if status < 200 {
                    if m == Method::Invite {
                        self.slots[i].state = State::Proceeding;
                    }
                    return;
                }
                let sl = &self.slots[i];
                if (200..300).contains(&status) && sl.sent > 0 {
                    // Less the INVITE's time in the UAS, when known.
                    let in_uas = if sl.uas_rx > 0 && sl.uas_tx > sl.uas_rx {
                        self.totals.uas_wait_ns_sum += (sl.uas_tx - sl.uas_rx) as u64;
                        self.totals.uas_wait_count += 1;
                        sl.uas_tx - sl.uas_rx
                    } else {
                        0
                    };
                    let ns = (g.ts - sl.sent - in_uas).max(0) as u64;
                    self.hist.saturating_record(ns.div_ceil(1000).max(1));
                }
                if m == Method::Register && status < 300 {
                    // The 200 lists the user's bindings: ours must be there.
                    let s = self.slots[i].sock as usize;
                    let user = id;
                    if !self.regs[s].lists_contact(&msg, user) {
                        self.totals.bad_answers += 1;
                        self.end(i, End::Failed);
                        return;
                    }
                }
                if m != Method::Invite {
                    let how = if status < 300 {
                        End::Completed
                    } else {
                        End::Failed
                    };
                    self.end(i, how);
                    return;
                }
                let s = self.slots[i].sock as usize;
                self.reqs[s].ack(self.queues[s].buf(), n, &msg);
                self.queues[s].push(self.proxy, NO_TAG);
                if status >= 300 {
                    self.end(i, End::Failed);
                    return;
                }
                let mut bye = self.pool.pop().unwrap_or_default();
                self.reqs[s].bye(&mut bye, n, &msg);
                let slot = &mut self.slots[i];
                slot.bye = bye;
                slot.state = State::Holding;
                self.holds.push_back(Timer {
                    n,
                    due: now + self.hold_ns,
                    kind: Kind::Bye,
                });
            }
            (Method::Invite, State::Holding | State::Byeing) => {
                // The answer to a retransmitted INVITE, or a 2xx sent
                // again: a 2xx gets its ACK again (§13.2.2.4).
                if (200..300).contains(&status) {
                    let s = self.slots[i].sock as usize;
                    self.reqs[s].ack(self.queues[s].buf(), n, &msg);
                    self.queues[s].push(self.proxy, NO_TAG);
                } else if status >= 300 {
                    self.totals.unexpected += 1;
                }
            }
            (Method::Bye, State::Byeing) => {
                if status >= 200 {
                    let how = if status < 300 {
                        End::Completed
                    } else {
                        End::Failed
                    };
                    self.end(i, how);
                }
            }
            _ => self.totals.unexpected += 1,
        }
    }
}

/// What one loop left: its counters, latencies and the UAS's counters.
struct Part {
    totals: UacTotals,
    hist: Histogram<u64>,
    uas: Option<crate::uas::UasStats>,
}

/// Build and run loop `t` of `threads`; `ready` lines the loops up so
/// that they start together, after every socket is bound.
fn run_part(
    cfg: &RunConfig,
    run_id: u32,
    t: usize,
    threads: usize,
    ready: &std::sync::Barrier,
) -> std::io::Result<Part> {
    let built = Uac::part(cfg, run_id, t, threads);
    ready.wait();
    let mut uac = built?;
    // Every call ends by its timeout; the deadline only backs that up.
    let deadline = Instant::now() + cfg.duration + cfg.timeout + cfg.hold + Duration::from_secs(2);
    uac.run(deadline);
    Ok(Part {
        uas: uac.uas_stats(),
        totals: uac.totals,
        hist: uac.hist,
    })
}

/// Run a `calls`, `options` or `register` load as `cfg` says and report.
pub fn run(cfg: &RunConfig) -> std::io::Result<Report> {
    let cpu0 = crate::cpu::process_cpu_ns();
    let run_id = std::process::id().rotate_left(16) ^ (realtime_ns() as u32);
    let threads = if cfg.mode == Mode::Register {
        cfg.threads.max(1)
    } else {
        1
    };
    let ready = std::sync::Barrier::new(threads);
    let parts: Vec<std::io::Result<Part>> = if threads == 1 {
        vec![run_part(cfg, run_id, 0, 1, &ready)]
    } else {
        std::thread::scope(|sc| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let ready = &ready;
                    std::thread::Builder::new()
                        .name(format!("loadgen-{t}"))
                        .spawn_scoped(sc, move || run_part(cfg, run_id, t, threads, ready))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| match h {
                    Ok(h) => h.join().unwrap_or_else(|_| {
                        Err(std::io::Error::other("a generator thread panicked"))
                    }),
                    Err(e) => Err(e),
                })
                .collect()
        })
    };
    let cpu1 = crate::cpu::process_cpu_ns();
    let mut t = UacTotals::default();
    let mut hist: Histogram<u64> =
        Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid");
    let mut uas_stats = None;
    for p in parts {
        let p = p?;
        t.add(&p.totals);
        let _ = hist.add(&p.hist);
        uas_stats = uas_stats.or(p.uas);
    }
    let window_s = t.window_ns as f64 / 1e9;
    let calls = if t.completed > 0 {
        t.completed
    } else {
        t.attempted
    };
    let pct = |q: f64| (!hist.is_empty()).then(|| hist.value_at_quantile(q));
    Ok(Report {
        label: cfg.label.clone(),
        mode: cfg.mode.as_str().to_owned(),
        offered_cps: cfg.rate,
        achieved_cps: if window_s > 0.0 {
            t.completed as f64 / window_s
        } else {
            0.0
        },
        duration_s: window_s,
        attempted: t.attempted,
        completed: t.completed,
        failed: t.failed,
        timeouts: t.timeouts,
        retransmissions: t.retransmissions,
        unexpected: t.unexpected + uas_stats.map_or(0, |u| u.unexpected),
        send_errors: t.send_errors + uas_stats.map_or(0, |u| u.send_errors),
        p50_us: pct(0.50),
        p90_us: pct(0.90),
        p99_us: pct(0.99),
        max_us: (!hist.is_empty()).then(|| hist.max()),
        gen_cpu_us_per_call: match (cpu0, cpu1) {
            (Some(a), Some(b)) if calls > 0 => Some((b - a) as f64 / 1e3 / calls as f64),
            _ => None,
        },
        start_lag_max_us: t.start_lag_max_ns / 1000,
        uas_wait_mean_us: (t.uas_wait_count > 0)
            .then(|| t.uas_wait_ns_sum / t.uas_wait_count / 1000),
        uas: uas_stats,
        bad_answers: t.bad_answers,
        overlaps: t.overlaps,
        threads,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_hold_about_two_starts_within_bounds() {
        assert_eq!(tick_ns(2000), 500_000);
        assert_eq!(tick_ns(5000), 400_000);
        assert_eq!(tick_ns(10_000), 200_000);
        assert_eq!(tick_ns(20_000), 100_000);
        assert_eq!(tick_ns(100_000), 100_000);
        assert_eq!(tick_ns(1), 500_000);
    }

    #[test]
    fn threads_share_rates_and_sockets_evenly() {
        assert_eq!(
            (0..3).map(|t| share(100_000, 3, t)).collect::<Vec<_>>(),
            [33_334, 33_333, 33_333]
        );
        assert_eq!((0..2).map(|t| share(8, 2, t)).sum::<u64>(), 8);
        assert_eq!(share(5, 1, 0), 5);
        let mut a = UacTotals {
            attempted: 3,
            window_ns: 10,
            start_lag_max_ns: 7,
            overlaps: 1,
            ..UacTotals::default()
        };
        a.add(&UacTotals {
            attempted: 4,
            window_ns: 12,
            start_lag_max_ns: 2,
            bad_answers: 2,
            ..UacTotals::default()
        });
        assert_eq!(
            (
                a.attempted,
                a.window_ns,
                a.start_lag_max_ns,
                a.overlaps,
                a.bad_answers
            ),
            (7, 12, 7, 1, 2)
        );
    }

    #[test]
    fn the_ring_covers_rate_times_timeout_and_hold() {
        let r = ring_size(3000, Duration::from_secs(10), Duration::from_millis(100));
        assert_eq!(r, 3000 * 11_100 / 1000);
        assert_eq!(ring_size(1, Duration::from_secs(1), Duration::ZERO), 1024);
        assert_eq!(
            ring_size(1_000_000, Duration::from_secs(120), Duration::ZERO),
            MAX_SLOTS
        );
    }
}
