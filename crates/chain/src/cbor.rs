//! The deterministic CBOR (RFC 8949 §4.2.1) the ledger's own structures
//! use: integer-keyed maps built in key order, read back strictly.
//!
//! Strictness is the point: a verifier re-encodes what it decoded and
//! insists on the same bytes, so there is exactly one encoding of each
//! header and no room to smuggle a second meaning past a signature.

use ciborium::Value;

/// A structure that is not what the format says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CborError {
    /// Not well-formed CBOR, or trailing bytes after the item.
    #[error("{what}: malformed CBOR: {detail}")]
    Malformed {
        /// Which structure.
        what: &'static str,
        /// What the parser said.
        detail: String,
    },
    /// Well-formed, but not the one deterministic encoding.
    #[error("{what}: not deterministically encoded (RFC 8949 §4.2.1)")]
    NotDeterministic {
        /// Which structure.
        what: &'static str,
    },
    /// A field is missing, of the wrong type or out of range.
    #[error("{what}: field {key}: {detail}")]
    Field {
        /// Which structure.
        what: &'static str,
        /// The map key.
        key: i64,
        /// What is wrong.
        detail: &'static str,
    },
    /// The structure is of another kind or version.
    #[error("{what}: {detail}")]
    Kind {
        /// Which structure.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// Encode a value. Integer, byte-string, text, array and map encodings
/// are the shortest definite forms; callers put map keys in order.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and the values built here hold no
    // floats or tags ciborium could refuse.
    if ciborium::into_writer(value, &mut out).is_err() {
        out.clear();
    }
    out
}

/// Decode one item that must span `bytes` exactly and be encoded
/// deterministically.
pub fn decode_strict(what: &'static str, bytes: &[u8]) -> Result<Value, CborError> {
    let mut reader = bytes;
    let value: Value = ciborium::from_reader(&mut reader).map_err(|e| CborError::Malformed {
        what,
        detail: e.to_string(),
    })?;
    if !reader.is_empty() {
        return Err(CborError::Malformed {
            what,
            detail: format!("{} trailing bytes", reader.len()),
        });
    }
    if encode(&value) != bytes || !keys_in_order(&value) {
        return Err(CborError::NotDeterministic { what });
    }
    Ok(value)
}

/// Map keys sorted by their encodings, recursively (ciborium keeps the
/// order it read, so re-encoding alone would not notice a shuffled map).
fn keys_in_order(value: &Value) -> bool {
    match value {
        Value::Map(entries) => {
            let keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| encode(k)).collect();
            keys.windows(2).all(|w| w[0] < w[1])
                && entries
                    .iter()
                    .all(|(k, v)| keys_in_order(k) && keys_in_order(v))
        }
        Value::Array(items) => items.iter().all(keys_in_order),
        Value::Tag(_, inner) => keys_in_order(inner),
        _ => true,
    }
}

/// Builds an integer-keyed map; keys must be added in increasing order
/// (0, 1, 2, ...: non-negative keys sort by value).
#[derive(Default)]
pub struct MapBuilder(Vec<(Value, Value)>);

impl MapBuilder {
    /// An empty map.
    pub fn new() -> Self {
        MapBuilder(Vec::new())
    }

    /// Add `key: value`.
    pub fn field(mut self, key: u64, value: impl Into<Value>) -> Self {
        debug_assert!(self.0.last().is_none_or(|(k, _)| {
            k.as_integer()
                .is_some_and(|last| u64::try_from(last).is_ok_and(|last| last < key))
        }));
        self.0.push((Value::from(key), value.into()));
        self
    }

    /// The finished map.
    pub fn build(self) -> Value {
        Value::Map(self.0)
    }
}

/// Reads an integer-keyed map with exactly the expected keys.
pub struct MapReader<'a> {
    what: &'static str,
    entries: &'a [(Value, Value)],
}

impl<'a> MapReader<'a> {
    /// Wrap `value`, which must be a map whose keys are exactly `keys`.
    pub fn new(what: &'static str, value: &'a Value, keys: &[u64]) -> Result<Self, CborError> {
        let Value::Map(entries) = value else {
            return Err(CborError::Kind {
                what,
                detail: "not a map".into(),
            });
        };
        let found: Vec<Option<u64>> = entries
            .iter()
            .map(|(k, _)| k.as_integer().and_then(|i| u64::try_from(i).ok()))
            .collect();
        if found.len() != keys.len() || found.iter().zip(keys).any(|(f, k)| *f != Some(*k)) {
            return Err(CborError::Kind {
                what,
                detail: format!("expected exactly the keys {keys:?}"),
            });
        }
        Ok(MapReader { what, entries })
    }

    fn get(&self, key: u64) -> Result<&'a Value, CborError> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_integer().and_then(|i| u64::try_from(i).ok()) == Some(key))
            .map(|(_, v)| v)
            .ok_or(self.field_error(key, "missing"))
    }

    fn field_error(&self, key: u64, detail: &'static str) -> CborError {
        CborError::Field {
            what: self.what,
            key: i64::try_from(key).unwrap_or(i64::MAX),
            detail,
        }
    }

    /// Key 0 must name this structure and version (`kind`).
    pub fn expect_kind(&self, kind: &str) -> Result<(), CborError> {
        let found = self.text(0)?;
        if found != kind {
            return Err(CborError::Kind {
                what: self.what,
                detail: format!("kind is {found:?}, expected {kind:?}"),
            });
        }
        Ok(())
    }

    /// A text field.
    pub fn text(&self, key: u64) -> Result<&'a str, CborError> {
        self.get(key)?
            .as_text()
            .ok_or(self.field_error(key, "expected a text string"))
    }

    /// An unsigned integer field.
    pub fn uint(&self, key: u64) -> Result<u64, CborError> {
        self.get(key)?
            .as_integer()
            .and_then(|i| u64::try_from(i).ok())
            .ok_or(self.field_error(key, "expected an unsigned integer"))
    }

    /// A signed 64-bit integer field.
    pub fn int(&self, key: u64) -> Result<i64, CborError> {
        self.get(key)?
            .as_integer()
            .and_then(|i| i64::try_from(i).ok())
            .ok_or(self.field_error(key, "expected a 64-bit integer"))
    }

    /// A byte string of exactly `N` bytes.
    pub fn bytes<const N: usize>(&self, key: u64) -> Result<[u8; N], CborError> {
        self.get(key)?
            .as_bytes()
            .and_then(|b| <[u8; N]>::try_from(b.as_slice()).ok())
            .ok_or(self.field_error(key, "expected a byte string of the right length"))
    }

    /// An array field.
    pub fn array(&self, key: u64) -> Result<&'a [Value], CborError> {
        self.get(key)?
            .as_array()
            .map(Vec::as_slice)
            .ok_or(self.field_error(key, "expected an array"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_with_keys_out_of_order_is_not_deterministic() {
        // {2: 0, 1: 0}
        let err = decode_strict("test", &[0xa2, 0x02, 0x00, 0x01, 0x00]).unwrap_err();
        assert_eq!(err, CborError::NotDeterministic { what: "test" });
    }

    #[test]
    fn a_non_shortest_integer_is_not_deterministic() {
        // 1 encoded in two bytes (0x18 0x01).
        let err = decode_strict("test", &[0x18, 0x01]).unwrap_err();
        assert_eq!(err, CborError::NotDeterministic { what: "test" });
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        assert!(matches!(
            decode_strict("test", &[0x01, 0x01]),
            Err(CborError::Malformed { .. })
        ));
    }

    #[test]
    fn built_maps_read_back() {
        let v = MapBuilder::new()
            .field(0, "kind")
            .field(1, 7u64)
            .field(2, Value::Bytes(vec![1, 2]))
            .build();
        let bytes = encode(&v);
        assert_eq!(
            bytes,
            [
                0xa3, 0x00, 0x64, b'k', b'i', b'n', b'd', 0x01, 0x07, 0x02, 0x42, 1, 2
            ]
        );
        let v = decode_strict("test", &bytes).unwrap();
        let m = MapReader::new("test", &v, &[0, 1, 2]).unwrap();
        assert_eq!(m.text(0).unwrap(), "kind");
        assert_eq!(m.uint(1).unwrap(), 7);
        assert_eq!(m.bytes::<2>(2).unwrap(), [1, 2]);
        assert!(MapReader::new("test", &v, &[0, 1]).is_err());
        assert!(m.uint(0).is_err());
    }
}
