//! The one normalized type that flows through the gateway.

use crate::{Measurement, Quality, Timestamp, Vital};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A vital-sign value bound to its device and patient.
///
/// Values are always in the vital's canonical UCUM unit, so the unit is a
/// property of the vital rather than a free field that could disagree with
/// it; it is still written out in JSON for the reader's sake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "ReadingJson", try_from = "ReadingJson")]
pub struct Reading {
    /// Configured device id (e.g. `ox-bedroom`).
    pub device: Arc<str>,
    /// Pseudonymous patient id the device is bound to.
    pub patient: Arc<str>,
    /// Which vital.
    pub vital: Vital,
    /// Value in [`Vital::ucum`].
    pub value: f64,
    /// The device's own timestamp, when it sends one.
    pub device_time: Option<Timestamp>,
    /// When the gateway received it.
    pub gateway_time: Timestamp,
    /// Quality flags from the device and from the gateway's checks.
    pub quality: Quality,
}

impl Reading {
    /// Bind a decoded measurement to a device and patient, checking the
    /// value against the vital's possible range.
    pub fn from_measurement(
        m: &Measurement,
        device: &Arc<str>,
        patient: &Arc<str>,
        gateway_time: Timestamp,
    ) -> Reading {
        let mut quality = m.quality;
        quality.set(Quality::IMPOSSIBLE, !m.vital.is_possible(m.value));
        Reading {
            device: Arc::clone(device),
            patient: Arc::clone(patient),
            vital: m.vital,
            value: m.value,
            device_time: m.device_time,
            gateway_time,
            quality,
        }
    }

    /// The UCUM unit of the value.
    pub fn unit(&self) -> &'static str {
        self.vital.ucum()
    }

    /// Measurement time: the device's when it gave one, else the gateway's.
    /// Detection runs on this, not on the wall clock.
    pub fn time(&self) -> Timestamp {
        self.device_time.unwrap_or(self.gateway_time)
    }

    /// Whether the value may be used clinically: possible, and not from a
    /// sensor the device itself says is off or faulty.
    pub fn is_valid(&self) -> bool {
        !self
            .quality
            .intersects(Quality::IMPOSSIBLE | Quality::SENSOR_OFF | Quality::DEVICE_FAULT)
    }
}

/// The JSON shape of a reading (see `docs/FORMAT.md`).
#[derive(Serialize, Deserialize)]
struct ReadingJson {
    device: Arc<str>,
    patient: Arc<str>,
    vital: Vital,
    value: f64,
    unit: String,
    loinc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    device_time: Option<Timestamp>,
    gateway_time: Timestamp,
    #[serde(default)]
    quality: Quality,
}

impl From<Reading> for ReadingJson {
    fn from(r: Reading) -> Self {
        ReadingJson {
            unit: r.vital.ucum().to_owned(),
            loinc: r.vital.loinc().to_owned(),
            device: r.device,
            patient: r.patient,
            vital: r.vital,
            value: r.value,
            device_time: r.device_time,
            gateway_time: r.gateway_time,
            quality: r.quality,
        }
    }
}

impl TryFrom<ReadingJson> for Reading {
    type Error = String;
    fn try_from(j: ReadingJson) -> Result<Self, String> {
        if j.unit != j.vital.ucum() {
            return Err(format!(
                "unit `{}` is not the canonical unit `{}` of {}",
                j.unit,
                j.vital.ucum(),
                j.vital
            ));
        }
        Ok(Reading {
            device: j.device,
            patient: j.patient,
            vital: j.vital,
            value: j.value,
            device_time: j.device_time,
            gateway_time: j.gateway_time,
            quality: j.quality,
        })
    }
}

/// What a simulated device measures at one instant: the input of every
/// [`crate::decode::Encoder`]. `None` means the device has no value for that
/// vital right now (sensor off, searching, not a vital this device has).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Snapshot {
    /// When the device measured.
    pub time: Timestamp,
    /// Per-vital value, indexed by [`Vital::index`], in canonical units.
    pub values: [Option<f64>; Vital::COUNT],
    /// Device state flags to encode (sensor off, searching, artifact, ...).
    pub quality: Quality,
    /// Message/frame sequence number since the device started.
    pub seq: u64,
}

impl Snapshot {
    /// The value of `vital`, if any.
    pub fn get(&self, vital: Vital) -> Option<f64> {
        self.values[vital.index()]
    }

    /// Set the value of `vital`.
    pub fn set(&mut self, vital: Vital, value: Option<f64>) {
        self.values[vital.index()] = value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measurement(vital: Vital, value: f64) -> Measurement {
        Measurement {
            vital,
            value,
            device_time: None,
            quality: Quality::NONE,
            offset: 0,
        }
    }

    #[test]
    fn impossible_values_are_flagged_and_not_valid() {
        let (d, p): (Arc<str>, Arc<str>) = ("ox-1".into(), "p-1".into());
        let ok = Reading::from_measurement(&measurement(Vital::Spo2, 97.0), &d, &p, Timestamp(0));
        assert!(ok.is_valid());
        let bad = Reading::from_measurement(&measurement(Vital::Spo2, 127.0), &d, &p, Timestamp(0));
        assert!(bad.quality.contains(Quality::IMPOSSIBLE));
        assert!(!bad.is_valid());
    }

    #[test]
    fn json_carries_unit_and_loinc_and_round_trips() {
        let r = Reading::from_measurement(
            &measurement(Vital::BodyTemperature, 37.2),
            &"th-1".into(),
            &"p-1".into(),
            Timestamp(1_000),
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(
            json,
            r#"{"device":"th-1","patient":"p-1","vital":"body_temperature","value":37.2,"unit":"Cel","loinc":"8310-5","gateway_time":"1970-01-01T00:00:01.000Z","quality":[]}"#
        );
        assert_eq!(serde_json::from_str::<Reading>(&json).unwrap(), r);
        let wrong_unit = json.replace("\"Cel\"", "\"[degF]\"");
        assert!(serde_json::from_str::<Reading>(&wrong_unit).is_err());
    }
}
