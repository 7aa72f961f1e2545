//! `vitalsim`: play virtual patients through virtual devices.
//!
//! Serial device profiles get a pseudo-terminal each (its path is printed:
//! point the gateway's `port` at it); MQTT profiles publish to `--mqtt`, and
//! Bluetooth LE profiles go through a simulated BLE proxy on `--mqtt`.
//! The same seed plays the same patients; `--labels` writes the ground
//! truth of every scenario event played.

use anyhow::{Context, Result, bail};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::Timestamp;
use vitalgate_devices::format::ble_gatt;
use vitalgate_devices::gatt::Address;
use vitalgate_devices::profile::{Profile, Transport};
use vitalsim::play::{Output, Pace, play};
use vitalsim::scenario::ScenarioKind;
use vitalsim::simulation::{DeviceSpec, PatientSpec, Simulation, SimulationSpec};
use vitalsim::transport::mqtt::Publisher;
use vitalsim::transport::pty::PtyDevice;

/// Wearable simulator for vitalgate.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Device profile to simulate (repeat for several devices on the same
    /// patient).
    #[arg(long, short, required = true)]
    profile: Vec<PathBuf>,
    /// Scenario the patient lives through: stable, desaturation,
    /// tachycardia, bradycardia, fever, sepsis, copd, sensor_off, flatline,
    /// motion_artifact, dropout, mixed.
    #[arg(long, default_value = "mixed")]
    scenario: String,
    /// Patient id.
    #[arg(long, default_value = "sim-patient-1")]
    patient: String,
    /// Seed: the same seed plays the same patient and events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Send as fast as the transports accept (ignores --speed).
    #[arg(long)]
    unpaced: bool,
    /// Simulated time to play (e.g. 90s, 10m, 24h); default: forever.
    #[arg(long, value_parser = vitalsim::play::parse_duration)]
    duration: Option<Duration>,
    /// Simulated start time (RFC 3339); default: now.
    #[arg(long)]
    start: Option<String>,
    /// MQTT broker for MQTT profiles, as host:port.
    #[arg(long)]
    mqtt: Option<String>,
    /// Write ground-truth labels (JSON lines) here.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Seconds between a device's samples (BP cuffs: e.g. 300).
    #[arg(long, default_value_t = 1.0)]
    period: f64,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VITALSIM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if !(cli.speed.is_finite() && cli.speed > 0.0) {
        bail!("--speed must be a positive number (1 = real time)");
    }
    if !(cli.period.is_finite() && cli.period >= 0.01) {
        bail!("--period must be at least 0.01 s");
    }
    let scenario: ScenarioKind =
        serde_json::from_value(serde_json::Value::String(cli.scenario.clone()))
            .with_context(|| format!("unknown scenario `{}`", cli.scenario))?;
    let start = match &cli.start {
        Some(s) => {
            Timestamp::parse_rfc3339(s).with_context(|| format!("`{s}` is not an RFC 3339 time"))?
        }
        None => Timestamp::now(),
    };
    let mut profiles = Vec::new();
    for p in &cli.profile {
        profiles.push(Profile::load(p).map_err(anyhow::Error::msg)?);
    }
    let mut devices = Vec::new();
    for (i, (path, profile)) in cli.profile.iter().zip(&profiles).enumerate() {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("device");
        devices.push(DeviceSpec {
            id: format!("sim-{}-{}", i + 1, stem),
            patient: cli.patient.clone(),
            vitals: profile.vitals.clone(),
            period_ms: (cli.period * 1000.0) as i64,
        });
    }
    let spec = SimulationSpec {
        seed: cli.seed,
        start,
        duration_ms: cli.duration.map(|d| d.as_millis() as i64),
        patients: vec![PatientSpec {
            id: cli.patient.clone(),
            scenario,
        }],
        devices,
    };
    let sim = Simulation::new(&spec).context("invalid simulation")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            stop.cancel();
        });
        let publisher = match &cli.mqtt {
            Some(addr) => {
                let (host, port) = addr.rsplit_once(':').context("--mqtt must be host:port")?;
                let port: u16 = port.parse().context("--mqtt port must be a number")?;
                Some(Publisher::connect(
                    host,
                    port,
                    &format!("vitalsim-{}", std::process::id()),
                    cancel.clone(),
                ))
            }
            None => None,
        };
        let mut outputs = Vec::new();
        let mut stdout = std::io::stdout().lock();
        for (i, (d, profile)) in spec.devices.iter().zip(&profiles).enumerate() {
            let mut encoder = profile.format.encoder(&d.id);
            let link = match profile.transport {
                Transport::Serial => {
                    let pty = PtyDevice::open()?;
                    writeln!(
                        stdout,
                        "device={} transport=serial path={} format={}",
                        d.id,
                        pty.path.display(),
                        profile.format
                    )?;
                    pty.spawn(profile.format.host_commands(), cancel.clone())
                }
                Transport::Mqtt => {
                    let (Some(p), Some(m)) = (&publisher, &profile.mqtt) else {
                        bail!("{} is an MQTT profile: give --mqtt host:port", d.id);
                    };
                    let topic = m.topic_for(&d.id);
                    writeln!(
                        stdout,
                        "device={} transport=mqtt topic={} format={}",
                        d.id, topic, profile.format
                    )?;
                    p.link(topic)
                }
                Transport::Ble => {
                    // A wearable behind a BLE proxy: its characteristic
                    // values relayed over MQTT, one message each. The
                    // address is fixed per device position (a random static
                    // address), so a gateway configuration can bind it.
                    let (Some(p), Some(service)) = (
                        &publisher,
                        profile.ble.as_ref().and_then(|b| b.services.first()),
                    ) else {
                        bail!(
                            "{} is a Bluetooth LE profile, simulated through a BLE proxy over MQTT: give --mqtt host:port",
                            d.id
                        );
                    };
                    let address = Address([0xF0, 0x5E, 0xED, 0x00, 0x01, i as u8]);
                    let topic = "vitalgate/ble/vitalsim".to_owned();
                    writeln!(
                        stdout,
                        "device={} transport=ble-proxy topic={topic} address={address} format={}",
                        d.id, profile.format
                    )?;
                    encoder = ble_gatt::proxy_encoder(address, *service);
                    p.line_link(topic)
                }
            };
            outputs.push(Some(Output { encoder, link }));
        }
        stdout.flush()?;
        drop(stdout);
        let mut labels = match &cli.labels {
            Some(p) => Some(std::io::BufWriter::new(
                std::fs::File::create(p)
                    .with_context(|| format!("cannot create {}", p.display()))?,
            )),
            None => None,
        };
        let pace = if cli.unpaced {
            Pace::Unpaced
        } else {
            Pace::Speed(cli.speed)
        };
        let played = play(
            sim,
            outputs,
            pace,
            labels.as_mut().map(|w| w as &mut (dyn Write + Send)),
            cancel.clone(),
        )
        .await?;
        // Give the links a moment to deliver the tail.
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        eprintln!(
            "vitalsim: sent {} samples, {} bytes, {} labels",
            played.samples, played.bytes, played.labels
        );
        Ok(())
    })
}
