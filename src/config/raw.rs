//! The TOML file as written: serde structs that refuse unknown keys. Values
//! whose meaning is checked after parsing keep their position (`Spanned`)
//! so that an error can name the line.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub listen: Vec<RawListen>,
    #[serde(default)]
    pub proxy: RawProxy,
    #[serde(default)]
    pub route: Vec<RawRoute>,
    #[serde(default)]
    pub destination: BTreeMap<String, RawDestination>,
    #[serde(default)]
    pub acl: BTreeMap<String, Spanned<Vec<String>>>,
    #[serde(default)]
    pub prefix_table: BTreeMap<String, RawPrefixTable>,
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub tcp: RawTcp,
    pub registrar: Option<RawRegistrar>,
    pub auth: Option<RawAuth>,
    pub guard: Option<RawGuard>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGuard {
    pub window_ms: Option<Spanned<i64>>,
    pub max_requests: Option<Spanned<i64>>,
    pub ban_s: Option<Spanned<i64>>,
    pub action: Option<Spanned<String>>,
    pub exempt: Option<Spanned<Vec<String>>>,
    pub max_sources: Option<Spanned<i64>>,
    pub max_bans: Option<Spanned<i64>>,
    pub auth_failures: Option<Spanned<i64>>,
    pub auth_window_s: Option<Spanned<i64>>,
    pub auth_ban_s: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegistrar {
    pub domains: Option<Spanned<Vec<String>>>,
    pub default_expires: Option<Spanned<i64>>,
    pub min_expires: Option<Spanned<i64>>,
    pub max_expires: Option<Spanned<i64>>,
    pub max_contacts: Option<Spanned<i64>>,
    pub max_bindings: Option<Spanned<i64>>,
    pub partitions: Option<Spanned<i64>>,
    pub journal_dir: Option<String>,
    pub fsync: Option<Spanned<String>>,
    pub fsync_interval_ms: Option<Spanned<i64>>,
    pub compact_interval_s: Option<Spanned<i64>>,
    pub fork: Option<Spanned<String>>,
    pub nat_ping_interval_s: Option<Spanned<i64>>,
    pub nat_ping_misses: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAuth {
    pub realm: Option<String>,
    pub secret: Option<String>,
    pub nonce_lifetime_s: Option<Spanned<i64>>,
    pub max_nonces: Option<Spanned<i64>>,
    pub users_file: Option<Spanned<String>>,
    #[serde(default)]
    pub users: BTreeMap<String, String>,
    pub register: Option<bool>,
    pub requests: Option<Vec<Spanned<String>>>,
    pub algorithms: Option<Spanned<Vec<String>>>,
    pub max_nonce_failures: Option<Spanned<i64>>,
    pub user_failures: Option<Spanned<i64>>,
    pub user_window_s: Option<Spanned<i64>>,
    pub user_lock_s: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    pub max_connections: Option<Spanned<i64>>,
    pub idle_timeout: Option<Spanned<i64>>,
    pub connect_timeout_ms: Option<Spanned<i64>>,
    pub message_timeout_ms: Option<Spanned<i64>>,
    pub max_per_source: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub shards: Option<Spanned<i64>>,
    pub user_agent: Option<String>,
    pub log_format: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
    pub coalesce_us: Option<Spanned<i64>>,
    pub spread: Option<Spanned<bool>>,
    pub overload_backlog: Option<Spanned<i64>>,
    pub overload_occupancy: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawListen {
    pub transport: Spanned<String>,
    pub addr: Spanned<String>,
    pub advertise: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProxy {
    pub mode: Option<Spanned<String>>,
    pub record_route: Option<bool>,
    pub max_forwards: Option<Spanned<i64>>,
    pub udp_max_size: Option<Spanned<i64>>,
    pub dispatch: Option<Spanned<String>>,
    pub nat: Option<Spanned<String>>,
    pub topology_secret: Option<Spanned<String>>,
    pub call_setup_s: Option<Spanned<i64>>,
    pub call_timeout_s: Option<Spanned<i64>>,
    pub t1_ms: Option<Spanned<i64>>,
    pub t2_ms: Option<Spanned<i64>>,
    pub t4_ms: Option<Spanned<i64>>,
    pub timer_c_ms: Option<Spanned<i64>>,
    pub branch_timeout_ms: Option<Spanned<i64>>,
    pub max_transactions: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    pub name: String,
    #[serde(rename = "match", default)]
    pub matcher: RawMatch,
    pub destination: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    /// With action = "reply".
    pub code: Option<Spanned<i64>>,
    pub reason: Option<String>,
    pub rewrite: Option<RawRewrite>,
    pub cps: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
    pub headers: Option<Spanned<RawHeaders>>,
    pub hide: Option<bool>,
    pub max_calls: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaders {
    #[serde(default)]
    pub remove: Vec<String>,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub domain: Option<OneOrMany>,
    pub user_prefix: Option<OneOrMany>,
    pub prefix_table: Option<Spanned<String>>,
    pub source: Option<Spanned<OneOrMany>>,
    pub source_not: Option<Spanned<OneOrMany>>,
    pub method: Option<Spanned<OneOrMany>>,
    pub header: Option<RawHeaderMatch>,
}

/// A string, or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(s) => std::slice::from_ref(s),
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHeaderMatch {
    pub name: String,
    pub regex: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRewrite {
    pub strip: Option<Spanned<i64>>,
    pub prepend: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrefixTable {
    pub file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProbe {
    pub mode: Option<Spanned<String>>,
    pub interval_ms: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub down_after: Option<Spanned<i64>>,
    pub up_after: Option<Spanned<i64>>,
    pub alive_codes: Option<Spanned<Vec<String>>>,
    pub passive_hold_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDestination {
    pub targets: Spanned<Vec<RawTarget>>,
    pub fork: Option<Spanned<String>>,
    pub failover_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub algorithm: Option<Spanned<String>>,
    pub hash_key: Option<Spanned<String>>,
    pub fallback: Option<Spanned<String>>,
    pub probe: Option<RawProbe>,
    pub cps: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
    pub max_calls: Option<Spanned<i64>>,
    pub headers: Option<Spanned<RawHeaders>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub uri: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub priority: Option<Spanned<i64>>,
    pub max_load: Option<Spanned<i64>>,
    pub transport: Option<Spanned<String>>,
    pub listener: Option<Spanned<String>>,
    pub max_calls: Option<Spanned<i64>>,
    pub cps: Option<Spanned<i64>>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<Spanned<String>>,
    pub admin: Option<bool>,
}
