//! Device-model profiles: `device-profiles/*.toml`.
//!
//! A profile says how one device *model* talks: transport, wire format,
//! transport settings and the vitals it yields. Which unit of that model is
//! bound to which patient is the gateway configuration's business, so one
//! profile serves every unit of a model. Adding a device whose wire format
//! the gateway already speaks is therefore a new TOML file, not new code.

use crate::Vital;
use crate::format::{Format, FormatOptions, Framing};
use crate::gatt::{Characteristic, Service};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// How a device reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A serial port (USB-serial adapters, RS-232).
    Serial,
    /// An MQTT broker.
    Mqtt,
    /// Bluetooth LE GATT.
    Ble,
}

/// Serial parity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    /// No parity bit.
    None,
    /// Odd parity.
    Odd,
    /// Even parity.
    Even,
}

/// Serial line settings, as the vendor documents them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SerialSettings {
    /// Bits per second.
    pub baud: u32,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// Parity.
    #[serde(default = "default_parity")]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
}

fn default_data_bits() -> u8 {
    8
}
fn default_parity() -> Parity {
    Parity::None
}
fn default_stop_bits() -> u8 {
    1
}

/// MQTT settings of a device model.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// Topic pattern with exactly one whole level `{device}`, which carries
    /// the device id: `vitalgate/{device}/senml`.
    pub topic: String,
    /// Messages larger than this are rejected unread.
    #[serde(default = "default_max_payload")]
    pub max_payload_bytes: usize,
}

fn default_max_payload() -> usize {
    64 * 1024
}

impl MqttSettings {
    /// The MQTT subscription filter: `{device}` becomes `+`.
    pub fn filter(&self) -> String {
        self.topic.replace("{device}", "+")
    }

    /// The device id a concrete topic carries, if the topic matches the
    /// pattern.
    pub fn device_in<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let mut pattern = self.topic.split('/');
        let mut device = None;
        for level in topic.split('/') {
            match pattern.next()? {
                "{device}" if !level.is_empty() => device = Some(level),
                p if p == level => {}
                _ => return None,
            }
        }
        if pattern.next().is_some() {
            return None;
        }
        device
    }

    /// The concrete topic for a device id.
    pub fn topic_for(&self, device: &str) -> String {
        self.topic.replace("{device}", device)
    }
}

/// Bluetooth LE settings of a device model: the standard services it
/// offers and the characteristics the gateway takes from them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BleSettings {
    /// Services to scan for and subscribe to, as 16-bit UUIDs
    /// (`"180D"` Heart Rate, `"1809"` Health Thermometer, `"1810"` Blood
    /// Pressure, `"1822"` Pulse Oximeter).
    pub services: Vec<Service>,
    /// The characteristics to subscribe to; every measurement
    /// characteristic of `services` when absent. The first is what a
    /// capture line without a UUID is read as.
    #[serde(default)]
    pub characteristics: Vec<Characteristic>,
}

impl BleSettings {
    /// The characteristics to take: the listed ones, or every one of the
    /// services'.
    pub fn characteristics(&self) -> Vec<Characteristic> {
        if self.characteristics.is_empty() {
            self.services
                .iter()
                .flat_map(|s| s.characteristics().iter().copied())
                .collect()
        } else {
            self.characteristics.clone()
        }
    }
}

/// A validated device-model profile.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Model name, as on the device's label.
    pub model: String,
    /// Manufacturer.
    pub vendor: String,
    /// Transport.
    pub transport: Transport,
    /// Wire format.
    pub format: Format,
    /// The vitals this model yields (a subset of what the format carries).
    pub vitals: Vec<Vital>,
    /// Where the wire format is specified.
    #[serde(default)]
    pub references: Vec<String>,
    /// Free-form notes for the integrator.
    #[serde(default)]
    pub notes: String,
    /// Serial settings (transport = "serial").
    #[serde(default)]
    pub serial: Option<SerialSettings>,
    /// MQTT settings (transport = "mqtt").
    #[serde(default)]
    pub mqtt: Option<MqttSettings>,
    /// Bluetooth LE settings (transport = "ble").
    #[serde(default)]
    pub ble: Option<BleSettings>,
    /// SenML record name → vital.
    #[serde(default)]
    pub names: BTreeMap<String, Vital>,
}

/// A profile that cannot be used.
pub type ProfileError = crate::SettingsError;

impl Profile {
    /// Read and validate a profile file.
    pub fn load(path: &Path) -> Result<Profile, ProfileError> {
        let text = std::fs::read_to_string(path).map_err(|e| ProfileError {
            file: path.to_owned(),
            key: String::new(),
            message: format!("cannot read the profile: {e}"),
        })?;
        Profile::parse(&text, path)
    }

    /// Parse and validate profile text; `path` is used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Profile, ProfileError> {
        let profile: Profile =
            toml::from_str(text).map_err(|e| ProfileError::from_toml(path, text, &e))?;
        profile.validate(path)?;
        Ok(profile)
    }

    /// Options for this profile's decoder.
    pub fn format_options(&self) -> FormatOptions {
        FormatOptions {
            names: self.names.clone(),
            characteristics: self
                .ble
                .as_ref()
                .map(BleSettings::characteristics)
                .unwrap_or_default(),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ProfileError> {
        let err = |key: &str, message: String| ProfileError {
            file: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        if self.model.trim().is_empty() {
            return Err(err("model", "must not be empty".into()));
        }
        if self.vendor.trim().is_empty() {
            return Err(err("vendor", "must not be empty".into()));
        }
        if self.vitals.is_empty() {
            return Err(err(
                "vitals",
                "must list at least one vital the device yields".into(),
            ));
        }
        let carried = self.format.vitals();
        if let Some(v) = self.vitals.iter().find(|v| !carried.contains(v)) {
            let names: Vec<&str> = carried.iter().map(|v| v.name()).collect();
            return Err(err(
                "vitals",
                format!(
                    "format `{}` cannot carry `{v}`; it carries: {}",
                    self.format,
                    names.join(", ")
                ),
            ));
        }
        let expected = match self.format.framing() {
            _ if self.format == Format::BleGatt => Transport::Ble,
            Framing::Stream => Transport::Serial,
            Framing::Message => Transport::Mqtt,
        };
        if self.transport != expected {
            return Err(err(
                "transport",
                format!(
                    "format `{}` is spoken over {expected:?}, not {:?}; set transport = \"{}\"",
                    self.format,
                    self.transport,
                    format!("{expected:?}").to_lowercase()
                ),
            ));
        }
        if self.ble.is_some() && self.transport != Transport::Ble {
            return Err(err(
                "ble",
                "only Bluetooth LE profiles have a [ble] table; remove it".into(),
            ));
        }
        if !self.names.is_empty() && self.format != Format::Senml {
            return Err(err(
                "names",
                "only SenML profiles map record names; remove the [names] table".into(),
            ));
        }
        match self.transport {
            Transport::Serial => {
                let Some(s) = &self.serial else {
                    return Err(err(
                        "serial",
                        "a serial profile needs a [serial] table with baud (and data_bits, parity, stop_bits)".into(),
                    ));
                };
                if !(50..=4_000_000).contains(&s.baud) {
                    return Err(err(
                        "serial.baud",
                        format!(
                            "{} is not a serial speed (expected e.g. 9600 or 115200)",
                            s.baud
                        ),
                    ));
                }
                if !matches!(s.data_bits, 7 | 8) {
                    return Err(err(
                        "serial.data_bits",
                        format!("{} (expected 7 or 8)", s.data_bits),
                    ));
                }
                if !matches!(s.stop_bits, 1 | 2) {
                    return Err(err(
                        "serial.stop_bits",
                        format!("{} (expected 1 or 2)", s.stop_bits),
                    ));
                }
            }
            Transport::Mqtt => {
                let Some(m) = &self.mqtt else {
                    return Err(err(
                        "mqtt",
                        "an MQTT profile needs an [mqtt] table with topic = \"prefix/{device}/suffix\"".into(),
                    ));
                };
                let levels: Vec<&str> = m.topic.split('/').collect();
                if levels.iter().filter(|l| **l == "{device}").count() != 1
                    || m.topic.matches("{device}").count() != 1
                {
                    return Err(err(
                        "mqtt.topic",
                        format!(
                            "`{}` must contain `{{device}}` exactly once, as a whole topic level (e.g. \"vitalgate/{{device}}/senml\")",
                            m.topic
                        ),
                    ));
                }
                if m.topic.contains(['+', '#']) || levels.iter().any(|l| l.is_empty()) {
                    return Err(err(
                        "mqtt.topic",
                        format!(
                            "`{}` must not contain wildcards or empty levels; `{{device}}` is the only variable part",
                            m.topic
                        ),
                    ));
                }
                if m.max_payload_bytes == 0 || m.max_payload_bytes > 16 * 1024 * 1024 {
                    return Err(err(
                        "mqtt.max_payload_bytes",
                        format!("{} (expected 1 to 16777216)", m.max_payload_bytes),
                    ));
                }
            }
            Transport::Ble => {
                let Some(b) = &self.ble else {
                    return Err(err(
                        "ble",
                        "a Bluetooth LE profile needs a [ble] table with services = [\"180D\"] (Heart Rate), \"1809\" (Health Thermometer), \"1810\" (Blood Pressure) or \"1822\" (Pulse Oximeter)".into(),
                    ));
                };
                if b.services.is_empty() {
                    return Err(err(
                        "ble.services",
                        "must list at least one service, e.g. [\"180D\"]".into(),
                    ));
                }
                if let Some(c) = b
                    .characteristics
                    .iter()
                    .find(|c| !b.services.contains(&c.service()))
                {
                    return Err(err(
                        "ble.characteristics",
                        format!(
                            "{c} ({}) belongs to the {} service ({:04X}), which `ble.services` does not list",
                            c.name(),
                            c.service().name(),
                            c.service().uuid()
                        ),
                    ));
                }
                let taken = b.characteristics();
                if let Some(v) = self
                    .vitals
                    .iter()
                    .find(|v| !taken.iter().any(|c| c.vitals().contains(v)))
                {
                    return Err(err(
                        "vitals",
                        format!(
                            "none of the profile's characteristics ({}) carries `{v}`",
                            taken
                                .iter()
                                .map(|c| c.name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SENML: &str = r#"
model = "Wearable"
vendor = "Example"
transport = "mqtt"
format = "senml"
vitals = ["heart_rate", "spo2"]
[mqtt]
topic = "vitalgate/{device}/senml"
"#;

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("device-profiles/x.toml"))
    }

    #[test]
    fn a_valid_mqtt_profile_loads_with_defaults() {
        let p = parse(SENML).unwrap();
        let m = p.mqtt.unwrap();
        assert_eq!(m.max_payload_bytes, 65536);
        assert_eq!(m.filter(), "vitalgate/+/senml");
        assert_eq!(m.device_in("vitalgate/ox-1/senml"), Some("ox-1"));
        assert_eq!(m.device_in("vitalgate/ox-1/omh"), None);
        assert_eq!(m.device_in("vitalgate//senml"), None);
        assert_eq!(m.device_in("vitalgate/ox-1/senml/x"), None);
        assert_eq!(m.topic_for("ox-2"), "vitalgate/ox-2/senml");
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse(&SENML.replace("{device}/senml", "senml")).unwrap_err();
        assert_eq!(e.key, "mqtt.topic");
        assert!(
            e.to_string()
                .starts_with("device-profiles/x.toml: key `mqtt.topic`")
        );

        let e = parse(&SENML.replace("\"mqtt\"", "\"serial\"")).unwrap_err();
        assert_eq!(e.key, "transport");

        let e = parse(&SENML.replace("spo2", "oxygen")).unwrap_err();
        assert!(e.message.contains("unknown variant `oxygen`"), "{e}");

        let e = parse(&format!("{SENML}\nbaud = 9600")).unwrap_err();
        assert!(e.message.contains("unknown field"), "{e}");
    }

    #[test]
    fn serial_profiles_need_sane_line_settings() {
        let text = r#"
model = "M"
vendor = "V"
transport = "serial"
format = "masimo-ascii"
vitals = ["spo2"]
[serial]
baud = 9600
data_bits = 9
"#;
        let e = parse(text).unwrap_err();
        assert_eq!(e.key, "serial.data_bits");
        let e = parse(&text.replace("[serial]\nbaud = 9600\ndata_bits = 9\n", "")).unwrap_err();
        assert_eq!(e.key, "serial");
    }

    #[test]
    fn ble_profiles_name_services_and_characteristics_that_fit() {
        let text = r#"
model = "Strap"
vendor = "V"
transport = "ble"
format = "ble-gatt"
vitals = ["heart_rate", "rr_interval"]
[ble]
services = ["180D"]
"#;
        let p = parse(text).unwrap();
        assert_eq!(
            p.format_options().characteristics,
            vec![Characteristic::HeartRateMeasurement]
        );
        let e = parse(&text.replace("[\"180D\"]", "[]")).unwrap_err();
        assert_eq!(e.key, "ble.services");
        let e = parse(&text.replace("[\"180D\"]", "[\"180F\"]")).unwrap_err();
        assert!(e.message.contains("180F is not a characteristic"), "{e}");
        let e = parse(&format!("{text}characteristics = [\"2A35\"]\n")).unwrap_err();
        assert_eq!(e.key, "ble.characteristics");
        let e = parse(&text.replace("\"rr_interval\"", "\"spo2\"")).unwrap_err();
        assert_eq!(e.key, "vitals");
        let e = parse(&text.replace("\"ble\"", "\"mqtt\"")).unwrap_err();
        assert_eq!(e.key, "transport");
        let e = parse(&text.replace("[ble]\nservices = [\"180D\"]\n", "")).unwrap_err();
        assert_eq!(e.key, "ble");
    }

    #[test]
    fn every_bundled_profile_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../device-profiles");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                Profile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n > 0 || cfg!(miri));
    }
}
