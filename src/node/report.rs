//! What a finished job reports, and the collector that builds it from the owner's accepted
//! results. Shared by the local runner and the mesh event loop, and serialisable so a node
//! can send it to `mesh submit` over the control socket.

use crate::core::{Progress, TaskReport};
use crate::id::NodeId;
use crate::job::{PrimesJob, TaskOutput};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Statistics of one node's part in a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeStats {
    pub name: String,
    pub peer_id: String,
    pub workers: u32,
    pub tasks: u64,
    pub task_time: Duration,
    /// Successful steals of this job's work by this node.
    pub steals: u64,
}

/// Everything a finished job reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobReport {
    /// One `(n, sum)` per result, in order.
    pub results: Vec<(u64, u128)>,
    pub elapsed: Duration,
    pub tasks: u64,
    /// Tasks that failed for good: (task, error).
    pub failed: Vec<(u64, String)>,
    pub nodes: Vec<NodeStats>,
    /// Worker slots of the nodes that took part.
    pub workers: u32,
    /// Results dropped because the task was already done.
    pub duplicates: u64,
    /// Speculative backup runs on the submitting node.
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

    /// Total successful steals.
    pub fn steals(&self) -> u64 {
        self.nodes.iter().map(|n| n.steals).sum()
    }
}

/// How the collector names a node in the statistics: (name, peer id, workers).
pub type Describe<'a> = &'a dyn Fn(NodeId) -> (String, String, u32);

/// Collects the owner's accepted results of one job.
#[derive(Debug)]
pub struct Collector {
    spec: std::sync::Arc<PrimesJob>,
    started: Instant,
    outputs: Vec<TaskOutput>,
    failed: Vec<(u64, String)>,
    per_node: BTreeMap<NodeId, (u64, Duration, u64)>,
    pub done: u64,
}

impl Collector {
    pub fn new(spec: std::sync::Arc<PrimesJob>, started: Instant) -> Self {
        let tasks = spec.tasks() as usize;
        Self { spec, started, outputs: vec![0; tasks], failed: Vec::new(), per_node: BTreeMap::new(), done: 0 }
    }

    pub fn total(&self) -> u64 {
        self.outputs.len() as u64
    }

    pub fn add(&mut self, from: NodeId, report: TaskReport<TaskOutput>) {
        let Some(slot) = self.outputs.get_mut(report.task as usize) else { return };
        match report.outcome {
            Ok(v) => *slot = v,
            Err(e) => self.failed.push((report.task, e)),
        }
        let e = self.per_node.entry(from).or_default();
        e.0 += 1;
        e.1 += report.took;
        self.done += 1;
    }

    /// Counts a steal of this job's work by `by`.
    pub fn stolen(&mut self, by: NodeId) {
        self.per_node.entry(by).or_default().2 += 1;
    }

    pub fn finish(self, progress: Progress, backups: u64, describe: Describe<'_>) -> JobReport {
        let elapsed = self.started.elapsed();
        let mut workers = 0;
        let nodes = self
            .per_node
            .iter()
            .filter(|(_, v)| v.0 > 0 || v.2 > 0)
            .map(|(&node, &(tasks, task_time, steals))| {
                let (name, peer_id, w) = describe(node);
                workers += w;
                NodeStats { name, peer_id, workers: w, tasks, task_time, steals }
            })
            .collect();
        let results = self.spec.result_ns().into_iter().zip(self.spec.assemble(&self.outputs)).collect();
        JobReport {
            results,
            elapsed,
            tasks: self.total(),
            failed: self.failed,
            nodes,
            workers,
            duplicates: progress.duplicates,
            backups,
        }
    }
}
