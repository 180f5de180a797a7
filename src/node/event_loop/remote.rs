//! Jobs of other owners: `mesh wait` and `mesh cancel` on a node that does not own the
//! job reach its owner over `protocol::job`, and this node answers such asks about its own.
//!
//! A `mesh wait` here gets a handle like a local one, fed by a *follower*: a task that
//! asks the owner for the job's spec first (and fetches the blobs the spec names, which the
//! printer reads: a run's task list, a wasm job's input), then for its events from where
//! it left off every [`POLL`] (at once while more are left), fetching the blobs each
//! event refers to before passing it on, and ends with the report. An owner that restarts
//! (a new `incarnation`) is asked from the start again, and tasks already passed on are
//! skipped. An owner that does not answer is asked again every [`RETRY`]; after
//! [`OWNER_PATIENCE`] of silence the follower gives up and the waiter sees the job
//! dropped. A waiter that goes away ends its follower at the next answer.
//!
//! Bounded: at most [`MAX_ASKS`](super::asks::MAX_ASKS) asks of this node in flight (more fail at once), one
//! follower per `mesh wait`, each with one ask in flight.

use super::EventLoop;
use super::asks::MAX_ASKS;
use super::transfers::{Internal, Plumbing};
use crate::exec::fetch::{FetchError, PeerAnswer};
use crate::id::{ContentId, JobId, NodeId};
use crate::job::JobSpec;
use crate::node::api::client::{JobHandle, handle_channels};
use crate::node::api::view::{JobAccessError, JobEvent, JobProgress, JobRef, Submitter};
use crate::node::net::behaviour::Answer;
use crate::protocol::job::{Ask, Following, JobAnswer, JobName, JobRequest, POLL};
use crate::store::MAX_FILE;
use libp2p::PeerId;
use libp2p::request_response::ResponseChannel;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// How often a follower asks an owner that did not answer.
pub(crate) const RETRY: Duration = Duration::from_secs(2);
/// How long a follower waits for an owner that does not answer (a restart takes seconds).
pub(crate) const OWNER_PATIENCE: Duration = Duration::from_secs(300);

type AttachReply = oneshot::Sender<Result<(JobHandle, Arc<JobSpec>), JobAccessError>>;

impl EventLoop {
    /// Sends an ask of a follower or a cancel, if there is room.
    pub(super) fn ask(&mut self, peer: PeerId, req: JobRequest, reply: super::asks::AnswerReply) {
        let Some(net) = &mut self.net else {
            let _ = reply.send(Err(PeerAnswer::NoNetwork));
            return;
        };
        if self.asks.pending.len() >= MAX_ASKS {
            let _ = reply.send(Err(PeerAnswer::Transfer(format!("{MAX_ASKS} asks of owners are in flight"))));
            return;
        }
        let id = net.ask_job(peer, req);
        self.asks.pending.insert(id, reply);
    }

    /// Another node asks about a job of ours.
    pub(super) fn answer_ask(&mut self, peer: PeerId, req: JobRequest, channel: ResponseChannel<Answer>) {
        let r = JobRef { owner: req.job.owner, seq: req.job.seq };
        let refused = |e: JobAccessError| match e {
            JobAccessError::Unknown(_) => JobAnswer::Unknown,
            e => JobAnswer::Refused(e.to_string()),
        };
        let answer = match req.ask {
            Ask::Follow { from, spec } => match self.watches.peek(r, &req.user, from, spec) {
                Ok(p) => JobAnswer::Following(Box::new(Following {
                    incarnation: self.asks.incarnation,
                    done: p.done,
                    total: p.total,
                    spec: p.spec.map(|s| (*s).clone()),
                    events: p.events,
                    next: p.next,
                    more: p.more,
                    report: p.report,
                })),
                Err(e) => refused(e),
            },
            Ask::Cancel => match self.watches.running_for(r, &req.user) {
                Ok(id) => {
                    tracing::info!(job = %id, user = %req.user, %peer, "job cancelled from another node");
                    self.cancel(id);
                    JobAnswer::Cancelled
                }
                Err(e) => refused(e),
            },
        };
        if let Some(net) = &mut self.net {
            net.answer_job(channel, answer);
        }
    }

    /// The owner of `r` among the members, and whom this node's user `uid` is to it.
    fn owner_of(&self, r: JobRef, uid: u32) -> Result<Asker, JobAccessError> {
        let peer = self.net.as_ref().and_then(|n| n.member_by_prefix(r.owner)).ok_or(JobAccessError::NoOwner(r))?;
        let user = Submitter::of_uid(uid, &self.me.identity.name).user;
        let owner = super::routes::node_of(&peer);
        Ok(Asker { plumbing: self.transfers.plumbing(), peer, owner, job: r, user })
    }

    /// `mesh wait` for a job another node owns: a follower feeds the handle.
    pub(super) fn attach_remote(&mut self, r: JobRef, uid: u32, reply: AttachReply) {
        match self.owner_of(r, uid) {
            Ok(asker) => self.transfers.spawn(follow(asker, reply)),
            Err(e) => {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// `mesh cancel` for a job another node owns.
    pub(super) fn cancel_remote(&mut self, r: JobRef, uid: u32, reply: oneshot::Sender<Result<(), JobAccessError>>) {
        let asker = match self.owner_of(r, uid) {
            Ok(a) => a,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        self.transfers.spawn(async move {
            let said = match asker.ask(Ask::Cancel).await {
                Ok(JobAnswer::Cancelled) => Ok(()),
                other => Err(asker.refusal(other)),
            };
            let _ = reply.send(said);
        });
    }
}

/// One user's asks about one job of another owner.
#[derive(Debug)]
struct Asker {
    plumbing: Plumbing,
    peer: PeerId,
    owner: NodeId,
    job: JobRef,
    user: String,
}

impl Asker {
    async fn ask(&self, ask: Ask) -> Result<Answer, PeerAnswer> {
        let (reply, rx) = oneshot::channel();
        let job = JobName { owner: self.job.owner, seq: self.job.seq };
        let req = JobRequest { job, user: self.user.clone(), ask };
        let stopped = || PeerAnswer::Transfer("this node stopped".into());
        self.plumbing.0.send(Internal::Ask { peer: self.peer, req, reply }).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Fetches a blob the job's printer will read, from the owner first.
    async fn fetch(&self, id: ContentId) -> Result<(), FetchError> {
        let (reply, rx) = oneshot::channel();
        let fetch = Internal::Fetch { id, hint: self.owner, max: MAX_FILE, reply };
        self.plumbing.0.send(fetch).await.map_err(|_| FetchError::NodeStopped)?;
        rx.await.map_err(|_| FetchError::NodeStopped)?
    }

    /// Why an ask did not get the answer it wanted, for the user.
    fn refusal(&self, answer: Result<Answer, PeerAnswer>) -> JobAccessError {
        let why = match answer {
            Ok(JobAnswer::Unknown) => return JobAccessError::Unknown(self.job),
            Ok(JobAnswer::Refused(why)) => why,
            Ok(_) => "its owner answered something else".into(),
            Err(e) => format!("its owner did not answer: {e}"),
        };
        JobAccessError::Owner { job: self.job, why }
    }
}

/// Follows job `asker.job` at its owner for one `mesh wait`.
async fn follow(asker: Asker, reply: AttachReply) {
    let first = match asker.ask(Ask::Follow { from: 0, spec: true }).await {
        Ok(JobAnswer::Following(f)) => f,
        other => {
            let _ = reply.send(Err(asker.refusal(other)));
            return;
        }
    };
    let Some(spec) = first.spec.clone() else {
        let _ = reply.send(Err(asker.refusal(Ok(JobAnswer::Cancelled))));
        return;
    };
    for blob in spec.named_blobs() {
        if let Err(why) = asker.fetch(blob.id).await {
            let why = format!("its {}: {why}", blob.what);
            let _ = reply.send(Err(JobAccessError::Owner { job: asker.job, why }));
            return;
        }
    }
    let id = JobId { owner: asker.owner, seq: asker.job.seq };
    let (handle, progress, events, done) = handle_channels(id, JobProgress { done: first.done, total: first.total });
    if reply.send(Ok((handle, Arc::new(spec)))).is_err() {
        return;
    }
    let (mut answer, mut incarnation, mut seen) = (first, None, HashSet::new());
    loop {
        if incarnation.is_some_and(|i| i != answer.incarnation) {
            // The owner restarted: from the start again, skipping what was passed on.
            answer.events.clear();
            answer.next = 0;
            answer.more = true;
            answer.report = None;
        }
        incarnation = Some(answer.incarnation);
        for ev in std::mem::take(&mut answer.events) {
            if ev.task().is_some_and(|t| !seen.insert(t)) {
                continue;
            }
            for blob in ev.blobs() {
                // A blob that cannot be had shows as missing when the result is printed.
                let _ = asker.fetch(blob).await;
            }
            if events.send(ev).is_err() {
                return;
            }
        }
        let _ = progress.send(JobProgress { done: answer.done, total: answer.total });
        if let Some(report) = answer.report.take() {
            let _ = done.send(report);
            return;
        }
        if done.is_closed() {
            return;
        }
        if !answer.more {
            tokio::time::sleep(POLL).await;
        }
        let Some(next) = ask_until_answered(&asker, answer.next, &events).await else { return };
        answer = next;
    }
}

/// The owner's next answer from event `from` on, asked again every [`RETRY`] while it does
/// not answer; `None` once it lost the job or [`OWNER_PATIENCE`] ran out.
async fn ask_until_answered(
    asker: &Asker,
    from: u32,
    events: &tokio::sync::mpsc::UnboundedSender<JobEvent>,
) -> Option<Box<Following<JobSpec, JobEvent, crate::node::api::report::JobReport>>> {
    let started = tokio::time::Instant::now();
    let mut told = false;
    loop {
        match asker.ask(Ask::Follow { from, spec: false }).await {
            Ok(JobAnswer::Following(f)) => return Some(f),
            Ok(other) => {
                let why = asker.refusal(Ok(other));
                let _ = events.send(JobEvent::Waiting(format!("the owner no longer has the job: {why}")));
                return None;
            }
            Err(e) => {
                if !told {
                    told = true;
                    let note = format!("its owner does not answer ({e}); asking again for up to {OWNER_PATIENCE:?}");
                    let _ = events.send(JobEvent::Waiting(note));
                }
                if started.elapsed() >= OWNER_PATIENCE {
                    return None;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}
