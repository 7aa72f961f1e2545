//! Anchoring to a plain HTTPS JSON consultation service: the hospital's
//! alternative to an EVM chain, for sites that keep the gateways' signed
//! tree heads in an ordinary web service (docs/FORMAT.md, "Anchoring over
//! HTTPS").
//!
//! The gateway POSTs each head as JSON, signed the Standard Webhooks way
//! with the secret it shares with the hospital (the same scheme, headers
//! and secret files as the alert webhooks, so the hospital can verify both
//! with one library). The service answers with its receipt id, or says it
//! already holds a head at least as large. Reading the anchors back is a
//! signed GET of the gateway's list, handed to
//! [`check_anchored`](vitalgate_chain::anchored::check_anchored) by the
//! caller.
//!
//! The signature authenticates the *gateway* to the service (only the
//! gateway holding the secret may add heads in its name); what makes an
//! anchor evidence is the signed tree head inside it, which anyone checks
//! with the gateway's public key. So a service that answers wrongly can
//! delay anchoring, never forge it.
//!
//! One call is one attempt: retries, backoff and coalescing are the anchor
//! stage's (see [`super::backend`]). A retried POST carries the same
//! `webhook-id` and `Idempotency-Key` (`<gateway hex>-<size>`), so the
//! service can tell it from a new head.

use super::backend::{AnchorError, Head, Progress, Receipt};
use super::registry::redact;
use crate::deliver::signature::Secret;
use crate::http_client::{self, describe};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;
use vitalgate_chain::anchored::AnchoredHead;
use vitalgate_devices::Timestamp;

/// The largest answer to a POST read (a receipt is a few dozen bytes; an
/// error page a few kilobytes).
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The largest list of anchors read back: some 100 000 heads, twenty
/// years of one every hour and a half.
const MAX_LIST_BYTES: usize = 64 * 1024 * 1024;
/// The longest receipt id accepted (it is stored beside every head).
pub const MAX_RECEIPT_ID: usize = 256;
/// How much of an error answer's text goes into the error message.
const EXCERPT_CHARS: usize = 200;

/// Where and how to anchor over HTTPS (the `[anchor.https]` table, parsed
/// elsewhere).
#[derive(Debug, Clone)]
pub struct HttpsAnchorConfig {
    /// The service's anchoring endpoint: heads are POSTed to it, and a
    /// gateway's anchors read from `{url}/{gateway hex}`. `https://`, or
    /// `http://` to this machine only (a local proxy or a test).
    pub url: String,
    /// The secret shared with the hospital that signs every request
    /// (loaded from `anchor.https.secret_file` with [`Secret::load`]).
    pub secret: Secret,
    /// A PEM CA certificate (or several) to trust besides the system's
    /// roots: hospitals often run their services under a private CA.
    pub ca_file: Option<PathBuf>,
    /// How long one request, answer included, may take.
    pub timeout: Duration,
}

/// The HTTPS anchorer could not be set up; each names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum HttpsSetupError {
    /// The URL does not parse, or is not an http(s) URL with a host.
    #[error("anchor.https.url {url}: {detail}")]
    Url {
        /// The URL (credentials and query removed).
        url: String,
        /// Why it cannot be used.
        detail: String,
    },
    /// Plain http to another machine.
    #[error(
        "anchor.https.url {url}: tree heads must reach the consultation service over https:// (plain http only to this machine)"
    )]
    Insecure {
        /// The URL (credentials and query removed).
        url: String,
    },
    /// A zero timeout would fail every request.
    #[error("anchor.https.timeout: must be more than zero")]
    Timeout,
    /// The HTTPS client (its CA file).
    #[error("anchor.https: {0}")]
    Client(#[from] http_client::ClientError),
}

/// A ready HTTPS anchoring backend: the URL checked, the secret and the CA
/// loaded and the client built once, at start.
pub struct HttpsAnchorer {
    url: Url,
    /// `url` fit for errors and logs.
    shown: String,
    secret: Secret,
    client: reqwest::Client,
}

impl std::fmt::Debug for HttpsAnchorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpsAnchorer")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

impl HttpsAnchorer {
    /// Check the URL, read the CA file, build the client.
    ///
    /// Plain `http://` is refused unless the host is this machine
    /// (`localhost` or a loopback address), the rule the alert webhooks
    /// follow: a tree head holds no health data, but the signature headers
    /// would let anyone on the path replay it, and a proxy on the path
    /// could answer "anchored" for a service that never saw it.
    pub fn new(config: HttpsAnchorConfig) -> Result<HttpsAnchorer, HttpsSetupError> {
        let mut url = Url::parse(&config.url).map_err(|e| HttpsSetupError::Url {
            url: redact(&config.url),
            detail: format!("not a URL ({e})"),
        })?;
        let shown = redact(url.as_str());
        let loopback = url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|a| a.is_loopback())
        });
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => return Err(HttpsSetupError::Insecure { url: shown }),
            other => {
                return Err(HttpsSetupError::Url {
                    url: shown,
                    detail: format!("scheme {other}: is not https://"),
                });
            }
        }
        if url.cannot_be_a_base() || url.host_str().is_none_or(str::is_empty) {
            return Err(HttpsSetupError::Url {
                url: shown,
                detail: "names no host".into(),
            });
        }
        // A fragment is never sent; dropping it keeps `{url}/{gateway}`
        // well-formed.
        url.set_fragment(None);
        if config.timeout.is_zero() {
            return Err(HttpsSetupError::Timeout);
        }
        let client = http_client::build(config.timeout, config.ca_file.as_deref())?;
        Ok(HttpsAnchorer {
            url,
            shown,
            secret: config.secret,
            client,
        })
    }

    /// The service's URL as shown in errors and logs (no credentials, no
    /// query).
    pub fn url(&self) -> &str {
        &self.shown
    }

    /// Offer `head` to the service: one signed POST (`now_ms`, the
    /// gateway clock, makes `webhook-timestamp` and the receipt's time).
    ///
    /// [`Progress::Anchored`] with the service's receipt id (a service
    /// keeps what it acknowledged: confirmations are 0 and nothing waits),
    /// or [`Progress::Superseded`] when it already holds this size or a
    /// larger one, which is also the answer to a repeated head.
    pub async fn submit(&self, head: &Head, now_ms: i64) -> Result<Progress, AnchorError> {
        let body = request_body(head).map_err(|e| AnchorError::Unavailable {
            url: self.shown.clone(),
            message: format!("cannot encode the tree head: {e}"),
        })?;
        let id = message_id(head);
        let timestamp = now_ms.div_euclid(1000);
        let signature = self.secret.sign_webhook(&id, timestamp, &body);
        let sent = self
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("idempotency-key", &id)
            .body(body)
            .send()
            .await;
        let answer = self.answer(sent, MAX_ANSWER_BYTES).await?;
        tracing::debug!(url = %self.shown, size = head.size, status = %answer.status, "tree head offered");
        submit_answer(&answer, head, now_ms, &self.shown)
    }

    /// Every head the service holds for `gateway`, as
    /// [`check_anchored`](vitalgate_chain::anchored::check_anchored) takes
    /// them: one signed GET of `{url}/{gateway hex}`.
    ///
    /// The list is returned as the service recorded it; whether each head
    /// is this gateway's and agrees with the local log is the check's job.
    pub async fn anchors(&self, gateway: &[u8; 32]) -> Result<Vec<AnchoredHead>, AnchorError> {
        let url = self.list_url(gateway);
        let shown = redact(url.as_str());
        let id = list_id(gateway);
        let timestamp = Timestamp::now().millis().div_euclid(1000);
        let signature = self.secret.sign_webhook(&id, timestamp, b"");
        let sent = self
            .client
            .get(url)
            .header("accept", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .send()
            .await;
        let answer = self.answer(sent, MAX_LIST_BYTES).await?;
        tracing::debug!(url = %shown, status = %answer.status, "anchors read");
        list_answer(&answer, &self.shown, &shown)
    }

    /// `{url}/{gateway hex}`, the query (if any) kept.
    fn list_url(&self, gateway: &[u8; 32]) -> Url {
        let mut url = self.url.clone();
        // Every http(s) URL can be a base (checked in `new`).
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.pop_if_empty().push(&alloy::hex::encode(gateway));
        }
        url
    }

    /// The answer's status, redirect target and first `limit` bytes (+1, to
    /// know there were more).
    async fn answer(
        &self,
        sent: Result<reqwest::Response, reqwest::Error>,
        limit: usize,
    ) -> Result<Answer, AnchorError> {
        let unavailable = |e: &reqwest::Error| AnchorError::Unavailable {
            url: self.shown.clone(),
            message: describe(e),
        };
        let mut response = sent.map_err(|e| unavailable(&e))?;
        let status = response.status();
        let location = response
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(redact_location);
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(|e| unavailable(&e))? {
            let room = (limit + 1).saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() > limit {
                body.truncate(limit);
                truncated = true;
                break;
            }
        }
        Ok(Answer {
            status,
            location,
            body,
            truncated,
        })
    }
}

/// The Standard Webhooks message id of a head: `<gateway hex>-<size>`
/// (lowercase hex, decimal size). The same head always has the same id, so
/// a retried POST is recognisable as the same anchor; two gateways never
/// share one.
pub fn message_id(head: &Head) -> String {
    format!("{}-{}", alloy::hex::encode(head.gateway), head.size)
}

/// The message id of a list request: `<gateway hex>-list` (no head has a
/// size that is not decimal, so it never collides with one).
pub fn list_id(gateway: &[u8; 32]) -> String {
    format!("{}-list", alloy::hex::encode(gateway))
}

/// The POST body: the head's JSON, compact, members in the order
/// `gateway` (64 hex digits), `size` (integer), `root` (64 hex digits),
/// `time` (integer, ms), `signed` (hex of the COSE_Sign1), hex lowercase.
pub fn request_body(head: &Head) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(head)
}

/// An answer as read.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    /// A redirect's target, redacted.
    location: Option<String>,
    /// At most the limit's bytes of the body.
    body: Vec<u8>,
    /// The body was longer than the limit.
    truncated: bool,
}

/// A 200/201 answer to a POST.
#[derive(Deserialize)]
struct Accepted {
    id: String,
}

/// A 409 answer to a POST.
#[derive(Deserialize)]
struct Conflict {
    latest: u64,
}

/// One entry of the list answer.
#[derive(Deserialize)]
struct Listed {
    size: u64,
    #[serde(deserialize_with = "hex32")]
    root: [u8; 32],
    time: i64,
    #[serde(deserialize_with = "hex_vec")]
    signed: Vec<u8>,
    id: String,
}

fn hex32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = String::deserialize(d)?;
    let mut out = [0u8; 32];
    alloy::hex::decode_to_slice(&text, &mut out).map_err(serde::de::Error::custom)?;
    Ok(out)
}

fn hex_vec<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    alloy::hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// What a POST's answer means for the head.
fn submit_answer(
    answer: &Answer,
    head: &Head,
    now_ms: i64,
    url: &str,
) -> Result<Progress, AnchorError> {
    let misbehaves = |what: String| AnchorError::Unavailable {
        url: url.to_owned(),
        message: format!(
            "HTTP {}: {what}; the service misbehaves, sending again later",
            answer.status
        ),
    };
    match answer.status.as_u16() {
        200 | 201 => {
            if answer.truncated {
                return Err(misbehaves(format!(
                    "an answer longer than {MAX_ANSWER_BYTES} bytes instead of a receipt"
                )));
            }
            let accepted: Accepted = serde_json::from_slice(&answer.body).map_err(|e| {
                misbehaves(format!(
                    "no receipt (a JSON object with a string \"id\"): {e}"
                ))
            })?;
            check_receipt_id(&accepted.id).map_err(misbehaves)?;
            Ok(Progress::Anchored(Receipt {
                size: head.size,
                id: accepted.id,
                block_number: None,
                block_hash: None,
                gas_used: None,
                gas_price: None,
                confirmations: 0,
                at: now_ms,
            }))
        }
        409 => {
            let conflict: Conflict = serde_json::from_slice(&answer.body).map_err(|e| {
                misbehaves(format!(
                    "no JSON {{\"latest\": <size>}} with the conflict: {e}"
                ))
            })?;
            if conflict.latest < head.size {
                return Err(misbehaves(format!(
                    "says it holds size {} and refuses the larger size {}",
                    conflict.latest, head.size
                )));
            }
            Ok(Progress::Superseded {
                latest: conflict.latest,
            })
        }
        202..=299 => Err(AnchorError::Unavailable {
            url: url.to_owned(),
            message: format!(
                "HTTP {}: taken without a receipt; sending again later under the same Idempotency-Key",
                answer.status
            ),
        }),
        _ => Err(not_accepted(answer, url)),
    }
}

/// What a GET's answer holds.
fn list_answer(answer: &Answer, base: &str, url: &str) -> Result<Vec<AnchoredHead>, AnchorError> {
    let malformed = |what: String| AnchorError::Unavailable {
        url: url.to_owned(),
        message: format!("HTTP {}: {what}", answer.status),
    };
    match answer.status.as_u16() {
        200 => {}
        201..=299 => {
            return Err(malformed(
                "no list of anchors (expected 200 with a JSON array)".into(),
            ));
        }
        _ => return Err(not_accepted(answer, url)),
    }
    if answer.truncated {
        return Err(malformed(format!(
            "a list longer than {MAX_LIST_BYTES} bytes; not read"
        )));
    }
    let listed: Vec<Listed> = serde_json::from_slice(&answer.body).map_err(|e| {
        malformed(format!(
            "not a JSON array of {{\"size\", \"root\", \"time\", \"signed\", \"id\"}}: {e}"
        ))
    })?;
    listed
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            check_receipt_id(&l.id).map_err(|e| malformed(format!("entry {i}: {e}")))?;
            Ok(AnchoredHead {
                size: l.size,
                root: l.root,
                time: l.time,
                tree_head: l.signed,
                location: format!("receipt {} from {base}", l.id),
            })
        })
        .collect()
}

/// A receipt id is 1 to [`MAX_RECEIPT_ID`] bytes without control
/// characters: it is stored beside the head and printed in reports.
fn check_receipt_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_RECEIPT_ID || id.chars().any(char::is_control) {
        Err(format!(
            "a receipt id must be 1 to {MAX_RECEIPT_ID} bytes without control characters"
        ))
    } else {
        Ok(())
    }
}

/// The error for an answer that is neither a receipt nor a conflict:
/// transient for overload and server failures, a refusal (someone must
/// fix the configuration or the enrolment) for the rest.
fn not_accepted(answer: &Answer, url: &str) -> AnchorError {
    let status = answer.status;
    let said = excerpt(&answer.body)
        .map(|t| format!(" (the service said: {t})"))
        .unwrap_or_default();
    let refused = |what: &str| AnchorError::Refused {
        url: url.to_owned(),
        message: format!("HTTP {status}: {what}{said}"),
    };
    match status.as_u16() {
        408 | 425 | 429 | 500..=599 => AnchorError::Unavailable {
            url: url.to_owned(),
            message: format!("HTTP {status}: the service is overloaded or failing{said}"),
        },
        300..=399 => refused(&format!(
            "a redirect (to {}), not followed: set anchor.https.url to the final address",
            answer.location.as_deref().unwrap_or("nowhere given")
        )),
        400 => refused(
            "the service cannot read the request: check that anchor.https.url is a vitalgate anchoring endpoint (docs/FORMAT.md, \"Anchoring over HTTPS\")",
        ),
        401 | 403 => refused(
            "the service refused the signature: check anchor.https.secret_file (it must hold the secret the hospital has for this gateway) and the gateway's clock",
        ),
        404 => refused(
            "nothing to anchor to at this address, or the service does not know this gateway: check anchor.https.url and that the hospital enrolled the gateway",
        ),
        422 => refused(
            "the service refused this tree head: check with the hospital that this gateway's identity key is the one enrolled",
        ),
        _ if status.is_client_error() => {
            refused("the service refuses the request: check anchor.https.url")
        }
        _ => AnchorError::Unavailable {
            url: url.to_owned(),
            message: format!("HTTP {status}: an answer the protocol does not have{said}"),
        },
    }
}

/// Up to [`EXCERPT_CHARS`] characters of a text body, control characters
/// blanked (the message goes to logs); none for an empty or binary body.
fn excerpt(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() {
        return None;
    }
    let mut out: String = text
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(EXCERPT_CHARS).is_some() {
        out.push('…');
    }
    Some(out)
}

/// A redirect target fit for messages (a relative one as it is).
fn redact_location(location: &str) -> String {
    if Url::parse(location).is_ok() {
        redact(location)
    } else {
        location
            .split(['?', '#'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(EXCERPT_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use vitalgate_chain::TreeHead;
    use vitalgate_chain::crypto::keys::IdentityKey;

    const URL: &str = "https://anchors.example/v1/anchors";

    fn head() -> Head {
        Head {
            gateway: [0x11; 32],
            size: 7,
            root: [0xef; 32],
            time: 1_700_000_060_000,
            signed: vec![0xd2, 0x84, 0x00, 0xff],
        }
    }

    fn answer(status: u16, body: &[u8]) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            location: None,
            body: body.to_vec(),
            truncated: false,
        }
    }

    fn submitted(status: u16, body: &[u8]) -> Result<Progress, AnchorError> {
        submit_answer(&answer(status, body), &head(), 1_700_000_061_234, URL)
    }

    fn config(url: &str) -> HttpsAnchorConfig {
        HttpsAnchorConfig {
            url: url.into(),
            secret: Secret::new(vec![0x42; 32]),
            ca_file: None,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_message_id_is_the_gateway_in_lowercase_hex_a_dash_and_the_decimal_size() {
        let mut head = head();
        head.gateway[0] = 0xAB;
        head.size = 1234;
        let id = message_id(&head);
        assert_eq!(id, format!("ab{}-1234", "11".repeat(31)));
        assert_eq!(
            list_id(&head.gateway),
            format!("ab{}-list", "11".repeat(31))
        );
    }

    #[test]
    fn the_body_is_the_heads_compact_json_in_field_order() {
        let body = request_body(&head()).unwrap();
        let want = format!(
            r#"{{"gateway":"{}","size":7,"root":"{}","time":1700000060000,"signed":"d28400ff"}}"#,
            "11".repeat(32),
            "ef".repeat(32)
        );
        assert_eq!(String::from_utf8(body).unwrap(), want);
    }

    /// docs/FORMAT.md, "Anchoring over HTTPS", test vector: the tree head
    /// of "Test vectors (header and tree head)", its body and signature.
    #[test]
    fn the_format_documents_test_vector_is_reproduced() {
        let key = IdentityKey::from_seed(&[7; 32]);
        let signed = TreeHead {
            gateway: key.kid(),
            size: 2,
            root: [0xef; 32],
            time: vitalgate_devices::Timestamp(1_700_000_060_000),
        }
        .sign(&key);
        let head = Head::open(signed, &key.public()).unwrap();
        let body = String::from_utf8(request_body(&head).unwrap()).unwrap();
        let secret_text = format!(
            "whsec_{}",
            base64::engine::general_purpose::STANDARD.encode([0x42; 32])
        );
        assert_eq!(
            secret_text,
            "whsec_QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI="
        );
        let secret = Secret::new(vec![0x42; 32]);
        let id = message_id(&head);
        let signature = secret.sign_webhook(&id, 1_700_000_060, body.as_bytes());
        let gateway = "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";
        assert_eq!(id, format!("{gateway}-2"));
        let want_body = concat!(
            r#"{"gateway":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c","#,
            r#""size":2,"root":"efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef","#,
            r#""time":1700000060000,"signed":"d28443a10132a10450fe812c12f3ab4ce6ac5db69ac352f9065859"#,
            "a50075766974616c676174652f747265652d686561642f310150fe812c12f3ab4ce6ac5db69ac352f9060202",
            "035820efefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefef041b0000018bcfe65260",
            "5840d77a279c71e28b9681e496904420c01f17b929ee7c0bcd352e80e836f9014710d456c14a85f7ddb67f36",
            r#"0b8490dfb79fea596f83c7be538d15fbd6ee389bca06"}"#,
        );
        assert_eq!(body, want_body);
        assert_eq!(body.len(), 558);
        let want_signature = "v1,7lQAZk1WR99/ZdVVIxJHP+BITilm40oYeXBDlzWWe44=";
        assert_eq!(signature, want_signature);
        // The document shows exactly these values.
        let doc = include_str!("../../docs/FORMAT.md");
        let section = doc
            .split("# Anchoring over HTTPS")
            .nth(1)
            .expect("docs/FORMAT.md has the section");
        for shown in [
            want_body,
            want_signature,
            &secret_text,
            &format!("{gateway}-2"),
            "1700000060",
        ] {
            assert!(section.contains(shown), "docs/FORMAT.md lacks {shown}");
        }
    }

    #[test]
    fn a_receipt_is_anchored_with_no_confirmations_at_the_gateways_time() {
        for status in [200, 201] {
            let progress = submitted(status, br#"{"id":"r-17","extra":[1,2]}"#).unwrap();
            assert_eq!(
                progress,
                Progress::Anchored(Receipt {
                    size: 7,
                    id: "r-17".into(),
                    block_number: None,
                    block_hash: None,
                    gas_used: None,
                    gas_price: None,
                    confirmations: 0,
                    at: 1_700_000_061_234,
                })
            );
        }
    }

    #[test]
    fn a_conflict_is_superseded_by_the_services_latest_size() {
        assert_eq!(
            submitted(409, br#"{"latest":7}"#).unwrap(),
            Progress::Superseded { latest: 7 }
        );
        assert_eq!(
            submitted(409, br#"{"latest":9,"why":"x"}"#).unwrap(),
            Progress::Superseded { latest: 9 }
        );
        let e = submitted(409, br#"{"latest":6}"#).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("holds size 6"), "{e}");
    }

    #[test]
    fn statuses_map_to_transient_or_refused_and_refusals_say_what_to_check() {
        for status in [408, 425, 429, 500, 502, 503, 504, 599] {
            let e = submitted(status, b"busy").unwrap_err();
            assert!(e.is_transient(), "{status}: {e}");
            assert!(e.to_string().contains(&status.to_string()), "{e}");
        }
        for (status, check) in [
            (400, "anchor.https.url"),
            (401, "anchor.https.secret_file"),
            (403, "anchor.https.secret_file"),
            (404, "enrolled the gateway"),
            (422, "identity key"),
            (405, "anchor.https.url"),
            (413, "anchor.https.url"),
            (301, "final address"),
            (308, "final address"),
        ] {
            let e = submitted(status, b"").unwrap_err();
            assert!(!e.is_transient(), "{status}: {e}");
            let text = e.to_string();
            assert!(text.contains(&format!("HTTP {status}")), "{text}");
            assert!(text.contains(check), "{status}: {text}");
            assert!(text.contains(URL), "{text}");
        }
        for status in [202, 204, 299, 100, 600] {
            assert!(
                submitted(status, br#"{"id":"x"}"#)
                    .unwrap_err()
                    .is_transient()
            );
        }
    }

    #[test]
    fn a_redirect_names_its_target_without_credentials_or_query() {
        let mut a = answer(302, b"");
        a.location = Some(redact_location(
            "https://user:pw@elsewhere.example/anchors?token=s3cret",
        ));
        let text = submit_answer(&a, &head(), 0, URL).unwrap_err().to_string();
        assert!(text.contains("https://elsewhere.example/anchors"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("pw"), "{text}");
        assert_eq!(redact_location("/next?token=x\n"), "/next");
    }

    #[test]
    fn a_refusal_quotes_at_most_two_hundred_characters_of_a_text_body() {
        let long = format!("bad\nsignature {}", "x".repeat(1000));
        let text = submitted(401, long.as_bytes()).unwrap_err().to_string();
        assert!(
            text.contains("the service said: bad signature xxx"),
            "{text}"
        );
        assert!(text.ends_with("xxx…)"), "{text}");
        assert!(text.len() < 600, "{}", text.len());
        let binary = submitted(401, &[0xff, 0xfe, 0x00, 0x80])
            .unwrap_err()
            .to_string();
        assert!(!binary.contains("the service said"), "{binary}");
        assert_eq!(excerpt(b"  \n "), None);
        assert_eq!(
            excerpt("é".repeat(300).as_bytes()).unwrap().chars().count(),
            201
        );
    }

    #[test]
    fn a_success_without_a_usable_receipt_is_transient_and_says_the_service_misbehaves() {
        let garbage: &[&[u8]] = &[
            b"",
            b"ok",
            b"null",
            b"[]",
            br#"{"id":5}"#,
            br#"{"id":""}"#,
            br#"{"id":"a\nb"}"#,
            br#"{"receipt":"x"}"#,
            b"{\"id\":\"\xff\"}",
            &[0xff; 64],
        ];
        for body in garbage {
            let e = submitted(200, body).unwrap_err();
            assert!(e.is_transient(), "{e}");
            assert!(e.to_string().contains("misbehaves"), "{e}");
        }
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_RECEIPT_ID + 1));
        assert!(submitted(201, long.as_bytes()).unwrap_err().is_transient());
        let mut cut = answer(200, br#"{"id":"x"}"#);
        cut.truncated = true;
        assert!(
            submit_answer(&cut, &head(), 0, URL)
                .unwrap_err()
                .is_transient()
        );
    }

    #[test]
    fn garbage_bodies_never_panic_on_any_status() {
        let bodies: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"{".to_vec(),
            br#"{"latest":-1}"#.to_vec(),
            br#"{"latest":1e400}"#.to_vec(),
            br#"{"latest":18446744073709551616}"#.to_vec(),
            br#"[{"size":1,"root":"zz","time":0,"signed":"","id":"a"}]"#.to_vec(),
            (0..=255u8).collect(),
            "\u{202e}ünïcode".repeat(100).into_bytes(),
        ];
        for status in [100, 200, 201, 204, 302, 400, 401, 409, 418, 500, 999] {
            for body in &bodies {
                let a = answer(status, body);
                let _ = submit_answer(&a, &head(), 0, URL);
                let _ = list_answer(&a, URL, URL);
            }
        }
    }

    #[test]
    fn a_list_maps_to_anchored_heads_located_by_receipt_and_url() {
        let body = format!(
            r#"[{{"size":3,"root":"{}","time":5,"signed":"0a0b","id":"r-1","more":true}},{{"id":"r 2","signed":"","time":-1,"root":"{}","size":0}}]"#,
            "ab".repeat(32),
            "00".repeat(32)
        );
        let heads = list_answer(&answer(200, body.as_bytes()), URL, "x").unwrap();
        assert_eq!(
            heads,
            vec![
                AnchoredHead {
                    size: 3,
                    root: [0xab; 32],
                    time: 5,
                    tree_head: vec![0x0a, 0x0b],
                    location: format!("receipt r-1 from {URL}"),
                },
                AnchoredHead {
                    size: 0,
                    root: [0; 32],
                    time: -1,
                    tree_head: Vec::new(),
                    location: format!("receipt r 2 from {URL}"),
                },
            ]
        );
        assert_eq!(list_answer(&answer(200, b"[]"), URL, URL).unwrap(), []);
    }

    #[test]
    fn a_malformed_list_is_transient_with_the_reason() {
        for body in [
            "",
            "{}",
            "[{}]",
            r#"[{"size":1,"root":"ab","time":0,"signed":"","id":"a"}]"#,
            r#"[{"size":-1,"root":"","time":0,"signed":"","id":"a"}]"#,
            &format!(
                r#"[{{"size":1,"root":"{}","time":0,"signed":"xyz","id":"a"}}]"#,
                "00".repeat(32)
            ),
            &format!(
                r#"[{{"size":1,"root":"{}","time":0,"signed":"","id":""}}]"#,
                "00".repeat(32)
            ),
        ] {
            let e = list_answer(&answer(200, body.as_bytes()), URL, URL).unwrap_err();
            assert!(e.is_transient(), "{body}: {e}");
            assert!(e.to_string().contains("HTTP 200 OK: "), "{e}");
        }
        assert!(
            list_answer(&answer(204, b""), URL, URL)
                .unwrap_err()
                .is_transient()
        );
        let e = list_answer(&answer(403, b""), URL, URL).unwrap_err();
        assert!(e.to_string().contains("secret_file"), "{e}");
    }

    #[test]
    fn the_list_url_is_the_endpoint_and_the_gateway_hex_with_the_query_kept() {
        let gateway = [0x11; 32];
        let hex = "11".repeat(32);
        for (base, want) in [
            (URL, format!("{URL}/{hex}")),
            ("https://a.example/x/", format!("https://a.example/x/{hex}")),
            ("https://a.example", format!("https://a.example/{hex}")),
            (
                "https://a.example/x?k=v#frag",
                format!("https://a.example/x/{hex}?k=v"),
            ),
        ] {
            let anchorer = HttpsAnchorer::new(config(base)).unwrap();
            assert_eq!(anchorer.list_url(&gateway).as_str(), want);
        }
    }

    #[test]
    fn only_https_or_http_to_this_machine_is_accepted() {
        for ok in [
            URL,
            "http://127.0.0.1:8080/anchors",
            "http://localhost/anchors",
            "http://[::1]:9/",
        ] {
            assert!(HttpsAnchorer::new(config(ok)).is_ok(), "{ok}");
        }
        let e =
            HttpsAnchorer::new(config("http://user:pw@anchors.example/a?key=s3cret")).unwrap_err();
        assert!(matches!(e, HttpsSetupError::Insecure { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("http://anchors.example/a"), "{text}");
        assert!(!text.contains("s3cret") && !text.contains("pw"), "{text}");
        for bad in ["ftp://anchors.example/", "anchors.example", "", "https://"] {
            let e = HttpsAnchorer::new(config(bad)).unwrap_err();
            assert!(matches!(e, HttpsSetupError::Url { .. }), "{bad}: {e}");
        }
        let mut zero = config(URL);
        zero.timeout = Duration::ZERO;
        assert!(matches!(
            HttpsAnchorer::new(zero),
            Err(HttpsSetupError::Timeout)
        ));
    }

    #[test]
    fn a_missing_or_invalid_ca_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [dir.path().join("missing.pem"), garbage, broken] {
            let mut c = config(URL);
            c.ca_file = Some(path.clone());
            let e = HttpsAnchorer::new(c).unwrap_err();
            assert!(
                matches!(
                    e,
                    HttpsSetupError::Client(http_client::ClientError::Ca { .. })
                ),
                "{e}"
            );
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        }
    }

    /// A self-signed CA certificate (P-256, its key thrown away once
    /// made): a hospital's private CA.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBjjCCATWgAwIBAgIUKoNsL7P6Gkm5FQHOPPNEanpATrkwCgYIKoZIzj0EAwIw
HDEaMBgGA1UEAwwRdml0YWxnYXRlIHRlc3QgQ0EwIBcNMjYxMjA0MjE1MzM2WhgP
MjEyNjExMTAyMTUzMzZaMBwxGjAYBgNVBAMMEXZpdGFsZ2F0ZSB0ZXN0IENBMFkw
EwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEpU8n/x2hLz3J10OFoDYWQzej0ibqGfFU
WVJs8yzfQAbRF12BbWpb73BGMHK3Ba1rwPzEB79slLez6vB7nTm39KNTMFEwHQYD
VR0OBBYEFNBiDjps2lGx1rxRj81ptLZOsQdBMB8GA1UdIwQYMBaAFNBiDjps2lGx
1rxRj81ptLZOsQdBMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIg
UJRgmJQahIeGr0BIwvILnrOoNieaEWtiJgAll7FvQ/sCIDzxkPWWcTJscQYe4910
rCJBH+v80uaWKrcTLyOKu2gv
-----END CERTIFICATE-----
";

    #[test]
    fn a_ca_file_with_certificates_is_taken() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("ca.pem");
        std::fs::write(&one, TEST_CA).unwrap();
        let two = dir.path().join("bundle.pem");
        std::fs::write(&two, format!("{TEST_CA}{TEST_CA}")).unwrap();
        for path in [one, two] {
            let mut c = config(URL);
            c.ca_file = Some(path);
            HttpsAnchorer::new(c).unwrap();
        }
    }

    #[test]
    fn the_anchorers_debug_shows_no_secret() {
        let anchorer = HttpsAnchorer::new(config("https://u:pw@a.example/x?t=1")).unwrap();
        let shown = format!("{anchorer:?}");
        assert_eq!(shown, "HttpsAnchorer { url: \"https://a.example/x\", .. }");
    }
}
