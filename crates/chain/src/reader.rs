//! The reader side of the ledger: what `verify`, `open` and `prove` walk.
//!
//! It reads what is on disk without trusting it: the verifier decides what
//! is valid. sled locks its directory, so a ledger is read while the
//! gateway that writes it is stopped (or from a copy).

use crate::block::block_hash;
use crate::crypto::keys::KeyId;
use crate::ledger::{self, LedgerError, keys, split_record_value};
use crate::merkle::{self, Hash};
use std::path::{Path, PathBuf};

/// A ledger opened for reading.
pub struct LedgerReader {
    path: PathBuf,
    _db: sled::Db,
    tree: sled::Tree,
}

/// The log state as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogState {
    /// Blocks sealed.
    pub size: u64,
    /// Hash of the last sealed block.
    pub last: Hash,
    /// The log's right edge (perfect-subtree roots, largest first): kept so
    /// the verifier can hold it to the chain, since sealing trusts it.
    pub frontier: Vec<Hash>,
}

/// One stored record of a sealed block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Index within its block (from the key).
    pub index: u32,
    /// The COSE_Encrypt0 bytes.
    pub bytes: Vec<u8>,
}

/// One record of the open block, not yet sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    /// The block it will be sealed in (from the key).
    pub height: u64,
    /// Index within that block (from the key).
    pub index: u32,
    /// The COSE_Encrypt0 bytes, without the unsigned count and time range
    /// in front (the whole value if it is too short to hold them).
    pub bytes: Vec<u8>,
}

impl LedgerReader {
    /// Open the ledger in `path`.
    pub fn open(path: &Path) -> Result<LedgerReader, LedgerError> {
        let (db, tree) = ledger::open_tree(path)?;
        Ok(LedgerReader {
            path: path.to_path_buf(),
            _db: db,
            tree,
        })
    }

    /// Read through a sled database this process already has open (sled
    /// locks its directory, so [`LedgerReader::open`] would fail): for a
    /// tool or test that edits the ledger and verifies it in between
    /// without closing and reopening sled each time. `path` is only named
    /// in errors.
    pub fn from_db(db: sled::Db, path: &Path) -> Result<LedgerReader, LedgerError> {
        // The tree's name is the one `ledger::open_tree` opens (FORMAT.md,
        // "Storage layout").
        let tree = db
            .open_tree("ledger")
            .map_err(|e| ledger::storage_error(path, e))?;
        Ok(LedgerReader {
            path: path.to_path_buf(),
            _db: db,
            tree,
        })
    }

    /// The directory read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn storage(&self, e: sled::Error) -> LedgerError {
        ledger::storage_error(&self.path, e)
    }

    /// Entries under a one-byte prefix keyed by a big-endian u64 (heights,
    /// tree sizes), in order.
    fn by_number(
        &self,
        prefix: u8,
        what: &'static str,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), LedgerError>> + '_ {
        self.tree.scan_prefix([prefix]).map(move |item| {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let number = k
                .get(1..9)
                .and_then(|b| b.try_into().ok())
                .filter(|_| k.len() == 9)
                .map(u64::from_be_bytes)
                .ok_or_else(|| LedgerError::Corrupt {
                    path: self.path.clone(),
                    detail: format!("a {what} key of the wrong length"),
                })?;
            Ok((number, v.to_vec()))
        })
    }

    /// The key id the ledger was created for, if its metadata is readable.
    pub fn gateway(&self) -> Result<Option<KeyId>, LedgerError> {
        let Some(meta) = self.tree.get(keys::META).map_err(|e| self.storage(e))? else {
            return Ok(None);
        };
        ledger::read_meta(&meta)
            .map(Some)
            .map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                detail: e.to_string(),
            })
    }

    /// The log state: how many blocks the ledger says it sealed.
    pub fn state(&self) -> Result<Option<LogState>, LedgerError> {
        let Some(state) = self.tree.get(keys::STATE).map_err(|e| self.storage(e))? else {
            return Ok(None);
        };
        let (size, last, frontier) =
            ledger::read_state(&state).map_err(|e| LedgerError::Corrupt {
                path: self.path.clone(),
                detail: e.to_string(),
            })?;
        Ok(Some(LogState {
            size,
            last,
            frontier: frontier.nodes().to_vec(),
        }))
    }

    /// The first block height from `height` on that has sealed records
    /// stored.
    pub fn records_from(&self, height: u64) -> Result<Option<u64>, LedgerError> {
        let end = [keys::RECORD + 1];
        let first = self
            .tree
            .range(keys::records(height).to_vec()..end.to_vec())
            .next()
            .transpose()
            .map_err(|e| self.storage(e))?;
        Ok(first.and_then(|(k, _)| k.get(1..9)?.try_into().ok().map(u64::from_be_bytes)))
    }

    /// Every stored signed header, by the height in its key, in order.
    pub fn headers(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), LedgerError>> + '_ {
        self.by_number(keys::HEADER, "header")
    }

    /// The signed header at `height`.
    pub fn header(&self, height: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self
            .tree
            .get(keys::header(height))
            .map_err(|e| self.storage(e))?
            .map(|v| v.to_vec()))
    }

    /// The sealed records stored under `height`, in key order.
    pub fn records(&self, height: u64) -> Result<Vec<StoredRecord>, LedgerError> {
        self.tree
            .scan_prefix(keys::records(height))
            .map(|item| {
                let (k, v) = item.map_err(|e| self.storage(e))?;
                let (_, index) = self.record_key(&k, "record")?;
                Ok(StoredRecord {
                    index,
                    bytes: v.to_vec(),
                })
            })
            .collect()
    }

    /// The records of the open block at `height`, in key order, without
    /// their unsigned prefix.
    pub fn pending_records(&self, height: u64) -> Result<Vec<StoredRecord>, LedgerError> {
        self.pending()
            .filter(|r| r.as_ref().map_or(true, |r| r.height == height))
            .map(|r| {
                r.map(|r| StoredRecord {
                    index: r.index,
                    bytes: r.bytes,
                })
            })
            .collect()
    }

    /// Every pending record (of the open block, or of any height if the
    /// store is damaged), in key order. A value too short for its prefix is
    /// returned whole, so the verifier reports it rather than the reader
    /// hiding it.
    pub fn pending(&self) -> impl Iterator<Item = Result<PendingRecord, LedgerError>> + '_ {
        self.tree.scan_prefix([keys::PENDING]).map(|item| {
            let (k, v) = item.map_err(|e| self.storage(e))?;
            let (height, index) = self.record_key(&k, "pending record")?;
            let bytes = split_record_value(&v).map_or(&v[..], |(_, _, _, r)| r);
            Ok(PendingRecord {
                height,
                index,
                bytes: bytes.to_vec(),
            })
        })
    }

    /// The height and index in a record key (prefix, u64, u32).
    fn record_key(&self, k: &[u8], what: &str) -> Result<(u64, u32), LedgerError> {
        let height = k
            .get(1..9)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes);
        let index = k
            .get(9..13)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        height
            .zip(index)
            .filter(|_| k.len() == 13)
            .ok_or_else(|| LedgerError::Corrupt {
                path: self.path.clone(),
                detail: format!("a {what} key of the wrong length"),
            })
    }

    /// Every stored signed tree head, by tree size, in order.
    pub fn tree_heads(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), LedgerError>> + '_ {
        self.by_number(keys::TREE_HEAD, "tree head")
    }

    /// The signed tree head for `size`.
    pub fn tree_head(&self, size: u64) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self
            .tree
            .get(keys::tree_head(size))
            .map_err(|e| self.storage(e))?
            .map(|v| v.to_vec()))
    }

    /// The leaf hashes of the block log: leaf_hash(block hash) of every
    /// stored header from height 0 while heights are contiguous.
    pub fn log_leaves(&self) -> Result<Vec<Hash>, LedgerError> {
        let mut leaves = Vec::new();
        for item in self.headers() {
            let (height, signed) = item?;
            if height != leaves.len() as u64 {
                break;
            }
            leaves.push(merkle::leaf_hash(&block_hash(&signed)));
        }
        Ok(leaves)
    }

    /// Height of the block a crash (or a running gateway) left open.
    pub fn open_block(&self) -> Result<Option<Vec<u8>>, LedgerError> {
        Ok(self
            .tree
            .get(keys::OPEN)
            .map_err(|e| self.storage(e))?
            .map(|v| v.to_vec()))
    }
}
