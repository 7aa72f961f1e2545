//! Random draws and the seeding scheme shared by patients, scenarios and
//! devices.
//!
//! Every random component of a simulation gets its own ChaCha8 stream,
//! derived from the spec's seed and the component's *role and id* (not its
//! position in the spec). So a patient's physiology depends only on the
//! seed, its id and its scenario: adding a device or another patient does
//! not change it, and ChaCha8 gives the same numbers on every platform.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The stream for component `id` playing `role` under `seed`.
pub(crate) fn stream(seed: u64, role: &str, id: &str) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(fnv1a(role, id));
    rng
}

/// FNV-1a over `role`, a separator and `id`: stable across Rust versions,
/// unlike `std`'s `DefaultHasher`.
fn fnv1a(role: &str, id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in role.bytes().chain([0u8]).chain(id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// A standard normal draw.
pub(crate) fn gauss<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    StandardNormal.sample(rng)
}

/// A uniform draw in `[lo, hi)`.
pub(crate) fn uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.random::<f64>()
}

/// A log-uniform draw in `[lo, hi)` (both positive): short episodes are
/// more common than long ones, as with sensor slips and radio dropouts.
pub(crate) fn log_uniform<R: Rng + ?Sized>(rng: &mut R, lo: f64, hi: f64) -> f64 {
    uniform(rng, lo.ln(), hi.ln()).exp()
}

/// A normal draw clamped to `[lo, hi]`, for population distributions
/// whose tails a home-monitoring cohort would not contain.
pub(crate) fn clamped_normal<R: Rng + ?Sized>(
    rng: &mut R,
    mean: f64,
    sd: f64,
    lo: f64,
    hi: f64,
) -> f64 {
    (mean + sd * gauss(rng)).clamp(lo, hi)
}

/// A uniform draw of milliseconds in `[lo, hi)`.
pub(crate) fn uniform_ms<R: Rng + ?Sized>(rng: &mut R, lo: i64, hi: i64) -> i64 {
    uniform(rng, lo as f64, hi as f64).round() as i64
}

/// One exact step of an Ornstein–Uhlenbeck process (mean 0, stationary
/// standard deviation `sd`, time constant `tau_ms`) over `dt_ms`, given a
/// standard normal `z`. Exact for any step, so a coarse test step has the
/// same statistics as the 1 s simulation step.
pub(crate) fn ou(x: f64, dt_ms: f64, tau_ms: f64, sd: f64, z: f64) -> f64 {
    let a = (-dt_ms / tau_ms).exp();
    x * a + sd * (1.0 - a * a).max(0.0).sqrt() * z
}

/// First-order relaxation of `x` toward `target` over `dt_ms`.
pub(crate) fn relax(x: f64, target: f64, dt_ms: f64, tau_ms: f64) -> f64 {
    target + (x - target) * (-dt_ms / tau_ms).exp()
}

/// Smooth 0→1 ramp (zero slope at both ends), for onsets and recoveries.
pub(crate) fn smoothstep(x: f64) -> f64 {
    let x = x.clamp(0.0, 1.0);
    x * x * (3.0 - 2.0 * x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn streams_differ_by_role_and_id_and_repeat_for_the_same_ones() {
        let a = stream(7, "patient", "p-1").next_u64();
        assert_eq!(a, stream(7, "patient", "p-1").next_u64());
        assert_ne!(a, stream(7, "patient", "p-2").next_u64());
        assert_ne!(a, stream(7, "device", "p-1").next_u64());
        assert_ne!(a, stream(8, "patient", "p-1").next_u64());
    }

    #[test]
    fn an_ou_process_keeps_its_stationary_spread_at_any_step() {
        for dt in [1_000.0, 60_000.0] {
            let mut rng = stream(1, "t", "ou");
            let (mut x, mut sum2, n) = (0.0, 0.0, 20_000);
            for _ in 0..n {
                x = ou(x, dt, 600_000.0, 2.0, gauss(&mut rng));
                sum2 += x * x;
            }
            let sd = (sum2 / f64::from(n)).sqrt();
            assert!((1.5..2.5).contains(&sd), "dt {dt}: sd {sd}");
        }
    }
}
