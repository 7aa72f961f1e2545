//! The `vitalsim` binary driving a pseudo-terminal, read back the way the
//! gateway reads a serial device.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vitalgate_devices::decode::Decoder;
use vitalgate_devices::format::FormatOptions;
use vitalgate_devices::{Decoded, Format, Vital};

#[test]
fn vitalsim_drives_a_pty_prints_its_path_and_writes_labels() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.jsonl");
    let mut child = Command::new(env!("CARGO_BIN_EXE_vitalsim"))
        .arg("--profile")
        .arg(root.join("device-profiles/masimo-rad-8.toml"))
        .args([
            "--scenario",
            "desaturation",
            "--seed",
            "3",
            "--speed",
            "120",
            "--duration",
            "20m",
            "--labels",
        ])
        .arg(&labels)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(
        line.starts_with("device=sim-1-masimo-rad-8 transport=serial path=/dev/pts/"),
        "{line}"
    );
    let path = line
        .split("path=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();

    // Read the pty as the gateway would and decode it.
    let mut port = std::fs::File::open(&path).unwrap();
    let reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match port.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
        bytes
    });
    let status = child.wait().unwrap();
    assert!(status.success());
    let bytes = reader.join().unwrap();

    let Decoder::Stream(mut decoder) = Format::MasimoAscii.decoder(&FormatOptions::default())
    else {
        panic!("masimo is a stream format");
    };
    let (mut spo2, mut errors) = (Vec::new(), 0);
    decoder.feed(&bytes, &mut |d| match d {
        Decoded::Measurement(m) if m.vital == Vital::Spo2 => spo2.push(m.value),
        Decoded::Error(_) => errors += 1,
        _ => {}
    });
    // 20 simulated minutes at 1 Hz (the first seconds are "searching").
    assert!(spo2.len() > 1000, "{} SpO2 values", spo2.len());
    assert_eq!(errors, 0);
    // The desaturation shows in the values and in the labels.
    assert!(
        spo2.iter().any(|v| *v < 88.0),
        "no desaturation in {spo2:?}"
    );
    let labels = std::fs::read_to_string(&labels).unwrap();
    let first: serde_json::Value =
        serde_json::from_str(labels.lines().next().expect("a label")).unwrap();
    assert_eq!(first["kind"], "desaturation");
    assert_eq!(first["clinical"], true);
}
