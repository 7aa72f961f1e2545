//! Interoperability with Mosquitto, the broker most homes and hospitals
//! run. The test starts its own Mosquitto on a loopback port; `.ci/run`
//! installs it from Debian's packages. Outside CI, the test is skipped
//! (with a message) when Mosquitto is not installed.

mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, QoS};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::store::VolatileStore;

async fn publish_all(port: u16, messages: Vec<(String, String)>) {
    let mut o = MqttOptions::new("interop-publisher", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let n = messages.len();
    let sender = tokio::spawn(async move {
        for (topic, payload) in messages {
            client
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap();
        }
        client
    });
    let mut acked = 0;
    while acked < n {
        if let Event::Incoming(rumqttc::Packet::PubAck(_)) = eventloop.poll().await.unwrap() {
            acked += 1;
        }
    }
    let _ = sender.await;
}

fn senml(t: f64, spo2: u32) -> String {
    format!(r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{t},"n":"spo2","u":"%","v":{spo2}}}]"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_mosquitto_every_message_is_stored_and_unstored_ones_come_back_after_restart() {
    let Some(broker) = common::mosquitto::start() else {
        return;
    };
    let config = common::config(
        vec![common::device(
            "wear-1",
            "patient-1",
            "senml-wearable.toml",
            None,
        )],
        broker.port,
        "gateway-interop",
    );

    // 1. A gateway whose storage refuses everything: nothing is acked.
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, common::FullDisk, cancel.clone()).unwrap();
    let mut store = gateway.store.clone();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first: Vec<(String, String)> = (0..50)
        .map(|i| {
            (
                "vitalgate/wear-1/senml".to_owned(),
                senml(1_763_708_462.0 + f64::from(i), 90 + i % 8),
            )
        })
        .collect();
    publish_all(broker.port, first).await;
    common::wait_for(&mut store, 10, "refused commits", |s| s.failures >= 1).await;
    cancel.cancel();
    gateway.join().await;

    // 2. While the gateway is down, more messages arrive at the broker.
    let more: Vec<(String, String)> = (50..200)
        .map(|i| {
            (
                "vitalgate/wear-1/senml".to_owned(),
                senml(1_763_708_462.0 + f64::from(i), 90 + i % 8),
            )
        })
        .collect();
    publish_all(broker.port, more).await;

    // 3. Restarted with working storage, the gateway gets all 200: the 50
    //    it never acknowledged and the 150 queued for its session.
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    let mut store = gateway.store.clone();
    let s = common::wait_for(&mut store, 20, "all 200 readings stored", |s| {
        s.stored >= 200
    })
    .await;
    assert_eq!(s.stored, 200);
    cancel.cancel();
    gateway.join().await;
}
