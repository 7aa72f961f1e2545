//! The HTTPS webhook sink: each alert message is POSTed as JSON, signed
//! the Standard Webhooks way (`webhook-id` = the message id, which is also
//! sent as `Idempotency-Key`; `webhook-timestamp`; `webhook-signature`).
//!
//! A 2xx answer is delivery. 408, 425, 429 and 5xx, timeouts and
//! connection errors are outages; any other answer (a wrong URL, a wrong
//! secret, a redirect) is a refusal that needs someone to fix the
//! configuration. Both are retried by the alert stage's schedule
//! ([`super::SinkQueue`]); nothing is dropped. TLS is rustls with the
//! system's roots, plus the hospital's CA when configured.

use super::signature::Secret;
use super::{Attempt, DeliveryError, Outcome, SinkChannels};
use std::path::PathBuf;
use std::time::Duration;
use vitalgate_devices::Timestamp;

/// A webhook sink's settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The sink's name (logs, delivery receipts, metrics).
    pub name: String,
    /// Where to POST.
    pub url: reqwest::Url,
    /// The shared secret the signature is made with.
    pub secret: PathBuf,
    /// A PEM CA certificate to trust besides the system's roots.
    pub ca_file: Option<PathBuf>,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Which alerts it receives.
    pub filter: super::SinkFilter,
}

/// The webhook sink could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebhookSetupError {
    /// The secret file.
    #[error("alerts.webhook `{name}`: {source}")]
    Secret {
        /// The sink.
        name: String,
        /// Why.
        source: super::signature::SecretError,
    },
    /// The HTTPS client (its CA file).
    #[error("alerts.webhook `{name}`: {source}")]
    Client {
        /// The sink.
        name: String,
        /// Why.
        source: crate::http_client::ClientError,
    },
}

/// A ready webhook sink.
pub struct Webhook {
    name: String,
    url: reqwest::Url,
    secret: Secret,
    client: reqwest::Client,
}

impl Webhook {
    /// Read the secret (and CA) and build the client, once, at start.
    pub fn new(config: &WebhookConfig) -> Result<Webhook, WebhookSetupError> {
        let name = config.name.clone();
        let secret = Secret::load(&config.secret).map_err(|source| WebhookSetupError::Secret {
            name: name.clone(),
            source,
        })?;
        let client = crate::http_client::build(config.timeout, config.ca_file.as_deref()).map_err(
            |source| WebhookSetupError::Client {
                name: name.clone(),
                source,
            },
        )?;
        Ok(Webhook {
            name,
            url: config.url.clone(),
            secret,
            client,
        })
    }

    /// The sink's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One attempt.
    pub async fn deliver(&self, attempt: &Attempt) -> Result<(), DeliveryError> {
        let timestamp = Timestamp::now().millis().div_euclid(1000);
        let signature = self
            .secret
            .sign_webhook(&attempt.message_id, timestamp, &attempt.bytes);
        let response = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &attempt.message_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("idempotency-key", &attempt.message_id)
            .body(attempt.bytes.to_vec())
            .send()
            .await
            .map_err(|e| DeliveryError::Unreachable(crate::http_client::describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let what = format!("HTTP {status}");
        match status.as_u16() {
            408 | 425 | 429 | 500..=599 => Err(DeliveryError::Unreachable(what)),
            300..=399 => Err(DeliveryError::Refused(format!(
                "{what}: a redirect (to {}); set the webhook's url to the final address",
                response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or("?")
            ))),
            _ => Err(DeliveryError::Refused(what)),
        }
    }
}

/// Run the sink: one attempt per request, answered on `outcomes`, until
/// the alert stage drops its sender.
pub async fn run(index: usize, sink: Webhook, channels: SinkChannels) {
    let SinkChannels {
        mut attempts,
        outcomes,
    } = channels;
    while let Some(attempt) = attempts.recv().await {
        let result = sink.deliver(&attempt).await;
        let outcome = Outcome {
            sink: index,
            seq: attempt.seq,
            result,
        };
        if outcomes.send(outcome).await.is_err() {
            break;
        }
    }
    tracing::debug!(sink = %sink.name(), "webhook sink stopped");
}
