//! vitalgate's clinical detection: turning readings into a judgement about
//! the patient.
//!
//! This crate is pure — readings and times in, scores out, no clock, no
//! I/O — so that replaying a recorded day at any speed gives the same
//! answers as living through it, and every rule can be tested on plain
//! values.
//!
//! * [`alert`]: the alert lifecycle (raised, escalated, acknowledged,
//!   resolved), deduplicated per condition, reopened rather than re-raised
//!   when a condition flaps.
//! * [`condition`]: what every detector reports and the alert lifecycle
//!   consumes: one condition (patient, kind, device) is one alert.
//! * [`news2`]: the Royal College of Physicians' National Early Warning
//!   Score 2, and the window of latest valid readings it is computed from.
//! * [`rules`]: sustained single-vital rules: the emergency ones (SpO2,
//!   heart rate) and fever.
//! * [`baseline`]: the personal baseline: online, robust per-patient
//!   statistics of each vital, and the drift from them.
//! * [`faults`]: sensor-fault detection (technical conditions) and which
//!   readings are reliable.
//! * [`monitor`]: one patient's detection composed: faults first, then the
//!   rules, the baseline and NEWS2 on the reliable readings.
//! * [`debounce`]: the onset and clearing hysteresis they share.

pub mod alert;
pub mod baseline;
pub mod condition;
pub mod debounce;
pub mod faults;
pub mod monitor;
pub mod news2;
pub mod rules;

pub use baseline::{BaselineConfig, BaselineDetector};
pub use condition::{Category, Condition, ConditionKey, ConditionKind, Evidence, Severity};
pub use faults::{FaultConfig, FaultDetector};
pub use monitor::{MonitorConfig, News2Config, PatientMonitor, PatientSettings};
pub use rules::{RulesConfig, SustainedRules};
