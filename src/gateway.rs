//! The running gateway: sources → ingest → storage, wired by bounded
//! channels, stopped by one cancellation token.

use crate::config::Config;
use crate::ingest::{self, IngestSnapshot};
use crate::source;
use crate::store::{self, ReadingStore, StoreSnapshot};
use std::net::SocketAddr;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use vitalgate_devices::profile::Transport;

/// Handles to a running gateway.
pub struct Gateway {
    /// Ingest counters and latest values.
    pub ingest: watch::Receiver<IngestSnapshot>,
    /// Storage counters.
    pub store: watch::Receiver<StoreSnapshot>,
    /// Where the gateway's MQTT server listens, if it runs one (the bound
    /// address: a configured port 0 becomes the port chosen).
    pub mqtt_server: Option<SocketAddr>,
    sources: JoinSet<()>,
    pipeline: JoinSet<()>,
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
}

impl Gateway {
    /// Start every stage. Sources stop when `cancel` fires; the pipeline
    /// then drains what they handed over.
    pub fn start(
        config: &Config,
        store: impl ReadingStore + 'static,
        cancel: CancellationToken,
    ) -> Result<Gateway, StartError> {
        // Bind before anything starts, so a taken port fails the start.
        let listener = match config.mqtt_server {
            Some(addr) if config.uses_mqtt() => Some(source::mqtt::server::bind(addr)?),
            _ => None,
        };
        let mqtt_server = listener.as_ref().and_then(|l| l.local_addr().ok());
        let (batch_tx, batch_rx) = mpsc::channel(config.ingest.queue);
        let (store_tx, store_rx) = mpsc::channel(config.ingest.queue);
        let (ingest_snap_tx, ingest_snap_rx) = watch::channel(IngestSnapshot::default());
        let (store_snap_tx, store_snap_rx) = watch::channel(StoreSnapshot::default());

        let mut pipeline = JoinSet::new();
        pipeline.spawn(ingest::run(batch_rx, store_tx, ingest_snap_tx));
        pipeline.spawn(store::run(
            store,
            store::StageConfig {
                max_batch: config.ingest.max_batch,
                replay_window: config.ingest.replay_window,
            },
            store_rx,
            store_snap_tx,
        ));

        let mut sources = JoinSet::new();
        if let Some(listener) = listener {
            sources.spawn(source::mqtt::server::run(
                listener,
                config.devices.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        if let Some(mqtt) = config.mqtt.as_ref().filter(|_| config.uses_mqtt()) {
            let options = source::mqtt::options(mqtt)?;
            sources.spawn(source::mqtt::run(
                options,
                config.devices.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        for d in config
            .devices
            .iter()
            .filter(|d| d.profile.transport == Transport::Serial)
        {
            sources.spawn(source::serial::run(
                d.clone(),
                batch_tx.clone(),
                cancel.clone(),
            ));
        }
        drop(batch_tx);
        tracing::info!(devices = config.devices.len(), "gateway started");
        Ok(Gateway {
            ingest: ingest_snap_rx,
            store: store_snap_rx,
            mqtt_server,
            sources,
            pipeline,
        })
    }

    /// Wait for every task to finish (after the token is cancelled).
    pub async fn join(mut self) {
        while let Some(r) = self.sources.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a source task failed");
            }
        }
        while let Some(r) = self.pipeline.join_next().await {
            if let Err(e) = r {
                tracing::error!(error = %e, "a pipeline task failed");
            }
        }
    }
}
