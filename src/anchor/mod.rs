//! Anchoring: the gateway's signed tree heads published on the hospital's
//! consultation chain, so anyone can check that its records existed at a
//! time and that its history was only appended to (docs/ANCHORING.md).

pub mod account;
pub mod backend;
pub mod config;
pub mod evm;
pub mod https;
pub mod outbox;
pub mod registry;
pub mod stage;

pub use stage::{AnchorSnapshot, AnchorStage, BackendConfig, Pace};

use crate::deliver::signature::{Secret, SecretError};
use account::{AccountKey, AccountKeyError};
use config::{AnchorConfig, BackendSettings};
use evm::EvmAnchorConfig;
use https::{HttpsAnchorConfig, HttpsAnchorer, HttpsSetupError};
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
    /// The HTTPS service's secret cannot be used.
    #[error("anchor.https.secret_file: {0}")]
    Secret(#[from] SecretError),
    /// The HTTPS service cannot be reached as configured.
    #[error(transparent)]
    Https(#[from] HttpsSetupError),
}

/// The configured anchor stage, resuming from its outbox. Nothing is
/// contacted yet: the chain may be unreachable at start.
pub fn setup(
    config: &AnchorConfig,
    identity: &Path,
    clock: crate::clock::Clock,
) -> Result<(AnchorStage, watch::Receiver<AnchorSnapshot>), AnchorSetupError> {
    let identity = IdentityKey::load(identity)?.public();
    let backend = match &config.backend {
        BackendSettings::Evm(e) => BackendConfig::Evm(Box::new(EvmAnchorConfig {
            rpc_url: e.rpc_url.clone(),
            chain_id: e.chain_id,
            registry: e.registry,
            account: AccountKey::load(&e.account_key)?,
            confirmations: e.confirmations,
            max_fee_per_gas: e.max_fee_per_gas,
            from_block: e.from_block,
        })),
        BackendSettings::Https(h) => {
            BackendConfig::Https(Box::new(HttpsAnchorer::new(HttpsAnchorConfig {
                url: h.url.clone(),
                secret: Secret::load(&h.secret_file)?,
                ca_file: h.ca_file.clone(),
                timeout: h.timeout,
            })?))
        }
    };
    let outbox = AnchorOutbox::open(&config.outbox)?;
    Ok(AnchorStage::new(
        config.pace,
        backend,
        outbox,
        identity,
        clock,
    ))
}
