//! Owners that crash and restart with their journal (issue 26): at any moment, during any
//! message, under message loss, every journalled job finishes exact with every task
//! counted once; results accepted but not yet committed simply run again.

use super::tests::check_outcomes;
use super::*;
use proptest::prelude::*;

const SETTLE: Duration = Duration::from_secs(15);
const DEADLINE: Duration = Duration::from_secs(3600);
const MAX_EVENTS: u64 = 5_000_000;

#[derive(Debug, Clone)]
struct Scenario {
    nodes: Vec<(u32, f64)>,
    /// (owner, tasks, submitted at ms)
    jobs: Vec<(usize, u64, u64)>,
    /// (node, at ms, peers hear at once, down for ms)
    deaths: Vec<(usize, u64, bool, u64)>,
    /// Every node dies at this ms (a power cut) and all start again 1 s later.
    power_cut: Option<u64>,
    loss: f64,
    seed: u64,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2usize..6).prop_flat_map(|n| {
        (
            prop::collection::vec((1u32..4, prop::sample::select(vec![0.5, 1.0, 2.0])), n),
            prop::collection::vec((0..n, 1u64..400, 0u64..3000), 1..4),
            prop::collection::vec((0..n, 500u64..8000, any::<bool>(), 0u64..6000), 0..4),
            prop::option::of(500u64..8000),
            prop::sample::select(vec![0.0, 0.02, 0.1]),
            any::<u64>(),
        )
            .prop_map(|(nodes, jobs, deaths, power_cut, loss, seed)| Scenario {
                nodes,
                jobs,
                deaths,
                power_cut,
                loss,
                seed,
            })
    })
}

fn run(s: &Scenario) -> Result<Sim, TestCaseError> {
    let nodes = s.nodes.iter().map(|&(w, speed)| NodeSpec::new(w, speed)).collect();
    let mut cfg = SimConfig::new(nodes, s.seed);
    cfg.loss = s.loss;
    cfg.journal = Some(Duration::from_secs(1));
    let mut sim = Sim::new(cfg);
    for &(owner, tasks, at) in &s.jobs {
        sim.submit_at(Duration::from_millis(at), owner, tasks);
    }
    for &(node, at, told, down) in &s.deaths {
        let at = Duration::from_millis(at);
        if told {
            sim.crash_at(at, node)
        } else {
            sim.kill_at(at, node)
        }
        sim.restart_at(at + Duration::from_millis(down), node);
    }
    if let Some(at) = s.power_cut {
        for node in 0..s.nodes.len() {
            sim.kill_at(Duration::from_millis(at), node);
            sim.restart_at(Duration::from_millis(at + 1000), node);
        }
    }
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).map_err(|e| TestCaseError::fail(e.to_string()))?;
    Ok(sim)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Every job finishes exact after its owner's crashes and restarts, and every live node
    /// lets go of it.
    #[test]
    fn journalled_jobs_survive_their_owners_restarts(s in scenario()) {
        let sim = run(&s)?;
        for (id, j) in &sim.jobs {
            prop_assert!(sim.alive(j.owner), "owner of {:?} is down at the end", id);
        }
        check_outcomes(&sim)?;
    }
}

/// The owner is killed part way through a job (its peers hear at once, as when kill -9
/// closes its connections) and comes back 2 s later: the job
/// finishes exact, keeps what it committed, and runs again only what it had not.
#[test]
fn a_restarted_owner_runs_only_what_it_had_not_committed() {
    let s = Scenario {
        nodes: vec![(2, 1.0), (2, 1.0), (2, 1.0)],
        jobs: vec![(0, 6000, 500)],
        deaths: vec![(0, 4000, true, 2000)],
        power_cut: None,
        loss: 0.0,
        seed: 5,
    };
    let sim = run(&s).unwrap();
    check_outcomes(&sim).unwrap();
    // Tasks take 5-15 ms on 6 workers, about 600 a second: some 2,000 ran in the first
    // 3.5 s, and at most the last second's were not committed.
    let &[(_, kept)] = sim.resumed() else { panic!("one job resumed: {:?}", sim.resumed()) };
    assert!(kept > 1000, "the journal kept {kept} results");
    // Run again from scratch, it would take 6,000 runs more than the ~2,000 before.
    assert!(
        sim.runs < 6000 + 1500,
        "{} runs for 6,000 tasks; kept {kept}; {:?}",
        sim.runs,
        sim.jobs.values().next().unwrap().finished_at
    );
}

/// Without the journal, the same death loses the job: the check above can fail.
#[test]
fn without_a_journal_the_job_is_lost() {
    let mut cfg = SimConfig::new(vec![NodeSpec::new(2, 1.0), NodeSpec::new(2, 1.0)], 5);
    cfg.journal = None;
    let mut sim = Sim::new(cfg);
    sim.submit_at(Duration::from_millis(500), 0, 2000);
    sim.kill_at(Duration::from_secs(4), 0);
    sim.restart_at(Duration::from_secs(6), 0);
    let stuck = sim.drive(MAX_EVENTS, SETTLE, Duration::from_secs(60));
    assert!(matches!(stuck, Err(Stuck::Deadline { .. })), "{stuck:?}");
    assert!(sim.jobs.values().next().unwrap().finished_at.is_none());
}
