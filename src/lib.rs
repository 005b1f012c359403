//! stde: Taylor-mode automatic differentiation over batched neural networks, with reverse-mode
//! parameter gradients, for training on losses built from high-order differential operators.
//!
//! Data flow: input jets ([`jet::InputJets`]) → network ([`nn::Mlp`]) → output jet coefficients →
//! loss → cotangents → [`nn::Mlp::backward`] → parameter gradients.
//!
//! ```
//! use stde::jet::{InputJets, Jet, Tangent};
//! use stde::nn::{Architecture, Mlp, Tape};
//!
//! // A 3-dimensional tanh MLP, and 2-jets along e_0, e_1, e_2 at one point: y_2 = u_ii.
//! let net = Mlp::<f64>::new(Architecture::mlp(3, 16, 3), 0).unwrap();
//! let mut input = InputJets::new(2, 3, 3, vec![0.1, -0.2, 0.3]).unwrap();
//! input.set(1, Tangent::OneHot(vec![0, 1, 2])).unwrap();
//! let mut tape = Tape::default();
//! let out = net.forward(&input, &mut tape).unwrap();
//! let laplacian: f64 = (0..3).map(|r| out.derivative(2, r, 0)).sum();
//!
//! // Gradient of L = (Δu)² with respect to every parameter.
//! let mut cot = Jet::zeros_like(out);
//! for r in 0..3 {
//!     cot.add_derivative_cotangent(2, r, 0, 2.0 * laplacian);
//! }
//! let mut grad = vec![0.0; net.num_params()];
//! net.backward(&input, &mut tape, &cot, &mut grad, None).unwrap();
//! assert!(grad.iter().any(|g| *g != 0.0));
//! ```

pub mod apply;
pub mod bench;
pub mod dist;
pub mod formula;
pub mod io;
pub mod jet;
pub mod lanes;
pub mod list;
pub mod nn;
pub mod operator;
pub mod pde;
pub mod real;
pub mod tensor;
pub mod train;

pub use real::Real;
