//! The chart, edge by edge, and the aggregate rules.

use super::*;

const T: Timestamp = Timestamp(1_763_708_400_000);

fn vital_of(parameter: Parameter) -> Vital {
    match parameter {
        Parameter::RespirationRate => Vital::RespiratoryRate,
        Parameter::Spo2 => Vital::Spo2,
        Parameter::SystolicBp => Vital::SystolicBp,
        Parameter::Pulse => Vital::HeartRate,
        Parameter::Temperature => Vital::BodyTemperature,
        Parameter::AirOrOxygen | Parameter::Consciousness => {
            panic!("{parameter} is not a numeric reading")
        }
    }
}

/// Observations holding only `parameter` = `value`.
fn only(parameter: Parameter, value: f64) -> Observations {
    let o = Some(Observed::reading(value, T, vital_of(parameter)));
    let mut obs = Observations::default();
    match parameter {
        Parameter::RespirationRate => obs.respiration_rate = o,
        Parameter::Spo2 => obs.spo2 = o,
        Parameter::SystolicBp => obs.systolic_bp = o,
        Parameter::Pulse => obs.pulse = o,
        Parameter::Temperature => obs.temperature = o,
        Parameter::AirOrOxygen | Parameter::Consciousness => unreachable!(),
    }
    obs
}

/// Check `parameter`'s sub-score for each `(value, expected)` row.
fn check(parameter: Parameter, scale: Spo2Scale, oxygen: Option<Oxygen>, rows: &[(f64, u8)]) {
    for &(value, expected) in rows {
        let mut obs = only(parameter, value);
        obs.oxygen = oxygen.map(|o| Observed::configured(o, T));
        let s = score(&obs, scale);
        assert_eq!(
            s.sub_score(parameter),
            Some(expected),
            "{parameter} = {value} ({scale:?}, oxygen {oxygen:?}) should score {expected}"
        );
    }
}

/// A complete set in which every parameter scores 0.
fn normal() -> Observations {
    Observations {
        respiration_rate: Some(Observed::reading(16.0, T, Vital::RespiratoryRate)),
        spo2: Some(Observed::reading(97.0, T, Vital::Spo2)),
        oxygen: Some(Observed::configured(Oxygen::Air, T)),
        systolic_bp: Some(Observed::reading(120.0, T, Vital::SystolicBp)),
        pulse: Some(Observed::reading(70.0, T, Vital::HeartRate)),
        consciousness: Some(Observed::configured(Consciousness::Alert, T)),
        temperature: Some(Observed::reading(37.0, T, Vital::BodyTemperature)),
    }
}

fn set(o: &mut Option<Observed<f64>>, value: f64) {
    if let Some(o) = o {
        o.value = value;
    }
}

#[test]
fn respiration_rate_scores_both_sides_of_every_band_edge() {
    check(
        Parameter::RespirationRate,
        Spo2Scale::One,
        None,
        &[
            (1.0, 3),
            (8.0, 3),
            (9.0, 1),
            (11.0, 1),
            (12.0, 0),
            (20.0, 0),
            (21.0, 2),
            (24.0, 2),
            (25.0, 3),
            (60.0, 3),
        ],
    );
}

#[test]
fn spo2_scale_1_scores_both_sides_of_every_band_edge_on_air_and_on_oxygen() {
    let rows = [
        (70.0, 3),
        (91.0, 3),
        (92.0, 2),
        (93.0, 2),
        (94.0, 1),
        (95.0, 1),
        (96.0, 0),
        (100.0, 0),
    ];
    // On Scale 1 oxygen is scored in its own row, never in the SpO2 row.
    for oxygen in [None, Some(Oxygen::Air), Some(Oxygen::Supplemental)] {
        check(Parameter::Spo2, Spo2Scale::One, oxygen, &rows);
    }
}

#[test]
fn spo2_scale_2_scores_both_sides_of_every_band_edge_on_air() {
    check(
        Parameter::Spo2,
        Spo2Scale::Two,
        Some(Oxygen::Air),
        &[
            (70.0, 3),
            (83.0, 3),
            (84.0, 2),
            (85.0, 2),
            (86.0, 1),
            (87.0, 1),
            (88.0, 0),
            (92.0, 0),
            (93.0, 0),
            (94.0, 0),
            (96.0, 0),
            (97.0, 0),
            (100.0, 0),
        ],
    );
}

#[test]
fn spo2_scale_2_scores_both_sides_of_every_band_edge_on_oxygen() {
    check(
        Parameter::Spo2,
        Spo2Scale::Two,
        Some(Oxygen::Supplemental),
        &[
            (70.0, 3),
            (83.0, 3),
            (84.0, 2),
            (85.0, 2),
            (86.0, 1),
            (87.0, 1),
            (88.0, 0),
            (92.0, 0),
            (93.0, 1),
            (94.0, 1),
            (95.0, 2),
            (96.0, 2),
            (97.0, 3),
            (100.0, 3),
        ],
    );
}

#[test]
fn spo2_scale_2_with_oxygen_unknown_scores_as_on_air_and_lists_oxygen_missing() {
    check(
        Parameter::Spo2,
        Spo2Scale::Two,
        None,
        &[(87.0, 1), (92.0, 0), (93.0, 0), (97.0, 0)],
    );
    let s = score(&only(Parameter::Spo2, 97.0), Spo2Scale::Two);
    assert!(s.missing.contains(&Parameter::AirOrOxygen));
}

#[test]
fn air_scores_0_and_supplemental_oxygen_scores_2() {
    for (oxygen, expected) in [(Oxygen::Air, 0), (Oxygen::Supplemental, 2)] {
        let obs = Observations {
            oxygen: Some(Observed::configured(oxygen, T)),
            ..Observations::default()
        };
        for scale in [Spo2Scale::One, Spo2Scale::Two] {
            assert_eq!(
                score(&obs, scale).air_or_oxygen,
                Some(expected),
                "air_or_oxygen = {oxygen:?} ({scale:?})"
            );
        }
    }
}

#[test]
fn systolic_bp_scores_both_sides_of_every_band_edge() {
    check(
        Parameter::SystolicBp,
        Spo2Scale::One,
        None,
        &[
            (50.0, 3),
            (90.0, 3),
            (91.0, 2),
            (100.0, 2),
            (101.0, 1),
            (110.0, 1),
            (111.0, 0),
            (219.0, 0),
            (220.0, 3),
            (280.0, 3),
        ],
    );
}

#[test]
fn pulse_scores_both_sides_of_every_band_edge() {
    check(
        Parameter::Pulse,
        Spo2Scale::One,
        None,
        &[
            (20.0, 3),
            (40.0, 3),
            (41.0, 1),
            (50.0, 1),
            (51.0, 0),
            (90.0, 0),
            (91.0, 1),
            (110.0, 1),
            (111.0, 2),
            (130.0, 2),
            (131.0, 3),
            (220.0, 3),
        ],
    );
}

#[test]
fn consciousness_alert_scores_0_and_new_confusion_voice_pain_unresponsive_score_3() {
    for (c, expected) in [
        (Consciousness::Alert, 0),
        (Consciousness::NewConfusion, 3),
        (Consciousness::Voice, 3),
        (Consciousness::Pain, 3),
        (Consciousness::Unresponsive, 3),
    ] {
        let obs = Observations {
            consciousness: Some(Observed::configured(c, T)),
            ..Observations::default()
        };
        assert_eq!(
            score(&obs, Spo2Scale::One).consciousness,
            Some(expected),
            "consciousness = {c:?}"
        );
    }
}

#[test]
fn temperature_scores_both_sides_of_every_band_edge_to_one_decimal() {
    check(
        Parameter::Temperature,
        Spo2Scale::One,
        None,
        &[
            (30.0, 3),
            (35.0, 3),
            (35.1, 1),
            (36.0, 1),
            (36.1, 0),
            (38.0, 0),
            (38.1, 1),
            (39.0, 1),
            (39.1, 2),
            (42.0, 2),
        ],
    );
}

#[test]
fn values_between_chart_steps_round_half_away_from_zero_before_scoring() {
    let cases: &[(Parameter, &[(f64, u8)])] = &[
        (
            Parameter::RespirationRate,
            &[
                (8.49, 3),
                (8.5, 1),
                (11.49, 1),
                (11.5, 0),
                (20.49, 0),
                (20.5, 2),
                (24.49, 2),
                (24.5, 3),
            ],
        ),
        (
            Parameter::Spo2,
            &[
                (91.49, 3),
                (91.5, 2),
                (93.49, 2),
                (93.5, 1),
                (95.49, 1),
                (95.5, 0),
            ],
        ),
        (
            Parameter::SystolicBp,
            &[
                (90.49, 3),
                (90.5, 2),
                (100.5, 1),
                (110.49, 1),
                (110.5, 0),
                (219.49, 0),
                (219.5, 3),
            ],
        ),
        (
            Parameter::Pulse,
            &[
                (40.49, 3),
                (40.5, 1),
                (50.5, 0),
                (90.49, 0),
                (90.5, 1),
                (110.5, 2),
                (130.49, 2),
                (130.5, 3),
            ],
        ),
        (
            Parameter::Temperature,
            &[
                (35.04, 3),
                (35.049, 3),
                (35.05, 1),
                (36.04, 1),
                (36.05, 0),
                (38.04, 0),
                (38.05, 1),
                (39.04, 1),
                (39.05, 2),
            ],
        ),
    ];
    for (parameter, rows) in cases {
        check(*parameter, Spo2Scale::One, None, rows);
    }
    check(
        Parameter::Spo2,
        Spo2Scale::Two,
        Some(Oxygen::Supplemental),
        &[(92.49, 0), (92.5, 1), (96.49, 2), (96.5, 3)],
    );
}

#[test]
fn every_value_ending_in_a_half_tenth_rounds_up_as_its_decimal_form_would() {
    // Most x.x5 have no exact binary value; whichever side of the half
    // they are stored on, they must round as written.
    for k in 0..=500_i64 {
        let text = format!("{}.{}5", k / 10, k % 10);
        let v: f64 = text.parse().unwrap();
        assert_eq!(tenths(v), k + 1, "{text} should round to tenths {}", k + 1);
        assert_eq!(tenths(-v), -(k + 1), "-{text} rounds away from zero");
        let below = format!("{}.{}4999", k / 10, k % 10);
        let v: f64 = below.parse().unwrap();
        assert_eq!(tenths(v), k, "{below} should round to tenths {k}");
    }
}

#[test]
fn the_aggregate_thresholds_are_4_low_5_and_6_medium_7_high() {
    let mut obs = normal();
    set(&mut obs.pulse, 95.0); // 1
    set(&mut obs.respiration_rate, 22.0); // 2
    set(&mut obs.temperature, 38.5); // 1
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.red_score, s.band), (4, false, RiskBand::Low));

    set(&mut obs.systolic_bp, 105.0); // 1
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.band), (5, RiskBand::Medium));

    set(&mut obs.systolic_bp, 95.0); // 2
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.band), (6, RiskBand::Medium));

    set(&mut obs.spo2, 95.0); // 1
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.red_score, s.band), (7, false, RiskBand::High));
}

#[test]
fn a_single_3_with_a_total_of_4_or_less_is_low_medium() {
    let mut obs = normal();
    set(&mut obs.respiration_rate, 26.0); // 3
    let s = score(&obs, Spo2Scale::One);
    assert_eq!(
        (s.total, s.red_score, s.band),
        (3, true, RiskBand::LowMedium)
    );

    set(&mut obs.pulse, 95.0); // 1
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.band), (4, RiskBand::LowMedium));
}

#[test]
fn a_single_3_leaves_a_total_of_5_medium_and_of_7_high() {
    let mut obs = normal();
    set(&mut obs.respiration_rate, 26.0); // 3
    set(&mut obs.pulse, 95.0); // 1
    set(&mut obs.temperature, 38.5); // 1
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.red_score, s.band), (5, true, RiskBand::Medium));

    set(&mut obs.systolic_bp, 95.0); // 2
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.total, s.band), (7, RiskBand::High));
}

#[test]
fn the_band_of_every_total_follows_chart_3() {
    for total in 0..=20 {
        for red in [false, true] {
            let expected = match total {
                7.. => RiskBand::High,
                5..=6 => RiskBand::Medium,
                _ if red => RiskBand::LowMedium,
                _ => RiskBand::Low,
            };
            assert_eq!(
                RiskBand::from_total(total, red),
                expected,
                "total {total}, red score {red}"
            );
        }
    }
}

#[test]
fn a_fully_normal_set_scores_0_is_low_and_complete() {
    for scale in [Spo2Scale::One, Spo2Scale::Two] {
        let s = score(&normal(), scale);
        assert_eq!(s.total, 0, "{scale:?}");
        assert_eq!(s.band, RiskBand::Low);
        assert!(!s.red_score);
        assert!(s.is_complete());
        for p in Parameter::ALL {
            assert_eq!(s.sub_score(p), Some(0), "{p} ({scale:?})");
        }
        assert_eq!(s.monitoring(), "Minimum 12 hourly.");
    }
}

#[test]
fn the_worst_case_scores_20_on_either_scale() {
    let worst = Observations {
        respiration_rate: Some(Observed::reading(5.0, T, Vital::RespiratoryRate)),
        spo2: Some(Observed::reading(80.0, T, Vital::Spo2)),
        oxygen: Some(Observed::configured(Oxygen::Supplemental, T)),
        systolic_bp: Some(Observed::reading(80.0, T, Vital::SystolicBp)),
        pulse: Some(Observed::reading(150.0, T, Vital::PulseRate)),
        consciousness: Some(Observed::configured(Consciousness::Unresponsive, T)),
        temperature: Some(Observed::reading(34.0, T, Vital::BodyTemperature)),
    };
    for scale in [Spo2Scale::One, Spo2Scale::Two] {
        let s = score(&worst, scale);
        assert_eq!((s.total, s.band), (20, RiskBand::High), "{scale:?}");
        assert!(s.red_score && s.is_complete());
    }
    // On Scale 2 too much oxygen is as bad as too little.
    let mut over = worst;
    set(&mut over.spo2, 99.0);
    assert_eq!(score(&over, Spo2Scale::Two).total, 20);
}

#[test]
fn partial_data_scores_what_is_present_and_lists_what_is_missing() {
    let obs = Observations {
        spo2: Some(Observed::reading(91.0, T, Vital::Spo2)),
        pulse: Some(Observed::reading(95.0, T, Vital::PulseRate)),
        ..Observations::default()
    };
    let s = score(&obs, Spo2Scale::One);
    assert_eq!((s.spo2, s.pulse), (Some(3), Some(1)));
    assert_eq!(s.respiration_rate, None);
    assert_eq!((s.total, s.band), (4, RiskBand::LowMedium));
    assert!(!s.is_complete());
    assert_eq!(
        s.missing,
        [
            Parameter::RespirationRate,
            Parameter::AirOrOxygen,
            Parameter::SystolicBp,
            Parameter::Consciousness,
            Parameter::Temperature,
        ]
    );
}

#[test]
fn no_observations_at_all_score_0_with_all_seven_missing() {
    let s = score(&Observations::default(), Spo2Scale::One);
    assert_eq!((s.total, s.band), (0, RiskBand::Low));
    assert_eq!(s.missing, Parameter::ALL);
    assert!(!s.is_complete());
}

#[test]
fn a_value_that_is_not_a_finite_number_counts_as_missing() {
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut obs = normal();
        set(&mut obs.temperature, v);
        let s = score(&obs, Spo2Scale::One);
        assert_eq!(s.temperature, None, "temperature = {v}");
        assert_eq!(s.missing, [Parameter::Temperature]);
    }
}

#[test]
fn monitoring_follows_chart_4_row_by_row() {
    let mut obs = normal();
    assert_eq!(
        score(&obs, Spo2Scale::One).monitoring(),
        "Minimum 12 hourly."
    );
    set(&mut obs.pulse, 95.0); // total 1
    assert_eq!(
        score(&obs, Spo2Scale::One).monitoring(),
        "Minimum 4–6 hourly."
    );
    set(&mut obs.pulse, 135.0); // a single 3
    assert_eq!(
        score(&obs, Spo2Scale::One).monitoring(),
        "Minimum 1 hourly."
    );
    set(&mut obs.pulse, 115.0); // 2
    set(&mut obs.respiration_rate, 22.0); // 2
    set(&mut obs.temperature, 38.5); // 1: total 5
    assert_eq!(
        score(&obs, Spo2Scale::One).monitoring(),
        "Minimum 1 hourly."
    );
    set(&mut obs.systolic_bp, 95.0); // 2: total 7
    let s = score(&obs, Spo2Scale::One);
    assert_eq!(s.monitoring(), "Continuous monitoring of vital signs.");
    assert!(s.response().starts_with("Emergency response"));
}

#[test]
fn risk_bands_order_from_low_to_high_and_each_has_a_response() {
    let bands = [
        RiskBand::Low,
        RiskBand::LowMedium,
        RiskBand::Medium,
        RiskBand::High,
    ];
    assert!(bands.windows(2).all(|w| w[0] < w[1]));
    for b in bands {
        assert!(
            !b.response().is_empty() && !b.monitoring().is_empty(),
            "{b}"
        );
    }
}

#[test]
fn configuration_enums_and_the_score_use_snake_case_names() {
    let json = |v: &dyn erased::Json| v.json();
    assert_eq!(json(&Consciousness::NewConfusion), r#""new_confusion""#);
    assert_eq!(json(&Consciousness::Unresponsive), r#""unresponsive""#);
    assert_eq!(json(&Oxygen::Supplemental), r#""supplemental""#);
    assert_eq!(json(&Spo2Scale::Two), r#""scale_2""#);
    assert_eq!(json(&RiskBand::LowMedium), r#""low_medium""#);
    assert_eq!(json(&Parameter::AirOrOxygen), r#""air_or_oxygen""#);
    assert_eq!(
        serde_json::from_str::<Consciousness>(r#""voice""#).unwrap(),
        Consciousness::Voice
    );
    assert_eq!(
        serde_json::from_str::<Spo2Scale>(r#""scale_1""#).unwrap(),
        Spo2Scale::One
    );
    for p in Parameter::ALL {
        assert_eq!(json(&p), format!("\"{p}\""));
    }

    let s = score(&normal(), Spo2Scale::One);
    let text = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Score>(&text).unwrap(), s);
    let obs = normal();
    let text = serde_json::to_string(&obs).unwrap();
    assert_eq!(serde_json::from_str::<Observations>(&text).unwrap(), obs);
}

/// `serde_json::to_string` behind a trait object, so one closure can take
/// every enum above.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}
