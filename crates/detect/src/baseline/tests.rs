use super::*;
use vitalgate_devices::Quality;

/// 2025-11-21T07:00:00Z, the evaluation's start.
const T0: i64 = 1_763_708_400_000;
const MIN: i64 = 60;
const HOUR: i64 = 3_600;
const DAY: i64 = 24 * HOUR;

fn reading(vital: Vital, value: f64, s: i64) -> Reading {
    Reading {
        device: Arc::from("hr-1"),
        patient: Arc::from("p-1"),
        vital,
        value,
        device_time: Some(Timestamp(T0 + s * 1_000)),
        gateway_time: Timestamp(T0 + s * 1_000 + 20),
        quality: Quality::NONE,
    }
}

fn detector() -> BaselineDetector {
    BaselineDetector::new(Arc::from("p-1"), BaselineConfig::default())
}

/// A small deterministic wobble (±1.5), so values are not constant.
fn wobble(s: i64) -> f64 {
    [0.0, 1.0, -1.0, 1.5, -1.5, 0.5, -0.5][(s % 7) as usize]
}

/// Feed `vital` every `every` seconds over `[from, to)` with `value(s)`,
/// ticking each second as the monitor does; (active, seconds since T0 of
/// the report) of every report.
fn feed(
    d: &mut BaselineDetector,
    vital: Vital,
    from: i64,
    to: i64,
    every: i64,
    value: impl Fn(i64) -> f64,
) -> Vec<(bool, i64)> {
    let mut out = Vec::new();
    for s in from..to {
        let mut c = d.tick(Timestamp(T0 + s * 1_000));
        if (s - from) % every == 0 {
            c.extend(d.push(&reading(vital, value(s), s)));
        }
        out.extend(c.into_iter().map(|c| {
            assert_eq!(c.key.kind, ConditionKind::BaselineDrift);
            assert_eq!(c.severity, Severity::Low);
            (c.active, (c.at.millis() - T0) / 1_000)
        }));
    }
    out
}

/// A day of resting heart rate around 60 /min (a day: rises are judged
/// only once the baseline has seen one).
fn learned_at_60() -> BaselineDetector {
    let mut d = detector();
    assert!(feed(&mut d, Vital::HeartRate, 0, DAY, 1, |s| 60.0 + wobble(s)).is_empty());
    d
}

#[test]
fn it_learns_the_patients_own_level() {
    let d = learned_at_60();
    let b = d.baseline(Vital::HeartRate).unwrap();
    assert!((59.5..60.5).contains(&b), "{b}");
    assert_eq!(d.baseline(Vital::PulseRate), None, "nothing learned yet");
    assert!(!d.is_active());
}

#[test]
fn while_warming_up_only_an_abrupt_fall_is_judged() {
    // 45 min at 60, then 35 /min (a 42 % fall within a minute): no
    // baseline is established after 45 minutes, but the abrupt limit
    // judges against the level learned so far.
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, 57 * MIN, 1, |s| {
        if s < 45 * MIN { 60.0 + wobble(s) } else { 35.0 }
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0);
    assert!((48 * MIN..50 * MIN).contains(&out[0].1), "{out:?}");
    assert_eq!(d.baseline(Vital::HeartRate), None, "not established");

    // The same fall over 40 minutes is silent (sleep, not a block), and so
    // is a drift that has no abrupt limit: SpO2 6 points down.
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, 57 * MIN, 1, |s| {
        60.0 - 25.0 * ((s - 10 * MIN).max(0) as f64 / (40 * MIN) as f64).min(1.0)
    });
    assert_eq!(out, vec![]);
    let out = feed(&mut d, Vital::Spo2, 0, 57 * MIN, 1, |s| {
        if s < 15 * MIN { 97.0 } else { 91.0 }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn while_warming_up_the_end_of_a_tachycardia_is_not_a_bradycardia() {
    // The sensors go on during a tachycardia of 148 that ends after
    // 12 minutes, back to this patient's early-morning 46 /min: the level
    // learned so far is the tachycardia, and a fall from above 100 /min
    // is its end.
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, 50 * MIN, 1, |s| {
        if s < 12 * MIN {
            148.0 + wobble(s)
        } else {
            46.0 + wobble(s)
        }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn nothing_is_judged_before_ten_minutes_are_learned() {
    // A fall 3 minutes after the sensor went on: no level of the patient's
    // own to compare with yet (the sustained rules watch < 40 /min).
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, 9 * MIN, 1, |s| {
        if s < 3 * MIN { 64.0 } else { 42.0 }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn a_first_hour_spent_partly_in_a_tachycardia_is_not_the_baseline() {
    let mut d = detector();
    // 25 minutes at 150 among 35 at 55: the hour's median would be 55 but
    // its spread is far too wide; it learns on until calm minutes settle it.
    let out = feed(&mut d, Vital::HeartRate, 0, 3 * HOUR, 1, |s| {
        if (2 * MIN..27 * MIN).contains(&s) {
            150.0
        } else {
            55.0 + wobble(s)
        }
    });
    assert_eq!(out, vec![]);
    assert_eq!(
        d.baseline(Vital::HeartRate).map(f64::round),
        Some(55.0),
        "settled on the calm minutes"
    );
}

#[test]
fn a_resting_heart_rate_held_over_25_percent_above_baseline_is_raised_after_the_hour() {
    let mut d = learned_at_60();
    let rise_at = DAY;
    // 76 /min: 27 % above 60 (exactly 25 % sits on the limit, where the
    // baseline's own slow learning decides).
    let out = feed(
        &mut d,
        Vital::HeartRate,
        rise_at,
        rise_at + 2 * HOUR,
        1,
        |_| 76.0,
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let (active, at) = out[0];
    assert!(active);
    // The 3-min level crosses within about two minutes; then an hour.
    let after = at - rise_at;
    assert!((60 * MIN..63 * MIN).contains(&after), "raised {after} s in");
}

#[test]
fn a_rise_just_short_of_25_percent_is_not_a_drift() {
    let mut d = learned_at_60();
    let out = feed(&mut d, Vital::HeartRate, DAY, DAY + 3 * HOUR, 1, |_| 74.0);
    assert_eq!(out, vec![]);
}

#[test]
fn an_abrupt_fall_of_a_third_to_40_is_raised_after_two_minutes_and_clears_after_ten() {
    let mut d = learned_at_60();
    let from = DAY;
    let mut out = feed(&mut d, Vital::HeartRate, from, from + 15 * MIN, 1, |_| 40.0);
    out.extend(feed(
        &mut d,
        Vital::HeartRate,
        from + 15 * MIN,
        from + 40 * MIN,
        1,
        |s| 60.0 + wobble(s),
    ));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].0 && !out[1].0);
    // The 3-min level is low two minutes in, then the 2-min sustain.
    let raised = out[0].1 - from;
    assert_eq!(raised, 4 * MIN - 1, "raised {raised} s in");
    let cleared = out[1].1 - (from + 15 * MIN);
    assert!(
        (10 * MIN..13 * MIN).contains(&cleared),
        "cleared {cleared} s after"
    );
}

#[test]
fn an_abrupt_fall_of_a_quarter_is_a_bradycardia_and_a_fifth_is_not() {
    // 60 → 44 (−27 %) within a minute; 60 → 48 (−20 %, the deepest common
    // nocturnal dip, though reached abruptly) stays short of the limit.
    let mut d = learned_at_60();
    let out = feed(&mut d, Vital::HeartRate, DAY, DAY + 20 * MIN, 1, |_| 44.0);
    assert_eq!(out.len(), 1, "{out:?}");
    let mut d = learned_at_60();
    let out = feed(&mut d, Vital::HeartRate, DAY, DAY + 20 * MIN, 1, |_| 48.0);
    assert_eq!(out, vec![]);
}

#[test]
fn a_fall_that_stays_above_50_per_minute_is_not_a_bradycardia() {
    // A patient whose usual is 90 resting at 60 (−33 %): a normal rate.
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, DAY + HOUR, 1, |s| {
        if s < DAY { 90.0 + wobble(s) } else { 60.0 }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn a_slow_fall_to_the_same_rate_is_sleep_not_a_drift_and_an_abrupt_one_is() {
    // From 60 down to 40 (−33 %, ≤ 50) over 40 minutes, held for an hour:
    // how a deep sleeper's rate may fall.
    let mut d = learned_at_60();
    let t = DAY;
    let out = feed(&mut d, Vital::HeartRate, t, t + 2 * HOUR, 1, |s| {
        let into = (s - t) as f64 / (40 * MIN) as f64;
        60.0 - 20.0 * into.min(1.0)
    });
    assert_eq!(out, vec![]);
    // The same rate reached within a minute is raised.
    let mut d = learned_at_60();
    let out = feed(&mut d, Vital::HeartRate, t, t + HOUR, 1, |_| 40.0);
    assert_eq!(out.len(), 1, "{out:?}");
}

#[test]
fn the_end_of_a_tachycardia_is_not_the_start_of_a_bradycardia() {
    // A fit patient sleeping at 41 after a 20-minute run of 150 /min: the
    // rate falls by 109 within a minute, to 32 % below the usual 60, but
    // from far above the usual, not from it.
    let mut d = learned_at_60();
    let t = DAY;
    let out = feed(&mut d, Vital::HeartRate, t, t + 2 * HOUR, 1, |s| {
        match s - t {
            x if x < 20 * MIN => 150.0,
            _ => 42.0,
        }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn a_rise_is_not_judged_before_the_baseline_has_seen_a_whole_day() {
    // Monitoring started while the patient slept at 52: waking up to 70
    // is +35 % for hours, and no drift.
    let mut d = detector();
    let out = feed(&mut d, Vital::HeartRate, 0, 20 * HOUR, 1, |s| {
        if s < 2 * HOUR {
            52.0 + wobble(s)
        } else {
            70.0 + wobble(s)
        }
    });
    assert_eq!(out, vec![]);
}

#[test]
fn brief_excursions_are_ignored() {
    let mut d = learned_at_60();
    let t = DAY;
    // Twenty minutes of exercise at 110, then a 2-minute vagal dip to 35,
    // and 30 s of an artifact at 200: none lasts its sustain time.
    let out = feed(&mut d, Vital::HeartRate, t, t + 2 * HOUR, 1, |s| {
        let s = s - t;
        match s {
            _ if s < 20 * MIN => 110.0,
            _ if (40 * MIN..42 * MIN).contains(&s) => 35.0,
            _ if (60 * MIN..60 * MIN + 30).contains(&s) => 200.0,
            _ => 60.0 + wobble(s),
        }
    });
    assert_eq!(out, vec![]);
    let b = d.baseline(Vital::HeartRate).unwrap();
    assert!(
        (59.5..60.5).contains(&b),
        "the excursions did not move it: {b}"
    );
}

#[test]
fn a_level_hovering_at_the_limit_raises_once_and_does_not_flap() {
    let mut d = learned_at_60();
    let t = DAY;
    // 70 min at 76 (raised), then four hours alternating 10-min blocks of
    // 73 and 77 around the 75 limit, then back to 60.
    let mut out = feed(&mut d, Vital::HeartRate, t, t + 70 * MIN, 1, |_| 76.0);
    out.extend(feed(
        &mut d,
        Vital::HeartRate,
        t + 70 * MIN,
        t + 310 * MIN,
        1,
        |s| {
            if (s / (10 * MIN)) % 2 == 0 {
                73.0
            } else {
                77.0
            }
        },
    ));
    assert_eq!(out.iter().filter(|(a, _)| *a).count(), 1, "{out:?}");
    assert_eq!(out.iter().filter(|(a, _)| !*a).count(), 0, "{out:?}");
    out.extend(feed(
        &mut d,
        Vital::HeartRate,
        t + 310 * MIN,
        t + 340 * MIN,
        1,
        |s| 60.0 + wobble(s),
    ));
    assert_eq!(out.len(), 2, "one clear at the end: {out:?}");
    assert!(!out[1].0);
}

#[test]
fn a_deterioration_is_not_learned_as_the_new_normal() {
    let mut d = learned_at_60();
    let t = DAY;
    // Twelve hours at 90 /min (a fever, say): the drift stays raised all
    // along and the baseline stays the patient's usual.
    let out = feed(&mut d, Vital::HeartRate, t, t + 12 * HOUR, 1, |s| {
        90.0 + wobble(s)
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0);
    assert!(d.is_active());
    let b = d.baseline(Vital::HeartRate).unwrap();
    assert!(b < 62.0, "baseline {b}");
    // Back to normal: it clears.
    let out = feed(
        &mut d,
        Vital::HeartRate,
        t + 12 * HOUR,
        t + 13 * HOUR,
        1,
        |s| 60.0 + wobble(s),
    );
    assert_eq!(out.len(), 1);
    assert!(!out[0].0);
}

#[test]
fn a_slow_drift_within_half_a_limit_is_learned() {
    let mut d = learned_at_60();
    // A new drug lowers the resting rate to 54 (−10 %) for a week: that is
    // the patient's new normal, learned within days and never alerted.
    let t = DAY;
    let out = feed(&mut d, Vital::HeartRate, t, t + 7 * 24 * HOUR, 10, |s| {
        54.0 + wobble(s)
    });
    assert_eq!(out, vec![]);
    let b = d.baseline(Vital::HeartRate).unwrap();
    assert!((53.5..55.0).contains(&b), "{b}");
}

/// A patient's day from 07:00: heart rate, SpO2, temperature and systolic
/// pressure with activity, a circadian rhythm and a night from 23:00 to
/// 06:30 with a deep (20 %) heart-rate dip and a 15 % blood-pressure dip,
/// a point of SpO2 and 0.4 °C of temperature.
fn day_and_night(d: &mut BaselineDetector, days: i64) -> Vec<(bool, i64)> {
    let mut out = Vec::new();
    for s in 0..days * 24 * HOUR {
        let hour = (7.0 + s as f64 / 3_600.0) % 24.0;
        // 0 awake – 1 asleep, with 20-min transitions.
        let asleep = if (23.0..24.0).contains(&hour) {
            ((hour - 23.0) * 3.0).min(1.0)
        } else if hour < 6.5 {
            1.0
        } else if hour < 6.5 + 1.0 / 3.0 {
            1.0 - (hour - 6.5) * 3.0
        } else {
            0.0
        };
        // A 25-min walk every two hours while awake.
        let walking = asleep == 0.0 && (s % (2 * HOUR)) < 25 * MIN;
        let activity = if walking { 35.0 } else { 0.0 };
        let circadian = (std::f64::consts::TAU * (hour - 17.0) / 24.0).cos();
        let hr = 68.0 * (1.0 - 0.20 * asleep) + 2.0 * circadian + activity + wobble(s);
        let spo2 = 97.0 - 1.0 * asleep - if walking { 0.5 } else { 0.0 } + 0.3 * wobble(s / 3);
        let mut c = d.tick(Timestamp(T0 + s * 1_000));
        c.extend(d.push(&reading(Vital::HeartRate, hr, s)));
        c.extend(d.push(&reading(Vital::Spo2, spo2, s)));
        if s % 60 == 0 {
            let temp = 36.7 + 0.4 * circadian + 0.05 * wobble(s / 60);
            c.extend(d.push(&reading(Vital::BodyTemperature, temp, s)));
        }
        if s % (15 * MIN) == 0 {
            let sbp = 126.0 * (1.0 - 0.15 * asleep) + if walking { 15.0 } else { 0.0 };
            c.extend(d.push(&reading(Vital::SystolicBp, sbp + 2.0 * wobble(s), s)));
        }
        out.extend(
            c.into_iter()
                .map(|c| (c.active, (c.at.millis() - T0) / 1_000)),
        );
    }
    out
}

#[test]
fn a_sleeper_is_not_paged_for_the_nocturnal_dip_even_on_the_first_night() {
    let mut d = detector();
    assert_eq!(day_and_night(&mut d, 2), vec![]);
    // The baseline is the usual awake level, not dragged down by the nights
    // nor up by the walks.
    let b = d.baseline(Vital::HeartRate).unwrap();
    assert!((64.0..72.0).contains(&b), "{b}");
}

#[test]
fn a_four_point_fall_in_spo2_held_half_an_hour_is_a_drift() {
    let mut d = detector();
    let value = |s: i64| {
        let base = if s < 3 * HOUR { 91.0 } else { 86.5 };
        base + 0.3 * wobble(s)
    };
    let out = feed(&mut d, Vital::Spo2, 0, 5 * HOUR, 1, value);
    assert_eq!(out.len(), 1, "{out:?}");
    let after = out[0].1 - 3 * HOUR;
    assert!((30 * MIN..35 * MIN).contains(&after), "{after}");
}

#[test]
fn a_temperature_rise_of_more_than_1_1_degrees_over_baseline_is_a_drift_below_38() {
    let mut d = detector();
    // An older patient at 36.2 °C who reaches only 37.5 °C.
    let out = feed(&mut d, Vital::BodyTemperature, 0, 12 * HOUR, 60, |s| {
        if s < 8 * HOUR { 36.2 } else { 37.5 }
    });
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0);
    let after = out[0].1 - 8 * HOUR;
    assert!((30 * MIN..45 * MIN).contains(&after), "{after}");
}

#[test]
fn a_cuff_reading_every_15_minutes_is_judged_on_the_median_of_three() {
    let mut d = detector();
    // Six hours at 125 mm[Hg], then one outlying reading of 80 among
    // normal ones (nothing), then a sustained fall to 80 (a drift).
    let cuff = |s: i64| match s {
        _ if s == 7 * HOUR => 80.0,
        _ if s >= 9 * HOUR => 80.0,
        _ => 125.0 + wobble(s / 900),
    };
    let out = feed(&mut d, Vital::SystolicBp, 0, 12 * HOUR, 15 * MIN, cuff);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].0);
    assert!(out[0].1 > 9 * HOUR + 30 * MIN, "{out:?}");
}

#[test]
fn an_interrupt_discards_a_pending_onset() {
    let mut d = learned_at_60();
    let t = DAY;
    // Breaching from 119 s; without the interrupt, raised at 239 s.
    assert_eq!(
        feed(&mut d, Vital::HeartRate, t, t + 3 * MIN, 1, |_| 40.0),
        vec![]
    );
    d.interrupt(Vital::HeartRate);
    // The onset starts over with the next minute to close (179 s): two
    // more minutes are needed.
    let out = feed(
        &mut d,
        Vital::HeartRate,
        t + 3 * MIN,
        t + 5 * MIN,
        1,
        |_| 40.0,
    );
    assert_eq!(out, vec![]);
    let out = feed(
        &mut d,
        Vital::HeartRate,
        t + 5 * MIN,
        t + 7 * MIN,
        1,
        |_| 40.0,
    );
    assert_eq!(out, vec![(true, t + 5 * MIN - 1)]);
}

#[test]
fn two_vitals_drifting_are_one_condition_whose_summary_names_both() {
    let mut d = detector();
    let mut out = Vec::new();
    for s in 0..9 * HOUR {
        let late = s >= 6 * HOUR;
        let mut c = d.tick(Timestamp(T0 + s * 1_000));
        c.extend(d.push(&reading(
            Vital::HeartRate,
            if late { 40.0 } else { 62.0 } + wobble(s),
            s,
        )));
        c.extend(d.push(&reading(
            Vital::Spo2,
            if late { 90.0 } else { 96.0 } + 0.2 * wobble(s),
            s,
        )));
        out.extend(c);
    }
    let active: Vec<&Condition> = out.iter().filter(|c| c.active).collect();
    assert_eq!(active.len(), 2, "raised, then changed: {out:#?}");
    assert_eq!(active[0].since, active[1].since);
    assert!(
        active[0].summary.starts_with("heart rate 40 /min"),
        "{}",
        active[0].summary
    );
    assert!(
        active[1].summary.contains("SpO2 90.0 %, 6.0 points below"),
        "{}",
        active[1].summary
    );
    assert!(active[1].evidence.len() == 2);
    assert!(out.iter().all(|c| c.active), "nothing cleared");
}

#[test]
fn a_disabled_detector_learns_but_raises_nothing() {
    let config = BaselineConfig {
        enabled: false,
        ..BaselineConfig::default()
    };
    let mut d = BaselineDetector::new(Arc::from("p-1"), config);
    let out = feed(&mut d, Vital::HeartRate, 0, 8 * HOUR, 1, |s| {
        if s < 6 * HOUR { 60.0 } else { 30.0 }
    });
    assert_eq!(out, vec![]);
    assert!(d.baseline(Vital::HeartRate).is_some());
}

#[test]
fn the_config_has_defaults_and_rejects_unknown_keys() {
    let c: BaselineConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, BaselineConfig::default());
    assert_eq!(c.min_sustain_ms(), Some(2 * 60_000));
    let c: BaselineConfig = serde_json::from_str(
        r#"{"half_life_ms": 86400000, "spo2": {"window_ms": 300000, "warmup": 30,
            "rise": {"enabled": false, "relative": 0, "absolute": 4, "sustain_ms": 1800000},
            "fall": {"relative": 0, "absolute": 3, "sustain_ms": 900000},
            "clear_ms": 600000, "max_gap_ms": 300000}}"#,
    )
    .unwrap();
    assert_eq!(c.spo2.fall.absolute, 3.0);
    assert!(c.spo2.fall.enabled && c.spo2.enabled);
    assert_eq!(c.heart_rate, VitalDriftConfig::HEART_RATE);
    assert!(serde_json::from_str::<BaselineConfig>(r#"{"heartrate":{}}"#).is_err());
    assert!(
        serde_json::from_str::<BaselineConfig>(r#"{"spo2":{"window_ms":1}}"#).is_err(),
        "a vital's table is given whole"
    );
}
