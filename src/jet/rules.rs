//! The rule table: for every primitive, its forward Taylor rule and its backward (adjoint) rule side
//! by side, on one series of normalised coefficients `u(s) = Σ_k u_k s^k` truncated at order `K`.
//!
//! Convention: everything here is **normalised** (`c_n = y_n / n!`, spec §1.2); conversion to the
//! public derivative convention happens at the API boundary ([`to_normalised`], [`to_derivative`]).
//!
//! Unary rules share one shape. Every smooth `φ` satisfies `y' = φ'(u)·u'`, so with the series
//! `g(s) = φ'(u(s))` the forward recurrence is `y_k = (1/k) Σ_{j=1..k} j·u_j·g_{k−j}`, where each rule
//! supplies `y_0`, `g_0` and how to get `g_k` from already-known coefficients. The same `g` is the
//! whole backward rule: `∂y_k/∂u_j = g_{k−j}`, a lower-triangular Toeplitz Jacobian, so
//! `ū_j = Σ_{k≥j} ȳ_k g_{k−j}` ([`unary_backward`]) for every unary primitive.

use super::support::{MAX_ORDER, Support};
use crate::real::{Real, factorial};

/// An element-wise unary primitive with an exact Taylor rule to any order.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Unary {
    /// `tanh u`; `g = 1 − y²`.
    Tanh,
    /// `1/(1+e^{−u})`; `g = y − y²`.
    Sigmoid,
    /// `ln(1+e^u)`; `g = σ(u)`.
    Softplus,
    /// `sin u`; `g = cos u`.
    Sin,
    /// `cos u`; `g = −sin u`.
    Cos,
    /// `sinh u`; `g = cosh u`.
    Sinh,
    /// `cosh u`; `g = sinh u`.
    Cosh,
    /// `e^u`; `g = y`.
    Exp,
    /// `ln u` (`u_0 > 0`); `g = 1/u`.
    Log,
    /// `√u` (`u_0 > 0`); `g = 1/(2y)`.
    Sqrt,
    /// `1/u` (`u_0 ≠ 0`); `g = −y²`.
    Recip,
    /// `u²`; `g = 2u`.
    Square,
    /// `u^n`, integer `n` (`u_0 ≠ 0` when `n < 0`); `g = n·u^{n−1}`.
    Powi(i32),
    /// `u^r`, real `r` (`u_0 > 0`); `g = r·y/u`.
    Powf(f64),
    /// `arctan u`; `g = 1/(1+u²)`.
    Arctan,
}

impl Unary {
    /// `φ(u_0)` and `g_0 = φ'(u_0)`.
    pub fn primal<T: Real>(self, u0: T) -> (T, T) {
        let one = T::one();
        match self {
            Unary::Tanh => {
                let y = u0.tanh();
                (y, one - y * y)
            }
            Unary::Sigmoid => {
                let y = sigmoid(u0);
                (y, y - y * y)
            }
            Unary::Softplus => {
                // ln(1+e^u) = max(u,0) + ln(1+e^{−|u|}): no overflow.
                let y = u0.max(T::zero()) + (-u0.abs()).exp().ln_1p();
                (y, sigmoid(u0))
            }
            Unary::Sin => (u0.sin(), u0.cos()),
            Unary::Cos => (u0.cos(), -u0.sin()),
            Unary::Sinh => (u0.sinh(), u0.cosh()),
            Unary::Cosh => (u0.cosh(), u0.sinh()),
            Unary::Exp => {
                let y = u0.exp();
                (y, y)
            }
            Unary::Log => (u0.ln(), one / u0),
            Unary::Sqrt => {
                let y = u0.sqrt();
                (y, one / (y + y))
            }
            Unary::Recip => {
                let y = one / u0;
                (y, -y * y)
            }
            Unary::Square => (u0 * u0, u0 + u0),
            Unary::Powi(n) => (u0.powi(n), T::c(n as f64) * u0.powi(n - 1)),
            Unary::Powf(r) => {
                let y = u0.powf(T::c(r));
                (y, T::c(r) * u0.powf(T::c(r - 1.0)))
            }
            Unary::Arctan => (u0.atan(), one / (one + u0 * u0)),
        }
    }

    /// `g_k` for `k ≥ 1`, from `u[0..=k]`, `y[0..=k]` and `g[0..k]` (all already known).
    fn next_g<T: Real>(self, k: usize, u: &[T], y: &[T], g: &[T]) -> T {
        let inv_k = T::one() / T::c(k as f64);
        match self {
            // g = 1 − y²
            Unary::Tanh => -cauchy(y, y, k),
            // g = y − y²
            Unary::Sigmoid => y[k] - cauchy(y, y, k),
            // g = σ(u): σ' = σ(1−σ)·u', so σ_k = (1/k) Σ j u_j w_{k−j} with w = σ − σ².
            Unary::Softplus => {
                let mut acc = T::zero();
                for j in 1..=k {
                    let m = k - j;
                    let w = g[m] - cauchy(g, g, m);
                    acc += T::c(j as f64) * u[j] * w;
                }
                acc * inv_k
            }
            // (sin, cos) jointly: g is the companion series.
            Unary::Sin | Unary::Sinh => {
                let sign = if self == Unary::Sin { -T::one() } else { T::one() };
                sign * inv_k * weighted(u, y, k)
            }
            Unary::Cos | Unary::Cosh => {
                // y = C, g = ∓S: S_k = (1/k) Σ j u_j C_{k−j}
                let s_k = inv_k * weighted(u, y, k);
                if self == Unary::Cos { -s_k } else { s_k }
            }
            Unary::Exp => y[k],
            // g = 1/u: g_k = −(Σ_{j=1..k} u_j g_{k−j}) / u_0
            Unary::Log => -tail_cauchy(u, g, k) / u[0],
            // g = 1/(2y): (2y)·g = 1
            Unary::Sqrt => -(T::c(2.0) * tail_cauchy(y, g, k)) / (T::c(2.0) * y[0]),
            Unary::Recip => -cauchy(y, y, k),
            Unary::Square => T::c(2.0) * u[k],
            // u·g = r·y  ⇒  g_k = (r y_k − Σ_{j≥1} u_j g_{k−j}) / u_0
            Unary::Powf(r) => (T::c(r) * y[k] - tail_cauchy(u, g, k)) / u[0],
            Unary::Powi(n) => (T::c(n as f64) * y[k] - tail_cauchy(u, g, k)) / u[0],
            // (1+u²)·g = 1
            Unary::Arctan => {
                let mut acc = T::zero();
                for j in 1..=k {
                    acc += cauchy(u, u, j) * g[k - j];
                }
                -acc / (T::one() + u[0] * u[0])
            }
        }
    }
}

/// The logistic function, stable for large `|u|`.
fn sigmoid<T: Real>(u: T) -> T {
    if u >= T::zero() {
        T::one() / (T::one() + (-u).exp())
    } else {
        let e = u.exp();
        e / (T::one() + e)
    }
}

/// `[a·b]_k = Σ_{i=0..k} a_i b_{k−i}`.
fn cauchy<T: Real>(a: &[T], b: &[T], k: usize) -> T {
    (0..=k).map(|i| a[i] * b[k - i]).sum()
}

/// `Σ_{j=1..k} a_j b_{k−j}` (the product without the `a_0` term).
fn tail_cauchy<T: Real>(a: &[T], b: &[T], k: usize) -> T {
    (1..=k).map(|j| a[j] * b[k - j]).sum()
}

/// `Σ_{j=1..k} j·u_j·c_{k−j}`.
fn weighted<T: Real>(u: &[T], c: &[T], k: usize) -> T {
    (1..=k).map(|j| T::c(j as f64) * u[j] * c[k - j]).sum()
}

/// Forward rule of a unary primitive on one series: fills `y[0..=K]` and the derivative series
/// `g[0..=K]` (kept for the backward rule). `sup` lists the orders of `u` that may be non-zero;
/// the others must hold zero and are skipped. `y0g0` may pass a precomputed `(y_0, g_0)` (shared
/// primal). `K = u.len() − 1`.
pub fn unary_forward<T: Real>(rule: Unary, u: &[T], sup: Support, y0g0: Option<(T, T)>, y: &mut [T], g: &mut [T]) {
    let k_max = u.len() - 1;
    debug_assert!(k_max <= MAX_ORDER && y.len() > k_max && g.len() > k_max);
    let (y0, g0) = y0g0.unwrap_or_else(|| rule.primal(u[0]));
    y[0] = y0;
    g[0] = g0;
    if let Unary::Powi(n) = rule
        && n >= 0
    {
        powi_forward(n as u32, u, y, g);
        return;
    }
    let out = sup.closure(k_max);
    for k in 1..=k_max {
        if !out.contains(k) {
            y[k] = T::zero();
            g[k] = T::zero();
            continue;
        }
        let mut acc = T::zero();
        for j in sup.orders().take_while(|&j| j <= k) {
            acc += T::c(j as f64) * u[j] * g[k - j];
        }
        y[k] = acc / T::c(k as f64);
        g[k] = rule.next_g(k, u, y, g);
    }
}

impl Unary {
    /// Whether [`unary_forward_rows`] has a vectorised form of this rule.
    pub fn has_row_form(self) -> bool {
        matches!(
            self,
            Unary::Tanh | Unary::Sigmoid | Unary::Sin | Unary::Cos | Unary::Sinh | Unary::Cosh | Unary::Exp
        )
    }
}

/// `dst[f] (+)= scale · Σ_{i=0..k} a_i[f]·a_{k−i}[f]` over rows of an order-major `[(K+1) × w]` buffer.
fn self_cauchy_rows<T: Real>(buf: &[T], w: usize, k: usize, dst: &mut [T], scale: T) {
    // a_i a_{k−i} is symmetric in i ↔ k−i: sum half and double.
    for i in 0..=k / 2 {
        let j = k - i;
        let s = if i == j { scale } else { scale + scale };
        let (a, b) = (&buf[i * w..(i + 1) * w], &buf[j * w..(j + 1) * w]);
        for f in 0..w {
            dst[f] += s * a[f] * b[f];
        }
    }
}

/// Row-vectorised forward rule for the rules with [`Unary::has_row_form`]: every buffer is
/// order-major `[(K+1) × w]` (order `k` of feature `f` at `k·w + f`). On entry `u` holds the input
/// (zeros at absent orders), `y[0..w]` and `g[0..w]` hold `φ(u_0)` and `φ'(u_0)`, and `y`, `g`
/// are zero at orders outside `out_orders`. `in_orders`/`out_orders` list the present orders.
pub fn unary_forward_rows<T: Real>(
    rule: Unary,
    w: usize,
    in_orders: &[usize],
    out_orders: &[usize],
    u: &[T],
    y: &mut [T],
    g: &mut [T],
) {
    debug_assert!(rule.has_row_form());
    for &k in out_orders {
        let inv_k = T::one() / T::c(k as f64);
        {
            let (lo, hi) = y.split_at_mut(k * w);
            let yk = &mut hi[..w];
            let _ = lo;
            yk.iter_mut().for_each(|v| *v = T::zero());
            for &j in in_orders.iter().take_while(|&&j| j <= k) {
                let c = T::c(j as f64) * inv_k;
                let (uj, gkj) = (&u[j * w..(j + 1) * w], &g[(k - j) * w..(k - j + 1) * w]);
                for f in 0..w {
                    yk[f] += c * uj[f] * gkj[f];
                }
            }
        }
        let (g_lo, g_hi) = g.split_at_mut(k * w);
        let gk = &mut g_hi[..w];
        let _ = g_lo;
        match rule {
            Unary::Tanh => {
                gk.iter_mut().for_each(|v| *v = T::zero());
                self_cauchy_rows(y, w, k, gk, -T::one());
            }
            Unary::Sigmoid => {
                gk.copy_from_slice(&y[k * w..(k + 1) * w]);
                self_cauchy_rows(y, w, k, gk, -T::one());
            }
            Unary::Exp => gk.copy_from_slice(&y[k * w..(k + 1) * w]),
            Unary::Sin | Unary::Sinh | Unary::Cos | Unary::Cosh => {
                // companion series: ±(1/k) Σ_j j·u_j·y_{k−j}
                let sign = if matches!(rule, Unary::Sin | Unary::Cos) {
                    -T::one()
                } else {
                    T::one()
                };
                gk.iter_mut().for_each(|v| *v = T::zero());
                for &j in in_orders.iter().take_while(|&&j| j <= k) {
                    let c = sign * T::c(j as f64) * inv_k;
                    let (uj, ykj) = (&u[j * w..(j + 1) * w], &y[(k - j) * w..(k - j + 1) * w]);
                    for f in 0..w {
                        gk[f] += c * uj[f] * ykj[f];
                    }
                }
            }
            _ => unreachable!("rule without a row form"),
        }
    }
}

/// Row-vectorised backward rule (any unary primitive): `ū_j[f] = Σ_{k≥j} ȳ_k[f]·g_{k−j}[f]` for
/// `j ∈ targets` (order 0 and the input's present orders), buffers order-major `[(K+1) × w]`,
/// absent orders of `ȳ` zero.
pub fn unary_backward_rows<T: Real>(
    w: usize,
    k_max: usize,
    targets: &[usize],
    out_orders: &[usize],
    ybar: &[T],
    g: &[T],
    ubar: &mut [T],
) {
    for &j in targets {
        let dst = &mut ubar[j * w..(j + 1) * w];
        dst.iter_mut().for_each(|v| *v = T::zero());
        for &k in std::iter::once(&0).chain(out_orders).filter(|&&k| k >= j && k <= k_max) {
            let (yk, gkj) = (&ybar[k * w..(k + 1) * w], &g[(k - j) * w..(k - j + 1) * w]);
            for f in 0..w {
                dst[f] += yk[f] * gkj[f];
            }
        }
    }
}

/// `u^n` for `n ≥ 0` by repeated products (valid at `u_0 = 0`), with `g = n·u^{n−1}`.
fn powi_forward<T: Real>(n: u32, u: &[T], y: &mut [T], g: &mut [T]) {
    let len = u.len();
    let mut p = [T::zero(); MAX_ORDER + 1];
    p[0] = T::one(); // u^0
    let mut tmp = [T::zero(); MAX_ORDER + 1];
    for step in 0..n {
        if step + 1 == n {
            for k in 0..len {
                g[k] = T::c(n as f64) * p[k];
            }
        }
        for k in 0..len {
            tmp[k] = cauchy(&p, u, k);
        }
        p[..len].copy_from_slice(&tmp[..len]);
    }
    if n == 0 {
        g[..len].iter_mut().for_each(|x| *x = T::zero());
    }
    y[..len].copy_from_slice(&p[..len]);
}

/// Backward rule shared by every unary primitive: `ū_j += Σ_{k≥j} ȳ_k g_{k−j}` for `j = 0..=K`.
pub fn unary_backward<T: Real>(ybar: &[T], g: &[T], ubar: &mut [T]) {
    let len = ybar.len();
    for j in 0..len {
        let mut acc = T::zero();
        for k in j..len {
            acc += ybar[k] * g[k - j];
        }
        ubar[j] += acc;
    }
}

/// Product `y = u·w`: forward.
pub fn mul_forward<T: Real>(u: &[T], w: &[T], y: &mut [T]) {
    for k in 0..u.len() {
        y[k] = cauchy(u, w, k);
    }
}

/// Product `y = u·w`: backward, `ū_j += Σ_k ȳ_k w_{k−j}` and `w̄_j += Σ_k ȳ_k u_{k−j}`.
pub fn mul_backward<T: Real>(ybar: &[T], u: &[T], w: &[T], ubar: &mut [T], wbar: &mut [T]) {
    unary_backward(ybar, w, ubar);
    unary_backward(ybar, u, wbar);
}

/// Quotient `y = u/w` (`w_0 ≠ 0`): forward, `y_k = (u_k − Σ_{j<k} y_j w_{k−j}) / w_0`.
pub fn div_forward<T: Real>(u: &[T], w: &[T], y: &mut [T]) {
    for k in 0..u.len() {
        let acc: T = (0..k).map(|j| y[j] * w[k - j]).sum();
        y[k] = (u[k] - acc) / w[0];
    }
}

/// Quotient `y = u/w`: backward. `∂y/∂u = 1/w` and `∂y/∂w = −y/w`, each a Toeplitz series.
pub fn div_backward<T: Real>(ybar: &[T], w: &[T], y: &[T], ubar: &mut [T], wbar: &mut [T]) {
    let len = w.len();
    let mut one = [T::zero(); MAX_ORDER + 1];
    one[0] = T::one();
    let mut inv_w = [T::zero(); MAX_ORDER + 1];
    div_forward(&one[..len], w, &mut inv_w[..len]);
    let mut minus_y_over_w = [T::zero(); MAX_ORDER + 1];
    div_forward(y, w, &mut minus_y_over_w[..len]);
    minus_y_over_w[..len].iter_mut().for_each(|x| *x = -*x);
    unary_backward(ybar, &inv_w[..len], ubar);
    unary_backward(ybar, &minus_y_over_w[..len], wbar);
}

/// Linear primitives (sum, difference, scalar multiple, and the affine layer's tangent part) act
/// on every coefficient alike; their backward rule is the transpose of the same linear map.
pub fn linear_combination<T: Real>(a: T, u: &[T], b: T, w: &[T], y: &mut [T]) {
    for k in 0..u.len() {
        y[k] = a * u[k] + b * w[k];
    }
}

/// Backward of [`linear_combination`]: `ū += a·ȳ`, `w̄ += b·ȳ`.
pub fn linear_combination_backward<T: Real>(a: T, b: T, ybar: &[T], ubar: &mut [T], wbar: &mut [T]) {
    for k in 0..ybar.len() {
        ubar[k] += a * ybar[k];
        wbar[k] += b * ybar[k];
    }
}

/// Derivative convention → normalised: `a_k = v_k / k!` in place.
pub fn to_normalised<T: Real>(v: &mut [T]) {
    for (k, x) in v.iter_mut().enumerate() {
        *x /= T::c(factorial(k));
    }
}

/// Normalised → derivative convention: `y_n = n!·c_n` in place.
pub fn to_derivative<T: Real>(c: &mut [T]) {
    for (k, x) in c.iter_mut().enumerate() {
        *x *= T::c(factorial(k));
    }
}

/// Applies a unary rule to a whole series (convenience for scalar use and tests): returns `y`.
///
/// ```
/// use stde::jet::rules::{apply, Unary};
/// // exp(s): normalised coefficients 1, 1, 1/2, 1/6
/// let y = apply(Unary::Exp, &[0.0f64, 1.0, 0.0, 0.0]);
/// assert!((y[3] - 1.0 / 6.0).abs() < 1e-15);
/// ```
pub fn apply<T: Real>(rule: Unary, u: &[T]) -> Vec<T> {
    let mut y = vec![T::zero(); u.len()];
    let mut g = vec![T::zero(); u.len()];
    unary_forward(rule, u, Support::full(u.len() - 1), None, &mut y, &mut g);
    y
}
