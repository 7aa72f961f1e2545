//! How fast `verify` checks a ledger: the target is at least
//! 1,000,000 readings a second on the 2-core reference machine.
//!
//! Outside the timed part, a ledger of at least 1,000,000 readings is
//! written through the ordinary `Ledger` API: five devices (a pulse
//! oximeter, a heart-rate strap, a thermometer, a blood-pressure cuff and
//! a respiration band) each sending messages of 1–8 readings (one record
//! each, as one MQTT message or serial read is in the daemon), two
//! recipients, and the default seal policy's 4,096 readings per block
//! (sealed on size only, so the layout does not depend on how fast this
//! machine writes). The timed part is what `vitalgate verify` does: open
//! the ledger and verify it, best of three.
//!
//! Run: `cargo bench -p vitalgate-chain --bench verify [-- READINGS
//! [READINGS_PER_BLOCK]]` (defaults 1,000,000 and 4,096; fewer readings per
//! block, e.g. 300 for one minute of these devices at 1 Hz, shows the cost
//! per block: a signature, a hash link, a tree head and its signature).

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::{Ledger, LedgerReader, SealPolicy, SealReason, verify};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// Each device and the vitals it reports, with a typical value of each.
const DEVICES: [(&str, &[(Vital, f64)]); 5] = [
    (
        "oximeter-1",
        &[
            (Vital::Spo2, 96.0),
            (Vital::PulseRate, 72.0),
            (Vital::PerfusionIndex, 3.1),
        ],
    ),
    (
        "hr-strap-1",
        &[(Vital::HeartRate, 74.0), (Vital::RrInterval, 810.0)],
    ),
    ("thermometer-1", &[(Vital::BodyTemperature, 36.9)]),
    (
        "bp-cuff-1",
        &[
            (Vital::SystolicBp, 128.0),
            (Vital::DiastolicBp, 82.0),
            (Vital::MeanArterialPressure, 97.0),
        ],
    ),
    ("resp-band-1", &[(Vital::RespiratoryRate, 16.0)]),
];

/// Batches appended per commit (five simulated seconds): fewer fsyncs than
/// one commit a second, so building stays quick, and the records are the
/// same; a block overshoots its 4,096 readings by at most one commit.
const BATCHES_PER_COMMIT: usize = 25;

fn main() {
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let target = numbers.first().copied().unwrap_or(1_000_000);
    let per_block = numbers
        .get(1)
        .copied()
        .unwrap_or(SealPolicy::default().max_readings);
    let dir = std::env::temp_dir().join(format!("vitalgate-verify-{}", std::process::id()));
    let identity = IdentityKey::generate().unwrap();
    let public = identity.public();

    let began = Instant::now();
    let (readings, records) = build(&dir, identity, target, per_block);
    eprintln!(
        "built {readings} readings in {records} records in {:.1?}",
        began.elapsed()
    );
    let bytes = dir_size(&dir);

    let mut best = Duration::MAX;
    let mut summary = None;
    for run in 1..=3 {
        let started = Instant::now();
        let reader = LedgerReader::open(&dir).unwrap();
        let checked = verify::verify(&reader, &public).unwrap();
        drop(reader);
        let took = started.elapsed();
        eprintln!("run {run}: {took:.3?}");
        best = best.min(took);
        summary = Some(checked);
    }
    let summary = summary.unwrap();
    assert_eq!(summary.readings, readings);
    let secs = best.as_secs_f64();
    println!(
        "verify: {} readings, {} records, {} blocks, {} tree heads; ledger {:.1} MB on disk ({:.1} B/reading)",
        summary.readings,
        summary.records,
        summary.blocks,
        summary.tree_heads,
        bytes as f64 / 1e6,
        bytes as f64 / summary.readings as f64
    );
    println!(
        "verify: best of 3 {:.3} s: {:.0} readings/s, {:.0} records/s, {:.0} blocks/s",
        secs,
        summary.readings as f64 / secs,
        summary.records as f64 / secs,
        summary.blocks as f64 / secs
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Write at least `target` readings, all sealed; returns readings and
/// records written.
fn build(dir: &Path, identity: IdentityKey, target: u64, per_block: u64) -> (u64, u64) {
    let recipients = vec![
        RecipientKey::generate().unwrap().public(),
        RecipientKey::generate().unwrap().public(),
    ];
    let policy = SealPolicy {
        max_readings: per_block,
        max_age: Duration::from_secs(24 * 3600),
    };
    let mut ledger = Ledger::open(dir, identity, recipients, policy).unwrap();
    let patient: Arc<str> = Arc::from("patient-1");
    let devices: Vec<Arc<str>> = DEVICES.iter().map(|(id, _)| Arc::from(*id)).collect();
    // Seeded, so every run builds the same ledger.
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed_5eed_0f7e_51f1);
    let mut clock = 1_763_708_400_000i64;
    let (mut readings, mut records) = (0u64, 0u64);
    let mut commit: Vec<Vec<Reading>> = Vec::with_capacity(BATCHES_PER_COMMIT);
    while readings < target {
        for (device, (_, vitals)) in devices.iter().zip(DEVICES) {
            let n = 1 + (rng.random::<u64>() % 8) as usize;
            let batch = (0..n)
                .map(|i| {
                    let (vital, typical) = vitals[i % vitals.len()];
                    let noise = (rng.random::<u64>() % 1000) as f64 / 1000.0 - 0.5;
                    let at = clock + i as i64 * 100;
                    Reading {
                        device: Arc::clone(device),
                        patient: Arc::clone(&patient),
                        vital,
                        value: (typical * (1.0 + noise * 0.05) * 10.0).round() / 10.0,
                        device_time: Some(Timestamp(at - 40)),
                        gateway_time: Timestamp(at),
                        quality: Quality::NONE,
                    }
                })
                .collect::<Vec<_>>();
            readings += n as u64;
            records += 1;
            commit.push(batch);
        }
        clock += 1000;
        if commit.len() >= BATCHES_PER_COMMIT || readings >= target {
            let batches: Vec<&[Reading]> = commit.iter().map(Vec::as_slice).collect();
            ledger.append(&batches, Timestamp(clock)).unwrap();
            ledger.seal_if_due(Timestamp(clock)).unwrap();
            commit.clear();
        }
    }
    ledger.seal(SealReason::Shutdown, Timestamp(clock)).unwrap();
    (readings, records)
}

/// Bytes of every file under `dir`: what the ledger takes on disk.
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                dir_size(&e.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
