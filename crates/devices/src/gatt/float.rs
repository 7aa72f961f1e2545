//! IEEE 11073-20601 SFLOAT (16-bit) and FLOAT (32-bit): a signed
//! base-10 exponent and a signed mantissa, value = mantissa × 10^exponent.
//!
//! * SFLOAT: exponent in bits 15–12 (4-bit two's complement, −8 to 7),
//!   mantissa in bits 11–0 (12-bit two's complement, −2048 to 2047).
//! * FLOAT: exponent in bits 31–24 (8-bit two's complement), mantissa in
//!   bits 23–0 (24-bit two's complement).
//!
//! Both are sign-extended separately; an implementation that treats the
//! exponent as unsigned (or shifts the whole word) reads 0xF014 (2.0, one
//! decimal) as 20 × 10^15. The exponent is the precision: 0xF014 and
//! 0x0002 are both 2, "2.0" and "2"; [`Float11073::Value`] keeps both.
//!
//! Special values are the reserved mantissas **with exponent 0**
//! (ISO/IEEE 11073-20601, Annex F.8): NaN, NRes ("not at this
//! resolution"), +INFINITY, −INFINITY and one reserved for future use.
//! None of them is a reading; [`Float11073::value`] gives `None`.

use std::fmt;

/// A decoded SFLOAT or FLOAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Float11073 {
    /// mantissa × 10^exponent.
    Value {
        /// Signed mantissa.
        mantissa: i32,
        /// Signed base-10 exponent (the precision).
        exponent: i8,
    },
    /// Not a number (0x07FF / 0x007FFFFF).
    NaN,
    /// Not at this resolution (0x0800 / 0x00800000).
    NRes,
    /// +INFINITY (0x07FE / 0x007FFFFE).
    PositiveInfinity,
    /// −INFINITY (0x0802 / 0x00800002).
    NegativeInfinity,
    /// Reserved for future use (0x0801 / 0x00800001).
    Reserved,
}

impl Float11073 {
    /// Decode an SFLOAT.
    pub fn from_sfloat(raw: u16) -> Float11073 {
        let mantissa_bits = raw & 0x0FFF;
        let exponent = ((raw as i16) >> 12) as i8; // arithmetic shift: sign-extends
        if exponent == 0 {
            match mantissa_bits {
                0x07FF => return Float11073::NaN,
                0x0800 => return Float11073::NRes,
                0x07FE => return Float11073::PositiveInfinity,
                0x0802 => return Float11073::NegativeInfinity,
                0x0801 => return Float11073::Reserved,
                _ => {}
            }
        }
        // 12-bit two's complement: shift into the top of an i16 and back.
        let mantissa = i32::from(((mantissa_bits << 4) as i16) >> 4);
        Float11073::Value { mantissa, exponent }
    }

    /// Decode a FLOAT.
    pub fn from_float(raw: u32) -> Float11073 {
        let mantissa_bits = raw & 0x00FF_FFFF;
        let exponent = (raw >> 24) as u8 as i8;
        if exponent == 0 {
            match mantissa_bits {
                0x007F_FFFF => return Float11073::NaN,
                0x0080_0000 => return Float11073::NRes,
                0x007F_FFFE => return Float11073::PositiveInfinity,
                0x0080_0002 => return Float11073::NegativeInfinity,
                0x0080_0001 => return Float11073::Reserved,
                _ => {}
            }
        }
        // 24-bit two's complement.
        let mantissa = ((mantissa_bits << 8) as i32) >> 8;
        Float11073::Value { mantissa, exponent }
    }

    /// The number, or `None` for every special value.
    pub fn value(self) -> Option<f64> {
        match self {
            // Dividing for a negative exponent gives the nearest f64 (24 ×
            // 10^-1 would be 2.4000000000000004; 24 / 10 is 2.4).
            Float11073::Value { mantissa, exponent } if exponent < 0 => {
                Some(f64::from(mantissa) / pow10(-i32::from(exponent)))
            }
            Float11073::Value { mantissa, exponent } => {
                Some(f64::from(mantissa) * pow10(i32::from(exponent)))
            }
            _ => None,
        }
    }

    /// Encode as an SFLOAT; `None` when the mantissa or exponent does not
    /// fit (|mantissa| must stay clear of the special values' range:
    /// −2048 and 2046–2047 with exponent 0 are special, so a value encoder
    /// refuses them rather than write a special value by accident).
    pub fn to_sfloat(self) -> Option<u16> {
        let (m, e) = match self {
            Float11073::Value { mantissa, exponent } => (mantissa, exponent),
            Float11073::NaN => return Some(0x07FF),
            Float11073::NRes => return Some(0x0800),
            Float11073::PositiveInfinity => return Some(0x07FE),
            Float11073::NegativeInfinity => return Some(0x0802),
            Float11073::Reserved => return Some(0x0801),
        };
        if !(-8..=7).contains(&e) || !(-2048..=2047).contains(&m) {
            return None;
        }
        let raw = ((e as u16 & 0x0F) << 12) | (m as u16 & 0x0FFF);
        // A value that would read back as a special value is not this value.
        (Float11073::from_sfloat(raw) == self).then_some(raw)
    }

    /// Encode as a FLOAT; `None` when it does not fit (as
    /// [`Float11073::to_sfloat`]).
    pub fn to_float(self) -> Option<u32> {
        let (m, e) = match self {
            Float11073::Value { mantissa, exponent } => (mantissa, exponent),
            Float11073::NaN => return Some(0x007F_FFFF),
            Float11073::NRes => return Some(0x0080_0000),
            Float11073::PositiveInfinity => return Some(0x007F_FFFE),
            Float11073::NegativeInfinity => return Some(0x0080_0002),
            Float11073::Reserved => return Some(0x0080_0001),
        };
        if !(-8_388_608..=8_388_607).contains(&m) {
            return None;
        }
        let raw = (u32::from(e as u8) << 24) | (m as u32 & 0x00FF_FFFF);
        (Float11073::from_float(raw) == self).then_some(raw)
    }

    /// `value` with `decimals` digits after the point (exponent
    /// −`decimals`), rounded; `None` when the mantissa does not fit even a
    /// FLOAT (the encoder checks the narrower SFLOAT).
    pub fn with_decimals(value: f64, decimals: u8) -> Option<Float11073> {
        let scaled = (value * 10f64.powi(i32::from(decimals))).round();
        if !scaled.is_finite() || scaled.abs() > 8_388_607.0 {
            return None;
        }
        Some(Float11073::Value {
            mantissa: scaled as i32,
            exponent: -(decimals as i8),
        })
    }
}

/// 10^0 to 10^22: the powers of ten an `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `10f64.powi(n)` for `n` ≥ 0, looked up for every exponent a reading
/// uses (`powi` is a library call; up to 10^22 it multiplies exact powers
/// of ten, so the table gives the same bits).
fn pow10(n: i32) -> f64 {
    match usize::try_from(n)
        .ok()
        .and_then(|i| EXACT_POWERS_OF_TEN.get(i))
    {
        Some(&p) => p,
        None => 10f64.powi(n),
    }
}

impl fmt::Display for Float11073 {
    /// The number with exactly the precision the exponent gives ("2.0").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Float11073::Value { mantissa, exponent } if exponent < 0 => {
                let digits = usize::from(exponent.unsigned_abs());
                let scaled = f64::from(mantissa) * 10f64.powi(i32::from(exponent));
                write!(f, "{scaled:.digits$}")
            }
            Float11073::Value { mantissa, exponent } => {
                write!(
                    f,
                    "{}",
                    i64::from(mantissa) * 10i64.pow(u32::from(exponent as u8))
                )
            }
            Float11073::NaN => f.write_str("NaN"),
            Float11073::NRes => f.write_str("NRes"),
            Float11073::PositiveInfinity => f.write_str("+INFINITY"),
            Float11073::NegativeInfinity => f.write_str("-INFINITY"),
            Float11073::Reserved => f.write_str("reserved"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(mantissa: i32, exponent: i8) -> Float11073 {
        Float11073::Value { mantissa, exponent }
    }

    /// The worked examples of the HL7 Personal Health Device
    /// Implementation Guide ("Mder FLOATs and SFLOATs"), which follow
    /// IEEE 11073-20601 Annex F.8.
    #[test]
    fn sfloats_and_floats_decode_as_the_standards_worked_examples_say() {
        for (raw, want, text) in [
            (0x0002u16, v(2, 0), "2"),
            (0xF014, v(20, -1), "2.0"),
            (0xE0C8, v(200, -2), "2.00"),
            (0x1002, v(2, 1), "20"),
            (0x2002, v(2, 2), "200"),
            (0x00C8, v(200, 0), "200"),
            (0x04D2, v(1234, 0), "1234"),
            (0x0B2E, v(-1234, 0), "-1234"),
        ] {
            let got = Float11073::from_sfloat(raw);
            assert_eq!(got, want, "{raw:#06x}");
            assert_eq!(got.to_string(), text);
            assert_eq!(got.to_sfloat(), Some(raw));
        }
        for (raw, want) in [
            (0x0000_0002u32, v(2, 0)),
            (0xFF00_0014, v(20, -1)),
            (0xFE00_00C8, v(200, -2)),
            (0x0100_0002, v(2, 1)),
            (0x0200_0002, v(2, 2)),
            (0x0000_04D2, v(1234, 0)),
            (0x00FF_FB2E, v(-1234, 0)),
        ] {
            assert_eq!(Float11073::from_float(raw), want, "{raw:#010x}");
            assert_eq!(want.to_float(), Some(raw));
        }
        // 36.4 °C as thermometers send it: 364 × 10^-1.
        assert_eq!(Float11073::from_float(0xFF00_016C).value(), Some(36.4));
    }

    #[test]
    fn special_values_are_no_reading_and_only_with_exponent_zero() {
        for (raw, want) in [
            (0x07FFu16, Float11073::NaN),
            (0x0800, Float11073::NRes),
            (0x07FE, Float11073::PositiveInfinity),
            (0x0802, Float11073::NegativeInfinity),
            (0x0801, Float11073::Reserved),
        ] {
            assert_eq!(Float11073::from_sfloat(raw), want);
            assert_eq!(want.value(), None);
            assert_eq!(want.to_sfloat(), Some(raw));
        }
        for (raw, want) in [
            (0x007F_FFFFu32, Float11073::NaN),
            (0x0080_0000, Float11073::NRes),
            (0x007F_FFFE, Float11073::PositiveInfinity),
            (0x0080_0002, Float11073::NegativeInfinity),
            (0x0080_0001, Float11073::Reserved),
        ] {
            assert_eq!(Float11073::from_float(raw), want);
            assert_eq!(want.to_float(), Some(raw));
        }
        // The same mantissas with another exponent are numbers.
        assert_eq!(Float11073::from_sfloat(0x17FF), v(2047, 1));
        assert_eq!(Float11073::from_sfloat(0xF800), v(-2048, -1));
        assert_eq!(Float11073::from_float(0xFF7F_FFFF), v(8_388_607, -1));
    }

    #[test]
    fn the_exponent_and_the_mantissa_are_each_twos_complement() {
        assert_eq!(Float11073::from_sfloat(0x8001), v(1, -8));
        assert_eq!(Float11073::from_sfloat(0x77FD), v(2045, 7));
        assert_eq!(Float11073::from_sfloat(0x7FFD), v(-3, 7));
        assert_eq!(Float11073::from_sfloat(0x0FFF), v(-1, 0));
        assert_eq!(Float11073::from_float(0x80FF_FFFF), v(-1, -128));
        assert_eq!(Float11073::from_float(0x7F00_0001), v(1, 127));
        assert_eq!(Float11073::from_sfloat(0xFFFF).value(), Some(-0.1));
        assert_eq!(Float11073::from_sfloat(0xF018).value(), Some(2.4), "exact");
    }

    #[test]
    fn values_are_the_same_as_with_powi_for_every_exponent() {
        for n in 0..=128 {
            let n = std::hint::black_box(n);
            assert_eq!(pow10(n).to_bits(), 10f64.powi(n).to_bits(), "10^{n}");
        }
        let powi = |f: Float11073| match f {
            Float11073::Value { mantissa, exponent } if exponent < 0 => {
                Some(f64::from(mantissa) / 10f64.powi(-i32::from(exponent)))
            }
            Float11073::Value { mantissa, exponent } => {
                Some(f64::from(mantissa) * 10f64.powi(i32::from(exponent)))
            }
            _ => None,
        };
        let same = |f: Float11073| {
            assert_eq!(
                f.value().map(f64::to_bits),
                powi(f).map(f64::to_bits),
                "{f:?}"
            );
        };
        for raw in 0..=u16::MAX {
            same(Float11073::from_sfloat(raw));
        }
        for exponent in 0..=255u32 {
            for mantissa in [0, 1, 7, 364, 3725, 8_388_607, 0x80_0003, 0xFF_FFFF] {
                same(Float11073::from_float((exponent << 24) | mantissa));
            }
        }
    }

    #[test]
    fn every_sfloat_round_trips_and_values_that_would_read_as_special_are_refused() {
        for raw in 0..=u16::MAX {
            let f = Float11073::from_sfloat(raw);
            assert_eq!(f.to_sfloat(), Some(raw), "{raw:#06x}");
        }
        assert_eq!(v(2047, 0).to_sfloat(), None, "0x07FF is NaN");
        assert_eq!(v(-2048, 0).to_sfloat(), None, "0x0800 is NRes");
        assert_eq!(v(2048, 0).to_sfloat(), None, "too large");
        assert_eq!(v(1, 8).to_sfloat(), None, "exponent too large");
        assert_eq!(Float11073::with_decimals(36.45, 2), Some(v(3645, -2)));
    }
}
