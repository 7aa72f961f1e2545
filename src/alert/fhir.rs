//! An alert as FHIR R4: a `Bundle` (type `collection`) holding one
//! `DetectedIssue` — what was detected, how severe, about which patient,
//! since when, and whether someone acknowledged it — with the
//! `Observation`s it rests on: the triggering readings (coded as
//! `export --format fhir` codes them) and, for clinical alerts, the NEWS2
//! score with one component per sub-score (SNOMED CT UK codes for the RCP's
//! NEWS2, as the NHS's FHIR profiles use them). Mapping in
//! `docs/FORMAT.md`, "Alert message".

use crate::fhir::codes::{self, LOINC, UCUM};
use crate::fhir::id;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vitalgate_detect::alert::{Alert, AlertState};
use vitalgate_detect::news2::{Parameter, Score, Spo2Scale};
use vitalgate_detect::{Category, Evidence, Severity};
use vitalgate_devices::Timestamp;

/// SNOMED CT.
const SNOMED: &str = "http://snomed.info/sct";
/// The code system of vitalgate's alert kinds (the `kind` names of
/// `docs/FORMAT.md`).
pub const ALERT_KIND_SYSTEM: &str = "urn:vitalgate:alert-kind";
/// Domain separation for the resource ids.
const DOMAIN: &[u8] = b"vitalgate/fhir/alert/1\0";

/// NEWS2 total score, SNOMED CT UK edition.
const NEWS2_TOTAL: (&str, &str) = (
    "1104051000000101",
    "Royal College of Physicians NEWS2 (National Early Warning Score 2) total score",
);

/// The SNOMED CT code of one NEWS2 sub-score.
fn sub_score_code(p: Parameter, scale: Spo2Scale) -> (&'static str, &'static str) {
    match p {
        Parameter::RespirationRate => ("1104301000000104", "NEWS2 respiration rate score"),
        Parameter::Spo2 => match scale {
            Spo2Scale::One => ("1104311000000102", "NEWS2 oxygen saturation scale 1 score"),
            Spo2Scale::Two => ("1104321000000108", "NEWS2 oxygen saturation scale 2 score"),
        },
        Parameter::AirOrOxygen => ("1104331000000105", "NEWS2 air or oxygen score"),
        Parameter::SystolicBp => ("1104341000000101", "NEWS2 systolic blood pressure score"),
        Parameter::Pulse => ("1104351000000103", "NEWS2 pulse score"),
        Parameter::Consciousness => ("1104361000000100", "NEWS2 consciousness score"),
        Parameter::Temperature => ("1104371000000107", "NEWS2 temperature score"),
    }
}

/// A deterministic `urn:uuid:` for part `part` of message `message_id`.
fn urn(message_id: &str, part: &str) -> String {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(message_id.as_bytes());
    h.update([0]);
    h.update(part.as_bytes());
    format!("urn:uuid:{}", id::uuid_v8(h))
}

fn subject(alert: &Alert) -> Value {
    json!({"type": "Patient", "identifier": {"value": &*alert.key.patient}})
}

/// DetectedIssue.severity.
fn severity(s: Severity) -> &'static str {
    match s {
        Severity::High => "high",
        Severity::Medium => "moderate",
        Severity::Low | Severity::Info => "low",
    }
}

/// The bundle for `alert`, as message `message_id` sent at `at`.
pub fn bundle(alert: &Alert, message_id: &str, at: Timestamp) -> Value {
    let condition = &alert.condition;
    let mut entries = Vec::new();
    let mut evidence_refs = Vec::new();
    for (i, e) in condition.evidence.iter().enumerate() {
        let url = urn(message_id, &format!("evidence/{i}"));
        evidence_refs.push(json!({"reference": url}));
        entries.push(json!({"fullUrl": url, "resource": observation(alert, e)}));
    }
    if let Some(score) = condition.news2.as_ref() {
        let url = urn(message_id, "news2");
        evidence_refs.push(json!({"reference": url}));
        entries.push(json!({"fullUrl": url, "resource": news2(alert, score)}));
    }
    let resolved = match alert.state {
        AlertState::Resolved { at } => Some(at),
        _ => None,
    };
    let mut issue = json!({
        "resourceType": "DetectedIssue",
        "identifier": [{"system": "urn:vitalgate:alert", "value": &alert.id}],
        // Machine-detected and not confirmed by a clinician while open;
        // final once the condition has cleared.
        "status": if resolved.is_some() { "final" } else { "preliminary" },
        "code": {
            "coding": [{"system": ALERT_KIND_SYSTEM, "code": alert.key.kind.name()}],
            "text": match alert.category {
                Category::Clinical => "Clinical alert",
                Category::Technical => "Technical alert: check the sensor",
            },
        },
        "severity": severity(alert.severity),
        "patient": subject(alert),
        "identifiedPeriod": match resolved {
            Some(end) => json!({"start": condition.since, "end": end}),
            None => json!({"start": condition.since}),
        },
        "detail": &condition.summary,
    });
    if !evidence_refs.is_empty() {
        issue["evidence"] = json!([{"detail": evidence_refs}]);
    }
    if let AlertState::Acknowledged { by, at } = &alert.state {
        issue["mitigation"] = json!([{
            "action": {"text": "Acknowledged"},
            "date": at,
            "author": {"display": by},
        }]);
    }
    let mut all = vec![json!({"fullUrl": urn(message_id, "issue"), "resource": issue})];
    all.extend(entries);
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": at,
        "entry": all,
    })
}

fn observation(alert: &Alert, e: &Evidence) -> Value {
    let code = codes::code(e.vital);
    let mut o = json!({
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{
            "system": codes::CATEGORY_SYSTEM,
            "code": codes::CATEGORY_CODE,
            "display": codes::CATEGORY_DISPLAY,
        }]}],
        "code": {
            "coding": code.codes.iter().map(|c| json!({"system": LOINC, "code": c})).collect::<Vec<_>>(),
            "text": code.text,
        },
        "subject": subject(alert),
        "effectiveDateTime": e.time,
        "valueQuantity": {
            "value": e.value,
            "unit": e.vital.ucum(),
            "system": UCUM,
            "code": e.vital.ucum(),
        },
        "device": {"display": &*e.device},
    });
    if let Some(p) = code.profile {
        o["meta"] = json!({"profile": [p.url()]});
    }
    if !e.quality.is_empty() {
        let flags: Vec<&str> = e.quality.names().collect();
        o["note"] = json!([{"text": format!("quality: {}", flags.join(", "))}]);
    }
    o
}

fn news2(alert: &Alert, score: &Score) -> Value {
    let quantity = |v: u8| json!({"value": v, "system": UCUM, "code": "{score}"});
    let components: Vec<Value> = Parameter::ALL
        .iter()
        .filter_map(|&p| {
            let (code, display) = sub_score_code(p, score.scale);
            score.sub_score(p).map(|v| {
                json!({
                    "code": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
                    "valueQuantity": quantity(v),
                })
            })
        })
        .collect();
    let mut o = json!({
        "resourceType": "Observation",
        "status": if score.is_complete() { "final" } else { "preliminary" },
        "category": [{"coding": [{
            "system": codes::CATEGORY_SYSTEM,
            "code": "survey",
        }]}],
        "code": {
            "coding": [{"system": SNOMED, "code": NEWS2_TOTAL.0, "display": NEWS2_TOTAL.1}],
            "text": "NEWS2 total score",
        },
        "subject": subject(alert),
        "effectiveDateTime": alert.condition.at,
        "valueQuantity": quantity(score.total),
        "interpretation": [{"text": format!("{} clinical risk: {}", score.band, score.band.response())}],
        "component": components,
    });
    if !score.is_complete() {
        let missing: Vec<&str> = score.missing.iter().map(|p| p.name()).collect();
        o["note"] = json!([{"text": format!(
            "incomplete: no {}; the total and band are lower bounds",
            missing.join(", ")
        )}]);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitalgate_detect::alert::{AlertBook, EscalationPolicy};
    use vitalgate_detect::news2::{self, Observations, Observed};
    use vitalgate_detect::{Condition, ConditionKey, ConditionKind};
    use vitalgate_devices::{Quality, Vital};

    fn hypoxaemia() -> Alert {
        let t = Timestamp(1_796_371_230_000);
        let obs = Observations {
            spo2: Some(Observed::reading(81.0, t, Vital::Spo2)),
            pulse: Some(Observed::reading(112.0, t, Vital::PulseRate)),
            ..Observations::default()
        };
        let condition = Condition {
            key: ConditionKey {
                patient: "patient-0001".into(),
                kind: ConditionKind::SustainedHypoxaemia,
                device: None,
            },
            active: true,
            severity: Severity::High,
            since: Timestamp(1_796_371_200_000),
            at: t,
            evidence: vec![Evidence {
                device: "ox-1".into(),
                vital: Vital::Spo2,
                value: 81.0,
                time: t,
                quality: Quality::LOW_PERFUSION,
            }],
            summary: "SpO2 below 85 % for 30 s".into(),
            news2: Some(news2::score(&obs, Spo2Scale::One)),
        };
        let mut book = AlertBook::new(EscalationPolicy::default());
        book.on_condition(condition, t).unwrap().alert().clone()
    }

    #[test]
    fn a_clinical_alert_is_a_detected_issue_with_its_readings_and_news2() {
        let b = bundle(&hypoxaemia(), "m#1", Timestamp(1_796_371_230_100));
        let entries = b["entry"].as_array().unwrap();
        assert_eq!(entries.len(), 3, "issue, one reading, NEWS2");
        let issue = &entries[0]["resource"];
        assert_eq!(issue["resourceType"], "DetectedIssue");
        assert_eq!(issue["severity"], "high");
        assert_eq!(issue["status"], "preliminary");
        let refs = issue["evidence"][0]["detail"].as_array().unwrap();
        assert_eq!(refs[0]["reference"], entries[1]["fullUrl"]);
        assert_eq!(refs[1]["reference"], entries[2]["fullUrl"]);

        let spo2 = &entries[1]["resource"];
        assert_eq!(spo2["code"]["coding"][0]["code"], "2708-6");
        assert_eq!(spo2["valueQuantity"]["code"], "%");
        assert_eq!(
            spo2["meta"]["profile"][0],
            "http://hl7.org/fhir/StructureDefinition/oxygensat"
        );
        assert_eq!(spo2["note"][0]["text"], "quality: low_perfusion");

        let news2 = &entries[2]["resource"];
        assert_eq!(news2["code"]["coding"][0]["code"], NEWS2_TOTAL.0);
        // SpO2 81 % scores 3, pulse 112 scores 2: 5, with five parameters
        // unmeasured: a lower bound, preliminary.
        assert_eq!(news2["valueQuantity"]["value"], 5);
        assert_eq!(news2["status"], "preliminary");
        let codes: Vec<&str> = news2["component"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["code"]["coding"][0]["code"].as_str().unwrap())
            .collect();
        assert_eq!(codes, ["1104311000000102", "1104351000000103"]);
    }

    #[test]
    fn ids_are_deterministic_per_message_and_part() {
        let a = hypoxaemia();
        let t = Timestamp(0);
        assert_eq!(bundle(&a, "m#1", t), bundle(&a, "m#1", t));
        assert_ne!(
            bundle(&a, "m#1", t)["entry"][0]["fullUrl"],
            bundle(&a, "m#2", t)["entry"][0]["fullUrl"]
        );
    }
}
