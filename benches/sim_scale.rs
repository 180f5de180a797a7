//! The scheduler at scale, in the deterministic simulator: 10, 100 and 1,000 one-worker
//! nodes of mixed speeds (0.5, 1, 1 and 2) run one job of 200 tasks per node (5–15 ms each
//! at speed 1, so about 2 s of work per node), submitted by node 0 once gossip has
//! introduced the nodes. Latency 0.2–2 ms, no loss.
//!
//! Run: `cargo bench --features sim --bench sim_scale` (prints a table; add `-- --csv`
//! for the rows as CSV, which `benches/plot.py` reads). Each size runs three times: with
//! stealing alone (`steal`, the default), with work pushed to idle peers (`push`), and
//! with pushing and status gossip at most 10 ms after a change instead of 100 ms
//! (`push10`), so the table shows what each buys and what the gossip costs.
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
//! Then recovery: 3 equal one-worker nodes, 3,000 tasks (30 s of work), node 2 dies 5 s
//! in, either crashing (its peers learn at once, as from a closed connection) or going
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
#[derive(Clone, Copy)]
enum Policy {
    Steal,
    Push,
    PushFastGossip,
}

impl Policy {
    fn name(self) -> &'static str {
        match self {
            Self::Steal => "steal",
            Self::Push => "push",
            Self::PushFastGossip => "push10",
        }
    }
}

fn run(n: usize, seed: u64, policy: Policy) -> Row {
    let nodes: Vec<NodeSpec> = (0..n).map(|i| NodeSpec::new(1, SPEEDS[i % SPEEDS.len()])).collect();
    let total_speed: f64 = nodes.iter().map(|n| n.speed).sum();
    let tasks = TASKS_PER_NODE * n as u64;
    let submit = Duration::from_millis(1500);
    let mut cfg = SimConfig::new(nodes.clone(), seed);
    cfg.core.push_to_idle = !matches!(policy, Policy::Steal);
    if matches!(policy, Policy::PushFastGossip) {
        cfg.core.publish_min_gap = Duration::from_millis(10);
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

fn main() {
    let csv = std::env::args().any(|a| a == "--csv");
    if csv {
        println!(
            "policy,nodes,tasks,makespan_s,ideal_s,efficiency,steal_msgs_per_task,status_per_node_s,spread_s,fairness,backups"
        );
    }
    let policies = [Policy::Steal, Policy::Push, Policy::PushFastGossip];
    for (n, policy) in [10, 100, 1000].into_iter().flat_map(|n| policies.map(|p| (n, p))) {
        let r = run(n, 42, policy);
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
                "{:<6} {:>5} nodes {:>7} tasks  makespan {:>6.3} s  ideal {:>6.3} s  efficiency {:>5.1}%  \
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
    if !csv {
        for (crash, what) in [(true, "crashed (connections close)"), (false, "unplugged (silent)")] {
            println!(
                "recovery, node 2 of 3 {what:<28} 5 s into 30 s of work: +{:.3} s over the ideal",
                recovery(crash)
            );
        }
    }
}
