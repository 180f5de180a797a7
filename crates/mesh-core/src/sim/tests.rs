//! Scheduler invariants, checked on simulated meshes.

use super::*;
use proptest::prelude::*;

const SETTLE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(3600);
const MAX_EVENTS: u64 = 5_000_000;

fn nodes(specs: &[(u32, f64)]) -> Vec<NodeSpec> {
    specs.iter().map(|&(workers, speed)| NodeSpec::new(workers, speed)).collect()
}

/// Every job whose owner lives finished with each task counted exactly once and the exact
/// sum; poison tasks failed for good after exactly `retries` retries, and every other task
/// succeeded (with no broken node, or a broken node and at least one retry); every live
/// node let go of every job afterwards.
pub(super) fn check_outcomes(sim: &Sim) -> Result<(), TestCaseError> {
    let retries = sim.cfg.retries;
    for (job, j) in &sim.jobs {
        if !sim.alive(j.owner) {
            continue;
        }
        prop_assert!(j.finished_at.is_some(), "job {job:?} did not finish");
        prop_assert!(j.accepted.iter().all(|&c| c == 1), "job {job:?}: a task was not counted exactly once");
        let poison: Vec<u64> = (0..j.tasks).filter(|&t| sim.is_poison(t)).collect();
        let mut failed = j.failed.clone();
        failed.sort_unstable();
        prop_assert_eq!(&failed, &poison, "job {:?}: the wrong tasks failed", job);
        for &t in &poison {
            prop_assert_eq!(j.retried[t as usize], retries, "job {:?}: task {} retried wrongly", job, t);
        }
        prop_assert_eq!(j.sum, j.expected, "job {:?}: wrong result", job);
        prop_assert_eq!(j.per_node.values().sum::<u64>(), j.tasks);
    }
    for i in 0..sim.nodes.len() {
        if sim.alive(i) {
            prop_assert!(sim.node(i).is_idle(), "node {i} still holds work after the jobs ended");
        }
        // Honest thieves stay under every victim's steal rate.
        prop_assert_eq!(sim.node(i).counters().steal_requests_refused, 0, "node {} refused an honest thief", i);
    }
    Ok(())
}

#[test]
fn lone_node_runs_everything_once() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(4, 1.0)]), 1));
    sim.submit_at(Duration::ZERO, 0, 1000);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    assert_eq!(sim.node(0).counters().backups, 0, "a lone node never duplicates work");
    assert_eq!(sim.steal_messages, 0);
}

#[test]
fn empty_job_finishes_at_once() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(2, 1.0), (2, 1.0)]), 3));
    sim.submit_at(Duration::ZERO, 1, 0);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
}

#[test]
fn work_spreads_and_steals_stay_rare() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(1, 1.0), (1, 1.0), (1, 1.0)]), 5));
    sim.submit_at(Duration::from_millis(1500), 0, 1000);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    let job = sim.jobs.values().next().unwrap();
    for i in 0..3 {
        let share = job.per_node.get(&i).copied().unwrap_or(0);
        assert!(share > 250, "node {i} did only {share} of 1000 tasks");
    }
    let per_task = sim.steal_messages as f64 / 1000.0;
    assert!(per_task < 0.2, "{per_task} steal messages per task");
}

#[test]
fn tiny_tasks_go_out_in_runs_and_still_spread() {
    let mut cfg = SimConfig::new(nodes(&[(2, 1.0), (1, 1.0), (1, 0.5)]), 29);
    cfg.task_cost = (Duration::from_micros(10), Duration::from_micros(30));
    let mut sim = Sim::new(cfg);
    sim.submit_at(Duration::from_millis(1500), 0, 200_000);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    assert!(sim.runs < 200_000 / 8, "{} runs for 200000 tasks of 10-30 µs", sim.runs);
    let job = sim.jobs.values().next().unwrap();
    for i in 0..3 {
        let share = job.per_node.get(&i).copied().unwrap_or(0);
        assert!(share > 20_000, "node {i} did only {share} of 200000 tiny tasks");
    }
}

#[test]
fn faster_nodes_do_proportionally_more() {
    let speeds = [(1, 1.0), (1, 1.0), (1, 2.0), (1, 4.0)];
    let mut sim = Sim::new(SimConfig::new(nodes(&speeds), 9));
    sim.submit_at(Duration::from_millis(1500), 0, 4000);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    let job = sim.jobs.values().next().unwrap();
    let total_speed: f64 = speeds.iter().map(|s| s.1).sum();
    for (i, &(_, speed)) in speeds.iter().enumerate() {
        let share = job.per_node[&i] as f64 / 4000.0;
        let ideal = speed / total_speed;
        assert!((share / ideal - 1.0).abs() < 0.15, "node {i}: share {share:.3}, ideal {ideal:.3}");
    }
}

#[test]
fn killed_node_work_is_redone() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(1, 1.0), (2, 1.0), (2, 1.0)]), 11));
    sim.submit_at(Duration::from_millis(1500), 0, 2000);
    sim.kill_at(Duration::from_secs(3), 1);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    let job = sim.jobs.values().next().unwrap();
    assert!(job.per_node.get(&1).copied().unwrap_or(0) > 0, "node 1 worked before it died");
}

#[test]
fn dead_submitter_work_is_dropped_everywhere() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(1, 1.0), (2, 1.0), (2, 1.0)]), 13));
    sim.submit_at(Duration::from_millis(1500), 0, 5000);
    sim.kill_at(Duration::from_secs(3), 0);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
}

#[test]
fn partition_heals_and_result_is_exact() {
    let mut sim = Sim::new(SimConfig::new(nodes(&[(1, 1.0), (1, 1.0), (1, 1.0)]), 17));
    sim.submit_at(Duration::from_millis(1500), 0, 2000);
    sim.cut_at(Duration::from_secs(4), vec![2], Duration::from_secs(14));
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
}

#[test]
fn replays_exactly() {
    let run = || {
        let mut cfg = SimConfig::new(nodes(&[(1, 1.0), (2, 0.5), (3, 2.0)]), 21);
        cfg.loss = 0.05;
        let mut sim = Sim::new(cfg);
        sim.submit_at(Duration::from_millis(1200), 0, 700);
        sim.submit_at(Duration::from_millis(1300), 2, 300);
        sim.kill_at(Duration::from_secs(2), 1);
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
        (sim.messages, sim.elapsed(), sim.jobs.values().map(|j| j.per_node.clone()).collect::<Vec<_>>())
    };
    assert_eq!(run(), run());
}

#[derive(Debug, Clone)]
struct Scenario {
    nodes: Vec<(u32, f64)>,
    jobs: Vec<(usize, u64, u64)>,
    kill: Option<(usize, u64)>,
    loss: f64,
    max_latency_us: u64,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    let node = (1u32..4, prop::sample::select(vec![0.25, 0.5, 1.0, 2.0, 4.0]));
    (prop::collection::vec(node, 1..6), any::<u64>()).prop_flat_map(|(nodes, seed)| {
        let n = nodes.len();
        let job = (0..n, 0u64..400, 0u64..4000);
        (
            Just(nodes),
            prop::collection::vec(job, 1..4),
            prop::option::of((0..n, 0u64..8000)),
            prop::sample::select(vec![0.0, 0.01, 0.1]),
            prop::sample::select(vec![100u64, 2_000, 20_000]),
            Just(seed),
        )
            .prop_map(|(nodes, jobs, kill, loss, max_latency_us, seed)| Scenario {
                nodes,
                jobs,
                kill,
                loss,
                max_latency_us,
                seed,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// No task lost, none counted twice, every job with a live owner terminates with the
    /// exact result, and a dead node's work is redone — under loss, latency, uneven speeds,
    /// concurrent submitters and a node death.
    #[test]
    fn invariants_hold(s in scenario()) {
        check_invariants(&s, false)?;
    }

    /// The same with work pushed to idle peers (`Config::push_to_idle`).
    #[test]
    fn invariants_hold_when_work_is_pushed(s in scenario()) {
        check_invariants(&s, true)?;
    }
}

fn check_invariants(s: &Scenario, push: bool) -> Result<(), TestCaseError> {
    let mut cfg = SimConfig::new(nodes(&s.nodes), s.seed);
    cfg.core.push_to_idle = push;
    cfg.loss = s.loss;
    cfg.latency = (Duration::from_micros(50), Duration::from_micros(s.max_latency_us));
    let mut sim = Sim::new(cfg);
    for &(owner, tasks, at_ms) in &s.jobs {
        sim.submit_at(Duration::from_millis(at_ms), owner, tasks);
    }
    // Half the deaths are crashes the peers hear of at once, half silent unpluggings.
    if let Some((node, at_ms)) = s.kill {
        if s.seed.is_multiple_of(2) {
            sim.crash_at(Duration::from_millis(at_ms), node);
        } else {
            sim.kill_at(Duration::from_millis(at_ms), node);
        }
    }
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).map_err(|e| TestCaseError::fail(e.to_string()))?;
    check_outcomes(&sim)
}

#[test]
fn a_lone_node_retries_its_own_failures() {
    let mut cfg = SimConfig::new(nodes(&[(2, 1.0)]), 2);
    cfg.poison_every = 7;
    cfg.retries = 3;
    let mut sim = Sim::new(cfg);
    sim.submit_at(Duration::ZERO, 0, 100);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    assert_eq!(sim.jobs.values().next().unwrap().failed.len(), 15);
}

#[test]
fn failures_on_a_broken_node_are_retried_elsewhere() {
    // Node 1 fails everything it runs; one retry is enough to finish every task elsewhere.
    for broken in [0, 1] {
        let mut cfg = SimConfig::new(nodes(&[(1, 1.0), (1, 2.0), (1, 1.0)]), 23);
        cfg.broken = vec![broken];
        cfg.retries = 1;
        let mut sim = Sim::new(cfg);
        sim.submit_at(Duration::from_millis(1500), 0, 600);
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
        check_outcomes(&sim).unwrap();
        let job = sim.jobs.values().next().unwrap();
        assert!(job.retried.iter().sum::<u32>() > 0, "node {broken} failed nothing");
        assert_eq!(job.per_node.get(&broken), None, "no result of the broken node was accepted");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Retries under loss, latency and concurrent jobs: poison tasks fail for good after
    /// exactly `retries` retries, and a single broken node never makes a task fail.
    #[test]
    fn retries_hold(s in scenario(), retries in 1u32..4, poison in prop::sample::select(vec![0u64, 5, 13]), broken in 0usize..6) {
        check_retries(&s, retries, poison, broken)?;
    }
}

/// A broken owner with fast workers must not fail a task that a good node can run. Found
/// by `retries_hold`: the owner ran a backup of a task a thief held, which failed; it then
/// stole the task back from the thief into its plain queue and ran it again, using up its
/// last retry. Work of its own job that comes back to the owner now keeps its failed tasks
/// on the retry list (`Job::requeue`).
#[test]
fn a_broken_fast_owner_fails_no_task() {
    let s = Scenario {
        nodes: vec![(2, 0.25), (1, 0.25), (1, 1.0), (3, 4.0), (3, 0.25)],
        jobs: vec![(0, 0, 2021), (3, 142, 0), (3, 125, 2019)],
        kill: None,
        loss: 0.0,
        max_latency_us: 2000,
        seed: 6271313702940239267,
    };
    check_retries(&s, 1, 13, 3).unwrap();
    let s = Scenario {
        nodes: vec![(3, 2.0), (1, 1.0), (1, 0.25), (2, 2.0), (1, 0.25)],
        jobs: vec![(0, 339, 781), (3, 363, 0)],
        kill: None,
        loss: 0.0,
        max_latency_us: 100,
        seed: 6144295233065596303,
    };
    check_retries(&s, 1, 13, 0).unwrap();
}

fn check_retries(s: &Scenario, retries: u32, poison: u64, broken: usize) -> Result<(), TestCaseError> {
    {
        let mut cfg = SimConfig::new(nodes(&s.nodes), s.seed);
        cfg.loss = s.loss;
        cfg.latency = (Duration::from_micros(50), Duration::from_micros(s.max_latency_us));
        cfg.retries = retries;
        cfg.poison_every = poison;
        // A broken node must not make a task fail once the nodes know each other (1.5 s of
        // gossip) and no message is lost; with loss, a lost result can leave the retry to
        // the broken owner after `avoid_for`.
        if s.nodes.len() >= 2 && broken < s.nodes.len() {
            cfg.broken = vec![broken];
            cfg.loss = 0.0;
        }
        let mut sim = Sim::new(cfg);
        for &(owner, tasks, at_ms) in &s.jobs {
            sim.submit_at(Duration::from_millis(1500 + at_ms), owner, tasks);
        }
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check_outcomes(&sim)
    }
}

fn facts(allow_run: bool, labels: &[&str]) -> Facts {
    Facts { allow_run, labels: labels.iter().map(|l| l.to_string()).collect(), ..Facts::default() }
}

fn needs(native: bool, labels: &[&str]) -> Needs {
    let requirements = labels.iter().map(|l| crate::Requirement::Label(l.to_string())).collect();
    Needs { native, python: false, requirements }
}

fn with_facts(all: &[Facts]) -> Vec<NodeSpec> {
    all.iter().map(|f| NodeSpec { facts: f.clone(), ..NodeSpec::new(2, 1.0) }).collect()
}

#[test]
fn tasks_land_only_on_nodes_that_may_run_them() {
    // n0 submits and runs its own programs; n1 allows runs and has ffmpeg; n2 allows runs
    // without ffmpeg; n3 has ffmpeg but does not allow runs.
    let all = [facts(false, &["ffmpeg"]), facts(true, &["ffmpeg"]), facts(true, &[]), facts(false, &["ffmpeg"])];
    let mut sim = Sim::new(SimConfig::new(with_facts(&all), 21));
    sim.submit_with(Duration::ZERO, 0, 400, needs(true, &["ffmpeg"]), None);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    let j = sim.jobs.values().next().unwrap();
    assert!(j.per_node.keys().all(|&n| n == 0 || n == 1), "{:?}", j.per_node);
    assert!(j.per_node.get(&1).is_some_and(|&n| n > 0), "the one matching helper ran tasks: {:?}", j.per_node);
}

#[test]
fn an_owner_that_does_not_match_leaves_its_job_to_those_that_do() {
    let all = [facts(true, &[]), facts(true, &["gpu"]), facts(true, &[])];
    let mut sim = Sim::new(SimConfig::new(with_facts(&all), 22));
    sim.submit_with(Duration::ZERO, 0, 200, needs(false, &["gpu"]), None);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    assert!(sim.violations.is_empty(), "{:?}", sim.violations);
    assert_eq!(sim.jobs.values().next().unwrap().per_node.keys().copied().collect::<Vec<_>>(), [1]);
}

#[test]
fn a_job_no_node_can_run_says_why_and_halts_when_its_rule_says_so() {
    let all = [facts(false, &[]), facts(true, &[]), facts(false, &["ffmpeg"])];
    let mut sim = Sim::new(SimConfig::new(with_facts(&all), 23));
    sim.submit_with(Duration::ZERO, 1, 50, needs(true, &["ffmpeg"]), None);
    let err = sim.drive(MAX_EVENTS, SETTLE, Duration::from_secs(60)).unwrap_err();
    assert!(matches!(err, crate::sim::Stuck::Deadline { .. }), "it waits: {err}");
    let (_, why) = sim.waiting.first().expect("the owner said why");
    assert_eq!(why, "of 3 nodes, 2 do not allow runs (mesh join --allow-run) and 1 lack the label ffmpeg");
    assert!(sim.waiting.len() >= 5, "and kept saying it: {}", sim.waiting.len());
    assert!(sim.violations.is_empty());

    let fail_one = crate::parse_halt("now,fail=1").unwrap();
    let mut sim = Sim::new(SimConfig::new(with_facts(&all), 24));
    sim.submit_with(Duration::ZERO, 1, 50, needs(true, &["ffmpeg"]), fail_one);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    let j = sim.jobs.values().next().unwrap();
    assert!(j.halted && j.finished_at.is_some() && j.per_node.is_empty(), "{j:?}");
    assert_eq!(sim.waiting.len(), 1);
    assert!((0..3).all(|i| sim.node(i).is_idle()));
}

#[test]
fn halt_on_the_first_failure_stops_the_job_everywhere() {
    let mut cfg = SimConfig::new(nodes(&[(2, 1.0), (2, 1.0), (2, 1.0)]), 25);
    cfg.poison_every = 150;
    let mut sim = Sim::new(cfg);
    sim.submit_with(Duration::ZERO, 0, 1000, Needs::NONE, crate::parse_halt("now,fail=1").unwrap());
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    let j = sim.jobs.values().next().unwrap();
    assert!(j.halted, "{j:?}");
    assert_eq!(j.failed.len(), 1, "one failure halts it");
    let done: u64 = j.per_node.values().sum();
    assert!(done < 1000, "it stopped early: {done} tasks had results");
    assert!(j.accepted.iter().all(|&c| c <= 1), "nothing counted twice");
    assert!((0..3).all(|i| sim.node(i).is_idle()), "every node let go of it");
}

fn facts_strategy() -> impl Strategy<Value = Facts> {
    (any::<bool>(), prop::sample::subsequence(vec!["a", "b"], 0..=2)).prop_map(|(allow, labels)| facts(allow, &labels))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the nodes offer and the jobs need, no task runs where it may not, and every
    /// job some node can run finishes exactly.
    #[test]
    fn requirements_hold(
        all in prop::collection::vec(facts_strategy(), 2..6),
        native in any::<bool>(),
        labels in prop::sample::subsequence(vec!["a", "b"], 0..=2),
        owner_pick in 0usize..6,
        seed in any::<u64>(),
    ) {
        let owner = owner_pick % all.len();
        let needs = needs(native, &labels);
        let can = |i: usize, f: &Facts| needs.check(f, i == owner).is_ok();
        prop_assume!(all.iter().enumerate().any(|(i, f)| can(i, f)));
        let mut sim = Sim::new(SimConfig::new(with_facts(&all), seed));
        sim.submit_with(Duration::ZERO, owner, 120, needs.clone(), None);
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        check_outcomes(&sim)?;
        let j = sim.jobs.values().next().unwrap();
        for &n in j.per_node.keys() {
            prop_assert!(can(n, &all[n]), "node {} ran tasks it may not run", n);
        }
    }
}

/// A peer holding the key sends a grant for a job that names this node as its owner but
/// was never submitted here: a node that runs its own user's programs must not take it
/// for its own (it would run a stranger's program without --allow-run). The same grant
/// naming the peer as owner runs, when the job needs nothing the node lacks.
#[test]
fn a_forged_grant_of_our_own_job_is_refused() {
    use crate::{Grant, TaskRange};
    let (me, peer, t0) = (NodeId(1), NodeId(2), Instant::now());
    let cfg = Config { workers: 2, runs_own: true, facts: facts(false, &[]), ..Config::default() };
    let runs = |owner: NodeId, native: bool| {
        let mut s: Scheduler<Spec, u64> = Scheduler::new(me, cfg.clone(), 7, t0);
        let job = JobId { owner, seq: 3 };
        let spec = SimSpec { salt: 0, needs: needs(native, &[]), halt: None };
        let work = Grant { job, spec, ranges: vec![TaskRange::new(0, 4)], pinned: false };
        s.handle_message(t0, peer, Message::Grant { req: 0, work: Some(work), hint: None });
        std::iter::from_fn(|| s.poll_action()).filter(|a| matches!(a, Action::Start { .. })).count()
    };
    assert_eq!(runs(me, true), 0, "a native job forged in our name");
    assert_eq!(runs(me, false), 0, "any job forged in our name");
    assert_eq!(runs(peer, true), 0, "a native job of a peer, without --allow-run");
    assert!(runs(peer, false) > 0, "a sandboxed job of a peer runs");
}

/// A laptop that submits but does not run programs (`mesh join` without --allow-run) and
/// one Pi that does, over a lossy network, with tasks that fail: every retry must reach
/// the Pi although the Pi is where it failed, and every lost result or grant must be
/// sent again or taken back, since the owner cannot cover for them with backup runs.
#[test]
fn an_owner_that_cannot_run_its_job_still_finishes_it_over_a_lossy_network() {
    for seed in 0..20 {
        let all = [facts(false, &[]), facts(true, &[])];
        let mut cfg = SimConfig::new(with_facts(&all), 100 + seed);
        cfg.core.runs_own = false;
        cfg.loss = 0.1;
        cfg.poison_every = 7;
        cfg.retries = 2;
        let mut sim = Sim::new(cfg);
        sim.submit_with(Duration::ZERO, 0, 200, needs(true, &[]), None);
        sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
        check_outcomes(&sim).unwrap();
        assert!(sim.violations.is_empty(), "{:?}", sim.violations);
        let j = sim.jobs.values().next().unwrap();
        assert_eq!(j.per_node.keys().copied().collect::<Vec<_>>(), [1], "seed {seed}: only the Pi ran tasks");
    }
}

/// A result whose output cannot be fetched runs again without counting as a failure, a
/// few times; after that the loss is the task's failure.
#[test]
fn a_lost_result_runs_again_then_counts_as_a_failure() {
    let t0 = Instant::now();
    let cfg = Config { workers: 1, ..Config::default() };
    let mut s: Scheduler<Spec, u64> = Scheduler::new(NodeId(1), cfg, 3, t0);
    let spec = SimSpec { salt: 0, needs: Needs::default(), halt: None };
    let job = s.submit(t0, spec, 1, 0);
    let lost = || TaskReport {
        task: 0,
        outcome: Err("output unfetchable".to_string()),
        took: Duration::ZERO,
        blame: Default::default(),
    };
    let mut seen = Vec::new();
    for _ in 0..=crate::MAX_LOST {
        s.handle_lost(t0, NodeId(2), job, lost());
        while let Some(a) = s.poll_action() {
            match a {
                Action::Retrying { .. } => seen.push("retry"),
                Action::Accepted { report, .. } => seen.push(if report.outcome.is_err() { "failed" } else { "ok" }),
                _ => {}
            }
        }
    }
    assert_eq!(seen, ["retry", "retry", "retry", "failed"]);
}
