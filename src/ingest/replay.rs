//! Recognising replayed or redelivered readings.
//!
//! A reading is a replay when the same device already sent the same vital
//! with the same device timestamp and the same value. Only readings that
//! carry a device timestamp can be recognised: without one, two equal
//! values a second apart are simply a stable patient. MQTT QoS 1 is
//! at-least-once, so a message stored just before a reconnect comes again;
//! this guard is what keeps it from being stored twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use vitalgate_devices::{Reading, Vital};

type Key = (Vital, i64, u64);

/// Per-device memory of recent reading keys, bounded per device.
pub struct ReplayGuard {
    window: usize,
    devices: HashMap<Arc<str>, Recent>,
}

#[derive(Default)]
struct Recent {
    set: HashSet<Key>,
    order: VecDeque<Key>,
}

impl ReplayGuard {
    /// Remember up to `window` readings per device.
    pub fn new(window: usize) -> Self {
        ReplayGuard {
            window: window.max(1),
            devices: HashMap::new(),
        }
    }

    /// True when `reading` was seen before; otherwise remembers it.
    pub fn is_replay(&mut self, reading: &Reading) -> bool {
        let Some(t) = reading.device_time else {
            return false;
        };
        let key = (reading.vital, t.millis(), reading.value.to_bits());
        let recent = self.devices.entry(Arc::clone(&reading.device)).or_default();
        if recent.set.contains(&key) {
            return true;
        }
        if recent.order.len() >= self.window {
            if let Some(old) = recent.order.pop_front() {
                recent.set.remove(&old);
            }
        }
        recent.set.insert(key);
        recent.order.push_back(key);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_devices::{Quality, Timestamp};

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

    #[test]
    fn the_same_timestamped_value_from_the_same_device_is_a_replay() {
        let mut g = ReplayGuard::new(8);
        assert!(!g.is_replay(&reading("a", Some(1000), 97.0)));
        assert!(g.is_replay(&reading("a", Some(1000), 97.0)));
        assert!(!g.is_replay(&reading("b", Some(1000), 97.0)));
        assert!(!g.is_replay(&reading("a", Some(1000), 96.0)));
        assert!(!g.is_replay(&reading("a", Some(2000), 97.0)));
    }

    #[test]
    fn readings_without_device_time_are_never_replays() {
        let mut g = ReplayGuard::new(8);
        assert!(!g.is_replay(&reading("a", None, 97.0)));
        assert!(!g.is_replay(&reading("a", None, 97.0)));
    }

    #[test]
    fn memory_is_bounded_per_device() {
        let mut g = ReplayGuard::new(2);
        for t in 0..3 {
            assert!(!g.is_replay(&reading("a", Some(t), 97.0)));
        }
        // The oldest key was evicted.
        assert!(!g.is_replay(&reading("a", Some(0), 97.0)));
        assert!(g.is_replay(&reading("a", Some(2), 97.0)));
    }
}
