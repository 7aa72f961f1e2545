//! Detection against the simulator's ground truth.
//!
//! Plays `DAYS` simulated patient-days of every scenario kind (one patient
//! per day, each with its own seed), each patient wearing a pulse oximeter
//! (SpO2, pulse rate, perfusion index, 1 Hz), an ECG chest strap (heart
//! rate, R–R interval, 1 Hz), a temperature patch (every minute) and a
//! blood-pressure cuff (every 15 min). Every sample goes through one
//! [`PatientMonitor`] per patient, as fast as it runs; COPD patients are
//! configured on SpO2 Scale 2, as a clinician would. Conditions are then
//! scored against the labels:
//!
//! * **sensitivity**: a clinical label is detected when a clinical
//!   condition is active at some time in `[start, end + grace)`; grace is
//!   60 s, the emergency rules' longest sustain time, because a pulse
//!   oximeter averages ~8 s and a rule needs its sustain time after the
//!   value is seen (slower detectors — fever, the baseline — get no more:
//!   a drift raised minutes after an episode ended counts as false);
//! * **false clinical alerts**: clinical conditions *raised* outside every
//!   clinical label of the patient (with the same grace), per patient-day
//!   — including those raised during technical labels;
//! * **delay**: from a detected label's start to the first clinical
//!   condition raised in its window, and the same minus the sustain time
//!   of the detector that raised it (for the baseline, whose sustain
//!   differs by vital, the shortest: an upper bound on its delay beyond).
//!
//! Missed labels and false alerts are listed after the table (up to 200
//! of each), with the condition's summary.
//!
//! Run: `cargo run --release -p vitalgate-detect --example evaluate -- [DAYS] [SEED] [CONFIG.json]`
//! (defaults 20, 1 and [`MonitorConfig::default`]). `CONFIG.json` is a
//! `MonitorConfig` in JSON, every table optional (the sensitivity analysis
//! in docs/DETECTION.md is run this way).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use vitalgate_detect::monitor::{MonitorConfig, PatientMonitor, PatientSettings};
use vitalgate_detect::news2::Spo2Scale;
use vitalgate_detect::{Category, Condition, ConditionKind};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};
use vitalsim::simulation::{DeviceSpec, PatientSpec, Simulation, SimulationSpec};
use vitalsim::{Label, ScenarioKind};

const DAY_MS: i64 = 24 * 3_600_000;
const GRACE_MS: i64 = 60_000;
/// 2025-11-21T07:00:00Z.
const START: Timestamp = Timestamp(1_763_708_400_000);

/// A condition's identity within one patient: kind and device.
type OpenKey = (ConditionKind, Option<Arc<str>>);

/// One clinical or technical condition from raise to clear.
#[derive(Debug, Clone)]
struct Episode {
    kind: ConditionKind,
    device: Option<Arc<str>>,
    raised: Timestamp,
    cleared: Timestamp,
    summary: String,
}

#[derive(Default)]
struct Tally {
    patient_days: f64,
    labels: usize,
    detected: usize,
    missed: Vec<String>,
    delays_ms: Vec<i64>,
    beyond_ms: Vec<i64>,
    false_alerts: usize,
    false_during_technical: usize,
    false_by_kind: BTreeMap<ConditionKind, usize>,
    false_examples: Vec<String>,
    by_detector: BTreeMap<ConditionKind, usize>,
    technical_labels: usize,
    technical_detected: usize,
    technical_raised: BTreeMap<ConditionKind, usize>,
}

fn spec(kind: ScenarioKind, seed: u64) -> SimulationSpec {
    let d = |id: &str, vitals: Vec<Vital>, period_ms| DeviceSpec {
        id: id.into(),
        patient: "p".into(),
        vitals,
        period_ms,
    };
    SimulationSpec {
        seed,
        start: START,
        duration_ms: Some(DAY_MS),
        patients: vec![PatientSpec {
            id: "p".into(),
            scenario: kind,
        }],
        devices: vec![
            d(
                "ox",
                vec![Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex],
                1_000,
            ),
            d("hr", vec![Vital::HeartRate, Vital::RrInterval], 1_000),
            d("th", vec![Vital::BodyTemperature], 60_000),
            d(
                "bp",
                vec![
                    Vital::SystolicBp,
                    Vital::DiastolicBp,
                    Vital::MeanArterialPressure,
                ],
                15 * 60_000,
            ),
        ],
    }
}

/// Play one patient-day; its episodes and labels.
fn play(kind: ScenarioKind, seed: u64, config: &MonitorConfig) -> (Vec<Episode>, Vec<Label>) {
    let spec = spec(kind, seed);
    let mut sim = match Simulation::new(&spec) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("the evaluation's simulation spec is invalid: {e}");
            std::process::exit(2);
        }
    };
    let patient: Arc<str> = Arc::from("p");
    let ids: Vec<Arc<str>> = spec
        .devices
        .iter()
        .map(|d| Arc::from(d.id.as_str()))
        .collect();
    let settings = PatientSettings {
        scale: if kind.is_copd() {
            Spo2Scale::Two
        } else {
            Spo2Scale::One
        },
        ..PatientSettings::default()
    };
    let mut monitor = PatientMonitor::new(Arc::clone(&patient), *config, settings);
    let mut open: BTreeMap<OpenKey, (Timestamp, String)> = BTreeMap::new();
    let mut episodes = Vec::new();
    let mut labels = Vec::new();
    let mut handle = |conds: Vec<Condition>, episodes: &mut Vec<Episode>| {
        for c in conds {
            let key = (c.key.kind, c.key.device.clone());
            if c.active {
                open.entry(key).or_insert((c.at, c.summary));
            } else if let Some((raised, summary)) = open.remove(&key) {
                episodes.push(Episode {
                    kind: c.key.kind,
                    device: c.key.device,
                    raised,
                    cleared: c.at,
                    summary,
                });
            }
        }
    };
    while let Some(sample) = sim.next() {
        let t = sample.snapshot.time;
        let device = &ids[sample.device];
        let mut out = monitor.tick(t);
        let mut any = false;
        for vital in Vital::ALL {
            let Some(value) = sample.snapshot.get(vital) else {
                continue;
            };
            any = true;
            let mut quality = sample.snapshot.quality;
            quality.set(Quality::IMPOSSIBLE, !vital.is_possible(value));
            let r = Reading {
                device: Arc::clone(device),
                patient: Arc::clone(&patient),
                vital,
                value,
                device_time: Some(t),
                gateway_time: t.add_millis(20),
                quality,
            };
            out.extend(monitor.push(&r));
        }
        if !any {
            out.extend(monitor.push_status(device, t, sample.snapshot.quality));
        }
        handle(out, &mut episodes);
        labels.extend(sim.drain_labels());
    }
    let end = START.add_millis(DAY_MS);
    let mut out = monitor.flush();
    out.extend(monitor.tick(end));
    handle(out, &mut episodes);
    for ((kind, device), (raised, summary)) in open {
        episodes.push(Episode {
            kind,
            device,
            raised,
            cleared: end,
            summary,
        });
    }
    labels.extend(sim.finish_labels());
    (episodes, labels)
}

fn score(tally: &mut Tally, episodes: &[Episode], labels: &[Label], config: &MonitorConfig) {
    tally.patient_days += 1.0;
    let clinical: Vec<&Episode> = episodes
        .iter()
        .filter(|e| e.kind.category() == Category::Clinical)
        .collect();
    for e in episodes
        .iter()
        .filter(|e| e.kind.category() == Category::Technical)
    {
        *tally.technical_raised.entry(e.kind).or_default() += 1;
    }
    let window = |l: &Label| (l.start, l.end.add_millis(GRACE_MS));
    for l in labels.iter().filter(|l| l.clinical) {
        tally.labels += 1;
        let (from, to) = window(l);
        let hit = clinical
            .iter()
            .filter(|e| e.raised < to && e.cleared > from)
            .min_by_key(|e| e.raised);
        match hit {
            Some(e) => {
                tally.detected += 1;
                let delay = (e.raised.millis() - l.start.millis()).max(0);
                tally.delays_ms.push(delay);
                let sustain = config.sustain_ms(e.kind).unwrap_or(0);
                tally.beyond_ms.push(delay - sustain);
                *tally.by_detector.entry(e.kind).or_default() += 1;
            }
            None => tally
                .missed
                .push(format!("{} {} ({})", l.kind, l.start, l.detail)),
        }
    }
    for e in &clinical {
        let explained = labels.iter().filter(|l| l.clinical).any(|l| {
            let (from, to) = window(l);
            e.raised >= from && e.raised < to
        });
        if !explained {
            tally.false_alerts += 1;
            tally
                .false_examples
                .push(format!("{} {:?}: {}", e.raised, e.kind, e.summary));
            *tally.false_by_kind.entry(e.kind).or_default() += 1;
            if labels.iter().any(|l| !l.clinical && l.covers(e.raised)) {
                tally.false_during_technical += 1;
            }
        }
    }
    for l in labels.iter().filter(|l| !l.clinical) {
        tally.technical_labels += 1;
        let (from, to) = window(l);
        let hit = episodes.iter().any(|e| {
            e.kind.category() == Category::Technical
                && e.device.as_deref() == l.device.as_deref()
                && e.raised < to
                && e.cleared > from
        });
        if hit {
            tally.technical_detected += 1;
        }
    }
}

fn percentile(v: &[i64], p: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    Some(s[i] as f64 / 1_000.0)
}

fn secs(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |s| format!("{s:.0} s"))
}

fn main() {
    let mut args = std::env::args().skip(1);
    let days: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let seed: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let config = match args.next() {
        None => MonitorConfig::default(),
        Some(path) => {
            let parsed = std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| {
                    serde_json::from_str::<MonitorConfig>(&text).map_err(|e| e.to_string())
                });
            match parsed {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("cannot use {path} as a MonitorConfig: {e}");
                    std::process::exit(2);
                }
            }
        }
    };
    let began = Instant::now();
    let mut all = Tally::default();
    println!(
        "| scenario | patient-days | clinical labels | detected | sensitivity | false clinical alerts / patient-day (during technical labels) | delay median / p90 | beyond sustain median / p90 | technical labels detected | detectors that caught it |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut missed_all = Vec::new();
    let mut false_all = Vec::new();
    let mut false_kinds: BTreeMap<ConditionKind, usize> = BTreeMap::new();
    for kind in ScenarioKind::ALL {
        let mut t = Tally::default();
        for d in 0..days {
            // Every patient-day its own patient: the seed mixes the run's
            // seed, the scenario and the day.
            let patient_seed = seed
                .wrapping_mul(1_000_003)
                .wrapping_add(kind as u64 * 10_007)
                .wrapping_add(d);
            let (episodes, labels) = play(kind, patient_seed, &config);
            score(&mut t, &episodes, &labels, &config);
        }
        let sens = if t.labels == 0 {
            "–".to_string()
        } else {
            format!("{:.1} %", 100.0 * t.detected as f64 / t.labels as f64)
        };
        let tech = if t.technical_labels == 0 {
            "–".to_string()
        } else {
            format!("{}/{}", t.technical_detected, t.technical_labels)
        };
        let detectors: Vec<String> = t
            .by_detector
            .iter()
            .map(|(k, n)| format!("{k:?} {n}"))
            .collect();
        println!(
            "| {kind} | {} | {} | {} | {sens} | {:.2} ({}) | {} / {} | {} / {} | {tech} | {} |",
            t.patient_days,
            t.labels,
            t.detected,
            t.false_alerts as f64 / t.patient_days,
            t.false_during_technical,
            secs(percentile(&t.delays_ms, 0.5)),
            secs(percentile(&t.delays_ms, 0.9)),
            secs(percentile(&t.beyond_ms, 0.5)),
            secs(percentile(&t.beyond_ms, 0.9)),
            detectors.join(", ")
        );
        for (k, n) in &t.false_by_kind {
            *false_kinds.entry(*k).or_default() += n;
        }
        missed_all.extend(t.missed.iter().map(|m| format!("{kind}: {m}")));
        false_all.extend(t.false_examples.iter().map(|m| format!("{kind}: {m}")));
        all.patient_days += t.patient_days;
        all.labels += t.labels;
        all.detected += t.detected;
        all.delays_ms.extend(t.delays_ms);
        all.beyond_ms.extend(t.beyond_ms);
        all.false_alerts += t.false_alerts;
        all.false_during_technical += t.false_during_technical;
        all.technical_labels += t.technical_labels;
        all.technical_detected += t.technical_detected;
        for (k, n) in t.technical_raised {
            *all.technical_raised.entry(k).or_default() += n;
        }
    }
    println!(
        "| **all** | {} | {} | {} | {:.2} % | {:.2} ({}) | {} / {} | {} / {} | {}/{} | |",
        all.patient_days,
        all.labels,
        all.detected,
        100.0 * all.detected as f64 / all.labels.max(1) as f64,
        all.false_alerts as f64 / all.patient_days,
        all.false_during_technical,
        secs(percentile(&all.delays_ms, 0.5)),
        secs(percentile(&all.delays_ms, 0.9)),
        secs(percentile(&all.beyond_ms, 0.5)),
        secs(percentile(&all.beyond_ms, 0.9)),
        all.technical_detected,
        all.technical_labels,
    );
    println!();
    println!("false clinical alerts by detector: {false_kinds:?}");
    println!("technical conditions raised: {:?}", all.technical_raised);
    println!("missed clinical labels ({}):", missed_all.len());
    for m in missed_all.iter().take(200) {
        println!("  {m}");
    }
    println!("false clinical alerts ({}):", false_all.len());
    for m in false_all.iter().take(200) {
        println!("  {m}");
    }
    println!(
        "\n{} patient-days in {:.1} s",
        all.patient_days,
        began.elapsed().as_secs_f64()
    );
}
