use super::*;

const T0: i64 = 1_763_708_400_000;

fn reading(device: &str, vital: Vital, value: f64, ms: i64, quality: Quality) -> Reading {
    Reading {
        device: Arc::from(device),
        patient: Arc::from("p-1"),
        vital,
        value,
        device_time: Some(Timestamp(T0 + ms)),
        gateway_time: Timestamp(T0 + ms + 20),
        quality,
    }
}

/// An oximeter frame; the perfusion index jitters with `i` so clean
/// frames never repeat exactly.
fn ox(ms: i64, spo2: f64, pulse: f64, pi: f64, quality: Quality) -> Vec<Reading> {
    vec![
        reading("ox-1", Vital::PulseRate, pulse, ms, quality),
        reading("ox-1", Vital::Spo2, spo2, ms, quality),
        reading("ox-1", Vital::PerfusionIndex, pi, ms, quality),
    ]
}

fn jitter(i: i64) -> f64 {
    [0.0, 0.01, 0.02, 0.01][(i % 4) as usize]
}

/// Kinds and activity of the conditions, with their time offsets.
fn kinds(out: &[Condition]) -> Vec<(ConditionKind, bool, i64)> {
    out.iter()
        .map(|c| (c.key.kind, c.active, c.at.millis() - T0))
        .collect()
}

/// 60 s of clean oximeter frames at 1 Hz from 0.
fn warmed() -> FaultDetector {
    let mut f = FaultDetector::new(FaultConfig::default());
    for i in 0..60 {
        let (out, v) = f.push_frame(&ox(i * 1_000, 96.0, 72.0, 2.0 + jitter(i), Quality::NONE));
        assert!(out.is_empty(), "{out:?}");
        assert!(v.reliable.iter().all(|&r| r));
    }
    f
}

#[test]
fn an_spo2_drop_with_low_perfusion_and_a_steady_pulse_is_a_motion_artifact() {
    let mut f = warmed();
    let (out, v) = f.push_frame(&ox(60_000, 88.0, 73.0, 0.9, Quality::NONE));
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::MotionArtifact, true, 60_000)]
    );
    let c = &out[0];
    assert_eq!(c.key.device.as_deref(), Some("ox-1"));
    assert_eq!(c.key.kind.category(), crate::Category::Technical);
    assert_eq!(v.reliable, vec![false; 3]);
    assert!(v.motion);
    // Back to normal values: still held for 15 s (the averaging tail).
    let mut cleared = Vec::new();
    for i in 61..80 {
        let (out, v) = f.push_frame(&ox(i * 1_000, 96.0, 72.0, 2.0 + jitter(i), Quality::NONE));
        if i < 75 {
            assert_eq!(v.reliable, vec![false; 3], "held at {i}");
        }
        cleared.extend(out);
    }
    assert_eq!(
        kinds(&cleared),
        vec![(ConditionKind::MotionArtifact, false, 75_000)]
    );
}

#[test]
fn an_spo2_drop_the_pulse_follows_or_with_steady_perfusion_is_not_an_artifact() {
    let mut f = warmed();
    let (out, v) = f.push_frame(&ox(60_000, 86.0, 90.0, 0.9, Quality::NONE));
    assert!(out.is_empty(), "the pulse followed: {out:?}");
    assert!(v.reliable.iter().all(|&r| r));
    let mut f = warmed();
    let (out, v) = f.push_frame(&ox(60_000, 86.0, 74.0, 1.9, Quality::NONE));
    assert!(out.is_empty(), "perfusion steady: a real desaturation");
    assert!(v.reliable.iter().all(|&r| r));
}

#[test]
fn a_frame_flagged_artifact_is_a_motion_artifact_even_without_history() {
    let mut f = FaultDetector::new(FaultConfig::default());
    let (out, v) = f.push_frame(&ox(0, 90.0, 70.0, 1.0, Quality::ARTIFACT));
    assert_eq!(kinds(&out), vec![(ConditionKind::MotionArtifact, true, 0)]);
    assert_eq!(v.reliable, vec![false; 3]);
}

#[test]
fn a_frame_repeated_exactly_for_a_minute_is_a_flatline_and_clears_when_it_changes() {
    let mut f = warmed();
    let mut out = Vec::new();
    let mut reliable_at_end = Vec::new();
    for i in 60..130 {
        let (o, v) = f.push_frame(&ox(i * 1_000, 95.0, 70.0, 1.5, Quality::NONE));
        out.extend(o);
        reliable_at_end = v.reliable;
    }
    // Run starts at 60 s; a minute later (and well over 20 frames).
    assert_eq!(kinds(&out), vec![(ConditionKind::Flatline, true, 120_000)]);
    assert_eq!(out[0].since, Timestamp(T0 + 60_000));
    assert_eq!(reliable_at_end, vec![false; 3]);
    let (o, v) = f.push_frame(&ox(130_000, 96.0, 71.0, 1.52, Quality::NONE));
    assert_eq!(kinds(&o), vec![(ConditionKind::Flatline, false, 130_000)]);
    assert!(v.reliable.iter().all(|&r| r));
}

#[test]
fn a_slow_thermometer_repeating_its_value_for_fewer_than_twenty_readings_is_not_a_flatline() {
    let mut f = FaultDetector::new(FaultConfig::default());
    for i in 0..19 {
        let r = reading(
            "th-1",
            Vital::BodyTemperature,
            36.8,
            i * 60_000,
            Quality::NONE,
        );
        let (out, _) = f.push_frame(&[r]);
        assert!(out.is_empty(), "frame {i}: {out:?}");
    }
    let r = reading(
        "th-1",
        Vital::BodyTemperature,
        36.8,
        19 * 60_000,
        Quality::NONE,
    );
    let (out, _) = f.push_frame(&[r]);
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::Flatline, true, 19 * 60_000)]
    );
}

#[test]
fn an_impossible_value_is_reported_at_once_kept_out_and_cleared_after_30_s() {
    let mut f = warmed();
    let mut frame = ox(60_000, 96.0, 72.0, 2.0, Quality::NONE);
    frame[1] = reading("ox-1", Vital::Spo2, 127.0, 60_000, Quality::IMPOSSIBLE);
    let (out, v) = f.push_frame(&frame);
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::ImpossibleValues, true, 60_000)]
    );
    assert_eq!(out[0].evidence[0].value, 127.0);
    assert_eq!(v.reliable, vec![true, false, true]);
    // Unflagged but outside the possible range counts too.
    let mut frame = ox(61_000, 96.0, 72.0, 2.01, Quality::NONE);
    frame[0].value = 500.0;
    let (_, v) = f.push_frame(&frame);
    assert_eq!(v.reliable, vec![false, true, true]);
    let mut out = Vec::new();
    for i in 62..93 {
        out.extend(
            f.push_frame(&ox(i * 1_000, 96.0, 72.0, 2.0 + jitter(i), Quality::NONE))
                .0,
        );
    }
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::ImpossibleValues, false, 92_000)]
    );
}

#[test]
fn sensor_off_is_reported_after_10_s_and_cleared_5_s_after_it_is_back() {
    let mut f = warmed();
    let dev: Arc<str> = Arc::from("ox-1");
    let pat: Arc<str> = Arc::from("p-1");
    let mut out = Vec::new();
    for i in 60..70 {
        out.extend(f.status(&dev, &pat, Timestamp(T0 + i * 1_000), Quality::SENSOR_OFF));
    }
    assert!(out.is_empty(), "9 s: not yet");
    out.extend(f.status(&dev, &pat, Timestamp(T0 + 70_000), Quality::SENSOR_OFF));
    assert_eq!(kinds(&out), vec![(ConditionKind::SensorOff, true, 70_000)]);
    assert_eq!(out[0].since, Timestamp(T0 + 60_000));
    out.clear();
    for i in 71..77 {
        out.extend(f.status(&dev, &pat, Timestamp(T0 + i * 1_000), Quality::SEARCHING));
    }
    assert_eq!(kinds(&out), vec![(ConditionKind::SensorOff, false, 76_000)]);
}

#[test]
fn a_readings_flagged_sensor_off_are_unreliable() {
    let mut f = warmed();
    let (_, v) = f.push_frame(&ox(60_000, 96.0, 72.0, 2.0, Quality::SENSOR_OFF));
    assert_eq!(v.reliable, vec![false; 3]);
}

#[test]
fn a_gap_of_more_than_three_periods_is_a_dropout_cleared_after_a_minute_of_regular_frames() {
    let mut f = warmed();
    assert_eq!(f.period_ms("ox-1"), Some(1_000));
    let (out, v) = f.push_frame(&ox(80_000, 96.0, 72.0, 2.0, Quality::NONE));
    assert_eq!(kinds(&out), vec![(ConditionKind::Dropout, true, 80_000)]);
    assert_eq!(out[0].since, Timestamp(T0 + 59_000));
    assert!(v.reliable.iter().all(|&r| r), "values after a gap are fine");
    let mut out = Vec::new();
    for i in 81..142 {
        out.extend(
            f.push_frame(&ox(i * 1_000, 96.0, 72.0, 2.0 + jitter(i), Quality::NONE))
                .0,
        );
    }
    assert_eq!(kinds(&out), vec![(ConditionKind::Dropout, false, 141_000)]);
}

#[test]
fn three_missed_samples_are_not_a_dropout() {
    let mut f = warmed();
    let (out, _) = f.push_frame(&ox(63_000, 96.0, 72.0, 2.0, Quality::NONE));
    assert!(out.is_empty(), "{out:?}");
}

#[test]
fn a_device_silent_past_its_expected_period_is_offline_until_it_sends_again() {
    let mut f = warmed();
    // Last frame at 59 s; period 1 s → 10 periods, but at least 60 s.
    assert!(f.tick(Timestamp(T0 + 119_000)).is_empty());
    let out = f.tick(Timestamp(T0 + 119_001));
    assert_eq!(
        kinds(&out),
        vec![(ConditionKind::DeviceOffline, true, 119_001)]
    );
    assert_eq!(out[0].key.device.as_deref(), Some("ox-1"));
    assert!(f.tick(Timestamp(T0 + 200_000)).is_empty(), "reported once");
    let (out, _) = f.push_frame(&ox(300_000, 96.0, 72.0, 2.0, Quality::NONE));
    let k = kinds(&out);
    assert!(k.contains(&(ConditionKind::DeviceOffline, false, 300_000)));
    assert!(k.contains(&(ConditionKind::Dropout, true, 300_000)));
}

#[test]
fn every_technical_condition_names_its_device_and_is_never_clinical() {
    let mut f = FaultDetector::new(FaultConfig::default());
    let (out, _) = f.push_frame(&ox(0, 96.0, 72.0, 2.0, Quality::ARTIFACT));
    for c in out {
        assert_eq!(c.key.kind.category(), crate::Category::Technical);
        assert!(c.key.device.is_some());
        assert!(c.severity < Severity::Medium);
    }
}
