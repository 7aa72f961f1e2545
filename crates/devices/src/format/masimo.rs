//! Masimo serial "ASCII 1" output (Rad-8, Radical-7, Radical/Radical-5,
//! Rad-87 and their relatives): one line of `LABEL=VALUE` text per second.
//!
//! # Sources
//!
//! * *Rad-87 Pulse CO-Oximeter Operator's Manual*, section 7 "Serial
//!   Interface Specifications" (p. 7-4; the Rad-87 shares the Rad-8/Radical
//!   serial interface): RS-232, 9600 baud, 8 data bits, no parity,
//!   1 start and 1 stop bit, no handshaking; ASCII 1 is the text output mode
//!   (ASCII 2 is the printer mode).
//! * *Rad-8 Signal Extraction Pulse Oximeter Operator's Manual*, section 4:
//!   "Setup Menu Level 3" (serial output `SEr` must be set to `AS1`; the
//!   factory default is ASCII 2) and "Trend Data Format" (p. 4-24), which
//!   gives the exception bits `001` No Sensor, `002` Defective Sensor,
//!   `004` Low Perfusion, `008` Pulse Search, `010` Interference, `020`
//!   Sensor Off, `040` Ambient Light, `080` Unrecognized Sensor, `100`/`200`
//!   reserved, `400` Low Signal IQ, `800` Masimo SET (informational: the
//!   algorithm runs in full SET mode).
//! * *Radical Signal Extraction Pulse Oximeter Operator's Manual*, serial
//!   interface section, as transcribed by the MD PnP program's OpenICE
//!   Radical driver (`poxrad_discrete.h`): the 4-digit ALARM and 6-digit EXC
//!   bit tables used below (alarm `0001` SpO2 high, `0002` SpO2 low, `0004`
//!   pulse rate high, `0008` pulse rate low, `0010` alarm active, `0020`
//!   alarm silenced, `0040` low battery, `0100`-`0800` SpCO/SpMet limits,
//!   `1000` desaturation index, `2000` PI delta; exception bits above `800`:
//!   `001000` no cable, `002000` cable life expired, `004000` incompatible
//!   cable, `008000` unrecognized cable, `010000` defective cable, `020000`
//!   sensor calibrating, `040000` sensor life expired, `080000` emitter
//!   temperature out of range, `100000` sensor current limit, `200000`/
//!   `400000` SpCO/SpMet low confidence) and its two example lines.
//! * Real captures published by users: a Rad-8 (`yahnatan/pulseox`
//!   README, 2016), a newer "colour" Radical-7 and a Radical-7 line quoted
//!   from its service manual (`nmenon/masimo-datacapture`, 2016; the same
//!   source quotes a Rad-8 no-sensor line in abbreviated form, which the
//!   tests complete). They are the test vectors of this module.
//!
//! # Layout
//!
//! ```text
//! 02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800<CR><LF>
//! ```
//!
//! A line starts with the device clock `MM/DD/YY HH:MM:SS`, then
//! space-separated `LABEL=VALUE` fields. The set of fields differs between
//! models and firmware: the Radical-5 sends only `SPO2 BPM PI ALARM EXC`
//! with a 2-digit ALARM and 3-digit EXC; the Rad-8 adds `SN SPCO SPMET DESAT
//! PIDELTA`; the Radical-7 adds `PVI`, newer Radical-7 firmware `SPHB SPOC
//! RESVD EXC1`, a 6-digit ALARM, a 7-digit EXC and `PI` without `%`. The
//! decoder therefore reads fields **by label**: `SPO2`, `BPM`, `PI`,
//! `ALARM` and `EXC` are required (every known layout has them; requiring the
//! last ones also catches lines cut short), any other label is ignored.
//! Values are zero-padded decimals with an optional trailing `%`; a value
//! made only of `-` (and `.`), such as `---`, `--.-` or `--.--`, is the
//! device's "no value" and becomes a [`Status`], never a number. ALARM and
//! EXC are 1 to 8 hexadecimal digits.
//!
//! # Decisions
//!
//! * **Framing.** A line ends at CR or LF; any run of CR/LF is one
//!   separator (lines end with CR LF in the MD PnP driver's example strings,
//!   while its comment says "line-feed, carriage-return"; CR LF, LF CR and a
//!   bare LF all decode the same). A frame is the text from a
//!   `MM/DD/YY HH:MM:SS` header to the line end, its offset the header's
//!   first byte. Bytes before a header (a line joined mid-way, noise) are
//!   [`Reject::Garbage`], one error per contiguous run (CR/LF between two
//!   skipped spans are part of the run). Bytes other than printable ASCII,
//!   TAB, CR and LF are garbage too and tear the line they interrupt. A
//!   record followed by another header before its line end (a lost
//!   terminator), or cut by noise or the end of the stream, is
//!   [`Reject::Truncated`]. A line longer than [`MAX_LINE`] bytes is one
//!   [`Reject::TooLarge`] (real lines are about 130 to 220 bytes), and the
//!   decoder resynchronises on the next header. A record whose fields are
//!   missing, duplicated or unparsable is [`Reject::Malformed`]; an
//!   impossible calendar date or time of day is [`Reject::BadTime`] (the
//!   format has no checksum, so these are the only integrity checks).
//! * **Device time.** The header is validated but **not** turned into
//!   `device_time`: the device clock is hand-set local time of unknown zone,
//!   without DST handling (users report having to re-set the hour at each
//!   DST change), and [`crate::Reading::time`] prefers `device_time` over the
//!   gateway's, so reading it as UTC would silently shift every reading by
//!   the zone offset. Lines are streamed live once a second (a 200-byte line
//!   takes about 0.2 s at 9600 baud), so the gateway's receive time is the
//!   better measurement time. Should a profile ever carry the device's UTC
//!   offset, the parsed fields are one line away from a `Timestamp`.
//! * **Exception bits** map to quality flags on every value of the line:
//!   no sensor, sensor off patient and no cable → `sensor_off`; pulse search
//!   and sensor calibrating → `searching`; low perfusion → `low_perfusion`;
//!   interference and ambient light → `artifact`; low signal IQ →
//!   `low_signal`; defective/unrecognized/incompatible sensor, cable faults,
//!   sensor life expired, emitter temperature and sensor current faults →
//!   `device_fault`. Masimo SET (`800`) and the SpCO/SpMet confidence bits
//!   concern no vital carried here and are ignored. Bits documented as
//!   reserved are ignored rather than rejected: the same bit `100` is
//!   "reserved" on the Rad-8 and "Incompatible Sensor" on the Radical-7,
//!   and the field grew from 3 to 6 to 7 digits across firmware, so a
//!   reserved bit today is a new condition tomorrow, not corruption.
//! * **Alarm bits** map to `device_alarm`: "alarm active" on every value of
//!   the line; the limit bits on their own vital (SpO2 high/low and
//!   desaturation index → `spo2`, pulse rate high/low → `pulse_rate`, PI
//!   delta → `perfusion_index`), also while the alarm is silenced or
//!   delayed. Alarm silenced, low battery and SpCO/SpMet limits are ignored.
//! * **Statuses.** A missing value gives one [`Status`] for its vital with
//!   the line's flags (which may be empty: the Rad-8 shows dashes without an
//!   exception while it starts measuring). A value that is present is a
//!   [`Measurement`] even when the exception bits say the sensor is off;
//!   the `sensor_off` flag then makes the reading invalid downstream.
//!
//! The encoder writes one Rad-8 line per snapshot (one second).

use crate::decode::{
    DecodeError, Decoded, Decoder, Encoder, Measurement, Reject, Status, StreamDecoder,
};
use crate::{Quality, Snapshot, Vital};
use std::io::Write as _;

/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex];

/// Longest line accepted, terminator excluded. Real lines are 130 to 220
/// bytes; anything longer is reported as [`Reject::TooLarge`].
pub const MAX_LINE: usize = 512;

/// Length of the `MM/DD/YY HH:MM:SS` header.
const HEADER_LEN: usize = 17;

/// Exception (`EXC=`) bits, per the Rad-8 and Radical-7 manuals.
pub mod exc {
    /// No sensor connected.
    pub const NO_SENSOR: u32 = 0x00_0001;
    /// Defective sensor.
    pub const DEFECTIVE_SENSOR: u32 = 0x00_0002;
    /// Low perfusion.
    pub const LOW_PERFUSION: u32 = 0x00_0004;
    /// Pulse search.
    pub const PULSE_SEARCH: u32 = 0x00_0008;
    /// Interference.
    pub const INTERFERENCE: u32 = 0x00_0010;
    /// Sensor off the patient.
    pub const SENSOR_OFF: u32 = 0x00_0020;
    /// Too much ambient light.
    pub const AMBIENT_LIGHT: u32 = 0x00_0040;
    /// Unrecognized sensor.
    pub const UNRECOGNIZED_SENSOR: u32 = 0x00_0080;
    /// Incompatible sensor (Radical-7; reserved on the Rad-8).
    pub const INCOMPATIBLE_SENSOR: u32 = 0x00_0100;
    /// Low signal IQ.
    pub const LOW_SIGNAL_IQ: u32 = 0x00_0400;
    /// Masimo SET: the algorithm runs in full SET mode (informational).
    pub const MASIMO_SET: u32 = 0x00_0800;
    /// No patient cable connected.
    pub const NO_CABLE: u32 = 0x00_1000;
    /// Patient cable life expired.
    pub const CABLE_LIFE_EXPIRED: u32 = 0x00_2000;
    /// Incompatible patient cable.
    pub const INCOMPATIBLE_CABLE: u32 = 0x00_4000;
    /// Unrecognized patient cable.
    pub const UNRECOGNIZED_CABLE: u32 = 0x00_8000;
    /// Defective patient cable.
    pub const DEFECTIVE_CABLE: u32 = 0x01_0000;
    /// Sensor calibrating.
    pub const SENSOR_CALIBRATING: u32 = 0x02_0000;
    /// Sensor life expired.
    pub const SENSOR_LIFE_EXPIRED: u32 = 0x04_0000;
    /// Emitter temperature out of range.
    pub const EMITTER_TEMPERATURE: u32 = 0x08_0000;
    /// Sensor current limit exceeded.
    pub const SENSOR_CURRENT_LIMIT: u32 = 0x10_0000;
    /// SpCO low confidence (no vital here).
    pub const SPCO_LOW_CONFIDENCE: u32 = 0x20_0000;
    /// SpMet low confidence (no vital here).
    pub const SPMET_LOW_CONFIDENCE: u32 = 0x40_0000;
}

/// Alarm status (`ALARM=`) bits, per the Radical-7 manual.
pub mod alarm {
    /// SpO2 above its high limit.
    pub const SPO2_HIGH: u32 = 0x0001;
    /// SpO2 below its low limit.
    pub const SPO2_LOW: u32 = 0x0002;
    /// Pulse rate above its high limit.
    pub const PULSE_RATE_HIGH: u32 = 0x0004;
    /// Pulse rate below its low limit.
    pub const PULSE_RATE_LOW: u32 = 0x0008;
    /// An alarm is active.
    pub const ACTIVE: u32 = 0x0010;
    /// Alarms are silenced (ignored).
    pub const SILENCED: u32 = 0x0020;
    /// Low battery (ignored: not a property of the values).
    pub const LOW_BATTERY: u32 = 0x0040;
    /// Desaturation index alarm.
    pub const DESAT_INDEX: u32 = 0x1000;
    /// PI delta (rate of change) alarm.
    pub const PI_DELTA: u32 = 0x2000;
}

/// Quality flags the exception bits stand for.
pub fn exception_quality(bits: u32) -> Quality {
    const MAP: [(u32, Quality); 19] = [
        (exc::NO_SENSOR, Quality::SENSOR_OFF),
        (exc::DEFECTIVE_SENSOR, Quality::DEVICE_FAULT),
        (exc::LOW_PERFUSION, Quality::LOW_PERFUSION),
        (exc::PULSE_SEARCH, Quality::SEARCHING),
        (exc::INTERFERENCE, Quality::ARTIFACT),
        (exc::SENSOR_OFF, Quality::SENSOR_OFF),
        (exc::AMBIENT_LIGHT, Quality::ARTIFACT),
        (exc::UNRECOGNIZED_SENSOR, Quality::DEVICE_FAULT),
        (exc::INCOMPATIBLE_SENSOR, Quality::DEVICE_FAULT),
        (exc::LOW_SIGNAL_IQ, Quality::LOW_SIGNAL),
        (exc::NO_CABLE, Quality::SENSOR_OFF),
        (exc::CABLE_LIFE_EXPIRED, Quality::DEVICE_FAULT),
        (exc::INCOMPATIBLE_CABLE, Quality::DEVICE_FAULT),
        (exc::UNRECOGNIZED_CABLE, Quality::DEVICE_FAULT),
        (exc::DEFECTIVE_CABLE, Quality::DEVICE_FAULT),
        (exc::SENSOR_CALIBRATING, Quality::SEARCHING),
        (exc::SENSOR_LIFE_EXPIRED, Quality::DEVICE_FAULT),
        (exc::EMITTER_TEMPERATURE, Quality::DEVICE_FAULT),
        (exc::SENSOR_CURRENT_LIMIT, Quality::DEVICE_FAULT),
    ];
    let mut q = Quality::NONE;
    for (bit, flag) in MAP {
        if bits & bit != 0 {
            q |= flag;
        }
    }
    q
}

/// The alarm bits that concern `vital` (besides [`alarm::ACTIVE`], which
/// concerns every value of the line).
const fn alarm_mask(vital: Vital) -> u32 {
    match vital {
        Vital::Spo2 => alarm::SPO2_HIGH | alarm::SPO2_LOW | alarm::DESAT_INDEX,
        Vital::PulseRate => alarm::PULSE_RATE_HIGH | alarm::PULSE_RATE_LOW,
        Vital::PerfusionIndex => alarm::PI_DELTA,
        _ => 0,
    }
}

/// A fresh decoder.
pub fn decoder() -> Decoder {
    Decoder::Stream(Box::new(MasimoDecoder::new()))
}

/// An encoder writing the Rad-8 layout; the serial number is derived from
/// the device id.
pub fn encoder(device_id: &str) -> Box<dyn Encoder> {
    Box::new(MasimoEncoder::new(device_id))
}

// ---------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------

const fn is_terminator(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// Bytes a line may contain: printable ASCII and TAB.
const fn is_line_byte(b: u8) -> bool {
    b == b'\t' || (b >= 0x20 && b <= 0x7e)
}

/// Whether `s` starts with a `MM/DD/YY HH:MM:SS` header that is followed by
/// a separator or by the end of `s`.
fn is_header_at(s: &[u8]) -> bool {
    let Some(h) = s.get(..HEADER_LEN) else {
        return false;
    };
    let shape = h.iter().enumerate().all(|(i, &b)| match i {
        2 | 5 => b == b'/',
        8 => b == b' ',
        11 | 14 => b == b':',
        _ => b.is_ascii_digit(),
    });
    shape && matches!(s.get(HEADER_LEN), None | Some(b' ' | b'\t'))
}

/// Position of the first header at or after `from`.
fn find_header(s: &[u8], from: usize) -> Option<usize> {
    // A header has `/` at its third byte: look only there.
    let mut i = from;
    loop {
        let rest = s.get(i.checked_add(2)?..)?;
        let slash = rest.iter().position(|&b| b == b'/')?;
        let start = i + slash;
        if s.get(start..).is_some_and(is_header_at) {
            return Some(start);
        }
        i = start + 1;
    }
}

/// Position of the last header in `s`.
fn rfind_header(s: &[u8]) -> Option<usize> {
    let mut last = None;
    let mut from = 0;
    while let Some(h) = find_header(s, from) {
        last = Some(h);
        from = h + HEADER_LEN;
    }
    last
}

/// `s` as text for an error detail, cut to a readable length.
fn excerpt(s: &[u8]) -> String {
    const MAX: usize = 40;
    let cut = s.get(..MAX).unwrap_or(s);
    let mut t = String::from_utf8_lossy(cut).into_owned();
    if s.len() > MAX {
        t.push('…');
    }
    t
}

/// Where pending garbage is held until the run ends, so that a run is one
/// error however it was fed.
#[derive(Debug, Default)]
struct Sink {
    /// Pending skipped bytes `[start, end)`.
    garbage: Option<(u64, u64)>,
}

impl Sink {
    /// Skip `[start, end)`. Extends the pending run: anything between the
    /// pending run and this one was CR/LF (every other outcome flushes).
    fn skip(&mut self, start: u64, end: u64) {
        if end <= start {
            return;
        }
        self.garbage = Some(match self.garbage {
            Some((s, _)) => (s, end),
            None => (start, end),
        });
    }

    fn flush(&mut self, out: &mut dyn FnMut(Decoded)) {
        if let Some((s, e)) = self.garbage.take() {
            out(Decoded::Error(DecodeError::new(
                s,
                e - s,
                Reject::Garbage,
                format!(
                    "skipped {} byte(s) that do not start a `MM/DD/YY HH:MM:SS` line",
                    e - s
                ),
            )));
        }
    }

    fn emit(&mut self, d: Decoded, out: &mut dyn FnMut(Decoded)) {
        self.flush(out);
        out(d);
    }

    fn error(
        &mut self,
        offset: u64,
        len: u64,
        reason: Reject,
        detail: impl Into<String>,
        out: &mut dyn FnMut(Decoded),
    ) {
        self.emit(
            Decoded::Error(DecodeError::new(offset, len, reason, detail)),
            out,
        );
    }
}

/// How the bytes being processed ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// At a line terminator: the last record is complete.
    Line,
    /// Where a new header begins.
    NewRecord,
    /// At noise (a byte that is not text).
    Noise,
    /// At the end of the stream.
    Stream,
}

/// Decoder state (see the module documentation).
pub struct MasimoDecoder {
    /// The current line, up to [`MAX_LINE`] bytes.
    buf: [u8; MAX_LINE],
    len: usize,
    /// Stream offset of `buf[0]`.
    start: u64,
    /// Stream offset of the next byte fed.
    pos: u64,
    /// Start of a record longer than [`MAX_LINE`] whose bytes are being
    /// skipped up to the next header or line end.
    overlong: Option<u64>,
    sink: Sink,
}

impl Default for MasimoDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl MasimoDecoder {
    /// A decoder at stream offset 0.
    pub fn new() -> Self {
        MasimoDecoder {
            buf: [0; MAX_LINE],
            len: 0,
            start: 0,
            pos: 0,
            overlong: None,
            sink: Sink::default(),
        }
    }

    /// Drop the first `k` buffered bytes.
    fn shift(&mut self, k: usize) {
        let k = k.min(self.len);
        self.buf.copy_within(k..self.len, 0);
        self.len -= k;
        self.start += k as u64;
    }

    /// Append line bytes, making room as needed.
    fn append(&mut self, mut data: &[u8], out: &mut dyn FnMut(Decoded)) {
        while !data.is_empty() {
            if self.len == 0 {
                self.start = self.pos;
            }
            let room = MAX_LINE - self.len;
            if room == 0 {
                self.make_room(out);
                continue;
            }
            let k = room.min(data.len());
            let (now, later) = data.split_at(k);
            if let Some(dst) = self.buf.get_mut(self.len..self.len + k) {
                dst.copy_from_slice(now);
            }
            self.len += k;
            self.pos += k as u64;
            data = later;
        }
    }

    /// The buffer is full and the line has not ended.
    fn make_room(&mut self, out: &mut dyn FnMut(Decoded)) {
        let keep = HEADER_LEN; // a header may straddle the end
        let buf = &self.buf[..self.len];
        if let Some(os) = self.overlong {
            match find_header(buf, 0) {
                Some(k) => {
                    self.overlong = None;
                    let end = self.start + k as u64;
                    self.sink.error(
                        os,
                        end - os,
                        Reject::TooLarge,
                        format!("line longer than {MAX_LINE} bytes"),
                        out,
                    );
                    self.shift(k);
                }
                None => self.shift(self.len.saturating_sub(keep)),
            }
            return;
        }
        match rfind_header(buf) {
            Some(0) => {
                self.overlong = Some(self.start);
                self.shift(self.len.saturating_sub(keep));
            }
            Some(k) => {
                let head = &self.buf[..k];
                process(head, self.start, End::NewRecord, None, &mut self.sink, out);
                self.shift(k);
            }
            None => {
                let k = self.len.saturating_sub(keep);
                self.sink.skip(self.start, self.start + k as u64);
                self.shift(k);
            }
        }
    }

    /// Process everything buffered, the line having ended as `end`.
    fn end_line(&mut self, end: End, out: &mut dyn FnMut(Decoded)) {
        let overlong = self.overlong.take();
        if self.len == 0 {
            if let Some(os) = overlong {
                let e = self.pos.max(os);
                self.sink.error(
                    os,
                    e - os,
                    Reject::TooLarge,
                    format!("line longer than {MAX_LINE} bytes"),
                    out,
                );
            }
            return;
        }
        let buf = &self.buf[..self.len];
        process(buf, self.start, end, overlong, &mut self.sink, out);
        self.len = 0;
    }
}

/// Decode the bytes `buf` (stream offset `base`) that ended as `end`: bytes
/// before the first header are garbage (or the tail of an overlong record
/// that began at `overlong`), every record but the last was cut by the next
/// header, the last is complete only when `end` is [`End::Line`].
fn process(
    buf: &[u8],
    base: u64,
    end: End,
    overlong: Option<u64>,
    sink: &mut Sink,
    out: &mut dyn FnMut(Decoded),
) {
    let first = find_header(buf, 0);
    let prefix = first.unwrap_or(buf.len());
    let prefix_end = base + prefix as u64;
    match overlong {
        Some(os) => sink.error(
            os,
            prefix_end.saturating_sub(os),
            Reject::TooLarge,
            format!("line longer than {MAX_LINE} bytes"),
            out,
        ),
        None => sink.skip(base, prefix_end),
    }
    let Some(mut h) = first else {
        return;
    };
    loop {
        let offset = base + h as u64;
        match find_header(buf, h + HEADER_LEN) {
            Some(next) => {
                let len = (next - h) as u64;
                sink.error(
                    offset,
                    len,
                    Reject::Truncated,
                    "record interrupted by the start of another record (line terminator lost)",
                    out,
                );
                h = next;
            }
            None => {
                let rec = buf.get(h..).unwrap_or_default();
                let len = rec.len() as u64;
                match end {
                    End::Line => parse_record(rec, offset, sink, out),
                    End::NewRecord => sink.error(
                        offset,
                        len,
                        Reject::Truncated,
                        "record interrupted by the start of another record (line terminator lost)",
                        out,
                    ),
                    End::Noise => sink.error(
                        offset,
                        len,
                        Reject::Truncated,
                        "record cut short by non-text bytes",
                        out,
                    ),
                    End::Stream => sink.error(
                        offset,
                        len,
                        Reject::Truncated,
                        "stream ended before the line terminator",
                        out,
                    ),
                }
                return;
            }
        }
    }
}

/// Two ASCII digits at `s[i..i + 2]` (the header was shape-checked).
fn two_digits(s: &[u8], i: usize) -> u32 {
    match s.get(i..i + 2) {
        Some([a, b]) => u32::from(a.wrapping_sub(b'0')) * 10 + u32::from(b.wrapping_sub(b'0')),
        _ => 0,
    }
}

/// Check the header's calendar values.
fn check_time(h: &[u8]) -> Result<(), String> {
    let (mo, d, y) = (two_digits(h, 0), two_digits(h, 3), two_digits(h, 6));
    let (hh, mm, ss) = (two_digits(h, 9), two_digits(h, 12), two_digits(h, 15));
    if !(1..=12).contains(&mo) {
        return Err(format!("month {mo:02} is not 01-12"));
    }
    // Two-digit years are 20YY: the devices date from 2000 onwards.
    let leap = y % 4 == 0;
    let days = match mo {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    if d == 0 || d > days {
        return Err(format!(
            "day {d:02} does not exist in month {mo:02} of 20{y:02}"
        ));
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return Err(format!("time {hh:02}:{mm:02}:{ss:02} is not a time of day"));
    }
    Ok(())
}

/// A decimal value, `Ok(None)` for the device's dashes.
fn parse_number(v: &[u8]) -> Result<Option<f64>, &'static str> {
    let v = v.strip_suffix(b"%").unwrap_or(v);
    if v.is_empty() {
        return Err("empty value");
    }
    if v.contains(&b'-') && v.iter().all(|&b| b == b'-' || b == b'.') {
        return Ok(None);
    }
    let mut dots = 0;
    for &b in v {
        match b {
            b'0'..=b'9' => {}
            b'.' => dots += 1,
            _ => return Err("not a number"),
        }
    }
    if dots > 1 || v.first() == Some(&b'.') || v.last() == Some(&b'.') {
        return Err("not a number");
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Some)
        .ok_or("not a number")
}

/// 1 to 8 hexadecimal digits.
fn parse_hex(v: &[u8]) -> Result<u32, &'static str> {
    if v.is_empty() || v.len() > 8 {
        return Err("not 1 to 8 hexadecimal digits");
    }
    v.iter().try_fold(0u32, |acc, &b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return Err("not 1 to 8 hexadecimal digits"),
        };
        Ok((acc << 4) | u32::from(d))
    })
}

/// The fields the decoder reads.
#[derive(Default)]
struct Fields<'a> {
    spo2: Option<&'a [u8]>,
    bpm: Option<&'a [u8]>,
    pi: Option<&'a [u8]>,
    alarm: Option<&'a [u8]>,
    exc: Option<&'a [u8]>,
}

fn parse_fields(body: &[u8]) -> Result<Fields<'_>, String> {
    let mut f = Fields::default();
    let mut any = false;
    for tok in body
        .split(|&b| b == b' ' || b == b'\t')
        .filter(|t| !t.is_empty())
    {
        any = true;
        let Some(eq) = tok.iter().position(|&b| b == b'=') else {
            return Err(format!("field `{}` is not LABEL=VALUE", excerpt(tok)));
        };
        let (label, value) = (&tok[..eq], &tok[eq + 1..]);
        if label.is_empty() {
            return Err(format!("field `{}` has no label", excerpt(tok)));
        }
        let slot = match label {
            b"SPO2" => &mut f.spo2,
            b"BPM" => &mut f.bpm,
            b"PI" => &mut f.pi,
            b"ALARM" => &mut f.alarm,
            b"EXC" => &mut f.exc,
            _ => continue,
        };
        if slot.is_some() {
            return Err(format!("field `{}=` appears twice", excerpt(label)));
        }
        *slot = Some(value);
    }
    if !any {
        return Err("no fields after the date and time".to_owned());
    }
    Ok(f)
}

fn required<'a>(v: Option<&'a [u8]>, label: &str) -> Result<&'a [u8], String> {
    v.ok_or_else(|| format!("missing `{label}=` field"))
}

fn number(v: &[u8], label: &str) -> Result<Option<f64>, String> {
    parse_number(v).map_err(|e| format!("{label} value `{}`: {e}", excerpt(v)))
}

fn hex(v: &[u8], label: &str) -> Result<u32, String> {
    parse_hex(v).map_err(|e| format!("{label} value `{}`: {e}", excerpt(v)))
}

/// The values of one record: `(vital, value)` in line order, and the
/// exception and alarm bits.
type Record = ([(Vital, Option<f64>); 3], u32, u32);

fn read_record(body: &[u8]) -> Result<Record, String> {
    let f = parse_fields(body)?;
    let spo2 = number(required(f.spo2, "SPO2")?, "SPO2")?;
    let bpm = number(required(f.bpm, "BPM")?, "BPM")?;
    let pi = number(required(f.pi, "PI")?, "PI")?;
    let alarm_bits = hex(required(f.alarm, "ALARM")?, "ALARM")?;
    let exc_bits = hex(required(f.exc, "EXC")?, "EXC")?;
    Ok((
        [
            (Vital::Spo2, spo2),
            (Vital::PulseRate, bpm),
            (Vital::PerfusionIndex, pi),
        ],
        exc_bits,
        alarm_bits,
    ))
}

/// Decode one complete record (starting with a header) at `offset`.
fn parse_record(rec: &[u8], offset: u64, sink: &mut Sink, out: &mut dyn FnMut(Decoded)) {
    let len = rec.len() as u64;
    let (header, body) = rec.split_at(HEADER_LEN.min(rec.len()));
    if let Err(e) = check_time(header) {
        sink.error(offset, len, Reject::BadTime, e, out);
        return;
    }
    let (values, exc_bits, alarm_bits) = match read_record(body) {
        Ok(r) => r,
        Err(e) => {
            sink.error(offset, len, Reject::Malformed, e, out);
            return;
        }
    };
    let mut base = exception_quality(exc_bits);
    base.set(Quality::DEVICE_ALARM, alarm_bits & alarm::ACTIVE != 0);
    for (vital, value) in values {
        let mut quality = base;
        if alarm_bits & alarm_mask(vital) != 0 {
            quality |= Quality::DEVICE_ALARM;
        }
        let d = match value {
            Some(value) => Decoded::Measurement(Measurement {
                vital,
                value,
                device_time: None,
                quality,
                offset,
            }),
            None => Decoded::Status(Status {
                vital: Some(vital),
                quality,
                device_time: None,
                offset,
            }),
        };
        sink.emit(d, out);
    }
}

impl StreamDecoder for MasimoDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Decoded)) {
        let mut rest = chunk;
        while let Some(&b) = rest.first() {
            if is_terminator(b) {
                self.end_line(End::Line, out);
                let n = rest.iter().take_while(|&&b| is_terminator(b)).count();
                if self.sink.garbage.is_some() {
                    // CR/LF inside a garbage run belong to the run.
                    self.sink.skip(self.pos, self.pos + n as u64);
                }
                self.pos += n as u64;
                rest = &rest[n..];
            } else if is_line_byte(b) {
                let n = rest.iter().take_while(|&&b| is_line_byte(b)).count();
                self.append(&rest[..n], out);
                rest = &rest[n..];
            } else {
                self.end_line(End::Noise, out);
                let n = rest
                    .iter()
                    .take_while(|&&b| !is_line_byte(b) && !is_terminator(b))
                    .count();
                self.sink.skip(self.pos, self.pos + n as u64);
                self.pos += n as u64;
                rest = &rest[n..];
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Decoded)) {
        self.end_line(End::Stream, out);
        self.sink.flush(out);
        self.len = 0;
        self.start = self.pos;
    }
}

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

/// Writes one Rad-8 ASCII 1 line per snapshot.
pub struct MasimoEncoder {
    serial: u64,
}

impl MasimoEncoder {
    /// An encoder whose `SN=` is derived from `device_id` (FNV-1a, 10 digits).
    pub fn new(device_id: &str) -> Self {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in device_id.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        MasimoEncoder {
            serial: h % 10_000_000_000,
        }
    }
}

/// `value` rounded to `decimals` and clamped to `[lo, hi]` as the display
/// does, or `None` when there is no (finite) value.
fn device_value(value: Option<f64>, decimals: i32, lo: f64, hi: f64) -> Option<f64> {
    let v = value.filter(|v| v.is_finite())?;
    let scale = 10f64.powi(decimals);
    let v = ((v * scale).round() / scale).clamp(lo, hi);
    // -0.0 (a small negative rounded) would print as "-00".
    Some(if v == 0.0 { 0.0 } else { v })
}

impl Encoder for MasimoEncoder {
    fn encode(&mut self, s: &Snapshot, out: &mut Vec<u8>) {
        let q = s.quality;
        let off = q.contains(Quality::SENSOR_OFF);
        let secs = s.time.millis().div_euclid(1000);
        let t = time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{:02}/{:02}/{:02} {:02}:{:02}:{:02} SN={:010} ",
            u8::from(t.month()),
            t.day(),
            t.year().rem_euclid(100),
            t.hour(),
            t.minute(),
            t.second(),
            self.serial,
        );
        let value = |v: Vital| if off { None } else { s.get(v) };
        // Display ranges of the Rad-8: SpO2 0-100 %, pulse rate 0-240 /min,
        // PI 0.00-20.00 %.
        let _ = match device_value(value(Vital::Spo2), 0, 0.0, 100.0) {
            Some(v) => write!(out, "SPO2={v:03.0}% "),
            None => write!(out, "SPO2=---% "),
        };
        let _ = match device_value(value(Vital::PulseRate), 0, 0.0, 240.0) {
            Some(v) => write!(out, "BPM={v:03.0} "),
            None => write!(out, "BPM=--- "),
        };
        let _ = match device_value(value(Vital::PerfusionIndex), 2, 0.0, 20.0) {
            Some(v) => write!(out, "PI={v:05.2}% "),
            None => write!(out, "PI=--.--% "),
        };
        let mut exc_bits = exc::MASIMO_SET;
        for (flag, bit) in [
            (Quality::SENSOR_OFF, exc::SENSOR_OFF),
            (Quality::SEARCHING, exc::PULSE_SEARCH),
            (Quality::LOW_PERFUSION, exc::LOW_PERFUSION),
            (Quality::ARTIFACT, exc::INTERFERENCE),
            (Quality::LOW_SIGNAL, exc::LOW_SIGNAL_IQ),
            (Quality::DEVICE_FAULT, exc::DEFECTIVE_SENSOR),
        ] {
            if q.contains(flag) {
                exc_bits |= bit;
            }
        }
        let alarm_bits = if q.contains(Quality::DEVICE_ALARM) {
            alarm::ACTIVE
        } else {
            0
        };
        let _ = write!(
            out,
            "SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM={alarm_bits:04X} EXC={exc_bits:06X}\r\n"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::format::testing::{
        self, Rng, assert_testdata_matches, decode_chunks, errors, feed, finish, measurement as m,
        status as st,
    };

    fn decode(bytes: &[u8]) -> Vec<Decoded> {
        decode_chunks(&mut MasimoDecoder::new(), [bytes])
    }

    /// The three measurements of one record at offset 0.
    fn values(spo2: f64, pr: f64, pi: f64, q: Quality) -> Vec<Decoded> {
        vec![
            m(Vital::Spo2, spo2, q, 0),
            m(Vital::PulseRate, pr, q, 0),
            m(Vital::PerfusionIndex, pi, q, 0),
        ]
    }

    /// The three statuses of one record without values, at offset 0.
    fn statuses(q: Quality) -> Vec<Decoded> {
        vec![
            st(Vital::Spo2, q, 0),
            st(Vital::PulseRate, q, 0),
            st(Vital::PerfusionIndex, q, 0),
        ]
    }

    /// Published Rad-8 capture (yahnatan/pulseox README).
    const RAD8: &[u8] = b"02/22/16 22:47:45 SN=0000056661 SPO2=098% BPM=097 PI=03.60% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n";

    #[test]
    fn published_rad8_capture_decodes_to_its_three_values() {
        assert_eq!(decode(RAD8), values(98.0, 97.0, 3.6, Quality::NONE));
    }

    #[test]
    fn md_pnp_radical7_example_line_flags_sensor_off_on_its_values() {
        let line = b"12/01/05 11:56:29 SN=0123456789 SPO2=098% BPM=240 PI=20.00% SPCO=01.0% SPMET=00.5% DESAT=01 PIDELTA=-02 PVI=027 ALARM=0000 EXC=000820\x0d\x0a";
        let q = Quality::SENSOR_OFF;
        assert_eq!(decode(line), values(98.0, 240.0, 20.0, q));
    }

    #[test]
    fn md_pnp_radical5_short_layout_with_two_digit_alarm_decodes() {
        let line = b"09/15/10 15:10:29 SPO2=097% BPM=064 PI=11.82% ALARM=20 EXC=800\r\n";
        assert_eq!(decode(line), values(97.0, 64.0, 11.82, Quality::NONE));
    }

    #[test]
    fn newer_radical7_layout_with_extra_fields_and_pi_without_percent_decodes() {
        // nmenon/masimo-datacapture, "Radical-7 colour" capture.
        let line = b"03/17/16 19:19:36 SN=---------- SPO2=098% BPM=123 PI=00.55 SPCO=--% SPMET=--.-% SPHB=--.- SPOC=-- RESVD=--- DESAT=-- PIDELTA=+-- PVI=--- ALARM=000000 EXC=0000C00 EXC1=00000000\r\n";
        let q = Quality::LOW_SIGNAL;
        assert_eq!(decode(line), values(98.0, 123.0, 0.55, q));
    }

    #[test]
    fn dashes_become_statuses_never_numbers() {
        // Radical-7 service manual line (via nmenon/masimo-datacapture).
        let line = b"05/15/07 08:12:21 SN=0000070986 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- PVI=--- ALARM=0000 EXC=000000 \r\n";
        assert_eq!(decode(line), statuses(Quality::NONE));
    }

    #[test]
    fn no_sensor_line_reports_sensor_off_statuses() {
        let line = b"03/19/16 13:37:12 SN=0000093112 SPO2=---% BPM=--- PI=--.--% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0010 EXC=000001\r\n";
        let q = Quality::SENSOR_OFF | Quality::DEVICE_ALARM;
        assert_eq!(decode(line), statuses(q));
    }

    #[test]
    fn every_exception_bit_maps_to_its_quality_flag() {
        let table: [(u32, Quality); 24] = [
            (exc::NO_SENSOR, Quality::SENSOR_OFF),
            (exc::DEFECTIVE_SENSOR, Quality::DEVICE_FAULT),
            (exc::LOW_PERFUSION, Quality::LOW_PERFUSION),
            (exc::PULSE_SEARCH, Quality::SEARCHING),
            (exc::INTERFERENCE, Quality::ARTIFACT),
            (exc::SENSOR_OFF, Quality::SENSOR_OFF),
            (exc::AMBIENT_LIGHT, Quality::ARTIFACT),
            (exc::UNRECOGNIZED_SENSOR, Quality::DEVICE_FAULT),
            (exc::INCOMPATIBLE_SENSOR, Quality::DEVICE_FAULT),
            (0x200, Quality::NONE),
            (exc::LOW_SIGNAL_IQ, Quality::LOW_SIGNAL),
            (exc::MASIMO_SET, Quality::NONE),
            (exc::NO_CABLE, Quality::SENSOR_OFF),
            (exc::CABLE_LIFE_EXPIRED, Quality::DEVICE_FAULT),
            (exc::INCOMPATIBLE_CABLE, Quality::DEVICE_FAULT),
            (exc::UNRECOGNIZED_CABLE, Quality::DEVICE_FAULT),
            (exc::DEFECTIVE_CABLE, Quality::DEVICE_FAULT),
            (exc::SENSOR_CALIBRATING, Quality::SEARCHING),
            (exc::SENSOR_LIFE_EXPIRED, Quality::DEVICE_FAULT),
            (exc::EMITTER_TEMPERATURE, Quality::DEVICE_FAULT),
            (exc::SENSOR_CURRENT_LIMIT, Quality::DEVICE_FAULT),
            (exc::SPCO_LOW_CONFIDENCE, Quality::NONE),
            (exc::SPMET_LOW_CONFIDENCE, Quality::NONE),
            (0x80_0000, Quality::NONE),
        ];
        for (bit, q) in table {
            let line = format!(
                "11/21/26 07:01:02 SN=0000123456 SPO2=097% BPM=072 PI=02.50% ALARM=0000 EXC={bit:06X}\r\n"
            );
            let v = decode(line.as_bytes());
            assert_eq!(v.len(), 3, "{bit:06X}");
            for d in v {
                match d {
                    Decoded::Measurement(x) => assert_eq!(x.quality, q, "EXC={bit:06X}"),
                    other => panic!("EXC={bit:06X}: {other:?}"),
                }
            }
        }
        // The trend-format examples of the Rad-8 manual.
        assert_eq!(
            exception_quality(0x828),
            Quality::SEARCHING | Quality::SENSOR_OFF
        );
        assert_eq!(exception_quality(0xC00), Quality::LOW_SIGNAL);
    }

    #[test]
    fn alarm_limit_bits_flag_their_own_vital_and_alarm_active_flags_all() {
        let cases: [(u32, [bool; 3]); 9] = [
            (alarm::SPO2_HIGH, [true, false, false]),
            (alarm::SPO2_LOW, [true, false, false]),
            (alarm::DESAT_INDEX, [true, false, false]),
            (alarm::PULSE_RATE_HIGH, [false, true, false]),
            (alarm::PULSE_RATE_LOW, [false, true, false]),
            (alarm::PI_DELTA, [false, false, true]),
            (alarm::ACTIVE, [true, true, true]),
            (alarm::SILENCED | alarm::LOW_BATTERY, [false, false, false]),
            (0x0F00, [false, false, false]),
        ];
        for (bits, want) in cases {
            let line = format!(
                "11/21/26 07:01:02 SPO2=097% BPM=072 PI=02.50% ALARM={bits:04X} EXC=000800\r\n"
            );
            let got: Vec<bool> = decode(line.as_bytes())
                .iter()
                .map(|d| match d {
                    Decoded::Measurement(x) => x.quality.contains(Quality::DEVICE_ALARM),
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(got, want, "ALARM={bits:04X}");
        }
    }

    #[test]
    fn lf_cr_bare_lf_and_blank_lines_all_frame_the_same() {
        let body = &RAD8[..RAD8.len() - 2];
        let mut a = body.to_vec();
        a.extend_from_slice(b"\n\r");
        a.extend_from_slice(body);
        a.extend_from_slice(b"\n\n\n");
        a.extend_from_slice(body);
        a.extend_from_slice(b"\r");
        let v = decode(&a);
        assert!(errors(&v).is_empty(), "{v:?}");
        assert_eq!(v.len(), 9);
        let second = (body.len() + 2) as u64;
        assert_eq!(v[3], m(Vital::Spo2, 98.0, Quality::NONE, second));
    }

    #[test]
    fn a_line_split_across_any_feeds_decodes_the_same() {
        let mut stream = Vec::new();
        stream.extend_from_slice(b"junk\r\n");
        for _ in 0..3 {
            stream.extend_from_slice(RAD8);
        }
        stream.extend_from_slice(b"\x00\xff");
        stream.extend_from_slice(&RAD8[..60]);
        let whole = decode(&stream);
        assert_eq!(
            decode_chunks(&mut MasimoDecoder::new(), stream.chunks(1)),
            whole
        );
        let mut rng = Rng::new(7);
        for _ in 0..50 {
            let chunks = rng.chunks(&stream, 40);
            assert_eq!(decode_chunks(&mut MasimoDecoder::new(), chunks), whole);
        }
    }

    #[test]
    fn garbage_between_lines_is_skipped_and_reported_once() {
        let mut s = RAD8.to_vec();
        let g = s.len() as u64;
        s.extend_from_slice(b"\x00\x13\xfe hello\r\n\xff\xff world ");
        let next = s.len() as u64;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(g, next - g, Reject::Garbage)]);
        assert_eq!(v.len(), 7);
        assert_eq!(v[4], m(Vital::Spo2, 98.0, Quality::NONE, next));
    }

    #[test]
    fn a_partial_line_at_connection_is_garbage() {
        let mut s = RAD8[40..].to_vec();
        let start = s.len() as u64;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(0, start, Reject::Garbage)]);
        assert_eq!(v[1], m(Vital::Spo2, 98.0, Quality::NONE, start));
    }

    #[test]
    fn a_record_whose_terminator_was_lost_is_truncated_and_the_next_decodes() {
        let mut s = RAD8[..70].to_vec();
        let next = s.len() as u64;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(0, next, Reject::Truncated)]);
        assert_eq!(v[1], m(Vital::Spo2, 98.0, Quality::NONE, next));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn noise_inside_a_line_truncates_it() {
        let mut s = RAD8[..50].to_vec();
        s.extend_from_slice(b"\x00\x00");
        s.extend_from_slice(&RAD8[52..]);
        let v = decode(&s);
        // The tail after the noise has no header: it joins the garbage run.
        assert_eq!(
            errors(&v),
            vec![
                (0, 50, Reject::Truncated),
                (50, RAD8.len() as u64 - 50, Reject::Garbage)
            ]
        );
    }

    #[test]
    fn a_pending_line_at_finish_is_truncated_and_the_decoder_resets() {
        let mut d = MasimoDecoder::new();
        assert!(feed(&mut d, [&RAD8[..80]]).is_empty());
        let v = finish(&mut d);
        assert_eq!(errors(&v), vec![(0, 80, Reject::Truncated)]);
        let v = decode_chunks(&mut d, [RAD8]);
        assert_eq!(v[0], m(Vital::Spo2, 98.0, Quality::NONE, 80));
        assert_eq!(v.len(), 3);
    }

    #[test]
    fn an_overlong_line_is_rejected_once_and_the_next_line_decodes() {
        let mut s = RAD8[..RAD8.len() - 2].to_vec();
        s.extend(std::iter::repeat_n(b'X', 600));
        s.extend_from_slice(b"\r\n");
        let long = s.len() as u64 - 2;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(0, long, Reject::TooLarge)]);
        assert_eq!(v[1], m(Vital::Spo2, 98.0, Quality::NONE, long + 2));
        // The same, with the next header following without a terminator.
        let mut s = RAD8[..RAD8.len() - 2].to_vec();
        s.extend(std::iter::repeat_n(b' ', 1000));
        let long = s.len() as u64;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(0, long, Reject::TooLarge)]);
        assert_eq!(v[1], m(Vital::Spo2, 98.0, Quality::NONE, long));
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn long_text_without_any_header_is_one_garbage_run() {
        let mut s: Vec<u8> = std::iter::repeat_n(b'a', 2000).collect();
        s.extend_from_slice(b"\r\n");
        s.extend(std::iter::repeat_n(b'b', 700));
        s.extend_from_slice(b"\r\n");
        let g = s.len() as u64;
        s.extend_from_slice(RAD8);
        let v = decode(&s);
        // The CR/LF between and after the skipped lines belong to the run.
        assert_eq!(errors(&v), vec![(0, g, Reject::Garbage)]);
        assert_eq!(v[1], m(Vital::Spo2, 98.0, Quality::NONE, g));
    }

    #[test]
    fn malformed_records_are_rejected_with_their_reason() {
        let cases: [(&str, &str); 9] = [
            (
                "SPO2=9x% BPM=072 PI=02.50% ALARM=0000 EXC=000800",
                "SPO2 value",
            ),
            ("SPO2=097% BPM=072 PI=02.50% ALARM=0000", "missing `EXC=`"),
            (
                "SPO2=097% SPO2=096% BPM=072 PI=02.50% ALARM=0000 EXC=0",
                "twice",
            ),
            (
                "SPO2=097% BPM=072 oops PI=02.50% ALARM=0000 EXC=0",
                "not LABEL=VALUE",
            ),
            (
                "SPO2=097% BPM=072 PI=02.50% ALARM=00G0 EXC=0",
                "ALARM value",
            ),
            (
                "SPO2=097% BPM=072 PI=02.50% ALARM=0 EXC=123456789",
                "EXC value",
            ),
            ("SPO2=097% BPM=0-2 PI=02.50% ALARM=0 EXC=0", "BPM value"),
            ("SPO2=097% BPM=072 PI=2..5 ALARM=0 EXC=0", "PI value"),
            ("", "no fields"),
        ];
        for (body, why) in cases {
            let line = format!("11/21/26 07:01:02 {body}\r\n");
            let v = decode(line.as_bytes());
            match v.as_slice() {
                [Decoded::Error(e)] => {
                    assert_eq!(e.reason, Reject::Malformed, "{body}");
                    assert_eq!(e.len, line.len() as u64 - 2);
                    assert!(e.detail.contains(why), "{body}: {}", e.detail);
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn impossible_dates_and_times_are_bad_time() {
        for head in [
            "13/21/26 07:01:02",
            "00/21/26 07:01:02",
            "02/30/26 07:01:02",
            "02/29/25 07:01:02",
            "04/31/26 07:01:02",
            "11/00/26 07:01:02",
            "11/21/26 24:01:02",
            "11/21/26 07:60:02",
            "11/21/26 07:01:60",
        ] {
            let line = format!("{head} SPO2=097% BPM=072 PI=02.50% ALARM=0000 EXC=000800\r\n");
            let v = decode(line.as_bytes());
            assert_eq!(
                errors(&v),
                vec![(0, line.len() as u64 - 2, Reject::BadTime)],
                "{head}"
            );
            assert_eq!(v.len(), 1);
        }
        let leap = b"02/29/24 23:59:59 SPO2=097% BPM=072 PI=02.50% ALARM=0000 EXC=000800\r\n";
        assert_eq!(decode(leap).len(), 3);
    }

    #[test]
    fn the_device_clock_is_not_used_as_device_time() {
        for d in decode(RAD8) {
            match d {
                Decoded::Measurement(x) => assert_eq!(x.device_time, None),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn offsets_are_absolute_across_feeds() {
        let v = decode_chunks(&mut MasimoDecoder::new(), [RAD8, b"xx", RAD8]);
        let n = RAD8.len() as u64;
        assert_eq!(errors(&v), vec![(n, 2, Reject::Garbage)]);
        assert_eq!(v[4], m(Vital::Spo2, 98.0, Quality::NONE, n + 2));
    }

    fn snapshot(spo2: Option<f64>, pr: Option<f64>, pi: Option<f64>, q: Quality) -> Snapshot {
        let set = [
            (Vital::Spo2, spo2),
            (Vital::PulseRate, pr),
            (Vital::PerfusionIndex, pi),
        ];
        // 2026-11-21T07:01:02Z
        testing::snapshot(1_795_244_462_000, q, &set)
    }

    #[test]
    fn encoder_writes_the_rad8_layout() {
        let mut e = MasimoEncoder::new("ox-bedroom");
        let mut out = Vec::new();
        e.encode(
            &snapshot(Some(97.4), Some(72.0), Some(2.5), Quality::NONE),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        let sn = format!("{:010}", e.serial);
        assert_eq!(
            text,
            format!(
                "11/21/26 07:01:02 SN={sn} SPO2=097% BPM=072 PI=02.50% SPCO=--.-% SPMET=--.-% DESAT=-- PIDELTA=+-- ALARM=0000 EXC=000800\r\n"
            )
        );
    }

    #[test]
    fn encoder_uses_dashes_and_exception_bits_for_sensor_off() {
        let mut e = MasimoEncoder::new("x");
        let mut out = Vec::new();
        let q = Quality::SENSOR_OFF | Quality::DEVICE_ALARM;
        e.encode(&snapshot(Some(97.0), Some(72.0), Some(2.5), q), &mut out);
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("SPO2=---% BPM=--- PI=--.--%"), "{text}");
        assert!(text.ends_with("ALARM=0010 EXC=000820\r\n"), "{text}");
        assert_eq!(decode(&out), statuses(q));
    }

    #[test]
    fn encoder_rounds_and_clamps_to_the_display_ranges() {
        let mut e = MasimoEncoder::new("x");
        let mut out = Vec::new();
        e.encode(
            &snapshot(Some(104.0), Some(300.0), Some(33.333), Quality::NONE),
            &mut out,
        );
        e.encode(
            &snapshot(Some(f64::NAN), Some(-0.4), Some(-0.001), Quality::NONE),
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("SPO2=100% BPM=240 PI=20.00%"), "{text}");
        assert!(text.contains("SPO2=---% BPM=000 PI=00.00%"), "{text}");
    }

    #[test]
    fn encoder_output_decodes_back_to_the_snapshot() {
        let mut e = MasimoEncoder::new("ox-1");
        let flags = [
            Quality::NONE,
            Quality::SEARCHING,
            Quality::LOW_PERFUSION,
            Quality::ARTIFACT,
            Quality::LOW_SIGNAL,
            Quality::DEVICE_FAULT,
            Quality::DEVICE_ALARM,
            Quality::LOW_PERFUSION | Quality::ARTIFACT | Quality::DEVICE_ALARM,
        ];
        for (i, q) in flags.into_iter().enumerate() {
            let s = snapshot(Some(90.0 + i as f64), Some(60.0 + i as f64), Some(1.25), q);
            let mut out = Vec::new();
            e.encode(&s, &mut out);
            assert_eq!(
                decode(&out),
                values(90.0 + i as f64, 60.0 + i as f64, 1.25, q)
            );
        }
        let mut out = Vec::new();
        e.encode(
            &snapshot(None, Some(80.0), None, Quality::SEARCHING),
            &mut out,
        );
        assert_eq!(
            decode(&out),
            vec![
                st(Vital::Spo2, Quality::SEARCHING, 0),
                m(Vital::PulseRate, 80.0, Quality::SEARCHING, 0),
                st(Vital::PerfusionIndex, Quality::SEARCHING, 0),
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let alphabet = b"0123456789/: =%-.+ABCDEFPIOSXMLR\r\n\t\x00\xff";
        for round in 0..200 {
            let mut d = MasimoDecoder::new();
            let n = rng.below(3000);
            let bytes: Vec<u8> = (0..n)
                .map(|_| {
                    let r = rng.next_u64();
                    if round % 2 == 0 {
                        r as u8
                    } else {
                        alphabet[(r % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            let size = rng.below(64) + 1;
            let covered: u64 = errors(&feed(&mut d, bytes.chunks(size)))
                .iter()
                .map(|e| e.1)
                .sum();
            d.finish(&mut |_| {});
            assert!(covered <= n as u64);
        }
        // Fragments of real lines shuffled together.
        let mut d = MasimoDecoder::new();
        for _ in 0..2000 {
            let a = rng.below(RAD8.len());
            let b = a + rng.below(RAD8.len() - a);
            d.feed(&RAD8[a..b], &mut |_| {});
        }
        d.finish(&mut |_| {});
    }

    // -- sample capture ---------------------------------------------------

    #[test]
    fn sample_capture_decodes_to_the_expected_file() {
        assert_testdata_matches(Format::MasimoAscii, "masimo-ascii.txt");
    }
}
