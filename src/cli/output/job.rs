//! A finished job: its results on stdout in input order, then failures, the elapsed time
//! and the per-node statistics table on stderr; or one JSON document on stdout.

use super::{align_right, print_json, short_peer};
use crate::job::{InputLines, PrimesJob, WasmJob};
use crate::node::{JobReport, JobResults, MEASURABLE};
use comfy_table::{Table, presets};
use serde::Serialize;
use std::io::{self, Write};

/// Statistics every job's JSON document carries.
#[derive(Serialize)]
pub(super) struct JsonStats<'a> {
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
    /// Failed tasks beyond `failed`, whose errors the owner did not keep.
    failed_unlisted: u64,
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

pub(super) fn json_stats(r: &JobReport) -> JsonStats<'_> {
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
        failed: r.failed.iter().map(|f| JsonFailure { task: f.task, error: &f.error }).collect(),
        failed_unlisted: r.failed_unlisted,
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

/// Prints a finished primes job: results to stdout, statistics to stderr (or JSON).
pub(crate) fn job_report(job: &PrimesJob, r: &JobReport, json: bool) -> io::Result<()> {
    let JobResults::Primes(results) = &r.results else { return Ok(()) };
    if json {
        let results = results.iter().map(|r| JsonResult { n: r.n, sum: r.sum }).collect();
        return print_json(&JsonPrimes { job: "primes", algo: job.algo.to_string(), results, stats: json_stats(r) });
    }
    let mut out = io::stdout().lock();
    for r in results {
        writeln!(out, "Sum of primes below {} is {}", r.n, r.sum)?;
    }
    out.flush()?;
    statistics(r)
}

/// Prints a finished WebAssembly job: each task's output in input order on stdout, then
/// failures and statistics on stderr (or JSON).
pub(crate) fn wasm_report(job: &WasmJob, inputs: &InputLines, r: &JobReport, json: bool) -> io::Result<()> {
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
pub(super) fn statistics(r: &JobReport) -> io::Result<()> {
    let mut err = io::stderr().lock();
    for f in &r.failed {
        writeln!(err, "task {} failed: {}", f.task, f.error)?;
    }
    if r.failed_unlisted > 0 {
        writeln!(err, "... and {} more tasks failed (their errors were not kept)", r.failed_unlisted)?;
    }
    drop(err);
    table_and_speedup(r)
}

/// The elapsed time, the per-node table and the speedup, on stderr.
pub(super) fn table_and_speedup(r: &JobReport) -> io::Result<()> {
    let mut err = io::stderr().lock();
    writeln!(err, "Time elapsed: {:.3} s", r.elapsed.as_secs_f64())?;
    writeln!(err, "{}", stats_table(r))?;
    if r.measurable() {
        writeln!(
            err,
            "Speedup {:.2}x on {} workers (task time sum / elapsed), efficiency {:.1}%",
            r.speedup(),
            r.workers,
            100.0 * r.efficiency()
        )?;
    } else {
        writeln!(err, "Job too short to measure speedup (under {} s)", MEASURABLE.as_secs_f64())?;
    }
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
    align_right(&mut t, 1..7);
    t
}
