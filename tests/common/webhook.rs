//! A webhook receiver standing for the hospital's: a real local HTTP
//! server that checks each POST's Standard Webhooks signature.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use vitalgate::deliver::signature::Secret;

/// What the receiver took: headers and body of each POST.
pub type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

/// The alert messages received so far, parsed.
pub fn messages(received: &Received) -> Vec<serde_json::Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| serde_json::from_slice(b).unwrap())
        .collect()
}

/// Serve `POST /alerts` on 127.0.0.1:`port` until `stop`: 204 for a
/// message signed with `secret`, 401 for any other.
pub async fn receiver(port: u16, secret: Secret, received: Received, stop: CancellationToken) {
    let app = axum::Router::new().route(
        "/alerts",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let received = Arc::clone(&received);
            let secret = secret.clone();
            async move {
                let h = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
                let (id, ts, sig) = (
                    h("webhook-id"),
                    h("webhook-timestamp"),
                    h("webhook-signature"),
                );
                let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts.as_bytes(), b".", &body];
                if !secret.verify(&parts, sig) {
                    return StatusCode::UNAUTHORIZED;
                }
                received.lock().unwrap().push((headers.clone(), body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
        .unwrap();
}
