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
//!
//! The sender is the gossipsub message source: messages are signed (`ValidationMode::
//! Strict`), so a node cannot speak for another. A node that has not announced for
//! `peer_expiry` (5 s) is dropped from every view; a `bye` drops it at once.
//! Malformed, oversized or invalid announces are logged and dropped.

use super::{DecodeError, decode, encode};
use crate::core::{Facts, Status};
use serde::{Deserialize, Serialize};

/// The gossipsub topic. It keeps its version 1 across protocol versions: the announce only
/// ever gains optional fields, which older decoders skip, so nodes of every version still
/// see (and flag) each other.
pub(crate) const TOPIC: &str = "mesh/membership/1";

/// The version of all of mesh's wire protocols together; bumped on any incompatible change.
/// Version 2 added WebAssembly jobs to `/mesh/sched/2` and the blob protocol
/// `/mesh/blob/2`. Version 3 added `mesh run` jobs and their results, requirements on
/// jobs, node facts in the announce, and blobs up to `store::MAX_FILE` (`/mesh/sched/3`,
/// `/mesh/blob/3`). Version 4 added Python jobs and their results, and a node's Python
/// in its facts: `/mesh/sched/4`, `/mesh/blob/4`.
pub(crate) const PROTOCOL_VERSION: u32 = 4;

/// Largest accepted announce.
pub(crate) const MAX_ANNOUNCE_BYTES: usize = 1024;

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
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode(self)
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
        Ok(a)
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
            status: Status { workers: 4, busy: 2, queued: 10, tasks_done: 99 },
            bye: false,
            facts: Facts { arch: "aarch64".into(), labels: vec!["ffmpeg".into()], ..Facts::default() },
            health: Some(Health {
                temp_mc: Some(48_312),
                throttled: Some(0),
                load_centi: Some(12),
                mem_avail_mb: Some(700),
            }),
        }
    }

    #[test]
    fn round_trip() {
        let a = sample();
        assert_eq!(Announce::decode(&a.encode()).unwrap(), a);
        assert!(a.encode().len() < 256, "an announce stays small");
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
