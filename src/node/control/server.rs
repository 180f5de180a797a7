//! The node's side of the control socket: binding it for its user (or group), serving
//! each client's request, and streaming a submitted job back. The spec is in `mod.rs`.

use super::{
    ControlError, IO_TIMEOUT, MAX_CLIENTS, MAX_REQUEST, Request, Response, job_blobs, socket_path, write_line,
};
use crate::id::ContentId;
use crate::job::JobSpec;
use crate::node::client::Client;
use crate::node::config::Control;
use crate::node::view::JobProgress;
use crate::store::{BlobStore, MAX_BLOB};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Binds the control socket, for the node's user or its group too as `access` says. Fails
/// if another node already serves this home.
pub async fn bind(home: &Path, access: Control) -> Result<UnixListener, ControlError> {
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
        let mode = if access == Control::Group { 0o660 } else { 0o600 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
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
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let own_user = stream.peer_cred().is_ok_and(|c| c.uid() == me);
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
        Ok(Request::Put { path }) if own_user => put(home.to_path_buf(), path).await,
        Ok(Request::Put { .. }) => Err(ControlError::BadRequest(
            "put opens a path with the node's rights, so only the node's own user may; upload the bytes".into(),
        )),
        Ok(Request::Upload { id, len }) => receive_upload(&mut rd, home, id, len).await,
        Err(e) => Err(ControlError::BadRequest(e.to_string())),
    };
    let resp = answer.unwrap_or_else(|e| Response::Error(e.to_string()));
    write_line(&mut wr, &resp).await
}

/// A submitted job must be valid, and its blobs must be in this home's store: the
/// submitter puts them there before it asks.
fn check(job: &JobSpec, home: &Path) -> Result<(), ControlError> {
    job.validate()?;
    let store = BlobStore::new(home);
    match job_blobs(job).into_iter().find(|(id, _)| !store.contains(*id)) {
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

/// Reads the `len` bytes of an upload into this home's store, as the blob `id`. Each read
/// must come within [`IO_TIMEOUT`]; bytes that do not hash to `id` are discarded.
async fn receive_upload(
    rd: &mut BufReader<tokio::io::Take<tokio::net::unix::OwnedReadHalf>>,
    home: &Path,
    id: ContentId,
    len: u64,
) -> Result<Response, ControlError> {
    if len > MAX_BLOB {
        return Err(ControlError::BadRequest(format!("upload of {len} bytes; at most {MAX_BLOB} are allowed")));
    }
    let failed = |e: &dyn std::fmt::Display| ControlError::Failed(format!("upload: {e}"));
    rd.get_mut().set_limit(len);
    let store = BlobStore::new(home);
    let mut incoming = store.incoming().map_err(|e| failed(&e))?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = len;
    while left > 0 {
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = tokio::time::timeout(IO_TIMEOUT, rd.read(&mut buf[..want]))
            .await
            .map_err(|_| failed(&"the client stopped sending"))?
            .map_err(|e| failed(&e))?;
        if n == 0 {
            return Err(failed(&format!("the client sent {} of {len} bytes", len - left)));
        }
        incoming.write(&buf[..n]).map_err(|e| failed(&e))?;
        left -= n as u64;
    }
    incoming.finish(&store, id).map_err(|e| failed(&e))?;
    Ok(Response::Blob(id))
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
