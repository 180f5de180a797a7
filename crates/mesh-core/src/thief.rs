//! The thief's side of stealing: the one request a node has out (and, cluster-aware, one
//! more across the slow link to another LAN), request ids, the exponential backoff after a
//! steal that brought nothing, hint hops and random asks. Timers stay with the scheduler;
//! this type only says when they are due.

use crate::id::NodeId;
use crate::timer::Timer;
use std::time::Duration;

/// The one steal request a node has out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub(crate) req: u64,
    pub(crate) victim: NodeId,
}

/// Which of a thief's requests: the one every thief has, or the one across the slow link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Near,
    Far,
}

impl Slot {
    /// The timer that ends a request in this slot.
    pub(crate) fn timeout(self) -> Timer {
        match self {
            Self::Near => Timer::StealTimeout,
            Self::Far => Timer::FarStealTimeout,
        }
    }
}

/// Steal requests of one node: at most one in flight (and one far), and a backoff that
/// doubles from `min` to `max` while steals come back empty.
#[derive(Debug)]
pub(crate) struct Stealing {
    in_flight: Option<InFlight>,
    /// The request to a remote peer, kept out while near ones come and go (Satin's
    /// cluster-aware random stealing: the slow link's round trip overlaps local work).
    far: Option<InFlight>,
    next_req: u64,
    backoff: Duration,
    min: Duration,
    max: Duration,
    /// Hints followed since the last backoff or success.
    hops: u32,
    /// Empty answers since the last steal that brought work.
    empties: u32,
}

/// Empty answers after which a thief stops asking random peers (with the backoff
/// doubling from 50 ms, about 1.5 s after its last success).
pub(crate) const HUNT_TRIES: u32 = 5;

/// Hints a thief follows in a row before it backs off: each costs one round trip, and a
/// chain of stale hints must end.
pub(crate) const MAX_HINT_HOPS: u32 = 3;

impl Stealing {
    pub(crate) fn new(min: Duration, max: Duration) -> Self {
        Self { in_flight: None, far: None, next_req: 0, backoff: min, min, max, hops: 0, empties: HUNT_TRIES }
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    pub(crate) fn is_waiting_far(&self) -> bool {
        self.far.is_some()
    }

    /// A new request to `victim` (`far`: across the slow link); returns its id.
    pub(crate) fn ask(&mut self, victim: NodeId, far: bool) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        let slot = if far { &mut self.far } else { &mut self.in_flight };
        *slot = Some(InFlight { req, victim });
        req
    }

    /// `victim` answered request `req`: which request out it was, if one (late answers
    /// to timed-out requests are not).
    pub(crate) fn answered(&mut self, req: u64, victim: NodeId) -> Option<Slot> {
        let this = Some(InFlight { req, victim });
        if self.in_flight == this {
            self.in_flight = None;
            Some(Slot::Near)
        } else if self.far == this {
            self.far = None;
            Some(Slot::Far)
        } else {
            None
        }
    }

    /// A request timed out: its victim, if there was one.
    pub(crate) fn timed_out(&mut self, slot: Slot) -> Option<NodeId> {
        match slot {
            Slot::Near => self.in_flight.take(),
            Slot::Far => self.far.take(),
        }
        .map(|f| f.victim)
    }

    /// `peer` is gone: the requests out that went to it, which are dropped.
    pub(crate) fn peer_gone(&mut self, peer: NodeId) -> Vec<Slot> {
        let mut lost = Vec::new();
        if self.in_flight.is_some_and(|f| f.victim == peer) {
            self.in_flight = None;
            lost.push(Slot::Near);
        }
        if self.far.is_some_and(|f| f.victim == peer) {
            self.far = None;
            lost.push(Slot::Far);
        }
        lost
    }

    /// Whether to ask random peers when none is believed to have work: only shortly
    /// after a steal brought work, when the job it came from likely has more that gossip
    /// has not told of. A node that never found work, or stopped finding it, or heard its
    /// jobs end, asks nobody: an idle mesh stays silent.
    pub(crate) fn hunting(&self) -> bool {
        self.empties < HUNT_TRIES
    }

    /// A peer told of new work: ask around for a while.
    pub(crate) fn saw_work(&mut self) {
        self.empties = 0;
    }

    /// The jobs this node knew of ended: no more random asks.
    pub(crate) fn stop_hunting(&mut self) {
        self.empties = HUNT_TRIES;
    }

    /// An empty answer named a peer with work: whether to ask it now (at most
    /// [`MAX_HINT_HOPS`] in a row).
    pub(crate) fn follow_hint(&mut self) -> bool {
        self.hops += 1;
        self.hops <= MAX_HINT_HOPS
    }

    /// A steal came back empty: how long to wait before the next, doubling the wait after.
    pub(crate) fn back_off(&mut self) -> Duration {
        self.hops = 0;
        self.empties = self.empties.saturating_add(1);
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(self.max);
        wait
    }

    /// A steal brought work: the next empty one waits the shortest time again.
    pub(crate) fn succeeded(&mut self) {
        self.hops = 0;
        self.empties = 0;
        self.backoff = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_at_a_time_with_doubling_backoff() {
        let (a, b) = (NodeId(1), NodeId(2));
        let mut s = Stealing::new(Duration::from_millis(50), Duration::from_millis(150));
        let r0 = s.ask(a, false);
        assert!(s.is_waiting());
        assert_eq!(s.answered(r0, b), None, "an answer from another node is not ours");
        assert_eq!(s.answered(r0 + 1, a), None, "nor one to another request");
        assert!(s.answered(r0, a) == Some(Slot::Near) && !s.is_waiting());
        assert_eq!(s.answered(r0, a), None, "a late second answer");
        let waits: Vec<u128> = (0..4).map(|_| s.back_off().as_millis()).collect();
        assert_eq!(waits, [50, 100, 150, 150]);
        s.succeeded();
        assert_eq!(s.back_off(), Duration::from_millis(50));
        let r1 = s.ask(b, false);
        assert_ne!(r0, r1);
        assert!(s.peer_gone(a).is_empty() && s.peer_gone(b) == [Slot::Near] && !s.is_waiting());
        s.ask(a, false);
        assert_eq!(s.timed_out(Slot::Near), Some(a));
        assert_eq!(s.timed_out(Slot::Near), None);
        // One far request besides the near one.
        let (near, far) = (s.ask(a, false), s.ask(b, true));
        assert!(s.is_waiting() && s.is_waiting_far());
        assert_eq!(s.answered(far, b), Some(Slot::Far));
        assert!(s.is_waiting() && !s.is_waiting_far());
        s.ask(a, true);
        assert_eq!(s.peer_gone(a), [Slot::Near, Slot::Far]);
        assert_eq!(s.answered(near, a), None);
        let follows: Vec<bool> = (0..5).map(|_| s.follow_hint()).collect();
        assert_eq!(follows, [true, true, true, false, false]);
        s.back_off();
        assert!(s.follow_hint(), "a backoff starts a new chain");
    }

    #[test]
    fn random_asks_only_for_a_while_after_finding_work() {
        let mut s = Stealing::new(Duration::from_millis(50), Duration::from_millis(150));
        assert!(!s.hunting(), "a node that never found work asks nobody");
        s.succeeded();
        for _ in 0..HUNT_TRIES {
            assert!(s.hunting());
            s.back_off();
        }
        assert!(!s.hunting(), "stops after {HUNT_TRIES} empty answers");
        s.succeeded();
        s.stop_hunting();
        assert!(!s.hunting(), "its jobs ended");
    }
}
