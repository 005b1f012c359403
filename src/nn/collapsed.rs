//! Collapsed propagation through the MLP: 2-jets `(x; v_d, 0)` whose operator needs only
//! `Σ_d y₂` (Laplacian, SDGD, Hutchinson, any sum of second-order directional derivatives).

use super::first_layer::{JetRows, OneHotWeightGrad, input_affine_backward_rows, input_tangent_forward};
use super::mlp::{Mlp, NnError};
use crate::jet::collapsed::{
    CollapsedJet, collapsed_activation_backward, collapsed_activation_forward, collapsed_affine_backward,
    collapsed_affine_forward,
};
use crate::jet::{InputJets, Support, Tangent};
use crate::real::Real;
use crate::tensor::{self, Write};

/// What a collapsed forward pass keeps for its backward pass (buffers reused across steps).
#[derive(Clone, Debug, Default)]
pub struct CollapsedTape<T> {
    z: Vec<CollapsedJet<T>>,
    h: Vec<CollapsedJet<T>>,
    local: Vec<Vec<T>>,
    bar_z: CollapsedJet<T>,
    bar_h: CollapsedJet<T>,
}

impl<T: Real> CollapsedTape<T> {
    /// The first layer's weight gradient left by [`Mlp::backward_collapsed_deferring_first`]
    /// (when it returned `true`), for the inputs it ran on: their points `x` (`[points × d]`)
    /// and one-hot rows `coords`; `entries` is scratch kept by the caller. `None` if these do
    /// not fit the tape.
    pub fn first_weight_grad<'a>(
        &'a self,
        x: &'a [T],
        dim: usize,
        coords: &[usize],
        entries: &'a mut Vec<(usize, usize)>,
    ) -> Option<OneHotWeightGrad<'a, T>> {
        let rows = JetRows {
            width: self.bar_z.width,
            support: Support::from_orders(&[1]),
            primal: self.bar_z.primal(),
            tangents: self.bar_z.first(),
        };
        OneHotWeightGrad::new(x, dim, coords, rows, entries)
    }

    /// Bytes held by the tape's buffers.
    pub fn bytes(&self) -> usize {
        let jets = self.z.iter().chain(&self.h).chain([&self.bar_z, &self.bar_h]);
        let n: usize = jets.map(|j| j.data().len()).sum();
        (n + self.local.iter().map(Vec::capacity).sum::<usize>()) * std::mem::size_of::<T>()
    }
}

fn check_input<T: Real>(net: &Mlp<T>, input: &InputJets<T>) -> Result<(), NnError> {
    if net.shared_layout().is_some() {
        return Err(NnError::Architecture(
            "collapsed propagation supports MLPs without weight sharing".into(),
        ));
    }
    if input.dim() != net.architecture().input_dim {
        return Err(NnError::InputDim {
            got: input.dim(),
            expected: net.architecture().input_dim,
        });
    }
    if input.order() != 2 || *input.slot(2) != Tangent::Zero {
        return Err(NnError::Architecture(
            "collapsed propagation takes 2-jets (x; v, 0)".into(),
        ));
    }
    Ok(())
}

impl<T: Real> Mlp<T> {
    /// Collapsed forward pass of the 2-jets `(x; v_d, 0)` in `input` (slot 1 only). The output
    /// holds `u`, every `y₁,d` and `Σ_d c₂` per point (`Σ_d y₂ = 2·sum2`): the same values as
    /// [`Mlp::forward`] summed over directions, with one second-order buffer per point.
    pub fn forward_collapsed<'t>(
        &self,
        input: &InputJets<T>,
        tape: &'t mut CollapsedTape<T>,
    ) -> Result<&'t CollapsedJet<T>, NnError> {
        self.forward_collapsed_partly(input, input.dirs(), tape)
    }

    /// As [`Mlp::forward_collapsed`], with only the first `summed` directions entering the
    /// summed second order; the others are carried to first order only (a time derivative beside
    /// a spatial Laplacian). [`Mlp::backward_collapsed`] follows the same split.
    pub fn forward_collapsed_partly<'t>(
        &self,
        input: &InputJets<T>,
        summed: usize,
        tape: &'t mut CollapsedTape<T>,
    ) -> Result<&'t CollapsedJet<T>, NnError> {
        check_input(self, input)?;
        if summed > input.dirs() {
            return Err(NnError::Architecture(format!(
                "{summed} summed directions of {} in the input",
                input.dirs()
            )));
        }
        let layers = self.affine_layers();
        let n = layers.len();
        tape.z.resize_with(n, CollapsedJet::default);
        tape.h.resize_with(n - 1, CollapsedJet::default);
        tape.local.resize_with(n - 1, Vec::new);
        let first = &layers[0];
        let p = self.params();
        let w0 = &p[first.weight..first.weight + first.fan_in * first.fan_out];
        let z0 = &mut tape.z[0];
        z0.reshape(input.points(), input.dirs(), first.fan_out);
        z0.summed = summed;
        let (z0_primal, z0_first, z0_sum2) = z0.parts_mut();
        tensor::affine(
            input.points(),
            input.dim(),
            first.fan_out,
            input.primal(),
            w0,
            &p[first.bias..first.bias + first.fan_out],
            z0_primal,
        );
        input_tangent_forward(input, w0, first.fan_out, z0_first);
        z0_sum2.fill(T::zero());
        let act = self.architecture().activation.rule();
        for l in 1..n {
            collapsed_activation_forward(act, &tape.z[l - 1], &mut tape.h[l - 1], &mut tape.local[l - 1]);
            let layer = &layers[l];
            let (w, b) = (
                &p[layer.weight..layer.weight + layer.fan_in * layer.fan_out],
                &p[layer.bias..layer.bias + layer.fan_out],
            );
            let (_, hi) = tape.z.split_at_mut(l);
            collapsed_affine_forward(&tape.h[l - 1], w, b, layer.fan_out, &mut hi[0]);
        }
        Ok(&tape.z[n - 1])
    }

    /// Reverse mode through [`Mlp::forward_collapsed`]: `cotangent` holds `∂L/∂(u, c₁, Σc₂)`
    /// (normalised: `∂L/∂sum2 = 2·∂L/∂(Σ_d y₂)`). Accumulates `∂L/∂θ` into `grad`.
    pub fn backward_collapsed(
        &self,
        input: &InputJets<T>,
        tape: &mut CollapsedTape<T>,
        cotangent: &CollapsedJet<T>,
        grad: &mut [T],
    ) -> Result<(), NnError> {
        self.backward_collapsed_with(input, tape, cotangent, grad, false)
            .map(|_| ())
    }

    /// [`Mlp::backward_collapsed`] for a caller that did not zero the first layer's weight
    /// gradient (the range `[0, d·width)` of `grad`; everything else is accumulated as usual).
    /// With one-hot first-order input tangents and at least two layers that range is left alone
    /// and `true` returned: the caller builds `W̄` block by block from the tape
    /// ([`CollapsedTape::first_weight_grad`]); otherwise the range is overwritten with `W̄` and
    /// `false` returned.
    pub fn backward_collapsed_deferring_first(
        &self,
        input: &InputJets<T>,
        tape: &mut CollapsedTape<T>,
        cotangent: &CollapsedJet<T>,
        grad: &mut [T],
    ) -> Result<bool, NnError> {
        self.backward_collapsed_with(input, tape, cotangent, grad, true)
    }

    fn backward_collapsed_with(
        &self,
        input: &InputJets<T>,
        tape: &mut CollapsedTape<T>,
        cotangent: &CollapsedJet<T>,
        grad: &mut [T],
        defer_first: bool,
    ) -> Result<bool, NnError> {
        check_input(self, input)?;
        if grad.len() != self.num_params() {
            return Err(NnError::ParamLength {
                got: grad.len(),
                expected: self.num_params(),
            });
        }
        let layers = self.affine_layers();
        let n = layers.len();
        let out = tape.z.get(n - 1).ok_or(NnError::CotangentShape)?;
        if cotangent.points != out.points || cotangent.dirs != out.dirs || cotangent.width != out.width {
            return Err(NnError::CotangentShape);
        }
        let p = self.params();
        let mut bar_z = std::mem::take(&mut tape.bar_z);
        let mut bar_h = std::mem::take(&mut tape.bar_h);
        for l in (1..n).rev() {
            let layer = layers[l];
            let (wg, rest) = grad[layer.weight..].split_at_mut(layer.fan_in * layer.fan_out);
            let zbar = if l == n - 1 { cotangent } else { &bar_z };
            let w = &p[layer.weight..layer.weight + layer.fan_in * layer.fan_out];
            collapsed_affine_backward(&tape.h[l - 1], zbar, w, wg, &mut rest[..layer.fan_out], &mut bar_h);
            collapsed_activation_backward(&tape.z[l - 1], &tape.local[l - 1], &bar_h, &mut bar_z);
        }
        // first layer: its second-order input is zero, so only the primal and c₁ parts carry gradient
        let zbar = if n == 1 { cotangent } else { &bar_z };
        let first = layers[0];
        let rows = JetRows {
            width: zbar.width,
            support: Support::from_orders(&[1]),
            primal: zbar.primal(),
            tangents: zbar.first(),
        };
        let (wg, rest) = grad[first.weight..].split_at_mut(first.fan_in * first.fan_out);
        let w0 = &p[first.weight..first.weight + first.fan_in * first.fan_out];
        let deferred = defer_first && n > 1 && matches!(input.slot(1), Tangent::OneHot(_));
        // a caller that asked to defer did not zero the range: what is not deferred overwrites it
        let write = if defer_first {
            Write::Overwrite
        } else {
            Write::Accumulate
        };
        let weight_grad = (!deferred).then_some((wg, write));
        input_affine_backward_rows(input, rows, w0, weight_grad, &mut rest[..first.fan_out], None);
        tape.bar_z = bar_z;
        tape.bar_h = bar_h;
        Ok(deferred)
    }
}
