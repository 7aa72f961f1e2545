//! The GATT Date Time characteristic (0x2A08) as it is embedded in health
//! measurements: year (u16, 1582–9999, 0 = not known), month (1–12, 0 =
//! not known), day (1–31, 0 = not known), hours (0–23), minutes (0–59),
//! seconds (0–59); 7 bytes, little-endian.
//!
//! It carries no time zone: it is the device's own clock, which the user
//! or the phone that set it may have put on local time.

use super::{Fields, GattError};
use crate::Timestamp;

/// A Date Time as the device sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    /// 1582–9999, 0: not known.
    pub year: u16,
    /// 1–12, 0: not known.
    pub month: u8,
    /// 1–31, 0: not known.
    pub day: u8,
    /// 0–23.
    pub hours: u8,
    /// 0–59.
    pub minutes: u8,
    /// 0–59.
    pub seconds: u8,
}

/// Its size in bytes.
pub const LEN: usize = 7;

impl DateTime {
    /// Read one from `fields`, checking every field's range.
    pub fn read(fields: &mut Fields<'_>, field: &'static str) -> Result<DateTime, GattError> {
        let bytes = fields.take(field, LEN)?;
        let t = DateTime {
            year: u16::from_le_bytes([bytes[0], bytes[1]]),
            month: bytes[2],
            day: bytes[3],
            hours: bytes[4],
            minutes: bytes[5],
            seconds: bytes[6],
        };
        let bad = |what: &str, value: u8| GattError::OutOfRange {
            field,
            detail: format!("{what} {value}"),
        };
        if t.year != 0 && !(1582..=9999).contains(&t.year) {
            return Err(GattError::OutOfRange {
                field,
                detail: format!("year {}", t.year),
            });
        }
        if t.month > 12 {
            return Err(bad("month", t.month));
        }
        if t.day > 31 {
            return Err(bad("day", t.day));
        }
        if t.hours > 23 {
            return Err(bad("hours", t.hours));
        }
        if t.minutes > 59 {
            return Err(bad("minutes", t.minutes));
        }
        if t.seconds > 59 {
            return Err(bad("seconds", t.seconds));
        }
        Ok(t)
    }

    /// Append its 7 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.year.to_le_bytes());
        out.extend_from_slice(&[self.month, self.day, self.hours, self.minutes, self.seconds]);
    }

    /// The instant, reading the device clock as UTC; `None` when the year,
    /// month or day is "not known" or the date does not exist (30 February).
    pub fn to_timestamp(&self) -> Option<Timestamp> {
        if self.year == 0 || self.month == 0 || self.day == 0 {
            return None;
        }
        let month = time::Month::try_from(self.month).ok()?;
        let date = time::Date::from_calendar_date(i32::from(self.year), month, self.day).ok()?;
        let at = date
            .with_hms(self.hours, self.minutes, self.seconds)
            .ok()?
            .assume_utc();
        let ms = at.unix_timestamp().checked_mul(1000)?;
        Some(Timestamp(ms))
    }

    /// The device clock's reading of `t` (UTC).
    pub fn from_timestamp(t: Timestamp) -> Option<DateTime> {
        let at = time::OffsetDateTime::from_unix_timestamp(t.millis().div_euclid(1000)).ok()?;
        Some(DateTime {
            year: u16::try_from(at.year()).ok()?,
            month: u8::from(at.month()),
            day: at.day(),
            hours: at.hour(),
            minutes: at.minute(),
            seconds: at.second(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_date_time_reads_checks_and_writes_back() {
        // 2025-11-21 07:00:05, the evaluation's morning.
        let bytes = [0xE9, 0x07, 11, 21, 7, 0, 5];
        let t = DateTime::read(&mut Fields::new(&bytes), "time stamp").unwrap();
        assert_eq!(t.to_timestamp(), Some(Timestamp(1_763_708_405_000)));
        let mut out = Vec::new();
        t.write(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(
            DateTime::from_timestamp(Timestamp(1_763_708_405_000)),
            Some(t)
        );
    }

    #[test]
    fn an_unknown_year_is_no_instant_and_impossible_fields_are_refused() {
        let unknown = [0, 0, 11, 21, 7, 0, 5];
        let t = DateTime::read(&mut Fields::new(&unknown), "time stamp").unwrap();
        assert_eq!(t.to_timestamp(), None);
        for (bytes, what) in [
            ([0xE9, 0x07, 13, 1, 0, 0, 0], "month 13"),
            ([0xE9, 0x07, 1, 32, 0, 0, 0], "day 32"),
            ([0xE9, 0x07, 1, 1, 24, 0, 0], "hours 24"),
            ([0xE9, 0x07, 1, 1, 0, 60, 0], "minutes 60"),
            ([0xE9, 0x07, 1, 1, 0, 0, 60], "seconds 60"),
            ([0x01, 0x00, 1, 1, 0, 0, 0], "year 1"),
        ] {
            let e = DateTime::read(&mut Fields::new(&bytes), "time stamp").unwrap_err();
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = DateTime::read(&mut Fields::new(&[0xE9, 0x07, 1]), "time stamp").unwrap_err();
        assert_eq!(
            e,
            GattError::Truncated {
                field: "time stamp",
                need: 7,
                have: 3
            }
        );
        // 30 February exists in no calendar.
        let feb30 = [0xE9, 0x07, 2, 30, 0, 0, 0];
        let t = DateTime::read(&mut Fields::new(&feb30), "time stamp").unwrap();
        assert_eq!(t.to_timestamp(), None);
    }
}
