//! Alert records, the audit trail of alerts, escalations and
//! acknowledgements: written in the open block like readings, rewritten at
//! sealing after the device records, recovered after a crash, read back,
//! proved; and refused when a message is not one.

mod common;

use common::{identity, open, reading, recipient};
use std::path::Path;
use std::time::Duration;
use vitalgate_chain::content::{AlertError, MAX_ALERT_BYTES};
use vitalgate_chain::decrypt;
use vitalgate_chain::ledger::MAX_OPEN_ALERT_BYTES;
use vitalgate_chain::proof::{self, AlertEvidence, Proof, ProveError};
use vitalgate_chain::verify;
use vitalgate_chain::{
    Alert, AlertMessage, BlockHeader, Ledger, LedgerError, LedgerReader, RecordContent, SealPolicy,
    SealReason,
};
use vitalgate_devices::{Reading, Timestamp};

/// A message as the daemon writes them: compact JSON, non-ASCII allowed.
fn message(event: &str, n: u32) -> Vec<u8> {
    format!(r#"{{"event":"{event}","alert":"a-{n}","patient":"patient-1","text":"SpO₂ 84 %"}}"#)
        .into_bytes()
}

fn alert(event: &str, n: u32, t: i64) -> RecordContent {
    RecordContent::Alert(Alert {
        time: Timestamp(t),
        message: AlertMessage::new(&message(event, n)).unwrap(),
    })
}

fn contents(dir: &Path, height: u64) -> Vec<RecordContent> {
    let reader = LedgerReader::open(dir).unwrap();
    decrypt::decrypt_records(&reader, height, &recipient(1))
        .unwrap()
        .into_iter()
        .map(|r| r.content)
        .collect()
}

fn header(dir: &Path, height: u64) -> BlockHeader {
    let reader = LedgerReader::open(dir).unwrap();
    BlockHeader::decode(&reader.header(height).unwrap().unwrap())
        .unwrap()
        .1
}

/// Readings of ox-2, an alert (earlier than every reading), readings of
/// ox-1, an acknowledgement (later than every reading): four readings.
fn append_mixed(ledger: &mut Ledger) -> (Vec<Reading>, Vec<Reading>) {
    let ox2 = vec![reading("ox-2", 0), reading("ox-2", 1)];
    let ox1 = vec![reading("ox-1", 2), reading("ox-1", 3)];
    ledger.append(&[&ox2], Timestamp(0)).unwrap();
    ledger
        .append_alerts(&[&message("raised", 1)], Timestamp(1_600_000_000_000))
        .unwrap();
    ledger.append(&[&ox1], Timestamp(0)).unwrap();
    ledger
        .append_alerts(&[&message("acknowledged", 1)], Timestamp(1_800_000_000_000))
        .unwrap();
    (ox1, ox2)
}

#[test]
fn alert_records_survive_every_kind_of_seal_after_the_device_records_in_append_order() {
    for reason in [SealReason::Size, SealReason::Age, SealReason::Shutdown] {
        let dir = tempfile::tempdir().unwrap();
        let age = match reason {
            SealReason::Age => Duration::ZERO,
            _ => Duration::from_secs(3600),
        };
        let max_readings = match reason {
            SealReason::Size => 4,
            _ => 1000,
        };
        let mut ledger = Ledger::open(
            dir.path(),
            identity(),
            vec![recipient(1).public(), recipient(2).public()],
            SealPolicy {
                max_readings,
                max_age: age,
            },
        )
        .unwrap();
        let (ox1, ox2) = append_mixed(&mut ledger);
        assert_eq!((ledger.open_readings(), ledger.open_alerts()), (4, 2));
        let sealed = match reason {
            SealReason::Shutdown => ledger.seal(reason, Timestamp(0)),
            _ => ledger.seal_if_due(Timestamp(0)),
        }
        .unwrap()
        .unwrap();
        assert_eq!(sealed.header.reason, reason);
        assert_eq!(ledger.open_alerts(), 0);
        drop(ledger);

        let h = header(dir.path(), 0);
        // `readings` counts readings only, `records` every record, and the
        // time range covers the alert records' times too.
        assert_eq!((h.readings, h.records), (4, 4), "{reason:?}");
        assert_eq!(
            (h.first, h.last),
            (Timestamp(1_600_000_000_000), Timestamp(1_800_000_000_000))
        );
        let expected = vec![
            RecordContent::Readings(ox1.clone()),
            RecordContent::Readings(ox2.clone()),
            alert("raised", 1, 1_600_000_000_000),
            alert("acknowledged", 1, 1_800_000_000_000),
        ];
        assert_eq!(contents(dir.path(), 0), expected, "{reason:?}");
        // Every recipient reads them; the readings-only view skips them.
        let reader = LedgerReader::open(dir.path()).unwrap();
        let records = decrypt::decrypt_records(&reader, 0, &recipient(2)).unwrap();
        assert_eq!(
            records.iter().map(|r| &r.content).collect::<Vec<_>>(),
            expected.iter().collect::<Vec<_>>()
        );
        let block = decrypt::decrypt_block(&reader, 0, &recipient(1)).unwrap();
        assert_eq!(
            block.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1]
        );
        let summary = verify::verify(&reader, &identity().public()).unwrap();
        assert_eq!((summary.records, summary.readings), (4, 4));
    }
}

#[test]
fn the_open_block_reads_back_its_alert_records_where_they_were_appended() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    let (ox1, ox2) = append_mixed(&mut ledger);
    // Held by the gateway while open; read from a copy here (sled locks
    // the directory), as `vitalgate open` reads a stopped gateway's.
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let records = decrypt::decrypt_records(&reader, 0, &recipient(1)).unwrap();
    assert_eq!(
        records.into_iter().map(|r| r.content).collect::<Vec<_>>(),
        vec![
            RecordContent::Readings(ox2),
            alert("raised", 1, 1_600_000_000_000),
            RecordContent::Readings(ox1),
            alert("acknowledged", 1, 1_800_000_000_000),
        ]
    );
}

#[test]
fn a_block_of_alert_records_alone_seals_with_their_time_range_and_no_readings() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    // A device gone silent: alerts, no readings.
    ledger
        .append_alerts(
            &[&message("raised", 7), &message("escalated", 7)],
            Timestamp(1_700_000_000_000),
        )
        .unwrap();
    ledger
        .append_alerts(&[&message("acknowledged", 7)], Timestamp(1_700_000_060_000))
        .unwrap();
    ledger
        .seal(SealReason::Shutdown, Timestamp(0))
        .unwrap()
        .unwrap();
    drop(ledger);
    let h = header(dir.path(), 0);
    assert_eq!((h.readings, h.records), (0, 3));
    assert_eq!(
        (h.first, h.last),
        (Timestamp(1_700_000_000_000), Timestamp(1_700_000_060_000))
    );
    assert_eq!(
        contents(dir.path(), 0),
        vec![
            alert("raised", 7, 1_700_000_000_000),
            alert("escalated", 7, 1_700_000_000_000),
            alert("acknowledged", 7, 1_700_000_060_000),
        ]
    );
    let reader = LedgerReader::open(dir.path()).unwrap();
    assert!(
        decrypt::decrypt_block(&reader, 0, &recipient(1))
            .unwrap()
            .is_empty()
    );
    verify::verify(&reader, &identity().public()).unwrap();
}

#[test]
fn alert_records_pending_at_a_crash_are_sealed_in_the_recovery_block_as_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    let (ox1, ox2) = append_mixed(&mut ledger);
    // A crash: the process ends without sealing (the content key is gone).
    drop(ledger);
    let mut ledger = open(dir.path(), 1000);
    assert_eq!(ledger.blocks(), 1);
    // The next block takes alerts as usual.
    ledger
        .append_alerts(&[&message("resolved", 1)], Timestamp(1_900_000_000_000))
        .unwrap();
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();
    drop(ledger);

    let h = header(dir.path(), 0);
    assert_eq!(h.reason, SealReason::Recovery);
    // The range and counts came from the pending records' unsigned
    // prefixes: an alert record counts no readings, its time both ends.
    assert_eq!((h.readings, h.records), (4, 4));
    assert_eq!(
        (h.first, h.last),
        (Timestamp(1_600_000_000_000), Timestamp(1_800_000_000_000))
    );
    // Not compacted: the records stay in the order written.
    assert_eq!(
        contents(dir.path(), 0),
        vec![
            RecordContent::Readings(ox2),
            alert("raised", 1, 1_600_000_000_000),
            RecordContent::Readings(ox1),
            alert("acknowledged", 1, 1_800_000_000_000),
        ]
    );
    assert_eq!(
        contents(dir.path(), 1),
        vec![alert("resolved", 1, 1_900_000_000_000)]
    );
    let reader = LedgerReader::open(dir.path()).unwrap();
    verify::verify(&reader, &identity().public()).unwrap();
    assert_eq!(reader.pending().count(), 0);
}

#[test]
fn a_message_that_is_not_one_line_of_json_or_is_too_large_is_refused_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    ledger
        .append(&[&[reading("ox-1", 0)]], Timestamp(0))
        .unwrap();
    let good = message("raised", 1);
    let oversize = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_ALERT_BYTES));
    let cases: [(&[u8], &str); 5] = [
        (b"{\"text\":\"\xff\"}", "is not UTF-8 (byte 9)"),
        (oversize.as_bytes(), "the ledger takes at most 65536"),
        (b"{\"a\":1,\n\"b\":2}", "line break at byte 7"),
        (b"[\"not an object\"]", "must be one JSON object"),
        (b"{\"a\":}", "is not JSON"),
    ];
    for (bad, says) in cases {
        let err = ledger
            .append_alerts(&[&good, bad], Timestamp(0))
            .unwrap_err();
        assert!(
            matches!(
                err,
                LedgerError::Alert {
                    index: 1,
                    count: 2,
                    ..
                }
            ),
            "{err}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("alert message 1 of the 2 given: ") && text.contains(says),
            "{text}"
        );
    }
    let err = ledger.append_alerts(&[b"{} "], Timestamp(0)).unwrap_err();
    assert!(
        matches!(
            err,
            LedgerError::Alert {
                source: AlertError::NotAnObject,
                ..
            }
        ),
        "{err}"
    );
    // Nothing of the refused calls was written, and the ledger still
    // takes alerts (a refusal is not a storage failure).
    assert_eq!((ledger.open_readings(), ledger.open_alerts()), (1, 0));
    ledger.append_alerts(&[&good], Timestamp(5)).unwrap();
    ledger.append_alerts(&[], Timestamp(6)).unwrap();
    assert_eq!(ledger.open_alerts(), 1);
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    assert_eq!(reader.pending().count(), 2);
}

#[test]
fn alert_records_bring_no_size_seal_nearer_but_a_flood_of_them_seals_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 2);
    for n in 0..5 {
        ledger
            .append_alerts(&[&message("raised", n)], Timestamp(0))
            .unwrap();
    }
    assert!(ledger.seal_if_due(Timestamp(0)).unwrap().is_none());
    assert_eq!((ledger.open_readings(), ledger.open_alerts()), (0, 5));
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();

    let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_ALERT_BYTES - 8));
    let n = MAX_OPEN_ALERT_BYTES.div_ceil(MAX_ALERT_BYTES);
    for i in 0..n {
        ledger
            .append_alerts(&[big.as_bytes()], Timestamp(0))
            .unwrap();
        let sealed = ledger.seal_if_due(Timestamp(0)).unwrap();
        assert_eq!(sealed.is_some(), i == n - 1, "after {} messages", i + 1);
    }
    drop(ledger);
    let h = header(dir.path(), 1);
    assert_eq!(
        (h.reason, h.records, h.readings),
        (SealReason::Size, n as u32, 0)
    );
}

#[test]
fn a_proof_of_an_alert_record_carries_its_message_and_fails_when_it_is_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    append_mixed(&mut ledger);
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let public = identity().public();

    // Record 2 is the first alert (after ox-1's and ox-2's records).
    let p = proof::prove_record(&reader, 0, 2, &recipient(2), None).unwrap();
    let given = AlertEvidence {
        time: Timestamp(1_600_000_000_000),
        message: String::from_utf8(message("raised", 1)).unwrap(),
    };
    let Proof::Record { record, .. } = &p else {
        panic!("{p:?}")
    };
    assert_eq!(
        (&record.readings, &record.alert),
        (&None, &Some(given.clone()))
    );
    let checked = proof::check(&p, &public).unwrap();
    assert_eq!((checked.alert, checked.readings), (Some(given), Vec::new()));

    // In JSON: `alert` with the message as a string, no `readings`.
    let json: serde_json::Value = serde_json::to_value(&p).unwrap();
    assert_eq!(
        json["record"]["alert"],
        serde_json::json!({
            "time": "2020-09-13T12:26:40.000Z",
            "message": String::from_utf8(message("raised", 1)).unwrap(),
        })
    );
    assert!(json["record"].get("readings").is_none());
    let back: Proof = serde_json::from_value(json).unwrap();
    proof::check(&back, &public).unwrap();

    let forge = |edit: &dyn Fn(&mut proof::RecordEvidence)| {
        let mut forged = p.clone();
        if let Proof::Record { record, .. } = &mut forged {
            edit(record);
        }
        proof::check(&forged, &public).unwrap_err()
    };
    // One character of the message, the same JSON with other spacing, or
    // another time: not what the record holds.
    let err = forge(&|r| {
        let a = r.alert.as_mut().unwrap();
        a.message = a.message.replace("84", "85");
    });
    assert!(matches!(err, ProveError::AlertDiffers), "{err}");
    let err = forge(&|r| {
        let a = r.alert.as_mut().unwrap();
        a.message = a.message.replacen(':', ": ", 1);
    });
    assert!(matches!(err, ProveError::AlertDiffers), "{err}");
    let err = forge(&|r| r.alert.as_mut().unwrap().time = Timestamp(0));
    assert!(matches!(err, ProveError::AlertDiffers), "{err}");
    // Claiming readings instead, or nothing.
    let err = forge(&|r| {
        r.alert = None;
        r.readings = Some(Vec::new());
    });
    assert_eq!(
        err.to_string(),
        "the record holds an alert message, but the proof gives readings"
    );
    let err = forge(&|r| r.alert = None);
    assert!(matches!(err, ProveError::ContentKind { .. }), "{err}");

    // A record of readings in the same block still proves its readings,
    // and an alert claimed for it fails.
    let p = proof::prove_record(&reader, 0, 0, &recipient(1), None).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    assert!(json["record"].get("alert").is_none());
    assert_eq!(json["record"]["readings"].as_array().unwrap().len(), 2);
    let mut forged = p.clone();
    if let Proof::Record { record, .. } = &mut forged {
        record.alert = Some(AlertEvidence {
            time: Timestamp(0),
            message: "{}".into(),
        });
    }
    let err = proof::check(&forged, &public).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the record holds readings, but the proof gives both readings and an alert message"
    );
}

#[test]
fn no_plaintext_alert_message_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    let marker = br#"{"event":"raised","text":"alert-plaintext-marker"}"#;
    ledger.append_alerts(&[marker], Timestamp(0)).unwrap();
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();
    ledger.append_alerts(&[marker], Timestamp(0)).unwrap();
    drop(ledger);
    let mut files = vec![dir.path().to_path_buf()];
    let mut checked = 0;
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(b"alert-plaintext-marker".len())
                .any(|w| w == b"alert-plaintext-marker"),
            "{} holds the alert message in plaintext",
            path.display()
        );
        checked += 1;
    }
    assert!(checked > 0);
}

#[test]
fn a_proof_naming_readings_or_alert_as_null_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    append_mixed(&mut ledger);
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let p = proof::prove_record(&reader, 0, 3, &recipient(1), None).unwrap();
    let mut json = serde_json::to_value(&p).unwrap();
    json["record"]["readings"] = serde_json::Value::Null;
    assert!(serde_json::from_value::<Proof>(json.clone()).is_err());
    json["record"].as_object_mut().unwrap().remove("readings");
    json["record"]["alert"] = serde_json::Value::Null;
    assert!(serde_json::from_value::<Proof>(json.clone()).is_err());
    // An unknown member of `alert` too.
    json["record"]["alert"] =
        serde_json::json!({"time": "2020-01-01T00:00:00Z", "message": "{}", "x": 1});
    assert!(serde_json::from_value::<Proof>(json).is_err());
}
