//! Compact plaintext encoding of readings.
//!
//! A record's readings are packed here before they are encrypted: a
//! per-record dictionary of series (device, patient, vital), then each
//! reading as a flags byte and a few varints. A 1 Hz pulse oximeter stream
//! (SpO2, pulse rate, perfusion index) costs 5 bytes a reading.
//!
//! The byte layout is a contract, specified in `docs/FORMAT.md` ("Packed
//! readings"); in short, all integers being LEB128 varints (canonical) and
//! signed ones zigzag-mapped first:
//!
//! ```text
//! record  = version(0x01) strings series readings
//! strings = count { len utf8-bytes }            distinct, non-empty, first-use order
//! series  = count { device-idx patient-idx vital-code(u8) }
//! readings= count { flags series-idx gateway-time [device-time] [quality] value }
//! flags   = bit 0-3 value code (0..=9 decimal scale, 10 raw f64)
//!           bit 4 device time present, bit 5 quality present,
//!           bit 6 times absolute, bit 7 reserved (0)
//! ```
//!
//! Every list of readings has exactly one encoding and [`unpack`] rejects
//! any other byte string, so `pack(unpack(b)) == b` whenever `unpack`
//! succeeds: a verifier can re-encode and compare.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// The version byte that starts every packed record.
pub const VERSION: u8 = 1;

/// Flags: the low nibble is the value code (a decimal scale or [`RAW`]).
const VALUE_MASK: u8 = 0x0F;
/// Value code for a raw little-endian IEEE-754 binary64.
const RAW: u8 = 10;
/// Flags: a device time follows the gateway time.
const DEVICE_TIME: u8 = 0x10;
/// Flags: non-zero quality bits follow.
const QUALITY: u8 = 0x20;
/// Flags: times are written absolute, because a relative form does not fit
/// an i64 (never for real clocks, but `pack` must take any reading).
const ABSOLUTE_TIMES: u8 = 0x40;
/// Flags: reserved for a later version.
const RESERVED: u8 = 0x80;

/// Decimal scales: `POW10[k]` is 10^k, exact in an f64.
const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest decimal mantissa magnitude, 2^53: every integer up to it is an
/// exact f64, so the decoder's conversion is exact too.
const MAX_MANTISSA: i64 = 1 << 53;

/// Why a byte string is not a packed record. `offset` is the position in the
/// input of the first byte of the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackError {
    /// The input ends inside a field.
    #[error("byte {offset}: input ends inside the {what}")]
    Truncated {
        /// Start of the unfinished field.
        offset: usize,
        /// Which field.
        what: &'static str,
    },
    /// The version byte is not [`VERSION`].
    #[error("byte {offset}: unknown version {version} (this reader knows {VERSION})")]
    UnknownVersion {
        /// Always 0.
        offset: usize,
        /// The version found.
        version: u8,
    },
    /// A varint has a redundant trailing zero group (not its shortest form).
    #[error("byte {offset}: the {what} varint is not in its shortest form")]
    NonCanonicalVarint {
        /// Start of the varint.
        offset: usize,
        /// Which field.
        what: &'static str,
    },
    /// A varint is longer than 10 bytes or its value exceeds 64 bits.
    #[error("byte {offset}: the {what} varint exceeds 64 bits")]
    VarintOverflow {
        /// Start of the varint.
        offset: usize,
        /// Which field.
        what: &'static str,
    },
    /// A count is more than the rest of the input could hold, rejected
    /// before anything is allocated for it.
    #[error("byte {offset}: {what} {count} cannot fit in the {remaining} bytes that follow")]
    CountTooLarge {
        /// Start of the count.
        offset: usize,
        /// Which count.
        what: &'static str,
        /// The count found.
        count: u64,
        /// Bytes after the count.
        remaining: usize,
    },
    /// A string of the dictionary is empty.
    #[error("byte {offset}: empty string")]
    EmptyString {
        /// Start of the string (its length).
        offset: usize,
    },
    /// A string of the dictionary is not UTF-8.
    #[error("byte {offset}: string is not valid UTF-8")]
    InvalidUtf8 {
        /// Start of the string (its length).
        offset: usize,
    },
    /// A string of the dictionary repeats an earlier one.
    #[error("byte {offset}: string repeats an earlier one")]
    DuplicateString {
        /// Start of the string (its length).
        offset: usize,
    },
    /// A vital code outside the table (0 and 11..=255 are reserved).
    #[error("byte {offset}: unknown vital code {code}")]
    UnknownVital {
        /// Position of the code.
        offset: usize,
        /// The code found.
        code: u8,
    },
    /// A series of the dictionary repeats an earlier one.
    #[error("byte {offset}: series repeats an earlier one")]
    DuplicateSeries {
        /// Start of the series entry.
        offset: usize,
    },
    /// A string or series index past the end of its table.
    #[error("byte {offset}: {what} {index} is out of range (the table has {count})")]
    IndexOutOfRange {
        /// Start of the index.
        offset: usize,
        /// Which index.
        what: &'static str,
        /// The index found.
        index: u64,
        /// Entries in the table.
        count: usize,
    },
    /// A string or series index that skips ahead: tables are in order of
    /// first use, so an index is an earlier one or the next unused one.
    #[error("byte {offset}: {what} {index} is neither a used one nor the next unused one ({next})")]
    NotFirstUseOrder {
        /// Start of the index.
        offset: usize,
        /// Which index.
        what: &'static str,
        /// The index found.
        index: usize,
        /// The next unused index.
        next: usize,
    },
    /// A flags byte with bit 7 set or a value code of 11..=15.
    #[error("byte {offset}: flags {flags:#04x} use reserved bits or value codes")]
    ReservedFlags {
        /// Position of the flags byte.
        offset: usize,
        /// The flags found.
        flags: u8,
    },
    /// A relative time whose sum overflows an i64.
    #[error("byte {offset}: the {what} overflows i64")]
    TimestampOverflow {
        /// Start of the time field.
        offset: usize,
        /// Which time.
        what: &'static str,
    },
    /// Quality bits beyond 16 bits.
    #[error("byte {offset}: quality {value} does not fit 16 bits")]
    QualityOutOfRange {
        /// Start of the quality field.
        offset: usize,
        /// The value found.
        value: u64,
    },
    /// A decimal mantissa (after applying its delta) beyond ±2^53.
    #[error("byte {offset}: decimal mantissa is beyond ±2^53")]
    MantissaOutOfRange {
        /// Start of the mantissa field.
        offset: usize,
    },
    /// Well-formed, but not the one encoding `pack` writes: strings or series
    /// never used, a decimal that is not the value's decimal form, a raw
    /// value that has one, quality flagged but zero, times flagged absolute
    /// though relative ones fit.
    #[error("byte {offset}: {what} is not in the one form the encoder writes")]
    NonCanonical {
        /// Start of the field at fault.
        offset: usize,
        /// What is wrong.
        what: &'static str,
    },
    /// Bytes after the last reading.
    #[error("byte {offset}: {count} bytes follow the last reading")]
    TrailingBytes {
        /// Position of the first extra byte.
        offset: usize,
        /// How many extra bytes.
        count: usize,
    },
}

/// The fixed vital code table (part of the format: never renumber).
pub const fn vital_code(vital: Vital) -> u8 {
    match vital {
        Vital::HeartRate => 1,
        Vital::PulseRate => 2,
        Vital::Spo2 => 3,
        Vital::RespiratoryRate => 4,
        Vital::BodyTemperature => 5,
        Vital::SystolicBp => 6,
        Vital::DiastolicBp => 7,
        Vital::MeanArterialPressure => 8,
        Vital::PerfusionIndex => 9,
        Vital::RrInterval => 10,
    }
}

/// The vital of a code; `None` for the reserved codes 0 and 11..=255.
pub const fn vital_from_code(code: u8) -> Option<Vital> {
    Some(match code {
        1 => Vital::HeartRate,
        2 => Vital::PulseRate,
        3 => Vital::Spo2,
        4 => Vital::RespiratoryRate,
        5 => Vital::BodyTemperature,
        6 => Vital::SystolicBp,
        7 => Vital::DiastolicBp,
        8 => Vital::MeanArterialPressure,
        9 => Vital::PerfusionIndex,
        10 => Vital::RrInterval,
        _ => return None,
    })
}

/// The decimal form of `v`: the smallest scale `k` in 0..=9 with mantissa
/// `m = round(v * 10^k)` (ties away from zero, `|v * 10^k| <= 2^53`) such
/// that `m as f64 / 10^k` has the same bits as `v`. The decoder computes the
/// value with that same division, and calls this to check canonicality.
fn decimal(v: f64) -> Option<(u8, i64)> {
    for (k, p) in (0u8..).zip(POW10) {
        let x = v * p;
        // |x| only grows with k, so stop at once (NaN and infinities too).
        if x.is_nan() || x.abs() > MAX_MANTISSA as f64 {
            break;
        }
        let m = x.round() as i64;
        if (m as f64 / p).to_bits() == v.to_bits() {
            return Some((k, m));
        }
    }
    None
}

/// Zigzag: 0, -1, 1, -2, ... to 0, 1, 2, 3, ... so small magnitudes of
/// either sign make short varints.
const fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

/// Inverse of [`zigzag`].
const fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

/// Append `v` as an LEB128 varint (shortest form).
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A `usize` as a varint (lossless on every supported target).
fn put_len(out: &mut Vec<u8>, n: usize) {
    put_varint(out, n as u64);
}

/// Per-series running state, the same in encoder and decoder.
#[derive(Clone, Copy, Default)]
struct SeriesState {
    /// Gateway time of the series' previous reading.
    last_time: Option<i64>,
    /// Scale of the series' previous value, `None` if raw or none yet.
    last_scale: Option<u8>,
    /// Mantissa of the series' previous value when `last_scale` is some.
    last_mantissa: i64,
}

/// The index of `s` in the string table, appending it on first use.
fn intern<'a>(s: &'a str, ids: &mut HashMap<&'a str, usize>, strings: &mut Vec<&'a str>) -> usize {
    *ids.entry(s).or_insert_with(|| {
        strings.push(s);
        strings.len() - 1
    })
}

/// Append the packed form of `readings` to `out`.
///
/// Infallible: every reading has an encoding (odd values go raw, times
/// whose differences overflow go absolute). Allocates per record (the
/// dictionary and one series index per reading), never per reading.
pub fn pack(readings: &[Reading], out: &mut Vec<u8>) {
    // First pass: the dictionary, in first-use order, and each reading's
    // series, since the dictionary precedes the readings.
    let mut string_ids: HashMap<&str, usize> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut series_ids: HashMap<(&str, &str, Vital), usize> = HashMap::new();
    let mut series: Vec<(usize, usize, Vital)> = Vec::new();
    let mut series_of: Vec<usize> = Vec::with_capacity(readings.len());
    for r in readings {
        let key = (&*r.device, &*r.patient, r.vital);
        let id = match series_ids.get(&key) {
            Some(&id) => id,
            None => {
                let d = intern(key.0, &mut string_ids, &mut strings);
                let p = intern(key.1, &mut string_ids, &mut strings);
                series.push((d, p, r.vital));
                series_ids.insert(key, series.len() - 1);
                series.len() - 1
            }
        };
        series_of.push(id);
    }

    // Header and dictionary.
    let text: usize = strings.iter().map(|s| s.len() + 1).sum();
    out.reserve(4 + text + 3 * series.len() + 6 * readings.len());
    out.push(VERSION);
    put_len(out, strings.len());
    for s in &strings {
        put_len(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    put_len(out, series.len());
    for &(d, p, vital) in &series {
        put_len(out, d);
        put_len(out, p);
        out.push(vital_code(vital));
    }

    // Readings.
    put_len(out, readings.len());
    let mut state = vec![SeriesState::default(); series.len()];
    let mut prev_time = 0i64;
    for (r, &id) in readings.iter().zip(&series_of) {
        // Cannot panic: every id indexes `series`, and `state` is as long.
        let st = &mut state[id];
        let t = r.gateway_time.0;
        let device = r.device_time.map(|d| d.0);
        let reference = st.last_time.unwrap_or(prev_time);
        let gateway_delta = t.checked_sub(reference);
        let device_offset = device.map(|d| d.checked_sub(t));
        let relative = match (gateway_delta, device_offset) {
            (Some(g), None) => Some((g, None)),
            (Some(g), Some(Some(o))) => Some((g, Some(o))),
            _ => None,
        };
        let value = decimal(r.value);
        let quality = r.quality.bits();

        let mut flags = match value {
            Some((k, _)) => k,
            None => RAW,
        };
        if device.is_some() {
            flags |= DEVICE_TIME;
        }
        if quality != 0 {
            flags |= QUALITY;
        }
        if relative.is_none() {
            flags |= ABSOLUTE_TIMES;
        }
        out.push(flags);
        put_len(out, id);
        match relative {
            Some((g, o)) => {
                put_varint(out, zigzag(g));
                if let Some(o) = o {
                    put_varint(out, zigzag(o));
                }
            }
            None => {
                put_varint(out, zigzag(t));
                if let Some(d) = device {
                    put_varint(out, zigzag(d));
                }
            }
        }
        if quality != 0 {
            put_varint(out, u64::from(quality));
        }
        match value {
            Some((k, m)) => {
                // Both within ±2^53, so the delta cannot overflow.
                let field = if st.last_scale == Some(k) {
                    m - st.last_mantissa
                } else {
                    m
                };
                put_varint(out, zigzag(field));
                st.last_scale = Some(k);
                st.last_mantissa = m;
            }
            None => {
                out.extend_from_slice(&r.value.to_bits().to_le_bytes());
                st.last_scale = None;
            }
        }
        st.last_time = Some(t);
        prev_time = t;
    }
}

/// A cursor over the input that reports errors at field starts.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// Bytes not yet read.
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// One byte.
    fn u8(&mut self, what: &'static str) -> Result<u8, PackError> {
        let b = *self.bytes.get(self.pos).ok_or(PackError::Truncated {
            offset: self.pos,
            what,
        })?;
        self.pos += 1;
        Ok(b)
    }

    /// The next `len` bytes.
    fn take(&mut self, len: u64, what: &'static str) -> Result<&'a [u8], PackError> {
        let truncated = PackError::Truncated {
            offset: self.pos,
            what,
        };
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| self.pos.checked_add(len))
            .ok_or(truncated.clone())?;
        let slice = self.bytes.get(self.pos..end).ok_or(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    /// A canonical LEB128 varint of at most 64 bits.
    fn varint(&mut self, what: &'static str) -> Result<u64, PackError> {
        let offset = self.pos;
        let mut value = 0u64;
        for i in 0..10 {
            let b = self
                .u8(what)
                .map_err(|_| PackError::Truncated { offset, what })?;
            // The tenth byte holds only bit 63: 0 or 1, and no continuation.
            if i == 9 && b > 1 {
                return Err(PackError::VarintOverflow { offset, what });
            }
            value |= u64::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(PackError::NonCanonicalVarint { offset, what });
                }
                return Ok(value);
            }
        }
        Err(PackError::VarintOverflow { offset, what })
    }

    /// A count of items each at least `min_size` bytes long, checked
    /// against the rest of the input before anything is allocated for it.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, PackError> {
        let offset = self.pos;
        let count = self.varint(what)?;
        let remaining = self.remaining();
        match usize::try_from(count) {
            Ok(n) if n <= remaining / min_size => Ok(n),
            _ => Err(PackError::CountTooLarge {
                offset,
                what,
                count,
                remaining,
            }),
        }
    }

    /// An index into a table of `count` entries that must be an earlier
    /// entry or the next unused one (`*next`), which it then claims.
    fn first_use_index(
        &mut self,
        what: &'static str,
        count: usize,
        next: &mut usize,
    ) -> Result<usize, PackError> {
        let offset = self.pos;
        let index = self.varint(what)?;
        let i = match usize::try_from(index) {
            Ok(i) if i < count => i,
            _ => {
                return Err(PackError::IndexOutOfRange {
                    offset,
                    what,
                    index,
                    count,
                });
            }
        };
        if i > *next {
            return Err(PackError::NotFirstUseOrder {
                offset,
                what,
                index: i,
                next: *next,
            });
        }
        if i == *next {
            *next += 1;
        }
        Ok(i)
    }
}

/// A decoded series with its running state.
struct Series {
    device: Arc<str>,
    patient: Arc<str>,
    vital: Vital,
    state: SeriesState,
}

/// Decode a packed record, strictly: anything `pack` would not have written
/// is an error naming the byte offset and what is wrong.
///
/// Allocations are bounded by a small multiple of the input length.
pub fn unpack(bytes: &[u8]) -> Result<Vec<Reading>, PackError> {
    let mut cur = Cursor { bytes, pos: 0 };
    let version = cur.u8("version")?;
    if version != VERSION {
        return Err(PackError::UnknownVersion { offset: 0, version });
    }
    let strings = read_strings(&mut cur)?;
    let mut series = read_series(&mut cur, &strings)?;
    let readings = read_readings(&mut cur, &mut series)?;
    if cur.remaining() != 0 {
        return Err(PackError::TrailingBytes {
            offset: cur.pos,
            count: cur.remaining(),
        });
    }
    Ok(readings)
}

/// The string table: distinct, non-empty UTF-8 strings.
fn read_strings(cur: &mut Cursor<'_>) -> Result<Vec<Arc<str>>, PackError> {
    // A string takes at least a length byte and one byte of text.
    let count = cur.count("string count", 2)?;
    let mut strings = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    for _ in 0..count {
        let offset = cur.pos;
        let len = cur.varint("string length")?;
        if len == 0 {
            return Err(PackError::EmptyString { offset });
        }
        let raw = cur.take(len, "string")?;
        let s = std::str::from_utf8(raw).map_err(|_| PackError::InvalidUtf8 { offset })?;
        if !seen.insert(s) {
            return Err(PackError::DuplicateString { offset });
        }
        strings.push(Arc::from(s));
    }
    Ok(strings)
}

/// The series table: distinct (device, patient, vital), strings in first-use
/// order, every string used.
fn read_series(cur: &mut Cursor<'_>, strings: &[Arc<str>]) -> Result<Vec<Series>, PackError> {
    // Two index bytes and a vital code at least.
    let count = cur.count("series count", 3)?;
    let mut series = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let mut next_string = 0;
    for _ in 0..count {
        let offset = cur.pos;
        let d = cur.first_use_index("device string index", strings.len(), &mut next_string)?;
        let p = cur.first_use_index("patient string index", strings.len(), &mut next_string)?;
        let code_offset = cur.pos;
        let code = cur.u8("vital code")?;
        let vital = vital_from_code(code).ok_or(PackError::UnknownVital {
            offset: code_offset,
            code,
        })?;
        if !seen.insert((d, p, code)) {
            return Err(PackError::DuplicateSeries { offset });
        }
        let (Some(device), Some(patient)) = (strings.get(d), strings.get(p)) else {
            // Unreachable: `first_use_index` checked both against the table.
            return Err(PackError::IndexOutOfRange {
                offset,
                what: "string index",
                index: d.max(p) as u64,
                count: strings.len(),
            });
        };
        series.push(Series {
            device: Arc::clone(device),
            patient: Arc::clone(patient),
            vital,
            state: SeriesState::default(),
        });
    }
    if next_string != strings.len() {
        return Err(PackError::NonCanonical {
            offset: cur.pos,
            what: "string table (a string no series uses)",
        });
    }
    Ok(series)
}

/// The readings, in order.
fn read_readings(cur: &mut Cursor<'_>, series: &mut [Series]) -> Result<Vec<Reading>, PackError> {
    // Flags, series index, gateway time and value take a byte each at least.
    let count = cur.count("reading count", 4)?;
    let mut readings = Vec::with_capacity(count);
    let mut next_series = 0;
    let mut prev_time = 0i64;
    for _ in 0..count {
        let flags_offset = cur.pos;
        let flags = cur.u8("flags")?;
        let code = flags & VALUE_MASK;
        if flags & RESERVED != 0 || code > RAW {
            return Err(PackError::ReservedFlags {
                offset: flags_offset,
                flags,
            });
        }
        let series_count = series.len();
        let id = cur.first_use_index("series index", series_count, &mut next_series)?;
        let Some(s) = series.get_mut(id) else {
            // Unreachable: `first_use_index` checked it against the table.
            return Err(PackError::IndexOutOfRange {
                offset: flags_offset + 1,
                what: "series index",
                index: id as u64,
                count: series_count,
            });
        };
        let st = &mut s.state;

        let time_offset = cur.pos;
        let time_field = unzigzag(cur.varint("gateway time")?);
        let device_offset = cur.pos;
        let device_field = if flags & DEVICE_TIME != 0 {
            Some(unzigzag(cur.varint("device time")?))
        } else {
            None
        };
        let reference = st.last_time.unwrap_or(prev_time);
        let (time, device_time) = if flags & ABSOLUTE_TIMES != 0 {
            let (t, d) = (time_field, device_field);
            let relative_fits =
                t.checked_sub(reference).is_some() && d.is_none_or(|d| d.checked_sub(t).is_some());
            if relative_fits {
                return Err(PackError::NonCanonical {
                    offset: flags_offset,
                    what: "absolute-times flag (relative times fit)",
                });
            }
            (t, d)
        } else {
            let t = reference
                .checked_add(time_field)
                .ok_or(PackError::TimestampOverflow {
                    offset: time_offset,
                    what: "gateway time",
                })?;
            let d = match device_field {
                Some(o) => Some(t.checked_add(o).ok_or(PackError::TimestampOverflow {
                    offset: device_offset,
                    what: "device time",
                })?),
                None => None,
            };
            (t, d)
        };

        let quality = if flags & QUALITY != 0 {
            let offset = cur.pos;
            let q = cur.varint("quality")?;
            if q == 0 {
                return Err(PackError::NonCanonical {
                    offset,
                    what: "quality (flagged but zero)",
                });
            }
            u16::try_from(q).map_err(|_| PackError::QualityOutOfRange { offset, value: q })?
        } else {
            0
        };

        let value_offset = cur.pos;
        let value = if code == RAW {
            let le = <[u8; 8]>::try_from(cur.take(8, "raw value")?).map_err(|_| {
                PackError::Truncated {
                    offset: value_offset,
                    what: "raw value",
                }
            })?;
            let v = f64::from_bits(u64::from_le_bytes(le));
            if decimal(v).is_some() {
                return Err(PackError::NonCanonical {
                    offset: value_offset,
                    what: "raw value (it has a decimal form)",
                });
            }
            st.last_scale = None;
            v
        } else {
            let field = unzigzag(cur.varint("decimal mantissa")?);
            let out_of_range = PackError::MantissaOutOfRange {
                offset: value_offset,
            };
            let m = if st.last_scale == Some(code) {
                st.last_mantissa
                    .checked_add(field)
                    .ok_or(out_of_range.clone())?
            } else {
                field
            };
            if !(-MAX_MANTISSA..=MAX_MANTISSA).contains(&m) {
                return Err(out_of_range);
            }
            // `code` is 0..=9 here; a NaN would fail the check below anyway.
            let p = POW10.get(usize::from(code)).copied().unwrap_or(f64::NAN);
            let v = m as f64 / p;
            if decimal(v) != Some((code, m)) {
                return Err(PackError::NonCanonical {
                    offset: value_offset,
                    what: "decimal value (not the shortest scale or its mantissa)",
                });
            }
            st.last_scale = Some(code);
            st.last_mantissa = m;
            v
        };

        st.last_time = Some(time);
        prev_time = time;
        readings.push(Reading {
            device: Arc::clone(&s.device),
            patient: Arc::clone(&s.patient),
            vital: s.vital,
            value,
            device_time: device_time.map(Timestamp),
            gateway_time: Timestamp(time),
            quality: Quality::from_bits(quality),
        });
    }
    if next_series != series.len() {
        return Err(PackError::NonCanonical {
            offset: cur.pos,
            what: "series table (a series no reading uses)",
        });
    }
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000;

    fn reading(
        device: &str,
        patient: &str,
        vital: Vital,
        value: f64,
        gateway: i64,
        device_time: Option<i64>,
        quality: u16,
    ) -> Reading {
        Reading {
            device: device.into(),
            patient: patient.into(),
            vital,
            value,
            device_time: device_time.map(Timestamp),
            gateway_time: Timestamp(gateway),
            quality: Quality::from_bits(quality),
        }
    }

    fn packed(readings: &[Reading]) -> Vec<u8> {
        let mut out = Vec::new();
        pack(readings, &mut out);
        out
    }

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Equal field by field, values bit for bit (NaN payloads and -0.0 too).
    fn assert_same(a: &[Reading], b: &[Reading]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert_eq!(x.device, y.device, "reading {i}");
            assert_eq!(x.patient, y.patient, "reading {i}");
            assert_eq!(x.vital, y.vital, "reading {i}");
            assert_eq!(x.value.to_bits(), y.value.to_bits(), "reading {i}");
            assert_eq!(x.device_time, y.device_time, "reading {i}");
            assert_eq!(x.gateway_time, y.gateway_time, "reading {i}");
            assert_eq!(x.quality, y.quality, "reading {i}");
        }
    }

    fn round_trip(readings: &[Reading]) -> Vec<u8> {
        let bytes = packed(readings);
        let back = unpack(&bytes).unwrap();
        assert_same(readings, &back);
        assert_eq!(packed(&back), bytes, "re-encoding differs");
        bytes
    }

    /// xorshift64: a tiny seeded generator, so runs are reproducible.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<X: Copy>(&mut self, xs: &[X]) -> X {
            xs[self.below(xs.len() as u64) as usize]
        }
    }

    fn err(bytes: &[u8]) -> PackError {
        unpack(bytes).unwrap_err()
    }

    /// Header of a record with strings "a", "b" and the one series (a, b,
    /// Spo2); the readings part (count first) follows.
    fn one_series(readings_part: &[u8]) -> Vec<u8> {
        let mut b = hex("01 02 01 61 01 62 01 00 01 03");
        b.extend_from_slice(readings_part);
        b
    }

    /// The format test vector of `docs/FORMAT.md`.
    fn vector_readings() -> Vec<Reading> {
        use Vital::*;
        vec![
            reading("ox-1", "p-7", Spo2, 97.0, T, None, 0),
            reading("ox-1", "p-7", PulseRate, 72.0, T, None, 0),
            reading("ox-1", "p-7", PerfusionIndex, 3.25, T, None, 8),
            reading("ox-1", "p-7", Spo2, 96.0, T + 1000, Some(T + 750), 0),
            reading("th-2", "p-7", BodyTemperature, 36.6, T + 1500, None, 0),
            reading("ox-1", "p-7", PerfusionIndex, 0.1 + 0.2, T + 1000, None, 0),
            reading("ox-1", "p-7", PerfusionIndex, 3.5, T + 2000, None, 0),
        ]
    }

    const VECTOR: &str = "01 03 04 6f 78 2d 31 03 70 2d 37 04 74 68 2d 32 \
        04 00 01 03 00 01 02 00 01 09 02 01 05 07 \
        00 00 80 a0 ab fe f9 62 c2 01 \
        00 01 00 90 01 \
        22 02 00 08 8a 05 \
        10 00 d0 0f f3 03 01 \
        01 03 e8 07 dc 05 \
        0a 02 d0 0f 34 33 33 33 33 33 d3 3f \
        01 02 d0 0f 46";

    #[test]
    fn vital_codes_are_pinned() {
        let expected = [
            (Vital::HeartRate, 1),
            (Vital::PulseRate, 2),
            (Vital::Spo2, 3),
            (Vital::RespiratoryRate, 4),
            (Vital::BodyTemperature, 5),
            (Vital::SystolicBp, 6),
            (Vital::DiastolicBp, 7),
            (Vital::MeanArterialPressure, 8),
            (Vital::PerfusionIndex, 9),
            (Vital::RrInterval, 10),
        ];
        assert_eq!(expected.len(), Vital::COUNT);
        for (vital, code) in expected {
            assert_eq!(vital_code(vital), code);
            assert_eq!(vital_from_code(code), Some(vital));
        }
        for code in [0u8].into_iter().chain(11..=255) {
            assert_eq!(vital_from_code(code), None);
        }
    }

    #[test]
    fn the_format_test_vector_has_exactly_these_bytes() {
        let readings = vector_readings();
        let bytes = packed(&readings);
        assert_eq!(bytes, hex(VECTOR));
        assert_eq!(bytes.len(), 81);
        let back = unpack(&bytes).unwrap();
        assert_same(&readings, &back);
        // Decoded readings share their strings.
        assert!(Arc::ptr_eq(&back[0].device, &back[1].device));
        assert!(Arc::ptr_eq(&back[0].patient, &back[4].patient));
    }

    #[test]
    fn an_empty_record_is_four_bytes() {
        assert_eq!(round_trip(&[]), [1, 0, 0, 0]);
    }

    #[test]
    fn pack_appends_to_what_is_already_in_the_output() {
        let mut out = vec![0xAA];
        pack(&vector_readings(), &mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(out[1..], hex(VECTOR));
    }

    #[test]
    fn decimal_picks_the_smallest_exact_scale_or_none() {
        assert_eq!(decimal(97.0), Some((0, 97)));
        assert_eq!(decimal(0.0), Some((0, 0)));
        assert_eq!(decimal(36.6), Some((1, 366)));
        assert_eq!(decimal(-3.25), Some((2, -325)));
        assert_eq!(decimal(123456.789), Some((3, 123_456_789)));
        assert_eq!(decimal(0.000_000_001), Some((9, 1)));
        assert_eq!(decimal(9_007_199_254_740_992.0), Some((0, MAX_MANTISSA)));
        assert_eq!(decimal(-9_007_199_254_740_992.0), Some((0, -MAX_MANTISSA)));
        for raw in [
            0.1 + 0.2,
            1e-12,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            18_014_398_509_481_984.0, // 2^54: mantissa too large
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ] {
            assert_eq!(decimal(raw), None, "{raw:e}");
        }
    }

    #[test]
    fn varints_and_zigzag_round_trip_at_every_length() {
        for bits in 0..=64u32 {
            let v = if bits == 0 {
                0
            } else {
                u64::MAX >> (64 - bits)
            };
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len(), (bits.max(1) as usize).div_ceil(7));
            let mut cur = Cursor {
                bytes: &out,
                pos: 0,
            };
            assert_eq!(cur.varint("test"), Ok(v));
            assert_eq!(cur.remaining(), 0);
        }
        for n in [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN] {
            assert_eq!(unzigzag(zigzag(n)), n);
        }
        assert_eq!(zigzag(-1), 1);
        assert_eq!(zigzag(1), 2);
        assert_eq!(zigzag(i64::MIN), u64::MAX);
    }

    #[test]
    fn seeded_random_readings_round_trip_bit_for_bit() {
        let specials = [
            97.0,
            36.6,
            0.1 + 0.2,
            -3.25,
            1e-12,
            123456.789,
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            5e-324,
            f64::NAN,
            -f64::NAN,
            f64::from_bits(0x7FF0_0000_0000_0001), // signalling NaN
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            1e15 + 0.3,
            0.000_000_001,
        ];
        let devices = [
            "ox-bedroom",
            "bp-1",
            "th-ear",
            "hr-strap",
            "ox-2",
            "ë-ünïcødé",
        ];
        let patients = ["p-0001", "p-0002", "p-0003"];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..300 {
            let n = rng.below(60) as usize;
            let mut t = T + rng.below(1 << 40) as i64 - (1 << 39);
            let mut readings = Vec::with_capacity(n);
            for _ in 0..n {
                let value = match rng.below(6) {
                    0 => rng.pick(&specials),
                    1 => rng.below(300) as f64,
                    2 => (rng.below(4000) as f64 - 1000.0) / 10.0,
                    3 => rng.below(100_000) as f64 / 1000.0,
                    4 => f64::from_bits(rng.next()),
                    _ => rng.next() as f64 / 1e7,
                };
                t = match rng.below(40) {
                    0 => i64::MAX,
                    1 => i64::MIN,
                    2 => rng.next() as i64,
                    _ => t.saturating_add(rng.below(2000) as i64 - 200),
                };
                let device_time = match rng.below(5) {
                    0 | 1 => None,
                    2 => Some(t.saturating_sub(rng.below(5000) as i64)), // before the gateway's
                    3 => Some(t.saturating_add(rng.below(5000) as i64)),
                    _ => {
                        let any = rng.next() as i64;
                        Some(rng.pick(&[i64::MIN, i64::MAX, 0, any]))
                    }
                };
                let quality = if rng.below(3) == 0 {
                    rng.next() as u16
                } else {
                    0
                };
                readings.push(reading(
                    rng.pick(&devices),
                    rng.pick(&patients),
                    rng.pick(&Vital::ALL),
                    value,
                    t,
                    device_time,
                    quality,
                ));
            }
            round_trip(&readings);
        }
    }

    #[test]
    fn times_whose_differences_overflow_are_written_absolute() {
        use Vital::Spo2;
        let readings = [
            reading("a", "b", Spo2, 1.0, i64::MAX, Some(i64::MIN), 0),
            reading("a", "b", Spo2, 1.0, i64::MIN, None, 0),
            reading("a", "b", Spo2, 1.0, i64::MIN, Some(i64::MAX), 0),
            reading("a", "b", Spo2, 1.0, i64::MIN + 5, Some(-1), 0),
        ];
        let bytes = round_trip(&readings);
        // The readings part: every flags byte but the last has bit 6.
        let mut want =
            hex("04 50 00 fe ff ff ff ff ff ff ff ff 01 ff ff ff ff ff ff ff ff ff 01 02");
        want.extend(hex("40 00 ff ff ff ff ff ff ff ff ff 01 00"));
        want.extend(hex(
            "50 00 ff ff ff ff ff ff ff ff ff 01 fe ff ff ff ff ff ff ff ff 01 00",
        ));
        want.extend(hex("10 00 0a f4 ff ff ff ff ff ff ff ff 01 00"));
        assert_eq!(bytes[10..], want);
    }

    #[test]
    fn a_minute_of_one_hertz_oximetry_packs_under_six_bytes_a_reading() {
        let mut rng = Rng(42);
        let (device, patient): (Arc<str>, Arc<str>) = ("ox-bedroom".into(), "p-0042".into());
        let (mut spo2, mut pulse, mut pi_tenths) = (97i64, 72i64, 34i64);
        let mut readings = Vec::new();
        let start = 1_715_000_000_000i64;
        for i in 0..60 {
            let t = Timestamp(start + i * 1000 + rng.below(40) as i64);
            spo2 = (spo2 + rng.pick(&[-1, 0, 0, 0, 1])).clamp(93, 99);
            pulse = (pulse + rng.below(5) as i64 - 2).clamp(55, 110);
            pi_tenths = (pi_tenths + rng.below(3) as i64 - 1).clamp(5, 80);
            for (vital, value) in [
                (Vital::Spo2, spo2 as f64),
                (Vital::PulseRate, pulse as f64),
                (Vital::PerfusionIndex, pi_tenths as f64 / 10.0),
            ] {
                readings.push(Reading {
                    device: Arc::clone(&device),
                    patient: Arc::clone(&patient),
                    vital,
                    value,
                    device_time: None,
                    gateway_time: t,
                    quality: Quality::NONE,
                });
            }
        }
        let bytes = round_trip(&readings);
        // Version, both tables and the reading count.
        let dictionary = {
            let mut cur = Cursor {
                bytes: &bytes,
                pos: 1,
            };
            let strings = read_strings(&mut cur).unwrap();
            read_series(&mut cur, &strings).unwrap();
            cur.varint("reading count").unwrap();
            cur.pos
        };
        let body = bytes.len() - dictionary;
        let per_reading = body as f64 / readings.len() as f64;
        println!(
            "{} readings: {} bytes, dictionary {dictionary}, {per_reading:.2} bytes/reading after it, {:.2} overall",
            readings.len(),
            bytes.len(),
            bytes.len() as f64 / readings.len() as f64
        );
        assert!(per_reading <= 6.0, "{per_reading}");
        assert!(bytes.len() as f64 / readings.len() as f64 <= 6.0);
    }

    #[test]
    fn every_proper_prefix_of_a_record_is_rejected() {
        let bytes = hex(VECTOR);
        for len in 0..bytes.len() {
            assert!(unpack(&bytes[..len]).is_err(), "prefix of {len} bytes");
        }
    }

    #[test]
    fn input_that_ends_inside_a_field_is_truncated() {
        use PackError::Truncated;
        assert_eq!(
            err(&[]),
            Truncated {
                offset: 0,
                what: "version"
            }
        );
        assert_eq!(
            err(&[1, 0x80]),
            Truncated {
                offset: 1,
                what: "string count"
            }
        );
        assert_eq!(
            err(&hex("01 01 05 61")),
            Truncated {
                offset: 3,
                what: "string"
            }
        );
        let mut raw = one_series(&hex("01 0a 00 00"));
        raw.extend([0; 7]);
        assert_eq!(
            err(&raw),
            Truncated {
                offset: 14,
                what: "raw value"
            }
        );
    }

    #[test]
    fn unknown_versions_are_rejected() {
        for v in [0, 2, 0xFF] {
            assert_eq!(
                err(&[v, 0, 0, 0]),
                PackError::UnknownVersion {
                    offset: 0,
                    version: v
                }
            );
        }
    }

    #[test]
    fn non_canonical_and_overlong_varints_are_rejected() {
        let what = "string count";
        assert_eq!(
            err(&[1, 0x80, 0x00, 0]),
            PackError::NonCanonicalVarint { offset: 1, what }
        );
        let mut eleven = vec![1];
        eleven.extend([0x80; 10]);
        eleven.push(0);
        assert_eq!(err(&eleven), PackError::VarintOverflow { offset: 1, what });
        let mut too_big = vec![1];
        too_big.extend([0xFF; 9]);
        too_big.push(0x02);
        assert_eq!(err(&too_big), PackError::VarintOverflow { offset: 1, what });
        let mut padded = vec![1];
        padded.extend([0x80; 9]);
        padded.push(0x00);
        assert_eq!(
            err(&padded),
            PackError::NonCanonicalVarint { offset: 1, what }
        );
        // Also inside a reading: a gateway time of 0 written in two bytes.
        assert_eq!(
            err(&one_series(&hex("01 00 00 80 00 00"))),
            PackError::NonCanonicalVarint {
                offset: 13,
                what: "gateway time"
            }
        );
    }

    #[test]
    fn counts_larger_than_the_input_could_hold_are_rejected_before_allocating() {
        assert_eq!(
            err(&hex("01 05 01 61")),
            PackError::CountTooLarge {
                offset: 1,
                what: "string count",
                count: 5,
                remaining: 2
            }
        );
        let mut huge = vec![1];
        huge.extend([0xFF; 9]);
        huge.push(0x01);
        assert_eq!(
            err(&huge),
            PackError::CountTooLarge {
                offset: 1,
                what: "string count",
                count: u64::MAX,
                remaining: 0
            }
        );
        assert_eq!(
            err(&hex("01 00 02 00 00 03")),
            PackError::CountTooLarge {
                offset: 2,
                what: "series count",
                count: 2,
                remaining: 3
            }
        );
        assert_eq!(
            err(&one_series(&hex("02 00 00 00 00 00"))),
            PackError::CountTooLarge {
                offset: 10,
                what: "reading count",
                count: 2,
                remaining: 5
            }
        );
    }

    #[test]
    fn bad_strings_are_rejected() {
        assert_eq!(
            err(&hex("01 01 00 00")),
            PackError::EmptyString { offset: 2 }
        );
        assert_eq!(
            err(&hex("01 01 01 ff 00 00")),
            PackError::InvalidUtf8 { offset: 2 }
        );
        assert_eq!(
            err(&hex("01 01 02 c3 28 00")),
            PackError::InvalidUtf8 { offset: 2 }
        );
        assert_eq!(
            err(&hex("01 02 01 61 01 61 01 00 01 03 01 00 00 00 00")),
            PackError::DuplicateString { offset: 4 }
        );
    }

    #[test]
    fn bad_series_tables_are_rejected() {
        let reading = "01 00 00 00 00";
        assert_eq!(
            err(&hex(&format!("01 02 01 61 01 62 01 00 02 03 {reading}"))),
            PackError::IndexOutOfRange {
                offset: 8,
                what: "patient string index",
                index: 2,
                count: 2
            }
        );
        assert_eq!(
            err(&hex(&format!("01 02 01 61 01 62 01 01 00 03 {reading}"))),
            PackError::NotFirstUseOrder {
                offset: 7,
                what: "device string index",
                index: 1,
                next: 0
            }
        );
        assert_eq!(
            err(&hex(&format!(
                "01 03 01 61 01 62 01 63 01 00 01 03 {reading}"
            ))),
            PackError::NonCanonical {
                offset: 12,
                what: "string table (a string no series uses)"
            }
        );
        for code in [0u8, 11, 0xFF] {
            assert_eq!(
                err(&hex(&format!(
                    "01 02 01 61 01 62 01 00 01 {code:02x} {reading}"
                ))),
                PackError::UnknownVital { offset: 9, code }
            );
        }
        assert_eq!(
            err(&hex(
                "01 02 01 61 01 62 02 00 01 03 00 01 03 02 00 00 00 00 00 01 00 00"
            )),
            PackError::DuplicateSeries { offset: 10 }
        );
    }

    #[test]
    fn bad_series_indices_are_rejected() {
        assert_eq!(
            err(&one_series(&hex("01 00 01 00 00"))),
            PackError::IndexOutOfRange {
                offset: 12,
                what: "series index",
                index: 1,
                count: 1
            }
        );
        let two = "01 02 01 61 01 62 02 00 01 03 00 01 02";
        assert_eq!(
            err(&hex(&format!("{two} 02 00 01 00 00 00 00 00 00"))),
            PackError::NotFirstUseOrder {
                offset: 15,
                what: "series index",
                index: 1,
                next: 0
            }
        );
        assert_eq!(
            err(&hex(&format!("{two} 01 00 00 00 00"))),
            PackError::NonCanonical {
                offset: 18,
                what: "series table (a series no reading uses)"
            }
        );
    }

    #[test]
    fn reserved_flags_are_rejected() {
        for flags in [0x80u8, 0x0B, 0x0C, 0x0F, 0xFF] {
            assert_eq!(
                err(&one_series(&[1, flags, 0, 0, 0])),
                PackError::ReservedFlags { offset: 11, flags }
            );
        }
    }

    #[test]
    fn times_that_overflow_i64_are_rejected() {
        // i64::MAX, then +1 ms in the same series.
        let max = "fe ff ff ff ff ff ff ff ff 01";
        assert_eq!(
            err(&one_series(&hex(&format!("02 00 00 {max} 00 00 00 02 00")))),
            PackError::TimestampOverflow {
                offset: 26,
                what: "gateway time"
            }
        );
        assert_eq!(
            err(&one_series(&hex(&format!("01 10 00 {max} 02 00")))),
            PackError::TimestampOverflow {
                offset: 23,
                what: "device time"
            }
        );
        // Absolute times where relative ones fit.
        assert_eq!(
            err(&one_series(&hex("01 40 00 00 00"))),
            PackError::NonCanonical {
                offset: 11,
                what: "absolute-times flag (relative times fit)"
            }
        );
    }

    #[test]
    fn bad_quality_fields_are_rejected() {
        assert_eq!(
            err(&one_series(&hex("01 20 00 00 00 00"))),
            PackError::NonCanonical {
                offset: 14,
                what: "quality (flagged but zero)"
            }
        );
        assert_eq!(
            err(&one_series(&hex("01 20 00 00 80 80 04 00"))),
            PackError::QualityOutOfRange {
                offset: 14,
                value: 0x1_0000
            }
        );
    }

    #[test]
    fn bad_decimal_values_are_rejected() {
        // 2^53 + 1, zigzagged.
        let over = {
            let mut v = Vec::new();
            put_varint(&mut v, zigzag(MAX_MANTISSA + 1));
            v.iter().map(|b| format!("{b:02x} ")).collect::<String>()
        };
        assert_eq!(
            err(&one_series(&hex(&format!("01 00 00 00 {over}")))),
            PackError::MantissaOutOfRange { offset: 14 }
        );
        // 2^53, then +1 as a delta; then a delta that overflows i64.
        let max = {
            let mut v = Vec::new();
            put_varint(&mut v, zigzag(MAX_MANTISSA));
            v.iter().map(|b| format!("{b:02x} ")).collect::<String>()
        };
        let mut b = one_series(&hex(&format!("02 00 00 00 {max} 00 00 00 02")));
        let offset = b.len() - 1;
        assert_eq!(err(&b), PackError::MantissaOutOfRange { offset });
        b.truncate(offset);
        put_varint(&mut b, zigzag(i64::MAX));
        assert_eq!(err(&b), PackError::MantissaOutOfRange { offset });
        // 97 as 970 tenths, and as a raw f64.
        assert_eq!(
            err(&one_series(&hex("01 01 00 00 94 0f"))),
            PackError::NonCanonical {
                offset: 14,
                what: "decimal value (not the shortest scale or its mantissa)"
            }
        );
        let mut raw = one_series(&hex("01 0a 00 00"));
        raw.extend(97f64.to_le_bytes());
        assert_eq!(
            err(&raw),
            PackError::NonCanonical {
                offset: 14,
                what: "raw value (it has a decimal form)"
            }
        );
        // Near 2^53 at scale 9, neighbouring mantissas divide to the same
        // f64: only the one the encoder finds is accepted.
        let mut rejected = 0;
        for m in MAX_MANTISSA - 50..=MAX_MANTISSA {
            let v = m as f64 / 1e9;
            let mut b = one_series(&[1, 9, 0, 0]);
            put_varint(&mut b, zigzag(m));
            if decimal(v) == Some((9, m)) {
                assert_eq!(unpack(&b).unwrap()[0].value.to_bits(), v.to_bits());
            } else {
                rejected += 1;
                assert_eq!(
                    err(&b),
                    PackError::NonCanonical {
                        offset: 14,
                        what: "decimal value (not the shortest scale or its mantissa)"
                    }
                );
            }
        }
        assert!(rejected > 0);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut b = hex(VECTOR);
        b.push(0);
        assert_eq!(
            err(&b),
            PackError::TrailingBytes {
                offset: 81,
                count: 1
            }
        );
    }

    #[test]
    fn random_byte_strings_never_panic() {
        let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
        let mut decoded = 0;
        // Bytes that are often meaningful here, so deeper fields get reached.
        let likely = [
            0u8, 0, 0, 1, 1, 2, 3, 0x0a, 0x10, 0x20, 0x40, 0x61, 0x80, 0xff,
        ];
        for i in 0..30_000 {
            let len = rng.below(60) as usize;
            let small = rng.below(2) == 0;
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    if small {
                        rng.pick(&likely)
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            // A valid start for two thirds of them.
            let b = match i % 3 {
                0 => random,
                1 => [&[1, 1, 1, b'a'][..], &random].concat(),
                _ => one_series(&random),
            };
            if let Ok(readings) = unpack(&b) {
                decoded += 1;
                assert_eq!(packed(&readings), b);
            }
        }
        println!("{decoded} random strings decoded");
    }

    #[test]
    fn mutated_records_either_fail_or_are_the_encoding_of_what_they_decode_to() {
        let mut rng = Rng(7);
        let base = hex(VECTOR);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(b.len() as u64) as usize;
                match rng.below(4) {
                    0 => b[at] ^= 1 << rng.below(8),
                    1 => b[at] = rng.next() as u8,
                    2 => b.insert(at, rng.next() as u8),
                    _ => {
                        b.remove(at);
                    }
                }
            }
            if let Ok(readings) = unpack(&b) {
                decoded += 1;
                assert_eq!(packed(&readings), b, "accepted a second encoding");
            }
        }
        println!("{decoded} mutations decoded");
        assert!(decoded > 0);
    }
}
