//! Anchoring to an EVM consultation chain (Hyperledger Besu, GoQuorum, or
//! any Ethereum JSON-RPC node) through the anchor registry.
//!
//! The gateway signs its own transactions with its account key and manages
//! what a wallet would: the nonce (one anchor transaction in flight at a
//! time, so the nonce is simply the account's mined transaction count),
//! fees (EIP-1559 when the chain has a base fee, a legacy gas price when it
//! does not, as on free-gas permissioned networks), replacement of a
//! transaction stuck in the pool (same nonce, fees raised by
//! [`FEE_BUMP_PERCENT`], and the newest head as its payload, so a
//! replacement also coalesces), and confirmations. It keeps every hash it
//! sent for the nonce, because any of them may be the one that is mined.
//!
//! Scheduling — when to send, when to replace, backoff — is the anchor
//! stage's; this type only answers for one submission at a time.

use super::account::AccountKey;
use super::backend::{AnchorError, Head, Progress, Receipt};
use super::registry::{AnchorRegistry::AnchorRegistryErrors, Registry, redact};
use alloy::eips::BlockId;
use alloy::network::{Ethereum, EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, TxHash};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use serde::{Deserialize, Serialize};
use vitalgate_chain::anchored::AnchoredHead;

/// How much a replacement raises both fees, percent. Nodes require at least
/// 10 % (geth's and Besu's default price bump) to accept a replacement.
pub const FEE_BUMP_PERCENT: u128 = 25;
/// Gas estimate headroom, percent: the estimate is made against the
/// latest state, which the transaction may not meet exactly.
const GAS_HEADROOM_PERCENT: u64 = 25;

/// The EVM backend's settings (`[anchor.evm]`).
#[derive(Debug, Clone)]
pub struct EvmAnchorConfig {
    /// The node's JSON-RPC URL.
    pub rpc_url: String,
    /// The chain id the node must report (a transaction signed for one
    /// chain can never be replayed on another).
    pub chain_id: u64,
    /// The anchor registry's address.
    pub registry: Address,
    /// The gateway's account.
    pub account: AccountKey,
    /// Blocks (its own included) before an anchor counts as done.
    pub confirmations: u64,
    /// Never offer more than this per gas, wei (a runaway fee market must
    /// not drain the account); `None`: no cap.
    pub max_fee_per_gas: Option<u128>,
    /// The block the registry was deployed in: where reading anchors back
    /// starts.
    pub from_block: u64,
}

/// What the gateway offers per gas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fees {
    /// EIP-1559.
    Eip1559 {
        /// Most per gas in all, wei.
        #[serde(with = "super::backend::wei")]
        max_fee_per_gas: u128,
        /// Most per gas to the block producer, wei.
        #[serde(with = "super::backend::wei")]
        max_priority_fee_per_gas: u128,
    },
    /// A chain without a base fee.
    Legacy {
        /// Per gas, wei.
        #[serde(with = "super::backend::wei")]
        gas_price: u128,
    },
}

impl Fees {
    /// These fees raised by [`FEE_BUMP_PERCENT`] (and at least 1 wei), for
    /// a replacement; capped at `cap`.
    pub fn bumped(self, cap: Option<u128>) -> Fees {
        let bump = |v: u128| {
            let raised = v.saturating_add((v * FEE_BUMP_PERCENT).div_ceil(100).max(1));
            cap.map_or(raised, |c| raised.min(c.max(v)))
        };
        match self {
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => Fees::Eip1559 {
                max_fee_per_gas: bump(max_fee_per_gas),
                max_priority_fee_per_gas: bump(max_priority_fee_per_gas),
            },
            Fees::Legacy { gas_price } => Fees::Legacy {
                gas_price: bump(gas_price),
            },
        }
    }

    fn capped(self, cap: Option<u128>) -> Fees {
        let Some(cap) = cap else { return self };
        match self {
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => Fees::Eip1559 {
                max_fee_per_gas: max_fee_per_gas.min(cap),
                max_priority_fee_per_gas: max_priority_fee_per_gas.min(cap),
            },
            Fees::Legacy { gas_price } => Fees::Legacy {
                gas_price: gas_price.min(cap),
            },
        }
    }
}

/// One anchor transaction (and its replacements) in flight. Kept in the
/// anchor outbox, so a restart picks it up where it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvmSubmission {
    /// The tree size the newest transaction anchors.
    pub size: u64,
    /// The account nonce all of them share.
    pub nonce: u64,
    /// The newest transaction's fees.
    pub fees: Fees,
    /// Its gas limit.
    pub gas_limit: u64,
    /// Every hash sent for this nonce, oldest first, with the size each
    /// anchors (a replacement may carry a newer head).
    pub sent: Vec<(TxHash, u64)>,
    /// When the newest was sent (gateway clock, ms).
    pub sent_at: i64,
}

/// The gateway's sender of anchor transactions.
pub struct EvmAnchorer {
    provider: DynProvider,
    registry: Registry,
    wallet: EthereumWallet,
    account: Address,
    config: EvmAnchorConfig,
    url: String,
}

impl EvmAnchorer {
    /// Connect and check the node is on the configured chain. Nothing is
    /// sent.
    pub async fn connect(config: EvmAnchorConfig) -> Result<EvmAnchorer, AnchorError> {
        let url = redact(&config.rpc_url);
        let parsed = config.rpc_url.parse().map_err(|_| AnchorError::Refused {
            url: url.clone(),
            message: "not a valid URL (anchor.evm.rpc_url)".into(),
        })?;
        let provider = ProviderBuilder::new().connect_http(parsed).erased();
        let anchorer = EvmAnchorer {
            registry: Registry::new(config.registry, provider.clone(), &config.rpc_url),
            wallet: EthereumWallet::from(config.account.signer().clone()),
            account: config.account.address(),
            provider,
            config,
            url,
        };
        anchorer.check_chain().await?;
        Ok(anchorer)
    }

    /// The gateway's account address.
    pub fn account(&self) -> Address {
        self.account
    }

    /// The registry this anchorer sends to.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn check_chain(&self) -> Result<(), AnchorError> {
        let id = self
            .provider
            .get_chain_id()
            .await
            .map_err(|e| self.unavailable(&e))?;
        if id != self.config.chain_id {
            return Err(self.refused(format!(
                "the node is on chain {id}, not the configured anchor.evm.chain_id {}",
                self.config.chain_id
            )));
        }
        Ok(())
    }

    /// Send a first transaction anchoring `head`, or say the registry
    /// already holds it.
    pub async fn submit(&self, head: &Head, now_ms: i64) -> Result<Submitted, AnchorError> {
        let gateway = B256::from(head.gateway);
        let (latest, _, _) = self
            .registry
            .latest(gateway)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if latest >= head.size {
            return Ok(Submitted::Superseded { latest });
        }
        let registered = self
            .registry
            .anchorer(gateway)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if registered != self.account {
            return Err(self.refused(format!(
                "account {} is not registered for this gateway in registry {} (registered: {registered}); send the hospital the enrolment record",
                self.account,
                self.registry.address()
            )));
        }
        let nonce = self
            .provider
            .get_transaction_count(self.account)
            .block_id(BlockId::latest())
            .await
            .map_err(|e| self.unavailable(&e))?;
        let fees = self.fees().await?;
        let request = self.request(head, nonce, fees);
        let gas_limit = self.estimate_gas(request.clone()).await?;
        let hash = self.send(request.with_gas_limit(gas_limit)).await?;
        Ok(Submitted::Sent(EvmSubmission {
            size: head.size,
            nonce,
            fees,
            gas_limit,
            sent: vec![(hash, head.size)],
            sent_at: now_ms,
        }))
    }

    /// Replace a transaction stuck in the pool: same nonce, fees raised,
    /// carrying `head` (the newest, which commits to the older one).
    pub async fn replace(
        &self,
        submission: &mut EvmSubmission,
        head: &Head,
        now_ms: i64,
    ) -> Result<(), AnchorError> {
        let current = self.fees().await?;
        let bumped = submission.fees.bumped(self.config.max_fee_per_gas);
        let fees = max_fees(bumped, current);
        let request = self.request(head, submission.nonce, fees);
        let gas_limit = self
            .estimate_gas(request.clone())
            .await?
            .max(submission.gas_limit);
        let hash = self.send(request.with_gas_limit(gas_limit)).await?;
        submission.fees = fees;
        submission.gas_limit = gas_limit;
        submission.size = head.size;
        submission.sent.push((hash, head.size));
        submission.sent_at = now_ms;
        Ok(())
    }

    /// Where `submission` stands.
    pub async fn progress(
        &self,
        gateway: &[u8; 32],
        submission: &EvmSubmission,
        now_ms: i64,
    ) -> Result<Progress, AnchorError> {
        let tip = self
            .provider
            .get_block_number()
            .await
            .map_err(|e| self.unavailable(&e))?;
        for &(hash, size) in submission.sent.iter().rev() {
            let receipt = self
                .provider
                .get_transaction_receipt(hash)
                .await
                .map_err(|e| self.unavailable(&e))?;
            let Some(receipt) = receipt else { continue };
            let Some(block) = receipt.block_number else {
                continue;
            };
            if !receipt.status() {
                // Reverted: most likely a newer head got there first (a
                // replacement race); otherwise the registry refused.
                return self.after_revert(B256::from(*gateway), hash, size).await;
            }
            let confirmations = tip.saturating_sub(block) + 1;
            if confirmations < self.config.confirmations {
                return Ok(Progress::Waiting { confirmations });
            }
            return Ok(Progress::Anchored(Receipt {
                size,
                id: hash.to_string(),
                block_number: Some(block),
                block_hash: receipt.block_hash.map(|h| h.to_string()),
                gas_used: Some(receipt.gas_used),
                gas_price: Some(receipt.effective_gas_price),
                confirmations,
                at: now_ms,
            }));
        }
        // None mined. Still in the pool?
        for &(hash, _) in submission.sent.iter().rev() {
            let known = self
                .provider
                .get_transaction_by_hash(hash)
                .await
                .map_err(|e| self.unavailable(&e))?;
            if known.is_some() {
                return Ok(Progress::Waiting { confirmations: 0 });
            }
        }
        Ok(Progress::Lost)
    }

    /// Whether an anchor taken as done is still in the canonical chain —
    /// a reorganisation deeper than the confirmations may drop it — with
    /// its receipt as it is now (its block may have changed).
    pub async fn still_anchored(&self, receipt: &Receipt) -> Result<Option<Receipt>, AnchorError> {
        let Ok(hash) = receipt.id.parse::<TxHash>() else {
            return Ok(None);
        };
        let now = self
            .provider
            .get_transaction_receipt(hash)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(now
            .filter(|r| r.status() && r.block_number.is_some())
            .map(|r| Receipt {
                block_number: r.block_number,
                block_hash: r.block_hash.map(|h| h.to_string()),
                ..receipt.clone()
            }))
    }

    /// Every anchor of `gateway` in the registry, for `verify --anchors`.
    pub async fn anchors(&self, gateway: &[u8; 32]) -> Result<Vec<AnchoredHead>, AnchorError> {
        let events = self
            .registry
            .anchors(B256::from(*gateway), self.config.from_block)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(events.iter().map(|e| e.anchored_head()).collect())
    }

    /// A mined anchor transaction reverted: superseded when the registry
    /// now holds this size or more (another of our transactions got there
    /// first), refused otherwise (revoked between estimate and mining).
    async fn after_revert(
        &self,
        gateway: B256,
        hash: TxHash,
        size: u64,
    ) -> Result<Progress, AnchorError> {
        let (latest, _, _) = self
            .registry
            .latest(gateway)
            .await
            .map_err(|e| self.unavailable(&e))?;
        if latest >= size {
            return Ok(Progress::Superseded { latest });
        }
        Err(self.refused(format!(
            "anchor transaction {hash} (tree size {size}) reverted; is account {} still registered in registry {}?",
            self.account,
            self.registry.address()
        )))
    }

    fn request(&self, head: &Head, nonce: u64, fees: Fees) -> TransactionRequest {
        let request = self
            .registry
            .anchor_request(
                B256::from(head.gateway),
                head.size,
                B256::from(head.root),
                u64::try_from(head.time).unwrap_or(0),
                Bytes::from(head.signed.clone()),
            )
            .with_from(self.account)
            .with_nonce(nonce)
            .with_chain_id(self.config.chain_id);
        match fees {
            Fees::Eip1559 {
                max_fee_per_gas,
                max_priority_fee_per_gas,
            } => request
                .with_max_fee_per_gas(max_fee_per_gas)
                .with_max_priority_fee_per_gas(max_priority_fee_per_gas),
            Fees::Legacy { gas_price } => request.with_gas_price(gas_price),
        }
    }

    async fn fees(&self) -> Result<Fees, AnchorError> {
        let fees = match self.provider.estimate_eip1559_fees().await {
            Ok(e) => Fees::Eip1559 {
                max_fee_per_gas: e.max_fee_per_gas,
                max_priority_fee_per_gas: e.max_priority_fee_per_gas,
            },
            // No base fee on this chain (pre-London or a free-gas network).
            Err(_) => Fees::Legacy {
                gas_price: self
                    .provider
                    .get_gas_price()
                    .await
                    .map_err(|e| self.unavailable(&e))?,
            },
        };
        Ok(fees.capped(self.config.max_fee_per_gas))
    }

    async fn estimate_gas(&self, request: TransactionRequest) -> Result<u64, AnchorError> {
        match self.provider.estimate_gas(request).await {
            Ok(gas) => Ok(gas.saturating_add(gas * GAS_HEADROOM_PERCENT / 100)),
            Err(e) => {
                let decoded = e
                    .as_error_resp()
                    .and_then(|r| r.as_decoded_interface_error::<AnchorRegistryErrors>());
                Err(match decoded {
                    Some(AnchorRegistryErrors::NotRegistered(_)) => self.refused(format!(
                        "account {} is not registered for this gateway; send the hospital the enrolment record",
                        self.account
                    )),
                    Some(AnchorRegistryErrors::NotAppended(r)) => self.refused(format!(
                        "the registry already holds tree size {} (offered {})",
                        r.latestSize, r.size
                    )),
                    _ => self.unavailable(&e),
                })
            }
        }
    }

    async fn send(&self, request: TransactionRequest) -> Result<TxHash, AnchorError> {
        let envelope = <TransactionRequest as NetworkTransactionBuilder<Ethereum>>::build(
            request,
            &self.wallet,
        )
        .await
        .map_err(|e| self.refused(format!("cannot sign the anchor transaction: {e}")))?;
        let pending = self
            .provider
            .send_tx_envelope(envelope)
            .await
            .map_err(|e| self.unavailable(&e))?;
        Ok(*pending.tx_hash())
    }

    fn unavailable(&self, e: &dyn std::fmt::Display) -> AnchorError {
        AnchorError::Unavailable {
            url: self.url.clone(),
            message: e.to_string(),
        }
    }

    fn refused(&self, message: String) -> AnchorError {
        AnchorError::Refused {
            url: self.url.clone(),
            message,
        }
    }
}

/// What [`EvmAnchorer::submit`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A transaction is in flight.
    Sent(EvmSubmission),
    /// The registry already holds this size or a larger one.
    Superseded {
        /// Its latest size.
        latest: u64,
    },
}

/// The larger of two fee offers, field by field (a replacement must beat
/// the stuck transaction and meet the market now).
fn max_fees(a: Fees, b: Fees) -> Fees {
    match (a, b) {
        (
            Fees::Eip1559 {
                max_fee_per_gas: fa,
                max_priority_fee_per_gas: pa,
            },
            Fees::Eip1559 {
                max_fee_per_gas: fb,
                max_priority_fee_per_gas: pb,
            },
        ) => Fees::Eip1559 {
            max_fee_per_gas: fa.max(fb),
            max_priority_fee_per_gas: pa.max(pb),
        },
        (Fees::Legacy { gas_price: a }, Fees::Legacy { gas_price: b }) => Fees::Legacy {
            gas_price: a.max(b),
        },
        // The chain changed its fee model under us: keep the bumped offer.
        (a, _) => a,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_submission_round_trips_through_the_outboxs_json_with_wei_as_strings() {
        let submission = EvmSubmission {
            size: 4,
            nonce: 7,
            fees: Fees::Eip1559 {
                max_fee_per_gas: u128::from(u64::MAX) * 3,
                max_priority_fee_per_gas: 1,
            },
            gas_limit: 60_000,
            sent: vec![(TxHash::repeat_byte(0xab), 4)],
            sent_at: 1_700_000_000_000,
        };
        let json = serde_json::to_string(&submission).unwrap();
        assert!(
            json.contains(r#""max_fee_per_gas":"55340232221128654845""#),
            "{json}"
        );
        assert_eq!(
            serde_json::from_str::<EvmSubmission>(&json).unwrap(),
            submission
        );
    }

    #[test]
    fn a_replacement_raises_both_fees_by_a_quarter_and_never_above_the_cap() {
        let f = Fees::Eip1559 {
            max_fee_per_gas: 100,
            max_priority_fee_per_gas: 1,
        };
        assert_eq!(
            f.bumped(None),
            Fees::Eip1559 {
                max_fee_per_gas: 125,
                max_priority_fee_per_gas: 2
            }
        );
        assert_eq!(
            f.bumped(Some(110)),
            Fees::Eip1559 {
                max_fee_per_gas: 110,
                max_priority_fee_per_gas: 2
            }
        );
        assert_eq!(
            Fees::Legacy { gas_price: 0 }.bumped(None),
            Fees::Legacy { gas_price: 1 }
        );
    }
}
