//! What a detector says about a patient: the one type every detector
//! (NEWS2, sustained emergency rules, personal baseline, sensor faults)
//! produces and the alert lifecycle consumes.
//!
//! A detector reports a *condition* while it holds and once more when it
//! clears. Its identity is [`ConditionKey`] (patient, kind, device): one
//! condition is one alert, however many readings keep it active. Detectors
//! apply their own onset and clearing hysteresis (a condition is active
//! only once its rule held for the sustain time, and clears only once the
//! rule stayed off for the clear time), so a value hovering at a threshold
//! does not flap; the lifecycle adds escalation and acknowledgement.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use vitalgate_devices::{Quality, Timestamp, Vital};

/// Whether a condition concerns the patient or the equipment. This split
/// is how the gateway avoids alarm fatigue: a technical condition asks
/// someone to check a sensor, it never pages a clinician as an emergency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// The patient's physiology: goes to clinicians.
    Clinical,
    /// A sensor or device problem ("check the sensor"): goes to the
    /// patient, carer or technician, never as a clinical emergency.
    Technical,
}

/// How urgent a condition is, lowest first (so severities compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing, no action required now (e.g. a technical notice).
    Info,
    /// Needs attention within hours (NEWS2 low–medium, baseline drift,
    /// sustained fever).
    Low,
    /// Needs urgent review (NEWS2 medium).
    Medium,
    /// Needs an emergency response (NEWS2 high, sustained emergency rules).
    High,
}

/// Which rule holds. Each variant is one kind of alert; new detectors add
/// variants (the names are part of the alert payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConditionKind {
    /// The NEWS2 band is low–medium or higher.
    News2,
    /// SpO2 below the emergency threshold, sustained.
    SustainedHypoxaemia,
    /// Heart or pulse rate below the emergency threshold, sustained.
    SustainedBradycardia,
    /// Heart or pulse rate above the emergency threshold, sustained.
    SustainedTachycardia,
    /// Body temperature above the fever threshold, sustained.
    SustainedFever,
    /// A vital drifting from the patient's own baseline, sustained.
    BaselineDrift,
    /// Motion artifact: low perfusion with a sudden SpO2 drop the pulse
    /// rate does not follow.
    MotionArtifact,
    /// A series repeating the exact same value far longer than physiology
    /// allows.
    Flatline,
    /// Values outside the physiologically possible range.
    ImpossibleValues,
    /// The device reports its sensor is off the patient.
    SensorOff,
    /// Readings missing from a device that is still connected.
    Dropout,
    /// A device silent past its expected period.
    DeviceOffline,
}

impl ConditionKind {
    /// The snake_case name (as serialized): part of alert ids and payloads.
    pub const fn name(self) -> &'static str {
        match self {
            ConditionKind::News2 => "news2",
            ConditionKind::SustainedHypoxaemia => "sustained_hypoxaemia",
            ConditionKind::SustainedBradycardia => "sustained_bradycardia",
            ConditionKind::SustainedTachycardia => "sustained_tachycardia",
            ConditionKind::SustainedFever => "sustained_fever",
            ConditionKind::BaselineDrift => "baseline_drift",
            ConditionKind::MotionArtifact => "motion_artifact",
            ConditionKind::Flatline => "flatline",
            ConditionKind::ImpossibleValues => "impossible_values",
            ConditionKind::SensorOff => "sensor_off",
            ConditionKind::Dropout => "dropout",
            ConditionKind::DeviceOffline => "device_offline",
        }
    }

    /// Clinical or technical.
    pub const fn category(self) -> Category {
        match self {
            ConditionKind::News2
            | ConditionKind::SustainedHypoxaemia
            | ConditionKind::SustainedBradycardia
            | ConditionKind::SustainedTachycardia
            | ConditionKind::SustainedFever
            | ConditionKind::BaselineDrift => Category::Clinical,
            ConditionKind::MotionArtifact
            | ConditionKind::Flatline
            | ConditionKind::ImpossibleValues
            | ConditionKind::SensorOff
            | ConditionKind::Dropout
            | ConditionKind::DeviceOffline => Category::Technical,
        }
    }
}

/// The identity of a condition: one key, at most one open alert.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConditionKey {
    /// Pseudonymous patient id.
    pub patient: Arc<str>,
    /// Which rule.
    pub kind: ConditionKind,
    /// The device concerned, for technical conditions (clinical ones are
    /// about the patient, whatever device measured them: `None`).
    pub device: Option<Arc<str>>,
}

/// One reading that triggered or sustains a condition: what a clinician
/// needs to see, nothing more (no device serials, no free text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The device that measured it.
    pub device: Arc<str>,
    /// Which vital.
    pub vital: Vital,
    /// The value, in the vital's UCUM unit.
    pub value: f64,
    /// Measurement time (device time when present, else gateway time).
    pub time: Timestamp,
    /// The reading's quality flags.
    pub quality: Quality,
}

/// A detector's report at measurement time `at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// Which condition.
    pub key: ConditionKey,
    /// Whether it holds (`false`: it has cleared, after its clearing
    /// hysteresis).
    pub active: bool,
    /// How urgent it is now (may rise or fall while it stays active).
    pub severity: Severity,
    /// When the rule started to hold (measurement time): the onset an
    /// alert's delay is measured from.
    pub since: Timestamp,
    /// The measurement time this report is about.
    pub at: Timestamp,
    /// The readings behind it, most recent last, a handful at most.
    pub evidence: Vec<Evidence>,
    /// A short, non-identifying explanation for the clinician
    /// ("SpO2 below 85 % for 60 s").
    pub summary: String,
    /// The patient's NEWS2 (total, sub-scores, band, what is missing) at
    /// `at`, for every clinical condition whatever detector raised it, so
    /// the clinician sees the whole picture beside the one rule that
    /// fired; `None` for technical conditions (a sensor to check says
    /// nothing about the patient). It is the score the NEWS2 condition
    /// itself uses: each parameter confirmed by its previous reading
    /// ([`crate::monitor::PatientMonitor`] fills it in). Absent in alerts
    /// stored before the field existed, hence the serde default.
    #[serde(default)]
    pub news2: Option<crate::news2::Score>,
}
