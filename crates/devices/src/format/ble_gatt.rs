//! Bluetooth LE GATT characteristic values (the SIG's standard health
//! services), one value per message.
//!
//! The decoders themselves live in [`crate::gatt`]; this module is how a
//! message names its characteristic. A message is one of:
//!
//! * a capture line, `[UUID ]HEX`: the characteristic value in hex,
//!   optionally after its characteristic UUID (`2A37 064B`, or `064B`
//!   alone, which is read as the profile's first characteristic). This is
//!   what `vitalgate decode` reads and what the encoder writes;
//! * a BLE proxy message, JSON or binary ([`RelayedValue`]): the address,
//!   UUID and raw value relayed over MQTT. Read here so that a capture of
//!   a proxy's messages decodes too; in the daemon the proxy route reads
//!   the address first, to find the bound device, then comes to
//!   [`report_value`] like everything else.
//!
//! A characteristic the profile does not list is [`Reject::Unsupported`]:
//! a heart-rate strap that starts sending blood pressure is not the device
//! the profile describes.

use crate::decode::{DecodeError, Decoded, Decoder, Encoder, MessageDecoder};
use crate::format::FormatOptions;
use crate::gatt::Address;
use crate::gatt::blood_pressure::{BloodPressureMeasurement, BpCharacteristic, PressureUnit};
use crate::gatt::characteristic::{Characteristic, Service, UuidError, parse_uuid16};
use crate::gatt::date_time::DateTime;
use crate::gatt::float::Float11073;
use crate::gatt::heart_rate::{HeartRateMeasurement, HeartRateValue, SensorContact};
use crate::gatt::plx::{PlxContinuous, PlxDeviceStatus, PlxMeasurementStatus, SpO2Pr};
use crate::gatt::relay::{BINARY_VERSION, MAX_VALUE_LEN, RelayError, RelayedValue};
use crate::gatt::thermometer::{TemperatureMeasurement, TemperatureType, TemperatureUnit};
use crate::{Quality, Reject, Snapshot, Timestamp, Vital};

/// Every vital a standard health service yields.
pub const VITALS: &[Vital] = &[
    Vital::HeartRate,
    Vital::RrInterval,
    Vital::BodyTemperature,
    Vital::SystolicBp,
    Vital::DiastolicBp,
    Vital::MeanArterialPressure,
    Vital::PulseRate,
    Vital::Spo2,
    Vital::PerfusionIndex,
];

/// A fresh decoder for the profile's characteristics.
pub fn decoder(options: &FormatOptions) -> Decoder {
    Decoder::Message(Box::new(GattDecoder {
        characteristics: options.characteristics.clone(),
    }))
}

/// An encoder writing capture lines for every service whose vitals a
/// snapshot holds.
pub fn encoder(_device_id: &str) -> Box<dyn Encoder> {
    Box::new(GattEncoder {
        services: Service::ALL.to_vec(),
    })
}

/// Decode `value`, sent by `uuid`, and report it, unless the profile does
/// not list the characteristic (`allowed` empty allows every one).
/// `time` is the relay's or the gateway's time for values that carry none.
pub fn report_value(
    allowed: &[Characteristic],
    uuid: u16,
    value: &[u8],
    time: Option<Timestamp>,
    offset: u64,
    out: &mut dyn FnMut(Decoded),
) {
    let characteristic = match Characteristic::from_uuid(uuid) {
        Some(c) if allowed.is_empty() || allowed.contains(&c) => c,
        found => {
            let why = match found {
                Some(c) => format!(
                    "{} ({uuid:#06X}) is not a characteristic this device's profile lists",
                    c.name()
                ),
                None => UuidError::Unknown(uuid).to_string(),
            };
            out(Decoded::Error(DecodeError::new(
                offset,
                value.len() as u64,
                Reject::Unsupported,
                why,
            )));
            return;
        }
    };
    characteristic.report(value, time, offset, out);
}

/// The [`Reject`] for a proxy message that could not be read.
pub fn relay_reject(e: &RelayError) -> Reject {
    match e {
        RelayError::Malformed(_) => Reject::Malformed,
        RelayError::Uuid(_) => Reject::Unsupported,
        RelayError::BadTime(_) => Reject::BadTime,
    }
}

struct GattDecoder {
    characteristics: Vec<Characteristic>,
}

impl MessageDecoder for GattDecoder {
    fn decode(
        &mut self,
        payload: &[u8],
        offset: u64,
        _received: Timestamp,
        out: &mut dyn FnMut(Decoded),
    ) {
        let error = |reason: Reject, detail: String| {
            Decoded::Error(DecodeError::new(
                offset,
                payload.len() as u64,
                reason,
                detail,
            ))
        };
        let first = payload.iter().find(|b| !b.is_ascii_whitespace());
        if first == Some(&b'{') || payload.first() == Some(&BINARY_VERSION) {
            match RelayedValue::parse(payload) {
                Ok(r) => report_value(&self.characteristics, r.uuid, &r.value, r.time, offset, out),
                Err(e) => out(error(relay_reject(&e), e.to_string())),
            }
            return;
        }
        match read_line(payload, &self.characteristics) {
            Ok((uuid, value)) => {
                report_value(&self.characteristics, uuid, &value, None, offset, out)
            }
            Err((reason, detail)) => out(error(reason, detail)),
        }
    }
}

/// `[UUID ]HEX` → (UUID, value).
fn read_line(line: &[u8], profile: &[Characteristic]) -> Result<(u16, Vec<u8>), (Reject, String)> {
    let text = std::str::from_utf8(line)
        .map_err(|_| (Reject::Malformed, "capture line is not text".to_owned()))?;
    let mut words = text.split_ascii_whitespace();
    let (uuid, hex_value) = match (words.next(), words.next(), words.next()) {
        (Some(value), None, None) => {
            let Some(first) = profile.first() else {
                return Err((
                    Reject::Malformed,
                    "no characteristic UUID before the value, and the profile lists none to assume; write `2A37 064B`".into(),
                ));
            };
            (first.uuid(), value)
        }
        (Some(uuid), Some(value), None) => (
            parse_uuid16(uuid).map_err(|e| (Reject::Unsupported, e.to_string()))?,
            value,
        ),
        _ => {
            return Err((
                Reject::Malformed,
                "expected `[UUID ]HEX`: a characteristic value in hex, optionally after its UUID"
                    .into(),
            ));
        }
    };
    if hex_value.len() > 2 * MAX_VALUE_LEN {
        return Err((
            Reject::TooLarge,
            format!(
                "{} hex digits; a characteristic value is at most {MAX_VALUE_LEN} bytes",
                hex_value.len()
            ),
        ));
    }
    let value = hex::decode(hex_value).map_err(|e| {
        (
            Reject::Malformed,
            format!("the value must be its bytes in hex: {e}"),
        )
    })?;
    Ok((uuid, value))
}

/// What a wearable of `service` sends for one snapshot: its
/// characteristics' values, in the order the service lists them.
/// Vitals the snapshot lacks are left out; a snapshot with none of the
/// service's vitals yields nothing.
pub fn values(service: Service, snapshot: &Snapshot) -> Vec<(Characteristic, Vec<u8>)> {
    let q = snapshot.quality;
    let off = q.contains(Quality::SENSOR_OFF);
    let mut out = Vec::new();
    match service {
        Service::HeartRate => {
            let Some(bpm) = snapshot.get(Vital::HeartRate) else {
                return out;
            };
            let bpm = bpm.round().clamp(0.0, f64::from(u16::MAX)) as u16;
            let rr = snapshot
                .get(Vital::RrInterval)
                .map(|ms| (ms * 1024.0 / 1000.0).round().clamp(0.0, 65535.0) as u16);
            let m = HeartRateMeasurement {
                heart_rate: match u8::try_from(bpm) {
                    Ok(b) => HeartRateValue::U8(b),
                    Err(_) => HeartRateValue::U16(bpm),
                },
                contact: if off {
                    SensorContact::NotDetected
                } else {
                    SensorContact::Detected
                },
                energy_expended: None,
                rr_intervals: rr.into_iter().collect(),
            };
            out.push((Characteristic::HeartRateMeasurement, m.encode()));
        }
        Service::HealthThermometer => {
            let Some(celsius) = snapshot.get(Vital::BodyTemperature) else {
                return out;
            };
            let temperature = if off {
                Some(Float11073::NaN)
            } else {
                Float11073::with_decimals(celsius, 2)
            };
            if let Some(temperature) = temperature {
                let m = TemperatureMeasurement {
                    intermediate: q.contains(Quality::SEARCHING),
                    unit: TemperatureUnit::Celsius,
                    temperature,
                    time_stamp: DateTime::from_timestamp(snapshot.time),
                    temperature_type: Some(TemperatureType::Armpit),
                };
                let c = if m.intermediate {
                    Characteristic::IntermediateTemperature
                } else {
                    Characteristic::TemperatureMeasurement
                };
                out.push((c, m.encode()));
            }
        }
        Service::BloodPressure => {
            let (Some(sys), Some(dia)) = (
                snapshot.get(Vital::SystolicBp),
                snapshot.get(Vital::DiastolicBp),
            ) else {
                return out;
            };
            let map = snapshot
                .get(Vital::MeanArterialPressure)
                .unwrap_or((sys + 2.0 * dia) / 3.0);
            let sfloat = |v: f64| Float11073::with_decimals(v, 0).unwrap_or(Float11073::NaN);
            let m = BloodPressureMeasurement {
                characteristic: BpCharacteristic::Measurement,
                unit: PressureUnit::MmHg,
                systolic: sfloat(sys),
                diastolic: sfloat(dia),
                mean_arterial_pressure: sfloat(map),
                time_stamp: DateTime::from_timestamp(snapshot.time),
                pulse_rate: snapshot
                    .get(Vital::PulseRate)
                    .or(snapshot.get(Vital::HeartRate))
                    .map(sfloat),
                user_id: None,
                status: None,
            };
            let mut bytes = Vec::new();
            if m.encode(&mut bytes).is_ok() {
                out.push((Characteristic::BloodPressureMeasurement, bytes));
            }
        }
        Service::PulseOximeter => {
            let spo2 = snapshot.get(Vital::Spo2);
            let pr = snapshot
                .get(Vital::PulseRate)
                .or(snapshot.get(Vital::HeartRate));
            if spo2.is_none() && pr.is_none() {
                return out;
            }
            let number = |v: Option<f64>, decimals: u8| {
                v.and_then(|v| Float11073::with_decimals(v, decimals))
                    .filter(|f| f.to_sfloat().is_some())
                    .unwrap_or(Float11073::NaN)
            };
            let mut device = PlxDeviceStatus::default();
            let flag = |device: &mut PlxDeviceStatus, on: bool, bit: PlxDeviceStatus| {
                if on {
                    *device = *device | bit;
                }
            };
            flag(&mut device, off, PlxDeviceStatus::SENSOR_DISCONNECTED);
            flag(
                &mut device,
                q.contains(Quality::LOW_PERFUSION),
                PlxDeviceStatus::LOW_PERFUSION,
            );
            flag(
                &mut device,
                q.contains(Quality::ARTIFACT),
                PlxDeviceStatus::ERRATIC_SIGNAL,
            );
            let measurement = q
                .contains(Quality::SEARCHING)
                .then_some(PlxMeasurementStatus::MEASUREMENT_ONGOING);
            let m = PlxContinuous {
                normal: SpO2Pr {
                    spo2: if off {
                        Float11073::NaN
                    } else {
                        number(spo2, 0)
                    },
                    pulse_rate: if off { Float11073::NaN } else { number(pr, 0) },
                },
                fast: None,
                slow: None,
                measurement_status: measurement,
                device_status: (device != PlxDeviceStatus::default()).then_some(device),
                pulse_amplitude_index: snapshot
                    .get(Vital::PerfusionIndex)
                    .filter(|_| !off)
                    .map(|pi| number(Some(pi), 2)),
            };
            let mut bytes = Vec::new();
            if m.encode(&mut bytes).is_ok() {
                out.push((Characteristic::PlxContinuous, bytes));
            }
        }
    }
    out
}

struct GattEncoder {
    services: Vec<Service>,
}

/// An encoder writing what a BLE proxy relays for one wearable of
/// `service` at `address`: one JSON relay message per characteristic
/// value, each on its own line (the simulator publishes each line as its
/// own MQTT message).
pub fn proxy_encoder(address: Address, service: Service) -> Box<dyn Encoder> {
    Box::new(ProxyEncoder { address, service })
}

struct ProxyEncoder {
    address: Address,
    service: Service,
}

impl Encoder for ProxyEncoder {
    fn encode(&mut self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        for (c, value) in values(self.service, snapshot) {
            let relayed = RelayedValue {
                address: self.address,
                uuid: c.uuid(),
                value,
                time: None,
            };
            out.extend_from_slice(&relayed.to_json());
            out.push(b'\n');
        }
    }
}

impl Encoder for GattEncoder {
    fn encode(&mut self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        for &service in &self.services {
            for (c, value) in values(service, snapshot) {
                out.extend_from_slice(format!("{c} {}\n", hex::encode_upper(value)).as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::{self, every_vital};

    fn decode(options: &FormatOptions, line: &[u8]) -> Vec<Decoded> {
        let mut d = testing::message(decoder(options));
        testing::decode_message(d.as_mut(), line, 0, testing::RECEIVED)
    }

    fn only(characteristics: &[Characteristic]) -> FormatOptions {
        FormatOptions {
            characteristics: characteristics.to_vec(),
            ..FormatOptions::default()
        }
    }

    #[test]
    fn capture_lines_with_and_without_their_uuid() {
        let hr = only(&[Characteristic::HeartRateMeasurement]);
        let want = vec![testing::measurement(
            Vital::HeartRate,
            75.0,
            Quality::NONE,
            0,
        )];
        assert_eq!(decode(&hr, b"064B"), want);
        assert_eq!(decode(&hr, b"2A37 064B"), want);
        assert_eq!(decode(&hr, b"0x2a37\t064b"), want);
        assert_eq!(
            decode(&hr, b"00002a37-0000-1000-8000-00805f9b34fb 064B"),
            want
        );
    }

    #[test]
    fn proxy_messages_decode_through_the_same_path() {
        let hr = only(&[Characteristic::HeartRateMeasurement]);
        let want = vec![testing::measurement(
            Vital::HeartRate,
            75.0,
            Quality::NONE,
            0,
        )];
        let json = br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"064B"}"#;
        assert_eq!(decode(&hr, json), want);
        let binary = [
            0x01, 0xC4, 0x7C, 0x8D, 0x6A, 0x01, 0x02, 0x37, 0x2A, 0x06, 0x4B,
        ];
        assert_eq!(decode(&hr, &binary), want);
    }

    #[test]
    fn bad_lines_are_one_error_each() {
        let hr = only(&[Characteristic::HeartRateMeasurement]);
        let cases: [(&[u8], Reject, &str); 7] = [
            (
                b"2A35 0000",
                Reject::Unsupported,
                "not a characteristic this device's profile lists",
            ),
            (
                b"2A19 64",
                Reject::Unsupported,
                "not a characteristic the gateway decodes",
            ),
            (b"2A37 06", Reject::Malformed, "truncated"),
            (b"2A37 0x4B", Reject::Malformed, "hex"),
            (b"2A37 06 4B", Reject::Malformed, "expected `[UUID ]HEX`"),
            (b"\xff\xfe", Reject::Malformed, "not text"),
            (br#"{"address":1}"#, Reject::Malformed, "JSON"),
        ];
        for (line, reason, needle) in cases {
            let (got, detail) = testing::single_error(&decode(&hr, line));
            assert_eq!(got, reason, "{detail}");
            assert!(detail.contains(needle), "{detail} (wanted {needle})");
        }
        let (reason, detail) = testing::single_error(&decode(&FormatOptions::default(), b"064B"));
        assert_eq!(reason, Reject::Malformed);
        assert!(detail.contains("write `2A37 064B`"), "{detail}");
    }

    #[test]
    fn every_vital_encodes_and_decodes_back() {
        let snapshot = every_vital();
        let mut lines = Vec::new();
        encoder("strap").encode(&snapshot, &mut lines);
        let text = String::from_utf8(lines).unwrap();
        let mut d = testing::message(decoder(&FormatOptions::default()));
        let mut got = std::collections::BTreeMap::new();
        for line in text.lines() {
            for event in testing::decode_message(d.as_mut(), line.as_bytes(), 0, testing::RECEIVED)
            {
                match event {
                    Decoded::Measurement(m) => {
                        got.entry(m.vital).or_insert(m.value);
                    }
                    other => panic!("{line}: {other:?}"),
                }
            }
        }
        let expect = [
            (Vital::HeartRate, 72.0),
            // 812 ms is 831.49 units of 1/1024 s, sent as 831.
            (Vital::RrInterval, 831.0 * 1000.0 / 1024.0),
            (Vital::BodyTemperature, 37.23),
            (Vital::SystolicBp, 120.0),
            (Vital::DiastolicBp, 80.0),
            (Vital::MeanArterialPressure, 93.0),
            (Vital::PulseRate, 71.0),
            (Vital::Spo2, 97.0),
            (Vital::PerfusionIndex, 2.35),
        ];
        for (vital, value) in expect {
            let v = got[&vital];
            assert!((v - value).abs() < 1e-9, "{vital}: {v} != {value}");
        }
    }

    /// `testdata/<profile>.txt` decoded with the bundled profile's options
    /// (what `vitalgate decode --profile device-profiles/<profile>.toml`
    /// does) gives `testdata/<profile>.expected.jsonl`.
    fn assert_capture_matches(profile: &str) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../device-profiles")
            .join(format!("{profile}.toml"));
        let options = crate::profile::Profile::load(&path)
            .unwrap()
            .format_options();
        let mut d = testing::message(decoder(&options));
        let capture = testing::testdata(&format!("{profile}.txt"));
        let mut got = Vec::new();
        let mut offset = 0u64;
        for line in capture.split(|b| *b == b'\n') {
            if !line.is_empty() {
                for e in testing::decode_message(d.as_mut(), line, offset, testing::RECEIVED) {
                    got.push(testing::event_json(&e));
                }
            }
            offset += line.len() as u64 + 1;
        }
        let text =
            String::from_utf8(testing::testdata(&format!("{profile}.expected.jsonl"))).unwrap();
        let want: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if got != want {
            for g in &got {
                eprintln!("{g}");
            }
        }
        assert_eq!(got, want, "{profile}");
    }

    #[test]
    fn the_heart_rate_capture_matches_the_expected_events() {
        assert_capture_matches("ble-heart-rate");
    }

    #[test]
    fn the_pulse_oximeter_capture_matches_the_expected_events() {
        assert_capture_matches("ble-pulse-oximeter");
    }

    #[test]
    fn the_proxy_encoder_writes_one_relay_message_per_line() {
        let address: Address = "C4:7C:8D:6A:01:02".parse().unwrap();
        let mut out = Vec::new();
        proxy_encoder(address, Service::PulseOximeter).encode(&every_vital(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let r = RelayedValue::parse(lines[0].as_bytes()).unwrap();
        assert_eq!(r.address, address);
        assert_eq!(r.uuid, 0x2A5F);
    }

    #[test]
    fn a_sensor_off_snapshot_yields_no_clean_value() {
        let mut snapshot = every_vital();
        snapshot.quality = Quality::SENSOR_OFF;
        // A cuff has no sensor-contact notion: only the wearables.
        for service in [
            Service::HeartRate,
            Service::HealthThermometer,
            Service::PulseOximeter,
        ] {
            let sent = values(service, &snapshot);
            assert!(!sent.is_empty(), "{service:?}");
            for (c, value) in sent {
                let mut events = Vec::new();
                c.report(&value, None, 0, &mut |d| events.push(d));
                assert!(
                    events
                        .iter()
                        .all(|e| !matches!(e, Decoded::Measurement(m) if m.quality.is_empty())),
                    "{service:?}: {events:?}"
                );
            }
        }
    }
}
