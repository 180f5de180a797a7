//! What this node believes about its peers' load, from their gossiped [`Status`].
//!
//! A peer is alive while its status keeps arriving; one silent for `expiry` is dead. The
//! load view is stale by up to one gossip interval, which is fine: it only guides victim
//! choice, and a steal that finds nothing zeroes that peer's advertised queue until its next
//! status, so a thief never asks the same empty victim twice in a row.

use super::needs::Facts;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

/// A node's load, as gossiped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Worker slots (task-running threads).
    pub workers: u32,
    /// Workers running a task now.
    pub busy: u32,
    /// Tasks queued and not started, over all jobs.
    pub queued: u64,
    /// Tasks this node has finished since it started.
    pub tasks_done: u64,
    /// Its steals that brought work since it started (for people; absent when none, and
    /// from older senders).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steals: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Copy)]
pub struct PeerInfo {
    pub status: Status,
    pub last_seen: Instant,
}

#[derive(Debug, Default)]
pub struct Peers {
    // Ordered, so iteration depends only on the order of events.
    map: BTreeMap<NodeId, PeerInfo>,
    /// The peers advertising queued work, for an O(1) victim draw in big meshes.
    with_work: Index,
    /// The peers with an idle worker and nothing queued, lending: where work may be
    /// pushed without waiting for a steal.
    idle: Index,
    /// What each peer offers, for matchmaking; kept while the peer is known.
    facts: BTreeMap<NodeId, Facts>,
}

/// The facts of a peer that has not told them: it offers nothing.
static NO_FACTS: Facts = Facts {
    arch: String::new(),
    os: String::new(),
    cores: 0,
    mem_mb: 0,
    allow_run: false,
    labels: Vec::new(),
    python: None,
};

impl Peers {
    /// Records a status; returns true if the peer was not known (new or back from the dead).
    pub fn update(&mut self, now: Instant, peer: NodeId, status: Status) -> bool {
        self.index(peer, &status);
        self.map.insert(peer, PeerInfo { status, last_seen: now }).is_none()
    }

    pub fn remove(&mut self, peer: NodeId) -> bool {
        self.with_work.set(peer, false);
        self.idle.set(peer, false);
        self.facts.remove(&peer);
        self.map.remove(&peer).is_some()
    }

    /// Records what a peer offers.
    pub fn set_facts(&mut self, peer: NodeId, facts: Facts) {
        if self.facts.get(&peer) != Some(&facts) {
            self.facts.insert(peer, facts);
        }
    }

    /// What a peer offers; nothing if it has not said.
    pub fn facts(&self, peer: NodeId) -> &Facts {
        self.facts.get(&peer).unwrap_or(&NO_FACTS)
    }

    /// Keeps the indexes in step with `peer`'s status.
    fn index(&mut self, peer: NodeId, s: &Status) {
        self.with_work.set(peer, s.queued > 0);
        self.idle.set(peer, s.queued == 0 && s.busy < s.workers);
    }

    pub fn contains(&self, peer: NodeId) -> bool {
        self.map.contains_key(&peer)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &PeerInfo)> {
        self.map.iter()
    }

    /// Forgets a peer's queued work after it answered a steal with nothing.
    pub fn mark_empty(&mut self, peer: NodeId) {
        if let Some(p) = self.map.get_mut(&peer) {
            p.status.queued = 0;
        }
        self.with_work.set(peer, false);
    }

    /// Believes `peer` busy with `tasks` more after this node pushed them to it, until its
    /// next status: it is not pushed to again meanwhile.
    pub fn mark_fed(&mut self, peer: NodeId, tasks: u64) {
        if let Some(p) = self.map.get_mut(&peer) {
            p.status.busy = p.status.workers;
            p.status.queued += tasks;
            let status = p.status;
            self.index(peer, &status);
        } else {
            self.idle.set(peer, false);
        }
    }

    /// A random idle peer (an idle worker, nothing queued, lending), if any.
    pub fn choose_idle(&self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        self.idle.choose(rng)
    }

    /// Removes and returns the peers silent for longer than `expiry`.
    pub fn expire(&mut self, now: Instant, expiry: Duration) -> Vec<NodeId> {
        let dead: Vec<NodeId> = self
            .map
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.last_seen) > expiry)
            .map(|(&id, _)| id)
            .collect();
        for &id in &dead {
            self.remove(id);
        }
        dead
    }

    /// Picks a victim: the busier of two random peers that advertise queued work
    /// ("power of two choices"), which spreads thieves while still favouring big queues.
    pub fn choose_victim(&self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        let queued = |id: NodeId| self.map.get(&id).map_or(0, |p| p.status.queued);
        let list = &self.with_work.list;
        match list.len() {
            0 => None,
            1 => Some(list[0]),
            n => {
                let (a, b) = (list[rng.usize(..n)], list[rng.usize(..n)]);
                // Ties broken by id so the choice depends only on the seed.
                Some(if (queued(b), b) > (queued(a), a) { b } else { a })
            }
        }
    }
}

/// A set of peers with an O(1) random draw, for big meshes. Its order follows the order
/// of events, so draws depend only on the RNG seed.
#[derive(Debug, Default)]
struct Index {
    list: Vec<NodeId>,
    slot: HashMap<NodeId, usize>,
}

impl Index {
    fn set(&mut self, peer: NodeId, member: bool) {
        match (self.slot.get(&peer).copied(), member) {
            (None, true) => {
                self.slot.insert(peer, self.list.len());
                self.list.push(peer);
            }
            (Some(i), false) => {
                self.slot.remove(&peer);
                self.list.swap_remove(i);
                if let Some(&moved) = self.list.get(i) {
                    self.slot.insert(moved, i);
                }
            }
            _ => {}
        }
    }

    fn choose(&self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        match self.list.len() {
            0 => None,
            1 => Some(self.list[0]),
            n => Some(self.list[rng.usize(..n)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(queued: u64) -> Status {
        Status { workers: 1, busy: 1, queued, tasks_done: 0, steals: 0 }
    }

    #[test]
    fn victims_must_advertise_work_and_expire() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        let mut rng = fastrand::Rng::with_seed(1);
        assert!(p.update(t0, NodeId(1), st(0)));
        assert_eq!(p.choose_victim(&mut rng), None);
        assert!(!p.update(t0, NodeId(1), st(5)));
        p.update(t0 + Duration::from_secs(2), NodeId(2), st(9));
        for _ in 0..20 {
            assert!(p.choose_victim(&mut rng).is_some());
        }
        p.mark_empty(NodeId(2));
        assert_eq!(p.choose_victim(&mut rng), Some(NodeId(1)));
        let dead = p.expire(t0 + Duration::from_secs(3), Duration::from_secs(2));
        assert_eq!(dead, vec![NodeId(1)]);
        assert_eq!(p.len(), 1);
        p.remove(NodeId(2));
        assert_eq!(p.choose_victim(&mut rng), None);
    }

    #[test]
    fn the_work_index_follows_every_change() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        let mut rng = fastrand::Rng::with_seed(3);
        for i in 0..50 {
            p.update(t0, NodeId(i), st(i % 3));
        }
        p.mark_empty(NodeId(1));
        p.remove(NodeId(2));
        p.update(t0, NodeId(4), st(0));
        let want: std::collections::BTreeSet<NodeId> =
            p.iter().filter(|(_, i)| i.status.queued > 0).map(|(&id, _)| id).collect();
        let got: std::collections::BTreeSet<NodeId> = (0..2000).filter_map(|_| p.choose_victim(&mut rng)).collect();
        assert!(got.is_subset(&want), "only peers with work are chosen");
        assert!(got.len() >= want.len() / 2, "draws reach most of them: {} of {}", got.len(), want.len());
    }

    #[test]
    fn two_choices_favour_the_busier_peer() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        p.update(t0, NodeId(1), st(1));
        p.update(t0, NodeId(2), st(100));
        let mut rng = fastrand::Rng::with_seed(7);
        let picks = (0..1000).filter(|_| p.choose_victim(&mut rng) == Some(NodeId(2))).count();
        // With two draws the busier peer wins unless both draws hit the other: ~3/4.
        assert!((650..=850).contains(&picks), "{picks}");
    }
}
