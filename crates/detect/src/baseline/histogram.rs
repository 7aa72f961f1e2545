//! A fading histogram: the long-run distribution of one vital of one
//! patient, from which its baseline (the median) is read.
//!
//! Why a histogram and not a running mean: its median moves only when
//! half of what was learned moves, so artifacts, activity bouts and brief
//! illnesses barely shift it (a mean follows every outlier), and a weight
//! per sample lets the detector learn some minutes slowly
//! ([`super::BaselineConfig::far_weight`]). Why fading: a patient's normal
//! changes over weeks (a new drug, the season), so old minutes count less,
//! halving every `half_life_ms`. Memory is fixed: [`BINS`] weights per
//! vital, whatever the length of the record.

use vitalgate_devices::{Timestamp, Vital};

/// Bins per histogram: the resolution is the vital's range / 200 (1 /min
/// for heart rate, 0.25 points of SpO2, 0.05 °C, 0.3 /min of respiratory
/// rate, 1 mmHg); the median is interpolated within its bin.
pub const BINS: usize = 200;

/// Weights are stored relative to a reference time and rescaled when the
/// newest weight grows past this factor, so nothing overflows however
/// long the patient is monitored.
const RESCALE_ABOVE: f64 = 65_536.0;

/// The range a histogram of `vital` covers; values outside fall into the
/// edge bins (they still count on their side of the median).
pub fn range(vital: Vital) -> (f64, f64) {
    match vital {
        Vital::HeartRate | Vital::PulseRate => (20.0, 220.0),
        Vital::Spo2 => (50.0, 100.0),
        Vital::BodyTemperature => (32.0, 42.0),
        Vital::RespiratoryRate => (0.0, 60.0),
        Vital::SystolicBp => (40.0, 240.0),
        other => other.possible_range(),
    }
}

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    lo: f64,
    hi: f64,
    half_life_ms: i64,
    /// Weights scaled to `origin`: a weight `w` added at `t` is stored as
    /// `w · 2^((t − origin) / half_life)`.
    bins: Vec<f32>,
    origin: Timestamp,
    total: f64,
}

impl Histogram {
    /// An empty histogram over `[lo, hi]` forgetting with `half_life_ms`
    /// (0 or less: never forgets).
    pub fn new(lo: f64, hi: f64, half_life_ms: i64) -> Histogram {
        Histogram {
            lo,
            hi: if hi > lo { hi } else { lo + 1.0 },
            half_life_ms,
            bins: vec![0.0; BINS],
            origin: Timestamp(0),
            total: 0.0,
        }
    }

    fn step(&self) -> f64 {
        (self.hi - self.lo) / BINS as f64
    }

    /// The factor a weight added at `t` is stored with.
    fn scale(&self, t: Timestamp) -> f64 {
        if self.half_life_ms <= 0 || self.total <= 0.0 {
            return 1.0;
        }
        ((t.millis() - self.origin.millis()) as f64 / self.half_life_ms as f64).exp2()
    }

    /// Learn `value` at `t` with `weight` (1: a full minute). Non-finite
    /// values and non-positive weights are ignored.
    pub fn add(&mut self, t: Timestamp, value: f64, weight: f64) {
        if !value.is_finite() || weight.is_nan() || weight <= 0.0 {
            return;
        }
        if self.total <= 0.0 {
            self.origin = t;
        }
        let mut scale = self.scale(t);
        if scale > RESCALE_ABOVE {
            for b in &mut self.bins {
                *b = (f64::from(*b) / scale) as f32;
            }
            self.total /= scale;
            self.origin = t;
            scale = 1.0;
        }
        // Bin i is centred on lo + i · step.
        let i = ((value - self.lo) / self.step() + 0.5).floor();
        let i = if i < 0.0 {
            0
        } else {
            (i as usize).min(BINS - 1)
        };
        let w = weight * scale;
        self.bins[i] += w as f32;
        self.total += w;
    }

    /// How much has been learned, in full-weight minutes as they count at
    /// `t` (faded).
    pub fn mass(&self, t: Timestamp) -> f64 {
        if self.total <= 0.0 {
            return 0.0;
        }
        self.total / self.scale(t)
    }

    /// The `q`-quantile (0.5: the median), interpolated within its bin;
    /// `None` before anything was learned.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let sum: f64 = self.bins.iter().map(|&b| f64::from(b)).sum();
        if sum.is_nan() || sum <= 0.0 {
            return None;
        }
        let target = q.clamp(0.0, 1.0) * sum;
        let mut below = 0.0;
        for (i, &b) in self.bins.iter().enumerate() {
            let b = f64::from(b);
            if b > 0.0 && below + b >= target {
                let within = ((target - below) / b).clamp(0.0, 1.0);
                return Some(self.lo + self.step() * (i as f64 - 0.5 + within));
            }
            below += b;
        }
        Some(self.hi)
    }

    /// The median: the patient's baseline.
    pub fn median(&self) -> Option<f64> {
        self.quantile(0.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 24 * 3_600_000;

    #[test]
    fn the_median_is_where_half_the_weight_lies() {
        let mut h = Histogram::new(20.0, 220.0, 0);
        for (i, v) in [60.0, 61.0, 62.0, 63.0, 200.0].into_iter().enumerate() {
            h.add(Timestamp(i as i64 * 60_000), v, 1.0);
        }
        let m = h.median().unwrap();
        assert!((61.0..63.0).contains(&m), "{m}");
        assert_eq!(h.mass(Timestamp(0)), 5.0);
    }

    #[test]
    fn a_constant_value_is_its_own_median() {
        let mut h = Histogram::new(20.0, 220.0, 0);
        for i in 0..10 {
            h.add(Timestamp(i), 60.0, 1.0);
        }
        assert_eq!(h.median(), Some(60.0));
    }

    #[test]
    fn an_outlier_moves_the_median_by_at_most_a_bin_whatever_its_size() {
        let mut h = Histogram::new(20.0, 220.0, 0);
        for i in 0..101 {
            h.add(Timestamp(i * 60_000), 60.0 + (i % 5) as f64, 1.0);
        }
        let before = h.median().unwrap();
        h.add(Timestamp(101 * 60_000), 1_000.0, 1.0);
        let after = h.median().unwrap();
        assert!((after - before).abs() <= 1.0, "{before} -> {after}");
    }

    #[test]
    fn what_was_learned_fades_by_half_each_half_life() {
        let mut h = Histogram::new(20.0, 220.0, DAY);
        for i in 0..100 {
            h.add(Timestamp(i), 60.0, 1.0);
        }
        let later = Timestamp(99 + DAY);
        assert!((h.mass(later) - 50.0).abs() < 1e-3, "{}", h.mass(later));
        // An hour of 80s learned a day later outweighs the faded 60s.
        for i in 0..60 {
            h.add(Timestamp(DAY + i * 60_000), 80.0, 1.0);
        }
        assert!(h.median().unwrap() > 79.0);
    }

    #[test]
    fn months_of_learning_neither_overflow_nor_forget_the_recent_past() {
        let mut h = Histogram::new(20.0, 220.0, 3 * DAY);
        for minute in 0..(120 * 24 * 60) {
            h.add(Timestamp(minute * 60_000), 70.0, 1.0);
        }
        let end = Timestamp(120 * DAY);
        let mass = h.mass(end);
        // The steady state of one a minute with a 3-day half-life.
        let expected = 1.0 / (1.0 - (-60_000.0 / (3.0 * DAY as f64)).exp2());
        assert!((mass / expected - 1.0).abs() < 0.01, "{mass} vs {expected}");
        let m = h.median().unwrap();
        assert!((70.0..71.0).contains(&m), "{m}");
    }

    #[test]
    fn an_empty_histogram_has_no_median_and_ignores_bad_input() {
        let mut h = Histogram::new(20.0, 220.0, DAY);
        h.add(Timestamp(0), f64::NAN, 1.0);
        h.add(Timestamp(0), 70.0, 0.0);
        h.add(Timestamp(0), 70.0, -1.0);
        assert_eq!(h.median(), None);
        assert_eq!(h.mass(Timestamp(0)), 0.0);
    }
}
