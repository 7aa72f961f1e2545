//! Shared-secret signatures (HMAC-SHA256) between the gateway and the
//! hospital: on the webhooks the gateway sends, and on the acknowledgements
//! it accepts.
//!
//! Webhooks follow the Standard Webhooks specification
//! (<https://www.standardwebhooks.com/>): headers `webhook-id`,
//! `webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`, so the receiving side can use any of that
//! specification's libraries. Secrets may be given the way its libraries
//! print them (`whsec_` and base64) or as raw bytes.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{KeyInit, Mac};
use sha2::Sha256;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

type HmacSha256 = hmac::Hmac<Sha256>;

/// The shortest secret accepted (128 bits).
pub const MIN_SECRET_BYTES: usize = 16;
/// The signature scheme's version prefix.
const V1: &str = "v1,";

/// Why a secret file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// It cannot be read.
    #[error("{path}: cannot read the secret: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// Group or others may read it.
    #[error("{path}: mode {mode:03o} lets others read the secret; chmod 600 it")]
    Exposed {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Too short, or a `whsec_` secret that is not base64.
    #[error("{path}: {problem}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: &'static str,
    },
}

/// A shared secret. Never printed: its `Debug` says only how long it is.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

impl Secret {
    /// A secret from its bytes (tests, and [`Secret::load`]).
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// Read a secret file: `whsec_<base64>` (Standard Webhooks) or raw
    /// bytes, a trailing newline ignored. Refused when group or others may
    /// read it, or when shorter than [`MIN_SECRET_BYTES`].
    pub fn load(path: &Path) -> Result<Secret, SecretError> {
        let read = |error| SecretError::Read {
            path: path.to_owned(),
            error,
        };
        let file = std::fs::File::open(path).map_err(read)?;
        let mode = file.metadata().map_err(read)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Exposed {
                path: path.to_owned(),
                mode,
            });
        }
        let mut raw = Zeroizing::new(Vec::with_capacity(4097));
        file.take(4096).read_to_end(&mut raw).map_err(read)?;
        let mut text: &[u8] = &raw;
        while let [rest @ .., b'\n' | b'\r'] = text {
            text = rest;
        }
        let bytes = match text.strip_prefix(b"whsec_") {
            Some(b64) => STANDARD.decode(b64).map_err(|_| SecretError::Invalid {
                path: path.to_owned(),
                problem: "a whsec_ secret must be base64 after the prefix",
            })?,
            None => text.to_vec(),
        };
        if bytes.len() < MIN_SECRET_BYTES {
            return Err(SecretError::Invalid {
                path: path.to_owned(),
                problem: "the secret is shorter than 16 bytes; use e.g. `openssl rand -hex 32`",
            });
        }
        Ok(Secret::new(bytes))
    }

    fn mac(&self, parts: &[&[u8]]) -> HmacSha256 {
        // HMAC takes keys of any length.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of every length"),
        };
        for p in parts {
            mac.update(p);
        }
        mac
    }

    /// `v1,<base64 HMAC-SHA256 of the concatenated parts>`.
    pub fn sign(&self, parts: &[&[u8]]) -> String {
        format!(
            "{V1}{}",
            STANDARD.encode(self.mac(parts).finalize().into_bytes())
        )
    }

    /// Whether `signature` (one or more space-separated `v1,<base64>`, as
    /// Standard Webhooks allows during a secret rotation) is this secret's
    /// signature of the parts. Constant-time in the signature compared.
    pub fn verify(&self, parts: &[&[u8]], signature: &str) -> bool {
        signature.split(' ').any(|s| {
            let Some(b64) = s.strip_prefix(V1) else {
                return false;
            };
            let Ok(tag) = STANDARD.decode(b64) else {
                return false;
            };
            self.mac(parts).verify_slice(&tag).is_ok()
        })
    }

    /// The Standard Webhooks signature of a webhook.
    pub fn sign_webhook(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let ts = timestamp.to_string();
        self.sign(&[id.as_bytes(), b".", ts.as_bytes(), b".", body])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::OpenOptionsExt as _;

    #[test]
    fn the_standard_webhooks_example_signature_is_reproduced() {
        // The example of the Standard Webhooks specification
        // (spec/standard-webhooks.md, "Signature scheme").
        let secret = {
            let b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
            Secret::new(STANDARD.decode(b64).unwrap())
        };
        let body = br#"{"test": 2432232314}"#;
        let sig = secret.sign_webhook("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let ts = b"1614265330";
        let parts: [&[u8]; 5] = [b"msg_p5jXN8AQM9LWM0D4loKWxJek", b".", ts, b".", body];
        assert!(secret.verify(&parts, &format!("v1,bm9wZQ== {sig}")));
        assert!(!secret.verify(&parts, "v1,bm9wZQ=="));
        assert!(!secret.verify(&parts, "v2,x"));
    }

    #[test]
    fn secret_files_must_be_private_long_enough_and_may_be_whsec() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, body: &[u8], mode: u32| {
            let p = dir.path().join(name);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&p)
                .unwrap();
            std::io::Write::write_all(&mut f, body).unwrap();
            p
        };
        let raw = write("raw", b"0123456789abcdef0123\n", 0o600);
        assert_eq!(Secret::load(&raw).unwrap().0.len(), 20);
        let wh = write("wh", b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", 0o600);
        assert_eq!(Secret::load(&wh).unwrap().0.len(), 24);
        let open = write("open", b"0123456789abcdef0123", 0o644);
        assert!(matches!(
            Secret::load(&open),
            Err(SecretError::Exposed { mode: 0o644, .. })
        ));
        let short = write("short", b"tiny", 0o600);
        assert!(
            Secret::load(&short)
                .unwrap_err()
                .to_string()
                .contains("16 bytes")
        );
        assert_eq!(
            format!("{:?}", Secret::load(&raw).unwrap()),
            "Secret(20 bytes)"
        );
    }
}
