//! Readings as a FHIR R4 `Bundle` (type `collection`) of vital-signs
//! `Observation`s. The mapping is specified in `docs/FORMAT.md` ("FHIR
//! export"); this module is pure: readings in, bundle out.

pub use vitalgate::fhir::{codes, id};
pub mod model;

use anyhow::Result;
use codes::{BP_PANEL, Code, LOINC, UCUM};
use id::Place;
use model::{
    Annotation, Bundle, CodeableConcept, Coding, Component, Entry, Identifier, Meta, Observation,
    Quantity, Reference,
};
use std::collections::BTreeMap;
use std::sync::Arc;
use vitalgate_chain::crypto::keys::KeyId;
use vitalgate_devices::{Reading, Timestamp, Vital};

/// A decrypted reading and where it is stored.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its place in the ledger.
    pub place: Place,
    /// The reading.
    pub reading: Reading,
}

/// How observations sort: time, device, vital, then patient and place.
type SortKey = (Timestamp, Arc<str>, Vital, Arc<str>, Place);

/// What one observation is made of.
enum Members<'a> {
    /// One reading, one observation.
    Single(&'a Stored),
    /// A blood-pressure panel; at least one of the two is present.
    Panel {
        systolic: Option<&'a Stored>,
        diastolic: Option<&'a Stored>,
    },
}

impl<'a> Members<'a> {
    /// The readings, in component order (systolic first).
    fn readings(&self) -> Vec<&'a Stored> {
        match self {
            Members::Single(s) => vec![*s],
            Members::Panel {
                systolic,
                diastolic,
            } => systolic.iter().chain(diastolic.iter()).copied().collect(),
        }
    }

    /// The reading that stands for the whole (time, device, patient are
    /// the same for every member).
    fn first(&self) -> Option<&'a Stored> {
        self.readings().first().copied()
    }

    /// Sort key: time, device, vital (a panel sorts as systolic), then
    /// patient and place so that the order is total.
    fn key(&self) -> Option<SortKey> {
        let first = self.first()?;
        let vital = match self {
            Members::Single(s) => s.reading.vital,
            Members::Panel { .. } => Vital::SystolicBp,
        };
        Some((
            first.reading.time(),
            Arc::clone(&first.reading.device),
            vital,
            Arc::clone(&first.reading.patient),
            first.place,
        ))
    }
}

/// Group readings into observations: systolic and diastolic readings of
/// the same patient, device and measurement time pair up into one panel
/// (in stored order when there are several); every other reading is an
/// observation of its own. Sorted by time, device, vital.
fn group(stored: &[Stored]) -> Vec<Members<'_>> {
    type Series = (Timestamp, Arc<str>, Arc<str>);
    let mut panels: BTreeMap<Series, (Vec<&Stored>, Vec<&Stored>)> = BTreeMap::new();
    let mut out = Vec::with_capacity(stored.len());
    for s in stored {
        let r = &s.reading;
        if !codes::in_bp_panel(r.vital) {
            out.push(Members::Single(s));
            continue;
        }
        let slot = panels
            .entry((r.time(), Arc::clone(&r.device), Arc::clone(&r.patient)))
            .or_default();
        if r.vital == Vital::SystolicBp {
            slot.0.push(s);
        } else {
            slot.1.push(s);
        }
    }
    for (systolic, diastolic) in panels.into_values() {
        let n = systolic.len().max(diastolic.len());
        for i in 0..n {
            out.push(Members::Panel {
                systolic: systolic.get(i).copied(),
                diastolic: diastolic.get(i).copied(),
            });
        }
    }
    let mut keyed: Vec<_> = out
        .into_iter()
        .filter_map(|m| Some((m.key()?, m)))
        .collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, m)| m).collect()
}

/// The bundle of `stored` readings from the ledger of gateway `gateway`.
/// Deterministic: the same readings give the same bytes.
pub fn bundle(gateway: &KeyId, stored: &[Stored]) -> Result<Bundle> {
    let timestamp = stored
        .iter()
        .map(|s| s.reading.gateway_time)
        .max()
        .map(time)
        .transpose()?;
    let entry = group(stored)
        .iter()
        .map(|m| entry(gateway, m))
        .collect::<Result<_>>()?;
    Ok(Bundle {
        resource_type: "Bundle",
        kind: "collection",
        timestamp,
        entry,
    })
}

fn entry(gateway: &KeyId, members: &Members<'_>) -> Result<Entry> {
    let readings = members.readings();
    let Some(first) = readings.first() else {
        anyhow::bail!("an observation without readings");
    };
    let places: Vec<Place> = readings.iter().map(|s| s.place).collect();
    let uuid = format!("urn:uuid:{}", id::observation_uuid(gateway, &places));
    let r = &first.reading;
    let (code, value_quantity, data_absent_reason, component) = match members {
        Members::Single(s) => {
            let (q, absent) = value(&s.reading);
            (codes::code(s.reading.vital), q, absent, Vec::new())
        }
        Members::Panel {
            systolic,
            diastolic,
        } => (
            BP_PANEL,
            None,
            None,
            vec![
                component_of(Vital::SystolicBp, *systolic),
                component_of(Vital::DiastolicBp, *diastolic),
            ],
        ),
    };
    let issued = readings
        .iter()
        .map(|s| s.reading.gateway_time)
        .max()
        .unwrap_or(r.gateway_time);
    let resource = Observation {
        resource_type: "Observation",
        meta: code.profile.map(|p| Meta {
            profile: vec![p.url()],
        }),
        identifier: vec![Identifier {
            system: Some("urn:ietf:rfc:3986"),
            value: uuid.clone(),
        }],
        status: "final",
        category: vec![CodeableConcept {
            coding: vec![Coding {
                system: codes::CATEGORY_SYSTEM,
                code: codes::CATEGORY_CODE,
                display: Some(codes::CATEGORY_DISPLAY),
            }],
            text: None,
        }],
        code: concept(code),
        subject: Reference {
            kind: "Patient",
            identifier: Identifier {
                system: None,
                value: r.patient.to_string(),
            },
            display: None,
        },
        effective_date_time: time(r.time())?,
        issued: time(issued)?,
        value_quantity,
        data_absent_reason,
        note: quality_note(&readings, matches!(members, Members::Panel { .. }))
            .into_iter()
            .collect(),
        device: Reference {
            kind: "Device",
            identifier: Identifier {
                system: None,
                value: r.device.to_string(),
            },
            display: Some(r.device.to_string()),
        },
        component,
    };
    Ok(Entry {
        full_url: uuid,
        resource,
    })
}

fn concept(code: Code) -> CodeableConcept {
    CodeableConcept {
        coding: code
            .codes
            .iter()
            .map(|c| Coding {
                system: LOINC,
                code: c,
                display: None,
            })
            .collect(),
        text: Some(code.text),
    }
}

/// A panel component; a missing reading gets the data-absent reason
/// `unknown`, as the profile's systolic and diastolic slices are both 1..1.
fn component_of(vital: Vital, stored: Option<&Stored>) -> Component {
    let (value_quantity, data_absent_reason) = match stored {
        Some(s) => value(&s.reading),
        None => (None, Some(absent("unknown"))),
    };
    Component {
        code: concept(codes::code(vital)),
        value_quantity,
        data_absent_reason,
    }
}

/// The value as a UCUM quantity, or why there is none (a non-finite
/// number cannot be a FHIR decimal).
fn value(r: &Reading) -> (Option<Quantity>, Option<CodeableConcept>) {
    match number(r.value) {
        Some(value) => (
            Some(Quantity {
                value,
                unit: r.vital.ucum(),
                system: UCUM,
                code: r.vital.ucum(),
            }),
            None,
        ),
        None if r.value.is_nan() => (None, Some(absent("not-a-number"))),
        None if r.value > 0.0 => (None, Some(absent("positive-infinity"))),
        None => (None, Some(absent("negative-infinity"))),
    }
}

/// A JSON number for a FHIR decimal: integral values without a fraction
/// (a device's `97` is not `97.0`, which would claim a decimal of
/// precision), others in the shortest form that reads back the same.
fn number(v: f64) -> Option<serde_json::Number> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if v.is_finite() && v.fract() == 0.0 && v.abs() <= EXACT {
        Some(serde_json::Number::from(v as i64))
    } else {
        serde_json::Number::from_f64(v)
    }
}

fn absent(code: &'static str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding {
            system: codes::DATA_ABSENT,
            code,
            display: None,
        }],
        text: None,
    }
}

/// The note naming the quality flags of the readings, if any is flagged:
/// `quality: artifact, low_perfusion`, or for a panel
/// `quality: systolic_bp artifact; diastolic_bp low_signal`.
fn quality_note(readings: &[&Stored], panel: bool) -> Option<Annotation> {
    let flagged: Vec<&Reading> = readings
        .iter()
        .map(|s| &s.reading)
        .filter(|r| !r.quality.is_empty())
        .collect();
    if flagged.is_empty() {
        return None;
    }
    let flags = |r: &Reading| r.quality.names().collect::<Vec<_>>().join(", ");
    let text = if panel {
        flagged
            .iter()
            .map(|r| format!("{} {}", r.vital, flags(r)))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        flagged
            .iter()
            .map(|r| flags(r))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let invalid = flagged.iter().any(|r| !r.is_valid());
    Some(Annotation {
        text: format!(
            "quality: {text}{}",
            if invalid {
                " (not clinically valid)"
            } else {
                ""
            }
        ),
    })
}

/// A time as FHIR `dateTime`/`instant`: RFC 3339 in UTC with milliseconds.
/// FHIR years run from 0001 to 9999.
fn time(t: Timestamp) -> Result<String> {
    let s = t.to_string();
    let year_ok =
        s.len() == 24 && s.as_bytes()[..4].iter().all(u8::is_ascii_digit) && !s.starts_with("0000");
    if !year_ok {
        anyhow::bail!(
            "a reading time ({} ms since 1970) is outside the years FHIR can express",
            t.millis()
        );
    }
    Ok(s)
}

#[cfg(test)]
mod tests;
