//! Everything mesh prints: results on stdout, statistics and progress on stderr, or one
//! JSON document on stdout with `--json`. This is the only module that prints.

use super::bench::BenchReport;
use crate::job::{InputLines, PrimesJob, WasmJob};
use crate::node::JobReport;
use crate::node::membership::PeerRow;
use crate::node::report::JobResults;
use comfy_table::{CellAlignment, Table, presets};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A usage error found after clap's parsing: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    UsageError(e.to_string()).into()
}

/// How long a job runs before its progress bar appears.
const BAR_DELAY: Duration = Duration::from_millis(400);

/// A progress bar on stderr that appears only for work longer than a moment, and never
/// when stderr is not a terminal (indicatif hides it then) or with `--json`.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    quiet: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Self {
        Self { bar: None, started: Instant::now(), quiet }
    }

    pub fn update(&mut self, done: u64, total: u64) {
        if self.bar.is_none() && !self.quiet && self.started.elapsed() >= BAR_DELAY && done < total {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:40} {pos}/{len} tasks  {elapsed} (eta {eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar()); // the template is a constant
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(250));
            self.bar = Some(bar);
        }
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Statistics every job's JSON document carries.
#[derive(Serialize)]
struct JsonStats<'a> {
    elapsed_s: f64,
    tasks: u64,
    workers: u32,
    task_time_s: f64,
    speedup: f64,
    efficiency: f64,
    duplicates: u64,
    backups: u64,
    retried: u64,
    steals: u64,
    failed: Vec<JsonFailure<'a>>,
    nodes: Vec<JsonNode<'a>>,
}

#[derive(Serialize)]
struct JsonPrimes<'a> {
    job: &'static str,
    algo: String,
    results: Vec<JsonResult>,
    #[serde(flatten)]
    stats: JsonStats<'a>,
}

#[derive(Serialize)]
struct JsonResult {
    n: u64,
    sum: u128,
}

#[derive(Serialize)]
struct JsonWasm<'a> {
    job: &'static str,
    module: String,
    results: Vec<JsonTask<'a>>,
    #[serde(flatten)]
    stats: JsonStats<'a>,
}

#[derive(Serialize)]
struct JsonTask<'a> {
    input: String,
    output: Option<&'a str>,
    error: Option<&'a str>,
    node: &'a str,
    time_s: f64,
    attempts: u32,
}

#[derive(Serialize)]
struct JsonFailure<'a> {
    task: u64,
    error: &'a str,
}

#[derive(Serialize)]
struct JsonNode<'a> {
    name: &'a str,
    peer_id: &'a str,
    workers: u32,
    tasks: u64,
    task_time_s: f64,
    share: f64,
    steals: u64,
}

fn json_stats(r: &JobReport) -> JsonStats<'_> {
    JsonStats {
        elapsed_s: r.elapsed.as_secs_f64(),
        tasks: r.tasks,
        workers: r.workers,
        task_time_s: r.task_time().as_secs_f64(),
        speedup: r.speedup(),
        efficiency: r.efficiency(),
        duplicates: r.duplicates,
        backups: r.backups,
        retried: r.retried,
        steals: r.steals(),
        failed: r.failed.iter().map(|(task, e)| JsonFailure { task: *task, error: e }).collect(),
        nodes: r
            .nodes
            .iter()
            .map(|n| JsonNode {
                name: &n.name,
                peer_id: &n.peer_id,
                workers: n.workers,
                tasks: n.tasks,
                task_time_s: n.task_time.as_secs_f64(),
                share: n.tasks as f64 / r.tasks.max(1) as f64,
                steals: n.steals,
            })
            .collect(),
    }
}

fn print_json(doc: &impl Serialize) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, doc)?;
    writeln!(out)?;
    out.flush()
}

/// Prints a finished primes job: results to stdout, statistics to stderr (or JSON).
pub fn job_report(job: &PrimesJob, r: &JobReport, json: bool) -> io::Result<()> {
    let JobResults::Primes(results) = &r.results else { return Ok(()) };
    if json {
        let results = results.iter().map(|&(n, sum)| JsonResult { n, sum }).collect();
        return print_json(&JsonPrimes { job: "primes", algo: job.algo.to_string(), results, stats: json_stats(r) });
    }
    let mut out = io::stdout().lock();
    for (n, sum) in results {
        writeln!(out, "Sum of primes below {n} is {sum}")?;
    }
    out.flush()?;
    statistics(r)
}

/// Prints a finished WebAssembly job: each task's output in input order on stdout, then
/// failures and statistics on stderr (or JSON).
pub fn wasm_report(job: &WasmJob, inputs: &InputLines, r: &JobReport, json: bool) -> io::Result<()> {
    let JobResults::Wasm(tasks) = &r.results else { return Ok(()) };
    if json {
        let results = tasks
            .iter()
            .enumerate()
            .map(|(i, t)| JsonTask {
                input: String::from_utf8_lossy(inputs.get(i as u64).unwrap_or_default()).into_owned(),
                output: t.output.as_deref(),
                error: t.error.as_deref(),
                node: &t.node,
                time_s: t.time.as_secs_f64(),
                attempts: t.attempts,
            })
            .collect();
        return print_json(&JsonWasm { job: "wasm", module: job.module.to_string(), results, stats: json_stats(r) });
    }
    let mut out = io::stdout().lock();
    for t in tasks {
        if let Some(o) = &t.output {
            writeln!(out, "{o}")?;
        }
    }
    out.flush()?;
    statistics(r)
}

/// The statistics after a job's results, on stderr.
fn statistics(r: &JobReport) -> io::Result<()> {
    let mut err = io::stderr().lock();
    for (task, e) in &r.failed {
        writeln!(err, "task {task} failed: {e}")?;
    }
    writeln!(err, "Time elapsed: {:.3} s", r.elapsed.as_secs_f64())?;
    writeln!(err, "{}", stats_table(r))?;
    writeln!(
        err,
        "Speedup {:.2}x on {} workers (task time sum / elapsed), efficiency {:.1}%",
        r.speedup(),
        r.workers,
        100.0 * r.efficiency()
    )?;
    if r.duplicates > 0 || r.backups > 0 {
        writeln!(err, "{} backup runs, {} duplicate results dropped", r.backups, r.duplicates)?;
    }
    if r.retried > 0 {
        writeln!(err, "{} failed runs were retried", r.retried)?;
    }
    Ok(())
}

/// The per-node table Parallel Python users knew: tasks, share, task time, time per task.
fn stats_table(r: &JobReport) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "node",
        "tasks",
        "% of tasks",
        "task time sum (s)",
        "time per task (s)",
        "workers",
        "steals",
        "peer id",
    ]);
    for n in &r.nodes {
        let per_task = n.task_time.as_secs_f64() / n.tasks.max(1) as f64;
        t.add_row([
            n.name.clone(),
            n.tasks.to_string(),
            format!("{:.2}", 100.0 * n.tasks as f64 / r.tasks.max(1) as f64),
            format!("{:.4}", n.task_time.as_secs_f64()),
            format!("{per_task:.6}"),
            n.workers.to_string(),
            n.steals.to_string(),
            short_peer(&n.peer_id),
        ]);
    }
    for col in 1..7 {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// The last 8 characters of a peer id, as libp2p tools abbreviate it.
fn short_peer(p: &str) -> String {
    let skip = p.chars().count().saturating_sub(8);
    p.chars().skip(skip).collect()
}

/// A one-line note for the user on stderr.
pub fn note(msg: &str) {
    eprintln!("mesh: {msg}");
}

/// Prints `mesh peers`: a table of members (and flagged incompatible nodes) on stdout, with
/// a count of nodes that use another key; or every row as a JSON array.
pub fn peers(rows: &[PeerRow], json: bool) -> io::Result<()> {
    let mut out = io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return out.flush();
    }
    let dash = || "-".to_string();
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header([
        "",
        "name",
        "peer id",
        "address",
        "workers",
        "busy",
        "queued",
        "tasks done",
        "RTT",
        "version",
        "last seen",
    ]);
    for r in rows.iter().filter(|r| r.state != "different-key") {
        let mark = match (r.is_self, r.state.as_str()) {
            (true, _) => "*",
            (_, "incompatible") => "!",
            _ => "",
        };
        t.add_row([
            mark.to_string(),
            r.name.clone(),
            short_peer(&r.peer_id),
            r.addrs.first().cloned().unwrap_or_else(dash),
            r.workers.map_or_else(dash, |v| v.to_string()),
            r.busy.map_or_else(dash, |v| v.to_string()),
            r.queued.map_or_else(dash, |v| v.to_string()),
            r.tasks_done.map_or_else(dash, |v| v.to_string()),
            r.rtt_ms.map_or_else(dash, |v| format!("{v:.1} ms")),
            r.version.clone(),
            r.last_seen_s.map_or_else(dash, |v| format!("{v:.1} s ago")),
        ]);
    }
    writeln!(out, "{t}")?;
    let other_key = rows.iter().filter(|r| r.state == "different-key").count();
    let incompatible = rows.iter().filter(|r| r.state == "incompatible").count();
    let mut err = io::stderr().lock();
    if rows.iter().any(|r| r.is_self) {
        writeln!(err, "* this node")?;
    }
    if incompatible > 0 {
        writeln!(err, "! {incompatible} node(s) run another protocol version and are not used; upgrade them")?;
    }
    if other_key > 0 {
        writeln!(
            err,
            "{other_key} node(s) on this LAN use a different key and cannot join this mesh; check --key or MESH_KEY"
        )?;
    }
    out.flush()
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
    speedup: f64,
    efficiency: f64,
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
pub fn bench_report(b: &BenchReport, json: bool) -> io::Result<()> {
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
            speedup: h.speedup(),
            efficiency: h.efficiency(),
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
    for col in 1..6 {
        if let Some(c) = t.column_mut(col) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
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
    writeln!(out, "Speedup {:.2}x on {} workers, efficiency {:.1}%", h.speedup(), h.workers, 100.0 * h.efficiency())?;
    writeln!(out)?;
    writeln!(
        out,
        "Tiny job: {} tasks in {:.3} s on {} workers: {:.0} tasks/s, overhead {:.1} µs per task per worker",
        tiny.tasks, tiny.elapsed_s, tiny.workers, tiny.tasks_per_s, tiny.overhead_us_per_task
    )?;
    out.flush()
}
