//! PDEs: the inseparable elliptic benchmark problems on the unit ball (spec equations §5), their
//! exact solutions and analytic source terms, and the samplers.
//!
//! A new PDE implements [`Equation`] (residual nonlinearity, source, exact solution) in one file;
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
    /// The exact solution `u*(x)`, if known.
    fn exact(&self, x: &[f64]) -> Option<f64>;
}

/// Every equation name `stde train --equation` accepts.
pub const EQUATIONS: [&str; 6] = [
    "poisson-two-body",
    "allen-cahn-two-body",
    "sine-gordon-two-body",
    "poisson-three-body",
    "allen-cahn-three-body",
    "sine-gordon-three-body",
];
