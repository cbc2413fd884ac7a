//! `[registrar]` and `[auth]`: the registrar and location service, and
//! Digest authentication.

use std::path::{Path, PathBuf};

use toml::Spanned;

use super::{lex, raw, ConfigError, Cx, Fork};
use crate::auth::Algorithm;
use crate::registrar::Fsync;
use crate::sip::uri::Uri;

/// `[registrar]`: REGISTER handling (RFC 3261 §10.3) for `domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registrar {
    /// Domains served, lowercase. A REGISTER or a request whose
    /// Request-URI names one of them (or one of our addresses) is for the
    /// registrar / location service. The first one is the domain of an
    /// AOR written with one of our addresses.
    pub domains: Vec<String>,
    pub default_expires: u32,
    /// Shorter non-zero expiries get 423 with Min-Expires.
    pub min_expires: u32,
    /// Longer expiries are cut to this.
    pub max_expires: u32,
    /// Bindings per AOR.
    pub max_contacts: usize,
    /// Bindings in all.
    pub max_bindings: usize,
    /// Snapshot partitions (a power of two).
    pub partitions: usize,
    /// Where the journal lives; none: bindings are in memory only.
    pub journal_dir: Option<PathBuf>,
    pub fsync: Fsync,
    pub compact_interval: std::time::Duration,
    /// Stateful mode: try a registered user's contacts all at once, or
    /// one at a time by q-value.
    pub fork: Fork,
    /// Keep-alive OPTIONS to each NATed UDP binding every this many
    /// seconds (0: none), and how many in a row may go unanswered before
    /// the binding is removed.
    pub nat_ping_interval_s: u32,
    pub nat_ping_misses: u32,
}

/// `[auth]`: Digest authentication (RFC 7616, RFC 2617).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCfg {
    pub realm: String,
    /// Key of the nonce HMAC; random at each start when not given.
    pub secret: Option<String>,
    pub nonce_lifetime_s: u64,
    pub max_nonces: usize,
    /// Users: from `users` (plain passwords) and `users_file`, merged.
    pub users: Vec<(String, String)>,
    pub users_file: Option<PathBuf>,
    /// Challenge REGISTER (401).
    pub register: bool,
    /// Challenge initial requests of these methods (407).
    pub requests: Vec<String>,
    /// Digest algorithms offered, one challenge each, in this order
    /// (RFC 8760: the preferred first); credentials for another are
    /// refused.
    pub algorithms: Vec<Algorithm>,
    /// Failed authentications one nonce may serve; then it is stale (a
    /// fresh challenge). Bounds guessing against one challenge.
    pub max_nonce_failures: u32,
    /// Failed authentications of one username within `user_window_s`
    /// that lock it for `user_lock_s`; 0: never.
    pub user_failures: u32,
    pub user_window_s: u64,
    pub user_lock_s: u64,
}

/// `[guard]`: flood detection, bans, failed-authentication bans (see
/// `guard`). Absent: none of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardCfg {
    /// Requests from one source in one window of `window_ms` on one shard
    /// over `max_requests` ban it for `ban_s` (0: no flood bans).
    pub window_ms: u64,
    pub max_requests: u32,
    pub ban_s: u64,
    /// What a banned source gets: nothing (`None`) or this status.
    pub reply: Option<u16>,
    /// Addresses never counted (ACL names expanded).
    pub exempt: Vec<String>,
    /// Sources counted per window and shard; beyond: not counted.
    pub max_sources: usize,
    /// Bans in force at once.
    pub max_bans: usize,
    /// Failed authentications from one source within `auth_window_s` that
    /// ban it for `auth_ban_s` (0: none).
    pub auth_failures: u32,
    pub auth_window_s: u64,
    pub auth_ban_s: u64,
}

impl Cx<'_> {
    pub(super) fn guard(
        &self,
        g: &raw::RawGuard,
        acls: &std::collections::BTreeMap<String, Vec<String>>,
    ) -> Result<GuardCfg, ConfigError> {
        let int = |v: &Option<Spanned<i64>>, key: &str, def: i64, range| match v {
            Some(v) => self.int::<i64>(v, &format!("guard.{key}"), range),
            None => Ok(def),
        };
        let reply = match g.action.as_ref().map(|a| (a.get_ref().as_str(), a.span())) {
            None | Some(("drop", _)) => None,
            Some(("403", _)) => Some(403),
            Some(("503", _)) => Some(503),
            Some((other, span)) => {
                return self.err(
                    Some(span),
                    "guard.action",
                    format!("{other:?}: \"drop\", \"403\" or \"503\""),
                )
            }
        };
        let mut exempt = Vec::new();
        if let Some(v) = &g.exempt {
            for item in v.get_ref() {
                if let Some(list) = acls.get(item) {
                    exempt.extend(list.iter().cloned());
                } else if let Err(e) = crate::routing::cidr::parse_one(item) {
                    return self.err(
                        Some(v.span()),
                        "guard.exempt",
                        format!("{item:?} is neither an [acl] name nor an address ({e})"),
                    );
                } else {
                    exempt.push(item.clone());
                }
            }
        }
        Ok(GuardCfg {
            window_ms: int(&g.window_ms, "window_ms", 2000, 100..=3_600_000)? as u64,
            max_requests: int(&g.max_requests, "max_requests", 200, 0..=10_000_000)? as u32,
            ban_s: int(&g.ban_s, "ban_s", 300, 1..=604_800)? as u64,
            reply,
            exempt,
            max_sources: int(&g.max_sources, "max_sources", 65_536, 16..=10_000_000)? as usize,
            max_bans: int(&g.max_bans, "max_bans", 10_000, 1..=1_000_000)? as usize,
            auth_failures: int(&g.auth_failures, "auth_failures", 10, 0..=1_000_000)? as u32,
            auth_window_s: int(&g.auth_window_s, "auth_window_s", 60, 1..=86_400)? as u64,
            auth_ban_s: int(&g.auth_ban_s, "auth_ban_s", 600, 1..=604_800)? as u64,
        })
    }

    pub(super) fn registrar(&self, r: &raw::RawRegistrar) -> Result<Registrar, ConfigError> {
        let int = |v: &Option<Spanned<i64>>, key: &str, def: i64, range| match v {
            Some(v) => self.int::<i64>(v, &format!("registrar.{key}"), range),
            None => Ok(def),
        };
        let domains: Vec<String> = match &r.domains {
            Some(d) => {
                for x in d.get_ref() {
                    let probe = format!("sip:{x}");
                    if !matches!(Uri::parse(probe.as_bytes()), Ok(u) if u.user.is_none() && u.port.is_none() && u.params.is_empty())
                    {
                        return self.err(
                            Some(d.span()),
                            "registrar.domains",
                            format!("{x:?} is not a domain name or address"),
                        );
                    }
                }
                d.get_ref().iter().map(|x| x.to_ascii_lowercase()).collect()
            }
            None => Vec::new(),
        };
        let min_expires = int(&r.min_expires, "min_expires", 60, 0..=86_400)? as u32;
        let max_expires = int(&r.max_expires, "max_expires", 7200, 1..=604_800)? as u32;
        let default_expires = int(&r.default_expires, "default_expires", 3600, 1..=604_800)? as u32;
        if max_expires < min_expires {
            return self.err(
                None,
                "registrar.max_expires",
                "must not be below min_expires",
            );
        }
        let fsync_ms = int(&r.fsync_interval_ms, "fsync_interval_ms", 100, 1..=60_000)? as u64;
        let fsync = self.choice(
            &r.fsync,
            "registrar.fsync",
            &[
                ("always", Fsync::Always),
                ("batch", Fsync::Batch(fsync_ms)),
                ("never", Fsync::Never),
            ],
            Fsync::Batch(fsync_ms),
            "\"always\", \"batch\" or \"never\"",
        )?;
        let fork = self.fork(&r.fork, "registrar.fork", Fork::Parallel)?;
        Ok(Registrar {
            domains,
            default_expires,
            min_expires,
            max_expires,
            max_contacts: int(&r.max_contacts, "max_contacts", 16, 1..=256)? as usize,
            max_bindings: int(&r.max_bindings, "max_bindings", 2_000_000, 1..=100_000_000)?
                as usize,
            partitions: int(&r.partitions, "partitions", 65_536, 1..=16_777_216)?
                .unsigned_abs()
                .next_power_of_two() as usize,
            journal_dir: r.journal_dir.as_ref().map(|d| self.relative(d)),
            fsync,
            compact_interval: std::time::Duration::from_secs(int(
                &r.compact_interval_s,
                "compact_interval_s",
                300,
                1..=86_400,
            )? as u64),
            fork,
            nat_ping_interval_s: int(&r.nat_ping_interval_s, "nat_ping_interval_s", 30, 0..=3600)?
                as u32,
            nat_ping_misses: int(&r.nat_ping_misses, "nat_ping_misses", 3, 1..=100)? as u32,
        })
    }

    pub(super) fn auth(
        &self,
        a: &raw::RawAuth,
        reg: Option<&Registrar>,
    ) -> Result<AuthCfg, ConfigError> {
        let realm = match (&a.realm, reg.and_then(|r| r.domains.first())) {
            (Some(r), _) => r.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => {
                return self.err(
                    None,
                    "auth.realm",
                    "needed when [registrar] names no domain",
                )
            }
        };
        if realm
            .bytes()
            .any(|b| b < 0x20 || b == b'"' || b == b'\\' || b == 0x7f)
        {
            return self.err(
                None,
                "auth.realm",
                "must not contain quotes, backslashes or control characters",
            );
        }
        let mut requests = Vec::new();
        for m in a.requests.iter().flatten() {
            if !lex::is_token_str(m.get_ref().as_bytes())
                || matches!(m.get_ref().as_str(), "ACK" | "CANCEL")
            {
                return self.err(
                    Some(m.span()),
                    "auth.requests",
                    format!("{:?}: a method name other than ACK and CANCEL", m.get_ref()),
                );
            }
            requests.push(m.get_ref().clone());
        }
        Ok(AuthCfg {
            realm,
            secret: a.secret.clone(),
            nonce_lifetime_s: match &a.nonce_lifetime_s {
                Some(v) => self.int(v, "auth.nonce_lifetime_s", 1..=86_400)?,
                None => 300,
            },
            max_nonces: match &a.max_nonces {
                Some(v) => self.int(v, "auth.max_nonces", 1..=10_000_000)?,
                None => 1_000_000,
            },
            users: a
                .users
                .iter()
                .map(|(u, p)| (u.clone(), p.clone()))
                .collect(),
            users_file: a.users_file.as_ref().map(|f| self.relative(f.get_ref())),
            register: a.register.unwrap_or(true),
            requests,
            max_nonce_failures: match &a.max_nonce_failures {
                Some(v) => self.int(v, "auth.max_nonce_failures", 1..=1_000_000)?,
                None => 5,
            },
            user_failures: match &a.user_failures {
                Some(v) => self.int(v, "auth.user_failures", 0..=1_000_000)?,
                None => 0,
            },
            user_window_s: match &a.user_window_s {
                Some(v) => self.int(v, "auth.user_window_s", 1..=86_400)?,
                None => 60,
            },
            user_lock_s: match &a.user_lock_s {
                Some(v) => self.int(v, "auth.user_lock_s", 1..=86_400)?,
                None => 300,
            },
            algorithms: match &a.algorithms {
                // MD5 alone by default: most deployed phones answer MD5
                // only, and some (baresip 1.0 / libre 1.1) give up
                // registering when any challenge names another algorithm.
                // RFC 8760's SHA-256 is one line away, first when offered.
                None => vec![Algorithm::Md5],
                Some(list) => {
                    let mut out = Vec::new();
                    for name in list.get_ref() {
                        match Algorithm::parse(name.as_bytes()) {
                            Some(alg) if !out.contains(&alg) => out.push(alg),
                            _ => {
                                return self.err(
                                    Some(list.span()),
                                    "auth.algorithms",
                                    format!("{name:?}: expected \"SHA-256\" or \"MD5\", each once"),
                                )
                            }
                        }
                    }
                    if out.is_empty() {
                        return self.err(
                            Some(list.span()),
                            "auth.algorithms",
                            "name at least one algorithm",
                        );
                    }
                    out
                }
            },
        })
    }

    /// A path in the config, relative to the config file's directory.
    pub(super) fn relative(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        self.file
            .parent()
            .map_or_else(|| p.to_path_buf(), |d| d.join(p))
    }
}
