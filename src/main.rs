//! The `mesh` binary: parse arguments, set up logging, run, and map errors to exit codes:
//! 0 ok, 1 the job failed, 2 usage or setup error, 130 interrupted. A closed stdout pipe
//! (`mesh submit ... | head`) ends quietly.

use clap::Parser;
use mesh::cli::{self, Cli, Exit};
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
    init_tracing(cli.verbose);
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

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_env("MESH_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
