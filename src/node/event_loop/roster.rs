//! Every node this node has seen in the mesh, by name, so that a job's statistics name a
//! node whatever became of it: still here, left with a goodbye, or lost (killed, unplugged;
//! shown as "h2 (lost)"). At most [`ROSTER_SIZE`] nodes are remembered; the ones gone
//! longest are forgotten first.

use crate::id::NodeId;
use crate::node::api::report::NodeInfo;
use libp2p::PeerId;
use std::collections::{HashMap, VecDeque};

/// Nodes remembered.
pub(crate) const ROSTER_SIZE: usize = 4096;

/// What became of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Here,
    Left,
    Lost,
}

#[derive(Debug, Clone)]
struct Known {
    name: String,
    peer_id: PeerId,
    workers: u32,
    fate: Fate,
}

#[derive(Debug, Default)]
pub(super) struct Roster {
    nodes: HashMap<NodeId, Known>,
    /// Oldest news first: the next to forget.
    order: VecDeque<NodeId>,
}

impl Roster {
    /// `node` is in the mesh under this name.
    pub(super) fn here(&mut self, node: NodeId, peer_id: PeerId, name: &str, workers: u32) {
        let known = Known { name: name.to_string(), peer_id, workers, fate: Fate::Here };
        if self.nodes.insert(node, known).is_none() {
            self.order.push_back(node);
            if self.order.len() > ROSTER_SIZE
                && let Some(old) = self.order.pop_front()
            {
                self.nodes.remove(&old);
            }
        }
    }

    /// `node` is gone: with a goodbye, or `lost`.
    pub(super) fn gone(&mut self, node: NodeId, lost: bool) {
        if let Some(k) = self.nodes.get_mut(&node) {
            k.fate = if lost { Fate::Lost } else { Fate::Left };
        }
    }

    /// How the statistics name `node`, if it was ever seen.
    /// The name the statistics give `node`, as [`Self::info`] does, without the rest.
    pub(super) fn name(&self, node: NodeId) -> Option<String> {
        let k = self.nodes.get(&node)?;
        Some(if k.fate == Fate::Lost { format!("{} (lost)", k.name) } else { k.name.clone() })
    }

    pub(super) fn info(&self, node: NodeId) -> Option<NodeInfo> {
        let k = self.nodes.get(&node)?;
        Some(NodeInfo { name: self.name(node)?, peer_id: k.peer_id.to_base58(), workers: k.workers })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_outlive_their_nodes_and_the_dead_are_marked() {
        let (a, b) = (NodeId(1), NodeId(2));
        let mut r = Roster::default();
        r.here(a, PeerId::random(), "h1", 2);
        r.here(b, PeerId::random(), "h2", 1);
        r.gone(a, false);
        r.gone(b, true);
        assert_eq!(r.info(a).unwrap().name, "h1", "it left with a goodbye");
        assert_eq!(r.info(b).unwrap().name, "h2 (lost)");
        assert_eq!(r.info(b).unwrap().workers, 1);
        r.here(b, PeerId::random(), "h2", 1);
        assert_eq!(r.info(b).unwrap().name, "h2", "back again");
        assert!(r.info(NodeId(3)).is_none());
    }

    #[test]
    fn it_stays_bounded() {
        let mut r = Roster::default();
        for i in 0..=ROSTER_SIZE as u64 {
            r.here(NodeId(i), PeerId::random(), "n", 1);
        }
        assert!(r.info(NodeId(0)).is_none(), "the oldest is forgotten");
        assert_eq!((r.nodes.len(), r.order.len()), (ROSTER_SIZE, ROSTER_SIZE));
    }
}
