//! Adam and learning-rate schedules (spec equations §2).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Learning-rate schedule over `E` total steps; `k` counts updates already applied.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    /// `lr(k) = lr`.
    Constant,
    /// `lr(k) = lr·(1 − k/E)`: the paper's default (first update `lr`, last `lr/E`).
    Linear,
    /// `lr(k) = lr·½(1 + cos(πk/E))`.
    Cosine,
    /// `lr(k) = lr·γ^k` with `γ = exp_decay` (the paper's text: γ = 0.9995).
    Exponential,
    /// `lr(k) = lr·γ^{k/E}`: what the published parabolic runs used (γ = 0.9995: effectively
    /// constant; spec §7.5).
    ExponentialPerRun,
}

impl Schedule {
    /// Parses `constant`, `linear`, `cosine` or `exponential`.
    pub fn parse(s: &str) -> Option<Schedule> {
        match s {
            "constant" => Some(Schedule::Constant),
            "linear" => Some(Schedule::Linear),
            "cosine" => Some(Schedule::Cosine),
            "exponential" => Some(Schedule::Exponential),
            "exponential-per-run" => Some(Schedule::ExponentialPerRun),
            _ => None,
        }
    }

    /// The learning rate of update `k` of `total`.
    pub fn lr(self, base: f64, k: usize, total: usize, exp_decay: f64) -> f64 {
        let frac = k as f64 / total.max(1) as f64;
        match self {
            Schedule::Constant => base,
            Schedule::Linear => base * (1.0 - frac),
            Schedule::Cosine => base * 0.5 * (1.0 + (std::f64::consts::PI * frac).cos()),
            Schedule::Exponential => base * exp_decay.powi(k as i32),
            Schedule::ExponentialPerRun => base * exp_decay.powf(frac),
        }
    }
}

/// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with bias correction; moments stored and each update
/// computed in `S` (the training precision: f32 moments halve the optimiser's memory traffic
/// and its arithmetic, as in the JAX code).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<S = f64> {
    /// First moments.
    pub m: Vec<S>,
    /// Second moments.
    pub v: Vec<S>,
    /// Updates applied so far.
    pub step: usize,
}

impl<S: crate::Real> Adam<S> {
    /// Zero state for `n` parameters.
    pub fn new(n: usize) -> Adam<S> {
        Adam {
            m: vec![S::zero(); n],
            v: vec![S::zero(); n],
            step: 0,
        }
    }

    /// One update `θ ← θ − lr·m̂/(√v̂ + ε)`.
    pub fn update<T: crate::Real>(&mut self, params: &mut [T], grad: &[T], lr: f64) {
        let step = self.next_step(lr);
        // element-wise, so chunking over threads changes nothing in the result
        const CHUNK: usize = 1 << 14;
        params
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| step.apply(p, g, m, v));
        self.step += 1;
    }

    /// [`Adam::update`] fused with the gradient's production and its norm: the first `streamed`
    /// entries of the gradient are not read from `grad` but made by `fill(range, dst)` a chunk at
    /// a time (each chunk used while in cache, never written to memory); the others are read
    /// from `grad` (whose first `streamed` entries are scratch, written where a chunk straddles
    /// the boundary). Returns `‖g‖₂` with the bits of [`gradient_norm`]. The update happens
    /// whatever the norm: a caller that must not update on a non-finite gradient checks it on
    /// the result and discards the parameters (or uses [`Adam::update`]).
    pub fn update_streamed<T: crate::Real>(
        &mut self,
        params: &mut [T],
        grad: &mut [T],
        lr: f64,
        (streamed, fill): (usize, GradientFill<'_, T>),
        parts: &mut Vec<f64>,
    ) -> f64 {
        let step = self.next_step(lr);
        params
            .par_chunks_mut(NORM_CHUNK)
            .zip(grad.par_chunks_mut(NORM_CHUNK))
            .zip(self.m.par_chunks_mut(NORM_CHUNK))
            .zip(self.v.par_chunks_mut(NORM_CHUNK))
            .enumerate()
            .map(|(i, (((p, g), m), v))| {
                let lo = i * NORM_CHUNK;
                let hi = lo + p.len();
                if hi <= streamed {
                    let mut tile = crate::tensor::Scratch::<T>::reused(p.len());
                    fill(lo..hi, &mut tile);
                    step.apply(p, &tile, m, v);
                    crate::pde::vecmath::sum_squares4(&tile)
                } else {
                    if lo < streamed {
                        fill(lo..streamed, &mut g[..streamed - lo]);
                    }
                    step.apply(p, g, m, v);
                    crate::pde::vecmath::sum_squares4(g)
                }
            })
            .collect_into_vec(parts);
        self.step += 1;
        parts.iter().sum::<f64>().sqrt()
    }

    /// The constants of the next update at learning rate `lr`.
    fn next_step(&self, lr: f64) -> AdamStep {
        let k = self.step as i32 + 1;
        let (c1, c2) = (1.0 - B1.powi(k), 1.0 - B2.powi(k));
        // lr·(m/c1)/(√(v/c2) + ε) with the bias corrections folded into two constants: one
        // square root and one division per parameter
        AdamStep {
            step: lr / c1,
            root_c2: 1.0 / c2.sqrt(),
        }
    }
}

/// Writes the gradient's entries `range` into `dst` (`range.len()` values): how
/// [`Adam::update_streamed`] gets the part of the gradient that is never stored whole.
pub type GradientFill<'a, T> = &'a (dyn Fn(std::ops::Range<usize>, &mut [T]) + Sync);

const B1: f64 = 0.9;
const B2: f64 = 0.999;
const EPS: f64 = 1e-8;

/// One update's constants: `lr/(1 − β₁ᵏ)` and `1/√(1 − β₂ᵏ)`.
#[derive(Clone, Copy, Debug)]
struct AdamStep {
    step: f64,
    root_c2: f64,
}

impl AdamStep {
    /// The update of a run of parameters from their gradient and moments, in the widest vector
    /// registers this CPU has (the same bits: IEEE square roots and divisions, no contraction).
    fn apply<T: crate::Real, S: crate::Real>(self, p: &mut [T], g: &[T], m: &mut [S], v: &mut [S]) {
        crate::widest_fn! {
            fn lanes<T: crate::Real, S: crate::Real>(step: AdamStep, p: &mut [T], g: &[T], m: &mut [S], v: &mut [S]) -> () = apply_lanes
        }
        lanes(self, p, g, m, v)
    }
}

/// [`AdamStep::apply`]'s body (inlined into its widest build), in the moments' precision `S`:
/// f32 for f32 training, as the JAX code's optax (its square root and division in f32 lanes
/// cost half of f64's, `cargo bench --bench step_parts -- adam`), f64 for f64 training.
#[inline(always)]
fn apply_lanes<T: crate::Real, S: crate::Real>(step: AdamStep, p: &mut [T], g: &[T], m: &mut [S], v: &mut [S]) {
    let (b1, b2) = (S::c(B1), S::c(B2));
    let (c1, c2) = (S::c(1.0 - B1), S::c(1.0 - B2));
    let (size, root_c2, eps) = (S::c(step.step), S::c(step.root_c2), S::c(EPS));
    for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = S::c(g.as_f64());
        let mn = b1 * *m + c1 * g;
        let vn = b2 * *v + c2 * g * g;
        *m = mn;
        *v = vn;
        let upd = size * mn / (vn.sqrt() * root_c2 + eps);
        *p -= T::c(upd.as_f64());
    }
}

/// Entries per partial sum of [`gradient_norm`] (and of [`Adam::update_streamed`]'s norm).
const NORM_CHUNK: usize = 1 << 16;

/// `‖g‖₂` of the flat gradient: squares summed in fixed chunks in parallel, the chunk sums
/// added in order, so the value does not depend on the thread count; `parts` is reused.
pub fn gradient_norm<T: crate::Real>(grad: &[T], parts: &mut Vec<f64>) -> f64 {
    // squares in f64: an f32 square overflows beyond |g| ≈ 1.8·10¹⁹
    grad.par_chunks(NORM_CHUNK)
        .map(crate::pde::vecmath::sum_squares4)
        .collect_into_vec(parts);
    parts.iter().sum::<f64>().sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        assert_eq!(Schedule::Linear.lr(1e-3, 0, 10, 0.0), 1e-3);
        assert!((Schedule::Linear.lr(1e-3, 9, 10, 0.0) - 1e-4).abs() < 1e-18);
        assert!((Schedule::Cosine.lr(1.0, 5, 10, 0.0) - 0.5).abs() < 1e-15);
        assert!((Schedule::Exponential.lr(1.0, 2, 10, 0.5) - 0.25).abs() < 1e-15);
        assert_eq!(Schedule::Constant.lr(0.1, 7, 10, 0.0), 0.1);
        assert_eq!(Schedule::parse("cosine"), Some(Schedule::Cosine));
        assert_eq!(Schedule::parse("step"), None);
    }

    /// The streamed update (gradient made a chunk at a time, norm on the way) leaves the same
    /// parameters, moments and norm as the norm and update of the whole gradient, whether the
    /// streamed part ends on a chunk boundary, inside a chunk or covers everything.
    #[test]
    fn streamed_update_equals_norm_then_update() {
        let n = 3 * NORM_CHUNK + 12_345;
        let g: Vec<f32> = (0..n).map(|i| (i as f32 * 0.0137).sin() * 1e-2).collect();
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.71).cos()).collect();
        for streamed in [0, NORM_CHUNK, 2 * NORM_CHUNK + 999, n] {
            let (mut want_p, mut want) = (p0.clone(), Adam::<f32>::new(n));
            let (mut got_p, mut got) = (p0.clone(), Adam::<f32>::new(n));
            let mut parts = Vec::new();
            for step in 0..3 {
                let lr = 1e-3 * (step + 1) as f64;
                let want_norm = gradient_norm(&g, &mut parts);
                want.update(&mut want_p, &g, lr);
                // the streamed part of `grad` holds garbage: it must be neither read nor needed
                let mut grad = g.clone();
                grad[..streamed].fill(f32::NAN);
                let fill = |r: std::ops::Range<usize>, dst: &mut [f32]| dst.copy_from_slice(&g[r]);
                let got_norm = got.update_streamed(&mut got_p, &mut grad, lr, (streamed, &fill), &mut parts);
                assert_eq!(got_norm.to_bits(), want_norm.to_bits(), "streamed {streamed}");
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got_p), bits(&want_p), "streamed {streamed}");
            assert_eq!(
                (bits(&got.m), bits(&got.v), got.step),
                (bits(&want.m), bits(&want.v), 3)
            );
        }
        // and the norm is the norm
        let direct = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
        assert!((gradient_norm(&g, &mut Vec::new()) - direct).abs() < 1e-12 * direct);
    }

    /// The f32 update (moments and arithmetic in f32) follows the f64 one to f32 rounding: f32
    /// parameters, 200 steps on gradients of mixed scales (1e-6 to 1e2, both signs), the same
    /// parameters updated by `Adam<f64>` (f64 moments and arithmetic) as the reference. The
    /// parameters (half of them travelling 0.2) agree within 5e-7·(1 + |p|) (a few f32 roundings;
    /// an update 1e-5 too large would be off by 2e-6), `m` within 1e-6 of the gradient's scale,
    /// `v` within 1e-5 relative (200 roundings of f32).
    #[test]
    fn f32_update_follows_the_f64_update() {
        let n = 1000;
        let scale = |i: usize| 10f64.powi((i % 9) as i32 - 6);
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.3).cos()).collect();
        let (mut p32, mut p64) = (p0.clone(), p0.clone());
        let (mut a64, mut a32) = (Adam::<f64>::new(n), Adam::<f32>::new(n));
        let (lr, steps) = (1e-3, 200);
        for step in 0..steps {
            // even entries keep their sign (their parameters travel ≈ lr a step), odd ones oscillate
            let g: Vec<f32> = (0..n)
                .map(|i| {
                    let wave = ((i * 7 + step * 13) as f64 * 0.37).sin();
                    let g = if i % 2 == 0 {
                        (1.5 + wave) * (-1f64).powi(i as i32 / 2)
                    } else {
                        wave
                    };
                    (g * scale(i)) as f32
                })
                .collect();
            a64.update(&mut p64, &g, lr);
            a32.update(&mut p32, &g, lr);
        }
        for i in 0..n {
            let (x, y) = (p32[i] as f64, p64[i] as f64);
            assert!((x - y).abs() <= 5e-7 * (1.0 + y.abs()), "p[{i}]: {x} vs {y}");
            // moments: EMAs of oscillating gradients cancel, so measured against the gradient's scale
            let (m, v) = ((a32.m[i] as f64, a64.m[i]), (a32.v[i] as f64, a64.v[i]));
            assert!((m.0 - m.1).abs() <= 1e-6 * scale(i), "m[{i}]: {} vs {}", m.0, m.1);
            assert!((v.0 - v.1).abs() <= 1e-5 * v.1, "v[{i}]: {} vs {}", v.0, v.1);
        }
        // and the even parameters travelled ≈ lr·steps (Adam's step ≈ lr·E g/√E g²)
        let moved = (0..n)
            .step_by(2)
            .filter(|&i| (p32[i] - p0[i]).abs() > 0.5 * (lr * steps as f64) as f32);
        assert_eq!(moved.count(), n / 2);
    }

    #[test]
    fn adam_first_step_moves_by_lr_times_sign() {
        // with bias correction the first step is lr·g/(|g| + ε)
        let mut adam = Adam::<f64>::new(2);
        let mut p = vec![1.0f64, 1.0];
        adam.update(&mut p, &[0.5, -2.0], 0.1);
        assert!((p[0] - 0.9).abs() < 1e-7 && (p[1] - 1.1).abs() < 1e-7);
        // minimises a quadratic
        let mut adam = Adam::<f64>::new(1);
        let mut x = vec![3.0f64];
        for _ in 0..2000 {
            let g = vec![2.0 * (x[0] - 1.0)];
            adam.update(&mut x, &g, 0.01);
        }
        assert!((x[0] - 1.0).abs() < 1e-3);
    }
}
