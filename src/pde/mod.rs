//! PDEs as data: the inseparable elliptic problems on the unit ball (spec equations §5) with their
//! gradient-enhanced variants (§6), the semilinear parabolic problems (§7), their exact solutions,
//! sources, terminal data and samplers, and the [`Problem`] description the trainer consumes.
//!
//! A new PDE implements [`Equation`] (nonlinearity, source, exact solution) in one file, describes
//! itself as a [`Problem`] (domains, conditions, ansatz, evaluation) and adds one
//! [`EquationEntry`] to [`EQUATIONS`].

pub mod ball;
pub mod formula;
pub mod parabolic;
pub mod problem;
pub mod sampler;
pub mod vecmath;

pub use ball::{BallProblem, Nonlinearity, Solution};
pub use parabolic::{Parabolic, ParabolicKind};
pub use problem::{Condition, CubePoisson, Domain, Evaluation, Problem, ProblemSettings, Target, Term};
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
    /// Whether the problem is time-dependent (parabolic: horizon and terminal loss apply).
    pub time: bool,
    /// Whether the problem has a boundary loss (its batch and weight apply).
    pub boundary: bool,
    /// Builds the problem from the run's settings.
    pub build: fn(&ProblemSettings) -> Problem,
}

macro_rules! ball_entry {
    ($name:literal, $min_dim:expr, $gradient:expr) => {
        EquationEntry {
            name: $name,
            min_dim: $min_dim,
            gradient_term: $gradient,
            time: false,
            boundary: false,
            build: |s| {
                let mut p = BallProblem::from_name($name, s.dim, s.problem_seed).expect("registered ball problem");
                p.compat_three_body_source = s.options.compat_three_body_source;
                let gpinn = (s.gpinn_weight > 0.0).then_some(s.gpinn_weight);
                Problem::elliptic(std::sync::Arc::new(p), s.batch, s.sampler, gpinn)
            },
        }
    };
}

macro_rules! parabolic_entry {
    ($name:literal) => {
        EquationEntry {
            name: $name,
            min_dim: 1,
            gradient_term: false,
            time: true,
            boundary: false,
            build: |s| {
                let eq = Parabolic::from_name($name, s.dim).expect("registered parabolic problem");
                Problem::parabolic(
                    eq,
                    s.horizon,
                    s.batch,
                    s.terminal_batch,
                    s.terminal_weight,
                    s.terminal_gradient_weight,
                )
            },
        }
    };
}

/// Every equation `stde train --equation` accepts.
pub const EQUATIONS: [EquationEntry; 10] = [
    ball_entry!("poisson-two-body", 2, true),
    ball_entry!("allen-cahn-two-body", 2, true),
    ball_entry!("sine-gordon-two-body", 2, true),
    ball_entry!("poisson-three-body", 3, false),
    ball_entry!("allen-cahn-three-body", 3, false),
    ball_entry!("sine-gordon-three-body", 3, false),
    parabolic_entry!("semilinear-heat"),
    parabolic_entry!("allen-cahn-parabolic"),
    parabolic_entry!("sine-gordon-parabolic"),
    EquationEntry {
        name: "poisson-cube",
        min_dim: 1,
        gradient_term: false,
        time: false,
        boundary: true,
        build: |s| Problem::cube_poisson(s.dim, s.batch, s.boundary_batch, s.boundary_weight),
    },
];

/// The registry entry named `name`.
pub fn lookup(name: &str) -> Option<&'static EquationEntry> {
    EQUATIONS.iter().find(|e| e.name == name)
}

/// The registered names, comma-separated (for messages).
pub fn equation_names() -> String {
    EQUATIONS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}
