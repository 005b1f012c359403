//! The input gradient `∇u` at every point by one reverse sweep, and the parameter gradient of a
//! loss that reads it by one more jet — the cost of a gradient term is independent of `d` beyond
//! the first layer's `O(d)` products.
//!
//! With `u = φ + ψ·N`: `∇u = ∇φ + ψ∇N + N∇ψ`, `∇N` from one reverse pass through the network
//! (cotangent 1 on `N`; the parameter gradient of that pass is discarded). For a loss `ℓ(∇u)`,
//! `λ = ∂ℓ/∂(∇u)` per point held fixed gives `∂ℓ/∂θ = ∂/∂θ Σ_p λ_p·∇u_p`, and `λ·∇u` is the
//! first-order output of `u` along the curve `x + sλ`: `λ·∇φ + (λ·∇ψ)·N₀ + ψ·N₁` with `N₀, N₁`
//! the 1-jet of the network along the dense tangent `λ`. One forward and one reverse pass of that
//! jet ([`GradientSweep::backward`]) give the parameter gradient.

use super::eval::EvalError;
use crate::formula::Formula;
use crate::jet::{InputJets, Jet, Tangent};
use crate::nn::{Ansatz, Mlp, Tape};
use crate::real::Real;

/// Reusable state of the gradient sweep at one batch of points.
#[derive(Debug, Default)]
pub struct GradientSweep<T> {
    tape: Tape<T>,
    cotangent: Jet<T>,
    /// The discarded parameter gradient of the sweep's reverse pass.
    scratch: Vec<T>,
    /// `∇N`, `[n × din]`, in the network's precision.
    grad_n: Vec<T>,
    /// `∇u`, `[n × din]`.
    grad_u: Vec<f64>,
    /// `N` and `ψ` per point.
    n_value: Vec<f64>,
    psi: Vec<f64>,
    /// `∇ψ`, `[n × din]` (empty for the identity ansatz).
    grad_psi: Vec<f64>,
    din: usize,
}

fn input_err(e: crate::jet::InputError) -> EvalError {
    EvalError::Network(crate::nn::NnError::Architecture(e.to_string()))
}

impl<T: Real> GradientSweep<T> {
    /// `∇u` at `points` (`[n × din]`, moved in and handed back) for `u = φ + ψ·N`; read it with
    /// [`GradientSweep::gradient`].
    pub fn forward(
        &mut self,
        net: &Mlp<T>,
        ansatz: Ansatz,
        offset: Option<&Formula>,
        points: Vec<T>,
    ) -> Result<Vec<T>, EvalError> {
        let din = net.architecture().input_dim;
        if din == 0 || !points.len().is_multiple_of(din) {
            return Err(EvalError::Points {
                got: points.len(),
                dim: din,
            });
        }
        let n = points.len() / din;
        self.din = din;
        let input = InputJets::new(1, din, 1, points).map_err(input_err)?;
        let out = net.forward(&input, &mut self.tape)?;
        self.n_value.clear();
        self.n_value.extend((0..n).map(|p| out.derivative(0, p, 0).as_f64()));
        let mut cot = std::mem::take(&mut self.cotangent);
        cot.reset(out.order, out.points, out.dirs, out.width, out.support);
        cot.primal.fill(T::one());
        self.scratch.clear();
        self.scratch.resize(net.num_params(), T::zero());
        self.grad_n.clear();
        self.grad_n.resize(n * din, T::zero());
        net.backward(&input, &mut self.tape, &cot, &mut self.scratch, Some(&mut self.grad_n))?;
        self.cotangent = cot;
        let points = input.into_primal();
        // ∇u = ψ∇N + N∇ψ + ∇φ
        self.grad_u.clear();
        self.grad_u.extend(self.grad_n.iter().map(|v| v.as_f64()));
        self.psi.clear();
        self.grad_psi.clear();
        if ansatz != Ansatz::Identity {
            self.grad_psi.resize(n * din, 0.0);
            for p in 0..n {
                let x = &points[p * din..(p + 1) * din];
                let psi = ansatz.value(x);
                let gp = &mut self.grad_psi[p * din..(p + 1) * din];
                ansatz.gradient(x, gp);
                let nv = self.n_value[p];
                for (g, dpsi) in self.grad_u[p * din..(p + 1) * din].iter_mut().zip(gp.iter()) {
                    *g = psi * *g + nv * dpsi;
                }
                self.psi.push(psi);
            }
        }
        if let Some(phi) = offset {
            let mut ws = phi.workspace(0);
            let mut wide = vec![0.0; din];
            let mut dphi = vec![0.0; din];
            for p in 0..n {
                wide.iter_mut()
                    .zip(&points[p * din..(p + 1) * din])
                    .for_each(|(w, v)| *w = v.as_f64());
                phi.eval_with_input_gradient(&mut ws, &wide, f64::NAN, &[], &mut dphi);
                self.grad_u[p * din..(p + 1) * din]
                    .iter_mut()
                    .zip(&dphi)
                    .for_each(|(g, d)| *g += d);
            }
        }
        Ok(points)
    }

    /// `∂u/∂x_i` at point `p` for every input coordinate `i` (after [`GradientSweep::forward`]).
    pub fn gradient(&self, p: usize) -> &[f64] {
        &self.grad_u[p * self.din..(p + 1) * self.din]
    }

    /// Accumulates `∂/∂θ Σ_p λ_p·∇u_p` into `grad` for `lambda` (`[n × din]`, held fixed) at the
    /// points of the last forward (`points`, moved in and handed back): one 1-jet along `λ`.
    pub fn backward(
        &mut self,
        net: &Mlp<T>,
        points: Vec<T>,
        lambda: &[f64],
        grad: &mut [T],
    ) -> Result<Vec<T>, EvalError> {
        let din = self.din;
        let n = points.len() / din.max(1);
        if lambda.len() != n * din || n != self.n_value.len() {
            return Err(EvalError::Points {
                got: lambda.len(),
                dim: din,
            });
        }
        let mut tangent = std::mem::take(&mut self.grad_n);
        tangent.clear();
        tangent.extend(lambda.iter().map(|&v| T::c(v)));
        let mut input = InputJets::new(1, din, 1, points).map_err(input_err)?;
        input.set(1, Tangent::Dense(tangent)).map_err(input_err)?;
        let out = net.forward(&input, &mut self.tape)?;
        let mut cot = std::mem::take(&mut self.cotangent);
        cot.reset(out.order, out.points, out.dirs, out.width, out.support);
        for p in 0..n {
            // λ·∇u = λ·∇φ + (λ·∇ψ)·N₀ + ψ·N₁
            let (c0, c1) = if self.psi.is_empty() {
                (0.0, 1.0)
            } else {
                let dot: f64 = self.grad_psi[p * din..(p + 1) * din]
                    .iter()
                    .zip(&lambda[p * din..(p + 1) * din])
                    .map(|(a, b)| a * b)
                    .sum();
                (dot, self.psi[p])
            };
            if c0 != 0.0 {
                cot.add_derivative_cotangent(0, p, 0, T::c(c0));
            }
            cot.add_derivative_cotangent(1, p, 0, T::c(c1));
        }
        net.backward(&input, &mut self.tape, &cot, grad, None)?;
        self.cotangent = cot;
        let (points, slots) = input.into_parts();
        if let Some(Tangent::Dense(t)) = slots.into_iter().next() {
            self.grad_n = t;
        }
        Ok(points)
    }
}
