//! The anchor outbox: what the anchor stage must not forget across a
//! restart, in its own sled database.
//!
//! * `pending` — the newest signed tree head not yet anchored. Heads
//!   coalesce: a newer head commits to everything an older one did
//!   (RFC 9162 consistency), so only the newest waits, and a backlog of
//!   days goes out as one transaction.
//! * `flight` — the transaction in flight (the head it carries and every
//!   hash sent for its nonce), so a restart neither sends a second
//!   transaction beside it nor forgets to replace it.
//! * `a` ‖ size (u64, big-endian) — each anchored head with its receipt,
//!   kept as the gateway's own record of where its history is anchored.
//!
//! Values are JSON (docs/FORMAT.md, "Anchor outbox"); nothing in them is
//! secret — tree heads and receipts are public on the consultation chain.
//! Every change is flushed to disk before the stage acts on it.

use super::backend::{Head, Receipt};
use super::evm::EvmSubmission;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

const PENDING: &[u8] = b"pending";
const FLIGHT: &[u8] = b"flight";
const ANCHORED: u8 = b'a';
/// sled page cache: the outbox holds a few hundred bytes per anchor.
const CACHE_BYTES: u64 = 1 << 20;

/// The outbox could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum AnchorOutboxError {
    /// sled failed (disk full, I/O error, locked by another process).
    #[error("anchor outbox {}: {detail}", .path.display())]
    Storage {
        /// The outbox directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A value is not what this version writes.
    #[error("anchor outbox {}: entry {key} is corrupt: {detail}", .path.display())]
    Corrupt {
        /// The outbox directory.
        path: PathBuf,
        /// Which entry.
        key: String,
        /// Why it does not parse.
        detail: String,
    },
}

/// A transaction in flight, with the head it anchors.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flight {
    /// The head the newest send carries.
    pub head: Head,
    /// The heads earlier sends carried, when a replacement carried a newer
    /// one (any send of the nonce may be the one mined).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub earlier: Vec<Head>,
    /// The EVM transaction(s) for one nonce.
    pub evm: EvmSubmission,
}

/// A head anchored, with its receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchored {
    /// The head.
    pub head: Head,
    /// Where and when it was anchored.
    pub receipt: Receipt,
}

/// What the outbox held when opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxState {
    /// The newest head waiting.
    pub pending: Option<Head>,
    /// The transaction in flight.
    pub flight: Option<Flight>,
    /// The newest anchored head.
    pub latest: Option<Anchored>,
}

/// The outbox (see the module documentation).
pub struct AnchorOutbox {
    db: Option<sled::Db>,
    path: PathBuf,
}

impl AnchorOutbox {
    /// Open (or create) the outbox in `dir` and read what it holds.
    pub fn open(dir: &Path) -> Result<(AnchorOutbox, OutboxState), AnchorOutboxError> {
        let db = vitalgate_chain::ledger::open_sled(dir, CACHE_BYTES).map_err(|e| {
            AnchorOutboxError::Storage {
                path: dir.to_path_buf(),
                detail: e.to_string(),
            }
        })?;
        let outbox = AnchorOutbox {
            db: Some(db),
            path: dir.to_path_buf(),
        };
        let state = OutboxState {
            pending: outbox.read(PENDING)?,
            flight: outbox.read(FLIGHT)?,
            latest: outbox.latest()?,
        };
        Ok((outbox, state))
    }

    /// An outbox that keeps nothing (tests, and a gateway without
    /// `anchor.outbox`).
    pub fn in_memory() -> AnchorOutbox {
        AnchorOutbox {
            db: None,
            path: PathBuf::from("(memory)"),
        }
    }

    /// Remember `head` as the newest waiting (or nothing waiting).
    pub fn set_pending(&self, head: Option<&Head>) -> Result<(), AnchorOutboxError> {
        self.put(PENDING, head)
    }

    /// Remember the transaction in flight (or none).
    pub fn set_flight(&self, flight: Option<&Flight>) -> Result<(), AnchorOutboxError> {
        self.put(FLIGHT, flight)
    }

    /// Record an anchored head and clear the flight that carried it, in one
    /// atomic write.
    pub fn anchored(&self, anchored: &Anchored) -> Result<(), AnchorOutboxError> {
        let Some(db) = &self.db else { return Ok(()) };
        let value = serde_json::to_vec(anchored).map_err(|e| self.storage(e))?;
        let mut batch = sled::Batch::default();
        batch.insert(anchored_key(anchored.head.size).to_vec(), value);
        batch.remove(FLIGHT);
        db.apply_batch(batch).map_err(|e| self.storage(e))?;
        self.flush()
    }

    /// Forget an anchor a reorganisation dropped.
    pub fn unanchored(&self, size: u64) -> Result<(), AnchorOutboxError> {
        let Some(db) = &self.db else { return Ok(()) };
        db.remove(anchored_key(size)).map_err(|e| self.storage(e))?;
        self.flush()
    }

    /// Every anchored head, oldest first.
    pub fn all_anchored(&self) -> Result<Vec<Anchored>, AnchorOutboxError> {
        let Some(db) = &self.db else {
            return Ok(Vec::new());
        };
        db.scan_prefix([ANCHORED])
            .map(|entry| {
                let (key, value) = entry.map_err(|e| self.storage(e))?;
                self.parse(&key, &value)
            })
            .collect()
    }

    fn latest(&self) -> Result<Option<Anchored>, AnchorOutboxError> {
        let Some(db) = &self.db else { return Ok(None) };
        match db.scan_prefix([ANCHORED]).next_back() {
            None => Ok(None),
            Some(entry) => {
                let (key, value) = entry.map_err(|e| self.storage(e))?;
                self.parse(&key, &value).map(Some)
            }
        }
    }

    fn read<T: for<'de> Deserialize<'de>>(
        &self,
        key: &[u8],
    ) -> Result<Option<T>, AnchorOutboxError> {
        let Some(db) = &self.db else { return Ok(None) };
        match db.get(key).map_err(|e| self.storage(e))? {
            None => Ok(None),
            Some(value) => self.parse(key, &value).map(Some),
        }
    }

    fn put<T: Serialize>(&self, key: &[u8], value: Option<&T>) -> Result<(), AnchorOutboxError> {
        let Some(db) = &self.db else { return Ok(()) };
        match value {
            Some(v) => {
                let bytes = serde_json::to_vec(v).map_err(|e| self.storage(e))?;
                db.insert(key, bytes).map_err(|e| self.storage(e))?;
            }
            None => {
                db.remove(key).map_err(|e| self.storage(e))?;
            }
        }
        self.flush()
    }

    fn flush(&self) -> Result<(), AnchorOutboxError> {
        if let Some(db) = &self.db {
            db.flush().map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    fn parse<T: for<'de> Deserialize<'de>>(
        &self,
        key: &[u8],
        value: &[u8],
    ) -> Result<T, AnchorOutboxError> {
        serde_json::from_slice(value).map_err(|e| AnchorOutboxError::Corrupt {
            path: self.path.clone(),
            key: String::from_utf8_lossy(key).into_owned(),
            detail: e.to_string(),
        })
    }

    fn storage(&self, e: impl std::fmt::Display) -> AnchorOutboxError {
        AnchorOutboxError::Storage {
            path: self.path.clone(),
            detail: e.to_string(),
        }
    }
}

fn anchored_key(size: u64) -> [u8; 9] {
    let mut key = [ANCHORED; 9];
    key[1..].copy_from_slice(&size.to_be_bytes());
    key
}
