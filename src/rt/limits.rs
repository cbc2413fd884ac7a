//! Start-up limits: glommio registers `io_memory` bytes of locked memory
//! per shard (for each of its rings), bounded by RLIMIT_MEMLOCK, which on
//! many hosts is small (8 MiB here) and cannot be raised without privilege.

/// Below this per shard glommio cannot start its rings.
pub const MIN_PER_SHARD: u64 = 512 << 10;

/// glommio's default; more gains nothing for SIP-sized messages.
const MAX_IO_MEMORY: u64 = 10 << 20;

/// RLIMIT_MEMLOCK's soft limit in bytes, from /proc/self/limits (no
/// unsafe getrlimit). `None` means unlimited or unknown.
pub fn memlock_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_memlock(&text)
}

fn parse_memlock(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max locked memory"))?;
    let soft = line["Max locked memory".len()..]
        .split_whitespace()
        .next()?;
    soft.parse().ok()
}

/// `io_memory` for each of `shards` so that shards × 3 rings × io_memory
/// fits in `limit`; `None` if that leaves less than `MIN_PER_SHARD`.
pub fn io_memory_per_shard(limit: Option<u64>, shards: usize) -> Option<usize> {
    let per = match limit {
        None => MAX_IO_MEMORY,
        Some(l) => (l / (shards as u64 * 3)).min(MAX_IO_MEMORY) & !4095,
    };
    (per >= MIN_PER_SHARD / 3).then_some(per as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_soft_limit() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \nMax locked memory         8388608              8388608              bytes     \n";
        assert_eq!(parse_memlock(text), Some(8 << 20));
        let unlimited =
            "Max locked memory         unlimited            unlimited            bytes     \n";
        assert_eq!(parse_memlock(unlimited), None);
    }

    #[test]
    fn sizes_io_memory_to_fit() {
        assert_eq!(io_memory_per_shard(Some(8 << 20), 2), Some(1_396_736));
        assert!(io_memory_per_shard(Some(8 << 20), 2).unwrap() as u64 * 2 * 3 <= 8 << 20);
        assert_eq!(io_memory_per_shard(None, 4), Some(10 << 20));
        assert_eq!(
            io_memory_per_shard(Some(64 << 10), 2),
            None,
            "too small to start"
        );
    }
}
