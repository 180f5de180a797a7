//! What a finished job reports, and the collector that builds it from the owner's accepted
//! results. The event loop keeps one collector per owned job; the report is serialisable
//! so a node can send it to `mesh submit` over the control socket.
//!
//! What an owner keeps of failed tasks is bounded: the first [`FAILURES_LISTED`] failures
//! keep their error text (in [`JobReport::failed`], and in a wasm task's record); later
//! ones are only counted ([`JobReport::failed_unlisted`]), a wasm task's record saying
//! [`UNLISTED`]. A job of a million failing tasks costs its owner a count, not a million
//! messages of up to a few KiB each.

use crate::core::{Progress, TaskReport};
use crate::id::NodeId;
use crate::job::run::{Ended, RunOutput};
use crate::job::{Delivery, JobKind, JobSpec, PrimesJob, TaskOutput};
use crate::node::api::view::JobProgress;
use crate::protocol::membership::{JobSummary, Share};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Statistics of one node's part in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub name: String,
    pub peer_id: String,
    pub workers: u32,
    /// Tasks whose accepted result came from this node.
    pub tasks: u64,
    /// Time spent on this job's tasks, failed attempts included.
    pub task_time: Duration,
    /// Successful steals of this job's work by this node.
    pub steals: u64,
}

/// One task of a WebAssembly job, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskRecord {
    /// What the task wrote to stdout (one trailing newline removed), if it succeeded.
    pub output: Option<String>,
    pub error: Option<String>,
    /// The node whose result counted.
    pub node: String,
    pub time: Duration,
    /// Runs it took, retries included.
    pub attempts: u32,
}

/// One result of a primes job: the sum of the primes below `n`. On the control socket
/// it stays the pair `[n, sum]` it always was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, u128)", into = "(u64, u128)")]
pub struct PrimesResult {
    pub n: u64,
    pub sum: u128,
}

impl From<(u64, u128)> for PrimesResult {
    fn from((n, sum): (u64, u128)) -> Self {
        Self { n, sum }
    }
}

impl From<PrimesResult> for (u64, u128) {
    fn from(r: PrimesResult) -> Self {
        (r.n, r.sum)
    }
}

/// A task that failed for good, with its last error. On the control socket it stays the
/// pair `[task, error]` it always was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(u64, String)", into = "(u64, String)")]
pub struct FailedTask {
    pub task: u64,
    pub error: String,
}

impl From<(u64, String)> for FailedTask {
    fn from((task, error): (u64, String)) -> Self {
        Self { task, error }
    }
}

impl From<FailedTask> for (u64, String) {
    fn from(f: FailedTask) -> Self {
        (f.task, f.error)
    }
}

/// A job's results, by kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum JobResults {
    /// One result per n, in order.
    Primes(Vec<PrimesResult>),
    /// One record per task, in input order.
    Wasm(Vec<TaskRecord>),
    /// A run job's tasks went to the submitter one by one as they finished
    /// (`JobEvent::Task`); the report keeps only the statistics.
    Run,
    /// The same for a Python job's tasks (`JobEvent::Python`).
    Python,
}

/// Everything a finished job reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    pub results: JobResults,
    pub elapsed: Duration,
    pub tasks: u64,
    /// Tasks that failed for good: the first [`FAILURES_LISTED`], with their errors.
    pub failed: Vec<FailedTask>,
    /// Tasks that failed for good beyond those in `failed`. Absent on the wire when there
    /// are none, as in reports of nodes that listed every failure.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_unlisted: u64,
    pub nodes: Vec<NodeStats>,
    /// Worker slots of the nodes that took part.
    pub workers: u32,
    /// Results dropped because the task was already done.
    pub duplicates: u64,
    /// Speculative backup runs on the submitting node.
    pub backups: u64,
    /// Failures that were given another run.
    pub retried: u64,
    /// The job stopped early under its `--halt` rule, or because no node could run its
    /// tasks: the tasks without a result never ran.
    #[serde(default)]
    pub halted: bool,
    /// Someone cancelled the job (`mesh cancel`, Ctrl-C): the tasks without a result never
    /// ran, or their results came too late.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cancelled: bool,
}

/// Failed tasks a report lists with their error; failures beyond are only counted.
pub(crate) const FAILURES_LISTED: usize = 1000;

/// A wasm task's error once [`FAILURES_LISTED`] failures are listed.
pub(crate) const UNLISTED: &str = "failed (its error was not kept: too many tasks failed)";

/// The shortest job whose speedup is reported: a tenth of a second. A job of one small
/// task takes about 2 ms from submission to result on a loopback mesh, all of it the cost
/// of starting and gathering; at 100 ms that cost is a few percent.
pub const MEASURABLE: Duration = Duration::from_millis(100);

impl JobReport {
    /// Tasks that failed for good, listed or not.
    pub fn failures(&self) -> u64 {
        self.failed.len() as u64 + self.failed_unlisted
    }

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

    /// Whether the job ran long enough for its speedup to mean something: it had tasks
    /// and workers, and took at least [`MEASURABLE`]. Below that, starting the job
    /// (sending it, waking workers, gathering results) is a large part of the elapsed
    /// time, and a speedup under 1 would read as if the mesh were slow.
    pub fn measurable(&self) -> bool {
        self.tasks > 0 && self.workers > 0 && self.elapsed >= MEASURABLE
    }

    /// Total successful steals.
    pub fn steals(&self) -> u64 {
        self.nodes.iter().map(|n| n.steals).sum()
    }

    /// A report of `tasks` tasks that kept one node of `workers` workers busy for
    /// `task_time` in all, over `elapsed`: for tests of what is made of the figures.
    #[cfg(test)]
    pub(crate) fn sample(elapsed: Duration, tasks: u64, workers: u32, task_time: Duration) -> Self {
        let node = NodeStats { name: "a".into(), peer_id: "p".into(), workers, tasks, task_time, steals: 0 };
        Self {
            results: JobResults::Run,
            elapsed,
            tasks,
            failed: Vec::new(),
            failed_unlisted: 0,
            nodes: vec![node],
            workers,
            duplicates: 0,
            backups: 0,
            retried: 0,
            halted: false,
            cancelled: false,
        }
    }
}

/// How the statistics name a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeInfo {
    pub name: String,
    pub peer_id: String,
    pub workers: u32,
}

/// How the collector learns a node's [`NodeInfo`].
pub(crate) type Describe<'a> = &'a dyn Fn(NodeId) -> NodeInfo;

/// A task's accepted result.
#[derive(Debug)]
struct Record {
    node: NodeId,
    took: Duration,
    /// Failed runs before this one.
    retries: u32,
    outcome: Result<TaskOutput, String>,
}

/// What the collector keeps per task: a primes job only needs its sums.
#[derive(Debug)]
enum Outputs {
    Sums {
        job: PrimesJob,
        sums: Vec<u128>,
    },
    Tasks(Vec<Option<Record>>),
    /// Run and Python tasks are handed on as they finish; nothing is kept but what the
    /// report says of them.
    Streamed(JobResults),
}

/// One node's part in a job so far.
#[derive(Debug, Clone, Copy, Default)]
struct NodeTally {
    /// Tasks whose accepted result came from the node.
    tasks: u64,
    /// Time it spent on the job's tasks, failed attempts included.
    task_time: Duration,
    steals: u64,
}

/// Collects the owner's accepted results of one job.
#[derive(Debug)]
pub(crate) struct Collector {
    started: Instant,
    kind: JobKind,
    outputs: Outputs,
    total: u64,
    /// Failed attempts that were retried, per task without a final result.
    retries: HashMap<u64, u32>,
    failed: Vec<FailedTask>,
    /// Failures beyond those in `failed`.
    failed_unlisted: u64,
    per_node: BTreeMap<NodeId, NodeTally>,
    /// Tasks with a final result.
    done: u64,
}

impl Collector {
    pub(crate) fn new(spec: Arc<JobSpec>, started: Instant) -> Self {
        let total = spec.tasks();
        let n = total as usize;
        let outputs = match (spec.delivery(), &*spec) {
            (Delivery::Streamed, _) if spec.kind() == JobKind::Python => Outputs::Streamed(JobResults::Python),
            (Delivery::Streamed, _) => Outputs::Streamed(JobResults::Run),
            (Delivery::InReport, JobSpec::Primes(job)) => Outputs::Sums { job: job.clone(), sums: vec![0; n] },
            (Delivery::InReport, _) => Outputs::Tasks((0..n).map(|_| None).collect()),
        };
        Self {
            started,
            kind: spec.kind(),
            outputs,
            total,
            retries: HashMap::new(),
            failed: Vec::new(),
            failed_unlisted: 0,
            per_node: BTreeMap::new(),
            done: 0,
        }
    }

    pub(crate) fn progress(&self) -> JobProgress {
        JobProgress { done: self.done, total: self.total }
    }

    /// How far the job has come and who ran it, most tasks first, for the announce and the
    /// dashboard.
    pub(crate) fn summary(&self, seq: u32, now: Instant, finished: bool) -> JobSummary {
        let mut shares: Vec<Share> = self
            .per_node
            .iter()
            .filter(|(_, t)| t.tasks > 0 || !t.task_time.is_zero())
            .map(|(&node, t)| Share { node, tasks: t.tasks, task_ms: t.task_time.as_millis() as u64 })
            .collect();
        shares.sort_by_key(|s| (std::cmp::Reverse(s.tasks), std::cmp::Reverse(s.task_ms), s.node));
        JobSummary {
            seq,
            kind: self.kind,
            done: self.done,
            failed: self.failed.len() as u64 + self.failed_unlisted,
            total: self.total,
            elapsed_ms: now.saturating_duration_since(self.started).as_millis() as u64,
            finished,
            shares,
            submitter: None,
        }
    }

    /// The first (final) result of a task.
    pub(crate) fn add(&mut self, from: NodeId, report: TaskReport<TaskOutput>) {
        if report.task >= self.total {
            return;
        }
        let i = report.task as usize;
        let listed = self.failed(&report);
        let retries = self.retries.remove(&report.task).unwrap_or(0);
        match &mut self.outputs {
            Outputs::Sums { sums, .. } => {
                sums[i] = report.outcome.as_ref().ok().and_then(TaskOutput::sum).unwrap_or(0);
            }
            Outputs::Tasks(tasks) => {
                let outcome = match report.outcome {
                    Err(_) if !listed => Err(UNLISTED.to_string()),
                    outcome => outcome,
                };
                tasks[i] = Some(Record { node: from, took: report.took, retries, outcome });
            }
            Outputs::Streamed(_) => {}
        }
        let tally = self.per_node.entry(from).or_default();
        tally.tasks += 1;
        tally.task_time += report.took;
        self.done += 1;
    }

    /// Counts a task's final result if it is a failure, listing it while fewer than
    /// [`FAILURES_LISTED`] are; whether it was listed.
    fn failed(&mut self, report: &TaskReport<TaskOutput>) -> bool {
        // Its error as the node said it, or a run that ended badly, to be put in words.
        let said: Result<&String, &RunOutput> = match &report.outcome {
            Err(e) => Ok(e),
            Ok(TaskOutput::Run(r)) if !r.succeeded() => Err(r),
            Ok(_) => return false,
        };
        if self.failed.len() >= FAILURES_LISTED {
            self.failed_unlisted += 1;
            return false;
        }
        let error = said.map_or_else(run_failure, String::clone);
        self.failed.push(FailedTask { task: report.task, error });
        true
    }

    /// Runs task `task` took so far, the accepted one included.
    pub(crate) fn attempts(&self, task: u64) -> u32 {
        self.retries.get(&task).copied().unwrap_or(0) + 1
    }

    /// A failed attempt that will run again.
    pub(crate) fn retrying(&mut self, from: NodeId, report: &TaskReport<TaskOutput>) {
        *self.retries.entry(report.task).or_default() += 1;
        self.per_node.entry(from).or_default().task_time += report.took;
    }

    /// Counts a steal of this job's work by `by`.
    pub(crate) fn stolen(&mut self, by: NodeId) {
        self.per_node.entry(by).or_default().steals += 1;
    }

    pub(crate) fn finish(self, progress: Progress, describe: Describe<'_>) -> JobReport {
        let elapsed = self.started.elapsed();
        let mut workers = 0;
        let mut names = HashMap::new();
        let nodes = self
            .per_node
            .iter()
            .filter(|(_, t)| t.tasks > 0 || t.steals > 0)
            .map(|(&node, t)| {
                let info = describe(node);
                workers += info.workers;
                names.insert(node, info.name.clone());
                NodeStats {
                    name: info.name,
                    peer_id: info.peer_id,
                    workers: info.workers,
                    tasks: t.tasks,
                    task_time: t.task_time,
                    steals: t.steals,
                }
            })
            .collect();
        let results = match self.outputs {
            Outputs::Sums { job, sums } => {
                let ns = job.result_ns().into_iter();
                JobResults::Primes(ns.zip(job.assemble(&sums)).map(|(n, sum)| PrimesResult { n, sum }).collect())
            }
            Outputs::Tasks(tasks) => JobResults::Wasm(
                tasks
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| record(r, self.retries.get(&(i as u64)).copied().unwrap_or(0), &names))
                    .collect(),
            ),
            Outputs::Streamed(results) => results,
        };
        JobReport {
            results,
            elapsed,
            tasks: self.total,
            failed: self.failed,
            failed_unlisted: self.failed_unlisted,
            nodes,
            workers,
            duplicates: progress.duplicates,
            backups: progress.backups,
            retried: progress.retried,
            halted: progress.halted,
            cancelled: false,
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Why a run task that ran failed, in words.
pub fn run_failure(r: &RunOutput) -> String {
    match (&r.problem, r.ended) {
        (Some(p), _) => p.to_string(),
        (None, Ended::Exit(c)) => format!("exited with code {c}"),
        (None, Ended::Signal(s)) => format!("was killed by signal {s}"),
    }
}

/// A wasm task's record; `retries` are those of a task without a result.
fn record(r: Option<Record>, retries: u32, names: &HashMap<NodeId, String>) -> TaskRecord {
    let Some(r) = r else {
        return TaskRecord {
            output: None,
            error: Some("no result".into()),
            node: String::new(),
            time: Duration::ZERO,
            attempts: retries,
        };
    };
    let node = names.get(&r.node).cloned().unwrap_or_else(|| r.node.to_string());
    let (output, error) = match r.outcome {
        Ok(TaskOutput::Bytes(b)) => {
            let text = String::from_utf8_lossy(&b);
            let line = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
            (Some(line.to_string()), None)
        }
        Ok(TaskOutput::Sum(s)) => (Some(s.to_string()), None),
        Ok(TaskOutput::Run(r)) => (None, Some(run_failure(&r))),
        Ok(TaskOutput::Python(_)) => (None, Some("a Python task's result in another kind of job".into())),
        Err(e) => (None, Some(e)),
    };
    TaskRecord { output, error, node, time: r.took, attempts: r.retries + 1 }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod measure_tests {
    use super::*;

    #[test]
    fn short_or_empty_jobs_have_no_speedup_to_report() {
        let ms = Duration::from_millis;
        let long = JobReport::sample(ms(200), 10, 2, ms(380));
        assert!(long.measurable());
        assert!((long.speedup() - 1.9).abs() < 1e-9 && (long.efficiency() - 0.95).abs() < 1e-9);
        assert!(!JobReport::sample(ms(2), 1, 2, ms(1)).measurable(), "2 ms is mostly start-up");
        assert!(!JobReport::sample(MEASURABLE - ms(1), 10, 2, ms(150)).measurable());
        assert!(JobReport::sample(MEASURABLE, 10, 2, ms(150)).measurable());
        assert!(!JobReport::sample(ms(500), 0, 2, ms(0)).measurable(), "no tasks");
        assert!(!JobReport::sample(ms(500), 5, 0, ms(0)).measurable(), "no workers");
    }
}
