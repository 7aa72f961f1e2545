//! How each vital is coded in FHIR R4: LOINC codings, the UCUM unit, and
//! the core vital-signs profile it conforms to, if any.
//!
//! Checked against the FHIR R4 (4.0.1) vital signs profiles
//! (<http://hl7.org/fhir/R4/observation-vitalsigns.html>): each profile fixes
//! one LOINC coding (an open slice, so a more specific LOINC code may follow
//! it) and the UCUM code of `valueQuantity`.

use vitalgate_devices::Vital;

/// The LOINC code system.
pub const LOINC: &str = "http://loinc.org";
/// The UCUM code system.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// The observation-category code system and its vital-signs code.
pub const CATEGORY_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// See [`CATEGORY_SYSTEM`].
pub const CATEGORY_CODE: &str = "vital-signs";
/// See [`CATEGORY_SYSTEM`].
pub const CATEGORY_DISPLAY: &str = "Vital Signs";
/// The DataAbsentReason code system.
pub const DATA_ABSENT: &str = "http://terminology.hl7.org/CodeSystem/data-absent-reason";

/// A core FHIR R4 vital-signs profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// Heart rate, LOINC 8867-4, `/min`.
    HeartRate,
    /// Oxygen saturation, LOINC 2708-6, `%`.
    OxygenSat,
    /// Respiratory rate, LOINC 9279-1, `/min`.
    RespRate,
    /// Body temperature, LOINC 8310-5, `Cel` or `[degF]`.
    BodyTemp,
    /// Blood pressure panel, LOINC 85354-9, with a systolic (8480-6) and a
    /// diastolic (8462-4) component in `mm[Hg]`.
    BloodPressure,
}

impl Profile {
    /// The profile's canonical URL (for `meta.profile`).
    pub const fn url(self) -> &'static str {
        match self {
            Profile::HeartRate => "http://hl7.org/fhir/StructureDefinition/heartrate",
            Profile::OxygenSat => "http://hl7.org/fhir/StructureDefinition/oxygensat",
            Profile::RespRate => "http://hl7.org/fhir/StructureDefinition/resprate",
            Profile::BodyTemp => "http://hl7.org/fhir/StructureDefinition/bodytemp",
            Profile::BloodPressure => "http://hl7.org/fhir/StructureDefinition/bp",
        }
    }
}

/// How one observation (or component) is coded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Code {
    /// LOINC codes, the one a profile requires first.
    pub codes: &'static [&'static str],
    /// Human-readable name (`code.text`).
    pub text: &'static str,
    /// The core profile an observation of this vital conforms to.
    pub profile: Option<Profile>,
}

/// The blood-pressure panel that carries systolic and diastolic readings.
pub const BP_PANEL: Code = Code {
    codes: &["85354-9"],
    text: "Blood pressure systolic and diastolic",
    profile: Some(Profile::BloodPressure),
};

/// How a reading of `vital` is coded. Systolic and diastolic pressures are
/// components of a [`BP_PANEL`], never observations of their own.
pub const fn code(vital: Vital) -> Code {
    match vital {
        Vital::HeartRate => Code {
            codes: &["8867-4"],
            text: "Heart rate",
            profile: Some(Profile::HeartRate),
        },
        // "Heart rate by Pulse oximetry" is a more specific heart rate: the
        // profile's 8867-4 first, then the precise code.
        Vital::PulseRate => Code {
            codes: &["8867-4", "8889-8"],
            text: "Pulse rate (pulse oximetry)",
            profile: Some(Profile::HeartRate),
        },
        // The R4 oxygensat profile requires 2708-6; 59408-5 ("by pulse
        // oximetry") says how it was measured.
        Vital::Spo2 => Code {
            codes: &["2708-6", "59408-5"],
            text: "Oxygen saturation (pulse oximetry)",
            profile: Some(Profile::OxygenSat),
        },
        Vital::RespiratoryRate => Code {
            codes: &["9279-1"],
            text: "Respiratory rate",
            profile: Some(Profile::RespRate),
        },
        Vital::BodyTemperature => Code {
            codes: &["8310-5"],
            text: "Body temperature",
            profile: Some(Profile::BodyTemp),
        },
        Vital::SystolicBp => Code {
            codes: &["8480-6"],
            text: "Systolic blood pressure",
            profile: None,
        },
        Vital::DiastolicBp => Code {
            codes: &["8462-4"],
            text: "Diastolic blood pressure",
            profile: None,
        },
        Vital::MeanArterialPressure => Code {
            codes: &["8478-0"],
            text: "Mean arterial pressure",
            profile: None,
        },
        Vital::PerfusionIndex => Code {
            codes: &["61006-3"],
            text: "Perfusion index",
            profile: None,
        },
        Vital::RrInterval => Code {
            codes: &["8637-4"],
            text: "R-R interval",
            profile: None,
        },
    }
}

/// Whether `vital` goes into a blood-pressure panel.
pub const fn in_bp_panel(vital: Vital) -> bool {
    matches!(vital, Vital::SystolicBp | Vital::DiastolicBp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vital_keeps_its_own_loinc_code() {
        for v in Vital::ALL {
            assert!(
                code(v).codes.contains(&v.loinc()),
                "{v}: {:?} lacks {}",
                code(v).codes,
                v.loinc()
            );
        }
    }

    #[test]
    fn profiled_vitals_lead_with_the_code_and_carry_the_unit_their_profile_fixes() {
        // The code and unit each R4 profile fixes.
        let expected = [
            (Vital::HeartRate, Profile::HeartRate, "8867-4", "/min"),
            (Vital::PulseRate, Profile::HeartRate, "8867-4", "/min"),
            (Vital::Spo2, Profile::OxygenSat, "2708-6", "%"),
            (Vital::RespiratoryRate, Profile::RespRate, "9279-1", "/min"),
            (Vital::BodyTemperature, Profile::BodyTemp, "8310-5", "Cel"),
        ];
        for (v, profile, loinc, unit) in expected {
            let c = code(v);
            assert_eq!(c.profile, Some(profile), "{v}");
            assert_eq!(c.codes[0], loinc, "{v}");
            assert_eq!(v.ucum(), unit, "{v}");
        }
        assert_eq!(code(Vital::Spo2).codes, ["2708-6", "59408-5"]);
        assert_eq!(code(Vital::PulseRate).codes, ["8867-4", "8889-8"]);
    }

    #[test]
    fn blood_pressure_is_a_panel_of_systolic_and_diastolic_in_mm_hg() {
        assert_eq!(BP_PANEL.codes, ["85354-9"]);
        assert_eq!(BP_PANEL.profile, Some(Profile::BloodPressure));
        assert_eq!(code(Vital::SystolicBp).codes, ["8480-6"]);
        assert_eq!(code(Vital::DiastolicBp).codes, ["8462-4"]);
        for v in [Vital::SystolicBp, Vital::DiastolicBp] {
            assert!(in_bp_panel(v));
            assert_eq!(v.ucum(), "mm[Hg]");
        }
        let in_panel = Vital::ALL.into_iter().filter(|v| in_bp_panel(*v)).count();
        assert_eq!(in_panel, 2);
    }

    #[test]
    fn vitals_no_core_profile_covers_claim_none() {
        for v in [
            Vital::MeanArterialPressure,
            Vital::PerfusionIndex,
            Vital::RrInterval,
            Vital::SystolicBp,
            Vital::DiastolicBp,
        ] {
            assert_eq!(code(v).profile, None, "{v}");
            assert_eq!(code(v).codes, [v.loinc()], "{v}");
        }
        assert_eq!(Vital::MeanArterialPressure.ucum(), "mm[Hg]");
        assert_eq!(Vital::PerfusionIndex.ucum(), "%");
        assert_eq!(Vital::RrInterval.ucum(), "ms");
    }
}
