//! The alert lifecycle: conditions in, alert events out.
//!
//! ```text
//!             condition active                 unacknowledged for tiers[k]
//!   (none) ─────────────────────▶ raised ───────────────────────────────▶ escalated (tier k+1)
//!                                   │  ╲ acknowledge                          │
//!                                   │   ╲──────────▶ acknowledged ◀────────────┘
//!                                   │                    │
//!                                   └── condition cleared ┴──▶ resolved
//! ```
//!
//! One [`ConditionKey`] has at most one open alert: a condition reported
//! again and again while it holds is one alert (deduplication), whose
//! severity may rise or fall. Detectors apply their own onset and clearing
//! hysteresis; on top of it, a condition that returns within
//! [`EscalationPolicy::reopen_within_ms`] of its alert resolving reopens that
//! alert rather than raising a new one, so a value hovering around a
//! clearing threshold cannot page anyone twice.
//!
//! Escalation runs on the wall clock (it is about the present: nobody has
//! answered yet), passed in by the caller as `now`; everything else follows
//! the conditions. Pure: no clock, no I/O. The daemon persists the book
//! and delivers its events through the durable outbox.

use crate::condition::{Category, Condition, ConditionKey, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use vitalgate_devices::Timestamp;

/// When an unacknowledged alert moves to the next tier of recipients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    /// Milliseconds an alert may stay unacknowledged at tier `k` before it
    /// escalates to tier `k + 1`; past the last entry it stays at the top
    /// tier. Empty: never escalates.
    pub tiers_ms: Vec<i64>,
    /// A condition returning within this many milliseconds of its alert
    /// resolving reopens that alert (flap suppression).
    pub reopen_within_ms: i64,
    /// Whether technical alerts escalate too (by default they do not: a
    /// sensor to check is not a reason to wake the next clinician).
    pub escalate_technical: bool,
}

impl Default for EscalationPolicy {
    /// Escalate after 5 minutes unanswered, then after 10 more; reopen
    /// within 10 minutes of resolving.
    fn default() -> Self {
        EscalationPolicy {
            tiers_ms: vec![5 * 60_000, 10 * 60_000],
            reopen_within_ms: 10 * 60_000,
            escalate_technical: false,
        }
    }
}

/// Where an alert is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum AlertState {
    /// Raised and not yet answered.
    Raised,
    /// Acknowledged by someone (it stops escalating; it still resolves
    /// when the condition clears).
    Acknowledged {
        /// Who acknowledged it (a clinician's or service's id, as given).
        by: String,
        /// When (wall clock).
        at: Timestamp,
    },
    /// The condition cleared.
    Resolved {
        /// Measurement time of the clearing report.
        at: Timestamp,
    },
}

/// One alert: the life of one condition episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id (and the delivery idempotency key): the condition's key
    /// and the onset of the episode, so a redelivered event is recognised
    /// and a new episode gets a new id.
    pub id: String,
    /// Which condition.
    pub key: ConditionKey,
    /// Clinical or technical.
    pub category: Category,
    /// The highest severity seen while open (an alert does not quietly
    /// de-escalate: the clinician sees what it reached).
    pub severity: Severity,
    /// Where it is in its life.
    pub state: AlertState,
    /// Tier of recipients it has reached (0: the first).
    pub tier: usize,
    /// Wall-clock time it was raised, or last escalated (escalation counts
    /// from here).
    pub tier_since: Timestamp,
    /// The latest condition report behind it (severity now, evidence,
    /// summary).
    pub condition: Condition,
}

/// What changed, for the outbox: each event is delivered (and recorded in
/// the chain) once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum AlertEvent {
    /// A new alert.
    Raised(Alert),
    /// A resolved alert came back within the reopen window.
    Reopened(Alert),
    /// Its severity rose.
    Worsened(Alert),
    /// Unacknowledged too long: the next tier is told.
    Escalated(Alert),
    /// Somebody acknowledged it.
    Acknowledged(Alert),
    /// Its condition cleared.
    Resolved(Alert),
}

impl AlertEvent {
    /// The alert the event is about.
    pub fn alert(&self) -> &Alert {
        match self {
            AlertEvent::Raised(a)
            | AlertEvent::Reopened(a)
            | AlertEvent::Worsened(a)
            | AlertEvent::Escalated(a)
            | AlertEvent::Acknowledged(a)
            | AlertEvent::Resolved(a) => a,
        }
    }
}

/// Why an acknowledgement was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// No open alert has that id (it may have resolved already).
    #[error("no open alert {0}")]
    Unknown(String),
    /// The alert was acknowledged already (the first acknowledgement
    /// stands; acknowledging is idempotent for the caller).
    #[error("alert {id} was already acknowledged by {by}")]
    AlreadyAcknowledged {
        /// The alert.
        id: String,
        /// Who acknowledged it first.
        by: String,
    },
}

/// Every open alert, and the recently resolved ones that may reopen.
///
/// Serializable, so the daemon can persist it; as lists of alerts, since
/// a condition key is not a JSON object key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "StoredBook", into = "StoredBook")]
pub struct AlertBook {
    policy: EscalationPolicy,
    /// Open alerts (raised or acknowledged), by condition.
    open: BTreeMap<ConditionKey, Alert>,
    /// Resolved alerts still inside their reopen window, by condition.
    resolved: BTreeMap<ConditionKey, Alert>,
}

/// [`AlertBook`] as stored.
#[derive(Serialize, Deserialize)]
struct StoredBook {
    policy: EscalationPolicy,
    open: Vec<Alert>,
    resolved: Vec<Alert>,
}

impl From<AlertBook> for StoredBook {
    fn from(book: AlertBook) -> StoredBook {
        StoredBook {
            policy: book.policy,
            open: book.open.into_values().collect(),
            resolved: book.resolved.into_values().collect(),
        }
    }
}

impl From<StoredBook> for AlertBook {
    fn from(stored: StoredBook) -> AlertBook {
        let by_key = |alerts: Vec<Alert>| alerts.into_iter().map(|a| (a.key.clone(), a)).collect();
        AlertBook {
            policy: stored.policy,
            open: by_key(stored.open),
            resolved: by_key(stored.resolved),
        }
    }
}

impl AlertBook {
    /// An empty book.
    pub fn new(policy: EscalationPolicy) -> AlertBook {
        AlertBook {
            policy,
            open: BTreeMap::new(),
            resolved: BTreeMap::new(),
        }
    }

    /// Apply `policy` from now on (a restarted daemon whose configuration
    /// changed): tiers already reached stay reached.
    pub fn set_policy(&mut self, policy: EscalationPolicy) {
        self.policy = policy;
    }

    /// The policy in force.
    pub fn policy(&self) -> &EscalationPolicy {
        &self.policy
    }

    /// The open alerts.
    pub fn open(&self) -> impl Iterator<Item = &Alert> {
        self.open.values()
    }

    /// Take a detector's report. `now` is the wall clock (the start of an
    /// alert's escalation timer).
    pub fn on_condition(&mut self, condition: Condition, now: Timestamp) -> Option<AlertEvent> {
        let key = condition.key.clone();
        if !condition.active {
            let mut alert = self.open.remove(&key)?;
            alert.state = AlertState::Resolved { at: condition.at };
            alert.condition = condition;
            self.resolved.insert(key, alert.clone());
            return Some(AlertEvent::Resolved(alert));
        }
        if let Some(alert) = self.open.get_mut(&key) {
            let worse = condition.severity > alert.severity;
            alert.severity = alert.severity.max(condition.severity);
            alert.condition = condition;
            return worse.then(|| AlertEvent::Worsened(alert.clone()));
        }
        let reopen = self.resolved.remove(&key).filter(|a| match a.state {
            AlertState::Resolved { at } => {
                condition.since.0.saturating_sub(at.0) <= self.policy.reopen_within_ms
            }
            _ => false,
        });
        let event = match reopen {
            Some(mut alert) => {
                alert.state = AlertState::Raised;
                alert.severity = condition.severity;
                alert.tier = 0;
                alert.tier_since = now;
                alert.condition = condition;
                AlertEvent::Reopened(alert)
            }
            None => AlertEvent::Raised(Alert {
                id: alert_id(&key, condition.since),
                category: key.kind.category(),
                key: key.clone(),
                severity: condition.severity,
                state: AlertState::Raised,
                tier: 0,
                tier_since: now,
                condition,
            }),
        };
        self.open.insert(key, event.alert().clone());
        Some(event)
    }

    /// Escalate what has waited too long unacknowledged, and forget
    /// resolved alerts past their reopen window.
    pub fn tick(&mut self, now: Timestamp) -> Vec<AlertEvent> {
        let policy = &self.policy;
        self.resolved.retain(|_, a| match a.state {
            // Measurement time against wall time: close enough for a
            // window of minutes, and a wrong device clock only makes an
            // alert reopen less or more often, never vanish.
            AlertState::Resolved { at } => now.0.saturating_sub(at.0) <= policy.reopen_within_ms,
            _ => false,
        });
        let mut events = Vec::new();
        for alert in self.open.values_mut() {
            let escalates = alert.state == AlertState::Raised
                && (alert.category == Category::Clinical || policy.escalate_technical);
            if !escalates {
                continue;
            }
            let Some(&wait) = policy.tiers_ms.get(alert.tier) else {
                continue;
            };
            if now.0.saturating_sub(alert.tier_since.0) >= wait {
                alert.tier += 1;
                alert.tier_since = now;
                events.push(AlertEvent::Escalated(alert.clone()));
            }
        }
        events
    }

    /// Somebody acknowledged alert `id`.
    pub fn acknowledge(
        &mut self,
        id: &str,
        by: &str,
        now: Timestamp,
    ) -> Result<AlertEvent, AckError> {
        let alert = self
            .open
            .values_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| AckError::Unknown(id.to_owned()))?;
        if let AlertState::Acknowledged { by: first, .. } = &alert.state {
            return Err(AckError::AlreadyAcknowledged {
                id: id.to_owned(),
                by: first.clone(),
            });
        }
        alert.state = AlertState::Acknowledged {
            by: by.to_owned(),
            at: now,
        };
        Ok(AlertEvent::Acknowledged(alert.clone()))
    }
}

/// `kind/patient/device-or-dash/onset-ms`: stable for one episode of one
/// condition, different for the next.
fn alert_id(key: &ConditionKey, since: Timestamp) -> String {
    let kind = key.kind.name();
    let device = key.device.as_deref().unwrap_or("-");
    format!("{kind}/{}/{device}/{}", key.patient, since.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::condition::{ConditionKind, Evidence};
    use std::sync::Arc;

    const MIN: i64 = 60_000;

    fn condition(
        kind: ConditionKind,
        active: bool,
        severity: Severity,
        since: i64,
        at: i64,
    ) -> Condition {
        let device: Option<Arc<str>> = match kind.category() {
            Category::Clinical => None,
            Category::Technical => Some("ox-1".into()),
        };
        Condition {
            key: ConditionKey {
                patient: "p-1".into(),
                kind,
                device,
            },
            active,
            severity,
            since: Timestamp(since),
            at: Timestamp(at),
            evidence: Vec::<Evidence>::new(),
            summary: String::new(),
            news2: None,
        }
    }

    fn hypoxaemia(active: bool, since: i64, at: i64) -> Condition {
        condition(
            ConditionKind::SustainedHypoxaemia,
            active,
            Severity::High,
            since,
            at,
        )
    }

    #[test]
    fn a_condition_reported_again_and_again_is_one_alert() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let first = book.on_condition(hypoxaemia(true, 0, 60_000), Timestamp(60_000));
        assert!(matches!(first, Some(AlertEvent::Raised(_))));
        for s in 61..200 {
            assert_eq!(
                book.on_condition(hypoxaemia(true, 0, s * 1000), Timestamp(s * 1000)),
                None
            );
        }
        assert_eq!(book.open().count(), 1);
        assert_eq!(
            book.open().next().unwrap().id,
            "sustained_hypoxaemia/p-1/-/0"
        );
    }

    #[test]
    fn an_unacknowledged_clinical_alert_escalates_tier_by_tier_then_stays_at_the_top() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        book.on_condition(hypoxaemia(true, 0, 0), Timestamp(0));
        assert!(book.tick(Timestamp(5 * MIN - 1)).is_empty());
        let e = book.tick(Timestamp(5 * MIN));
        assert!(matches!(&e[..], [AlertEvent::Escalated(a)] if a.tier == 1));
        assert!(book.tick(Timestamp(15 * MIN - 1)).is_empty());
        let e = book.tick(Timestamp(15 * MIN));
        assert!(matches!(&e[..], [AlertEvent::Escalated(a)] if a.tier == 2));
        assert!(book.tick(Timestamp(600 * MIN)).is_empty());
    }

    #[test]
    fn an_acknowledged_alert_stops_escalating_and_still_resolves() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let raised = book
            .on_condition(hypoxaemia(true, 0, 0), Timestamp(0))
            .unwrap();
        let id = raised.alert().id.clone();
        let ack = book.acknowledge(&id, "nurse-7", Timestamp(MIN)).unwrap();
        assert!(matches!(ack, AlertEvent::Acknowledged(_)));
        assert_eq!(
            book.acknowledge(&id, "nurse-8", Timestamp(2 * MIN)),
            Err(AckError::AlreadyAcknowledged {
                id: id.clone(),
                by: "nurse-7".into()
            })
        );
        assert!(book.tick(Timestamp(60 * MIN)).is_empty());
        let resolved = book.on_condition(hypoxaemia(false, 0, 61 * MIN), Timestamp(61 * MIN));
        assert!(matches!(resolved, Some(AlertEvent::Resolved(a)) if a.id == id));
        assert_eq!(book.open().count(), 0);
        assert_eq!(
            book.acknowledge(&id, "nurse-7", Timestamp(62 * MIN)),
            Err(AckError::Unknown(id))
        );
    }

    #[test]
    fn technical_alerts_do_not_escalate_by_default() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let c = condition(ConditionKind::SensorOff, true, Severity::Info, 0, 0);
        let raised = book.on_condition(c, Timestamp(0)).unwrap();
        assert_eq!(raised.alert().category, Category::Technical);
        assert_eq!(raised.alert().id, "sensor_off/p-1/ox-1/0");
        assert!(book.tick(Timestamp(600 * MIN)).is_empty());
    }

    #[test]
    fn a_condition_returning_soon_after_resolving_reopens_the_same_alert() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let id = book
            .on_condition(hypoxaemia(true, 0, 0), Timestamp(0))
            .unwrap()
            .alert()
            .id
            .clone();
        book.on_condition(hypoxaemia(false, 0, 2 * MIN), Timestamp(2 * MIN));
        // Back 9 minutes later: the same alert, at tier 0 again.
        let again = book.on_condition(hypoxaemia(true, 11 * MIN, 11 * MIN), Timestamp(11 * MIN));
        assert!(matches!(again, Some(AlertEvent::Reopened(a)) if a.id == id && a.tier == 0));
        // Cleared, and back after the window: a new alert.
        book.on_condition(hypoxaemia(false, 11 * MIN, 12 * MIN), Timestamp(12 * MIN));
        book.tick(Timestamp(30 * MIN));
        let new = book.on_condition(hypoxaemia(true, 30 * MIN, 30 * MIN), Timestamp(30 * MIN));
        assert!(matches!(new, Some(AlertEvent::Raised(a)) if a.id != id));
    }

    #[test]
    fn severity_only_rises_while_open_and_a_rise_is_an_event() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let news = |severity, at| condition(ConditionKind::News2, true, severity, 0, at);
        book.on_condition(news(Severity::Low, 0), Timestamp(0));
        let worse = book.on_condition(news(Severity::High, 1000), Timestamp(1000));
        assert!(matches!(worse, Some(AlertEvent::Worsened(a)) if a.severity == Severity::High));
        assert_eq!(
            book.on_condition(news(Severity::Medium, 2000), Timestamp(2000)),
            None
        );
        assert_eq!(book.open().next().unwrap().severity, Severity::High);
        // The latest report is kept for the payload.
        assert_eq!(
            book.open().next().unwrap().condition.severity,
            Severity::Medium
        );
    }

    #[test]
    fn clearing_a_condition_with_no_open_alert_does_nothing() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        assert_eq!(
            book.on_condition(hypoxaemia(false, 0, 0), Timestamp(0)),
            None
        );
    }

    #[test]
    fn the_book_survives_a_round_trip_through_json() {
        let mut book = AlertBook::new(EscalationPolicy::default());
        book.on_condition(hypoxaemia(true, 0, 0), Timestamp(0));
        let json = serde_json::to_string(&book).unwrap();
        let back: AlertBook = serde_json::from_str(&json).unwrap();
        assert_eq!(back, book);
    }
}
