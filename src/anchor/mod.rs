//! Anchoring: the gateway's signed tree heads published on the hospital's
//! consultation chain, so anyone can check that its records existed at a
//! time and that its history was only appended to (docs/ANCHORING.md).

pub mod account;
pub mod backend;
pub mod config;
pub mod evm;
pub mod outbox;
pub mod registry;
pub mod stage;

pub use stage::{AnchorSnapshot, AnchorStage, BackendConfig, Pace};

use account::{AccountKey, AccountKeyError};
use config::AnchorConfig;
use evm::EvmAnchorConfig;
use outbox::{AnchorOutbox, AnchorOutboxError};
use std::path::Path;
use tokio::sync::watch;
use vitalgate_chain::crypto::keys::{IdentityKey, KeyError};

/// The anchor stage could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AnchorSetupError {
    /// The account key cannot be used.
    #[error("anchor.evm.account_key: {0}")]
    Account(#[from] AccountKeyError),
    /// The identity (whose tree heads are anchored) cannot be read.
    #[error("chain.identity: {0}")]
    Identity(#[from] KeyError),
    /// The outbox cannot be opened.
    #[error("anchor.outbox: {0}")]
    Outbox(#[from] AnchorOutboxError),
}

/// The configured anchor stage, resuming from its outbox. Nothing is
/// contacted yet: the chain may be unreachable at start.
pub fn setup(
    config: &AnchorConfig,
    identity: &Path,
    clock: crate::clock::Clock,
) -> Result<(AnchorStage, watch::Receiver<AnchorSnapshot>), AnchorSetupError> {
    let identity = IdentityKey::load(identity)?.public();
    let account = AccountKey::load(&config.evm.account_key)?;
    let e = &config.evm;
    let backend = BackendConfig::Evm(EvmAnchorConfig {
        rpc_url: e.rpc_url.clone(),
        chain_id: e.chain_id,
        registry: e.registry,
        account,
        confirmations: e.confirmations,
        max_fee_per_gas: e.max_fee_per_gas,
        from_block: e.from_block,
    });
    let outbox = AnchorOutbox::open(&config.outbox)?;
    Ok(AnchorStage::new(
        config.pace,
        backend,
        outbox,
        identity,
        clock,
    ))
}
