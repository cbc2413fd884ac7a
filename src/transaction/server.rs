//! Server transactions: RFC 3261 §17.2.1 (INVITE, with the RFC 6026 §8.7
//! Accepted state) and §17.2.2 (non-INVITE).

use super::{due, Deadlines, Kind, Millis, Timers};

/// RFC 3261 Figures 7 and 8, RFC 6026 Figure 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Non-INVITE received, nothing sent yet (§17.2.2).
    Trying,
    Proceeding,
    Completed,
    /// INVITE: the ACK for our non-2xx final came (§17.2.1).
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026 §8.7).
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// Send the last response again (a request retransmission in Proceeding/Completed, or Timer G).
    Resend,
    /// Nothing to send (absorbed request retransmission/ACK; Trying state retransmission; no last response yet).
    Absorb,
    /// Timer H fired: no ACK came for our non-2xx final (RFC 3261 §17.2.1); the transaction ended (inform the TU).
    TimedOut,
    /// Timer I/J/L fired: ended quietly.
    Terminated,
    /// Nothing due.
    Idle,
}

/// One server transaction. Holds no message: the caller keeps the last
/// response sent, to resend it.
#[derive(Debug, Clone)]
pub struct ServerTx {
    kind: Kind,
    reliable: bool,
    state: ServerState,
    timers: Timers,
    /// A response was sent, so there is one to resend.
    responded: bool,
    /// The interval that led to the retransmission deadline.
    interval: Millis,
    /// Timer G (retransmit), Timer H (fail), Timer I/J/L (end).
    at: Deadlines,
}

impl ServerTx {
    /// A server transaction for a request received at `now`. INVITE starts in Proceeding, non-INVITE in Trying.
    pub fn new(kind: Kind, reliable: bool, now: Millis, timers: &Timers) -> ServerTx {
        // No timer runs until a response is sent; `now` is taken for symmetry
        // with ClientTx. The 200 ms 100 Trying of RFC 3261 §17.2.1 is the TU's.
        let _ = now;
        let state = match kind {
            Kind::Invite => ServerState::Proceeding,
            Kind::NonInvite => ServerState::Trying,
        };
        ServerTx {
            kind,
            reliable,
            state,
            timers: *timers,
            responded: false,
            at: Deadlines::default(),
            interval: timers.t1,
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    /// A retransmission of the request arrived (INVITE: Proceeding -> Resend if a provisional was sent, else Absorb; Completed -> Resend; Confirmed/Accepted -> Absorb. Non-INVITE: Trying -> Absorb; Proceeding/Completed -> Resend).
    pub fn handle_request(&mut self) -> ServerEvent {
        use ServerState::*;
        match (self.kind, self.state) {
            // RFC 3261 §17.2.1: the most recent provisional or the final is
            // resent; RFC 6026 §8.7: absorbed in Accepted.
            (Kind::Invite, Proceeding) if self.responded => ServerEvent::Resend,
            (Kind::Invite, Completed) => ServerEvent::Resend,
            // RFC 3261 §17.2.2: discarded in Trying, answered with the last
            // response in Proceeding and Completed.
            (Kind::NonInvite, Proceeding | Completed) => ServerEvent::Resend,
            _ => ServerEvent::Absorb,
        }
    }

    /// The TU wants to send a response with `code`. Returns true if it may be sent now (state updated), false if the transaction no longer sends it (e.g. a final after a final; a 1xx after a final). INVITE: 1xx in Proceeding -> true; 2xx in Proceeding -> Accepted (RFC 6026 §8.7), Timer L = 64*T1, true; 2xx in Accepted -> true (2xx retransmissions from downstream are forwarded upstream, RFC 6026 §7.1); 300-699 in Proceeding -> Completed, Timer G = T1 (unreliable only; doubles capped at T2), Timer H = 64*T1, true. Non-INVITE: 1xx in Trying/Proceeding -> Proceeding, true; final in Trying/Proceeding -> Completed, Timer J = 64*T1 on unreliable, 0 on reliable (Terminated), true.
    pub fn send_response(&mut self, code: u16, now: Millis) -> bool {
        use ServerState::*;
        if !(100..=699).contains(&code) {
            return false;
        }
        match (self.kind, self.state, code) {
            // RFC 3261 §17.2.1: provisionals are sent in Proceeding.
            (Kind::Invite, Proceeding, 100..=199) => {}
            // RFC 6026 §8.7: a 2xx moves to Accepted, Timer L = 64*T1.
            (Kind::Invite, Proceeding, 200..=299) => {
                self.state = Accepted;
                self.at.end = Some(now.saturating_add(self.timers.b()));
            }
            // RFC 6026 §7.1, §8.7: 2xx retransmissions pass in Accepted.
            (Kind::Invite, Accepted, 200..=299) => {}
            // RFC 3261 §17.2.1: a 300-699 moves to Completed; Timer G = T1
            // (unreliable only), Timer H = 64*T1.
            (Kind::Invite, Proceeding, _) => {
                self.state = Completed;
                self.interval = self.timers.t1;
                self.at.retransmit = (!self.reliable).then(|| now.saturating_add(self.timers.t1));
                self.at.timeout = Some(now.saturating_add(self.timers.b()));
            }
            // RFC 3261 §17.2.2: a provisional moves Trying to Proceeding.
            (Kind::NonInvite, Trying | Proceeding, 100..=199) => self.state = Proceeding,
            // RFC 3261 §17.2.2: a final moves to Completed, Timer J = 64*T1
            // unreliable, 0 reliable.
            (Kind::NonInvite, Trying | Proceeding, _) => {
                if self.reliable {
                    self.terminate();
                } else {
                    self.state = Completed;
                    self.at.end = Some(now.saturating_add(self.timers.b()));
                }
            }
            _ => return false,
        }
        self.responded = true;
        true
    }

    /// An ACK matched to this INVITE transaction: Completed -> Confirmed, Timer I = T4 (unreliable) or 0 (reliable -> Terminated), returns Absorb. In any other state Absorb too (RFC 6026: an ACK in Accepted is passed to the TU by the caller's matching; here just Absorb).
    pub fn handle_ack(&mut self, now: Millis) -> ServerEvent {
        if self.kind == Kind::Invite && self.state == ServerState::Completed {
            // RFC 3261 §17.2.1: G and H stop; Timer I = T4 unreliable, 0 reliable.
            self.stop_timers();
            if self.reliable {
                self.state = ServerState::Terminated;
            } else {
                self.state = ServerState::Confirmed;
                self.at.end = Some(now.saturating_add(self.timers.t4));
            }
        }
        ServerEvent::Absorb
    }

    /// Call when now >= poll_timeout(); at most one event per call (caller loops). Timer G -> Resend (and rearm: min(2*interval, T2)); Timer H -> TimedOut + Terminated; I/J/L -> Terminated.
    ///
    /// A timer that ends the transaction wins over a retransmission due
    /// at the same time, and Timer G is rearmed from `now`, so after this
    /// returns `poll_timeout()` is later than `now`.
    pub fn handle_timeout(&mut self, now: Millis) -> ServerEvent {
        // RFC 3261 §17.2.1 Timer I, §17.2.2 Timer J, RFC 6026 §8.7 Timer L.
        if due(self.at.end, now) {
            self.terminate();
            return ServerEvent::Terminated;
        }
        // RFC 3261 §17.2.1 Timer H.
        if due(self.at.timeout, now) {
            self.terminate();
            return ServerEvent::TimedOut;
        }
        // RFC 3261 §17.2.1 Timer G: min(2*interval, T2).
        if due(self.at.retransmit, now) {
            self.interval = self.timers.next_interval(self.interval, true);
            self.at.retransmit = Some(now.saturating_add(self.interval));
            return ServerEvent::Resend;
        }
        ServerEvent::Idle
    }

    /// Transport error sending a response (§17.2.4): Terminated.
    pub fn handle_transport_error(&mut self) {
        self.terminate();
    }

    /// The earliest deadline of the timers running in this state, if any.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.at.next()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    fn stop_timers(&mut self) {
        self.at = Deadlines::default();
    }

    fn terminate(&mut self) {
        self.state = ServerState::Terminated;
        self.stop_timers();
    }
}

#[cfg(test)]
mod tests {
    use super::ServerEvent::*;
    use super::*;

    const UDP: bool = false;
    const TCP: bool = true;

    fn tx(kind: Kind, reliable: bool) -> ServerTx {
        ServerTx::new(kind, reliable, 0, &Timers::default())
    }

    /// Runs the virtual clock up to `until` the way a host does (see
    /// client::tests::run).
    fn run(tx: &mut ServerTx, until: Millis) -> Vec<(Millis, ServerEvent)> {
        let mut fired = Vec::new();
        while let Some(t) = tx.poll_timeout().filter(|&t| t <= until) {
            let event = tx.handle_timeout(t);
            assert_ne!(event, Idle, "poll_timeout {t} but nothing fired");
            assert!(tx.poll_timeout().is_none_or(|next| next > t));
            fired.push((t, event));
        }
        fired
    }

    fn resends(times: impl IntoIterator<Item = Millis>) -> Vec<(Millis, ServerEvent)> {
        times.into_iter().map(|t| (t, Resend)).collect()
    }

    #[test]
    fn invite_provisional_resent_on_retransmission() {
        let mut tx = tx(Kind::Invite, UDP);
        assert_eq!(tx.state(), ServerState::Proceeding);
        assert_eq!(tx.handle_request(), Absorb);
        assert!(tx.send_response(100, 10));
        assert_eq!(tx.handle_request(), Resend);
        assert!(tx.send_response(180, 20));
        assert_eq!(tx.handle_request(), Resend);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn invite_non_2xx_udp_timer_g_capped_until_h() {
        let mut tx = tx(Kind::Invite, UDP);
        assert!(tx.send_response(100, 0));
        assert!(tx.send_response(486, 0));
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(tx.handle_request(), Resend);
        let mut want = resends(
            [500, 1500, 3500, 7500]
                .into_iter()
                .chain((11500..=31500).step_by(4000)),
        );
        want.push((32000, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);
        assert!(tx.is_terminated());
        assert_eq!(tx.handle_request(), Absorb);
    }

    #[test]
    fn invite_ack_confirms_then_timer_i() {
        let mut tx = tx(Kind::Invite, UDP);
        assert!(tx.send_response(486, 0));
        assert_eq!(run(&mut tx, 1600), resends([500, 1500]));
        assert_eq!(tx.handle_ack(2000), Absorb);
        assert_eq!(tx.state(), ServerState::Confirmed);
        assert_eq!(tx.poll_timeout(), Some(7000));
        assert_eq!(tx.handle_request(), Absorb);
        assert_eq!(tx.handle_ack(3000), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(7000, Terminated)]);
    }

    #[test]
    fn invite_tcp_no_timer_g_and_ack_terminates() {
        let mut tx = tx(Kind::Invite, TCP);
        assert!(tx.send_response(486, 0));
        assert_eq!(tx.poll_timeout(), Some(32000));
        assert_eq!(tx.handle_ack(100), Absorb);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);

        let mut tx = self::tx(Kind::Invite, TCP);
        assert!(tx.send_response(503, 0));
        assert_eq!(run(&mut tx, 100_000), vec![(32000, TimedOut)]);
    }

    #[test]
    fn invite_2xx_accepted_until_timer_l() {
        let mut tx = tx(Kind::Invite, UDP);
        assert!(tx.send_response(100, 0));
        assert!(tx.send_response(200, 1000));
        assert_eq!(tx.state(), ServerState::Accepted);
        assert_eq!(tx.poll_timeout(), Some(33000));
        assert_eq!(tx.handle_request(), Absorb);
        assert!(tx.send_response(200, 1500));
        assert!(!tx.send_response(180, 1500));
        assert!(!tx.send_response(486, 1500));
        assert_eq!(tx.handle_ack(2000), Absorb);
        assert_eq!(tx.state(), ServerState::Accepted);
        assert_eq!(run(&mut tx, 100_000), vec![(33000, Terminated)]);
        assert!(!tx.send_response(200, 40_000));
    }

    #[test]
    fn final_after_final_refused() {
        let mut tx = tx(Kind::Invite, UDP);
        assert!(tx.send_response(486, 0));
        assert!(!tx.send_response(200, 10));
        assert!(!tx.send_response(486, 10));
        assert!(!tx.send_response(180, 10));
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(tx.poll_timeout(), Some(500));

        let mut tx = self::tx(Kind::NonInvite, UDP);
        assert!(tx.send_response(200, 0));
        assert!(!tx.send_response(404, 10));
        assert!(!tx.send_response(100, 10));
        assert_eq!(tx.state(), ServerState::Completed);
    }

    #[test]
    fn non_invite_udp_trying_absorbs_then_timer_j() {
        let mut tx = tx(Kind::NonInvite, UDP);
        assert_eq!(tx.state(), ServerState::Trying);
        assert_eq!(tx.handle_request(), Absorb);
        assert!(tx.send_response(100, 100));
        assert_eq!(tx.state(), ServerState::Proceeding);
        assert_eq!(tx.handle_request(), Resend);
        assert!(tx.send_response(200, 500));
        assert_eq!(tx.state(), ServerState::Completed);
        assert_eq!(tx.poll_timeout(), Some(32500));
        assert_eq!(tx.handle_request(), Resend);
        assert_eq!(tx.handle_ack(600), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(32500, Terminated)]);
        assert_eq!(tx.handle_request(), Absorb);
    }

    #[test]
    fn non_invite_tcp_timer_j_zero() {
        let mut tx = tx(Kind::NonInvite, TCP);
        assert!(tx.send_response(200, 10));
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn custom_timers_scale() {
        let timers = Timers {
            t1: 100,
            t2: 400,
            t4: 1000,
        };
        let mut tx = ServerTx::new(Kind::Invite, UDP, 0, &timers);
        assert!(tx.send_response(486, 0));
        let mut want = resends(
            [100, 300, 700]
                .into_iter()
                .chain((1100..=6300).step_by(400)),
        );
        want.push((6400, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);

        let mut tx = ServerTx::new(Kind::Invite, UDP, 0, &timers);
        assert!(tx.send_response(486, 0));
        assert_eq!(tx.handle_ack(150), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(1150, Terminated)]);

        let mut tx = ServerTx::new(Kind::Invite, UDP, 0, &timers);
        assert!(tx.send_response(200, 0));
        assert_eq!(run(&mut tx, 100_000), vec![(6400, Terminated)]);

        let mut tx = ServerTx::new(Kind::NonInvite, UDP, 0, &timers);
        assert!(tx.send_response(200, 0));
        assert_eq!(run(&mut tx, 100_000), vec![(6400, Terminated)]);
    }

    #[test]
    fn transport_error_terminates() {
        let mut tx = tx(Kind::Invite, UDP);
        assert!(tx.send_response(486, 0));
        tx.handle_transport_error();
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_request(), Absorb);
        assert!(!tx.send_response(486, 10));
    }

    #[test]
    fn not_due_is_idle_and_late_call_times_out_first() {
        let mut tx = tx(Kind::Invite, UDP);
        assert_eq!(tx.handle_timeout(1_000_000), Idle);
        assert!(!tx.send_response(99, 0));
        assert!(!tx.send_response(700, 0));
        assert!(tx.send_response(486, 0));
        assert_eq!(tx.handle_timeout(499), Idle);
        // A host that wakes long after H: H wins over the overdue G.
        assert_eq!(tx.handle_timeout(100_000), TimedOut);
        assert_eq!(tx.poll_timeout(), None);
    }

    /// A host on a coarse wheel (ticks every 700 ms) that loops while
    /// due: after every handle_* call, poll_timeout() is not in the past.
    #[test]
    fn poll_timeout_never_in_the_past() {
        for kind in [Kind::Invite, Kind::NonInvite] {
            for reliable in [UDP, TCP] {
                for final_code in [200, 486] {
                    let mut tx = tx(kind, reliable);
                    for now in (0..80_000).step_by(700) {
                        while tx.poll_timeout().is_some_and(|t| t <= now) {
                            assert_ne!(tx.handle_timeout(now), Idle);
                            assert!(tx.poll_timeout().is_none_or(|t| t > now));
                        }
                        match now {
                            700 => {
                                tx.send_response(100, now);
                            }
                            1400 => {
                                tx.handle_request();
                            }
                            2100 => {
                                tx.send_response(final_code, now);
                            }
                            9100 => {
                                tx.handle_request();
                            }
                            // The ACK comes late (after some Timer G firings).
                            11_200 => {
                                tx.handle_ack(now);
                            }
                            _ => continue,
                        }
                        assert!(tx.poll_timeout().is_none_or(|t| t > now));
                    }
                    assert!(tx.is_terminated(), "{kind:?} {reliable} {final_code}");
                }
            }
        }
    }
}
