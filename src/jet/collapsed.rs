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
/// coefficients per row (`row = point·dirs + direction`). The three parts are row blocks of one
/// buffer — `[primal: points | first: points·dirs | sum2: points] × width` — so an affine layer is
/// one product over all of them.
#[derive(Clone, Debug, Default)]
pub struct CollapsedJet<T> {
    /// Points.
    pub points: usize,
    /// Directions per point.
    pub dirs: usize,
    /// Features.
    pub width: usize,
    /// How many leading directions enter `sum2`; the others are carried to first order only
    /// (e.g. `e_t` for a time derivative beside a spatial Laplacian).
    pub summed: usize,
    data: Vec<T>,
}

impl<T: Real> CollapsedJet<T> {
    /// Sets the shape; contents unspecified until written.
    /// Every direction is summed until `summed` is set.
    pub fn reshape(&mut self, points: usize, dirs: usize, width: usize) {
        self.points = points;
        self.dirs = dirs;
        self.summed = dirs;
        self.width = width;
        self.data.resize(self.rows() * width, T::zero());
    }

    /// A zero jet shaped like `other`.
    pub fn zeros_like(other: &CollapsedJet<T>) -> CollapsedJet<T> {
        CollapsedJet {
            points: other.points,
            dirs: other.dirs,
            summed: other.summed,
            width: other.width,
            data: vec![T::zero(); other.data.len()],
        }
    }

    /// Rows of the whole buffer: `points·(dirs + 2)`.
    pub fn rows(&self) -> usize {
        self.points * (self.dirs + 2)
    }

    /// The whole buffer `[rows × width]` (primal, first, sum2 row blocks).
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// The whole buffer, mutable.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    fn bounds(&self) -> (usize, usize) {
        let p = self.points * self.width;
        (p, p + self.points * self.dirs * self.width)
    }

    /// `[points × width]`: the primal.
    pub fn primal(&self) -> &[T] {
        &self.data[..self.bounds().0]
    }

    /// `[points·dirs × width]`: normalised `c₁` (equal to `y₁`).
    pub fn first(&self) -> &[T] {
        let (a, b) = self.bounds();
        &self.data[a..b]
    }

    /// `[points × width]`: `Σ_d c₂` over the first `summed` directions.
    pub fn sum2(&self) -> &[T] {
        &self.data[self.bounds().1..]
    }

    /// The three parts, mutable: `(primal, first, sum2)`.
    pub fn parts_mut(&mut self) -> (&mut [T], &mut [T], &mut [T]) {
        let (a, b) = self.bounds();
        let (primal, rest) = self.data.split_at_mut(a);
        let (first, sum2) = rest.split_at_mut(b - a);
        (primal, first, sum2)
    }

    /// The primal, mutable.
    pub fn primal_mut(&mut self) -> &mut [T] {
        self.parts_mut().0
    }

    /// The first-order rows, mutable.
    pub fn first_mut(&mut self) -> &mut [T] {
        self.parts_mut().1
    }

    /// The summed second order, mutable.
    pub fn sum2_mut(&mut self) -> &mut [T] {
        self.parts_mut().2
    }

    /// `Σ_d y₂` (derivative convention) of `feature` at `point`: e.g. the Laplacian for `v_d = e_d`.
    pub fn second_sum(&self, point: usize, feature: usize) -> T {
        T::c(2.0) * self.sum2()[point * self.width + feature]
    }
}

/// `(g₀, h₂, h₃)` of a unary rule at `u₀`, from the rule table (series of `φ(u₀ + s)`).
fn local_derivatives<T: Real>(rule: Unary, u0: T) -> (T, T, T, T) {
    let u = [u0, T::one(), T::zero(), T::zero()];
    let (mut y, mut g) = ([T::zero(); 4], [T::zero(); 4]);
    unary_forward(rule, &u, Support::full(3), None, &mut y, &mut g);
    (y[0], y[1], y[2], y[3])
}

/// `(φ, g₀, h₂, h₃)` of a row of pre-activations `z` (normalised: `g₀ = φ'`, `h₂ = φ''/2`,
/// `h₃ = φ'''/6`): closed forms for tanh (`g₀ = 1 − y²`, `h₂ = −y·g₀`, `h₃ = g₀·(y² − 1/3)`), the
/// rule table for the others.
fn local_row<T: Real>(rule: Unary, z: &[T], y: &mut [T], g: &mut [T], h2: &mut [T], h3: &mut [T]) {
    if rule == Unary::Tanh {
        let (one, third) = (T::one(), T::c(1.0 / 3.0));
        T::tanh_slice(z, y);
        for f in 0..z.len() {
            let t = y[f];
            let d = one - t * t;
            y[f] = t;
            g[f] = d;
            h2[f] = -t * d;
            h3[f] = d * (t * t - third);
        }
    } else {
        for f in 0..z.len() {
            (y[f], g[f], h2[f], h3[f]) = local_derivatives(rule, z[f]);
        }
    }
}

/// Collapsed activation: also stores `(g₀, h₂, h₃)` per point and feature in `local` (`[3 × points × w]`).
/// Row loops: each direction's first-order row is one contiguous, vectorisable pass.
pub fn collapsed_activation_forward<T: Real>(
    rule: Unary,
    z: &CollapsedJet<T>,
    y: &mut CollapsedJet<T>,
    local: &mut Vec<T>,
) {
    let (p_n, dirs, w) = (z.points, z.dirs, z.width);
    y.reshape(p_n, dirs, w);
    y.summed = z.summed;
    // the first `summed` directions enter the second-order sum
    let summed = z.summed.min(dirs);
    local.resize(3 * p_n * w, T::zero());
    let (lg, rest) = local.split_at_mut(p_n * w);
    let (lh2, lh3) = rest.split_at_mut(p_n * w);
    let (y_primal, y_first, y_sum2) = y.parts_mut();
    let (z_primal, z_first, z_sum2) = (z.primal(), z.first(), z.sum2());
    y_primal
        .par_chunks_mut(w)
        .zip(y_first.par_chunks_mut(dirs * w))
        .zip(y_sum2.par_chunks_mut(w))
        .zip(
            lg.par_chunks_mut(w)
                .zip(lh2.par_chunks_mut(w))
                .zip(lh3.par_chunks_mut(w)),
        )
        .enumerate()
        .with_min_len(tensor::min_len())
        // the thread's reusable scratch, once per task: no allocation per call
        .for_each_init(
            || tensor::Scratch::<T>::zeroed(w),
            |sumsq, (p, (((yp, y1), ys), ((g0, h2), h3)))| {
                local_row(rule, &z_primal[p * w..(p + 1) * w], yp, g0, h2, h3);
                let zf = &z_first[p * dirs * w..(p + 1) * dirs * w];
                let zs = &z_sum2[p * w..(p + 1) * w];
                forward_point((g0, h2), (zf, zs), (y1, ys), sumsq, summed);
            },
        );
}

/// One point's rows of [`collapsed_activation_forward`]: `y₁,d = g₀ u₁,d` and
/// `sum2_y = g₀ sum2_u + h₂ Σ_{d < summed} u₁,d²` (`sumsq`: scratch of one row).
#[inline(always)]
fn forward_point_lanes<T: Real>(
    (g0, h2): (&[T], &[T]),
    (zf, zs): (&[T], &[T]),
    (y1, ys): (&mut [T], &mut [T]),
    sumsq: &mut [T],
    summed: usize,
) {
    let w = g0.len();
    sumsq.fill(T::zero());
    for (d, (u, out)) in zf.chunks_exact(w).zip(y1.chunks_exact_mut(w)).enumerate() {
        for ((o, &g), &v) in out.iter_mut().zip(g0).zip(u) {
            *o = g * v;
        }
        if d < summed {
            for (q, &v) in sumsq.iter_mut().zip(u) {
                *q += v * v;
            }
        }
    }
    for (((y, &g), &z), (&h, &q)) in ys.iter_mut().zip(g0).zip(zs).zip(h2.iter().zip(sumsq.iter())) {
        *y = g * z + h * q;
    }
}

crate::widest_fn! {
    /// [`forward_point_lanes`] in the widest vector registers this CPU has (the same bits).
    fn forward_point<T: Real>(g: (&[T], &[T]), z: (&[T], &[T]), y: (&mut [T], &mut [T]), sumsq: &mut [T], summed: usize) -> () = forward_point_lanes
}

/// Backward of [`collapsed_activation_forward`] (row loops likewise).
pub fn collapsed_activation_backward<T: Real>(
    z: &CollapsedJet<T>,
    local: &[T],
    ybar: &CollapsedJet<T>,
    zbar: &mut CollapsedJet<T>,
) {
    let (p_n, dirs, w) = (z.points, z.dirs, z.width);
    zbar.reshape(p_n, dirs, w);
    zbar.summed = z.summed;
    let summed = z.summed.min(dirs);
    let (lg, rest) = local.split_at(p_n * w);
    let (lh2, lh3) = rest.split_at(p_n * w);
    let (zb_primal, zb_first, zb_sum2) = zbar.parts_mut();
    let (z_first, z_sum2) = (z.first(), z.sum2());
    let (yb_primal, yb_first, yb_sum2) = (ybar.primal(), ybar.first(), ybar.sum2());
    zb_primal
        .par_chunks_mut(w)
        .zip(zb_first.par_chunks_mut(dirs * w))
        .zip(zb_sum2.par_chunks_mut(w))
        .enumerate()
        .with_min_len(tensor::min_len())
        .for_each_init(
            || tensor::Scratch::<T>::zeroed(3 * w),
            |buf, (p, ((zp, z1), zs))| {
                let at = p * w..(p + 1) * w;
                let local = (&lg[at.clone()], &lh2[at.clone()], &lh3[at.clone()]);
                let rows = p * dirs * w..(p + 1) * dirs * w;
                let z_in = (&z_first[rows.clone()], &z_sum2[at.clone()]);
                let y_bar = (&yb_primal[at.clone()], &yb_first[rows], &yb_sum2[at]);
                backward_point(local, z_in, y_bar, (zp, z1, zs), buf, summed);
            },
        );
}

/// One point's rows of [`collapsed_activation_backward`] (`buf`: scratch of three rows).
#[inline(always)]
fn backward_point_lanes<T: Real>(
    (g, h2, h3): (&[T], &[T], &[T]),
    (zf, zs2): (&[T], &[T]),
    (yp, yf, s2bar): (&[T], &[T], &[T]),
    (zp, z1, zs): (&mut [T], &mut [T], &mut [T]),
    buf: &mut [T],
    summed: usize,
) {
    let w = g.len();
    let (two, three) = (T::c(2.0), T::c(3.0));
    let (sumsq, rest) = buf.split_at_mut(w);
    let (cross, twoh2s) = rest.split_at_mut(w);
    sumsq.fill(T::zero());
    cross.fill(T::zero());
    for ((t, &h), &s) in twoh2s.iter_mut().zip(h2).zip(s2bar) {
        *t = two * h * s;
    }
    for (d, ((u, yb), out)) in zf
        .chunks_exact(w)
        .zip(yf.chunks_exact(w))
        .zip(z1.chunks_exact_mut(w))
        .enumerate()
    {
        if d < summed {
            let lanes = out
                .iter_mut()
                .zip(g)
                .zip(yb)
                .zip(u)
                .zip(twoh2s.iter())
                .zip(sumsq.iter_mut());
            for ((((((o, &gf), &b), &v), &t), q), c) in lanes.zip(cross.iter_mut()) {
                *o = gf * b + t * v;
                *q += v * v;
                *c += b * v;
            }
        } else {
            for (((o, &gf), &b), (&v, c)) in out.iter_mut().zip(g).zip(yb).zip(u.iter().zip(cross.iter_mut())) {
                *o = gf * b;
                *c += b * v;
            }
        }
    }
    // one length for every row: no bounds checks in the loop
    let (zs, zp, yp, s2bar, cross, sumsq) = (
        &mut zs[..w],
        &mut zp[..w],
        &yp[..w],
        &s2bar[..w],
        &cross[..w],
        &sumsq[..w],
    );
    let (h2, h3, zs2) = (&h2[..w], &h3[..w], &zs2[..w]);
    for f in 0..w {
        zs[f] = g[f] * s2bar[f];
        zp[f] = g[f] * yp[f] + two * h2[f] * cross[f] + s2bar[f] * (two * h2[f] * zs2[f] + three * h3[f] * sumsq[f]);
    }
}

crate::widest_fn! {
    /// [`backward_point_lanes`] in the widest vector registers this CPU has (the same bits).
    fn backward_point<T: Real>(
        local: (&[T], &[T], &[T]),
        z: (&[T], &[T]),
        y_bar: (&[T], &[T], &[T]),
        z_bar: (&mut [T], &mut [T], &mut [T]),
        buf: &mut [T],
        summed: usize,
    ) -> () = backward_point_lanes
}

/// Collapsed affine layer `z = h·W + b`: one product over all rows, the bias on the primal only.
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
    tensor::matmul(h.rows(), fan_in, out, h.data(), weight, z.data_mut(), Write::Overwrite);
    for row in z.primal_mut().chunks_exact_mut(out) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += *b);
    }
}

/// Backward of [`collapsed_affine_forward`] (one product for the weight gradient, one for the
/// input cotangents).
pub fn collapsed_affine_backward<T: Real>(
    h: &CollapsedJet<T>,
    zbar: &CollapsedJet<T>,
    weight: &[T],
    weight_grad: &mut [T],
    bias_grad: &mut [T],
    hbar: &mut CollapsedJet<T>,
) {
    let (fan_in, out) = (h.width, zbar.width);
    let rows = h.rows();
    tensor::matmul_tn(rows, fan_in, out, h.data(), zbar.data(), weight_grad, Write::Accumulate);
    tensor::add_column_sums(out, zbar.primal(), bias_grad);
    hbar.reshape(h.points, h.dirs, fan_in);
    hbar.summed = h.summed;
    tensor::matmul_nt(
        rows,
        out,
        fan_in,
        zbar.data(),
        weight,
        hbar.data_mut(),
        Write::Overwrite,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed forms for tanh equal the rule table's series (f64, to rounding), and every
    /// other rule goes through the table.
    #[test]
    fn tanh_local_derivatives_in_closed_form_equal_the_rule_table() {
        let z: Vec<f64> = (-400..=400).map(|i| i as f64 * 0.025).collect();
        let n = z.len();
        let (mut y, mut g, mut h2, mut h3) = (vec![0.0; n], vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        for rule in [Unary::Tanh, Unary::Sin, Unary::Sigmoid] {
            local_row(rule, &z, &mut y, &mut g, &mut h2, &mut h3);
            for (i, &u) in z.iter().enumerate() {
                let want = local_derivatives(rule, u);
                for (got, want) in [(y[i], want.0), (g[i], want.1), (h2[i], want.2), (h3[i], want.3)] {
                    assert!(
                        (got - want).abs() <= 1e-14 * (1.0 + want.abs()),
                        "{rule:?} at {u}: {got} vs {want}"
                    );
                }
            }
        }
        // and by hand at 0: tanh = 0, φ' = 1, φ''/2 = 0, φ'''/6 = −1/3
        local_row(
            Unary::Tanh,
            &[0.0],
            &mut y[..1],
            &mut g[..1],
            &mut h2[..1],
            &mut h3[..1],
        );
        assert_eq!((y[0], g[0], h2[0]), (0.0, 1.0, 0.0));
        assert!((h3[0] + 1.0 / 3.0).abs() < 1e-16);
    }
}
