//! The vital signs the gateway understands, with their codes, units and
//! physiologically possible ranges.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A vital sign. Every value of a vital is carried in its one canonical UCUM
/// unit ([`Vital::ucum`]); decoders convert (°F → Cel, kPa → `mm[Hg]`) so no
/// later stage ever has to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vital {
    /// Heart rate from an electrical or chest-strap sensor.
    HeartRate,
    /// Pulse rate from a pulse oximeter (plethysmographic).
    PulseRate,
    /// Peripheral oxygen saturation by pulse oximetry.
    Spo2,
    /// Breaths per minute.
    RespiratoryRate,
    /// Core/body temperature.
    BodyTemperature,
    /// Systolic blood pressure.
    SystolicBp,
    /// Diastolic blood pressure.
    DiastolicBp,
    /// Mean arterial pressure.
    MeanArterialPressure,
    /// Perfusion index: pulsatile / non-pulsatile infrared signal, in percent.
    PerfusionIndex,
    /// Interval between two R waves (beat-to-beat), in milliseconds.
    RrInterval,
}

impl Vital {
    /// Every vital, in a stable order (used for indexing snapshots).
    pub const ALL: [Vital; 10] = [
        Vital::HeartRate,
        Vital::PulseRate,
        Vital::Spo2,
        Vital::RespiratoryRate,
        Vital::BodyTemperature,
        Vital::SystolicBp,
        Vital::DiastolicBp,
        Vital::MeanArterialPressure,
        Vital::PerfusionIndex,
        Vital::RrInterval,
    ];

    /// Number of vitals, for fixed-size per-vital arrays.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Vital::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The snake_case name used in JSON, TOML and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Vital::HeartRate => "heart_rate",
            Vital::PulseRate => "pulse_rate",
            Vital::Spo2 => "spo2",
            Vital::RespiratoryRate => "respiratory_rate",
            Vital::BodyTemperature => "body_temperature",
            Vital::SystolicBp => "systolic_bp",
            Vital::DiastolicBp => "diastolic_bp",
            Vital::MeanArterialPressure => "mean_arterial_pressure",
            Vital::PerfusionIndex => "perfusion_index",
            Vital::RrInterval => "rr_interval",
        }
    }

    /// LOINC code, as used by the FHIR R4 vital-signs profiles.
    ///
    /// Heart rate, respiratory rate, body temperature, the blood pressures
    /// and SpO2 (59408-5, "by pulse oximetry") are the codes the FHIR R4
    /// vital-signs profile names; pulse rate is 8889-8 ("Heart rate by pulse
    /// oximetry"), perfusion index 61006-3, RR interval 8637-4 ("R-R
    /// interval by EKG").
    pub const fn loinc(self) -> &'static str {
        match self {
            Vital::HeartRate => "8867-4",
            Vital::PulseRate => "8889-8",
            Vital::Spo2 => "59408-5",
            Vital::RespiratoryRate => "9279-1",
            Vital::BodyTemperature => "8310-5",
            Vital::SystolicBp => "8480-6",
            Vital::DiastolicBp => "8462-4",
            Vital::MeanArterialPressure => "8478-0",
            Vital::PerfusionIndex => "61006-3",
            Vital::RrInterval => "8637-4",
        }
    }

    /// The canonical UCUM unit every value of this vital is expressed in.
    pub const fn ucum(self) -> &'static str {
        match self {
            Vital::HeartRate | Vital::PulseRate | Vital::RespiratoryRate => "/min",
            Vital::Spo2 | Vital::PerfusionIndex => "%",
            Vital::BodyTemperature => "Cel",
            Vital::SystolicBp | Vital::DiastolicBp | Vital::MeanArterialPressure => "mm[Hg]",
            Vital::RrInterval => "ms",
        }
    }

    /// The physiologically possible range, inclusive, in the canonical unit.
    ///
    /// These are not alarm limits: they bound what a living patient can
    /// present with at all (documented with their reasons in
    /// `docs/FORMAT.md`). A value outside is a device or transmission fault
    /// and is flagged [`crate::Quality::IMPOSSIBLE`].
    pub const fn possible_range(self) -> (f64, f64) {
        match self {
            Vital::HeartRate | Vital::PulseRate => (15.0, 300.0),
            Vital::Spo2 => (10.0, 100.0),
            Vital::RespiratoryRate => (1.0, 100.0),
            Vital::BodyTemperature => (24.0, 45.0),
            Vital::SystolicBp => (40.0, 300.0),
            Vital::DiastolicBp => (10.0, 200.0),
            Vital::MeanArterialPressure => (20.0, 250.0),
            Vital::PerfusionIndex => (0.0, 25.0),
            Vital::RrInterval => (200.0, 4000.0),
        }
    }

    /// Whether `value` lies in [`Vital::possible_range`] (NaN never does).
    pub fn is_possible(self, value: f64) -> bool {
        let (lo, hi) = self.possible_range();
        value >= lo && value <= hi
    }
}

impl fmt::Display for Vital {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown vital name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown vital `{0}` (expected one of: heart_rate, pulse_rate, spo2, respiratory_rate, body_temperature, systolic_bp, diastolic_bp, mean_arterial_pressure, perfusion_index, rr_interval)"
)]
pub struct UnknownVital(pub String);

impl FromStr for Vital {
    type Err = UnknownVital;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Vital::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| UnknownVital(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vital_round_trips_through_its_name_and_index() {
        for (i, v) in Vital::ALL.into_iter().enumerate() {
            assert_eq!(v.index(), i);
            assert_eq!(v.name().parse::<Vital>(), Ok(v));
            let json = serde_json::to_string(&v).unwrap();
            assert_eq!(json, format!("\"{}\"", v.name()));
        }
    }

    #[test]
    fn impossible_values_are_recognised() {
        assert!(Vital::Spo2.is_possible(97.0));
        assert!(!Vital::Spo2.is_possible(127.0));
        assert!(!Vital::PulseRate.is_possible(0.0));
        assert!(!Vital::BodyTemperature.is_possible(f64::NAN));
    }
}
