//! The running gateway: sources → ingest → detection and storage, alerts
//! → sinks, wired by bounded channels, stopped by one cancellation token.
//!
//! ```text
//! sources ─Batch─▶ ingest ─┬─DetectInput─▶ detect ─Condition─▶ alert ─Attempt─▶ sinks (MQTT, webhooks)
//!                          │                                   │  ▲  ◀─Outcome──┘  │ acks
//!                          └─StoreRequest─▶ store ◀─alert records┘  └──── AckIn ◀───┴── HTTP API
//! ```

use crate::alert::outbox::{self, Outbox, State};
use crate::alert::{self, AlertSnapshot, AlertStage, SinkLink};
use crate::anchor::AnchorSnapshot;
use crate::clock::Clock;
use crate::config::{BleLink, Config};
use crate::deliver::SinkChannels;
use crate::deliver::mqtt::{self as mqtt_sink, StatusBoard, Topics};
use crate::deliver::signature::{Secret, SecretError};
use crate::deliver::webhook::{self, Webhook, WebhookSetupError};
use crate::detect::{self, DetectSnapshot};
use crate::health::{Health, HealthSettings, Observed};
use crate::ingest::{self, IngestSnapshot};
use crate::source;
use crate::store::{self, ReadingStore, StoreSnapshot};
use std::net::SocketAddr;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vitalgate_chain::crypto::keys::{IdentityKey, KeyError};
use vitalgate_devices::profile::Transport;

/// Handles to a running gateway.
pub struct Gateway {
    /// Ingest counters and latest values.
    pub ingest: watch::Receiver<IngestSnapshot>,
    /// Storage counters.
    pub store: watch::Receiver<StoreSnapshot>,
    /// Detection counters.
    pub detect: watch::Receiver<DetectSnapshot>,
    /// Open alerts, delivery and acknowledgement counters.
    pub alerts: watch::Receiver<AlertSnapshot>,
    /// Anchoring's progress, when `[anchor]` is configured.
    pub anchors: Option<watch::Receiver<AnchorSnapshot>>,
    /// Where the gateway's MQTT server listens, if it runs one (the bound
    /// address: a configured port 0 becomes the port chosen).
    pub mqtt_server: Option<SocketAddr>,
    /// Where the HTTP API listens, if it runs.
    pub http: Option<SocketAddr>,
    /// Liveness, readiness and metrics, read from the stages.
    pub health: Health,
    /// The gateway's id in alert topics and messages.
    pub gateway_id: String,
    sources: JoinSet<()>,
    pipeline: JoinSet<()>,
    sinks: JoinSet<()>,
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The MQTT client could not be set up.
    #[error(transparent)]
    Mqtt(#[from] source::mqtt::MqttSetupError),
    /// The MQTT server could not listen.
    #[error(transparent)]
    MqttServer(#[from] source::mqtt::server::BindError),
    /// The HTTP API could not listen.
    #[error(transparent)]
    Http(#[from] crate::http::BindError),
    /// The identity key (gateway id, outbox key) could not be read.
    #[error("chain.identity: {0}")]
    Identity(#[from] KeyError),
    /// The alert outbox could not be opened.
    #[error(transparent)]
    Outbox(#[from] outbox::OutboxError),
    /// The acknowledgement secret could not be read.
    #[error("alerts.ack_secret_file: {0}")]
    AckSecret(#[from] SecretError),
    /// A webhook could not be set up.
    #[error(transparent)]
    Webhook(#[from] WebhookSetupError),
    /// Anchoring could not be set up.
    #[error(transparent)]
    Anchor(#[from] crate::anchor::AnchorSetupError),
}

/// The alert stage's parts made at start.
struct AlertParts {
    gateway_id: String,
    outbox: Outbox,
    state: State,
}

fn alert_parts(config: &Config) -> Result<AlertParts, StartError> {
    let a = &config.alerts;
    let identity = if a.outbox.is_some() || a.gateway_id.is_none() {
        Some(IdentityKey::load(&config.chain.identity)?)
    } else {
        None
    };
    // The identity was loaded above whenever no id is configured.
    let gateway_id = match &a.gateway_id {
        Some(id) => id.clone(),
        None => identity
            .as_ref()
            .map(|k| k.kid().to_string())
            .unwrap_or_default(),
    };
    let (outbox, mut state) = match (&a.outbox, &identity) {
        (Some(dir), Some(key)) => {
            let secret = key.derive_secret(outbox::KEY_INFO);
            Outbox::open(dir, &secret)?
        }
        _ => (Outbox::in_memory(), State::default()),
    };
    if state.book.policy() != &a.policy {
        state.book.set_policy(a.policy.clone());
    }
    Ok(AlertParts {
        gateway_id,
        outbox,
        state,
    })
}

impl Gateway {
    /// Start every stage. Sources stop when `cancel` fires; the pipeline
    /// then drains what they handed over.
    pub fn start(
        config: &Config,
        store: impl ReadingStore + 'static,
        cancel: CancellationToken,
    ) -> Result<Gateway, StartError> {
        Self::start_with_clock(config, store, cancel, Clock::System)
    }

    /// [`Gateway::start`] with detection and alerts on `clock` (tests run
    /// them on tokio's paused clock).
    pub fn start_with_clock(
        config: &Config,
        store: impl ReadingStore + 'static,
        cancel: CancellationToken,
        clock: Clock,
    ) -> Result<Gateway, StartError> {
        // Bind and read everything that can fail before anything starts.
        let listener = match config.mqtt_server {
            Some(addr) if config.uses_mqtt() => Some(source::mqtt::server::bind(addr)?),
            _ => None,
        };
        let mqtt_server = listener.as_ref().and_then(|l| l.local_addr().ok());
        let http_listener = config.http.map(crate::http::bind).transpose()?;
        let http = http_listener.as_ref().and_then(|l| l.local_addr().ok());
        let parts = alert_parts(config)?;
        let ack_secret = config
            .alerts
            .ack_secret
            .as_deref()
            .map(Secret::load)
            .transpose()?;
        let webhooks = config
            .alerts
            .webhooks
            .iter()
            .map(|w| Webhook::new(w).map(|h| (w.filter.clone(), h)))
            .collect::<Result<Vec<_>, _>>()?;
        let topics = Topics::new(
            config
                .alerts
                .mqtt
                .as_ref()
                .map_or("vitalgate", |m| m.topic_prefix.as_str()),
            &parts.gateway_id,
        );
        let mqtt_options = config
            .alerts
            .mqtt
            .as_ref()
            .map(|m| mqtt_sink::sink_options(m, &topics).map(|o| (m.filter.clone(), o)))
            .transpose()?;
        let anchoring = config
            .anchor
            .as_ref()
            .map(|a| crate::anchor::setup(a, &config.chain.identity, clock))
            .transpose()?;

        let (batch_tx, batch_rx) = mpsc::channel(config.ingest.queue);
        let (detect_tx, detect_rx) = mpsc::channel(config.ingest.queue);
        let (store_tx, store_rx) = mpsc::channel(config.ingest.queue);
        let (conditions_tx, conditions_rx) = mpsc::channel(1024);
        let (audit_tx, audit_rx) = mpsc::channel(256);
        let (acks_tx, acks_rx) = mpsc::channel(64);
        let (outcomes_tx, outcomes_rx) = mpsc::channel(16);
        let (statuses_tx, statuses_rx) = watch::channel(StatusBoard::default());
        let (ingest_snap_tx, ingest_snap_rx) = watch::channel(IngestSnapshot::default());
        let (store_snap_tx, store_snap_rx) = watch::channel(StoreSnapshot::default());
        let (detect_snap_tx, detect_snap_rx) = watch::channel(DetectSnapshot::default());
        let (alert_snap_tx, alert_snap_rx) = watch::channel(AlertSnapshot::default());

        // Sinks: one task each, one attempt at a time.
        let mut sinks = JoinSet::new();
        let mut links = Vec::new();
        if let Some((filter, options)) = mqtt_options {
            let (tx, rx) = mpsc::channel(1);
            sinks.spawn(mqtt_sink::run(
                links.len(),
                "mqtt".into(),
                options,
                topics.clone(),
                SinkChannels {
                    attempts: rx,
                    outcomes: outcomes_tx.clone(),
                },
                statuses_rx.clone(),
                acks_tx.clone(),
            ));
            links.push(SinkLink {
                name: "mqtt".into(),
                filter,
                attempts: tx,
            });
        }
        for (filter, hook) in webhooks {
            let (tx, rx) = mpsc::channel(1);
            let name = hook.name().to_owned();
            sinks.spawn(webhook::run(
                links.len(),
                hook,
                SinkChannels {
                    attempts: rx,
                    outcomes: outcomes_tx.clone(),
                },
            ));
            links.push(SinkLink {
                name,
                filter,
                attempts: tx,
            });
        }
        drop(outcomes_tx);
        drop(statuses_rx);
        // The anchor stage reads the store's snapshot for the newest tree
        // head; it stops with the sources (a head sealed at shutdown is
        // anchored after the next start).
        let anchors = anchoring.map(|(stage, snapshots)| {
            sinks.spawn(stage.run(store_snap_rx.clone(), cancel.clone()));
            snapshots
        });

        let gateway_id = parts.gateway_id.clone();
        let stage = AlertStage::new(
            parts.gateway_id,
            clock,
            parts.outbox,
            parts.state,
            links,
            ack_secret,
            audit_tx,
            statuses_tx,
        );

        let mut pipeline = JoinSet::new();
        pipeline.spawn(ingest::run(batch_rx, detect_tx, store_tx, ingest_snap_tx));
        pipeline.spawn(detect::run(
            detect_rx,
            conditions_tx,
            config.detect.clone(),
            clock,
            detect_snap_tx,
        ));
        pipeline.spawn(alert::run(
            stage,
            conditions_rx,
            acks_rx,
            outcomes_rx,
            alert_snap_tx,
        ));
        pipeline.spawn(store::run(
            store,
            store::StageConfig {
                max_batch: config.ingest.max_batch,
                replay_window: config.ingest.replay_window,
            },
            store_rx,
            audit_rx,
            store_snap_tx,
        ));

        let direct = source::ble::BleDevices::new(&config.devices, BleLink::Direct);
        let mqtt_client = config.mqtt.as_ref().filter(|_| config.uses_mqtt());
        let serial = config
            .devices
            .iter()
            .filter(|d| d.profile.transport == Transport::Serial);
        let health = Health::new(
            Observed {
                ingest: ingest_snap_rx.clone(),
                store: store_snap_rx.clone(),
                detect: detect_snap_rx.clone(),
                alerts: alert_snap_rx.clone(),
                anchors: anchors.clone(),
            },
            HealthSettings {
                ledger: config.chain.directory.clone(),
                disk_floor: config.chain.disk_floor,
                expected_links: serial.clone().count()
                    + usize::from(listener.is_some())
                    + usize::from(mqtt_client.is_some())
                    + usize::from(!direct.is_empty()),
                devices: config.devices.len(),
            },
        );

        let mut sources = JoinSet::new();
        if let Some(listener) = http_listener {
            sources.spawn(crate::http::run(
                listener,
                acks_tx.clone(),
                health.clone(),
                cancel.clone(),
            ));
        }
        if matches!(clock, Clock::System) {
            sources.spawn(crate::clock::sync::watch(
                crate::clock::ClockSync::default(),
                cancel.clone(),
            ));
        }
        drop(acks_tx);
        if let Some(listener) = listener {
            sources.spawn(source::mqtt::server::run(
                listener,
                config.devices.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        if let Some(mqtt) = mqtt_client {
            let options = source::mqtt::options(mqtt)?;
            sources.spawn(source::mqtt::run(
                options,
                config.devices.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        for d in serial {
            sources.spawn(source::serial::run(
                d.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        if !direct.is_empty() {
            sources.spawn(source::ble::run_direct(
                direct,
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        drop(batch_tx);
        tracing::info!(
            devices = config.devices.len(),
            gateway = %gateway_id,
            alert_sinks = sinks.len() - usize::from(config.anchor.is_some()),
            anchoring = config.anchor.is_some(),
            "gateway started"
        );
        Ok(Gateway {
            ingest: ingest_snap_rx,
            store: store_snap_rx,
            detect: detect_snap_rx,
            alerts: alert_snap_rx,
            anchors,
            mqtt_server,
            http,
            health,
            gateway_id,
            sources,
            pipeline,
            sinks,
        })
    }

    /// Wait for every task to finish (after the token is cancelled).
    pub async fn join(mut self) {
        for (what, set) in [
            ("a source", &mut self.sources),
            ("a pipeline stage", &mut self.pipeline),
            ("an alert sink", &mut self.sinks),
        ] {
            while let Some(r) = set.join_next().await {
                if let Err(e) = r {
                    tracing::error!(error = %e, task = what, "a task failed");
                }
            }
        }
    }
}
