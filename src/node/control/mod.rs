//! The control socket: how `mesh peers` and `mesh submit` reach the node running under the
//! same `--home`, or the mesh service's node.
//!
//! # Spec
//! A Unix stream socket at `<home>/control.sock`, mode 0600 (only the node's user), or
//! 0660 with `mesh join --control-group` (the group too: the mesh service's `mesh`
//! group). A client writes one JSON [`Request`] on one line and reads JSON [`Response`]
//! lines:
//! * `peers`: one `peers` line;
//! * `put`: one `blob` line (a file of the client's, by its path, now in the node's store);
//! * `upload`: the line is followed by exactly `len` raw bytes, at most
//!   [`MAX_BLOB`](crate::store::MAX_BLOB), whose blake3 id is `id` if it is given; one
//!   `blob` line with their id once they are stored. With `"pin": true` the node keeps
//!   the blob from pruning while the client's process (`SO_PEERCRED`) lives, at most
//!   [`MAX_PINNING_CLIENTS`](crate::store::MAX_PINNING_CLIENTS) processes at once;
//! * `unpin`: the client process's pins of `ids` end; one `ok` line;
//! * `read`: one `bytes` line with the blob's length, then exactly that many raw bytes;
//! * `submit`: a `job` line (its id), `progress` lines, a `task` (run job) or `pytask`
//!   (Python job) line per finished task, `waiting` notices, and then one `report` (or
//!   `error`) line. With `"detach": true` the `job` line is all. While it streams, the
//!   client may write one line, `{"cmd":"cancel"}`, to cancel the job (Ctrl-C); a client
//!   that just goes away leaves the job running, detached, unless it is a Python job,
//!   whose results only its script can use: that one is cancelled;
//! * `wait`: a `job` line, a `spec` line, then what `submit` streams, the events so far
//!   first; for a job that ended, its events and its report at once;
//! * `cancel`: one `ok` line once the job is cancelled mesh-wide;
//!
//! # Who may ask what
//! The node asks the kernel who connected (`SO_PEERCRED`), and enforces these rules itself,
//! whatever the client is:
//!
//! | request | the node's own user, or root | another user (the `mesh` group) |
//! |---|---|---|
//! | `peers`, `upload` without `pin` | yes | yes |
//! | `put` (a path, opened with the node's rights; plain files only) | yes | no: `upload` the bytes |
//! | `upload` with `pin`, `unpin`, `read` (the store is the node's user's) | yes | no |
//! | `submit` of primes or wasm (sandboxed) | yes | yes |
//! | `submit` of `mesh run` or Python (programs, run as each `--allow-run` node's user) | yes | no |
//! | `wait`, `cancel` of a job | yes | only their own jobs |
//!
//! The shared key is the boundary for running programs: whoever holds it may run them on
//! every `--allow-run` node. A member of the service's group does not hold the key, so the
//! service's node must not run programs on their behalf.
//!
//! Requests longer than [`MAX_REQUEST`] bytes, not UTF-8, or slower than [`IO_TIMEOUT`] are
//! refused with an `error` line. At most [`MAX_CLIENTS`] are served at once (each submit
//! holds one while its job runs): other users than the node's own hold at most
//! [`MAX_CLIENTS_OTHERS`] of them together and [`MAX_CLIENTS_PER_USER`] each. A client
//! beyond that gets one `error` line saying so, and is closed. A failed accept (out of file
//! descriptors) is retried after a pause that grows to 1 s, never in a busy loop.
//! A client reads at most [`MAX_REPLY`] bytes of any one reply line.

mod follow;
mod requests;
mod server;

pub use follow::{Following, cancel, submit, submit_detached, wait};
pub use requests::{SERVICE_HOME, peers, reach, send_files, upload};
pub(crate) use server::AcceptBackoff;
pub use server::{bind, serve};

use super::api::client::NodeStopped;
use super::api::report::JobReport;
use super::api::view::{JobEvent, JobRef, PeersReply, PyTaskEvent, TaskEvent};
use crate::id::ContentId;
use crate::job::run::Captured;
use crate::job::{JobError, JobKind, JobSpec, PyOutput};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::AsyncWriteExt;

/// The longest request line a node reads.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// The longest reply line a client reads: a job's report with every task's output.
pub const MAX_REPLY: u64 = 64 * 1024 * 1024;
/// Each read or write of a request, and each write of a reply, must finish within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// Of those, clients of other users than the node's own, together (the rest are kept for
/// the node's own user).
pub const MAX_CLIENTS_OTHERS: usize = 48;
/// Of those, clients of any one other user.
pub const MAX_CLIENTS_PER_USER: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Peers,
    /// Run a job with the node as its owner; the node answers a `Job` line with its id,
    /// streams `Progress` lines and events, then one `Report` line. With `detach`, the
    /// `Job` line is all: the job runs on without anyone waiting.
    Submit {
        job: JobSpec,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        detach: bool,
    },
    /// Follow an owned job, running or recently ended: a `Job` line, a `Spec` line, then
    /// what its submitter is told (the events so far first).
    Wait {
        job: JobRef,
    },
    /// End an owned job mesh-wide; one `ok` line.
    Cancel {
        job: JobRef,
    },
    /// Store the file at this absolute path in the node's blob store (the Python package
    /// puts a job's code and task list this way); the answer is its content id.
    Put {
        path: PathBuf,
    },
    /// Store the `len` bytes that follow this line; the answer is their content id once
    /// they are in the store. With `id`, bytes that do not hash to it are refused. With
    /// `pin`, the node keeps the blob from pruning while the client's process lives, or
    /// until it sends `unpin`.
    Upload {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<ContentId>,
        len: u64,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pin: bool,
    },
    /// Let pruning have these blobs again, as far as the client process's pins go.
    Unpin {
        ids: Vec<ContentId>,
    },
    /// Send the blob `id`: a `bytes` line, then exactly that many raw bytes.
    Read {
        id: ContentId,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Peers(PeersReply),
    /// The id of the job submitted or waited for.
    Job(JobRef),
    /// What the job waited for is.
    Spec(Box<JobSpec>),
    Progress {
        done: u64,
        total: u64,
    },
    /// A run job's task, as it finished.
    Task(Box<TaskEvent>),
    /// A Python job's task, as it finished.
    PyTask(Box<PyTaskLine>),
    /// The content id of a file a client put.
    Blob(ContentId),
    /// The length of the blob whose raw bytes follow this line (`read`).
    Bytes(u64),
    /// Done (`unpin`, `cancel`): `{"ok":null}`.
    Ok(()),
    /// Why the job's queued tasks wait.
    Waiting(String),
    Report(JobReport),
    Error(String),
}

impl From<JobEvent> for Response {
    fn from(e: JobEvent) -> Self {
        match e {
            JobEvent::Task(t) => Self::Task(t),
            JobEvent::Python(t) => Self::PyTask(Box::new(PyTaskLine::from(*t))),
            JobEvent::Waiting(why) => Self::Waiting(why),
        }
    }
}

/// What went wrong on either side of the socket. The node sends its side's errors as
/// text in an `error` line; the client turns the rest into these.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("a mesh node already runs with home {0}; stop it or use another --home")]
    HomeInUse(PathBuf),
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error(transparent)]
    InvalidJob(#[from] JobError),
    #[error("the job's {what} ({}) is not in {}", .id.fmt_short(), .home.display())]
    MissingBlob { what: &'static str, id: ContentId, home: PathBuf },
    #[error(transparent)]
    Stopped(#[from] NodeStopped),
    #[error("the job was dropped")]
    Dropped,
    /// The node stopped while job `0` ran (its connection closed or it said the job was
    /// dropped): a node with a journal resumes the job when it starts again.
    #[error(
        "the node stopped before job {0} finished; a node that keeps a journal (mesh join) resumes it when it \
         starts again, and `mesh wait {0}` then follows it"
    )]
    Left(JobRef),
    #[error("the node refused the job: {0}")]
    Refused(String),
    #[error("the node answered: {0}")]
    Failed(String),
    #[error("the node sent a malformed reply: {0}")]
    Malformed(String),
    #[error("the node sent an unexpected reply")]
    Unexpected,
    #[error("the node closed the connection before the job finished")]
    Closed,
    #[error("the node did not answer in time")]
    Timeout,
    #[error("the client went away")]
    SubmitterGone,
    #[error(
        "cancelled job {0} (Ctrl-C). To leave a job running when you go, submit it with --detach; \
         `mesh wait {0}` then shows its results, and a closed terminal no longer ends it either"
    )]
    Cancelled(JobRef),
    #[error("interrupted")]
    Interrupted,
    #[error("no node serves {}: start one with `mesh join` (or use the mesh service) to leave jobs with", .0.display())]
    NoNode(PathBuf),
    #[error("control socket {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "the mesh service runs on this machine, but its control socket {} is only for the `mesh` group: \
         ask its admin to run `sudo adduser $USER mesh` (then log in again), or pass --home to use a node of your own",
        .0.display()
    )]
    NotInGroup(PathBuf),
    #[error(
        "mesh run and Python jobs cannot go through the node under {} yet (it cannot read your files); \
         pass --home to use a node of your own",
        .0.display()
    )]
    NotShared(PathBuf),
    #[error(
        "{kind} jobs run programs as the user of each --allow-run node that takes their tasks, so this node takes \
         them only from its own user, and uid {uid} is not; primes and wasm jobs, which run sandboxed, are open to \
         you here. To run programs, hold the mesh's key and start a node of your own (mesh join --home DIR)"
    )]
    NotOwnUser { kind: JobKind, uid: u32 },
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join("control.sock")
}

/// A Python task as the control socket carries it to the `mesh` package: JSON the package
/// reads with the standard library, its value inline as base64 (`docs/python.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PyTaskLine {
    pub task: u64,
    pub node: String,
    pub attempts: u32,
    pub took_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<PyValueLine>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What a Python task returned or raised: inline (`value`, base64) or in the store (`blob`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyValueLine {
    pub raised: bool,
    pub value: Option<String>,
    pub blob: Option<ContentId>,
    pub len: u64,
    pub output: String,
}

impl From<PyTaskEvent> for PyTaskLine {
    fn from(e: PyTaskEvent) -> Self {
        use base64::Engine;
        let (ok, error) = match e.outcome {
            Ok(o) => {
                let (value, blob) = match &o.value {
                    Captured::Inline(b) => (Some(base64::engine::general_purpose::STANDARD.encode(b)), None),
                    Captured::Blob { id, .. } => (None, Some(*id)),
                };
                (Some(PyValueLine { raised: o.raised, value, blob, len: o.value.len(), output: o.output }), None)
            }
            Err(e) => (None, Some(e)),
        };
        Self { task: e.task, node: e.node, attempts: e.attempts, took_s: e.took.as_secs_f64(), ok, error }
    }
}

impl TryFrom<PyTaskLine> for PyTaskEvent {
    type Error = ControlError;

    fn try_from(l: PyTaskLine) -> Result<Self, ControlError> {
        use base64::Engine;
        let outcome = match (l.ok, l.error) {
            (Some(v), _) => {
                let value = match (v.value, v.blob) {
                    (Some(b64), _) => Captured::Inline(serde_bytes::ByteBuf::from(
                        base64::engine::general_purpose::STANDARD
                            .decode(b64)
                            .map_err(|e| ControlError::Malformed(e.to_string()))?,
                    )),
                    (None, Some(id)) => Captured::Blob { id, len: v.len },
                    (None, None) => return Err(ControlError::Malformed("a pytask with no value".into())),
                };
                Ok(PyOutput { raised: v.raised, value, output: v.output })
            }
            (None, Some(e)) => Err(e),
            (None, None) => return Err(ControlError::Malformed("a pytask with neither ok nor error".into())),
        };
        let took = Duration::try_from_secs_f64(l.took_s).unwrap_or_default();
        Ok(Self { task: l.task, node: l.node, attempts: l.attempts, took, outcome })
    }
}

async fn write_line(wr: &mut (impl AsyncWriteExt + Unpin), msg: &impl Serialize) -> anyhow::Result<()> {
    let mut out = serde_json::to_vec(msg)?;
    out.push(b'\n');
    wr.write_all(&out).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The control socket's lines, fixed: `mesh submit` of one release may talk to `mesh
    /// join` of another on the same machine.
    #[test]
    fn golden_lines() {
        let lines = [
            (serde_json::to_string(&Request::Peers).unwrap(), r#"{"cmd":"peers"}"#),
            (
                serde_json::to_string(&Response::Progress { done: 1, total: 2 }).unwrap(),
                r#"{"progress":{"done":1,"total":2}}"#,
            ),
            (serde_json::to_string(&Response::Error("no".into())).unwrap(), r#"{"error":"no"}"#),
        ];
        for (got, want) in lines {
            assert_eq!(got, want);
        }
        let report = JobReport {
            results: crate::node::JobResults::Primes(vec![crate::node::PrimesResult { n: 10, sum: 17 }]),
            elapsed: Duration::from_millis(1500),
            tasks: 1,
            failed: vec![crate::node::FailedTask { task: 0, error: "x".into() }],
            failed_unlisted: 0,
            nodes: vec![crate::node::NodeStats {
                name: "a".into(),
                peer_id: "p".into(),
                workers: 1,
                tasks: 1,
                task_time: Duration::from_millis(2),
                steals: 0,
            }],
            workers: 1,
            duplicates: 0,
            backups: 0,
            retried: 0,
            halted: false,
            cancelled: false,
        };
        let want = concat!(
            r#"{"report":{"results":{"Primes":[[10,17]]},"elapsed":{"secs":1,"nanos":500000000},"tasks":1,"#,
            r#""failed":[[0,"x"]],"nodes":[{"name":"a","peer_id":"p","workers":1,"tasks":1,"#,
            r#""task_time":{"secs":0,"nanos":2000000},"steals":0}],"workers":1,"duplicates":0,"backups":0,"retried":0,"halted":false}}"#
        );
        assert_eq!(serde_json::to_string(&Response::Report(report.clone())).unwrap(), want);
        assert_eq!(serde_json::from_str::<Response>(want).unwrap(), Response::Report(report));
        let submit: Request = serde_json::from_str(
            r#"{"cmd":"submit","job":{"Primes":{"target":{"Below":10},"algo":"sieve","span":5}}}"#,
        )
        .unwrap();
        let Request::Submit { job, detach: false } = submit else { panic!("not a plain submit") };
        assert_eq!(job.tasks(), 2);
        let wait: Request = serde_json::from_str(r#"{"cmd":"wait","job":"3f2a9c1e-7"}"#).unwrap();
        assert_eq!(wait, Request::Wait { job: JobRef { owner: 0x3f2a_9c1e, seq: 7 } });
        let bad = serde_json::from_str::<Request>(r#"{"cmd":"cancel","job":"3f2a9c1e"}"#).unwrap_err();
        assert!(bad.to_string().contains("is not a job id"), "{bad}");
        let id = serde_json::to_string(&Response::Job(JobRef { owner: 0xab, seq: 3 })).unwrap();
        assert_eq!(id, r#"{"job":"000000ab-3"}"#);
    }
}
