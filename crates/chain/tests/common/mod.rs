//! Helpers shared by the ledger's integration tests: a fixed identity and
//! recipients, readings, ledgers filled to order, and raw edits of the
//! sled tree as an attacker with the disk would make them.
//!
//! Each test file compiles this module on its own and uses only part of
//! it, hence the `dead_code` allowance.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::verify::{self, VerifyError};
use vitalgate_chain::{Ledger, LedgerReader, SealPolicy, SealReason};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// Seed of the gateway identity every test ledger is written with.
pub const SEED: [u8; 32] = [7; 32];

/// The gateway's identity key.
pub fn identity() -> IdentityKey {
    IdentityKey::from_seed(&SEED)
}

/// Another gateway's identity key.
pub fn other_identity() -> IdentityKey {
    IdentityKey::from_seed(&[8; 32])
}

/// Recipient number `n`.
pub fn recipient(n: u8) -> RecipientKey {
    RecipientKey::from_bytes(&[n; 32])
}

/// Reading `i` of `device`: alternating SpO2 and pulse, one a second.
pub fn reading(device: &str, i: i64) -> Reading {
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

/// Seal by size at `max_readings`; never by age within a test.
pub fn policy(max_readings: u64) -> SealPolicy {
    SealPolicy {
        max_readings,
        max_age: Duration::from_secs(3600),
    }
}

/// Open (or create) the ledger in `dir` for recipients 1 and 2.
pub fn open(dir: &Path, max_readings: u64) -> Ledger {
    Ledger::open(
        dir,
        identity(),
        vec![recipient(1).public(), recipient(2).public()],
        policy(max_readings),
    )
    .unwrap()
}

/// The devices `fill` takes turns with, record by record.
pub const DEVICES: [&str; 3] = ["ox-1", "ox-2", "ox-3"];

/// Write `blocks` sealed blocks of `records` appended records of two
/// readings each, the devices taking turns. Returns the readings in the
/// order a sealed block stores them: by device, then as appended.
pub fn fill(ledger: &mut Ledger, blocks: u64, records: i64) -> Vec<Reading> {
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

/// What `verify` finds in the ledger in `dir`; panics if it finds nothing.
pub fn finding(dir: &Path) -> verify::Finding {
    match verify_dir(dir) {
        Err(VerifyError::Invalid(f)) => f,
        other => panic!("expected a finding, got {other:?}"),
    }
}

/// Run `verify` over the ledger in `dir` with the gateway's public key.
pub fn verify_dir(dir: &Path) -> Result<verify::Summary, VerifyError> {
    let reader = LedgerReader::open(dir).unwrap();
    verify::verify(&reader, &identity().public())
}

/// Open the ledger's sled database directly, without sled's background
/// flush thread, which can hold the directory's lock for a moment after
/// the handle is dropped and make the next open fail.
pub fn raw_db(dir: &Path) -> sled::Db {
    // A handle dropped a moment ago may still hold sled's lock (its thread
    // pool finishes writes after the drop); the ledger waits the same way.
    for _ in 0..300 {
        match sled::Config::new().path(dir).flush_every_ms(None).open() {
            Err(e) if vitalgate_chain::ledger::is_locked(&e) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => return other.unwrap(),
        }
    }
    panic!("{} stayed locked", dir.display())
}

/// Edit the raw sled tree (as an attacker with the disk would).
pub fn tamper(dir: &Path, edit: impl FnOnce(&sled::Tree)) {
    let db = raw_db(dir);
    let tree = db.open_tree("ledger").unwrap();
    edit(&tree);
    db.flush().unwrap();
}

/// Key of block `h`'s signed header.
pub fn header_key(h: u64) -> Vec<u8> {
    numbered_key(b'h', h)
}

/// Key of record `i` of block `h`.
pub fn record_key(h: u64, i: u32) -> Vec<u8> {
    let mut k = header_key(h);
    k[0] = b'r';
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// Key of the signed tree head for `size` blocks.
pub fn tree_head_key(size: u64) -> Vec<u8> {
    numbered_key(b't', size)
}

/// Key of the log state.
pub const STATE_KEY: &[u8] = b"state";

/// Key of the ledger's metadata.
pub const META_KEY: &[u8] = b"meta";

fn numbered_key(prefix: u8, n: u64) -> Vec<u8> {
    let mut k = vec![prefix];
    k.extend_from_slice(&n.to_be_bytes());
    k
}
