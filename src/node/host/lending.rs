//! Reads what `mesh join --hours` and `--when-idle` decide from, the local time of day
//! and the machine's load, every [`LEND_EVERY`], and tells the scheduler when the answer
//! changes (`core::Availability` decides). Each change is logged once.

use crate::core::{Availability, Lending, Machine};
use crate::node::host::health;
use std::time::{Duration, Instant};

/// How often the clock and the load are read (the kernel's load average moves every 5 s).
pub(crate) const LEND_EVERY: Duration = Duration::from_secs(5);

/// The node's lending policy, as the event loop asks it.
#[derive(Debug)]
pub(crate) struct LendCheck {
    policy: Availability,
    last: Option<Instant>,
    lending: Lending,
}

impl LendCheck {
    pub(crate) fn new(policy: Availability) -> Self {
        Self { policy, last: None, lending: Lending::Yes }
    }

    /// When due, decides again from the clock and the load with `busy_workers` of this
    /// node's running. Returns the new answer when it changed.
    pub(crate) fn poll(&mut self, now: Instant, busy_workers: u32) -> Option<Lending> {
        if self.policy.is_always() || self.last.is_some_and(|t| now.saturating_duration_since(t) < LEND_EVERY) {
            return None;
        }
        let elapsed = self.last.map_or(LEND_EVERY, |t| now.saturating_duration_since(t));
        self.last = Some(now);
        let m = Machine { minute_of_day: local_minute_of_day(), load1: health::load1(), busy_workers };
        let lending = self.policy.update(m, elapsed);
        (lending != self.lending).then(|| {
            self.lending = lending;
            lending
        })
    }
}

/// Minutes after local midnight, in the machine's time zone (`/etc/localtime`, `TZ`).
fn local_minute_of_day() -> u16 {
    let t: libc::time_t =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: `tm` is a plain C struct that localtime_r fills in; both pointers are valid
    // for the call, and localtime_r is thread-safe.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if ok { (tm.tm_hour * 60 + tm.tm_min).clamp(0, 24 * 60 - 1) as u16 } else { ((t / 60) % (24 * 60)) as u16 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_time_is_a_minute_of_the_day() {
        assert!(local_minute_of_day() < 24 * 60);
    }

    #[test]
    fn a_node_without_a_policy_is_never_asked_and_one_with_hours_is_every_interval() {
        let t0 = Instant::now();
        let mut always = LendCheck::new(Availability::new(None, false));
        assert_eq!(always.poll(t0, 0), None);
        // A window that excludes the minute now: the first check says so, once.
        let now = local_minute_of_day();
        let (a, b) = ((now + 60) % 1440, (now + 120) % 1440);
        let hours = format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60).parse().unwrap();
        let mut c = LendCheck::new(Availability::new(Some(hours), false));
        assert_eq!(c.poll(t0, 0), Some(Lending::OutsideHours(hours)));
        assert_eq!(c.poll(t0 + LEND_EVERY, 0), None, "no change, nothing to say");
        assert_eq!(c.poll(t0 + LEND_EVERY + Duration::from_secs(1), 0), None, "not due yet");
    }
}
