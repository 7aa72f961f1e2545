//! The ingest stage: between the sources and storage.
//!
//! Sources decode and bind; ingest counts everything per device and reason, logs rejections without
//! flooding, and forwards the readings to storage together with the
//! source's "stored" completion. It is one task that owns its counters and
//! publishes snapshots on a `watch` channel for the live view and metrics.

mod batch;
mod stats;

pub use batch::{Batch, DeviceStatus, LinkEvent, Rejection};
pub use stats::{
    DeviceView, IngestSnapshot, IngestStats, Latest, LinkView, RejectLog, UNKNOWN_DEVICE,
};

use crate::detect::DetectInput;
use crate::store::StoreRequest;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use vitalgate_devices::{Quality, Reject};

/// How often counters are published.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// Run the ingest stage until every source has dropped its sender; then
/// publish the final counters and return (dropping the senders of
/// detection and storage, so they drain and stop after it).
///
/// Each batch goes to detection first, then to storage: an emergency is
/// judged the moment it arrives, whatever the disk is doing.
pub async fn run(
    mut batches: mpsc::Receiver<Batch>,
    detect: mpsc::Sender<DetectInput>,
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
                let Checked { store: request, statuses } = check(batch, &mut stats, &mut log);
                dirty = true;
                if !request.readings.is_empty() || !statuses.is_empty() {
                    let input = DetectInput {
                        readings: request.readings.clone(),
                        statuses,
                    };
                    if detect.send(input).await.is_err() {
                        tracing::error!("detection stopped; ingest stops");
                        break;
                    }
                }
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

/// A checked batch: what storage keeps, and the device statuses that
/// only detection needs.
struct Checked {
    store: StoreRequest,
    statuses: Vec<DeviceStatus>,
}

/// Check and count one batch, turning it into a storage request.
fn check(mut batch: Batch, stats: &mut IngestStats, log: &mut RejectLog) -> Checked {
    let now = Instant::now();
    if let Some(link) = &batch.link {
        stats.link(link);
    }
    // Stamped by a gateway clock not known to be right: say so in the
    // stored reading (the device's own time, if any, is kept beside it).
    if !batch.readings.is_empty() && !crate::clock::trusted() {
        for r in &mut batch.readings {
            r.quality.set(Quality::CLOCK_UNSYNCED, true);
        }
    }
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
    Checked {
        store: StoreRequest {
            readings: batch.readings,
            redelivered: batch.redelivered,
            done: batch.stored,
        },
        statuses: batch.statuses,
    }
}
