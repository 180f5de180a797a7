//! The simulated owners' journals (`restart.rs` drives them): per node, each owned job's
//! committed and pending results.

use super::setup::{SimConfig, SimSpec};
use crate::id::JobId;
use std::collections::BTreeMap;

/// Every node's journal, and the restarts still to come.
#[derive(Debug, Default)]
pub(super) struct Journals {
    pub(super) nodes: Vec<BTreeMap<JobId, Journal>>,
    /// Nodes with a commit scheduled.
    pub(super) commit_due: Vec<bool>,
    /// Restarts scheduled and not yet made: the run is not over before them.
    pub(super) pending: usize,
    /// Restarts made so far, for each restarted scheduler's seed.
    pub(super) restarts: u64,
    /// Each resumed job, with the tasks its journal had kept.
    pub(super) resumed: Vec<(JobId, u64)>,
}

/// A journalled result: the node index that ran the task, and its outcome.
pub(super) type Kept = (usize, Result<u64, String>);

/// One owned job as its owner's journal holds it.
#[derive(Debug)]
pub(super) struct Journal {
    pub(super) spec: SimSpec,
    pub(super) tasks: u64,
    pub(super) committed: BTreeMap<u64, Kept>,
    pub(super) pending: BTreeMap<u64, Kept>,
    pub(super) finished: bool,
}

impl Journals {
    pub(super) fn new(cfg: &SimConfig) -> Self {
        let n = cfg.nodes.len();
        Self { nodes: (0..n).map(|_| BTreeMap::new()).collect(), commit_due: vec![false; n], ..Self::default() }
    }
}
