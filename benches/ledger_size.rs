//! Bytes on disk per reading for the simulator's 1 Hz vitals, everything
//! included: records, block headers, signatures, wrapped keys, tree heads,
//! watermarks and sled's own overhead — the size of the ledger directory.
//!
//! The demo cohort (`SimulationSpec::demo`: two pulse oximeters and a heart
//! rate strap at 1 Hz, a thermometer each minute, a cuff every five
//! minutes) is played for a simulated time as fast as the ledger takes it.
//! Each device sample becomes one batch, as one MQTT message or serial read
//! does in the daemon, and each simulated second is one group commit; the
//! default seal policy runs on simulated time. The device stamps the
//! sample; the gateway's time is its arrival, 2–40 ms later (seeded), as
//! over a home network: that jitter is what the gateway-time column costs.
//!
//! Run: `cargo bench --bench ledger_size [-- HOURS]` (default 24).

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use vitalgate_chain::crypto::keys::{IdentityKey, RecipientKey};
use vitalgate_chain::{Ledger, LedgerReader, SealPolicy, SealReason};
use vitalgate_devices::decode::Measurement;
use vitalgate_devices::{Reading, Timestamp, Vital};
use vitalsim::simulation::{Simulation, SimulationSpec};

fn main() {
    let hours: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(24);
    let dir = std::env::temp_dir().join(format!("vitalgate-size-{}", std::process::id()));
    let start = Timestamp(1_763_708_400_000);
    let mut spec = SimulationSpec::demo(7, start);
    spec.duration_ms = Some(hours * 3_600_000);
    let sim = Simulation::new(&spec).unwrap();
    let devices: Vec<(Arc<str>, Arc<str>)> = spec
        .devices
        .iter()
        .map(|d| (Arc::from(d.id.as_str()), Arc::from(d.patient.as_str())))
        .collect();
    let recipients = vec![
        RecipientKey::generate().unwrap().public(),
        RecipientKey::generate().unwrap().public(),
    ];
    let mut ledger = Ledger::open(
        &dir,
        IdentityKey::generate().unwrap(),
        recipients,
        SealPolicy::default(),
    )
    .unwrap();

    let began = Instant::now();
    let mut readings = 0u64;
    let mut second: Vec<Vec<Reading>> = Vec::new();
    let mut current = start.0 / 1000;
    // The daemon seals on its monotonic clock; here simulated time runs
    // fast, so the age rule is applied on simulated time.
    let max_age_s = SealPolicy::default().max_age.as_secs() as i64;
    let mut block_start = start.0 / 1000;
    let mut commit = |ledger: &mut Ledger, second: &mut Vec<Vec<Reading>>, now: Timestamp| {
        let batches: Vec<&[Reading]> = second.iter().map(Vec::as_slice).collect();
        ledger.append(&batches, now).unwrap();
        if ledger.seal_if_due(now).unwrap().is_some() {
            block_start = now.0 / 1000;
        } else if now.0 / 1000 - block_start >= max_age_s {
            ledger.seal(SealReason::Age, now).unwrap();
            block_start = now.0 / 1000;
        }
        second.clear();
    };
    let mut latency = ChaCha8Rng::seed_from_u64(11);
    for sample in sim {
        let t = sample.snapshot.time;
        let arrival = Timestamp(t.0 + latency.random_range(2..=40));
        if t.0 / 1000 != current {
            commit(&mut ledger, &mut second, Timestamp(current * 1000 + 999));
            current = t.0 / 1000;
        }
        let (device, patient) = &devices[sample.device];
        let batch: Vec<Reading> = Vital::ALL
            .iter()
            .filter_map(|&vital| {
                let value = sample.snapshot.get(vital)?;
                let m = Measurement {
                    vital,
                    value,
                    device_time: Some(t),
                    quality: sample.snapshot.quality,
                    offset: 0,
                };
                Some(Reading::from_measurement(&m, device, patient, arrival))
            })
            .collect();
        readings += batch.len() as u64;
        if !batch.is_empty() {
            second.push(batch);
        }
    }
    commit(&mut ledger, &mut second, Timestamp(current * 1000 + 999));
    let blocks = ledger.blocks();
    drop(ledger);
    let bytes = dir_size(&dir);
    let (mut headers, mut records, mut n_records) = (0usize, 0usize, 0usize);
    {
        let reader = LedgerReader::open(&dir).unwrap();
        for h in reader.headers() {
            let (height, header) = h.unwrap();
            headers += header.len();
            let r = reader.records(height).unwrap();
            n_records += r.len();
            records += r.iter().map(|r| r.bytes.len()).sum::<usize>();
        }
    }
    println!(
        "  logical: records {records} bytes ({n_records} records, {:.2} bytes/reading), headers {headers} bytes ({:.2} bytes/reading)",
        records as f64 / readings as f64,
        headers as f64 / readings as f64
    );
    println!(
        "ledger size: {hours} h of the demo cohort = {readings} readings in {blocks} blocks; {bytes} bytes on disk = {:.2} bytes/reading (written in {:.1} s)",
        bytes as f64 / readings as f64,
        began.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bytes the files under `dir` occupy (allocated blocks, as `du` counts).
fn dir_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let meta = entry.metadata().unwrap();
        total += if meta.is_dir() {
            dir_size(&entry.path())
        } else {
            meta.blocks() * 512
        };
    }
    total
}
