//! Thieves that seek work without waiting for gossip, and meshes over two LANs (issue 16),
//! checked on simulated meshes.

use super::tests::check_outcomes;
use super::*;
use crate::Counters;

const DEADLINE: Duration = Duration::from_secs(3600);
const MAX_EVENTS: u64 = 5_000_000;
/// Long enough for every node to hear that a job ended.
const SETTLE: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

fn equal(n: usize, seed: u64) -> SimConfig {
    SimConfig::new(vec![NodeSpec::new(1, 1.0); n], seed)
}

/// One job of `tasks` submitted on `owner` once gossip has introduced the nodes, run to
/// its exact end.
fn run_one(cfg: SimConfig, owner: usize, tasks: u64) -> Sim {
    let mut sim = Sim::new(cfg);
    sim.submit_at(Duration::from_millis(1500), owner, tasks);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    sim
}

/// Nodes that ran some of the job.
fn takers(sim: &Sim) -> usize {
    sim.jobs.values().next().expect("one job").per_node.values().filter(|&&t| t > 0).count()
}

/// Gossip that tells each node of the others once, at the start, and never again: every
/// status after the first is held back for an hour, and nobody expires meanwhile.
fn mute(cfg: &mut SimConfig) {
    cfg.core.gossip_interval = HOUR;
    cfg.core.publish_min_gap = HOUR;
    cfg.core.peer_expiry = 2 * HOUR;
    cfg.core.gossip_budget = 0.0;
}

#[test]
fn thieves_find_work_that_gossip_never_tells_of() {
    let run = |seek: bool| {
        let mut cfg = equal(20, 11);
        mute(&mut cfg);
        cfg.core.seek_work = seek;
        run_one(cfg, 3, 2000)
    };
    // Without seeking, nobody hears of the job (its owner's status is held back), so its
    // owner runs it alone: the comparison shows the test can fail.
    assert_eq!(takers(&run(false)), 1);
    let sim = run(true);
    // Seeking: the owner tells of the new job at once, and from then on thieves find work
    // by hints, lifelines and random asks alone.
    assert_eq!(takers(&sim), 20, "every node took part");
    let sum = |f: fn(Counters) -> u64| (0..20).map(|i| f(sim.node(i).counters())).sum::<u64>();
    assert!(sum(|c| c.hints_followed) > 0, "hints were followed");
    assert!(sim.node(3).counters().ledger_hints > 0, "the owner named holders from its ledger");
    assert!(sum(|c| c.pushes) > 0, "lifelines carried work");
    assert!(sim.status_messages <= 2 * 20 * 19, "no status beyond the first two rounds: {}", sim.status_messages);
}

#[test]
fn an_idle_mesh_stays_silent_before_and_after_a_job() {
    let mut sim = Sim::new(equal(12, 5));
    sim.drive(MAX_EVENTS, Duration::from_secs(10), DEADLINE).unwrap();
    assert_eq!(sim.messages, sim.status_messages, "an idle mesh sends only status gossip");
    sim.submit_at(Duration::from_secs(10), 0, 1200);
    sim.drive(MAX_EVENTS, SETTLE, DEADLINE).unwrap();
    check_outcomes(&sim).unwrap();
    let steals = sim.steal_messages;
    // Afterwards only gossip, and the results and lease messages already on their way.
    sim.drive(MAX_EVENTS, Duration::from_secs(20), DEADLINE).unwrap();
    assert_eq!(sim.steal_messages, steals, "no steal after the job ended");
}

/// Two LANs of 10 nodes, joined by a link that adds 20 ms each way; a job on LAN 0.
fn two_lans(aware: bool, seed: u64) -> Sim {
    let mut cfg = equal(20, seed);
    cfg.lans = (0..20).map(|i| usize::from(i >= 10)).collect();
    cfg.wan_latency = Duration::from_millis(20);
    cfg.core.cluster_aware = aware;
    run_one(cfg, 0, 4000)
}

#[test]
fn cluster_aware_thieves_finish_sooner_over_a_slow_link() {
    let makespan = |sim: &Sim| sim.jobs.values().next().unwrap().finished_at.unwrap();
    for seed in [1, 2, 3] {
        let (aware, random) = (two_lans(true, seed), two_lans(false, seed));
        let on_lan_1 =
            |sim: &Sim| (10..20).filter(|i| sim.jobs.values().next().unwrap().per_node.contains_key(i)).count();
        assert_eq!(on_lan_1(&aware), 10, "seed {seed}: every node of the other LAN took part");
        // Virtual times of a deterministic run, not wall-clock ones.
        let (a, r) = (makespan(&aware), makespan(&random));
        assert!(a < r, "seed {seed}: cluster-aware took {a:?}, random stealing {r:?}");
        assert!(aware.wan_steal_messages > 0, "seed {seed}: work crossed the link by steals");
        assert_eq!(aware.max_far_steals_out, 1, "seed {seed}: one steal across the link at a time");
        assert_eq!(random.max_far_steals_out, 1, "seed {seed}: random stealing has one request out in all");
    }
}
