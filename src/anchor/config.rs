//! The `[anchor]` table: where the gateway anchors its tree heads, and how
//! often. Validated once at start, like the rest of the configuration; the
//! account key is only read when the gateway starts (and by
//! `check-config`).
//!
//! ```toml
//! [anchor]
//! interval_secs = 3600          # at most one anchor an hour (the newest head)
//! # outbox = "anchors"          # default: beside the ledger
//! # poll_secs = 15
//! # replace_after_secs = 180
//!
//! [anchor.evm]
//! rpc_url = "https://besu.hospital.example:8545"
//! chain_id = 1337
//! registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
//! account_key = "account.key"   # vitalgate keygen account account.key
//! # confirmations = 2
//! # max_fee_gwei = 100
//! # from_block = 0              # the registry's deployment block
//!
//! # or, for a consultation service that is not an EVM chain:
//! # [anchor.https]
//! # url = "https://consult.hospital.example/anchors"
//! # secret_file = "anchor.secret"   # Standard Webhooks HMAC secret
//! # ca_file = "hospital-ca.pem"
//! # timeout_secs = 10
//! ```

use super::stage::Pace;
use crate::config::ConfigError;
use alloy::primitives::Address;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The validated `[anchor]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorConfig {
    /// The anchor outbox's sled directory.
    pub outbox: PathBuf,
    /// When and how often.
    pub pace: Pace,
    /// Which chain.
    pub backend: BackendSettings,
}

/// `[anchor.evm]` or `[anchor.https]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendSettings {
    /// An EVM chain with the anchor registry.
    Evm(EvmSettings),
    /// A plain HTTPS JSON consultation service.
    Https(HttpsSettings),
}

/// `[anchor.https]`, validated (the secret not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// The service's anchoring endpoint.
    pub url: String,
    /// The shared HMAC secret file (mode 0600).
    pub secret_file: PathBuf,
    /// An extra CA bundle (a hospital's private CA).
    pub ca_file: Option<PathBuf>,
    /// Per request.
    pub timeout: Duration,
}

/// `[anchor.evm]`, validated (the key not yet read).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvmSettings {
    /// The node's JSON-RPC URL.
    pub rpc_url: String,
    /// The chain id the node must report.
    pub chain_id: u64,
    /// The registry's address.
    pub registry: Address,
    /// The account key file (`0x` + 64 hex digits, mode 0600).
    pub account_key: PathBuf,
    /// Blocks before an anchor counts.
    pub confirmations: u64,
    /// Fee cap, wei per gas.
    pub max_fee_per_gas: Option<u128>,
    /// Where reading anchors back starts.
    pub from_block: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAnchor {
    outbox: Option<PathBuf>,
    interval_secs: Option<u64>,
    poll_secs: Option<u64>,
    replace_after_secs: Option<u64>,
    evm: Option<RawEvm>,
    https: Option<RawHttps>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttps {
    url: String,
    secret_file: PathBuf,
    ca_file: Option<PathBuf>,
    timeout_secs: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvm {
    rpc_url: String,
    chain_id: u64,
    registry: String,
    account_key: PathBuf,
    confirmations: Option<u64>,
    max_fee_gwei: Option<u64>,
    from_block: Option<u64>,
}

/// Validate `[anchor]`; `ledger` is the ledger's directory (the outbox
/// defaults to a sibling), relative paths resolve against `base`.
pub(crate) fn validate(
    raw: RawAnchor,
    ledger: &Path,
    base: &Path,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<AnchorConfig, ConfigError> {
    let defaults = Pace::default();
    let secs = |key: &str, value: Option<u64>, default: Duration, range: (u64, u64)| match value {
        None => Ok(default),
        Some(v) if (range.0..=range.1).contains(&v) => Ok(Duration::from_secs(v)),
        Some(v) => Err(err(
            &format!("anchor.{key}"),
            format!("{v} (expected {} to {})", range.0, range.1),
        )),
    };
    let pace = Pace {
        interval: secs(
            "interval_secs",
            raw.interval_secs,
            defaults.interval,
            (0, 7 * 86_400),
        )?,
        poll: secs("poll_secs", raw.poll_secs, defaults.poll, (1, 3_600))?,
        replace_after: secs(
            "replace_after_secs",
            raw.replace_after_secs,
            defaults.replace_after,
            (10, 86_400),
        )?,
    };
    let outbox = raw
        .outbox
        .map_or_else(|| ledger.with_file_name("anchors"), |p| base.join(p));
    let evm = match (raw.evm, raw.https) {
        (Some(_), Some(_)) => {
            return Err(err(
                "anchor",
                "both [anchor.evm] and [anchor.https]: a gateway anchors to one consultation chain; keep one".into(),
            ));
        }
        (None, None) => {
            return Err(err(
                "anchor.evm",
                "no consultation chain: add an [anchor.evm] table with rpc_url, chain_id, registry and account_key, or an [anchor.https] table with url and secret_file (or remove [anchor])".into(),
            ));
        }
        (None, Some(h)) => {
            secure_url("anchor.https.url", &h.url, err)?;
            let timeout = match h.timeout_secs {
                None => Duration::from_secs(10),
                Some(t) if (1..=300).contains(&t) => Duration::from_secs(t),
                Some(t) => {
                    return Err(err(
                        "anchor.https.timeout_secs",
                        format!("{t} (expected 1 to 300)"),
                    ));
                }
            };
            return Ok(AnchorConfig {
                outbox,
                pace,
                backend: BackendSettings::Https(HttpsSettings {
                    url: h.url,
                    secret_file: base.join(h.secret_file),
                    ca_file: h.ca_file.map(|p| base.join(p)),
                    timeout,
                }),
            });
        }
        (Some(evm), None) => evm,
    };
    secure_url("anchor.evm.rpc_url", &evm.rpc_url, err)?;
    let registry = evm.registry.parse::<Address>().map_err(|_| {
        err(
            "anchor.evm.registry",
            format!(
                "`{}` is not an address (0x and 40 hex digits)",
                evm.registry
            ),
        )
    })?;
    let confirmations = match evm.confirmations {
        None => 2,
        Some(c) if (1..=1_000).contains(&c) => c,
        Some(c) => {
            return Err(err(
                "anchor.evm.confirmations",
                format!("{c} (expected 1 to 1000)"),
            ));
        }
    };
    Ok(AnchorConfig {
        outbox,
        pace,
        backend: BackendSettings::Evm(EvmSettings {
            rpc_url: evm.rpc_url,
            chain_id: evm.chain_id,
            registry,
            account_key: base.join(evm.account_key),
            confirmations,
            max_fee_per_gas: evm.max_fee_gwei.map(|g| u128::from(g) * 1_000_000_000),
            from_block: evm.from_block.unwrap_or(0),
        }),
    })
}

/// `url` is https://, or http:// to this machine (a node or proxy on the
/// gateway itself).
fn secure_url(
    key: &str,
    url: &str,
    err: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        err(
            key,
            format!("not a URL ({e}); for example \"https://consult.hospital.example:8545\""),
        )
    })?;
    let loopback = parsed.host_str().is_some_and(|h| {
        h == "localhost"
            || h.trim_matches(|c| c == '[' || c == ']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|a| a.is_loopback())
    });
    if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
        return Err(err(
            key,
            format!(
                "`{}`: use https:// (plain http only to this machine)",
                super::registry::redact(url)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<AnchorConfig, ConfigError> {
        let raw: RawAnchor = toml::from_str(text).unwrap();
        let err = |key: &str, message: String| ConfigError {
            file: PathBuf::from("gw.toml"),
            key: key.to_owned(),
            message,
        };
        validate(
            raw,
            Path::new("/var/lib/vitalgate/ledger"),
            Path::new("/etc/vitalgate"),
            &err,
        )
    }

    const EVM: &str = r#"
        [evm]
        rpc_url = "https://besu.hospital.example:8545"
        chain_id = 1337
        registry = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        account_key = "account.key"
    "#;

    #[test]
    fn an_evm_table_gets_its_defaults_and_paths_beside_the_configuration_and_the_ledger() {
        let c = check(EVM).unwrap();
        assert_eq!(c.outbox, PathBuf::from("/var/lib/vitalgate/anchors"));
        assert_eq!(c.pace, Pace::default());
        let BackendSettings::Evm(evm) = &c.backend else {
            panic!("evm")
        };
        assert_eq!(evm.account_key, PathBuf::from("/etc/vitalgate/account.key"));
        assert_eq!(
            (evm.confirmations, evm.from_block, evm.max_fee_per_gas),
            (2, 0, None)
        );
        let c = check(&format!("interval_secs = 600\n{EVM}max_fee_gwei = 3\n")).unwrap();
        assert_eq!(c.pace.interval, Duration::from_secs(600));
        let BackendSettings::Evm(evm) = &c.backend else {
            panic!("evm")
        };
        assert_eq!(evm.max_fee_per_gas, Some(3_000_000_000));
    }

    #[test]
    fn an_https_table_names_its_secret_beside_the_configuration() {
        let c = check("[https]\nurl = \"https://consult.example/anchors\"\nsecret_file = \"s\"\n")
            .unwrap();
        let BackendSettings::Https(h) = &c.backend else {
            panic!("https")
        };
        assert_eq!(h.secret_file, PathBuf::from("/etc/vitalgate/s"));
        assert_eq!(h.timeout, Duration::from_secs(10));
    }

    #[test]
    fn mistakes_name_the_key_and_the_fix() {
        let both = format!("{EVM}[https]\nurl = \"https://c.example\"\nsecret_file = \"s\"\n");
        let cases = [
            (
                "interval_secs = 1\n",
                "anchor.evm",
                "add an [anchor.evm] table",
            ),
            (both.as_str(), "anchor", "keep one"),
            (
                "[https]\nurl = \"http://c.example\"\nsecret_file = \"s\"\n",
                "anchor.https.url",
                "use https://",
            ),
            (
                &EVM.replace("https://besu", "http://besu") as &str,
                "anchor.evm.rpc_url",
                "use https://",
            ),
            (
                &EVM.replace("0x5FbDB2315678afecb367f032d93F642f64180aa3", "0x12"),
                "anchor.evm.registry",
                "40 hex digits",
            ),
            (
                &format!("poll_secs = 0\n{EVM}"),
                "anchor.poll_secs",
                "expected 1 to 3600",
            ),
            (
                &format!("{EVM}confirmations = 0\n"),
                "anchor.evm.confirmations",
                "expected 1 to 1000",
            ),
        ];
        for (text, key, fix) in cases {
            let e = check(text).unwrap_err();
            assert_eq!(e.key, key, "{e}");
            assert!(e.message.contains(fix), "{e}");
        }
        // A node on this machine may be plain http.
        assert!(check(&EVM.replace("https://besu.hospital.example", "http://127.0.0.1")).is_ok());
    }
}
