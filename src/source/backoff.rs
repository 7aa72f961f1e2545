//! Reconnect delays: exponential with full jitter.
//!
//! Full jitter (a uniformly random delay up to the exponential cap) keeps
//! a house full of gateways, or one gateway's many devices, from retrying
//! in lock-step after a shared outage.

use std::time::Duration;

/// Exponential backoff with full jitter.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    /// Delays start below `base` and are capped at `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        // Jitter only needs to differ between processes and devices, not
        // to be unpredictable, so the clock and the pid seed it.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64 ^ d.as_secs())
            .unwrap_or(0);
        Self::with_seed(base, max, nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// As [`Backoff::new`], with a fixed jitter seed (tests).
    pub fn with_seed(base: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
            rng: seed,
        }
    }

    /// The next delay: uniform in [cap/2, cap] where cap doubles each attempt
    /// up to `max`. (Half the cap as a floor keeps a flapping link from
    /// retrying almost immediately by chance.)
    pub fn next_delay(&mut self) -> Duration {
        let cap = self
            .base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        let half = cap / 2;
        let spread = (cap - half).as_millis() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            self.next_u64() % (spread + 1)
        };
        half + Duration::from_millis(jitter)
    }

    /// Number of consecutive failures so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to the first delay, after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next_u64(&mut self) -> u64 {
        // splitmix64
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_with_jitter_and_reset() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(5), 7);
        let mut caps = Vec::new();
        for i in 0..10u32 {
            let cap = Duration::from_millis(100 * (1u64 << i)).min(Duration::from_secs(5));
            let d = b.next_delay();
            assert!(
                d >= cap / 2 && d <= cap,
                "attempt {i}: {d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
            caps.push(d);
        }
        assert!(caps.iter().skip(6).all(|d| *d <= Duration::from_secs(5)));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn two_gateways_do_not_retry_in_lock_step() {
        let mut a = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 1);
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 2);
        let same = (0..8).filter(|_| a.next_delay() == b.next_delay()).count();
        assert!(same < 2);
    }
}
