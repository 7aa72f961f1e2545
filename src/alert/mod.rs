//! The alert stage: conditions in, alert messages out — durably, to every
//! sink that should hear them, recorded in the ledger.
//!
//! ```text
//! detect ─Condition─▶ AlertBook ─AlertEvent─▶ message ─▶ Outbox (sled, sealed) ─▶ SinkQueue per sink ─Attempt─▶ sink tasks
//!                        ▲  (raised, escalated,            │                          ▲                      │
//!   acks (MQTT, HTTP) ───┘   acknowledged, resolved)       └─▶ ledger (audit) ◀── delivery receipts ◀─Outcome┘
//! ```
//!
//! One task owns the lifecycle ([`AlertBook`]), the outbox and every
//! sink's schedule; sinks and the HTTP endpoint talk to it only through
//! channels. For each event it renders the message (`message.rs`), writes
//! it to the outbox with the book in one fsynced batch, and only then
//! hands it to the sinks; every message and every delivery receipt also
//! goes to the ledger as an encrypted alert record. Escalation runs on the
//! wall clock ([`Clock`]), once a second.

pub mod ack;
mod fhir;
pub mod message;
pub mod outbox;
pub mod status;

pub use ack::AckRefused;

use crate::clock::Clock;
use crate::deliver::mqtt::{AckIn, StatusBoard};
use crate::deliver::signature::Secret;
use crate::deliver::{Attempt, DeliveryError, Outcome, SinkFilter, SinkQueue};
use message::Envelope;
use outbox::{Outbox, Pending, State};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use vitalgate_detect::alert::AlertEvent;
use vitalgate_detect::{Category, Condition, ConditionKind, Severity};
use vitalgate_devices::Timestamp;

/// How often escalation is checked.
const TICK: Duration = Duration::from_secs(1);
/// How often a failing outbox write is logged again.
const SAVE_FAILURE_LOG_EVERY: Duration = Duration::from_secs(60);
/// Events kept for the live view.
const RECENT: usize = 8;

/// One sink as the alert stage sees it.
#[derive(Debug)]
pub struct SinkLink {
    /// Its name (outbox entries, receipts, logs).
    pub name: String,
    /// Which alerts it receives.
    pub filter: SinkFilter,
    /// Where its attempts go (capacity ≥ 1; one is in flight at a time).
    pub attempts: mpsc::Sender<Attempt>,
}

/// One open alert, for the live view and `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct OpenAlert {
    /// Alert id.
    pub id: String,
    /// Patient pseudonym.
    pub patient: Arc<str>,
    /// Which condition.
    pub kind: ConditionKind,
    /// Clinical or technical.
    pub category: Category,
    /// Highest severity reached.
    pub severity: Severity,
    /// raised / acknowledged.
    pub state: &'static str,
    /// Escalation tier reached.
    pub tier: usize,
    /// Onset (measurement time).
    pub since: Timestamp,
    /// The detector's explanation.
    pub summary: String,
}

/// One sink's delivery state.
#[derive(Debug, Clone, Serialize)]
pub struct SinkView {
    /// Name.
    pub name: String,
    /// Messages delivered since start.
    pub delivered: u64,
    /// Consecutive failed attempts.
    pub failures: u32,
    /// The last failure, while failing.
    pub last_error: Option<String>,
}

/// What the alert stage shows the live view and metrics.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertSnapshot {
    /// Open alerts, most severe first.
    pub open: Vec<OpenAlert>,
    /// Events since start, by name (raised, escalated, …).
    pub events: BTreeMap<&'static str, u64>,
    /// Messages waiting in the outbox.
    pub outbox: usize,
    /// Age of the oldest waiting message, ms.
    pub oldest_waiting_ms: Option<i64>,
    /// When the oldest waiting message was made (its age at any later
    /// time, for metrics between snapshots).
    pub oldest_waiting_since: Option<Timestamp>,
    /// The outbox could not be written: what is waiting lives in memory
    /// only until the disk works again.
    pub unsaved: bool,
    /// Per sink.
    pub sinks: Vec<SinkView>,
    /// Acknowledgements taken.
    pub acks: u64,
    /// Acknowledgements refused, by reason.
    pub acks_refused: BTreeMap<&'static str, u64>,
    /// The latest events, one line each, newest last.
    pub recent: VecDeque<String>,
}

/// Everything the stage needs besides its channels.
pub struct AlertStage {
    gateway: String,
    clock: Clock,
    state: State,
    outbox: Outbox,
    sinks: Vec<(SinkLink, SinkQueue)>,
    ack_secret: Option<Secret>,
    audit: mpsc::Sender<Vec<u8>>,
    audit_backlog: VecDeque<Vec<u8>>,
    statuses: watch::Sender<StatusBoard>,
    snapshot: AlertSnapshot,
    /// New messages or a changed lifecycle not yet written: written before
    /// anything is handed to a sink.
    dirty: bool,
    /// Deliveries not yet written: written within a tick (a crash before
    /// loses nothing; the message is delivered again, under its
    /// idempotency key), so a delivery costs no fsync of its own.
    delivered_dirty: bool,
    /// Patients whose status changed (published after the save, so a
    /// status never announces an alert the outbox does not hold).
    status_due: BTreeSet<Arc<str>>,
    save_failed_logged: Option<Instant>,
}

impl AlertStage {
    /// A stage over `outbox` and the `state` it was saved with.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        gateway: String,
        clock: Clock,
        outbox: Outbox,
        state: State,
        sinks: Vec<SinkLink>,
        ack_secret: Option<Secret>,
        audit: mpsc::Sender<Vec<u8>>,
        statuses: watch::Sender<StatusBoard>,
    ) -> AlertStage {
        let mut outbox = outbox;
        let known: BTreeSet<String> = sinks.iter().map(|s| s.name.clone()).collect();
        let dropped = outbox.retain_sinks(&known);
        if dropped > 0 {
            tracing::warn!(
                deliveries = dropped,
                "alert outbox held messages for sinks no longer configured; those deliveries are dropped"
            );
        }
        if !outbox.is_empty() {
            tracing::info!(
                waiting = outbox.len(),
                "alert outbox: delivering what was waiting"
            );
        }
        let mut stage = AlertStage {
            gateway,
            clock,
            state,
            outbox,
            sinks: sinks.into_iter().map(|l| (l, SinkQueue::new())).collect(),
            ack_secret,
            audit,
            audit_backlog: VecDeque::new(),
            statuses,
            snapshot: AlertSnapshot::default(),
            dirty: dropped > 0,
            delivered_dirty: false,
            status_due: BTreeSet::new(),
            save_failed_logged: None,
        };
        stage.status_due = stage
            .state
            .book
            .open()
            .map(|a| Arc::clone(&a.key.patient))
            .collect();
        stage.publish_statuses();
        stage
    }

    /// A detector's report.
    pub fn condition(&mut self, condition: Condition) {
        let now = self.clock.now();
        if let Some(event) = self.state.book.on_condition(condition, now) {
            self.emit(vec![event]);
        }
    }

    /// The wall clock: escalate what waited too long.
    pub fn tick(&mut self) {
        let events = self.state.book.tick(self.clock.now());
        if !events.is_empty() {
            self.emit(events);
        }
    }

    /// An acknowledgement arrived.
    pub fn ack(&mut self, ack: AckIn) {
        let now = self.clock.now();
        let result = self.take_ack(&ack.body, now);
        match &result {
            Ok(id) => {
                self.snapshot.acks += 1;
                tracing::info!(alert = %log_ref(id), via = %ack.via, "alert acknowledged");
            }
            Err(e) => {
                *self.snapshot.acks_refused.entry(e.reason()).or_default() += 1;
                // The error may name the alert (its id names the patient):
                // only at debug level.
                tracing::warn!(via = %ack.via, reason = e.reason(), "acknowledgement refused");
                tracing::debug!(via = %ack.via, error = %e, "acknowledgement refused");
            }
        }
        if let Some(reply) = ack.reply {
            let _ = reply.send(result);
        }
    }

    fn take_ack(&mut self, body: &[u8], now: Timestamp) -> Result<String, AckRefused> {
        let secret = self.ack_secret.as_ref().ok_or(AckRefused::NotAccepted)?;
        let ack = ack::check(body, secret, now)?;
        let event = self.state.book.acknowledge(&ack.alert, &ack.by, now)?;
        self.emit(vec![event]);
        Ok(ack.alert)
    }

    /// A sink answered.
    pub fn outcome(&mut self, outcome: Outcome) {
        let now = Instant::now();
        let waiting = self.outbox.len();
        let Some((link, queue)) = self.sinks.get_mut(outcome.sink) else {
            return;
        };
        queue.outcome(outcome.seq, &outcome.result, now);
        match &outcome.result {
            Ok(()) => {
                if let Some(message_id) = self.outbox.delivered(outcome.seq, &link.name) {
                    tracing::info!(sink = %link.name, message = %log_ref(&message_id), "alert delivered");
                    let receipt =
                        message::render_delivery(&message_id, &link.name, self.clock.now());
                    self.audit_backlog.push_back(receipt);
                    self.delivered_dirty = true;
                }
            }
            Err(e) => {
                let failures = queue.failures();
                match e {
                    DeliveryError::Refused(_) => {
                        tracing::error!(sink = %link.name, failures, waiting, error = %e, "alert sink refuses delivery: check its configuration (url, secret); retrying")
                    }
                    DeliveryError::Unreachable(_) if failures == 1 || failures % 20 == 0 => {
                        tracing::warn!(sink = %link.name, failures, waiting, error = %e, "alert sink unreachable; retrying with backoff")
                    }
                    DeliveryError::Unreachable(_) => {
                        tracing::debug!(sink = %link.name, failures, error = %e, "alert sink still unreachable")
                    }
                }
            }
        }
    }

    /// Render, queue and record each event.
    fn emit(&mut self, events: Vec<AlertEvent>) {
        let at = self.clock.now();
        let mut patients = BTreeSet::new();
        for event in events {
            let alert = event.alert();
            let seq = self.state.next_seq;
            self.state.next_seq += 1;
            let bytes: Arc<[u8]> = message::render(
                &event,
                Envelope {
                    gateway: &self.gateway,
                    seq,
                    at,
                },
            )
            .into();
            let name = message::event_name(&event);
            log_event(name, alert);
            *self.snapshot.events.entry(name).or_default() += 1;
            if self.snapshot.recent.len() == RECENT {
                self.snapshot.recent.pop_front();
            }
            self.snapshot.recent.push_back(format!(
                "{} {name} {} {:?} {}: {}",
                at,
                alert.key.patient,
                alert.severity,
                alert.key.kind.name(),
                alert.condition.summary
            ));
            let sinks: BTreeSet<String> = self
                .sinks
                .iter()
                .filter(|(l, _)| l.filter.wants(alert.category, alert.tier))
                .map(|(l, _)| l.name.clone())
                .collect();
            if !sinks.is_empty() {
                self.outbox.push(Pending {
                    seq,
                    message_id: message::message_id(&alert.id, seq),
                    patient: Arc::clone(&alert.key.patient),
                    bytes: Arc::clone(&bytes),
                    created: at,
                    sinks,
                });
            }
            patients.insert(Arc::clone(&alert.key.patient));
            self.audit_backlog.push_back(bytes.to_vec());
        }
        self.dirty = true;
        self.status_due.extend(patients);
    }

    /// Publish the status of every patient whose alerts changed.
    pub fn publish_statuses(&mut self) {
        if self.status_due.is_empty() {
            return;
        }
        let patients = std::mem::take(&mut self.status_due);
        let at = self.clock.now();
        let book = &self.state.book;
        let gateway = &self.gateway;
        self.statuses.send_modify(|board| {
            let board = Arc::make_mut(board);
            for p in patients {
                let status = status::render(gateway, &p, book.open(), at);
                board.insert(p, status.into());
            }
        });
    }

    /// Write what changed (book and outbox, one fsynced batch) off the
    /// async workers: new messages always, deliveries only when
    /// `deliveries` (once a tick). A failure is logged (once a minute) and
    /// retried at the next save; delivery goes on from memory.
    pub async fn save(&mut self, deliveries: bool) {
        if !(self.dirty || deliveries && self.delivered_dirty) {
            return;
        }
        // The outbox goes to a blocking thread for the fsync and comes back;
        // nothing else runs on the stage meanwhile.
        let mut outbox = std::mem::replace(&mut self.outbox, Outbox::in_memory());
        let state = self.state.clone();
        let (outbox, result) = match tokio::task::spawn_blocking(move || {
            let r = outbox.save(&state);
            (outbox, r)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                // The blocking task panicked: the outbox is gone with it.
                tracing::error!(error = %e, "alert outbox save panicked; continuing in memory");
                (Outbox::in_memory(), Ok(()))
            }
        };
        self.outbox = outbox;
        match result {
            Ok(()) => {
                if self.save_failed_logged.take().is_some() {
                    tracing::warn!("alert outbox writes again");
                }
                self.dirty = false;
                self.delivered_dirty = false;
            }
            Err(e) => {
                let now = Instant::now();
                let due = self
                    .save_failed_logged
                    .is_none_or(|t| now.duration_since(t) >= SAVE_FAILURE_LOG_EVERY);
                if due {
                    self.save_failed_logged = Some(now);
                    tracing::error!(error = %e, waiting = self.outbox.len(), "alert outbox cannot be written; alerts are still delivered from memory, and written when the disk works again");
                }
            }
        }
    }

    /// Start an attempt on every sink that is free and has something to
    /// send.
    pub fn dispatch(&mut self) {
        let now = Instant::now();
        let clock = self.clock.now();
        let outbox = &self.outbox;
        for (link, queue) in &mut self.sinks {
            let name = &link.name;
            let waiting = outbox.pending().filter(|p| p.sinks.contains(name));
            let Some(p) = queue.next(now, clock, waiting) else {
                continue;
            };
            let attempt = Attempt {
                seq: p.seq,
                message_id: p.message_id.clone(),
                patient: Arc::clone(&p.patient),
                bytes: Arc::clone(&p.bytes),
            };
            if link.attempts.try_send(attempt).is_err() {
                queue.abandon(now);
            }
        }
    }

    /// Hand the ledger what it has not taken yet.
    fn flush_audit(&mut self) {
        while let Some(m) = self.audit_backlog.pop_front() {
            match self.audit.try_send(m) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(m)) => {
                    self.audit_backlog.push_front(m);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.audit_backlog.clear();
                    break;
                }
            }
        }
    }

    /// When a sink's backoff or pacing ends.
    fn next_wake(&self) -> Option<Instant> {
        self.sinks.iter().filter_map(|(_, q)| q.wake_at()).min()
    }

    /// The counters and open alerts now.
    pub fn snapshot(&self) -> AlertSnapshot {
        let mut s = self.snapshot.clone();
        let now = self.clock.now();
        s.open = self
            .state
            .book
            .open()
            .map(|a| OpenAlert {
                id: a.id.clone(),
                patient: Arc::clone(&a.key.patient),
                kind: a.key.kind,
                category: a.category,
                severity: a.severity,
                state: message::state_name(a),
                tier: a.tier,
                since: a.condition.since,
                summary: a.condition.summary.clone(),
            })
            .collect();
        s.open
            .sort_by(|a, b| (b.severity, a.since.0).cmp(&(a.severity, b.since.0)));
        let outbox = &self.outbox;
        s.outbox = outbox.len();
        s.oldest_waiting_since = outbox.pending().map(|p| p.created).min();
        s.oldest_waiting_ms = s
            .oldest_waiting_since
            .map(|created| now.millis() - created.millis());
        s.unsaved = outbox.unsaved();
        s.sinks = self
            .sinks
            .iter()
            .map(|(l, q)| SinkView {
                name: l.name.clone(),
                delivered: q.delivered(),
                failures: q.failures(),
                last_error: q.last_error().map(|e| e.to_string()),
            })
            .collect();
        s
    }
}

/// How an alert or message id appears in logs at the default level: `a-`
/// and 12 hex digits of its SHA-256, then the `#seq` of a message id. An
/// alert id names the patient and the condition (`kind/patient/...`), and
/// the journal of a stolen gateway must not tell its patient's history;
/// whoever holds the id (the hospital, `vitalgate open --alerts`) can
/// compute the reference and find the line.
pub fn log_ref(id: &str) -> String {
    use sha2::Digest;
    let (alert, seq) = match id.rsplit_once('#') {
        Some((alert, seq)) => (alert, Some(seq)),
        None => (id, None),
    };
    let digest = sha2::Sha256::digest(alert.as_bytes());
    let mut out = format!("a-{}", hex::encode(&digest[..6]));
    if let Some(seq) = seq {
        out.push('#');
        out.push_str(seq);
    }
    out
}

fn log_event(name: &str, alert: &vitalgate_detect::alert::Alert) {
    // No health data at the default level (no value, no patient, no
    // condition): the event, category, tier and an opaque reference say
    // that something needs attention; what it is is in the alert messages
    // and the ledger, and at debug level here.
    let clinical = alert.category == Category::Clinical;
    let reference = log_ref(&alert.id);
    match name {
        "raised" | "reopened" | "escalated" | "worsened" if clinical => tracing::warn!(
            event = name,
            alert = %reference,
            tier = alert.tier,
            "clinical alert"
        ),
        _ => tracing::info!(
            event = name,
            alert = %reference,
            tier = alert.tier,
            category = ?alert.category,
            "alert"
        ),
    }
    tracing::debug!(
        event = name,
        alert = %alert.id,
        reference = %reference,
        kind = alert.key.kind.name(),
        severity = ?alert.severity,
        "alert details"
    );
}

/// Run the stage until detection drops its sender: then save, hand the
/// ledger the last records, and stop (the sinks stop when their attempt
/// senders drop; what they had not delivered waits in the outbox).
pub async fn run(
    mut stage: AlertStage,
    mut conditions: mpsc::Receiver<Condition>,
    mut acks: mpsc::Receiver<AckIn>,
    mut outcomes: mpsc::Receiver<Outcome>,
    snapshots: watch::Sender<AlertSnapshot>,
) {
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    stage.dispatch();
    snapshots.send_replace(stage.snapshot());
    loop {
        let wake = stage.next_wake();
        let sleep = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now));
        let mut ticked = false;
        tokio::select! {
            c = conditions.recv() => match c {
                Some(c) => {
                    stage.condition(c);
                    // Whatever else is queued shares the one fsync (group
                    // commit); the channel is bounded, so this ends.
                    while let Ok(c) = conditions.try_recv() {
                        stage.condition(c);
                    }
                }
                None => break,
            },
            Some(a) = acks.recv() => stage.ack(a),
            Some(o) = outcomes.recv() => stage.outcome(o),
            _ = tick.tick() => {
                stage.tick();
                ticked = true;
            }
            _ = sleep, if wake.is_some() => {}
        }
        stage.save(ticked).await;
        stage.dispatch();
        stage.publish_statuses();
        stage.flush_audit();
        snapshots.send_replace(stage.snapshot());
    }
    stage.save(true).await;
    for m in stage.audit_backlog.drain(..) {
        if stage.audit.send(m).await.is_err() {
            break;
        }
    }
    snapshots.send_replace(stage.snapshot());
}

#[cfg(test)]
mod tests {
    use super::log_ref;

    #[test]
    fn a_log_reference_hides_the_patient_and_condition_and_keeps_the_message_sequence() {
        let alert = "hypoxaemia/patient-0001/ox-1/1700000000000";
        let r = log_ref(alert);
        assert!(r.starts_with("a-") && r.len() == 14, "{r}");
        assert!(!r.contains("patient") && !r.contains("hypox"));
        assert_eq!(log_ref(&format!("{alert}#3")), format!("{r}#3"));
        assert_ne!(log_ref("news2/patient-0002/-/1"), r);
    }
}
