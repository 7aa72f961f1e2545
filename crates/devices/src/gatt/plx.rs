//! The Pulse Oximeter Service's characteristics: PLX Spot-Check
//! Measurement (0x2A5E), PLX Continuous Measurement (0x2A5F) and PLX
//! Features (0x2A60).
//!
//! # Sources
//!
//! * Bluetooth SIG, *Pulse Oximeter Service* 1.0 (2015) and 1.0.1
//!   (`bluetooth.com/specifications/specs/pulse-oximeter-service-1-0-1`),
//!   and the characteristic definitions it points to: the SIG's
//!   characteristic XML `org.bluetooth.characteristic.plx_spot_check_measurement`,
//!   `...plx_continuous_measurement` and `...plx_features` (approved
//!   2015-07-14, as kept in the `oesmith/gatt-xml` mirror), which every
//!   field, bit and unit below was checked against.
//! * The status bits are the Bluetooth rendering of IEEE 11073-10404's
//!   measurement-status and device-and-sensor-annunciation attributes; the
//!   HL7 Personal Health Device FHIR IG's examples (`MDC_PULS_OXIM_DEV_STATUS`:
//!   sensor-displaced, signal-pulse-questionable, signal-low-perfusion, …)
//!   use the same names.
//!
//! Where the documents disagree: the spot-check XML names Device and
//! Sensor Status bit 10 "Sensor Interface Detected", the continuous and
//! features XML "Sensor Interference Detected" (11073-10404's
//! *sensor-interf*); interference is meant, and it is read so here. Bit 3
//! is spelt "Inadequite" in all three. Neither changes a bit position.
//!
//! # Formats
//!
//! Spot-check (0x2A5E): flags u8 — bit 0 timestamp present, bit 1
//! measurement status present, bit 2 device and sensor status present,
//! bit 3 pulse amplitude index present, bit 4 device clock is not set,
//! bits 5–7 reserved — then SpO2 (SFLOAT, %), PR (SFLOAT, beats/min),
//! timestamp (Date Time, 7 bytes), measurement status (u16), device and
//! sensor status (u24), pulse amplitude index (SFLOAT, %), each optional
//! field only when its flag is set, in that order.
//!
//! Continuous (0x2A5F): flags u8 — bit 0 SpO2PR-Fast present, bit 1
//! SpO2PR-Slow present, bit 2 measurement status present, bit 3 device and
//! sensor status present, bit 4 pulse amplitude index present, bits 5–7
//! reserved — then SpO2PR-Normal (SpO2, PR), SpO2PR-Fast (SpO2, PR),
//! SpO2PR-Slow (SpO2, PR), measurement status, device and sensor status,
//! pulse amplitude index.
//!
//! Features (0x2A60): supported features u16 — bit 0 measurement status
//! support present, bit 1 device and sensor status support present, bit 2
//! measurement storage for spot-check, bit 3 timestamp for spot-check,
//! bit 4 SpO2PR-Fast, bit 5 SpO2PR-Slow, bit 6 pulse amplitude index, bit 7
//! multiple bonds, bits 8–15 reserved — then measurement status support
//! (u16, same bit layout as measurement status) when bit 0 is set and
//! device and sensor status support (u24, same layout as device and sensor
//! status) when bit 1 is set.
//!
//! Measurement status (u16): bits 0–4 reserved; 5 measurement ongoing, 6
//! early estimated data, 7 validated data, 8 fully qualified data, 9 data
//! from measurement storage, 10 data for demonstration, 11 data for
//! testing, 12 calibration ongoing, 13 measurement unavailable, 14
//! questionable measurement detected, 15 invalid measurement detected.
//!
//! Device and sensor status (u24): 0 extended display update ongoing, 1
//! equipment malfunction detected, 2 signal processing irregularity
//! detected, 3 inadequate signal detected, 4 poor signal detected, 5 low
//! perfusion detected, 6 erratic signal detected, 7 nonpulsatile signal
//! detected, 8 questionable pulse detected, 9 signal analysis ongoing, 10
//! sensor interference detected, 11 sensor unconnected to user, 12 unknown
//! sensor connected, 13 sensor displaced, 14 sensor malfunctioning, 15
//! sensor disconnected; bits 16–23 reserved.
//!
//! **Reserved bits are refused**, in the flags and in the status fields
//! alike ([`GattError::Reserved`]): a status bit this decoder cannot
//! interpret might be exactly the one that says the value is invalid, so
//! the value is not trusted half-way. The same holds for the reserved bits
//! of the features' fields.
//!
//! # What `report` emits, and why
//!
//! Values: SpO2 as [`Vital::Spo2`] (%), PR as [`Vital::PulseRate`], and
//! the pulse amplitude index as [`Vital::PerfusionIndex`]: the
//! specification's unit for it is percent ("Unit is percentage with a
//! resolution of 1"), and 11073's pulsatile amplitude index is the
//! pulsatile/non-pulsatile ratio the gateway calls perfusion index. For a
//! continuous measurement, SpO2PR-Normal is reported; SpO2PR-Fast and
//! -Slow are the same quantities averaged over shorter and longer windows
//! and are kept in the struct (for re-encoding and for anyone who wants
//! them) but not reported, so one message is one reading per vital.
//!
//! A special SFLOAT value (NaN, NRes, ±INFINITY, reserved) is a [`Status`]
//! for that vital, never a number.
//!
//! Time: a spot-check's timestamp when present, a real instant, and the
//! "device clock is not set" flag is clear; when that flag is set whatever
//! timestamp the device sent is not a real time, so the caller's time is
//! used and [`Quality::CLOCK_UNSYNCED`] added. A continuous measurement carries
//! no time: the caller's.
//!
//! Status bits, in order of precedence:
//!
//! | bit                                                  | effect |
//! |------------------------------------------------------|--------|
//! | MS data for demonstration, data for testing          | not patient data: one `Decoded::Error` ([`Reject::Unsupported`]), nothing else — a demo or test waveform stored as a patient's SpO2 would be a false record |
//! | DSS sensor disconnected, sensor unconnected to user  | [`Quality::SENSOR_OFF`]; one `Status` (`vital: None`), no values |
//! | MS measurement unavailable                           | one `Status`, no values |
//! | MS invalid measurement detected                      | [`Quality::ARTIFACT`]; one `Status`, no values |
//! | MS measurement ongoing, early estimated data; DSS signal analysis ongoing | [`Quality::SEARCHING`]; one `Status`, no values |
//! | MS calibration ongoing                               | [`Quality::SEARCHING`]; one `Status`, no values (the device is not measuring yet) |
//! | DSS low perfusion detected                           | [`Quality::LOW_PERFUSION`] |
//! | DSS erratic signal, sensor displaced, questionable pulse, signal processing irregularity, sensor interference; MS questionable measurement detected | [`Quality::ARTIFACT`] |
//! | DSS inadequate signal, poor signal, nonpulsatile signal | [`Quality::LOW_SIGNAL`] |
//! | DSS equipment malfunction, sensor malfunctioning, unknown sensor connected | [`Quality::DEVICE_FAULT`] |
//! | DSS extended display update ongoing                  | [`Quality::STALE`] (the device is holding what it shows) |
//! | MS data from measurement storage, with no usable device timestamp | [`Quality::STALE`] (an old value stamped with the time it arrived) |
//! | MS validated data, fully qualified data              | none (they say the value is good) |
//!
//! Every flag applies to every value and status the message produces. A
//! `Status` that replaces the values carries all the flags the message
//! raised, so fault detection sees why.
//!
//! [`Reject::Unsupported`]: crate::Reject::Unsupported

use super::date_time::{self, DateTime};
use super::float::Float11073;
use super::{Fields, GattError};
use crate::{DecodeError, Decoded, Measurement, Quality, Reject, Status, Timestamp, Vital};

/// The bit-set methods both status fields share.
macro_rules! status_bits {
    ($name:ident, $int:ty) => {
        impl $name {
            /// The field's bits.
            pub const fn bits(self) -> $int {
                self.0
            }

            /// True when every bit of `other` is set.
            pub const fn contains(self, other: $name) -> bool {
                self.0 & other.0 == other.0
            }

            /// True when any bit of `other` is set.
            pub const fn intersects(self, other: $name) -> bool {
                self.0 & other.0 != 0
            }
        }

        impl std::ops::BitOr for $name {
            type Output = $name;
            fn bitor(self, rhs: $name) -> $name {
                $name(self.0 | rhs.0)
            }
        }
    };
}

/// UUID of the PLX Spot-Check Measurement characteristic.
pub const PLX_SPOT_CHECK_UUID: u16 = 0x2A5E;
/// UUID of the PLX Continuous Measurement characteristic.
pub const PLX_CONTINUOUS_UUID: u16 = 0x2A5F;
/// UUID of the PLX Features characteristic.
pub const PLX_FEATURES_UUID: u16 = 0x2A60;

const SPOT_TIMESTAMP: u8 = 1 << 0;
const SPOT_STATUS: u8 = 1 << 1;
const SPOT_DEVICE_STATUS: u8 = 1 << 2;
const SPOT_PAI: u8 = 1 << 3;
const SPOT_CLOCK_NOT_SET: u8 = 1 << 4;
const CONT_FAST: u8 = 1 << 0;
const CONT_SLOW: u8 = 1 << 1;
const CONT_STATUS: u8 = 1 << 2;
const CONT_DEVICE_STATUS: u8 = 1 << 3;
const CONT_PAI: u8 = 1 << 4;
const FLAGS_RESERVED: u8 = 0b1110_0000;

/// The Measurement Status field (u16), or the Measurement Status Support
/// field of [`PlxFeatures`] (same bits: "this bit is supported"). Cannot
/// hold a reserved bit (0–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlxMeasurementStatus(u16);

impl PlxMeasurementStatus {
    /// Bit 5.
    pub const MEASUREMENT_ONGOING: PlxMeasurementStatus = PlxMeasurementStatus(1 << 5);
    /// Bit 6.
    pub const EARLY_ESTIMATED_DATA: PlxMeasurementStatus = PlxMeasurementStatus(1 << 6);
    /// Bit 7.
    pub const VALIDATED_DATA: PlxMeasurementStatus = PlxMeasurementStatus(1 << 7);
    /// Bit 8.
    pub const FULLY_QUALIFIED_DATA: PlxMeasurementStatus = PlxMeasurementStatus(1 << 8);
    /// Bit 9.
    pub const DATA_FROM_MEASUREMENT_STORAGE: PlxMeasurementStatus = PlxMeasurementStatus(1 << 9);
    /// Bit 10.
    pub const DATA_FOR_DEMONSTRATION: PlxMeasurementStatus = PlxMeasurementStatus(1 << 10);
    /// Bit 11.
    pub const DATA_FOR_TESTING: PlxMeasurementStatus = PlxMeasurementStatus(1 << 11);
    /// Bit 12.
    pub const CALIBRATION_ONGOING: PlxMeasurementStatus = PlxMeasurementStatus(1 << 12);
    /// Bit 13.
    pub const MEASUREMENT_UNAVAILABLE: PlxMeasurementStatus = PlxMeasurementStatus(1 << 13);
    /// Bit 14.
    pub const QUESTIONABLE_MEASUREMENT: PlxMeasurementStatus = PlxMeasurementStatus(1 << 14);
    /// Bit 15.
    pub const INVALID_MEASUREMENT: PlxMeasurementStatus = PlxMeasurementStatus(1 << 15);
    /// Bits 0–4, reserved for future use.
    pub const RESERVED_BITS: u16 = 0x001F;

    /// From the field's bits, refusing reserved ones; `field` names the
    /// field in the error.
    pub fn from_bits(field: &'static str, bits: u16) -> Result<PlxMeasurementStatus, GattError> {
        if bits & Self::RESERVED_BITS != 0 {
            return Err(GattError::Reserved {
                field,
                value: u32::from(bits),
            });
        }
        Ok(PlxMeasurementStatus(bits))
    }
}

status_bits!(PlxMeasurementStatus, u16);

/// The Device and Sensor Status field (u24), or the Device and Sensor
/// Status Support field of [`PlxFeatures`]. Cannot hold a reserved bit
/// (16–23).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PlxDeviceStatus(u32);

impl PlxDeviceStatus {
    /// Bit 0.
    pub const EXTENDED_DISPLAY_UPDATE_ONGOING: PlxDeviceStatus = PlxDeviceStatus(1 << 0);
    /// Bit 1.
    pub const EQUIPMENT_MALFUNCTION: PlxDeviceStatus = PlxDeviceStatus(1 << 1);
    /// Bit 2.
    pub const SIGNAL_PROCESSING_IRREGULARITY: PlxDeviceStatus = PlxDeviceStatus(1 << 2);
    /// Bit 3.
    pub const INADEQUATE_SIGNAL: PlxDeviceStatus = PlxDeviceStatus(1 << 3);
    /// Bit 4.
    pub const POOR_SIGNAL: PlxDeviceStatus = PlxDeviceStatus(1 << 4);
    /// Bit 5.
    pub const LOW_PERFUSION: PlxDeviceStatus = PlxDeviceStatus(1 << 5);
    /// Bit 6.
    pub const ERRATIC_SIGNAL: PlxDeviceStatus = PlxDeviceStatus(1 << 6);
    /// Bit 7.
    pub const NONPULSATILE_SIGNAL: PlxDeviceStatus = PlxDeviceStatus(1 << 7);
    /// Bit 8.
    pub const QUESTIONABLE_PULSE: PlxDeviceStatus = PlxDeviceStatus(1 << 8);
    /// Bit 9.
    pub const SIGNAL_ANALYSIS_ONGOING: PlxDeviceStatus = PlxDeviceStatus(1 << 9);
    /// Bit 10.
    pub const SENSOR_INTERFERENCE: PlxDeviceStatus = PlxDeviceStatus(1 << 10);
    /// Bit 11.
    pub const SENSOR_UNCONNECTED_TO_USER: PlxDeviceStatus = PlxDeviceStatus(1 << 11);
    /// Bit 12.
    pub const UNKNOWN_SENSOR_CONNECTED: PlxDeviceStatus = PlxDeviceStatus(1 << 12);
    /// Bit 13.
    pub const SENSOR_DISPLACED: PlxDeviceStatus = PlxDeviceStatus(1 << 13);
    /// Bit 14.
    pub const SENSOR_MALFUNCTIONING: PlxDeviceStatus = PlxDeviceStatus(1 << 14);
    /// Bit 15.
    pub const SENSOR_DISCONNECTED: PlxDeviceStatus = PlxDeviceStatus(1 << 15);
    /// Bits 16–23, reserved for future use.
    pub const RESERVED_BITS: u32 = 0x00FF_0000;

    /// From the field's 24 bits, refusing reserved ones (and anything above
    /// bit 23); `field` names the field in the error.
    pub fn from_bits(field: &'static str, bits: u32) -> Result<PlxDeviceStatus, GattError> {
        if bits & !0xFFFF != 0 {
            return Err(GattError::Reserved { field, value: bits });
        }
        Ok(PlxDeviceStatus(bits))
    }
}

status_bits!(PlxDeviceStatus, u32);

/// One SpO2 and pulse rate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpO2Pr {
    /// SpO2, percent.
    pub spo2: Float11073,
    /// Pulse rate, beats per minute.
    pub pulse_rate: Float11073,
}

/// A PLX Spot-Check Measurement (0x2A5E). The flags byte is not stored:
/// each of its bits is an `Option` being `Some` or
/// [`PlxSpotCheck::device_clock_not_set`], so [`PlxSpotCheck::flags`]
/// rebuilds it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlxSpotCheck {
    /// SpO2PR-Spot-Check.
    pub spo2_pr: SpO2Pr,
    /// Device clock at the measurement.
    pub timestamp: Option<DateTime>,
    /// Measurement status.
    pub measurement_status: Option<PlxMeasurementStatus>,
    /// Device and sensor status.
    pub device_status: Option<PlxDeviceStatus>,
    /// Pulse amplitude index, percent.
    pub pulse_amplitude_index: Option<Float11073>,
    /// Flags bit 4: the device clock is not set (its timestamp is not a
    /// real time).
    pub device_clock_not_set: bool,
}

/// A PLX Continuous Measurement (0x2A5F); the flags byte is rebuilt by
/// [`PlxContinuous::flags`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlxContinuous {
    /// SpO2PR-Normal: the reported values.
    pub normal: SpO2Pr,
    /// SpO2PR-Fast (shorter averaging); kept, not reported.
    pub fast: Option<SpO2Pr>,
    /// SpO2PR-Slow (longer averaging); kept, not reported.
    pub slow: Option<SpO2Pr>,
    /// Measurement status.
    pub measurement_status: Option<PlxMeasurementStatus>,
    /// Device and sensor status.
    pub device_status: Option<PlxDeviceStatus>,
    /// Pulse amplitude index, percent.
    pub pulse_amplitude_index: Option<Float11073>,
}

/// The PLX Features characteristic (0x2A60).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlxFeatures {
    /// The Supported Features field. Bits 0 and 1 say whether the two
    /// support fields follow; they must agree with those being `Some`.
    pub supported: u16,
    /// Which measurement status bits the device supports.
    pub measurement_status_support: Option<PlxMeasurementStatus>,
    /// Which device and sensor status bits the device supports.
    pub device_status_support: Option<PlxDeviceStatus>,
}

impl PlxFeatures {
    /// Bit 0: the Measurement Status Support field is present.
    pub const MEASUREMENT_STATUS_SUPPORT_PRESENT: u16 = 1 << 0;
    /// Bit 1: the Device and Sensor Status Support field is present.
    pub const DEVICE_STATUS_SUPPORT_PRESENT: u16 = 1 << 1;
    /// Bit 2: measurement storage for spot-check measurements.
    pub const SPOT_CHECK_STORAGE: u16 = 1 << 2;
    /// Bit 3: timestamp for spot-check measurements.
    pub const SPOT_CHECK_TIMESTAMP: u16 = 1 << 3;
    /// Bit 4: SpO2PR-Fast metric.
    pub const SPO2PR_FAST: u16 = 1 << 4;
    /// Bit 5: SpO2PR-Slow metric.
    pub const SPO2PR_SLOW: u16 = 1 << 5;
    /// Bit 6: pulse amplitude index field.
    pub const PULSE_AMPLITUDE_INDEX: u16 = 1 << 6;
    /// Bit 7: multiple bonds.
    pub const MULTIPLE_BONDS: u16 = 1 << 7;
    /// Bits 8–15, reserved for future use.
    pub const RESERVED_BITS: u16 = 0xFF00;

    /// Decode a PLX Features value.
    pub fn decode(bytes: &[u8]) -> Result<PlxFeatures, GattError> {
        let mut f = Fields::new(bytes);
        let supported = f.u16("supported features")?;
        if supported & Self::RESERVED_BITS != 0 {
            return Err(GattError::Reserved {
                field: "supported features",
                value: u32::from(supported),
            });
        }
        let measurement_status_support =
            if supported & Self::MEASUREMENT_STATUS_SUPPORT_PRESENT != 0 {
                let bits = f.u16("measurement status support")?;
                Some(PlxMeasurementStatus::from_bits(
                    "measurement status support",
                    bits,
                )?)
            } else {
                None
            };
        let device_status_support = if supported & Self::DEVICE_STATUS_SUPPORT_PRESENT != 0 {
            let bits = f.u24("device and sensor status support")?;
            Some(PlxDeviceStatus::from_bits(
                "device and sensor status support",
                bits,
            )?)
        } else {
            None
        };
        f.finish()?;
        Ok(PlxFeatures {
            supported,
            measurement_status_support,
            device_status_support,
        })
    }

    /// Append the value; refuses (appending nothing) reserved supported
    /// features bits and presence bits that disagree with the fields.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), GattError> {
        if self.supported & Self::RESERVED_BITS != 0 {
            return Err(GattError::Reserved {
                field: "supported features",
                value: u32::from(self.supported),
            });
        }
        let agree = |bit: u16, present: bool, field: &'static str| {
            if (self.supported & bit != 0) == present {
                Ok(())
            } else {
                Err(GattError::OutOfRange {
                    field,
                    detail: format!(
                        "supported features {:#06x} disagree with the field being {}",
                        self.supported,
                        if present { "present" } else { "absent" }
                    ),
                })
            }
        };
        agree(
            Self::MEASUREMENT_STATUS_SUPPORT_PRESENT,
            self.measurement_status_support.is_some(),
            "measurement status support",
        )?;
        agree(
            Self::DEVICE_STATUS_SUPPORT_PRESENT,
            self.device_status_support.is_some(),
            "device and sensor status support",
        )?;
        out.extend_from_slice(&self.supported.to_le_bytes());
        if let Some(s) = self.measurement_status_support {
            out.extend_from_slice(&s.bits().to_le_bytes());
        }
        if let Some(s) = self.device_status_support {
            put_u24(out, s.bits());
        }
        Ok(())
    }
}

impl SpO2Pr {
    fn read(
        f: &mut Fields<'_>,
        spo2: &'static str,
        pulse_rate: &'static str,
    ) -> Result<SpO2Pr, GattError> {
        Ok(SpO2Pr {
            spo2: Float11073::from_sfloat(f.u16(spo2)?),
            pulse_rate: Float11073::from_sfloat(f.u16(pulse_rate)?),
        })
    }

    fn write(
        &self,
        out: &mut Vec<u8>,
        spo2: &'static str,
        pulse_rate: &'static str,
    ) -> Result<(), GattError> {
        put_sfloat(out, spo2, self.spo2)?;
        put_sfloat(out, pulse_rate, self.pulse_rate)
    }
}

fn check_flags(flags: u8) -> Result<(), GattError> {
    if flags & FLAGS_RESERVED != 0 {
        return Err(GattError::Reserved {
            field: "flags",
            value: u32::from(flags),
        });
    }
    Ok(())
}

fn read_statuses(
    f: &mut Fields<'_>,
    has_status: bool,
    has_device_status: bool,
) -> Result<(Option<PlxMeasurementStatus>, Option<PlxDeviceStatus>), GattError> {
    let status = if has_status {
        let bits = f.u16("measurement status")?;
        Some(PlxMeasurementStatus::from_bits("measurement status", bits)?)
    } else {
        None
    };
    let device = if has_device_status {
        let bits = f.u24("device and sensor status")?;
        Some(PlxDeviceStatus::from_bits(
            "device and sensor status",
            bits,
        )?)
    } else {
        None
    };
    Ok((status, device))
}

fn write_tail(
    out: &mut Vec<u8>,
    status: Option<PlxMeasurementStatus>,
    device: Option<PlxDeviceStatus>,
    pai: Option<Float11073>,
) -> Result<(), GattError> {
    if let Some(s) = status {
        out.extend_from_slice(&s.bits().to_le_bytes());
    }
    if let Some(s) = device {
        put_u24(out, s.bits());
    }
    if let Some(p) = pai {
        put_sfloat(out, "pulse amplitude index", p)?;
    }
    Ok(())
}

fn bit(on: bool, bit: u8) -> u8 {
    if on { bit } else { 0 }
}

/// Runs `write`, undoing what it appended when it fails.
fn atomically(
    out: &mut Vec<u8>,
    write: impl FnOnce(&mut Vec<u8>) -> Result<(), GattError>,
) -> Result<(), GattError> {
    let start = out.len();
    let result = write(out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

impl PlxSpotCheck {
    /// Decode a PLX Spot-Check Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<PlxSpotCheck, GattError> {
        let mut f = Fields::new(bytes);
        let flags = f.u8("flags")?;
        check_flags(flags)?;
        let spo2_pr = SpO2Pr::read(&mut f, "SpO2", "pulse rate")?;
        let timestamp = if flags & SPOT_TIMESTAMP != 0 {
            Some(DateTime::read(&mut f, "timestamp")?)
        } else {
            None
        };
        let (measurement_status, device_status) = read_statuses(
            &mut f,
            flags & SPOT_STATUS != 0,
            flags & SPOT_DEVICE_STATUS != 0,
        )?;
        let pulse_amplitude_index = if flags & SPOT_PAI != 0 {
            Some(Float11073::from_sfloat(f.u16("pulse amplitude index")?))
        } else {
            None
        };
        f.finish()?;
        Ok(PlxSpotCheck {
            spo2_pr,
            timestamp,
            measurement_status,
            device_status,
            pulse_amplitude_index,
            device_clock_not_set: flags & SPOT_CLOCK_NOT_SET != 0,
        })
    }

    /// The flags byte this value is sent with.
    pub fn flags(&self) -> u8 {
        bit(self.timestamp.is_some(), SPOT_TIMESTAMP)
            | bit(self.measurement_status.is_some(), SPOT_STATUS)
            | bit(self.device_status.is_some(), SPOT_DEVICE_STATUS)
            | bit(self.pulse_amplitude_index.is_some(), SPOT_PAI)
            | bit(self.device_clock_not_set, SPOT_CLOCK_NOT_SET)
    }

    /// Append the value; refuses (appending nothing) what
    /// [`PlxSpotCheck::decode`] would refuse (a number that does not fit an
    /// SFLOAT, an impossible timestamp).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), GattError> {
        atomically(out, |out| {
            out.push(self.flags());
            self.spo2_pr.write(out, "SpO2", "pulse rate")?;
            if let Some(t) = self.timestamp {
                put_date_time(out, "timestamp", t)?;
            }
            write_tail(
                out,
                self.measurement_status,
                self.device_status,
                self.pulse_amplitude_index,
            )
        })
    }

    /// Length of the encoded value in bytes.
    pub fn encoded_len(&self) -> usize {
        5 + self.timestamp.map_or(0, |_| date_time::LEN)
            + self.measurement_status.map_or(0, |_| 2)
            + self.device_status.map_or(0, |_| 3)
            + self.pulse_amplitude_index.map_or(0, |_| 2)
    }

    /// Report the values (see the module documentation). `device_time` is
    /// used when the value carries no usable timestamp; `offset` is the
    /// message's.
    pub fn report(
        &self,
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        let mut clock = Quality::NONE;
        let stamped = if self.device_clock_not_set {
            clock = Quality::CLOCK_UNSYNCED;
            None
        } else {
            self.timestamp.and_then(|t| t.to_timestamp())
        };
        report(
            &Reported {
                values: self.spo2_pr,
                pulse_amplitude_index: self.pulse_amplitude_index,
                measurement_status: self.measurement_status,
                device_status: self.device_status,
                device_time: stamped.or(device_time),
                device_stamped: stamped.is_some(),
                extra: clock,
                len: self.encoded_len(),
                what: "PLX spot-check",
            },
            offset,
            out,
        );
    }
}

impl PlxContinuous {
    /// Decode a PLX Continuous Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<PlxContinuous, GattError> {
        let mut f = Fields::new(bytes);
        let flags = f.u8("flags")?;
        check_flags(flags)?;
        let normal = SpO2Pr::read(&mut f, "SpO2PR-Normal SpO2", "SpO2PR-Normal PR")?;
        let fast = if flags & CONT_FAST != 0 {
            Some(SpO2Pr::read(&mut f, "SpO2PR-Fast SpO2", "SpO2PR-Fast PR")?)
        } else {
            None
        };
        let slow = if flags & CONT_SLOW != 0 {
            Some(SpO2Pr::read(&mut f, "SpO2PR-Slow SpO2", "SpO2PR-Slow PR")?)
        } else {
            None
        };
        let (measurement_status, device_status) = read_statuses(
            &mut f,
            flags & CONT_STATUS != 0,
            flags & CONT_DEVICE_STATUS != 0,
        )?;
        let pulse_amplitude_index = if flags & CONT_PAI != 0 {
            Some(Float11073::from_sfloat(f.u16("pulse amplitude index")?))
        } else {
            None
        };
        f.finish()?;
        Ok(PlxContinuous {
            normal,
            fast,
            slow,
            measurement_status,
            device_status,
            pulse_amplitude_index,
        })
    }

    /// The flags byte this value is sent with.
    pub fn flags(&self) -> u8 {
        bit(self.fast.is_some(), CONT_FAST)
            | bit(self.slow.is_some(), CONT_SLOW)
            | bit(self.measurement_status.is_some(), CONT_STATUS)
            | bit(self.device_status.is_some(), CONT_DEVICE_STATUS)
            | bit(self.pulse_amplitude_index.is_some(), CONT_PAI)
    }

    /// Append the value; refuses (appending nothing) a number that does
    /// not fit an SFLOAT.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), GattError> {
        atomically(out, |out| {
            out.push(self.flags());
            self.normal
                .write(out, "SpO2PR-Normal SpO2", "SpO2PR-Normal PR")?;
            if let Some(fast) = self.fast {
                fast.write(out, "SpO2PR-Fast SpO2", "SpO2PR-Fast PR")?;
            }
            if let Some(slow) = self.slow {
                slow.write(out, "SpO2PR-Slow SpO2", "SpO2PR-Slow PR")?;
            }
            write_tail(
                out,
                self.measurement_status,
                self.device_status,
                self.pulse_amplitude_index,
            )
        })
    }

    /// Length of the encoded value in bytes.
    pub fn encoded_len(&self) -> usize {
        5 + self.fast.map_or(0, |_| 4)
            + self.slow.map_or(0, |_| 4)
            + self.measurement_status.map_or(0, |_| 2)
            + self.device_status.map_or(0, |_| 3)
            + self.pulse_amplitude_index.map_or(0, |_| 2)
    }

    /// Report SpO2PR-Normal and the pulse amplitude index (see the module
    /// documentation), at `device_time`.
    pub fn report(
        &self,
        device_time: Option<Timestamp>,
        offset: u64,
        out: &mut dyn FnMut(Decoded),
    ) {
        report(
            &Reported {
                values: self.normal,
                pulse_amplitude_index: self.pulse_amplitude_index,
                measurement_status: self.measurement_status,
                device_status: self.device_status,
                device_time,
                device_stamped: false,
                extra: Quality::NONE,
                len: self.encoded_len(),
                what: "PLX continuous",
            },
            offset,
            out,
        );
    }
}

/// What both measurements report from.
struct Reported {
    values: SpO2Pr,
    pulse_amplitude_index: Option<Float11073>,
    measurement_status: Option<PlxMeasurementStatus>,
    device_status: Option<PlxDeviceStatus>,
    device_time: Option<Timestamp>,
    /// The time is the device's own (a valid timestamp), not the caller's.
    device_stamped: bool,
    extra: Quality,
    len: usize,
    what: &'static str,
}

/// The status bits' verdict on a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Not patient data: an error, nothing else.
    NotPatientData(&'static str),
    /// No values: one whole-device status with these flags.
    NoValues(Quality),
    /// Values, with these flags.
    Values(Quality),
}

fn verdict(ms: PlxMeasurementStatus, ds: PlxDeviceStatus, device_stamped: bool) -> Verdict {
    type M = PlxMeasurementStatus;
    type D = PlxDeviceStatus;
    if ms.contains(M::DATA_FOR_DEMONSTRATION) {
        return Verdict::NotPatientData("data for demonstration");
    }
    if ms.contains(M::DATA_FOR_TESTING) {
        return Verdict::NotPatientData("data for testing");
    }
    let mut q = Quality::NONE;
    q.set(
        Quality::SENSOR_OFF,
        ds.intersects(D::SENSOR_DISCONNECTED | D::SENSOR_UNCONNECTED_TO_USER),
    );
    q.set(
        Quality::SEARCHING,
        ms.intersects(M::MEASUREMENT_ONGOING | M::EARLY_ESTIMATED_DATA | M::CALIBRATION_ONGOING)
            || ds.contains(D::SIGNAL_ANALYSIS_ONGOING),
    );
    q.set(Quality::LOW_PERFUSION, ds.contains(D::LOW_PERFUSION));
    q.set(
        Quality::ARTIFACT,
        ds.intersects(
            D::ERRATIC_SIGNAL
                | D::SENSOR_DISPLACED
                | D::QUESTIONABLE_PULSE
                | D::SIGNAL_PROCESSING_IRREGULARITY
                | D::SENSOR_INTERFERENCE,
        ) || ms.intersects(M::QUESTIONABLE_MEASUREMENT | M::INVALID_MEASUREMENT),
    );
    q.set(
        Quality::LOW_SIGNAL,
        ds.intersects(D::INADEQUATE_SIGNAL | D::POOR_SIGNAL | D::NONPULSATILE_SIGNAL),
    );
    q.set(
        Quality::DEVICE_FAULT,
        ds.intersects(
            D::EQUIPMENT_MALFUNCTION | D::SENSOR_MALFUNCTIONING | D::UNKNOWN_SENSOR_CONNECTED,
        ),
    );
    q.set(
        Quality::STALE,
        ds.contains(D::EXTENDED_DISPLAY_UPDATE_ONGOING)
            || (ms.contains(M::DATA_FROM_MEASUREMENT_STORAGE) && !device_stamped),
    );
    let no_values = q.intersects(Quality::SENSOR_OFF | Quality::SEARCHING)
        || ms.intersects(M::MEASUREMENT_UNAVAILABLE | M::INVALID_MEASUREMENT);
    if no_values {
        Verdict::NoValues(q)
    } else {
        Verdict::Values(q)
    }
}

fn report(r: &Reported, offset: u64, out: &mut dyn FnMut(Decoded)) {
    let ms = r.measurement_status.unwrap_or_default();
    let ds = r.device_status.unwrap_or_default();
    let device_time = r.device_time;
    let quality = match verdict(ms, ds, r.device_stamped) {
        Verdict::NotPatientData(why) => {
            out(Decoded::Error(DecodeError::new(
                offset,
                r.len as u64,
                Reject::Unsupported,
                format!(
                    "{}: measurement status says {why} ({:#06x}): not patient data",
                    r.what,
                    ms.bits()
                ),
            )));
            return;
        }
        Verdict::NoValues(q) => {
            out(Decoded::Status(Status {
                vital: None,
                quality: q | r.extra,
                device_time,
                offset,
            }));
            return;
        }
        Verdict::Values(q) => q | r.extra,
    };
    let mut emit = |vital: Vital, value: Float11073| {
        out(match value.value() {
            Some(value) => Decoded::Measurement(Measurement {
                vital,
                value,
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
    emit(Vital::Spo2, r.values.spo2);
    emit(Vital::PulseRate, r.values.pulse_rate);
    if let Some(pai) = r.pulse_amplitude_index {
        emit(Vital::PerfusionIndex, pai);
    }
}

fn put_u24(out: &mut Vec<u8>, bits: u32) {
    out.extend_from_slice(&bits.to_le_bytes()[..3]);
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

    type M = PlxMeasurementStatus;
    type D = PlxDeviceStatus;

    fn v(mantissa: i32, exponent: i8) -> Float11073 {
        Float11073::Value { mantissa, exponent }
    }

    fn pair(spo2: i32, pr: i32) -> SpO2Pr {
        SpO2Pr {
            spo2: v(spo2, 0),
            pulse_rate: v(pr, 0),
        }
    }

    /// 2025-11-21 07:00:05: year 2025 = 0x07E9.
    const TIME: [u8; 7] = [0xE9, 0x07, 11, 21, 7, 0, 5];
    const TIME_MS: i64 = 1_763_708_405_000;
    const DATE_TIME: DateTime = DateTime {
        year: 2025,
        month: 11,
        day: 21,
        hours: 7,
        minutes: 0,
        seconds: 5,
    };

    fn bare_spot() -> PlxSpotCheck {
        PlxSpotCheck {
            spo2_pr: pair(97, 72),
            timestamp: None,
            measurement_status: None,
            device_status: None,
            pulse_amplitude_index: None,
            device_clock_not_set: false,
        }
    }

    fn bare_continuous() -> PlxContinuous {
        PlxContinuous {
            normal: pair(97, 72),
            fast: None,
            slow: None,
            measurement_status: None,
            device_status: None,
            pulse_amplitude_index: None,
        }
    }

    fn spot_round_trip(bytes: &[u8], want: PlxSpotCheck) {
        let got = PlxSpotCheck::decode(bytes).unwrap();
        assert_eq!(got, want);
        let mut out = Vec::new();
        got.encode(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(got.encoded_len(), bytes.len());
    }

    fn continuous_round_trip(bytes: &[u8], want: PlxContinuous) {
        let got = PlxContinuous::decode(bytes).unwrap();
        assert_eq!(got, want);
        let mut out = Vec::new();
        got.encode(&mut out).unwrap();
        assert_eq!(out, bytes);
        assert_eq!(got.encoded_len(), bytes.len());
    }

    fn spot_events(m: &PlxSpotCheck, device_time: Option<Timestamp>) -> Vec<Decoded> {
        let mut events = Vec::new();
        m.report(device_time, 9, &mut |e| events.push(e));
        events
    }

    fn continuous_events(m: &PlxContinuous) -> Vec<Decoded> {
        let mut events = Vec::new();
        m.report(Some(Timestamp(1000)), 9, &mut |e| events.push(e));
        events
    }

    fn measurement(vital: Vital, value: f64, at: i64, quality: Quality) -> Decoded {
        Decoded::Measurement(Measurement {
            vital,
            value,
            device_time: Some(Timestamp(at)),
            quality,
            offset: 9,
        })
    }

    #[test]
    fn a_bare_spot_check_decodes_and_re_encodes_byte_for_byte() {
        // flags 0; SpO2 97 = 0x0061; PR 72 = 0x0048.
        spot_round_trip(&[0x00, 0x61, 0x00, 0x48, 0x00], bare_spot());
    }

    #[test]
    fn a_spot_check_with_every_optional_field_decodes_and_re_encodes() {
        // flags 0x1F: timestamp, measurement status, device and sensor
        // status, pulse amplitude index, device clock not set.
        // SpO2 98.5 = 985 × 10^-1 = 0xF3D9; PR 61 = 0x003D.
        // MS: validated data (bit 7) + fully qualified (bit 8) = 0x0180.
        // DSS: low perfusion (bit 5) = 0x000020, as 3 bytes.
        // PAI 2.4 % = 24 × 10^-1 = 0xF018.
        let mut bytes = vec![0x1F, 0xD9, 0xF3, 0x3D, 0x00];
        bytes.extend_from_slice(&TIME);
        bytes.extend_from_slice(&[0x80, 0x01, 0x20, 0x00, 0x00, 0x18, 0xF0]);
        spot_round_trip(
            &bytes,
            PlxSpotCheck {
                spo2_pr: SpO2Pr {
                    spo2: v(985, -1),
                    pulse_rate: v(61, 0),
                },
                timestamp: Some(DATE_TIME),
                measurement_status: Some(M::VALIDATED_DATA | M::FULLY_QUALIFIED_DATA),
                device_status: Some(D::LOW_PERFUSION),
                pulse_amplitude_index: Some(v(24, -1)),
                device_clock_not_set: true,
            },
        );
    }

    #[test]
    fn a_bare_continuous_measurement_decodes_and_re_encodes() {
        continuous_round_trip(&[0x00, 0x61, 0x00, 0x48, 0x00], bare_continuous());
    }

    #[test]
    fn a_continuous_measurement_with_every_optional_field_decodes_and_re_encodes() {
        // flags 0x1F: fast, slow, MS, DSS, PAI.
        // Normal 97/72; Fast 96/75 (0x0060, 0x004B); Slow 98/70 (0x0062,
        // 0x0046); MS fully qualified (bit 8) = 0x0100; DSS sensor
        // displaced (bit 13) + questionable pulse (bit 8) = 0x002100;
        // PAI 10 % = 0x000A.
        let bytes = [
            0x1F, 0x61, 0x00, 0x48, 0x00, 0x60, 0x00, 0x4B, 0x00, 0x62, 0x00, 0x46, 0x00, 0x00,
            0x01, 0x00, 0x21, 0x00, 0x0A, 0x00,
        ];
        continuous_round_trip(
            &bytes,
            PlxContinuous {
                normal: pair(97, 72),
                fast: Some(pair(96, 75)),
                slow: Some(pair(98, 70)),
                measurement_status: Some(M::FULLY_QUALIFIED_DATA),
                device_status: Some(D::SENSOR_DISPLACED | D::QUESTIONABLE_PULSE),
                pulse_amplitude_index: Some(v(10, 0)),
            },
        );
    }

    #[test]
    fn each_continuous_optional_field_alone_decodes_and_re_encodes() {
        let head = [0x61, 0x00, 0x48, 0x00];
        let with = |flags: u8, tail: &[u8]| {
            let mut b = vec![flags];
            b.extend_from_slice(&head);
            b.extend_from_slice(tail);
            b
        };
        let mut m = bare_continuous();
        m.fast = Some(pair(96, 75));
        continuous_round_trip(&with(0x01, &[0x60, 0x00, 0x4B, 0x00]), m);
        let mut m = bare_continuous();
        m.slow = Some(pair(98, 70));
        continuous_round_trip(&with(0x02, &[0x62, 0x00, 0x46, 0x00]), m);
        let mut m = bare_continuous();
        m.measurement_status = Some(M::INVALID_MEASUREMENT);
        continuous_round_trip(&with(0x04, &[0x00, 0x80]), m);
        let mut m = bare_continuous();
        m.device_status = Some(D::SENSOR_DISCONNECTED);
        continuous_round_trip(&with(0x08, &[0x00, 0x80, 0x00]), m);
        let mut m = bare_continuous();
        m.pulse_amplitude_index = Some(Float11073::NaN);
        continuous_round_trip(&with(0x10, &[0xFF, 0x07]), m);
    }

    #[test]
    fn features_with_both_support_fields_decode_and_re_encode() {
        // Supported 0x00FF: every defined feature. MS support: bits 5-15 =
        // 0xFFE0. DSS support: bits 0-15 = 0x00FFFF.
        let bytes = [0xFF, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x00];
        let want = PlxFeatures {
            supported: 0x00FF,
            measurement_status_support: Some(M::from_bits("x", 0xFFE0).unwrap()),
            device_status_support: Some(D::from_bits("x", 0xFFFF).unwrap()),
        };
        let got = PlxFeatures::decode(&bytes).unwrap();
        assert_eq!(got, want);
        let mut out = Vec::new();
        got.encode(&mut out).unwrap();
        assert_eq!(out, bytes);

        // Only the device and sensor status support field (bit 1), with
        // timestamp support (bit 3): 0x000A; DSS support sensor
        // disconnected + low perfusion = 0x008020.
        let bytes = [0x0A, 0x00, 0x20, 0x80, 0x00];
        let got = PlxFeatures::decode(&bytes).unwrap();
        assert_eq!(
            got,
            PlxFeatures {
                supported: PlxFeatures::DEVICE_STATUS_SUPPORT_PRESENT
                    | PlxFeatures::SPOT_CHECK_TIMESTAMP,
                measurement_status_support: None,
                device_status_support: Some(D::SENSOR_DISCONNECTED | D::LOW_PERFUSION),
            }
        );
        let mut out = Vec::new();
        got.encode(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn every_truncation_point_names_the_field_that_was_cut_off() {
        let mut spot = vec![0x0F, 0x61, 0x00, 0x48, 0x00];
        spot.extend_from_slice(&TIME);
        spot.extend_from_slice(&[0x80, 0x01, 0x20, 0x00, 0x00, 0x18, 0xF0]);
        assert!(PlxSpotCheck::decode(&spot).is_ok());
        let spot_field = |len: usize| match len {
            0 => ("flags", 1),
            1 | 2 => ("SpO2", 3),
            3 | 4 => ("pulse rate", 5),
            5..=11 => ("timestamp", 12),
            12 | 13 => ("measurement status", 14),
            14..=16 => ("device and sensor status", 17),
            _ => ("pulse amplitude index", 19),
        };
        for len in 0..spot.len() {
            let (field, need) = spot_field(len);
            assert_eq!(
                PlxSpotCheck::decode(&spot[..len]),
                Err(GattError::Truncated {
                    field,
                    need,
                    have: len
                }),
                "spot-check, {len} bytes"
            );
        }

        let cont = [
            0x1F, 0x61, 0x00, 0x48, 0x00, 0x60, 0x00, 0x4B, 0x00, 0x62, 0x00, 0x46, 0x00, 0x00,
            0x01, 0x00, 0x21, 0x00, 0x0A, 0x00,
        ];
        let cont_field = |len: usize| match len {
            0 => ("flags", 1),
            1 | 2 => ("SpO2PR-Normal SpO2", 3),
            3 | 4 => ("SpO2PR-Normal PR", 5),
            5 | 6 => ("SpO2PR-Fast SpO2", 7),
            7 | 8 => ("SpO2PR-Fast PR", 9),
            9 | 10 => ("SpO2PR-Slow SpO2", 11),
            11 | 12 => ("SpO2PR-Slow PR", 13),
            13 | 14 => ("measurement status", 15),
            15..=17 => ("device and sensor status", 18),
            _ => ("pulse amplitude index", 20),
        };
        for len in 0..cont.len() {
            let (field, need) = cont_field(len);
            assert_eq!(
                PlxContinuous::decode(&cont[..len]),
                Err(GattError::Truncated {
                    field,
                    need,
                    have: len
                }),
                "continuous, {len} bytes"
            );
        }

        let features = [0x03, 0x00, 0xE0, 0xFF, 0xFF, 0xFF, 0x00];
        let features_field = |len: usize| match len {
            0 | 1 => ("supported features", 2),
            2 | 3 => ("measurement status support", 4),
            _ => ("device and sensor status support", 7),
        };
        for len in 0..features.len() {
            let (field, need) = features_field(len);
            assert_eq!(
                PlxFeatures::decode(&features[..len]),
                Err(GattError::Truncated {
                    field,
                    need,
                    have: len
                }),
                "features, {len} bytes"
            );
        }
    }

    #[test]
    fn reserved_flag_bits_reserved_status_bits_and_trailing_bytes_are_refused() {
        let body = [0x61, 0x00, 0x48, 0x00];
        for flags in [0x20u8, 0x40, 0x80, 0xE0] {
            let mut b = vec![flags];
            b.extend_from_slice(&body);
            let want = GattError::Reserved {
                field: "flags",
                value: u32::from(flags),
            };
            assert_eq!(PlxSpotCheck::decode(&b), Err(want.clone()));
            assert_eq!(PlxContinuous::decode(&b), Err(want));
        }
        // Measurement status bits 0-4.
        for bit in 0..5 {
            let ms = 1u16 << bit;
            let mut b = vec![0x02];
            b.extend_from_slice(&body);
            b.extend_from_slice(&ms.to_le_bytes());
            assert_eq!(
                PlxSpotCheck::decode(&b),
                Err(GattError::Reserved {
                    field: "measurement status",
                    value: u32::from(ms)
                })
            );
            b[0] = 0x04;
            assert_eq!(
                PlxContinuous::decode(&b),
                Err(GattError::Reserved {
                    field: "measurement status",
                    value: u32::from(ms)
                })
            );
        }
        // Device and sensor status bits 16-23.
        for bit in 16..24 {
            let ds = 1u32 << bit;
            let mut b = vec![0x04];
            b.extend_from_slice(&body);
            b.extend_from_slice(&ds.to_le_bytes()[..3]);
            assert_eq!(
                PlxSpotCheck::decode(&b),
                Err(GattError::Reserved {
                    field: "device and sensor status",
                    value: ds
                })
            );
            b[0] = 0x08;
            assert_eq!(
                PlxContinuous::decode(&b),
                Err(GattError::Reserved {
                    field: "device and sensor status",
                    value: ds
                })
            );
        }
        // Features: reserved supported bits, reserved support bits.
        assert_eq!(
            PlxFeatures::decode(&[0x00, 0x01]),
            Err(GattError::Reserved {
                field: "supported features",
                value: 0x0100
            })
        );
        assert_eq!(
            PlxFeatures::decode(&[0x01, 0x00, 0x01, 0x00]),
            Err(GattError::Reserved {
                field: "measurement status support",
                value: 1
            })
        );
        assert_eq!(
            PlxFeatures::decode(&[0x02, 0x00, 0x00, 0x00, 0x80]),
            Err(GattError::Reserved {
                field: "device and sensor status support",
                value: 0x80_0000
            })
        );
        // Trailing bytes.
        let mut b = vec![0x00];
        b.extend_from_slice(&body);
        b.push(0);
        assert_eq!(
            PlxSpotCheck::decode(&b),
            Err(GattError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            PlxContinuous::decode(&b),
            Err(GattError::TrailingBytes { extra: 1 })
        );
        assert_eq!(
            PlxFeatures::decode(&[0x00, 0x00, 0x00]),
            Err(GattError::TrailingBytes { extra: 1 })
        );
    }

    #[test]
    fn encoders_refuse_what_decoders_would() {
        let mut out = vec![0xAA];
        let mut m = bare_spot();
        m.pulse_amplitude_index = Some(v(9999, 0));
        assert!(matches!(
            m.encode(&mut out),
            Err(GattError::OutOfRange {
                field: "pulse amplitude index",
                ..
            })
        ));
        let mut m = bare_spot();
        m.timestamp = Some(DateTime {
            hours: 24,
            ..DATE_TIME
        });
        assert!(m.encode(&mut out).is_err());
        let mut m = bare_continuous();
        m.slow = Some(SpO2Pr {
            spo2: v(1, 9),
            pulse_rate: v(1, 0),
        });
        assert!(m.encode(&mut out).is_err());
        let f = PlxFeatures {
            supported: PlxFeatures::MEASUREMENT_STATUS_SUPPORT_PRESENT,
            measurement_status_support: None,
            device_status_support: None,
        };
        assert!(f.encode(&mut out).is_err());
        assert_eq!(out, [0xAA], "nothing appended");
    }

    #[test]
    fn a_spot_check_reports_spo2_pulse_rate_and_perfusion_at_its_timestamp() {
        let mut m = bare_spot();
        m.timestamp = Some(DATE_TIME);
        m.pulse_amplitude_index = Some(v(24, -1));
        m.device_status = Some(D::LOW_PERFUSION | D::POOR_SIGNAL);
        m.measurement_status = Some(M::VALIDATED_DATA);
        let q = Quality::LOW_PERFUSION | Quality::LOW_SIGNAL;
        assert_eq!(
            spot_events(&m, Some(Timestamp(1))),
            [
                measurement(Vital::Spo2, 97.0, TIME_MS, q),
                measurement(Vital::PulseRate, 72.0, TIME_MS, q),
                // 24 × 10^-1 as `Float11073::value` computes it (24 × 0.1,
                // which is 2.4000000000000004, not the f64 nearest 2.4).
                measurement(
                    Vital::PerfusionIndex,
                    v(24, -1).value().unwrap(),
                    TIME_MS,
                    q
                ),
            ]
        );
    }

    #[test]
    fn an_unset_device_clock_means_the_callers_time_and_clock_unsynced() {
        let mut m = bare_spot();
        m.timestamp = Some(DATE_TIME);
        m.device_clock_not_set = true;
        let q = Quality::CLOCK_UNSYNCED;
        assert_eq!(
            spot_events(&m, Some(Timestamp(5))),
            [
                measurement(Vital::Spo2, 97.0, 5, q),
                measurement(Vital::PulseRate, 72.0, 5, q),
            ]
        );
        // An unknown date is the caller's time too, without the flag.
        m.device_clock_not_set = false;
        m.timestamp = Some(DateTime {
            year: 0,
            ..DATE_TIME
        });
        assert_eq!(
            spot_events(&m, Some(Timestamp(5)))[0],
            measurement(Vital::Spo2, 97.0, 5, Quality::NONE)
        );
    }

    #[test]
    fn a_continuous_measurement_reports_only_spo2pr_normal() {
        let mut m = bare_continuous();
        m.fast = Some(pair(90, 100));
        m.slow = Some(pair(99, 60));
        assert_eq!(
            continuous_events(&m),
            [
                measurement(Vital::Spo2, 97.0, 1000, Quality::NONE),
                measurement(Vital::PulseRate, 72.0, 1000, Quality::NONE),
            ]
        );
    }

    #[test]
    fn special_values_are_statuses_for_their_vital() {
        let mut m = bare_continuous();
        m.normal.spo2 = Float11073::NRes;
        m.pulse_amplitude_index = Some(Float11073::NaN);
        m.device_status = Some(D::SENSOR_DISPLACED);
        let status = |vital| {
            Decoded::Status(Status {
                vital: Some(vital),
                quality: Quality::ARTIFACT,
                device_time: Some(Timestamp(1000)),
                offset: 9,
            })
        };
        assert_eq!(
            continuous_events(&m),
            [
                status(Vital::Spo2),
                measurement(Vital::PulseRate, 72.0, 1000, Quality::ARTIFACT),
                status(Vital::PerfusionIndex),
            ]
        );
    }

    #[test]
    fn every_status_bit_maps_as_the_module_table_says() {
        let whole = |q: Quality| {
            vec![Decoded::Status(Status {
                vital: None,
                quality: q,
                device_time: Some(Timestamp(1000)),
                offset: 9,
            })]
        };
        let values = |q: Quality| {
            vec![
                measurement(Vital::Spo2, 97.0, 1000, q),
                measurement(Vital::PulseRate, 72.0, 1000, q),
            ]
        };
        let ms_cases = [
            (M::MEASUREMENT_ONGOING, whole(Quality::SEARCHING)),
            (M::EARLY_ESTIMATED_DATA, whole(Quality::SEARCHING)),
            (M::VALIDATED_DATA, values(Quality::NONE)),
            (M::FULLY_QUALIFIED_DATA, values(Quality::NONE)),
            (M::DATA_FROM_MEASUREMENT_STORAGE, values(Quality::STALE)),
            (M::CALIBRATION_ONGOING, whole(Quality::SEARCHING)),
            (M::MEASUREMENT_UNAVAILABLE, whole(Quality::NONE)),
            (M::QUESTIONABLE_MEASUREMENT, values(Quality::ARTIFACT)),
            (M::INVALID_MEASUREMENT, whole(Quality::ARTIFACT)),
        ];
        for (bit, want) in ms_cases {
            let mut m = bare_continuous();
            m.measurement_status = Some(bit);
            assert_eq!(continuous_events(&m), want, "{bit:?}");
        }
        let ds_cases = [
            (D::EXTENDED_DISPLAY_UPDATE_ONGOING, values(Quality::STALE)),
            (D::EQUIPMENT_MALFUNCTION, values(Quality::DEVICE_FAULT)),
            (D::SIGNAL_PROCESSING_IRREGULARITY, values(Quality::ARTIFACT)),
            (D::INADEQUATE_SIGNAL, values(Quality::LOW_SIGNAL)),
            (D::POOR_SIGNAL, values(Quality::LOW_SIGNAL)),
            (D::LOW_PERFUSION, values(Quality::LOW_PERFUSION)),
            (D::ERRATIC_SIGNAL, values(Quality::ARTIFACT)),
            (D::NONPULSATILE_SIGNAL, values(Quality::LOW_SIGNAL)),
            (D::QUESTIONABLE_PULSE, values(Quality::ARTIFACT)),
            (D::SIGNAL_ANALYSIS_ONGOING, whole(Quality::SEARCHING)),
            (D::SENSOR_INTERFERENCE, values(Quality::ARTIFACT)),
            (D::SENSOR_UNCONNECTED_TO_USER, whole(Quality::SENSOR_OFF)),
            (D::UNKNOWN_SENSOR_CONNECTED, values(Quality::DEVICE_FAULT)),
            (D::SENSOR_DISPLACED, values(Quality::ARTIFACT)),
            (D::SENSOR_MALFUNCTIONING, values(Quality::DEVICE_FAULT)),
            (D::SENSOR_DISCONNECTED, whole(Quality::SENSOR_OFF)),
        ];
        for (bit, want) in ds_cases {
            let mut m = bare_continuous();
            m.device_status = Some(bit);
            assert_eq!(continuous_events(&m), want, "{bit:?}");
        }
        // A sensor off with a fault: one status carrying both.
        let mut m = bare_continuous();
        m.device_status = Some(D::SENSOR_DISCONNECTED | D::SENSOR_MALFUNCTIONING);
        assert_eq!(
            continuous_events(&m),
            whole(Quality::SENSOR_OFF | Quality::DEVICE_FAULT)
        );
        // Stored spot-check data with its own timestamp is not stale.
        let mut m = bare_spot();
        m.timestamp = Some(DATE_TIME);
        m.measurement_status = Some(M::DATA_FROM_MEASUREMENT_STORAGE);
        assert_eq!(
            spot_events(&m, None)[0],
            measurement(Vital::Spo2, 97.0, TIME_MS, Quality::NONE)
        );
    }

    #[test]
    fn demonstration_and_test_data_are_refused_as_not_patient_data() {
        for (bit, what) in [
            (M::DATA_FOR_DEMONSTRATION, "data for demonstration"),
            (M::DATA_FOR_TESTING, "data for testing"),
        ] {
            let mut m = bare_spot();
            m.measurement_status = Some(bit | M::VALIDATED_DATA);
            let events = spot_events(&m, None);
            assert_eq!(events.len(), 1, "{events:?}");
            let Decoded::Error(e) = &events[0] else {
                panic!("{events:?}")
            };
            assert_eq!(e.reason, Reject::Unsupported);
            assert_eq!((e.offset, e.len), (9, 7));
            assert!(e.detail.contains(what), "{}", e.detail);
            // Even with the sensor off: nothing but the error.
            let mut m = bare_continuous();
            m.measurement_status = Some(bit);
            m.device_status = Some(D::SENSOR_DISCONNECTED);
            let events = continuous_events(&m);
            assert!(matches!(events[..], [Decoded::Error(_)]), "{events:?}");
        }
    }

    #[test]
    fn random_bytes_never_panic_and_whatever_decodes_re_encodes_and_reports_finite_values() {
        let mut rng = Rng::new(0x2A5E_2A5F);
        let mut decoded = [0usize; 3];
        let check = |e: Decoded| {
            if let Decoded::Measurement(m) = e {
                assert!(m.value.is_finite(), "{m:?}");
            }
        };
        for i in 0..30_000 {
            let mut bytes = rng.bytes(41);
            if i % 2 == 1 && !bytes.is_empty() {
                // Valid flags, reserved status bits mostly clear, to reach
                // past the first checks often.
                bytes[0] &= 0x1F;
                for b in bytes.iter_mut().skip(1) {
                    if rng.below(3) == 0 {
                        *b &= 0xE0;
                    }
                }
                bytes.truncate(5 + rng.below(16));
                if bytes[0] & SPOT_TIMESTAMP != 0 && bytes.len() >= 12 && i % 4 == 1 {
                    bytes[5..12].copy_from_slice(&TIME);
                }
                if i % 8 == 3 && bytes.len() >= 2 {
                    // Shaped like PLX Features.
                    bytes[1] = 0;
                    bytes.truncate([2, 4, 5, 7][rng.below(4)]);
                }
            }
            if let Ok(m) = PlxSpotCheck::decode(&bytes) {
                decoded[0] += 1;
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                assert_eq!(out, bytes);
                m.report(None, 0, &mut |e| check(e));
            }
            if let Ok(m) = PlxContinuous::decode(&bytes) {
                decoded[1] += 1;
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                assert_eq!(out, bytes);
                m.report(None, 0, &mut |e| check(e));
            }
            if let Ok(m) = PlxFeatures::decode(&bytes) {
                decoded[2] += 1;
                let mut out = Vec::new();
                m.encode(&mut out).unwrap();
                assert_eq!(out, bytes);
            }
        }
        assert!(decoded.iter().all(|&n| n > 50), "decoded {decoded:?}");
    }
}
