//! Sensor-fault detection: technical conditions ("check the sensor"),
//! never clinical ones, and the judgement of which readings are reliable
//! enough for the clinical rules.
//!
//! The detectors work on *frames*: the readings one device measured at one
//! instant (an oximeter's SpO2, pulse rate and perfusion index come
//! together), because a motion artifact is only visible across them — an
//! SpO2 drop with a perfusion-index drop that the pulse rate does not
//! follow. [`crate::monitor::PatientMonitor`] groups readings into frames.
//!
//! | condition | raised when | cleared when |
//! |---|---|---|
//! | motion artifact | a frame flagged `ARTIFACT`, or SpO2 ≥ 3 points and PI to ≤ 70 % below the device's recent clean median, with the pulse rate within 10 /min of its median | 15 s without such a frame |
//! | flatline | the device's whole frame (values and flags) repeated exactly for ≥ 60 s and ≥ 20 frames | the frame changes |
//! | impossible values | a value flagged `IMPOSSIBLE` or outside [`Vital::possible_range`] | 30 s without one |
//! | sensor off | `SENSOR_OFF` for 10 s | 5 s without it |
//! | dropout | a gap between frames longer than 2.5 periods, i.e. two samples or more missing (and ≥ 5 s) | 60 s of regular frames |
//! | device offline | [`FaultDetector::tick`]: silent for 10 periods (and ≥ 60 s) | the next frame |
//!
//! Why these numbers: a pulse oximeter averages ~8 s, so a motion
//! episode's falsely low values trail it by that much, hence the 15 s
//! hold. Motion lowers the perfusion index together with SpO2 while the
//! pulse rate stays (Petterson et al., *Respir Care* 2007, the model the
//! simulator follows); a real desaturation drives the rate *up* and leaves
//! perfusion alone, and the gradual fall of perfusion in sepsis is
//! followed by the median. Physiology never repeats a multi-vital frame
//! exactly for a minute (pulse rate and perfusion index jitter from beat to
//! beat), while a frozen firmware does. A probe slipping off for a few
//! seconds and being put back is not worth a notification, hence 10 s.
//! A period is learned per device as the median gap between its frames.

use crate::condition::{Condition, ConditionKey, ConditionKind, Evidence, Severity};
use crate::debounce::{Debounce, Transition};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use vitalgate_devices::{Quality, Reading, Timestamp, Vital};

/// Settings of the fault detectors. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// SpO2 drop (points below the recent clean median) that, with a
    /// perfusion drop and a steady pulse rate, marks a motion artifact.
    pub motion_spo2_drop: f64,
    /// Perfusion index at or below this fraction of its recent clean
    /// median counts as a perfusion drop.
    pub motion_pi_ratio: f64,
    /// Largest pulse-rate change (from its median) still "not following".
    pub motion_pulse_tolerance: f64,
    /// How far back the clean medians look, ms.
    pub motion_baseline_ms: i64,
    /// How long readings stay unreliable after the last sign of motion, ms.
    pub motion_hold_ms: i64,
    /// Shortest exact repetition that is a flatline, ms.
    pub flatline_ms: i64,
    /// Fewest identical frames that are a flatline.
    pub flatline_frames: u32,
    /// How long impossible values stay reported after the last one, ms.
    pub impossible_clear_ms: i64,
    /// How long `SENSOR_OFF` must last before it is reported, ms.
    pub sensor_off_sustain_ms: i64,
    /// How long the sensor must be back before the report clears, ms.
    pub sensor_off_clear_ms: i64,
    /// A gap longer than this many periods is a dropout.
    pub dropout_periods: f64,
    /// Shortest gap reported as a dropout, ms.
    pub dropout_min_ms: i64,
    /// Regular frames needed after a dropout before it clears, ms.
    pub dropout_clear_ms: i64,
    /// Silence longer than this many periods is a device offline.
    pub offline_periods: f64,
    /// Shortest silence reported as offline, ms.
    pub offline_min_ms: i64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            motion_spo2_drop: 3.0,
            motion_pi_ratio: 0.7,
            motion_pulse_tolerance: 10.0,
            motion_baseline_ms: 120_000,
            motion_hold_ms: 15_000,
            flatline_ms: 60_000,
            flatline_frames: 20,
            impossible_clear_ms: 30_000,
            sensor_off_sustain_ms: 10_000,
            sensor_off_clear_ms: 5_000,
            dropout_periods: 2.5,
            dropout_min_ms: 5_000,
            dropout_clear_ms: 60_000,
            offline_periods: 10.0,
            offline_min_ms: 60_000,
        }
    }
}

/// Which readings of a frame the clinical rules may use.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Verdict {
    /// One flag per reading of the frame, in order: `true` when reliable.
    pub reliable: Vec<bool>,
    /// The device is in a motion-artifact episode: readings of it that
    /// were already used before the episode was recognised may have been
    /// corrupted, so pending clinical onsets fed by it should be dropped.
    pub motion: bool,
}

/// A clean value with its time, for the motion baselines.
#[derive(Debug, Clone, Copy)]
struct Clean {
    time: Timestamp,
    spo2: f64,
    pulse: Option<f64>,
    pi: f64,
}

/// Fault state of one device.
#[derive(Debug, Clone)]
struct DeviceState {
    patient: Arc<str>,
    last: Option<Timestamp>,
    /// Recent gaps between frames, for the period.
    gaps: VecDeque<i64>,
    motion: Debounce,
    motion_until: Option<Timestamp>,
    clean: VecDeque<Clean>,
    /// The last frame's signature, when it had values.
    signature: Option<Vec<(Vital, u64)>>,
    signature_quality: Quality,
    run_since: Option<Timestamp>,
    run_frames: u32,
    flatline: Debounce,
    impossible: Debounce,
    sensor_off: Debounce,
    dropout: Debounce,
    offline: bool,
    offline_since: Timestamp,
}

/// Per-patient (or per-gateway) fault detection over device frames. Pure
/// and deterministic: devices are kept in a sorted map, frames must come
/// in measurement-time order per device.
#[derive(Debug, Clone)]
pub struct FaultDetector {
    config: FaultConfig,
    devices: BTreeMap<Arc<str>, DeviceState>,
}

/// How many gaps the period estimate remembers.
const GAPS: usize = 15;

impl FaultDetector {
    /// A detector with `config`.
    pub fn new(config: FaultConfig) -> FaultDetector {
        FaultDetector {
            config,
            devices: BTreeMap::new(),
        }
    }

    /// The device's learned period, ms (median gap between its frames).
    pub fn period_ms(&self, device: &str) -> Option<i64> {
        self.devices.get(device).and_then(|d| median_gap(&d.gaps))
    }

    /// Whether any device is currently judged unreliable by motion.
    pub fn any_in_motion(&self) -> bool {
        self.devices.values().any(|d| d.motion_until.is_some())
    }

    /// Whether `device` is currently judged unreliable by motion.
    pub fn in_motion(&self, device: &str) -> bool {
        self.devices
            .get(device)
            .is_some_and(|d| d.motion_until.is_some())
    }

    fn state(&mut self, device: &Arc<str>, patient: &Arc<str>) -> &mut DeviceState {
        let c = self.config;
        self.devices
            .entry(Arc::clone(device))
            .or_insert_with(|| DeviceState {
                patient: Arc::clone(patient),
                last: None,
                gaps: VecDeque::new(),
                // Motion is raised at once and cleared by the hold below.
                motion: Debounce::new(0, 0, i64::MAX),
                motion_until: None,
                clean: VecDeque::new(),
                signature: None,
                signature_quality: Quality::NONE,
                run_since: None,
                run_frames: 0,
                flatline: Debounce::new(0, 0, i64::MAX),
                impossible: Debounce::new(0, c.impossible_clear_ms, i64::MAX),
                // No gap limit: a slow device (a cuff every 15 min) saying
                // "off" twice has been off all along.
                sensor_off: Debounce::new(c.sensor_off_sustain_ms, c.sensor_off_clear_ms, i64::MAX),
                dropout: Debounce::new(0, c.dropout_clear_ms, i64::MAX),
                offline: false,
                offline_since: Timestamp(0),
            })
    }

    /// A frame of `device` at `time` with no values, only device status
    /// (a sensor-off or searching frame: [`vitalgate_devices::Status`]).
    pub fn status(
        &mut self,
        device: &Arc<str>,
        patient: &Arc<str>,
        time: Timestamp,
        quality: Quality,
    ) -> Vec<Condition> {
        self.frame(device, patient, time, quality, &[]).0
    }

    /// One frame: every reading `device` measured at `time` (all readings
    /// must be of that device and time). Returns the technical conditions
    /// raised or cleared and which readings are reliable.
    pub fn push_frame(&mut self, frame: &[Reading]) -> (Vec<Condition>, Verdict) {
        let Some(first) = frame.first() else {
            return (Vec::new(), Verdict::default());
        };
        let quality = frame.iter().fold(Quality::NONE, |q, r| {
            let mut own = r.quality;
            own.set(Quality::IMPOSSIBLE, false);
            q | own
        });
        let device = Arc::clone(&first.device);
        let patient = Arc::clone(&first.patient);
        self.frame(&device, &patient, first.time(), quality, frame)
    }

    fn frame(
        &mut self,
        device: &Arc<str>,
        patient: &Arc<str>,
        t: Timestamp,
        quality: Quality,
        frame: &[Reading],
    ) -> (Vec<Condition>, Verdict) {
        let c = self.config;
        let d = self.state(device, patient);
        let mut out = Vec::new();
        let report = |kind, tr: Option<Transition>, ev: &[Evidence], what: &str| {
            tr.map(|tr| technical(patient, device, kind, tr, t, ev, what))
        };
        let evidence: Vec<Evidence> = frame.iter().take(5).map(evidence_of).collect();
        if d.last.is_some_and(|last| t < last) {
            // Out of order: judge its flags only; the timing state stays.
            let reliable = frame.iter().map(|r| is_clean(r.quality, r)).collect();
            return (
                out,
                Verdict {
                    reliable,
                    motion: false,
                },
            );
        }

        // Timing: offline ends, dropouts show as gaps.
        if d.offline {
            d.offline = false;
            out.push(technical(
                patient,
                device,
                ConditionKind::DeviceOffline,
                Transition::Cleared {
                    since: d.offline_since,
                },
                t,
                &evidence,
                "device sending again",
            ));
        }
        let period = median_gap(&d.gaps);
        let gap = d.last.map(|last| t.millis() - last.millis());
        if let Some(g) = gap.filter(|&g| g > 0) {
            d.gaps.push_back(g);
            if d.gaps.len() > GAPS {
                d.gaps.pop_front();
            }
        }
        let is_dropout = match (gap, period) {
            (Some(g), Some(p)) => g as f64 > c.dropout_periods * p as f64 && g >= c.dropout_min_ms,
            _ => false,
        };
        if is_dropout {
            // The gap itself is the evidence: interrupt any clearing run,
            // and raise from the last frame before it.
            d.dropout.interrupt();
            if !d.dropout.is_active() {
                let since = d.last.unwrap_or(t);
                d.dropout.update(since, true, false);
                d.dropout.update(t, true, false);
                out.extend(report(
                    ConditionKind::Dropout,
                    Some(Transition::Raised { since }),
                    &evidence,
                    "readings missing",
                ));
            } else {
                d.dropout.update(t, true, false);
            }
        } else if d.dropout.is_active() {
            out.extend(report(
                ConditionKind::Dropout,
                d.dropout.update(t, false, true),
                &evidence,
                "readings regular again",
            ));
        }
        d.last = Some(t);

        // Sensor off.
        let off = quality.contains(Quality::SENSOR_OFF);
        out.extend(report(
            ConditionKind::SensorOff,
            d.sensor_off.update(t, off, !off),
            &evidence,
            "sensor off the patient",
        ));

        // Impossible values.
        let impossible: Vec<Evidence> = frame
            .iter()
            .filter(|r| !is_possible(r))
            .take(5)
            .map(evidence_of)
            .collect();
        out.extend(report(
            ConditionKind::ImpossibleValues,
            d.impossible
                .update(t, !impossible.is_empty(), impossible.is_empty()),
            &impossible,
            "impossible values",
        ));

        // Flatline: the whole frame repeated exactly.
        let signature: Option<Vec<(Vital, u64)>> = (!frame.is_empty()).then(|| {
            let mut s: Vec<(Vital, u64)> =
                frame.iter().map(|r| (r.vital, r.value.to_bits())).collect();
            s.sort_unstable();
            s
        });
        let repeated = signature.is_some()
            && signature == d.signature
            && quality == d.signature_quality
            && !off;
        if repeated {
            d.run_frames += 1;
        } else {
            d.run_since = Some(t);
            d.run_frames = 1;
        }
        if signature.is_some() || off {
            d.signature = signature;
            d.signature_quality = quality;
        }
        let flat = repeated
            && d.run_frames >= c.flatline_frames
            && d.run_since
                .is_some_and(|s| t.millis() - s.millis() >= c.flatline_ms);
        let flat_tr = if flat || d.flatline.is_active() {
            let tr = d.flatline.update(t, flat, !repeated);
            // Report from the start of the repetition, not its detection.
            match tr {
                Some(Transition::Raised { .. }) => Some(Transition::Raised {
                    since: d.run_since.unwrap_or(t),
                }),
                other => other,
            }
        } else {
            None
        };
        out.extend(report(
            ConditionKind::Flatline,
            flat_tr,
            &evidence,
            "values frozen",
        ));

        // Motion artifact.
        let value = |v: Vital| frame.iter().find(|r| r.vital == v).map(|r| r.value);
        let (spo2, pulse, pi) = (
            value(Vital::Spo2),
            value(Vital::PulseRate),
            value(Vital::PerfusionIndex),
        );
        let horizon = t.millis() - c.motion_baseline_ms;
        while d.clean.front().is_some_and(|s| s.time.millis() < horizon) {
            d.clean.pop_front();
        }
        let flagged = quality.contains(Quality::ARTIFACT);
        let suspect = match (spo2, pi) {
            (Some(s), Some(p)) if d.clean.len() >= 10 => {
                let base_s = median(d.clean.iter().map(|c| c.spo2));
                let base_p = median(d.clean.iter().map(|c| c.pi));
                let base_r = median(d.clean.iter().filter_map(|c| c.pulse));
                let steady = match (pulse, base_r) {
                    (Some(r), b) if b.is_finite() => (r - b).abs() <= c.motion_pulse_tolerance,
                    _ => true,
                };
                s <= base_s - c.motion_spo2_drop && p <= c.motion_pi_ratio * base_p && steady
            }
            _ => false,
        };
        let motion_now = flagged || suspect;
        if motion_now {
            d.motion_until = Some(t.add_millis(c.motion_hold_ms));
        }
        let holding = d.motion_until.is_some_and(|u| t < u);
        if !holding {
            d.motion_until = None;
        }
        out.extend(report(
            ConditionKind::MotionArtifact,
            d.motion.update(t, holding, !holding),
            &evidence,
            "motion artifact",
        ));

        // Which readings are reliable.
        let frozen = d.flatline.is_active();
        let reliable: Vec<bool> = frame
            .iter()
            .map(|r| !holding && !frozen && is_clean(quality, r))
            .collect();
        let clean_frame = !holding
            && !frozen
            && !quality.intersects(crate::news2::UNSCORABLE)
            && frame.iter().all(is_possible);
        if let (true, Some(spo2), Some(pi)) = (clean_frame, spo2, pi) {
            d.clean.push_back(Clean {
                time: t,
                spo2,
                pulse,
                pi,
            });
        }
        (
            out,
            Verdict {
                reliable,
                motion: holding,
            },
        )
    }

    /// The caller's clock: report devices silent past their expected
    /// period. `now` must be on the same clock as the readings' times
    /// (measurement time; in the daemon, a synced gateway clock).
    pub fn tick(&mut self, now: Timestamp) -> Vec<Condition> {
        let c = self.config;
        let mut out = Vec::new();
        for (device, d) in &mut self.devices {
            let (Some(last), Some(period)) = (d.last, median_gap(&d.gaps)) else {
                continue;
            };
            let limit = (c.offline_periods * period as f64).max(c.offline_min_ms as f64);
            if !d.offline && (now.millis() - last.millis()) as f64 > limit {
                d.offline = true;
                d.offline_since = last;
                let summary = format!(
                    "no readings for {} s (usually every {} s)",
                    (now.millis() - last.millis()) / 1_000,
                    (period as f64 / 1_000.0).max(0.001)
                );
                out.push(Condition {
                    key: ConditionKey {
                        patient: Arc::clone(&d.patient),
                        kind: ConditionKind::DeviceOffline,
                        device: Some(Arc::clone(device)),
                    },
                    active: true,
                    severity: Severity::Low,
                    since: last,
                    at: now,
                    evidence: Vec::new(),
                    summary,
                    news2: None,
                });
            }
        }
        out
    }
}

fn is_possible(r: &Reading) -> bool {
    !r.quality.contains(Quality::IMPOSSIBLE) && r.vital.is_possible(r.value)
}

/// No flag that makes the reading unusable (the NEWS2 window's list), and
/// a possible value.
fn is_clean(frame_quality: Quality, r: &Reading) -> bool {
    !frame_quality.intersects(crate::news2::UNSCORABLE)
        && !r.quality.intersects(crate::news2::UNSCORABLE)
        && is_possible(r)
}

fn evidence_of(r: &Reading) -> Evidence {
    Evidence {
        device: Arc::clone(&r.device),
        vital: r.vital,
        value: r.value,
        time: r.time(),
        quality: r.quality,
    }
}

fn technical(
    patient: &Arc<str>,
    device: &Arc<str>,
    kind: ConditionKind,
    tr: Transition,
    at: Timestamp,
    evidence: &[Evidence],
    what: &str,
) -> Condition {
    let (active, since) = match tr {
        Transition::Raised { since } => (true, since),
        Transition::Cleared { since } => (false, since),
    };
    Condition {
        key: ConditionKey {
            patient: Arc::clone(patient),
            kind,
            device: Some(Arc::clone(device)),
        },
        active,
        // A technical condition asks for a check, never an emergency.
        severity: if matches!(kind, ConditionKind::MotionArtifact) {
            Severity::Info
        } else {
            Severity::Low
        },
        since,
        at,
        evidence: evidence.to_vec(),
        summary: format!("check the sensor: {what}"),
        news2: None,
    }
}

fn median_gap(gaps: &VecDeque<i64>) -> Option<i64> {
    if gaps.is_empty() {
        return None;
    }
    let mut v: Vec<i64> = gaps.iter().copied().collect();
    v.sort_unstable();
    Some(v[v.len() / 2])
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[cfg(test)]
mod tests;
