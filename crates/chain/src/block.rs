//! Block headers and signed tree heads: what the gateway signs.
//!
//! A sealed block is its signed header plus its records. The header
//! commits to the records through the root of their own Merkle tree, to
//! the previous block through its hash, and names who can decrypt the
//! records (the wrapped content keys). The block's hash — SHA-256 over
//! the header's COSE_Sign1 bytes — is the entry the block log records.
//!
//! Both payloads are deterministic CBOR maps with small integer keys; key
//! 0 names the structure and its version, so a signature over one kind
//! can never be passed off as the other. The byte layout is specified in
//! `docs/FORMAT.md`.

use crate::cbor::{self, CborError, MapBuilder, MapReader};
use crate::crypto::cose::{self, CoseError, Sign1};
use crate::crypto::keys::{IdentityKey, IdentityPublic, KeyId};
use crate::merkle::Hash;
use ciborium::Value;
use sha2::{Digest, Sha256};
use vitalgate_devices::Timestamp;

/// Key 0 of a block header.
pub const BLOCK_KIND: &str = "vitalgate/block/1";
/// Key 0 of a signed tree head.
pub const TREE_HEAD_KIND: &str = "vitalgate/tree-head/1";

/// Why a block was sealed (recorded in the header, for the auditor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SealReason {
    /// It reached the configured number of readings.
    Size,
    /// It reached the configured age.
    Age,
    /// The gateway was stopped cleanly.
    Shutdown,
    /// The gateway found it open after a crash and sealed it at start.
    Recovery,
}

impl SealReason {
    /// The name written in the header.
    pub fn as_str(self) -> &'static str {
        match self {
            SealReason::Size => "size",
            SealReason::Age => "age",
            SealReason::Shutdown => "shutdown",
            SealReason::Recovery => "recovery",
        }
    }

    fn parse(s: &str) -> Option<SealReason> {
        [
            SealReason::Size,
            SealReason::Age,
            SealReason::Shutdown,
            SealReason::Recovery,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// What a block header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// The signing gateway's key id.
    pub gateway: KeyId,
    /// Position in the chain, from 0.
    pub height: u64,
    /// Hash of the previous block (all zero for height 0).
    pub prev: Hash,
    /// Earliest gateway receive time of the block's readings.
    pub first: Timestamp,
    /// Latest gateway receive time of the block's readings.
    pub last: Timestamp,
    /// Readings in the block.
    pub readings: u64,
    /// Records in the block.
    pub records: u32,
    /// RFC 9162 root over the records' leaf hashes.
    pub records_root: Hash,
    /// One COSE_recipient per recipient, each the CBOR encoding produced
    /// by [`cose::wrap`].
    pub recipients: Vec<Vec<u8>>,
    /// Gateway clock when sealed.
    pub sealed_at: Timestamp,
    /// Why it was sealed.
    pub reason: SealReason,
}

/// A header or tree head that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The COSE layer failed (malformed, wrong key, bad signature).
    #[error(transparent)]
    Cose(#[from] CoseError),
    /// The payload is not the specified CBOR.
    #[error(transparent)]
    Cbor(#[from] CborError),
}

impl BlockHeader {
    /// The payload's CBOR map.
    fn to_value(&self) -> Value {
        MapBuilder::new()
            .field(0, BLOCK_KIND)
            .field(1, Value::Bytes(self.gateway.0.to_vec()))
            .field(2, self.height)
            .field(3, Value::Bytes(self.prev.to_vec()))
            .field(4, self.first.0)
            .field(5, self.last.0)
            .field(6, self.readings)
            .field(7, u64::from(self.records))
            .field(8, Value::Bytes(self.records_root.to_vec()))
            .field(9, recipients_value(&self.recipients))
            .field(10, self.sealed_at.0)
            .field(11, self.reason.as_str())
            .build()
    }

    /// The deterministic CBOR payload that gets signed.
    pub fn payload(&self) -> Vec<u8> {
        cbor::encode(&self.to_value())
    }

    /// Sign: the COSE_Sign1 bytes stored and hashed.
    pub fn sign(&self, key: &IdentityKey) -> Vec<u8> {
        cose::sign1(key, &self.payload())
    }

    /// Parse a payload (strictly: exact keys, deterministic bytes).
    pub fn from_payload(payload: &[u8]) -> Result<BlockHeader, CborError> {
        const WHAT: &str = "block header";
        let value = cbor::decode_strict(WHAT, payload)?;
        let m = MapReader::new(WHAT, &value, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])?;
        m.expect_kind(BLOCK_KIND)?;
        let recipients = m
            .array(9)?
            .iter()
            .map(|r| {
                if r.as_array().is_none() {
                    return Err(CborError::Field {
                        what: WHAT,
                        key: 9,
                        detail: "a recipient is not a COSE_recipient array",
                    });
                }
                Ok(cbor::encode(r))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let records = u32::try_from(m.uint(7)?).map_err(|_| CborError::Field {
            what: WHAT,
            key: 7,
            detail: "more records than a block can hold",
        })?;
        let reason = SealReason::parse(m.text(11)?).ok_or(CborError::Field {
            what: WHAT,
            key: 11,
            detail: "unknown seal reason",
        })?;
        Ok(BlockHeader {
            gateway: KeyId(m.bytes(1)?),
            height: m.uint(2)?,
            prev: m.bytes(3)?,
            first: Timestamp(m.int(4)?),
            last: Timestamp(m.int(5)?),
            readings: m.uint(6)?,
            records,
            records_root: m.bytes(8)?,
            recipients,
            sealed_at: Timestamp(m.int(10)?),
            reason,
        })
    }

    /// Decode signed header bytes without checking the signature (the
    /// verifier checks it separately, to name what is wrong).
    pub fn decode(signed: &[u8]) -> Result<(Sign1, BlockHeader), HeaderError> {
        let sign1 = Sign1::decode(signed)?;
        let header = BlockHeader::from_payload(&sign1.payload)?;
        Ok((sign1, header))
    }

    /// Decode and verify against the gateway's public key.
    pub fn open(signed: &[u8], key: &IdentityPublic) -> Result<BlockHeader, HeaderError> {
        let (sign1, header) = BlockHeader::decode(signed)?;
        sign1.verify(key)?;
        Ok(header)
    }
}

/// Encoded COSE_recipients as one CBOR array of the items themselves (not
/// byte strings), as the header and the open-block marker hold them. An
/// item that does not parse becomes null, which readers refuse.
pub(crate) fn recipients_value(recipients: &[Vec<u8>]) -> Value {
    Value::Array(
        recipients
            .iter()
            .map(|r| ciborium::from_reader::<Value, _>(r.as_slice()).unwrap_or(Value::Null))
            .collect(),
    )
}

/// The hash of a block: SHA-256 over its signed header bytes.
pub fn block_hash(signed_header: &[u8]) -> Hash {
    Sha256::digest(signed_header).into()
}

/// A signed statement of the block log's size and root at a time: what
/// gets anchored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    /// The signing gateway's key id.
    pub gateway: KeyId,
    /// Number of blocks in the log.
    pub size: u64,
    /// RFC 9162 root over the blocks' leaf hashes.
    pub root: Hash,
    /// Gateway clock when signed.
    pub time: Timestamp,
}

impl TreeHead {
    /// The deterministic CBOR payload that gets signed.
    pub fn payload(&self) -> Vec<u8> {
        cbor::encode(
            &MapBuilder::new()
                .field(0, TREE_HEAD_KIND)
                .field(1, Value::Bytes(self.gateway.0.to_vec()))
                .field(2, self.size)
                .field(3, Value::Bytes(self.root.to_vec()))
                .field(4, self.time.0)
                .build(),
        )
    }

    /// Sign: the COSE_Sign1 bytes.
    pub fn sign(&self, key: &IdentityKey) -> Vec<u8> {
        cose::sign1(key, &self.payload())
    }

    /// Parse a payload strictly.
    pub fn from_payload(payload: &[u8]) -> Result<TreeHead, CborError> {
        const WHAT: &str = "tree head";
        let value = cbor::decode_strict(WHAT, payload)?;
        let m = MapReader::new(WHAT, &value, &[0, 1, 2, 3, 4])?;
        m.expect_kind(TREE_HEAD_KIND)?;
        Ok(TreeHead {
            gateway: KeyId(m.bytes(1)?),
            size: m.uint(2)?,
            root: m.bytes(3)?,
            time: Timestamp(m.int(4)?),
        })
    }

    /// Decode and verify against the gateway's public key.
    pub fn open(signed: &[u8], key: &IdentityPublic) -> Result<TreeHead, HeaderError> {
        let sign1 = Sign1::decode(signed)?;
        let head = TreeHead::from_payload(&sign1.payload)?;
        sign1.verify(key)?;
        Ok(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::verify::hex;

    /// The FORMAT.md test vector: identity from the seed 32 × 0x07, no
    /// recipients (theirs are random; see the COSE vectors).
    fn vector_header() -> (IdentityKey, BlockHeader) {
        let key = IdentityKey::from_seed(&[7; 32]);
        let header = BlockHeader {
            gateway: key.kid(),
            height: 1,
            prev: [0xab; 32],
            first: Timestamp(1_700_000_000_000),
            last: Timestamp(1_700_000_059_000),
            readings: 180,
            records: 60,
            records_root: [0xcd; 32],
            recipients: Vec::new(),
            sealed_at: Timestamp(1_700_000_060_000),
            reason: SealReason::Age,
        };
        (key, header)
    }

    #[test]
    fn the_block_header_test_vector_has_exactly_these_bytes() {
        let (key, header) = vector_header();
        let payload = header.payload();
        let signed = header.sign(&key);
        assert_eq!(hex(&payload), EXPECTED_HEADER_PAYLOAD);
        assert_eq!(hex(&block_hash(&signed)), EXPECTED_BLOCK_HASH);
        assert_eq!(BlockHeader::open(&signed, &key.public()).unwrap(), header);
    }

    #[test]
    fn the_tree_head_test_vector_has_exactly_these_bytes() {
        let key = IdentityKey::from_seed(&[7; 32]);
        let head = TreeHead {
            gateway: key.kid(),
            size: 2,
            root: [0xef; 32],
            time: Timestamp(1_700_000_060_000),
        };
        let signed = head.sign(&key);
        assert_eq!(hex(&head.payload()), EXPECTED_TREE_HEAD_PAYLOAD);
        assert_eq!(TreeHead::open(&signed, &key.public()).unwrap(), head);
    }

    #[test]
    fn a_payload_with_an_unknown_key_or_kind_is_refused() {
        let (_, header) = vector_header();
        let mut payload = header.payload();
        // Kind "vitalgate/block/1" → "vitalgate/block/2".
        let at = payload
            .windows(17)
            .position(|w| w == BLOCK_KIND.as_bytes())
            .unwrap()
            + 16;
        payload[at] = b'2';
        assert!(BlockHeader::from_payload(&payload).is_err());
        // A tree head is not a block header, and the other way round.
        let key = IdentityKey::from_seed(&[7; 32]);
        let head = TreeHead {
            gateway: key.kid(),
            size: 1,
            root: [0; 32],
            time: Timestamp(0),
        };
        assert!(BlockHeader::from_payload(&head.payload()).is_err());
        assert!(TreeHead::from_payload(&header.payload()).is_err());
    }

    const EXPECTED_HEADER_PAYLOAD: &str = "ac0071766974616c676174652f626c6f636b2f310150fe812c12f3ab4ce6ac5db69ac352f9060201035820abababababababababababababababababababababababababababababababab041b0000018bcfe56800051b0000018bcfe64e780618b407183c085820cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd09800a1b0000018bcfe652600b63616765";
    const EXPECTED_BLOCK_HASH: &str =
        "15308c458671f8157b6bd28db20137611f0cb2718eb146e68f8ae5a75c1957d8";
    const EXPECTED_TREE_HEAD_PAYLOAD: &str = "a50075766974616c676174652f747265652d686561642f310150fe812c12f3ab4ce6ac5db69ac352f9060202035820efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef041b0000018bcfe65260";
}
