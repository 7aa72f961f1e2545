//! End-to-end MQTT ingest throughput: a QoS 1 publisher on localhost, a
//! Mosquitto broker (started here, as a deployment would run one), and the
//! gateway decoding, checking, counting and committing every reading to the
//! ledger — packed, encrypted, written to sled and fsynced, one group
//! commit at a time — acknowledging each message after its commit. Blocks
//! are sealed (signed, logged) on the default policy as it goes.
//!
//! Run: `cargo bench --bench ingest` (release build; needs `mosquitto`,
//! which `.ci/run` installs). Prints readings per second sustained over the
//! whole run, from the first publish to the last reading committed, the
//! group commits (fsyncs) it took, and the ledger's bytes per reading. The
//! ledger lives in the system's temporary folder: put TMPDIR on the disk
//! you want to measure.
//!
//! Why not the embedded broker: rumqttd keeps a bounded in-memory log per
//! topic and serves a lagging subscriber's topics unevenly; under a burst of
//! thousands of messages a second it drops the older segment of a topic the
//! gateway has not read yet ("Read cursor start jumped" in its log). At a
//! home's rates (a few messages a second) that never happens, but it makes
//! the embedded broker the bottleneck of a throughput benchmark.

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::PathBuf;
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("VITALGATE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,rumqttd=off")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench());
}

async fn bench() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let profile_path = root.join("device-profiles/senml-wearable.toml");
    let profile = Arc::new(Profile::load(&profile_path).unwrap());
    let port = vitalgate::broker::free_port().unwrap();
    let dir = std::env::temp_dir().join(format!("vitalgate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 1000000\nmax_inflight_messages 100\nuser root\n"),
    )
    .unwrap();
    let Some(bin) = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("the ingest benchmark needs mosquitto (apt-get install mosquitto)");
        return;
    };
    let mut broker = std::process::Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let devices: Vec<Device> = (0..DEVICES)
        .map(|i| Device {
            id: format!("wear-{i}").into(),
            patient: format!("patient-{i}").into(),
            profile: Arc::clone(&profile),
            profile_path: profile_path.clone(),
            port: None,
        })
        .collect();
    let config = Config {
        file: PathBuf::from("(bench)"),
        mqtt: MqttConfig {
            host: "127.0.0.1".into(),
            port,
            client_id: "vitalgate-bench".into(),
            username: None,
            password_file: None,
            tls: None,
            keep_alive: Duration::from_secs(30),
            inflight: 100,
        },
        embedded_broker: None,
        ingest: IngestConfig::default(),
        chain: ChainConfig {
            directory: dir.join("ledger"),
            identity: dir.join("identity.key"),
            recipients: vec![
                RecipientKey::generate().unwrap().public(),
                RecipientKey::generate().unwrap().public(),
            ],
            seal: SealPolicy::default(),
        },
        devices,
    };
    IdentityKey::generate()
        .unwrap()
        .save_new(&config.chain.identity)
        .unwrap();
    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, ledger, cancel.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Pre-encode every message: the benchmark measures the gateway, not
    // the encoder. Each SenML pack carries one second of a multi-vital
    // wearable: 8 readings.
    let mut encoder = Format::Senml.encoder("bench");
    let mut messages = Vec::new();
    let mut readings_per_message = 0;
    // Devices publish side by side, as they do in a home.
    for s in 0..MESSAGES_PER_DEVICE {
        for d in 0..DEVICES {
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
            readings_per_message = snap.values.iter().flatten().count();
            let mut payload = Vec::new();
            encoder.encode(&snap, &mut payload);
            messages.push((format!("vitalgate/wear-{d}/senml"), payload));
        }
    }
    let total = (messages.len() * readings_per_message) as u64;

    let mut o = MqttOptions::new("bench-publisher", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30)).set_inflight(1000);
    let (client, mut eventloop) = AsyncClient::new(o, 1000);
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Disconnect)) | Err(_) => break,
                Ok(_) => {}
            }
        }
    });
    let mut store = gateway.store.clone();
    let start = Instant::now();
    tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
    });
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
        "mqtt ingest: {total} readings in {} messages ({readings_per_message} per SenML pack, {DEVICES} devices) in {secs:.2} s = {:.0} readings/s ({:.0} messages/s); {commits} group commits (fsyncs); rejected {}",
        DEVICES * MESSAGES_PER_DEVICE,
        total as f64 / secs,
        (DEVICES * MESSAGES_PER_DEVICE) as f64 / secs,
        ingest.rejected_total()
    );
    cancel.cancel();
    gateway.join().await;
    let s = store.borrow().clone();
    println!(
        "ledger: {} blocks, {} bytes on disk = {:.1} bytes/reading (sled, before compaction)",
        s.blocks,
        s.bytes,
        s.bytes as f64 / total as f64
    );
    let _ = broker.kill();
    let _ = broker.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
