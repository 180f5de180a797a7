//! `mesh submit wasm`: read and check a module and its inputs, store both by content id
//! under `--home`, and run the job.
//!
//! Everything that can be wrong with the user's files is found here, before any node
//! sees the job: an unreadable or malformed module, a module that is not a WASI command
//! or imports more than WASI, inputs too large or with too many lines. Each is a usage
//! error (exit 2) that names the file.

use super::args::WasmArgs;
use super::exit::{Exit, exit_of};
use super::output::{self, usage};
use super::submit::run_job;
use crate::core::Needs;
use crate::exec::Executor;
use crate::exec::run::Permission;
use crate::job::{InputLines, JobSpec, WasmJob};
use crate::store::{BlobStore, MAX_BLOB};
use anyhow::{Context, Result};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) fn submit(home: PathBuf, args: WasmArgs) -> Result<Exit> {
    let module = read_module(&args.module)?;
    let input = read_input(args.input_file.as_deref())?;
    let lines = InputLines::parse(input.clone()).map_err(|e| usage(format!("the input: {e}")))?;
    // The module is compiled here once, to check it; its compiled code is cached under
    // the home, so this machine's node starts warm.
    let no_runs = Permission { allow_run: false, runs_own: false };
    let exec = Executor::new(home.clone(), Arc::new(BlobStore::new(&home)), None, no_runs);
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
        needs: Needs::sandboxed(args.require.clone()),
        retries: args.retries,
    };
    if args.common.detach {
        return super::jobs::detach(&home, &args.common, JobSpec::Wasm(job));
    }
    let report = run_job(&home, &args.common, JobSpec::Wasm(job.clone()), &mut output::waiting_notes)?;
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
