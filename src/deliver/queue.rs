//! One sink's delivery schedule, as a state machine:
//!
//! ```text
//!            next() picks a message                 Ok
//!   Ready ─────────────────────────────▶ InFlight ─────▶ Ready (live) / Pacing (backlog)
//!     ▲                                      │ Err
//!     └──── backoff elapsed ◀── Waiting ◀────┘  (exponential, full jitter)
//! ```
//!
//! **Live before backlog.** A message created within [`LIVE_WINDOW`] of now
//! is live; live messages go first (oldest live first), then the backlog
//! oldest first. After an outage, the alert raised a minute ago reaches the
//! clinician before the hundred that piled up overnight.
//!
//! **No storms.** Failures back off exponentially with full jitter (from
//! 1 s to 60 s; 30 s to 10 min when the receiver refuses, which needs a
//! person to fix); the backlog is replayed with a jittered pause between
//! messages, so a gateway coming back online does not hit the hospital
//! with its whole outage at once, nor in step with its neighbours.
//!
//! Time is `tokio::time::Instant` (monotonic; pausable in tests) for the
//! schedule and the gateway's clock for how old a message is.

use super::DeliveryError;
use crate::alert::outbox::Pending;
use crate::source::backoff::Backoff;
use std::time::Duration;
use tokio::time::Instant;
use vitalgate_devices::Timestamp;

/// A message younger than this is live.
pub const LIVE_WINDOW: Duration = Duration::from_secs(60);
/// Pause between backlog messages: uniform in [half, whole].
const BACKLOG_PACE: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ready,
    InFlight { seq: u64, live: bool },
    Waiting { until: Instant },
}

/// One sink's schedule. See the module documentation.
#[derive(Debug, Clone)]
pub struct SinkQueue {
    state: State,
    unreachable: Backoff,
    refused: Backoff,
    pace: Backoff,
    /// Consecutive failures (0 when the last attempt worked).
    failures: u32,
    /// Messages delivered.
    delivered: u64,
    /// The last error, for the status view.
    last_error: Option<DeliveryError>,
}

impl Default for SinkQueue {
    fn default() -> Self {
        SinkQueue::new()
    }
}

impl SinkQueue {
    /// A queue with nothing in flight.
    pub fn new() -> SinkQueue {
        SinkQueue {
            state: State::Ready,
            unreachable: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
            refused: Backoff::new(Duration::from_secs(30), Duration::from_secs(600)),
            pace: Backoff::new(BACKLOG_PACE, BACKLOG_PACE),
            failures: 0,
            delivered: 0,
            last_error: None,
        }
    }

    /// The message to attempt now, if the sink is free: live first, then
    /// the backlog, each oldest first. `waiting` are the messages this sink
    /// still has to take, oldest first.
    pub fn next<'a>(
        &mut self,
        now: Instant,
        clock: Timestamp,
        waiting: impl Iterator<Item = &'a Pending> + Clone,
    ) -> Option<&'a Pending> {
        match self.state {
            State::InFlight { .. } => return None,
            State::Waiting { until } if now < until => return None,
            _ => {}
        }
        let live_ms = LIVE_WINDOW.as_millis() as i64;
        let is_live = |p: &Pending| clock.millis().saturating_sub(p.created.millis()) < live_ms;
        let pick = waiting
            .clone()
            .find(|p| is_live(p))
            .or_else(|| waiting.clone().next())?;
        self.state = State::InFlight {
            seq: pick.seq,
            live: is_live(pick),
        };
        Some(pick)
    }

    /// The sink answered the attempt at message `seq`.
    pub fn outcome(&mut self, seq: u64, result: &Result<(), DeliveryError>, now: Instant) {
        let State::InFlight {
            seq: expected,
            live,
        } = self.state
        else {
            return;
        };
        if seq != expected {
            return;
        }
        match result {
            Ok(()) => {
                self.delivered += 1;
                self.failures = 0;
                self.last_error = None;
                self.unreachable.reset();
                self.refused.reset();
                self.state = if live {
                    State::Ready
                } else {
                    State::Waiting {
                        until: now + self.pace.next_delay(),
                    }
                };
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let delay = match e {
                    DeliveryError::Unreachable(_) => self.unreachable.next_delay(),
                    DeliveryError::Refused(_) => self.refused.next_delay(),
                };
                self.last_error = Some(e.clone());
                self.state = State::Waiting { until: now + delay };
            }
        }
    }

    /// The sink's task has gone (it cannot answer): give up the attempt in
    /// flight so it is made again, after a backoff.
    pub fn abandon(&mut self, now: Instant) {
        if let State::InFlight { seq, .. } = self.state {
            self.outcome(
                seq,
                &Err(DeliveryError::Unreachable("sink stopped".into())),
                now,
            );
        }
    }

    /// When the queue can send again, if it is waiting.
    pub fn wake_at(&self) -> Option<Instant> {
        match self.state {
            State::Waiting { until } => Some(until),
            _ => None,
        }
    }

    /// Whether an attempt is in flight.
    pub fn in_flight(&self) -> bool {
        matches!(self.state, State::InFlight { .. })
    }

    /// Consecutive failures.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// The last error, while failing.
    pub fn last_error(&self) -> Option<&DeliveryError> {
        self.last_error.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::sync::Arc;

    fn pending(seq: u64, created: i64) -> Pending {
        Pending {
            seq,
            message_id: format!("a#{seq}"),
            patient: "p".into(),
            bytes: Arc::from(&b"{}"[..]),
            created: Timestamp(created),
            sinks: BTreeSet::new(),
        }
    }

    const NOW: i64 = 10_000_000;

    #[test]
    fn live_messages_go_before_the_backlog_each_oldest_first() {
        let t = Instant::now();
        let waiting = [
            pending(1, NOW - 3_600_000),
            pending(2, NOW - 1_800_000),
            pending(3, NOW - 30_000),
            pending(4, NOW - 1_000),
        ];
        let mut q = SinkQueue::new();
        let mut order = Vec::new();
        let mut left: Vec<Pending> = waiting.to_vec();
        let mut now = t;
        while !left.is_empty() {
            let Some(p) = q.next(now, Timestamp(NOW), left.iter()) else {
                now = q.wake_at().expect("waiting");
                continue;
            };
            let seq = p.seq;
            order.push(seq);
            q.outcome(seq, &Ok(()), now);
            left.retain(|p| p.seq != seq);
        }
        assert_eq!(order, [3, 4, 1, 2]);
        assert_eq!(q.delivered(), 4);
    }

    #[test]
    fn one_attempt_at_a_time_and_failures_back_off_exponentially() {
        let t = Instant::now();
        let waiting = [pending(1, NOW)];
        let mut q = SinkQueue::new();
        assert_eq!(q.next(t, Timestamp(NOW), waiting.iter()).unwrap().seq, 1);
        assert!(
            q.next(t, Timestamp(NOW), waiting.iter()).is_none(),
            "in flight"
        );
        let mut delays = Vec::new();
        let mut now = t;
        for _ in 0..8 {
            q.outcome(1, &Err(DeliveryError::Unreachable("down".into())), now);
            let wake = q.wake_at().unwrap();
            delays.push(wake - now);
            assert!(
                q.next(
                    wake - Duration::from_millis(1),
                    Timestamp(NOW),
                    waiting.iter()
                )
                .is_none()
            );
            assert!(q.next(wake, Timestamp(NOW), waiting.iter()).is_some());
            now = wake;
        }
        assert_eq!(q.failures(), 8);
        assert!(delays[0] <= Duration::from_secs(1), "{delays:?}");
        assert!(delays[5] >= Duration::from_secs(16), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= Duration::from_secs(60)),
            "{delays:?}"
        );
        q.outcome(1, &Ok(()), now);
        assert_eq!((q.failures(), q.last_error()), (0, None));
    }

    #[test]
    fn a_refusal_backs_off_longer_than_an_outage() {
        let t = Instant::now();
        let waiting = [pending(1, NOW)];
        let mut q = SinkQueue::new();
        q.next(t, Timestamp(NOW), waiting.iter());
        q.outcome(1, &Err(DeliveryError::Refused("401".into())), t);
        assert!(q.wake_at().unwrap() - t >= Duration::from_secs(15));
    }

    #[test]
    fn backlog_replay_is_paced_and_a_stale_outcome_is_ignored() {
        let t = Instant::now();
        let waiting = [pending(1, NOW - 3_600_000), pending(2, NOW - 3_500_000)];
        let mut q = SinkQueue::new();
        q.next(t, Timestamp(NOW), waiting.iter());
        q.outcome(7, &Ok(()), t);
        assert!(
            q.in_flight(),
            "an outcome for another message changes nothing"
        );
        q.outcome(1, &Ok(()), t);
        let wait = q.wake_at().expect("paced") - t;
        assert!(wait >= BACKLOG_PACE / 2 && wait <= BACKLOG_PACE, "{wait:?}");
    }
}
