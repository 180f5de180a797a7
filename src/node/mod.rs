//! The node: a scheduler core driven by a real clock and real worker threads.
//!
//! The driver is a thin loop that only translates: worker completions and timer deadlines go
//! into the [`Scheduler`]; its actions come out as tasks for the [`WorkerPool`] and results
//! for the job being collected. No scheduling policy lives here. The loop is a tokio
//! `select!` so the network layer (mDNS, libp2p) plugs into the same loop as more branches.
//!
//! A node with no network yet has no peers: it never steals, and its `Send`/`Broadcast`
//! actions have nobody to go to.

pub mod behaviour;
pub mod blobs;
pub mod client;
pub mod control;
pub mod event_loop;
pub mod identity;
pub mod membership;
pub mod report;
pub mod workers;

pub use report::{JobReport, NodeStats};

use crate::core::{Action, Config, Scheduler};
use crate::exec::Executor;
use crate::job::{JobSpec, TaskOutput};
use anyhow::{Context, Result};
use identity::Identity;
use report::Collector;
use std::sync::Arc;
use std::time::{Duration, Instant};
use workers::WorkerPool;

/// Why a running job stopped short.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("interrupted; the job's partial results are lost")]
    Interrupted,
    #[error("worker {0} stopped unexpectedly")]
    WorkerLost(usize),
}

/// Runs one job on this machine's workers only (`mesh submit --local`), calling
/// `progress(done, total)` as results come.
pub fn run_local(
    id: &Identity,
    workers: u32,
    exec: Arc<Executor>,
    job: JobSpec,
    mut progress: impl FnMut(u64, u64),
) -> Result<JobReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let started = Instant::now();
        let cfg = Config { workers, ..Config::default() };
        let mut sched: Scheduler<Arc<JobSpec>, TaskOutput> = Scheduler::new(id.node_id, cfg, seed(), started);
        let (pool, mut finished) = WorkerPool::start(workers as usize, exec).context("starting worker threads")?;
        let spec = Arc::new(job);
        let job_id = sched.submit(Instant::now(), spec.clone(), spec.tasks(), spec.retries());
        let mut collector = Collector::new(spec, started);
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        let progress_done = loop {
            let mut complete = None;
            while let Some(action) = sched.poll_action() {
                match action {
                    Action::Run { worker, job, tasks, .. } => {
                        // Invariant: the scheduler only runs tasks of jobs it holds a spec for.
                        let spec = sched.spec(job).context("scheduler ran a task of an unknown job")?.clone();
                        if !pool.run(worker, job, tasks, spec) {
                            return Err(NodeError::WorkerLost(worker).into());
                        }
                    }
                    Action::Accepted { job, from, report } if job == job_id => collector.add(from, report),
                    Action::Retrying { job, from, report } if job == job_id => collector.retrying(from, &report),
                    Action::JobFinished { job, progress } if job == job_id => complete = Some(progress),
                    _ => {} // no peers: nothing to send
                }
            }
            progress(collector.done, collector.total());
            if let Some(p) = complete {
                break p;
            }
            let deadline = sched.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                Some(f) = finished.recv() => {
                    for r in f.reports {
                        sched.handle_task_done(Instant::now(), f.worker, r);
                    }
                }
                () = tokio::time::sleep_until(deadline.into()) => sched.handle_timeout(Instant::now()),
                _ = &mut interrupted => return Err(NodeError::Interrupted.into()),
            }
        };
        let backups = sched.counters().backups;
        pool.shutdown(Duration::from_secs(1));
        let describe = |_| (id.name.clone(), id.peer_id.to_string(), workers);
        Ok(collector.finish(progress_done, backups, &describe))
    })
}

/// A seed for the scheduler's victim choice; it needs variety between nodes, not secrecy.
pub(crate) fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
