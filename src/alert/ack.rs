//! Acknowledgements from clinicians, over MQTT or HTTP: one signed JSON
//! document, the same on both (`docs/FORMAT.md`, "Acknowledgement").
//!
//! ```json
//! {"alert": "<alert id>", "by": "<who>", "timestamp": 1764918000,
//!  "signature": "v1,<base64 HMAC-SHA256(secret, "<timestamp>.<alert>\n<by>")>"}
//! ```
//!
//! An acknowledgement stops an alert's escalation, so a forged one could
//! silence it: every acknowledgement must carry the hospital's signature
//! with the shared secret (`alerts.ack_secret_file`), and a gateway
//! without that secret takes none. The signed text is unambiguous: the
//! timestamp is digits and ends at the first `.`, an alert id never holds
//! a newline. A signed acknowledgement names its alert, so replaying it
//! can only acknowledge that alert again (which changes nothing); the
//! timestamp must still be within [`MAX_SKEW_SECS`] of the gateway's
//! clock, generous because a home gateway's clock may be off after a
//! power cut.

use crate::deliver::signature::Secret;
use serde::Deserialize;
use vitalgate_detect::alert::AckError;
use vitalgate_devices::Timestamp;

/// How far an acknowledgement's timestamp may be from the gateway's clock.
pub const MAX_SKEW_SECS: i64 = 24 * 3600;
/// The largest acknowledgement accepted.
pub const MAX_BYTES: usize = 4096;

/// Why an acknowledgement was not taken. Each has a stable name (metrics,
/// the HTTP answer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AckRefused {
    /// The gateway has no acknowledgement secret configured.
    #[error("this gateway takes no acknowledgements (alerts.ack_secret_file is not set)")]
    NotAccepted,
    /// Not the document described above.
    #[error("malformed acknowledgement: {0}")]
    Malformed(String),
    /// The signature does not match (wrong secret, or altered).
    #[error("acknowledgement signature does not verify")]
    BadSignature,
    /// The timestamp is too far from the gateway's clock.
    #[error("acknowledgement timestamp is more than {MAX_SKEW_SECS} s from the gateway's clock")]
    Stale,
    /// The lifecycle does not take it: no open alert has that id, or
    /// somebody acknowledged it first.
    #[error(transparent)]
    Book(#[from] AckError),
}

impl AckRefused {
    /// A stable snake_case name.
    pub fn reason(&self) -> &'static str {
        match self {
            AckRefused::NotAccepted => "not_accepted",
            AckRefused::Malformed(_) => "malformed",
            AckRefused::BadSignature => "bad_signature",
            AckRefused::Stale => "stale",
            AckRefused::Book(AckError::Unknown(_)) => "unknown_alert",
            AckRefused::Book(AckError::AlreadyAcknowledged { .. }) => "already_acknowledged",
        }
    }
}

/// A checked acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The alert id.
    pub alert: String,
    /// Who acknowledged it.
    pub by: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    alert: String,
    by: String,
    timestamp: i64,
    signature: String,
}

/// The text the signature is over.
fn signed_text(timestamp: i64, alert: &str, by: &str) -> String {
    format!("{timestamp}.{alert}\n{by}")
}

/// Sign an acknowledgement (the hospital's side; tests and tools).
pub fn sign(secret: &Secret, alert: &str, by: &str, timestamp: i64) -> Vec<u8> {
    let signature = secret.sign(&[signed_text(timestamp, alert, by).as_bytes()]);
    serde_json::to_vec(&serde_json::json!({
        "alert": alert,
        "by": by,
        "timestamp": timestamp,
        "signature": signature,
    }))
    .unwrap_or_default()
}

/// Check an acknowledgement document against `secret` at gateway time
/// `now`.
pub fn check(body: &[u8], secret: &Secret, now: Timestamp) -> Result<Ack, AckRefused> {
    if body.len() > MAX_BYTES {
        return Err(AckRefused::Malformed(format!(
            "{} bytes (at most {MAX_BYTES})",
            body.len()
        )));
    }
    let d: Document =
        serde_json::from_slice(body).map_err(|e| AckRefused::Malformed(e.to_string()))?;
    let printable = |s: &str| !s.is_empty() && s.len() <= 256 && !s.chars().any(char::is_control);
    if !printable(&d.alert) || !printable(&d.by) {
        return Err(AckRefused::Malformed(
            "alert and by must be 1–256 characters without control characters".into(),
        ));
    }
    let text = signed_text(d.timestamp, &d.alert, &d.by);
    if !secret.verify(&[text.as_bytes()], &d.signature) {
        return Err(AckRefused::BadSignature);
    }
    let now_secs = now.millis().div_euclid(1000);
    if now_secs.abs_diff(d.timestamp) > MAX_SKEW_SECS as u64 {
        return Err(AckRefused::Stale);
    }
    Ok(Ack {
        alert: d.alert,
        by: d.by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    const NOW: Timestamp = Timestamp(1_764_918_000_000);

    #[test]
    fn the_format_vector_signs_as_documented() {
        // docs/FORMAT.md, "Acknowledgement".
        let body = sign(
            &secret(),
            "sensor_off/patient-0001/ox-bedroom/1796371200000",
            "nurse-7",
            1_796_371_260,
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"alert":"sensor_off/patient-0001/ox-bedroom/1796371200000","by":"nurse-7","signature":"v1,KSlxN0FNYFIYWZiuZzngaU//QABMomnLFWQgOswAYWA=","timestamp":1796371260}"#
        );
    }

    #[test]
    fn a_signed_acknowledgement_is_taken() {
        let body = sign(&secret(), "news2/p-1/-/1", "nurse-7", 1_764_918_000);
        assert_eq!(
            check(&body, &secret(), NOW),
            Ok(Ack {
                alert: "news2/p-1/-/1".into(),
                by: "nurse-7".into()
            })
        );
    }

    #[test]
    fn forged_altered_stale_and_malformed_acknowledgements_are_refused() {
        let good = sign(&secret(), "a", "nurse-7", 1_764_918_000);
        let other = Secret::new(b"another secret, 32 bytes long!!!".to_vec());
        assert_eq!(check(&good, &other, NOW), Err(AckRefused::BadSignature));
        let altered = String::from_utf8(good.clone())
            .unwrap()
            .replace("nurse-7", "nurse-8");
        assert_eq!(
            check(altered.as_bytes(), &secret(), NOW),
            Err(AckRefused::BadSignature)
        );
        let old = sign(&secret(), "a", "nurse-7", 1_764_918_000 - MAX_SKEW_SECS - 1);
        assert_eq!(check(&old, &secret(), NOW), Err(AckRefused::Stale));
        assert!(matches!(
            check(b"{\"alert\":1}", &secret(), NOW),
            Err(AckRefused::Malformed(_))
        ));
        assert!(matches!(
            check(&[0xff; 5000], &secret(), NOW),
            Err(AckRefused::Malformed(_))
        ));
        let sneaky = sign(&secret(), "a\nb", "c", 1_764_918_000);
        assert!(matches!(
            check(&sneaky, &secret(), NOW),
            Err(AckRefused::Malformed(_))
        ));
    }
}
