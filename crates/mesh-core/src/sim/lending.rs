//! Nodes that stop lending their workers (`mesh join --hours`, `--when-idle`), or pause
//! after failing tasks by their own fault, checked on simulated meshes: they start no new
//! runs, what they hold goes to the others, and every job still ends exactly.

use super::*;

const SETTLE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(3600);
const MAX_EVENTS: u64 = 5_000_000;

fn sim(workers: &[u32], seed: u64) -> Sim {
    let nodes = workers.iter().map(|&w| NodeSpec::new(w, 1.0)).collect();
    Sim::new(SimConfig::new(nodes, seed))
}

/// Every job ended with each task counted once and the exact sum.
fn exact(sim: &Sim) {
    for (id, j) in &sim.jobs {
        assert!(j.finished_at.is_some(), "job {id:?} did not finish");
        assert!(j.accepted.iter().all(|&c| c == 1), "job {id:?}: a task not counted exactly once");
        assert_eq!(j.sum, j.expected, "job {id:?}: wrong result");
    }
}

#[test]
fn a_thief_that_stops_lending_starts_nothing_and_its_work_moves_on() {
    for seed in 0..8 {
        let mut s = sim(&[2, 2, 2], seed);
        s.submit_at(Duration::from_millis(1500), 0, 2000);
        s.lend_at(Duration::from_millis(4000), 2, false);
        s.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
        exact(&s);
        assert_eq!(s.runs_not_lending[2], 0, "seed {seed}: node 2 started runs while not lending");
        let job = s.jobs.values().next().unwrap();
        assert!(job.per_node.get(&2).copied().unwrap_or(0) > 0, "seed {seed}: node 2 lent before it stopped");
        assert!(s.node(2).is_idle(), "seed {seed}: node 2 kept work");
    }
}

#[test]
fn an_owner_that_lends_nothing_still_gets_its_job_done_by_the_others() {
    let mut s = sim(&[2, 2, 2], 7);
    s.lend_at(Duration::from_millis(1000), 0, false);
    s.submit_at(Duration::from_millis(1500), 0, 1000);
    s.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    exact(&s);
    assert_eq!(s.runs_not_lending[0], 0);
    let job = s.jobs.values().next().unwrap();
    assert_eq!(job.per_node.get(&0), None, "the owner ran tasks while not lending");
}

#[test]
fn a_mesh_that_lends_nothing_waits_and_then_finishes() {
    let mut s = sim(&[1, 1], 3);
    s.lend_at(Duration::from_millis(1000), 0, false);
    s.lend_at(Duration::from_millis(1000), 1, false);
    s.submit_at(Duration::from_millis(1500), 0, 300);
    // The evening comes at 60 s for node 1 only.
    s.lend_at(Duration::from_secs(60), 1, true);
    s.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    exact(&s);
    let job = s.jobs.values().next().unwrap();
    assert!(job.finished_at.unwrap() > Duration::from_secs(60), "the job ran before any node lent");
    assert_eq!(job.per_node.get(&1).copied(), Some(300), "node 1 ran it all once it lent");
    assert_eq!(s.runs_not_lending, vec![0, 0]);
    // Its owner said why it waited.
    assert!(
        s.waiting.iter().any(|(_, why)| why == "of 2 nodes, 2 take no tasks now (mesh join --hours or --when-idle)"),
        "{:?}",
        s.waiting
    );
}

#[test]
fn waiting_for_nodes_to_lend_is_not_a_failure_that_halts_a_job() {
    let mut s = sim(&[1, 1], 5);
    s.lend_at(Duration::from_millis(1000), 0, false);
    s.lend_at(Duration::from_millis(1000), 1, false);
    let halt = crate::parse_halt("now,fail=1").unwrap();
    s.submit_with(Duration::from_millis(1500), 0, 100, Needs::NONE, halt);
    s.lend_at(Duration::from_secs(40), 0, true);
    s.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    exact(&s);
    let job = s.jobs.values().next().unwrap();
    assert!(!job.halted, "the job halted while it only waited for its hours");
    assert!(!s.waiting.is_empty(), "the owner said why it waited");
}

#[test]
fn a_node_that_lends_nothing_still_runs_the_retries_pinned_to_it() {
    // Poison tasks fail everywhere; their retries are pinned to thieves. A thief that
    // stops lending still runs the ones it holds (nobody else may), so the job ends.
    let mut cfg = SimConfig::new(vec![NodeSpec::new(2, 1.0); 3], 11);
    cfg.retries = 2;
    cfg.poison_every = 7;
    let mut s = Sim::new(cfg);
    s.submit_at(Duration::from_millis(1500), 0, 700);
    s.lend_at(Duration::from_millis(3000), 1, false);
    s.lend_at(Duration::from_millis(3000), 2, false);
    s.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    let job = s.jobs.values().next().unwrap();
    assert!(job.finished_at.is_some(), "the job did not end");
    assert!(job.accepted.iter().all(|&c| c == 1));
    assert_eq!(job.failed.len(), 100, "every poison task failed for good, and only those");
}

/// Issue 30: a node that fails every task by its own fault (a full disk) takes none of a
/// job with no retries: each of its failures runs again elsewhere without using a retry,
/// and after a few in a row it pauses, so it fails few tasks before the others finish.
/// With its failures counted against the tasks (as before), most of the job would fail.
#[test]
fn a_faulty_node_loses_no_task_and_pauses() {
    for faulty in [0, 1] {
        let nodes = [1, 2, 1].iter().map(|&w| NodeSpec::new(w, 1.0)).collect();
        let mut cfg = SimConfig::new(nodes, 29);
        cfg.faulty = vec![faulty];
        cfg.task_cost = (Duration::from_micros(50), Duration::from_micros(100));
        let mut sim = Sim::new(cfg);
        sim.submit_at(Duration::from_millis(1500), 0, 600);
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
        exact(&sim);
        let job = sim.jobs.values().next().unwrap();
        assert!(job.failed.is_empty(), "node {faulty}'s faults failed tasks: {:?}", job.failed);
        assert_eq!(job.per_node.get(&faulty), None, "no result of the faulty node was accepted");
        assert!(sim.pauses[faulty] >= 1, "node {faulty} never paused");
        let retried: u32 = job.retried.iter().sum();
        assert!((3..60).contains(&retried), "the faulty node failed {retried} of 600 tasks");
    }
}
