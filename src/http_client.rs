//! The gateway's outgoing HTTPS client, as every sender to the hospital
//! (alert webhooks, the HTTPS anchoring service) builds it: rustls, an
//! optional extra CA bundle for a hospital's private CA, timeouts, and no
//! redirects — a POST must not silently turn into a GET elsewhere; a
//! redirect is a configuration to fix.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file cannot be read or holds no certificate.
    #[error("ca_file {}: {detail}", .path.display())]
    Ca {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The TLS stack could not be set up.
    #[error("cannot set up the HTTPS client: {0}")]
    Client(String),
}

/// A client with `timeout` per request (and at most 10 s to connect),
/// trusting the certificates of `ca_file` besides the system's roots.
pub fn build(timeout: Duration, ca_file: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("vitalgate/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let ca = |detail: String| ClientError::Ca {
            path: path.to_path_buf(),
            detail,
        };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        // Parsed here, not when the client is built, so the error names the
        // file; and an empty bundle is not silently "no extra CA".
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca(
                "holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into()
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| match ca_file {
        Some(path) => ClientError::Ca {
            path: path.to_path_buf(),
            detail: describe(&e),
        },
        None => ClientError::Client(describe(&e)),
    })
}

/// reqwest's error with its causes, without the URL reqwest puts in its
/// own message (its query could hold a token).
pub fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "cannot connect".to_owned()
    } else if e.is_builder() {
        "cannot build the request".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}
