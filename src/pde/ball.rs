//! Two-body and three-body exact solutions with Poisson, Allen–Cahn and Sine–Gordon operators
//! (spec equations §5), with the analytic Laplacians of §5.3 (the correct three-body one by
//! default; the published code's formula as a compatibility switch).

use super::{Equation, vecmath};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

/// `F(u)` in `Δu + F(u) = f`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nonlinearity {
    /// Poisson: `F = 0`.
    Poisson,
    /// Allen–Cahn: `F = u − u³`.
    AllenCahn,
    /// Sine–Gordon: `F = sin u`.
    SineGordon,
}

/// The exact solution family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Solution {
    /// `ψ Σ_{i<d} c_i sin(x_i + cos x_{i+1} + x_{i+1} cos x_i)`.
    TwoBody,
    /// `ψ Σ_{i<d−1} c_i exp(x_i x_{i+1} x_{i+2})`.
    ThreeBody,
}

/// One benchmark problem instance: coefficients `c ~ N(0, 1)` drawn from the problem seed.
#[derive(Clone, Debug)]
pub struct BallProblem {
    /// Operator nonlinearity.
    pub nonlinearity: Nonlinearity,
    /// Exact solution family.
    pub solution: Solution,
    /// Coefficients `c_1..c_d` (the last one or two unused).
    coeffs: Vec<f64>,
    /// The same in f32, for the f32 source.
    coeffs_f32: Vec<f32>,
    /// Use the published code's (wrong) three-body Laplacian in the source, for parity with Table 6.
    pub compat_three_body_source: bool,
}

impl BallProblem {
    /// Parses an equation name such as `allen-cahn-two-body`; `None` if unknown.
    pub fn from_name(name: &str, dim: usize, problem_seed: u64) -> Option<BallProblem> {
        let (op, sol) = name
            .rsplit_once("-two-body")
            .map(|(o, _)| (o, Solution::TwoBody))
            .or_else(|| name.rsplit_once("-three-body").map(|(o, _)| (o, Solution::ThreeBody)))?;
        if !name.ends_with("-body") {
            return None;
        }
        let nonlinearity = match op {
            "poisson" => Nonlinearity::Poisson,
            "allen-cahn" => Nonlinearity::AllenCahn,
            "sine-gordon" => Nonlinearity::SineGordon,
            _ => return None,
        };
        let mut rng = StdRng::seed_from_u64(problem_seed);
        let coeffs: Vec<f64> = (0..dim).map(|_| StandardNormal.sample(&mut rng)).collect();
        Some(BallProblem {
            nonlinearity,
            solution: sol,
            coeffs_f32: coeffs.iter().map(|&c| c as f32).collect(),
            coeffs,
            compat_three_body_source: false,
        })
    }

    /// The coefficients `c_1..c_d` (the last one or two unused).
    pub fn coeffs(&self) -> &[f64] {
        &self.coeffs
    }

    /// `(φ, Δφ, x·∇φ)` of the sum without the `ψ` factor, at `x`.
    fn parts<T: crate::Real>(&self, x: &[T]) -> (f64, f64, f64) {
        let d = x.len();
        let (mut phi, mut lap, mut radial) = (0.0, 0.0, 0.0);
        match self.solution {
            Solution::TwoBody => {
                // chunks of terms: sin/cos of the coordinates, then of z, then the sums, each a
                // vectorisable loop (see `vecmath`)
                const CH: usize = 256;
                let (mut xw, mut sx, mut cx) = ([0.0; CH + 1], [0.0; CH + 1], [0.0; CH + 1]);
                let (mut z, mut sz, mut cz) = ([0.0; CH], [0.0; CH], [0.0; CH]);
                let (mut tp, mut tl, mut tr) = ([0.0; CH], [0.0; CH], [0.0; CH]);
                let terms = d.saturating_sub(1);
                let mut i0 = 0;
                while i0 < terms {
                    let m = CH.min(terms - i0);
                    // widened to f64 one chunk at a time (no f64 copy of the whole point)
                    for (w, v) in xw.iter_mut().zip(&x[i0..i0 + m + 1]) {
                        *w = v.as_f64();
                    }
                    let xs = &xw[..m + 1];
                    let c = &self.coeffs[i0..i0 + m];
                    vecmath::sin_cos_slice(xs, &mut sx[..m + 1], &mut cx[..m + 1]);
                    for j in 0..m {
                        z[j] = xs[j] + cx[j + 1] + xs[j + 1] * cx[j];
                    }
                    vecmath::sin_cos_slice(&z[..m], &mut sz[..m], &mut cz[..m]);
                    for j in 0..m {
                        let (xi, xj) = (xs[j], xs[j + 1]);
                        let a = 1.0 - xj * sx[j];
                        let b = cx[j] - sx[j + 1];
                        let a2 = -xj * cx[j];
                        let b2 = -cx[j + 1];
                        tp[j] = c[j] * sz[j];
                        tl[j] = c[j] * (-sz[j] * (a * a + b * b) + cz[j] * (a2 + b2));
                        tr[j] = c[j] * cz[j] * (xi * a + xj * b);
                    }
                    crate::tensor::profile_count(crate::tensor::Work::SourceFlops, m * TWO_BODY_TERM_FLOPS);
                    phi += crate::lanes::sum4(&tp[..m]);
                    lap += crate::lanes::sum4(&tl[..m]);
                    radial += crate::lanes::sum4(&tr[..m]);
                    i0 += m;
                }
            }
            Solution::ThreeBody => {
                for i in 0..d.saturating_sub(2) {
                    let (a, b, e, c) = (x[i].as_f64(), x[i + 1].as_f64(), x[i + 2].as_f64(), self.coeffs[i]);
                    let p = a * b * e;
                    let ep = p.exp();
                    phi += c * ep;
                    if self.compat_three_body_source {
                        // the published code differentiates e^{x_i+x_{i+1}+x_{i+2}} instead
                        lap += c * ep * 3.0;
                        radial += c * ep * (a + b + e);
                    } else {
                        let q = (b * e).powi(2) + (a * e).powi(2) + (a * b).powi(2);
                        lap += c * ep * q;
                        radial += c * ep * 3.0 * p;
                    }
                }
            }
        }
        (phi, lap, radial)
    }

    /// [`parts`](Self::parts) of the two-body sum for an f32 point, in f32 lanes: sines and
    /// cosines by [`vecmath::sin_cos_slice_f32`], the terms in f32, each chunk's sums widened to
    /// f64 (the training source; evaluation keeps the f64 path). Relative error about 1e-6 of the
    /// terms' magnitude (tested against the f64 path).
    fn two_body_parts_f32(&self, x: &[f32]) -> (f64, f64, f64, f64) {
        crate::widest_fn! { fn parts(c: &[f32], x: &[f32]) -> (f64, f64, f64, f64) = two_body_parts_f32_lanes }
        parts(&self.coeffs_f32, x)
    }
}

/// The body of [`BallProblem::two_body_parts_f32`] with the f32 coefficients `coeffs`
/// (inlined into a [`crate::widest_fn!`] function); also returns `‖x‖²`. Chunks of 256 terms: the
/// sine–cosine of the chunk's coordinates into two small buffers, then one loop over the terms
/// (the sine–cosine of `z` inline) whose four sums go to sixteen f32 lanes, added pairwise and
/// widened to f64 at the end of the chunk. A chunk whose coordinates are all small skips the
/// range check of `z` (`|z| ≤ 1.25` there); the terms use fused multiply-adds (x86-64-v3 has
/// them). Both since the tenth pass of issue #10 (`cargo bench --bench step_parts --
/// two_body_source`, one EPYC core, d = 10⁵: 100.9 → 91.3 µs; the source's bits changed).
#[inline(always)]
fn two_body_parts_f32_lanes(coeffs: &[f32], x: &[f32]) -> (f64, f64, f64, f64) {
    let mut acc = TwoBodySums::default();
    let terms = x.len().saturating_sub(1);
    let mut i0 = 0;
    while i0 < terms {
        let m = TWO_BODY_CHUNK.min(terms - i0);
        two_body_chunk_f32(&coeffs[i0..i0 + m], &x[i0..i0 + m + 1], &mut acc);
        i0 += m;
    }
    acc.finish(x)
}

/// [`two_body_parts_f32_lanes`] of the point `scale·x`, scaling `x` in place on the way: each
/// chunk's coordinates are scaled right before the chunk's terms read them, and `visit(&x[..n])`
/// is called whenever the scaled prefix has grown by [`VISIT_COORDS`] (and once at the end with
/// the whole point), so that other per-point work finds the coordinates in cache. The point and
/// the sums are those of scaling the whole point first (the same products) and calling
/// [`two_body_parts_f32_lanes`]. (`cargo bench --bench step_parts -- draw_point_d1e6`, two EPYC
/// cores: 1.75–1.78 ms for two points' draw-time work against 1.91–2.08 ms in separate passes.)
#[inline(always)]
fn two_body_parts_f32_scaling_lanes(
    coeffs: &[f32],
    x: &mut [f32],
    scale: f32,
    visit: &mut dyn FnMut(&[f32]),
) -> (f64, f64, f64, f64) {
    let d = x.len();
    let mut acc = TwoBodySums::default();
    let terms = d.saturating_sub(1);
    let (mut scaled, mut visited) = (0, 0);
    let mut i0 = 0;
    while i0 < terms {
        let m = TWO_BODY_CHUNK.min(terms - i0);
        if scaled - visited >= VISIT_COORDS {
            visit(&x[..scaled]);
            visited = scaled;
        }
        // this chunk reads coordinates i0 ..= i0 + m; scaled a chunk ahead (stores just made
        // and loads at another alignment would stall on store forwarding)
        let ahead = (i0 + m + 1 + TWO_BODY_CHUNK).min(d);
        x[scaled..ahead].iter_mut().for_each(|v| *v *= scale);
        scaled = ahead;
        two_body_chunk_f32(&coeffs[i0..i0 + m], &x[i0..i0 + m + 1], &mut acc);
        i0 += m;
    }
    x[scaled..].iter_mut().for_each(|v| *v *= scale);
    visit(x);
    acc.finish(x)
}

/// Terms per chunk of the f32 two-body sum (its sums are widened to f64 per chunk).
const TWO_BODY_CHUNK: usize = 256;

/// How many newly final coordinates [`two_body_parts_f32_scaling_lanes`] hands on at a time
/// (64 KiB of f32: still in L2 when the visitor reads them).
const VISIT_COORDS: usize = 64 * TWO_BODY_CHUNK;

/// The running sums of the f32 two-body parts: `(φ, Δφ, x·∇φ, ‖x‖²)` in f64, the sine–cosine
/// pairs counted (general, small-argument, near 1), and the chunk's buffers of the coordinates'
/// sines and cosines.
struct TwoBodySums {
    sums: [f64; 4],
    counted: [usize; 3],
    sin: [f32; TWO_BODY_CHUNK + 1],
    cos: [f32; TWO_BODY_CHUNK + 1],
}

impl Default for TwoBodySums {
    fn default() -> Self {
        TwoBodySums {
            sums: [0.0; 4],
            counted: [0; 3],
            sin: [0.0; TWO_BODY_CHUNK + 1],
            cos: [0.0; TWO_BODY_CHUNK + 1],
        }
    }
}

impl TwoBodySums {
    /// The four sums of the point `x` (all its terms added), after adding the squares of its
    /// last coordinate (in no term's first slot) to `‖x‖²`; counts the sine–cosine pairs and the
    /// terms' operations for the profile.
    fn finish(mut self, x: &[f32]) -> (f64, f64, f64, f64) {
        let terms = x.len().saturating_sub(1);
        crate::tensor::profile_count(crate::tensor::Work::SourceFlops, terms * TWO_BODY_TERM_FLOPS);
        crate::tensor::profile_count(crate::tensor::Work::SinCos, self.counted[0]);
        crate::tensor::profile_count(crate::tensor::Work::SinCosSmall, self.counted[1]);
        crate::tensor::profile_count(crate::tensor::Work::SinCosNearOne, self.counted[2]);
        self.sums[3] += x[terms..].iter().map(|&v| (v * v) as f64).sum::<f64>();
        let s = self.sums;
        (s[0], s[1], s[2], s[3])
    }
}

/// One chunk of at most [`TWO_BODY_CHUNK`] terms of [`two_body_parts_f32_lanes`] (coefficients
/// `cc`, coordinates `xs`: one more than the terms) added to `acc`.
#[inline(always)]
fn two_body_chunk_f32(cc: &[f32], xs: &[f32], acc: &mut TwoBodySums) {
    const CH: usize = TWO_BODY_CHUNK;
    const L: usize = 16;
    let m = cc.len();
    debug_assert!(
        m <= CH && xs.len() == m + 1,
        "two-body chunk: {m} terms, {} coordinates",
        xs.len()
    );
    let TwoBodySums {
        sums,
        counted,
        sin: sx,
        cos: cx,
    } = acc;
    // counted here, handed to the profile once per point (a shared counter per chunk would cost
    // more than the chunk)
    let small = vecmath::sin_cos_chunk_f32(xs, &mut sx[..m + 1], &mut cx[..m + 1]);
    let full = m - m % L;
    if small {
        // the coordinates' pairs small; the full blocks' z near 1, the tail's general
        counted[1] += m + 1;
        counted[2] += full;
        counted[0] += m - full;
    } else {
        counted[0] += 2 * m + 1;
    }
    let mut inexact = [false; L];
    // the full blocks' sums in their own accumulators, only ever indexed by constants, so
    // that they stay in registers (the tail below indexes by a variable, which kept the
    // shared array on the stack: a store and a load on every addition's dependency chain)
    // with every coordinate small (|x| ≤ 1/8) z ∈ [0.742, 1.25]: the kernel near 1, unchecked
    let (lanes_acc, lanes_inexact) = if small {
        full_blocks::<true>(xs, cc, &sx[..], &cx[..], full)
    } else {
        full_blocks::<false>(xs, cc, &sx[..], &cx[..], full)
    };
    let mut acc = lanes_acc;
    inexact.copy_from_slice(&lanes_inexact);
    for j in full..m {
        let (s, z) = two_body_z_f32(xs[j], xs[j + 1], cx[j], cx[j + 1]);
        let (sz, cz) = vecmath::sin_cos_f32(z);
        inexact[j - full] |= !vecmath::f32_kernel_exact(z);
        let t = two_body_term_f32(xs[j], xs[j + 1], cc[j], sx[j], cx[j], sx[j + 1], s, sz, cz);
        add_term(&mut acc, j - full, t);
    }
    if inexact.contains(&true) {
        // some z outside the f32 kernel's range (or NaN): the chunk again, its sines in f64
        acc = [[0.0f32; L]; 4];
        for j in 0..m {
            let (s, z) = two_body_z_f32(xs[j], xs[j + 1], cx[j], cx[j + 1]);
            let (sz, cz) = (z as f64).sin_cos();
            let t = two_body_term_f32(
                xs[j],
                xs[j + 1],
                cc[j],
                sx[j],
                cx[j],
                sx[j + 1],
                s,
                sz as f32,
                cz as f32,
            );
            add_term(&mut acc, j % L, t);
        }
    }
    for (sum, lanes) in sums.iter_mut().zip(&mut acc) {
        *sum += crate::real::pairwise_sum16(lanes) as f64;
    }
}

/// The sums of [`two_body_parts_f32_lanes`]'s first `full` terms of a chunk (a multiple of
/// sixteen) in sixteen lanes each, and which lanes saw a `z` outside the f32 kernel's range. With
/// `SMALL` (every coordinate of the chunk at most 1/8, so `|z − 1| ≤ 0.26`) the sine–cosine of
/// `z` by [`vecmath::sin_cos_near_one_f32`], unchecked; else by [`vecmath::sin_cos_f32`].
#[inline(always)]
fn full_blocks<const SMALL: bool>(
    xs: &[f32],
    cc: &[f32],
    sx: &[f32],
    cx: &[f32],
    full: usize,
) -> ([[f32; 16]; 4], [bool; 16]) {
    const L: usize = 16;
    let mut lanes_acc = [[0.0f32; L]; 4];
    let mut lanes_inexact = [false; L];
    for b in (0..full).step_by(L) {
        let lane = |v: &[f32], o: usize| -> [f32; L] { v[b + o..b + o + L].try_into().unwrap() };
        let (x0, x1, c) = (lane(xs, 0), lane(xs, 1), lane(cc, 0));
        let (s0, s1, c0, c1) = (lane(sx, 0), lane(sx, 1), lane(cx, 0), lane(cx, 1));
        for l in 0..L {
            let (s, z) = two_body_z_f32(x0[l], x1[l], c0[l], c1[l]);
            let (sz, cz) = if SMALL {
                vecmath::sin_cos_near_one_f32(z)
            } else {
                vecmath::sin_cos_f32(z)
            };
            if !SMALL {
                lanes_inexact[l] |= !vecmath::f32_kernel_exact(z);
            }
            let t = two_body_term_f32(x0[l], x1[l], c[l], s0[l], c0[l], s1[l], s, sz, cz);
            add_term(&mut lanes_acc, l, t);
        }
    }
    (lanes_acc, lanes_inexact)
}

/// `(s, z)` of a term in f32 from `p = x_i`, `q = x_{i+1}` and their cosines: `s = q cos p +
/// cos q` (one fused multiply-add) and `z = p + s` (one addition; `s` is also the term's
/// Laplacian factor, so `z` costs one operation more, not two).
#[inline(always)]
fn two_body_z_f32(p: f32, q: f32, cp: f32, cq: f32) -> (f32, f32) {
    let s = q.mul_add(cp, cq);
    (s, p + s)
}

/// One term's `(c sin z, c Δ sin z, c (p, q)·∇ sin z)` in f32 and `p`, from `p = x_i`,
/// `q = x_{i+1}`, their sines, `cos p`, `s = q cos p + cos q` ([`two_body_z_f32`]) and the sine
/// and cosine of `z = p + s` (spec §5.3): with `a = 1 − q sin p`, `b = cos p − sin q`, `Δ sin z
/// = −sin z (a² + b²) − cos z · s` and `(p, q)·∇ sin z = cos z (p a + q b)`. With `z` and the
/// sums ([`add_term`]): 23 floating-point operations a term ([`TWO_BODY_TERM_FLOPS`]), 17
/// instructions with fused multiply-adds.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn two_body_term_f32(p: f32, q: f32, c: f32, sp: f32, cp: f32, sq: f32, s: f32, sz: f32, cz: f32) -> [f32; 4] {
    let a = (-q).mul_add(sp, 1.0);
    let b = cp - sq;
    let ab = a.mul_add(a, b * b);
    let (cs, cc) = (c * sz, c * cz);
    [cs, (-cs).mul_add(ab, -(cc * s)), cc * p.mul_add(a, q * b), p]
}

/// Floating-point operations of one two-body term given the sines and cosines (counted by
/// hand, each multiply and each add one): `s = q cos p + cos q` 2, `z = p + s` 1, `a = 1 − q
/// sin p` 2, `b = cos p − sin q` 1, `a² + b²` 3, `c sin z` and `c cos z` 2, `−(c sin z (a² + b²)
/// + c cos z · s)` 3, `c cos z (p a + q b)` 4, and the four sums (`p²` a multiply more) 5. The
/// step bound counts them at the product rate (`stde bench step`).
pub const TWO_BODY_TERM_FLOPS: usize = 23;

/// Adds a term of [`two_body_term_f32`] to lane `l` of the four sums (`p²` by a fused
/// multiply-add).
#[inline(always)]
fn add_term(acc: &mut [[f32; 16]; 4], l: usize, t: [f32; 4]) {
    acc[0][l] += t[0];
    acc[1][l] += t[1];
    acc[2][l] += t[2];
    acc[3][l] = t[3].mul_add(t[3], acc[3][l]);
}

impl BallProblem {
    /// `Δu*` with `u* = ψ φ`: `ψ Δφ − 4 x·∇φ − 2d φ` (spec equations §5.3).
    pub fn exact_laplacian(&self, x: &[f64]) -> f64 {
        self.solution_and_laplacian(x).1
    }

    /// `(u*, Δu*)` in one pass.
    pub fn solution_and_laplacian<T: crate::Real>(&self, x: &[T]) -> (f64, f64) {
        let psi = 1.0 - crate::lanes::sum_squares4(x);
        let (phi, lap, radial) = self.parts(x);
        (psi * phi, psi * lap - 4.0 * radial - 2.0 * x.len() as f64 * phi)
    }
}

/// The scalar operations the two-body term needs, for `f64` and for [`Dual`].
trait Scalar: Copy + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + std::ops::Mul<Output = Self> {
    fn c(v: f64) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
}

impl Scalar for f64 {
    fn c(v: f64) -> Self {
        v
    }
    fn sin(self) -> Self {
        f64::sin(self)
    }
    fn cos(self) -> Self {
        f64::cos(self)
    }
}

/// A forward-mode dual number `v + e·ε`, `ε² = 0`: one exact first derivative.
#[derive(Clone, Copy, Debug)]
struct Dual {
    v: f64,
    e: f64,
}

impl std::ops::Add for Dual {
    type Output = Dual;
    fn add(self, o: Dual) -> Dual {
        Dual {
            v: self.v + o.v,
            e: self.e + o.e,
        }
    }
}
impl std::ops::Sub for Dual {
    type Output = Dual;
    fn sub(self, o: Dual) -> Dual {
        Dual {
            v: self.v - o.v,
            e: self.e - o.e,
        }
    }
}
impl std::ops::Mul for Dual {
    type Output = Dual;
    fn mul(self, o: Dual) -> Dual {
        Dual {
            v: self.v * o.v,
            e: self.e * o.v + self.v * o.e,
        }
    }
}
impl Scalar for Dual {
    fn c(v: f64) -> Self {
        Dual { v, e: 0.0 }
    }
    fn sin(self) -> Self {
        Dual {
            v: self.v.sin(),
            e: self.e * self.v.cos(),
        }
    }
    fn cos(self) -> Self {
        Dual {
            v: self.v.cos(),
            e: -self.e * self.v.sin(),
        }
    }
}

/// One two-body term in its two variables `(p, q) = (x_i, x_{i+1})`: `(sin z, Δ sin z, (p, q)·∇ sin z)`
/// with `z = p + cos q + q cos p` (the quantities of spec §5.3).
fn two_body_term<S: Scalar>(p: S, q: S) -> (S, S, S) {
    let (sp, cp, sq, cq) = (p.sin(), p.cos(), q.sin(), q.cos());
    let z = p + cq + q * cp;
    let (sz, cz) = (z.sin(), z.cos());
    let a = S::c(1.0) - q * sp;
    let b = cp - sq;
    let a2 = S::c(0.0) - q * cp;
    let b2 = S::c(0.0) - cq;
    let lap = cz * (a2 + b2) - sz * (a * a + b * b);
    (sz, lap, cz * (p * a + q * b))
}

impl BallProblem {
    /// The two-body source `f` at `x`, and `∂_j f` for every `j` of `js` into `out` (spec §6.1):
    /// `∂_j f = ∂_jΔu* + F'(u*)∂_ju*` with `∂_jΔu* = −2x_jΔφ + ψ∂_jΔφ − 4∂_j(x·∇φ) − 2d∂_jφ`; only
    /// the terms `i = j − 1, j` depend on `x_j`, and their derivatives come from dual numbers.
    fn two_body_source_partials(&self, x: &[f64], js: &[usize], out: &mut [f64]) -> f64 {
        let d = x.len();
        let psi = 1.0 - crate::lanes::sum_squares4(x);
        let (phi, lap, _) = self.parts(x);
        let (u, lap_u) = self.solution_and_laplacian(x);
        let (f_u, df_u, _) = self.nonlinearity(u);
        for (&j, o) in js.iter().zip(out.iter_mut()) {
            let (mut d_phi, mut d_lap, mut d_radial) = (0.0, 0.0, 0.0);
            let seeded = |v: f64, on: bool| Dual {
                v,
                e: if on { 1.0 } else { 0.0 },
            };
            for i in [j.wrapping_sub(1), j] {
                if i >= d.saturating_sub(1) {
                    continue;
                }
                let (s, l, r) = two_body_term(seeded(x[i], i == j), seeded(x[i + 1], i + 1 == j));
                let c = self.coeffs[i];
                d_phi += c * s.e;
                d_lap += c * l.e;
                d_radial += c * r.e;
            }
            let d_u = -2.0 * x[j] * phi + psi * d_phi;
            let d_lap_u = -2.0 * x[j] * lap + psi * d_lap - 4.0 * d_radial - 2.0 * d as f64 * d_phi;
            *o = d_lap_u + df_u * d_u;
        }
        lap_u + f_u
    }
}

impl Equation for BallProblem {
    fn name(&self) -> String {
        let op = match self.nonlinearity {
            Nonlinearity::Poisson => "poisson",
            Nonlinearity::AllenCahn => "allen-cahn",
            Nonlinearity::SineGordon => "sine-gordon",
        };
        let sol = match self.solution {
            Solution::TwoBody => "two-body",
            Solution::ThreeBody => "three-body",
        };
        format!("{op}-{sol}")
    }

    fn dim(&self) -> usize {
        self.coeffs.len()
    }

    fn nonlinearity(&self, u: f64) -> (f64, f64, f64) {
        match self.nonlinearity {
            Nonlinearity::Poisson => (0.0, 0.0, 0.0),
            Nonlinearity::AllenCahn => (u - u * u * u, 1.0 - 3.0 * u * u, -6.0 * u),
            Nonlinearity::SineGordon => (u.sin(), u.cos(), -u.sin()),
        }
    }

    fn source_with_partials(&self, x: &[f64], js: &[usize], out: &mut [f64]) -> Option<f64> {
        (self.solution == Solution::TwoBody).then(|| self.two_body_source_partials(x, js, out))
    }

    fn source(&self, x: &[f64]) -> f64 {
        let (u, lap) = self.solution_and_laplacian(x);
        lap + self.nonlinearity(u).0
    }

    fn source_f32(&self, x: &[f32]) -> f64 {
        self.source_f32_and_norm2(x).0
    }

    fn source_f32_and_norm2(&self, x: &[f32]) -> (f64, f64) {
        if self.solution != Solution::TwoBody {
            let (u, lap) = self.solution_and_laplacian(x);
            return (lap + self.nonlinearity(u).0, crate::lanes::sum_squares(x));
        }
        self.two_body_source(x.len(), self.two_body_parts_f32(x))
    }

    fn source_f32_and_norm2_scaling(&self, x: &mut [f32], scale: f32, visit: &mut dyn FnMut(&[f32])) -> (f64, f64) {
        if self.solution != Solution::TwoBody {
            x.iter_mut().for_each(|v| *v *= scale);
            visit(x);
            return self.source_f32_and_norm2(x);
        }
        crate::widest_fn! {
            fn parts(c: &[f32], x: &mut [f32], scale: f32, visit: &mut dyn FnMut(&[f32])) -> (f64, f64, f64, f64)
                = two_body_parts_f32_scaling_lanes
        }
        let (phi, lap, radial, norm2) = parts(&self.coeffs_f32, x, scale, visit);
        self.two_body_source(x.len(), (phi, lap, radial, norm2))
    }

    fn exact(&self, x: &[f64]) -> Option<f64> {
        let psi = 1.0 - x.iter().map(|v| v * v).sum::<f64>();
        Some(psi * self.parts(x).0)
    }
}

impl BallProblem {
    /// `(f, ‖x‖²)` of the two-body problem at a point of dimension `d` from the f32 parts
    /// `(φ, Δφ, x·∇φ, ‖x‖²)` of the sum.
    fn two_body_source(&self, d: usize, (phi, lap, radial, norm2): (f64, f64, f64, f64)) -> (f64, f64) {
        let psi = 1.0 - norm2;
        let (u, lap) = (psi * phi, psi * lap - 4.0 * radial - 2.0 * d as f64 * phi);
        (lap + self.nonlinearity(u).0, norm2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// The f32 parts of the two-body sum on the three paths of its lanes (d = 1100: four chunks
    /// of 256 terms and a tail), each on its own point so that its error is measured against its
    /// own terms: coordinates all small (`|x| ≤ 0.1`: `z` is not range-checked), ordinary
    /// (`|x| ≤ 0.9`), and a point whose second chunk has some `z` beyond the f32 kernel's
    /// checked range (`|x| ≤ 700` there, `|z|` up to ≈ 1400: that chunk again with f64
    /// sine–cosines). Each part equals the f64 one to 1e-7 of the sum of its terms' bounds
    /// (`|c_i|` for `φ`, `|c_i|((1 + |x_{i+1}|)² + 5 + |x_{i+1}|)` for `Δφ`,
    /// `|c_i|(|x_i|(1 + |x_{i+1}|) + 2|x_{i+1}|)` for `x·∇φ`; measured ≤ 3e-9), 1e-5 on the
    /// third point (measured 2.3e-6: `z` rounded to f32 is off by ≈ 1e-4 there), and `‖x‖²` to
    /// 1e-6 relative. Checked that it fails with a term off by 1 %.
    #[test]
    fn f32_parts_are_right_for_every_chunk_kind() {
        let d = 1100;
        let p = BallProblem::from_name("poisson-two-body", d, 4).unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        for (kind, big, tol) in [
            ("small", 0.1f32, 1e-7),
            ("ordinary", 0.9, 1e-7),
            ("large z", 700.0, 1e-5),
        ] {
            let x: Vec<f32> = (0..d)
                .map(|i| {
                    let v: f32 = rng.random_range(-1.0..1.0);
                    if i / 256 == 1 { big * v } else { big.min(0.9) * v }
                })
                .collect();
            let wide: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            // per part, the sum of its terms' bounds (|sin|, |cos| ≤ 1)
            let mut scale = [0.0f64; 3];
            for i in 0..d - 1 {
                let (c, a, b) = (p.coeffs()[i].abs(), wide[i].abs(), wide[i + 1].abs());
                scale[0] += c;
                scale[1] += c * ((1.0 + b).powi(2) + 4.0 + b + 1.0);
                scale[2] += c * (a * (1.0 + b) + 2.0 * b);
            }
            let (phi, lap, radial, norm2) = p.two_body_parts_f32(&x);
            let want = p.parts(&wide);
            let parts = [("φ", phi, want.0), ("Δφ", lap, want.1), ("x·∇φ", radial, want.2)];
            for ((name, got, want), scale) in parts.into_iter().zip(scale) {
                let err = (got - want).abs() / scale;
                eprintln!("{kind}: {name}: {err:.2e} of the bound");
                assert!(err <= tol, "{kind}: {name}: {got} vs {want} (scale {scale})");
            }
            let norm2_want: f64 = wide.iter().map(|v| v * v).sum();
            assert!(
                (norm2 - norm2_want).abs() <= 1e-6 * norm2_want,
                "{kind}: {norm2} vs {norm2_want}"
            );
        }
    }
}
