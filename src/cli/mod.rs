//! Command-line interface: clap definitions and the commands they run.
//!
//! Arguments are parsed into checked types here (`job::parse_target`, `PrimesJob::new`), so
//! bad input fails before any work starts, with exit status 2 and a message that names the
//! argument. A command then maps its arguments to a `node::NodeConfig` and a job; the node
//! layer does the rest. Printing happens only in `output`. [`Exit`] says how a command
//! ended.

mod bench;
mod join;
mod output;
mod wasm;

use crate::job::{Algo, JobSpec, PrimesJob, Split, Target, parse_target};
use crate::node::{self, JobReport, NetConfig, NodeConfig, NodeError};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};

/// How a command ended: the process's exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// A job ran, but tasks failed for good (or the node running it stopped).
    Failed,
    /// Bad arguments, or a set-up error (a home, a key file, a port).
    Usage,
    /// Ctrl-C or SIGTERM during a job.
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::Failed => 1,
            Self::Usage => 2,
            Self::Interrupted => 130,
        }
    }

    /// The status of a command that ended with `e`: a job's failure or an interruption
    /// by its type; anything else is a usage or set-up error.
    pub fn of_error(e: &anyhow::Error) -> Self {
        match (e.downcast_ref::<NodeError>(), e.downcast_ref::<JobFailed>()) {
            (Some(NodeError::Interrupted), _) => Self::Interrupted,
            (Some(NodeError::Stopped(_) | NodeError::JobDropped), _) | (None, Some(_)) => Self::Failed,
            (None, None) => Self::Usage,
        }
    }
}

/// A job ran to its end but some tasks failed: exit status 1.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {tasks} tasks failed")]
pub struct JobFailed {
    pub failed: u64,
    pub tasks: u64,
}

/// Turn the computers on one LAN into one compute pool.
#[derive(Debug, Parser)]
#[command(name = "mesh", version, about, max_term_width = 100)]
pub struct Cli {
    /// Directory for the node's identity key and caches.
    #[arg(long, global = true, env = "MESH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug). MESH_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make this machine a node of the mesh; runs in the foreground until SIGINT/SIGTERM.
    Join(JoinArgs),
    /// Show the mesh as the local node sees it, or browse the LAN if no node runs here.
    Peers(PeersArgs),
    /// Run a job and print its results and statistics.
    #[command(subcommand)]
    Submit(SubmitJob),
    /// Measure the mesh: each node's speed, the speedup and efficiency, the overhead per task.
    ///
    /// Runs a calibration task on this machine, then a heavy job of demo tasks and a job of
    /// 10,000 tiny tasks on the mesh (or with --local, on this machine only).
    Bench(bench::BenchArgs),
}

/// The shared key, Parallel Python's `-s` secret. Nodes with different keys never connect.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Passphrase of the mesh. Without one, any machine on the LAN can join.
    #[arg(long, env = "MESH_KEY", hide_env_values = true, value_name = "PASSPHRASE", conflicts_with = "key_file")]
    pub key: Option<String>,

    /// Read the passphrase from a file (surrounding white space is ignored).
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// This node's name [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Worker threads offered to the mesh [default: all cores].
    #[arg(long, short = 'w', value_name = "W", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// Where to listen: a PORT, IP:PORT or a multiaddr [default: 0.0.0.0:4877, or any free
    /// port if 4877 is taken].
    #[arg(long, value_name = "ADDR", value_parser = join::parse_listen)]
    pub listen: Option<libp2p::Multiaddr>,

    /// A peer to connect to directly, for networks without multicast (repeatable),
    /// e.g. /ip4/192.0.2.7/tcp/4877.
    #[arg(long = "peer", value_name = "MULTIADDR", value_parser = join::parse_peer)]
    pub peers: Vec<libp2p::Multiaddr>,

    /// Do not use mDNS (only --peer addresses are dialed).
    #[arg(long)]
    pub no_mdns: bool,

    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Args)]
pub struct PeersArgs {
    /// Print a JSON array on stdout instead of a table.
    #[arg(long)]
    pub json: bool,

    /// Seconds to browse the LAN when no node runs under --home.
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub browse: f64,

    #[command(flatten)]
    pub key: KeyArgs,
}

#[derive(Debug, Subcommand)]
pub enum SubmitJob {
    /// Sum the primes below N, or below each n of an inclusive range A..B.
    ///
    /// `mesh submit primes 100999` prints one sum; `mesh submit primes 100000..100999
    /// --algo trial` reproduces the Parallel Python cluster demo, one task per n.
    Primes(PrimesArgs),
    /// Run a WebAssembly module once per input line, on the mesh, sandboxed.
    ///
    /// MODULE is a WASI preview 1 command module (.wasm) or WebAssembly text (.wat). Each
    /// line of the input is one task: the module reads it on stdin and writes its result
    /// to stdout. Results print in input order, one per line. The module gets no files,
    /// no network and no environment. `seq 1 100 | mesh submit wasm square.wasm`
    Wasm(wasm::WasmArgs),
}

#[derive(Debug, Args)]
pub struct PrimesArgs {
    /// N (sum of the primes below N), or A..B for every n from A to B inclusive.
    /// Accepts 100999, 1_000_000, 1e9; N up to 1e14.
    #[arg(value_name = "N|A..B", value_parser = parse_target, allow_hyphen_values = true)]
    pub target: Target,

    /// Kernel: `sieve` is fast and exact; `trial` is the demo's trial division, slow on
    /// purpose for measuring clusters.
    #[arg(long, value_enum, default_value_t = Algo::Sieve)]
    pub algo: Algo,

    /// Split a single N into this many tasks [default: about 16 per worker].
    #[arg(long, value_name = "T", conflicts_with = "task_size")]
    pub tasks: Option<u64>,

    /// Split a single N into tasks of this many numbers.
    #[arg(long, value_name = "S")]
    pub task_size: Option<u64>,

    #[command(flatten)]
    pub common: SubmitOpts,
}

/// Options every `submit` takes.
#[derive(Debug, Args)]
pub struct SubmitOpts {
    /// Worker threads on this node [default: all cores].
    #[arg(long, short = 'w', value_name = "W", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub workers: Option<u32>,

    /// This node's name in statistics [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Use only this machine's cores: no node, no network.
    #[arg(long)]
    pub local: bool,

    #[command(flatten)]
    pub key: KeyArgs,
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<Exit> {
    let home = cli.home.unwrap_or_else(node::default_home);
    match cli.command {
        Command::Submit(SubmitJob::Primes(args)) => submit_primes(&home, args),
        Command::Submit(SubmitJob::Wasm(args)) => wasm::submit(home, args),
        Command::Bench(args) => bench::bench(&home, args),
        Command::Join(args) => join::join(home, args),
        Command::Peers(args) => join::peers(home, args),
    }
}

fn submit_primes(home: &Path, args: PrimesArgs) -> Result<Exit> {
    let workers = args.common.workers.unwrap_or_else(default_workers);
    let split = match (args.tasks, args.task_size) {
        (Some(t), _) => Split::Tasks(t),
        (None, Some(s)) => Split::Size(s),
        (None, None) => Split::Auto { workers },
    };
    let job = PrimesJob::new(args.target, args.algo, split).map_err(output::usage)?;
    let report = run_job(home, &args.common, JobSpec::Primes(job.clone()))?;
    output::job_report(&job, &report, args.common.json).context("writing the results")?;
    exit_of(&report)
}

/// Runs a job as `opts` say: on this machine only (`--local`: a node with no network), or
/// on the mesh (through the node under `home`, or a node of this process for the job's
/// length). Shows progress on the way; Ctrl-C cancels the job.
fn run_job(home: &Path, opts: &SubmitOpts, job: JobSpec) -> Result<JobReport> {
    let network = match opts.local {
        true => None,
        false => Some(NetConfig {
            key: join::shared_key(&opts.key)?,
            listen: join::any_port(),
            static_peers: Vec::new(),
            mdns: true,
        }),
    };
    let cfg = NodeConfig {
        name: opts.name.clone().unwrap_or_else(node::hostname),
        home: home.to_path_buf(),
        workers: opts.workers.unwrap_or_else(default_workers),
        network,
        control: false,
    };
    let mut bar = output::Progress::new(opts.json);
    let interrupted = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = runtime()?.block_on(node::run_job(cfg, job, |p| bar.update(p.done, p.total), interrupted))?;
    bar.finish();
    Ok(report)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

/// Success, or [`JobFailed`] when tasks failed for good.
fn exit_of(report: &JobReport) -> Result<Exit> {
    if report.failed.is_empty() {
        Ok(Exit::Success)
    } else {
        Err(JobFailed { failed: report.failed.len() as u64, tasks: report.tasks }.into())
    }
}

fn default_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}
