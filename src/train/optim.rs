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

/// Adam (β₁ = 0.9, β₂ = 0.999, ε = 1e-8) with bias correction; moments stored in `S` (the
/// training precision: f32 moments halve the optimiser's memory traffic, as in the JAX code),
/// each update computed in f64.
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
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        const EPS: f64 = 1e-8;
        let k = self.step as i32 + 1;
        let (c1, c2) = (1.0 - B1.powi(k), 1.0 - B2.powi(k));
        // lr·(m/c1)/(√(v/c2) + ε) with the bias corrections folded into two constants: one
        // square root and one division per parameter
        let (step, root_c2) = (lr / c1, 1.0 / c2.sqrt());
        // element-wise, so chunking over threads changes nothing in the result
        const CHUNK: usize = 1 << 14;
        params
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(self.m.par_chunks_mut(CHUNK))
            .zip(self.v.par_chunks_mut(CHUNK))
            .for_each(|(((p, g), m), v)| {
                for (((p, g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
                    let g = g.as_f64();
                    let mn = B1 * m.as_f64() + (1.0 - B1) * g;
                    let vn = B2 * v.as_f64() + (1.0 - B2) * g * g;
                    *m = S::c(mn);
                    *v = S::c(vn);
                    let upd = step * mn / (vn.sqrt() * root_c2 + EPS);
                    *p -= T::c(upd);
                }
            });
        self.step += 1;
    }
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
