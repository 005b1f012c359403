//! Points in the unit ball: radius-uniform (the reference scheme, default) or volume-uniform
//! (spec equations §4). Each point has its own counter-based generator stream, so sampling is
//! parallel, allocation-free per element, and reproducible from `(seed, step, point)` alone.

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

/// A generator for stream `(seed, a, b)`: independent streams for every step and point.
pub fn stream(seed: u64, a: u64, b: u64) -> Xoshiro256PlusPlus {
    let mut s = [0u8; 32];
    s[..8].copy_from_slice(&seed.to_le_bytes());
    s[8..16].copy_from_slice(&a.to_le_bytes());
    s[16..24].copy_from_slice(&b.to_le_bytes());
    s[24..].copy_from_slice(&0x9E37_79B9_7F4A_7C15u64.to_le_bytes());
    // mix so that nearby counters give unrelated states
    let mut rng = Xoshiro256PlusPlus::from_seed(s);
    rng.jump();
    rng
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

    /// One point from `rng` into `x` (length `d`); `rng` continues after it.
    pub fn point<T: crate::Real>(&self, rng: &mut Xoshiro256PlusPlus, x: &mut [T]) {
        let d = self.dim;
        let mut norm2 = 0.0f64;
        for v in x.iter_mut() {
            let g: f64 = StandardNormal.sample(rng);
            norm2 += g * g;
            *v = T::c(g);
        }
        let u: f64 = rng.random();
        let rho = match self.kind {
            SamplerKind::RadiusUniform => u,
            SamplerKind::VolumeUniform => u.powf(1.0 / d as f64),
        };
        let scale = T::c(rho / norm2.sqrt().max(f64::MIN_POSITIVE));
        x.iter_mut().for_each(|v| *v *= scale);
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
