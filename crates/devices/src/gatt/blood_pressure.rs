//! The Blood Pressure Service's two measurement characteristics: Blood
//! Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36).
//!
//! # Sources
//!
//! * Bluetooth SIG, *Blood Pressure Service* 1.0 (2011) and 1.1.1 (2022,
//!   `bluetooth.com/specifications/specs/blood-pressure-service-1-1-1`),
//!   and the characteristic definitions they point to: the SIG's
//!   characteristic XML `org.bluetooth.characteristic.blood_pressure_measurement`
//!   and `...intermediate_cuff_pressure` (as kept in the `oesmith/gatt-xml`
//!   mirror), and the *GATT Specification Supplement* (GSS) structure
//!   tables for 0x2A35 / 0x2A36 (as reproduced in the `trouble-host` crate
//!   documentation, which is generated from the SIG's GSS files).
//! * The conventional millimetre of mercury: 13.5951 g/cm³ × 9.80665 m/s² ×
//!   1 mm = 133.322 387 415 Pa exactly (NIST SP 811, appendix B, lists the
//!   "millimeter of mercury, conventional" as 1.333 224 E+02 Pa; the exact
//!   product is the one unit references quote), so 1 kPa = 1000 / 133.322 387 415
//!   = 7.500 615 758… mmHg ([`MMHG_PER_KPA`]). This is not the torr
//!   (101 325 / 760 Pa); the two differ by 1.4 × 10⁻⁷.
//!
//! # Format
//!
//! | field                       | type     | present when        |
//! |-----------------------------|----------|---------------------|
//! | flags                       | u8       | always              |
//! | systolic                    | SFLOAT   | always              |
//! | diastolic                   | SFLOAT   | always              |
//! | mean arterial pressure      | SFLOAT   | always              |
//! | time stamp                  | DateTime | flags bit 1         |
//! | pulse rate (beats/min)      | SFLOAT   | flags bit 2         |
//! | user id (0xFF unknown user) | u8       | flags bit 3         |
//! | measurement status          | u16      | flags bit 4         |
//!
//! Flags bit 0 is the unit of the three pressures: 0 mmHg, 1 kPa. Bits 5–7
//! are reserved for future use and refused ([`GattError::Reserved`]).
//!
//! Measurement status: bit 0 body movement during measurement, bit 1 cuff
//! too loose, bit 2 irregular pulse detected, bits 3–4 pulse rate range (0
//! within range, 1 exceeds the upper limit, 2 below the lower limit, 3
//! reserved), bit 5 improper measurement position; bits 6–15 reserved. A
//! reserved status bit or range value is refused as well: a value this
//! decoder cannot fully interpret is not half-trusted.
//!
//! **Version followed.** The Blood Pressure Measurement layout above is the
//! one of BPS 1.0 and, unchanged, of BPS 1.1/1.1.1 and the GSS: BPS 1.1's
//! additions (a UTC time stamp, user facing time, stored records) went into
//! *new* characteristics — Enhanced Blood Pressure Measurement (0x2B34),
//! Enhanced Intermediate Cuff Pressure (0x2B35), Blood Pressure Record
//! (0x2B36) — which this module does not decode. No source consulted gives
//! bits 5–7 of the 0x2A35 flags a meaning, so they stay reserved. (The
//! GSS's own flags table for 0x2A35 could not be read while this was
//! written; only its field list could.)
//!
//! Intermediate Cuff Pressure has the same format "due to a different
//! context": the systolic field is the current cuff pressure, and the
//! diastolic and MAP fields are unused (devices send NaN there). The
//! decoder keeps which characteristic a value came from
//! ([`BpCharacteristic`]) and keeps the unused fields as sent, so that
//! either re-encodes byte for byte.
//!
//! # What [`BloodPressureMeasurement::report`] emits, and why
//!
//! * Systolic, diastolic and MAP as [`Vital::SystolicBp`],
//!   [`Vital::DiastolicBp`], [`Vital::MeanArterialPressure`] in `mm[Hg]`
//!   (kPa × [`MMHG_PER_KPA`]); the pulse rate, when present, as
//!   [`Vital::PulseRate`] (an oscillometric cuff counts pulses, not ECG
//!   beats).
//! * An SFLOAT special value (NaN, NRes, ±INFINITY, reserved) is a
//!   [`Status`] for that vital, never a number. Its quality is the
//!   message's own quality; many cuffs send NaN for a MAP they do not
//!   compute, which is no fault.
//! * `device_time` is the time stamp when it is present and names a real
//!   instant (year, month and day known); otherwise the caller's.
//! * Measurement status → quality on every value of the message:
//!
//!   | status bit                     | quality                          |
//!   |--------------------------------|----------------------------------|
//!   | body movement during measurement | [`Quality::ARTIFACT`]          |
//!   | cuff too loose                 | [`Quality::ARTIFACT`]            |
//!   | improper measurement position  | [`Quality::ARTIFACT`]            |
//!   | irregular pulse detected       | none: a finding about the patient (an arrhythmia screen), not a measurement fault |
//!   | pulse rate above / below range | [`Quality::DEVICE_ALARM`], on the pulse rate only (the device's own limits) |
//!
//!   Each of the ARTIFACT conditions is one oscillometric devices are
//!   known to misread under (movement adds oscillations, a loose cuff or a
//!   cuff below/above heart level biases the pressures), so the values are
//!   kept but flagged, which is what ARTIFACT means.
//! * Intermediate Cuff Pressure: one [`Status`] (`vital: None`,
//!   [`Quality::SEARCHING`] plus the status flags) and nothing else. A cuff
//!   inflating is a measurement in progress, not a blood pressure; its
//!   pressure must never reach a trend or an alarm as a systolic value.

use super::date_time::DateTime;
use super::float::Float11073;
use super::{Fields, GattError};
use crate::{Decoded, Measurement, Quality, Status, Timestamp, Vital};

/// UUID of the Blood Pressure Measurement characteristic.
pub const BLOOD_PRESSURE_MEASUREMENT_UUID: u16 = 0x2A35;
/// UUID of the Intermediate Cuff Pressure characteristic.
pub const INTERMEDIATE_CUFF_PRESSURE_UUID: u16 = 0x2A36;

/// mmHg in one kPa: 1000 Pa / 133.322 387 415 Pa (the conventional
/// millimetre of mercury, 13.5951 g/cm³ × 9.80665 m/s² × 1 mm).
pub const MMHG_PER_KPA: f64 = 1000.0 / 133.322_387_415;

const FLAG_KPA: u8 = 1 << 0;
const FLAG_TIME_STAMP: u8 = 1 << 1;
const FLAG_PULSE_RATE: u8 = 1 << 2;
const FLAG_USER_ID: u8 = 1 << 3;
const FLAG_STATUS: u8 = 1 << 4;
const FLAGS_RESERVED: u8 = 0b1110_0000;

const STATUS_BODY_MOVEMENT: u16 = 1 << 0;
const STATUS_CUFF_TOO_LOOSE: u16 = 1 << 1;
const STATUS_IRREGULAR_PULSE: u16 = 1 << 2;
const STATUS_RANGE_SHIFT: u16 = 3;
const STATUS_RANGE_MASK: u16 = 0b11 << STATUS_RANGE_SHIFT;
const STATUS_IMPROPER_POSITION: u16 = 1 << 5;
const STATUS_RESERVED: u16 = 0xFFC0;

/// Which of the two characteristics a value came from (they share one
/// format).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BpCharacteristic {
    /// Blood Pressure Measurement (0x2A35): a finished measurement.
    Measurement,
    /// Intermediate Cuff Pressure (0x2A36): the cuff pressure while a
    /// measurement is in progress.
    IntermediateCuffPressure,
}

impl BpCharacteristic {
    /// The characteristic's 16-bit UUID.
    pub const fn uuid(self) -> u16 {
        match self {
            BpCharacteristic::Measurement => BLOOD_PRESSURE_MEASUREMENT_UUID,
            BpCharacteristic::IntermediateCuffPressure => INTERMEDIATE_CUFF_PRESSURE_UUID,
        }
    }

    /// The characteristic with this UUID, if it is one of the two.
    pub const fn from_uuid(uuid: u16) -> Option<BpCharacteristic> {
        match uuid {
            BLOOD_PRESSURE_MEASUREMENT_UUID => Some(BpCharacteristic::Measurement),
            INTERMEDIATE_CUFF_PRESSURE_UUID => Some(BpCharacteristic::IntermediateCuffPressure),
            _ => None,
        }
    }
}

/// The unit of the three pressure fields (flags bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PressureUnit {
    /// Millimetres of mercury.
    MmHg,
    /// Kilopascals.
    KPa,
}

/// Measurement status bits 3–4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PulseRateRange {
    /// 0: the pulse rate is within the range.
    #[default]
    WithinRange,
    /// 1: the pulse rate exceeds the upper limit.
    ExceedsUpperLimit,
    /// 2: the pulse rate is less than the lower limit.
    BelowLowerLimit,
}

/// The Measurement Status field. It can hold no reserved bit: decoding
/// refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BpMeasurementStatus {
    /// Bit 0: body movement during measurement.
    pub body_movement: bool,
    /// Bit 1: cuff too loose.
    pub cuff_too_loose: bool,
    /// Bit 2: irregular pulse detected.
    pub irregular_pulse: bool,
    /// Bits 3–4: pulse rate range detection.
    pub pulse_rate_range: PulseRateRange,
    /// Bit 5: improper measurement position.
    pub improper_position: bool,
}

impl BpMeasurementStatus {
    /// From the field's 16 bits; reserved bits (6–15) and the reserved
    /// pulse rate range value 3 are refused.
    pub fn from_bits(bits: u16) -> Result<BpMeasurementStatus, GattError> {
        if bits & STATUS_RESERVED != 0 {
            return Err(GattError::Reserved {
                field: "measurement status",
                value: u32::from(bits),
            });
        }
        let pulse_rate_range = match (bits & STATUS_RANGE_MASK) >> STATUS_RANGE_SHIFT {
            0 => PulseRateRange::WithinRange,
            1 => PulseRateRange::ExceedsUpperLimit,
            2 => PulseRateRange::BelowLowerLimit,
            other => {
                return Err(GattError::Reserved {
                    field: "measurement status: pulse rate range",
                    value: u32::from(other),
                });
            }
        };
        Ok(BpMeasurementStatus {
            body_movement: bits & STATUS_BODY_MOVEMENT != 0,
            cuff_too_loose: bits & STATUS_CUFF_TOO_LOOSE != 0,
            irregular_pulse: bits & STATUS_IRREGULAR_PULSE != 0,
            pulse_rate_range,
            improper_position: bits & STATUS_IMPROPER_POSITION != 0,
        })
    }

    /// The field's 16 bits.
    pub fn bits(self) -> u16 {
        let range: u16 = match self.pulse_rate_range {
            PulseRateRange::WithinRange => 0,
            PulseRateRange::ExceedsUpperLimit => 1,
            PulseRateRange::BelowLowerLimit => 2,
        };
        let mut bits = range << STATUS_RANGE_SHIFT;
        for (on, bit) in [
            (self.body_movement, STATUS_BODY_MOVEMENT),
            (self.cuff_too_loose, STATUS_CUFF_TOO_LOOSE),
            (self.irregular_pulse, STATUS_IRREGULAR_PULSE),
            (self.improper_position, STATUS_IMPROPER_POSITION),
        ] {
            if on {
                bits |= bit;
            }
        }
        bits
    }

    /// The quality this status puts on every value of the message (see the
    /// module documentation).
    pub fn quality(self) -> Quality {
        let mut q = Quality::NONE;
        q.set(
            Quality::ARTIFACT,
            self.body_movement || self.cuff_too_loose || self.improper_position,
        );
        q
    }
}

/// A Blood Pressure Measurement or Intermediate Cuff Pressure value, with
/// everything needed to write it back byte for byte. The flags byte is not
/// stored: every bit of it is one of the fields below (the unit, or an
/// `Option` being `Some`), and reserved bits are refused, so
/// [`BloodPressureMeasurement::flags`] gives it back exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BloodPressureMeasurement {
    /// Which characteristic it came from.
    pub characteristic: BpCharacteristic,
    /// Unit of the three pressures.
    pub unit: PressureUnit,
    /// Systolic pressure; the current cuff pressure for an intermediate
    /// cuff pressure.
    pub systolic: Float11073,
    /// Diastolic pressure (unused, normally NaN, for an intermediate cuff
    /// pressure).
    pub diastolic: Float11073,
    /// Mean arterial pressure (unused, normally NaN, for an intermediate
    /// cuff pressure).
    pub mean_arterial_pressure: Float11073,
    /// The device clock when the measurement was taken.
    pub time_stamp: Option<DateTime>,
    /// Pulse rate, beats per minute.
    pub pulse_rate: Option<Float11073>,
    /// User id; 0xFF is "unknown user".
    pub user_id: Option<u8>,
    /// Measurement status.
    pub status: Option<BpMeasurementStatus>,
}

/// The User ID value meaning "unknown user".
pub const UNKNOWN_USER: u8 = 0xFF;

impl BloodPressureMeasurement {
    /// Decode a value of `characteristic`.
    pub fn decode(
        characteristic: BpCharacteristic,
        bytes: &[u8],
    ) -> Result<BloodPressureMeasurement, GattError> {
        let mut f = Fields::new(bytes);
        let flags = f.u8("flags")?;
        if flags & FLAGS_RESERVED != 0 {
            return Err(GattError::Reserved {
                field: "flags",
                value: u32::from(flags),
            });
        }
        let unit = if flags & FLAG_KPA != 0 {
            PressureUnit::KPa
        } else {
            PressureUnit::MmHg
        };
        let systolic = Float11073::from_sfloat(f.u16("systolic")?);
        let diastolic = Float11073::from_sfloat(f.u16("diastolic")?);
        let mean_arterial_pressure = Float11073::from_sfloat(f.u16("mean arterial pressure")?);
        let time_stamp = if flags & FLAG_TIME_STAMP != 0 {
            Some(DateTime::read(&mut f, "time stamp")?)
        } else {
            None
        };
        let pulse_rate = if flags & FLAG_PULSE_RATE != 0 {
            Some(Float11073::from_sfloat(f.u16("pulse rate")?))
        } else {
            None
        };
        let user_id = if flags & FLAG_USER_ID != 0 {
            Some(f.u8("user id")?)
        } else {
            None
        };
        let status = if flags & FLAG_STATUS != 0 {
            Some(BpMeasurementStatus::from_bits(
                f.u16("measurement status")?,
            )?)
        } else {
            None
        };
        f.finish()?;
        Ok(BloodPressureMeasurement {
            characteristic,
            unit,
            systolic,
            diastolic,
            mean_arterial_pressure,
            time_stamp,
            pulse_rate,
            user_id,
            status,
        })
    }

    /// The flags byte this value is sent with.
    pub fn flags(&self) -> u8 {
        let mut flags = 0;
        for (on, bit) in [
            (self.unit == PressureUnit::KPa, FLAG_KPA),
            (self.time_stamp.is_some(), FLAG_TIME_STAMP),
            (self.pulse_rate.is_some(), FLAG_PULSE_RATE),
            (self.user_id.is_some(), FLAG_USER_ID),
            (self.status.is_some(), FLAG_STATUS),
        ] {
            if on {
                flags |= bit;
            }
        }
        flags
    }

    /// Append the characteristic value. Refuses (and appends nothing)
    /// what [`BloodPressureMeasurement::decode`] would refuse: a number that
    /// does not fit an SFLOAT, a time stamp with an impossible field. So
    /// whatever encodes decodes back to the same value.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), GattError> {
        let start = out.len();
        let result = self.write(out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write(&self, out: &mut Vec<u8>) -> Result<(), GattError> {
        out.push(self.flags());
        put_sfloat(out, "systolic", self.systolic)?;
        put_sfloat(out, "diastolic", self.diastolic)?;
        put_sfloat(out, "mean arterial pressure", self.mean_arterial_pressure)?;
        if let Some(t) = self.time_stamp {
            put_date_time(out, "time stamp", t)?;
        }
        if let Some(pr) = self.pulse_rate {
            put_sfloat(out, "pulse rate", pr)?;
        }
        if let Some(id) = self.user_id {
            out.push(id);
        }
        if let Some(status) = self.status {
            out.extend_from_slice(&status.bits().to_le_bytes());
        }
        Ok(())
    }

    /// Length of the encoded value in bytes.
    pub fn encoded_len(&self) -> usize {
        7 + self.time_stamp.map_or(0, |_| super::date_time::LEN)
            + self.pulse_rate.map_or(0, |_| 2)
            + self.user_id.map_or(0, |_| 1)
            + self.status.map_or(0, |_| 2)
    }

    /// The time the values were measured: the time stamp when present and
    /// known, otherwise `device_time`.
    pub fn measured_at(&self, device_time: Option<Timestamp>) -> Option<Timestamp> {
        self.time_stamp
            .and_then(|t| t.to_timestamp())
            .or(device_time)
    }

    /// Report the values (see the module documentation for what is
    /// reported and why). `device_time` is used when the value carries no
    /// usable time stamp; `offset` is the message's.
    pub fn report(
        &self,
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        let device_time = self.measured_at(device_time);
        let quality = self.status.map_or(Quality::NONE, |s| s.quality());
        if self.characteristic == BpCharacteristic::IntermediateCuffPressure {
            out(Decoded::Status(Status {
                vital: None,
                quality: quality | Quality::SEARCHING,
                device_time,
                offset,
            }));
            return;
        }
        let to_mmhg = match self.unit {
            PressureUnit::MmHg => 1.0,
            PressureUnit::KPa => MMHG_PER_KPA,
        };
        let mut emit = |vital: Vital, value: Float11073, scale: f64, quality: Quality| {
            out(match value.value() {
                Some(v) => Decoded::Measurement(Measurement {
                    vital,
                    value: v * scale,
                    device_time,
                    quality,
                    offset,
                }),
                None => Decoded::Status(Status {
                    vital: Some(vital),
                    quality,
                    device_time,
                    offset,
                }),
            })
        };
        emit(Vital::SystolicBp, self.systolic, to_mmhg, quality);
        emit(Vital::DiastolicBp, self.diastolic, to_mmhg, quality);
        emit(
            Vital::MeanArterialPressure,
            self.mean_arterial_pressure,
            to_mmhg,
            quality,
        );
        if let Some(pr) = self.pulse_rate {
            let mut q = quality;
            let out_of_range = self
                .status
                .is_some_and(|s| s.pulse_rate_range != PulseRateRange::WithinRange);
            q.set(Quality::DEVICE_ALARM, out_of_range);
            emit(Vital::PulseRate, pr, 1.0, q);
        }
    }
}

fn put_sfloat(out: &mut Vec<u8>, field: &'static str, value: Float11073) -> Result<(), GattError> {
    let raw = value.to_sfloat().ok_or_else(|| GattError::OutOfRange {
        field,
        detail: format!("{value:?} does not fit an SFLOAT"),
    })?;
    out.extend_from_slice(&raw.to_le_bytes());
    Ok(())
}

fn put_date_time(out: &mut Vec<u8>, field: &'static str, t: DateTime) -> Result<(), GattError> {
    let start = out.len();
    t.write(out);
    // Read it back: the encoder refuses what the decoder would.
    DateTime::read(&mut Fields::new(&out[start..]), field)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::Rng;

    fn v(mantissa: i32, exponent: i8) -> Float11073 {
        Float11073::Value { mantissa, exponent }
    }

    fn decode(bytes: &[u8]) -> Result<BloodPressureMeasurement, GattError> {
        BloodPressureMeasurement::decode(BpCharacteristic::Measurement, bytes)
    }

    fn round_trip(c: BpCharacteristic, bytes: &[u8], want: BloodPressureMeasurement) {
        let got = BloodPressureMeasurement::decode(c, bytes).unwrap();
        assert_eq!(got, want);
        let mut out = Vec::new();
        got.encode(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(got.encoded_len(), bytes.len());
    }

    fn events(m: &BloodPressureMeasurement, device_time: Option<Timestamp>) -> Vec<Decoded> {
        let mut events = Vec::new();
        m.report(device_time, 7, &mut |e| events.push(e));
        events
    }

    fn bare(unit: PressureUnit) -> BloodPressureMeasurement {
        BloodPressureMeasurement {
            characteristic: BpCharacteristic::Measurement,
            unit,
            systolic: v(120, 0),
            diastolic: v(80, 0),
            mean_arterial_pressure: v(93, 0),
            time_stamp: None,
            pulse_rate: None,
            user_id: None,
            status: None,
        }
    }

    /// 2025-11-21 07:00:05 as a Date Time: year 2025 = 0x07E9.
    const TIME: [u8; 7] = [0xE9, 0x07, 11, 21, 7, 0, 5];
    const TIME_MS: i64 = 1_763_708_405_000;

    #[test]
    fn a_bare_mmhg_measurement_decodes_and_re_encodes_byte_for_byte() {
        // flags 0; 120 = 0x0078, 80 = 0x0050, 93 = 0x005D (exponent 0).
        let bytes = [0x00, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        round_trip(
            BpCharacteristic::Measurement,
            &bytes,
            bare(PressureUnit::MmHg),
        );
    }

    #[test]
    fn a_kpa_measurement_with_every_optional_field_decodes_and_re_encodes() {
        // flags 0x1F: kPa, time stamp, pulse rate, user id, status.
        // 16.0 kPa = 160 × 10^-1 = 0xF0A0; 10.7 = 107 × 10^-1 = 0xF06B;
        // 12.4 = 124 × 10^-1 = 0xF07C; pulse 72 = 0x0048; user 3;
        // status: body movement (bit 0) + pulse above range (bits 3-4 = 01)
        // + improper position (bit 5) = 0b10_1001 = 0x0029.
        let mut bytes = vec![0x1F, 0xA0, 0xF0, 0x6B, 0xF0, 0x7C, 0xF0];
        bytes.extend_from_slice(&TIME);
        bytes.extend_from_slice(&[0x48, 0x00, 0x03, 0x29, 0x00]);
        let want = BloodPressureMeasurement {
            characteristic: BpCharacteristic::Measurement,
            unit: PressureUnit::KPa,
            systolic: v(160, -1),
            diastolic: v(107, -1),
            mean_arterial_pressure: v(124, -1),
            time_stamp: Some(DateTime {
                year: 2025,
                month: 11,
                day: 21,
                hours: 7,
                minutes: 0,
                seconds: 5,
            }),
            pulse_rate: Some(v(72, 0)),
            user_id: Some(3),
            status: Some(BpMeasurementStatus {
                body_movement: true,
                pulse_rate_range: PulseRateRange::ExceedsUpperLimit,
                improper_position: true,
                ..BpMeasurementStatus::default()
            }),
        };
        round_trip(BpCharacteristic::Measurement, &bytes, want);
    }

    #[test]
    fn each_optional_field_alone_decodes_and_re_encodes() {
        let head = [0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        let with = |flags: u8, tail: &[u8]| {
            let mut b = vec![flags];
            b.extend_from_slice(&head);
            b.extend_from_slice(tail);
            b
        };
        let mut m = bare(PressureUnit::MmHg);
        m.time_stamp = Some(DateTime::read(&mut Fields::new(&TIME), "t").unwrap());
        round_trip(BpCharacteristic::Measurement, &with(0x02, &TIME), m);

        let mut m = bare(PressureUnit::MmHg);
        m.pulse_rate = Some(v(64, 0));
        round_trip(BpCharacteristic::Measurement, &with(0x04, &[0x40, 0x00]), m);

        let mut m = bare(PressureUnit::MmHg);
        m.user_id = Some(UNKNOWN_USER);
        round_trip(BpCharacteristic::Measurement, &with(0x08, &[0xFF]), m);

        // Cuff too loose (bit 1), irregular pulse (bit 2), pulse below
        // range (bits 3-4 = 10): 0b1_0110 = 0x16.
        let mut m = bare(PressureUnit::MmHg);
        m.status = Some(BpMeasurementStatus {
            cuff_too_loose: true,
            irregular_pulse: true,
            pulse_rate_range: PulseRateRange::BelowLowerLimit,
            ..BpMeasurementStatus::default()
        });
        round_trip(BpCharacteristic::Measurement, &with(0x10, &[0x16, 0x00]), m);
    }

    #[test]
    fn an_intermediate_cuff_pressure_keeps_its_characteristic_and_its_nan_fields() {
        // Cuff at 152 mmHg = 0x0098; diastolic and MAP NaN (0x07FF).
        let bytes = [0x00, 0x98, 0x00, 0xFF, 0x07, 0xFF, 0x07];
        let want = BloodPressureMeasurement {
            characteristic: BpCharacteristic::IntermediateCuffPressure,
            systolic: v(152, 0),
            diastolic: Float11073::NaN,
            mean_arterial_pressure: Float11073::NaN,
            ..bare(PressureUnit::MmHg)
        };
        round_trip(BpCharacteristic::IntermediateCuffPressure, &bytes, want);
        assert_eq!(
            BpCharacteristic::from_uuid(0x2A36),
            Some(BpCharacteristic::IntermediateCuffPressure)
        );
        assert_eq!(BpCharacteristic::Measurement.uuid(), 0x2A35);
    }

    #[test]
    fn every_truncation_point_names_the_field_that_was_cut_off() {
        let mut full = vec![0x1E, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        full.extend_from_slice(&TIME);
        full.extend_from_slice(&[0x48, 0x00, 0x03, 0x00, 0x00]);
        assert!(decode(&full).is_ok());
        let field_at = |len: usize| match len {
            0 => ("flags", 1),
            1 | 2 => ("systolic", 3),
            3 | 4 => ("diastolic", 5),
            5 | 6 => ("mean arterial pressure", 7),
            7..=13 => ("time stamp", 14),
            14 | 15 => ("pulse rate", 16),
            16 => ("user id", 17),
            _ => ("measurement status", 19),
        };
        for len in 0..full.len() {
            let (field, need) = field_at(len);
            assert_eq!(
                decode(&full[..len]),
                Err(GattError::Truncated {
                    field,
                    need,
                    have: len
                }),
                "{len} bytes"
            );
        }
    }

    #[test]
    fn reserved_flag_bits_reserved_status_bits_and_trailing_bytes_are_refused() {
        let body = [0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        for flags in [0x20u8, 0x40, 0x80, 0xFF] {
            let mut b = vec![flags];
            b.extend_from_slice(&body);
            assert_eq!(
                decode(&b),
                Err(GattError::Reserved {
                    field: "flags",
                    value: u32::from(flags)
                })
            );
        }
        for bit in 6..16 {
            let status = 1u16 << bit;
            let mut b = vec![0x10];
            b.extend_from_slice(&body);
            b.extend_from_slice(&status.to_le_bytes());
            assert_eq!(
                decode(&b),
                Err(GattError::Reserved {
                    field: "measurement status",
                    value: u32::from(status)
                }),
                "bit {bit}"
            );
        }
        // Pulse rate range 3 (bits 3-4 = 11) is reserved.
        let mut b = vec![0x10];
        b.extend_from_slice(&body);
        b.extend_from_slice(&[0x18, 0x00]);
        assert_eq!(
            decode(&b),
            Err(GattError::Reserved {
                field: "measurement status: pulse rate range",
                value: 3
            })
        );
        let mut b = vec![0x00];
        b.extend_from_slice(&body);
        b.push(0x00);
        assert_eq!(decode(&b), Err(GattError::TrailingBytes { extra: 1 }));
    }

    #[test]
    fn the_encoder_refuses_what_the_decoder_would() {
        let mut m = bare(PressureUnit::MmHg);
        m.systolic = v(5000, 0);
        let mut out = vec![0xAA];
        assert!(matches!(
            m.encode(&mut out),
            Err(GattError::OutOfRange {
                field: "systolic",
                ..
            })
        ));
        assert_eq!(out, [0xAA], "nothing appended");
        let mut m = bare(PressureUnit::MmHg);
        m.time_stamp = Some(DateTime {
            year: 2025,
            month: 13,
            day: 1,
            hours: 0,
            minutes: 0,
            seconds: 0,
        });
        assert!(m.encode(&mut out).is_err());
        assert_eq!(out, [0xAA]);
    }

    #[test]
    fn mmhg_values_are_reported_with_the_time_stamp_and_status_quality() {
        let mut bytes = vec![0x16, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00];
        bytes.extend_from_slice(&TIME);
        // Pulse 72; status: cuff too loose (artifact) + pulse below range.
        bytes.extend_from_slice(&[0x48, 0x00, 0x12, 0x00]);
        let m = decode(&bytes).unwrap();
        let at = Some(Timestamp(TIME_MS));
        let q = Quality::ARTIFACT;
        let want = [
            (Vital::SystolicBp, 120.0, q),
            (Vital::DiastolicBp, 80.0, q),
            (Vital::MeanArterialPressure, 93.0, q),
            (Vital::PulseRate, 72.0, q | Quality::DEVICE_ALARM),
        ]
        .map(|(vital, value, quality)| {
            Decoded::Measurement(Measurement {
                vital,
                value,
                device_time: at,
                quality,
                offset: 7,
            })
        });
        assert_eq!(events(&m, Some(Timestamp(1))), want);
    }

    #[test]
    fn kpa_values_are_converted_to_mmhg_with_the_conventional_millimetre_of_mercury() {
        let mut m = bare(PressureUnit::KPa);
        m.systolic = v(160, -1);
        m.diastolic = v(1, 1); // 10 kPa
        m.mean_arterial_pressure = v(1333, -2); // 13.33 kPa
        let got: Vec<(Vital, f64)> = events(&m, None)
            .into_iter()
            .map(|e| match e {
                Decoded::Measurement(m) => (m.vital, m.value),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got[0].0, Vital::SystolicBp);
        assert!((got[0].1 - 120.009_852).abs() < 1e-5, "{}", got[0].1);
        assert!((got[1].1 - 75.006_158).abs() < 1e-5, "{}", got[1].1);
        assert!((got[2].1 - 99.983_208).abs() < 1e-5, "{}", got[2].1);
        assert!((MMHG_PER_KPA - 7.500_615_758).abs() < 1e-9);
    }

    #[test]
    fn special_values_are_statuses_for_their_vital_and_an_unknown_time_stamp_falls_back() {
        let mut m = bare(PressureUnit::MmHg);
        m.mean_arterial_pressure = Float11073::NaN;
        m.pulse_rate = Some(Float11073::PositiveInfinity);
        // Year 0: not known, so the caller's time is used.
        m.time_stamp = Some(DateTime {
            year: 0,
            month: 11,
            day: 21,
            hours: 7,
            minutes: 0,
            seconds: 5,
        });
        let caller = Some(Timestamp(42));
        let got = events(&m, caller);
        assert_eq!(got.len(), 4);
        assert!(
            matches!(got[0], Decoded::Measurement(Measurement { vital: Vital::SystolicBp, device_time, .. }) if device_time == caller)
        );
        assert_eq!(
            got[2],
            Decoded::Status(Status {
                vital: Some(Vital::MeanArterialPressure),
                quality: Quality::NONE,
                device_time: caller,
                offset: 7
            })
        );
        assert!(matches!(
            got[3],
            Decoded::Status(Status {
                vital: Some(Vital::PulseRate),
                ..
            })
        ));
    }

    #[test]
    fn an_intermediate_cuff_pressure_is_only_a_searching_status() {
        let bytes = [0x10, 0x98, 0x00, 0xFF, 0x07, 0xFF, 0x07, 0x01, 0x00];
        let m =
            BloodPressureMeasurement::decode(BpCharacteristic::IntermediateCuffPressure, &bytes)
                .unwrap();
        assert_eq!(
            events(&m, Some(Timestamp(5))),
            [Decoded::Status(Status {
                vital: None,
                quality: Quality::SEARCHING | Quality::ARTIFACT,
                device_time: Some(Timestamp(5)),
                offset: 7
            })]
        );
    }

    #[test]
    fn random_bytes_never_panic_and_whatever_decodes_re_encodes_and_reports_finite_values() {
        let mut rng = Rng::new(0x2A35_2A36);
        let mut decoded = 0;
        for i in 0..20_000 {
            let bytes = if i % 2 == 0 {
                rng.bytes(41)
            } else {
                // Valid flags and a plausible length, to reach past the
                // flags check often.
                let flags = (rng.next_u64() as u8) & 0x1F;
                let len = 7
                    + if flags & 0x02 != 0 { 7 } else { 0 }
                    + if flags & 0x04 != 0 { 2 } else { 0 }
                    + if flags & 0x08 != 0 { 1 } else { 0 }
                    + if flags & 0x10 != 0 { 2 } else { 0 };
                let len = (len + rng.below(3)).saturating_sub(1);
                let mut b: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if let Some(first) = b.first_mut() {
                    *first = flags;
                }
                if flags & 0x02 != 0 && b.len() >= 14 {
                    b[7..14].copy_from_slice(&TIME);
                }
                b
            };
            for c in [
                BpCharacteristic::Measurement,
                BpCharacteristic::IntermediateCuffPressure,
            ] {
                let Ok(m) = BloodPressureMeasurement::decode(c, &bytes) else {
                    continue;
                };
                decoded += 1;
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                assert_eq!(out, bytes);
                m.report(None, 0, &mut |e| {
                    if let Decoded::Measurement(m) = e {
                        assert!(m.value.is_finite(), "{m:?}");
                    }
                });
            }
        }
        assert!(decoded > 1000, "only {decoded} decoded");
    }
}
