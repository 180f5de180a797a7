//! A token bucket with time passed in: `rate` tokens a second, at most `burst` held. The
//! scheduler bounds each peer's steal requests with one, and the mDNS bridge the records
//! it passes on.

use std::time::Instant;

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
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.at = self.at.max(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
