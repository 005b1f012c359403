//! A [`MultiPlan`] pushed through a network with reverse mode: the forward pass gives every
//! quantity of the plan (and `u`) at every point, for `u = N` or `u = ψ·N`; the backward pass takes
//! cotangents of those values and accumulates `∂L/∂θ`.
//!
//! Jets are grouped by order (one forward pass per order present, every point and direction of
//! the group in one batch). With an ansatz, the outputs of `u` are the product series
//! `u_k = Σ_j ψ_j N_{k−j}` (normalised coefficients), and the backward pass applies its adjoint
//! `∂L/∂N_m = Σ_k ψ_{k−m} ∂L/∂u_k` before entering the network.

use super::eval::{EvalError, set_tangents};
use super::plan::{MultiPlan, Readout};
use crate::formula::{Curve, Formula, Workspace};
use crate::jet::{InputJets, Jet, PrimalBlockSums, Tangent};
use crate::nn::{Ansatz, Mlp, Tape};
use crate::real::{Real, factorial};
use std::sync::Arc;

/// One order group: its jets, tape and the outputs of `u`.
#[derive(Debug, Default)]
struct Group<T> {
    order: usize,
    /// Plan probe behind each direction of the group.
    probes: Vec<usize>,
    input: Option<InputJets<T>>,
    tape: Tape<T>,
    /// `[rows × (order + 1)]` normalised `ψ` series (empty without an ansatz).
    psi: Vec<f64>,
    /// `[rows × (order + 1)]` derivative-convention outputs `y_k` of `u`.
    y: Vec<f64>,
    cotangent: Jet<T>,
}

/// Reusable state of one plan evaluation with reverse mode.
#[derive(Debug, Default)]
pub struct PlanPass<T> {
    groups: Vec<Group<T>>,
    /// `(group, direction)` of every plan probe.
    position: Vec<(usize, usize)>,
    points: usize,
    quantities: usize,
    values: Vec<f64>,
    u: Vec<f64>,
    ansatz: Option<Ansatz>,
    /// `φ` of `u = φ + ψ·N` (initial data), if any.
    offset: Option<Arc<Formula>>,
    offset_ws: Workspace,
    /// Primal block sums of the next forward's points (weight-shared first stage), if given.
    block_sums: Option<PrimalBlockSums<T>>,
}

impl<T: Real> PlanPass<T> {
    /// Sets the offset `φ` of `u = φ + ψ·N` (a formula in `x` and `t`, independent of the
    /// parameters): its jets along every probe curve are added to the outputs of `u`.
    pub fn set_offset(&mut self, offset: Option<Arc<Formula>>) {
        self.offset = offset;
    }

    /// Primal block sums of the points of the next [`PlanPass::forward`] (computed where they
    /// were drawn; see [`PrimalBlockSums`]); used by that forward only.
    pub fn set_block_sums(&mut self, sums: Option<PrimalBlockSums<T>>) {
        self.block_sums = sums;
    }

    /// Pushes the plan's jets at `points` (`[n × d]`, moved in; [`PlanPass::backward`] hands them
    /// back) through `net`. `psi0[p]` is `ψ(x_p)` for the ansatz (computed if `None`).
    pub fn forward(
        &mut self,
        net: &Mlp<T>,
        ansatz: Ansatz,
        plan: &MultiPlan,
        points: Vec<T>,
        psi0: Option<&[f64]>,
    ) -> Result<(), EvalError> {
        let dim = net.architecture().input_dim;
        if dim == 0 || !points.len().is_multiple_of(dim) {
            return Err(EvalError::Points { got: points.len(), dim });
        }
        let n = points.len() / dim;
        self.points = n;
        self.quantities = plan.quantities.len();
        self.ansatz = (ansatz != Ansatz::Identity).then_some(ansatz);
        let mut orders: Vec<usize> = plan.probes.iter().map(|p| p.order.max(1)).collect();
        if orders.is_empty() {
            orders.push(1);
        }
        orders.sort_unstable();
        orders.dedup();
        self.groups.resize_with(orders.len(), Group::default);
        self.position = vec![(0, 0); plan.probes.len()];
        let mut spare = Some(points);
        for (gi, &order) in orders.iter().enumerate() {
            let probes: Vec<usize> = (0..plan.probes.len())
                .filter(|&i| plan.probes[i].order.max(1) == order)
                .collect();
            for (g, &i) in probes.iter().enumerate() {
                self.position[i] = (gi, g);
            }
            let dirs = probes.len().max(1);
            // the last group takes the points, the others copy them
            let pts = if gi + 1 == orders.len() {
                spare.take().expect("points still here")
            } else {
                spare.as_ref().expect("points still here").clone()
            };
            let mut input = InputJets::new(order, dim, dirs, pts)?;
            input.set_block_sums(if gi + 1 == orders.len() {
                self.block_sums.take()
            } else {
                self.block_sums.clone()
            });
            set_tangents(&mut input, &plan.probes, &plan.directions, &probes, n)?;
            let group = &mut self.groups[gi];
            group.order = order;
            group.probes = probes;
            let out = net.forward(&input, &mut group.tape)?;
            let width = order + 1;
            let rows = n * dirs;
            group.y.resize(rows * width, 0.0);
            group.psi.clear();
            if let Some(a) = self.ansatz {
                group.psi.reserve(rows * width);
                for row in 0..rows {
                    let s = a.series(&input, row, psi0.map(|v| v[row / dirs]));
                    let c: Vec<f64> = (0..=order).map(|k| out.coefficient(k, row, 0).as_f64()).collect();
                    for k in 0..=order {
                        let uk: f64 = (0..=k).map(|j| s[j] * c[k - j]).sum();
                        group.y[row * width + k] = uk * factorial(k);
                    }
                    group.psi.extend_from_slice(&s);
                }
            } else {
                for row in 0..rows {
                    for k in 0..=order {
                        group.y[row * width + k] = out.derivative(k, row, 0).as_f64();
                    }
                }
            }
            if let Some(phi) = &self.offset {
                add_offset_series(phi, &mut self.offset_ws, &input, &mut group.y);
            }
            group.input = Some(input);
        }
        self.groups.truncate(orders.len());
        // quantities and u
        let q_count = self.quantities;
        self.values.clear();
        self.values.resize(n * q_count, 0.0);
        for (q, reads) in plan.quantities.iter().enumerate() {
            for r in reads {
                let (gi, at) = self.locate(r);
                for p in 0..n {
                    self.values[p * q_count + q] += r.weight * self.groups[gi].y[at(p)];
                }
            }
        }
        let g0 = &self.groups[0];
        let (dirs, width) = (g0.probes.len().max(1), g0.order + 1);
        self.u = (0..n).map(|p| g0.y[p * dirs * width]).collect();
        Ok(())
    }

    /// The group of read-out `r` and, per point, the index of its output `y_n` in the group's
    /// `[rows × (order + 1)]` buffers.
    fn locate(&self, r: &Readout) -> (usize, impl Fn(usize) -> usize + use<T>) {
        let (gi, g) = self.position[r.probe];
        let group = &self.groups[gi];
        let (dirs, width, n) = (group.probes.len().max(1), group.order + 1, r.n);
        (gi, move |p: usize| (p * dirs + g) * width + n)
    }

    /// Quantity `q` at point `p` (after [`PlanPass::forward`]).
    pub fn value(&self, p: usize, q: usize) -> f64 {
        self.values[p * self.quantities + q]
    }

    /// `u` at point `p`.
    pub fn u(&self, p: usize) -> f64 {
        self.u[p]
    }

    /// Reverse mode: `cot[p·Q + q]` is `∂L/∂(quantity q at p)`, `cot_u[p]` is `∂L/∂u(x_p)`;
    /// accumulates `∂L/∂θ` into `grad` and returns the points.
    pub fn backward(
        &mut self,
        net: &Mlp<T>,
        plan: &MultiPlan,
        cot: &[f64],
        cot_u: &[f64],
        grad: &mut [T],
    ) -> Result<Vec<T>, EvalError> {
        let (n, q_count) = (self.points, self.quantities);
        // ∂L/∂y_k of u per group row
        let mut dy: Vec<Vec<f64>> = self
            .groups
            .iter()
            .map(|g| vec![0.0; n * g.probes.len().max(1) * (g.order + 1)])
            .collect();
        for (q, reads) in plan.quantities.iter().enumerate() {
            for r in reads {
                let (gi, at) = self.locate(r);
                for p in 0..n {
                    dy[gi][at(p)] += r.weight * cot[p * q_count + q];
                }
            }
        }
        {
            let g0 = &self.groups[0];
            let (dirs, width) = (g0.probes.len().max(1), g0.order + 1);
            for p in 0..n {
                dy[0][p * dirs * width] += cot_u[p];
            }
        }
        let mut points = None;
        for (gi, group) in self.groups.iter_mut().enumerate() {
            let input = group.input.take().expect("forward ran");
            let out = group.tape.output().ok_or(crate::nn::NnError::CotangentShape)?;
            let mut c = std::mem::take(&mut group.cotangent);
            c.reset(out.order, out.points, out.dirs, out.width, out.support);
            let (order, width) = (group.order, group.order + 1);
            let rows = n * group.probes.len().max(1);
            let mut dn = vec![0.0; width];
            for row in 0..rows {
                let d = &dy[gi][row * width..(row + 1) * width];
                if d.iter().all(|v| *v == 0.0) {
                    continue;
                }
                // derivative → normalised: ∂L/∂c_k = k!·∂L/∂y_k; then the ψ product's adjoint
                let du: Vec<f64> = (0..=order).map(|k| d[k] * factorial(k)).collect();
                if group.psi.is_empty() {
                    dn.copy_from_slice(&du);
                } else {
                    let s = &group.psi[row * width..(row + 1) * width];
                    for m in 0..=order {
                        dn[m] = (m..=order).map(|k| s[k - m] * du[k]).sum();
                    }
                }
                let p = row / group.probes.len().max(1);
                c.primal[p * c.width] += T::c(dn[0]);
                for (k, &v) in dn.iter().enumerate().skip(1) {
                    if let Some(i) = c.index(k, row, 0) {
                        c.tangents[i] += T::c(v);
                    }
                }
            }
            net.backward(&input, &mut group.tape, &c, grad, None)?;
            group.cotangent = c;
            points = Some(input.into_primal());
        }
        Ok(points.expect("at least one group"))
    }
}

/// Adds the derivative-convention jets of `φ` along each row's input curve to `y`
/// (`[rows × (order + 1)]`), through [`Formula::series_through_point`]: `φ`'s coordinate sums
/// are taken once per point; a row whose tangents are one-hot or sparse then costs the touched
/// coordinates' terms, a dense row `O(K²)` arithmetic per coordinate.
pub(crate) fn add_offset_series<T: Real>(phi: &Formula, ws: &mut Workspace, input: &InputJets<T>, y: &mut [f64]) {
    let (order, din, dirs) = (input.order(), input.dim(), input.dirs());
    let width = order + 1;
    if ws.order() != order {
        *ws = phi.workspace(order);
    }
    let mut entries: Vec<(usize, usize, f64)> = Vec::new();
    let mut support: Vec<usize> = Vec::new();
    // a dense row's normalised coefficients, one slot of `din` per order
    let mut slots: Vec<Vec<f64>> = Vec::new();
    let mut x0 = vec![0.0; din];
    let mut prepared = usize::MAX;
    let mut out = vec![0.0; width];
    let dense_rows = (1..=order).any(|k| matches!(input.slot(k), Tangent::Dense(_) | Tangent::Shared(_)));
    for row in 0..y.len() / width {
        let p = row / dirs;
        if prepared != p {
            x0.iter_mut()
                .zip(&input.primal()[p * din..(p + 1) * din])
                .for_each(|(w, v)| *w = v.as_f64());
            phi.prepare_point(ws, &x0);
            prepared = p;
        }
        if dense_rows {
            slots.resize_with(order, || vec![0.0; din]);
            for (k, slot) in slots.iter_mut().enumerate() {
                input.row_slot(k + 1, row, slot);
            }
            phi.series_through_point(ws, Curve::Dense { x: &x0, slots: &slots }, &mut out);
        } else {
            entries.clear();
            for k in 1..=order {
                input.for_each_entry(k, row, |c, a| entries.push((k, c, a.as_f64())));
            }
            support.clear();
            support.extend(entries.iter().map(|e| e.1));
            support.sort_unstable();
            support.dedup();
            let coord = |i: usize, s: &mut [f64]| {
                s.fill(0.0);
                s[0] = x0[i];
                for &(k, c, a) in &entries {
                    if c == i {
                        s[k] += a;
                    }
                }
            };
            phi.series_through_point(
                ws,
                Curve::Touching {
                    coord: &coord,
                    touched: &support,
                },
                &mut out,
            );
        }
        for k in 0..=order {
            y[row * width + k] += out[k] * factorial(k);
        }
    }
}

/// The quantities of `plan` for a function given as a formula (in `x` and `t`) at the input
/// point `x`: the formula's Taylor series along every probe curve, combined by the read-outs
/// exactly as [`PlanPass`] combines the network's. With it the engine takes every derivative of
/// an exact solution (residual checks, sources derived from `u*`).
pub fn formula_quantities(plan: &MultiPlan, f: &Formula, x: &[f64]) -> Vec<f64> {
    let order = plan.probes.iter().map(|p| p.order).max().unwrap_or(0);
    let mut ws = f.workspace(order);
    let mut y: Vec<Vec<f64>> = Vec::with_capacity(plan.probes.len());
    for probe in &plan.probes {
        let k_max = probe.order;
        let coord = |i: usize, s: &mut [f64]| {
            s.fill(0.0);
            s[0] = x[i];
            for (k, dir) in &probe.slots {
                if *k >= s.len() {
                    continue;
                }
                let v = match dir {
                    super::ProbeDirection::Coord(c) => f64::from(u8::from(*c == i)),
                    super::ProbeDirection::Dense(w) => plan.directions[*w][i],
                    super::ProbeDirection::Sparse(e) => e.iter().filter(|(c, _)| *c == i).map(|&(_, w)| w as f64).sum(),
                };
                s[*k] += v / factorial(*k);
            }
        };
        let mut out = vec![0.0; order + 1];
        f.series(&mut ws, &coord, &mut out);
        y.push((0..=k_max).map(|k| out[k] * factorial(k)).collect());
    }
    plan.quantities
        .iter()
        .map(|reads| reads.iter().map(|r| r.weight * y[r.probe][r.n]).sum())
        .collect()
}
