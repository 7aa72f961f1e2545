//! A QoS 1 publisher that behaves as MQTT 3.1.1 asks of a device: a
//! persistent session (clean session 0), and after a reconnect every
//! unacknowledged PUBLISH sent again, in order, with its packet id and the
//! DUP flag set (MQTT-3.3.1-1, §4.4). rumqttc resends without DUP, so this
//! one is written on rumqttc's packet codec instead.
//!
//! It records which messages were acknowledged: those are the ones the
//! gateway promised to keep.

use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Packet, Publish};
use rumqttc::mqttbytes::{self, QoS};
use std::collections::{HashSet, VecDeque};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One message to publish.
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
}

/// Publish `messages` to `port` as `client_id`, reconnecting (every 100
/// ms) whenever the server goes away, until every one is acknowledged.
/// `pace(i)` is the pause before message i is first sent; `sent` counts the
/// messages sent so far.
/// Returns the indexes acknowledged (all of them) and the number of
/// connections it took.
pub async fn publish_all(
    port: u16,
    client_id: &str,
    messages: Vec<Message>,
    inflight: usize,
    pace: impl Fn(usize) -> Duration,
    sent: tokio::sync::watch::Sender<usize>,
) -> (HashSet<usize>, u32) {
    let mut next = 0usize;
    // (index, packet id) in the order first sent.
    let mut in_flight: VecDeque<(usize, u16)> = VecDeque::new();
    let mut acked = HashSet::new();
    let mut connections = 0u32;
    let mut pkid = 0u16;
    while acked.len() < messages.len() {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut buf = BytesMut::new();
        let mut out = BytesMut::new();
        let mut connect = Connect::new(client_id);
        connect.clean_session = false;
        connect.keep_alive = 30;
        Packet::Connect(connect)
            .write(&mut out, usize::MAX)
            .unwrap();
        if stream.write_all(&out).await.is_err() {
            continue;
        }
        out.clear();
        match read_packet(&mut stream, &mut buf).await.ok().flatten() {
            Some(Packet::ConnAck(ack)) => {
                assert!(ack.session_present, "the session must be kept");
            }
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        connections += 1;
        // Resend what is unacknowledged, in order, marked DUP.
        for &(i, id) in &in_flight {
            publish_packet(&messages[i], id, true)
                .write(&mut out, usize::MAX)
                .unwrap();
        }
        if stream.write_all(&out).await.is_err() {
            continue;
        }
        out.clear();
        let (mut reader, mut writer) = stream.into_split();
        loop {
            let can_send = next < messages.len() && in_flight.len() < inflight;
            if !can_send && in_flight.is_empty() {
                break;
            }
            let delay = if can_send { pace(next) } else { Duration::ZERO };
            tokio::select! {
                biased;
                r = read_packet(&mut reader, &mut buf) => match r.ok().flatten() {
                    Some(p) => take_ack(p, &mut in_flight, &mut acked),
                    None => break,
                },
                _ = tokio::time::sleep(delay), if can_send => {
                    pkid = pkid % 65535 + 1;
                    publish_packet(&messages[next], pkid, false)
                        .write(&mut out, usize::MAX)
                        .unwrap();
                    in_flight.push_back((next, pkid));
                    next += 1;
                    let written = writer.write_all(&out).await.is_ok();
                    out.clear();
                    sent.send_replace(next);
                    if !written {
                        break;
                    }
                }
            }
        }
        if acked.len() == messages.len() {
            let mut out = BytesMut::new();
            Packet::Disconnect.write(&mut out, usize::MAX).unwrap();
            let _ = writer.write_all(&out).await;
        }
    }
    (acked, connections)
}

fn publish_packet(m: &Message, pkid: u16, dup: bool) -> Packet {
    let mut p = Publish::new(m.topic.clone(), QoS::AtLeastOnce, m.payload.clone());
    p.pkid = pkid;
    p.dup = dup;
    Packet::Publish(p)
}

fn take_ack(p: Packet, in_flight: &mut VecDeque<(usize, u16)>, acked: &mut HashSet<usize>) {
    if let Packet::PubAck(ack) = p {
        let at = in_flight
            .iter()
            .position(|&(_, id)| id == ack.pkid)
            .unwrap_or_else(|| panic!("PUBACK for packet id {} not in flight", ack.pkid));
        assert_eq!(at, 0, "PUBACKs must come in the order the PUBLISHes went");
        let (i, _) = in_flight.remove(at).unwrap();
        acked.insert(i);
    }
}

/// The next packet from `reader`: `Ok(None)` once the connection is
/// closed, `Err` for bytes that are not MQTT 3.1.1. Cancel-safe: bytes
/// read stay in `buf`.
pub async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
    buf: &mut BytesMut,
) -> Result<Option<Packet>, mqttbytes::Error> {
    loop {
        match Packet::read(buf, 1 << 20) {
            Ok(p) => return Ok(Some(p)),
            Err(mqttbytes::Error::InsufficientBytes(_)) => match reader.read_buf(buf).await {
                Ok(0) | Err(_) => return Ok(None),
                Ok(_) => {}
            },
            Err(e) => return Err(e),
        }
    }
}

/// `secs` one-second SenML samples from the wearable `wear-1` (SpO2 `spo2`
/// %, heart rate 70–74 /min), the last one now, published to the gateway's
/// MQTT server on `port`; returns once every one is acknowledged (stored).
pub async fn senml_wearable(port: u16, secs: i64, spo2: f64) {
    let t0 = vitalgate_devices::Timestamp::now().millis() / 1000 - secs;
    let messages = (0..secs)
        .map(|i| Message {
            topic: "vitalgate/wear-1/senml".into(),
            payload: format!(
                r#"[{{"bn":"urn:dev:vitalgate:wear-1:","bt":{},"n":"spo2","u":"%","v":{spo2}}},{{"n":"heartRate","u":"beat/min","v":{}}}]"#,
                t0 + i,
                70 + i % 5
            )
            .into_bytes(),
        })
        .collect();
    let (sent, _) = tokio::sync::watch::channel(0);
    let (acked, _) = publish_all(port, "wear-1", messages, 10, |_| Duration::ZERO, sent).await;
    assert_eq!(acked.len() as i64, secs);
}

/// A rumqttc QoS 1 client to `127.0.0.1:port` that counts the PUBACKs it
/// gets (for tests that only need "was every message acknowledged").
pub async fn counting(
    port: u16,
    id: &str,
    clean: bool,
) -> (rumqttc::AsyncClient, tokio::sync::watch::Receiver<u64>) {
    let mut o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10))
        .set_clean_session(clean)
        .set_max_packet_size(2 << 20, 2 << 20);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 64);
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        let mut acked = 0;
        loop {
            match eventloop.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                    acked += 1;
                    tx.send_replace(acked);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    (client, rx)
}
