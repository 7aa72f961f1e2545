//! The durable alert outbox: every alert message waits here, sealed, until
//! each sink it is for has taken it.
//!
//! An alert is persisted before it is sent (and its delivery is recorded
//! before it is forgotten), so a restart, a crash or a week without
//! uplink loses none: at start the outbox hands back everything not yet
//! delivered, together with the alert lifecycle (`AlertBook`) it was
//! written with, and delivery resumes. Delivery is therefore at least
//! once; the message id is the receiver's idempotency key.
//!
//! **No plaintext on disk.** Messages carry vitals, so every stored value
//! is sealed with ChaCha20-Poly1305 under a key derived from the gateway's
//! identity key (`IdentityKey::derive_secret("vitalgate/outbox-key/1")`),
//! with a random nonce per write and the sled key as associated data, so a
//! value cannot be moved to another key. Unlike the ledger, the gateway
//! must read its outbox back, so a thief holding the gateway *and* its
//! identity key can read the alerts still waiting — seconds' worth
//! normally, an outage's worth at most; delivered messages are removed.
//! Layout in `docs/FORMAT.md`, "Alert outbox".
//!
//! **Full disk.** When a write fails the outbox keeps working from memory
//! (alerts are still delivered) and writes everything again at the next
//! save; [`Outbox::unsaved`] says so for metrics and the log.

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use getrandom::SysRng;
use getrandom::rand_core::TryRng as _;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use vitalgate_detect::alert::AlertBook;
use vitalgate_devices::Timestamp;

/// The HKDF `info` of the outbox key.
pub const KEY_INFO: &[u8] = b"vitalgate/outbox-key/1";
/// First byte of every stored value: the sealing format.
const SEALED_V1: u8 = 0x01;
const NONCE_LEN: usize = 12;
/// The key of the lifecycle state.
const STATE_KEY: &[u8] = b"state";
/// The prefix of message keys (`m` ‖ seq u64 BE).
const MESSAGE_PREFIX: u8 = b'm';

/// Why the outbox could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// sled failed.
    #[error("alert outbox {path}: {detail}")]
    Storage {
        /// The outbox directory.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// A stored value does not open with this gateway's key (another
    /// gateway's outbox, or damage).
    #[error(
        "alert outbox {path}: entry {key} does not decrypt with this gateway's key (another gateway's outbox, or damaged); move the folder aside to start afresh"
    )]
    Sealed {
        /// The outbox directory.
        path: PathBuf,
        /// The sled key, printable.
        key: String,
    },
    /// The system's random generator failed.
    #[error("random generator: {0}")]
    Rng(String),
}

/// One message waiting for delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// Outbox sequence number (unique, increasing).
    pub seq: u64,
    /// The message id (idempotency key).
    pub message_id: String,
    /// The patient it is about (for the MQTT topic).
    pub patient: Arc<str>,
    /// The message (JSON).
    #[serde(with = "text")]
    pub bytes: Arc<[u8]>,
    /// When it was created (gateway clock).
    pub created: Timestamp,
    /// The sinks that still have to take it, by name.
    pub sinks: BTreeSet<String>,
}

/// Messages are JSON text; stored as a JSON string inside the sealed
/// JSON of their entry.
mod text {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(bytes: &Arc<[u8]>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&String::from_utf8_lossy(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<[u8]>, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Arc::from(s.into_bytes()))
    }
}

/// The lifecycle state stored beside the messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    /// The next sequence number.
    pub next_seq: u64,
    /// The alert lifecycle.
    pub book: AlertBook,
}

/// Where the outbox keeps its copy.
enum Backing {
    /// A sled database and the key its values are sealed with.
    Disk {
        path: PathBuf,
        /// `None` after a failed write: sled stays failing after ENOSPC
        /// even once space returns, so the next save reopens it.
        db: Option<sled::Db>,
        cipher: Box<ChaCha20Poly1305>,
    },
    /// Nothing kept across restarts (tests, and a gateway configured
    /// without a state directory).
    Memory,
}

/// The outbox. See the module documentation.
pub struct Outbox {
    backing: Backing,
    entries: BTreeMap<u64, Pending>,
    /// Entries changed (added, or a sink delivered) since the last save;
    /// a removed entry is here too and absent from `entries`.
    changed: BTreeSet<u64>,
    /// A save failed: everything is written again at the next one.
    unsaved: bool,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("pending", &self.entries.len())
            .field("unsaved", &self.unsaved)
            .finish()
    }
}

impl Outbox {
    /// An outbox that keeps nothing across restarts.
    pub fn in_memory() -> Outbox {
        Outbox {
            backing: Backing::Memory,
            entries: BTreeMap::new(),
            changed: BTreeSet::new(),
            unsaved: false,
        }
    }

    /// Open (or create) the outbox in `path`, sealed with `key`; returns it
    /// with the state last saved (default when new).
    pub fn open(path: &Path, key: &[u8; 32]) -> Result<(Outbox, State), OutboxError> {
        let db = open_db(path)?;
        let cipher = Box::new(ChaCha20Poly1305::new(key.into()));
        let mut outbox = Outbox {
            backing: Backing::Disk {
                path: path.to_owned(),
                db: Some(db),
                cipher,
            },
            entries: BTreeMap::new(),
            changed: BTreeSet::new(),
            unsaved: false,
        };
        let state = outbox.load()?;
        Ok((outbox, state))
    }

    fn load(&mut self) -> Result<State, OutboxError> {
        let Backing::Disk {
            path,
            db: Some(db),
            cipher,
        } = &self.backing
        else {
            return Ok(State::default());
        };
        let storage = |e: sled::Error| OutboxError::Storage {
            path: path.clone(),
            detail: e.to_string(),
        };
        let state = match db.get(STATE_KEY).map_err(storage)? {
            Some(v) => open_json(cipher, path, STATE_KEY, &v)?,
            None => State::default(),
        };
        for kv in db.scan_prefix([MESSAGE_PREFIX]) {
            let (k, v) = kv.map_err(storage)?;
            let p: Pending = open_json(cipher, path, &k, &v)?;
            self.entries.insert(p.seq, p);
        }
        Ok(state)
    }

    /// Add a message (saved at the next [`Outbox::save`]).
    pub fn push(&mut self, pending: Pending) {
        self.changed.insert(pending.seq);
        self.entries.insert(pending.seq, pending);
    }

    /// Sink `sink` took message `seq`. Returns the message id when this was
    /// news (the message was waiting for that sink).
    pub fn delivered(&mut self, seq: u64, sink: &str) -> Option<String> {
        let entry = self.entries.get_mut(&seq)?;
        if !entry.sinks.remove(sink) {
            return None;
        }
        let id = entry.message_id.clone();
        if entry.sinks.is_empty() {
            self.entries.remove(&seq);
        }
        self.changed.insert(seq);
        Some(id)
    }

    /// Forget sinks no longer configured (their messages would wait for
    /// ever); returns how many deliveries were dropped that way.
    pub fn retain_sinks(&mut self, known: &BTreeSet<String>) -> usize {
        let mut dropped = 0;
        let mut emptied = Vec::new();
        for (seq, e) in &mut self.entries {
            let before = e.sinks.len();
            e.sinks.retain(|s| known.contains(s));
            if e.sinks.len() != before {
                dropped += before - e.sinks.len();
                self.changed.insert(*seq);
            }
            if e.sinks.is_empty() {
                emptied.push(*seq);
            }
        }
        for seq in emptied {
            self.entries.remove(&seq);
        }
        dropped
    }

    /// Every message still waiting, oldest first.
    pub fn pending(&self) -> impl Iterator<Item = &Pending> + Clone {
        self.entries.values()
    }

    /// A waiting message.
    pub fn get(&self, seq: u64) -> Option<&Pending> {
        self.entries.get(&seq)
    }

    /// Messages still waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the last save failed (what is in memory is not all on disk).
    pub fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// Write the changes and `state` in one atomic batch and flush it to
    /// disk. Blocking (it fsyncs): call it off the async workers. On error
    /// nothing in memory is lost; the next save writes everything again.
    pub fn save(&mut self, state: &State) -> Result<(), OutboxError> {
        let Backing::Disk { path, db, cipher } = &mut self.backing else {
            self.changed.clear();
            return Ok(());
        };
        if db.is_none() {
            *db = Some(open_db(path).inspect_err(|_| self.unsaved = true)?);
        }
        let Some(db) = db.as_ref() else {
            return Ok(());
        };
        let mut batch = sled::Batch::default();
        let seqs: Vec<u64> = if self.unsaved {
            // After a failure sled may hold any prefix of what was asked:
            // write all we know, and remove what we no longer hold.
            let stale = db.scan_prefix([MESSAGE_PREFIX]).keys().filter_map(|k| {
                let k = k.ok()?;
                let seq = seq_of(&k)?;
                (!self.entries.contains_key(&seq)).then_some(seq)
            });
            stale.chain(self.entries.keys().copied()).collect()
        } else {
            self.changed.iter().copied().collect()
        };
        for seq in seqs {
            let key = message_key(seq);
            match self.entries.get(&seq) {
                Some(p) => batch.insert(&key[..], seal_json(cipher, &key, p)?),
                None => batch.remove(&key[..]),
            }
        }
        batch.insert(STATE_KEY, seal_json(cipher, STATE_KEY, state)?);
        let written = db
            .apply_batch(batch)
            .and_then(|()| db.flush().map(|_| ()))
            .map_err(|e| OutboxError::Storage {
                path: path.clone(),
                detail: e.to_string(),
            });
        match written {
            Ok(()) => {
                self.changed.clear();
                self.unsaved = false;
                Ok(())
            }
            Err(e) => {
                self.unsaved = true;
                if let Backing::Disk { db, .. } = &mut self.backing {
                    *db = None;
                }
                Err(e)
            }
        }
    }
}

/// Open the outbox's sled (a small cache: a few alerts a day), waiting
/// for a lock our own dropped handle may still hold.
fn open_db(path: &Path) -> Result<sled::Db, OutboxError> {
    vitalgate_chain::ledger::open_sled(path, 1024 * 1024).map_err(|e| OutboxError::Storage {
        path: path.to_owned(),
        detail: if vitalgate_chain::ledger::is_locked(&e) {
            "in use by another process (a running gateway?); stop it first".into()
        } else {
            e.to_string()
        },
    })
}

fn message_key(seq: u64) -> [u8; 9] {
    let mut k = [MESSAGE_PREFIX; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(key: &[u8]) -> Option<u64> {
    match key {
        [MESSAGE_PREFIX, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// `0x01 ‖ nonce (12) ‖ ChaCha20-Poly1305(JSON of value, AAD = sled key)`.
fn seal_json<T: Serialize>(
    cipher: &ChaCha20Poly1305,
    key: &[u8],
    value: &T,
) -> Result<Vec<u8>, OutboxError> {
    let plain = zeroize::Zeroizing::new(serde_json::to_vec(value).unwrap_or_default());
    let mut nonce = [0u8; NONCE_LEN];
    SysRng
        .try_fill_bytes(&mut nonce)
        .map_err(|e| OutboxError::Rng(e.to_string()))?;
    let sealed = cipher
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &plain,
                aad: key,
            },
        )
        .map_err(|_| OutboxError::Rng("encryption failed".into()))?;
    let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
    out.push(SEALED_V1);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok(out)
}

fn open_json<T: for<'de> Deserialize<'de>>(
    cipher: &ChaCha20Poly1305,
    path: &Path,
    key: &[u8],
    value: &[u8],
) -> Result<T, OutboxError> {
    let refused = || OutboxError::Sealed {
        path: path.to_owned(),
        key: key.escape_ascii().to_string(),
    };
    let [SEALED_V1, rest @ ..] = value else {
        return Err(refused());
    };
    if rest.len() < NONCE_LEN {
        return Err(refused());
    }
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| refused())?;
    let plain = cipher
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: key,
            },
        )
        .map_err(|_| refused())?;
    let plain = zeroize::Zeroizing::new(plain);
    serde_json::from_slice(&plain).map_err(|_| refused())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(seq: u64, sinks: &[&str]) -> Pending {
        Pending {
            seq,
            message_id: format!("a#{seq}"),
            patient: "p-1".into(),
            bytes: Arc::from(&br#"{"spo2":81}"#[..]),
            created: Timestamp(1_000 + seq as i64),
            sinks: sinks.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn the_outbox_key_is_derived_as_documented() {
        // docs/FORMAT.md, "Alert outbox".
        let seed: [u8; 32] = std::array::from_fn(|i| i as u8);
        let key =
            vitalgate_chain::crypto::keys::IdentityKey::from_seed(&seed).derive_secret(KEY_INFO);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "9192496916024dd49b0842364ff05fee2787a6a2ec707decd0190a3533296da7"
        );
    }

    #[test]
    fn what_was_saved_comes_back_after_a_reopen_and_delivered_messages_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let key = [7u8; 32];
        {
            let (mut o, state) = Outbox::open(dir.path(), &key).unwrap();
            assert_eq!(state.next_seq, 0);
            o.push(pending(0, &["mqtt", "webhook"]));
            o.push(pending(1, &["mqtt"]));
            let state = State {
                next_seq: 2,
                book: AlertBook::default(),
            };
            o.save(&state).unwrap();
            assert_eq!(o.delivered(1, "mqtt").as_deref(), Some("a#1"));
            assert_eq!(o.delivered(1, "mqtt"), None, "once");
            assert_eq!(o.delivered(0, "mqtt").as_deref(), Some("a#0"));
            o.save(&state).unwrap();
        }
        let (o, state) = Outbox::open(dir.path(), &key).unwrap();
        assert_eq!(state.next_seq, 2);
        let left: Vec<_> = o.pending().cloned().collect();
        assert_eq!(left, vec![pending(0, &["webhook"])]);
    }

    #[test]
    fn nothing_readable_is_written_and_another_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut o, _) = Outbox::open(dir.path(), &[1u8; 32]).unwrap();
            o.push(pending(0, &["mqtt"]));
            o.save(&State::default()).unwrap();
        }
        for f in walk(dir.path()) {
            let bytes = std::fs::read(&f).unwrap();
            assert!(
                !bytes.windows(4).any(|w| w == b"spo2"),
                "plaintext in {}",
                f.display()
            );
        }
        let e = Outbox::open(dir.path(), &[2u8; 32]).unwrap_err();
        assert!(matches!(e, OutboxError::Sealed { .. }), "{e}");
        assert!(e.to_string().contains("move the folder aside"), "{e}");
    }

    #[test]
    fn a_sink_no_longer_configured_stops_holding_messages() {
        let mut o = Outbox::in_memory();
        o.push(pending(0, &["old"]));
        o.push(pending(1, &["old", "mqtt"]));
        let known = ["mqtt".to_string()].into_iter().collect();
        assert_eq!(o.retain_sinks(&known), 2);
        assert_eq!(o.len(), 1);
        assert_eq!(o.get(1).unwrap().sinks.len(), 1);
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }
}
