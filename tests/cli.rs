//! The `vitalgate` binary, run as a user runs it.

mod common;

use std::path::Path;
use std::process::Command;

fn vitalgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitalgate"))
}

/// The profile in device-profiles/ whose format is `format`.
fn profile_for(format: &str) -> Option<std::path::PathBuf> {
    let dir = common::root().join("device-profiles");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths.into_iter().find(|p| {
        p.extension().is_some_and(|e| e == "toml")
            && vitalgate_devices::profile::Profile::load(p)
                .unwrap()
                .format
                .name()
                == format
    })
}

#[test]
fn decode_turns_every_bundled_capture_into_the_expected_readings_and_reports_bad_frames_with_offsets()
 {
    let testdata = common::root().join("crates/devices/testdata");
    let mut checked = 0;
    for entry in std::fs::read_dir(&testdata).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.contains(".expected.") {
            continue;
        }
        // A capture is named after its format, or after the bundled
        // profile it is decoded with (the BLE profiles restrict which
        // characteristics they take).
        let stem = name.split('.').next().unwrap();
        let expected_path = testdata.join(format!("{stem}.expected.jsonl"));
        let own = common::root().join(format!("device-profiles/{stem}.toml"));
        let profile = if own.exists() {
            own
        } else {
            profile_for(stem).unwrap_or_else(|| panic!("no profile for {stem}"))
        };
        let out = vitalgate()
            .args([
                "decode",
                "--received",
                "2026-01-01T00:00:00Z",
                "--device",
                "dev-1",
                "--patient",
                "pat-1",
                "--profile",
            ])
            .arg(&profile)
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();

        let expected: Vec<serde_json::Value> = std::fs::read_to_string(&expected_path)
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let want_values: Vec<(String, f64)> = expected
            .iter()
            .filter(|e| e.get("value").is_some())
            .map(|e| {
                (
                    e["vital"].as_str().unwrap().to_owned(),
                    e["value"].as_f64().unwrap(),
                )
            })
            .collect();
        let got_values: Vec<(String, f64)> = stdout
            .lines()
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).unwrap();
                assert_eq!(r["device"], "dev-1");
                assert_eq!(r["patient"], "pat-1");
                assert_eq!(r["gateway_time"], "2026-01-01T00:00:00.000Z");
                (
                    r["vital"].as_str().unwrap().to_owned(),
                    r["value"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(got_values, want_values, "{name}: readings");

        let want_errors: Vec<String> = expected
            .iter()
            .filter_map(|e| {
                e.get("error")
                    .map(|r| format!("byte {} ", e["offset"]) + "|" + r.as_str().unwrap())
            })
            .collect();
        let got_errors: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with("byte "))
            .map(|l| {
                let offset = l.split(' ').nth(1).unwrap();
                let reason = l.split(": ").nth(1).unwrap();
                format!("byte {offset} |{reason}")
            })
            .collect();
        assert_eq!(got_errors, want_errors, "{name}: rejected frames");
        assert!(
            stderr.contains(&format!("decoded {} readings", want_values.len())),
            "{stderr}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} captures checked");
}

#[test]
fn decode_reads_standard_input_when_no_file_is_given() {
    let profile = profile_for("senml").unwrap();
    let mut child = vitalgate()
        .args(["decode", "--profile"])
        .arg(&profile)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"[{\"n\":\"spo2\",\"u\":\"%\",\"v\":98}]\nnot json\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.contains("\"value\":98.0"), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("byte 30 ") && l.contains("malformed")),
        "{stderr}"
    );
}

#[test]
fn a_config_error_names_the_file_the_key_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vitalgate.toml");
    std::fs::write(&file, "[mqtt]\nport = 0\n").unwrap();
    let out = vitalgate()
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains(&format!(
            "{}: key `mqtt.port`: 0 is not a port",
            file.display()
        )),
        "{stderr}"
    );
}

#[test]
fn the_example_config_checks_out_once_its_keys_are_made() {
    // As shipped, it names no real recipient: check-config says what to do.
    let example = common::root().join("vitalgate.example.toml");
    let out = vitalgate()
        .args(["check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key `chain.recipients[0]`"), "{stderr}");
    assert!(stderr.contains("vitalgate keygen recipient"), "{stderr}");

    // Follow the README: make the keys, put them in the config.
    let dir = tempfile::tempdir().unwrap();
    let identity = dir.path().join("identity.key");
    let recipient = dir.path().join("care-team.key");
    common::keygen("identity", &identity);
    let recipient_public = common::keygen("recipient", &recipient);
    assert!(
        recipient_public.starts_with("x25519:"),
        "{recipient_public}"
    );
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace(
            "x25519:REPLACE-with-the-care-team-key-printed-by-keygen",
            &recipient_public,
        )
        .replace(
            "/var/lib/vitalgate/identity.key",
            identity.to_str().unwrap(),
        )
        .replace(
            "device-profiles/",
            &format!("{}/device-profiles/", common::root().display()),
        );
    let config = dir.path().join("vitalgate.toml");
    std::fs::write(&config, text).unwrap();
    let out = vitalgate()
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("gateway key ed25519:"), "{stdout}");
}

#[test]
fn the_demo_plays_patients_through_serial_mqtt_and_ble_proxy_devices_and_stores_what_it_receives() {
    let dir = tempfile::tempdir().unwrap();
    let labels = dir.path().join("labels.jsonl");
    let out = vitalgate()
        .args([
            "demo",
            "--quiet",
            "--duration",
            "8s",
            "--speed",
            "30",
            "--labels",
        ])
        .arg(&labels)
        .arg("--dir")
        .arg(dir.path().join("demo"))
        .env("VITALGATE_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let summary = stdout
        .lines()
        .find(|l| l.starts_with("demo stopped"))
        .expect("summary line");
    let number_before = |word: &str| -> u64 {
        let words: Vec<&str> = summary
            .split([' ', ',', ';'])
            .filter(|w| !w.is_empty())
            .collect();
        let i = words.iter().position(|w| *w == word).unwrap();
        words[i - 1].parse().unwrap()
    };
    let received = number_before("readings");
    let stored = number_before("stored");
    assert!(received > 100, "{stdout}");
    assert_eq!(stored, received, "{stdout}");
    // Every demo device was heard, over every transport: serial, MQTT,
    // and Bluetooth LE through the simulated proxy.
    let devices: Vec<&str> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("device "))
        .collect();
    assert_eq!(devices.len(), 9, "{stdout}");
    for d in &devices {
        let heard = d
            .split("received ")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(heard > 0, "{d}");
    }
    for ble in ["ble-hr-b1", "ble-th-a1", "ble-bp-c1", "ble-ox-a1"] {
        assert!(
            devices
                .iter()
                .any(|d| d.contains(&format!("device {ble} "))),
            "{stdout}"
        );
    }
    assert!(stderr.contains("serial port open"), "{stderr}");
    assert!(stderr.contains("MQTT device connected"), "{stderr}");
    assert!(Path::new(&labels).exists());

    // The demo sealed blocks (every 10 s, and at the end), and its ledger
    // verifies and opens with the keys it made.
    let ledger_line = stdout
        .lines()
        .find(|l| l.starts_with("ledger:"))
        .expect("ledger line");
    assert!(
        !ledger_line.starts_with("ledger: 0 blocks"),
        "{ledger_line}"
    );
    let demo = dir.path().join("demo");
    let out = vitalgate()
        .args(["verify", "--ledger"])
        .arg(demo.join("ledger"))
        .arg("--gateway-key")
        .arg(demo.join("identity.key.pub"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = vitalgate()
        .args(["open", "--ledger"])
        .arg(demo.join("ledger"))
        .arg("--identity")
        .arg(demo.join("recipient.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opened = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        opened.lines().count() as u64,
        stored,
        "every stored reading opens"
    );
    let out = vitalgate()
        .args(["open", "--format", "csv", "--ledger"])
        .arg(demo.join("ledger"))
        .arg("--identity")
        .arg(demo.join("recipient.key"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(
        csv.starts_with("block,record,device,patient,vital,loinc,value,unit,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count() as u64, stored + 1);

    // Prove one reading's record from a sealed block, and check the proof
    // offline with only the gateway's public key.
    let first: serde_json::Value = serde_json::from_str(opened.lines().next().unwrap()).unwrap();
    let record = format!("{}/{}", first["block"], first["record"]);
    let out = vitalgate()
        .args(["prove", "--record", &record, "--ledger"])
        .arg(demo.join("ledger"))
        .arg("--identity")
        .arg(demo.join("recipient.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let proof = dir.path().join("proof.json");
    std::fs::write(&proof, &out.stdout).unwrap();
    let out = vitalgate()
        .args(["check-proof", "--gateway-key"])
        .arg(demo.join("identity.key.pub"))
        .arg(&proof)
        .output()
        .unwrap();
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && verdict.contains("\"valid\":true"),
        "{verdict}"
    );
    // The same proof against another gateway's key does not hold.
    let other = dir.path().join("other.key");
    assert!(
        vitalgate()
            .args(["keygen", "identity"])
            .arg(&other)
            .output()
            .unwrap()
            .status
            .success()
    );
    let out = vitalgate()
        .args(["check-proof", "--gateway-key"])
        .arg(dir.path().join("other.key.pub"))
        .arg(&proof)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
