//! Wi-Fi devices publishing to an MQTT broker.
//!
//! One client connection carries every simulated MQTT device (a real home
//! would have one connection per device; the broker cannot tell the
//! difference in topics or payloads, which is what the gateway sees).
//! Messages are published with QoS 1, as the gateway's durability promise
//! is about acknowledged messages.

use super::Link;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, QoS};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A connection to a broker shared by the simulated MQTT devices.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
}

impl Publisher {
    /// Connect (lazily: the event loop connects and reconnects in the
    /// background) to `host:port` as `client_id`.
    pub fn connect(host: &str, port: u16, client_id: &str, cancel: CancellationToken) -> Publisher {
        let mut o = MqttOptions::new(client_id, host, port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(1024 * 1024, 1024 * 1024)
            .set_inflight(100);
        let (client, mut eventloop) = AsyncClient::new(o, 256);
        let stop = client.clone();
        tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => {
                        let _ = stop.try_disconnect();
                        // Let the outstanding QoS 1 messages and the
                        // disconnect go out.
                        let flush = async {
                            while let Ok(e) = eventloop.poll().await {
                                if matches!(e, Event::Outgoing(Outgoing::Disconnect)) { break; }
                            }
                        };
                        let _ = tokio::time::timeout(Duration::from_secs(2), flush).await;
                        return;
                    }
                    e = eventloop.poll() => match e {
                        Ok(_) => failures = 0,
                        Err(e) => {
                            failures += 1;
                            if failures == 1 {
                                tracing::warn!(error = %e, "simulator cannot reach the MQTT broker; retrying");
                            }
                            let delay = Duration::from_millis(200u64 << failures.min(5));
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
        });
        Publisher { client }
    }

    /// A link that publishes each output to `topic`.
    pub fn link(&self, topic: String) -> Link {
        self.spawn_link(topic, false)
    }

    /// A link that publishes each line of an output as its own message to
    /// `topic`: a BLE proxy relays one message per characteristic value,
    /// and one snapshot of a wearable can be several values.
    pub fn line_link(&self, topic: String) -> Link {
        self.spawn_link(topic, true)
    }

    fn spawn_link(&self, topic: String, by_line: bool) -> Link {
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
        let client = self.client.clone();
        tokio::spawn(async move {
            while let Some(output) = rx.recv().await {
                let messages: Vec<Vec<u8>> = if by_line {
                    output
                        .split(|&b| b == b'\n')
                        .filter(|line| !line.is_empty())
                        .map(<[u8]>::to_vec)
                        .collect()
                } else {
                    vec![output]
                };
                for payload in messages {
                    if client
                        .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        });
        Link { tx }
    }
}
