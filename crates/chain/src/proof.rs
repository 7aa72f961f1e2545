//! Proofs a third party can check offline with only the gateway's public
//! key: a block is in the log, a record (and its readings) is in a block,
//! and a later log extends an earlier one.
//!
//! The chain of evidence for one reading is: the reading decrypts from a
//! record with the record key disclosed in the proof → the record is a
//! leaf of its block's records tree → the block header (signed) holds that
//! root → the block's hash is a leaf of the log → the signed tree head
//! holds the log's root. Sizes and roots always come from signed tree
//! heads, never from the proof alone (RFC 9162 §2.1.3.2).
//!
//! Disclosing a record's key reveals that record's readings and nothing
//! else: every record has its own key, derived from the block's content
//! key, which stays secret. A record can also be an alert message (the
//! audit trail of alerts, escalations and acknowledgements); its proof
//! carries the message instead of readings, and proves it the same way.

use crate::block::{BlockHeader, HeaderError, TreeHead, block_hash};
use crate::content::{self, Alert, ContentError, RecordContent};
use crate::crypto::cose::{self, CoseError, RecordKey};
use crate::crypto::keys::{IdentityPublic, RecipientKey};
use crate::decrypt::{self, DecryptError};
use crate::ledger::LedgerError;
use crate::merkle::{self, Hash, ProofError as MerkleError};
use crate::reader::LedgerReader;
use crate::verify::hex;
use serde::{Deserialize, Serialize};
use vitalgate_devices::{Reading, Timestamp};

/// A proof, as `vitalgate prove` prints it (JSON; byte strings in hex).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum Proof {
    /// A block is in the log of a signed tree head.
    #[serde(rename = "vitalgate/proof/block/1")]
    Block {
        /// Signed tree head (COSE_Sign1).
        tree_head: String,
        /// The block and its inclusion path in the log.
        block: BlockEvidence,
    },
    /// A record, and the readings (or the alert message) it holds, is in a
    /// block in the log.
    #[serde(rename = "vitalgate/proof/record/1")]
    Record {
        /// Signed tree head (COSE_Sign1).
        tree_head: String,
        /// The block and its inclusion path in the log.
        block: BlockEvidence,
        /// The record, its path in the block and its disclosed key.
        record: RecordEvidence,
    },
    /// The log at `new` extends the log at `old` (append-only).
    #[serde(rename = "vitalgate/proof/consistency/1")]
    Consistency {
        /// The older signed tree head.
        old: String,
        /// The newer signed tree head.
        new: String,
        /// RFC 9162 consistency proof.
        proof: Vec<String>,
    },
}

/// A block header and its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockEvidence {
    /// Block height (its leaf index in the log).
    pub height: u64,
    /// The signed header (COSE_Sign1).
    pub header: String,
    /// RFC 9162 inclusion path of the block's hash in the log.
    pub inclusion: Vec<String>,
}

/// A record, its place in its block, its key and what it holds: exactly
/// one of `readings` and `alert`, by the record's content type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordEvidence {
    /// Index in the block's records tree.
    pub index: u32,
    /// The record (COSE_Encrypt0).
    pub bytes: String,
    /// RFC 9162 inclusion path of the record in the block's records tree.
    pub inclusion: Vec<String>,
    /// The record's own key, disclosed (base64url).
    pub key: String,
    /// The readings a record of readings holds (what the proof is about).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub readings: Option<Vec<Reading>>,
    /// The message an alert record holds (what the proof is about).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub alert: Option<AlertEvidence>,
}

/// An optional member that, when present, is a value: `null` is refused
/// like anywhere else in a proof, rather than read as absent.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// An alert record's content as a proof carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertEvidence {
    /// When the gateway recorded it.
    pub time: Timestamp,
    /// The message, as text: a JSON string, not an embedded object, so
    /// that its bytes — which are what the record holds and the proof
    /// proves — come through exactly (key order, spacing, number forms).
    pub message: String,
}

impl From<&Alert> for AlertEvidence {
    fn from(alert: &Alert) -> AlertEvidence {
        AlertEvidence {
            time: alert.time,
            message: alert.message.as_str().to_owned(),
        }
    }
}

/// A proof could not be made or does not hold.
#[derive(Debug, thiserror::Error)]
pub enum ProveError {
    /// The ledger could not be read.
    #[error(transparent)]
    Storage(#[from] LedgerError),
    /// A record could not be decrypted for the proof.
    #[error(transparent)]
    Decrypt(#[from] DecryptError),
    /// What was asked for is not there (yet).
    #[error("{0}")]
    Unavailable(String),
    /// A field is not valid hex or the wrong length.
    #[error("proof field {field}: {detail}")]
    Field {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A signed structure does not verify with the gateway key.
    #[error("{what}: {source}")]
    Signature {
        /// Which structure.
        what: &'static str,
        /// Why.
        source: HeaderError,
    },
    /// A Merkle path does not lead to the signed root.
    #[error("{what}: {source}")]
    Path {
        /// Which path.
        what: &'static str,
        /// Why.
        source: MerkleError,
    },
    /// The record does not decrypt with the disclosed key.
    #[error("record: {0}")]
    Record(#[from] CoseError),
    /// The record's content cannot be read.
    #[error("record: {0}")]
    Content(#[from] ContentError),
    /// The readings listed are not the ones the record holds.
    #[error("the readings listed in the proof are not the ones the record holds")]
    ReadingsDiffer,
    /// The alert message (or its time) given is not the one the record holds.
    #[error("the alert message in the proof is not the one the record holds")]
    AlertDiffers,
    /// The proof lists readings for an alert record, or an alert message
    /// for a record of readings (or both, or neither).
    #[error("the record holds {holds}, but the proof gives {gives}")]
    ContentKind {
        /// What the record holds.
        holds: &'static str,
        /// What the proof gives.
        gives: &'static str,
    },
    /// Heights, sizes or indexes do not fit together.
    #[error("{0}")]
    Mismatch(String),
}

/// What a checked proof established.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    /// What kind of proof.
    pub kind: &'static str,
    /// The tree size (for consistency: the newer one).
    pub tree_size: u64,
    /// The signed root (hex).
    pub root: String,
    /// The older size, for a consistency proof.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    /// The block height, for block and record proofs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// The proven readings, for a record proof of readings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub readings: Vec<Reading>,
    /// The proven alert message, for a record proof of an alert record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertEvidence>,
}

/// The signed tree head for `size`, or the latest one.
fn tree_head(reader: &LedgerReader, size: Option<u64>) -> Result<(u64, Vec<u8>), ProveError> {
    match size {
        Some(size) => reader
            .tree_head(size)?
            .map(|head| (size, head))
            .ok_or_else(|| ProveError::Unavailable(format!("no signed tree head for size {size}"))),
        None => reader
            .tree_heads()
            .last()
            .transpose()?
            .ok_or_else(|| ProveError::Unavailable("no block has been sealed yet".into())),
    }
}

fn block_evidence(
    reader: &LedgerReader,
    height: u64,
    size: u64,
) -> Result<BlockEvidence, ProveError> {
    if height >= size {
        return Err(ProveError::Unavailable(format!(
            "block {height} is not covered by the tree head of size {size} (not sealed yet, or ask for a larger --size)"
        )));
    }
    let leaves = reader.log_leaves()?;
    let leaves = leaves.get(..size as usize).ok_or_else(|| {
        ProveError::Unavailable(format!("the log holds fewer than {size} blocks"))
    })?;
    let header = reader
        .header(height)?
        .ok_or_else(|| ProveError::Unavailable(format!("block {height} is not stored")))?;
    let inclusion = merkle::inclusion_proof(leaves, height).map_err(|source| ProveError::Path {
        what: "log inclusion",
        source,
    })?;
    Ok(BlockEvidence {
        height,
        header: hex(&header),
        inclusion: inclusion.iter().map(|h| hex(h)).collect(),
    })
}

/// Prove block `height` is in the log of the tree head of `size` (the
/// latest when `None`).
pub fn prove_block(
    reader: &LedgerReader,
    height: u64,
    size: Option<u64>,
) -> Result<Proof, ProveError> {
    let (size, head) = tree_head(reader, size)?;
    Ok(Proof::Block {
        tree_head: hex(&head),
        block: block_evidence(reader, height, size)?,
    })
}

/// Prove record `index` of block `height`, disclosing that record's key
/// (derived with the recipient key `key`) and its readings or alert
/// message.
pub fn prove_record(
    reader: &LedgerReader,
    height: u64,
    index: u32,
    key: &RecipientKey,
    size: Option<u64>,
) -> Result<Proof, ProveError> {
    let (size, head) = tree_head(reader, size)?;
    let block = block_evidence(reader, height, size)?;
    let records = reader.records(height)?;
    let leaves: Vec<Hash> = records
        .iter()
        .map(|r| merkle::leaf_hash(&r.bytes))
        .collect();
    let record = records
        .iter()
        .find(|r| r.index == index)
        .ok_or_else(|| ProveError::Unavailable(format!("block {height} has no record {index}")))?;
    let inclusion =
        merkle::inclusion_proof(&leaves, u64::from(index)).map_err(|source| ProveError::Path {
            what: "record inclusion",
            source,
        })?;
    let record_key = decrypt::record_key(reader, height, index, key)?;
    let gateway = reader
        .gateway()?
        .ok_or_else(|| ProveError::Unavailable("the ledger has no metadata".into()))?;
    let plain = cose::decrypt_record(&record_key, &gateway, height, index, &record.bytes)?;
    let (readings, alert) = match content::decode(&plain)? {
        RecordContent::Readings(readings) => (Some(readings), None),
        RecordContent::Alert(alert) => (None, Some(AlertEvidence::from(&alert))),
    };
    Ok(Proof::Record {
        tree_head: hex(&head),
        block,
        record: RecordEvidence {
            index,
            bytes: hex(&record.bytes),
            inclusion: inclusion.iter().map(|h| hex(h)).collect(),
            key: record_key.disclose(),
            readings,
            alert,
        },
    })
}

/// Prove the log at `new` (latest when `None`) extends the log at `old`.
pub fn prove_consistency(
    reader: &LedgerReader,
    old: u64,
    new: Option<u64>,
) -> Result<Proof, ProveError> {
    let (new_size, new_head) = tree_head(reader, new)?;
    let (_, old_head) = tree_head(reader, Some(old))?;
    let leaves = reader.log_leaves()?;
    let leaves = leaves.get(..new_size as usize).ok_or_else(|| {
        ProveError::Unavailable(format!("the log holds fewer than {new_size} blocks"))
    })?;
    let proof = merkle::consistency_proof(leaves, old).map_err(|source| ProveError::Path {
        what: "consistency",
        source,
    })?;
    Ok(Proof::Consistency {
        old: hex(&old_head),
        new: hex(&new_head),
        proof: proof.iter().map(|h| hex(h)).collect(),
    })
}

/// Check a proof with nothing but the gateway's public key.
pub fn check(proof: &Proof, key: &IdentityPublic) -> Result<Checked, ProveError> {
    match proof {
        Proof::Block { tree_head, block } => {
            let head = open_tree_head(tree_head, key)?;
            let header = check_block(block, &head, key)?;
            Ok(Checked {
                kind: "block",
                tree_size: head.size,
                root: hex(&head.root),
                old_size: None,
                height: Some(header.height),
                readings: Vec::new(),
                alert: None,
            })
        }
        Proof::Record {
            tree_head,
            block,
            record,
        } => {
            let head = open_tree_head(tree_head, key)?;
            let header = check_block(block, &head, key)?;
            let bytes = unhex("record.bytes", &record.bytes)?;
            let path = hashes("record.inclusion", &record.inclusion)?;
            merkle::verify_inclusion(
                &merkle::leaf_hash(&bytes),
                u64::from(record.index),
                u64::from(header.records),
                &path,
                &header.records_root,
            )
            .map_err(|source| ProveError::Path {
                what: "record inclusion",
                source,
            })?;
            let record_key = RecordKey::from_disclosed(&record.key)?;
            let plain = cose::decrypt_record(
                &record_key,
                &header.gateway,
                header.height,
                record.index,
                &bytes,
            )?;
            let (readings, alert) = check_content(&plain, record)?;
            Ok(Checked {
                kind: "record",
                tree_size: head.size,
                root: hex(&head.root),
                old_size: None,
                height: Some(header.height),
                readings,
                alert,
            })
        }
        Proof::Consistency { old, new, proof } => {
            let old = open_tree_head(old, key)?;
            let new = open_tree_head(new, key)?;
            let path = hashes("proof", proof)?;
            merkle::verify_consistency(old.size, new.size, &old.root, &new.root, &path).map_err(
                |source| ProveError::Path {
                    what: "consistency",
                    source,
                },
            )?;
            Ok(Checked {
                kind: "consistency",
                tree_size: new.size,
                root: hex(&new.root),
                old_size: Some(old.size),
                height: None,
                readings: Vec::new(),
                alert: None,
            })
        }
    }
}

/// What the decrypted record holds must be what the proof gives: the same
/// readings, or the same alert message (byte for byte) and time.
fn check_content(
    plain: &[u8],
    record: &RecordEvidence,
) -> Result<(Vec<Reading>, Option<AlertEvidence>), ProveError> {
    let gives = match (&record.readings, &record.alert) {
        (Some(_), None) => "readings",
        (None, Some(_)) => "an alert message",
        (Some(_), Some(_)) => "both readings and an alert message",
        (None, None) => "neither readings nor an alert message",
    };
    match (content::decode(plain)?, &record.readings, &record.alert) {
        (RecordContent::Readings(readings), Some(listed), None) => {
            if readings != *listed {
                return Err(ProveError::ReadingsDiffer);
            }
            Ok((readings, None))
        }
        (RecordContent::Alert(alert), None, Some(given)) => {
            let alert = AlertEvidence::from(&alert);
            if alert != *given {
                return Err(ProveError::AlertDiffers);
            }
            Ok((Vec::new(), Some(alert)))
        }
        (RecordContent::Readings(_), ..) => Err(ProveError::ContentKind {
            holds: "readings",
            gives,
        }),
        (RecordContent::Alert(_), ..) => Err(ProveError::ContentKind {
            holds: "an alert message",
            gives,
        }),
    }
}

fn open_tree_head(hexed: &str, key: &IdentityPublic) -> Result<TreeHead, ProveError> {
    TreeHead::open(&unhex("tree_head", hexed)?, key).map_err(|source| ProveError::Signature {
        what: "tree head",
        source,
    })
}

fn check_block(
    block: &BlockEvidence,
    head: &TreeHead,
    key: &IdentityPublic,
) -> Result<BlockHeader, ProveError> {
    let signed = unhex("block.header", &block.header)?;
    let header = BlockHeader::open(&signed, key).map_err(|source| ProveError::Signature {
        what: "block header",
        source,
    })?;
    if header.height != block.height {
        return Err(ProveError::Mismatch(format!(
            "the proof names block {} but the header is block {}",
            block.height, header.height
        )));
    }
    let path = hashes("block.inclusion", &block.inclusion)?;
    merkle::verify_inclusion(
        &merkle::leaf_hash(&block_hash(&signed)),
        header.height,
        head.size,
        &path,
        &head.root,
    )
    .map_err(|source| ProveError::Path {
        what: "log inclusion",
        source,
    })?;
    Ok(header)
}

fn unhex(field: &'static str, s: &str) -> Result<Vec<u8>, ProveError> {
    let bad = |detail: &str| ProveError::Field {
        field,
        detail: detail.into(),
    };
    if s.len() % 2 != 0 {
        return Err(bad("odd number of hex digits"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|d| u8::from_str_radix(d, 16).ok())
                .ok_or_else(|| bad("not hex"))
        })
        .collect()
}

fn hashes(field: &'static str, list: &[String]) -> Result<Vec<Hash>, ProveError> {
    list.iter()
        .map(|s| {
            <Hash>::try_from(unhex(field, s)?.as_slice()).map_err(|_| ProveError::Field {
                field,
                detail: "a hash is not 32 bytes".into(),
            })
        })
        .collect()
}
