//! The thief's side of stealing: the one request a node has out, request ids, and the
//! exponential backoff after a steal that brought nothing. Timers stay with the
//! scheduler; this type only says when they are due.

use crate::id::NodeId;
use std::time::Duration;

/// The one steal request a node has out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InFlight {
    pub(crate) req: u64,
    pub(crate) victim: NodeId,
}

/// Steal requests of one node: at most one in flight, and a backoff that doubles from
/// `min` to `max` while steals come back empty.
#[derive(Debug)]
pub(crate) struct Stealing {
    in_flight: Option<InFlight>,
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
        Self { in_flight: None, next_req: 0, backoff: min, min, max, hops: 0, empties: HUNT_TRIES }
    }

    pub(crate) fn is_waiting(&self) -> bool {
        self.in_flight.is_some()
    }

    /// A new request to `victim`; returns its id.
    pub(crate) fn ask(&mut self, victim: NodeId) -> u64 {
        let req = self.next_req;
        self.next_req += 1;
        self.in_flight = Some(InFlight { req, victim });
        req
    }

    /// `victim` answered request `req`; returns whether it was the one in flight (late
    /// answers to timed-out requests are not).
    pub(crate) fn answered(&mut self, req: u64, victim: NodeId) -> bool {
        let current = self.in_flight == Some(InFlight { req, victim });
        if current {
            self.in_flight = None;
        }
        current
    }

    /// The request in flight timed out: its victim, if there was one.
    pub(crate) fn timed_out(&mut self) -> Option<NodeId> {
        self.in_flight.take().map(|f| f.victim)
    }

    /// `peer` is gone: returns whether the request in flight went to it (and is dropped).
    pub(crate) fn peer_gone(&mut self, peer: NodeId) -> bool {
        let lost = self.in_flight.is_some_and(|f| f.victim == peer);
        if lost {
            self.in_flight = None;
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
        let r0 = s.ask(a);
        assert!(s.is_waiting());
        assert!(!s.answered(r0, b), "an answer from another node is not ours");
        assert!(!s.answered(r0 + 1, a), "nor one to another request");
        assert!(s.answered(r0, a) && !s.is_waiting());
        assert!(!s.answered(r0, a), "a late second answer");
        let waits: Vec<u128> = (0..4).map(|_| s.back_off().as_millis()).collect();
        assert_eq!(waits, [50, 100, 150, 150]);
        s.succeeded();
        assert_eq!(s.back_off(), Duration::from_millis(50));
        let r1 = s.ask(b);
        assert_ne!(r0, r1);
        assert!(!s.peer_gone(a) && s.peer_gone(b) && !s.is_waiting());
        s.ask(a);
        assert_eq!(s.timed_out(), Some(a));
        assert_eq!(s.timed_out(), None);
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
