//! `mesh join` and `mesh peers`.

use super::output;
use super::{ExitCode, JoinArgs, KeyArgs, PeersArgs};
use crate::discovery::{Discovery, DiscoveryEvent};
use crate::job::JobSpec;
use crate::node::client::Client;
use crate::node::control::{self, Request, Response};
use crate::node::event_loop::{EventLoop, NodeConfig};
use crate::node::identity::{self, Identity};
use crate::node::membership::{PeerRow, sighting_row};
use crate::node::{JobReport, NodeError};
use crate::protocol::membership::PROTOCOL_VERSION;
use crate::secret::SharedKey;
use anyhow::{Context, Result};
use libp2p::Multiaddr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The port mesh listens on unless told otherwise; open it in a firewall.
pub const DEFAULT_PORT: u16 = 4877;

/// Parses `--listen`: a port, `IP:PORT`, or a multiaddr.
pub fn parse_listen(s: &str) -> Result<Multiaddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(tcp_addr("0.0.0.0".parse().expect("a valid address"), port));
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(tcp_addr(sa.ip(), sa.port()));
    }
    s.parse::<Multiaddr>().map_err(|_| {
        format!("'{s}' is not a listen address; use a port (4877), IP:PORT or a multiaddr (/ip4/0.0.0.0/tcp/4877)")
    })
}

/// Parses `--peer`: a multiaddr, or `IP:PORT` for convenience.
pub fn parse_peer(s: &str) -> Result<Multiaddr, String> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Ok(tcp_addr(sa.ip(), sa.port()));
    }
    s.parse::<Multiaddr>()
        .map_err(|_| format!("'{s}' is not a peer address; use IP:PORT or a multiaddr like /ip4/192.0.2.7/tcp/4877"))
}

fn tcp_addr(ip: std::net::IpAddr, port: u16) -> Multiaddr {
    let proto = if ip.is_ipv4() { "ip4" } else { "ip6" };
    format!("/{proto}/{ip}/tcp/{port}").parse().expect("a valid tcp multiaddr")
}

/// The default listen address: the well-known port, or any free one if it is taken (a
/// second node on the same machine, say).
fn default_listen() -> Multiaddr {
    let ip = "0.0.0.0".parse().expect("a valid address");
    match std::net::TcpListener::bind(("0.0.0.0", DEFAULT_PORT)) {
        Ok(_) => tcp_addr(ip, DEFAULT_PORT),
        Err(e) => {
            tracing::warn!(%e, "port {DEFAULT_PORT} is taken; listening on a free port instead");
            tcp_addr(ip, 0)
        }
    }
}

pub fn shared_key(k: &KeyArgs) -> Result<SharedKey> {
    let pass = match (&k.key, &k.key_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read --key-file {}", f.display()))?
        }
        (None, None) => return Ok(SharedKey::open()),
    };
    SharedKey::from_passphrase(&pass).map_err(output::usage)
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the runtime")
}

pub fn join(home: PathBuf, args: JoinArgs) -> Result<ExitCode> {
    let key = shared_key(&args.key)?;
    if key.is_open() {
        tracing::warn!("no --key, --key-file or MESH_KEY: any machine on this LAN can join this mesh and run tasks");
    }
    let name = args.name.unwrap_or_else(identity::hostname);
    let identity = Identity::load_or_create(&home, name)?;
    let cfg = NodeConfig {
        identity,
        home: home.clone(),
        key,
        workers: args.workers.unwrap_or_else(super::default_workers),
        listen: args.listen.unwrap_or_else(default_listen),
        static_peers: args.peers,
        mdns: !args.no_mdns,
    };
    runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        let listener = control::bind(&home).await?;
        let (client, commands) = Client::new();
        let event_loop = EventLoop::new(cfg.clone(), client.clone(), commands)?;
        tracing::info!(peer_id = %cfg.identity.peer_id, name = %cfg.identity.name, key = %cfg.key.fingerprint(), "joining the mesh");
        let server = tokio::spawn(control::serve(listener, home.clone(), client, shutdown.clone()));
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        let result = event_loop.run(shutdown.clone()).await;
        shutdown.cancel();
        let _ = server.await;
        result.map(|()| 0)
    })
}

async fn cancel_on_signal(token: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut term) = signal(SignalKind::terminate()) else { return };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    token.cancel();
}

/// Runs a job on the mesh: through the node serving `home` if there is one, else through
/// a short-lived node of this process that joins the mesh for the job's duration.
pub fn submit(
    home: &Path,
    name: String,
    workers: u32,
    key: &KeyArgs,
    job: JobSpec,
    mut progress: impl FnMut(u64, u64),
) -> Result<JobReport> {
    runtime()?.block_on(async {
        if let Some(report) = control::submit(home, &job, &mut progress).await? {
            return Ok(report);
        }
        let key = shared_key(key)?;
        let identity = Identity::load_or_create(home, name)?;
        let cfg = NodeConfig {
            identity,
            home: home.to_path_buf(),
            key,
            workers,
            listen: "/ip4/0.0.0.0/tcp/0".parse().expect("a valid multiaddr"),
            static_peers: Vec::new(),
            mdns: true,
        };
        let (client, commands) = Client::new();
        let event_loop = EventLoop::new(cfg, client.clone(), commands)?;
        let shutdown = CancellationToken::new();
        let node = tokio::spawn(event_loop.run(shutdown.clone()));
        let mut h = client.submit(job).await?;
        let interrupted = tokio::signal::ctrl_c();
        tokio::pin!(interrupted);
        let report = loop {
            tokio::select! {
                r = &mut h.done => break r.context("the node dropped the job"),
                Ok(()) = h.progress.changed() => {
                    let (d, t) = *h.progress.borrow_and_update();
                    progress(d, t);
                }
                _ = &mut interrupted => break Err(NodeError::Interrupted.into()),
            }
        };
        shutdown.cancel();
        let _ = node.await;
        report
    })
}

pub fn peers(home: PathBuf, args: PeersArgs) -> Result<ExitCode> {
    let rows = runtime()?.block_on(async {
        match control::request(&home, &Request::Peers).await? {
            Some(Response::Peers(p)) => anyhow::Ok(p.rows),
            Some(Response::Error(e)) => anyhow::bail!("the node answered: {e}"),
            Some(_) => anyhow::bail!("the node sent an unexpected reply"),
            None => {
                let key = shared_key(&args.key)?;
                browse(&home, &key, Duration::from_secs_f64(args.browse.clamp(0.1, 60.0))).await
            }
        }
    })?;
    output::peers(&rows, args.json).context("writing the peer list")?;
    Ok(0)
}

/// No node runs here: list what mDNS shows for a moment.
async fn browse(home: &Path, key: &SharedKey, how_long: Duration) -> Result<Vec<PeerRow>> {
    output::note(&format!(
        "no mesh node runs with home {}; browsing the LAN for {:.1} s",
        home.display(),
        how_long.as_secs_f64()
    ));
    let (discovery, mut rx) = Discovery::start(None)?;
    let mut seen = BTreeMap::new();
    let deadline = tokio::time::sleep(how_long);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            ev = rx.recv() => match ev {
                Some(DiscoveryEvent::Found(r)) => { seen.insert(r.fullname.clone(), r); }
                Some(DiscoveryEvent::Removed { fullname }) => { seen.remove(&fullname); }
                None => break,
            },
        }
    }
    tokio::task::spawn_blocking(move || discovery.shutdown()).await.ok();
    let fp = key.fingerprint();
    Ok(seen
        .values()
        .map(|r| {
            let state = if r.fingerprint != fp {
                "different-key"
            } else if r.protocol != PROTOCOL_VERSION {
                "incompatible"
            } else {
                "seen"
            };
            sighting_row(r, state)
        })
        .collect())
}
