//! Which characteristic a value belongs to, and the one place a value is
//! routed to its decoder.
//!
//! Both ways a characteristic value reaches the gateway — a notification
//! on a direct Bluetooth connection, or a value relayed by a BLE proxy over
//! MQTT — end in [`Characteristic::report`], so a value is judged the same
//! whichever way it came.

use super::blood_pressure::{BloodPressureMeasurement, BpCharacteristic};
use super::heart_rate::HeartRateMeasurement;
use super::plx::{PlxContinuous, PlxFeatures, PlxSpotCheck};
use super::thermometer::TemperatureMeasurement;
use super::{GattError, heart_rate, plx, thermometer};
use crate::decode::{DecodeError, Decoded};
use crate::{Reject, Timestamp, Vital};
use std::fmt;
use std::str::FromStr;

/// The Bluetooth Base UUID's last 96 bits: a 16-bit SIG UUID `xxxx` is
/// `0000xxxx-0000-1000-8000-00805F9B34FB` (Core Specification, Vol 3,
/// Part B, 2.5.1).
const BASE_UUID_TAIL: &str = "-0000-1000-8000-00805f9b34fb";

/// A standard health service the gateway speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// Heart Rate Service (0x180D).
    HeartRate,
    /// Health Thermometer Service (0x1809).
    HealthThermometer,
    /// Blood Pressure Service (0x1810).
    BloodPressure,
    /// Pulse Oximeter Service (0x1822).
    PulseOximeter,
}

impl Service {
    /// Every service.
    pub const ALL: [Service; 4] = [
        Service::HeartRate,
        Service::HealthThermometer,
        Service::BloodPressure,
        Service::PulseOximeter,
    ];

    /// The service's 16-bit UUID.
    pub const fn uuid(self) -> u16 {
        match self {
            Service::HeartRate => 0x180D,
            Service::HealthThermometer => 0x1809,
            Service::BloodPressure => 0x1810,
            Service::PulseOximeter => 0x1822,
        }
    }

    /// The service with this 16-bit UUID.
    pub fn from_uuid(uuid: u16) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.uuid() == uuid)
    }

    /// The characteristics of the service that carry measurements, in the
    /// order the gateway subscribes to them (the final measurement first).
    pub const fn characteristics(self) -> &'static [Characteristic] {
        match self {
            Service::HeartRate => &[Characteristic::HeartRateMeasurement],
            Service::HealthThermometer => &[
                Characteristic::TemperatureMeasurement,
                Characteristic::IntermediateTemperature,
            ],
            Service::BloodPressure => &[
                Characteristic::BloodPressureMeasurement,
                Characteristic::IntermediateCuffPressure,
            ],
            Service::PulseOximeter => &[
                Characteristic::PlxSpotCheck,
                Characteristic::PlxContinuous,
                Characteristic::PlxFeatures,
            ],
        }
    }

    /// The SIG's name.
    pub const fn name(self) -> &'static str {
        match self {
            Service::HeartRate => "Heart Rate",
            Service::HealthThermometer => "Health Thermometer",
            Service::BloodPressure => "Blood Pressure",
            Service::PulseOximeter => "Pulse Oximeter",
        }
    }
}

/// How the peripheral sends a characteristic's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Unacknowledged notifications (streams: heart rate, continuous SpO2).
    Notify,
    /// Acknowledged indications (finished measurements a device stores
    /// until they are confirmed).
    Indicate,
    /// Read on request (static descriptions such as PLX Features).
    Read,
}

/// A characteristic the gateway decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    /// Heart Rate Measurement (0x2A37).
    HeartRateMeasurement,
    /// Temperature Measurement (0x2A1C).
    TemperatureMeasurement,
    /// Intermediate Temperature (0x2A1E).
    IntermediateTemperature,
    /// Blood Pressure Measurement (0x2A35).
    BloodPressureMeasurement,
    /// Intermediate Cuff Pressure (0x2A36).
    IntermediateCuffPressure,
    /// PLX Spot-Check Measurement (0x2A5E).
    PlxSpotCheck,
    /// PLX Continuous Measurement (0x2A5F).
    PlxContinuous,
    /// PLX Features (0x2A60).
    PlxFeatures,
}

impl Characteristic {
    /// Every characteristic.
    pub const ALL: [Characteristic; 8] = [
        Characteristic::HeartRateMeasurement,
        Characteristic::TemperatureMeasurement,
        Characteristic::IntermediateTemperature,
        Characteristic::BloodPressureMeasurement,
        Characteristic::IntermediateCuffPressure,
        Characteristic::PlxSpotCheck,
        Characteristic::PlxContinuous,
        Characteristic::PlxFeatures,
    ];

    /// The 16-bit UUID.
    pub const fn uuid(self) -> u16 {
        match self {
            Characteristic::HeartRateMeasurement => heart_rate::UUID,
            Characteristic::TemperatureMeasurement => thermometer::TEMPERATURE_MEASUREMENT_UUID,
            Characteristic::IntermediateTemperature => thermometer::INTERMEDIATE_TEMPERATURE_UUID,
            Characteristic::BloodPressureMeasurement => BpCharacteristic::Measurement.uuid(),
            Characteristic::IntermediateCuffPressure => {
                BpCharacteristic::IntermediateCuffPressure.uuid()
            }
            Characteristic::PlxSpotCheck => plx::PLX_SPOT_CHECK_UUID,
            Characteristic::PlxContinuous => plx::PLX_CONTINUOUS_UUID,
            Characteristic::PlxFeatures => plx::PLX_FEATURES_UUID,
        }
    }

    /// The characteristic with this 16-bit UUID.
    pub fn from_uuid(uuid: u16) -> Option<Characteristic> {
        Characteristic::ALL.into_iter().find(|c| c.uuid() == uuid)
    }

    /// The service it belongs to.
    pub const fn service(self) -> Service {
        match self {
            Characteristic::HeartRateMeasurement => Service::HeartRate,
            Characteristic::TemperatureMeasurement | Characteristic::IntermediateTemperature => {
                Service::HealthThermometer
            }
            Characteristic::BloodPressureMeasurement | Characteristic::IntermediateCuffPressure => {
                Service::BloodPressure
            }
            Characteristic::PlxSpotCheck
            | Characteristic::PlxContinuous
            | Characteristic::PlxFeatures => Service::PulseOximeter,
        }
    }

    /// How the service specification says it is sent.
    pub const fn delivery(self) -> Delivery {
        match self {
            Characteristic::HeartRateMeasurement
            | Characteristic::IntermediateTemperature
            | Characteristic::IntermediateCuffPressure
            | Characteristic::PlxContinuous => Delivery::Notify,
            Characteristic::TemperatureMeasurement
            | Characteristic::BloodPressureMeasurement
            | Characteristic::PlxSpotCheck => Delivery::Indicate,
            Characteristic::PlxFeatures => Delivery::Read,
        }
    }

    /// The SIG's name.
    pub const fn name(self) -> &'static str {
        match self {
            Characteristic::HeartRateMeasurement => "Heart Rate Measurement",
            Characteristic::TemperatureMeasurement => "Temperature Measurement",
            Characteristic::IntermediateTemperature => "Intermediate Temperature",
            Characteristic::BloodPressureMeasurement => "Blood Pressure Measurement",
            Characteristic::IntermediateCuffPressure => "Intermediate Cuff Pressure",
            Characteristic::PlxSpotCheck => "PLX Spot-Check Measurement",
            Characteristic::PlxContinuous => "PLX Continuous Measurement",
            Characteristic::PlxFeatures => "PLX Features",
        }
    }

    /// The vitals its values can yield.
    pub const fn vitals(self) -> &'static [Vital] {
        match self {
            Characteristic::HeartRateMeasurement => &[Vital::HeartRate, Vital::RrInterval],
            Characteristic::TemperatureMeasurement | Characteristic::IntermediateTemperature => {
                &[Vital::BodyTemperature]
            }
            Characteristic::BloodPressureMeasurement | Characteristic::IntermediateCuffPressure => {
                &[
                    Vital::SystolicBp,
                    Vital::DiastolicBp,
                    Vital::MeanArterialPressure,
                    Vital::PulseRate,
                ]
            }
            Characteristic::PlxSpotCheck | Characteristic::PlxContinuous => {
                &[Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex]
            }
            Characteristic::PlxFeatures => &[],
        }
    }

    /// Decode one value of this characteristic and report what it says:
    /// measurements, statuses, or one [`Reject::Malformed`] error naming
    /// the field. `device_time` is the time to use when the value carries
    /// none (when it was received); `offset` is the message's.
    pub fn report(
        self,
        value: &[u8],
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        let result = match self {
            // Without collecting the RR intervals into a Vec.
            Characteristic::HeartRateMeasurement => {
                HeartRateMeasurement::decode_and_report(value, device_time, offset, out)
            }
            Characteristic::TemperatureMeasurement => {
                TemperatureMeasurement::decode(value).map(|m| m.report(device_time, offset, out))
            }
            Characteristic::IntermediateTemperature => {
                TemperatureMeasurement::decode_intermediate(value)
                    .map(|m| m.report(device_time, offset, out))
            }
            Characteristic::BloodPressureMeasurement => {
                BloodPressureMeasurement::decode(BpCharacteristic::Measurement, value)
                    .map(|m| m.report(device_time, offset, out))
            }
            Characteristic::IntermediateCuffPressure => {
                BloodPressureMeasurement::decode(BpCharacteristic::IntermediateCuffPressure, value)
                    .map(|m| m.report(device_time, offset, out))
            }
            Characteristic::PlxSpotCheck => {
                PlxSpotCheck::decode(value).map(|m| m.report(device_time, offset, out))
            }
            Characteristic::PlxContinuous => {
                PlxContinuous::decode(value).map(|m| m.report(device_time, offset, out))
            }
            // What the oximeter supports is a description, not a reading:
            // it is checked (a malformed one is reported) and otherwise
            // says nothing about the patient.
            Characteristic::PlxFeatures => PlxFeatures::decode(value).map(|_| ()),
        };
        if let Err(e) = result {
            out(Decoded::Error(self.error(value.len(), offset, &e)));
        }
    }

    /// The decode error for a value of this characteristic.
    pub fn error(self, len: usize, offset: u64, e: &GattError) -> DecodeError {
        DecodeError::new(
            offset,
            len as u64,
            Reject::Malformed,
            format!("{} ({:#06X}): {e}", self.name(), self.uuid()),
        )
    }
}

impl fmt::Display for Characteristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.uuid())
    }
}

/// A UUID that is not one of the characteristics or services the gateway
/// decodes, or is not a UUID at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UuidError {
    /// Not written as 4 hex digits (optionally `0x`-prefixed) or as a
    /// 128-bit UUID.
    #[error(
        "`{0}` is not a UUID (expected 4 hex digits such as 2A37, or the 128-bit form 00002a37-0000-1000-8000-00805f9b34fb)"
    )]
    Syntax(String),
    /// A 128-bit UUID outside the Bluetooth Base UUID: a vendor's own
    /// characteristic, which the standard decoders cannot read.
    #[error("{0} is a vendor-specific UUID, not a Bluetooth SIG characteristic")]
    Vendor(String),
    /// A SIG UUID the gateway does not decode.
    #[error("{0:04X} is not a characteristic the gateway decodes (known: {known})", known = known_characteristics())]
    Unknown(u16),
}

fn known_characteristics() -> String {
    Characteristic::ALL
        .iter()
        .map(|c| format!("{c} {}", c.name()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Read a 16-bit SIG UUID from `2A37`, `0x2a37` or
/// `00002a37-0000-1000-8000-00805f9b34fb` (any case).
pub fn parse_uuid16(text: &str) -> Result<u16, UuidError> {
    let t = text.trim();
    let syntax = || UuidError::Syntax(t.chars().take(64).collect());
    // Everything below slices by byte position: only ASCII can be a UUID.
    if !t.is_ascii() {
        return Err(syntax());
    }
    if t.len() == 36 {
        let lower = t.to_ascii_lowercase();
        let (head, tail) = lower.split_at(8);
        let valid = lower.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
        if !valid {
            return Err(syntax());
        }
        if tail != BASE_UUID_TAIL || !head.starts_with("0000") {
            return Err(UuidError::Vendor(lower));
        }
        return u16::from_str_radix(&head[4..], 16).map_err(|_| syntax());
    }
    let digits = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(syntax());
    }
    u16::from_str_radix(digits, 16).map_err(|_| syntax())
}

impl FromStr for Characteristic {
    type Err = UuidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uuid = parse_uuid16(s)?;
        Characteristic::from_uuid(uuid).ok_or(UuidError::Unknown(uuid))
    }
}

impl FromStr for Service {
    type Err = UuidError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let uuid = parse_uuid16(s)?;
        Service::from_uuid(uuid).ok_or(UuidError::Unknown(uuid))
    }
}

impl<'de> serde::Deserialize<'de> for Characteristic {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl<'de> serde::Deserialize<'de> for Service {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// The 128-bit form of a 16-bit SIG UUID, lower case, as BlueZ writes it.
pub fn uuid128(uuid16: u16) -> String {
    format!("0000{uuid16:04x}{BASE_UUID_TAIL}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Measurement;

    #[test]
    fn uuids_parse_in_every_written_form() {
        for text in [
            "2A37",
            "2a37",
            "0x2A37",
            "00002a37-0000-1000-8000-00805f9b34fb",
            "00002A37-0000-1000-8000-00805F9B34FB",
        ] {
            assert_eq!(
                text.parse::<Characteristic>(),
                Ok(Characteristic::HeartRateMeasurement),
                "{text}"
            );
        }
        assert_eq!(uuid128(0x2A37), "00002a37-0000-1000-8000-00805f9b34fb");
        assert!(matches!(
            "6e400003-b5a3-f393-e0a9-e50e24dcca9e".parse::<Characteristic>(),
            Err(UuidError::Vendor(_))
        ));
        assert_eq!(
            "2A19".parse::<Characteristic>(),
            Err(UuidError::Unknown(0x2A19))
        );
        for bad in [
            "",
            "2A3",
            "2A377",
            "zz37",
            "0x",
            "00002a37-0000-1000-8000_00805f9b34fb",
            // A multi-byte character across byte 8 of a 36-byte text.
            "0000000é-0000-1000-8000-00805f9b34f",
            "2Aé",
        ] {
            assert!(
                matches!(bad.parse::<Characteristic>(), Err(UuidError::Syntax(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_characteristic_belongs_to_its_service_and_round_trips_its_uuid() {
        for c in Characteristic::ALL {
            assert_eq!(Characteristic::from_uuid(c.uuid()), Some(c));
            assert!(c.service().characteristics().contains(&c), "{c}");
        }
        for s in Service::ALL {
            assert_eq!(Service::from_uuid(s.uuid()), Some(s));
            assert_eq!(format!("{:04X}", s.uuid()).parse::<Service>(), Ok(s));
        }
    }

    #[test]
    fn a_value_goes_to_its_decoder() {
        let mut got = Vec::new();
        // Heart rate 72, 8-bit, no contact feature.
        Characteristic::HeartRateMeasurement.report(&[0x00, 72], None, 7, &mut |d| got.push(d));
        assert_eq!(
            got,
            vec![Decoded::Measurement(Measurement {
                vital: Vital::HeartRate,
                value: 72.0,
                device_time: None,
                quality: crate::Quality::NONE,
                offset: 7,
            })]
        );
    }

    #[test]
    fn a_malformed_value_is_one_error_naming_the_characteristic_and_field() {
        let mut got = Vec::new();
        Characteristic::HeartRateMeasurement.report(&[0x01, 72], None, 3, &mut |d| got.push(d));
        let [Decoded::Error(e)] = got.as_slice() else {
            panic!("{got:?}")
        };
        assert_eq!(e.reason, Reject::Malformed);
        assert_eq!(e.offset, 3);
        assert!(
            e.detail
                .starts_with("Heart Rate Measurement (0x2A37): truncated"),
            "{}",
            e.detail
        );
    }

    #[test]
    fn plx_features_are_checked_but_report_nothing() {
        let mut got = Vec::new();
        Characteristic::PlxFeatures.report(&[0x00, 0x00], None, 0, &mut |d| got.push(d));
        assert!(got.is_empty());
        Characteristic::PlxFeatures.report(&[0x00], None, 0, &mut |d| got.push(d));
        assert!(matches!(got.as_slice(), [Decoded::Error(_)]));
    }

    #[test]
    fn random_values_never_panic_in_any_characteristic() {
        let mut rng = crate::format::testing::Rng::new(0x6A77);
        for _ in 0..20_000 {
            let value = rng.bytes(24);
            for c in Characteristic::ALL {
                c.report(&value, None, 0, &mut |_| {});
            }
        }
    }
}
