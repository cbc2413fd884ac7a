//! The SIP transaction state machines (RFC 3261 §17, with the RFC 6026
//! Accepted states and the RFC 4320 non-INVITE rules), sans-IO.
//!
//! The model: an event (a response, a request retransmission, an ACK, a
//! transport error, or a timer) and `now` go in; a decision comes out
//! (pass the response up, resend, retransmit, time out, ...). No sockets,
//! no clock, no message bytes and no allocation: the caller matches
//! messages to transactions, holds the bytes to (re)send and does the I/O.
//! Time is a `u64` of milliseconds from any monotonic origin.
//!
//! Each transaction exposes a single `poll_timeout()`: the earliest
//! deadline of the timers running in its state. The host keeps one timer
//! wheel entry per transaction, and when it is due calls `handle_timeout`
//! in a loop while `poll_timeout() <= now` (each call reports at most one
//! event), then rearms the wheel entry with the new `poll_timeout()`.

pub mod client;
pub mod server;

pub use client::{ClientEvent, ClientState, ClientTx};
pub use server::{ServerEvent, ServerState, ServerTx};

/// Milliseconds, on the host's monotonic clock.
pub type Millis = u64;

/// RFC 3261 §17.1.1.1 / Table 4 timer values, ms. Default 500 / 4000 / 5000.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1: RTT estimate, the first retransmission interval.
    pub t1: Millis,
    /// T2: the maximum retransmit interval for non-INVITE requests and
    /// INVITE responses.
    pub t2: Millis,
    /// T4: the maximum duration a message remains in the network.
    pub t4: Millis,
}

impl Default for Timers {
    fn default() -> Timers {
        // RFC 3261 Table 4: T1 500 ms, T2 4 s, T4 5 s.
        Timers {
            t1: 500,
            t2: 4000,
            t4: 5000,
        }
    }
}

impl Timers {
    /// 64*T1: Timer B; also F, H, J (RFC 3261 Table 4) and L, M (RFC 6026 §8.4, §8.7).
    pub fn b(&self) -> Millis {
        self.t1.saturating_mul(64)
    }

    /// Timer D: "at least 32 seconds" on an unreliable transport (RFC 3261
    /// §17.1.1.2); it does not scale with T1.
    pub fn d(&self) -> Millis {
        32_000
    }

    /// The next retransmission interval after `interval` fired: doubled,
    /// and capped at T2 when `capped` (RFC 3261 §17.1.2.2 Timer E,
    /// §17.2.1 Timer G; Timer A of §17.1.1.2 is not capped).
    pub fn next_interval(&self, interval: Millis, capped: bool) -> Millis {
        let doubled = interval.saturating_mul(2);
        if capped {
            doubled.min(self.t2)
        } else {
            doubled
        }
    }
}

/// The three deadlines a transaction of any kind may have running: the
/// next retransmission (Timers A, E, G), failure (B, F, H) and the quiet
/// end (D, I, J, K, L, M).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deadlines {
    pub retransmit: Option<Millis>,
    pub timeout: Option<Millis>,
    pub end: Option<Millis>,
}

impl Deadlines {
    /// The earliest running deadline.
    pub fn next(&self) -> Option<Millis> {
        [self.retransmit, self.timeout, self.end]
            .into_iter()
            .flatten()
            .min()
    }
}

/// True if `deadline` is running and has come.
fn due(deadline: Option<Millis>, now: Millis) -> bool {
    deadline.is_some_and(|t| t <= now)
}

/// INVITE and non-INVITE transactions follow different machines
/// (RFC 3261 §17.1.1 vs §17.1.2, §17.2.1 vs §17.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Invite,
    NonInvite,
}
