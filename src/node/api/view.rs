//! What a node shows of itself and of the mesh: the rows of `mesh peers`, its blob
//! traffic and the progress of a job. Plain data, shared by the event loop, the control
//! socket and the CLI; it depends on no other part of the node, so display types never
//! tie the node's logic together.

use crate::core::Facts;
use crate::job::{JobKind, PyOutput, RunOutput, TaskOutput};
pub use crate::protocol::membership::{Health, JobSummary, Share};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How a node in `mesh peers` relates to this one. Serialised as kebab-case text
/// (`member`, `different-key`, `incompatible`, `seen`), as `mesh peers --json` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerState {
    /// In the mesh: connected with our key and protocol, and announcing itself.
    Member,
    /// Seen on the LAN with another key: it cannot connect to this mesh.
    DifferentKey,
    /// Runs another protocol version: seen, flagged, never used.
    Incompatible,
    /// Seen on the LAN by a browse with no local node; nothing more is known.
    Seen,
}

/// A node's blob traffic since it started, shown by `mesh peers --json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobStats {
    /// Blobs fetched from peers.
    pub fetched: u64,
    pub bytes_in: u64,
    /// Transfers rejected because the blob did not match its hash.
    pub rejected: u64,
    /// Chunks served to peers.
    pub chunks_served: u64,
    pub bytes_out: u64,
}

/// One line of `mesh peers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    pub name: String,
    pub peer_id: String,
    pub addrs: Vec<String>,
    pub workers: Option<u32>,
    pub busy: Option<u32>,
    pub queued: Option<u64>,
    pub tasks_done: Option<u64>,
    /// Its steals that brought work (members and this node; for the dashboard).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steals: Option<u64>,
    pub rtt_ms: Option<f64>,
    pub version: String,
    pub last_seen_s: Option<f64>,
    #[serde(rename = "self")]
    pub is_self: bool,
    pub state: PeerState,
    /// This node's blob traffic (the self row only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blobs: Option<BlobStats>,
    /// What the node offers (members and this node): arch, OS, cores, memory, labels and
    /// whether it allows runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facts: Option<Facts>,
    /// How its machine is doing (members and this node): temperature, throttling, load,
    /// available memory, where it can tell.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The jobs it submitted, running or just finished (members and this node), for the
    /// dashboard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobSummary>,
}

/// What `mesh peers` shows: this node, then every other node it knows of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeersReply {
    pub rows: Vec<PeerRow>,
}

/// What a submitter's callback hears while its job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobUpdate {
    Progress(JobProgress),
    Event(JobEvent),
}

/// Something a submitter hears of its job while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobEvent {
    /// A task of a run job finished for good (its output in full).
    Task(Box<TaskEvent>),
    /// A task of a Python job finished for good.
    Python(Box<PyTaskEvent>),
    /// The job's queued tasks have no node that can run them, and why.
    Waiting(String),
}

impl JobEvent {
    /// The task it tells of, if any.
    pub fn task(&self) -> Option<u64> {
        match self {
            Self::Task(t) => Some(t.task),
            Self::Python(p) => Some(p.task),
            Self::Waiting(_) => None,
        }
    }

    /// The blobs its result refers to (large outputs, returned files, a large value).
    pub fn blobs(&self) -> Vec<crate::id::ContentId> {
        match self {
            Self::Task(t) => t.outcome.as_ref().map(|o| o.blobs()).unwrap_or_default(),
            Self::Python(p) => p.outcome.as_ref().map(|o| o.blobs()).unwrap_or_default(),
            Self::Waiting(_) => Vec::new(),
        }
    }

    /// The event of a streamed job's task (`JobSpec::delivery`) that finished for good:
    /// a Python job's as `Python`, any other's as `Task`. A result of another kind than
    /// the job's is a failure.
    pub fn finished(
        kind: JobKind,
        task: u64,
        node: String,
        attempts: u32,
        took: Duration,
        outcome: &Result<TaskOutput, String>,
    ) -> Self {
        let python =
            |outcome| Self::Python(Box::new(PyTaskEvent { task, node: node.clone(), attempts, took, outcome }));
        let run = |outcome| Self::Task(Box::new(TaskEvent { task, node: node.clone(), attempts, took, outcome }));
        match (outcome, kind) {
            (Ok(TaskOutput::Python(p)), JobKind::Python) => python(Ok((**p).clone())),
            (Ok(TaskOutput::Run(r)), JobKind::Run) => run(Ok((**r).clone())),
            (Ok(_), JobKind::Python) => python(Err(OTHER_KIND.into())),
            (Ok(_), _) => run(Err(OTHER_KIND.into())),
            (Err(e), JobKind::Python) => python(Err(e.clone())),
            (Err(e), _) => run(Err(e.clone())),
        }
    }
}

/// Why a task's result of another kind than its job's is a failure.
const OTHER_KIND: &str = "a result of another kind of job";

/// A run job's task, as it finished for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskEvent {
    pub task: u64,
    /// The node whose result counted.
    pub node: String,
    /// Runs it took, retries included.
    pub attempts: u32,
    pub took: Duration,
    /// What the program did, or why it could not run.
    pub outcome: Result<RunOutput, String>,
}

/// A Python job's task, as it finished for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PyTaskEvent {
    pub task: u64,
    /// The node whose result counted.
    pub node: String,
    /// Runs it took, retries included.
    pub attempts: u32,
    pub took: Duration,
    /// What the function returned or raised, or why it could not run.
    pub outcome: Result<PyOutput, String>,
}

/// Who submitted a job: a user of a node (`alice@pi3`), as `mesh jobs` shows them. The
/// owner node decides by it who may wait for the job's results and cancel it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Submitter {
    pub user: String,
    /// Their uid on the owner node: the kernel's word for a control client, this
    /// process's for a job submitted in-process.
    pub uid: u32,
    pub node: String,
}

impl Submitter {
    /// This process's user, on the node named `node`.
    pub fn this_process(node: &str) -> Self {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let uid = unsafe { libc::geteuid() };
        Self::of_uid(uid, node)
    }

    /// The user `uid`, named as the system names them, on the node named `node`.
    pub fn of_uid(uid: u32, node: &str) -> Self {
        Self { user: user_name(uid), uid, node: node.to_string() }
    }
}

impl std::fmt::Display for Submitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.user, self.node)
    }
}

/// The login name of `uid`, or `uid N` when the system has none.
fn user_name(uid: u32) -> String {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill in.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, and buf's length is passed with it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || pw.pw_name.is_null() {
        return format!("uid {uid}");
    }
    // SAFETY: getpwuid_r succeeded, so pw_name points at a NUL-terminated name in buf.
    unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }.to_string_lossy().into_owned()
}

/// What the owner does with a job when nobody waits for it any more (its submitter's
/// connection closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnGone {
    /// Cancel it mesh-wide: nobody can use its results (a Python script that exited, a
    /// `mesh submit` that ran its own node and is ending).
    Cancel,
    /// Run it on, detached: `mesh wait` fetches its results, `mesh cancel` ends it.
    Detach,
}

/// A job as a user names it: `<owner>-<seq>`, the first 8 hex digits of its owner's node
/// id and its number there, as `JobId` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobRef {
    pub owner: u32,
    pub seq: u32,
}

impl JobRef {
    pub fn of(job: crate::id::JobId) -> Self {
        Self { owner: (job.owner.0 >> 32) as u32, seq: job.seq }
    }

    /// Whether `job` is the one named.
    pub fn names(self, job: crate::id::JobId) -> bool {
        Self::of(job) == self
    }
}

impl std::fmt::Display for JobRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:08x}-{}", self.owner, self.seq)
    }
}

/// The node id of a peer id in base58, as the network layer derives it.
pub fn node_id_of(peer: &str) -> Option<crate::id::NodeId> {
    let peer: libp2p::PeerId = peer.parse().ok()?;
    Some(crate::id::NodeId::from_peer_bytes(&peer.to_bytes()))
}

/// Why a text is not a job id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a job id; job ids look like 3f2a9c1e-7 (mesh jobs lists them)")]
pub struct BadJobRef(pub String);

impl std::str::FromStr for JobRef {
    type Err = BadJobRef;
    fn from_str(s: &str) -> Result<Self, BadJobRef> {
        let bad = || BadJobRef(s.to_string());
        let (owner, seq) = s.trim().split_once('-').ok_or_else(bad)?;
        if owner.len() != 8 {
            return Err(bad());
        }
        Ok(Self { owner: u32::from_str_radix(owner, 16).map_err(|_| bad())?, seq: seq.parse().map_err(|_| bad())? })
    }
}

impl Serialize for JobRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for JobRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Why a node would not hand over or cancel a job.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobAccessError {
    #[error("no job {0} here: it is not this node's, or it ended too long ago (mesh jobs lists the jobs)")]
    Unknown(JobRef),
    #[error("job {job} is {submitter}'s: only they (or this node's own user, or root) may wait for it or cancel it")]
    NotYours { job: JobRef, submitter: String },
    #[error("job {0} has already ended")]
    Ended(JobRef),
    /// Asked from another node: only the submitter's user name may.
    #[error("job {job} is {submitter}'s: from another node, only a user of that name may wait for it or cancel it")]
    NotYoursThere { job: JobRef, submitter: String },
    #[error("no member of the mesh owns job {0}: its owner is not connected now (mesh peers lists the members)")]
    NoOwner(JobRef),
    /// The owner said no, or did not answer: why, in its words.
    #[error("job {job}: {why}")]
    Owner { job: JobRef, why: String },
}

/// How far an owned job has come: tasks with a final result, of all its tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobProgress {
    pub done: u64,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_states_print_as_mesh_peers_json_always_did() {
        let states = [PeerState::Member, PeerState::DifferentKey, PeerState::Incompatible, PeerState::Seen];
        let text: Vec<String> = states.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
        assert_eq!(text, [r#""member""#, r#""different-key""#, r#""incompatible""#, r#""seen""#]);
        for s in states {
            assert_eq!(serde_json::from_str::<PeerState>(&serde_json::to_string(&s).unwrap()).unwrap(), s);
        }
    }
}
