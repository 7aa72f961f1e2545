//! Timestamps: milliseconds since the Unix epoch, UTC.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A point in time as milliseconds since 1970-01-01T00:00:00Z.
///
/// Milliseconds are finer than any vital sign device reports and keep the
/// type a plain `i64` that sorts and subtracts cheaply. Serialized as an
/// RFC 3339 string in UTC with millisecond precision.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The system clock now. A clock before 1970 (a Pi without RTC can boot
    /// at any date) gives a negative value rather than a panic.
    pub fn now() -> Timestamp {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(d.as_millis() as i64),
            Err(e) => Timestamp(-(e.duration().as_millis() as i64)),
        }
    }

    /// From fractional seconds since the epoch (SenML's time unit), rounded
    /// to the millisecond. `None` when not finite or out of range.
    pub fn from_secs_f64(secs: f64) -> Option<Timestamp> {
        let ms = (secs * 1000.0).round();
        if ms.is_finite() && ms.abs() < 1.0e17 {
            Some(Timestamp(ms as i64))
        } else {
            None
        }
    }

    /// Milliseconds since the epoch.
    pub const fn millis(self) -> i64 {
        self.0
    }

    /// Fractional seconds since the epoch.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// This time plus `ms` milliseconds.
    pub const fn add_millis(self, ms: i64) -> Timestamp {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Parse RFC 3339 (any offset; converted to UTC).
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(ms).ok().map(Timestamp)
    }

    fn to_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000).ok()
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339, UTC, milliseconds: `2026-11-21T07:01:02.123Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_datetime() {
            Some(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second(),
                t.millisecond()
            ),
            None => write!(f, "@{}ms", self.0),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| D::Error::custom(format!("not an RFC 3339 time: `{s}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339_in_utc() {
        let t = Timestamp(1_763_708_462_123);
        assert_eq!(t.to_string(), "2025-11-21T07:01:02.123Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-21T07:01:02.123Z"),
            Some(t)
        );
        assert_eq!(
            Timestamp::parse_rfc3339("2025-11-21T08:01:02.123+01:00"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn seconds_convert_with_millisecond_rounding() {
        assert_eq!(Timestamp::from_secs_f64(1.2345), Some(Timestamp(1235)));
        assert_eq!(Timestamp::from_secs_f64(f64::NAN), None);
        assert_eq!(Timestamp::from_secs_f64(1e300), None);
    }
}
