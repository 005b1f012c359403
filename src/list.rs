//! `stde list`: every registered equation with its dimension range, operator (in the operator
//! syntax), derivative order, conditions, evaluation, the jets its residual needs, and the default
//! hyper-parameters `stde train --equation NAME` uses.

use crate::operator::{MultiPlan, PlanBuilder, ProbePlan};
use crate::pde::{EQUATIONS, Evaluation, Problem, Term};
use crate::train::TrainConfig;
use serde::Serialize;

/// One equation as listed.
#[derive(Clone, Debug, Serialize)]
pub struct Listing {
    /// The `--equation` name.
    pub name: String,
    /// The equation and its exact solution or reference, in one line.
    pub summary: String,
    /// Smallest dimension.
    pub min_dim: usize,
    /// Largest dimension (`null`: unbounded).
    pub max_dim: Option<usize>,
    /// Whether the input is `(x, t)`.
    pub time: bool,
    /// The linear part of each residual, in the operator syntax, with the nonlinear part after `;`.
    pub residuals: Vec<String>,
    /// Highest derivative order in any residual.
    pub order: usize,
    /// The trained function: `u = N`, or the hard constraint `u = φ + ψ·N`.
    pub ansatz: String,
    /// Conditions: `name (points per step, weight)`.
    pub conditions: Vec<String>,
    /// How a run is scored.
    pub evaluation: String,
    /// The exact plan of the residuals at the default dimension when it is small (jets, their
    /// orders, and the cost `Σ (K + 1)` in Taylor coefficients per point), else `null`.
    pub exact_plan: Option<String>,
    /// How the partials the nonlinear parts read are computed at the default configuration
    /// (exact gradient sweep, sampled, exact jets), per formula condition.
    pub partials: Vec<String>,
    /// The default configuration (`stde train --equation NAME` with no other flag).
    pub defaults: Defaults,
}

/// Default hyper-parameters of an equation.
#[derive(Clone, Debug, Serialize)]
pub struct Defaults {
    /// Dimension.
    pub dim: usize,
    /// Estimator.
    pub method: String,
    /// Sampled terms per step.
    pub rand_batch: usize,
    /// Interior points per step.
    pub batch: usize,
    /// Hidden width.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Steps.
    pub steps: usize,
    /// Initial learning rate.
    pub lr: f64,
    /// Schedule.
    pub schedule: String,
    /// Evaluation interval.
    pub eval_every: usize,
}

/// The exact plan of a problem's residuals (plus the partials its nonlinear parts read), if the
/// input dimension is small enough to list it.
pub fn residual_plan(problem: &Problem) -> Option<MultiPlan> {
    let din = problem.input_dim();
    if din > 16 {
        return None;
    }
    let mut plans = Vec::new();
    for c in &problem.conditions {
        match &c.term {
            Term::Residual { operator, .. } => plans.push(ProbePlan::exact(operator, din).ok()?),
            Term::Formula { residuals } => {
                let mut partials: Vec<Vec<usize>> = Vec::new();
                for r in residuals {
                    plans.push(ProbePlan::exact(&r.operator, din).ok()?);
                    for p in r.nonlinear.iter().flat_map(|f| f.partials()) {
                        if !partials.contains(p) {
                            partials.push(p.clone());
                        }
                    }
                }
                for p in partials {
                    let mut b = PlanBuilder::new();
                    b.add_partial(1.0, &p).ok()?;
                    plans.push(b.finish());
                }
            }
            Term::Target { .. } => {}
        }
    }
    Some(MultiPlan::new(plans))
}

/// `N jets, orders [..], cost C`.
pub fn describe_plan(plan: &MultiPlan) -> String {
    let orders: Vec<usize> = plan.probes.iter().map(|p| p.order).collect();
    let cost: usize = orders.iter().map(|k| k + 1).sum();
    format!(
        "{} jets, orders {orders:?}, {cost} coefficients per point",
        orders.len()
    )
}

/// Every registered equation.
pub fn list() -> Vec<Listing> {
    EQUATIONS
        .iter()
        .map(|e| {
            let cfg = TrainConfig::for_equation(e.name);
            let problem = cfg.problem();
            let mut residuals = Vec::new();
            let mut order = 0;
            let mut conditions = Vec::new();
            for c in &problem.conditions {
                conditions.push(format!("{} ({} points, weight {})", c.name, c.points, c.weight));
                match &c.term {
                    Term::Residual { operator, gpinn, .. } => {
                        order = order.max(operator.order() + usize::from(gpinn.is_some()));
                        residuals.push(format!("{operator} ; + F(u) - f"));
                    }
                    Term::Formula { residuals: rs } => {
                        for r in rs {
                            order = order.max(r.operator.order());
                            let mut s = format!("{}: {}", r.name, r.operator);
                            if let Some(n) = &r.nonlinear {
                                order = order.max(n.partials().iter().map(Vec::len).max().unwrap_or(0));
                                s += &format!(" ; + {n}");
                            }
                            if r.source.is_some() {
                                s += " - f";
                            }
                            if r.weight != 1.0 {
                                s += &format!("  (weight {})", r.weight);
                            }
                            residuals.push(s);
                        }
                    }
                    Term::Target { gradient_weight, .. } => {
                        if *gradient_weight > 0.0 {
                            order = order.max(1);
                        }
                    }
                }
            }
            let evaluation = match &problem.evaluation {
                Evaluation::ExactSolution { .. } => {
                    format!(
                        "relative L2 against the exact solution on {} test points",
                        cfg.test_points
                    )
                }
                Evaluation::PointValue { reference, .. } => match reference {
                    Some(r) => format!("relative L1 of u(0, 0) against the reference {r} (d = {})", cfg.dim),
                    None => "u(0, 0) (no reference at this d)".into(),
                },
            };
            Listing {
                name: e.name.to_string(),
                summary: e.summary.to_string(),
                min_dim: e.min_dim,
                max_dim: (e.max_dim != usize::MAX).then_some(e.max_dim),
                time: e.time,
                residuals,
                order,
                ansatz: ansatz_text(&problem),
                conditions,
                evaluation,
                exact_plan: residual_plan(&problem).map(|p| describe_plan(&p)),
                partials: crate::train::routes::describe(&problem, (cfg.method != "exact").then_some(cfg.rand_batch)),
                defaults: Defaults {
                    dim: cfg.dim,
                    method: cfg.method.clone(),
                    rand_batch: cfg.rand_batch,
                    batch: cfg.batch,
                    width: cfg.width,
                    depth: cfg.depth,
                    steps: cfg.steps,
                    lr: cfg.lr,
                    schedule: cfg.schedule.clone(),
                    eval_every: cfg.eval_every,
                },
            }
        })
        .collect()
}

/// `u = φ + ψ·N` of a problem in words.
fn ansatz_text(problem: &crate::pde::Problem) -> String {
    use crate::nn::Ansatz;
    let psi = match problem.ansatz {
        Ansatz::Identity => String::new(),
        Ansatz::UnitBall => "(1 − ‖x‖²)·".into(),
        Ansatz::Time => "t·".into(),
        Ansatz::TimeSquared => "t²·".into(),
        Ansatz::TimeToGo(h) => format!("({} − t)·", h.get()),
    };
    match &problem.offset {
        Some(phi) => format!("u = {} + {psi}N", phi.text()),
        None => format!("u = {psi}N"),
    }
}
