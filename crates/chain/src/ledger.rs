//! The gateway's ledger in sled: the writer side.
//!
//! Readings arrive in groups (one group commit of the daemon's storage
//! stage); each batch in a group becomes one encrypted record of the open
//! block, the whole group is applied as one atomic sled batch and made
//! durable with one fsync. Alert messages (the daemon's audit trail of
//! every alert, escalation and acknowledgement) are records too, one per
//! message, written the same way ([`Ledger::append_alerts`]). Records are
//! encrypted before they are written, under a per-block content key that
//! lives only in memory: the open block on disk is as unreadable to a
//! thief as a sealed one.
//!
//! Sealing signs the header, appends the block's hash to the log, signs a
//! new tree head and forgets the content key. A block left open by a crash
//! cannot take more records (its key is gone with the process) but needs
//! none: its records are already encrypted for the recipients, so it is
//! sealed as it is when the ledger opens again.
//!
//! The key layout inside sled is specified in `docs/FORMAT.md`.

use crate::block::{BlockHeader, SealReason, TreeHead, block_hash, recipients_value};
use crate::cbor::{self, CborError, MapBuilder, MapReader};
use crate::content::{Alert, AlertError, AlertMessage};
use crate::crypto::cose::{self, ContentKey, CoseError, RecordKey};
use crate::crypto::keys::{IdentityKey, KeyId, RecipientPublic};
use crate::merkle::{self, Frontier, Hash};
use crate::packing;
use ciborium::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use vitalgate_devices::{Reading, Timestamp, Vital};

/// Kind of the ledger's metadata value.
const META_KIND: &str = "vitalgate/ledger/1";
/// Kind of the log state value.
const STATE_KIND: &str = "vitalgate/log-state/1";
/// Kind of the open-block value.
const OPEN_KIND: &str = "vitalgate/open-block/1";

/// sled keys (one tree; one atomic batch can touch any of them).
pub(crate) mod keys {
    /// Ledger metadata: format and gateway key id.
    pub const META: &[u8] = b"meta";
    /// Log state: blocks sealed, last block hash, Merkle frontier.
    pub const STATE: &[u8] = b"state";
    /// The open block, while there is one.
    pub const OPEN: &[u8] = b"open";
    /// Prefix of signed headers, by height.
    pub const HEADER: u8 = b'h';
    /// Prefix of sealed blocks' records, by height and index: the
    /// COSE_Encrypt0 bytes alone.
    pub const RECORD: u8 = b'r';
    /// Prefix of the open block's records, by height and index: each with
    /// its readings count and time range in front (see `record_value`;
    /// an alert record counts 0 readings and its time is both ends).
    /// A key range of their own, so the group commits that add and the
    /// seal that removes them never rewrite the leaves that hold sealed
    /// records.
    pub const PENDING: u8 = b'p';
    /// Prefix of signed tree heads, by tree size.
    pub const TREE_HEAD: u8 = b't';
    /// Prefix of per-series watermarks (latest stored device time).
    pub const WATERMARK: u8 = b'w';

    /// `h` + height (big-endian, so keys sort by height).
    pub fn header(height: u64) -> [u8; 9] {
        let mut k = [HEADER; 9];
        k[1..].copy_from_slice(&height.to_be_bytes());
        k
    }

    /// `r` + height + index.
    pub fn record(height: u64, index: u32) -> [u8; 13] {
        let mut k = [RECORD; 13];
        k[1..9].copy_from_slice(&height.to_be_bytes());
        k[9..].copy_from_slice(&index.to_be_bytes());
        k
    }

    /// `r` + height: the prefix of one block's records.
    pub fn records(height: u64) -> [u8; 9] {
        let mut k = [RECORD; 9];
        k[1..].copy_from_slice(&height.to_be_bytes());
        k
    }

    /// `p` + height + index.
    pub fn pending(height: u64, index: u32) -> [u8; 13] {
        let mut k = record(height, index);
        k[0] = PENDING;
        k
    }

    /// `p` + height: the prefix of the open block's records.
    pub fn pendings(height: u64) -> [u8; 9] {
        let mut k = records(height);
        k[0] = PENDING;
        k
    }

    /// `t` + tree size.
    pub fn tree_head(size: u64) -> [u8; 9] {
        let mut k = [TREE_HEAD; 9];
        k[1..].copy_from_slice(&size.to_be_bytes());
        k
    }
}

/// When the open block is sealed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealPolicy {
    /// Seal once the block holds this many readings.
    pub max_readings: u64,
    /// Seal once the block has been open this long.
    pub max_age: Duration,
}

impl Default for SealPolicy {
    /// A block every five minutes at a home's 1 Hz vitals (or 4096
    /// readings, whichever first). A reading is durable the moment it is
    /// committed; sealing only signs and logs it, so the interval trades
    /// how soon a reading is in a signed tree head against the header, tree
    /// head and per-device record overhead of each block: about 1.3 bytes
    /// a reading at one block a minute, 0.3 at five (`benches/ledger_size.rs`).
    fn default() -> Self {
        SealPolicy {
            max_readings: 4096,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Most bytes of alert messages the open block holds in memory (for the
/// records written again at sealing) before it is sealed by size, whatever
/// its readings count: alerts are a few a patient-day, so this only bounds
/// a flood (a daemon bug), never the ordinary case.
pub const MAX_OPEN_ALERT_BYTES: usize = 1 << 20;

/// The ledger failed.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// The disk (or quota) is full.
    #[error("ledger at {path}: disk full: {detail}")]
    Full {
        /// The ledger's directory.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
    },
    /// Any other storage failure.
    #[error("ledger at {path}: {detail}")]
    Storage {
        /// The ledger's directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The ledger was written by another gateway identity.
    #[error(
        "ledger at {path} belongs to gateway key {found}, not to this identity ({expected}); point the config at this gateway's own identity key or ledger directory"
    )]
    WrongIdentity {
        /// The ledger's directory.
        path: PathBuf,
        /// This identity's key id.
        expected: KeyId,
        /// The ledger's key id.
        found: KeyId,
    },
    /// Stored data is not what this ledger wrote.
    #[error("ledger at {path}: {detail}; run `vitalgate verify` to locate the damage")]
    Corrupt {
        /// The ledger's directory.
        path: PathBuf,
        /// What is inconsistent.
        detail: String,
    },
    /// There is no recipient to encrypt for.
    #[error("no recipients configured: nobody could ever read the readings")]
    NoRecipients,
    /// An alert message is not one the ledger stores; nothing of the call
    /// was written, and the ledger is as it was. Unlike a storage failure
    /// this is permanent: the same message is refused again, so a caller
    /// that retries must leave it out.
    #[error("alert message {index} of the {count} given: {source}")]
    Alert {
        /// Its position in the messages given.
        index: usize,
        /// How many were given.
        count: usize,
        /// What is wrong with it.
        source: AlertError,
    },
}

/// What sealing produced.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The block's header.
    pub header: BlockHeader,
    /// The block's hash (the log entry).
    pub hash: Hash,
    /// The new tree head.
    pub tree_head: TreeHead,
    /// The new tree head as signed (COSE_Sign1): what gets anchored.
    pub signed_tree_head: Vec<u8>,
}

/// The block being filled.
///
/// While open, each appended batch and each alert message is its own
/// pending record on disk (that is what makes an acknowledgement durable).
/// At sealing, the readings are written again as one record per device
/// under a fresh content key, each alert message as its own record after
/// them in the order appended, and the pending records are removed: five
/// minutes of one device's readings pack into far fewer bytes than three
/// hundred one-second records, each with its own COSE overhead and sled
/// entry. A block sealed after a crash (`recovery`) keeps its per-batch
/// records, since their key is gone: they are moved to sealed records as
/// they are, less their unsigned prefix.
struct OpenBlock {
    height: u64,
    /// `None` for a block found open after a crash: it takes no more records.
    key: Option<ContentKey>,
    recipients: Vec<Vec<u8>>,
    /// Leaf hashes of the per-batch records on disk.
    leaves: Vec<Hash>,
    /// The readings of those records, in the order appended, for the
    /// records written at sealing. Bounded by the seal policy.
    readings_kept: Vec<Reading>,
    /// The alert messages among them, in the order appended, likewise.
    /// Bounded by [`MAX_OPEN_ALERT_BYTES`] and the seal policy's age.
    alerts_kept: Vec<Alert>,
    /// Bytes of the messages in `alerts_kept`.
    alert_bytes: usize,
    readings: u64,
    /// Time range of the records' contents, for the header.
    span: Span,
    opened: Instant,
}

impl OpenBlock {
    /// An empty block at `height`, opened now.
    fn new(height: u64, key: Option<ContentKey>, recipients: Vec<Vec<u8>>) -> OpenBlock {
        OpenBlock {
            height,
            key,
            recipients,
            leaves: Vec::new(),
            readings_kept: Vec::new(),
            alerts_kept: Vec::new(),
            alert_bytes: 0,
            readings: 0,
            span: Span::default(),
            opened: Instant::now(),
        }
    }
}

/// The earliest and latest time of a block's contents — its readings'
/// gateway receive times and its alert records' times — once it has any.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span(Option<(Timestamp, Timestamp)>);

impl Span {
    /// Take in the range `first..=last` of one more record.
    fn widen(&mut self, first: Timestamp, last: Timestamp) {
        self.0 = Some(match self.0 {
            Some((f, l)) => (f.min(first), l.max(last)),
            None => (first, last),
        });
    }

    /// The header's `first` and `last` (0 and 0 for a block without
    /// records, which is never sealed).
    fn bounds(self) -> (Timestamp, Timestamp) {
        self.0.unwrap_or((Timestamp(0), Timestamp(0)))
    }
}

/// One record to append, before it is encrypted.
enum Entry<'a> {
    /// A non-empty batch of readings.
    Readings(&'a [Reading]),
    /// An alert message, checked.
    Alert(Alert),
}

impl Entry<'_> {
    /// Write the record's plaintext into `plain`; return what its pending
    /// prefix says: readings count, first and last time.
    fn encode(&self, plain: &mut Vec<u8>) -> (u32, Timestamp, Timestamp) {
        match self {
            Entry::Readings(batch) => {
                packing::pack(batch, plain);
                let (first, last) = time_range(batch);
                (batch.len() as u32, first, last)
            }
            Entry::Alert(alert) => {
                alert.encode(plain);
                (0, alert.time, alert.time)
            }
        }
    }
}

/// The open sled database and the ledger's tree in it.
struct Disk {
    db: sled::Db,
    tree: sled::Tree,
}

/// A series: one device's one vital.
type Series = (Arc<str>, Vital);

/// The writer side of the ledger.
pub struct Ledger {
    path: PathBuf,
    /// `None` only while being reopened.
    disk: Option<Disk>,
    /// A write or fsync failed: sled does not recover from that in place
    /// (a full disk leaves it failing even once space returns), so the
    /// next operation reopens the ledger from what is on disk.
    broken: bool,
    identity: IdentityKey,
    gateway: KeyId,
    recipients: Vec<RecipientPublic>,
    policy: SealPolicy,
    size: u64,
    last_hash: Hash,
    frontier: Frontier,
    open: Option<OpenBlock>,
    watermarks: HashMap<Series, Timestamp>,
    /// When the newest block was sealed: no later block or tree head is
    /// stamped earlier, whatever the clock did across a restart (a
    /// Raspberry Pi without a real-time clock may boot in the past).
    last_sealed: Timestamp,
}

/// The readings count and time range stored in front of a pending record,
/// so a block found open after a crash can be sealed without its key (see
/// `docs/FORMAT.md`). Sealed records carry nothing unsigned.
const RECORD_PREFIX: usize = 4 + 8 + 8;

impl Ledger {
    /// Open (or create) the ledger in `path`. A block left open by a crash
    /// is sealed now, with reason `recovery`.
    pub fn open(
        path: &Path,
        identity: IdentityKey,
        recipients: Vec<RecipientPublic>,
        policy: SealPolicy,
    ) -> Result<Ledger, LedgerError> {
        if recipients.is_empty() {
            return Err(LedgerError::NoRecipients);
        }
        let mut ledger = Ledger {
            path: path.to_path_buf(),
            disk: None,
            broken: false,
            gateway: identity.kid(),
            identity,
            recipients,
            policy,
            size: 0,
            last_hash: [0; 32],
            frontier: Frontier::new(),
            open: None,
            watermarks: HashMap::new(),
            last_sealed: Timestamp(i64::MIN),
        };
        ledger.load()?;
        Ok(ledger)
    }

    /// (Re)load everything from disk: metadata, log state, watermarks, and
    /// a block left open (sealed now, without its key, as `recovery`).
    fn load(&mut self) -> Result<(), LedgerError> {
        // Drop the old handles first: sled locks its directory.
        self.disk = None;
        self.open = None;
        self.watermarks.clear();
        let path = self.path.clone();
        let (db, tree) = open_db(&path)?;
        let storage = |e| storage_error(&path, e);
        match tree.get(keys::META).map_err(storage)? {
            Some(meta) => {
                let found = read_meta(&meta).map_err(|e| corrupt(&path, e))?;
                if found != self.gateway {
                    return Err(LedgerError::WrongIdentity {
                        path,
                        expected: self.gateway,
                        found,
                    });
                }
            }
            None => {
                let meta = MapBuilder::new()
                    .field(0, META_KIND)
                    .field(1, Value::Bytes(self.gateway.0.to_vec()))
                    .build();
                tree.insert(keys::META, cbor::encode(&meta))
                    .map_err(storage)?;
                db.flush().map_err(storage)?;
            }
        }
        (self.size, self.last_hash, self.frontier) = match tree.get(keys::STATE).map_err(storage)? {
            Some(state) => read_state(&state).map_err(|e| corrupt(&path, e))?,
            None => (0, [0; 32], Frontier::new()),
        };
        self.disk = Some(Disk { db, tree });
        self.check_tip()?;
        self.load_watermarks()?;
        self.recover_open_block()?;
        self.broken = false;
        Ok(())
    }

    /// Reopen after a failure, before doing anything else.
    fn heal(&mut self) -> Result<(), LedgerError> {
        if self.broken || self.disk.is_none() {
            self.load()?;
        }
        Ok(())
    }

    /// Note a failure of `result` so the next operation reopens.
    fn watch<T>(&mut self, result: Result<T, LedgerError>) -> Result<T, LedgerError> {
        if matches!(
            result,
            Err(LedgerError::Full { .. } | LedgerError::Storage { .. })
        ) {
            self.broken = true;
        }
        result
    }

    fn tree(&self) -> Result<&sled::Tree, LedgerError> {
        self.disk
            .as_ref()
            .map(|d| &d.tree)
            .ok_or_else(|| LedgerError::Storage {
                path: self.path.clone(),
                detail: "not open (reopening after a failure)".into(),
            })
    }

    /// The directory the ledger lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Blocks sealed so far (the log's size).
    pub fn blocks(&self) -> u64 {
        self.size
    }

    /// The newest signed tree head (COSE_Sign1), `None` before the first
    /// block is sealed.
    pub fn latest_tree_head(&self) -> Result<Option<Vec<u8>>, LedgerError> {
        if self.size == 0 {
            return Ok(None);
        }
        self.tree()?
            .get(keys::tree_head(self.size))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| storage_error(&self.path, e))
    }

    /// Readings in the open block.
    pub fn open_readings(&self) -> u64 {
        self.open.as_ref().map_or(0, |b| b.readings)
    }

    /// Alert records in the open block.
    pub fn open_alerts(&self) -> u64 {
        self.open.as_ref().map_or(0, |b| b.alerts_kept.len() as u64)
    }

    /// The latest stored device time of every series, for recognising
    /// readings a broker redelivers after a restart.
    pub fn watermarks(&self) -> impl Iterator<Item = (&Arc<str>, Vital, Timestamp)> {
        self.watermarks.iter().map(|((d, v), t)| (d, *v, *t))
    }

    /// Bytes the ledger occupies on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.disk
            .as_ref()
            .and_then(|d| d.db.size_on_disk().ok())
            .unwrap_or(0)
    }

    /// Append each non-empty batch as one record of the open block, in one
    /// atomic write and one fsync. `Ok` means durable.
    pub fn append(&mut self, batches: &[&[Reading]], now: Timestamp) -> Result<(), LedgerError> {
        let entries = batches
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| Entry::Readings(b))
            .collect();
        self.append_entries(entries, now)
    }

    /// Append each alert message as one record of the open block (opening
    /// one if needed), recorded at `now`, in one atomic write and one
    /// fsync, encrypted for the block's recipients like readings. `Ok`
    /// means durable; the errors are [`Ledger::append`]'s.
    ///
    /// Every message is checked first ([`AlertMessage::new`]: UTF-8, one
    /// JSON object on one line, at most 64 KiB): if one is refused
    /// ([`LedgerError::Alert`], naming it), nothing is written. Alert
    /// records count no readings, so they do not bring the size seal
    /// nearer; the age seal covers them, and so does
    /// [`MAX_OPEN_ALERT_BYTES`].
    pub fn append_alerts(&mut self, messages: &[&[u8]], now: Timestamp) -> Result<(), LedgerError> {
        let entries = messages
            .iter()
            .enumerate()
            .map(|(index, bytes)| {
                AlertMessage::new(bytes)
                    .map(|message| Entry::Alert(Alert { time: now, message }))
                    .map_err(|source| LedgerError::Alert {
                        index,
                        count: messages.len(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.append_entries(entries, now)
    }

    fn append_entries(
        &mut self,
        entries: Vec<Entry<'_>>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.heal()?;
        let result = self.write_records(entries, now);
        self.watch(result)
    }

    fn write_records(
        &mut self,
        entries: Vec<Entry<'_>>,
        now: Timestamp,
    ) -> Result<(), LedgerError> {
        let mut write = sled::Batch::default();
        if self.open.as_ref().is_some_and(|b| b.key.is_none()) {
            // A block recovered at start whose sealing failed: seal it
            // before starting the next.
            self.seal_open(SealReason::Recovery, now)?;
        }
        // A new block is only kept once its first records are written.
        let fresh = match self.open {
            Some(_) => None,
            None => Some(self.new_block(&mut write)?),
        };
        let Some(block) = fresh.as_ref().or(self.open.as_ref()) else {
            return Err(corrupt(&self.path, "no open block after opening one"));
        };
        let Some(key) = block.key.as_ref() else {
            return Err(corrupt(&self.path, "the open block has no content key"));
        };
        let height = block.height;
        let next = u32::try_from(block.leaves.len()).unwrap_or(u32::MAX);
        let mut leaves = Vec::with_capacity(entries.len());
        let (mut readings, mut span) = (0u64, block.span);
        let mut touched: HashMap<Series, Timestamp> = HashMap::new();
        let mut plain = Vec::new();
        for (index, entry) in (next..).zip(&entries) {
            if index == u32::MAX {
                return Err(corrupt(&self.path, "a block cannot hold more records"));
            }
            plain.clear();
            let (count, first, last) = entry.encode(&mut plain);
            let record_key = RecordKey::derive(key, height, index);
            let record = cose::encrypt_record(&record_key, &self.gateway, height, index, &plain)
                .map_err(|e| corrupt(&self.path, format!("cannot encrypt a record: {e}")))?;
            write.insert(
                &keys::pending(height, index)[..],
                record_value(count, first, last, &record),
            );
            leaves.push(merkle::leaf_hash(&record));
            span.widen(first, last);
            readings += u64::from(count);
            let Entry::Readings(batch) = entry else {
                continue;
            };
            for r in batch.iter() {
                if let Some(t) = r.device_time {
                    let series = (Arc::clone(&r.device), r.vital);
                    let known = touched
                        .get(&series)
                        .or_else(|| self.watermarks.get(&series))
                        .copied();
                    if known.is_none_or(|k| t > k) {
                        touched.insert(series, t);
                    }
                }
            }
        }
        for ((device, vital), t) in &touched {
            write.insert(watermark_key(device, *vital), &t.0.to_be_bytes());
        }
        self.tree()?
            .apply_batch(write)
            .map_err(|e| storage_error(&self.path, e))?;
        // Applied: sled now holds it, so memory follows even if the fsync
        // below fails (the next successful flush makes it durable).
        if let Some(b) = fresh {
            self.open = Some(b);
        }
        if let Some(b) = self.open.as_mut() {
            b.leaves.extend_from_slice(&leaves);
            for entry in entries {
                match entry {
                    Entry::Readings(batch) => b.readings_kept.extend_from_slice(batch),
                    Entry::Alert(alert) => {
                        b.alert_bytes += alert.message.as_bytes().len();
                        b.alerts_kept.push(alert);
                    }
                }
            }
            b.readings += readings;
            b.span = span;
        }
        self.watermarks.extend(touched);
        self.flush()
    }

    /// Seal the open block if the policy says it is time.
    pub fn seal_if_due(&mut self, now: Timestamp) -> Result<Option<Sealed>, LedgerError> {
        self.heal()?;
        let due = match &self.open {
            Some(b) if b.key.is_none() => Some(SealReason::Recovery),
            Some(b) if b.readings >= self.policy.max_readings => Some(SealReason::Size),
            Some(b) if b.alert_bytes >= MAX_OPEN_ALERT_BYTES => Some(SealReason::Size),
            Some(b) if b.opened.elapsed() >= self.policy.max_age => Some(SealReason::Age),
            _ => None,
        };
        match due {
            Some(reason) => self.seal(reason, now),
            None => Ok(None),
        }
    }

    /// Seal the open block now (nothing to do without one).
    pub fn seal(
        &mut self,
        reason: SealReason,
        now: Timestamp,
    ) -> Result<Option<Sealed>, LedgerError> {
        self.heal()?;
        let result = self.seal_open(reason, now);
        self.watch(result)
    }

    fn seal_open(
        &mut self,
        reason: SealReason,
        now: Timestamp,
    ) -> Result<Option<Sealed>, LedgerError> {
        let Some(block) = &self.open else {
            return Ok(None);
        };
        // Never stamped before the block it follows (see `last_sealed`).
        let now = now.max(self.last_sealed);
        let mut write = sled::Batch::default();
        let (leaves, recipients) = match &block.key {
            Some(_) => self.compact(block, &mut write)?,
            None => (self.promote(block, &mut write)?, block.recipients.clone()),
        };
        let (first, last) = block.span.bounds();
        let header = BlockHeader {
            gateway: self.gateway,
            height: block.height,
            prev: self.last_hash,
            first,
            last,
            readings: block.readings,
            records: u32::try_from(leaves.len()).unwrap_or(u32::MAX),
            records_root: merkle::root(&leaves),
            recipients,
            sealed_at: now,
            reason,
        };
        let signed = header.sign(&self.identity);
        let hash = block_hash(&signed);
        let mut frontier = self.frontier.clone();
        frontier.push(merkle::leaf_hash(&hash));
        let tree_head = TreeHead {
            gateway: self.gateway,
            size: self.size + 1,
            root: frontier.root(),
            time: now,
        };
        write.insert(&keys::header(header.height)[..], signed);
        let signed_tree_head = tree_head.sign(&self.identity);
        write.insert(
            &keys::tree_head(tree_head.size)[..],
            signed_tree_head.clone(),
        );
        write.insert(keys::STATE, encode_state(tree_head.size, &hash, &frontier));
        write.remove(keys::OPEN);
        self.tree()?
            .apply_batch(write)
            .map_err(|e| storage_error(&self.path, e))?;
        // Dropping the open block drops (and zeroizes) its content key.
        self.open = None;
        self.size = tree_head.size;
        self.last_hash = hash;
        self.last_sealed = now;
        self.frontier = frontier;
        self.flush()?;
        Ok(Some(Sealed {
            header,
            hash,
            tree_head,
            signed_tree_head,
        }))
    }

    /// Rewrite the open block's readings as one record per device (sorted
    /// by device id, readings in the order appended), then each alert
    /// message as its own record in the order appended, under a fresh
    /// content key — never the open block's key, whose record keys the
    /// per-batch records already used — and queue the removal of the
    /// per-batch records. Returns the new records' leaf hashes and wrapped
    /// keys.
    fn compact(
        &self,
        block: &OpenBlock,
        write: &mut sled::Batch,
    ) -> Result<(Vec<Hash>, Vec<Vec<u8>>), LedgerError> {
        let key = ContentKey::generate();
        let recipients = self.wrap(&key)?;
        let mut by_device: Vec<&Reading> = block.readings_kept.iter().collect();
        // Stable: readings keep their order within a device.
        by_device.sort_by(|a, b| a.device.as_bytes().cmp(b.device.as_bytes()));
        let mut leaves = Vec::new();
        let mut plain = Vec::new();
        let mut device_readings: Vec<Reading> = Vec::new();
        for group in by_device.chunk_by(|a, b| a.device == b.device) {
            device_readings.clear();
            device_readings.extend(group.iter().map(|r| (*r).clone()));
            plain.clear();
            packing::pack(&device_readings, &mut plain);
            self.seal_record(&key, block.height, &plain, &mut leaves, write)?;
        }
        for alert in &block.alerts_kept {
            plain.clear();
            alert.encode(&mut plain);
            self.seal_record(&key, block.height, &plain, &mut leaves, write)?;
        }
        for index in 0..block.leaves.len() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            write.remove(&keys::pending(block.height, index)[..]);
        }
        Ok((leaves, recipients))
    }

    /// Encrypt `plain` as the next sealed record of the block at `height`
    /// (its index is the number of `leaves` so far), queue it, and add its
    /// leaf hash.
    fn seal_record(
        &self,
        key: &ContentKey,
        height: u64,
        plain: &[u8],
        leaves: &mut Vec<Hash>,
        write: &mut sled::Batch,
    ) -> Result<(), LedgerError> {
        let index = u32::try_from(leaves.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or_else(|| corrupt(&self.path, "a block cannot hold more records"))?;
        let record_key = RecordKey::derive(key, height, index);
        let record = cose::encrypt_record(&record_key, &self.gateway, height, index, plain)
            .map_err(|e| corrupt(&self.path, format!("cannot encrypt a record: {e}")))?;
        leaves.push(merkle::leaf_hash(&record));
        write.insert(&keys::record(height, index)[..], record);
        Ok(())
    }

    /// Queue the move of a recovered block's pending records, byte for byte
    /// less their unsigned prefix, to sealed records. Returns their leaf
    /// hashes, which must be those found at recovery.
    fn promote(
        &self,
        block: &OpenBlock,
        write: &mut sled::Batch,
    ) -> Result<Vec<Hash>, LedgerError> {
        let mut leaves = Vec::with_capacity(block.leaves.len());
        for item in self.tree()?.scan_prefix(keys::pendings(block.height)) {
            let (k, v) = item.map_err(|e| storage_error(&self.path, e))?;
            let index = u32::try_from(leaves.len()).unwrap_or(u32::MAX);
            let record = split_record_value(&v)
                .map(|(_, _, _, record)| record)
                .filter(|_| k.as_ref() == keys::pending(block.height, index));
            let Some(record) = record else {
                return Err(corrupt(
                    &self.path,
                    format!(
                        "pending record {index} of block {} changed since recovery",
                        block.height
                    ),
                ));
            };
            leaves.push(merkle::leaf_hash(record));
            write.insert(&keys::record(block.height, index)[..], record);
            write.remove(k);
        }
        if leaves != block.leaves {
            return Err(corrupt(
                &self.path,
                format!(
                    "the pending records of block {} changed since recovery",
                    block.height
                ),
            ));
        }
        Ok(leaves)
    }

    /// The content key wrapped for every recipient.
    fn wrap(&self, key: &ContentKey) -> Result<Vec<Vec<u8>>, LedgerError> {
        self.recipients
            .iter()
            .map(|r| cose::wrap(key, r))
            .collect::<Result<Vec<_>, CoseError>>()
            .map_err(|e| LedgerError::Storage {
                path: self.path.clone(),
                detail: format!("could not wrap the content key: {e}"),
            })
    }

    /// Make everything applied so far durable.
    pub fn flush(&mut self) -> Result<(), LedgerError> {
        let result = match &self.disk {
            Some(d) => {
                d.db.flush()
                    .map(|_| ())
                    .map_err(|e| storage_error(&self.path, e))
            }
            None => self.tree().map(|_| ()),
        };
        self.watch(result)
    }

    /// Prepare a new open block: a fresh content key, wrapped for every
    /// recipient, and its marker written in the same batch as its first
    /// records.
    fn new_block(&self, write: &mut sled::Batch) -> Result<OpenBlock, LedgerError> {
        let key = ContentKey::generate();
        let recipients = self.wrap(&key)?;
        let now = Timestamp::now();
        write.insert(keys::OPEN, encode_open(self.size, &recipients, now));
        Ok(OpenBlock::new(self.size, Some(key), recipients))
    }

    /// The stored tip must be the block the state says it is.
    fn check_tip(&mut self) -> Result<(), LedgerError> {
        if self.size == 0 {
            return Ok(());
        }
        let tip = self
            .tree()?
            .get(keys::header(self.size - 1))
            .map_err(|e| storage_error(&self.path, e))?;
        match tip {
            Some(signed) if block_hash(&signed) == self.last_hash => {
                if let Ok((_, header)) = BlockHeader::decode(&signed) {
                    self.last_sealed = header.sealed_at;
                }
                Ok(())
            }
            Some(_) => Err(corrupt(
                &self.path,
                format!(
                    "block {} does not match the log state's last hash",
                    self.size - 1
                ),
            )),
            None => Err(corrupt(
                &self.path,
                format!(
                    "the log state counts {} blocks but block {} is missing",
                    self.size,
                    self.size - 1
                ),
            )),
        }
    }

    fn load_watermarks(&mut self) -> Result<(), LedgerError> {
        for item in self.tree()?.scan_prefix([keys::WATERMARK]) {
            let (k, v) = item.map_err(|e| storage_error(&self.path, e))?;
            let parsed = parse_watermark(&k).zip(<[u8; 8]>::try_from(v.as_ref()).ok());
            let Some(((device, vital), t)) = parsed else {
                return Err(corrupt(&self.path, "a malformed watermark entry"));
            };
            self.watermarks
                .insert((device, vital), Timestamp(i64::from_be_bytes(t)));
        }
        Ok(())
    }

    /// Rebuild a block a crash left open and seal it.
    fn recover_open_block(&mut self) -> Result<(), LedgerError> {
        let Some(open) = self
            .tree()?
            .get(keys::OPEN)
            .map_err(|e| storage_error(&self.path, e))?
        else {
            return Ok(());
        };
        let (height, recipients) = read_open(&open).map_err(|e| corrupt(&self.path, e))?;
        if height != self.size {
            return Err(corrupt(
                &self.path,
                format!(
                    "the open block has height {height} but the log holds {} blocks",
                    self.size
                ),
            ));
        }
        let mut block = OpenBlock::new(height, None, recipients);
        for (i, item) in self.tree()?.scan_prefix(keys::pendings(height)).enumerate() {
            let (k, v) = item.map_err(|e| storage_error(&self.path, e))?;
            let (count, first, last, record) = split_record_value(&v)
                .filter(|_| k.as_ref() == keys::pending(height, i as u32))
                .ok_or_else(|| {
                    corrupt(
                        &self.path,
                        format!(
                            "record {i} of the open block {height} is malformed or out of place"
                        ),
                    )
                })?;
            block.leaves.push(merkle::leaf_hash(record));
            // An alert record's prefix counts no readings and gives its
            // time as both ends, so the range covers it like a batch.
            block.span.widen(first, last);
            block.readings += u64::from(count);
        }
        if block.leaves.is_empty() {
            // The marker is written with the first records, so this is
            // not a state the ledger leaves; clear it rather than seal an
            // empty block.
            self.tree()?
                .remove(keys::OPEN)
                .map_err(|e| storage_error(&self.path, e))?;
            return self.flush();
        }
        self.open = Some(block);
        self.seal_open(SealReason::Recovery, Timestamp::now())?;
        Ok(())
    }
}

fn open_db(path: &Path) -> Result<(sled::Db, sled::Tree), LedgerError> {
    // sled's default cache is 1 GiB; a Pi has less to spare.
    let db = open_sled(path, 16 * 1024 * 1024).map_err(|e| {
        if is_locked(&e) {
            LedgerError::Storage {
                path: path.to_path_buf(),
                detail: "in use by another process (a running gateway?); stop it first".into(),
            }
        } else {
            storage_error(path, e)
        }
    })?;
    let tree = db.open_tree("ledger").map_err(|e| storage_error(path, e))?;
    Ok((db, tree))
}

/// Open the sled database in `path` with a page cache of `cache_bytes`
/// and no background flush (durability is the caller's explicit flush).
///
/// sled's lock on its directory can outlive a dropped handle for a moment
/// (its thread pool finishes writes after the drop), so a reopen in the
/// same process, as after a storage failure, waits for it (up to 3 s)
/// rather than failing; another process holding it is still an error
/// ([`is_locked`] tells which).
pub fn open_sled(path: &Path, cache_bytes: u64) -> Result<sled::Db, sled::Error> {
    let mut pause = Duration::from_millis(5);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let opened = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            .flush_every_ms(None)
            .open();
        match opened {
            Err(e) if is_locked(&e) && Instant::now() < deadline => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            opened => return opened,
        }
    }
}

/// Whether sled failed to open because its directory is locked. sled
/// reports that as an `Other` I/O error naming the lock in its message
/// (the `WouldBlock` of `flock` survives only as text).
pub fn is_locked(e: &sled::Error) -> bool {
    matches!(e, sled::Error::Io(io)
        if io.kind() == std::io::ErrorKind::WouldBlock
            || io.to_string().starts_with("could not acquire lock"))
}

/// Open the ledger's sled tree for reading (verify, open, prove).
pub(crate) fn open_tree(path: &Path) -> Result<(sled::Db, sled::Tree), LedgerError> {
    if !path.join("conf").exists() {
        return Err(LedgerError::Storage {
            path: path.to_path_buf(),
            detail: "no ledger here".into(),
        });
    }
    open_db(path)
}

pub(crate) fn storage_error(path: &Path, e: sled::Error) -> LedgerError {
    match e {
        sled::Error::Io(io)
            if io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded =>
        {
            LedgerError::Full {
                path: path.to_path_buf(),
                detail: io.to_string(),
            }
        }
        e => LedgerError::Storage {
            path: path.to_path_buf(),
            detail: e.to_string(),
        },
    }
}

fn corrupt(path: &Path, detail: impl ToString) -> LedgerError {
    LedgerError::Corrupt {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn time_range(batch: &[Reading]) -> (Timestamp, Timestamp) {
    let first = batch
        .iter()
        .map(|r| r.gateway_time)
        .min()
        .unwrap_or(Timestamp(0));
    let last = batch
        .iter()
        .map(|r| r.gateway_time)
        .max()
        .unwrap_or(Timestamp(0));
    (first, last)
}

/// A pending record as stored: its readings count and time range (the
/// readings' gateway times; an alert record's time at both ends), so a
/// block found open after a crash can be sealed without its key, then the
/// COSE_Encrypt0 bytes.
fn record_value(count: u32, first: Timestamp, last: Timestamp, record: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(RECORD_PREFIX + record.len());
    value.extend_from_slice(&count.to_be_bytes());
    value.extend_from_slice(&first.0.to_be_bytes());
    value.extend_from_slice(&last.0.to_be_bytes());
    value.extend_from_slice(record);
    value
}

/// Split a stored record value into (readings, first, last, record bytes).
pub(crate) fn split_record_value(v: &[u8]) -> Option<(u32, Timestamp, Timestamp, &[u8])> {
    let count = u32::from_be_bytes(v.get(0..4)?.try_into().ok()?);
    let first = i64::from_be_bytes(v.get(4..12)?.try_into().ok()?);
    let last = i64::from_be_bytes(v.get(12..20)?.try_into().ok()?);
    Some((
        count,
        Timestamp(first),
        Timestamp(last),
        v.get(RECORD_PREFIX..)?,
    ))
}

fn watermark_key(device: &str, vital: Vital) -> Vec<u8> {
    let mut k = Vec::with_capacity(4 + device.len());
    k.push(keys::WATERMARK);
    k.extend_from_slice(&(device.len() as u16).to_be_bytes());
    k.extend_from_slice(device.as_bytes());
    k.push(packing::vital_code(vital));
    k
}

fn parse_watermark(k: &[u8]) -> Option<Series> {
    let len = usize::from(u16::from_be_bytes(k.get(1..3)?.try_into().ok()?));
    let device = std::str::from_utf8(k.get(3..3 + len)?).ok()?;
    let vital = packing::vital_from_code(*k.get(3 + len)?)?;
    (k.len() == 4 + len).then(|| (Arc::from(device), vital))
}

pub(crate) fn read_meta(v: &[u8]) -> Result<KeyId, CborError> {
    let value = cbor::decode_strict("ledger metadata", v)?;
    let m = MapReader::new("ledger metadata", &value, &[0, 1])?;
    m.expect_kind(META_KIND)?;
    Ok(KeyId(m.bytes(1)?))
}

fn encode_state(size: u64, last: &Hash, frontier: &Frontier) -> Vec<u8> {
    let nodes = frontier
        .nodes()
        .iter()
        .map(|h| Value::Bytes(h.to_vec()))
        .collect::<Vec<_>>();
    cbor::encode(
        &MapBuilder::new()
            .field(0, STATE_KIND)
            .field(1, size)
            .field(2, Value::Bytes(last.to_vec()))
            .field(3, Value::Array(nodes))
            .build(),
    )
}

pub(crate) fn read_state(v: &[u8]) -> Result<(u64, Hash, Frontier), CborError> {
    const WHAT: &str = "log state";
    let value = cbor::decode_strict(WHAT, v)?;
    let m = MapReader::new(WHAT, &value, &[0, 1, 2, 3])?;
    m.expect_kind(STATE_KIND)?;
    let size = m.uint(1)?;
    let nodes = m
        .array(3)?
        .iter()
        .map(|n| {
            n.as_bytes()
                .and_then(|b| <Hash>::try_from(b.as_slice()).ok())
        })
        .collect::<Option<Vec<Hash>>>()
        .ok_or(CborError::Field {
            what: WHAT,
            key: 3,
            detail: "expected 32-byte hashes",
        })?;
    let frontier = Frontier::from_nodes(size, nodes).ok_or(CborError::Field {
        what: WHAT,
        key: 3,
        detail: "the frontier does not fit the size",
    })?;
    Ok((size, m.bytes(2)?, frontier))
}

fn encode_open(height: u64, recipients: &[Vec<u8>], opened: Timestamp) -> Vec<u8> {
    cbor::encode(
        &MapBuilder::new()
            .field(0, OPEN_KIND)
            .field(1, height)
            .field(2, recipients_value(recipients))
            .field(3, opened.0)
            .build(),
    )
}

pub(crate) fn read_open(v: &[u8]) -> Result<(u64, Vec<Vec<u8>>), CborError> {
    const WHAT: &str = "open block";
    let value = cbor::decode_strict(WHAT, v)?;
    let m = MapReader::new(WHAT, &value, &[0, 1, 2, 3])?;
    m.expect_kind(OPEN_KIND)?;
    let recipients = m.array(2)?.iter().map(cbor::encode).collect();
    Ok((m.uint(1)?, recipients))
}
