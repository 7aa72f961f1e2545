//! A full disk: the gateway stops acknowledging, says so (log line and the
//! storage counters), keeps what it stored, and resumes when space returns
//! — with nothing lost and nothing stored twice.
//!
//! The disk is real: a 4 MiB tmpfs mounted in a private mount namespace
//! (`unshare --user --map-root-user --mount`, no privileges needed), which
//! the test fills and empties while the real `vitalgate run` writes its
//! ledger there. Two routes: devices publishing to the gateway's own MQTT
//! server (the device keeps what was not acknowledged and sends it again),
//! and through the test's own Mosquitto (which holds it).

mod common;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const BASE: u64 = 1_763_708_400;

fn payload(i: u64) -> String {
    format!(
        r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"heart_rate","u":"beat/min","v":{}}}]"#,
        BASE + i,
        60 + i % 40
    )
}

async fn publish(client: &AsyncClient, range: std::ops::Range<u64>) {
    for i in range {
        client
            .publish(
                "vitalgate/wear-1/senml",
                QoS::AtLeastOnce,
                false,
                payload(i),
            )
            .await
            .unwrap();
    }
}

async fn wait_file(path: &Path, secs: u64) {
    for _ in 0..secs * 10 {
        if path.exists() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {}", path.display());
}

/// The gateway said, in its log, that the disk is full and that it stopped
/// acknowledging.
fn assert_says_full(log: &Path) {
    let log = std::fs::read_to_string(log).unwrap();
    assert!(
        log.contains("disk full"),
        "the gateway says the disk is full:\n{log}"
    );
    assert!(
        log.contains("not acknowledging"),
        "and stops acknowledging:\n{log}"
    );
}

fn messages(range: std::ops::Range<u64>) -> Vec<common::publisher::Message> {
    range
        .map(|i| common::publisher::Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: payload(i).into_bytes(),
        })
        .collect()
}

/// `dir/vitalgate.toml`: `sections`, then the ledger on `disk` (sealing
/// every second) and one SenML wearable.
fn small_disk_config(
    dir: &Path,
    disk: &Path,
    chain: &vitalgate::config::ChainConfig,
    sections: &str,
) -> std::path::PathBuf {
    let config = dir.join("vitalgate.toml");
    std::fs::write(
        &config,
        format!(
            "{sections}\n[chain]\ndirectory = \"{}\"\nidentity = \"{}\"\nrecipients = [\"{}\"]\nseal_interval_secs = 1\n\n[[device]]\nid = \"wear-1\"\npatient = \"patient-1\"\nprofile = \"{}\"\n",
            disk.join("ledger").display(),
            chain.identity.display(),
            chain.recipients[0],
            common::root().join("device-profiles/senml-wearable.toml").display(),
        ),
    )
    .unwrap();
    config
}

/// Run the real gateway with `config` in a private mount namespace
/// whose `disk` is a 4 MiB tmpfs, stepping on the test's signal files in
/// `dir` (`fill`, `free`, `stop`; it answers `started`, `filled`), and
/// after a clean stop (exit status in `exit`) run `after` — shell lines
/// with `{bin}`, `{disk}` and `{keys}` to fill in — then touch `done`. The
/// script ends by itself when the test's folder is removed (a failed
/// test). The gateway's log is `gateway.log`.
fn gateway_on_a_small_disk(
    dir: &Path,
    disk: &Path,
    keys: &Path,
    config: &Path,
    after: &str,
) -> std::process::Child {
    let step = |name: &str| dir.join(name).display().to_string();
    let after = after
        .replace("{bin}", env!("CARGO_BIN_EXE_vitalgate"))
        .replace("{disk}", &disk.display().to_string())
        .replace("{keys}", &keys.display().to_string())
        .replace("{dir}", &dir.display().to_string());
    let wait = |signal: &str| {
        format!(
            "while [ ! -e \"{}\" ] && [ -e \"{}\" ]; do sleep 0.1; done",
            step(signal),
            dir.display()
        )
    };
    let script = format!(
        r#"set -u
mount -t tmpfs -o size=4m tmpfs "{disk}" || exit 90
"{bin}" run --config "{config}" 2>"{log}" & pid=$!
touch "{started}"
{wait_fill}
cat /dev/zero > "{disk}/filler" 2>/dev/null
touch "{filled}"
{wait_free}
rm "{disk}/filler"
{wait_stop}
kill -TERM $pid; wait $pid; echo "gateway exit $?" > "{exit}"
{after}
touch "{done}"
"#,
        disk = disk.display(),
        bin = env!("CARGO_BIN_EXE_vitalgate"),
        config = config.display(),
        log = step("gateway.log"),
        started = step("started"),
        filled = step("filled"),
        exit = step("exit"),
        done = step("done"),
        wait_fill = wait("fill"),
        wait_free = wait("free"),
        wait_stop = wait("stop"),
    );
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .spawn()
        .unwrap()
}

/// Where the test's device publishes.
enum Route {
    Gateway(u16),
    Broker(common::mosquitto::Mosquitto),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_the_gateway_stops_acknowledging_keeps_what_it_has_and_resumes_when_space_returns()
 {
    full_disk(Route::Gateway(common::free_port())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_broker_on_a_full_disk_nothing_is_lost_and_the_gateway_catches_up() {
    let Some(broker) = common::mosquitto::start() else {
        return;
    };
    full_disk(Route::Broker(broker)).await;
}

async fn full_disk(route: Route) {
    if !common::private_mounts() {
        return;
    }
    let mqtt = match &route {
        Route::Gateway(port) => format!("[mqtt_server]\nlisten = \"127.0.0.1:{port}\"\n"),
        Route::Broker(b) => format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nport = {}\nclient_id = \"vitalgate-full-disk\"\n",
            b.port
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let chain = common::ledger_chain(&keys);
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let config = small_disk_config(dir.path(), &disk, &chain, &mqtt);
    std::fs::write(
        keys.join("identity.key.pub"),
        format!(
            "{}\n",
            vitalgate_chain::crypto::keys::IdentityKey::load(&chain.identity)
                .unwrap()
                .public()
        ),
    )
    .unwrap();
    let step = |name: &str| dir.path().join(name);
    // Inside the namespace: mount the small disk, run the gateway, fill and
    // empty the disk on the test's signals, then check the ledger there
    // (the mount is visible only inside).
    let mut namespace = gateway_on_a_small_disk(
        dir.path(),
        &disk,
        &keys,
        &config,
        &format!(
            r#""{{bin}}" verify --ledger "{{disk}}/ledger" --gateway-key "{{keys}}/identity.key.pub" > "{verify}" 2>&1
"{{bin}}" open --ledger "{{disk}}/ledger" --identity "{{keys}}/recipient.key" > "{opened}" 2>/dev/null"#,
            verify = step("verify").display(),
            opened = step("opened").display(),
        ),
    );
    wait_file(&step("started"), 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    match &route {
        Route::Gateway(port) => {
            let publish = |range: std::ops::Range<u64>| {
                let (sent, _) = tokio::sync::watch::channel(0);
                common::publisher::publish_all(
                    *port,
                    "full-disk-device",
                    messages(range),
                    100,
                    |_| Duration::ZERO,
                    sent,
                )
            };
            // Stored while there is room.
            publish(0..200).await;
            // The disk fills; the device keeps what is not acknowledged.
            std::fs::write(step("fill"), "").unwrap();
            wait_file(&step("filled"), 10).await;
            let rest = tokio::spawn(publish(200..1300));
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_says_full(&step("gateway.log"));
            // Space returns; the device gets through by itself.
            std::fs::write(step("free"), "").unwrap();
            let (acked, _) = tokio::time::timeout(Duration::from_secs(90), rest)
                .await
                .expect("every message acknowledged once space returned")
                .unwrap();
            assert_eq!(acked.len(), 1100);
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        Route::Broker(broker) => {
            let mut o = MqttOptions::new("full-disk-publisher", "127.0.0.1", broker.port);
            o.set_keep_alive(Duration::from_secs(10));
            let (client, mut eventloop) = AsyncClient::new(o, 100);
            tokio::spawn(async move {
                while let Ok(e) = eventloop.poll().await {
                    let _ = matches!(e, Event::Incoming(Packet::PubAck(_)));
                }
            });
            // Stored while there is room.
            publish(&client, 0..200).await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            // The disk fills; messages keep coming and wait at the broker.
            std::fs::write(step("fill"), "").unwrap();
            wait_file(&step("filled"), 10).await;
            publish(&client, 200..1200).await;
            tokio::time::sleep(Duration::from_secs(4)).await;
            assert_says_full(&step("gateway.log"));
            // Space returns; the gateway catches up by itself.
            std::fs::write(step("free"), "").unwrap();
            publish(&client, 1200..1300).await;
            tokio::time::sleep(Duration::from_secs(8)).await;
        }
    }
    std::fs::write(step("stop"), "").unwrap();
    wait_file(&step("done"), 30).await;
    assert!(namespace.wait().unwrap().success());

    let log = std::fs::read_to_string(step("gateway.log")).unwrap();
    let exit = std::fs::read_to_string(step("exit")).unwrap();
    assert_eq!(exit.trim(), "gateway exit 0", "{log}");
    assert!(log.contains("storage works again"), "{log}");
    let verify = std::fs::read_to_string(step("verify")).unwrap();
    assert!(verify.contains(": valid"), "{verify}\n{log}");
    let mut stored: BTreeMap<i64, u32> = BTreeMap::new();
    for line in std::fs::read_to_string(step("opened")).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let t = v["device_time"].as_str().unwrap().to_owned();
        let t = vitalgate_devices::Timestamp::parse_rfc3339(&t).unwrap().0;
        *stored.entry(t).or_default() += 1;
    }
    for i in 0..1300 {
        let t = ((BASE + i) * 1000) as i64;
        assert_eq!(
            stored.get(&t).copied().unwrap_or(0),
            1,
            "message {i}\n{log}"
        );
    }
}

/// Desaturation samples `range` (one a second of measurement time, ending
/// about now): SpO2 80 % holds the hypoxaemia rule after 31 of them.
fn desaturation(range: std::ops::Range<u64>) -> Vec<common::publisher::Message> {
    let t0 = vitalgate_devices::Timestamp::now().millis() as u64 / 1000 - 60;
    range
        .map(|i| common::publisher::Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: format!(
                r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"spo2","u":"%","v":80}},{{"n":"heart_rate","u":"beat/min","v":{}}}]"#,
                t0 + i,
                70 + i % 5
            )
            .into_bytes(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_full_disk_an_emergency_still_reaches_the_hospital_and_is_recorded_once_space_returns()
{
    if !common::private_mounts() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let chain = common::ledger_chain(&keys);
    let secret = keys.join("hospital.secret");
    common::write_secret(&secret, b"a shared secret of 32 bytes!!!!!");
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let (device_port, hook_port) = (common::free_port(), common::free_port());
    let config = small_disk_config(
        dir.path(),
        &disk,
        &chain,
        &format!(
            "[mqtt_server]\nlisten = \"127.0.0.1:{device_port}\"\n\n[alerts]\ngateway_id = \"gw-full\"\n\n[[alerts.webhook]]\nname = \"hospital\"\nurl = \"http://127.0.0.1:{hook_port}/alerts\"\nsecret_file = \"{}\"\n",
            secret.display()
        ),
    );
    let step = |name: &str| dir.path().join(name);
    // The outbox sits beside the ledger: on the small disk too.
    let mut namespace = gateway_on_a_small_disk(
        dir.path(),
        &disk,
        &keys,
        &config,
        &format!(
            r#""{{bin}}" open --alerts --ledger "{{disk}}/ledger" --identity "{{keys}}/recipient.key" > "{opened}" 2>/dev/null"#,
            opened = step("opened").display(),
        ),
    );
    let received: common::webhook::Received = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let hospital = tokio::spawn(common::webhook::receiver(
        hook_port,
        vitalgate::deliver::signature::Secret::new(b"a shared secret of 32 bytes!!!!!".to_vec()),
        std::sync::Arc::clone(&received),
        stop.clone(),
    ));
    wait_file(&step("started"), 10).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // The disk is full before the patient desaturates. The oximeter
    // streams at QoS 0 (live values, as many wearables send them): nothing
    // of it can be stored, yet every reading is judged, and the alert goes
    // out from memory although the outbox cannot be written either.
    std::fs::write(step("fill"), "").unwrap();
    wait_file(&step("filled"), 10).await;
    let mut o = MqttOptions::new("full-disk-oximeter", "127.0.0.1", device_port);
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut eventloop) = AsyncClient::new(o, 100);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    for m in desaturation(0..45) {
        client
            .publish(m.topic, QoS::AtMostOnce, false, m.payload)
            .await
            .unwrap();
    }
    let raised = |m: &serde_json::Value| {
        m["event"] == "raised" && m["alert"]["kind"] == "sustained_hypoxaemia"
    };
    let mut alert = None;
    for _ in 0..200 {
        alert = common::webhook::messages(&received)
            .into_iter()
            .find(raised);
        if alert.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alert = alert.unwrap_or_else(|| {
        panic!(
            "the alert did not reach the hospital while the disk was full:\n{}",
            std::fs::read_to_string(step("gateway.log")).unwrap_or_default()
        )
    });
    let log = std::fs::read_to_string(step("gateway.log")).unwrap();
    assert!(log.contains("storage is full"), "{log}");
    assert!(log.contains("alert outbox cannot be written"), "{log}");

    // Space returns: the outbox is written, and the alert is in the
    // ledger's audit trail with its delivery.
    std::fs::write(step("free"), "").unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    std::fs::write(step("stop"), "").unwrap();
    wait_file(&step("done"), 30).await;
    assert!(namespace.wait().unwrap().success());
    stop.cancel();
    hospital.await.unwrap();

    let log = std::fs::read_to_string(step("gateway.log")).unwrap();
    assert_eq!(
        std::fs::read_to_string(step("exit")).unwrap().trim(),
        "gateway exit 0",
        "{log}"
    );
    assert!(log.contains("alert outbox writes again"), "{log}");
    let opened = std::fs::read_to_string(step("opened")).unwrap();
    let trail: Vec<serde_json::Value> = opened
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["alert"].clone())
        .collect();
    assert!(trail.contains(&alert), "{opened}\n{log}");
    assert!(
        trail
            .iter()
            .any(|m| m["format"] == "vitalgate/alert-delivery/1"
                && m["message_id"] == alert["message_id"]),
        "{opened}"
    );
    let sent: Vec<_> = common::webhook::messages(&received)
        .into_iter()
        .filter(|m| raised(m))
        .collect();
    assert_eq!(sent.len(), 1, "delivered once: {sent:#?}");
}
