//! Running one job to its report on a node of this process, the way `mesh submit` and
//! `mesh bench` do when no `mesh join` node serves their home: a node that joins the mesh
//! for the length of the job (same identity, a free port, mDNS), or, for `--local`, one
//! with no network at all. It leaves when the job ends.
//!
//! An interruption (Ctrl-C) drops the job's handle and stops the node, which leaves the
//! mesh politely; the others drop the job's work when they see it go.

use crate::job::JobSpec;
use crate::node::api::client::{JobHandle, NodeError};
use crate::node::api::config::NodeConfig;
use crate::node::api::handle::Node;
use crate::node::api::report::JobReport;
use crate::node::api::view::JobUpdate;
use anyhow::Result;

/// Starts a node from `cfg`, runs `job` on it and returns its report, telling `on` of
/// its progress and events as they come, unless `interrupted` resolves first. The node
/// stops either way.
pub async fn run_job(
    cfg: NodeConfig,
    job: JobSpec,
    mut on: impl FnMut(JobUpdate),
    interrupted: impl Future<Output = ()>,
) -> Result<JobReport> {
    tokio::pin!(interrupted);
    let (client, node) = Node::spawn(cfg).await?;
    let report = async {
        let JobHandle { progress: mut watch, mut events, mut done, .. } =
            client.submit(job).await.map_err(NodeError::from)?;
        on(JobUpdate::Progress(*watch.borrow_and_update()));
        loop {
            tokio::select! {
                biased;
                Some(e) = events.recv() => on(JobUpdate::Event(e)),
                report = &mut done => {
                    // Events sent before the report are all in the channel by now.
                    while let Ok(e) = events.try_recv() {
                        on(JobUpdate::Event(e));
                    }
                    return report.map_err(|_| NodeError::JobDropped);
                }
                Ok(()) = watch.changed() => on(JobUpdate::Progress(*watch.borrow_and_update())),
                () = &mut interrupted => return Err(NodeError::Interrupted),
            }
        }
    }
    .await;
    node.stop().await?;
    Ok(report?)
}
