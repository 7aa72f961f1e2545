//! SenML JSON (`application/senml+json`), one pack per MQTT message.
//!
//! # Specifications followed
//!
//! * **RFC 8428**, *Sensor Measurement Lists (SenML)*, August 2018:
//!   §4 (structure), §4.1–4.2 (base and regular fields), §4.3 Table 1
//!   (labels and JSON types), §4.4 (extensibility, versions), §4.5.1
//!   (names), §4.5.2 (units), §4.5.3 (time), §4.5.4 (values), §5 (JSON
//!   representation and examples), §11 (CDDL), §12.1 (units registry).
//! * **RFC 9100**, *SenML Features and Versions*, August 2021: `bver` is a
//!   feature bitmap; feature codes 1 and 3 make up version 10, feature 4 is
//!   "Secondary Units" (version 26).
//! * **RFC 8798**, *Additional Units for SenML*, June 2020: the secondary
//!   units registry (`ms`, `hPa`, `/100`, ...), each a linear transform of a
//!   primary unit.
//!
//! # What the decoder does, rule by rule
//!
//! * The payload must be a JSON array (RFC 8428 §5: "The root JSON value
//!   consists of an array") of one or more objects (§11 CDDL `[1* record]`).
//!   Anything else is [`Reject::Malformed`].
//! * Labels are checked against their JSON types (§4.3 Table 1 / §5 Table
//!   2); a mistyped label, a label given twice in one record, or a JSON
//!   syntax error rejects the whole message as `Malformed`. Unknown labels
//!   are ignored, except labels ending in `_`, which "MUST" produce an
//!   error (§4.4): the whole message is rejected as [`Reject::Unsupported`].
//! * Base fields (`bn`, `bt`, `bu`, `bv`, `bs`, `bver`) apply to their own
//!   record and every later record until a record sets the same base field
//!   again (§4). The resolved name is `bn` + `n` (§4.5.1), the time
//!   `bt` + `t` (§4.5.3, a missing one counts as 0), the value `bv` + `v`
//!   (§4.5.4), the sum `bs` + `s`, the unit `u`, else `bu` (§4.5.2).
//! * A resolved time below 2^28 is relative to "now" (§4.5.3), which the
//!   RFC leaves to the receiving system; the decoder uses the `received`
//!   time the gateway passes in, as in the RFC's own example of a receiver
//!   that "resolves 'now' based on the time of reception". At or above 2^28
//!   a time is seconds since the Unix epoch. Every
//!   measurement therefore carries a `device_time`. A time that does not
//!   convert, lies before 1970 or after 9999-12-31 is [`Reject::BadTime`]
//!   for that record only. Whether a time is plausible against the gateway's
//!   clock is the gateway's business, not the format's.
//! * Value fields: §4.2 says "Exactly one Value field MUST appear unless
//!   there is a Sum field". The RFC's own example in §5.1.7, however, opens
//!   with a record that holds only `bn`, and the §11 CDDL makes every value
//!   optional. The decoder follows the example: a record with no value and
//!   no sum that carries *only base fields* (and unknown labels) is a
//!   base-only record; it sets base values and yields nothing. A record
//!   without value or sum that carries `n`, `u`, `t` or `ut` claims to be a
//!   measurement without giving one, and a record with two or more value
//!   fields breaks §4.2: both reject the whole message as `Malformed`.
//! * Names: the resolved name of every record that has a value or sum must
//!   consist of `A-Z a-z 0-9 - : . / _` and start with a letter or digit
//!   (§4.5.1); otherwise the whole message is `Malformed`. Names are
//!   compared byte by byte, case-sensitively (§3).
//! * Versions: `bver` must be a positive integer (§4.1, CDDL `uint`), and
//!   every record of a pack must have the same version (§4.4; the default is
//!   10) — else `Malformed`. A version the gateway does not understand makes
//!   the pack unusable (§4.4 "MUST NOT use this object"), reported as
//!   `Unsupported`: versions up to 10 are accepted (RFC 8428's own example
//!   in §5.1.2 uses `"bver":5`); versions above 10 are read as the RFC 9100
//!   feature bitmap and accepted when they set no feature other than 1, 3
//!   (version 10) and 4 (secondary units), e.g. 26.
//! * `ut` (update time, §4.2) and sums are type-checked and otherwise not
//!   used: [`Measurement`] has no field for an expected update period, and
//!   a sum is not a vital value.
//! * Arithmetic that overflows to infinity (`bv` + `v` with huge operands)
//!   rejects the message as `Malformed` (§5 asks receivers to handle IEEE
//!   doubles, and infinity is not one a record can mean).
//!
//! Records are numbered from 0 in error details. All checks that make a
//! *pack* invalid run before any measurement is
//! reported: a rejected message yields exactly one error and nothing else.
//! Problems that concern one record only (its unit does not fit its vital,
//! it carries a string where a vital needs a number, its time is bad) are
//! reported as one error per record, and the pack's other records still
//! yield their measurements.
//!
//! # Which records are vitals
//!
//! A record is a vital when its resolved name maps to one: first the
//! profile's `[names]` ([`FormatOptions::names`]) by full resolved name,
//! then by its last segment (the part after the last `:` or `/`; `;` cannot
//! occur in a SenML name), then the built-in names below, by last segment.
//! Records whose names map to nothing (battery, location, ...) are not
//! vitals and are skipped silently, whatever their value type; a record
//! whose name maps to a vital but whose value is a string, boolean, data
//! value or only a sum is reported as `Unsupported`.
//!
//! Built-in names (case-sensitive), besides each vital's own
//! [`Vital::name`] and its LOINC code ([`Vital::loinc`]):
//!
//! | vital | names |
//! |---|---|
//! | heart_rate | `heartRate`, `heart-rate`, `hr`, `HR` |
//! | pulse_rate | `pulseRate`, `pulse-rate`, `pulse`, `pr`, `PR` |
//! | spo2 | `SpO2`, `SPO2`, `spO2`, `oxygenSaturation`, `oxygen_saturation`, `oxygen-saturation` |
//! | respiratory_rate | `respiratoryRate`, `respiratory-rate`, `respRate`, `resp_rate`, `resp` |
//! | body_temperature | `bodyTemperature`, `body-temperature`, `bodyTemp`, `body_temp` |
//! | systolic_bp | `systolic`, `systolicBp`, `systolicBloodPressure`, `systolic_blood_pressure`, `sys` |
//! | diastolic_bp | `diastolic`, `diastolicBp`, `diastolicBloodPressure`, `diastolic_blood_pressure`, `dia` |
//! | mean_arterial_pressure | `map`, `MAP`, `meanArterialPressure`, `mean-arterial-pressure` |
//! | perfusion_index | `perfusionIndex`, `perfusion-index`, `pi`, `PI` |
//! | rr_interval | `rrInterval`, `rr-interval`, `rri`, `RRI` |
//!
//! Deliberately *not* built in, because they are ambiguous: `temp` and
//! `temperature` (RFC 8428's own examples use `temp` for a room
//! thermostat: a 23 °C room read as body temperature would be a false
//! hypothermia alarm), `rr` (respiratory rate or R-R interval?) and `ibi`
//! (an optical inter-beat interval is not an ECG R-R interval). A profile
//! maps such names explicitly when it knows what its device means.
//!
//! # Units
//!
//! Values are converted to the vital's canonical UCUM unit
//! ([`Vital::ucum`]). Accepted units per vital (SenML primary units from
//! RFC 8428 §12.1, secondary units from RFC 8798, and, as an extension, the
//! UCUM symbol of the canonical unit, which cannot be misread):
//!
//! | vital | units → conversion |
//! |---|---|
//! | heart/pulse rate | `beat/min`, `1/min`, `/min` (UCUM) ×1; `1/s`, `Hz` ×60 |
//! | respiratory rate | `1/min`, `/min` (UCUM) ×1; `1/s`, `Hz` ×60 |
//! | SpO2, perfusion index | `/` ×100; `%` ×100 up to 1, else ×1 (see below); `/100` (RFC 8798 percent) ×1 |
//! | body temperature | `Cel` ×1; `K` −273.15; `[degF]` (UCUM) (x−32)×5/9 |
//! | blood pressures | `mm[Hg]` (UCUM), `mmHg` ×1; `Pa` ÷133.322387415; `hPa` (RFC 8798), `kPa` (UCUM) accordingly |
//! | RR interval | `ms` (RFC 8798) ×1; `s` ×1000 |
//!
//! A record with no unit and no base unit gets the vital's canonical unit
//! (§4.5.2 leaves units to "the application context"; the gateway's
//! context is its canonical units). Any other unit is `Unsupported` for
//! that record: `degF` (RFC 8428 §12.1 rule 8 names it as not to be used),
//! `beat/min` for a respiratory rate, `beats` (a cumulative count), ...
//! Converted (not identity) values are rounded to 9 decimals so that
//! `0.97` `/` reads back as exactly 97 %.
//!
//! **`%` in SenML is a ratio, and devices in the field send percent.**
//! RFC 8428 §12.1 Note 2: "%" is a legacy synonym of "/" and "is NOT a
//! percentage but the absolute ratio"; RFC 8798 registers `/100` for
//! percent because of this. Devices (and this gateway's own integration
//! tests) commonly send `{"u":"%","v":97}` all the same. For SpO2 and
//! perfusion index a ratio above 1 (more than 100 %) cannot exist, so the
//! two readings never overlap where it matters: a `%` value up to 1 is read
//! as the RFC ratio (`0.97` → 97 %), a value above 1 as a percentage (`97`
//! → 97 %). A conformant device is thus always read exactly as the RFC
//! says. What remains ambiguous is a device that misuses `%` for values of
//! 1 % or less: for SpO2 that is an impossible value either way, but a
//! *perfusion index* of 0.4 % sent that way is read as 40 % (flagged
//! impossible) and one of 0.2 % as 20 % — configure such devices to send
//! `/100` (or `/` with a ratio).
//!
//! Secondary units are accepted whatever `bver` says (RFC 9100 §4 asks the
//! *sender* to set feature 4): their names cannot be confused with primary
//! ones.
//!
//! # Quality
//!
//! SenML has no status, sentinel or quality fields: every measurement has
//! [`Quality::NONE`], and the decoder never reports a
//! [`crate::Status`]. A device with its sensor off simply sends no record.
//!
//! # Encoder
//!
//! One pack per snapshot, SenML version 10, primary units only:
//!
//! ```json
//! [{"bn":"urn:dev:vitalgate:ox-1:","bt":1763708462.123,"n":"heart_rate","u":"beat/min","v":72.0},
//!  {"n":"spo2","u":"/","v":0.97}, ...]
//! ```
//!
//! Names are [`Vital::name`]; units: `beat/min` (heart and pulse rate),
//! `1/min` (respiratory rate), `/` ratio (SpO2, perfusion index), `Cel`,
//! `Pa` (pressures, the only registered pressure unit), `s` (RR interval).
//! Values are rounded as a typical wearable reports them: rates, SpO2 and
//! pressures to integers (pressures in mmHg before conversion to Pa),
//! temperature to 0.1 °C, perfusion index to 0.01 %, RR interval to 1 ms.
//! Missing or non-finite values are left out; when the snapshot's quality
//! says the sensor is off or searching, or no value is left, nothing is
//! written (a device with nothing to say sends no message). The base name
//! `urn:dev:vitalgate:<device id>:` is a private, SenML-valid name (not a
//! registered RFC 9039 subtype); characters of the device id that SenML
//! names do not allow are replaced by `_`.

use super::FormatOptions;
use super::json::{Str, clip, round9, write_json};
use crate::decode::{DecodeError, Decoded, Decoder, Encoder, Measurement, MessageDecoder, Reject};
use crate::{Quality, Snapshot, Timestamp, Vital};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// Vitals this format carries: all of them (a SenML name can denote any).
pub const VITALS: &[Vital] = &Vital::ALL;

/// A fresh decoder using the profile's name map.
pub fn decoder(options: &FormatOptions) -> Decoder {
    Decoder::Message(Box::new(SenmlDecoder::new(options)))
}

/// An encoder writing what a SenML wearable with this id sends.
pub fn encoder(device_id: &str) -> Box<dyn Encoder> {
    Box::new(SenmlEncoder::new(device_id))
}

/// Below this, a resolved time is relative to "now" (RFC 8428 §4.5.3).
const RELATIVE_LIMIT: f64 = 268_435_456.0;

/// 9999-12-31T23:59:59.999Z, the last instant the gateway can represent
/// in RFC 3339.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// RFC 9100 feature bits this decoder implements: Reserved1 and Reserved3
/// (together version 10) and Secondary Units (4).
const KNOWN_FEATURES: u64 = (1 << 1) | (1 << 3) | (1 << 4);

/// Longest JSON-safe integer (RFC 9100 §2.1: feature codes below 53).
const MAX_VERSION: f64 = 9_007_199_254_740_991.0;

/// Pascal per millimetre of mercury (conventional, exact by definition).
const PA_PER_MMHG: f64 = 133.322_387_415;

/// Stateless-between-messages SenML decoder (buffers are reused).
pub struct SenmlDecoder {
    names: BTreeMap<String, Vital>,
    pending: Vec<Decoded>,
    name: String,
}

impl SenmlDecoder {
    /// A decoder with the profile's name map.
    pub fn new(options: &FormatOptions) -> Self {
        SenmlDecoder {
            names: options.names.clone(),
            pending: Vec::new(),
            name: String::new(),
        }
    }
}

impl MessageDecoder for SenmlDecoder {
    fn decode(
        &mut self,
        payload: &[u8],
        offset: u64,
        received: Timestamp,
        out: &mut dyn FnMut(Decoded),
    ) {
        self.pending.clear();
        let len = payload.len() as u64;
        let mut pack = Pack {
            names: &self.names,
            name: &mut self.name,
            pending: &mut self.pending,
            received,
            offset,
            len,
            base: Base::default(),
            version: None,
            records: 0,
            fatal: None,
        };
        let mut de = serde_json::Deserializer::from_slice(payload);
        let parsed = (&mut pack).deserialize(&mut de).and_then(|()| de.end());
        let fatal = pack.fatal.take();
        match (fatal, parsed) {
            (Some(e), _) => out(Decoded::Error(e)),
            (None, Err(e)) => out(Decoded::Error(DecodeError::new(
                offset,
                len,
                Reject::Malformed,
                format!("not a valid SenML JSON pack: {e}"),
            ))),
            (None, Ok(())) => {
                for d in self.pending.drain(..) {
                    out(d);
                }
            }
        }
    }
}

/// Base values in force (RFC 8428 §4.1).
#[derive(Default)]
struct Base<'de> {
    name: Option<Cow<'de, str>>,
    time: Option<f64>,
    unit: Option<Cow<'de, str>>,
    value: Option<f64>,
    sum: Option<f64>,
}

/// Decoding state of one pack.
struct Pack<'a, 'de> {
    names: &'a BTreeMap<String, Vital>,
    name: &'a mut String,
    pending: &'a mut Vec<Decoded>,
    received: Timestamp,
    offset: u64,
    len: u64,
    base: Base<'de>,
    /// The pack's version, once a record set `bver`.
    version: Option<u64>,
    records: usize,
    fatal: Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for &mut Pack<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Pack<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a SenML pack: a JSON array of record objects (RFC 8428 §5)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(record) = seq.next_element_seed(RecordSeed(self.records))? {
            self.process(record);
            self.records += 1;
            if self.fatal.is_some() {
                return Err(de::Error::custom("pack rejected"));
            }
        }
        if self.records == 0 {
            return Err(de::Error::custom(
                "empty pack: a SenML pack has at least one record (RFC 8428 §11)",
            ));
        }
        Ok(())
    }
}

impl<'de> Pack<'_, 'de> {
    fn reject(&mut self, reason: Reject, detail: String) {
        if self.fatal.is_none() {
            self.fatal = Some(DecodeError::new(self.offset, self.len, reason, detail));
        }
    }

    fn record_error(&mut self, reason: Reject, detail: String) {
        self.pending.push(Decoded::Error(DecodeError::new(
            self.offset,
            self.len,
            reason,
            detail,
        )));
    }

    fn process(&mut self, r: Record<'de>) {
        let i = self.records;
        if let Some(label) = &r.must_understand {
            let detail = format!(
                "record {i}: label `{}` ends with `_` (must-understand, RFC 8428 §4.4) and this gateway does not implement it",
                clip(label)
            );
            self.reject(Reject::Unsupported, detail);
            return;
        }
        if let Some(v) = r.bver {
            if !((1.0..=MAX_VERSION).contains(&v) && v.fract() == 0.0) {
                self.reject(
                    Reject::Malformed,
                    format!("record {i}: bver {v} is not a positive integer (RFC 8428 §4.1)"),
                );
                return;
            }
            let v = v as u64;
            let before = match self.version {
                Some(prev) => prev,
                None if i == 0 => v,
                None => 10,
            };
            if before != v {
                self.reject(
                    Reject::Malformed,
                    format!("record {i}: bver {v} differs from the version {before} of the records before it; all records of a pack have the same version (RFC 8428 §4.4)"),
                );
                return;
            }
            if v > 10 && v & !KNOWN_FEATURES != 0 {
                self.reject(
                    Reject::Unsupported,
                    format!("SenML version {v} uses features (RFC 9100 bitmap {v:#b}) this gateway does not implement; it understands versions up to 10 and 26 (secondary units)"),
                );
                return;
            }
            self.version = Some(v);
        }
        if r.bn.is_some() {
            self.base.name = r.bn;
        }
        if r.bt.is_some() {
            self.base.time = r.bt;
        }
        if r.bu.is_some() {
            self.base.unit = r.bu;
        }
        if r.bv.is_some() {
            self.base.value = r.bv;
        }
        if r.bs.is_some() {
            self.base.sum = r.bs;
        }

        let values = usize::from(r.v.is_some())
            + usize::from(r.vs)
            + usize::from(r.vb.is_some())
            + usize::from(r.vd);
        if values > 1 {
            self.reject(
                Reject::Malformed,
                format!("record {i} has {values} value fields; exactly one of v, vs, vb, vd may appear (RFC 8428 §4.2)"),
            );
            return;
        }
        if values == 0 && r.s.is_none() {
            if r.n.is_some() || r.u.is_some() || r.t.is_some() || r.ut.is_some() {
                self.reject(
                    Reject::Malformed,
                    format!(
                        "record {i} has a name, unit or time but no value or sum (RFC 8428 §4.2)"
                    ),
                );
            }
            // Otherwise a base-only record (RFC 8428 §5.1.7): nothing to report.
            return;
        }

        self.name.clear();
        if let Some(bn) = &self.base.name {
            self.name.push_str(bn);
        }
        if let Some(n) = &r.n {
            self.name.push_str(n);
        }
        if let Err(why) = check_name(self.name) {
            let detail = format!(
                "record {i}: resolved name `{}` {why} (RFC 8428 §4.5.1)",
                clip(self.name)
            );
            self.reject(Reject::Malformed, detail);
            return;
        }

        let time = self.base.time.unwrap_or(0.0) + r.t.unwrap_or(0.0);
        if !time.is_finite() {
            self.reject(
                Reject::Malformed,
                format!("record {i}: bt + t is not a finite number"),
            );
            return;
        }
        let value = r.v.map(|v| self.base.value.unwrap_or(0.0) + v);
        if value.is_some_and(|v| !v.is_finite()) {
            self.reject(
                Reject::Malformed,
                format!("record {i}: bv + v is not a finite number"),
            );
            return;
        }
        if let Some(s) = r.s {
            if !(self.base.sum.unwrap_or(0.0) + s).is_finite() {
                self.reject(
                    Reject::Malformed,
                    format!("record {i}: bs + s is not a finite number"),
                );
                return;
            }
        }

        let Some(vital) = self.vital_for() else {
            return; // not a vital: battery, location, ...
        };
        let Some(value) = value else {
            let kind = if r.vs {
                "a string value (vs)"
            } else if r.vb.is_some() {
                "a boolean value (vb)"
            } else if r.vd {
                "a data value (vd)"
            } else {
                "only a sum (s)"
            };
            let detail = format!(
                "record {i} `{}` is {vital} but carries {kind}; a vital needs a numeric `v`",
                clip(self.name)
            );
            self.record_error(Reject::Unsupported, detail);
            return;
        };
        let unit = r.u.as_deref().or(self.base.unit.as_deref());
        let value = match convert(vital, unit, value) {
            Ok(v) => v,
            Err(why) => {
                let detail = format!("record {i} `{}` ({vital}): {why}", clip(self.name));
                self.record_error(Reject::Unsupported, detail);
                return;
            }
        };
        let device_time = match resolve_time(time, self.received) {
            Ok(t) => t,
            Err(why) => {
                let detail = format!("record {i} `{}` ({vital}): {why}", clip(self.name));
                self.record_error(Reject::BadTime, detail);
                return;
            }
        };
        self.pending.push(Decoded::Measurement(Measurement {
            vital,
            value,
            device_time: Some(device_time),
            quality: Quality::NONE,
            offset: self.offset,
        }));
    }

    /// The vital the current resolved name denotes, if any.
    fn vital_for(&self) -> Option<Vital> {
        let name = self.name.as_str();
        if let Some(v) = self.names.get(name) {
            return Some(*v);
        }
        let last = last_segment(name);
        if last.len() != name.len() {
            if let Some(v) = self.names.get(last) {
                return Some(*v);
            }
        }
        builtin_vital(last)
    }
}

/// The part of a resolved name after its last `:` or `/`.
fn last_segment(name: &str) -> &str {
    match name.rfind([':', '/']) {
        Some(i) => name.get(i + 1..).unwrap_or(""),
        None => name,
    }
}

/// RFC 8428 §4.5.1 character rules.
fn check_name(name: &str) -> Result<(), &'static str> {
    let bytes = name.as_bytes();
    match bytes.first() {
        None => return Err("is empty; a record with a value needs a name (bn + n)"),
        Some(c) if !c.is_ascii_alphanumeric() => {
            return Err("must start with a letter or digit");
        }
        Some(_) => {}
    }
    if bytes
        .iter()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b':' | b'.' | b'/' | b'_'))
    {
        Ok(())
    } else {
        Err("contains a character outside A-Z a-z 0-9 - : . / _")
    }
}

/// The built-in record names (last segment, case-sensitive).
fn builtin_vital(name: &str) -> Option<Vital> {
    use Vital::*;
    let v = match name {
        "heart_rate" | "heartRate" | "heart-rate" | "hr" | "HR" | "8867-4" => HeartRate,
        "pulse_rate" | "pulseRate" | "pulse-rate" | "pulse" | "pr" | "PR" | "8889-8" => PulseRate,
        "spo2" | "SpO2" | "SPO2" | "spO2" | "oxygenSaturation" | "oxygen_saturation"
        | "oxygen-saturation" | "59408-5" => Spo2,
        "respiratory_rate" | "respiratoryRate" | "respiratory-rate" | "respRate" | "resp_rate"
        | "resp" | "9279-1" => RespiratoryRate,
        "body_temperature" | "bodyTemperature" | "body-temperature" | "bodyTemp" | "body_temp"
        | "8310-5" => BodyTemperature,
        "systolic_bp"
        | "systolic"
        | "systolicBp"
        | "systolicBloodPressure"
        | "systolic_blood_pressure"
        | "sys"
        | "8480-6" => SystolicBp,
        "diastolic_bp"
        | "diastolic"
        | "diastolicBp"
        | "diastolicBloodPressure"
        | "diastolic_blood_pressure"
        | "dia"
        | "8462-4" => DiastolicBp,
        "mean_arterial_pressure"
        | "map"
        | "MAP"
        | "meanArterialPressure"
        | "mean-arterial-pressure"
        | "8478-0" => MeanArterialPressure,
        "perfusion_index" | "perfusionIndex" | "perfusion-index" | "pi" | "PI" | "61006-3" => {
            PerfusionIndex
        }
        "rr_interval" | "rrInterval" | "rr-interval" | "rri" | "RRI" | "8637-4" => RrInterval,
        _ => return None,
    };
    Some(v)
}

/// How a unit's value becomes the canonical one.
#[derive(Clone, Copy)]
enum Conv {
    Same,
    Scale(f64),
    /// SenML `%`: a ratio like `/` up to 1, a percentage above (see the
    /// module docs).
    PercentRatio,
    Offset(f64),
    Fahrenheit,
}

fn conversion(vital: Vital, unit: &str) -> Option<Conv> {
    use Vital::*;
    let c = match (vital, unit) {
        (HeartRate | PulseRate, "beat/min" | "1/min" | "/min") => Conv::Same,
        (RespiratoryRate, "1/min" | "/min") => Conv::Same,
        (HeartRate | PulseRate | RespiratoryRate, "1/s" | "Hz") => Conv::Scale(60.0),
        (Spo2 | PerfusionIndex, "/") => Conv::Scale(100.0),
        (Spo2 | PerfusionIndex, "%") => Conv::PercentRatio,
        (Spo2 | PerfusionIndex, "/100") => Conv::Same,
        (BodyTemperature, "Cel") => Conv::Same,
        (BodyTemperature, "K") => Conv::Offset(-273.15),
        (BodyTemperature, "[degF]") => Conv::Fahrenheit,
        (SystolicBp | DiastolicBp | MeanArterialPressure, "mm[Hg]" | "mmHg") => Conv::Same,
        (SystolicBp | DiastolicBp | MeanArterialPressure, "Pa") => Conv::Scale(1.0 / PA_PER_MMHG),
        (SystolicBp | DiastolicBp | MeanArterialPressure, "hPa") => {
            Conv::Scale(100.0 / PA_PER_MMHG)
        }
        (SystolicBp | DiastolicBp | MeanArterialPressure, "kPa") => {
            Conv::Scale(1000.0 / PA_PER_MMHG)
        }
        (RrInterval, "ms") => Conv::Same,
        (RrInterval, "s") => Conv::Scale(1000.0),
        _ => return None,
    };
    Some(c)
}

fn convert(vital: Vital, unit: Option<&str>, v: f64) -> Result<f64, String> {
    let Some(unit) = unit else {
        return Ok(v); // application context: the canonical unit
    };
    let Some(conv) = conversion(vital, unit) else {
        return Err(format!(
            "unit `{}` does not fit {vital} (canonical unit `{}`)",
            clip(unit),
            vital.ucum()
        ));
    };
    let x = match conv {
        Conv::Same => return Ok(v),
        Conv::Scale(k) => v * k,
        Conv::PercentRatio if v > 1.0 => v,
        Conv::PercentRatio => v * 100.0,
        Conv::Offset(k) => v + k,
        Conv::Fahrenheit => (v - 32.0) * 5.0 / 9.0,
    };
    Ok(round9(x))
}

/// RFC 8428 §4.5.3: absolute at or above 2^28, else relative to `now`.
fn resolve_time(t: f64, now: Timestamp) -> Result<Timestamp, String> {
    let ts = if t >= RELATIVE_LIMIT {
        Timestamp::from_secs_f64(t).ok_or_else(|| format!("time {t} s is out of range"))?
    } else {
        let ms = (t * 1000.0).round();
        if ms.is_nan() || ms.abs() >= 1.0e17 {
            return Err(format!("relative time {t} s is out of range"));
        }
        now.add_millis(ms as i64)
    };
    if ts.millis() < 0 {
        return Err(format!("time {ts} is before 1970"));
    }
    if ts.millis() > MAX_TIME_MS {
        return Err(format!("time {ts} is after 9999-12-31"));
    }
    Ok(ts)
}

/// One record as read, before base values are applied.
#[derive(Default)]
struct Record<'de> {
    bn: Option<Cow<'de, str>>,
    bt: Option<f64>,
    bu: Option<Cow<'de, str>>,
    bv: Option<f64>,
    bs: Option<f64>,
    bver: Option<f64>,
    n: Option<Cow<'de, str>>,
    u: Option<Cow<'de, str>>,
    v: Option<f64>,
    vs: bool,
    vb: Option<bool>,
    vd: bool,
    s: Option<f64>,
    t: Option<f64>,
    ut: Option<f64>,
    /// The first unknown label ending in `_`.
    must_understand: Option<String>,
}

/// A record's labels (RFC 8428 §4.3 Table 1).
enum Label {
    Bn,
    Bt,
    Bu,
    Bv,
    Bs,
    Bver,
    N,
    U,
    V,
    Vs,
    Vb,
    Vd,
    S,
    T,
    Ut,
    MustUnderstand(String),
    Other,
}

impl Label {
    fn from_str(s: &str) -> Label {
        match s {
            "bn" => Label::Bn,
            "bt" => Label::Bt,
            "bu" => Label::Bu,
            "bv" => Label::Bv,
            "bs" => Label::Bs,
            "bver" => Label::Bver,
            "n" => Label::N,
            "u" => Label::U,
            "v" => Label::V,
            "vs" => Label::Vs,
            "vb" => Label::Vb,
            "vd" => Label::Vd,
            "s" => Label::S,
            "t" => Label::T,
            "ut" => Label::Ut,
            _ if s.ends_with('_') => Label::MustUnderstand(s.to_owned()),
            _ => Label::Other,
        }
    }
}

impl<'de> de::Deserialize<'de> for Label {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Label;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a SenML label")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Label, E> {
                Ok(Label::from_str(s))
            }
        }
        d.deserialize_str(V)
    }
}

/// Deserializes one record; carries its index for error messages.
struct RecordSeed(usize);

impl<'de> DeserializeSeed<'de> for RecordSeed {
    type Value = Record<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Record<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for RecordSeed {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "record {} to be a JSON object", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let i = self.0;
        let mut r = Record::default();
        fn once<T, E: de::Error>(slot: &Option<T>, i: usize, label: &str) -> Result<(), E> {
            if slot.is_some() {
                Err(E::custom(format!(
                    "record {i}: label `{label}` appears twice"
                )))
            } else {
                Ok(())
            }
        }
        fn typed<T, E: fmt::Display, E2: de::Error>(
            x: Result<T, E>,
            i: usize,
            label: &str,
        ) -> Result<T, E2> {
            x.map_err(|e| E2::custom(format!("record {i}: `{label}`: {e}")))
        }
        while let Some(label) = map.next_key::<Label>()? {
            match label {
                Label::Bn => {
                    once(&r.bn, i, "bn")?;
                    r.bn = Some(typed(map.next_value::<Str>(), i, "bn")?.0);
                }
                Label::Bt => {
                    once(&r.bt, i, "bt")?;
                    r.bt = Some(typed(map.next_value::<f64>(), i, "bt")?);
                }
                Label::Bu => {
                    once(&r.bu, i, "bu")?;
                    r.bu = Some(typed(map.next_value::<Str>(), i, "bu")?.0);
                }
                Label::Bv => {
                    once(&r.bv, i, "bv")?;
                    r.bv = Some(typed(map.next_value::<f64>(), i, "bv")?);
                }
                Label::Bs => {
                    once(&r.bs, i, "bs")?;
                    r.bs = Some(typed(map.next_value::<f64>(), i, "bs")?);
                }
                Label::Bver => {
                    once(&r.bver, i, "bver")?;
                    r.bver = Some(typed(map.next_value::<f64>(), i, "bver")?);
                }
                Label::N => {
                    once(&r.n, i, "n")?;
                    r.n = Some(typed(map.next_value::<Str>(), i, "n")?.0);
                }
                Label::U => {
                    once(&r.u, i, "u")?;
                    r.u = Some(typed(map.next_value::<Str>(), i, "u")?.0);
                }
                Label::V => {
                    once(&r.v, i, "v")?;
                    r.v = Some(typed(map.next_value::<f64>(), i, "v")?);
                }
                Label::Vs => {
                    once(&r.vs.then_some(()), i, "vs")?;
                    typed::<_, _, A::Error>(map.next_value::<Str>(), i, "vs")?;
                    r.vs = true;
                }
                Label::Vb => {
                    once(&r.vb, i, "vb")?;
                    r.vb = Some(typed(map.next_value::<bool>(), i, "vb")?);
                }
                Label::Vd => {
                    once(&r.vd.then_some(()), i, "vd")?;
                    let data = typed::<_, _, A::Error>(map.next_value::<Str>(), i, "vd")?;
                    if !is_base64url(&data.0) {
                        return Err(de::Error::custom(format!(
                            "record {i}: `vd` is not base64url without padding (RFC 8428 §5)"
                        )));
                    }
                    r.vd = true;
                }
                Label::S => {
                    once(&r.s, i, "s")?;
                    r.s = Some(typed(map.next_value::<f64>(), i, "s")?);
                }
                Label::T => {
                    once(&r.t, i, "t")?;
                    r.t = Some(typed(map.next_value::<f64>(), i, "t")?);
                }
                Label::Ut => {
                    once(&r.ut, i, "ut")?;
                    r.ut = Some(typed(map.next_value::<f64>(), i, "ut")?);
                }
                Label::MustUnderstand(l) => {
                    map.next_value::<IgnoredAny>()?;
                    if r.must_understand.is_none() {
                        r.must_understand = Some(l);
                    }
                }
                Label::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(r)
    }
}

/// RFC 4648 §5 alphabet, no padding: a length of 1 mod 4 cannot occur.
fn is_base64url(s: &str) -> bool {
    s.len() % 4 != 1
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// Writes one SenML pack per snapshot (see the module docs).
pub struct SenmlEncoder {
    base_name: String,
}

impl SenmlEncoder {
    /// An encoder for the device with this id.
    pub fn new(device_id: &str) -> Self {
        let id: String = device_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        SenmlEncoder {
            base_name: format!("urn:dev:vitalgate:{id}:"),
        }
    }
}

/// Name, unit and wire value of a vital as the encoder writes it.
fn encoded(vital: Vital, value: f64) -> (&'static str, f64) {
    use Vital::*;
    match vital {
        HeartRate | PulseRate => ("beat/min", value.round()),
        RespiratoryRate => ("1/min", value.round()),
        Spo2 => ("/", value.round() / 100.0),
        PerfusionIndex => ("/", (value * 100.0).round() / 10_000.0),
        BodyTemperature => ("Cel", (value * 10.0).round() / 10.0),
        SystolicBp | DiastolicBp | MeanArterialPressure => ("Pa", value.round() * PA_PER_MMHG),
        RrInterval => ("s", value.round() / 1000.0),
    }
}

impl Encoder for SenmlEncoder {
    fn encode(&mut self, snapshot: &Snapshot, out: &mut Vec<u8>) {
        if snapshot
            .quality
            .intersects(Quality::SENSOR_OFF | Quality::SEARCHING)
        {
            return;
        }
        let mut first = true;
        for vital in Vital::ALL {
            let Some(value) = snapshot.get(vital).filter(|v| v.is_finite()) else {
                continue;
            };
            let (unit, wire) = encoded(vital, value);
            if !wire.is_finite() {
                continue;
            }
            if first {
                out.extend_from_slice(b"[{\"bn\":");
                write_json(out, &self.base_name.as_str());
                out.extend_from_slice(b",\"bt\":");
                write_json(out, &snapshot.time.as_secs_f64());
                out.push(b',');
                first = false;
            } else {
                out.extend_from_slice(b",{");
            }
            out.extend_from_slice(b"\"n\":");
            write_json(out, &vital.name());
            out.extend_from_slice(b",\"u\":");
            write_json(out, &unit);
            out.extend_from_slice(b",\"v\":");
            write_json(out, &wire);
            out.push(b'}');
        }
        if !first {
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::Format;
    use crate::format::testing::{
        self, Rng, assert_message_round_trip, assert_testdata_matches, decode_message,
        every_vital as snapshot,
    };

    const NOW: Timestamp = Timestamp(1_763_708_462_000);

    fn decode_with(names: &[(&str, Vital)], payload: &str) -> Vec<Decoded> {
        let options = FormatOptions {
            names: names.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect(),
            ..FormatOptions::default()
        };
        decode_message(&mut SenmlDecoder::new(&options), payload.as_bytes(), 7, NOW)
    }

    fn decode(payload: &str) -> Vec<Decoded> {
        decode_with(&[], payload)
    }

    fn m(vital: Vital, value: f64, ms: i64) -> Decoded {
        Decoded::Measurement(Measurement {
            vital,
            value,
            device_time: Some(Timestamp(ms)),
            quality: Quality::NONE,
            offset: 7,
        })
    }

    /// [`testing::single_error`], which must be at the message's offset.
    fn single_error(got: &[Decoded]) -> (Reject, String) {
        if let [Decoded::Error(e)] = got {
            assert_eq!(e.offset, 7);
        }
        testing::single_error(got)
    }

    fn rejected(payload: &str) -> (Reject, String) {
        single_error(&decode(payload))
    }

    #[test]
    fn rfc_single_data_point_is_a_vital_only_when_its_name_is_mapped() {
        // RFC 8428 §5.1.1, verbatim: a 1-wire temperature sensor, no vital.
        let p = r#"[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]"#;
        assert_eq!(decode(p), vec![]);
        // The same record with the profile naming the sensor; no time: "now".
        let got = decode_with(
            &[("urn:dev:ow:10e2073a01080063", Vital::BodyTemperature)],
            p,
        );
        assert_eq!(got, vec![m(Vital::BodyTemperature, 23.1, NOW.0)]);
    }

    #[test]
    fn rfc_multiple_data_points_resolve_base_name_and_reject_units_that_do_not_fit() {
        // RFC 8428 §5.1.2, first example, with the profile mapping the names.
        let p = r#"[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]"#;
        let got = decode_with(
            &[("urn:dev:ow:10e2073a01080063:voltage", Vital::HeartRate)],
            p,
        );
        let (reason, detail) = single_error(&got);
        assert_eq!(reason, Reject::Unsupported);
        assert!(
            detail.contains("unit `V` does not fit heart_rate"),
            "{detail}"
        );
        // Matched by last segment as well.
        let got = decode_with(&[("current", Vital::RrInterval)], p);
        let (_, detail) = single_error(&got);
        assert!(
            detail.contains("`urn:dev:ow:10e2073a01080063:current`"),
            "{detail}"
        );
    }

    #[test]
    fn rfc_relative_record_times_add_to_the_base_time() {
        // RFC 8428 §5.1.2, second example (bver 5, bu "A"), units adapted to
        // beats per minute: current at 18:01:16.001 and each second before.
        let p = r#"[
            {"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"beat/min","bver":5,"n":"voltage","u":"V","v":120.1},
            {"n":"current","t":-5,"v":1.2},{"n":"current","t":-4,"v":1.3},{"n":"current","t":-3,"v":1.4},
            {"n":"current","t":-2,"v":1.5},{"n":"current","t":-1,"v":1.6},{"n":"current","v":1.7}]"#;
        let got = decode_with(&[("current", Vital::HeartRate)], p);
        let base = 1_276_020_076_001;
        let want: Vec<Decoded> = [1.2, 1.3, 1.4, 1.5, 1.6, 1.7]
            .iter()
            .enumerate()
            .map(|(k, v)| m(Vital::HeartRate, *v, base - 5000 + 1000 * k as i64))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn rfc_multiple_measurements_use_the_base_name_as_the_whole_name() {
        // RFC 8428 §5.1.3 (humidity, position, battery), the humidity
        // records adapted to an SpO2 ratio: records without `n` are named bn.
        let p = r#"[{"bn":"urn:dev:ow:10e2073a01080063","bt":1.320067464e+09,"bu":"/","v":0.97},
            {"u":"lon","v":24.30621},{"u":"lat","v":60.07965},
            {"t":60,"v":0.96},{"u":"lon","t":60,"v":24.30622},{"u":"lat","t":60,"v":60.07965},
            {"t":120,"v":0.95},{"u":"%EL","t":150,"v":98},{"t":180,"v":0.94}]"#;
        let got = decode_with(&[("urn:dev:ow:10e2073a01080063", Vital::Spo2)], p);
        // lon/lat/%EL records share the name, so they are SpO2 records with
        // units that do not fit: reported, and the SpO2 values still decode.
        let t0 = 1_320_067_464_000;
        let measurements: Vec<&Decoded> = got
            .iter()
            .filter(|d| matches!(d, Decoded::Measurement(_)))
            .collect();
        assert_eq!(
            measurements,
            vec![
                &m(Vital::Spo2, 97.0, t0),
                &m(Vital::Spo2, 96.0, t0 + 60_000),
                &m(Vital::Spo2, 95.0, t0 + 120_000),
                &m(Vital::Spo2, 94.0, t0 + 180_000)
            ]
        );
        let errors = got
            .iter()
            .filter(|d| matches!(d, Decoded::Error(e) if e.reason == Reject::Unsupported))
            .count();
        assert_eq!(errors, 5);
    }

    #[test]
    fn rfc_multiple_data_types_skip_unmapped_names_and_report_non_numeric_vitals() {
        // RFC 8428 §5.1.5, verbatim.
        let p = r#"[{"bn":"urn:dev:ow:10e2073a01080063:","n":"temp","u":"Cel","v":23.1},{"n":"label","vs":"Machine Room"},{"n":"open","vb":false},{"n":"nfv-reader","vd":"aGkgCg"}]"#;
        // `temp` is deliberately not a built-in name.
        assert_eq!(decode(p), vec![]);
        let got = decode_with(
            &[("temp", Vital::BodyTemperature), ("label", Vital::Spo2)],
            p,
        );
        assert_eq!(got[0], m(Vital::BodyTemperature, 23.1, NOW.0));
        let Decoded::Error(e) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(e.reason, Reject::Unsupported);
        assert!(e.detail.contains("string value"), "{}", e.detail);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn rfc_collection_keeps_the_base_time_when_the_base_name_changes() {
        // RFC 8428 §5.1.6, verbatim: the last record uses the third record's
        // base name and the first record's base time.
        let p = r#"[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},{"n":"humidity","u":"%RH","v":30},{"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},{"n":"humidity","u":"%RH","v":67}]"#;
        let got = decode_with(&[("2001:db8::1/temperature", Vital::BodyTemperature)], p);
        assert_eq!(
            got,
            vec![m(Vital::BodyTemperature, 12.3, 1_320_078_429_000)]
        );
    }

    #[test]
    fn rfc_actuator_pack_with_a_base_only_first_record_is_valid() {
        // RFC 8428 §5.1.7, verbatim.
        let p = r#"[{"bn":"urn:dev:ow:10e2073a01080063:"},{"n":"temp","u":"Cel","v":23.1},{"n":"heat","u":"/","v":1},{"n":"fan","u":"/","v":0}]"#;
        assert_eq!(decode(p), vec![]);
        let got = decode_with(&[("heat", Vital::Spo2)], p);
        assert_eq!(got, vec![m(Vital::Spo2, 100.0, NOW.0)]);
        // The lights example: an absolute base time plus a record time.
        let p = r#"[{"bt":1.320078429e+09,"bu":"/","n":"2001:db8::3","v":0.5},{"n":"2001:db8::4","v":0.5},{"n":"2001:db8::3","t":0.1,"v":0},{"n":"2001:db8::4","t":0.1,"v":0}]"#;
        let got = decode_with(&[("2001:db8::3", Vital::PerfusionIndex)], p);
        assert_eq!(
            got,
            vec![
                m(Vital::PerfusionIndex, 50.0, 1_320_078_429_000),
                m(Vital::PerfusionIndex, 0.0, 1_320_078_429_100)
            ]
        );
    }

    #[test]
    fn built_in_names_match_the_last_segment_case_sensitively() {
        let p = r#"[{"bn":"urn:dev:mac:0024befffe804ff1:","n":"heartRate","u":"beat/min","v":72},
            {"n":"SpO2","u":"/","v":0.98},{"n":"spo2/hr","u":"beat/min","v":71},
            {"n":"HeartRate","u":"beat/min","v":70},{"n":"8480-6","u":"mm[Hg]","v":121}]"#;
        assert_eq!(
            decode(p),
            vec![
                m(Vital::HeartRate, 72.0, NOW.0),
                m(Vital::Spo2, 98.0, NOW.0),
                m(Vital::HeartRate, 71.0, NOW.0),
                m(Vital::SystolicBp, 121.0, NOW.0)
            ]
        );
    }

    #[test]
    fn profile_names_take_precedence_over_built_in_names() {
        let p = r#"[{"bn":"dev1/","n":"hr","v":812}]"#;
        assert_eq!(
            decode_with(&[("dev1/hr", Vital::RrInterval)], p),
            vec![m(Vital::RrInterval, 812.0, NOW.0)]
        );
        assert_eq!(
            decode_with(&[("hr", Vital::PulseRate)], p),
            vec![m(Vital::PulseRate, 812.0, NOW.0)]
        );
        assert_eq!(decode(p), vec![m(Vital::HeartRate, 812.0, NOW.0)]);
    }

    #[test]
    fn ambiguous_names_are_not_built_in() {
        for n in ["temp", "temperature", "rr", "ibi", "heart", "o2"] {
            let p = format!(r#"[{{"n":"{n}","v":1}}]"#);
            assert_eq!(decode(&p), vec![], "{n}");
        }
    }

    #[test]
    fn units_convert_to_the_canonical_unit() {
        let cases: &[(&str, &str, f64, Vital, f64)] = &[
            ("hr", "beat/min", 72.0, Vital::HeartRate, 72.0),
            ("hr", "1/min", 72.0, Vital::HeartRate, 72.0),
            ("hr", "/min", 72.0, Vital::HeartRate, 72.0),
            ("hr", "1/s", 1.2, Vital::HeartRate, 72.0),
            ("hr", "Hz", 1.5, Vital::HeartRate, 90.0),
            ("resp", "1/min", 14.0, Vital::RespiratoryRate, 14.0),
            ("resp", "1/s", 0.25, Vital::RespiratoryRate, 15.0),
            ("spo2", "/", 0.97, Vital::Spo2, 97.0),
            ("spo2", "%", 0.955, Vital::Spo2, 95.5),
            ("spo2", "%", 95.5, Vital::Spo2, 95.5),
            ("spo2", "%", 1.0, Vital::Spo2, 100.0),
            ("spo2", "/100", 97.0, Vital::Spo2, 97.0),
            ("pi", "/", 0.0235, Vital::PerfusionIndex, 2.35),
            ("pi", "/100", 0.4, Vital::PerfusionIndex, 0.4),
            ("bodyTemp", "Cel", 37.2, Vital::BodyTemperature, 37.2),
            ("bodyTemp", "K", 310.15, Vital::BodyTemperature, 37.0),
            ("bodyTemp", "[degF]", 98.6, Vital::BodyTemperature, 37.0),
            ("sys", "Pa", 15998.6864898, Vital::SystolicBp, 120.0),
            ("sys", "hPa", 159.986864898, Vital::SystolicBp, 120.0),
            ("dia", "kPa", 10.6657909932, Vital::DiastolicBp, 80.0),
            ("map", "mmHg", 93.0, Vital::MeanArterialPressure, 93.0),
            ("map", "mm[Hg]", 93.0, Vital::MeanArterialPressure, 93.0),
            ("rri", "s", 0.812, Vital::RrInterval, 812.0),
            ("rri", "ms", 812.0, Vital::RrInterval, 812.0),
        ];
        for (n, u, v, vital, want) in cases {
            let p = format!(r#"[{{"n":"{n}","u":"{u}","v":{v}}}]"#);
            assert_eq!(decode(&p), vec![m(*vital, *want, NOW.0)], "{p}");
        }
        // No unit at all: the canonical unit.
        assert_eq!(
            decode(r#"[{"n":"spo2","v":97}]"#),
            vec![m(Vital::Spo2, 97.0, NOW.0)]
        );
    }

    #[test]
    fn units_that_do_not_fit_the_vital_are_unsupported_for_that_record_only() {
        for (n, u) in [
            ("resp", "beat/min"),
            ("hr", "beats"),
            ("bodyTemp", "degF"),
            ("bodyTemp", "F"),
            ("spo2", "%RH"),
            ("sys", "bar"),
            ("rri", "min"),
        ] {
            let p = format!(r#"[{{"n":"{n}","u":"{u}","v":1}},{{"n":"hr","v":60}}]"#);
            let got = decode(&p);
            let Decoded::Error(e) = &got[0] else {
                panic!("{got:?}")
            };
            assert_eq!(e.reason, Reject::Unsupported, "{p}");
            assert!(e.detail.contains("does not fit"), "{}", e.detail);
            assert_eq!(got[1], m(Vital::HeartRate, 60.0, NOW.0));
        }
    }

    #[test]
    fn percent_up_to_one_is_the_rfc_ratio_and_above_one_a_percentage() {
        let cases = [
            ("spo2", 0.97, Vital::Spo2, 97.0),
            ("spo2", 1.0, Vital::Spo2, 100.0),
            ("spo2", 97.0, Vital::Spo2, 97.0),
            ("spo2", 127.0, Vital::Spo2, 127.0),
            ("spo2", 0.0, Vital::Spo2, 0.0),
            ("pi", 0.0235, Vital::PerfusionIndex, 2.35),
            ("pi", 2.35, Vital::PerfusionIndex, 2.35),
        ];
        for (n, v, vital, want) in cases {
            let p = format!(r#"[{{"n":"{n}","u":"%","v":{v}}}]"#);
            assert_eq!(decode(&p), vec![m(vital, want, NOW.0)], "{p}");
        }
    }

    #[test]
    fn base_value_and_base_unit_apply_until_redefined() {
        let p = r#"[{"bn":"w:","bu":"beat/min","bv":70,"n":"hr","v":2},{"n":"hr","v":-1},
            {"bv":0,"bu":"/","n":"spo2","v":0.96},{"n":"hr","u":"beat/min","v":64}]"#;
        assert_eq!(
            decode(p),
            vec![
                m(Vital::HeartRate, 72.0, NOW.0),
                m(Vital::HeartRate, 69.0, NOW.0),
                m(Vital::Spo2, 96.0, NOW.0),
                m(Vital::HeartRate, 64.0, NOW.0)
            ]
        );
    }

    #[test]
    fn relative_and_absolute_times_resolve_against_reception() {
        // Relative: negative seconds before reception.
        let got = decode(r#"[{"bt":-10,"n":"hr","t":2.5,"v":60}]"#);
        assert_eq!(got, vec![m(Vital::HeartRate, 60.0, NOW.0 - 7_500)]);
        // bt + t just below 2^28 is still relative (RFC 8428 §4.5.3 warning).
        let got = decode(r#"[{"bt":268435456,"n":"hr","t":-1,"v":60}]"#);
        assert_eq!(
            got,
            vec![m(Vital::HeartRate, 60.0, NOW.0 + 268_435_455_000)]
        );
        // Exactly 2^28 is absolute: 1978-07-04T21:24:16Z.
        let got = decode(r#"[{"n":"hr","t":268435456,"v":60}]"#);
        assert_eq!(got, vec![m(Vital::HeartRate, 60.0, 268_435_456_000)]);
        // Fractions are rounded to the millisecond.
        let got = decode(r#"[{"n":"hr","t":1700000000.0004,"v":60}]"#);
        assert_eq!(got, vec![m(Vital::HeartRate, 60.0, 1_700_000_000_000)]);
    }

    #[test]
    fn times_that_cannot_be_right_are_bad_time_for_that_record() {
        for t in ["-1e12", "1e15", "1e300"] {
            let p = format!(r#"[{{"n":"hr","t":{t},"v":60}},{{"n":"spo2","v":97}}]"#);
            let got = decode(&p);
            let Decoded::Error(e) = &got[0] else {
                panic!("{got:?}")
            };
            assert_eq!(e.reason, Reject::BadTime, "{t}");
            assert_eq!(got[1], m(Vital::Spo2, 97.0, NOW.0));
        }
    }

    #[test]
    fn versions_follow_rfc_8428_and_the_rfc_9100_feature_bitmap() {
        for ok in [10, 5, 1, 26, 18] {
            let p = format!(r#"[{{"bver":{ok},"n":"hr","v":60}}]"#);
            assert_eq!(
                decode(&p),
                vec![m(Vital::HeartRate, 60.0, NOW.0)],
                "bver {ok}"
            );
        }
        for unsupported in [11, 42, 27, 1_u64 << 52] {
            let (reason, detail) =
                rejected(&format!(r#"[{{"bver":{unsupported},"n":"hr","v":60}}]"#));
            assert_eq!(reason, Reject::Unsupported, "bver {unsupported}: {detail}");
        }
        for malformed in ["0", "-10", "10.5", "\"10\"", "1e300"] {
            let (reason, _) = rejected(&format!(r#"[{{"bver":{malformed},"n":"hr","v":60}}]"#));
            assert_eq!(reason, Reject::Malformed, "bver {malformed}");
        }
        // All records have the same version: inherited, or repeated equal.
        let same = r#"[{"bver":26,"n":"hr","v":60},{"n":"rri","u":"ms","v":900},{"bver":26,"n":"spo2","v":97}]"#;
        assert_eq!(decode(same).len(), 3);
        let repeated_default = r#"[{"n":"hr","v":60},{"bver":10,"n":"spo2","v":97}]"#;
        assert_eq!(decode(repeated_default).len(), 2);
        for differing in [
            r#"[{"n":"hr","v":60},{"bver":26,"n":"spo2","v":97}]"#,
            r#"[{"bver":26,"n":"hr","v":60},{"bver":10,"n":"spo2","v":97}]"#,
        ] {
            let (reason, detail) = rejected(differing);
            assert_eq!(reason, Reject::Malformed);
            assert!(detail.contains("same version"), "{detail}");
        }
    }

    #[test]
    fn unknown_labels_are_ignored_but_must_understand_labels_reject_the_pack() {
        let p = r#"[{"n":"hr","v":60,"foo":{"deep":[1,2,{"x":null}]},"bfoo":"x"}]"#;
        assert_eq!(decode(p), vec![m(Vital::HeartRate, 60.0, NOW.0)]);
        let (reason, detail) = rejected(r#"[{"n":"hr","v":60},{"n":"spo2","v":97,"bsecret_":1}]"#);
        assert_eq!(reason, Reject::Unsupported);
        assert!(detail.contains("record 1: label `bsecret_`"), "{detail}");
    }

    #[test]
    fn value_rules_of_section_4_2() {
        // Two value fields.
        let (reason, detail) = rejected(r#"[{"n":"hr","v":60,"vs":"60"}]"#);
        assert_eq!(reason, Reject::Malformed);
        assert!(detail.contains("2 value fields"), "{detail}");
        // A name but no value.
        let (reason, _) = rejected(r#"[{"n":"hr","u":"beat/min"}]"#);
        assert_eq!(reason, Reject::Malformed);
        let (reason, _) = rejected(r#"[{"bn":"x","t":5}]"#);
        assert_eq!(reason, Reject::Malformed);
        // A sum alone is a valid record, but not a vital value.
        assert_eq!(decode(r#"[{"n":"energy","u":"J","s":100}]"#), vec![]);
        let (reason, detail) = single_error(&decode(r#"[{"n":"hr","s":100}]"#));
        assert_eq!(reason, Reject::Unsupported);
        assert!(detail.contains("only a sum"), "{detail}");
        // A base-only pack yields nothing, and is no error.
        assert_eq!(
            decode(r#"[{"bn":"x:","bt":1.7e9,"bu":"/","bver":10}]"#),
            vec![]
        );
    }

    #[test]
    fn names_must_use_the_restricted_character_set() {
        for bad in [
            r#"[{"n":"heart rate","v":60}]"#,
            r#"[{"n":"-hr","v":60}]"#,
            r#"[{"n":"_hr","v":60}]"#,
            r#"[{"v":60}]"#,
            r#"[{"bn":"dev;1:","n":"hr","v":60}]"#,
            r#"[{"n":"hr\u00e9","v":60}]"#,
            r#"[{"n":"hr","v":60},{"n":"bättery","v":3}]"#,
        ] {
            let (reason, detail) = rejected(bad);
            assert_eq!(reason, Reject::Malformed, "{bad}");
            assert!(detail.contains("RFC 8428 §4.5.1"), "{detail}");
        }
        // Escaped but legal characters are fine.
        assert_eq!(
            decode(r#"[{"n":"h\u0072","v":60}]"#),
            vec![m(Vital::HeartRate, 60.0, NOW.0)]
        );
    }

    #[test]
    fn structural_errors_reject_the_whole_message_once() {
        let cases = [
            ("", "EOF"),
            ("[]", "empty pack"),
            (r#"{"n":"hr","v":60}"#, "JSON array"),
            ("[1]", "record 0 to be a JSON object"),
            (r#"[{"n":"hr","v":"60"}]"#, "record 0: `v`"),
            (r#"[{"n":5,"v":60}]"#, "record 0: `n`"),
            (r#"[{"n":"hr","v":60,"v":61}]"#, "appears twice"),
            (r#"[{"n":"hr","vb":"true"}]"#, "`vb`"),
            (r#"[{"n":"x","vd":"a=="}]"#, "base64url"),
            (r#"[{"n":"hr","v":null}]"#, "`v`"),
            (r#"[{"n":"hr","v":60}] x"#, "trailing"),
            (r#"[{"n":"hr","v":60},"#, "EOF"),
            (r#"[{"n":"hr","v":1e400}]"#, "number out of range"),
            (r#"[{"bv":1.5e308,"n":"hr","v":1.5e308}]"#, "finite"),
            (r#"[{"n":"hr","v":60,"ut":"x"}]"#, "`ut`"),
        ];
        for (p, want) in cases {
            let (reason, detail) = rejected(p);
            assert_eq!(reason, Reject::Malformed, "{p}: {detail}");
            assert!(detail.contains(want), "{p}: {detail}");
        }
    }

    #[test]
    fn an_invalid_record_after_valid_ones_reports_only_the_error() {
        let got = decode(r#"[{"n":"hr","v":60},{"n":"spo2","v":97},{"n":"bad name","v":1}]"#);
        assert_eq!(single_error(&got).0, Reject::Malformed);
    }

    #[test]
    fn deeply_nested_or_huge_input_is_rejected_without_panicking() {
        // serde_json skips ignored values without recursing: deep nesting in
        // an unknown label costs no stack.
        let deep = format!(
            r#"[{{"n":"hr","v":60,"x":{}{}}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(decode(&deep), vec![m(Vital::HeartRate, 60.0, NOW.0)]);
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(rejected(&deep).0, Reject::Malformed);
        let deep = format!(
            r#"[{{"n":"hr","v":{}60{}}}]"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(rejected(&deep).0, Reject::Malformed);
        let mut big = String::from("[");
        for k in 0..20_000 {
            if k > 0 {
                big.push(',');
            }
            big.push_str(r#"{"n":"hr","v":60}"#);
        }
        big.push(']');
        assert_eq!(decode(&big).len(), 20_000);
        let long_name = format!(r#"[{{"n":"{} x","v":1}}]"#, "a".repeat(1_000_000));
        let (reason, detail) = rejected(&long_name);
        assert_eq!(reason, Reject::Malformed);
        assert!(detail.len() < 300, "{}", detail.len());
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let p = r#"[{"bn":"urn\/dev:","n":"sp\u006f2","u":"\/","v":0.97}]"#;
        assert_eq!(decode(p), vec![m(Vital::Spo2, 97.0, NOW.0)]);
    }

    #[test]
    fn encoder_writes_one_valid_pack_per_snapshot() {
        let mut e = SenmlEncoder::new("ox-1");
        let mut out = Vec::new();
        let mut s = Snapshot {
            time: Timestamp(1_763_708_462_123),
            ..Snapshot::default()
        };
        s.set(Vital::HeartRate, Some(72.0));
        s.set(Vital::Spo2, Some(97.0));
        e.encode(&s, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"bn":"urn:dev:vitalgate:ox-1:","bt":1763708462.123,"n":"heart_rate","u":"beat/min","v":72.0},{"n":"spo2","u":"/","v":0.97}]"#
        );
    }

    #[test]
    fn encoder_output_decodes_back_to_the_rounded_snapshot() {
        let want = [
            (Vital::HeartRate, 72.0),
            (Vital::PulseRate, 71.0),
            (Vital::Spo2, 97.0),
            (Vital::RespiratoryRate, 14.0),
            (Vital::BodyTemperature, 37.2),
            (Vital::SystolicBp, 120.0),
            (Vital::DiastolicBp, 80.0),
            (Vital::MeanArterialPressure, 93.0),
            (Vital::PerfusionIndex, 2.35),
            (Vital::RrInterval, 812.0),
        ];
        let mut e = SenmlEncoder::new("wrist 7");
        let mut d = SenmlDecoder::new(&FormatOptions::default());
        assert_message_round_trip(&mut e, &mut d, &snapshot(), &want);
    }

    #[test]
    fn encoder_writes_nothing_when_the_device_has_nothing_to_say() {
        let mut e = SenmlEncoder::new("ox-1");
        let mut out = Vec::new();
        e.encode(&Snapshot::default(), &mut out);
        assert!(out.is_empty());
        let mut s = snapshot();
        s.quality = Quality::SENSOR_OFF;
        e.encode(&s, &mut out);
        assert!(out.is_empty());
        let mut s = Snapshot::default();
        s.set(Vital::HeartRate, Some(f64::NAN));
        e.encode(&s, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn testdata_capture_matches_the_expected_events() {
        assert_testdata_matches(Format::Senml, "senml.txt");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut d = SenmlDecoder::new(&FormatOptions::default());
        let seeds: [&[u8]; 4] = [
            br#"[{"bn":"urn:dev:x:","bt":1.7e9,"bu":"/","bver":10,"n":"spo2","v":0.97},{"n":"hr","u":"beat/min","t":-1,"v":60,"s":1,"ut":5}]"#,
            br#"[{"n":"x","vs":"a\"b\\u00e9"},{"n":"y","vb":true},{"n":"z","vd":"aGk"},{"foo_":1}]"#,
            br#"[{"bv":1e308,"v":1e308,"n":"rri","u":"s"}]"#,
            b"[[[[{}]]]]",
        ];
        let mut rng = Rng::new(0x9e37_79b9_7f4a_7c15);
        let alphabet = br#"[]{}",:0123456789.eE+-tnfrulbvsd_\ "#;
        for round in 0..20_000 {
            let msg = rng.mutate(seeds[round % seeds.len()], alphabet);
            let received = Timestamp(rng.next_u64() as i64 >> 20);
            d.decode(&msg, 0, received, &mut |_| {});
            d.decode(&rng.bytes(64), 0, Timestamp(0), &mut |_| {});
        }
    }
}
