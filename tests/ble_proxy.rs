//! Bluetooth LE wearables through a BLE proxy, end to end: characteristic
//! values relayed over MQTT (JSON and binary) to the gateway's own MQTT
//! server, bound by address, decoded by the GATT decoders and stored.
//!
//! The proxy here is a real MQTT client publishing exactly what an ESP32
//! proxy would (docs/FORMAT.md, "BLE proxy messages"); no Bluetooth radio
//! is involved on this path, so nothing is a stand-in.

mod common;

use rumqttc::{AsyncClient, QoS};
use tokio_util::sync::CancellationToken;
use vitalgate::config::{BleBinding, BleLink, Device};
use vitalgate::store::VolatileStore;
use vitalgate::{Config, Gateway};
use vitalgate_devices::format::ble_gatt;
use vitalgate_devices::gatt::{Address, RelayedValue, Service};
use vitalgate_devices::{Reject, Snapshot, Timestamp, Vital};

const STRAP: &str = "C4:7C:8D:6A:01:02";
const OXIMETER: &str = "F0:5E:ED:00:00:07";
const TOPIC: &str = "vitalgate/ble/esp32-bedroom";

fn ble_device(id: &str, patient: &str, profile: &str, address: &str) -> Device {
    Device {
        ble: Some(BleBinding {
            address: address.parse().unwrap(),
            link: BleLink::Proxy,
        }),
        ..common::device(id, patient, profile, None)
    }
}

fn serving() -> Config {
    let mut config = common::config(
        vec![
            ble_device("strap-1", "patient-1", "ble-heart-rate.toml", STRAP),
            ble_device("ox-1", "patient-1", "ble-pulse-oximeter.toml", OXIMETER),
        ],
        1,
        "unused",
    );
    config.mqtt = None;
    config.mqtt_server = Some(([127, 0, 0, 1], 0).into());
    config
}

/// A proxy's MQTT connection; counts the PUBACKs it gets.
async fn proxy(port: u16) -> (AsyncClient, tokio::sync::watch::Receiver<u64>) {
    common::publisher::counting(port, "esp32-bedroom", true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_values_are_bound_by_address_decoded_and_stored_and_bad_ones_counted() {
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&serving(), VolatileStore, cancel.clone()).unwrap();
    let port = gateway.mqtt_server.expect("the server listens").port();
    let mut ingest = gateway.ingest.clone();
    let mut store = gateway.store.clone();
    let (client, mut acks) = proxy(port).await;

    // What the simulator's oximeter would send, in the binary layout.
    let mut snapshot = Snapshot {
        time: Timestamp::now(),
        ..Snapshot::default()
    };
    snapshot.set(Vital::Spo2, Some(94.0));
    snapshot.set(Vital::PulseRate, Some(88.0));
    snapshot.set(Vital::PerfusionIndex, Some(1.25));
    let [(plx, plx_value)] = ble_gatt::values(Service::PulseOximeter, &snapshot)
        .try_into()
        .unwrap();
    let oximeter: Address = OXIMETER.parse().unwrap();
    let binary = RelayedValue {
        address: oximeter,
        uuid: plx.uuid(),
        value: plx_value,
        time: None,
    }
    .to_binary();

    let messages: Vec<Vec<u8>> = vec![
        // Heart rate 75 with two RR intervals (1024 = 1000 ms, 512 = 500 ms).
        format!(
            r#"{{"address":"{STRAP}","characteristic":"2A37","value":"104B00040002","rssi":-60}}"#
        )
        .into_bytes(),
        binary,
        // A device nobody bound.
        br#"{"address":"11:22:33:44:55:66","characteristic":"2A37","value":"064B"}"#.to_vec(),
        // The strap sending blood pressure: not what its profile says.
        format!(r#"{{"address":"{STRAP}","characteristic":"2A35","value":"00780050005D00"}}"#)
            .into_bytes(),
        // A 16-bit heart rate whose second byte is missing.
        format!(r#"{{"address":"{STRAP}","characteristic":"2A37","value":"014B"}}"#).into_bytes(),
        // Not a relay message at all.
        b"hello".to_vec(),
        // Far larger than any characteristic value.
        vec![b' '; 4096],
    ];
    let n = messages.len() as u64;
    for payload in messages {
        client
            .publish(TOPIC, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
    }

    let snap = common::wait_for(&mut ingest, 15, "every message counted", |s| {
        s.received >= 6 && s.rejected_total() >= 5
    })
    .await;
    let rejected = |r: Reject| snap.rejected.get(&r).copied().unwrap_or(0);
    assert_eq!(rejected(Reject::UnknownDevice), 1, "{snap:#?}");
    assert_eq!(rejected(Reject::Unsupported), 1, "{snap:#?}");
    assert_eq!(rejected(Reject::Malformed), 2, "{snap:#?}");
    assert_eq!(rejected(Reject::TooLarge), 1, "{snap:#?}");
    let strap = &snap.devices["strap-1"];
    assert_eq!(strap.patient.as_ref(), "patient-1");
    assert_eq!(strap.latest[&Vital::HeartRate].value, 75.0);
    assert_eq!(strap.latest[&Vital::RrInterval].value, 500.0);
    let ox = &snap.devices["ox-1"];
    assert_eq!(ox.latest[&Vital::Spo2].value, 94.0);
    assert_eq!(ox.latest[&Vital::PulseRate].value, 88.0);
    assert_eq!(ox.latest[&Vital::PerfusionIndex].value, 1.25);

    // HR + 2 RR + SpO2 + PR + PI.
    common::wait_for(&mut store, 10, "readings stored", |s| s.stored == 6).await;
    // Good or bad, every message is acknowledged: a bad one must not come
    // back forever.
    common::wait_for(&mut acks, 10, "the PUBACKs", |a| *a == n).await;
    cancel.cancel();
    gateway.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_proxy_output_reaches_the_gateway_as_readings() {
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&serving(), VolatileStore, cancel.clone()).unwrap();
    let port = gateway.mqtt_server.expect("the server listens").port();
    let mut ingest = gateway.ingest.clone();

    // The simulator's own path: its BLE proxy encoder and line link.
    let sim_cancel = CancellationToken::new();
    let publisher = vitalsim::transport::mqtt::Publisher::connect(
        "127.0.0.1",
        port,
        "vitalsim",
        sim_cancel.clone(),
    );
    let link = publisher.line_link(TOPIC.to_owned());
    let mut encoder = ble_gatt::proxy_encoder(STRAP.parse().unwrap(), Service::HeartRate);
    for (i, bpm) in [61.0, 62.0, 63.0].into_iter().enumerate() {
        let mut s = Snapshot {
            time: Timestamp::now(),
            seq: i as u64,
            ..Snapshot::default()
        };
        s.set(Vital::HeartRate, Some(bpm));
        s.set(Vital::RrInterval, Some(60_000.0 / bpm));
        let mut out = Vec::new();
        encoder.encode(&s, &mut out);
        link.tx.send(out).await.unwrap();
    }
    let snap = common::wait_for(&mut ingest, 15, "three heart rates", |s| {
        s.devices.get("strap-1").is_some_and(|d| {
            d.latest
                .get(&Vital::HeartRate)
                .is_some_and(|r| r.value == 63.0)
        })
    })
    .await;
    assert_eq!(snap.devices["strap-1"].received, 6, "{snap:#?}");
    assert_eq!(snap.rejected_total(), 0, "{snap:#?}");
    sim_cancel.cancel();
    cancel.cancel();
    gateway.join().await;
}
