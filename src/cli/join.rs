//! `mesh join` and `mesh peers`: arguments into a node's configuration, and the mesh as
//! the local node (or, with none, an mDNS browse) sees it.

use super::output;
use super::{Exit, JoinArgs, KeyArgs, PeersArgs, runtime};
use crate::discovery::{Discovery, DiscoveryEvent};
use crate::node::{self, NetConfig, Node, NodeConfig, PeerRow, PeerState, control, sighting_row};
use crate::protocol::membership::PROTOCOL_VERSION;
use crate::secret::SharedKey;
use anyhow::{Context, Result};
use libp2p::Multiaddr;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The port mesh listens on unless told otherwise; open it in a firewall.
pub(crate) const DEFAULT_PORT: u16 = 4877;

/// The shortest and longest `mesh peers --browse`, in seconds.
const MIN_BROWSE: f64 = 0.1;
const MAX_BROWSE: f64 = 60.0;

/// Parses `--listen`: a port, `IP:PORT`, or a multiaddr.
pub(crate) fn parse_listen(s: &str) -> Result<Multiaddr, String> {
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
pub(crate) fn parse_peer(s: &str) -> Result<Multiaddr, String> {
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

pub(crate) fn shared_key(k: &KeyArgs) -> Result<SharedKey> {
    let pass = match (&k.key, &k.key_file) {
        (Some(p), _) => p.clone(),
        (None, Some(f)) => {
            std::fs::read_to_string(f).with_context(|| format!("cannot read --key-file {}", f.display()))?
        }
        (None, None) => return Ok(SharedKey::open()),
    };
    SharedKey::from_passphrase(&pass).map_err(output::usage)
}

/// Listen on any free port, as a short-lived node of `mesh submit` does.
pub(crate) fn any_port() -> Multiaddr {
    tcp_addr("0.0.0.0".parse().expect("a valid address"), 0)
}

pub(crate) fn join(home: PathBuf, args: JoinArgs) -> Result<Exit> {
    let key = shared_key(&args.key)?;
    if key.is_open() {
        tracing::warn!("no --key, --key-file or MESH_KEY: any machine on this LAN can join this mesh and run tasks");
    }
    let cfg = NodeConfig {
        name: args.name.unwrap_or_else(node::hostname),
        home,
        workers: args.workers.unwrap_or_else(super::default_workers),
        network: Some(NetConfig {
            key,
            listen: args.listen.unwrap_or_else(default_listen),
            static_peers: args.peers,
            mdns: !args.no_mdns,
        }),
        control: true,
    };
    runtime()?.block_on(async move {
        let (_client, node) = Node::spawn(cfg).await?;
        node.stop_on(node::shutdown_signal()).await
    })?;
    Ok(Exit::Success)
}

pub(crate) fn peers(home: PathBuf, args: PeersArgs) -> Result<Exit> {
    let rows = runtime()?.block_on(async {
        if let Some(reply) = control::peers(&home).await? {
            return anyhow::Ok(reply.rows);
        }
        let key = shared_key(&args.key)?;
        browse(&home, &key, Duration::from_secs_f64(args.browse.clamp(MIN_BROWSE, MAX_BROWSE))).await
    })?;
    output::peers(&rows, args.json).context("writing the peer list")?;
    Ok(Exit::Success)
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
                PeerState::DifferentKey
            } else if r.protocol != PROTOCOL_VERSION {
                PeerState::Incompatible
            } else {
                PeerState::Seen
            };
            sighting_row(r, state)
        })
        .collect())
}
