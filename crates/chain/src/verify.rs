//! Checking a whole ledger with nothing but the gateway's public key.
//!
//! The walk goes block by block from height 0 and stops at the first
//! problem, naming the height and what kind of damage it is, because the
//! first break is what an auditor needs: everything before it is proven,
//! nothing after it can be trusted.

use crate::block::{BlockHeader, TreeHead, block_hash};
use crate::crypto::cose::Sign1;
use crate::crypto::keys::{IdentityPublic, KeyId};
use crate::ledger::LedgerError;
use crate::merkle::{self, Frontier, Hash};
use crate::reader::{LedgerReader, LogState};
use serde::Serialize;
use std::fmt;

/// The kinds of damage `verify` tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Problem {
    /// Bytes changed: a signature, a hash link or a Merkle root fails.
    Altered,
    /// A block or record is absent from the middle of the chain.
    Missing,
    /// A block is stored at another position than it was signed for.
    Reordered,
    /// The end of the chain is gone: the log says there was more.
    Truncated,
    /// Signed by another gateway key than the one given.
    WrongKey,
}

impl Problem {
    /// The name printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::Altered => "altered",
            Problem::Missing => "missing",
            Problem::Reordered => "reordered",
            Problem::Truncated => "truncated",
            Problem::WrongKey => "wrong key",
        }
    }
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The first bad block height (none for a ledger-wide problem).
    pub height: Option<u64>,
    /// What kind of damage.
    pub problem: Problem,
    /// What exactly.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.height {
            Some(h) => write!(f, "block {h}: {}: {}", self.problem.as_str(), self.detail),
            None => write!(f, "{}: {}", self.problem.as_str(), self.detail),
        }
    }
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Sealed blocks.
    pub blocks: u64,
    /// Records in sealed blocks.
    pub records: u64,
    /// Readings in sealed blocks (as the signed headers count them).
    pub readings: u64,
    /// Signed tree heads checked.
    pub tree_heads: u64,
    /// The log's root over all sealed blocks (hex).
    pub root: String,
    /// Records of the block still open (written, encrypted, not yet sealed).
    pub open_records: u64,
}

/// Verification could not run, or found a problem.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The ledger could not be read at all.
    #[error(transparent)]
    Storage(#[from] LedgerError),
    /// The first problem in the chain.
    #[error("{0}")]
    Invalid(Finding),
}

fn finding(height: Option<u64>, problem: Problem, detail: impl Into<String>) -> VerifyError {
    VerifyError::Invalid(Finding {
        height,
        problem,
        detail: detail.into(),
    })
}

/// Check the whole ledger: every header's signature and position, every
/// hash link, every block's records against its root, the log state, and
/// every signed tree head against the log.
pub fn verify(reader: &LedgerReader, key: &IdentityPublic) -> Result<Summary, VerifyError> {
    let kid = key.kid();
    let gateway = reader
        .gateway()
        .map_err(|e| damaged(e, "the ledger's metadata"))?;
    if let Some(found) = gateway
        && found != kid
    {
        return Err(finding(
            None,
            Problem::WrongKey,
            format!("the ledger belongs to gateway key {found}, not to the key given ({kid})"),
        ));
    }
    let mut leaves: Vec<Hash> = Vec::new();
    let mut prev = [0u8; 32];
    let mut summary = Summary {
        blocks: 0,
        records: 0,
        readings: 0,
        tree_heads: 0,
        root: String::new(),
        open_records: 0,
    };
    for item in reader.headers() {
        let (stored_at, signed) = item?;
        let expected = leaves.len() as u64;
        if stored_at > expected {
            return Err(finding(
                Some(expected),
                Problem::Missing,
                format!("block {expected} is absent; the next stored block is {stored_at}"),
            ));
        }
        let header = check_header(&signed, stored_at, &kid, key)?;
        if header.height != stored_at {
            return Err(finding(
                Some(stored_at),
                Problem::Reordered,
                format!(
                    "the block stored at height {stored_at} was signed for height {}",
                    header.height
                ),
            ));
        }
        if header.prev != prev {
            return Err(finding(
                Some(stored_at),
                Problem::Altered,
                format!(
                    "its link to block {} does not match that block's hash (the previous block was replaced, or this one belongs to another history)",
                    stored_at.saturating_sub(1)
                ),
            ));
        }
        check_records(reader, &header)?;
        prev = block_hash(&signed);
        leaves.push(merkle::leaf_hash(&prev));
        summary.blocks += 1;
        summary.records += u64::from(header.records);
        summary.readings += header.readings;
    }
    check_open_block(reader, &leaves, &prev, &mut summary)?;
    check_tree_heads(reader, key, &leaves, &mut summary)?;
    summary.root = hex(&merkle::root(&leaves));
    Ok(summary)
}

/// A stored value the ledger itself reads (metadata, log state) that no
/// longer parses is damage to report, not a reason verification cannot
/// run: the walk can still name it.
fn damaged(e: LedgerError, what: &str) -> VerifyError {
    match e {
        LedgerError::Corrupt { detail, .. } => finding(
            None,
            Problem::Altered,
            format!("{what} cannot be read: {detail}"),
        ),
        e => VerifyError::Storage(e),
    }
}

fn check_header(
    signed: &[u8],
    height: u64,
    kid: &KeyId,
    key: &IdentityPublic,
) -> Result<BlockHeader, VerifyError> {
    let (sign1, header) = BlockHeader::decode(signed).map_err(|e| {
        finding(
            Some(height),
            Problem::Altered,
            format!("the header cannot be read: {e}"),
        )
    })?;
    check_signature(&sign1, kid, key).map_err(|(problem, detail)| {
        finding(Some(height), problem, format!("the header {detail}"))
    })?;
    if header.gateway != *kid {
        return Err(finding(
            Some(height),
            Problem::WrongKey,
            format!(
                "the header names gateway {}, not the gateway key given ({kid})",
                header.gateway
            ),
        ));
    }
    Ok(header)
}

/// Tell "signed by another key" from "altered". The kid sits in the
/// unprotected header, outside what is signed: a changed kid over a
/// signature the given key still verifies is an alteration, and only a
/// signature that fails under the given key while naming another kid is
/// another gateway's.
fn check_signature(
    sign1: &Sign1,
    kid: &KeyId,
    key: &IdentityPublic,
) -> Result<(), (Problem, String)> {
    if sign1.kid != *kid {
        let mut as_ours = sign1.clone();
        as_ours.kid = *kid;
        if as_ours.verify(key).is_ok() {
            return Err((
                Problem::Altered,
                format!(
                    "is signed by the gateway key given ({kid}) but names key {} in its unprotected header: the kid was altered",
                    sign1.kid
                ),
            ));
        }
        return Err((
            Problem::WrongKey,
            format!(
                "is signed by key {}, not by the gateway key given ({kid})",
                sign1.kid
            ),
        ));
    }
    sign1.verify(key).map_err(|e| {
        (
            Problem::Altered,
            format!("has a signature that does not verify ({e}): it was altered"),
        )
    })
}

fn check_records(reader: &LedgerReader, header: &BlockHeader) -> Result<(), VerifyError> {
    let h = header.height;
    let stored = reader.records(h)?;
    for (i, r) in stored.iter().enumerate() {
        if r.index != i as u32 {
            return Err(finding(
                Some(h),
                Problem::Missing,
                format!(
                    "record {i} is absent (the next stored record is {})",
                    r.index
                ),
            ));
        }
    }
    let count = stored.len() as u64;
    let signed = u64::from(header.records);
    if count < signed {
        return Err(finding(
            Some(h),
            Problem::Missing,
            format!("the header lists {signed} records but only {count} are stored"),
        ));
    }
    if count > signed {
        return Err(finding(
            Some(h),
            Problem::Altered,
            format!(
                "{} records were added after sealing (the header lists {signed})",
                count - signed
            ),
        ));
    }
    let leaves: Vec<Hash> = stored.iter().map(|r| merkle::leaf_hash(&r.bytes)).collect();
    if merkle::root(&leaves) != header.records_root {
        return Err(finding(
            Some(h),
            Problem::Altered,
            "its records do not match the root in its signed header: a record was altered or reordered",
        ));
    }
    Ok(())
}

fn check_open_block(
    reader: &LedgerReader,
    leaves: &[Hash],
    last: &Hash,
    summary: &mut Summary,
) -> Result<(), VerifyError> {
    let blocks = leaves.len() as u64;
    let state = reader.state().map_err(|e| damaged(e, "the log state"))?;
    if let Some(state) = state {
        if state.size > blocks {
            return Err(finding(
                Some(blocks),
                Problem::Truncated,
                format!(
                    "the log state records {} blocks but the chain ends after {blocks}",
                    state.size
                ),
            ));
        }
        if state.size < blocks {
            return Err(finding(
                Some(state.size),
                Problem::Altered,
                format!(
                    "blocks from {} on are beyond what the log state records ({})",
                    state.size, state.size
                ),
            ));
        }
        check_state_edge(&state, leaves, last)?;
    } else if blocks > 0 {
        return Err(finding(None, Problem::Altered, "the log state is missing"));
    }
    if let Some(extra) = reader.records_from(blocks)? {
        return Err(finding(
            Some(extra),
            Problem::Altered,
            format!("sealed records are stored for block {extra}, which is not sealed"),
        ));
    }
    // Records of the open block (or of a block a crash left open) are
    // written, encrypted, but not yet sealed: counted, not judged.
    for record in reader.pending() {
        let record = record?;
        if record.height != blocks {
            return Err(finding(
                Some(record.height),
                Problem::Altered,
                format!(
                    "a pending record is stored for block {}, not for the open block {blocks}",
                    record.height
                ),
            ));
        }
        summary.open_records += 1;
    }
    Ok(())
}

/// The state's last hash and frontier are unsigned, and the next seal
/// builds on them (its tree head's root comes from the frontier), so they
/// must be exactly the chain's: a wrong frontier would get the next tree
/// head signed over a log that is not this one.
fn check_state_edge(state: &LogState, leaves: &[Hash], last: &Hash) -> Result<(), VerifyError> {
    if state.last != *last {
        return Err(finding(
            None,
            Problem::Altered,
            format!(
                "the log state's last block hash does not match block {}",
                state.size.saturating_sub(1)
            ),
        ));
    }
    if state.frontier != Frontier::from_leaves(leaves).nodes() {
        return Err(finding(
            None,
            Problem::Altered,
            "the log state's frontier does not match the chain's block log",
        ));
    }
    Ok(())
}

fn check_tree_heads(
    reader: &LedgerReader,
    key: &IdentityPublic,
    leaves: &[Hash],
    summary: &mut Summary,
) -> Result<(), VerifyError> {
    let kid = key.kid();
    let blocks = leaves.len() as u64;
    let mut latest = 0;
    // Tree heads come in size order; one frontier grown through the log
    // gives each one's root in O(log n), where a root per head over its
    // prefix would make verification quadratic in the number of blocks.
    let mut log = Frontier::new();
    for item in reader.tree_heads() {
        let (size, signed) = item?;
        let unreadable = |e: String| {
            finding(
                None,
                Problem::Altered,
                format!("the tree head for size {size} cannot be read: {e}"),
            )
        };
        let sign1 = Sign1::decode(&signed).map_err(|e| unreadable(e.to_string()))?;
        let head = TreeHead::from_payload(&sign1.payload).map_err(|e| unreadable(e.to_string()))?;
        check_signature(&sign1, &kid, key).map_err(|(problem, detail)| {
            finding(
                None,
                problem,
                format!("the tree head for size {size} {detail}"),
            )
        })?;
        if head.size != size {
            return Err(finding(
                None,
                Problem::Reordered,
                format!(
                    "the tree head stored for size {size} was signed for size {}",
                    head.size
                ),
            ));
        }
        if size > blocks {
            return Err(finding(
                Some(blocks),
                Problem::Truncated,
                format!(
                    "a signed tree head covers {size} blocks but the chain ends after {blocks}"
                ),
            ));
        }
        while log.size() < size {
            let Some(leaf) = leaves.get(log.size() as usize) else {
                break;
            };
            log.push(*leaf);
        }
        if log.root() != head.root {
            return Err(finding(
                None,
                Problem::Altered,
                format!(
                    "the chain's first {size} blocks do not match the root the gateway signed for that size"
                ),
            ));
        }
        latest = latest.max(size);
        summary.tree_heads += 1;
    }
    if latest < blocks {
        return Err(finding(
            Some(latest),
            Problem::Missing,
            format!("no signed tree head covers blocks {latest}..{blocks}"),
        ));
    }
    Ok(())
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
