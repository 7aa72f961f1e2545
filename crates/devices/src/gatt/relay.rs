//! A characteristic value relayed by a BLE proxy over MQTT.
//!
//! Many homes already run ESP32 Bluetooth proxies: small boards that hold
//! the Bluetooth connection to a wearable and forward what it notifies
//! over Wi-Fi. Such a proxy publishes one MQTT message per characteristic
//! value, carrying the peripheral's address, the characteristic's UUID and
//! the raw value, untouched, so that the gateway decodes it with exactly
//! the decoders it uses for a direct connection. Two encodings of the same
//! three facts are accepted (docs/FORMAT.md, "BLE proxy messages"):
//!
//! * JSON, for proxies scripted in ESPHome or Tasmota:
//!   `{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"064B"}`,
//!   optionally with `"time"` (Unix seconds) when the proxy's clock is
//!   synchronised; other members (`rssi`, the proxy's name) are ignored.
//! * Binary, for proxies that would rather not format text: byte 0 is the
//!   layout version `0x01`, bytes 1–6 the address (most significant byte
//!   first, as printed), bytes 7–8 the 16-bit characteristic UUID
//!   little-endian (as on the air), and the rest the value.
//!
//! The first byte tells them apart: `{` (after optional whitespace) is
//! JSON, `0x01` is binary.

use super::address::Address;
use super::characteristic::{UuidError, parse_uuid16};
use crate::Timestamp;
use crate::format::json::Str;
use serde::Deserialize;

/// The binary layout's version byte.
pub const BINARY_VERSION: u8 = 0x01;

/// Bytes before the value in the binary layout.
pub const BINARY_HEADER_LEN: usize = 9;

/// Longest value accepted: the largest ATT value (512 bytes, Core
/// Specification Vol 3 Part F 3.2.9). Nothing longer is a characteristic.
pub const MAX_VALUE_LEN: usize = 512;

/// One relayed characteristic value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayedValue {
    /// The peripheral that sent it.
    pub address: Address,
    /// The characteristic's 16-bit SIG UUID (not necessarily one the
    /// gateway decodes; the caller decides).
    pub uuid: u16,
    /// The raw characteristic value.
    pub value: Vec<u8>,
    /// When the proxy received it, if the proxy has a synchronised clock.
    pub time: Option<Timestamp>,
}

/// Why a relayed message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// Neither JSON nor the binary layout, or a JSON/binary message whose
    /// structure is wrong.
    #[error("BLE proxy message: {0}")]
    Malformed(String),
    /// A characteristic UUID that is not a SIG one.
    #[error("BLE proxy message: {0}")]
    Uuid(#[from] UuidError),
    /// A time that cannot be right.
    #[error("BLE proxy message: time {0} is not a Unix time in seconds after 1970")]
    BadTime(String),
}

#[derive(Deserialize)]
struct Json<'a> {
    #[serde(borrow)]
    address: Str<'a>,
    #[serde(borrow)]
    characteristic: Str<'a>,
    #[serde(borrow)]
    value: Str<'a>,
    #[serde(default)]
    time: Option<f64>,
}

impl RelayedValue {
    /// Read a relayed message in either encoding.
    pub fn parse(payload: &[u8]) -> Result<RelayedValue, RelayError> {
        match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => RelayedValue::parse_json(payload),
            Some(&BINARY_VERSION) if payload[0] == BINARY_VERSION => {
                RelayedValue::parse_binary(payload)
            }
            Some(b) => Err(RelayError::Malformed(format!(
                "starts with byte {b:#04x}: neither a JSON object nor binary layout {BINARY_VERSION:#04x}"
            ))),
            None => Err(RelayError::Malformed("empty message".into())),
        }
    }

    fn parse_json(payload: &[u8]) -> Result<RelayedValue, RelayError> {
        let json: Json<'_> = serde_json::from_slice(payload)
            .map_err(|e| RelayError::Malformed(format!("JSON: {e}")))?;
        let address = json
            .address
            .0
            .parse()
            .map_err(|e| RelayError::Malformed(format!("`address`: {e}")))?;
        let uuid = parse_uuid16(&json.characteristic.0)?;
        let text = json.value.0.as_ref();
        if text.len() > 2 * MAX_VALUE_LEN {
            return Err(RelayError::Malformed(format!(
                "`value` is {} hex digits; a characteristic value is at most {MAX_VALUE_LEN} bytes",
                text.len()
            )));
        }
        let value = hex::decode(text).map_err(|e| {
            RelayError::Malformed(format!("`value` must be the value's bytes in hex: {e}"))
        })?;
        let time = match json.time {
            None => None,
            Some(t) => Some(
                Timestamp::from_secs_f64(t)
                    .filter(|t| t.millis() > 0)
                    .ok_or_else(|| RelayError::BadTime(t.to_string()))?,
            ),
        };
        Ok(RelayedValue {
            address,
            uuid,
            value,
            time,
        })
    }

    fn parse_binary(payload: &[u8]) -> Result<RelayedValue, RelayError> {
        if payload.len() < BINARY_HEADER_LEN {
            return Err(RelayError::Malformed(format!(
                "binary layout needs at least {BINARY_HEADER_LEN} bytes (version, address, UUID), got {}",
                payload.len()
            )));
        }
        let value = &payload[BINARY_HEADER_LEN..];
        if value.len() > MAX_VALUE_LEN {
            return Err(RelayError::Malformed(format!(
                "value is {} bytes; a characteristic value is at most {MAX_VALUE_LEN}",
                value.len()
            )));
        }
        let mut address = [0u8; 6];
        address.copy_from_slice(&payload[1..7]);
        Ok(RelayedValue {
            address: Address(address),
            uuid: u16::from_le_bytes([payload[7], payload[8]]),
            value: value.to_vec(),
            time: None,
        })
    }

    /// The JSON encoding (what the simulator's proxy publishes).
    pub fn to_json(&self) -> Vec<u8> {
        let mut obj = serde_json::json!({
            "address": self.address.to_string(),
            "characteristic": format!("{:04X}", self.uuid),
            "value": hex::encode_upper(&self.value),
        });
        if let Some(t) = self.time {
            obj["time"] = serde_json::json!(t.as_secs_f64());
        }
        obj.to_string().into_bytes()
    }

    /// The binary encoding. The time is not carried.
    pub fn to_binary(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(BINARY_HEADER_LEN + self.value.len());
        out.push(BINARY_VERSION);
        out.extend_from_slice(&self.address.0);
        out.extend_from_slice(&self.uuid.to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hr() -> RelayedValue {
        RelayedValue {
            address: "C4:7C:8D:6A:01:02".parse().unwrap(),
            uuid: 0x2A37,
            value: vec![0x06, 0x4B],
            time: None,
        }
    }

    #[test]
    fn the_documented_vectors_read_and_write_back() {
        let json = br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"064B"}"#;
        assert_eq!(RelayedValue::parse(json), Ok(hr()));
        assert_eq!(hr().to_json(), json.to_vec());
        let binary = [
            0x01, 0xC4, 0x7C, 0x8D, 0x6A, 0x01, 0x02, 0x37, 0x2A, 0x06, 0x4B,
        ];
        assert_eq!(RelayedValue::parse(&binary), Ok(hr()));
        assert_eq!(hr().to_binary(), binary.to_vec());
    }

    #[test]
    fn json_takes_any_uuid_form_a_time_and_ignores_extra_members() {
        let json = br#" {"rssi":-61,"address":"c4:7c:8d:6a:01:02","characteristic":"00002a37-0000-1000-8000-00805f9b34fb","value":"064b","time":1763708462.5,"proxy":"esp32-bedroom"}"#;
        let got = RelayedValue::parse(json).unwrap();
        assert_eq!(got.time, Some(Timestamp(1_763_708_462_500)));
        assert_eq!(
            RelayedValue {
                time: None,
                ..got.clone()
            },
            hr()
        );
        let with_time = RelayedValue::parse(&got.to_json()).unwrap();
        assert_eq!(with_time, got);
    }

    #[test]
    fn bad_messages_say_what_is_wrong() {
        let cases: [(&[u8], &str); 9] = [
            (b"", "empty"),
            (b"\x02abcdefghij", "neither a JSON object"),
            (b"\x01\xC4\x7C", "at least 9 bytes"),
            (b"{", "JSON"),
            (br#"{"address":"C4:7C","characteristic":"2A37","value":"06"}"#, "`address`"),
            (br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"heart","value":"06"}"#, "not a UUID"),
            (br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"0"}"#, "hex"),
            (br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37"}"#, "missing field `value`"),
            (br#"{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"06","time":-5}"#, "Unix time"),
        ];
        for (payload, needle) in cases {
            let e = RelayedValue::parse(payload).unwrap_err().to_string();
            assert!(e.contains(needle), "{e} (wanted {needle})");
        }
        let long = format!(
            r#"{{"address":"C4:7C:8D:6A:01:02","characteristic":"2A37","value":"{}"}}"#,
            "00".repeat(MAX_VALUE_LEN + 1)
        );
        assert!(RelayedValue::parse(long.as_bytes()).is_err());
    }

    #[test]
    fn a_non_ascii_uuid_is_an_error_not_a_panic() {
        let json = r#"{"address":"C4:7C:8D:6A:01:02","characteristic":"0000000é-0000-1000-8000-00805f9b34f","value":"06"}"#;
        assert!(RelayedValue::parse(json.as_bytes()).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = crate::format::testing::Rng::new(0xB1E);
        for _ in 0..20_000 {
            let mut bytes = rng.bytes(40);
            if let Some(b) = bytes.first_mut() {
                // Half the cases take each branch.
                *b = if rng.below(2) == 0 {
                    b'{'
                } else {
                    BINARY_VERSION
                };
            }
            let _ = RelayedValue::parse(&bytes);
        }
    }
}
