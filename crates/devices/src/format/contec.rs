//! Contec CMS50 family finger pulse oximeters (CMS50D+, CMS50E, CMS50F,
//! CMS60C, and rebrands such as the Pulox PO-250), which ship under the same
//! model name with one of two live-data protocols on their USB-serial cable
//! (a Silicon Labs CP210x, VID 10c4 PID ea60):
//!
//! * [`Protocol::FiveByte`]: the older, one-way, 5-byte protocol (firmware up
//!   to about 4.5 on the CMS50D+, and the older CMS50E);
//! * [`Protocol::V7`]: the newer, two-way, 9-byte protocol of Contec's
//!   "Communication protocol of pulse oximeter V7.0" (CMS50D+ firmware 4.6
//!   and later, CMS50F, CMS60C).
//!
//! Both send 60 live packets per second. Neither carries a checksum or a
//! device timestamp, so this format never reports [`Reject::BadChecksum`]
//! and every value is stamped with the gateway's clock.
//!
//! # Sources
//!
//! * Contec Medical Systems, *Communication protocol of pulse oximeter V7.0*,
//!   2010-07-08, 8 pages (copies: `albertcbraun/CMS50FW` and
//!   `InfantLab/Contec-Pulse-Oximeter-in-Matlab` on GitHub, Scribd document
//!   226223253). §2.2 "Interface description": 115200 baud, 1 start bit,
//!   8 data bits, 1 stop bit, no parity. §3.1/§3.2 Table 1 "Package format":
//!   byte 0 is the data type with bit 7 always 0, byte 1 the "high byte"
//!   whose bit 7 is always 1 and whose bit *i* is bit 7 of data byte *i*,
//!   and every following data byte has bit 7 set. §3.3.1 Table 2 (package
//!   types and lengths), §3.3.2.1 Table 3 (real-time data package, type
//!   0x01), §3.3.2.7 Table 7 (commands: 0xA1 start real-time data, 0xA2 stop,
//!   0xAF "inform the device it is still connected", sent as data type 0x7D).
//!   The PDF's tables could not be read as text here, so the bit layout of
//!   Table 3 and the package lengths of Table 2 are taken from the open
//!   implementations that transcribe the document and agree with each other
//!   and with real captures: `kaivol/pulox` (crate `contec-protocol`,
//!   `incoming_package.rs`, "Implements the communication protocol of Contec
//!   pulse oximeters (V7.0)"), `timegrid/CMS50Dplus7` (`cms50dplus7.py`,
//!   tested on a Pulox PO-250), `InfantLab/.../CMS60CRealTimeDataDecode.m`,
//!   and OSCAR's `SleepLib/loader_plugins/cms50f37_loader.cpp` (package
//!   length table).
//! * The older 5-byte protocol: Contec's *Communication protocol* sheet (the
//!   PDF linked from Alex's "CMS50E Pulse Oximeter USB / Serial Protocol"
//!   post at tranzoa.net/~alex/blog/?p=371), whose bit table is quoted in
//!   English on the picbasic.co.uk forum thread 11311 ("5 bytes format, 60
//!   packages per second, bit 7 is the synchronous bit"); cross-checked with
//!   `atbrask/CMS50Dplus` (`cms50dplus.py` and its unit tests) and OSCAR's
//!   `cms50_loader.cpp`.
//! * Which firmware speaks which: Nicolas Chaverou's CMS50 reader ships
//!   `cms50v45.py` ("CMS50D+ with firmware 4.5", the 5-byte protocol, after
//!   atbrask) beside `cms50v46.py` ("firmware 4.6", 9-byte packages at
//!   115200), and MarkMLl's reader is for "firmware v4.6, 9-byte messages
//!   @115k".
//!
//! # 5-byte packet (the sheet's bit table)
//!
//! | byte | bit 7 | bits 6..0 |
//! |------|-------|-----------|
//! | 1 | 1 (sync) | 6 pulse beep, 5 "SpO2 decrease", 4 "searching time too long", 3..0 signal strength (0-8) |
//! | 2 | 0 | pleth wave (0-127) |
//! | 3 | 0 | 6 pulse rate bit 7, 5 "searching for pulse", 4 "sensor (probe) error", 3..0 bar graph |
//! | 4 | 0 | pulse rate bits 6..0 |
//! | 5 | 0 | SpO2 (0-127) |
//!
//! # V7 real-time package (type 0x01, Table 3)
//!
//! Data bytes after restoring bit 7 of each from the high byte:
//!
//! | data byte | meaning |
//! |-----------|---------|
//! | 0 | 3..0 signal strength, 4 searching time too long, 5 low SpO2 ("SpO2 decrease"), 6 pulse beep, 7 probe error |
//! | 1 | 6..0 pleth wave, 7 searching for pulse |
//! | 2 | 3..0 bar graph, 4 PI invalid, 7..5 reserved |
//! | 3 | pulse rate, 0xFF = invalid |
//! | 4 | SpO2, 0x7F = invalid |
//! | 5, 6 | perfusion index, little-endian, 0xFFFF = invalid |
//!
//! Real captures used as test vectors: headrotor/contec_data `stream_data.py`
//! (CMS50D+: `01 E0 85 B3 96 C1 E1 FF FF`, PR 65, SpO2 97, and the command
//! replies `0C 80`, `0E 80 81`, `06 80 80 87`), MarkMLl/Contec_cms50dplus
//! `consoleapp.pas` (CMS50D+ 4.6: `01 E0 85 D5 9A BD E3 FF FF`, PR 61,
//! SpO2 99), and Caspar Addyman's CMS60C log in
//! InfantLab `Data/caspar reverse engineer.txt` (`01 EA 94 C0 95 FF FF FF FF`:
//! searching, PR 0xFF, SpO2 0x7F, PI 0xFFFF).
//!
//! # Where the sources disagree, and what this decoder does
//!
//! * **5-byte serial settings.** The forum translation of the Chinese sheet
//!   says 4800 baud 8N1; every source that talked to an actual CMS50D+ or
//!   CMS50E (tranzoa, atbrask, OSCAR/SleepyHead, the Apnea Board wiki) uses
//!   19200 baud, 8 data bits, **odd** parity, 1 stop bit. The device profiles
//!   follow the devices (19200 8O1); the decoder does not depend on it.
//! * **5-byte byte 1 bit 4.** The sheet calls it "searching time too long";
//!   atbrask named it "finger out". The decoder follows the sheet and reports
//!   it as [`Quality::SEARCHING`] + [`Quality::LOW_SIGNAL`], never as
//!   [`Quality::SENSOR_OFF`]: a device that cannot find a pulse on a finger
//!   that is in place must not be filed as "sensor off, not an emergency".
//!   The V7 "probe error" bit (data byte 0 bit 7), which captures show set
//!   when the finger is out (MarkMLl: "finger out"; headrotor: high byte
//!   0xE1), and the 5-byte "sensor error" bit are reported as
//!   [`Quality::SENSOR_OFF`].
//! * **V7 data byte 2 bit 4.** `kaivol/pulox` and InfantLab call it "PI
//!   invalid", `timegrid` "pi_valid". Every capture sets it together with a
//!   PI of 0xFFFF, so "PI invalid" is right.
//! * **V7 keep-alive.** `timegrid`, `kaivol/pulox` and `albertcbraun/CMS50FW`
//!   send 0xAF every 5 s; headrotor every 100 packets (~1.7 s); MarkMLl sends
//!   none and observes that the CMS50D+ stops after 30 s. [`host_commands`]
//!   uses 5 s: three independent implementations, well inside the 30 s.
//! * **V7 start.** OSCAR and `tobac/cms50ew` send 0xA7/0xA2 "hello"
//!   commands first; MarkMLl, headrotor, celiponcio and timegrid show that
//!   0xA1 alone starts the stream, which is all [`host_commands`] sends.
//! * **Perfusion index.** V7 carries a 16-bit PI, but no readable source
//!   states its unit (the implementations above print the raw number). A PI
//!   off by a factor of 10 or 100 would be clinically misleading, so this
//!   decoder does **not** emit [`Vital::PerfusionIndex`] until the scale is
//!   confirmed from Table 3 of the document; the encoder writes "PI invalid"
//!   (0xFFFF, as CMS50D+ 4.6 units do in every capture).
//! * Some write-ups mislabel fields (MarkMLl: "0xbd -> 0x35 53" is a slip
//!   for 0x3D = 61, and calls the pleth and bar-graph bytes "infra red" and
//!   "visible"; the patrick-samy gist ignores the high byte). They are not
//!   followed.
//! * `atbrask` and `timegrid` open the port with XON/XOFF flow control. With
//!   a binary protocol in which 0x11 and 0x13 are ordinary bytes (0x11 is a
//!   V7 package type) that would corrupt the stream; the profiles say so.
//!
//! # Framing and errors
//!
//! 5-byte: a byte with bit 7 set starts a packet, the next four must have
//! bit 7 clear. V7: a byte with bit 7 clear is a package type; the package
//! continues with bytes that have bit 7 set, up to the type's length from
//! Table 2. Bytes that cannot start or continue a packet (including a V7
//! type this gateway does not know, and surplus bytes after a complete
//! package) are skipped and reported as one [`Reject::Garbage`] per
//! contiguous run. A packet interrupted by the start of another, or still
//! incomplete at `finish`, is [`Reject::Truncated`]. V7 packages other than
//! real-time data (command feedback, device notices...) are well-formed but
//! carry no vitals: they are consumed silently. Neither protocol has a
//! checksum or a field value this decoder could reject as reserved, so
//! [`Reject::BadChecksum`] and [`Reject::Malformed`] do not occur.
//!
//! # What is reported, and how often
//!
//! Emitting every value of 60 packets per second would flood the gateway.
//! Each packet is first classified:
//!
//! * "probe error" set → device status [`Quality::SENSOR_OFF`];
//!   "searching for pulse" → [`Quality::SEARCHING`]; "searching time too
//!   long" → [`Quality::SEARCHING`] | [`Quality::LOW_SIGNAL`]. Any of these
//!   makes the whole packet one [`Status`] with `vital: None` (the values in
//!   such a packet are not trusted, they are the sentinels in practice).
//! * Otherwise, per vital (SpO2, pulse rate): the sentinel (SpO2 0x7F, pulse
//!   rate 0xFF) gives a [`Status`] for that vital with
//!   [`Quality::SEARCHING`] (the device has no value yet); any other value
//!   gives a [`Measurement`]. SpO2 carries [`Quality::DEVICE_ALARM`] while
//!   the "SpO2 decrease" / "low SpO2" bit is set. Values are not
//!   range-checked here ([`crate::Reading`] does that).
//!
//! Each of the three outputs (device status, SpO2, pulse rate) is emitted
//! when what it would say (value and quality, or status quality) differs
//! from what it last said, and otherwise again on every
//! [`REFRESH_PACKETS`]-th live packet since it last spoke (60 packets = one
//! second at the device's rate). Leaving or entering a device status resets
//! the others, so the first value after "sensor off" is emitted at once.
//! The rule depends only on the packet sequence, never on the clock, so a
//! capture always decodes to the same events. `finish` resets it.

use super::HostCommands;
use crate::decode::{
    DecodeError, Decoded, Decoder, Encoder, Measurement, Reject, Status, StreamDecoder,
};
use crate::{Quality, Snapshot, Vital};
use std::fmt;
use std::time::Duration;

/// Vitals this format carries (see the module docs on perfusion index).
pub const VITALS: &[Vital] = &[Vital::Spo2, Vital::PulseRate];

/// Which Contec protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// The older one-way 5-byte live-data protocol (19200 8O1).
    FiveByte,
    /// The 9-byte "Communication protocol of pulse oximeter V7.0" (115200 8N1).
    V7,
}

impl Protocol {
    /// Bytes in one live-data packet.
    pub const fn packet_len(self) -> usize {
        match self {
            Protocol::FiveByte => 5,
            Protocol::V7 => 9,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::FiveByte => "Contec 5-byte",
            Protocol::V7 => "Contec V7",
        })
    }
}

/// Live packets per second, both protocols.
pub const PACKETS_PER_SECOND: usize = 60;

/// An unchanged value (or status) is repeated on every this-many live
/// packets: once per second at [`PACKETS_PER_SECOND`].
pub const REFRESH_PACKETS: u32 = 60;

/// SpO2 "invalid" sentinel (both protocols).
pub const SPO2_INVALID: u8 = 0x7F;
/// Pulse-rate "invalid" sentinel (both protocols).
pub const PULSE_RATE_INVALID: u8 = 0xFF;

/// V7 package type of host commands (Table 7).
pub const V7_COMMAND_TYPE: u8 = 0x7D;
/// V7 command: start sending real-time data.
pub const V7_START_REAL_TIME: u8 = 0xA1;
/// V7 command: stop sending real-time data.
pub const V7_STOP_REAL_TIME: u8 = 0xA2;
/// V7 command: inform the device that the host is still connected.
pub const V7_KEEPALIVE: u8 = 0xAF;
/// How often the gateway sends [`V7_KEEPALIVE`].
pub const V7_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);

/// V7 package type of real-time data.
const V7_REAL_TIME: u8 = 0x01;

/// A V7 host command package: type 0x7D, the high byte, the command code
/// and six zero data bytes, every data byte with bit 7 set (so the padding
/// reads 0x80): `7D 81 A1 80 80 80 80 80 80` starts real-time data.
pub const fn v7_command(code: u8) -> [u8; 9] {
    [
        V7_COMMAND_TYPE,
        0x80 | (code >> 7),
        0x80 | code,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
    ]
}

/// What the gateway must send to a V7 device: "start real-time data" when
/// the port opens, and "still connected" every 5 seconds (see the module
/// docs for why 5 s).
pub fn host_commands() -> HostCommands {
    HostCommands {
        on_open: v7_command(V7_START_REAL_TIME).to_vec(),
        keepalive: Some((V7_KEEPALIVE_INTERVAL, v7_command(V7_KEEPALIVE).to_vec())),
    }
}

/// Total length (type byte, high byte and data bytes) of each V7 package
/// type the device may send, after Table 2 as transcribed by
/// `kaivol/pulox` and observed by OSCAR and headrotor; `None` for types
/// this gateway does not know.
const fn v7_package_len(kind: u8) -> Option<usize> {
    match kind {
        0x01..=0x05 => Some(9),
        0x06 => Some(4),
        0x07 | 0x08 => Some(8),
        0x09 => Some(6),
        0x0A | 0x0B => Some(4),
        0x0C => Some(2),
        0x0D | 0x0E => Some(3),
        0x0F => Some(8),
        0x10 => Some(3),
        0x11 => Some(9),
        0x12 => Some(8),
        0x13..=0x15 => Some(9),
        _ => None,
    }
}

/// Restore bit 7 of each data byte from the V7 high byte.
fn v7_restore<const N: usize>(high: u8, mut data: [u8; N]) -> [u8; N] {
    for (i, byte) in data.iter_mut().enumerate() {
        *byte = (*byte & 0x7F) | (((high >> i) & 1) << 7);
    }
    data
}

/// Split bit 7 of each data byte into a V7 high byte; every data byte gets
/// bit 7 set.
fn v7_split<const N: usize>(mut data: [u8; N]) -> (u8, [u8; N]) {
    let mut high = 0x80;
    for (i, byte) in data.iter_mut().enumerate() {
        high |= (*byte >> 7) << i;
        *byte |= 0x80;
    }
    (high, data)
}

/// The fields of one live packet, either protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Live {
    spo2: u8,
    pulse_rate: u8,
    pleth: u8,
    bar_graph: u8,
    signal: u8,
    beep: bool,
    probe_error: bool,
    searching: bool,
    searching_too_long: bool,
    spo2_alarm: bool,
}

impl Live {
    fn from_five_byte(b: [u8; 5]) -> Live {
        let [b1, b2, b3, b4, b5] = b;
        Live {
            spo2: b5 & 0x7F,
            pulse_rate: ((b3 & 0x40) << 1) | (b4 & 0x7F),
            pleth: b2 & 0x7F,
            bar_graph: b3 & 0x0F,
            signal: b1 & 0x0F,
            beep: b1 & 0x40 != 0,
            probe_error: b3 & 0x10 != 0,
            searching: b3 & 0x20 != 0,
            searching_too_long: b1 & 0x10 != 0,
            spo2_alarm: b1 & 0x20 != 0,
        }
    }

    fn to_five_byte(self) -> [u8; 5] {
        [
            0x80 | (self.signal & 0x0F)
                | u8::from(self.searching_too_long) << 4
                | u8::from(self.spo2_alarm) << 5
                | u8::from(self.beep) << 6,
            self.pleth & 0x7F,
            (self.bar_graph & 0x0F)
                | u8::from(self.probe_error) << 4
                | u8::from(self.searching) << 5
                | (self.pulse_rate & 0x80) >> 1,
            self.pulse_rate & 0x7F,
            self.spo2 & 0x7F,
        ]
    }

    /// From the seven data bytes of a V7 real-time package, bit 7 restored.
    fn from_v7(d: [u8; 7]) -> Live {
        let [d0, d1, d2, d3, d4, _pi_lo, _pi_hi] = d;
        Live {
            spo2: d4,
            pulse_rate: d3,
            pleth: d1 & 0x7F,
            bar_graph: d2 & 0x0F,
            signal: d0 & 0x0F,
            beep: d0 & 0x40 != 0,
            probe_error: d0 & 0x80 != 0,
            searching: d1 & 0x80 != 0,
            searching_too_long: d0 & 0x10 != 0,
            spo2_alarm: d0 & 0x20 != 0,
        }
    }

    /// A whole V7 real-time package; PI is always written as invalid.
    fn to_v7(self) -> [u8; 9] {
        let data = [
            (self.signal & 0x0F)
                | u8::from(self.searching_too_long) << 4
                | u8::from(self.spo2_alarm) << 5
                | u8::from(self.beep) << 6
                | u8::from(self.probe_error) << 7,
            (self.pleth & 0x7F) | u8::from(self.searching) << 7,
            (self.bar_graph & 0x0F) | 0x10,
            self.pulse_rate,
            self.spo2,
            0xFF,
            0xFF,
        ];
        let (high, [d0, d1, d2, d3, d4, d5, d6]) = v7_split(data);
        [V7_REAL_TIME, high, d0, d1, d2, d3, d4, d5, d6]
    }

    /// The device-level status this packet reports, if any.
    fn device_status(self) -> Quality {
        let mut q = Quality::NONE;
        q.set(Quality::SENSOR_OFF, self.probe_error);
        q.set(
            Quality::SEARCHING,
            self.searching || self.searching_too_long,
        );
        q.set(Quality::LOW_SIGNAL, self.searching_too_long);
        q
    }
}

/// What an output last said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Said {
    Nothing,
    Value(u8, Quality),
    Missing(Quality),
}

/// Change-or-refresh throttle of one output.
#[derive(Debug, Clone, Copy)]
struct Slot {
    said: Said,
    age: u32,
}

impl Slot {
    const FRESH: Slot = Slot {
        said: Said::Nothing,
        age: 0,
    };

    /// One more live packet says `now`: whether to emit it.
    fn due(&mut self, now: Said) -> bool {
        self.age = self.age.saturating_add(1);
        if now != self.said || self.age >= REFRESH_PACKETS {
            self.said = now;
            self.age = 0;
            true
        } else {
            false
        }
    }
}

/// Turns live packets into throttled events (see the module docs).
#[derive(Debug, Clone, Copy)]
struct Emitter {
    device: Slot,
    spo2: Slot,
    pulse_rate: Slot,
}

impl Emitter {
    const FRESH: Emitter = Emitter {
        device: Slot::FRESH,
        spo2: Slot::FRESH,
        pulse_rate: Slot::FRESH,
    };

    fn packet(&mut self, live: Live, offset: u64, out: &mut dyn FnMut(Decoded)) {
        let device = live.device_status();
        if !device.is_empty() {
            self.spo2 = Slot::FRESH;
            self.pulse_rate = Slot::FRESH;
            if self.device.due(Said::Missing(device)) {
                out(Decoded::Status(Status {
                    vital: None,
                    quality: device,
                    device_time: None,
                    offset,
                }));
            }
            return;
        }
        self.device = Slot::FRESH;
        let mut spo2_quality = Quality::NONE;
        spo2_quality.set(Quality::DEVICE_ALARM, live.spo2_alarm);
        value(
            &mut self.spo2,
            Vital::Spo2,
            live.spo2,
            SPO2_INVALID,
            spo2_quality,
            offset,
            out,
        );
        value(
            &mut self.pulse_rate,
            Vital::PulseRate,
            live.pulse_rate,
            PULSE_RATE_INVALID,
            Quality::NONE,
            offset,
            out,
        );
    }
}

fn value(
    slot: &mut Slot,
    vital: Vital,
    raw: u8,
    sentinel: u8,
    quality: Quality,
    offset: u64,
    out: &mut dyn FnMut(Decoded),
) {
    if raw == sentinel {
        if slot.due(Said::Missing(Quality::SEARCHING)) {
            out(Decoded::Status(Status {
                vital: Some(vital),
                quality: Quality::SEARCHING,
                device_time: None,
                offset,
            }));
        }
    } else if slot.due(Said::Value(raw, quality)) {
        out(Decoded::Measurement(Measurement {
            vital,
            value: f64::from(raw),
            device_time: None,
            quality,
            offset,
        }));
    }
}

/// A fresh decoder for `protocol`.
pub fn decoder(protocol: Protocol) -> Decoder {
    Decoder::Stream(Box::new(ContecDecoder::new(protocol)))
}

/// The stream decoder of both protocols.
struct ContecDecoder {
    protocol: Protocol,
    /// Absolute offset of the next byte fed.
    offset: u64,
    /// The packet being assembled.
    packet: [u8; 9],
    /// Bytes of it so far; 0 when between packets.
    have: usize,
    /// Its full length.
    want: usize,
    /// Offset of its first byte.
    start: u64,
    /// The pending run of skipped bytes.
    garbage_start: u64,
    garbage_len: u64,
    emitter: Emitter,
}

impl ContecDecoder {
    fn new(protocol: Protocol) -> Self {
        ContecDecoder {
            protocol,
            offset: 0,
            packet: [0; 9],
            have: 0,
            want: 0,
            start: 0,
            garbage_start: 0,
            garbage_len: 0,
            emitter: Emitter::FRESH,
        }
    }

    #[inline]
    fn byte(&mut self, b: u8, out: &mut dyn FnMut(Decoded)) {
        // Whether `b` starts a packet, and how long that packet is.
        let begins = match self.protocol {
            Protocol::FiveByte => (b & 0x80 != 0).then_some(Some(5)),
            Protocol::V7 => (b & 0x80 == 0).then(|| v7_package_len(b)),
        };
        match begins {
            Some(len) => {
                self.cut_short(out);
                match len {
                    Some(want) => {
                        self.flush_garbage(out);
                        self.packet[0] = b;
                        self.have = 1;
                        self.want = want;
                        self.start = self.offset;
                    }
                    None => self.skip(),
                }
            }
            None if self.have > 0 => {
                if let Some(slot) = self.packet.get_mut(self.have) {
                    *slot = b;
                    self.have += 1;
                }
                if self.have >= self.want {
                    self.have = 0;
                    self.complete(out);
                }
            }
            None => self.skip(),
        }
    }

    /// A complete packet is in `self.packet`.
    fn complete(&mut self, out: &mut dyn FnMut(Decoded)) {
        match self.protocol {
            Protocol::FiveByte => {
                let [b1, b2, b3, b4, b5, ..] = self.packet;
                let live = Live::from_five_byte([b1, b2, b3, b4, b5]);
                self.emitter.packet(live, self.start, out);
            }
            Protocol::V7 => {
                let [kind, high, d0, d1, d2, d3, d4, d5, d6] = self.packet;
                if kind == V7_REAL_TIME {
                    let data = v7_restore(high, [d0, d1, d2, d3, d4, d5, d6]);
                    self.emitter.packet(Live::from_v7(data), self.start, out);
                }
                // Other packages (command feedback, notices, identifiers)
                // are well-formed and carry no vitals.
            }
        }
    }

    /// The length of the packet at the start of `bytes`, when all of it is
    /// there and correctly framed (what [`Self::byte`] would assemble).
    #[inline]
    fn whole_packet(&self, bytes: &[u8]) -> Option<usize> {
        match self.protocol {
            Protocol::FiveByte => match bytes {
                [b1, b2, b3, b4, b5, ..] if b1 & 0x80 != 0 && (b2 | b3 | b4 | b5) & 0x80 == 0 => {
                    Some(5)
                }
                _ => None,
            },
            Protocol::V7 => {
                let kind = *bytes.first()?;
                if kind & 0x80 != 0 {
                    return None;
                }
                let len = v7_package_len(kind)?;
                let rest = bytes.get(1..len)?;
                rest.iter().all(|b| b & 0x80 != 0).then_some(len)
            }
        }
    }

    /// The byte at `self.offset` cannot start or continue a packet.
    fn skip(&mut self) {
        if self.garbage_len == 0 {
            self.garbage_start = self.offset;
        }
        self.garbage_len += 1;
    }

    fn flush_garbage(&mut self, out: &mut dyn FnMut(Decoded)) {
        if self.garbage_len > 0 {
            out(Decoded::Error(DecodeError::new(
                self.garbage_start,
                self.garbage_len,
                Reject::Garbage,
                match self.protocol {
                    Protocol::FiveByte => {
                        "bytes that do not start a Contec 5-byte packet (no sync bit)"
                    }
                    Protocol::V7 => "bytes that do not start a known Contec V7 package",
                },
            )));
            self.garbage_len = 0;
        }
    }

    /// Report a packet in progress as truncated.
    fn cut_short(&mut self, out: &mut dyn FnMut(Decoded)) {
        if self.have > 0 {
            out(Decoded::Error(DecodeError::new(
                self.start,
                self.have as u64,
                Reject::Truncated,
                match self.protocol {
                    Protocol::FiveByte => "Contec 5-byte packet cut off before its 5th byte",
                    Protocol::V7 => "Contec V7 package cut off before its last byte",
                },
            )));
            self.have = 0;
        }
    }
}

impl StreamDecoder for ContecDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Decoded)) {
        let mut rest = chunk;
        while let Some((&b, tail)) = rest.split_first() {
            // Fast path: a whole, well-framed packet lies in the chunk.
            if self.have == 0 {
                if let Some(n) = self.whole_packet(rest) {
                    if let Some(packet) = rest.get(..n) {
                        self.flush_garbage(out);
                        self.packet = [0; 9];
                        for (slot, &byte) in self.packet.iter_mut().zip(packet) {
                            *slot = byte;
                        }
                        self.start = self.offset;
                        self.complete(out);
                        self.offset += n as u64;
                        rest = rest.get(n..).unwrap_or_default();
                        continue;
                    }
                }
            }
            self.byte(b, out);
            self.offset += 1;
            rest = tail;
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Decoded)) {
        self.cut_short(out);
        self.flush_garbage(out);
        self.emitter = Emitter::FRESH;
    }
}

/// An encoder writing what a Contec oximeter sends in one second: 60 live
/// packets with a pleth wave at the snapshot's pulse rate.
pub fn encoder(protocol: Protocol) -> Box<dyn Encoder> {
    Box::new(ContecEncoder {
        protocol,
        phase: 0.0,
    })
}

/// Pleth baseline and full-scale amplitude (the field is 0-127).
const PLETH_BASE: f64 = 10.0;
const PLETH_AMPLITUDE: f64 = 100.0;

struct ContecEncoder {
    protocol: Protocol,
    /// Position in the current beat, 0..1, carried across seconds.
    phase: f64,
}

/// One beat of a fingertip pleth: a fast systolic upstroke, an exponential
/// run-off and a small dicrotic bump; 0..=1.
fn pleth_shape(phase: f64) -> f64 {
    const RISE: f64 = 0.12;
    let v = if phase < RISE {
        0.5 - 0.5 * (std::f64::consts::PI * phase / RISE).cos()
    } else {
        let t = phase - RISE;
        let notch = (phase - 0.45) / 0.05;
        (-t * 4.5).exp() + 0.12 * (-notch * notch).exp()
    };
    v.clamp(0.0, 1.0)
}

/// A value as the device writes it: rounded, clamped to the field below its
/// sentinel, or the sentinel when there is none.
fn raw(value: Option<f64>, max: u8, sentinel: u8) -> u8 {
    match value {
        Some(v) if v.is_finite() => v.round().clamp(0.0, f64::from(max)) as u8,
        _ => sentinel,
    }
}

impl Encoder for ContecEncoder {
    fn encode(&mut self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        let q = snapshot.quality;
        let off = q.contains(Quality::SENSOR_OFF);
        let searching = q.contains(Quality::SEARCHING);
        let measuring = !off && !searching;
        let spo2 = if measuring {
            raw(snapshot.get(Vital::Spo2), 100, SPO2_INVALID)
        } else {
            SPO2_INVALID
        };
        let pulse_rate = if measuring {
            raw(snapshot.get(Vital::PulseRate), 254, PULSE_RATE_INVALID)
        } else {
            PULSE_RATE_INVALID
        };
        // The wave keeps beating while the device searches (as in the
        // CMS60C capture); it is flat with the finger out.
        let rate = snapshot
            .get(Vital::PulseRate)
            .filter(|r| !off && r.is_finite() && *r > 0.0)
            .map(|r| r.min(300.0));
        let amplitude = if q.contains(Quality::LOW_PERFUSION) {
            PLETH_AMPLITUDE / 4.0
        } else {
            PLETH_AMPLITUDE
        };
        let signal = if off {
            0
        } else if q.contains(Quality::LOW_SIGNAL) {
            2
        } else {
            8
        };
        out.reserve(PACKETS_PER_SECOND * self.protocol.packet_len());
        for _ in 0..PACKETS_PER_SECOND {
            let (level, beep) = match rate {
                Some(r) => {
                    self.phase += r / 3600.0;
                    let beat = self.phase >= 1.0;
                    self.phase = self.phase.fract();
                    (pleth_shape(self.phase), beat)
                }
                None => (0.0, false),
            };
            let pleth = if off {
                0
            } else {
                (PLETH_BASE + amplitude * level).round().clamp(0.0, 127.0) as u8
            };
            let live = Live {
                spo2,
                pulse_rate,
                pleth,
                bar_graph: (level * amplitude / PLETH_AMPLITUDE * 15.0).round() as u8,
                signal,
                beep,
                probe_error: off,
                searching: searching && !off,
                searching_too_long: false,
                spo2_alarm: measuring && q.contains(Quality::DEVICE_ALARM),
            };
            match self.protocol {
                Protocol::FiveByte => out.extend_from_slice(&live.to_five_byte()),
                Protocol::V7 => out.extend_from_slice(&live.to_v7()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::format::testing::{
        self, Rng, assert_testdata_matches, errors, measurement, status, stream,
    };

    fn decode_chunks<C: AsRef<[u8]>>(
        p: Protocol,
        chunks: impl IntoIterator<Item = C>,
    ) -> Vec<Decoded> {
        testing::decode_chunks(&mut *stream(decoder(p)), chunks)
    }

    fn decode(p: Protocol, bytes: &[u8]) -> Vec<Decoded> {
        decode_chunks(p, [bytes])
    }

    /// The errors as `(reason, offset, len)`.
    fn reasons(events: &[Decoded]) -> Vec<(Reject, u64, u64)> {
        errors(events)
            .into_iter()
            .map(|(offset, len, reason)| (reason, offset, len))
            .collect()
    }

    /// A 5-byte packet from the sheet's fields.
    fn five(spo2: u8, pr: u8) -> Live {
        Live {
            spo2,
            pulse_rate: pr,
            pleth: 50,
            bar_graph: 5,
            signal: 8,
            ..Live::default()
        }
    }

    fn snapshot(spo2: Option<f64>, pr: Option<f64>, quality: Quality) -> Snapshot {
        let set = [(Vital::Spo2, spo2), (Vital::PulseRate, pr)];
        testing::snapshot(1_700_000_000_000, quality, &set)
    }

    fn encode(p: Protocol, snapshots: &[Snapshot]) -> Vec<u8> {
        let mut enc = encoder(p);
        let mut out = Vec::new();
        for s in snapshots {
            enc.encode(s, &mut out);
        }
        out
    }

    // ---------------------------------------------------------------- V7

    #[test]
    fn v7_capture_from_a_cms50d_plus_decodes_to_spo2_97_and_pulse_65() {
        // headrotor/contec_data stream_data.py, CMS50D+.
        let bytes = [0x01, 0xE0, 0x85, 0xB3, 0x96, 0xC1, 0xE1, 0xFF, 0xFF];
        assert_eq!(
            decode(Protocol::V7, &bytes),
            vec![
                measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 65.0, Quality::NONE, 0),
            ]
        );
    }

    #[test]
    fn v7_capture_from_firmware_4_6_decodes_to_spo2_99_and_pulse_61() {
        // MarkMLl/Contec_cms50dplus consoleapp.pas, "Nominal operation".
        let bytes = [0x01, 0xE0, 0x85, 0xD5, 0x9A, 0xBD, 0xE3, 0xFF, 0xFF];
        let data = v7_restore(0xE0, [0x85, 0xD5, 0x9A, 0xBD, 0xE3, 0xFF, 0xFF]);
        assert_eq!(data, [0x05, 0x55, 0x1A, 0x3D, 0x63, 0xFF, 0xFF]);
        let live = Live::from_v7(data);
        assert_eq!((live.signal, live.pleth, live.bar_graph), (5, 85, 10));
        assert_eq!(
            decode(Protocol::V7, &bytes),
            vec![
                measurement(Vital::Spo2, 99.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 61.0, Quality::NONE, 0),
            ]
        );
    }

    #[test]
    fn v7_searching_capture_from_a_cms60c_is_a_searching_status_not_numbers() {
        // InfantLab "Data/caspar reverse engineer.txt": PR 0xFF needs the
        // high byte's bit 3, SpO2 is 0x7F, PI 0xFFFF.
        let bytes = [0x01, 0xEA, 0x94, 0xC0, 0x95, 0xFF, 0xFF, 0xFF, 0xFF];
        let data = v7_restore(0xEA, [0x94, 0xC0, 0x95, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(data, [0x14, 0xC0, 0x15, 0xFF, 0x7F, 0xFF, 0xFF]);
        assert_eq!(
            decode(Protocol::V7, &bytes),
            vec![status(None, Quality::SEARCHING | Quality::LOW_SIGNAL, 0)]
        );
    }

    #[test]
    fn v7_high_byte_carries_bit_7_of_each_data_byte() {
        // The vector of kaivol/pulox's encode/decode_high_byte tests.
        assert_eq!(
            v7_split([0x00, 0xFF, 0x00, 0xFF]),
            (0b1000_1010, [0x80, 0xFF, 0x80, 0xFF])
        );
        assert_eq!(
            v7_restore(0b1000_1010, [0x80, 0xFF, 0x80, 0xFF]),
            [0x00, 0xFF, 0x00, 0xFF]
        );
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            let data: [u8; 7] = std::array::from_fn(|_| rng.next_u64() as u8);
            let (high, split) = v7_split(data);
            assert!(high & 0x80 != 0 && split.iter().all(|b| b & 0x80 != 0));
            assert_eq!(v7_restore(high, split), data);
        }
    }

    #[test]
    fn v7_pulse_rate_above_127_uses_the_high_byte() {
        let bytes = five(95, 182).to_v7();
        assert_eq!(bytes[1] & 0x08, 0x08);
        assert_eq!(
            decode(Protocol::V7, &bytes),
            vec![
                measurement(Vital::Spo2, 95.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 182.0, Quality::NONE, 0),
            ]
        );
    }

    #[test]
    fn v7_every_status_bit_maps_to_its_quality() {
        let base = five(97, 70);
        let cases = [
            (
                Live {
                    probe_error: true,
                    ..base
                },
                vec![status(None, Quality::SENSOR_OFF, 0)],
            ),
            (
                Live {
                    searching: true,
                    ..base
                },
                vec![status(None, Quality::SEARCHING, 0)],
            ),
            (
                Live {
                    searching_too_long: true,
                    ..base
                },
                vec![status(None, Quality::SEARCHING | Quality::LOW_SIGNAL, 0)],
            ),
            (
                Live {
                    probe_error: true,
                    searching: true,
                    ..base
                },
                vec![status(None, Quality::SENSOR_OFF | Quality::SEARCHING, 0)],
            ),
            (
                Live {
                    spo2_alarm: true,
                    ..base
                },
                vec![
                    measurement(Vital::Spo2, 97.0, Quality::DEVICE_ALARM, 0),
                    measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                ],
            ),
            (
                // Beep, signal strength and bar graph carry no quality.
                Live {
                    beep: true,
                    signal: 0,
                    bar_graph: 15,
                    ..base
                },
                vec![
                    measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                    measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                ],
            ),
        ];
        for (live, want) in cases {
            assert_eq!(decode(Protocol::V7, &live.to_v7()), want, "{live:?}");
            assert_eq!(
                decode(Protocol::FiveByte, &live.to_five_byte()),
                want,
                "{live:?}"
            );
        }
    }

    #[test]
    fn v7_sentinels_are_statuses_per_vital_never_numbers() {
        let cases = [
            (
                five(SPO2_INVALID, 70),
                vec![
                    status(Some(Vital::Spo2), Quality::SEARCHING, 0),
                    measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                ],
            ),
            (
                five(97, PULSE_RATE_INVALID),
                vec![
                    measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                    status(Some(Vital::PulseRate), Quality::SEARCHING, 0),
                ],
            ),
        ];
        for (live, want) in cases {
            assert_eq!(decode(Protocol::V7, &live.to_v7()), want);
            assert_eq!(decode(Protocol::FiveByte, &live.to_five_byte()), want);
        }
    }

    #[test]
    fn v7_command_replies_and_notices_are_consumed_silently() {
        // Replies captured by headrotor (free feedback, PI identifiers,
        // 0x06, device info) around real-time data.
        let mut bytes = vec![0x0C, 0x80, 0x0E, 0x80, 0x81, 0x06, 0x80, 0x80, 0x87];
        bytes.extend([0x11, 0x80, 0x81, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80]);
        bytes.extend(five(97, 70).to_v7());
        bytes.extend([0x0D, 0x80, 0x80]);
        assert_eq!(
            decode(Protocol::V7, &bytes),
            vec![
                measurement(Vital::Spo2, 97.0, Quality::NONE, 18),
                measurement(Vital::PulseRate, 70.0, Quality::NONE, 18),
            ]
        );
    }

    #[test]
    fn v7_unknown_package_type_and_its_bytes_are_one_garbage_run() {
        let mut bytes = vec![0x7E, 0x81, 0x82, 0x83];
        bytes.extend(five(97, 70).to_v7());
        let events = decode(Protocol::V7, &bytes);
        assert_eq!(reasons(&events), vec![(Reject::Garbage, 0, 4)]);
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn v7_surplus_bytes_after_a_complete_package_are_garbage() {
        let mut bytes = five(97, 70).to_v7().to_vec();
        bytes.extend([0xFF, 0xFF]);
        bytes.extend(five(97, 70).to_v7());
        let events = decode(Protocol::V7, &bytes);
        assert_eq!(reasons(&events), vec![(Reject::Garbage, 9, 2)]);
    }

    #[test]
    fn v7_host_commands_start_real_time_data_and_keep_alive_every_5_seconds() {
        // timegrid's test_send_command_commands, MarkMLl's start constant,
        // headrotor's cmd1/cmd2, tobac's cmd_get_live_data.
        let hc = host_commands();
        assert_eq!(
            hc.on_open,
            vec![0x7D, 0x81, 0xA1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
        assert_eq!(
            hc.keepalive,
            Some((
                Duration::from_secs(5),
                vec![0x7D, 0x81, 0xAF, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
            ))
        );
        assert_eq!(
            v7_command(V7_STOP_REAL_TIME),
            [0x7D, 0x81, 0xA2, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80]
        );
    }

    // ------------------------------------------------------------ 5-byte

    #[test]
    fn five_byte_packet_decodes_per_the_sheet() {
        // Byte 1: sync, beep, signal 8; byte 3: bar graph 5 and pulse-rate
        // bit 7; byte 4: 0x02 → PR 130; byte 5: SpO2 96.
        let bytes = [0xC8, 0x32, 0x45, 0x02, 0x60];
        let live = Live::from_five_byte(bytes);
        assert_eq!(
            (live.signal, live.beep, live.pleth, live.bar_graph),
            (8, true, 50, 5)
        );
        assert_eq!(live.to_five_byte(), bytes);
        assert_eq!(
            decode(Protocol::FiveByte, &bytes),
            vec![
                measurement(Vital::Spo2, 96.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 130.0, Quality::NONE, 0),
            ]
        );
    }

    #[test]
    fn five_byte_pulse_rate_covers_all_eight_bits() {
        // After atbrask's test_LiveData_pulseRate.
        for pr in 0..=254u8 {
            let live = Live::from_five_byte([0x80, 0, (pr & 0x80) >> 1, pr & 0x7F, 97]);
            assert_eq!(live.pulse_rate, pr);
        }
        let sentinel = [0x80, 0, 0x40, 0x7F, 0x7F];
        assert_eq!(
            decode(Protocol::FiveByte, &sentinel),
            vec![
                status(Some(Vital::Spo2), Quality::SEARCHING, 0),
                status(Some(Vital::PulseRate), Quality::SEARCHING, 0),
            ]
        );
    }

    #[test]
    fn five_byte_searching_time_too_long_is_searching_not_sensor_off() {
        let bytes = [0x80 | 0x10, 0, 0, 72, 97];
        assert_eq!(
            decode(Protocol::FiveByte, &bytes),
            vec![status(None, Quality::SEARCHING | Quality::LOW_SIGNAL, 0)]
        );
    }

    #[test]
    fn five_byte_sensor_error_and_searching_bits_of_byte_3_are_statuses() {
        assert_eq!(
            decode(Protocol::FiveByte, &[0x80, 0, 0x10, 0x7F, 0x7F]),
            vec![status(None, Quality::SENSOR_OFF, 0)]
        );
        assert_eq!(
            decode(Protocol::FiveByte, &[0x80, 0, 0x20, 0x7F, 0x7F]),
            vec![status(None, Quality::SEARCHING, 0)]
        );
    }

    // ----------------------------------------------------------- framing

    #[test]
    fn garbage_between_frames_is_skipped_and_reported_once() {
        for p in [Protocol::FiveByte, Protocol::V7] {
            let packet = |l: Live| match p {
                Protocol::FiveByte => l.to_five_byte().to_vec(),
                Protocol::V7 => l.to_v7().to_vec(),
            };
            let junk: &[u8] = match p {
                // Bytes with bit 7 clear cannot start a 5-byte packet.
                Protocol::FiveByte => &[0x00, 0x11, 0x7F, 0x42, 0x13],
                // Bytes with bit 7 set cannot start a V7 package.
                Protocol::V7 => &[0x80, 0xFF, 0xAA, 0x81, 0x99],
            };
            let mut bytes = packet(five(97, 70));
            let first = bytes.len() as u64;
            bytes.extend(junk);
            bytes.extend(packet(five(96, 71)));
            let events = decode(p, &bytes);
            assert_eq!(reasons(&events), vec![(Reject::Garbage, first, 5)], "{p}");
            assert_eq!(events.len(), 5, "{p}");
        }
    }

    #[test]
    fn garbage_at_the_start_and_at_the_end_is_reported_with_absolute_offsets() {
        let mut bytes = vec![0x01, 0x02];
        bytes.extend(five(97, 70).to_five_byte());
        bytes.extend([0x03, 0x04, 0x05]);
        let events = decode(Protocol::FiveByte, &bytes);
        assert_eq!(
            reasons(&events),
            vec![(Reject::Garbage, 0, 2), (Reject::Garbage, 7, 3)]
        );
    }

    #[test]
    fn torn_frame_interrupted_by_the_next_is_truncated() {
        let mut bytes = vec![0x88, 0x30, 0x05];
        bytes.extend(five(97, 70).to_five_byte());
        let events = decode(Protocol::FiveByte, &bytes);
        assert_eq!(reasons(&events), vec![(Reject::Truncated, 0, 3)]);
        assert_eq!(events.len(), 3);

        let mut bytes = vec![0x01, 0xE0, 0x85, 0xB3];
        bytes.extend(five(97, 70).to_v7());
        let events = decode(Protocol::V7, &bytes);
        assert_eq!(reasons(&events), vec![(Reject::Truncated, 0, 4)]);
        assert_eq!(events.len(), 3);
    }

    #[test]
    fn frame_pending_at_finish_is_truncated_and_the_decoder_resets() {
        let mut d = stream(decoder(Protocol::V7));
        let packet = five(97, 70).to_v7();
        let events = testing::decode_chunks(&mut *d, [&packet[..], &packet[..5]]);
        assert_eq!(reasons(&events), vec![(Reject::Truncated, 9, 5)]);
        // After finish the same values are news again, and offsets stay
        // absolute from the first byte ever fed.
        assert_eq!(
            testing::decode_chunks(&mut *d, [packet]),
            vec![
                measurement(Vital::Spo2, 97.0, Quality::NONE, 14),
                measurement(Vital::PulseRate, 70.0, Quality::NONE, 14),
            ]
        );
    }

    #[test]
    fn split_feeds_give_the_same_events_as_one_feed() {
        let mut rng = Rng::new(0x5EED);
        for p in [Protocol::FiveByte, Protocol::V7] {
            let mut bytes = Vec::new();
            for (i, s) in [
                snapshot(Some(97.0), Some(72.0), Quality::NONE),
                snapshot(Some(96.0), Some(131.0), Quality::DEVICE_ALARM),
                snapshot(None, None, Quality::SENSOR_OFF),
                snapshot(Some(95.0), Some(64.0), Quality::NONE),
            ]
            .iter()
            .enumerate()
            {
                bytes.extend(encode(p, std::slice::from_ref(s)));
                bytes.extend(&[0x00, 0x80, 0x7E, 0xFF][i..]);
                bytes.extend(&encode(p, std::slice::from_ref(s))[..7]);
            }
            let whole = decode(p, &bytes);
            assert!(whole.len() > 10, "{p}");
            let one_by_one = decode_chunks(p, bytes.chunks(1));
            assert_eq!(one_by_one, whole, "{p}");
            for _ in 0..20 {
                let chunks = rng.chunks(&bytes, 23);
                assert_eq!(decode_chunks(p, chunks), whole, "{p}");
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_events_stay_in_stream_order() {
        let mut rng = Rng::new(0xC0FFEE);
        for p in [Protocol::FiveByte, Protocol::V7] {
            for round in 0..200 {
                let len = 1 + rng.below(4000);
                let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                if round % 2 == 0 {
                    // Mostly-valid streams with flipped bits exercise the
                    // framing paths more than pure noise does.
                    bytes = encode(p, &[snapshot(Some(97.0), Some(70.0), Quality::NONE)]);
                    for _ in 0..rng.below(40) {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
                let events = decode_chunks(p, rng.chunks(&bytes, 23));
                let mut last = 0;
                for e in &events {
                    let (offset, end) = match e {
                        Decoded::Measurement(m) => (m.offset, m.offset + 1),
                        Decoded::Status(s) => (s.offset, s.offset + 1),
                        Decoded::Error(e) => (e.offset, e.offset + e.len),
                    };
                    assert!(offset >= last && end <= bytes.len() as u64, "{p} {e:?}");
                    last = offset;
                }
            }
        }
    }

    // -------------------------------------------------------- throttling

    #[test]
    fn unchanged_values_are_repeated_once_per_60_packets() {
        for p in [Protocol::FiveByte, Protocol::V7] {
            let n = p.packet_len() as u64;
            let packet = match p {
                Protocol::FiveByte => five(97, 70).to_five_byte().to_vec(),
                Protocol::V7 => five(97, 70).to_v7().to_vec(),
            };
            let bytes = packet.repeat(150);
            let offsets: Vec<u64> = decode(p, &bytes)
                .iter()
                .map(|e| match e {
                    Decoded::Measurement(m) => m.offset,
                    other => panic!("{other:?}"),
                })
                .collect();
            assert_eq!(offsets, [0, 0, 60 * n, 60 * n, 120 * n, 120 * n], "{p}");
        }
    }

    #[test]
    fn a_change_is_emitted_at_once_and_only_for_the_vital_that_changed() {
        let mut bytes = Vec::new();
        for _ in 0..3 {
            bytes.extend(five(97, 70).to_five_byte());
        }
        bytes.extend(five(97, 71).to_five_byte());
        bytes.extend(five(97, 71).to_five_byte());
        assert_eq!(
            decode(Protocol::FiveByte, &bytes),
            vec![
                measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 71.0, Quality::NONE, 15),
            ]
        );
    }

    #[test]
    fn a_steady_status_is_repeated_once_per_60_packets_and_values_resume_at_once() {
        let off = Live {
            probe_error: true,
            ..five(SPO2_INVALID, PULSE_RATE_INVALID)
        };
        let mut bytes = five(97, 70).to_five_byte().repeat(2);
        bytes.extend(off.to_five_byte().repeat(61));
        bytes.extend(five(97, 70).to_five_byte());
        assert_eq!(
            decode(Protocol::FiveByte, &bytes),
            vec![
                measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                status(None, Quality::SENSOR_OFF, 10),
                status(None, Quality::SENSOR_OFF, 10 + 60 * 5),
                measurement(Vital::Spo2, 97.0, Quality::NONE, 10 + 61 * 5),
                measurement(Vital::PulseRate, 70.0, Quality::NONE, 10 + 61 * 5),
            ]
        );
    }

    // ----------------------------------------------------------- encoder

    #[test]
    fn encoder_writes_60_packets_per_second_with_a_beating_pleth() {
        for p in [Protocol::FiveByte, Protocol::V7] {
            let s = snapshot(Some(97.0), Some(75.0), Quality::NONE);
            let bytes = encode(p, &[s, s]);
            assert_eq!(bytes.len(), 2 * 60 * p.packet_len(), "{p}");
            let lives: Vec<Live> = bytes
                .chunks_exact(p.packet_len())
                .map(|c| match p {
                    Protocol::FiveByte => {
                        let b: [u8; 5] = c.try_into().unwrap();
                        assert_eq!(b.map(|x| x & 0x80), [0x80, 0, 0, 0, 0]);
                        Live::from_five_byte(b)
                    }
                    Protocol::V7 => {
                        assert_eq!(c[0], 0x01);
                        assert!(c[1..].iter().all(|x| x & 0x80 != 0));
                        let d: [u8; 7] = c[2..].try_into().unwrap();
                        Live::from_v7(v7_restore(c[1], d))
                    }
                })
                .collect();
            // 75 beats/min over two seconds: 2 or 3 beeps.
            let beeps = lives.iter().filter(|l| l.beep).count();
            assert!((2..=3).contains(&beeps), "{p}: {beeps}");
            let min = lives.iter().map(|l| l.pleth).min().unwrap();
            let max = lives.iter().map(|l| l.pleth).max().unwrap();
            assert!(min < 30 && max > 90 && max <= 127, "{p}: {min}..{max}");
            assert!(lives.iter().all(|l| l.signal == 8 && l.bar_graph <= 15));
        }
    }

    #[test]
    fn encoder_output_round_trips_through_the_decoder() {
        for p in [Protocol::FiveByte, Protocol::V7] {
            let cases = [
                (
                    snapshot(Some(97.4), Some(72.6), Quality::NONE),
                    vec![
                        measurement(Vital::Spo2, 97.0, Quality::NONE, 0),
                        measurement(Vital::PulseRate, 73.0, Quality::NONE, 0),
                    ],
                ),
                (
                    snapshot(Some(85.0), Some(140.0), Quality::DEVICE_ALARM),
                    vec![
                        measurement(Vital::Spo2, 85.0, Quality::DEVICE_ALARM, 0),
                        measurement(Vital::PulseRate, 140.0, Quality::NONE, 0),
                    ],
                ),
                (
                    snapshot(Some(97.0), Some(70.0), Quality::SENSOR_OFF),
                    vec![status(None, Quality::SENSOR_OFF, 0)],
                ),
                (
                    snapshot(Some(97.0), Some(70.0), Quality::SEARCHING),
                    vec![status(None, Quality::SEARCHING, 0)],
                ),
                (
                    snapshot(None, Some(70.0), Quality::NONE),
                    vec![
                        status(Some(Vital::Spo2), Quality::SEARCHING, 0),
                        measurement(Vital::PulseRate, 70.0, Quality::NONE, 0),
                    ],
                ),
                (
                    // Clamped below each field's sentinel, NaN is "no value".
                    snapshot(Some(101.0), Some(f64::NAN), Quality::LOW_PERFUSION),
                    vec![
                        measurement(Vital::Spo2, 100.0, Quality::NONE, 0),
                        status(Some(Vital::PulseRate), Quality::SEARCHING, 0),
                    ],
                ),
                (
                    snapshot(Some(-3.0), Some(400.0), Quality::LOW_SIGNAL),
                    vec![
                        measurement(Vital::Spo2, 0.0, Quality::NONE, 0),
                        measurement(Vital::PulseRate, 254.0, Quality::NONE, 0),
                    ],
                ),
            ];
            for (s, want) in cases {
                assert_eq!(decode(p, &encode(p, &[s])), want, "{p} {s:?}");
            }
            // Three seconds of a steady value: one event per vital per second.
            let s = snapshot(Some(98.0), Some(60.0), Quality::NONE);
            assert_eq!(decode(p, &encode(p, &[s, s, s])).len(), 6, "{p}");
        }
    }

    // ---------------------------------------------------------- testdata

    #[test]
    fn testdata_5byte_capture_decodes_to_the_expected_events() {
        assert_testdata_matches(Format::Contec5Byte, "contec-5byte.bin");
    }

    #[test]
    fn testdata_v7_capture_decodes_to_the_expected_events() {
        assert_testdata_matches(Format::ContecV7, "contec-v7.bin");
    }
}
