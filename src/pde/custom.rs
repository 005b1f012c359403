//! Your own PDE from formulas: `stde train --pde my.toml` (or a `[pde]` table in a config).
//!
//! ```toml
//! name = "my-allen-cahn"          # run name (default "custom")
//! dim = 10                        # default dimension (--dim overrides)
//! domain = "ball"                 # ball | cube | ball-time (x in the ball, t in [0, horizon))
//!                                 # | gaussian-time (x ~ N(0, I), t in [0, horizon))
//! ansatz = "ball"                 # none | ball (u = (1 − |x|²)·N) | initial (u = initial + t·N)
//!                                 # | initial-at-rest (u = initial + t²·N)
//!                                 # | terminal (u = terminal.target + (T − t)·N: the terminal
//!                                 #   data hold exactly, no terminal penalty)
//! exact = "sum(i, 0, d-1, sin(x[i]))*(1 - sum(i, 0, d-1, x[i]^2))"
//!
//! [[residual]]
//! operator = "laplacian"          # the linear part, operator syntax (estimated by --method)
//! nonlinear = "u - u^3"           # formula in u, d[...], x, t (optional)
//! # source = "..."                # f(x, t); omitted with `exact` given: f = L u* + N(u*) derived
//!                                 # by the engine in Taylor mode
//!
//! [boundary]                      # optional penalty u = exact (or `target`) on the boundary
//! points = 100
//! weight = 20
//!
//! # [terminal]                    # time domains: penalty u(x, T) = target (x as the domain samples)
//! # target = "..."
//! ```
//! In operators and formulas the time coordinate is `t` (`d[t]`, `d[0,t]`), or its index `d`.
//! Everything is checked when the run starts: a malformed formula or operator names the field,
//! the position and the problem.

use super::formula::{Formula, Scope};
use super::problem::{Condition, Domain, Evaluation, FormulaResidual, FormulaValue, Problem, Term};
use super::sampler::SamplerKind;
use crate::nn::Ansatz;
use crate::nn::ansatz::Horizon;
use crate::operator::{Operator, parse};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A PDE given by formulas (the file format above).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PdeSpec {
    /// Name of the problem (runs and messages).
    #[serde(default = "default_name")]
    pub name: String,
    /// Default spatial dimension (`--dim` overrides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// `ball`, `cube` or `ball-time`.
    pub domain: String,
    /// Horizon `T` of a `ball-time` domain (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub horizon: Option<f64>,
    /// `none` (default), `ball` or `initial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ansatz: Option<String>,
    /// `u(x, 0)` for the `initial` ansatz (a formula in `x` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial: Option<String>,
    /// The exact solution (scoring, boundary target, derived sources).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    /// The residuals; the loss is `Σ weight·mean r²`.
    pub residual: Vec<ResidualSpec>,
    /// A boundary penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boundary: Option<BoundarySpec>,
    /// A terminal penalty at `t = T` (time domains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<BoundarySpec>,
}

fn default_name() -> String {
    "custom".into()
}

/// One residual `L u + N − f`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResidualSpec {
    /// Name (default `R0`, `R1`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The linear part in the operator syntax.
    pub operator: String,
    /// The nonlinear part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonlinear: Option<String>,
    /// The source `f(x, t)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Weight (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
}

/// A boundary penalty `weight·mean (u − g)²`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BoundarySpec {
    /// Points per step (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<usize>,
    /// Weight (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<f64>,
    /// Target `g(x, t)` (default: the exact solution).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

impl PdeSpec {
    /// Reads a PDE file's text.
    pub fn from_toml(text: &str) -> Result<PdeSpec, String> {
        toml::from_str(text).map_err(|e| format!("invalid PDE file: {}", e.message()))
    }

    /// Whether the input carries a time coordinate.
    pub fn time(&self) -> bool {
        self.domain.ends_with("-time")
    }

    /// Builds the problem at dimension `dim` with `batch` interior points per step, checking
    /// every formula and operator.
    pub fn problem(&self, dim: usize, batch: usize, sampler: SamplerKind) -> Result<Problem, String> {
        if dim == 0 {
            return Err("the dimension must be positive".into());
        }
        let time = self.time();
        let horizon = self.horizon.unwrap_or(1.0);
        if !(horizon.is_finite() && horizon > 0.0) {
            return Err(format!("horizon {horizon} must be a positive number"));
        }
        let (interior, boundary_domain) = match self.domain.as_str() {
            "ball" => (Domain::Ball(sampler), Some(Domain::Sphere)),
            "cube" => (Domain::Cube, Some(Domain::CubeBoundary)),
            "ball-time" => (
                Domain::BallTime { kind: sampler, horizon },
                Some(Domain::SphereTime { horizon }),
            ),
            "gaussian-time" => (Domain::GaussianTime { horizon }, None),
            other => {
                return Err(format!(
                    "domain '{other}' is unknown (expected ball, cube, ball-time or gaussian-time)"
                ));
            }
        };
        let terminal_domain = match interior {
            Domain::BallTime { kind, .. } => Domain::BallTerminal { kind, horizon },
            _ => Domain::GaussianTerminal { horizon },
        };
        let data = Scope {
            dim,
            time,
            solution: false,
        };
        let solution = Scope { solution: true, ..data };
        let formula = |text: &str, scope: Scope, field: &str| -> Result<Arc<Formula>, String> {
            let f = Formula::parse(text, scope).map_err(|e| format!("{field}: {e}"))?;
            f.validate().map_err(|e| format!("{field}: {e}"))?;
            Ok(Arc::new(f))
        };
        let exact = self.exact.as_deref().map(|t| formula(t, data, "exact")).transpose()?;
        let din = dim + usize::from(time);
        if self.residual.is_empty() {
            return Err("the PDE has no [[residual]]".into());
        }
        let mut residuals = Vec::new();
        for (i, r) in self.residual.iter().enumerate() {
            let field = |f: &str| format!("residual[{i}].{f}");
            let text = with_time_index(&r.operator, dim);
            let operator: Operator = parse(&text).map_err(|e| format!("{}: {e}", field("operator")))?;
            operator
                .validate(din)
                .map_err(|e| format!("{}: {e}", field("operator")))?;
            let operator = if time { operator.over_first(dim) } else { operator };
            let nonlinear = r
                .nonlinear
                .as_deref()
                .map(|t| formula(t, solution, &field("nonlinear")))
                .transpose()?;
            let source = r
                .source
                .as_deref()
                .map(|t| formula(t, data, &field("source")))
                .transpose()?;
            let weight = r.weight.unwrap_or(1.0);
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(format!("{}: {weight} must be a non-negative number", field("weight")));
            }
            residuals.push(FormulaResidual {
                name: r.name.clone().unwrap_or_else(|| format!("R{i}")),
                operator,
                nonlinear,
                derived_source: if source.is_none() { exact.clone() } else { None },
                source,
                weight,
            });
        }
        let (ansatz, offset) = match self.ansatz.as_deref().unwrap_or("none") {
            "none" => (Ansatz::Identity, None),
            "ball" => (Ansatz::UnitBall, None),
            kind @ ("initial" | "initial-at-rest") => {
                if !time {
                    return Err(format!(
                        "ansatz '{kind}' needs a time domain (ball-time, gaussian-time)"
                    ));
                }
                let Some(text) = self.initial.as_deref() else {
                    return Err(format!(
                        "ansatz '{kind}' needs the initial condition: initial = \"...\""
                    ));
                };
                let f = formula(text, data, "initial")?;
                if f.uses_time() {
                    return Err("initial: the initial condition must not depend on t".into());
                }
                let psi = if kind == "initial" {
                    Ansatz::Time
                } else {
                    Ansatz::TimeSquared
                };
                (psi, Some(f))
            }
            "terminal" => {
                let target = self.terminal.as_ref().and_then(|t| t.target.as_deref());
                let (true, Some(text)) = (time, target) else {
                    return Err(
                        "ansatz 'terminal' needs a time domain and the terminal data: [terminal] target = \"...\""
                            .into(),
                    );
                };
                let g = formula(text, data, "terminal.target")?;
                if g.uses_time() {
                    return Err("terminal.target: with ansatz 'terminal' the target must not depend on t".into());
                }
                let horizon = Horizon::new(self.horizon.unwrap_or(1.0)).ok_or("horizon must be a positive number")?;
                (Ansatz::TimeToGo(horizon), Some(g))
            }
            other => {
                return Err(format!(
                    "ansatz '{other}' is unknown (expected none, ball, initial, initial-at-rest or terminal)"
                ));
            }
        };
        if self.initial.is_some() && !matches!(ansatz, Ansatz::Time | Ansatz::TimeSquared) {
            return Err("initial is given but the ansatz is not 'initial'".into());
        }
        if let (Ansatz::TimeToGo(_), Some(t)) = (ansatz, &self.terminal)
            && (t.points.is_some() || t.weight.is_some())
        {
            return Err(
                "[terminal] points and weight: with ansatz 'terminal' the terminal data hold exactly (no penalty)"
                    .into(),
            );
        }
        let mut conditions = vec![Condition {
            name: "interior",
            domain: interior,
            points: batch,
            weight: 1.0,
            term: Term::Formula { residuals },
        }];
        if let Some(b) = &self.boundary {
            let Some(boundary_domain) = boundary_domain else {
                return Err(format!("the {} domain has no boundary; use [terminal]", self.domain));
            };
            let target = match (&b.target, &exact) {
                (Some(t), _) => formula(t, data, "boundary.target")?,
                (None, Some(e)) => e.clone(),
                (None, None) => return Err("boundary: give a target or an exact solution".into()),
            };
            let points = b.points.unwrap_or(100);
            let weight = b.weight.unwrap_or(20.0);
            if points == 0 || !(weight.is_finite() && weight >= 0.0) {
                return Err("boundary: points must be positive and weight a non-negative number".into());
            }
            conditions.push(Condition {
                name: "boundary",
                domain: boundary_domain,
                points,
                weight,
                term: Term::Target {
                    target: Arc::new(FormulaValue(target)),
                    gradient_weight: 0.0,
                },
            });
        }
        if let Some(b) = self
            .terminal
            .as_ref()
            .filter(|_| !matches!(ansatz, Ansatz::TimeToGo(_)))
        {
            if !time {
                return Err("[terminal] needs a time domain (ball-time, gaussian-time)".into());
            }
            let target = match (&b.target, &exact) {
                (Some(t), _) => formula(t, data, "terminal.target")?,
                (None, Some(e)) => e.clone(),
                (None, None) => return Err("terminal: give a target or an exact solution".into()),
            };
            let points = b.points.unwrap_or(100);
            let weight = b.weight.unwrap_or(20.0);
            if points == 0 || !(weight.is_finite() && weight >= 0.0) {
                return Err("terminal: points must be positive and weight a non-negative number".into());
            }
            conditions.push(Condition {
                name: "terminal",
                domain: terminal_domain,
                points,
                weight,
                term: Term::Target {
                    target: Arc::new(FormulaValue(target)),
                    gradient_weight: 0.0,
                },
            });
        }
        let evaluation = match exact {
            Some(e) => Evaluation::ExactSolution {
                domain: interior,
                solution: Arc::new(FormulaValue(e)),
            },
            None => Evaluation::PointValue {
                at: vec![0.0; din],
                reference: None,
            },
        };
        Ok(Problem {
            name: self.name.clone(),
            dim,
            time,
            ansatz,
            offset,
            conditions,
            evaluation,
        })
    }
}

/// The operator text with `t` inside `d[...]` replaced by the time's index `d`.
pub(crate) fn with_time_index(text: &str, d: usize) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    let b = text.as_bytes();
    for (i, c) in text.char_indices() {
        match c {
            '[' => inside = i > 0 && b[i - 1] == b'd',
            ']' => inside = false,
            't' if inside => {
                let alone = |j: Option<&u8>| j.is_none_or(|c| !c.is_ascii_alphanumeric());
                if alone(i.checked_sub(1).and_then(|j| b.get(j))) && alone(b.get(i + 1)) {
                    out += &d.to_string();
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn time_in_operator_indices_becomes_its_coordinate() {
        assert_eq!(
            super::with_time_index("d[t] + laplacian - d[0,t, t]", 7),
            "d[7] + laplacian - d[0,7, 7]"
        );
        assert_eq!(super::with_time_index("2*d[1,2]", 3), "2*d[1,2]");
    }
}
