//! The wire formats, one module each, decoder and encoder side by side.
//!
//! Every module has the same small surface so that adding a format is
//! adding a module and a [`Format`] variant:
//!
//! * `decoder() -> Decoder` — a fresh decoder (stream or message);
//! * `encoder(device_id) -> Box<dyn Encoder>` — what the simulator uses;
//! * `VITALS` — the vitals the format can carry.

use crate::Vital;
use crate::decode::{Decoder, Encoder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub mod berrymed;
pub mod ble_gatt;
pub mod contec;
pub(crate) mod json;
pub mod masimo;
pub mod nonin;
pub mod openmhealth;
pub mod senml;
#[cfg(test)]
pub(crate) mod testing;

/// A wire format the gateway decodes. The kebab-case name is what device
/// profiles write in `format = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// SenML JSON (RFC 8428), over MQTT.
    Senml,
    /// IEEE 1752.1 / Open mHealth data points (JSON), over MQTT.
    OpenMhealth,
    /// Masimo Rad-8 / Radical-7 "ASCII 1" serial output.
    MasimoAscii,
    /// Nonin serial data format #2 (5-byte frames, 25 frames per packet).
    #[serde(rename = "nonin-2")]
    Nonin2,
    /// Nonin serial data format #7 (5-byte frames, 25 frames per packet).
    #[serde(rename = "nonin-7")]
    Nonin7,
    /// Contec CMS50 family, the older 5-byte live-data protocol.
    #[serde(rename = "contec-5byte")]
    Contec5Byte,
    /// Contec CMS50 family, the newer 9-byte "V7" protocol.
    ContecV7,
    /// BerryMed BCI protocol (BM1000 family), 5-byte packets.
    BerrymedBci,
    /// Bluetooth LE GATT characteristic values of the SIG's health
    /// services, directly or relayed by a BLE proxy.
    BleGatt,
}

/// How a format's bytes arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// A continuous byte stream that must be framed (serial).
    Stream,
    /// Self-contained messages (MQTT payloads, one per capture line).
    Message,
}

/// Per-profile settings a decoder may need beyond the format itself.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FormatOptions {
    /// For name-keyed formats (SenML): record name → vital. Matched against
    /// the full resolved name first, then its last segment (after the last
    /// `:` or `/`). Empty means the format's built-in names only.
    pub names: BTreeMap<String, Vital>,
    /// For BLE profiles: the characteristics the device sends, the first
    /// being the one a capture line without a UUID is read as. Values of
    /// any other characteristic are refused. Empty allows every one.
    pub characteristics: Vec<crate::gatt::Characteristic>,
}

/// Bytes the gateway must send to a serial device, where its protocol
/// requires the host to speak first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostCommands {
    /// Sent once after the port opens (e.g. "start real-time data").
    pub on_open: Vec<u8>,
    /// Sent periodically to keep the device streaming.
    pub keepalive: Option<(Duration, Vec<u8>)>,
}

impl Format {
    /// Every format.
    pub const ALL: [Format; 9] = [
        Format::Senml,
        Format::OpenMhealth,
        Format::MasimoAscii,
        Format::Nonin2,
        Format::Nonin7,
        Format::Contec5Byte,
        Format::ContecV7,
        Format::BerrymedBci,
        Format::BleGatt,
    ];

    /// The name used in profiles.
    pub const fn name(self) -> &'static str {
        match self {
            Format::Senml => "senml",
            Format::OpenMhealth => "open-mhealth",
            Format::MasimoAscii => "masimo-ascii",
            Format::Nonin2 => "nonin-2",
            Format::Nonin7 => "nonin-7",
            Format::Contec5Byte => "contec-5byte",
            Format::ContecV7 => "contec-v7",
            Format::BerrymedBci => "berrymed-bci",
            Format::BleGatt => "ble-gatt",
        }
    }

    /// Stream or message framing.
    pub const fn framing(self) -> Framing {
        match self {
            Format::Senml | Format::OpenMhealth | Format::BleGatt => Framing::Message,
            _ => Framing::Stream,
        }
    }

    /// The vitals this format can carry.
    pub fn vitals(self) -> &'static [Vital] {
        match self {
            Format::Senml => senml::VITALS,
            Format::OpenMhealth => openmhealth::VITALS,
            Format::MasimoAscii => masimo::VITALS,
            Format::Nonin2 | Format::Nonin7 => nonin::VITALS,
            Format::Contec5Byte | Format::ContecV7 => contec::VITALS,
            Format::BerrymedBci => berrymed::VITALS,
            Format::BleGatt => ble_gatt::VITALS,
        }
    }

    /// A fresh decoder.
    pub fn decoder(self, options: &FormatOptions) -> Decoder {
        match self {
            Format::Senml => senml::decoder(options),
            Format::OpenMhealth => openmhealth::decoder(),
            Format::MasimoAscii => masimo::decoder(),
            Format::Nonin2 => nonin::decoder(nonin::DataFormat::Two),
            Format::Nonin7 => nonin::decoder(nonin::DataFormat::Seven),
            Format::Contec5Byte => contec::decoder(contec::Protocol::FiveByte),
            Format::ContecV7 => contec::decoder(contec::Protocol::V7),
            Format::BerrymedBci => berrymed::decoder(),
            Format::BleGatt => ble_gatt::decoder(options),
        }
    }

    /// An encoder producing what a device with this id would send.
    pub fn encoder(self, device_id: &str) -> Box<dyn Encoder> {
        match self {
            Format::Senml => senml::encoder(device_id),
            Format::OpenMhealth => openmhealth::encoder(device_id),
            Format::MasimoAscii => masimo::encoder(device_id),
            Format::Nonin2 => nonin::encoder(nonin::DataFormat::Two),
            Format::Nonin7 => nonin::encoder(nonin::DataFormat::Seven),
            Format::Contec5Byte => contec::encoder(contec::Protocol::FiveByte),
            Format::ContecV7 => contec::encoder(contec::Protocol::V7),
            Format::BerrymedBci => berrymed::encoder(device_id),
            Format::BleGatt => ble_gatt::encoder(device_id),
        }
    }

    /// What the host must send to the device (only some serial protocols
    /// need this).
    pub fn host_commands(self) -> HostCommands {
        match self {
            Format::ContecV7 => contec::host_commands(),
            _ => HostCommands::default(),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown format `{0}` (expected one of: senml, open-mhealth, masimo-ascii, nonin-2, nonin-7, contec-5byte, contec-v7, berrymed-bci, ble-gatt)"
)]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|f| f.name() == s)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_format_name_parses_back() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>(), Ok(f));
            assert_eq!(
                serde_json::to_string(&f).unwrap(),
                format!("\"{}\"", f.name())
            );
        }
    }
}
