//! A token bucket with time passed in: `rate` tokens a second, at most `burst` held. The
//! scheduler bounds each peer's steal requests with one, and the mDNS bridge the records
//! it passes on.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self { rate, burst, tokens: burst, at: now }
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Takes a token now or, if there is none, the next one due: returns how long to wait
    /// for it. Each caller waits its turn, so the tokens still pass at `rate`.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = self.at.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_only_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(20.0, 64.0, t0);
        assert_eq!((0..1000).filter(|_| b.take(t0)).count(), 64);
        // Ten seconds of a flood (ten tries a millisecond): the rate's worth gets through.
        let mut passed = 0;
        for ms in 1..=10_000u64 {
            let now = t0 + Duration::from_millis(ms);
            passed += (0..10).filter(|_| b.take(now)).count();
        }
        assert!((199..=200).contains(&passed), "{passed} passed in 10 s at 20/s");
        // A quiet hour refills it, to the burst and no further.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!((0..1000).filter(|_| b.take(later)).count(), 64);
        // Time that goes backwards gives nothing.
        assert!(!b.take(t0));
    }

    #[test]
    fn reservations_wait_their_turn_at_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(100.0, 2.0, t0);
        let waits: Vec<Duration> = (0..5).map(|_| b.reserve(t0)).collect();
        let ms: Vec<u128> = waits.iter().map(|w| w.as_millis()).collect();
        assert_eq!(ms, [0, 0, 10, 20, 30], "the burst at once, then one every 10 ms");
        // Once those are paid for, the next is due at the rate again.
        assert_eq!(b.reserve(t0 + Duration::from_millis(30)).as_millis(), 10);
    }
}
