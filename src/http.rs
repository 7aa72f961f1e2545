//! The gateway's HTTP API (axum), on this machine only by default
//! (`[http] listen`):
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 `ok` while the pipeline runs; 503 with the reason when a stage stopped or storage is stuck |
//! | `GET /readyz` | 200 when storage is writable, the disk above its floor and every source link up; 503 otherwise; JSON with each check either way |
//! | `GET /metrics` | Prometheus text format (`health/metrics.rs`; names in docs/OPERATIONS.md) |
//! | `POST /alerts/ack` | a signed acknowledgement (`alert/ack.rs`); answers 200 with the alert id, or 400 malformed or stale, 401 bad signature, 403 not accepted, 404 no such open alert, 409 already acknowledged (with by whom) |
//!
//! The endpoint only forwards: the alert stage checks the signature and
//! owns the lifecycle, and its answer comes back over a oneshot.

use crate::alert::AckRefused;
use crate::deliver::mqtt::AckIn;
use crate::health::Health;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vitalgate_detect::alert::AckError;

/// How long an acknowledgement waits for the alert stage.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
struct Api {
    acks: mpsc::Sender<AckIn>,
    health: Health,
}

/// The API's routes.
fn router(acks: mpsc::Sender<AckIn>, health: Health) -> Router {
    Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/alerts/ack", post(acknowledge))
        .layer(DefaultBodyLimit::max(crate::alert::ack::MAX_BYTES))
        .with_state(Api { acks, health })
}

async fn alive(State(api): State<Api>) -> Response {
    match api.health.alive() {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    }
}

async fn ready(State(api): State<Api>) -> Response {
    let health = api.health.clone();
    // The free-space check is a syscall on a possibly slow SD card.
    let Ok(readiness) = tokio::task::spawn_blocking(move || health.readiness()).await else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"ready": false, "error": "the check failed"}),
        );
    };
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json(
        status,
        serde_json::to_value(&readiness).unwrap_or(serde_json::Value::Null),
    )
}

async fn metrics(State(api): State<Api>) -> Response {
    let health = api.health.clone();
    match tokio::task::spawn_blocking(move || health.metrics()).await {
        Ok(page) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                crate::health::exposition::CONTENT_TYPE,
            )],
            page,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

async fn acknowledge(State(api): State<Api>, body: Bytes) -> Response {
    let (reply, answer) = oneshot::channel();
    let ack = AckIn {
        via: "http".into(),
        body,
        reply: Some(reply),
    };
    let unavailable = || {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"error": "the alert stage is not running"}),
        )
    };
    if api.acks.send(ack).await.is_err() {
        return unavailable();
    }
    let Ok(Ok(result)) = tokio::time::timeout(ACK_TIMEOUT, answer).await else {
        return unavailable();
    };
    match result {
        Ok(id) => json(
            StatusCode::OK,
            serde_json::json!({"alert": id, "state": "acknowledged"}),
        ),
        Err(e) => {
            let status = match &e {
                AckRefused::Malformed(_) | AckRefused::Stale => StatusCode::BAD_REQUEST,
                AckRefused::BadSignature => StatusCode::UNAUTHORIZED,
                AckRefused::NotAccepted => StatusCode::FORBIDDEN,
                AckRefused::Book(AckError::Unknown(_)) => StatusCode::NOT_FOUND,
                AckRefused::Book(AckError::AlreadyAcknowledged { .. }) => StatusCode::CONFLICT,
            };
            let mut body = serde_json::json!({"error": e.reason(), "detail": e.to_string()});
            if let AckRefused::Book(AckError::AlreadyAcknowledged { by, .. }) = &e {
                body["by"] = serde_json::Value::from(by.as_str());
            }
            json(status, body)
        }
    }
}

/// The API could not listen.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen for HTTP on {addr}: {error} (set http.listen to a free address)")]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub error: std::io::Error,
}

/// Bind the API's address (at start, so a taken port fails the start).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, BindError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|error| BindError { addr, error })?;
    listener
        .set_nonblocking(true)
        .map_err(|error| BindError { addr, error })?;
    Ok(listener)
}

/// Serve until `cancel` fires.
pub async fn run(
    listener: std::net::TcpListener,
    acks: mpsc::Sender<AckIn>,
    health: Health,
    cancel: CancellationToken,
) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "the HTTP API cannot start");
            return;
        }
    };
    let app = router(acks, health);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "the HTTP API stopped");
    }
}
