//! vitalgate's ledger: every reading (and every alert event, as an audit
//! trail) encrypted inside a signed, hash-linked block, and the blocks
//! logged in an RFC 9162 Merkle tree whose signed tree heads can be
//! anchored elsewhere.
//!
//! This crate is the format and its proofs, free of the daemon's runtime,
//! so a verifier (or an auditor's tool) builds in seconds.

/// The local block log checked against the tree heads it anchored on chain.
pub mod anchored;
pub mod block;
pub mod cbor;
pub mod content;
pub mod crypto;
pub mod decrypt;
pub mod ledger;
pub mod merkle;
pub mod packing;
pub mod proof;
pub mod reader;
pub mod verify;

pub use block::{BlockHeader, SealReason, TreeHead};
pub use content::{Alert, AlertMessage, RecordContent};
pub use ledger::{Ledger, LedgerError, SealPolicy, Sealed};
pub use reader::LedgerReader;
