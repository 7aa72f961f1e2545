//! The detection stage: every reading, as it arrives, through its
//! patient's [`PatientMonitor`] (sensor faults, sustained emergency
//! rules, NEWS2, the personal baseline — all in `vitalgate-detect`), and
//! the conditions they report on to the alert stage.
//!
//! It sits beside storage, not behind it: ingest hands each batch to both,
//! so an emergency is never held up by a slow or full disk.
//!
//! **Measurement time.** Detection runs on each reading's own time, so a
//! replayed day gives the alerts living through it gave. The wall clock
//! enters only once a second, to notice devices that went silent; it is
//! shifted back by how far behind the gateway each device's readings run
//! (its clock, or its transport's delay: gateway receive time minus
//! measurement time, at most [`MAX_LAG_MS`]), so a device whose clock lags
//! is not called offline for it.
//!
//! **Frames.** A batch is one device message or serial read, and holds
//! whole samples, so after each batch the touched monitors are flushed:
//! a condition is reported the moment the reading that completes it
//! arrives.
//!
//! **Replays.** A device that resends (MQTT redelivery after a storage
//! refusal) sends readings older than what detection has seen of it; they
//! are counted and skipped, so nothing is judged twice.

use crate::clock::Clock;
use crate::ingest::DeviceStatus;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use vitalgate_detect::{Condition, MonitorConfig, PatientMonitor, PatientSettings};
use vitalgate_devices::{Reading, Timestamp};

/// The most a device's readings may run behind the gateway's clock and
/// still shift the "gone silent" clock back (a backlog upload of old
/// readings must not blind offline detection).
pub const MAX_LAG_MS: i64 = 10 * 60_000;
/// How often the wall clock ticks the monitors.
const TICK: Duration = Duration::from_secs(1);

/// One batch, as detection sees it.
#[derive(Debug, Clone, Default)]
pub struct DetectInput {
    /// Readings, in arrival order.
    pub readings: Vec<Reading>,
    /// Device status frames (sensor off, searching).
    pub statuses: Vec<DeviceStatus>,
}

/// Detection's settings.
#[derive(Debug, Clone, Default)]
pub struct DetectConfig {
    /// Thresholds, sustain and clear times of every detector.
    pub monitor: MonitorConfig,
    /// What clinicians configured per patient (SpO2 scale, oxygen,
    /// consciousness); patients not listed get the defaults.
    pub patients: BTreeMap<Arc<str>, PatientSettings>,
}

/// Detection's counters.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DetectSnapshot {
    /// Readings judged.
    pub readings: u64,
    /// Readings skipped because detection had already seen newer ones
    /// from their device (a resend).
    pub replayed: u64,
    /// Conditions reported (raised, changed or cleared).
    pub conditions: u64,
    /// Patients watched.
    pub patients: usize,
}

#[derive(Debug, Clone, Copy)]
struct DeviceClock {
    /// Measurement time of the newest reading seen.
    latest: Timestamp,
    /// How far its readings run behind the gateway, ms (≥ 0).
    lag_ms: i64,
    patient_index: usize,
}

/// The stage's state: one monitor per patient, one clock per device.
struct Detection {
    config: DetectConfig,
    monitors: Vec<PatientMonitor>,
    patients: HashMap<Arc<str>, usize>,
    devices: HashMap<Arc<str>, DeviceClock>,
    counters: DetectSnapshot,
}

impl Detection {
    fn new(config: DetectConfig) -> Detection {
        Detection {
            config,
            monitors: Vec::new(),
            patients: HashMap::new(),
            devices: HashMap::new(),
            counters: DetectSnapshot::default(),
        }
    }

    fn monitor(&mut self, patient: &Arc<str>) -> usize {
        if let Some(&i) = self.patients.get(patient) {
            return i;
        }
        let settings = self
            .config
            .patients
            .get(patient)
            .copied()
            .unwrap_or_default();
        self.monitors.push(PatientMonitor::new(
            Arc::clone(patient),
            self.config.monitor,
            settings,
        ));
        let i = self.monitors.len() - 1;
        self.patients.insert(Arc::clone(patient), i);
        self.counters.patients = self.monitors.len();
        i
    }

    /// Judge one batch; the conditions it completed, in order.
    fn batch(&mut self, input: &DetectInput) -> Vec<Condition> {
        let mut touched = Vec::new();
        let mut out = Vec::new();
        for r in &input.readings {
            let t = r.time();
            let m = self.monitor(&r.patient);
            let lag_ms = (r.gateway_time.millis() - t.millis()).clamp(0, MAX_LAG_MS);
            match self.devices.get_mut(&r.device) {
                Some(d) if t < d.latest => {
                    self.counters.replayed += 1;
                    continue;
                }
                Some(d) => {
                    d.latest = t;
                    d.lag_ms = lag_ms;
                    d.patient_index = m;
                }
                None => {
                    self.devices.insert(
                        Arc::clone(&r.device),
                        DeviceClock {
                            latest: t,
                            lag_ms,
                            patient_index: m,
                        },
                    );
                }
            }
            self.counters.readings += 1;
            out.extend(self.monitors[m].push(r));
            if !touched.contains(&m) {
                touched.push(m);
            }
        }
        for s in &input.statuses {
            let m = self.monitor(&s.patient);
            let time = s.status.device_time.unwrap_or(s.received);
            out.extend(self.monitors[m].push_status(&s.device, time, s.status.quality));
        }
        for m in touched {
            out.extend(self.monitors[m].flush());
        }
        self.counters.conditions += out.len() as u64;
        out
    }

    /// The wall clock reads `now`: report devices gone silent.
    fn tick(&mut self, now: Timestamp) -> Vec<Condition> {
        let mut lag = vec![0i64; self.monitors.len()];
        for d in self.devices.values() {
            lag[d.patient_index] = lag[d.patient_index].max(d.lag_ms);
        }
        let mut out = Vec::new();
        for (m, lag) in self.monitors.iter_mut().zip(lag) {
            out.extend(m.tick(now.add_millis(-lag)));
        }
        self.counters.conditions += out.len() as u64;
        out
    }
}

/// Run detection until ingest drops its sender; conditions go to the alert
/// stage (waiting when it is busy: bounded, nothing dropped).
pub async fn run(
    mut inputs: mpsc::Receiver<DetectInput>,
    conditions: mpsc::Sender<Condition>,
    config: DetectConfig,
    clock: Clock,
    snapshots: watch::Sender<DetectSnapshot>,
) {
    let mut detection = Detection::new(config);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let found = tokio::select! {
            input = inputs.recv() => match input {
                Some(input) => detection.batch(&input),
                None => break,
            },
            _ = tick.tick() => {
                snapshots.send_replace(detection.counters.clone());
                detection.tick(clock.now())
            }
        };
        for c in found {
            if conditions.send(c).await.is_err() {
                tracing::error!("the alert stage stopped; detection stops");
                return;
            }
        }
    }
    snapshots.send_replace(detection.counters.clone());
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_detect::ConditionKind;
    use vitalgate_devices::{Quality, Vital};

    fn reading(device: &str, vital: Vital, value: f64, t: i64) -> Reading {
        Reading {
            device: device.into(),
            patient: "p-1".into(),
            vital,
            value,
            device_time: Some(Timestamp(t)),
            gateway_time: Timestamp(t + 200),
            quality: Quality::default(),
        }
    }

    fn oximeter(spo2: f64, t: i64) -> DetectInput {
        DetectInput {
            readings: vec![
                reading("ox", Vital::Spo2, spo2, t),
                reading("ox", Vital::PulseRate, 72.0, t),
                reading("ox", Vital::PerfusionIndex, 4.0, t),
            ],
            statuses: Vec::new(),
        }
    }

    const T0: i64 = 1_763_708_400_000;

    #[test]
    fn a_condition_is_reported_by_the_batch_that_completes_it() {
        let mut d = Detection::new(DetectConfig::default());
        let mut raised_at = None;
        for s in 0..120 {
            let spo2 = if s < 20 { 97.0 } else { 80.0 };
            let found = d.batch(&oximeter(spo2, T0 + s * 1000));
            if found
                .iter()
                .any(|c| c.active && c.key.kind == ConditionKind::SustainedHypoxaemia)
            {
                raised_at = Some(s);
                break;
            }
        }
        // Onset at 20 s, sustained 30 s: the reading of second 50 completes
        // it, in its own batch (not one period later).
        assert_eq!(raised_at, Some(50));
    }

    #[test]
    fn a_resent_older_reading_is_skipped() {
        let mut d = Detection::new(DetectConfig::default());
        d.batch(&oximeter(97.0, T0 + 10_000));
        d.batch(&oximeter(97.0, T0 + 5_000));
        assert_eq!(d.counters.replayed, 3);
        assert_eq!(d.counters.readings, 3);
    }

    #[test]
    fn a_device_whose_clock_lags_is_not_called_offline_for_it() {
        let mut d = Detection::new(DetectConfig::default());
        // Readings stamped 5 minutes behind the gateway's clock.
        let lag = 5 * 60_000;
        for s in 0..60 {
            let mut input = oximeter(97.0, T0 + s * 1000);
            for r in &mut input.readings {
                r.gateway_time = Timestamp(T0 + s * 1000 + lag);
            }
            d.batch(&input);
        }
        let now = Timestamp(T0 + 60_000 + lag);
        let found = d.tick(now);
        assert!(
            !found
                .iter()
                .any(|c| c.key.kind == ConditionKind::DeviceOffline),
            "{found:?}"
        );
        // Silent for two minutes past its lag: offline.
        let found = d.tick(now.add_millis(120_000));
        assert!(
            found
                .iter()
                .any(|c| c.key.kind == ConditionKind::DeviceOffline),
            "{found:?}"
        );
    }
}
