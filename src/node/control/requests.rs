//! The client's side of the control socket: which node a command talks to, and the
//! requests `mesh peers` and `mesh submit` make of it.
//!
//! A command reaches the node under its `--home`. With no `--home` (nor `MESH_HOME`) and
//! no node there, it reaches the mesh service's node instead, if this machine runs one
//! ([`SERVICE_HOME`], its socket open to the `mesh` group); a job's files then go to that
//! node as bytes (`upload`), since it cannot read this user's store.

use super::{ControlError, IO_TIMEOUT, MAX_REPLY, Request, Response, socket_path, write_line};
use crate::id::ContentId;
use crate::job::JobSpec;
use crate::node::api::view::PeersReply;
use crate::store::BlobStore;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

/// The home of the node that the mesh service runs (the package's `mesh.service`); its
/// control socket is open to the members of the `mesh` group.
pub const SERVICE_HOME: &str = "/var/lib/mesh";

/// The home of the node a command talks to: `home` when a node serves it, or when it was
/// given (`default` false); else the mesh service's home when its node runs and this user
/// may use it. A service this user may not use is an error that says what to do.
pub fn reach(home: &Path, default: bool) -> Result<PathBuf, ControlError> {
    reach_from(home, default, Path::new(SERVICE_HOME))
}

fn reach_from(home: &Path, default: bool, service: &Path) -> Result<PathBuf, ControlError> {
    use std::os::unix::net::UnixStream;
    if !default || home == service || UnixStream::connect(socket_path(home)).is_ok() {
        return Ok(home.to_path_buf());
    }
    let socket = socket_path(service);
    match UnixStream::connect(&socket) {
        Ok(_) => Ok(service.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(ControlError::NotInGroup(socket)),
        // No service, or a stale socket of one that stopped.
        Err(_) => Ok(home.to_path_buf()),
    }
}

/// Sends the files of `job` from the store under `local` to the node under `home`, which
/// does not share that store (the mesh service's node). Only jobs whose files are all
/// named in the spec can go this way: a wasm job's module and input. A `mesh run` or
/// Python job names more files inside its task list, and is refused with a clear error.
pub async fn send_files(home: &Path, local: &Path, job: &JobSpec) -> Result<(), ControlError> {
    if !job.self_contained() {
        return Err(ControlError::NotShared(home.to_path_buf()));
    }
    let store = BlobStore::new(local);
    for blob in job.named_blobs() {
        let bytes = store.read(blob.id).map_err(|e| ControlError::Failed(format!("the job's {}: {e}", blob.what)))?;
        upload(home, blob.id, &bytes).await?;
    }
    Ok(())
}

/// Stores `bytes`, whose content id is `id`, in the store of the node under `home`.
pub async fn upload(home: &Path, id: ContentId, bytes: &[u8]) -> Result<(), ControlError> {
    let io = |source| ControlError::Io { path: socket_path(home), source };
    let stream = UnixStream::connect(socket_path(home)).await.map_err(io)?;
    let (rd, mut wr) = stream.into_split();
    let exchange = async {
        write_line(&mut wr, &Request::Upload { id: Some(id), len: bytes.len() as u64, pin: false })
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        wr.write_all(bytes).await.map_err(io)?;
        let mut line = String::new();
        read_reply(&mut BufReader::new(rd), &mut line).await.map_err(io)?;
        match parse(&line)? {
            Response::Blob(got) if got == id => Ok(()),
            Response::Error(e) => Err(ControlError::Failed(e)),
            _ => Err(ControlError::Unexpected),
        }
    };
    // A blob of [`crate::store::MAX_BLOB`] bytes goes at well over 10 MB/s on any socket.
    let within = IO_TIMEOUT + std::time::Duration::from_secs(bytes.len() as u64 / 10_000_000);
    tokio::time::timeout(within, exchange).await.map_err(|_| ControlError::Timeout)?
}

/// Reads one reply line of at most [`MAX_REPLY`] bytes; 0 at the end of the stream.
pub(super) async fn read_reply(
    rd: &mut BufReader<tokio::net::unix::OwnedReadHalf>,
    line: &mut String,
) -> std::io::Result<usize> {
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

pub(super) fn parse(line: &str) -> Result<Response, ControlError> {
    serde_json::from_str(line).map_err(|e| ControlError::Malformed(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mesh-reach-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_command_reaches_its_own_node_or_else_the_service() {
        let (mine, service) = (temp("mine"), temp("service"));
        // No node anywhere: the command's own home (it starts a node of its own).
        assert_eq!(reach_from(&mine, true, &service).unwrap(), mine);
        // The service runs: a command with the default home talks to it.
        let _svc = std::os::unix::net::UnixListener::bind(socket_path(&service)).unwrap();
        assert_eq!(reach_from(&mine, true, &service).unwrap(), service);
        // ... but not one given a home of its own.
        assert_eq!(reach_from(&mine, false, &service).unwrap(), mine);
        // A node under the command's own home comes first.
        let _own = std::os::unix::net::UnixListener::bind(socket_path(&mine)).unwrap();
        assert_eq!(reach_from(&mine, true, &service).unwrap(), mine);
        // A stale socket of a stopped service is no node.
        let (mine2, gone) = (temp("mine2"), temp("gone"));
        drop(std::os::unix::net::UnixListener::bind(socket_path(&gone)).unwrap());
        assert_eq!(reach_from(&mine2, true, &gone).unwrap(), mine2);
        for d in [mine, service, mine2, gone] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
