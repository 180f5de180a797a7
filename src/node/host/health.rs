//! How this machine is doing: CPU temperature, the Raspberry Pi firmware's throttling
//! flags, load and available memory, read from `/sys` and `/proc` where those files
//! exist. A hot or throttled Pi is the classic reason one node of a stack is slow, so
//! every node gossips these figures in its announce and `mesh peers` shows them.
//!
//! Reading costs four small file reads; [`HealthProbe`] does it at most every
//! [`HEALTH_EVERY`] for the once-a-second announce.

use crate::protocol::membership::Health;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the announce's figures are read again.
pub(crate) const HEALTH_EVERY: Duration = Duration::from_secs(5);

/// The first thermal zone: the SoC on a Raspberry Pi, the CPU package on most PCs.
const TEMP: &str = "sys/class/thermal/thermal_zone0/temp";
/// The Raspberry Pi firmware driver's throttled flags (what `vcgencmd get_throttled`
/// prints), in hex: under the driver's device, whose name varies with the board.
const FIRMWARE: &str = "sys/bus/platform/drivers/raspberrypi-firmware";
const THROTTLED: &str = "get_throttled";
const LOADAVG: &str = "proc/loadavg";
const MEMINFO: &str = "proc/meminfo";

/// The 1-minute load average alone (what `--when-idle` decides from), where it can be read.
pub(crate) fn load1() -> Option<f64> {
    let l = std::fs::read_to_string(Path::new("/").join(LOADAVG)).ok()?;
    parse_load(&l).map(|c| f64::from(c) / 100.0)
}

/// The figures from the files under `root` (`/`, or a test's fixture tree); each one
/// absent when its file is missing or unreadable.
pub(crate) fn read_under(root: &Path) -> Health {
    let file = |p: &str| std::fs::read_to_string(root.join(p)).ok();
    Health {
        temp_mc: file(TEMP).and_then(|t| t.trim().parse().ok()),
        throttled: throttled_file(root).and_then(|f| std::fs::read_to_string(f).ok()).and_then(|t| parse_hex(t.trim())),
        load_centi: file(LOADAVG).and_then(|l| parse_load(&l)),
        mem_avail_mb: file(MEMINFO).and_then(|m| parse_available(&m)),
    }
}

/// The firmware device's `get_throttled`, if this is a Pi.
fn throttled_file(root: &Path) -> Option<PathBuf> {
    let devices = std::fs::read_dir(root.join(FIRMWARE)).ok()?;
    devices.flatten().map(|d| d.path().join(THROTTLED)).find(|f| f.is_file())
}

fn parse_hex(t: &str) -> Option<u32> {
    u32::from_str_radix(t.strip_prefix("0x").unwrap_or(t), 16).ok()
}

/// The 1-minute load average, in hundredths.
fn parse_load(loadavg: &str) -> Option<u32> {
    let one: f64 = loadavg.split_whitespace().next()?.parse().ok()?;
    (one.is_finite() && one >= 0.0).then(|| (one * 100.0).round().min(f64::from(u32::MAX)) as u32)
}

/// `MemAvailable` in MiB.
fn parse_available(meminfo: &str) -> Option<u64> {
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib / 1024)
}

/// The figures for the announce, read again at most every [`HEALTH_EVERY`].
#[derive(Debug)]
pub(crate) struct HealthProbe {
    root: PathBuf,
    last: Option<(Instant, Health)>,
}

impl HealthProbe {
    pub(crate) fn new() -> Self {
        Self { root: PathBuf::from("/"), last: None }
    }

    pub(crate) fn now(&mut self, now: Instant) -> Health {
        match self.last {
            Some((at, h)) if now.saturating_duration_since(at) < HEALTH_EVERY => h,
            _ => {
                let h = read_under(&self.root);
                self.last = Some((now, h));
                h
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixture tree with the four files as a Raspberry Pi 3B has them.
    fn pi(dir: &Path, throttled: &str) {
        for (p, text) in [
            (TEMP, "71234\n"),
            ("sys/bus/platform/drivers/raspberrypi-firmware/soc:firmware/get_throttled", throttled),
            (LOADAVG, "3.97 2.10 1.05 5/321 4242\n"),
            (MEMINFO, "MemTotal:         948280 kB\nMemFree:          120000 kB\nMemAvailable:     613376 kB\n"),
        ] {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
    }

    #[test]
    fn a_pi_says_all_four_and_a_bare_tree_none() {
        let dir = std::env::temp_dir().join(format!("mesh-health-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        pi(&dir, "50005\n");
        let h = read_under(&dir);
        assert_eq!(
            h,
            Health { temp_mc: Some(71_234), throttled: Some(0x50005), load_centi: Some(397), mem_avail_mb: Some(599) }
        );
        assert!(h.throttled_now() && h.under_voltage_now());
        pi(&dir, "0x0");
        assert!(!read_under(&dir).throttled_now());
        // Missing or garbled files are simply unknown.
        std::fs::write(dir.join(TEMP), "hot").unwrap();
        std::fs::remove_file(dir.join(FIRMWARE).join("soc:firmware").join(THROTTLED)).unwrap();
        let h = read_under(&dir);
        assert_eq!((h.temp_mc, h.throttled), (None, None));
        assert_eq!(read_under(&dir.join("nowhere")), Health::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_probe_reads_again_only_after_its_interval() {
        let dir = std::env::temp_dir().join(format!("mesh-health-probe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        pi(&dir, "0");
        let mut p = HealthProbe { root: dir.clone(), last: None };
        let t0 = Instant::now();
        assert_eq!(p.now(t0).temp_mc, Some(71_234));
        std::fs::write(dir.join(TEMP), "50000").unwrap();
        assert_eq!(p.now(t0 + HEALTH_EVERY / 2).temp_mc, Some(71_234), "cached");
        assert_eq!(p.now(t0 + HEALTH_EVERY).temp_mc, Some(50_000), "read again");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
