//! Storage: the hand-off where a reading becomes the gateway's
//! responsibility.
//!
//! Ingest sends [`StoreRequest`]s; the storage task commits them in groups
//! (everything queued when it wakes, up to `max_batch` readings), then
//! completes every request's `done` in arrival order. An MQTT source
//! acknowledges its message to the device only on that completion, so a
//! PUBACK means exactly what the [`ReadingStore`] promises — for the
//! ledger, fsynced — and group commit keeps that promise cheap: one sync
//! per group, not per message.
//!
//! Before writing, the stage drops readings it already stored
//! ([`Seen`]): QoS 1 delivers at least once, the ledger should hold each
//! reading once.

mod ledger;
mod seen;
mod volatile;

pub use ledger::{LedgerSetupError, open_ledger};
pub use seen::Seen;
pub use volatile::VolatileStore;

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use vitalgate_devices::{Reading, Timestamp, Vital};

/// The outcome a source waits for before acknowledging.
pub type Commit = Result<(), StoreError>;

/// How often the backend gets a chance to do timed work (sealing a block
/// that reached its age) when no readings arrive.
pub const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

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
    /// The transport redelivered this message (MQTT DUP).
    pub redelivered: bool,
    /// Completed after the group containing these readings is committed.
    pub done: Option<oneshot::Sender<Commit>>,
}

/// What the backend's timed work did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Maintained {
    /// Blocks sealed.
    pub sealed: u64,
    /// The newest signed tree head, when a block was sealed.
    pub tree_head: Option<Arc<[u8]>>,
}

/// A storage backend. Calls block (they fsync); the stage runs them off
/// the async workers.
pub trait ReadingStore: Send + 'static {
    /// Append a group: each non-empty batch (one device message or frame
    /// run) is kept together. When this returns `Ok`, the readings are as
    /// durable as this backend can make them.
    fn append(&mut self, batches: &[&[Reading]]) -> Result<(), StoreError>;

    /// Record alert messages and delivery receipts (the alert stage's
    /// audit trail), each as its own encrypted record, durably. A store
    /// without a ledger keeps nothing.
    fn append_alerts(&mut self, _messages: &[&[u8]]) -> Result<(), StoreError> {
        Ok(())
    }

    /// Timed work (sealing a block that is due). Called after every
    /// commit and every [`MAINTAIN_EVERY`].
    fn maintain(&mut self) -> Result<Maintained, StoreError> {
        Ok(Maintained::default())
    }

    /// Clean shutdown (seal the open block).
    fn close(&mut self) -> Result<Maintained, StoreError> {
        Ok(Maintained::default())
    }

    /// Latest stored device time per series, persisted across restarts,
    /// for recognising redelivered messages.
    fn watermarks(&self) -> Vec<(Arc<str>, Vital, Timestamp)> {
        Vec::new()
    }

    /// Blocks sealed so far (0 for a store without blocks).
    fn blocks(&self) -> u64 {
        0
    }

    /// The newest signed tree head (what gets anchored); `None` for a store
    /// without blocks or before the first is sealed.
    fn tree_head(&self) -> Option<Arc<[u8]>> {
        None
    }

    /// Bytes on disk (0 for a store without a disk).
    fn bytes(&self) -> u64 {
        0
    }
}

/// Counters of the storage stage.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreSnapshot {
    /// Readings committed.
    pub stored: u64,
    /// Readings dropped because they were stored before.
    pub duplicates: u64,
    /// Group commits.
    pub commits: u64,
    /// Failed group commits.
    pub failures: u64,
    /// True while storage refuses readings (disk full, I/O failing):
    /// sources stop acknowledging until it recovers.
    pub failing: Option<String>,
    /// Blocks in the ledger (its height).
    pub blocks: u64,
    /// Blocks sealed since the start.
    pub sealed: u64,
    /// Bytes the store occupies on disk.
    pub bytes: u64,
    /// Readings committed per device.
    pub devices: BTreeMap<Arc<str>, u64>,
    /// Duplicates dropped per device.
    pub duplicates_by_device: BTreeMap<Arc<str>, u64>,
    /// Alert records (messages and delivery receipts) written.
    pub alert_records: u64,
    /// Alert records waiting for storage to work again.
    pub alert_records_waiting: usize,
    /// The newest signed tree head (COSE_Sign1), for the anchor stage.
    #[serde(skip)]
    pub tree_head: Option<Arc<[u8]>>,
    /// When the stage last came round to its timed work (every
    /// [`MAINTAIN_EVERY`] while it runs): a stage stuck in a write stops
    /// moving it, and the service watchdog notices.
    #[serde(skip)]
    pub alive_at: Option<tokio::time::Instant>,
}

/// Settings of the storage stage.
#[derive(Debug, Clone, Copy)]
pub struct StageConfig {
    /// Most readings committed together (group commit).
    pub max_batch: usize,
    /// Stored readings remembered per device to recognise duplicates.
    pub replay_window: usize,
}

/// How often a persisting storage failure is logged again.
const FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);

/// The stage's state between groups.
struct Stage<S> {
    store: Option<S>,
    seen: Seen,
    /// Alert records not yet written (kept until storage takes them).
    alerts: Vec<Vec<u8>>,
    snapshots: watch::Sender<StoreSnapshot>,
    failure: FailureLog,
}

/// Says loudly when storage starts failing, then once a minute while it
/// goes on (not once per refused message), and when it works again.
#[derive(Default)]
struct FailureLog {
    since: Option<Instant>,
    last_logged: Option<Instant>,
    refused: u64,
}

impl FailureLog {
    fn failed(&mut self, readings: usize, e: &StoreError) {
        let now = Instant::now();
        self.refused += readings as u64;
        match (self.since, self.last_logged) {
            (None, _) => {
                self.since = Some(now);
                self.last_logged = Some(now);
                tracing::error!(readings, error = %e, "storage refuses readings: not acknowledging them; their senders keep them until storage works again");
            }
            (Some(since), Some(last)) if now.duration_since(last) >= FAILURE_LOG_EVERY => {
                self.last_logged = Some(now);
                tracing::error!(failing_for_s = now.duration_since(since).as_secs(), refused = self.refused, error = %e, "storage still refuses readings");
            }
            _ => {}
        }
    }

    /// True when this ends a failure.
    fn worked(&mut self) -> bool {
        let Some(since) = self.since.take() else {
            return false;
        };
        tracing::warn!(
            failed_for_s = since.elapsed().as_secs(),
            refused = self.refused,
            "storage works again; acknowledging resumes"
        );
        *self = FailureLog::default();
        true
    }
}

/// Run the storage stage until ingest and the alert stage drop their
/// senders and the queues are drained; then close the store (sealing its
/// open block).
pub async fn run<S: ReadingStore>(
    store: S,
    config: StageConfig,
    mut requests: mpsc::Receiver<StoreRequest>,
    mut audit: mpsc::Receiver<Vec<u8>>,
    snapshots: watch::Sender<StoreSnapshot>,
) {
    let seen = Seen::new(config.replay_window, store.watermarks());
    snapshots.send_modify(|s| {
        s.blocks = store.blocks();
        s.bytes = store.bytes();
        s.tree_head = store.tree_head();
        s.alive_at = Some(tokio::time::Instant::now());
    });
    let mut stage = Stage {
        store: Some(store),
        seen,
        alerts: Vec::new(),
        snapshots,
        failure: FailureLog::default(),
    };
    let mut maintain = tokio::time::interval(MAINTAIN_EVERY);
    maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut group: Vec<StoreRequest> = Vec::new();
    loop {
        tokio::select! {
            first = requests.recv() => {
                let Some(first) = first else { break };
                group.push(first);
                let mut n = group[0].readings.len();
                while n < config.max_batch {
                    match requests.try_recv() {
                        Ok(r) => {
                            n += r.readings.len();
                            group.push(r);
                        }
                        Err(_) => break,
                    }
                }
                if !stage.commit(&mut group).await {
                    break;
                }
            }
            Some(record) = audit.recv() => {
                stage.alerts.push(record);
                while let Ok(r) = audit.try_recv() {
                    stage.alerts.push(r);
                }
                if !stage.record_alerts().await {
                    break;
                }
            }
            _ = maintain.tick() => {
                if !stage.alerts.is_empty() && !stage.record_alerts().await {
                    break;
                }
                if !stage.blocking(S::maintain).await {
                    break;
                }
                stage
                    .snapshots
                    .send_modify(|s| s.alive_at = Some(tokio::time::Instant::now()));
            }
        }
    }
    // The alert stage stops after ingest; take its last records.
    while let Some(record) = audit.recv().await {
        stage.alerts.push(record);
    }
    if !stage.alerts.is_empty() {
        stage.record_alerts().await;
    }
    stage.blocking(S::close).await;
}

impl<S: ReadingStore> Stage<S> {
    /// Commit one group and complete its requests in order. False when the
    /// backend is gone (a panic in a blocking call).
    async fn commit(&mut self, group: &mut Vec<StoreRequest>) -> bool {
        let mut duplicates: Vec<Arc<str>> = Vec::new();
        for r in group.iter_mut() {
            let redelivered = r.redelivered;
            let seen = &mut self.seen;
            r.readings.retain(|reading| {
                if seen.is_duplicate(reading, redelivered) {
                    duplicates.push(Arc::clone(&reading.device));
                    false
                } else {
                    true
                }
            });
        }
        let batches: Vec<Vec<Reading>> = group
            .iter_mut()
            .map(|r| std::mem::take(&mut r.readings))
            .collect();
        let (alive, batches, outcome, maintained) = self.append(batches).await;
        match &outcome {
            Ok(()) => self.seen.commit(),
            Err(_) => self.seen.abandon(),
        }
        let stored: usize = batches.iter().map(Vec::len).sum();
        self.snapshots.send_modify(|s| match &outcome {
            Ok(()) => {
                s.commits += 1;
                s.stored += stored as u64;
                for r in batches.iter().flatten() {
                    *s.devices.entry(Arc::clone(&r.device)).or_default() += 1;
                }
                s.duplicates += duplicates.len() as u64;
                for device in &duplicates {
                    *s.duplicates_by_device
                        .entry(Arc::clone(device))
                        .or_default() += 1;
                }
            }
            Err(e) => {
                s.failures += 1;
                s.failing = Some(e.to_string());
            }
        });
        match &outcome {
            Err(e) => self.failure.failed(stored, e),
            Ok(()) => {
                if self.failure.worked() {
                    self.snapshots.send_modify(|s| s.failing = None);
                }
            }
        }
        for r in group.drain(..) {
            if let Some(done) = r.done {
                // The source may have gone (shutdown); nothing to tell then.
                let _ = done.send(outcome.clone());
            }
        }
        if let Some((maintained, blocks)) = maintained {
            self.maintained(maintained, blocks, None);
        }
        alive
    }

    /// Run `append`, and after a good one the backend's timed work, in one
    /// trip off the async workers (both may fsync). The timed work's
    /// outcome comes back with the block count.
    async fn append(
        &mut self,
        batches: Vec<Vec<Reading>>,
    ) -> (
        bool,
        Vec<Vec<Reading>>,
        Commit,
        Option<(Result<Maintained, StoreError>, u64)>,
    ) {
        let Some(mut store) = self.store.take() else {
            return (false, batches, Err(StoreError::Stopped), None);
        };
        let task = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[Reading]> = batches.iter().map(Vec::as_slice).collect();
            let outcome = if refs.iter().all(|b| b.is_empty()) {
                Ok(())
            } else {
                store.append(&refs)
            };
            let maintained = outcome.is_ok().then(|| (store.maintain(), store.blocks()));
            (store, batches, outcome, maintained)
        });
        match task.await {
            Ok((store, batches, outcome, maintained)) => {
                self.store = Some(store);
                (true, batches, outcome, maintained)
            }
            Err(e) => {
                tracing::error!(error = %e, "the storage backend failed; storage stops");
                (false, Vec::new(), Err(StoreError::Stopped), None)
            }
        }
    }

    /// Write the waiting alert records, off the async workers. On a
    /// failure they stay waiting (retried every [`MAINTAIN_EVERY`]): the
    /// audit trail is never silently shortened. False when the backend is
    /// gone.
    async fn record_alerts(&mut self) -> bool {
        let Some(mut store) = self.store.take() else {
            return false;
        };
        let records = std::mem::take(&mut self.alerts);
        let task = tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            let outcome = store.append_alerts(&refs);
            (store, records, outcome)
        });
        match task.await {
            Ok((store, records, outcome)) => {
                self.store = Some(store);
                match outcome {
                    Ok(()) => {
                        let n = records.len() as u64;
                        self.snapshots.send_modify(|s| {
                            s.alert_records += n;
                            s.alert_records_waiting = 0;
                        });
                    }
                    Err(e) => {
                        self.failure.failed(0, &e);
                        self.alerts = records;
                        let waiting = self.alerts.len();
                        self.snapshots
                            .send_modify(|s| s.alert_records_waiting = waiting);
                    }
                }
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the storage backend failed; storage stops");
                false
            }
        }
    }

    /// Publish what timed or closing work did.
    fn maintained(
        &mut self,
        outcome: Result<Maintained, StoreError>,
        blocks: u64,
        bytes: Option<u64>,
    ) {
        let (head, sealed) = match &outcome {
            Ok(m) => (m.tree_head.clone(), m.sealed),
            Err(e) => {
                self.failure.failed(0, e);
                (None, 0)
            }
        };
        self.snapshots.send_modify(|s| {
            s.blocks = blocks;
            s.sealed += sealed;
            if let Some(bytes) = bytes {
                s.bytes = bytes;
            }
            if head.is_some() {
                s.tree_head = head;
            }
        });
    }

    /// Run timed or closing work off the async workers and publish what it
    /// did, with the disk usage (a directory walk: once a second at most).
    /// False when the backend is gone.
    async fn blocking(&mut self, work: fn(&mut S) -> Result<Maintained, StoreError>) -> bool {
        let Some(mut store) = self.store.take() else {
            return false;
        };
        let task = tokio::task::spawn_blocking(move || {
            let outcome = work(&mut store);
            let (blocks, bytes) = (store.blocks(), store.bytes());
            (store, outcome, blocks, bytes)
        });
        match task.await {
            Ok((store, outcome, blocks, bytes)) => {
                self.store = Some(store);
                self.maintained(outcome, blocks, Some(bytes));
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "the storage backend failed; storage stops");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_devices::Quality;

    fn reading(v: f64, t: Option<i64>) -> Reading {
        Reading {
            device: "ox".into(),
            patient: "p".into(),
            vital: Vital::Spo2,
            value: v,
            device_time: t.map(Timestamp),
            gateway_time: Timestamp(0),
            quality: Quality::NONE,
        }
    }

    /// Refuses the first `refuse` groups, then accepts.
    struct Flaky {
        refuse: usize,
        groups: Vec<usize>,
    }
    impl ReadingStore for Flaky {
        fn append(&mut self, batches: &[&[Reading]]) -> Result<(), StoreError> {
            if self.refuse > 0 {
                self.refuse -= 1;
                return Err(StoreError::Full("test".into()));
            }
            self.groups.push(batches.len());
            Ok(())
        }
    }

    /// An audit channel nobody sends on.
    fn no_audit() -> mpsc::Receiver<Vec<u8>> {
        mpsc::channel(1).1
    }

    const CONFIG: StageConfig = StageConfig {
        max_batch: 1024,
        replay_window: 64,
    };

    async fn send(
        tx: &mpsc::Sender<StoreRequest>,
        readings: Vec<Reading>,
        redelivered: bool,
    ) -> oneshot::Receiver<Commit> {
        let (done, wait) = oneshot::channel();
        tx.send(StoreRequest {
            readings,
            redelivered,
            done: Some(done),
        })
        .await
        .unwrap();
        wait
    }

    #[tokio::test]
    async fn queued_requests_commit_as_one_group_and_complete_in_order() {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snap_rx) = watch::channel(StoreSnapshot::default());
        let mut waits = Vec::new();
        for i in 0..5 {
            waits.push(send(&tx, vec![reading(90.0 + i as f64, None)], false).await);
        }
        drop(tx);
        run(VolatileStore, CONFIG, rx, no_audit(), snap_tx).await;
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
        let wait = send(&tx, vec![reading(97.0, None)], false).await;
        drop(tx);
        run(
            Flaky {
                refuse: 1,
                groups: Vec::new(),
            },
            CONFIG,
            rx,
            no_audit(),
            snap_tx,
        )
        .await;
        assert!(matches!(wait.await.unwrap(), Err(StoreError::Full(_))));
        let s = snap_rx.borrow().clone();
        assert_eq!(s.failures, 1);
        assert!(s.failing.is_some());
    }

    #[tokio::test]
    async fn a_stored_reading_sent_again_is_dropped_and_counted_but_still_acknowledged() {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snap_rx) = watch::channel(StoreSnapshot::default());
        let task = tokio::spawn(run(VolatileStore, CONFIG, rx, no_audit(), snap_tx));
        let first = send(&tx, vec![reading(97.0, Some(1000))], false).await;
        assert_eq!(first.await.unwrap(), Ok(()));
        let again = send(&tx, vec![reading(97.0, Some(1000))], true).await;
        assert_eq!(again.await.unwrap(), Ok(()));
        drop(tx);
        task.await.unwrap();
        let s = snap_rx.borrow().clone();
        assert_eq!((s.stored, s.duplicates), (1, 1));
        assert_eq!(s.duplicates_by_device.get("ox"), Some(&1));
    }

    #[tokio::test]
    async fn a_refused_reading_is_stored_when_it_comes_again() {
        let (tx, rx) = mpsc::channel(16);
        let (snap_tx, snap_rx) = watch::channel(StoreSnapshot::default());
        let task = tokio::spawn(run(
            Flaky {
                refuse: 1,
                groups: Vec::new(),
            },
            CONFIG,
            rx,
            no_audit(),
            snap_tx,
        ));
        let first = send(&tx, vec![reading(97.0, Some(1000))], false).await;
        assert!(first.await.unwrap().is_err());
        let again = send(&tx, vec![reading(97.0, Some(1000))], true).await;
        assert_eq!(again.await.unwrap(), Ok(()));
        drop(tx);
        task.await.unwrap();
        let s = snap_rx.borrow().clone();
        assert_eq!((s.stored, s.duplicates, s.failures), (1, 0, 1));
        assert!(s.failing.is_none(), "recovered");
    }
}
