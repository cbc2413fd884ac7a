//! The compiled routing table: the config's routes and destination sets
//! with what they need at run time (address sets, compiled regexes,
//! prefix tables, the health and counters of every target). Immutable;
//! a reload builds a new one (keeping the health and counters of the
//! targets and routes that remain) and swaps it in whole.

use std::net::IpAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::calls::{CallCount, Calls};
use super::cidr::CidrSet;
use super::health::{Change, Health};
use super::limit::Bucket;
use super::prefix::PrefixTable;
use super::select::{self, Algorithm, HashKey, View};
use super::stats::TargetStats;
use crate::config::{Action, Config, Destination, Route, Target, NO_DESTINATION};
use crate::sip::{HeaderName, Message};

/// The routing table every shard reads.
pub struct Routing {
    /// Counts reloads: shards compare it to know their selection state is
    /// stale.
    pub generation: u64,
    pub routes: Vec<CompiledRoute>,
    pub sets: Vec<Arc<Set>>,
    tables: Vec<Arc<PrefixTable<u32>>>,
    /// Calls in progress on routes and sets with `max_calls`, kept across
    /// reloads.
    pub calls: Arc<Calls>,
}

pub struct CompiledRoute {
    pub cfg: Route,
    source: Option<CidrSet>,
    source_not: Option<CidrSet>,
    header: Option<(HeaderName, String, regex::bytes::Regex)>,
    /// Requests this route matched, and (stateful mode) the final
    /// responses sent for them by class 1xx–6xx; kept across reloads by
    /// route name.
    pub matched: Arc<AtomicU64>,
    pub responses: Arc<[AtomicU64; 6]>,
    /// Its `cps` limit, shared by every shard.
    pub limit: Option<Bucket>,
    /// Its `max_calls` count (kept across reloads by name).
    pub calls: Option<Arc<CallCount>>,
}

/// A destination set with the live state of its targets.
pub struct Set {
    /// Its index in `Routing::sets`.
    pub index: usize,
    /// A stable hash of its name (named in our probes' branches).
    pub id: u64,
    pub cfg: Destination,
    pub targets: Vec<SetTarget>,
    /// Its `cps` limit, shared by every shard.
    pub limit: Option<Bucket>,
    /// Its `max_calls` count (kept across reloads by name).
    pub calls: Option<Arc<CallCount>>,
}

pub struct SetTarget {
    pub cfg: Target,
    /// A stable hash of the URI (consistent hashing).
    pub id: u64,
    pub health: Arc<Health>,
    pub stats: Arc<TargetStats>,
    /// Its `cps` limit, shared by every shard.
    pub limit: Option<Bucket>,
    /// Its `max_calls` count (kept across reloads by set and URI).
    pub calls: Option<Arc<CallCount>>,
}

impl SetTarget {
    /// Log and count a health change of this target (of set `set`).
    pub fn note(&self, set: &str, change: Option<Change>) {
        let Some(c) = change else { return };
        let why = c.why.describe();
        if c.up {
            tracing::info!(set, target = %self.cfg.uri, reason = %why, "target up ({why})");
        } else {
            tracing::warn!(set, target = %self.cfg.uri, reason = %why, "target down ({why})");
        }
    }
}

/// What the routing table says to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send it to this destination set.
    Set(usize),
    Location,
    Reply(u16, String),
    Drop,
}

/// What a route looks at in a request.
pub struct Request<'a> {
    pub msg: &'a Message,
    /// The Request-URI host, lowercase.
    pub host: &'a str,
    /// The Request-URI user, unescaped.
    pub user: Option<&'a [u8]>,
    pub source: IpAddr,
}

impl Routing {
    /// Compile `cfg`'s routing. Targets (by set name and URI) and routes
    /// (by name) that `prev` has keep their health and counters; a
    /// target's probe settings become the new ones.
    pub fn build(
        cfg: &Config,
        prev: Option<&Routing>,
        stripes: usize,
        now_ms: u64,
    ) -> Result<Routing, String> {
        let mut sets = Vec::with_capacity(cfg.destinations.len());
        for (index, d) in cfg.destinations.iter().enumerate() {
            let old = prev.and_then(|p| p.set(&d.name));
            let targets = d
                .targets
                .iter()
                .map(|t| {
                    let kept = old.and_then(|o| o.targets.iter().find(|x| x.cfg.uri == t.uri));
                    let (health, stats) = match kept {
                        Some(k) => {
                            k.health.set_cfg(d.probe.clone(), now_ms);
                            (k.health.clone(), k.stats.clone())
                        }
                        None => (
                            Arc::new(Health::new(d.probe.clone())),
                            Arc::new(TargetStats::new(stripes)),
                        ),
                    };
                    SetTarget {
                        cfg: t.clone(),
                        id: select::hash_key(t.uri.as_bytes()),
                        health,
                        stats,
                        limit: t.limit.map(Bucket::new),
                        calls: call_count(t.max_calls, kept.and_then(|k| k.calls.as_ref())),
                    }
                })
                .collect();
            sets.push(Arc::new(Set {
                index,
                id: select::hash_key(d.name.as_bytes()),
                cfg: d.clone(),
                targets,
                limit: d.limit.map(Bucket::new),
                calls: call_count(d.max_calls, old.and_then(|o| o.calls.as_ref())),
            }));
        }
        let mut routes = Vec::with_capacity(cfg.routes.len());
        for r in &cfg.routes {
            let cidrs = |list: &[String]| -> Result<Option<CidrSet>, String> {
                if list.is_empty() {
                    return Ok(None);
                }
                let items: Vec<&str> = list.iter().map(String::as_str).collect();
                CidrSet::parse(&items)
                    .map(Some)
                    .map_err(|e| format!("route {}: {e}", r.name))
            };
            let header = match &r.matcher.header {
                None => None,
                Some(h) => {
                    let re = regex::bytes::Regex::new(&h.regex)
                        .map_err(|e| format!("route {}: {e}", r.name))?;
                    Some((
                        HeaderName::from_bytes(h.name.as_bytes()),
                        h.name.clone(),
                        re,
                    ))
                }
            };
            let old = prev.and_then(|p| p.routes.iter().find(|x| x.cfg.name == r.name));
            let matched = old.map_or_else(|| Arc::new(AtomicU64::new(0)), |x| x.matched.clone());
            let responses =
                old.map_or_else(|| Arc::new(Default::default()), |x| x.responses.clone());
            routes.push(CompiledRoute {
                cfg: r.clone(),
                source: cidrs(&r.matcher.source)?,
                source_not: cidrs(&r.matcher.source_not)?,
                header,
                matched,
                responses,
                limit: r.limit.map(Bucket::new),
                calls: call_count(r.max_calls, old.and_then(|x| x.calls.as_ref())),
            });
        }
        Ok(Routing {
            generation: prev.map_or(0, |p| p.generation + 1),
            routes,
            sets,
            tables: cfg.prefix_tables.iter().map(|t| t.table.clone()).collect(),
            calls: prev.map_or_else(Default::default, |p| p.calls.clone()),
        })
    }

    pub fn set(&self, name: &str) -> Option<&Arc<Set>> {
        self.sets.iter().find(|s| s.cfg.name == name)
    }

    /// The index of the first route that matches `req` (rules in
    /// order), and what it says to do. Not counted here: the caller counts
    /// a request once (a failover routes it again).
    pub fn decide(&self, req: &Request<'_>) -> Option<(usize, Decision)> {
        self.routes
            .iter()
            .enumerate()
            .find_map(|(i, r)| self.try_route(r, req).map(|d| (i, d)))
    }

    fn try_route(&self, r: &CompiledRoute, req: &Request<'_>) -> Option<Decision> {
        let m = &r.cfg.matcher;
        if !m.domain.is_empty() && !m.domain.iter().any(|d| d == req.host) {
            return None;
        }
        if !m.method.is_empty()
            && !m
                .method
                .iter()
                .any(|x| x.as_bytes() == req.msg.method_bytes())
        {
            return None;
        }
        if !m.user_prefix.is_empty() {
            let user = req.user?;
            if !m.user_prefix.iter().any(|p| user.starts_with(p.as_bytes())) {
                return None;
            }
        }
        if r.source.as_ref().is_some_and(|s| !s.contains(req.source)) {
            return None;
        }
        if r.source_not
            .as_ref()
            .is_some_and(|s| s.contains(req.source))
        {
            return None;
        }
        if let Some((known, name, re)) = &r.header {
            let hit = req.msg.headers().any(|h| {
                let same = if *known == HeaderName::Other {
                    h.name == HeaderName::Other
                        && h.name_bytes.eq_ignore_ascii_case(name.as_bytes())
                } else {
                    h.name == *known
                };
                same && re.is_match(h.value)
            });
            if !hit {
                return None;
            }
        }
        let from_table = match m.prefix_table {
            None => None,
            Some(t) => {
                let (_, v) = self.tables.get(t)?.lookup(req.user?)?;
                Some(v)
            }
        };
        Some(match &r.cfg.action {
            Action::Destination(d) => Decision::Set(*d),
            // An entry without a destination does not route by itself.
            Action::FromTable => match from_table {
                Some(v) if v != NO_DESTINATION => Decision::Set(v as usize),
                _ => return None,
            },
            Action::Location => Decision::Location,
            Action::Reply(code, reason) => Decision::Reply(*code, reason.clone()),
            Action::Drop => Decision::Drop,
        })
    }
}

/// The count of a `max_calls` limit: the one of the same name before a
/// reload (its calls in progress still count), with the new limit.
fn call_count(max: Option<u32>, old: Option<&Arc<CallCount>>) -> Option<Arc<CallCount>> {
    let max = max?;
    Some(match old {
        Some(o) => {
            o.max.store(max, std::sync::atomic::Ordering::Relaxed);
            o.clone()
        }
        None => CallCount::new(max),
    })
}

/// One shard's selection state: a [`select::State`] per destination set
/// of the routing generation it was made for.
pub struct Picker {
    generation: u64,
    states: Vec<select::State>,
    views: Vec<View>,
    seed: u64,
}

impl Picker {
    pub fn new(seed: u64) -> Picker {
        Picker {
            generation: u64::MAX,
            states: Vec::new(),
            views: Vec::new(),
            seed,
        }
    }

    /// The targets of set `set` to try for a request, in order (the first
    /// is the pick), into `out`; only those available now and under their
    /// max_load, and for a `new_call` (an initial INVITE a route admitted)
    /// under their cps and max_calls. When none is, the set's fallback set
    /// is used, and so on. Returns the set the order is for.
    pub fn order(
        &mut self,
        routing: &Routing,
        set: usize,
        msg: &Message,
        now_ms: u64,
        new_call: bool,
        out: &mut Vec<usize>,
    ) -> usize {
        if self.generation != routing.generation {
            self.generation = routing.generation;
            self.states = routing
                .sets
                .iter()
                .enumerate()
                .map(|(i, s)| select::State::new(s.targets.len(), self.seed ^ (i as u64 + 1)))
                .collect();
        }
        // A target's limits (cps, max_calls) are for new calls only.
        let mut at = set;
        // Bounded: config validation refuses fallback cycles.
        for _ in 0..=routing.sets.len() {
            let s = &routing.sets[at];
            self.views.clear();
            self.views.extend(s.targets.iter().map(|t| View {
                weight: t.cfg.weight,
                priority: t.cfg.priority,
                available: t.health.available(now_ms),
                load: t.stats.load(),
                max_load: t.cfg.max_load,
                ready: !new_call
                    || (t.limit.as_ref().is_none_or(|b| b.ready(now_ms))
                        && t.calls.as_ref().is_none_or(|c| c.has_room())),
                id: t.id,
            }));
            let key = match s.cfg.algorithm {
                Algorithm::Hash(k) => hash_of(msg, k),
                _ => 0,
            };
            select::order(s.cfg.algorithm, &self.views, &mut self.states[at], key, out);
            out.truncate(s.cfg.max_attempts);
            match s.cfg.fallback {
                Some(f) if out.is_empty() => at = f,
                _ => return at,
            }
        }
        at
    }
}

/// The hash of the part of `msg` a hash set keys on (an empty user when
/// there is none: such requests all go the same way).
fn hash_of(msg: &Message, k: HashKey) -> u64 {
    let user = |a: Result<crate::sip::addr::NameAddr<'_>, _>| -> u64 {
        let a = a.ok();
        let u = a.as_ref().and_then(|a| a.uri().ok()).and_then(|u| u.user);
        select::hash_key(u.unwrap_or_default())
    };
    match k {
        HashKey::CallId => select::hash_key(msg.call_id()),
        HashKey::FromUser => user(msg.from()),
        HashKey::ToUser => user(msg.to()),
        HashKey::RuriUser => {
            let u = msg.request_uri().ok().and_then(|u| u.user);
            select::hash_key(u.unwrap_or_default())
        }
    }
}
