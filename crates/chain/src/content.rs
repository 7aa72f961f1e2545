//! What a record holds: the first byte of its plaintext names the content
//! type, and readers dispatch on it.
//!
//! - `0x02`: packed readings ([`crate::packing`]; the byte is the packing's
//!   own version byte, so records written before alert records existed
//!   read unchanged);
//! - `0x20`: one alert message — an alert, escalation, acknowledgement or
//!   delivery receipt the daemon raised — with the gateway time it was
//!   recorded at: `0x20 || time (i64 big-endian, ms) || message`.
//!
//! An alert message is the UTF-8 JSON object the daemon delivers to
//! clinicians, stored byte for byte. It holds health data, which is why it
//! is a record (encrypted for the block's recipients like readings) and not
//! a header field. The chain checks the message's *form* — one JSON object
//! on one line, bounded in size and depth — not its meaning, which belongs
//! to the alert format; the limits keep a bad message from bloating the
//! open block held in memory, and the one-line rule lets `vitalgate open
//! --alerts` embed it in a JSON line as stored.
//!
//! The byte layout is a contract, specified in `docs/FORMAT.md` ("Record
//! contents").

use crate::packing::{self, PackError};
use vitalgate_devices::{Reading, Timestamp};

/// First plaintext byte of a record of packed readings.
pub const READINGS: u8 = packing::VERSION;
/// First plaintext byte of an alert record.
pub const ALERT: u8 = 0x20;
/// Largest alert message, in bytes (64 KiB): far above any alert's JSON,
/// small enough that an open block's messages stay cheap to hold.
pub const MAX_ALERT_BYTES: usize = 64 * 1024;
/// Deepest nesting of objects and arrays in an alert message (the message
/// itself is depth 1). Checked before parsing, so the parser's own
/// recursion limit is never what decides.
pub const MAX_ALERT_DEPTH: usize = 32;
/// Bytes in front of the message in an alert record: type and time.
const ALERT_HEADER: usize = 1 + 8;

/// An alert message whose form has been checked: UTF-8, one JSON object
/// (RFC 8259) with nothing around it, no line break, at most
/// [`MAX_ALERT_BYTES`] bytes and [`MAX_ALERT_DEPTH`] levels deep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMessage(Box<str>);

/// Why bytes are not an alert message. Offsets count from the message's
/// first byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// Over [`MAX_ALERT_BYTES`].
    #[error("the alert message is {len} bytes; the ledger takes at most {MAX_ALERT_BYTES}")]
    TooLarge {
        /// Its length.
        len: usize,
    },
    /// Not UTF-8.
    #[error("the alert message is not UTF-8 (byte {offset})")]
    NotUtf8 {
        /// First byte of the invalid sequence.
        offset: usize,
    },
    /// Does not start with `{` and end with `}`: not an object, or
    /// whitespace around it.
    #[error(
        "the alert message must be one JSON object, starting with `{{` and ending with `}}`, with nothing around it"
    )]
    NotAnObject,
    /// Holds a line break (CR or LF), which JSON only allows as whitespace.
    #[error(
        "the alert message holds a line break at byte {offset}; write it as one line (compact JSON)"
    )]
    LineBreak {
        /// The line break's position.
        offset: usize,
    },
    /// Nested deeper than [`MAX_ALERT_DEPTH`].
    #[error("the alert message nests deeper than {MAX_ALERT_DEPTH} levels at byte {offset}")]
    TooDeep {
        /// The `{` or `[` that goes too deep.
        offset: usize,
    },
    /// Not JSON.
    #[error("the alert message is not JSON: {detail}")]
    NotJson {
        /// The parser's message (line and column).
        detail: String,
    },
}

impl AlertMessage {
    /// Check `bytes` and keep them as they are.
    pub fn new(bytes: &[u8]) -> Result<AlertMessage, AlertError> {
        if bytes.len() > MAX_ALERT_BYTES {
            return Err(AlertError::TooLarge { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|e| AlertError::NotUtf8 {
            offset: e.valid_up_to(),
        })?;
        if !(text.starts_with('{') && text.ends_with('}')) {
            return Err(AlertError::NotAnObject);
        }
        if let Some(offset) = bytes.iter().position(|&b| b == b'\n' || b == b'\r') {
            return Err(AlertError::LineBreak { offset });
        }
        check_depth(bytes)?;
        // Ignoring the values checks the grammar without converting numbers
        // or strings: a number out of binary64's range, or an escaped lone
        // surrogate, is valid JSON text (RFC 8259 leaves their meaning to
        // the reader) and is kept as written.
        serde_json::from_str::<serde::de::IgnoredAny>(text).map_err(|e| AlertError::NotJson {
            detail: e.to_string(),
        })?;
        Ok(AlertMessage(text.into()))
    }

    /// The message as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The message's bytes, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Refuse nesting deeper than [`MAX_ALERT_DEPTH`] before parsing: count
/// `{` and `[` outside strings. Only meaningful for JSON text, which the
/// parse after it checks.
fn check_depth(bytes: &[u8]) -> Result<(), AlertError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for (offset, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_ALERT_DEPTH {
                    return Err(AlertError::TooDeep { offset });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// An alert record's content: the message and when the gateway recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// Gateway clock when it was appended to the ledger.
    pub time: Timestamp,
    /// The message, byte for byte.
    pub message: AlertMessage,
}

impl Alert {
    /// The record plaintext: `0x20 || time (i64 BE) || message`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(ALERT_HEADER + self.message.as_bytes().len());
        out.push(ALERT);
        out.extend_from_slice(&self.time.0.to_be_bytes());
        out.extend_from_slice(self.message.as_bytes());
    }
}

/// What a record holds.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordContent {
    /// Packed readings, in the order stored.
    Readings(Vec<Reading>),
    /// One alert message.
    Alert(Alert),
}

/// Why a record's plaintext cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    /// Nothing at all.
    #[error("the record is empty (no content type byte)")]
    Empty,
    /// A first byte no content type has.
    #[error(
        "unknown record content type 0x{byte:02x} (this reader knows 0x02, packed readings, and 0x20, an alert message)"
    )]
    UnknownType {
        /// The first byte.
        byte: u8,
    },
    /// Packed readings that do not unpack.
    #[error("packed readings: {0}")]
    Readings(#[from] PackError),
    /// An alert record too short for its time.
    #[error("alert record: {len} bytes cannot hold the type byte and the 8-byte time")]
    AlertTruncated {
        /// The plaintext's length.
        len: usize,
    },
    /// An alert record whose message is not one.
    #[error("alert record: {0}")]
    Alert(#[from] AlertError),
}

/// Read a record's plaintext, dispatching on its first byte; anything
/// the writer would not have written is an error.
pub fn decode(plain: &[u8]) -> Result<RecordContent, ContentError> {
    match plain.first() {
        None => Err(ContentError::Empty),
        Some(&READINGS) => Ok(RecordContent::Readings(packing::unpack(plain)?)),
        Some(&ALERT) => {
            let time = plain
                .get(1..ALERT_HEADER)
                .and_then(|t| <[u8; 8]>::try_from(t).ok());
            let (Some(time), Some(message)) = (time, plain.get(ALERT_HEADER..)) else {
                return Err(ContentError::AlertTruncated { len: plain.len() });
            };
            Ok(RecordContent::Alert(Alert {
                time: Timestamp(i64::from_be_bytes(time)),
                message: AlertMessage::new(message)?,
            }))
        }
        Some(&byte) => Err(ContentError::UnknownType { byte }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cose::{self, ContentKey, RecordKey};
    use crate::crypto::keys::IdentityKey;
    use crate::verify::hex;

    /// The FORMAT.md vector's message: non-ASCII text (SpO₂) included.
    const VECTOR_MESSAGE: &str = r#"{"event":"raised","patient":"p-7","text":"SpO₂ 84 %"}"#;
    /// T = 1700000000000 (2023-11-14T22:13:20.000Z).
    const VECTOR_TIME: i64 = 1_700_000_000_000;

    fn alert(message: &str) -> Alert {
        Alert {
            time: Timestamp(VECTOR_TIME),
            message: AlertMessage::new(message.as_bytes()).unwrap(),
        }
    }

    #[test]
    fn the_alert_record_test_vector_has_exactly_these_bytes() {
        let mut plain = Vec::new();
        alert(VECTOR_MESSAGE).encode(&mut plain);
        assert_eq!(hex(&plain), EXPECTED_PLAINTEXT);
        // Under the COSE vectors' record key (CEK 00..1f, height 1000,
        // index 7) and gateway kid (RFC 8032 TEST 1).
        let cek = ContentKey::from_bytes(&std::array::from_fn(|i| i as u8));
        let key = RecordKey::derive(&cek, 1000, 7);
        let seed: [u8; 32] = std::array::from_fn(|i| {
            u8::from_str_radix(&RFC8032_TEST1_SEED[2 * i..2 * i + 2], 16).unwrap()
        });
        let gateway = IdentityKey::from_seed(&seed).kid();
        let record = cose::encrypt_record(&key, &gateway, 1000, 7, &plain).unwrap();
        assert_eq!(hex(&record), EXPECTED_RECORD);
        let back = cose::decrypt_record(&key, &gateway, 1000, 7, &record).unwrap();
        assert_eq!(
            decode(&back).unwrap(),
            RecordContent::Alert(alert(VECTOR_MESSAGE))
        );
    }

    #[test]
    fn readers_dispatch_on_the_first_byte_and_name_an_unknown_one() {
        let mut packed = Vec::new();
        packing::pack(&[], &mut packed);
        assert_eq!(
            decode(&packed).unwrap(),
            RecordContent::Readings(Vec::new())
        );
        assert_eq!(decode(&[]).unwrap_err(), ContentError::Empty);
        for byte in [0x00, 0x01, 0x03, 0x1f, 0x21, 0x7b, 0xff] {
            let err = decode(&[byte, 0, 0]).unwrap_err();
            assert_eq!(err, ContentError::UnknownType { byte });
            assert!(err.to_string().contains(&format!("0x{byte:02x}")), "{err}");
        }
        let err = decode(&[ALERT, 0, 0, 0]).unwrap_err();
        assert_eq!(err, ContentError::AlertTruncated { len: 4 });
    }

    #[test]
    fn an_alert_message_must_be_one_line_of_one_json_object() {
        for good in [
            "{}",
            r#"{"a":[1,{"b":null}],"c":"\n is escaped"}"#,
            "{\"tab\":\t1 }",
            // Valid JSON text whose values a parser could not convert.
            r#"{"big":1e400,"lone":"\ud800","long":123456789012345678901234567890}"#,
        ] {
            AlertMessage::new(good.as_bytes()).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        let cases: [(&[u8], AlertError); 10] = [
            (b"", AlertError::NotAnObject),
            (b"[]", AlertError::NotAnObject),
            (b" {}", AlertError::NotAnObject),
            (b"{} ", AlertError::NotAnObject),
            (b"\"{}\"", AlertError::NotAnObject),
            (b"{\n}", AlertError::LineBreak { offset: 1 }),
            (b"{\"a\":1}\r\n{}", AlertError::LineBreak { offset: 7 }),
            (b"{\"a\":\xff}", AlertError::NotUtf8 { offset: 5 }),
            // UTF-8 for a surrogate is not UTF-8.
            (
                b"{\"a\":\"\xed\xa0\x80\"}",
                AlertError::NotUtf8 { offset: 6 },
            ),
            (
                b"{\"a\":1}{\"b\":2}",
                AlertError::NotJson {
                    detail: "trailing characters at line 1 column 8".into(),
                },
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(
                AlertMessage::new(bytes).unwrap_err(),
                want,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        for bad in [
            "{a:1}",
            r#"{"a":01}"#,
            r#"{"a":NaN}"#,
            r#"{"a":"\x"}"#,
            "{\"a\":\"\u{1}\"}",
            r#"{"a":1,}"#,
        ] {
            let err = AlertMessage::new(bad.as_bytes()).unwrap_err();
            assert!(matches!(err, AlertError::NotJson { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn an_alert_message_is_bounded_in_size_and_depth() {
        let filler = |n: usize| format!(r#"{{"x":"{}"}}"#, "a".repeat(n - 8));
        assert_eq!(filler(MAX_ALERT_BYTES).len(), MAX_ALERT_BYTES);
        AlertMessage::new(filler(MAX_ALERT_BYTES).as_bytes()).unwrap();
        assert_eq!(
            AlertMessage::new(filler(MAX_ALERT_BYTES + 1).as_bytes()).unwrap_err(),
            AlertError::TooLarge {
                len: MAX_ALERT_BYTES + 1
            }
        );
        let nested = |depth: usize| {
            format!(
                "{{\"a\":{}1{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            )
        };
        AlertMessage::new(nested(MAX_ALERT_DEPTH).as_bytes()).unwrap();
        assert_eq!(
            AlertMessage::new(nested(MAX_ALERT_DEPTH + 1).as_bytes()).unwrap_err(),
            AlertError::TooDeep {
                offset: 5 + MAX_ALERT_DEPTH - 1
            }
        );
        // Brackets inside strings do not nest.
        let text = format!(r#"{{"a":"{}\"{}"}}"#, "[".repeat(40), "{".repeat(40));
        AlertMessage::new(text.as_bytes()).unwrap();
    }

    #[test]
    fn an_alert_record_reads_back_with_its_time_whatever_the_time() {
        for t in [i64::MIN, -1, 0, VECTOR_TIME, i64::MAX] {
            let a = Alert {
                time: Timestamp(t),
                message: AlertMessage::new(b"{}").unwrap(),
            };
            let mut plain = Vec::new();
            a.encode(&mut plain);
            assert_eq!(plain.len(), 11);
            assert_eq!(decode(&plain).unwrap(), RecordContent::Alert(a));
        }
        // The message is checked on reading too.
        let mut plain = vec![ALERT, 0, 0, 0, 0, 0, 0, 0, 0];
        plain.extend_from_slice(b"[]");
        assert_eq!(
            decode(&plain).unwrap_err(),
            ContentError::Alert(AlertError::NotAnObject)
        );
    }

    const RFC8032_TEST1_SEED: &str =
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    /// 64 bytes: 0x20, T, the 55-byte message.
    const EXPECTED_PLAINTEXT: &str = "200000018bcfe568007b226576656e74223a22726169736564222c2270617469656e74223a22702d37222c2274657874223a2253704fe282822038342025227d";
    /// 104 bytes; computed independently from FORMAT.md with Python's
    /// `cryptography` before this test pinned it.
    const EXPECTED_RECORD: &str = "d08344a1011818a1054cf4178347c0ef10a26291279b5850aad2609ec77dc4f26ea2af31c21ead7ae7b81245ee5354212790dafcee0dc7543427528c7f7f155c5f30a6c13e2eaf561af84aee0c1ab642f103040392ddc592d462e825d9fb272e1b9795297eea72ba";
}
