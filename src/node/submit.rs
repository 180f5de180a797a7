//! Running one job to its report, the way `mesh submit` and `mesh bench` do:
//!
//! 1. If the job may use the mesh and a node serves the same home (`mesh join`), the job
//!    goes to that node over the control socket.
//! 2. Otherwise this process starts a node of its own for the length of the job: one that
//!    joins the mesh (same identity, a free port, mDNS), or, for `--local`, one with no
//!    network at all. It leaves when the job ends.
//!
//! An interruption (Ctrl-C) drops the job's handle, which cancels the job mesh-wide, and
//! stops the node politely.

use super::client::{Client, JobHandle};
use super::view::JobProgress;
use super::{JobReport, Node, NodeConfig, NodeError, control};
use crate::job::JobSpec;
use anyhow::Result;

/// Runs `job` and returns its report, calling `progress` as results come in, unless
/// `interrupted` resolves first.
pub async fn run_job(
    cfg: NodeConfig,
    job: JobSpec,
    mut progress: impl FnMut(JobProgress),
    interrupted: impl Future<Output = ()>,
) -> Result<JobReport> {
    tokio::pin!(interrupted);
    if cfg.network.is_some() {
        tokio::select! {
            sent = control::submit(&cfg.home, &job, &mut progress) => {
                if let Some(report) = sent? {
                    return Ok(report);
                }
            }
            () = &mut interrupted => return Err(NodeError::Interrupted.into()),
        }
    }
    let (client, node) = Node::spawn(NodeConfig { control: false, ..cfg }).await?;
    let report = wait_for(&client, job, progress, interrupted).await;
    node.stop().await?;
    report
}

async fn wait_for(
    client: &Client,
    job: JobSpec,
    mut progress: impl FnMut(JobProgress),
    mut interrupted: std::pin::Pin<&mut impl Future<Output = ()>>,
) -> Result<JobReport> {
    let JobHandle { progress: mut watch, mut done } = client.submit(job).await?;
    loop {
        tokio::select! {
            report = &mut done => return report.map_err(|_| NodeError::JobDropped.into()),
            Ok(()) = watch.changed() => progress(*watch.borrow_and_update()),
            () = &mut interrupted => return Err(NodeError::Interrupted.into()),
        }
    }
}
