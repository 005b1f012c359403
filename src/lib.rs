//! stde: Taylor-mode automatic differentiation over batched neural networks, with reverse-mode
//! parameter gradients, for training on losses built from high-order differential operators.
//!
//! Data flow: input jets ([`jet::InputJets`]) → network ([`nn::Mlp`]) → output jet coefficients →
//! loss → cotangents → [`nn::Mlp::backward`] → parameter gradients.

pub mod bench;
pub mod io;
pub mod jet;
pub mod nn;
pub mod real;
pub mod tensor;

pub use real::Real;
