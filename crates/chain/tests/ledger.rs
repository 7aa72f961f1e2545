//! The ledger end to end: write, seal, recover, read back, verify, prove.
//! The damage `verify` must name is swept in `tamper.rs`.

mod common;

use common::{fill, identity, open, other_identity, policy, reading, recipient};
use std::path::Path;
use std::sync::Arc;
use vitalgate_chain::crypto::keys::RecipientKey;
use vitalgate_chain::verify;
use vitalgate_chain::{BlockHeader, Ledger, LedgerError, LedgerReader, SealReason, decrypt, proof};
use vitalgate_devices::{Reading, Timestamp, Vital};

fn all_readings(dir: &Path, key: &RecipientKey) -> Vec<Reading> {
    let reader = LedgerReader::open(dir).unwrap();
    let mut heights: Vec<u64> = reader.headers().map(|h| h.unwrap().0).collect();
    if reader.open_block().unwrap().is_some() {
        heights.push(heights.len() as u64);
    }
    heights
        .into_iter()
        .flat_map(|h| decrypt::decrypt_block(&reader, h, key).unwrap())
        .flat_map(|r| r.readings)
        .collect()
}

#[test]
fn every_recipient_reads_back_exactly_what_was_written_and_the_ledger_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    let written = fill(&mut ledger, 3, 5);
    drop(ledger);
    assert_eq!(all_readings(dir.path(), &recipient(1)), written);
    assert_eq!(all_readings(dir.path(), &recipient(2)), written);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let summary = verify::verify(&reader, &identity().public()).unwrap();
    assert_eq!(
        (
            summary.blocks,
            summary.records,
            summary.readings,
            summary.tree_heads
        ),
        // One record per device in a sealed block.
        (3, 9, 30, 3)
    );
}

#[test]
fn someone_who_is_not_a_recipient_cannot_read_a_block() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    fill(&mut ledger, 1, 2);
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let err = decrypt::decrypt_block(&reader, 0, &recipient(9)).unwrap_err();
    assert!(
        matches!(err, decrypt::DecryptError::NotARecipient { height: 0, .. }),
        "{err}"
    );
}

#[test]
fn no_plaintext_reading_reaches_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    // A distinctive patient id and value, in a sealed and in an open block.
    // (Device ids do appear on disk, in the per-series watermarks, as they
    // do in the configuration file; they are not vitals.)
    let mut r = reading("ox-1", 0);
    r.patient = Arc::from("patient-plaintext-marker");
    r.value = 12345.6789;
    ledger.append(&[&[r.clone()]], Timestamp(0)).unwrap();
    ledger.seal(SealReason::Size, Timestamp(0)).unwrap();
    ledger.append(&[&[r]], Timestamp(0)).unwrap();
    drop(ledger);
    for entry in walk(dir.path()) {
        let bytes = std::fs::read(&entry).unwrap();
        for needle in [
            &b"patient-plaintext-marker"[..],
            &12345.6789f64.to_le_bytes()[..],
            &12345.6789f64.to_be_bytes()[..],
            &b"123456789"[..],
        ] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "{} holds plaintext {:?}",
                entry.display(),
                String::from_utf8_lossy(needle)
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn a_block_left_open_by_a_crash_is_sealed_on_the_next_start_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    let mut written = fill(&mut ledger, 1, 2);
    let batch = vec![reading("ox-1", 500), reading("ox-1", 501)];
    ledger.append(&[&batch], Timestamp(0)).unwrap();
    written.extend(batch);
    // A crash: the process ends without sealing (the content key is gone).
    drop(ledger);
    let mut ledger = open(dir.path(), 1000);
    assert_eq!(ledger.blocks(), 2);
    let batch = vec![reading("ox-1", 600)];
    ledger.append(&[&batch], Timestamp(0)).unwrap();
    written.extend(batch);
    ledger.seal(SealReason::Shutdown, Timestamp(0)).unwrap();
    drop(ledger);
    assert_eq!(all_readings(dir.path(), &recipient(1)), written);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let (_, recovered) = BlockHeader::decode(&reader.header(1).unwrap().unwrap()).unwrap();
    assert_eq!(recovered.reason, SealReason::Recovery);
    assert_eq!(recovered.readings, 2);
    verify::verify(&reader, &identity().public()).unwrap();
    // Sealing moved the recovered records out of the pending range.
    assert_eq!(reader.pending().count(), 0);
    assert_eq!(reader.records(1).unwrap().len(), 1);
}

#[test]
fn blocks_seal_at_the_configured_size_and_watermarks_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 4);
    for i in 0..10 {
        ledger
            .append(&[&[reading("ox-1", i)]], Timestamp(0))
            .unwrap();
        ledger.seal_if_due(Timestamp(0)).unwrap();
    }
    assert_eq!(ledger.blocks(), 2);
    assert_eq!(ledger.open_readings(), 2);
    drop(ledger);
    let ledger = open(dir.path(), 4);
    let mut marks: Vec<_> = ledger
        .watermarks()
        .map(|(d, v, t)| (d.to_string(), v, t))
        .collect();
    marks.sort_by_key(|m| m.2);
    let expected = vec![
        (
            "ox-1".to_owned(),
            Vital::Spo2,
            reading("ox-1", 8).device_time.unwrap(),
        ),
        (
            "ox-1".to_owned(),
            Vital::PulseRate,
            reading("ox-1", 9).device_time.unwrap(),
        ),
    ];
    assert_eq!(marks, expected);
}

#[test]
fn a_ledger_refuses_another_gateways_identity() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), 10));
    let other = other_identity();
    let err = Ledger::open(dir.path(), other, vec![recipient(1).public()], policy(10))
        .err()
        .unwrap();
    assert!(matches!(err, LedgerError::WrongIdentity { .. }), "{err}");
}

#[test]
fn proofs_of_a_block_a_record_and_consistency_check_offline_and_fail_when_altered() {
    let dir = tempfile::tempdir().unwrap();
    let written = fill(&mut open(dir.path(), 1000), 5, 4);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let public = identity().public();

    let p = proof::prove_block(&reader, 2, None).unwrap();
    let checked = proof::check(&p, &public).unwrap();
    assert_eq!((checked.height, checked.tree_size), (Some(2), 5));

    let p = proof::prove_record(&reader, 3, 1, &recipient(2), Some(4)).unwrap();
    let checked = proof::check(&p, &public).unwrap();
    // Block 3's record 1 is its second device's (ox-2's) readings; ox-1
    // sent two of the block's four batches.
    assert_eq!(checked.readings, written[3 * 8 + 4..3 * 8 + 6].to_vec());
    // The proof survives JSON.
    let json = serde_json::to_string(&p).unwrap();
    let back: proof::Proof = serde_json::from_str(&json).unwrap();
    proof::check(&back, &public).unwrap();
    // Claiming another value fails.
    let mut forged = back.clone();
    if let proof::Proof::Record { record, .. } = &mut forged {
        record.readings.as_mut().unwrap()[0].value += 1.0;
    }
    assert!(proof::check(&forged, &public).is_err());
    // Against another gateway key it fails.
    assert!(proof::check(&back, &other_identity().public()).is_err());

    let p = proof::prove_consistency(&reader, 2, None).unwrap();
    let checked = proof::check(&p, &public).unwrap();
    assert_eq!((checked.old_size, checked.tree_size), (Some(2), 5));
    let mut forged = p.clone();
    if let proof::Proof::Consistency { proof, .. } = &mut forged {
        proof[0] = "00".repeat(32);
    }
    assert!(proof::check(&forged, &public).is_err());

    // A block not covered by the tree head asked for cannot be proved.
    assert!(proof::prove_block(&reader, 4, Some(4)).is_err());
}

#[test]
fn a_ledger_in_use_is_named_as_such_after_waiting_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let _writer = open(dir.path(), 1000);
    let started = std::time::Instant::now();
    let err = LedgerReader::open(dir.path()).err().unwrap();
    assert!(
        err.to_string().contains("in use by another process"),
        "{err}"
    );
    // It waited for a handle being dropped to let go, then gave up.
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
}

#[test]
fn a_clock_set_back_across_a_restart_never_stamps_a_block_before_the_one_it_follows() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 1000);
    ledger
        .append(&[&[reading("ox-1", 0)]], Timestamp(2_000_000_000_000))
        .unwrap();
    ledger
        .seal(SealReason::Size, Timestamp(2_000_000_000_000))
        .unwrap();
    drop(ledger);
    // The gateway boots with its clock an hour behind.
    let mut ledger = open(dir.path(), 1000);
    let behind = Timestamp(2_000_000_000_000 - 3_600_000);
    ledger.append(&[&[reading("ox-1", 1)]], behind).unwrap();
    let sealed = ledger.seal(SealReason::Size, behind).unwrap().unwrap();
    assert_eq!(sealed.header.sealed_at, Timestamp(2_000_000_000_000));
    assert_eq!(sealed.tree_head.time, Timestamp(2_000_000_000_000));
    assert_eq!(sealed.header.height, 1, "appended in arrival order");
    drop(ledger);
    let reader = LedgerReader::open(dir.path()).unwrap();
    verify::verify(&reader, &identity().public()).unwrap();
}
