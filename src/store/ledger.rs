//! The ledger as the storage stage's backend.

use super::{Maintained, ReadingStore, StoreError};
use crate::config::ChainConfig;
use std::sync::Arc;
use vitalgate_chain::crypto::keys::{IdentityKey, KeyError};
use vitalgate_chain::{AlertMessage, Ledger, LedgerError, SealReason};
use vitalgate_devices::{Reading, Timestamp, Vital};

/// The ledger could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum LedgerSetupError {
    /// The identity key could not be loaded.
    #[error("chain.identity: {0}")]
    Identity(#[from] KeyError),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Open the configured ledger (sealing a block a crash left open).
pub fn open_ledger(config: &ChainConfig) -> Result<Ledger, LedgerSetupError> {
    let identity = IdentityKey::load(&config.identity)?;
    if let Some(parent) = config.directory.parent() {
        std::fs::create_dir_all(parent).map_err(|e| LedgerError::Storage {
            path: config.directory.clone(),
            detail: format!("cannot create its parent folder: {e}"),
        })?;
    }
    let ledger = Ledger::open(
        &config.directory,
        identity,
        config.recipients.clone(),
        config.seal,
    )?;
    tracing::info!(
        path = %config.directory.display(),
        blocks = ledger.blocks(),
        recipients = config.recipients.len(),
        "ledger open"
    );
    Ok(ledger)
}

fn store_error(e: LedgerError) -> StoreError {
    match e {
        LedgerError::Full { .. } => StoreError::Full(e.to_string()),
        e => StoreError::Io(e.to_string()),
    }
}

impl ReadingStore for Ledger {
    fn append(&mut self, batches: &[&[Reading]]) -> Result<(), StoreError> {
        Ledger::append(self, batches, crate::clock::now()).map_err(store_error)
    }

    fn append_alerts(&mut self, messages: &[&[u8]]) -> Result<(), StoreError> {
        // The alert stage renders every message as the ledger wants it; one
        // that is not would be refused again on every retry and block the
        // trail behind it, so it is named and left out instead.
        let valid: Vec<&[u8]> = messages
            .iter()
            .copied()
            .filter(|m| match AlertMessage::new(m) {
                Ok(_) => true,
                Err(e) => {
                    tracing::error!(error = %e, bytes = m.len(), "an alert message the ledger cannot record; left out of the audit trail");
                    false
                }
            })
            .collect();
        if valid.is_empty() {
            return Ok(());
        }
        Ledger::append_alerts(self, &valid, crate::clock::now()).map_err(store_error)
    }

    fn maintain(&mut self) -> Result<Maintained, StoreError> {
        match self.seal_if_due(crate::clock::now()).map_err(store_error)? {
            Some(sealed) => {
                tracing::info!(
                    height = sealed.header.height,
                    readings = sealed.header.readings,
                    records = sealed.header.records,
                    reason = sealed.header.reason.as_str(),
                    "block sealed"
                );
                Ok(Maintained {
                    sealed: 1,
                    tree_head: Some(sealed.signed_tree_head.into()),
                })
            }
            None => Ok(Maintained::default()),
        }
    }

    fn close(&mut self) -> Result<Maintained, StoreError> {
        let sealed = self
            .seal(SealReason::Shutdown, crate::clock::now())
            .map_err(store_error)?;
        if let Some(s) = &sealed {
            tracing::info!(
                height = s.header.height,
                readings = s.header.readings,
                "open block sealed at shutdown"
            );
        }
        Ok(Maintained {
            sealed: u64::from(sealed.is_some()),
            tree_head: sealed.map(|s| s.signed_tree_head.into()),
        })
    }

    fn watermarks(&self) -> Vec<(Arc<str>, Vital, Timestamp)> {
        Ledger::watermarks(self)
            .map(|(d, v, t)| (Arc::clone(d), v, t))
            .collect()
    }

    fn blocks(&self) -> u64 {
        Ledger::blocks(self)
    }

    fn tree_head(&self) -> Option<Arc<[u8]>> {
        match self.latest_tree_head() {
            Ok(head) => head.map(Into::into),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the newest signed tree head; anchoring waits for the next seal");
                None
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.size_on_disk()
    }
}
