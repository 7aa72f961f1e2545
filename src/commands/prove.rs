//! `vitalgate prove` and `vitalgate check-proof`.

use super::{LedgerArgs, gateway_key};
use anyhow::{Context, Result};
use clap::Args;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use vitalgate_chain::LedgerReader;
use vitalgate_chain::crypto::keys::RecipientKey;
use vitalgate_chain::proof::{self, Proof};

/// Arguments of `prove`.
#[derive(Args, Debug)]
pub struct ProveArgs {
    #[command(flatten)]
    ledger: LedgerArgs,
    /// Prove this block (height) is in the log.
    #[arg(long, group = "what")]
    block: Option<u64>,
    /// Prove this record (BLOCK/RECORD, as `vitalgate open` prints them)
    /// and its readings, or its alert message for an alert record
    /// (`open --alerts`); discloses that record's key, and only that one.
    #[arg(long, group = "what", value_parser = parse_record)]
    record: Option<(u64, u32)>,
    /// Prove the log at --size (latest by default) extends the log at this
    /// older size.
    #[arg(long, group = "what")]
    consistency: Option<u64>,
    /// A recipient's private key (needed for --record).
    #[arg(long)]
    identity: Option<PathBuf>,
    /// The tree size to prove against (a signed tree head's); the latest
    /// by default.
    #[arg(long)]
    size: Option<u64>,
}

fn parse_record(s: &str) -> Result<(u64, u32), String> {
    let (b, r) = s
        .split_once('/')
        .ok_or_else(|| format!("`{s}` is not BLOCK/RECORD, e.g. 12/3"))?;
    Ok((
        b.parse()
            .map_err(|_| format!("`{b}` is not a block height"))?,
        r.parse()
            .map_err(|_| format!("`{r}` is not a record index"))?,
    ))
}

/// Print the asked-for proof as JSON.
pub fn run(args: &ProveArgs) -> Result<ExitCode> {
    let (dir, _) = args.ledger.resolve()?;
    let reader = LedgerReader::open(&dir)?;
    let proof = match (args.block, args.record, args.consistency) {
        (Some(height), None, None) => proof::prove_block(&reader, height, args.size)?,
        (None, Some((height, index)), None) => {
            let path = args.identity.as_ref().context(
                "--record needs --identity, a recipient's private key, to derive the record's key",
            )?;
            let key = RecipientKey::load(path)?;
            proof::prove_record(&reader, height, index, &key, args.size)?
        }
        (None, None, Some(old)) => proof::prove_consistency(&reader, old, args.size)?,
        _ => anyhow::bail!("give one of --block, --record or --consistency"),
    };
    println!("{}", serde_json::to_string_pretty(&proof)?);
    Ok(ExitCode::SUCCESS)
}

/// Arguments of `check-proof`.
#[derive(Args, Debug)]
pub struct CheckProofArgs {
    /// The gateway's public key ("ed25519:..." or its .pub file).
    #[arg(long)]
    gateway_key: String,
    /// The proof (JSON, as `vitalgate prove` prints it); stdin when absent.
    file: Option<PathBuf>,
}

/// Check a proof offline; exit 0 when it holds, 1 when it does not.
pub fn check(args: &CheckProofArgs) -> Result<ExitCode> {
    let key = gateway_key(Some(&args.gateway_key), None)?;
    let mut text = String::new();
    match &args.file {
        Some(p) => {
            text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?
        }
        None => {
            std::io::stdin().read_to_string(&mut text)?;
        }
    }
    let proof: Proof = serde_json::from_str(&text).context("not a vitalgate proof")?;
    match proof::check(&proof, &key) {
        Ok(checked) => {
            println!("{}", serde_json::json!({"valid": true, "proves": checked}));
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!(
                "{}",
                serde_json::json!({"valid": false, "error": e.to_string()})
            );
            Ok(ExitCode::from(1))
        }
    }
}
