//! High-order low-dimensional PDEs (spec equations §8): 2D KdV, 2D KP and 1D g-KdV, each with a
//! manufactured exact solution (source `f = L u*`, §8.2) and in a source-free soliton version.
//!
//! Every problem is data: the residuals are an [`Operator`] (the linear part, exact explicit
//! terms) plus formulas for the nonlinear part and the source, whose partials are planned
//! read-outs of shared jets. The initial condition is in the ansatz `u = u*(x, 0) + t·N(x, t)`;
//! the lateral boundary (`x` on the unit circle, or `x = ±1`) is a penalty of weight 20 with
//! target `u*`. Inputs are `(x, y, t)` or `(x, t)`, `t ∈ [0, 1)` last.

use super::formula::{Formula, Scope};
use super::problem::{Condition, Domain, Evaluation, FormulaResidual, FormulaValue, Problem, Term};
use super::sampler::SamplerKind;
use crate::nn::Ansatz;
use crate::operator::{Operator, parse};
use std::sync::Arc;

/// g-KdV's dispersion coefficient `α`.
pub const GKDV_ALPHA: f64 = 0.0025;

/// One residual as text: name, operator, nonlinear part, source, weight.
pub struct ResidualText {
    /// Name.
    pub name: &'static str,
    /// Linear part, in the operator syntax.
    pub operator: &'static str,
    /// Nonlinear part (formula in `u`, `d[...]`, `x`, `t`), or `""`.
    pub nonlinear: &'static str,
    /// Source (formula in `x`, `t`), or `""`.
    pub source: &'static str,
    /// Weight of `mean r²`.
    pub weight: f64,
}

/// A high-order problem as text.
pub struct HighOrderText {
    /// The `--equation` name.
    pub name: &'static str,
    /// Spatial dimension.
    pub dim: usize,
    /// The residuals.
    pub residuals: &'static [ResidualText],
    /// The exact solution `u*(x, t)`.
    pub exact: &'static str,
    /// `u*(x, 0)`, the offset of the ansatz.
    pub initial: &'static str,
}

const KDV_OP: &str = "d[1,2] + d[0,0,0,1] - d[0,0] + 2*d[1,1]";
const KDV_N: &str = "3*(d[0,1]*d[0] + d[1]*d[0,0])";
const KP_OP: &str = "d[0,2] + d[0,0,0,0] + 3*d[1,1]";
const KP_N: &str = "6*d[0]^2 + 6*u*d[0,0]";
const GKDV_R: (&str, &str) = ("d[1] + 0.0025*d[0,0,0]", "u*d[0]");
const GKDV_RX: (&str, &str) = ("d[0,1] + 0.0025*d[0,0,0,0]", "d[0]^2 + u*d[0,0]");
const GKDV_RT: (&str, &str) = ("d[1,1] + 0.0025*d[0,0,0,1]", "d[1]*d[0] + u*d[0,1]");

/// The six problems.
pub const HIGH_ORDER: [HighOrderText; 6] = [
    HighOrderText {
        name: "kdv-2d",
        dim: 2,
        residuals: &[ResidualText {
            name: "R",
            operator: KDV_OP,
            nonlinear: KDV_N,
            source: "exp(-t)*(sin(x) + cos(x))*sin(y) - exp(-t)*sin(x)*cos(y) - 1.5*exp(-2*t)*cos(2*x)*sin(2*y)",
            weight: 1.0,
        }],
        exact: "exp(-t)*sin(x)*cos(y)",
        initial: "sin(x)*cos(y)",
    },
    HighOrderText {
        name: "kp-2d",
        dim: 2,
        residuals: &[ResidualText {
            name: "R",
            operator: KP_OP,
            nonlinear: KP_N,
            source: "-exp(-t)*(cos(x) + 2*sin(x))*cos(y) + 6*exp(-2*t)*cos(2*x)*cos(y)^2",
            weight: 1.0,
        }],
        exact: "exp(-t)*sin(x)*cos(y)",
        initial: "sin(x)*cos(y)",
    },
    HighOrderText {
        name: "gkdv-1d",
        dim: 1,
        residuals: &[
            ResidualText {
                name: "R",
                operator: GKDV_R.0,
                nonlinear: GKDV_R.1,
                source: "-exp(-t)*sin(pi*x) + pi/2*exp(-2*t)*sin(2*pi*x) - 0.0025*pi^3*exp(-t)*cos(pi*x)",
                weight: 1.0,
            },
            ResidualText {
                name: "d_x R",
                operator: GKDV_RX.0,
                nonlinear: GKDV_RX.1,
                source: "exp(-t)*(0.0025*pi^4*sin(pi*x) - pi*cos(pi*x)) + pi^2*exp(-2*t)*cos(2*pi*x)",
                weight: 1e-3,
            },
            ResidualText {
                name: "d_t R",
                operator: GKDV_RT.0,
                nonlinear: GKDV_RT.1,
                source: "exp(-t)*(sin(pi*x) + 0.0025*pi^3*cos(pi*x)) - pi*exp(-2*t)*sin(2*pi*x)",
                weight: 1e-3,
            },
        ],
        exact: "exp(-t)*sin(pi*x)",
        initial: "sin(pi*x)",
    },
    HighOrderText {
        name: "kdv-2d-soliton",
        dim: 2,
        residuals: &[ResidualText {
            name: "R",
            operator: KDV_OP,
            nonlinear: KDV_N,
            source: "",
            weight: 1.0,
        }],
        exact: "1 + tanh((x + y - 2*t)/2)",
        initial: "1 + tanh((x + y)/2)",
    },
    HighOrderText {
        name: "kp-2d-soliton",
        dim: 2,
        residuals: &[ResidualText {
            name: "R",
            operator: KP_OP,
            nonlinear: KP_N,
            source: "",
            weight: 1.0,
        }],
        exact: "0.5*sech((x + y - 4*t)/2)^2",
        initial: "0.5*sech((x + y)/2)^2",
    },
    HighOrderText {
        name: "gkdv-1d-soliton",
        dim: 1,
        residuals: &[
            ResidualText {
                name: "R",
                operator: GKDV_R.0,
                nonlinear: GKDV_R.1,
                source: "",
                weight: 1.0,
            },
            ResidualText {
                name: "d_x R",
                operator: GKDV_RX.0,
                nonlinear: GKDV_RX.1,
                source: "",
                weight: 1e-3,
            },
            ResidualText {
                name: "d_t R",
                operator: GKDV_RT.0,
                nonlinear: GKDV_RT.1,
                source: "",
                weight: 1e-3,
            },
        ],
        exact: "3*sech(10*(x - t))^2",
        initial: "3*sech(10*x)^2",
    },
];

/// The text of problem `name`.
pub fn text(name: &str) -> Option<&'static HighOrderText> {
    HIGH_ORDER.iter().find(|h| h.name == name)
}

fn formula(text: &str, scope: Scope, what: &str) -> Arc<Formula> {
    Arc::new(Formula::parse(text, scope).unwrap_or_else(|e| panic!("built-in {what} '{text}': {e}")))
}

impl HighOrderText {
    /// The residuals as data.
    pub fn residuals(&self) -> Vec<FormulaResidual> {
        let solution = Scope {
            dim: self.dim,
            time: true,
            solution: true,
        };
        let data = Scope {
            solution: false,
            ..solution
        };
        self.residuals
            .iter()
            .map(|r| FormulaResidual {
                name: r.name.to_string(),
                operator: parse(r.operator).unwrap_or_else(|e| panic!("built-in operator '{}': {e}", r.operator)),
                nonlinear: (!r.nonlinear.is_empty()).then(|| formula(r.nonlinear, solution, "nonlinearity")),
                source: (!r.source.is_empty()).then(|| formula(r.source, data, "source")),
                derived_source: None,
                weight: r.weight,
            })
            .collect()
    }

    /// The exact solution as a formula.
    pub fn exact_formula(&self) -> Arc<Formula> {
        let scope = Scope {
            dim: self.dim,
            time: true,
            solution: false,
        };
        formula(self.exact, scope, "exact solution")
    }

    /// The problem (spec §8.2 protocol): `batch` interior points (`x` radius-uniform in the unit
    /// disc or `U(−1, 1)`, `t ~ U[0, 1)`), `boundary_batch` lateral points with weight
    /// `boundary_weight`, ansatz `u*(x, 0) + t·N`, scored by relative L2 against `u*`.
    pub fn problem(&self, batch: usize, boundary_batch: usize, boundary_weight: f64) -> Problem {
        let scope = Scope {
            dim: self.dim,
            time: true,
            solution: false,
        };
        let exact = self.exact_formula();
        let interior = Domain::BallTime {
            kind: SamplerKind::RadiusUniform,
            horizon: 1.0,
        };
        Problem {
            name: self.name.to_string(),
            dim: self.dim,
            time: true,
            ansatz: Ansatz::Time,
            offset: Some(formula(self.initial, scope, "initial condition")),
            conditions: vec![
                Condition {
                    name: "interior",
                    domain: interior,
                    points: batch,
                    weight: 1.0,
                    term: Term::Formula {
                        residuals: self.residuals(),
                    },
                },
                Condition {
                    name: "boundary",
                    domain: Domain::SphereTime { horizon: 1.0 },
                    points: boundary_batch,
                    weight: boundary_weight,
                    term: Term::Target {
                        target: Arc::new(FormulaValue(exact.clone())),
                        gradient_weight: 0.0,
                    },
                },
            ],
            evaluation: Evaluation::ExactSolution {
                domain: interior,
                solution: Arc::new(FormulaValue(exact)),
            },
        }
    }
}

/// The linear part of a residual, for listings.
pub fn operator_text(op: &Operator) -> String {
    format!("{op:?}")
}
