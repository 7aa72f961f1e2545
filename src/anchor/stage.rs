//! The anchor stage: one task that takes the ledger's newest signed tree
//! head and sees it anchored on the consultation chain, whatever the
//! uplink does.
//!
//! ```text
//!  store snapshot ─newest head─▶ pending ──due──▶ flight ──confirmed──▶ anchored
//!                                  ▲               │  │ stuck: replaced (same nonce,
//!                                  │     lost ◀────┘  │  higher fees, newest head)
//!                                  └──── reorganised away ◀── anchored (re-checked)
//! ```
//!
//! * **Coalescing.** Only the newest head waits; a newer head commits to
//!   every older one, so a gateway offline for days sends one transaction
//!   when it is back, not a burst.
//! * **One transaction in flight**, kept in the outbox with every hash
//!   sent for its nonce: a restart resumes it instead of sending another.
//! * **Pace.** At most one anchor per `interval`; the node is polled every
//!   `poll`; failures back off exponentially with full jitter (1 s → 10
//!   min; 1 min → 1 h when the chain refuses and someone has to act), so
//!   a fleet of gateways coming back together does not storm the node.
//! * **Reorganisations.** The newest anchor is re-checked at every poll;
//!   if its transaction has left the canonical chain, its head waits
//!   again (or a newer one goes instead).
//!
//! Nothing here blocks the rest of the gateway: the stage only reads the
//! store's snapshot, and an absent chain is only a counter and a log line.

use super::backend::{AnchorError, Head, Progress};
use super::evm::{EvmAnchorConfig, EvmAnchorer, Submitted};
use super::https::HttpsAnchorer;
use super::outbox::{AnchorOutbox, Anchored, Flight, OutboxState};
use crate::clock::Clock;
use crate::source::backoff::Backoff;
use crate::store::StoreSnapshot;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use vitalgate_chain::crypto::keys::IdentityPublic;

/// When and how often the stage acts (`[anchor]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// At most one anchor per interval (the newest head when it is due).
    pub interval: Duration,
    /// How often the node is asked about the transaction in flight and
    /// the newest anchor.
    pub poll: Duration,
    /// A transaction still in the pool after this long is replaced.
    pub replace_after: Duration,
}

impl Default for Pace {
    fn default() -> Pace {
        Pace {
            interval: Duration::from_secs(3600),
            poll: Duration::from_secs(15),
            replace_after: Duration::from_secs(180),
        }
    }
}

/// Which consultation chain, and how to reach it.
pub enum BackendConfig {
    /// An EVM chain with the anchor registry (connected when first
    /// needed: the node may be unreachable at start).
    Evm(Box<EvmAnchorConfig>),
    /// A plain HTTPS JSON service (its client built at start).
    Https(Box<HttpsAnchorer>),
}

/// The stage's counters and state, for the status view and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AnchorSnapshot {
    /// The newest anchored tree size (0: none yet).
    pub anchored_size: u64,
    /// When it was anchored (gateway clock, ms).
    pub anchored_at: Option<i64>,
    /// Its transaction or receipt id.
    pub anchored_id: Option<String>,
    /// The newest head waiting.
    pub pending_size: Option<u64>,
    /// The size the transaction in flight carries.
    pub in_flight_size: Option<u64>,
    /// Transactions sent (first sends).
    pub sent: u64,
    /// Replacements of stuck transactions.
    pub replaced: u64,
    /// Anchors confirmed.
    pub confirmed: u64,
    /// Transactions lost from the pool.
    pub lost: u64,
    /// Anchors undone by a reorganisation.
    pub reorganised: u64,
    /// Heads the registry already held (a newer one got there first).
    pub superseded: u64,
    /// Failed attempts to talk to the chain.
    pub failures: u64,
    /// The last failure, if the last attempt failed.
    pub last_error: Option<String>,
}

enum Backend {
    Evm(Box<EvmAnchorer>),
    Https,
}

/// The anchor stage (see the module documentation).
pub struct AnchorStage {
    pace: Pace,
    backend_config: BackendConfig,
    backend: Option<Backend>,
    outbox: AnchorOutbox,
    state: OutboxState,
    identity: IdentityPublic,
    clock: Clock,
    snapshot: AnchorSnapshot,
    snapshots: watch::Sender<AnchorSnapshot>,
    unavailable: Backoff,
    refused: Backoff,
    retry_at: Option<Instant>,
}

impl AnchorStage {
    /// A stage resuming from `state` (what the outbox held).
    pub fn new(
        pace: Pace,
        backend_config: BackendConfig,
        (outbox, state): (AnchorOutbox, OutboxState),
        identity: IdentityPublic,
        clock: Clock,
    ) -> (AnchorStage, watch::Receiver<AnchorSnapshot>) {
        let (snapshots, receiver) = watch::channel(AnchorSnapshot::default());
        let mut stage = AnchorStage {
            pace,
            backend_config,
            backend: None,
            outbox,
            state,
            identity,
            clock,
            snapshot: AnchorSnapshot::default(),
            snapshots,
            unavailable: Backoff::new(Duration::from_secs(1), Duration::from_secs(600)),
            refused: Backoff::new(Duration::from_secs(60), Duration::from_secs(3600)),
            retry_at: None,
        };
        stage.publish();
        (stage, receiver)
    }

    /// Run until `cancel`: every `poll`, take the store's newest head and
    /// move anchoring one step on.
    pub async fn run(
        mut self,
        mut store: watch::Receiver<StoreSnapshot>,
        cancel: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(self.pace.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = tick.tick() => {
                    let newest = store.borrow_and_update().tree_head.clone();
                    if let Some(signed) = newest {
                        self.offer(&signed);
                    }
                    self.step().await;
                }
            }
        }
    }

    /// Take `signed` as the newest head if it is newer than anything
    /// waiting, in flight or anchored.
    fn offer(&mut self, signed: &Arc<[u8]>) {
        let known = [
            self.state.pending.as_ref().map(|h| h.size),
            self.state.flight.as_ref().map(|f| f.head.size),
            self.state.latest.as_ref().map(|a| a.head.size),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0);
        let head = match Head::open(signed.to_vec(), &self.identity) {
            Ok(head) => head,
            Err(e) => {
                // The ledger signed it with the identity key: this would be
                // a configuration mix-up, never the chain's fault.
                tracing::error!(error = %e, "the ledger's newest tree head does not verify under chain.identity; not anchored");
                return;
            }
        };
        if head.size > known {
            self.set_pending(Some(head));
        }
    }

    /// One step; failures schedule the next attempt with backoff.
    async fn step(&mut self) {
        if self.retry_at.is_some_and(|at| Instant::now() < at) {
            self.publish();
            return;
        }
        match self.advance().await {
            Ok(()) => {
                self.unavailable.reset();
                self.refused.reset();
                self.retry_at = None;
                self.snapshot.last_error = None;
            }
            Err(e) => {
                self.snapshot.failures += 1;
                self.snapshot.last_error = Some(e.to_string());
                let delay = if e.is_transient() {
                    tracing::warn!(error = %e, "anchoring: consultation chain unavailable; will retry");
                    self.unavailable.next_delay()
                } else {
                    tracing::error!(error = %e, "anchoring refused; retrying later, but someone must act");
                    self.refused.next_delay()
                };
                self.retry_at = Some(Instant::now() + delay);
                // A connection may be what failed: make a new one next time.
                if e.is_transient() {
                    self.backend = None;
                }
            }
        }
        self.publish();
    }

    async fn advance(&mut self) -> Result<(), AnchorError> {
        if self.backend.is_none() {
            self.backend = Some(match &self.backend_config {
                BackendConfig::Evm(c) => {
                    Backend::Evm(Box::new(EvmAnchorer::connect((**c).clone()).await?))
                }
                BackendConfig::Https(_) => Backend::Https,
            });
        }
        let now = self.clock.now().0;
        if self.state.flight.is_some() {
            return self.follow_flight(now).await;
        }
        self.recheck_latest().await?;
        self.send_if_due(now).await
    }

    /// Ask about the transaction in flight and act on the answer.
    async fn follow_flight(&mut self, now: i64) -> Result<(), AnchorError> {
        let (Some(flight), Some(Backend::Evm(evm))) = (self.state.flight.clone(), &self.backend)
        else {
            return Ok(());
        };
        match evm.progress(&flight.head.gateway, &flight.evm, now).await? {
            Progress::Waiting { confirmations } => {
                let stuck = confirmations == 0
                    && now.saturating_sub(flight.evm.sent_at) >= millis(self.pace.replace_after);
                if stuck {
                    // Carry the newest head: the replacement coalesces too.
                    let head = match &self.state.pending {
                        Some(p) if p.size > flight.head.size => p.clone(),
                        _ => flight.head.clone(),
                    };
                    let mut evm_flight = flight.evm.clone();
                    evm.replace(&mut evm_flight, &head, now).await?;
                    tracing::info!(
                        size = head.size,
                        nonce = evm_flight.nonce,
                        sends = evm_flight.sent.len(),
                        "anchor transaction stuck in the pool; replaced with higher fees"
                    );
                    self.snapshot.replaced += 1;
                    if self
                        .state
                        .pending
                        .as_ref()
                        .is_some_and(|p| p.size <= head.size)
                    {
                        self.set_pending(None);
                    }
                    let mut earlier = flight.earlier.clone();
                    if head.size != flight.head.size {
                        earlier.push(flight.head.clone());
                    }
                    self.set_flight(Some(Flight {
                        head,
                        earlier,
                        evm: evm_flight,
                    }));
                }
            }
            Progress::Anchored(receipt) => {
                // The mined transaction may be an older send of the nonce,
                // carrying an older head than the newest send.
                let earlier = flight.earlier.iter().find(|h| h.size == receipt.size);
                let head = match earlier {
                    Some(h) if receipt.size != flight.head.size => {
                        // An earlier send was mined: the newer head the
                        // replacement carried has not been anchored.
                        let h = h.clone();
                        self.keep_pending(flight.head.clone());
                        h
                    }
                    _ => flight.head.clone(),
                };
                tracing::info!(size = receipt.size, tx = %receipt.id, block = receipt.block_number, gas = receipt.gas_used, "tree head anchored");
                let anchored = Anchored { head, receipt };
                if let Err(e) = self.outbox.anchored(&anchored) {
                    tracing::error!(error = %e, "cannot record the anchor in the anchor outbox");
                }
                self.snapshot.confirmed += 1;
                if self
                    .state
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.size <= anchored.head.size)
                {
                    self.set_pending(None);
                }
                self.state.flight = None;
                self.state.latest = Some(anchored);
            }
            Progress::Lost => {
                tracing::warn!(
                    size = flight.head.size,
                    nonce = flight.evm.nonce,
                    "anchor transaction gone from the pool; sending again"
                );
                self.snapshot.lost += 1;
                self.keep_pending(flight.head);
                self.set_flight(None);
            }
            Progress::Superseded { latest } => {
                self.snapshot.superseded += 1;
                tracing::info!(
                    size = flight.head.size,
                    latest,
                    "the registry already holds a newer head"
                );
                self.set_flight(None);
            }
        }
        Ok(())
    }

    /// The newest anchor still in the canonical chain? If a
    /// reorganisation dropped it, its head waits again.
    async fn recheck_latest(&mut self) -> Result<(), AnchorError> {
        let (Some(latest), Some(Backend::Evm(evm))) = (self.state.latest.clone(), &self.backend)
        else {
            return Ok(());
        };
        if evm.still_anchored(&latest.receipt).await?.is_some() {
            return Ok(());
        }
        tracing::warn!(size = latest.head.size, tx = %latest.receipt.id, "an anchor was reorganised out of the consultation chain; anchoring again");
        self.snapshot.reorganised += 1;
        if let Err(e) = self.outbox.unanchored(latest.head.size) {
            tracing::error!(error = %e, "cannot update the anchor outbox");
        }
        self.state.latest = match self.outbox.all_anchored() {
            Ok(all) => all.into_iter().next_back(),
            Err(_) => None,
        };
        self.keep_pending(latest.head);
        Ok(())
    }

    /// Send the newest head when one waits and the interval since the last
    /// anchor has passed.
    async fn send_if_due(&mut self, now: i64) -> Result<(), AnchorError> {
        let Some(head) = self.state.pending.clone() else {
            return Ok(());
        };
        let due = self
            .state
            .latest
            .as_ref()
            .is_none_or(|a| now.saturating_sub(a.receipt.at) >= millis(self.pace.interval));
        if !due {
            return Ok(());
        }
        let evm = match (&self.backend, &self.backend_config) {
            (Some(Backend::Evm(evm)), _) => evm,
            (Some(Backend::Https), BackendConfig::Https(service)) => {
                let progress = service.submit(&head, now).await?;
                self.settle(head, progress)?;
                return Ok(());
            }
            _ => return Ok(()),
        };
        match evm.submit(&head, now).await? {
            Submitted::Sent(submission) => {
                tracing::info!(size = head.size, nonce = submission.nonce, tx = %submission.sent[0].0, "anchor transaction sent");
                self.snapshot.sent += 1;
                self.set_flight(Some(Flight {
                    head,
                    earlier: Vec::new(),
                    evm: submission,
                }));
                self.set_pending(None);
            }
            Submitted::Superseded { latest } => {
                self.snapshot.superseded += 1;
                tracing::info!(
                    size = head.size,
                    latest,
                    "the registry already holds this head or a newer one"
                );
                self.set_pending(None);
            }
        }
        Ok(())
    }

    /// What an HTTPS service answered for `head`: its receipt at once, or
    /// that it holds a newer head.
    fn settle(&mut self, head: Head, progress: Progress) -> Result<(), AnchorError> {
        match progress {
            Progress::Anchored(receipt) => {
                tracing::info!(size = receipt.size, receipt = %receipt.id, "tree head anchored");
                let anchored = Anchored { head, receipt };
                if let Err(e) = self.outbox.anchored(&anchored) {
                    tracing::error!(error = %e, "cannot record the anchor in the anchor outbox");
                }
                self.snapshot.sent += 1;
                self.snapshot.confirmed += 1;
                self.set_pending(None);
                self.state.latest = Some(anchored);
                Ok(())
            }
            Progress::Superseded { latest } => {
                self.snapshot.superseded += 1;
                tracing::info!(
                    size = head.size,
                    latest,
                    "the service already holds this head or a newer one"
                );
                self.set_pending(None);
                Ok(())
            }
            // The HTTPS protocol answers at once; anything else is the
            // service misbehaving, and the head stays pending.
            Progress::Waiting { .. } | Progress::Lost => Err(AnchorError::Unavailable {
                url: String::from("anchor.https.url"),
                message: "the service answered without a receipt".into(),
            }),
        }
    }

    /// Make `head` wait again unless something newer already does.
    fn keep_pending(&mut self, head: Head) {
        if self
            .state
            .pending
            .as_ref()
            .is_none_or(|p| p.size < head.size)
        {
            self.set_pending(Some(head));
        }
    }

    fn set_pending(&mut self, head: Option<Head>) {
        if let Err(e) = self.outbox.set_pending(head.as_ref()) {
            tracing::error!(error = %e, "cannot write the anchor outbox; the head is kept in memory");
        }
        self.state.pending = head;
    }

    fn set_flight(&mut self, flight: Option<Flight>) {
        if let Err(e) = self.outbox.set_flight(flight.as_ref()) {
            tracing::error!(error = %e, "cannot write the anchor outbox; the transaction is kept in memory");
        }
        self.state.flight = flight;
    }

    fn publish(&mut self) {
        let s = &mut self.snapshot;
        s.anchored_size = self.state.latest.as_ref().map_or(0, |a| a.head.size);
        s.anchored_at = self.state.latest.as_ref().map(|a| a.receipt.at);
        s.anchored_id = self.state.latest.as_ref().map(|a| a.receipt.id.clone());
        s.pending_size = self.state.pending.as_ref().map(|h| h.size);
        s.in_flight_size = self.state.flight.as_ref().map(|f| f.head.size);
        self.snapshots.send_replace(self.snapshot.clone());
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
