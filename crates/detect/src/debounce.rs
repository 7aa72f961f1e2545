//! Onset and clearing hysteresis: the one state machine every sustained
//! rule and fault detector runs, so "sustained for" and "cleared after"
//! mean the same everywhere.

use vitalgate_devices::Timestamp;

/// What an update changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The rule has held for the sustain time: the condition is now active.
    /// `since` is when the rule started to hold.
    Raised {
        /// First sample of the breach that became the condition.
        since: Timestamp,
    },
    /// The rule stayed off for the clear time: the condition is over.
    Cleared {
        /// When the condition's rule started to hold.
        since: Timestamp,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Breaching since `since`, not yet for the sustain time.
    Pending {
        since: Timestamp,
    },
    /// Active since `since`; `clearing` is the first sample of the current
    /// run of cleared samples.
    Active {
        since: Timestamp,
        clearing: Option<Timestamp>,
    },
}

/// Onset after `sustain_ms` of continuous breach, clearing after
/// `clear_ms` of continuous "cleared" samples.
///
/// Times are measurement times and only ever compared to each other, so
/// the machine is pure and replays identically. "Continuous" means: no two
/// consecutive samples further apart than `max_gap_ms`. A longer gap
/// restarts the onset or clearing timer, because an absence of evidence
/// (sensor off, dropout, readings judged unreliable) must neither complete
/// an onset nor clear an active condition.
///
/// Breach and cleared are separate inputs so a rule can leave a band
/// between them (the clear margin): a sample in the band keeps an active
/// condition active and does not start a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Debounce {
    sustain_ms: i64,
    clear_ms: i64,
    max_gap_ms: i64,
    state: State,
    last: Option<Timestamp>,
}

impl Debounce {
    /// A machine with these times (negative values count as 0).
    pub fn new(sustain_ms: i64, clear_ms: i64, max_gap_ms: i64) -> Debounce {
        Debounce {
            sustain_ms: sustain_ms.max(0),
            clear_ms: clear_ms.max(0),
            max_gap_ms: max_gap_ms.max(0),
            state: State::Idle,
            last: None,
        }
    }

    /// Whether the condition is active.
    pub fn is_active(&self) -> bool {
        matches!(self.state, State::Active { .. })
    }

    /// When the active condition's rule started to hold.
    pub fn since(&self) -> Option<Timestamp> {
        match self.state {
            State::Active { since, .. } => Some(since),
            _ => None,
        }
    }

    /// Forget a pending onset and any clearing run in progress (the
    /// evidence behind them turned out unreliable). An active condition
    /// stays active.
    pub fn interrupt(&mut self) {
        self.state = match self.state {
            State::Idle | State::Pending { .. } => State::Idle,
            State::Active { since, .. } => State::Active {
                since,
                clearing: None,
            },
        };
        self.last = None;
    }

    /// One sample at `t`. A sample older than the previous one is ignored
    /// (late readings cannot rewrite a decision already reported).
    pub fn update(&mut self, t: Timestamp, breach: bool, cleared: bool) -> Option<Transition> {
        if self.last.is_some_and(|last| t < last) {
            return None;
        }
        let gap = self
            .last
            .is_some_and(|last| t.millis() - last.millis() > self.max_gap_ms);
        self.last = Some(t);
        let held = |from: Timestamp, need: i64| t.millis() - from.millis() >= need;
        match self.state {
            State::Idle | State::Pending { .. } if !breach => {
                self.state = State::Idle;
                None
            }
            State::Idle => self.start(t),
            State::Pending { .. } if gap => self.start(t),
            State::Pending { since } => {
                if held(since, self.sustain_ms) {
                    self.state = State::Active {
                        since,
                        clearing: None,
                    };
                    Some(Transition::Raised { since })
                } else {
                    None
                }
            }
            State::Active { since, .. } if !cleared => {
                self.state = State::Active {
                    since,
                    clearing: None,
                };
                None
            }
            State::Active { since, clearing } => {
                let from = match clearing {
                    Some(c) if !gap => c,
                    _ => t,
                };
                if held(from, self.clear_ms) {
                    self.state = State::Idle;
                    Some(Transition::Cleared { since })
                } else {
                    self.state = State::Active {
                        since,
                        clearing: Some(from),
                    };
                    None
                }
            }
        }
    }

    /// Clear an active condition at once (its source is gone for good,
    /// e.g. a device came back after being offline).
    pub fn force_clear(&mut self) -> Option<Transition> {
        match self.state {
            State::Active { since, .. } => {
                self.state = State::Idle;
                Some(Transition::Cleared { since })
            }
            _ => {
                self.state = State::Idle;
                None
            }
        }
    }

    fn start(&mut self, t: Timestamp) -> Option<Transition> {
        if self.sustain_ms == 0 {
            self.state = State::Active {
                since: t,
                clearing: None,
            };
            Some(Transition::Raised { since: t })
        } else {
            self.state = State::Pending { since: t };
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    #[test]
    fn a_zero_sustain_raises_on_the_first_breach() {
        let mut d = Debounce::new(0, 0, 10_000);
        assert_eq!(
            d.update(t(5), true, false),
            Some(Transition::Raised { since: t(5) })
        );
        assert_eq!(
            d.update(t(6), false, true),
            Some(Transition::Cleared { since: t(5) })
        );
    }

    #[test]
    fn a_gap_longer_than_allowed_restarts_the_onset() {
        let mut d = Debounce::new(10_000, 0, 2_000);
        assert_eq!(d.update(t(0), true, false), None);
        assert_eq!(d.update(t(5_000), true, false), None, "gap restarts");
        assert_eq!(d.update(t(7_000), true, false), None);
        assert_eq!(
            d.update(t(15_000), true, false),
            None,
            "8 s gap: restarts again"
        );
    }

    #[test]
    fn an_interrupt_forgets_a_pending_onset_but_keeps_an_active_condition() {
        let mut d = Debounce::new(2_000, 1_000, 5_000);
        d.update(t(0), true, false);
        d.interrupt();
        assert_eq!(d.update(t(2_000), true, false), None);
        assert_eq!(
            d.update(t(4_000), true, false),
            Some(Transition::Raised { since: t(2_000) })
        );
        d.interrupt();
        assert!(d.is_active());
    }

    #[test]
    fn late_samples_are_ignored() {
        let mut d = Debounce::new(0, 0, 5_000);
        d.update(t(10), true, false);
        assert_eq!(d.update(t(5), false, true), None);
        assert!(d.is_active());
    }
}
