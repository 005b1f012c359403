//! Evaluating a probe plan on a network: the plan's jets are grouped by order, pushed through the
//! network for every point at once, and their outputs combined with the read-out weights.

use super::plan::{Probe, ProbeDirection, ProbePlan};
use crate::jet::{InputError, InputJets, Tangent};
use crate::nn::{Ansatz, Mlp, NnError, Tape};
use crate::real::Real;

/// Errors while evaluating a plan.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The points array does not match the network.
    #[error("points have {got} values, not a multiple of the network's input dimension {dim}")]
    Points {
        /// Values supplied.
        got: usize,
        /// Input dimension.
        dim: usize,
    },
    /// The jets could not be built.
    #[error(transparent)]
    Input(#[from] InputError),
    /// The network rejected the input.
    #[error(transparent)]
    Network(#[from] NnError),
}

/// Sets the tangent slots of `input` (`n` points, one row per probe of `group`) from the probes'
/// slots: coordinate and sparse directions stay sparse, dense ones are shared by every point.
pub(crate) fn set_tangents<T: Real>(
    input: &mut InputJets<T>,
    probes: &[Probe],
    directions: &[Vec<f64>],
    group: &[usize],
    n: usize,
) -> Result<(), InputError> {
    let (dirs, dim) = (group.len(), input.dim());
    for k in 1..=input.order() {
        let slot: Vec<Option<&ProbeDirection>> = group
            .iter()
            .map(|&i| probes[i].slots.iter().find(|(kk, _)| *kk == k).map(|(_, d)| d))
            .collect();
        if slot.iter().all(Option::is_none) {
            continue;
        }
        let tangent = if slot.iter().any(|d| matches!(d, Some(ProbeDirection::Dense(_)))) {
            let mut v = vec![T::zero(); dirs * dim];
            for (g, d) in slot.iter().enumerate() {
                match d {
                    Some(ProbeDirection::Dense(w)) => {
                        for (x, w) in v[g * dim..(g + 1) * dim].iter_mut().zip(&directions[*w]) {
                            *x = T::c(*w);
                        }
                    }
                    Some(ProbeDirection::Coord(c)) => v[g * dim + c] = T::one(),
                    Some(ProbeDirection::Sparse(e)) => {
                        for &(c, w) in e {
                            v[g * dim + c] = T::c(w as f64);
                        }
                    }
                    None => {}
                }
            }
            Tangent::Shared(v)
        } else if slot.iter().all(|d| matches!(d, Some(ProbeDirection::Coord(_)))) {
            let one: Vec<usize> = slot
                .iter()
                .map(|d| match d {
                    Some(ProbeDirection::Coord(c)) => *c,
                    _ => unreachable!("checked above"),
                })
                .collect();
            Tangent::OneHot((0..n).flat_map(|_| one.iter().copied()).collect())
        } else {
            let mut row_ptr = vec![0];
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for _ in 0..n {
                for d in &slot {
                    match d {
                        Some(ProbeDirection::Coord(c)) => {
                            indices.push(*c);
                            values.push(T::one());
                        }
                        Some(ProbeDirection::Sparse(e)) => {
                            for &(c, w) in e {
                                indices.push(c);
                                values.push(T::c(w as f64));
                            }
                        }
                        _ => {}
                    }
                    row_ptr.push(indices.len());
                }
            }
            Tangent::Sparse {
                row_ptr,
                indices,
                values,
            }
        };
        input.set(k, tangent)?;
    }
    Ok(())
}

/// `u` and `L u` at every point (`points` is `[n × d]`), by the plan's jets.
pub fn evaluate_plan<T: Real>(
    net: &Mlp<T>,
    plan: &ProbePlan,
    points: &[T],
    tape: &mut Tape<T>,
) -> Result<(Vec<T>, Vec<T>), EvalError> {
    evaluate_plan_with(net, Ansatz::Identity, plan, points, tape)
}

/// As [`evaluate_plan`], for `u = ψ·N` with the given ansatz `ψ` (the network is `N`).
pub fn evaluate_plan_with<T: Real>(
    net: &Mlp<T>,
    ansatz: Ansatz,
    plan: &ProbePlan,
    points: &[T],
    tape: &mut Tape<T>,
) -> Result<(Vec<T>, Vec<T>), EvalError> {
    let dim = net.architecture().input_dim;
    if !points.len().is_multiple_of(dim) {
        return Err(EvalError::Points { got: points.len(), dim });
    }
    let n = points.len() / dim;
    let mut u = vec![T::zero(); n];
    let mut lu = vec![T::zero(); n];
    if plan.probes.is_empty() {
        // L = 0: still report u
        let input = InputJets::new(1, dim, 1, points.to_vec())?;
        let out = net.forward(&input, tape)?;
        for p in 0..n {
            u[p] = ansatz.outputs(&input, out, p)[0];
        }
        return Ok((u, lu));
    }
    let mut orders: Vec<usize> = plan.probes.iter().map(|p| p.order).collect();
    orders.sort_unstable();
    orders.dedup();
    let mut first = true;
    let mut position = vec![usize::MAX; plan.probes.len()];
    for order in orders {
        let group: Vec<usize> = (0..plan.probes.len())
            .filter(|&i| plan.probes[i].order == order)
            .collect();
        let dirs = group.len();
        for (g, &i) in group.iter().enumerate() {
            position[i] = g;
        }
        let mut input = InputJets::new(order, dim, dirs, points.to_vec())?;
        set_tangents(&mut input, &plan.probes, &plan.directions, &group, n)?;
        let out = net.forward(&input, tape)?;
        // derivative-convention outputs of u per row, [rows × (order + 1)]; the network's own
        // outputs when there is no ansatz
        let y: Option<Vec<T>> = (ansatz != Ansatz::Identity)
            .then(|| (0..n * dirs).flat_map(|row| ansatz.outputs(&input, out, row)).collect());
        let at = |row: usize, k: usize| match &y {
            Some(y) => y[row * (order + 1) + k],
            None => out.derivative(k, row, 0),
        };
        if first {
            for p in 0..n {
                u[p] = at(p * dirs, 0);
            }
            first = false;
        }
        for r in plan.readout.iter().filter(|r| plan.probes[r.probe].order == order) {
            let (g, w) = (position[r.probe], T::c(r.weight));
            for p in 0..n {
                lu[p] += w * at(p * dirs + g, r.n);
            }
        }
    }
    Ok((u, lu))
}
