//! Who may run what, as the scheduler decides it: a node runs a job's tasks only if it
//! meets the job's needs (and native tasks only with `--allow-run`, or as its own user's
//! job); an owner says why a job waits when no live node can run its work; an idle owner
//! re-runs its undone tasks as backups. More of [`Scheduler`]'s methods; its state is in
//! `mod.rs`.

use super::Scheduler;
use crate::id::{JobId, NodeId};
use crate::needs::{Mismatch, Needs, Unplaceable};
use crate::peers::PeerInfo;
use crate::queue::TaskRange;
use crate::unplaced::Verdict;
use crate::{Action, Payload, Spec};
use std::collections::HashSet;
use std::time::Instant;

impl<S: Spec, R: Payload> Scheduler<S, R> {
    /// Why no live node can run an owned job's queued tasks, if none can: their needs, or
    /// that the nodes that meet them take no tasks now.
    pub fn unplaceable(&self, job: JobId) -> Option<Unplaceable> {
        let needs = self.jobs.get(&job)?.spec.needs();
        let lends = |fit: Result<(), Mismatch>, lending: bool| {
            fit.and_then(|()| lending.then_some(()).ok_or(Mismatch::NotLending))
        };
        let mine = lends(needs.check(&self.cfg.facts, self.runs_as_own(job)), self.lends());
        let peers =
            self.peers.iter().map(|(&p, info)| lends(needs.check(self.peers.facts(p), false), info.status.workers > 0));
        Unplaceable::of(std::iter::once(mine).chain(peers))
    }

    /// Whether this node may run tasks of `job`: it meets the job's needs. A job is its
    /// own only if it was submitted here (it has the ledger), whatever its id says.
    pub(super) fn may_run(&self, job: JobId) -> bool {
        let Some(j) = self.jobs.get(&job) else { return false };
        j.spec.needs().check(&self.cfg.facts, self.runs_as_own(job)).is_ok()
    }

    /// Whether `job` was submitted here and this node runs its own user's programs.
    pub(super) fn runs_as_own(&self, job: JobId) -> bool {
        self.cfg.runs_own && self.jobs.get(&job).is_some_and(|j| j.ledger.is_some())
    }

    /// Whether `node` (this one or a peer) is the only live node that may run `job`'s
    /// tasks and lends its workers now. Then a failed task runs again where it failed
    /// rather than wait for a node that will not come: a laptop without `--allow-run` and
    /// one Pi that allows runs, or lab PCs outside their `--hours`.
    pub(super) fn sole_runner(&self, job: JobId, node: NodeId) -> bool {
        let Some(j) = self.jobs.get(&job) else { return true };
        let needs = j.spec.needs();
        let me_too = node != self.id && self.lends() && self.may_run(job);
        let lends = |info: &PeerInfo| info.status.workers > 0;
        !me_too && !self.peers.iter().any(|(&p, info)| p != node && lends(info) && self.thief_may_run(needs, p))
    }

    /// Whether `thief` may run tasks of a job with these needs, as far as its gossip says.
    pub(super) fn thief_may_run(&self, needs: &Needs, thief: NodeId) -> bool {
        needs.check(self.peers.facts(thief), false).is_ok()
    }

    /// Looks at owned jobs with queued work that no live node can run: says why once they
    /// have waited `place_grace` (and every `wait_notice` after), and halts the ones whose
    /// halt counts failures.
    pub(super) fn check_placement(&mut self, now: Instant) {
        let owned: Vec<JobId> =
            self.jobs.iter().filter(|(_, j)| j.ledger.is_some() && j.queued() > 0).map(|(&id, _)| id).collect();
        self.placement.retain(|job| owned.contains(job));
        for job in owned {
            let why = self.unplaceable(job);
            // A job that only waits for nodes to lend again does not fail its halt rule.
            let fails = self.jobs.get(&job).and_then(|j| j.spec.halt()).is_some_and(|h| h.on_failure())
                && !why.as_ref().is_some_and(Unplaceable::is_temporary);
            match self.placement.observe(job, now, why, fails, &self.cfg) {
                Verdict::Wait => {}
                Verdict::Tell(why) => self.actions.push_back(Action::Waiting { job, why }),
                Verdict::Fail(why) => {
                    self.actions.push_back(Action::Waiting { job, why });
                    self.finish(now, job, true);
                }
            }
        }
    }

    /// Idle with nothing to steal: re-run undone tasks of our own jobs that are not
    /// already running here. Their first result wins; any later one is a duplicate.
    /// Tasks that failed here last are left to the other nodes that may run them: a
    /// backup run here would only fail again and use up the task's retries while another
    /// node still holds it. When no other node may run the job, they wait `avoid_for`.
    pub(super) fn speculate(&mut self, now: Instant) {
        let owned: Vec<JobId> =
            self.jobs.iter().filter(|(id, j)| j.ledger.is_some() && self.may_run(**id)).map(|(&id, _)| id).collect();
        let me = self.id;
        for job in owned {
            let avoid = if self.sole_runner(job, me) { Some(self.cfg.avoid_for) } else { None };
            while let Some(worker) = self.slots.next_idle() {
                let Some(j) = self.jobs.get_mut(&job) else { break };
                let Some(l) = j.ledger.as_mut() else { break };
                let mut skip: HashSet<u64> = self.slots.running(job).collect();
                skip.extend(l.failed_on_within(me, now, avoid));
                let Some(task) = l.next_undone(|t| skip.contains(&t)) else { break };
                self.counters.backups += 1;
                l.note_backup();
                self.start(worker, job, TaskRange::new(task, task + 1), true);
            }
        }
    }
}
