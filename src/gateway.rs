//! The running gateway: sources → ingest → storage, wired by bounded
//! channels, stopped by one cancellation token.

use crate::config::Config;
use crate::ingest::{self, IngestSnapshot};
use crate::source;
use crate::store::{self, ReadingStore, StoreSnapshot};
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
    sources: JoinSet<()>,
    pipeline: JoinSet<()>,
}

/// The gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The MQTT client could not be set up.
    #[error(transparent)]
    Mqtt(#[from] source::mqtt::MqttSetupError),
    /// The embedded broker could not start.
    #[error(transparent)]
    Broker(#[from] crate::broker::BrokerError),
}

impl Gateway {
    /// Start every stage. Sources stop when `cancel` fires; the pipeline
    /// then drains what they handed over.
    pub fn start(
        config: &Config,
        store: impl ReadingStore + 'static,
        cancel: CancellationToken,
    ) -> Result<Gateway, StartError> {
        if let Some(listen) = config.embedded_broker {
            crate::broker::start(listen)?;
        }
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
        if config.uses_mqtt() {
            let options = source::mqtt::options(&config.mqtt)?;
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
