//! The real `vitalgate run` watched the way a hospital engineer watches it:
//! `/healthz`, `/readyz` and `/metrics` on its HTTP API. The metrics page
//! is parsed by the Prometheus project's own Python parser
//! (python3-prometheus-client), and its counters must move when readings
//! arrive and are rejected. Readiness must flip when the ledger's file
//! system crosses the disk floor: a real 8 MiB tmpfs in a private mount
//! namespace (`unshare`, no privileges needed), filled and emptied by the
//! test.

mod common;

use common::publisher::{Message, publish_all};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// One sample: (name, labels) → value.
type Samples = BTreeMap<(String, BTreeMap<String, String>), f64>;

/// Parse a metrics page with prometheus_client's parser; panics (with the
/// parser's message) when the page is not valid Prometheus text.
fn parse(page: &str) -> Samples {
    let python = common::python::with_modules("prometheus_client", "python3-prometheus-client");
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = Command::new(python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "not Prometheus text: {}\n{page}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    rows.into_iter().map(|(n, l, v)| ((n, l), v)).collect()
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    samples.get(&(name.to_owned(), labels)).copied()
}

async fn get(port: u16, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// GET `path` until `done` holds for the answer, or panic after `secs`.
async fn until(port: u16, path: &str, secs: u64, done: impl Fn(u16, &str) -> bool) -> String {
    let mut last = (0, String::new());
    for _ in 0..secs * 10 {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}{path}")).await {
            let status = r.status().as_u16();
            last = (status, r.text().await.unwrap_or_default());
            if done(last.0, &last.1) {
                return last.1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{path} never got there; last answer {} {}", last.0, last.1);
}

/// `dir/vitalgate.toml`: the gateway's MQTT server and HTTP API on the
/// given ports, its ledger in `ledger_dir` with `floor_mb`, one wearable.
fn write_config(dir: &Path, ledger_dir: &Path, mqtt: u16, http: u16, floor_mb: u64) -> PathBuf {
    let chain = common::ledger_chain(&dir.join("keys"));
    let config = dir.join("vitalgate.toml");
    std::fs::write(
        &config,
        format!(
            "[mqtt_server]\nlisten = \"127.0.0.1:{mqtt}\"\n\n[http]\nlisten = \"127.0.0.1:{http}\"\n\n\
             [chain]\ndirectory = \"{}\"\nidentity = \"{}\"\nrecipients = [\"{}\"]\nseal_interval_secs = 1\ndisk_floor_mb = {floor_mb}\n\n\
             [[device]]\nid = \"wear-1\"\npatient = \"patient-metrics-marker\"\nprofile = \"{}\"\n",
            ledger_dir.join("ledger").display(),
            chain.identity.display(),
            chain.recipients[0],
            common::root()
                .join("device-profiles/senml-wearable.toml")
                .display(),
        ),
    )
    .unwrap();
    config
}

/// A running `vitalgate run`, stopped (SIGTERM) when dropped.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_as_prometheus_text_and_move_when_readings_arrive_and_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (mqtt, http) = (common::free_port(), common::free_port());
    let config = write_config(dir.path(), dir.path(), mqtt, http, 0);
    let log = dir.path().join("gateway.log");
    let _daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_vitalgate"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("VITALGATE_LOG")
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );

    // Alive, and ready once its one link (the MQTT server) is up.
    let ready = until(http, "/readyz", 30, |s, _| s == 200).await;
    let ready: serde_json::Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["ready"], true, "{ready}");
    let checks: Vec<&str> = ready["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(checks, ["pipeline", "storage", "disk", "sources"]);
    assert_eq!(get(http, "/healthz").await, (200, "ok\n".into()));

    let before = parse(&get(http, "/metrics").await.1);
    let link = format!("mqtt-server:127.0.0.1:{mqtt}");
    assert_eq!(
        value(&before, "vitalgate_source_up", &[("link", &link)]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &before,
            "vitalgate_readings_rejected_total",
            &[("device", "wear-1"), ("reason", "malformed")]
        ),
        None,
        "nothing rejected yet"
    );
    assert_eq!(
        value(
            &before,
            "vitalgate_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0)
    );

    // Five good readings (one distinctive value), two malformed messages,
    // one from a device nobody configured.
    let t0 = vitalgate_devices::Timestamp::now().millis() / 1000 - 10;
    let mut messages: Vec<Message> = (0..5)
        .map(|i| Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: format!(
                r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"heartRate","u":"beat/min","v":{}}}]"#,
                t0 + i,
                if i == 0 { "73.4567" } else { "72" }
            )
            .into_bytes(),
        })
        .collect();
    for bad in [&b"{not json"[..], &b"[{\"n\":42}]"[..]] {
        messages.push(Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: bad.to_vec(),
        });
    }
    messages.push(Message {
        topic: "vitalgate/stranger/senml".into(),
        payload: b"[]".to_vec(),
    });
    let (sent, _) = tokio::sync::watch::channel(0);
    let (acked, _) = publish_all(mqtt, "wear-1", messages, 4, |_| Duration::ZERO, sent).await;
    assert_eq!(acked.len(), 8);

    let page = until(http, "/metrics", 30, |_, page| {
        page.contains("vitalgate_readings_stored_total{device=\"wear-1\"} 5")
            && !page.contains("vitalgate_chain_height 0")
    })
    .await;
    let after = parse(&page);
    let v = |name: &str, labels: &[(&str, &str)]| value(&after, name, labels);
    assert_eq!(
        v("vitalgate_readings_received_total", &[("device", "wear-1")]),
        Some(5.0)
    );
    assert_eq!(
        v("vitalgate_readings_stored_total", &[("device", "wear-1")]),
        Some(5.0)
    );
    assert_eq!(
        v(
            "vitalgate_readings_rejected_total",
            &[("device", "wear-1"), ("reason", "malformed")]
        ),
        Some(2.0)
    );
    let unknown: f64 = after
        .iter()
        .filter(|((name, labels), _)| {
            name == "vitalgate_readings_rejected_total"
                && labels.get("device").map(String::as_str) == Some("(unknown)")
        })
        .map(|(_, v)| v)
        .sum();
    assert_eq!(unknown, 1.0, "the stranger's message");
    assert!(v("vitalgate_chain_height", &[]).unwrap() >= 1.0);
    assert!(v("vitalgate_blocks_sealed_total", &[]).unwrap() >= 1.0);
    assert!(v("vitalgate_store_bytes", &[]).unwrap() > 0.0);
    assert!(v("vitalgate_disk_free_bytes", &[]).unwrap() > 0.0);
    assert_eq!(v("vitalgate_store_writable", &[]), Some(1.0));
    assert_eq!(v("vitalgate_alert_outbox_depth", &[]), Some(0.0));
    assert_eq!(
        v("vitalgate_alert_outbox_oldest_age_seconds", &[]),
        Some(0.0)
    );
    assert!(v("vitalgate_source_reconnects_total", &[("link", &link)]).is_some());
    let clock = v("vitalgate_clock_synchronised", &[]).unwrap();
    assert!([-1.0, 0.0, 1.0].contains(&clock), "{clock}");
    assert!(
        v(
            "vitalgate_device_last_seen_timestamp_seconds",
            &[("device", "wear-1")]
        )
        .unwrap()
            > 1.7e9
    );
    // No patient id and no value on the page, only device ids.
    assert!(!page.contains("patient-metrics-marker"));
    assert!(!page.contains("73.4567"));

    // At the default log level the journal gets neither.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("gateway started"), "{log}");
    assert!(
        !log.contains("patient-metrics-marker"),
        "patient id in the log:\n{log}"
    );
    assert!(!log.contains("73.4567"), "a vital value in the log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_flips_when_the_ledger_disk_crosses_its_floor_and_back() {
    if !common::private_mounts() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).unwrap();
    let (mqtt, http) = (common::free_port(), common::free_port());
    // An 8 MiB disk, a 4 MiB floor.
    let config = write_config(dir.path(), &disk, mqtt, http, 4);
    let step = |name: &str| dir.path().join(name);
    let wait = |signal: &str| {
        format!(
            "while [ ! -e \"{}\" ] && [ -e \"{}\" ]; do sleep 0.1; done",
            step(signal).display(),
            dir.path().display()
        )
    };
    let script = format!(
        r#"set -u
mount -t tmpfs -o size=8m tmpfs "{disk}" || exit 90
"{bin}" run --config "{config}" 2>"{log}" & pid=$!
{wait_fill}
head -c 6000000 /dev/zero > "{disk}/filler"
touch "{filled}"
{wait_free}
rm "{disk}/filler"
touch "{freed}"
{wait_stop}
kill -TERM $pid; wait $pid
"#,
        disk = disk.display(),
        bin = env!("CARGO_BIN_EXE_vitalgate"),
        config = config.display(),
        log = step("gateway.log").display(),
        filled = step("filled").display(),
        freed = step("freed").display(),
        wait_fill = wait("fill"),
        wait_free = wait("free"),
        wait_stop = wait("stop"),
    );
    let mut child = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c", &script])
        .spawn()
        .unwrap();

    until(http, "/readyz", 30, |s, _| s == 200).await;
    std::fs::write(step("fill"), b"").unwrap();
    let not_ready = until(http, "/readyz", 30, |s, _| s == 503).await;
    let answer: serde_json::Value = serde_json::from_str(&not_ready).unwrap();
    let disk_check = answer["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "disk")
        .unwrap()
        .clone();
    assert_eq!(disk_check["ok"], false, "{answer}");
    assert!(
        disk_check["detail"]
            .as_str()
            .unwrap()
            .contains("floor 4 MiB"),
        "{answer}"
    );
    // Still alive: a full disk is not a reason to restart.
    assert_eq!(get(http, "/healthz").await.0, 200);
    let metrics = parse(&get(http, "/metrics").await.1);
    let free = value(&metrics, "vitalgate_disk_free_bytes", &[]).unwrap();
    assert!(free < 4.0 * 1024.0 * 1024.0, "{free}");
    assert_eq!(
        value(&metrics, "vitalgate_disk_floor_bytes", &[]),
        Some(4.0 * 1024.0 * 1024.0)
    );

    std::fs::write(step("free"), b"").unwrap();
    until(http, "/readyz", 30, |s, _| s == 200).await;
    std::fs::write(step("stop"), b"").unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let log = std::fs::read_to_string(step("gateway.log")).unwrap();
    assert!(log.contains("stopped cleanly"), "{log}");
}

/// The service manager's side of `Type=notify`, played by the test: a
/// datagram socket in `NOTIFY_SOCKET`, a watchdog of 400 ms in
/// `WATCHDOG_USEC` and `WATCHDOG_PID`, as systemd sets them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_tells_systemd_it_is_ready_pets_the_watchdog_and_says_when_it_stops() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let (mqtt, http) = (common::free_port(), common::free_port());
    let config = write_config(dir.path(), dir.path(), mqtt, http, 0);
    // systemd names the watched process in WATCHDOG_PID: the shell's pid
    // is the daemon's after `exec`.
    let mut daemon = Daemon(
        Command::new("sh")
            .args([
                "-c",
                "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"",
                env!("CARGO_BIN_EXE_vitalgate"),
            ])
            .arg(&config)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "400000")
            .stderr(std::fs::File::create(dir.path().join("gateway.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut buf = [0u8; 4096];
    let mut next = || {
        let n = socket.recv(&mut buf).unwrap_or_else(|e| {
            let log = std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
            panic!("no notification within 30 s ({e}); the gateway said:\n{log}")
        });
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let first = next();
    assert!(first.starts_with("READY=1\n"), "{first:?}");
    assert!(first.contains("STATUS="), "{first:?}");
    // Pets every 200 ms (half the period) while the pipeline runs.
    let mut pets = 0;
    let mut ready_status = false;
    let started = std::time::Instant::now();
    while pets < 5 || !ready_status {
        let m = next();
        pets += usize::from(m == "WATCHDOG=1\n");
        ready_status |= m.starts_with("STATUS=ready: 1 devices, 1 links up");
        assert!(started.elapsed() < Duration::from_secs(30), "{pets} pets");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "not more often than every half period"
    );
    Command::new("kill")
        .args(["-TERM", &daemon.0.id().to_string()])
        .status()
        .unwrap();
    let stopping = loop {
        let m = next();
        if m != "WATCHDOG=1\n" && !m.starts_with("STATUS=ready") {
            break m;
        }
    };
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    assert!(daemon.0.wait().unwrap().success());
}
