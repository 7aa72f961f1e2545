//! The gateway's one configuration type, read from TOML and validated once
//! at start. Every error names the file, the key and what is expected.

use crate::deliver::SinkFilter;
use crate::deliver::mqtt::MqttSinkConfig;
use crate::deliver::webhook::WebhookConfig;
use crate::detect::DetectConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vitalgate_chain::SealPolicy;
use vitalgate_chain::crypto::keys::RecipientPublic;
use vitalgate_detect::alert::EscalationPolicy;
use vitalgate_detect::news2::{Consciousness, Oxygen, Spo2Scale};
use vitalgate_detect::{Category, MonitorConfig, PatientSettings};
use vitalgate_devices::gatt::Address;
use vitalgate_devices::gatt::address::BadAddress;
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
    /// Detection: thresholds and per-patient settings (`[detect]`,
    /// `[[patient]]`).
    pub detect: DetectConfig,
    /// Alerts: lifecycle, outbox, sinks, acknowledgements (`[alerts]`).
    pub alerts: AlertsConfig,
    /// Where the HTTP API listens (`[http]`): acknowledgements, health.
    pub http: Option<SocketAddr>,
    /// Anchoring on the consultation chain (`[anchor]`); off without it.
    pub anchor: Option<crate::anchor::config::AnchorConfig>,
}

/// The alert stage's settings (`[alerts]`).
#[derive(Debug, Clone, Default)]
pub struct AlertsConfig {
    /// The gateway's id in topics and messages; the identity key's id when
    /// not set.
    pub gateway_id: Option<String>,
    /// The outbox's sled directory; `None` keeps the outbox in memory only
    /// (tests — a configuration file always has one).
    pub outbox: Option<PathBuf>,
    /// Escalation and flap suppression.
    pub policy: EscalationPolicy,
    /// The shared secret acknowledgements are signed with; without it no
    /// acknowledgement is taken.
    pub ack_secret: Option<PathBuf>,
    /// The hospital's MQTT broker.
    pub mqtt: Option<MqttSinkConfig>,
    /// HTTPS webhooks.
    pub webhooks: Vec<WebhookConfig>,
}

/// Where the HTTP API listens when `[http]` is present without `listen`:
/// this machine only.
pub const DEFAULT_HTTP: &str = "127.0.0.1:8480";

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
    /// Free bytes the ledger's file system should keep: below it the
    /// gateway is not ready (`/readyz`) and says so, before the disk is
    /// actually full and storage has to refuse readings.
    pub disk_floor: u64,
}

/// The default [`ChainConfig::disk_floor`]: a day of a busy home's
/// readings many times over, and small next to any SD card.
pub const DEFAULT_DISK_FLOOR: u64 = 256 << 20;

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
    /// Bluetooth address and how it is reached (Bluetooth LE devices).
    pub ble: Option<BleBinding>,
}

/// How a Bluetooth LE device reaches the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BleLink {
    /// The gateway's own Bluetooth adapter (BlueZ) connects to it.
    Direct,
    /// A BLE proxy (an ESP32 beside the patient) holds the connection and
    /// relays its characteristic values over MQTT.
    Proxy,
}

/// The Bluetooth side of a device binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BleBinding {
    /// The peripheral's address: what binds a unit to its patient.
    pub address: Address,
    /// Direct or through a proxy.
    pub link: BleLink,
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
    #[serde(default)]
    detect: MonitorConfig,
    #[serde(default, rename = "patient")]
    patients: Vec<RawPatient>,
    alerts: Option<RawAlerts>,
    http: Option<RawHttp>,
    anchor: Option<crate::anchor::config::RawAnchor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatient {
    id: String,
    spo2_scale: Option<u8>,
    oxygen: Option<Oxygen>,
    consciousness: Option<Consciousness>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    gateway_id: Option<String>,
    outbox: Option<PathBuf>,
    escalate_after_secs: Option<Vec<u64>>,
    reopen_within_secs: Option<u64>,
    escalate_technical: Option<bool>,
    ack_secret_file: Option<PathBuf>,
    mqtt: Option<RawAlertMqtt>,
    #[serde(default)]
    webhook: Vec<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlertMqtt {
    topic_prefix: Option<String>,
    categories: Option<Vec<Category>>,
    from_tier: Option<usize>,
    broker: RawMqtt,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    name: String,
    url: String,
    secret_file: PathBuf,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
    categories: Option<Vec<Category>>,
    from_tier: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawChain {
    directory: PathBuf,
    identity: PathBuf,
    recipients: Vec<String>,
    seal_readings: Option<u64>,
    seal_interval_secs: Option<u64>,
    disk_floor_mb: Option<u64>,
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
    address: Option<String>,
    link: Option<BleLink>,
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
        let raw: RawConfig =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(file, text, &e))?;

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
        let mqtt = raw
            .mqtt
            .map(|m| Self::mqtt(m, "mqtt", base, &err))
            .transpose()?;
        let ingest = Self::ingest(raw.ingest, &err)?;
        let chain = Self::chain(raw.chain, base, &err)?;

        let mut devices = Vec::with_capacity(raw.devices.len());
        let mut ids = BTreeSet::new();
        let mut ports = BTreeSet::new();
        let mut addresses = BTreeSet::new();
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
            if !profile_path.is_file() {
                return Err(err(&key("profile"), missing_profile(&profile_path, base)));
            }
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
                (Transport::Serial, Some(p)) if !p.is_absolute() => {
                    return Err(err(
                        &key("port"),
                        format!(
                            "`{}` is not a device path; give the full path, such as \"/dev/ttyUSB0\" or a /dev/serial/by-id/ path",
                            p.display()
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
            let ble = match (profile.transport, d.address) {
                (Transport::Ble, None) => {
                    return Err(err(
                        &key("address"),
                        format!(
                            "device `{}` is a Bluetooth LE device ({}); set address = \"C4:7C:8D:6A:01:02\" (printed on the device or shown by `bluetoothctl scan on`)",
                            d.id, profile.model
                        ),
                    ));
                }
                (Transport::Ble, Some(a)) => {
                    let address: Address = a
                        .parse()
                        .map_err(|e: BadAddress| err(&key("address"), e.to_string()))?;
                    if !addresses.insert(address) {
                        return Err(err(
                            &key("address"),
                            format!("{address} is bound to two devices"),
                        ));
                    }
                    Some(BleBinding {
                        address,
                        link: d.link.unwrap_or(BleLink::Direct),
                    })
                }
                (_, Some(_)) => {
                    return Err(err(
                        &key("address"),
                        format!(
                            "device `{}` is not a Bluetooth LE device; remove `address`",
                            d.id
                        ),
                    ));
                }
                (_, None) => None,
            };
            if d.link.is_some() && ble.is_none() {
                return Err(err(
                    &key("link"),
                    format!(
                        "device `{}` is not a Bluetooth LE device; remove `link`",
                        d.id
                    ),
                ));
            }
            devices.push(Device {
                id: d.id.into(),
                patient: d.patient.into(),
                profile: Arc::new(profile),
                profile_path,
                port: d.port,
                ble,
            });
        }
        if devices.is_empty() {
            return Err(err(
                "device",
                "no devices are bound; add at least one [[device]] table with id, patient and profile".into(),
            ));
        }
        let detect = Self::detect(raw.detect, raw.patients, &err)?;
        let alerts = Self::alerts(raw.alerts, &chain, base, &err)?;
        let anchor = raw
            .anchor
            .map(|a| crate::anchor::config::validate(a, &chain.directory, base, &err))
            .transpose()?;
        let http = match raw.http {
            None => None,
            Some(RawHttp { listen: None }) => DEFAULT_HTTP.parse().ok(),
            Some(RawHttp { listen: Some(l) }) => Some(l.parse::<SocketAddr>().map_err(|_| {
                err(
                    "http.listen",
                    format!("`{l}` is not an address:port such as \"127.0.0.1:8480\""),
                )
            })?),
        };
        Ok(Config {
            file: file.to_owned(),
            mqtt,
            mqtt_server,
            ingest,
            chain,
            devices,
            detect,
            alerts,
            http,
            anchor,
        })
    }

    fn detect(
        monitor: MonitorConfig,
        raw: Vec<RawPatient>,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<DetectConfig, ConfigError> {
        let mut patients = BTreeMap::new();
        for (i, p) in raw.into_iter().enumerate() {
            let key = |k: &str| format!("patient[{i}].{k}");
            if !valid_id(&p.id) {
                return Err(err(
                    &key("id"),
                    format!(
                        "`{}` must be 1–64 characters of letters, digits, '-', '_' or '.'",
                        p.id
                    ),
                ));
            }
            let scale = match p.spo2_scale {
                None | Some(1) => Spo2Scale::One,
                Some(2) => Spo2Scale::Two,
                Some(n) => {
                    return Err(err(
                        &key("spo2_scale"),
                        format!(
                            "{n} (NEWS2 has SpO2 scales 1 and 2; 2 only for hypercapnic respiratory failure, as prescribed)"
                        ),
                    ));
                }
            };
            let settings = PatientSettings {
                scale,
                oxygen: p.oxygen.unwrap_or_default(),
                consciousness: p.consciousness.unwrap_or_default(),
            };
            if patients
                .insert(Arc::<str>::from(p.id.as_str()), settings)
                .is_some()
            {
                return Err(err(&key("id"), format!("`{}` is listed twice", p.id)));
            }
        }
        Ok(DetectConfig { monitor, patients })
    }

    fn alerts(
        raw: Option<RawAlerts>,
        chain: &ChainConfig,
        base: &Path,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<AlertsConfig, ConfigError> {
        // By default the outbox sits beside the ledger, in the state
        // directory.
        let default_outbox = chain.directory.with_file_name("alerts");
        let Some(raw) = raw else {
            return Ok(AlertsConfig {
                outbox: Some(default_outbox),
                ..AlertsConfig::default()
            });
        };
        if let Some(id) = &raw.gateway_id {
            if !valid_id(id) {
                return Err(err(
                    "alerts.gateway_id",
                    format!(
                        "`{id}` must be 1–64 characters of letters, digits, '-', '_' or '.' (it is an MQTT topic level)"
                    ),
                ));
            }
        }
        let d = EscalationPolicy::default();
        let secs = |key: &str, v: u64| -> Result<i64, ConfigError> {
            if (1..=7 * 86_400).contains(&v) {
                Ok(v as i64 * 1000)
            } else {
                Err(err(key, format!("{v} (expected 1 to 604800 seconds)")))
            }
        };
        let tiers_ms = match raw.escalate_after_secs {
            None => d.tiers_ms,
            Some(v) => v
                .into_iter()
                .map(|s| secs("alerts.escalate_after_secs", s))
                .collect::<Result<_, _>>()?,
        };
        let reopen_within_ms = match raw.reopen_within_secs {
            None => d.reopen_within_ms,
            Some(s) => secs("alerts.reopen_within_secs", s)?,
        };
        let filter = |table: &str,
                      categories: Option<Vec<Category>>,
                      from_tier: Option<usize>|
         -> Result<SinkFilter, ConfigError> {
            let d = SinkFilter::default();
            let categories = categories.unwrap_or(d.categories);
            if categories.is_empty() {
                return Err(err(
                    &format!("{table}.categories"),
                    "empty: the sink would receive nothing; list \"clinical\", \"technical\" or both".into(),
                ));
            }
            Ok(SinkFilter {
                categories,
                from_tier: from_tier.unwrap_or(d.from_tier),
            })
        };
        let mqtt = match raw.mqtt {
            None => None,
            Some(m) => {
                let prefix = m.topic_prefix.unwrap_or_else(|| "vitalgate".into());
                if prefix.is_empty() || prefix.starts_with('/') || prefix.contains(['#', '+', '\0'])
                {
                    return Err(err(
                        "alerts.mqtt.topic_prefix",
                        format!(
                            "`{prefix}` must be a topic without wildcards or a leading '/', e.g. \"hospital/vitalgate\""
                        ),
                    ));
                }
                Some(MqttSinkConfig {
                    broker: Self::mqtt(m.broker, "alerts.mqtt.broker", base, err)?,
                    topic_prefix: prefix,
                    filter: filter("alerts.mqtt", m.categories, m.from_tier)?,
                })
            }
        };
        let mut webhooks = Vec::new();
        for (i, w) in raw.webhook.into_iter().enumerate() {
            let table = format!("alerts.webhook[{i}]");
            let key = |k: &str| format!("{table}.{k}");
            if !valid_id(&w.name)
                || w.name == "mqtt"
                || webhooks.iter().any(|x: &WebhookConfig| x.name == w.name)
            {
                return Err(err(
                    &key("name"),
                    format!(
                        "`{}` must be a unique name of 1–64 letters, digits, '-', '_' or '.' (not \"mqtt\")",
                        w.name
                    ),
                ));
            }
            let url = reqwest::Url::parse(&w.url)
                .map_err(|e| err(&key("url"), format!("`{}`: {e}", w.url)))?;
            let loopback = url.host_str().is_some_and(|h| {
                h == "localhost"
                    || h.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|a| a.is_loopback())
            });
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                return Err(err(
                    &key("url"),
                    format!(
                        "`{}`: alerts carry health data; use https:// (plain http only to this machine)",
                        w.url
                    ),
                ));
            }
            let timeout = match w.timeout_secs {
                None => Duration::from_secs(10),
                Some(t) if (1..=300).contains(&t) => Duration::from_secs(t),
                Some(t) => {
                    return Err(err(
                        &key("timeout_secs"),
                        format!("{t} (expected 1 to 300)"),
                    ));
                }
            };
            webhooks.push(WebhookConfig {
                name: w.name,
                url,
                secret: base.join(w.secret_file),
                ca_file: w.ca_file.map(|p| base.join(p)),
                timeout,
                filter: filter(&table, w.categories, w.from_tier)?,
            });
        }
        Ok(AlertsConfig {
            gateway_id: raw.gateway_id,
            outbox: Some(raw.outbox.map_or(default_outbox, |p| base.join(p))),
            policy: EscalationPolicy {
                tiers_ms,
                reopen_within_ms,
                escalate_technical: raw.escalate_technical.unwrap_or(d.escalate_technical),
            },
            ack_secret: raw.ack_secret_file.map(|p| base.join(p)),
            mqtt,
            webhooks,
        })
    }

    /// Validate a broker connection table; `table` names it in errors
    /// (`mqtt`, `alerts.mqtt.broker`).
    fn mqtt(
        raw: RawMqtt,
        table: &str,
        base: &Path,
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<MqttConfig, ConfigError> {
        let key = |k: &str| format!("{table}.{k}");
        if raw.host.trim().is_empty() {
            return Err(err(&key("host"), "must not be empty".into()));
        }
        if raw.port == 0 {
            return Err(err(
                &key("port"),
                "0 is not a port (1883 is MQTT's, 8883 MQTT over TLS)".into(),
            ));
        }
        if !valid_id(&raw.client_id) {
            return Err(err(
                &key("client_id"),
                "1–64 characters of letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if !(5..=3600).contains(&raw.keep_alive_secs) {
            return Err(err(
                &key("keep_alive_secs"),
                format!("{} (expected 5 to 3600)", raw.keep_alive_secs),
            ));
        }
        if raw.inflight == 0 {
            return Err(err(&key("inflight"), "must be at least 1".into()));
        }
        if raw.password_file.is_some() && raw.username.is_none() {
            return Err(err(
                &key("username"),
                "password_file is set but username is not".into(),
            ));
        }
        let tls = if raw.tls {
            let client_cert = match (raw.client_cert_file, raw.client_key_file) {
                (Some(c), Some(k)) => Some((base.join(c), base.join(k))),
                (None, None) => None,
                _ => {
                    return Err(err(
                        &key("client_cert_file"),
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
                    &key("tls"),
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
                "missing: the gateway keeps every reading in its ledger; add a [chain] section with directory, identity and recipients (create the gateway's keys with `vitalgate init`, the recipients' with `vitalgate keygen recipient`)".into(),
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
                if r.contains("REPLACE") {
                    return Err(err(
                        &format!("chain.recipients[{i}]"),
                        "still the example's placeholder: put the care team's public key here, as `vitalgate keygen recipient FILE` prints it (run that on the care team's machine and keep FILE off the gateway)".into(),
                    ));
                }
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
        let disk_floor = match raw.disk_floor_mb {
            None => DEFAULT_DISK_FLOOR,
            Some(n) if n <= 1 << 20 => n << 20,
            Some(n) => {
                return Err(err(
                    "chain.disk_floor_mb",
                    format!("{n} (expected 0 to {} MiB)", 1 << 20),
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
            disk_floor,
        })
    }

    /// Whether any device comes over MQTT (itself, or relayed by a BLE
    /// proxy).
    pub fn uses_mqtt(&self) -> bool {
        self.devices.iter().any(|d| {
            d.profile.transport == Transport::Mqtt
                || d.ble.is_some_and(|b| b.link == BleLink::Proxy)
        })
    }
}

/// Why a device's profile path leads nowhere, and where the profiles
/// are: relative paths start at the configuration's folder, and a
/// misspelt name is easiest to see beside the names that exist.
fn missing_profile(path: &Path, base: &Path) -> String {
    let mut message = format!(
        "the profile file {} does not exist (relative paths start at the configuration's folder, {})",
        path.display(),
        base.display()
    );
    let folder = path.parent().unwrap_or(base);
    if let Ok(entries) = std::fs::read_dir(folder) {
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".toml"))
            .collect();
        names.sort();
        if !names.is_empty() {
            message.push_str(&format!("; {} has: {}", folder.display(), names.join(", ")));
        }
    }
    message
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
        assert_eq!(e.file, Path::new("/etc/vitalgate/vitalgate.toml"));
        assert_eq!(e.key, "device[0].profile");
        assert!(
            e.message
                .contains("device-profiles/no-such-model.toml does not exist"),
            "{e}"
        );
        assert!(e.message.contains("senml-wearable.toml"), "{e}");

        let e = parse(&format!("{GOOD}port = \"/dev/ttyUSB0\"\n")).unwrap_err();
        assert_eq!(e.key, "device[0].port");

        let e = parse("[mqtt]\nhots = \"x\"\n").unwrap_err();
        assert!(e.message.contains("unknown field `hots`"), "{e}");
        assert_eq!(e.key, "mqtt.hots");

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
    fn alerts_default_to_an_outbox_beside_the_ledger_and_no_sinks() {
        let c = parse(GOOD).unwrap();
        assert_eq!(
            c.alerts.outbox,
            Some(profiles_dir().join("alerts")),
            "beside {}",
            c.chain.directory.display()
        );
        assert!(c.alerts.mqtt.is_none() && c.alerts.webhooks.is_empty());
        assert_eq!(c.alerts.policy, EscalationPolicy::default());
        assert_eq!(c.http, None);
        let c = parse(&format!("{GOOD}\n[http]\n")).unwrap();
        assert_eq!(c.http, Some(DEFAULT_HTTP.parse().unwrap()));
    }

    #[test]
    fn alert_sinks_and_patients_are_read_and_checked() {
        let full = format!(
            r#"{GOOD}
[[patient]]
id = "patient-0001"
spo2_scale = 2
oxygen = "supplemental"

[detect.rules.hypoxaemia]
sustain_ms = 20000

[alerts]
gateway_id = "gw-7"
escalate_after_secs = [120, 600]
ack_secret_file = "ack.secret"

[alerts.mqtt]
topic_prefix = "hospital/vitalgate"
categories = ["clinical"]

[alerts.mqtt.broker]
host = "mqtt.hospital.example"
port = 8883
client_id = "gw-7-alerts"
tls = true

[[alerts.webhook]]
name = "on-call"
url = "https://alerts.hospital.example/vitalgate"
secret_file = "webhook.secret"
from_tier = 1
"#
        );
        let c = parse(&full).unwrap_or_else(|e| panic!("{e}"));
        let settings = c.detect.patients.get("patient-0001").unwrap();
        assert_eq!(settings.scale, Spo2Scale::Two);
        assert_eq!(settings.oxygen, Oxygen::Supplemental);
        assert_eq!(c.detect.monitor.rules.hypoxaemia.sustain_ms, 20_000);
        assert_eq!(c.alerts.gateway_id.as_deref(), Some("gw-7"));
        assert_eq!(c.alerts.policy.tiers_ms, vec![120_000, 600_000]);
        let m = c.alerts.mqtt.as_ref().unwrap();
        assert_eq!(m.topic_prefix, "hospital/vitalgate");
        assert_eq!(m.filter.categories, vec![Category::Clinical]);
        assert_eq!(m.broker.port, 8883);
        assert!(m.broker.tls.is_some());
        let w = &c.alerts.webhooks[0];
        assert_eq!((w.name.as_str(), w.filter.from_tier), ("on-call", 1));
        assert_eq!(w.secret, profiles_dir().join("webhook.secret"));

        let e = parse(&full.replace("port = 8883", "port = 0")).unwrap_err();
        assert_eq!(e.key, "alerts.mqtt.broker.port");
        let e = parse(&full.replace(
            "https://alerts.hospital.example",
            "http://alerts.hospital.example",
        ))
        .unwrap_err();
        assert_eq!(e.key, "alerts.webhook[0].url");
        assert!(e.message.contains("https"), "{e}");
        let local = full.replace(
            "https://alerts.hospital.example/vitalgate",
            "http://127.0.0.1:8080/hook",
        );
        assert!(
            parse(&local).is_ok(),
            "plain http to this machine is allowed"
        );
        let e = parse(&full.replace("spo2_scale = 2", "spo2_scale = 3")).unwrap_err();
        assert_eq!(e.key, "patient[0].spo2_scale");
        let e = parse(&full.replace("sustain_ms = 20000", "sustain = 20000")).unwrap_err();
        assert!(e.message.contains("unknown field `sustain`"), "{e}");
        let e = parse(&full.replace(
            "topic_prefix = \"hospital/vitalgate\"",
            "topic_prefix = \"a/#\"",
        ))
        .unwrap_err();
        assert_eq!(e.key, "alerts.mqtt.topic_prefix");
        let e = parse(&full.replace("categories = [\"clinical\"]", "categories = []")).unwrap_err();
        assert_eq!(e.key, "alerts.mqtt.categories");
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
