//! The National Early Warning Score 2 (NEWS2), exact to the Royal College
//! of Physicians' 2017 chart, over the partial, real-valued observations a
//! home gateway actually has.
//!
//! # Sources
//!
//! * Royal College of Physicians. *National Early Warning Score (NEWS) 2:
//!   Standardising the assessment of acute-illness severity in the NHS.*
//!   Updated report of a working party. London: RCP, 2017 (the RCP
//!   publishes it at <https://www.rcplondon.ac.uk/national-early-warning-score>;
//!   a copy at
//!   <https://docslib.org/doc/6496013/national-early-warning-score-news-2-standardising-the-assessment-of-acute-illness-severity-in-the-nhs>).
//! * Chart 1, "The NEWS scoring system" (RCP 2017), text of the chart at
//!   <https://scribd.com/document/584338409/NEWS2-Chart-1-The-NEWS-scoring-system-0-0>
//!   and as an image at
//!   <https://radiopaedia.org/cases/news2-scoring-system-diagram-1>: every
//!   range in [`score`].
//! * Chart 4, "Clinical response to the NEWS trigger thresholds" (RCP 2017),
//!   text at
//!   <https://scribd.com/document/538260233/NEWS2-Chart-4-Clinical-Response-to-NEWS-Trigger-Thresholds-0>:
//!   [`RiskBand::response`] and [`RiskBand::monitoring`].
//! * Scale 1 and Scale 2 side by side: Table 1 of a 2019 *Thorax* study of
//!   NEWS2 in COPD exacerbations
//!   (<https://pmc.ncbi.nlm.nih.gov/articles/PMC6817986>, table at
//!   <https://thorax.bmj.com/highwire/markup/192780/expansion>): Scale 2
//!   scores 93 % or more as 0 on air and 1/2/3 on oxygen (93–94, 95–96,
//!   ≥97).
//! * The four risk bands of Chart 3, with the "low–medium" band (a score of
//!   3 in one parameter) treated clinically like 5–6: Table 1 of a
//!   *Clinical Medicine* NEWS2 study
//!   (<https://www.rcpjournals.org/highwire/markup/14242/expansion>).
//! * That NEWS2 was built for hospital inpatients with complete sets of
//!   observations, and is unvalidated at home: Greenhalgh et al., CEBM
//!   Oxford, 2020
//!   (<https://www.cebm.net/covid-19/should-we-use-the-news-or-news2-score-when-assessing-patients-with-possible-covid-19-in-primary-care/>).
//!
//! Where sources disagree: some calculators fold the red score into
//! "medium", and the 2012 NEWS material gives "6-hourly" for totals 1–4. We
//! follow the RCP's own 2017 charts: a separate low–medium band (Chart 3;
//! it asks for the same hourly monitoring as 5–6 but a ward-based rather
//! than an urgent response), and 4–6-hourly monitoring for totals 1–4
//! (Chart 4).
//!
//! # The chart
//!
//! | parameter | 3 | 2 | 1 | 0 | 1 | 2 | 3 |
//! |---|---|---|---|---|---|---|---|
//! | respiration rate /min | ≤8 | | 9–11 | 12–20 | | 21–24 | ≥25 |
//! | SpO2 Scale 1 % | ≤91 | 92–93 | 94–95 | ≥96 | | | |
//! | SpO2 Scale 2 % | ≤83 | 84–85 | 86–87 | 88–92, ≥93 on air | 93–94 on O2 | 95–96 on O2 | ≥97 on O2 |
//! | air or oxygen | | oxygen | | air | | | |
//! | systolic BP mmHg | ≤90 | 91–100 | 101–110 | 111–219 | | | ≥220 |
//! | pulse /min | ≤40 | | 41–50 | 51–90 | 91–110 | 111–130 | ≥131 |
//! | consciousness | | | | alert | | | new confusion, V, P, U |
//! | temperature °C | ≤35.0 | | 35.1–36.0 | 36.1–38.0 | 38.1–39.0 | ≥39.1 | |
//!
//! # Values between the chart's steps
//!
//! The chart is printed in whole numbers (temperature in tenths of a
//! degree) because that is what a nurse writes down; devices send reals.
//! A value is first rounded to the chart's resolution, half away from zero,
//! exactly as if it had been written on the chart, then looked up: 90.5
//! bpm is 91 (score 1), 90.49 is 90 (score 0); 35.05 °C is 35.1 (score 1),
//! 35.04 °C is 35.0 (score 3). Rounding is done in decimal, not binary:
//! 35.05 has no exact binary value, and a device that sends "35.05" must
//! score as 35.1 whichever side of it the nearest double lies.
//!
//! Rounding, rather than reading the printed bounds as cut points
//! ("≤ 8", "≤ 11", "≤ 20", ...), treats both sides of the normal range
//! alike: with cut points a respiration rate of 8.1 would score 1 (the
//! milder band) while 20.1 would score 2 (the more severe one).
//!
//! # Partial data
//!
//! A home gateway rarely has all seven parameters (a blood pressure cuff
//! is used a few times a day, respiration rate may not be measured at all).
//! [`score`] scores what is present, lists what is missing
//! ([`Score::missing`]) and derives the band from what is present. Every
//! sub-score is at least 0 and the band only rises with the total or a
//! red score, so the total and the band of an incomplete set are **lower
//! bounds**: the patient is at least this ill. A consumer must show
//! "incomplete" beside such a score ([`Score::is_complete`]) and must not
//! read a low band from an incomplete set as reassurance. The RCP chart
//! itself assumes a complete set.

mod window;

pub use window::{ObservationWindow, Pushed, UNSCORABLE};

use serde::{Deserialize, Serialize};
use std::fmt;
use vitalgate_devices::{Timestamp, Vital};

/// Level of consciousness on the ACVPU scale.
///
/// Anything but [`Consciousness::Alert`] scores 3. NEWS2 added new
/// confusion (new-onset confusion, disorientation or agitation where the
/// mental state was normal before) to the 2012 AVPU scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consciousness {
    /// Alert (the default: a home gateway cannot assess consciousness, so
    /// this is what is assumed until a carer or clinician configures
    /// otherwise).
    #[default]
    Alert,
    /// New confusion, disorientation or agitation (C).
    NewConfusion,
    /// Responds to voice (V).
    Voice,
    /// Responds to pain (P).
    Pain,
    /// Unresponsive (U).
    Unresponsive,
}

/// Which SpO2 row of the chart applies.
///
/// Scale 2 is for patients with hypercapnic (type 2) respiratory failure
/// whose prescribed target saturation is 88–92 %; the RCP chart says to use
/// it only under the direction of a qualified clinician. Everybody else is
/// on Scale 1, hence the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum Spo2Scale {
    /// Scale 1: target 94–98 %.
    #[default]
    #[serde(rename = "scale_1")]
    One,
    /// Scale 2: target 88–92 % (hypercapnic respiratory failure).
    #[serde(rename = "scale_2")]
    Two,
}

/// Whether the patient breathes room air or receives supplemental oxygen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Oxygen {
    /// Room air (scores 0).
    #[default]
    Air,
    /// Any supplemental oxygen (scores 2; on Scale 2 it also changes how
    /// saturations of 93 % and above score).
    Supplemental,
}

/// The seven parameters of the NEWS2 chart, in the chart's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parameter {
    /// Respiration rate, breaths per minute.
    RespirationRate,
    /// Oxygen saturation by pulse oximetry, percent.
    Spo2,
    /// Air or supplemental oxygen.
    AirOrOxygen,
    /// Systolic blood pressure, mmHg.
    SystolicBp,
    /// Pulse, per minute.
    Pulse,
    /// Level of consciousness (ACVPU).
    Consciousness,
    /// Temperature, °C.
    Temperature,
}

impl Parameter {
    /// All seven, in the chart's order (the order of [`Score::missing`]).
    pub const ALL: [Parameter; 7] = [
        Parameter::RespirationRate,
        Parameter::Spo2,
        Parameter::AirOrOxygen,
        Parameter::SystolicBp,
        Parameter::Pulse,
        Parameter::Consciousness,
        Parameter::Temperature,
    ];

    /// The snake_case name used in JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Parameter::RespirationRate => "respiration_rate",
            Parameter::Spo2 => "spo2",
            Parameter::AirOrOxygen => "air_or_oxygen",
            Parameter::SystolicBp => "systolic_bp",
            Parameter::Pulse => "pulse",
            Parameter::Consciousness => "consciousness",
            Parameter::Temperature => "temperature",
        }
    }
}

impl fmt::Display for Parameter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Clinical risk from the aggregate score (RCP Chart 3), lowest first, so
/// bands compare: `RiskBand::Medium > RiskBand::LowMedium`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskBand {
    /// Aggregate 0–4 and no parameter scoring 3.
    Low,
    /// Aggregate 0–4 with a score of 3 in a single parameter (the RCP's
    /// "red score").
    LowMedium,
    /// Aggregate 5–6: the key threshold for an urgent response.
    Medium,
    /// Aggregate 7 or more: the threshold for an emergency response.
    High,
}

impl RiskBand {
    /// The band for an aggregate score and whether any single parameter
    /// scored 3. A red score only matters below 5: from 5 the aggregate's
    /// own band already asks for at least the same response.
    pub const fn from_total(total: u8, red_score: bool) -> RiskBand {
        if total >= 7 {
            RiskBand::High
        } else if total >= 5 {
            RiskBand::Medium
        } else if red_score {
            RiskBand::LowMedium
        } else {
            RiskBand::Low
        }
    }

    /// The RCP's recommended clinical response (Chart 4), shortened. Written
    /// for a ward; at home the "registered nurse" is whoever receives the
    /// gateway's alerts.
    pub const fn response(self) -> &'static str {
        match self {
            RiskBand::Low => {
                "Ward-based response: a registered nurse assesses the patient and decides \
                 whether monitoring should be more frequent or care escalated \
                 (total 0: continue routine NEWS monitoring)."
            }
            RiskBand::LowMedium => {
                "Urgent ward-based response: the registered nurse informs the medical team \
                 caring for the patient, who review and decide whether care must be escalated."
            }
            RiskBand::Medium => {
                "Urgent response: the registered nurse immediately informs the medical team and \
                 requests urgent assessment by a clinician with core competencies in acute \
                 illness; care in an environment with monitoring facilities."
            }
            RiskBand::High => {
                "Emergency response: the registered nurse immediately informs the medical team \
                 (at least specialist registrar level); emergency assessment by a team with \
                 critical-care competencies including advanced airway skills; consider transfer \
                 to a level 2 or 3 care facility (HDU or ICU)."
            }
        }
    }

    /// The RCP's minimum frequency of monitoring (Chart 4). The low band
    /// spans two rows of the chart; [`Score::monitoring`] picks the row
    /// from the total.
    pub const fn monitoring(self) -> &'static str {
        match self {
            RiskBand::Low => "Minimum 4–6 hourly (minimum 12-hourly when the total is 0).",
            RiskBand::LowMedium | RiskBand::Medium => "Minimum 1 hourly.",
            RiskBand::High => "Continuous monitoring of vital signs.",
        }
    }

    /// The snake_case name used in JSON and logs.
    pub const fn name(self) -> &'static str {
        match self {
            RiskBand::Low => "low",
            RiskBand::LowMedium => "low_medium",
            RiskBand::Medium => "medium",
            RiskBand::High => "high",
        }
    }
}

impl fmt::Display for RiskBand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where an observed value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A device reading of this vital (for the pulse: heart rate or pulse
    /// rate, whichever was used).
    Reading(Vital),
    /// The gateway's configuration (consciousness, air or oxygen): what a
    /// carer or clinician last set, not something measured.
    Configured,
}

/// One parameter's value and when it held.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Observed<T> {
    /// The value, in the vital's canonical unit.
    pub value: T,
    /// Measurement time of the reading it came from; for a
    /// [`Source::Configured`] value, the time of the assessment it was
    /// taken for.
    pub time: Timestamp,
    /// Where it came from.
    pub source: Source,
}

impl<T> Observed<T> {
    /// A value from a reading of `vital` measured at `time`.
    pub const fn reading(value: T, time: Timestamp, vital: Vital) -> Observed<T> {
        Observed {
            value,
            time,
            source: Source::Reading(vital),
        }
    }

    /// A configured value, assumed to hold at `time`.
    pub const fn configured(value: T, time: Timestamp) -> Observed<T> {
        Observed {
            value,
            time,
            source: Source::Configured,
        }
    }
}

/// One set of observations to score: each of the seven parameters, when
/// known.
///
/// Numeric values are in the vitals' canonical UCUM units (`/min`, `%`,
/// `mm[Hg]`, `Cel`), as every [`vitalgate_devices::Reading`] carries them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Observations {
    /// Respiration rate, breaths per minute.
    pub respiration_rate: Option<Observed<f64>>,
    /// SpO2, percent.
    pub spo2: Option<Observed<f64>>,
    /// Air or supplemental oxygen.
    pub oxygen: Option<Observed<Oxygen>>,
    /// Systolic blood pressure, mmHg.
    pub systolic_bp: Option<Observed<f64>>,
    /// Pulse, per minute.
    pub pulse: Option<Observed<f64>>,
    /// Level of consciousness.
    pub consciousness: Option<Observed<Consciousness>>,
    /// Temperature, °C.
    pub temperature: Option<Observed<f64>>,
}

/// A NEWS2 score: the sub-score of each parameter, the aggregate and the
/// band.
///
/// A sub-score is `None` when the parameter was not measured; the total
/// and band are then lower bounds (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Score {
    /// The SpO2 scale the set was scored on.
    pub scale: Spo2Scale,
    /// Respiration rate sub-score.
    pub respiration_rate: Option<u8>,
    /// SpO2 sub-score (on [`Score::scale`]).
    pub spo2: Option<u8>,
    /// Air (0) or supplemental oxygen (2).
    pub air_or_oxygen: Option<u8>,
    /// Systolic blood pressure sub-score.
    pub systolic_bp: Option<u8>,
    /// Pulse sub-score.
    pub pulse: Option<u8>,
    /// Consciousness sub-score.
    pub consciousness: Option<u8>,
    /// Temperature sub-score.
    pub temperature: Option<u8>,
    /// Sum of the present sub-scores, 0–20.
    pub total: u8,
    /// Whether any single parameter scored 3 (the RCP's "red score").
    pub red_score: bool,
    /// The clinical risk band, from the present sub-scores.
    pub band: RiskBand,
    /// The parameters that were not available, in the chart's order.
    pub missing: Vec<Parameter>,
}

impl Score {
    /// Whether all seven parameters were scored. When not, the total and
    /// the band are lower bounds.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty()
    }

    /// The sub-score of one parameter (`None` when not measured).
    pub const fn sub_score(&self, parameter: Parameter) -> Option<u8> {
        match parameter {
            Parameter::RespirationRate => self.respiration_rate,
            Parameter::Spo2 => self.spo2,
            Parameter::AirOrOxygen => self.air_or_oxygen,
            Parameter::SystolicBp => self.systolic_bp,
            Parameter::Pulse => self.pulse,
            Parameter::Consciousness => self.consciousness,
            Parameter::Temperature => self.temperature,
        }
    }

    /// The RCP's recommended clinical response for this score's band.
    pub const fn response(&self) -> &'static str {
        self.band.response()
    }

    /// The RCP's minimum monitoring frequency for this score: Chart 4's row
    /// for the total (0, 1–4, a red score, 5–6, 7 or more).
    pub const fn monitoring(&self) -> &'static str {
        match self.band {
            // Chart 4 splits the low band: 0 is 12-hourly, 1–4 4–6-hourly.
            // An incomplete set scoring 0 gets the 12-hourly row too: it is
            // what was measured, and the "incomplete" flag says the rest.
            RiskBand::Low if self.total == 0 => "Minimum 12 hourly.",
            RiskBand::Low => "Minimum 4–6 hourly.",
            band => band.monitoring(),
        }
    }
}

/// Score a set of observations on the given SpO2 scale.
///
/// Pure: the same observations always give the same score. Parameters that
/// are absent, or whose value is not a finite number, are listed in
/// [`Score::missing`]; the total and band are those of the parameters
/// present, hence lower bounds when the set is incomplete. On Scale 2, a
/// saturation of 93 % or more with air-or-oxygen unknown is scored as on
/// air (0), the lower bound.
pub fn score(obs: &Observations, scale: Spo2Scale) -> Score {
    let finite = |o: Option<Observed<f64>>| o.map(|o| o.value).filter(|v| v.is_finite());
    let oxygen = obs.oxygen.map(|o| o.value);

    let respiration_rate = finite(obs.respiration_rate).map(|v| chart::respiration_rate(whole(v)));
    let spo2 = finite(obs.spo2).map(|v| match scale {
        Spo2Scale::One => chart::spo2_scale_1(whole(v)),
        Spo2Scale::Two => chart::spo2_scale_2(whole(v), oxygen.unwrap_or(Oxygen::Air)),
    });
    let air_or_oxygen = oxygen.map(chart::air_or_oxygen);
    let systolic_bp = finite(obs.systolic_bp).map(|v| chart::systolic_bp(whole(v)));
    let pulse = finite(obs.pulse).map(|v| chart::pulse(whole(v)));
    let consciousness = obs.consciousness.map(|o| chart::consciousness(o.value));
    let temperature = finite(obs.temperature).map(|v| chart::temperature_tenths(tenths(v)));

    let subs = [
        (Parameter::RespirationRate, respiration_rate),
        (Parameter::Spo2, spo2),
        (Parameter::AirOrOxygen, air_or_oxygen),
        (Parameter::SystolicBp, systolic_bp),
        (Parameter::Pulse, pulse),
        (Parameter::Consciousness, consciousness),
        (Parameter::Temperature, temperature),
    ];
    let total = subs.iter().filter_map(|(_, s)| *s).sum::<u8>();
    let red_score = subs.iter().any(|(_, s)| *s == Some(3));
    let missing = subs
        .iter()
        .filter(|(_, s)| s.is_none())
        .map(|(p, _)| *p)
        .collect();

    Score {
        scale,
        respiration_rate,
        spo2,
        air_or_oxygen,
        systolic_bp,
        pulse,
        consciousness,
        temperature,
        total,
        red_score,
        band: RiskBand::from_total(total, red_score),
        missing,
    }
}

/// A finite value rounded to a whole number, half away from zero.
///
/// Every half (k + 0.5) is exact in binary, so `f64::round` is already the
/// decimal rounding here. The cast saturates, and any value that far out
/// lands in an end band of the chart anyway.
fn whole(v: f64) -> i64 {
    v.round() as i64
}

/// A finite value in tenths, rounded half away from zero as its decimal
/// form would be.
///
/// 35.05 is stored as 35.04999999999999715…; `(v * 10.0).round()` happens
/// to give 351 for it and for every x.x5 up to 20 000 (tested), but only
/// because the multiplication's rounding lands on 350.5 exactly, and error
/// analysis does not promise that (ten times the storage error can reach
/// 5/8 of an ulp of the product). So the candidate is checked against the
/// half-tenth boundaries around it, each computed as `(2t ± 1) / 20`: one
/// correctly rounded division of exact integers, which is the very double
/// that parsing "35.05" gives, so a value sent as 35.05 is on its boundary
/// and rounds up. One step of correction suffices: the candidate is off by
/// at most one.
fn tenths(v: f64) -> i64 {
    let mag = v.abs();
    let mut t = (mag * 10.0).round();
    if mag >= (2.0 * t + 1.0) / 20.0 {
        t += 1.0;
    } else if mag < (2.0 * t - 1.0) / 20.0 {
        t -= 1.0;
    }
    let t = t as i64;
    if v < 0.0 { -t } else { t }
}

/// The rows of RCP Chart 1, on values already at the chart's resolution.
mod chart {
    use super::{Consciousness, Oxygen};

    pub(super) const fn respiration_rate(v: i64) -> u8 {
        match v {
            ..=8 => 3,
            9..=11 => 1,
            12..=20 => 0,
            21..=24 => 2,
            25.. => 3,
        }
    }

    pub(super) const fn spo2_scale_1(v: i64) -> u8 {
        match v {
            ..=91 => 3,
            92..=93 => 2,
            94..=95 => 1,
            96.. => 0,
        }
    }

    /// Scale 2: below the 88–92 % target scores as Scale 1 does below its
    /// target, shifted down; above it scores only on oxygen, because a
    /// high saturation on oxygen in hypercapnic failure means too much
    /// oxygen (risk of CO2 retention), while on air it is harmless.
    pub(super) const fn spo2_scale_2(v: i64, oxygen: Oxygen) -> u8 {
        match (v, oxygen) {
            (..=83, _) => 3,
            (84..=85, _) => 2,
            (86..=87, _) => 1,
            (88..=92, _) => 0,
            (93.., Oxygen::Air) => 0,
            (93..=94, Oxygen::Supplemental) => 1,
            (95..=96, Oxygen::Supplemental) => 2,
            (97.., Oxygen::Supplemental) => 3,
        }
    }

    pub(super) const fn air_or_oxygen(o: Oxygen) -> u8 {
        match o {
            Oxygen::Air => 0,
            Oxygen::Supplemental => 2,
        }
    }

    pub(super) const fn systolic_bp(v: i64) -> u8 {
        match v {
            ..=90 => 3,
            91..=100 => 2,
            101..=110 => 1,
            111..=219 => 0,
            220.. => 3,
        }
    }

    pub(super) const fn pulse(v: i64) -> u8 {
        match v {
            ..=40 => 3,
            41..=50 => 1,
            51..=90 => 0,
            91..=110 => 1,
            111..=130 => 2,
            131.. => 3,
        }
    }

    pub(super) const fn consciousness(c: Consciousness) -> u8 {
        match c {
            Consciousness::Alert => 0,
            Consciousness::NewConfusion
            | Consciousness::Voice
            | Consciousness::Pain
            | Consciousness::Unresponsive => 3,
        }
    }

    /// Temperature in tenths of a degree: ≤35.0, 35.1–36.0, 36.1–38.0,
    /// 38.1–39.0, ≥39.1.
    pub(super) const fn temperature_tenths(t: i64) -> u8 {
        match t {
            ..=350 => 3,
            351..=360 => 1,
            361..=380 => 0,
            381..=390 => 1,
            391.. => 2,
        }
    }
}

#[cfg(test)]
mod tests;
