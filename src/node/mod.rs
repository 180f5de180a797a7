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
pub mod client;
pub mod control;
pub mod event_loop;
pub mod identity;
pub mod membership;
pub mod workers;

use crate::core::{Action, Config, Progress, Scheduler, TaskReport};
use crate::id::{JobId, NodeId};
use crate::job::{PrimesJob, TaskOutput};
use anyhow::{Context, Result};
use identity::Identity;
use std::collections::BTreeMap;
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

/// Statistics of one node's part in a job.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStats {
    pub name: String,
    pub peer_id: String,
    pub workers: u32,
    pub tasks: u64,
    pub task_time: Duration,
}

/// Everything a finished job reports.
#[derive(Debug, Clone)]
pub struct JobReport {
    /// One `(n, sum)` per result, in order.
    pub results: Vec<(u64, u128)>,
    pub elapsed: Duration,
    pub tasks: u64,
    /// Tasks that failed for good: (task, error).
    pub failed: Vec<(u64, String)>,
    pub nodes: Vec<NodeStats>,
    /// Worker slots that could take part.
    pub workers: u32,
    /// Results dropped because the task was already done.
    pub duplicates: u64,
    /// Speculative backup runs.
    pub backups: u64,
}

impl JobReport {
    /// Sum of all task times.
    pub fn task_time(&self) -> Duration {
        self.nodes.iter().map(|n| n.task_time).sum()
    }

    /// Task time sum over elapsed time: how many workers were busy on average.
    pub fn speedup(&self) -> f64 {
        self.task_time().as_secs_f64() / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Speedup per worker slot.
    pub fn efficiency(&self) -> f64 {
        self.speedup() / f64::from(self.workers.max(1))
    }
}

/// Collects the owner's accepted results of one job.
#[derive(Debug)]
struct Collector {
    outputs: Vec<TaskOutput>,
    failed: Vec<(u64, String)>,
    per_node: BTreeMap<NodeId, (u64, Duration)>,
    done: u64,
}

impl Collector {
    fn new(tasks: u64) -> Self {
        Self { outputs: vec![0; tasks as usize], failed: Vec::new(), per_node: BTreeMap::new(), done: 0 }
    }

    fn add(&mut self, from: NodeId, report: TaskReport<TaskOutput>) {
        match report.outcome {
            Ok(v) => self.outputs[report.task as usize] = v,
            Err(e) => self.failed.push((report.task, e)),
        }
        let e = self.per_node.entry(from).or_default();
        e.0 += 1;
        e.1 += report.took;
        self.done += 1;
    }
}

/// Runs one job on this machine's workers, calling `progress(done, total)` as results come.
pub fn run_local(id: &Identity, workers: u32, job: PrimesJob, mut progress: impl FnMut(u64, u64)) -> Result<JobReport> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")?;
    rt.block_on(async move {
        let started = Instant::now();
        let cfg = Config { workers, ..Config::default() };
        let mut sched: Scheduler<Arc<PrimesJob>, TaskOutput> = Scheduler::new(id.node_id, cfg, seed(), started);
        let (pool, mut finished) = WorkerPool::start(workers as usize).context("starting worker threads")?;
        let tasks = job.tasks();
        let spec = Arc::new(job);
        let job_id = sched.submit(Instant::now(), spec.clone(), tasks);
        let mut collector = Collector::new(tasks);
        let mut complete = None;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        loop {
            while let Some(action) = sched.poll_action() {
                if let Some(p) = apply(&sched, &pool, job_id, &mut collector, action)? {
                    complete = Some(p);
                }
            }
            progress(collector.done, tasks);
            if complete.is_some() {
                break;
            }
            let deadline = sched.poll_timeout().unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
            tokio::select! {
                Some(f) = finished.recv() => sched.handle_task_done(Instant::now(), f.worker, f.report),
                () = tokio::time::sleep_until(deadline.into()) => sched.handle_timeout(Instant::now()),
                _ = &mut interrupted => return Err(NodeError::Interrupted.into()),
            }
        }
        let elapsed = started.elapsed();
        let backups = sched.counters().backups;
        let duplicates = complete.map_or(0, |p| p.duplicates);
        pool.shutdown();
        let nodes = collector
            .per_node
            .iter()
            .map(|(node, &(tasks, task_time))| NodeStats {
                name: if *node == id.node_id { id.name.clone() } else { node.to_string() },
                peer_id: if *node == id.node_id { id.peer_id.to_string() } else { String::new() },
                workers,
                tasks,
                task_time,
            })
            .collect();
        let results = spec.result_ns().into_iter().zip(spec.assemble(&collector.outputs)).collect();
        Ok(JobReport { results, elapsed, tasks, failed: collector.failed, nodes, workers, duplicates, backups })
    })
}

/// Carries out one action; returns the final progress when the job is complete.
fn apply(
    sched: &Scheduler<Arc<PrimesJob>, TaskOutput>,
    pool: &WorkerPool,
    job_id: JobId,
    collector: &mut Collector,
    action: Action<Arc<PrimesJob>, TaskOutput>,
) -> Result<Option<Progress>> {
    match action {
        Action::Run { worker, job, task, .. } => {
            // Invariant: the scheduler only runs tasks of jobs it holds a spec for.
            let spec = sched.spec(job).context("scheduler ran a task of an unknown job")?.clone();
            if !pool.run(worker, job, task, spec) {
                return Err(NodeError::WorkerLost(worker).into());
            }
        }
        Action::Accepted { job, from, report } if job == job_id => collector.add(from, report),
        Action::JobFinished { job, progress } if job == job_id => return Ok(Some(progress)),
        Action::Send { .. } | Action::Broadcast(_) => {} // no peers without a network
        other => tracing::debug!(?other, "ignored action"),
    }
    Ok(None)
}

/// A seed for the scheduler's victim choice; it needs variety between nodes, not secrecy.
pub(crate) fn seed() -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    nanos.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
