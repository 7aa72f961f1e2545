//! The mapping from readings to observations.

use super::*;
use vitalgate_devices::Quality;

const KID: KeyId = KeyId([0x11; 16]);
const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00.000Z

fn stored(n: u32, device: &str, vital: Vital, value: f64, t: i64) -> Stored {
    Stored {
        place: Place {
            block: 0,
            record: 0,
            index: n,
        },
        reading: Reading {
            device: device.into(),
            patient: "p-1".into(),
            vital,
            value,
            device_time: Some(Timestamp(t)),
            gateway_time: Timestamp(t + 250),
            quality: Quality::NONE,
        },
    }
}

fn json(stored: &[Stored]) -> serde_json::Value {
    serde_json::to_value(bundle(&KID, stored).unwrap()).unwrap()
}

fn resources(b: &serde_json::Value) -> Vec<&serde_json::Value> {
    b["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| &e["resource"]).collect())
        .unwrap_or_default()
}

#[test]
fn a_reading_becomes_a_vital_signs_observation_with_loinc_and_ucum() {
    let b = json(&[stored(0, "ox-1", Vital::Spo2, 97.0, T0)]);
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "collection");
    assert_eq!(b["timestamp"], "2026-01-01T00:00:00.250Z");
    let o = resources(&b)[0];
    assert_eq!(
        o,
        &serde_json::json!({
            "resourceType": "Observation",
            "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/oxygensat"]},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": b["entry"][0]["fullUrl"]}],
            "status": "final",
            "category": [{"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                "code": "vital-signs",
                "display": "Vital Signs"
            }]}],
            "code": {
                "coding": [
                    {"system": "http://loinc.org", "code": "2708-6"},
                    {"system": "http://loinc.org", "code": "59408-5"}
                ],
                "text": "Oxygen saturation (pulse oximetry)"
            },
            "subject": {"type": "Patient", "identifier": {"value": "p-1"}},
            "effectiveDateTime": "2026-01-01T00:00:00.000Z",
            "issued": "2026-01-01T00:00:00.250Z",
            "valueQuantity": {"value": 97, "unit": "%", "system": "http://unitsofmeasure.org", "code": "%"},
            "device": {"type": "Device", "identifier": {"value": "ox-1"}, "display": "ox-1"}
        })
    );
    let url = b["entry"][0]["fullUrl"].as_str().unwrap();
    assert!(url.starts_with("urn:uuid:"), "{url}");
}

#[test]
fn the_gateway_time_stands_in_when_the_device_sent_none() {
    let mut s = stored(0, "th-1", Vital::BodyTemperature, 37.25, T0);
    s.reading.device_time = None;
    let b = json(&[s]);
    let o = resources(&b)[0];
    assert_eq!(o["effectiveDateTime"], "2026-01-01T00:00:00.250Z");
    assert_eq!(o["valueQuantity"]["value"], 37.25);
    assert_eq!(o["valueQuantity"]["code"], "Cel");
}

#[test]
fn systolic_and_diastolic_of_one_device_and_time_pair_into_one_panel() {
    let b = json(&[
        stored(0, "bp-1", Vital::DiastolicBp, 80.0, T0),
        stored(1, "bp-1", Vital::SystolicBp, 120.0, T0),
        stored(2, "bp-1", Vital::MeanArterialPressure, 93.0, T0),
    ]);
    let r = resources(&b);
    assert_eq!(r.len(), 2, "{b:#}");
    let panel = r[0];
    assert_eq!(panel["code"]["coding"][0]["code"], "85354-9");
    assert_eq!(
        panel["meta"]["profile"][0],
        "http://hl7.org/fhir/StructureDefinition/bp"
    );
    assert!(panel.get("valueQuantity").is_none());
    let c = panel["component"].as_array().unwrap();
    assert_eq!(c[0]["code"]["coding"][0]["code"], "8480-6");
    assert_eq!(c[0]["valueQuantity"]["value"], 120);
    assert_eq!(c[0]["valueQuantity"]["code"], "mm[Hg]");
    assert_eq!(c[1]["code"]["coding"][0]["code"], "8462-4");
    assert_eq!(c[1]["valueQuantity"]["value"], 80);
    // Mean arterial pressure: its own observation, no profile claimed.
    assert_eq!(r[1]["code"]["coding"][0]["code"], "8478-0");
    assert!(r[1].get("meta").is_none());
}

#[test]
fn a_lone_pressure_is_a_panel_whose_missing_half_is_absent() {
    let b = json(&[
        stored(0, "bp-1", Vital::SystolicBp, 120.0, T0),
        stored(1, "bp-1", Vital::DiastolicBp, 80.0, T0 + 1),
        stored(2, "bp-2", Vital::DiastolicBp, 70.0, T0),
    ]);
    let r = resources(&b);
    assert_eq!(r.len(), 3, "{b:#}");
    for o in &r {
        assert_eq!(o["code"]["coding"][0]["code"], "85354-9");
        assert_eq!(o["component"].as_array().unwrap().len(), 2);
    }
    // bp-1 systolic alone at T0, bp-2 diastolic alone at T0, bp-1 diastolic at T0+1.
    assert_eq!(r[0]["device"]["display"], "bp-1");
    assert_eq!(r[0]["component"][0]["valueQuantity"]["value"], 120);
    assert_eq!(
        r[0]["component"][1]["dataAbsentReason"]["coding"][0]["code"],
        "unknown"
    );
    assert_eq!(r[1]["device"]["display"], "bp-2");
    assert_eq!(r[1]["component"][1]["valueQuantity"]["value"], 70);
    assert_eq!(
        r[1]["component"][0]["dataAbsentReason"]["coding"][0]["code"],
        "unknown"
    );
    assert_eq!(r[2]["effectiveDateTime"], "2026-01-01T00:00:00.001Z");
}

#[test]
fn observations_sort_by_time_then_device_then_vital() {
    let b = json(&[
        stored(0, "ox-2", Vital::Spo2, 95.0, T0),
        stored(1, "ox-1", Vital::PerfusionIndex, 2.5, T0),
        stored(2, "ox-1", Vital::PulseRate, 70.0, T0),
        stored(3, "ox-1", Vital::Spo2, 96.0, T0 - 1000),
    ]);
    let order: Vec<(String, String)> = resources(&b)
        .iter()
        .map(|o| {
            (
                o["device"]["display"].as_str().unwrap().to_owned(),
                o["code"]["coding"].as_array().unwrap().last().unwrap()["code"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    let expected = [
        ("ox-1", "59408-5"),
        ("ox-1", "8889-8"),
        ("ox-1", "61006-3"),
        ("ox-2", "59408-5"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(d, c)| ((*d).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(order, expected);
}

#[test]
fn quality_flags_become_a_note_and_invalid_values_say_so() {
    let mut s = stored(0, "ox-1", Vital::Spo2, 82.0, T0);
    s.reading.quality = Quality::ARTIFACT | Quality::LOW_PERFUSION;
    let mut off = stored(1, "ox-1", Vital::PulseRate, 0.0, T0);
    off.reading.quality = Quality::SENSOR_OFF;
    let b = json(&[s, off]);
    let r = resources(&b);
    // Same time and device: pulse rate sorts before SpO2.
    assert_eq!(
        r[0]["note"][0]["text"],
        "quality: sensor_off (not clinically valid)"
    );
    assert_eq!(r[1]["note"][0]["text"], "quality: low_perfusion, artifact");
    let clean = json(&[stored(0, "ox-1", Vital::Spo2, 97.0, T0)]);
    assert!(resources(&clean)[0].get("note").is_none());
}

#[test]
fn a_panel_note_names_the_flagged_component() {
    let mut s = stored(0, "bp-1", Vital::SystolicBp, 120.0, T0);
    s.reading.quality = Quality::ARTIFACT;
    let b = json(&[s, stored(1, "bp-1", Vital::DiastolicBp, 80.0, T0)]);
    assert_eq!(
        resources(&b)[0]["note"][0]["text"],
        "quality: systolic_bp artifact"
    );
}

#[test]
fn values_that_are_not_numbers_carry_a_data_absent_reason() {
    let b = json(&[
        stored(0, "ox-1", Vital::Spo2, f64::NAN, T0),
        stored(1, "ox-1", Vital::PulseRate, f64::INFINITY, T0 + 1),
    ]);
    let r = resources(&b);
    assert!(r[0].get("valueQuantity").is_none());
    assert_eq!(
        r[0]["dataAbsentReason"]["coding"][0],
        serde_json::json!({
            "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
            "code": "not-a-number"
        })
    );
    assert_eq!(
        r[1]["dataAbsentReason"]["coding"][0]["code"],
        "positive-infinity"
    );
}

#[test]
fn integral_values_have_no_fraction_and_others_keep_theirs() {
    assert_eq!(number(97.0).unwrap().to_string(), "97");
    assert_eq!(number(-0.0).unwrap().to_string(), "0");
    assert_eq!(number(37.2).unwrap().to_string(), "37.2");
    assert_eq!(
        number(0.1 + 0.2).unwrap().to_string(),
        "0.30000000000000004"
    );
    assert!(number(f64::NAN).is_none());
}

#[test]
fn an_empty_export_is_an_empty_collection() {
    let b = json(&[]);
    assert_eq!(
        b,
        serde_json::json!({"resourceType": "Bundle", "type": "collection"})
    );
}

#[test]
fn the_same_readings_give_the_same_bytes_and_ids_do_not_depend_on_the_window() {
    let all = [
        stored(0, "ox-1", Vital::Spo2, 97.0, T0),
        stored(1, "ox-1", Vital::Spo2, 96.0, T0 + 1000),
    ];
    let a = serde_json::to_string(&bundle(&KID, &all).unwrap()).unwrap();
    let b = serde_json::to_string(&bundle(&KID, &all).unwrap()).unwrap();
    assert_eq!(a, b);
    let whole = json(&all);
    let later = json(&all[1..]);
    assert_eq!(whole["entry"][1]["fullUrl"], later["entry"][0]["fullUrl"]);
    assert_ne!(whole["entry"][0]["fullUrl"], whole["entry"][1]["fullUrl"]);
}

#[test]
fn times_fhir_cannot_express_are_refused() {
    assert!(time(Timestamp(T0)).is_ok());
    assert!(time(Timestamp(i64::MAX)).is_err());
    assert!(time(Timestamp(-62_200_000_000_000)).is_err());
}
