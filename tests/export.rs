//! `vitalgate export --format fhir`, run as a user runs it, on a ledger of
//! known readings written with the ledger's own API.

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::{Ledger, SealReason};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// 2026-03-01T08:00:00.000Z.
const T0: i64 = 1_772_352_000_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn vitalgate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitalgate"))
}

fn reading(device: &str, vital: Vital, value: f64, t: i64) -> Reading {
    Reading {
        device: Arc::from(device),
        patient: Arc::from("patient-7"),
        vital,
        value,
        device_time: Some(Timestamp(t)),
        gateway_time: Timestamp(t + 400),
        quality: Quality::NONE,
    }
}

/// A ledger for two recipients (`recipient.key`, `second.key`): two sealed
/// blocks and an open one.
struct Fixture {
    _dir: tempfile::TempDir,
    ledger: PathBuf,
    recipient: PathBuf,
    second: PathBuf,
    stranger: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let chain = common::ledger_chain(dir.path());
    let second = RecipientKey::generate().unwrap();
    second.save_new(dir.path().join("second.key")).unwrap();
    RecipientKey::generate()
        .unwrap()
        .save_new(dir.path().join("stranger.key"))
        .unwrap();
    let mut recipients = chain.recipients.clone();
    recipients.push(second.public());
    let mut ledger = Ledger::open(
        &chain.directory,
        IdentityKey::load(&chain.identity).unwrap(),
        recipients,
        chain.seal,
    )
    .unwrap();

    // Block 0: a pulse oximeter, a thermometer without its own clock, and a
    // cuff whose systolic and diastolic arrive in separate messages.
    let mut pulse = reading("ox-1", Vital::PulseRate, 72.0, T0);
    pulse.quality = Quality::ARTIFACT;
    let mut temperature = reading("th-1", Vital::BodyTemperature, 37.2, 0);
    temperature.device_time = None;
    temperature.gateway_time = Timestamp(T0 + 30 * MIN);
    let oximeter = vec![
        reading("ox-1", Vital::Spo2, 97.0, T0),
        pulse,
        reading("ox-1", Vital::PerfusionIndex, 2.5, T0),
    ];
    let cuff_systolic = vec![reading("bp-1", Vital::SystolicBp, 121.0, T0 + 10 * MIN)];
    let cuff_rest = vec![
        reading("bp-1", Vital::DiastolicBp, 79.0, T0 + 10 * MIN),
        reading("bp-1", Vital::MeanArterialPressure, 93.0, T0 + 10 * MIN),
    ];
    ledger
        .append(
            &[&oximeter, &[temperature], &cuff_systolic, &cuff_rest],
            Timestamp(T0),
        )
        .unwrap();
    ledger
        .seal(SealReason::Size, Timestamp(T0 + 31 * MIN))
        .unwrap();

    // Block 1: a lone systolic, a wearable, a flagged SpO2.
    let mut low = reading("ox-1", Vital::Spo2, 84.0, T0 + HOUR);
    low.quality = Quality::LOW_PERFUSION;
    let batch = vec![
        reading("bp-1", Vital::SystolicBp, 135.0, T0 + HOUR),
        reading("hr-1", Vital::HeartRate, 64.0, T0 + HOUR),
        reading("hr-1", Vital::RespiratoryRate, 15.0, T0 + HOUR),
        reading("hr-1", Vital::RrInterval, 938.0, T0 + HOUR),
        low,
    ];
    ledger.append(&[&batch], Timestamp(T0 + HOUR)).unwrap();
    ledger
        .seal(SealReason::Size, Timestamp(T0 + HOUR + MIN))
        .unwrap();

    // The open block.
    let open = vec![reading("ox-1", Vital::Spo2, 96.0, T0 + 2 * HOUR)];
    ledger.append(&[&open], Timestamp(T0 + 2 * HOUR)).unwrap();
    drop(ledger);

    Fixture {
        ledger: chain.directory.clone(),
        recipient: dir.path().join("recipient.key"),
        second: dir.path().join("second.key"),
        stranger: dir.path().join("stranger.key"),
        _dir: dir,
    }
}

/// Readings written by [`fixture`].
const READINGS: usize = 13;

fn export(f: &Fixture, key: &Path, extra: &[&str]) -> Output {
    vitalgate()
        .args(["export", "--format", "fhir", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(key)
        .args(extra)
        .output()
        .unwrap()
}

fn bundle(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn observations(b: &Value) -> Vec<&Value> {
    b["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| &e["resource"]).collect())
        .unwrap_or_default()
}

/// The LOINC codes of an observation's `code`.
fn loinc(o: &Value) -> Vec<&str> {
    o["code"]["coding"]
        .as_array()
        .unwrap()
        .iter()
        .inspect(|c| assert_eq!(c["system"], "http://loinc.org"))
        .map(|c| c["code"].as_str().unwrap())
        .collect()
}

fn find<'a>(obs: &[&'a Value], code: &str, device: &str) -> Vec<&'a Value> {
    obs.iter()
        .copied()
        .filter(|o| loinc(o).last() == Some(&code) && o["device"]["display"] == device)
        .collect()
}

#[test]
fn export_writes_one_bundle_of_vital_signs_observations_with_loinc_codes_and_ucum_units() {
    let f = fixture();
    let out = export(&f, &f.recipient, &[]);
    let b = bundle(&out);
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "collection");
    // The newest gateway time among the readings.
    assert_eq!(b["timestamp"], "2026-03-01T10:00:00.400Z");
    let obs = observations(&b);
    // 13 readings, the cuff's 121/79 in one panel: 12 observations.
    assert_eq!(obs.len(), READINGS - 1, "{b:#}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("13 readings"), "{stderr}");

    let mut urls = std::collections::HashSet::new();
    for (e, o) in b["entry"].as_array().unwrap().iter().zip(&obs) {
        let url = e["fullUrl"].as_str().unwrap();
        assert!(url.starts_with("urn:uuid:") && url.len() == 45, "{url}");
        assert!(urls.insert(url), "duplicate {url}");
        assert_eq!(o["resourceType"], "Observation");
        assert_eq!(o["status"], "final");
        assert_eq!(
            o["category"][0]["coding"][0]["system"],
            "http://terminology.hl7.org/CodeSystem/observation-category"
        );
        assert_eq!(o["category"][0]["coding"][0]["code"], "vital-signs");
        assert_eq!(o["subject"]["identifier"]["value"], "patient-7");
        assert_eq!(o["subject"]["type"], "Patient");
        for q in std::iter::once(&o["valueQuantity"]).chain(
            o["component"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| &c["valueQuantity"]),
        ) {
            if !q.is_null() {
                assert_eq!(q["system"], "http://unitsofmeasure.org");
                assert_eq!(q["unit"], q["code"]);
            }
        }
    }

    // Sorted by measurement time.
    let times: Vec<&str> = obs
        .iter()
        .map(|o| o["effectiveDateTime"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted);

    // Code and unit of each vital, profile claimed only where the R4
    // vital-signs profiles cover it.
    let expect = [
        ("ox-1", &["2708-6", "59408-5"][..], "%", Some("oxygensat")),
        ("ox-1", &["8867-4", "8889-8"][..], "/min", Some("heartrate")),
        ("ox-1", &["61006-3"][..], "%", None),
        ("th-1", &["8310-5"][..], "Cel", Some("bodytemp")),
        ("hr-1", &["8867-4"][..], "/min", Some("heartrate")),
        ("hr-1", &["9279-1"][..], "/min", Some("resprate")),
        ("hr-1", &["8637-4"][..], "ms", None),
        ("bp-1", &["8478-0"][..], "mm[Hg]", None),
    ];
    for (device, codes, unit, profile) in expect {
        let o = find(&obs, codes[codes.len() - 1], device);
        let o = o
            .first()
            .unwrap_or_else(|| panic!("no {codes:?} from {device}"));
        assert_eq!(loinc(o), codes);
        assert_eq!(o["valueQuantity"]["code"], unit, "{codes:?}");
        match profile {
            Some(p) => assert_eq!(
                o["meta"]["profile"],
                serde_json::json!([format!("http://hl7.org/fhir/StructureDefinition/{p}")])
            ),
            None => assert!(o.get("meta").is_none(), "{codes:?} claims {}", o["meta"]),
        }
    }

    // Device time when there is one, else gateway time.
    let th = find(&obs, "8310-5", "th-1")[0];
    assert_eq!(th["effectiveDateTime"], "2026-03-01T08:30:00.000Z");
    assert_eq!(th["valueQuantity"]["value"], 37.2);
    let spo2 = find(&obs, "59408-5", "ox-1");
    assert_eq!(spo2[0]["effectiveDateTime"], "2026-03-01T08:00:00.000Z");
    assert_eq!(spo2[0]["issued"], "2026-03-01T08:00:00.400Z");
    assert_eq!(spo2[0]["valueQuantity"]["value"], 97);

    // Quality flags travel as a note.
    assert_eq!(spo2[1]["note"][0]["text"], "quality: low_perfusion");
    let pulse = find(&obs, "8889-8", "ox-1")[0];
    assert_eq!(pulse["note"][0]["text"], "quality: artifact");
    assert!(spo2[0].get("note").is_none());
}

#[test]
fn systolic_and_diastolic_of_one_cuff_reading_pair_into_one_blood_pressure_panel() {
    let f = fixture();
    let b = bundle(&export(&f, &f.recipient, &[]));
    let obs = observations(&b);
    let panels = find(&obs, "85354-9", "bp-1");
    assert_eq!(panels.len(), 2, "{b:#}");
    assert!(find(&obs, "8480-6", "bp-1").is_empty());
    assert!(find(&obs, "8462-4", "bp-1").is_empty());
    for p in &panels {
        assert_eq!(
            p["meta"]["profile"][0],
            "http://hl7.org/fhir/StructureDefinition/bp"
        );
        assert!(p.get("valueQuantity").is_none());
        let c = p["component"].as_array().unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0]["code"]["coding"][0]["code"], "8480-6");
        assert_eq!(c[1]["code"]["coding"][0]["code"], "8462-4");
    }
    // Stored in two records, paired by device and time.
    let pair = panels[0];
    assert_eq!(pair["effectiveDateTime"], "2026-03-01T08:10:00.000Z");
    assert_eq!(pair["component"][0]["valueQuantity"]["value"], 121);
    assert_eq!(pair["component"][0]["valueQuantity"]["code"], "mm[Hg]");
    assert_eq!(pair["component"][1]["valueQuantity"]["value"], 79);
    // A systolic with no diastolic: still a panel, the diastolic absent.
    let lone = panels[1];
    assert_eq!(lone["effectiveDateTime"], "2026-03-01T09:00:00.000Z");
    assert_eq!(lone["component"][0]["valueQuantity"]["value"], 135);
    assert!(lone["component"][1].get("valueQuantity").is_none());
    assert_eq!(
        lone["component"][1]["dataAbsentReason"]["coding"][0]["code"],
        "unknown"
    );
}

#[test]
fn the_time_window_selects_readings_and_keeps_their_ids() {
    let f = fixture();
    let all = bundle(&export(&f, &f.recipient, &[]));
    let out = export(
        &f,
        &f.recipient,
        &[
            "--from",
            "2026-03-01T08:30:00Z",
            "--to",
            "2026-03-01T10:00:00Z",
        ],
    );
    let some = bundle(&out);
    let obs = observations(&some);
    // The thermometer at 08:30 (included) and block 1 at 09:00; not the
    // 08:00/08:10 readings, not the 10:00 one (excluded).
    assert_eq!(obs.len(), 6, "{some:#}");
    for o in &obs {
        let t = o["effectiveDateTime"].as_str().unwrap();
        assert!(
            ("2026-03-01T08:30:00.000Z".."2026-03-01T10:00:00.000Z").contains(&t),
            "{t}"
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("6 readings"));
    let ids: Vec<&Value> = all["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["fullUrl"])
        .collect();
    for e in some["entry"].as_array().unwrap() {
        assert!(ids.contains(&&e["fullUrl"]), "{}", e["fullUrl"]);
    }
    // A window with nothing in it: an empty collection.
    let none = bundle(&export(&f, &f.recipient, &["--to", "2020-01-01T00:00:00Z"]));
    assert_eq!(
        none,
        serde_json::json!({"resourceType": "Bundle", "type": "collection"})
    );
}

#[test]
fn the_same_ledger_and_arguments_give_the_same_bytes_for_every_recipient() {
    let f = fixture();
    let first = export(&f, &f.recipient, &[]);
    let again = export(&f, &f.recipient, &[]);
    let other = export(&f, &f.second, &[]);
    assert!(first.status.success() && other.status.success());
    assert!(!first.stdout.is_empty());
    assert_eq!(first.stdout, again.stdout);
    assert_eq!(first.stdout, other.stdout);
}

#[test]
fn a_key_that_is_not_a_recipient_fails_clearly_and_writes_nothing() {
    let f = fixture();
    let out = export(&f, &f.stranger, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("error: recipient key "), "{stderr}");
    assert!(
        stderr.contains("can read none of the 3 blocks")
            && stderr.contains("not one of this ledger's recipients"),
        "{stderr}"
    );
    // `open` shares the walk, and the verdict.
    let out = vitalgate()
        .args(["open", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.stranger)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not one of this ledger's recipients"));
}

#[test]
fn bad_arguments_are_refused_before_anything_is_read() {
    let f = fixture();
    let missing = vitalgate()
        .args(["export", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--format"));
    let unknown = vitalgate()
        .args(["export", "--format", "hl7v2", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("fhir"));
    let no_ledger = vitalgate()
        .args(["export", "--format", "fhir", "--ledger"])
        .arg(f.ledger.join("nowhere"))
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert_eq!(no_ledger.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_ledger.stderr).contains("no ledger here"));
}

#[test]
fn open_still_reads_every_reading_through_the_shared_walk() {
    let f = fixture();
    let out = vitalgate()
        .args(["open", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .args(["--from", "2026-03-01T09:00:00Z"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[0]["block"], 1);
    assert_eq!(lines[5]["block"], 2);
    let all = vitalgate()
        .args(["open", "--ledger"])
        .arg(&f.ledger)
        .arg("--identity")
        .arg(&f.recipient)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&all.stdout).lines().count(),
        READINGS
    );
}
