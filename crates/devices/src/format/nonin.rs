//! Placeholder: being written.
use crate::Vital;
use crate::decode::{Decoder, Encoder};
/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2];
/// Which Nonin data format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat { /// #2
Two, /// #7
Seven }
/// A fresh decoder.
pub fn decoder(_f: DataFormat) -> Decoder { unimplemented!() }
/// An encoder.
pub fn encoder(_f: DataFormat) -> Box<dyn Encoder> { unimplemented!() }
