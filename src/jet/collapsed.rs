//! Collapsed second-order propagation (the forward-Laplacian trick): for 2-jets `(x; v_d, 0)`
//! sharing a point, only `Σ_d c₂` is needed, so it is carried once per point instead of once per
//! direction. Normalised coefficients; `Σ_d y₂ = 2·sum2`.
//!
//! Rules (`h₂ = φ''(u₀)/2`, `h₃ = φ'''(u₀)/6`, `g₀ = φ'(u₀)`):
//! * affine: every part maps linearly (`first·W`, `sum2·W`), bias on the primal only;
//! * unary: `y₁,d = g₀ u₁,d` and `sum2_y = g₀ sum2_u + h₂ Σ_d u₁,d²`.

use super::rules::{Unary, unary_forward};
use super::support::Support;
use crate::real::Real;
use crate::tensor::{self, Write};
use rayon::prelude::*;

/// A batch of collapsed 2-jets: primal and summed second coefficient per point, first-order
/// coefficients per row (`row = point·dirs + direction`).
#[derive(Clone, Debug, Default)]
pub struct CollapsedJet<T> {
    /// Points.
    pub points: usize,
    /// Directions per point.
    pub dirs: usize,
    /// Features.
    pub width: usize,
    /// `[points × width]`.
    pub primal: Vec<T>,
    /// `[rows × width]`, normalised `c₁` (equal to `y₁`).
    pub first: Vec<T>,
    /// `[points × width]`, `Σ_d c₂` over the first `summed` directions.
    pub sum2: Vec<T>,
    /// How many leading directions enter `sum2`; the others are carried to first order only
    /// (e.g. `e_t` for a time derivative beside a spatial Laplacian).
    pub summed: usize,
}

impl<T: Real> CollapsedJet<T> {
    /// Sets the shape; contents unspecified until written.
    /// Every direction is summed until `summed` is set.
    pub fn reshape(&mut self, points: usize, dirs: usize, width: usize) {
        self.points = points;
        self.dirs = dirs;
        self.summed = dirs;
        self.width = width;
        self.primal.resize(points * width, T::zero());
        self.first.resize(points * dirs * width, T::zero());
        self.sum2.resize(points * width, T::zero());
    }

    /// A zero jet shaped like `other`.
    pub fn zeros_like(other: &CollapsedJet<T>) -> CollapsedJet<T> {
        CollapsedJet {
            points: other.points,
            dirs: other.dirs,
            summed: other.summed,
            width: other.width,
            primal: vec![T::zero(); other.primal.len()],
            first: vec![T::zero(); other.first.len()],
            sum2: vec![T::zero(); other.sum2.len()],
        }
    }

    /// `Σ_d y₂` (derivative convention) of `feature` at `point`: e.g. the Laplacian for `v_d = e_d`.
    pub fn second_sum(&self, point: usize, feature: usize) -> T {
        T::c(2.0) * self.sum2[point * self.width + feature]
    }
}

/// `(g₀, h₂, h₃)` of a unary rule at `u₀`, from the rule table (series of `φ(u₀ + s)`).
fn local_derivatives<T: Real>(rule: Unary, u0: T) -> (T, T, T, T) {
    let u = [u0, T::one(), T::zero(), T::zero()];
    let (mut y, mut g) = ([T::zero(); 4], [T::zero(); 4]);
    unary_forward(rule, &u, Support::full(3), None, &mut y, &mut g);
    (y[0], y[1], y[2], y[3])
}

/// Collapsed activation: also stores `(g₀, h₂, h₃)` per point and feature in `local` (`[3 × points × w]`).
pub fn collapsed_activation_forward<T: Real>(
    rule: Unary,
    z: &CollapsedJet<T>,
    y: &mut CollapsedJet<T>,
    local: &mut Vec<T>,
) {
    let (p_n, dirs, w) = (z.points, z.dirs, z.width);
    y.reshape(p_n, dirs, w);
    y.summed = z.summed;
    let summed = z.summed;
    local.resize(3 * p_n * w, T::zero());
    let (lg, rest) = local.split_at_mut(p_n * w);
    let (lh2, lh3) = rest.split_at_mut(p_n * w);
    y.primal
        .par_chunks_mut(w)
        .zip(y.first.par_chunks_mut(dirs * w))
        .zip(y.sum2.par_chunks_mut(w))
        .zip(
            lg.par_chunks_mut(w)
                .zip(lh2.par_chunks_mut(w))
                .zip(lh3.par_chunks_mut(w)),
        )
        .enumerate()
        .for_each(|(p, (((yp, y1), ys), ((g0, h2), h3)))| {
            for f in 0..w {
                let (v, g, a, b) = local_derivatives(rule, z.primal[p * w + f]);
                yp[f] = v;
                g0[f] = g;
                h2[f] = a;
                h3[f] = b;
                let mut sumsq = T::zero();
                // every direction summed (the common case) keeps one tight loop
                let ns = if summed == dirs { dirs } else { summed };
                for d in 0..ns {
                    let u1 = z.first[(p * dirs + d) * w + f];
                    y1[d * w + f] = g * u1;
                    sumsq += u1 * u1;
                }
                if ns < dirs {
                    for d in ns..dirs {
                        y1[d * w + f] = g * z.first[(p * dirs + d) * w + f];
                    }
                }
                ys[f] = g * z.sum2[p * w + f] + a * sumsq;
            }
        });
}

/// Backward of [`collapsed_activation_forward`].
pub fn collapsed_activation_backward<T: Real>(
    z: &CollapsedJet<T>,
    local: &[T],
    ybar: &CollapsedJet<T>,
    zbar: &mut CollapsedJet<T>,
) {
    let (p_n, dirs, w) = (z.points, z.dirs, z.width);
    zbar.reshape(p_n, dirs, w);
    zbar.summed = z.summed;
    let summed = z.summed;
    let (lg, rest) = local.split_at(p_n * w);
    let (lh2, lh3) = rest.split_at(p_n * w);
    zbar.primal
        .par_chunks_mut(w)
        .zip(zbar.first.par_chunks_mut(dirs * w))
        .zip(zbar.sum2.par_chunks_mut(w))
        .enumerate()
        .for_each(|(p, ((zp, z1), zs))| {
            for f in 0..w {
                let i = p * w + f;
                let (g, h2, h3) = (lg[i], lh2[i], lh3[i]);
                let s2bar = ybar.sum2[i];
                let (mut sumsq, mut cross) = (T::zero(), T::zero());
                let ns = if summed == dirs { dirs } else { summed };
                for d in 0..ns {
                    let r = (p * dirs + d) * w + f;
                    let u1 = z.first[r];
                    let y1bar = ybar.first[r];
                    z1[d * w + f] = g * y1bar + T::c(2.0) * h2 * s2bar * u1;
                    sumsq += u1 * u1;
                    cross += y1bar * u1;
                }
                if ns < dirs {
                    for d in ns..dirs {
                        let r = (p * dirs + d) * w + f;
                        let y1bar = ybar.first[r];
                        z1[d * w + f] = g * y1bar;
                        cross += y1bar * z.first[r];
                    }
                }
                zs[f] = g * s2bar;
                zp[f] = g * ybar.primal[i]
                    + T::c(2.0) * h2 * cross
                    + s2bar * (T::c(2.0) * h2 * z.sum2[i] + T::c(3.0) * h3 * sumsq);
            }
        });
}

/// Collapsed affine layer `z = h·W + b`.
pub fn collapsed_affine_forward<T: Real>(
    h: &CollapsedJet<T>,
    weight: &[T],
    bias: &[T],
    out: usize,
    z: &mut CollapsedJet<T>,
) {
    let fan_in = h.width;
    z.reshape(h.points, h.dirs, out);
    z.summed = h.summed;
    tensor::affine(h.points, fan_in, out, &h.primal, weight, bias, &mut z.primal);
    tensor::matmul(
        h.points * h.dirs,
        fan_in,
        out,
        &h.first,
        weight,
        &mut z.first,
        Write::Overwrite,
    );
    tensor::matmul(h.points, fan_in, out, &h.sum2, weight, &mut z.sum2, Write::Overwrite);
}

/// Backward of [`collapsed_affine_forward`].
pub fn collapsed_affine_backward<T: Real>(
    h: &CollapsedJet<T>,
    zbar: &CollapsedJet<T>,
    weight: &[T],
    weight_grad: &mut [T],
    bias_grad: &mut [T],
    hbar: &mut CollapsedJet<T>,
) {
    let (fan_in, out) = (h.width, zbar.width);
    let (p_n, rows) = (h.points, h.points * h.dirs);
    tensor::matmul_tn(
        p_n,
        fan_in,
        out,
        &h.primal,
        &zbar.primal,
        weight_grad,
        Write::Accumulate,
    );
    tensor::matmul_tn(rows, fan_in, out, &h.first, &zbar.first, weight_grad, Write::Accumulate);
    tensor::matmul_tn(p_n, fan_in, out, &h.sum2, &zbar.sum2, weight_grad, Write::Accumulate);
    tensor::add_column_sums(out, &zbar.primal, bias_grad);
    hbar.reshape(h.points, h.dirs, fan_in);
    hbar.summed = h.summed;
    tensor::matmul_nt(
        p_n,
        out,
        fan_in,
        &zbar.primal,
        weight,
        &mut hbar.primal,
        Write::Overwrite,
    );
    tensor::matmul_nt(
        rows,
        out,
        fan_in,
        &zbar.first,
        weight,
        &mut hbar.first,
        Write::Overwrite,
    );
    tensor::matmul_nt(p_n, out, fan_in, &zbar.sum2, weight, &mut hbar.sum2, Write::Overwrite);
}
