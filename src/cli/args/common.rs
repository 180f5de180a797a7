//! Arguments more than one command takes: the mesh's key, and how a job runs.

use clap::Args;
use std::path::PathBuf;

/// The most worker threads `--workers` may ask for.
pub(crate) const MAX_WORKERS: i64 = 1024;

/// The shared key, Parallel Python's `-s` secret. Nodes with different keys never connect.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Read the mesh's key from a file (surrounding white space is ignored); make one with
    /// `mesh key new > FILE`. Keep it mode 0600: whoever holds the key may join the mesh and
    /// run programs on its --allow-run nodes.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<PathBuf>,

    /// The mesh's key (a generated key or a passphrase). Prefer --key-file or MESH_KEY: a
    /// key on the command line shows in `ps` to every user. Without a key, any machine on
    /// the LAN can join.
    #[arg(long, env = "MESH_KEY", hide_env_values = true, value_name = "KEY", conflicts_with = "key_file")]
    pub key: Option<String>,
}

/// Options every `submit` takes.
#[derive(Debug, Args)]
pub struct SubmitOpts {
    /// Worker threads on this node [default: all cores].
    #[arg(long, short = 'w', value_name = "W", value_parser = clap::value_parser!(u32).range(1..=MAX_WORKERS))]
    pub workers: Option<u32>,

    /// This node's name in statistics [default: the host name].
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,

    /// Use only this machine's cores: no node, no network.
    #[arg(long, conflicts_with = "detach")]
    pub local: bool,

    /// Leave the job with this user's node (`mesh join`, or the mesh service) and return
    /// at once, printing its id; the job runs on. `mesh wait ID` shows its results,
    /// `mesh cancel ID` ends it, `mesh jobs` lists it.
    #[arg(long)]
    pub detach: bool,

    #[command(flatten)]
    pub key: KeyArgs,
}

/// A positive number of days, at most ten years.
pub(crate) fn parse_days(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(d) if d > 0.0 && d <= 3650.0 => Ok(d),
        _ => Err(format!("'{s}' is not a number of days between 0 and 3650")),
    }
}
