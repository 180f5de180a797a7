//! The HTTP side: axum routes over the latest [`Snapshot`]. Every handler only reads it,
//! so the server never waits on the event loop, and nothing here can change the mesh.

use super::snapshot::Snapshot;
use crate::node::control::AcceptBackoff;
use crate::node::quota::{Quota, QuotaSlot};
use anyhow::{Context, Result};
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use libp2p::futures::stream::{self, Stream};
use serde::Serialize;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The page: HTML, CSS and script in one file, built into the binary.
pub(crate) const PAGE: &str = include_str!("page.html");
/// Live-update streams served at once; one more gets 503 and its browser retries.
pub(crate) const MAX_STREAMS: usize = 64;
/// Open connections at once, from all clients.
pub(crate) const MAX_CONNECTIONS: usize = 128;
/// Open connections at once from one IP address (a browser opens a few).
pub(crate) const MAX_PER_CLIENT: usize = 16;
/// A request's headers must arrive within this, and a kept-alive connection's next request.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The most a request's line and headers may take.
const MAX_HEADER_BYTES: usize = 16 * 1024;
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
/// channel closes. `names` are the host names it answers for, besides IP addresses and
/// `localhost` ([`host_allowed`]).
pub(crate) async fn serve(
    listener: TcpListener,
    view: watch::Receiver<Arc<Snapshot>>,
    names: Vec<String>,
    shutdown: CancellationToken,
) {
    let shared = Shared { view, streams: Arc::new(Semaphore::new(MAX_STREAMS)), shutdown: shutdown.clone() };
    let names = Arc::new(names.into_iter().map(|n| n.to_ascii_lowercase()).collect::<Vec<_>>());
    let app = Router::new()
        .route("/", get(page))
        .route("/api/peers", get(peers))
        .route("/api/jobs", get(jobs))
        .route("/api/throughput", get(throughput))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .with_state(shared)
        .layer(axum::middleware::from_fn_with_state(names, check_host));
    // Each connection holds a file descriptor, and the node's own work needs its own.
    let conns = Quota::new(MAX_CONNECTIONS, MAX_PER_CLIENT);
    let tracker = TaskTracker::new();
    let mut backoff = AcceptBackoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => { backoff.reset(); a }
                Err(e) => {
                    // Out of fds (EMFILE): wait instead of spinning on the same error.
                    let pause = backoff.next();
                    tracing::warn!(%e, "the dashboard cannot accept; trying again in {pause:?}");
                    tokio::select! { () = shutdown.cancelled() => break, () = tokio::time::sleep(pause) => {} }
                    continue;
                }
            },
        };
        // Over the bounds, the connection is closed at once: its fd is back before the
        // next accept.
        let Some(slot) = conns.take(peer.ip()) else { continue };
        tracker.spawn(serve_connection(stream, app.clone(), slot, shutdown.clone()));
    }
    tracker.close();
    // Live streams end with the token; a client that stops reading is not waited for long.
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
}

/// One HTTP/1.1 connection: its request headers must come within [`HEADER_TIMEOUT`], and
/// so must the next request's on a kept-alive connection (hyper's header-read timer runs
/// whenever the connection waits for a request), so an idle or half-sent connection ends.
async fn serve_connection(stream: TcpStream, app: Router, slot: QuotaSlot<IpAddr>, shutdown: CancellationToken) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT).max_buf_size(MAX_HEADER_BYTES);
    let conn = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app));
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(1), conn).await;
        }
    }
    drop(slot);
}

/// Answers only requests whose `Host` is an IP address, `localhost` or one of the node's
/// names: a page on another site that rebinds its DNS name to this address (DNS rebinding)
/// sends its own name, and gets 421.
async fn check_host(
    State(names): State<Arc<Vec<String>>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(h) if !host_allowed(h, &names) => (
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this dashboard answers for its IP addresses, localhost and {}; \
                 name it with `mesh join --http-name NAME` to use another name\n",
                names.join(", ")
            ),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

/// Whether a `Host` header names this node: an IP literal (with or without a port),
/// `localhost`, or one of `names` (lower case).
pub(crate) fn host_allowed(host: &str, names: &[String]) -> bool {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        // [v6] or [v6]:port
        Some(rest) => return rest.split(']').next().is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok()),
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.parse::<u16>().is_ok() => name,
            _ => host,
        },
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<std::net::Ipv4Addr>().is_ok() || name == "localhost" || names.contains(&name)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_only_for_its_addresses_and_names() {
        let names = vec!["pi3".to_string(), "pi3.local".to_string()];
        for ok in [
            "127.0.0.1:4880",
            "127.0.0.1",
            "198.18.0.2:4880",
            "[::1]:4880",
            "[fe80::1]",
            "localhost:4880",
            "LOCALHOST",
            "pi3:4880",
            "pi3.local.",
            "Pi3.Local:80",
        ] {
            assert!(host_allowed(ok, &names), "{ok}");
        }
        for bad in [
            "evil.example:4880",
            "evil.example",
            "127.0.0.1.evil.example",
            "pi3.evil.example",
            "[not-v6]",
            "localhost.evil:4880",
            "",
        ] {
            assert!(!host_allowed(bad, &names), "{bad}");
        }
    }
}
