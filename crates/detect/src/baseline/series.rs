//! One vital of one patient: its short-window level, its learned
//! baseline, and the two drift limits (rise, fall) judged every minute.
//! See [`super`] for the design and the defaults.

use super::config::{BaselineConfig, DriftLimit, VitalDriftConfig};
use super::histogram::{self, Histogram};
use super::level::{self, Closed, ShortWindow};
use crate::condition::Evidence;
use crate::debounce::{Debounce, Transition};
use std::collections::VecDeque;
use vitalgate_devices::{Timestamp, Vital};

/// How far, as a fraction of the limit, the level must be from the median
/// level of a limit's `onset_within_ms` before it for the onset to count
/// as abrupt.
pub const ONSET_FRACTION: f64 = 0.5;

/// However scattered the first minutes, the warm-up ends once this many
/// warm-ups' worth are learned (24: a day, for an hour's warm-up).
pub const SETTLE_WITHIN_WARMUPS: f64 = 24.0;

/// Which way a vital has drifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Above the baseline.
    Rise,
    /// Below the baseline.
    Fall,
}

/// One vital's learning and drift state.
#[derive(Debug, Clone)]
pub struct Series {
    /// Which vital.
    pub vital: Vital,
    /// Its limits and learning.
    pub config: VitalDriftConfig,
    /// The short-window level.
    pub window: ShortWindow,
    /// The long-run distribution; its median is the baseline.
    pub learned: Histogram,
    /// When learning began.
    first: Option<Timestamp>,
    /// Whether the warm-up is over (it stays over).
    established: bool,
    rise: Debounce,
    fall: Debounce,
    /// The latest level and the baseline it was judged against.
    pub last: Option<(f64, f64)>,
    /// Recent levels, for limits that need an abrupt onset.
    recent: VecDeque<(Timestamp, f64)>,
    /// Whether the current run of breaches (rise, fall) began abruptly
    /// enough for its limit.
    runs: (bool, bool),
    /// The latest reading (the evidence shown with a drift).
    pub evidence: Option<Evidence>,
}

impl Series {
    /// Nothing learned yet.
    pub fn new(vital: Vital, config: VitalDriftConfig, half_life_ms: i64) -> Series {
        let (lo, hi) = histogram::range(vital);
        let debounce = |limit: &DriftLimit| {
            Debounce::new(limit.sustain_ms, config.clear_ms, config.max_gap_ms)
        };
        Series {
            vital,
            window: ShortWindow::new(config.window_ms),
            learned: Histogram::new(lo, hi, half_life_ms),
            first: None,
            established: false,
            rise: debounce(&config.rise),
            fall: debounce(&config.fall),
            last: None,
            recent: VecDeque::new(),
            runs: (false, false),
            evidence: None,
            config,
        }
    }

    /// Whether the warm-up is over.
    pub fn established(&self) -> bool {
        self.established
    }

    /// Whether a drift of this vital is active.
    pub fn is_active(&self) -> bool {
        self.rise.is_active() || self.fall.is_active()
    }

    /// Which way it is drifting, if it is.
    pub fn direction(&self) -> Option<Direction> {
        if self.rise.is_active() {
            Some(Direction::Rise)
        } else if self.fall.is_active() {
            Some(Direction::Fall)
        } else {
            None
        }
    }

    /// Forget pending onsets and clearing runs (see
    /// [`super::BaselineDetector::interrupt`]).
    pub fn interrupt(&mut self) {
        self.rise.interrupt();
        self.fall.interrupt();
    }

    /// When its active drift began.
    pub fn since(&self) -> Option<Timestamp> {
        [self.rise.since(), self.fall.since()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Judge one closed minute, then learn it. The drift raised or
    /// cleared by it, if any.
    pub fn on_minute(&mut self, c: Closed, shared: &BaselineConfig) -> Option<Transition> {
        let first = *self.first.get_or_insert(c.time);
        self.established = self.established || self.settled(c.time);
        let established = self.established;
        let usable = established || self.provisional(c.time);
        let Some(base) = self.learned.median().filter(|_| usable) else {
            self.learned.add(c.time, c.median, 1.0);
            return None;
        };
        let deviation = c.level - base;
        let rise = self.config.rise.distance(base);
        let fall = self.config.fall.distance(base);
        let watching = shared.enabled && self.config.enabled;
        let judge = |limit: &DriftLimit, beyond: f64, distance: f64, past: bool| {
            let learned_for = c.time.millis() - first.millis();
            // While warming up only abrupt limits are judged (see
            // `provisional`).
            let on = watching
                && limit.enabled
                && learned_for >= limit.learned_for_ms
                && (established || limit.onset_within_ms.is_some());
            (
                on && past && beyond >= distance,
                beyond <= shared.clear_within * distance,
            )
        };
        let rise_limit = &self.config.rise;
        let fall_limit = &self.config.fall;
        let up_past = rise_limit.and_beyond.is_none_or(|b| c.level >= b);
        let down_past = fall_limit.and_beyond.is_none_or(|b| c.level <= b);
        let (up, up_clear) = judge(rise_limit, deviation, rise, up_past);
        let (down, down_clear) = judge(fall_limit, -deviation, fall, down_past);
        // A run of breaches counts from an abrupt start (when its limit
        // asks for one) to its end.
        let up = up && (self.runs.0 || self.abrupt(rise_limit, c, base, rise, fall, shared));
        let down = down && (self.runs.1 || self.abrupt(fall_limit, c, base, -fall, rise, shared));
        self.runs = (up, down);
        self.remember(c);
        let rise_changed = self.rise.update(c.time, up, up_clear);
        let fall_changed = self.fall.update(c.time, down, down_clear);
        self.last = Some((c.level, base));
        // Near: both the level and this minute's own median (the level
        // lags an onset by half a window) within half a limit.
        let near = |d: f64| d < shared.learn_within * rise && -d < shared.learn_within * fall;
        let weight = if self.is_active() {
            shared.far_weight
        } else if !established || (near(deviation) && near(c.median - base)) {
            // Warming up, everything calm is learned; `settled` judges
            // whether it agrees.
            1.0
        } else {
            shared.far_weight
        };
        self.learned.add(c.time, c.median, weight);
        rise_changed.or(fall_changed)
    }

    /// Whether, still warming up, the level learned so far may stand in
    /// for the baseline of the *abrupt* limits: once as many minutes as
    /// the longest onset window are learned. An abrupt limit compares the
    /// level with the minutes just before it, which were the patient's
    /// usual or lower, so it does not need a day of learning to tell a
    /// sudden bradycardia from sleep — and the first hours after a
    /// discharge home are when one is most likely. Drifts measured against
    /// the baseline alone stay silent until it is established.
    fn provisional(&self, t: Timestamp) -> bool {
        let onset = [self.config.rise, self.config.fall]
            .iter()
            .filter(|l| l.enabled)
            .filter_map(|l| l.onset_within_ms)
            .max();
        onset.is_some_and(|ms| self.learned.mass(t) >= ms as f64 / 60_000.0)
    }

    /// Whether the warm-up may end at `t`: the warm-up's worth of minutes
    /// is learned and they agree — their middle half spans less than the
    /// nearer drift limit, so that not a quarter of them lies a whole
    /// limit from the rest — or a whole day of them is learned, agreeing
    /// or not. A first hour spent a third in a tachycardia is not a
    /// baseline: learning goes on until calm minutes outnumber it.
    /// Ordinary scatter (a COPD patient's exertional desaturation, a
    /// short walk) is well inside a limit and does not delay it.
    fn settled(&self, t: Timestamp) -> bool {
        let warmup = f64::from(self.config.warmup);
        let mass = self.learned.mass(t);
        if mass < warmup {
            return false;
        }
        if mass >= SETTLE_WITHIN_WARMUPS * warmup {
            return true;
        }
        let (Some(base), Some(q1), Some(q3)) = (
            self.learned.median(),
            self.learned.quantile(0.25),
            self.learned.quantile(0.75),
        ) else {
            return false;
        };
        let nearer = self
            .config
            .rise
            .distance(base)
            .min(self.config.fall.distance(base));
        q3 - q1 <= nearer
    }

    /// Whether the level reached `c.level` abruptly enough for `limit`:
    /// it is at least [`ONSET_FRACTION`] of `distance` (negative for a
    /// fall) away from the median level of the limit's onset time before
    /// it, and that earlier level was the patient's usual or beyond it on
    /// the same side — not within the opposite limit's far band (more than
    /// `learn_within` of `opposite` away on the other side), and neither it
    /// nor the baseline is past the limit's `onset_from`. A median, so
    /// one transient (a walk to the bathroom at night before lying down
    /// again) does not make a slow fall look abrupt; "from the usual", so
    /// the end of a tachycardia, a fall back from far above the baseline
    /// to a sleeping rate, is not taken for the start of a bradycardia.
    fn abrupt(
        &self,
        limit: &DriftLimit,
        c: Closed,
        base: f64,
        distance: f64,
        opposite: f64,
        shared: &BaselineConfig,
    ) -> bool {
        let Some(within) = limit.onset_within_ms else {
            return true;
        };
        let before = level::median(
            self.recent
                .iter()
                .filter(|(t, _)| c.time.millis() - t.millis() <= within)
                .map(|&(_, l)| l),
        );
        let Some(before) = before else {
            return false;
        };
        let need = ONSET_FRACTION * distance;
        let moved = c.level - before;
        let usual = shared.learn_within * opposite;
        // Both the level before and the baseline (while warming up, the
        // level learned so far) must be on the near side of `onset_from`:
        // the median of a window straddling a tachycardia's end may already
        // be below it.
        if need >= 0.0 {
            let from = limit.onset_from.is_none_or(|f| before >= f && base >= f);
            moved >= need && before >= base - usual && from
        } else {
            let from = limit.onset_from.is_none_or(|f| before <= f && base <= f);
            moved <= need && before <= base + usual && from
        }
    }

    /// Keep this minute's level as long as an onset test may look back.
    fn remember(&mut self, c: Closed) {
        let keep = [self.config.rise, self.config.fall]
            .iter()
            .filter_map(|l| l.onset_within_ms)
            .max();
        let Some(keep) = keep else {
            return;
        };
        self.recent.push_back((c.time, c.level));
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| c.time.millis() - t.millis() > keep)
            || self.recent.len() > level::WINDOW_EPOCHS
        {
            self.recent.pop_front();
        }
    }

    /// "heart rate 44 /min, 37 % below this patient's usual 70 /min (3-min
    /// median) for 6 min".
    pub fn describe(&self, at: Timestamp) -> Option<String> {
        let (level, base) = self.last?;
        self.direction()?;
        let (name, unit, digits) = describe_vital(self.vital);
        let (diff, how) = if level >= base {
            (level - base, "above")
        } else {
            (base - level, "below")
        };
        let by = match self.vital {
            Vital::Spo2 => format!("{diff:.1} points"),
            Vital::BodyTemperature => format!("{diff:.1} °C"),
            _ => format!("{:.0} %", 100.0 * diff / base.abs().max(f64::EPSILON)),
        };
        let minutes = self
            .since()
            .map_or(0, |s| (at.millis() - s.millis()) / 60_000);
        // Before the warm-up ends the reference is what was learned so far.
        let usual = if self.established {
            "usual"
        } else {
            "level so far"
        };
        Some(format!(
            "{name} {level:.digits$}{unit}, {by} {how} this patient's {usual} {base:.digits$}{unit} ({}-min median) for {minutes} min",
            self.config.window_ms / 60_000
        ))
    }
}

fn describe_vital(vital: Vital) -> (&'static str, &'static str, usize) {
    match vital {
        Vital::HeartRate => ("heart rate", " /min", 0),
        Vital::PulseRate => ("pulse rate", " /min", 0),
        Vital::Spo2 => ("SpO2", " %", 1),
        Vital::BodyTemperature => ("temperature", " °C", 1),
        Vital::RespiratoryRate => ("respiratory rate", " /min", 0),
        Vital::SystolicBp => ("systolic BP", " mm[Hg]", 0),
        _ => ("value", "", 1),
    }
}
