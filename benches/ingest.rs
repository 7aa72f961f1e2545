//! End-to-end MQTT ingest throughput: QoS 1 publishers on localhost and
//! the gateway decoding, checking, counting and committing every reading
//! to the ledger — packed, encrypted, written to sled and fsynced, one
//! group commit at a time — acknowledging each message after its commit.
//! Blocks are sealed (signed, logged) on the default policy as it goes.
//!
//! Two routes, each measured on a fresh ledger:
//! - `server`: each device publishes to the gateway's own MQTT server on
//!   its own connection (the default setup);
//! - `mosquitto`: devices publish to a Mosquitto broker (started here, as
//!   a deployment would run one) that the gateway subscribes to. Skipped
//!   when Mosquitto is not installed (`.ci/run` installs it).
//!
//! Run: `cargo bench --bench ingest` (release build). Prints readings per
//! second sustained over the whole run, from the first publish to the last
//! reading committed, the group commits (fsyncs) it took, and the ledger's
//! bytes per reading. The ledger lives in the system's temporary folder:
//! put TMPDIR on the disk you want to measure.

#[path = "../tests/common/mod.rs"]
mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::config::{ChainConfig, Config, Device, IngestConfig, MqttConfig};
use vitalgate_chain::SealPolicy;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_devices::profile::Profile;
use vitalgate_devices::{Format, Snapshot, Timestamp, Vital};

const DEVICES: usize = 4;
const MESSAGES_PER_DEVICE: usize = 5_000;

fn main() {
    // VITALGATE_LOG=info shows the gateway's own log lines.
    let runtime = common::bench_runtime("warn");
    runtime.block_on(async {
        let messages = messages();
        let dir = std::env::temp_dir().join(format!("vitalgate-bench-{}", std::process::id()));
        measure("server", &dir.join("server"), &messages, None).await;
        // Skipped, with a message, when Mosquitto is not installed.
        if let Some(broker) = common::mosquitto::start() {
            let port = Some(broker.port);
            measure("mosquitto", &dir.join("mosquitto"), &messages, port).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    });
}

/// Per device, its messages: each SenML pack carries one second of a
/// multi-vital wearable (8 readings). Pre-encoded: the benchmark measures
/// the gateway, not the encoder.
fn messages() -> Vec<Vec<(String, Vec<u8>)>> {
    let mut encoder = Format::Senml.encoder("bench");
    (0..DEVICES)
        .map(|d| {
            (0..MESSAGES_PER_DEVICE)
                .map(|s| {
                    let mut snap = Snapshot {
                        time: Timestamp(1_763_708_462_000 + s as i64 * 1000),
                        ..Snapshot::default()
                    };
                    let w = (s % 13) as f64;
                    for (v, x) in [
                        (Vital::HeartRate, 60.0 + w),
                        (Vital::Spo2, 95.0 + w / 4.0),
                        (Vital::RespiratoryRate, 14.0 + w / 3.0),
                        (Vital::BodyTemperature, 36.6 + w / 50.0),
                        (Vital::SystolicBp, 120.0 + w),
                        (Vital::DiastolicBp, 80.0 + w),
                        (Vital::PerfusionIndex, 2.0 + w / 10.0),
                        (Vital::RrInterval, 900.0 + w),
                    ] {
                        snap.set(v, Some(x));
                    }
                    let mut payload = Vec::new();
                    encoder.encode(&snap, &mut payload);
                    (format!("vitalgate/wear-{d}/senml"), payload)
                })
                .collect()
        })
        .collect()
}

/// Run the gateway on a fresh ledger in `dir`, publish every message (to
/// the gateway's server, or to the broker on `broker_port`), and report.
async fn measure(
    route: &str,
    dir: &Path,
    messages: &[Vec<(String, Vec<u8>)>],
    broker_port: Option<u16>,
) {
    std::fs::create_dir_all(dir).unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let profile_path = root.join("device-profiles/senml-wearable.toml");
    let profile = Arc::new(Profile::load(&profile_path).unwrap());
    let devices: Vec<Device> = (0..DEVICES)
        .map(|i| Device {
            id: format!("wear-{i}").into(),
            patient: format!("patient-{i}").into(),
            profile: Arc::clone(&profile),
            profile_path: profile_path.clone(),
            port: None,
            ble: None,
        })
        .collect();
    let config = Config {
        file: PathBuf::from("(bench)"),
        mqtt: broker_port.map(|port| MqttConfig {
            host: "127.0.0.1".into(),
            port,
            client_id: "vitalgate-bench".into(),
            username: None,
            password_file: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            inflight: 100,
        }),
        mqtt_server: broker_port.is_none().then(|| ([127, 0, 0, 1], 0).into()),
        ingest: IngestConfig::default(),
        chain: ChainConfig {
            directory: dir.join("ledger"),
            identity: dir.join("identity.key"),
            recipients: vec![
                RecipientKey::generate().unwrap().public(),
                RecipientKey::generate().unwrap().public(),
            ],
            seal: SealPolicy::default(),
            disk_floor: 0,
        },
        devices,
        detect: Default::default(),
        alerts: vitalgate::config::AlertsConfig {
            outbox: Some(dir.join("alerts")),
            ..Default::default()
        },
        http: None,
        anchor: None,
    };
    IdentityKey::generate()
        .unwrap()
        .save_new(&config.chain.identity)
        .unwrap();
    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, ledger, cancel.clone()).unwrap();
    let port = match (broker_port, gateway.mqtt_server) {
        (Some(p), _) => p,
        (None, Some(addr)) => addr.port(),
        (None, None) => unreachable!("the gateway serves MQTT"),
    };
    // Let a subscription to the broker settle.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let readings_per_message = 8u64;
    let n_messages: usize = messages.iter().map(Vec::len).sum();
    let total = n_messages as u64 * readings_per_message;
    let mut store = gateway.store.clone();
    let start = Instant::now();
    // One connection per device, as in a home.
    for (d, device_messages) in messages.iter().enumerate() {
        let mut o = MqttOptions::new(format!("bench-device-{d}"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30)).set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(o, 1000);
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        });
        let device_messages = device_messages.clone();
        tokio::spawn(async move {
            for (topic, payload) in device_messages {
                client
                    .publish(topic, QoS::AtLeastOnce, false, payload)
                    .await
                    .unwrap();
            }
        });
    }
    loop {
        if store.borrow_and_update().stored >= total {
            break;
        }
        if tokio::time::timeout(Duration::from_secs(60), store.changed())
            .await
            .is_err()
        {
            panic!("stalled at {} of {total} readings", store.borrow().stored);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let ingest = gateway.ingest.borrow().clone();
    let commits = store.borrow().commits;
    println!(
        "mqtt ingest ({route}): {total} readings in {n_messages} messages ({readings_per_message} per SenML pack, {DEVICES} devices) in {secs:.2} s = {:.0} readings/s ({:.0} messages/s); {commits} group commits (fsyncs); rejected {}",
        total as f64 / secs,
        n_messages as f64 / secs,
        ingest.rejected_total()
    );
    cancel.cancel();
    gateway.join().await;
    let s = store.borrow().clone();
    println!(
        "ledger ({route}): {} blocks, {} bytes on disk = {:.1} bytes/reading (sled, before compaction)",
        s.blocks,
        s.bytes,
        s.bytes as f64 / total as f64
    );
}
