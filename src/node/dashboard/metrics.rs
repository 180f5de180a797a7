//! `/metrics`: this node's counters, gauges and task-duration histogram in the Prometheus
//! text exposition format, version 0.0.4 (served as `text/plain; version=0.0.4`).
//!
//! Written by hand rather than with `prometheus-client`, whose OpenMetrics output
//! (`x_total` samples under `# TYPE x counter`) Debian's `promtool check metrics` 2.42
//! rejects. Every family has `# HELP` and `# TYPE`; counters end in `_total`; units are
//! `_seconds` and `_bytes`. The only labels are bounded sets: the job kind (4 values), a
//! peer state (3) and the build. No label names a task, a job or a peer.

use crate::core::{Counters, Status};
use crate::job::JobKind;
use crate::node::api::view::{BlobStats, Health};
use std::fmt::Write;
use std::time::Duration;

/// Upper bounds of the task-duration histogram's buckets, in seconds.
pub(crate) const BUCKETS: [f64; 12] = [0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0];

/// Task durations of one job kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Histogram {
    /// Per bucket, not cumulative; the last counts tasks above every bound.
    counts: [u64; BUCKETS.len() + 1],
    sum_s: f64,
}

impl Histogram {
    pub(crate) fn observe(&mut self, took: Duration) {
        let s = took.as_secs_f64();
        let i = BUCKETS.iter().position(|&b| s <= b).unwrap_or(BUCKETS.len());
        self.counts[i] += 1;
        self.sum_s += s;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Tasks this node's workers ran, by job kind.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct KindTally {
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) durations: Histogram,
}

/// Everything `/metrics` shows, taken at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Sample {
    pub(crate) version: String,
    /// Indexed like [`JobKind::ALL`].
    pub(crate) kinds: [KindTally; 4],
    /// Failures of this node's jobs that were given another run.
    pub(crate) retried: u64,
    pub(crate) jobs_submitted: u64,
    pub(crate) jobs_finished: u64,
    pub(crate) jobs_running: u64,
    pub(crate) counters: Counters,
    pub(crate) blobs: BlobStats,
    pub(crate) status: Status,
    /// Members, nodes seen with another key, with another protocol.
    pub(crate) peers: [u64; 3],
    pub(crate) lending: bool,
    pub(crate) health: Health,
}

impl Sample {
    /// The exposition text.
    pub(crate) fn render(&self) -> String {
        let mut out = String::with_capacity(6 * 1024);
        let w = &mut out;
        let kinds = || JobKind::ALL.iter().zip(&self.kinds);
        family(
            w,
            "mesh_build_info",
            "gauge",
            "Always 1; the labels give this node's mesh version and CPU architecture.",
        );
        let arch = std::env::consts::ARCH;
        let _ = writeln!(w, "mesh_build_info{{version=\"{}\",arch=\"{arch}\"}} 1", escape(&self.version));
        family(w, "mesh_tasks_done_total", "counter", "Tasks this node's workers ran that succeeded, by job kind.");
        for (k, t) in kinds() {
            let _ = writeln!(w, "mesh_tasks_done_total{{kind=\"{k}\"}} {}", t.done);
        }
        family(
            w,
            "mesh_tasks_failed_total",
            "counter",
            "Task runs on this node that failed (an error, a non-zero exit), by job kind.",
        );
        for (k, t) in kinds() {
            let _ = writeln!(w, "mesh_tasks_failed_total{{kind=\"{k}\"}} {}", t.failed);
        }
        let c = &self.counters;
        let counters: [(&str, &str, u64); 11] = [
            (
                "mesh_tasks_retried_total",
                "Failed tasks of jobs submitted here that were given another run.",
                self.retried,
            ),
            ("mesh_steal_requests_sent_total", "Steal requests this node sent to busier nodes.", c.steal_requests),
            (
                "mesh_steal_requests_received_total",
                "Steal requests this node received from idle nodes.",
                c.steal_requests_received,
            ),
            (
                "mesh_steal_requests_refused_total",
                "Steal requests left unanswered: their thief asked faster than its rate allows.",
                c.steal_requests_refused,
            ),
            ("mesh_steals_total", "Steal requests of this node that brought work.", c.steals),
            ("mesh_tasks_stolen_total", "Tasks this node took from others by stealing.", c.tasks_stolen),
            ("mesh_tasks_given_total", "Tasks this node gave to thieves.", c.tasks_given),
            (
                "mesh_blob_received_bytes_total",
                "Blob bytes fetched from peers (modules, inputs, files).",
                self.blobs.bytes_in,
            ),
            ("mesh_blob_sent_bytes_total", "Blob bytes served to peers.", self.blobs.bytes_out),
            ("mesh_jobs_submitted_total", "Jobs submitted on this node.", self.jobs_submitted),
            ("mesh_jobs_finished_total", "Jobs submitted on this node that finished.", self.jobs_finished),
        ];
        for (name, help, value) in counters {
            family(w, name, "counter", help);
            let _ = writeln!(w, "{name} {value}");
        }
        family(
            w,
            "mesh_peers",
            "gauge",
            "Nodes this node knows of, by state: members, and nodes seen with another key or protocol.",
        );
        for (state, n) in ["member", "different-key", "incompatible"].iter().zip(self.peers) {
            let _ = writeln!(w, "mesh_peers{{state=\"{state}\"}} {n}");
        }
        let s = &self.status;
        let gauges: [(&str, &str, f64); 5] = [
            (
                "mesh_workers",
                "Worker slots this node lends now (0 outside --hours, or when not idle).",
                f64::from(s.workers),
            ),
            ("mesh_workers_busy", "Workers running a task now.", f64::from(s.busy)),
            ("mesh_tasks_queued", "Tasks queued on this node and not started.", s.queued as f64),
            ("mesh_jobs_running", "Jobs submitted on this node that have not finished.", self.jobs_running as f64),
            (
                "mesh_lending",
                "1 if this node takes tasks now (--hours, --when-idle), else 0.",
                f64::from(u8::from(self.lending)),
            ),
        ];
        for (name, help, value) in gauges {
            family(w, name, "gauge", help);
            let _ = writeln!(w, "{name} {value}");
        }
        self.render_health(w);
        family(w, "mesh_task_duration_seconds", "histogram", "How long task runs on this node took, by job kind.");
        for (k, t) in kinds() {
            let mut cumulative = 0;
            for (i, bound) in BUCKETS.iter().enumerate() {
                cumulative += t.durations.counts[i];
                let _ = writeln!(w, "mesh_task_duration_seconds_bucket{{kind=\"{k}\",le=\"{bound}\"}} {cumulative}");
            }
            let count = t.durations.count();
            let _ = writeln!(w, "mesh_task_duration_seconds_bucket{{kind=\"{k}\",le=\"+Inf\"}} {count}");
            let _ = writeln!(w, "mesh_task_duration_seconds_sum{{kind=\"{k}\"}} {}", t.durations.sum_s);
            let _ = writeln!(w, "mesh_task_duration_seconds_count{{kind=\"{k}\"}} {count}");
        }
        out
    }

    /// The machine's health, each gauge only where the node can tell.
    fn render_health(&self, w: &mut String) {
        let h = &self.health;
        let known: [(&str, &str, Option<f64>); 5] = [
            ("mesh_cpu_temperature_celsius", "CPU temperature.", h.temp_mc.map(|t| f64::from(t) / 1e3)),
            (
                "mesh_throttled",
                "1 if the CPU runs slower than it could now (Raspberry Pi firmware: capped, throttled or at its soft temperature limit).",
                h.throttled.map(|_| f64::from(u8::from(h.throttled_now()))),
            ),
            (
                "mesh_under_voltage",
                "1 if the supply voltage is too low now (Raspberry Pi firmware).",
                h.throttled.map(|_| f64::from(u8::from(h.under_voltage_now()))),
            ),
            ("mesh_load1", "The machine's 1-minute load average.", h.load_centi.map(|l| f64::from(l) / 100.0)),
            (
                "mesh_memory_available_bytes",
                "Memory available to new programs (MemAvailable).",
                h.mem_avail_mb.map(|m| m as f64 * 1024.0 * 1024.0),
            ),
        ];
        for (name, help, value) in known {
            if let Some(v) = value {
                family(w, name, "gauge", help);
                let _ = writeln!(w, "{name} {v}");
            }
        }
    }
}

fn family(w: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(w, "# HELP {name} {help}");
    let _ = writeln!(w, "# TYPE {name} {kind}");
}

/// A label value as the text format quotes it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn the_histogram_counts_each_task_once_in_cumulative_buckets() {
        let mut s = Sample { version: "0.1.0".into(), ..Sample::default() };
        let wasm = &mut s.kinds[1];
        for ms in [0, 5, 5, 700, 4000, 9_999_999] {
            wasm.durations.observe(Duration::from_millis(ms));
        }
        let text = s.render();
        let b = |le: &str| value(&text, &format!("mesh_task_duration_seconds_bucket{{kind=\"wasm\",le=\"{le}\"}}"));
        assert_eq!(b("0.001"), Some(1.0));
        assert_eq!(b("0.01"), Some(3.0));
        assert_eq!(b("1"), Some(4.0));
        assert_eq!(b("5"), Some(5.0));
        assert_eq!(b("1800"), Some(5.0));
        assert_eq!(b("+Inf"), Some(6.0));
        assert_eq!(value(&text, "mesh_task_duration_seconds_count{kind=\"wasm\"}"), Some(6.0));
        assert_eq!(value(&text, "mesh_task_duration_seconds_count{kind=\"primes\"}"), Some(0.0));
    }

    #[test]
    fn every_family_has_help_and_type_and_unknown_health_is_left_out() {
        let mut s = Sample { version: "0.1.0".into(), ..Sample::default() };
        s.counters.steal_requests_received = 7;
        s.health.load_centi = Some(150);
        let text = s.render();
        assert_eq!(value(&text, "mesh_steal_requests_received_total"), Some(7.0));
        assert_eq!(value(&text, "mesh_load1"), Some(1.5));
        assert!(!text.contains("mesh_cpu_temperature_celsius"), "no temperature known");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = name.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
            assert!(text.contains(&format!("# TYPE {family} ")), "{name} has no TYPE");
            assert!(text.contains(&format!("# HELP {family} ")), "{name} has no HELP");
        }
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
