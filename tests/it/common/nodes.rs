//! Real nodes in one process over loopback TCP, mDNS off, `--peer` addresses: the node
//! layer without root. Each test makes its own cluster; the homes go when it stops.

use mesh::exec::primes;
use mesh::job::{Algo, JobSpec, PrimesJob, Split, Target};
use mesh::node::{Client, Control, JobReport, JobResults, NetConfig, Node, NodeConfig, PeerState, PrimesResult};
use mesh::secret::SharedKey;
use std::path::PathBuf;
use std::time::Duration;

/// Against hangs only: a healthy run takes a small part of this, even with every test of
/// this file running at once on a loaded 2-core machine.
pub(crate) const LIMIT: Duration = Duration::from_secs(180);

/// Whether this process may act as a second uid (root; CI runs as root). A test that
/// needs one says it is skipped otherwise.
pub(crate) fn root_for_a_second_uid() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root for a second uid");
    }
    root
}

/// Nodes of one test, each with its own home; the homes go when it ends.
pub(crate) struct Cluster {
    pub(crate) dir: PathBuf,
    nodes: Vec<(String, Client, Option<Node>)>,
}

impl Cluster {
    pub(crate) fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mesh-node-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self { dir, nodes: Vec::new() }
    }

    pub(crate) fn home(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub(crate) fn config(&self, name: &str, peers: Vec<libp2p::Multiaddr>, control: bool) -> NodeConfig {
        NodeConfig {
            network: Some(NetConfig {
                key: SharedKey::from_passphrase("in-process").unwrap(),
                listen: "/ip4/127.0.0.1/tcp/0".parse().unwrap(),
                static_peers: peers,
                mdns: false,
            }),
            control: if control { Control::Owner } else { Control::Off },
            allow_run: true,
            ..NodeConfig::new(name.into(), self.home(name), 1)
        }
    }

    /// Starts node `name`, dialing the listen addresses of the nodes already started.
    pub(crate) async fn add(&mut self, name: &str, control: bool) -> Client {
        self.add_with(name, |c| c.control = if control { Control::Owner } else { Control::Off }).await
    }

    /// Starts node `name` with its control socket open to group `gid`, laid out as the
    /// service's unit does it (the home 0750 and the socket 0660, both of the group): a
    /// second uid of that group can then speak to it. Root only. The socket's path.
    pub(crate) async fn add_group_node(&mut self, name: &str, gid: u32) -> (Client, PathBuf) {
        let client = self.add_with(name, |cfg| cfg.control = Control::Group).await;
        let home = self.home(name);
        let socket = home.join("control.sock");
        for (path, mode) in [(&self.dir, 0o755), (&home, 0o750), (&socket, 0o660)] {
            std::os::unix::fs::chown(path, None, Some(gid)).unwrap();
            std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
        }
        (client, socket)
    }

    /// Starts node `name` with its configuration changed by `tweak`.
    pub(crate) async fn add_with(&mut self, name: &str, tweak: impl FnOnce(&mut NodeConfig)) -> Client {
        let mut peers = Vec::new();
        for (_, client, _) in &self.nodes {
            peers.push(listen_addr(client).await);
        }
        let mut cfg = self.config(name, peers, false);
        tweak(&mut cfg);
        let (client, node) = Node::spawn(cfg).await.unwrap();
        self.nodes.push((name.into(), client.clone(), Some(node)));
        client
    }

    /// `n` nodes named a, b, c…, each listing all the others as members.
    pub(crate) async fn mesh(tag: &str, n: usize) -> (Self, Vec<Client>) {
        let mut c = Self::new(tag);
        let mut clients = Vec::new();
        for name in ["a", "b", "c", "d", "e"].into_iter().take(n) {
            clients.push(c.add(name, false).await);
        }
        for client in &clients {
            until(|| async { members(client).await.len() == n - 1 }).await;
        }
        (c, clients)
    }

    pub(crate) async fn stop(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|(n, ..)| n == name).and_then(|(_, _, node)| node.take());
        node.expect("a running node").stop().await.unwrap();
    }

    pub(crate) async fn stop_all(mut self) {
        for (_, _, node) in &mut self.nodes {
            if let Some(node) = node.take() {
                node.stop().await.unwrap();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `check` until it holds; panics after [`LIMIT`].
pub(crate) async fn until<F: Future<Output = bool>>(mut check: impl FnMut() -> F) {
    let polled = async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(LIMIT, polled).await.expect("the condition never held");
}

pub(crate) async fn listen_addr(client: &Client) -> libp2p::Multiaddr {
    until(|| async { !client.peers().await.unwrap().rows[0].addrs.is_empty() }).await;
    client.peers().await.unwrap().rows[0].addrs[0].parse().unwrap()
}

/// Names of the other members a node lists.
pub(crate) async fn members(client: &Client) -> Vec<String> {
    let rows = client.peers().await.unwrap().rows;
    let mut names: Vec<String> =
        rows.into_iter().filter(|r| !r.is_self && r.state == PeerState::Member).map(|r| r.name).collect();
    names.sort();
    names
}

pub(crate) async fn run(client: &Client, job: JobSpec) -> JobReport {
    let mut h = client.submit(job).await.unwrap();
    tokio::time::timeout(LIMIT, &mut h.done).await.expect("the job never finished").unwrap()
}

pub(crate) fn demo(first: u64, last: u64) -> JobSpec {
    JobSpec::Primes(PrimesJob::new(Target::Each { first, last }, Algo::Trial, Split::Auto { workers: 1 }).unwrap())
}

pub(crate) fn expected(first: u64, last: u64) -> JobResults {
    JobResults::Primes((first..=last).map(|n| PrimesResult { n, sum: primes::sieve(0, n).sum }).collect())
}

pub(crate) fn tasks_of(report: &JobReport, name: &str) -> u64 {
    report.nodes.iter().filter(|n| n.name == name).map(|n| n.tasks).sum()
}
