//! Nonin serial data formats #2 and #7: the continuous 75-frames-per-second
//! binary output of Nonin's OEM oximetry modules and of the oximeters built
//! on them (Xpod 3012LP over USB, WristOx2 3150 and Onyx II 9560 over
//! Bluetooth SPP).
//!
//! # Sources
//!
//! * Nonin Medical, *WristOx2® Model 3150 Bluetooth® Wrist-Worn Pulse
//!   Oximeter — OEM Specification and Technical Information*, document
//!   7970-000 (rev. 01, 2010; rev. 05, 2014), sections "Serial Data Format
//!   Definition (SPP Profile)", "Serial Data Format #2 Definition" and
//!   "Serial Data Format #7 Definition".
//! * Nonin Medical, *Onyx® II Model 9560 Bluetooth® Fingertip Oximeter — OEM
//!   Specification and Technical Information*, document 6470-000
//!   (`nonin.com/documents/6470_ENG.pdf`), same section titles.
//! * Nonin Medical, *OEM III Module Specification and Technical
//!   Information* and *Xpod® Specification and Technical Information*,
//!   "Serial Data Format #2" (9600 baud, 8 data bits, no parity, 1 stop bit).
//!
//! The PDFs themselves could not be retrieved while this module was written;
//! the tables below were reconstructed from the way independent
//! implementations quote them, and every field agrees across them:
//! pez-globo/pufferfish-software (OEM III, #2: `PacketReceiver.cpp`, which
//! quotes the status-bit definitions verbatim), mattjlewis/NoninPulseOx
//! (9560, #2, including a real capture used as a test vector below), the
//! University of Oxford SleepAp and `cordova-plugin-nonin-bluetooth` code
//! (3150/9560, #7), Charles Fracchia's `packet.py` (#2 and #7 side by side),
//! an R transcription of the #7 bit tables, agricolab/app-nonin (Xpod
//! 3012LP, #2 at 9600 baud) and MD PnP OpenICE (status bits, set-format
//! command). No code was taken from any of them.
//!
//! # Frames and packets
//!
//! A frame is 5 bytes; 25 frames make a packet; 3 packets (75 frames) are
//! sent every second, one packet every 1/3 s.
//!
//! | byte | #2                | #7          |
//! |------|-------------------|-------------|
//! | 1    | `0x01` (start)    | STATUS      |
//! | 2    | STATUS            | PLETH MSB   |
//! | 3    | PLETH (8 bit)     | PLETH LSB   |
//! | 4    | DATA (see below)  | DATA        |
//! | 5    | CHK               | CHK         |
//!
//! `CHK = (byte1 + byte2 + byte3 + byte4) mod 256` in both formats. The
//! formats differ only in the leading `0x01` and the plethysmogram
//! resolution (8 bit in #2, 16 bit MSB:LSB in #7); STATUS and the DATA
//! schedule are identical.
//!
//! STATUS: bit 7 always 1; bit 6 SNSD (sensor disconnected from the
//! oximeter or inoperable); bit 5 ARTF (artifact on this pulse); bit 4 OOT
//! (out of track: no consecutive good pulses); bit 3 SNSA (sensor alarm:
//! the device is providing unusable data); bits 2–1 the perfusion rating of
//! the current pulse — `01` green (high quality), `10` red (RPRF, low/no
//! pulse signal), `11` yellow (YPRF, low/marginal), `00` no pulse now —
//! held for 12 frames (160 ms) per pulse; bit 0 SYNC, set in frame 1 only.
//!
//! DATA, by frame number within the packet: 1 HR MSB, 2 HR LSB, 3 SpO2,
//! 4 SREV, 5 reserved, 6–7 3 Hz timer, 8 STAT2, 9 SpO2-D, 10 SpO2 Fast,
//! 11 SpO2 B-B, 12–13 reserved, 14–15 E-HR, 16 E-SpO2, 17 E-SpO2-D,
//! 18–19 reserved, 20–21 HR-D, 22–23 E-HR-D, 24–25 reserved. A rate is 9
//! bits: MSB = `0 R R R R R HR8 HR7`, LSB = `0 HR6..HR0`; SpO2 is
//! `0 SP6..SP0`. The missing-data indicator is 511 for a rate and 127 for
//! SpO2. Plain values are 4-beat averages, `E-` values 8-beat averages;
//! values without `-D` are "formatted for recording" (they change to the
//! missing indicator as soon as the finger is out), `-D` values are
//! "formatted for display" (they keep the last value for 10 s after the
//! finger is out).
//!
//! # What the decoder emits, and why
//!
//! One `pulse_rate` and one `spo2` per complete packet (≈3 per second), at
//! the offset of the packet's SYNC frame: the 4-beat averages HR (frames
//! 1–2) and SpO2 (frame 3). These are the values Nonin formats for
//! *recording*, which is what the gateway does; the display (`-D`) values
//! would report a reading that is up to 10 s stale as fresh after the
//! sensor comes off, which would hide exactly the event fault detection
//! looks for. 511 / 127 become a [`Status`], never a number. Formats #2/#7
//! carry no numeric perfusion index, so none is emitted.
//!
//! Quality of a packet's values: SNSD → `SENSOR_OFF`; ARTF → `ARTIFACT`;
//! OOT → `SEARCHING` (the pulse is not being tracked); SNSA →
//! `DEVICE_FAULT` (the device declares its data unusable; format #8 calls
//! the same condition "sensor fault"); a red or yellow perfusion rating →
//! `LOW_PERFUSION`. Status bits are OR-ed over the packet's 25 frames.
//! Perfusion rating and ARTF belong to a pulse, and at low rates a packet
//! (1/3 s) often contains no pulse: such a packet carries the rating of the
//! most recent pulse, which is forgotten when the device reports missing
//! values or SNSD. A missing value's [`Status`] carries the packet's flags,
//! plus `SEARCHING` when no flag explains it.
//!
//! # Synchronisation and errors
//!
//! Frames are found by STATUS bit 7 (and the `0x01` start byte in #2) plus
//! the checksum; while hunting, two consecutive valid frames are required
//! before locking, because in #7 a random window passes both tests with
//! probability 1/512. Packets start at a frame with SYNC set. Errors:
//!
//! * [`Reject::Garbage`]: one per contiguous run of bytes skipped while
//!   hunting (including a frame whose start marker is broken).
//! * [`Reject::BadChecksum`]: a frame at its expected place whose marker is
//!   right but whose checksum is not, followed by a valid frame.
//! * [`Reject::Truncated`]: a frame interrupted by the start of another, a
//!   frame or packet pending at [`StreamDecoder::finish`], a packet cut
//!   short by the next SYNC frame, and valid frames outside any packet (their
//!   SYNC frame never arrived, e.g. the capture began mid-packet) — one error
//!   per contiguous run.
//! * [`Reject::Malformed`]: a rate or SpO2 byte with bit 7 set (the
//!   specification fixes it to 0); the other vital of the packet is still
//!   emitted.
//!
//! A frame-level error drops the packet it falls in without a second error;
//! frames that follow it up to the next SYNC frame are dropped silently.
//!
//! # Where sources disagree
//!
//! * STATUS bit 6 (SNSD) is ignored by two of the 9560 implementations; the
//!   OEM III and #7 tables define it, so it is decoded.
//! * The #7 transcription says DATA is "always 127 or less", but a real 9560
//!   #2 capture carries SREV = 0x94. Only the bytes whose bit 7 the tables
//!   fix to 0 (rates, SpO2) are checked; reserved bits are never checked.
//! * One README describes #7 as carrying an 8-bit waveform; its own code and
//!   every other source read PLETH MSB:LSB (0–65535). The encoder writes
//!   16 bits; the decoder does not emit the waveform.

use super::HostCommands;
use crate::decode::{
    DecodeError, Decoded, Decoder, Encoder, Measurement, Reject, Status, StreamDecoder,
};
use crate::{Quality, Snapshot, Vital};

/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2, Vital::PulseRate];

/// Which Nonin data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    /// #2
    ///
    /// `0x01`, STATUS, 8-bit PLETH, DATA, CHK.
    Two,
    /// #7
    ///
    /// STATUS, PLETH MSB, PLETH LSB, DATA, CHK.
    Seven,
}

/// A fresh decoder.
pub fn decoder(f: DataFormat) -> Decoder {
    Decoder::Stream(Box::new(NoninDecoder::new(f)))
}

/// An encoder.
pub fn encoder(f: DataFormat) -> Box<dyn Encoder> {
    Box::new(NoninEncoder::new(f))
}

/// The "set data format" command of the Bluetooth models (3150, 9560):
/// `STX 0x70 len=2 0x02 format ETX`, as sent by OpenICE and the Oxford
/// Cordova plugin. The device answers ACK (`0x06`), which the decoder
/// reports as one byte of garbage. Not wired into
/// [`super::Format::host_commands`] (a shared file): wired Xpod/OEM III
/// devices are configured otherwise and must not be sent unknown commands.
pub fn host_commands(f: DataFormat) -> HostCommands {
    let n = match f {
        DataFormat::Two => 2,
        DataFormat::Seven => 7,
    };
    HostCommands {
        on_open: vec![0x02, 0x70, 0x02, 0x02, n, 0x03],
        keepalive: None,
    }
}

const FRAME_LEN: usize = 5;
/// A frame and the one after it: what deciding about a damaged frame, and
/// locking on while hunting, needs to see.
const LOOKAHEAD: usize = 2 * FRAME_LEN;
const FRAMES_PER_PACKET: u8 = 25;
const PACKETS_PER_SECOND: u32 = 3;
const START_BYTE: u8 = 0x01;

/// Missing-data indicator of a rate (9 bits, all ones).
pub const MISSING_RATE: u16 = 511;
/// Missing-data indicator of SpO2 (7 bits, all ones).
pub const MISSING_SPO2: u8 = 127;

const ST_ALWAYS: u8 = 0x80;
const ST_SNSD: u8 = 0x40;
const ST_ARTF: u8 = 0x20;
const ST_OOT: u8 = 0x10;
const ST_SNSA: u8 = 0x08;
const ST_RPRF: u8 = 0x04;
const ST_GPRF: u8 = 0x02;
const ST_PERFUSION: u8 = ST_RPRF | ST_GPRF;
const ST_SYNC: u8 = 0x01;

// Frame numbers (0-based) of the DATA schedule.
const F_HR_MSB: u8 = 0;
const F_HR_LSB: u8 = 1;
const F_SPO2: u8 = 2;
const F_SREV: u8 = 3;
const F_TIMER_MSB: u8 = 5;
const F_TIMER_LSB: u8 = 6;
const F_SPO2_D: u8 = 8;
const F_SPO2_FAST: u8 = 9;
const F_SPO2_BB: u8 = 10;
const F_E_HR_MSB: u8 = 13;
const F_E_HR_LSB: u8 = 14;
const F_E_SPO2: u8 = 15;
const F_E_SPO2_D: u8 = 16;
const F_HR_D_MSB: u8 = 19;
const F_HR_D_LSB: u8 = 20;
const F_E_HR_D_MSB: u8 = 21;
const F_E_HR_D_LSB: u8 = 22;

type Frame = [u8; FRAME_LEN];

impl DataFormat {
    /// Position of STATUS in a frame.
    const fn status_at(self) -> usize {
        match self {
            DataFormat::Two => 1,
            DataFormat::Seven => 0,
        }
    }

    const fn name(self) -> &'static str {
        match self {
            DataFormat::Two => "nonin #2",
            DataFormat::Seven => "nonin #7",
        }
    }

    /// Whether a frame starts with this format's marker.
    fn marker(self, w: &Frame) -> bool {
        let [a, b, ..] = *w;
        match self {
            DataFormat::Two => a == START_BYTE && b & ST_ALWAYS != 0,
            DataFormat::Seven => a & ST_ALWAYS != 0,
        }
    }

    /// Marker and checksum.
    fn frame_ok(self, w: &Frame) -> bool {
        self.marker(w) && checksum(w) == w[4]
    }

    /// Whether the (fewer than 5) bytes at the end of a stream could be the
    /// beginning of a frame.
    fn could_start(self, rest: &[u8]) -> bool {
        match (self, rest) {
            (DataFormat::Two, [a]) => *a == START_BYTE,
            (DataFormat::Two, [a, b, ..]) => *a == START_BYTE && b & ST_ALWAYS != 0,
            (DataFormat::Seven, [a, ..]) => a & ST_ALWAYS != 0,
            _ => false,
        }
    }
}

/// Modulo-256 sum of the first four bytes.
fn checksum(w: &Frame) -> u8 {
    w[0].wrapping_add(w[1])
        .wrapping_add(w[2])
        .wrapping_add(w[3])
}

/// The 5 bytes at `i`, if there are that many.
fn frame_at(data: &[u8], i: usize) -> Option<Frame> {
    data.get(i..)?.first_chunk::<FRAME_LEN>().copied()
}

// ---------------------------------------------------------------- decoder

/// Bytes kept between `feed` calls (never more than `LOOKAHEAD - 1` are
/// left over; the rest is room to append the next chunk's head).
const PEND_CAP: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Sync {
    /// Skipping bytes since `start` (`len` of them so far).
    Hunting { start: u64, len: u64 },
    /// The next frame is expected right here.
    Locked,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PacketState {
    /// Between packets: the next frame should carry SYNC.
    Idle,
    /// Inside a packet that began with a SYNC frame.
    Collecting,
    /// The current packet was lost to an error already reported: drop
    /// frames until the next SYNC frame.
    Skipping,
}

/// What a packet has delivered so far.
#[derive(Debug, Clone, Copy, Default)]
struct Packet {
    start: u64,
    frames: u8,
    hr_msb: u8,
    hr_lsb: u8,
    spo2: u8,
    status_or: u8,
    pulse_seen: bool,
    pulse: Quality,
}

/// The perfusion rating / artifact of the most recent pulse.
#[derive(Debug, Clone, Copy, Default)]
struct PulseTracker {
    in_window: bool,
    last: Quality,
}

impl PulseTracker {
    /// Follow one frame's STATUS; the pulse quality it contributes, if it
    /// is part of a pulse indication.
    fn track(&mut self, st: u8) -> Option<Quality> {
        let colour = st & ST_PERFUSION;
        let artf = st & ST_ARTF != 0;
        if colour == 0 {
            self.in_window = false;
            if !artf {
                return None;
            }
        } else if !self.in_window {
            // A new pulse: its rating replaces the previous pulse's.
            self.in_window = true;
            self.last = Quality::NONE;
        }
        let mut q = Quality::NONE;
        if colour == ST_RPRF || colour == ST_PERFUSION {
            q |= Quality::LOW_PERFUSION;
        }
        if artf {
            q |= Quality::ARTIFACT;
        }
        self.last |= q;
        Some(q)
    }
}

struct NoninDecoder {
    format: DataFormat,
    pend: [u8; PEND_CAP],
    pend_len: usize,
    /// Absolute offset of the first byte not yet consumed.
    base: u64,
    sync: Sync,
    packet: PacketState,
    acc: Packet,
    /// Valid frames outside any packet, not yet reported: (start, len).
    orphans: Option<(u64, u64)>,
    pulse: PulseTracker,
}

impl NoninDecoder {
    fn new(format: DataFormat) -> Self {
        NoninDecoder {
            format,
            pend: [0; PEND_CAP],
            pend_len: 0,
            base: 0,
            sync: Sync::Hunting { start: 0, len: 0 },
            packet: PacketState::Idle,
            acc: Packet::default(),
            orphans: None,
            pulse: PulseTracker::default(),
        }
    }

    fn error(
        &self,
        offset: u64,
        len: u64,
        reason: Reject,
        detail: String,
        out: &mut dyn FnMut(Decoded),
    ) {
        out(Decoded::Error(DecodeError::new(
            offset, len, reason, detail,
        )));
    }

    fn flush_orphans(&mut self, out: &mut dyn FnMut(Decoded)) {
        if let Some((start, len)) = self.orphans.take() {
            let detail = format!(
                "{}: {} frame(s) outside any packet (their SYNC frame was not received)",
                self.format.name(),
                len / FRAME_LEN as u64
            );
            self.error(start, len, Reject::Truncated, detail, out);
        }
    }

    /// A frame-level error at `offset`: reported once; the packet it falls
    /// in is dropped.
    fn frame_error(
        &mut self,
        offset: u64,
        len: u64,
        reason: Reject,
        detail: String,
        out: &mut dyn FnMut(Decoded),
    ) {
        self.flush_orphans(out);
        self.error(offset, len, reason, detail, out);
        self.packet = PacketState::Skipping;
    }

    /// The frame expected at `at` is not there: hunt from `at` on.
    fn lose_sync(&mut self, at: u64, out: &mut dyn FnMut(Decoded)) {
        self.flush_orphans(out);
        self.packet = PacketState::Skipping;
        self.sync = Sync::Hunting { start: at, len: 0 };
    }

    fn end_garbage(&mut self, out: &mut dyn FnMut(Decoded)) {
        let Sync::Hunting { start, len } = self.sync else {
            return;
        };
        if len > 0 {
            let detail = format!(
                "{}: skipped {len} byte(s) that do not form frames",
                self.format.name()
            );
            self.error(start, len, Reject::Garbage, detail, out);
            self.sync = Sync::Hunting {
                start: start + len,
                len: 0,
            };
        }
    }

    /// Report the packet in progress as cut short at `end`.
    fn packet_cut_short(&mut self, end: u64, why: &str, out: &mut dyn FnMut(Decoded)) {
        if self.packet == PacketState::Collecting {
            let detail = format!(
                "{}: packet cut short {why} after {} of {FRAMES_PER_PACKET} frames",
                self.format.name(),
                self.acc.frames
            );
            self.error(
                self.acc.start,
                end.saturating_sub(self.acc.start),
                Reject::Truncated,
                detail,
                out,
            );
            self.packet = PacketState::Idle;
        }
    }

    /// Consume as much of `data` (which starts at absolute offset `base`)
    /// as can be decided; returns the number of bytes consumed. Unless
    /// `at_end`, fewer than `LOOKAHEAD` bytes are left over.
    fn step(
        &mut self,
        data: &[u8],
        base: u64,
        at_end: bool,
        out: &mut dyn FnMut(Decoded),
    ) -> usize {
        let f = self.format;
        let mut i = 0usize;
        while i < data.len() {
            let at = base + i as u64;
            match self.sync {
                Sync::Locked => {
                    let Some(w) = frame_at(data, i) else {
                        if !at_end {
                            break;
                        }
                        let rest = data.get(i..).unwrap_or_default();
                        if f.could_start(rest) {
                            self.trailing_partial(at, rest.len() as u64, out);
                            i = data.len();
                        } else {
                            self.lose_sync(at, out);
                        }
                        continue;
                    };
                    if f.frame_ok(&w) {
                        self.on_frame(w, at, out);
                        i += FRAME_LEN;
                        continue;
                    }
                    if !f.marker(&w) {
                        self.lose_sync(at, out);
                        continue;
                    }
                    // The marker is right and the checksum is not: a damaged
                    // frame in its slot, a frame torn by the next one, or a
                    // lost alignment. The next bytes tell which.
                    let short = data.len() - i < LOOKAHEAD;
                    if short && !at_end {
                        break;
                    }
                    let ok_at = |k: usize| frame_at(data, i + k).is_some_and(|n| f.frame_ok(&n));
                    if ok_at(FRAME_LEN) {
                        let detail = format!(
                            "{}: checksum {:#04x} expected {:#04x}",
                            f.name(),
                            w[4],
                            checksum(&w)
                        );
                        self.frame_error(at, FRAME_LEN as u64, Reject::BadChecksum, detail, out);
                        i += FRAME_LEN;
                    } else if let Some(k) = (2..FRAME_LEN).find(|&k| ok_at(k)) {
                        let detail = format!(
                            "{}: frame interrupted after {k} byte(s) by the start of another",
                            f.name()
                        );
                        self.frame_error(at, k as u64, Reject::Truncated, detail, out);
                        i += k;
                    } else if short {
                        // End of stream: nothing after it to say otherwise.
                        let detail = format!(
                            "{}: checksum {:#04x} expected {:#04x}",
                            f.name(),
                            w[4],
                            checksum(&w)
                        );
                        self.frame_error(at, FRAME_LEN as u64, Reject::BadChecksum, detail, out);
                        i += FRAME_LEN;
                    } else {
                        self.lose_sync(at, out);
                    }
                }
                Sync::Hunting { start, len } => {
                    let mut j = i;
                    let mut found = false;
                    while data.len() - j >= LOOKAHEAD {
                        if frame_at(data, j).is_some_and(|w| f.frame_ok(&w))
                            && frame_at(data, j + FRAME_LEN).is_some_and(|w| f.frame_ok(&w))
                        {
                            found = true;
                            break;
                        }
                        j += 1;
                    }
                    if !found && at_end {
                        j = data.len();
                    }
                    self.sync = Sync::Hunting {
                        start,
                        len: len + (j - i) as u64,
                    };
                    i = j;
                    if !found {
                        break;
                    }
                    self.end_garbage(out);
                    self.sync = Sync::Locked;
                }
            }
        }
        i
    }

    /// Fewer than 5 bytes that begin like a frame, at the end of the stream.
    fn trailing_partial(&mut self, at: u64, n: u64, out: &mut dyn FnMut(Decoded)) {
        if self.packet == PacketState::Collecting {
            self.packet_cut_short(at + n, "by the end of the stream", out);
        } else {
            let detail = format!(
                "{}: frame cut short after {n} byte(s) by the end of the stream",
                self.format.name()
            );
            self.frame_error(at, n, Reject::Truncated, detail, out);
        }
        self.packet = PacketState::Idle;
    }

    fn on_frame(&mut self, w: Frame, at: u64, out: &mut dyn FnMut(Decoded)) {
        let st = w[self.format.status_at()];
        let data = w[3];
        let pulse = self.pulse.track(st);
        if st & ST_SYNC != 0 {
            self.flush_orphans(out);
            self.packet_cut_short(at, "by the next SYNC frame", out);
            self.acc = Packet {
                start: at,
                ..Packet::default()
            };
            self.packet = PacketState::Collecting;
        } else {
            match self.packet {
                PacketState::Collecting => {}
                PacketState::Skipping => return,
                PacketState::Idle => {
                    let len = FRAME_LEN as u64;
                    self.orphans = Some(match self.orphans {
                        Some((start, n)) => (start, n + len),
                        None => (at, len),
                    });
                    return;
                }
            }
        }
        let acc = &mut self.acc;
        match acc.frames {
            F_HR_MSB => acc.hr_msb = data,
            F_HR_LSB => acc.hr_lsb = data,
            F_SPO2 => acc.spo2 = data,
            _ => {}
        }
        acc.status_or |= st;
        if let Some(q) = pulse {
            acc.pulse_seen = true;
            acc.pulse |= q;
        }
        acc.frames += 1;
        if acc.frames == FRAMES_PER_PACKET {
            self.packet = PacketState::Idle;
            self.complete_packet(out);
        }
    }

    fn complete_packet(&mut self, out: &mut dyn FnMut(Decoded)) {
        let acc = self.acc;
        let st = acc.status_or;
        let mut q = Quality::NONE;
        q.set(Quality::SENSOR_OFF, st & ST_SNSD != 0);
        q.set(Quality::ARTIFACT, st & ST_ARTF != 0);
        q.set(Quality::SEARCHING, st & ST_OOT != 0);
        q.set(Quality::DEVICE_FAULT, st & ST_SNSA != 0);
        let hr = (u16::from(acc.hr_msb & 0x03) << 7) | u16::from(acc.hr_lsb & 0x7f);
        let spo2 = acc.spo2 & 0x7f;
        if hr == MISSING_RATE || spo2 == MISSING_SPO2 || st & ST_SNSD != 0 {
            // No pulse is being measured: an earlier pulse's rating no
            // longer describes anything.
            self.pulse.last = Quality::NONE;
        }
        q |= if acc.pulse_seen {
            acc.pulse
        } else {
            self.pulse.last
        };
        let mut status_q = q;
        if !q.intersects(Quality::SENSOR_OFF | Quality::DEVICE_FAULT | Quality::SEARCHING) {
            status_q |= Quality::SEARCHING;
        }

        let hr_bad = (acc.hr_msb | acc.hr_lsb) & 0x80 != 0;
        let spo2_bad = acc.spo2 & 0x80 != 0;
        if hr_bad || spo2_bad {
            let detail = format!(
                "{}: bit 7 set in {} (HR MSB {:#04x}, HR LSB {:#04x}, SpO2 {:#04x})",
                self.format.name(),
                match (hr_bad, spo2_bad) {
                    (true, true) => "the pulse rate and SpO2 bytes",
                    (true, false) => "a pulse rate byte",
                    _ => "the SpO2 byte",
                },
                acc.hr_msb,
                acc.hr_lsb,
                acc.spo2
            );
            let len = u64::from(FRAMES_PER_PACKET) * FRAME_LEN as u64;
            self.error(acc.start, len, Reject::Malformed, detail, out);
        }
        let emit = |vital: Vital, value: Option<f64>, out: &mut dyn FnMut(Decoded)| match value {
            Some(value) => out(Decoded::Measurement(Measurement {
                vital,
                value,
                device_time: None,
                quality: q,
                offset: acc.start,
            })),
            None => out(Decoded::Status(Status {
                vital: Some(vital),
                quality: status_q,
                device_time: None,
                offset: acc.start,
            })),
        };
        if !hr_bad {
            emit(
                Vital::PulseRate,
                (hr != MISSING_RATE).then_some(f64::from(hr)),
                out,
            );
        }
        if !spo2_bad {
            emit(
                Vital::Spo2,
                (spo2 != MISSING_SPO2).then_some(f64::from(spo2)),
                out,
            );
        }
    }
}

impl StreamDecoder for NoninDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Decoded)) {
        let mut chunk = chunk;
        // Finish what the previous chunk left over, through a small buffer.
        while self.pend_len > 0 && !chunk.is_empty() {
            let old = self.pend_len;
            let take = (PEND_CAP - old).min(chunk.len());
            let total = old + take;
            let mut buf = self.pend;
            if let (Some(dst), Some(src)) = (buf.get_mut(old..total), chunk.get(..take)) {
                dst.copy_from_slice(src);
            }
            let used = self.step(buf.get(..total).unwrap_or_default(), self.base, false, out);
            self.base += used as u64;
            if used >= old {
                self.pend_len = 0;
                chunk = chunk.get(used - old..).unwrap_or_default();
            } else {
                buf.copy_within(used..total, 0);
                self.pend = buf;
                self.pend_len = total - used;
                chunk = chunk.get(take..).unwrap_or_default();
            }
        }
        if self.pend_len == 0 && !chunk.is_empty() {
            let used = self.step(chunk, self.base, false, out);
            self.base += used as u64;
            let rest = chunk.get(used..).unwrap_or_default();
            if let Some(dst) = self.pend.get_mut(..rest.len()) {
                dst.copy_from_slice(rest);
                self.pend_len = rest.len();
            }
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Decoded)) {
        let buf = self.pend;
        let n = self.pend_len;
        self.step(buf.get(..n).unwrap_or_default(), self.base, true, out);
        self.base += n as u64;
        self.pend_len = 0;
        self.end_garbage(out);
        self.flush_orphans(out);
        self.packet_cut_short(self.base, "by the end of the stream", out);
        // Start afresh; offsets keep counting.
        self.sync = Sync::Hunting {
            start: self.base,
            len: 0,
        };
        self.packet = PacketState::Idle;
        self.acc = Packet::default();
        self.pulse = PulseTracker::default();
    }
}

// ---------------------------------------------------------------- encoder

/// Pulse-rate range the devices measure (3150, 9560, OEM III: 18–321/min).
const RATE_RANGE: (f64, f64) = (18.0, 321.0);
/// Firmware revision the simulated device reports in SREV.
const SIM_SREV: u8 = 0x20;
/// Frames a pulse's perfusion rating (and ARTF) is shown for.
const PULSE_WINDOW: u8 = 12;
/// How long `-D` values hold the last value after it goes missing: 10 s.
const DISPLAY_HOLD_PACKETS: u32 = 10 * PACKETS_PER_SECOND;

/// A display (`-D`) value: the last value held for 10 s after it goes
/// missing.
#[derive(Debug, Clone, Copy)]
struct Held<T> {
    value: T,
    left: u32,
}

impl<T: Copy + PartialEq> Held<T> {
    fn update(&mut self, now: T, missing: T) -> T {
        if now != missing {
            self.value = now;
            self.left = DISPLAY_HOLD_PACKETS;
        } else if self.left > 0 {
            self.left -= 1;
        } else {
            self.value = missing;
        }
        self.value
    }
}

struct NoninEncoder {
    format: DataFormat,
    /// Packets sent (the 3 Hz timer).
    packets: u64,
    /// Fraction of the current beat elapsed.
    phase: f64,
    /// Frames left in the current pulse indication.
    window: u8,
    hr_d: Held<u16>,
    spo2_d: Held<u8>,
}

impl NoninEncoder {
    fn new(format: DataFormat) -> Self {
        NoninEncoder {
            format,
            packets: 0,
            // The first frame starts a beat, so the first packet already
            // carries a perfusion rating.
            phase: 1.0,
            window: 0,
            hr_d: Held {
                value: MISSING_RATE,
                left: 0,
            },
            spo2_d: Held {
                value: MISSING_SPO2,
                left: 0,
            },
        }
    }

    fn frame(&self, st: u8, pleth: f64, data: u8, out: &mut Vec<u8>) {
        // `pleth` is 0..=1.
        let f: Frame = match self.format {
            DataFormat::Two => {
                let p = (pleth * 255.0).round() as u8;
                [START_BYTE, st, p, data, 0]
            }
            DataFormat::Seven => {
                let p = (pleth * 65535.0).round() as u16;
                let [msb, lsb] = p.to_be_bytes();
                [st, msb, lsb, data, 0]
            }
        };
        let chk = checksum(&f);
        out.extend_from_slice(&f[..4]);
        out.push(chk);
    }
}

/// A rate as the device would send it: rounded, within its range.
fn device_rate(v: Option<f64>) -> u16 {
    match v {
        Some(v) if v.is_finite() => v.round().clamp(RATE_RANGE.0, RATE_RANGE.1) as u16,
        _ => MISSING_RATE,
    }
}

/// SpO2 as the device would send it: rounded, 0–100 %.
fn device_spo2(v: Option<f64>) -> u8 {
    match v {
        Some(v) if v.is_finite() => v.round().clamp(0.0, 100.0) as u8,
        _ => MISSING_SPO2,
    }
}

const fn rate_msb(r: u16) -> u8 {
    ((r >> 7) & 0x03) as u8
}

const fn rate_lsb(r: u16) -> u8 {
    (r & 0x7f) as u8
}

/// Plethysmogram shape over one beat (`x` in 0..1), 0..=1.
fn pulse_shape(x: f64) -> f64 {
    if x < 0.15 {
        (x / 0.15 * std::f64::consts::FRAC_PI_2).sin()
    } else {
        let d = (1.0 - x) / 0.85;
        d * d
    }
}

impl Encoder for NoninEncoder {
    fn encode(&mut self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        let q = snapshot.quality;
        let off = q.contains(Quality::SENSOR_OFF);
        let (hr, spo2) = if off {
            (MISSING_RATE, MISSING_SPO2)
        } else {
            (
                device_rate(snapshot.get(Vital::PulseRate)),
                device_spo2(snapshot.get(Vital::Spo2)),
            )
        };
        let mut base = ST_ALWAYS;
        if off {
            base |= ST_SNSD;
        }
        if q.contains(Quality::SEARCHING) {
            base |= ST_OOT;
        }
        if q.contains(Quality::DEVICE_FAULT) {
            base |= ST_SNSA;
        }
        let low = q.contains(Quality::LOW_PERFUSION);
        let mut pulse_bits = if low { ST_RPRF } else { ST_GPRF };
        if q.contains(Quality::ARTIFACT) {
            pulse_bits |= ST_ARTF;
        }
        let amplitude = if low { 0.15 } else { 0.8 };
        let beat_step = if hr == MISSING_RATE {
            0.0
        } else {
            f64::from(hr) / 60.0 / f64::from(PACKETS_PER_SECOND * u32::from(FRAMES_PER_PACKET))
        };

        out.reserve((PACKETS_PER_SECOND * u32::from(FRAMES_PER_PACKET)) as usize * FRAME_LEN);
        for _ in 0..PACKETS_PER_SECOND {
            let hr_d = self.hr_d.update(hr, MISSING_RATE);
            let spo2_d = self.spo2_d.update(spo2, MISSING_SPO2);
            let timer = (self.packets & 0x3fff) as u16;
            for n in 0..FRAMES_PER_PACKET {
                let mut st = base;
                if n == 0 {
                    st |= ST_SYNC;
                }
                let pleth = if beat_step > 0.0 {
                    self.phase += beat_step;
                    if self.phase >= 1.0 {
                        self.phase -= 1.0;
                        self.window = PULSE_WINDOW;
                    }
                    if self.window > 0 {
                        st |= pulse_bits;
                        self.window -= 1;
                    }
                    0.5 + amplitude * (pulse_shape(self.phase) - 0.5)
                } else {
                    self.window = 0;
                    0.5
                };
                let data = match n {
                    F_HR_MSB | F_E_HR_MSB => rate_msb(hr),
                    F_HR_LSB | F_E_HR_LSB => rate_lsb(hr),
                    F_SPO2 | F_SPO2_FAST | F_SPO2_BB | F_E_SPO2 => spo2,
                    F_SREV => SIM_SREV,
                    F_TIMER_MSB => ((timer >> 7) & 0x7f) as u8,
                    F_TIMER_LSB => (timer & 0x7f) as u8,
                    F_SPO2_D | F_E_SPO2_D => spo2_d,
                    F_HR_D_MSB | F_E_HR_D_MSB => rate_msb(hr_d),
                    F_HR_D_LSB | F_E_HR_D_LSB => rate_lsb(hr_d),
                    _ => 0,
                };
                self.frame(st, pleth, data, out);
            }
            self.packets += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::format::testing::{
        self, Rng, assert_testdata_matches, decode_chunks, errors, event_json, expected_events,
        measurement as m, split, status as s,
    };
    use serde_json::Value;

    const FORMATS: [DataFormat; 2] = [DataFormat::Two, DataFormat::Seven];

    fn stream(f: DataFormat) -> Box<dyn StreamDecoder> {
        testing::stream(decoder(f))
    }

    /// Decode `bytes` fed in the given chunk sizes (cycled), then finish.
    fn decode_chunked(f: DataFormat, bytes: &[u8], sizes: &[usize]) -> Vec<Decoded> {
        let mut sizes = sizes.iter().cycle();
        let chunks = split(bytes, || *sizes.next().unwrap());
        decode_chunks(&mut *stream(f), chunks)
    }

    fn decode(f: DataFormat, bytes: &[u8]) -> Vec<Decoded> {
        decode_chunked(f, bytes, &[usize::MAX])
    }

    /// One frame, built independently of the encoder.
    fn frame(f: DataFormat, status: u8, pleth: u16, data: u8) -> Vec<u8> {
        let mut w = match f {
            DataFormat::Two => vec![START_BYTE, status, pleth as u8, data],
            DataFormat::Seven => vec![status, (pleth >> 8) as u8, pleth as u8, data],
        };
        let sum = w.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        w.push(sum);
        w
    }

    /// A packet with the given DATA bytes and one STATUS for every frame
    /// (SYNC added to frame 1).
    fn packet_with(f: DataFormat, status: u8, data: [u8; 25]) -> Vec<u8> {
        (0..25)
            .flat_map(|n| {
                let st = status | if n == 0 { ST_SYNC } else { 0 };
                frame(f, st, 100 + n as u16 * 3, data[n])
            })
            .collect()
    }

    fn data_for(hr: u16, spo2: u8) -> [u8; 25] {
        let mut d = [0u8; 25];
        d[0] = rate_msb(hr);
        d[1] = rate_lsb(hr);
        d[2] = spo2;
        d[3] = 0x30;
        d[8] = spo2;
        d[9] = spo2;
        d[10] = spo2;
        d[13] = rate_msb(hr);
        d[14] = rate_lsb(hr);
        d[15] = spo2;
        d[16] = spo2;
        d[19] = rate_msb(hr);
        d[20] = rate_lsb(hr);
        d[21] = rate_msb(hr);
        d[22] = rate_lsb(hr);
        d
    }

    fn packet(f: DataFormat, status: u8, hr: u16, spo2: u8) -> Vec<u8> {
        packet_with(f, ST_ALWAYS | status, data_for(hr, spo2))
    }

    fn values(events: &[Decoded]) -> Vec<(Vital, f64, Quality, u64)> {
        events
            .iter()
            .filter_map(|e| match e {
                Decoded::Measurement(m) => Some((m.vital, m.value, m.quality, m.offset)),
                _ => None,
            })
            .collect()
    }

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// A real Onyx II 9560 capture in data format #2, published in the
    /// comment at the end of mattjlewis/NoninPulseOx
    /// `DataFormat2FrameSerialiser.java`: the last 4 frames of one packet,
    /// a whole packet (HR 74, SpO2 96, SREV 0x94, timer 23, STAT2 0x04),
    /// and the SYNC frame of the next.
    const CAPTURE_9560: &str = "01804900CA 0180464A11 01804400C5 01804300C4 \
        01814300C5 0180434A0E 0180436024 0180439458 01804300C4 01804100C2 \
        01803E17D6 01803C04C1 018039601A 0180366017 0180356016 01803400B5 \
        01803400B5 01803400B5 0180354A00 0180366017 0180376018 01803A00BB \
        01804000C1 01804A00CB 0180574A22 01806900EA 01807C4A47 0180900011 \
        0180A10022 0181AF0031";

    #[test]
    fn a_real_9560_capture_decodes_to_74_per_minute_and_96_percent() {
        let bytes = hex(CAPTURE_9560);
        assert_eq!(bytes.len(), 150);
        let events = decode(DataFormat::Two, &bytes);
        assert_eq!(
            events
                .iter()
                .filter(|e| !matches!(e, Decoded::Error(_)))
                .cloned()
                .collect::<Vec<_>>(),
            vec![
                m(Vital::PulseRate, 74.0, Quality::NONE, 20),
                m(Vital::Spo2, 96.0, Quality::NONE, 20),
            ]
        );
        // It starts mid-packet and ends one frame into the next packet.
        assert_eq!(
            errors(&events),
            vec![(0, 20, Reject::Truncated), (145, 5, Reject::Truncated)]
        );
    }

    #[test]
    fn the_real_capture_is_rejected_by_the_format_7_decoder() {
        let events = decode(DataFormat::Seven, &hex(CAPTURE_9560));
        assert!(values(&events).is_empty());
    }

    #[test]
    fn checksum_is_the_modulo_256_sum_of_the_first_four_bytes() {
        assert_eq!(checksum(&[0x01, 0x80, 0x49, 0x00, 0]), 0xca);
        assert_eq!(checksum(&[0x01, 0x80, 0x7c, 0x4a, 0]), 0x47);
        assert_eq!(checksum(&[0xff, 0xff, 0xff, 0xff, 0]), 0xfc);
        assert!(DataFormat::Two.frame_ok(&[0x01, 0x81, 0xaf, 0x00, 0x31]));
        assert!(!DataFormat::Two.frame_ok(&[0x01, 0x81, 0xaf, 0x00, 0x32]));
        // #2 needs the start byte, #7 needs STATUS bit 7 in byte 1.
        assert!(!DataFormat::Two.frame_ok(&[0x02, 0x81, 0xaf, 0x00, 0x32]));
        assert!(DataFormat::Seven.frame_ok(&[0x81, 0x12, 0x34, 0x60, 0x27]));
        assert!(!DataFormat::Seven.frame_ok(&[0x01, 0x12, 0x34, 0x60, 0xa7]));
    }

    #[test]
    fn a_packet_yields_the_4_beat_recording_values_at_the_sync_frame_offset() {
        for f in FORMATS {
            let mut data = data_for(72, 97);
            // Display and extended values differ, to prove which are used.
            data[8] = 90;
            data[15] = 91;
            data[16] = 92;
            data[19] = rate_msb(60);
            data[20] = rate_lsb(60);
            let mut bytes = packet(f, 0, 72, 97);
            bytes.extend(packet_with(f, ST_ALWAYS, data));
            let events = decode(f, &bytes);
            assert_eq!(
                events,
                vec![
                    m(Vital::PulseRate, 72.0, Quality::NONE, 0),
                    m(Vital::Spo2, 97.0, Quality::NONE, 0),
                    m(Vital::PulseRate, 72.0, Quality::NONE, 125),
                    m(Vital::Spo2, 97.0, Quality::NONE, 125),
                ],
                "{f:?}"
            );
        }
    }

    #[test]
    fn the_rate_uses_nine_bits_and_ignores_reserved_msb_bits() {
        for f in FORMATS {
            let mut data = data_for(300, 88);
            assert_eq!((data[0], data[1]), (0x02, 0x2c));
            data[0] |= 0x7c; // reserved bits 6..2 set
            let events = decode(f, &packet_with(f, ST_ALWAYS, data));
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 300.0, Quality::NONE, 0),
                    (Vital::Spo2, 88.0, Quality::NONE, 0)
                ]
            );
            assert!(errors(&events).is_empty());
        }
    }

    #[test]
    fn missing_data_indicators_become_statuses_never_numbers() {
        for f in FORMATS {
            let events = decode(f, &packet(f, 0, MISSING_RATE, MISSING_SPO2));
            assert_eq!(
                events,
                vec![
                    s(Vital::PulseRate, Quality::SEARCHING, 0),
                    s(Vital::Spo2, Quality::SEARCHING, 0),
                ]
            );
            // One missing, one present.
            let events = decode(f, &packet(f, ST_SNSA, 75, MISSING_SPO2));
            assert_eq!(
                events,
                vec![
                    m(Vital::PulseRate, 75.0, Quality::DEVICE_FAULT, 0),
                    s(Vital::Spo2, Quality::DEVICE_FAULT, 0),
                ]
            );
        }
    }

    #[test]
    fn sensor_disconnected_maps_to_sensor_off() {
        for f in FORMATS {
            let events = decode(f, &packet(f, ST_SNSD, MISSING_RATE, MISSING_SPO2));
            assert_eq!(
                events,
                vec![
                    s(Vital::PulseRate, Quality::SENSOR_OFF, 0),
                    s(Vital::Spo2, Quality::SENSOR_OFF, 0),
                ]
            );
        }
    }

    #[test]
    fn every_status_bit_maps_to_its_quality_flag() {
        let cases = [
            (ST_SNSD, Quality::SENSOR_OFF),
            (ST_ARTF, Quality::ARTIFACT),
            (ST_OOT, Quality::SEARCHING),
            (ST_SNSA, Quality::DEVICE_FAULT),
            (ST_GPRF, Quality::NONE),
            (ST_RPRF, Quality::LOW_PERFUSION),
            (ST_RPRF | ST_GPRF, Quality::LOW_PERFUSION),
            (0, Quality::NONE),
        ];
        for f in FORMATS {
            for (bit, q) in cases {
                let events = decode(f, &packet(f, bit, 70, 95));
                assert_eq!(
                    values(&events),
                    vec![(Vital::PulseRate, 70.0, q, 0), (Vital::Spo2, 95.0, q, 0)],
                    "{f:?} status bit {bit:#04x}"
                );
            }
        }
    }

    #[test]
    fn status_bits_are_collected_over_the_whole_packet() {
        for f in FORMATS {
            let mut bytes = Vec::new();
            for n in 0..25u8 {
                let mut st = ST_ALWAYS | if n == 0 { ST_SYNC } else { 0 };
                if n == 17 {
                    st |= ST_OOT;
                }
                bytes.extend(frame(f, st, 0, data_for(70, 95)[n as usize]));
            }
            let events = decode(f, &bytes);
            assert_eq!(values(&events)[0].2, Quality::SEARCHING);
        }
    }

    /// A packet whose frames `on` (a range) show a pulse rated `colour`.
    fn packet_with_pulse(f: DataFormat, colour: u8, on: std::ops::Range<usize>) -> Vec<u8> {
        let data = data_for(70, 95);
        (0..25)
            .flat_map(|n| {
                let mut st = ST_ALWAYS | if n == 0 { ST_SYNC } else { 0 };
                if on.contains(&n) {
                    st |= colour;
                }
                frame(f, st, 0, data[n])
            })
            .collect()
    }

    #[test]
    fn perfusion_rating_carries_over_packets_without_a_pulse_until_values_go_missing() {
        for f in FORMATS {
            let mut bytes = packet_with_pulse(f, ST_RPRF, 3..15); // red pulse
            bytes.extend(packet(f, 0, 70, 95)); // no pulse: still red
            bytes.extend(packet_with_pulse(f, ST_GPRF, 20..25)); // green pulse
            bytes.extend(packet_with_pulse(f, ST_GPRF, 0..7)); // its tail
            bytes.extend(packet(f, 0, 70, 95)); // green carried: clean
            bytes.extend(packet_with_pulse(f, ST_PERFUSION, 10..22)); // yellow
            bytes.extend(packet(f, 0, MISSING_RATE, MISSING_SPO2)); // finger out
            bytes.extend(packet(f, 0, 70, 95)); // rating forgotten
            let q: Vec<Quality> = values(&decode(f, &bytes))
                .iter()
                .filter(|v| v.0 == Vital::Spo2)
                .map(|v| v.2)
                .collect();
            let lp = Quality::LOW_PERFUSION;
            let n = Quality::NONE;
            assert_eq!(q, vec![lp, lp, n, n, n, lp, n], "{f:?}");
        }
    }

    #[test]
    fn artifact_on_a_pulse_carries_like_its_rating() {
        for f in FORMATS {
            let mut bytes = packet_with_pulse(f, ST_GPRF | ST_ARTF, 5..17);
            bytes.extend(packet(f, 0, 70, 95));
            bytes.extend(packet_with_pulse(f, ST_GPRF, 2..14));
            let q: Vec<Quality> = values(&decode(f, &bytes))
                .iter()
                .filter(|v| v.0 == Vital::PulseRate)
                .map(|v| v.2)
                .collect();
            assert_eq!(q, vec![Quality::ARTIFACT, Quality::ARTIFACT, Quality::NONE]);
        }
    }

    #[test]
    fn a_value_byte_with_bit_7_set_is_malformed_and_the_other_vital_survives() {
        for f in FORMATS {
            let mut data = data_for(70, 95);
            data[2] |= 0x80;
            let events = decode(f, &packet_with(f, ST_ALWAYS, data));
            assert_eq!(errors(&events), vec![(0, 125, Reject::Malformed)]);
            assert_eq!(
                values(&events),
                vec![(Vital::PulseRate, 70.0, Quality::NONE, 0)]
            );

            let mut data = data_for(70, 95);
            data[1] |= 0x80;
            let events = decode(f, &packet_with(f, ST_ALWAYS, data));
            assert_eq!(errors(&events), vec![(0, 125, Reject::Malformed)]);
            assert_eq!(values(&events), vec![(Vital::Spo2, 95.0, Quality::NONE, 0)]);
        }
    }

    #[test]
    fn other_data_bytes_may_have_bit_7_set() {
        for f in FORMATS {
            let mut data = data_for(70, 95);
            data[3] = 0x94; // SREV, as in the real 9560 capture
            data[7] = 0xff; // STAT2
            let events = decode(f, &packet_with(f, ST_ALWAYS, data));
            assert!(errors(&events).is_empty());
            assert_eq!(values(&events).len(), 2);
        }
    }

    #[test]
    fn garbage_between_frames_is_skipped_and_reported_once() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            let junk = [0x00u8, 0x13, 0x37, 0x55, 0x2a, 0x7f, 0x02, 0x00, 0x11];
            bytes.extend(junk);
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(125, 9, Reject::Garbage)], "{f:?}");
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 70.0, Quality::NONE, 0),
                    (Vital::Spo2, 95.0, Quality::NONE, 0),
                    (Vital::PulseRate, 71.0, Quality::NONE, 134),
                    (Vital::Spo2, 96.0, Quality::NONE, 134),
                ]
            );
        }
    }

    #[test]
    fn garbage_inside_a_packet_drops_that_packet_with_one_error() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes.splice(60..60, [0x00, 0x00, 0x00]);
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(60, 3, Reject::Garbage)], "{f:?}");
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 71.0, Quality::NONE, 128),
                    (Vital::Spo2, 96.0, Quality::NONE, 128),
                ]
            );
        }
    }

    #[test]
    fn garbage_before_the_first_frame_is_reported_with_offset_zero() {
        for f in FORMATS {
            let mut bytes = vec![0x00, 0x7e, 0x00, 0x06];
            bytes.extend(packet(f, 0, 70, 95));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(0, 4, Reject::Garbage)]);
            assert_eq!(values(&events)[0].3, 4);
        }
    }

    #[test]
    fn a_bad_checksum_is_reported_and_decoding_resumes_at_the_next_packet() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes[9 * 5 + 4] ^= 0x5a; // frame 10
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(45, 5, Reject::BadChecksum)], "{f:?}");
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 71.0, Quality::NONE, 125),
                    (Vital::Spo2, 96.0, Quality::NONE, 125),
                ]
            );
        }
    }

    #[test]
    fn a_bad_checksum_in_the_last_frame_of_the_stream_is_still_a_bad_checksum() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes[124] ^= 0x01;
            let events = decode(f, &bytes);
            assert_eq!(
                errors(&events),
                vec![(120, 5, Reject::BadChecksum)],
                "{f:?}"
            );
        }
    }

    #[test]
    fn a_frame_interrupted_by_the_start_of_another_is_truncated() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes.drain(52..54); // frame 11 loses its last 2 bytes
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(50, 3, Reject::Truncated)], "{f:?}");
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 71.0, Quality::NONE, 123),
                    (Vital::Spo2, 96.0, Quality::NONE, 123),
                ]
            );
        }
    }

    #[test]
    fn a_packet_cut_short_by_the_next_sync_frame_is_truncated() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes.truncate(5 * 20); // 20 whole frames, then a new packet
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(0, 100, Reject::Truncated)]);
            assert_eq!(values(&events)[0].3, 100);
        }
    }

    #[test]
    fn frames_whose_sync_frame_was_lost_are_reported_once_as_truncated() {
        for f in FORMATS {
            let mut bytes = packet(f, 0, 70, 95);
            bytes.drain(..5); // a whole SYNC frame vanished
            bytes.extend(packet(f, 0, 71, 96));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(0, 120, Reject::Truncated)]);
            assert_eq!(values(&events).len(), 2);
        }
    }

    #[test]
    fn a_partial_frame_or_packet_pending_at_finish_is_truncated() {
        for f in FORMATS {
            // A partial packet.
            let mut bytes = packet(f, 0, 70, 95);
            bytes.extend(&packet(f, 0, 71, 96)[..33]);
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(125, 33, Reject::Truncated)]);
            assert_eq!(values(&events).len(), 2);

            // A partial frame outside any packet.
            let mut bytes = packet(f, 0, 70, 95);
            bytes.extend(&frame(f, ST_ALWAYS, 7, 0)[..3]);
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(125, 3, Reject::Truncated)]);
        }
    }

    #[test]
    fn finish_resets_the_decoder_but_offsets_keep_counting() {
        for f in FORMATS {
            let mut d = stream(f);
            let p = packet(f, 0, 70, 95);
            let mut events = decode_chunks(&mut *d, [&p[..60]]);
            events.extend(decode_chunks(&mut *d, [&p]));
            assert_eq!(errors(&events), vec![(0, 60, Reject::Truncated)]);
            assert_eq!(
                values(&events),
                vec![
                    (Vital::PulseRate, 70.0, Quality::NONE, 60),
                    (Vital::Spo2, 95.0, Quality::NONE, 60)
                ]
            );
        }
    }

    #[test]
    fn a_lone_valid_frame_inside_garbage_is_not_locked_onto() {
        for f in FORMATS {
            let mut bytes = vec![0x00; 7];
            bytes.extend(frame(f, ST_ALWAYS | ST_SYNC, 1, 2));
            bytes.extend([0x00; 6]);
            bytes.extend(packet(f, 0, 70, 95));
            let events = decode(f, &bytes);
            assert_eq!(errors(&events), vec![(0, 18, Reject::Garbage)]);
            assert_eq!(values(&events).len(), 2);
        }
    }

    /// Sizes that cut frames everywhere.
    fn chunkings() -> Vec<Vec<usize>> {
        let mut v = vec![
            vec![1],
            vec![2],
            vec![3],
            vec![4],
            vec![7],
            vec![9],
            vec![10],
            vec![33],
        ];
        let mut rng = Rng::new(0x9e37_79b9);
        for _ in 0..8 {
            v.push((0..32).map(|_| rng.below(41) + 1).collect());
        }
        v
    }

    #[test]
    fn byte_by_byte_and_random_chunks_give_the_same_events() {
        for f in FORMATS {
            let mut bytes = hex(CAPTURE_9560);
            if f == DataFormat::Seven {
                bytes.clear();
            }
            bytes.extend(packet(f, 0, 70, 95));
            bytes.extend([0x00, 0x44, 0x02]);
            bytes.extend(packet(f, ST_ARTF, 80, 94));
            let mut bad = packet(f, 0, 81, 93);
            bad[37] ^= 0x10;
            bytes.extend(bad);
            let mut torn = packet(f, 0, 82, 92);
            torn.truncate(72);
            bytes.extend(torn);
            bytes.extend(packet(f, ST_SNSD, MISSING_RATE, MISSING_SPO2));
            bytes.extend(&packet(f, 0, 83, 91)[..61]);
            let whole = decode(f, &bytes);
            assert!(!errors(&whole).is_empty() && !values(&whole).is_empty());
            for sizes in chunkings() {
                assert_eq!(decode_chunked(f, &bytes, &sizes), whole, "{f:?} {sizes:?}");
            }
        }
    }

    fn snapshot(pr: Option<f64>, spo2: Option<f64>, quality: Quality) -> Snapshot {
        let set = [(Vital::PulseRate, pr), (Vital::Spo2, spo2)];
        testing::snapshot(1_700_000_000_000, quality, &set)
    }

    #[test]
    fn the_encoder_sends_75_frames_in_3_packets_per_second() {
        for f in FORMATS {
            let mut e = encoder(f);
            let mut out = Vec::new();
            e.encode(&snapshot(Some(72.0), Some(97.0), Quality::NONE), &mut out);
            assert_eq!(out.len(), 75 * 5);
            let st = f.status_at();
            for (n, w) in out.chunks(5).enumerate() {
                let w: Frame = w.try_into().unwrap();
                assert!(f.frame_ok(&w));
                assert_eq!(w[st] & ST_SYNC != 0, n % 25 == 0, "frame {n}");
                if f == DataFormat::Two {
                    assert_eq!(w[0], START_BYTE);
                }
            }
        }
    }

    #[test]
    fn the_encoder_follows_the_data_schedule() {
        for f in FORMATS {
            let mut e = encoder(f);
            let mut out = Vec::new();
            e.encode(&snapshot(Some(300.0), Some(97.0), Quality::NONE), &mut out);
            let data: Vec<u8> = out.chunks(5).take(25).map(|w| w[3]).collect();
            assert_eq!(&data[..4], &[0x02, 0x2c, 97, SIM_SREV]);
            assert_eq!(data[8], 97); // SpO2-D
            assert_eq!(&data[9..11], &[97, 97]); // fast, beat to beat
            assert_eq!(&data[13..17], &[0x02, 0x2c, 97, 97]); // E-HR, E-SpO2, E-SpO2-D
            assert_eq!(&data[19..23], &[0x02, 0x2c, 0x02, 0x2c]); // HR-D, E-HR-D
            // The 3 Hz timer counts packets.
            let timer: Vec<u8> = out.chunks(5).skip(25 * 2).take(7).map(|w| w[3]).collect();
            assert_eq!((timer[5], timer[6]), (0, 2));
        }
    }

    #[test]
    fn the_encoder_rounds_and_clamps_like_the_device() {
        assert_eq!(device_rate(Some(71.5)), 72);
        assert_eq!(device_rate(Some(400.0)), 321);
        assert_eq!(device_rate(Some(5.0)), 18);
        assert_eq!(device_rate(Some(f64::NAN)), MISSING_RATE);
        assert_eq!(device_rate(None), MISSING_RATE);
        assert_eq!(device_spo2(Some(96.4)), 96);
        assert_eq!(device_spo2(Some(104.0)), 100);
        assert_eq!(device_spo2(Some(f64::INFINITY)), MISSING_SPO2);
    }

    #[test]
    fn display_values_hold_for_ten_seconds_after_values_go_missing() {
        let mut e = encoder(DataFormat::Seven);
        let mut out = Vec::new();
        e.encode(&snapshot(Some(72.0), Some(97.0), Quality::NONE), &mut out);
        let spo2_d = |out: &[u8], packet: usize| out[(packet * 25 + F_SPO2_D as usize) * 5 + 3];
        let spo2 = |out: &[u8], packet: usize| out[(packet * 25 + F_SPO2 as usize) * 5 + 3];
        let mut held = Vec::new();
        for _ in 0..11 {
            out.clear();
            e.encode(&snapshot(None, None, Quality::NONE), &mut out);
            held.extend((0..3).map(|p| (spo2(&out, p), spo2_d(&out, p))));
        }
        assert!(held.iter().all(|(s, _)| *s == MISSING_SPO2));
        assert!(held[..30].iter().all(|(_, d)| *d == 97));
        assert!(held[30..].iter().all(|(_, d)| *d == MISSING_SPO2));
    }

    #[test]
    fn encoder_output_round_trips_through_the_decoder() {
        // (pulse rate, SpO2, quality) in; the same values and quality out.
        let kept = |pr: f64, spo2: f64, q: Quality| (Some(pr), Some(spo2), q, Some((pr, spo2)), q);
        let cases = [
            kept(72.0, 97.0, Quality::NONE),
            (
                Some(59.6),
                Some(88.2),
                Quality::NONE,
                Some((60.0, 88.0)),
                Quality::NONE,
            ),
            kept(45.0, 91.0, Quality::NONE),
            kept(130.0, 93.0, Quality::LOW_PERFUSION),
            kept(40.0, 95.0, Quality::ARTIFACT),
            kept(70.0, 95.0, Quality::SEARCHING),
            kept(70.0, 95.0, Quality::DEVICE_FAULT),
            (
                Some(70.0),
                Some(95.0),
                Quality::SENSOR_OFF,
                None,
                Quality::SENSOR_OFF,
            ),
            (None, None, Quality::NONE, None, Quality::SEARCHING),
        ];
        for f in FORMATS {
            for (pr, spo2, q_in, want, q_out) in cases {
                let mut e = encoder(f);
                let mut out = Vec::new();
                for _ in 0..4 {
                    e.encode(&snapshot(pr, spo2, q_in), &mut out);
                }
                let events = decode(f, &out);
                assert_eq!(events.len(), 4 * 3 * 2, "{f:?} {q_in:?}");
                for (n, ev) in events.iter().enumerate() {
                    let offset = (n / 2 * 125) as u64;
                    let vital = if n % 2 == 0 {
                        Vital::PulseRate
                    } else {
                        Vital::Spo2
                    };
                    let expected = match want {
                        Some((p, s_)) => m(vital, if n % 2 == 0 { p } else { s_ }, q_out, offset),
                        None => s(vital, q_out, offset),
                    };
                    assert_eq!(ev, &expected, "{f:?} {q_in:?} event {n}");
                }
            }
        }
    }

    #[test]
    fn the_format_7_encoder_writes_a_16_bit_plethysmogram() {
        let mut e = encoder(DataFormat::Seven);
        let mut out = Vec::new();
        e.encode(&snapshot(Some(60.0), Some(97.0), Quality::NONE), &mut out);
        let pleth: Vec<u16> = out
            .chunks(5)
            .map(|w| u16::from_be_bytes([w[1], w[2]]))
            .collect();
        let (lo, hi) = (pleth.iter().min().unwrap(), pleth.iter().max().unwrap());
        assert!(hi - lo > 20_000, "{lo}..{hi}");
    }

    #[test]
    fn host_commands_select_the_data_format() {
        assert_eq!(
            host_commands(DataFormat::Seven).on_open,
            vec![0x02, 0x70, 0x02, 0x02, 0x07, 0x03]
        );
        assert_eq!(host_commands(DataFormat::Two).on_open[4], 2);
    }

    /// Events must be in stream order and every error inside the input.
    fn check_invariants(events: &[Decoded], len: u64) {
        let mut last = 0;
        for e in events {
            let (offset, end) = match e {
                Decoded::Measurement(m) => (m.offset, m.offset),
                Decoded::Status(s) => (s.offset, s.offset),
                Decoded::Error(e) => {
                    assert!(e.len > 0, "{e}");
                    (e.offset, e.offset + e.len)
                }
            };
            assert!(offset >= last, "out of order: {e:?}");
            assert!(end <= len, "beyond the input: {e:?}");
            last = offset;
        }
    }

    #[test]
    fn pseudo_random_bytes_never_panic_and_keep_stream_order() {
        let mut rng = Rng::new(0x1234_5678_9abc_def1);
        for f in FORMATS {
            for round in 0..200 {
                let len = (rng.next_u64() % 700) as usize;
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if round % 2 == 0 {
                    // Bias towards frame-like input.
                    for b in bytes.iter_mut().step_by(5) {
                        *b |= 0x80;
                    }
                }
                let sizes = [
                    (rng.next_u64() % 13 + 1) as usize,
                    (rng.next_u64() % 64 + 1) as usize,
                ];
                let events = decode_chunked(f, &bytes, &sizes);
                check_invariants(&events, len as u64);
                assert_eq!(events, decode(f, &bytes));
            }
        }
    }

    #[test]
    fn corrupted_encoder_output_never_panics_and_keeps_stream_order() {
        let mut rng = Rng::new(0xdead_beef_cafe_f00d);
        for f in FORMATS {
            let mut e = encoder(f);
            let mut clean = Vec::new();
            for _ in 0..6 {
                e.encode(
                    &snapshot(Some(72.0), Some(97.0), Quality::ARTIFACT),
                    &mut clean,
                );
            }
            for _ in 0..100 {
                let mut bytes = clean.clone();
                for _ in 0..(rng.next_u64() % 6) {
                    let at = (rng.next_u64() as usize) % bytes.len();
                    match rng.next_u64() % 3 {
                        0 => bytes[at] = rng.next_u64() as u8,
                        1 => {
                            bytes.remove(at);
                        }
                        _ => bytes.insert(at, rng.next_u64() as u8),
                    }
                }
                let events = decode_chunked(f, &bytes, &[(rng.next_u64() % 17 + 1) as usize]);
                check_invariants(&events, bytes.len() as u64);
                for (_, v, _, _) in values(&events) {
                    assert!(v.is_finite());
                }
            }
        }
    }

    // ------------------------------------------------------ testdata files

    /// The whole capture matches its expected file, and so does every
    /// chunking of it.
    fn check_testdata(f: DataFormat) {
        let format = match f {
            DataFormat::Two => Format::Nonin2,
            DataFormat::Seven => Format::Nonin7,
        };
        let capture = format!("{format}.bin");
        assert_testdata_matches(format, &capture);
        let bytes = testing::testdata(&capture);
        let expected = expected_events(format);
        for sizes in chunkings() {
            let chunked: Vec<Value> = decode_chunked(f, &bytes, &sizes)
                .iter()
                .map(event_json)
                .collect();
            assert_eq!(chunked, expected, "{format} {sizes:?}");
        }
    }

    #[test]
    fn testdata_nonin_2_decodes_to_its_expected_events() {
        check_testdata(DataFormat::Two);
    }

    #[test]
    fn testdata_nonin_7_decodes_to_its_expected_events() {
        check_testdata(DataFormat::Seven);
    }

    /// The testdata captures, built from hand-made packets (not the
    /// encoder), each packet or defect commented.
    fn testdata_bytes(f: DataFormat) -> Vec<u8> {
        let mut b = Vec::new();
        if f == DataFormat::Two {
            // The real 9560 capture: starts mid-packet, ends with a SYNC frame.
            b.extend(hex(CAPTURE_9560));
        }
        b.extend(packet(f, 0, 72, 97));
        b.extend(packet_with_pulse(f, ST_GPRF, 4..16));
        b.extend([0x00, 0x13, 0x37, 0x55, 0x2a, 0x7f, 0x06]); // garbage
        b.extend(packet(f, 0, 73, 97));
        let mut bad = packet(f, 0, 74, 96);
        bad[9 * 5 + 4] ^= 0xff; // frame 10: bad checksum
        b.extend(bad);
        b.extend(packet(f, 0, 75, 96));
        let mut torn = packet(f, 0, 76, 96);
        torn.truncate(5 * 7 + 2); // frame 8 torn after 2 bytes
        b.extend(torn);
        b.extend(packet_with_pulse(f, ST_PERFUSION | ST_ARTF, 6..18)); // yellow + artifact
        b.extend(packet(f, ST_SNSD, MISSING_RATE, MISSING_SPO2)); // sensor off
        b.extend(packet(f, ST_OOT, MISSING_RATE, MISSING_SPO2)); // searching
        let mut data = data_for(78, 95);
        data[2] |= 0x80; // SpO2 byte with bit 7 set
        b.extend(packet_with(f, ST_ALWAYS, data));
        b.extend(packet(f, 0, 180, 99));
        b
    }

    /// Writes the testdata files; run by hand after changing
    /// `testdata_bytes`: `cargo test -p vitalgate-devices --lib
    /// format::nonin -- --ignored write_testdata`, then review the diff.
    #[test]
    #[ignore]
    fn write_testdata() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/");
        for (f, name) in [(DataFormat::Two, "nonin-2"), (DataFormat::Seven, "nonin-7")] {
            let bytes = testdata_bytes(f);
            std::fs::write(format!("{dir}{name}.bin"), &bytes).unwrap();
            let mut lines = String::new();
            for e in decode(f, &bytes) {
                // Key order as documented in the brief.
                let line = match &e {
                    Decoded::Measurement(m) => format!(
                        r#"{{"offset":{},"vital":"{}","value":{:?},"quality":{}}}"#,
                        m.offset,
                        m.vital,
                        m.value,
                        serde_json::to_string(&m.quality).unwrap()
                    ),
                    Decoded::Status(s) => format!(
                        r#"{{"offset":{},"status":{},"vital":{}}}"#,
                        s.offset,
                        serde_json::to_string(&s.quality).unwrap(),
                        s.vital.map_or("null".to_owned(), |v| format!("\"{v}\""))
                    ),
                    Decoded::Error(e) => {
                        format!(r#"{{"offset":{},"error":"{}"}}"#, e.offset, e.reason)
                    }
                };
                lines.push_str(&line);
                lines.push('\n');
            }
            std::fs::write(format!("{dir}{name}.expected.jsonl"), lines).unwrap();
        }
    }

    #[test]
    fn testdata_files_are_what_testdata_bytes_builds() {
        for (f, name) in [(DataFormat::Two, "nonin-2"), (DataFormat::Seven, "nonin-7")] {
            let bytes = testing::testdata(&format!("{name}.bin"));
            assert_eq!(bytes, testdata_bytes(f), "{name}");
        }
    }
}
