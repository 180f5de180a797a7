//! What the dashboard shows, as data: one [`Snapshot`] of the mesh, made by the event
//! loop's [`Board`](super::board::Board) and read by every HTTP client. `/api/peers`,
//! `/api/jobs` and the page's live updates are its parts in JSON.

use super::metrics::Sample;
use crate::id::{JobId, NodeId};
use crate::job::JobKind;
use crate::node::api::report::NodeInfo;
use crate::node::api::view::{JobSummary, PeerRow};
use serde::Serialize;
use std::sync::Arc;

/// The mesh as this node sees it now.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    pub(crate) live: Live,
    /// Throughput samples, oldest first (`/api/throughput`).
    pub(crate) history: Arc<Vec<RateSample>>,
    /// What `/metrics` exposes.
    pub(crate) metrics: Sample,
}

/// What each live update carries: everything the page shows but the chart's history.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Live {
    /// The node serving the page.
    pub(crate) node: String,
    pub(crate) version: String,
    /// Counts up with every snapshot: the page shows it, and the browser test reads it.
    pub(crate) seq: u64,
    pub(crate) uptime_s: f64,
    /// This node first, then every node it knows of (`mesh peers`).
    pub(crate) peers: Vec<PeerRow>,
    pub(crate) jobs: Jobs,
    /// The latest throughput sample.
    pub(crate) rate: RateSample,
}

/// Running and recent jobs, mesh-wide (`/api/jobs`).
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Jobs {
    /// Oldest first.
    pub(crate) running: Vec<JobView>,
    /// Newest first.
    pub(crate) recent: Vec<JobView>,
}

/// One job as the dashboard shows it: its progress and the statistics table of `mesh
/// submit`, from what its owner tells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct JobView {
    /// As the node logs show it: the owner's short id and the job's number.
    pub(crate) id: String,
    /// The node it was submitted on.
    pub(crate) owner: String,
    pub(crate) kind: JobKind,
    pub(crate) done: u64,
    pub(crate) failed: u64,
    pub(crate) total: u64,
    pub(crate) elapsed_s: f64,
    /// Tasks done per second since it started.
    pub(crate) tasks_per_s: f64,
    /// Seconds left at that rate; none before the first result.
    pub(crate) eta_s: Option<f64>,
    pub(crate) finished: bool,
    /// Its owner left or stopped telling before it finished: the figures are the last told.
    pub(crate) lost: bool,
    /// Who ran it, most tasks first.
    pub(crate) nodes: Vec<NodeShare>,
    /// Tasks done by nodes not named in `nodes` (an owner tells of its 6 busiest).
    pub(crate) other_tasks: u64,
    pub(crate) task_time_s: f64,
    /// Task time over elapsed time; none for a job too short to tell (as the CLI).
    pub(crate) speedup: Option<f64>,
    /// Speedup per worker slot of the nodes that ran it, when all are named.
    pub(crate) efficiency: Option<f64>,
}

/// One node's part in a job: a row of the statistics table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NodeShare {
    pub(crate) name: String,
    pub(crate) workers: u32,
    pub(crate) tasks: u64,
    /// Its tasks as a fraction of the tasks done.
    pub(crate) share: f64,
    pub(crate) task_time_s: f64,
    pub(crate) time_per_task_s: Option<f64>,
}

/// Tasks per second, per node, over one sampling interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct RateSample {
    /// Seconds since the serving node started.
    pub(crate) at_s: f64,
    pub(crate) total: f64,
    pub(crate) nodes: Vec<NodeRate>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct NodeRate {
    pub(crate) name: String,
    pub(crate) per_s: f64,
}

impl JobView {
    /// The view of `summary`, a job of the node `owner` (whose node id is `owner_id`),
    /// naming the nodes of its shares with `describe`.
    pub(crate) fn new(owner: &str, owner_id: NodeId, s: &JobSummary, describe: &dyn Fn(NodeId) -> NodeInfo) -> Self {
        let elapsed_s = s.elapsed_ms as f64 / 1e3;
        let tasks_per_s = if elapsed_s > 0.0 { s.done as f64 / elapsed_s } else { 0.0 };
        let eta_s = (!s.finished && tasks_per_s > 0.0).then(|| (s.total - s.done) as f64 / tasks_per_s);
        let mut workers = 0;
        let nodes: Vec<NodeShare> = s
            .shares
            .iter()
            .map(|sh| {
                let info = describe(sh.node);
                workers += info.workers;
                let task_time_s = sh.task_ms as f64 / 1e3;
                NodeShare {
                    name: info.name,
                    workers: info.workers,
                    tasks: sh.tasks,
                    share: if s.done > 0 { sh.tasks as f64 / s.done as f64 } else { 0.0 },
                    task_time_s,
                    time_per_task_s: (sh.tasks > 0).then(|| task_time_s / sh.tasks as f64),
                }
            })
            .collect();
        let named: u64 = nodes.iter().map(|n| n.tasks).sum();
        let task_time_s: f64 = nodes.iter().map(|n| n.task_time_s).sum();
        let measurable = s.done > 0 && elapsed_s >= crate::node::MEASURABLE.as_secs_f64();
        let speedup = measurable.then(|| task_time_s / elapsed_s);
        let all_named = named >= s.done;
        let efficiency = speedup.filter(|_| all_named && workers > 0).map(|x| x / f64::from(workers));
        Self {
            id: JobId { owner: owner_id, seq: s.seq }.to_string(),
            owner: owner.to_string(),
            kind: s.kind,
            done: s.done,
            failed: s.failed,
            total: s.total,
            elapsed_s,
            tasks_per_s,
            eta_s,
            finished: s.finished,
            lost: false,
            nodes,
            other_tasks: s.done.saturating_sub(named),
            task_time_s,
            speedup,
            efficiency,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::api::view::Share;

    fn describe(n: NodeId) -> NodeInfo {
        NodeInfo { name: format!("pi-{}", n.0), peer_id: String::new(), workers: 4 }
    }

    #[test]
    fn a_job_view_is_the_statistics_table_of_its_summary() {
        let s = JobSummary {
            seq: 3,
            kind: JobKind::Wasm,
            done: 30,
            failed: 1,
            total: 40,
            elapsed_ms: 2000,
            finished: false,
            shares: vec![
                Share { node: NodeId(1), tasks: 20, task_ms: 6000 },
                Share { node: NodeId(2), tasks: 10, task_ms: 8000 },
            ],
            submitter: None,
        };
        let v = JobView::new("pc", NodeId(0x1234_5678_0000_0000), &s, &describe);
        assert_eq!(v.id, "12345678-3");
        assert_eq!((v.owner.as_str(), v.kind, v.done, v.total), ("pc", JobKind::Wasm, 30, 40));
        assert!((v.tasks_per_s - 15.0).abs() < 1e-9);
        assert!((v.eta_s.unwrap() - 10.0 / 15.0).abs() < 1e-9);
        let rows: Vec<(&str, u64)> = v.nodes.iter().map(|n| (n.name.as_str(), n.tasks)).collect();
        assert_eq!(rows, [("pi-1", 20), ("pi-2", 10)]);
        assert!((v.nodes[0].share - 2.0 / 3.0).abs() < 1e-9);
        assert!((v.nodes[1].time_per_task_s.unwrap() - 0.8).abs() < 1e-9);
        assert!((v.speedup.unwrap() - 7.0).abs() < 1e-9, "14 s of tasks in 2 s");
        assert!((v.efficiency.unwrap() - 7.0 / 8.0).abs() < 1e-9, "over 8 workers");
        assert_eq!(v.other_tasks, 0);

        let partial = JobSummary { shares: s.shares[..1].to_vec(), ..s.clone() };
        let v = JobView::new("pc", NodeId(1), &partial, &describe);
        assert_eq!(v.other_tasks, 10);
        assert!(v.efficiency.is_none(), "not every node is named");
        let short = JobSummary { elapsed_ms: 20, ..s };
        assert!(JobView::new("pc", NodeId(1), &short, &describe).speedup.is_none(), "too short to tell");
    }
}
