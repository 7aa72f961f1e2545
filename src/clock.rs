//! The gateway's clock, as the stages that deal with the present see it:
//! detection's "a device has gone silent", the alert lifecycle's "nobody
//! has answered for five minutes".
//!
//! In the daemon it is the system clock. Tests run the stages on tokio's
//! clock instead (`tokio::time::pause` and `advance`), so an escalation
//! after five minutes is tested in microseconds and without sleeps.

use tokio::time::Instant;
use vitalgate_devices::Timestamp;

/// Where "now" comes from.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's wall clock.
    System,
    /// A wall time that advances with tokio's (pausable) clock from the
    /// moment the clock was made.
    Tokio {
        /// Wall time at `origin`.
        wall: Timestamp,
        /// tokio's instant at creation.
        origin: Instant,
    },
}

impl Clock {
    /// A clock that reads `wall` now and advances with tokio's time.
    pub fn tokio_from(wall: Timestamp) -> Clock {
        Clock::Tokio {
            wall,
            origin: Instant::now(),
        }
    }

    /// The current time.
    pub fn now(&self) -> Timestamp {
        match self {
            Clock::System => Timestamp::now(),
            Clock::Tokio { wall, origin } => {
                wall.add_millis(origin.elapsed().as_millis().min(i64::MAX as u128) as i64)
            }
        }
    }
}
