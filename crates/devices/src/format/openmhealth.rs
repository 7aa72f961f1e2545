//! Placeholder: being written.
use crate::Vital;
use crate::decode::{Decoder, Encoder};
/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2];
/// A fresh decoder.
pub fn decoder() -> Decoder { unimplemented!() }
/// An encoder.
pub fn encoder(_device_id: &str) -> Box<dyn Encoder> { unimplemented!() }
