//! The ledger's commands — keys, verification, reading back, export,
//! proofs — acknowledging an alert, and provisioning a gateway (its keys,
//! enrolment record, backup and restore).
//!
//! They live in the binary (errors are `anyhow` here, at the edge); the
//! work itself is in `vitalgate-chain`.

pub mod ack;
pub mod backup;
pub mod export;
pub mod fhir;
pub mod init;
pub mod keygen;
pub mod open;
pub mod prove;
pub mod readings;
pub mod verify;

use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use vitalgate::Config;
use vitalgate_chain::crypto::keys::{IdentityKey, IdentityPublic};

/// Where the ledger is: a configuration file's `[chain]`, or a directory.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct LedgerArgs {
    /// The gateway's configuration (uses its [chain] directory and identity).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// A ledger directory (for example a copy taken from a gateway).
    #[arg(long)]
    pub ledger: Option<PathBuf>,
}

impl LedgerArgs {
    /// The ledger directory, and the configuration if one was given.
    pub fn resolve(&self) -> Result<(PathBuf, Option<Config>)> {
        match (&self.config, &self.ledger) {
            (Some(c), _) => {
                let config = Config::load(c).map_err(anyhow::Error::msg)?;
                Ok((config.chain.directory.clone(), Some(config)))
            }
            (None, Some(dir)) => Ok((dir.clone(), None)),
            (None, None) => anyhow::bail!("give --config or --ledger"),
        }
    }
}

/// The gateway's public key: its text form (`ed25519:...`), a file holding
/// that text (`identity.key.pub`), or, with a configuration, derived from
/// the identity key it names.
pub fn gateway_key(given: Option<&str>, config: Option<&Config>) -> Result<IdentityPublic> {
    match (given, config) {
        (Some(text), _) if text.starts_with("ed25519:") => text
            .parse()
            .map_err(|e| anyhow::anyhow!("--gateway-key: {e}")),
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the gateway key file {path}"))?;
            text.trim()
                .parse()
                .map_err(|e| anyhow::anyhow!("{path}: {e}"))
        }
        (None, Some(config)) => Ok(IdentityKey::load(&config.chain.identity)?.public()),
        (None, None) => anyhow::bail!(
            "give --gateway-key (\"ed25519:...\" or the identity's .pub file) to check against"
        ),
    }
}
