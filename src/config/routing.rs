//! `[[route]]`, `[destination.NAME]`, `[acl]` and `[prefix_table.NAME]`:
//! the carrier routing table as written, validated into types. The
//! routing module compiles it (`crate::routing::Routing`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use toml::Spanned;

use super::raw::{self, OneOrMany};
use super::{lex, ConfigError, Cx, Transport};
use crate::routing::health::{CodeSet, ProbeCfg, ProbeMode};
use crate::routing::prefix::{self, PrefixTable};
use crate::routing::select::{Algorithm, HashKey};
use crate::sip::uri::{Host, Scheme, Uri};

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub matcher: Match,
    pub action: Action,
    /// Applied to the Request-URI user before forwarding.
    pub rewrite: Rewrite,
    /// New calls (initial INVITEs) per second this route admits.
    pub limit: Option<crate::routing::limit::Limit>,
    /// Headers removed, set and added on the requests it forwards.
    pub headers: super::headers::HeaderRules,
    /// Topology hiding for the dialogs and transactions it admits (see
    /// `proxy::topology`).
    pub hide: bool,
    /// Calls in progress it admits at once (see `routing::calls`).
    pub max_calls: Option<u32>,
}

/// What a route does with a request it matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send it to a destination set (index into `Config::destinations`).
    Destination(usize),
    /// Send it to the destination set that the longest matching entry of
    /// the route's prefix table names.
    FromTable,
    /// Look up the Request-URI's AOR in the location service.
    Location,
    /// Answer it with this status and reason phrase.
    Reply(u16, String),
    /// Drop it without an answer (counted).
    Drop,
}

/// Conditions that must all hold; an empty match matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    /// Request-URI host is one of these, compared case-insensitively
    /// (stored lowercase).
    pub domain: Vec<String>,
    /// Request-URI user starts with one of these (byte-exact).
    pub user_prefix: Vec<String>,
    /// Request-URI user has a prefix in this table (index into
    /// `Config::prefix_tables`).
    pub prefix_table: Option<usize>,
    /// The source address is in one of these (ACL names expanded), or in
    /// none of `source_not`.
    pub source: Vec<String>,
    pub source_not: Vec<String>,
    /// Request method, exactly (methods are case-sensitive).
    pub method: Vec<String>,
    /// A header whose value matches a regular expression.
    pub header: Option<HeaderMatch>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMatch {
    /// The header's name as written (compared case-insensitively, compact
    /// forms included).
    pub name: String,
    /// Checked to compile at load; compiled again by the routing table.
    pub regex: String,
}

/// Request-URI user rewriting: `strip` leading characters, then
/// `prepend`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rewrite {
    pub strip: usize,
    pub prepend: String,
}

impl Rewrite {
    pub fn is_none(&self) -> bool {
        self.strip == 0 && self.prepend.is_empty()
    }
}

/// A prefix table loaded from its file: prefix → destination set index
/// (`NO_DESTINATION` for a line without one).
#[derive(Clone)]
pub struct PrefixTableCfg {
    pub name: String,
    pub file: PathBuf,
    pub table: Arc<PrefixTable<u32>>,
}

/// The value of a prefix table entry that names no destination set.
pub const NO_DESTINATION: u32 = u32::MAX;

impl fmt::Debug for PrefixTableCfg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrefixTable {} ({}, {} entries)",
            self.name,
            self.file.display(),
            self.table.len()
        )
    }
}

impl PartialEq for PrefixTableCfg {
    /// Tables loaded separately differ (a reload reloads the file).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && Arc::ptr_eq(&self.table, &other.table)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Destination {
    pub name: String,
    pub targets: Vec<Target>,
    /// How the first target (and the failover order) is chosen.
    pub algorithm: Algorithm,
    /// Stateful mode: one target at a time, or all at once.
    pub fork: Fork,
    /// Stateful mode: final responses after which the next target is tried
    /// (a timeout or transport error always counts as 408).
    pub failover_codes: Vec<u16>,
    /// Stateful mode: at most this many targets per request (serial).
    pub max_attempts: usize,
    /// When every target is down: this set instead (else 503).
    pub fallback: Option<usize>,
    /// OPTIONS probing and passive health.
    pub probe: ProbeCfg,
    /// New calls (initial INVITEs) per second sent to this set.
    pub limit: Option<crate::routing::limit::Limit>,
    /// Headers removed, set and added on the requests sent to it.
    pub headers: super::headers::HeaderRules,
    /// Calls in progress sent to it at once (see `routing::calls`).
    pub max_calls: Option<u32>,
}

/// How a stateful proxy uses the targets of a destination set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// One target at a time in the algorithm's order; the next one after
    /// a failover code, a timeout or a transport error.
    Serial,
    /// Every target at once (RFC 3261 §16.6 parallel search).
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URI as written, e.g. `sip:10.0.0.5:5060;transport=tcp`.
    pub uri: String,
    /// Host, lowercase (an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    pub transport: Transport,
    pub weight: u32,
    /// Lower first (priority algorithm).
    pub priority: u32,
    /// Calls in setup at once; 0: no limit.
    pub max_load: u32,
    /// New calls per second sent to it: over it, the next target.
    pub limit: Option<crate::routing::limit::Limit>,
    /// Calls in progress on it at once (see `routing::calls`).
    pub max_calls: Option<u32>,
    /// The listener requests to it leave from (else the first of its
    /// transport and address family).
    pub listener: Option<SocketAddr>,
}

impl Cx<'_> {
    /// `[acl]`: name → address list, each entry checked.
    pub(super) fn acls(
        &self,
        raw: &BTreeMap<String, Spanned<Vec<String>>>,
    ) -> Result<BTreeMap<String, Vec<String>>, ConfigError> {
        let mut out = BTreeMap::new();
        for (name, items) in raw {
            for item in items.get_ref() {
                if let Err(e) = crate::routing::cidr::parse_one(item) {
                    return self.err(Some(items.span()), format!("acl.{name}"), e.to_string());
                }
            }
            out.insert(name.clone(), items.get_ref().clone());
        }
        Ok(out)
    }

    /// `[prefix_table.NAME]`: each file loaded and built, its destination
    /// names resolved.
    pub(super) fn prefix_tables(
        &self,
        raw: &BTreeMap<String, raw::RawPrefixTable>,
        destinations: &[Destination],
    ) -> Result<Vec<PrefixTableCfg>, ConfigError> {
        let mut out = Vec::with_capacity(raw.len());
        for (name, t) in raw {
            let key = format!("prefix_table.{name}.file");
            let file = self.relative(t.file.get_ref());
            let entries = match prefix::load_file(&file) {
                Ok(e) => e,
                Err(e) => return self.err(Some(t.file.span()), key, e.to_string()),
            };
            let mut pairs = Vec::with_capacity(entries.len());
            for e in entries {
                let value = match &e.value {
                    None => NO_DESTINATION,
                    Some(d) => match destinations.iter().position(|x| x.name == *d) {
                        Some(i) => i as u32,
                        None => {
                            return self.err(
                                Some(t.file.span()),
                                key,
                                format!("{}:{}: unknown destination {d:?}", file.display(), e.line),
                            )
                        }
                    },
                };
                pairs.push((e.prefix.into_bytes(), value));
            }
            let table = match PrefixTable::build(pairs) {
                Ok(t) => t,
                Err(e) => {
                    return self.err(Some(t.file.span()), key, format!("{}: {e}", file.display()))
                }
            };
            out.push(PrefixTableCfg {
                name: name.clone(),
                file,
                table: Arc::new(table),
            });
        }
        Ok(out)
    }

    pub(super) fn destinations(
        &self,
        raw: &BTreeMap<String, raw::RawDestination>,
        listen: &[super::Listener],
    ) -> Result<Vec<Destination>, ConfigError> {
        let mut destinations = Vec::with_capacity(raw.len());
        for (name, d) in raw {
            let key = |k: &str| format!("destination.{name}.{k}");
            let mut targets = Vec::with_capacity(d.targets.get_ref().len());
            for (i, t) in d.targets.get_ref().iter().enumerate() {
                targets.push(self.target(t, &key(&format!("targets[{i}]")), listen)?);
            }
            if targets.is_empty() {
                return self.err(
                    Some(d.targets.span()),
                    key("targets"),
                    "a destination needs at least one target",
                );
            }
            if targets.len() > 1024 {
                return self.err(
                    Some(d.targets.span()),
                    key("targets"),
                    "at most 1024 targets per destination",
                );
            }
            for (i, t) in targets.iter().enumerate() {
                if targets[..i].iter().any(|o| o.uri == t.uri) {
                    return self.err(
                        Some(d.targets.span()),
                        key(&format!("targets[{i}].uri")),
                        format!("{:?} is listed twice", t.uri),
                    );
                }
            }
            let fork = self.fork(&d.fork, &key("fork"), Fork::Serial)?;
            let failover_codes = match &d.failover_codes {
                None => vec![408, 500, 503],
                Some(codes) => {
                    let mut out = Vec::new();
                    for c in codes.get_ref() {
                        out.push(self.int(c, &key("failover_codes"), 300..=699)?);
                    }
                    out
                }
            };
            let max_attempts = match &d.max_attempts {
                Some(v) => self.int(v, &key("max_attempts"), 1..=16)?,
                None => targets.len().min(16),
            };
            let hash_key = self.choice(
                &d.hash_key,
                &key("hash_key"),
                &[
                    ("call-id", HashKey::CallId),
                    ("from-user", HashKey::FromUser),
                    ("to-user", HashKey::ToUser),
                    ("ruri-user", HashKey::RuriUser),
                ],
                HashKey::CallId,
                "\"call-id\", \"from-user\", \"to-user\" or \"ruri-user\"",
            )?;
            let algorithm = self.choice(
                &d.algorithm,
                &key("algorithm"),
                &[
                    ("round-robin", Algorithm::RoundRobin),
                    ("weighted", Algorithm::Weighted),
                    ("hash", Algorithm::Hash(hash_key)),
                    ("priority", Algorithm::Priority),
                    ("least-load", Algorithm::LeastLoad),
                    ("random", Algorithm::Random),
                ],
                Algorithm::Weighted,
                "\"round-robin\", \"weighted\", \"hash\", \"priority\", \"least-load\" or \"random\"",
            )?;
            if d.hash_key.is_some() && !matches!(algorithm, Algorithm::Hash(_)) {
                return self.err(
                    d.hash_key.as_ref().map(|h| h.span()),
                    key("hash_key"),
                    "only with algorithm = \"hash\"",
                );
            }
            // No `probe` table: no probing (passive marking still holds a
            // target that fails for passive_hold_ms).
            let probe = match &d.probe {
                Some(p) => self.probe(p, &key("probe"))?,
                None => ProbeCfg {
                    mode: ProbeMode::Off,
                    ..ProbeCfg::default()
                },
            };
            destinations.push(Destination {
                name: name.clone(),
                targets,
                algorithm,
                fork,
                failover_codes,
                max_attempts,
                fallback: None,
                probe,
                limit: self.limit(&d.cps, &d.burst, &key(""))?,
                headers: self.header_rules(&d.headers, &key("headers"))?,
                max_calls: self.max_calls(&d.max_calls, &key("max_calls"))?,
            });
        }
        // Fallbacks name other sets; a chain must end (no cycles).
        for (i, (name, d)) in raw.iter().enumerate() {
            let Some(f) = &d.fallback else { continue };
            let key = format!("destination.{name}.fallback");
            match destinations.iter().position(|x| x.name == *f.get_ref()) {
                Some(j) if j == i => {
                    return self.err(Some(f.span()), key, "a set cannot fall back to itself")
                }
                Some(j) => destinations[i].fallback = Some(j),
                None => {
                    return self.err(
                        Some(f.span()),
                        key,
                        format!("unknown destination {:?}", f.get_ref()),
                    )
                }
            }
        }
        for (i, (name, d)) in raw.iter().enumerate() {
            let mut at = destinations[i].fallback;
            for _ in 0..destinations.len() {
                at = at.and_then(|j| destinations[j].fallback);
            }
            if at.is_some() {
                return self.err(
                    d.fallback.as_ref().map(|f| f.span()),
                    format!("destination.{name}.fallback"),
                    "fallbacks form a cycle",
                );
            }
        }
        Ok(destinations)
    }

    fn probe(&self, p: &raw::RawProbe, key: &str) -> Result<ProbeCfg, ConfigError> {
        let d = ProbeCfg::default();
        let k = |s: &str| format!("{key}.{s}");
        let ms = |v: &Option<Spanned<i64>>, name: &str, def: u64, range| match v {
            Some(v) => self.int::<u64>(v, &k(name), range),
            None => Ok(def),
        };
        let alive = match &p.alive_codes {
            Some(codes) => {
                let list: Vec<&str> = codes.get_ref().iter().map(String::as_str).collect();
                match CodeSet::parse(&list) {
                    Ok(c) => c,
                    Err(e) => return self.err(Some(codes.span()), k("alive_codes"), e),
                }
            }
            None => d.alive.clone(),
        };
        let cfg = ProbeCfg {
            mode: self.choice(
                &p.mode,
                &k("mode"),
                &[
                    ("off", ProbeMode::Off),
                    ("all", ProbeMode::All),
                    ("inactive", ProbeMode::Inactive),
                ],
                ProbeMode::All,
                "\"all\", \"inactive\" or \"off\"",
            )?,
            interval_ms: ms(
                &p.interval_ms,
                "interval_ms",
                d.interval_ms,
                100..=3_600_000,
            )?,
            timeout_ms: ms(&p.timeout_ms, "timeout_ms", d.timeout_ms, 50..=60_000)?,
            down_after: match &p.down_after {
                Some(v) => self.int(v, &k("down_after"), 1..=100)?,
                None => d.down_after,
            },
            up_after: match &p.up_after {
                Some(v) => self.int(v, &k("up_after"), 1..=100)?,
                None => d.up_after,
            },
            alive,
            passive_hold_ms: ms(
                &p.passive_hold_ms,
                "passive_hold_ms",
                d.passive_hold_ms,
                0..=86_400_000,
            )?,
        };
        if cfg.timeout_ms > cfg.interval_ms {
            return self.err(None, k("timeout_ms"), "must not be above interval_ms");
        }
        Ok(cfg)
    }

    fn target(
        &self,
        t: &raw::RawTarget,
        key: &str,
        listen: &[super::Listener],
    ) -> Result<Target, ConfigError> {
        let text = t.uri.get_ref();
        let bad = |why: &str| {
            self.err(
                Some(t.uri.span()),
                format!("{key}.uri"),
                format!("{text:?}: {why}"),
            )
        };
        let Ok(uri) = Uri::parse(text.as_bytes()) else {
            return bad("not a sip: URI");
        };
        if uri.scheme != Scheme::Sip {
            return bad("only sip: targets are supported");
        }
        let host = match uri.host {
            Host::Name(n) => String::from_utf8_lossy(n).to_ascii_lowercase(),
            Host::V4(a) => a.to_string(),
            Host::V6(_, a) => a.to_string(),
            Host::None => return bad("no host"),
        };
        let mut transport = match uri.transport() {
            None => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case(b"udp") => Transport::Udp,
            Some(t) if t.eq_ignore_ascii_case(b"tcp") => Transport::Tcp,
            Some(_) => return bad("transport must be udp or tcp"),
        };
        if let Some(tr) = &t.transport {
            let named = self.transport(tr, &format!("{key}.transport"))?;
            if uri.transport().is_some() && named != transport {
                return self.err(
                    Some(tr.span()),
                    format!("{key}.transport"),
                    "differs from the URI's transport parameter",
                );
            }
            transport = named;
        }
        let listener = match &t.listener {
            None => None,
            Some(l) => {
                let addr: Option<SocketAddr> = l.get_ref().parse().ok();
                match addr.filter(|a| {
                    listen
                        .iter()
                        .any(|x| x.addr == *a && x.transport == transport)
                }) {
                    Some(a) => Some(a),
                    None => {
                        return self.err(
                            Some(l.span()),
                            format!("{key}.listener"),
                            format!(
                                "{:?} is not the address of a {} [[listen]]",
                                l.get_ref(),
                                transport.as_str()
                            ),
                        )
                    }
                }
            }
        };
        Ok(Target {
            uri: text.clone(),
            host,
            port: uri.port.unwrap_or(5060),
            transport,
            weight: match &t.weight {
                Some(w) => self.int(w, &format!("{key}.weight"), 0..=1_000_000)?,
                None => 1,
            },
            priority: match &t.priority {
                Some(p) => self.int(p, &format!("{key}.priority"), 0..=1_000_000)?,
                None => 0,
            },
            max_load: match &t.max_load {
                Some(p) => self.int(p, &format!("{key}.max_load"), 0..=10_000_000)?,
                None => 0,
            },
            limit: self.limit(&t.cps, &t.burst, &format!("{key}."))?,
            max_calls: self.max_calls(&t.max_calls, &format!("{key}.max_calls"))?,
            listener,
        })
    }

    pub(super) fn routes(
        &self,
        raw: &[raw::RawRoute],
        destinations: &[Destination],
        tables: &[PrefixTableCfg],
        acls: &BTreeMap<String, Vec<String>>,
        has_registrar: bool,
    ) -> Result<Vec<Route>, ConfigError> {
        let mut routes = Vec::with_capacity(raw.len());
        for (i, r) in raw.iter().enumerate() {
            let key = |k: &str| format!("route[{i}].{k}");
            let prefix_table = match &r.matcher.prefix_table {
                None => None,
                Some(t) => match tables.iter().position(|x| x.name == *t.get_ref()) {
                    Some(j) => Some(j),
                    None => {
                        return self.err(
                            Some(t.span()),
                            key("match.prefix_table"),
                            format!("unknown prefix table {:?}", t.get_ref()),
                        )
                    }
                },
            };
            let action = self.action(r, destinations, prefix_table, has_registrar, &key)?;
            let mut method = Vec::new();
            if let Some(m) = &r.matcher.method {
                for m in m.get_ref().as_slice() {
                    if !lex::is_token_str(m.as_bytes()) {
                        return self.err(
                            Some(r.matcher.method.as_ref().map_or(0..0, |m| m.span())),
                            key("match.method"),
                            format!("{m:?} is not a method name"),
                        );
                    }
                    method.push(m.clone());
                }
            }
            let sources = |v: &Option<Spanned<OneOrMany>>, k: &str| {
                let mut out = Vec::new();
                let Some(v) = v else { return Ok(out) };
                for item in v.get_ref().as_slice() {
                    if let Some(list) = acls.get(item) {
                        out.extend(list.iter().cloned());
                    } else if let Err(e) = crate::routing::cidr::parse_one(item) {
                        return self.err(
                            Some(v.span()),
                            key(k),
                            format!("{item:?} is neither an [acl] name nor an address ({e})"),
                        );
                    } else {
                        out.push(item.clone());
                    }
                }
                Ok(out)
            };
            let header = match &r.matcher.header {
                None => None,
                Some(h) => {
                    if !lex::is_token_str(h.name.as_bytes()) {
                        return self.err(
                            None,
                            key("match.header.name"),
                            format!("{:?} is not a header name", h.name),
                        );
                    }
                    if let Err(e) = regex::bytes::Regex::new(h.regex.get_ref()) {
                        let first = e.to_string().lines().last().unwrap_or_default().to_string();
                        return self.err(
                            Some(h.regex.span()),
                            key("match.header.regex"),
                            format!("{:?}: {first}", h.regex.get_ref()),
                        );
                    }
                    Some(HeaderMatch {
                        name: h.name.clone(),
                        regex: h.regex.get_ref().clone(),
                    })
                }
            };
            let rewrite = match &r.rewrite {
                None => Rewrite::default(),
                Some(w) => {
                    let prepend = w.prepend.clone().unwrap_or_default();
                    if !prepend
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"@:;?<>\"".contains(&b))
                    {
                        return self.err(
                            None,
                            key("rewrite.prepend"),
                            format!("{prepend:?}: only characters allowed in a URI user"),
                        );
                    }
                    Rewrite {
                        strip: match &w.strip {
                            Some(s) => self.int(s, &key("rewrite.strip"), 0..=32)?,
                            None => 0,
                        },
                        prepend,
                    }
                }
            };
            routes.push(Route {
                name: r.name.clone(),
                matcher: Match {
                    domain: r.matcher.domain.as_ref().map_or_else(Vec::new, |d| {
                        d.as_slice()
                            .iter()
                            .map(|d| d.to_ascii_lowercase())
                            .collect()
                    }),
                    user_prefix: r
                        .matcher
                        .user_prefix
                        .as_ref()
                        .map_or_else(Vec::new, |p| p.as_slice().to_vec()),
                    prefix_table,
                    source: sources(&r.matcher.source, "match.source")?,
                    source_not: sources(&r.matcher.source_not, "match.source_not")?,
                    method,
                    header,
                },
                action,
                rewrite,
                limit: self.limit(&r.cps, &r.burst, &key(""))?,
                headers: self.header_rules(&r.headers, &key("headers"))?,
                hide: r.hide.unwrap_or(false),
                max_calls: self.max_calls(&r.max_calls, &key("max_calls"))?,
            });
        }
        Ok(routes)
    }

    /// `headers = { remove, set, add }` of a route or destination set.
    fn header_rules(
        &self,
        raw: &Option<Spanned<raw::RawHeaders>>,
        key: &str,
    ) -> Result<super::headers::HeaderRules, ConfigError> {
        let Some(h) = raw else {
            return Ok(Default::default());
        };
        let r = h.get_ref();
        super::headers::build(&r.remove, &r.set, &r.add)
            .or_else(|e| self.err(Some(h.span()), key, e))
    }

    /// `cps` and `burst` of a route or destination set (`key` ends in a
    /// dot).
    /// `max_calls` of a route or destination set.
    fn max_calls(&self, v: &Option<Spanned<i64>>, key: &str) -> Result<Option<u32>, ConfigError> {
        v.as_ref()
            .map(|v| self.int(v, key, 1..=10_000_000))
            .transpose()
    }

    fn limit(
        &self,
        cps: &Option<Spanned<i64>>,
        burst: &Option<Spanned<i64>>,
        key: &str,
    ) -> Result<Option<crate::routing::limit::Limit>, ConfigError> {
        let Some(c) = cps else {
            if let Some(b) = burst {
                return self.err(Some(b.span()), format!("{key}burst"), "only with cps");
            }
            return Ok(None);
        };
        let cps: u32 = self.int(c, &format!("{key}cps"), 1..=1_000_000)?;
        let burst = match burst {
            Some(b) => self.int(b, &format!("{key}burst"), 1..=1_000_000)?,
            None => cps,
        };
        Ok(Some(crate::routing::limit::Limit { cps, burst }))
    }

    fn action(
        &self,
        r: &raw::RawRoute,
        destinations: &[Destination],
        prefix_table: Option<usize>,
        has_registrar: bool,
        key: &dyn Fn(&str) -> String,
    ) -> Result<Action, ConfigError> {
        let reply_keys = r.code.is_some() || r.reason.is_some();
        let action = match (&r.destination, &r.action) {
            (Some(d), None) => match destinations.iter().position(|x| x.name == *d.get_ref()) {
                Some(i) => Action::Destination(i),
                None => {
                    return self.err(
                        Some(d.span()),
                        key("destination"),
                        format!("unknown destination {:?}", d.get_ref()),
                    )
                }
            },
            (None, Some(a)) => match a.get_ref().as_str() {
                "location" if !has_registrar => {
                    return self.err(
                        Some(a.span()),
                        key("action"),
                        "\"location\" needs a [registrar] section",
                    )
                }
                "location" => Action::Location,
                "drop" => Action::Drop,
                "reply" => {
                    let Some(code) = &r.code else {
                        return self.err(Some(a.span()), key("code"), "\"reply\" needs a code");
                    };
                    let code: u16 = self.int(code, &key("code"), 300..=699)?;
                    let reason = r.reason.clone().unwrap_or_else(|| "Forbidden".into());
                    if reason.bytes().any(|b| b < 0x20 || b == 0x7f) {
                        return self.err(
                            None,
                            key("reason"),
                            "must not contain control characters",
                        );
                    }
                    return Ok(Action::Reply(code, reason));
                }
                other => {
                    return self.err(
                        Some(a.span()),
                        key("action"),
                        format!("{other:?}: expected \"location\", \"reply\" or \"drop\""),
                    )
                }
            },
            (None, None) if prefix_table.is_some() => Action::FromTable,
            (Some(_), Some(_)) => {
                return self.err(
                    None,
                    key("action"),
                    "a route has either destination or action, not both",
                )
            }
            (None, None) => {
                return self.err(
                    None,
                    key("destination"),
                    "a route needs destination, action, or match.prefix_table",
                )
            }
        };
        if reply_keys {
            return self.err(
                None,
                key("code"),
                "code and reason go with action = \"reply\"",
            );
        }
        Ok(action)
    }
}
