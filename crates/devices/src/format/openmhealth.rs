//! Open mHealth / IEEE 1752.1 data points (JSON), one message per MQTT
//! payload.
//!
//! # Specifications followed
//!
//! * The Open mHealth schema library, namespace `omh`
//!   (github.com/openmhealth/schemas, `schema/omh/`), for the bodies:
//!   `heart-rate` 1.0, 1.1, 2.0, 3.0; `oxygen-saturation` 1.0, 2.0, 3.0;
//!   `respiratory-rate` 1.0, 2.0, 3.0; `body-temperature` 1.0–4.0;
//!   `blood-pressure` 1.0, 2.0, 3.0, 3.1, 4.0 (with
//!   `systolic-`/`diastolic-blood-pressure` 1.0); `rr-interval` 1.0, 2.0;
//!   and their utility schemas `unit-value`, `temperature-unit-value`,
//!   `duration-unit-value`, `time-frame`, `time-interval`, `date-time`,
//!   `descriptive-statistic`, `part-of-day`.
//! * For the envelope: Open mHealth `data-point-1.0` and `header-1.0`–`1.2`
//!   (`id`, `creation_date_time`, `schema_id`, `acquisition_provenance`),
//!   and IEEE Std 1752.1-2021 `data-point-1.0` / `header-1.0` (`uuid`,
//!   `schema_id`, `source_creation_date_time`, `modality`, ...; field names
//!   as in the IEEE-1752.1-generated StanfordBDHG OMHModels). Both put the
//!   body's `schema_id` {`namespace`, `name`, `version`} in `header`.
//!   The newest `omh` versions (heart-rate 3.0, oxygen-saturation 3.0,
//!   respiratory-rate 3.0, body-temperature 4.0, blood-pressure 4.0,
//!   rr-interval 2.0) reference the IEEE 1752.1 utility schemas
//!   (w3id.org/ieee/ieee-1752-schema/: `unit-value-1.0`, `time-frame-1.0`,
//!   `time-interval-1.0`, `duration-unit-value-1.0`,
//!   `descriptive-statistic-1.0`), which the decoder applies to them.
//!
//! IEEE 1752.1-2021 standardises metadata, sleep and physical activity; it
//! defines no heart-rate, oxygen-saturation, ... schema (cardiovascular and
//! respiratory measures are the subject of the unpublished P1752.2). Vital
//! signs therefore always come in namespace `omh`; a data point that names
//! e.g. `ieee:heart-rate` names a schema that does not exist and is
//! reported as [`Reject::Unsupported`].
//!
//! # Message shapes
//!
//! A message is one JSON value: a data point (`{"header":…,"body":…}`), a
//! bare body (an object without `header` and `body`, e.g. what the schema
//! library's own test data looks like), or an array of either (one or
//! more). A bare body has no `schema_id`: its schema is inferred from the
//! one measure it carries (`heart_rate`, `oxygen_saturation`,
//! `respiratory_rate`, `body_temperature`,
//! `systolic_blood_pressure`/`diastolic_blood_pressure`, `rr_interval`) and
//! it is checked against the union of the versions listed above (time
//! frame optional, the enums of every version). A bare body with none of
//! these measures is `Unsupported`, one with several is `Malformed`.
//!
//! # Errors
//!
//! * JSON syntax errors, wrong JSON types, missing required fields,
//!   duplicate keys, values outside a schema's enums (units included: e.g.
//!   `bpm` for `heart-rate`, `kPa` for `blood-pressure`, which only allow
//!   `beats/min` and `mmHg`), broken `oneOf`s (a time frame with both or
//!   neither of `date_time`/`time_interval`), unparsable date-times, a
//!   version that is not `MAJOR.MINOR`: [`Reject::Malformed`]. Any of these
//!   anywhere rejects the whole message with one error, before anything
//!   else is reported.
//! * Per data point, the others still decode: `Unsupported` for a schema
//!   that is not a vital, an unknown namespace or major version, a
//!   `descriptive_statistic` (IEEE 1752.1: "A measurement value without a
//!   descriptive statistic is interpreted as being the result of an
//!   individual measurement" — an hourly maximum is not a current value and
//!   must not be scored as one), an oxygen saturation that is not SpO2 (see
//!   below), a skin temperature, a time frame that gives no instant
//!   (`date` with `part_of_day`, durations in months or years);
//!   [`Reject::BadTime`] for a time before 1970.
//!
//! # Time
//!
//! `effective_time_frame.date_time` is the measurement time. For a
//! `time_interval` the decoder takes its **end** (`end_date_time`, or
//! `start_date_time` + `duration`): a value measured over an interval is
//! known when the interval closes, and the end is what a live monitor's
//! reading refers to. Date-times are RFC 3339; one without offset is UTC
//! (date-time-1.0: "If a timezone is not included, the timezone is assumed
//! to be UTC"). An interval that ends before it starts, or a negative
//! duration, is `Malformed`. Where a schema version makes the time frame
//! optional (the 1.x versions, blood-pressure 2.0) and it is absent, the
//! measurement has no `device_time` (the gateway's time applies).
//!
//! # Mapping
//!
//! | schema | vital | unit → canonical |
//! |---|---|---|
//! | heart-rate | heart_rate | `beats/min` |
//! | oxygen-saturation | spo2 | `%` |
//! | respiratory-rate | respiratory_rate | `breaths/min` |
//! | body-temperature | body_temperature | `C`; `F` (x−32)×5/9; `K` −273.15 |
//! | blood-pressure | systolic_bp, diastolic_bp | `mmHg` |
//! | rr-interval | rr_interval | `ms` |
//!
//! `heart-rate` maps to heart rate, not pulse rate, whatever the sensor:
//! the schema does not say how the rate was measured.
//!
//! Body fields that change what the value *is* are enforced:
//! `oxygen-saturation` `system` must be `peripheral` (1.x) or `peripheral
//! capillary` (2.x/3.x) and `measurement_method` `pulse oximetry` when
//! present — an arterial, venous or NIRS saturation is not SpO2 (LOINC
//! 59408-5 is "by pulse oximetry"), and a venous 70 % read as SpO2 would be
//! a false hypoxaemia alarm. `body-temperature` `measurement_location`
//! `wrist`, `finger`, `toe` (and 1.0's `chest`) are skin sites, reported as
//! `Unsupported` rather than as a body temperature of 33 °C. Fields that
//! only describe the circumstances (`body_posture`,
//! `temporal_relationship_to_physical_activity` — "during exercise" —,
//! `temporal_relationship_to_sleep`, `supplemental_oxygen_flow_rate`,
//! `user_notes`, blood pressure `measurement_location`, the header's
//! `acquisition_provenance.modality`) have no counterpart in [`Quality`]
//! and are ignored, as are fields the schemas do not define.
//!
//! Open mHealth has no sentinel or device-status fields: every measurement
//! has [`Quality::NONE`], and the decoder never reports a
//! [`crate::Status`].
//!
//! # Encoder
//!
//! One array per snapshot holding one data point per vital (systolic and
//! diastolic together in one blood-pressure point, written only when both
//! are present), with an Open mHealth 1.x header: `id`
//! `<device id>-<seq>-<schema name>`, `creation_date_time` and
//! `effective_time_frame.date_time` the snapshot time, `schema_id`, and
//! `acquisition_provenance` {`source_name`: the device id, `modality`:
//! `sensed`}. Schemas written: heart-rate 2.0, oxygen-saturation 2.0 (with
//! `system` and `measurement_method`), respiratory-rate 2.0,
//! body-temperature 3.0 (`C`), blood-pressure 3.1, rr-interval 1.0. Values
//! are rounded as a wearable reports them (rates, SpO2, pressures and RR
//! interval to integers, temperature to 0.1 °C). Pulse rate, mean arterial
//! pressure and perfusion index have no Open mHealth schema and are not
//! written. When the sensor is off or searching, or nothing is left,
//! nothing is written.

use super::json::{Str, clip, round9, write_json};
use crate::decode::{DecodeError, Decoded, Decoder, Encoder, Measurement, MessageDecoder, Reject};
use crate::{Quality, Snapshot, Timestamp, Vital};
use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Vitals this format carries: those an Open mHealth schema covers.
pub const VITALS: &[Vital] = &[
    Vital::HeartRate,
    Vital::Spo2,
    Vital::RespiratoryRate,
    Vital::BodyTemperature,
    Vital::SystolicBp,
    Vital::DiastolicBp,
    Vital::RrInterval,
];

/// A fresh decoder.
pub fn decoder() -> Decoder {
    Decoder::Message(Box::new(OmhDecoder::new()))
}

/// An encoder writing what an Open mHealth wearable with this id sends.
pub fn encoder(device_id: &str) -> Box<dyn Encoder> {
    Box::new(OmhEncoder::new(device_id))
}

/// 9999-12-31T23:59:59.999Z.
const MAX_TIME_MS: i64 = 253_402_300_799_999;

/// Open mHealth decoder (buffers are reused between messages).
#[derive(Default)]
pub struct OmhDecoder {
    pending: Vec<Decoded>,
}

impl OmhDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        OmhDecoder::default()
    }
}

impl MessageDecoder for OmhDecoder {
    fn decode(
        &mut self,
        payload: &[u8],
        offset: u64,
        _received: Timestamp,
        out: &mut dyn FnMut(Decoded),
    ) {
        self.pending.clear();
        let len = payload.len() as u64;
        let mut msg = Message {
            pending: &mut self.pending,
            offset,
            len,
            items: 0,
            fatal: None,
        };
        let mut de = serde_json::Deserializer::from_slice(payload);
        let parsed = (&mut msg).deserialize(&mut de).and_then(|()| de.end());
        match (msg.fatal.take(), parsed) {
            (Some(detail), _) => out(Decoded::Error(DecodeError::new(
                offset,
                len,
                Reject::Malformed,
                detail,
            ))),
            (None, Err(e)) => out(Decoded::Error(DecodeError::new(
                offset,
                len,
                Reject::Malformed,
                format!("not a valid Open mHealth message: {e}"),
            ))),
            (None, Ok(())) => {
                for d in self.pending.drain(..) {
                    out(d);
                }
            }
        }
    }
}

/// The body schemas this gateway maps.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    HeartRate,
    OxygenSaturation,
    RespiratoryRate,
    BodyTemperature,
    BloodPressure,
    RrInterval,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::HeartRate,
        Kind::OxygenSaturation,
        Kind::RespiratoryRate,
        Kind::BodyTemperature,
        Kind::BloodPressure,
        Kind::RrInterval,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::HeartRate => "heart-rate",
            Kind::OxygenSaturation => "oxygen-saturation",
            Kind::RespiratoryRate => "respiratory-rate",
            Kind::BodyTemperature => "body-temperature",
            Kind::BloodPressure => "blood-pressure",
            Kind::RrInterval => "rr-interval",
        }
    }

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// Rules of a major version, `None` for a version that does not exist.
    fn rules(self, major: u32) -> Option<Rules> {
        let r = |time_required, ieee_time| {
            Some(Rules {
                major: Some(major),
                time_required,
                ieee_time,
            })
        };
        match (self, major) {
            (Kind::HeartRate | Kind::OxygenSaturation | Kind::RespiratoryRate, 1) => {
                r(false, false)
            }
            (Kind::HeartRate | Kind::OxygenSaturation | Kind::RespiratoryRate, 2) => r(true, false),
            (Kind::HeartRate | Kind::OxygenSaturation | Kind::RespiratoryRate, 3) => r(true, true),
            (Kind::BodyTemperature, 1) => r(false, false),
            (Kind::BodyTemperature, 2 | 3) => r(true, false),
            (Kind::BodyTemperature, 4) => r(true, true),
            (Kind::BloodPressure, 1 | 2) => r(false, false),
            (Kind::BloodPressure, 3) => r(true, false),
            (Kind::BloodPressure, 4) => r(true, true),
            (Kind::RrInterval, 1) => r(false, false),
            (Kind::RrInterval, 2) => r(true, true),
            _ => None,
        }
    }

    fn known_majors(self) -> &'static str {
        match self {
            Kind::HeartRate | Kind::OxygenSaturation | Kind::RespiratoryRate => "1.x, 2.x, 3.x",
            Kind::BodyTemperature | Kind::BloodPressure => "1.x to 4.x",
            Kind::RrInterval => "1.x, 2.x",
        }
    }
}

/// What a schema version requires of its body.
#[derive(Clone, Copy)]
struct Rules {
    /// `None` for a bare body (union of all versions).
    major: Option<u32>,
    time_required: bool,
    /// The time frame is IEEE 1752.1 `time-frame-1.0` (no date +
    /// part_of_day form).
    ieee_time: bool,
}

const BARE: Rules = Rules {
    major: None,
    time_required: false,
    ieee_time: false,
};

/// Decoding state of one message.
struct Message<'a> {
    pending: &'a mut Vec<Decoded>,
    offset: u64,
    len: u64,
    items: usize,
    /// Detail of the `Malformed` error that rejects the whole message.
    fatal: Option<String>,
}

impl<'de> DeserializeSeed<'de> for &mut Message<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Message<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a data point, a body, or an array of them")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        let item = ItemSeed(0).visit_map(map)?;
        self.process(item);
        self.items = 1;
        if self.fatal.is_some() {
            return Err(de::Error::custom("message rejected"));
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element_seed(ItemSeed(self.items))? {
            self.process(item);
            self.items += 1;
            if self.fatal.is_some() {
                return Err(de::Error::custom("message rejected"));
            }
        }
        if self.items == 0 {
            return Err(de::Error::custom("empty array: no data point"));
        }
        Ok(())
    }
}

/// A problem of one data point that does not reject the message.
type Soft = Option<(Reject, String)>;

impl Message<'_> {
    fn item_error(&mut self, reason: Reject, detail: String) {
        self.pending.push(Decoded::Error(DecodeError::new(
            self.offset,
            self.len,
            reason,
            detail,
        )));
    }

    fn process(&mut self, item: Item<'_>) {
        let i = self.items;
        if let Err(detail) = self.process_inner(item, i) {
            self.fatal = Some(format!("data point {i}: {detail}"));
        }
    }

    /// `Err` is a `Malformed` detail that rejects the whole message.
    fn process_inner(&mut self, item: Item<'_>, i: usize) -> Result<(), String> {
        let Item { header, body, bare } = item;
        if header.is_none() && body.is_none() {
            let mut kinds = Kind::ALL.into_iter().filter(|k| bare.has_measure(*k));
            let kind = match (kinds.next(), kinds.next()) {
                (None, _) => {
                    self.item_error(
                        Reject::Unsupported,
                        format!("data point {i}: a body without header and without a measure this gateway maps (heart_rate, oxygen_saturation, respiratory_rate, body_temperature, systolic/diastolic_blood_pressure, rr_interval)"),
                    );
                    return Ok(());
                }
                (Some(k), None) => k,
                (Some(_), Some(_)) => {
                    return Err(
                        "a body without header carries the measures of several schemas; its schema is ambiguous".into(),
                    );
                }
            };
            let label = SchemaLabel {
                namespace: "omh",
                name: kind.name(),
                version: None,
            };
            return self.body(kind, BARE, &bare, &label, i);
        }
        let Some(header) = header else {
            return Err("has a `body` but no `header` (data-point: both are required)".into());
        };
        let Some(body) = body else {
            return Err("has a `header` but no `body` (data-point: both are required)".into());
        };
        let Some(id) = &header.schema_id else {
            return Err("`header` has no `schema_id`".into());
        };
        let (ns, name, version) = (&*id.namespace.0, &*id.name.0, &*id.version.0);
        let label = SchemaLabel {
            namespace: ns,
            name,
            version: Some(version),
        };
        let Some(major) = parse_major(version) else {
            return Err(format!("schema_id `{label}`: version is not MAJOR.MINOR"));
        };
        if ns != "omh" {
            let why = if ns == "ieee" {
                format!(
                    "schema `{label}`: IEEE 1752.1 defines no `{}` schema; vital-sign schemas are in namespace `omh`",
                    clip(name)
                )
            } else {
                format!(
                    "schema `{label}`: namespace `{}` is not mapped (only `omh`)",
                    clip(ns)
                )
            };
            self.item_error(Reject::Unsupported, format!("data point {i}: {why}"));
            return Ok(());
        }
        let Some(kind) = Kind::from_name(name) else {
            self.item_error(
                Reject::Unsupported,
                format!("data point {i}: schema `{label}` is not a vital sign this gateway maps"),
            );
            return Ok(());
        };
        let Some(rules) = kind.rules(major) else {
            self.item_error(
                Reject::Unsupported,
                format!(
                    "data point {i}: schema `{label}`: major version {major} is not supported (known: {})",
                    kind.known_majors()
                ),
            );
            return Ok(());
        };
        self.body(kind, rules, &body, &label, i)
    }

    fn body(
        &mut self,
        kind: Kind,
        rules: Rules,
        b: &BodyFields<'_>,
        label: &SchemaLabel<'_>,
        i: usize,
    ) -> Result<(), String> {
        let mut soft: Soft = None;
        let mut values: [(Vital, f64); 2] = [(Vital::HeartRate, 0.0); 2];
        let mut count = 1;
        match kind {
            Kind::HeartRate => {
                values[0] = (
                    Vital::HeartRate,
                    measure(&b.heart_rate, "heart_rate", &["beats/min"], label)?,
                );
            }
            Kind::RespiratoryRate => {
                values[0] = (
                    Vital::RespiratoryRate,
                    measure(
                        &b.respiratory_rate,
                        "respiratory_rate",
                        &["breaths/min"],
                        label,
                    )?,
                );
            }
            Kind::RrInterval => {
                values[0] = (
                    Vital::RrInterval,
                    measure(&b.rr_interval, "rr_interval", &["ms"], label)?,
                );
            }
            Kind::OxygenSaturation => {
                values[0] = (
                    Vital::Spo2,
                    measure(&b.oxygen_saturation, "oxygen_saturation", &["%"], label)?,
                );
                oxygen_checks(b, rules, label, &mut soft)?;
            }
            Kind::BodyTemperature => {
                let Some(t) = &b.body_temperature else {
                    return Err(format!("`{label}` body has no `body_temperature`"));
                };
                let c = match &*t.unit.0 {
                    "C" => t.value,
                    "F" => round9((t.value - 32.0) * 5.0 / 9.0),
                    "K" => round9(t.value - 273.15),
                    other => {
                        return Err(format!(
                            "`{label}` body_temperature.unit `{}` is not allowed (expected `C`, `F` or `K`)",
                            clip(other)
                        ));
                    }
                };
                values[0] = (Vital::BodyTemperature, c);
                temperature_checks(b, rules, label, &mut soft)?;
            }
            Kind::BloodPressure => {
                values[0] = (
                    Vital::SystolicBp,
                    measure(&b.systolic, "systolic_blood_pressure", &["mmHg"], label)?,
                );
                values[1] = (
                    Vital::DiastolicBp,
                    measure(&b.diastolic, "diastolic_blood_pressure", &["mmHg"], label)?,
                );
                count = 2;
            }
        }
        let time = match &b.effective_time_frame {
            Some(tf) => time_frame(tf, rules, label, &mut soft)?,
            None if rules.time_required => {
                return Err(format!("`{label}` requires `effective_time_frame`"));
            }
            None => None,
        };
        if let Some(stat) = &b.descriptive_statistic {
            set_soft(
                &mut soft,
                Reject::Unsupported,
                format!(
                    "`{label}` value is a descriptive statistic (`{}`), not an individual measurement",
                    clip(&stat.0)
                ),
            );
        }
        if let Some((reason, detail)) = soft {
            self.item_error(reason, format!("data point {i}: {detail}"));
            return Ok(());
        }
        for (vital, value) in values.into_iter().take(count) {
            self.pending.push(Decoded::Measurement(Measurement {
                vital,
                value,
                device_time: time,
                quality: Quality::NONE,
                offset: self.offset,
            }));
        }
        Ok(())
    }
}

/// The schema a data point claims, for error details (formatted only
/// when an error is reported).
struct SchemaLabel<'a> {
    namespace: &'a str,
    name: &'a str,
    /// `None` for a body without header.
    version: Option<&'a str>,
}

impl fmt::Display for SchemaLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.version {
            Some(v) => write!(
                f,
                "{}:{}:{}",
                clip(self.namespace),
                clip(self.name),
                clip(v)
            ),
            None => write!(f, "{}:{} (body without header)", self.namespace, self.name),
        }
    }
}

/// Keep the first soft problem; an `Unsupported` outranks a `BadTime`.
fn set_soft(soft: &mut Soft, reason: Reject, detail: String) {
    match soft {
        None => *soft = Some((reason, detail)),
        Some((Reject::BadTime, _)) if reason == Reject::Unsupported => {
            *soft = Some((reason, detail));
        }
        Some(_) => {}
    }
}

/// The value of a unit-value measure whose unit the schema fixes.
fn measure(
    uv: &Option<UnitValue<'_>>,
    field: &str,
    units: &[&str],
    label: &SchemaLabel<'_>,
) -> Result<f64, String> {
    let Some(uv) = uv else {
        return Err(format!("`{label}` body has no `{field}`"));
    };
    if !units.contains(&&*uv.unit.0) {
        return Err(format!(
            "`{label}` {field}.unit `{}` is not allowed (expected `{}`)",
            clip(&uv.unit.0),
            units.join("`, `")
        ));
    }
    Ok(uv.value)
}

fn oxygen_checks(
    b: &BodyFields<'_>,
    rules: Rules,
    label: &SchemaLabel<'_>,
    soft: &mut Soft,
) -> Result<(), String> {
    const SYSTEMS_1: [&str; 9] = [
        "arterial",
        "capillary",
        "intracardiac",
        "jugular bulb",
        "peripheral",
        "conjunctival",
        "venous",
        "mixed venous",
        "superior vena cava",
    ];
    const METHODS_1: [&str; 3] = [
        "pulse oximetry",
        "arterial blood gas analyzer",
        "near-infrared spectroscopy (NIRS)",
    ];
    let v1 = matches!(rules.major, None | Some(1));
    let v2 = matches!(rules.major, None | Some(2 | 3));
    if let Some(system) = &b.system {
        let s = &*system.0;
        let spo2 = (v1 && s == "peripheral") || (v2 && s == "peripheral capillary");
        if !spo2 {
            if v1 && SYSTEMS_1.contains(&s) {
                set_soft(
                    soft,
                    Reject::Unsupported,
                    format!("`{label}` system `{s}` is not peripheral (SpO2) oxygen saturation"),
                );
            } else {
                return Err(format!("`{label}` system `{}` is not allowed", clip(s)));
            }
        }
    }
    if let Some(method) = &b.measurement_method {
        let m = &*method.0;
        if m != "pulse oximetry" {
            if v1 && METHODS_1.contains(&m) {
                set_soft(
                    soft,
                    Reject::Unsupported,
                    format!("`{label}` measurement_method `{m}` is not pulse oximetry (SpO2)"),
                );
            } else {
                return Err(format!(
                    "`{label}` measurement_method `{}` is not allowed",
                    clip(m)
                ));
            }
        }
    }
    Ok(())
}

fn temperature_checks(
    b: &BodyFields<'_>,
    rules: Rules,
    label: &SchemaLabel<'_>,
    soft: &mut Soft,
) -> Result<(), String> {
    const SITES_1: [&str; 7] = [
        "oral", "rectal", "vaginal", "axillary", "otic", "wrist", "chest",
    ];
    const SITES_2: [&str; 10] = [
        "axillary",
        "finger",
        "forehead",
        "oral",
        "rectal",
        "temporal artery",
        "toe",
        "tympanic",
        "wrist",
        "vagina",
    ];
    const SKIN: [&str; 4] = ["wrist", "chest", "finger", "toe"];
    let Some(site) = &b.measurement_location else {
        return Ok(());
    };
    let s = &*site.0;
    let allowed = match rules.major {
        Some(1) => SITES_1.contains(&s),
        Some(_) => SITES_2.contains(&s),
        None => SITES_1.contains(&s) || SITES_2.contains(&s),
    };
    if !allowed {
        return Err(format!(
            "`{label}` measurement_location `{}` is not allowed",
            clip(s)
        ));
    }
    if SKIN.contains(&s) {
        set_soft(
            soft,
            Reject::Unsupported,
            format!(
                "`{label}` measurement_location `{s}` is a skin temperature, not a body temperature"
            ),
        );
    }
    Ok(())
}

/// The instant a time frame gives (the end of an interval).
fn time_frame(
    tf: &TimeFrame<'_>,
    rules: Rules,
    label: &SchemaLabel<'_>,
    soft: &mut Soft,
) -> Result<Option<Timestamp>, String> {
    let t = match (&tf.date_time, &tf.time_interval) {
        (Some(dt), None) => date_time(&dt.0, "effective_time_frame.date_time", label)?,
        (None, Some(ti)) => interval_end(ti, rules, label, soft)?,
        _ => {
            return Err(format!(
                "`{label}` effective_time_frame needs exactly one of `date_time` and `time_interval`"
            ));
        }
    };
    let Some(t) = t else {
        return Ok(None);
    };
    if t.millis() < 0 {
        set_soft(
            soft,
            Reject::BadTime,
            format!("`{label}` time {t} is before 1970"),
        );
        return Ok(None);
    }
    if t.millis() > MAX_TIME_MS {
        set_soft(
            soft,
            Reject::BadTime,
            format!("`{label}` time is after 9999-12-31"),
        );
        return Ok(None);
    }
    Ok(Some(t))
}

fn interval_end(
    ti: &TimeInterval<'_>,
    rules: Rules,
    label: &SchemaLabel<'_>,
    soft: &mut Soft,
) -> Result<Option<Timestamp>, String> {
    let start = ti.start_date_time.is_some();
    let end = ti.end_date_time.is_some();
    let dur = ti.duration.is_some();
    let vague = ti.date.is_some() && ti.part_of_day.is_some();
    let forms = usize::from(start && dur)
        + usize::from(end && dur)
        + usize::from(start && end)
        + usize::from(vague && !rules.ieee_time);
    if forms != 1 {
        let hint = if rules.ieee_time {
            "start_date_time + duration, end_date_time + duration, or start_date_time + end_date_time (IEEE 1752.1 time-interval-1.0)"
        } else {
            "start_date_time + duration, end_date_time + duration, start_date_time + end_date_time, or date + part_of_day"
        };
        return Err(format!(
            "`{label}` time_interval must have exactly one of: {hint}"
        ));
    }
    if vague {
        let date_ok = ti.date.as_ref().is_some_and(|d| is_full_date(&d.0));
        let pod_ok = ti
            .part_of_day
            .as_ref()
            .is_some_and(|p| matches!(&*p.0, "morning" | "afternoon" | "evening" | "night"));
        if !date_ok || !pod_ok {
            return Err(format!(
                "`{label}` time_interval date/part_of_day is not valid"
            ));
        }
        set_soft(
            soft,
            Reject::Unsupported,
            format!("`{label}` time frame `date + part_of_day` gives no instant for a vital sign"),
        );
        return Ok(None);
    }
    let start_t = match &ti.start_date_time {
        Some(s) => date_time(&s.0, "time_interval.start_date_time", label)?,
        None => None,
    };
    let end_t = match &ti.end_date_time {
        Some(s) => date_time(&s.0, "time_interval.end_date_time", label)?,
        None => None,
    };
    let dur_ms = match &ti.duration {
        Some(d) => duration_ms(d, label, soft)?,
        None => None,
    };
    match (start_t, end_t, dur_ms) {
        (Some(s), Some(e), _) => {
            if e < s {
                return Err(format!("`{label}` time_interval ends before it starts"));
            }
            Ok(Some(e))
        }
        (_, Some(e), _) => Ok(Some(e)),
        (Some(s), None, Some(ms)) => Ok(Some(s.add_millis(ms))),
        _ => Ok(None),
    }
}

/// A duration in milliseconds; `Ok(None)` when it has no fixed length.
fn duration_ms(
    d: &UnitValue<'_>,
    label: &SchemaLabel<'_>,
    soft: &mut Soft,
) -> Result<Option<i64>, String> {
    let per_ms = match &*d.unit.0 {
        "ps" => 1.0e-9,
        "ns" => 1.0e-6,
        "us" => 1.0e-3,
        "ms" => 1.0,
        "sec" => 1.0e3,
        "min" => 6.0e4,
        "h" => 3.6e6,
        "d" => 8.64e7,
        "wk" => 6.048e8,
        "Mo" | "yr" => {
            set_soft(
                soft,
                Reject::Unsupported,
                format!("`{label}` duration in `{}` has no fixed length", &*d.unit.0),
            );
            return Ok(None);
        }
        other => {
            return Err(format!(
                "`{label}` duration.unit `{}` is not allowed (ps, ns, us, ms, sec, min, h, d, wk, Mo, yr)",
                clip(other)
            ));
        }
    };
    if d.value < 0.0 {
        return Err(format!("`{label}` duration is negative"));
    }
    let ms = (d.value * per_ms).round();
    if ms.is_nan() || ms >= 1.0e16 {
        set_soft(
            soft,
            Reject::BadTime,
            format!("`{label}` duration is out of range"),
        );
        return Ok(None);
    }
    Ok(Some(ms as i64))
}

/// RFC 3339 date-time; without an offset, UTC.
fn date_time(s: &str, field: &str, label: &SchemaLabel<'_>) -> Result<Option<Timestamp>, String> {
    if let Some(t) = Timestamp::parse_rfc3339(s) {
        return Ok(Some(t));
    }
    let has_offset = s
        .find(['T', 't'])
        .and_then(|i| s.get(i..))
        .is_some_and(|time| time.contains(['Z', 'z', '+', '-']));
    if !has_offset {
        if let Some(t) = Timestamp::parse_rfc3339(&format!("{s}Z")) {
            return Ok(Some(t));
        }
    }
    Err(format!(
        "`{label}` {field} `{}` is not an RFC 3339 date-time",
        clip(s)
    ))
}

/// `YYYY-MM-DD`.
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(k, c)| {
            if k == 4 || k == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// The major of a `MAJOR.MINOR` version string.
fn parse_major(v: &str) -> Option<u32> {
    let (major, minor) = v.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 9 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(major) || !digits(minor) {
        return None;
    }
    major.parse().ok()
}

/// unit-value-1.0 (`value` and `unit` required).
#[derive(Deserialize)]
struct UnitValue<'a> {
    value: f64,
    #[serde(borrow)]
    unit: Str<'a>,
}

/// time-frame-1.x / IEEE time-frame-1.0.
#[derive(Deserialize)]
struct TimeFrame<'a> {
    #[serde(borrow, default)]
    date_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    time_interval: Option<TimeInterval<'a>>,
}

/// time-interval-1.x / IEEE time-interval-1.0.
#[derive(Deserialize)]
struct TimeInterval<'a> {
    #[serde(borrow, default)]
    start_date_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    end_date_time: Option<Str<'a>>,
    #[serde(borrow, default)]
    duration: Option<UnitValue<'a>>,
    #[serde(borrow, default)]
    date: Option<Str<'a>>,
    #[serde(borrow, default)]
    part_of_day: Option<Str<'a>>,
}

/// header-1.x / IEEE header-1.0: only `schema_id` matters here.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    schema_id: Option<SchemaId<'a>>,
}

/// schema-id-1.0.
#[derive(Deserialize)]
struct SchemaId<'a> {
    #[serde(borrow)]
    namespace: Str<'a>,
    #[serde(borrow)]
    name: Str<'a>,
    #[serde(borrow)]
    version: Str<'a>,
}

/// The body fields the decoder reads, for every mapped schema.
#[derive(Default)]
struct BodyFields<'a> {
    heart_rate: Option<UnitValue<'a>>,
    oxygen_saturation: Option<UnitValue<'a>>,
    respiratory_rate: Option<UnitValue<'a>>,
    body_temperature: Option<UnitValue<'a>>,
    systolic: Option<UnitValue<'a>>,
    diastolic: Option<UnitValue<'a>>,
    rr_interval: Option<UnitValue<'a>>,
    effective_time_frame: Option<TimeFrame<'a>>,
    descriptive_statistic: Option<Str<'a>>,
    system: Option<Str<'a>>,
    measurement_method: Option<Str<'a>>,
    measurement_location: Option<Str<'a>>,
}

impl BodyFields<'_> {
    fn has_measure(&self, kind: Kind) -> bool {
        match kind {
            Kind::HeartRate => self.heart_rate.is_some(),
            Kind::OxygenSaturation => self.oxygen_saturation.is_some(),
            Kind::RespiratoryRate => self.respiratory_rate.is_some(),
            Kind::BodyTemperature => self.body_temperature.is_some(),
            Kind::BloodPressure => self.systolic.is_some() || self.diastolic.is_some(),
            Kind::RrInterval => self.rr_interval.is_some(),
        }
    }
}

/// Keys of data points and bodies.
enum Key {
    Header,
    Body,
    HeartRate,
    OxygenSaturation,
    RespiratoryRate,
    BodyTemperature,
    Systolic,
    Diastolic,
    RrInterval,
    EffectiveTimeFrame,
    DescriptiveStatistic,
    System,
    MeasurementMethod,
    MeasurementLocation,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Key;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Key, E> {
                Ok(match s {
                    "header" => Key::Header,
                    "body" => Key::Body,
                    "heart_rate" => Key::HeartRate,
                    "oxygen_saturation" => Key::OxygenSaturation,
                    "respiratory_rate" => Key::RespiratoryRate,
                    "body_temperature" => Key::BodyTemperature,
                    "systolic_blood_pressure" => Key::Systolic,
                    "diastolic_blood_pressure" => Key::Diastolic,
                    "rr_interval" => Key::RrInterval,
                    "effective_time_frame" => Key::EffectiveTimeFrame,
                    "descriptive_statistic" => Key::DescriptiveStatistic,
                    "system" => Key::System,
                    "measurement_method" => Key::MeasurementMethod,
                    "measurement_location" => Key::MeasurementLocation,
                    _ => Key::Other,
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Reads the value of a body key into `b` (`Header`/`Body` keys inside a
/// body are unknown fields).
fn body_field<'de, A: MapAccess<'de>>(
    b: &mut BodyFields<'de>,
    key: Key,
    map: &mut A,
    at: &dyn Fn() -> String,
) -> Result<(), A::Error> {
    fn put<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
        slot: &mut Option<T>,
        name: &str,
        map: &mut A,
        at: &dyn Fn() -> String,
    ) -> Result<(), A::Error> {
        if slot.is_some() {
            return Err(de::Error::custom(format!(
                "{}: duplicate field `{name}`",
                at()
            )));
        }
        let v = map
            .next_value::<T>()
            .map_err(|e| de::Error::custom(format!("{}: `{name}`: {e}", at())))?;
        *slot = Some(v);
        Ok(())
    }
    match key {
        Key::HeartRate => put(&mut b.heart_rate, "heart_rate", map, at),
        Key::OxygenSaturation => put(&mut b.oxygen_saturation, "oxygen_saturation", map, at),
        Key::RespiratoryRate => put(&mut b.respiratory_rate, "respiratory_rate", map, at),
        Key::BodyTemperature => put(&mut b.body_temperature, "body_temperature", map, at),
        Key::Systolic => put(&mut b.systolic, "systolic_blood_pressure", map, at),
        Key::Diastolic => put(&mut b.diastolic, "diastolic_blood_pressure", map, at),
        Key::RrInterval => put(&mut b.rr_interval, "rr_interval", map, at),
        Key::EffectiveTimeFrame => {
            put(&mut b.effective_time_frame, "effective_time_frame", map, at)
        }
        Key::DescriptiveStatistic => put(
            &mut b.descriptive_statistic,
            "descriptive_statistic",
            map,
            at,
        ),
        Key::System => put(&mut b.system, "system", map, at),
        Key::MeasurementMethod => put(&mut b.measurement_method, "measurement_method", map, at),
        Key::MeasurementLocation => {
            put(&mut b.measurement_location, "measurement_location", map, at)
        }
        Key::Header | Key::Body | Key::Other => map.next_value::<IgnoredAny>().map(|_| ()),
    }
}

/// A `body` object.
struct Body<'a>(BodyFields<'a>);

impl<'de: 'a, 'a> Deserialize<'de> for Body<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BodyFields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a body object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<BodyFields<'de>, A::Error> {
                let mut b = BodyFields::default();
                while let Some(key) = map.next_key::<Key>()? {
                    body_field(&mut b, key, &mut map, &|| "body".to_owned())?;
                }
                Ok(b)
            }
        }
        Ok(Body(d.deserialize_map(V)?))
    }
}

/// One element of a message: a data point or a bare body.
struct Item<'a> {
    header: Option<Header<'a>>,
    body: Option<BodyFields<'a>>,
    bare: BodyFields<'a>,
}

/// Deserializes one item; carries its index for error messages.
struct ItemSeed(usize);

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Item<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Item<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Item<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "data point {} to be a JSON object", self.0)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item<'de>, A::Error> {
        let i = self.0;
        let at = || format!("data point {i}");
        let mut item = Item {
            header: None,
            body: None,
            bare: BodyFields::default(),
        };
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::Header => {
                    if item.header.is_some() {
                        return Err(de::Error::custom(format!(
                            "{}: duplicate field `header`",
                            at()
                        )));
                    }
                    let h = map
                        .next_value::<Header>()
                        .map_err(|e| de::Error::custom(format!("{}: `header`: {e}", at())))?;
                    item.header = Some(h);
                }
                Key::Body => {
                    if item.body.is_some() {
                        return Err(de::Error::custom(format!(
                            "{}: duplicate field `body`",
                            at()
                        )));
                    }
                    let b = map
                        .next_value::<Body>()
                        .map_err(|e| de::Error::custom(format!("{}: `body`: {e}", at())))?;
                    item.body = Some(b.0);
                }
                key => body_field(&mut item.bare, key, &mut map, &at)?,
            }
        }
        Ok(item)
    }
}

/// Writes one array of data points per snapshot (see the module docs).
pub struct OmhEncoder {
    device_id: String,
}

impl OmhEncoder {
    /// An encoder for the device with this id.
    pub fn new(device_id: &str) -> Self {
        OmhEncoder {
            device_id: device_id.to_owned(),
        }
    }

    fn header(&self, out: &mut Vec<u8>, s: &Snapshot, name: &str, version: &str) {
        out.extend_from_slice(b"{\"header\":{\"id\":");
        write_json(out, &format!("{}-{}-{name}", self.device_id, s.seq));
        out.extend_from_slice(b",\"creation_date_time\":");
        write_json(out, &s.time.to_string());
        out.extend_from_slice(b",\"schema_id\":{\"namespace\":\"omh\",\"name\":");
        write_json(out, name);
        out.extend_from_slice(b",\"version\":");
        write_json(out, version);
        out.extend_from_slice(b"},\"acquisition_provenance\":{\"source_name\":");
        write_json(out, self.device_id.as_str());
        out.extend_from_slice(b",\"modality\":\"sensed\"}},\"body\":{");
    }
}

fn unit_value(out: &mut Vec<u8>, field: &str, value: f64, unit: &str) {
    out.push(b'"');
    out.extend_from_slice(field.as_bytes());
    out.extend_from_slice(b"\":{\"value\":");
    write_json(out, &value);
    out.extend_from_slice(b",\"unit\":");
    write_json(out, unit);
    out.extend_from_slice(b"},");
}

impl Encoder for OmhEncoder {
    fn encode(&mut self, s: &Snapshot, out: &mut Vec<u8>) {
        if s.quality
            .intersects(Quality::SENSOR_OFF | Quality::SEARCHING)
        {
            return;
        }
        let get = |v: Vital, round: fn(f64) -> f64| s.get(v).map(round).filter(|x| x.is_finite());
        let integer: fn(f64) -> f64 = f64::round;
        let tenth: fn(f64) -> f64 = |x| (x * 10.0).round() / 10.0;
        let bp = match (
            get(Vital::SystolicBp, integer),
            get(Vital::DiastolicBp, integer),
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        let points: [(bool, &str, &str); 6] = [
            (
                get(Vital::HeartRate, integer).is_some(),
                "heart-rate",
                "2.0",
            ),
            (
                get(Vital::Spo2, integer).is_some(),
                "oxygen-saturation",
                "2.0",
            ),
            (
                get(Vital::RespiratoryRate, integer).is_some(),
                "respiratory-rate",
                "2.0",
            ),
            (
                get(Vital::BodyTemperature, tenth).is_some(),
                "body-temperature",
                "3.0",
            ),
            (bp.is_some(), "blood-pressure", "3.1"),
            (
                get(Vital::RrInterval, integer).is_some(),
                "rr-interval",
                "1.0",
            ),
        ];
        let mut first = true;
        for (present, name, version) in points {
            if !present {
                continue;
            }
            out.push(if first { b'[' } else { b',' });
            first = false;
            self.header(out, s, name, version);
            match name {
                "heart-rate" => {
                    let v = get(Vital::HeartRate, integer).unwrap_or_default();
                    unit_value(out, "heart_rate", v, "beats/min");
                }
                "oxygen-saturation" => {
                    let v = get(Vital::Spo2, integer).unwrap_or_default();
                    unit_value(out, "oxygen_saturation", v, "%");
                    out.extend_from_slice(
                        b"\"system\":\"peripheral capillary\",\"measurement_method\":\"pulse oximetry\",",
                    );
                }
                "respiratory-rate" => {
                    let v = get(Vital::RespiratoryRate, integer).unwrap_or_default();
                    unit_value(out, "respiratory_rate", v, "breaths/min");
                }
                "body-temperature" => {
                    let v = get(Vital::BodyTemperature, tenth).unwrap_or_default();
                    unit_value(out, "body_temperature", v, "C");
                }
                "blood-pressure" => {
                    let (sys, dia) = bp.unwrap_or_default();
                    unit_value(out, "systolic_blood_pressure", sys, "mmHg");
                    unit_value(out, "diastolic_blood_pressure", dia, "mmHg");
                }
                _ => {
                    let v = get(Vital::RrInterval, integer).unwrap_or_default();
                    unit_value(out, "rr_interval", v, "ms");
                }
            }
            out.extend_from_slice(b"\"effective_time_frame\":{\"date_time\":");
            write_json(out, &s.time.to_string());
            out.extend_from_slice(b"}}}");
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
        Rng, assert_message_round_trip, assert_testdata_matches, decode_message, every_vital,
        single_error,
    };
    use serde_json::json;

    const NOW: Timestamp = Timestamp(1_763_708_462_000);

    fn decode(payload: &str) -> Vec<Decoded> {
        decode_message(&mut OmhDecoder::new(), payload.as_bytes(), 3, NOW)
    }

    fn m(vital: Vital, value: f64, time: Option<&str>) -> Decoded {
        Decoded::Measurement(Measurement {
            vital,
            value,
            device_time: time.map(|t| Timestamp::parse_rfc3339(t).unwrap()),
            quality: Quality::NONE,
            offset: 3,
        })
    }

    fn point(name: &str, version: &str, body: serde_json::Value) -> String {
        json!({
            "header": {
                "id": "243c773b-8936-407e-9c23-270d0ea49cc4",
                "creation_date_time": "2013-02-05T07:25:00Z",
                "schema_id": {"namespace": "omh", "name": name, "version": version},
                "acquisition_provenance": {"source_name": "RunKeeper", "modality": "sensed"},
                "user_id": "joe"
            },
            "body": body
        })
        .to_string()
    }

    #[test]
    fn schema_library_test_data_decode_as_bare_bodies() {
        // openmhealth/schemas test-data/omh/heart-rate/1.0/shouldPass/with-everything.json
        let hr = r#"{"heart_rate":{"value":50,"unit":"beats/min"},"effective_time_frame":{"date_time":"2013-02-05T07:25:00Z"},"temporal_relationship_to_physical_activity":"at rest","user_notes":"I felt quite dizzy"}"#;
        assert_eq!(
            decode(hr),
            vec![m(Vital::HeartRate, 50.0, Some("2013-02-05T07:25:00Z"))]
        );
        // .../oxygen-saturation/3.0/shouldPass/with-oxygen.json
        let o2 = r#"{"oxygen_saturation":{"value":95,"unit":"%"},"effective_time_frame":{"date_time":"2025-02-05T07:25:00Z"},"supplemental_oxygen_flow_rate":{"value":2.5,"unit":"L/min"},"oxygen_therapy_mode_of_administration":"nasal cannula","system":"peripheral capillary","measurement_method":"pulse oximetry"}"#;
        assert_eq!(
            decode(o2),
            vec![m(Vital::Spo2, 95.0, Some("2025-02-05T07:25:00Z"))]
        );
        // .../body-temperature/4.0/shouldPass/valid-temperature.json
        let bt = r#"{"body_temperature":{"value":97,"unit":"F"},"effective_time_frame":{"date_time":"2023-02-05T07:25:00+01:00"},"measurement_location":"forehead"}"#;
        let got = decode(bt);
        let Decoded::Measurement(t) = &got[0] else {
            panic!("{got:?}")
        };
        assert!((t.value - 36.111_111_111).abs() < 1e-9, "{}", t.value);
        assert_eq!(
            t.device_time,
            Timestamp::parse_rfc3339("2023-02-05T06:25:00Z")
        );
        // .../blood-pressure/4.0/shouldPass/with-posture-location-relation.json
        let bp = r#"{"systolic_blood_pressure":{"value":125,"unit":"mmHg"},"diastolic_blood_pressure":{"value":60,"unit":"mmHg"},"body_posture":"sitting","measurement_location":"left wrist","temporal_relationship_to_physical_activity":"at rest","effective_time_frame":{"date_time":"2020-02-05T07:25:00-08:00"}}"#;
        assert_eq!(
            decode(bp),
            vec![
                m(Vital::SystolicBp, 125.0, Some("2020-02-05T15:25:00Z")),
                m(Vital::DiastolicBp, 60.0, Some("2020-02-05T15:25:00Z"))
            ]
        );
        // .../heart-rate/3.0/shouldPass/with-descriptive-statistic.json: a
        // daily minimum is not a measurement.
        let stat = r#"{"heart_rate":{"value":50.0,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2020-02-05T06:00:00+01:00","end_date_time":"2020-02-06T06:00:00+01:00"}},"descriptive_statistic":"minimum"}"#;
        let (reason, detail) = single_error(&decode(stat));
        assert_eq!(reason, Reject::Unsupported);
        assert!(
            detail.contains("descriptive statistic (`minimum`)"),
            "{detail}"
        );
        // .../oxygen-saturation/1.0/shouldFail/invalid-unit.json
        let bad = r#"{"oxygen_saturation":{"value":95,"unit":"g"},"effective_time_frame":{"date_time":"2013-02-05T07:25:00Z"},"system":"capillary"}"#;
        let (reason, detail) = single_error(&decode(bad));
        assert_eq!(reason, Reject::Malformed);
        assert!(
            detail.contains("oxygen_saturation.unit `g` is not allowed"),
            "{detail}"
        );
    }

    #[test]
    fn data_points_with_an_omh_header_decode_every_mapped_schema() {
        let t = "2024-03-01T10:00:00Z";
        let tf = json!({"date_time": t});
        let cases = [
            (
                "heart-rate",
                "1.0",
                json!({"heart_rate": {"value": 61, "unit": "beats/min"}, "effective_time_frame": tf}),
                vec![(Vital::HeartRate, 61.0)],
            ),
            (
                "heart-rate",
                "1.1",
                json!({"heart_rate": {"value": 62, "unit": "beats/min"}, "effective_time_frame": tf}),
                vec![(Vital::HeartRate, 62.0)],
            ),
            (
                "heart-rate",
                "2.0",
                json!({"heart_rate": {"value": 63, "unit": "beats/min"}, "effective_time_frame": tf}),
                vec![(Vital::HeartRate, 63.0)],
            ),
            (
                "heart-rate",
                "3.0",
                json!({"heart_rate": {"value": 64, "unit": "beats/min"}, "effective_time_frame": tf}),
                vec![(Vital::HeartRate, 64.0)],
            ),
            (
                "oxygen-saturation",
                "1.0",
                json!({"oxygen_saturation": {"value": 96, "unit": "%"}, "system": "peripheral", "measurement_method": "pulse oximetry", "effective_time_frame": tf}),
                vec![(Vital::Spo2, 96.0)],
            ),
            (
                "oxygen-saturation",
                "2.0",
                json!({"oxygen_saturation": {"value": 97, "unit": "%"}, "effective_time_frame": tf}),
                vec![(Vital::Spo2, 97.0)],
            ),
            (
                "respiratory-rate",
                "2.0",
                json!({"respiratory_rate": {"value": 15, "unit": "breaths/min"}, "effective_time_frame": tf}),
                vec![(Vital::RespiratoryRate, 15.0)],
            ),
            (
                "body-temperature",
                "1.0",
                json!({"body_temperature": {"value": 310.15, "unit": "K"}, "measurement_location": "otic", "effective_time_frame": tf}),
                vec![(Vital::BodyTemperature, 37.0)],
            ),
            (
                "body-temperature",
                "3.0",
                json!({"body_temperature": {"value": 37.4, "unit": "C"}, "measurement_location": "tympanic", "effective_time_frame": tf}),
                vec![(Vital::BodyTemperature, 37.4)],
            ),
            (
                "body-temperature",
                "4.0",
                json!({"body_temperature": {"value": 98.6, "unit": "F"}, "effective_time_frame": tf}),
                vec![(Vital::BodyTemperature, 37.0)],
            ),
            (
                "blood-pressure",
                "3.1",
                json!({"systolic_blood_pressure": {"value": 118, "unit": "mmHg"}, "diastolic_blood_pressure": {"value": 76, "unit": "mmHg"}, "body_posture": "sitting", "effective_time_frame": tf}),
                vec![(Vital::SystolicBp, 118.0), (Vital::DiastolicBp, 76.0)],
            ),
            (
                "rr-interval",
                "1.0",
                json!({"rr_interval": {"value": 845, "unit": "ms"}, "effective_time_frame": tf}),
                vec![(Vital::RrInterval, 845.0)],
            ),
            (
                "rr-interval",
                "2.0",
                json!({"rr_interval": {"value": 846, "unit": "ms"}, "effective_time_frame": tf}),
                vec![(Vital::RrInterval, 846.0)],
            ),
        ];
        for (name, version, body, want) in cases {
            let want: Vec<Decoded> = want.into_iter().map(|(v, x)| m(v, x, Some(t))).collect();
            assert_eq!(
                decode(&point(name, version, body)),
                want,
                "{name} {version}"
            );
        }
    }

    #[test]
    fn ieee_1752_1_headers_are_accepted() {
        let p = r#"{"header":{"uuid":"e5b1f3a2-1b1a-4c44-9a0e-6b8f0a2d9f10","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"source_creation_date_time":"2024-03-01T10:00:05Z","modality":"sensed"},"body":{"heart_rate":{"value":70,"unit":"beats/min"},"effective_time_frame":{"date_time":"2024-03-01T10:00:00Z"}}}"#;
        assert_eq!(
            decode(p),
            vec![m(Vital::HeartRate, 70.0, Some("2024-03-01T10:00:00Z"))]
        );
    }

    #[test]
    fn an_array_reports_each_data_point_in_order() {
        let hr = point(
            "heart-rate",
            "2.0",
            json!({"heart_rate": {"value": 70, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}}),
        );
        let steps = point(
            "step-count",
            "2.0",
            json!({"step_count": {"value": 100, "unit": "steps"}}),
        );
        let o2 = r#"{"oxygen_saturation":{"value":98,"unit":"%"}}"#;
        let got = decode(&format!("[{hr},{steps},{o2}]"));
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(
            got[0],
            m(Vital::HeartRate, 70.0, Some("2024-03-01T10:00:00Z"))
        );
        let Decoded::Error(e) = &got[1] else {
            panic!("{got:?}")
        };
        assert_eq!(e.reason, Reject::Unsupported);
        assert!(
            e.detail
                .starts_with("data point 1: schema `omh:step-count:2.0`"),
            "{}",
            e.detail
        );
        // A 1.x-compatible bare body may omit the time frame.
        assert_eq!(got[2], m(Vital::Spo2, 98.0, None));
    }

    #[test]
    fn one_malformed_data_point_rejects_the_whole_array() {
        let good = point(
            "heart-rate",
            "2.0",
            json!({"heart_rate": {"value": 70, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}}),
        );
        let bad = point(
            "heart-rate",
            "2.0",
            json!({"heart_rate": {"value": 70, "unit": "bpm"}, "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}}),
        );
        let (reason, detail) = single_error(&decode(&format!("[{good},{bad}]")));
        assert_eq!(reason, Reject::Malformed);
        assert!(
            detail.starts_with("data point 1: `omh:heart-rate:2.0` heart_rate.unit `bpm`"),
            "{detail}"
        );
    }

    #[test]
    fn namespaces_schemas_and_versions_that_are_not_mapped_are_unsupported() {
        let body = json!({"heart_rate": {"value": 70, "unit": "beats/min"}, "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}});
        let ieee = point("heart-rate", "1.0", body.clone()).replace("\"omh\"", "\"ieee\"");
        let (reason, detail) = single_error(&decode(&ieee));
        assert_eq!(reason, Reject::Unsupported);
        assert!(
            detail.contains("IEEE 1752.1 defines no `heart-rate` schema"),
            "{detail}"
        );
        let granola = point("heart-rate", "1.0", body.clone()).replace("\"omh\"", "\"granola\"");
        assert_eq!(single_error(&decode(&granola)).0, Reject::Unsupported);
        let v9 = point("heart-rate", "9.0", body.clone());
        let (reason, detail) = single_error(&decode(&v9));
        assert_eq!(reason, Reject::Unsupported);
        assert!(detail.contains("major version 9"), "{detail}");
        for bad_version in ["2", "2.x", "v2.0", "", "2.0.1", "2.-1"] {
            let p = point("heart-rate", bad_version, body.clone());
            assert_eq!(
                single_error(&decode(&p)).0,
                Reject::Malformed,
                "{bad_version}"
            );
        }
    }

    #[test]
    fn units_outside_the_schema_enums_are_malformed() {
        let tf = json!({"date_time": "2024-03-01T10:00:00Z"});
        let cases = [
            (
                "blood-pressure",
                "4.0",
                json!({"systolic_blood_pressure": {"value": 16, "unit": "kPa"}, "diastolic_blood_pressure": {"value": 10, "unit": "kPa"}, "effective_time_frame": tf}),
            ),
            (
                "body-temperature",
                "3.0",
                json!({"body_temperature": {"value": 37, "unit": "Cel"}, "effective_time_frame": tf}),
            ),
            (
                "respiratory-rate",
                "2.0",
                json!({"respiratory_rate": {"value": 14, "unit": "/min"}, "effective_time_frame": tf}),
            ),
            (
                "rr-interval",
                "2.0",
                json!({"rr_interval": {"value": 0.8, "unit": "sec"}, "effective_time_frame": tf}),
            ),
            (
                "oxygen-saturation",
                "2.0",
                json!({"oxygen_saturation": {"value": 0.97, "unit": "/"}, "effective_time_frame": tf}),
            ),
        ];
        for (name, version, body) in cases {
            let (reason, detail) = single_error(&decode(&point(name, version, body)));
            assert_eq!(reason, Reject::Malformed, "{name}");
            assert!(detail.contains("is not allowed"), "{detail}");
        }
    }

    #[test]
    fn structural_errors_are_malformed() {
        let tf = r#""effective_time_frame":{"date_time":"2024-03-01T10:00:00Z"}"#;
        let cases = [
            ("", "EOF"),
            ("[]", "empty array"),
            ("7", "a data point, a body, or an array"),
            ("[7]", "data point 0 to be a JSON object"),
            (
                r#"{"header":{"schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"}}}"#,
                "no `body`",
            ),
            (
                r#"{"body":{"heart_rate":{"value":1,"unit":"beats/min"}}}"#,
                "no `header`",
            ),
            (r#"{"header":{},"body":{}}"#, "no `schema_id`"),
            (
                r#"{"header":{"schema_id":{"namespace":"omh","name":"heart-rate"}},"body":{}}"#,
                "missing field `version`",
            ),
            (
                &format!(r#"{{"heart_rate":{{"value":"60","unit":"beats/min"}},{tf}}}"#),
                "`heart_rate`",
            ),
            (
                &format!(r#"{{"heart_rate":{{"unit":"beats/min"}},{tf}}}"#),
                "missing field `value`",
            ),
            (
                &format!(
                    r#"{{"heart_rate":{{"value":60,"unit":"beats/min"}},"heart_rate":{{"value":61,"unit":"beats/min"}},{tf}}}"#
                ),
                "duplicate field `heart_rate`",
            ),
            (
                &format!(
                    r#"{{"heart_rate":{{"value":60,"unit":"beats/min"}},"respiratory_rate":{{"value":12,"unit":"breaths/min"}},{tf}}}"#
                ),
                "ambiguous",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{}}"#,
                "exactly one of `date_time` and `time_interval`",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"date_time":"yesterday"}}"#,
                "not an RFC 3339 date-time",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z"}}}"#,
                "exactly one of",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","end_date_time":"2024-03-01T09:00:00Z"}}}"#,
                "ends before it starts",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":-1,"unit":"min"}}}}"#,
                "negative",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":1,"unit":"s"}}}}"#,
                "duration.unit `s`",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"},"descriptive_statistic":5}"#,
                "`descriptive_statistic`",
            ),
            (
                r#"{"oxygen_saturation":{"value":60,"unit":"%"},"system":"blood"}"#,
                "system `blood` is not allowed",
            ),
            (
                r#"{"body_temperature":{"value":37,"unit":"C"},"measurement_location":"ear"}"#,
                "measurement_location `ear`",
            ),
            (
                r#"{"heart_rate":{"value":60,"unit":"beats/min"}} {}"#,
                "trailing",
            ),
        ];
        for (p, want) in cases {
            let (reason, detail) = single_error(&decode(p));
            assert_eq!(reason, Reject::Malformed, "{p}: {detail}");
            assert!(detail.contains(want), "{p}: {detail}");
        }
    }

    #[test]
    fn time_frames_give_the_end_of_an_interval() {
        let hr = |tf: &str| {
            format!(
                r#"{{"heart_rate":{{"value":60,"unit":"beats/min"}},"effective_time_frame":{tf}}}"#
            )
        };
        let cases = [
            (
                r#"{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","end_date_time":"2024-03-01T10:01:00Z"}}"#,
                "2024-03-01T10:01:00Z",
            ),
            (
                r#"{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":90,"unit":"sec"}}}"#,
                "2024-03-01T10:01:30Z",
            ),
            (
                r#"{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":1.5,"unit":"h"}}}"#,
                "2024-03-01T11:30:00Z",
            ),
            (
                r#"{"time_interval":{"end_date_time":"2024-03-01T10:00:00+02:00","duration":{"value":5,"unit":"min"}}}"#,
                "2024-03-01T08:00:00Z",
            ),
            (
                r#"{"date_time":"2024-03-01T10:00:00.250"}"#,
                "2024-03-01T10:00:00.250Z",
            ),
            (
                r#"{"date_time":"2024-03-01t10:00:00z"}"#,
                "2024-03-01T10:00:00Z",
            ),
        ];
        for (tf, want) in cases {
            assert_eq!(
                decode(&hr(tf)),
                vec![m(Vital::HeartRate, 60.0, Some(want))],
                "{tf}"
            );
        }
    }

    #[test]
    fn vague_or_impossible_times_are_reported_per_data_point() {
        let hr = |tf: &str| {
            format!(
                r#"{{"heart_rate":{{"value":60,"unit":"beats/min"}},"effective_time_frame":{tf}}}"#
            )
        };
        // openmhealth/schemas test-data/omh/blood-pressure/1.0/shouldPass/with-time-frame.json
        let bp1 = r#"{"systolic_blood_pressure":{"value":160,"unit":"mmHg"},"diastolic_blood_pressure":{"value":60,"unit":"mmHg"},"effective_time_frame":{"time_interval":{"date":"2013-02-05","part_of_day":"evening"}},"position_during_measurement":"sitting"}"#;
        let (reason, detail) = single_error(&decode(bp1));
        assert_eq!(reason, Reject::Unsupported);
        assert!(detail.contains("date + part_of_day"), "{detail}");
        // .../blood-pressure/4.0/shouldFail/invalid-timeframe-format.json:
        // the IEEE time interval has no date + part_of_day form.
        let bp4 = point("blood-pressure", "4.0", serde_json::from_str(r#"{"systolic_blood_pressure":{"value":115,"unit":"mmHg"},"diastolic_blood_pressure":{"value":60,"unit":"mmHg"},"effective_time_frame":{"time_interval":{"date":"2013-02-05","part_of_day":"morning"}},"temporal_relationship_to_physical_activity":"at rest"}"#).unwrap());
        assert_eq!(single_error(&decode(&bp4)).0, Reject::Malformed);
        let months = hr(
            r#"{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":1,"unit":"Mo"}}}"#,
        );
        assert_eq!(single_error(&decode(&months)).0, Reject::Unsupported);
        let before_1970 = hr(r#"{"date_time":"1969-12-31T23:59:59Z"}"#);
        assert_eq!(single_error(&decode(&before_1970)).0, Reject::BadTime);
        // A missing time frame where the version requires one is malformed.
        let missing = point(
            "heart-rate",
            "2.0",
            json!({"heart_rate": {"value": 60, "unit": "beats/min"}}),
        );
        let (reason, detail) = single_error(&decode(&missing));
        assert_eq!(reason, Reject::Malformed);
        assert!(
            detail.contains("requires `effective_time_frame`"),
            "{detail}"
        );
        let optional = point(
            "heart-rate",
            "1.1",
            json!({"heart_rate": {"value": 60, "unit": "beats/min"}}),
        );
        assert_eq!(decode(&optional), vec![m(Vital::HeartRate, 60.0, None)]);
    }

    #[test]
    fn saturations_that_are_not_spo2_and_skin_temperatures_are_unsupported() {
        for body in [
            r#"{"oxygen_saturation":{"value":70,"unit":"%"},"system":"venous"}"#,
            r#"{"oxygen_saturation":{"value":97,"unit":"%"},"system":"arterial","measurement_method":"arterial blood gas analyzer"}"#,
            r#"{"oxygen_saturation":{"value":80,"unit":"%"},"measurement_method":"near-infrared spectroscopy (NIRS)"}"#,
            r#"{"body_temperature":{"value":33.1,"unit":"C"},"measurement_location":"wrist"}"#,
            r#"{"body_temperature":{"value":33.1,"unit":"C"},"measurement_location":"finger"}"#,
        ] {
            let (reason, _) = single_error(&decode(body));
            assert_eq!(reason, Reject::Unsupported, "{body}");
        }
        // 2.0 only allows "peripheral capillary": "venous" is outside its enum.
        let p = point(
            "oxygen-saturation",
            "2.0",
            json!({"oxygen_saturation": {"value": 70, "unit": "%"}, "system": "venous", "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}}),
        );
        assert_eq!(single_error(&decode(&p)).0, Reject::Malformed);
        // A 1.0 location that 2.0 dropped.
        let p = point(
            "body-temperature",
            "2.0",
            json!({"body_temperature": {"value": 37, "unit": "C"}, "measurement_location": "otic", "effective_time_frame": {"date_time": "2024-03-01T10:00:00Z"}}),
        );
        assert_eq!(single_error(&decode(&p)).0, Reject::Malformed);
    }

    #[test]
    fn bare_bodies_without_a_mapped_measure_are_unsupported() {
        let (reason, _) = single_error(&decode(r#"{"step_count":{"value":100,"unit":"steps"}}"#));
        assert_eq!(reason, Reject::Unsupported);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let p = r#"{"heart_rate":{"value":60,"unit":"beats\/min"},"effective_time_frame":{"date_time":"2024-03-01T10:00:00\u005A"}}"#;
        assert_eq!(
            decode(p),
            vec![m(Vital::HeartRate, 60.0, Some("2024-03-01T10:00:00Z"))]
        );
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            seq: 42,
            ..every_vital()
        }
    }

    #[test]
    fn encoder_writes_one_data_point_per_vital() {
        let mut s = Snapshot {
            time: Timestamp(1_763_708_462_123),
            seq: 5,
            ..Snapshot::default()
        };
        s.set(Vital::HeartRate, Some(72.0));
        let mut out = Vec::new();
        OmhEncoder::new("band-1").encode(&s, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"header":{"id":"band-1-5-heart-rate","creation_date_time":"2025-11-21T07:01:02.123Z","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"},"acquisition_provenance":{"source_name":"band-1","modality":"sensed"}},"body":{"heart_rate":{"value":72.0,"unit":"beats/min"},"effective_time_frame":{"date_time":"2025-11-21T07:01:02.123Z"}}}]"#
        );
    }

    #[test]
    fn encoder_output_decodes_back_to_the_rounded_snapshot() {
        let want = [
            (Vital::HeartRate, 72.0),
            (Vital::Spo2, 97.0),
            (Vital::RespiratoryRate, 14.0),
            (Vital::BodyTemperature, 37.2),
            (Vital::SystolicBp, 120.0),
            (Vital::DiastolicBp, 80.0),
            (Vital::RrInterval, 812.0),
        ];
        let mut e = OmhEncoder::new("wrist \"7\"");
        assert_message_round_trip(&mut e, &mut OmhDecoder::new(), &snapshot(), &want);
    }

    #[test]
    fn encoder_writes_nothing_when_the_device_has_nothing_to_say() {
        let mut e = OmhEncoder::new("band-1");
        let mut out = Vec::new();
        e.encode(&Snapshot::default(), &mut out);
        assert!(out.is_empty());
        let mut s = snapshot();
        s.quality = Quality::SEARCHING;
        e.encode(&s, &mut out);
        assert!(out.is_empty());
        // Half a blood pressure and vitals without a schema: nothing.
        let mut s = Snapshot::default();
        s.set(Vital::SystolicBp, Some(120.0));
        s.set(Vital::PulseRate, Some(70.0));
        s.set(Vital::PerfusionIndex, Some(1.0));
        s.set(Vital::HeartRate, Some(f64::INFINITY));
        e.encode(&s, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn testdata_capture_matches_the_expected_events() {
        assert_testdata_matches(Format::OpenMhealth, "open-mhealth.txt");
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut d = OmhDecoder::new();
        let seeds: [&[u8]; 4] = [
            br#"{"header":{"id":"x","schema_id":{"namespace":"omh","name":"heart-rate","version":"2.0"}},"body":{"heart_rate":{"value":60,"unit":"beats/min"},"effective_time_frame":{"date_time":"2024-03-01T10:00:00Z"}}}"#,
            br#"[{"body_temperature":{"value":98.6,"unit":"F"},"measurement_location":"oral","effective_time_frame":{"time_interval":{"start_date_time":"2024-03-01T10:00:00Z","duration":{"value":1,"unit":"min"}}}}]"#,
            br#"{"oxygen_saturation":{"value":97,"unit":"%"},"system":"peripheral","descriptive_statistic":"average","effective_time_frame":{"time_interval":{"date":"2024-03-01","part_of_day":"night"}}}"#,
            br#"[{"systolic_blood_pressure":{"value":1e308,"unit":"mmHg"},"diastolic_blood_pressure":{"value":-1,"unit":"mmHg"}}]"#,
        ];
        let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
        let alphabet = br#"[]{}",:0123456789.eE+-TZ_\ "#;
        for round in 0..20_000 {
            let msg = rng.mutate(seeds[round % seeds.len()], alphabet);
            d.decode(&msg, 0, Timestamp(0), &mut |_| {});
            d.decode(&rng.bytes(64), 0, Timestamp(0), &mut |_| {});
        }
    }
}
