//! Virtual devices: measure a patient the way real devices do.
//!
//! A [`VirtualDevice`] turns the patient's true vitals into the
//! [`Snapshot`]s a real device would send: with a fixed per-device bias and
//! per-sample noise, averaged over the device's window (so it lags), rounded
//! to the device's resolution, flagged as the device would flag, and
//! disturbed by the technical events the scenario imposes.
//!
//! Measurement model per vital (bias is drawn once per device; noise per
//! sample, before averaging):
//!
//! | vital | bias SD | noise SD | averaging | resolution |
//! |---|---|---|---|---|
//! | SpO2 | 1.0 % (≤ 2) | 0.8 % | 8 s | 1 %, at most 100 |
//! | pulse rate | 0.5 | 1.5 /min | 8 s | 1 /min |
//! | heart rate (ECG strap) | 0 | 0.7 /min | 3 s | 1 /min |
//! | respiratory rate | 0.5 | 1.0 /min | 30 s | 1 /min |
//! | temperature | 0.1 °C (≤ 0.2) | 0.05 °C | none | 0.1 °C |
//! | systolic / diastolic | 3 / 2 mm[Hg] | 4 / 3 mm[Hg] | none | 1 mm[Hg] |
//! | MAP | from the measured SBP/DBP | | none | 1 mm[Hg] |
//! | perfusion index | ×(1 ± 10 %) | ×(1 ± 5 %) | 8 s | 0.01 (0.1 from 10 %), or 0.1 |
//! | R–R interval | 0 | 3 ms | none | 1/1024 s |
//!
//! Why: pulse oximeters average SpO2 and pulse rate over a selectable window
//! whose usual default is 8 s (Masimo SET: 2–16 s), and their accuracy is a
//! root-mean-square error of 2–3 % of which a good part is a per-sensor,
//! per-patient bias (ISO 80601-2-61: Arms ≤ 4 %); oscillometric cuffs may
//! err by a mean ≤ 5 mm[Hg] with SD ≤ 8 (ISO 81060-2); Bluetooth heart-rate
//! straps report R–R intervals in 1/1024 s (Bluetooth Heart Rate Service);
//! clinical thermometers display 0.1 °C. The perfusion-index resolution is
//! a device quirk drawn from the seed (some oximeters report hundredths,
//! others tenths).
//!
//! Flags: `low_perfusion` when the perfusion index is below 0.3 %
//! (pulse oximeters only); `searching` with no pulse-oximetry values for
//! 4–8 s (drawn per device) after the device starts and after its sensor
//! is put back on; `sensor_off` with no values while the sensor is off;
//! `artifact` while motion is strong (see [`Technical::motion`]).
//!
//! Technical events: sensor off → no values and `sensor_off`; flatline →
//! the exact values and flags of the last output, repeated (only `time` and
//! `seq` advance); motion artifact → SpO2 falsely low and perfusion index
//! low in proportion to the motion, pulse rate unaffected; dropout → no
//! snapshot at all, though the device keeps measuring and counting `seq`
//! (the messages are lost, so the gateway sees a gap in `seq`).

use crate::patient::TrueVitals;
use crate::random::{gauss, ou, uniform};
use crate::scenario::Technical;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use vitalgate_devices::{Quality, Snapshot, Timestamp, Vital};

/// Most samples an averaging window holds; at short periods the window is
/// shortened to this many samples.
const MAX_WINDOW: usize = 32;

/// Below this perfusion index (%) a pulse oximeter flags low perfusion.
pub const LOW_PERFUSION_PI: f64 = 0.3;

/// Above this motion level (0–1) the device recognises the artifact and
/// flags it; below it the corrupted values go out unflagged.
pub const ARTIFACT_MOTION: f64 = 0.6;

/// Noise model of one vital: (bias SD, bias limit, noise SD, averaging
/// window in ms). Perfusion-index bias and noise are relative.
const fn model(v: Vital) -> (f64, f64, f64, i64) {
    match v {
        Vital::Spo2 => (1.0, 2.0, 0.8, 8_000),
        Vital::PulseRate => (0.5, 1.0, 1.5, 8_000),
        Vital::HeartRate => (0.0, 0.0, 0.7, 3_000),
        Vital::RespiratoryRate => (0.5, 1.0, 1.0, 30_000),
        Vital::BodyTemperature => (0.1, 0.2, 0.05, 0),
        Vital::SystolicBp => (3.0, 6.0, 4.0, 0),
        Vital::DiastolicBp => (2.0, 4.0, 3.0, 0),
        Vital::MeanArterialPressure => (0.0, 0.0, 0.0, 0),
        Vital::PerfusionIndex => (0.1, 0.2, 0.05, 8_000),
        Vital::RrInterval => (0.0, 0.0, 3.0, 0),
    }
}

/// The vitals a pulse oximeter derives from its optical signal: absent
/// while searching, affected by motion.
const fn is_optical(v: Vital) -> bool {
    matches!(v, Vital::Spo2 | Vital::PulseRate | Vital::PerfusionIndex)
}

/// A boxcar moving average over the last `cap` samples.
#[derive(Debug, Clone, Copy)]
struct Averager {
    buf: [f64; MAX_WINDOW],
    cap: usize,
    len: usize,
    head: usize,
}

impl Averager {
    fn new(window_ms: i64, period_ms: i64) -> Averager {
        let n = if window_ms <= 0 || period_ms <= 0 {
            1
        } else {
            ((window_ms + period_ms - 1) / period_ms).clamp(1, MAX_WINDOW as i64) as usize
        };
        Averager {
            buf: [0.0; MAX_WINDOW],
            cap: n,
            len: 0,
            head: 0,
        }
    }

    fn push(&mut self, x: f64) -> f64 {
        self.buf[self.head] = x;
        self.head = (self.head + 1) % self.cap;
        self.len = (self.len + 1).min(self.cap);
        self.buf[..self.len].iter().sum::<f64>() / self.len as f64
    }

    fn clear(&mut self) {
        self.len = 0;
        self.head = 0;
    }
}

/// How a device rounds the perfusion index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PiResolution {
    /// 0.01 below 10 %, 0.1 from 10 % (three significant digits).
    Hundredths,
    /// 0.1 throughout.
    Tenths,
}

/// A simulated device measuring one patient.
///
/// Built once per device; [`VirtualDevice::measure`] allocates nothing.
#[derive(Debug, Clone)]
pub struct VirtualDevice {
    id: String,
    vitals: Vec<Vital>,
    period_ms: i64,
    rng: ChaCha8Rng,
    seq: u64,
    oximeter: bool,
    bias: [f64; Vital::COUNT],
    averagers: [Averager; Vital::COUNT],
    pi_resolution: PiResolution,
    search_ms: i64,
    searching_until: Option<Timestamp>,
    sensor_on: bool,
    motion: Option<f64>,
    last: Option<Snapshot>,
    frozen: Option<Snapshot>,
}

impl VirtualDevice {
    /// A device `id` reporting `vitals` every `period_ms`, drawing its
    /// biases, quirks and noise from `rng`. A device reporting SpO2, pulse
    /// rate or perfusion index is a pulse oximeter (searches, flags low
    /// perfusion and motion).
    pub fn new(id: &str, vitals: &[Vital], period_ms: i64, mut rng: ChaCha8Rng) -> VirtualDevice {
        let period_ms = period_ms.max(1);
        let mut bias = [0.0; Vital::COUNT];
        for v in Vital::ALL {
            let (sd, limit, _, _) = model(v);
            bias[v.index()] = (sd * gauss(&mut rng)).clamp(-limit, limit);
        }
        let averagers = Vital::ALL.map(|v| Averager::new(model(v).3, period_ms));
        let pi_resolution = if rng.random_bool(0.5) {
            PiResolution::Hundredths
        } else {
            PiResolution::Tenths
        };
        let search_ms = uniform(&mut rng, 4_000.0, 8_000.0).round() as i64;
        VirtualDevice {
            id: id.to_owned(),
            vitals: vitals.to_vec(),
            period_ms,
            rng,
            seq: 0,
            oximeter: vitals.iter().any(|&v| is_optical(v)),
            bias,
            averagers,
            pi_resolution,
            search_ms,
            searching_until: None,
            sensor_on: false,
            motion: None,
            last: None,
            frozen: None,
        }
    }

    /// The device id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The vitals it reports.
    pub fn vitals(&self) -> &[Vital] {
        &self.vitals
    }

    /// Time between samples, ms.
    pub fn period_ms(&self) -> i64 {
        self.period_ms
    }

    /// Whether it is a pulse oximeter.
    pub fn is_oximeter(&self) -> bool {
        self.oximeter
    }

    /// Its perfusion-index resolution quirk.
    pub fn pi_resolution(&self) -> PiResolution {
        self.pi_resolution
    }

    /// Samples taken so far (including those lost in dropouts): the `seq`
    /// of the next snapshot.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Measure `truth` at `t` under the technical state `tech`. `None`
    /// during a dropout (the sample is taken and counted but never sent).
    pub fn measure(
        &mut self,
        t: Timestamp,
        truth: &TrueVitals,
        tech: Technical,
    ) -> Option<Snapshot> {
        let seq = self.seq;
        self.seq += 1;
        let mut snap = Snapshot {
            time: t,
            values: [None; Vital::COUNT],
            quality: Quality::NONE,
            seq,
        };
        let (motion, spo2_error) = self.motion_level(tech.motion);
        if tech.sensor_off {
            snap.quality = Quality::SENSOR_OFF;
            self.sensor_on = false;
            self.searching_until = None;
            for a in &mut self.averagers {
                a.clear();
            }
        } else {
            if !self.sensor_on {
                self.sensor_on = true;
                if self.oximeter {
                    self.searching_until = Some(t.add_millis(self.search_ms));
                }
            }
            let searching = self.searching_until.is_some_and(|until| t < until);
            let pi = truth.perfusion_index
                * (1.0 + self.bias[Vital::PerfusionIndex.index()])
                * (1.0 - 0.85 * motion);
            let mut measured_bp = (truth.systolic_bp, truth.diastolic_bp);
            for i in 0..self.vitals.len() {
                let v = self.vitals[i];
                if v == Vital::MeanArterialPressure {
                    continue;
                }
                let (_, _, noise, _) = model(v);
                let z = gauss(&mut self.rng);
                let bias = self.bias[v.index()];
                let raw = match v {
                    Vital::Spo2 => {
                        truth.spo2 + bias + noise * z - motion * spo2_error
                            + 2.0 * motion * gauss(&mut self.rng)
                    }
                    Vital::PerfusionIndex => pi * (1.0 + noise * z),
                    Vital::SystolicBp => {
                        measured_bp.0 = truth.systolic_bp + bias + noise * z;
                        measured_bp.0
                    }
                    Vital::DiastolicBp => {
                        measured_bp.1 = truth.diastolic_bp + bias + noise * z;
                        measured_bp.1
                    }
                    _ => truth.get(v) + bias + noise * z,
                };
                let value = self.averagers[v.index()].push(raw);
                if !(searching && is_optical(v)) {
                    snap.values[v.index()] = Some(self.quantize(v, value));
                }
            }
            if self.vitals.contains(&Vital::MeanArterialPressure) {
                let (sbp, dbp) = measured_bp;
                snap.set(
                    Vital::MeanArterialPressure,
                    Some((dbp + (sbp - dbp) / 3.0).round()),
                );
            }
            if self.oximeter {
                snap.quality.set(Quality::SEARCHING, searching);
                snap.quality
                    .set(Quality::LOW_PERFUSION, !searching && pi < LOW_PERFUSION_PI);
                snap.quality
                    .set(Quality::ARTIFACT, !searching && motion > ARTIFACT_MOTION);
            }
        }
        if tech.flatline {
            let frozen = *self.frozen.get_or_insert(self.last.unwrap_or(snap));
            snap.values = frozen.values;
            snap.quality = frozen.quality;
        } else {
            self.frozen = None;
        }
        self.last = Some(snap);
        if tech.dropout { None } else { Some(snap) }
    }

    /// Advance the motion level (0–1) and return it with the event's
    /// largest SpO2 error. Motion wanders around 0.55 with a 4 s time
    /// constant, so the artifact comes and goes within an episode and the
    /// device flags only part of it.
    fn motion_level(&mut self, event: Option<f64>) -> (f64, f64) {
        match event {
            Some(error) if self.oximeter => {
                let z = gauss(&mut self.rng);
                let m = match self.motion {
                    Some(m) => 0.55 + ou(m - 0.55, self.period_ms as f64, 4_000.0, 0.3, z),
                    None => 0.55 + 0.3 * z,
                }
                .clamp(0.0, 1.0);
                self.motion = Some(m);
                (m, error)
            }
            _ => {
                self.motion = None;
                (0.0, 0.0)
            }
        }
    }

    /// Round as the device does.
    fn quantize(&self, v: Vital, x: f64) -> f64 {
        match v {
            Vital::Spo2 => x.round().clamp(0.0, 100.0),
            Vital::HeartRate | Vital::PulseRate | Vital::RespiratoryRate => x.round().max(0.0),
            Vital::SystolicBp | Vital::DiastolicBp | Vital::MeanArterialPressure => x.round(),
            Vital::BodyTemperature => (x * 10.0).round() / 10.0,
            Vital::PerfusionIndex => {
                let x = x.max(0.0);
                match self.pi_resolution {
                    PiResolution::Hundredths if x < 10.0 => (x * 100.0).round() / 100.0,
                    _ => (x * 10.0).round() / 10.0,
                }
            }
            Vital::RrInterval => (x * 1.024).round() / 1.024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::stream;

    const OXIMETER: [Vital; 3] = [Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex];

    fn truth() -> TrueVitals {
        TrueVitals {
            heart_rate: 72.0,
            spo2: 97.0,
            respiratory_rate: 15.0,
            body_temperature: 36.84,
            systolic_bp: 124.0,
            diastolic_bp: 79.0,
            mean_arterial_pressure: 94.0,
            perfusion_index: 2.0,
            rr_interval: 833.3,
        }
    }

    fn device(vitals: &[Vital], seed: &str) -> VirtualDevice {
        VirtualDevice::new(seed, vitals, 1_000, stream(1, "device", seed))
    }

    /// Measure `n` samples of a constant truth, starting after the search.
    fn run(
        d: &mut VirtualDevice,
        truth: &TrueVitals,
        tech: Technical,
        from: i64,
        n: i64,
    ) -> Vec<Snapshot> {
        (0..n)
            .filter_map(|i| d.measure(Timestamp((from + i) * 1_000), truth, tech))
            .collect()
    }

    #[test]
    fn values_are_rounded_to_the_device_resolution() {
        let all = Vital::ALL;
        for seed in ["a", "b", "c", "d"] {
            let mut d = device(&all, seed);
            for s in run(&mut d, &truth(), Technical::default(), 0, 20)
                .iter()
                .skip(10)
            {
                let get = |v| s.get(v).unwrap_or(f64::NAN);
                for v in [
                    Vital::Spo2,
                    Vital::PulseRate,
                    Vital::HeartRate,
                    Vital::SystolicBp,
                    Vital::MeanArterialPressure,
                ] {
                    assert_eq!(get(v), get(v).round(), "{v}");
                }
                assert!(get(Vital::Spo2) <= 100.0);
                let t10 = get(Vital::BodyTemperature) * 10.0;
                assert!((t10 - t10.round()).abs() < 1e-9);
                let pi = get(Vital::PerfusionIndex) * 100.0;
                assert!((pi - pi.round()).abs() < 1e-6);
                let ticks = get(Vital::RrInterval) * 1.024;
                assert!((ticks - ticks.round()).abs() < 1e-9);
                let map = (get(Vital::DiastolicBp)
                    + (get(Vital::SystolicBp) - get(Vital::DiastolicBp)) / 3.0)
                    .round();
                assert!((get(Vital::MeanArterialPressure) - map).abs() <= 1.0);
            }
        }
    }

    #[test]
    fn a_pulse_oximeter_searches_before_its_first_values_and_counts_every_sample() {
        let mut d = device(&OXIMETER, "search");
        let out = run(&mut d, &truth(), Technical::default(), 0, 12);
        assert_eq!(
            out.iter().map(|s| s.seq).collect::<Vec<_>>(),
            (0..12).collect::<Vec<u64>>()
        );
        assert!(out[0].quality.contains(Quality::SEARCHING) && out[0].get(Vital::Spo2).is_none());
        let last = &out[11];
        assert!(last.quality.is_empty(), "{:?}", last.quality);
        let spo2 = last.get(Vital::Spo2).unwrap_or(0.0);
        assert!((94.0..=99.0).contains(&spo2), "{spo2}");
        assert_eq!(
            last.get(Vital::RrInterval),
            None,
            "not a vital of this device"
        );
    }

    #[test]
    fn a_pulse_oximeter_lags_behind_a_sudden_change() {
        let mut d = device(&OXIMETER, "lag");
        run(&mut d, &truth(), Technical::default(), 0, 30);
        let low = TrueVitals {
            spo2: 85.0,
            ..truth()
        };
        let after: Vec<f64> = run(&mut d, &low, Technical::default(), 30, 12)
            .iter()
            .filter_map(|s| s.get(Vital::Spo2))
            .collect();
        assert!(
            after[1] > 92.0,
            "two seconds in it has not followed: {after:?}"
        );
        assert!(after[3] > after[9], "it falls over the window");
        assert!(after[10] < 89.0, "after the 8 s window it has: {after:?}");
    }

    #[test]
    fn sensor_off_gives_snapshots_with_no_values_and_the_flag_then_a_search() {
        let mut d = device(
            &[Vital::Spo2, Vital::PulseRate, Vital::BodyTemperature],
            "off",
        );
        run(&mut d, &truth(), Technical::default(), 0, 20);
        let off = Technical {
            sensor_off: true,
            ..Technical::default()
        };
        let during = run(&mut d, &truth(), off, 20, 10);
        assert_eq!(during.len(), 10);
        for s in &during {
            assert_eq!(s.quality, Quality::SENSOR_OFF);
            assert!(s.values.iter().all(Option::is_none));
        }
        let back = run(&mut d, &truth(), Technical::default(), 30, 12);
        assert!(back[0].quality.contains(Quality::SEARCHING) && back[0].get(Vital::Spo2).is_none());
        assert!(
            back[0].get(Vital::BodyTemperature).is_some(),
            "non-optical values resume at once"
        );
        assert!(back[11].get(Vital::Spo2).is_some());
    }

    #[test]
    fn a_flatlined_device_repeats_exactly_the_same_values() {
        let mut d = device(&Vital::ALL, "flat");
        let before = run(&mut d, &truth(), Technical::default(), 0, 20);
        let flat = Technical {
            flatline: true,
            ..Technical::default()
        };
        let mut moving = truth();
        let mut during = Vec::new();
        for i in 20..80 {
            moving.heart_rate += 1.0;
            moving.spo2 -= 0.1;
            during.extend(d.measure(Timestamp(i * 1_000), &moving, flat));
        }
        let last = before[before.len() - 1];
        for s in &during {
            assert_eq!(s.values, last.values);
            assert_eq!(s.quality, last.quality);
        }
        assert!(
            during
                .windows(2)
                .all(|w| w[1].seq == w[0].seq + 1 && w[1].time > w[0].time)
        );
        let after = run(&mut d, &moving, Technical::default(), 80, 10);
        assert_ne!(after[9].values, last.values, "unfreezes afterwards");
    }

    #[test]
    fn motion_artifact_lowers_spo2_without_changing_pulse_rate() {
        let mut d = device(&OXIMETER, "motion");
        let clean = run(&mut d, &truth(), Technical::default(), 0, 200);
        let motion = Technical {
            motion: Some(12.0),
            ..Technical::default()
        };
        let moving = run(&mut d, &truth(), motion, 200, 200);
        let mean = |s: &[Snapshot], v: Vital| {
            let xs: Vec<f64> = s.iter().filter_map(|s| s.get(v)).collect();
            xs.iter().sum::<f64>() / xs.len() as f64
        };
        let clean = &clean[20..];
        assert!(mean(clean, Vital::Spo2) - mean(&moving, Vital::Spo2) > 4.0);
        assert!((mean(clean, Vital::PulseRate) - mean(&moving, Vital::PulseRate)).abs() < 1.5);
        assert!(mean(&moving, Vital::PerfusionIndex) < 0.7 * mean(clean, Vital::PerfusionIndex));
        let flagged = moving
            .iter()
            .filter(|s| s.quality.contains(Quality::ARTIFACT))
            .count();
        assert!(
            flagged > 20 && flagged < 180,
            "flagged only while strong: {flagged}/200"
        );
        let unflagged_low = moving
            .iter()
            .filter(|s| {
                !s.quality.contains(Quality::ARTIFACT) && s.get(Vital::Spo2).unwrap_or(100.0) < 93.0
            })
            .count();
        assert!(
            unflagged_low > 0,
            "some falsely low values go out unflagged"
        );
        assert!(clean.iter().all(|s| !s.quality.contains(Quality::ARTIFACT)));
    }

    #[test]
    fn dropout_produces_no_snapshots_but_leaves_a_gap_in_seq() {
        let mut d = device(&OXIMETER, "drop");
        let before = run(&mut d, &truth(), Technical::default(), 0, 10);
        let gone = run(
            &mut d,
            &truth(),
            Technical {
                dropout: true,
                ..Technical::default()
            },
            10,
            30,
        );
        assert!(gone.is_empty());
        let after = run(&mut d, &truth(), Technical::default(), 40, 5);
        assert_eq!(before[9].seq, 9);
        assert_eq!(after[0].seq, 40);
        assert!(
            after[0].get(Vital::Spo2).is_some(),
            "no new search after a dropout"
        );
    }

    #[test]
    fn a_blood_pressure_cuff_reports_consistent_pressures_without_averaging() {
        let bp = [
            Vital::SystolicBp,
            Vital::DiastolicBp,
            Vital::MeanArterialPressure,
        ];
        let mut d = VirtualDevice::new("bp", &bp, 300_000, stream(1, "device", "bp"));
        for i in 0..50 {
            let s = d.measure(Timestamp(i * 300_000), &truth(), Technical::default());
            let s = s.unwrap_or_default();
            let (sbp, dbp, map) = (
                s.get(Vital::SystolicBp).unwrap_or(0.0),
                s.get(Vital::DiastolicBp).unwrap_or(0.0),
                s.get(Vital::MeanArterialPressure).unwrap_or(0.0),
            );
            assert!(
                (100.0..150.0).contains(&sbp) && (60.0..100.0).contains(&dbp),
                "{sbp}/{dbp}"
            );
            assert!(dbp < map && map < sbp);
            assert!(s.quality.is_empty(), "a cuff is not an oximeter");
        }
    }
}
