//! The MQTT sink: alerts to the hospital's broker, a retained status per
//! patient, and acknowledgements back.
//!
//! Topics, under the configured prefix and the gateway's id
//! (`docs/FORMAT.md`, "Alert topics"):
//!
//! | topic | QoS | retained | what |
//! |---|---|---|---|
//! | `{prefix}/{gateway}/alerts/{patient}` | 1 | no | each alert message |
//! | `{prefix}/{gateway}/status/{patient}` | 1 | yes | the patient's open alerts now |
//! | `{prefix}/{gateway}/online` | 1 | yes | `true`, or `false` (the will) when the gateway is gone |
//! | `{prefix}/{gateway}/ack` | 1 | – | signed acknowledgements, to the gateway |
//!
//! **One publish at a time.** rumqttc does not say which packet id it gave
//! a publish, so the sink keeps exactly one of its publishes outstanding:
//! the next `Outgoing::Publish` names its packet id, and the `PubAck` with
//! that id completes it. A publish outstanding when the connection drops is
//! sent again by rumqttc if the broker kept the session (clean session is
//! off); if the broker lost the session, the attempt fails and the alert
//! stage retries it. Alerts go before status updates.

use super::{Attempt, DeliveryError, Outcome, SinkChannels};
use crate::config::MqttConfig;
use crate::source::backoff::Backoff;
use crate::source::mqtt::{MqttSetupError, broker_options};
use bytes::Bytes;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, Publish, QoS};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// The MQTT sink's settings.
#[derive(Debug, Clone)]
pub struct MqttSinkConfig {
    /// The broker.
    pub broker: MqttConfig,
    /// The first topic level(s).
    pub topic_prefix: String,
    /// Which alerts it receives.
    pub filter: super::SinkFilter,
}

/// The latest status message of each patient (retained on the broker).
pub type StatusBoard = Arc<BTreeMap<Arc<str>, Arc<[u8]>>>;

/// An acknowledgement as received, before it is checked.
#[derive(Debug)]
pub struct AckIn {
    /// Where it came from (`mqtt:<sink>`, `http`).
    pub via: String,
    /// The acknowledgement document.
    pub body: Bytes,
    /// Where to say whether it was taken (HTTP answers; MQTT does not).
    pub reply: Option<tokio::sync::oneshot::Sender<Result<String, crate::alert::AckRefused>>>,
}

/// The topics of one gateway under one prefix.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    /// Topics under `{prefix}/{gateway}`.
    pub fn new(prefix: &str, gateway: &str) -> Topics {
        Topics {
            base: format!("{}/{gateway}", prefix.trim_end_matches('/')),
        }
    }

    /// Where alert messages about `patient` go.
    pub fn alerts(&self, patient: &str) -> String {
        format!("{}/alerts/{patient}", self.base)
    }

    /// The retained status of `patient`.
    pub fn status(&self, patient: &str) -> String {
        format!("{}/status/{patient}", self.base)
    }

    /// The retained online flag (and the will).
    pub fn online(&self) -> String {
        format!("{}/online", self.base)
    }

    /// Where acknowledgements come in.
    pub fn ack(&self) -> String {
        format!("{}/ack", self.base)
    }
}

/// What the outstanding publish is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sent {
    Alert(u64),
    Status(Arc<str>),
    Online,
}

#[derive(Debug)]
struct Outstanding {
    what: Sent,
    /// Known once rumqttc has written it.
    pkid: Option<u16>,
}

/// The MQTT options of the sink: the broker connection, a persistent
/// session (so acknowledgements published while the gateway is away wait
/// for it) and a will that marks the gateway offline.
pub fn sink_options(
    config: &MqttSinkConfig,
    topics: &Topics,
) -> Result<MqttOptions, MqttSetupError> {
    let mut o = broker_options(&config.broker)?;
    o.set_clean_session(false)
        .set_inflight(4)
        .set_max_packet_size(256 * 1024, 256 * 1024)
        .set_last_will(LastWill::new(
            topics.online(),
            "false",
            QoS::AtLeastOnce,
            true,
        ));
    Ok(o)
}

/// Run the MQTT sink until the alert stage drops its attempt sender.
pub async fn run(
    index: usize,
    name: String,
    options: MqttOptions,
    topics: Topics,
    channels: SinkChannels,
    mut statuses: watch::Receiver<StatusBoard>,
    acks: mpsc::Sender<AckIn>,
) {
    let SinkChannels {
        mut attempts,
        outcomes,
    } = channels;
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let mut sink = Sink {
        index,
        name,
        topics,
        client,
        outcomes,
        acks,
        connected: false,
        outstanding: None,
        alert: None,
        dirty: BTreeSet::new(),
        online_due: false,
        published: BTreeMap::new(),
    };
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(60));
    statuses.mark_changed();
    loop {
        tokio::select! {
            // An alert before anything else that is ready.
            biased;
            attempt = attempts.recv(), if sink.alert.is_none() => {
                let Some(attempt) = attempt else { break };
                if sink.connected {
                    sink.alert = Some(attempt);
                } else {
                    sink.answer(attempt.seq, Err(DeliveryError::Unreachable(
                        "not connected to the broker".into(),
                    ))).await;
                }
            }
            changed = statuses.changed() => {
                if changed.is_err() {
                    break;
                }
                let board = statuses.borrow_and_update().clone();
                sink.board_changed(&board);
            }
            event = eventloop.poll() => match event {
                Ok(event) => {
                    backoff.reset();
                    let board = statuses.borrow().clone();
                    sink.event(event, &board).await;
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    if sink.connected || backoff.attempts() == 1 {
                        tracing::warn!(sink = %sink.name, error = %e, retry_in_ms = delay.as_millis() as u64, "alert broker unreachable; reconnecting with backoff");
                    }
                    sink.connected = false;
                    if let Some(attempt) = sink.alert.take() {
                        sink.answer(attempt.seq, Err(DeliveryError::Unreachable(e.to_string()))).await;
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
        let board = statuses.borrow().clone();
        if let Some((seq, e)) = sink.publish_next(&board) {
            sink.answer(seq, Err(e)).await;
        }
    }
    // Say goodbye properly: the will is for crashes, not for a clean stop.
    let _ = sink
        .client
        .try_publish(sink.topics.online(), QoS::AtMostOnce, true, "false");
    let _ = sink.client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while let Ok(e) = eventloop.poll().await {
            if matches!(e, Event::Outgoing(Outgoing::Disconnect)) {
                break;
            }
        }
    })
    .await;
    tracing::debug!(sink = %sink.name, "MQTT alert sink stopped");
}

struct Sink {
    index: usize,
    name: String,
    topics: Topics,
    client: AsyncClient,
    outcomes: mpsc::Sender<Outcome>,
    acks: mpsc::Sender<AckIn>,
    connected: bool,
    outstanding: Option<Outstanding>,
    /// The alert attempt taken and not yet published.
    alert: Option<Attempt>,
    /// Patients whose status must be published.
    dirty: BTreeSet<Arc<str>>,
    online_due: bool,
    /// What the broker holds (retained) per patient, as last published.
    published: BTreeMap<Arc<str>, Arc<[u8]>>,
}

impl Sink {
    async fn answer(&mut self, seq: u64, result: Result<(), DeliveryError>) {
        let _ = self
            .outcomes
            .send(Outcome {
                sink: self.index,
                seq,
                result,
            })
            .await;
    }

    fn board_changed(&mut self, board: &StatusBoard) {
        for (patient, status) in board.iter() {
            if self.published.get(patient) != Some(status) {
                self.dirty.insert(Arc::clone(patient));
            }
        }
    }

    async fn event(&mut self, event: Event, board: &StatusBoard) {
        match event {
            Event::Incoming(Packet::ConnAck(ack)) => {
                self.connected = true;
                tracing::info!(sink = %self.name, session_present = ack.session_present, "connected to the alert broker");
                if !ack.session_present {
                    // The broker forgot the session, and rumqttc with it
                    // dropped the outstanding publish: it failed.
                    if let Some(o) = self.outstanding.take() {
                        if let Sent::Alert(seq) = o.what {
                            self.answer(
                                seq,
                                Err(DeliveryError::Unreachable(
                                    "the broker lost the session before acknowledging".into(),
                                )),
                            )
                            .await;
                        }
                    }
                }
                if let Err(e) = self
                    .client
                    .try_subscribe(self.topics.ack(), QoS::AtLeastOnce)
                {
                    tracing::error!(sink = %self.name, error = %e, "cannot subscribe to acknowledgements");
                }
                // Whatever the broker retained, say it all again.
                self.online_due = true;
                self.published.clear();
                self.board_changed(board);
            }
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Some(o) = self.outstanding.as_mut().filter(|o| o.pkid.is_none()) {
                    o.pkid = Some(pkid);
                }
            }
            Event::Incoming(Packet::PubAck(ack)) => {
                let done = self
                    .outstanding
                    .as_ref()
                    .is_some_and(|o| o.pkid == Some(ack.pkid));
                if done {
                    if let Some(o) = self.outstanding.take() {
                        if let Sent::Alert(seq) = o.what {
                            self.answer(seq, Ok(())).await;
                        }
                    }
                }
            }
            Event::Incoming(Packet::Publish(p)) => self.incoming(p),
            Event::Incoming(Packet::SubAck(s))
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure)) =>
            {
                tracing::error!(sink = %self.name, topic = %self.topics.ack(), "the broker refused the acknowledgement subscription; acknowledgements over MQTT will not arrive");
            }
            _ => {}
        }
    }

    fn incoming(&mut self, p: Publish) {
        if p.topic != self.topics.ack() {
            return;
        }
        let ack = AckIn {
            via: format!("mqtt:{}", self.name),
            body: p.payload,
            reply: None,
        };
        if self.acks.try_send(ack).is_err() {
            tracing::warn!(sink = %self.name, "acknowledgement dropped: the alert stage is busy or stopped; the sender should acknowledge again");
        }
    }

    /// Start the next publish if none is outstanding: the alert first,
    /// then the online flag, then statuses. Returns an alert attempt that
    /// could not even be queued.
    fn publish_next(&mut self, board: &StatusBoard) -> Option<(u64, DeliveryError)> {
        if !self.connected || self.outstanding.is_some() {
            return None;
        }
        let (what, topic, payload, retain): (Sent, String, Bytes, bool) =
            if let Some(a) = self.alert.take() {
                let topic = self.topics.alerts(&a.patient);
                (
                    Sent::Alert(a.seq),
                    topic,
                    Bytes::copy_from_slice(&a.bytes),
                    false,
                )
            } else if self.online_due {
                self.online_due = false;
                (
                    Sent::Online,
                    self.topics.online(),
                    Bytes::from_static(b"true"),
                    true,
                )
            } else if let Some(patient) = self.dirty.pop_first() {
                let status = board.get(&patient)?;
                self.published
                    .insert(Arc::clone(&patient), Arc::clone(status));
                let topic = self.topics.status(&patient);
                (
                    Sent::Status(patient),
                    topic,
                    Bytes::copy_from_slice(status),
                    true,
                )
            } else {
                return None;
            };
        match self
            .client
            .try_publish(topic, QoS::AtLeastOnce, retain, payload)
        {
            Ok(()) => {
                self.outstanding = Some(Outstanding { what, pkid: None });
                None
            }
            Err(e) => {
                tracing::warn!(sink = %self.name, error = %e, "cannot queue a publish");
                match what {
                    // The queue is empty whenever nothing is outstanding, so
                    // this is rumqttc stopping: the attempt failed.
                    Sent::Alert(seq) => Some((seq, DeliveryError::Unreachable(e.to_string()))),
                    Sent::Status(p) => {
                        self.published.remove(&p);
                        self.dirty.insert(p);
                        None
                    }
                    Sent::Online => {
                        self.online_due = true;
                        None
                    }
                }
            }
        }
    }
}
