//! Compact plaintext encoding of readings.
//!
//! A record's readings are packed here before they are encrypted. Readings
//! that share a device, patient, gateway time, device time and quality (one
//! device sample: a pulse oximeter's SpO2, pulse rate and perfusion index)
//! form a *row*; consecutive rows of the same *shape* (source and vitals)
//! form a *run*, which names its shape once and fixes a value code per
//! column. Within a row, times are delta-of-delta per source and values
//! deltas per series, as varints. A 1 Hz pulse oximeter costs under two
//! bytes a reading.
//!
//! The byte layout is a contract, specified in `docs/FORMAT.md` ("Packed
//! readings"); in short, all integers being LEB128 varints (canonical) and
//! signed ones zigzag-mapped first:
//!
//! ```text
//! record  = version(0x02) strings sources shapes runs
//! strings = count { len utf8-bytes }            distinct, non-empty, first-use order
//! sources = count { device-idx patient-idx }    distinct, first-use order
//! shapes  = count { source-idx count { vital-code(u8) } }
//! runs    = count { flags(u8) shape-idx row-count { value-code(u8) } { row } }
//! row     = gateway-time [device-time] [quality] { value }
//! ```
//!
//! Every list of readings has exactly one encoding and [`unpack`] rejects
//! any other byte string, so `pack(unpack(b)) == b` whenever `unpack`
//! succeeds: a verifier can re-encode and compare.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// The version byte that starts every packed record.
pub const VERSION: u8 = 2;

/// Run flags: every row of the run has a device time.
const DEVICE_TIME: u8 = 0x01;
/// Run flags: every row of the run has non-zero quality bits.
const QUALITY: u8 = 0x02;
/// Run flags: bits reserved for a later version.
const RESERVED_FLAGS: u8 = !(DEVICE_TIME | QUALITY);

/// Value code of a column counted in 1/1024 s but stored in milliseconds
/// (Bluetooth R–R intervals): value = mantissa × 0.9765625.
const BINARY_1024: u8 = 10;
/// Value code of a column written as raw little-endian IEEE-754 binary64.
const RAW: u8 = 11;
/// The value codes in order of preference: a column takes the first one
/// under which every one of its values has a mantissa. Codes 0..=9 are
/// decimal scales.
const CODE_ORDER: [u8; 12] = [0, BINARY_1024, 1, 2, 3, 4, 5, 6, 7, 8, 9, RAW];

/// 1/1024 s in milliseconds, exact in an f64.
const MS_PER_1024TH: f64 = 0.976_562_5;
/// Decimal scales: `POW10[k]` is 10^k, exact in an f64.
const POW10: [f64; 10] = [1.0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];
/// Largest decimal mantissa magnitude, 2^53: every integer up to it is an
/// exact f64, so the decoder's conversion is exact too.
const MAX_MANTISSA: i64 = 1 << 53;
/// Largest 1/1024 s mantissa magnitude, 2^46: times 125 it stays below
/// 2^53, so `m × 0.9765625` is exact.
const MAX_BINARY_MANTISSA: i64 = 1 << 46;

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
    /// A shape without vitals, or a run without rows.
    #[error("byte {offset}: {what} is empty")]
    Empty {
        /// Start of its count.
        offset: usize,
        /// Which.
        what: &'static str,
    },
    /// A vital code outside the table (0 and 11..=255 are reserved).
    #[error("byte {offset}: unknown vital code {code}")]
    UnknownVital {
        /// Position of the code.
        offset: usize,
        /// The code found.
        code: u8,
    },
    /// A source or shape of the dictionary repeats an earlier one.
    #[error("byte {offset}: {what} repeats an earlier one")]
    Duplicate {
        /// Start of the entry.
        offset: usize,
        /// Which table.
        what: &'static str,
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
    /// Run flags with reserved bits set.
    #[error("byte {offset}: run flags {flags:#04x} use reserved bits")]
    ReservedFlags {
        /// Position of the flags byte.
        offset: usize,
        /// The flags found.
        flags: u8,
    },
    /// A value code outside 0..=11.
    #[error("byte {offset}: unknown value code {code}")]
    UnknownValueCode {
        /// Position of the code.
        offset: usize,
        /// The code found.
        code: u8,
    },
    /// Quality bits beyond 16 bits.
    #[error("byte {offset}: quality {value} does not fit 16 bits")]
    QualityOutOfRange {
        /// Start of the quality field.
        offset: usize,
        /// The value found.
        value: u64,
    },
    /// A mantissa (after applying its delta) beyond its code's range
    /// (±2^53 decimal, ±2^46 in 1/1024 s).
    #[error("byte {offset}: mantissa is beyond its value code's range")]
    MantissaOutOfRange {
        /// Start of the mantissa field.
        offset: usize,
    },
    /// Well-formed, but not the one encoding `pack` writes: table entries
    /// never used, rows or runs that should have been one, a value code
    /// that is not the column's first fitting one or a mantissa that is not
    /// the value's, quality flagged but zero.
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

/// The mantissa of `v` under the numeric value code `code`, if it has
/// one: `m = round(x)` (ties away from zero) of `x = v × 10^k` for a
/// decimal scale k, or of `x = v / 0.9765625` for [`BINARY_1024`], with
/// |x| within the code's range and [`value`]`(code, m)` the very bits of
/// `v`. The decoder calls this too, to check canonicality.
fn mantissa(v: f64, code: u8) -> Option<i64> {
    let (x, limit) = match code {
        BINARY_1024 => (v / MS_PER_1024TH, MAX_BINARY_MANTISSA),
        k => (v * *POW10.get(usize::from(k))?, MAX_MANTISSA),
    };
    if x.is_nan() || x.abs() > limit as f64 {
        return None;
    }
    let m = x.round() as i64;
    (value(code, m).to_bits() == v.to_bits()).then_some(m)
}

/// The value of mantissa `m` under numeric code `code` (one rounded
/// division by 10^k, or one multiplication by 0.9765625).
fn value(code: u8, m: i64) -> f64 {
    match code {
        BINARY_1024 => m as f64 * MS_PER_1024TH,
        k => m as f64 / POW10.get(usize::from(k)).copied().unwrap_or(f64::NAN),
    }
}

/// Whether every value has a mantissa under `code` (always, for [`RAW`]),
/// collecting them into `mantissas`.
fn fits(values: impl Iterator<Item = f64>, code: u8, mantissas: &mut Vec<i64>) -> bool {
    mantissas.clear();
    if code == RAW {
        return true;
    }
    for v in values {
        match mantissa(v, code) {
            Some(m) => mantissas.push(m),
            None => return false,
        }
    }
    true
}

/// The value code of a column: the first of [`CODE_ORDER`] that fits every
/// value, with the mantissas under it (none for [`RAW`]).
fn column_code<I>(values: I, mantissas: &mut Vec<i64>) -> u8
where
    I: Iterator<Item = f64> + Clone,
{
    for code in CODE_ORDER {
        if fits(values.clone(), code, mantissas) {
            return code;
        }
    }
    RAW
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

/// Per-source time state, the same in encoder and decoder. Differences
/// wrap (two's complement, 64 bits), so every time has an encoding and
/// every encoding decodes: no overflow cases.
#[derive(Clone, Copy, Default)]
struct Clock {
    /// Gateway time of the source's previous row.
    gateway: Option<i64>,
    /// Gateway time step to that row from the one before.
    gateway_step: i64,
    /// Device time of the source's previous row that had one.
    device: Option<i64>,
    /// Device time step to that row from the one before.
    device_step: i64,
}

impl Clock {
    /// The gateway-time field of a row at `t`; `previous` is the gateway
    /// time of the record's previous row (0 before the first).
    fn gateway_field(&mut self, t: i64, previous: i64) -> i64 {
        let field = match self.gateway {
            Some(last) => {
                let step = t.wrapping_sub(last);
                let field = step.wrapping_sub(self.gateway_step);
                self.gateway_step = step;
                field
            }
            None => t.wrapping_sub(previous),
        };
        self.gateway = Some(t);
        field
    }

    /// Inverse of [`Clock::gateway_field`].
    fn gateway_time(&mut self, field: i64, previous: i64) -> i64 {
        let t = match self.gateway {
            Some(last) => {
                let step = self.gateway_step.wrapping_add(field);
                self.gateway_step = step;
                last.wrapping_add(step)
            }
            None => previous.wrapping_add(field),
        };
        self.gateway = Some(t);
        t
    }

    /// The device-time field of a row at gateway time `t`, device time `d`.
    fn device_field(&mut self, d: i64, t: i64) -> i64 {
        let field = match self.device {
            Some(last) => {
                let step = d.wrapping_sub(last);
                let field = step.wrapping_sub(self.device_step);
                self.device_step = step;
                field
            }
            None => d.wrapping_sub(t),
        };
        self.device = Some(d);
        field
    }

    /// Inverse of [`Clock::device_field`].
    fn device_time(&mut self, field: i64, t: i64) -> i64 {
        let d = match self.device {
            Some(last) => {
                let step = self.device_step.wrapping_add(field);
                self.device_step = step;
                last.wrapping_add(step)
            }
            None => t.wrapping_add(field),
        };
        self.device = Some(d);
        d
    }
}

/// Per-series value state, the same in encoder and decoder: the code and
/// mantissa of the series' previous value (`None` at first and after a
/// raw value).
#[derive(Clone, Copy, Default)]
struct Previous(Option<(u8, i64)>);

impl Previous {
    /// The field of mantissa `m` under `code`: a delta when the previous
    /// value had the same code (both within ±2^53, so it cannot overflow).
    fn field(&mut self, code: u8, m: i64) -> i64 {
        let field = match self.0 {
            Some((c, last)) if c == code => m - last,
            _ => m,
        };
        self.0 = Some((code, m));
        field
    }
}

/// A row: readings `start..end` of the input, all of one source, gateway
/// time, device time and quality.
struct Row {
    start: usize,
    end: usize,
    shape: usize,
}

/// Whether two readings belong in one row.
fn same_row(a: &Reading, b: &Reading) -> bool {
    a.gateway_time == b.gateway_time
        && a.device_time == b.device_time
        && a.quality == b.quality
        && a.device == b.device
        && a.patient == b.patient
}

/// The run flags of a row starting with `r`.
fn flags_of(r: &Reading) -> u8 {
    let mut flags = 0;
    if r.device_time.is_some() {
        flags |= DEVICE_TIME;
    }
    if r.quality.bits() != 0 {
        flags |= QUALITY;
    }
    flags
}

/// The index of `key` in `table`, appending it on first use.
fn intern<K: std::hash::Hash + Eq>(
    key: K,
    ids: &mut HashMap<K, usize>,
    on_new: impl FnOnce() -> usize,
) -> usize {
    *ids.entry(key).or_insert_with(on_new)
}

/// Append the packed form of `readings` to `out`.
///
/// Infallible: every list of readings has an encoding (values without a
/// decimal form go raw, time differences wrap). Allocates per record
/// (tables, one row entry per row, a column buffer per run), never per
/// reading.
pub fn pack(readings: &[Reading], out: &mut Vec<u8>) {
    // Tables in first-use order: strings by sources, sources by shapes,
    // shapes by rows. A shape's key is its source (4 bytes LE) and its
    // vital codes, so it can be looked up from a reused buffer.
    let mut string_ids: HashMap<&str, usize> = HashMap::new();
    let mut strings: Vec<&str> = Vec::new();
    let mut source_ids: HashMap<(&str, &str), usize> = HashMap::new();
    let mut sources: Vec<(usize, usize)> = Vec::new();
    let mut shape_ids: HashMap<Vec<u8>, usize> = HashMap::new();
    let mut shapes: Vec<(usize, Vec<u8>)> = Vec::new();
    let mut rows: Vec<Row> = Vec::new();
    let mut key = Vec::new();
    let mut start = 0;
    while let Some(first) = readings.get(start) {
        let len = readings[start..]
            .iter()
            .take_while(|r| same_row(first, r))
            .count();
        let end = start + len;
        let source = intern((&*first.device, &*first.patient), &mut source_ids, || {
            let mut string = |s| {
                intern(s, &mut string_ids, || {
                    strings.push(s);
                    strings.len() - 1
                })
            };
            let d = string(&*first.device);
            let p = string(&*first.patient);
            sources.push((d, p));
            sources.len() - 1
        });
        key.clear();
        key.extend_from_slice(&(source as u32).to_le_bytes());
        key.extend(readings[start..end].iter().map(|r| vital_code(r.vital)));
        let shape = match shape_ids.get(&key[..]) {
            Some(&id) => id,
            None => {
                shapes.push((source, key[4..].to_vec()));
                shape_ids.insert(key.clone(), shapes.len() - 1);
                shapes.len() - 1
            }
        };
        rows.push(Row { start, end, shape });
        start = end;
    }

    out.push(VERSION);
    put_len(out, strings.len());
    for s in &strings {
        put_len(out, s.len());
        out.extend_from_slice(s.as_bytes());
    }
    put_len(out, sources.len());
    for &(d, p) in &sources {
        put_len(out, d);
        put_len(out, p);
    }
    put_len(out, shapes.len());
    for (source, vitals) in &shapes {
        put_len(out, *source);
        put_len(out, vitals.len());
        out.extend_from_slice(vitals);
    }

    // Runs: maximal stretches of rows with one shape and one set of flags.
    let run_of = |row: &Row| (row.shape, flags_of(&readings[row.start]));
    let runs: Vec<&[Row]> = rows.chunk_by(|a, b| run_of(a) == run_of(b)).collect();
    put_len(out, runs.len());
    let mut clocks = vec![Clock::default(); sources.len()];
    // Value state per series: by source, then by vital code − 1.
    let mut series = vec![[Previous::default(); Vital::COUNT]; sources.len()];
    let mut previous_time = 0i64;
    let mut columns: Vec<(u8, Vec<i64>)> = Vec::new();
    for run in runs {
        let Some(first) = run.first() else { continue };
        let (shape, flags) = run_of(first);
        let source = shapes[shape].0;
        let width = first.end - first.start;
        out.push(flags);
        put_len(out, shape);
        put_len(out, run.len());
        columns.resize_with(width, Default::default);
        for (slot, (code, mantissas)) in columns.iter_mut().enumerate() {
            let values = run.iter().map(|row| readings[row.start + slot].value);
            *code = column_code(values, mantissas);
            out.push(*code);
        }
        for (i, row) in run.iter().enumerate() {
            let r = &readings[row.start];
            let clock = &mut clocks[source];
            let t = r.gateway_time.0;
            put_varint(out, zigzag(clock.gateway_field(t, previous_time)));
            previous_time = t;
            if let Some(d) = r.device_time {
                put_varint(out, zigzag(clock.device_field(d.0, t)));
            }
            if flags & QUALITY != 0 {
                put_varint(out, u64::from(r.quality.bits()));
            }
            for (reading, (code, mantissas)) in readings[row.start..row.end].iter().zip(&columns) {
                let previous = &mut series[source][usize::from(vital_code(reading.vital)) - 1];
                match mantissas.get(i) {
                    Some(&m) => put_varint(out, zigzag(previous.field(*code, m))),
                    None => {
                        out.extend_from_slice(&reading.value.to_bits().to_le_bytes());
                        previous.0 = None;
                    }
                }
            }
        }
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

    /// A zigzagged varint.
    fn svarint(&mut self, what: &'static str) -> Result<i64, PackError> {
        self.varint(what).map(unzigzag)
    }

    /// A count of items each at least `min_size` bytes long, checked
    /// against the rest of the input before anything is allocated for it.
    fn count(&mut self, what: &'static str, min_size: usize) -> Result<usize, PackError> {
        let offset = self.pos;
        let count = self.varint(what)?;
        let remaining = self.remaining();
        match usize::try_from(count) {
            Ok(n) if n <= remaining / min_size.max(1) => Ok(n),
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

/// A decoded source.
struct Source {
    device: Arc<str>,
    patient: Arc<str>,
}

/// A decoded shape: its source and, per slot, the vital and the index of
/// its series in the decoder's value state.
struct Shape {
    source: usize,
    slots: Vec<(Vital, usize)>,
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
    let sources = read_sources(&mut cur, &strings)?;
    let (shapes, series) = read_shapes(&mut cur, sources.len())?;
    let readings = read_runs(&mut cur, &sources, &shapes, series)?;
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

/// The source table: distinct (device, patient), strings in first-use
/// order, every string used.
fn read_sources(cur: &mut Cursor<'_>, strings: &[Arc<str>]) -> Result<Vec<Source>, PackError> {
    let count = cur.count("source count", 2)?;
    let mut sources = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let mut next_string = 0;
    for _ in 0..count {
        let offset = cur.pos;
        let d = cur.first_use_index("device string index", strings.len(), &mut next_string)?;
        let p = cur.first_use_index("patient string index", strings.len(), &mut next_string)?;
        if !seen.insert((d, p)) {
            return Err(PackError::Duplicate {
                offset,
                what: "source",
            });
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
        sources.push(Source {
            device: Arc::clone(device),
            patient: Arc::clone(patient),
        });
    }
    if next_string != strings.len() {
        return Err(PackError::NonCanonical {
            offset: cur.pos,
            what: "string table (a string no source uses)",
        });
    }
    Ok(sources)
}

/// The shape table: distinct (source, vitals), sources in first-use order,
/// every source used. Returns the shapes and the number of distinct
/// series (source, vital) they name.
fn read_shapes(cur: &mut Cursor<'_>, sources: usize) -> Result<(Vec<Shape>, usize), PackError> {
    // A source index, a vital count and one vital at least.
    let count = cur.count("shape count", 3)?;
    let mut shapes = Vec::with_capacity(count);
    let mut seen = HashSet::with_capacity(count);
    let mut series: HashMap<(usize, u8), usize> = HashMap::new();
    let mut next_source = 0;
    for _ in 0..count {
        let offset = cur.pos;
        let source = cur.first_use_index("source index", sources, &mut next_source)?;
        let count_offset = cur.pos;
        let width = cur.count("vital count", 1)?;
        if width == 0 {
            return Err(PackError::Empty {
                offset: count_offset,
                what: "shape",
            });
        }
        let codes_offset = cur.pos;
        let codes = cur.take(width as u64, "vital codes")?;
        if !seen.insert((source, codes)) {
            return Err(PackError::Duplicate {
                offset,
                what: "shape",
            });
        }
        let mut slots = Vec::with_capacity(width);
        for (i, &code) in codes.iter().enumerate() {
            let vital = vital_from_code(code).ok_or(PackError::UnknownVital {
                offset: codes_offset + i,
                code,
            })?;
            let next = series.len();
            let id = *series.entry((source, code)).or_insert(next);
            slots.push((vital, id));
        }
        shapes.push(Shape { source, slots });
    }
    if next_source != sources {
        return Err(PackError::NonCanonical {
            offset: cur.pos,
            what: "source table (a source no shape uses)",
        });
    }
    Ok((shapes, series.len()))
}

/// A decoded row's identity: two consecutive rows must differ in it, or
/// they would have been one.
type RowKey = (usize, i64, Option<i64>, u16);

/// The runs, in order.
fn read_runs(
    cur: &mut Cursor<'_>,
    sources: &[Source],
    shapes: &[Shape],
    series: usize,
) -> Result<Vec<Reading>, PackError> {
    // Flags, shape, row count, a value code, a gateway time and a value.
    let count = cur.count("run count", 6)?;
    let mut readings = Vec::new();
    let mut clocks = vec![Clock::default(); sources.len()];
    let mut values = vec![Previous::default(); series];
    let mut next_shape = 0;
    let mut previous_run: Option<(u8, usize)> = None;
    let mut previous_row: Option<RowKey> = None;
    let mut previous_time = 0i64;
    let mut codes: Vec<(usize, u8)> = Vec::new();
    let mut column: Vec<i64> = Vec::new();
    for _ in 0..count {
        let run_offset = cur.pos;
        let flags = cur.u8("run flags")?;
        if flags & RESERVED_FLAGS != 0 {
            return Err(PackError::ReservedFlags {
                offset: run_offset,
                flags,
            });
        }
        let shape_id = cur.first_use_index("shape index", shapes.len(), &mut next_shape)?;
        if previous_run == Some((flags, shape_id)) {
            return Err(PackError::NonCanonical {
                offset: run_offset,
                what: "run (it continues the previous one)",
            });
        }
        previous_run = Some((flags, shape_id));
        let Some(shape) = shapes.get(shape_id) else {
            // Unreachable: `first_use_index` checked it against the table.
            return Err(PackError::IndexOutOfRange {
                offset: run_offset + 1,
                what: "shape index",
                index: shape_id as u64,
                count: shapes.len(),
            });
        };
        let Some(source) = sources.get(shape.source) else {
            // Unreachable: `read_shapes` checked it against the table.
            return Err(PackError::IndexOutOfRange {
                offset: run_offset + 1,
                what: "source index",
                index: shape.source as u64,
                count: sources.len(),
            });
        };
        let width = shape.slots.len();
        let rows_offset = cur.pos;
        // Each row holds a gateway time and a value per slot at least.
        let rows = cur.count("row count", 1 + width)?;
        if rows == 0 {
            return Err(PackError::Empty {
                offset: rows_offset,
                what: "run",
            });
        }
        codes.clear();
        for _ in 0..width {
            let offset = cur.pos;
            let code = cur.u8("value code")?;
            if code > RAW {
                return Err(PackError::UnknownValueCode { offset, code });
            }
            codes.push((offset, code));
        }
        let run_start = readings.len();
        for _ in 0..rows {
            let row_offset = cur.pos;
            let clock = clocks
                .get_mut(shape.source)
                .ok_or(PackError::IndexOutOfRange {
                    offset: run_offset + 1,
                    what: "source index",
                    index: shape.source as u64,
                    count: sources.len(),
                })?;
            let time = clock.gateway_time(cur.svarint("gateway time")?, previous_time);
            previous_time = time;
            let device_time = if flags & DEVICE_TIME != 0 {
                Some(clock.device_time(cur.svarint("device time")?, time))
            } else {
                None
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
            let key = (shape.source, time, device_time, quality);
            if previous_row == Some(key) {
                return Err(PackError::NonCanonical {
                    offset: row_offset,
                    what: "row (it continues the previous one)",
                });
            }
            previous_row = Some(key);
            for (&(vital, id), &(_, code)) in shape.slots.iter().zip(&codes) {
                let offset = cur.pos;
                let previous = values.get_mut(id).ok_or(PackError::Truncated {
                    offset,
                    what: "value",
                })?;
                let value = read_value(cur, code, previous)?;
                readings.push(Reading {
                    device: Arc::clone(&source.device),
                    patient: Arc::clone(&source.patient),
                    vital,
                    value,
                    device_time: device_time.map(Timestamp),
                    gateway_time: Timestamp(time),
                    quality: Quality::from_bits(quality),
                });
            }
        }
        // Each column's code must be the first that fits all its values.
        let run = readings.get(run_start..).unwrap_or_default();
        for (slot, &(offset, code)) in codes.iter().enumerate() {
            let values = run.iter().skip(slot).step_by(width).map(|r| r.value);
            if column_code(values, &mut column) != code {
                return Err(PackError::NonCanonical {
                    offset,
                    what: "value code (not the first that fits the column)",
                });
            }
        }
    }
    if next_shape != shapes.len() {
        return Err(PackError::NonCanonical {
            offset: cur.pos,
            what: "shape table (a shape no run uses)",
        });
    }
    Ok(readings)
}

/// One value under `code`, updating its series' state.
fn read_value(cur: &mut Cursor<'_>, code: u8, previous: &mut Previous) -> Result<f64, PackError> {
    let offset = cur.pos;
    if code == RAW {
        let raw = cur.take(8, "raw value")?;
        let le = <[u8; 8]>::try_from(raw).map_err(|_| PackError::Truncated {
            offset,
            what: "raw value",
        })?;
        previous.0 = None;
        return Ok(f64::from_bits(u64::from_le_bytes(le)));
    }
    let field = cur.svarint("mantissa")?;
    let out_of_range = PackError::MantissaOutOfRange { offset };
    let m = match previous.0 {
        Some((c, last)) if c == code => last.checked_add(field).ok_or(out_of_range.clone())?,
        _ => field,
    };
    let limit = if code == BINARY_1024 {
        MAX_BINARY_MANTISSA
    } else {
        MAX_MANTISSA
    };
    if !(-limit..=limit).contains(&m) {
        return Err(out_of_range);
    }
    let v = value(code, m);
    if mantissa(v, code) != Some(m) {
        return Err(PackError::NonCanonical {
            offset,
            what: "mantissa (not the one its value has)",
        });
    }
    previous.0 = Some((code, m));
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;

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

    fn varint_hex(v: u64) -> String {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out.iter().map(|b| format!("{b:02x} ")).collect()
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

    fn err(bytes: &[u8]) -> PackError {
        unpack(bytes).unwrap_err()
    }

    /// Tables of a record with strings "a", "b", the one source (a, b) and
    /// the one shape (source 0: spo2); the runs part (count first) follows
    /// at byte 13.
    fn one_shape(runs_part: &str) -> Vec<u8> {
        let mut b = hex("02 02 01 61 01 62 01 00 01 01 00 01 03");
        b.extend(hex(runs_part));
        b
    }

    /// The format test vector of `docs/FORMAT.md`.
    fn vector_readings() -> Vec<Reading> {
        use Vital::*;
        vec![
            reading("ox-1", "p-7", Spo2, 97.0, T, None, 0),
            reading("ox-1", "p-7", PulseRate, 72.0, T, None, 0),
            reading("ox-1", "p-7", PerfusionIndex, 3.25, T, None, 0),
            reading("ox-1", "p-7", Spo2, 96.0, T + 1000, None, 0),
            reading("ox-1", "p-7", PulseRate, 74.0, T + 1000, None, 0),
            reading("ox-1", "p-7", PerfusionIndex, 3.5, T + 1000, None, 0),
            reading("hr-2", "p-7", HeartRate, 64.0, T + 1020, Some(T + 1000), 0),
            reading(
                "hr-2",
                "p-7",
                RrInterval,
                937.5,
                T + 1020,
                Some(T + 1000),
                0,
            ),
            reading("ox-1", "p-7", Spo2, 95.0, T + 2010, None, 8),
            reading("ox-1", "p-7", PulseRate, 75.0, T + 2010, None, 8),
            reading("ox-1", "p-7", PerfusionIndex, 0.1 + 0.2, T + 2010, None, 8),
            reading("hr-2", "p-7", HeartRate, 65.0, T + 2015, Some(T + 2000), 0),
            reading(
                "hr-2",
                "p-7",
                RrInterval,
                923.828125,
                T + 2015,
                Some(T + 2000),
                0,
            ),
            reading("th-3", "p-9", BodyTemperature, 36.6, T + 2500, None, 0),
        ]
    }

    const VECTOR: &str = "02 05 04 6f 78 2d 31 03 70 2d 37 04 68 72 2d 32 \
        04 74 68 2d 33 03 70 2d 39 \
        03 00 01 02 01 03 04 \
        03 00 03 03 02 09 01 02 01 0a 02 01 05 \
        05 \
        00 00 02 00 00 02 80 a0 ab fe f9 62 c2 01 90 01 8a 05 d0 0f 01 04 32 \
        01 01 01 00 0a 28 27 80 01 80 0f \
        02 00 01 00 00 0b 14 08 01 02 34 33 33 33 33 33 d3 3f \
        01 01 01 00 0a c6 0f d0 0f 02 1b \
        00 02 01 01 ca 07 dc 05";

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
        assert_eq!(bytes.len(), 117);
        let back = unpack(&bytes).unwrap();
        assert_same(&readings, &back);
        // Decoded readings share their strings.
        assert!(Arc::ptr_eq(&back[0].device, &back[1].device));
        assert!(Arc::ptr_eq(&back[0].patient, &back[7].patient));
    }

    #[test]
    fn an_empty_record_is_five_bytes() {
        assert_eq!(round_trip(&[]), [2, 0, 0, 0, 0]);
    }

    #[test]
    fn pack_appends_to_what_is_already_in_the_output() {
        let mut out = vec![0xAA];
        pack(&vector_readings(), &mut out);
        assert_eq!(out[0], 0xAA);
        assert_eq!(out[1..], hex(VECTOR));
    }

    #[test]
    fn mantissas_are_exact_or_absent() {
        assert_eq!(mantissa(97.0, 0), Some(97));
        assert_eq!(mantissa(0.0, 0), Some(0));
        assert_eq!(mantissa(36.6, 0), None);
        assert_eq!(mantissa(36.6, 1), Some(366));
        // A value exact at a scale is exact at the larger ones too.
        assert_eq!(mantissa(36.6, 3), Some(36_600));
        assert_eq!(mantissa(-3.25, 2), Some(-325));
        assert_eq!(mantissa(0.000_000_001, 9), Some(1));
        assert_eq!(mantissa(9_007_199_254_740_992.0, 0), Some(MAX_MANTISSA));
        assert_eq!(mantissa(937.5, BINARY_1024), Some(960));
        assert_eq!(mantissa(1000.0, BINARY_1024), Some(1024));
        assert_eq!(mantissa(937.0, BINARY_1024), None);
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
            for code in CODE_ORDER {
                assert_eq!(mantissa(raw, code), None, "{raw:e} under {code}");
            }
        }
        // 2^46 ms-per-1024th is the binary code's edge.
        let edge = MAX_BINARY_MANTISSA as f64 * MS_PER_1024TH;
        assert_eq!(mantissa(edge, BINARY_1024), Some(MAX_BINARY_MANTISSA));
        assert_eq!(mantissa(edge + 1.0, BINARY_1024), None);
    }

    #[test]
    fn a_column_takes_the_first_code_that_fits_all_its_values() {
        let code = |values: &[f64]| column_code(values.iter().copied(), &mut Vec::new());
        assert_eq!(code(&[97.0, 96.0]), 0);
        assert_eq!(code(&[937.5, 923.828125]), BINARY_1024);
        // Integers fit both; decimal 0 comes first.
        assert_eq!(code(&[1000.0]), 0);
        assert_eq!(code(&[36.6, 37.0]), 1);
        assert_eq!(code(&[3.25, 3.5]), 2);
        // One value at 1/1024 s and one at a tenth: only scale 6 fits both.
        assert_eq!(code(&[923.828125, 0.1]), 6);
        assert_eq!(code(&[1.0, 0.1 + 0.2]), RAW);
        assert_eq!(code(&[f64::NAN]), RAW);
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

    /// Random readings, with values, times, devices and qualities drawn
    /// to hit every path: runs of repeated shapes, rows of several
    /// readings, odd values, clock extremes.
    fn random_readings(rng: &mut ChaCha8Rng) -> Vec<Reading> {
        let specials = [
            97.0,
            36.6,
            0.1 + 0.2,
            -3.25,
            1e-12,
            123456.789,
            937.5,
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
        let devices = ["ox-bedroom", "bp-1", "hr-strap", "ë-ünïcødé"];
        let patients = ["p-0001", "p-0002"];
        let samples = rng.random_range(0..30);
        let mut t = T + rng.random_range(-(1i64 << 39)..(1 << 39));
        let mut readings = Vec::new();
        for _ in 0..samples {
            t = match rng.random_range(0..40) {
                0 => i64::MAX,
                1 => i64::MIN,
                2 => rng.random(),
                _ => t.wrapping_add(rng.random_range(-200..2000)),
            };
            let device_time = match rng.random_range(0..5) {
                0 | 1 => None,
                2 => Some(t.wrapping_sub(rng.random_range(0..5000))),
                3 => Some(t.wrapping_add(rng.random_range(0..5000))),
                _ => Some(
                    *[i64::MIN, i64::MAX, 0, rng.random()]
                        .get(rng.random_range(0..4))
                        .unwrap(),
                ),
            };
            let quality = if rng.random_range(0..4) == 0 {
                rng.random()
            } else {
                0
            };
            let device = devices[rng.random_range(0..devices.len())];
            let patient = patients[rng.random_range(0..patients.len())];
            // One to four vitals a sample, repeats allowed (R–R intervals).
            for _ in 0..rng.random_range(1..=4) {
                let value = match rng.random_range(0..6) {
                    0 => specials[rng.random_range(0..specials.len())],
                    1 => rng.random_range(0..300) as f64,
                    2 => (rng.random_range(0..4000) as f64 - 1000.0) / 10.0,
                    3 => rng.random_range(600..1400) as f64 * MS_PER_1024TH,
                    4 => f64::from_bits(rng.random()),
                    _ => rng.random::<u64>() as f64 / 1e7,
                };
                let vital = Vital::ALL[rng.random_range(0..Vital::COUNT)];
                readings.push(reading(
                    device,
                    patient,
                    vital,
                    value,
                    t,
                    device_time,
                    quality,
                ));
            }
        }
        readings
    }

    #[test]
    fn seeded_random_readings_round_trip_bit_for_bit() {
        let mut rng = ChaCha8Rng::seed_from_u64(0x9E37_79B9_7F4A_7C15);
        for _ in 0..500 {
            round_trip(&random_readings(&mut rng));
        }
    }

    #[test]
    fn clock_extremes_wrap_and_round_trip() {
        use Vital::Spo2;
        let readings = [
            reading("a", "b", Spo2, 1.0, i64::MAX, Some(i64::MIN), 0),
            reading("a", "b", Spo2, 1.0, i64::MIN, None, 0),
            reading("a", "b", Spo2, 1.0, i64::MIN, Some(i64::MAX), 0),
            reading("a", "b", Spo2, 1.0, i64::MIN + 5, Some(-1), 0),
            reading("a", "b", Spo2, 1.0, 0, Some(0), 0),
        ];
        round_trip(&readings);
        // i64::MAX then i64::MIN is a step of +1 (wrapping): one byte.
        let bytes = packed(&readings[..2]);
        assert_eq!(bytes[bytes.len() - 2..], [0x02, 0x00]);
    }

    #[test]
    fn a_minute_of_one_hertz_oximetry_packs_under_two_bytes_a_reading() {
        let mut rng = ChaCha8Rng::seed_from_u64(42);
        let (device, patient): (Arc<str>, Arc<str>) = ("ox-bedroom".into(), "p-0042".into());
        let (mut spo2, mut pulse, mut pi_tenths) = (97i64, 72i64, 34i64);
        let mut readings = Vec::new();
        let start = 1_715_000_000_000i64;
        for i in 0..60 {
            // Stamped by the device each second; received 2–40 ms later.
            let device_time = Timestamp(start + i * 1000);
            let arrival = Timestamp(device_time.0 + rng.random_range(2..=40));
            spo2 = (spo2 + [-1, 0, 0, 0, 1][rng.random_range(0..5)]).clamp(93, 99);
            pulse = (pulse + rng.random_range(-2..=2)).clamp(55, 110);
            pi_tenths = (pi_tenths + rng.random_range(-1..=1)).clamp(5, 80);
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
                    device_time: Some(device_time),
                    gateway_time: arrival,
                    quality: Quality::NONE,
                });
            }
        }
        let bytes = round_trip(&readings);
        let per_reading = bytes.len() as f64 / readings.len() as f64;
        println!(
            "{} readings: {} bytes, {per_reading:.2} bytes/reading",
            readings.len(),
            bytes.len()
        );
        assert!(per_reading < 2.0, "{per_reading}");
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
            err(&[2, 0x80]),
            Truncated {
                offset: 1,
                what: "string count"
            }
        );
        assert_eq!(
            err(&hex("02 01 05 61")),
            Truncated {
                offset: 3,
                what: "string"
            }
        );
        let mut raw = one_shape("01 00 00 01 0b 00");
        raw.extend([0; 7]);
        assert_eq!(
            err(&raw),
            Truncated {
                offset: 19,
                what: "raw value"
            }
        );
    }

    #[test]
    fn unknown_versions_are_rejected() {
        for v in [0, 1, 3, 0xFF] {
            assert_eq!(
                err(&[v, 0, 0, 0, 0]),
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
            err(&[2, 0x80, 0x00, 0, 0, 0]),
            PackError::NonCanonicalVarint { offset: 1, what }
        );
        let mut eleven = vec![2];
        eleven.extend([0x80; 10]);
        eleven.push(0);
        assert_eq!(err(&eleven), PackError::VarintOverflow { offset: 1, what });
        let mut too_big = vec![2];
        too_big.extend([0xFF; 9]);
        too_big.push(0x02);
        assert_eq!(err(&too_big), PackError::VarintOverflow { offset: 1, what });
        // Also inside a row: a gateway time of 0 written in two bytes.
        assert_eq!(
            err(&one_shape("01 00 00 01 00 80 00 00")),
            PackError::NonCanonicalVarint {
                offset: 18,
                what: "gateway time"
            }
        );
    }

    #[test]
    fn counts_larger_than_the_input_could_hold_are_rejected_before_allocating() {
        assert_eq!(
            err(&hex("02 05 01 61")),
            PackError::CountTooLarge {
                offset: 1,
                what: "string count",
                count: 5,
                remaining: 2
            }
        );
        let mut huge = vec![2];
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
            err(&hex("02 00 02 00 00 00")),
            PackError::CountTooLarge {
                offset: 2,
                what: "source count",
                count: 2,
                remaining: 3
            }
        );
        // Two runs need 12 bytes at least; a row needs 2 with one vital.
        assert_eq!(
            err(&one_shape("02 00 00 01 00 00 00")),
            PackError::CountTooLarge {
                offset: 13,
                what: "run count",
                count: 2,
                remaining: 6
            }
        );
        assert_eq!(
            err(&one_shape("01 00 00 05 00 00 00 00 00 00")),
            PackError::CountTooLarge {
                offset: 16,
                what: "row count",
                count: 5,
                remaining: 6
            }
        );
    }

    #[test]
    fn bad_strings_are_rejected() {
        assert_eq!(
            err(&hex("02 01 00 00 00 00")),
            PackError::EmptyString { offset: 2 }
        );
        assert_eq!(
            err(&hex("02 01 01 ff 00 00 00")),
            PackError::InvalidUtf8 { offset: 2 }
        );
        assert_eq!(
            err(&hex("02 01 02 c3 28 00 00 00")),
            PackError::InvalidUtf8 { offset: 2 }
        );
        assert_eq!(
            err(&hex("02 02 01 61 01 61 01 00 01 01 00 01 03 00")),
            PackError::DuplicateString { offset: 4 }
        );
    }

    #[test]
    fn bad_source_and_shape_tables_are_rejected() {
        let run = "01 00 00 01 00 00 00";
        assert_eq!(
            err(&hex(&format!(
                "02 02 01 61 01 62 01 00 02 01 00 01 03 {run}"
            ))),
            PackError::IndexOutOfRange {
                offset: 8,
                what: "patient string index",
                index: 2,
                count: 2
            }
        );
        assert_eq!(
            err(&hex(&format!(
                "02 02 01 61 01 62 01 01 00 01 00 01 03 {run}"
            ))),
            PackError::NotFirstUseOrder {
                offset: 7,
                what: "device string index",
                index: 1,
                next: 0
            }
        );
        assert_eq!(
            err(&hex(&format!(
                "02 03 01 61 01 62 01 63 01 00 01 01 00 01 03 {run}"
            ))),
            PackError::NonCanonical {
                offset: 11,
                what: "string table (a string no source uses)"
            }
        );
        assert_eq!(
            err(&hex(&format!(
                "02 02 01 61 01 62 02 00 01 00 01 01 00 01 03 {run}"
            ))),
            PackError::Duplicate {
                offset: 9,
                what: "source"
            }
        );
        for code in [0u8, 11, 0xFF] {
            assert_eq!(
                err(&hex(&format!(
                    "02 02 01 61 01 62 01 00 01 01 00 01 {code:02x} {run}"
                ))),
                PackError::UnknownVital { offset: 12, code }
            );
        }
        assert_eq!(
            err(&hex(&format!("02 02 01 61 01 62 01 00 01 01 00 00 {run}"))),
            PackError::Empty {
                offset: 11,
                what: "shape"
            }
        );
        assert_eq!(
            err(&hex(&format!(
                "02 02 01 61 01 62 01 00 01 02 00 01 03 00 01 03 {run}"
            ))),
            PackError::Duplicate {
                offset: 13,
                what: "shape"
            }
        );
        // A shape no run uses.
        assert_eq!(
            err(&hex(&format!(
                "02 02 01 61 01 62 01 00 01 02 00 01 03 00 01 02 {run}"
            ))),
            PackError::NonCanonical {
                offset: 23,
                what: "shape table (a shape no run uses)"
            }
        );
    }

    #[test]
    fn bad_runs_are_rejected() {
        for flags in [0x04u8, 0x80, 0xFF] {
            assert_eq!(
                err(&one_shape(&format!("01 {flags:02x} 00 01 00 00 00"))),
                PackError::ReservedFlags { offset: 14, flags }
            );
        }
        assert_eq!(
            err(&one_shape("01 00 01 01 00 00 00")),
            PackError::IndexOutOfRange {
                offset: 15,
                what: "shape index",
                index: 1,
                count: 1
            }
        );
        assert_eq!(
            err(&one_shape("01 00 00 00 00 00 00")),
            PackError::Empty {
                offset: 16,
                what: "run"
            }
        );
        for code in [12u8, 0xFF] {
            assert_eq!(
                err(&one_shape(&format!("01 00 00 01 {code:02x} 00 00"))),
                PackError::UnknownValueCode { offset: 17, code }
            );
        }
        // Two runs of one shape and flags: the second continues the first.
        assert_eq!(
            err(&one_shape("02 00 00 01 00 00 00 00 00 01 00 02 02")),
            PackError::NonCanonical {
                offset: 20,
                what: "run (it continues the previous one)"
            }
        );
    }

    #[test]
    fn rows_that_should_have_been_one_are_rejected() {
        // Shapes spo2 and pulse_rate of one source, a row of each at the
        // same time: the encoder writes one row of shape (spo2, pulse).
        let tables = "02 02 01 61 01 62 01 00 01 02 00 01 03 00 01 02";
        assert_eq!(
            err(&hex(&format!(
                "{tables} 02 00 00 01 00 00 00 00 01 01 00 00 00"
            ))),
            PackError::NonCanonical {
                offset: 27,
                what: "row (it continues the previous one)"
            }
        );
    }

    #[test]
    fn bad_quality_fields_are_rejected() {
        assert_eq!(
            err(&one_shape("01 02 00 01 00 00 00 00")),
            PackError::NonCanonical {
                offset: 19,
                what: "quality (flagged but zero)"
            }
        );
        assert_eq!(
            err(&one_shape("01 02 00 01 00 00 80 80 04 00")),
            PackError::QualityOutOfRange {
                offset: 19,
                value: 0x1_0000
            }
        );
    }

    #[test]
    fn bad_mantissas_and_value_codes_are_rejected() {
        // A run of one row: code, gateway time 0, then the value.
        let row = |code: u8, value: &str| one_shape(&format!("01 00 00 01 {code:02x} 00 {value}"));
        assert_eq!(
            err(&row(0, &varint_hex(zigzag(MAX_MANTISSA + 1)))),
            PackError::MantissaOutOfRange { offset: 19 }
        );
        assert_eq!(
            err(&row(
                BINARY_1024,
                &varint_hex(zigzag(MAX_BINARY_MANTISSA + 1))
            )),
            PackError::MantissaOutOfRange { offset: 19 }
        );
        // 2^53, then +1 as a delta; then a delta that overflows i64.
        let max = varint_hex(zigzag(MAX_MANTISSA));
        let mut b = one_shape(&format!("01 00 00 02 00 00 {max} 02 02"));
        let offset = b.len() - 1;
        assert_eq!(err(&b), PackError::MantissaOutOfRange { offset });
        b.truncate(offset);
        put_varint(&mut b, zigzag(i64::MAX));
        assert_eq!(err(&b), PackError::MantissaOutOfRange { offset });
        // 97 as 970 tenths: scale 0 fits the column first.
        assert_eq!(
            err(&row(1, "94 0f")),
            PackError::NonCanonical {
                offset: 17,
                what: "value code (not the first that fits the column)"
            }
        );
        // 97 as a raw f64.
        let mut raw = row(RAW, "");
        raw.extend(97f64.to_le_bytes());
        assert_eq!(
            err(&raw),
            PackError::NonCanonical {
                offset: 17,
                what: "value code (not the first that fits the column)"
            }
        );
        // Near 2^53 at scale 9, neighbouring mantissas divide to the same
        // f64: only the one the encoder finds is accepted.
        let mut rejected = 0;
        for m in MAX_MANTISSA - 50..=MAX_MANTISSA {
            let v = m as f64 / 1e9;
            let b = row(9, &varint_hex(zigzag(m)));
            match mantissa(v, 9) {
                Some(found) if found == m => {
                    // Accepted if 9 is the column's first fitting code.
                    if column_code([v].into_iter(), &mut Vec::new()) == 9 {
                        assert_eq!(unpack(&b).unwrap()[0].value.to_bits(), v.to_bits());
                    }
                }
                _ => {
                    rejected += 1;
                    assert_eq!(
                        err(&b),
                        PackError::NonCanonical {
                            offset: 19,
                            what: "mantissa (not the one its value has)"
                        }
                    );
                }
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
                offset: 117,
                count: 1
            }
        );
    }

    #[test]
    fn random_byte_strings_never_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(0xDEAD_BEEF_CAFE_F00D);
        let mut decoded = 0;
        // Bytes that are often meaningful here, so deeper fields get reached.
        let likely = [0u8, 0, 0, 1, 1, 2, 3, 0x0a, 0x0b, 0x61, 0x80, 0xff];
        for i in 0..30_000 {
            let len = rng.random_range(0..60);
            let small = rng.random_range(0..2) == 0;
            let random: Vec<u8> = (0..len)
                .map(|_| {
                    if small {
                        likely[rng.random_range(0..likely.len())]
                    } else {
                        rng.random()
                    }
                })
                .collect();
            // A valid start for two thirds of them.
            let b = match i % 3 {
                0 => random,
                1 => [&[2, 1, 1, b'a'][..], &random].concat(),
                _ => [one_shape(""), random].concat(),
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
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let base = hex(VECTOR);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let mut b = base.clone();
            for _ in 0..=rng.random_range(0..3) {
                let at = rng.random_range(0..b.len());
                match rng.random_range(0..4) {
                    0 => b[at] ^= 1 << rng.random_range(0..8),
                    1 => b[at] = rng.random(),
                    2 => b.insert(at, rng.random()),
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
