//! What users ask of the node ([`Command`]): submit a job, list the mesh, attach to or
//! cancel an owned job. The answers come from the loop's parts; nothing here waits.

use super::{EventLoop, describe};
use crate::node::api::client::Command;
use crate::node::api::view::{JobAccessError, JobRef, PeersReply};
use std::sync::Arc;
use std::time::Instant;

impl EventLoop {
    pub(super) fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Submit { job, how, reply } => {
                let now = Instant::now();
                let spec = Arc::new(job);
                let id = self.sched.submit(now, spec.clone(), spec.tasks(), spec.retries());
                tracing::debug!(job = %id, kind = %spec.kind(), tasks = spec.tasks(), submitter = %how.submitter, "job submitted");
                let entry = Self::job_entry(id.seq, &how, &spec);
                let handle = self.watches.add(id, spec, now, how);
                // The submitter hears the job's id once the job is on disk.
                self.journal_begin(
                    entry,
                    Box::new(move || {
                        let _ = reply.send(handle);
                    }),
                );
                if let Some(board) = &mut self.board {
                    board.submitted();
                }
            }
            Command::Attach { job, uid, reply } => match self.watches.attach(job, uid) {
                Err(JobAccessError::Unknown(_)) if !self.owns(job) => self.attach_remote(job, uid, reply),
                found => {
                    let _ = reply.send(found);
                }
            },
            Command::Cancel { job, uid, reply } => {
                let found = self.watches.running(job, uid);
                if matches!(found, Err(JobAccessError::Unknown(_))) && !self.owns(job) {
                    return self.cancel_remote(job, uid, reply);
                }
                if let Ok(id) = found {
                    tracing::info!(job = %id, uid, "job cancelled");
                    self.cancel(id);
                }
                let _ = reply.send(found.map(|_| ()));
            }
            Command::Peers { reply } => {
                let _ = reply.send(PeersReply { rows: self.rows(Instant::now()) });
            }
        }
    }

    /// Whether jobs named `job` are this node's: their owner prefix is its own.
    fn owns(&self, job: JobRef) -> bool {
        job.owner == JobRef::of(crate::id::JobId { owner: self.me.identity.node_id, seq: 0 }).owner
    }

    /// Cancels an owned job mesh-wide; those waiting get a report of what it did.
    pub(super) fn cancel(&mut self, job: crate::id::JobId) {
        let progress = self.sched.progress(job);
        self.sched.cancel(Instant::now(), job);
        let (me, net) = (&self.me, &self.net);
        self.watches.cancelled(job, progress, &|n| describe(me, net.as_ref(), n));
        self.journal_end(job);
    }
}
