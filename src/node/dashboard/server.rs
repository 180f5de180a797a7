//! The HTTP side: axum routes over the latest [`Snapshot`]. Every handler only reads it,
//! so the server never waits on the event loop, and nothing here can change the mesh.

use super::snapshot::Snapshot;
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use libp2p::futures::stream::{self, Stream};
use serde::Serialize;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;

/// The page: HTML, CSS and script in one file, built into the binary.
pub(crate) const PAGE: &str = include_str!("page.html");
/// Live-update streams served at once; one more gets 503 and its browser retries.
pub(crate) const MAX_STREAMS: usize = 64;
/// The Prometheus text format's content type.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone)]
struct Shared {
    view: watch::Receiver<Arc<Snapshot>>,
    streams: Arc<Semaphore>,
    shutdown: CancellationToken,
}

/// Binds the dashboard's address. Binding to anything but loopback opens it to the LAN,
/// and the log says so.
pub(crate) async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot serve the dashboard on {addr}"))?;
    let at = listener.local_addr().unwrap_or(addr);
    if at.ip().is_loopback() {
        tracing::info!("dashboard at http://{at}/ (this machine only; --http 0.0.0.0:{} for the LAN)", at.port());
    } else {
        tracing::warn!(
            "dashboard at http://{at}/ is open to every machine that can reach it: it shows the mesh's nodes and jobs, read-only, and no key"
        );
    }
    Ok(listener)
}

/// Serves the dashboard until `shutdown`; live streams end with it, or when the snapshot
/// channel closes.
pub(crate) async fn serve(listener: TcpListener, view: watch::Receiver<Arc<Snapshot>>, shutdown: CancellationToken) {
    let shared = Shared { view, streams: Arc::new(Semaphore::new(MAX_STREAMS)), shutdown: shutdown.clone() };
    let app = Router::new()
        .route("/", get(page))
        .route("/api/peers", get(peers))
        .route("/api/jobs", get(jobs))
        .route("/api/throughput", get(throughput))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(shared);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::warn!(%e, "the dashboard stopped");
    }
}

async fn page() -> Response {
    ([(header::CACHE_CONTROL, "no-cache")], Html(PAGE)).into_response()
}

fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn peers(State(s): State<Shared>) -> Response {
    let snap = s.view.borrow().clone();
    json(&snap.live.peers)
}

async fn jobs(State(s): State<Shared>) -> Response {
    let snap = s.view.borrow().clone();
    json(&snap.live.jobs)
}

async fn throughput(State(s): State<Shared>) -> Response {
    let snap = s.view.borrow().clone();
    json(&*snap.history)
}

async fn metrics(State(s): State<Shared>) -> Response {
    let snap = s.view.borrow().clone();
    ([(header::CONTENT_TYPE, METRICS_TYPE)], snap.metrics.render()).into_response()
}

/// Server-sent events: the live view now, then each new snapshot.
async fn events(State(s): State<Shared>) -> Response {
    let Ok(permit) = s.streams.clone().try_acquire_owned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "too many dashboards are open on this node").into_response();
    };
    let mut view = s.view.clone();
    view.mark_changed();
    Sse::new(updates(view, s.shutdown, permit))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

fn updates(
    view: watch::Receiver<Arc<Snapshot>>,
    shutdown: CancellationToken,
    permit: OwnedSemaphorePermit,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold((view, shutdown, permit), |(mut view, shutdown, permit)| async move {
        tokio::select! {
            changed = view.changed() => changed.ok()?,
            () = shutdown.cancelled() => return None,
        }
        let snap = view.borrow_and_update().clone();
        let data = serde_json::to_string(&snap.live).ok()?;
        Some((Ok(Event::default().data(data)), (view, shutdown, permit)))
    })
}
