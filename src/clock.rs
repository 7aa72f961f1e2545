//! The gateway's clock, as the stages that deal with the present see it:
//! detection's "a device has gone silent", the alert lifecycle's "nobody
//! has answered for five minutes", and the receive time stamped on every
//! reading.
//!
//! A Raspberry Pi has no real-time clock. After a power cut it starts
//! from the time saved at the last shutdown (fake-hwclock) or from 1970,
//! and NTP later steps it, usually forward, sometimes back. So:
//!
//! * [`now`] never goes backwards. A forward step is taken at once. A
//!   backward step is absorbed: the gateway's time goes on from where it
//!   was at [`CATCH_UP_RATE`] of real speed until the system clock has
//!   caught up with it (a step of D takes 10·D), so stamps stay in order
//!   and a five-minute escalation timer is at most about 11 % late
//!   meanwhile instead of late by the whole step.
//! * [`trusted`] is false while the system clock is known not to be
//!   synchronised ([`sync`]) or the gateway is absorbing a backward step;
//!   ingest then flags each reading `CLOCK_UNSYNCED` (the flag is in the
//!   stored reading: docs/FORMAT.md), which keeps the device's own time and
//!   the gateway's time side by side for whoever reads it later.
//!
//! The ledger orders blocks and records by arrival (height, record index),
//! never by time, so no clock step can reorder it; block and tree-head
//! times come from [`now`] and never decrease.
//!
//! This is process-wide state (the system clock is process-wide): a few
//! atomics and one small lock, read from many tasks, no messages needed.
//!
//! Tests run the stages on tokio's clock instead (`tokio::time::pause`
//! and `advance`), so an escalation after five minutes is tested in
//! microseconds and without sleeps.

pub mod sync;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use vitalgate_devices::Timestamp;

pub use sync::{ClockSync, SyncState};

/// How fast the gateway's time runs while the system clock catches up
/// with it after a backward step (tenths of real speed).
pub const CATCH_UP_RATE: f64 = 0.9;

/// A backward step smaller than this is jitter (another thread's
/// reading, a slew), not a step worth a warning.
const STEP_MS: i64 = 1_000;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The gateway's clock ([`now`]).
    System,
    /// A wall time that advances with tokio's (pausable) clock from the
    /// moment the clock was made.
    Tokio {
        /// Wall time at `origin`.
        wall: Timestamp,
        /// tokio's instant at creation.
        origin: tokio::time::Instant,
    },
}

impl Clock {
    /// A clock that reads `wall` now and advances with tokio's time.
    pub fn tokio_from(wall: Timestamp) -> Clock {
        Clock::Tokio {
            wall,
            origin: tokio::time::Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => now(),
            Clock::Tokio { wall, origin } => {
                wall.add_millis(origin.elapsed().as_millis().min(i64::MAX as u128) as i64)
            }
        }
    }
}

/// The monotone gateway time: the last value handed out, and when.
struct Monotone {
    last: i64,
    at: Instant,
    /// Milliseconds the gateway is ahead of the system clock (absorbing a
    /// backward step); 0 normally.
    ahead: i64,
}

impl Monotone {
    /// The next time, given the system clock reads `wall` at `at`.
    fn next(&mut self, wall: i64, at: Instant) -> i64 {
        let elapsed = at.saturating_duration_since(self.at).as_millis() as f64;
        let floor = self.last + (elapsed * CATCH_UP_RATE) as i64;
        let time = if wall >= floor { wall } else { floor };
        let ahead = time - wall;
        if ahead > STEP_MS && self.ahead <= STEP_MS {
            BACKWARD_STEPS.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                step_ms = ahead,
                "the system clock went back; gateway time goes on from where it was, {}% of real speed, until it is caught up (readings are flagged clock_unsynced meanwhile)",
                (CATCH_UP_RATE * 100.0) as u32
            );
        } else if ahead == 0 && self.ahead > STEP_MS {
            tracing::info!("gateway time has caught up with the system clock");
        }
        self.last = time;
        self.at = at;
        self.ahead = ahead;
        time
    }
}

static MONOTONE: Mutex<Option<Monotone>> = Mutex::new(None);
static BACKWARD_STEPS: AtomicU64 = AtomicU64::new(0);

/// The gateway's current time: the system clock, except that it never
/// goes backwards (see the module's documentation).
pub fn now() -> Timestamp {
    let wall = Timestamp::now().millis();
    let at = Instant::now();
    // A poisoned lock only means another thread panicked mid-update; the
    // two integers inside are still coherent enough to go on with.
    let mut guard = MONOTONE.lock().unwrap_or_else(|p| p.into_inner());
    let time = match guard.as_mut() {
        Some(m) => m.next(wall, at),
        None => {
            *guard = Some(Monotone {
                last: wall,
                at,
                ahead: 0,
            });
            wall
        }
    };
    Timestamp(time)
}

/// Milliseconds the gateway's time is ahead of the system clock, while a
/// backward step is being absorbed.
pub fn ahead_ms() -> i64 {
    MONOTONE
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map_or(0, |m| m.ahead)
}

/// Backward steps of the system clock seen since the start.
pub fn backward_steps() -> u64 {
    BACKWARD_STEPS.load(Ordering::Relaxed)
}

/// Whether readings stamped now can be trusted to the second: the system
/// clock is not known to be unsynchronised, and no backward step is being
/// absorbed.
pub fn trusted() -> bool {
    sync::current() != SyncState::Unsynchronised && ahead_ms() <= STEP_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn start(wall: i64) -> (Monotone, Instant) {
        let at = Instant::now();
        (
            Monotone {
                last: wall,
                at,
                ahead: 0,
            },
            at,
        )
    }

    #[test]
    fn a_forward_step_is_taken_at_once() {
        let (mut m, t0) = start(1_000_000);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(m.next(1_001_000, t1), 1_001_000);
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(m.next(9_000_000, t2), 9_000_000, "NTP stepped forward");
        assert_eq!(m.ahead, 0);
    }

    #[test]
    fn a_backward_step_never_turns_time_back_and_is_caught_up_at_nine_tenths_speed() {
        let (mut m, t0) = start(10_000_000);
        // The clock is set back by an hour.
        let t1 = t0 + Duration::from_secs(10);
        let wall = 10_010_000 - 3_600_000;
        let time = m.next(wall, t1);
        assert_eq!(time, 10_009_000, "went on at 0.9 of real speed");
        assert!(m.ahead > 3_500_000);
        let before = backward_steps();
        // Ten more seconds: still ahead, still monotone, counted once.
        let t2 = t1 + Duration::from_secs(10);
        let later = m.next(wall + 10_000, t2);
        assert_eq!(later, time + 9_000);
        assert_eq!(backward_steps(), before);
        // The step is absorbed after ten times its size.
        let t3 = t2 + Duration::from_secs(36_100);
        let wall3 = wall + 10_000 + 36_100_000;
        assert_eq!(m.next(wall3, t3), wall3);
        assert_eq!(m.ahead, 0);
    }

    #[test]
    fn the_process_clock_is_monotone() {
        let mut last = now();
        for _ in 0..1000 {
            let t = now();
            assert!(t >= last);
            last = t;
        }
    }
}
