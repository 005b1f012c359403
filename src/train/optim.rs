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

    /// The learning rate of update `k` of a decay over `total` updates; past them (an extended
    /// run) the rate the decay ended at.
    pub fn lr(self, base: f64, k: usize, total: usize, exp_decay: f64) -> f64 {
        let frac = k.min(total.max(1) - 1) as f64 / total.max(1) as f64;
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
                    crate::lanes::sum_squares4(&tile)
                } else {
                    if lo < streamed {
                        fill(lo..streamed, &mut g[..streamed - lo]);
                    }
                    step.apply(p, g, m, v);
                    crate::lanes::sum_squares4(g)
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

/// An exponential moving average of the parameters (Polyak averaging): the model a run leaves
/// behind. After the `k`-th update (counting from 1) it becomes `ē ← b·ē + (1 − b)·θ` with
/// `b = min(β, (1 + k)/(10 + k))` (the average of the steps so far while `k` is small, then an
/// EMA of horizon `1/(1 − β)` steps). With `every = n > 1` it is updated only after every `n`-th
/// update, with `b` raised to the `n`-th power (the same horizon at `1/n` of the memory traffic:
/// for networks of 10⁸ parameters).
#[derive(Clone, Debug)]
pub struct Ema<T> {
    /// The averaged network.
    pub net: crate::nn::Mlp<T>,
    /// `β`.
    pub decay: f64,
    /// Updates between two averaging steps.
    pub every: usize,
}

impl<T: crate::Real> Ema<T> {
    /// Updates between averaging steps for a network of `n` parameters: 1 up to 4·2²⁰
    /// parameters, then one per 4·2²⁰ (at most 16).
    pub fn every_for(n: usize) -> usize {
        (n >> 22).clamp(1, 16)
    }

    /// The weight `b` of the old average after update `k` (from 1), or `None` when this update
    /// is not averaged.
    pub fn weight(&self, k: usize) -> Option<f64> {
        if k == 0 || !k.is_multiple_of(self.every) {
            return None;
        }
        let b = self.decay.min((1.0 + k as f64) / (10.0 + k as f64));
        Some(b.powi(self.every as i32))
    }

    /// Folds the parameters after update `k` (from 1) into the average.
    pub fn update(&mut self, params: &[T], k: usize) {
        let Some(b) = self.weight(k) else { return };
        let (b, a) = (T::c(b), T::c(1.0 - b));
        self.net
            .params_mut()
            .par_chunks_mut(1 << 14)
            .zip(params.par_chunks(1 << 14))
            .for_each(|(e, p)| e.iter_mut().zip(p).for_each(|(e, &p)| *e = b * *e + a * p));
    }
}

/// The output head's step size: the network is trained as `N = c + s·N_raw` (the level `c` and
/// scale `s` set before the first step, [`crate::train::head`]), which is Adam on `N_raw`'s
/// parameters. Those are the stored ones everywhere but in the last affine layer (from `start`
/// on), whose stored values are `s·` the raw ones (plus `c` in the bias): Adam there sees the raw
/// gradient (`s·` the stored one) and its step, made in raw units, moves the stored values `s·`
/// as far.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeadStep {
    /// Where the last affine layer starts in the flat parameter vector.
    pub start: usize,
    /// `s`.
    pub scale: f64,
}

impl HeadStep {
    /// Whether it changes anything (`s ≠ 1`).
    pub fn active(&self) -> bool {
        self.scale != 1.0
    }

    /// The raw gradient from the stored one, in place (before the norm and the update).
    pub fn raw_gradient<T: crate::Real>(&self, grad: &mut [T]) {
        let s = T::c(self.scale);
        grad[self.start..].iter_mut().for_each(|g| *g *= s);
    }

    /// After the update: the last layer's step `s·` what the optimiser made (`before` holds the
    /// last layer's values before the update).
    pub fn scale_step<T: crate::Real>(&self, params: &mut [T], before: &[T]) {
        let s = self.scale;
        for (p, &b) in params[self.start..].iter_mut().zip(before) {
            *p = T::c(b.as_f64() + s * (p.as_f64() - b.as_f64()));
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
        .map(crate::lanes::sum_squares4)
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
        // past the decay (an extended run): the rate it ended at
        assert_eq!(
            Schedule::Linear.lr(1e-3, 15, 10, 0.0),
            Schedule::Linear.lr(1e-3, 9, 10, 0.0)
        );
        assert_eq!(
            Schedule::Cosine.lr(1.0, 10, 10, 0.0),
            Schedule::Cosine.lr(1.0, 9, 10, 0.0)
        );
        assert!((Schedule::Exponential.lr(1.0, 12, 10, 0.5) - 0.5f64.powi(12)).abs() < 1e-18);
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

    /// The moving average equals its definition, written out: `ē₀ = θ₀`, then after update `k`
    /// `ē ← b_k ē + (1 − b_k) θ_k`, `b_k = min(β, (1 + k)/(10 + k))`; with `every = 3` only after
    /// updates 3, 6, … with `b_k³`.
    #[test]
    fn moving_average_equals_its_definition() {
        let arch = crate::nn::Architecture::mlp(2, 3, 2);
        let net = crate::nn::Mlp::<f64>::new(arch, 1).unwrap();
        let n = net.num_params();
        let theta = |k: usize| -> Vec<f64> {
            (0..n)
                .map(|i| ((i * 7 + k * 3) as f64 * 0.61).sin() * k as f64)
                .collect()
        };
        for every in [1, 3] {
            let mut ema = Ema {
                net: net.clone(),
                decay: 0.95,
                every,
            };
            let mut want: Vec<f64> = net.params().to_vec();
            for k in 1..=40 {
                ema.update(&theta(k), k);
                if k % every == 0 {
                    let b = 0.95f64.min((1.0 + k as f64) / (10.0 + k as f64)).powi(every as i32);
                    want.iter_mut()
                        .zip(theta(k))
                        .for_each(|(e, t)| *e = b * *e + (1.0 - b) * t);
                }
            }
            for (got, want) in ema.net.params().iter().zip(&want) {
                assert!(
                    (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
                    "every {every}: {got} vs {want}"
                );
            }
            // the warm-up: the first update weighs the new parameters 9/11
            assert_eq!(
                Ema {
                    every: 1,
                    ..ema.clone()
                }
                .weight(1),
                Some(2.0 / 11.0)
            );
            assert_eq!(ema.weight(0), None);
        }
        assert_eq!(Ema::<f32>::every_for(1000), 1);
        assert_eq!(Ema::<f32>::every_for(128 << 20), 16);
    }

    /// Adam with the head's step on the stored parameters is Adam on the raw ones of
    /// `N = c + s·N_raw`: a linear model `N = Σ w_i x_i + b` with its "last layer" `(w, b)`
    /// stored as `s·w_raw`, `s·b_raw + c`, trained on a least-squares loss; both runs stay related
    /// by exactly that map (to rounding) through 50 steps.
    #[test]
    fn head_step_is_adam_on_the_raw_parameters() {
        let (s, c) = (37.5, -120.0);
        let xs: Vec<[f64; 2]> = (0..8)
            .map(|i| [(i as f64 * 0.9).sin(), (i as f64 * 0.4).cos()])
            .collect();
        let target = |x: &[f64; 2]| -80.0 + 30.0 * x[0] - 12.0 * x[1];
        // stored [w0, w1, b]: dL/dθ of mean (N − y)²
        let grad = |p: &[f64]| {
            let mut g = [0.0; 3];
            for x in &xs {
                let r = p[0] * x[0] + p[1] * x[1] + p[2] - target(x);
                g[0] += 2.0 * r * x[0] / 8.0;
                g[1] += 2.0 * r * x[1] / 8.0;
                g[2] += 2.0 * r / 8.0;
            }
            g
        };
        let mut raw = vec![0.3, -0.2, 0.1];
        let mut stored = vec![s * raw[0], s * raw[1], s * raw[2] + c];
        let (mut a_raw, mut a_stored) = (Adam::<f64>::new(3), Adam::<f64>::new(3));
        let head = HeadStep { start: 0, scale: s };
        for _ in 0..50 {
            // the raw model's loss: N = c + s·(w_raw·x + b_raw); its gradient is s· the stored one
            let as_stored = [s * raw[0], s * raw[1], s * raw[2] + c];
            let g_raw: Vec<f64> = grad(&as_stored).iter().map(|g| s * g).collect();
            a_raw.update(&mut raw, &g_raw, 1e-2);
            let mut g = grad(&stored).to_vec();
            head.raw_gradient(&mut g);
            let before = stored.clone();
            a_stored.update(&mut stored, &g, 1e-2);
            head.scale_step(&mut stored, &before);
        }
        let want = [s * raw[0], s * raw[1], s * raw[2] + c];
        for i in 0..3 {
            assert!(
                (stored[i] - want[i]).abs() < 1e-9 * (1.0 + want[i].abs()),
                "{i}: {} vs {}",
                stored[i],
                want[i]
            );
        }
        // and it moved: the stored parameters travelled far more than 50 plain steps of 1e-2
        assert!((stored[2] - c - s * 0.1).abs() > 5.0, "{stored:?}");
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
