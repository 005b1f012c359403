//! Taylor arithmetic: the per-primitive rule table, symbolic-zero tracking, batched jets and
//! structured input tangents.

pub mod batch;
pub mod collapsed;
pub mod input;
pub mod kernels;
pub mod rules;
pub mod support;

pub use batch::Jet;
pub use input::{InputError, InputJets, PrimalBlockSums, Tangent};
pub use rules::Unary;
pub use support::{MAX_ORDER, Support};
