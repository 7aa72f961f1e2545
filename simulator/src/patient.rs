//! Virtual patients: the true physiology that devices measure.
//!
//! A [`Patient`] is a small phenomenological model, not a cardiovascular
//! simulator: it aims for values, rhythms and couplings a clinician would
//! find plausible on a home-monitoring chart, so the gateway's detection
//! sees the same patterns (and the same false-alarm traps) as in the field.
//!
//! The true state of every vital is built each step from
//! * the patient's [`Baseline`] (drawn once from the seed),
//! * slow mean-reverting drift (Ornstein–Uhlenbeck processes: values wander
//!   over tens of minutes but always return to the baseline),
//! * the day/night rhythm: sleep lowers heart rate, blood pressure and
//!   respiratory rate and raises perfusion; core temperature follows its own
//!   circadian cosine with its minimum about two hours before waking,
//! * activity bouts while awake (heart and respiratory rate, blood pressure
//!   up; perfusion index down; exertional desaturation in COPD),
//! * acute effects imposed by a scenario ([`Acute`]), with physiological
//!   coupling: fever raises heart rate about 10/min per °C and respiratory
//!   rate about 1.5/min per °C; hypoxaemia raises heart and respiratory rate.
//!
//! Local time is taken as UTC: the simulated patients live at UTC+0.

use crate::random::{clamped_normal, gauss, log_uniform, ou, relax, uniform};
use rand::Rng;
use serde::Serialize;
use std::f64::consts::TAU;
use vitalgate_devices::{Timestamp, Vital};

/// Milliseconds per minute.
pub const MINUTE_MS: i64 = 60_000;
/// Milliseconds per hour.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// Milliseconds per day.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// The true value of every vital at one instant, in canonical units
/// ([`Vital::ucum`]). Devices measure these with their own noise, lag and
/// quantization; tests and scoring compare against them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TrueVitals {
    /// Heart rate, /min. The pulse rate equals it (no pulse deficit).
    pub heart_rate: f64,
    /// Arterial oxygen saturation as a pulse oximeter would see it, %.
    pub spo2: f64,
    /// Breaths per minute.
    pub respiratory_rate: f64,
    /// Core body temperature, °C.
    pub body_temperature: f64,
    /// Systolic blood pressure, mm[Hg].
    pub systolic_bp: f64,
    /// Diastolic blood pressure, mm[Hg].
    pub diastolic_bp: f64,
    /// Mean arterial pressure, mm[Hg]: DBP + (SBP − DBP)/3.
    pub mean_arterial_pressure: f64,
    /// Perfusion index, %.
    pub perfusion_index: f64,
    /// The current beat-to-beat (R–R) interval, ms: 60000/HR modulated by
    /// respiratory sinus arrhythmia plus beat-to-beat variability.
    pub rr_interval: f64,
}

impl TrueVitals {
    /// The true value of `vital`.
    pub fn get(&self, vital: Vital) -> f64 {
        match vital {
            Vital::HeartRate | Vital::PulseRate => self.heart_rate,
            Vital::Spo2 => self.spo2,
            Vital::RespiratoryRate => self.respiratory_rate,
            Vital::BodyTemperature => self.body_temperature,
            Vital::SystolicBp => self.systolic_bp,
            Vital::DiastolicBp => self.diastolic_bp,
            Vital::MeanArterialPressure => self.mean_arterial_pressure,
            Vital::PerfusionIndex => self.perfusion_index,
            Vital::RrInterval => self.rr_interval,
        }
    }
}

/// A patient's individual set points and rhythm parameters, drawn once.
///
/// The distributions are those of an adult home-monitoring cohort:
/// * resting heart rate N(68, 8) clamped to 50–95/min (Quer et al., PLOS ONE
///   2020: mean daily resting HR ~65/min, most adults 50–90), +5/min in COPD
///   (resting tachycardia is common in COPD);
/// * SpO2 N(97, 1) clamped to 95–99 % (WHO Pulse Oximetry Training Manual
///   2011: normal 95–100 %); COPD: uniform 89–91.5 %, inside the 88–92 %
///   target range of the BTS oxygen guideline (O'Driscoll et al., Thorax
///   2017), which is what these patients usually run at;
/// * respiratory rate N(15, 2) clamped 12–19/min (NEWS2 normal band
///   12–20); COPD N(20, 2) clamped 16–24/min;
/// * temperature mesor N(36.7, 0.2) clamped 36.2–37.1 °C (Obermeyer et al.,
///   BMJ 2017: mean 36.6 °C with individual differences of a few tenths),
///   circadian half-amplitude 0.25–0.45 °C;
/// * blood pressure N(126/78, 14/8) clamped 100–165 / 58–98 mm[Hg], pulse
///   pressure at least 30; nocturnal dip 8–18 % ("dippers": O'Brien et al.,
///   Lancet 1988);
/// * perfusion index log-normal, median 1.5 % (Lima et al., Crit Care Med
///   2002: healthy adults median 1.4 %, IQR 0.7–3.0), clamped 0.5–8 %;
/// * short-term heart-rate variability 15–45 ms (Shaffer & Ginsberg, Front
///   Public Health 2017: resting RMSSD ~20–50 ms), lower in COPD.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Baseline {
    /// Whether the patient has COPD (low usual SpO2, higher RR, exertional
    /// desaturation).
    pub copd: bool,
    /// Resting heart rate while awake, /min.
    pub resting_hr: f64,
    /// Usual SpO2, %.
    pub spo2: f64,
    /// Usual respiratory rate while awake, /min.
    pub respiratory_rate: f64,
    /// Temperature mesor (24 h mean), °C.
    pub temperature: f64,
    /// Circadian temperature half-amplitude, °C.
    pub temperature_amplitude: f64,
    /// Usual systolic pressure while awake, mm[Hg].
    pub systolic_bp: f64,
    /// Usual diastolic pressure while awake, mm[Hg].
    pub diastolic_bp: f64,
    /// Usual perfusion index, %.
    pub perfusion_index: f64,
    /// Beat-to-beat variability of the R–R interval at 60/min, ms.
    pub hrv_ms: f64,
    /// Local hour the patient falls asleep (22–24).
    pub bedtime_h: f64,
    /// Hours of sleep (6.5–8.5).
    pub sleep_h: f64,
    /// Fractional heart-rate drop during sleep (0.08–0.15).
    pub hr_sleep_dip: f64,
    /// Fractional blood-pressure drop during sleep (0.08–0.18).
    pub bp_sleep_dip: f64,
    /// Heart-rate rise at full activity intensity, /min (30–45).
    pub activity_hr_gain: f64,
    /// Mean time between activity bouts while awake, minutes (40–90).
    pub activity_gap_min: f64,
}

impl Baseline {
    /// Draw a patient from the adult cohort distributions above (COPD or
    /// not). The number and order of draws is fixed, so the same stream
    /// gives the same patient.
    pub fn draw<R: Rng + ?Sized>(copd: bool, rng: &mut R) -> Baseline {
        let resting_hr = clamped_normal(rng, 68.0, 8.0, 50.0, 95.0) + if copd { 5.0 } else { 0.0 };
        let spo2 = if copd {
            uniform(rng, 89.0, 91.5)
        } else {
            clamped_normal(rng, 97.0, 1.0, 95.0, 99.0)
        };
        let respiratory_rate = if copd {
            clamped_normal(rng, 20.0, 2.0, 16.0, 24.0)
        } else {
            clamped_normal(rng, 15.0, 2.0, 12.0, 19.0)
        };
        let temperature = clamped_normal(rng, 36.7, 0.2, 36.2, 37.1);
        let temperature_amplitude = uniform(rng, 0.25, 0.45);
        let systolic_bp = clamped_normal(rng, 126.0, 14.0, 100.0, 165.0);
        let diastolic_bp = clamped_normal(rng, 78.0, 8.0, 58.0, 98.0).min(systolic_bp - 30.0);
        let perfusion_index = (1.5f64.ln() + 0.6 * gauss(rng)).exp().clamp(0.5, 8.0);
        let hrv_ms = uniform(rng, 15.0, 45.0) * if copd { 0.7 } else { 1.0 };
        Baseline {
            copd,
            resting_hr,
            spo2,
            respiratory_rate,
            temperature,
            temperature_amplitude,
            systolic_bp,
            diastolic_bp,
            perfusion_index,
            hrv_ms,
            bedtime_h: uniform(rng, 22.0, 24.0),
            sleep_h: uniform(rng, 6.5, 8.5),
            hr_sleep_dip: uniform(rng, 0.08, 0.15),
            bp_sleep_dip: uniform(rng, 0.08, 0.18),
            activity_hr_gain: uniform(rng, 30.0, 45.0),
            activity_gap_min: uniform(rng, 40.0, 90.0),
        }
    }

    /// The local hour (0–24) at which core temperature peaks: about ten
    /// hours after waking, so the minimum falls about two hours before
    /// waking, in the early morning (Czeisler et al.: the core-temperature
    /// minimum precedes habitual wake time by ~2 h).
    pub fn temperature_peak_h(&self) -> f64 {
        (self.bedtime_h + self.sleep_h + 10.0).rem_euclid(24.0)
    }

    /// Whether the patient's habitual sleep covers local hour `h`.
    pub fn sleeps_at(&self, h: f64) -> bool {
        (h - self.bedtime_h).rem_euclid(24.0) < self.sleep_h
    }
}

/// A pull of a vital toward a target value, as a scenario's event imposes
/// it (desaturation toward a nadir, tachycardia toward a rate): the vital is
/// `natural + weight · (target − natural)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pull {
    /// The value the vital tends to.
    pub target: f64,
    /// 0 = no effect, 1 = the vital is at the target (plus its jitter).
    pub weight: f64,
}

impl Pull {
    fn apply(pull: Option<Pull>, natural: f64, jitter: f64) -> f64 {
        match pull {
            Some(p) => natural + p.weight.clamp(0.0, 1.0) * (p.target + jitter - natural),
            None => natural,
        }
    }

    fn stronger(a: Option<Pull>, b: Option<Pull>) -> Option<Pull> {
        match (a, b) {
            (Some(x), Some(y)) => Some(if y.weight > x.weight { y } else { x }),
            (x, None) => x,
            (None, y) => y,
        }
    }
}

/// Acute changes a scenario imposes on the patient at one instant, on top
/// of the normal physiology. The patient adds its own couplings (fever →
/// heart rate, hypoxaemia → heart and respiratory rate), so a scenario only
/// states the primary disturbance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acute {
    /// Pull SpO2 toward a target (desaturation).
    pub spo2_pull: Option<Pull>,
    /// Pull heart rate toward a target (tachycardia, bradycardia).
    pub hr_pull: Option<Pull>,
    /// °C added to the temperature set point (fever, sepsis).
    pub temperature: f64,
    /// /min added to heart rate beyond the couplings.
    pub heart_rate: f64,
    /// /min added to respiratory rate beyond the couplings.
    pub respiratory_rate: f64,
    /// mm[Hg] added to systolic pressure (negative in sepsis).
    pub systolic_bp: f64,
    /// mm[Hg] added to diastolic pressure.
    pub diastolic_bp: f64,
    /// Percentage points added to SpO2 (negative: sepsis, exacerbation).
    pub spo2: f64,
    /// Factor on the perfusion index (peripheral vasoconstriction < 1).
    pub perfusion_factor: f64,
    /// 0–1: how far illness suppresses activity (ill patients rest).
    pub rest: f64,
}

impl Acute {
    /// No acute effect.
    pub const NONE: Acute = Acute {
        spo2_pull: None,
        hr_pull: None,
        temperature: 0.0,
        heart_rate: 0.0,
        respiratory_rate: 0.0,
        systolic_bp: 0.0,
        diastolic_bp: 0.0,
        spo2: 0.0,
        perfusion_factor: 1.0,
        rest: 0.0,
    };

    /// Combine two simultaneous effects: shifts add, factors multiply, the
    /// stronger pull wins.
    pub fn combine(self, other: Acute) -> Acute {
        Acute {
            spo2_pull: Pull::stronger(self.spo2_pull, other.spo2_pull),
            hr_pull: Pull::stronger(self.hr_pull, other.hr_pull),
            temperature: self.temperature + other.temperature,
            heart_rate: self.heart_rate + other.heart_rate,
            respiratory_rate: self.respiratory_rate + other.respiratory_rate,
            systolic_bp: self.systolic_bp + other.systolic_bp,
            diastolic_bp: self.diastolic_bp + other.diastolic_bp,
            spo2: self.spo2 + other.spo2,
            perfusion_factor: self.perfusion_factor * other.perfusion_factor,
            rest: self.rest.max(other.rest),
        }
    }
}

impl Default for Acute {
    fn default() -> Self {
        Acute::NONE
    }
}

/// Time constants and spreads of the slow drifts (stationary SD, τ).
/// Chosen so that hour-to-hour variation matches what ambulatory records
/// show for a resting patient: a few /min of heart rate, under 1 % SpO2,
/// about 0.1 °C, 5–6 mm[Hg] systolic.
mod drift {
    use super::MINUTE_MS;
    pub const HR: (f64, f64) = (3.5, 45.0 * MINUTE_MS as f64);
    pub const SPO2: (f64, f64) = (0.6, 30.0 * MINUTE_MS as f64);
    pub const RR: (f64, f64) = (1.0, 30.0 * MINUTE_MS as f64);
    pub const TEMP: (f64, f64) = (0.12, 180.0 * MINUTE_MS as f64);
    pub const SBP: (f64, f64) = (6.0, 60.0 * MINUTE_MS as f64);
    pub const DBP: (f64, f64) = (4.0, 60.0 * MINUTE_MS as f64);
    pub const PI_LOG: (f64, f64) = (0.25, 30.0 * MINUTE_MS as f64);
    /// Fast heart-rate fluctuation (seconds scale).
    pub const HR_FAST: (f64, f64) = (2.0, 20_000.0);
    /// Fast SpO2 fluctuation (seconds scale).
    pub const SPO2_FAST: (f64, f64) = (0.3, 10_000.0);
}

/// An activity bout in progress.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bout {
    until: Timestamp,
    intensity: f64,
}

/// A virtual patient: baseline, slow state and current true vitals.
///
/// Advance it with [`Patient::step`]; read it with [`Patient::truth`]. The
/// model is exact for any step size (its random processes are discretized
/// exactly), so tests may step a week in minutes while the simulation steps
/// every second.
#[derive(Debug, Clone)]
pub struct Patient {
    baseline: Baseline,
    acute: Acute,
    now: Timestamp,
    drift_hr: f64,
    drift_spo2: f64,
    drift_rr: f64,
    drift_temp: f64,
    drift_sbp: f64,
    drift_dbp: f64,
    drift_pi: f64,
    fast_hr: f64,
    fast_spo2: f64,
    sleep: f64,
    activity: f64,
    bout: Option<Bout>,
    resp_phase: f64,
    truth: TrueVitals,
}

impl Patient {
    /// A patient with `baseline`, in its steady state at `start` (asleep if
    /// `start` falls in its night).
    pub fn new<R: Rng + ?Sized>(baseline: Baseline, start: Timestamp, rng: &mut R) -> Patient {
        let mut p = Patient {
            baseline,
            acute: Acute::NONE,
            now: start,
            drift_hr: drift::HR.0 * gauss(rng),
            drift_spo2: drift::SPO2.0 * gauss(rng),
            drift_rr: drift::RR.0 * gauss(rng),
            drift_temp: drift::TEMP.0 * gauss(rng),
            drift_sbp: drift::SBP.0 * gauss(rng),
            drift_dbp: drift::DBP.0 * gauss(rng),
            drift_pi: drift::PI_LOG.0 * gauss(rng),
            fast_hr: 0.0,
            fast_spo2: 0.0,
            sleep: 0.0,
            activity: 0.0,
            bout: None,
            resp_phase: 0.0,
            truth: TrueVitals {
                heart_rate: 0.0,
                spo2: 0.0,
                respiratory_rate: 0.0,
                body_temperature: 0.0,
                systolic_bp: 0.0,
                diastolic_bp: 0.0,
                mean_arterial_pressure: 0.0,
                perfusion_index: 0.0,
                rr_interval: 0.0,
            },
        };
        p.sleep = if p.baseline.sleeps_at(local_hour(start)) {
            1.0
        } else {
            0.0
        };
        p.recompute(rng);
        p
    }

    /// Draw a patient (COPD or not) and start it at `start`.
    pub fn draw<R: Rng + ?Sized>(copd: bool, start: Timestamp, rng: &mut R) -> Patient {
        let baseline = Baseline::draw(copd, rng);
        Patient::new(baseline, start, rng)
    }

    /// The patient's baseline.
    pub fn baseline(&self) -> &Baseline {
        &self.baseline
    }

    /// The time of the current state.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    /// The acute effects applied from the next step on.
    pub fn acute(&self) -> &Acute {
        &self.acute
    }

    /// Set the acute effects a scenario imposes; they shape the state from
    /// the next [`Patient::step`] on (the simulation sets them for the
    /// step's end time before stepping).
    pub fn set_acute(&mut self, acute: Acute) {
        self.acute = acute;
    }

    /// How asleep the patient is (0 awake – 1 asleep; transitions take tens
    /// of minutes).
    pub fn sleep(&self) -> f64 {
        self.sleep
    }

    /// Current activity level (0 rest – 1 vigorous).
    pub fn activity(&self) -> f64 {
        self.activity
    }

    /// Advance the true state by `dt_ms` to `now`.
    pub fn step<R: Rng + ?Sized>(&mut self, now: Timestamp, dt_ms: i64, rng: &mut R) {
        let dt = dt_ms.max(0) as f64;
        let b = self.baseline;
        let copd_scale = if b.copd { 1.15 } else { 1.0 };
        self.drift_hr = ou(self.drift_hr, dt, drift::HR.1, drift::HR.0, gauss(rng));
        self.drift_spo2 = ou(
            self.drift_spo2,
            dt,
            drift::SPO2.1,
            drift::SPO2.0 * copd_scale,
            gauss(rng),
        );
        self.drift_rr = ou(self.drift_rr, dt, drift::RR.1, drift::RR.0, gauss(rng));
        self.drift_temp = ou(
            self.drift_temp,
            dt,
            drift::TEMP.1,
            drift::TEMP.0,
            gauss(rng),
        );
        self.drift_sbp = ou(self.drift_sbp, dt, drift::SBP.1, drift::SBP.0, gauss(rng));
        self.drift_dbp = ou(self.drift_dbp, dt, drift::DBP.1, drift::DBP.0, gauss(rng));
        self.drift_pi = ou(
            self.drift_pi,
            dt,
            drift::PI_LOG.1,
            drift::PI_LOG.0,
            gauss(rng),
        );
        self.fast_hr = ou(
            self.fast_hr,
            dt,
            drift::HR_FAST.1,
            drift::HR_FAST.0,
            gauss(rng),
        );
        self.fast_spo2 = ou(
            self.fast_spo2,
            dt,
            drift::SPO2_FAST.1,
            drift::SPO2_FAST.0,
            gauss(rng),
        );

        // Sleep: falling asleep and waking take ~15 min.
        let sleep_target = if b.sleeps_at(local_hour(now)) {
            1.0
        } else {
            0.0
        };
        self.sleep = relax(self.sleep, sleep_target, dt, 15.0 * MINUTE_MS as f64);

        // Activity bouts: a Poisson process while awake; 3–30 min each,
        // mostly light (intensity skewed low).
        if self.bout.is_some_and(|bout| now >= bout.until) || self.sleep >= 0.5 {
            self.bout = None;
        }
        if self.bout.is_none() && self.sleep < 0.5 {
            let p = 1.0 - (-dt / (b.activity_gap_min * MINUTE_MS as f64)).exp();
            if rng.random::<f64>() < p {
                let u = rng.random::<f64>();
                let minutes = log_uniform(rng, 3.0, 30.0);
                self.bout = Some(Bout {
                    until: now.add_millis((minutes * MINUTE_MS as f64) as i64),
                    intensity: 0.15 + 0.85 * u * u,
                });
            }
        }
        let target =
            self.bout.map_or(0.0, |bout| bout.intensity) * (1.0 - self.acute.rest.clamp(0.0, 1.0));
        // Heart rate rises within a minute and recovers over a few.
        let tau = if target > self.activity {
            45_000.0
        } else {
            150_000.0
        };
        self.activity = relax(self.activity, target, dt, tau);

        self.resp_phase =
            (self.resp_phase + self.truth.respiratory_rate * dt / 60_000.0).rem_euclid(1.0);
        self.now = now;
        self.recompute(rng);
    }

    /// The true vitals now.
    pub fn truth(&self) -> TrueVitals {
        self.truth
    }

    /// Rebuild the true vitals from baseline, state and acute effects.
    fn recompute<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        let b = &self.baseline;
        let a = &self.acute;
        let h = local_hour(self.now);
        let sleep = self.sleep;
        let act = self.activity;
        // +1 at the afternoon peak, −1 in the early morning.
        let circ = (TAU * (h - b.temperature_peak_h()) / 24.0).cos();

        let fever = a.temperature.max(0.0);
        let temperature = b.temperature
            + b.temperature_amplitude * circ
            + self.drift_temp
            + 0.3 * act
            + a.temperature;

        let sleep_desat = if b.copd { 1.2 } else { 0.6 };
        let exertional_desat = if b.copd { 3.0 } else { 0.3 };
        let spo2_natural = b.spo2 + self.drift_spo2 + self.fast_spo2
            - sleep_desat * sleep
            - exertional_desat * act
            + a.spo2;
        let spo2 = Pull::apply(a.spo2_pull, spo2_natural, self.fast_spo2).clamp(50.0, 100.0);
        // Hypoxaemia beyond the patient's usual drives heart and breathing.
        let hypoxaemia = (b.spo2 - 1.0 - spo2).max(0.0);

        let hr_natural = b.resting_hr * (1.0 - b.hr_sleep_dip * sleep)
            + 2.0 * circ
            + self.drift_hr
            + self.fast_hr
            + b.activity_hr_gain * act
            + 10.0 * fever
            + 0.6 * hypoxaemia
            + a.heart_rate;
        // The sinus rate of a non-athlete seldom falls below ~40/min even in
        // deep sleep: a soft floor keeps slow sleepers above it smoothly.
        let hr_natural = soft_floor(hr_natural, 40.0, 5.0);
        let heart_rate = Pull::apply(a.hr_pull, hr_natural, 0.5 * self.fast_hr).clamp(25.0, 220.0);

        let respiratory_rate = soft_floor(
            b.respiratory_rate - 1.0 * sleep
                + self.drift_rr
                + 8.0 * act
                + 1.5 * fever
                + 0.25 * hypoxaemia
                + a.respiratory_rate,
            8.0,
            3.0,
        )
        .min(50.0);

        let bp_factor = 1.0 - b.bp_sleep_dip * sleep;
        // Soft floors keep a low-normal patient's nocturnal dip out of
        // hypotension; acute effects (sepsis) act below them.
        let systolic_natural = soft_floor(
            b.systolic_bp * bp_factor + 2.0 * circ + self.drift_sbp + 20.0 * act,
            92.0,
            8.0,
        );
        let systolic_bp = (systolic_natural + a.systolic_bp).clamp(60.0, 230.0);
        let diastolic_natural = soft_floor(
            b.diastolic_bp * bp_factor + self.drift_dbp + 5.0 * act,
            52.0,
            6.0,
        );
        let diastolic_bp = (diastolic_natural + a.diastolic_bp)
            .min(systolic_bp - 20.0)
            .max(30.0);
        let mean_arterial_pressure = diastolic_bp + (systolic_bp - diastolic_bp) / 3.0;

        let perfusion_index = (b.perfusion_index
            * self.drift_pi.exp()
            * (1.0 + 0.3 * sleep)
            * (1.0 - 0.3 * act)
            * a.perfusion_factor)
            .clamp(0.05, 20.0);

        // R–R interval: mean from HR; respiratory sinus arrhythmia and
        // beat-to-beat variability both shrink as the heart rate rises.
        let mean_rr = 60_000.0 / heart_rate;
        let hrv = b.hrv_ms * (mean_rr / 1_000.0).powi(2);
        let rr_interval = (mean_rr + hrv * (TAU * self.resp_phase).sin() + 0.5 * hrv * gauss(rng))
            .clamp(250.0, 2_500.0);

        self.truth = TrueVitals {
            heart_rate,
            spo2,
            respiratory_rate,
            body_temperature: temperature.clamp(33.0, 42.5),
            systolic_bp,
            diastolic_bp,
            mean_arterial_pressure,
            perfusion_index,
            rr_interval,
        };
    }
}

/// `x`, bent smoothly (continuous with slope 1 at `floor + soft`) so that
/// it approaches but never crosses `floor`.
fn soft_floor(x: f64, floor: f64, soft: f64) -> f64 {
    if x >= floor + soft {
        x
    } else {
        floor + soft * ((x - floor - soft) / soft).exp()
    }
}

/// Local hour of the day (0–24) at `t`, taking local time as UTC.
pub fn local_hour(t: Timestamp) -> f64 {
    t.millis().rem_euclid(DAY_MS) as f64 / HOUR_MS as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::stream;

    /// 2025-01-06T00:00:00Z, a Monday at midnight.
    const MONDAY: Timestamp = Timestamp(1_736_121_600_000);

    /// Step `p` for `days` in `dt_ms` steps, calling `f` after each step.
    fn run(
        p: &mut Patient,
        days: i64,
        dt_ms: i64,
        rng: &mut impl Rng,
        mut f: impl FnMut(&Patient),
    ) {
        let mut t = p.now();
        for _ in 0..days * DAY_MS / dt_ms {
            t = t.add_millis(dt_ms);
            p.step(t, dt_ms, rng);
            f(p);
        }
    }

    fn mean(v: &[f64]) -> f64 {
        v.iter().sum::<f64>() / v.len() as f64
    }

    #[test]
    fn baselines_of_a_drawn_cohort_are_in_adult_ranges() {
        let mut rng = stream(1, "test", "cohort");
        let cohort: Vec<Baseline> = (0..500).map(|_| Baseline::draw(false, &mut rng)).collect();
        for b in &cohort {
            assert!((50.0..=95.0).contains(&b.resting_hr), "{b:?}");
            assert!((95.0..=99.0).contains(&b.spo2));
            assert!((12.0..=19.0).contains(&b.respiratory_rate));
            assert!((36.2..=37.1).contains(&b.temperature));
            assert!(b.systolic_bp - b.diastolic_bp >= 30.0);
            assert!((0.5..=8.0).contains(&b.perfusion_index));
        }
        let hr = mean(&cohort.iter().map(|b| b.resting_hr).collect::<Vec<_>>());
        assert!((65.0..71.0).contains(&hr), "mean resting HR {hr}");
        let lowest = cohort.iter().map(|b| b.resting_hr).fold(f64::MAX, f64::min);
        assert!(lowest < 58.0, "the cohort has some low resting rates");
    }

    #[test]
    fn copd_patients_usually_saturate_between_88_and_92_percent() {
        for i in 0..5 {
            let mut rng = stream(2, "test", &format!("copd-{i}"));
            let mut p = Patient::draw(true, MONDAY, &mut rng);
            assert!((88.0..=92.0).contains(&p.baseline().spo2));
            let mut spo2 = Vec::new();
            run(&mut p, 7, 60_000, &mut rng, |p| spo2.push(p.truth().spo2));
            spo2.sort_by(f64::total_cmp);
            let median = spo2[spo2.len() / 2];
            assert!((88.0..=92.0).contains(&median), "median {median}");
            let p05 = spo2[spo2.len() / 20];
            let p95 = spo2[spo2.len() * 19 / 20];
            assert!(p05 > 85.0 && p95 < 94.0, "5–95 % range {p05}–{p95}");
        }
    }

    #[test]
    fn a_simulated_week_stays_within_realistic_ranges() {
        for (i, copd) in [false, false, false, true].into_iter().enumerate() {
            let mut rng = stream(3, "test", &format!("week-{i}"));
            let mut p = Patient::draw(copd, MONDAY, &mut rng);
            run(&mut p, 7, 30_000, &mut rng, |p| {
                let t = p.truth();
                let ok = (40.0..=150.0).contains(&t.heart_rate)
                    && (if copd { 80.0 } else { 90.0 }..=100.0).contains(&t.spo2)
                    && (7.0..=35.0).contains(&t.respiratory_rate)
                    && (35.3..=37.9).contains(&t.body_temperature)
                    && (88.0..=200.0).contains(&t.systolic_bp)
                    && (48.0..=120.0).contains(&t.diastolic_bp)
                    && (0.1..=20.0).contains(&t.perfusion_index)
                    && (300.0..=1_900.0).contains(&t.rr_interval);
                assert!(ok, "implausible at {}: {t:?}", p.now());
                assert!(
                    t.diastolic_bp < t.mean_arterial_pressure
                        && t.mean_arterial_pressure < t.systolic_bp
                );
            });
        }
    }

    #[test]
    fn heart_rate_blood_pressure_and_respiration_are_lower_at_night() {
        let mut rng = stream(4, "test", "night");
        let mut p = Patient::draw(false, MONDAY, &mut rng);
        let b = *p.baseline();
        let (mut day, mut night) = (Vec::new(), Vec::new());
        run(&mut p, 7, 60_000, &mut rng, |p| {
            let h = local_hour(p.now());
            let t = p.truth();
            let row = [
                t.heart_rate,
                t.systolic_bp,
                t.respiratory_rate,
                t.perfusion_index,
            ];
            if b.sleeps_at(h) && b.sleeps_at(h - 1.0) {
                night.push(row);
            } else if !b.sleeps_at(h) && !b.sleeps_at(h + 1.0) && !b.sleeps_at(h - 1.0) {
                day.push(row);
            }
        });
        let m = |rows: &[[f64; 4]], k: usize| mean(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
        assert!(
            m(&day, 0) - m(&night, 0) > 6.0,
            "HR day {} night {}",
            m(&day, 0),
            m(&night, 0)
        );
        assert!(
            m(&day, 1) - m(&night, 1) > 8.0,
            "SBP day {} night {}",
            m(&day, 1),
            m(&night, 1)
        );
        assert!(m(&day, 2) - m(&night, 2) > 1.0);
        assert!(m(&night, 3) > m(&day, 3), "perfusion is higher asleep");
    }

    #[test]
    fn temperature_is_lowest_in_the_early_morning() {
        let mut rng = stream(5, "test", "temp");
        let mut p = Patient::draw(false, MONDAY, &mut rng);
        let mut by_hour = [(0.0, 0u32); 24];
        run(&mut p, 7, 60_000, &mut rng, |p| {
            let h = local_hour(p.now()) as usize;
            by_hour[h].0 += p.truth().body_temperature;
            by_hour[h].1 += 1;
        });
        let means: Vec<f64> = by_hour.iter().map(|(s, n)| s / f64::from(*n)).collect();
        let coldest = (0..24)
            .min_by(|&a, &b| means[a].total_cmp(&means[b]))
            .unwrap_or(0);
        let warmest = (0..24)
            .max_by(|&a, &b| means[a].total_cmp(&means[b]))
            .unwrap_or(0);
        assert!(
            (2..=8).contains(&coldest),
            "coldest hour {coldest}: {means:?}"
        );
        assert!((13..=21).contains(&warmest), "warmest hour {warmest}");
        assert!(means[warmest] - means[coldest] > 0.4);
    }

    #[test]
    fn activity_bouts_raise_heart_and_respiratory_rate_during_the_day() {
        let mut rng = stream(6, "test", "activity");
        let mut p = Patient::draw(false, MONDAY, &mut rng);
        let (mut active, mut still) = (Vec::new(), Vec::new());
        let mut bouts = 0;
        let mut was_active = false;
        run(&mut p, 3, 10_000, &mut rng, |p| {
            let t = p.truth();
            if p.activity() > 0.4 {
                active.push([t.heart_rate, t.respiratory_rate]);
                if !was_active {
                    bouts += 1;
                }
                assert!(p.sleep() < 0.6, "no activity while asleep");
            } else if p.activity() < 0.02 && p.sleep() < 0.01 {
                still.push([t.heart_rate, t.respiratory_rate]);
            }
            was_active = p.activity() > 0.4;
        });
        assert!(bouts >= 5, "{bouts} bouts in three days");
        let m = |rows: &[[f64; 2]], k: usize| mean(&rows.iter().map(|r| r[k]).collect::<Vec<_>>());
        assert!(m(&active, 0) - m(&still, 0) > 15.0);
        assert!(m(&active, 1) - m(&still, 1) > 3.0);
    }

    #[test]
    fn fever_raises_heart_rate_by_about_ten_per_degree() {
        let mut rng = stream(7, "test", "fever");
        let baseline = Baseline::draw(false, &mut rng);
        let noon = MONDAY.add_millis(12 * HOUR_MS);
        let mut a = Patient::new(baseline, noon, &mut stream(7, "test", "same"));
        let mut b = Patient::new(baseline, noon, &mut stream(7, "test", "same"));
        b.set_acute(Acute {
            temperature: 2.0,
            ..Acute::NONE
        });
        let (mut ra, mut rb) = (stream(7, "test", "step"), stream(7, "test", "step"));
        for i in 1..=60 {
            let t = noon.add_millis(i * 1_000);
            a.step(t, 1_000, &mut ra);
            b.step(t, 1_000, &mut rb);
        }
        let (ta, tb) = (a.truth(), b.truth());
        assert!((tb.body_temperature - ta.body_temperature - 2.0).abs() < 1e-9);
        let dhr = tb.heart_rate - ta.heart_rate;
        assert!((17.0..=23.0).contains(&dhr), "HR +{dhr} for +2 °C");
        assert!(tb.respiratory_rate > ta.respiratory_rate + 2.0);
    }

    #[test]
    fn mean_arterial_pressure_is_diastolic_plus_a_third_of_pulse_pressure() {
        let mut rng = stream(8, "test", "map");
        let mut p = Patient::draw(false, MONDAY, &mut rng);
        run(&mut p, 1, 600_000, &mut rng, |p| {
            let t = p.truth();
            let map = t.diastolic_bp + (t.systolic_bp - t.diastolic_bp) / 3.0;
            assert!((t.mean_arterial_pressure - map).abs() < 1e-9);
        });
    }

    #[test]
    fn rr_intervals_follow_heart_rate_with_variability() {
        let mut rng = stream(9, "test", "rr");
        let mut p = Patient::draw(false, MONDAY.add_millis(12 * HOUR_MS), &mut rng);
        let (mut rr, mut from_hr) = (Vec::new(), Vec::new());
        let mut t = p.now();
        for _ in 0..600 {
            t = t.add_millis(1_000);
            p.step(t, 1_000, &mut rng);
            rr.push(p.truth().rr_interval);
            from_hr.push(60_000.0 / p.truth().heart_rate);
        }
        let (m_rr, m_hr) = (mean(&rr), mean(&from_hr));
        assert!((m_rr - m_hr).abs() < 15.0, "{m_rr} vs {m_hr}");
        let successive: Vec<f64> = rr.windows(2).map(|w| (w[1] - w[0]).powi(2)).collect();
        let rmssd = mean(&successive).sqrt();
        assert!((5.0..=120.0).contains(&rmssd), "RMSSD-like spread {rmssd}");
    }

    #[test]
    fn the_same_stream_gives_the_same_patient() {
        let go = || {
            let mut rng = stream(10, "patient", "p");
            let mut p = Patient::draw(false, MONDAY, &mut rng);
            run(&mut p, 1, 60_000, &mut rng, |_| {});
            p.truth()
        };
        assert_eq!(go(), go());
    }
}
