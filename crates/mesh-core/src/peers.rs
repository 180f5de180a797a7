//! What this node believes about its peers' load, from their gossiped [`Status`].
//!
//! A peer is alive while its status keeps arriving; one silent for `expiry` is dead. The
//! load view is stale by up to one gossip interval, which is fine: it only guides victim
//! choice, and a steal that finds nothing zeroes that peer's advertised queue until its next
//! status, so a thief never asks the same empty victim twice in a row.
//!
//! Peers are near (on this node's LAN) unless the network layer marks them remote
//! ([`Peers::set_remote`]), so that a thief can steal near and far apart (cluster-aware
//! random stealing, after Satin: van Nieuwpoort et al., PPoPP 2001).

use super::needs::Facts;
use crate::id::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// Which peers a draw may pick: those on this node's LAN, those on others, or any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Near,
    Far,
    All,
}

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
    /// The peers advertising queued work, for an O(1) victim draw in big meshes; near
    /// ones first, then remote ones.
    with_work: [Index; 2],
    /// The peers with an idle worker and nothing queued, lending: where work may be
    /// pushed without waiting for a steal. Near, then remote.
    idle: [Index; 2],
    /// Every peer, near then remote, for random asks.
    members: [Index; 2],
    /// The peers on another LAN, as the network layer says; kept while the peer is known.
    remote: HashSet<NodeId>,
    /// The peers this node last granted work to, newest last: they hold about half of
    /// what it had, so they are where a thief it cannot serve should look next. Fresher
    /// than any gossip.
    granted: VecDeque<NodeId>,
    /// Thieves this node answered with nothing, and when: its lifelines. When it has
    /// work to spare it hands some to them, newest first.
    waiting: VecDeque<(NodeId, Instant)>,
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
        self.unindex(peer);
        self.granted.retain(|&p| p != peer);
        self.waiting.retain(|&(p, _)| p != peer);
        self.remote.remove(&peer);
        self.facts.remove(&peer);
        self.map.remove(&peer).is_some()
    }

    /// Marks `peer` as on another LAN (or not). Kept, like its facts, until the peer is
    /// removed; the network layer says it again with every announce.
    pub fn set_remote(&mut self, peer: NodeId, remote: bool) {
        if self.is_remote(peer) == remote {
            return;
        }
        self.unindex(peer);
        if remote {
            self.remote.insert(peer);
        } else {
            self.remote.remove(&peer);
        }
        if let Some(status) = self.map.get(&peer).map(|p| p.status) {
            self.index(peer, &status);
        }
    }

    pub fn is_remote(&self, peer: NodeId) -> bool {
        self.remote.contains(&peer)
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
        let at = usize::from(self.is_remote(peer));
        self.members[at].set(peer, true);
        self.with_work[at].set(peer, s.queued > 0);
        self.idle[at].set(peer, s.queued == 0 && s.busy < s.workers);
    }

    fn unindex(&mut self, peer: NodeId) {
        for i in self.with_work.iter_mut().chain(self.idle.iter_mut()).chain(self.members.iter_mut()) {
            i.set(peer, false);
        }
    }

    /// Whether this node believes `peer` has queued work.
    pub fn advertises_work(&self, peer: NodeId) -> bool {
        self.map.get(&peer).is_some_and(|p| p.status.queued > 0)
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
        for i in &mut self.with_work {
            i.set(peer, false);
        }
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
            self.unindex(peer);
        }
    }

    /// A random idle peer (an idle worker, nothing queued, lending), near ones first.
    pub fn choose_idle(&self, rng: &mut fastrand::Rng) -> Option<NodeId> {
        draw(&self.idle, rng, Reach::Near).or_else(|| draw(&self.idle, rng, Reach::Far))
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

    /// A random peer within `reach`.
    pub fn choose_any(&self, rng: &mut fastrand::Rng, reach: Reach) -> Option<NodeId> {
        draw(&self.members, rng, reach)
    }

    /// Notes a thief this node had nothing for.
    pub fn note_waiting(&mut self, thief: NodeId, now: Instant) {
        self.waiting.retain(|&(p, _)| p != thief);
        if self.waiting.len() == WAITING_KEPT {
            self.waiting.pop_front();
        }
        self.waiting.push_back((thief, now));
    }

    /// The newest thief that asked in vain within `within`, taken off the list.
    pub fn take_waiting(&mut self, now: Instant, within: Duration) -> Option<NodeId> {
        self.waiting.retain(|&(_, at)| now.saturating_duration_since(at) <= within);
        self.waiting.pop_back().map(|(p, _)| p)
    }

    /// Notes that this node granted work to `peer`.
    pub fn note_grant(&mut self, peer: NodeId) {
        self.waiting.retain(|&(p, _)| p != peer);
        self.granted.retain(|&p| p != peer);
        if self.granted.len() == GRANTED_KEPT {
            self.granted.pop_front();
        }
        self.granted.push_back(peer);
    }

    /// Where a thief this node could not serve should ask next: the newest peer this node
    /// granted work to, other than the thief. Each is named once: it gave half away or
    /// ran it by the next time. Believed queues are not named: gossip is staler than the
    /// thief's own view soon will be, and measured, naming them cost about 30 % more steal
    /// messages at 1,000 nodes for no gain (docs/SCALING.md).
    pub fn choose_hint(&mut self, thief: NodeId) -> Option<NodeId> {
        let newest = self.granted.iter().rposition(|&p| p != thief)?;
        self.granted.remove(newest)
    }

    /// Picks a victim within `reach`: the busiest of `choices` random draws from the peers
    /// that advertise queued work ("power of d choices", `Config::victim_choices`), which
    /// spreads thieves while still favouring big queues.
    pub fn choose_victim(&self, rng: &mut fastrand::Rng, reach: Reach, choices: usize) -> Option<NodeId> {
        let queued = |id: NodeId| self.map.get(&id).map_or(0, |p| p.status.queued);
        let mut best = draw(&self.with_work, rng, reach)?;
        for _ in 1..choices {
            let c = draw(&self.with_work, rng, reach)?;
            // Of equal queues the first drawn: a random one, so that thieves spread over
            // the many short queues at the end of a job.
            if queued(c) > queued(best) {
                best = c;
            }
        }
        Some(best)
    }
}

/// A random peer of `lists` within `reach`.
fn draw(lists: &[Index; 2], rng: &mut fastrand::Rng, reach: Reach) -> Option<NodeId> {
    let [near, far] = [&lists[0].list, &lists[1].list];
    let (n, first) = match reach {
        Reach::Near => (near.len(), 0),
        Reach::Far => (far.len(), near.len()),
        Reach::All => (near.len() + far.len(), 0),
    };
    (n > 0).then(|| {
        let i = first + draw_index(rng, n);
        if i < near.len() { near[i] } else { far[i - near.len()] }
    })
}

/// Grantees kept for hints.
const GRANTED_KEPT: usize = 8;
/// Lifelines kept: thieves to hand work to unasked.
const WAITING_KEPT: usize = 8;

/// A random index below `len` (> 0); no draw when there is one choice.
fn draw_index(rng: &mut fastrand::Rng, len: usize) -> usize {
    if len == 1 { 0 } else { rng.usize(..len) }
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
        assert_eq!(p.choose_victim(&mut rng, Reach::All, 8), None);
        assert!(!p.update(t0, NodeId(1), st(5)));
        p.update(t0 + Duration::from_secs(2), NodeId(2), st(9));
        for _ in 0..20 {
            assert!(p.choose_victim(&mut rng, Reach::All, 8).is_some());
        }
        p.mark_empty(NodeId(2));
        assert_eq!(p.choose_victim(&mut rng, Reach::All, 8), Some(NodeId(1)));
        let dead = p.expire(t0 + Duration::from_secs(3), Duration::from_secs(2));
        assert_eq!(dead, vec![NodeId(1)]);
        assert_eq!(p.len(), 1);
        p.remove(NodeId(2));
        assert_eq!(p.choose_victim(&mut rng, Reach::All, 8), None);
    }

    #[test]
    fn the_work_index_follows_every_change() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        let mut rng = fastrand::Rng::with_seed(3);
        // Equal queues, so that every peer with work may be drawn.
        for i in 0..50 {
            p.update(t0, NodeId(i), st((i % 3).min(1)));
        }
        p.mark_empty(NodeId(1));
        p.remove(NodeId(2));
        p.update(t0, NodeId(4), st(0));
        let want: std::collections::BTreeSet<NodeId> =
            p.iter().filter(|(_, i)| i.status.queued > 0).map(|(&id, _)| id).collect();
        let got: std::collections::BTreeSet<NodeId> =
            (0..2000).filter_map(|_| p.choose_victim(&mut rng, Reach::All, 8)).collect();
        assert!(got.is_subset(&want), "only peers with work are chosen");
        assert!(got.len() >= want.len() / 2, "draws reach most of them: {} of {}", got.len(), want.len());
    }

    #[test]
    fn choices_favour_the_busier_peer() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        p.update(t0, NodeId(1), st(1));
        p.update(t0, NodeId(2), st(100));
        let mut rng = fastrand::Rng::with_seed(7);
        let mut picks = |d| (0..10_000).filter(|_| p.choose_victim(&mut rng, Reach::All, d) == Some(NodeId(2))).count();
        // The busier peer wins unless every draw hits the other: 3/4 of the time with two
        // draws, 1 - 2^-8 with eight.
        let (two, eight) = (picks(2), picks(8));
        assert!((7_200..7_800).contains(&two), "{two}");
        assert!((9_900..10_000).contains(&eight), "{eight}");
    }

    #[test]
    fn near_peers_first_hints_and_lifelines() {
        let t0 = Instant::now();
        let mut p = Peers::default();
        let mut rng = fastrand::Rng::with_seed(9);
        for i in 1..=4 {
            p.update(t0, NodeId(i), st(5));
        }
        p.set_remote(NodeId(3), true);
        p.set_remote(NodeId(4), true);
        let drawn = |p: &Peers, rng: &mut fastrand::Rng, reach| -> std::collections::BTreeSet<NodeId> {
            (0..200).filter_map(|_| p.choose_victim(rng, reach, 8)).collect()
        };
        assert_eq!(drawn(&p, &mut rng, Reach::Near), [NodeId(1), NodeId(2)].into());
        assert_eq!(drawn(&p, &mut rng, Reach::Far), [NodeId(3), NodeId(4)].into());
        assert_eq!(drawn(&p, &mut rng, Reach::All).len(), 4, "random stealing draws every peer");
        p.set_remote(NodeId(4), false);
        assert_eq!(drawn(&p, &mut rng, Reach::Far), [NodeId(3)].into(), "back on this LAN");
        p.set_remote(NodeId(4), true);
        p.mark_empty(NodeId(1));
        p.mark_empty(NodeId(2));
        assert_eq!(p.choose_victim(&mut rng, Reach::Near, 8), None);
        // Hints: the newest grantee other than the thief, each named once.
        p.note_grant(NodeId(1));
        p.note_grant(NodeId(2));
        assert_eq!(p.choose_hint(NodeId(2)), Some(NodeId(1)));
        assert_eq!(p.choose_hint(NodeId(3)), Some(NodeId(2)));
        assert_eq!(p.choose_hint(NodeId(3)), None, "each is named once");
        p.note_grant(NodeId(3));
        assert_eq!(p.choose_hint(NodeId(3)), None, "never the thief itself");
        // Lifelines: newest first, forgotten when old or granted to.
        p.note_waiting(NodeId(1), t0);
        p.note_waiting(NodeId(2), t0 + Duration::from_secs(2));
        p.note_waiting(NodeId(3), t0 + Duration::from_secs(2));
        p.note_grant(NodeId(3));
        let later = t0 + Duration::from_millis(2500);
        assert_eq!(p.take_waiting(later, Duration::from_secs(1)), Some(NodeId(2)));
        assert_eq!(p.take_waiting(later, Duration::from_secs(1)), None, "node 1 waited too long ago");
        p.note_waiting(NodeId(4), later);
        p.remove(NodeId(4));
        assert_eq!(p.take_waiting(later, Duration::from_secs(1)), None, "a gone thief is no lifeline");
        assert_eq!(p.choose_victim(&mut rng, Reach::Far, 8), Some(NodeId(3)));
    }
}
