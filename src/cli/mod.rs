//! Command-line interface: clap definitions (`args`) and the commands they run
//! (`submit`, `wasm`, `run`, `bench`, `join`, `jobs`: `--detach`, `mesh jobs`, `wait` and
//! `cancel`; `docs` prints completions and man pages
//! generated from the same definitions).
//!
//! Arguments are parsed into checked types (`job::parse_target`, `PrimesJob::new`), so bad
//! input fails before any work starts, with exit status 2 and a message that names the
//! argument. A command then maps its arguments to a `node::NodeConfig` and a job; the node
//! layer does the rest. Printing happens only in `output`. [`Exit`] says how a command
//! ended.

mod args;
mod bench;
mod docs;
mod exit;
mod jobs;
mod join;
mod output;
mod run;
mod session;
mod setup;
mod store;
mod submit;
mod wasm;

pub use args::Cli;
pub use exit::{Exit, JobFailed};

use crate::node;
use anyhow::Result;
use args::{Command, KeyCmd, StoreCmd, SubmitJob};

/// Runs the parsed command.
pub fn run(cli: Cli) -> Result<Exit> {
    let home = cli.home.unwrap_or_else(node::default_home);
    match cli.command {
        Command::Submit(SubmitJob::Primes(args)) => submit::submit_primes(&home, args),
        Command::Submit(SubmitJob::Wasm(args)) => wasm::submit(home, args),
        Command::Run(args) => run::run(&home, *args),
        Command::Jobs(args) => jobs::jobs(&home, args),
        Command::Wait(args) => jobs::wait(&home, args),
        Command::Cancel(args) => jobs::cancel(&home, args),
        Command::Bench(args) => bench::bench(&home, args),
        Command::Join(args) => join::join(home, args),
        Command::Peers(args) => join::peers(home, args),
        Command::Session(args) => session::session(home, args),
        Command::Store(StoreCmd::Check) => store::check(&home),
        Command::Key(KeyCmd::New) => setup::new_key(),
        Command::Completions { shell } => docs::completions(shell),
        Command::Manpage { dir } => docs::manpage(dir.as_deref()),
    }
}
