//! The control socket: how `mesh peers` and `mesh submit` reach the node running under the
//! same `--home`.
//!
//! # Spec
//! A Unix stream socket at `<home>/control.sock`, mode 0600 (only the node's user). A
//! client writes one JSON [`Request`] on one line and reads JSON [`Response`] lines: one
//! for `peers`; one `blob` for `put` (a file of the client's, now in the node's store);
//! for `submit`, `progress` lines, a `task` (run job) or `pytask` (Python job) line per
//! finished task, `waiting` notices, and then one `report` (or `error`) line.
//! Requests longer than [`MAX_REQUEST`] bytes or slower than [`IO_TIMEOUT`] are refused;
//! at most [`MAX_CLIENTS`] are served at once (each submit holds one while its job runs),
//! and a client beyond that gets one `error` line saying so, and is closed.
//! A client reads at most [`MAX_REPLY`] bytes of any one reply line. A submitter that
//! closes its connection cancels its job mesh-wide.

use super::client::{Client, NodeStopped};
use super::report::JobReport;
use super::view::{JobEvent, JobProgress, JobUpdate, PeersReply, PyTaskEvent, TaskEvent};
use crate::id::ContentId;
use crate::job::run::Captured;
use crate::job::{JobError, JobSpec, PyOutput};
use crate::store::BlobStore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest request line a node reads.
pub const MAX_REQUEST: u64 = 64 * 1024;
/// The longest reply line a client reads: a job's report with every task's output.
pub const MAX_REPLY: u64 = 64 * 1024 * 1024;
/// Each read or write of a request, and each write of a reply, must finish within this.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Peers,
    /// Run a job with the node as its owner; the node streams `Progress` lines, then one
    /// `Report` line.
    Submit {
        job: JobSpec,
    },
    /// Store the file at this absolute path in the node's blob store (the Python package
    /// puts a job's code and task list this way); the answer is its content id.
    Put {
        path: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Peers(PeersReply),
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
    #[error("the submitter went away; cancelling its job")]
    SubmitterGone,
    #[error("control socket {}: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join("control.sock")
}

/// Binds the control socket. Fails if another node already serves this home.
pub async fn bind(home: &Path) -> Result<UnixListener, ControlError> {
    let path = socket_path(home);
    let io = |source| ControlError::Io { path: path.clone(), source };
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            return Err(ControlError::HomeInUse(home.to_path_buf()));
        }
        std::fs::remove_file(&path).map_err(io)?;
    }
    let listener = UnixListener::bind(&path).map_err(io)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    }
    Ok(listener)
}

/// Serves requests until `shutdown`, then removes the socket file.
pub async fn serve(listener: UnixListener, home: PathBuf, client: Client, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(MAX_CLIENTS));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    // Busy: say so in one line, without waiting on the client, and close.
                    let busy = Response::Error(format!("the node serves at most {MAX_CLIENTS} clients at once; try again"));
                    if let Ok(mut line) = serde_json::to_vec(&busy) {
                        line.push(b'\n');
                        let _ = stream.try_write(&line);
                    }
                    continue;
                };
                let client = client.clone();
                let home = home.clone();
                tracker.spawn(async move {
                    if let Err(e) = handle(stream, client, &home).await {
                        tracing::debug!(%e, "control client failed");
                    }
                    drop(permit);
                });
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    let _ = std::fs::remove_file(socket_path(&home));
}

async fn handle(stream: UnixStream, client: Client, home: &Path) -> anyhow::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = BufReader::new(rd.take(MAX_REQUEST));
    tokio::time::timeout(IO_TIMEOUT, rd.read_line(&mut line)).await??;
    let answer = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Peers) => client.peers().await.map(Response::Peers).map_err(ControlError::from),
        Ok(Request::Submit { job }) => match check(&job, home) {
            Ok(()) => return stream_job(&mut rd, &mut wr, &client, job).await,
            Err(e) => Err(e),
        },
        Ok(Request::Put { path }) => put(home.to_path_buf(), path).await,
        Err(e) => Err(ControlError::BadRequest(e.to_string())),
    };
    let resp = answer.unwrap_or_else(|e| Response::Error(e.to_string()));
    write_line(&mut wr, &resp).await
}

/// A submitted job must be valid, and its blobs must be in this home's store: the
/// submitter puts them there before it asks.
fn check(job: &JobSpec, home: &Path) -> Result<(), ControlError> {
    job.validate()?;
    let blobs = match job {
        JobSpec::Wasm(w) => vec![(w.module, "module"), (w.input, "input")],
        JobSpec::Run(r) => vec![(r.inputs, "task list")],
        JobSpec::Python(p) => vec![(p.code, "code"), (p.inputs, "task list")],
        JobSpec::Primes(_) => Vec::new(),
    };
    let store = BlobStore::new(home);
    match blobs.into_iter().find(|(id, _)| !store.contains(*id)) {
        Some((id, what)) => Err(ControlError::MissingBlob { what, id, home: home.to_path_buf() }),
        None => Ok(()),
    }
}

/// Stores a client's file in this home's store, off the loop.
async fn put(home: PathBuf, path: PathBuf) -> Result<Response, ControlError> {
    if !path.is_absolute() {
        return Err(ControlError::BadRequest(format!("put {}: give an absolute path", path.display())));
    }
    let stored = tokio::task::spawn_blocking(move || BlobStore::new(&home).put_file(&path).map_err(|e| e.to_string()))
        .await
        .map_err(|e| ControlError::Failed(e.to_string()))?;
    stored.map(|(id, _)| Response::Blob(id)).map_err(ControlError::Failed)
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

/// Runs a job for a control client, streaming its progress. A job runs as long as it
/// takes, so only each write is bounded in time. If the client goes away (Ctrl-C on
/// `mesh submit`), the handle is dropped and the node cancels the job mesh-wide.
async fn stream_job(
    rd: &mut (impl AsyncReadExt + Unpin),
    wr: &mut (impl AsyncWriteExt + Unpin),
    client: &Client,
    job: JobSpec,
) -> anyhow::Result<()> {
    let mut h = client.submit(job).await?;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            biased;
            Some(e) = h.events.recv() => {
                tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::from(e))).await??;
            }
            n = rd.read(&mut scratch) => {
                if matches!(n, Ok(0) | Err(_)) {
                    return Err(ControlError::SubmitterGone.into());
                }
            }
            report = &mut h.done => {
                while let Ok(e) = h.events.try_recv() {
                    tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::from(e))).await??;
                }
                let resp = report.map_or_else(|_| Response::Error(ControlError::Dropped.to_string()), Response::Report);
                return tokio::time::timeout(IO_TIMEOUT, write_line(wr, &resp)).await?;
            }
            changed = h.progress.changed() => {
                if changed.is_err() { continue; }
                let JobProgress { done, total } = *h.progress.borrow_and_update();
                tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::Progress { done, total })).await??;
            }
        }
    }
}

/// Hands a job to the node under `home` and waits for its report, telling `on` of its
/// progress and events on the way. `Ok(None)` means no node runs there.
pub async fn submit(
    home: &Path,
    job: &JobSpec,
    mut on: impl FnMut(JobUpdate),
) -> Result<Option<JobReport>, ControlError> {
    let Ok(stream) = UnixStream::connect(socket_path(home)).await else { return Ok(None) };
    let io = |source| ControlError::Io { path: socket_path(home), source };
    let (rd, mut wr) = stream.into_split();
    write_line(&mut wr, &Request::Submit { job: job.clone() })
        .await
        .map_err(|e| ControlError::Io { path: socket_path(home), source: std::io::Error::other(e) })?;
    // The socket is read as fast as the node writes, whatever `on` does with the lines
    // (print them to a paused pager, say): a node gives up on a client that does not read.
    // The lines wait here, no more of them than the job has events.
    let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    // Aborted when dropped: a submitter that stops waiting (Ctrl-C) closes its connection,
    // and the node cancels the job.
    let reader = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
        let mut rd = BufReader::new(rd);
        loop {
            let mut line = String::new();
            let read = read_reply(&mut rd, &mut line).await;
            let end = !matches!(read, Ok(n) if n > 0);
            if tx.send(read.map(|_| line)).is_err() || end {
                return;
            }
        }
    }));
    loop {
        let line = lines.recv().await.ok_or(ControlError::Closed)?.map_err(io)?;
        if line.is_empty() {
            return Err(ControlError::Closed);
        }
        match parse(&line)? {
            Response::Progress { done, total } => on(JobUpdate::Progress(JobProgress { done, total })),
            Response::Task(t) => on(JobUpdate::Event(JobEvent::Task(t))),
            Response::PyTask(t) => on(JobUpdate::Event(JobEvent::Python(Box::new((*t).try_into()?)))),
            Response::Waiting(why) => on(JobUpdate::Event(JobEvent::Waiting(why))),
            Response::Report(r) => {
                drop(reader);
                return Ok(Some(r));
            }
            Response::Error(e) => return Err(ControlError::Refused(e)),
            Response::Peers(_) | Response::Blob(_) => return Err(ControlError::Unexpected),
        }
    }
}

/// Reads one reply line of at most [`MAX_REPLY`] bytes; 0 at the end of the stream.
async fn read_reply(rd: &mut BufReader<tokio::net::unix::OwnedReadHalf>, line: &mut String) -> std::io::Result<usize> {
    (&mut *rd).take(MAX_REPLY).read_line(line).await
}

/// Asks the node under `home` for its view of the mesh. `Ok(None)` means no node runs
/// there.
pub async fn peers(home: &Path) -> Result<Option<PeersReply>, ControlError> {
    let Ok(stream) = UnixStream::connect(socket_path(home)).await else { return Ok(None) };
    let exchange = async {
        let (rd, mut wr) = stream.into_split();
        write_line(&mut wr, &Request::Peers).await.map_err(|e| ControlError::Failed(e.to_string()))?;
        let mut line = String::new();
        read_reply(&mut BufReader::new(rd), &mut line)
            .await
            .map_err(|source| ControlError::Io { path: socket_path(home), source })?;
        match parse(&line)? {
            Response::Peers(p) => Ok(p),
            Response::Error(e) => Err(ControlError::Failed(e)),
            _ => Err(ControlError::Unexpected),
        }
    };
    tokio::time::timeout(IO_TIMEOUT, exchange).await.map_err(|_| ControlError::Timeout)?.map(Some)
}

fn parse(line: &str) -> Result<Response, ControlError> {
    serde_json::from_str(line).map_err(|e| ControlError::Malformed(e.to_string()))
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
        let Request::Submit { job } = submit else { panic!("not a submit") };
        assert_eq!(job.tasks(), 2);
    }
}
