//! What a simulation is made of: its nodes, its configuration, the job spec it runs and
//! what it saw of each job.

use crate::{Config, Facts, Halt, Needs};
use std::collections::BTreeMap;
use std::time::Duration;

/// The job spec in the simulator: a salt that makes each job's outputs distinct, what a
/// node needs to run its tasks, and its halt rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimSpec {
    pub salt: u64,
    pub needs: Needs,
    pub halt: Option<Halt>,
}

impl crate::Spec for SimSpec {
    fn needs(&self) -> &Needs {
        &self.needs
    }

    fn halt(&self) -> Option<Halt> {
        self.halt
    }
}

#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub workers: u32,
    /// Relative speed: a task of cost c takes c / speed.
    pub speed: f64,
    /// What the node offers: by default everything a job of the simulator may need.
    pub facts: Facts,
}

impl NodeSpec {
    /// A node that allows runs and has no labels.
    pub fn new(workers: u32, speed: f64) -> Self {
        Self { workers, speed, facts: Facts { allow_run: true, ..Facts::default() } }
    }
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub nodes: Vec<NodeSpec>,
    /// Uniform one-way latency range.
    pub latency: (Duration, Duration),
    /// Probability that any one message copy is lost.
    pub loss: f64,
    /// Uniform task cost range at speed 1.
    pub task_cost: (Duration, Duration),
    pub seed: u64,
    pub core: Config,
    /// Nodes on which every task fails.
    pub broken: Vec<usize>,
    /// Nodes on which every task fails by the node's own fault (`Blame::Node`: a full
    /// disk, say).
    pub faulty: Vec<usize>,
    /// When non-zero, tasks whose index is a multiple of it fail on every node.
    pub poison_every: u64,
    /// Retries of a failed task, for every job.
    pub retries: u32,
    /// The LAN of each node, for meshes over several LANs joined by routers (missing
    /// entries: LAN 0). Nodes see peers on other LANs as remote.
    pub lans: Vec<usize>,
    /// Latency added to each message between two LANs, one way.
    pub wan_latency: Duration,
    /// Owners journal their jobs, committing results this often (`restart.rs`); a node
    /// restarted with `Sim::restart_at` resumes them. None: no journal.
    pub journal: Option<Duration>,
}

impl SimConfig {
    pub fn new(nodes: Vec<NodeSpec>, seed: u64) -> Self {
        Self {
            nodes,
            latency: (Duration::from_micros(200), Duration::from_millis(2)),
            loss: 0.0,
            task_cost: (Duration::from_millis(5), Duration::from_millis(15)),
            seed,
            core: Config::default(),
            broken: Vec::new(),
            faulty: Vec::new(),
            poison_every: 0,
            retries: 0,
            lans: Vec::new(),
            wan_latency: Duration::ZERO,
            journal: None,
        }
    }
}

impl SimConfig {
    /// The LAN a node is on (`lans`; all on LAN 0 by default).
    pub(super) fn lan(&self, node: usize) -> usize {
        self.lans.get(node).copied().unwrap_or(0)
    }
}

/// What the simulator saw of one job at its owner.
#[derive(Debug, Clone)]
pub struct JobOutcome {
    pub owner: usize,
    pub tasks: u64,
    pub expected: u64,
    pub sum: u64,
    /// How many times each task was accepted: must end as all ones.
    pub accepted: Vec<u32>,
    /// Tasks accepted as failed for good.
    pub failed: Vec<u64>,
    /// How many times each task was given another run after failing.
    pub retried: Vec<u32>,
    /// Accepted tasks per node index that ran them.
    pub per_node: BTreeMap<usize, u64>,
    pub finished_at: Option<Duration>,
    /// It finished early under its halt rule.
    pub halted: bool,
}
