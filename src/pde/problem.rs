//! A PDE problem as data (spec equations §3, §5–§7; STYLE §7): the domains and their samplers,
//! the conditions whose residuals must vanish (each a linear [`Operator`] estimated by
//! `operator::Estimator`, plus a pointwise part and a weight), the hard-constraint ansatz, and how
//! the solution is evaluated. Nothing in the training loop knows which PDE it is solving.

use super::formula::Formula;
use super::parabolic::Parabolic;
use super::sampler::{BallSampler, SamplerKind, stream};
use super::{Equation, ProblemOptions};
use crate::nn::Ansatz;
use crate::operator::Operator;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;
use rayon::prelude::*;
use std::sync::Arc;

/// Where a condition's points come from. Every point is drawn from its own counter-based stream
/// keyed by `(seed, batch, point)`, so sampling is parallel and reproducible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Domain {
    /// The unit ball in `R^d` (spec §4).
    Ball(SamplerKind),
    /// `(x, t)` with `t ~ U[0, T)` and `x = √(2t)·ξ`, `ξ ~ N(0, I_d)` (spec §7.3).
    ParabolicInterior {
        /// The horizon `T`.
        horizon: f64,
    },
    /// Points of discretised paths (the reference code's trajectory sampler, spec §7.3 option):
    /// `x_0 = 0`, `x_m = x_{m−1} + √(2Δt)·ξ_m`, `Δt = T/steps`; point `p` of a batch is
    /// `(x_m, mΔt)` with `m = p mod steps` on path `⌊p/steps⌋` (each path its own stream), so
    /// a batch of `P·steps` points holds `P` whole paths up to, not including, `t = T`.
    ParabolicPaths {
        /// The horizon `T`.
        horizon: f64,
        /// Time steps per path `n_t`.
        steps: usize,
    },
    /// `(x, T)` with `x = √(2T)·ξ` (spec §7.3).
    ParabolicTerminal {
        /// The horizon `T`.
        horizon: f64,
    },
    /// The unit cube `[0, 1)^d` (spec §9.5).
    Cube,
    /// The cube's boundary: a point of the cube with one uniformly chosen coordinate set to 0 or
    /// 1 (probability ½ each; spec §9.5).
    CubeBoundary,
    /// The unit sphere in `R^d` (`±1` in one dimension): the ball's boundary.
    Sphere,
    /// `(x, t)`: `x ~ N(0, I_d)`, `t ~ U[0, T)` (the reference code's Gaussian sampler, spec §9).
    GaussianTime {
        /// The horizon `T`.
        horizon: f64,
    },
    /// `(x, T)`: `x ~ N(0, I_d)` at the horizon (terminal points of the Gaussian sampler).
    GaussianTerminal {
        /// The horizon `T`.
        horizon: f64,
    },
    /// `(x, t)`: `x` in the unit ball (the given radial law; `U(−1, 1)` in one dimension),
    /// `t ~ U[0, T)` (spec §8).
    BallTime {
        /// Radial law.
        kind: SamplerKind,
        /// The horizon `T`.
        horizon: f64,
    },
    /// `(x, T)`: `x` in the unit ball at the horizon (terminal points).
    BallTerminal {
        /// Radial law.
        kind: SamplerKind,
        /// The horizon `T`.
        horizon: f64,
    },
    /// `(x, t)`: `x` on the unit sphere (`±1` in one dimension), `t ~ U[0, T)`: the lateral
    /// boundary (spec §8.2).
    SphereTime {
        /// The horizon `T`.
        horizon: f64,
    },
}

impl Domain {
    /// Fills `out` (`[n × input_dim]`) with points `first, first + 1, …` of batch `batch` of
    /// stream `seed` (`d` spatial coordinates; a time coordinate, if any, is last).
    pub fn fill_from<T: crate::Real>(&self, d: usize, seed: u64, batch: u64, first: usize, out: &mut [T]) {
        self.fill_map(d, seed, batch, first, out, |x, pending| {
            if let Some(scale) = pending {
                x.iter_mut().for_each(|v| *v *= scale);
            }
        });
    }

    /// [`Domain::fill_from`], calling `each(x, pending)` on every point right after it is drawn,
    /// in the same task (so at large `d` the point is still in cache), and returning the results
    /// in point order. `pending` is `Some(s)` where the draw's last step is left to `each`: a
    /// unit-ball point (no time coordinate) arrives as its Gaussian direction, and `each` must
    /// multiply every coordinate by `s` in place (one product each; it may do so chunk by chunk
    /// right before reading them); otherwise `x` is final. The points are then those of
    /// `fill_from`.
    pub fn fill_map<T, R, F>(&self, d: usize, seed: u64, batch: u64, first: usize, out: &mut [T], each: F) -> Vec<R>
    where
        T: crate::Real,
        R: Send,
        F: Fn(&mut [T], Option<T>) -> R + Sync,
    {
        if !matches!(self, Domain::Cube | Domain::CubeBoundary) {
            // every other domain draws its d spatial coordinates from Gaussians
            let points = out.len() / (d + usize::from(self.has_time())).max(1);
            crate::tensor::profile_count(crate::tensor::Work::Normals, points * d);
        }
        let stride = d + usize::from(self.has_time());
        if let Domain::ParabolicPaths { horizon, steps } = *self {
            return fill_paths(d, horizon, steps, (seed, batch, first), out, each);
        }
        // draws point `p` into `x` from its own stream, then hands it to `each`
        type Draw<'a, T> = dyn Fn(&mut Xoshiro256PlusPlus, &mut [T]) -> Option<T> + Sync + 'a;
        let mut per_point = |draw: &Draw<T>| -> Vec<R> {
            out.par_chunks_mut(stride.max(1))
                .enumerate()
                .map(|(p, x)| {
                    let mut rng = stream(seed, batch, (first + p) as u64);
                    let pending = draw(&mut rng, x);
                    each(x, pending)
                })
                .collect()
        };
        match *self {
            Domain::Ball(kind) => {
                let ball = BallSampler { kind, dim: d };
                per_point(&|rng, x| Some(ball.direction(rng, x)))
            }
            Domain::Cube | Domain::CubeBoundary => {
                let boundary = matches!(self, Domain::CubeBoundary);
                per_point(&final_draw(|rng, x| {
                    for v in x.iter_mut() {
                        *v = T::c(rng.random::<f64>());
                    }
                    if boundary {
                        let i = rng.random_range(0..d);
                        x[i] = if rng.random::<bool>() { T::one() } else { T::zero() };
                    }
                }))
            }
            Domain::BallTime { kind, horizon } | Domain::BallTerminal { kind, horizon } => {
                let ball = BallSampler { kind, dim: d };
                let terminal = matches!(self, Domain::BallTerminal { .. });
                per_point(&final_draw(|rng, x| {
                    ball.point(rng, &mut x[..d]);
                    x[d] = T::c(if terminal {
                        horizon
                    } else {
                        rng.random::<f64>() * horizon
                    });
                }))
            }
            Domain::GaussianTime { horizon } | Domain::GaussianTerminal { horizon } => {
                let terminal = matches!(self, Domain::GaussianTerminal { .. });
                per_point(&final_draw(|rng, x| {
                    for v in x[..d].iter_mut() {
                        let g: f64 = StandardNormal.sample(rng);
                        *v = T::c(g);
                    }
                    x[d] = T::c(if terminal {
                        horizon
                    } else {
                        rng.random::<f64>() * horizon
                    });
                }))
            }
            Domain::Sphere => per_point(&final_draw(|rng, x| BallSampler::sphere_point(rng, x))),
            Domain::SphereTime { horizon } => per_point(&final_draw(|rng, x| {
                BallSampler::sphere_point(rng, &mut x[..d]);
                x[d] = T::c(rng.random::<f64>() * horizon);
            })),
            Domain::ParabolicPaths { .. } => unreachable!("drawn by fill_paths above"),
            Domain::ParabolicInterior { horizon } | Domain::ParabolicTerminal { horizon } => {
                let terminal = matches!(self, Domain::ParabolicTerminal { .. });
                per_point(&final_draw(|rng, x| {
                    let t = if terminal {
                        horizon
                    } else {
                        rng.random::<f64>() * horizon
                    };
                    let scale = (2.0 * t).sqrt();
                    for v in x[..d].iter_mut() {
                        let g: f64 = StandardNormal.sample(rng);
                        *v = T::c(scale * g);
                    }
                    x[d] = T::c(t);
                }))
            }
        }
    }

    /// Whether points carry a time coordinate.
    pub fn has_time(&self) -> bool {
        matches!(
            self,
            Domain::ParabolicInterior { .. }
                | Domain::ParabolicPaths { .. }
                | Domain::ParabolicTerminal { .. }
                | Domain::BallTime { .. }
                | Domain::BallTerminal { .. }
                | Domain::SphereTime { .. }
                | Domain::GaussianTime { .. }
                | Domain::GaussianTerminal { .. }
        )
    }
}

/// A domain's draw whose points are final (nothing left to [`Domain::fill_map`]'s `each`).
fn final_draw<T>(
    draw: impl Fn(&mut Xoshiro256PlusPlus, &mut [T]) + Sync,
) -> impl Fn(&mut Xoshiro256PlusPlus, &mut [T]) -> Option<T> + Sync {
    move |rng, x| {
        draw(rng, x);
        None
    }
}

/// [`Domain::ParabolicPaths`]: whole paths in parallel where the batch part holds whole paths
/// (`first` and the length multiples of `steps`), else each point from its path's prefix (the
/// same draws, the same additions, so the same bits).
fn fill_paths<T, R, F>(d: usize, horizon: f64, steps: usize, key: (u64, u64, usize), out: &mut [T], each: F) -> Vec<R>
where
    T: crate::Real,
    R: Send,
    F: Fn(&mut [T], Option<T>) -> R + Sync,
{
    let (seed, batch, first) = key;
    let (stride, steps) = (d + 1, steps.max(1));
    let dt = horizon / steps as f64;
    let sd = (2.0 * dt).sqrt();
    let step = |rng: &mut Xoshiro256PlusPlus, x: &mut [T]| {
        for v in x[..d].iter_mut() {
            let g: f64 = StandardNormal.sample(rng);
            *v += T::c(sd * g);
        }
    };
    let whole = first.is_multiple_of(steps) && (out.len() / stride).is_multiple_of(steps);
    if whole {
        let per_path: Vec<Vec<R>> = out
            .par_chunks_mut(stride * steps)
            .enumerate()
            .map(|(q, path)| {
                let mut rng = stream(seed, batch, (first / steps + q) as u64);
                let mut results = Vec::with_capacity(steps);
                for m in 0..steps {
                    // point m starts from point m − 1 (the origin for m = 0)
                    let (done, rest) = path.split_at_mut(m * stride);
                    let x = &mut rest[..stride];
                    if m == 0 {
                        x.fill(T::zero());
                    } else {
                        x.copy_from_slice(&done[(m - 1) * stride..]);
                        step(&mut rng, x);
                    }
                    x[d] = T::c(m as f64 * dt);
                    results.push(each(x, None));
                }
                results
            })
            .collect();
        return per_path.into_iter().flatten().collect();
    }
    out.par_chunks_mut(stride)
        .enumerate()
        .map(|(p, x)| {
            let g = first + p;
            let mut rng = stream(seed, batch, (g / steps) as u64);
            x.fill(T::zero());
            for _ in 0..g % steps {
                step(&mut rng, x);
            }
            x[d] = T::c((g % steps) as f64 * dt);
            each(x, None)
        })
        .collect()
}

/// A terminal (or boundary) target `g` and its spatial gradient.
pub trait Target: Send + Sync {
    /// `g` at the input point `x` (spatial coordinates, then the time if any) and `∇_x g` over
    /// the spatial coordinates into `grad`.
    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64;
    /// A value that replaces `g` at every point of a batch, computed from the whole batch's
    /// points (`[n × din]`, f64), where the target is defined per batch (compat C7); `None`
    /// (the default): per point.
    fn batch_value(&self, _points: &[f64], _din: usize) -> Option<f64> {
        None
    }
}

impl Target for Parabolic {
    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.terminal(&x[..self.dim], grad)
    }
    fn batch_value(&self, points: &[f64], din: usize) -> Option<f64> {
        if !(self.batch_max_target && self.kind == super::parabolic::ParabolicKind::AllenCahn) {
            return None;
        }
        let max = points
            .chunks(din)
            .flat_map(|x| &x[..self.dim])
            .fold(f64::NEG_INFINITY, |m, &v| m.max(v));
        Some(max.atan())
    }
}

/// A value known in closed form at any input point (an exact solution for scoring).
pub trait ExactValue: Send + Sync {
    /// `u*(x)` (`x`: spatial coordinates, then the time if any), if known.
    fn exact_value(&self, x: &[f64]) -> Option<f64>;
}

/// An [`Equation`]'s exact solution as an [`ExactValue`].
pub struct EquationSolution(pub Arc<dyn Equation>);

impl ExactValue for EquationSolution {
    fn exact_value(&self, x: &[f64]) -> Option<f64> {
        self.0.exact(x)
    }
}

/// A formula in `x` and `t` as a boundary target (no gradient) and as an exact solution.
pub struct FormulaValue(pub Arc<Formula>);

impl FormulaValue {
    fn at(&self, x: &[f64]) -> f64 {
        let mut ws = self.0.workspace(0);
        self.0.eval(&mut ws, x, f64::NAN, &[])
    }
}

impl Target for FormulaValue {
    /// The value; the gradient is not provided (zero), so use it with gradient weight 0.
    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        grad.fill(0.0);
        self.at(x)
    }
}

impl ExactValue for FormulaValue {
    fn exact_value(&self, x: &[f64]) -> Option<f64> {
        Some(self.at(x))
    }
}

/// One residual of a formula PDE: `r = L u + N(x, t, u, ∂u) − f(x, t)`, in the loss as
/// `weight · mean r²`. `L` is estimated by the run's estimator (explicit terms exactly); every
/// partial `N` reads is a planned read-out of the same shared jets.
#[derive(Clone, Debug)]
pub struct FormulaResidual {
    /// Name, e.g. `R` or `∂_x R`.
    pub name: String,
    /// The linear part `L`.
    pub operator: Operator,
    /// The nonlinear part `N` (in `u` and its partials `d[...]`, `x`, `t`), if any.
    pub nonlinear: Option<Arc<Formula>>,
    /// The source `f(x, t)`, if any.
    pub source: Option<Arc<Formula>>,
    /// Without a source formula: the exact solution `u*` from which the engine derives
    /// `f = L u* + N(u*)` at every point (exact plan, Taylor-mode formula; `O(d)` jets per point
    /// for a family, so give `source` at large `d`).
    pub derived_source: Option<Arc<Formula>>,
    /// Weight of `mean r²` in the condition's loss.
    pub weight: f64,
}

/// How the gPINN term combines the Laplacian's index set `I` and the independent gradient set
/// `J` (`|I| = |J| = R`; spec §6.2), with `g_ij = u_iij + F'(u)u_j − ∂_j f`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GpinnForm {
    /// `c·mean_k g_{i_k j_k}²` over the zipped pairs (the reference code).
    Zipped,
    /// `c·Σ_{j∈J} Σ_{i∈I} g_ij²`: the paper's printed double sum, without normalisation (R² jets).
    DoubleSum,
    /// `c·mean_{j∈J} ĝ_j²` with `ĝ_j = (d/R) Σ_{i∈I} u_iij + F'(u)u_j − ∂_j f`, unbiased for
    /// `∂_j R` (so it vanishes at the exact solution in expectation; R² jets). The default.
    #[default]
    Consistent,
}

impl GpinnForm {
    /// `zipped`, `double-sum` or `consistent`.
    pub fn parse(name: &str) -> Option<GpinnForm> {
        match name {
            "zipped" => Some(GpinnForm::Zipped),
            "double-sum" => Some(GpinnForm::DoubleSum),
            "consistent" => Some(GpinnForm::Consistent),
            _ => None,
        }
    }
}

/// What must vanish on a condition's points.
#[derive(Clone)]
pub enum Term {
    /// `r = L̂u + F(u) − f(x)` (loss `mean r²`), with `L` estimated by the trainer's estimator
    /// (explicit terms such as `∂_t u` always exact) and `F`, `f` from the equation.
    Residual {
        /// The linear part `L`.
        operator: Operator,
        /// `F`, `f`, and `∂_j f` for the gradient-enhanced term.
        equation: Arc<dyn Equation>,
        /// The amortised gPINN term (spec §6.2): its weight `c_gPINN`, or `None`.
        gpinn: Option<f64>,
        /// How the gPINN term combines its index sets.
        gpinn_form: GpinnForm,
    },
    /// `mean (u − g)² + gradient_weight · mean over points and coordinates of (∂_i u − ∂_i g)²`
    /// over the `d` spatial coordinates (the parabolic terminal loss, spec §7.4, with the exact
    /// gradient by reverse mode; a boundary loss with `gradient_weight = 0`).
    Target {
        /// `g` and `∇g`.
        target: Arc<dyn Target>,
        /// Weight of the gradient-matching part (relative to the value part).
        gradient_weight: f64,
    },
    /// `Σ_c weight_c · mean r_c²` over residuals given as operators and formulas (high-order and
    /// user-defined PDEs; nonlinear terms in the derivatives such as `u_x·u_y`).
    Formula {
        /// The residuals.
        residuals: Vec<FormulaResidual>,
    },
}

/// One named condition: where to sample, how many points per step, its weight in the loss, and
/// its term.
#[derive(Clone)]
pub struct Condition {
    /// Name (`interior`, `terminal`), for messages.
    pub name: &'static str,
    /// Sampler.
    pub domain: Domain,
    /// Points per step.
    pub points: usize,
    /// Weight of the condition's loss.
    pub weight: f64,
    /// What must vanish.
    pub term: Term,
}

/// How a trained solution is scored.
#[derive(Clone)]
pub enum Evaluation {
    /// Relative L2 and L1 errors against the exact solution on test points from `domain`.
    ExactSolution {
        /// Test-point sampler.
        domain: Domain,
        /// The exact solution.
        solution: Arc<dyn ExactValue>,
    },
    /// Relative L1 error of `u` at one point against a reference value (`None`: none is known,
    /// the value is only reported).
    PointValue {
        /// The input point (time last).
        at: Vec<f64>,
        /// The reference value.
        reference: Option<f64>,
    },
}

/// A PDE problem as data.
#[derive(Clone)]
pub struct Problem {
    /// Name (the `--equation` name).
    pub name: String,
    /// Spatial dimension `d`.
    pub dim: usize,
    /// Whether the input is `(x, t)` (time last).
    pub time: bool,
    /// Hard constraint applied to the network output: `u = φ + ψ·N`, `ψ` from the ansatz.
    pub ansatz: Ansatz,
    /// `φ` of `u = φ + ψ·N` (the initial data of an initial-value problem), if any.
    pub offset: Option<Arc<Formula>>,
    /// The conditions; the loss is their weighted sum.
    pub conditions: Vec<Condition>,
    /// Scoring.
    pub evaluation: Evaluation,
}

impl Problem {
    /// The network's input dimension (`d`, or `d + 1` with time).
    pub fn input_dim(&self) -> usize {
        self.dim + usize::from(self.time)
    }

    /// An inseparable elliptic problem on the unit ball (spec §5): `u = (1 − ‖x‖²)·N`,
    /// `Δu + F(u) = f` on `batch` points per step, optionally with the gPINN term; scored against
    /// the exact solution.
    pub fn elliptic(equation: Arc<dyn Equation>, batch: usize, sampler: SamplerKind, gpinn: Option<f64>) -> Problem {
        let domain = Domain::Ball(sampler);
        Problem {
            name: equation.name(),
            dim: equation.dim(),
            time: false,
            ansatz: Ansatz::UnitBall,
            conditions: vec![Condition {
                name: "interior",
                domain,
                points: batch,
                weight: 1.0,
                term: Term::Residual {
                    operator: Operator::laplacian(),
                    equation: equation.clone(),
                    gpinn,
                    gpinn_form: GpinnForm::Zipped,
                },
            }],
            offset: None,
            evaluation: Evaluation::ExactSolution {
                domain,
                solution: Arc::new(EquationSolution(equation)),
            },
        }
    }

    /// The same problem with its time-dependent interior points drawn along discretised paths
    /// of `steps` time steps ([`Domain::ParabolicPaths`]) instead of at uniform times.
    pub fn with_path_sampler(mut self, steps: usize) -> Problem {
        for c in &mut self.conditions {
            if let Domain::ParabolicInterior { horizon } = c.domain {
                c.domain = Domain::ParabolicPaths { horizon, steps };
            }
        }
        self
    }

    /// [`Problem::with_path_sampler`] when `steps` is given, else the problem as it is.
    pub fn with_path_sampler_if(self, steps: Option<usize>) -> Problem {
        match steps {
            Some(n) => self.with_path_sampler(n),
            None => self,
        }
    }

    /// The same problem with its gPINN terms in `form`.
    pub fn with_gpinn_form(mut self, form: GpinnForm) -> Problem {
        for c in &mut self.conditions {
            if let Term::Residual { gpinn_form, .. } = &mut c.term {
                *gpinn_form = form;
            }
        }
        self
    }

    /// A semilinear parabolic problem (spec §7): `∂_t u + Δ_x u + F(u) = 0` on `batch` interior
    /// points, the terminal loss (value and gradient) on `terminal_batch` points with weight
    /// `terminal_weight`, scored by `u(0, 0)` against the reference value where one exists.
    pub fn parabolic(
        eq: Parabolic,
        horizon: f64,
        batch: usize,
        terminal_batch: usize,
        terminal_weight: f64,
        gradient_weight: f64,
    ) -> Problem {
        let d = eq.dim;
        let reference = eq.reference();
        let eq = Arc::new(eq);
        // Δ over the d spatial coordinates (sampled), ∂_t exact
        let operator = Operator::laplacian()
            .over_first(d)
            .plus(1.0, Operator::time_derivative(d));
        Problem {
            name: eq.name(),
            dim: d,
            time: true,
            ansatz: Ansatz::Identity,
            offset: None,
            conditions: vec![
                Condition {
                    name: "interior",
                    domain: Domain::ParabolicInterior { horizon },
                    points: batch,
                    weight: 1.0,
                    term: Term::Residual {
                        operator,
                        equation: eq.clone(),
                        gpinn: None,
                        gpinn_form: GpinnForm::Zipped,
                    },
                },
                Condition {
                    name: "terminal",
                    domain: Domain::ParabolicTerminal { horizon },
                    points: terminal_batch,
                    weight: terminal_weight,
                    term: Term::Target {
                        target: eq,
                        gradient_weight,
                    },
                },
            ],
            evaluation: Evaluation::PointValue {
                at: vec![0.0; d + 1],
                reference,
            },
        }
    }
}

/// `Δu = f` on the unit cube with `u* = (1/d) Σ_i e^{x_i}` and `f = u*` (spec §9.5).
#[derive(Clone, Debug)]
pub struct CubePoisson {
    /// Dimension `d`.
    pub dim: usize,
}

impl CubePoisson {
    fn value(x: &[f64]) -> f64 {
        x.iter().map(|v| v.exp()).sum::<f64>() / x.len() as f64
    }
}

impl Equation for CubePoisson {
    fn name(&self) -> String {
        "poisson-cube".into()
    }
    fn dim(&self) -> usize {
        self.dim
    }
    fn nonlinearity(&self, _u: f64) -> (f64, f64, f64) {
        (0.0, 0.0, 0.0)
    }
    /// `f = Δu* = u*`.
    fn source(&self, x: &[f64]) -> f64 {
        CubePoisson::value(x)
    }
    fn exact(&self, x: &[f64]) -> Option<f64> {
        Some(CubePoisson::value(x))
    }
}

impl Target for CubePoisson {
    /// The boundary target `u*` (and its gradient `e^{x_i}/d`, unused with weight 0).
    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let x = &x[..self.dim];
        let d = x.len() as f64;
        grad.iter_mut().zip(x).for_each(|(g, v)| *g = v.exp() / d);
        CubePoisson::value(x)
    }
}

impl Problem {
    /// Poisson on the unit cube (spec §9.5): no ansatz, `Δu = f` on `batch` interior points and
    /// `u = u*` on `boundary_batch` boundary points with weight `boundary_weight`; scored against
    /// `u*` on interior test points.
    pub fn cube_poisson(dim: usize, batch: usize, boundary_batch: usize, boundary_weight: f64) -> Problem {
        let eq = Arc::new(CubePoisson { dim });
        Problem {
            name: eq.name(),
            dim,
            time: false,
            ansatz: Ansatz::Identity,
            conditions: vec![
                Condition {
                    name: "interior",
                    domain: Domain::Cube,
                    points: batch,
                    weight: 1.0,
                    term: Term::Residual {
                        operator: Operator::laplacian(),
                        equation: eq.clone(),
                        gpinn: None,
                        gpinn_form: GpinnForm::Zipped,
                    },
                },
                Condition {
                    name: "boundary",
                    domain: Domain::CubeBoundary,
                    points: boundary_batch,
                    weight: boundary_weight,
                    term: Term::Target {
                        target: eq.clone(),
                        gradient_weight: 0.0,
                    },
                },
            ],
            offset: None,
            evaluation: Evaluation::ExactSolution {
                domain: Domain::Cube,
                solution: Arc::new(EquationSolution(eq)),
            },
        }
    }
}

/// Everything a problem's construction reads from a run's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemSettings {
    /// Spatial dimension.
    pub dim: usize,
    /// The instance's coefficients.
    pub problem_seed: u64,
    /// Equation switches.
    pub options: ProblemOptions,
    /// Interior points per step.
    pub batch: usize,
    /// Ball sampler (elliptic problems).
    pub sampler: SamplerKind,
    /// gPINN weight (0: none).
    pub gpinn_weight: f64,
    /// How the gPINN term combines its index sets.
    pub gpinn_form: GpinnForm,
    /// Parabolic problems: interior points along discretised paths of this many time steps
    /// (`None`: at uniform times).
    pub path_steps: Option<usize>,
    /// Horizon `T` (parabolic problems).
    pub horizon: f64,
    /// Terminal points per step (parabolic problems).
    pub terminal_batch: usize,
    /// Weight of the terminal loss (parabolic problems).
    pub terminal_weight: f64,
    /// Weight of the terminal gradient-matching part, relative to the value part.
    pub terminal_gradient_weight: f64,
    /// Boundary points per step (problems with a boundary loss).
    pub boundary_batch: usize,
    /// Weight of the boundary loss.
    pub boundary_weight: f64,
}
