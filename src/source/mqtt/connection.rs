//! One device's connection to the gateway's MQTT server (MQTT 3.1.1).
//!
//! Two halves. The reader frames packets, decodes each PUBLISH with the
//! device's profile and hands the readings to the pipeline. The writer
//! sends every answer in the order the packets came, and holds a PUBACK
//! (QoS 1) or PUBREC (QoS 2) until storage has committed that message —
//! MQTT wants acknowledgements in arrival order, and this keeps both rules
//! at once. A slow store therefore slows the device down through TCP and
//! its own in-flight window, never through a queue growing here.
//!
//! When storage refuses a message (a full disk), nothing after it on this
//! connection may be acknowledged either, so the connection is closed: the
//! device still holds every unacknowledged message and sends them again,
//! marked DUP, when it reconnects.
//!
//! Packets are framed and parsed with rumqttc's MQTT 3.1.1 codec
//! (`mqttbytes::v4`), which refuses an oversized packet from its header,
//! before reading its body.

use super::server::ServerEvent;
use super::{Devices, MAX_PACKET_BYTES, printable};
use crate::config::Device;
use crate::ingest::{Batch, Rejection};
use crate::store::Commit;
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, SubAck,
    SubscribeReasonCode, UnsubAck,
};
use rumqttc::mqttbytes::{self, QoS, has_wildcards};
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use vitalgate_devices::Reject;

/// A client must send CONNECT this soon after opening the connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that does not read its answers for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// After the reader stops, how long the writer may keep sending the
/// acknowledgements storage still owes.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Answers waiting to be written; when full, the reader stops reading
/// (TCP backpressure reaches the device).
const REPLY_QUEUE: usize = 256;
/// Longest client id accepted (MQTT 3.1.1 lets servers choose; ids longer
/// than this are not device names).
const MAX_CLIENT_ID: usize = 256;

/// One accepted TCP connection.
pub(super) struct Connection {
    /// Number of the connection since the gateway started.
    pub id: u64,
    /// Where it comes from (for logs).
    pub peer: SocketAddr,
    /// The bound devices (each connection decodes with its own decoders).
    pub devices: Arc<[Device]>,
    /// Into the pipeline.
    pub batches: mpsc::Sender<Batch>,
    /// To the accepting task.
    pub events: mpsc::Sender<ServerEvent>,
    /// Cancelled on shutdown, when another connection takes this client id
    /// over, or when storage refuses a message.
    pub token: CancellationToken,
    /// Wait this long before answering: non-zero exactly when storage was
    /// refusing as this connection came, so a refusal here is not news (the
    /// storage stage reports it once a minute).
    pub hold_off: Duration,
}

/// A CONNECT the server accepts.
#[derive(Debug, PartialEq, Eq)]
struct Accepted {
    client_id: String,
    session_present: bool,
    /// The client is gone when it sends nothing for this long.
    idle_limit: Option<Duration>,
}

/// How the server answers a CONNECT: accepted under a client id, or the
/// CONNACK return code that refuses it.
///
/// The session is reported present whenever the client asks to keep one
/// (clean session 0): the server's side of a publisher's session holds no
/// subscriptions and no queued messages, so it is never lost, and a client
/// told "no session" may discard the unacknowledged messages it should
/// send again (rumqttc does).
fn accept(connect: &Connect, connection: u64) -> Result<Accepted, ConnectReturnCode> {
    if connect.protocol != mqttbytes::Protocol::V4 {
        return Err(ConnectReturnCode::RefusedProtocolVersion);
    }
    let client_id = if connect.client_id.is_empty() {
        // MQTT-3.1.3-7/8: an empty id is allowed only with a clean session.
        if !connect.clean_session {
            return Err(ConnectReturnCode::BadClientId);
        }
        format!("anonymous-{connection}")
    } else if connect.client_id.len() > MAX_CLIENT_ID {
        return Err(ConnectReturnCode::BadClientId);
    } else {
        connect.client_id.clone()
    };
    let idle_limit = (connect.keep_alive > 0)
        // MQTT-3.1.2-24: one and a half times the keep-alive.
        .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500));
    Ok(Accepted {
        client_id,
        session_present: !connect.clean_session,
        idle_limit,
    })
}

/// The protocol level a CONNECT frame asks for (3: MQTT 3.1, 4: MQTT
/// 3.1.1, 5: MQTT 5), read from the raw bytes because what follows it
/// differs between versions. None until enough bytes are in.
fn requested_level(frame: &[u8]) -> Option<u8> {
    if frame.first()? >> 4 != 1 {
        return None;
    }
    // Skip the remaining-length varint (1 to 4 bytes).
    let mut i = 1;
    while frame.get(i)? & 0x80 != 0 && i < 4 {
        i += 1;
    }
    i += 1;
    let name_len = usize::from(u16::from_be_bytes([*frame.get(i)?, *frame.get(i + 1)?]));
    frame.get(i + 2 + name_len).copied()
}

/// An answer for the writer.
enum Reply {
    /// Send as soon as everything before it is sent.
    Now(Packet),
    /// Send once storage has committed the message (and everything before
    /// it is sent).
    Stored {
        ack: Packet,
        stored: oneshot::Receiver<Commit>,
    },
}

/// Why the reader stopped.
enum Ending {
    Eof,
    Disconnect,
    Cancelled,
    Idle,
    Violation(String),
    Io(std::io::Error),
}

impl Connection {
    /// Serve the connection to its end.
    pub async fn serve(self, stream: TcpStream) {
        if !self.hold_off.is_zero() {
            tokio::select! {
                _ = self.token.cancelled() => return,
                _ = tokio::time::sleep(self.hold_off) => {}
            }
        }
        let (mut reader, writer) = stream.into_split();
        let mut buf = BytesMut::with_capacity(4096);
        let connect = tokio::select! {
            _ = self.token.cancelled() => return,
            r = tokio::time::timeout(CONNECT_TIMEOUT, read_connect(&mut reader, &mut buf)) => r,
        };
        let connect = match connect {
            Ok(Ok(c)) => c,
            Ok(Err(refusal)) => {
                if let Some(code) = refusal.code {
                    refuse(writer, code).await;
                }
                self.reject(Reject::Malformed, refusal.why).await;
                return;
            }
            Err(_) => {
                tracing::debug!(peer = %self.peer, "no MQTT CONNECT within {CONNECT_TIMEOUT:?}; closing");
                return;
            }
        };
        let accepted = match accept(&connect, self.id) {
            Ok(a) => a,
            Err(code) => {
                refuse(writer, code).await;
                self.reject(
                    Reject::Malformed,
                    format!(
                        "MQTT CONNECT from {} (client `{}`) refused: {code:?}",
                        self.peer,
                        printable(&connect.client_id)
                    ),
                )
                .await;
                return;
            }
        };
        let client_id = accepted.client_id.clone();
        tracing::info!(client_id = %printable(&client_id), peer = %self.peer, "MQTT device connected");
        if self
            .events
            .send(ServerEvent::Connected {
                client_id: client_id.clone(),
                connection: self.id,
                token: self.token.clone(),
            })
            .await
            .is_err()
        {
            return;
        }

        let (replies, replies_rx) = mpsc::channel(REPLY_QUEUE);
        let mut writer_task = tokio::spawn(write_replies(
            writer,
            replies_rx,
            self.token.clone(),
            self.events.clone(),
            client_id.clone(),
            !self.hold_off.is_zero(),
        ));
        let connack = Packet::ConnAck(ConnAck::new(
            ConnectReturnCode::Success,
            accepted.session_present,
        ));
        let ending = if replies.send(Reply::Now(connack)).await.is_ok() {
            self.read(&mut reader, &mut buf, &accepted, &replies).await
        } else {
            Ending::Cancelled
        };
        drop(replies);
        match &ending {
            Ending::Eof | Ending::Disconnect | Ending::Cancelled => {}
            Ending::Idle => {
                tracing::info!(client_id = %printable(&client_id), "MQTT device silent for longer than its keep-alive; closing")
            }
            Ending::Violation(why) => {
                self.reject(
                    Reject::Malformed,
                    format!("MQTT client `{}`: {why}", printable(&client_id)),
                )
                .await
            }
            Ending::Io(e) => {
                tracing::info!(client_id = %printable(&client_id), error = %e, "MQTT connection lost")
            }
        }
        // Let storage answer what it has, so those messages are
        // acknowledged rather than sent again.
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut writer_task)
            .await
            .is_err()
        {
            writer_task.abort();
        }
        tracing::info!(client_id = %printable(&client_id), "MQTT device disconnected");
        let _ = self
            .events
            .send(ServerEvent::Closed {
                client_id,
                connection: self.id,
            })
            .await;
    }

    /// Read packets until the connection ends; answer each through the
    /// writer.
    async fn read(
        &self,
        reader: &mut OwnedReadHalf,
        buf: &mut BytesMut,
        accepted: &Accepted,
        replies: &mpsc::Sender<Reply>,
    ) -> Ending {
        let mut devices = Devices::new(&self.devices);
        let mut index = 0u64;
        // QoS 2 messages stored and acknowledged with PUBREC, awaiting the
        // client's PUBREL; a resend of one is not stored again.
        let mut awaiting_release: HashSet<u16> = HashSet::new();
        let mut told_no_routing = false;
        loop {
            let next = async {
                match accepted.idle_limit {
                    Some(limit) => tokio::time::timeout(limit, read_packet(reader, buf))
                        .await
                        .unwrap_or(Err(ReadError::Idle)),
                    None => read_packet(reader, buf).await,
                }
            };
            let packet = tokio::select! {
                _ = self.token.cancelled() => return Ending::Cancelled,
                p = next => p,
            };
            let packet = match packet {
                Ok(Some(p)) => p,
                Ok(None) => return Ending::Eof,
                Err(ReadError::Idle) => return Ending::Idle,
                Err(ReadError::Io(e)) => return Ending::Io(e),
                Err(ReadError::Packet(mqttbytes::Error::PayloadSizeLimitExceeded(n))) => {
                    self.reject(
                        Reject::TooLarge,
                        format!(
                            "MQTT packet of {n} bytes from client `{}`; the limit is {MAX_PACKET_BYTES}",
                            printable(&accepted.client_id)
                        ),
                    )
                    .await;
                    return Ending::Eof;
                }
                Err(ReadError::Packet(e)) => {
                    return Ending::Violation(format!("malformed packet: {e}"));
                }
            };
            let reply = match packet {
                Packet::Publish(publish) => {
                    if publish.topic.is_empty() || has_wildcards(&publish.topic) {
                        // MQTT-3.3.2-2: a topic name has no wildcards.
                        return Ending::Violation(format!(
                            "PUBLISH to `{}`, which is not a topic name",
                            printable(&publish.topic)
                        ));
                    }
                    if publish.qos == QoS::ExactlyOnce && awaiting_release.contains(&publish.pkid) {
                        // Stored already; it only lacks our PUBREC.
                        Some(Reply::Now(Packet::PubRec(PubRec::new(publish.pkid))))
                    } else {
                        let ack = match publish.qos {
                            QoS::AtMostOnce => None,
                            QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(publish.pkid))),
                            QoS::ExactlyOnce => {
                                awaiting_release.insert(publish.pkid);
                                Some(Packet::PubRec(PubRec::new(publish.pkid)))
                            }
                        };
                        index += 1;
                        let mut batch = devices.decode(&publish.topic, &publish.payload, index);
                        batch.redelivered = publish.dup;
                        let reply = ack.map(|ack| {
                            let (tx, stored) = oneshot::channel();
                            batch.stored = Some(tx);
                            Reply::Stored { ack, stored }
                        });
                        let sent = tokio::select! {
                            r = self.batches.send(batch) => r.is_ok(),
                            _ = self.token.cancelled() => false,
                        };
                        if !sent {
                            return Ending::Cancelled;
                        }
                        reply
                    }
                }
                Packet::PubRel(release) => {
                    awaiting_release.remove(&release.pkid);
                    Some(Reply::Now(Packet::PubComp(PubComp::new(release.pkid))))
                }
                Packet::PingReq => Some(Reply::Now(Packet::PingResp)),
                Packet::Subscribe(subscribe) => {
                    if !told_no_routing {
                        told_no_routing = true;
                        tracing::info!(client_id = %printable(&accepted.client_id), "a client tried to subscribe: the gateway's MQTT server takes publishes only (run Mosquitto for routing)");
                    }
                    let codes = vec![SubscribeReasonCode::Failure; subscribe.filters.len()];
                    Some(Reply::Now(Packet::SubAck(SubAck::new(
                        subscribe.pkid,
                        codes,
                    ))))
                }
                Packet::Unsubscribe(unsubscribe) => Some(Reply::Now(Packet::UnsubAck(
                    UnsubAck::new(unsubscribe.pkid),
                ))),
                Packet::Disconnect => return Ending::Disconnect,
                other => {
                    // A second CONNECT, or a packet only a server sends.
                    return Ending::Violation(format!(
                        "unexpected {:?} packet",
                        packet_name(&other)
                    ));
                }
            };
            if let Some(reply) = reply {
                if replies.send(reply).await.is_err() {
                    return Ending::Cancelled;
                }
            }
        }
    }

    /// Count (and, through ingest, log) a connection-level rejection.
    async fn reject(&self, reason: Reject, detail: String) {
        let batch = Batch {
            rejections: vec![Rejection {
                device: None,
                reason,
                detail,
            }],
            ..Batch::default()
        };
        let _ = self.batches.send(batch).await;
    }
}

/// The name of a packet type, for messages.
fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

/// Why no packet came.
#[derive(Debug)]
enum ReadError {
    Idle,
    Io(std::io::Error),
    Packet(mqttbytes::Error),
}

/// The next packet, or None at the end of the stream. Cancel-safe: bytes
/// read stay in `buf`.
async fn read_packet(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, ReadError> {
    loop {
        match Packet::read(buf, MAX_PACKET_BYTES) {
            Ok(p) => return Ok(Some(p)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                if reader.read_buf(buf).await.map_err(ReadError::Io)? == 0 {
                    return Ok(None);
                }
            }
            Err(e) => return Err(ReadError::Packet(e)),
        }
    }
}

/// A first packet that is not an acceptable CONNECT.
struct Refusal {
    /// The CONNACK code to answer with, if the client is owed one.
    code: Option<ConnectReturnCode>,
    why: String,
}

/// Read the CONNECT that must open the connection.
async fn read_connect(reader: &mut OwnedReadHalf, buf: &mut BytesMut) -> Result<Connect, Refusal> {
    let refuse = |code, why: String| Refusal { code, why };
    loop {
        if let Some(level) = requested_level(buf) {
            if level != 4 {
                return Err(refuse(
                    Some(ConnectReturnCode::RefusedProtocolVersion),
                    format!(
                        "MQTT protocol level {level} refused: the gateway speaks MQTT 3.1.1 (level 4)"
                    ),
                ));
            }
        }
        match Packet::read(buf, MAX_PACKET_BYTES) {
            Ok(Packet::Connect(c)) => return Ok(c),
            Ok(other) => {
                return Err(refuse(
                    None,
                    format!(
                        "MQTT connection opened with {} instead of CONNECT",
                        packet_name(&other)
                    ),
                ));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => match reader.read_buf(buf).await {
                Ok(0) | Err(_) => {
                    return Err(refuse(None, "connection closed before CONNECT".into()));
                }
                Ok(_) => {}
            },
            Err(e) => return Err(refuse(None, format!("malformed MQTT CONNECT: {e}"))),
        }
    }
}

/// Answer a CONNECT with a refusing CONNACK (the connection closes after).
async fn refuse(mut writer: OwnedWriteHalf, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).write(&mut out).is_ok() {
        flush(&mut writer, &mut out).await;
    }
}

/// Write the answers in order, each acknowledgement once storage has
/// committed its message.
async fn write_replies(
    mut writer: OwnedWriteHalf,
    mut replies: mpsc::Receiver<Reply>,
    token: CancellationToken,
    events: mpsc::Sender<ServerEvent>,
    client_id: String,
    storage_refusing: bool,
) {
    let mut out = BytesMut::with_capacity(256);
    let mut reported_stored = false;
    while let Some(reply) = replies.recv().await {
        let packet = match reply {
            Reply::Now(p) => p,
            Reply::Stored { ack, mut stored } => {
                let outcome = match stored.try_recv() {
                    Ok(c) => Some(c),
                    Err(oneshot::error::TryRecvError::Closed) => None,
                    Err(oneshot::error::TryRecvError::Empty) => {
                        // Send what is ready before waiting for storage.
                        if !flush(&mut writer, &mut out).await {
                            return;
                        }
                        stored.await.ok()
                    }
                };
                match outcome {
                    Some(Ok(())) => {
                        if !reported_stored {
                            reported_stored = true;
                            let _ = events.send(ServerEvent::Stored).await;
                        }
                        ack
                    }
                    Some(Err(e)) => {
                        if storage_refusing {
                            tracing::debug!(client_id = %printable(&client_id), error = %e, "storage still refuses messages; closing the connection");
                        } else {
                            tracing::warn!(client_id = %printable(&client_id), error = %e, "storage refused a message: not acknowledging it or anything after it; closing the connection so the device sends them again later");
                        }
                        let _ = events.send(ServerEvent::Refused).await;
                        token.cancel();
                        flush(&mut writer, &mut out).await;
                        return;
                    }
                    None => {
                        // Storage has stopped (shutdown): the device keeps
                        // the message and sends it again.
                        token.cancel();
                        flush(&mut writer, &mut out).await;
                        return;
                    }
                }
            }
        };
        if let Err(e) = packet.write(&mut out, usize::MAX) {
            tracing::error!(error = %e, "cannot encode an MQTT answer");
            return;
        }
        if replies.is_empty() && !flush(&mut writer, &mut out).await {
            return;
        }
    }
    flush(&mut writer, &mut out).await;
}

/// Write out what is buffered; false when the client is gone or stuck.
async fn flush(writer: &mut OwnedWriteHalf, out: &mut BytesMut) -> bool {
    if out.is_empty() {
        return true;
    }
    let ok = matches!(
        tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(out)).await,
        Ok(Ok(()))
    );
    out.clear();
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(id: &str, clean: bool, keep_alive: u16) -> Connect {
        let mut c = Connect::new(id);
        c.clean_session = clean;
        c.keep_alive = keep_alive;
        c
    }

    #[test]
    fn a_persistent_session_is_reported_present_so_clients_resend() {
        let a = accept(&connect("wear-1", false, 30), 1).unwrap();
        assert_eq!(
            a,
            Accepted {
                client_id: "wear-1".into(),
                session_present: true,
                idle_limit: Some(Duration::from_secs(45)),
            }
        );
        let a = accept(&connect("wear-1", true, 0), 1).unwrap();
        assert!(!a.session_present);
        assert_eq!(a.idle_limit, None);
    }

    #[test]
    fn an_empty_client_id_needs_a_clean_session() {
        assert_eq!(
            accept(&connect("", true, 10), 7).unwrap().client_id,
            "anonymous-7"
        );
        assert_eq!(
            accept(&connect("", false, 10), 7),
            Err(ConnectReturnCode::BadClientId)
        );
        assert_eq!(
            accept(&connect(&"x".repeat(300), true, 10), 7),
            Err(ConnectReturnCode::BadClientId)
        );
    }

    #[test]
    fn the_protocol_level_is_read_before_parsing() {
        // MQTT 3.1.1 CONNECT (level 4), MQTT 5 (level 5), MQTT 3.1 (MQIsdp,
        // level 3), and a frame cut short.
        assert_eq!(
            requested_level(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x0a"),
            Some(4)
        );
        assert_eq!(
            requested_level(b"\x10\x11\x00\x04MQTT\x05\x02\x00\x0a\x00"),
            Some(5)
        );
        assert_eq!(requested_level(b"\x10\x12\x00\x06MQIsdp\x03\x02"), Some(3));
        assert_eq!(requested_level(b"\x10\x10\x00\x04MQ"), None);
        assert_eq!(requested_level(b"\x30\x10\x00\x04MQTT\x04"), None);
    }
}
