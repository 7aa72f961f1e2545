//! The alert message: what a clinician's system receives for each alert
//! event, and what the ledger records of it (the same bytes).
//!
//! One JSON object per event (`docs/FORMAT.md`, "Alert message"): the
//! alert's identity and state, the patient's pseudonym, the NEWS2 score
//! with its sub-scores and recommended response, the readings that
//! triggered it, and a FHIR R4 rendering of the same (`fhir.rs`). Nothing
//! more personal than a clinician needs to act: no name, no address, no
//! device serial numbers.

use super::fhir;
use serde::Serialize;
use vitalgate_detect::alert::{Alert, AlertEvent, AlertState};
use vitalgate_detect::news2::{RiskBand, Score, Spo2Scale};
use vitalgate_detect::{Category, ConditionKind, Severity};
use vitalgate_devices::Timestamp;

/// The `format` of every alert message.
pub const FORMAT: &str = "vitalgate/alert/1";

/// The `format` of a delivery receipt (recorded in the ledger, not sent).
pub const DELIVERY_FORMAT: &str = "vitalgate/alert-delivery/1";

/// Where and when an event happened, beyond the event itself.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    /// The gateway's id (topics, payloads).
    pub gateway: &'a str,
    /// The outbox sequence number of this message: unique per gateway,
    /// increasing, so a receiver can order one alert's events.
    pub seq: u64,
    /// The gateway's clock when the event happened.
    pub at: Timestamp,
}

/// The message id (and delivery idempotency key) of the message with
/// sequence number `seq` about alert `alert_id`.
pub fn message_id(alert_id: &str, seq: u64) -> String {
    format!("{alert_id}#{seq}")
}

#[derive(Serialize)]
struct Message<'a> {
    format: &'static str,
    message_id: String,
    seq: u64,
    event: &'static str,
    gateway: &'a str,
    at: Timestamp,
    alert: AlertView<'a>,
    news2: Option<News2View>,
    evidence: Vec<EvidenceView<'a>>,
    fhir: serde_json::Value,
}

#[derive(Serialize)]
struct AlertView<'a> {
    id: &'a str,
    kind: ConditionKind,
    category: Category,
    severity: Severity,
    state: &'static str,
    tier: usize,
    patient: &'a str,
    device: Option<&'a str>,
    since: Timestamp,
    observed_at: Timestamp,
    summary: &'a str,
    acknowledged_by: Option<&'a str>,
    acknowledged_at: Option<Timestamp>,
    resolved_at: Option<Timestamp>,
}

#[derive(Serialize)]
struct News2View {
    total: u8,
    band: RiskBand,
    red_score: bool,
    complete: bool,
    scale: Spo2Scale,
    sub_scores: SubScores,
    missing: Vec<&'static str>,
    response: &'static str,
    monitoring: &'static str,
}

#[derive(Serialize)]
struct SubScores {
    respiration_rate: Option<u8>,
    spo2: Option<u8>,
    air_or_oxygen: Option<u8>,
    systolic_bp: Option<u8>,
    pulse: Option<u8>,
    consciousness: Option<u8>,
    temperature: Option<u8>,
}

#[derive(Serialize)]
struct EvidenceView<'a> {
    device: &'a str,
    vital: &'static str,
    value: f64,
    unit: &'static str,
    time: Timestamp,
    quality: Vec<&'static str>,
}

/// The event's name in the message.
pub fn event_name(event: &AlertEvent) -> &'static str {
    match event {
        AlertEvent::Raised(_) => "raised",
        AlertEvent::Reopened(_) => "reopened",
        AlertEvent::Worsened(_) => "worsened",
        AlertEvent::Escalated(_) => "escalated",
        AlertEvent::Acknowledged(_) => "acknowledged",
        AlertEvent::Resolved(_) => "resolved",
    }
}

/// The alert's state as one word.
pub fn state_name(alert: &Alert) -> &'static str {
    match alert.state {
        AlertState::Raised => "raised",
        AlertState::Acknowledged { .. } => "acknowledged",
        AlertState::Resolved { .. } => "resolved",
    }
}

/// Render one event as its message bytes (compact JSON).
pub fn render(event: &AlertEvent, envelope: Envelope<'_>) -> Vec<u8> {
    let alert = event.alert();
    let condition = &alert.condition;
    let (acknowledged_by, acknowledged_at) = match &alert.state {
        AlertState::Acknowledged { by, at } => (Some(by.as_str()), Some(*at)),
        _ => (None, None),
    };
    let resolved_at = match alert.state {
        AlertState::Resolved { at } => Some(at),
        _ => None,
    };
    let message_id = message_id(&alert.id, envelope.seq);
    let news2 = condition.news2.as_ref().map(news2_view);
    let message = Message {
        format: FORMAT,
        fhir: fhir::bundle(alert, &message_id, envelope.at),
        message_id,
        seq: envelope.seq,
        event: event_name(event),
        gateway: envelope.gateway,
        at: envelope.at,
        alert: AlertView {
            id: &alert.id,
            kind: alert.key.kind,
            category: alert.category,
            severity: alert.severity,
            state: state_name(alert),
            tier: alert.tier,
            patient: &alert.key.patient,
            device: alert.key.device.as_deref(),
            since: condition.since,
            observed_at: condition.at,
            summary: &condition.summary,
            acknowledged_by,
            acknowledged_at,
            resolved_at,
        },
        news2,
        evidence: condition
            .evidence
            .iter()
            .map(|e| EvidenceView {
                device: &e.device,
                vital: e.vital.name(),
                value: e.value,
                unit: e.vital.ucum(),
                time: e.time,
                quality: e.quality.names().collect(),
            })
            .collect(),
    };
    // Serializing plain structs of strings and numbers cannot fail; a
    // non-finite value (never admitted by the decoders) becomes null.
    serde_json::to_vec(&message).unwrap_or_default()
}

fn news2_view(score: &Score) -> News2View {
    News2View {
        total: score.total,
        band: score.band,
        red_score: score.red_score,
        complete: score.is_complete(),
        scale: score.scale,
        sub_scores: SubScores {
            respiration_rate: score.respiration_rate,
            spo2: score.spo2,
            air_or_oxygen: score.air_or_oxygen,
            systolic_bp: score.systolic_bp,
            pulse: score.pulse,
            consciousness: score.consciousness,
            temperature: score.temperature,
        },
        missing: score.missing.iter().map(|p| p.name()).collect(),
        response: score.band.response(),
        monitoring: score.band.monitoring(),
    }
}

#[derive(Serialize)]
struct Delivery<'a> {
    format: &'static str,
    message_id: &'a str,
    sink: &'a str,
    delivered_at: Timestamp,
}

/// A delivery receipt: message `message_id` reached `sink` at `at`. The
/// ledger records these beside the messages, so the audit trail shows
/// not only what the gateway raised but when each recipient had it.
pub fn render_delivery(message_id: &str, sink: &str, at: Timestamp) -> Vec<u8> {
    serde_json::to_vec(&Delivery {
        format: DELIVERY_FORMAT,
        message_id,
        sink,
        delivered_at: at,
    })
    .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_detect::alert::{AlertBook, EscalationPolicy};
    use vitalgate_detect::{Condition, ConditionKey};

    /// The example of `docs/FORMAT.md` ("Alert message"): a sensor came
    /// off, raised as message 7 of gateway `gw-0001`.
    pub(super) fn example() -> Vec<u8> {
        let mut book = AlertBook::new(EscalationPolicy::default());
        let condition = Condition {
            key: ConditionKey {
                patient: "patient-0001".into(),
                kind: ConditionKind::SensorOff,
                device: Some("ox-bedroom".into()),
            },
            active: true,
            severity: Severity::Low,
            since: Timestamp(1_796_371_200_000),
            at: Timestamp(1_796_371_230_000),
            evidence: Vec::new(),
            summary: "sensor off for 30 s".into(),
            news2: None,
        };
        let event = book
            .on_condition(condition, Timestamp(1_796_371_230_250))
            .unwrap();
        render(
            &event,
            Envelope {
                gateway: "gw-0001",
                seq: 7,
                at: Timestamp(1_796_371_230_250),
            },
        )
    }

    #[test]
    fn the_format_example_is_what_the_gateway_renders() {
        let text = String::from_utf8(example()).unwrap();
        let doc = include_str!("../../docs/FORMAT.md");
        assert!(doc.contains(&text), "docs/FORMAT.md lacks:\n{text}");
    }
}
