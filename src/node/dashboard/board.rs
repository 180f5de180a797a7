//! The event loop's side of the dashboard: what it remembers between snapshots (the
//! throughput history, recent jobs, the task counters), and the snapshot it publishes
//! every housekeeping tick on a `watch` channel. HTTP clients only read the latest
//! snapshot, so any number of them costs the loop nothing.

use super::metrics::Sample;
use super::snapshot::{JobView, Jobs, Live, NodeRate, RateSample, Snapshot};
use crate::core::{Counters, Status, TaskReport};
use crate::id::NodeId;
use crate::job::{JobKind, TaskOutput};
use crate::node::api::report::Describe;
use crate::node::api::view::{PeerRow, PeerState};
use crate::node::net::members::Farewell;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Throughput samples kept: five minutes at one a second.
pub(crate) const HISTORY: usize = 300;
/// How often a throughput sample is taken.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Finished jobs shown.
pub(crate) const RECENT: usize = 20;
/// Nodes drawn in the throughput chart at most (the busiest; the total counts all).
pub(crate) const CHART_NODES: usize = 32;

/// What the loop knows at a tick, for the snapshot.
#[derive(Debug)]
pub(crate) struct Inputs {
    /// `mesh peers`: this node first, with its own jobs, then the others.
    pub(crate) rows: Vec<PeerRow>,
    pub(crate) farewells: Vec<Farewell>,
    pub(crate) status: Status,
    pub(crate) counters: Counters,
    pub(crate) lending: bool,
}

/// A job mesh-wide: its owner's peer id and its number there.
type JobKey = (String, u32);

#[derive(Debug)]
pub(crate) struct Board {
    tx: watch::Sender<Arc<Snapshot>>,
    started: Instant,
    name: String,
    seq: u64,
    metrics: Sample,
    history: VecDeque<RateSample>,
    /// The last sample's time and each node's tasks done then, by peer id.
    last: Option<(Instant, HashMap<String, u64>)>,
    /// Jobs running at the last snapshot, to notice one that vanishes unfinished.
    running: HashMap<JobKey, JobView>,
    /// Newest first.
    recent: VecDeque<(JobKey, JobView)>,
}

impl Board {
    pub(crate) fn new(name: &str, now: Instant) -> (Self, watch::Receiver<Arc<Snapshot>>) {
        let (tx, rx) = watch::channel(Arc::new(Snapshot::default()));
        let metrics = Sample { version: env!("CARGO_PKG_VERSION").into(), ..Sample::default() };
        let board = Self {
            tx,
            started: now,
            name: name.to_string(),
            seq: 0,
            metrics,
            history: VecDeque::with_capacity(HISTORY),
            last: None,
            running: HashMap::new(),
            recent: VecDeque::with_capacity(RECENT),
        };
        (board, rx)
    }

    /// A worker finished a run of tasks of a job of kind `kind`.
    pub(crate) fn ran(&mut self, kind: JobKind, reports: &[TaskReport<TaskOutput>]) {
        let Some(i) = JobKind::ALL.iter().position(|k| *k == kind) else { return };
        let tally = &mut self.metrics.kinds[i];
        for r in reports {
            if r.succeeded() {
                tally.done += 1;
            } else {
                tally.failed += 1;
            }
            tally.durations.observe(r.took);
        }
    }

    pub(crate) fn retried(&mut self) {
        self.metrics.retried += 1;
    }

    pub(crate) fn submitted(&mut self) {
        self.metrics.jobs_submitted += 1;
    }

    pub(crate) fn finished(&mut self) {
        self.metrics.jobs_finished += 1;
    }

    /// Makes and publishes a snapshot of the mesh.
    pub(crate) fn publish(&mut self, now: Instant, inputs: Inputs, describe: Describe<'_>) {
        let Inputs { rows, farewells, status, counters, lending } = inputs;
        self.seq += 1;
        if self.last.as_ref().is_none_or(|(at, _)| now.saturating_duration_since(*at) >= SAMPLE_EVERY) {
            self.sample(now, &rows);
        }
        let jobs = self.jobs(&rows, &farewells, describe);
        let m = &mut self.metrics;
        m.counters = counters;
        m.status = status;
        m.lending = lending;
        m.jobs_running = rows.first().map_or(0, |me| me.jobs.iter().filter(|j| !j.finished).count() as u64);
        if let Some(me) = rows.first() {
            m.blobs = me.blobs.unwrap_or_default();
            m.health = me.health.unwrap_or_default();
        }
        let count = |s: PeerState| rows.iter().filter(|r| !r.is_self && r.state == s).count() as u64;
        m.peers = [count(PeerState::Member), count(PeerState::DifferentKey), count(PeerState::Incompatible)];
        let live = Live {
            node: self.name.clone(),
            version: self.metrics.version.clone(),
            seq: self.seq,
            uptime_s: now.saturating_duration_since(self.started).as_secs_f64(),
            peers: rows,
            jobs,
            rate: self.history.back().cloned().unwrap_or_default(),
        };
        let history = Arc::new(self.history.iter().cloned().collect());
        self.tx.send_replace(Arc::new(Snapshot { live, history, metrics: self.metrics.clone() }));
    }

    /// A throughput sample: each node's tasks done since the last one.
    fn sample(&mut self, now: Instant, rows: &[PeerRow]) {
        let done: HashMap<String, u64> = rows
            .iter()
            .filter(|r| r.state == PeerState::Member)
            .filter_map(|r| Some((r.peer_id.clone(), r.tasks_done?)))
            .collect();
        if let Some((at, before)) = &self.last {
            let dt = now.saturating_duration_since(*at).as_secs_f64().max(1e-3);
            let mut nodes: Vec<NodeRate> = rows
                .iter()
                .filter_map(|r| {
                    let was = before.get(&r.peer_id)?;
                    let per_s = done.get(&r.peer_id)?.saturating_sub(*was) as f64 / dt;
                    Some(NodeRate { name: r.name.clone(), per_s })
                })
                .collect();
            let total = nodes.iter().map(|n| n.per_s).sum();
            nodes.sort_by(|a, b| b.per_s.total_cmp(&a.per_s).then_with(|| a.name.cmp(&b.name)));
            nodes.truncate(CHART_NODES);
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            let at_s = now.saturating_duration_since(self.started).as_secs_f64();
            self.history.push_back(RateSample { at_s, total, nodes });
        }
        self.last = Some((now, done));
    }

    /// Running jobs from every node's summaries; jobs that finished (or whose owner went
    /// away) move to the recent ones.
    fn jobs(&mut self, rows: &[PeerRow], farewells: &[Farewell], describe: Describe<'_>) -> Jobs {
        let mut running = HashMap::new();
        let told = rows
            .iter()
            .filter(|r| r.state == PeerState::Member)
            .map(|r| (r.peer_id.clone(), r.name.as_str(), &r.jobs))
            .chain(farewells.iter().map(|f| (f.peer.to_base58(), f.name.as_str(), &f.jobs)));
        for (peer, owner, jobs) in told {
            let owner_id = node_id(&peer);
            for s in jobs {
                let view = JobView::new(owner, owner_id, s, describe);
                let key = (peer.clone(), s.seq);
                if s.finished {
                    self.remember(key, view);
                } else {
                    // A job thought lost whose owner is heard again runs after all.
                    self.recent.retain(|(k, v)| *k != key || !v.lost);
                    running.insert(key, view);
                }
            }
        }
        let vanished: Vec<JobKey> = self.running.keys().filter(|k| !running.contains_key(*k)).cloned().collect();
        for key in vanished {
            if let Some(mut view) = self.running.remove(&key)
                && !self.recent.iter().any(|(k, _)| *k == key)
            {
                view.lost = true;
                view.eta_s = None;
                self.remember(key, view);
            }
        }
        self.running = running;
        let mut now_running: Vec<JobView> = self.running.values().cloned().collect();
        now_running.sort_by(|a, b| b.elapsed_s.total_cmp(&a.elapsed_s).then_with(|| a.id.cmp(&b.id)));
        Jobs { running: now_running, recent: self.recent.iter().map(|(_, v)| v.clone()).collect() }
    }

    /// Keeps a job that ended, once (a finished job is told of for a while).
    fn remember(&mut self, key: JobKey, view: JobView) {
        if let Some(slot) = self.recent.iter_mut().find(|(k, _)| *k == key) {
            if !slot.1.finished || slot.1.lost {
                slot.1 = view; // a final word after a lost one
            }
            return;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_back();
        }
        self.recent.push_front((key, view));
    }
}

/// The node id of a peer id in base58, as the network layer derives it.
fn node_id(peer: &str) -> NodeId {
    crate::node::api::view::node_id_of(peer).unwrap_or(NodeId(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::JobId;
    use crate::node::api::report::NodeInfo;
    use crate::node::api::view::{JobSummary, Share};
    use libp2p::PeerId;

    fn describe(n: NodeId) -> NodeInfo {
        NodeInfo { name: format!("n{}", n.0), peer_id: String::new(), workers: 2 }
    }

    fn row(name: &str, peer: PeerId, done: u64, jobs: Vec<JobSummary>) -> PeerRow {
        PeerRow {
            name: name.into(),
            peer_id: peer.to_base58(),
            addrs: Vec::new(),
            workers: Some(2),
            busy: Some(0),
            queued: Some(0),
            tasks_done: Some(done),
            steals: Some(0),
            rtt_ms: None,
            version: "0.1.0".into(),
            last_seen_s: Some(0.0),
            is_self: name == "me",
            state: PeerState::Member,
            blobs: None,
            facts: None,
            health: None,
            jobs,
        }
    }

    fn job(seq: u32, done: u64, finished: bool) -> JobSummary {
        let shares = vec![Share { node: NodeId(1), tasks: done, task_ms: done * 100 }];
        JobSummary {
            seq,
            kind: JobKind::Primes,
            done,
            failed: 0,
            total: 10,
            elapsed_ms: 1000,
            finished,
            shares,
            submitter: None,
        }
    }

    fn inputs(rows: Vec<PeerRow>) -> Inputs {
        Inputs { rows, farewells: Vec::new(), status: Status::default(), counters: Counters::default(), lending: true }
    }

    #[test]
    fn jobs_run_then_finish_once_and_a_vanished_one_is_marked_lost() {
        let (me, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let (mut board, rx) = Board::new("me", t0);
        let snap = |board: &mut Board, t: u64, rows| {
            board.publish(t0 + Duration::from_millis(t), inputs(rows), &describe);
            rx.borrow().clone()
        };
        let s = snap(
            &mut board,
            0,
            vec![row("me", me, 0, vec![job(1, 3, false)]), row("o", other, 0, vec![job(9, 1, false)])],
        );
        let running: Vec<(&str, u64)> = s.live.jobs.running.iter().map(|j| (j.owner.as_str(), j.done)).collect();
        assert_eq!(running.len(), 2);
        assert!(running.contains(&("me", 3)) && running.contains(&("o", 1)));
        let mine = s.live.jobs.running.iter().find(|j| j.owner == "me").unwrap();
        assert_eq!(mine.id, JobId { owner: node_id(&me.to_base58()), seq: 1 }.to_string());
        // Our job finishes and is told of twice; the other's owner goes away mid-job.
        for t in [500, 1000] {
            let s = snap(&mut board, t, vec![row("me", me, 10, vec![job(1, 10, true)])]);
            assert!(s.live.jobs.running.is_empty());
            let recent: Vec<(&str, u64, bool, bool)> =
                s.live.jobs.recent.iter().map(|j| (j.owner.as_str(), j.done, j.finished, j.lost)).collect();
            assert_eq!(recent.len(), 2, "each job once: {recent:?}");
            assert!(recent.contains(&("me", 10, true, false)) && recent.contains(&("o", 1, false, true)));
        }
        assert!(s.live.seq < rx.borrow().live.seq, "every snapshot is numbered");
    }

    #[test]
    fn a_goodbye_brings_the_final_word_on_a_job() {
        let (me, other) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let (mut board, rx) = Board::new("me", t0);
        board.publish(
            t0,
            inputs(vec![row("me", me, 0, vec![]), row("o", other, 0, vec![job(2, 4, false)])]),
            &describe,
        );
        let mut last = inputs(vec![row("me", me, 0, vec![])]);
        last.farewells = vec![Farewell { peer: other, name: "o".into(), jobs: vec![job(2, 10, true)] }];
        board.publish(t0 + Duration::from_millis(500), last, &describe);
        let s = rx.borrow().clone();
        let recent: Vec<(u64, bool, bool)> = s.live.jobs.recent.iter().map(|j| (j.done, j.finished, j.lost)).collect();
        assert_eq!(recent, [(10, true, false)]);
    }

    #[test]
    fn throughput_is_tasks_done_per_second_per_node_and_history_is_bounded() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        let (mut board, rx) = Board::new("a", t0);
        for i in 0..(HISTORY as u64 + 5) {
            let rows = vec![row("a", a, i * 3, vec![]), row("b", b, i * 5, vec![])];
            board.publish(t0 + Duration::from_secs(i), inputs(rows), &describe);
        }
        let s = rx.borrow().clone();
        assert_eq!(s.history.len(), HISTORY);
        let rates: Vec<(&str, f64)> = s.live.rate.nodes.iter().map(|n| (n.name.as_str(), n.per_s)).collect();
        assert_eq!(rates, [("a", 3.0), ("b", 5.0)]);
        assert!((s.live.rate.total - 8.0).abs() < 1e-9);
        assert!(s.history.windows(2).all(|w| w[0].at_s < w[1].at_s), "oldest first");
    }

    #[test]
    fn metrics_count_each_task_of_a_run_by_outcome() {
        let (mut board, rx) = Board::new("a", Instant::now());
        let ok = TaskReport {
            task: 0,
            outcome: Ok(TaskOutput::Sum(2)),
            took: Duration::from_millis(3),
            blame: Default::default(),
        };
        let bad = TaskReport {
            task: 1,
            outcome: Err("boom".into()),
            took: Duration::from_millis(3),
            blame: Default::default(),
        };
        board.ran(JobKind::Wasm, &[ok.clone(), bad, ok]);
        board.publish(Instant::now(), inputs(vec![row("a", PeerId::random(), 0, vec![job(1, 0, false)])]), &describe);
        let m = rx.borrow().metrics.clone();
        assert_eq!((m.kinds[1].done, m.kinds[1].failed, m.kinds[0].done), (2, 1, 0));
        assert_eq!(m.jobs_running, 1);
    }
}
