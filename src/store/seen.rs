//! Recognising readings that were already stored.
//!
//! A reading is a duplicate when the same device already sent the same
//! vital with the same device timestamp and the same value, and that
//! reading was stored. Only readings carrying a device timestamp can be
//! recognised: without one, two equal values a second apart are simply a
//! stable patient.
//!
//! MQTT QoS 1 is at-least-once: a message whose acknowledgement was lost
//! (storage refused it, the connection dropped, the gateway was killed
//! between its fsync and its PUBACK) comes again. Two memories catch it:
//!
//! - the recent keys stored in this run (bounded per device), and
//! - after a restart, each series' *watermark* — the latest device time
//!   the ledger stored for it, persisted atomically with the readings. A
//!   message the broker marks as redelivered whose readings are not newer
//!   than their series' watermark was stored before the restart.
//!
//! Keys are remembered only once their group is committed: a reading
//! storage refused must not be mistaken for a duplicate when it comes back.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use vitalgate_devices::{Reading, Timestamp, Vital};

type Key = (Vital, i64, u64);

/// What the storage stage knows was stored.
pub struct Seen {
    window: usize,
    devices: HashMap<Arc<str>, Recent>,
    watermarks: HashMap<(Arc<str>, Vital), Timestamp>,
    pending: HashSet<(Arc<str>, Key)>,
}

#[derive(Default)]
struct Recent {
    set: HashSet<Key>,
    order: VecDeque<Key>,
}

impl Seen {
    /// Remember up to `window` stored readings per device, plus the
    /// watermarks the backend persisted.
    pub fn new(
        window: usize,
        watermarks: impl IntoIterator<Item = (Arc<str>, Vital, Timestamp)>,
    ) -> Self {
        Seen {
            window: window.max(1),
            devices: HashMap::new(),
            watermarks: watermarks
                .into_iter()
                .map(|(d, v, t)| ((d, v), t))
                .collect(),
            pending: HashSet::new(),
        }
    }

    /// True when `reading` was stored already (or is pending in the
    /// current group); otherwise it joins the current group.
    pub fn is_duplicate(&mut self, reading: &Reading, redelivered: bool) -> bool {
        let Some(t) = reading.device_time else {
            return false;
        };
        if redelivered
            && self
                .watermarks
                .get(&(Arc::clone(&reading.device), reading.vital))
                .is_some_and(|w| t <= *w)
        {
            return true;
        }
        let key = (reading.vital, t.millis(), reading.value.to_bits());
        let stored = self
            .devices
            .get(&reading.device)
            .is_some_and(|r| r.set.contains(&key));
        // insert() is false when the group already holds it.
        stored || !self.pending.insert((Arc::clone(&reading.device), key))
    }

    /// The current group was stored: remember its keys.
    pub fn commit(&mut self) {
        for (device, key) in self.pending.drain() {
            let recent = self.devices.entry(device).or_default();
            if recent.order.len() >= self.window
                && let Some(old) = recent.order.pop_front()
            {
                recent.set.remove(&old);
            }
            if recent.set.insert(key) {
                recent.order.push_back(key);
            }
        }
    }

    /// The current group was refused: forget it, so it is accepted when
    /// it comes again.
    pub fn abandon(&mut self) {
        self.pending.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_devices::Quality;

    fn reading(device: &str, t: Option<i64>, value: f64) -> Reading {
        Reading {
            device: device.into(),
            patient: "p".into(),
            vital: Vital::Spo2,
            value,
            device_time: t.map(Timestamp),
            gateway_time: Timestamp(0),
            quality: Quality::NONE,
        }
    }

    fn seen(window: usize) -> Seen {
        Seen::new(window, [])
    }

    /// Check then commit, as the storage stage does around a good write.
    fn stored(g: &mut Seen, r: &Reading) -> bool {
        let dup = g.is_duplicate(r, false);
        g.commit();
        dup
    }

    #[test]
    fn the_same_timestamped_value_from_the_same_device_is_a_duplicate() {
        let mut g = seen(8);
        assert!(!stored(&mut g, &reading("a", Some(1000), 97.0)));
        assert!(stored(&mut g, &reading("a", Some(1000), 97.0)));
        assert!(!stored(&mut g, &reading("b", Some(1000), 97.0)));
        assert!(!stored(&mut g, &reading("a", Some(1000), 96.0)));
        assert!(!stored(&mut g, &reading("a", Some(2000), 97.0)));
    }

    #[test]
    fn a_duplicate_within_one_group_is_caught_before_commit() {
        let mut g = seen(8);
        assert!(!g.is_duplicate(&reading("a", Some(1000), 97.0), false));
        assert!(g.is_duplicate(&reading("a", Some(1000), 97.0), false));
    }

    #[test]
    fn readings_of_a_refused_group_are_not_duplicates_when_they_come_again() {
        let mut g = seen(8);
        assert!(!g.is_duplicate(&reading("a", Some(1000), 97.0), false));
        g.abandon();
        assert!(!g.is_duplicate(&reading("a", Some(1000), 97.0), true));
    }

    #[test]
    fn readings_without_device_time_are_never_duplicates() {
        let mut g = seen(8);
        assert!(!stored(&mut g, &reading("a", None, 97.0)));
        assert!(!stored(&mut g, &reading("a", None, 97.0)));
    }

    #[test]
    fn memory_is_bounded_per_device() {
        let mut g = seen(2);
        for t in 0..3 {
            assert!(!stored(&mut g, &reading("a", Some(t), 97.0)));
        }
        // The oldest key was evicted.
        assert!(!stored(&mut g, &reading("a", Some(0), 97.0)));
        assert!(stored(&mut g, &reading("a", Some(2), 97.0)));
    }

    #[test]
    fn after_a_restart_redelivered_readings_up_to_the_watermark_are_duplicates() {
        let mut g = Seen::new(8, [(Arc::from("a"), Vital::Spo2, Timestamp(5000))]);
        assert!(g.is_duplicate(&reading("a", Some(4000), 97.0), true));
        assert!(g.is_duplicate(&reading("a", Some(5000), 97.0), true));
        assert!(!g.is_duplicate(&reading("a", Some(6000), 97.0), true));
        // A fresh message with older data (a device catching up) is kept.
        assert!(!g.is_duplicate(&reading("a", Some(3000), 97.0), false));
    }
}
