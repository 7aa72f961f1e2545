//! Health Thermometer Service (0x1809): Temperature Measurement (0x2A1C),
//! Intermediate Temperature (0x2A1E) and Temperature Type (0x2A1D).
//!
//! # Sources
//!
//! * Bluetooth SIG, *Health Thermometer Service* 1.0 and its service
//!   definition `org.bluetooth.service.health_thermometer`: Temperature
//!   Measurement is mandatory and indicated, Intermediate Temperature
//!   optional and notified.
//! * Bluetooth SIG, GATT characteristic definitions
//!   `org.bluetooth.characteristic.temperature_measurement` and
//!   `org.bluetooth.characteristic.temperature_type` (the 2011 XML,
//!   mirrored in `oesmith/gatt-xml`), and their successors in the *GATT
//!   Specification Supplement* (as rendered in the `trouble-host` crate's
//!   documentation of `TEMPERATURE_MEASUREMENT` and
//!   `INTERMEDIATE_TEMPERATURE`, which says Intermediate Temperature "has
//!   the same format as the Temperature Measurement characteristic" and is
//!   "used to send intermediate temperature values to a device for display
//!   purposes while a measurement is in progress").
//!
//! # Format (both characteristics)
//!
//! | field | type | present when |
//! |---|---|---|
//! | Flags | u8 | always |
//! | Temperature (°C or °F) | FLOAT (32-bit, [`Float11073`]) | always |
//! | Time Stamp | Date Time, 7 bytes ([`DateTime`]) | flags bit 1 = 1 |
//! | Temperature Type | u8 | flags bit 2 = 1 |
//!
//! Flags: bit 0 the unit (0 Celsius, 1 Fahrenheit); bit 1 Time Stamp
//! present; bit 2 Temperature Type present; bits 3–7 reserved for future
//! use. Temperature Type (the same values as the 0x2A1D characteristic,
//! after ISO/IEEE 11073-10408): 1 armpit, 2 body (general), 3 ear (usually
//! ear lobe), 4 finger, 5 gastro-intestinal tract, 6 mouth, 7 rectum, 8
//! toe, 9 tympanum (ear drum); 0 and 10–255 are reserved.
//!
//! # Decoding choices
//!
//! * Reserved flag bits: [`GattError::Reserved`] (field `"flags"`, the
//!   whole flags byte). A reserved Temperature Type:
//!   [`GattError::Reserved`] (field `"temperature type"`). An impossible
//!   time stamp (month 13): [`GattError::OutOfRange`] from [`DateTime`].
//! * The temperature is kept as the [`Float11073`] that was sent (its
//!   exponent is its precision), in the unit that was sent, so the value
//!   re-encodes to the same bytes; which characteristic it came from is
//!   kept in [`TemperatureMeasurement::intermediate`].
//!
//! # What is reported, and why
//!
//! * A Temperature Measurement: [`Vital::BodyTemperature`] in `Cel`
//!   (°F converted as (F − 32) × 5/9), not rounded. Its device time is the
//!   Time Stamp when present and known (year, month and day not 0, a date
//!   that exists), else the caller's `device_time`.
//! * A special FLOAT value (NaN, NRes, ±INFINITY, reserved) is "no valid
//!   reading": a [`Status`] for body temperature, never a number, with
//!   [`Quality::SENSOR_OFF`]. On a thermometer these mean the measurement
//!   gave nothing usable — the probe not in place, a measurement aborted,
//!   or a temperature outside the thermometer's measuring range ("Lo" /
//!   "Hi") — and `SENSOR_OFF` is the flag that makes fault detection ask
//!   for the sensor to be checked. The reserved value (which a conforming
//!   device never sends) adds [`Quality::DEVICE_FAULT`].
//! * An Intermediate Temperature is a [`Status`] for body temperature with
//!   [`Quality::SEARCHING`] (plus the flags above for a special value), and
//!   no value. It is a reading in progress, sent "for display purposes":
//!   an oral or armpit probe climbs for a minute before it settles, so the
//!   intermediate values are systematically too low, and stored as
//!   readings they would look like hypothermia to every later stage. The
//!   final Temperature Measurement that follows is the reading.
//!
//! # Where sources disagree
//!
//! * The 2011 XML lists Temperature Type 0 as reserved separately from
//!   10–255; some libraries treat 0 as "unknown site". It is reserved here,
//!   as the definition says.
//! * The Supplement names the Intermediate Temperature's value field
//!   "Intermediate Temperature" rather than "Temperature Measurement
//!   Value"; the bytes are the same, so one decoder serves both.

use super::date_time::DateTime;
use super::float::Float11073;
use super::{Fields, GattError};
use crate::decode::{Decoded, Measurement, Status};
use crate::{Quality, Timestamp, Vital};

/// UUID of the Temperature Measurement characteristic.
pub const TEMPERATURE_MEASUREMENT_UUID: u16 = 0x2A1C;
/// UUID of the Temperature Type characteristic.
pub const TEMPERATURE_TYPE_UUID: u16 = 0x2A1D;
/// UUID of the Intermediate Temperature characteristic.
pub const INTERMEDIATE_TEMPERATURE_UUID: u16 = 0x2A1E;

const FAHRENHEIT: u8 = 1 << 0;
const TIME_STAMP_PRESENT: u8 = 1 << 1;
const TYPE_PRESENT: u8 = 1 << 2;
const RESERVED: u8 = 0b1111_1000;
/// NRes as a FLOAT.
const NRES: u32 = 0x0080_0000;

/// The unit the temperature was sent in (flags bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureUnit {
    /// Degrees Celsius.
    Celsius,
    /// Degrees Fahrenheit.
    Fahrenheit,
}

/// Where the temperature was measured (Temperature Type, 0x2A1D).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemperatureType {
    /// 1
    Armpit,
    /// 2: body (general).
    Body,
    /// 3: ear (usually ear lobe).
    Ear,
    /// 4
    Finger,
    /// 5
    GastrointestinalTract,
    /// 6
    Mouth,
    /// 7
    Rectum,
    /// 8
    Toe,
    /// 9: tympanum (ear drum).
    Tympanum,
}

impl TemperatureType {
    /// From its code; `None` for the reserved codes 0 and 10–255.
    pub fn from_code(code: u8) -> Option<TemperatureType> {
        Some(match code {
            1 => TemperatureType::Armpit,
            2 => TemperatureType::Body,
            3 => TemperatureType::Ear,
            4 => TemperatureType::Finger,
            5 => TemperatureType::GastrointestinalTract,
            6 => TemperatureType::Mouth,
            7 => TemperatureType::Rectum,
            8 => TemperatureType::Toe,
            9 => TemperatureType::Tympanum,
            _ => return None,
        })
    }

    /// Its code (1–9).
    pub fn code(self) -> u8 {
        match self {
            TemperatureType::Armpit => 1,
            TemperatureType::Body => 2,
            TemperatureType::Ear => 3,
            TemperatureType::Finger => 4,
            TemperatureType::GastrointestinalTract => 5,
            TemperatureType::Mouth => 6,
            TemperatureType::Rectum => 7,
            TemperatureType::Toe => 8,
            TemperatureType::Tympanum => 9,
        }
    }

    /// Read the field `field` from `fields`, refusing reserved codes.
    fn read(fields: &mut Fields<'_>, field: &'static str) -> Result<TemperatureType, GattError> {
        let code = fields.u8(field)?;
        TemperatureType::from_code(code).ok_or(GattError::Reserved {
            field,
            value: u32::from(code),
        })
    }

    /// Decode the Temperature Type characteristic (0x2A1D): one byte.
    pub fn decode(value: &[u8]) -> Result<TemperatureType, GattError> {
        let mut f = Fields::new(value);
        let t = TemperatureType::read(&mut f, "temperature type")?;
        f.finish()?;
        Ok(t)
    }
}

/// A decoded Temperature Measurement or Intermediate Temperature value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TemperatureMeasurement {
    /// True for an Intermediate Temperature (0x2A1E), false for a
    /// Temperature Measurement (0x2A1C). Not part of the bytes.
    pub intermediate: bool,
    /// The unit of `temperature`.
    pub unit: TemperatureUnit,
    /// The temperature as sent, in `unit`.
    pub temperature: Float11073,
    /// The device's time stamp, when present.
    pub time_stamp: Option<DateTime>,
    /// Where it was measured, when present.
    pub temperature_type: Option<TemperatureType>,
}

impl TemperatureMeasurement {
    /// Decode a Temperature Measurement (0x2A1C) value.
    pub fn decode(value: &[u8]) -> Result<TemperatureMeasurement, GattError> {
        TemperatureMeasurement::decode_as(value, false)
    }

    /// Decode an Intermediate Temperature (0x2A1E) value.
    pub fn decode_intermediate(value: &[u8]) -> Result<TemperatureMeasurement, GattError> {
        TemperatureMeasurement::decode_as(value, true)
    }

    fn decode_as(value: &[u8], intermediate: bool) -> Result<TemperatureMeasurement, GattError> {
        let mut f = Fields::new(value);
        let flags = f.u8("flags")?;
        if flags & RESERVED != 0 {
            return Err(GattError::Reserved {
                field: "flags",
                value: u32::from(flags),
            });
        }
        let unit = if flags & FAHRENHEIT != 0 {
            TemperatureUnit::Fahrenheit
        } else {
            TemperatureUnit::Celsius
        };
        let temperature = Float11073::from_float(f.u32("temperature")?);
        let time_stamp = if flags & TIME_STAMP_PRESENT != 0 {
            Some(DateTime::read(&mut f, "time stamp")?)
        } else {
            None
        };
        let temperature_type = if flags & TYPE_PRESENT != 0 {
            Some(TemperatureType::read(&mut f, "temperature type")?)
        } else {
            None
        };
        f.finish()?;
        Ok(TemperatureMeasurement {
            intermediate,
            unit,
            temperature,
            time_stamp,
            temperature_type,
        })
    }

    /// The flags byte this value is sent with.
    pub fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.unit == TemperatureUnit::Fahrenheit {
            flags |= FAHRENHEIT;
        }
        if self.time_stamp.is_some() {
            flags |= TIME_STAMP_PRESENT;
        }
        if self.temperature_type.is_some() {
            flags |= TYPE_PRESENT;
        }
        flags
    }

    /// Encode as the characteristic value (the same bytes for both
    /// characteristics).
    ///
    /// A [`Float11073::Value`] that a FLOAT cannot hold (a mantissa beyond
    /// 24 bits, or one that would read back as a special value) is written
    /// as NRes, "not at this resolution", which is what it is; every
    /// decoded value fits.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        out.push(self.flags());
        let raw = self.temperature.to_float().unwrap_or(NRES);
        out.extend_from_slice(&raw.to_le_bytes());
        if let Some(t) = &self.time_stamp {
            t.write(&mut out);
        }
        if let Some(t) = self.temperature_type {
            out.push(t.code());
        }
        out
    }

    /// The temperature in °C, `None` for a special value.
    pub fn celsius(&self) -> Option<f64> {
        let v = self.temperature.value()?;
        Some(match self.unit {
            TemperatureUnit::Celsius => v,
            TemperatureUnit::Fahrenheit => (v - 32.0) * 5.0 / 9.0,
        })
    }

    /// The quality a special value is reported with, `None` for a number.
    fn special_quality(&self) -> Option<Quality> {
        match self.temperature {
            Float11073::Value { .. } => None,
            Float11073::Reserved => Some(Quality::SENSOR_OFF | Quality::DEVICE_FAULT),
            Float11073::NaN
            | Float11073::NRes
            | Float11073::PositiveInfinity
            | Float11073::NegativeInfinity => Some(Quality::SENSOR_OFF),
        }
    }

    /// Report it (see the module documentation): a final measurement with
    /// a number is a [`Vital::BodyTemperature`] measurement, anything else
    /// a [`Status`]. `device_time` is used when the value carries no known
    /// time stamp; `offset` is that of the message.
    pub fn report(
        &self,
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        let device_time = self
            .time_stamp
            .and_then(|t| t.to_timestamp())
            .or(device_time);
        let special = self.special_quality();
        match (self.intermediate, special, self.celsius()) {
            (false, None, Some(value)) => out(Decoded::Measurement(Measurement {
                vital: Vital::BodyTemperature,
                value,
                device_time,
                quality: Quality::NONE,
                offset,
            })),
            _ => {
                let mut quality = special.unwrap_or(Quality::NONE);
                quality.set(Quality::SEARCHING, self.intermediate);
                out(Decoded::Status(Status {
                    vital: Some(Vital::BodyTemperature),
                    quality,
                    device_time,
                    offset,
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::Rng;

    fn v(mantissa: i32, exponent: i8) -> Float11073 {
        Float11073::Value { mantissa, exponent }
    }

    fn tm(
        unit: TemperatureUnit,
        temperature: Float11073,
        time_stamp: Option<DateTime>,
        temperature_type: Option<TemperatureType>,
    ) -> TemperatureMeasurement {
        TemperatureMeasurement {
            intermediate: false,
            unit,
            temperature,
            time_stamp,
            temperature_type,
        }
    }

    fn reported(m: &TemperatureMeasurement, time: Option<Timestamp>) -> Vec<Decoded> {
        let mut events = Vec::new();
        m.report(time, 3, &mut |e| events.push(e));
        events
    }

    fn status(quality: Quality, device_time: Option<Timestamp>) -> Decoded {
        Decoded::Status(Status {
            vital: Some(Vital::BodyTemperature),
            quality,
            device_time,
            offset: 3,
        })
    }

    /// 2025-11-21 07:00:05 as a Date Time, and as a timestamp.
    const MORNING: DateTime = DateTime {
        year: 2025,
        month: 11,
        day: 21,
        hours: 7,
        minutes: 0,
        seconds: 5,
    };
    const MORNING_MS: Timestamp = Timestamp(1_763_708_405_000);

    use TemperatureUnit::{Celsius, Fahrenheit};

    /// Written byte by byte from the field table: flags, FLOAT (mantissa
    /// 24 bits little-endian, then the exponent byte), Date Time (year
    /// u16, month, day, hours, minutes, seconds), Temperature Type.
    #[test]
    fn hand_written_values_decode_to_their_fields_and_encode_back_to_the_same_bytes() {
        let cases: &[(&[u8], TemperatureMeasurement)] = &[
            // 36.4 °C = 364 × 10^-1: mantissa 0x00016C, exponent 0xFF.
            (
                &[0x00, 0x6C, 0x01, 0x00, 0xFF],
                tm(Celsius, v(364, -1), None, None),
            ),
            // 98.6 °F = 986 × 10^-1: mantissa 0x0003DA.
            (
                &[0x01, 0xDA, 0x03, 0x00, 0xFF],
                tm(Fahrenheit, v(986, -1), None, None),
            ),
            // 37.25 °C = 3725 × 10^-2 (0x000E8D, exponent 0xFE), time stamp.
            (
                &[0x02, 0x8D, 0x0E, 0x00, 0xFE, 0xE9, 0x07, 11, 21, 7, 0, 5],
                tm(Celsius, v(3725, -2), Some(MORNING), None),
            ),
            // 37 °C (exponent 0), type 6 (mouth).
            (
                &[0x04, 0x25, 0x00, 0x00, 0x00, 0x06],
                tm(Celsius, v(37, 0), None, Some(TemperatureType::Mouth)),
            ),
            // 100.4 °F, time stamp and type 9 (tympanum).
            (
                &[
                    0x07, 0xEC, 0x03, 0x00, 0xFF, 0xE9, 0x07, 11, 21, 7, 0, 5, 0x09,
                ],
                tm(
                    Fahrenheit,
                    v(1004, -1),
                    Some(MORNING),
                    Some(TemperatureType::Tympanum),
                ),
            ),
            // Type 1 (armpit) and an unknown date (year, month, day 0).
            (
                &[0x06, 0x6C, 0x01, 0x00, 0xFF, 0, 0, 0, 0, 12, 30, 0, 0x01],
                tm(
                    Celsius,
                    v(364, -1),
                    Some(DateTime {
                        year: 0,
                        month: 0,
                        day: 0,
                        hours: 12,
                        minutes: 30,
                        seconds: 0,
                    }),
                    Some(TemperatureType::Armpit),
                ),
            ),
            // A negative mantissa: -1 × 10^0 = 0xFFFFFF.
            (
                &[0x00, 0xFF, 0xFF, 0xFF, 0x00],
                tm(Celsius, v(-1, 0), None, None),
            ),
            // NaN (0x007FFFFF) is carried as such.
            (
                &[0x00, 0xFF, 0xFF, 0x7F, 0x00],
                tm(Celsius, Float11073::NaN, None, None),
            ),
        ];
        for (bytes, want) in cases {
            let got = TemperatureMeasurement::decode(bytes).unwrap();
            assert_eq!(&got, want, "{bytes:02x?}");
            assert_eq!(got.encode(), *bytes, "{want:?}");
            let inter = TemperatureMeasurement::decode_intermediate(bytes).unwrap();
            assert_eq!(
                inter,
                TemperatureMeasurement {
                    intermediate: true,
                    ..*want
                }
            );
            assert_eq!(inter.encode(), *bytes);
        }
    }

    #[test]
    fn every_temperature_type_code_round_trips_and_the_rest_are_reserved() {
        for code in 0..=255u8 {
            match TemperatureType::from_code(code) {
                Some(t) => {
                    assert!((1..=9).contains(&code));
                    assert_eq!(t.code(), code);
                    assert_eq!(TemperatureType::decode(&[code]), Ok(t));
                }
                None => {
                    assert!(code == 0 || code >= 10);
                    let reserved = GattError::Reserved {
                        field: "temperature type",
                        value: u32::from(code),
                    };
                    assert_eq!(TemperatureType::decode(&[code]), Err(reserved.clone()));
                    let bytes = [0x04, 0x6C, 0x01, 0x00, 0xFF, code];
                    assert_eq!(TemperatureMeasurement::decode(&bytes), Err(reserved));
                }
            }
        }
        assert_eq!(
            TemperatureType::decode(&[1, 0]),
            Err(GattError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            TemperatureType::decode(&[]),
            Err(GattError::Truncated {
                field: "temperature type",
                need: 1,
                have: 0
            })
        );
    }

    #[test]
    fn every_truncation_point_names_the_field_that_ran_out() {
        let full = [
            0x06, 0x6C, 0x01, 0x00, 0xFF, 0xE9, 0x07, 11, 21, 7, 0, 5, 0x02,
        ];
        assert!(TemperatureMeasurement::decode(&full).is_ok());
        for len in 0..full.len() {
            let (field, need) = match len {
                0 => ("flags", 1),
                1..=4 => ("temperature", 5),
                5..=11 => ("time stamp", 12),
                _ => ("temperature type", 13),
            };
            let want = Err(GattError::Truncated {
                field,
                need,
                have: len,
            });
            assert_eq!(TemperatureMeasurement::decode(&full[..len]), want, "{len}");
            assert_eq!(
                TemperatureMeasurement::decode_intermediate(&full[..len]),
                want
            );
        }
    }

    #[test]
    fn reserved_flag_bits_and_trailing_bytes_are_refused() {
        for bit in 3..8 {
            let flags = 1u8 << bit;
            assert_eq!(
                TemperatureMeasurement::decode(&[flags, 0x6C, 0x01, 0x00, 0xFF]),
                Err(GattError::Reserved {
                    field: "flags",
                    value: u32::from(flags)
                })
            );
        }
        assert_eq!(
            TemperatureMeasurement::decode(&[0x00, 0x6C, 0x01, 0x00, 0xFF, 0x06]),
            Err(GattError::TrailingBytes { extra: 1 })
        );
        // An impossible time stamp is the Date Time's error.
        assert!(matches!(
            TemperatureMeasurement::decode(&[
                0x02, 0x6C, 0x01, 0x00, 0xFF, 0xE9, 0x07, 13, 1, 0, 0, 0
            ]),
            Err(GattError::OutOfRange {
                field: "time stamp",
                ..
            })
        ));
    }

    #[test]
    fn a_final_measurement_is_a_body_temperature_in_celsius_at_its_time_stamp() {
        let mut events = reported(&tm(Celsius, v(364, -1), Some(MORNING), None), None);
        let Some(Decoded::Measurement(m)) = events.pop() else {
            panic!("{events:?}");
        };
        assert!(events.is_empty());
        assert_eq!(m.vital, Vital::BodyTemperature);
        assert!((m.value - 36.4).abs() < 1e-9, "{}", m.value);
        assert_eq!(m.device_time, Some(MORNING_MS));
        assert_eq!((m.quality, m.offset), (Quality::NONE, 3));

        // °F: (98.6 − 32) × 5/9 = 37 °C; no time stamp: the caller's time.
        let caller = Some(Timestamp(42));
        let events = reported(&tm(Fahrenheit, v(986, -1), None, None), caller);
        let [Decoded::Measurement(m)] = &events[..] else {
            panic!("{events:?}");
        };
        assert!((m.value - 37.0).abs() < 1e-9, "{}", m.value);
        assert_eq!(m.device_time, caller);

        // A time stamp with an unknown date: the caller's time.
        let unknown = DateTime { year: 0, ..MORNING };
        let events = reported(&tm(Celsius, v(37, 0), Some(unknown), None), caller);
        let [Decoded::Measurement(m)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!((m.value, m.device_time), (37.0, caller));
    }

    #[test]
    fn special_float_values_give_a_status_never_a_reading() {
        for (raw, quality) in [
            (0x007F_FFFFu32, Quality::SENSOR_OFF),
            (0x0080_0000, Quality::SENSOR_OFF),
            (0x007F_FFFE, Quality::SENSOR_OFF),
            (0x0080_0002, Quality::SENSOR_OFF),
            (0x0080_0001, Quality::SENSOR_OFF | Quality::DEVICE_FAULT),
        ] {
            for flags in [0x00u8, 0x01] {
                let mut bytes = vec![flags | 0x02];
                bytes.extend_from_slice(&raw.to_le_bytes());
                MORNING.write(&mut bytes);
                let m = TemperatureMeasurement::decode(&bytes).unwrap();
                assert_eq!(m.celsius(), None);
                assert_eq!(m.encode(), bytes);
                assert_eq!(
                    reported(&m, None),
                    vec![status(quality, Some(MORNING_MS))],
                    "{raw:#010x}"
                );
            }
        }
    }

    #[test]
    fn an_intermediate_temperature_is_a_searching_status_without_a_value() {
        let bytes = [0x00, 0x5E, 0x01, 0x00, 0xFF]; // 35.0 °C, still rising
        let m = TemperatureMeasurement::decode_intermediate(&bytes).unwrap();
        assert!(m.intermediate);
        assert_eq!(m.celsius(), Some(35.0));
        assert_eq!(reported(&m, None), vec![status(Quality::SEARCHING, None)]);
        let nan = [0x00, 0xFF, 0xFF, 0x7F, 0x00];
        let m = TemperatureMeasurement::decode_intermediate(&nan).unwrap();
        assert_eq!(
            reported(&m, Some(Timestamp(9))),
            vec![status(
                Quality::SEARCHING | Quality::SENSOR_OFF,
                Some(Timestamp(9))
            )]
        );
    }

    #[test]
    fn a_value_a_float_cannot_hold_is_encoded_as_nres() {
        let m = tm(Celsius, v(1 << 23, -1), None, None);
        assert_eq!(m.encode(), [0x00, 0x00, 0x00, 0x80, 0x00]);
        let m = tm(Celsius, v(0x7F_FFFF, 0), None, None);
        assert_eq!(
            TemperatureMeasurement::decode(&m.encode())
                .unwrap()
                .temperature,
            Float11073::NRes
        );
    }

    /// Random fields in the layout random flags call for.
    fn shaped(rng: &mut Rng) -> Vec<u8> {
        let flags = rng.next_u64() as u8 & !RESERVED;
        let mut bytes = vec![flags];
        bytes.extend_from_slice(&(rng.next_u64() as u32).to_le_bytes());
        if flags & TIME_STAMP_PRESENT != 0 {
            let year = match rng.below(3) {
                0 => 0,
                1 => 1581 + rng.below(8420) as u16,
                _ => rng.next_u64() as u16,
            };
            bytes.extend_from_slice(&year.to_le_bytes());
            for limit in [13, 32, 24, 60, 60] {
                bytes.push(rng.below(limit + 1) as u8);
            }
        }
        if flags & TYPE_PRESENT != 0 {
            bytes.push(rng.below(11) as u8);
        }
        // Now and then a byte too many or too few.
        match rng.below(10) {
            0 => bytes.push(rng.next_u64() as u8),
            1 => {
                bytes.pop();
            }
            _ => {}
        }
        bytes
    }

    #[test]
    fn random_bytes_never_panic_and_whatever_decodes_re_encodes_and_reports_finite_values() {
        let mut rng = Rng::new(0x2A1C_2A1E);
        let mut decoded = 0;
        for i in 0..100_000 {
            // Pure noise, and (every other time) noise shaped like a value:
            // flags without reserved bits and the length they call for,
            // with fields near their limits, so the decoding paths past
            // the length checks are exercised as well.
            let bytes = if i % 2 == 0 {
                rng.bytes(41)
            } else {
                shaped(&mut rng)
            };
            let _ = TemperatureType::decode(&bytes);
            for intermediate in [false, true] {
                let result = if intermediate {
                    TemperatureMeasurement::decode_intermediate(&bytes)
                } else {
                    TemperatureMeasurement::decode(&bytes)
                };
                let Ok(m) = result else {
                    continue;
                };
                decoded += 1;
                assert_eq!(m.intermediate, intermediate);
                assert_eq!(m.encode(), bytes);
                m.report(None, 0, &mut |e| match e {
                    Decoded::Measurement(m) => assert!(m.value.is_finite(), "{m:?}"),
                    Decoded::Status(_) => {}
                    Decoded::Error(e) => panic!("{e:?}"),
                });
            }
        }
        assert!(decoded > 10_000, "only {decoded} decoded");
    }
}
