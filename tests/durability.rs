//! Durability: a message the gateway acknowledged is in the ledger, once,
//! whatever instant the daemon is killed at.
//!
//! A QoS 1 publisher streams timestamped readings while the real
//! `vitalgate run` is killed with SIGKILL again and again, at pseudo-random
//! instants: during start-up, recovery, group commits and seals. Two
//! routes: straight to the gateway's own MQTT server (the publisher keeps
//! what was not acknowledged and sends it again, as a device does), and
//! through a Mosquitto broker of the test's own (which holds what the
//! gateway did not acknowledge and delivers it again). At the end every reading must be
//! in the ledger exactly once, decrypted with the recipient's key, and the
//! ledger must verify.

mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use tokio::sync::watch;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::{BlockHeader, LedgerReader, SealReason, decrypt, verify};

const MESSAGES: u64 = 4000;
const KILLS: u64 = 8;
/// Device time of message 0 (seconds); message i is one second later.
const BASE: u64 = 1_763_708_400;

fn payload(i: u64) -> String {
    format!(
        r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"spo2","u":"/","v":0.97}},{{"n":"heart_rate","u":"beat/min","v":{}}}]"#,
        BASE + i,
        60 + i % 40
    )
}

/// Publish every message with QoS 1 through a broker (rumqttc), paced,
/// returning the indexes the broker acknowledged. `sent` counts the
/// messages sent so far.
async fn publish_through_broker(port: u16, sent: watch::Sender<usize>) -> HashSet<u64> {
    let mut o = MqttOptions::new("durability-publisher", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    o.set_inflight(100);
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    tokio::spawn(async move {
        for i in 0..MESSAGES {
            client
                .publish(
                    "vitalgate/wear-1/senml",
                    QoS::AtLeastOnce,
                    false,
                    payload(i),
                )
                .await
                .unwrap();
            if i % 10 == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
    // Publishes go out in the order they were queued: map each packet id
    // to its message when it is sent, and to "acknowledged" on its PUBACK.
    let mut queued: VecDeque<u64> = (0..MESSAGES).collect();
    let mut in_flight: HashMap<u16, u64> = HashMap::new();
    let mut acked = HashSet::new();
    while (acked.len() as u64) < MESSAGES {
        match eventloop.poll().await.unwrap() {
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                in_flight.insert(pkid, queued.pop_front().unwrap());
                sent.send_modify(|n| *n += 1);
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                acked.insert(in_flight.remove(&ack.pkid).unwrap());
            }
            _ => {}
        }
    }
    acked
}

/// Publish every message straight to the gateway's own MQTT server, as a
/// device does, reconnecting through every kill and resending what was not
/// acknowledged (marked DUP).
async fn publish_to_gateway(port: u16, sent: watch::Sender<usize>) -> HashSet<u64> {
    let messages = (0..MESSAGES)
        .map(|i| common::publisher::Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: payload(i).into_bytes(),
        })
        .collect();
    // Bursts of 50 back to back, so that most kills find messages between
    // arrival and commit: a server that acknowledged on arrival would lose
    // them, and this test would see it.
    let pace = |i: usize| {
        if i % 50 == 0 {
            Duration::from_millis(60)
        } else {
            Duration::ZERO
        }
    };
    let (acked, connections) =
        common::publisher::publish_all(port, "durability-device", messages, 100, pace, sent).await;
    assert!(connections > 1, "the kills did not interrupt the publisher");
    acked.into_iter().map(|i| i as u64).collect()
}

/// Where the test's devices publish.
enum Route {
    /// Straight to the gateway's own MQTT server on this port.
    Gateway(u16),
    /// Through a broker on this port, which the gateway subscribes to.
    Broker(u16),
}

fn write_config(dir: &Path, route: &Route) -> std::path::PathBuf {
    let chain = common::ledger_chain(dir);
    let config = dir.join("vitalgate.toml");
    let mqtt = match route {
        Route::Gateway(port) => format!("[mqtt_server]\nlisten = \"127.0.0.1:{port}\"\n"),
        Route::Broker(port) => format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {port}\nclient_id = \"vitalgate-durability\"\n"
        ),
    };
    std::fs::write(
        &config,
        format!(
            r#"{mqtt}
[chain]
directory = "{ledger}"
identity = "{identity}"
recipients = ["{recipient}"]
seal_readings = 500
seal_interval_secs = 1

[[device]]
id = "wear-1"
patient = "patient-1"
profile = "{profiles}/senml-wearable.toml"
"#,
            ledger = chain.directory.display(),
            identity = chain.identity.display(),
            recipient = chain.recipients[0],
            profiles = common::root().join("device-profiles").display(),
        ),
    )
    .unwrap();
    config
}

fn start_gateway(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_vitalgate"))
        .args(["run", "--config"])
        .arg(config)
        .env("VITALGATE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Stop cleanly (SIGTERM), as systemd does.
fn stop_gateway(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "the gateway failed to stop cleanly: {status}"
    );
}

/// Every stored reading, keyed by (vital, device time), with its count.
fn stored_readings(dir: &Path) -> BTreeMap<(String, i64), u32> {
    let reader = LedgerReader::open(&dir.join("ledger")).unwrap();
    let key = RecipientKey::load(dir.join("recipient.key")).unwrap();
    let mut heights: Vec<u64> = reader.headers().map(|h| h.unwrap().0).collect();
    if reader.open_block().unwrap().is_some() {
        heights.push(heights.last().map_or(0, |h| h + 1));
    }
    let mut seen = BTreeMap::new();
    for h in heights {
        for record in decrypt::decrypt_block(&reader, h, &key).unwrap() {
            for r in record.readings {
                let t = r.device_time.expect("SenML readings carry their time").0;
                *seen.entry((r.vital.to_string(), t)).or_default() += 1;
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_readings_survive_kill_9_at_any_instant_and_are_stored_exactly_once() {
    // The default: devices publish to the gateway itself, which answers
    // each PUBLISH only once its readings are committed.
    let port = common::free_port();
    kill_under_load(Route::Gateway(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_broker_acknowledged_readings_survive_kill_9_and_are_stored_exactly_once() {
    // Devices publish to Mosquitto; the gateway subscribes with manual
    // acknowledgements, and the broker holds what it did not acknowledge.
    let Some(broker) = common::mosquitto::start() else {
        return;
    };
    kill_under_load(Route::Broker(broker.port)).await;
}

/// Kill the real daemon with SIGKILL again and again while a QoS 1
/// publisher streams, then check every acknowledged reading is stored
/// exactly once and the ledger verifies.
async fn kill_under_load(route: Route) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &route);
    let log = dir.path().join("gateway.log");

    // With a broker, the gateway subscribes once so the broker keeps its
    // session; then the publisher starts and the killing begins.
    let mut gateway = start_gateway(&config, &log);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (sent_tx, mut sent) = watch::channel(0usize);
    let publisher = match route {
        Route::Gateway(port) => tokio::spawn(publish_to_gateway(port, sent_tx)),
        Route::Broker(port) => tokio::spawn(publish_through_broker(port, sent_tx)),
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
    for k in 0..KILLS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if k % 2 == 0 {
            // Mid-stream: a few milliseconds after a message went out, so
            // messages are between arrival and commit. A gateway that
            // acknowledged before committing would lose them here.
            let target = (k + 1) as usize * MESSAGES as usize / (KILLS as usize + 1);
            tokio::time::timeout(Duration::from_secs(60), sent.wait_for(|n| *n >= target))
                .await
                .expect("the publisher progresses")
                .unwrap();
            tokio::time::sleep(Duration::from_millis(rng % 10)).await;
        } else {
            // Anywhere: start-up, recovery of the open block, resending,
            // a seal.
            tokio::time::sleep(Duration::from_millis(50 + rng % 700)).await;
        }
        gateway.kill().unwrap();
        gateway.wait().unwrap();
        gateway = start_gateway(&config, &log);
    }
    let acked = publisher.await.unwrap();
    assert_eq!(acked.len() as u64, MESSAGES);

    // Let the last run drain a broker's backlog, stop it cleanly and look;
    // the broker may need a reconnect to hand back the last ones.
    let mut stored = BTreeMap::new();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop_gateway(gateway);
        stored = stored_readings(dir.path());
        if stored.len() as u64 >= 2 * MESSAGES {
            break;
        }
        gateway = start_gateway(&config, &log);
    }
    let gateway_log = std::fs::read_to_string(&log).unwrap();

    for i in &acked {
        let t = ((BASE + i) * 1000) as i64;
        for vital in ["spo2", "heart_rate"] {
            let n = stored.get(&(vital.to_owned(), t)).copied().unwrap_or(0);
            assert_eq!(
                n, 1,
                "message {i} ({vital}) is stored {n} times\n{gateway_log}"
            );
        }
    }
    assert_eq!(
        stored.len() as u64,
        2 * MESSAGES,
        "nothing but the published readings"
    );

    // The ledger verifies, and the kills did leave blocks open that were
    // sealed on restart.
    let reader = LedgerReader::open(&dir.path().join("ledger")).unwrap();
    let identity = IdentityKey::load(dir.path().join("identity.key")).unwrap();
    let summary = verify::verify(&reader, &identity.public()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.readings, 2 * MESSAGES);
    let recovered = reader
        .headers()
        .filter(|h| {
            let (_, signed) = h.as_ref().unwrap();
            BlockHeader::decode(signed).unwrap().1.reason == SealReason::Recovery
        })
        .count();
    assert!(
        recovered > 0,
        "no kill left a block open: the test did not test recovery"
    );
}
