//! The `mesh` binary: parse arguments, set up logging, run, and map errors to exit codes:
//! 0 ok, 1 the job failed, 2 usage or setup error, 130 interrupted. A closed stdout pipe
//! (`mesh submit ... | head`) ends quietly.

use clap::Parser;
use mesh::cli::{self, Cli, Exit};
use std::io::IsTerminal;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    init_tracing(cli.verbose, cli.is_daemon());
    let exit = match cli::run(cli) {
        Ok(exit) => exit,
        Err(e) if is_broken_pipe(&e) => Exit::Success,
        Err(e) => {
            eprintln!("mesh: {e:#}");
            Exit::of_error(&e)
        }
    };
    ExitCode::from(exit.code())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().filter_map(|c| c.downcast_ref::<std::io::Error>()).any(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Logs go to stderr: warnings only, but for `mesh join`, which also says hello and tells
/// of nodes joining, leaving and refused. Colour only on a terminal, and never with
/// `NO_COLOR` set (so journald and captured logs read clean). libp2p's request-response
/// warns once per stream it drops over a connection's bound: a peer asking in a tight
/// loop would fill the log, so those show only from -vv on.
fn init_tracing(verbose: u8, daemon: bool) {
    let default = match (verbose, daemon) {
        (0, false) => "warn,libp2p_request_response=error",
        (0, true) => "warn,mesh=info,libp2p_request_response=error",
        (1, _) => "info,libp2p_request_response=error",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("MESH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    // Module paths only help whoever reads the code: shown from -v on.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_target(verbose > 0)
        .with_writer(std::io::stderr)
        .init();
}
