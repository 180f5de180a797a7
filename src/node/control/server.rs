//! The node's side of the control socket: binding it for its user (or group), serving
//! each client's request, and streaming a submitted job back. The spec is in `mod.rs`.

use super::{
    ControlError, IO_TIMEOUT, MAX_CLIENTS, MAX_CLIENTS_OTHERS, MAX_CLIENTS_PER_USER, MAX_REQUEST, Request, Response,
    socket_path, write_line,
};
use crate::id::ContentId;
use crate::job::{JobKind, JobSpec};
use crate::node::api::client::{Client, JobHandle, Submission};
use crate::node::api::config::Control;
use crate::node::api::view::{JobProgress, JobRef, OnGone, Submitter};
use crate::node::quota::{Quota, QuotaSlot};
use crate::store::{BlobStore, ClientPins, MAX_BLOB, StoreError};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
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
pub async fn serve(listener: UnixListener, home: PathBuf, node: String, client: Client, shutdown: CancellationToken) {
    let tracker = TaskTracker::new();
    let slots = Slots::default();
    let pins = Arc::new(BlobStore::client_pins(&home));
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => { backoff.reset(); stream }
                    Err(e) => {
                        // Out of fds (EMFILE) or kernel memory: wait instead of spinning on
                        // the same error, so the rest of the node keeps its core.
                        let pause = backoff.next();
                        tracing::warn!(%e, "the control socket cannot accept; trying again in {pause:?}");
                        tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(pause) => {} }
                        continue;
                    }
                };
                let caller = Caller::of(&stream);
                let Some(slot) = slots.take(caller) else {
                    // Busy: say so in one line, without waiting on the client, and close.
                    let busy = Response::Error(slots.busy_message(caller));
                    if let Ok(mut line) = serde_json::to_vec(&busy) {
                        line.push(b'\n');
                        let _ = stream.try_write(&line);
                    }
                    continue;
                };
                let (client, home, node, pins) = (client.clone(), home.clone(), node.clone(), pins.clone());
                tracker.spawn(async move {
                    if let Err(e) = handle(stream, caller, client, (&home, &node), &pins).await {
                        tracing::debug!(%e, "control client failed");
                    }
                    drop(slot);
                });
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    let _ = std::fs::remove_file(socket_path(&home));
}

async fn handle(
    stream: UnixStream,
    caller: Caller,
    client: Client,
    (home, node): (&Path, &str),
    pins: &ClientPins,
) -> anyhow::Result<()> {
    let (rd, mut wr) = stream.into_split();
    let mut line = Vec::new();
    let mut rd = BufReader::new(rd.take(MAX_REQUEST));
    tokio::time::timeout(IO_TIMEOUT, rd.read_until(b'\n', &mut line)).await??;
    let answer = match parse_request(&line) {
        Ok(Request::Peers) => client.peers().await.map(Response::Peers).map_err(ControlError::from),
        Ok(Request::Submit { job, detach }) => {
            let allowed = match may_submit(caller, job.kind()) {
                Ok(()) => check(&job, home).await,
                Err(e) => Err(e),
            };
            match allowed {
                Ok(()) => {
                    let on_gone = if detach || job.outlives_submitter() { OnGone::Detach } else { OnGone::Cancel };
                    let how = Submission { submitter: Submitter::of_uid(caller.uid, node), on_gone };
                    let handle = client.submit_as(job, how).await?;
                    let id = JobRef::of(handle.job);
                    tokio::time::timeout(IO_TIMEOUT, write_line(&mut wr, &Response::Job(id))).await??;
                    if detach {
                        return Ok(());
                    }
                    return stream_job(&mut rd, &mut wr, &client, Followed { handle, caller, cancels: true }).await;
                }
                Err(e) => Err(e),
            }
        }
        Ok(Request::Wait { job }) => match client.attach(job, caller.uid).await? {
            Ok((handle, spec)) => {
                tokio::time::timeout(IO_TIMEOUT, write_line(&mut wr, &Response::Job(job))).await??;
                tokio::time::timeout(IO_TIMEOUT, write_line(&mut wr, &Response::Spec(Box::new((*spec).clone()))))
                    .await??;
                return stream_job(&mut rd, &mut wr, &client, Followed { handle, caller, cancels: false }).await;
            }
            Err(e) => Err(ControlError::Refused(e.to_string())),
        },
        Ok(Request::Cancel { job }) => match client.cancel(job, caller.uid).await? {
            Ok(()) => Ok(Response::Ok(())),
            Err(e) => Err(ControlError::Refused(e.to_string())),
        },
        Ok(Request::Put { path }) if caller.own => put(home.to_path_buf(), path).await,
        Ok(Request::Put { .. }) => Err(ControlError::BadRequest(
            "put opens a path with the node's rights, so only the node's own user may; upload the bytes".into(),
        )),
        Ok(Request::Upload { pin: true, .. } | Request::Unpin { .. } | Request::Read { .. }) if !caller.own => {
            Err(ControlError::BadRequest(
                "pins and reads reach the node's own store, so only the node's own user may ask for them".into(),
            ))
        }
        Ok(Request::Upload { id, len, pin }) => {
            let pin = if pin { Some((caller, pins)) } else { None };
            receive_upload(&mut rd, home, Upload { id, len, pin }).await
        }
        Ok(Request::Unpin { ids }) => unpin(caller, pins, &ids),
        Ok(Request::Read { id }) => return send_blob(&mut wr, home, id).await,
        Err(e) => Err(e),
    };
    let resp = answer.unwrap_or_else(|e| Response::Error(e.to_string()));
    write_line(&mut wr, &resp).await
}

/// One request line: UTF-8 JSON. Anything else gets an error line that says what was wrong.
fn parse_request(line: &[u8]) -> Result<Request, ControlError> {
    let text = std::str::from_utf8(line).map_err(|e| {
        ControlError::BadRequest(format!(
            "the request line is not UTF-8 (byte {}); send one JSON object",
            e.valid_up_to()
        ))
    })?;
    if !text.ends_with('\n') && text.len() as u64 >= MAX_REQUEST {
        return Err(ControlError::BadRequest(format!("the request line is longer than {MAX_REQUEST} bytes")));
    }
    serde_json::from_str(text).map_err(|e| ControlError::BadRequest(e.to_string()))
}

/// Who is on the other end of a connection, as the kernel says (`SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Caller {
    pub uid: u32,
    /// Its process, if the kernel can name it in the node's pid namespace.
    pub pid: Option<u32>,
    /// The node's own user, or root: whoever could read the node's key and run its binary
    /// with it anyway.
    pub own: bool,
}

impl Caller {
    fn of(stream: &UnixStream) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        // A caller the kernel cannot name is treated as a stranger.
        let cred = stream.peer_cred().ok();
        let uid = cred.map_or(u32::MAX, |c| c.uid());
        let pid = cred.and_then(|c| c.pid()).and_then(|p| u32::try_from(p).ok()).filter(|&p| p > 0);
        Self { uid, pid, own: uid == me || uid == 0 }
    }
}

impl Caller {
    /// The process whose pins a request changes; a client the kernel cannot name (in
    /// another pid namespace) cannot pin.
    fn pinner(self) -> Result<u32, ControlError> {
        self.pid.ok_or_else(|| {
            ControlError::BadRequest(
                "the node cannot see the client's process (another pid namespace), so it cannot pin for it".into(),
            )
        })
    }
}

/// The rule for jobs on the control socket, which the node, not the client, enforces.
/// Primes and wasm jobs run sandboxed (a kernel of mesh's own, or wasm without any access
/// to the host), so anyone who may use the socket may submit them: the `mesh` group on the
/// service's node. Programs and Python run as the user of every `--allow-run` node that
/// takes their tasks, with its rights and its key: only the node's own user (or root), who
/// holds the key anyway, may submit them. A group member who holds the key runs a node of
/// their own for that.
pub(super) fn may_submit(caller: Caller, kind: JobKind) -> Result<(), ControlError> {
    if kind.sandboxed() || caller.own { Ok(()) } else { Err(ControlError::NotOwnUser { kind, uid: caller.uid }) }
}

/// The control socket's client slots: [`MAX_CLIENTS`] in all, of which other users than
/// the node's own hold at most [`MAX_CLIENTS_OTHERS`] together and [`MAX_CLIENTS_PER_USER`]
/// each. So one group member's stuck jobs cannot take the slots of the others, nor of the
/// node's own user.
#[derive(Debug)]
struct Slots {
    all: Quota<()>,
    others: Quota<u32>,
}

/// A client's slot: its place among all, and among other users' if it is one.
#[derive(Debug)]
struct Slot {
    _all: QuotaSlot<()>,
    _other: Option<QuotaSlot<u32>>,
}

impl Default for Slots {
    fn default() -> Self {
        Self { all: Quota::new(MAX_CLIENTS, MAX_CLIENTS), others: Quota::new(MAX_CLIENTS_OTHERS, MAX_CLIENTS_PER_USER) }
    }
}

impl Slots {
    fn take(&self, caller: Caller) -> Option<Slot> {
        let other = if caller.own { None } else { Some(self.others.take(caller.uid)?) };
        Some(Slot { _all: self.all.take(())?, _other: other })
    }

    fn busy_message(&self, caller: Caller) -> String {
        if caller.own {
            format!("the node serves at most {MAX_CLIENTS} clients at once; try again")
        } else {
            format!(
                "the node serves at most {MAX_CLIENTS_PER_USER} clients of one user, and {MAX_CLIENTS_OTHERS} of other \
                 users than its own, at once; wait for one of yours to end, or try again"
            )
        }
    }
}

/// The wait after a failed accept: 10 ms, doubling to 1 s.
#[derive(Debug, Default)]
pub(crate) struct AcceptBackoff(u32);

impl AcceptBackoff {
    pub(crate) fn next(&mut self) -> Duration {
        let pause = Duration::from_millis(10) * 2u32.pow(self.0.min(7));
        self.0 += 1;
        pause.min(Duration::from_secs(1))
    }

    pub(crate) fn reset(&mut self) {
        self.0 = 0;
    }
}

/// A submitted job must be valid, its blobs must be in this home's store (the submitter
/// puts them there before it asks), and its task count must be its input's or task list's
/// (read from the store, off the loop).
async fn check(job: &JobSpec, home: &Path) -> Result<(), ControlError> {
    job.validate()?;
    let store = BlobStore::new(home);
    if let Some(blob) = job.named_blobs().into_iter().find(|b| !store.contains(b.id)) {
        return Err(ControlError::MissingBlob { what: blob.what, id: blob.id, home: home.to_path_buf() });
    }
    let job = job.clone();
    tokio::task::spawn_blocking(move || job.check_blobs(&store))
        .await
        .map_err(|e| ControlError::Failed(e.to_string()))?
        .map_err(ControlError::from)
}

/// Stores a client's file in this home's store, off the loop.
async fn put(home: PathBuf, path: PathBuf) -> Result<Response, ControlError> {
    if !path.is_absolute() {
        return Err(ControlError::BadRequest(format!("put {}: give an absolute path", path.display())));
    }
    // A FIFO, a device such as /dev/zero or a socket would hold a blocking thread, and the
    // node's shutdown with it, for as long as it gives bytes: only plain files.
    match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(ControlError::BadRequest(format!("put {}: not a plain file", path.display())));
        }
        Err(e) => return Err(ControlError::BadRequest(format!("put {}: {e}", path.display()))),
    }
    let stored = tokio::task::spawn_blocking(move || BlobStore::new(&home).put_file(&path).map_err(|e| e.to_string()))
        .await
        .map_err(|e| ControlError::Failed(e.to_string()))?;
    stored.map(|(id, _)| Response::Blob(id)).map_err(ControlError::Failed)
}

/// An upload as asked for: its bytes' id if the client gave one, their length, and the
/// client whose process pins the blob, if it asked to.
struct Upload<'a> {
    id: Option<ContentId>,
    len: u64,
    pin: Option<(Caller, &'a ClientPins)>,
}

/// Reads the `len` bytes of an upload into this home's store. Each read must come within
/// [`IO_TIMEOUT`]; bytes that do not hash to the `id` given are discarded.
async fn receive_upload(
    rd: &mut BufReader<tokio::io::Take<tokio::net::unix::OwnedReadHalf>>,
    home: &Path,
    Upload { id, len, pin }: Upload<'_>,
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
    let id = id.unwrap_or_else(|| incoming.id());
    incoming.finish(&store, id).map_err(|e| match e {
        StoreError::Corrupt(_) => failed(&format!("the {len} bytes sent do not hash to {id}; nothing was stored")),
        e => failed(&e),
    })?;
    if let Some((caller, pins)) = pin {
        pins.pin(caller.pinner()?, id).map_err(|e| failed(&e))?;
    }
    Ok(Response::Blob(id))
}

/// Ends the caller process's pins of `ids`.
fn unpin(caller: Caller, pins: &ClientPins, ids: &[ContentId]) -> Result<Response, ControlError> {
    pins.unpin(caller.pinner()?, ids).map_err(|e| ControlError::Failed(format!("unpin: {e}")))?;
    Ok(Response::Ok(()))
}

/// Sends the blob `id` of this home's store: a `bytes` line, then its raw bytes, each
/// write within [`IO_TIMEOUT`]. A blob that is missing or damaged gets an `error` line.
async fn send_blob(wr: &mut (impl AsyncWriteExt + Unpin), home: &Path, id: ContentId) -> anyhow::Result<()> {
    let store = BlobStore::new(home);
    let read = tokio::task::spawn_blocking(move || store.read(id)).await?;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(e) => return write_line(wr, &Response::Error(format!("read: {e}"))).await,
    };
    tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::Bytes(bytes.len() as u64))).await??;
    for chunk in bytes.chunks(256 * 1024) {
        tokio::time::timeout(IO_TIMEOUT, wr.write_all(chunk)).await??;
    }
    Ok(tokio::time::timeout(IO_TIMEOUT, wr.flush()).await??)
}

/// A job a control client follows: its handle, who the client is, and whether the
/// client may cancel it with a `{"cmd":"cancel"}` line (its submitter).
struct Followed {
    handle: JobHandle,
    caller: Caller,
    cancels: bool,
}

/// The longest line a client may write while it follows a job.
const MAX_FOLLOW_LINE: usize = 1024;

/// Streams a job's progress and events to a control client, then its report. A job runs
/// as long as it takes, so only each write is bounded in time. A client that goes away
/// drops its handle: the job runs on, detached, unless nobody else can use it (see
/// `Watches`). A submitter's `{"cmd":"cancel"}` line (Ctrl-C) cancels the job, and the
/// stream ends with the report of what it did.
async fn stream_job(
    rd: &mut (impl AsyncReadExt + Unpin),
    wr: &mut (impl AsyncWriteExt + Unpin),
    client: &Client,
    Followed { handle: mut h, caller, cancels }: Followed,
) -> anyhow::Result<()> {
    let mut scratch = [0u8; 256];
    let mut line = Vec::new();
    let mut reading = true;
    loop {
        tokio::select! {
            biased;
            Some(e) = h.events.recv() => {
                tokio::time::timeout(IO_TIMEOUT, write_line(wr, &Response::from(e))).await??;
            }
            n = rd.read(&mut scratch), if reading => match n {
                Ok(0) | Err(_) => return Err(ControlError::SubmitterGone.into()),
                Ok(n) => {
                    line.extend_from_slice(&scratch[..n]);
                    while let Some(end) = line.iter().position(|&b| b == b'\n') {
                        let said: Vec<u8> = line.drain(..=end).collect();
                        if cancels && matches!(serde_json::from_slice(&said), Ok(Request::Cancel { .. })) {
                            let _ = client.cancel(JobRef::of(h.job), caller.uid).await?;
                        }
                    }
                    if line.len() > MAX_FOLLOW_LINE {
                        reading = false; // a client that babbles is not listened to
                    }
                }
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: Caller = Caller { uid: 1000, pid: None, own: true };
    const ALICE: Caller = Caller { uid: 1001, pid: None, own: false };

    #[test]
    fn other_users_submit_only_sandboxed_jobs() {
        for kind in [JobKind::Primes, JobKind::Wasm, JobKind::Run, JobKind::Python] {
            assert!(may_submit(OWN, kind).is_ok(), "{kind}");
            let sandboxed = matches!(kind, JobKind::Primes | JobKind::Wasm);
            assert_eq!(may_submit(ALICE, kind).is_ok(), sandboxed, "{kind}");
        }
        let why = may_submit(ALICE, JobKind::Run).unwrap_err().to_string();
        assert!(why.contains("uid 1001") && why.contains("only from its own user"), "{why}");
    }

    #[test]
    fn slots_are_bounded_per_user_and_kept_for_the_owner() {
        let slots = Slots::default();
        let alice: Vec<Slot> = (0..MAX_CLIENTS_PER_USER).map(|_| slots.take(ALICE).unwrap()).collect();
        assert!(slots.take(ALICE).is_none(), "one user is capped");
        assert!(slots.busy_message(ALICE).contains("of one user"));
        let others: Vec<Slot> = (0..MAX_CLIENTS_OTHERS - MAX_CLIENTS_PER_USER)
            .map(|i| {
                slots.take(Caller { uid: 2000 + (i / MAX_CLIENTS_PER_USER) as u32, pid: None, own: false }).unwrap()
            })
            .collect();
        assert!(slots.take(Caller { uid: 3000, pid: None, own: false }).is_none(), "other users together are capped");
        let own: Vec<Slot> = (0..MAX_CLIENTS - MAX_CLIENTS_OTHERS).map(|_| slots.take(OWN).unwrap()).collect();
        assert!(slots.take(OWN).is_none(), "the total is capped");
        drop(alice);
        let back = slots.take(ALICE);
        assert!(back.is_some(), "slots come back");
        drop((others, own));
        assert_eq!((slots.all.held(), slots.others.held()), (1, 1), "the one alice took back");
    }

    #[test]
    fn every_bad_line_gets_a_reason() {
        let not_utf8 = parse_request(b"{\"cmd\":\"pe\xffers\"}\n").unwrap_err().to_string();
        assert!(not_utf8.contains("not UTF-8"), "{not_utf8}");
        let not_json = parse_request(b"hello\n").unwrap_err().to_string();
        assert!(not_json.starts_with("bad request"), "{not_json}");
        let long = vec![b' '; MAX_REQUEST as usize];
        assert!(parse_request(&long).unwrap_err().to_string().contains("longer than"));
        assert_eq!(parse_request(b"{\"cmd\":\"peers\"}\n").unwrap(), Request::Peers);
    }

    #[test]
    fn accept_backoff_grows_to_a_second_and_resets() {
        let mut b = AcceptBackoff::default();
        let waits: Vec<Duration> = (0..10).map(|_| b.next()).collect();
        assert_eq!(waits[0], Duration::from_millis(10));
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*waits.last().unwrap(), Duration::from_secs(1));
        b.reset();
        assert_eq!(b.next(), Duration::from_millis(10));
    }
}
