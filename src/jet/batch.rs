//! A batch of K-jets of a vector quantity: one shared primal per point, tangent coefficients per
//! row (row = point × direction), only for the orders that can be non-zero.

use super::support::Support;
use crate::real::{Real, factorial};

/// A batch of truncated Taylor series, stored in **normalised** coefficients.
///
/// * `primal[p·width + f]` is coefficient 0 of feature `f` at point `p` (shared by its directions);
/// * `tangents[(r·S + slot)·width + f]` is coefficient `k` of row `r`, where `slot` is the
///   position of `k` in `support`, `S = support.count()` and `r = p·dirs + direction`.
///
/// Row-major over rows, then orders: the tangents of one point are one contiguous block (parallel
/// kernels split by point), and the whole buffer is one `[rows·S × width]` matrix (one GEMM per
/// layer for every order and direction at once).
///
/// Orders outside `support` are exactly zero (symbolic zeros: not stored, not computed).
#[derive(Clone, Debug, Default)]
pub struct Jet<T> {
    /// Truncation order `K`.
    pub order: usize,
    /// Number of points (distinct primals).
    pub points: usize,
    /// Directions (jets) per point.
    pub dirs: usize,
    /// Features per row.
    pub width: usize,
    /// Orders `1..=K` that may be non-zero.
    pub support: Support,
    /// `[points × width]`.
    pub primal: Vec<T>,
    /// `[rows × support.count() × width]`.
    pub tangents: Vec<T>,
}

impl<T: Real> Jet<T> {
    /// A zero jet of the given shape (reusing `self`'s buffers when large enough).
    pub fn reset(&mut self, order: usize, points: usize, dirs: usize, width: usize, support: Support) {
        self.reshape(order, points, dirs, width, support);
        self.primal.fill(T::zero());
        self.tangents.fill(T::zero());
    }

    /// Sets the shape without clearing: contents are unspecified until written (for outputs that a
    /// kernel overwrites entirely; avoids a memset per layer).
    pub fn reshape(&mut self, order: usize, points: usize, dirs: usize, width: usize, support: Support) {
        self.order = order;
        self.points = points;
        self.dirs = dirs;
        self.width = width;
        self.support = support;
        self.primal.resize(points * width, T::zero());
        self.tangents.resize(support.count() * points * dirs * width, T::zero());
    }

    /// A zero jet shaped like `other`.
    pub fn zeros_like(other: &Jet<T>) -> Jet<T> {
        let mut j = Jet::default();
        j.reset(other.order, other.points, other.dirs, other.width, other.support);
        j
    }

    /// Rows (`points × dirs`).
    pub fn rows(&self) -> usize {
        self.points * self.dirs
    }

    /// Index into `tangents` of order `k ≥ 1` of `feature` in `row`, if the order is present.
    pub fn index(&self, k: usize, row: usize, feature: usize) -> Option<usize> {
        let ns = self.support.count();
        self.support.slot(k).map(|s| (row * ns + s) * self.width + feature)
    }

    /// Normalised coefficient `c_k` of `feature` in `row` (0 for a symbolic zero).
    pub fn coefficient(&self, k: usize, row: usize, feature: usize) -> T {
        if k == 0 {
            return self.primal[(row / self.dirs) * self.width + feature];
        }
        self.index(k, row, feature).map_or(T::zero(), |i| self.tangents[i])
    }

    /// Derivative-convention output `y_k = k!·c_k` (spec §1.1) of `feature` in `row`.
    pub fn derivative(&self, k: usize, row: usize, feature: usize) -> T {
        self.coefficient(k, row, feature) * T::c(factorial(k))
    }

    /// All outputs `y_0..y_K` of `feature` in `row`, derivative convention.
    pub fn derivatives(&self, row: usize, feature: usize) -> Vec<T> {
        (0..=self.order).map(|k| self.derivative(k, row, feature)).collect()
    }

    /// Adds `value` to the cotangent of the derivative-convention output `y_k` (for a jet used as
    /// the cotangent of a network output): `∂L/∂c_k = k!·∂L/∂y_k`. Orders outside the support are
    /// ignored (their outputs are identically zero).
    pub fn add_derivative_cotangent(&mut self, k: usize, row: usize, feature: usize, value: T) {
        let scaled = value * T::c(factorial(k));
        let w = self.width;
        if k == 0 {
            let p = row / self.dirs;
            self.primal[p * w + feature] += scaled;
        } else if let Some(i) = self.index(k, row, feature) {
            self.tangents[i] += scaled;
        }
    }

    /// Converts to another precision.
    pub fn cast<U: Real>(&self) -> Jet<U> {
        Jet {
            order: self.order,
            points: self.points,
            dirs: self.dirs,
            width: self.width,
            support: self.support,
            primal: self.primal.iter().map(|x| U::c(x.as_f64())).collect(),
            tangents: self.tangents.iter().map(|x| U::c(x.as_f64())).collect(),
        }
    }
}
