//! The personal baseline: notice a patient drifting away from their own
//! normal, even while every value is still inside the population's normal
//! range (a resting heart rate of 62 that becomes 80 for an afternoon, a
//! COPD patient who usually sits at 91 % and now sits at 86 %, a heart
//! rate that drops from 70 to 44 within a minute).
//!
//! # How
//!
//! Per patient and per vital (heart rate and pulse rate each on their own,
//! SpO2, body temperature, respiratory rate, systolic blood pressure):
//!
//! 1. **Level** ([`level`]): the median of the one-minute medians of the
//!    reliable readings in a short window (3 min for heart rate). Brief
//!    excursions and artifacts do not move it.
//! 2. **Baseline** ([`histogram`]): the median of a fading histogram of
//!    every minute median learned so far (half-life 3 days). A median,
//!    so an outlier or an hour of exercise cannot drag it; fading, so a
//!    patient's normal may change over weeks.
//! 3. **Drift**: the level is above the baseline by the rise limit, or
//!    below it by the fall limit — each the larger of a fraction of the
//!    baseline and an absolute amount — continuously for the limit's
//!    sustain time ([`crate::debounce`]). It clears once the level has
//!    been back within half the limit for the clear time, so a level
//!    hovering at the limit gives one condition, not a series. A limit
//!    may also ask for a clinical boundary ([`DriftLimit::and_beyond`]),
//!    an abrupt onset ([`DriftLimit::onset_within_ms`]) and a baseline
//!    that has seen a whole day ([`DriftLimit::learned_for_ms`]); see
//!    the next sections for why.
//!
//! All vitals report one condition per patient, [`ConditionKind::BaselineDrift`],
//! severity Low (a review within hours, like NEWS2 1–4: a drift is a
//! question, not an emergency; the emergency rules and NEWS2 cover the
//! values that are dangerous in themselves). Its summary names every
//! vital drifting, with level, baseline and deviation (heart rate and
//! pulse rate drifting together are said once).
//!
//! # Not learning a deterioration as the new normal
//!
//! A minute whose level (and own median) is within half a limit of the
//! baseline is learned at full weight. Beyond that, or while a drift is
//! active, it is learned at a tenth ([`BaselineConfig::far_weight`]): an
//! illness of hours or days barely moves a baseline of days, so the drift
//! stays raised for as long as it lasts, while a new level held for about
//! ten days (three half-lives, the time a tenth-weight stream needs to
//! outweigh the fading past) becomes the patient's normal — a new drug, a
//! pacemaker — instead of an alert that never ends. The same rule keeps
//! activity and deep sleep from pulling the baseline: it is, in effect,
//! the patient's usual level at rest and awake.
//!
//! A *young* baseline (its first day) is the weak point: with an hour or
//! two behind it, an illness rising slowly over hours moves its median
//! minute by minute, each within half a limit. The defaults contain the
//! damage (rises are judged only after a day; a heart-rate fall only
//! counts when abrupt, from the usual level, and to ≤ 50 /min), and NEWS2
//! and the sustained rules do not depend on it.
//!
//! # Warm-up: silent, not population priors
//!
//! Until a vital has learned an hour of minutes (4 readings for a blood
//! pressure cuff) that agree — their middle half spans less than the
//! nearer drift limit — it raises no drift against its baseline; if they
//! do not (a first hour spent a third in a tachycardia) it learns on until
//! they do, or for a day at most. The one exception is a limit that asks
//! for an abrupt onset (the heart-rate fall): it compares the level with
//! the minutes just before it, so from ten learned minutes on it is judged
//! against the median learned so far ("this patient's level so far"),
//! provided neither that median nor the minutes before the fall are a
//! tachycardia (> 100 /min, [`DriftLimit::onset_from`]).
//! The first hours at home after a discharge are when a bradycardia is
//! most likely, and sleep is told apart by the onset, not by the
//! baseline's age. Population priors were considered
//! and rejected: resting heart rate alone spans 40–109 /min between
//! healthy adults (Quer et al., *PLOS ONE* 2020;15:e0227709, 92,457
//! adults), so a prior wide enough to fit everyone would never fire and a
//! narrow one would fire for everyone unlike the average. The patient is
//! not unwatched meanwhile: NEWS2 and the sustained rules use population
//! thresholds from the first reading.
//!
//! # Sleep and the circadian rhythm
//!
//! Sleep lowers heart rate by 10–20 % (a fall under 10 % defines a
//! "non-dipper", Ben-Dov et al., *Arch Intern Med* 2007;167:2116–21, a
//! fall over 20 % an "extreme dipper"), systolic pressure by 13 ± 5 %
//! (sleep/awake ratio 0.87 ± 0.05 in 115 adults, Hinderliter et al.,
//! *J Am Soc Hypertens* 2013;7(6)), SpO2 by 1–2 points (Gries & Brooks,
//! *Chest* 1996;110:1489–92: night median 96.5 %, 10 % of the night
//! below 94.7 %) and temperature by its circadian half-amplitude of a few
//! tenths. The detector does *not* use the time of day: naps happen at
//! any hour, bedtimes move, and a gateway cannot see who is asleep.
//! Instead:
//!
//! * fall limits lie beyond those dips (SBP −30 %, SpO2 −4 points);
//! * a heart-rate fall, whose nocturnal dip varies most, counts only when
//!   it is **abrupt** — at least half the limit below the median level of
//!   the 10 minutes before, which was the patient's usual or lower (not a
//!   return from a tachycardia) — and reaches **≤ 50 /min**. Sleep lowers
//!   the rate over tens of minutes; a conduction block, sinus arrest or a
//!   vagal or drug-induced bradycardia within seconds. Above 50 /min a
//!   fall is not a bradycardia by any current definition (< 50 /min,
//!   Kusumoto et al., 2018 ACC/AHA/HRS bradycardia guideline; NEWS2
//!   scores pulse 41–50 as 1);
//! * rises of heart rate, respiratory rate and blood pressure are judged
//!   only once the baseline has been learning for a whole day, so a
//!   baseline first learned while the patient slept does not take waking
//!   up for a drift.
//!
//! So a sleeper is not paged, at the cost of not seeing a slow downward
//! drift smaller than a night's dip.
//!
//! # Defaults and sources
//!
//! | vital | window | rise: limit, sustain | fall: limit, sustain | clear | why |
//! |---|---|---|---|---|---|
//! | heart / pulse rate | 3 min | +25 % (≥ 10 /min), 60 min, after a day | −25 % (≥ 10 /min) to ≤ 50 /min, abrupt (10 min) from ≤ 100 /min, 2 min, judged from 10 learned minutes | 10 min | rise: project issue 4's example, "a resting heart rate 25 % above baseline for an hour" — fever adds ~10 /min per °C, and an hour outlasts most bouts of exercise at home; a person's resting rate varies by a few /min (within-person SD 3–5 /min at rest over four days, a Fitbit study, medRxiv doi:10.1101/19008771; 20 % of adults see a week in which it moves by ≥ 10 /min, Quer 2020), hence the 10 /min floor. Fall: symmetric with the rise, beyond the deepest common nocturnal dip (20 %), and a bradycardia (above) — the abrupt onset, not a wider margin, is what tells it from sleep; 2 min after a 3-min median (about 3½ min of a low rate in all), twice the minute the emergency rule waits below 40 /min, because paroxysmal AV block and sinus pauses come in episodes of minutes |
//! | SpO2 | 5 min | off | −4 points, 30 min | 10 min | BTS oxygen guideline (O'Driscoll et al., *BMJ Open Resp Res* 2017;4:e000170): "clinical assessment is recommended if the saturation falls by ≥ 3 %", plus the point normal sleep costs; 30 min so that a desaturation on exertion is not a drift (short, deep desaturations are the emergency rules') |
//! | temperature | 10 min | +1.1 °C, 30 min | off | 30 min | IDSA long-term-care fever definition: "an increase in temperature of > 1.1 °C (2 °F) over the baseline" (High et al., *Clin Infect Dis* 2009;48:149–71) — older adults often never reach 38 °C. A fall is off: a skin patch reads low whenever it is uncovered or loose, and hypothermia is NEWS2's (≤ 36.0 °C scores) |
//! | respiratory rate | 5 min | +25 % (≥ 4 /min), 30 min, after a day | −30 % (≥ 4 /min), 30 min | 10 min | the earliest and largest relative change in deterioration (Cretikos et al., *Med J Aust* 2008;188:657–9); NEWS2's bands are 3–4 breaths wide; a fall catches opioid-induced depression before NEWS2's ≤ 8 |
//! | systolic BP | 45 min (3 readings at 15 min) | +25 % (≥ 25 mmHg), 60 min, after a day | −30 % (≥ 20 mmHg), 30 min | 30 min | fall: 20 mmHg is the consensus orthostatic-hypotension fall (Freeman et al., *Clin Auton Res* 2011;21:69–72), 30 % is beyond the nocturnal dip (0.87 ± 0.05); no ≤ boundary, because a fall from 160 to 110 in a hypertensive patient is exactly what a personal baseline is for; a median of three readings, because a cuff reading may err by 8 mmHg (ISO 81060-2) |
//!
//! Common to all: half-life 3 days, learn within half a limit at full
//! weight and a tenth beyond, clear within half a limit, warm-up an hour
//! of minutes (4 cuff readings). Memory per patient is fixed whatever the
//! length of the record: per vital a 200-bin histogram (800 B), at most
//! one minute of readings (≤ 240 values), the window's minute medians and
//! ten minutes of levels — about 2 KiB per vital, 12 KiB per patient.

pub mod config;
pub mod histogram;
pub mod level;
mod series;

pub use config::{BaselineConfig, DriftLimit, VitalDriftConfig};
pub use series::{ONSET_FRACTION, SETTLE_WITHIN_WARMUPS};

use crate::condition::{Condition, ConditionKey, ConditionKind, Evidence, Severity};
use crate::debounce::Transition;
use level::Closed;
use series::Series;
use std::sync::Arc;
use vitalgate_devices::{Reading, Timestamp, Vital};

/// The vitals the detector watches, in report order.
pub const VITALS: [Vital; 6] = [
    Vital::HeartRate,
    Vital::PulseRate,
    Vital::Spo2,
    Vital::BodyTemperature,
    Vital::RespiratoryRate,
    Vital::SystolicBp,
];

/// The personal-baseline detector of one patient. Pure: feed it reliable
/// readings in measurement-time order (the monitor runs fault detection
/// first) and the caller's clock through [`BaselineDetector::tick`]; it
/// reports [`ConditionKind::BaselineDrift`] when the first vital starts
/// drifting, again (still active, with the longer summary) when another
/// vital joins, and once more when the last one clears.
#[derive(Debug, Clone)]
pub struct BaselineDetector {
    patient: Arc<str>,
    config: BaselineConfig,
    series: Vec<Series>,
    /// When the current drift condition started (it spans every vital).
    since: Option<Timestamp>,
}

impl BaselineDetector {
    /// A detector for `patient` that has learned nothing yet.
    pub fn new(patient: Arc<str>, config: BaselineConfig) -> BaselineDetector {
        let series = VITALS
            .iter()
            .filter_map(|&v| {
                let c = config.vital(v)?;
                Some(Series::new(v, *c, config.half_life_ms))
            })
            .collect();
        BaselineDetector {
            patient,
            config,
            series,
            since: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BaselineConfig {
        &self.config
    }

    /// The learned baseline of `vital` (its usual value), once warmed up.
    pub fn baseline(&self, vital: Vital) -> Option<f64> {
        let s = self.series.iter().find(|s| s.vital == vital)?;
        s.established().then(|| s.learned.median()).flatten()
    }

    /// The latest short-window level of `vital`.
    pub fn level(&self, vital: Vital) -> Option<f64> {
        let s = self.series.iter().find(|s| s.vital == vital)?;
        s.last.map(|(level, _)| level)
    }

    /// Whether a drift is active.
    pub fn is_active(&self) -> bool {
        self.series.iter().any(Series::is_active)
    }

    /// Take one reliable reading; the condition it raised, changed or
    /// cleared (by completing a minute).
    pub fn push(&mut self, reading: &Reading) -> Vec<Condition> {
        let Some(i) = self.series.iter().position(|s| s.vital == reading.vital) else {
            return Vec::new();
        };
        if !reading.value.is_finite() {
            return Vec::new();
        }
        let t = reading.time();
        let s = &mut self.series[i];
        s.evidence = Some(Evidence {
            device: Arc::clone(&reading.device),
            vital: reading.vital,
            value: reading.value,
            time: t,
            quality: reading.quality,
        });
        let closed = s.window.push(t, reading.value);
        self.judge(closed.map(|c| (i, c)).into_iter().collect())
    }

    /// The caller's clock (same time base as the readings): completes the
    /// minutes that are over, so a slow device's reading is judged within a
    /// minute rather than at its next reading.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Condition> {
        let closed: Vec<(usize, Closed)> = self
            .series
            .iter_mut()
            .enumerate()
            .filter_map(|(i, s)| s.window.tick(now).map(|c| (i, c)))
            .collect();
        self.judge(closed)
    }

    /// Forget pending onsets and clearing runs of `vital`: readings behind
    /// them were judged unreliable after the fact (a motion artifact). An
    /// active drift stays active; what was learned stays learned (one
    /// corrupted minute cannot move a median of days).
    pub fn interrupt(&mut self, vital: Vital) {
        for s in self.series.iter_mut().filter(|s| s.vital == vital) {
            s.interrupt();
        }
    }

    fn judge(&mut self, closed: Vec<(usize, Closed)>) -> Vec<Condition> {
        let mut out = Vec::new();
        for (i, c) in closed {
            let was = self.is_active();
            let transition = self.series[i].on_minute(c, &self.config);
            out.extend(transition.and_then(|tr| self.report(was, tr, c.time, i)));
        }
        out
    }

    /// The condition after a drift of series `i` was raised or cleared:
    /// raised when it is the first, changed when it joins others (the
    /// summary grows), cleared when it was the last. A drift ending while
    /// others go on changes nothing worth a message.
    fn report(
        &mut self,
        was: bool,
        transition: Transition,
        at: Timestamp,
        i: usize,
    ) -> Option<Condition> {
        let now = self.is_active();
        let (active, since) = match (was, now, transition) {
            (false, true, _) => {
                let since = self.series.iter().filter_map(Series::since).min()?;
                self.since = Some(since);
                (true, since)
            }
            (true, true, Transition::Raised { .. }) => (true, self.since?),
            (true, false, _) => (false, self.since.take()?),
            _ => return None,
        };
        let drifting: Vec<&Series> = self.series.iter().filter(|s| s.is_active()).collect();
        let summary = if active {
            // Heart rate and pulse rate drifting the same way are one
            // finding: say it once, from the ECG.
            let heart = self
                .series
                .iter()
                .find(|s| s.vital == Vital::HeartRate)
                .and_then(Series::direction);
            drifting
                .iter()
                .filter(|s| !(s.vital == Vital::PulseRate && heart == s.direction()))
                .filter_map(|s| s.describe(at))
                .collect::<Vec<_>>()
                .join("; ")
        } else {
            format!(
                "back to this patient's usual values (drift lasted {} min)",
                (at.millis() - since.millis()) / 60_000
            )
        };
        let evidence = if active {
            drifting.iter().filter_map(|s| s.evidence.clone()).collect()
        } else {
            self.series[i].evidence.iter().cloned().collect()
        };
        Some(Condition {
            key: ConditionKey {
                patient: Arc::clone(&self.patient),
                kind: ConditionKind::BaselineDrift,
                device: None,
            },
            active,
            severity: Severity::Low,
            since,
            at,
            evidence,
            summary,
            news2: None,
        })
    }
}

#[cfg(test)]
mod tests;
