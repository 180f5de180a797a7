//! Jobs that outlive their terminal: `--detach`, `mesh jobs`, `mesh wait`, `mesh cancel`.
//!
//! A job belongs to the node that owns it (`mesh join`, or the mesh service), not to the
//! terminal that submitted it: these commands reach this machine's node through its
//! control socket, and that node asks the job's owner when it is another
//! (`protocol::job`). Who may wait for or cancel a job: its submitter, the owner's own
//! user, or root; from another node, a user of the submitter's name. The owner enforces
//! it (`docs/robustness.md`).

use super::args::{CancelArgs, JobsArgs, SubmitOpts, WaitArgs};
use super::exit::{Exit, exit_of};
use super::output::{self, RunPrinter, usage};
use super::setup::job_runtime;
use crate::job::run::RunTasks;
use crate::job::{InputLines, JobSpec};
use crate::node::{self, JobRef, JobUpdate, NodeError, control};
use crate::store::BlobStore;
use anyhow::{Context, Result};
use std::path::Path;

/// The node a job command talks to: this user's, or with the default home the mesh
/// service's.
fn target(home: &Path) -> Result<std::path::PathBuf> {
    Ok(control::reach(home, home == node::default_home())?)
}

/// `--detach`: hands `job` to the node, prints its id, and returns.
pub(crate) fn detach(home: &Path, opts: &SubmitOpts, job: JobSpec) -> Result<Exit> {
    let id = job_runtime()?.block_on(async {
        let target = target(home)?;
        if target != home {
            control::send_files(&target, home, &job).await?;
        }
        anyhow::Ok(control::submit_detached(&target, &job).await?)
    })?;
    output::detached(id, opts.json).context("writing the job's id")?;
    Ok(Exit::Success)
}

/// `mesh cancel JOB`.
pub(crate) fn cancel(home: &Path, args: CancelArgs) -> Result<Exit> {
    job_runtime()?.block_on(async { anyhow::Ok(control::cancel(&target(home)?, args.job).await?) })?;
    output::note(&format!("cancelled job {}", args.job));
    Ok(Exit::Success)
}

/// `mesh jobs`: every job the nodes this one knows of tell of.
pub(crate) fn jobs(home: &Path, args: JobsArgs) -> Result<Exit> {
    let rows = job_runtime()?.block_on(async {
        let target = target(home)?;
        anyhow::Ok(control::peers(&target).await?.ok_or(control::ControlError::NoNode(target))?.rows)
    })?;
    output::jobs(&rows, args.json).context("writing the job list")?;
    Ok(Exit::Success)
}

/// `mesh wait JOB`: what its submitter would have seen, as it comes.
pub(crate) fn wait(home: &Path, args: WaitArgs) -> Result<Exit> {
    let rt = job_runtime()?;
    let (spec, following) = rt.block_on(async { anyhow::Ok(control::wait(&target(home)?, args.job).await?) })?;
    let mut bar = output::Progress::new(args.json);
    // The printer of the job's kind, and what it prints at the end.
    let mut printer: Option<RunPrinter> = None;
    if let JobSpec::Run(run) = &spec {
        let store = BlobStore::new(home);
        let list = store.read(run.inputs).map_err(|e| usage(format!("job {}'s task list: {e}", args.job)))?;
        let list = RunTasks::decode(&list).map_err(|e| usage(format!("job {}'s task list: {e}", args.job)))?;
        let results = args.results.clone().unwrap_or_else(|| std::path::PathBuf::from("."));
        printer = Some(RunPrinter::new(run, list.tasks, args.json, results, None, false, store)?);
    }
    if let JobSpec::Python(_) = spec {
        return Err(usage(format!(
            "job {} is a Python job: its results go to the script that submitted it, not to mesh wait",
            args.job
        )));
    }
    let report = rt.block_on(async {
        let interrupted = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let on = |u: JobUpdate| match u {
            JobUpdate::Progress(p) => bar.update(p.done, p.total),
            JobUpdate::Event(e) => bar.suspend(|| match printer.as_mut() {
                Some(p) => p.event(e),
                None => output::waiting_notes(e),
            }),
        };
        match following.follow(on, interrupted, false).await {
            Err(control::ControlError::Interrupted) => Err(anyhow::Error::from(NodeError::Interrupted)),
            Err(e @ control::ControlError::Left(_)) => {
                output::note(&e.to_string());
                Err(anyhow::Error::from(NodeError::JobDropped))
            }
            Err(control::ControlError::Closed | control::ControlError::Dropped) => {
                Err(anyhow::Error::from(NodeError::JobDropped))
            }
            other => Ok(other?),
        }
    })?;
    bar.finish();
    if report.cancelled {
        // Its results are partial: a primes sum or a run's output would mislead.
        let done: u64 = report.nodes.iter().map(|n| n.tasks).sum();
        output::note(&format!("job {} was cancelled; of its {} tasks, {done} had finished", args.job, report.tasks));
        return Ok(Exit::Failed);
    }
    let complete = print_report(home, &spec, printer, &report, args.job, args.json)?;
    if !complete {
        return Ok(Exit::Failed);
    }
    exit_of(&report)
}

/// The report of a job that ended, as its kind prints it; false if a run job's results
/// could not all be written.
fn print_report(
    home: &Path,
    spec: &JobSpec,
    printer: Option<RunPrinter>,
    report: &node::JobReport,
    job: JobRef,
    json: bool,
) -> Result<bool> {
    match spec {
        JobSpec::Primes(p) => output::job_report(p, report, json).context("writing the results")?,
        JobSpec::Wasm(w) => {
            let input = BlobStore::new(home).read(w.input).map_err(|e| usage(format!("job {job}'s input: {e}")))?;
            let lines = InputLines::parse(input).map_err(|e| usage(format!("job {job}'s input: {e}")))?;
            output::wasm_report(w, &lines, report, json).context("writing the results")?;
        }
        JobSpec::Run(_) | JobSpec::Python(_) => {
            if let Some(p) = printer {
                return p.finish(report).context("writing the results");
            }
        }
    }
    Ok(true)
}
