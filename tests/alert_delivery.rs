//! Alerts delivered end to end through the real gateway: readings
//! published by a device to the gateway's MQTT server, detection, the
//! alert stage and its outbox, and real receivers — a local HTTP server
//! standing for the hospital's webhook (down, then up), a Mosquitto broker
//! standing for the hospital's MQTT broker (acknowledgements coming back
//! over it), and the gateway's own HTTP API for acknowledgements.

mod common;

use axum::body::Bytes;
use axum::http::HeaderMap;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::config::Config;
use vitalgate::deliver::SinkFilter;
use vitalgate::deliver::mqtt::MqttSinkConfig;
use vitalgate::deliver::signature::Secret;
use vitalgate::deliver::webhook::WebhookConfig;
use vitalgate::store::VolatileStore;
use vitalgate_devices::Timestamp;

const SECRET: &[u8] = b"the hospital's shared secret, 40 bytes!!";

fn write_secret(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("hospital.secret");
    common::write_secret(&path, SECRET);
    path
}

/// A gateway serving one SenML wearable on its own MQTT server, with its
/// outbox and keys in `dir`.
fn gateway_config(dir: &Path) -> Config {
    let mut config = common::config(
        vec![common::device(
            "wear-1",
            "patient-1",
            "senml-wearable.toml",
            None,
        )],
        1,
        "unused",
    );
    config.mqtt = None;
    config.mqtt_server = Some(([127, 0, 0, 1], 0).into());
    config.chain = common::ledger_chain(dir);
    config.alerts.outbox = Some(dir.join("alerts"));
    config.alerts.ack_secret = Some(write_secret(dir));
    config
}

/// `secs` one-second SenML samples of SpO2 80 % ending now: the
/// hypoxaemia rule (< 85 % for 30 s) holds once 31 have arrived.
async fn desaturate(gateway: &Gateway, secs: i64) {
    common::publisher::senml_wearable(gateway.mqtt_server.unwrap().port(), secs, 80.0).await;
}

/// The alert records of the ledger in `dir`, read back with the care
/// team's key by the real `vitalgate open --alerts`.
fn audit_trail(dir: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vitalgate"))
        .args(["open", "--alerts", "--ledger"])
        .arg(dir.join("ledger"))
        .arg("--identity")
        .arg(dir.join("recipient.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert"].clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_reaches_a_webhook_that_was_down_when_it_was_raised() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let mut config = gateway_config(dir.path());
    config.alerts.webhooks.push(WebhookConfig {
        name: "hospital".into(),
        url: format!("http://127.0.0.1:{port}/alerts").parse().unwrap(),
        secret: dir.path().join("hospital.secret"),
        ca_file: None,
        timeout: Duration::from_secs(5),
        filter: SinkFilter::default(),
    });
    let cancel = CancellationToken::new();
    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let gateway = Gateway::start(&config, ledger, cancel.clone()).unwrap();
    let mut alerts = gateway.alerts.clone();

    // Nobody listens on the webhook's port: the alert waits, retried.
    desaturate(&gateway, 40).await;
    let snap = common::wait_for(&mut alerts, 20, "failed webhook attempts", |s| {
        s.sinks.first().is_some_and(|k| k.failures >= 2) && s.outbox >= 1
    })
    .await;
    assert!(
        snap.open
            .iter()
            .any(|a| a.kind.name() == "sustained_hypoxaemia")
    );

    // The receiver comes up: the waiting alert arrives, signed, once.
    let received: common::webhook::Received = Arc::default();
    let stop = CancellationToken::new();
    let server = tokio::spawn(common::webhook::receiver(
        port,
        Secret::new(SECRET.to_vec()),
        Arc::clone(&received),
        stop.clone(),
    ));
    common::wait_for(&mut alerts, 90, "delivery", |s| s.outbox == 0).await;
    let got = received.lock().unwrap().clone();
    let raised: Vec<&(HeaderMap, Bytes)> = got
        .iter()
        .filter(|(_, b)| {
            let v: serde_json::Value = serde_json::from_slice(b).unwrap();
            v["event"] == "raised" && v["alert"]["kind"] == "sustained_hypoxaemia"
        })
        .collect();
    assert_eq!(raised.len(), 1, "{got:?}");
    let (headers, body) = raised[0];
    let v: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(headers["webhook-id"], v["message_id"].as_str().unwrap());
    assert_eq!(
        headers["idempotency-key"],
        v["message_id"].as_str().unwrap()
    );
    assert_eq!(v["alert"]["patient"], "patient-1");
    assert_eq!(v["alert"]["severity"], "high");
    assert_eq!(v["evidence"][0]["vital"], "spo2");
    assert_eq!(
        v["fhir"]["entry"][0]["resource"]["resourceType"],
        "DetectedIssue"
    );
    assert_eq!(v["fhir"]["entry"][0]["resource"]["severity"], "high");

    cancel.cancel();
    gateway.join().await;
    stop.cancel();
    server.await.unwrap();

    // The audit trail in the ledger: the very message the hospital
    // received, and when it got it.
    let trail = audit_trail(dir.path());
    let message_id = v["message_id"].as_str().unwrap();
    assert!(trail.contains(&v), "{trail:#?}");
    assert!(
        trail
            .iter()
            .any(|m| m["format"] == "vitalgate/alert-delivery/1"
                && m["message_id"] == message_id
                && m["sink"] == "hospital"),
        "{trail:#?}"
    );
}

/// Everything the hospital's dashboard received, in order.
struct Inbox {
    rx: mpsc::UnboundedReceiver<(String, serde_json::Value)>,
    seen: Vec<(String, serde_json::Value)>,
}

impl Inbox {
    /// The first message so far (or to come) that `pred` accepts.
    async fn find(
        &mut self,
        what: &str,
        pred: impl Fn(&str, &serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut checked = 0;
        loop {
            if let Some((_, v)) = self.seen[checked..].iter().find(|(t, v)| pred(t, v)) {
                return v.clone();
            }
            checked = self.seen.len();
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(m)) => self.seen.push(m),
                _ => panic!("timed out waiting for {what}; received: {:#?}", self.seen),
            }
        }
    }
}

/// Subscribe to everything the gateway publishes under its id.
async fn hospital_client(port: u16) -> (AsyncClient, Inbox) {
    let mut o = MqttOptions::new("hospital-dashboard", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(256 * 1024, 64 * 1024);
    let (client, mut eventloop) = AsyncClient::new(o, 16);
    client
        .subscribe("vitalgate/test-gateway/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                        serde_json::Value::String(String::from_utf8_lossy(&p.payload).into())
                    });
                    if tx.send((p.topic, v)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (
        client,
        Inbox {
            rx,
            seen: Vec::new(),
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledgement_round_trips_over_the_hospital_s_broker() {
    let Some(broker) = common::mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = gateway_config(dir.path());
    let mut broker_config = common::config(Vec::new(), broker.port, "vitalgate-alerts")
        .mqtt
        .unwrap();
    broker_config.client_id = "test-gateway-alerts".into();
    config.alerts.mqtt = Some(MqttSinkConfig {
        broker: broker_config,
        topic_prefix: "vitalgate".into(),
        filter: SinkFilter::default(),
    });
    let (client, mut inbox) = hospital_client(broker.port).await;
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    inbox
        .find("the gateway online", |t, v| {
            t == "vitalgate/test-gateway/online" && v == true
        })
        .await;

    desaturate(&gateway, 40).await;
    let raised = inbox
        .find("the raised alert", |t, v| {
            t == "vitalgate/test-gateway/alerts/patient-1"
                && v["event"] == "raised"
                && v["alert"]["kind"] == "sustained_hypoxaemia"
        })
        .await;
    let id = raised["alert"]["id"].as_str().unwrap().to_owned();
    let status = inbox
        .find("the patient's status", |t, v| {
            t == "vitalgate/test-gateway/status/patient-1"
                && v["open_alerts"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x["id"] == id.as_str()))
        })
        .await;
    assert_eq!(status["highest_severity"], "high");

    // The clinician acknowledges, signed with the shared secret.
    let ack = vitalgate::alert::ack::sign(
        &Secret::new(SECRET.to_vec()),
        &id,
        "dr-okafor",
        Timestamp::now().millis() / 1000,
    );
    client
        .publish("vitalgate/test-gateway/ack", QoS::AtLeastOnce, false, ack)
        .await
        .unwrap();
    let acked = inbox
        .find("the acknowledged event", |t, v| {
            t == "vitalgate/test-gateway/alerts/patient-1"
                && v["event"] == "acknowledged"
                && v["alert"]["id"] == id.as_str()
        })
        .await;
    assert_eq!(acked["alert"]["acknowledged_by"], "dr-okafor");
    assert_eq!(
        acked["fhir"]["entry"][0]["resource"]["mitigation"][0]["author"]["display"],
        "dr-okafor"
    );
    inbox
        .find("the status showing it acknowledged", |t, v| {
            t == "vitalgate/test-gateway/status/patient-1"
                && v["open_alerts"].as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x["id"] == id.as_str() && x["state"] == "acknowledged")
                })
        })
        .await;
    let mut snapshots = gateway.alerts.clone();
    common::wait_for(&mut snapshots, 10, "the ack counted", |s| s.acks == 1).await;

    cancel.cancel();
    gateway.join().await;
    // A clean stop says goodbye on the retained online flag.
    inbox
        .find("offline", |t, v| {
            t == "vitalgate/test-gateway/online" && v == false
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_over_http_are_checked_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = gateway_config(dir.path());
    config.http = Some(([127, 0, 0, 1], 0).into());
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    let url = format!("http://{}/alerts/ack", gateway.http.unwrap());
    let mut alerts = gateway.alerts.clone();
    desaturate(&gateway, 40).await;
    let snap = common::wait_for(&mut alerts, 20, "the alert", |s| {
        s.open
            .iter()
            .any(|a| a.kind.name() == "sustained_hypoxaemia")
    })
    .await;
    let id = snap
        .open
        .iter()
        .find(|a| a.kind.name() == "sustained_hypoxaemia")
        .unwrap()
        .id
        .clone();
    let now = Timestamp::now().millis() / 1000;
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| http.post(&url).body(body).send();

    let health = http
        .get(format!("http://{}/healthz", gateway.http.unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let forged = vitalgate::alert::ack::sign(
        &Secret::new(b"guessed secret, also 32 bytes!!!".to_vec()),
        &id,
        "mallory",
        now,
    );
    assert_eq!(post(forged).await.unwrap().status(), 401);
    assert_eq!(post(b"not json".to_vec()).await.unwrap().status(), 400);
    let secret = Secret::new(SECRET.to_vec());
    let unknown = vitalgate::alert::ack::sign(&secret, "news2/nobody/-/0", "nurse-7", now);
    assert_eq!(post(unknown).await.unwrap().status(), 404);

    // The good one as a carer would send it: `vitalgate ack`.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_vitalgate"))
        .args(["ack", "--url", &format!("http://{}", gateway.http.unwrap())])
        .arg("--secret")
        .arg(dir.path().join("hospital.secret"))
        .args(["--by", "nurse-7", &id])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["alert"], id.as_str());
    assert_eq!(body["state"], "acknowledged");
    let again = vitalgate::alert::ack::sign(&secret, &id, "nurse-8", now);
    let r = post(again).await.unwrap();
    assert_eq!(r.status(), 409);
    let body: serde_json::Value = serde_json::from_slice(&r.bytes().await.unwrap()).unwrap();
    assert_eq!(body["by"], "nurse-7");

    let snap = common::wait_for(&mut alerts, 10, "one ack, four refusals", |s| {
        s.acks == 1 && s.acks_refused.values().sum::<u64>() == 4
    })
    .await;
    assert_eq!(snap.acks_refused.get("bad_signature"), Some(&1));
    cancel.cancel();
    gateway.join().await;
}
