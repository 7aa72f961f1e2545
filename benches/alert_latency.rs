//! Alert latency under load: from a reading reaching the gateway to the
//! alert it completes being published on the hospital's MQTT broker, while
//! the gateway ingests 10,000 readings a second.
//!
//! The whole gateway as deployed: its own MQTT server for the devices,
//! the ledger (fsynced group commits), detection, the alert stage with its
//! sealed, fsynced outbox, and the MQTT sink to a Mosquitto broker started
//! here (as the hospital's). 250 SenML oximeters publish SpO2 and heart
//! rate; every device sends one sample per *round*, one measurement second
//! apart, at 20 rounds a wall-clock second (250 × 2 × 20 = 10,000
//! readings/s). Each patient desaturates to SpO2 80 % for 40 rounds every
//! 200, staggered, so the hypoxaemia rule (< 85 % for 30 s of measurement
//! time) completes on the 31st low sample: that sample's publish time is
//! the start, the alert's arrival at a subscriber of the broker the end —
//! which also counts the device's own hop to the gateway and the broker's
//! hop to the subscriber.
//!
//! Run: `cargo bench --bench alert_latency` (release). Needs Mosquitto
//! (`apt-get install mosquitto`; `.ci/run` installs it).

#[path = "../tests/common/mod.rs"]
mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::deliver::SinkFilter;
use vitalgate::deliver::mqtt::MqttSinkConfig;

const PATIENTS: usize = 250;
/// Publisher connections (each serves PATIENTS / CONNECTIONS devices).
const CONNECTIONS: usize = 10;
const ROUNDS: usize = 1_400;
const ROUNDS_PER_SECOND: f64 = 20.0;
const EPISODE_EVERY: usize = 200;
const EPISODE_ROUNDS: usize = 40;
/// Device time of round 0, seconds: the bench's start, so devices do not
/// look offline (their measurement time then runs ahead of the clock).
static BASE: std::sync::LazyLock<i64> =
    std::sync::LazyLock::new(|| vitalgate_devices::Timestamp::now().millis() / 1000);

fn low(p: usize, round: usize) -> bool {
    let offset = 40 + (p * 13) % 150;
    round < ROUNDS && round >= offset && (round - offset) % EPISODE_EVERY < EPISODE_ROUNDS
}

fn payload(p: usize, round: usize) -> Vec<u8> {
    let spo2 = if low(p, round) {
        80 + (round % 2)
    } else {
        96 + (round % 3)
    };
    format!(
        r#"[{{"bn":"urn:dev:vitalgate:ox-{p}:","bt":{},"n":"spo2","u":"%","v":{spo2}}},{{"n":"heartRate","u":"beat/min","v":{}}}]"#,
        *BASE + round as i64,
        68 + (round + p) % 7
    )
    .into_bytes()
}

fn main() {
    let runtime = common::bench_runtime("error");
    runtime.block_on(run());
}

async fn run() {
    let Some(broker) = common::mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let devices = (0..PATIENTS)
        .map(|p| {
            common::device(
                &format!("ox-{p}"),
                &format!("patient-{p}"),
                "senml-wearable.toml",
                None,
            )
        })
        .collect();
    let mut config = common::config(devices, broker.port, "unused");
    let mut sink_broker = config.mqtt.take().unwrap();
    sink_broker.client_id = "bench-gateway-alerts".into();
    config.mqtt_server = Some(([127, 0, 0, 1], 0).into());
    config.chain = common::ledger_chain(dir.path());
    config.alerts.gateway_id = Some("bench".into());
    config.alerts.outbox = Some(dir.path().join("alerts"));
    config.alerts.mqtt = Some(MqttSinkConfig {
        broker: sink_broker,
        topic_prefix: "vitalgate".into(),
        filter: SinkFilter::default(),
    });
    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, ledger, cancel.clone()).unwrap();
    let port = gateway.mqtt_server.unwrap().port();

    // When each (round, patient) sample was handed to its publisher, ns
    // since `start`.
    let start = Instant::now();
    let sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..ROUNDS * PATIENTS).map(|_| AtomicU64::new(0)).collect());

    // The hospital's side: a subscriber timing each alert's arrival.
    let mut o = MqttOptions::new("bench-hospital", "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 16);
    let (hospital, mut events) = AsyncClient::new(o, 100);
    hospital
        .subscribe("vitalgate/bench/alerts/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let latencies = {
        let sent = Arc::clone(&sent);
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while let Ok(Ok(e)) = tokio::time::timeout(Duration::from_secs(20), events.poll()).await
            {
                let Event::Incoming(Packet::Publish(p)) = e else {
                    continue;
                };
                let arrived = start.elapsed().as_nanos() as u64;
                let v: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                let first = matches!(v["event"].as_str(), Some("raised" | "reopened"));
                if !first || v["alert"]["kind"] != "sustained_hypoxaemia" {
                    continue;
                }
                let patient: usize = v["alert"]["patient"].as_str().unwrap()["patient-".len()..]
                    .parse()
                    .unwrap();
                let last = v["evidence"].as_array().unwrap().last().unwrap();
                let t = vitalgate_devices::Timestamp::parse_rfc3339(last["time"].as_str().unwrap())
                    .unwrap();
                let round = (t.millis() / 1000 - *BASE) as usize;
                let at = sent[round * PATIENTS + patient].load(Ordering::Relaxed);
                latencies.push(Duration::from_nanos(arrived.saturating_sub(at)));
            }
            latencies
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The devices: CONNECTIONS publishers, paced round by round.
    let mut publishers = Vec::new();
    for c in 0..CONNECTIONS {
        let mut o = MqttOptions::new(format!("bench-devices-{c}"), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30)).set_inflight(1000);
        let (client, mut eventloop) = AsyncClient::new(o, 4000);
        tokio::spawn(async move {
            loop {
                if let Err(e) = eventloop.poll().await {
                    eprintln!("device connection {c}: {e}");
                    break;
                }
            }
        });
        let sent = Arc::clone(&sent);
        publishers.push(tokio::spawn(async move {
            for round in 0..ROUNDS {
                let due = start + Duration::from_secs_f64(round as f64 / ROUNDS_PER_SECOND);
                tokio::time::sleep_until(due.into()).await;
                for p in (c..PATIENTS).step_by(CONNECTIONS) {
                    sent[round * PATIENTS + p]
                        .store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    client
                        .publish(
                            format!("vitalgate/ox-{p}/senml"),
                            QoS::AtLeastOnce,
                            false,
                            payload(p, round),
                        )
                        .await
                        .unwrap();
                }
            }
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let mut store = gateway.store.clone();
    let total = (ROUNDS * PATIENTS * 2) as u64;
    common::wait_for(&mut store, 120, "every reading stored", |s| {
        s.stored >= total
    })
    .await;
    let mut latencies = latencies.await.unwrap();
    cancel.cancel();
    gateway.join().await;

    latencies.sort();
    // Episodes whose 31st low sample was sent.
    let expected: usize = (0..PATIENTS)
        .map(|p| {
            (0..ROUNDS)
                .filter(|&r| low(p, r) && !low(p, r.wrapping_sub(1)) && r + 30 < ROUNDS)
                .count()
        })
        .sum();
    let q = |f: f64| latencies[((latencies.len() as f64 * f) as usize).min(latencies.len() - 1)];
    println!(
        "alert latency: {} alerts (of {expected} episodes) while ingesting {:.0} readings/s ({total} readings in {secs:.1} s, {PATIENTS} devices)",
        latencies.len(),
        total as f64 / secs,
    );
    println!(
        "reading published → alert received from the broker: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        q(0.50).as_secs_f64() * 1e3,
        q(0.90).as_secs_f64() * 1e3,
        q(0.99).as_secs_f64() * 1e3,
        latencies.last().unwrap().as_secs_f64() * 1e3,
    );
}
