//! Client transactions: RFC 3261 §17.1.1 (INVITE, with the RFC 6026 §8.4
//! Accepted state) and §17.1.2 (non-INVITE).

use super::{due, Deadlines, Kind, Millis, Timers};

/// RFC 3261 Figures 5 and 6, RFC 6026 Figure 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, no response yet (§17.1.1.2).
    Calling,
    /// Non-INVITE sent, no response yet (§17.1.2.2).
    Trying,
    Proceeding,
    /// INVITE got a 2xx (RFC 6026 §8.4).
    Accepted,
    Completed,
    Terminated,
}

/// What the transaction user (the proxy) must do after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientEvent {
    /// Pass the response up to the TU.
    PassUp,
    /// Pass up and send an ACK for this non-2xx final response (INVITE, RFC 3261 §17.1.1.3). The caller builds the ACK.
    PassUpAndAck,
    /// A retransmitted non-2xx final of an INVITE in Completed: resend the ACK, do not pass up.
    Ack,
    /// Nothing to do (absorbed retransmission, or a response after termination).
    Absorb,
    /// Timer A/E fired: retransmit the request (the caller holds the bytes).
    Retransmit,
    /// Timer B/F fired, or a transport error: the transaction failed; the TU treats it as a 408 (RFC 3261 §8.1.3.1, §16.7/§16.8).
    TimedOut,
    /// Timer D/K/M fired: the transaction ended quietly.
    Terminated,
    /// Nothing due.
    Idle,
}

/// One client transaction. Holds no message: the caller keeps the request
/// bytes for retransmission and builds ACKs.
#[derive(Debug, Clone)]
pub struct ClientTx {
    kind: Kind,
    reliable: bool,
    state: ClientState,
    timers: Timers,
    /// The interval that led to the retransmission deadline.
    interval: Millis,
    /// Timer A/E (retransmit), Timer B/F (fail), Timer D/K/M (end).
    at: Deadlines,
}

impl ClientTx {
    /// A client transaction whose request the caller has just sent at `now`. `reliable` = TCP/TLS: no retransmissions (Timer A/E not armed), Timer D/K = 0 (RFC 3261 §17.1.1.2, §17.1.2.2).
    pub fn new(kind: Kind, reliable: bool, now: Millis, timers: &Timers) -> ClientTx {
        let state = match kind {
            Kind::Invite => ClientState::Calling,
            Kind::NonInvite => ClientState::Trying,
        };
        ClientTx {
            kind,
            reliable,
            state,
            timers: *timers,
            interval: timers.t1,
            at: Deadlines {
                // RFC 3261 §17.1.1.2 Timer A, §17.1.2.2 Timer E: T1, unreliable transports only.
                retransmit: (!reliable).then(|| now.saturating_add(timers.t1)),
                // RFC 3261 §17.1.1.2 Timer B, §17.1.2.2 Timer F: 64*T1.
                timeout: Some(now.saturating_add(timers.b())),
                end: None,
            },
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    /// A response (status code 100..=699) matched to this transaction.
    /// A code outside that range is absorbed.
    pub fn handle_response(&mut self, code: u16, now: Millis) -> ClientEvent {
        if !(100..=699).contains(&code) {
            return ClientEvent::Absorb;
        }
        match self.kind {
            Kind::Invite => self.invite_response(code, now),
            Kind::NonInvite => self.non_invite_response(code, now),
        }
    }

    fn invite_response(&mut self, code: u16, now: Millis) -> ClientEvent {
        use ClientState::*;
        match (self.state, code) {
            // RFC 3261 §17.1.1.2: a provisional moves Calling to Proceeding;
            // no more retransmissions, and Timer B only runs in Calling.
            (Calling | Proceeding, 100..=199) => {
                self.state = Proceeding;
                self.stop_timers();
                ClientEvent::PassUp
            }
            // RFC 6026 §8.4: a 2xx moves to Accepted, Timer M = 64*T1.
            (Calling | Proceeding, 200..=299) => {
                self.state = Accepted;
                self.stop_timers();
                self.at.end = Some(now.saturating_add(self.timers.b()));
                ClientEvent::PassUp
            }
            // RFC 3261 §17.1.1.2: a 300-699 moves to Completed and is
            // ACKed (§17.1.1.3); Timer D = 32 s unreliable, 0 reliable.
            (Calling | Proceeding, _) => {
                self.stop_timers();
                if self.reliable {
                    self.state = Terminated;
                } else {
                    self.state = Completed;
                    self.at.end = Some(now.saturating_add(self.timers.d()));
                }
                ClientEvent::PassUpAndAck
            }
            // RFC 6026 §8.4: 2xx retransmissions in Accepted go to the TU.
            (Accepted, 200..=299) => ClientEvent::PassUp,
            // RFC 3261 §17.1.1.2: a retransmitted final in Completed is
            // ACKed again and not passed up.
            (Completed, 300..=699) => ClientEvent::Ack,
            _ => ClientEvent::Absorb,
        }
    }

    fn non_invite_response(&mut self, code: u16, now: Millis) -> ClientEvent {
        use ClientState::*;
        match (self.state, code) {
            // RFC 3261 §17.1.2.2: a provisional moves Trying to Proceeding;
            // Timer E keeps running (reset to T2 when it fires), F too.
            (Trying | Proceeding, 100..=199) => {
                self.state = Proceeding;
                ClientEvent::PassUp
            }
            // RFC 3261 §17.1.2.2: a final moves to Completed, Timer K =
            // T4 unreliable, 0 reliable.
            (Trying | Proceeding, _) => {
                self.stop_timers();
                if self.reliable {
                    self.state = Terminated;
                } else {
                    self.state = Completed;
                    self.at.end = Some(now.saturating_add(self.timers.t4));
                }
                ClientEvent::PassUp
            }
            // RFC 3261 §17.1.2.2: responses in Completed are absorbed.
            _ => ClientEvent::Absorb,
        }
    }

    /// Call when now >= poll_timeout(); returns what fired (at most one event per call: the caller loops while poll_timeout() <= now; an event that is not due returns Idle).
    ///
    /// A timer that ends the transaction wins over a retransmission due
    /// at the same time, and a retransmission timer is rearmed from `now`,
    /// so after this returns `poll_timeout()` is later than `now`.
    pub fn handle_timeout(&mut self, now: Millis) -> ClientEvent {
        // RFC 3261 §17.1.1.2 Timer D, §17.1.2.2 Timer K, RFC 6026 §8.4 Timer M.
        if due(self.at.end, now) {
            self.terminate();
            return ClientEvent::Terminated;
        }
        // RFC 3261 §17.1.1.2 Timer B, §17.1.2.2 Timer F.
        if due(self.at.timeout, now) {
            self.terminate();
            return ClientEvent::TimedOut;
        }
        if due(self.at.retransmit, now) {
            self.interval = match (self.kind, self.state) {
                // RFC 3261 §17.1.1.2 Timer A: doubles, no cap.
                (Kind::Invite, _) => self.timers.next_interval(self.interval, false),
                // RFC 3261 §17.1.2.2 Timer E in Proceeding: reset to T2.
                (Kind::NonInvite, ClientState::Proceeding) => self.timers.t2,
                // RFC 3261 §17.1.2.2 Timer E in Trying: min(2*interval, T2).
                (Kind::NonInvite, _) => self.timers.next_interval(self.interval, true),
            };
            self.at.retransmit = Some(now.saturating_add(self.interval));
            return ClientEvent::Retransmit;
        }
        ClientEvent::Idle
    }

    /// The transport reported that the request could not be sent (RFC 3261 §17.1.4): Terminated, returns TimedOut (unless already Completed/Accepted/Terminated -> Absorb).
    pub fn handle_transport_error(&mut self) -> ClientEvent {
        match self.state {
            ClientState::Calling | ClientState::Trying | ClientState::Proceeding => {
                self.terminate();
                ClientEvent::TimedOut
            }
            ClientState::Accepted | ClientState::Completed | ClientState::Terminated => {
                ClientEvent::Absorb
            }
        }
    }

    /// The earliest deadline of the timers running in this state, if any.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.at.next()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    fn stop_timers(&mut self) {
        self.at = Deadlines::default();
    }

    fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.stop_timers();
    }
}

#[cfg(test)]
mod tests {
    use super::ClientEvent::*;
    use super::*;

    const UDP: bool = false;
    const TCP: bool = true;

    fn tx(kind: Kind, reliable: bool, now: Millis) -> ClientTx {
        ClientTx::new(kind, reliable, now, &Timers::default())
    }

    /// Runs the virtual clock up to `until` the way a host does: at each
    /// deadline, `handle_timeout` in a loop while due. Checks that every
    /// call reports something and leaves `poll_timeout()` in the future.
    fn run(tx: &mut ClientTx, until: Millis) -> Vec<(Millis, ClientEvent)> {
        let mut fired = Vec::new();
        while let Some(t) = tx.poll_timeout().filter(|&t| t <= until) {
            let event = tx.handle_timeout(t);
            assert_ne!(event, Idle, "poll_timeout {t} but nothing fired");
            assert!(tx.poll_timeout().is_none_or(|next| next > t));
            fired.push((t, event));
        }
        fired
    }

    fn at(times: &[Millis], event: ClientEvent) -> Vec<(Millis, ClientEvent)> {
        times.iter().map(|&t| (t, event)).collect()
    }

    #[test]
    fn invite_udp_timer_a_doubles_uncapped_then_b() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.state(), ClientState::Calling);
        assert_eq!(tx.poll_timeout(), Some(500));
        let mut want = at(&[500, 1500, 3500, 7500, 15500, 31500], Retransmit);
        want.push((32000, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_response(200, 40_000), Absorb);
    }

    #[test]
    fn invite_tcp_no_retransmissions() {
        let mut tx = tx(Kind::Invite, TCP, 0);
        assert_eq!(tx.poll_timeout(), Some(32000));
        assert_eq!(run(&mut tx, 100_000), vec![(32000, TimedOut)]);
        assert!(tx.is_terminated());
    }

    #[test]
    fn invite_provisional_stops_a_and_b() {
        let mut tx = tx(Kind::Invite, UDP, 1000);
        assert_eq!(run(&mut tx, 1600), vec![(1500, Retransmit)]);
        assert_eq!(tx.handle_response(180, 1600), PassUp);
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_response(183, 1700), PassUp);
        assert_eq!(tx.handle_timeout(100_000), Idle);
        assert_eq!(tx.state(), ClientState::Proceeding);
    }

    #[test]
    fn invite_2xx_accepted_until_timer_m() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.handle_response(100, 100), PassUp);
        assert_eq!(tx.handle_response(200, 2000), PassUp);
        assert_eq!(tx.state(), ClientState::Accepted);
        assert_eq!(tx.poll_timeout(), Some(34000));
        assert_eq!(tx.handle_response(200, 3000), PassUp);
        assert_eq!(tx.handle_response(180, 3000), Absorb);
        assert_eq!(tx.handle_response(486, 3000), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(34000, Terminated)]);
        assert_eq!(tx.handle_response(200, 40_000), Absorb);
    }

    #[test]
    fn invite_2xx_in_calling_over_tcp() {
        let mut tx = tx(Kind::Invite, TCP, 0);
        assert_eq!(tx.handle_response(200, 10), PassUp);
        assert_eq!(tx.state(), ClientState::Accepted);
        assert_eq!(run(&mut tx, 100_000), vec![(32010, Terminated)]);
    }

    #[test]
    fn invite_non_2xx_udp_acked_then_timer_d() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.handle_response(180, 100), PassUp);
        assert_eq!(tx.handle_response(486, 200), PassUpAndAck);
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(tx.poll_timeout(), Some(32200));
        assert_eq!(tx.handle_response(486, 700), Ack);
        assert_eq!(tx.handle_response(200, 800), Absorb);
        assert_eq!(tx.handle_response(180, 800), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(32200, Terminated)]);
        assert_eq!(tx.handle_response(486, 40_000), Absorb);
    }

    #[test]
    fn invite_non_2xx_tcp_terminates_at_once() {
        let mut tx = tx(Kind::Invite, TCP, 0);
        assert_eq!(tx.handle_response(486, 200), PassUpAndAck);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_response(486, 300), Absorb);
    }

    #[test]
    fn non_invite_udp_timer_e_capped_at_t2_then_f() {
        let mut tx = tx(Kind::NonInvite, UDP, 0);
        assert_eq!(tx.state(), ClientState::Trying);
        let mut times = vec![500, 1500, 3500, 7500];
        times.extend((11500..=31500).step_by(4000));
        let mut want = at(&times, Retransmit);
        want.push((32000, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);
        assert!(tx.is_terminated());
    }

    #[test]
    fn non_invite_provisional_retransmits_at_t2() {
        let mut tx = tx(Kind::NonInvite, UDP, 0);
        assert_eq!(run(&mut tx, 600), vec![(500, Retransmit)]);
        assert_eq!(tx.handle_response(100, 600), PassUp);
        assert_eq!(tx.state(), ClientState::Proceeding);
        // The running Timer E (due at 1500) fires, then every T2; F still runs.
        let mut times = vec![1500];
        times.extend((5500..=29500).step_by(4000));
        let mut want = at(&times, Retransmit);
        want.push((32000, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);
    }

    #[test]
    fn non_invite_final_udp_absorbs_until_timer_k() {
        let mut tx = tx(Kind::NonInvite, UDP, 0);
        assert_eq!(tx.handle_response(100, 100), PassUp);
        assert_eq!(tx.handle_response(200, 700), PassUp);
        assert_eq!(tx.state(), ClientState::Completed);
        assert_eq!(tx.poll_timeout(), Some(5700));
        assert_eq!(tx.handle_response(200, 800), Absorb);
        assert_eq!(tx.handle_response(100, 800), Absorb);
        assert_eq!(run(&mut tx, 100_000), vec![(5700, Terminated)]);
    }

    #[test]
    fn non_invite_tcp_no_timer_e_and_k_zero() {
        let mut tx = tx(Kind::NonInvite, TCP, 0);
        assert_eq!(tx.poll_timeout(), Some(32000));
        assert_eq!(tx.handle_response(404, 10), PassUp);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);

        let mut tx = self::tx(Kind::NonInvite, TCP, 0);
        assert_eq!(run(&mut tx, 100_000), vec![(32000, TimedOut)]);
    }

    #[test]
    fn transport_error() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.handle_transport_error(), TimedOut);
        assert!(tx.is_terminated());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.handle_transport_error(), Absorb);

        let mut tx = self::tx(Kind::NonInvite, UDP, 0);
        tx.handle_response(100, 10);
        assert_eq!(tx.handle_transport_error(), TimedOut);

        let mut tx = self::tx(Kind::Invite, UDP, 0);
        tx.handle_response(486, 10);
        assert_eq!(tx.handle_transport_error(), Absorb);
        assert_eq!(tx.state(), ClientState::Completed);

        let mut tx = self::tx(Kind::Invite, UDP, 0);
        tx.handle_response(200, 10);
        assert_eq!(tx.handle_transport_error(), Absorb);
        assert_eq!(tx.state(), ClientState::Accepted);
    }

    #[test]
    fn not_due_is_idle_and_late_call_fails_first() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.handle_timeout(499), Idle);
        assert_eq!(tx.poll_timeout(), Some(500));
        // A host that wakes long after B: B wins over the overdue A.
        assert_eq!(tx.handle_timeout(100_000), TimedOut);
        assert_eq!(tx.poll_timeout(), None);
    }

    #[test]
    fn codes_out_of_range_are_absorbed() {
        let mut tx = tx(Kind::Invite, UDP, 0);
        assert_eq!(tx.handle_response(99, 10), Absorb);
        assert_eq!(tx.handle_response(700, 10), Absorb);
        assert_eq!(tx.state(), ClientState::Calling);
        assert_eq!(tx.poll_timeout(), Some(500));
    }

    #[test]
    fn custom_timers_scale() {
        let timers = Timers {
            t1: 100,
            t2: 400,
            t4: 1000,
        };
        let mut tx = ClientTx::new(Kind::NonInvite, UDP, 0, &timers);
        let mut times = vec![100, 300, 700];
        times.extend((1100..=6300).step_by(400));
        let mut want = at(&times, Retransmit);
        want.push((6400, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);

        let mut tx = ClientTx::new(Kind::NonInvite, UDP, 0, &timers);
        tx.handle_response(200, 50);
        assert_eq!(run(&mut tx, 100_000), vec![(1050, Terminated)]);

        let mut tx = ClientTx::new(Kind::Invite, UDP, 0, &timers);
        let mut want = at(&[100, 300, 700, 1500, 3100, 6300], Retransmit);
        want.push((6400, TimedOut));
        assert_eq!(run(&mut tx, 100_000), want);
    }

    /// A host on a coarse wheel (ticks every 700 ms) that loops while
    /// due: after every handle_* call, poll_timeout() is not in the past.
    #[test]
    fn poll_timeout_never_in_the_past() {
        for kind in [Kind::Invite, Kind::NonInvite] {
            for reliable in [UDP, TCP] {
                for final_code in [200, 486] {
                    let script = [(2100, 100), (2800, 180), (4200, final_code), (9100, 486)];
                    let mut tx = tx(kind, reliable, 0);
                    for now in (0..80_000).step_by(700) {
                        while tx.poll_timeout().is_some_and(|t| t <= now) {
                            assert_ne!(tx.handle_timeout(now), Idle);
                            assert!(tx.poll_timeout().is_none_or(|t| t > now));
                        }
                        if let Some(&(_, code)) = script.iter().find(|s| s.0 == now) {
                            tx.handle_response(code, now);
                            assert!(tx.poll_timeout().is_none_or(|t| t > now));
                        }
                    }
                    assert!(tx.is_terminated(), "{kind:?} {reliable} {final_code}");
                }
            }
        }
    }
}
