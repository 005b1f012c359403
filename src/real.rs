//! The floating-point element type shared by every layer: `f32` for training, `f64` for tests.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A real scalar the engine computes in (`f32` or `f64`).
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` constant (exact for small integers and factorials).
    fn c(x: f64) -> Self;
    /// Widens to `f64` (for reporting and comparison).
    fn as_f64(self) -> f64;
    /// A short name for messages and metadata.
    const NAME: &'static str;
    /// The slice as its concrete type (for paths written once per precision).
    fn view(s: &[Self]) -> Slice<'_>;
    /// The mutable slice as its concrete type.
    fn view_mut(s: &mut [Self]) -> SliceMut<'_>;
    /// An f32 slice as this type's slice (`None` unless this is f32).
    fn of_f32(s: &[f32]) -> Option<&[Self]>;
    /// `out[i] = tanh(x[i])` (equal lengths). `f32` uses the vectorisable [`tanh_f32_slice`];
    /// `f64` keeps libm's `tanh` (the derivative tests compare to it in f64).
    fn tanh_slice(x: &[Self], out: &mut [Self]) {
        for (o, v) in out.iter_mut().zip(x) {
            *o = v.tanh();
        }
    }
    /// This thread's spare scratch buffer of this type (see [`crate::tensor::Scratch`]).
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>>;
}

/// `out[i] = tanh(x[i])` for `f32`, as one vectorisable loop in f32 lanes (libm's `tanhf` is a
/// scalar call of ≈ 8 ns, a tenth of a d = 100 training step): for `|x| < 0.625` Cephes' odd
/// polynomial `a + a³·P(a²)`, else `1 − 2/(e^{2a} + 1)` with `e^{2a}` from a Cody–Waite reduction
/// and Cephes' `expf` polynomial (`|x|` capped at 10, where `tanh` rounds to 1); the sign restored,
/// NaN propagated. No fused operations, so every path gives the same bits. Within 1.5 ulp of the
/// exact value (1.29 at worst on a sweep of 5·10⁶ f32 values; tested against f64). Runs in the
/// widest vector registers the CPU has (16 f32 lanes with AVX-512).
pub fn tanh_f32_slice(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "tanh_f32_slice: lengths differ");
    crate::widest_fn! { fn lanes(x: &[f32], out: &mut [f32]) -> () = tanh_f32_lanes }
    lanes(x, out)
}

/// The body of [`tanh_f32_slice`] (inlined into its widest-register function).
#[inline(always)]
fn tanh_f32_lanes(x: &[f32], out: &mut [f32]) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    // ln 2 = LN2_HI + LN2_LO, LN2_HI with 9 significant bits (k·LN2_HI exact for k < 2¹⁵)
    const LN2_HI: f32 = 0.693_359_4; // 355/512 exactly
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2²³: adding and subtracting it rounds to the nearest integer
    const ROUND: f32 = 12_582_912.0;
    for (o, &v) in out.iter_mut().zip(x) {
        let a = v.abs().min(10.0);
        // e^{2a}, 2a ≤ 20: 2a = k·ln 2 + r, |r| ≤ ln 2 / 2
        let y = a + a;
        let shifted = y * LOG2E + ROUND;
        let k = shifted - ROUND;
        let r = (y - k * LN2_HI) - k * LN2_LO;
        let p = (((((1.987_569_2e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
            + 1.666_666_5e-1)
            * r
            + 0.5)
            * (r * r)
            + r
            + 1.0;
        // 2^k from k's bits in `shifted`'s low mantissa (0 ≤ k ≤ 29; no float-to-int conversion)
        let e = p * f32::from_bits((shifted.to_bits() - ROUND.to_bits() + 127) << 23);
        let big = 1.0 - 2.0 / (e + 1.0);
        let z = a * a;
        let q = (((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 1.333_144_2e-1) * z - 3.333_328e-1;
        let small = q * z * a + a;
        let t = if a < 0.625 { small } else { big };
        *o = if v.is_nan() { v } else { t.copysign(v) };
    }
}

/// A slice of a [`Real`] seen as its concrete type.
#[derive(Clone, Copy, Debug)]
pub enum Slice<'a> {
    /// `f32` values.
    F32(&'a [f32]),
    /// `f64` values.
    F64(&'a [f64]),
}

/// A mutable slice of a [`Real`] seen as its concrete type.
#[derive(Debug)]
pub enum SliceMut<'a> {
    /// `f32` values.
    F32(&'a mut [f32]),
    /// `f64` values.
    F64(&'a mut [f64]),
}

impl Real for f32 {
    fn view(s: &[Self]) -> Slice<'_> {
        Slice::F32(s)
    }
    fn view_mut(s: &mut [Self]) -> SliceMut<'_> {
        SliceMut::F32(s)
    }
    fn of_f32(s: &[f32]) -> Option<&[Self]> {
        Some(s)
    }
    fn tanh_slice(x: &[Self], out: &mut [Self]) {
        tanh_f32_slice(x, out)
    }
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>> {
        thread_local!(static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) });
        &SCRATCH
    }
    fn c(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    const NAME: &'static str = "f32";
}

impl Real for f64 {
    fn view(s: &[Self]) -> Slice<'_> {
        Slice::F64(s)
    }
    fn view_mut(s: &mut [Self]) -> SliceMut<'_> {
        SliceMut::F64(s)
    }
    fn of_f32(_: &[f32]) -> Option<&[Self]> {
        None
    }
    fn scratch() -> &'static std::thread::LocalKey<std::cell::Cell<Vec<Self>>> {
        thread_local!(static SCRATCH: std::cell::Cell<Vec<f64>> = const { std::cell::Cell::new(Vec::new()) });
        &SCRATCH
    }
    fn c(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "f64";
}

/// `Σ lanes` added pairwise: `lanes[j] += lanes[j + h]` for `h` = 8, 4, 2, 1 (the order of every
/// sixteen-lane sum in the crate), with constant halves so that each step is one vector addition
/// (a loop over the halves left them scalar, through memory).
#[inline(always)]
pub fn pairwise_sum16<T: Real>(lanes: &mut [T; 16]) -> T {
    #[inline(always)]
    fn fold<T: Real, const H: usize>(l: &mut [T; 16]) {
        for j in 0..H {
            l[j] += l[j + H];
        }
    }
    fold::<T, 8>(lanes);
    fold::<T, 4>(lanes);
    fold::<T, 2>(lanes);
    fold::<T, 1>(lanes);
    lanes[0]
}

/// `n!` as an `f64` (exact up to 22!).
pub fn factorial(n: usize) -> f64 {
    (1..=n).fold(1.0, |acc, i| acc * i as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in f32 ulps between `a` and the correctly rounded `want` (computed in f64).
    fn ulps(a: f32, want: f64) -> f64 {
        let w = want as f32;
        if a == w {
            return 0.0;
        }
        let ulp = (f32::from_bits(w.abs().to_bits() + 1) - w.abs()) as f64;
        (a as f64 - want).abs() / ulp
    }

    /// The halves in constants add in the order of a loop over `h` = 8, 4, 2, 1 (bit for bit,
    /// with values whose sums round differently in other orders).
    #[test]
    fn pairwise_sum16_adds_in_the_loop_order() {
        let v: [f32; 16] = std::array::from_fn(|i| match i {
            0 => 1e8,
            8 => -1e8,
            _ => 0.3 + i as f32,
        });
        let mut want = v;
        for half in [8, 4, 2, 1] {
            for j in 0..half {
                want[j] += want[j + half];
            }
        }
        let sequential: f32 = v.iter().sum();
        assert_ne!(
            want[0].to_bits(),
            sequential.to_bits(),
            "values too easy to tell orders apart"
        );
        assert_eq!(pairwise_sum16(&mut v.clone()).to_bits(), want[0].to_bits());
        let w: [f64; 16] = std::array::from_fn(|i| v[i] as f64 * 1e9 + 0.1);
        let mut want = w;
        for half in [8, 4, 2, 1] {
            for j in 0..half {
                want[j] += want[j + half];
            }
        }
        assert_eq!(pairwise_sum16(&mut w.clone()).to_bits(), want[0].to_bits());
    }

    #[test]
    fn vectorised_f32_tanh_is_within_1_5_ulp_of_f64() {
        let mut xs: Vec<f32> = (-30_000..=30_000).map(|i| i as f32 * 1e-3).collect();
        // every 997th f32 from 1e-10 to 10.5 (both branches, the switch at 0.625, the cap at 10)
        xs.extend((1e-10f32.to_bits()..10.5f32.to_bits()).step_by(997).map(f32::from_bits));
        xs.extend((0..200).map(|i| 1e-30f32 * 1.5f32.powi(i)));
        xs.extend([
            0.0,
            -0.0,
            f32::MIN_POSITIVE,
            1e-45,
            0.049_999,
            0.05,
            0.050_001,
            9.0,
            9.1,
            20.0,
            1e30,
        ]);
        let neg: Vec<f32> = xs.iter().map(|v| -v).collect();
        xs.extend(neg);
        let mut out = vec![0.0f32; xs.len()];
        tanh_f32_slice(&xs, &mut out);
        let mut worst = 0.0f64;
        for (&x, &t) in xs.iter().zip(&out) {
            let e = ulps(t, (x as f64).tanh());
            worst = worst.max(e);
            assert!(e <= 1.5, "tanh({x:e}) = {t:e}, f64 {:e}: {e} ulp", (x as f64).tanh());
            assert_eq!(t.is_sign_negative(), x.is_sign_negative(), "sign of tanh({x:e})");
        }
        // (1.29 ulp at worst, near 0.63, on every 61st f32 of that range when written)
        assert!(xs.len() > 400_000 && worst <= 1.5);
        let mut special = [0.0f32; 3];
        tanh_f32_slice(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY], &mut special);
        assert!(special[0].is_nan());
        assert_eq!(&special[1..], &[1.0, -1.0]);
    }
}
