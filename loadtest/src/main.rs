//! `siphon-loadgen calls | options | plot`; `--help` says how.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use siphon_loadtest::args::{self, Command};
use siphon_loadtest::{plot, uac};

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let cmd = match args::parse(&argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("siphon-loadgen: {e}\n(siphon-loadgen --help for usage)");
            return ExitCode::from(2);
        }
    };
    match cmd {
        Command::Help => {
            print!("{}", args::USAGE);
            ExitCode::SUCCESS
        }
        Command::Plot {
            input,
            output,
            title,
        } => match plot::run(&input, &output, title.as_deref()) {
            Ok(n) => {
                println!("siphon-loadgen: {n} points -> {}", output.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("siphon-loadgen plot: {e}");
                ExitCode::from(2)
            }
        },
        Command::Run(cfg) => {
            let report = match uac::run(&cfg) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("siphon-loadgen {}: {e}", cfg.mode.as_str());
                    return ExitCode::from(2);
                }
            };
            let _ = report.print(&mut std::io::stdout().lock());
            if let Some(path) = &cfg.tsv {
                if let Err(e) = report.append_tsv(path) {
                    eprintln!("siphon-loadgen: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
