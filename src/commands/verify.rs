//! `vitalgate verify`: check the whole ledger with the gateway's public key.

use super::{LedgerArgs, gateway_key};
use anyhow::Result;
use clap::Args;
use std::process::ExitCode;
use vitalgate_chain::LedgerReader;
use vitalgate_chain::verify::{self, VerifyError};

/// Exit code: the ledger is intact.
pub const VALID: u8 = 0;
/// Exit code: the ledger is damaged (the first problem is printed).
/// (Verification that cannot run — bad arguments, an unreadable ledger, a
/// ledger in use — exits 2, like every failing command.)
pub const INVALID: u8 = 1;

/// Arguments of `verify`.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// The gateway's public key ("ed25519:..." or its .pub file); with
    /// --config, taken from the configured identity when not given.
    #[arg(long)]
    gateway_key: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Verify; the exit code says the outcome (see `VALID`, `INVALID`).
pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let (dir, config) = args.ledger.resolve()?;
    let key = gateway_key(args.gateway_key.as_deref(), config.as_ref())?;
    let reader = LedgerReader::open(&dir)?;
    match verify::verify(&reader, &key) {
        Ok(summary) => {
            if args.json {
                println!("{}", serde_json::json!({"valid": true, "summary": summary}));
            } else {
                println!(
                    "{}: valid — {} blocks, {} records, {} readings, {} signed tree heads; log root {}{}",
                    dir.display(),
                    summary.blocks,
                    summary.records,
                    summary.readings,
                    summary.tree_heads,
                    summary.root,
                    if summary.open_records > 0 {
                        format!(
                            "; {} records in the open block (not sealed yet)",
                            summary.open_records
                        )
                    } else {
                        String::new()
                    }
                );
            }
            Ok(ExitCode::from(VALID))
        }
        Err(VerifyError::Invalid(finding)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "finding": finding})
                );
            } else {
                println!("{}: INVALID — {finding}", dir.display());
            }
            Ok(ExitCode::from(INVALID))
        }
        Err(VerifyError::Storage(e)) => Err(e.into()),
    }
}
