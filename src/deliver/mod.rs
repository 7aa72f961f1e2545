//! Delivery: taking alert messages from the outbox to the hospital.
//!
//! Each configured sink — the hospital's MQTT broker ([`mqtt`]), an HTTPS
//! webhook ([`webhook`]) — runs as its own task and makes one attempt at a
//! time: it receives an [`Attempt`] and answers with an [`Outcome`]. What
//! to send next, when to retry and how long to back off is decided by the
//! alert stage, through one [`SinkQueue`] per sink, so a sink that is down
//! never holds up another, and the schedule is a plain state machine that
//! tests can drive without a network.

pub mod mqtt;
pub mod queue;
pub mod signature;
pub mod webhook;

pub use queue::SinkQueue;

use serde::Deserialize;
use std::sync::Arc;
use tokio::sync::mpsc;
use vitalgate_detect::Category;

/// One attempt to deliver one message.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// Outbox sequence number.
    pub seq: u64,
    /// The message id (idempotency key).
    pub message_id: String,
    /// The patient it is about.
    pub patient: Arc<str>,
    /// The message (JSON).
    pub bytes: Arc<[u8]>,
}

/// A sink's answer to an [`Attempt`].
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Which sink (index in the alert stage's list).
    pub sink: usize,
    /// Which message.
    pub seq: u64,
    /// Delivered, or why not.
    pub result: Result<(), DeliveryError>,
}

/// A sink task's two channels to the alert stage.
#[derive(Debug)]
pub struct SinkChannels {
    /// Attempts to make, one at a time.
    pub attempts: mpsc::Receiver<Attempt>,
    /// Where each attempt is answered.
    pub outcomes: mpsc::Sender<Outcome>,
}

/// Why a delivery attempt failed. Every failure is retried (an alert is
/// never dropped); the kind only changes what is logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The receiver could not be reached or did not answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The receiver answered with a refusal that will not go away by
    /// itself (a wrong URL or secret: 4xx other than 408/425/429); retried
    /// slowly, and logged as needing someone's attention.
    #[error("refused: {0}")]
    Refused(String),
}

/// Which alerts a sink receives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinkFilter {
    /// Clinical, technical, or both.
    pub categories: Vec<Category>,
    /// The lowest escalation tier the sink is part of: 0 hears every
    /// event; 1 hears an alert once it has escalated once, and everything
    /// about it after.
    pub from_tier: usize,
}

impl Default for SinkFilter {
    fn default() -> Self {
        SinkFilter {
            categories: vec![Category::Clinical, Category::Technical],
            from_tier: 0,
        }
    }
}

impl SinkFilter {
    /// Whether an event of an alert in `category` at `tier` goes to this
    /// sink.
    pub fn wants(&self, category: Category, tier: usize) -> bool {
        self.categories.contains(&category) && tier >= self.from_tier
    }
}
