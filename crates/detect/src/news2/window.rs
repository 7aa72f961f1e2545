//! The latest valid reading of each NEWS2 parameter, per patient, looked
//! up on measurement time.

use super::{Consciousness, Observations, Observed, Oxygen};
use std::collections::VecDeque;
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// Quality flags that keep a reading out of the score.
///
/// Each says the value does not describe the patient: impossible, sensor
/// off the patient, no lock yet, motion artifact, faulty hardware, or a
/// held ("last good") value that was not freshly measured.
///
/// Flags that do **not** exclude a reading, on purpose:
/// * `LOW_PERFUSION`, `LOW_SIGNAL`: a weak pulsatile signal is itself a
///   sign of shock or hypothermia. Dropping such readings would blind the
///   score exactly when the patient deteriorates; a false alarm costs a
///   check, a missed one may cost the patient. Fault detection reports the
///   flag alongside.
/// * `DEVICE_ALARM`: the device's own alarm limits were crossed, which is a
///   statement about the patient, not about the measurement.
/// * `CLOCK_UNSYNCED`: about the gateway's clock, not the value; time
///   faults are fault detection's business.
pub const UNSCORABLE: Quality = Quality::from_bits(
    Quality::IMPOSSIBLE.bits()
        | Quality::SENSOR_OFF.bits()
        | Quality::SEARCHING.bits()
        | Quality::ARTIFACT.bits()
        | Quality::DEVICE_FAULT.bits()
        | Quality::STALE.bits(),
);

/// What [`ObservationWindow::push`] did with a reading (for counters and
/// logs: nothing is dropped silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Kept: it may now answer for its parameter.
    Kept,
    /// Not a vital NEWS2 scores (diastolic or mean pressure, perfusion
    /// index, R-R interval).
    NotScored,
    /// Carries an [`UNSCORABLE`] flag, or a value that is not possible for
    /// its vital even though unflagged.
    Unscorable,
}

/// The vitals that feed NEWS2, each with its own series. Heart rate and
/// pulse rate are kept apart and merged at query time, so whichever is
/// more recent at the asked time wins.
const SERIES: [Vital; 6] = [
    Vital::RespiratoryRate,
    Vital::Spo2,
    Vital::SystolicBp,
    Vital::HeartRate,
    Vital::PulseRate,
    Vital::BodyTemperature,
];

fn series_index(vital: Vital) -> Option<usize> {
    SERIES.iter().position(|v| *v == vital)
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Sample {
    time: Timestamp,
    value: f64,
}

/// The recent valid readings of one patient, from which the observations
/// at any measurement time are taken.
///
/// * **Time** is each reading's measurement time ([`Reading::time`]: the
///   device's when present, else the gateway's). Detection never looks at
///   the wall clock, so a replayed day scores as it did live.
/// * **Latest wins**: [`ObservationWindow::observations`] answers, for each
///   parameter, the valid reading with the greatest time not after `at`.
///   A reading that arrives late (out of order) is filed under its own
///   time, so it never displaces a newer one. Between readings with the
///   same time, the one pushed last wins.
/// * **Pulse** is heart rate or pulse rate, whichever is more recent; at
///   equal times heart rate (electrical, the direct measurement) wins.
/// * **Consciousness and oxygen** are not measured by any device: they are
///   fields set from configuration (default: alert, air) and stamped with
///   the time asked for.
/// * **Memory** is bounded by `retention_ms`: each push forgets the
///   readings of its vital more than `retention_ms` older than itself.
///   Answers are exact while `at - window_ms` is no earlier than the last
///   pushed reading's time minus the retention, so set the retention to
///   the longest window used plus the longest expected lag of `at` behind
///   the newest reading. At 1 Hz, an hour is 3,600 samples of 16 bytes per
///   vital.
/// * **A wrong clock** cannot blind a vital for long: forgetting is
///   relative to the reading being pushed, not to the newest time ever
///   seen, so one reading stamped years ahead (an unset device clock, a
///   corrupted timestamp) costs the history before it, and the next
///   correctly stamped reading is used again. Had forgetting been relative
///   to the newest time, every correct reading would count as too old
///   until the clock caught up. Spotting such clocks is fault detection's
///   job.
///
/// One window per patient; the caller routes readings by patient.
#[derive(Debug, Clone)]
pub struct ObservationWindow {
    retention_ms: i64,
    series: [VecDeque<Sample>; SERIES.len()],
    /// The patient's configured level of consciousness.
    pub consciousness: Consciousness,
    /// Whether the patient is configured as on supplemental oxygen.
    pub oxygen: Oxygen,
}

impl ObservationWindow {
    /// An empty window keeping `retention_ms` of history per vital (a
    /// negative retention counts as 0: each push forgets everything older
    /// than itself), with the default configuration: alert, on air.
    pub fn new(retention_ms: i64) -> ObservationWindow {
        ObservationWindow {
            retention_ms: retention_ms.max(0),
            series: Default::default(),
            consciousness: Consciousness::default(),
            oxygen: Oxygen::default(),
        }
    }

    /// The same window with this configured consciousness and oxygen.
    pub fn with_config(mut self, consciousness: Consciousness, oxygen: Oxygen) -> Self {
        self.consciousness = consciousness;
        self.oxygen = oxygen;
        self
    }

    /// Take a reading, if NEWS2 scores its vital and it is valid.
    pub fn push(&mut self, reading: &Reading) -> Pushed {
        let Some(i) = series_index(reading.vital) else {
            return Pushed::NotScored;
        };
        if !is_scorable(reading) {
            return Pushed::Unscorable;
        }
        let series = &mut self.series[i];
        let sample = Sample {
            time: reading.time(),
            value: reading.value,
        };
        // After every sample of the same time, so the later push wins ties.
        // In order (the usual case) this is the back: O(1).
        let at = series.partition_point(|s| s.time <= sample.time);
        series.insert(at, sample);
        let horizon = sample.time.millis().saturating_sub(self.retention_ms);
        while series.front().is_some_and(|s| s.time.millis() < horizon) {
            series.pop_front();
        }
        Pushed::Kept
    }

    /// The observations at measurement time `at`: for each parameter, the
    /// latest valid reading with `at - window_ms <= time <= at`.
    ///
    /// Both ends are inclusive: a reading exactly `window_ms` old still
    /// counts, one a millisecond older does not, and a reading stamped
    /// after `at` is not yet known at `at`. A negative `window_ms` matches
    /// nothing. Consciousness and oxygen are always present, from the
    /// configuration.
    pub fn observations(&self, at: Timestamp, window_ms: i64) -> Observations {
        let from = at.millis().saturating_sub(window_ms);
        let latest = |vital: Vital| -> Option<Observed<f64>> {
            let series = &self.series[series_index(vital)?];
            let upto = series.partition_point(|s| s.time <= at);
            let s = series.get(upto.checked_sub(1)?)?;
            (s.time.millis() >= from).then_some(Observed::reading(s.value, s.time, vital))
        };
        let pulse = match (latest(Vital::HeartRate), latest(Vital::PulseRate)) {
            (Some(hr), Some(pr)) if pr.time > hr.time => Some(pr),
            (Some(hr), _) => Some(hr),
            (None, pr) => pr,
        };
        Observations {
            respiration_rate: latest(Vital::RespiratoryRate),
            spo2: latest(Vital::Spo2),
            oxygen: Some(Observed::configured(self.oxygen, at)),
            systolic_bp: latest(Vital::SystolicBp),
            pulse,
            consciousness: Some(Observed::configured(self.consciousness, at)),
            temperature: latest(Vital::BodyTemperature),
        }
    }

    /// Number of readings held, over all vitals (for metrics and tests).
    pub fn len(&self) -> usize {
        self.series.iter().map(VecDeque::len).sum()
    }

    /// Whether no reading is held.
    pub fn is_empty(&self) -> bool {
        self.series.iter().all(VecDeque::is_empty)
    }
}

/// No [`UNSCORABLE`] flag, and a value possible for its vital. The range is
/// checked again here because a reading built or deserialised elsewhere
/// need not have had its IMPOSSIBLE flag set
/// ([`Reading::from_measurement`] sets it); it also rejects NaN.
fn is_scorable(r: &Reading) -> bool {
    !r.quality.intersects(UNSCORABLE) && r.vital.is_possible(r.value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::news2::{RiskBand, Source, Spo2Scale, score};
    use std::sync::Arc;

    const MIN: i64 = 60_000;
    const HOUR: i64 = 60 * MIN;
    const T0: i64 = 1_763_708_400_000;

    fn at(ms: i64) -> Timestamp {
        Timestamp(T0 + ms)
    }

    fn reading(vital: Vital, value: f64, ms: i64) -> Reading {
        Reading {
            device: Arc::from("dev-1"),
            patient: Arc::from("p-1"),
            vital,
            value,
            device_time: Some(at(ms)),
            gateway_time: at(ms + 250),
            quality: Quality::NONE,
        }
    }

    fn flagged(vital: Vital, value: f64, ms: i64, quality: Quality) -> Reading {
        Reading {
            quality,
            ..reading(vital, value, ms)
        }
    }

    fn window() -> ObservationWindow {
        ObservationWindow::new(2 * HOUR)
    }

    fn value(o: Option<Observed<f64>>) -> Option<f64> {
        o.map(|o| o.value)
    }

    #[test]
    fn the_latest_reading_of_each_vital_wins() {
        let mut w = window();
        for (v, ms) in [(18.0, 0), (22.0, MIN), (20.0, 2 * MIN)] {
            assert_eq!(
                w.push(&reading(Vital::RespiratoryRate, v, ms)),
                Pushed::Kept
            );
        }
        let obs = w.observations(at(3 * MIN), HOUR);
        assert_eq!(value(obs.respiration_rate), Some(20.0));
        assert_eq!(obs.respiration_rate.map(|o| o.time), Some(at(2 * MIN)));
        assert_eq!(
            obs.respiration_rate.map(|o| o.source),
            Some(Source::Reading(Vital::RespiratoryRate))
        );
    }

    #[test]
    fn a_late_reading_does_not_replace_a_newer_one() {
        let mut w = window();
        w.push(&reading(Vital::Spo2, 97.0, 10 * MIN));
        assert_eq!(w.push(&reading(Vital::Spo2, 85.0, 5 * MIN)), Pushed::Kept);
        assert_eq!(value(w.observations(at(10 * MIN), HOUR).spo2), Some(97.0));
        // It is still the latest for a time before the newer one.
        assert_eq!(value(w.observations(at(7 * MIN), HOUR).spo2), Some(85.0));
    }

    #[test]
    fn readings_with_the_same_time_are_won_by_the_last_pushed() {
        let mut w = window();
        w.push(&reading(Vital::Spo2, 97.0, MIN));
        w.push(&reading(Vital::Spo2, 96.0, MIN));
        assert_eq!(value(w.observations(at(MIN), HOUR).spo2), Some(96.0));
    }

    #[test]
    fn the_window_includes_a_reading_exactly_window_old_and_excludes_one_a_millisecond_older() {
        let mut w = window();
        w.push(&reading(Vital::BodyTemperature, 37.0, 0));
        assert_eq!(
            value(w.observations(at(HOUR), HOUR).temperature),
            Some(37.0)
        );
        assert_eq!(value(w.observations(at(HOUR + 1), HOUR).temperature), None);
    }

    #[test]
    fn a_reading_at_the_asked_time_counts_and_one_after_it_does_not() {
        let mut w = window();
        w.push(&reading(Vital::SystolicBp, 120.0, 0));
        w.push(&reading(Vital::SystolicBp, 95.0, MIN));
        assert_eq!(value(w.observations(at(MIN), HOUR).systolic_bp), Some(95.0));
        assert_eq!(
            value(w.observations(at(MIN - 1), HOUR).systolic_bp),
            Some(120.0)
        );
        assert_eq!(value(w.observations(at(-1), HOUR).systolic_bp), None);
    }

    #[test]
    fn stale_readings_outside_the_window_are_missing_from_the_score() {
        let mut w = window();
        w.push(&reading(Vital::RespiratoryRate, 30.0, 0));
        w.push(&reading(Vital::Spo2, 97.0, 50 * MIN));
        let s = score(&w.observations(at(70 * MIN), HOUR), Spo2Scale::One);
        assert_eq!(s.respiration_rate, None);
        assert_eq!(s.spo2, Some(0));
        assert!(!s.is_complete());
    }

    #[test]
    fn a_negative_window_matches_nothing() {
        let mut w = window();
        w.push(&reading(Vital::Spo2, 97.0, 0));
        assert_eq!(value(w.observations(at(0), -1).spo2), None);
        assert_eq!(value(w.observations(at(0), 0).spo2), Some(97.0));
    }

    #[test]
    fn readings_with_an_unscorable_flag_are_excluded_and_do_not_hide_older_valid_ones() {
        for flag in [
            Quality::IMPOSSIBLE,
            Quality::SENSOR_OFF,
            Quality::SEARCHING,
            Quality::ARTIFACT,
            Quality::DEVICE_FAULT,
            Quality::STALE,
        ] {
            let mut w = window();
            w.push(&reading(Vital::PulseRate, 72.0, 0));
            assert_eq!(
                w.push(&flagged(Vital::PulseRate, 140.0, MIN, flag)),
                Pushed::Unscorable,
                "flag {flag}"
            );
            assert_eq!(
                value(w.observations(at(MIN), HOUR).pulse),
                Some(72.0),
                "flag {flag}"
            );
        }
    }

    #[test]
    fn low_perfusion_low_signal_device_alarm_and_unsynced_clock_still_count() {
        for flag in [
            Quality::LOW_PERFUSION,
            Quality::LOW_SIGNAL,
            Quality::DEVICE_ALARM,
            Quality::CLOCK_UNSYNCED,
            Quality::LOW_PERFUSION | Quality::LOW_SIGNAL,
        ] {
            let mut w = window();
            assert_eq!(
                w.push(&flagged(Vital::Spo2, 89.0, 0, flag)),
                Pushed::Kept,
                "flag {flag}"
            );
            assert_eq!(
                value(w.observations(at(0), HOUR).spo2),
                Some(89.0),
                "flag {flag}"
            );
        }
    }

    #[test]
    fn an_impossible_value_without_its_flag_is_still_excluded() {
        let mut w = window();
        assert_eq!(
            w.push(&reading(Vital::HeartRate, 500.0, 0)),
            Pushed::Unscorable
        );
        assert_eq!(
            w.push(&reading(Vital::HeartRate, f64::NAN, 0)),
            Pushed::Unscorable
        );
        assert!(w.is_empty());
    }

    #[test]
    fn vitals_news2_does_not_score_are_not_kept() {
        let mut w = window();
        for (vital, v) in [
            (Vital::DiastolicBp, 80.0),
            (Vital::MeanArterialPressure, 93.0),
            (Vital::PerfusionIndex, 2.0),
            (Vital::RrInterval, 800.0),
        ] {
            assert_eq!(w.push(&reading(vital, v, 0)), Pushed::NotScored, "{vital}");
        }
        assert!(w.is_empty());
    }

    #[test]
    fn the_pulse_is_heart_rate_or_pulse_rate_whichever_is_latest() {
        let mut w = window();
        w.push(&reading(Vital::HeartRate, 80.0, 0));
        w.push(&reading(Vital::PulseRate, 82.0, MIN));
        let pulse = w.observations(at(MIN), HOUR).pulse;
        assert_eq!(value(pulse), Some(82.0));
        assert_eq!(
            pulse.map(|p| p.source),
            Some(Source::Reading(Vital::PulseRate))
        );

        w.push(&reading(Vital::HeartRate, 84.0, 2 * MIN));
        let pulse = w.observations(at(2 * MIN), HOUR).pulse;
        assert_eq!(value(pulse), Some(84.0));
        assert_eq!(
            pulse.map(|p| p.source),
            Some(Source::Reading(Vital::HeartRate))
        );
    }

    #[test]
    fn heart_rate_wins_a_tie_with_pulse_rate() {
        let mut w = window();
        w.push(&reading(Vital::PulseRate, 82.0, MIN));
        w.push(&reading(Vital::HeartRate, 80.0, MIN));
        assert_eq!(value(w.observations(at(MIN), HOUR).pulse), Some(80.0));
    }

    #[test]
    fn a_heart_rate_after_the_asked_time_does_not_hide_an_earlier_pulse_rate() {
        let mut w = window();
        w.push(&reading(Vital::PulseRate, 82.0, MIN));
        w.push(&reading(Vital::HeartRate, 80.0, 2 * MIN));
        assert_eq!(value(w.observations(at(MIN + 1), HOUR).pulse), Some(82.0));
        assert_eq!(value(w.observations(at(MIN + 1), 0).pulse), None);
    }

    #[test]
    fn time_is_the_device_time_when_present_else_the_gateway_time() {
        let mut w = window();
        let mut r = reading(Vital::RespiratoryRate, 16.0, 0);
        r.gateway_time = at(10 * MIN);
        w.push(&r);
        assert_eq!(
            w.observations(at(10 * MIN), HOUR)
                .respiration_rate
                .map(|o| o.time),
            Some(at(0))
        );

        let mut w = window();
        r.device_time = None;
        w.push(&r);
        assert_eq!(
            w.observations(at(10 * MIN), HOUR)
                .respiration_rate
                .map(|o| o.time),
            Some(at(10 * MIN))
        );
        assert_eq!(
            value(w.observations(at(10 * MIN - 1), HOUR).respiration_rate),
            None
        );
    }

    #[test]
    fn consciousness_and_oxygen_come_from_configuration_defaulting_to_alert_on_air() {
        let w = window();
        let obs = w.observations(at(0), HOUR);
        assert_eq!(
            obs.consciousness,
            Some(Observed::configured(Consciousness::Alert, at(0)))
        );
        assert_eq!(obs.oxygen, Some(Observed::configured(Oxygen::Air, at(0))));

        let w = window().with_config(Consciousness::NewConfusion, Oxygen::Supplemental);
        let s = score(&w.observations(at(0), HOUR), Spo2Scale::One);
        assert_eq!(s.consciousness, Some(3));
        assert_eq!(s.air_or_oxygen, Some(2));
        assert_eq!(s.total, 5);
        assert_eq!(s.band, RiskBand::Medium);
    }

    #[test]
    fn readings_older_than_the_retention_are_forgotten_and_memory_stays_bounded() {
        let mut w = ObservationWindow::new(MIN);
        for s in 0..10_000 {
            w.push(&reading(Vital::Spo2, 97.0, s * 1000));
        }
        assert_eq!(w.len(), 61, "one minute of 1 Hz readings, both ends kept");
        let last = 9_999_000;
        assert_eq!(
            value(w.observations(at(last - MIN), 0).spo2),
            Some(97.0),
            "exactly the retention old"
        );
        assert_eq!(value(w.observations(at(last - MIN - 1), MIN).spo2), None);

        // A very late reading is filed under its time and forgotten by the
        // next push in order.
        w.push(&reading(Vital::Spo2, 90.0, last - 10 * MIN));
        assert_eq!(
            value(w.observations(at(last - 10 * MIN), 0).spo2),
            Some(90.0)
        );
        w.push(&reading(Vital::Spo2, 97.0, last + 1000));
        assert_eq!(w.len(), 61);
    }

    #[test]
    fn a_reading_stamped_far_in_the_future_does_not_blind_its_vital() {
        let mut w = ObservationWindow::new(HOUR);
        w.push(&reading(Vital::RespiratoryRate, 16.0, 0));
        w.push(&reading(Vital::RespiratoryRate, 30.0, 365 * 24 * HOUR));
        // Not yet known at the present time, and it cost the history.
        assert_eq!(value(w.observations(at(MIN), HOUR).respiration_rate), None);
        // The next correctly stamped reading counts again.
        assert_eq!(
            w.push(&reading(Vital::RespiratoryRate, 18.0, 2 * MIN)),
            Pushed::Kept
        );
        assert_eq!(
            value(w.observations(at(2 * MIN), HOUR).respiration_rate),
            Some(18.0)
        );
    }

    #[test]
    fn a_full_set_of_readings_scores_like_the_chart() {
        let mut w = window();
        for (vital, v, ms) in [
            (Vital::RespiratoryRate, 23.0, 0),
            (Vital::Spo2, 93.0, MIN),
            (Vital::SystolicBp, 105.0, 2 * MIN),
            (Vital::HeartRate, 115.0, 3 * MIN),
            (Vital::BodyTemperature, 38.4, 4 * MIN),
            (Vital::DiastolicBp, 70.0, 2 * MIN),
        ] {
            w.push(&reading(vital, v, ms));
        }
        let s = score(&w.observations(at(5 * MIN), HOUR), Spo2Scale::One);
        // 2 (RR 23) + 2 (SpO2 93) + 0 (air) + 1 (SBP 105) + 2 (pulse 115)
        // + 0 (alert) + 1 (38.4 °C)
        assert_eq!(s.total, 8);
        assert_eq!(s.band, RiskBand::High);
        assert!(s.is_complete());
    }
}
