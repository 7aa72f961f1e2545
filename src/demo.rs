//! The out-of-the-box demo: the gateway on its embedded defaults.
//!
//! The gateway's own MQTT server on localhost, the bundled simulator
//! playing a small cohort of virtual patients through real transports —
//! serial devices on pseudo-terminals, Wi-Fi devices over MQTT, Bluetooth
//! LE wearables through a (simulated) BLE proxy relaying their
//! characteristic values over MQTT — and the gateway reading them exactly
//! as it reads real devices, with the live view on the terminal.

use crate::Gateway;
use crate::config::{AlertsConfig, BleBinding, BleLink, ChainConfig, Config, Device, IngestConfig};
use crate::source::mqtt::BLE_PROXY_TOPIC;
use crate::store::{LedgerSetupError, open_ledger};
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate_chain::SealPolicy;
use vitalgate_chain::crypto::keys::{IdentityKey, KeyError, RecipientKey};
use vitalgate_devices::Timestamp;
use vitalgate_devices::format::ble_gatt;
use vitalgate_devices::gatt::Address;
use vitalgate_devices::profile::{Profile, Transport};
use vitalsim::play::{Output, Pace, Played};
use vitalsim::simulation::{Simulation, SimulationSpec};
use vitalsim::transport::mqtt::Publisher;
use vitalsim::transport::pty::PtyDevice;

/// The profiles the demo's devices use, embedded so the demo runs from any
/// folder, in order of preference: each simulated device gets the first
/// profile not yet used that carries all but at most one of its vitals (and
/// measures what that profile carries), so the demo shows as many formats
/// as it has devices, over both transports — including a Contec V7, which
/// streams only after the gateway sends its start command. Devices whose
/// id starts with `ble-` take the Bluetooth profiles, the others never do.
const PROFILES: [(&str, &str); 10] = [
    (
        "masimo-rad-8.toml",
        include_str!("../device-profiles/masimo-rad-8.toml"),
    ),
    (
        "contec-cms50d-plus-v7.toml",
        include_str!("../device-profiles/contec-cms50d-plus-v7.toml"),
    ),
    (
        "openmhealth-wearable.toml",
        include_str!("../device-profiles/openmhealth-wearable.toml"),
    ),
    (
        "senml-wearable.toml",
        include_str!("../device-profiles/senml-wearable.toml"),
    ),
    (
        "nonin-3150-wristox2.toml",
        include_str!("../device-profiles/nonin-3150-wristox2.toml"),
    ),
    (
        "berrymed-bm1000c.toml",
        include_str!("../device-profiles/berrymed-bm1000c.toml"),
    ),
    (
        "ble-heart-rate.toml",
        include_str!("../device-profiles/ble-heart-rate.toml"),
    ),
    (
        "ble-health-thermometer.toml",
        include_str!("../device-profiles/ble-health-thermometer.toml"),
    ),
    (
        "ble-blood-pressure.toml",
        include_str!("../device-profiles/ble-blood-pressure.toml"),
    ),
    (
        "ble-pulse-oximeter.toml",
        include_str!("../device-profiles/ble-pulse-oximeter.toml"),
    ),
];

/// The topic level the demo's simulated BLE proxy names itself by.
const DEMO_PROXY: &str = "vitalsim-proxy";

/// Where a demo device's bytes come in, for the start-up log.
fn link_of(d: &Device) -> String {
    if let Some(p) = &d.port {
        return p.display().to_string();
    }
    if let Some(b) = d.ble {
        return format!(
            "ble {} via proxy {}",
            b.address,
            BLE_PROXY_TOPIC.replace("{device}", DEMO_PROXY)
        );
    }
    let topic = d.profile.mqtt.as_ref().map(|m| m.topic_for(&d.id));
    format!("mqtt {}", topic.unwrap_or_default())
}

/// The profile for a device measuring `vitals`: see [`PROFILES`].
fn choose(
    profiles: &[(PathBuf, Arc<Profile>)],
    used: &[bool],
    vitals: &[vitalgate_devices::Vital],
    ble: bool,
) -> Option<usize> {
    let covered = |p: &Profile| {
        if (p.transport == Transport::Ble) != ble {
            return 0;
        }
        vitals.iter().filter(|v| p.vitals.contains(v)).count()
    };
    let need = vitals.len().saturating_sub(1).max(1);
    let fits = |k: usize| covered(&profiles[k].1) >= need;
    (0..profiles.len())
        .find(|&k| !used[k] && fits(k))
        .or_else(|| (0..profiles.len()).find(|&k| fits(k)))
        .or_else(|| (0..profiles.len()).find(|&k| covered(&profiles[k].1) == vitals.len()))
}

/// Demo settings.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Simulation seed.
    pub seed: u64,
    /// Simulated seconds per wall-clock second.
    pub speed: f64,
    /// Stop after this much wall-clock time (None: until Ctrl-C).
    pub duration: Option<Duration>,
    /// Write the simulator's ground-truth labels here.
    pub labels: Option<PathBuf>,
    /// Show the live view.
    pub view: bool,
    /// Broker port (None: a free one).
    pub port: Option<u16>,
    /// Where the demo keeps its keys and ledger (created if missing, kept
    /// between runs so `vitalgate verify` and `open` can be tried on it).
    pub dir: PathBuf,
}

/// How often the demo seals a block: often, so sealing is seen at once.
const DEMO_SEAL_INTERVAL: Duration = Duration::from_secs(10);

/// Errors starting the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// A bundled profile is invalid (a build defect).
    #[error("bundled profile: {0}")]
    Profile(#[from] vitalgate_devices::profile::ProfileError),
    /// The simulator's cohort is invalid (a build defect).
    #[error("demo cohort: {0}")]
    Cohort(String),
    /// A transport could not be set up.
    #[error(transparent)]
    Link(#[from] vitalsim::transport::LinkError),
    /// The gateway could not start.
    #[error(transparent)]
    Start(#[from] crate::gateway::StartError),
    /// The demo's keys could not be created or read.
    #[error("demo keys: {0}")]
    Keys(#[from] KeyError),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerSetupError),
    /// I/O (labels file, ports).
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The demo's ledger settings: its own gateway identity and one recipient
/// (standing for the care team), created on first use in `dir`.
fn demo_chain(dir: &Path) -> Result<ChainConfig, DemoError> {
    std::fs::create_dir_all(dir)?;
    let identity = dir.join("identity.key");
    if !identity.exists() {
        let key = IdentityKey::generate()?;
        key.save_new(&identity)?;
        // The public half, for `vitalgate verify --gateway-key`.
        std::fs::write(dir.join("identity.key.pub"), format!("{}\n", key.public()))?;
    }
    let recipient_path = dir.join("recipient.key");
    let recipient = if recipient_path.exists() {
        RecipientKey::load(&recipient_path)?
    } else {
        let key = RecipientKey::generate()?;
        key.save_new(&recipient_path)?;
        key
    };
    Ok(ChainConfig {
        directory: dir.join("ledger"),
        identity,
        recipients: vec![recipient.public()],
        seal: SealPolicy {
            max_age: DEMO_SEAL_INTERVAL,
            ..SealPolicy::default()
        },
        disk_floor: crate::config::DEFAULT_DISK_FLOOR,
    })
}

/// The demo's acknowledgement secret (`dir/ack.secret`, 32 random bytes
/// as hex, mode 0600), created on first use, so `vitalgate ack` can be
/// tried against the demo as the hospital would use it.
fn demo_ack_secret(dir: &Path) -> Result<PathBuf, DemoError> {
    use getrandom::rand_core::TryRng as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = dir.join("ack.secret");
    if path.exists() {
        return Ok(path);
    }
    let mut bytes = [0u8; 32];
    getrandom::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(hex.as_bytes())?;
    file.sync_all()?;
    Ok(path)
}

fn bundled_profiles() -> Result<Vec<(PathBuf, Arc<Profile>)>, DemoError> {
    PROFILES
        .iter()
        .map(|(name, text)| {
            let path = PathBuf::from("device-profiles").join(name);
            Ok((path.clone(), Arc::new(Profile::parse(text, &path)?)))
        })
        .collect()
}

/// Run the demo until `cancel` fires or the duration ends. Returns the
/// final counters.
pub async fn run(options: DemoOptions, cancel: CancellationToken) -> Result<Summary, DemoError> {
    // Port 0: the system picks a free one, read back once bound.
    let listen = SocketAddr::from(([127, 0, 0, 1], options.port.unwrap_or(0)));
    let mut spec = SimulationSpec::demo(options.seed, Timestamp::now());
    let profiles = bundled_profiles()?;

    // Bind each simulated device to a profile and a transport.
    let publisher_cancel = cancel.child_token();
    let mut used = vec![false; profiles.len()];
    let mut devices = Vec::new();
    let mut links: Vec<(usize, Arc<Profile>, Option<PtyDevice>)> = Vec::new();
    for (i, d) in spec.devices.iter_mut().enumerate() {
        let Some(k) = choose(&profiles, &used, &d.vitals, d.id.starts_with("ble-")) else {
            return Err(DemoError::Cohort(format!(
                "no bundled profile carries the vitals of {}",
                d.id
            )));
        };
        used[k] = true;
        let (path, profile) = &profiles[k];
        // The virtual device measures what its model's format carries.
        d.vitals.retain(|v| profile.vitals.contains(v));
        let pty = match profile.transport {
            Transport::Serial => Some(PtyDevice::open()?),
            _ => None,
        };
        // A random static address (top bits 11), one per device.
        let ble = (profile.transport == Transport::Ble).then_some(BleBinding {
            address: Address([0xF0, 0x5E, 0xED, 0x00, 0x00, i as u8]),
            link: BleLink::Proxy,
        });
        devices.push(Device {
            id: d.id.as_str().into(),
            patient: d.patient.as_str().into(),
            profile: Arc::clone(profile),
            profile_path: path.clone(),
            port: pty.as_ref().map(|p| p.path.clone()),
            ble,
        });
        links.push((i, Arc::clone(profile), pty));
    }
    let sim = Simulation::new(&spec).map_err(|e| DemoError::Cohort(e.to_string()))?;
    let config = Config {
        file: PathBuf::from("(demo)"),
        mqtt: None,
        mqtt_server: Some(listen),
        ingest: IngestConfig::default(),
        chain: demo_chain(&options.dir)?,
        devices,
        detect: demo_detect(&spec),
        alerts: AlertsConfig {
            outbox: Some(options.dir.join("alerts")),
            ack_secret: Some(demo_ack_secret(&options.dir)?),
            ..AlertsConfig::default()
        },
        // Any free port on this machine: for `vitalgate ack`.
        http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        anchor: None,
    };
    for d in &config.devices {
        tracing::info!(
            device = %d.id,
            patient = %d.patient,
            model = %format!("{} {}", d.profile.vendor, d.profile.model),
            format = %d.profile.format,
            port = %link_of(d),
            "demo device"
        );
    }

    let gateway_cancel = cancel.child_token();
    let ledger = open_ledger(&config.chain)?;
    let gateway = Gateway::start(&config, ledger, gateway_cancel.clone())?;
    let hint = gateway.http.map(|addr| {
        format!(
            "acknowledge an alert: vitalgate ack --url http://{addr} --secret {} --by <your name> <alert id>",
            options.dir.join("ack.secret").display()
        )
    });
    if let Some(h) = &hint {
        tracing::info!("{h}");
    }
    let view = options.view.then(|| {
        tokio::spawn(crate::view::run(
            gateway.ingest.clone(),
            gateway.store.clone(),
            gateway.alerts.clone(),
            hint,
            cancel.child_token(),
        ))
    });

    let port = gateway.mqtt_server.map_or(listen.port(), |a| a.port());
    let publisher =
        Publisher::connect("127.0.0.1", port, "vitalsim-demo", publisher_cancel.clone());
    let mut outputs: Vec<Option<Output>> = (0..spec.devices.len()).map(|_| None).collect();
    let proxy_topic = BLE_PROXY_TOPIC.replace("{device}", DEMO_PROXY);
    for (i, profile, pty) in links {
        let id = &spec.devices[i].id;
        let ble = config.devices[i].ble;
        let service = profile.ble.as_ref().and_then(|b| b.services.first());
        let output = match (pty, ble, service) {
            (Some(pty), _, _) => Output {
                encoder: profile.format.encoder(id),
                link: pty.spawn(profile.format.host_commands(), publisher_cancel.clone()),
            },
            (None, Some(ble), Some(&service)) => Output {
                encoder: ble_gatt::proxy_encoder(ble.address, service),
                link: publisher.line_link(proxy_topic.clone()),
            },
            (None, _, _) => match &profile.mqtt {
                Some(m) => Output {
                    encoder: profile.format.encoder(id),
                    link: publisher.link(m.topic_for(id)),
                },
                None => continue,
            },
        };
        outputs[i] = Some(output);
    }

    let mut label_file = match &options.labels {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let play_cancel = cancel.child_token();
    if let Some(d) = options.duration {
        let stop = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.cancel();
        });
    }
    let played = vitalsim::play::play(
        sim,
        outputs,
        Pace::Speed(options.speed),
        label_file.as_mut().map(|w| w as &mut (dyn Write + Send)),
        play_cancel,
    )
    .await?;
    // The simulation ended or we were asked to stop: let the last output
    // arrive, then stop the gateway, which drains and stores what it has.
    cancel.cancelled().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway_cancel.cancel();
    let ingest = gateway.ingest.clone();
    let store = gateway.store.clone();
    let alerts = gateway.alerts.clone();
    gateway.join().await;
    publisher_cancel.cancel();
    if let Some(v) = view {
        let _ = v.await;
    }
    let ingest = ingest.borrow().clone();
    let store = store.borrow().clone();
    let alerts = alerts.borrow().clone();
    Ok(Summary {
        played,
        ingest,
        store,
        alerts,
    })
}

/// What the demo did.
#[derive(Debug, Clone)]
pub struct Summary {
    /// What the simulator sent.
    pub played: Played,
    /// What the gateway received.
    pub ingest: crate::ingest::IngestSnapshot,
    /// What the gateway stored.
    pub store: crate::store::StoreSnapshot,
    /// The alerts it raised.
    pub alerts: crate::alert::AlertSnapshot,
}

/// Detection as a clinician would set it up for the demo's patients: the
/// COPD patient on SpO2 Scale 2 (what the simulator's `copd` scenario
/// stands for), everyone else on the defaults.
fn demo_detect(spec: &SimulationSpec) -> crate::detect::DetectConfig {
    let patients = spec
        .patients
        .iter()
        .filter(|p| p.scenario.is_copd())
        .map(|p| {
            (
                Arc::<str>::from(p.id.as_str()),
                vitalgate_detect::PatientSettings {
                    scale: vitalgate_detect::news2::Spo2Scale::Two,
                    ..Default::default()
                },
            )
        })
        .collect();
    crate::detect::DetectConfig {
        patients,
        ..Default::default()
    }
}
