use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::*;
use crate::config::Config;

fn cfg(extra: &str) -> GuardCfg {
    let text = format!("[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[acl]\ntrunks = [\"192.0.2.0/24\"]\n[guard]\n{extra}");
    Config::parse(&text, Path::new("t.toml"))
        .unwrap()
        .guard
        .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn a_source_over_max_requests_in_a_window_is_banned_for_ban_s() {
    let bans = Arc::new(Bans::new(10));
    let mut g = Guard::new(
        &cfg("max_requests = 3\nwindow_ms = 1000\nban_s = 60\n"),
        bans.clone(),
    );
    let a = ip("198.51.100.1");
    for t in 0..3 {
        assert!(!g.request(a, t), "request {t}");
    }
    assert!(!g.banned(a, 3));
    assert!(g.request(a, 3), "the fourth in the window");
    assert!(g.banned(a, 4) && g.banned(a, 60_002));
    assert!(!g.banned(a, 60_003), "the ban ends");
    assert!(!g.banned(ip("198.51.100.2"), 4), "others are not banned");
    assert_eq!(g.stats.flood_bans, 1);
    assert_eq!(bans.flood_bans.load(Ordering::Relaxed), 1);
    let list = bans.list(10);
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].0, list[0].1.reason), (a, BanReason::Flood));
    assert_eq!(
        list[0].1.hits.load(Ordering::Relaxed),
        3,
        "the requests refused"
    );
}

#[test]
fn a_new_window_starts_the_count_again() {
    let mut g = Guard::new(
        &cfg("max_requests = 3\nwindow_ms = 1000\n"),
        Arc::new(Bans::new(10)),
    );
    let a = ip("198.51.100.1");
    for t in [0, 1, 2, 1000, 1001, 1002, 2000] {
        assert!(!g.request(a, t), "at {t}");
    }
}

#[test]
fn exempt_sources_are_never_counted() {
    let mut g = Guard::new(
        &cfg("max_requests = 1\nexempt = [\"trunks\", \"10.0.0.1\"]\n"),
        Arc::new(Bans::new(10)),
    );
    for who in ["192.0.2.77", "10.0.0.1", "::ffff:192.0.2.5"] {
        for t in 0..10 {
            assert!(!g.request(ip(who), t), "{who}");
            assert!(!g.auth_failed(ip(who), t), "{who}");
        }
    }
    assert!(!g.request(ip("10.0.0.2"), 0));
    assert!(g.request(ip("10.0.0.2"), 1));
}

#[test]
fn the_source_table_is_bounded_and_a_mapped_address_is_its_ipv4() {
    let mut g = Guard::new(
        &cfg("max_requests = 1\nmax_sources = 16\n"),
        Arc::new(Bans::new(100)),
    );
    for i in 0..16u8 {
        assert!(!g.request(IpAddr::from([203, 0, 113, i]), 0));
    }
    // Full: a new source is not counted (and not banned) this window.
    for _ in 0..5 {
        assert!(!g.request(ip("203.0.113.200"), 1));
    }
    assert_eq!(g.stats.untracked, 5);
    // A known one still is; its IPv4-mapped form is the same source.
    assert!(g.request(ip("::ffff:203.0.113.3"), 2));
    assert!(g.banned(ip("203.0.113.3"), 3));
    // The next window has room again.
    assert!(!g.request(ip("203.0.113.200"), 2001));
}

#[test]
fn failed_authentications_ban_after_auth_failures() {
    let bans = Arc::new(Bans::new(10));
    let mut g = Guard::new(
        &cfg("auth_failures = 3\nauth_window_s = 10\nauth_ban_s = 5\n"),
        bans.clone(),
    );
    let a = ip("198.51.100.9");
    assert!(!g.auth_failed(a, 0));
    assert!(!g.auth_failed(a, 1));
    assert!(g.auth_failed(a, 2));
    assert!(g.banned(a, 3) && !g.banned(a, 5_002));
    assert_eq!(bans.list(3)[0].1.reason, BanReason::Auth);
    assert_eq!(g.stats.auth_bans, 1);
    // Failures spread over more than a window do not add up.
    let b = ip("198.51.100.10");
    for t in [0, 1, 10_000, 10_001, 20_000, 20_001] {
        assert!(!g.auth_failed(b, t), "at {t}");
    }
}

#[test]
fn the_ban_table_is_bounded_swept_and_lifted() {
    let bans = Bans::new(2);
    assert!(bans.ban(ip("192.0.2.1"), BanReason::Flood, 0, 100));
    assert!(
        !bans.ban(ip("192.0.2.1"), BanReason::Flood, 1, 100),
        "already"
    );
    assert!(bans.ban(ip("192.0.2.2"), BanReason::Auth, 0, 1000));
    assert!(!bans.ban(ip("192.0.2.3"), BanReason::Flood, 0, 100), "full");
    assert_eq!(bans.refused.load(Ordering::Relaxed), 1);
    // An ended ban makes room.
    assert!(bans.ban(ip("192.0.2.3"), BanReason::Flood, 100, 100));
    assert_eq!(bans.list(100).len(), 2);
    assert!(bans.remove(ip("192.0.2.2")));
    assert!(!bans.remove(ip("192.0.2.2")));
    assert!(!bans.check(ip("192.0.2.2"), 101));
    bans.sweep(500);
    assert!(bans.snap.load().is_empty(), "ended bans are forgotten");
}

#[test]
fn an_ended_windows_source_table_is_freed_and_counting_goes_on() {
    let mut g = Guard::new(
        &cfg("max_requests = 3\nwindow_ms = 1000\nauth_failures = 3\nauth_window_s = 10\n"),
        Arc::new(Bans::new(10)),
    );
    // A flood from 5000 addresses, one request each; failures from 2000.
    for i in 0..5000u32 {
        let a = IpAddr::from(std::net::Ipv4Addr::from(0xc633_0000 + i));
        assert!(!g.request(a, 10));
        if i < 2000 {
            assert!(!g.auth_failed(a, 10));
        }
    }
    assert!(g.requests.counts.capacity() >= 5000);
    assert!(!g.shrink_idle(500), "the windows are running");
    assert_eq!(g.requests.counts.len(), 5000);
    assert!(g.shrink_idle(1010), "the request window has ended");
    assert_eq!(g.requests.counts.capacity(), 0);
    assert_eq!(g.failures.counts.len(), 2000, "the failure window runs on");
    assert!(!g.shrink_idle(1020));
    assert!(g.shrink_idle(10_010));
    assert_eq!(g.failures.counts.capacity(), 0);
    // Counting as before.
    let a = ip("198.51.100.1");
    for t in 0..3 {
        assert!(!g.request(a, 20_000 + t));
    }
    assert!(g.request(a, 20_003));
}
