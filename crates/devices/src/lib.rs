//! The gateway's reading model and the wire formats its devices speak.
//!
//! This crate is pure: bytes in, [`Measurement`]s out (and the reverse, for
//! the simulator). It does no I/O beyond reading a profile file, so every
//! decoder can be tested, fuzzed and benchmarked on plain byte slices, and
//! both the daemon (`vitalgate`) and the simulator (`vitalsim`) share one
//! definition of every format.
//!
//! * [`Vital`], [`Reading`], [`Quality`], [`Timestamp`]: the one normalized
//!   type that flows through the gateway.
//! * [`profile`]: device-model profiles (`device-profiles/*.toml`).
//! * [`mod@format`]: one module per wire format, each with its decoder and the
//!   encoder beside it.

pub mod decode;
pub mod format;
pub mod gatt;
pub mod profile;
mod quality;
mod reading;
mod settings_error;
mod time;
mod vital;

pub use decode::{DecodeError, Decoded, Measurement, Reject, Status};
pub use format::Format;
pub use quality::Quality;
pub use reading::{Reading, Snapshot};
pub use settings_error::SettingsError;
pub use time::Timestamp;
pub use vital::Vital;
