//! Serial ingest end to end over real pseudo-terminals: the gateway opens
//! the port by path exactly as it opens a USB-serial adapter.

mod common;

use std::path::Path;
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};
use tokio_util::sync::CancellationToken;
use vitalgate::Gateway;
use vitalgate::store::VolatileStore;
use vitalgate_devices::{Format, Reject, Snapshot, Timestamp, Vital};

/// One second of a Masimo device's output for these values.
fn masimo_second(spo2: f64, pr: f64, t: i64) -> Vec<u8> {
    let mut snap = Snapshot {
        time: Timestamp(t),
        ..Snapshot::default()
    };
    snap.set(Vital::Spo2, Some(spo2));
    snap.set(Vital::PulseRate, Some(pr));
    snap.set(Vital::PerfusionIndex, Some(2.5));
    let mut out = Vec::new();
    Format::MasimoAscii.encoder("ox").encode(&snap, &mut out);
    out
}

/// A pty pair whose slave is reachable through a stable symlink, the way
/// /dev/serial/by-id/ names a USB adapter across replugs.
fn plug(link: &Path) -> (SerialStream, SerialStream) {
    let (master, slave) = SerialStream::pair().expect("pty pair");
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(slave.name().expect("pty name"), link).expect("symlink");
    (master, slave)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serial_readings_arrive_garbage_is_counted_and_an_unplugged_device_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("ttyOX");
    let (mut master, slave) = plug(&link);

    let config = common::config(
        vec![common::device(
            "ox-1",
            "patient-1",
            "masimo-rad-8.toml",
            Some(&link),
        )],
        1,
        "unused",
    );
    let cancel = CancellationToken::new();
    let gateway = Gateway::start(&config, VolatileStore, cancel.clone()).unwrap();
    let mut ingest = gateway.ingest.clone();
    // Let the gateway open the port before the device talks.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    master
        .write_all(&masimo_second(97.0, 72.0, 1_000_000))
        .await
        .unwrap();
    master.write_all(b"\x00\xff\x13garbage\x01").await.unwrap();
    master
        .write_all(&masimo_second(95.0, 80.0, 1_001_000))
        .await
        .unwrap();
    let snap = common::wait_for(&mut ingest, 10, "two seconds of readings", |s| {
        s.devices
            .get("ox-1")
            .is_some_and(|d| d.latest.get(&Vital::Spo2).is_some_and(|l| l.value == 95.0))
    })
    .await;
    assert!(
        snap.rejected.get(&Reject::Garbage).copied().unwrap_or(0) >= 1,
        "{snap:#?}"
    );
    let before = snap.devices["ox-1"].received;

    // Unplug: both ends close and the by-id link disappears.
    drop(master);
    drop(slave);
    std::fs::remove_file(&link).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Replug: a new pty behind the same stable name.
    let (mut master, _slave) = plug(&link);
    // The gateway re-opens with backoff; the device keeps talking until
    // it is read again.
    let mut replugged = None;
    for _ in 0..60 {
        master
            .write_all(&masimo_second(93.0, 88.0, 1_002_000))
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let s = ingest.borrow().clone();
        if s.devices["ox-1"]
            .latest
            .get(&Vital::Spo2)
            .is_some_and(|l| l.value == 93.0)
        {
            replugged = Some(s);
            break;
        }
    }
    let snap = replugged.expect("the replugged device was never read again");
    assert!(snap.devices["ox-1"].received > before);

    cancel.cancel();
    gateway.join().await;
}
