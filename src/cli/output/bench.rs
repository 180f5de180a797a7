//! `mesh bench`'s report: each node's speed, the mesh's speedup and efficiency, and the
//! overhead per task. The report is the command's result, so it goes to stdout.

use super::{align_right, print_json};
use crate::node::JobReport;
use comfy_table::{Table, presets};
use serde::Serialize;
use std::io::{self, Write};
use std::time::Duration;

/// What `mesh bench` found.
#[derive(Debug)]
pub(crate) struct BenchReport {
    /// One demo task on one core of this machine.
    pub(crate) calibration: Duration,
    pub(crate) heavy: JobReport,
    pub(crate) tiny: JobReport,
}

impl BenchReport {
    /// The heavy job's speedup: its serial time (its tasks times the calibration, all on
    /// one core here) over its elapsed time, so "how many of this machine's cores the mesh
    /// was worth". Unlike the task time sum, it does not inflate when workers outnumber
    /// cores and each task's wall time stretches.
    fn speedup(&self) -> f64 {
        let serial = self.calibration.as_secs_f64() * self.heavy.tasks as f64;
        serial / self.heavy.elapsed.as_secs_f64().max(1e-9)
    }

    /// The speedup per worker slot; above 100 % when the workers are faster than this core.
    fn efficiency(&self) -> f64 {
        self.speedup() / f64::from(self.heavy.workers.max(1))
    }

    /// Tiny tasks per second over the mesh.
    fn tiny_rate(&self) -> f64 {
        self.tiny.tasks as f64 / self.tiny.elapsed.as_secs_f64().max(1e-9)
    }

    /// Time each worker spent per tiny task on anything but the task itself.
    fn overhead_per_task(&self) -> Duration {
        let slots = self.tiny.elapsed.as_secs_f64() * f64::from(self.tiny.workers.max(1));
        let idle = (slots - self.tiny.task_time().as_secs_f64()).max(0.0);
        Duration::from_secs_f64(idle / self.tiny.tasks.max(1) as f64)
    }
}

#[derive(Serialize)]
struct JsonBench<'a> {
    calibration_ms: f64,
    heavy: JsonHeavy<'a>,
    tiny: JsonTiny,
}

#[derive(Serialize)]
struct JsonHeavy<'a> {
    tasks: u64,
    elapsed_s: f64,
    workers: u32,
    /// Calibrated serial time over elapsed time.
    speedup: f64,
    efficiency: f64,
    /// Task time sum over elapsed time: how many workers were busy on average.
    busy_workers: f64,
    nodes: Vec<JsonSpeed<'a>>,
}

#[derive(Serialize)]
struct JsonSpeed<'a> {
    name: &'a str,
    peer_id: &'a str,
    workers: u32,
    tasks: u64,
    share: f64,
    ms_per_task: f64,
    relative_speed: f64,
}

#[derive(Serialize)]
struct JsonTiny {
    tasks: u64,
    elapsed_s: f64,
    workers: u32,
    tasks_per_s: f64,
    overhead_us_per_task: f64,
}

/// Prints `mesh bench`: each node's speed, the mesh's speedup and efficiency, and the
/// overhead per task. The report is the command's result, so it goes to stdout.
pub(crate) fn bench_report(b: &BenchReport, json: bool) -> io::Result<()> {
    let h = &b.heavy;
    let cal_ms = b.calibration.as_secs_f64() * 1e3;
    let speeds: Vec<JsonSpeed<'_>> = h
        .nodes
        .iter()
        .filter(|n| n.tasks > 0)
        .map(|n| {
            let ms = n.task_time.as_secs_f64() * 1e3 / n.tasks as f64;
            JsonSpeed {
                name: &n.name,
                peer_id: &n.peer_id,
                workers: n.workers,
                tasks: n.tasks,
                share: n.tasks as f64 / h.tasks.max(1) as f64,
                ms_per_task: ms,
                relative_speed: cal_ms / ms.max(1e-9),
            }
        })
        .collect();
    let tiny = JsonTiny {
        tasks: b.tiny.tasks,
        elapsed_s: b.tiny.elapsed.as_secs_f64(),
        workers: b.tiny.workers,
        tasks_per_s: b.tiny_rate(),
        overhead_us_per_task: b.overhead_per_task().as_secs_f64() * 1e6,
    };
    if json {
        let heavy = JsonHeavy {
            tasks: h.tasks,
            elapsed_s: h.elapsed.as_secs_f64(),
            workers: h.workers,
            speedup: b.speedup(),
            efficiency: b.efficiency(),
            busy_workers: h.speedup(),
            nodes: speeds,
        };
        return print_json(&JsonBench { calibration_ms: cal_ms, heavy, tiny });
    }
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(["node", "workers", "tasks", "% of tasks", "ms per task", "speed (this core = 1.00)"]);
    for s in &speeds {
        t.add_row([
            s.name.to_string(),
            s.workers.to_string(),
            s.tasks.to_string(),
            format!("{:.1}", 100.0 * s.share),
            format!("{:.2}", s.ms_per_task),
            format!("{:.2}", s.relative_speed),
        ]);
    }
    align_right(&mut t, 1..6);
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "Calibration: one demo task (primes below 100000, trial division) takes {cal_ms:.2} ms on one core here."
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Heavy job: {} demo tasks in {:.3} s on {} node(s) with {} workers",
        h.tasks,
        h.elapsed.as_secs_f64(),
        speeds.len(),
        h.workers
    )?;
    writeln!(out, "{t}")?;
    writeln!(
        out,
        "Speedup {:.2}x on {} workers (serial time on this core / elapsed), efficiency {:.1}%",
        b.speedup(),
        h.workers,
        100.0 * b.efficiency()
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Tiny job: {} tasks in {:.3} s on {} workers: {:.0} tasks/s, overhead {:.1} µs per task per worker",
        tiny.tasks, tiny.elapsed_s, tiny.workers, tiny.tasks_per_s, tiny.overhead_us_per_task
    )?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The case users saw: three one-worker nodes sharing two cores. Each 10 ms task's wall
    /// time stretches to 15 ms, so the task time sum says 3x; the calibrated serial time
    /// says what the mesh was worth, 2x.
    #[test]
    fn speedup_does_not_inflate_when_workers_share_cores() {
        let ms = Duration::from_millis;
        let heavy = JobReport::sample(ms(150), 30, 3, ms(450));
        let tiny = JobReport::sample(ms(100), 10, 3, ms(10));
        let b = BenchReport { calibration: ms(10), heavy, tiny };
        assert!((b.heavy.speedup() - 3.0).abs() < 1e-9, "the inflated figure");
        assert!((b.speedup() - 2.0).abs() < 1e-9);
        assert!((b.efficiency() - 2.0 / 3.0).abs() < 1e-9);
    }
}
