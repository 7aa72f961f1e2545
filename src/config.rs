//! The gateway's one configuration type, read from TOML and validated once
//! at start. Every error names the file, the key and what is expected.

use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vitalgate_chain::SealPolicy;
use vitalgate_chain::crypto::keys::RecipientPublic;
use vitalgate_devices::profile::{Profile, Transport};

/// A configuration that cannot be used.
pub type ConfigError = vitalgate_devices::SettingsError;

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (for messages).
    pub file: PathBuf,
    /// An external MQTT broker the gateway subscribes to (`[mqtt]`).
    pub mqtt: Option<MqttConfig>,
    /// Where the gateway's own MQTT server listens for devices
    /// (`[mqtt_server]`; the default when neither table is present).
    pub mqtt_server: Option<SocketAddr>,
    /// Ingest pipeline limits.
    pub ingest: IngestConfig,
    /// The ledger: where, signed by whom, readable by whom.
    pub chain: ChainConfig,
    /// Bound devices, each with its loaded profile.
    pub devices: Vec<Device>,
}

/// The ledger's settings (`[chain]`).
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// The sled directory.
    pub directory: PathBuf,
    /// The gateway's Ed25519 identity key file (PKCS#8 PEM, mode 0600).
    pub identity: PathBuf,
    /// Who can decrypt the readings (patient, care team); the gateway
    /// itself cannot.
    pub recipients: Vec<RecipientPublic>,
    /// When blocks are sealed.
    pub seal: SealPolicy,
}

/// How the gateway reaches its MQTT broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttConfig {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id; with a persistent session, the broker keeps
    /// unacknowledged QoS 1 messages for this id while the gateway is away.
    pub client_id: String,
    /// Username, if the broker wants one.
    pub username: Option<String>,
    /// File holding the password (a secret never sits in the config itself
    /// and never appears in logs).
    pub password_file: Option<PathBuf>,
    /// TLS (rustls) to the broker.
    pub tls: Option<TlsConfig>,
    /// MQTT keep-alive.
    pub keep_alive: Duration,
    /// Unacknowledged messages in flight from the broker.
    pub inflight: u16,
}

/// TLS settings for the broker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM CA certificate(s); the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate and key, for mutual TLS.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

/// Ingest limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestConfig {
    /// Capacity of the bounded channels between stages.
    pub queue: usize,
    /// Most readings committed together (group commit).
    pub max_batch: usize,
    /// Recent (device, vital, device time, value) keys remembered per device
    /// to recognise replays.
    pub replay_window: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            queue: 1024,
            max_batch: 4096,
            replay_window: 4096,
        }
    }
}

/// A device unit bound to a patient.
#[derive(Debug, Clone)]
pub struct Device {
    /// The device id: the `{device}` topic level for MQTT devices, a name
    /// of your choosing for serial ones.
    pub id: Arc<str>,
    /// Pseudonymous patient id.
    pub patient: Arc<str>,
    /// The device model's profile.
    pub profile: Arc<Profile>,
    /// Where the profile was loaded from.
    pub profile_path: PathBuf,
    /// Serial port path (serial devices).
    pub port: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    mqtt: Option<RawMqtt>,
    #[serde(default)]
    mqtt_server: Option<RawMqttServer>,
    #[serde(default)]
    ingest: Option<RawIngest>,
    chain: Option<RawChain>,
    #[serde(default, rename = "device")]
    devices: Vec<RawDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    directory: PathBuf,
    identity: PathBuf,
    recipients: Vec<String>,
    seal_readings: Option<u64>,
    seal_interval_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawMqtt {
    host: String,
    port: u16,
    client_id: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    tls: bool,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    keep_alive_secs: u64,
    inflight: u16,
}

impl Default for RawMqtt {
    fn default() -> Self {
        RawMqtt {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: "vitalgate".into(),
            username: None,
            password_file: None,
            tls: false,
            ca_file: None,
            client_cert_file: None,
            client_key_file: None,
            keep_alive_secs: 30,
            inflight: 100,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMqttServer {
    listen: String,
}

/// Where the gateway's MQTT server listens when the configuration names
/// neither it nor an external broker: this machine only, until the
/// configuration opens it to the home network.
pub const DEFAULT_MQTT_SERVER: &str = "127.0.0.1:1883";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIngest {
    queue: Option<usize>,
    max_batch: Option<usize>,
    replay_window: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: String,
    patient: String,
    profile: PathBuf,
    port: Option<PathBuf>,
}

impl Config {
    /// Read and validate a configuration file. Profile paths are relative
    /// to the configuration file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            key: String::new(),
            message: format!("cannot read the configuration: {e}"),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Parse and validate configuration text; `file` is named in errors and
    /// relative profile paths resolve against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let err = |key: &str, message: String| ConfigError {
            file: file.to_owned(),
            key: key.to_owned(),
            message,
        };
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| err("", e.to_string().trim_end().replace('\n', " ")))?;

        let mqtt_server = match (&raw.mqtt_server, &raw.mqtt) {
            (None, Some(_)) => None,
            (None, None) => DEFAULT_MQTT_SERVER.parse().ok(),
            (Some(b), _) => Some(b.listen.parse::<SocketAddr>().map_err(|_| {
                err(
                    "mqtt_server.listen",
                    format!(
                        "`{}` is not an address:port such as \"127.0.0.1:1883\"",
                        b.listen
                    ),
                )
            })?),
        };
        let mqtt = raw.mqtt.map(|m| Self::mqtt(m, base, &err)).transpose()?;
        let ingest = Self::ingest(raw.ingest, &err)?;
        let chain = Self::chain(raw.chain, base, &err)?;

        let mut devices = Vec::with_capacity(raw.devices.len());
        let mut ids = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for (i, d) in raw.devices.into_iter().enumerate() {
            let key = |k: &str| format!("device[{i}].{k}");
            if !valid_id(&d.id) {
                return Err(err(
                    &key("id"),
                    format!(
                        "`{}` must be 1–64 characters of letters, digits, '-', '_' or '.' (it is an MQTT topic level)",
                        d.id
                    ),
                ));
            }
            if !ids.insert(d.id.clone()) {
                return Err(err(
                    &key("id"),
                    format!("`{}` is bound twice; device ids must be unique", d.id),
                ));
            }
            if !valid_id(&d.patient) {
                return Err(err(
                    &key("patient"),
                    format!(
                        "`{}` must be 1–64 characters of letters, digits, '-', '_' or '.'",
                        d.patient
                    ),
                ));
            }
            let profile_path = base.join(&d.profile);
            let profile = Profile::load(&profile_path).map_err(|e| ConfigError {
                file: e.file,
                key: e.key,
                message: format!(
                    "{} (profile of {} in {})",
                    e.message,
                    key("profile"),
                    file.display()
                ),
            })?;
            match (profile.transport, &d.port) {
                (Transport::Serial, None) => {
                    return Err(err(
                        &key("port"),
                        format!(
                            "device `{}` is a serial device ({}); set port = \"/dev/ttyUSB0\" or a /dev/serial/by-id/ path",
                            d.id, profile.model
                        ),
                    ));
                }
                (Transport::Serial, Some(p)) if !ports.insert(p.clone()) => {
                    return Err(err(
                        &key("port"),
                        format!("{} is used by two devices", p.display()),
                    ));
                }
                (Transport::Serial, Some(_)) => {}
                (_, Some(_)) => {
                    return Err(err(
                        &key("port"),
                        format!("device `{}` is not a serial device; remove `port`", d.id),
                    ));
                }
                _ => {}
            }
            devices.push(Device {
                id: d.id.into(),
                patient: d.patient.into(),
                profile: Arc::new(profile),
                profile_path,
                port: d.port,
            });
        }
        if devices.is_empty() {
            return Err(err(
                "device",
                "no devices are bound; add at least one [[device]] table with id, patient and profile".into(),
            ));
        }
        Ok(Config {
            file: file.to_owned(),
            mqtt,
            mqtt_server,
            ingest,
            chain,
            devices,
        })
    }

    fn mqtt(
        raw: RawMqtt,
        base: &Path,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<MqttConfig, ConfigError> {
        if raw.host.trim().is_empty() {
            return Err(err("mqtt.host", "must not be empty".into()));
        }
        if raw.port == 0 {
            return Err(err(
                "mqtt.port",
                "0 is not a port (1883 is MQTT's, 8883 MQTT over TLS)".into(),
            ));
        }
        if !valid_id(&raw.client_id) {
            return Err(err(
                "mqtt.client_id",
                "1–64 characters of letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if !(5..=3600).contains(&raw.keep_alive_secs) {
            return Err(err(
                "mqtt.keep_alive_secs",
                format!("{} (expected 5 to 3600)", raw.keep_alive_secs),
            ));
        }
        if raw.inflight == 0 {
            return Err(err("mqtt.inflight", "must be at least 1".into()));
        }
        if raw.password_file.is_some() && raw.username.is_none() {
            return Err(err(
                "mqtt.username",
                "password_file is set but username is not".into(),
            ));
        }
        let tls = if raw.tls {
            let client_cert = match (raw.client_cert_file, raw.client_key_file) {
                (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                (None, None) => None,
                _ => {
                    return Err(err(
                        "mqtt.client_cert_file",
                        "client_cert_file and client_key_file go together (mutual TLS); set both or neither".into(),
                    ));
                }
            };
            Some(TlsConfig {
                ca_file: raw.ca_file.map(|p| base.join(p)),
                client_cert,
            })
        } else {
            if raw.ca_file.is_some()
                || raw.client_cert_file.is_some()
                || raw.client_key_file.is_some()
            {
                return Err(err(
                    "mqtt.tls",
                    "certificate files are set but tls = false; set tls = true".into(),
                ));
            }
            None
        };
        Ok(MqttConfig {
            host: raw.host,
            port: raw.port,
            client_id: raw.client_id,
            username: raw.username,
            password_file: raw.password_file.map(|p| base.join(p)),
            tls,
            keep_alive: Duration::from_secs(raw.keep_alive_secs),
            inflight: raw.inflight,
        })
    }

    fn ingest(
        raw: Option<RawIngest>,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<IngestConfig, ConfigError> {
        let d = IngestConfig::default();
        let Some(raw) = raw else { return Ok(d) };
        let check = |key: &str, v: Option<usize>, def: usize, max: usize| match v {
            None => Ok(def),
            Some(v) if (1..=max).contains(&v) => Ok(v),
            Some(v) => Err(err(key, format!("{v} (expected 1 to {max})"))),
        };
        Ok(IngestConfig {
            queue: check("ingest.queue", raw.queue, d.queue, 1 << 20)?,
            max_batch: check("ingest.max_batch", raw.max_batch, d.max_batch, 1 << 20)?,
            replay_window: check(
                "ingest.replay_window",
                raw.replay_window,
                d.replay_window,
                1 << 20,
            )?,
        })
    }

    fn chain(
        raw: Option<RawChain>,
        base: &Path,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<ChainConfig, ConfigError> {
        let Some(raw) = raw else {
            return Err(err(
                "chain",
                "missing: the gateway keeps every reading in its ledger; add a [chain] section with directory, identity and recipients (create the keys with `vitalgate keygen`)".into(),
            ));
        };
        if raw.recipients.is_empty() {
            return Err(err(
                "chain.recipients",
                "empty: with no recipient nobody could ever read the readings; list the patient's and care team's public keys (\"x25519:...\", from `vitalgate keygen recipient`)".into(),
            ));
        }
        let recipients = raw
            .recipients
            .iter()
            .enumerate()
            .map(|(i, r)| {
                r.parse::<RecipientPublic>().map_err(|e| {
                    err(
                        &format!("chain.recipients[{i}]"),
                        format!("{e} (expected \"x25519:\" and 43 base64url characters, as `vitalgate keygen recipient` prints)"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let d = SealPolicy::default();
        let max_readings = match raw.seal_readings {
            None => d.max_readings,
            Some(n) if (1..=1 << 20).contains(&n) => n,
            Some(n) => {
                return Err(err(
                    "chain.seal_readings",
                    format!("{n} (expected 1 to {})", 1 << 20),
                ));
            }
        };
        let max_age = match raw.seal_interval_secs {
            None => d.max_age,
            Some(n) if (1..=86_400).contains(&n) => Duration::from_secs(n),
            Some(n) => {
                return Err(err(
                    "chain.seal_interval_secs",
                    format!("{n} (expected 1 to 86400 seconds)"),
                ));
            }
        };
        Ok(ChainConfig {
            directory: base.join(raw.directory),
            identity: base.join(raw.identity),
            recipients,
            seal: SealPolicy {
                max_readings,
                max_age,
            },
        })
    }

    /// Whether any device comes over MQTT.
    pub fn uses_mqtt(&self) -> bool {
        self.devices
            .iter()
            .any(|d| d.profile.transport == Transport::Mqtt)
    }
}

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profiles_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
    }

    /// A valid `[chain]` section (no key file is read at parse time).
    fn chain_section() -> String {
        let recipient = vitalgate_chain::crypto::keys::RecipientKey::generate()
            .unwrap()
            .public();
        format!(
            "[chain]\ndirectory = \"ledger\"\nidentity = \"identity.key\"\nrecipients = [\"{recipient}\"]\n"
        )
    }

    fn parse(text: &str) -> Result<Config, ConfigError> {
        parse_without_chain(&format!("{}{text}", chain_section()))
    }

    fn parse_without_chain(text: &str) -> Result<Config, ConfigError> {
        Config::parse(
            text,
            Path::new("/etc/vitalgate/vitalgate.toml"),
            &profiles_dir(),
        )
    }

    const GOOD: &str = r#"
[[device]]
id = "wear-1"
patient = "patient-0001"
profile = "device-profiles/senml-wearable.toml"
"#;

    #[test]
    fn a_minimal_config_gets_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.mqtt, None);
        assert_eq!(c.mqtt_server, Some("127.0.0.1:1883".parse().unwrap()));
        assert_eq!(c.devices.len(), 1);
        assert!(c.uses_mqtt());
        assert_eq!(c.ingest, IngestConfig::default());
    }

    #[test]
    fn errors_name_file_key_and_fix() {
        let e = parse(&format!("{GOOD}\n[mqtt]\nport = 0\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/vitalgate/vitalgate.toml: key `mqtt.port`: 0 is not a port (1883 is MQTT's, 8883 MQTT over TLS)"
        );

        let e = parse(&format!("{GOOD}{GOOD}")).unwrap_err();
        assert_eq!(e.key, "device[1].id");

        let e = parse(&GOOD.replace("wear-1", "wear/1")).unwrap_err();
        assert_eq!(e.key, "device[0].id");

        let e = parse(&GOOD.replace("senml-wearable", "no-such-model")).unwrap_err();
        assert!(
            e.file.ends_with("device-profiles/no-such-model.toml"),
            "{e}"
        );
        assert!(e.message.contains("device[0].profile"), "{e}");

        let e = parse(&format!("{GOOD}port = \"/dev/ttyUSB0\"\n")).unwrap_err();
        assert_eq!(e.key, "device[0].port");

        let e = parse("[mqtt]\nhots = \"x\"\n").unwrap_err();
        assert!(e.message.contains("unknown field `hots`"), "{e}");

        let e = parse("").unwrap_err();
        assert_eq!(e.key, "device");

        let e = parse(&format!("{GOOD}\n[mqtt_server]\nlisten = \"localhost\"\n")).unwrap_err();
        assert_eq!(e.key, "mqtt_server.listen");
    }

    #[test]
    fn devices_reach_the_gateway_s_own_server_unless_a_broker_is_named() {
        let c = parse(&format!("{GOOD}\n[mqtt]\nhost = \"broker.home\"\n")).unwrap();
        assert_eq!(c.mqtt_server, None);
        let m = c.mqtt.unwrap();
        assert_eq!((m.host.as_str(), m.port), ("broker.home", 1883));
        let both = format!("{GOOD}\n[mqtt]\n[mqtt_server]\nlisten = \"0.0.0.0:1884\"\n");
        let c = parse(&both).unwrap();
        assert!(c.mqtt.is_some());
        assert_eq!(c.mqtt_server, Some("0.0.0.0:1884".parse().unwrap()));
    }

    #[test]
    fn the_chain_section_is_required_and_checked() {
        let e = parse_without_chain(GOOD).unwrap_err();
        assert_eq!(e.key, "chain");
        assert!(e.message.contains("vitalgate keygen"), "{e}");
        let no_recipients = "[chain]\ndirectory = \"l\"\nidentity = \"i\"\nrecipients = []\n";
        let e = parse_without_chain(&format!("{no_recipients}{GOOD}")).unwrap_err();
        assert_eq!(e.key, "chain.recipients");
        let bad = no_recipients.replace("[]", "[\"x25519:nope\"]");
        let e = parse_without_chain(&format!("{bad}{GOOD}")).unwrap_err();
        assert_eq!(e.key, "chain.recipients[0]");
        let c = parse(GOOD).unwrap();
        assert_eq!(c.chain.directory, profiles_dir().join("ledger"));
        assert_eq!(c.chain.seal, SealPolicy::default());
    }

    #[test]
    fn serial_devices_need_their_own_ports() {
        let serial = |id: &str, port: &str| {
            format!(
                "[[device]]\nid = \"{id}\"\npatient = \"p\"\nprofile = \"device-profiles/masimo-rad-8.toml\"\nport = \"{port}\"\n"
            )
        };
        let two = format!(
            "{}{}",
            serial("a", "/dev/ttyUSB0"),
            serial("b", "/dev/ttyUSB1")
        );
        assert_eq!(parse(&two).unwrap().devices.len(), 2);
        let shared = format!(
            "{}{}",
            serial("a", "/dev/ttyUSB0"),
            serial("b", "/dev/ttyUSB0")
        );
        let e = parse(&shared).unwrap_err();
        assert_eq!(e.key, "device[1].port");
        let e = parse(&serial("a", "x").replace("port = \"x\"\n", "")).unwrap_err();
        assert_eq!(e.key, "device[0].port");
    }

    #[test]
    fn the_example_config_is_valid_once_a_recipient_replaces_the_placeholder() {
        let path = profiles_dir().join("vitalgate.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let e = Config::parse(&text, &path, &profiles_dir()).unwrap_err();
        assert_eq!(e.key, "chain.recipients[0]");
        let recipient = vitalgate_chain::crypto::keys::RecipientKey::generate()
            .unwrap()
            .public();
        let text = text.replace(
            "x25519:REPLACE-with-the-care-team-key-printed-by-keygen",
            &recipient.to_string(),
        );
        let c = Config::parse(&text, &path, &profiles_dir()).unwrap_or_else(|e| panic!("{e}"));
        assert!(!c.devices.is_empty());
        assert_eq!(c.chain.recipients, vec![recipient]);
    }
}
