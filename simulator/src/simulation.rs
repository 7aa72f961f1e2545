//! A whole simulation: patients, their scenarios and their devices, played
//! in simulated time.
//!
//! [`Simulation`] is an [`Iterator`] of [`DeviceSample`]s in simulated-time
//! order. It has no clock of its own: the caller decides when (on the wall
//! clock) to send each sample, and the simulation is the same whether it is
//! consumed in real time, accelerated, or as fast as possible.
//!
//! Patients are stepped on a fixed 1 s grid from the start, independent of
//! the devices; a device sampling at `t` sees the patient's state at the
//! last grid point at or before `t`. So adding, removing or re-timing a
//! device never changes a patient's physiology, and every random component
//! (patient, scenario, device) has its own stream derived from the seed and
//! its id: the same spec gives the same samples and labels, bit for bit on
//! one platform.

use crate::device::VirtualDevice;
use crate::label::Label;
use crate::patient::{MINUTE_MS, Patient, TrueVitals};
use crate::random::stream;
use crate::scenario::{Event, Observer, Scenario, ScenarioKind};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use vitalgate_devices::{Snapshot, Timestamp, Vital};

/// Patients are stepped every second: finer than any vital changes, and
/// the period of the fastest usual device.
pub const PATIENT_STEP_MS: i64 = 1_000;

/// Default device period: once a second, as pulse oximeters and heart-rate
/// straps report.
pub const DEFAULT_PERIOD_MS: i64 = 1_000;

/// What to simulate. Deserializable so it can come from a TOML or JSON
/// file; unknown keys are rejected so a typo is an error, not a silent
/// default. Checked by [`Simulation::new`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulationSpec {
    /// The seed every random draw derives from.
    pub seed: u64,
    /// Simulated start time (RFC 3339 in files).
    pub start: Timestamp,
    /// Simulated duration in ms; `None` runs for ever.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// The patients.
    pub patients: Vec<PatientSpec>,
    /// The devices, each on one patient. A sample's `device` is an index
    /// into this list.
    pub devices: Vec<DeviceSpec>,
}

/// One virtual patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientSpec {
    /// Pseudonymous patient id, unique in the spec.
    pub id: String,
    /// What the patient lives through.
    pub scenario: ScenarioKind,
}

/// One virtual device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Device id, unique in the spec.
    pub id: String,
    /// Id of the patient wearing it.
    pub patient: String,
    /// The vitals it reports.
    pub vitals: Vec<Vital>,
    /// Time between its samples, ms (default 1000).
    #[serde(default = "default_period")]
    pub period_ms: i64,
}

fn default_period() -> i64 {
    DEFAULT_PERIOD_MS
}

/// Why a [`SimulationSpec`] cannot be simulated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    /// No patients.
    #[error("the simulation has no patients: add at least one [[patients]] entry")]
    NoPatients,
    /// No devices: nothing would ever be produced.
    #[error("the simulation has no devices: add at least one [[devices]] entry on a patient")]
    NoDevices,
    /// An empty id.
    #[error("{what} #{index} has an empty id")]
    EmptyId {
        /// "patient" or "device".
        what: &'static str,
        /// Position in its list, from 1.
        index: usize,
    },
    /// The same patient id twice.
    #[error("patient id `{0}` is used twice")]
    DuplicatePatient(String),
    /// The same device id twice.
    #[error("device id `{0}` is used twice")]
    DuplicateDevice(String),
    /// A device on a patient the spec does not have.
    #[error(
        "device `{device}` is on patient `{patient}`, which is not in the spec (patients: {known})"
    )]
    UnknownPatient {
        /// The device.
        device: String,
        /// The patient it names.
        patient: String,
        /// The patients there are, comma-separated.
        known: String,
    },
    /// A device period that is not positive.
    #[error("device `{device}`: period_ms must be positive, got {period_ms}")]
    BadPeriod {
        /// The device.
        device: String,
        /// Its period.
        period_ms: i64,
    },
    /// A device with no vitals.
    #[error("device `{0}` reports no vitals: list at least one in `vitals`")]
    NoVitals(String),
    /// A vital listed twice on one device.
    #[error("device `{device}` lists `{vital}` twice")]
    DuplicateVital {
        /// The device.
        device: String,
        /// The vital.
        vital: Vital,
    },
    /// A duration that is not positive.
    #[error("duration_ms must be positive (or absent to run for ever), got {0}")]
    BadDuration(i64),
}

impl SimulationSpec {
    /// Check the spec.
    ///
    /// # Errors
    ///
    /// The first problem found: no patients or devices, an empty or
    /// duplicate id, a device on an unknown patient, a period or duration
    /// that is not positive, a device with no or a repeated vital.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.patients.is_empty() {
            return Err(SpecError::NoPatients);
        }
        if self.devices.is_empty() {
            return Err(SpecError::NoDevices);
        }
        if let Some(d) = self.duration_ms.filter(|&d| d <= 0) {
            return Err(SpecError::BadDuration(d));
        }
        let mut patients = HashSet::new();
        for (i, p) in self.patients.iter().enumerate() {
            if p.id.trim().is_empty() {
                return Err(SpecError::EmptyId {
                    what: "patient",
                    index: i + 1,
                });
            }
            if !patients.insert(p.id.as_str()) {
                return Err(SpecError::DuplicatePatient(p.id.clone()));
            }
        }
        let mut devices = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            if d.id.trim().is_empty() {
                return Err(SpecError::EmptyId {
                    what: "device",
                    index: i + 1,
                });
            }
            if !devices.insert(d.id.as_str()) {
                return Err(SpecError::DuplicateDevice(d.id.clone()));
            }
            if !patients.contains(d.patient.as_str()) {
                let known: Vec<&str> = self.patients.iter().map(|p| p.id.as_str()).collect();
                return Err(SpecError::UnknownPatient {
                    device: d.id.clone(),
                    patient: d.patient.clone(),
                    known: known.join(", "),
                });
            }
            if d.period_ms <= 0 {
                return Err(SpecError::BadPeriod {
                    device: d.id.clone(),
                    period_ms: d.period_ms,
                });
            }
            if d.vitals.is_empty() {
                return Err(SpecError::NoVitals(d.id.clone()));
            }
            for (k, v) in d.vitals.iter().enumerate() {
                if d.vitals[..k].contains(v) {
                    return Err(SpecError::DuplicateVital {
                        device: d.id.clone(),
                        vital: *v,
                    });
                }
            }
        }
        Ok(())
    }

    /// The out-of-the-box demo cohort, running for ever from `start`:
    ///
    /// * `patient-a`, stable: a chest strap `hr-a1` (heart rate and R–R
    ///   intervals, 1 s) and a blood-pressure cuff `bp-a1` (every 5 min, as
    ///   home cuffs on an automatic schedule do; clinical protocols use
    ///   15–30 min, shortened so the demo shows readings);
    /// * `patient-b`, COPD (usual SpO2 88–92 %: a realistic false-alarm
    ///   trap for fixed thresholds): a pulse oximeter `ox-b1`;
    /// * `patient-c`, mixed: a pulse oximeter `ox-c1` and a temperature
    ///   patch `th-c1` (every 60 s). Its first event, a desaturation or a
    ///   tachycardia, starts 30–90 s in, so the demo shows something soon;
    ///   technical events (motion, sensor off, dropout, flatline) follow
    ///   1–4 min after it ends, then both sorts recur every few minutes.
    ///
    /// Pulse oximeters report SpO2, pulse rate and perfusion index every
    /// second.
    pub fn demo(seed: u64, start: Timestamp) -> SimulationSpec {
        let oximeter = vec![Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex];
        let device = |id: &str, patient: &str, vitals: Vec<Vital>, period_ms: i64| DeviceSpec {
            id: id.into(),
            patient: patient.into(),
            vitals,
            period_ms,
        };
        SimulationSpec {
            seed,
            start,
            duration_ms: None,
            patients: vec![
                PatientSpec {
                    id: "patient-a".into(),
                    scenario: ScenarioKind::Stable,
                },
                PatientSpec {
                    id: "patient-b".into(),
                    scenario: ScenarioKind::Copd,
                },
                PatientSpec {
                    id: "patient-c".into(),
                    scenario: ScenarioKind::Mixed,
                },
            ],
            devices: vec![
                device("ox-b1", "patient-b", oximeter.clone(), 1_000),
                device("ox-c1", "patient-c", oximeter, 1_000),
                device(
                    "hr-a1",
                    "patient-a",
                    vec![Vital::HeartRate, Vital::RrInterval],
                    1_000,
                ),
                device("th-c1", "patient-c", vec![Vital::BodyTemperature], 60_000),
                device(
                    "bp-a1",
                    "patient-a",
                    vec![
                        Vital::SystolicBp,
                        Vital::DiastolicBp,
                        Vital::MeanArterialPressure,
                    ],
                    5 * MINUTE_MS,
                ),
                // Bluetooth LE wearables (a strap, a patch thermometer, a
                // cuff, a ring oximeter) beside the serial and Wi-Fi ones.
                device(
                    "ble-hr-b1",
                    "patient-b",
                    vec![Vital::HeartRate, Vital::RrInterval],
                    1_000,
                ),
                device(
                    "ble-th-a1",
                    "patient-a",
                    vec![Vital::BodyTemperature],
                    60_000,
                ),
                device(
                    "ble-bp-c1",
                    "patient-c",
                    vec![
                        Vital::SystolicBp,
                        Vital::DiastolicBp,
                        Vital::MeanArterialPressure,
                        Vital::PulseRate,
                    ],
                    5 * MINUTE_MS,
                ),
                device(
                    "ble-ox-a1",
                    "patient-a",
                    vec![Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex],
                    1_000,
                ),
            ],
        }
    }
}

/// One device's output at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DeviceSample {
    /// Index of the device in [`SimulationSpec::devices`].
    pub device: usize,
    /// What it sends.
    pub snapshot: Snapshot,
}

#[derive(Debug, Clone)]
struct PatientSlot {
    id: String,
    patient: Patient,
    scenario: Scenario,
    rng: ChaCha8Rng,
    stepped_to: Timestamp,
}

impl PatientSlot {
    /// Step the patient on its grid up to the last grid point ≤ `t`.
    fn advance(&mut self, t: Timestamp) {
        while self.stepped_to.millis() + PATIENT_STEP_MS <= t.millis() {
            let next = self.stepped_to.add_millis(PATIENT_STEP_MS);
            self.scenario.generate_until(next);
            self.patient.set_acute(self.scenario.acute(next));
            self.patient.step(next, PATIENT_STEP_MS, &mut self.rng);
            self.stepped_to = next;
        }
    }
}

#[derive(Debug, Clone)]
struct DeviceSlot {
    device: VirtualDevice,
    patient: usize,
    due: Timestamp,
}

/// A running simulation. See the module documentation.
///
/// Labels: an event's label is queued when the event *ends* (so both its
/// start and end are known), i.e. once the simulation has produced a sample
/// at or after its end; [`Simulation::drain_labels`] takes the queued ones.
/// When the run stops — its duration is over, or the caller stops early —
/// [`Simulation::finish_labels`] also flushes the events that have started
/// but not ended, with their planned end (which may lie past the last
/// sample). Labels come out ordered by end, then start, then patient.
#[derive(Debug, Clone)]
pub struct Simulation {
    end: Option<Timestamp>,
    now: Timestamp,
    finished: bool,
    patients: Vec<PatientSlot>,
    devices: Vec<DeviceSlot>,
    pending: Vec<Label>,
    scratch: Vec<Event>,
}

impl Simulation {
    /// Set up the simulation `spec` describes.
    ///
    /// # Errors
    ///
    /// What is wrong with the spec (see [`SimulationSpec::validate`]).
    pub fn new(spec: &SimulationSpec) -> Result<Simulation, SpecError> {
        spec.validate()?;
        let mut patients = Vec::with_capacity(spec.patients.len());
        for p in &spec.patients {
            let mut rng = stream(spec.seed, "patient", &p.id);
            let patient = Patient::draw(p.scenario.is_copd(), spec.start, &mut rng);
            let observers: Vec<Observer<'_>> = spec
                .devices
                .iter()
                .enumerate()
                .filter(|(_, d)| d.patient == p.id)
                .map(|(index, d)| Observer {
                    index,
                    vitals: &d.vitals,
                    period_ms: d.period_ms,
                })
                .collect();
            let mut scenario_rng = stream(spec.seed, "scenario", &p.id);
            let scenario = Scenario::new(
                p.scenario,
                patient.baseline(),
                spec.start,
                &observers,
                &mut scenario_rng,
            );
            patients.push(PatientSlot {
                id: p.id.clone(),
                patient,
                scenario,
                rng,
                stepped_to: spec.start,
            });
        }
        let mut devices = Vec::with_capacity(spec.devices.len());
        for d in &spec.devices {
            let patient = patients.iter().position(|p| p.id == d.patient).unwrap_or(0);
            let mut rng = stream(spec.seed, "device", &d.id);
            // Devices are not switched on in lockstep: a phase within the
            // first second (or period) spreads their output.
            let phase = rand::Rng::random_range(&mut rng, 0..d.period_ms.min(1_000));
            devices.push(DeviceSlot {
                device: VirtualDevice::new(&d.id, &d.vitals, d.period_ms, rng),
                patient,
                due: spec.start.add_millis(phase),
            });
        }
        Ok(Simulation {
            end: spec.duration_ms.map(|d| spec.start.add_millis(d)),
            now: spec.start,
            finished: false,
            patients,
            devices,
            pending: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// Simulated time of the last sample produced (the start before any),
    /// or the end of the run once it is over.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// Whether the run's duration is over.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The devices, in spec order.
    pub fn devices(&self) -> impl ExactSizeIterator<Item = &VirtualDevice> {
        self.devices.iter().map(|d| &d.device)
    }

    /// The patients' ids, in spec order.
    pub fn patient_ids(&self) -> impl ExactSizeIterator<Item = &str> {
        self.patients.iter().map(|p| p.id.as_str())
    }

    /// The true vitals of patient `index` (spec order) as of its last step,
    /// for inspection and scoring; `None` for an unknown index.
    pub fn truth(&self, index: usize) -> Option<TrueVitals> {
        self.patients.get(index).map(|p| p.patient.truth())
    }

    /// The labels of the events that have ended by [`Simulation::now`] and
    /// were not returned before. Cheap when there are none.
    pub fn drain_labels(&mut self) -> Vec<Label> {
        std::mem::take(&mut self.pending)
    }

    /// Every label not returned before, including the events that have
    /// started but not ended, with their planned end. Call it when the run
    /// stops. "Started" means: at or before the last sample produced, or,
    /// once the duration is over, before the end of the run. The events
    /// flushed go on to their planned end should the simulation be run on.
    pub fn finish_labels(&mut self) -> Vec<Label> {
        let (cutoff, finished) = (self.now, self.finished);
        let started = |start: Timestamp| {
            if finished {
                start < cutoff
            } else {
                start <= cutoff
            }
        };
        let mut labels = std::mem::take(&mut self.pending);
        let mut batch = std::mem::take(&mut self.scratch);
        let mut new = Vec::new();
        for (p, slot) in self.patients.iter_mut().enumerate() {
            slot.scenario.generate_until(cutoff);
            batch.clear();
            slot.scenario.take_started(started, &mut batch);
            new.extend(batch.iter().map(|e| label(&slot.id, p, &self.devices, e)));
        }
        batch.clear();
        self.scratch = batch;
        sort_labels(&mut new);
        labels.extend(new.into_iter().map(|(l, _)| l));
        labels
    }

    /// Queue the labels of the events over by `t`. Allocates only when an
    /// event has ended.
    fn collect_ended(&mut self, t: Timestamp) {
        let mut batch = std::mem::take(&mut self.scratch);
        let mut new = Vec::new();
        for (p, slot) in self.patients.iter_mut().enumerate() {
            slot.scenario.generate_until(t);
            batch.clear();
            slot.scenario.take_ended(t, &mut batch);
            new.extend(batch.iter().map(|e| label(&slot.id, p, &self.devices, e)));
        }
        batch.clear();
        self.scratch = batch;
        sort_labels(&mut new);
        self.pending.extend(new.into_iter().map(|(l, _)| l));
    }
}

/// The label of `e`, keyed by its patient's index for ordering.
fn label(patient: &str, index: usize, devices: &[DeviceSlot], e: &Event) -> (Label, usize) {
    let device = e.device.and_then(|d| devices.get(d)).map(|d| d.device.id());
    (Label::from_event(patient, device, e), index)
}

/// Order labels by end, then start, then patient (spec order), then device.
fn sort_labels(labels: &mut [(Label, usize)]) {
    labels.sort_by(|(a, pa), (b, pb)| {
        (a.end, a.start, pa, &a.device).cmp(&(b.end, b.start, pb, &b.device))
    });
}

impl Iterator for Simulation {
    type Item = DeviceSample;

    /// The next device sample in simulated-time order (ties: lower device
    /// index first), stepping patients as needed; `None` once the duration
    /// is over. Samples lost in a dropout are skipped.
    fn next(&mut self) -> Option<DeviceSample> {
        if self.finished {
            return None;
        }
        loop {
            let mut d = 0;
            for (i, slot) in self.devices.iter().enumerate() {
                if slot.due < self.devices[d].due {
                    d = i;
                }
            }
            let slot = self.devices.get_mut(d)?;
            let t = slot.due;
            if self.end.is_some_and(|end| t >= end) {
                let end = self.end.unwrap_or(t);
                self.now = end;
                self.finished = true;
                self.collect_ended(end);
                return None;
            }
            slot.due = t.add_millis(slot.device.period_ms());
            let p = slot.patient;
            let patient = &mut self.patients[p];
            patient.advance(t);
            patient.scenario.generate_until(t);
            let tech = patient.scenario.technical(d, t);
            let truth = patient.patient.truth();
            let snapshot = self.devices[d].device.measure(t, &truth, tech);
            self.now = t;
            self.collect_ended(t);
            if let Some(snapshot) = snapshot {
                return Some(DeviceSample {
                    device: d,
                    snapshot,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::HOUR_MS;
    use vitalgate_devices::Quality;

    /// 2025-01-06T10:00:00Z.
    const START: Timestamp = Timestamp(1_736_157_600_000);
    const OXIMETER: [Vital; 3] = [Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex];

    fn one(
        kind: ScenarioKind,
        seed: u64,
        vitals: &[Vital],
        period_ms: i64,
        duration_ms: i64,
    ) -> SimulationSpec {
        SimulationSpec {
            seed,
            start: START,
            duration_ms: Some(duration_ms),
            patients: vec![PatientSpec {
                id: "p-1".into(),
                scenario: kind,
            }],
            devices: vec![DeviceSpec {
                id: "dev-1".into(),
                patient: "p-1".into(),
                vitals: vitals.to_vec(),
                period_ms,
            }],
        }
    }

    /// Run to the end; all samples and all labels.
    fn run(spec: &SimulationSpec) -> (Vec<DeviceSample>, Vec<Label>) {
        let mut sim = Simulation::new(spec).unwrap_or_else(|e| panic!("{e}"));
        let samples: Vec<DeviceSample> = sim.by_ref().collect();
        let mut labels = sim.drain_labels();
        labels.extend(sim.finish_labels());
        (samples, labels)
    }

    fn demo_for(minutes: i64) -> SimulationSpec {
        SimulationSpec {
            duration_ms: Some(minutes * MINUTE_MS),
            ..SimulationSpec::demo(42, START)
        }
    }

    #[test]
    fn the_same_spec_gives_the_same_samples_and_labels() {
        let spec = demo_for(45);
        let (a, la) = run(&spec);
        let (b, lb) = run(&spec);
        assert!(a.len() > 8_000, "{}", a.len());
        assert_eq!(a, b);
        assert_eq!(la, lb);
        let other = SimulationSpec { seed: 43, ..spec };
        assert_ne!(run(&other).0, a, "another seed, another run");
    }

    #[test]
    fn draining_labels_often_or_once_gives_the_same_labels_and_samples() {
        let spec = demo_for(45);
        let (samples, once) = run(&spec);
        let mut sim = Simulation::new(&spec).unwrap_or_else(|e| panic!("{e}"));
        let (mut eager, mut eager_samples) = (Vec::new(), Vec::new());
        while let Some(s) = sim.next() {
            eager_samples.push(s);
            for l in sim.drain_labels() {
                assert!(l.end <= sim.now(), "labelled only once over: {l:?}");
                eager.push(l);
            }
        }
        eager.extend(sim.finish_labels());
        assert_eq!(eager_samples, samples);
        assert_eq!(eager, once);
        assert!(once.len() >= 3, "{once:?}");
    }

    #[test]
    fn a_patient_does_not_change_when_devices_are_added() {
        let alone = one(ScenarioKind::Stable, 5, &OXIMETER, 1_000, 20 * MINUTE_MS);
        let mut crowded = alone.clone();
        crowded.devices.insert(
            0,
            DeviceSpec {
                id: "strap".into(),
                patient: "p-1".into(),
                vitals: vec![Vital::HeartRate],
                period_ms: 700,
            },
        );
        let (mut a, mut b) = (Simulation::new(&alone), Simulation::new(&crowded));
        let (Ok(a), Ok(b)) = (a.as_mut(), b.as_mut()) else {
            panic!("valid")
        };
        a.by_ref().for_each(drop);
        b.by_ref().for_each(drop);
        assert_eq!(a.truth(0), b.truth(0));
    }

    #[test]
    fn samples_come_in_time_order_at_each_device_period_until_the_duration() {
        let (samples, _) = run(&demo_for(20));
        assert!(
            samples
                .windows(2)
                .all(|w| w[0].snapshot.time <= w[1].snapshot.time)
        );
        let end = START.add_millis(20 * MINUTE_MS);
        assert!(
            samples
                .iter()
                .all(|s| s.snapshot.time >= START && s.snapshot.time < end)
        );
        let spec = SimulationSpec::demo(42, START);
        for (i, d) in spec.devices.iter().enumerate() {
            let mine: Vec<&DeviceSample> = samples.iter().filter(|s| s.device == i).collect();
            assert!(!mine.is_empty(), "{} produced nothing", d.id);
            for w in mine.windows(2) {
                let gap = w[1].snapshot.time.millis() - w[0].snapshot.time.millis();
                let seq_gap = (w[1].snapshot.seq - w[0].snapshot.seq) as i64;
                assert_eq!(gap, seq_gap * d.period_ms, "{}", d.id);
            }
        }
        // The cuff reads every 5 minutes; the first reading comes at once.
        let cuff = spec
            .devices
            .iter()
            .position(|d| d.id == "bp-a1")
            .unwrap_or(usize::MAX);
        assert_eq!(samples.iter().filter(|s| s.device == cuff).count(), 4);
    }

    #[test]
    fn the_demo_shows_a_clinical_event_on_patient_c_within_two_minutes() {
        for seed in 0..10 {
            let spec = SimulationSpec {
                duration_ms: Some(2 * MINUTE_MS),
                ..SimulationSpec::demo(seed, START)
            };
            let (samples, labels) = run(&spec);
            let first = labels
                .iter()
                .find(|l| l.patient == "patient-c" && l.clinical)
                .unwrap_or_else(|| panic!("seed {seed}: {labels:?}"));
            assert!(first.start < START.add_millis(2 * MINUTE_MS));
            assert!(matches!(
                first.kind,
                ScenarioKind::Desaturation | ScenarioKind::Tachycardia
            ));
            assert!(
                labels.iter().all(|l| l.patient != "patient-a"),
                "patient-a is stable"
            );
            // 5 serial and MQTT devices, 4 Bluetooth LE ones.
            assert_eq!(spec.devices.len(), 9);
            assert!(samples.len() > 350, "{}", samples.len());
        }
    }

    #[test]
    fn the_demo_copd_patient_runs_between_88_and_92_percent() {
        let (samples, _) = run(&demo_for(30));
        let ox_b = 0;
        let mut spo2: Vec<f64> = samples
            .iter()
            .filter(|s| s.device == ox_b)
            .filter_map(|s| s.snapshot.get(Vital::Spo2))
            .collect();
        spo2.sort_by(f64::total_cmp);
        let median = spo2[spo2.len() / 2];
        assert!((87.0..=93.0).contains(&median), "median {median}");
    }

    /// The first label of `kind` from a run of `spec`, with the samples.
    fn first_label(spec: &SimulationSpec, kind: ScenarioKind) -> (Vec<DeviceSample>, Label) {
        let (samples, labels) = run(spec);
        let label = labels.iter().find(|l| l.kind == kind).cloned();
        (
            samples,
            label.unwrap_or_else(|| panic!("no {kind} label in {labels:?}")),
        )
    }

    fn values(samples: &[DeviceSample], vital: Vital, from: Timestamp, to: Timestamp) -> Vec<f64> {
        samples
            .iter()
            .filter(|s| s.snapshot.time >= from && s.snapshot.time < to)
            .filter_map(|s| s.snapshot.get(vital))
            .collect()
    }

    #[test]
    fn each_clinical_scenario_shows_its_deviation_inside_its_label() {
        let all = [
            Vital::PulseRate,
            Vital::Spo2,
            Vital::RespiratoryRate,
            Vital::BodyTemperature,
            Vital::SystolicBp,
            Vital::PerfusionIndex,
        ];
        // (kind, device period, run length, vital, predicate on the extreme
        // value inside the label window)
        type Check = (ScenarioKind, i64, i64, Vital, fn(f64) -> bool);
        let checks: [Check; 6] = [
            (
                ScenarioKind::Desaturation,
                1_000,
                15 * MINUTE_MS,
                Vital::Spo2,
                |min| min <= 88.0,
            ),
            (
                ScenarioKind::Tachycardia,
                1_000,
                35 * MINUTE_MS,
                Vital::PulseRate,
                |max| max >= 128.0,
            ),
            (
                ScenarioKind::Bradycardia,
                1_000,
                25 * MINUTE_MS,
                Vital::PulseRate,
                |min| min <= 47.0,
            ),
            (
                ScenarioKind::Fever,
                60_000,
                16 * HOUR_MS,
                Vital::BodyTemperature,
                |max| max >= 38.3,
            ),
            (
                ScenarioKind::Sepsis,
                60_000,
                27 * HOUR_MS,
                Vital::SystolicBp,
                |min| min <= 100.0,
            ),
            (
                ScenarioKind::Copd,
                30_000,
                11 * HOUR_MS,
                Vital::Spo2,
                |min| min <= 85.0,
            ),
        ];
        for (kind, period, length, vital, ok) in checks {
            let spec = one(kind, 11, &all, period, length);
            let (samples, label) = first_label(&spec, kind);
            assert!(label.clinical && label.device.is_none());
            assert!(
                label.end <= START.add_millis(length),
                "{kind} ended within the run: {label:?}"
            );
            let inside = values(&samples, vital, label.start, label.end);
            let extreme = if matches!(kind, ScenarioKind::Tachycardia | ScenarioKind::Fever) {
                inside.iter().copied().fold(f64::MIN, f64::max)
            } else {
                inside.iter().copied().fold(f64::MAX, f64::min)
            };
            assert!(
                ok(extreme),
                "{kind}: {vital} reached {extreme} in {label:?}"
            );
            let before = values(&samples, vital, START.add_millis(20_000), label.start);
            if !before.is_empty() {
                let typical = before.iter().sum::<f64>() / before.len() as f64;
                assert!(
                    !ok(typical),
                    "{kind}: {vital} was already {typical} before the label"
                );
            }
        }
    }

    #[test]
    fn sensor_off_produces_flagged_snapshots_without_values_inside_its_label() {
        let spec = one(
            ScenarioKind::SensorOff,
            12,
            &OXIMETER,
            1_000,
            10 * MINUTE_MS,
        );
        let (samples, label) = first_label(&spec, ScenarioKind::SensorOff);
        assert_eq!(label.device.as_deref(), Some("dev-1"));
        assert!(!label.clinical);
        let inside: Vec<_> = samples
            .iter()
            .filter(|s| label.covers(s.snapshot.time))
            .collect();
        assert!(!inside.is_empty());
        for s in &inside {
            assert_eq!(s.snapshot.quality, Quality::SENSOR_OFF);
            assert!(s.snapshot.values.iter().all(Option::is_none));
        }
        let outside = samples.iter().filter(|s| !label.covers(s.snapshot.time));
        assert!(
            outside
                .into_iter()
                .all(|s| !s.snapshot.quality.contains(Quality::SENSOR_OFF))
        );
    }

    #[test]
    fn a_flatline_repeats_the_exact_same_snapshot_values_inside_its_label() {
        let spec = one(ScenarioKind::Flatline, 13, &OXIMETER, 1_000, 15 * MINUTE_MS);
        let (samples, label) = first_label(&spec, ScenarioKind::Flatline);
        let inside: Vec<_> = samples
            .iter()
            .filter(|s| label.covers(s.snapshot.time))
            .collect();
        assert!(inside.len() >= 55, "{label:?}");
        assert!(
            inside
                .iter()
                .all(|s| s.snapshot.values == inside[0].snapshot.values
                    && s.snapshot.values[Vital::Spo2.index()].is_some())
        );
        let after = values(
            &samples,
            Vital::PulseRate,
            label.end,
            label.end.add_millis(10 * MINUTE_MS),
        );
        assert!(
            after.windows(2).any(|w| w[0] != w[1]),
            "values move again afterwards"
        );
    }

    #[test]
    fn a_dropout_produces_no_samples_inside_its_label() {
        let spec = one(ScenarioKind::Dropout, 14, &OXIMETER, 1_000, 15 * MINUTE_MS);
        let (samples, label) = first_label(&spec, ScenarioKind::Dropout);
        assert!(label.duration_ms() >= 30_000);
        assert!(samples.iter().all(|s| !label.covers(s.snapshot.time)));
        let before = samples
            .iter()
            .filter(|s| s.snapshot.time < label.start)
            .count();
        assert!(before > 30);
        let after = samples
            .iter()
            .find(|s| s.snapshot.time >= label.end)
            .map(|s| s.snapshot.time);
        assert!(
            after.is_some_and(|t| t < label.end.add_millis(1_000)),
            "resumes on its next period"
        );
    }

    #[test]
    fn a_motion_artifact_lowers_spo2_but_not_pulse_rate_inside_its_label() {
        let spec = one(
            ScenarioKind::MotionArtifact,
            15,
            &OXIMETER,
            1_000,
            60 * MINUTE_MS,
        );
        let (samples, labels) = run(&spec);
        let labels: Vec<&Label> = labels
            .iter()
            .filter(|l| l.kind == ScenarioKind::MotionArtifact)
            .collect();
        assert!(labels.len() >= 2);
        let (mut inside_spo2, mut inside_pr, mut flagged, mut n) = (Vec::new(), Vec::new(), 0, 0);
        for l in &labels {
            for s in samples.iter().filter(|s| l.covers(s.snapshot.time)) {
                inside_spo2.extend(s.snapshot.get(Vital::Spo2));
                inside_pr.extend(s.snapshot.get(Vital::PulseRate));
                flagged += usize::from(s.snapshot.quality.contains(Quality::ARTIFACT));
                n += 1;
            }
        }
        let clean: Vec<&DeviceSample> = samples
            .iter()
            .filter(|s| s.snapshot.time > START.add_millis(10_000))
            .filter(|s| {
                labels.iter().all(|l| {
                    !l.covers(s.snapshot.time) && !l.covers(s.snapshot.time.add_millis(-10_000))
                })
            })
            .collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let clean_spo2: Vec<f64> = clean
            .iter()
            .filter_map(|s| s.snapshot.get(Vital::Spo2))
            .collect();
        let clean_pr: Vec<f64> = clean
            .iter()
            .filter_map(|s| s.snapshot.get(Vital::PulseRate))
            .collect();
        assert!(mean(&clean_spo2) - mean(&inside_spo2) > 2.5);
        assert!(
            (mean(&clean_pr) - mean(&inside_pr)).abs() < 6.0,
            "pulse rate does not follow"
        );
        assert!(flagged > 0 && flagged < n, "flagged {flagged} of {n}");
        assert!(
            clean
                .iter()
                .all(|s| !s.snapshot.quality.contains(Quality::ARTIFACT))
        );
    }

    #[test]
    fn unfinished_events_are_flushed_with_their_planned_end() {
        // Fever starts 5–20 min in and lasts hours: a 30 min run ends first.
        let spec = one(
            ScenarioKind::Fever,
            16,
            &[Vital::BodyTemperature],
            60_000,
            30 * MINUTE_MS,
        );
        let mut sim = Simulation::new(&spec).unwrap_or_else(|e| panic!("{e}"));
        sim.by_ref().for_each(drop);
        assert!(sim.is_finished());
        assert!(sim.drain_labels().is_empty());
        let labels = sim.finish_labels();
        assert_eq!(labels.len(), 1);
        assert!(labels[0].start < START.add_millis(30 * MINUTE_MS));
        assert!(labels[0].end > START.add_millis(3 * HOUR_MS));
        assert!(sim.finish_labels().is_empty(), "flushed once");
        assert_eq!(sim.next(), None);
    }

    #[test]
    fn stopping_early_flushes_only_events_already_started() {
        let spec = one(ScenarioKind::Mixed, 17, &OXIMETER, 1_000, 24 * HOUR_MS);
        let mut sim = Simulation::new(&spec).unwrap_or_else(|e| panic!("{e}"));
        sim.by_ref().take(600).for_each(drop);
        let now = sim.now();
        let labels = sim.finish_labels();
        assert!(!labels.is_empty());
        assert!(labels.iter().all(|l| l.start <= now));
    }

    #[test]
    fn a_spec_reads_from_json_with_defaults() {
        let json = r#"{
            "seed": 7,
            "start": "2025-01-06T10:00:00Z",
            "patients": [{"id": "p-1", "scenario": "motion_artifact"}],
            "devices": [{"id": "ox-1", "patient": "p-1", "vitals": ["spo2", "pulse_rate"]}]
        }"#;
        let spec: SimulationSpec = serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.start, START);
        assert_eq!(spec.duration_ms, None);
        assert_eq!(spec.devices[0].period_ms, 1_000);
        assert_eq!(spec.patients[0].scenario, ScenarioKind::MotionArtifact);
        assert!(Simulation::new(&spec).is_ok());
        let typo = json.replace("\"vitals\"", "\"vital\"");
        assert!(serde_json::from_str::<SimulationSpec>(&typo).is_err());
    }

    #[test]
    fn invalid_specs_are_rejected_naming_the_problem() {
        let good = one(ScenarioKind::Stable, 1, &OXIMETER, 1_000, MINUTE_MS);
        let err = |f: &dyn Fn(&mut SimulationSpec)| {
            let mut s = good.clone();
            f(&mut s);
            Simulation::new(&s)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err(&|s| s.devices[0].patient = "p-9".into()).contains(
            "device `dev-1` is on patient `p-9`, which is not in the spec (patients: p-1)"
        ));
        assert!(err(&|s| s.devices[0].period_ms = 0).contains("period_ms must be positive"));
        assert!(err(&|s| s.devices[0].vitals.clear()).contains("reports no vitals"));
        assert!(err(&|s| s.devices[0].vitals.push(Vital::Spo2)).contains("lists `spo2` twice"));
        assert!(
            err(&|s| s.devices.push(s.devices[0].clone()))
                .contains("device id `dev-1` is used twice")
        );
        assert!(
            err(&|s| s.patients.push(s.patients[0].clone()))
                .contains("patient id `p-1` is used twice")
        );
        assert!(err(&|s| s.devices.clear()).contains("no devices"));
        assert!(err(&|s| s.patients[0].id = " ".into()).contains("patient #1 has an empty id"));
        assert!(err(&|s| s.duration_ms = Some(0)).contains("duration_ms must be positive"));
        assert!(Simulation::new(&good).is_ok());
        assert!(SimulationSpec::demo(1, START).validate().is_ok());
    }

    /// Run with `cargo test --release -p vitalsim --lib -- --ignored` to see
    /// the speed: a simulated day of the demo cohort, every device at 1 Hz.
    #[test]
    #[ignore]
    fn a_simulated_day_of_five_devices_at_1_hz_runs_in_well_under_a_second() {
        let mut spec = demo_for(24 * 60);
        for d in &mut spec.devices {
            d.period_ms = 1_000;
        }
        let started = std::time::Instant::now();
        let mut sim = Simulation::new(&spec).unwrap_or_else(|e| panic!("{e}"));
        let mut n = 0u64;
        while sim.next().is_some() {
            n += 1;
            let _ = sim.drain_labels();
        }
        let took = started.elapsed();
        eprintln!("{n} samples in {took:?}");
        assert!(n > 400_000, "{n}");
        assert!(took.as_secs_f64() < 1.0, "{took:?}");
    }
}
