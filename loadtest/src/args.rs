//! The command line: `calls`, `options` and `plot`, each with `--name
//! value` (or `--name=value`) options. Hand-written to keep the crate's
//! dependencies to the few the project allows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
siphon-loadgen: SIP load for Siphon (loopback only)

USAGE:
  siphon-loadgen calls    --proxy IP:PORT --uac IP --uas IP:PORT --rate CPS --duration S
                          [--users N [--domain D]] [--sockets N] [--hold-ms MS]
                          [--timeout-ms MS] [--tick-us US] [--tsv FILE] [--label TEXT]
  siphon-loadgen options  --proxy IP:PORT --uac IP --rate RPS --duration S
                          [--sockets N] [--timeout-ms MS] [--tick-us US] [--tsv FILE] [--label TEXT]
  siphon-loadgen register --proxy IP:PORT --uac IP --users N --rate RPS --duration S
                          [--domain D] [--contact IP:PORT] [--expires S] [--threads T]
                          [--sockets N] [--timeout-ms MS] [--tick-us US] [--tsv FILE] [--label TEXT]
  siphon-loadgen plot     --input results.tsv --output plot.svg [--title TEXT]

calls     A UAC and a UAS in one process (one thread). The UAC starts
          calls at an even pace: INVITE (with SDP) to sip:service@PROXY
          (with --users N: to sip:userK@DOMAIN, K cycling over 0..N-1, the
          users `register` registered with --contact at the UAS), 180/200
          from the UAS, ACK, a hold of --hold-ms, BYE, 200. The UAS
          listens on --uas (point the proxy's route for user prefix
          \"service\" there) and answers every INVITE and BYE, retransmitted
          ones again. INVITE and BYE are retransmitted from 500 ms, doubling
          (RFC 3261 timers A and E). A call is failed on a non-2xx final
          response or with no outcome within --timeout-ms.
options   OPTIONS to the proxy itself (sip:PROXY), which answers 200; the
          same counters, retransmissions and latency.
register  REGISTER sip:DOMAIN for users user0..user(N-1) in turn (To and
          From sip:userK@DOMAIN, Contact <sip:userK@CONTACT>), at an even
          pace: the first round registers them, the next ones refresh.
          Each user keeps its Call-ID (and its source socket) for the run,
          with CSeq 1, 2, ... one per round. Retransmitted from 500 ms,
          doubling up to 4 s (timer E); failed on a non-200 final
          response, a 200 that does not list the user's contact, or no
          answer within --timeout-ms.
plot      Reads a results TSV (columns proxy, offered_cps, cpu_us_per_call,
          p50_us, p99_us; others ignored, '-' skipped) and writes an SVG with
          CPU per call and p50/p99 latency against offered rate, one series
          per proxy.

OPTIONS:
  --proxy IP:PORT    the proxy under test
  --uac IP           address for the UAC sockets (ports chosen by the kernel)
  --uas IP:PORT      address the UAS listens on (calls)
  --rate N           new calls (OPTIONS, REGISTERs) per second, spread evenly
  --duration S       seconds of sending (fractions allowed)
  --users N          register: users to cycle over; calls: call userK@DOMAIN
                     (K = call number mod N) instead of service@PROXY
  --domain D         the users' domain (Request-URI of REGISTER) [example.com]
  --contact IP:PORT  register: the host:port of each user's Contact (e.g. the
                     UAS of a later `calls --users` run) [the source socket]
  --expires S        register: the Expires header [3600]
  --threads T        register: generator threads, each with its share of
                     the users, the rate and the sockets [1]
  --sockets N        UAC source sockets, one source port each [8]; spreads
                     the load over the proxy's SO_REUSEPORT shards
  --hold-ms MS       ACK to BYE [100]
  --timeout-ms MS    a call (OPTIONS, REGISTER) not finished by then fails
                     [10000; register: 2000]
  --tick-us US       the loop's wake-up period: everything due leaves
                     together each tick. Shorter: smoother traffic, more
                     generator CPU; it also changes the proxy's CPU per
                     call (bursts wake it less). [2 call starts, 100..500]
  --tsv FILE         append one result row (header first if the file is new)
  --label TEXT       first column of the TSV row, e.g. the proxy's name [-]

At the end it prints the results, one 'name value' line each: offered and
achieved rate (completed / sending window), attempted, completed, failed
(timeouts among them), retransmissions, unexpected messages, INVITE->200
(or OPTIONS->200, REGISTER->200) latency p50/p90/p99/max in microseconds
(kernel receive timestamps, so the generator's own scheduling is not
counted), and the generator's CPU per call. Exit status 0 when every call
completed and none failed, 1 otherwise, 2 on a usage or start-up error.
";

/// Which load to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Calls,
    Options,
    Register,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Calls => "calls",
            Mode::Options => "options",
            Mode::Register => "register",
        }
    }
}

/// Everything a `calls` or `options` run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    pub mode: Mode,
    pub proxy: SocketAddr,
    pub uac: IpAddr,
    /// Where the UAS listens (`calls` only).
    pub uas: Option<SocketAddr>,
    pub rate: u32,
    pub duration: Duration,
    pub sockets: usize,
    pub hold: Duration,
    pub timeout: Duration,
    /// The tick; None: chosen from the rate (see `uac::tick_ns`).
    pub tick: Option<Duration>,
    pub tsv: Option<PathBuf>,
    pub label: String,
    /// Users and their domain (`register`; `calls` to registered users).
    pub aor: Aor,
    /// Generator threads (`register`).
    pub threads: usize,
}

/// Users `user0`..`user(count-1)` of `domain`: who `register` registers
/// and whom `calls` calls (with `count` set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aor {
    /// None: calls go to `sip:service@PROXY` (the configured route).
    pub users: Option<u64>,
    pub domain: String,
    /// The host:port of each Contact registered; None: the UAC socket.
    pub contact: Option<SocketAddr>,
    pub expires: u32,
}

impl Default for Aor {
    fn default() -> Aor {
        Aor {
            users: None,
            domain: DEFAULT_DOMAIN.to_owned(),
            contact: None,
            expires: 3600,
        }
    }
}

/// The users' domain when `--domain` is not given.
pub const DEFAULT_DOMAIN: &str = "example.com";

// One value per process: the size difference does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Run(RunConfig),
    Plot {
        input: PathBuf,
        output: PathBuf,
        title: Option<String>,
    },
    Help,
}

/// Upper bounds that keep every run (and its memory) bounded.
pub const MAX_RATE: u32 = 1_000_000;
pub const MAX_DURATION_S: f64 = 3600.0;
pub const MAX_SOCKETS: usize = 64;
pub const MAX_HOLD_MS: u64 = 60_000;
pub const MAX_TIMEOUT_MS: u64 = 120_000;
pub const TICK_US: std::ops::RangeInclusive<u64> = 20..=10_000;
pub const MAX_USERS: u64 = 10_000_000;
pub const MAX_THREADS: usize = 16;
pub const MAX_EXPIRES: u32 = 604_800;

/// Parse the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, String> {
    if args.is_empty()
        || args
            .iter()
            .any(|a| a == "--help" || a == "-h" || a == "help")
    {
        return Ok(Command::Help);
    }
    let (cmd, rest) = (&args[0], &args[1..]);
    let opts = options(rest)?;
    let allowed: &[&str] = match cmd.as_str() {
        "calls" => &[
            "proxy",
            "uac",
            "uas",
            "rate",
            "duration",
            "sockets",
            "hold-ms",
            "timeout-ms",
            "tick-us",
            "tsv",
            "label",
            "users",
            "domain",
        ],
        "register" => &[
            "proxy",
            "uac",
            "users",
            "domain",
            "contact",
            "expires",
            "threads",
            "rate",
            "duration",
            "sockets",
            "timeout-ms",
            "tick-us",
            "tsv",
            "label",
        ],
        "options" => &[
            "proxy",
            "uac",
            "rate",
            "duration",
            "sockets",
            "timeout-ms",
            "tick-us",
            "tsv",
            "label",
        ],
        "plot" => &["input", "output", "title"],
        other => {
            return Err(format!(
                "unknown command {other:?} (calls, options, register, plot)"
            ))
        }
    };
    if let Some((k, _)) = opts.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(format!("{cmd}: unknown option --{k}"));
    }
    let get = |k: &str| {
        opts.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    let need = |k: &str| get(k).ok_or_else(|| format!("{cmd}: --{k} is required"));

    if cmd == "plot" {
        return Ok(Command::Plot {
            input: PathBuf::from(need("input")?),
            output: PathBuf::from(need("output")?),
            title: get("title").map(str::to_owned),
        });
    }
    let mode = match cmd.as_str() {
        "calls" => Mode::Calls,
        "register" => Mode::Register,
        _ => Mode::Options,
    };
    let proxy = loopback_addr("proxy", need("proxy")?)?;
    let uac = loopback_ip("uac", need("uac")?)?;
    let uas = match mode {
        Mode::Calls => Some(loopback_addr("uas", need("uas")?)?),
        Mode::Options | Mode::Register => None,
    };
    let users = match (mode, get("users")) {
        (Mode::Register, None) => return Err("register: --users is required".into()),
        (_, None) => None,
        (_, Some(v)) => {
            let n: u64 = number("users", v)?;
            if n == 0 || n > MAX_USERS {
                return Err(format!("--users must be 1..={MAX_USERS}"));
            }
            Some(n)
        }
    };
    let domain = get("domain").unwrap_or(DEFAULT_DOMAIN).to_owned();
    if !valid_host(&domain) {
        return Err(format!(
            "--domain: {domain:?} is not a host name or IPv4 address"
        ));
    }
    let contact = get("contact")
        .map(|v| loopback_addr("contact", v))
        .transpose()?;
    let expires: u32 = get("expires").map_or(Ok(3600), |v| number("expires", v))?;
    if expires > MAX_EXPIRES {
        return Err(format!("--expires must be at most {MAX_EXPIRES}"));
    }
    let threads: usize = get("threads").map_or(Ok(1), |v| number("threads", v))?;
    if threads == 0 || threads > MAX_THREADS {
        return Err(format!("--threads must be 1..={MAX_THREADS}"));
    }
    let rate: u32 = number("rate", need("rate")?)?;
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("--rate must be 1..={MAX_RATE}"));
    }
    let secs: f64 = number("duration", need("duration")?)?;
    if !(0.001..=MAX_DURATION_S).contains(&secs) {
        return Err(format!(
            "--duration must be 0.001..={MAX_DURATION_S} seconds"
        ));
    }
    let sockets: usize = get("sockets").map_or(Ok(8), |v| number("sockets", v))?;
    if sockets == 0 || sockets > MAX_SOCKETS {
        return Err(format!("--sockets must be 1..={MAX_SOCKETS}"));
    }
    if threads > sockets {
        return Err("--threads must not exceed --sockets (each thread has its own)".into());
    }
    if users.is_some_and(|u| (threads as u64) > u) {
        return Err("--threads must not exceed --users (each thread has its own)".into());
    }
    let hold: u64 = get("hold-ms").map_or(Ok(100), |v| number("hold-ms", v))?;
    if hold > MAX_HOLD_MS {
        return Err(format!("--hold-ms must be at most {MAX_HOLD_MS}"));
    }
    let default_timeout = if mode == Mode::Register {
        2_000
    } else {
        10_000
    };
    let timeout: u64 =
        get("timeout-ms").map_or(Ok(default_timeout), |v| number("timeout-ms", v))?;
    if !(100..=MAX_TIMEOUT_MS).contains(&timeout) {
        return Err(format!("--timeout-ms must be 100..={MAX_TIMEOUT_MS}"));
    }
    let tick = match get("tick-us") {
        Some(v) => {
            let us: u64 = number("tick-us", v)?;
            if !TICK_US.contains(&us) {
                return Err(format!(
                    "--tick-us must be {}..={}",
                    TICK_US.start(),
                    TICK_US.end()
                ));
            }
            Some(Duration::from_micros(us))
        }
        None => None,
    };
    let label = get("label").unwrap_or("-").to_owned();
    if label.is_empty() || label.contains(['\t', '\n', '\r']) {
        return Err("--label must be non-empty, without tabs or line breaks".into());
    }
    Ok(Command::Run(RunConfig {
        mode,
        proxy,
        uac,
        uas,
        rate,
        duration: Duration::from_secs_f64(secs),
        sockets,
        hold: Duration::from_millis(hold),
        timeout: Duration::from_millis(timeout),
        tick,
        tsv: get("tsv").map(PathBuf::from),
        label,
        aor: Aor {
            users,
            domain,
            contact,
            expires,
        },
        threads,
    }))
}

/// A host name (letters, digits, '-', '.') or an IPv4 address: what may
/// stand after the '@' of the users' URIs.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && !h.starts_with(['.', '-'])
}

/// `--name value` and `--name=value` pairs, in order.
fn options(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = a.strip_prefix("--") else {
            return Err(format!("unexpected argument {a:?}"));
        };
        let (k, v) = match name.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => {
                let v = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                (name.to_owned(), v.clone())
            }
        };
        out.push((k, v));
    }
    Ok(out)
}

fn number<T: std::str::FromStr>(name: &str, v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("--{name}: {v:?} is not a valid number"))
}

/// This tool sends only to the IPv4 loopback range (127.0.0.0/8).
fn loopback_ip(name: &str, v: &str) -> Result<IpAddr, String> {
    let ip: Ipv4Addr = v
        .parse()
        .map_err(|_| format!("--{name}: {v:?} is not an IPv4 address"))?;
    if !ip.is_loopback() {
        return Err(format!(
            "--{name}: {ip} is not in 127.0.0.0/8 (loopback only)"
        ));
    }
    Ok(IpAddr::V4(ip))
}

fn loopback_addr(name: &str, v: &str) -> Result<SocketAddr, String> {
    let a: SocketAddr = v
        .parse()
        .map_err(|_| format!("--{name}: {v:?} is not IP:PORT"))?;
    loopback_ip(name, &a.ip().to_string())?;
    if a.port() == 0 {
        return Err(format!("--{name}: port 0"));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn calls_with_defaults() {
        let c = parse(&args(
            "calls --proxy 127.0.5.1:5060 --uac 127.0.5.2 --uas=127.0.5.3:5080 --rate 3000 --duration 20",
        ))
        .unwrap();
        let Command::Run(c) = c else { panic!("{c:?}") };
        assert_eq!(c.mode, Mode::Calls);
        assert_eq!(c.proxy, "127.0.5.1:5060".parse().unwrap());
        assert_eq!(c.uas, Some("127.0.5.3:5080".parse().unwrap()));
        assert_eq!((c.rate, c.duration), (3000, Duration::from_secs(20)));
        assert_eq!(
            (c.sockets, c.hold, c.timeout),
            (8, Duration::from_millis(100), Duration::from_secs(10))
        );
        assert_eq!((c.tsv, c.label.as_str(), c.tick), (None, "-", None));
    }

    #[test]
    fn options_takes_no_uas_and_fractional_durations() {
        let Command::Run(c) = parse(&args(
            "options --proxy 127.0.5.1:5060 --uac 127.0.5.2 --rate 10 --duration 0.5 --sockets 2 --tsv r.tsv --label siphon --tick-us 250",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!((c.mode, c.uas, c.sockets), (Mode::Options, None, 2));
        assert_eq!(c.duration, Duration::from_millis(500));
        assert_eq!(c.tick, Some(Duration::from_micros(250)));
        assert_eq!(
            (c.tsv, c.label.as_str()),
            (Some(PathBuf::from("r.tsv")), "siphon")
        );
        let e = parse(&args(
            "options --proxy 127.0.5.1:5060 --uac 127.0.5.2 --uas 127.0.5.3:1 --rate 1 --duration 1",
        ))
        .unwrap_err();
        assert!(e.contains("--uas"), "{e}");
    }

    #[test]
    fn refuses_what_would_leave_loopback_or_be_unbounded() {
        let base = "calls --uac 127.0.5.2 --uas 127.0.5.3:5080 --duration 1";
        for (extra, want) in [
            ("--proxy 10.0.0.1:5060 --rate 1", "loopback"),
            ("--proxy 127.0.5.1:5060 --rate 0", "--rate"),
            ("--proxy 127.0.5.1:5060 --rate 2000000", "--rate"),
            ("--proxy 127.0.5.1:5060 --rate 1 --sockets 0", "--sockets"),
            (
                "--proxy 127.0.5.1:5060 --rate 1 --timeout-ms 10",
                "--timeout-ms",
            ),
            ("--proxy 127.0.5.1:5060 --rate x", "not a valid number"),
            (
                "--proxy 127.0.5.1:5060 --rate 1 --bogus 3",
                "unknown option",
            ),
            ("--proxy 127.0.5.1 --rate 1", "IP:PORT"),
        ] {
            let e = parse(&args(&format!("{base} {extra}"))).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
        let e = parse(&args(
            "calls --proxy 127.0.5.1:5060 --uac 127.0.5.2 --rate 1 --duration 1",
        ))
        .unwrap_err();
        assert!(e.contains("--uas is required"), "{e}");
    }

    #[test]
    fn register_needs_users_and_has_its_own_defaults() {
        let Command::Run(c) = parse(&args(
            "register --proxy 127.0.5.1:5060 --uac 127.0.5.2 --users 10000 --rate 3000 --duration 10",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!((c.mode, c.uas, c.threads), (Mode::Register, None, 1));
        assert_eq!(c.timeout, Duration::from_secs(2));
        assert_eq!(
            c.aor,
            Aor {
                users: Some(10_000),
                domain: "example.com".into(),
                contact: None,
                expires: 3600
            }
        );
        let Command::Run(c) = parse(&args(
            "register --proxy 127.0.5.1:5060 --uac 127.0.5.2 --users 10 --rate 1 --duration 1 \
             --domain 127.0.5.1 --contact 127.0.5.3:5080 --expires 60 --threads 2 --timeout-ms 500",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.aor.domain, "127.0.5.1");
        assert_eq!(c.aor.contact, Some("127.0.5.3:5080".parse().unwrap()));
        assert_eq!((c.aor.expires, c.threads), (60, 2));
        assert_eq!(c.timeout, Duration::from_millis(500));

        let base = "register --proxy 127.0.5.1:5060 --uac 127.0.5.2 --rate 1 --duration 1";
        for (extra, want) in [
            ("", "--users is required"),
            ("--users 0", "--users"),
            ("--users 10 --threads 0", "--threads"),
            ("--users 10 --threads 9 --sockets 8", "--sockets"),
            ("--users 2 --threads 3 --sockets 8", "--users"),
            ("--users 10 --contact 10.1.1.1:5060", "loopback"),
            ("--users 10 --domain bad/host", "--domain"),
            ("--users 10 --domain .x", "--domain"),
            ("--users 10 --expires 9999999", "--expires"),
            ("--users 10 --uas 127.0.5.3:5080", "unknown option"),
            ("--users 10 --hold-ms 5", "unknown option"),
        ] {
            let e = parse(&args(&format!("{base} {extra}"))).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn calls_can_target_registered_users() {
        let Command::Run(c) = parse(&args(
            "calls --proxy 127.0.5.1:5060 --uac 127.0.5.2 --uas 127.0.5.3:5080 --rate 10 --duration 1 --users 500 --domain sip.test",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (c.aor.users, c.aor.domain.as_str()),
            (Some(500), "sip.test")
        );
        assert_eq!(c.timeout, Duration::from_secs(10));
        // Without --users: the configured service, as before.
        let Command::Run(c) = parse(&args(
            "calls --proxy 127.0.5.1:5060 --uac 127.0.5.2 --uas 127.0.5.3:5080 --rate 10 --duration 1",
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(c.aor, Aor::default());
        assert!(parse(&args(
            "calls --proxy 127.0.5.1:5060 --uac 127.0.5.2 --uas 127.0.5.3:5080 --rate 10 --duration 1 --threads 2",
        ))
        .unwrap_err()
        .contains("unknown option"));
    }

    #[test]
    fn plot_and_help() {
        assert_eq!(
            parse(&args("plot --input a.tsv --output b.svg")).unwrap(),
            Command::Plot {
                input: "a.tsv".into(),
                output: "b.svg".into(),
                title: None
            }
        );
        assert_eq!(parse(&args("calls --help")).unwrap(), Command::Help);
        assert_eq!(parse(&[]).unwrap(), Command::Help);
        assert!(parse(&args("plot --input a.tsv")).is_err());
        assert!(parse(&args("flood")).is_err());
    }
}
