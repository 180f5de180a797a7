//! What this machine has to give: its physical memory, which the runtimes' caps divide.

/// This machine's physical memory, in MiB, from `/proc/meminfo` (0 where it cannot tell).
pub fn memory_mb() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kib = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok());
    kib.unwrap_or(0) / 1024
}
