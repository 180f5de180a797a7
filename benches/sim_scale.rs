//! The scheduler at scale, in the deterministic simulator: 10, 100 and 1,000 one-worker
//! nodes of mixed speeds (0.5, 1, 1 and 2) run one job of 200 tasks per node (5–15 ms each
//! at speed 1, so about 2 s of work per node), submitted by node 0 once gossip has
//! introduced the nodes. Latency 0.2–2 ms, no loss.
//!
//! Run: `cargo bench --features sim --bench sim_scale` (prints a table, in about 10
//! minutes on 2 cores; add `-- --csv` for the job rows as CSV, which `benches/plot.py`
//! reads; `-- --nodes N` or `-- --policy P` runs only those rows, `-- --seeds K` sets the
//! seeds, `-- --choices D` the random draws a thief weighs to pick a victim, but for
//! `before`). Each row is the mean over 10 seeds (3 at 1,000 nodes): one seed's efficiency
//! moves by about a point. Each size runs three ways:
//! * `before`: stealing as it was before issue 16: thieves learn of work only from status
//!   gossip, which goes all-to-all without a budget, and ask the busier of two random
//!   peers that advertise work;
//! * `steal`, the default: stealing that seeks work without waiting for gossip (hints in
//!   empty answers, lifelines, random asks: `core::Config::seek_work`);
//! * `push`: `steal`, and work pushed to idle peers unasked (`core::Config::push_to_idle`).
//!
//! Then two LANs of 50 nodes each, joined by a link that adds 20 ms each way, with the
//! job submitted on one: random stealing over all peers against cluster-aware stealing
//! (near victims first), both with the default settings otherwise.
//!
//! Reported per size:
//! * efficiency: ideal makespan (total work / total speed) over the real one;
//! * steal messages (requests and grants) per task;
//! * spread: time from submit until every node has started a task;
//! * fairness: tasks per unit of speed on the slowest nodes over that on the fastest
//!   (1.0 means each node's share follows its speed exactly);
//! * backups: speculative re-runs at the end of the job;
//! * status messages per node per second: copies of status gossip each node receives,
//!   over the makespan (all-to-all, so it grows with the mesh).
//!
//! Then the cost of an idle mesh (`--policy idle`): status messages each node receives
//! per second, with the gossip budget (`core::Config::gossip_budget`) and without.
//!
//! Then recovery (`--nodes 3`): 3 equal one-worker nodes, 3,000 tasks (30 s of work),
//! node 2 dies 5 s in, either crashing (its peers learn at once, as from a closed connection) or going
//! silent (an unplugged cable: noticed after the 5 s peer expiry). The ideal is 5 s on 3
//! nodes and the rest on 2; the overhead is the makespan beyond that.

use mesh::sim::{NodeSpec, Sim, SimConfig};
use std::time::{Duration, Instant};

const SPEEDS: [f64; 4] = [0.5, 1.0, 1.0, 2.0];
const TASKS_PER_NODE: u64 = 200;

struct Row {
    policy: &'static str,
    nodes: usize,
    tasks: u64,
    makespan: f64,
    ideal: f64,
    steal_msgs_per_task: f64,
    status_per_node_s: f64,
    spread: f64,
    fairness: f64,
    backups: u64,
    wall: f64,
}

/// How a run shares work: the scheduler's settings it changes.
#[derive(Clone, Copy, PartialEq)]
enum Policy {
    Before,
    Steal,
    Push,
    /// Two LANs, random stealing over all peers.
    TwoLansRandom,
    /// Two LANs, near victims first.
    TwoLansAware,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Self::Before => "before",
            Self::Steal => "steal",
            Self::Push => "push",
            Self::TwoLansRandom => "2lan-random",
            Self::TwoLansAware => "2lan-aware",
        }
    }
}

fn run(n: usize, seed: u64, policy: Policy) -> Row {
    let nodes: Vec<NodeSpec> = (0..n).map(|i| NodeSpec::new(1, SPEEDS[i % SPEEDS.len()])).collect();
    let total_speed: f64 = nodes.iter().map(|n| n.speed).sum();
    let tasks = TASKS_PER_NODE * n as u64;
    let submit = Duration::from_millis(1500);
    let mut cfg = SimConfig::new(nodes.clone(), seed);
    if let Some(d) = arg("--choices").and_then(|d| d.parse().ok()) {
        cfg.core.victim_choices = d;
    }
    match policy {
        Policy::Before => {
            cfg.core.seek_work = false;
            cfg.core.gossip_budget = 0.0;
            cfg.core.victim_choices = 2;
        }
        Policy::Steal => {}
        Policy::Push => cfg.core.push_to_idle = true,
        Policy::TwoLansRandom | Policy::TwoLansAware => {
            cfg.core.cluster_aware = policy == Policy::TwoLansAware;
            // Halves that each hold every speed.
            cfg.lans = (0..n).map(|i| usize::from(i >= n / 2)).collect();
            cfg.wan_latency = Duration::from_millis(20);
        }
    }
    let mut sim = Sim::new(cfg);
    sim.submit_at(submit, 0, tasks);
    let wall = Instant::now();
    sim.drive(u64::MAX, Duration::ZERO, Duration::from_secs(3600)).expect("the job terminates");
    let wall = wall.elapsed().as_secs_f64();
    let job = sim.jobs.values().next().expect("one job");
    let makespan = (job.finished_at.expect("finished") - submit).as_secs_f64();
    // Mean task cost is 10 ms at speed 1, so the ideal makespan is total / total speed.
    let ideal = 0.010 * tasks as f64 / total_speed;
    let spread = sim.first_run.iter().map(|t| t.map_or(f64::INFINITY, |t| (t.saturating_sub(submit)).as_secs_f64()));
    let per_speed = |speed: f64| {
        let ids: Vec<usize> = (0..n).filter(|&i| nodes[i].speed == speed).collect();
        let done: u64 = ids.iter().map(|i| job.per_node.get(i).copied().unwrap_or(0)).sum();
        done as f64 / (ids.len() as f64 * speed)
    };
    Row {
        policy: policy.name(),
        nodes: n,
        tasks,
        makespan,
        ideal,
        steal_msgs_per_task: sim.steal_messages as f64 / tasks as f64,
        status_per_node_s: sim.status_messages as f64 / n as f64 / makespan,
        spread: spread.fold(0.0, f64::max),
        fairness: per_speed(0.5) / per_speed(2.0),
        backups: sim.node(0).counters().backups,
        wall,
    }
}

/// Status messages each node of an idle mesh of `n` receives per second, once gossip has
/// introduced the nodes (from 10 s to 30 s), with the gossip budget or without.
fn idle_cost(n: usize, budget: bool) -> f64 {
    let mut cfg = SimConfig::new(vec![NodeSpec::new(1, 1.0); n], 1);
    if !budget {
        cfg.core.gossip_budget = 0.0;
    }
    let mut sim = Sim::new(cfg);
    sim.drive(u64::MAX, Duration::from_secs(10), Duration::from_secs(3600)).expect("idle");
    let before = sim.status_messages;
    sim.drive(u64::MAX, Duration::from_secs(20), Duration::from_secs(3600)).expect("idle");
    assert_eq!(sim.messages - sim.steal_messages, sim.status_messages, "an idle mesh sends only gossip");
    (sim.status_messages - before) as f64 / n as f64 / 20.0
}

/// Makespan beyond the ideal when node 2 of 3 dies 5 s into a 30 s job.
fn recovery(crash: bool) -> f64 {
    let nodes = vec![NodeSpec::new(1, 1.0); 3];
    let submit = Duration::from_millis(1500);
    let mut sim = Sim::new(SimConfig::new(nodes, 7));
    sim.submit_at(submit, 0, 3000);
    let at = submit + Duration::from_secs(5);
    if crash {
        sim.crash_at(at, 2)
    } else {
        sim.kill_at(at, 2)
    }
    sim.drive(u64::MAX, Duration::ZERO, Duration::from_secs(3600)).expect("the job terminates");
    let job = sim.jobs.values().next().expect("one job");
    let makespan = (job.finished_at.expect("finished") - submit).as_secs_f64();
    let ideal = 5.0 + (30.0 - 3.0 * 5.0) / 2.0;
    makespan - ideal
}

/// Seeds each size runs with (`--seeds K` for all): one seed's figures move by about a
/// point of efficiency, so each row is a mean.
fn seeds(n: usize) -> u64 {
    arg("--seeds").and_then(|k| k.parse().ok()).unwrap_or(if n >= 1000 { 3 } else { 10 })
}

/// The mean of each figure over runs of one size and policy.
fn mean(runs: &[Row]) -> Row {
    let k = runs.len() as f64;
    let avg = |f: fn(&Row) -> f64| runs.iter().map(f).sum::<f64>() / k;
    Row {
        policy: runs[0].policy,
        nodes: runs[0].nodes,
        tasks: runs[0].tasks,
        makespan: avg(|r| r.makespan),
        ideal: avg(|r| r.ideal),
        steal_msgs_per_task: avg(|r| r.steal_msgs_per_task),
        status_per_node_s: avg(|r| r.status_per_node_s),
        spread: avg(|r| r.spread),
        fairness: avg(|r| r.fairness),
        backups: runs.iter().map(|r| r.backups).sum::<u64>() / runs.len() as u64,
        wall: runs.iter().map(|r| r.wall).sum(),
    }
}

/// The value after `flag` on the command line.
fn arg(flag: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let csv = std::env::args().any(|a| a == "--csv");
    let only_nodes: Option<usize> = arg("--nodes").and_then(|n| n.parse().ok());
    let only_policy = arg("--policy");
    if csv {
        println!(
            "policy,nodes,tasks,makespan_s,ideal_s,efficiency,steal_msgs_per_task,status_per_node_s,spread_s,fairness,backups"
        );
    }
    let policies = [Policy::Before, Policy::Steal, Policy::Push];
    let runs = [10, 100, 1000].into_iter().flat_map(|n| policies.map(|p| (n, p)));
    let two_lans = [(100, Policy::TwoLansRandom), (100, Policy::TwoLansAware)];
    for (n, policy) in runs.chain(two_lans) {
        if only_nodes.is_some_and(|o| o != n) || only_policy.as_ref().is_some_and(|p| p != policy.name()) {
            continue;
        }
        let runs: Vec<Row> = (0..seeds(n)).map(|k| run(n, 42 + k, policy)).collect();
        let r = mean(&runs);
        let eff = r.ideal / r.makespan;
        if csv {
            println!(
                "{},{},{},{:.4},{:.4},{:.4},{:.4},{:.1},{:.4},{:.3},{}",
                r.policy,
                r.nodes,
                r.tasks,
                r.makespan,
                r.ideal,
                eff,
                r.steal_msgs_per_task,
                r.status_per_node_s,
                r.spread,
                r.fairness,
                r.backups
            );
        } else {
            println!(
                "{:<11} {:>5} nodes {:>7} tasks  makespan {:>6.3} s  ideal {:>6.3} s  efficiency {:>5.1}%  \
                 steal msgs/task {:.3}  status msgs/node/s {:>6.0}  spread {:.3} s  fairness {:.2}  backups {:>3}  \
                 (simulated in {:.1} s)",
                r.policy,
                r.nodes,
                r.tasks,
                r.makespan,
                r.ideal,
                100.0 * eff,
                r.steal_msgs_per_task,
                r.status_per_node_s,
                r.spread,
                r.fairness,
                r.backups,
                r.wall,
            );
        }
    }
    if !csv && only_policy.as_ref().is_none_or(|p| p == "idle") {
        for n in [10, 100, 1000].into_iter().filter(|&n| only_nodes.is_none_or(|o| o == n)) {
            println!(
                "idle mesh of {n:>4}: status messages per node per second {:>6.1} with the gossip budget, {:>6.1} without",
                idle_cost(n, true),
                idle_cost(n, false)
            );
        }
    }
    if !csv && only_nodes.is_none_or(|n| n == 3) && only_policy.is_none() {
        for (crash, what) in [(true, "crashed (connections close)"), (false, "unplugged (silent)")] {
            println!(
                "recovery, node 2 of 3 {what:<28} 5 s into 30 s of work: +{:.3} s over the ideal",
                recovery(crash)
            );
        }
    }
}
