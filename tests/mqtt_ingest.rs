//! MQTT ingest end to end through the embedded broker: a QoS 1 publisher
//! on localhost, the gateway subscribing with manual acknowledgements.

mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::store::VolatileStore;
use vitalgate_devices::{Reject, Vital};

/// A QoS 1 publisher that counts the PUBACKs it gets.
async fn publisher(port: u16, id: &str) -> (AsyncClient, tokio::sync::watch::Receiver<u64>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked += 1;
                    tx.send_replace(acked);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_and_bad_messages_are_counted_by_reason_and_every_message_is_acknowledged() {
    let port = vitalgate::broker::free_port().unwrap();
    let mut config = common::config(
        vec![
            common::device("wear-1", "patient-1", "senml-wearable.toml", None),
            common::device("bp-1", "patient-1", "openmhealth-wearable.toml", None),
        ],
        port,
        "gateway-under-test",
    );
    config.embedded_broker = Some(([127, 0, 0, 1], port).into());
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    let mut ingest = gateway.ingest.clone();
    let mut store = gateway.store.clone();
    // The gateway subscribes once connected; give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (client, mut acks) = publisher(port, "test-publisher").await;
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
            .publish(topic, QoS::AtLeastOnce, false, payload)
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
    common::wait_for(&mut acks, 10, "the broker's PUBACKs", |a| *a == n).await;
    cancel.cancel();
    gateway.join().await;

    // The gateway acknowledged every message, good or bad (a bad one must
    // not come back forever): a restart under the same persistent session
    // gets nothing again.
    let cancel = CancellationToken::new();
    config.embedded_broker = None;
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let again = gateway.ingest.borrow().clone();
    assert_eq!(
        (again.received, again.rejected_total()),
        (0, 0),
        "{again:#?}"
    );
    cancel.cancel();
    gateway.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_storage_refused_is_not_acknowledged_and_is_delivered_again_after_restart() {
    let port = vitalgate::broker::free_port().unwrap();
    let mut config = common::config(
        vec![common::device(
            "wear-1",
            "patient-1",
            "senml-wearable.toml",
            None,
        )],
        port,
        "gateway-refusing",
    );
    config.embedded_broker = Some(([127, 0, 0, 1], port).into());
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, common::FullDisk, cancel.clone()).unwrap();
    let mut store = gateway.store.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let (client, _) = publisher(port, "test-publisher-2").await;
    let msg = r#"[{"bn":"urn:dev:vitalgate:wear-1:","bt":1763708462,"n":"spo2","u":"%","v":96}]"#;
    client
        .publish("vitalgate/wear-1/senml", QoS::AtLeastOnce, false, msg)
        .await
        .unwrap();
    common::wait_for(&mut store, 10, "the refused commit", |s| s.failures >= 1).await;
    cancel.cancel();
    gateway.join().await;

    let cancel = CancellationToken::new();
    config.embedded_broker = None;
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    let mut store = gateway.store.clone();
    let s = common::wait_for(&mut store, 15, "the redelivered reading stored", |s| {
        s.stored >= 1
    })
    .await;
    assert_eq!(s.stored, 1);
    cancel.cancel();
    gateway.join().await;
}
