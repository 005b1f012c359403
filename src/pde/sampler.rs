//! Points in the unit ball: radius-uniform (the reference scheme, default) or volume-uniform
//! (spec equations §4). Each point has its own counter-based generator stream, so sampling is
//! parallel, allocation-free per element, and reproducible from `(seed, step, point)` alone.

use crate::pde::vecmath;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;

/// The radial law.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// `ρ ~ U[0,1)`, `x = ρ g/‖g‖` (what the published results used; not uniform in volume).
    RadiusUniform,
    /// `ρ = U^{1/d}`: uniform in volume.
    VolumeUniform,
}

/// A deterministic sampler of ball points.
#[derive(Clone, Copy, Debug)]
pub struct BallSampler {
    /// Radial law.
    pub kind: SamplerKind,
    /// Dimension.
    pub dim: usize,
}

/// The SplitMix64 finaliser: a bijection of `u64` whose output bits each depend on every input
/// bit (nearby keys map to unrelated values).
pub fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A generator for stream `(seed, a, b)`: independent streams for every seed, purpose, step and
/// point. The key is mixed through SplitMix64 at each level and the state filled by SplitMix64
/// (`seed_from_u64`), so consecutive counters give uncorrelated streams (tested). Until this
/// derivation (issue #11) the raw key bytes seeded the state, and the first draws of consecutive
/// counters were correlated (ρ ≈ −0.1); runs made before it used those streams.
pub fn stream(seed: u64, a: u64, b: u64) -> Xoshiro256PlusPlus {
    let key = mix64(mix64(mix64(seed) ^ a) ^ b);
    Xoshiro256PlusPlus::seed_from_u64(key)
}

impl BallSampler {
    /// Fills `out` (`[n × d]`) with the points of batch `batch` of stream `seed`.
    pub fn fill<T: crate::Real>(&self, seed: u64, batch: u64, out: &mut [T]) {
        self.fill_from(seed, batch, 0, out);
    }

    /// As [`BallSampler::fill`], for points `first, first + 1, …` of the batch (the same points
    /// that a full fill puts there).
    pub fn fill_from<T: crate::Real>(&self, seed: u64, batch: u64, first: usize, out: &mut [T]) {
        let d = self.dim;
        out.par_chunks_mut(d).enumerate().for_each(|(p, x)| {
            let mut rng = stream(seed, batch, (first + p) as u64);
            self.point(&mut rng, x);
        });
    }

    /// One point from `rng` into `x` (length `d`); `rng` continues after it. The direction's
    /// Gaussians come from [`NormalLanes`] seeded by `rng` (vectorised; since issue #10 — the
    /// scalar Ziggurat drew them before, so runs made earlier used other points).
    pub fn point<T: crate::Real>(&self, rng: &mut Xoshiro256PlusPlus, x: &mut [T]) {
        let scale = self.direction(rng, x);
        x.iter_mut().for_each(|v| *v *= scale);
    }

    /// [`BallSampler::point`] without its last step: the Gaussians into `x` and the factor that
    /// makes them the point (`x ← scale·x`, one product a coordinate), returned.
    pub fn direction<T: crate::Real>(&self, rng: &mut Xoshiro256PlusPlus, x: &mut [T]) -> T {
        let d = self.dim;
        let mut lanes = NormalLanes::new(rng);
        let norm2 = lanes.fill_widest(x);
        let u: f64 = rng.random();
        let rho = match self.kind {
            SamplerKind::RadiusUniform => u,
            SamplerKind::VolumeUniform => u.powf(1.0 / d as f64),
        };
        T::c(rho / norm2.sqrt().max(f64::MIN_POSITIVE))
    }

    /// A point of the unit sphere from `rng` into `x` (`x = g/‖g‖`; `±1` in one dimension).
    pub fn sphere_point<T: crate::Real>(rng: &mut Xoshiro256PlusPlus, x: &mut [T]) {
        let mut norm2 = 0.0f64;
        let mut g = [0.0f64; 1];
        for v in x.iter_mut() {
            g[0] = StandardNormal.sample(rng);
            norm2 += g[0] * g[0];
            *v = T::c(g[0]);
        }
        let scale = T::c(1.0 / norm2.sqrt().max(f64::MIN_POSITIVE));
        x.iter_mut().for_each(|v| *v *= scale);
    }
}

/// Generators in the vector lanes.
const LANES: usize = 16;

/// Standard normals drawn in vector lanes: sixteen xoshiro128++ generators side by side (seeded
/// from one point's stream), and the Box–Muller transform in f32 lanes ([`box_muller`]: `r =
/// √(−2 ln u₁)` with `u₁ ∈ (0, 1]`, `(r cos φ, r sin φ)` with `φ` uniform on a grid of 2²⁴
/// angles) — sixteen pairs per block. The uniforms have 24 bits, so `|g| ≤ √(48 ln 2) ≈ 5.77`
/// (the tail beyond has probability 8·10⁻⁹) and values lie on f32's grid; the logarithm and the
/// sine–cosine are accurate to about 1e-7 (tested). Several times the rate of the scalar
/// Ziggurat (`stde bench step`).
#[derive(Clone, Debug)]
pub struct NormalLanes {
    s: [[u32; LANES]; 4],
}

impl NormalLanes {
    /// Seeds the sixteen generators from `rng` (32 draws; `rng` continues after them).
    pub fn new(rng: &mut Xoshiro256PlusPlus) -> NormalLanes {
        let mut s = [[0u32; LANES]; 4];
        for j in 0..LANES {
            for w in 0..2 {
                let v: u64 = rng.random();
                s[2 * w][j] = v as u32;
                s[2 * w + 1][j] = (v >> 32) as u32;
            }
            if (0..4).all(|i| s[i][j] == 0) {
                s[0][j] = 1; // xoshiro's one forbidden state
            }
        }
        NormalLanes { s }
    }

    /// The next output of every lane (xoshiro128++).
    #[inline(always)]
    fn next(&mut self) -> [u32; LANES] {
        let [s0, s1, s2, s3] = &mut self.s;
        let mut out = [0u32; LANES];
        for j in 0..LANES {
            out[j] = s0[j].wrapping_add(s3[j]).rotate_left(7).wrapping_add(s0[j]);
            let t = s1[j] << 9;
            s2[j] ^= s0[j];
            s3[j] ^= s1[j];
            s1[j] ^= s2[j];
            s0[j] ^= s3[j];
            s2[j] ^= t;
            s3[j] = s3[j].rotate_left(11);
        }
        out
    }

    /// 32 standard normals: the cosine halves of sixteen Box–Muller pairs, then the sine halves.
    #[inline(always)]
    pub fn block(&mut self, out: &mut [f32; 2 * LANES]) {
        let (a, b) = (self.next(), self.next());
        for j in 0..LANES {
            (out[j], out[LANES + j]) = box_muller(a[j], b[j]);
        }
    }

    /// [`NormalLanes::fill`] in the widest vector registers this CPU has (the same bits).
    pub fn fill_widest<T: crate::Real>(&mut self, x: &mut [T]) -> f64 {
        crate::widest_fn! { fn fill<T: crate::Real>(l: &mut NormalLanes, x: &mut [T]) -> f64 = NormalLanes::fill }
        fill(self, x)
    }

    /// Fills `x` with standard normals (blocks in order; the last one cut) and returns `Σ x_i²`
    /// (f32 sums in 32 lanes over runs of 64 blocks, widened to f64 between runs).
    #[inline(always)]
    pub fn fill<T: crate::Real>(&mut self, x: &mut [T]) -> f64 {
        const RUN: usize = 64 * 2 * LANES;
        let mut block = [0.0f32; 2 * LANES];
        let mut total = 0.0f64;
        for run in x.chunks_mut(RUN) {
            // one accumulator per block position: no serial chain of additions
            let mut acc = [0.0f32; 2 * LANES];
            let mut chunks = run.chunks_exact_mut(2 * LANES);
            for chunk in &mut chunks {
                self.block(&mut block);
                for j in 0..2 * LANES {
                    chunk[j] = T::c(block[j] as f64);
                    acc[j] += block[j] * block[j];
                }
            }
            let tail = chunks.into_remainder();
            if !tail.is_empty() {
                self.block(&mut block);
                for (j, v) in tail.iter_mut().enumerate() {
                    *v = T::c(block[j] as f64);
                    acc[j] += block[j] * block[j];
                }
            }
            total += acc.iter().map(|&a| a as f64).sum::<f64>();
        }
        total
    }
}

/// One Box–Muller pair `(r cos φ, r sin φ)` from two 32-bit draws: `r = √(−2 ln u₁)` with
/// `u₁ = (⌊a/2⁸⌋ + 1)·2⁻²⁴ ∈ (0, 1]`, and the angle `φ = (k − 2²¹)·2π/2²⁴` with `k = ⌊b/2⁸⌋`
/// taken as a quadrant (`k`'s top two bits) and an offset `θ ∈ [−π/4, π/4)` within it (the
/// other 22 bits, centred): `(sin θ, cos θ)` by [`vecmath::sin_cos_quarter_f32`], then rotated by the quadrant
/// (a swap and signs). The angles are the 2²⁴ points of a uniform grid on the circle, as
/// `2πu₂` would give, without a range reduction; the logarithm without a division
/// ([`vecmath::ln_f32`]). Since the eleventh pass of issue #10 (different bits from the
/// `2πu₂` form before it).
#[inline(always)]
pub fn box_muller(a: u32, b: u32) -> (f32, f32) {
    const UNIT: f32 = 1.0 / (1u32 << 24) as f32;
    const STEP: f32 = std::f32::consts::FRAC_PI_2 / (1u32 << 22) as f32;
    let u1 = ((a >> 8) + 1) as f32 * UNIT;
    let r = (-2.0 * vecmath::ln_f32(u1)).sqrt();
    let quadrant = b >> 30;
    let offset = ((b >> 8) & 0x3f_ffff) as i32 - (1 << 21);
    let (s, c) = vecmath::sin_cos_quarter_f32(offset as f32 * STEP);
    // φ = quadrant·π/2 + θ: (sin, cos) → (cos, −sin) → (−sin, −cos) → (−cos, sin)
    let (sv, cv) = if quadrant & 1 != 0 { (c, s) } else { (s, c) };
    let sin = f32::from_bits(sv.to_bits() ^ ((quadrant & 2) << 30));
    let cos = f32::from_bits(cv.to_bits() ^ ((quadrant.wrapping_add(1) & 2) << 30));
    (r * cos, r * sin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_lie_in_the_ball_with_the_stated_radial_law() {
        let d = 20;
        let n = 4000;
        for (kind, want) in [
            (SamplerKind::RadiusUniform, 1.0 / 3.0),
            (SamplerKind::VolumeUniform, d as f64 / (d as f64 + 2.0)),
        ] {
            let s = BallSampler { kind, dim: d };
            let mut x = vec![0.0f64; n * d];
            s.fill(1, 0, &mut x);
            let r2: Vec<f64> = x.chunks(d).map(|p| p.iter().map(|v| v * v).sum()).collect();
            assert!(r2.iter().all(|&r| r < 1.0));
            let mean = r2.iter().sum::<f64>() / n as f64;
            // E‖x‖² is 1/3 (radius-uniform) or d/(d+2) (volume-uniform); 4000 samples: SE < 0.01
            assert!((mean - want).abs() < 0.02, "{kind:?}: mean ‖x‖² {mean} vs {want}");
            let mut again = vec![0.0f64; n * d];
            s.fill(1, 0, &mut again);
            assert_eq!(x, again, "same seed, same points");
            // a part of the batch, filled on its own, is the same part of the full fill
            let mut part = vec![0.0f64; 7 * d];
            s.fill_from(1, 0, 13, &mut part);
            assert_eq!(part, x[13 * d..20 * d], "fill_from matches fill");
        }
    }
}

#[cfg(test)]
mod normal_tests {
    use super::*;

    /// `Φ` on the grid `−6 + 0.01k` by composite Simpson integration of the density from −9
    /// (independent of the sampler's maths; error far below the test's tolerance).
    fn normal_cdf_grid() -> Vec<(f64, f64)> {
        let density = |x: f64| (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let simpson = |a: f64, b: f64| {
            let n = 64;
            let h = (b - a) / n as f64;
            let mut s = density(a) + density(b);
            for i in 1..n {
                s += density(a + i as f64 * h) * if i % 2 == 1 { 4.0 } else { 2.0 };
            }
            s * h / 3.0
        };
        let mut cdf = simpson(-9.0, -6.0);
        let mut out = vec![(-6.0, cdf)];
        for k in 1..=1200 {
            let (a, b) = (-6.0 + 0.01 * (k - 1) as f64, -6.0 + 0.01 * k as f64);
            cdf += simpson(a, b);
            out.push((b, cdf));
        }
        out
    }

    /// 2·10⁶ draws (fixed seed): the empirical CDF is within the Kolmogorov–Smirnov bound
    /// `1.95/√N` (α = 0.001) of `Φ` on a 0.01 grid over [−6, 6]; mean, variance and fourth
    /// moment within 5 standard errors; every draw within the Box–Muller range `|g| ≤ 5.78`.
    #[test]
    fn the_lanes_draw_standard_normals() {
        let n = 2_000_000;
        let mut rng = stream(3, 1, 4);
        let mut lanes = NormalLanes::new(&mut rng);
        let mut g = vec![0.0f32; n];
        let norm2 = lanes.fill_widest(&mut g);
        let mut v: Vec<f64> = g.iter().map(|&x| x as f64).collect();
        let exact: f64 = v.iter().map(|x| x * x).sum();
        assert!(
            (norm2 - exact).abs() <= 1e-9 * exact,
            "returned Σ g² {norm2} vs {exact}"
        );
        let m = n as f64;
        let mean = v.iter().sum::<f64>() / m;
        let var = v.iter().map(|x| x * x).sum::<f64>() / m;
        let m4 = v.iter().map(|x| x.powi(4)).sum::<f64>() / m;
        assert!(mean.abs() < 5.0 / m.sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * 2f64.sqrt() / m.sqrt(), "variance {var}");
        assert!((m4 - 3.0).abs() < 5.0 * 96f64.sqrt() / m.sqrt(), "fourth moment {m4}");
        assert!(v.iter().all(|x| x.abs() <= 5.78));
        v.sort_by(f64::total_cmp);
        let mut worst = 0.0f64;
        for (x, phi) in normal_cdf_grid() {
            let below = v.partition_point(|&g| g <= x) as f64 / m;
            worst = worst.max((below - phi).abs());
        }
        assert!(worst < 1.95 / m.sqrt(), "KS distance {worst}");
    }

    /// The AVX-512 build (where present) draws the same bits as the x86-64-v3 build, and a
    /// point's coordinates do not depend on how many there are (blocks in order, the last cut).
    #[test]
    fn the_lanes_are_reproducible() {
        let draw = |n: usize, wide: bool| {
            let mut rng = stream(9, 2, 7);
            let mut lanes = NormalLanes::new(&mut rng);
            let mut x = vec![0.0f32; n];
            let s = if wide {
                lanes.fill_widest(&mut x)
            } else {
                lanes.fill(&mut x)
            };
            (x, s)
        };
        let (a, sa) = draw(1001, false);
        let (b, sb) = draw(1001, true);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!(sa.to_bits(), sb.to_bits());
        let (c, _) = draw(1040, true);
        assert_eq!(a[..], c[..1001]);
    }

    /// Each pair of [`box_muller`] against the same transform in f64 from the same two draws
    /// (`r = √(−2 ln u₁)`, `φ = (k − 2²¹)·2π/2²⁴`): within 4e-7·max(r, 1), for 10⁶ draws of a
    /// fixed stream and the extreme draws (`u₁ = 2⁻²⁴` and 1, each quadrant's edges).
    #[test]
    fn box_muller_pairs_match_f64() {
        let f64_pair = |a: u32, b: u32| {
            let u1 = ((a >> 8) + 1) as f64 / (1u64 << 24) as f64;
            let r = (-2.0 * u1.ln()).sqrt();
            let phi = ((b >> 8) as f64 - (1u64 << 21) as f64) * std::f64::consts::TAU / (1u64 << 24) as f64;
            (r * phi.cos(), r * phi.sin(), r)
        };
        let mut rng = stream(5, 0, 11);
        let mut draws: Vec<(u32, u32)> = (0..1_000_000).map(|_| (rng.random(), rng.random())).collect();
        for a in [0u32, 0xff, 0xffff_ff00, u32::MAX] {
            for q in 0..4u32 {
                for low in [0u32, 0x3f_ffff, 0x20_0000, 0x1f_ffff] {
                    draws.push((a, (q << 30) | (low << 8)));
                }
            }
        }
        let mut worst = 0.0f64;
        for (a, b) in draws {
            let (g0, g1) = box_muller(a, b);
            let (w0, w1, r) = f64_pair(a, b);
            let err = (g0 as f64 - w0).abs().max((g1 as f64 - w1).abs()) / r.max(1.0);
            worst = worst.max(err);
            assert!(err <= 4e-7, "draws {a:#x} {b:#x}: ({g0}, {g1}) vs ({w0}, {w1})");
        }
        assert!(worst > 0.0, "the f64 transform is an independent computation");
    }

    /// `ln_f32` against f64 over the sampler's whole range `[2⁻²⁴, 1]`: relative error ≤ 3e-7.
    #[test]
    fn ln_f32_is_accurate() {
        let mut u = 1.0f32 / (1u32 << 24) as f32;
        while u <= 1.0 {
            let want = (u as f64).ln();
            let got = crate::pde::vecmath::ln_f32(u) as f64;
            assert!(
                (got - want).abs() <= 3e-7 * want.abs().max(1e-30) + 1e-12,
                "ln {u}: {got} vs {want}"
            );
            u = f32::from_bits(u.to_bits() + 997);
        }
        assert_eq!(crate::pde::vecmath::ln_f32(1.0), 0.0);
    }
}

#[cfg(test)]
mod stream_tests {
    use super::stream;
    use rand::Rng;

    /// Streams keyed by nearby seeds, purposes or counters are uncorrelated: for 10⁵ uniforms
    /// the sample correlation of paired draws has standard error 1/√N ≈ 0.0032; we require
    /// |ρ| < 0.015 (4.7σ), also for the first draws, lagged by one, and for the bits' agreement.
    #[test]
    fn nearby_keys_give_uncorrelated_streams() {
        let n = 100_000;
        let draws = |seed: u64, a: u64, b: u64| -> Vec<f64> {
            let mut r = stream(seed, a, b);
            (0..n).map(|_| r.random::<f64>()).collect()
        };
        let corr = |x: &[f64], y: &[f64]| {
            let m = x.len() as f64;
            let (mx, my) = (x.iter().sum::<f64>() / m, y.iter().sum::<f64>() / m);
            let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
            for (a, b) in x.iter().zip(y) {
                sxy += (a - mx) * (b - my);
                sxx += (a - mx) * (a - mx);
                syy += (b - my) * (b - my);
            }
            sxy / (sxx * syy).sqrt()
        };
        let base = draws(7, 3, 11);
        for (name, other) in [
            ("seed + 1", draws(8, 3, 11)),
            ("purpose + 1", draws(7, 4, 11)),
            ("counter + 1", draws(7, 3, 12)),
            ("seed ^ 1 << 63", draws(7 ^ (1 << 63), 3, 11)),
        ] {
            let r = corr(&base, &other);
            assert!(r.abs() < 0.015, "{name}: correlation {r}");
            let lag = corr(&base[1..], &other[..n - 1]);
            assert!(lag.abs() < 0.015, "{name}: lagged correlation {lag}");
        }
        // the first draw of many consecutive counters (how points of a batch are sampled)
        let first: Vec<f64> = (0..n as u64).map(|b| stream(7, 3, b).random::<f64>()).collect();
        let second: Vec<f64> = (0..n as u64).map(|b| stream(8, 3, b).random::<f64>()).collect();
        let c = corr(&first[1..], &first[..n - 1]);
        assert!(c.abs() < 0.015, "consecutive counters: {c}");
        assert!(corr(&first, &second).abs() < 0.015, "nearby seeds, first draws");
        let mean = first.iter().sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.005, "first draws' mean {mean}");
    }
}
