//! Membership gossip: gossipsub topic `mesh/membership/1`.
//!
//! # Spec
//! Every node publishes an [`Announce`] on the topic every second (`core::Config::
//! gossip_interval`), and early when its queue turns empty or non-empty. The payload is one
//! CBOR map of at most [`MAX_ANNOUNCE_BYTES`] bytes:
//!
//! | field | type | meaning |
//! |---|---|---|
//! | `protocol` | uint | [`PROTOCOL_VERSION`]; nodes of another version are shown, flagged and not used |
//! | `version` | text ≤ 32 | the sender's mesh release |
//! | `name` | text ≤ 64 | the sender's `--name` |
//! | `status` | map | `workers`, `busy`, `queued`, `tasks_done` (all uint) |
//! | `bye` | bool | true in the last message of a node that is leaving |
//! | `facts` | map | `arch`, `os` (text ≤ 32), `cores`, `mem_mb` (uint), `allow_run` (bool), `labels` (≤ 16 names of ≤ 32 of `[A-Za-z0-9._-]`), `python` (`{major, minor}`, version 4; absent without one); absent from version-2 senders |
//! | `health` | map, optional | how the machine is doing, each field absent where it cannot tell: `temp_mc` (int, CPU temperature in thousandths of a °C), `throttled` (uint, the Raspberry Pi firmware's `get_throttled` flags), `load_centi` (uint, 1-minute load average × 100), `mem_avail_mb` (uint, available memory); display only, never used for scheduling |
//! | `jobs` | array, optional | the sender's own jobs, running or finished in the last [`FINISHED_SHOWN`], at most [`MAX_JOBS`]: each `seq` (uint, the job's number on the sender), `kind` (`primes`, `wasm`, `run` or `python`), `done`, `failed`, `total` (uint tasks), `elapsed_ms` (uint), `finished` (bool), and `shares`: at most [`MAX_SHARES`] of the nodes that ran most of it, each `node` (uint, its `NodeId`), `tasks` and `task_ms` (uint), and optionally `submitter` (text, `user@node`, at most [`MAX_SUBMITTER`] bytes); display only (the dashboard), never used for scheduling |
//!
//! | `addrs` | array, optional | where the sender listens, as multiaddr texts: at most [`MAX_ADDRS`] of at most [`MAX_ADDR_LEN`] bytes, loopback left out; absent from older senders. A node not connected to the sender (one on another LAN, whose announce a member relayed) dials it there, so a mesh spans routed LANs with one `--peer` |
//!
//! The sender is the gossipsub message source: messages are signed (`ValidationMode::
//! Strict`), so a node cannot speak for another. A node that has not announced for
//! `peer_expiry` (5 s) is dropped from every view; a `bye` drops it at once.
//! Malformed, oversized or invalid announces are logged and dropped. A sender whose
//! announce would pass [`MAX_ANNOUNCE_BYTES`] leaves out its last jobs until it fits.

use super::{DecodeError, decode, encode};
use crate::core::{Facts, Status};
use crate::id::NodeId;
use crate::job::JobKind;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The gossipsub topic. It keeps its version 1 across protocol versions: the announce only
/// ever gains optional fields, which older decoders skip, so nodes of every version still
/// see (and flag) each other.
pub(crate) const TOPIC: &str = "mesh/membership/1";

/// The version of all of mesh's wire protocols together; bumped on any incompatible change.
/// Version 2 added WebAssembly jobs to `/mesh/sched/2` and the blob protocol
/// `/mesh/blob/2`. Version 3 added `mesh run` jobs and their results, requirements on
/// jobs, node facts in the announce, and blobs up to `store::MAX_FILE` (`/mesh/sched/3`,
/// `/mesh/blob/3`). Version 4 added Python jobs and their results, and a node's Python
/// in its facts: `/mesh/sched/4`, `/mesh/blob/4`. Version 5 changed only how the shared
/// key is derived (argon2id, `crate::secret`): nodes of 4 and 5 cannot connect, and the
/// bump lets each side say "upgrade" instead of "different key".
pub(crate) const PROTOCOL_VERSION: u32 = 5;

/// Largest accepted announce.
pub(crate) const MAX_ANNOUNCE_BYTES: usize = 1024;

/// Jobs an announce tells of at most.
pub(crate) const MAX_JOBS: usize = 4;
/// The longest `user@node` a job summary carries.
pub(crate) const MAX_SUBMITTER: usize = 96;
/// Nodes named in one job's shares at most (the rest are not told).
pub(crate) const MAX_SHARES: usize = 6;
/// How long an owner keeps telling of a job that has finished, so every dashboard sees it
/// end with its final counts.
pub(crate) const FINISHED_SHOWN: Duration = Duration::from_secs(15);

/// Listen addresses an announce carries at most, and the longest.
pub(crate) const MAX_ADDRS: usize = 4;
pub(crate) const MAX_ADDR_LEN: usize = 96;

const MAX_NAME: usize = 64;
const MAX_VERSION: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Announce {
    pub protocol: u32,
    pub version: String,
    pub name: String,
    pub status: Status,
    pub bye: bool,
    /// What the sender offers, for matchmaking; absent from version-2 senders.
    #[serde(default)]
    pub facts: Facts,
    /// How the sender's machine is doing; absent from older senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// The sender's own jobs, for dashboards; absent from older senders and when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobSummary>,
    /// Where the sender listens; absent from older senders.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<String>,
}

/// How far one of the sender's jobs has come, and who ran it: what every node's dashboard
/// shows of a job submitted elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSummary {
    /// The job's number on its owner (`JobId::seq`).
    pub seq: u32,
    pub kind: JobKind,
    /// Tasks with a final result, failed ones included.
    pub done: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    pub total: u64,
    /// Since it was submitted; at the end, how long it took.
    pub elapsed_ms: u64,
    pub finished: bool,
    /// The nodes that ran most of it, most tasks first.
    pub shares: Vec<Share>,
    /// Who submitted it, `user@node`, at most [`MAX_SUBMITTER`] bytes; absent from older
    /// senders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitter: Option<String>,
}

/// One node's part in a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub node: NodeId,
    /// Tasks whose counted result came from the node.
    pub tasks: u64,
    /// Time it spent on the job's tasks, failed attempts included.
    pub task_ms: u64,
}

impl JobSummary {
    fn is_valid(&self) -> bool {
        self.done <= self.total
            && self.failed <= self.done
            && self.shares.len() <= MAX_SHARES
            && self.submitter.as_ref().is_none_or(|s| s.len() <= MAX_SUBMITTER)
    }
}

/// How a node's machine is doing, where it can tell: a Raspberry Pi tells all four. For
/// people (`mesh peers`), not for the scheduler. Read by `node::health`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// CPU temperature in thousandths of a degree Celsius.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temp_mc: Option<i32>,
    /// The Pi firmware's throttled flags: bit 0 under-voltage, 1 frequency capped, 2
    /// throttled, 3 soft temperature limit, all now; bits 16 to 19 the same since boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttled: Option<u32>,
    /// The 1-minute load average, in hundredths.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_centi: Option<u32>,
    /// Available memory (`MemAvailable`), in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_avail_mb: Option<u64>,
}

impl Health {
    /// The CPU runs slower than it could right now: capped, throttled or at its soft
    /// temperature limit.
    pub fn throttled_now(&self) -> bool {
        self.throttled.is_some_and(|f| f & 0b1110 != 0)
    }

    /// The supply's voltage is too low right now (a weak power supply or cable).
    pub fn under_voltage_now(&self) -> bool {
        self.throttled.is_some_and(|f| f & 1 != 0)
    }
}

impl Announce {
    /// The announce's bytes, leaving out its last jobs if it would not fit otherwise.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut bytes = encode(self);
        if bytes.len() > MAX_ANNOUNCE_BYTES && !self.jobs.is_empty() {
            let mut fewer = self.clone();
            while bytes.len() > MAX_ANNOUNCE_BYTES && fewer.jobs.pop().is_some() {
                bytes = encode(&fewer);
            }
        }
        bytes
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let a: Self = decode(bytes, MAX_ANNOUNCE_BYTES)?;
        if a.name.is_empty() || a.name.len() > MAX_NAME || a.name.chars().any(char::is_control) {
            return Err(DecodeError::Invalid("name must be 1 to 64 printable characters"));
        }
        if a.version.len() > MAX_VERSION {
            return Err(DecodeError::Invalid("version longer than 32 bytes"));
        }
        if !a.facts.is_valid() {
            return Err(DecodeError::Invalid("facts out of bounds (labels, arch, os)"));
        }
        if a.status.busy > a.status.workers {
            return Err(DecodeError::Invalid("more busy workers than workers"));
        }
        if a.jobs.len() > MAX_JOBS || !a.jobs.iter().all(JobSummary::is_valid) {
            return Err(DecodeError::Invalid("jobs out of bounds (count, shares, done above total)"));
        }
        if a.addrs.len() > MAX_ADDRS
            || a.addrs.iter().any(|x| x.len() > MAX_ADDR_LEN || x.parse::<Multiaddr>().is_err())
        {
            return Err(DecodeError::Invalid("addrs out of bounds (count, length, not a multiaddr)"));
        }
        Ok(a)
    }

    /// What an announce tells of where a node listens: the first [`MAX_ADDRS`] of
    /// `listening`, without loopback addresses (useless to anyone else) or overlong ones.
    pub(crate) fn addrs_of(listening: &[Multiaddr]) -> Vec<String> {
        let loopback = |a: &Multiaddr| {
            a.iter().any(|p| {
                matches!(p, Protocol::Ip4(ip) if ip.is_loopback()) || matches!(p, Protocol::Ip6(ip) if ip.is_loopback())
            })
        };
        let texts = listening.iter().filter(|a| !loopback(a)).map(ToString::to_string);
        texts.filter(|t| t.len() <= MAX_ADDR_LEN).take(MAX_ADDRS).collect()
    }

    /// The addresses told, parsed (decoding checked them).
    pub(crate) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.addrs.iter().filter_map(|a| a.parse().ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Announce {
        Announce {
            protocol: PROTOCOL_VERSION,
            version: "0.1.0".into(),
            name: "pi-1".into(),
            status: Status { workers: 4, busy: 2, queued: 10, tasks_done: 99, steals: 0 },
            bye: false,
            facts: Facts { arch: "aarch64".into(), labels: vec!["ffmpeg".into()], ..Facts::default() },
            health: Some(Health {
                temp_mc: Some(48_312),
                throttled: Some(0),
                load_centi: Some(12),
                mem_avail_mb: Some(700),
            }),
            jobs: vec![job(7)],
            addrs: vec!["/ip4/198.18.0.11/tcp/7946".into()],
        }
    }

    fn job(seq: u32) -> JobSummary {
        let share = |n| Share { node: NodeId(u64::MAX - n), tasks: 1000 + n, task_ms: 123_456 };
        JobSummary {
            seq,
            kind: JobKind::Wasm,
            done: 40,
            failed: 1,
            total: 100,
            elapsed_ms: 4321,
            finished: false,
            shares: (0..MAX_SHARES as u64).map(share).collect(),
            submitter: Some("alice@pi3".into()),
        }
    }

    #[test]
    fn round_trip() {
        let a = sample();
        assert_eq!(Announce::decode(&a.encode()).unwrap(), a);
        let mut small = a.clone();
        small.jobs.clear();
        assert!(small.encode().len() < 256, "an announce without jobs stays small");
    }

    #[test]
    fn an_announce_too_big_for_its_jobs_leaves_out_the_last_ones() {
        // A usual node with 4 jobs of 6 shares each, and one with the longest name and
        // every label it may have: each keeps the jobs that fit, the first ones, whole.
        let mut usual = sample();
        usual.jobs = (0..MAX_JOBS as u32).map(job).collect();
        let mut crowded = usual.clone();
        crowded.name = "n".repeat(MAX_NAME);
        crowded.facts.labels = (0..16).map(|i| format!("{i:0>32}")).collect();
        for (a, at_least) in [(usual, 1), (crowded, 0)] {
            let bytes = a.encode();
            assert!(bytes.len() <= MAX_ANNOUNCE_BYTES);
            let got = Announce::decode(&bytes).unwrap();
            assert!(got.jobs.len() >= at_least && got.jobs.len() < MAX_JOBS, "kept {} jobs", got.jobs.len());
            let mut want = a.clone();
            want.jobs.truncate(got.jobs.len());
            assert_eq!(got, want, "the first jobs, whole, and all else");
        }
    }

    #[test]
    fn jobs_out_of_bounds_are_refused() {
        let mut a = sample();
        a.jobs[0].done = a.jobs[0].total + 1;
        assert!(matches!(Announce::decode(&encode(&a)), Err(DecodeError::Invalid(_))));
        let mut a = sample();
        let extra = a.jobs[0].shares[0];
        a.jobs[0].shares.push(extra);
        assert!(matches!(Announce::decode(&encode(&a)), Err(DecodeError::Invalid(_))));
        let mut a = sample();
        a.jobs = vec![job(1), job(2), job(3), job(4), job(5)];
        a.jobs.iter_mut().for_each(|j| j.shares.truncate(1));
        assert!(matches!(Announce::decode(&encode(&a)), Err(DecodeError::Invalid(_))));
    }

    #[test]
    fn listen_addresses_are_told_without_loopback_and_checked() {
        let listening: Vec<Multiaddr> =
            ["/ip4/127.0.0.1/tcp/1", "/ip4/198.18.0.11/tcp/1", "/ip6/::1/tcp/1", "/ip4/198.18.1.11/tcp/1"]
                .iter()
                .map(|a| a.parse().unwrap())
                .collect();
        assert_eq!(Announce::addrs_of(&listening), ["/ip4/198.18.0.11/tcp/1", "/ip4/198.18.1.11/tcp/1"]);
        let many: Vec<Multiaddr> = (0..9).map(|i| format!("/ip4/198.18.0.{i}/tcp/1").parse().unwrap()).collect();
        assert_eq!(Announce::addrs_of(&many).len(), MAX_ADDRS);
        let a = sample();
        assert_eq!(
            Announce::decode(&a.encode()).unwrap().listen_addrs(),
            vec!["/ip4/198.18.0.11/tcp/7946".parse::<Multiaddr>().unwrap()]
        );
        for bad in [
            vec!["not an address".to_string()],
            vec!["/ip4/198.18.0.1/tcp/1".to_string(); MAX_ADDRS + 1],
            vec![format!("/dns4/{}/tcp/1", "a".repeat(MAX_ADDR_LEN))],
        ] {
            let a = Announce { addrs: bad, ..sample() };
            assert!(matches!(Announce::decode(&encode(&a)), Err(DecodeError::Invalid(_))));
        }
    }

    #[test]
    fn garbage_and_oversized_are_refused() {
        assert!(matches!(Announce::decode(b"\xff\x00garbage"), Err(DecodeError::Malformed(_))));
        assert!(matches!(Announce::decode(&[0u8; 5000]), Err(DecodeError::TooLarge { .. })));
        let mut a = sample();
        a.name = "x".repeat(65);
        assert!(matches!(Announce::decode(&a.encode()), Err(DecodeError::Invalid(_))));
        let mut a = sample();
        a.status.busy = 9;
        assert!(matches!(Announce::decode(&a.encode()), Err(DecodeError::Invalid(_))));
        let mut a = sample();
        a.facts.labels = vec!["no spaces allowed".into()];
        assert!(matches!(Announce::decode(&a.encode()), Err(DecodeError::Invalid(_))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = Announce::decode(&bytes);
        }
    }
}
