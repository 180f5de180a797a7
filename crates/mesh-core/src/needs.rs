//! Who may run what: the facts a node advertises, the requirements a job states, and the
//! rules that match them (HTCondor-style matchmaking, kept small).
//!
//! * A node's [`Facts`]: its CPU architecture, OS, cores, memory, labels given with
//!   `mesh join --label`, its Python 3 version if it has one, and whether it runs native
//!   programs for anyone holding the key (`mesh join --allow-run`). Nodes gossip them with
//!   their load.
//! * A job's [`Needs`]: whether its tasks are native programs (`mesh run`, Python), whether
//!   they need Python 3, and its [`Requirement`]s (`--require label=ffmpeg`,
//!   `arch=aarch64`, `os=linux`, `mem>=2048`, `cores>=4`, `python>=3.10`).
//! * [`Needs::check`]: a node runs a task only if it meets every requirement and, for a
//!   native task, allows runs, or the job is its own and it runs its own user's programs
//!   (the short-lived node of a `mesh run`).
//! * [`Unplaceable`]: when no live node can run a job, why, counted over the nodes, as
//!   `condor_q -analyze` does: "of 5 nodes, 3 do not allow runs and 2 lack the label
//!   ffmpeg".
//!
//! Bounds: at most [`MAX_LABELS`] labels of at most [`MAX_LABEL`] characters
//! (`[A-Za-z0-9._-]`), at most [`MAX_REQUIREMENTS`] requirements per job.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Labels a node may advertise.
pub const MAX_LABELS: usize = 16;
/// The longest label, and the longest arch or OS name in a requirement.
pub const MAX_LABEL: usize = 32;
/// Requirements a job may state.
pub const MAX_REQUIREMENTS: usize = 16;

/// What a node offers, as it gossips it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// `std::env::consts::ARCH`: `x86_64`, `aarch64`, `arm`, …
    pub arch: String,
    /// `std::env::consts::OS`: `linux`, …
    pub os: String,
    pub cores: u32,
    /// Physical memory, in MiB.
    pub mem_mb: u64,
    /// Runs native programs (`mesh run`) for anyone holding the key.
    pub allow_run: bool,
    pub labels: Vec<String>,
    /// The version of its Python 3, if it has one (it runs Python tasks with it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub python: Option<PyVersion>,
}

/// A Python version, major and minor: what decides whether a node can run a job's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PyVersion {
    pub major: u8,
    pub minor: u8,
}

impl fmt::Display for PyVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for PyVersion {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        let (major, minor) = s.trim().split_once('.').ok_or(())?;
        let minor = minor.split('.').next().ok_or(())?;
        Ok(Self { major: major.parse().map_err(|_| ())?, minor: minor.parse().map_err(|_| ())? })
    }
}

impl Facts {
    /// Checks facts that came from a peer against the bounds.
    pub fn is_valid(&self) -> bool {
        self.labels.len() <= MAX_LABELS
            && self.labels.iter().all(|l| valid_name(l))
            && self.arch.len() <= MAX_LABEL
            && self.os.len() <= MAX_LABEL
    }
}

/// One thing a job requires of the node that runs its tasks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Requirement {
    /// `label=NAME`: the node was started with `--label NAME`.
    Label(String),
    /// `arch=NAME`, as `std::env::consts::ARCH` names it.
    Arch(String),
    /// `os=NAME`, as `std::env::consts::OS` names it.
    Os(String),
    /// `mem>=MIB`: at least this much physical memory.
    MemAtLeast(u64),
    /// `cores>=N`.
    CoresAtLeast(u32),
    /// `python>=3.10`: the node's Python is at least this version.
    PythonAtLeast(PyVersion),
}

impl Requirement {
    pub fn met_by(&self, f: &Facts) -> bool {
        match self {
            Self::Label(l) => f.labels.iter().any(|x| x == l),
            Self::Arch(a) => f.arch == *a,
            Self::Os(o) => f.os == *o,
            Self::MemAtLeast(m) => f.mem_mb >= *m,
            Self::CoresAtLeast(c) => f.cores >= *c,
            Self::PythonAtLeast(v) => f.python.is_some_and(|p| p >= *v),
        }
    }

    fn is_valid(&self) -> bool {
        match self {
            Self::Label(s) | Self::Arch(s) | Self::Os(s) => valid_name(s),
            Self::MemAtLeast(_) | Self::CoresAtLeast(_) | Self::PythonAtLeast(_) => true,
        }
    }

    /// How the nodes that fail it are described: "lack the label ffmpeg".
    fn lacking(&self) -> String {
        match self {
            Self::Label(l) => format!("lack the label {l}"),
            Self::Arch(a) => format!("are not {a}"),
            Self::Os(o) => format!("do not run {o}"),
            Self::MemAtLeast(m) => format!("have less than {m} MiB of memory"),
            Self::CoresAtLeast(c) => format!("have fewer than {c} cores"),
            Self::PythonAtLeast(v) => format!("have no Python {v} or newer"),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Label(l) => write!(f, "label={l}"),
            Self::Arch(a) => write!(f, "arch={a}"),
            Self::Os(o) => write!(f, "os={o}"),
            Self::MemAtLeast(m) => write!(f, "mem>={m}"),
            Self::CoresAtLeast(c) => write!(f, "cores>={c}"),
            Self::PythonAtLeast(v) => write!(f, "python>={v}"),
        }
    }
}

/// A `--require` that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is not a requirement; use label=NAME, arch=NAME, os=NAME, mem>=MIB, cores>=N or \
     python>=3.N (names of at most 32 of A-Z a-z 0-9 . _ -)"
)]
pub struct BadRequirement(String);

impl std::str::FromStr for Requirement {
    type Err = BadRequirement;

    fn from_str(s: &str) -> Result<Self, BadRequirement> {
        let bad = || BadRequirement(s.to_string());
        let r = if let Some((key, n)) = s.split_once(">=") {
            let n = n.trim();
            match key.trim() {
                "mem" => Self::MemAtLeast(n.parse().map_err(|_| bad())?),
                "cores" => Self::CoresAtLeast(n.parse().map_err(|_| bad())?),
                "python" => Self::PythonAtLeast(n.parse().map_err(|()| bad())?),
                _ => return Err(bad()),
            }
        } else if let Some((key, v)) = s.split_once('=') {
            let v = v.trim().to_string();
            match key.trim() {
                "label" => Self::Label(v),
                "arch" => Self::Arch(v),
                "os" => Self::Os(v),
                _ => return Err(bad()),
            }
        } else {
            return Err(bad());
        };
        if r.is_valid() { Ok(r) } else { Err(bad()) }
    }
}

/// What a job asks of a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// Its tasks are native programs: only nodes that allow runs take them.
    pub native: bool,
    /// Its tasks are Python calls: only nodes with a Python 3 take them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub python: bool,
    pub requirements: Vec<Requirement>,
}

/// Why a node cannot run a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The job's tasks are native programs and the node does not allow runs.
    NoRuns,
    /// The job's tasks are Python calls and the node has no Python 3.
    NoPython,
    /// The node fails this requirement.
    Lacks(Requirement),
    /// The node could run the job but takes no tasks now (`--hours`, `--when-idle`).
    NotLending,
}

impl Needs {
    /// Needs nothing: runs anywhere.
    pub const NONE: Self = Self { native: false, python: false, requirements: Vec::new() };

    /// A sandboxed job's (WebAssembly): only its requirements.
    pub fn sandboxed(requirements: Vec<Requirement>) -> Self {
        Self { requirements, ..Self::NONE }
    }

    /// A native program's (`mesh run`): a node that allows runs, and its requirements.
    pub fn native(requirements: Vec<Requirement>) -> Self {
        Self { native: true, requirements, ..Self::NONE }
    }

    /// A Python call's: a node that allows runs and has Python 3, and its requirements.
    pub fn python(requirements: Vec<Requirement>) -> Self {
        Self { native: true, python: true, requirements }
    }

    /// Whether a node with `facts` may run this job's tasks. `runs_own_native` says the
    /// job is the node's own and the node runs its own user's programs.
    pub fn check(&self, facts: &Facts, runs_own_native: bool) -> Result<(), Mismatch> {
        if self.native && !facts.allow_run && !runs_own_native {
            return Err(Mismatch::NoRuns);
        }
        if self.python && facts.python.is_none() {
            return Err(Mismatch::NoPython);
        }
        match self.requirements.iter().find(|r| !r.met_by(facts)) {
            Some(r) => Err(Mismatch::Lacks(r.clone())),
            None => Ok(()),
        }
    }

    /// Checks needs that came from a peer or the control socket against the bounds.
    pub fn is_valid(&self) -> bool {
        self.requirements.len() <= MAX_REQUIREMENTS && self.requirements.iter().all(Requirement::is_valid)
    }
}

/// Why no live node can run a job: of how many nodes, how many fail for which reason
/// (each node counted once, by its first reason).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unplaceable {
    pub nodes: usize,
    pub no_runs: usize,
    pub no_python: usize,
    pub lacking: Vec<(Requirement, usize)>,
    /// Nodes that could run the job but take no tasks now.
    pub not_lending: usize,
}

impl Unplaceable {
    /// The analysis over every node's answer, or `None` if some node can run the job.
    pub fn of(answers: impl IntoIterator<Item = Result<(), Mismatch>>) -> Option<Self> {
        let mut u = Self { nodes: 0, no_runs: 0, no_python: 0, lacking: Vec::new(), not_lending: 0 };
        for a in answers {
            u.nodes += 1;
            match a {
                Ok(()) => return None,
                Err(Mismatch::NoRuns) => u.no_runs += 1,
                Err(Mismatch::NoPython) => u.no_python += 1,
                Err(Mismatch::NotLending) => u.not_lending += 1,
                Err(Mismatch::Lacks(r)) => match u.lacking.iter_mut().find(|(x, _)| *x == r) {
                    Some((_, n)) => *n += 1,
                    None => u.lacking.push((r, 1)),
                },
            }
        }
        Some(u)
    }

    /// Whether the job only waits for a node to lend again (its hours come, its machine
    /// goes idle): some node that meets its needs does not take tasks now.
    pub fn is_temporary(&self) -> bool {
        self.not_lending > 0
    }
}

impl fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let node = |n: usize| if n == 1 { "node" } else { "nodes" };
        let mut parts = Vec::new();
        if self.no_runs > 0 {
            let verb = if self.no_runs == 1 { "does" } else { "do" };
            parts.push(format!("{} {verb} not allow runs (mesh join --allow-run)", self.no_runs));
        }
        if self.no_python > 0 {
            let verb = if self.no_python == 1 { "has" } else { "have" };
            parts.push(format!("{} {verb} no Python 3 (python3, or MESH_PYTHON)", self.no_python));
        }
        for (r, n) in &self.lacking {
            parts.push(format!("{n} {}", r.lacking()));
        }
        if self.not_lending > 0 {
            let verb = if self.not_lending == 1 { "takes" } else { "take" };
            parts.push(format!("{} {verb} no tasks now (mesh join --hours or --when-idle)", self.not_lending));
        }
        let list = match parts.len() {
            0 => String::from("none can run it"),
            1 => parts.remove(0),
            _ => {
                let last = parts.pop().unwrap_or_default();
                format!("{} and {last}", parts.join(", "))
            }
        };
        write!(f, "of {} {}, {list}", self.nodes, node(self.nodes))
    }
}

/// A label, arch or OS name: 1 to [`MAX_LABEL`] of `[A-Za-z0-9._-]`.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LABEL && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(allow_run: bool, labels: &[&str]) -> Facts {
        Facts {
            arch: "x86_64".into(),
            os: "linux".into(),
            cores: 2,
            mem_mb: 1024,
            allow_run,
            labels: labels.iter().map(|l| l.to_string()).collect(),
            python: Some(PyVersion { major: 3, minor: 11 }),
        }
    }

    #[test]
    fn requirements_parse_print_and_refuse() {
        for s in ["label=ffmpeg", "arch=aarch64", "os=linux", "mem>=2048", "cores>=4"] {
            assert_eq!(s.parse::<Requirement>().unwrap().to_string(), s);
        }
        assert_eq!(" mem >= 512 ".parse::<Requirement>(), Ok(Requirement::MemAtLeast(512)));
        for bad in ["ffmpeg", "label=", "label=a b", "color=red", "mem>=lots", "mem=5", "arch>=3", &"x".repeat(40)] {
            assert!(bad.parse::<Requirement>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_native_job_needs_runs_allowed_or_its_own_node() {
        let run = Needs::native(vec![Requirement::Label("ffmpeg".into())]);
        assert_eq!(run.check(&facts(false, &["ffmpeg"]), false), Err(Mismatch::NoRuns));
        assert_eq!(run.check(&facts(false, &["ffmpeg"]), true), Ok(()), "its own submitter's node");
        assert_eq!(run.check(&facts(true, &[]), false), Err(Mismatch::Lacks(Requirement::Label("ffmpeg".into()))));
        assert_eq!(run.check(&facts(true, &["gpu", "ffmpeg"]), false), Ok(()));
        let wasm = Needs::sandboxed(vec![Requirement::MemAtLeast(2048)]);
        assert!(wasm.check(&facts(true, &[]), true).is_err(), "requirements bind a node's own jobs too");
        assert_eq!(Needs::NONE.check(&Facts::default(), false), Ok(()));
    }

    #[test]
    fn unplaceable_says_why_like_condor_q_analyze() {
        let run = Needs::native(vec![Requirement::Label("ffmpeg".into())]);
        let nodes =
            [facts(false, &[]), facts(false, &["ffmpeg"]), facts(false, &[]), facts(true, &[]), facts(true, &[])];
        let why = Unplaceable::of(nodes.iter().map(|f| run.check(f, false))).unwrap();
        assert_eq!(
            why.to_string(),
            "of 5 nodes, 3 do not allow runs (mesh join --allow-run) and 2 lack the label ffmpeg"
        );
        let one = Unplaceable::of([run.check(&facts(false, &[]), false)]).unwrap();
        assert_eq!(one.to_string(), "of 1 node, 1 does not allow runs (mesh join --allow-run)");
        assert!(Unplaceable::of(nodes.iter().map(|f| run.check(f, true))).is_none(), "some node can");
        assert_eq!(Unplaceable::of([]).unwrap().to_string(), "of 0 nodes, none can run it");
    }
}
