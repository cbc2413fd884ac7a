//! The result of a run: printed as `name value` lines and appended as one
//! TSV row (with a header line when the file is new or empty).

use std::io::Write;
use std::path::Path;

use crate::uas::UasStats;

/// The TSV columns, in order.
pub const COLUMNS: &[&str] = &[
    "label",
    "mode",
    "offered_cps",
    "achieved_cps",
    "duration_s",
    "attempted",
    "completed",
    "failed",
    "timeouts",
    "retransmissions",
    "unexpected",
    "p50_us",
    "p90_us",
    "p99_us",
    "max_us",
    "gen_cpu_us_per_call",
    "start_lag_max_us",
];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub label: String,
    pub mode: String,
    pub offered_cps: u32,
    /// Completed calls over the sending window.
    pub achieved_cps: f64,
    /// The sending window (first start to one interval after the last).
    pub duration_s: f64,
    pub attempted: u64,
    pub completed: u64,
    /// Non-2xx final responses and timeouts.
    pub failed: u64,
    pub timeouts: u64,
    /// INVITE, BYE and OPTIONS retransmissions by the UAC.
    pub retransmissions: u64,
    /// Messages the UAC or UAS did not expect (incl. late answers to
    /// finished calls).
    pub unexpected: u64,
    pub send_errors: u64,
    /// INVITE (or OPTIONS) to 200, µs; None without a sample.
    pub p50_us: Option<u64>,
    pub p90_us: Option<u64>,
    pub p99_us: Option<u64>,
    pub max_us: Option<u64>,
    pub gen_cpu_us_per_call: Option<f64>,
    /// The furthest a call start fell behind its schedule, µs.
    pub start_lag_max_us: u64,
    /// Mean time an INVITE waited in the UAS (taken out of the latency).
    pub uas_wait_mean_us: Option<u64>,
    pub uas: Option<UasStats>,
    /// `register`: 200s that did not list the user's contact (counted
    /// in `failed` too).
    pub bad_answers: u64,
    /// `register`: refreshes not sent because the user's previous
    /// REGISTER was unanswered (counted in `failed` too).
    pub overlaps: u64,
    /// Generator threads.
    pub threads: usize,
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

impl Report {
    /// Every call completed and none failed.
    pub fn passed(&self) -> bool {
        self.failed == 0 && self.attempted > 0 && self.completed == self.attempted
    }

    /// The values of `COLUMNS`.
    pub fn values(&self) -> Vec<String> {
        vec![
            self.label.clone(),
            self.mode.clone(),
            self.offered_cps.to_string(),
            format!("{:.1}", self.achieved_cps),
            format!("{:.3}", self.duration_s),
            self.attempted.to_string(),
            self.completed.to_string(),
            self.failed.to_string(),
            self.timeouts.to_string(),
            self.retransmissions.to_string(),
            self.unexpected.to_string(),
            opt(self.p50_us),
            opt(self.p90_us),
            opt(self.p99_us),
            opt(self.max_us),
            opt(self.gen_cpu_us_per_call.map(|v| format!("{v:.2}"))),
            self.start_lag_max_us.to_string(),
        ]
    }

    /// `name value` lines: the TSV columns, then the UAS's own counters.
    pub fn print(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for (k, v) in COLUMNS.iter().zip(self.values()) {
            writeln!(out, "{k:<22} {v}")?;
        }
        writeln!(out, "{:<22} {}", "send_errors", self.send_errors)?;
        if self.mode == "register" {
            writeln!(out, "{:<22} {}", "bad_answers", self.bad_answers)?;
            writeln!(out, "{:<22} {}", "overlaps", self.overlaps)?;
            writeln!(out, "{:<22} {}", "threads", self.threads)?;
        }
        if let Some(w) = self.uas_wait_mean_us {
            writeln!(out, "{:<22} {w}", "uas_wait_mean_us")?;
        }
        if let Some(u) = &self.uas {
            for (k, v) in [
                ("uas_invites", u.invites),
                ("uas_invite_retrans", u.invite_retrans),
                ("uas_acks", u.acks),
                ("uas_byes", u.byes),
                ("uas_bye_retrans", u.bye_retrans),
                ("uas_unexpected", u.unexpected),
                ("uas_send_errors", u.send_errors),
            ] {
                writeln!(out, "{k:<22} {v}")?;
            }
        }
        writeln!(
            out,
            "{:<22} {}",
            "result",
            if self.passed() { "pass" } else { "FAIL" }
        )
    }

    /// Append one row to `path`, with the header line first when the file
    /// is new or empty.
    pub fn append_tsv(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        let mut text = String::new();
        if f.metadata()?.len() == 0 {
            text.push_str(&COLUMNS.join("\t"));
            text.push('\n');
        }
        text.push_str(&self.values().join("\t"));
        text.push('\n');
        f.write_all(text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            label: "siphon".into(),
            mode: "calls".into(),
            offered_cps: 2000,
            achieved_cps: 1999.96,
            duration_s: 5.0,
            attempted: 10_000,
            completed: 10_000,
            p50_us: Some(120),
            p90_us: Some(180),
            p99_us: Some(400),
            max_us: Some(2_100),
            gen_cpu_us_per_call: Some(9.876),
            ..Report::default()
        }
    }

    #[test]
    fn rows_match_the_columns_and_missing_values_are_dashes() {
        let mut r = sample();
        let v = r.values();
        assert_eq!(v.len(), COLUMNS.len());
        assert_eq!(v[..5], ["siphon", "calls", "2000", "2000.0", "5.000"]);
        assert_eq!(v[15], "9.88");
        assert!(r.passed());
        r.p50_us = None;
        r.failed = 1;
        assert_eq!(r.values()[11], "-");
        assert!(!r.passed());
    }

    #[test]
    fn tsv_gets_one_header_then_rows() {
        let path = std::env::temp_dir().join(format!("loadgen-report-{}.tsv", std::process::id()));
        let _ = std::fs::remove_file(&path);
        sample().append_tsv(&path).unwrap();
        sample().append_tsv(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], COLUMNS.join("\t"));
        assert_eq!(lines[1], lines[2]);
        assert!(lines[1].starts_with("siphon\tcalls\t2000\t"));
    }

    #[test]
    fn printed_lines_name_every_column() {
        let mut out = Vec::new();
        sample().print(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for c in COLUMNS {
            assert!(
                text.lines().any(|l| l.split_whitespace().next() == Some(c)),
                "{c}"
            );
        }
        assert!(text.ends_with("result                 pass\n"), "{text}");
    }
}
