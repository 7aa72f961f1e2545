//! The ledger end to end: write, seal, recover, read back, verify, prove —
//! and every kind of damage `verify` must name.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::verify::{self, Problem, VerifyError};
use vitalgate_chain::{
    BlockHeader, Ledger, LedgerError, LedgerReader, SealPolicy, SealReason, decrypt, proof,
};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

const SEED: [u8; 32] = [7; 32];

fn identity() -> IdentityKey {
    IdentityKey::from_seed(&SEED)
}

fn recipient(n: u8) -> RecipientKey {
    RecipientKey::from_bytes(&[n; 32])
}

fn reading(device: &str, i: i64) -> Reading {
    Reading {
        device: Arc::from(device),
        patient: Arc::from("patient-1"),
        vital: if i % 2 == 0 {
            Vital::Spo2
        } else {
            Vital::PulseRate
        },
        value: 90.0 + (i % 10) as f64,
        device_time: Some(Timestamp(1_700_000_000_000 + i * 1000)),
        gateway_time: Timestamp(1_700_000_000_100 + i * 1000),
        quality: Quality::NONE,
    }
}

fn policy(max_readings: u64) -> SealPolicy {
    SealPolicy {
        max_readings,
        max_age: Duration::from_secs(3600),
    }
}

fn open(dir: &Path, max_readings: u64) -> Ledger {
    Ledger::open(
        dir,
        identity(),
        vec![recipient(1).public(), recipient(2).public()],
        policy(max_readings),
    )
    .unwrap()
}

/// The devices `fill` takes turns with, record by record.
const DEVICES: [&str; 3] = ["ox-1", "ox-2", "ox-3"];

/// Write `blocks` sealed blocks of `records` appended records of two
/// readings each, the devices taking turns. Returns the readings in the
/// order a sealed block stores them: by device, then as appended.
fn fill(ledger: &mut Ledger, blocks: u64, records: i64) -> Vec<Reading> {
    let mut all = Vec::new();
    let start = ledger.blocks() as i64 * 1000;
    for b in 0..blocks as i64 {
        let mut block = Vec::new();
        for r in 0..records {
            let i = start + b * 100 + r * 2;
            let device = DEVICES[r as usize % DEVICES.len()];
            let batch = vec![reading(device, i), reading(device, i + 1)];
            ledger.append(&[&batch], Timestamp(0)).unwrap();
            block.extend(batch);
        }
        block.sort_by(|a, b| a.device.cmp(&b.device));
        all.extend(block);
        ledger
            .seal(SealReason::Size, Timestamp(1_700_000_100_000))
            .unwrap()
            .unwrap();
    }
    all
}

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

fn finding(dir: &Path) -> verify::Finding {
    let reader = LedgerReader::open(dir).unwrap();
    match verify::verify(&reader, &identity().public()) {
        Err(VerifyError::Invalid(f)) => f,
        other => panic!("expected a finding, got {other:?}"),
    }
}

/// Edit the raw sled tree (as an attacker with the disk would).
fn tamper(dir: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = sled::open(dir).unwrap();
    let tree = db.open_tree("ledger").unwrap();
    edit(&tree);
    db.flush().unwrap();
}

fn header_key(h: u64) -> Vec<u8> {
    let mut k = vec![b'h'];
    k.extend_from_slice(&h.to_be_bytes());
    k
}

fn record_key(h: u64, i: u32) -> Vec<u8> {
    let mut k = vec![b'r'];
    k.extend_from_slice(&h.to_be_bytes());
    k.extend_from_slice(&i.to_be_bytes());
    k
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
    let other = IdentityKey::from_seed(&[8; 32]);
    let err = Ledger::open(dir.path(), other, vec![recipient(1).public()], policy(10))
        .err()
        .unwrap();
    assert!(matches!(err, LedgerError::WrongIdentity { .. }), "{err}");
}

#[test]
fn verify_names_an_altered_record() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 3, 3);
    tamper(dir.path(), |t| {
        let k = record_key(1, 2);
        let mut v = t.get(&k).unwrap().unwrap().to_vec();
        let last = v.len() - 1;
        v[last] ^= 1;
        t.insert(k, v).unwrap();
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(1), Problem::Altered), "{f}");
}

#[test]
fn verify_names_an_altered_header() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 3, 3);
    tamper(dir.path(), |t| {
        let mut v = t.get(header_key(2)).unwrap().unwrap().to_vec();
        let last = v.len() - 10;
        v[last] ^= 0x40;
        t.insert(header_key(2), v).unwrap();
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(2), Problem::Altered), "{f}");
}

#[test]
fn verify_names_a_missing_block_and_a_missing_record() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 4, 3);
    tamper(dir.path(), |t| {
        t.remove(header_key(1)).unwrap();
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(1), Problem::Missing), "{f}");

    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 4, 3);
    tamper(dir.path(), |t| {
        t.remove(record_key(2, 2)).unwrap();
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(2), Problem::Missing), "{f}");
}

#[test]
fn verify_names_reordered_blocks() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 4, 3);
    tamper(dir.path(), |t| {
        let a = t.get(header_key(1)).unwrap().unwrap();
        let b = t.get(header_key(2)).unwrap().unwrap();
        t.insert(header_key(1), b).unwrap();
        t.insert(header_key(2), a).unwrap();
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(1), Problem::Reordered), "{f}");
}

#[test]
fn verify_names_a_truncated_chain() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 4, 3);
    tamper(dir.path(), |t| {
        t.remove(header_key(3)).unwrap();
        for i in 0..3 {
            t.remove(record_key(3, i)).unwrap();
        }
    });
    let f = finding(dir.path());
    assert_eq!((f.height, f.problem), (Some(3), Problem::Truncated), "{f}");
}

#[test]
fn verify_names_the_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 2, 3);
    let reader = LedgerReader::open(dir.path()).unwrap();
    let other = IdentityKey::from_seed(&[8; 32]).public();
    match verify::verify(&reader, &other) {
        Err(VerifyError::Invalid(f)) => assert_eq!(f.problem, Problem::WrongKey, "{f}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_block_from_another_history_breaks_the_hash_link() {
    // Two ledgers of the same gateway; block 1 of one transplanted into the
    // other is correctly signed, but does not link.
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    fill(&mut open(a.path(), 1000), 3, 3);
    fill(&mut open(b.path(), 1000), 3, 2);
    let donor = {
        let db = sled::open(b.path()).unwrap();
        let t = db.open_tree("ledger").unwrap();
        (
            t.get(header_key(1)).unwrap().unwrap(),
            (0..2)
                .map(|i| t.get(record_key(1, i)).unwrap().unwrap())
                .collect::<Vec<_>>(),
        )
    };
    tamper(a.path(), |t| {
        t.insert(header_key(1), donor.0.clone()).unwrap();
        t.remove(record_key(1, 2)).unwrap();
        for (i, r) in donor.1.iter().enumerate() {
            t.insert(record_key(1, i as u32), r.clone()).unwrap();
        }
    });
    let f = finding(a.path());
    assert_eq!((f.height, f.problem), (Some(1), Problem::Altered), "{f}");
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
        record.readings[0].value += 1.0;
    }
    assert!(proof::check(&forged, &public).is_err());
    // Against another gateway key it fails.
    assert!(proof::check(&back, &IdentityKey::from_seed(&[8; 32]).public()).is_err());

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
