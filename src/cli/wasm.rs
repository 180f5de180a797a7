//! `mesh submit wasm`: read and check a module and its inputs, store both by content id
//! under `--home`, and run the job.
//!
//! Everything that can be wrong with the user's files is found here, before any node
//! sees the job: an unreadable or malformed module, a module that is not a WASI command
//! or imports more than WASI, inputs too large or with too many lines. Each is a usage
//! error (exit 2) that names the file.

use super::output::{self, usage};
use super::{Exit, SubmitOpts, exit_of, run_job};
use crate::exec::Executor;
use crate::job::wasm::{DEFAULT_MEMORY_MB, DEFAULT_RETRIES, DEFAULT_TIMEOUT, MAX_MEMORY_MB, MAX_RETRIES, MAX_TIMEOUT};
use crate::job::{InputLines, JobSpec, WasmJob};
use crate::store::BlobStore;
use crate::store::MAX_BLOB;
use anyhow::{Context, Result};
use clap::Args;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

pub(crate) fn submit(home: PathBuf, args: WasmArgs) -> Result<Exit> {
    let module = read_module(&args.module)?;
    let input = read_input(args.input_file.as_deref())?;
    let lines = InputLines::parse(input.clone()).map_err(|e| usage(format!("the input: {e}")))?;
    // The module is compiled here once, to check it; its compiled code is cached under
    // the home, so this machine's node starts warm.
    let exec = Executor::new(home.clone(), Arc::new(BlobStore::new(&home)), None);
    let module_id = exec
        .wasm()
        .map_err(|e| anyhow::Error::new(e.clone()))?
        .check(&module)
        .map_err(|e| usage(format!("module {}: {e}", args.module.display())))?;
    let input_id = exec.store().put(&input).with_context(|| format!("storing the input under {}", home.display()))?;
    let job = WasmJob {
        module: module_id,
        input: input_id,
        tasks: lines.len(),
        timeout_ms: (args.timeout * 1000.0).ceil() as u64,
        memory_mb: args.memory,
        retries: args.retries,
    };
    let report = run_job(&home, &args.common, JobSpec::Wasm(job.clone()))?;
    output::wasm_report(&job, &lines, &report, args.common.json).context("writing the results")?;
    exit_of(&report)
}

/// The module's binary: `.wasm` as it is, WebAssembly text converted.
fn read_module(path: &Path) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| usage(format!("cannot read module {}: {e}", path.display())))?;
    if meta.len() > MAX_BLOB {
        return Err(usage(format!(
            "module {} is {} bytes; at most {MAX_BLOB} are allowed",
            path.display(),
            meta.len()
        )));
    }
    let bytes = std::fs::read(path).map_err(|e| usage(format!("cannot read module {}: {e}", path.display())))?;
    if bytes.starts_with(b"\0asm") {
        return Ok(bytes);
    }
    wat::parse_bytes(&bytes).map(|b| b.into_owned()).map_err(|e| {
        usage(format!(
            "module {} is neither WebAssembly nor WebAssembly text: {}",
            path.display(),
            e.to_string().lines().next().unwrap_or_default()
        ))
    })
}

/// The inputs, from a file or stdin, at most [`MAX_BLOB`] bytes.
fn read_input(file: Option<&Path>) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    let limit = MAX_BLOB + 1;
    match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => {
            let file =
                std::fs::File::open(f).map_err(|e| usage(format!("cannot read input file {}: {e}", f.display())))?;
            file.take(limit).read_to_end(&mut buf).with_context(|| format!("reading {}", f.display()))?;
        }
        None => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                return Err(usage(
                    "no inputs: give them with --input-file FILE or pipe them on stdin, one task per line",
                ));
            }
            stdin.lock().take(limit).read_to_end(&mut buf).context("reading the inputs from stdin")?;
        }
    }
    if buf.len() as u64 > MAX_BLOB {
        return Err(usage(format!("the input is over {MAX_BLOB} bytes; split the job")));
    }
    Ok(buf)
}
