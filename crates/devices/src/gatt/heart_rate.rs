//! Heart Rate Measurement (characteristic 0x2A37, Heart Rate Service
//! 0x180D): what chest straps and other electrical heart rate sensors
//! notify, once a second or so.
//!
//! # Sources
//!
//! * Bluetooth SIG, *Heart Rate Service* 1.0 (HRS_SPEC V10r00, 2011-07-12),
//!   which defines the characteristic's behaviour.
//! * Bluetooth SIG, GATT characteristic definition
//!   `org.bluetooth.characteristic.heart_rate_measurement` (the 2011 XML,
//!   as shown by the SIG's former Characteristic Viewer on
//!   `developer.bluetooth.org` and mirrored in `oesmith/gatt-xml`), and its
//!   successor in the *GATT Specification Supplement* (as rendered, field
//!   by field, in the `trouble-host` crate's documentation of
//!   `HEART_RATE_MEASUREMENT`).
//!
//! # Format
//!
//! | field | type | present when |
//! |---|---|---|
//! | Flags | u8 | always |
//! | Heart Rate Measurement Value | u8 (bpm) | flags bit 0 = 0 |
//! | Heart Rate Measurement Value | u16 (bpm) | flags bit 0 = 1 |
//! | Energy Expended | u16 (kJ) | flags bit 3 = 1 |
//! | RR-Interval | u16 × n (1/1024 s) | flags bit 4 = 1 |
//!
//! Flags: bit 0 the value format; bits 1–2 the Sensor Contact Status
//! (0 and 1: the feature is not supported in the current connection; 2:
//! supported, contact not detected; 3: supported and detected); bit 3
//! Energy Expended present; bit 4 "one or more RR-Interval values are
//! present"; bits 5–7 reserved for future use. The RR-Interval field takes
//! the rest of the value: as many u16 as the length leaves after the other
//! fields, oldest first.
//!
//! # Decoding choices
//!
//! * Reserved flag bits set: [`GattError::Reserved`] (field `"flags"`,
//!   the whole flags byte as the value). A sender that sets them speaks a
//!   version of the format this decoder does not know.
//! * The RR-Interval flag says *one or more* values follow, so the flag
//!   with no bytes left, like the flag with an odd number of bytes left,
//!   is [`GattError::Truncated`] on `"RR-interval"`: the interval that was
//!   cut off is missing.
//! * Everything needed to re-encode the exact bytes is kept: the value
//!   format (a 16-bit value below 256 stays 16-bit) and both "not
//!   supported" contact codes ([`SensorContact`]).
//!
//! # What is reported, and why
//!
//! * The heart rate as [`Vital::HeartRate`] (`/min`), except when the
//!   sensor reports contact supported but not detected, or the rate is 0:
//!   then a [`Status`] with [`Quality::SENSOR_OFF`] for the heart rate,
//!   never a number. A strap off the chest keeps notifying (often its last
//!   rate, or 0), and that rate is not the patient's.
//! * Each RR interval as [`Vital::RrInterval`] in ms (`rr × 1000 / 1024`,
//!   exact in `f64`, not rounded), in the order sent (oldest first). The
//!   value carries no time of its own, so every interval gets the caller's
//!   `device_time`. When the sensor reports contact not detected the
//!   intervals are still reported (they were measured, and dropping them
//!   would corrupt heart rate variability downstream) but flagged
//!   [`Quality::SENSOR_OFF`], which marks them not valid for clinical use.
//! * Energy Expended is not a vital sign: it is kept in the struct only.
//!
//! # Where sources disagree
//!
//! * Energy Expended: the flags enumeration says "Units: kilo Joules", the
//!   field's own unit line says `org.bluetooth.unit.energy.joule` (both in
//!   the 2011 XML and in the Supplement rendering). This module reads kJ:
//!   the flags text is the more specific statement, and a u16 of joules
//!   (at most 65.5 kJ) would overflow within minutes of exercise.
//! * Sensor Contact Status: some libraries describe bits 1 and 2 as two
//!   booleans ("detected", "supported"). That reads the same as the
//!   definition's four values only if "detected" is ignored while
//!   "supported" is clear; value 1 is "not supported", as the definition
//!   says, never "detected".

use super::{Fields, GattError};
use crate::decode::{Decoded, Measurement, Status};
use crate::{Quality, Timestamp, Vital};

/// The characteristic's 16-bit UUID.
pub const UUID: u16 = 0x2A37;

const FORMAT_U16: u8 = 1 << 0;
const CONTACT_SHIFT: u8 = 1;
const CONTACT_MASK: u8 = 0b11 << CONTACT_SHIFT;
const ENERGY_PRESENT: u8 = 1 << 3;
const RR_PRESENT: u8 = 1 << 4;
const RESERVED: u8 = 0b1110_0000;

/// The heart rate value as sent, in beats per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartRateValue {
    /// Flags bit 0 = 0: a u8.
    U8(u8),
    /// Flags bit 0 = 1: a u16.
    U16(u16),
}

impl HeartRateValue {
    /// Beats per minute.
    pub fn bpm(self) -> u16 {
        match self {
            HeartRateValue::U8(v) => u16::from(v),
            HeartRateValue::U16(v) => v,
        }
    }
}

/// Sensor Contact Status (flags bits 1–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SensorContact {
    /// 0: the feature is not supported in the current connection.
    NotSupported,
    /// 1: also "not supported in the current connection"; kept apart from
    /// 0 only so that the value re-encodes to the same bytes.
    NotSupportedAlt,
    /// 2: supported, but contact is not detected.
    NotDetected,
    /// 3: supported and contact is detected.
    Detected,
}

impl SensorContact {
    /// From the two status bits (0–3; higher bits are ignored).
    pub fn from_bits(bits: u8) -> SensorContact {
        match bits & 0b11 {
            0 => SensorContact::NotSupported,
            1 => SensorContact::NotSupportedAlt,
            2 => SensorContact::NotDetected,
            _ => SensorContact::Detected,
        }
    }

    /// The two status bits (0–3).
    pub fn bits(self) -> u8 {
        match self {
            SensorContact::NotSupported => 0,
            SensorContact::NotSupportedAlt => 1,
            SensorContact::NotDetected => 2,
            SensorContact::Detected => 3,
        }
    }

    /// Whether the sensor says it is off the skin (supported, not detected).
    pub fn is_off(self) -> bool {
        self == SensorContact::NotDetected
    }
}

/// A decoded Heart Rate Measurement value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartRateMeasurement {
    /// The heart rate, in the format it was sent.
    pub heart_rate: HeartRateValue,
    /// Sensor Contact Status.
    pub contact: SensorContact,
    /// Energy Expended since the last reset, kJ, when present.
    pub energy_expended: Option<u16>,
    /// RR intervals in 1/1024 s, oldest first; empty when the RR-Interval
    /// flag is clear (the flag is set exactly when this is not empty).
    pub rr_intervals: Vec<u16>,
}

impl HeartRateMeasurement {
    /// Decode a characteristic value.
    pub fn decode(value: &[u8]) -> Result<HeartRateMeasurement, GattError> {
        let v = Parsed::read(value)?;
        Ok(HeartRateMeasurement {
            heart_rate: v.heart_rate,
            contact: v.contact,
            energy_expended: v.energy_expended,
            rr_intervals: v.rr_intervals().collect(),
        })
    }

    /// Decode a characteristic value and report it, as [`decode`] then
    /// [`report`] would (the same events, the same error, nothing reported
    /// when it is refused), without collecting the RR intervals into a
    /// `Vec`: the per-value path of [`Characteristic::report`].
    ///
    /// [`decode`]: HeartRateMeasurement::decode
    /// [`report`]: HeartRateMeasurement::report
    /// [`Characteristic::report`]: super::Characteristic::report
    pub fn decode_and_report(
        value: &[u8],
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) -> Result<(), GattError> {
        let v = Parsed::read(value)?;
        report_fields(
            v.contact,
            v.heart_rate,
            v.rr_intervals(),
            device_time,
            offset,
            out,
        );
        Ok(())
    }

    /// The flags byte this value is sent with.
    pub fn flags(&self) -> u8 {
        let mut flags = self.contact.bits() << CONTACT_SHIFT;
        if matches!(self.heart_rate, HeartRateValue::U16(_)) {
            flags |= FORMAT_U16;
        }
        if self.energy_expended.is_some() {
            flags |= ENERGY_PRESENT;
        }
        if !self.rr_intervals.is_empty() {
            flags |= RR_PRESENT;
        }
        flags
    }

    /// Encode as the characteristic value.
    ///
    /// A value that does not fit one ATT notification (the default
    /// ATT_MTU of 23 leaves 20 bytes) is still written whole: splitting
    /// the RR intervals over notifications is the sender's business.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + 2 * self.rr_intervals.len());
        out.push(self.flags());
        match self.heart_rate {
            HeartRateValue::U8(v) => out.push(v),
            HeartRateValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
        if let Some(e) = self.energy_expended {
            out.extend_from_slice(&e.to_le_bytes());
        }
        for rr in &self.rr_intervals {
            out.extend_from_slice(&rr.to_le_bytes());
        }
        out
    }

    /// The RR intervals in milliseconds (`rr × 1000 / 1024`), oldest first.
    pub fn rr_intervals_ms(&self) -> impl Iterator<Item = f64> + '_ {
        self.rr_intervals.iter().map(|&rr| rr_ms(rr))
    }

    /// Report the heart rate and the RR intervals (see the module
    /// documentation): `device_time` is the caller's time for the value
    /// (the characteristic carries none), `offset` that of the message.
    pub fn report(
        &self,
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        report_fields(
            self.contact,
            self.heart_rate,
            self.rr_intervals.iter().copied(),
            device_time,
            offset,
            out,
        );
    }
}

/// A value's fields as read, the RR intervals left in place.
struct Parsed<'a> {
    heart_rate: HeartRateValue,
    contact: SensorContact,
    energy_expended: Option<u16>,
    /// The RR-Interval field: an even number of bytes, none when the flag
    /// is clear.
    rr_bytes: &'a [u8],
}

impl<'a> Parsed<'a> {
    /// Check and read every field of `value`.
    fn read(value: &'a [u8]) -> Result<Parsed<'a>, GattError> {
        let mut f = Fields::new(value);
        let flags = f.u8("flags")?;
        if flags & RESERVED != 0 {
            return Err(GattError::Reserved {
                field: "flags",
                value: u32::from(flags),
            });
        }
        let heart_rate = if flags & FORMAT_U16 != 0 {
            HeartRateValue::U16(f.u16("heart rate")?)
        } else {
            HeartRateValue::U8(f.u8("heart rate")?)
        };
        let contact = SensorContact::from_bits((flags & CONTACT_MASK) >> CONTACT_SHIFT);
        let energy_expended = if flags & ENERGY_PRESENT != 0 {
            Some(f.u16("energy expended")?)
        } else {
            None
        };
        let mut rr_bytes: &[u8] = &[];
        if flags & RR_PRESENT != 0 {
            // One or more intervals, then as many as the value holds: the
            // rest of it, whose odd last byte would be an interval cut off.
            let start = value.len() - f.remaining();
            f.take("RR-interval", 2)?;
            f.take("RR-interval", f.remaining() & !1)?;
            if f.remaining() > 0 {
                f.u16("RR-interval")?;
            }
            rr_bytes = &value[start..];
        }
        f.finish()?;
        Ok(Parsed {
            heart_rate,
            contact,
            energy_expended,
            rr_bytes,
        })
    }

    /// The RR intervals in 1/1024 s, oldest first.
    fn rr_intervals(&self) -> impl Iterator<Item = u16> + 'a {
        self.rr_bytes
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
}

/// Report a value's heart rate and RR intervals (in 1/1024 s): see the
/// module documentation.
fn report_fields(
    contact: SensorContact,
    heart_rate: HeartRateValue,
    rr_intervals: impl Iterator<Item = u16>,
    device_time: Option<Timestamp>,
    offset: u64,
    out: &mut dyn FnMut(Decoded),
) {
    let off = contact.is_off();
    let bpm = heart_rate.bpm();
    if off || bpm == 0 {
        out(Decoded::Status(Status {
            vital: Some(Vital::HeartRate),
            quality: Quality::SENSOR_OFF,
            device_time,
            offset,
        }));
    } else {
        out(Decoded::Measurement(Measurement {
            vital: Vital::HeartRate,
            value: f64::from(bpm),
            device_time,
            quality: Quality::NONE,
            offset,
        }));
    }
    let quality = if off {
        Quality::SENSOR_OFF
    } else {
        Quality::NONE
    };
    for rr in rr_intervals {
        out(Decoded::Measurement(Measurement {
            vital: Vital::RrInterval,
            value: rr_ms(rr),
            device_time,
            quality,
            offset,
        }));
    }
}

/// An RR interval in milliseconds (`rr × 1000 / 1024`).
fn rr_ms(rr: u16) -> f64 {
    f64::from(rr) * 1000.0 / 1024.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::testing::Rng;

    fn hrm(
        heart_rate: HeartRateValue,
        contact: SensorContact,
        energy_expended: Option<u16>,
        rr_intervals: &[u16],
    ) -> HeartRateMeasurement {
        HeartRateMeasurement {
            heart_rate,
            contact,
            energy_expended,
            rr_intervals: rr_intervals.to_vec(),
        }
    }

    fn reported(m: &HeartRateMeasurement, time: Option<Timestamp>) -> Vec<Decoded> {
        let mut events = Vec::new();
        m.report(time, 7, &mut |e| events.push(e));
        events
    }

    fn measurement(vital: Vital, value: f64, quality: Quality) -> Decoded {
        Decoded::Measurement(Measurement {
            vital,
            value,
            device_time: None,
            quality,
            offset: 7,
        })
    }

    fn sensor_off() -> Decoded {
        Decoded::Status(Status {
            vital: Some(Vital::HeartRate),
            quality: Quality::SENSOR_OFF,
            device_time: None,
            offset: 7,
        })
    }

    use HeartRateValue::{U8, U16};
    use SensorContact::{Detected, NotDetected, NotSupported, NotSupportedAlt};

    /// Written byte by byte from the field table: flags, value (u8 or u16
    /// little-endian), energy expended (u16), RR intervals (u16 each).
    #[test]
    fn hand_written_values_decode_to_their_fields_and_encode_back_to_the_same_bytes() {
        let cases: &[(&[u8], HeartRateMeasurement)] = &[
            // 8-bit rate 72, no contact feature, nothing else.
            (&[0x00, 72], hrm(U8(72), NotSupported, None, &[])),
            // Contact status 1: also "not supported", kept for the bytes.
            (&[0x02, 72], hrm(U8(72), NotSupportedAlt, None, &[])),
            // Contact supported, not detected.
            (&[0x04, 0], hrm(U8(0), NotDetected, None, &[])),
            // Contact supported and detected.
            (&[0x06, 180], hrm(U8(180), Detected, None, &[])),
            // 16-bit rate 0x012C = 300.
            (&[0x01, 0x2C, 0x01], hrm(U16(300), NotSupported, None, &[])),
            // 16-bit rate that would fit 8 bits stays 16-bit.
            (&[0x07, 60, 0x00], hrm(U16(60), Detected, None, &[])),
            // Energy expended 0x0203 = 515 kJ.
            (
                &[0x08, 90, 0x03, 0x02],
                hrm(U8(90), NotSupported, Some(515), &[]),
            ),
            // One RR interval: 0x0400 = 1024/1024 s.
            (
                &[0x16, 60, 0x00, 0x04],
                hrm(U8(60), Detected, None, &[1024]),
            ),
            // Many RR intervals, oldest first, after the energy.
            (
                &[
                    0x1F, 0x4B, 0x00, 0xFF, 0xFF, 0x20, 0x03, 0x40, 0x03, 0x00, 0x03,
                ],
                hrm(U16(75), Detected, Some(0xFFFF), &[0x0320, 0x0340, 0x0300]),
            ),
            // Every field at its largest.
            (
                &[0x19, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                hrm(U16(0xFFFF), NotSupported, Some(0xFFFF), &[0xFFFF]),
            ),
        ];
        for (bytes, want) in cases {
            let got = HeartRateMeasurement::decode(bytes).unwrap();
            assert_eq!(&got, want, "{bytes:02x?}");
            assert_eq!(got.encode(), *bytes, "{want:?}");
        }
    }

    #[test]
    fn every_truncation_point_names_the_field_that_ran_out() {
        for (bytes, field, need) in [
            (&[][..], "flags", 1),
            (&[0x00][..], "heart rate", 2),
            (&[0x01, 0x48][..], "heart rate", 3),
            (&[0x08, 72][..], "energy expended", 4),
            (&[0x08, 72, 0x01][..], "energy expended", 4),
            (&[0x09, 72, 0x00, 0x01][..], "energy expended", 5),
            (&[0x10, 72][..], "RR-interval", 4),
            (&[0x18, 72, 0x01, 0x00][..], "RR-interval", 6),
        ] {
            assert_eq!(
                HeartRateMeasurement::decode(bytes),
                Err(GattError::Truncated {
                    field,
                    need,
                    have: bytes.len()
                }),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn an_rr_flag_with_a_dangling_byte_is_truncated() {
        for bytes in [
            &[0x10, 72, 0x00][..],
            &[0x10, 72, 0x00, 0x04, 0x00][..],
            &[0x18, 72, 0x01, 0x00, 0x00, 0x04, 0x00, 0x04, 0x00][..],
        ] {
            assert_eq!(
                HeartRateMeasurement::decode(bytes),
                Err(GattError::Truncated {
                    field: "RR-interval",
                    need: bytes.len() + 1,
                    have: bytes.len()
                }),
                "{bytes:02x?}"
            );
        }
    }

    #[test]
    fn reserved_flag_bits_are_refused_before_any_other_field() {
        for bit in 5..8 {
            let flags = 1u8 << bit;
            assert_eq!(
                HeartRateMeasurement::decode(&[flags, 72]),
                Err(GattError::Reserved {
                    field: "flags",
                    value: u32::from(flags)
                })
            );
            // Even when the rest is missing.
            assert!(matches!(
                HeartRateMeasurement::decode(&[flags | 0x01]),
                Err(GattError::Reserved { .. })
            ));
        }
    }

    #[test]
    fn bytes_after_the_last_announced_field_are_trailing() {
        assert_eq!(
            HeartRateMeasurement::decode(&[0x00, 72, 0x00]),
            Err(GattError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            HeartRateMeasurement::decode(&[0x08, 72, 0x00, 0x00, 0x01, 0x02]),
            Err(GattError::TrailingBytes { extra: 2 })
        );
    }

    #[test]
    fn a_rate_is_a_heart_rate_and_rr_intervals_are_milliseconds_in_order() {
        // 1/1024 s units: 1024 → 1000 ms, 800 → 781.25 ms, 1 → 0.9765625 ms.
        let m = hrm(U8(72), Detected, Some(12), &[1024, 800, 1]);
        assert_eq!(
            reported(&m, None),
            vec![
                measurement(Vital::HeartRate, 72.0, Quality::NONE),
                measurement(Vital::RrInterval, 1000.0, Quality::NONE),
                measurement(Vital::RrInterval, 781.25, Quality::NONE),
                measurement(Vital::RrInterval, 0.9765625, Quality::NONE),
            ]
        );
        // The caller's time goes on every event; energy is never a vital.
        let t = Timestamp(1_763_708_405_000);
        let events = reported(&hrm(U16(300), NotSupported, Some(9), &[600]), Some(t));
        assert_eq!(events.len(), 2);
        for e in events {
            match e {
                Decoded::Measurement(m) => assert_eq!(m.device_time, Some(t)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn contact_not_detected_or_a_zero_rate_is_a_sensor_off_status_not_a_rate() {
        assert_eq!(
            reported(&hrm(U8(72), NotDetected, None, &[]), None),
            vec![sensor_off()]
        );
        assert_eq!(
            reported(&hrm(U16(0), Detected, None, &[]), None),
            vec![sensor_off()]
        );
        assert_eq!(
            reported(&hrm(U8(0), NotSupported, None, &[]), None),
            vec![sensor_off()]
        );
        // Contact status 1 is "not supported", not "not detected".
        assert_eq!(
            reported(&hrm(U8(72), NotSupportedAlt, None, &[]), None),
            vec![measurement(Vital::HeartRate, 72.0, Quality::NONE)]
        );
        // Intervals measured before contact was lost are kept but flagged.
        assert_eq!(
            reported(&hrm(U8(72), NotDetected, None, &[512]), None),
            vec![
                sensor_off(),
                measurement(Vital::RrInterval, 500.0, Quality::SENSOR_OFF)
            ]
        );
    }

    #[test]
    fn decoding_and_reporting_in_one_step_is_decode_then_report() {
        let mut rng = Rng::new(0x2A37_0001);
        let t = Some(Timestamp(1_763_708_405_000));
        for i in 0..100_000 {
            let mut bytes = rng.bytes(41);
            if i % 2 == 0 && !bytes.is_empty() {
                bytes[0] &= !RESERVED;
            }
            let mut want = Vec::new();
            let decoded = HeartRateMeasurement::decode(&bytes).map(|m| {
                m.report(t, 9, &mut |e| want.push(e));
            });
            let mut got = Vec::new();
            let reported =
                HeartRateMeasurement::decode_and_report(&bytes, t, 9, &mut |e| got.push(e));
            assert_eq!(reported, decoded, "{bytes:02x?}");
            assert_eq!(got, want, "{bytes:02x?}");
        }
    }

    #[test]
    fn random_bytes_never_panic_and_whatever_decodes_re_encodes_and_reports_finite_values() {
        let mut rng = Rng::new(0x2A37_2A37);
        let mut decoded = 0;
        for i in 0..100_000 {
            let mut bytes = rng.bytes(41);
            // Most random flag bytes have a reserved bit; clear them often
            // so the other paths are exercised too.
            if i % 2 == 0 && !bytes.is_empty() {
                bytes[0] &= !RESERVED;
            }
            let Ok(m) = HeartRateMeasurement::decode(&bytes) else {
                continue;
            };
            decoded += 1;
            assert_eq!(m.encode(), bytes);
            m.report(None, 0, &mut |e| match e {
                Decoded::Measurement(m) => assert!(m.value.is_finite(), "{m:?}"),
                Decoded::Status(_) => {}
                Decoded::Error(e) => panic!("{e:?}"),
            });
        }
        assert!(decoded > 1000, "only {decoded} decoded");
    }
}
