//! The control socket: how `mesh peers` (and later `mesh submit`) reach the node running
//! under the same `--home`.
//!
//! # Spec
//! A Unix stream socket at `<home>/control.sock`, mode 0600 (only the node's user). A
//! client writes one JSON [`Request`] on one line and reads one JSON [`Response`] line.
//! Requests longer than [`MAX_REQUEST`] bytes or slower than [`IO_TIMEOUT`] are refused;
//! at most [`MAX_CLIENTS`] are served at once.

use super::client::{Client, PeersReply};
use super::report::JobReport;
use crate::job::JobSpec;
use crate::store::BlobStore;
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub const MAX_REQUEST: u64 = 64 * 1024;
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
pub const MAX_CLIENTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Peers,
    /// Run a job with the node as its owner; the node streams `Progress` lines, then one
    /// `Report` line.
    Submit {
        job: JobSpec,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Peers(PeersReply),
    Progress { done: u64, total: u64 },
    Report(JobReport),
    Error(String),
}

pub fn socket_path(home: &Path) -> PathBuf {
    home.join("control.sock")
}

/// Binds the control socket. Fails if another node already serves this home.
pub async fn bind(home: &Path) -> Result<UnixListener> {
    let path = socket_path(home);
    if path.exists() {
        if UnixStream::connect(&path).await.is_ok() {
            bail!("a mesh node already runs with home {}; stop it or use another --home", home.display());
        }
        std::fs::remove_file(&path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let listener = UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
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
                let Ok(permit) = slots.clone().try_acquire_owned() else { continue }; // busy: drop
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

async fn handle(stream: UnixStream, client: Client, home: &Path) -> Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = String::new();
    let mut rd = BufReader::new(rd.take(MAX_REQUEST));
    tokio::time::timeout(IO_TIMEOUT, rd.read_line(&mut line)).await??;
    let resp = match serde_json::from_str::<Request>(&line) {
        Ok(Request::Peers) => match client.peers().await {
            Ok(p) => Response::Peers(p),
            Err(e) => Response::Error(e.to_string()),
        },
        Ok(Request::Submit { job }) => match check(&job, home) {
            Ok(()) => return stream_job(&mut rd, &mut wr, &client, job).await,
            Err(e) => Response::Error(e),
        },
        Err(e) => Response::Error(format!("bad request: {e}")),
    };
    write_line(&mut wr, &resp).await
}

/// A submitted job must be valid, and its blobs must be in this home's store: the
/// submitter puts them there before it asks.
fn check(job: &JobSpec, home: &Path) -> Result<(), String> {
    job.validate().map_err(|e| e.to_string())?;
    if let JobSpec::Wasm(w) = job {
        let store = BlobStore::new(home);
        for (id, what) in [(w.module, "module"), (w.input, "input")] {
            if !store.contains(id) {
                return Err(format!("the job's {what} ({}) is not in {}", id.fmt_short(), home.display()));
            }
        }
    }
    Ok(())
}

async fn write_line(wr: &mut (impl AsyncWriteExt + Unpin), resp: &Response) -> Result<()> {
    let mut out = serde_json::to_vec(resp)?;
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
) -> Result<()> {
    let mut h = client.submit(job).await?;
    let mut scratch = [0u8; 64];
    loop {
        tokio::select! {
            n = rd.read(&mut scratch) => {
                if matches!(n, Ok(0) | Err(_)) {
                    bail!("the submitter went away; cancelling its job");
                }
            }
            report = &mut h.done => {
                let resp = match report {
                    Ok(r) => Response::Report(r),
                    Err(_) => Response::Error("the job was dropped".into()),
                };
                return tokio::time::timeout(IO_TIMEOUT, write_line(wr, &resp)).await?;
            }
            changed = h.progress.changed() => {
                if changed.is_err() { continue; }
                let (done, total) = *h.progress.borrow_and_update();
                tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::Progress { done, total })).await??;
            }
        }
    }
}

/// Hands a job to the node under `home` and waits for its report, calling `progress` on
/// the way. `Ok(None)` means no node runs there.
pub async fn submit(home: &Path, job: &JobSpec, mut progress: impl FnMut(u64, u64)) -> Result<Option<JobReport>> {
    let Ok(stream) = UnixStream::connect(socket_path(home)).await else { return Ok(None) };
    let (rd, mut wr) = stream.into_split();
    write_request(&mut wr, &Request::Submit { job: job.clone() }).await?;
    let mut lines = BufReader::new(rd).lines();
    while let Some(line) = lines.next_line().await? {
        match serde_json::from_str::<Response>(&line).context("the node sent a malformed reply")? {
            Response::Progress { done, total } => progress(done, total),
            Response::Report(r) => return Ok(Some(r)),
            Response::Error(e) => bail!("the node refused the job: {e}"),
            Response::Peers(_) => bail!("the node sent an unexpected reply"),
        }
    }
    bail!("the node closed the connection before the job finished")
}

async fn write_request(wr: &mut (impl AsyncWriteExt + Unpin), req: &Request) -> Result<()> {
    let mut msg = serde_json::to_vec(req)?;
    msg.push(b'\n');
    wr.write_all(&msg).await?;
    Ok(())
}

/// Sends one request to the node under `home`. `Ok(None)` means no node runs there.
pub async fn request(home: &Path, req: &Request) -> Result<Option<Response>> {
    let Ok(stream) = UnixStream::connect(socket_path(home)).await else { return Ok(None) };
    let exchange = async {
        let (rd, mut wr) = stream.into_split();
        write_request(&mut wr, req).await?;
        let mut line = String::new();
        BufReader::new(rd.take(64 * 1024 * 1024)).read_line(&mut line).await?;
        anyhow::Ok(serde_json::from_str::<Response>(&line).context("the node sent a malformed reply")?)
    };
    let resp = tokio::time::timeout(IO_TIMEOUT, exchange).await.context("the node did not answer in time")??;
    Ok(Some(resp))
}
