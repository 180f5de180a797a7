//! The scheduler core alone: how many trivial tasks one core can dispatch per second.
//!
//! A single node with 4 worker slots runs a 1,000,000-task job whose tasks finish the
//! moment they start, so everything measured is scheduling: picking the next task,
//! recording its result in the owner's ledger and detecting the end of the job.
//!
//! Run: `cargo bench --bench scheduler`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mesh::core::{Action, Config, Scheduler, TaskReport};
use mesh::id::NodeId;
use std::time::{Duration, Instant};

const TASKS: u64 = 1_000_000;

fn run_job(now: Instant) -> u64 {
    let cfg = Config { workers: 4, ..Config::default() };
    let mut s: Scheduler<u64, u64> = Scheduler::new(NodeId(1), cfg, 7, now);
    s.submit(now, 0, TASKS, 0);
    let mut accepted = 0;
    let mut runs = Vec::with_capacity(4);
    loop {
        while let Some(a) = s.poll_action() {
            match a {
                Action::Start { worker, tasks, .. } => runs.push((worker, tasks)),
                Action::Accepted { .. } => accepted += 1,
                Action::JobFinished { .. } => return accepted,
                _ => {}
            }
        }
        for (worker, tasks) in runs.drain(..) {
            for task in tasks.start..tasks.end {
                let report = TaskReport { task, outcome: Ok(task), took: Duration::ZERO, blame: Default::default() };
                s.handle_task_done(now, worker, report);
            }
        }
    }
}

fn dispatch(c: &mut Criterion) {
    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(TASKS));
    g.sample_size(10);
    let now = Instant::now();
    g.bench_function("trivial_tasks_1e6_one_node", |b| b.iter(|| assert_eq!(run_job(now), TASKS)));
    g.finish();
}

criterion_group!(benches, dispatch);
criterion_main!(benches);
