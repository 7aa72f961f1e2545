//! What the personal-baseline detector can be configured with, and its
//! defaults. The reasons and sources for each default are in the parent
//! module's documentation ([`crate::baseline`]).

use serde::{Deserialize, Serialize};
use vitalgate_devices::Vital;

const MIN: i64 = 60_000;
const DAY: i64 = 24 * 60 * MIN;

fn yes() -> bool {
    true
}

/// How far, and for how long, a vital's short-window level must stay away
/// from the patient's baseline in one direction before it is a drift.
///
/// The distance is the larger of `relative` × baseline and `absolute`:
/// relative for vitals whose normal spread scales with their level (heart
/// and respiratory rate, blood pressure), absolute for those that do not
/// (SpO2 in points, temperature in °C) and as a floor, so that a patient
/// with a low baseline is not alerted on a change no clinician would
/// notice.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftLimit {
    /// Whether a drift in this direction is reported. A disabled limit
    /// still sets how far out a level counts for learning.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Fraction of the baseline (0.25: 25 %).
    pub relative: f64,
    /// In the vital's unit.
    pub absolute: f64,
    /// How long the level must stay beyond the limit, ms.
    pub sustain_ms: i64,
    /// A value the level must also have reached (at or below it for a
    /// fall, at or above it for a rise), when a drift in this direction
    /// only matters past a clinical boundary: a heart rate that falls
    /// but stays above 50 /min is not a bradycardia.
    #[serde(default)]
    pub and_beyond: Option<f64>,
    /// When set, a drift in this direction counts only if it began
    /// abruptly: the level is at least half the limit away from the median
    /// level of this many ms before the breach started. For a heart-rate fall: sleep
    /// lowers the rate over tens of minutes, a conduction block or sinus
    /// arrest within seconds.
    #[serde(default)]
    pub onset_within_ms: Option<i64>,
    /// With `onset_within_ms`: the level an abrupt onset started from, and
    /// the baseline, must lie on this side of this value — at most it for
    /// a fall, at least it for a rise. A heart rate falling from above 100 /min is a
    /// tachycardia ending, not a bradycardia starting; once the baseline
    /// is established, "from the usual" already says so, but while it warms
    /// up the level learned so far may itself be a tachycardia.
    #[serde(default)]
    pub onset_from: Option<f64>,
    /// How long the baseline must have been learning before this limit is
    /// judged, ms: a whole day for rises of vitals that sleep lowers, so a
    /// baseline first learned while the patient slept does not take
    /// waking up for a drift.
    #[serde(default)]
    pub learned_for_ms: i64,
}

impl DriftLimit {
    /// The distance from `baseline` that breaches this limit.
    pub fn distance(&self, baseline: f64) -> f64 {
        (self.relative.abs() * baseline.abs()).max(self.absolute.abs())
    }
}

/// The drift rule and learning of one vital.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalDriftConfig {
    /// Whether this vital is learned and watched.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The short window, ms: the level is the median of the one-minute
    /// medians of the readings in it.
    pub window_ms: i64,
    /// How many one-minute medians (one per reading for a device slower
    /// than one a minute) the baseline must have learned before a drift may
    /// be raised. Until then the vital is silent.
    pub warmup: u32,
    /// Level above the baseline.
    pub rise: DriftLimit,
    /// Level below the baseline.
    pub fall: DriftLimit,
    /// How long the level must stay back near the baseline (see
    /// [`BaselineConfig::clear_within`]) before the drift clears, ms.
    pub clear_ms: i64,
    /// Longest gap between two one-minute medians that still counts as
    /// continuous, ms: a longer gap restarts an onset or clearing timer
    /// (no readings is no evidence either way).
    pub max_gap_ms: i64,
}

impl VitalDriftConfig {
    /// Heart rate and pulse rate (each learned on its own).
    pub const HEART_RATE: VitalDriftConfig = VitalDriftConfig {
        enabled: true,
        window_ms: 3 * MIN,
        warmup: 60,
        rise: DriftLimit {
            enabled: true,
            relative: 0.25,
            absolute: 10.0,
            sustain_ms: 60 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: DAY,
        },
        fall: DriftLimit {
            enabled: true,
            relative: 0.25,
            absolute: 10.0,
            sustain_ms: 2 * MIN,
            and_beyond: Some(50.0),
            onset_within_ms: Some(10 * MIN),
            // Tachycardia: > 100 /min (2015 ACC/AHA/HRS SVT guideline).
            onset_from: Some(100.0),
            learned_for_ms: 0,
        },
        clear_ms: 10 * MIN,
        max_gap_ms: 5 * MIN,
    };

    /// SpO2, in percentage points.
    pub const SPO2: VitalDriftConfig = VitalDriftConfig {
        enabled: true,
        window_ms: 5 * MIN,
        warmup: 60,
        rise: DriftLimit {
            enabled: false,
            relative: 0.0,
            absolute: 4.0,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        fall: DriftLimit {
            enabled: true,
            relative: 0.0,
            absolute: 4.0,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        clear_ms: 10 * MIN,
        max_gap_ms: 5 * MIN,
    };

    /// Body temperature, °C.
    pub const TEMPERATURE: VitalDriftConfig = VitalDriftConfig {
        enabled: true,
        window_ms: 10 * MIN,
        warmup: 60,
        rise: DriftLimit {
            enabled: true,
            relative: 0.0,
            absolute: 1.1,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        fall: DriftLimit {
            enabled: false,
            relative: 0.0,
            absolute: 1.5,
            sustain_ms: 60 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        clear_ms: 30 * MIN,
        max_gap_ms: 10 * MIN,
    };

    /// Respiratory rate, /min.
    pub const RESPIRATORY_RATE: VitalDriftConfig = VitalDriftConfig {
        enabled: true,
        window_ms: 5 * MIN,
        warmup: 60,
        rise: DriftLimit {
            enabled: true,
            relative: 0.25,
            absolute: 4.0,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: DAY,
        },
        fall: DriftLimit {
            enabled: true,
            relative: 0.30,
            absolute: 4.0,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        clear_ms: 10 * MIN,
        max_gap_ms: 5 * MIN,
    };

    /// Systolic blood pressure, mmHg (a cuff every 15–60 min).
    pub const SYSTOLIC_BP: VitalDriftConfig = VitalDriftConfig {
        enabled: true,
        window_ms: 45 * MIN,
        warmup: 4,
        rise: DriftLimit {
            enabled: true,
            relative: 0.25,
            absolute: 25.0,
            sustain_ms: 60 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: DAY,
        },
        fall: DriftLimit {
            enabled: true,
            relative: 0.30,
            absolute: 20.0,
            sustain_ms: 30 * MIN,
            and_beyond: None,
            onset_within_ms: None,
            onset_from: None,
            learned_for_ms: 0,
        },
        clear_ms: 30 * MIN,
        max_gap_ms: 70 * MIN,
    };

    /// The shortest sustain time of an enabled direction (for measuring an
    /// alert's delay beyond it); `None` when nothing is enabled.
    pub fn min_sustain_ms(&self) -> Option<i64> {
        if !self.enabled {
            return None;
        }
        [self.rise, self.fall]
            .iter()
            .filter(|l| l.enabled)
            .map(|l| l.sustain_ms)
            .min()
    }
}

/// The personal-baseline detector of one patient. See [`crate::baseline`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Whether baseline drifts are reported (the baselines are learned
    /// either way, so turning it on later starts warm).
    pub enabled: bool,
    /// Half-life of what has been learned, ms: a minute learned this long
    /// ago counts half as much as one learned now.
    pub half_life_ms: i64,
    /// A level within this fraction of a drift limit from the baseline is
    /// learned at full weight; farther out (and while a drift is active)
    /// at [`BaselineConfig::far_weight`].
    pub learn_within: f64,
    /// Weight of a minute learned while the level is far out or a drift is
    /// active (0: never learned).
    pub far_weight: f64,
    /// An active drift counts as cleared once its level is back within
    /// this fraction of the limit from the baseline.
    pub clear_within: f64,
    /// Heart rate and pulse rate, each learned on its own.
    pub heart_rate: VitalDriftConfig,
    /// SpO2.
    pub spo2: VitalDriftConfig,
    /// Body temperature.
    pub temperature: VitalDriftConfig,
    /// Respiratory rate.
    pub respiratory_rate: VitalDriftConfig,
    /// Systolic blood pressure.
    pub systolic_bp: VitalDriftConfig,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            enabled: true,
            half_life_ms: 3 * DAY,
            learn_within: 0.5,
            far_weight: 0.1,
            clear_within: 0.5,
            heart_rate: VitalDriftConfig::HEART_RATE,
            spo2: VitalDriftConfig::SPO2,
            temperature: VitalDriftConfig::TEMPERATURE,
            respiratory_rate: VitalDriftConfig::RESPIRATORY_RATE,
            systolic_bp: VitalDriftConfig::SYSTOLIC_BP,
        }
    }
}

impl BaselineConfig {
    /// The configuration of `vital`, when the detector watches it.
    pub fn vital(&self, vital: Vital) -> Option<&VitalDriftConfig> {
        match vital {
            Vital::HeartRate | Vital::PulseRate => Some(&self.heart_rate),
            Vital::Spo2 => Some(&self.spo2),
            Vital::BodyTemperature => Some(&self.temperature),
            Vital::RespiratoryRate => Some(&self.respiratory_rate),
            Vital::SystolicBp => Some(&self.systolic_bp),
            _ => None,
        }
    }

    /// The shortest sustain time of any enabled drift, ms (a lower bound
    /// for "delay beyond the sustain time": the condition does not say
    /// which vital raised it first).
    pub fn min_sustain_ms(&self) -> Option<i64> {
        [
            self.heart_rate,
            self.spo2,
            self.temperature,
            self.respiratory_rate,
            self.systolic_bp,
        ]
        .iter()
        .filter_map(VitalDriftConfig::min_sustain_ms)
        .min()
    }
}
