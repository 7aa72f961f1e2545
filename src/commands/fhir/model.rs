//! The few FHIR R4 structures the export writes, as serde types.
//!
//! Fields are declared in the order the FHIR specification lists them, so
//! the JSON reads like the specification's examples; empty lists and absent
//! values are left out (FHIR JSON has no empty arrays and no nulls).

use serde::Serialize;

/// A `Bundle` of type `collection`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Always `Bundle`.
    pub resource_type: &'static str,
    /// Always `collection`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When the newest reading in it reached the gateway (an `instant`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// The observations.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<Entry>,
}

/// One entry of a bundle.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `urn:uuid:...`.
    pub full_url: String,
    /// The observation.
    pub resource: Observation,
}

/// An `Observation`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Observation {
    /// Always `Observation`.
    pub resource_type: &'static str,
    /// The profile it conforms to, when one does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// The same UUID as the entry's `fullUrl`, for idempotent import.
    pub identifier: Vec<Identifier>,
    /// Always `final`.
    pub status: &'static str,
    /// Vital signs.
    pub category: Vec<CodeableConcept>,
    /// What was measured.
    pub code: CodeableConcept,
    /// The pseudonymous patient.
    pub subject: Reference,
    /// Measurement time.
    pub effective_date_time: String,
    /// When the gateway received it.
    pub issued: String,
    /// The value, when it is a number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    /// Why there is no value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_absent_reason: Option<CodeableConcept>,
    /// Quality flags.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
    /// The device that measured.
    pub device: Reference,
    /// Panel components (blood pressure).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub component: Vec<Component>,
}

/// `Observation.component`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// What was measured.
    pub code: CodeableConcept,
    /// The value, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_quantity: Option<Quantity>,
    /// Why there is no value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_absent_reason: Option<CodeableConcept>,
}

/// `Meta`, with profiles only.
#[derive(Serialize, Debug)]
pub struct Meta {
    /// Canonical URLs of the profiles claimed.
    pub profile: Vec<&'static str>,
}

/// `Identifier`.
#[derive(Serialize, Debug)]
pub struct Identifier {
    /// The namespace, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<&'static str>,
    /// The value.
    pub value: String,
}

/// `Reference`, by logical identifier (no resource of the bundle is
/// referenced).
#[derive(Serialize, Debug)]
pub struct Reference {
    /// The type of resource referred to.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Its identifier.
    pub identifier: Identifier,
    /// Text shown for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// `CodeableConcept`.
#[derive(Serialize, Debug)]
pub struct CodeableConcept {
    /// Codes.
    pub coding: Vec<Coding>,
    /// Human-readable text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'static str>,
}

/// `Coding`.
#[derive(Serialize, Debug)]
pub struct Coding {
    /// Code system.
    pub system: &'static str,
    /// Code.
    pub code: &'static str,
    /// The code system's display, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<&'static str>,
}

/// `Quantity` with a UCUM unit.
#[derive(Serialize, Debug)]
pub struct Quantity {
    /// The number.
    pub value: serde_json::Number,
    /// The unit as shown (the UCUM code).
    pub unit: &'static str,
    /// Always UCUM.
    pub system: &'static str,
    /// UCUM code.
    pub code: &'static str,
}

/// `Annotation`, text only.
#[derive(Serialize, Debug)]
pub struct Annotation {
    /// The text.
    pub text: String,
}
