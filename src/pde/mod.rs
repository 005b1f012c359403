//! PDEs: the inseparable elliptic benchmark problems on the unit ball (spec equations §5), their
//! exact solutions and analytic source terms, and the samplers.
//!
//! A new PDE implements [`Equation`] (residual nonlinearity, source, exact solution) in one file
//! and adds one [`EquationEntry`] to [`EQUATIONS`];
//! the trainer supplies the hard-constraint ansatz `u = (1 − ‖x‖²)·N(x)` and the Laplacian estimate.

pub mod ball;
pub mod sampler;
pub mod vecmath;

pub use ball::{BallProblem, Nonlinearity, Solution};
pub use sampler::{BallSampler, SamplerKind};

/// An elliptic PDE `Δu + F(u) = f` on the unit ball with `u = 0` on the boundary.
pub trait Equation: Send + Sync {
    /// Display name, e.g. `allen-cahn-two-body`.
    fn name(&self) -> String;
    /// Spatial dimension `d`.
    fn dim(&self) -> usize;
    /// `F(u)` and `F'(u)`.
    fn nonlinearity(&self, u: f64) -> (f64, f64);
    /// The source `f(x)`.
    fn source(&self, x: &[f64]) -> f64;
    /// The source at an f32 point, computed in f64 (the default widens the point first; an
    /// implementation can avoid that copy).
    fn source_f32(&self, x: &[f32]) -> f64 {
        let wide: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        self.source(&wide)
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
    /// Builds the instance for a dimension and problem seed.
    pub build: fn(dim: usize, problem_seed: u64, options: ProblemOptions) -> Box<dyn Equation>,
}

macro_rules! ball_entry {
    ($name:literal, $min_dim:expr) => {
        EquationEntry {
            name: $name,
            min_dim: $min_dim,
            build: |dim, seed, options| {
                let mut p = BallProblem::from_name($name, dim, seed).expect("registered ball problem");
                p.compat_three_body_source = options.compat_three_body_source;
                Box::new(p)
            },
        }
    };
}

/// Every equation `stde train --equation` accepts.
pub const EQUATIONS: [EquationEntry; 6] = [
    ball_entry!("poisson-two-body", 2),
    ball_entry!("allen-cahn-two-body", 2),
    ball_entry!("sine-gordon-two-body", 2),
    ball_entry!("poisson-three-body", 3),
    ball_entry!("allen-cahn-three-body", 3),
    ball_entry!("sine-gordon-three-body", 3),
];

/// The registry entry named `name`.
pub fn lookup(name: &str) -> Option<&'static EquationEntry> {
    EQUATIONS.iter().find(|e| e.name == name)
}

/// The registered names, comma-separated (for messages).
pub fn equation_names() -> String {
    EQUATIONS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}
