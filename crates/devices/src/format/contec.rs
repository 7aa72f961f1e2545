//! Placeholder: being written.
use crate::Vital;
use crate::decode::{Decoder, Encoder};
use super::HostCommands;
/// Vitals this format carries.
pub const VITALS: &[Vital] = &[Vital::Spo2];
/// Which Contec protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol { /// 5-byte
FiveByte, /// 9-byte V7
V7 }
/// A fresh decoder.
pub fn decoder(_p: Protocol) -> Decoder { unimplemented!() }
/// An encoder.
pub fn encoder(_p: Protocol) -> Box<dyn Encoder> { unimplemented!() }
/// Host commands.
pub fn host_commands() -> HostCommands { HostCommands::default() }
