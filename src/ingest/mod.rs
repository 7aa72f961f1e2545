//! The ingest stage: between the sources and storage.
//!
//! Sources decode and bind; ingest counts everything per device and reason, logs rejections without
//! flooding, and forwards the readings to storage together with the
//! source's "stored" completion. It is one task that owns its counters and
//! publishes snapshots on a `watch` channel for the live view and metrics.

mod batch;
mod stats;

pub use batch::{Batch, DeviceStatus, Rejection};
pub use stats::{DeviceView, IngestSnapshot, IngestStats, Latest, RejectLog, UNKNOWN_DEVICE};

use crate::store::StoreRequest;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use vitalgate_devices::{Quality, Reject};

/// How often counters are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Run the ingest stage until every source has dropped its sender; then
/// publish the final counters and return (dropping the store's sender, so
/// storage drains and stops after it).
pub async fn run(
    mut batches: mpsc::Receiver<Batch>,
    store: mpsc::Sender<StoreRequest>,
    snapshots: watch::Sender<IngestSnapshot>,
) {
    let mut stats = IngestStats::default();
    let mut log = RejectLog::new(Duration::from_secs(10));
    let mut publish = tokio::time::interval(PUBLISH_EVERY);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    loop {
        tokio::select! {
            batch = batches.recv() => {
                let Some(batch) = batch else { break };
                let request = check(batch, &mut stats, &mut log);
                dirty = true;
                if store.send(request).await.is_err() {
                    tracing::error!("storage stopped; ingest stops");
                    break;
                }
            }
            _ = publish.tick(), if dirty => {
                snapshots.send_replace(stats.snapshot());
                dirty = false;
            }
        }
    }
    snapshots.send_replace(stats.snapshot());
}

/// Check and count one batch, turning it into a storage request.
fn check(batch: Batch, stats: &mut IngestStats, log: &mut RejectLog) -> StoreRequest {
    let now = Instant::now();
    for r in &batch.rejections {
        stats.rejected(r.device.as_ref(), r.reason);
        log.warn(r.device.as_ref(), r.reason, now, || {
            format!("rejected: {}", r.detail)
        });
    }
    for s in &batch.statuses {
        stats.status(&s.device, &s.patient, s.status.quality, s.received);
    }
    for r in &batch.readings {
        stats.reading(r);
        if r.quality.contains(Quality::IMPOSSIBLE) {
            log.warn(Some(&r.device), Reject::Impossible, now, || {
                format!(
                    "flagged: {} outside its possible range {:?} {}; stored flagged, not used clinically",
                    r.vital,
                    r.vital.possible_range(),
                    r.vital.ucum()
                )
            });
        }
    }
    StoreRequest {
        readings: batch.readings,
        redelivered: batch.redelivered,
        done: batch.stored,
    }
}
