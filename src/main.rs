//! The `siphon` command.
//!
//! `siphon [--config FILE]` runs the proxy; `siphon check` validates a
//! config; `siphon parse FILE...` runs the proxy's parser over saved
//! messages and prints the verdict a proxy would act on.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use siphon::config::Config;
use siphon::metrics::Metrics;
use siphon::proxy::Hosts;
use siphon::rt::{Control, Runtime};
use siphon::sip::{Framing, Limits, Message};

/// The bundled config, relative to the working directory.
const DEFAULT_CONFIG: &str = "config/siphon.toml";

const USAGE: &str = "\
siphon - a SIP edge proxy for carriers

USAGE:
    siphon [--config FILE]            run the proxy (default: config/siphon.toml)
    siphon check [--config FILE]      validate a config (default: config/siphon.toml)
    siphon parse [--stream] FILE...   parse saved SIP messages and print the verdict
    siphon --help | --version

run:
    Starts one shard per core (server.shards) serving the UDP and TCP
    listeners of FILE (stateless or stateful, with the registrar and the
    routing table FILE configures), and the metrics listener if
    configured. SIGHUP reloads the routing (routes, destination sets,
    prefix tables, ACLs) from FILE; a config that does not validate is
    rejected with its error and the running one stays. SIGTERM or SIGINT
    stops it: it stops reading, lets queued TCP writes drain for up to
    2 s, and exits 0. Exit 1 on a config error,
    2 on a usage error, 3 if it cannot start (port in use, io_uring not
    available, metrics port in use).

check:
    Reads FILE, validates every key, and prints `FILE: OK (...)` or the
    first error as `FILE:LINE: KEY: what is wrong`. Exit status 0 or 1.

parse:
    Each FILE holds one message as it would arrive in a UDP datagram (or,
    with --stream, as a TCP/TLS frame, where Content-Length is required).
    Prints `FILE: OK <summary>` or `FILE: <status> <reason>` (the answer a
    proxy would send to a bad request) or `FILE: drop <reason>` (a bad
    response or garbage). Exit status 0 if every file parsed, 1 otherwise.

Not built yet: TLS, DNS (see README.md).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("parse") => parse(&args[1..]),
        Some("check") => check(&args[1..]),
        Some("--version" | "-V") => {
            println!("siphon {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        None => run(&PathBuf::from(DEFAULT_CONFIG)),
        Some("--config" | "-c") if args.len() == 2 => run(&PathBuf::from(&args[1])),
        _ => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}

fn run(path: &std::path::Path) -> ExitCode {
    let cfg = match Config::load(path) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            eprintln!("siphon: {e}");
            return ExitCode::FAILURE;
        }
    };
    init_logs(&cfg.server);
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for (sig, flag) in [
        (signal_hook::consts::SIGTERM, &stop),
        (signal_hook::consts::SIGINT, &stop),
        (signal_hook::consts::SIGHUP, &hup),
    ] {
        if let Err(e) = signal_hook::flag::register(sig, flag.clone()) {
            tracing::error!("cannot handle signal {sig}: {e}");
            return ExitCode::from(3);
        }
    }
    let mut rt = match Runtime::start(cfg.clone(), Arc::new(Hosts::system())) {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(3);
        }
    };
    let control = Arc::new(Control::new(&rt, cfg.clone(), path.to_path_buf()));
    let _metrics = match &cfg.metrics {
        Some(m) => match Metrics::start_with(
            m.listen,
            rt.counters(),
            gauges(&rt),
            m.admin
                .then(|| control.clone() as Arc<dyn siphon::metrics::Admin>),
        ) {
            Ok(srv) => {
                tracing::info!(addr = %srv.addr, "metrics on http://{}/metrics", srv.addr);
                Some(srv)
            }
            Err(e) => {
                tracing::error!("cannot listen on {} for metrics: {e}", m.listen);
                return ExitCode::from(3);
            }
        },
        None => None,
    };
    if let Some(r) = &rt.replayed {
        tracing::info!(
            records = r.records,
            bindings = r.bindings,
            "registrar journal replayed: {} records, {} live bindings",
            r.records,
            r.bindings
        );
        for (file, bytes) in &r.torn {
            tracing::warn!("registrar journal {}: {bytes} bytes at the end were not a whole record (a write cut short) and were skipped", file.display());
        }
    }
    let listening: Vec<String> = rt
        .listening
        .iter()
        .map(|(t, a)| format!("{} {a}", t.as_str()))
        .collect();
    tracing::info!(shards = cfg.server.shards, config = %path.display(), "{} shards serving {}", cfg.server.shards, listening.join(", "));
    while !stop.load(Ordering::Relaxed) {
        if hup.swap(false, Ordering::Relaxed) {
            // The outcome is logged by the reload itself.
            let _ = control.reload();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    tracing::info!("stopping");
    rt.shutdown();
    let s = rt.snapshot();
    tracing::info!(
        "stopped: {} datagrams in, {} out, {} forwarded, {} answered, {} dropped; tcp: {} messages in, {} out, {} connections",
        s.datagrams_in,
        s.datagrams_out,
        s.forwarded,
        s.replied,
        s.drops.iter().map(|(_, n)| n).sum::<u64>(),
        s.tcp_in,
        s.tcp_out,
        s.tcp_accepted + s.tcp_connected
    );
    ExitCode::SUCCESS
}

/// Process-wide gauges for the metrics listener.
fn gauges(rt: &Runtime) -> Vec<siphon::metrics::Gauge> {
    let mut g: Vec<siphon::metrics::Gauge> = Vec::new();
    if let Some(r) = rt.registrar.clone() {
        g.push((
            "siphon_registrar_bindings",
            "bindings in the location table (live, or expired and not yet swept)",
            Arc::new(move || r.store.len() as u64),
        ));
    }
    g
}

/// Log lines to stderr, as text or JSON, at the configured level.
fn init_logs(server: &siphon::config::Server) {
    use siphon::config::{LogFormat, LogLevel};
    use tracing_subscriber::filter::LevelFilter;
    let level = match server.log_level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    match server.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn check(args: &[String]) -> ExitCode {
    let path = match args {
        [] => PathBuf::from(DEFAULT_CONFIG),
        [flag, file] if flag == "--config" || flag == "-c" => PathBuf::from(file),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match Config::load(&path) {
        Ok(c) => {
            println!(
                "{}: OK ({} listeners, {} routes, {} destinations, {} prefix table entries, {} shards)",
                path.display(),
                c.listen.len(),
                c.routes.len(),
                c.destinations.len(),
                c.prefix_tables.iter().map(|t| t.table.len()).sum::<usize>(),
                c.server.shards
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[String]) -> ExitCode {
    let stream = args.iter().any(|a| a == "--stream");
    let files: Vec<&String> = args.iter().filter(|a| *a != "--stream").collect();
    if files.is_empty() {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    }
    let framing = if stream {
        Framing::Stream
    } else {
        Framing::Datagram
    };
    let mut all_ok = true;
    for f in files {
        let data = match std::fs::read(f) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("{f}: cannot read: {e}");
                all_ok = false;
                continue;
            }
        };
        let verdict = match Message::parse(Bytes::from(data), framing, &Limits::default()) {
            Ok(m) => match m.validate() {
                Ok(()) => Ok(m),
                Err(e) => Err((e, m.is_request())),
            },
            Err(e) => Err((e.error(), e.is_request())),
        };
        match verdict {
            Ok(m) => println!("{f}: OK {}", summary(&m)),
            Err((e, true)) => {
                all_ok = false;
                println!("{f}: {} {e}", e.status());
            }
            Err((e, false)) => {
                all_ok = false;
                println!("{f}: drop {e}");
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn summary(m: &Message) -> String {
    let start = match m.status() {
        Some(code) => format!("response {code}"),
        None => format!(
            "request {} {}",
            String::from_utf8_lossy(m.method_bytes()),
            String::from_utf8_lossy(m.request_uri_bytes().unwrap_or_default())
        ),
    };
    format!(
        "{start}, {} header fields, {} Via, body {} bytes",
        m.fields().len(),
        m.vias().count(),
        m.body().len()
    )
}
