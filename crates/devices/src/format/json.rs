//! Pieces shared by the JSON formats (SenML, Open mHealth).

use serde::de::{self, Deserialize, Deserializer, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A JSON string, borrowed from the payload when it has no escapes (no
/// allocation per field on the hot path).
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Borrowed(s))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Cow<'de, str>, E> {
                Ok(Cow::Owned(s.to_owned()))
            }
        }
        Ok(Str(d.deserialize_str(V)?))
    }
}

/// Short form of a user-supplied string for an error detail.
pub(crate) fn clip(s: &str) -> Cow<'_, str> {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return Cow::Borrowed(s);
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}...", s.get(..end).unwrap_or("")))
}

/// Round a converted value to 9 decimals (finer than any vital sensor), so
/// that unit round trips give back the number that was meant.
pub(crate) fn round9(x: f64) -> f64 {
    if x.abs() < 1.0e6 {
        (x * 1.0e9).round() / 1.0e9
    } else {
        x
    }
}

/// Append `value` as JSON.
pub(crate) fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serializing a str or a finite f64 into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}
