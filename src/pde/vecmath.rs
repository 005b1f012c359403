//! Vectorisable sine and cosine for `O(d)` source terms (f64 and f32 lanes; the lane dispatch
//! and lane sums they use are in [`crate::lanes`]).
//!
//! The exact source terms of the ball problems cost `O(d)` transcendental calls per point, so at
//! `d = 10⁶` they dominate a training step when each goes through libm one at a time. Here the
//! argument is reduced by `k·π/2` in three parts (Cody–Waite, the constants of fdlibm) and `sin`,
//! `cos` of the remainder come from fdlibm's kernel polynomials; the quadrant is chosen with
//! selects rather than branches. Error: a few ulp for `|x| ≤ 2¹⁹`; larger arguments are recomputed
//! with `f64::sin_cos` in a separate pass.

use crate::lanes::widest_fn;
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
/// error (tested against f64). The quadrant is read from the integer bits of the rounded `k` and
/// applied by swapping and sign-bit flips (no branches, no float compares). Arguments with
/// `|x| > 2¹⁰` or NaN are recomputed in f64. A slice whose arguments all lie within
/// [`SMALL_F32`] (coordinates of points at large d) takes [`sin_cos_small_f32`]. Inlined, so that inside a [`crate::widest_fn!`] function it
/// runs in the widest vector registers the CPU has ([`sin_cos_slice_f32_widest`]).
#[inline(always)]
pub fn sin_cos_slice_f32(x: &[f32], sin: &mut [f32], cos: &mut [f32]) {
    let work = if sin_cos_chunk_f32(x, sin, cos) {
        crate::tensor::Work::SinCosSmall
    } else {
        crate::tensor::Work::SinCos
    };
    crate::tensor::profile_count(work, x.len());
}

/// [`sin_cos_slice_f32`] without the profile count (for callers that count once for many
/// chunks); returns whether the slice took the small-argument polynomials.
#[inline(always)]
pub fn sin_cos_chunk_f32(x: &[f32], sin: &mut [f32], cos: &mut [f32]) -> bool {
    assert!(
        x.len() == sin.len() && x.len() == cos.len(),
        "sin_cos_slice_f32: lengths differ"
    );
    // a flag and-ed over the lanes, not a running `f32::max` (whose NaN rule kept it a serial
    // chain of scalar maxima: a quarter of the two-body source's time); a NaN takes the general
    // path
    if x.iter().fold(true, |all, v| all & (v.abs() <= SMALL_F32)) {
        // all arguments small (coordinates of points at large d): short Taylor polynomials
        for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
            (*s, *c) = sin_cos_small_f32(v);
        }
        return true;
    }
    if sin_cos_lanes_f32(x, sin, cos) {
        for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
            if outside_f32_range(v) {
                let (a, b) = (v as f64).sin_cos();
                (*s, *c) = (a as f32, b as f32);
            }
        }
    }
    false
}

/// Whether the f32 kernel's reduction is not exact for `v` (`|v| > 2¹⁰`, or NaN).
#[inline(always)]
fn outside_f32_range(v: f32) -> bool {
    v.is_nan() || v.abs() > 1024.0
}

/// The lanes of [`sin_cos_slice_f32`] without the fix-up pass and the profile count; returns
/// whether some argument needs the fix-up (`|x| > 2¹⁰` or NaN: those results are wrong).
#[inline(always)]
pub fn sin_cos_lanes_f32(x: &[f32], sin: &mut [f32], cos: &mut [f32]) -> bool {
    let mut slow = false;
    for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        (*s, *c) = sin_cos_f32(v);
        slow |= outside_f32_range(v);
    }
    slow
}

/// Minimax coefficients of `sin r = r + r³(s₁ + s₂r² + s₃r⁴)` for `|r| ≤ π/4` (Cephes), shared
/// by [`sin_cos_f32`] and [`sin_cos_quarter_f32`].
const SIN_REDUCED: [f32; 3] = [-1.666_665_5e-1, 8.332_161e-3, -1.951_529_6e-4];
/// The same for `cos r = 1 − r²/2 + r⁴(c₁ + c₂r² + c₃r⁴)`.
const COS_REDUCED: [f32; 3] = [4.166_664_6e-2, -1.388_731_6e-3, 2.443_315_7e-5];

/// One `(sin v, cos v)` of the f32 kernel ([`sin_cos_slice_f32`]), branch-free so that a loop of
/// them vectorises; wrong where [`f32_kernel_exact`] is false.
#[inline(always)]
pub fn sin_cos_f32(v: f32) -> (f32, f32) {
    const TWO_OVER_PI: f32 = std::f32::consts::FRAC_2_PI;
    const P1: f32 = 1.570_312_5;
    const P2: f32 = 4.837_513e-4;
    const P3: f32 = 7.549_79e-8;
    const ROUND32: f32 = 12_582_912.0; // 1.5·2²³: k lands in the low mantissa bits
    let kr = v * TWO_OVER_PI + ROUND32;
    // the low bits of kr's mantissa are k mod 2²² (two's complement), so q = k mod 4
    let q = kr.to_bits();
    let k = kr - ROUND32;
    let r = ((v - k * P1) - k * P2) - k * P3;
    let z = r * r;
    let [s1, s2, s3] = SIN_REDUCED;
    let [c1, c2, c3] = COS_REDUCED;
    let sr = r + r * z * (s1 + z * (s2 + z * s3));
    let cr = 1.0 - 0.5 * z + z * z * (c1 + z * (c2 + z * c3));
    let (sv, cv) = if q & 1 != 0 { (cr, sr) } else { (sr, cr) };
    // sin is negative in quadrants 2, 3; cos in quadrants 1, 2
    (
        f32::from_bits(sv.to_bits() ^ ((q & 2) << 30)),
        f32::from_bits(cv.to_bits() ^ ((q.wrapping_add(1) & 2) << 30)),
    )
}

/// `(sin z, cos z)` for `z` near 1 (`|z − 1| ≤` [`NEAR_ONE_F32`]) without range reduction: the
/// Taylor polynomials of `w = z − 1` (degree 7 and 8: truncation below 3e-10 there) rotated
/// from `(sin 1, cos 1)`; about half the operations of [`sin_cos_f32`]. The two-body source's
/// `z = x_i + cos x_{i+1} + x_{i+1} cos x_i` lies there whenever its coordinates are small.
#[inline(always)]
pub fn sin_cos_near_one_f32(z: f32) -> (f32, f32) {
    const S1: f32 = 0.841_470_96;
    const C1: f32 = 0.540_302_3;
    let w = z - 1.0;
    let w2 = w * w;
    let sw = w
        * (-1.0f32 / 5040.0)
            .mul_add(w2, 1.0 / 120.0)
            .mul_add(w2, -1.0 / 6.0)
            .mul_add(w2, 1.0);
    let cw = (1.0f32 / 40320.0)
        .mul_add(w2, -1.0 / 720.0)
        .mul_add(w2, 1.0 / 24.0)
        .mul_add(w2, -0.5)
        .mul_add(w2, 1.0);
    (S1.mul_add(cw, C1 * sw), C1.mul_add(cw, -(S1 * sw)))
}

/// Within this distance of 1, [`sin_cos_near_one_f32`] is as accurate as the full kernel.
pub const NEAR_ONE_F32: f32 = 0.3;

/// [`sin_cos_near_one_f32`] over a slice (for the rate measurement of `stde bench step`).
#[inline(always)]
pub fn sin_cos_near_one_slice_f32(x: &[f32], sin: &mut [f32], cos: &mut [f32]) {
    for ((&v, s), c) in x.iter().zip(sin.iter_mut()).zip(cos.iter_mut()) {
        (*s, *c) = sin_cos_near_one_f32(v);
    }
}

/// Below this `|x|` [`sin_cos_small_f32`] is as accurate as the full kernel.
pub const SMALL_F32: f32 = 0.125;

/// `(sin v, cos v)` for `|v| ≤` [`SMALL_F32`]: `v − v³/6 + v⁵/120` and `1 − v²/2 + v⁴/24`
/// (truncation below 1e-10 and 6e-9), no reduction.
#[inline(always)]
pub fn sin_cos_small_f32(v: f32) -> (f32, f32) {
    let z = v * v;
    (
        v + v * z * (-1.0 / 6.0 + z * (1.0 / 120.0)),
        1.0 - 0.5 * z + z * z * (1.0 / 24.0),
    )
}

/// Whether [`sin_cos_f32`] is accurate at `v` (`|v| ≤ 2¹⁰`, not NaN).
#[inline(always)]
pub fn f32_kernel_exact(v: f32) -> bool {
    !outside_f32_range(v)
}

/// `ln u` in f32 lanes for normal positive `u` (the sampler's `u ∈ [2⁻²⁴, 1]`), without a
/// division: `u = 2ᵉ·m` with `m ∈ [√½, √2)`, `f = m − 1`, `ln(1 + f) = f − f²/2 + f³·P(f)`
/// with Cephes' degree-8 minimax `P` for that interval, and `e·ln 2` added in two parts (`ln 2`
/// split so that `e·` the high part is exact). About 1e-7 relative error (tested against f64
/// over the whole range). The division of the `atanh` form it replaced was the normal
/// generator's slowest instruction (issue #10, eleventh pass).
#[inline(always)]
pub fn ln_f32(u: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4; // = 0.693359375, nine bits: e·LN2_HI is exact
    const LN2_LO: f32 = -2.121_944_4e-4;
    let bits = u.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    m = if big { 0.5 * m } else { m };
    e += big as i32;
    let f = m - 1.0;
    let f2 = f * f;
    let p = 7.037_683_6e-2f32
        .mul_add(f, -1.151_461e-1)
        .mul_add(f, 1.167_699_9e-1)
        .mul_add(f, -1.242_014_1e-1)
        .mul_add(f, 1.424_932_3e-1)
        .mul_add(f, -1.666_805_8e-1)
        .mul_add(f, 2.000_071_5e-1)
        .mul_add(f, -2.499_999_4e-1)
        .mul_add(f, 3.333_333e-1);
    let ef = e as f32;
    let y = (f2 * f).mul_add(p, ef * LN2_LO);
    let y = (-0.5f32).mul_add(f2, y);
    ef.mul_add(LN2_HI, f + y)
}

/// `(sin θ, cos θ)` for `|θ| ≤ π/4` (no range reduction): the minimax polynomials of
/// [`sin_cos_f32`]'s reduced argument, evaluated with fused multiply-adds; about 1e-7 absolute
/// error (tested against f64). The normal generator's angle is drawn in this range directly.
#[inline(always)]
pub fn sin_cos_quarter_f32(t: f32) -> (f32, f32) {
    let ([s1, s2, s3], [c1, c2, c3]) = (SIN_REDUCED, COS_REDUCED);
    let z = t * t;
    let s = s3.mul_add(z, s2).mul_add(z, s1);
    let sin = (t * z).mul_add(s, t);
    let c = c3.mul_add(z, c2).mul_add(z, c1);
    let cos = (z * z).mul_add(c, (-0.5f32).mul_add(z, 1.0));
    (sin, cos)
}

widest_fn! {
    /// [`sin_cos_slice_f32`] in the widest vector registers this CPU has.
    pub fn sin_cos_slice_f32_widest(x: &[f32], sin: &mut [f32], cos: &mut [f32]) -> () = sin_cos_slice_f32
}

widest_fn! {
    /// [`sin_cos_near_one_slice_f32`] in the widest vector registers this CPU has.
    pub fn sin_cos_near_one_slice_f32_widest(x: &[f32], sin: &mut [f32], cos: &mut [f32]) -> () = sin_cos_near_one_slice_f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lanes::*;

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
        // slices of small arguments take the short polynomials: same tolerance, up to the edge
        let small: Vec<f32> = (-10_000..=10_000).map(|i| i as f32 * (SMALL_F32 / 10_000.0)).collect();
        let (mut s, mut c) = (vec![0.0f32; small.len()], vec![0.0f32; small.len()]);
        sin_cos_slice_f32(&small, &mut s, &mut c);
        for (i, &x) in small.iter().enumerate() {
            let (ws, wc) = (x as f64).sin_cos();
            assert!(
                (s[i] as f64 - ws).abs() <= 2e-7 * ws.abs().max(1e-3),
                "sin({x}) = {} vs {ws}",
                s[i]
            );
            assert!((c[i] as f64 - wc).abs() <= 1.2e-7, "cos({x}) = {} vs {wc}", c[i]);
        }
        let (mut s, mut c) = ([0.0f32; 1], [0.0f32; 1]);
        sin_cos_slice_f32(&[f32::NAN], &mut s, &mut c);
        assert!(s[0].is_nan() && c[0].is_nan());
        // a NaN among small arguments: NaN there, the others still right
        let mut mixed = vec![0.01f32; 40];
        mixed[17] = f32::NAN;
        let (mut s, mut c) = (vec![0.0f32; 40], vec![0.0f32; 40]);
        assert!(!sin_cos_chunk_f32(&mixed, &mut s, &mut c), "NaN took the small path");
        assert!(s[17].is_nan() && c[17].is_nan());
        assert!((s[0] as f64 - 0.01f64.sin()).abs() < 1e-9 && (c[39] as f64 - 0.01f64.cos()).abs() < 1e-7);
        mixed[17] = -SMALL_F32;
        assert!(sin_cos_chunk_f32(&mixed, &mut s, &mut c), "all small, edge included");
        mixed[17] = f32::from_bits(SMALL_F32.to_bits() + 1);
        assert!(!sin_cos_chunk_f32(&mixed, &mut s, &mut c), "just past the edge");
        let v: Vec<f32> = (0..1001).map(|i| i as f32 * 0.5).collect();
        assert_eq!(sum32_f32(&v), 250_250.0);
        assert_eq!(sum32_f32(&v[..31]), 232.5);
    }

    /// [`sin_cos_quarter_f32`] on a fine grid of `[−π/4, π/4]` (and its ends) within 1.5e-7 of
    /// f64.
    #[test]
    fn f32_sin_cos_quarter_is_within_1_5e7_of_f64() {
        let q = std::f32::consts::FRAC_PI_4;
        let n = 200_000;
        for k in 0..=n {
            let t = -q + 2.0 * q * k as f32 / n as f32;
            let (s, c) = sin_cos_quarter_f32(t);
            let (ws, wc) = (t as f64).sin_cos();
            assert!(
                (s as f64 - ws).abs() <= 1.5e-7 && (c as f64 - wc).abs() <= 1.5e-7,
                "θ = {t}: ({s}, {c}) vs ({ws}, {wc})"
            );
        }
    }

    /// The kernel near 1 over its whole range `[1 − 0.3, 1 + 0.3]` (edges included): within
    /// 2e-7 of f64 like the general kernel (measured 1.03e-7), and its slice function (the
    /// rate measurement's) the same values.
    #[test]
    fn f32_sin_cos_near_one_is_within_2e7_of_f64() {
        let xs: Vec<f32> = (-30_000..=30_000)
            .map(|i| 1.0 + i as f32 * (NEAR_ONE_F32 / 30_000.0))
            .collect();
        let (mut s, mut c) = (vec![0.0f32; xs.len()], vec![0.0f32; xs.len()]);
        sin_cos_near_one_slice_f32_widest(&xs, &mut s, &mut c);
        let mut worst = 0.0f64;
        for (i, &x) in xs.iter().enumerate() {
            let (ws, wc) = (x as f64).sin_cos();
            assert_eq!((s[i], c[i]), sin_cos_near_one_f32(x), "slice vs kernel at {x}");
            worst = worst.max((s[i] as f64 - ws).abs()).max((c[i] as f64 - wc).abs());
        }
        assert!(worst <= 2e-7, "worst error {worst}");
    }

    /// The AVX-512 build of the f32 kernels (where this CPU has it) gives the same bits as the
    /// x86-64-v3 build: same operations in the same order, only wider registers.
    #[test]
    fn the_widest_build_gives_the_same_bits() {
        let xs: Vec<f32> = (0..10_007)
            .map(|i| (i as f32 * 0.731).sin() * 40.0 + (i % 13) as f32)
            .collect();
        let (mut s1, mut c1) = (vec![0.0f32; xs.len()], vec![0.0f32; xs.len()]);
        let (mut s2, mut c2) = (s1.clone(), c1.clone());
        sin_cos_slice_f32(&xs, &mut s1, &mut c1);
        sin_cos_slice_f32_widest(&xs, &mut s2, &mut c2);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&s1), bits(&s2));
        assert_eq!(bits(&c1), bits(&c2));
        widest_fn! { fn sum_widest(v: &[f32]) -> f64 = sum32_f32 }
        assert_eq!(sum32_f32(&xs).to_bits(), sum_widest(&xs).to_bits());
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
        assert_eq!(sum_squares(&w), 91.0);
        // across several chunks, against f64
        let u: Vec<f32> = (0..1000).map(|i| (i as f32 * 0.37).sin()).collect();
        let want: f64 = u.iter().map(|&a| a as f64 * a as f64).sum();
        assert!((sum_squares(&u) - want).abs() <= 1e-6 * want);
    }
}
