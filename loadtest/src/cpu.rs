//! This process's CPU time (user + system, every thread, live or joined)
//! from /proc/self/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).

/// Nanoseconds per clock tick.
const TICK_NS: u64 = 10_000_000;

/// utime + stime of this process in ns, or None where /proc is missing.
pub fn process_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_stat(&stat).map(|ticks| ticks * TICK_NS)
}

/// utime + stime (fields 14 and 15) in ticks. The command name (field 2)
/// is in parentheses and may hold spaces, so fields count from the last ')'.
pub fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut f = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is the first; utime is field 14.
    let utime: u64 = f.nth(11)?.parse().ok()?;
    let stime: u64 = f.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_utime_and_stime_past_a_name_with_spaces() {
        let s =
            "4242 (a (b) c) R 1 4242 4242 0 -1 4194560 100 0 0 0 123 45 0 0 20 0 3 0 9999 1000 200";
        assert_eq!(parse_stat(s), Some(168));
        assert_eq!(parse_stat("4242 (x) R 1 2"), None);
    }

    #[test]
    fn this_process_has_a_cpu_time() {
        assert!(process_cpu_ns().is_some());
    }
}
