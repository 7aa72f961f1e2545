//! Helpers shared by the format modules' unit tests: running decoders over
//! chunks, building expected events, comparing a testdata capture with its
//! `*.expected.jsonl` file, and a small deterministic random generator.

use super::{Format, FormatOptions, Framing};
use crate::decode::{
    DecodeError, Decoded, Decoder, Encoder, Measurement, MessageDecoder, Reject, Status,
    StreamDecoder,
};
use crate::{Quality, Snapshot, Timestamp, Vital};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The reception time message formats are decoded with in the testdata
/// comparison (2025-11-21T07:01:02Z): what the expected files were made with.
pub(crate) const RECEIVED: Timestamp = Timestamp(1_763_708_462_000);

/// The stream decoder inside `decoder`; panics for a message decoder.
pub(crate) fn stream(decoder: Decoder) -> Box<dyn StreamDecoder> {
    match decoder {
        Decoder::Stream(d) => d,
        Decoder::Message(_) => panic!("expected a stream decoder"),
    }
}

/// The message decoder inside `decoder`; panics for a stream decoder.
pub(crate) fn message(decoder: Decoder) -> Box<dyn MessageDecoder> {
    match decoder {
        Decoder::Message(d) => d,
        Decoder::Stream(_) => panic!("expected a message decoder"),
    }
}

/// Feeds each chunk in turn, without finishing, and returns the events.
pub(crate) fn feed<C: AsRef<[u8]>>(
    decoder: &mut dyn StreamDecoder,
    chunks: impl IntoIterator<Item = C>,
) -> Vec<Decoded> {
    let mut events = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk.as_ref(), &mut |e| events.push(e));
    }
    events
}

/// Finishes the stream and returns what that reported.
pub(crate) fn finish(decoder: &mut dyn StreamDecoder) -> Vec<Decoded> {
    let mut events = Vec::new();
    decoder.finish(&mut |e| events.push(e));
    events
}

/// Feeds each chunk in turn, then finishes the stream, and returns every
/// event in order.
pub(crate) fn decode_chunks<C: AsRef<[u8]>>(
    decoder: &mut dyn StreamDecoder,
    chunks: impl IntoIterator<Item = C>,
) -> Vec<Decoded> {
    let mut events = feed(decoder, chunks);
    events.extend(finish(decoder));
    events
}

/// Decodes one message and returns its events.
pub(crate) fn decode_message(
    decoder: &mut dyn MessageDecoder,
    payload: &[u8],
    offset: u64,
    received: Timestamp,
) -> Vec<Decoded> {
    let mut events = Vec::new();
    decoder.decode(payload, offset, received, &mut |e| events.push(e));
    events
}

/// Encodes `snapshot` as one message, which must be a single line, decodes
/// it, and asserts its events are measurements of `want` at the snapshot's
/// time, in that order.
pub(crate) fn assert_message_round_trip(
    encoder: &mut dyn Encoder,
    decoder: &mut dyn MessageDecoder,
    snapshot: &Snapshot,
    want: &[(Vital, f64)],
) {
    let mut out = Vec::new();
    encoder.encode(snapshot, &mut out);
    assert!(!out.contains(&b'\n'));
    let got = decode_message(decoder, &out, 0, Timestamp(0));
    let want: Vec<_> = want
        .iter()
        .map(|&(vital, value)| (vital, value, Some(snapshot.time)))
        .collect();
    assert_eq!(measured(&got), want, "{got:?}");
}

/// Splits `bytes` into consecutive chunks whose sizes `size` gives, each
/// clamped to at least 1 byte and at most what is left.
pub(crate) fn split(bytes: &[u8], mut size: impl FnMut() -> usize) -> Vec<&[u8]> {
    let mut chunks = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (head, tail) = rest.split_at(size().clamp(1, rest.len()));
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// An expected measurement without a device time.
pub(crate) fn measurement(vital: Vital, value: f64, quality: Quality, offset: u64) -> Decoded {
    Decoded::Measurement(Measurement {
        vital,
        value,
        device_time: None,
        quality,
        offset,
    })
}

/// An expected status without a device time; `vital` is a [`Vital`] or an
/// `Option<Vital>`.
pub(crate) fn status(vital: impl Into<Option<Vital>>, quality: Quality, offset: u64) -> Decoded {
    Decoded::Status(Status {
        vital: vital.into(),
        quality,
        device_time: None,
        offset,
    })
}

/// `(offset, len, reason)` of every error, in order.
pub(crate) fn errors(events: &[Decoded]) -> Vec<(u64, u64, Reject)> {
    events
        .iter()
        .filter_map(|e| match e {
            Decoded::Error(e) => Some((e.offset, e.len, e.reason)),
            _ => None,
        })
        .collect()
}

/// `(vital, value, device_time)` of every event, which must all be
/// measurements.
pub(crate) fn measured(events: &[Decoded]) -> Vec<(Vital, f64, Option<Timestamp>)> {
    events
        .iter()
        .map(|e| match e {
            Decoded::Measurement(m) => (m.vital, m.value, m.device_time),
            other => panic!("expected a measurement, got {other:?}"),
        })
        .collect()
}

/// Reason and detail of the only event, which must be an error.
pub(crate) fn single_error(events: &[Decoded]) -> (Reject, String) {
    match events {
        [Decoded::Error(DecodeError { reason, detail, .. })] => (*reason, detail.clone()),
        other => panic!("expected one error, got {other:?}"),
    }
}

/// A snapshot at `time_ms` with the given quality and values.
pub(crate) fn snapshot(
    time_ms: i64,
    quality: Quality,
    values: &[(Vital, Option<f64>)],
) -> Snapshot {
    let mut s = Snapshot {
        time: Timestamp(time_ms),
        quality,
        ..Snapshot::default()
    };
    for (vital, value) in values {
        s.set(*vital, *value);
    }
    s
}

/// A snapshot at 2025-11-21T07:01:02.123Z with a value for every vital,
/// some of them more precise than a format carries.
pub(crate) fn every_vital() -> Snapshot {
    snapshot(
        1_763_708_462_123,
        Quality::NONE,
        &[
            (Vital::HeartRate, Some(72.4)),
            (Vital::PulseRate, Some(71.0)),
            (Vital::Spo2, Some(97.0)),
            (Vital::RespiratoryRate, Some(14.0)),
            (Vital::BodyTemperature, Some(37.23)),
            (Vital::SystolicBp, Some(120.0)),
            (Vital::DiastolicBp, Some(80.0)),
            (Vital::MeanArterialPressure, Some(93.0)),
            (Vital::PerfusionIndex, Some(2.35)),
            (Vital::RrInterval, Some(812.0)),
        ],
    )
}

/// One event as a line of the `*.expected.jsonl` files:
/// `{"offset","vital","value","quality"}`, `{"offset","status","vital"}` or
/// `{"offset","error"}`.
pub(crate) fn event_json(event: &Decoded) -> Value {
    match event {
        Decoded::Measurement(m) => json!({
            "offset": m.offset, "vital": m.vital, "value": m.value, "quality": m.quality
        }),
        Decoded::Status(s) => json!({
            "offset": s.offset, "status": s.quality, "vital": s.vital
        }),
        Decoded::Error(e) => json!({"offset": e.offset, "error": e.reason}),
    }
}

fn testdata_path(file: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata")).join(file)
}

/// The bytes of `crates/devices/testdata/<file>`.
pub(crate) fn testdata(file: &str) -> Vec<u8> {
    let path = testdata_path(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The events of `testdata/<format-name>.expected.jsonl` (blank lines
/// skipped).
pub(crate) fn expected_events(format: Format) -> Vec<Value> {
    let text = String::from_utf8(testdata(&format!("{}.expected.jsonl", format.name()))).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Decodes a whole capture with the format's default decoder: a stream
/// format is fed as one chunk and finished; a message format gets one
/// message per non-empty `\n`-separated line, at the line's byte offset,
/// received at [`RECEIVED`].
pub(crate) fn decode_capture(format: Format, capture: &[u8]) -> Vec<Decoded> {
    let decoder = format.decoder(&FormatOptions::default());
    match format.framing() {
        Framing::Stream => decode_chunks(&mut *stream(decoder), [capture]),
        Framing::Message => {
            let mut d = message(decoder);
            let mut events = Vec::new();
            let mut offset = 0u64;
            for line in capture.split(|b| *b == b'\n') {
                if !line.is_empty() {
                    events.extend(decode_message(&mut *d, line, offset, RECEIVED));
                }
                offset += line.len() as u64 + 1;
            }
            events
        }
    }
}

/// Decodes `testdata/<capture_file>` ([`decode_capture`]) and asserts the
/// events are those of `testdata/<format-name>.expected.jsonl`. On a
/// mismatch the actual events are printed, one JSON line each.
pub(crate) fn assert_testdata_matches(format: Format, capture_file: &str) {
    let got: Vec<Value> = decode_capture(format, &testdata(capture_file))
        .iter()
        .map(event_json)
        .collect();
    let want = expected_events(format);
    if got != want {
        for g in &got {
            eprintln!("{g}");
        }
    }
    assert_eq!(got, want, "{format}: {capture_file}");
}

/// A tiny deterministic pseudo-random generator (xorshift64), so that
/// no-panic loops and random chunkings need no extra crate.
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub(crate) fn new(seed: u64) -> Rng {
        assert_ne!(seed, 0, "xorshift needs a non-zero seed");
        Rng(seed)
    }

    /// The next 64 bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n` (`n` > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fewer than `max_len` random bytes.
    pub(crate) fn bytes(&mut self, max_len: usize) -> Vec<u8> {
        let n = self.below(max_len);
        (0..n).map(|_| self.next_u64() as u8).collect()
    }

    /// `bytes` cut into chunks of 1 to `max` bytes.
    pub(crate) fn chunks<'a>(&mut self, bytes: &'a [u8], max: usize) -> Vec<&'a [u8]> {
        split(bytes, || 1 + self.below(max))
    }

    /// `seed` with up to five random edits: an insertion from `alphabet`, a
    /// removal, or an overwrite with any byte.
    pub(crate) fn mutate(&mut self, seed: &[u8], alphabet: &[u8]) -> Vec<u8> {
        let mut msg = seed.to_vec();
        for _ in 0..(self.next_u64() % 6) {
            let pos = self.below(msg.len() + 1);
            match self.next_u64() % 3 {
                0 => msg.insert(pos, alphabet[self.below(alphabet.len())]),
                1 if pos < msg.len() => {
                    msg.remove(pos);
                }
                _ if pos < msg.len() => msg[pos] = self.next_u64() as u8,
                _ => {}
            }
        }
        msg
    }
}
