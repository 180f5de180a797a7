//! The job journal's layout on disk, version 1: what an owner node keeps of its jobs so
//! that it resumes them after a restart (kill -9, a power cut, `systemctl restart mesh`).
//!
//! # Spec
//! Under a node's home `<home>`, only while it runs `mesh join`:
//!
//! | path | what |
//! |---|---|
//! | `<home>/jobs/` ([`DIR`]) | the journal: mode 0700 |
//! | `<home>/jobs/meta.redb` ([`META`]) | table `meta`: `"next_seq"` → the next job's number (u32) |
//! | `<home>/jobs/<seq>.redb` | one job, `<seq>` its number in 8 lowercase hex digits, mode 0600 |
//! | `<home>/jobs/<seq>.redb.lost` | a job file that could not be read, set aside (pruned like an ended job) |
//!
//! Each file is a [redb](https://docs.rs/redb) database (a copy-on-write B-tree with
//! checksummed commits: a commit is all there or not at all). A job file has two tables:
//!
//! * `job` (`&str` → bytes): `"entry"` → a CBOR [`JobEntry`] (the spec, who submitted it,
//!   retries), written and committed before the submitter hears the job's id; `"end"` →
//!   a CBOR [`EndEntry`] (the report) once the job ended, committed at once.
//! * `results` (`u64` row → bytes): the tasks' accepted (final) results, each row a CBOR
//!   array of [`ResultEntry`]s (at most [`ROW_RESULTS`] of them and about [`ROW_BYTES`]),
//!   rows numbered from 0 in the order written. Committed in batches, at most one commit a
//!   second per job, so an SD card sees a write a second rather than one per task, and a
//!   batch costs a few rows rather than a B-tree entry per task. A task has at most one
//!   result in the file; a second one, or one beyond the job's tasks, makes the file bad.
//!
//! A job without `"end"` is resumed at the node's start: every task in `results` keeps its
//! result and the others run again. Results accepted in the last second before a crash
//! were not committed: those tasks run again, and count once. A job with `"end"` is kept
//! for `mesh wait` and `mesh jobs` until the node prunes it: older than a week (`mesh join
//! --keep-jobs`), or beyond 1 GiB of ended jobs' files (`--keep-jobs-size`), oldest first.
//!
//! Only `node::journal` reads and writes these files. Records carry [`VERSION`]; a node
//! that finds a newer one leaves the file alone and says so. CBOR through `ciborium`, as on
//! the wire; records are decoded with the size bound [`MAX_RECORD`].

use crate::core::TaskReport;
use crate::id::NodeId;
use crate::job::{JobSpec, TaskOutput};
use crate::node::api::report::JobReport;
use crate::node::api::view::Submitter;
use crate::protocol::DecodeError;
use crate::protocol::membership::JobSummary;
use redb::TableDefinition;
use serde::{Deserialize, Serialize};

/// The journal's directory under a node's home.
pub(crate) const DIR: &str = "jobs";
/// The file that holds the next job number.
pub(crate) const META: &str = "meta.redb";
/// The version of the records this node writes.
pub(crate) const VERSION: u32 = 1;
/// The largest record read back: a spec and a report are bounded far below.
pub(crate) const MAX_RECORD: usize = 256 << 20;

/// Results in one row of `results`, at most.
pub(crate) const ROW_RESULTS: usize = 4096;
/// The bytes of a row, about (by the results' own estimate): a row ends once past it.
pub(crate) const ROW_BYTES: usize = 4 << 20;

/// `results` cut into rows for the `results` table.
pub(super) fn rows(results: &[ResultEntry]) -> Vec<&[ResultEntry]> {
    use crate::core::Payload;
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, r) in results.iter().enumerate() {
        bytes += r.report.outcome.as_ref().map_or_else(String::len, Payload::size_hint) + r.node.len() + 32;
        if i + 1 - start >= ROW_RESULTS || bytes >= ROW_BYTES {
            out.push(&results[start..=i]);
            (start, bytes) = (i + 1, 0);
        }
    }
    if start < results.len() {
        out.push(&results[start..]);
    }
    out
}

pub(super) const JOB: TableDefinition<&str, &[u8]> = TableDefinition::new("job");
pub(super) const RESULTS: TableDefinition<u64, &[u8]> = TableDefinition::new("results");
pub(super) const META_TABLE: TableDefinition<&str, u32> = TableDefinition::new("meta");
pub(super) const ENTRY: &str = "entry";
pub(super) const END: &str = "end";
pub(super) const NEXT_SEQ: &str = "next_seq";

/// The file name of job `seq`.
pub(crate) fn file_name(seq: u32) -> String {
    format!("{seq:08x}.redb")
}

/// The job number a file name gives, if it is a job file.
pub(crate) fn seq_of(name: &str) -> Option<u32> {
    let hex = name.strip_suffix(".redb")?;
    (hex.len() == 8).then(|| u32::from_str_radix(hex, 16).ok())?
}

/// A job as submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobEntry {
    pub version: u32,
    pub seq: u32,
    pub submitter: Submitter,
    /// Its results are of use to somebody without the submitter: it runs on, detached,
    /// when the submitter goes (`OnGone::Detach`), and so after a restart.
    pub outlives_submitter: bool,
    /// Seconds since the Unix epoch.
    pub submitted: u64,
    pub spec: JobSpec,
}

/// A task's accepted result, with what `mesh wait` shows of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ResultEntry {
    pub from: NodeId,
    /// The node's name when the result came (shared by a job's results from one node).
    pub node: std::sync::Arc<str>,
    pub attempts: u32,
    pub report: TaskReport<TaskOutput>,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EndEntry {
    pub version: u32,
    /// Seconds since the Unix epoch.
    pub at: u64,
    pub report: JobReport,
    pub summary: JobSummary,
}

/// A record read back, checked for its version.
pub(super) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    crate::protocol::decode(bytes, MAX_RECORD)
}

/// Seconds since the Unix epoch, now.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_files_are_named_by_their_number_in_eight_hex_digits() {
        assert_eq!(file_name(0x2a), "0000002a.redb");
        assert_eq!(seq_of("0000002a.redb"), Some(0x2a));
        assert_eq!(seq_of(&file_name(u32::MAX)), Some(u32::MAX));
        for not in ["meta.redb", "2a.redb", "0000002a.redb.lost", "0000002g.redb", "0000002a"] {
            assert_eq!(seq_of(not), None, "{not}");
        }
    }

    #[test]
    fn results_go_in_rows_of_bounded_count_and_size() {
        let entry = |task, out: usize| ResultEntry {
            from: NodeId(1),
            node: "a".into(),
            attempts: 1,
            report: TaskReport::new(
                task,
                Ok(TaskOutput::Bytes(serde_bytes::ByteBuf::from(vec![0; out]))),
                Default::default(),
            ),
        };
        let small: Vec<ResultEntry> = (0..10_000).map(|t| entry(t, 8)).collect();
        let rows = rows(&small);
        assert_eq!(rows.iter().map(|r| r.len()).collect::<Vec<_>>(), [4096, 4096, 1808]);
        let big: Vec<ResultEntry> = (0..10).map(|t| entry(t, 1 << 20)).collect();
        let rows = super::rows(&big);
        assert!(
            rows.iter().all(|r| r.len() <= 4),
            "about 4 MiB a row: {:?}",
            rows.iter().map(|r| r.len()).collect::<Vec<_>>()
        );
        assert_eq!(rows.concat(), big, "every result once, in order");
        assert!(super::rows(&[]).is_empty());
    }
}
