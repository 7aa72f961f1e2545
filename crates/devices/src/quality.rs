//! Quality flags carried by every reading and device status.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A set of quality flags. Serialized as a list of names, so the JSON stays
/// readable and new flags do not break old readers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Quality(u16);

impl Quality {
    /// No flags: a clean value.
    pub const NONE: Quality = Quality(0);
    /// Outside the vital's physiologically possible range: not valid.
    pub const IMPOSSIBLE: Quality = Quality(1 << 0);
    /// The device reports its sensor is off the patient / disconnected.
    pub const SENSOR_OFF: Quality = Quality(1 << 1);
    /// The device is searching for a pulse / has not locked on yet.
    pub const SEARCHING: Quality = Quality(1 << 2);
    /// The device flags low perfusion (weak pulsatile signal).
    pub const LOW_PERFUSION: Quality = Quality(1 << 3);
    /// The device flags motion / artifact, or the value is known unreliable.
    pub const ARTIFACT: Quality = Quality(1 << 4);
    /// The device flags a weak or questionable signal.
    pub const LOW_SIGNAL: Quality = Quality(1 << 5);
    /// The device itself is raising an alarm (its own limits).
    pub const DEVICE_ALARM: Quality = Quality(1 << 6);
    /// The device reports a hardware/sensor fault (defective sensor, etc.).
    pub const DEVICE_FAULT: Quality = Quality(1 << 7);
    /// The value is being held / is not freshly measured (e.g. averaging
    /// window not yet filled, or a "last good value" hold).
    pub const STALE: Quality = Quality(1 << 8);
    /// The gateway's clock was not synchronised when this was stamped.
    pub const CLOCK_UNSYNCED: Quality = Quality(1 << 9);

    const NAMES: [(Quality, &'static str); 10] = [
        (Quality::IMPOSSIBLE, "impossible"),
        (Quality::SENSOR_OFF, "sensor_off"),
        (Quality::SEARCHING, "searching"),
        (Quality::LOW_PERFUSION, "low_perfusion"),
        (Quality::ARTIFACT, "artifact"),
        (Quality::LOW_SIGNAL, "low_signal"),
        (Quality::DEVICE_ALARM, "device_alarm"),
        (Quality::DEVICE_FAULT, "device_fault"),
        (Quality::STALE, "stale"),
        (Quality::CLOCK_UNSYNCED, "clock_unsynced"),
    ];

    /// The raw bits (stable: see `docs/FORMAT.md`).
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// Flags from their raw bits, as stored (bits this version does not
    /// name are kept, so a newer writer's flags survive a round trip).
    pub const fn from_bits(bits: u16) -> Quality {
        Quality(bits)
    }

    /// True when no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// True when every flag of `other` is set in `self`.
    pub const fn contains(self, other: Quality) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when any flag of `other` is set in `self`.
    pub const fn intersects(self, other: Quality) -> bool {
        self.0 & other.0 != 0
    }

    /// Set the flags of `other` when `on`.
    pub fn set(&mut self, other: Quality, on: bool) {
        if on {
            self.0 |= other.0;
        } else {
            self.0 &= !other.0;
        }
    }

    /// The names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(q, _)| self.contains(*q))
            .map(|(_, n)| n)
    }

    /// The flag with this name.
    pub fn from_name(name: &str) -> Option<Quality> {
        Self::NAMES
            .into_iter()
            .find(|(_, n)| *n == name)
            .map(|(q, _)| q)
    }
}

impl std::ops::BitOr for Quality {
    type Output = Quality;
    fn bitor(self, rhs: Quality) -> Quality {
        Quality(self.0 | rhs.0)
    }
}

impl std::ops::BitOrAssign for Quality {
    fn bitor_assign(&mut self, rhs: Quality) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl fmt::Display for Quality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for n in self.names() {
            if !first {
                f.write_str(",")?;
            }
            f.write_str(n)?;
            first = false;
        }
        Ok(())
    }
}

impl Serialize for Quality {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

impl<'de> Deserialize<'de> for Quality {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = Vec::<String>::deserialize(d)?;
        let mut q = Quality::NONE;
        for n in names {
            q |= Quality::from_name(&n)
                .ok_or_else(|| D::Error::custom(format!("unknown quality flag `{n}`")))?;
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_serialize_as_names_and_back() {
        let q = Quality::SENSOR_OFF | Quality::LOW_PERFUSION;
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(json, r#"["sensor_off","low_perfusion"]"#);
        assert_eq!(serde_json::from_str::<Quality>(&json).unwrap(), q);
        assert!(serde_json::from_str::<Quality>(r#"["bogus"]"#).is_err());
    }
}
