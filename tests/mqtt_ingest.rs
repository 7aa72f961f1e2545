//! MQTT ingest end to end through the gateway's own MQTT server: real
//! clients (rumqttc, and raw MQTT 3.1.1 packets where a test needs to say
//! exactly what goes on the wire) publishing to the real pipeline.

mod common;

use bytes::BytesMut;
use rumqttc::AsyncClient;
use rumqttc::mqttbytes::v4::{Connect, Packet, PubRel, Publish, Subscribe};
use rumqttc::mqttbytes::{self, QoS};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use vitalgate::store::{ReadingStore, VolatileStore};
use vitalgate::{Config, Gateway};
use vitalgate_devices::{Reject, Vital};

/// A QoS 1 publisher that counts the PUBACKs it gets.
async fn publisher(
    addr: SocketAddr,
    id: &str,
    clean: bool,
) -> (AsyncClient, tokio::sync::watch::Receiver<u64>) {
    common::publisher::counting(addr.port(), id, clean).await
}

/// A configuration serving the wearables on `port` (0: any free port).
fn serving(port: u16) -> Config {
    let mut config = common::config(
        vec![
            common::device("wear-1", "patient-1", "senml-wearable.toml", None),
            common::device("bp-1", "patient-1", "openmhealth-wearable.toml", None),
        ],
        1,
        "unused",
    );
    config.mqtt = None;
    config.mqtt_server = Some(([127, 0, 0, 1], port).into());
    config
}

fn start(
    config: &Config,
    store: impl ReadingStore + 'static,
) -> (Gateway, SocketAddr, CancellationToken) {
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(config, store, cancel.clone()).unwrap();
    let addr = gateway.mqtt_server.expect("the server is listening");
    (gateway, addr, cancel)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_messages_are_counted_by_reason_and_every_message_is_acknowledged() {
    let (gateway, addr, cancel) = start(&serving(0), VolatileStore);
    let mut ingest = gateway.ingest.clone();
    let mut store = gateway.store.clone();

    let (client, mut acks) = publisher(addr, "test-publisher", true).await;
    let t = 1_763_708_462.0_f64;
    let good = format!(
        r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{t},"n":"spo2","u":"%","v":97}},{{"n":"heartRate","u":"beat/min","v":72}}]"#
    );
    let bp = r#"{"header":{"id":"a1","creation_date_time":"2025-11-21T07:01:02Z","schema_id":{"namespace":"omh","name":"blood-pressure","version":"3.1"}},"body":{"systolic_blood_pressure":{"value":124,"unit":"mmHg"},"diastolic_blood_pressure":{"value":82,"unit":"mmHg"},"effective_time_frame":{"date_time":"2025-11-21T07:01:02Z"}}}"#.to_owned();
    let impossible = format!(
        r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"spo2","u":"%","v":127}}]"#,
        t + 1.0
    );
    let messages: Vec<(&str, Vec<u8>)> = vec![
        ("vitalgate/wear-1/senml", good.clone().into_bytes()),
        ("vitalgate/bp-1/omh", bp.into_bytes()),
        // the same message again: a replay
        ("vitalgate/wear-1/senml", good.into_bytes()),
        // malformed JSON
        (
            "vitalgate/wear-1/senml",
            b"[{\"n\":\"spo2\",\"v\":".to_vec(),
        ),
        // a device nobody bound
        (
            "vitalgate/stranger/senml",
            b"[{\"n\":\"spo2\",\"u\":\"%\",\"v\":97}]".to_vec(),
        ),
        // a bound device on another model's topic
        ("vitalgate/wear-1/omh", b"{}".to_vec()),
        // larger than the profile allows
        ("vitalgate/wear-1/senml", vec![b' '; 70 * 1024]),
        // physiologically impossible
        ("vitalgate/wear-1/senml", impossible.into_bytes()),
    ];
    let n = messages.len() as u64;
    for (topic, payload) in messages {
        client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    let snap = common::wait_for(&mut ingest, 15, "every message counted", |s| {
        s.received >= 7 && s.rejected_total() >= 4
    })
    .await;
    let rejected = |r: Reject| snap.rejected.get(&r).copied().unwrap_or(0);
    assert_eq!(rejected(Reject::Malformed), 1, "{snap:#?}");
    assert_eq!(rejected(Reject::UnknownDevice), 1, "{snap:#?}");
    assert_eq!(rejected(Reject::UnknownTopic), 1, "{snap:#?}");
    assert_eq!(rejected(Reject::TooLarge), 1, "{snap:#?}");
    assert_eq!(snap.invalid, 1, "{snap:#?}");
    let wear = &snap.devices["wear-1"];
    assert_eq!(wear.latest[&Vital::Spo2].value, 97.0);
    assert_eq!(wear.latest[&Vital::HeartRate].value, 72.0);
    assert_eq!(snap.devices["bp-1"].latest[&Vital::SystolicBp].value, 124.0);

    // Stored: the 2 + 2 good readings and the flagged impossible one; the
    // replayed message's 2 readings are recognised as stored already.
    let stored = common::wait_for(&mut store, 10, "readings stored", |s| s.stored == 5).await;
    assert_eq!(stored.duplicates, 2, "{stored:#?}");
    assert_eq!(stored.duplicates_by_device["wear-1"], 2, "{stored:#?}");
    // Every message is acknowledged, good or bad: a bad one must not come
    // back forever.
    common::wait_for(&mut acks, 10, "the PUBACKs", |a| *a == n).await;
    cancel.cancel();
    gateway.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_storage_refused_is_not_acknowledged_and_the_device_sends_it_again_after_restart()
{
    let (gateway, addr, cancel) = start(&serving(0), common::FullDisk);
    let mut store = gateway.store.clone();
    // A persistent session: rumqttc keeps what was not acknowledged and
    // sends it again when it reconnects.
    let (client, acks) = publisher(addr, "test-publisher-2", false).await;
    let msg = r#"[{"bn":"urn:dev:vitalgate:wear-1:","bt":1763708462,"n":"spo2","u":"%","v":96}]"#;
    client
        .publish(
            "vitalgate/wear-1/senml",
            rumqttc::QoS::AtLeastOnce,
            false,
            msg,
        )
        .await
        .unwrap();
    common::wait_for(&mut store, 10, "the refused commit", |s| s.failures >= 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(*acks.borrow(), 0, "a refused message is not acknowledged");
    cancel.cancel();
    gateway.join().await;

    // The gateway comes back on the same port with working storage.
    let (gateway, _, cancel) = start(&serving(addr.port()), VolatileStore);
    let mut store = gateway.store.clone();
    let s = common::wait_for(&mut store, 15, "the resent reading stored", |s| {
        s.stored >= 1
    })
    .await;
    assert_eq!(s.stored, 1);
    let mut acks = acks;
    common::wait_for(&mut acks, 10, "its PUBACK", |a| *a == 1).await;
    cancel.cancel();
    gateway.join().await;
}

/// A raw MQTT 3.1.1 connection, to say exactly what goes on the wire.
struct Raw {
    stream: TcpStream,
    buf: BytesMut,
}

impl Raw {
    async fn open(addr: SocketAddr) -> Raw {
        Raw {
            stream: TcpStream::connect(addr).await.unwrap(),
            buf: BytesMut::new(),
        }
    }

    async fn connect(addr: SocketAddr, id: &str) -> Raw {
        let mut raw = Raw::open(addr).await;
        let mut c = Connect::new(id);
        c.clean_session = false;
        raw.send(Packet::Connect(c)).await;
        match raw.recv().await {
            Some(Packet::ConnAck(ack)) => {
                assert_eq!(ack.code, mqttbytes::v4::ConnectReturnCode::Success);
                assert!(ack.session_present);
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
        raw
    }

    async fn send(&mut self, p: Packet) {
        let mut out = BytesMut::new();
        p.write(&mut out, usize::MAX).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next packet, or None once the server closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        let read = common::publisher::read_packet(&mut self.stream, &mut self.buf);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("an answer within 10 s")
            .unwrap_or_else(|e| panic!("the server sent a malformed packet: {e}"))
    }
}

fn publish(topic: &str, qos: QoS, pkid: u16, payload: &str) -> Packet {
    let mut p = Publish::new(topic, qos, payload.as_bytes().to_vec());
    p.pkid = pkid;
    Packet::Publish(p)
}

fn spo2(t: u64, v: u32) -> String {
    format!(r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{t},"n":"spo2","u":"%","v":{v}}}]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_speaks_mqtt_3_1_1_to_publishers_and_refuses_what_it_does_not_do() {
    let (gateway, addr, cancel) = start(&serving(0), VolatileStore);
    let mut ingest = gateway.ingest.clone();
    let mut store = gateway.store.clone();
    let topic = "vitalgate/wear-1/senml";

    // QoS 0 is stored and not answered; QoS 1 gets its PUBACK; QoS 2 its
    // PUBREC, and a resend before PUBREL is not stored twice.
    let mut c = Raw::connect(addr, "raw-1").await;
    c.send(publish(topic, QoS::AtMostOnce, 0, &spo2(1_763_708_000, 95)))
        .await;
    c.send(publish(
        topic,
        QoS::AtLeastOnce,
        7,
        &spo2(1_763_708_001, 96),
    ))
    .await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 7));
    c.send(publish(
        topic,
        QoS::ExactlyOnce,
        8,
        &spo2(1_763_708_002, 97),
    ))
    .await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(a)) if a.pkid == 8));
    let mut again = publish(topic, QoS::ExactlyOnce, 8, &spo2(1_763_708_002, 97));
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    c.send(again).await;
    assert!(matches!(c.recv().await, Some(Packet::PubRec(a)) if a.pkid == 8));
    c.send(Packet::PubRel(PubRel::new(8))).await;
    assert!(matches!(c.recv().await, Some(Packet::PubComp(a)) if a.pkid == 8));
    c.send(Packet::PingReq).await;
    assert_eq!(c.recv().await, Some(Packet::PingResp));
    // Not a broker: a subscription is refused with 0x80, per filter.
    c.send(Packet::Subscribe(Subscribe::new(
        "vitalgate/#",
        QoS::AtLeastOnce,
    )))
    .await;
    match c.recv().await {
        Some(Packet::SubAck(ack)) => assert_eq!(
            ack.return_codes,
            vec![mqttbytes::v4::SubscribeReasonCode::Failure]
        ),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    common::wait_for(&mut store, 10, "three readings stored", |s| s.stored == 3).await;

    // The same client id connecting again takes the session over: the
    // old connection is closed (MQTT-3.1.4-2).
    let mut taken_over = Raw::connect(addr, "raw-1").await;
    assert_eq!(c.recv().await, None, "the old connection is closed");
    taken_over.send(Packet::Disconnect).await;

    // A publish to a wildcard is a protocol violation: closed, counted.
    let mut c = Raw::connect(addr, "raw-2").await;
    c.send(publish("vitalgate/+/senml", QoS::AtLeastOnce, 1, "{}"))
        .await;
    assert_eq!(c.recv().await, None);

    // MQTT 5 is refused with "unacceptable protocol version" (0x01).
    let mut c = Raw::open(addr).await;
    c.send_bytes(b"\x10\x11\x00\x04MQTT\x05\x02\x00\x0a\x00\x00\x04mqt5")
        .await;
    match c.recv().await {
        Some(Packet::ConnAck(ack)) => assert_eq!(
            ack.code,
            mqttbytes::v4::ConnectReturnCode::RefusedProtocolVersion
        ),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_eq!(c.recv().await, None);

    // Anything but CONNECT first (here a PUBACK): closed, counted.
    let mut c = Raw::open(addr).await;
    c.send_bytes(b"\x40\x02\x00\x01").await;
    assert_eq!(c.recv().await, None);

    // A packet announcing more than the limit is refused from its header,
    // before its body is read: closed, counted as too large.
    let mut c = Raw::connect(addr, "raw-3").await;
    c.send_bytes(b"\x32\xff\xff\xff\x7f").await;
    assert_eq!(c.recv().await, None);

    let snap = common::wait_for(&mut ingest, 10, "the rejections counted", |s| {
        s.rejected.get(&Reject::Malformed).copied().unwrap_or(0) >= 3
            && s.rejected.get(&Reject::TooLarge).copied().unwrap_or(0) >= 1
    })
    .await;
    assert_eq!(snap.rejected[&Reject::Malformed], 3, "{snap:#?}");
    assert_eq!(snap.rejected[&Reject::TooLarge], 1, "{snap:#?}");

    // After all that, the server still serves.
    let mut c = Raw::connect(addr, "raw-4").await;
    c.send(publish(
        topic,
        QoS::AtLeastOnce,
        1,
        &spo2(1_763_708_003, 98),
    ))
    .await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 1));
    common::wait_for(&mut store, 10, "the fourth reading", |s| s.stored == 4).await;
    cancel.cancel();
    gateway.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_already_taken_fails_the_start_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let e = Gateway::start(&serving(port), VolatileStore, CancellationToken::new())
        .err()
        .expect("the start fails");
    let message = e.to_string();
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(message.contains("mqtt_server.listen"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_a_resent_message_is_stored_once_and_a_late_fresh_one_is_kept() {
    // A device whose PUBACK was lost in a crash sends the message again,
    // marked DUP (MQTT-3.3.1-1); the ledger's watermarks recognise it. A
    // message that is not a resend is kept even when its data is older.
    let dir = tempfile::tempdir().unwrap();
    let mut config = serving(0);
    config.chain = common::ledger_chain(dir.path());
    let topic = "vitalgate/wear-1/senml";
    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let (gateway, addr, cancel) = start(&config, ledger);
    let mut c = Raw::connect(addr, "wear-1").await;
    c.send(publish(
        topic,
        QoS::AtLeastOnce,
        1,
        &spo2(1_763_708_100, 95),
    ))
    .await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 1));
    cancel.cancel();
    gateway.join().await;

    let ledger = vitalgate::store::open_ledger(&config.chain).unwrap();
    let (gateway, addr, cancel) = start(&config, ledger);
    let mut store = gateway.store.clone();
    let mut c = Raw::connect(addr, "wear-1").await;
    let mut resent = publish(topic, QoS::AtLeastOnce, 1, &spo2(1_763_708_100, 95));
    if let Packet::Publish(p) = &mut resent {
        p.dup = true;
    }
    c.send(resent).await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 1));
    c.send(publish(
        topic,
        QoS::AtLeastOnce,
        2,
        &spo2(1_763_708_040, 94),
    ))
    .await;
    assert!(matches!(c.recv().await, Some(Packet::PubAck(a)) if a.pkid == 2));
    let s = common::wait_for(&mut store, 10, "both judged", |s| {
        s.stored + s.duplicates >= 2
    })
    .await;
    assert_eq!((s.stored, s.duplicates), (1, 1), "{s:#?}");
    cancel.cancel();
    gateway.join().await;
}
