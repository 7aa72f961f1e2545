//! The direct transport against the in-memory adapter
//! ([`crate::source::ble::memory`]).
//!
//! No machine this is built on has a Bluetooth radio, so these tests drive
//! a stand-in peripheral behind the same [`Central`] trait as BlueZ — the
//! one place in the project where a fake is right. What they prove is the
//! transport's own behaviour (binding, backoff, adapter loss, shutdown);
//! BlueZ itself is only exercised where it can be without a radio
//! (`bluez::tests`). Time is tokio's paused clock: backoff delays of a
//! minute pass in no real time, and deterministically.

use super::*;
use crate::config::{BleBinding, BleLink, Device};
use crate::source::ble::memory::MemoryCentral;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
use vitalgate_devices::profile::Profile;
use vitalgate_devices::{Reject, Vital};

const HEART_RATE_SERVICE: u16 = 0x180D;
const HEART_RATE_MEASUREMENT: u16 = 0x2A37;
const STRAP: &str = "C4:7C:8D:6A:01:02";
const OTHER_STRAP: &str = "C4:7C:8D:6A:0B:0B";
const NEIGHBOUR: &str = "F0:0D:F0:0D:00:01";

fn address(text: &str) -> Address {
    text.parse().unwrap()
}

/// A device bound to `patient` at `address`, from a bundled profile, as
/// `tests/common` builds them.
fn device(id: &str, patient: &str, profile: &str, address: &str) -> Device {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("device-profiles")
        .join(profile);
    Device {
        id: id.into(),
        patient: patient.into(),
        profile: Arc::new(Profile::load(&path).unwrap_or_else(|e| panic!("{e}"))),
        profile_path: path,
        port: None,
        ble: Some(BleBinding {
            address: self::address(address),
            link: BleLink::Direct,
        }),
    }
}

fn strap() -> Device {
    device("hr-strap", "patient-7", "ble-heart-rate.toml", STRAP)
}

/// The transport running on `central` for `devices`.
struct Running {
    batches: mpsc::Receiver<Batch>,
    links: Vec<crate::ingest::LinkEvent>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

fn start(central: &MemoryCentral, devices: &[Device]) -> Running {
    let (tx, batches) = mpsc::channel(16);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(run(
        central.clone(),
        BleDevices::new(devices, BleLink::Direct),
        tx,
        cancel.clone(),
    ));
    Running {
        batches,
        links: Vec::new(),
        cancel,
        task,
    }
}

impl Running {
    /// The next batch with data (the adapter's link reports are
    /// collected in `links`).
    async fn next_batch(&mut self) -> Batch {
        loop {
            let batch = tokio::time::timeout(Duration::from_secs(120), self.batches.recv())
                .await
                .expect("a batch within two minutes")
                .expect("the transport is running");
            match batch.link {
                Some(link) if batch.readings.is_empty() && batch.rejections.is_empty() => {
                    self.links.push(link)
                }
                _ => return batch,
            }
        }
    }

    /// Stop it and check that it stopped within a second.
    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(1), self.task)
            .await
            .expect("stopped within a second of cancellation")
            .expect("did not panic");
    }
}

/// Wait on the paused clock until `done` holds; how long it took.
async fn until(what: &str, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "gave up waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    start.elapsed()
}

/// A heart-rate strap at `at` comes into range.
fn add_strap(central: &MemoryCentral, at: &str) {
    central.add_peripheral(
        address(at),
        &[HEART_RATE_SERVICE],
        &[HEART_RATE_MEASUREMENT],
    );
}

/// A central with the bound strap in range.
fn strap_central() -> MemoryCentral {
    let central = MemoryCentral::new();
    add_strap(&central, STRAP);
    central
}

/// Wait until the transport has subscribed to the strap's heart rate.
async fn strap_subscribed(central: &MemoryCentral, what: &str) {
    until(what, || {
        central.is_subscribed(address(STRAP), HEART_RATE_MEASUREMENT)
    })
    .await;
}

/// The strap notifies `bpm`, and it arrives as a reading.
async fn strap_heart_rate_arrives(central: &MemoryCentral, t: &mut Running, bpm: u8) {
    assert!(
        central
            .notify(address(STRAP), HEART_RATE_MEASUREMENT, &[0x00, bpm])
            .await
    );
    assert_eq!(t.next_batch().await.readings[0].value, f64::from(bpm));
}

/// The log lines written while the guard lives (this thread only: the
/// tests' runtime is single-threaded, so that is every task's).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .without_time()
            .with_max_level(tracing::Level::DEBUG)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }
}

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn values_from_a_bound_strap_arrive_as_readings_of_its_device_and_patient() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let central = MemoryCentral::new();
    central.add_peripheral(
        address(STRAP),
        &[HEART_RATE_SERVICE],
        &[HEART_RATE_MEASUREMENT, 0x2A38],
    );
    let mut t = start(&central, &[strap()]);
    strap_subscribed(&central, "subscribed").await;
    assert_eq!(central.scan_filter(), Some(vec![HEART_RATE_SERVICE]));

    // 72 bpm, 8-bit, no contact feature.
    assert!(
        central
            .notify(address(STRAP), HEART_RATE_MEASUREMENT, &[0x00, 72])
            .await
    );
    let batch = t.next_batch().await;
    assert!(batch.rejections.is_empty(), "{:?}", batch.rejections);
    let [reading] = batch.readings.as_slice() else {
        panic!("{:?}", batch.readings)
    };
    assert_eq!(&*reading.device, "hr-strap");
    assert_eq!(&*reading.patient, "patient-7");
    assert_eq!(reading.vital, Vital::HeartRate);
    assert_eq!(reading.value, 72.0);
    assert_eq!(reading.device_time, None);

    // Connection changes are logged with the device and address, values never.
    let connected = logs
        .lines()
        .into_iter()
        .find(|l| l.contains("Bluetooth device connected"));
    let connected = connected.expect("a connection line");
    assert!(connected.contains("INFO"), "{connected}");
    assert!(
        connected.contains("hr-strap") && connected.contains(STRAP),
        "{connected}"
    );
    assert_eq!(logs.count("72"), 0, "{:?}", logs.lines());
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unbound_advertiser_is_never_connected_and_noted_once() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let central = MemoryCentral::new();
    add_strap(&central, NEIGHBOUR);
    add_strap(&central, STRAP);
    let mut t = start(&central, &[strap()]);
    strap_subscribed(&central, "the bound strap is subscribed").await;
    // The neighbour's strap keeps advertising.
    for _ in 0..3 {
        central.go_out_of_range(address(NEIGHBOUR));
        central.come_back(address(NEIGHBOUR));
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(central.connect_attempts(address(NEIGHBOUR)), 0);
    assert!(!central.is_connected(address(NEIGHBOUR)));
    assert_eq!(central.connect_attempts(address(STRAP)), 1);
    assert_eq!(
        logs.count("not bound in the configuration"),
        1,
        "{:?}",
        logs.lines()
    );
    assert!(
        logs.lines()
            .iter()
            .any(|l| l.contains("not bound") && l.contains("DEBUG") && l.contains(NEIGHBOUR))
    );
    // Nothing was handed to ingest for it (only the adapter's link).
    while let Ok(batch) = t.batches.try_recv() {
        assert!(batch.readings.is_empty() && batch.rejections.is_empty() && batch.link.is_some());
    }
    assert!(t.links.iter().all(|l| l.link.as_ref() == "ble:adapter"));
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_strap_that_walks_away_and_comes_back_is_reconnected_with_backoff_while_the_other_streams()
 {
    let central = MemoryCentral::new();
    for a in [STRAP, OTHER_STRAP] {
        add_strap(&central, a);
    }
    let other = device(
        "hr-strap-2",
        "patient-8",
        "ble-heart-rate.toml",
        OTHER_STRAP,
    );
    let mut t = start(&central, &[strap(), other]);
    for a in [STRAP, OTHER_STRAP] {
        until("both subscribed", || {
            central.is_subscribed(address(a), HEART_RATE_MEASUREMENT)
        })
        .await;
    }
    assert!(
        central
            .notify(address(STRAP), HEART_RATE_MEASUREMENT, &[0x00, 70])
            .await
    );
    assert_eq!(&*t.next_batch().await.readings[0].device, "hr-strap");

    central.go_out_of_range(address(STRAP));
    // Not straight back: the first retry waits at least half the base delay.
    tokio::time::sleep(DEVICE_BACKOFF_BASE / 2 - Duration::from_millis(10)).await;
    assert_eq!(central.connect_attempts(address(STRAP)), 1);
    // Out of range, attempts keep failing, further and further apart.
    tokio::time::sleep(Duration::from_secs(20)).await;
    let attempts = central.connect_attempts(address(STRAP));
    assert!(
        (2..=6).contains(&attempts),
        "{attempts} attempts in 20 s of absence"
    );
    // Meanwhile the other strap streams.
    assert!(
        central
            .notify(address(OTHER_STRAP), HEART_RATE_MEASUREMENT, &[0x00, 64])
            .await
    );
    let batch = t.next_batch().await;
    assert_eq!(&*batch.readings[0].device, "hr-strap-2");
    assert_eq!(&*batch.readings[0].patient, "patient-8");

    central.come_back(address(STRAP));
    let waited = until("the strap is subscribed again", || {
        central.is_subscribed(address(STRAP), HEART_RATE_MEASUREMENT)
    })
    .await;
    assert!(waited <= DEVICE_BACKOFF_MAX, "{waited:?}");
    assert!(central.connect_attempts(address(STRAP)) > attempts);
    assert!(
        central
            .notify(address(STRAP), HEART_RATE_MEASUREMENT, &[0x00, 71])
            .await
    );
    let batch = t.next_batch().await;
    assert_eq!(&*batch.readings[0].device, "hr-strap");
    assert_eq!(batch.readings[0].value, 71.0);
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_missing_adapter_is_warned_about_once_retried_and_used_once_plugged_in() {
    let logs = Logs::default();
    let _guard = logs.capture();
    let central = MemoryCentral::without_adapter();
    add_strap(&central, STRAP);
    let mut t = start(&central, &[strap()]);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let failed = central.failed_scans();
    assert!(
        (3..=8).contains(&failed),
        "{failed} scans in 30 s: retried, with backoff"
    );
    let warnings: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains("WARN"))
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("no Bluetooth adapter found")
            && warnings[0].contains("the rest of the gateway runs"),
        "{}",
        warnings[0]
    );

    central.plug_adapter();
    strap_subscribed(&central, "subscribed once the adapter is there").await;
    strap_heart_rate_arrives(&central, &mut t, 80).await;
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_adapter_unplugged_while_streaming_is_scanned_for_again_and_the_strap_reconnected() {
    let central = strap_central();
    let mut t = start(&central, &[strap()]);
    strap_subscribed(&central, "subscribed").await;
    central.unplug_adapter();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(central.failed_scans() >= 1);
    central.plug_adapter();
    strap_subscribed(&central, "subscribed again").await;
    assert_eq!(central.scans(), 2);
    strap_heart_rate_arrives(&central, &mut t, 90).await;
    // Ingest heard the adapter come, go and come back (readiness and the
    // reconnect counter follow it).
    // (A second "down" says why the scan after it failed.)
    let mut states: Vec<bool> = t.links.iter().map(|l| l.up).collect();
    states.dedup();
    assert_eq!(states, [true, false, true], "{:?}", t.links);
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_malformed_value_is_a_rejection_in_the_batch_not_a_panic() {
    let central = strap_central();
    let mut t = start(&central, &[strap()]);
    strap_subscribed(&central, "subscribed").await;
    // Flags announce a 16-bit rate; one byte follows.
    assert!(
        central
            .notify(address(STRAP), HEART_RATE_MEASUREMENT, &[0x01, 72])
            .await
    );
    let batch = t.next_batch().await;
    assert!(batch.readings.is_empty());
    let [rejection] = batch.rejections.as_slice() else {
        panic!("{:?}", batch.rejections)
    };
    assert_eq!(rejection.reason, Reject::Malformed);
    assert_eq!(rejection.device.as_deref(), Some("hr-strap"));
    assert!(
        rejection.detail.contains("Heart Rate Measurement"),
        "{}",
        rejection.detail
    );
    // And the stream goes on.
    strap_heart_rate_arrives(&central, &mut t, 73).await;
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn plx_features_are_read_once_after_connecting_and_decoded_like_any_value() {
    let central = MemoryCentral::new();
    let oximeter = address("00:1C:05:00:AA:01");
    central.add_peripheral(oximeter, &[0x1822], &[0x2A5E, 0x2A5F, 0x2A60]);
    // Truncated on purpose, so that its decoding shows in the batch.
    central.set_read_value(oximeter, 0x2A60, &[0x00]);
    let device = device(
        "oximeter",
        "patient-7",
        "ble-pulse-oximeter.toml",
        "00:1C:05:00:AA:01",
    );
    let mut t = start(&central, &[device]);
    let batch = t.next_batch().await;
    let [rejection] = batch.rejections.as_slice() else {
        panic!("{:?}", batch.rejections)
    };
    assert_eq!(rejection.reason, Reject::Malformed);
    assert!(
        rejection.detail.contains("PLX Features"),
        "{}",
        rejection.detail
    );
    assert_eq!(central.scan_filter(), Some(vec![0x1822]));
    assert!(central.is_subscribed(oximeter, 0x2A5E));
    assert!(central.is_subscribed(oximeter, 0x2A5F));
    assert!(!central.is_subscribed(oximeter, 0x2A60));
    assert_eq!(central.connect_attempts(oximeter), 1);
    t.stop().await;
}

#[tokio::test(start_paused = true)]
async fn cancelling_stops_the_transport_promptly_and_hangs_up() {
    let central = MemoryCentral::new();
    for a in [STRAP, OTHER_STRAP] {
        add_strap(&central, a);
    }
    let other = device(
        "hr-strap-2",
        "patient-8",
        "ble-heart-rate.toml",
        OTHER_STRAP,
    );
    let t = start(&central, &[strap(), other]);
    for a in [STRAP, OTHER_STRAP] {
        until("both subscribed", || {
            central.is_subscribed(address(a), HEART_RATE_MEASUREMENT)
        })
        .await;
    }
    // The second strap walks off: when the token fires, an attempt to
    // reach it is under way (its first retry comes within a second, and
    // fails only after two).
    central.go_out_of_range(address(OTHER_STRAP));
    tokio::time::sleep(DEVICE_BACKOFF_BASE + Duration::from_millis(100)).await;
    assert_eq!(central.connect_attempts(address(OTHER_STRAP)), 2);
    t.stop().await;
    assert_eq!(central.disconnects(address(STRAP)), 1);
    assert!(!central.is_connected(address(STRAP)));
}

#[tokio::test(start_paused = true)]
async fn cancelling_while_the_adapter_is_missing_stops_promptly() {
    let central = MemoryCentral::without_adapter();
    let t = start(&central, &[strap()]);
    tokio::time::sleep(Duration::from_secs(45)).await;
    t.stop().await;
}

#[test]
fn the_scan_asks_for_the_services_of_the_bound_profiles_once_each() {
    let devices = [
        strap(),
        device("hr-2", "p", "ble-heart-rate.toml", OTHER_STRAP),
        device("ox", "p", "ble-pulse-oximeter.toml", NEIGHBOUR),
    ];
    assert_eq!(
        scan_services(&BleDevices::new(&devices, BleLink::Direct)),
        vec![HEART_RATE_SERVICE, 0x1822]
    );
}
