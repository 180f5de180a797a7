//! `mesh bench`: measures the mesh with a calibrated job, for users who want to know what
//! their cluster does before they trust it with work.
//!
//! 1. **Calibration.** One demo task (the sum of the primes below 100000 by trial
//!    division) runs a few times on this machine's one core: the unit of speed.
//! 2. **Heavy job.** The demo, `--tasks` tasks of that size (default 1000), on the mesh.
//!    Each node's speed is its time per task, also relative to this machine. The mesh's
//!    speedup is the job's serial time on this core (tasks × calibration) over its elapsed
//!    time, which stays honest when workers outnumber cores: the task time sum would not,
//!    since each task's wall time stretches when tasks share a core.
//! 3. **Tiny job.** 10,000 tasks that each test one number: what a task costs the mesh
//!    itself (scheduling, messages, the worker hand-off), as tasks per second and as the
//!    overhead per task per worker.

use super::args::BenchArgs;
use super::exit::Exit;
use super::output::{self, BenchReport};
use super::submit::run_job;
use crate::exec::primes;
use crate::job::{Algo, JobSpec, PrimesJob, Split, Target};
use anyhow::{Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// The calibration task's n: the demo's first.
pub(crate) const CALIBRATION_N: u64 = 100_000;
/// Tasks of the tiny job.
pub(crate) const TINY_TASKS: u64 = 10_000;

pub(crate) fn bench(home: &Path, args: BenchArgs) -> Result<Exit> {
    output::note("calibrating: one demo task on one core of this machine");
    let calibration = calibrate();
    let last = CALIBRATION_N + args.tasks - 1;
    let heavy_job =
        PrimesJob::new(Target::Each { first: CALIBRATION_N, last }, Algo::Trial, Split::Auto { workers: 1 })
            .map_err(output::usage)?;
    output::note(&format!("heavy job: {} demo tasks on the mesh", args.tasks));
    let heavy = run_job(home, &args.common, JobSpec::Primes(heavy_job), &mut output::waiting_notes)
        .context("running the heavy job")?;
    let tiny_job =
        PrimesJob::new(Target::Below(TINY_TASKS), Algo::Sieve, Split::Tasks(TINY_TASKS)).map_err(output::usage)?;
    output::note(&format!("tiny job: {TINY_TASKS} tasks of one number each"));
    let tiny = run_job(home, &args.common, JobSpec::Primes(tiny_job), &mut output::waiting_notes)
        .context("running the tiny job")?;
    let report = BenchReport { calibration, heavy, tiny };
    output::bench_report(&report, args.common.json).context("writing the report")?;
    Ok(if report.heavy.failed.is_empty() && report.tiny.failed.is_empty() { Exit::Success } else { Exit::Failed })
}

/// The fastest of a few runs of the demo task, on this thread.
fn calibrate() -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(primes::trial(0, std::hint::black_box(CALIBRATION_N)));
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}
