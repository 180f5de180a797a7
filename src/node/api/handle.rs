//! Starting and stopping a node: [`Node::spawn`], the only driver there is.

use crate::node::api::client::Client;
use crate::node::api::config::{Control, NodeConfig};
use crate::node::control;
use crate::node::dashboard;
use crate::node::event_loop::EventLoop;
use crate::node::host::identity::{HomeLock, Identity};
use anyhow::Result;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A running node. Dropping it does not stop it; [`Node::stop`] does.
#[derive(Debug)]
pub struct Node {
    shutdown: CancellationToken,
    tracker: TaskTracker,
    main: JoinHandle<Result<()>>,
}

impl Node {
    /// Starts a node: takes the lock of `home` if it joins a network or binds the control
    /// socket (failing if another node holds it, see [`HomeLock`]), loads or creates its
    /// identity there, binds the control socket if asked, starts the workers and the
    /// network. Must be called inside a tokio runtime.
    pub async fn spawn(cfg: NodeConfig) -> Result<(Client, Self)> {
        // Held by the loop and the control server, so until the last of them has ended.
        let lock = match cfg.network.is_some() || cfg.control != Control::Off {
            true => Some(Arc::new(HomeLock::acquire(&cfg.home)?)),
            false => None,
        };
        let identity = Identity::load_or_create(&cfg.home, cfg.name.clone())?;
        if cfg.network.is_some() {
            tracing::debug!(peer_id = %identity.peer_id, name = %identity.name, workers = cfg.workers, "starting a node");
        }
        let listener = match cfg.control {
            Control::Off => None,
            access => Some(control::bind(&cfg.home, access).await?),
        };
        let http = match &cfg.http {
            Some(h) => match dashboard::bind(h.addr).await {
                Ok(l) => Some((l, h.names.clone())),
                Err(e) if !h.required => {
                    tracing::warn!("no dashboard: {e:#} (mesh join --http ADDR serves it elsewhere)");
                    None
                }
                Err(e) => return Err(e),
            },
            None => None,
        };
        let (shutdown, tracker) = (CancellationToken::new(), TaskTracker::new());
        let (client, commands) = Client::new(&cfg.name);
        let (home, name) = (cfg.home.clone(), cfg.name.clone());
        let (event_loop, view) =
            EventLoop::new(identity, cfg, http.is_some(), commands, tracker.clone(), shutdown.clone())?;
        if let Some(listener) = listener {
            let serve = control::serve(listener, home, name, client.clone(), shutdown.clone());
            let lock = lock.clone();
            tracker.spawn(async move {
                serve.await;
                drop(lock); // only now is its socket file gone
            });
        }
        if let (Some((listener, names)), Some(view)) = (http, view) {
            tracker.spawn(dashboard::serve(listener, view, names, shutdown.clone()));
        }
        let token = shutdown.clone();
        let main = tracker.spawn(async move {
            let _lock = lock;
            let result = event_loop.run(token.clone()).await;
            token.cancel(); // a loop that ended on an error takes the control server along
            result
        });
        Ok((client, Self { shutdown, tracker, main }))
    }

    /// Stops the node: it leaves the mesh, its workers finish their runs (or are left to
    /// the process after a grace), and every task it spawned ends.
    pub async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        self.main.await?
    }

    /// Runs until `signal` or until the node stops on its own (an error), then stops.
    pub async fn stop_on(self, signal: impl Future<Output = ()>) -> Result<()> {
        tokio::select! {
            () = signal => {}
            () = self.shutdown.cancelled() => {}
        }
        self.stop().await
    }
}

/// SIGINT or SIGTERM, as a terminal or systemd sends them.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
