//! The gateway's own MQTT server, for devices to publish to directly.
//!
//! A general-purpose broker acknowledges a device's PUBLISH as soon as it
//! holds the message in memory, so a crash between that PUBACK and the
//! gateway's commit loses readings the device believes delivered. This
//! server is the gateway itself: it answers a PUBLISH only once the
//! readings in it are committed (fsynced) to the ledger, so the device's
//! PUBACK means "durable" — the gateway's core promise, out of the box.
//!
//! It speaks MQTT 3.1.1 (OASIS standard, 2014) to publishers: CONNECT,
//! PUBLISH at QoS 0, 1 and 2, PINGREQ, DISCONNECT. It does not route
//! messages between clients: a SUBSCRIBE is answered with the failure code
//! 0x80, which the standard allows. Homes that need a broker for other
//! things run Mosquitto and point the gateway's `[mqtt]` subscription at
//! it instead.
//!
//! One task accepts connections and keeps the table of connected client
//! ids (a new connection with a known id takes the old one over, as MQTT
//! requires); each connection runs in its own task ([`super::connection`]).

use super::connection::Connection;
use crate::config::Device;
use crate::ingest::{Batch, LinkEvent};
use crate::source::backoff::Backoff;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Most devices connected at once: a home has a handful, and each
/// connection costs memory on a Pi.
const MAX_CONNECTIONS: usize = 64;

/// The server could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for MQTT devices on {addr}: {error} (is another broker running? set mqtt_server.listen to a free address)"
)]
pub struct BindError {
    /// The address.
    pub addr: SocketAddr,
    /// Why.
    pub error: std::io::Error,
}

/// Bind the listening socket (at start, so a taken port is reported before
/// the gateway says it is running).
pub fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, BindError> {
    let listener = std::net::TcpListener::bind(addr).map_err(|error| BindError { addr, error })?;
    listener
        .set_nonblocking(true)
        .map_err(|error| BindError { addr, error })?;
    Ok(listener)
}

/// What connections tell the accepting task.
#[derive(Debug)]
pub(super) enum ServerEvent {
    /// A client was accepted under `client_id`.
    Connected {
        client_id: String,
        connection: u64,
        token: CancellationToken,
    },
    /// That connection has ended.
    Closed { client_id: String, connection: u64 },
    /// Storage committed a message from a connection (sent once per
    /// connection).
    Stored,
    /// Storage refused a message; the connection closes (sent once).
    Refused,
}

/// Serve devices on `listener` until `cancel` fires; then let each
/// connection acknowledge what storage has already committed, and close.
pub async fn run(
    listener: std::net::TcpListener,
    devices: Vec<Device>,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) {
    let link: Arc<str> = Arc::from(match listener.local_addr() {
        Ok(addr) => format!("mqtt-server:{addr}"),
        Err(_) => "mqtt-server".to_owned(),
    });
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot serve MQTT devices");
            let _ = batches.send(Batch::link(LinkEvent::down(&link, e))).await;
            return;
        }
    };
    // Listening: devices can publish (their own connections come and go,
    // as devices do, and are not the gateway's links).
    if batches
        .send(Batch::link(LinkEvent::up(&link)))
        .await
        .is_err()
    {
        return;
    }
    let devices: Arc<[Device]> = devices.into();
    let (events_tx, mut events) = mpsc::channel::<ServerEvent>(64);
    let mut clients: HashMap<String, (u64, CancellationToken)> = HashMap::new();
    let mut connections = JoinSet::new();
    let mut next_connection = 0u64;
    // While storage refuses messages (a full disk), each new connection
    // waits longer before it is answered, so devices reconnecting to
    // resend cannot turn into a storm.
    let mut hold_off = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut refusing = false;
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "MQTT server for devices listening");
    }
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if connections.len() >= MAX_CONNECTIONS {
                        tracing::warn!(%peer, limit = MAX_CONNECTIONS, "MQTT connection refused: too many devices connected");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    next_connection += 1;
                    let connection = Connection {
                        id: next_connection,
                        peer,
                        devices: Arc::clone(&devices),
                        batches: batches.clone(),
                        events: events_tx.clone(),
                        token: cancel.child_token(),
                        hold_off: if refusing { hold_off.next_delay() } else { Duration::ZERO },
                    };
                    connections.spawn(connection.serve(stream));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: wait rather
                    // than spin.
                    tracing::warn!(error = %e, "cannot accept an MQTT connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(event) = events.recv() => match event {
                ServerEvent::Connected { client_id, connection, token } => {
                    if let Some((_, old)) = clients.insert(client_id.clone(), (connection, token)) {
                        // MQTT-3.1.4-2: the new connection takes over.
                        tracing::info!(client_id = %super::printable(&client_id), "a device reconnected; closing its previous connection");
                        old.cancel();
                    }
                }
                ServerEvent::Closed { client_id, connection } => {
                    if clients.get(&client_id).is_some_and(|(c, _)| *c == connection) {
                        clients.remove(&client_id);
                    }
                }
                ServerEvent::Stored => {
                    refusing = false;
                    hold_off.reset();
                }
                ServerEvent::Refused => refusing = true,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(events);
    drop(listener);
    while connections.join_next().await.is_some() {}
}
