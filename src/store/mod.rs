//! Storage: the hand-off where a reading becomes the gateway's
//! responsibility.
//!
//! Ingest sends [`StoreRequest`]s; the storage task commits them in groups
//! (everything queued when it wakes, up to `max_batch`), then completes
//! every request's `done` in arrival order. An MQTT source acknowledges its
//! message to the device only on that completion, so the meaning of a
//! PUBACK is exactly the [`ReadingStore`]'s durability promise, and group
//! commit keeps that promise cheap: one sync per group, not per message.
//!
//! The backend here is [`VolatileStore`]; the encrypted, signed chain in
//! sled replaces it behind the same trait (issue 3), without touching the
//! sources or ingest.

mod volatile;

pub use volatile::VolatileStore;

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use vitalgate_devices::Reading;

/// The outcome a source waits for before acknowledging.
pub type Commit = Result<(), StoreError>;

/// Why readings could not be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk is full (or the store's quota is reached).
    #[error("storage is full: {0}")]
    Full(String),
    /// Any other I/O failure.
    #[error("storage failed: {0}")]
    Io(String),
    /// The storage task has stopped.
    #[error("storage has stopped")]
    Stopped,
}

/// Readings to store, and who to tell when they are.
#[derive(Debug)]
pub struct StoreRequest {
    /// The readings (possibly none: a message of only rejections is still
    /// completed, so its source can acknowledge it in order).
    pub readings: Vec<Reading>,
    /// Completed after the group containing these readings is committed.
    pub done: Option<oneshot::Sender<Commit>>,
}

/// A storage backend.
pub trait ReadingStore: Send {
    /// Append a group of readings. When this returns `Ok`, the readings
    /// are as durable as this backend can make them.
    fn append(&mut self, readings: &[Reading]) -> Result<(), StoreError>;
}

/// Counters of the storage stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreSnapshot {
    /// Readings committed.
    pub stored: u64,
    /// Group commits.
    pub commits: u64,
    /// Failed group commits.
    pub failures: u64,
    /// Readings committed per device.
    pub devices: BTreeMap<Arc<str>, u64>,
}

/// Run the storage stage until ingest drops its sender and the queue is
/// drained.
pub async fn run(
    mut store: impl ReadingStore,
    max_batch: usize,
    mut requests: mpsc::Receiver<StoreRequest>,
    snapshots: watch::Sender<StoreSnapshot>,
) {
    let mut group: Vec<StoreRequest> = Vec::new();
    let mut readings: Vec<Reading> = Vec::new();
    while let Some(first) = requests.recv().await {
        group.push(first);
        let mut n = group[0].readings.len();
        while n < max_batch {
            match requests.try_recv() {
                Ok(r) => {
                    n += r.readings.len();
                    group.push(r);
                }
                Err(_) => break,
            }
        }
        readings.clear();
        for r in &mut group {
            readings.append(&mut r.readings);
        }
        let outcome = if readings.is_empty() {
            Ok(())
        } else {
            store.append(&readings)
        };
        // Counters live in the watch channel itself: updated in place, no
        // copy per commit.
        snapshots.send_modify(|snapshot| match &outcome {
            Ok(()) => {
                snapshot.commits += 1;
                snapshot.stored += readings.len() as u64;
                for r in &readings {
                    *snapshot.devices.entry(Arc::clone(&r.device)).or_default() += 1;
                }
            }
            Err(_) => snapshot.failures += 1,
        });
        if let Err(e) = &outcome {
            tracing::error!(readings = readings.len(), error = %e, "could not store readings; they stay unacknowledged");
        }
        for r in group.drain(..) {
            if let Some(done) = r.done {
                // The source may have gone (shutdown); nothing to tell then.
                let _ = done.send(outcome.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_devices::{Quality, Timestamp, Vital};

    fn reading(v: f64) -> Reading {
        Reading {
            device: "ox".into(),
            patient: "p".into(),
            vital: Vital::Spo2,
            value: v,
            device_time: None,
            gateway_time: Timestamp(0),
            quality: Quality::NONE,
        }
    }

    struct Failing;
    impl ReadingStore for Failing {
        fn append(&mut self, _: &[Reading]) -> Result<(), StoreError> {
            Err(StoreError::Full("test".into()))
        }
    }

    #[tokio::test]
    async fn queued_requests_commit_as_one_group_and_complete_in_order() {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snap_rx) = watch::channel(StoreSnapshot::default());
        let mut waits = Vec::new();
        for i in 0..5 {
            let (done, wait) = oneshot::channel();
            tx.send(StoreRequest {
                readings: vec![reading(90.0 + i as f64)],
                done: Some(done),
            })
            .await
            .unwrap();
            waits.push(wait);
        }
        drop(tx);
        run(VolatileStore, 1024, rx, snap_tx).await;
        for w in waits {
            assert_eq!(w.await.unwrap(), Ok(()));
        }
        let s = snap_rx.borrow().clone();
        assert_eq!((s.stored, s.commits), (5, 1));
    }

    #[tokio::test]
    async fn a_failed_commit_is_reported_to_every_waiting_source() {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snap_rx) = watch::channel(StoreSnapshot::default());
        let (done, wait) = oneshot::channel();
        tx.send(StoreRequest {
            readings: vec![reading(97.0)],
            done: Some(done),
        })
        .await
        .unwrap();
        drop(tx);
        run(Failing, 1024, rx, snap_tx).await;
        assert!(matches!(wait.await.unwrap(), Err(StoreError::Full(_))));
        assert_eq!(snap_rx.borrow().failures, 1);
    }
}
