//! A client's side of the requests that follow a job: `submit` (with or without
//! `detach`), `wait` and `cancel` (the spec: [`super`]).

use super::requests::{parse, read_reply};
use super::{ControlError, IO_TIMEOUT, Request, Response, socket_path, write_line};
use crate::job::JobSpec;
use crate::node::api::report::JobReport;
use crate::node::api::view::{JobEvent, JobProgress, JobRef, JobUpdate};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

/// A job followed over the control socket: the node's lines as they come.
#[derive(Debug)]
pub struct Following {
    home: PathBuf,
    wr: OwnedWriteHalf,
    lines: mpsc::UnboundedReceiver<std::io::Result<String>>,
    /// Aborted when dropped, which closes the connection.
    _reader: AbortOnDropHandle<()>,
    /// The job's id, once the node has said it.
    pub job: Option<JobRef>,
}

impl Following {
    /// Sends `request` to the node under `home`; `Ok(None)` means no node runs there.
    async fn open(home: &Path, request: &Request) -> Result<Option<Self>, ControlError> {
        let Ok(stream) = UnixStream::connect(socket_path(home)).await else { return Ok(None) };
        let (rd, mut wr) = stream.into_split();
        write_line(&mut wr, request)
            .await
            .map_err(|e| ControlError::Io { path: socket_path(home), source: std::io::Error::other(e) })?;
        // The socket is read as fast as the node writes, whatever the caller does with the
        // lines (print them to a paused pager, say): a node gives up on a client that does
        // not read. The lines wait here, no more of them than the job has events.
        let (tx, lines) = mpsc::unbounded_channel();
        let reader = AbortOnDropHandle::new(tokio::spawn(async move {
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
        Ok(Some(Self { home: home.to_path_buf(), wr, lines, _reader: reader, job: None }))
    }

    /// The node's next line; an `error` line is [`ControlError::Refused`].
    async fn next(&mut self) -> Result<Response, ControlError> {
        let io = |source| ControlError::Io { path: socket_path(&self.home), source };
        let line = self.lines.recv().await.ok_or(ControlError::Closed)?.map_err(io)?;
        if line.is_empty() {
            return Err(ControlError::Closed);
        }
        match parse(&line)? {
            // Once the job runs, the only error is its end without a report: the node stopped.
            Response::Error(_) if self.job.is_some() => Err(ControlError::Dropped),
            Response::Error(e) => Err(ControlError::Refused(e)),
            Response::Job(id) => {
                self.job = Some(id);
                Ok(Response::Job(id))
            }
            other => Ok(other),
        }
    }

    /// Follows the job to its report, telling `on` of its progress and events. If
    /// `interrupted` resolves first: with `cancel`, the node is told to cancel the job
    /// ([`ControlError::Cancelled`]); without, this client just stops following, and the
    /// job runs on.
    pub async fn follow(
        mut self,
        mut on: impl FnMut(JobUpdate),
        interrupted: impl Future<Output = ()>,
        cancel: bool,
    ) -> Result<JobReport, ControlError> {
        tokio::pin!(interrupted);
        loop {
            let response = tokio::select! {
                r = self.next() => match (r, self.job) {
                    (Err(ControlError::Closed | ControlError::Dropped), Some(job)) => return Err(ControlError::Left(job)),
                    (r, _) => r?,
                },
                () = &mut interrupted => {
                    if cancel && self.job.is_none() {
                        // Ctrl-C before the job's id came: wait a moment for it, so that the
                        // job is cancelled rather than left running, detached.
                        let _ = tokio::time::timeout(IO_TIMEOUT, async {
                            while self.job.is_none() && self.next().await.is_ok() {}
                        })
                        .await;
                    }
                    if cancel && let Some(job) = self.job {
                        let said = write_line(&mut self.wr, &Request::Cancel { job }).await;
                        let _ = self.wr.flush().await;
                        if said.is_ok() {
                            return Err(ControlError::Cancelled(job));
                        }
                    }
                    return Err(ControlError::Interrupted);
                }
            };
            match response {
                Response::Progress { done, total } => on(JobUpdate::Progress(JobProgress { done, total })),
                Response::Task(t) => on(JobUpdate::Event(JobEvent::Task(t))),
                Response::PyTask(t) => on(JobUpdate::Event(JobEvent::Python(Box::new((*t).try_into()?)))),
                Response::Waiting(why) => on(JobUpdate::Event(JobEvent::Waiting(why))),
                Response::Report(r) => return Ok(r),
                Response::Job(_) | Response::Spec(_) => {}
                Response::Peers(_) | Response::Blob(_) | Response::Bytes(_) | Response::Ok(()) | Response::Error(_) => {
                    return Err(ControlError::Unexpected);
                }
            }
        }
    }
}

/// Hands a job to the node under `home` and follows it to its report (see
/// [`Following::follow`]; Ctrl-C, `interrupted`, cancels it). `Ok(None)` means no node
/// runs there. The job's files must be in that node's store: this user's own node shares
/// the store, another node gets them from [`super::send_files`].
pub async fn submit(
    home: &Path,
    job: &JobSpec,
    on: impl FnMut(JobUpdate),
    interrupted: impl Future<Output = ()>,
) -> Result<Option<JobReport>, ControlError> {
    let request = Request::Submit { job: job.clone(), detach: false };
    let Some(following) = Following::open(home, &request).await? else { return Ok(None) };
    following.follow(on, interrupted, true).await.map(Some)
}

/// Hands a job to the node under `home` to run on without anyone waiting; its id.
pub async fn submit_detached(home: &Path, job: &JobSpec) -> Result<JobRef, ControlError> {
    let request = Request::Submit { job: job.clone(), detach: true };
    let mut following = Following::open(home, &request).await?.ok_or_else(|| ControlError::NoNode(home.into()))?;
    match tokio::time::timeout(IO_TIMEOUT * 6, following.next()).await.map_err(|_| ControlError::Timeout)?? {
        Response::Job(id) => Ok(id),
        _ => Err(ControlError::Unexpected),
    }
}

/// Starts following the owned job `job` of the node under `home`: what it is, and its
/// lines from the start.
pub async fn wait(home: &Path, job: JobRef) -> Result<(JobSpec, Following), ControlError> {
    let mut following =
        Following::open(home, &Request::Wait { job }).await?.ok_or_else(|| ControlError::NoNode(home.into()))?;
    loop {
        match tokio::time::timeout(IO_TIMEOUT, following.next()).await.map_err(|_| ControlError::Timeout)?? {
            Response::Job(_) => {}
            Response::Spec(spec) => return Ok((*spec, following)),
            _ => return Err(ControlError::Unexpected),
        }
    }
}

/// Cancels the owned job `job` of the node under `home`.
pub async fn cancel(home: &Path, job: JobRef) -> Result<(), ControlError> {
    let mut following =
        Following::open(home, &Request::Cancel { job }).await?.ok_or_else(|| ControlError::NoNode(home.into()))?;
    match tokio::time::timeout(IO_TIMEOUT * 6, following.next()).await.map_err(|_| ControlError::Timeout)?? {
        Response::Ok(()) => Ok(()),
        _ => Err(ControlError::Unexpected),
    }
}
