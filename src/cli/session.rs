//! `mesh session`: a node for one program's session, which libraries start when no node
//! runs under the home (the Python package does). It serves the control socket, runs its
//! user's own jobs here (and on the mesh unless `--local`), runs nothing for others, and
//! ends when its stdin closes: when the program that started it exits, however it exits.

use super::args::SessionArgs;
use super::exit::Exit;
use super::setup::{any_port, default_workers, runtime, shared_key};
use crate::node::{self, Control, NetConfig, Node, NodeConfig};
use anyhow::{Context, Result};
use std::path::PathBuf;
use tokio::io::AsyncReadExt;

pub(crate) fn session(home: PathBuf, args: SessionArgs) -> Result<Exit> {
    let network = match args.local {
        true => None,
        false => {
            Some(NetConfig { key: shared_key(&args.key)?, listen: any_port(), static_peers: args.peers, mdns: true })
        }
    };
    let name = args.name.unwrap_or_else(node::hostname);
    let cfg = NodeConfig {
        network,
        control: Control::Owner,
        ..NodeConfig::new(name, home.clone(), args.workers.unwrap_or_else(default_workers))
    };
    let ran = runtime()?.block_on(async move {
        let (_client, node) = Node::spawn(cfg).await?;
        let stdin_closed = async {
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 256];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
        };
        let ended = async {
            tokio::select! {
                () = stdin_closed => {}
                () = node::shutdown_signal() => {}
            }
        };
        node.stop_on(ended).await
    });
    if args.remove_home {
        std::fs::remove_dir_all(&home).with_context(|| format!("removing the session's home {}", home.display()))?;
    }
    ran?;
    Ok(Exit::Success)
}
