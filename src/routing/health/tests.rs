use super::*;

const INTERVAL: u64 = 5000;
const TIMEOUT: u64 = 2000;
const HOLD: u64 = 30_000;

fn cfg(mode: ProbeMode) -> ProbeCfg {
    ProbeCfg {
        mode,
        ..ProbeCfg::default()
    }
}

/// A target and a virtual clock that moves one probe interval per probe.
struct Probed {
    h: Health,
    now: u64,
}

impl Probed {
    fn new(cfg: ProbeCfg) -> Probed {
        Probed {
            h: Health::new(cfg),
            now: 0,
        }
    }

    /// Sends the probe that is due now, answers it with `code` 10 ms later
    /// and moves the clock to the next probe.
    fn reply(&mut self, code: u16) -> Option<Change> {
        let seq = self.h.probe_due(self.now).expect("a probe is due");
        let change = self.h.probe_reply(seq, code, self.now + 10);
        self.now += INTERVAL;
        change
    }

    /// Sends the probe that is due now and lets it time out.
    fn time_out(&mut self) -> Option<Change> {
        self.h.probe_due(self.now).expect("a probe is due");
        assert_eq!(self.h.handle_timeout(self.now + TIMEOUT - 1), None);
        let change = self.h.handle_timeout(self.now + TIMEOUT);
        self.now += INTERVAL;
        change
    }
}

fn down(why: Why, at_ms: u64) -> Option<Change> {
    Some(Change {
        up: false,
        why,
        at_ms,
    })
}

fn up(why: Why, at_ms: u64) -> Option<Change> {
    Some(Change {
        up: true,
        why,
        at_ms,
    })
}

#[test]
fn starts_up_and_available() {
    let h = Health::new(ProbeCfg::default());
    assert!(h.available(0));
    assert!(h.is_up(0));
    let s = h.status(0);
    assert_eq!(s.admin, AdminState::Up);
    assert_eq!((s.reason, s.since_ms, s.changes), (None, None, 0));
}

#[test]
fn down_after_exactly_down_after_failed_replies() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    assert_eq!(p.reply(503), None);
    assert_eq!(p.reply(503), None);
    assert!(p.h.available(p.now), "two failures of three");
    // Third probe sent at 10000, answered at 10010.
    assert_eq!(p.reply(503), down(Why::Reply(503), 10_010));
    assert!(!p.h.available(p.now));
    assert!(!p.h.is_up(p.now));
    // Further failures are counted but change nothing.
    assert_eq!(p.reply(500), None);
    assert_eq!(p.h.status(p.now).failures, 4);
}

#[test]
fn down_after_exactly_down_after_probe_timeouts() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    assert_eq!(p.time_out(), None);
    assert_eq!(p.time_out(), None);
    assert!(p.h.available(p.now));
    assert_eq!(p.time_out(), down(Why::ProbeTimeout, 10_000 + TIMEOUT));
    assert!(!p.h.available(p.now));
    assert_eq!(p.h.status(p.now).probes_failed, 3);
}

#[test]
fn a_timeout_counts_once_per_probe() {
    let h = Health::new(cfg(ProbeMode::All));
    h.probe_due(0).expect("first probe is due at once");
    assert_eq!(h.handle_timeout(TIMEOUT), None);
    assert_eq!(h.handle_timeout(TIMEOUT + 1), None);
    assert_eq!(h.handle_timeout(TIMEOUT + 100), None);
    let s = h.status(TIMEOUT + 100);
    assert_eq!((s.failures, s.probes_failed, s.probes_sent), (1, 1, 1));
}

#[test]
fn up_after_exactly_up_after_alive_replies() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    for _ in 0..3 {
        p.reply(503);
    }
    assert!(!p.h.available(p.now));
    let second = p.now + INTERVAL + 10;
    assert_eq!(p.reply(200), None);
    assert!(!p.h.available(p.now), "one success of two");
    assert_eq!(p.reply(404), up(Why::Reply(404), second));
    assert!(p.h.available(p.now));
    assert!(p.h.is_up(p.now));
}

#[test]
fn alternating_replies_never_flip() {
    let mut p = Probed::new(ProbeCfg {
        down_after: 2,
        up_after: 2,
        ..cfg(ProbeMode::All)
    });
    for _ in 0..20 {
        assert_eq!(p.reply(503), None);
        assert_eq!(p.reply(200), None);
    }
    assert!(p.h.available(p.now));
    // Down, then alternate again: still never flips.
    assert!(p.reply(503).is_none());
    assert!(p.reply(503).is_some());
    for _ in 0..20 {
        assert_eq!(p.reply(200), None);
        assert_eq!(p.reply(503), None);
    }
    assert!(!p.h.available(p.now));
    assert_eq!(p.h.status(p.now).changes, 1);
}

#[test]
fn a_stale_seq_is_ignored_and_not_counted() {
    let h = Health::new(cfg(ProbeMode::All));
    let seq = h.probe_due(0).expect("due");
    assert_eq!(h.probe_reply(seq.wrapping_add(1), 503, 10), None);
    assert_eq!(h.probe_reply(seq.wrapping_sub(1), 503, 10), None);
    let s = h.status(10);
    assert_eq!((s.failures, s.probes_failed, s.last_code), (0, 0, None));
    // Still outstanding: no new probe, and the right seq still counts.
    assert_eq!(h.probe_due(INTERVAL), None);
    assert_eq!(h.probe_reply(seq, 503, INTERVAL), None);
    assert_eq!(h.status(INTERVAL).failures, 1);
    // A second reply to the same probe (a retransmission) is stale too.
    assert_eq!(h.probe_reply(seq, 503, INTERVAL), None);
    assert_eq!(h.status(INTERVAL).failures, 1);
}

#[test]
fn a_late_reply_to_a_timed_out_probe_is_stale() {
    let h = Health::new(ProbeCfg {
        down_after: 1,
        up_after: 1,
        ..cfg(ProbeMode::All)
    });
    let seq = h.probe_due(0).expect("due");
    assert_eq!(h.handle_timeout(TIMEOUT), down(Why::ProbeTimeout, TIMEOUT));
    // The 200 arrives after the timeout was counted: it must not bring the
    // target back up.
    assert_eq!(h.probe_reply(seq, 200, TIMEOUT + 5), None);
    assert!(!h.available(TIMEOUT + 5));
    assert_eq!(h.status(TIMEOUT + 5).successes, 0);
}

#[test]
fn provisional_replies_are_ignored() {
    let h = Health::new(ProbeCfg {
        down_after: 1,
        ..cfg(ProbeMode::All)
    });
    let seq = h.probe_due(0).expect("due");
    assert_eq!(h.probe_reply(seq, 100, 5), None);
    assert_eq!(h.probe_reply(seq, 183, 6), None);
    let s = h.status(6);
    assert_eq!((s.failures, s.successes, s.last_code), (0, 0, None));
    // The probe is still outstanding, so it can still time out...
    assert_eq!(h.probe_due(INTERVAL), None);
    // ...or be answered.
    assert_eq!(h.probe_reply(seq, 503, 50), down(Why::Reply(503), 50));
}

#[test]
fn a_probe_is_due_every_interval_and_not_while_one_is_outstanding() {
    let h = Health::new(cfg(ProbeMode::All));
    assert_eq!(h.poll_timeout(), Some(0), "first probe at once");
    let s0 = h.probe_due(0).expect("due at once");
    assert_eq!(h.probe_due(0), None);
    assert_eq!(h.probe_due(1000), None, "outstanding");
    assert_eq!(h.poll_timeout(), Some(TIMEOUT));
    h.probe_reply(s0, 200, 30);
    assert_eq!(h.poll_timeout(), Some(INTERVAL));
    assert_eq!(
        h.probe_due(INTERVAL - 1),
        None,
        "answered, interval not over"
    );
    let s1 = h.probe_due(INTERVAL).expect("due after the interval");
    assert_ne!(s0, s1);
    // Unanswered past the next interval: still not due until the timeout
    // has been handled (timeout longer than the interval here).
    h.set_cfg(
        ProbeCfg {
            timeout_ms: 3 * INTERVAL,
            ..cfg(ProbeMode::All)
        },
        INTERVAL,
    );
    assert_eq!(h.probe_due(2 * INTERVAL), None);
    assert_eq!(h.poll_timeout(), Some(4 * INTERVAL));
    assert_eq!(h.handle_timeout(4 * INTERVAL), None);
    assert_eq!(h.probe_due(4 * INTERVAL).map(|s| s == s1), Some(false));
    assert_eq!(h.status(4 * INTERVAL).probes_sent, 3);
}

#[test]
fn a_probe_timeout_is_a_failure_even_if_408_is_alive() {
    let alive = CodeSet::parse(&["2xx", "408"]).expect("valid");
    let mut p = Probed::new(ProbeCfg {
        down_after: 1,
        up_after: 1,
        alive,
        ..cfg(ProbeMode::All)
    });
    assert_eq!(p.time_out(), down(Why::ProbeTimeout, TIMEOUT));
    // A received 408 is in the set: alive.
    assert_eq!(p.reply(408), up(Why::Reply(408), INTERVAL + 10));
    // With the default set a received 408 is a failure.
    let mut d = Probed::new(ProbeCfg {
        down_after: 1,
        ..cfg(ProbeMode::All)
    });
    assert_eq!(d.reply(408), down(Why::Reply(408), 10));
}

#[test]
fn default_alive_set_is_any_answer_but_5xx_6xx_and_408() {
    let set = ProbeCfg::default().alive;
    for code in [200, 202, 302, 400, 403, 404, 405, 407, 480, 499] {
        assert!(set.contains(code), "{code} is alive");
    }
    for code in [100, 180, 408, 500, 503, 599, 600, 603, 699, 700, 0] {
        assert!(!set.contains(code), "{code} is not alive");
    }
}

#[test]
fn inactive_probes_only_while_down() {
    let h = Health::new(ProbeCfg {
        mode: ProbeMode::Inactive,
        ..ProbeCfg::default()
    });
    for t in [0, INTERVAL, 10 * INTERVAL] {
        assert_eq!(h.probe_due(t), None, "up: no probe at {t}");
    }
    assert_eq!(h.poll_timeout(), None);
    let t0 = 100_000;
    assert_eq!(
        h.passive_failure(Why::TransportError, t0),
        down(Why::TransportError, t0)
    );
    assert_eq!(h.poll_timeout(), Some(0), "never probed: due at once");
    let seq = h.probe_due(t0).expect("probing starts once down");
    assert_eq!(h.probe_reply(seq, 200, t0 + 10), None);
    assert!(!h.available(t0 + 10));
    assert_eq!(h.probe_due(t0 + INTERVAL - 1), None);
    let seq = h.probe_due(t0 + INTERVAL).expect("second probe");
    assert_eq!(
        h.probe_reply(seq, 200, t0 + INTERVAL + 10),
        up(Why::Reply(200), t0 + INTERVAL + 10)
    );
    assert!(h.available(t0 + INTERVAL + 10));
    for t in [2, 3, 10].map(|k| t0 + k * INTERVAL) {
        assert_eq!(h.probe_due(t), None, "back up: probes stop ({t})");
    }
    assert_eq!(h.poll_timeout(), None);
}

#[test]
fn probing_on_a_passive_failure_stays_down_until_probes_succeed() {
    let h = Health::new(cfg(ProbeMode::All));
    assert_eq!(h.passive_failure(Why::Timeout, 50), down(Why::Timeout, 50));
    // No hold with probing on: time alone never brings it back.
    assert!(!h.available(50 + 10 * HOLD));
    assert_eq!(h.handle_timeout(50 + 10 * HOLD), None);
    assert_eq!(h.status(0).held_until_ms, None);
    let t = 50 + 10 * HOLD;
    let seq = h.probe_due(t).expect("due");
    assert_eq!(h.probe_reply(seq, 200, t), None);
    let seq = h.probe_due(t + INTERVAL).expect("due");
    assert_eq!(
        h.probe_reply(seq, 200, t + INTERVAL),
        up(Why::Reply(200), t + INTERVAL)
    );
}

#[test]
fn a_passive_failure_during_recovery_starts_it_over() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    p.h.passive_failure(Why::TransportError, 0);
    assert_eq!(p.reply(200), None);
    assert_eq!(p.h.passive_failure(Why::TransportError, p.now), None);
    assert_eq!(p.reply(200), None, "the earlier success no longer counts");
    assert!(p.reply(200).is_some());
}

#[test]
fn off_mode_holds_a_passive_failure_then_comes_back() {
    let h = Health::new(cfg(ProbeMode::Off));
    assert_eq!(h.probe_due(0), None);
    assert_eq!(h.poll_timeout(), None);
    let t0 = 1000;
    assert_eq!(
        h.passive_failure(Why::TransportError, t0),
        down(Why::TransportError, t0)
    );
    assert!(!h.available(t0));
    assert!(!h.available(t0 + HOLD - 1));
    assert_eq!(h.status(t0).held_until_ms, Some(t0 + HOLD));
    assert_eq!(h.poll_timeout(), Some(t0 + HOLD));
    assert_eq!(h.handle_timeout(t0 + HOLD - 1), None);
    assert_eq!(h.probe_due(t0 + 10), None, "never probed");
    // Available by the clock alone, before anyone reports the change...
    assert!(h.available(t0 + HOLD));
    assert!(h.is_up(t0 + HOLD));
    // ...which comes once, dated when the hold ran out.
    let late = t0 + HOLD + 700;
    assert_eq!(h.handle_timeout(late), up(Why::HoldEnded, t0 + HOLD));
    assert_eq!(h.handle_timeout(late), None);
    assert_eq!(h.poll_timeout(), None);
    assert_eq!(h.status(late).changes, 2);
}

#[test]
fn off_mode_a_failure_during_a_hold_extends_it() {
    let h = Health::new(cfg(ProbeMode::Off));
    assert!(h.passive_failure(Why::Timeout, 0).is_some());
    assert_eq!(h.passive_failure(Why::Timeout, 10_000), None);
    assert!(!h.available(HOLD));
    assert_eq!(h.handle_timeout(HOLD), None);
    assert!(h.available(10_000 + HOLD));
    assert_eq!(
        h.handle_timeout(10_000 + HOLD),
        up(Why::HoldEnded, 10_000 + HOLD)
    );
}

#[test]
fn retry_after_is_an_out_of_service_window_not_a_health_change() {
    let h = Health::new(cfg(ProbeMode::Off));
    h.retry_after(30, 1000);
    assert!(!h.available(1000));
    assert!(!h.available(30_999));
    assert!(h.is_up(1000), "health untouched");
    let s = h.status(2000);
    assert_eq!(s.out_until_ms, Some(31_000));
    assert_eq!(s.reason, Some(Why::RetryAfter(30)));
    assert_eq!(s.since_ms, Some(1000));
    assert_eq!(s.changes, 0);
    assert!(s.up && !s.available);
    assert!(h.available(31_000));
    assert_eq!(h.status(31_000).out_until_ms, None);
    // A Retry-After does not make an Inactive target probed either.
    let i = Health::new(cfg(ProbeMode::Inactive));
    i.retry_after(30, 0);
    assert_eq!(i.probe_due(0), None);
}

#[test]
fn admin_down_drain_and_up() {
    let h = Health::new(cfg(ProbeMode::All));
    let seq = h.probe_due(0).expect("due");
    h.set_admin(AdminState::Down, 10);
    assert!(!h.available(10));
    assert!(h.is_up(10));
    // The outstanding probe was dropped: its reply is stale.
    assert_eq!(h.probe_reply(seq, 503, 20), None);
    assert_eq!(h.status(20).failures, 0);
    for t in [INTERVAL, 10 * INTERVAL] {
        assert_eq!(h.probe_due(t), None, "admin Down: not probed");
    }
    assert_eq!(h.poll_timeout(), None);
    let s = h.status(100);
    assert_eq!(
        (s.admin, s.reason, s.since_ms),
        (AdminState::Down, Some(Why::Admin), Some(10))
    );

    h.set_admin(AdminState::Drain, 20 * INTERVAL);
    assert!(!h.available(20 * INTERVAL));
    assert!(h.probe_due(20 * INTERVAL).is_some(), "Drain: still probed");

    h.set_admin(AdminState::Up, 21 * INTERVAL);
    assert!(h.available(21 * INTERVAL));
    assert_eq!(h.status(21 * INTERVAL).changes, 0, "no health change");
}

#[test]
fn admin_up_does_not_override_health() {
    let h = Health::new(ProbeCfg {
        down_after: 1,
        ..cfg(ProbeMode::All)
    });
    h.set_admin(AdminState::Drain, 0);
    let seq = h.probe_due(0).expect("due");
    assert!(h.probe_reply(seq, 503, 5).is_some());
    h.set_admin(AdminState::Up, 10);
    assert!(!h.available(10), "still down by health");
}

#[test]
fn change_and_status_carry_reason_time_and_counts() {
    let mut p = Probed::new(ProbeCfg {
        down_after: 2,
        up_after: 1,
        ..cfg(ProbeMode::All)
    });
    p.reply(200);
    p.reply(503);
    let change = p.time_out().expect("second failure: down");
    assert_eq!(change.why, Why::ProbeTimeout);
    assert_eq!(change.at_ms, 2 * INTERVAL + TIMEOUT);
    assert!(!change.up);
    let s = p.h.status(p.now);
    assert_eq!(s.reason, Some(Why::ProbeTimeout));
    assert_eq!(s.since_ms, Some(2 * INTERVAL + TIMEOUT));
    assert_eq!(s.last_code, Some(503), "the last received code");
    assert_eq!((s.failures, s.successes), (2, 0));
    assert_eq!((s.probes_sent, s.probes_failed, s.changes), (3, 2, 1));
    assert!(!s.up && !s.available);

    let change = p.reply(302).expect("up_after 1");
    assert_eq!(
        change,
        Change {
            up: true,
            why: Why::Reply(302),
            at_ms: 3 * INTERVAL + 10
        }
    );
    let s = p.h.status(p.now);
    assert_eq!(
        (s.reason, s.since_ms),
        (Some(Why::Reply(302)), Some(3 * INTERVAL + 10))
    );
    assert_eq!((s.last_code, s.failures, s.successes), (Some(302), 0, 1));
    assert_eq!((s.probes_sent, s.probes_failed, s.changes), (4, 2, 2));
    assert!(s.up && s.available);
}

#[test]
fn a_passive_success_resets_the_failure_count() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    p.reply(503);
    p.reply(503);
    p.h.passive_success();
    assert_eq!(p.h.status(p.now).failures, 0);
    assert_eq!(p.reply(503), None);
    assert_eq!(p.reply(503), None);
    assert!(p.reply(503).is_some());
    // While down it changes nothing.
    p.h.passive_success();
    assert!(!p.h.available(p.now));
    assert_eq!(p.h.status(p.now).successes, 0);
}

#[test]
fn a_reload_keeps_state_and_applies_new_thresholds() {
    let mut p = Probed::new(cfg(ProbeMode::All));
    p.reply(503);
    p.reply(503);
    p.h.set_cfg(
        ProbeCfg {
            down_after: 5,
            ..cfg(ProbeMode::All)
        },
        p.now,
    );
    assert_eq!(p.h.status(p.now).failures, 2, "counts kept");
    assert_eq!(p.reply(503), None);
    assert_eq!(p.reply(503), None);
    assert!(p.reply(503).is_some(), "fifth failure");
}

#[test]
fn turning_probing_off_holds_a_probed_down_target() {
    let mut p = Probed::new(ProbeCfg {
        down_after: 1,
        ..cfg(ProbeMode::All)
    });
    let seq = p.h.probe_due(0).expect("due");
    assert!(p.h.probe_reply(seq, 503, 0).is_some());
    p.now = INTERVAL;
    let seq = p.h.probe_due(p.now).expect("due");
    p.h.set_cfg(cfg(ProbeMode::Off), p.now);
    // The outstanding probe went with probing.
    assert_eq!(p.h.probe_reply(seq, 200, p.now + 1), None);
    assert!(!p.h.available(p.now + HOLD - 1));
    assert_eq!(p.h.poll_timeout(), Some(p.now + HOLD));
    assert_eq!(
        p.h.handle_timeout(p.now + HOLD),
        up(Why::HoldEnded, p.now + HOLD)
    );
}

#[test]
fn zero_thresholds_act_as_one() {
    let mut p = Probed::new(ProbeCfg {
        down_after: 0,
        up_after: 0,
        ..cfg(ProbeMode::All)
    });
    assert_eq!(p.reply(200), None, "already up");
    assert!(p.reply(503).is_some());
    assert!(p.reply(200).is_some());
}

#[test]
fn code_set_parsing() {
    let set = CodeSet::parse(&["2xx", "404"]).expect("valid");
    assert!(set.contains(200) && set.contains(299) && set.contains(404));
    assert!(!set.contains(300) && !set.contains(403) && !set.contains(503));
    let set = CodeSet::parse(&["4XX", "!408", " 200 "]).expect("valid");
    assert!(set.contains(404) && set.contains(200) && !set.contains(408));
    assert_eq!(
        CodeSet::parse(&["2xx", "3xx", "4xx", "!408"]),
        Ok(CodeSet::any_answer())
    );
    let owned: Vec<String> = vec!["503".into()];
    assert!(CodeSet::parse(&owned).expect("valid").contains(503));
    for bad in [
        "2x", "999", "abc", "", "20", "2000", "1xx", "180", "7xx", "700", "099", "x2x", "!",
        "!!2xx", "+200", "2x0",
    ] {
        let err = CodeSet::parse(&[bad]).expect_err(bad);
        assert!(err.contains(&format!("{:?}", bad.trim())), "{bad}: {err}");
    }
    assert!(CodeSet::parse::<&str>(&[]).is_err(), "empty");
    assert!(CodeSet::parse(&["404", "!4xx"]).is_err(), "nothing left");
}

#[test]
fn why_describes_itself() {
    let cases = [
        (Why::Reply(503), "reply 503"),
        (Why::ProbeTimeout, "probe timeout (local 408)"),
        (Why::TransportError, "transport error"),
        (Why::Timeout, "timeout"),
        (Why::RetryAfter(30), "retry-after 30 s"),
        (Why::HoldEnded, "passive hold ended"),
        (Why::Admin, "admin"),
    ];
    for (why, text) in cases {
        assert_eq!(why.describe(), text);
    }
}

#[test]
fn shared_across_threads() {
    fn sync_send<T: Sync + Send>() {}
    sync_send::<Health>();

    let h = std::sync::Arc::new(Health::new(ProbeCfg {
        down_after: 2,
        up_after: 2,
        ..cfg(ProbeMode::All)
    }));
    const CYCLES: u64 = 500;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let h = h.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let (mut seen_up, mut reads) = (0u64, 0u64);
                // Bounded even if the writer never signals.
                while !stop.load(Ordering::Relaxed) && reads < 50_000_000 {
                    seen_up += u64::from(h.available(u64::MAX / 2));
                    reads += 1;
                }
                (seen_up, reads)
            })
        })
        .collect();
    // The probing shard sends; another thread handles the replies.
    let (to_replier, replies) = std::sync::mpsc::channel::<(u32, u16, u64)>();
    let replier = {
        let h = h.clone();
        std::thread::spawn(move || {
            let mut changes = Vec::new();
            for (seq, code, now) in replies {
                changes.extend(h.probe_reply(seq, code, now));
            }
            changes
        })
    };
    let mut now = 0;
    for _ in 0..CYCLES {
        for code in [503, 503, 200, 200] {
            // The reply must be handled before the next probe is due.
            let mut spins = 0u64;
            let seq = loop {
                if let Some(seq) = h.probe_due(now) {
                    break seq;
                }
                spins += 1;
                assert!(spins < 10_000_000, "the previous reply was never handled");
                std::thread::yield_now();
            };
            to_replier.send((seq, code, now + 1)).expect("replier runs");
            now += INTERVAL;
        }
    }
    drop(to_replier);
    let changes = replier.join().expect("replier");
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        let (seen_up, n) = r.join().expect("reader");
        assert!(seen_up <= n);
        reads += n;
    }
    assert!(reads > 0);
    assert_eq!(changes.len() as u64, 2 * CYCLES);
    assert!(changes.chunks(2).all(|c| !c[0].up && c[1].up));
    let s = h.status(now);
    assert_eq!((s.changes, s.probes_sent), (2 * CYCLES, 4 * CYCLES));
    assert!(s.available);
}
