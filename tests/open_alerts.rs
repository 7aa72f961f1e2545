//! The audit trail from the command line: `vitalgate open --alerts` lists
//! the alert records as stored, `open` and `export` keep to readings, and
//! `prove --record` / `check-proof` prove an alert record like any other.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::Arc;
use vitalgate_chain::crypto::keys::IdentityKey;
use vitalgate_chain::{Ledger, SealReason};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// 2026-03-01T08:00:00.000Z.
const T0: i64 = 1_772_352_000_000;

fn vitalgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitalgate"))
}

fn reading(device: &str, vital: Vital, value: f64, t: i64) -> Reading {
    Reading {
        device: Arc::from(device),
        patient: Arc::from("patient-a"),
        vital,
        value,
        device_time: Some(Timestamp(t - 50)),
        gateway_time: Timestamp(t),
        quality: Quality::NONE,
    }
}

/// A message as the daemon delivers it (its members are the alert
/// format's; the ledger only needs one line of JSON).
fn message(event: &str) -> String {
    format!(
        r#"{{"event":"{event}","alert":"a-1","patient":"patient-a","text":"SpO₂ 84 %","score":7.50}}"#
    )
}

struct Fixture {
    dir: tempfile::TempDir,
    ledger: PathBuf,
    recipient: PathBuf,
    gateway_pub: PathBuf,
}

/// Block 0 (sealed): readings of two devices, a raised alert at T0 + 1 s,
/// more readings, an escalation at T0 + 61 s: records 0 and 1 are the
/// devices', 2 and 3 the alerts. The open block: an acknowledgement at
/// T0 + 120 s (record 0), then readings (record 1).
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
    let ox = |t| reading("ox-1", Vital::Spo2, 90.0, t);
    let hr = |t| reading("hr-1", Vital::HeartRate, 118.0, t);
    ledger
        .append(&[&[ox(T0)], &[hr(T0)]], Timestamp(T0))
        .unwrap();
    ledger
        .append_alerts(&[message("raised").as_bytes()], Timestamp(T0 + 1_000))
        .unwrap();
    ledger
        .append(&[&[ox(T0 + 60_000)]], Timestamp(T0 + 60_000))
        .unwrap();
    ledger
        .append_alerts(&[message("escalated").as_bytes()], Timestamp(T0 + 61_000))
        .unwrap();
    ledger
        .seal(SealReason::Shutdown, Timestamp(T0 + 62_000))
        .unwrap();
    ledger
        .append_alerts(
            &[message("acknowledged").as_bytes()],
            Timestamp(T0 + 120_000),
        )
        .unwrap();
    ledger
        .append(&[&[ox(T0 + 121_000)]], Timestamp(T0 + 121_000))
        .unwrap();
    drop(ledger);
    Fixture {
        ledger: chain.directory.clone(),
        recipient: dir.path().join("recipient.key"),
        gateway_pub,
        dir,
    }
}

fn open(f: &Fixture, args: &[&str]) -> Output {
    vitalgate()
        .arg("open")
        .arg("--ledger")
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn open_alerts_lists_every_alert_record_as_stored_in_ledger_order() {
    let f = fixture();
    let out = open(&f, &["--alerts"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let expected = [
        (0, 2, "2026-03-01T08:00:01.000Z", "raised"),
        (0, 3, "2026-03-01T08:01:01.000Z", "escalated"),
        (1, 0, "2026-03-01T08:02:00.000Z", "acknowledged"),
    ]
    .map(|(block, record, time, event)| {
        // The message byte for byte: `7.50` is not re-serialized as `7.5`,
        // and the members keep their order.
        format!(
            r#"{{"block":{block},"record":{record},"time":"{time}","alert":{}}}"#,
            message(event)
        )
    });
    let text = stdout(&out);
    assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["alert"]["patient"], "patient-a");
    }
    assert!(stderr(&out).contains("3 alert records"), "{}", stderr(&out));

    // --from (included) and --to (excluded) select on the recorded time.
    let out = open(
        &f,
        &[
            "--alerts",
            "--from",
            "2026-03-01T08:01:01Z",
            "--to",
            "2026-03-01T08:02:00Z",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).lines().collect::<Vec<_>>(), [&expected[1]]);

    // Alert messages are JSON: no CSV for them.
    let out = open(&f, &["--alerts", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--alerts writes JSON lines"));
}

#[test]
fn open_and_export_keep_to_readings_and_count_the_alert_records_they_pass_over() {
    let f = fixture();
    let out = open(&f, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(
        lines
            .iter()
            .all(|l| l.get("alert").is_none() && l["vital"].is_string())
    );
    // The open block's reading is its record 1, after the alert.
    assert_eq!(
        (&lines[3]["block"], &lines[3]["record"]),
        (&1.into(), &1.into())
    );
    assert!(
        stderr(&out).contains(
            "4 readings; 3 alert records not listed (`vitalgate open --alerts` lists them)"
        ),
        "{}",
        stderr(&out)
    );

    let out = vitalgate()
        .args(["export", "--format", "fhir", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let bundle: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(bundle["entry"].as_array().unwrap().len(), 4);
    assert!(!stdout(&out).contains("escalated"));
    assert!(
        stderr(&out).contains("3 alert records not listed"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_alert_record_is_proved_and_checked_from_the_command_line() {
    let f = fixture();
    let out = vitalgate()
        .args(["prove", "--record", "0/3", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let proof: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        proof["record"]["alert"],
        serde_json::json!({"time": "2026-03-01T08:01:01.000Z", "message": message("escalated")})
    );
    assert!(proof["record"].get("readings").is_none());

    let path = f.dir.path().join("alert-proof.json");
    std::fs::write(&path, &out.stdout).unwrap();
    let check = |path: &PathBuf| {
        vitalgate()
            .args(["check-proof", "--gateway-key"])
            .arg(&f.gateway_pub)
            .arg(path)
            .output()
            .unwrap()
    };
    let out = check(&path);
    assert!(out.status.success(), "{}", stdout(&out));
    let verdict: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["valid"], true);
    assert_eq!(verdict["proves"]["alert"]["message"], message("escalated"));

    // Another message under the same record: the proof does not hold.
    let forged = f.dir.path().join("forged.json");
    let mut json = proof.clone();
    json["record"]["alert"]["message"] = Value::String(message("resolved"));
    std::fs::write(&forged, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = check(&forged);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("not the one the record holds"));

    // The open block's alert is not sealed yet, so not provable yet.
    let out = vitalgate()
        .args(["prove", "--record", "1/0", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
