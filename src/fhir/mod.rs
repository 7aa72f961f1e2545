//! FHIR R4 vocabulary the gateway shares between its outputs: how each
//! vital is coded (LOINC, UCUM, the core vital-signs profiles) and how
//! resources get deterministic ids. The `export --format fhir` command and
//! the alert messages' FHIR rendering both build on it.

pub mod codes;
pub mod id;
