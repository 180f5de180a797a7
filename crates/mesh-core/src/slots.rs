//! A node's worker slots: the run of tasks each worker is on, and which workers are idle.
//! A worker gets a run only when it is idle, and reports its tasks in order; after the
//! run's last task it is idle again.

use super::queue::TaskRange;
use crate::id::JobId;

/// The run a worker is on: tasks `next..end` of `job` are still to report.
#[derive(Debug, Clone, Copy)]
struct Running {
    job: JobId,
    next: u64,
    end: u64,
}

#[derive(Debug)]
pub(crate) struct Slots {
    runs: Vec<Option<Running>>,
    /// Idle workers; the last is handed work first.
    idle: Vec<usize>,
}

impl Slots {
    pub(crate) fn new(workers: usize) -> Self {
        Self { runs: vec![None; workers], idle: (0..workers).rev().collect() }
    }

    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    pub(crate) fn busy(&self) -> usize {
        self.runs.len() - self.idle.len()
    }

    pub(crate) fn all_idle(&self) -> bool {
        self.idle.len() == self.runs.len()
    }

    /// The idle worker that gets work next, if any; it stays idle until [`Slots::start`].
    pub(crate) fn next_idle(&self) -> Option<usize> {
        self.idle.last().copied()
    }

    /// Puts the idle `worker` on `tasks` of `job`.
    pub(crate) fn start(&mut self, worker: usize, job: JobId, tasks: TaskRange) {
        if self.idle.last() == Some(&worker) {
            self.idle.pop();
        } else {
            self.idle.retain(|&w| w != worker);
        }
        self.runs[worker] = Some(Running { job, next: tasks.start, end: tasks.end });
    }

    /// `worker` finished a task: which task of which job it was. `None` if the worker is
    /// not on a run (a driver bug, ignored rather than trusted).
    pub(crate) fn task_done(&mut self, worker: usize) -> Option<(JobId, u64)> {
        let slot = self.runs.get_mut(worker)?;
        let run = slot.as_mut()?;
        let done = (run.job, run.next);
        run.next += 1;
        if run.next >= run.end {
            *slot = None;
            self.idle.push(worker);
        }
        Some(done)
    }

    /// Tasks of `job` running or still to run on this node's workers.
    pub(crate) fn running(&self, job: JobId) -> impl Iterator<Item = u64> + '_ {
        self.runs.iter().flatten().filter(move |r| r.job == job).flat_map(|r| r.next..r.end)
    }

    /// Jobs some worker is on.
    pub(crate) fn jobs(&self) -> Vec<JobId> {
        self.runs.iter().flatten().map(|r| r.job).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::NodeId;

    #[test]
    fn a_worker_reports_its_run_in_order_then_is_idle() {
        let job = JobId { owner: NodeId(1), seq: 1 };
        let mut s = Slots::new(2);
        assert_eq!((s.next_idle(), s.busy(), s.all_idle()), (Some(0), 0, true));
        s.start(0, job, TaskRange::new(5, 7));
        assert_eq!((s.next_idle(), s.busy()), (Some(1), 1));
        assert_eq!(s.running(job).collect::<Vec<_>>(), [5, 6]);
        assert_eq!(s.task_done(0), Some((job, 5)));
        assert_eq!(s.running(job).collect::<Vec<_>>(), [6]);
        assert_eq!(s.task_done(0), Some((job, 6)));
        assert_eq!(s.task_done(0), None, "idle again: nothing to report");
        assert_eq!(s.task_done(9), None, "no such worker");
        assert!(s.all_idle() && s.jobs().is_empty());
        s.start(1, job, TaskRange::new(0, 1));
        assert_eq!((s.next_idle(), s.jobs()), (Some(0), vec![job]));
    }
}
