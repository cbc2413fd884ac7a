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
    pub metrics: Option<RawMetrics>,
    #[serde(default)]
    pub tcp: RawTcp,
    pub registrar: Option<RawRegistrar>,
    pub auth: Option<RawAuth>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTcp {
    pub max_connections: Option<Spanned<i64>>,
    pub idle_timeout: Option<Spanned<i64>>,
    pub connect_timeout_ms: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    pub shards: Option<Spanned<i64>>,
    pub user_agent: Option<String>,
    pub log_format: Option<Spanned<String>>,
    pub log_level: Option<Spanned<String>>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMatch {
    pub domain: Option<String>,
    pub user_prefix: Option<String>,
    pub method: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDestination {
    pub targets: Spanned<Vec<RawTarget>>,
    pub fork: Option<Spanned<String>>,
    pub failover_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    pub max_attempts: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    pub uri: Spanned<String>,
    pub weight: Option<Spanned<i64>>,
    pub priority: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Spanned<String>,
}
