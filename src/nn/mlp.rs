//! The multilayer perceptron: architecture, initialisation, flat parameters, Taylor-mode forward
//! pass and reverse-mode backward pass through it.

use super::first_layer::{self, SharedGrads, SharedParams, SharedTape};
use crate::jet::kernels::{activation_backward, activation_forward, affine_backward, affine_forward};
use crate::jet::{InputJets, Jet, PrimalBlockSums, Unary};
use crate::real::Real;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::fmt;
use std::str::FromStr;

/// Errors in building or applying a network.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NnError {
    /// The architecture is not usable.
    #[error("invalid network: {0}")]
    Architecture(String),
    /// Inputs do not match the network.
    #[error("input dimension {got} does not match the network's {expected}")]
    InputDim {
        /// Dimension supplied.
        got: usize,
        /// Dimension the network takes.
        expected: usize,
    },
    /// A cotangent shaped unlike the network output.
    #[error("output cotangent shape does not match the forward output")]
    CotangentShape,
    /// A parameter or gradient buffer of the wrong length.
    #[error("parameter buffer has {got} values, the network has {expected}")]
    ParamLength {
        /// Length supplied.
        got: usize,
        /// Parameter count.
        expected: usize,
    },
}

/// Hidden-layer activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Activation {
    /// `tanh` (default, as in the paper).
    #[default]
    Tanh,
    /// `sin`.
    Sin,
    /// logistic sigmoid.
    Sigmoid,
    /// `ln(1+e^x)`.
    Softplus,
}

impl Activation {
    /// The element-wise rule from the rule table.
    pub fn rule(self) -> Unary {
        match self {
            Activation::Tanh => Unary::Tanh,
            Activation::Sin => Unary::Sin,
            Activation::Sigmoid => Unary::Sigmoid,
            Activation::Softplus => Unary::Softplus,
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Tanh => "tanh",
            Activation::Sin => "sin",
            Activation::Sigmoid => "sigmoid",
            Activation::Softplus => "softplus",
        })
    }
}

impl FromStr for Activation {
    type Err = NnError;
    fn from_str(s: &str) -> Result<Self, NnError> {
        match s {
            "tanh" => Ok(Activation::Tanh),
            "sin" => Ok(Activation::Sin),
            "sigmoid" => Ok(Activation::Sigmoid),
            "softplus" => Ok(Activation::Softplus),
            _ => Err(NnError::Architecture(format!(
                "unknown activation '{s}' (expected tanh, sin, sigmoid or softplus)"
            ))),
        }
    }
}

/// The shape of a network: `input_dim → hidden… → output_dim`, activation after every hidden
/// layer, affine output. With `block_size = Some(B)`, the input first goes through the shared
/// block map `φ_k = act(w·x_[block k] + β)` (`d/B` features; spec equations §1.3).
#[derive(Clone, Debug, PartialEq)]
pub struct Architecture {
    /// Input dimension `d`.
    pub input_dim: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Output dimension (1 for a scalar PDE solution).
    pub output_dim: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// First-layer weight sharing block size `B` (must divide `d`).
    pub block_size: Option<usize>,
}

impl Architecture {
    /// The paper's default: `depth` affine layers (`depth − 1` hidden of `width`), scalar output, tanh.
    pub fn mlp(input_dim: usize, width: usize, depth: usize) -> Architecture {
        Architecture {
            input_dim,
            hidden: vec![width; depth.saturating_sub(1)],
            output_dim: 1,
            activation: Activation::Tanh,
            block_size: None,
        }
    }

    fn validate(&self) -> Result<(), NnError> {
        let bad = |m: String| Err(NnError::Architecture(m));
        if self.input_dim == 0 || self.output_dim == 0 || self.hidden.contains(&0) {
            return bad("every layer width must be positive".into());
        }
        if let Some(b) = self.block_size {
            if b == 0 || !self.input_dim.is_multiple_of(b) {
                return bad(format!(
                    "block size {b} does not divide the input dimension {}",
                    self.input_dim
                ));
            }
            if self.hidden.is_empty() {
                return bad("weight sharing needs at least one hidden layer".into());
            }
        }
        Ok(())
    }
}

/// Where one affine layer's tensors sit in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AffineLayout {
    /// Input width.
    pub fan_in: usize,
    /// Output width.
    pub fan_out: usize,
    /// Offset of the `[fan_in × fan_out]` weight (row-major, `y = x·W + b`).
    pub weight: usize,
    /// Offset of the `[fan_out]` bias.
    pub bias: usize,
}

/// Where the shared block map sits in the flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SharedLayout {
    /// Block size `B`.
    pub block: usize,
    /// Offset of `w` (`[B]`).
    pub w: usize,
    /// Offset of `β`.
    pub beta: usize,
}

/// A multilayer perceptron with one flat parameter vector (the optimiser's view).
#[derive(Clone, Debug)]
pub struct Mlp<T> {
    arch: Architecture,
    params: Vec<T>,
    affine: Vec<AffineLayout>,
    shared: Option<SharedLayout>,
}

/// Everything a forward pass keeps for the backward pass, reused across steps (buffers only grow).
#[derive(Clone, Debug, Default)]
pub struct Tape<T> {
    shared: SharedTape<T>,
    /// Affine outputs (pre-activations; the last one is the network output).
    z: Vec<Jet<T>>,
    /// Activations (inputs of affine layers 1..).
    h: Vec<Jet<T>>,
    /// Derivative series of the activations.
    g: Vec<Jet<T>>,
    bar_z: Jet<T>,
    bar_h: Jet<T>,
}

impl<T: Real> Tape<T> {
    /// The network output of the last forward pass (the shape a cotangent must have).
    pub fn output(&self) -> Option<&Jet<T>> {
        self.z.last()
    }

    /// Bytes held by the tape's buffers (what a forward pass keeps for backward, plus scratch).
    pub fn bytes(&self) -> usize {
        let jets = self
            .z
            .iter()
            .chain(&self.h)
            .chain(&self.g)
            .chain([&self.bar_z, &self.bar_h]);
        jets.map(|j| j.primal.capacity() + j.tangents.capacity()).sum::<usize>() * std::mem::size_of::<T>()
    }
}

impl<T: Real> Mlp<T> {
    /// A network with parameters drawn from `seed` (spec equations §1.2): weights
    /// `U(±1/√fan_in)`, biases `U(±1/√fan_out)`; shared map `w ~ U(±1/√B)`, `β ~ U(−1, 1)`.
    pub fn new(arch: Architecture, seed: u64) -> Result<Mlp<T>, NnError> {
        let mut net = Mlp::zeros(arch)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut uniform = |n: usize, bound: f64, out: &mut [T]| {
            for x in out.iter_mut().take(n) {
                *x = T::c(rng.random_range(-bound..bound));
            }
        };
        if let Some(s) = net.shared {
            uniform(s.block, 1.0 / (s.block as f64).sqrt(), &mut net.params[s.w..]);
            uniform(1, 1.0, &mut net.params[s.beta..]);
        }
        for l in net.affine.clone() {
            uniform(
                l.fan_in * l.fan_out,
                1.0 / (l.fan_in as f64).sqrt(),
                &mut net.params[l.weight..],
            );
            uniform(l.fan_out, 1.0 / (l.fan_out as f64).sqrt(), &mut net.params[l.bias..]);
        }
        Ok(net)
    }

    /// A network with every parameter zero (to be filled, e.g. from a checkpoint).
    pub fn zeros(arch: Architecture) -> Result<Mlp<T>, NnError> {
        arch.validate()?;
        let mut offset = 0;
        let shared = arch.block_size.map(|b| {
            let s = SharedLayout {
                block: b,
                w: offset,
                beta: offset + b,
            };
            offset += b + 1;
            s
        });
        let first_in = arch.block_size.map_or(arch.input_dim, |b| arch.input_dim / b);
        let widths: Vec<usize> = std::iter::once(first_in)
            .chain(arch.hidden.iter().copied())
            .chain(std::iter::once(arch.output_dim))
            .collect();
        let affine = widths
            .windows(2)
            .map(|w| {
                let l = AffineLayout {
                    fan_in: w[0],
                    fan_out: w[1],
                    weight: offset,
                    bias: offset + w[0] * w[1],
                };
                offset += w[0] * w[1] + w[1];
                l
            })
            .collect();
        Ok(Mlp {
            arch,
            params: vec![T::zero(); offset],
            affine,
            shared,
        })
    }

    /// The architecture.
    pub fn architecture(&self) -> &Architecture {
        &self.arch
    }
    /// The flat parameter vector.
    pub fn params(&self) -> &[T] {
        &self.params
    }
    /// The flat parameter vector, mutable (for optimisers and loading).
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    /// Number of parameters.
    pub fn num_params(&self) -> usize {
        self.params.len()
    }
    /// Layout of the affine layers, input to output.
    pub fn affine_layers(&self) -> &[AffineLayout] {
        &self.affine
    }
    /// The first affine layer's weight in the flat parameter vector (its `[fan_in × fan_out]`
    /// entries; at the start unless there is a shared block map).
    pub fn first_weight_range(&self) -> std::ops::Range<usize> {
        let first = self.affine[0];
        first.weight..first.weight + first.fan_in * first.fan_out
    }
    /// Layout of the shared block map, if any.
    pub fn shared_layout(&self) -> Option<SharedLayout> {
        self.shared
    }

    /// The primal pre-activations of the weight-shared first stage at one point `x` (one per
    /// block, see [`first_layer::block_pre_activation`]), into `pre`; `false` (and `pre` left
    /// alone) without weight sharing.
    pub fn block_pre_activation(&self, x: &[T], pre: &mut Vec<T>) -> bool {
        if self.shared.is_none() {
            return false;
        }
        pre.clear();
        self.block_pre_activation_prefix(x, pre)
    }

    /// [`Mlp::block_pre_activation`] block by block as a point becomes final: given a prefix
    /// `x` of the point, appends to `pre` the pre-activations of the blocks it completes beyond
    /// the `pre.len()` already there (the same values as the whole point's); `false` (and `pre`
    /// left alone) without weight sharing.
    pub fn block_pre_activation_prefix(&self, x: &[T], pre: &mut Vec<T>) -> bool {
        let Some(s) = &self.shared else { return false };
        let p = self.shared_params(s);
        let (done, complete) = (pre.len(), x.len() / s.block);
        if complete > done {
            pre.resize(complete, T::zero());
            first_layer::block_pre_activation(&x[done * s.block..complete * s.block], p.w, p.beta, &mut pre[done..]);
        }
        true
    }

    /// [`PrimalBlockSums`] of `values` (`[points × blocks]` from
    /// [`Mlp::block_pre_activation`]) with this network's shared `w` and `β`; `None` without
    /// weight sharing.
    pub fn primal_block_sums(&self, values: Vec<T>) -> Option<PrimalBlockSums<T>> {
        let s = self.shared.as_ref()?;
        let p = self.shared_params(s);
        Some(PrimalBlockSums {
            w: p.w.to_vec(),
            beta: p.beta,
            values,
        })
    }

    /// The same network in another precision.
    pub fn cast<U: Real>(&self) -> Mlp<U> {
        Mlp {
            arch: self.arch.clone(),
            params: self.params.iter().map(|x| U::c(x.as_f64())).collect(),
            affine: self.affine.clone(),
            shared: self.shared,
        }
    }

    fn weight(&self, l: &AffineLayout) -> &[T] {
        &self.params[l.weight..l.weight + l.fan_in * l.fan_out]
    }
    fn bias(&self, l: &AffineLayout) -> &[T] {
        &self.params[l.bias..l.bias + l.fan_out]
    }

    fn shared_params(&self, s: &SharedLayout) -> SharedParams<'_, T> {
        let l = &self.affine[0];
        SharedParams {
            w: &self.params[s.w..s.w + s.block],
            beta: self.params[s.beta],
            weight: self.weight(l),
            bias: self.bias(l),
        }
    }

    /// Pushes the input jets through the network. Returns the output jet (normalised coefficients;
    /// read the derivative convention with [`Jet::derivative`]). The tape keeps what backward needs.
    pub fn forward<'t>(&self, input: &InputJets<T>, tape: &'t mut Tape<T>) -> Result<&'t Jet<T>, NnError> {
        if input.dim() != self.arch.input_dim {
            return Err(NnError::InputDim {
                got: input.dim(),
                expected: self.arch.input_dim,
            });
        }
        let n = self.affine.len();
        tape.z.resize_with(n, Jet::default);
        tape.h.resize_with(n - 1, Jet::default);
        tape.g.resize_with(n - 1, Jet::default);
        let act = self.arch.activation.rule();
        let first = &self.affine[0];
        match &self.shared {
            None => first_layer::input_affine_forward(
                input,
                self.weight(first),
                self.bias(first),
                first.fan_out,
                &mut tape.z[0],
            ),
            Some(s) => first_layer::shared_forward(
                input,
                act,
                &self.shared_params(s),
                first.fan_out,
                &mut tape.shared,
                &mut tape.z[0],
            ),
        }
        for l in 1..n {
            activation_forward(act, &tape.z[l - 1], &mut tape.h[l - 1], &mut tape.g[l - 1]);
            let layer = &self.affine[l];
            let (z_lo, z_hi) = tape.z.split_at_mut(l);
            let _ = z_lo;
            affine_forward(
                &tape.h[l - 1],
                self.weight(layer),
                self.bias(layer),
                layer.fan_out,
                &mut z_hi[0],
            );
        }
        Ok(&tape.z[n - 1])
    }

    /// Reverse mode through the Taylor pass of the last [`Mlp::forward`] on `input`.
    ///
    /// `cotangent` holds `∂L/∂(output coefficients)`, shaped like the forward output (normalised
    /// coefficients; fill it from derivative-convention cotangents with
    /// [`Jet::add_derivative_cotangent`]). Accumulates `∂L/∂θ` into `grad` (flat, same layout as
    /// the parameters) and, if given, `∂L/∂x` into `input_grad` (`[points × d]`).
    pub fn backward(
        &self,
        input: &InputJets<T>,
        tape: &mut Tape<T>,
        cotangent: &Jet<T>,
        grad: &mut [T],
        input_grad: Option<&mut [T]>,
    ) -> Result<(), NnError> {
        if grad.len() != self.params.len() {
            return Err(NnError::ParamLength {
                got: grad.len(),
                expected: self.params.len(),
            });
        }
        let n = self.affine.len();
        let out = tape.z.get(n - 1).ok_or(NnError::CotangentShape)?;
        if cotangent.primal.len() != out.primal.len()
            || cotangent.tangents.len() != out.tangents.len()
            || cotangent.support != out.support
        {
            return Err(NnError::CotangentShape);
        }
        if let Some(xg) = &input_grad
            && xg.len() != input.points() * input.dim()
        {
            return Err(NnError::InputDim {
                got: xg.len() / input.points().max(1),
                expected: input.dim(),
            });
        }
        let mut bar_z = std::mem::take(&mut tape.bar_z);
        let mut bar_h = std::mem::take(&mut tape.bar_h);
        for l in (1..n).rev() {
            let layer = self.affine[l];
            let (wg, bg) = split_grad(grad, &layer);
            let zbar = if l == n - 1 { cotangent } else { &bar_z };
            affine_backward(&tape.h[l - 1], zbar, self.weight(&layer), wg, bg, Some(&mut bar_h));
            activation_backward(&tape.z[l - 1], &tape.g[l - 1], &bar_h, &mut bar_z);
        }
        let zbar = if n == 1 { cotangent } else { &bar_z };
        let first = self.affine[0];
        match &self.shared {
            None => {
                let (wg, bg) = split_grad(grad, &first);
                first_layer::input_affine_backward(input, zbar, self.weight(&first), wg, bg, input_grad);
            }
            Some(s) => {
                let (head, tail) = grad.split_at_mut(first.weight);
                let (wg, rest) = tail.split_at_mut(first.fan_in * first.fan_out);
                let (w_grad, beta_rest) = head[s.w..].split_at_mut(s.block);
                let grads = SharedGrads {
                    w: w_grad,
                    beta: &mut beta_rest[0],
                    weight: wg,
                    bias: &mut rest[..first.fan_out],
                };
                first_layer::shared_backward(input, &self.shared_params(s), &tape.shared, zbar, grads, input_grad);
            }
        }
        tape.bar_z = bar_z;
        tape.bar_h = bar_h;
        Ok(())
    }
}

/// The weight and bias gradient slices of one affine layer.
fn split_grad<'a, T>(grad: &'a mut [T], l: &AffineLayout) -> (&'a mut [T], &'a mut [T]) {
    let (w, rest) = grad[l.weight..].split_at_mut(l.fan_in * l.fan_out);
    (w, &mut rest[..l.fan_out])
}
