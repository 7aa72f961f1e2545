//! BerryMed "BCI protocol": the 5-byte real-time packets of the BM1000
//! family (BM1000, BM1000B, BM1000C, BM1000E finger oximeters and their OEM
//! modules), about 100 packets per second. (That rate is the one the
//! BerryMed integrations assume; it could not be checked against the PDF.
//! Framing does not depend on it, only the once-per-[`EMIT_EVERY`]-packets
//! repetition of steady values below.)
//!
//! # Sources
//!
//! * Shanghai Berry Electronic Tech Co., *BCI Protocol V1.2* (and the later
//!   *BCI Protocol V1.4*), published by the vendor in the `zh2x/BCI_Protocol`
//!   and `zh2x/SpO2-BLE-for-Android` repositories. The PDFs could not be
//!   read as text here; the layout below is the one that every
//!   implementation citing them agrees on, led by the vendor's own demo
//!   parsers:
//! * BerryMed's demos (`zh2x/SpO2-USB-for-Android` `PackageParser.java`,
//!   `zh2x/SpO2-BLE-for-Android` `OxiProtocolRunnable.java` and
//!   `ParseRunnable.java`): SpO2 = byte 5, pulse rate = byte 4 | (byte 3 &
//!   0x40) << 1, SpO2 127 and pulse rate 255 are the "invalid" values, and
//!   the USB oximeter is opened at 115200 baud, 8N1.
//! * Adafruit's `adafruit_ble_berrymed_pulse_oximeter` (BM1000C/BM1000E over
//!   BLE) and the `berry-oximeter` 0.0.3 package's `BCIProtocolParser`
//!   (tested with a BM1000C), which name every bit.
//! * Field notes in `ScheindorfHyenetics/berrymedBluetoothOxymeter`
//!   (`parser/sp02.py`, a BM1000 over Bluetooth).
//!
//! # Layout
//!
//! | byte | bit 7 | bits |
//! |------|-------|------|
//! | 1 | 1 (sync) | 6 pulse beep, 5 probe unplugged, 4 no signal, 3-0 signal strength (0-8) |
//! | 2 | 0 | 6-0 plethysmogram (0-100) |
//! | 3 | 0 | 6 pulse rate bit 7, 5 pulse searching, 4 no finger, 3-0 bar graph |
//! | 4 | 0 | 6-0 pulse rate bits 6-0 (255 = invalid) |
//! | 5 | 0 | 6-0 SpO2 (0-100, 127 = invalid) |
//!
//! There is no checksum: the sync bit is the only framing. A byte with bit
//! 7 set starts a packet; bytes with bit 7 clear outside a packet are
//! [`Reject::Garbage`] (one error per contiguous run); a packet interrupted
//! by a new sync byte, or pending at the end of the stream, is
//! [`Reject::Truncated`]. Because nothing else protects the data, values the
//! specification does not allow reject the packet as [`Reject::Malformed`]:
//! an SpO2 byte of 101-126 (neither a saturation nor the 127 sentinel) and a
//! plethysmogram above 100.
//!
//! # Where the documents disagree
//!
//! * Byte 1 bits 5 and 4 are "probe unplugged" and "no signal" for BerryMed
//!   (`berry-oximeter`, ScheindorfHyenetics); the older BCI translation
//!   used by Contec-era devices (4800 baud, 60 packets/s, posted on the
//!   picbasic.co.uk forum) calls them "SpO2 decrease" and "searching time
//!   too long", and Adafruit's comment reads bit 4 the other way round ("has
//!   sensor signal"). This decoder follows BerryMed: bit 5 →
//!   `sensor_off`, bit 4 → `low_signal`.
//! * Byte 3 bit 4 is "no finger" for BerryMed and "sensor error" in the older
//!   translation: either way the sensor is not reading a finger →
//!   `sensor_off`. Byte 3 bit 5 is "pulse searching" (1 = searching) →
//!   `searching`; ScheindorfHyenetics reports it with inverted logic, against
//!   the vendor and the other implementations.
//! * `ehborisov/BerryMed-Pulse-Oximeter-tool` assembles the pulse rate as
//!   (byte 4 << 1) + bit; the vendor's demos and everyone else use byte 3
//!   bit 6 as bit 7 of the rate, which this decoder follows.
//! * The signal strength is documented as 0-8, but a BM1000 was observed
//!   sending 15 with no finger (ScheindorfHyenetics), so it is not
//!   range-checked. BerryMed's 2022 demo turns it into a perfusion-index
//!   *class* (0 → 0.1 %, 1 → 0.2 %, ... 8 → 20 %, doubling per step); that is
//!   a factor-of-two bucket, not a measurement, so this format does not emit
//!   `perfusion_index` (the 7-byte "BCI-RR" variant carries a real PI and is
//!   a different protocol, not decoded here). The same demo hides SpO2
//!   outside 35-100 and pulse rates outside 25-250: a display policy, not the
//!   protocol; range checks belong to [`crate::Reading`].
//!
//! # What is emitted
//!
//! The numbers change about once a second while packets arrive 100 times a
//! second, so one measurement per packet would flood the gateway with
//! copies. For each of SpO2 and pulse rate the decoder keeps the last
//! reported state (the raw value or sentinel, plus the quality flags) and
//! reports the vital of a packet when that state **changed**, or when
//! [`EMIT_EVERY`] (100) good packets — one nominal second — have passed since
//! it was last reported. So changes are reported at once (within 10 ms), a
//! steady value once a second, the output is the same however the bytes are
//! split, and the gateway keeps seeing a live device. A valid value is a
//! [`Measurement`]; 127 / 255 is a [`Status`] for its vital. Quality flags:
//! probe unplugged or no finger → `sensor_off`, pulse searching →
//! `searching`, no signal → `low_signal`; the pulse beep, bar graph and
//! signal strength are not reported. The format has no clock:
//! `device_time` is `None`. [`StreamDecoder::finish`] resets this state.
//!
//! The encoder writes 100 packets per snapshot (one second) with a
//! plethysmogram of the snapshot's pulse rate.

use crate::decode::{
    DecodeError, Decoded, Decoder, Encoder, Measurement, Reject, Status, StreamDecoder,
};
use crate::{Quality, Snapshot, Vital};

/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2, Vital::PulseRate];

/// Packets per second the devices send (and the encoder writes).
pub const PACKETS_PER_SECOND: usize = 100;

/// A steady value is reported again after this many good packets.
pub const EMIT_EVERY: u32 = 100;

/// Bytes per packet.
const PACKET_LEN: usize = 5;

/// SpO2 byte meaning "no valid value".
pub const SPO2_INVALID: u8 = 127;
/// Pulse rate meaning "no valid value".
pub const PULSE_RATE_INVALID: u16 = 255;

/// Byte 1 bits.
pub mod byte1 {
    /// Set on every first byte (and only there).
    pub const SYNC: u8 = 0x80;
    /// A pulse beat (the device beeps).
    pub const PULSE_BEEP: u8 = 0x40;
    /// Probe unplugged.
    pub const PROBE_UNPLUGGED: u8 = 0x20;
    /// No signal.
    pub const NO_SIGNAL: u8 = 0x10;
    /// Signal strength (0-8).
    pub const SIGNAL_STRENGTH: u8 = 0x0f;
}

/// Byte 3 bits.
pub mod byte3 {
    /// Bit 7 of the pulse rate.
    pub const PULSE_RATE_BIT7: u8 = 0x40;
    /// Searching for a pulse.
    pub const PULSE_SEARCHING: u8 = 0x20;
    /// No finger in the sensor.
    pub const NO_FINGER: u8 = 0x10;
    /// Bar graph (pulse amplitude).
    pub const BAR_GRAPH: u8 = 0x0f;
}

/// A fresh decoder.
pub fn decoder() -> Decoder {
    Decoder::Stream(Box::new(BerrymedDecoder::new()))
}

/// An encoder (the protocol carries no device identity).
pub fn encoder(_device_id: &str) -> Box<dyn Encoder> {
    Box::new(BerrymedEncoder::new())
}

/// The quality flags of a packet.
pub fn packet_quality(p: &[u8; PACKET_LEN]) -> Quality {
    let [b1, _, b3, _, _] = *p;
    let mut q = Quality::NONE;
    q.set(
        Quality::SENSOR_OFF,
        b1 & byte1::PROBE_UNPLUGGED != 0 || b3 & byte3::NO_FINGER != 0,
    );
    q.set(Quality::SEARCHING, b3 & byte3::PULSE_SEARCHING != 0);
    q.set(Quality::LOW_SIGNAL, b1 & byte1::NO_SIGNAL != 0);
    q
}

/// The pulse rate of a packet (8 bits over bytes 3 and 4).
pub fn packet_pulse_rate(p: &[u8; PACKET_LEN]) -> u16 {
    let [_, _, b3, b4, _] = *p;
    u16::from(b4 & 0x7f) | (u16::from(b3 & byte3::PULSE_RATE_BIT7) << 1)
}

/// When each vital was last reported, for the emission policy.
#[derive(Debug, Clone, Copy, Default)]
struct Track {
    last: Option<(u16, Quality)>,
    since: u32,
}

impl Track {
    /// Whether the vital of this packet is to be reported.
    fn due(&mut self, raw: u16, q: Quality) -> bool {
        self.since = self.since.saturating_add(1);
        if self.last != Some((raw, q)) || self.since >= EMIT_EVERY {
            self.last = Some((raw, q));
            self.since = 0;
            true
        } else {
            false
        }
    }
}

/// Decoder state (see the module documentation).
pub struct BerrymedDecoder {
    pkt: [u8; PACKET_LEN],
    /// Bytes of `pkt` filled; 0 when between packets.
    n: usize,
    /// Offset of `pkt[0]`.
    pkt_start: u64,
    /// Offset of the next byte fed.
    pos: u64,
    /// Pending skipped bytes `[start, end)`.
    garbage: Option<(u64, u64)>,
    spo2: Track,
    pulse_rate: Track,
}

impl Default for BerrymedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BerrymedDecoder {
    /// A decoder at stream offset 0.
    pub fn new() -> Self {
        BerrymedDecoder {
            pkt: [0; PACKET_LEN],
            n: 0,
            pkt_start: 0,
            pos: 0,
            garbage: None,
            spo2: Track::default(),
            pulse_rate: Track::default(),
        }
    }

    fn flush_garbage(&mut self, out: &mut dyn FnMut(Decoded)) {
        if let Some((s, e)) = self.garbage.take() {
            out(Decoded::Error(DecodeError::new(
                s,
                e - s,
                Reject::Garbage,
                format!(
                    "skipped {} byte(s) with bit 7 clear outside a packet (no sync byte)",
                    e - s
                ),
            )));
        }
    }

    fn truncated(&mut self, why: &str, out: &mut dyn FnMut(Decoded)) {
        if self.n > 0 {
            out(Decoded::Error(DecodeError::new(
                self.pkt_start,
                self.n as u64,
                Reject::Truncated,
                format!("packet {why} after {} of {PACKET_LEN} bytes", self.n),
            )));
            self.n = 0;
        }
    }

    fn packet(&mut self, out: &mut dyn FnMut(Decoded)) {
        let p = self.pkt;
        let offset = self.pkt_start;
        let [_, pleth, _, _, spo2] = p;
        let illegal = if pleth > 100 {
            Some(format!("plethysmogram {pleth} is above 100"))
        } else if spo2 > 100 && spo2 != SPO2_INVALID {
            Some(format!(
                "SpO2 byte {spo2} is neither 0-100 nor the {SPO2_INVALID} 'invalid' value"
            ))
        } else {
            None
        };
        if let Some(detail) = illegal {
            out(Decoded::Error(DecodeError::new(
                offset,
                PACKET_LEN as u64,
                Reject::Malformed,
                detail,
            )));
            return;
        }
        let q = packet_quality(&p);
        let pr = packet_pulse_rate(&p);
        let vitals = [
            (Vital::Spo2, u16::from(spo2), u16::from(SPO2_INVALID)),
            (Vital::PulseRate, pr, PULSE_RATE_INVALID),
        ];
        for (vital, raw, invalid) in vitals {
            let track = match vital {
                Vital::Spo2 => &mut self.spo2,
                _ => &mut self.pulse_rate,
            };
            if !track.due(raw, q) {
                continue;
            }
            out(if raw == invalid {
                Decoded::Status(Status {
                    vital: Some(vital),
                    quality: q,
                    device_time: None,
                    offset,
                })
            } else {
                Decoded::Measurement(Measurement {
                    vital,
                    value: f64::from(raw),
                    device_time: None,
                    quality: q,
                    offset,
                })
            });
        }
    }
}

impl StreamDecoder for BerrymedDecoder {
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Decoded)) {
        for &b in chunk {
            if b & byte1::SYNC != 0 {
                self.flush_garbage(out);
                self.truncated("interrupted by a new sync byte", out);
                self.pkt = [b, 0, 0, 0, 0];
                self.n = 1;
                self.pkt_start = self.pos;
            } else if self.n == 0 {
                self.garbage = Some(match self.garbage {
                    Some((s, _)) => (s, self.pos + 1),
                    None => (self.pos, self.pos + 1),
                });
            } else {
                if let Some(slot) = self.pkt.get_mut(self.n) {
                    *slot = b;
                }
                self.n += 1;
                if self.n >= PACKET_LEN {
                    self.n = 0;
                    self.packet(out);
                }
            }
            self.pos += 1;
        }
    }

    fn finish(&mut self, out: &mut dyn FnMut(Decoded)) {
        self.flush_garbage(out);
        self.truncated("cut by the end of the stream", out);
        self.spo2 = Track::default();
        self.pulse_rate = Track::default();
    }
}

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

/// Writes 100 packets per snapshot.
pub struct BerrymedEncoder {
    /// Position in the current beat, 0..1.
    phase: f64,
}

impl Default for BerrymedEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl BerrymedEncoder {
    /// An encoder at the start of a beat.
    pub fn new() -> Self {
        BerrymedEncoder { phase: 0.0 }
    }
}

/// A plethysmogram beat, 0..1 over the beat's phase 0..1: a fast systolic
/// rise, then a decay with a dicrotic notch.
fn beat_shape(p: f64) -> f64 {
    const RISE: f64 = 0.14;
    let y = if p < RISE {
        0.5 - 0.5 * (std::f64::consts::PI * p / RISE).cos()
    } else {
        let t = (p - RISE) / (1.0 - RISE);
        let notch = ((t - 0.3) / 0.07).powi(2);
        (-2.5 * t).exp() * (1.0 - t) + 0.12 * (-notch).exp() * (1.0 - t)
    };
    y.clamp(0.0, 1.0)
}

/// BerryMed's perfusion-index classes (their 2022 demo's `getIntPi`), used
/// for the signal-strength nibble.
fn pi_class(pi: f64) -> u8 {
    const BOUNDS: [f64; 8] = [0.2, 0.4, 0.7, 1.4, 2.7, 5.3, 10.3, 20.0];
    BOUNDS.iter().filter(|&&b| pi >= b).count() as u8
}

impl Encoder for BerrymedEncoder {
    fn encode(&mut self, s: &Snapshot, out: &mut Vec<u8>) {
        let q = s.quality;
        let off = q.contains(Quality::SENSOR_OFF);
        let finite = |v: Vital| s.get(v).filter(|x| x.is_finite() && !off);
        let spo2 = finite(Vital::Spo2).map_or(SPO2_INVALID, |v| v.round().clamp(0.0, 100.0) as u8);
        // 255 is the sentinel: the highest rate the byte pair can carry is 254.
        let pr = finite(Vital::PulseRate).map_or(PULSE_RATE_INVALID, |v| {
            v.round().clamp(0.0, f64::from(PULSE_RATE_INVALID - 1)) as u16
        });
        let strength = if off {
            0
        } else if let Some(pi) = finite(Vital::PerfusionIndex) {
            pi_class(pi)
        } else if q.contains(Quality::LOW_PERFUSION) {
            1
        } else {
            5
        };
        let beating = pr != PULSE_RATE_INVALID && pr > 0;
        let step = if beating {
            f64::from(pr) / 60.0 / PACKETS_PER_SECOND as f64
        } else {
            0.0
        };
        out.reserve(PACKETS_PER_SECOND * PACKET_LEN);
        for _ in 0..PACKETS_PER_SECOND {
            let mut beep = false;
            if beating {
                self.phase += step;
                if self.phase >= 1.0 {
                    self.phase -= self.phase.floor();
                    beep = true;
                }
            }
            let shape = if beating { beat_shape(self.phase) } else { 0.0 };
            let pleth = (5.0 + 90.0 * shape).round() as u8;
            let bar = if beating {
                (shape * 8.0).round() as u8
            } else {
                0
            };
            let mut b1 = byte1::SYNC | (strength & byte1::SIGNAL_STRENGTH);
            if beep {
                b1 |= byte1::PULSE_BEEP;
            }
            if q.contains(Quality::LOW_SIGNAL) {
                b1 |= byte1::NO_SIGNAL;
            }
            let mut b3 = bar & byte3::BAR_GRAPH;
            if pr & 0x80 != 0 {
                b3 |= byte3::PULSE_RATE_BIT7;
            }
            if q.contains(Quality::SEARCHING) {
                b3 |= byte3::PULSE_SEARCHING;
            }
            if off {
                b3 |= byte3::NO_FINGER;
            }
            let pleth = if off { 0 } else { pleth.min(100) };
            out.extend_from_slice(&[b1, pleth, b3, (pr & 0x7f) as u8, spo2 & 0x7f]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::format::testing::{
        self, Rng, assert_testdata_matches, decode_chunks, errors, feed, measurement as m,
        status as st,
    };

    fn decode(bytes: &[u8]) -> Vec<Decoded> {
        decode_chunks(&mut BerrymedDecoder::new(), [bytes])
    }

    /// A packet as the specification lays it out.
    fn packet(b1_flags: u8, pleth: u8, b3_flags: u8, pr: u16, spo2: u8) -> [u8; 5] {
        let hi = if pr & 0x80 != 0 {
            byte3::PULSE_RATE_BIT7
        } else {
            0
        };
        [
            0x80 | b1_flags,
            pleth,
            b3_flags | hi,
            (pr & 0x7f) as u8,
            spo2,
        ]
    }

    #[test]
    fn a_packet_decodes_spo2_and_the_eight_bit_pulse_rate() {
        // 0xC5: sync, beep, strength 5; byte 3 carries PR bit 7 (130 = 0x82).
        let p = [0xC5, 0x32, 0x43, 0x02, 0x61];
        assert_eq!(packet_pulse_rate(&p), 130);
        assert_eq!(
            decode(&p),
            vec![
                m(Vital::Spo2, 97.0, Quality::NONE, 0),
                m(Vital::PulseRate, 130.0, Quality::NONE, 0),
            ]
        );
        let low = packet(0x05, 50, 0x03, 72, 98);
        assert_eq!(low, [0x85, 50, 0x03, 72, 98]);
        assert_eq!(decode(&low)[1], m(Vital::PulseRate, 72.0, Quality::NONE, 0));
    }

    #[test]
    fn invalid_values_become_statuses_never_numbers() {
        let p = packet(0, 0, byte3::NO_FINGER, 255, 127);
        assert_eq!(p, [0x80, 0, 0x50, 0x7f, 0x7f]);
        let q = Quality::SENSOR_OFF;
        assert_eq!(
            decode(&p),
            vec![st(Vital::Spo2, q, 0), st(Vital::PulseRate, q, 0)]
        );
        let p = packet(0x03, 40, byte3::PULSE_SEARCHING, 255, 96);
        assert_eq!(
            decode(&p),
            vec![
                m(Vital::Spo2, 96.0, Quality::SEARCHING, 0),
                st(Vital::PulseRate, Quality::SEARCHING, 0)
            ]
        );
    }

    #[test]
    fn every_status_bit_maps_to_its_quality_flag() {
        let cases = [
            (byte1::PROBE_UNPLUGGED, 0, Quality::SENSOR_OFF),
            (byte1::NO_SIGNAL, 0, Quality::LOW_SIGNAL),
            (byte1::PULSE_BEEP, 0, Quality::NONE),
            (byte1::SIGNAL_STRENGTH, 0, Quality::NONE),
            (0, byte3::NO_FINGER, Quality::SENSOR_OFF),
            (0, byte3::PULSE_SEARCHING, Quality::SEARCHING),
            (0, byte3::BAR_GRAPH, Quality::NONE),
            (
                byte1::NO_SIGNAL | byte1::PROBE_UNPLUGGED,
                byte3::PULSE_SEARCHING,
                Quality::LOW_SIGNAL | Quality::SENSOR_OFF | Quality::SEARCHING,
            ),
        ];
        for (f1, f3, q) in cases {
            let p = packet(f1, 30, f3, 70, 97);
            assert_eq!(packet_quality(&p), q, "{f1:02x} {f3:02x}");
            assert_eq!(
                decode(&p),
                vec![m(Vital::Spo2, 97.0, q, 0), m(Vital::PulseRate, 70.0, q, 0)]
            );
        }
    }

    #[test]
    fn a_steady_value_is_reported_once_per_hundred_packets() {
        let p = packet(0x05, 30, 0, 70, 97);
        let stream: Vec<u8> = std::iter::repeat_n(p, 250).flatten().collect();
        let v = decode(&stream);
        let offsets: Vec<u64> = v
            .iter()
            .map(|d| match d {
                Decoded::Measurement(x) => x.offset,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(offsets, vec![0, 0, 500, 500, 1000, 1000]);
    }

    #[test]
    fn a_change_is_reported_at_once_and_restarts_the_second() {
        let mut s = Vec::new();
        for i in 0..150u16 {
            let spo2 = if i < 30 { 97 } else { 96 };
            let pr = if i < 60 { 70 } else { 71 };
            s.extend_from_slice(&packet(0, 30, 0, pr, spo2));
        }
        let v = decode(&s);
        assert_eq!(
            v,
            vec![
                m(Vital::Spo2, 97.0, Quality::NONE, 0),
                m(Vital::PulseRate, 70.0, Quality::NONE, 0),
                m(Vital::Spo2, 96.0, Quality::NONE, 150),
                m(Vital::PulseRate, 71.0, Quality::NONE, 300),
                m(Vital::Spo2, 96.0, Quality::NONE, 650),
            ]
        );
        // A flag change counts as a change.
        let mut s = packet(0, 30, 0, 70, 97).to_vec();
        s.extend_from_slice(&packet(0, 30, byte3::PULSE_SEARCHING, 70, 97));
        assert_eq!(decode(&s).len(), 4);
    }

    #[test]
    fn garbage_is_skipped_and_reported_once_per_run() {
        let mut s = packet(0, 30, 0, 70, 97).to_vec();
        s.extend_from_slice(&[0x01, 0x02, 0x7f, 0x00, 0x33, 0x44, 0x55]);
        s.extend_from_slice(&packet(0, 30, 0, 71, 97));
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(5, 7, Reject::Garbage)]);
        assert_eq!(v.len(), 4);
        assert_eq!(v[3], m(Vital::PulseRate, 71.0, Quality::NONE, 12));
        // The same fed byte by byte.
        assert_eq!(decode_chunks(&mut BerrymedDecoder::new(), s.chunks(1)), v);
    }

    #[test]
    fn a_packet_interrupted_by_a_sync_byte_is_truncated() {
        let mut s = packet(0, 30, 0, 70, 97)[..3].to_vec();
        s.extend_from_slice(&packet(0, 30, 0, 70, 97));
        let v = decode(&s);
        assert_eq!(errors(&v), vec![(0, 3, Reject::Truncated)]);
        assert_eq!(v[1], m(Vital::Spo2, 97.0, Quality::NONE, 3));
    }

    #[test]
    fn a_pending_packet_at_finish_is_truncated_and_the_decoder_resets() {
        let mut d = BerrymedDecoder::new();
        let p = packet(0, 30, 0, 70, 97);
        let v = decode_chunks(&mut d, [&p[..], &p[..2]]);
        assert_eq!(errors(&v), vec![(5, 2, Reject::Truncated)]);
        // After finish, the same value is reported again at once.
        assert_eq!(
            feed(&mut d, [p]),
            vec![
                m(Vital::Spo2, 97.0, Quality::NONE, 7),
                m(Vital::PulseRate, 70.0, Quality::NONE, 7)
            ]
        );
    }

    #[test]
    fn values_outside_the_specification_are_malformed() {
        for spo2 in [101u8, 110, 126] {
            let v = decode(&packet(0, 30, 0, 70, spo2));
            assert_eq!(errors(&v), vec![(0, 5, Reject::Malformed)], "{spo2}");
            assert_eq!(v.len(), 1);
        }
        let v = decode(&packet(0, 101, 0, 70, 97));
        assert_eq!(errors(&v), vec![(0, 5, Reject::Malformed)]);
        // The sentinels and the edges of the ranges are not.
        for (pleth, spo2, pr) in [(100, 100, 254), (0, 0, 0), (0, 127, 255)] {
            assert!(errors(&decode(&packet(0, pleth, 0, pr, spo2))).is_empty());
        }
    }

    #[test]
    fn split_feeds_decode_the_same_as_one_feed() {
        let mut e = BerrymedEncoder::new();
        let mut s = Vec::new();
        let mut snap = Snapshot::default();
        snap.set(Vital::Spo2, Some(97.0));
        snap.set(Vital::PulseRate, Some(140.0));
        e.encode(&snap, &mut s);
        s.extend_from_slice(&[0x11, 0x22]);
        snap.quality = Quality::SENSOR_OFF;
        e.encode(&snap, &mut s);
        s.extend_from_slice(&[0x81, 0x00]);
        let whole = decode(&s);
        assert_eq!(
            decode_chunks(&mut BerrymedDecoder::new(), s.chunks(1)),
            whole
        );
        let mut rng = Rng::new(3);
        for _ in 0..30 {
            let chunks = rng.chunks(&s, 13);
            assert_eq!(decode_chunks(&mut BerrymedDecoder::new(), chunks), whole);
        }
    }

    fn snapshot(spo2: Option<f64>, pr: Option<f64>, q: Quality) -> Snapshot {
        testing::snapshot(0, q, &[(Vital::Spo2, spo2), (Vital::PulseRate, pr)])
    }

    #[test]
    fn encoder_writes_one_second_of_well_framed_packets() {
        let mut e = BerrymedEncoder::new();
        let mut out = Vec::new();
        e.encode(&snapshot(Some(97.0), Some(75.0), Quality::NONE), &mut out);
        assert_eq!(out.len(), PACKETS_PER_SECOND * 5);
        let mut beeps = 0;
        let (mut lo, mut hi) = (255u8, 0u8);
        for p in out.chunks(5) {
            assert_eq!(p[0] & 0x80, 0x80);
            assert!(p[1..].iter().all(|b| b & 0x80 == 0));
            assert!(p[1] <= 100);
            lo = lo.min(p[1]);
            hi = hi.max(p[1]);
            if p[0] & byte1::PULSE_BEEP != 0 {
                beeps += 1;
            }
        }
        // 75 beats per minute: one or two beats a second, a real waveform.
        assert!((1..=2).contains(&beeps), "{beeps}");
        assert!(hi - lo > 60, "{lo}..{hi}");
    }

    #[test]
    fn encoder_output_decodes_back_to_the_snapshot() {
        let mut e = BerrymedEncoder::new();
        for (spo2, pr, q) in [
            (97.0, 72.0, Quality::NONE),
            (88.4, 130.0, Quality::SEARCHING),
            (100.0, 254.0, Quality::LOW_SIGNAL),
            (70.0, 40.0, Quality::SEARCHING | Quality::LOW_SIGNAL),
        ] {
            let mut out = Vec::new();
            e.encode(&snapshot(Some(spo2), Some(pr), q), &mut out);
            assert_eq!(
                decode(&out),
                vec![
                    m(Vital::Spo2, spo2.round(), q, 0),
                    m(Vital::PulseRate, pr, q, 0),
                ]
            );
        }
    }

    #[test]
    fn encoder_uses_the_sentinels_and_clamps() {
        let mut e = BerrymedEncoder::new();
        let mut out = Vec::new();
        e.encode(
            &snapshot(Some(97.0), Some(72.0), Quality::SENSOR_OFF),
            &mut out,
        );
        assert!(out.chunks(5).all(|p| p == [0x80, 0, 0x50, 0x7f, 0x7f]));
        assert_eq!(
            decode(&out),
            vec![
                st(Vital::Spo2, Quality::SENSOR_OFF, 0),
                st(Vital::PulseRate, Quality::SENSOR_OFF, 0)
            ]
        );
        let mut out = Vec::new();
        e.encode(&snapshot(None, Some(400.0), Quality::NONE), &mut out);
        e.encode(&snapshot(Some(150.0), None, Quality::NONE), &mut out);
        assert_eq!(
            decode(&out),
            vec![
                st(Vital::Spo2, Quality::NONE, 0),
                m(Vital::PulseRate, 254.0, Quality::NONE, 0),
                m(Vital::Spo2, 100.0, Quality::NONE, 500),
                st(Vital::PulseRate, Quality::NONE, 500),
            ]
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        for _ in 0..300 {
            let mut d = BerrymedDecoder::new();
            let bytes = rng.bytes(4000);
            let size = rng.below(17) + 1;
            let covered: u64 = errors(&decode_chunks(&mut d, bytes.chunks(size)))
                .iter()
                .map(|e| e.1)
                .sum();
            assert!(covered <= bytes.len() as u64);
        }
    }

    // -- sample capture ---------------------------------------------------

    #[test]
    fn sample_capture_decodes_to_the_expected_file() {
        assert_testdata_matches(Format::BerrymedBci, "berrymed-bci.bin");
    }
}
