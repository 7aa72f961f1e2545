//! Bluetooth LE health profiles: the Bluetooth SIG's standard GATT
//! characteristic values, decoded exactly to their specifications, each
//! with its encoder beside it (for the simulator).
//!
//! A characteristic value is one self-contained message: a flags field
//! saying which optional fields follow, then the fields in the order the
//! specification lists them, little-endian. Medical quantities are
//! IEEE 11073-20601 SFLOAT or FLOAT ([`float`]), whose special values
//! (NaN, NRes, ±INFINITY, reserved) are "no valid reading", never a
//! number.
//!
//! Every decoder is pure (bytes in, a typed value out) and total: any
//! input gives a value or a [`GattError`], never a panic.

pub mod address;
pub mod blood_pressure;
pub mod characteristic;
pub mod date_time;
pub mod float;
pub mod heart_rate;
pub mod plx;
pub mod relay;
pub mod thermometer;

pub use address::Address;
pub use characteristic::{Characteristic, Delivery, Service};
pub use relay::RelayedValue;

use std::fmt;

/// Why a characteristic value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GattError {
    /// The value ended before a field its flags announce.
    Truncated {
        /// The field that was cut off.
        field: &'static str,
        /// Bytes the value needed up to the end of that field.
        need: usize,
        /// Bytes it had.
        have: usize,
    },
    /// Bytes left over after every field the flags announce.
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// A flags bit, or a field value, the specification reserves.
    Reserved {
        /// Which field or flag.
        field: &'static str,
        /// The value found.
        value: u32,
    },
    /// A field outside what the specification allows (a month of 13, a
    /// percentage of 200).
    OutOfRange {
        /// Which field.
        field: &'static str,
        /// Why.
        detail: String,
    },
}

impl fmt::Display for GattError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GattError::Truncated { field, need, have } => write!(
                f,
                "truncated: {field} needs {need} bytes, the value has {have}"
            ),
            GattError::TrailingBytes { extra } => {
                write!(f, "{extra} bytes after the last field the flags announce")
            }
            GattError::Reserved { field, value } => {
                write!(f, "{field}: reserved value {value:#x}")
            }
            GattError::OutOfRange { field, detail } => write!(f, "{field}: {detail}"),
        }
    }
}

impl std::error::Error for GattError {}

/// A little-endian reader over a characteristic value that names the field
/// it is reading when the value runs out.
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    /// Read `bytes` from the start.
    pub fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes, at: 0 }
    }

    /// The next `n` bytes, as the field `field`.
    pub fn take(&mut self, field: &'static str, n: usize) -> Result<&'a [u8], GattError> {
        let end = self.at.saturating_add(n);
        let slice = self.bytes.get(self.at..end).ok_or(GattError::Truncated {
            field,
            need: end,
            have: self.bytes.len(),
        })?;
        self.at = end;
        Ok(slice)
    }

    /// A u8 field.
    pub fn u8(&mut self, field: &'static str) -> Result<u8, GattError> {
        Ok(self.take(field, 1)?[0])
    }

    /// A little-endian u16 field.
    pub fn u16(&mut self, field: &'static str) -> Result<u16, GattError> {
        let b = self.take(field, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// A little-endian 24-bit field.
    pub fn u24(&mut self, field: &'static str) -> Result<u32, GattError> {
        let b = self.take(field, 3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// A little-endian u32 field.
    pub fn u32(&mut self, field: &'static str) -> Result<u32, GattError> {
        let b = self.take(field, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// Succeeds only when every byte was read.
    pub fn finish(self) -> Result<(), GattError> {
        match self.remaining() {
            0 => Ok(()),
            extra => Err(GattError::TrailingBytes { extra }),
        }
    }
}
