//! A Bluetooth device address (BD_ADDR), the identity a BLE wearable is
//! bound by.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Bluetooth device address, most significant byte first, as it
/// is printed (`C4:7C:8D:6A:01:02`) and as BlueZ and ESP32 proxies report
/// it. Written upper case with colons; read in either case, with or
/// without colons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 6]);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02X}:{:02X}:{:02X}:{:02X}:{:02X}:{:02X}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// Text that is not a Bluetooth address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a Bluetooth address (expected six hex bytes such as C4:7C:8D:6A:01:02, or 12 hex digits)"
)]
pub struct BadAddress(pub String);

impl FromStr for Address {
    type Err = BadAddress;
    fn from_str(s: &str) -> Result<Address, BadAddress> {
        let bad = || BadAddress(s.chars().take(40).collect());
        let digits: Vec<u8> = if s.len() == 17 {
            // Separators at every third position, all the same.
            let sep = s.as_bytes()[2];
            if !matches!(sep, b':' | b'-') {
                return Err(bad());
            }
            let mut d = Vec::with_capacity(12);
            for (i, b) in s.bytes().enumerate() {
                if i % 3 == 2 {
                    if b != sep {
                        return Err(bad());
                    }
                } else {
                    d.push(b);
                }
            }
            d
        } else if s.len() == 12 {
            s.bytes().collect()
        } else {
            return Err(bad());
        };
        let mut out = [0u8; 6];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Address(out))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Address {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_in_every_usual_form_and_print_one_way() {
        let want = Address([0xC4, 0x7C, 0x8D, 0x6A, 0x01, 0x02]);
        for text in [
            "C4:7C:8D:6A:01:02",
            "c4:7c:8d:6a:01:02",
            "C4-7C-8D-6A-01-02",
            "c47c8d6a0102",
        ] {
            assert_eq!(text.parse::<Address>(), Ok(want), "{text}");
        }
        assert_eq!(want.to_string(), "C4:7C:8D:6A:01:02");
        for bad in [
            "",
            "C4:7C:8D:6A:01",
            "C4:7C:8D:6A:01:0G",
            "C4:7C-8D:6A:01:02",
            "C4.7C.8D.6A.01.02",
            "+4:7C:8D:6A:01:02",
            "c47c8d6a010é",
        ] {
            assert!(bad.parse::<Address>().is_err(), "{bad}");
        }
    }
}
