//! The scheduler at scale, in the deterministic simulator: 10, 100 and 1,000 one-worker
//! nodes of mixed speeds run one job of 50 tasks per node (5–15 ms each at speed 1),
//! submitted by node 0 once gossip has introduced the nodes. Latency 0.2–2 ms, no loss.
//!
//! Run: `cargo bench --features sim --bench sim_scale`
//!
//! Reported per size:
//! * efficiency: ideal makespan (total work / total speed) over the real one;
//! * steal messages (requests and grants) per task;
//! * spread: time from submit until every node has started a task;
//! * backups: speculative re-runs at the end of the job.

use mesh::sim::{NodeSpec, Sim, SimConfig};
use std::time::{Duration, Instant};

fn run(n: usize, seed: u64) {
    let speeds = [0.5, 1.0, 1.0, 2.0];
    let nodes: Vec<NodeSpec> = (0..n).map(|i| NodeSpec { workers: 1, speed: speeds[i % speeds.len()] }).collect();
    let total_speed: f64 = nodes.iter().map(|n| n.speed).sum();
    let tasks = 50 * n as u64;
    let submit = Duration::from_millis(1500);
    let mut sim = Sim::new(SimConfig::new(nodes, seed));
    sim.submit_at(submit, 0, tasks);
    let wall = Instant::now();
    sim.drive(2_000_000_000, Duration::ZERO, Duration::from_secs(3600)).expect("the job terminates");
    let wall = wall.elapsed();
    let job = sim.jobs.values().next().expect("one job");
    let makespan = job.finished_at.expect("finished") - submit;
    // Mean task cost is 10 ms at speed 1, so the ideal makespan is total / total speed.
    let ideal = Duration::from_millis(10).mul_f64(tasks as f64 / total_speed);
    let spread = sim.first_run.iter().map(|t| t.map_or(Duration::MAX, |t| t.saturating_sub(submit))).max().unwrap();
    let backups = sim.node(0).counters().backups;
    println!(
        "{n:>5} nodes  {tasks:>6} tasks  makespan {:>7.3} s  ideal {:>7.3} s  efficiency {:>5.1}%  \
         steal msgs/task {:.3}  spread {:>6.3} s  backups {backups:>3}  (simulated in {:.1} s)",
        makespan.as_secs_f64(),
        ideal.as_secs_f64(),
        100.0 * ideal.as_secs_f64() / makespan.as_secs_f64(),
        sim.steal_messages as f64 / tasks as f64,
        spread.as_secs_f64(),
        wall.as_secs_f64(),
    );
}

fn main() {
    for n in [10, 100, 1000] {
        run(n, 42);
    }
}
