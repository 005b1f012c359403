//! Networks: layers, the MLP with optional first-layer weight sharing, initialisation and the
//! flat parameter vector.

pub mod ansatz;
pub mod checkpoint;
pub mod collapsed;
pub mod first_layer;
pub mod mlp;

pub use ansatz::Ansatz;
pub use collapsed::CollapsedTape;
pub use mlp::{Activation, AffineLayout, Architecture, Mlp, NnError, SharedLayout, Tape};
