//! `mesh join` and `mesh peers`: arguments into a node's configuration, and the mesh as
//! the local node (or, with none, an mDNS browse) sees it.

use super::args::{JoinArgs, PeersArgs};
use super::exit::Exit;
use super::output::{self, PeersSource};
use super::setup::{default_listen, default_workers, raise_fd_limit, runtime, shared_key};
use crate::core::Availability;
use crate::node::journal::Keep;
use crate::node::net::discovery::{Discovery, DiscoveryEvent};
use crate::node::{
    self, Control, Http, NetConfig, Node, NodeConfig, PeerRow, PeerState, control, refusal, sighting_row,
};
use crate::secret::SharedKey;
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `mesh join` serves its dashboard unless told otherwise: this machine only.
pub(crate) const DEFAULT_HTTP: ([u8; 4], u16) = ([127, 0, 0, 1], 4880);

/// The shortest and longest `mesh peers --browse`, in seconds.
const MIN_BROWSE: f64 = 0.1;
const MAX_BROWSE: f64 = 60.0;

pub(crate) fn join(home: PathBuf, args: JoinArgs) -> Result<Exit> {
    let key = shared_key(&args.key)?;
    if key.is_open() {
        tracing::warn!("no --key, --key-file or MESH_KEY: any machine on this LAN can join this mesh and run tasks");
    }
    raise_fd_limit();
    let host = node::hostname();
    let mut http_names = vec![host.clone(), format!("{host}.local")];
    http_names.extend(args.http_names);
    let cfg = NodeConfig {
        network: Some(NetConfig {
            key,
            listen: args.listen.unwrap_or_else(default_listen),
            static_peers: args.peers,
            mdns: !args.no_mdns,
        }),
        control: if args.control_group { Control::Group } else { Control::Owner },
        allow_run: args.allow_run,
        // Only this node's user can reach a mode 0600 control socket, so a job submitted
        // there is that user's own: running it grants nothing new. A socket shared with
        // the group serves other users, whose programs need --allow-run like everyone's.
        runs_own: !args.control_group,
        labels: args.labels,
        lending: Availability::new(args.hours, args.when_idle),
        worker_nice: args.nice,
        journal: (!args.no_journal).then(|| Keep {
            age: Duration::from_secs_f64(args.keep_jobs * 24.0 * 3600.0),
            bytes: args.keep_jobs_mib << 20,
        }),
        http: match (args.no_http, args.http) {
            (true, _) => None,
            (false, Some(addr)) => Some(Http { addr, required: true, names: http_names }),
            (false, None) => Some(Http { addr: DEFAULT_HTTP.into(), required: false, names: http_names }),
        },
        ..NodeConfig::new(args.name.unwrap_or_else(node::hostname), home, args.workers.unwrap_or_else(default_workers))
    };
    runtime()?.block_on(async move {
        let (_client, node) = Node::spawn(cfg).await?;
        node.stop_on(node::shutdown_signal()).await
    })?;
    Ok(Exit::Success)
}

pub(crate) fn peers(home: PathBuf, args: PeersArgs) -> Result<Exit> {
    let (rows, source) = runtime()?.block_on(async {
        if let Some(reply) = control::peers(&control::reach(&home, home == node::default_home())?).await? {
            return anyhow::Ok((reply.rows, PeersSource::Node));
        }
        let key = shared_key(&args.key)?;
        let how_long = Duration::from_secs_f64(args.browse.clamp(MIN_BROWSE, MAX_BROWSE));
        Ok((browse(&home, &key, how_long).await?, PeersSource::Browsed(how_long)))
    })?;
    output::peers(&rows, args.json, source).context("writing the peer list")?;
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
            let state = refusal(r, &fp).unwrap_or(PeerState::Seen);
            sighting_row(r, state)
        })
        .collect())
}
