//! One patient's detection, composed: fault detection first, then the
//! sustained rules, the personal baseline and NEWS2 on the readings judged
//! reliable.
//!
//! ```text
//! Reading ─> frame (same device, same time) ─> FaultDetector ─> technical conditions
//!                                                   │ reliable readings only
//!                                                   ├─> SustainedRules ─> clinical conditions
//!                                                   ├─> BaselineDetector ─> clinical condition
//!                                                   └─> ObservationWindow ─> NEWS2 ─> clinical condition
//! ```
//!
//! **NEWS2 on every clinical condition.** Whatever detector raised it, a
//! clinical condition leaves the monitor with [`Condition::news2`] set to
//! the patient's confirmed NEWS2 at the condition's time (the score the
//! NEWS2 condition itself uses), so an alert carries the total and every
//! sub-score; technical conditions carry `None`.
//!
//! Pure: no clock, no I/O. Time is each reading's measurement time; the
//! caller's clock enters only through [`PatientMonitor::tick`] (devices
//! gone silent, frames completed). The same readings, statuses and ticks in
//! the same order give the same conditions.
//!
//! **Frames.** A device's readings of one instant arrive one by one (an
//! oximeter's pulse rate, SpO2 and perfusion index), and a motion artifact
//! is only visible across them, so readings are held per device until a
//! reading with another time arrives, [`PatientMonitor::tick`] passes
//! their time, or [`PatientMonitor::flush`] is called. At 1 Hz this costs
//! one period of delay.
//!
//! **Suppression.** Readings a fault detector judges unreliable (motion
//! artifact and its averaging tail, flatline, impossible values, sensor
//! off, and the NEWS2 window's unscorable flags) never reach the clinical
//! rules, the baseline nor the NEWS2 window. When a motion artifact is
//! recognised a few samples into an SpO2 drop, the pending onsets those
//! samples started (rules and baseline) are dropped and NEWS2 is not
//! evaluated until the device is reliable again, so the already-admitted
//! corrupted values cannot complete an alert.

use crate::baseline::{BaselineConfig, BaselineDetector};
use crate::condition::{Category, Condition, ConditionKey, ConditionKind, Evidence, Severity};
use crate::debounce::{Debounce, Transition};
use crate::faults::{FaultConfig, FaultDetector};
use crate::news2::{self, Consciousness, ObservationWindow, Oxygen, RiskBand, Spo2Scale};
use crate::rules::{RulesConfig, SustainedRules};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// When a NEWS2 band becomes a condition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct News2Config {
    /// Whether NEWS2 conditions are reported.
    pub enabled: bool,
    /// How old the latest reading of a parameter may be and still count,
    /// ms. 30 min covers a cuff on a 15–30 min schedule.
    pub window_ms: i64,
    /// How long the band must stay low–medium or above before the
    /// condition is raised, ms. NEWS2 is a snapshot score built for
    /// intermittent observations; on 1 Hz data a minute keeps a few
    /// noisy samples from being a "set of observations".
    pub sustain_ms: i64,
    /// How long the band must stay low before it clears, ms. NEWS2's own
    /// monitoring interval after a low–medium score is an hour; 5 min is a
    /// compromise that still stops a hovering score from flapping.
    pub clear_ms: i64,
}

impl Default for News2Config {
    fn default() -> Self {
        News2Config {
            enabled: true,
            window_ms: 30 * 60_000,
            sustain_ms: 60_000,
            clear_ms: 5 * 60_000,
        }
    }
}

/// Everything the monitor can be configured with.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    /// Sustained emergency rules.
    pub rules: RulesConfig,
    /// Sensor-fault detectors.
    pub faults: FaultConfig,
    /// NEWS2 conditions.
    pub news2: News2Config,
    /// The personal baseline.
    pub baseline: BaselineConfig,
}

impl MonitorConfig {
    /// The sustain time of the detector reporting clinical `kind`, ms.
    pub fn sustain_ms(&self, kind: ConditionKind) -> Option<i64> {
        match kind {
            ConditionKind::News2 => Some(self.news2.sustain_ms),
            // The condition spans every vital: the shortest sustain time
            // of any of them (a lower bound).
            ConditionKind::BaselineDrift => self.baseline.min_sustain_ms(),
            k => self.rules.sustain_ms(k),
        }
    }
}

/// What a clinician configured about the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PatientSettings {
    /// SpO2 scale (Scale 2 for prescribed targets of 88–92 %).
    pub scale: Spo2Scale,
    /// Level of consciousness, as last assessed.
    pub consciousness: Consciousness,
    /// Air or supplemental oxygen.
    pub oxygen: Oxygen,
}

#[derive(Debug, Clone)]
struct Frame {
    time: Timestamp,
    readings: Vec<Reading>,
}

/// The NEWS2 condition's state.
#[derive(Debug, Clone)]
struct News2State {
    debounce: Debounce,
    /// The severity last reported while active.
    reported: Option<Severity>,
}

/// One patient's detection. See the module documentation.
#[derive(Debug, Clone)]
pub struct PatientMonitor {
    patient: Arc<str>,
    config: MonitorConfig,
    settings: PatientSettings,
    faults: FaultDetector,
    rules: SustainedRules,
    baseline: BaselineDetector,
    window: ObservationWindow,
    news2: News2State,
    pending: BTreeMap<Arc<str>, Frame>,
}

impl PatientMonitor {
    /// A monitor for `patient`.
    pub fn new(
        patient: Arc<str>,
        config: MonitorConfig,
        settings: PatientSettings,
    ) -> PatientMonitor {
        // Two windows: the latest reading may be a window old, and the one
        // confirming it a window older still.
        let retention = 2 * config.news2.window_ms.max(0) + 60_000;
        PatientMonitor {
            rules: SustainedRules::new(Arc::clone(&patient), &config.rules, settings.scale),
            baseline: BaselineDetector::new(Arc::clone(&patient), config.baseline),
            faults: FaultDetector::new(config.faults),
            window: ObservationWindow::new(retention)
                .with_config(settings.consciousness, settings.oxygen),
            news2: News2State {
                debounce: Debounce::new(
                    config.news2.sustain_ms,
                    config.news2.clear_ms,
                    // NEWS2 is evaluated on every reliable reading of a
                    // scored vital; a gap of more than 10 min means nothing
                    // was measured and an onset must start over.
                    10 * 60_000,
                ),
                reported: None,
            },
            pending: BTreeMap::new(),
            patient,
            config,
            settings,
        }
    }

    /// The patient.
    pub fn patient(&self) -> &Arc<str> {
        &self.patient
    }

    /// The configuration.
    pub fn config(&self) -> &MonitorConfig {
        &self.config
    }

    /// The patient settings.
    pub fn settings(&self) -> &PatientSettings {
        &self.settings
    }

    /// The personal-baseline detector (its learned baselines and levels,
    /// for status pages).
    pub fn baseline(&self) -> &BaselineDetector {
        &self.baseline
    }

    /// Take one reading of this patient (others are ignored: the caller
    /// routes by patient). Returns the conditions raised or cleared by the
    /// frames this reading completed.
    pub fn push(&mut self, reading: &Reading) -> Vec<Condition> {
        if reading.patient != self.patient {
            return Vec::new();
        }
        let t = reading.time();
        let mut out = Vec::new();
        match self.pending.get_mut(&reading.device) {
            Some(frame) if frame.time == t => {
                frame.readings.push(reading.clone());
                return out;
            }
            Some(_) => {
                if let Some(frame) = self.pending.remove(&reading.device) {
                    out.extend(self.run_frame(frame));
                }
            }
            None => {}
        }
        self.pending.insert(
            Arc::clone(&reading.device),
            Frame {
                time: t,
                readings: vec![reading.clone()],
            },
        );
        self.with_news2(out)
    }

    /// A frame with no values, only device status (sensor off, searching:
    /// [`vitalgate_devices::Status`]), from `device` at measurement time
    /// `time`.
    pub fn push_status(
        &mut self,
        device: &Arc<str>,
        time: Timestamp,
        quality: Quality,
    ) -> Vec<Condition> {
        let mut out = Vec::new();
        if let Some(frame) = self.pending.remove(device) {
            out.extend(self.run_frame(frame));
        }
        out.extend(self.faults.status(device, &self.patient, time, quality));
        self.with_news2(out)
    }

    /// The caller's clock (same time base as the readings): completes the
    /// frames older than `now` and reports devices gone silent.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Condition> {
        let mut out = self.flush_where(|f| f.time < now);
        out.extend(self.baseline.tick(now));
        out.extend(self.faults.tick(now));
        self.with_news2(out)
    }

    /// Complete every held frame (end of a replay).
    pub fn flush(&mut self) -> Vec<Condition> {
        let out = self.flush_where(|_| true);
        self.with_news2(out)
    }

    /// Attach the confirmed NEWS2 at each clinical condition's time.
    fn with_news2(&self, mut out: Vec<Condition>) -> Vec<Condition> {
        for c in &mut out {
            if c.news2.is_none() && c.key.kind.category() == Category::Clinical {
                c.news2 = Some(self.confirmed_score(c.at));
            }
        }
        out
    }

    fn flush_where(&mut self, due: impl Fn(&Frame) -> bool) -> Vec<Condition> {
        let mut frames: Vec<(Arc<str>, Frame)> = Vec::new();
        let keys: Vec<Arc<str>> = self
            .pending
            .iter()
            .filter(|(_, f)| due(f))
            .map(|(k, _)| Arc::clone(k))
            .collect();
        for k in keys {
            if let Some(f) = self.pending.remove(&k) {
                frames.push((k, f));
            }
        }
        // In time order, then device order: deterministic.
        frames.sort_by(|a, b| (a.1.time, &a.0).cmp(&(b.1.time, &b.0)));
        frames
            .into_iter()
            .flat_map(|(_, f)| self.run_frame(f))
            .collect()
    }

    fn run_frame(&mut self, frame: Frame) -> Vec<Condition> {
        let (mut out, verdict) = self.faults.push_frame(&frame.readings);
        if verdict.motion {
            for r in &frame.readings {
                self.rules.interrupt(r.vital);
                self.baseline.interrupt(r.vital);
            }
            self.news2.debounce.interrupt();
        }
        let mut scored = false;
        let mut evidence = Vec::new();
        for (r, &ok) in frame.readings.iter().zip(&verdict.reliable) {
            if !ok {
                continue;
            }
            if self.window.push(r) == news2::Pushed::Kept {
                scored = true;
                evidence.push(Evidence {
                    device: Arc::clone(&r.device),
                    vital: r.vital,
                    value: r.value,
                    time: r.time(),
                    quality: r.quality,
                });
            }
            out.extend(self.rules.push(r));
            out.extend(self.baseline.push(r));
        }
        if scored && self.config.news2.enabled && !self.faults.any_in_motion() {
            out.extend(self.evaluate_news2(frame.time, evidence));
        }
        out
    }

    fn evaluate_news2(&mut self, t: Timestamp, evidence: Vec<Evidence>) -> Option<Condition> {
        let score = self.confirmed_score(t);
        let alerting = score.band >= RiskBand::LowMedium;
        let severity = match score.band {
            RiskBand::Low | RiskBand::LowMedium => Severity::Low,
            RiskBand::Medium => Severity::Medium,
            RiskBand::High => Severity::High,
        };
        let transition = self.news2.debounce.update(t, alerting, !alerting);
        let summary = |verb: &str| {
            let missing: Vec<&str> = score.missing.iter().map(|p| p.name()).collect();
            let incomplete = if missing.is_empty() {
                String::new()
            } else {
                format!(" (incomplete, a lower bound: no {})", missing.join(", "))
            };
            format!(
                "NEWS2 {} {verb}, band {}{incomplete}",
                score.total, score.band
            )
        };
        let (active, since, text) = match transition {
            Some(Transition::Raised { since }) => (true, since, summary("sustained")),
            Some(Transition::Cleared { since }) => (false, since, summary("now")),
            None => {
                // Report a change of severity while active (band rising or
                // falling within the alerting bands).
                let since = self.news2.debounce.since()?;
                if !alerting || self.news2.reported == Some(severity) {
                    return None;
                }
                (true, since, summary("changed"))
            }
        };
        self.news2.reported = active.then_some(severity);
        Some(Condition {
            key: ConditionKey {
                patient: Arc::clone(&self.patient),
                kind: ConditionKind::News2,
                device: None,
            },
            active,
            severity,
            since,
            at: t,
            evidence: evidence.into_iter().rev().take(5).rev().collect(),
            summary: text,
            news2: Some(score),
        })
    }

    /// NEWS2 at `t` with every parameter *confirmed*: each sub-score is
    /// the less severe of the parameter's latest reading and the one
    /// before it (a parameter with a single reading in the window counts
    /// as missing). On 1 Hz vitals the two are a second apart and this
    /// changes nothing; on a cuff every 15 min it means one outlying
    /// reading (an oscillometric cuff may err with an SD up to 8 mm[Hg],
    /// ISO 81060-2) cannot hold a red score for a quarter of an hour on its
    /// own: the next reading has to agree. In the evaluation, single
    /// nocturnal systolic readings ≤ 90 were the main source of false
    /// NEWS2 alerts before this.
    fn confirmed_score(&self, t: Timestamp) -> news2::Score {
        let window_ms = self.config.news2.window_ms;
        let latest = self.window.observations(t, window_ms);
        let before = |o: Option<news2::Observed<f64>>| {
            let o = o?;
            // The previous reading of the same parameter: the latest one
            // strictly before this one, at most a window older than it.
            let earlier = self.window.observations(o.time.add_millis(-1), window_ms);
            Some(earlier)
        };
        let prev = news2::Observations {
            respiration_rate: before(latest.respiration_rate).and_then(|e| e.respiration_rate),
            spo2: before(latest.spo2).and_then(|e| e.spo2),
            systolic_bp: before(latest.systolic_bp).and_then(|e| e.systolic_bp),
            pulse: before(latest.pulse).and_then(|e| e.pulse),
            temperature: before(latest.temperature).and_then(|e| e.temperature),
            ..latest
        };
        let (a, b) = (
            news2::score(&latest, self.settings.scale),
            news2::score(&prev, self.settings.scale),
        );
        let pick = |x: Option<u8>, y: Option<u8>| match (x, y) {
            (Some(x), Some(y)) => Some(x.min(y)),
            _ => None,
        };
        let mut s = a.clone();
        s.respiration_rate = pick(a.respiration_rate, b.respiration_rate);
        s.spo2 = pick(a.spo2, b.spo2);
        s.systolic_bp = pick(a.systolic_bp, b.systolic_bp);
        s.pulse = pick(a.pulse, b.pulse);
        s.temperature = pick(a.temperature, b.temperature);
        let subs = news2::Parameter::ALL.map(|p| (p, s.sub_score(p)));
        s.total = subs.iter().filter_map(|(_, x)| *x).sum();
        s.red_score = subs.iter().any(|(_, x)| *x == Some(3));
        s.band = RiskBand::from_total(s.total, s.red_score);
        s.missing = subs
            .iter()
            .filter(|(_, x)| x.is_none())
            .map(|(p, _)| *p)
            .collect();
        s
    }

    /// The vitals this monitor's NEWS2 uses, for callers deciding which
    /// devices matter.
    pub const NEWS2_VITALS: [Vital; 6] = [
        Vital::RespiratoryRate,
        Vital::Spo2,
        Vital::SystolicBp,
        Vital::HeartRate,
        Vital::PulseRate,
        Vital::BodyTemperature,
    ];
}

#[cfg(test)]
mod tests;
