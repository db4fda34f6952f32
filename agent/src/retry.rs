//! When to try again after a failed delivery.

use std::time::Duration;

/// How long to wait after failed deliveries; [`Backoff`] in production.
pub trait RetryPolicy: Send + 'static {
    /// The wait before the next attempt, after one more failure.
    fn on_failure(&mut self) -> Duration;
    /// A delivery went through: the next failure waits as little as the first.
    fn on_success(&mut self);
}

/// Exponential back-off with "equal jitter": the wait doubles per failure up to `cap`, and half
/// of it is random so that a fleet that lost the backend together does not return in step.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    /// Waits from `base`, doubling up to `cap`; the same `seed` gives the same jitter.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Self {
        Self { base, cap, failures: 0, rng: fastrand::Rng::with_seed(seed) }
    }

    /// The bounds of the next wait, for tests and the simulator's checks.
    pub fn bounds(base: Duration, cap: Duration, failures: u32) -> (Duration, Duration) {
        let full = base.saturating_mul(1u32 << failures.min(20)).min(cap);
        (full / 2, full)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60), fastrand::u64(..))
    }
}

impl RetryPolicy for Backoff {
    fn on_failure(&mut self) -> Duration {
        let (low, high) = Self::bounds(self.base, self.cap, self.failures);
        self.failures = self.failures.saturating_add(1);
        let spread = (high - low).as_millis() as u64;
        low + Duration::from_millis(self.rng.u64(0..=spread))
    }

    fn on_success(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_then_caps_then_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let waits: Vec<Duration> = (0..10).map(|_| b.on_failure()).collect();
        assert!(waits[0] <= Duration::from_secs(1));
        assert!(waits[9] >= Duration::from_secs(30) && waits[9] <= Duration::from_secs(60));
        b.on_success();
        assert!(b.on_failure() <= Duration::from_secs(1));
    }

    proptest! {
        #[test]
        fn every_wait_is_within_its_bounds(seed in any::<u64>(), failures in 0u32..40) {
            let (base, cap) = (Duration::from_millis(500), Duration::from_secs(60));
            let mut b = Backoff::new(base, cap, seed);
            for n in 0..failures {
                let wait = b.on_failure();
                let (low, high) = Backoff::bounds(base, cap, n);
                prop_assert!(wait >= low && wait <= high, "{wait:?} not in {low:?}..{high:?}");
                prop_assert!(wait <= cap);
            }
        }
    }
}
