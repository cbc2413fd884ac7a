//! The admin API and reload: what the metrics listener's `/admin/` paths
//! and SIGHUP do. Runs on the metrics thread (or the main thread for
//! SIGHUP), never on a shard: it reads the shared routing table, health
//! and registrar, and swaps in a new routing table on reload.
//!
//! - `GET /admin/sets`: destination sets, each target's state and why.
//! - `POST /admin/sets/{set}/targets/{index}/{up|down|drain}`: a
//!   target's admin state.
//! - `GET /admin/aor/{user@domain}`: the bindings of an AOR.
//! - `GET /admin/stats`: routes matched and the shards' counters summed.
//! - `POST /admin/reload`: re-read the config file; see [`Control::reload`].
//! - `GET /admin/bans`: the guard's bans in force; `DELETE
//!   /admin/bans/{address}` lifts one.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;

use super::stats::{Counters, Snapshot, SERIES};
use super::wheel::Epoch;
use super::Runtime;
use crate::config::Config;
use crate::metrics::json;
use crate::registrar::Registrar;
use crate::routing::health::AdminState;
use crate::routing::{report, Routing};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// The new routing table's generation.
    pub generation: u64,
    pub routes: usize,
    pub sets: usize,
    /// Sections that changed but only take effect at a restart.
    pub restart_needed: Vec<&'static str>,
}

/// The running proxy as the admin API and reload see it.
pub struct Control {
    path: PathBuf,
    /// The config the routing table was last built from. Held while a
    /// reload runs, so two reloads never interleave.
    cfg: Mutex<Arc<Config>>,
    routing: Arc<ArcSwap<Routing>>,
    registrar: Option<Arc<Registrar>>,
    counters: Vec<Arc<Counters>>,
    epoch: Epoch,
    stripes: usize,
    bans: Option<Arc<crate::guard::Bans>>,
}

impl Control {
    /// The control of `rt`, started from `cfg` as read from `path`.
    pub fn new(rt: &Runtime, cfg: Arc<Config>, path: PathBuf) -> Control {
        Control {
            path,
            stripes: cfg.server.shards,
            cfg: Mutex::new(cfg),
            routing: rt.routing.clone(),
            registrar: rt.registrar.clone(),
            counters: rt.counters(),
            epoch: rt.epoch,
            bans: rt.bans.clone(),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.tick(Instant::now())
    }

    /// Read the config file again, validate it and build its routing
    /// table (prefix tables included), then swap it in: requests already
    /// routed keep the table they started with, new ones take the new
    /// one. Targets that remain keep their health, admin state and
    /// counters. On any error nothing changes and the error says why.
    /// Sections other than routes, destinations, prefix tables and ACLs
    /// are not reloaded; those that changed are listed in the result.
    pub fn reload(&self) -> Result<Reloaded, String> {
        let started = Instant::now();
        let r = self.try_reload();
        match &r {
            Ok(r) => tracing::info!(
                generation = r.generation,
                "reloaded {} in {} ms: {} routes, {} destination sets{}",
                self.path.display(),
                started.elapsed().as_millis(),
                r.routes,
                r.sets,
                if r.restart_needed.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; changed but applied only at a restart: [{}]",
                        r.restart_needed.join("], [")
                    )
                }
            ),
            Err(e) => tracing::error!("reload rejected, the running configuration stays: {e}"),
        }
        r
    }

    fn try_reload(&self) -> Result<Reloaded, String> {
        let mut cur = self.cfg.lock().unwrap_or_else(|e| e.into_inner());
        let new = Config::load(&self.path).map_err(|e| e.to_string())?;
        let old = self.routing.load_full();
        let routing = Routing::build(&new, Some(&old), self.stripes, self.now())?;
        let mut restart_needed = Vec::new();
        let sections: [(&'static str, bool); 7] = [
            ("server", new.server != cur.server),
            ("listen", new.listen != cur.listen),
            ("proxy", new.proxy != cur.proxy),
            ("tcp", new.tcp != cur.tcp),
            ("metrics", new.metrics != cur.metrics),
            ("registrar", new.registrar != cur.registrar),
            ("auth", new.auth != cur.auth),
        ];
        for (name, changed) in sections {
            if changed {
                restart_needed.push(name);
            }
        }
        let done = Reloaded {
            generation: routing.generation,
            routes: routing.routes.len(),
            sets: routing.sets.len(),
            restart_needed,
        };
        self.routing.store(Arc::new(routing));
        *cur = Arc::new(new);
        Ok(done)
    }

    fn reload_json(&self) -> (u16, String) {
        match self.reload() {
            Ok(r) => {
                let restart: Vec<String> =
                    r.restart_needed.iter().map(|s| json::string(s)).collect();
                (
                    200,
                    format!(
                        "{{\"reloaded\":true,\"generation\":{},\"routes\":{},\"sets\":{},\"restart_needed\":[{}]}}\n",
                        r.generation,
                        r.routes,
                        r.sets,
                        restart.join(",")
                    ),
                )
            }
            Err(e) => (
                422,
                format!("{{\"reloaded\":false,\"error\":{}}}\n", json::string(&e)),
            ),
        }
    }

    fn set_state(&self, set: &str, index: &str, state: &str) -> (u16, String) {
        let admin = match state {
            "up" => AdminState::Up,
            "down" => AdminState::Down,
            "drain" => AdminState::Drain,
            _ => return (404, json::error("the state is up, down or drain")),
        };
        let routing = self.routing.load();
        let Some(s) = routing.set(set) else {
            return (404, json::error(&format!("no destination set {set:?}")));
        };
        let Some(t) = index.parse::<usize>().ok().and_then(|i| s.targets.get(i)) else {
            return (404, json::error(&format!("no target {index:?} in {set:?}")));
        };
        t.health.set_admin(admin, self.now());
        tracing::info!(set, target = %t.cfg.uri, "admin state set to {state}");
        (200, report::target_json(t, self.now()))
    }

    fn aor(&self, aor: &str) -> (u16, String) {
        let Some(reg) = &self.registrar else {
            return (404, json::error("no [registrar] configured"));
        };
        let aor = aor.strip_prefix("sip:").unwrap_or(aor);
        let key = match aor.split_once('@') {
            Some((user, host)) => format!("{user}@{}", host.to_ascii_lowercase()),
            None => return (400, json::error("an AOR is user@domain")),
        };
        let now = crate::registrar::unix_now_ms() / 1000;
        let body = reg.store.with(key.as_bytes(), |r| {
            let mut out = String::new();
            let list = r.map(|r| r.live(now)).unwrap_or_default();
            let _ = write!(out, "{{\"aor\":{},\"bindings\":[", json::string(&key));
            for (i, b) in list.iter().enumerate() {
                let path: Vec<String> = b.path.iter().map(|p| json::bytes(p)).collect();
                let _ = write!(
                    out,
                    "{}{{\"contact\":{},\"expires_in\":{},\"q\":{},\"source\":{},\"transport\":{},\"path\":[{}],\"instance\":{}}}",
                    if i > 0 { "," } else { "" },
                    json::bytes(&b.contact),
                    b.expires.saturating_sub(now),
                    f64::from(b.q) / 1000.0,
                    json::string(&b.source.to_string()),
                    json::string(b.transport.as_str()),
                    path.join(","),
                    b.instance.as_deref().map_or("null".to_string(), json::bytes),
                );
            }
            out.push_str("]}\n");
            out
        });
        (200, body)
    }

    fn bans(&self) -> (u16, String) {
        let Some(bans) = &self.bans else {
            return (404, json::error("no [guard] configured"));
        };
        let now = self.now();
        let unix_ms = crate::registrar::unix_now_ms();
        let at = |t: u64| (unix_ms + t).saturating_sub(now) / 1000;
        let mut out = String::from("{\"bans\":[");
        for (i, (ip, b)) in bans.list(now).iter().enumerate() {
            let _ = write!(
                out,
                "{}{{\"address\":{},\"reason\":{},\"since\":{},\"until\":{},\"remaining_s\":{},\"drops\":{}}}",
                if i > 0 { "," } else { "" },
                json::string(&ip.to_string()),
                json::string(b.reason.as_str()),
                at(b.since),
                at(b.until),
                b.until.saturating_sub(now).div_ceil(1000),
                b.hits.load(std::sync::atomic::Ordering::Relaxed),
            );
        }
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let _ = writeln!(
            out,
            "],\"flood_bans\":{},\"auth_bans\":{},\"refused\":{}}}",
            get(&bans.flood_bans),
            get(&bans.auth_bans),
            get(&bans.refused)
        );
        (200, out)
    }

    fn unban(&self, address: &str) -> (u16, String) {
        let Some(bans) = &self.bans else {
            return (404, json::error("no [guard] configured"));
        };
        let Ok(ip) = address.parse::<std::net::IpAddr>() else {
            return (
                400,
                json::error(&format!("{address:?} is not an IP address")),
            );
        };
        if bans.remove(ip) {
            tracing::info!(%ip, "ban lifted by the admin API");
            (
                200,
                format!("{{\"removed\":{}}}\n", json::string(&ip.to_string())),
            )
        } else {
            (404, json::error(&format!("{ip} is not banned")))
        }
    }

    fn stats(&self) -> String {
        let total = Snapshot::merge(self.counters.iter().map(|c| &**c));
        let mut out = String::from("{\"counters\":{");
        for (i, (name, _, get)) in SERIES.iter().enumerate() {
            let name = name.strip_prefix("siphon_").unwrap_or(name);
            let _ = write!(
                out,
                "{}{}:{}",
                if i > 0 { "," } else { "" },
                json::string(name),
                get(&total)
            );
        }
        out.push_str("},\"routes\":");
        out.push_str(&report::routes_json(&self.routing.load()));
        out.push_str("}\n");
        out
    }
}

impl crate::metrics::Admin for Control {
    fn metrics(&self, out: &mut String) {
        report::metrics(&self.routing.load(), self.now(), out);
        if let Some(b) = &self.bans {
            let get =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let _ = write!(
                out,
                "# HELP siphon_bans_active Sources banned by the guard now\n# TYPE siphon_bans_active gauge\nsiphon_bans_active {}\n\
                 # HELP siphon_bans_total Sources banned by the guard, by reason\n# TYPE siphon_bans_total counter\n\
                 siphon_bans_total{{reason=\"flood\"}} {}\nsiphon_bans_total{{reason=\"auth\"}} {}\n\
                 # HELP siphon_bans_refused_total Bans not made because max_bans were in force\n# TYPE siphon_bans_refused_total counter\nsiphon_bans_refused_total {}\n",
                b.list(self.now()).len(),
                get(&b.flood_bans),
                get(&b.auth_bans),
                get(&b.refused),
            );
        }
    }

    fn handle(&self, method: &str, path: &str, _body: &[u8]) -> Option<(u16, String)> {
        let path = path.split('?').next().unwrap_or_default();
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        Some(match (method, parts.as_slice()) {
            ("GET", ["admin", "sets"]) => {
                (200, report::sets_json(&self.routing.load(), self.now()))
            }
            ("GET", ["admin", "sets", name]) => match self.routing.load().set(name) {
                Some(s) => (200, report::set_json(s, self.now())),
                None => (404, json::error(&format!("no destination set {name:?}"))),
            },
            ("POST", ["admin", "sets", set, "targets", index, state]) => {
                self.set_state(set, index, state)
            }
            ("GET", ["admin", "aor", aor]) => self.aor(aor),
            ("GET", ["admin", "stats"]) => (200, self.stats()),
            ("POST", ["admin", "reload"]) => self.reload_json(),
            ("GET", ["admin", "bans"]) => self.bans(),
            ("DELETE", ["admin", "bans", address]) => self.unban(address),
            (_, ["admin", "reload" | "sets" | "aor" | "stats" | "bans", ..]) => {
                (405, json::error("method not allowed here"))
            }
            _ => return None,
        })
    }
}
