//! The short-window level of one vital: what the patient's value is *now*,
//! robustly.
//!
//! Readings are gathered into one-minute epochs (aligned to measurement
//! time); each closed epoch is summarised by its median, and the level is
//! the median of the epoch medians inside the window. A median of
//! medians ignores anything lasting less than half the window — a burst
//! of artifact, a cough, a minute of standing up — and one minute per
//! value is also what the long-run histogram learns, so a 1 Hz oximeter
//! and a thermometer reporting once a minute weigh the same per minute of
//! the patient's life. Memory is bounded: an epoch keeps at most
//! [`EPOCH_VALUES`] values and the window at most [`WINDOW_EPOCHS`]
//! epochs.

use std::collections::VecDeque;
use vitalgate_devices::Timestamp;

/// Length of an epoch, ms.
pub const EPOCH_MS: i64 = 60_000;

/// Most values kept per epoch (4 Hz); later values of a faster device in
/// the same minute are not used.
pub const EPOCH_VALUES: usize = 240;

/// Most epochs kept in the window (2 h of minutes); a longer window is
/// cut to this.
pub const WINDOW_EPOCHS: usize = 120;

/// A closed epoch: its median, and the level of the window it completed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Closed {
    /// Measurement time of the epoch's last reading: the time the level
    /// is about.
    pub time: Timestamp,
    /// Median of the epoch's readings.
    pub median: f64,
    /// Median of the epoch medians in the window ending at `time`.
    pub level: f64,
}

#[derive(Debug, Clone)]
struct Epoch {
    index: i64,
    values: Vec<f32>,
    last: Timestamp,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ShortWindow {
    window_ms: i64,
    current: Option<Epoch>,
    /// Closed epochs in the window: (time, median), oldest first.
    closed: VecDeque<(Timestamp, f64)>,
}

impl ShortWindow {
    /// A window of `window_ms` (at least one epoch).
    pub fn new(window_ms: i64) -> ShortWindow {
        ShortWindow {
            window_ms: window_ms.max(EPOCH_MS),
            current: None,
            closed: VecDeque::new(),
        }
    }

    /// Take a value measured at `t`. Returns the epoch it closed, if `t`
    /// is in a later minute than the open one. A value older than the open
    /// epoch is ignored (its minute was already judged); non-finite values
    /// too.
    pub fn push(&mut self, t: Timestamp, value: f64) -> Option<Closed> {
        if !value.is_finite() {
            return None;
        }
        let index = t.millis().div_euclid(EPOCH_MS);
        let mut closed = None;
        match &mut self.current {
            Some(e) if e.index == index => {
                if e.values.len() < EPOCH_VALUES {
                    e.values.push(value as f32);
                }
                e.last = e.last.max(t);
                return None;
            }
            Some(e) if e.index > index => return None,
            Some(_) => closed = self.close(),
            None => {}
        }
        self.current = Some(Epoch {
            index,
            values: vec![value as f32],
            last: t,
        });
        closed
    }

    /// The caller's clock: close the open epoch once its minute is over.
    pub fn tick(&mut self, now: Timestamp) -> Option<Closed> {
        let due = self
            .current
            .as_ref()
            .is_some_and(|e| (e.index + 1) * EPOCH_MS <= now.millis());
        if due { self.close() } else { None }
    }

    fn close(&mut self) -> Option<Closed> {
        let epoch = self.current.take()?;
        let minute = median(epoch.values.iter().map(|&v| f64::from(v)))?;
        let time = epoch.last;
        self.closed.push_back((time, minute));
        let from = time.millis() - self.window_ms;
        while self.closed.front().is_some_and(|(t, _)| t.millis() <= from)
            || self.closed.len() > WINDOW_EPOCHS
        {
            self.closed.pop_front();
        }
        let level = median(self.closed.iter().map(|&(_, m)| m))?;
        Some(Closed {
            time,
            median: minute,
            level,
        })
    }
}

/// The median (the mean of the middle two for an even count); `None` for
/// no values.
pub fn median(values: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(w: &mut ShortWindow, from_s: i64, values: &[f64]) -> Vec<Closed> {
        values
            .iter()
            .enumerate()
            .filter_map(|(i, &v)| w.push(Timestamp((from_s + i as i64) * 1_000), v))
            .collect()
    }

    #[test]
    fn each_minute_closes_when_the_next_one_begins() {
        let mut w = ShortWindow::new(3 * EPOCH_MS);
        let closed = feed(&mut w, 0, &[70.0; 125]);
        assert_eq!(closed.len(), 2);
        assert_eq!(closed[0].time, Timestamp(59_000));
        assert_eq!(closed[1].level, 70.0);
    }

    #[test]
    fn a_burst_shorter_than_half_the_window_does_not_move_the_level() {
        let mut w = ShortWindow::new(3 * EPOCH_MS);
        let mut values = vec![70.0; 180];
        // Forty seconds of a wildly wrong value in the middle minute.
        values.extend([150.0; 40]);
        values.extend([70.0; 200]);
        let closed = feed(&mut w, 0, &values);
        assert!(closed.iter().all(|c| c.level == 70.0), "{closed:?}");
    }

    #[test]
    fn a_lasting_change_moves_the_level_within_half_the_window_plus_a_minute() {
        let mut w = ShortWindow::new(3 * EPOCH_MS);
        let mut values = vec![70.0; 300];
        values.extend([45.0; 300]);
        let closed = feed(&mut w, 0, &values);
        let first_low = closed.iter().find(|c| c.level < 50.0).map(|c| c.time);
        // The change at 300 s; two of three minutes low by 419 s.
        assert_eq!(first_low, Some(Timestamp(419_000)));
    }

    #[test]
    fn tick_closes_the_minute_of_a_slow_device_without_waiting_for_its_next_reading() {
        let mut w = ShortWindow::new(45 * EPOCH_MS);
        assert_eq!(w.push(Timestamp(0), 120.0), None);
        assert_eq!(w.tick(Timestamp(59_999)), None);
        let c = w.tick(Timestamp(60_000));
        assert_eq!(c.map(|c| (c.median, c.level)), Some((120.0, 120.0)));
        assert_eq!(w.tick(Timestamp(120_000)), None, "closed once");
    }

    #[test]
    fn late_and_non_finite_values_are_ignored() {
        let mut w = ShortWindow::new(3 * EPOCH_MS);
        feed(&mut w, 60, &[70.0; 10]);
        assert_eq!(w.push(Timestamp(5_000), 10.0), None);
        assert_eq!(w.push(Timestamp(75_000), f64::NAN), None);
        let c = w.tick(Timestamp(120_000));
        assert_eq!(c.map(|c| c.median), Some(70.0));
    }

    #[test]
    fn the_median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median([1.0, 4.0, 2.0, 3.0].into_iter()), Some(2.5));
        assert_eq!(median([5.0].into_iter()), Some(5.0));
        assert_eq!(median(std::iter::empty()), None);
    }
}
