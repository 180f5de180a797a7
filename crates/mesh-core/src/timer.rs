//! The scheduler's timers: a fixed enum and a table of deadlines, one slot per kind.
//!
//! Every timer the core needs is one of a handful of kinds, and at most one of each kind is
//! armed at a time, so a small array beats a heap: arming and cancelling are O(1), and
//! `next()` scans a few slots.

use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Publish our status.
    Gossip,
    /// Look for peers that went silent.
    PeerSweep,
    /// The steal request in flight has waited long enough.
    StealTimeout,
    /// The one across the slow link (to a remote peer) has.
    FarStealTimeout,
    /// Backoff after a failed steal is over; try again.
    StealRetry,
    /// Send the buffered results.
    FlushResults,
    /// Send again what did not arrive.
    Resend,
    /// A pause after the node's own faults is over (`faults`).
    Resume,
}

impl Timer {
    const ALL: [Self; 8] = [
        Self::Gossip,
        Self::PeerSweep,
        Self::StealTimeout,
        Self::FarStealTimeout,
        Self::StealRetry,
        Self::FlushResults,
        Self::Resend,
        Self::Resume,
    ];
}

#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    slots: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, t: Timer, at: Instant) {
        self.slots[t as usize] = Some(at);
    }

    /// Arms `t` unless it is already armed for an earlier time.
    pub(crate) fn set_if_earlier(&mut self, t: Timer, at: Instant) {
        let slot = &mut self.slots[t as usize];
        if slot.is_none_or(|cur| at < cur) {
            *slot = Some(at);
        }
    }

    pub(crate) fn stop(&mut self, t: Timer) {
        self.slots[t as usize] = None;
    }

    pub(crate) fn is_armed(&self, t: Timer) -> bool {
        self.slots[t as usize].is_some()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.slots.iter().flatten().min().copied()
    }

    /// Disarms and returns the timers due at `now`.
    pub(crate) fn expired(&mut self, now: Instant) -> impl Iterator<Item = Timer> + use<> {
        let mut due = Vec::new();
        for t in Timer::ALL {
            if self.slots[t as usize].is_some_and(|at| at <= now) {
                self.slots[t as usize] = None;
                due.push(t);
            }
        }
        due.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_first_and_disarm_on_expiry() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut tt = TimerTable::default();
        tt.set(Timer::Gossip, t0 + 3 * s);
        tt.set(Timer::StealRetry, t0 + s);
        tt.set_if_earlier(Timer::StealRetry, t0 + 2 * s);
        assert_eq!(tt.next(), Some(t0 + s));
        assert_eq!(tt.expired(t0 + s).collect::<Vec<_>>(), vec![Timer::StealRetry]);
        assert!(!tt.is_armed(Timer::StealRetry));
        tt.stop(Timer::Gossip);
        assert_eq!(tt.next(), None);
    }
}
