//! The PINN residual loss with the hard-constraint ansatz `u = ψ·N`, `ψ = 1 − ‖x‖²`, and its
//! gradient through the Taylor pass.
//!
//! For a direction `v` the 2-jet of `N` gives `N₀`, `N₁ = ∇N·v`, `N₂ = vᵀ∇²N v`, and by the product
//! rule `vᵀ∇²u v = ψ₂N₀ + 2ψ₁N₁ + ψ₀N₂` with `ψ₁ = −2x·v`, `ψ₂ = −2‖v‖²`. The Laplacian estimate is
//! a weighted sum of these over the draw's directions (sparse: `e_i`, weight `d/R`; dense:
//! Rademacher `v`, weight `1/R`; exact: every `e_i`, weight 1). Residual `r = Δ̂u + F(u) − f`.

use crate::jet::collapsed::CollapsedJet;
use crate::jet::{InputJets, Jet, Tangent};
use crate::nn::{CollapsedTape, Mlp, NnError, Tape};
use crate::pde::Equation;
use crate::pde::vecmath::sum_squares4;
use crate::real::{Real, Slice};
use rayon::prelude::*;

/// The directions of one estimator draw.
#[derive(Clone, Debug, PartialEq)]
pub enum Draw {
    /// Coordinate directions `e_i` with a common weight.
    Coords {
        /// The coordinates.
        indices: Vec<usize>,
        /// Weight of each `vᵀ∇²u v` in the Laplacian estimate.
        weight: f64,
    },
    /// Dense directions `[n × d]` with a common weight.
    Dense {
        /// The directions, row-major.
        vectors: Vec<f64>,
        /// Weight of each term.
        weight: f64,
    },
}

impl Draw {
    fn len(&self, d: usize) -> usize {
        match self {
            Draw::Coords { indices, .. } => indices.len(),
            Draw::Dense { vectors, .. } => vectors.len() / d,
        }
    }
    fn weight(&self) -> f64 {
        match self {
            Draw::Coords { weight, .. } | Draw::Dense { weight, .. } => *weight,
        }
    }
    /// `(x·v, ‖v‖²)` of direction `j` at `x`.
    fn dot<T: Real>(&self, j: usize, x: &[T]) -> (f64, f64) {
        match self {
            Draw::Coords { indices, .. } => (x[indices[j]].as_f64(), 1.0),
            Draw::Dense { vectors, .. } => {
                let v = &vectors[j * x.len()..(j + 1) * x.len()];
                (
                    v.iter().zip(x).map(|(a, b)| a * b.as_f64()).sum(),
                    v.iter().map(|a| a * a).sum(),
                )
            }
        }
    }
}

/// Reusable buffers for residual steps, and the choice of propagation.
#[derive(Debug, Default)]
pub struct ResidualWork<T> {
    /// Use collapsed 2-jets (one summed second-order buffer per point, `nn::collapsed`) where the
    /// step allows it: one draw (the biased loss) and no first-layer weight sharing.
    pub collapsed: bool,
    /// Seconds spent so far in the exact source terms (and ψ).
    pub source_s: f64,
    /// Seconds spent so far in the network's forward and backward passes and the residual.
    pub network_s: f64,
    tape: Tape<T>,
    cotangent: Jet<T>,
    collapsed_tape: CollapsedTape<T>,
    collapsed_cotangent: CollapsedJet<T>,
    source: Vec<f64>,
    psi: Vec<f64>,
}

/// Builds the input jets: `points` with every draw's directions in slot 1.
fn input_jets<T: Real>(points: Vec<T>, d: usize, draws: &[Draw]) -> Result<InputJets<T>, NnError> {
    let dirs: usize = draws.iter().map(|g| g.len(d)).sum();
    let bad = |e: crate::jet::InputError| NnError::Architecture(e.to_string());
    let n = points.len() / d;
    let mut input = InputJets::new(2, d, dirs, points).map_err(bad)?;
    let tangent = if draws.iter().all(|g| matches!(g, Draw::Coords { .. })) {
        let idx: Vec<usize> = draws
            .iter()
            .flat_map(|g| {
                if let Draw::Coords { indices, .. } = g {
                    indices.clone()
                } else {
                    vec![]
                }
            })
            .collect();
        Tangent::OneHot((0..n).flat_map(|_| idx.iter().copied()).collect())
    } else {
        let mut v = Vec::with_capacity(dirs * d);
        for g in draws {
            match g {
                Draw::Dense { vectors, .. } => v.extend(vectors.iter().map(|x| T::c(*x))),
                Draw::Coords { indices, .. } => {
                    for &i in indices {
                        let mut row = vec![T::zero(); d];
                        row[i] = T::one();
                        v.extend(row);
                    }
                }
            }
        }
        Tangent::Shared(v)
    };
    input.set(1, tangent).map_err(bad)?;
    Ok(input)
}

/// One residual evaluation: returns the loss and accumulates `∂loss/∂θ` into `grad`.
///
/// With one draw the loss is the reference's biased `mean r²`; with two independent draws it is
/// the unbiased `mean r_J·r_K`, differentiated through both factors (spec §8.2).
pub fn residual_step<T: Real>(
    net: &Mlp<T>,
    eq: &dyn Equation,
    points: &mut Vec<T>,
    draws: &[Draw],
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let d = eq.dim();
    let n = points.len() / d;
    // ψ and the exact source per point, from the same (rounded) points the network sees, without
    // a widened copy
    work.source.resize(n, 0.0);
    work.psi.resize(n, 0.0);
    let t_source = std::time::Instant::now();
    points
        .par_chunks(d)
        .zip(work.source.par_iter_mut().zip(work.psi.par_iter_mut()))
        .for_each(|(x, (f, psi))| {
            *f = match T::view(x) {
                Slice::F32(x) => eq.source_f32(x),
                Slice::F64(x) => eq.source(x),
            };
            *psi = 1.0 - sum_squares4(x);
        });
    work.source_s += t_source.elapsed().as_secs_f64();
    let t_network = std::time::Instant::now();
    let input = input_jets(std::mem::take(points), d, draws)?;
    if work.collapsed && draws.len() == 1 && net.shared_layout().is_none() {
        let loss = collapsed_step(net, eq, &input, &draws[0], work, grad);
        *points = input.into_primal();
        work.network_s += t_network.elapsed().as_secs_f64();
        return loss;
    }
    let out = net.forward(&input, &mut work.tape)?;
    let dirs = input.dirs();
    let mut cot = std::mem::take(&mut work.cotangent);
    cot.reset(out.order, out.points, out.dirs, out.width, out.support);
    let mut loss = 0.0;
    let inv_n = 1.0 / n as f64;
    let mut r = vec![0.0; draws.len()];
    for p in 0..n {
        let x = &input.primal()[p * d..(p + 1) * d];
        let psi0 = work.psi[p];
        let n0 = out.derivative(0, p * dirs, 0).as_f64();
        let u0 = psi0 * n0;
        let (fu, dfu) = eq.nonlinearity(u0);
        let mut row0 = p * dirs;
        for (g, draw) in draws.iter().enumerate() {
            let w = draw.weight();
            let mut lap = 0.0;
            for j in 0..draw.len(d) {
                let row = row0 + j;
                let (xv, vv) = draw.dot(j, x);
                let (n1, n2) = (out.derivative(1, row, 0).as_f64(), out.derivative(2, row, 0).as_f64());
                lap += w * (-2.0 * vv * n0 + 2.0 * (-2.0 * xv) * n1 + psi0 * n2);
            }
            r[g] = lap + fu - work.source[p];
            row0 += draw.len(d);
        }
        let dr: Vec<f64> = if draws.len() == 1 {
            loss += r[0] * r[0] * inv_n;
            vec![2.0 * r[0] * inv_n]
        } else {
            loss += r[0] * r[1] * inv_n;
            vec![r[1] * inv_n, r[0] * inv_n]
        };
        let mut row0 = p * dirs;
        let mut dn0 = 0.0;
        for (g, draw) in draws.iter().enumerate() {
            let w = draw.weight();
            for j in 0..draw.len(d) {
                let row = row0 + j;
                let (xv, vv) = draw.dot(j, x);
                cot.add_derivative_cotangent(2, row, 0, T::c(dr[g] * w * psi0));
                cot.add_derivative_cotangent(1, row, 0, T::c(dr[g] * w * 2.0 * (-2.0 * xv)));
                dn0 += dr[g] * w * (-2.0 * vv);
            }
            dn0 += dr[g] * dfu * psi0;
            row0 += draw.len(d);
        }
        cot.add_derivative_cotangent(0, p * dirs, 0, T::c(dn0));
    }
    net.backward(&input, &mut work.tape, &cot, grad, None)?;
    work.cotangent = cot;
    *points = input.into_primal();
    work.network_s += t_network.elapsed().as_secs_f64();
    Ok(loss)
}

/// The biased loss of one draw by collapsed propagation: `Σ_j vⱼᵀ∇²N vⱼ` arrives summed per point
/// (`2·sum2`), the first-order coefficients per direction, so
/// `Δ̂u = w·[−2Σ‖vⱼ‖² N₀ − 4Σ(x·vⱼ)N₁,ⱼ + ψ₀·2·sum2]`.
fn collapsed_step<T: Real>(
    net: &Mlp<T>,
    eq: &dyn Equation,
    input: &InputJets<T>,
    draw: &Draw,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let d = eq.dim();
    let (n, dirs) = (input.points(), input.dirs());
    let w = draw.weight();
    let out = net.forward_collapsed(input, &mut work.collapsed_tape)?;
    let mut cot = std::mem::take(&mut work.collapsed_cotangent);
    // every entry of the cotangent is written below
    cot.reshape(out.points, out.dirs, out.width);
    let inv_n = 1.0 / n as f64;
    let mut loss = 0.0;
    let mut xv = Vec::with_capacity(dirs);
    for p in 0..n {
        let x = &input.primal()[p * d..(p + 1) * d];
        let psi0 = work.psi[p];
        let n0 = out.primal[p].as_f64();
        let (fu, dfu) = eq.nonlinearity(psi0 * n0);
        let (mut vv_sum, mut cross) = (0.0, 0.0);
        xv.clear();
        for j in 0..dirs {
            let (xvj, vv) = draw.dot(j, x);
            xv.push(xvj);
            vv_sum += vv;
            cross += xvj * out.first[p * dirs + j].as_f64();
        }
        let sum2 = 2.0 * out.sum2[p].as_f64();
        let r = w * (-2.0 * vv_sum * n0 - 4.0 * cross + psi0 * sum2) + fu - work.source[p];
        loss += r * r * inv_n;
        let dr = 2.0 * r * inv_n;
        // ∂L/∂sum2 (normalised) = 2·∂L/∂(Σ y₂)
        cot.sum2[p] = T::c(2.0 * dr * w * psi0);
        for (j, &xvj) in xv.iter().enumerate() {
            cot.first[p * dirs + j] = T::c(dr * w * -4.0 * xvj);
        }
        cot.primal[p] = T::c(dr * (w * -2.0 * vv_sum + dfu * psi0));
    }
    net.backward_collapsed(input, &mut work.collapsed_tape, &cot, grad)?;
    work.collapsed_cotangent = cot;
    Ok(loss)
}

/// `u = ψ·N` at `points` (`[n × d]`).
pub fn predict<T: Real>(net: &Mlp<T>, points: &[T], d: usize, tape: &mut Tape<T>) -> Result<Vec<f64>, NnError> {
    let input = InputJets::new(1, d, 1, points.to_vec()).map_err(|e| NnError::Architecture(e.to_string()))?;
    let out = net.forward(&input, tape)?;
    Ok((0..points.len() / d)
        .map(|p| {
            let psi = 1.0
                - points[p * d..(p + 1) * d]
                    .iter()
                    .map(|v| v.as_f64() * v.as_f64())
                    .sum::<f64>();
            psi * out.derivative(0, p, 0).as_f64()
        })
        .collect())
}
