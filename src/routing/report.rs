//! The routing table as the operator sees it: JSON for the admin API
//! (sets, targets, their state and why) and the Prometheus series of
//! routes and targets.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use super::health::{AdminState, Status};
use super::stats::label;
use super::{Routing, Set, SetTarget};
use crate::metrics::json;

/// Every destination set: `{"generation": n, "sets": [...]}`.
pub fn sets_json(routing: &Routing, now_ms: u64) -> String {
    let sets: Vec<String> = routing.sets.iter().map(|s| set_json(s, now_ms)).collect();
    format!(
        "{{\"generation\":{},\"sets\":[{}]}}\n",
        routing.generation,
        sets.join(",")
    )
}

/// One set: its algorithm, whether any target can take a call, and its
/// targets.
pub fn set_json(set: &Set, now_ms: u64) -> String {
    let targets: Vec<String> = set.targets.iter().map(|t| target_json(t, now_ms)).collect();
    let available = set.targets.iter().any(|t| t.health.available(now_ms));
    format!(
        "{{\"name\":{},\"algorithm\":{},\"available\":{available},\"cps\":{},\"limited\":{},{},\"targets\":[{}]}}",
        json::string(&set.cfg.name),
        json::string(set.cfg.algorithm.name()),
        set.cfg.limit.map_or("null".to_string(), |l| l.cps.to_string()),
        limited(set.limit.as_ref()),
        calls_json(set.calls.as_deref()),
        targets.join(",")
    )
}

fn admin_name(a: AdminState) -> &'static str {
    match a {
        AdminState::Up => "up",
        AdminState::Down => "down",
        AdminState::Drain => "drain",
    }
}

/// One target: configuration, health (and the reason for it), load and
/// counters. Times are milliseconds ago (`*_ms_ago`) or from now.
pub fn target_json(t: &SetTarget, now_ms: u64) -> String {
    let s: Status = t.health.status(now_ms);
    let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    let state = if s.admin != AdminState::Up {
        admin_name(s.admin)
    } else if !s.up {
        "down"
    } else if s.available {
        "up"
    } else {
        "out"
    };
    let st = &t.stats;
    format!(
        "{{\"uri\":{},\"weight\":{},\"priority\":{},\"max_load\":{},{},\"state\":\"{state}\",\"admin\":\"{}\",\"healthy\":{},\"available\":{},\"reason\":{},\"last_code\":{},\"since_ms_ago\":{},\"out_for_ms\":{},\"active\":{},\"requests\":{},\"responses\":{{{}}},\"failovers\":{},\"probes\":{},\"probes_failed\":{},\"changes\":{}}}",
        json::string(&t.cfg.uri),
        t.cfg.weight,
        t.cfg.priority,
        t.cfg.max_load,
        calls_json(t.calls.as_deref()),
        admin_name(s.admin),
        s.up,
        s.available,
        s.reason.map_or("null".to_string(), |w| json::string(&w.describe())),
        s.last_code.map_or("null".to_string(), |c| c.to_string()),
        opt(s.since_ms.map(|t| now_ms.saturating_sub(t))),
        opt(s.out_until_ms.map(|t| t.saturating_sub(now_ms))),
        st.load(),
        st.requests.load(Ordering::Relaxed),
        by_class(&st.responses),
        st.failovers.load(Ordering::Relaxed),
        s.probes_sent,
        s.probes_failed,
        s.changes,
    )
}

/// `[{"name": …, "matched": n}, …]` in rule order.
pub fn routes_json(routing: &Routing) -> String {
    let routes: Vec<String> = routing
        .routes
        .iter()
        .map(|r| {
            format!(
                "{{\"name\":{},\"matched\":{},\"limited\":{},{},\"responses\":{{{}}}}}",
                json::string(&r.cfg.name),
                r.matched.load(Ordering::Relaxed),
                limited(r.limit.as_ref()),
                calls_json(r.calls.as_deref()),
                by_class(&r.responses)
            )
        })
        .collect();
    format!("[{}]", routes.join(","))
}

/// `"calls":n,"max_calls":m,"calls_limited":k` (nulls and 0 without a
/// `max_calls`).
fn calls_json(c: Option<&crate::routing::calls::CallCount>) -> String {
    match c {
        None => "\"calls\":null,\"max_calls\":null,\"calls_limited\":0".to_string(),
        Some(c) => format!(
            "\"calls\":{},\"max_calls\":{},\"calls_limited\":{}",
            c.active.load(Ordering::Relaxed),
            c.max.load(Ordering::Relaxed),
            c.limited.load(Ordering::Relaxed)
        ),
    }
}

/// Calls refused by a `cps` limit (0 without one).
fn limited(b: Option<&crate::routing::limit::Bucket>) -> u64 {
    b.map_or(0, |b| b.limited.load(Ordering::Relaxed))
}

/// The Prometheus series of routes and targets (HELP and TYPE once per
/// family).
pub fn metrics(routing: &Routing, now_ms: u64, out: &mut String) {
    let routes = routing.routes.iter().map(|r| (&r.cfg.name, &r.limit));
    let sets = routing.sets.iter().map(|s| (&s.cfg.name, &s.limit));
    for (name, key, what, of) in [
        (
            "siphon_route_limited_total",
            "route",
            "a route",
            routes.collect::<Vec<_>>(),
        ),
        (
            "siphon_set_limited_total",
            "set",
            "a destination set",
            sets.collect(),
        ),
    ] {
        let help = format!("new calls {what} refused with 503 for its cps limit");
        family(out, name, "counter", &help);
        for (n, limit) in of {
            let _ = writeln!(
                out,
                "{name}{{{key}=\"{}\"}} {}",
                label(n),
                limited(limit.as_ref())
            );
        }
    }
    // Concurrent calls, for routes and sets with max_calls.
    let routes = routing.routes.iter().map(|r| (&r.cfg.name, &r.calls));
    let sets = routing.sets.iter().map(|s| (&s.cfg.name, &s.calls));
    for (prefix, key, what, of) in [
        (
            "siphon_route",
            "route",
            "a route",
            routes.collect::<Vec<_>>(),
        ),
        ("siphon_set", "set", "a destination set", sets.collect()),
    ] {
        let of: Vec<_> = of
            .into_iter()
            .filter_map(|(n, c)| c.as_ref().map(|c| (n, c)))
            .collect();
        if of.is_empty() {
            continue;
        }
        let help = format!("calls in progress {what} admitted (max_calls)");
        family(out, &format!("{prefix}_calls"), "gauge", &help);
        for (n, c) in &of {
            let v = c.active.load(Ordering::Relaxed);
            let _ = writeln!(out, "{prefix}_calls{{{key}=\"{}\"}} {v}", label(n));
        }
        let help = format!("new calls {what} refused with 503 for its max_calls");
        family(
            out,
            &format!("{prefix}_calls_limited_total"),
            "counter",
            &help,
        );
        for (n, c) in &of {
            let v = c.limited.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "{prefix}_calls_limited_total{{{key}=\"{}\"}} {v}",
                label(n)
            );
        }
    }
    family(
        out,
        "siphon_route_requests_total",
        "counter",
        "requests that matched a route",
    );
    for r in &routing.routes {
        let _ = writeln!(
            out,
            "siphon_route_requests_total{{route=\"{}\"}} {}",
            label(&r.cfg.name),
            r.matched.load(Ordering::Relaxed)
        );
    }
    let name = "siphon_route_responses_total";
    family(
        out,
        name,
        "counter",
        "final responses sent upstream for requests of a route, by class (stateful mode)",
    );
    for r in &routing.routes {
        for (i, c) in r.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{route=\"{}\",class=\"{}xx\"}} {}",
                label(&r.cfg.name),
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
    }
    let targets: Vec<(String, &SetTarget)> = routing
        .sets
        .iter()
        .flat_map(|s| {
            s.targets.iter().map(move |t| {
                (
                    format!(
                        "set=\"{}\",target=\"{}\"",
                        label(&s.cfg.name),
                        label(&t.cfg.uri)
                    ),
                    t,
                )
            })
        })
        .collect();
    type Read = fn(&SetTarget, &Status) -> u64;
    let series: [(&str, &str, &str, Read); 7] = [
        (
            "siphon_target_requests_total",
            "counter",
            "requests sent to a target (new legs)",
            |t, _| t.stats.requests.load(Ordering::Relaxed),
        ),
        (
            "siphon_target_failovers_total",
            "counter",
            "calls that failed over from a target to another",
            |t, _| t.stats.failovers.load(Ordering::Relaxed),
        ),
        (
            "siphon_target_probes_total",
            "counter",
            "OPTIONS probes sent to a target",
            |_, s| s.probes_sent,
        ),
        (
            "siphon_target_probe_failures_total",
            "counter",
            "probes that failed (a reply not counted as alive, or none in time)",
            |_, s| s.probes_failed,
        ),
        (
            "siphon_target_state_changes_total",
            "counter",
            "times a target went down or came back up",
            |_, s| s.changes,
        ),
        (
            "siphon_target_active_calls",
            "gauge",
            "INVITEs to a target waiting for their final response",
            |t, _| u64::from(t.stats.load()),
        ),
        (
            "siphon_target_up",
            "gauge",
            "1 if a target can take new calls now (health, admin state and Retry-After), else 0",
            |_, s| u64::from(s.available),
        ),
    ];
    let status: Vec<Status> = targets
        .iter()
        .map(|(_, t)| t.health.status(now_ms))
        .collect();
    for (name, kind, help, read) in series {
        family(out, name, kind, help);
        for ((labels, t), s) in targets.iter().zip(&status) {
            let _ = writeln!(out, "{name}{{{labels}}} {}", read(t, s));
        }
    }
    let name = "siphon_target_responses_total";
    family(out, name, "counter", "responses from a target, by class");
    for (labels, t) in &targets {
        for (i, c) in t.stats.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}{{{labels},class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
    }
    type Hist = fn(&SetTarget) -> &super::stats::Latency;
    let histograms: [(&str, &str, Hist); 2] = [
        (
            "siphon_target_first_provisional_seconds",
            "time from a request to a target to its first provisional response",
            |t| &t.stats.first_provisional,
        ),
        (
            "siphon_target_final_response_seconds",
            "time from a request to a target to its final response",
            |t| &t.stats.final_response,
        ),
    ];
    for (name, help, hist) in histograms {
        family(out, name, "histogram", help);
        for (labels, t) in &targets {
            hist(t).render(out, name, labels);
        }
    }
}

/// `"1xx":n,…,"6xx":n` from counters by class.
fn by_class(counts: &[AtomicU64; 6]) -> String {
    let parts: Vec<String> = counts
        .iter()
        .enumerate()
        .map(|(i, c)| format!("\"{}xx\":{}", i + 1, c.load(Ordering::Relaxed)))
        .collect();
    parts.join(",")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}.\n# TYPE {name} {kind}");
}
