//! A patient's status: the alerts open for them now, as one small JSON
//! document the MQTT sink keeps retained per patient, so a clinician's
//! dashboard that connects at any time sees the present state at once.

use super::message::state_name;
use serde::Serialize;
use vitalgate_detect::Severity;
use vitalgate_detect::alert::Alert;
use vitalgate_devices::Timestamp;

/// The `format` of a patient status.
pub const FORMAT: &str = "vitalgate/patient-status/1";

#[derive(Serialize)]
struct Status<'a> {
    format: &'static str,
    gateway: &'a str,
    patient: &'a str,
    at: Timestamp,
    highest_severity: Option<Severity>,
    open_alerts: Vec<Line<'a>>,
}

#[derive(Serialize)]
struct Line<'a> {
    id: &'a str,
    kind: &'static str,
    category: vitalgate_detect::Category,
    severity: Severity,
    state: &'static str,
    tier: usize,
    since: Timestamp,
    summary: &'a str,
}

/// The status of `patient` given the open alerts (any patient's; only
/// theirs are kept), at gateway time `at`.
pub fn render<'a>(
    gateway: &str,
    patient: &str,
    open: impl Iterator<Item = &'a Alert>,
    at: Timestamp,
) -> Vec<u8> {
    let open_alerts: Vec<Line<'_>> = open
        .filter(|a| &*a.key.patient == patient)
        .map(|a| Line {
            id: &a.id,
            kind: a.key.kind.name(),
            category: a.category,
            severity: a.severity,
            state: state_name(a),
            tier: a.tier,
            since: a.condition.since,
            summary: &a.condition.summary,
        })
        .collect();
    serde_json::to_vec(&Status {
        format: FORMAT,
        gateway,
        patient,
        at,
        highest_severity: open_alerts.iter().map(|l| l.severity).max(),
        open_alerts,
    })
    .unwrap_or_default()
}
