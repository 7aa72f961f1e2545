//! MQTT devices through an external broker: one subscriber connection
//! for all of them.
//!
//! QoS 1 with manual acknowledgement: a PUBLISH is acknowledged only after
//! the storage stage has committed the readings decoded from it (or found
//! it contained none worth keeping). MQTT wants PUBACKs in the order the
//! PUBLISHes arrived; storage completes requests in arrival order and one
//! acknowledging task awaits them in that order, so the order holds.
//!
//! The session is persistent (clean session off): while the gateway is
//! down or disconnected, the broker keeps the unacknowledged messages for
//! its client id and delivers them again. Delivery is therefore at least
//! once; the ingest replay guard drops the repeats of readings that carry a
//! device time.

use super::{Devices, MAX_PACKET_BYTES};
use crate::config::{Device, MqttConfig};
use crate::ingest::{Batch, LinkEvent};
use crate::source::backoff::Backoff;
use crate::store::Commit;
use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport,
};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// A configuration the MQTT client cannot be built from.
#[derive(Debug, thiserror::Error)]
pub enum MqttSetupError {
    /// A secret or certificate file could not be read.
    #[error("cannot read {what} {path}: {error}")]
    Read {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
}

/// Build the client options from the configuration (reading the password
/// and certificate files once, at start): the broker connection, with the
/// persistent session and manual acknowledgements the source relies on.
pub fn options(config: &MqttConfig) -> Result<MqttOptions, MqttSetupError> {
    let mut o = broker_options(config)?;
    o.set_clean_session(false)
        .set_manual_acks(true)
        .set_inflight(config.inflight)
        .set_max_packet_size(MAX_PACKET_BYTES, 64 * 1024)
        // Acknowledgements and subscriptions queue here; room for every
        // in-flight message means queueing an ack never waits.
        .set_request_channel_capacity(usize::from(config.inflight) * 2 + 16);
    Ok(o)
}

/// The connection to a broker as configured — address, client id,
/// keep-alive, credentials, TLS — shared by every MQTT client of the
/// gateway (the device subscription, the alert sink).
pub fn broker_options(config: &MqttConfig) -> Result<MqttOptions, MqttSetupError> {
    let read = |what: &'static str, path: &std::path::Path| {
        std::fs::read(path).map_err(|error| MqttSetupError::Read {
            what,
            path: path.display().to_string(),
            error,
        })
    };
    let mut o = MqttOptions::new(config.client_id.clone(), config.host.clone(), config.port);
    o.set_keep_alive(config.keep_alive);
    if let Some(user) = &config.username {
        let password = match &config.password_file {
            Some(p) => String::from_utf8_lossy(&read("the MQTT password file", p)?)
                .trim_end_matches(['\r', '\n'])
                .to_owned(),
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    if let Some(tls) = &config.tls {
        let transport = match &tls.ca_file {
            None => Transport::tls_with_default_config(),
            Some(ca) => {
                let client_auth = match &tls.client_cert {
                    Some((cert, key)) => Some((
                        read("the client certificate", cert)?,
                        read("the client key", key)?,
                    )),
                    None => None,
                };
                Transport::tls_with_config(TlsConfiguration::Simple {
                    ca: read("the CA certificate", ca)?,
                    alpn: None,
                    client_auth,
                })
            }
        };
        o.set_transport(transport);
    }
    Ok(o)
}

/// An acknowledgement to send once storage has answered.
struct PendingAck {
    /// The connection the message came on; an ack for an older connection
    /// must not be sent on a newer one (its packet id may be reused there).
    connection: u64,
    publish: Publish,
    stored: oneshot::Receiver<Commit>,
}

/// Run the MQTT source until cancelled; then acknowledge what storage
/// already has and disconnect.
pub async fn run(
    options: MqttOptions,
    devices: Vec<Device>,
    batches: mpsc::Sender<Batch>,
    cancel: CancellationToken,
) {
    let mut devices = Devices::new(&devices);
    if devices.is_empty() {
        return;
    }
    let (host, port) = options.broker_address();
    let link: Arc<str> = Arc::from(format!("mqtt:{host}:{port}"));
    let inflight = usize::from(options.inflight());
    let (client, mut eventloop) = AsyncClient::new(options, inflight * 2 + 16);
    // Unbounded, yet bounded in practice: an entry is pushed only after its
    // batch entered the bounded pipeline, so there are never more than the
    // pipeline holds plus the acks not yet written. A bounded channel here
    // would let this task block on the acknowledging task, which in turn
    // waits for this task to poll the event loop that sends its acks: a
    // deadlock under load.
    let (acks_tx, acks_rx) = mpsc::unbounded_channel::<PendingAck>();
    let (connection_tx, connection_rx) = watch::channel(0u64);
    let acker = tokio::spawn(acknowledge(client.clone(), acks_rx, connection_rx));

    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    let mut connection = 0u64;
    let mut index = 0u64;
    let mut connected = false;
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => break,
            e = eventloop.poll() => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                connection += 1;
                connection_tx.send_replace(connection);
                connected = true;
                backoff.reset();
                tracing::info!(
                    session_present = ack.session_present,
                    "connected to the MQTT broker"
                );
                if !send_link(&batches, LinkEvent::up(&link), &cancel).await {
                    break;
                }
                for p in devices.patterns() {
                    if let Err(e) = client.try_subscribe(p.filter(), QoS::AtLeastOnce) {
                        tracing::error!(filter = %p.filter(), error = %e, "cannot subscribe");
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                index += 1;
                let topic = publish.topic.clone();
                let mut batch = devices.decode(&topic, &publish.payload, index);
                let (stored_tx, stored_rx) = oneshot::channel();
                batch.stored = Some(stored_tx);
                batch.redelivered = publish.dup;
                let pending = PendingAck {
                    connection,
                    publish,
                    stored: stored_rx,
                };
                // Both sends wait when the pipeline is full: backpressure
                // reaches the broker through the in-flight window.
                let sent = tokio::select! {
                    r = batches.send(batch) => r.is_ok(),
                    _ = cancel.cancelled() => false,
                };
                if !sent || acks_tx.send(pending).is_err() {
                    break;
                }
            }
            Ok(_) => {}
            Err(e) => {
                let delay = backoff.next_delay();
                if connected || backoff.attempts() == 1 {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT connection lost; reconnecting with backoff");
                } else {
                    tracing::debug!(error = %e, retry_in_ms = delay.as_millis() as u64, "MQTT reconnect failed");
                }
                let was_connected = std::mem::replace(&mut connected, false);
                if (was_connected || backoff.attempts() == 1)
                    && !send_link(&batches, LinkEvent::down(&link, &e), &cancel).await
                {
                    break;
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    drain(client, eventloop, acks_tx, acker).await;
}

/// Report a link event to ingest unless cancelled first; false when the
/// pipeline is gone.
async fn send_link(
    batches: &mpsc::Sender<Batch>,
    event: LinkEvent,
    cancel: &CancellationToken,
) -> bool {
    tokio::select! {
        r = batches.send(Batch::link(event)) => r.is_ok(),
        _ = cancel.cancelled() => false,
    }
}

/// Let the acknowledging task finish what storage has already answered,
/// keeping the event loop polled so the acks go out, then disconnect.
/// Messages not yet stored stay unacknowledged: the broker delivers them
/// again next time.
async fn drain(
    client: AsyncClient,
    mut eventloop: EventLoop,
    acks: mpsc::UnboundedSender<PendingAck>,
    mut acker: tokio::task::JoinHandle<()>,
) {
    drop(acks);
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = &mut acker => break,
            _ = &mut deadline => { acker.abort(); break }
            e = eventloop.poll() => if e.is_err() { acker.abort(); break },
        }
    }
    if client.try_disconnect().is_ok() {
        let flush = async {
            while let Ok(e) = eventloop.poll().await {
                if matches!(e, Event::Outgoing(rumqttc::Outgoing::Disconnect)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), flush).await;
    }
}

/// Acknowledge messages in arrival order as storage answers.
async fn acknowledge(
    client: AsyncClient,
    mut acks: mpsc::UnboundedReceiver<PendingAck>,
    connection: watch::Receiver<u64>,
) {
    // MQTT wants PUBACKs in arrival order, so once storage refuses a
    // message nothing after it on that connection may be acknowledged
    // either. The connection is dropped instead: the broker keeps every
    // unacknowledged message of the persistent session and delivers them
    // again (marked DUP) when the source reconnects, with backoff, until
    // storage works again.
    let mut refused_on: Option<u64> = None;
    // Storage that keeps refusing (a full disk) must not turn into a
    // reconnect storm: wait longer before each reconnect, until a message
    // is acknowledged again.
    let mut hold_off = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    while let Some(p) = acks.recv().await {
        match p.stored.await {
            Ok(Ok(())) => {
                if *connection.borrow() != p.connection || refused_on == Some(p.connection) {
                    // Stored, but the connection it came on is gone (or
                    // refused an earlier message); the broker will deliver
                    // it again and storage recognises it as a duplicate.
                    continue;
                }
                if let Err(e) = client.ack(&p.publish).await {
                    tracing::warn!(error = %e, "cannot queue an MQTT acknowledgement");
                }
                hold_off.reset();
            }
            Ok(Err(e)) => {
                if refused_on != Some(p.connection) {
                    refused_on = Some(p.connection);
                    let delay = hold_off.next_delay();
                    if hold_off.attempts() == 1 {
                        tracing::error!(error = %e, pkid = p.publish.pkid, "storage refused a message: not acknowledging it or anything after it; the broker keeps them and delivers them again after a reconnect");
                    }
                    tokio::time::sleep(delay).await;
                    if let Err(e) = client.try_disconnect() {
                        tracing::warn!(error = %e, "cannot request a disconnect");
                    }
                }
            }
            Err(_) => {}
        }
    }
}
