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

/// `sin x[i]`, `cos x[i]` in f32 lanes (twice the lanes of [`sin_cos_slice`]): reduction by
/// `k·π/2` in three parts (the first with 8 significant bits, so `k·PIO2_1` is exact for
/// `|k| < 2¹⁶`), then Cephes' `sinf`/`cosf` polynomials on `|r| ≤ π/4`; about 1e-7 absolute
/// error (tested against f64). Arguments with `|x| > 2¹⁰` or NaN are recomputed in f64.
pub fn sin_cos_slice_f32(x: &[f32], sin: &mut [f32], cos: &mut [f32]) {
    crate::tensor::profile_count(crate::tensor::Work::SinCos, x.len());
    assert!(
        x.len() == sin.len() && x.len() == cos.len(),
        "sin_cos_slice_f32: lengths differ"
    );
    const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_513e-4;
    const P3: f32 = 7.549_79e-8;
    const ROUND32: f32 = 12_582_912.0; // 1.5·2²³
    for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        let k = (v * TWO_OVER_PI + ROUND32) - ROUND32;
        let r = ((v - k * P1) - k * P2) - k * P3;
        let z = r * r;
        let sr = r + r * z * (-1.666_665_5e-1 + z * (8.332_161e-3 + z * -1.951_529_6e-4));
        let cr = 1.0 - 0.5 * z + z * z * (4.166_664_6e-2 + z * (-1.388_731_6e-3 + z * 2.443_315_7e-5));
        let q = k - 4.0 * (k * 0.25).floor();
        let odd = q == 1.0 || q == 3.0;
        let (sv, cv) = if odd { (cr, sr) } else { (sr, cr) };
        *s = if q >= 2.0 { -sv } else { sv };
        *c = if q == 1.0 || q == 2.0 { -cv } else { cv };
    }
    if x.iter().any(|&v| v.is_nan() || v.abs() > 1024.0) {
        for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
            if v.is_nan() || v.abs() > 1024.0 {
                let (a, b) = (v as f64).sin_cos();
                (*s, *c) = (a as f32, b as f32);
            }
        }
    }
}

/// The sum of an f32 slice with eight independent f32 accumulators, returned in f64 (for chunks
/// of a few hundred terms: the rounding stays near f32's).
pub fn sum8_f32(v: &[f32]) -> f64 {
    let mut acc = [0.0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&a| a as f64).sum();
    for c in chunks {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail
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

    #[test]
    fn f32_sin_cos_is_within_2e7_of_f64() {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-5).collect();
        xs.extend([0.0, -0.0, 1e-30, 100.0, -300.5, 1023.9, 1025.0, -5000.0, 1e6]);
        for k in -64..=64 {
            let b = k as f32 * std::f32::consts::FRAC_PI_4;
            xs.extend([
                b,
                f32::from_bits(b.to_bits() + 1),
                f32::from_bits(b.to_bits().saturating_sub(1)),
            ]);
        }
        let (mut s, mut c) = (vec![0.0f32; xs.len()], vec![0.0f32; xs.len()]);
        sin_cos_slice_f32(&xs, &mut s, &mut c);
        for (i, &x) in xs.iter().enumerate() {
            let (ws, wc) = (x as f64).sin_cos();
            assert!((s[i] as f64 - ws).abs() <= 2e-7, "sin({x}) = {} vs {ws}", s[i]);
            assert!((c[i] as f64 - wc).abs() <= 2e-7, "cos({x}) = {} vs {wc}", c[i]);
        }
        let (mut s, mut c) = ([0.0f32; 1], [0.0f32; 1]);
        sin_cos_slice_f32(&[f32::NAN], &mut s, &mut c);
        assert!(s[0].is_nan() && c[0].is_nan());
        let v: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5).collect();
        assert_eq!(sum8_f32(&v), 250_250.0);
    }

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
