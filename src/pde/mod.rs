//! PDEs as data: the inseparable elliptic problems on the unit ball (spec equations §5) with their
//! gradient-enhanced variants (§6), the semilinear parabolic problems (§7), their exact solutions,
//! sources, terminal data and samplers, and the [`Problem`] description the trainer consumes.
//!
//! A new PDE implements [`Equation`] (nonlinearity, source, exact solution) in one file, describes
//! itself as a [`Problem`] (domains, conditions, ansatz, evaluation) and adds one
//! [`EquationEntry`] to [`EQUATIONS`].

pub mod ball;
pub mod catalogue;
pub mod custom;
pub use crate::formula;
pub mod highorder;
pub mod parabolic;
pub mod problem;
pub mod sampler;
pub mod vecmath;

pub use ball::{BallProblem, Nonlinearity, Solution};
pub use parabolic::{Parabolic, ParabolicKind};
pub use problem::{
    Condition, CubePoisson, Domain, EquationSolution, Evaluation, ExactValue, FormulaResidual, FormulaValue, GpinnForm,
    Problem, ProblemSettings, Target, Term,
};
pub use sampler::{BallSampler, SamplerKind};

/// The pointwise part of a PDE `L u + F(u) = f`: the nonlinearity, the source and (if known) the
/// exact solution.
pub trait Equation: Send + Sync {
    /// Display name, e.g. `allen-cahn-two-body`.
    fn name(&self) -> String;
    /// Spatial dimension `d`.
    fn dim(&self) -> usize;
    /// `F(u)`, `F'(u)` and `F''(u)`.
    fn nonlinearity(&self, u: f64) -> (f64, f64, f64);
    /// The source `f(x)`.
    fn source(&self, x: &[f64]) -> f64;
    /// The source at an f32 point, computed in f64 (the default widens the point first; an
    /// implementation can avoid that copy).
    fn source_f32(&self, x: &[f32]) -> f64 {
        let wide: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        self.source(&wide)
    }
    /// [`Equation::source_f32`] and `‖x‖²` (for the unit-ball ansatz), which an implementation
    /// that reads every coordinate anyway can return from the same pass over the point.
    fn source_f32_and_norm2(&self, x: &[f32]) -> (f64, f64) {
        (self.source_f32(x), crate::lanes::sum_squares(x))
    }
    /// [`Equation::source_f32_and_norm2`] at the point `scale·x`, leaving `x` scaled (each
    /// coordinate by one f32 product), with `visit` called on growing prefixes of the scaled
    /// point, the last one the whole point: other per-point work then reads the coordinates
    /// while they are in cache. The default scales the whole point, visits it, then computes; an
    /// implementation that reads the point in chunks scales each right before reading it.
    fn source_f32_and_norm2_scaling(&self, x: &mut [f32], scale: f32, visit: &mut dyn FnMut(&[f32])) -> (f64, f64) {
        x.iter_mut().for_each(|v| *v *= scale);
        visit(x);
        self.source_f32_and_norm2(x)
    }
    /// The source `f(x)` and its partials `∂_j f(x)` for each `j` of `js` (into `out`), for the
    /// gradient-enhanced loss; `None` if the equation does not provide them.
    fn source_with_partials(&self, _x: &[f64], _js: &[usize], _out: &mut [f64]) -> Option<f64> {
        None
    }
    /// The exact solution `u*(x)`, if known.
    fn exact(&self, x: &[f64]) -> Option<f64>;
}

/// Options that some equations read (the others ignore them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProblemOptions {
    /// Three-body problems: use the published code's (wrong) Laplacian in the source.
    pub compat_three_body_source: bool,
    /// Parabolic Allen–Cahn: the reference code's batch-wide terminal target (compat C7).
    pub compat_batch_max_target: bool,
}

/// One entry of the equation registry: what `stde train --equation NAME` builds. A new PDE is one
/// file implementing [`Equation`] plus one entry here.
#[derive(Clone, Copy, Debug)]
pub struct EquationEntry {
    /// The `--equation` name.
    pub name: &'static str,
    /// Smallest dimension the equation is defined for.
    pub min_dim: usize,
    /// Whether the equation provides `∂_j f` (so a gPINN weight is meaningful).
    pub gradient_term: bool,
    /// Largest dimension the equation is defined for.
    pub max_dim: usize,
    /// Dimension `stde train --equation NAME` uses unless told otherwise.
    pub default_dim: usize,
    /// Whether the input carries a time coordinate (last).
    pub time: bool,
    /// Whether the problem has a terminal condition (parabolic: horizon and terminal loss apply).
    pub terminal: bool,
    /// Whether the problem has a boundary loss (its batch and weight apply).
    pub boundary: bool,
    /// Builds the problem from the run's settings.
    pub build: fn(&ProblemSettings) -> Problem,
    /// One line: the equation and its exact solution or reference.
    pub summary: &'static str,
}

macro_rules! ball_entry {
    ($name:literal, $min_dim:expr, $gradient:expr, $summary:literal) => {
        EquationEntry {
            name: $name,
            min_dim: $min_dim,
            max_dim: usize::MAX,
            default_dim: 1000,
            gradient_term: $gradient,
            time: false,
            terminal: false,
            boundary: false,
            summary: $summary,
            build: |s| {
                let mut p = BallProblem::from_name($name, s.dim, s.problem_seed).expect("registered ball problem");
                p.compat_three_body_source = s.options.compat_three_body_source;
                let gpinn = (s.gpinn_weight > 0.0).then_some(s.gpinn_weight);
                Problem::elliptic(std::sync::Arc::new(p), s.batch, s.sampler, gpinn).with_gpinn_form(s.gpinn_form)
            },
        }
    };
}

macro_rules! parabolic_entry {
    ($name:literal, $summary:literal) => {
        EquationEntry {
            name: $name,
            min_dim: 1,
            max_dim: usize::MAX,
            default_dim: 100,
            gradient_term: false,
            time: true,
            terminal: true,
            boundary: false,
            summary: $summary,
            build: |s| {
                let mut eq = Parabolic::from_name($name, s.dim).expect("registered parabolic problem");
                eq.batch_max_target = s.options.compat_batch_max_target;
                Problem::parabolic(
                    eq,
                    s.horizon,
                    s.batch,
                    s.terminal_batch,
                    s.terminal_weight,
                    s.terminal_gradient_weight,
                )
                .with_path_sampler_if(s.path_steps)
            },
        }
    };
}

macro_rules! high_order_entry {
    ($name:literal, $dim:expr, $summary:literal) => {
        EquationEntry {
            name: $name,
            min_dim: $dim,
            max_dim: $dim,
            default_dim: $dim,
            gradient_term: false,
            time: true,
            terminal: false,
            boundary: true,
            build: |s| {
                highorder::text($name).expect("registered high-order problem").problem(
                    s.batch,
                    s.boundary_batch,
                    s.boundary_weight,
                )
            },
            summary: $summary,
        }
    };
}

macro_rules! catalogue_entry {
    ($name:literal, $min_dim:expr, $time:expr, $boundary:expr, $summary:literal) => {
        EquationEntry {
            name: $name,
            min_dim: $min_dim,
            max_dim: usize::MAX,
            default_dim: 100,
            gradient_term: false,
            time: $time,
            terminal: false,
            boundary: $boundary,
            build: |s| catalogue::problem($name, s.dim, s.batch, s.sampler, s.boundary_batch, s.boundary_weight),
            summary: $summary,
        }
    };
}

/// Every equation `stde train --equation` accepts.
pub const EQUATIONS: [EquationEntry; 21] = [
    ball_entry!(
        "poisson-two-body",
        2,
        true,
        "Δu = f in the unit ball, u* = (1 − ‖x‖²)·Σ c_i sin(x_i + cos(x_{i+1}) + x_{i+1} cos(x_i)) (§5)"
    ),
    ball_entry!(
        "allen-cahn-two-body",
        2,
        true,
        "Δu + u − u³ = f in the unit ball, two-body u* (§5)"
    ),
    ball_entry!(
        "sine-gordon-two-body",
        2,
        true,
        "Δu + sin u = f in the unit ball, two-body u* (§5)"
    ),
    ball_entry!(
        "poisson-three-body",
        3,
        false,
        "Δu = f in the unit ball, three-body u* (§5)"
    ),
    ball_entry!(
        "allen-cahn-three-body",
        3,
        false,
        "Δu + u − u³ = f in the unit ball, three-body u* (§5)"
    ),
    ball_entry!(
        "sine-gordon-three-body",
        3,
        false,
        "Δu + sin u = f in the unit ball, three-body u* (§5)"
    ),
    parabolic_entry!(
        "semilinear-heat",
        "∂_t u + Δu + (1 − u²)/(1 + u²) = 0, u(x, T) = 5/(10 + 2‖x‖²); u(0, 0) vs reference (§7)"
    ),
    parabolic_entry!(
        "allen-cahn-parabolic",
        "∂_t u + Δu + u − u³ = 0, u(x, T) = arctan(max_i x_i); u(0, 0) vs reference (§7)"
    ),
    parabolic_entry!(
        "sine-gordon-parabolic",
        "∂_t w + Δw + d·sin(w/d) = 0 (w = d·u), u(x, T) = 5/(10 + 2‖x‖²); u(0, 0) vs reference (§7)"
    ),
    EquationEntry {
        name: "poisson-cube",
        min_dim: 1,
        max_dim: usize::MAX,
        default_dim: 1000,
        gradient_term: false,
        time: false,
        terminal: false,
        boundary: true,
        build: |s| Problem::cube_poisson(s.dim, s.batch, s.boundary_batch, s.boundary_weight),
        summary: "Δu = u* on [0, 1]^d with u = u* on the boundary, u* = (1/d) Σ e^{x_i} (§9.5)",
    },
    high_order_entry!(
        "kdv-2d",
        2,
        "u_ty + u_xxxy + 3(u_y u_x)_x − u_xx + 2u_yy = f, u* = e^{−t} sin x cos y (§8.2)"
    ),
    high_order_entry!(
        "kp-2d",
        2,
        "u_tx + 6u_x² + 6u u_xx + u_xxxx + 3u_yy = f, u* = e^{−t} sin x cos y (§8.2)"
    ),
    high_order_entry!(
        "gkdv-1d",
        1,
        "R = u_t + u u_x + 0.0025 u_xxx − f with gPINN terms ∂_x R, ∂_t R (weight 1e-3), u* = e^{−t} sin πx (§8.2)"
    ),
    high_order_entry!(
        "kdv-2d-soliton",
        2,
        "u_ty + u_xxxy + 3(u_y u_x)_x − u_xx + 2u_yy = 0, u* = 1 + tanh((x + y − 2t)/2) (§8.2)"
    ),
    high_order_entry!(
        "kp-2d-soliton",
        2,
        "u_tx + 6u_x² + 6u u_xx + u_xxxx + 3u_yy = 0, u* = ½ sech²((x + y − 4t)/2) (§8.2)"
    ),
    high_order_entry!(
        "gkdv-1d-soliton",
        1,
        "u_t + u u_x + 0.0025 u_xxx = 0 with gPINN terms, u* = 3 sech²(10(x − t)) (§8.2)"
    ),
    catalogue_entry!(
        "hjb-lin",
        1,
        true,
        false,
        "u_t + Δu − (1/d)Σ|∂_i u|^1.75 = −2, u = Σx_i + (1 − t)·N, u* = Σx_i + 1 − t; x ~ N(0, I) (§9.1)"
    ),
    catalogue_entry!(
        "hjb-lqg",
        1,
        true,
        false,
        "u_t + Δu − ‖∇u‖² = 0, u = ln((1 + ‖x‖²)/2) + (1 − t)·N, u* by Cole–Hopf quadrature; x ~ N(0, I) (§9.2)"
    ),
    catalogue_entry!(
        "black-scholes-barenblatt",
        1,
        true,
        false,
        "u_t + 0.08Σx_i²u_ii − 0.05(u − x·∇u) = 0, u = ‖x‖² + (1 − t)·N, u* = e^{0.21(1 − t)}‖x‖²; x ~ N(0, I) (§9.3)"
    ),
    catalogue_entry!(
        "wave",
        1,
        true,
        true,
        "u_tt − Δu = 0 in the unit ball × [0, 1), u = Σ sinh x_i + t²N, u* = cosh t Σ sinh x_i (§9.4)"
    ),
    catalogue_entry!(
        "poisson-houman",
        2,
        false,
        false,
        "Δu = Δu* in the unit ball, u* = (1 − ‖x‖²)Σ a_i sin(x_i + 3cos x_{i+1} + x_{i+1}cos x_i) (§9.6)"
    ),
];

/// The registry entry named `name`.
pub fn lookup(name: &str) -> Option<&'static EquationEntry> {
    EQUATIONS.iter().find(|e| e.name == name)
}

/// The registered names, comma-separated (for messages).
pub fn equation_names() -> String {
    EQUATIONS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}
