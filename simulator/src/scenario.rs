//! Scenarios: scripted, labelled events that happen to a patient or to one
//! of its devices.
//!
//! A [`Scenario`] is a script of timed [`Event`]s drawn from the seed. It is
//! generated lazily, one event at a time per *track* (a sequence of
//! non-overlapping events with gaps between them), so a run without a set
//! duration never runs out of script. Each track has its own random stream,
//! so the script does not depend on when or how often it is consulted.
//!
//! Clinical events change the patient's true physiology (through
//! [`Acute`]); technical events change what one device reports
//! ([`Technical`]). Every event becomes a [`crate::label::Label`].
//!
//! Magnitudes and durations, and why:
//!
//! | kind | magnitude | time course | basis |
//! |---|---|---|---|
//! | desaturation | SpO2 to 80–86 % (and ≥ 4 points below usual) | 20–60 s onset, 2–10 min in all, 30–90 s recovery | hypoxaemia is SpO2 < 90 % (WHO 2011); AASM scores desaturations from 3 %; sustained hypoxaemic episodes in COPD and heart failure last minutes |
//! | tachycardia | 130–170/min | half paroxysmal (3–10 s onset, 5–15 s offset), half gradual (1–3 min, 2–5 min); 3–30 min | SVT and AF with rapid ventricular response (ACC/AHA/HRS SVT guideline, Page et al. 2015) |
//! | bradycardia | 35–45/min | 10–60 s ramps, 2–20 min | bradycardia < 50/min (ACC/AHA/HRS, Kusumoto et al. 2018) |
//! | fever | peak 38.5–40.0 °C | 1–3 h rise, 2–8 h plateau, 1–4 h defervescence | fever ≥ 38.3 °C (O'Grady et al., Crit Care Med 2008) |
//! | sepsis | temp +1.5–2.5 °C, HR +20–30 beyond the fever coupling (≈ +35–55 in all), RR +8–14, SBP −25–45, DBP −12–22, SpO2 −3–7, PI × 0.3–0.5 | 2–8 h deterioration, 2–6 h at worst, 4–12 h recovery (treated) | reaches qSOFA criteria RR ≥ 22 and SBP ≤ 100 (Sepsis-3, Singer et al., JAMA 2016) and NEWS2 ≥ 7 |
//! | copd | exacerbation: SpO2 −4–8 below usual, RR +4–8, HR +8–15 | 30–90 min onset, 2–6 h, 1–3 h recovery | GOLD 2023: worsening dyspnoea with tachypnoea and tachycardia; real exacerbations build over days, compressed here so a run of hours shows one |
//! | sensor_off | no values, `SENSOR_OFF` | 10 s – 5 min (log-uniform) | a probe slipping off and being put back |
//! | flatline | the exact same values repeated | 1–10 min | a frozen firmware or a stuck "last value" hold |
//! | motion_artifact | SpO2 falsely low by up to 5–15 points, low PI, pulse rate unaffected | 5–60 s | hand movement corrupts the red/infrared ratio (Petterson et al., Respir Care 2007) |
//! | dropout | no output at all | 30 s – 10 min (log-uniform) | radio out of range, Wi-Fi loss |
//!
//! Technical events last at least two sampling periods of the device they
//! hit, so that a slow device (a cuff every 5 min) shows them too.
//!
//! `stable` has no events; `copd` makes the patient a COPD patient (usual
//! SpO2 88–92 %, which is *not* an event and not labelled) and adds
//! exacerbations; `mixed` plays a clinical track and a technical track side
//! by side for the demo.

use crate::patient::{Acute, Baseline, HOUR_MS, MINUTE_MS, Pull};
use crate::random::{log_uniform, smoothstep, uniform, uniform_ms};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use vitalgate_devices::{Timestamp, Vital};

/// What a patient lives through. Serialized in snake_case (`motion_artifact`)
/// for specs, CLI arguments and labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// Normal physiology only: the reference for false alarms.
    Stable,
    /// Episodes of low SpO2.
    Desaturation,
    /// Episodes of fast heart rate.
    Tachycardia,
    /// Episodes of slow heart rate.
    Bradycardia,
    /// A fever over hours.
    Fever,
    /// Septic deterioration over hours: the multi-parameter case.
    Sepsis,
    /// A COPD patient (usual SpO2 88–92 %) with exacerbations.
    Copd,
    /// A device's sensor comes off: no values, `SENSOR_OFF`.
    SensorOff,
    /// A device freezes and repeats the exact same values.
    Flatline,
    /// Motion corrupts a pulse oximeter: falsely low SpO2, low PI.
    MotionArtifact,
    /// A device goes silent.
    Dropout,
    /// A random plausible sequence of the others, for the demo.
    Mixed,
}

impl ScenarioKind {
    /// Every kind, in declaration order.
    pub const ALL: [ScenarioKind; 12] = [
        ScenarioKind::Stable,
        ScenarioKind::Desaturation,
        ScenarioKind::Tachycardia,
        ScenarioKind::Bradycardia,
        ScenarioKind::Fever,
        ScenarioKind::Sepsis,
        ScenarioKind::Copd,
        ScenarioKind::SensorOff,
        ScenarioKind::Flatline,
        ScenarioKind::MotionArtifact,
        ScenarioKind::Dropout,
        ScenarioKind::Mixed,
    ];

    /// The snake_case name.
    pub const fn name(self) -> &'static str {
        match self {
            ScenarioKind::Stable => "stable",
            ScenarioKind::Desaturation => "desaturation",
            ScenarioKind::Tachycardia => "tachycardia",
            ScenarioKind::Bradycardia => "bradycardia",
            ScenarioKind::Fever => "fever",
            ScenarioKind::Sepsis => "sepsis",
            ScenarioKind::Copd => "copd",
            ScenarioKind::SensorOff => "sensor_off",
            ScenarioKind::Flatline => "flatline",
            ScenarioKind::MotionArtifact => "motion_artifact",
            ScenarioKind::Dropout => "dropout",
            ScenarioKind::Mixed => "mixed",
        }
    }

    /// Whether events of this kind change the patient (as opposed to a
    /// device). `stable` and `mixed` are not event kinds and say false.
    pub const fn is_clinical(self) -> bool {
        matches!(
            self,
            ScenarioKind::Desaturation
                | ScenarioKind::Tachycardia
                | ScenarioKind::Bradycardia
                | ScenarioKind::Fever
                | ScenarioKind::Sepsis
                | ScenarioKind::Copd
        )
    }

    /// Whether events of this kind change what a device reports.
    pub const fn is_technical(self) -> bool {
        matches!(
            self,
            ScenarioKind::SensorOff
                | ScenarioKind::Flatline
                | ScenarioKind::MotionArtifact
                | ScenarioKind::Dropout
        )
    }

    /// Whether the patient of this scenario has COPD.
    pub const fn is_copd(self) -> bool {
        matches!(self, ScenarioKind::Copd)
    }
}

impl fmt::Display for ScenarioKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error for an unknown scenario name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scenario `{0}` (expected one of: stable, desaturation, tachycardia, bradycardia, fever, sepsis, copd, sensor_off, flatline, motion_artifact, dropout, mixed)"
)]
pub struct UnknownScenario(pub String);

impl FromStr for ScenarioKind {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScenarioKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

/// What an event does, with its drawn parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// SpO2 pulled down to `nadir` (%).
    Desaturation {
        /// Lowest true SpO2, %.
        nadir: f64,
    },
    /// Heart rate pulled up to `rate` (/min).
    Tachycardia {
        /// Heart rate at full effect, /min.
        rate: f64,
    },
    /// Heart rate pulled down to `rate` (/min).
    Bradycardia {
        /// Heart rate at full effect, /min.
        rate: f64,
    },
    /// Temperature set point raised by `rise` °C (peak = baseline + rise).
    Fever {
        /// °C above the patient's mesor at full effect.
        rise: f64,
    },
    /// Septic deterioration; each field is the full-effect shift.
    Sepsis {
        /// °C added to temperature.
        temperature: f64,
        /// /min added to heart rate beyond the fever coupling.
        heart_rate: f64,
        /// /min added to respiratory rate.
        respiratory_rate: f64,
        /// mm[Hg] removed from systolic pressure.
        systolic_drop: f64,
        /// mm[Hg] removed from diastolic pressure.
        diastolic_drop: f64,
        /// Points removed from SpO2.
        spo2_drop: f64,
        /// Factor on the perfusion index.
        perfusion_factor: f64,
    },
    /// COPD exacerbation.
    CopdExacerbation {
        /// Points removed from SpO2.
        spo2_drop: f64,
        /// /min added to respiratory rate.
        respiratory_rate: f64,
        /// /min added to heart rate.
        heart_rate: f64,
    },
    /// The device reports no values and `SENSOR_OFF`.
    SensorOff,
    /// The device repeats its last output exactly.
    Flatline,
    /// Motion artifact: SpO2 falsely low by up to `spo2_error` points.
    MotionArtifact {
        /// Largest false SpO2 drop (at full motion), points.
        spo2_error: f64,
    },
    /// The device sends nothing.
    Dropout,
}

impl Effect {
    /// The scenario kind this effect is labelled with.
    pub const fn kind(&self) -> ScenarioKind {
        match self {
            Effect::Desaturation { .. } => ScenarioKind::Desaturation,
            Effect::Tachycardia { .. } => ScenarioKind::Tachycardia,
            Effect::Bradycardia { .. } => ScenarioKind::Bradycardia,
            Effect::Fever { .. } => ScenarioKind::Fever,
            Effect::Sepsis { .. } => ScenarioKind::Sepsis,
            Effect::CopdExacerbation { .. } => ScenarioKind::Copd,
            Effect::SensorOff => ScenarioKind::SensorOff,
            Effect::Flatline => ScenarioKind::Flatline,
            Effect::MotionArtifact { .. } => ScenarioKind::MotionArtifact,
            Effect::Dropout => ScenarioKind::Dropout,
        }
    }

    /// The acute change at `intensity` (0–1), for clinical effects.
    fn acute(&self, i: f64) -> Acute {
        match *self {
            Effect::Desaturation { nadir } => Acute {
                spo2_pull: Some(Pull {
                    target: nadir,
                    weight: i,
                }),
                ..Acute::NONE
            },
            Effect::Tachycardia { rate } | Effect::Bradycardia { rate } => Acute {
                hr_pull: Some(Pull {
                    target: rate,
                    weight: i,
                }),
                rest: i,
                ..Acute::NONE
            },
            Effect::Fever { rise } => Acute {
                temperature: i * rise,
                rest: 0.7 * i,
                ..Acute::NONE
            },
            Effect::Sepsis {
                temperature,
                heart_rate,
                respiratory_rate,
                systolic_drop,
                diastolic_drop,
                spo2_drop,
                perfusion_factor,
            } => Acute {
                temperature: i * temperature,
                heart_rate: i * heart_rate,
                respiratory_rate: i * respiratory_rate,
                systolic_bp: -i * systolic_drop,
                diastolic_bp: -i * diastolic_drop,
                spo2: -i * spo2_drop,
                perfusion_factor: 1.0 - i * (1.0 - perfusion_factor),
                rest: i,
                ..Acute::NONE
            },
            Effect::CopdExacerbation {
                spo2_drop,
                respiratory_rate,
                heart_rate,
            } => Acute {
                spo2: -i * spo2_drop,
                respiratory_rate: i * respiratory_rate,
                heart_rate: i * heart_rate,
                rest: 0.8 * i,
                ..Acute::NONE
            },
            Effect::SensorOff
            | Effect::Flatline
            | Effect::MotionArtifact { .. }
            | Effect::Dropout => Acute::NONE,
        }
    }
}

/// One scripted event.
///
/// Its time course is `[start, start + onset)` ramping in (smoothstep),
/// a plateau at full effect, then `recovery` ramping out; at
/// [`Event::end`] it has no effect any more. Technical events have no ramps.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// What happens.
    pub effect: Effect,
    /// When the event begins: the first instant it influences the patient
    /// or device (the intensity is 0 at `start` itself and rises after it).
    pub start: Timestamp,
    /// Ramp-in duration, ms.
    pub onset_ms: i64,
    /// Full-effect duration, ms.
    pub plateau_ms: i64,
    /// Ramp-out duration, ms.
    pub recovery_ms: i64,
    /// Index (in the simulation's device list) of the device a technical
    /// event happens to; `None` for clinical events.
    pub device: Option<usize>,
    /// Human-readable description, carried into the label.
    pub detail: String,
}

impl Event {
    /// The label kind.
    pub fn kind(&self) -> ScenarioKind {
        self.effect.kind()
    }

    /// Total duration, ms.
    pub fn duration_ms(&self) -> i64 {
        self.onset_ms + self.plateau_ms + self.recovery_ms
    }

    /// The first instant at which the event no longer has any effect.
    pub fn end(&self) -> Timestamp {
        self.start.add_millis(self.duration_ms())
    }

    /// Whether `t` lies in `[start, end)`.
    pub fn is_active(&self, t: Timestamp) -> bool {
        t >= self.start && t < self.end()
    }

    /// The effect's strength at `t`, 0–1.
    pub fn intensity(&self, t: Timestamp) -> f64 {
        if !self.is_active(t) {
            return 0.0;
        }
        let since = (t.millis() - self.start.millis()) as f64;
        let (onset, plateau, recovery) = (
            self.onset_ms as f64,
            self.plateau_ms as f64,
            self.recovery_ms as f64,
        );
        if since < onset {
            smoothstep(since / onset)
        } else if since < onset + plateau {
            1.0
        } else if recovery > 0.0 {
            smoothstep(1.0 - (since - onset - plateau) / recovery)
        } else {
            1.0
        }
    }
}

/// What the scenario does to one device at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Technical {
    /// The sensor is off: no values, `SENSOR_OFF`.
    pub sensor_off: bool,
    /// The device repeats its last output exactly.
    pub flatline: bool,
    /// Motion artifact with this largest false SpO2 drop, points.
    pub motion: Option<f64>,
    /// The device sends nothing.
    pub dropout: bool,
}

/// A device of the patient, as the scenario needs to know it: which
/// technical events can happen to it and which clinical events it shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observer<'a> {
    /// Index in the simulation's device list.
    pub index: usize,
    /// The vitals it reports.
    pub vitals: &'a [Vital],
    /// Its sampling period, ms: technical events on it last at least two
    /// periods, so the device shows them.
    pub period_ms: i64,
}

/// What the scenario keeps of an [`Observer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Target {
    index: usize,
    /// The vitals it reports, as a bit mask over [`Vital::index`].
    mask: u16,
    period_ms: i64,
}

/// A sequence of non-overlapping events with its own random stream.
#[derive(Debug, Clone)]
struct Track {
    rng: ChaCha8Rng,
    /// Kinds of the first event (uniform choice).
    first: Vec<ScenarioKind>,
    /// Kinds of later events with weights.
    later: Vec<(ScenarioKind, u32)>,
    /// Start of the next event not generated yet.
    next_start: Timestamp,
    /// Gap between an event's end and the next start, ms.
    gap_ms: (i64, i64),
    /// Number of events generated.
    count: u64,
}

/// A patient's script of events, generated lazily from the seed.
#[derive(Debug, Clone)]
pub struct Scenario {
    kind: ScenarioKind,
    baseline: Baseline,
    /// The patient's devices.
    devices: Vec<Target>,
    tracks: Vec<Track>,
    /// Generated events not yet over and labelled, with whether a label
    /// has already been handed out for them.
    events: Vec<(Event, bool)>,
}

/// When the first event of a single-kind scenario starts and the gap
/// between events: short episodes begin within minutes so that a demo or a
/// short test sees them; slow illnesses begin after a short stable lead-in
/// and recur rarely.
fn schedule(kind: ScenarioKind) -> ((i64, i64), (i64, i64)) {
    let (s, m, h) = (1_000, MINUTE_MS, HOUR_MS);
    match kind {
        ScenarioKind::Desaturation => ((60 * s, 120 * s), (20 * m, 90 * m)),
        ScenarioKind::Tachycardia | ScenarioKind::Bradycardia => {
            ((60 * s, 120 * s), (30 * m, 180 * m))
        }
        ScenarioKind::Fever => ((5 * m, 20 * m), (12 * h, 48 * h)),
        ScenarioKind::Sepsis => ((5 * m, 20 * m), (72 * h, 168 * h)),
        ScenarioKind::Copd => ((10 * m, 30 * m), (12 * h, 48 * h)),
        ScenarioKind::SensorOff | ScenarioKind::Dropout => ((60 * s, 180 * s), (15 * m, 60 * m)),
        ScenarioKind::Flatline => ((60 * s, 180 * s), (30 * m, 120 * m)),
        ScenarioKind::MotionArtifact => ((30 * s, 120 * s), (5 * m, 30 * m)),
        ScenarioKind::Stable | ScenarioKind::Mixed => ((0, 0), (0, 0)),
    }
}

impl Scenario {
    /// The script of `kind` for a patient with `baseline` whose devices are
    /// `devices`, starting at `start`. Track streams are seeded from `rng`.
    ///
    /// Technical events target one of the patient's devices, chosen from
    /// the seed (motion artifacts only pulse oximeters, i.e. devices
    /// reporting SpO2); a technical scenario whose patient has no suitable
    /// device has no events. `mixed` only chooses clinical kinds some device
    /// of the patient shows, when any does; its first event is a
    /// desaturation or tachycardia starting 30–90 s in, and its technical
    /// events begin 1–4 min after that first event ends, so the demo shows
    /// it undisturbed.
    pub fn new<R: Rng + ?Sized>(
        kind: ScenarioKind,
        baseline: &Baseline,
        start: Timestamp,
        devices: &[Observer<'_>],
        rng: &mut R,
    ) -> Scenario {
        let devices: Vec<Target> = devices
            .iter()
            .map(|d| Target {
                index: d.index,
                mask: mask(d.vitals),
                period_ms: d.period_ms,
            })
            .collect();
        let has_oximeter = devices.iter().any(|d| is_oximeter(d.mask));
        let track = |rng: &mut R,
                     first: Vec<ScenarioKind>,
                     later: Vec<(ScenarioKind, u32)>,
                     first_at: (i64, i64),
                     gap_ms| {
            let mut seed = [0u8; 32];
            rng.fill_bytes(&mut seed);
            let mut trng = ChaCha8Rng::from_seed(seed);
            let offset = uniform_ms(&mut trng, first_at.0, first_at.1);
            Track {
                rng: trng,
                first,
                later,
                next_start: start.add_millis(offset),
                gap_ms,
                count: 0,
            }
        };
        let mut tracks = Vec::new();
        match kind {
            ScenarioKind::Stable => {}
            ScenarioKind::Mixed => {
                let sees = |k: ScenarioKind| {
                    devices.is_empty() || devices.iter().any(|d| shows(k, d.mask))
                };
                let mut first: Vec<ScenarioKind> =
                    [ScenarioKind::Desaturation, ScenarioKind::Tachycardia]
                        .into_iter()
                        .filter(|&k| sees(k))
                        .collect();
                if first.is_empty() {
                    first = vec![ScenarioKind::Desaturation, ScenarioKind::Tachycardia];
                }
                let mut later: Vec<(ScenarioKind, u32)> = [
                    (ScenarioKind::Desaturation, 4),
                    (ScenarioKind::Tachycardia, 3),
                    (ScenarioKind::Bradycardia, 2),
                    (ScenarioKind::Fever, 1),
                ]
                .into_iter()
                .filter(|&(k, _)| sees(k))
                .collect();
                if later.is_empty() {
                    later = first.iter().map(|&k| (k, 1)).collect();
                }
                tracks.push(track(
                    rng,
                    first,
                    later,
                    (30_000, 90_000),
                    (5 * MINUTE_MS, 30 * MINUTE_MS),
                ));
                let technical: Vec<(ScenarioKind, u32)> = [
                    (ScenarioKind::MotionArtifact, 4),
                    (ScenarioKind::SensorOff, 3),
                    (ScenarioKind::Dropout, 2),
                    (ScenarioKind::Flatline, 1),
                ]
                .into_iter()
                .filter(|&(k, _)| {
                    !devices.is_empty() && (k != ScenarioKind::MotionArtifact || has_oximeter)
                })
                .collect();
                if !technical.is_empty() {
                    let first = technical.iter().map(|&(k, _)| k).collect();
                    // Offset from the end of the first clinical event (see
                    // below), so that event is seen undisturbed.
                    tracks.push(track(
                        rng,
                        first,
                        technical,
                        (MINUTE_MS, 4 * MINUTE_MS),
                        (3 * MINUTE_MS, 15 * MINUTE_MS),
                    ));
                }
            }
            k => {
                let possible = match k {
                    ScenarioKind::MotionArtifact => has_oximeter,
                    k if k.is_technical() => !devices.is_empty(),
                    _ => true,
                };
                if possible {
                    let (first_at, gap) = schedule(k);
                    tracks.push(track(rng, vec![k], vec![(k, 1)], first_at, gap));
                }
            }
        }
        let mut scenario = Scenario {
            kind,
            baseline: *baseline,
            devices,
            tracks,
            events: Vec::new(),
        };
        if kind == ScenarioKind::Mixed && scenario.tracks.len() == 2 {
            let first_start = scenario.tracks[0].next_start;
            scenario.generate_track(0, first_start);
            let first_end = scenario.events.first().map_or(start, |(e, _)| e.end());
            let technical = &mut scenario.tracks[1];
            technical.next_start =
                first_end.add_millis(technical.next_start.millis() - start.millis());
        }
        scenario
    }

    /// The scenario's kind.
    pub fn kind(&self) -> ScenarioKind {
        self.kind
    }

    /// Make sure every event starting at or before `t` is generated.
    pub fn generate_until(&mut self, t: Timestamp) {
        for i in 0..self.tracks.len() {
            self.generate_track(i, t);
        }
    }

    /// Generate the events of track `i` starting at or before `t`.
    fn generate_track(&mut self, i: usize, t: Timestamp) {
        while self.tracks[i].next_start <= t {
            let event = self.draw(i);
            let track = &mut self.tracks[i];
            let gap = uniform_ms(&mut track.rng, track.gap_ms.0, track.gap_ms.1);
            track.next_start = event.end().add_millis(gap);
            track.count += 1;
            self.events.push((event, false));
        }
    }

    /// The events generated and not yet over (see
    /// [`Scenario::take_ended`]), in generation order.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|(e, _)| e)
    }

    /// The combined acute effect of the clinical events at `t`.
    pub fn acute(&self, t: Timestamp) -> Acute {
        self.events
            .iter()
            .filter(|(e, _)| e.device.is_none() && e.is_active(t))
            .fold(Acute::NONE, |acc, (e, _)| {
                acc.combine(e.effect.acute(e.intensity(t)))
            })
    }

    /// What the technical events do to device `device` at `t`.
    pub fn technical(&self, device: usize, t: Timestamp) -> Technical {
        let mut tech = Technical::default();
        for (e, _) in &self.events {
            if e.device != Some(device) || !e.is_active(t) {
                continue;
            }
            match e.effect {
                Effect::SensorOff => tech.sensor_off = true,
                Effect::Flatline => tech.flatline = true,
                Effect::Dropout => tech.dropout = true,
                Effect::MotionArtifact { spo2_error } => {
                    tech.motion = Some(tech.motion.map_or(spo2_error, |m: f64| m.max(spo2_error)));
                }
                _ => {}
            }
        }
        tech
    }

    /// Remove the events over by `t` (end ≤ `t`), appending those not yet
    /// labelled to `out`.
    pub fn take_ended(&mut self, t: Timestamp, out: &mut Vec<Event>) {
        if !self.events.iter().any(|(e, _)| e.end() <= t) {
            return;
        }
        let mut i = 0;
        while i < self.events.len() {
            if self.events[i].0.end() <= t {
                let (e, labelled) = self.events.remove(i);
                if !labelled {
                    out.push(e);
                }
            } else {
                i += 1;
            }
        }
    }

    /// Append to `out` the events that have started (`started(start)` is
    /// true) and are not labelled yet, and mark them labelled. They stay in
    /// effect until they end.
    pub fn take_started(&mut self, started: impl Fn(Timestamp) -> bool, out: &mut Vec<Event>) {
        for (e, labelled) in &mut self.events {
            if !*labelled && started(e.start) {
                *labelled = true;
                out.push(e.clone());
            }
        }
    }

    /// Draw the next event of track `i`.
    fn draw(&mut self, i: usize) -> Event {
        let track = &mut self.tracks[i];
        let start = track.next_start;
        let kind = if track.count == 0 {
            let k = track.rng.random_range(0..track.first.len().max(1));
            track
                .first
                .get(k)
                .copied()
                .unwrap_or(ScenarioKind::Desaturation)
        } else {
            weighted(&mut track.rng, &track.later)
        };
        draw_event(kind, start, &self.baseline, &self.devices, &mut track.rng)
    }
}

fn mask(vitals: &[Vital]) -> u16 {
    vitals.iter().fold(0u16, |m, v| m | 1 << v.index())
}

/// Whether a device reporting the vitals in `mask` is a pulse oximeter
/// (reports SpO2), the only kind motion artifacts are modelled for.
fn is_oximeter(mask: u16) -> bool {
    mask & (1 << Vital::Spo2.index()) != 0
}

/// Whether a device reporting the vitals in `mask` shows clinical kind
/// `k`: its primary vital is among them.
fn shows(k: ScenarioKind, device_mask: u16) -> bool {
    let needs = match k {
        ScenarioKind::Desaturation | ScenarioKind::Copd => mask(&[Vital::Spo2]),
        ScenarioKind::Tachycardia | ScenarioKind::Bradycardia => {
            mask(&[Vital::HeartRate, Vital::PulseRate, Vital::RrInterval])
        }
        ScenarioKind::Fever => mask(&[Vital::BodyTemperature]),
        _ => u16::MAX,
    };
    device_mask & needs != 0
}

fn weighted<R: Rng + ?Sized>(rng: &mut R, choices: &[(ScenarioKind, u32)]) -> ScenarioKind {
    let total: u32 = choices.iter().map(|c| c.1).sum();
    if total == 0 {
        return choices.first().map_or(ScenarioKind::Desaturation, |c| c.0);
    }
    let mut x = rng.random_range(0..total);
    for &(k, w) in choices {
        if x < w {
            return k;
        }
        x -= w;
    }
    choices[choices.len() - 1].0
}

fn fmt_minutes(ms: i64) -> String {
    if ms < 2 * MINUTE_MS {
        format!("{} s", ms / 1_000)
    } else if ms < 2 * HOUR_MS {
        format!("{:.1} min", ms as f64 / MINUTE_MS as f64)
    } else {
        format!("{:.1} h", ms as f64 / HOUR_MS as f64)
    }
}

/// One of the patient's devices, at random: any device, or only pulse
/// oximeters.
fn pick_device<R: Rng + ?Sized>(
    devices: &[Target],
    oximeter_only: bool,
    rng: &mut R,
) -> Option<Target> {
    let eligible = |d: &&Target| !oximeter_only || is_oximeter(d.mask);
    let n = devices.iter().filter(eligible).count();
    if n == 0 {
        return devices.first().copied();
    }
    let k = rng.random_range(0..n);
    devices.iter().filter(eligible).nth(k).copied()
}

/// Draw one event of `kind` starting at `start`, with magnitudes and
/// durations from the table in the module documentation.
fn draw_event<R: Rng + ?Sized>(
    kind: ScenarioKind,
    start: Timestamp,
    b: &Baseline,
    devices: &[Target],
    rng: &mut R,
) -> Event {
    let (s, m, h) = (1_000.0, MINUTE_MS as f64, HOUR_MS as f64);
    let ms = |x: f64| x.round() as i64;
    let (effect, onset, plateau, recovery, device) = match kind {
        ScenarioKind::Desaturation => {
            let nadir = uniform(rng, 80.0, 86.0).min(b.spo2 - 4.0);
            let total = uniform(rng, 2.0 * m, 10.0 * m);
            let onset = uniform(rng, 20.0 * s, 60.0 * s);
            let recovery = uniform(rng, 30.0 * s, 90.0 * s);
            // At least half a minute at the nadir.
            let total = total.max(onset + recovery + 30.0 * s);
            (
                Effect::Desaturation { nadir },
                onset,
                total - onset - recovery,
                recovery,
                None,
            )
        }
        ScenarioKind::Tachycardia => {
            let rate = uniform(rng, 130.0, 170.0);
            let total = uniform(rng, 3.0 * m, 30.0 * m);
            let (onset, recovery) = if rng.random_bool(0.5) {
                (
                    uniform(rng, 3.0 * s, 10.0 * s),
                    uniform(rng, 5.0 * s, 15.0 * s),
                )
            } else {
                (
                    uniform(rng, 1.0 * m, 3.0 * m),
                    uniform(rng, 2.0 * m, 5.0 * m),
                )
            };
            let total = total.max(onset + recovery + m);
            (
                Effect::Tachycardia { rate },
                onset,
                total - onset - recovery,
                recovery,
                None,
            )
        }
        ScenarioKind::Bradycardia => {
            let rate = uniform(rng, 35.0, 45.0);
            let total = uniform(rng, 2.0 * m, 20.0 * m);
            let onset = uniform(rng, 10.0 * s, 60.0 * s);
            let recovery = uniform(rng, 10.0 * s, 60.0 * s);
            (
                Effect::Bradycardia { rate },
                onset,
                total - onset - recovery,
                recovery,
                None,
            )
        }
        ScenarioKind::Fever => {
            let peak = uniform(rng, 38.5, 40.0);
            let onset = uniform(rng, 1.0 * h, 3.0 * h);
            let plateau = uniform(rng, 2.0 * h, 8.0 * h);
            let recovery = uniform(rng, 1.0 * h, 4.0 * h);
            (
                Effect::Fever {
                    rise: peak - b.temperature,
                },
                onset,
                plateau,
                recovery,
                None,
            )
        }
        ScenarioKind::Sepsis => {
            let effect = Effect::Sepsis {
                temperature: uniform(rng, 1.5, 2.5),
                heart_rate: uniform(rng, 20.0, 30.0),
                respiratory_rate: uniform(rng, 8.0, 14.0),
                systolic_drop: uniform(rng, 25.0, 45.0),
                diastolic_drop: uniform(rng, 12.0, 22.0),
                spo2_drop: uniform(rng, 3.0, 7.0),
                perfusion_factor: uniform(rng, 0.3, 0.5),
            };
            let onset = uniform(rng, 2.0 * h, 8.0 * h);
            let plateau = uniform(rng, 2.0 * h, 6.0 * h);
            let recovery = uniform(rng, 4.0 * h, 12.0 * h);
            (effect, onset, plateau, recovery, None)
        }
        ScenarioKind::Copd => {
            let effect = Effect::CopdExacerbation {
                spo2_drop: uniform(rng, 4.0, 8.0),
                respiratory_rate: uniform(rng, 4.0, 8.0),
                heart_rate: uniform(rng, 8.0, 15.0),
            };
            let onset = uniform(rng, 30.0 * m, 90.0 * m);
            let plateau = uniform(rng, 2.0 * h, 6.0 * h);
            let recovery = uniform(rng, 1.0 * h, 3.0 * h);
            (effect, onset, plateau, recovery, None)
        }
        ScenarioKind::SensorOff => (
            Effect::SensorOff,
            0.0,
            log_uniform(rng, 10.0 * s, 5.0 * m),
            0.0,
            pick_device(devices, false, rng),
        ),
        ScenarioKind::Flatline => (
            Effect::Flatline,
            0.0,
            uniform(rng, 1.0 * m, 10.0 * m),
            0.0,
            pick_device(devices, false, rng),
        ),
        ScenarioKind::MotionArtifact => {
            let spo2_error = uniform(rng, 5.0, 15.0);
            let duration = uniform(rng, 5.0 * s, 60.0 * s);
            (
                Effect::MotionArtifact { spo2_error },
                0.0,
                duration,
                0.0,
                pick_device(devices, true, rng),
            )
        }
        ScenarioKind::Dropout => (
            Effect::Dropout,
            0.0,
            log_uniform(rng, 30.0 * s, 10.0 * m),
            0.0,
            pick_device(devices, false, rng),
        ),
        // Not event kinds; never drawn (tracks only hold event kinds).
        ScenarioKind::Stable | ScenarioKind::Mixed => (
            Effect::Flatline,
            0.0,
            0.0,
            0.0,
            pick_device(devices, false, rng),
        ),
    };
    // A technical event lasts at least two periods of its device, so the
    // device shows it (a 20 s sensor-off on a 5-min cuff would be invisible).
    let plateau = plateau.max(device.map_or(0.0, |d| 2.0 * d.period_ms as f64));
    let device = device.map(|d| d.index);
    let (onset_ms, plateau_ms, recovery_ms) = (ms(onset), ms(plateau.max(0.0)), ms(recovery));
    let total = fmt_minutes(onset_ms + plateau_ms + recovery_ms);
    let ramps = format!(
        "onset {}, full effect {}, recovery {}",
        fmt_minutes(onset_ms),
        fmt_minutes(plateau_ms),
        fmt_minutes(recovery_ms)
    );
    let detail = match effect {
        Effect::Desaturation { nadir } => {
            format!("SpO2 from ~{:.0} % to {nadir:.0} %; {ramps}", b.spo2)
        }
        Effect::Tachycardia { rate } => format!(
            "heart rate from ~{:.0} to {rate:.0} /min; {ramps}",
            b.resting_hr
        ),
        Effect::Bradycardia { rate } => format!(
            "heart rate from ~{:.0} to {rate:.0} /min; {ramps}",
            b.resting_hr
        ),
        Effect::Fever { rise } => format!(
            "temperature to {:.1} Cel (+{rise:.1}); heart rate follows ~10 /min per degree; {ramps}",
            b.temperature + rise
        ),
        Effect::Sepsis {
            temperature,
            heart_rate,
            respiratory_rate,
            systolic_drop,
            spo2_drop,
            ..
        } => format!(
            "sepsis: temperature +{temperature:.1} Cel, heart rate +{:.0} /min, respiratory rate +{:.0} /min, systolic -{systolic_drop:.0} mm[Hg], SpO2 -{spo2_drop:.0} %; {ramps}",
            heart_rate + 10.0 * temperature,
            respiratory_rate + 1.5 * temperature
        ),
        Effect::CopdExacerbation {
            spo2_drop,
            respiratory_rate,
            heart_rate,
        } => format!(
            "COPD exacerbation: SpO2 from ~{:.0} % to ~{:.0} %, respiratory rate +{respiratory_rate:.0} /min, heart rate +{heart_rate:.0} /min; {ramps}",
            b.spo2,
            b.spo2 - spo2_drop
        ),
        Effect::SensorOff => format!("sensor off: no values, flag sensor_off, for {total}"),
        Effect::Flatline => format!("device repeats its last values exactly for {total}"),
        Effect::MotionArtifact { spo2_error } => format!(
            "motion artifact for {total}: SpO2 falsely low by up to {spo2_error:.0} points, low perfusion index, pulse rate unaffected; flag artifact only while motion is strong"
        ),
        Effect::Dropout => format!("device silent (no output) for {total}"),
    };
    Event {
        effect,
        start,
        onset_ms,
        plateau_ms,
        recovery_ms,
        device,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patient::Patient;
    use crate::random::stream;

    const START: Timestamp = Timestamp(1_736_157_600_000); // 2025-01-06T10:00Z

    fn scenario(
        kind: ScenarioKind,
        seed: u64,
        vitals: &[Vital],
    ) -> (Scenario, Patient, ChaCha8Rng) {
        let mut rng = stream(seed, "test", kind.name());
        let patient = Patient::draw(kind.is_copd(), START, &mut rng);
        let devices = [Observer {
            index: 0,
            vitals,
            period_ms: 1_000,
        }];
        let s = Scenario::new(kind, patient.baseline(), START, &devices, &mut rng);
        (s, patient, rng)
    }

    const OXIMETER: [Vital; 3] = [Vital::Spo2, Vital::PulseRate, Vital::PerfusionIndex];

    /// Step patient and scenario together for `ms` in `dt` steps; returns
    /// the true vitals after each step, with their times.
    fn play(
        s: &mut Scenario,
        p: &mut Patient,
        rng: &mut ChaCha8Rng,
        ms: i64,
        dt: i64,
    ) -> Vec<(Timestamp, crate::patient::TrueVitals)> {
        let mut out = Vec::new();
        let mut t = p.now();
        for _ in 0..ms / dt {
            t = t.add_millis(dt);
            s.generate_until(t);
            p.set_acute(s.acute(t));
            p.step(t, dt, rng);
            out.push((t, p.truth()));
        }
        out
    }

    #[test]
    fn scenario_names_are_snake_case_in_serde_and_text() {
        for k in ScenarioKind::ALL {
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.name()));
            assert_eq!(k.name().parse::<ScenarioKind>(), Ok(k));
        }
        assert_eq!(
            serde_json::from_str::<ScenarioKind>("\"motion_artifact\"").ok(),
            Some(ScenarioKind::MotionArtifact)
        );
        assert!("motion-artifact".parse::<ScenarioKind>().is_err());
    }

    #[test]
    fn drawn_events_stay_within_their_documented_ranges() {
        let mut rng = stream(1, "test", "ranges");
        let b = Baseline::draw(false, &mut rng);
        let devs = [Target {
            index: 0,
            mask: mask(&OXIMETER),
            period_ms: 1_000,
        }];
        for k in ScenarioKind::ALL
            .into_iter()
            .filter(|k| k.is_clinical() || k.is_technical())
        {
            for _ in 0..200 {
                let e = draw_event(k, START, &b, &devs, &mut rng);
                assert_eq!(e.kind(), k);
                assert!(e.onset_ms >= 0 && e.plateau_ms >= 0 && e.recovery_ms >= 0);
                let min = e.duration_ms() as f64 / 60_000.0;
                let ok = match e.effect {
                    Effect::Desaturation { nadir } => {
                        (80.0..=86.0).contains(&nadir)
                            && (2.0..=10.0).contains(&min)
                            && e.plateau_ms >= 30_000
                    }
                    Effect::Tachycardia { rate } => {
                        (130.0..=170.0).contains(&rate) && (3.0..=30.0).contains(&min)
                    }
                    Effect::Bradycardia { rate } => {
                        (35.0..=45.0).contains(&rate) && (2.0..=20.0).contains(&min)
                    }
                    Effect::Fever { rise } => {
                        (38.5..=40.0).contains(&(b.temperature + rise)) && e.onset_ms >= HOUR_MS
                    }
                    Effect::Sepsis { .. } => (2 * HOUR_MS..=8 * HOUR_MS).contains(&e.onset_ms),
                    Effect::CopdExacerbation { spo2_drop, .. } => (4.0..=8.0).contains(&spo2_drop),
                    Effect::SensorOff => (10.0 / 60.0..=5.0).contains(&min),
                    Effect::Flatline => (1.0..=10.0).contains(&min),
                    Effect::MotionArtifact { spo2_error } => {
                        (5.0..=15.0).contains(&spo2_error) && min <= 1.0
                    }
                    Effect::Dropout => (0.5..=10.0).contains(&min),
                };
                assert!(ok, "{e:?}");
                assert_eq!(e.device.is_some(), k.is_technical());
            }
        }
    }

    #[test]
    fn a_stable_scenario_has_no_events() {
        let (mut s, _, _) = scenario(ScenarioKind::Stable, 1, &OXIMETER);
        s.generate_until(START.add_millis(30 * 24 * HOUR_MS));
        assert_eq!(s.events().count(), 0);
    }

    #[test]
    fn desaturation_brings_true_spo2_to_the_nadir_and_back() {
        let (mut s, mut p, mut rng) = scenario(ScenarioKind::Desaturation, 2, &OXIMETER);
        let usual = p.baseline().spo2;
        let trace = play(&mut s, &mut p, &mut rng, 20 * MINUTE_MS, 1_000);
        let e = s
            .events()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no event"));
        let Effect::Desaturation { nadir } = e.effect else {
            panic!("{e:?}")
        };
        let during: Vec<f64> = trace
            .iter()
            .filter(|(t, _)| e.intensity(*t) >= 1.0)
            .map(|(_, v)| v.spo2)
            .collect();
        assert!(!during.is_empty());
        let mean = during.iter().sum::<f64>() / during.len() as f64;
        assert!(
            (mean - nadir).abs() < 1.5,
            "plateau mean {mean} vs nadir {nadir}"
        );
        let before = trace
            .iter()
            .find(|(t, _)| *t < e.start)
            .map(|(_, v)| v.spo2)
            .unwrap_or(0.0);
        assert!(before > usual - 3.0);
        let after: Vec<f64> = trace
            .iter()
            .filter(|(t, _)| *t > e.end().add_millis(60_000))
            .map(|(_, v)| v.spo2)
            .take(60)
            .collect();
        assert!(
            after.iter().all(|&x| x > usual - 4.0),
            "recovered: {after:?}"
        );
        let hr_before = trace
            .iter()
            .find(|(t, _)| *t < e.start)
            .map(|(_, v)| v.heart_rate)
            .unwrap_or(0.0);
        let hr_during = trace
            .iter()
            .filter(|(t, _)| e.intensity(*t) >= 1.0)
            .map(|(_, v)| v.heart_rate)
            .sum::<f64>()
            / during.len() as f64;
        assert!(hr_during > hr_before, "hypoxaemia drives the heart rate");
    }

    #[test]
    fn tachycardia_and_bradycardia_reach_their_target_rate() {
        for (kind, seed) in [
            (ScenarioKind::Tachycardia, 3),
            (ScenarioKind::Bradycardia, 4),
        ] {
            let (mut s, mut p, mut rng) = scenario(kind, seed, &OXIMETER);
            let trace = play(&mut s, &mut p, &mut rng, 40 * MINUTE_MS, 1_000);
            let e = s
                .events()
                .next()
                .cloned()
                .unwrap_or_else(|| panic!("no event"));
            let target = match e.effect {
                Effect::Tachycardia { rate } | Effect::Bradycardia { rate } => rate,
                _ => panic!("{e:?}"),
            };
            let full: Vec<f64> = trace
                .iter()
                .filter(|(t, _)| e.intensity(*t) >= 1.0)
                .map(|(_, v)| v.heart_rate)
                .collect();
            let mean = full.iter().sum::<f64>() / full.len() as f64;
            assert!((mean - target).abs() < 3.0, "{kind}: {mean} vs {target}");
            if kind == ScenarioKind::Tachycardia {
                assert!(full.iter().all(|&hr| hr >= 120.0));
            } else {
                assert!(full.iter().all(|&hr| hr <= 50.0));
            }
        }
    }

    #[test]
    fn fever_raises_temperature_over_hours_and_heart_rate_with_it() {
        let (mut s, mut p, mut rng) = scenario(ScenarioKind::Fever, 5, &[Vital::BodyTemperature]);
        let trace = play(&mut s, &mut p, &mut rng, 18 * HOUR_MS, 60_000);
        let e = s
            .events()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no event"));
        let Effect::Fever { rise } = e.effect else {
            panic!()
        };
        let peak = trace
            .iter()
            .map(|(_, v)| v.body_temperature)
            .fold(0.0, f64::max);
        assert!(
            peak >= 38.3 && peak <= p.baseline().temperature + rise + 0.9,
            "peak {peak}"
        );
        // An hour into the onset it is still rising, not there yet.
        let early = trace
            .iter()
            .find(|(t, _)| *t >= e.start.add_millis(e.onset_ms / 3))
            .map(|(_, v)| v.body_temperature)
            .unwrap_or(0.0);
        assert!(early < peak - 0.5, "gradual onset: {early} vs {peak}");
        let hr_at_peak = trace
            .iter()
            .filter(|(_, v)| v.body_temperature > peak - 0.2)
            .map(|(_, v)| v.heart_rate)
            .sum::<f64>()
            / trace
                .iter()
                .filter(|(_, v)| v.body_temperature > peak - 0.2)
                .count() as f64;
        assert!(hr_at_peak > p.baseline().resting_hr + 10.0);
    }

    #[test]
    fn sepsis_raises_heart_and_breathing_rate_and_temperature_and_lowers_pressure_and_spo2() {
        let (mut s, mut p, mut rng) = scenario(ScenarioKind::Sepsis, 6, &OXIMETER);
        let b = *p.baseline();
        let trace = play(&mut s, &mut p, &mut rng, 16 * HOUR_MS, 60_000);
        let e = s
            .events()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no event"));
        assert!(e.onset_ms >= 2 * HOUR_MS);
        let worst: Vec<_> = trace
            .iter()
            .filter(|(t, _)| e.intensity(*t) >= 1.0)
            .map(|(_, v)| *v)
            .collect();
        assert!(!worst.is_empty());
        let n = worst.len() as f64;
        let mean = |f: fn(&crate::patient::TrueVitals) -> f64| worst.iter().map(f).sum::<f64>() / n;
        assert!(mean(|v| v.heart_rate) > b.resting_hr + 25.0);
        assert!(mean(|v| v.respiratory_rate) >= 22.0, "qSOFA RR");
        assert!(mean(|v| v.systolic_bp) < b.systolic_bp - 15.0);
        assert!(mean(|v| v.body_temperature) > 38.0);
        assert!(mean(|v| v.spo2) < b.spo2 - 2.0);
    }

    #[test]
    fn a_copd_exacerbation_lowers_spo2_below_the_usual_level() {
        let (mut s, mut p, mut rng) = scenario(ScenarioKind::Copd, 7, &OXIMETER);
        let b = *p.baseline();
        assert!(b.copd);
        let trace = play(&mut s, &mut p, &mut rng, 10 * HOUR_MS, 30_000);
        let e = s
            .events()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("no event"));
        let worst: Vec<f64> = trace
            .iter()
            .filter(|(t, _)| e.intensity(*t) >= 1.0)
            .map(|(_, v)| v.spo2)
            .collect();
        let mean = worst.iter().sum::<f64>() / worst.len() as f64;
        assert!(
            mean < b.spo2 - 3.0 && mean > 75.0,
            "{mean} vs usual {}",
            b.spo2
        );
    }

    #[test]
    fn technical_events_target_a_suitable_device_and_change_no_physiology() {
        let mut rng = stream(8, "test", "target");
        let b = Baseline::draw(false, &mut rng);
        let strap = [Vital::HeartRate, Vital::RrInterval];
        let devices = [
            Observer {
                index: 3,
                vitals: &strap,
                period_ms: 1_000,
            },
            Observer {
                index: 7,
                vitals: &OXIMETER,
                period_ms: 1_000,
            },
        ];
        let mut s = Scenario::new(ScenarioKind::MotionArtifact, &b, START, &devices, &mut rng);
        s.generate_until(START.add_millis(24 * HOUR_MS));
        assert!(s.events().count() > 10);
        for e in s.events() {
            assert_eq!(
                e.device,
                Some(7),
                "motion artifacts only hit pulse oximeters"
            );
            assert_eq!(s.acute(e.start.add_millis(1_000)), Acute::NONE);
            assert!(s.technical(7, e.start).motion.is_some());
            assert!(s.technical(7, e.end()).motion.is_none());
        }
        let no_oximeter = [Observer {
            index: 3,
            vitals: &strap,
            period_ms: 1_000,
        }];
        let mut s = Scenario::new(
            ScenarioKind::MotionArtifact,
            &b,
            START,
            &no_oximeter,
            &mut rng,
        );
        s.generate_until(START.add_millis(24 * HOUR_MS));
        assert_eq!(s.events().count(), 0);
    }

    #[test]
    fn technical_events_last_at_least_two_periods_of_a_slow_device() {
        let mut rng = stream(11, "test", "slow");
        let b = Baseline::draw(false, &mut rng);
        let cuff = [Vital::SystolicBp, Vital::DiastolicBp];
        let devices = [Observer {
            index: 0,
            vitals: &cuff,
            period_ms: 5 * MINUTE_MS,
        }];
        for kind in [
            ScenarioKind::SensorOff,
            ScenarioKind::Flatline,
            ScenarioKind::Dropout,
        ] {
            let mut s = Scenario::new(kind, &b, START, &devices, &mut rng);
            s.generate_until(START.add_millis(48 * HOUR_MS));
            assert!(s.events().count() > 5);
            assert!(
                s.events().all(|e| e.duration_ms() >= 10 * MINUTE_MS),
                "{kind}"
            );
        }
    }

    #[test]
    fn mixed_starts_with_an_undisturbed_clinical_event_within_two_minutes_then_mixes_both_sorts() {
        for seed in 0..20 {
            let (mut s, _, _) = scenario(ScenarioKind::Mixed, seed, &OXIMETER);
            s.generate_until(START.add_millis(2 * MINUTE_MS));
            let first = s
                .events()
                .find(|e| e.start <= START.add_millis(2 * MINUTE_MS))
                .cloned();
            let first = first.unwrap_or_else(|| panic!("seed {seed}: nothing in 2 min"));
            assert!(matches!(
                first.kind(),
                ScenarioKind::Desaturation | ScenarioKind::Tachycardia
            ));
            s.generate_until(START.add_millis(24 * HOUR_MS));
            let first_technical = s
                .events()
                .filter(|e| e.kind().is_technical())
                .map(|e| e.start)
                .min();
            assert!(
                first_technical.is_some_and(|t| t >= first.end().add_millis(MINUTE_MS)),
                "the first event is seen undisturbed"
            );
            let kinds: std::collections::BTreeSet<_> = s.events().map(|e| e.kind()).collect();
            assert!(
                kinds.iter().any(|k| k.is_technical()) && kinds.len() >= 4,
                "{kinds:?}"
            );
        }
    }

    #[test]
    fn the_script_does_not_depend_on_how_often_it_is_consulted() {
        let (mut a, _, _) = scenario(ScenarioKind::Mixed, 9, &OXIMETER);
        let (mut b, _, _) = scenario(ScenarioKind::Mixed, 9, &OXIMETER);
        let end = START.add_millis(12 * HOUR_MS);
        a.generate_until(end);
        let mut t = START;
        while t < end {
            t = t.add_millis(7 * MINUTE_MS);
            b.generate_until(t);
        }
        b.generate_until(end);
        let ea: Vec<_> = a.events().cloned().collect();
        let eb: Vec<_> = b.events().cloned().collect();
        let key = |v: &[Event]| {
            let mut v: Vec<_> = v.iter().map(|e| (e.start, e.detail.clone())).collect();
            v.sort();
            v
        };
        assert_eq!(key(&ea), key(&eb));
    }

    #[test]
    fn ended_events_are_handed_out_once() {
        let (mut s, _, _) = scenario(ScenarioKind::Dropout, 10, &OXIMETER);
        let t = START.add_millis(6 * HOUR_MS);
        s.generate_until(t);
        let mut started = Vec::new();
        s.take_started(|start| start <= t, &mut started);
        let mut ended = Vec::new();
        s.take_ended(t, &mut ended);
        assert!(ended.is_empty(), "already labelled when started");
        assert!(!started.is_empty());
        assert!(s.events().all(|e| e.end() > t));
    }
}
