//! Ground-truth labels: what really happened, for scoring the gateway's
//! alerts.
//!
//! Every scenario event becomes one [`Label`], written as one JSON object
//! per line. Later work measures alert sensitivity (did an alert fire
//! during a clinical label?) and false alarms (alerts outside any clinical
//! label, or caused by a technical one) against them.

use crate::scenario::{Event, ScenarioKind};
use serde::{Deserialize, Serialize};
use vitalgate_devices::Timestamp;

/// The ground truth of one scenario event.
///
/// # Interval semantics
///
/// A label covers the half-open interval `[start, end)` of simulated time:
///
/// * `start` is the event's *script start*: the first instant at which the
///   event influences anything. For a technical event the device misbehaves
///   from `start` on (its first affected sample is its first sample at or
///   after `start`). For a clinical event the true physiology begins to
///   deviate at `start`, but ramps in smoothly over the event's onset (given
///   in `detail`; e.g. a desaturation's true SpO2 reaches its nadir 20–60 s
///   after `start`, a fever its peak 1–3 h after). The script start is used
///   rather than a threshold crossing because it is the same for every
///   vital and every alert rule; a detector's latency is measured from it.
/// * `end` is the first instant at which the event has no influence any
///   more: the true values are back on the patient's normal course, or the
///   device behaves normally again. Devices that average (pulse oximeters,
///   ~8 s) show the deviation a few seconds past `end`, and a pulse
///   oximeter whose sensor was off searches for a few seconds (flag
///   `searching`, no values) after `end` before values resume.
///
/// A label describes the truth whether or not a device could see it: a
/// desaturation is labelled even if the patient has no pulse oximeter, a
/// short sensor-off even if it fell between two samples of a slow device.
/// Events may overlap (a technical event during a clinical one). A COPD
/// patient's usually low SpO2 (88–92 %) is its normal, not an event, and is
/// not labelled; its exacerbations are (kind `copd`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Label {
    /// The patient's id.
    pub patient: String,
    /// The device a technical event happened to; `null` for clinical
    /// events, which concern the patient and every device on them.
    #[serde(default)]
    pub device: Option<String>,
    /// The event kind (never `stable` or `mixed`).
    pub kind: ScenarioKind,
    /// True for clinical events (the patient changed), false for technical
    /// ones (only the device's output changed: an alert on it is false).
    pub clinical: bool,
    /// Start of the event (inclusive); see the type documentation.
    pub start: Timestamp,
    /// End of the event (exclusive); see the type documentation.
    pub end: Timestamp,
    /// Human-readable magnitude and time course.
    pub detail: String,
}

impl Label {
    /// The label of `event` of patient `patient`; `device` is the id of the
    /// device a technical event targets.
    pub fn from_event(patient: &str, device: Option<&str>, event: &Event) -> Label {
        let kind = event.kind();
        Label {
            patient: patient.to_owned(),
            device: device.map(str::to_owned),
            kind,
            clinical: kind.is_clinical(),
            start: event.start,
            end: event.end(),
            detail: event.detail.clone(),
        }
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn covers(&self, t: Timestamp) -> bool {
        t >= self.start && t < self.end
    }

    /// Duration in milliseconds.
    pub fn duration_ms(&self) -> i64 {
        self.end.millis() - self.start.millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Effect;

    #[test]
    fn a_label_is_one_json_object_with_rfc3339_times() {
        let event = Event {
            effect: Effect::SensorOff,
            start: Timestamp(1_000),
            onset_ms: 0,
            plateau_ms: 30_000,
            recovery_ms: 0,
            device: Some(2),
            detail: "sensor off".into(),
        };
        let label = Label::from_event("patient-a", Some("ox-a1"), &event);
        let json = serde_json::to_string(&label).unwrap_or_default();
        assert_eq!(
            json,
            r#"{"patient":"patient-a","device":"ox-a1","kind":"sensor_off","clinical":false,"start":"1970-01-01T00:00:01.000Z","end":"1970-01-01T00:00:31.000Z","detail":"sensor off"}"#
        );
        assert!(!json.contains('\n'));
        assert_eq!(
            serde_json::from_str::<Label>(&json).ok(),
            Some(label.clone())
        );
        assert!(label.covers(Timestamp(1_000)) && !label.covers(Timestamp(31_000)));
        assert_eq!(label.duration_ms(), 30_000);
    }

    #[test]
    fn clinical_labels_name_no_device() {
        let event = Event {
            effect: Effect::Desaturation { nadir: 84.0 },
            start: Timestamp(0),
            onset_ms: 30_000,
            plateau_ms: 60_000,
            recovery_ms: 30_000,
            device: None,
            detail: String::new(),
        };
        let label = Label::from_event("p", None, &event);
        assert!(label.clinical);
        assert_eq!(label.end, Timestamp(120_000));
        let json = serde_json::to_string(&label).unwrap_or_default();
        assert!(json.contains(r#""device":null"#), "{json}");
    }
}
