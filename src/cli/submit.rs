//! `mesh submit primes`, and running any job to its report as `SubmitOpts` say.

use super::args::{PrimesArgs, SubmitOpts};
use super::exit::{Exit, exit_of};
use super::output;
use super::setup::{any_port, default_workers, job_runtime, shared_key};
use crate::job::{JobSpec, PrimesJob, Split};
use crate::node::{self, JobEvent, JobReport, JobUpdate, NetConfig, NodeConfig, NodeError};
use anyhow::{Context, Result};
use std::path::Path;

pub(crate) fn submit_primes(home: &Path, args: PrimesArgs) -> Result<Exit> {
    let workers = args.common.workers.unwrap_or_else(default_workers);
    let split = match (args.tasks, args.task_size) {
        (Some(t), _) => Split::Tasks(t),
        (None, Some(s)) => Split::Size(s),
        (None, None) => Split::Auto { workers },
    };
    let job = PrimesJob::new(args.target, args.algo, split).map_err(output::usage)?;
    if args.common.detach {
        return super::jobs::detach(home, &args.common, JobSpec::Primes(job));
    }
    let report = run_job(home, &args.common, JobSpec::Primes(job.clone()), &mut output::waiting_notes)?;
    output::job_report(&job, &report, args.common.json).context("writing the results")?;
    exit_of(&report)
}

/// Runs a job as `opts` say: on this machine only (`--local`: a node with no network), or
/// on the mesh: through the node that serves `home` if one runs (with the default home,
/// else the mesh service's node, see `control::reach`), else through a node of this
/// process for the job's length. Shows progress on the way and hands each event
/// (a run task's result, a notice of why the job waits) to `on_event`, with the progress
/// bar out of the way; Ctrl-C cancels the job (a closed terminal leaves a node's job
/// running, detached: `mesh jobs` shows it).
pub(crate) fn run_job(
    home: &Path,
    opts: &SubmitOpts,
    job: JobSpec,
    on_event: &mut dyn FnMut(JobEvent),
) -> Result<JobReport> {
    let mut bar = output::Progress::new(opts.json);
    // The callbacks below run on this thread, the node and the connection on others.
    let report = job_runtime()?.block_on(async {
        let interrupted = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        tokio::pin!(interrupted);
        let mut on = |u: JobUpdate| match u {
            JobUpdate::Progress(p) => bar.update(p.done, p.total),
            JobUpdate::Event(e) => bar.suspend(|| on_event(e)),
        };
        if !opts.local {
            // This user's node, or the mesh service's (given the job's files as bytes).
            let target = node::control::reach(home, home == node::default_home())?;
            if target != home {
                node::control::send_files(&target, home, &job).await?;
            }
            match node::control::submit(&target, &job, &mut on, &mut interrupted).await {
                Ok(Some(report)) => return Ok(report),
                Ok(None) => {}
                Err(e @ node::control::ControlError::Cancelled(_)) => {
                    bar.suspend(|| output::note(&e.to_string()));
                    return Err(NodeError::Interrupted.into());
                }
                Err(node::control::ControlError::Interrupted) => return Err(NodeError::Interrupted.into()),
                // The node stopped mid-job: the job failed (exit 1), not the arguments.
                Err(e @ node::control::ControlError::Left(_)) => {
                    bar.suspend(|| output::note(&e.to_string()));
                    return Err(NodeError::JobDropped.into());
                }
                Err(node::control::ControlError::Closed | node::control::ControlError::Dropped) => {
                    return Err(NodeError::JobDropped.into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        // No node serves this home (or --local): the key is read only now.
        let network = match opts.local {
            true => None,
            false => Some(NetConfig {
                key: shared_key(&opts.key)?,
                listen: any_port(),
                static_peers: Vec::new(),
                mdns: true,
            }),
        };
        let name = opts.name.clone().unwrap_or_else(node::hostname);
        let cfg = NodeConfig {
            network,
            ..NodeConfig::new(name, home.to_path_buf(), opts.workers.unwrap_or_else(default_workers))
        };
        node::run_job(cfg, job, on, interrupted).await
    })?;
    bar.finish();
    Ok(report)
}
