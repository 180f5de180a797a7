//! Every command's arguments, as clap parses them into checked types: a wrong argument
//! fails here, before any work starts, with exit status 2 and a message that names it.

use crate::core::Hours;
use crate::job::wasm::{DEFAULT_MEMORY_MB, DEFAULT_RETRIES, DEFAULT_TIMEOUT, MAX_MEMORY_MB, MAX_RETRIES, MAX_TIMEOUT};
use crate::job::{Algo, Target, parse_target};
use crate::node::JobRef;
use clap::{Args, Parser, Subcommand};
use libp2p::Multiaddr;

mod common;
mod run;
use common::parse_days;
pub(crate) use common::{KeyArgs, MAX_WORKERS, SubmitOpts};
pub(crate) use run::RunArgs;
use std::path::PathBuf;

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

impl Cli {
    /// Whether the command is the long-running `mesh join`, whose log tells of the mesh.
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, Command::Join(_))
    }
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
    /// List the jobs the mesh's nodes own: running, and finished in the last minutes.
    ///
    /// Each with its id, kind, submitter (user@node), state, progress, age and owner node.
    /// A job belongs to its owner node, not to the terminal that submitted it.
    Jobs(JobsArgs),
    /// Follow a job to its end and print what its submitter would have: its results in
    /// order, returned files, the statistics table. Exits 0 or 1 as the job did.
    ///
    /// Works on a running job (from its start, then as it goes) and on one that finished
    /// in the last minutes. Ctrl-C stops waiting; the job runs on. On any node: one that
    /// does not own the job asks its owner. Only the job's submitter, the owner node's own
    /// user or root may wait for it there; from another node, a user of the submitter's
    /// name.
    Wait(WaitArgs),
    /// Cancel a job everywhere: its queued tasks are dropped and its running programs end.
    ///
    /// On any node, as for `mesh wait`. Only the job's submitter, the owner node's own user
    /// or root may cancel it there; from another node, a user of the submitter's name.
    Cancel(CancelArgs),
    /// Run a program once per input on the mesh, the way GNU parallel does.
    ///
    /// `mesh run [OPTIONS] -- COMMAND [ARGS...] ::: INPUT...` or `:::: FILE` (one input
    /// per line, `-` for stdin), or inputs on stdin. `{}` `{.}` `{/}` `{//}` `{/.}` `{#}`
    /// are replaced as in GNU parallel; without them the input is the last argument. The
    /// command runs directly, not through a shell. Tasks run on nodes started with `mesh
    /// join --allow-run`, and on this machine's own node: whoever holds the mesh key may
    /// run programs on those nodes, as with Parallel Python or GNU parallel over ssh.
    Run(Box<RunArgs>),
    /// Measure the mesh: each node's speed, the speedup and efficiency, the overhead per task.
    ///
    /// Runs a calibration task on this machine, then a heavy job of demo tasks and a job of
    /// 10,000 tiny tasks on the mesh (or with --local, on this machine only).
    Bench(BenchArgs),
    /// A node for one program's session; ends when its stdin closes.
    ///
    /// Libraries start one when no node runs under the home (the Python package does): it
    /// serves the control socket, runs its user's own jobs here and on the mesh (with
    /// --local, here only), and runs nothing for others.
    Session(SessionArgs),
    /// Look after this home's blob store (the modules, inputs and files jobs use).
    #[command(subcommand)]
    Store(StoreCmd),
    /// Make a shared key for a mesh.
    #[command(subcommand)]
    Key(KeyCmd),
    /// Print a shell's completion script for mesh.
    ///
    /// bash: `mesh completions bash > /etc/bash_completion.d/mesh`; zsh: `mesh completions
    /// zsh > "${fpath[1]}/_mesh"`; fish: `mesh completions fish >
    /// ~/.config/fish/completions/mesh.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print mesh's manual page (roff), or write one per command into a directory.
    ///
    /// `mesh manpage | man -l -` reads it now; `mesh manpage --dir /usr/share/man/man1`
    /// installs mesh.1 and mesh-run.1, mesh-join.1 and the others.
    Manpage {
        /// Write mesh.1 and a page for each command here instead of printing mesh.1.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct JoinArgs {
    /// This node's name [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Worker threads offered to the mesh [default: all cores].
    #[arg(long, short = 'w', value_name = "W", value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS))]
    pub workers: Option<u32>,

    /// Where to listen: a PORT, IP:PORT or a multiaddr [default: 0.0.0.0:4877, or any free
    /// port if 4877 is taken].
    #[arg(long, value_name = "ADDR", value_parser = parse_listen)]
    pub listen: Option<libp2p::Multiaddr>,

    /// A peer to connect to directly, for networks without multicast (repeatable),
    /// e.g. /ip4/192.0.2.7/tcp/4877.
    #[arg(long = "peer", value_name = "MULTIADDR", value_parser = parse_peer)]
    pub peers: Vec<libp2p::Multiaddr>,

    /// Do not use mDNS (only --peer addresses are dialed).
    #[arg(long)]
    pub no_mdns: bool,

    /// Serve the live dashboard, its JSON API and Prometheus /metrics here: IP:PORT or a
    /// PORT on 127.0.0.1. It is read-only and shows no key, but any address other than
    /// loopback (e.g. 0.0.0.0:4880) shows the mesh to the LAN [default: 127.0.0.1:4880;
    /// if that is taken, the node runs without one].
    #[arg(long, value_name = "ADDR", value_parser = parse_http, conflicts_with = "no_http")]
    pub http: Option<std::net::SocketAddr>,

    /// Serve no dashboard.
    #[arg(long)]
    pub no_http: bool,

    /// A host name the dashboard answers for, besides its IP addresses, localhost, the
    /// host name and HOSTNAME.local (repeatable; e.g. the name Prometheus scrapes it by).
    /// Requests for other names get 421: a web page cannot read it by rebinding its DNS.
    #[arg(long = "http-name", value_name = "NAME", conflicts_with = "no_http")]
    pub http_names: Vec<String>,

    /// Run native programs (`mesh run`) for anyone who holds the key. This is a trust
    /// decision, as with Parallel Python and GNU parallel over ssh: the key lets them run
    /// code as this node's user. Without it, this node runs only WebAssembly tasks
    /// (sandboxed) and the primes demo for others.
    #[arg(long)]
    pub allow_run: bool,

    /// A label for `--require label=NAME` (repeatable), e.g. --label ffmpeg --label gpu.
    #[arg(long = "label", value_name = "NAME", value_parser = parse_label)]
    pub labels: Vec<String>,

    /// Let the members of this process's group use the node's control socket (mode 0660),
    /// as the mesh service does for the `mesh` group: `mesh peers` and `mesh submit` work
    /// for them. Their jobs are not this node's own: their programs run here only with
    /// --allow-run.
    #[arg(long)]
    pub control_group: bool,

    /// Lend this machine's workers only in these hours of local time, e.g. 18:00-08:00
    /// (it may wrap past midnight). Outside them the node takes no new tasks, finishes
    /// the ones it runs, hands what it holds to the others, and stays a member.
    #[arg(long, value_name = "HH:MM-HH:MM")]
    pub hours: Option<Hours>,

    /// Lend the workers only while the machine's own work is light: its load beyond the
    /// node's own above 0.5 stops new tasks, at most 0.3 starts them again (HTCondor's
    /// defaults).
    #[arg(long)]
    pub when_idle: bool,

    /// Run the workers, and the programs they start, this much nicer than the node, so a
    /// machine's owner does not notice them; 0 for the same priority.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(i32).range(0..=19))]
    pub nice: i32,

    /// Keep no journal of this node's jobs under <home>/jobs: they then end with the
    /// node, as before mesh 0.2 (a home on a RAM disk; measuring the journal's cost).
    #[arg(long)]
    pub no_journal: bool,

    /// Keep ended jobs' results on disk this many days, for `mesh wait` and `mesh jobs`.
    #[arg(long, value_name = "DAYS", default_value_t = 7.0, value_parser = parse_days)]
    pub keep_jobs: f64,

    /// Keep at most this many MiB of ended jobs on disk; the oldest go first.
    #[arg(long, value_name = "MIB", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_jobs_mib: u64,

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

/// `mesh session`: see `cli::session`.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Worker threads on this node [default: all cores].
    #[arg(long, short = 'w', value_name = "W", value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS))]
    pub workers: Option<u32>,

    /// This node's name in statistics [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Use only this machine's cores: no network.
    #[arg(long)]
    pub local: bool,

    /// A peer to connect to directly, for networks without multicast (repeatable).
    #[arg(long = "peer", value_name = "MULTIADDR", value_parser = parse_peer)]
    pub peers: Vec<libp2p::Multiaddr>,

    /// Remove the home directory when the session ends (a home made for it).
    #[arg(long)]
    pub remove_home: bool,

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
    Wasm(WasmArgs),
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

/// `mesh jobs`: see `cli::jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Print one JSON array on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `mesh wait`: see `cli::jobs`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// The job's id, as `--detach` or `mesh jobs` printed it (like 3f2a9c1e-7).
    #[arg(value_name = "JOB", value_parser = parse_job)]
    pub job: JobRef,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Where a `mesh run` job's returned files and outputs go [default: .].
    #[arg(long, value_name = "DIR")]
    pub results: Option<PathBuf>,
}

/// `mesh cancel`: see `cli::jobs`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The job's id, as `--detach` or `mesh jobs` printed it.
    #[arg(value_name = "JOB", value_parser = parse_job)]
    pub job: JobRef,
}

fn parse_job(s: &str) -> Result<JobRef, String> {
    s.parse().map_err(|e: crate::node::BadJobRef| e.to_string())
}

/// `mesh bench`: see `cli::bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Demo tasks in the heavy job (each about as long as the calibration task).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=crate::job::MAX_RANGE_ITEMS))]
    pub tasks: u64,

    #[command(flatten)]
    pub common: SubmitOpts,
}

/// `mesh submit wasm`: see `cli::wasm`.
#[derive(Debug, Args)]
pub struct WasmArgs {
    /// The module: WASI preview 1 command, binary (.wasm) or text (.wat).
    #[arg(value_name = "MODULE")]
    pub module: PathBuf,

    /// `-`: read the inputs from stdin (the default when stdin is not a terminal).
    #[arg(value_name = "-", value_parser = only_dash)]
    pub stdin: Option<String>,

    /// Read the inputs from FILE, one task per line (`-` for stdin).
    #[arg(long, short = 'i', value_name = "FILE", conflicts_with = "stdin")]
    pub input_file: Option<PathBuf>,

    /// Run time allowed per task, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIMEOUT.as_secs_f64(), value_parser = parse_timeout)]
    pub timeout: f64,

    /// Memory allowed per task, in MiB.
    #[arg(long, value_name = "MB", default_value_t = DEFAULT_MEMORY_MB,
          value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_MEMORY_MB)))]
    pub memory: u32,

    /// Times a failed task is run again, on another node when there is one.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_RETRIES,
          value_parser = clap::value_parser!(u32).range(0..=i64::from(MAX_RETRIES)))]
    pub retries: u32,

    /// A requirement of the nodes that run its tasks (repeatable): label=NAME,
    /// arch=NAME, os=NAME, mem>=MIB or cores>=N.
    #[arg(long = "require", value_name = "REQ")]
    pub require: Vec<crate::core::Requirement>,

    #[command(flatten)]
    pub common: SubmitOpts,
}

fn only_dash(s: &str) -> Result<String, String> {
    if s == "-" { Ok(s.into()) } else { Err(format!("'{s}' is not '-'; give an input file with --input-file {s}")) }
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    let max = MAX_TIMEOUT.as_secs_f64();
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= max => Ok(t),
        _ => Err(format!("'{s}' is not a timeout; give seconds, more than 0 and at most {max}")),
    }
}

/// Parses `--label`: 1 to 32 of A-Z a-z 0-9 . _ -.
fn parse_label(s: &str) -> Result<String, String> {
    if crate::core::valid_name(s) {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not a label; use 1 to 32 of A-Z a-z 0-9 . _ -"))
    }
}

/// Parses `--listen`: a port, `IP:PORT`, or a multiaddr.
pub(crate) fn parse_listen(s: &str) -> Result<Multiaddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(tcp_addr("0.0.0.0".parse().expect("a valid address"), port));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(tcp_addr(sa.ip(), sa.port()));
    }
    s.parse::<Multiaddr>().map_err(|_| {
        format!("'{s}' is not a listen address; use a port (4877), IP:PORT or a multiaddr (/ip4/0.0.0.0/tcp/4877)")
    })
}

/// Parses `--peer`: a multiaddr, or `IP:PORT` for convenience.
pub(crate) fn parse_peer(s: &str) -> Result<Multiaddr, String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(tcp_addr(sa.ip(), sa.port()));
    }
    s.parse::<Multiaddr>()
        .map_err(|_| format!("'{s}' is not a peer address; use IP:PORT or a multiaddr like /ip4/192.0.2.7/tcp/4877"))
}

pub(crate) fn tcp_addr(ip: std::net::IpAddr, port: u16) -> Multiaddr {
    let proto = if ip.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{ip}/tcp/{port}").parse().expect("a valid tcp multiaddr")
}

/// `--http`: IP:PORT, or a port on loopback.
fn parse_http(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("'{s}' is not IP:PORT or a PORT (e.g. 0.0.0.0:4880 for the LAN)"))
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Print a new random key (256 bits) on stdout: put it in a file on every node, mode
    /// 0600, and pass --key-file (the Pi's service reads /etc/mesh/key). Unlike a
    /// passphrase, it cannot be guessed from the fingerprint that mDNS shows the LAN.
    New,
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Check every blob against its hash. Damaged ones are removed (a node fetches them
    /// again when a task needs them); exits 1 if any was.
    Check,
}
