//! The detection and alert stages together, on tokio's paused clock:
//! sustain times, hysteresis, escalation and acknowledgement measured in
//! simulated minutes, without sleeping, and the outbox across a restart.
//!
//! The stages run as in the daemon (`detect::run` → `alert::run`, bounded
//! channels); the sink is the test itself, answering each attempt.

use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use vitalgate::alert::outbox::{Outbox, State};
use vitalgate::alert::{self, AlertSnapshot, AlertStage, SinkLink};
use vitalgate::clock::Clock;
use vitalgate::deliver::mqtt::{AckIn, StatusBoard};
use vitalgate::deliver::signature::Secret;
use vitalgate::deliver::{Attempt, DeliveryError, Outcome, SinkFilter};
use vitalgate::detect::{self, DetectConfig, DetectInput};
use vitalgate_detect::alert::{AlertBook, EscalationPolicy};
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// 2026-12-04T08:00:00Z.
const T0: Timestamp = Timestamp(1_796_371_200_000);
const MIN: u64 = 60;

fn secret() -> Secret {
    Secret::new(b"a hospital secret of 32 bytes!!!".to_vec())
}

/// The stages, with the test as their one sink ("hospital").
struct Stages {
    input: Option<mpsc::Sender<DetectInput>>,
    attempts: mpsc::Receiver<Attempt>,
    outcomes: mpsc::Sender<Outcome>,
    acks: mpsc::Sender<AckIn>,
    snapshots: watch::Receiver<AlertSnapshot>,
    _audit: mpsc::Receiver<Vec<u8>>,
    tasks: JoinSet<()>,
    /// Seconds of measurement time fed so far.
    second: i64,
}

/// One delivered message, the fields the tests look at.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    event: String,
    id: String,
    kind: String,
    tier: u64,
    message_id: String,
}

fn start(outbox: Outbox, state: State) -> Stages {
    let clock = Clock::tokio_from(T0);
    let (input_tx, input_rx) = mpsc::channel(64);
    let (cond_tx, cond_rx) = mpsc::channel(64);
    let (attempt_tx, attempt_rx) = mpsc::channel(1);
    let (outcome_tx, outcome_rx) = mpsc::channel(4);
    let (ack_tx, ack_rx) = mpsc::channel(4);
    let (audit_tx, audit_rx) = mpsc::channel(256);
    let (status_tx, _status_rx) = watch::channel(StatusBoard::default());
    let (snap_tx, snap_rx) = watch::channel(AlertSnapshot::default());
    let (detect_snap_tx, _) = watch::channel(Default::default());
    let stage = AlertStage::new(
        "gw-test".into(),
        clock,
        outbox,
        state,
        vec![SinkLink {
            name: "hospital".into(),
            filter: SinkFilter::default(),
            attempts: attempt_tx,
        }],
        Some(secret()),
        audit_tx,
        status_tx,
    );
    let mut tasks = JoinSet::new();
    tasks.spawn(detect::run(
        input_rx,
        cond_tx,
        DetectConfig::default(),
        clock,
        detect_snap_tx,
    ));
    tasks.spawn(alert::run(stage, cond_rx, ack_rx, outcome_rx, snap_tx));
    Stages {
        input: Some(input_tx),
        attempts: attempt_rx,
        outcomes: outcome_tx,
        acks: ack_tx,
        snapshots: snap_rx,
        _audit: audit_rx,
        tasks,
        second: 0,
    }
}

fn new_state() -> State {
    State {
        next_seq: 0,
        book: AlertBook::new(EscalationPolicy::default()),
    }
}

fn oximeter(spo2: f64, pulse: f64, t: Timestamp) -> DetectInput {
    let r = |vital, value| Reading {
        device: "ox-1".into(),
        patient: "patient-1".into(),
        vital,
        value,
        device_time: Some(t),
        gateway_time: t.add_millis(150),
        quality: Quality::NONE,
    };
    DetectInput {
        readings: vec![
            r(Vital::Spo2, spo2),
            r(Vital::PulseRate, pulse),
            r(Vital::PerfusionIndex, 3.5),
        ],
        statuses: Vec::new(),
    }
}

impl Stages {
    /// Feed one oximeter sample a second for `secs` seconds (measurement
    /// time and the clock advancing together), answering every attempt
    /// with `answer`; returns what was delivered (or attempted).
    async fn feed(
        &mut self,
        secs: i64,
        spo2: impl Fn(i64) -> f64,
        answer: &impl Fn() -> Result<(), DeliveryError>,
    ) -> Vec<(i64, Seen)> {
        let mut seen = Vec::new();
        for _ in 0..secs {
            let t = T0.add_millis(self.second * 1000);
            let input = self.input.as_ref().expect("running");
            input
                // A living pulse (a constant one would be a flatline).
                .send(oximeter(
                    spo2(self.second),
                    70.0 + (self.second % 5) as f64,
                    t,
                ))
                .await
                .unwrap();
            seen.extend(
                self.wait(Duration::from_secs(1), answer)
                    .await
                    .into_iter()
                    .map(|s| (self.second, s)),
            );
            self.second += 1;
        }
        seen
    }

    /// Let `d` of clock time pass, answering attempts.
    async fn wait(
        &mut self,
        d: Duration,
        answer: &impl Fn() -> Result<(), DeliveryError>,
    ) -> Vec<Seen> {
        let deadline = tokio::time::Instant::now() + d;
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                a = self.attempts.recv() => {
                    let Some(a) = a else { break };
                    seen.push(parse(&a));
                    self.outcomes.send(Outcome { sink: 0, seq: a.seq, result: answer() }).await.unwrap();
                }
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        seen
    }

    /// Hand the stage an acknowledgement document; its verdict.
    async fn ack(&mut self, body: Vec<u8>) -> Result<String, vitalgate::alert::AckRefused> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.acks
            .send(AckIn {
                via: "test".into(),
                body: body.into(),
                reply: Some(reply),
            })
            .await
            .unwrap();
        answer.await.unwrap()
    }

    async fn stop(mut self) {
        self.input.take();
        while let Some(r) = self.tasks.join_next().await {
            r.unwrap();
        }
    }
}

fn parse(a: &Attempt) -> Seen {
    let v: serde_json::Value = serde_json::from_slice(&a.bytes).unwrap();
    assert_eq!(v["format"], "vitalgate/alert/1");
    assert_eq!(v["message_id"], a.message_id.as_str());
    Seen {
        event: v["event"].as_str().unwrap().into(),
        id: v["alert"]["id"].as_str().unwrap().into(),
        kind: v["alert"]["kind"].as_str().unwrap().into(),
        tier: v["alert"]["tier"].as_u64().unwrap(),
        message_id: a.message_id.clone(),
    }
}

fn ok() -> Result<(), DeliveryError> {
    Ok(())
}

fn of_kind<'a>(seen: &'a [(i64, Seen)], kind: &str) -> Vec<&'a (i64, Seen)> {
    seen.iter().filter(|(_, s)| s.kind == kind).collect()
}

#[tokio::test(start_paused = true)]
async fn an_emergency_is_raised_when_its_sustain_time_has_passed_and_not_before() {
    let mut s = start(Outbox::in_memory(), new_state());
    // Normal for 20 s, then SpO2 80 %: the rule (< 85 % for 30 s) holds
    // from second 20 and is raised by the sample of second 50.
    let seen = s
        .feed(70, |sec| if sec < 20 { 97.0 } else { 80.0 }, &ok)
        .await;
    let hypox = of_kind(&seen, "sustained_hypoxaemia");
    assert_eq!(hypox.len(), 1, "{seen:?}");
    assert_eq!(hypox[0].0, 50);
    assert_eq!(hypox[0].1.event, "raised");
    assert_eq!(
        hypox[0].1.id,
        format!("sustained_hypoxaemia/patient-1/-/{}", T0.millis() + 20_000)
    );
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_value_hovering_at_the_threshold_is_one_alert_that_resolves_once_and_reopens() {
    let mut s = start(Outbox::in_memory(), new_state());
    let mut seen = s.feed(60, |_| 80.0, &ok).await;
    // Hovering between 84 and 87 %: above the threshold at times, never
    // 3 points clear of it — no resolve, no second alert.
    seen.extend(
        s.feed(300, |sec| [84.0, 86.0, 87.0, 85.0][sec as usize % 4], &ok)
            .await,
    );
    // Then clearly recovered for 70 s: resolved once (after the 60 s clear
    // time), and back within 10 min: the same alert reopens.
    let recovered = |sec: i64| 95.0 + (sec % 3) as f64;
    seen.extend(s.feed(70, recovered, &ok).await);
    seen.extend(s.feed(120, recovered, &ok).await);
    seen.extend(s.feed(40, |_| 80.0, &ok).await);
    // (Escalations come on the clock meanwhile; they are the next test's.)
    let events: Vec<&str> = of_kind(&seen, "sustained_hypoxaemia")
        .iter()
        .map(|(_, s)| s.event.as_str())
        .filter(|e| *e != "escalated")
        .collect();
    assert_eq!(events, ["raised", "resolved", "reopened"], "{seen:#?}");
    let ids: Vec<&str> = of_kind(&seen, "sustained_hypoxaemia")
        .iter()
        .map(|(_, s)| s.id.as_str())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "one alert: {ids:?}");
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn an_unacknowledged_alert_escalates_tier_by_tier_until_someone_acknowledges_it() {
    let mut s = start(Outbox::in_memory(), new_state());
    let seen = s.feed(40, |_| 80.0, &ok).await;
    let raised = of_kind(&seen, "sustained_hypoxaemia")[0].1.clone();
    // The device goes quiet; escalation runs on the clock alone.
    let before = s.wait(Duration::from_secs(5 * MIN - 15), &ok).await;
    assert!(!before.iter().any(|x| x.event == "escalated"), "{before:?}");
    let tier1 = s.wait(Duration::from_secs(30), &ok).await;
    let esc: Vec<&Seen> = tier1
        .iter()
        .filter(|x| x.event == "escalated" && x.id == raised.id)
        .collect();
    assert_eq!(esc.len(), 1, "{tier1:?}");
    assert_eq!(esc[0].tier, 1);
    let tier2 = s.wait(Duration::from_secs(10 * MIN), &ok).await;
    assert!(
        tier2
            .iter()
            .any(|x| x.event == "escalated" && x.id == raised.id && x.tier == 2),
        "{tier2:?}"
    );
    // A signed acknowledgement, as the hospital sends it.
    let now_secs = Clock::tokio_from(T0).now().millis() / 1000;
    let body = vitalgate::alert::ack::sign(&secret(), &raised.id, "nurse-7", now_secs);
    assert_eq!(s.ack(body).await, Ok(raised.id.clone()));
    let after = s.wait(Duration::from_secs(1), &ok).await;
    assert!(after.iter().any(|x| x.event == "acknowledged"), "{after:?}");
    let later = s.wait(Duration::from_secs(60 * MIN), &ok).await;
    assert!(
        !later
            .iter()
            .any(|x| x.event == "escalated" && x.id == raised.id),
        "{later:?}"
    );
    let snap = s.snapshots.borrow().clone();
    assert_eq!(snap.acks, 1);
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_forged_acknowledgement_changes_nothing() {
    let mut s = start(Outbox::in_memory(), new_state());
    let seen = s.feed(40, |_| 80.0, &ok).await;
    let raised = of_kind(&seen, "sustained_hypoxaemia")[0].1.clone();
    let forger = Secret::new(b"not the hospital's secret at all".to_vec());
    let body = vitalgate::alert::ack::sign(&forger, &raised.id, "mallory", T0.millis() / 1000);
    assert_eq!(
        s.ack(body).await,
        Err(vitalgate::alert::AckRefused::BadSignature)
    );
    let later = s.wait(Duration::from_secs(6 * MIN), &ok).await;
    assert!(
        later.iter().any(|x| x.event == "escalated"),
        "still escalates"
    );
    assert_eq!(
        s.snapshots.borrow().acks_refused.get("bad_signature"),
        Some(&1)
    );
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_is_down_gets_the_alert_once_it_is_back_with_backoff_between() {
    let mut s = start(Outbox::in_memory(), new_state());
    let down = || Err(DeliveryError::Unreachable("connection refused".into()));
    let seen = s.feed(60, |_| 80.0, &down).await;
    let attempts = of_kind(&seen, "sustained_hypoxaemia");
    // Raised at 30 s; retried with exponential backoff, not every second.
    assert!(
        (2..=6).contains(&attempts.len()),
        "{} attempts in 30 s: {attempts:?}",
        attempts.len()
    );
    assert!(attempts.iter().all(|(_, a)| a.event == "raised"));
    let back = s.wait(Duration::from_secs(2 * MIN), &ok).await;
    assert!(back.iter().any(|x| x.event == "raised"), "{back:?}");
    let snap = s.snapshots.borrow().clone();
    assert_eq!(snap.outbox, 0, "{snap:#?}");
    assert_eq!(snap.sinks[0].failures, 0);
    s.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_outbox_delivers_after_a_restart_what_it_could_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let key = [9u8; 32];
    let (outbox, state) = Outbox::open(dir.path(), &key).unwrap();
    let mut s = start(
        outbox,
        State {
            book: AlertBook::new(EscalationPolicy::default()),
            ..state
        },
    );
    let down = || Err(DeliveryError::Unreachable("down".into()));
    let seen = s.feed(40, |_| 80.0, &down).await;
    let raised = of_kind(&seen, "sustained_hypoxaemia")[0].1.clone();
    s.stop().await;

    // Restarted: nothing is fed; what waited is delivered, and the book
    // still knows the alert (an acknowledgement finds it).
    let (outbox, state) = Outbox::open(dir.path(), &key).unwrap();
    assert!(outbox.pending().any(|p| p.message_id == raised.message_id));
    assert!(state.book.open().any(|a| a.id == raised.id));
    let mut s = start(outbox, state);
    let seen = s.wait(Duration::from_secs(5), &ok).await;
    assert!(
        seen.iter().any(|x| x.message_id == raised.message_id),
        "{seen:?}"
    );
    let snap = s.snapshots.borrow().clone();
    assert_eq!(snap.outbox, 0);
    assert!(snap.open.iter().any(|a| a.id == raised.id));
    s.stop().await;
    let (outbox, _) = Outbox::open(dir.path(), &key).unwrap();
    assert!(
        outbox.is_empty(),
        "delivered messages are gone from disk too"
    );
}
