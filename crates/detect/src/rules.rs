//! Sustained single-vital rules that do not wait for a full NEWS2 set:
//! the emergency rules — SpO2 too low, heart or pulse rate too low or too
//! high — and a sustained fever (not an emergency: severity Low), each
//! held for a configurable time, with clearing hysteresis.
//!
//! # Why thresholds *and* a delay
//!
//! Most monitor alarms are false or not actionable; the two levers that cut
//! them without missing the events that matter are a lower threshold and an
//! alarm delay (the AACN practice alert "Managing Alarms in Acute Care
//! Across the Life Span: Electrocardiography and Pulse Oximetry", 2018:
//! "customize delay and threshold settings" on SpO2 monitors,
//! <https://www.aacn.org/newsroom/practice-alert-outlines-alarm-management-strategies>).
//!
//! * Taenzer et al., "Impact of pulse oximetry surveillance on rescue
//!   events and intensive care unit transfers", *Anesthesiology* 2010;
//!   112:282–7 (Dartmouth-Hitchcock's surveillance system paged nurses at
//!   SpO2 80 % with a 15 s delay; rescue events fell from 3.4 to 1.2 per
//!   1,000 discharges):
//!   <https://www.researchgate.net/publication/41123510_Impact_of_Pulse_Oximetry_Surveillance_on_Rescue_Events_and_Intensive_Care_Unit_Transfers>.
//! * Rheineck-Leyssius et al. (cited in the Masimo analysis below): a 15 s
//!   delay on a 90 % threshold cut low-SpO2 alarms by 60 %; Johns Hopkins
//!   cut alarms by 63 % moving the threshold from 90 to 88 %:
//!   <https://meridian.allenpress.com/bit/article/45/s1/46/142119/An-Evidence-Based-Approach-to-Reduce-Nuisance>.
//! * Lansdowne et al., *BMC Nursing* 2016;15:36: thresholds 84–90 % and
//!   delays 10–60 s on 1 Hz ICU SpO2; lower thresholds and longer delays
//!   both cut alarms, most alarms come from a few patients:
//!   <https://pmc.ncbi.nlm.nih.gov/articles/PMC4891882>.
//! * Medical-emergency-team calling criteria (adult inpatients): pulse
//!   < 40 or > 140 "with new symptoms, or any rate > 160", and "new pulse
//!   oximeter reading < 85 % … without known chronic hypoxia" (University
//!   of Pittsburgh, after DeVita et al., *Qual Saf Health Care* 2004):
//!   <https://pmc.ncbi.nlm.nih.gov/articles/PMC3109511/table/T2>; pulse
//!   < 40 appears in most published MET criteria (Hourihan; Bellomo;
//!   Jones; Lee), upper limits range 120–140:
//!   <https://www.medicalalgorithms.com/medical-emergency-team-criteria>.
//!
//! # Defaults
//!
//! | rule | threshold | sustain | clear margin | clear time |
//! |---|---|---|---|---|
//! | hypoxaemia, Scale 1 | SpO2 < 85 % | 30 s | +3 % | 60 s |
//! | hypoxaemia, Scale 2 | SpO2 < 80 % | 30 s | +3 % | 60 s |
//! | bradycardia | rate < 40 /min | 60 s | +5 /min | 60 s |
//! | tachycardia | rate > 150 /min | 60 s | −10 /min | 60 s |
//!
//! * SpO2 85 %: the MET criterion "< 85 % without known chronic hypoxia";
//!   30 s sits between the 15 s of Taenzer/Rheineck-Leyssius and the
//!   45 s of Lansdowne's least noisy setting. A pulse oximeter already
//!   averages ~8 s, so 30 s of readings is ~40 s of signal.
//! * Scale 2 (hypercapnic respiratory failure, prescribed target
//!   88–92 %): the MET criterion excludes "known chronic hypoxia", so
//!   these patients get Taenzer's 80 %, below NEWS2 Scale 2's red score
//!   (≤ 83 %), which NEWS2 reports separately. 85 % would page for a COPD
//!   patient's ordinary exertion.
//! * Rate < 40: the MET criterion; a non-athlete's sinus rate seldom goes
//!   below 40 even asleep. Rate > 150: between the MET's "> 140 with
//!   symptoms" (a gateway cannot see symptoms) and "any rate > 160"; a
//!   home patient exercising reaches 140. Rates between are NEWS2's (pulse
//!   ≤ 40 or ≥ 131 scores 3). 60 s: rates are less noisy than SpO2, and
//!   a paroxysm shorter than a minute is not an emergency page.
//! * Clear margins and times stop a value hovering at the threshold from
//!   raising a series of alerts: once active, the rule clears only after
//!   a full clear time on the good side of threshold + margin.
//!
//! # Sustained fever
//!
//! | rule | threshold | sustain | clear margin | clear time | severity |
//! |---|---|---|---|---|---|
//! | fever | temperature > 38.0 °C | 30 min | −0.3 °C | 30 min | Low |
//!
//! * 38.0 °C: NEWS2 scores a temperature from 38.1 °C (Chart 1: 38.1–39.0
//!   scores 1, ≥ 39.1 scores 2), and 38.0 °C (100.4 °F) is the usual
//!   definition of fever outside intensive care (the US CDC's "measured
//!   temperature of 100.4 °F [38 °C] or greater"; the SCCM/IDSA ICU
//!   guideline, O'Grady et al., *Crit Care Med* 2008;36:1330–49, uses
//!   38.3 °C where a fever sets off costly investigations). Older adults
//!   often do not reach it (IDSA long-term-care guideline, High et al.,
//!   *Clin Infect Dis* 2009;48:149–71: "an increase in temperature of
//!   more than 1.1 °C over the baseline"), which is the personal
//!   baseline's job ([`crate::baseline`]).
//! * 30 min: a temperature patch reads every minute or so and a skin
//!   sensor warms under a blanket or in a hot room; a fever is a state of
//!   hours, so half an hour of readings above 38 °C costs nothing
//!   clinically and rules out the transients.
//! * Severity Low: a fever alone asks for a review within hours, not an
//!   emergency response (NEWS2 itself scores it 1–2). Its own
//!   `max_gap_ms` (10 min) because the rules' 10 s would restart the
//!   timer between two readings of a patch reporting every minute.

use crate::condition::{Condition, ConditionKey, ConditionKind, Evidence, Severity};
use crate::debounce::{Debounce, Transition};
use crate::news2::Spo2Scale;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;
use vitalgate_devices::{Reading, Timestamp, Vital};

/// Most evidence readings kept per condition.
const EVIDENCE: usize = 5;

/// SpO2 below a threshold, sustained. See the module documentation for
/// the defaults and their sources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HypoxaemiaConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// SpO2 (%) below which the rule holds, for patients on Scale 1.
    pub below: f64,
    /// SpO2 (%) below which the rule holds, for patients on Scale 2
    /// (target 88–92 %).
    pub below_scale_2: f64,
    /// How long it must hold before the condition is raised, ms.
    pub sustain_ms: i64,
    /// Points above the threshold SpO2 must reach to count as cleared.
    pub clear_margin: f64,
    /// How long it must stay cleared before the condition clears, ms.
    pub clear_ms: i64,
}

/// Body temperature above a threshold, sustained: a fever (severity Low).
/// See the module documentation for the defaults and their sources.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeverConfig {
    /// Whether the rule runs.
    pub enabled: bool,
    /// Temperature (°C) above which the rule holds.
    pub above: f64,
    /// How long it must hold before the condition is raised, ms.
    pub sustain_ms: i64,
    /// Degrees below the threshold the temperature must fall to count as
    /// cleared.
    pub clear_margin: f64,
    /// How long it must stay cleared before the condition clears, ms.
    pub clear_ms: i64,
    /// Longest gap between two temperature readings that still counts as
    /// continuous, ms (thermometers report every minute or slower).
    pub max_gap_ms: i64,
}

impl Default for FeverConfig {
    fn default() -> Self {
        FeverConfig {
            enabled: true,
            above: 38.0,
            sustain_ms: 30 * 60_000,
            clear_margin: 0.3,
            clear_ms: 30 * 60_000,
            max_gap_ms: 10 * 60_000,
        }
    }
}

impl Default for HypoxaemiaConfig {
    fn default() -> Self {
        HypoxaemiaConfig {
            enabled: true,
            below: 85.0,
            below_scale_2: 80.0,
            sustain_ms: 30_000,
            clear_margin: 3.0,
            clear_ms: 60_000,
        }
    }
}

/// Heart or pulse rate beyond a threshold, sustained.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Whether the rule runs.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// The threshold, /min (below it for bradycardia, above for
    /// tachycardia).
    pub threshold: f64,
    /// How long it must hold before the condition is raised, ms.
    pub sustain_ms: i64,
    /// How far back inside the normal side the rate must come to count as
    /// cleared, /min.
    pub clear_margin: f64,
    /// How long it must stay cleared before the condition clears, ms.
    pub clear_ms: i64,
}

fn yes() -> bool {
    true
}

impl RateConfig {
    /// The default bradycardia rule: below 40/min for 60 s.
    pub const BRADYCARDIA: RateConfig = RateConfig {
        enabled: true,
        threshold: 40.0,
        sustain_ms: 60_000,
        clear_margin: 5.0,
        clear_ms: 60_000,
    };
    /// The default tachycardia rule: above 150/min for 60 s.
    pub const TACHYCARDIA: RateConfig = RateConfig {
        enabled: true,
        threshold: 150.0,
        sustain_ms: 60_000,
        clear_margin: 10.0,
        clear_ms: 60_000,
    };
}

/// All sustained rules of one patient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// SpO2 too low.
    pub hypoxaemia: HypoxaemiaConfig,
    /// Heart or pulse rate too low.
    pub bradycardia: RateConfig,
    /// Heart or pulse rate too high.
    pub tachycardia: RateConfig,
    /// Body temperature too high (severity Low).
    pub fever: FeverConfig,
    /// Longest gap between two readings of a vital that still counts as
    /// continuous, ms. A longer gap restarts an onset or clearing timer:
    /// no readings is no evidence either way. 10 s covers a 1 Hz device
    /// losing a few samples.
    pub max_gap_ms: i64,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            hypoxaemia: HypoxaemiaConfig::default(),
            bradycardia: RateConfig::BRADYCARDIA,
            tachycardia: RateConfig::TACHYCARDIA,
            fever: FeverConfig::default(),
            max_gap_ms: 10_000,
        }
    }
}

impl RulesConfig {
    /// The sustain time of the rule reporting `kind` (for measuring alert
    /// delay beyond it); `None` for kinds these rules do not report.
    pub fn sustain_ms(&self, kind: ConditionKind) -> Option<i64> {
        match kind {
            ConditionKind::SustainedHypoxaemia => Some(self.hypoxaemia.sustain_ms),
            ConditionKind::SustainedBradycardia => Some(self.bradycardia.sustain_ms),
            ConditionKind::SustainedTachycardia => Some(self.tachycardia.sustain_ms),
            ConditionKind::SustainedFever => Some(self.fever.sustain_ms),
            _ => None,
        }
    }
}

/// Which side of the threshold is the emergency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Below,
    Above,
}

/// One vital's debounce for one rule.
#[derive(Debug, Clone)]
struct Track {
    vital: Vital,
    debounce: Debounce,
    evidence: VecDeque<Evidence>,
}

/// One rule over one or more source vitals (heart rate and pulse rate
/// both feed the rate rules). Each vital is debounced on its own series,
/// so an ECG strap and an oximeter interleaving their readings do not
/// break each other's run; the condition is active while any source's is.
#[derive(Debug, Clone)]
struct Rule {
    kind: ConditionKind,
    severity: Severity,
    side: Side,
    threshold: f64,
    clear_margin: f64,
    enabled: bool,
    tracks: Vec<Track>,
}

impl Rule {
    fn new(
        kind: ConditionKind,
        side: Side,
        vitals: &[Vital],
        threshold: f64,
        (sustain_ms, clear_margin, clear_ms, enabled): (i64, f64, i64, bool),
        max_gap_ms: i64,
    ) -> Rule {
        Rule {
            kind,
            severity: match kind {
                ConditionKind::SustainedFever => Severity::Low,
                _ => Severity::High,
            },
            side,
            threshold,
            clear_margin: clear_margin.abs(),
            enabled,
            tracks: vitals
                .iter()
                .map(|&vital| Track {
                    vital,
                    debounce: Debounce::new(sustain_ms, clear_ms, max_gap_ms),
                    evidence: VecDeque::new(),
                })
                .collect(),
        }
    }

    fn is_active(&self) -> bool {
        self.tracks.iter().any(|t| t.debounce.is_active())
    }

    fn since(&self) -> Option<Timestamp> {
        self.tracks.iter().filter_map(|t| t.debounce.since()).min()
    }

    /// A non-finite value never breaches nor clears.
    fn judge(&self, v: f64) -> (bool, bool) {
        if !v.is_finite() {
            return (false, false);
        }
        match self.side {
            Side::Below => (v < self.threshold, v >= self.threshold + self.clear_margin),
            Side::Above => (v > self.threshold, v <= self.threshold - self.clear_margin),
        }
    }

    fn push(&mut self, patient: &Arc<str>, r: &Reading) -> Option<Condition> {
        if !self.enabled {
            return None;
        }
        let (breach, cleared) = self.judge(r.value);
        let was = self.is_active();
        let i = self.tracks.iter().position(|t| t.vital == r.vital)?;
        let t = r.time();
        let track = &mut self.tracks[i];
        if breach {
            track.evidence.push_back(Evidence {
                device: Arc::clone(&r.device),
                vital: r.vital,
                value: r.value,
                time: t,
                quality: r.quality,
            });
            if track.evidence.len() > EVIDENCE {
                track.evidence.pop_front();
            }
        }
        let transition = track.debounce.update(t, breach, cleared);
        let evidence: Vec<Evidence> = track.evidence.iter().cloned().collect();
        if !track.debounce.is_active() && !breach {
            track.evidence.clear();
        }
        let now = self.is_active();
        match transition {
            Some(Transition::Raised { since }) if !was => {
                Some(self.report(patient, true, since, t, evidence))
            }
            Some(Transition::Cleared { since }) if !now => {
                Some(self.report(patient, false, since, t, evidence))
            }
            _ => None,
        }
    }

    fn interrupt(&mut self, vital: Vital) {
        for t in self.tracks.iter_mut().filter(|t| t.vital == vital) {
            t.debounce.interrupt();
        }
    }

    fn report(
        &self,
        patient: &Arc<str>,
        active: bool,
        since: Timestamp,
        at: Timestamp,
        evidence: Vec<Evidence>,
    ) -> Condition {
        let since = self.since().map_or(since, |s| s.min(since));
        let (what, unit) = match self.kind {
            ConditionKind::SustainedHypoxaemia => ("SpO2", " %"),
            ConditionKind::SustainedFever => ("temperature", " °C"),
            _ => ("heart rate", "/min"),
        };
        let cmp = match self.side {
            Side::Below => "below",
            Side::Above => "above",
        };
        let secs = (at.millis() - since.millis()) / 1_000;
        let summary = if active {
            format!("{what} {cmp} {}{unit} for {secs} s", self.threshold)
        } else {
            format!(
                "{what} back from {cmp} {}{unit} (condition lasted {secs} s)",
                self.threshold
            )
        };
        Condition {
            key: ConditionKey {
                patient: Arc::clone(patient),
                kind: self.kind,
                device: None,
            },
            active,
            severity: self.severity,
            since,
            at,
            evidence,
            summary,
            news2: None,
        }
    }
}

/// The sustained rules of one patient (emergency rules and fever). Pure:
/// feed it valid readings in measurement-time order; it reports each
/// condition once when raised and once when cleared.
///
/// Feed it only readings judged reliable (the monitor runs fault detection
/// first); it still ignores non-finite values.
#[derive(Debug, Clone)]
pub struct SustainedRules {
    patient: Arc<str>,
    rules: [Rule; 4],
}

impl SustainedRules {
    /// The rules of `patient` on SpO2 `scale`.
    pub fn new(patient: Arc<str>, config: &RulesConfig, scale: Spo2Scale) -> SustainedRules {
        let h = &config.hypoxaemia;
        let spo2_threshold = match scale {
            Spo2Scale::One => h.below,
            Spo2Scale::Two => h.below_scale_2,
        };
        let rate = |c: &RateConfig| (c.sustain_ms, c.clear_margin, c.clear_ms, c.enabled);
        let f = &config.fever;
        let rates = [Vital::HeartRate, Vital::PulseRate];
        SustainedRules {
            patient,
            rules: [
                Rule::new(
                    ConditionKind::SustainedHypoxaemia,
                    Side::Below,
                    &[Vital::Spo2],
                    spo2_threshold,
                    (h.sustain_ms, h.clear_margin, h.clear_ms, h.enabled),
                    config.max_gap_ms,
                ),
                Rule::new(
                    ConditionKind::SustainedBradycardia,
                    Side::Below,
                    &rates,
                    config.bradycardia.threshold,
                    rate(&config.bradycardia),
                    config.max_gap_ms,
                ),
                Rule::new(
                    ConditionKind::SustainedTachycardia,
                    Side::Above,
                    &rates,
                    config.tachycardia.threshold,
                    rate(&config.tachycardia),
                    config.max_gap_ms,
                ),
                Rule::new(
                    ConditionKind::SustainedFever,
                    Side::Above,
                    &[Vital::BodyTemperature],
                    f.above,
                    (f.sustain_ms, f.clear_margin, f.clear_ms, f.enabled),
                    f.max_gap_ms,
                ),
            ],
        }
    }

    /// Take one reliable reading; the conditions it raised or cleared.
    pub fn push(&mut self, reading: &Reading) -> Vec<Condition> {
        self.rules
            .iter_mut()
            .filter_map(|rule| rule.push(&self.patient, reading))
            .collect()
    }

    /// Forget pending onsets and clearing runs fed by `vital`: the readings
    /// behind them were judged unreliable after the fact (a motion artifact
    /// detected a few samples into an SpO2 drop).
    pub fn interrupt(&mut self, vital: Vital) {
        for rule in &mut self.rules {
            rule.interrupt(vital);
        }
    }

    /// The kinds currently active.
    pub fn active(&self) -> impl Iterator<Item = ConditionKind> + '_ {
        self.rules.iter().filter(|r| r.is_active()).map(|r| r.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_devices::Quality;

    const T0: i64 = 1_763_708_400_000;

    fn reading(vital: Vital, value: f64, ms: i64) -> Reading {
        Reading {
            device: Arc::from("ox-1"),
            patient: Arc::from("p-1"),
            vital,
            value,
            device_time: Some(Timestamp(T0 + ms)),
            gateway_time: Timestamp(T0 + ms + 30),
            quality: Quality::NONE,
        }
    }

    fn rules(scale: Spo2Scale) -> SustainedRules {
        SustainedRules::new(Arc::from("p-1"), &RulesConfig::default(), scale)
    }

    /// Feed `values` at 1 Hz from `from_s`, collecting (kind, active, at).
    fn feed(
        r: &mut SustainedRules,
        vital: Vital,
        from_s: i64,
        values: &[f64],
    ) -> Vec<(ConditionKind, bool, i64)> {
        let mut out = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            let ms = (from_s + i as i64) * 1_000;
            for c in r.push(&reading(vital, v, ms)) {
                out.push((c.key.kind, c.active, c.at.millis() - T0));
            }
        }
        out
    }

    #[test]
    fn spo2_just_below_the_threshold_holds_and_exactly_at_it_does_not() {
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::Spo2, 0, &[85.0; 60]).is_empty());
        let mut r = rules(Spo2Scale::One);
        let out = feed(&mut r, Vital::Spo2, 0, &[84.9; 60]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedHypoxaemia, true, 30_000)]
        );
    }

    #[test]
    fn the_condition_is_raised_exactly_at_the_sustain_time_not_a_millisecond_before() {
        for (last_ms, raised) in [(29_999, false), (30_000, true), (30_001, true)] {
            let mut r = rules(Spo2Scale::One);
            assert!(r.push(&reading(Vital::Spo2, 80.0, 0)).is_empty());
            assert!(r.push(&reading(Vital::Spo2, 80.0, 9_000)).is_empty());
            assert!(r.push(&reading(Vital::Spo2, 80.0, 18_000)).is_empty());
            assert!(r.push(&reading(Vital::Spo2, 80.0, 27_000)).is_empty());
            let out = r.push(&reading(Vital::Spo2, 80.0, last_ms));
            assert_eq!(out.len(), usize::from(raised), "at {last_ms} ms");
            if let Some(c) = out.first() {
                assert!(c.active);
                assert_eq!(c.since, Timestamp(T0));
                assert_eq!(c.severity, Severity::High);
                assert_eq!(c.key.device, None);
                assert!(!c.evidence.is_empty() && c.evidence.len() <= EVIDENCE);
            }
        }
    }

    #[test]
    fn a_breach_interrupted_by_one_normal_value_starts_over() {
        let mut r = rules(Spo2Scale::One);
        let mut values = vec![80.0; 29];
        values.push(90.0);
        values.extend([80.0; 29]);
        assert!(feed(&mut r, Vital::Spo2, 0, &values).is_empty());
    }

    #[test]
    fn a_value_hovering_around_the_threshold_gives_one_condition_not_a_series() {
        let mut r = rules(Spo2Scale::One);
        // 40 s below, then 10 minutes alternating 84/86/87 around 85, then
        // back to 95 for two minutes.
        let mut values = vec![83.0; 40];
        for i in 0..600 {
            values.push([84.0, 86.0, 87.0][i % 3]);
        }
        values.extend([95.0; 120]);
        let out = feed(&mut r, Vital::Spo2, 0, &values);
        assert_eq!(
            out,
            vec![
                (ConditionKind::SustainedHypoxaemia, true, 30_000),
                (ConditionKind::SustainedHypoxaemia, false, 700_000),
            ]
        );
    }

    #[test]
    fn clearing_needs_the_margin_for_the_whole_clear_time() {
        let mut r = rules(Spo2Scale::One);
        let mut values = vec![80.0; 31];
        // 87 is above the threshold but inside the 3-point margin.
        values.extend([87.0; 120]);
        let out = feed(&mut r, Vital::Spo2, 0, &values);
        assert_eq!(out.len(), 1, "still active in the margin band: {out:?}");
        // 88 is threshold + margin: clears after exactly 60 s of it.
        let out = feed(&mut r, Vital::Spo2, 151, &[88.0; 61]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedHypoxaemia, false, 211_000)]
        );
    }

    #[test]
    fn a_scale_2_patient_at_the_usual_copd_saturation_raises_nothing_but_below_80_does() {
        let mut r = rules(Spo2Scale::Two);
        assert!(feed(&mut r, Vital::Spo2, 0, &[84.0; 600]).is_empty());
        let out = feed(&mut r, Vital::Spo2, 600, &[79.0; 40]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedHypoxaemia, true, 630_000)]
        );
    }

    #[test]
    fn bradycardia_edges_39_raises_and_40_does_not() {
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::HeartRate, 0, &[40.0; 120]).is_empty());
        let out = feed(&mut r, Vital::HeartRate, 120, &[39.0; 61]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedBradycardia, true, 180_000)]
        );
    }

    #[test]
    fn tachycardia_edges_151_raises_and_150_does_not_from_either_rate_source() {
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::PulseRate, 0, &[150.0; 120]).is_empty());
        let out = feed(&mut r, Vital::PulseRate, 120, &[151.0; 61]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedTachycardia, true, 180_000)]
        );
    }

    #[test]
    fn heart_rate_and_pulse_rate_both_breaching_give_one_condition() {
        let mut r = rules(Spo2Scale::One);
        let mut out = Vec::new();
        for s in 0..300 {
            out.extend(r.push(&reading(Vital::HeartRate, 160.0, s * 1_000)));
            out.extend(r.push(&reading(Vital::PulseRate, 161.0, s * 1_000 + 500)));
        }
        for s in 300..400 {
            out.extend(r.push(&reading(Vital::HeartRate, 90.0, s * 1_000)));
            out.extend(r.push(&reading(Vital::PulseRate, 90.0, s * 1_000 + 500)));
        }
        let summary: Vec<(bool, i64)> =
            out.iter().map(|c| (c.active, c.at.millis() - T0)).collect();
        assert_eq!(summary, vec![(true, 60_000), (false, 360_500)]);
    }

    #[test]
    fn a_gap_in_readings_restarts_the_sustain_timer() {
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::Spo2, 0, &[80.0; 20]).is_empty());
        // 15 s without readings (> max gap 10 s), then 29 s more: not yet.
        assert!(feed(&mut r, Vital::Spo2, 35, &[80.0; 30]).is_empty());
        let out = feed(&mut r, Vital::Spo2, 65, &[80.0; 1]);
        assert_eq!(
            out,
            vec![(ConditionKind::SustainedHypoxaemia, true, 65_000)]
        );
    }

    #[test]
    fn an_interrupt_discards_a_pending_onset() {
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::Spo2, 0, &[80.0; 25]).is_empty());
        r.interrupt(Vital::Spo2);
        assert!(feed(&mut r, Vital::Spo2, 25, &[80.0; 30]).is_empty());
        assert_eq!(feed(&mut r, Vital::Spo2, 55, &[80.0; 1]).len(), 1);
    }

    #[test]
    fn disabled_rules_and_non_finite_values_raise_nothing() {
        let config = RulesConfig {
            hypoxaemia: HypoxaemiaConfig {
                enabled: false,
                ..HypoxaemiaConfig::default()
            },
            ..RulesConfig::default()
        };
        let mut r = SustainedRules::new(Arc::from("p-1"), &config, Spo2Scale::One);
        assert!(feed(&mut r, Vital::Spo2, 0, &[70.0; 100]).is_empty());
        let mut r = rules(Spo2Scale::One);
        assert!(feed(&mut r, Vital::HeartRate, 0, &[f64::NAN; 100]).is_empty());
    }

    /// A thermometer reading every minute from `from_min`.
    fn feed_temperature(
        r: &mut SustainedRules,
        from_min: i64,
        values: &[f64],
    ) -> Vec<(ConditionKind, bool, i64, Severity)> {
        let mut out = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            let ms = (from_min + i as i64) * 60_000;
            for c in r.push(&reading(Vital::BodyTemperature, v, ms)) {
                out.push((c.key.kind, c.active, c.at.millis() - T0, c.severity));
            }
        }
        out
    }

    #[test]
    fn a_temperature_above_38_for_half_an_hour_is_a_fever_of_low_severity() {
        let mut r = rules(Spo2Scale::One);
        assert!(
            feed_temperature(&mut r, 0, &[38.0; 90]).is_empty(),
            "38.0 is not above"
        );
        let out = feed_temperature(&mut r, 90, &[38.4; 40]);
        assert_eq!(
            out,
            vec![(
                ConditionKind::SustainedFever,
                true,
                120 * 60_000,
                Severity::Low
            )]
        );
        // Clears after 30 min at or below 37.7 °C, not in the margin band.
        assert!(feed_temperature(&mut r, 130, &[37.8; 60]).is_empty());
        let out = feed_temperature(&mut r, 190, &[37.6; 31]);
        assert_eq!(
            out,
            vec![(
                ConditionKind::SustainedFever,
                false,
                220 * 60_000,
                Severity::Low
            )]
        );
    }

    #[test]
    fn a_fever_shorter_than_half_an_hour_or_with_a_long_gap_is_not_raised() {
        let mut r = rules(Spo2Scale::One);
        let mut values = vec![38.6; 29];
        values.push(37.0);
        values.extend([38.6; 29]);
        assert!(feed_temperature(&mut r, 0, &values).is_empty());
        // Twenty readings, a 15-minute silence (> the 10-min gap), twenty more.
        let mut r = rules(Spo2Scale::One);
        assert!(feed_temperature(&mut r, 0, &[38.6; 20]).is_empty());
        assert!(feed_temperature(&mut r, 35, &[38.6; 20]).is_empty());
    }

    #[test]
    fn the_config_has_defaults_and_rejects_unknown_keys() {
        let c: RulesConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(c, RulesConfig::default());
        let c: RulesConfig =
            serde_json::from_str(r#"{"hypoxaemia":{"below":88.0},"max_gap_ms":5000}"#).unwrap();
        assert_eq!(c.hypoxaemia.below, 88.0);
        assert_eq!(c.hypoxaemia.sustain_ms, 30_000);
        assert!(serde_json::from_str::<RulesConfig>(r#"{"hypoxemia":{}}"#).is_err());
    }
}
