//! What decoders produce, and the two shapes of decoder.
//!
//! Serial devices send a byte stream that has to be framed, checked and
//! resynchronised ([`StreamDecoder`]); MQTT devices send self-contained
//! messages ([`MessageDecoder`]). Both report through the same callback so
//! that the daemon, the `decode` command and the benchmarks share one path,
//! and neither allocates per frame.

use crate::{Quality, Timestamp, Vital};
use serde::Serialize;
use std::fmt;

/// One value a device reported, before it is bound to a device id and a
/// patient (that binding lives in the gateway's configuration, not in the
/// wire format).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measurement {
    /// Which vital.
    pub vital: Vital,
    /// The value in the vital's canonical unit ([`Vital::ucum`]).
    pub value: f64,
    /// The device's own timestamp for the value, when the format carries one.
    pub device_time: Option<Timestamp>,
    /// Flags the device set on this value (sensor off, artifact, ...).
    pub quality: Quality,
    /// Byte offset of the frame (serial) or message (MQTT) it came from.
    pub offset: u64,
}

/// A well-formed frame that carries no usable value: the device says it is
/// searching, its sensor is off, or the value is "missing". These matter to
/// fault detection (a sensor off is not a patient emergency), so they are
/// reported rather than silently skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Status {
    /// The vital the missing value would have been, when the frame says.
    pub vital: Option<Vital>,
    /// What the device reported about itself.
    pub quality: Quality,
    /// Device timestamp, when the format carries one.
    pub device_time: Option<Timestamp>,
    /// Byte offset of the frame or message.
    pub offset: u64,
}

/// Why input was rejected. Each reason has its own counter and a stable
/// snake_case name (metrics label, log field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reject {
    /// Bytes that do not start a frame were skipped while resynchronising.
    Garbage,
    /// A frame failed its checksum.
    BadChecksum,
    /// A frame started but the stream ended or a new frame began before it
    /// was complete (a torn frame).
    Truncated,
    /// A frame or message whose structure is wrong (bad JSON, missing or
    /// mistyped fields, a field outside what the specification allows).
    Malformed,
    /// A message larger than the configured limit.
    TooLarge,
    /// Well-formed, but names something this gateway does not support (an
    /// unknown SenML unit, an Open mHealth schema we do not map).
    Unsupported,
    /// A time that cannot be right (not finite, before 1970 or far future).
    BadTime,
    /// A value outside the vital's physiologically possible range.
    Impossible,
    /// A device id (topic or serial port) not bound in the configuration.
    UnknownDevice,
    /// An MQTT topic no configured profile subscribes to.
    UnknownTopic,
    /// The same device, time and payload seen again (a replay or a
    /// redelivery that was already stored).
    Duplicate,
}

impl Reject {
    /// The stable snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            Reject::Garbage => "garbage",
            Reject::BadChecksum => "bad_checksum",
            Reject::Truncated => "truncated",
            Reject::Malformed => "malformed",
            Reject::TooLarge => "too_large",
            Reject::Unsupported => "unsupported",
            Reject::BadTime => "bad_time",
            Reject::Impossible => "impossible",
            Reject::UnknownDevice => "unknown_device",
            Reject::UnknownTopic => "unknown_topic",
            Reject::Duplicate => "duplicate",
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A rejected frame or message: where, why, and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Byte offset in the stream (serial) or of the message (MQTT).
    pub offset: u64,
    /// Number of bytes the error covers (skipped garbage, the bad frame).
    pub len: u64,
    /// The counter it goes to.
    pub reason: Reject,
    /// What exactly was wrong, for the log line.
    pub detail: String,
}

impl DecodeError {
    /// A new error.
    pub fn new(offset: u64, len: u64, reason: Reject, detail: impl Into<String>) -> Self {
        DecodeError {
            offset,
            len,
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "byte {} (+{}): {}: {}",
            self.offset, self.len, self.reason, self.detail
        )
    }
}

impl std::error::Error for DecodeError {}

/// Everything a decoder can report.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A value.
    Measurement(Measurement),
    /// A frame without a usable value.
    Status(Status),
    /// Input that was rejected.
    Error(DecodeError),
}

/// A decoder for a byte-stream protocol (serial devices).
///
/// Stateful: a frame may be split across any number of `feed` calls, and
/// the decoder resynchronises after garbage or a torn frame by itself.
/// Offsets are counted from the first byte ever fed.
pub trait StreamDecoder: Send {
    /// Feed the next bytes; `out` is called for every completed frame and
    /// every rejected span, in stream order.
    fn feed(&mut self, chunk: &[u8], out: &mut dyn FnMut(Decoded));

    /// The stream ended (port closed, end of capture): report a pending
    /// partial frame as [`Reject::Truncated`] and reset.
    fn finish(&mut self, out: &mut dyn FnMut(Decoded));
}

/// A decoder for self-contained messages (one MQTT payload, one line of a
/// capture). Stateless between messages except for what the format itself
/// defines.
pub trait MessageDecoder: Send {
    /// Decode one message that starts at byte `offset` of its capture (or
    /// is the `offset`-th message received). `received` is when the gateway
    /// got it: formats with relative times (SenML) resolve against it.
    fn decode(
        &mut self,
        payload: &[u8],
        offset: u64,
        received: crate::Timestamp,
        out: &mut dyn FnMut(Decoded),
    );
}

/// Writes what a device would send, for the simulator and round-trip tests.
pub trait Encoder: Send {
    /// Append the bytes the device sends for one snapshot period (one MQTT
    /// message, or the serial frames of one second).
    fn encode(&mut self, snapshot: &crate::Snapshot, out: &mut Vec<u8>);
}

/// Either shape of decoder, as chosen by a [`crate::Format`].
pub enum Decoder {
    /// A byte-stream decoder.
    Stream(Box<dyn StreamDecoder>),
    /// A per-message decoder.
    Message(Box<dyn MessageDecoder>),
}
