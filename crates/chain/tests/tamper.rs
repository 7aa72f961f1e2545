//! Every kind of damage `verify` must name, swept rather than hand-picked:
//! bit flips at many byte positions of every stored value of the sealed
//! chain and the log, and every deletion, swap, truncation and re-signing
//! at every height. Each case is applied in place in sled (as an attacker
//! with the disk would), verified, and undone before the next.

mod common;

use common::{
    META_KEY, STATE_KEY, fill, finding, header_key, identity, open, other_identity, raw_db,
    reading, recipient, record_key, tamper, tree_head_key,
};
use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;
use tempfile::TempDir;
use vitalgate_chain::crypto::cose;
use vitalgate_chain::crypto::keys::IdentityKey;
use vitalgate_chain::verify::{self, Finding, Problem, VerifyError};
use vitalgate_chain::{BlockHeader, LedgerReader, RecordContent, SealReason, TreeHead, decrypt};
use vitalgate_devices::{Reading, Timestamp};

/// Records per sealed block of the fixture (as appended; the ledger may
/// store fewer, so the sweeps read what is stored).
const RECORDS: [usize; 5] = [1, 2, 3, 5, 8];
/// Alert records per sealed block of the fixture, appended after its
/// first batch (sealing stores them after the device records).
const ALERTS: [usize; 5] = [0, 1, 0, 2, 1];
/// Sealed blocks of the fixture.
const BLOCKS: u64 = RECORDS.len() as u64;
/// Values up to this many bytes get a flip at every position.
const EXHAUSTIVE: usize = 256;
/// Leading bytes always flipped in larger values: the COSE_Sign1 tag,
/// array and protected header, the kid, and the head of the CBOR payload.
const STRUCTURAL: usize = 48;
/// Further positions, drawn at random, in larger values.
const SAMPLED: usize = 192;

/// An alert message of the audit trail, distinct per block and position.
fn alert_message(block: usize, n: usize) -> Vec<u8> {
    format!(r#"{{"event":"raised","alert":"a-{block}-{n}","patient":"patient-1","severity":"emergency"}}"#)
        .into_bytes()
}

/// A ledger of five sealed blocks (1, 2, 3, 5 and 8 records of 1–4
/// readings from three devices, for recipients 1 and 2, and 0, 1, 0, 2
/// and 1 alert records), a tree head per block, and an open block of two
/// records of readings and one alert record behind them, which verify
/// counts but does not judge.
fn fixture() -> Store {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = open(dir.path(), 10_000);
    let devices = ["ox-1", "hr-2", "cuff-3"];
    let mut i = 0;
    for (b, &records) in RECORDS.iter().enumerate() {
        for r in 0..records {
            let batch: Vec<Reading> = (0..1 + (b + r) % 4)
                .map(|_| {
                    i += 1;
                    reading(devices[(b + r) % devices.len()], i)
                })
                .collect();
            ledger.append(&[&batch], Timestamp(0)).unwrap();
            if r == 0 {
                let alerts: Vec<Vec<u8>> = (0..ALERTS[b]).map(|n| alert_message(b, n)).collect();
                let alerts: Vec<&[u8]> = alerts.iter().map(Vec::as_slice).collect();
                ledger
                    .append_alerts(&alerts, Timestamp(1_700_000_000_000 + b as i64))
                    .unwrap();
            }
        }
        ledger
            .seal(SealReason::Size, Timestamp(1_700_000_100_000 + b as i64))
            .unwrap()
            .unwrap();
    }
    let open_block = [vec![reading("ox-1", 900)], vec![reading("hr-2", 901)]];
    ledger
        .append(&[&open_block[0], &open_block[1]], Timestamp(0))
        .unwrap();
    ledger
        .append_alerts(&[&alert_message(9, 0)], Timestamp(1_700_000_200_000))
        .unwrap();
    drop(ledger);
    let db = raw_db(dir.path());
    let store = Store {
        tree: db.open_tree("ledger").unwrap(),
        db,
        dir,
    };
    let summary = store.verdict().unwrap().unwrap();
    assert_eq!((summary.blocks, summary.tree_heads), (BLOCKS, BLOCKS));
    assert_eq!(summary.open_records, 3);
    // The sweeps below flip, drop and swap alert records too.
    let reader = LedgerReader::from_db(store.db.clone(), store.dir.path()).unwrap();
    let alerts = (0..BLOCKS)
        .flat_map(|h| decrypt::decrypt_records(&reader, h, &recipient(1)).unwrap())
        .filter(|r| matches!(r.content, RecordContent::Alert(_)))
        .count();
    assert_eq!(alerts, ALERTS.iter().sum::<usize>());
    store
}

/// The fixture's sled database, held open for a whole sweep: edits go
/// straight into the tree and verify reads through the same handle
/// ([`LedgerReader::from_db`]), so no case pays for closing and reopening
/// sled with an fsync in between — thousands of cases take seconds, not
/// minutes. Edits are never flushed: the directory is thrown away.
struct Store {
    db: sled::Db,
    tree: sled::Tree,
    dir: TempDir,
}

/// Edits to the stored values: a new value, or `None` to remove.
type Edits = [(Vec<u8>, Option<Vec<u8>>)];

impl Store {
    /// The stored value under `key`.
    fn get(&self, key: &[u8]) -> Vec<u8> {
        self.tree.get(key).unwrap().unwrap().to_vec()
    }

    /// Verify, turning a panic into a message rather than ending the sweep.
    fn verdict(&self) -> Result<Result<verify::Summary, VerifyError>, String> {
        let reader = LedgerReader::from_db(self.db.clone(), self.dir.path()).unwrap();
        catch_unwind(AssertUnwindSafe(|| {
            verify::verify(&reader, &identity().public())
        }))
        .map_err(|p| {
            p.downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        })
    }

    /// Apply `edits`, verify, and put every touched key back as it was.
    fn verdict_after(&self, edits: &Edits) -> Result<Result<verify::Summary, VerifyError>, String> {
        let mut before = Vec::new();
        for (k, v) in edits {
            before.push((k.clone(), self.tree.get(k).unwrap()));
            match v {
                Some(v) => self.tree.insert(k.as_slice(), v.as_slice()).unwrap(),
                None => self.tree.remove(k).unwrap(),
            };
        }
        let out = self.verdict();
        for (k, v) in before.into_iter().rev() {
            match v {
                Some(v) => self.tree.insert(k, v).unwrap(),
                None => self.tree.remove(k).unwrap(),
            };
        }
        out
    }

    /// Every stored value of the sealed chain and the log: headers,
    /// records of sealed blocks, tree heads, the log state and the
    /// ledger's metadata.
    fn sealed_values(&self) -> BTreeMap<Part, (Vec<u8>, Vec<u8>)> {
        self.tree
            .iter()
            .map(Result::unwrap)
            .filter_map(|(k, v)| Some((Part::of(&k)?, (k.to_vec(), v.to_vec()))))
            .collect()
    }

    /// The stored record indices of each sealed block.
    fn record_indices(&self) -> Vec<Vec<u32>> {
        (0..BLOCKS)
            .map(|h| {
                self.tree
                    .scan_prefix(&record_key(h, 0)[..9])
                    .map(|kv| {
                        let k = kv.unwrap().0;
                        u32::from_be_bytes(k[9..13].try_into().unwrap())
                    })
                    .collect()
            })
            .collect()
    }
}

/// What a stored value is, by its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Header(u64),
    Record(u64, u32),
    TreeHead(u64),
    State,
    Meta,
}

impl Part {
    fn of(key: &[u8]) -> Option<Part> {
        let number = |range: std::ops::Range<usize>| -> Option<u64> {
            let bytes = key.get(range)?;
            let mut n = [0u8; 8];
            n[8 - bytes.len()..].copy_from_slice(bytes);
            Some(u64::from_be_bytes(n))
        };
        match (key.first()?, key.len()) {
            (b'h', 9) => Some(Part::Header(number(1..9)?)),
            (b'r', 13) => Some(Part::Record(number(1..9)?, number(9..13)? as u32)),
            (b't', 9) => Some(Part::TreeHead(number(1..9)?)),
            _ if key == STATE_KEY => Some(Part::State),
            _ if key == META_KEY => Some(Part::Meta),
            _ => None,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Part::Header(_) => "header",
            Part::Record(..) => "record",
            Part::TreeHead(_) => "tree head",
            Part::State => "state",
            Part::Meta => "meta",
        }
    }
}

/// The byte positions flipped in a value of `len` bytes: all of them up
/// to [`EXHAUSTIVE`] bytes; beyond, the structural head, the last byte and
/// a seeded sample of the rest.
fn positions(len: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    if len <= EXHAUSTIVE {
        return (0..len).collect();
    }
    let mut at: Vec<usize> = (0..STRUCTURAL).chain([len - 1]).collect();
    at.extend((0..SAMPLED).map(|_| rng.random_range(STRUCTURAL..len - 1)));
    at.sort_unstable();
    at.dedup();
    at
}

/// Whether `f` names `part` as the damaged place: the block's height for
/// its header and records (altered), nothing ledger-wide but the value in
/// the detail for a tree head or the log state (altered).
fn names(part: Part, f: &Finding) -> bool {
    match part {
        Part::Header(h) | Part::Record(h, _) => {
            f.height == Some(h) && f.problem == Problem::Altered
        }
        Part::TreeHead(size) => {
            f.height.is_none()
                && f.problem == Problem::Altered
                && f.detail.contains(&format!("tree head for size {size} "))
        }
        Part::State => {
            f.height.is_none() && f.problem == Problem::Altered && f.detail.contains("log state")
        }
        // The metadata is unsigned and names the gateway: a changed kid
        // reads as another gateway's ledger, anything else as unreadable.
        Part::Meta => {
            f.height.is_none()
                && (f.problem == Problem::WrongKey
                    || f.problem == Problem::Altered && f.detail.contains("metadata"))
        }
    }
}

/// Flip one bit at many byte positions of every stored value of the sealed
/// chain and the log; verify must never call the ledger valid, never
/// panic, and name the block the value belongs to: for a header or a
/// record its height (altered); for a tree head or the log state no
/// height (they are not blocks) but the tree size or "log state" in the
/// detail (altered); for the metadata no height, wrong key or altered.
/// A sealed record is its COSE_Encrypt0 bytes alone, every one of them
/// under the block's signed records root, so no flip may go unseen.
#[test]
fn a_flipped_bit_anywhere_in_the_sealed_chain_or_the_log_is_found_and_placed() {
    let started = Instant::now();
    let store = fixture();
    let values = store.sealed_values();
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a3d_e5c1_0b9f_4e21);
    let mut flips: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (&part, (key, original)) in &values {
        for at in positions(original.len(), &mut rng) {
            let mut flipped = original.clone();
            flipped[at] ^= 1 << rng.random_range(0..8);
            let outcome = store.verdict_after(&[(key.clone(), Some(flipped))]);
            *flips.entry(part.kind()).or_default() += 1;
            let wrong = match outcome {
                Err(panic) => Some(format!("panicked: {panic}")),
                Ok(Err(VerifyError::Invalid(f))) if names(part, &f) => None,
                Ok(Err(e)) => Some(format!("misplaced: {e}")),
                Ok(Ok(_)) => Some("called valid".into()),
            };
            if let Some(wrong) = wrong {
                failures.push(format!("{part:?} byte {at}: {wrong}"));
            }
        }
    }
    eprintln!(
        "flips by kind of value: {flips:?}; {:.1?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} flips not found and placed:\n{}",
        failures.len(),
        flips.values().sum::<usize>(),
        failures[..failures.len().min(40)].join("\n")
    );
    // Every flip was undone: the ledger verifies again.
    store.verdict().unwrap().unwrap();
}

/// Assert that verify names `height` and `problem` after `edits`.
fn expect(
    store: &Store,
    what: &str,
    edits: &Edits,
    height: Option<u64>,
    problem: Problem,
    failures: &mut Vec<String>,
) {
    match store.verdict_after(edits) {
        Ok(Err(VerifyError::Invalid(f))) if (f.height, f.problem) == (height, problem) => {}
        other => failures.push(format!(
            "{what}: expected {height:?} {problem:?}, got {other:?}"
        )),
    }
}

/// Remove every record of block `h`.
fn drop_records(indices: &[u32], h: u64) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    indices.iter().map(|&i| (record_key(h, i), None)).collect()
}

/// Re-sign a header's payload with `key`, as another gateway would.
fn resign_header(signed: &[u8], key: &IdentityKey) -> Vec<u8> {
    let (_, header) = BlockHeader::decode(signed).unwrap();
    header.sign(key)
}

/// Deletions, swaps, truncations and re-signings at every height, each
/// named with the right height and kind of damage.
#[test]
fn every_deletion_swap_truncation_and_resigning_is_named_with_its_height() {
    let store = fixture();
    let records = store.record_indices();
    let headers: Vec<Vec<u8>> = (0..BLOCKS).map(|h| store.get(&header_key(h))).collect();
    let tip = BLOCKS - 1;
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut case = |what: String, edits: Vec<_>, height, problem, failures: &mut Vec<String>| {
        cases += 1;
        expect(&store, &what, &edits, height, problem, failures);
    };

    for h in 0..BLOCKS {
        // A block gone from the middle is missing; gone from the end, the
        // chain is truncated (the log state still counts it).
        let gone = if h < tip {
            Problem::Missing
        } else {
            Problem::Truncated
        };
        case(
            format!("header {h} deleted"),
            vec![(header_key(h), None)],
            Some(h),
            gone,
            &mut failures,
        );
        let mut block = drop_records(&records[h as usize], h);
        block.push((header_key(h), None));
        case(
            format!("block {h} deleted"),
            block,
            Some(h),
            gone,
            &mut failures,
        );
        case(
            format!("records of block {h} deleted"),
            drop_records(&records[h as usize], h),
            Some(h),
            Problem::Missing,
            &mut failures,
        );
        for &i in &records[h as usize] {
            case(
                format!("record {i} of block {h} deleted"),
                vec![(record_key(h, i), None)],
                Some(h),
                Problem::Missing,
                &mut failures,
            );
        }
        for pair in records[h as usize].windows(2) {
            let (a, b) = (record_key(h, pair[0]), record_key(h, pair[1]));
            let (va, vb) = (store.get(&a), store.get(&b));
            case(
                format!("records {} and {} of block {h} swapped", pair[0], pair[1]),
                vec![(a, Some(vb)), (b, Some(va))],
                Some(h),
                Problem::Altered,
                &mut failures,
            );
        }
        // Truncated from height h on: the state still counts every block.
        let mut cut: Vec<_> = (h..BLOCKS)
            .flat_map(|k| {
                let mut block = drop_records(&records[k as usize], k);
                block.push((header_key(k), None));
                block
            })
            .collect();
        case(
            format!("chain truncated at {h}"),
            cut.clone(),
            Some(h),
            Problem::Truncated,
            &mut failures,
        );
        // ... also without the tree heads beyond it.
        cut.extend((h + 1..=BLOCKS).map(|s| (tree_head_key(s), None)));
        case(
            format!("chain and tree heads truncated at {h}"),
            cut,
            Some(h),
            Problem::Truncated,
            &mut failures,
        );
        // Re-signed by another gateway: as it is, and naming that gateway.
        let other = other_identity();
        case(
            format!("header {h} re-signed with another key"),
            vec![(
                header_key(h),
                Some(resign_header(&headers[h as usize], &other)),
            )],
            Some(h),
            Problem::WrongKey,
            &mut failures,
        );
        let (_, mut header) = BlockHeader::decode(&headers[h as usize]).unwrap();
        header.gateway = other.kid();
        case(
            format!("header {h} re-signed by and for another gateway"),
            vec![(header_key(h), Some(header.sign(&other)))],
            Some(h),
            Problem::WrongKey,
            &mut failures,
        );
        // Another key's signature under this gateway's kid cannot be told
        // from a damaged signature: altered.
        let forged = cose::Sign1::decode(&resign_header(&headers[h as usize], &other)).unwrap();
        let mut forged_bytes = forged.encode();
        let (theirs, ours) = (other.kid(), identity().kid());
        let at = forged_bytes
            .windows(16)
            .position(|w| w == theirs.as_bytes())
            .unwrap();
        forged_bytes[at..at + 16].copy_from_slice(ours.as_bytes());
        case(
            format!("header {h} signed with another key under this gateway's kid"),
            vec![(header_key(h), Some(forged_bytes))],
            Some(h),
            Problem::Altered,
            &mut failures,
        );
        // Re-signed tree head.
        let size = h + 1;
        let head = TreeHead::from_payload(
            &cose::Sign1::decode(&store.get(&tree_head_key(size)))
                .unwrap()
                .payload,
        )
        .unwrap();
        case(
            format!("tree head {size} re-signed with another key"),
            vec![(tree_head_key(size), Some(head.sign(&other)))],
            None,
            Problem::WrongKey,
            &mut failures,
        );
    }
    // A record added where no sealed block is: a sealed record for the
    // open block, a pending one for a sealed block.
    let sealed_record = store.get(&record_key(0, 0));
    case(
        "a sealed record added to the open block".into(),
        vec![(record_key(BLOCKS, 0), Some(sealed_record))],
        Some(BLOCKS),
        Problem::Altered,
        &mut failures,
    );
    let mut pending = record_key(1, 9);
    pending[0] = b'p';
    let pending_record = store.get(&{
        let mut k = record_key(BLOCKS, 0);
        k[0] = b'p';
        k
    });
    case(
        "a pending record added to sealed block 1".into(),
        vec![(pending, Some(pending_record))],
        Some(1),
        Problem::Altered,
        &mut failures,
    );
    for h in 0..tip {
        let (a, b) = (header_key(h), header_key(h + 1));
        case(
            format!("headers {h} and {} swapped", h + 1),
            vec![
                (a.clone(), Some(headers[h as usize + 1].clone())),
                (b.clone(), Some(headers[h as usize].clone())),
            ],
            Some(h),
            Problem::Reordered,
            &mut failures,
        );
        // Whole blocks swapped, records too.
        let mut swap = drop_records(&records[h as usize], h);
        swap.extend(drop_records(&records[h as usize + 1], h + 1));
        for (from, to) in [(h, h + 1), (h + 1, h)] {
            for &i in &records[from as usize] {
                swap.push((record_key(to, i), Some(store.get(&record_key(from, i)))));
            }
            swap.push((header_key(to), Some(headers[from as usize].clone())));
        }
        case(
            format!("blocks {h} and {} swapped", h + 1),
            swap,
            Some(h),
            Problem::Reordered,
            &mut failures,
        );
        let (s, t) = (tree_head_key(h + 1), tree_head_key(h + 2));
        let (vs, vt) = (store.get(&s), store.get(&t));
        case(
            format!("tree heads {} and {} swapped", h + 1, h + 2),
            vec![(s, Some(vt)), (t, Some(vs))],
            None,
            Problem::Reordered,
            &mut failures,
        );
    }
    eprintln!("{cases} structural cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    store.verdict().unwrap().unwrap();
}

#[test]
fn a_ledger_checked_against_another_gateways_key_is_named_wrong_key() {
    let dir = tempfile::tempdir().unwrap();
    fill(&mut open(dir.path(), 1000), 2, 3);
    let reader = LedgerReader::open(dir.path()).unwrap();
    match verify::verify(&reader, &other_identity().public()) {
        Err(VerifyError::Invalid(f)) => {
            assert_eq!((f.height, f.problem), (None, Problem::WrongKey), "{f}")
        }
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
    let block_1 = |t: &sled::Tree| -> Vec<(sled::IVec, sled::IVec)> {
        t.scan_prefix(&record_key(1, 0)[..9])
            .map(Result::unwrap)
            .collect()
    };
    let (donor_header, donor_records) = {
        let db = raw_db(b.path());
        let t = db.open_tree("ledger").unwrap();
        (t.get(header_key(1)).unwrap().unwrap(), block_1(&t))
    };
    tamper(a.path(), |t| {
        for (k, _) in block_1(t) {
            t.remove(k).unwrap();
        }
        t.insert(header_key(1), donor_header).unwrap();
        for (k, v) in donor_records {
            t.insert(k, v).unwrap();
        }
    });
    let f = finding(a.path());
    assert_eq!((f.height, f.problem), (Some(1), Problem::Altered), "{f}");
}
