//! How a simulated worker runs the tasks the core hands it: each takes a seeded time at its
//! node's speed, and fails on a `broken` or `faulty` node, when it is a poison task, or when
//! its job was dropped on the node (as a real executor stops a dropped job's tasks).

use super::{Event, Sim, output, unit};
use crate::id::JobId;
use crate::{Blame, TaskRange};

impl Sim {
    /// Whether a task fails on every node.
    pub fn is_poison(&self, task: u64) -> bool {
        self.cfg.poison_every > 0 && task.is_multiple_of(self.cfg.poison_every)
    }

    pub(super) fn run(&mut self, i: usize, worker: usize, job: JobId, tasks: TaskRange) {
        let spec = self.nodes[i].sched.spec(job).expect("running job has a spec");
        let own = job.owner == self.id(i) && self.cfg.core.runs_own;
        if let Err(why) = spec.needs.check(&self.cfg.nodes[i].facts, own) {
            self.violations.push(format!("node {i} ran tasks {tasks:?} of {job:?}: {why:?}"));
        }
        let salt = spec.salt;
        let (lo, hi) = self.cfg.task_cost;
        self.runs += 1;
        if !self.nodes[i].lending {
            self.runs_not_lending[i] += 1;
        }
        let at = self.now - self.t0;
        self.first_run[i].get_or_insert(at);
        // The worker runs the tasks one after another and reports each when done.
        let mut done = self.now;
        for task in tasks.start..tasks.end {
            let cost = lo + (hi - lo).mul_f64(unit(salt ^ task.rotate_left(17)));
            let took = cost.div_f64(self.nodes[i].speed);
            self.busy += took;
            done += took;
            let faulty = self.cfg.faulty.contains(&i);
            let value = if self.nodes[i].stopped.contains(&job) {
                Err(format!("task {task}: its job was cancelled on node {i}"))
            } else if faulty || self.cfg.broken.contains(&i) || self.is_poison(task) {
                Err(format!("task {task} failed on node {i}"))
            } else {
                Ok(output(salt, task))
            };
            let blame = if faulty { Blame::Node } else { Blame::Task };
            self.push(done, Event::Done { node: i, worker, task, value, blame, took });
        }
        self.last_done[i] = self.last_done[i].max(done - self.t0);
    }
}
