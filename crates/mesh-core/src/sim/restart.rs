//! Owners that crash and restart with their journal, as a node does after kill -9, a
//! power cut or `systemctl restart mesh` (issue 26).
//!
//! With [`SimConfig::journal`] set, each node journals its owned jobs as the node layer
//! does: a job's spec when it is submitted, its accepted results in batches (one commit
//! per interval), and its end at once. A crash loses what was not committed. A node
//! restarted with [`Sim::restart_at`] is a new `Scheduler` with the same identity (a new
//! seed, nothing of the old one's memory) that resumes every unfinished journalled job
//! with `Scheduler::resume_job`. The job's outcome is reset to what the journal kept, so
//! the usual checks (every task accepted once, the exact sum) hold the journal to account.

use super::journal::{Journal, Kept};
use super::{Event, JobOutcome, Sim};
use crate::id::JobId;
use crate::{DoneTask, Scheduler, TaskReport};
use std::collections::BTreeMap;
use std::time::Duration;

impl Sim {
    /// Kills `node` silently at `at`: its peers notice only by its silence (unplugged).
    pub fn kill_at(&mut self, at: Duration, node: usize) {
        self.push(self.t0 + at, Event::Kill { node, crash: false });
    }

    /// Kills a node whose peers learn of it at once, as when its process dies and the
    /// kernel closes its connections.
    pub fn crash_at(&mut self, at: Duration, node: usize) {
        self.push(self.t0 + at, Event::Kill { node, crash: true });
    }

    /// Starts `node` again at `at` (it should have crashed or been killed before): a new
    /// scheduler with the same identity resumes the jobs its journal kept.
    pub fn restart_at(&mut self, at: Duration, node: usize) {
        self.journal.pending += 1;
        self.push(self.t0 + at, Event::Restart { node });
    }

    /// The owner journals a new job's spec at once (the node replies with the job's id
    /// only once it is on disk).
    pub(super) fn journal_job(&mut self, node: usize, job: JobId, spec: &super::SimSpec, tasks: u64) {
        if self.cfg.journal.is_some() {
            let j = Journal {
                spec: spec.clone(),
                tasks,
                committed: BTreeMap::new(),
                pending: BTreeMap::new(),
                finished: false,
            };
            self.journal.nodes[node].insert(job, j);
        }
    }

    /// An accepted result waits for the next commit.
    pub(super) fn journal_result(&mut self, node: usize, job: JobId, from: usize, report: &TaskReport<u64>) {
        let Some(every) = self.cfg.journal else { return };
        if let Some(j) = self.journal.nodes[node].get_mut(&job) {
            j.pending.insert(report.task, (from, report.outcome.clone()));
            if !std::mem::replace(&mut self.journal.commit_due[node], true) {
                self.push(self.now + every, Event::Commit { node });
            }
        }
    }

    /// A job's end is committed at once, with its results.
    pub(super) fn journal_end(&mut self, node: usize, job: JobId) {
        if let Some(j) = self.journal.nodes[node].get_mut(&job) {
            let pending = std::mem::take(&mut j.pending);
            j.committed.extend(pending);
            j.finished = true;
        }
    }

    /// Each job resumed so far, with the tasks its journal had kept.
    pub fn resumed(&self) -> &[(JobId, u64)] {
        &self.journal.resumed
    }

    pub(super) fn on_commit(&mut self, node: usize) {
        self.journal.commit_due[node] = false;
        if self.nodes[node].alive {
            for j in self.journal.nodes[node].values_mut() {
                let pending = std::mem::take(&mut j.pending);
                j.committed.extend(pending);
            }
        }
    }

    /// `node` died: what it had not committed is lost, and so are its workers' runs and
    /// the acknowledgements owed to it.
    pub(super) fn journal_crash(&mut self, node: usize) {
        for j in self.journal.nodes[node].values_mut() {
            j.pending.clear();
        }
        self.events.retain(|_, ev| match ev {
            Event::Done { node: n, .. } | Event::Undelivered { node: n, .. } | Event::Wake { node: n } => *n != node,
            _ => true,
        });
        self.nodes[node].wake_at = None;
    }

    pub(super) fn on_restart(&mut self, node: usize) {
        self.journal.pending -= 1;
        if self.nodes[node].alive {
            return;
        }
        self.journal.restarts += 1;
        let id = self.id(node);
        let core = crate::Config {
            workers: self.cfg.nodes[node].workers,
            facts: self.cfg.nodes[node].facts.clone(),
            ..self.cfg.core.clone()
        };
        let seed = self.cfg.seed ^ self.journal.restarts.rotate_left(32) ^ node as u64;
        let mut sched = Scheduler::new(id, core, seed, self.now);
        for j in (0..self.nodes.len()).filter(|&j| j != node) {
            sched.handle_facts(self.now, self.id(j), self.cfg.nodes[j].facts.clone());
        }
        let lending = self.nodes[node].lending;
        sched.set_lending(self.now, lending);
        self.nodes[node].sched = sched;
        self.nodes[node].stopped.clear();
        self.nodes[node].alive = true;
        let unfinished: Vec<JobId> =
            self.journal.nodes[node].iter().filter(|(_, j)| !j.finished).map(|(id, _)| *id).collect();
        for job in unfinished {
            let j = &self.journal.nodes[node][&job];
            let (spec, tasks) = (j.spec.clone(), j.tasks);
            let done: Vec<DoneTask> =
                j.committed.iter().map(|(&task, (_, r))| DoneTask { task, ok: r.is_ok() }).collect();
            // The outcome so far is what the journal kept; the rest is to come.
            let o = self.jobs.get_mut(&job).expect("a journalled job was submitted");
            reset(o, &j.committed);
            self.journal.resumed.push((job, done.len() as u64));
            let now = self.now;
            self.nodes[node].sched.resume_job(now, job, spec, tasks, self.cfg.retries, done).expect("resumes");
        }
        self.after_input(node);
    }
}

fn reset(o: &mut JobOutcome, committed: &BTreeMap<u64, Kept>) {
    o.accepted.iter_mut().for_each(|a| *a = 0);
    o.sum = 0;
    o.failed.clear();
    o.per_node.clear();
    o.finished_at = None;
    for (&task, (from, r)) in committed {
        o.accepted[task as usize] = 1;
        *o.per_node.entry(*from).or_default() += 1;
        match r {
            Ok(v) => o.sum = o.sum.wrapping_add(*v),
            Err(_) => o.failed.push(task),
        }
    }
}
