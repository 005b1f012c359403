//! Vectorisable f64 helpers for `O(d)` source terms: sine and cosine of whole slices, and sums
//! with independent accumulators.
//!
//! The exact source terms of the ball problems cost `O(d)` transcendental calls per point, so at
//! `d = 10⁶` they dominate a training step when each goes through libm one at a time. Here the
//! argument is reduced by `k·π/2` in three parts (Cody–Waite, the constants of fdlibm) and `sin`,
//! `cos` of the remainder come from fdlibm's kernel polynomials; the quadrant is chosen with
//! selects rather than branches. Error: a few ulp for `|x| ≤ 2¹⁹`; larger arguments are recomputed
//! with `f64::sin_cos` in a separate pass.

use std::f64::consts::FRAC_2_PI;

/// Arguments above this go through `f64::sin_cos` (the reduction's `k·PIO2_1` stays exact below).
const FAST_LIMIT: f64 = 524_288.0;
/// `π/2` split into three parts of 33 bits each (fdlibm `pio2_1`, `pio2_2`, `pio2_3`).
const PIO2_1: f64 = 1.570_796_326_734_125_6;
const PIO2_2: f64 = 6.077_100_506_303_966e-11;
const PIO2_3: f64 = 2.022_266_248_711_166_5e-21;
/// Adding and subtracting 1.5·2⁵² rounds to the nearest integer.
const ROUND: f64 = 6_755_399_441_055_744.0;

const S1: f64 = -1.666_666_666_666_663_2e-1;
const S2: f64 = 8.333_333_333_322_49e-3;
const S3: f64 = -1.984_126_982_985_795e-4;
const S4: f64 = 2.755_731_370_707_006_8e-6;
const S5: f64 = -2.505_076_025_340_686_3e-8;
const S6: f64 = 1.589_690_995_211_55e-10;
const C1: f64 = 4.166_666_666_666_66e-2;
const C2: f64 = -1.388_888_888_887_411e-3;
const C3: f64 = 2.480_158_728_947_673e-5;
const C4: f64 = -2.755_731_435_139_066_3e-7;
const C5: f64 = 2.087_572_321_298_175e-9;
const C6: f64 = -1.135_964_755_778_819_5e-11;

/// `a·b + c`: fused where the target has FMA (x86-64-v3, aarch64), else two roundings.
#[inline(always)]
fn fma(a: f64, b: f64, c: f64) -> f64 {
    #[cfg(target_feature = "fma")]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(target_feature = "fma"))]
    {
        a * b + c
    }
}

/// `(sin x, cos x)` without branches, for `|x| ≤ FAST_LIMIT`.
#[inline(always)]
fn sin_cos_reduced(x: f64) -> (f64, f64) {
    let k = fma(x, FRAC_2_PI, ROUND) - ROUND;
    let r = fma(-k, PIO2_3, fma(-k, PIO2_2, fma(-k, PIO2_1, x)));
    let z = r * r;
    let ps = fma(z, fma(z, fma(z, fma(z, fma(z, S6, S5), S4), S3), S2), S1);
    let s = fma(r * z, ps, r);
    let pc = fma(z, fma(z, fma(z, fma(z, fma(z, C6, C5), C4), C3), C2), C1);
    let hz = 0.5 * z;
    let w = 1.0 - hz;
    let c = w + fma(z * z, pc, (1.0 - w) - hz);
    // quadrant q = k mod 4, in floating point (exact for |k| < 2⁵²)
    let q = k - 4.0 * (k * 0.25).floor();
    let odd = q == 1.0 || q == 3.0;
    let (sin, cos) = if odd { (c, s) } else { (s, c) };
    let sin = if q >= 2.0 { -sin } else { sin };
    let cos = if q == 1.0 || q == 2.0 { -cos } else { cos };
    (sin, cos)
}

/// Whether `v` is outside the fast path's range (or NaN).
#[inline(always)]
fn needs_libm(v: f64) -> bool {
    v.is_nan() || v.abs() > FAST_LIMIT
}

/// Writes `sin x[i]` into `sin[i]` and `cos x[i]` into `cos[i]` for every `i`.
///
/// # Panics
/// If the three slices differ in length (a programming error).
pub fn sin_cos_slice(x: &[f64], sin: &mut [f64], cos: &mut [f64]) {
    crate::tensor::profile_count(crate::tensor::Work::SinCos, x.len());
    assert!(
        x.len() == sin.len() && x.len() == cos.len(),
        "sin_cos_slice: lengths differ"
    );
    for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        (*s, *c) = sin_cos_reduced(v);
    }
    if x.iter().any(|&v| needs_libm(v)) {
        for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
            if needs_libm(v) {
                (*s, *c) = v.sin_cos();
            }
        }
    }
}

/// The sum of a slice with four independent accumulators (vectorisable; the order differs from a
/// sequential sum only by rounding).
pub fn sum4(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for j in 0..4 {
            acc[j] += c[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `Σ v_i²` with four independent accumulators.
pub fn sum_squares4<T: crate::Real>(v: &[T]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|a| a.as_f64() * a.as_f64()).sum();
    for c in chunks {
        for j in 0..4 {
            let a = c[j].as_f64();
            acc[j] += a * a;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(xs: &[f64], tol: f64) {
        let (mut s, mut c) = (vec![0.0; xs.len()], vec![0.0; xs.len()]);
        sin_cos_slice(xs, &mut s, &mut c);
        for (i, &x) in xs.iter().enumerate() {
            let (ws, wc) = x.sin_cos();
            assert!((s[i] - ws).abs() <= tol, "sin({x}) = {} vs {ws}", s[i]);
            assert!((c[i] - wc).abs() <= tol, "cos({x}) = {} vs {wc}", c[i]);
        }
    }

    #[test]
    fn agrees_with_libm_on_small_arguments() {
        // every quadrant and its boundaries, densely on [−10, 10]
        let xs: Vec<f64> = (-200_000..=200_000).map(|i| i as f64 * 5e-5).collect();
        check(&xs, 4e-16);
        let bounds: Vec<f64> = (-8..=8)
            .flat_map(|k| {
                let b = k as f64 * std::f64::consts::FRAC_PI_4;
                [b, b.next_up(), b.next_down()]
            })
            .collect();
        check(&bounds, 4e-16);
    }

    #[test]
    fn agrees_with_libm_on_large_and_special_arguments() {
        let xs: Vec<f64> = (0..20_000).map(|i| (i as f64 * 37.123_456_7) - 300_000.0).collect();
        check(&xs, 2e-15);
        check(&[1e6, -3e7, 1e300, 0.0, -0.0, f64::MIN_POSITIVE], 1e-16);
        let (mut s, mut c) = (vec![0.0; 3], vec![0.0; 3]);
        sin_cos_slice(&[f64::NAN, f64::INFINITY, f64::NEG_INFINITY], &mut s, &mut c);
        assert!(s.iter().chain(&c).all(|v| v.is_nan()));
    }

    #[test]
    fn sum4_is_the_sum() {
        let v: Vec<f64> = (0..1003).map(|i| i as f64).collect();
        assert_eq!(sum4(&v), 1002.0 * 1003.0 / 2.0);
        assert_eq!(sum4(&[]), 0.0);
        assert_eq!(sum4(&[2.5]), 2.5);
        let w: Vec<f32> = (0..7).map(|i| i as f32).collect();
        assert_eq!(sum_squares4(&w), 91.0);
    }
}
