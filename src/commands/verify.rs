//! `vitalgate verify`: check the whole ledger with the gateway's public key.

use super::{LedgerArgs, gateway_key};
use anyhow::{Context, Result};
use clap::Args;
use std::process::ExitCode;
use vitalgate::anchor::config::BackendSettings;
use vitalgate::anchor::https::{HttpsAnchorConfig, HttpsAnchorer};
use vitalgate::anchor::registry::{Registry, redact};
use vitalgate::config::Config;
use vitalgate::deliver::signature::Secret;
use vitalgate_chain::LedgerReader;
use vitalgate_chain::anchored::{AnchoredHead, check_anchored};
use vitalgate_chain::crypto::keys::IdentityPublic;
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
    /// Also read this gateway's anchors from the consultation chain and
    /// prove the ledger consistent with every one (RFC 9162): a history
    /// rewritten after an anchor is caught, with the anchor named. The
    /// chain comes from the configuration's [anchor.evm] or the options
    /// below; no account key is needed.
    #[arg(long)]
    anchors: bool,
    /// The consultation chain's JSON-RPC URL (overrides the configuration).
    #[arg(long, requires = "anchors")]
    rpc_url: Option<String>,
    /// The anchor registry's address (overrides the configuration).
    #[arg(long, requires = "anchors")]
    registry: Option<String>,
    /// The block to read anchors from (default: the configuration's
    /// from_block, else 0).
    #[arg(long, requires = "anchors")]
    from_block: Option<u64>,
}

/// Verify; the exit code says the outcome (see `VALID`, `INVALID`).
pub fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let (dir, config) = args.ledger.resolve()?;
    let key = gateway_key(args.gateway_key.as_deref(), config.as_ref())?;
    let reader = LedgerReader::open(&dir)?;
    match verify::verify(&reader, &key) {
        Ok(summary) if args.anchors => {
            let chain = AnchorSource::resolve(args, config.as_ref())?;
            let anchored = chain.read(&key)?;
            let report = check_anchored(&reader.log_leaves()?, &key, &anchored);
            let valid = report.anchors.iter().all(|a| a.outcome.agrees());
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({"valid": valid, "summary": summary, "anchors": report, "source": chain.describe()})
                );
            } else {
                let verdict = if valid { "valid" } else { "INVALID" };
                println!(
                    "{}: {verdict} — {report} ({})",
                    dir.display(),
                    chain.describe()
                );
                for check in report.anchors.iter().filter(|c| !c.outcome.agrees()) {
                    println!("  {check}");
                }
            }
            Ok(ExitCode::from(if valid { VALID } else { INVALID }))
        }
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

/// Where the anchors are read from.
enum AnchorSource {
    /// The registry on an EVM chain (no account needed).
    Evm {
        rpc_url: String,
        registry: alloy::primitives::Address,
        from_block: u64,
    },
    /// An HTTPS consultation service (its shared secret signs the request).
    Https(Box<HttpsAnchorer>),
}

impl AnchorSource {
    /// The command line's choices over the configuration's [anchor].
    fn resolve(args: &VerifyArgs, config: Option<&Config>) -> Result<AnchorSource> {
        let backend = config.and_then(|c| c.anchor.as_ref()).map(|a| &a.backend);
        if let (Some(BackendSettings::Https(h)), None) = (backend, &args.rpc_url) {
            let secret = Secret::load(&h.secret_file)
                .map_err(|e| anyhow::anyhow!("anchor.https.secret_file: {e}"))?;
            let service = HttpsAnchorer::new(HttpsAnchorConfig {
                url: h.url.clone(),
                secret,
                ca_file: h.ca_file.clone(),
                timeout: h.timeout,
            })?;
            return Ok(AnchorSource::Https(Box::new(service)));
        }
        let evm = match backend {
            Some(BackendSettings::Evm(e)) => Some(e),
            _ => None,
        };
        let rpc_url = args
            .rpc_url
            .clone()
            .or_else(|| evm.map(|e| e.rpc_url.clone()))
            .context("--anchors needs the chain: give --rpc-url and --registry, or a --config with [anchor]")?;
        let registry = match (&args.registry, evm) {
            (Some(text), _) => text.parse().map_err(|_| {
                anyhow::anyhow!("--registry `{text}` is not an address (0x and 40 hex digits)")
            })?,
            (None, Some(e)) => e.registry,
            (None, None) => anyhow::bail!(
                "--anchors needs the registry: give --registry or a --config with [anchor.evm]"
            ),
        };
        Ok(AnchorSource::Evm {
            rpc_url,
            registry,
            from_block: args.from_block.or(evm.map(|e| e.from_block)).unwrap_or(0),
        })
    }

    fn describe(&self) -> String {
        match self {
            AnchorSource::Evm {
                rpc_url, registry, ..
            } => format!("registry {registry} on {}", redact(rpc_url)),
            AnchorSource::Https(service) => format!("service {}", service.url()),
        }
    }

    /// This gateway's anchors, as the chain holds them.
    fn read(&self, key: &IdentityPublic) -> Result<Vec<AnchoredHead>> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        match self {
            AnchorSource::Evm {
                rpc_url,
                registry,
                from_block,
            } => {
                use alloy::providers::{Provider, ProviderBuilder};
                let url = rpc_url
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--rpc-url `{rpc_url}` is not a URL"))?;
                let provider = ProviderBuilder::new().connect_http(url).erased();
                let registry = Registry::new(*registry, provider, rpc_url);
                let gateway = alloy::primitives::B256::from(key.to_bytes());
                let events = runtime.block_on(registry.anchors(gateway, *from_block))?;
                Ok(events.iter().map(|e| e.anchored_head()).collect())
            }
            AnchorSource::Https(service) => Ok(runtime.block_on(service.anchors(&key.to_bytes()))?),
        }
    }
}
