//! Configuration: the TOML contract operators write, parsed once into types.
//!
//! `Config::load(path)` reads and validates a file; every error names the
//! file, the line and the key (`config/x.toml:12: route[0].destination:
//! unknown destination "nope"`). Unknown keys are errors. A reload builds a
//! new immutable `Config`; nothing is changed in place.

pub mod headers;
mod raw;
mod routing;
mod services;

pub use routing::{
    Action, Destination, Fork, HeaderMatch, Match, PrefixTableCfg, Rewrite, Route, Target,
    NO_DESTINATION,
};
pub use services::{AuthCfg, GuardCfg, Registrar};

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::sip::lex;
use crate::sip::uri::Uri;

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: Server,
    pub listen: Vec<Listener>,
    pub proxy: Proxy,
    pub routes: Vec<Route>,
    /// Destination sets; routes refer to them by index.
    pub destinations: Vec<Destination>,
    /// Prefix tables loaded from their files; routes refer to them by
    /// index.
    pub prefix_tables: Vec<PrefixTableCfg>,
    pub metrics: Option<Metrics>,
    pub tcp: Tcp,
    /// The registrar and location service, when configured.
    pub registrar: Option<Registrar>,
    /// Digest authentication, when configured.
    pub auth: Option<AuthCfg>,
    /// Flood detection and bans, when configured.
    pub guard: Option<GuardCfg>,
}

/// `server.coalesce_us` when not set.
pub const DEFAULT_COALESCE_US: u32 = 0;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Shards (executors pinned to cores). Default: one per available core.
    pub shards: usize,
    /// Sent in User-Agent / Server of locally generated messages.
    pub user_agent: String,
    pub log_format: LogFormat,
    pub log_level: LogLevel,
    /// How long a shard with work waiting lets more arrive before it
    /// wakes (io_uring's min_wait), in microseconds; 0 wakes at the first
    /// completion.
    pub coalesce_us: u32,
    /// Spread the datagrams of every peer over all shards (the kernel
    /// picks a shard's socket at random for each), so that one trunk uses
    /// every core; off: the kernel hashes the 4-tuple, and one peer's
    /// traffic stays on one shard.
    pub spread: bool,
    /// A wake-up that brings this many datagrams means the shard is behind: new calls and REGISTERs get 503 until a
    /// wake-up brings fewer than a quarter of it. 0: off.
    pub overload_backlog: usize,
    /// Stateful mode: a transaction table this full (percent) refuses new
    /// calls and REGISTERs with 503, keeping the rest for requests inside
    /// dialogs, ACK and CANCEL. 100: only a full table refuses.
    pub overload_occupancy: u32,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Transports a listener or target can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub transport: Transport,
    pub addr: SocketAddr,
    /// Host (and port) to put in Via and Record-Route instead of `addr`,
    /// e.g. a public name or address in front of NAT.
    pub advertise: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stateless,
    Stateful,
}

/// Stream connections (inbound and outbound together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    /// At most this many open connections per process (split evenly over
    /// the shards); an accept beyond it is closed at once and counted.
    pub max_connections: usize,
    /// A connection with no traffic either way for this long is closed.
    pub idle_timeout: std::time::Duration,
    /// How long an outbound connect may take.
    pub connect_timeout: std::time::Duration,
    /// Once the first byte of a message has arrived, the whole message
    /// must have arrived within this (headers and body); else the
    /// connection is closed (slowloris).
    pub message_timeout: std::time::Duration,
    /// Connections accepted from one address at once (split evenly over
    /// the shards); an accept beyond it is closed at once and counted.
    pub max_per_source: usize,
}

impl Default for Tcp {
    fn default() -> Tcp {
        Tcp {
            max_connections: 4096,
            idle_timeout: std::time::Duration::from_secs(180),
            connect_timeout: std::time::Duration::from_millis(2000),
            message_timeout: std::time::Duration::from_millis(10_000),
            max_per_source: 256,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    pub mode: Mode,
    pub record_route: bool,
    /// Max-Forwards inserted when a request has none (RFC 3261 §16.6 step 3).
    pub max_forwards: u8,
    /// A request larger than this bound for a UDP next hop goes over TCP
    /// when a TCP listener exists (RFC 3261 §18.1.1); 0 turns that off.
    pub udp_max_size: usize,
    /// The transaction layer (stateful mode).
    pub transaction: TransactionCfg,
    /// Stateful mode with several shards: which shard handles a request.
    pub dispatch: Dispatch,
    /// NAT traversal for registered UAs and dialogs.
    pub nat: Nat,
    /// The secret topology hiding's key is derived from (every node and
    /// restart sharing it follows the others' hidden dialogs); without
    /// one, a key made at start.
    pub topology_secret: Option<String>,
    /// Concurrent-call limits: a call not answered within this long, or
    /// answered this long ago, is no longer counted (its end was not
    /// seen; see `routing::calls`).
    pub call_setup_s: u64,
    pub call_timeout_s: u64,
}

/// NAT traversal (RFC 3581, RFC 5626 §5; Kamailio's `fix_nated_register`
/// and `set_contact_alias`): when a UDP binding is reached at the address
/// its REGISTER came from, and when a dialog's Contact gets an `alias`
/// naming the address the message came from. TCP bindings are always
/// reached over their connection, or else where they registered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// The source address (from the listener the REGISTER came in on)
    /// when the Contact's address and port are not the source's, or the
    /// Contact asks for an outbound flow (`;ob`, RFC 5626 §5): the
    /// NAT's binding is what reaches the phone. A Contact with a host
    /// name is used as is unless it has `;ob`.
    Auto,
    /// Always the source address.
    Always,
    /// Always the Contact (a phone that is reachable where it says).
    Off,
}

/// Which shard handles a request in stateful mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dispatch {
    /// The shard whose socket received it (SO_REUSEPORT hashes the
    /// 4-tuple), with no hand-off; a CANCEL, non-2xx ACK or INVITE
    /// retransmission that finds no transaction there goes to the shard
    /// a shared directory of live INVITEs names.
    Socket,
    /// The shard its Call-ID hashes to: every request of a call handled
    /// in order by one shard, one peer's calls spread over every shard,
    /// at the cost of a hand-off over the shard mesh for every request
    /// that lands elsewhere (measured: 1.7–1.9× the CPU per call with one
    /// SIPp pair on 2 shards).
    CallId,
}

/// Stateful mode: timers and bounds of the transaction layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionCfg {
    /// RFC 3261 §17.1.1.1 T1, T2, T4 in ms (defaults 500, 4000, 5000).
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// Timer C (RFC 3261 §16.6 step 11): an INVITE branch that has had a
    /// provisional response and no final for this long is cancelled.
    pub timer_c_ms: u64,
    /// A branch that has had no response at all for this long counts as a
    /// 408 and the next target is tried (Kamailio's fr_timer).
    pub branch_timeout_ms: u64,
    /// Transactions (response contexts) per process, split over the
    /// shards; when full, new requests get 503 with Retry-After.
    pub max_transactions: usize,
}

impl Default for TransactionCfg {
    fn default() -> TransactionCfg {
        TransactionCfg {
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            timer_c_ms: 180_000,
            branch_timeout_ms: 5000,
            max_transactions: 1_000_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// Default 127.0.0.1:9060.
    pub listen: SocketAddr,
    /// Serve the admin API (`/admin/`). Default: on for a loopback
    /// listener, off otherwise (it can change routing and health).
    pub admin: bool,
}

/// A configuration error: where, which key, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let file = self.file.display();
        match (self.line, self.key.is_empty()) {
            (0, true) => write!(f, "{file}: {}", self.message),
            (0, false) => write!(f, "{file}: {}: {}", self.key, self.message),
            (l, true) => write!(f, "{file}:{l}: {}", self.message),
            (l, false) => write!(f, "{file}:{l}: {}: {}", self.key, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_path_buf(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, path)
    }

    /// Validate config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let cx = Cx { text, file: path };
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(0, |s| cx.line_of(s.start));
            // The toml message repeats the location; keep its first line.
            let message = e
                .message()
                .lines()
                .next()
                .unwrap_or("invalid TOML")
                .to_string();
            ConfigError {
                file: path.to_path_buf(),
                line,
                key: String::new(),
                message,
            }
        })?;
        cx.build(raw)
    }
}

/// Validation context: the text (for line numbers) and the file name.
struct Cx<'a> {
    text: &'a str,
    file: &'a Path,
}

impl Cx<'_> {
    fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        at: Option<std::ops::Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<T, ConfigError> {
        Err(ConfigError {
            file: self.file.to_path_buf(),
            line: at.map_or(0, |r| self.line_of(r.start)),
            key: key.into(),
            message: message.into(),
        })
    }

    fn int<T: TryFrom<i64>>(
        &self,
        v: &Spanned<i64>,
        key: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<T, ConfigError> {
        let n = *v.get_ref();
        if !range.contains(&n) {
            return self.err(
                Some(v.span()),
                key,
                format!("{n} is out of range {}..={}", range.start(), range.end()),
            );
        }
        match T::try_from(n) {
            Ok(t) => Ok(t),
            Err(_) => self.err(Some(v.span()), key, format!("{n} is out of range")),
        }
    }

    fn build(&self, raw: raw::RawConfig) -> Result<Config, ConfigError> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let server = Server {
            shards: match &raw.server.shards {
                Some(v) => self.int(v, "server.shards", 1..=256)?,
                None => cores,
            },
            user_agent: raw
                .server
                .user_agent
                .unwrap_or_else(|| format!("Siphon/{}", env!("CARGO_PKG_VERSION"))),
            log_format: self.choice(
                &raw.server.log_format,
                "server.log_format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
                LogFormat::Text,
                "\"text\" or \"json\"",
            )?,
            log_level: self.choice(
                &raw.server.log_level,
                "server.log_level",
                &[
                    ("error", LogLevel::Error),
                    ("warn", LogLevel::Warn),
                    ("info", LogLevel::Info),
                    ("debug", LogLevel::Debug),
                    ("trace", LogLevel::Trace),
                ],
                LogLevel::Info,
                "error, warn, info, debug or trace",
            )?,
            coalesce_us: match &raw.server.coalesce_us {
                Some(v) => self.int(v, "server.coalesce_us", 0..=10_000)?,
                None => DEFAULT_COALESCE_US,
            },
            spread: raw.server.spread.as_ref().is_some_and(|v| *v.get_ref()),
            overload_backlog: match &raw.server.overload_backlog {
                Some(v) => self.int(v, "server.overload_backlog", 0..=65_536)?,
                None => 128,
            },
            overload_occupancy: match &raw.server.overload_occupancy {
                Some(v) => self.int(v, "server.overload_occupancy", 1..=100)?,
                None => 90,
            },
        };
        if server.user_agent.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return self.err(
                None,
                "server.user_agent",
                "must not contain control characters",
            );
        }

        let mut listen = Vec::with_capacity(raw.listen.len());
        for (i, l) in raw.listen.iter().enumerate() {
            let key = |k: &str| format!("listen[{i}].{k}");
            let transport = self.transport(&l.transport, &key("transport"))?;
            let addr: SocketAddr = match l.addr.get_ref().parse() {
                Ok(a) => a,
                Err(_) => {
                    return self.err(Some(l.addr.span()), key("addr"), format!("{:?} is not an IP address and port, like \"127.0.0.1:5060\" or \"[::1]:5060\"", l.addr.get_ref()))
                }
            };
            if addr.port() == 0 {
                return self.err(
                    Some(l.addr.span()),
                    key("addr"),
                    "port 0 is not allowed: name the port peers send to",
                );
            }
            let advertise = match &l.advertise {
                Some(a) => {
                    let probe = format!("sip:{}", a.get_ref());
                    match Uri::parse(probe.as_bytes()) {
                        Ok(u) if u.user.is_none() && u.params.is_empty() && u.headers.is_none() => {
                            Some(a.get_ref().clone())
                        }
                        _ => {
                            return self.err(
                                Some(a.span()),
                                key("advertise"),
                                format!("{:?} is not a host or host:port", a.get_ref()),
                            )
                        }
                    }
                }
                None => None,
            };
            if listen
                .iter()
                .any(|o: &Listener| o.addr == addr && o.transport == transport)
            {
                return self.err(
                    Some(l.addr.span()),
                    key("addr"),
                    format!("{} {addr} is listed twice", transport.as_str()),
                );
            }
            listen.push(Listener {
                transport,
                addr,
                advertise,
            });
        }
        if listen.is_empty() {
            return self.err(None, "listen", "at least one [[listen]] is needed");
        }

        let proxy = Proxy {
            mode: self.choice(
                &raw.proxy.mode,
                "proxy.mode",
                &[("stateless", Mode::Stateless), ("stateful", Mode::Stateful)],
                Mode::Stateless,
                "\"stateless\" or \"stateful\"",
            )?,
            record_route: raw.proxy.record_route.unwrap_or(false),
            max_forwards: match &raw.proxy.max_forwards {
                Some(v) => self.int(v, "proxy.max_forwards", 1..=255)?,
                None => 70,
            },
            udp_max_size: match &raw.proxy.udp_max_size {
                Some(v) => self.int(v, "proxy.udp_max_size", 0..=65_535)?,
                None => 1300,
            },
            transaction: self.transaction(&raw.proxy)?,
            dispatch: self.choice(
                &raw.proxy.dispatch,
                "proxy.dispatch",
                &[("call-id", Dispatch::CallId), ("socket", Dispatch::Socket)],
                Dispatch::Socket,
                "\"call-id\" or \"socket\"",
            )?,
            nat: self.choice(
                &raw.proxy.nat,
                "proxy.nat",
                &[
                    ("auto", Nat::Auto),
                    ("always", Nat::Always),
                    ("off", Nat::Off),
                ],
                Nat::Auto,
                "\"auto\", \"always\" or \"off\"",
            )?,
            topology_secret: match &raw.proxy.topology_secret {
                Some(v) if v.get_ref().len() < 16 => {
                    return self.err(
                        Some(v.span()),
                        "proxy.topology_secret",
                        "at least 16 characters (the key is derived from it)",
                    )
                }
                v => v.as_ref().map(|v| v.get_ref().clone()),
            },
            call_setup_s: match &raw.proxy.call_setup_s {
                Some(v) => self.int(v, "proxy.call_setup_s", 1..=86_400)?,
                None => 300,
            },
            call_timeout_s: match &raw.proxy.call_timeout_s {
                Some(v) => self.int(v, "proxy.call_timeout_s", 1..=604_800)?,
                None => 43_200,
            },
        };

        if server.spread && proxy.mode == Mode::Stateful && proxy.dispatch == Dispatch::Socket {
            return self.err(
                raw.server.spread.as_ref().map(|v| v.span()),
                "server.spread",
                "in stateful mode spreading needs proxy.dispatch = \"call-id\" (a transaction's retransmissions, ACK and CANCEL must reach the shard that holds it)",
            );
        }

        let destinations = self.destinations(&raw.destination, &listen)?;
        let acls = self.acls(&raw.acl)?;
        let prefix_tables = self.prefix_tables(&raw.prefix_table, &destinations)?;
        let routes = self.routes(
            &raw.route,
            &destinations,
            &prefix_tables,
            &acls,
            raw.registrar.is_some(),
        )?;
        // Concurrent calls end with a BYE, which passes through Siphon only
        // when it record-routes (or hides the topology, which does).
        let limited = routes
            .iter()
            .filter(|r| r.max_calls.is_some() && !r.hide)
            .map(|r| format!("route.{}", r.name))
            .chain(
                destinations
                    .iter()
                    .filter(|d| {
                        d.max_calls.is_some() || d.targets.iter().any(|t| t.max_calls.is_some())
                    })
                    .map(|d| format!("destination.{}", d.name)),
            )
            .next();
        if let (Some(key), false) = (limited, proxy.record_route) {
            return self.err(
                None,
                format!("{key}.max_calls"),
                "needs [proxy] record_route = true: the BYE that ends a call must pass through Siphon",
            );
        }

        let metrics = match &raw.metrics {
            Some(m) => {
                let listen = match &m.listen {
                    None => SocketAddr::from(([127, 0, 0, 1], 9060)),
                    Some(l) => match l.get_ref().parse() {
                        Ok(a) => a,
                        Err(_) => {
                            return self.err(
                                Some(l.span()),
                                "metrics.listen",
                                format!("{:?} is not an IP address and port", l.get_ref()),
                            )
                        }
                    },
                };
                let admin = m.admin.unwrap_or(listen.ip().is_loopback());
                Some(Metrics { listen, admin })
            }
            None => None,
        };

        let d = Tcp::default();
        let t = &raw.tcp;
        let tcp = Tcp {
            message_timeout: match &t.message_timeout_ms {
                Some(v) => std::time::Duration::from_millis(self.int(
                    v,
                    "tcp.message_timeout_ms",
                    100..=600_000,
                )?),
                None => d.message_timeout,
            },
            max_per_source: match &t.max_per_source {
                Some(v) => self.int(v, "tcp.max_per_source", 1..=1_000_000)?,
                None => d.max_per_source,
            },
            max_connections: match &t.max_connections {
                Some(v) => self.int(v, "tcp.max_connections", 1..=1_000_000)?,
                None => d.max_connections,
            },
            idle_timeout: match &t.idle_timeout {
                Some(v) => {
                    std::time::Duration::from_secs(self.int(v, "tcp.idle_timeout", 1..=86_400)?)
                }
                None => d.idle_timeout,
            },
            connect_timeout: match &t.connect_timeout_ms {
                Some(v) => std::time::Duration::from_millis(self.int(
                    v,
                    "tcp.connect_timeout_ms",
                    1..=60_000,
                )?),
                None => d.connect_timeout,
            },
        };

        let registrar = match &raw.registrar {
            Some(r) => Some(self.registrar(r)?),
            None => None,
        };
        let auth = match &raw.auth {
            Some(a) => Some(self.auth(a, registrar.as_ref())?),
            None => None,
        };
        let guard = match &raw.guard {
            Some(g) => Some(self.guard(g, &acls)?),
            None => None,
        };

        Ok(Config {
            server,
            listen,
            proxy,
            routes,
            destinations,
            prefix_tables,
            metrics,
            tcp,
            registrar,
            auth,
            guard,
        })
    }

    /// A string that names one of `choices`; `default` when absent.
    /// The error lists what is expected, as `expected` says it.
    fn choice<T: Copy>(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        choices: &[(&str, T)],
        default: T,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(v) = v else { return Ok(default) };
        match choices
            .iter()
            .find(|(name, _)| *name == v.get_ref().as_str())
        {
            Some(&(_, t)) => Ok(t),
            None => self.err(
                Some(v.span()),
                key,
                format!("{:?}: expected {expected}", v.get_ref()),
            ),
        }
    }

    fn fork(
        &self,
        v: &Option<Spanned<String>>,
        key: &str,
        default: Fork,
    ) -> Result<Fork, ConfigError> {
        self.choice(
            v,
            key,
            &[("serial", Fork::Serial), ("parallel", Fork::Parallel)],
            default,
            "\"serial\" or \"parallel\"",
        )
    }

    fn transaction(&self, p: &raw::RawProxy) -> Result<TransactionCfg, ConfigError> {
        let d = TransactionCfg::default();
        let ms = |v: &Option<Spanned<i64>>, key: &str, def: u64, range| match v {
            Some(v) => self.int::<u64>(v, key, range),
            None => Ok(def),
        };
        let t = TransactionCfg {
            t1_ms: ms(&p.t1_ms, "proxy.t1_ms", d.t1_ms, 50..=10_000)?,
            t2_ms: ms(&p.t2_ms, "proxy.t2_ms", d.t2_ms, 100..=60_000)?,
            t4_ms: ms(&p.t4_ms, "proxy.t4_ms", d.t4_ms, 100..=60_000)?,
            timer_c_ms: ms(
                &p.timer_c_ms,
                "proxy.timer_c_ms",
                d.timer_c_ms,
                1000..=3_600_000,
            )?,
            branch_timeout_ms: ms(
                &p.branch_timeout_ms,
                "proxy.branch_timeout_ms",
                d.branch_timeout_ms,
                100..=300_000,
            )?,
            max_transactions: match &p.max_transactions {
                Some(v) => self.int(v, "proxy.max_transactions", 1..=100_000_000)?,
                None => d.max_transactions,
            },
        };
        if t.t2_ms < t.t1_ms {
            return self.err(None, "proxy.t2_ms", "must not be below proxy.t1_ms");
        }
        Ok(t)
    }

    fn transport(&self, t: &Spanned<String>, key: &str) -> Result<Transport, ConfigError> {
        match t.get_ref().to_ascii_lowercase().as_str() {
            "udp" => Ok(Transport::Udp),
            "tcp" => Ok(Transport::Tcp),
            other => self.err(
                Some(t.span()),
                key,
                format!("{other:?}: expected \"udp\" or \"tcp\""),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
