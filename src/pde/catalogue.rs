//! The rest of the published reference code's equations (spec equations §9), each written in the
//! same PDE-file format users write (`stde train --pde`): HJB-LIN, HJB-LQG, Black–Scholes–
//! Barenblatt, the wave equation and the Poisson problem of Houman (the unit-cube Poisson problem
//! is [`super::CubePoisson`]). Time derivatives are exact; the Laplacians are estimated by the
//! run's estimator over the spatial coordinates; the gradient terms (`Σ|∂_i u|^c`, `‖∇u‖²`,
//! `x·∇u`) are exact by the gradient sweep and `Σ x_i² u_ii` is sampled like the Laplacian
//! ([`crate::train::routes`]), so their cost does not grow with `d` beyond the first layer. The
//! three terminal-value problems hold their terminal data exactly (`u = g + (T − t)·N`, the
//! reference code's optional ansatz for HJB, spec §9.1), so they have no terminal penalty.

use super::custom::PdeSpec;
use super::problem::{Evaluation, ExactValue, Problem, Term};
use super::sampler::SamplerKind;
use std::sync::Arc;

/// HJB with a linear exact solution (spec §9.1), Gaussian sampler, `T = 1`.
pub const HJB_LIN: &str = r#"
name = "hjb-lin"
domain = "gaussian-time"
ansatz = "terminal"
exact = "sum(i, 0, d-1, x[i]) + 1 - t"
[[residual]]
operator = "d[t] + laplacian"
nonlinear = "-sum(i, 0, d-1, abs(d[i])^1.75)/d"
source = "-2"
[terminal]
target = "sum(i, 0, d-1, x[i])"
"#;

/// HJB-LQG (spec §9.2): `u_t + Δu − ‖∇u‖² = 0`, `g = ln((1 + ‖x‖²)/2)`; the exact solution is the
/// Cole–Hopf expectation ([`HjbLqgExact`]).
pub const HJB_LQG: &str = r#"
name = "hjb-lqg"
domain = "gaussian-time"
ansatz = "terminal"
[[residual]]
operator = "d[t] + laplacian"
nonlinear = "-sum(i, 0, d-1, d[i]^2)"
[terminal]
target = "log((1 + sum(i, 0, d-1, x[i]^2))/2)"
"#;

/// Black–Scholes–Barenblatt (spec §9.3), σ = 0.4, r = 0.05.
pub const BSB: &str = r#"
name = "black-scholes-barenblatt"
domain = "gaussian-time"
ansatz = "terminal"
exact = "exp(0.21*(1 - t))*sum(i, 0, d-1, x[i]^2)"
[[residual]]
operator = "d[t]"
nonlinear = "0.08*sum(i, 0, d-1, x[i]^2*d[i,i]) - 0.05*(u - sum(i, 0, d-1, x[i]*d[i]))"
source = "0"
[terminal]
target = "sum(i, 0, d-1, x[i]^2)"
"#;

/// The wave equation (spec §9.4) in the unit ball × [0, 1), at rest initially by the ansatz
/// `u = Σ sinh x_i + t²·N`, lateral boundary penalty.
pub const WAVE: &str = r#"
name = "wave"
domain = "ball-time"
ansatz = "initial-at-rest"
initial = "sum(i, 0, d-1, sinh(x[i]))"
exact = "cosh(t)*sum(i, 0, d-1, sinh(x[i]))"
[[residual]]
operator = "d[t,t] - laplacian"
[boundary]
"#;

/// Houman's Poisson problem (spec §9.6) with `u = (1 − ‖x‖²)·N`; the source is the analytic
/// `Δu*` of spec §5.3 with the §9.6 substitutions (`O(d)` per point; the tests check it against the
/// engine's own derivation from `u*`).
pub const POISSON_HOUMAN: &str = r#"
name = "poisson-houman"
domain = "ball"
ansatz = "ball"
exact = "(1 - sum(i, 0, d-1, x[i]^2))*sum(i, 0, d-2, tanh(4*i/(d-1) - 2)*sin(x[i] + 3*cos(x[i+1]) + x[i+1]*cos(x[i])))"
[[residual]]
operator = "laplacian"
source = """(1 - sum(j, 0, d-1, x[j]^2))*sum(i, 0, d-2, tanh(4*i/(d-1) - 2)*(
      -sin(x[i] + 3*cos(x[i+1]) + x[i+1]*cos(x[i]))*((1 - x[i+1]*sin(x[i]))^2 + (cos(x[i]) - 3*sin(x[i+1]))^2)
      + cos(x[i] + 3*cos(x[i+1]) + x[i+1]*cos(x[i]))*(-x[i+1]*cos(x[i]) - 3*cos(x[i+1]))))
  + sum(i, 0, d-2, tanh(4*i/(d-1) - 2)*(
      -4*cos(x[i] + 3*cos(x[i+1]) + x[i+1]*cos(x[i]))*(x[i]*(1 - x[i+1]*sin(x[i])) + x[i+1]*(cos(x[i]) - 3*sin(x[i+1])))
      - 2*d*sin(x[i] + 3*cos(x[i+1]) + x[i+1]*cos(x[i]))))"""
"#;

/// The catalogue's text of equation `name`.
pub fn text(name: &str) -> Option<&'static str> {
    match name {
        "hjb-lin" => Some(HJB_LIN),
        "hjb-lqg" => Some(HJB_LQG),
        "black-scholes-barenblatt" => Some(BSB),
        "wave" => Some(WAVE),
        "poisson-houman" => Some(POISSON_HOUMAN),
        _ => None,
    }
}

/// Builds catalogue problem `name` at dimension `dim`; every penalty (boundary or terminal) gets
/// `penalty_points` points with weight `penalty_weight`.
pub fn problem(
    name: &str,
    dim: usize,
    batch: usize,
    sampler: SamplerKind,
    penalty_points: usize,
    penalty_weight: f64,
) -> Problem {
    let spec = PdeSpec::from_toml(text(name).expect("catalogue name")).expect("catalogue entry parses");
    let mut p = spec.problem(dim, batch, sampler).expect("catalogue entry builds");
    for c in &mut p.conditions {
        if let Term::Target { .. } = c.term {
            c.points = penalty_points;
            c.weight = penalty_weight;
        }
    }
    if name == "hjb-lqg" {
        let domain = p.conditions[0].domain;
        p.evaluation = Evaluation::ExactSolution {
            domain,
            solution: Arc::new(HjbLqgExact { dim, horizon: 1.0 }),
        };
    }
    p
}

/// The HJB-LQG solution (μ = 1) by Cole–Hopf: `u*(x, t) = −ln E[exp(−g(x + √(2τ) z))]`,
/// `τ = T − t`, through the one-dimensional form (spec §9.2)
/// `E = 2 ∫_0^∞ e^{−s} (1 + 4τs)^{−d/2} exp(−s‖x‖²/(1 + 4τs)) ds`, integrated by adaptive
/// Simpson to 1e-12 relative: deterministic, no sampling error.
#[derive(Clone, Copy, Debug)]
pub struct HjbLqgExact {
    /// Dimension `d`.
    pub dim: usize,
    /// Horizon `T`.
    pub horizon: f64,
}

impl HjbLqgExact {
    /// `u*` at spatial point `x` and time `t`.
    pub fn value(&self, x: &[f64], t: f64) -> f64 {
        let r2: f64 = x.iter().map(|v| v * v).sum();
        let tau = (self.horizon - t).max(0.0);
        let half_d = self.dim as f64 / 2.0;
        let f = |s: f64| {
            let a = 1.0 + 4.0 * tau * s;
            (-s - half_d * a.ln() - s * r2 / a).exp()
        };
        // the integrand is below e^{-s}: [0, 60] leaves < 1e-26; split so that the scale near 0
        // (≈ 1/(2dτ) for large d) is resolved
        let mut total = 0.0;
        let mut lo = 0.0;
        for hi in [1e-4, 1e-3, 1e-2, 0.1, 1.0, 5.0, 20.0, 60.0] {
            total += adaptive_simpson(&f, lo, hi, 1e-14, 40);
            lo = hi;
        }
        -(2.0 * total).ln()
    }
}

impl ExactValue for HjbLqgExact {
    fn exact_value(&self, x: &[f64]) -> Option<f64> {
        let d = self.dim;
        Some(self.value(&x[..d], x[d]))
    }
}

fn adaptive_simpson(f: &dyn Fn(f64) -> f64, a: f64, b: f64, tol: f64, depth: u32) -> f64 {
    #[allow(clippy::too_many_arguments)]
    fn step(
        f: &dyn Fn(f64) -> f64,
        a: f64,
        b: f64,
        fa: f64,
        fm: f64,
        fb: f64,
        whole: f64,
        tol: f64,
        depth: u32,
    ) -> f64 {
        let m = 0.5 * (a + b);
        let (lm, rm) = (0.5 * (a + m), 0.5 * (m + b));
        let (flm, frm) = (f(lm), f(rm));
        let left = (m - a) / 6.0 * (fa + 4.0 * flm + fm);
        let right = (b - m) / 6.0 * (fm + 4.0 * frm + fb);
        let delta = left + right - whole;
        if depth == 0 || delta.abs() <= 15.0 * tol {
            return left + right + delta / 15.0;
        }
        step(f, a, m, fa, flm, fm, left, tol / 2.0, depth - 1) + step(f, m, b, fm, frm, fb, right, tol / 2.0, depth - 1)
    }
    let (fa, fb, fm) = (f(a), f(b), f(0.5 * (a + b)));
    let whole = (b - a) / 6.0 * (fa + 4.0 * fm + fb);
    step(f, a, b, fa, fm, fb, whole, tol, depth)
}
