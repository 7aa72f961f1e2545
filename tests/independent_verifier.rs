//! The independent Python verifier (`tools/independent-verifier/verify.py`,
//! written from docs/FORMAT.md alone) agrees with this implementation: it
//! checks FORMAT.md's vectors, and every proof `vitalgate prove` writes for a
//! fresh ledger, down to unwrapping the content key with a recipient's
//! private key and decoding the packed readings or the alert message; and it
//! refuses a proof with one byte changed.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::{Ledger, SealReason};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// 2026-03-01T08:00:00.000Z.
const T0: i64 = 1_772_352_000_000;

fn verifier() -> PathBuf {
    common::root()
        .join("tools")
        .join("independent-verifier")
        .join("verify.py")
}

/// A Python 3 that has cbor2 and cryptography (`common::python`).
fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        common::python::with_modules(
            "cbor2 cryptography",
            "python3 python3-cbor2 python3-cryptography",
        )
    })
}

fn run_verifier(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(python())
        .arg(verifier())
        .args(args)
        .output()
        .unwrap()
}

fn vitalgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitalgate"))
}

fn reading(device: &str, patient: &str, vital: Vital, value: f64, t: i64) -> Reading {
    Reading {
        device: Arc::from(device),
        patient: Arc::from(patient),
        vital,
        value,
        device_time: Some(Timestamp(t - 70)),
        gateway_time: Timestamp(t),
        quality: Quality::NONE,
    }
}

/// A heart-rate strap's notification: a heart rate and R–R intervals in
/// 1/1024 s (so the R–R column takes value code 10).
fn strap(t: i64, rate: f64, intervals_1024: &[u32]) -> Vec<Reading> {
    let mut batch = vec![reading("hr-1", "patient-a", Vital::HeartRate, rate, t)];
    for &i in intervals_1024 {
        let ms = f64::from(i) * 1000.0 / 1024.0;
        batch.push(reading("hr-1", "patient-a", Vital::RrInterval, ms, t));
    }
    batch
}

/// A pulse oximeter's sample without a device clock, with quality flags.
fn oximeter(t: i64, spo2: f64, rate: f64, pi: f64, quality: Quality) -> Vec<Reading> {
    [
        (Vital::Spo2, spo2),
        (Vital::PulseRate, rate),
        (Vital::PerfusionIndex, pi),
    ]
    .into_iter()
    .map(|(vital, value)| {
        let mut r = reading("ox-1", "patient-b", vital, value, t);
        r.device_time = None;
        r.quality = quality;
        r
    })
    .collect()
}

struct Fixture {
    dir: tempfile::TempDir,
    ledger: PathBuf,
    recipient: PathBuf,
    gateway_pub: PathBuf,
}

/// An alert message as the daemon delivers it: one line of JSON, with
/// non-ASCII text.
fn alert_message(event: &str, alert: &str) -> Vec<u8> {
    format!(
        r#"{{"event":"{event}","alert":"{alert}","patient":"patient-b","condition":"desaturation","text":"SpO₂ 84 % — NEWS2 7"}}"#
    )
    .into_bytes()
}

/// Two sealed blocks (and an open one) with a strap, an oximeter whose
/// readings carry quality flags and odd values (raw code 11: 0.1 + 0.2 and
/// −0.0), a thermometer (code 1), a cuff, and alert records: two in block
/// 0, one in block 1, one in the open block.
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let chain = common::ledger_chain(dir.path());
    let identity = IdentityKey::load(&chain.identity).unwrap();
    let gateway_pub = dir.path().join("identity.key.pub");
    std::fs::write(&gateway_pub, format!("{}\n", identity.public())).unwrap();
    let mut ledger = Ledger::open(
        &chain.directory,
        identity,
        chain.recipients.clone(),
        chain.seal,
    )
    .unwrap();

    for (block, base) in [(0, T0), (1, T0 + 60_000)] {
        for s in 0..6_i64 {
            let t = base + s * 1000;
            let beat = 960 + 8 * u32::try_from(s).unwrap();
            let quality = match s {
                2 | 3 => Quality::LOW_PERFUSION,
                4 => Quality::ARTIFACT | Quality::LOW_SIGNAL,
                _ => Quality::NONE,
            };
            let pi = match (block, s) {
                (0, 5) => 0.1 + 0.2,
                (1, 3) => -0.0,
                _ => 2.25 + 0.25 * s as f64,
            };
            let strap = strap(t + 20, 62.0 + s as f64, &[beat, beat + 3]);
            let ox = oximeter(t + 500, 97.0 - s as f64, 70.0 + s as f64, pi, quality);
            ledger.append(&[&strap, &ox], Timestamp(t + 600)).unwrap();
            let alerts: &[&[u8]] = match (block, s) {
                (0, 2) => &[
                    &alert_message("raised", "a-1"),
                    &alert_message("escalated", "a-1"),
                ],
                (1, 4) => &[&alert_message("acknowledged", "a-1")],
                _ => &[],
            };
            ledger.append_alerts(alerts, Timestamp(t + 700)).unwrap();
        }
        let mut temperature = reading("th-1", "patient-a", Vital::BodyTemperature, 36.6, base);
        temperature.device_time = None;
        let cuff = vec![
            reading("bp-1", "patient-b", Vital::SystolicBp, 121.0, base + 3000),
            reading("bp-1", "patient-b", Vital::DiastolicBp, 79.0, base + 3000),
        ];
        ledger
            .append(&[&[temperature], &cuff], Timestamp(base + 7000))
            .unwrap();
        ledger
            .seal(SealReason::Size, Timestamp(base + 8000))
            .unwrap();
    }
    let open = oximeter(T0 + 200_000, 95.0, 71.0, 2.0, Quality::NONE);
    ledger.append(&[&open], Timestamp(T0 + 200_000)).unwrap();
    ledger
        .append_alerts(
            &[&alert_message("resolved", "a-1")],
            Timestamp(T0 + 200_100),
        )
        .unwrap();
    drop(ledger);

    Fixture {
        ledger: chain.directory.clone(),
        recipient: dir.path().join("recipient.key"),
        gateway_pub,
        dir,
    }
}

/// Records of each sealed block: four devices' (in device id order), then
/// the block's alert records (in the order stored).
const RECORDS_PER_BLOCK: [u32; 2] = [6, 5];

/// `vitalgate prove` with these arguments, written to `name` in the
/// fixture's directory; also checked with `vitalgate check-proof`.
fn prove(f: &Fixture, name: &str, args: &[&str]) -> PathBuf {
    let out = vitalgate()
        .arg("prove")
        .arg("--ledger")
        .arg(&f.ledger)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "prove {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = f.dir.path().join(name);
    std::fs::write(&path, &out.stdout).unwrap();
    let check = vitalgate()
        .arg("check-proof")
        .arg("--gateway-key")
        .arg(&f.gateway_pub)
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "check-proof {name}: {}",
        String::from_utf8_lossy(&check.stdout)
    );
    path
}

fn all_proofs(f: &Fixture) -> Vec<PathBuf> {
    let recipient = f.recipient.to_str().unwrap();
    let mut proofs = Vec::new();
    for height in 0..2 {
        for index in 0..RECORDS_PER_BLOCK[height as usize] {
            let record = format!("{height}/{index}");
            proofs.push(prove(
                f,
                &format!("record-{height}-{index}.json"),
                &["--record", &record, "--identity", recipient],
            ));
        }
        proofs.push(prove(
            f,
            &format!("block-{height}.json"),
            &["--block", &height.to_string()],
        ));
    }
    proofs.push(prove(f, "consistency-1-2.json", &["--consistency", "1"]));
    proofs.push(prove(
        f,
        "block-0-of-1.json",
        &["--block", "0", "--size", "1"],
    ));
    proofs
}

fn check_proofs(f: &Fixture, proofs: &[PathBuf]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "proof".as_ref(),
        "--gateway-key".as_ref(),
        f.gateway_pub.as_os_str(),
        "--identity".as_ref(),
        f.recipient.as_os_str(),
    ];
    args.extend(proofs.iter().map(|p| p.as_os_str()));
    run_verifier(&args)
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}stderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rewrite one hex field of a proof with one byte changed (`from_end`
/// counts bytes back from its end).
fn tamper(proof: &Path, out: &Path, field: &[&str], from_end: usize) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(proof).unwrap()).unwrap();
    let mut target = &mut json;
    for key in field {
        target = &mut target[*key];
    }
    let hex = target.as_str().unwrap().to_owned();
    let at = hex.len() - 2 * from_end;
    let byte = u8::from_str_radix(&hex[at..at + 2], 16).unwrap() ^ 0x01;
    *target = Value::String(format!("{}{byte:02x}{}", &hex[..at], &hex[at + 2..]));
    std::fs::write(out, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

#[test]
fn the_python_verifier_checks_the_format_vectors() {
    let out = run_verifier(&["vectors".as_ref()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 7, "{}", text(&out));
    assert!(
        stdout.contains("ok Record contents: Test vector (alert record)"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("ok Key backup: Test vector"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.lines().all(|l| l.starts_with("ok ")),
        "{}",
        text(&out)
    );
}

#[test]
fn the_python_verifier_accepts_every_proof_and_refuses_changed_bytes() {
    let f = fixture();
    let proofs = all_proofs(&f);

    let out = check_proofs(&f, &proofs);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), proofs.len(), "{}", text(&out));
    assert!(
        stdout.lines().all(|l| l.starts_with("ok ")),
        "{}",
        text(&out)
    );
    // The records exercised what they were built for: the strap's R–R code
    // (10), the thermometer's one decimal (1), the oximeter's raw values
    // (11) among two-decimal ones (2), runs with quality bits, and the
    // alert records after the device records.
    let alert_bytes = alert_message("raised", "a-1").len();
    for needle in [
        "key unwrapped and derived",
        &format!(
            "record-0-4.json: record 4 of block 0 in the log of size 2: alert message of {alert_bytes} bytes recorded 2026-03-01T08:00:02.700Z decrypted and equal, key unwrapped and derived"
        ),
        "record-0-5.json: record 5 of block 0 in the log of size 2: alert message",
        "record-1-4.json: record 4 of block 1 in the log of size 2: alert message",
        "(value codes 0,10;",
        "(value codes 1;",
        "(value codes 0,2,11; runs with quality 1)",
        "(value codes 0,1,2,11; runs with quality 1)",
    ] {
        assert!(stdout.contains(needle), "no `{needle}` in:\n{}", text(&out));
    }

    // One byte of a record's bytes.
    let record = f.dir.path().join("record-0-1.json");
    let bad_record = f.dir.path().join("bad-record.json");
    tamper(&record, &bad_record, &["record", "bytes"], 20);
    // One byte of the header's signature (inside S, so it stays below L).
    let bad_signature = f.dir.path().join("bad-signature.json");
    tamper(&record, &bad_signature, &["block", "header"], 20);

    // One byte of an alert record's bytes; one character of the message the
    // proof gives for it; the same message with its members in another
    // order (the same JSON object, other bytes).
    let alert = f.dir.path().join("record-0-5.json");
    let bad_alert_record = f.dir.path().join("bad-alert-record.json");
    tamper(&alert, &bad_alert_record, &["record", "bytes"], 20);
    let mut json: Value = serde_json::from_slice(&std::fs::read(&alert).unwrap()).unwrap();
    let message = json["record"]["alert"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    json["record"]["alert"]["message"] = Value::String(message.replace("84", "85"));
    let bad_alert_message = f.dir.path().join("bad-alert-message.json");
    std::fs::write(&bad_alert_message, serde_json::to_vec(&json).unwrap()).unwrap();
    let reordered: Value = serde_json::from_str(&message).unwrap();
    json["record"]["alert"]["message"] = Value::String(reordered.to_string());
    assert_ne!(reordered.to_string(), message);
    let reordered_alert = f.dir.path().join("reordered-alert.json");
    std::fs::write(&reordered_alert, serde_json::to_vec(&json).unwrap()).unwrap();

    let out = check_proofs(
        &f,
        &[
            record.clone(),
            bad_record,
            bad_signature,
            bad_alert_record,
            bad_alert_message,
            reordered_alert,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{}", text(&out));
    assert!(
        lines[3].starts_with("FAIL ")
            && lines[3].contains("bad-alert-record.json")
            && lines[3].contains("record 5 is not in block 0"),
        "{}",
        text(&out)
    );
    for line in &lines[4..] {
        assert!(
            line.starts_with("FAIL ")
                && line.contains("is not the message the record holds (compared byte for byte)"),
            "{}",
            text(&out)
        );
    }
    assert!(lines[0].starts_with("ok "), "{}", text(&out));
    assert!(
        lines[1].starts_with("FAIL ")
            && lines[1].contains("bad-record.json")
            && lines[1].contains("record 1 is not in block 0"),
        "{}",
        text(&out)
    );
    assert!(
        lines[2].starts_with("FAIL ")
            && lines[2].contains("bad-signature.json")
            && lines[2].contains("block header: bad signature"),
        "{}",
        text(&out)
    );
}

#[test]
fn the_python_verifier_refuses_a_stranger_key_and_bad_usage() {
    let f = fixture();
    let record = prove(
        &f,
        "record-1-0.json",
        &[
            "--record",
            "1/0",
            "--identity",
            f.recipient.to_str().unwrap(),
        ],
    );
    let stranger = f.dir.path().join("stranger.key");
    RecipientKey::generate()
        .unwrap()
        .save_new(&stranger)
        .unwrap();
    let out = run_verifier(&[
        "proof".as_ref(),
        "--gateway-key".as_ref(),
        f.gateway_pub.as_os_str(),
        "--identity".as_ref(),
        stranger.as_os_str(),
        record.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is not wrapped for recipient kid"),
        "{}",
        text(&out)
    );

    // Another gateway's key: the signatures are not its.
    let other = f.dir.path().join("other.pub");
    std::fs::write(
        &other,
        format!("{}\n", IdentityKey::generate().unwrap().public()),
    )
    .unwrap();
    let out = run_verifier(&[
        "proof".as_ref(),
        "--gateway-key".as_ref(),
        other.as_os_str(),
        record.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not the gateway key's"),
        "{}",
        text(&out)
    );

    let missing = f.dir.path().join("missing.json");
    let out = run_verifier(&[
        "proof".as_ref(),
        "--gateway-key".as_ref(),
        f.gateway_pub.as_os_str(),
        missing.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = run_verifier(&["nonsense".as_ref()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
