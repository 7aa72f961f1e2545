//! Reading the ledger back as a recipient: unwrap each block's content
//! key with a recipient's private key, derive each record's key, decrypt,
//! and read what the record holds (packed readings or an alert message,
//! by its first byte: [`content`](crate::content)).

use crate::block::BlockHeader;
use crate::content::{self, ContentError, RecordContent};
use crate::crypto::cose::{self, CoseError, RecordKey};
use crate::crypto::keys::{KeyId, RecipientKey};
use crate::ledger::{LedgerError, read_open};
use crate::reader::LedgerReader;
use vitalgate_devices::Reading;

/// One record, decrypted.
#[derive(Debug, Clone, PartialEq)]
pub struct DecryptedRecord {
    /// Block height.
    pub height: u64,
    /// Record index within the block.
    pub index: u32,
    /// What it holds.
    pub content: RecordContent,
}

/// The readings of one record of readings.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordReadings {
    /// Block height.
    pub height: u64,
    /// Record index within the block.
    pub index: u32,
    /// The readings, in the order they were stored.
    pub readings: Vec<Reading>,
}

/// A block or record that could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum DecryptError {
    /// The ledger could not be read.
    #[error(transparent)]
    Storage(#[from] LedgerError),
    /// The block was not encrypted for this recipient.
    #[error("block {height}: not encrypted for recipient key {kid}")]
    NotARecipient {
        /// Block height.
        height: u64,
        /// The recipient key's id.
        kid: KeyId,
    },
    /// The header or a record is damaged (run `vitalgate verify`).
    #[error("block {height}{}: {source}", record.map(|i| format!(" record {i}")).unwrap_or_default())]
    Cose {
        /// Block height.
        height: u64,
        /// Record index, when it is a record.
        record: Option<u32>,
        /// What failed.
        source: CoseError,
    },
    /// A record decrypted but its content cannot be read (an unknown
    /// content type, packed readings that do not unpack, an alert message
    /// that is not one).
    #[error("block {height} record {index}: {source}")]
    Content {
        /// Block height.
        height: u64,
        /// Record index.
        index: u32,
        /// What is wrong.
        source: ContentError,
    },
    /// The header does not parse.
    #[error("block {height}: {detail}")]
    Header {
        /// Block height.
        height: u64,
        /// What is wrong.
        detail: String,
    },
}

/// Find this recipient's wrapped key among a block's recipients and unwrap it.
pub fn content_key(
    height: u64,
    recipients: &[Vec<u8>],
    key: &RecipientKey,
) -> Result<cose::ContentKey, DecryptError> {
    let kid = key.kid();
    let mine = recipients
        .iter()
        .find(|r| cose::recipient_kid(r).is_ok_and(|k| k == kid))
        .ok_or(DecryptError::NotARecipient { height, kid })?;
    cose::unwrap(mine, key).map_err(|source| DecryptError::Cose {
        height,
        record: None,
        source,
    })
}

/// The key of one record, derived from the block's content key.
pub fn record_key(
    reader: &LedgerReader,
    height: u64,
    index: u32,
    key: &RecipientKey,
) -> Result<RecordKey, DecryptError> {
    let (recipients, _) = recipients_of(reader, height)?;
    let cek = content_key(height, &recipients, key)?;
    Ok(RecordKey::derive(&cek, height, index))
}

/// The wrapped keys of block `height`, and whether it is sealed: from its
/// signed header, or from the open-block marker while it is not sealed yet.
fn recipients_of(reader: &LedgerReader, height: u64) -> Result<(Vec<Vec<u8>>, bool), DecryptError> {
    if let Some(signed) = reader.header(height)? {
        let (_, header) = BlockHeader::decode(&signed).map_err(|e| DecryptError::Header {
            height,
            detail: e.to_string(),
        })?;
        return Ok((header.recipients, true));
    }
    if let Some(open) = reader.open_block()? {
        let (open_height, recipients) = read_open(&open).map_err(|e| DecryptError::Header {
            height,
            detail: e.to_string(),
        })?;
        if open_height == height {
            return Ok((recipients, false));
        }
    }
    Err(DecryptError::Header {
        height,
        detail: "no such block".into(),
    })
}

/// Decrypt the records of readings of block `height` (sealed or still
/// open), in index order. Alert records are left out (their indexes are
/// skipped); [`decrypt_records`] gives every record.
pub fn decrypt_block(
    reader: &LedgerReader,
    height: u64,
    key: &RecipientKey,
) -> Result<Vec<RecordReadings>, DecryptError> {
    Ok(decrypt_records(reader, height, key)?
        .into_iter()
        .filter_map(|record| match record.content {
            RecordContent::Readings(readings) => Some(RecordReadings {
                height: record.height,
                index: record.index,
                readings,
            }),
            RecordContent::Alert(_) => None,
        })
        .collect())
}

/// Decrypt every record of block `height` (sealed or still open), in index
/// order: readings and alert messages.
pub fn decrypt_records(
    reader: &LedgerReader,
    height: u64,
    key: &RecipientKey,
) -> Result<Vec<DecryptedRecord>, DecryptError> {
    let (recipients, sealed) = recipients_of(reader, height)?;
    let cek = content_key(height, &recipients, key)?;
    let gateway = reader.gateway()?.ok_or_else(|| DecryptError::Header {
        height,
        detail: "the ledger has no metadata".into(),
    })?;
    let records = if sealed {
        reader.records(height)?
    } else {
        reader.pending_records(height)?
    };
    records
        .into_iter()
        .map(|record| {
            let index = record.index;
            let plain = cose::decrypt_record(
                &RecordKey::derive(&cek, height, index),
                &gateway,
                height,
                index,
                &record.bytes,
            )
            .map_err(|source| DecryptError::Cose {
                height,
                record: Some(index),
                source,
            })?;
            let content = content::decode(&plain).map_err(|source| DecryptError::Content {
                height,
                index,
                source,
            })?;
            Ok(DecryptedRecord {
                height,
                index,
                content,
            })
        })
        .collect()
}
