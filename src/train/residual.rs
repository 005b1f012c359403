//! The loss of one condition at one step and its gradient through the Taylor pass.
//!
//! Residual conditions: the estimator's draw of `L` (a [`ProbePlan`] per draw) and, with the gPINN
//! term, the partials `u_{iij}` and `u_j` of the drawn pairs are merged into one [`MultiPlan`]
//! (shared jets), pushed through the network by [`PlanPass`] (with the problem's ansatz), and
//! combined pointwise: `r = L̂u + F(u) − f`. Loss: `mean r²` (one draw, biased), `mean r_J·r_K`
//! (two independent draws, unbiased), plus `c·mean_k g_k²` with
//! `g_k = u_{i_k i_k j_k} + F'(u)u_{j_k} − ∂_{j_k} f` for gPINN (spec §6.2).
//!
//! When the plan is a weighted sum of second-order directional derivatives (the Laplacian's
//! sparse, dense or exact draws) and the loss needs only that sum, the jets are collapsed (one
//! summed second-order buffer per point, `nn::collapsed`): same loss and gradient, less work.
//!
//! Target conditions (`mean (u − g)² + c·mean (∂_i u − ∂_i g)²`): the exact gradient `∇_x u` comes
//! from one reverse pass; with `a = ∇_x u − ∇g` held fixed, `∂_θ‖a‖² = 2 ∂_θ(a·∇_x u)`, and `a·∇_x u`
//! is the first-order output of one jet along `a`. So the term costs three passes at the terminal
//! points, whatever `d`.

use crate::formula::Formula;
use crate::jet::collapsed::CollapsedJet;
use crate::jet::{InputJets, Jet, PrimalBlockSums, Tangent};
use crate::lanes::sum_squares;
use crate::nn::first_layer::OneHotWeightGrad;
use crate::nn::{Ansatz, CollapsedTape, Mlp, NnError, Tape};
use crate::operator::{EvalError, GradientSweep, MultiPlan, PlanBuilder, PlanPass, ProbeDirection, ProbePlan};
use crate::pde::{Condition, Equation, FormulaResidual, GpinnForm, Problem, Target, Term};
use crate::real::{Real, Slice, SliceMut};
use crate::train::routes::{PartialRoutes, Route};
use rayon::prelude::*;

/// What a formula condition's routes were made for: its residuals (by address), whether every
/// partial is a jet, and the number of sampled coordinates.
type RoutesKey = (usize, bool, Option<usize>);

/// What the estimator drew for one residual condition at one step.
#[derive(Clone, Debug, Default)]
pub struct ConditionDraw {
    /// One plan per draw of `L` (two for the unbiased loss).
    pub plans: Vec<ProbePlan>,
    /// gPINN pairs `(i_k, j_k)`: the Laplacian's coordinates zipped with an independent subset.
    pub pairs: Vec<(usize, usize)>,
    /// Formula conditions with sampled diagonal partials ([`crate::train::routes`]): the step's
    /// `R` coordinates, drawn uniformly without replacement; empty: every partial exactly.
    pub diagonal: Vec<usize>,
}

/// Reusable buffers for condition steps, the choice of propagation, and time per phase.
#[derive(Debug, Default)]
pub struct ResidualWork<T> {
    /// Use collapsed 2-jets where the plan and the loss allow it.
    pub collapsed: bool,
    /// Push one jet per first-order partial a formula residual reads, never the gradient sweep
    /// (the sweep's oracle in tests; the values and gradients agree to rounding).
    pub first_order_jets: bool,
    /// Seconds spent so far in the exact source terms (and ψ).
    pub source_s: f64,
    /// Seconds spent so far in the network's forward and backward passes and the residual.
    pub network_s: f64,
    pass: PlanPass<T>,
    /// The partial routes of the last formula condition, with the key they were made for.
    routes: Option<(RoutesKey, PartialRoutes)>,
    sweep: GradientSweep<T>,
    /// `∂loss/∂(∇u)` per point for the sweep's jet, `[n × din]`.
    lambda: Vec<f64>,
    /// The last formula condition's residuals `r`, `[points × residuals]`.
    formula_residuals: Vec<f64>,
    /// The formula condition's points in f64.
    wide: Vec<f64>,
    tape: Tape<T>,
    cotangent: Jet<T>,
    collapsed_tape: CollapsedTape<T>,
    collapsed_cotangent: CollapsedJet<T>,
    source: Vec<f64>,
    source_partials: Vec<f64>,
    psi: Vec<f64>,
    point_sources: Option<Vec<(f64, f64)>>,
    block_sums: Option<PrimalBlockSums<T>>,
    scratch: Vec<T>,
    /// The last collapsible plan's form, the last input's tangent slots and per-point
    /// `x·v_j`: buffers reused by the next step.
    collapsible: Collapsible,
    input_slots: Vec<Tangent<T>>,
    dots: Vec<f64>,
    /// Set before a step by a caller that did not zero the first layer's weight gradient
    /// ([`Mlp::first_weight_range`] of `grad`): the step leaves it to the caller where it can
    /// ([`ResidualWork::deferred_first_weight`]) and writes it otherwise. Cleared by the step.
    pub defer_first_weight: bool,
    /// Whether the last step left the first layer's weight gradient to the caller.
    deferred_first: bool,
    /// Scratch of [`ResidualWork::deferred_first_weight`].
    one_hot_entries: Vec<(usize, usize)>,
}

impl<T: Real> ResidualWork<T> {
    /// The residual values `r = L̂u + N − f` of the last formula condition step,
    /// `[points × residuals]` (estimates where the step sampled).
    pub fn formula_residuals(&self) -> &[f64] {
        &self.formula_residuals
    }

    /// The first layer's weight gradient the last step left to the caller (it was asked to by
    /// `defer_first_weight` and its inputs had one-hot tangents), for that step's points `x`
    /// (`[points × d]`, handed back by the step); `None` if the step wrote it into `grad`.
    ///
    /// # Panics
    /// If `x` or `dim` are not the step's: a deferred gradient exists only as this view, so a
    /// caller must never fall back to the (unwritten) range of `grad`.
    pub fn deferred_first_weight<'a>(&'a mut self, x: &'a [T], dim: usize) -> Option<OneHotWeightGrad<'a, T>> {
        if !std::mem::take(&mut self.deferred_first) {
            return None;
        }
        // a deferral happens only for one-hot first-order rows (`backward_collapsed_deferring_first`)
        let Some(Tangent::OneHot(coords)) = self.input_slots.first() else {
            unreachable!("a deferred first-layer gradient comes from one-hot input rows")
        };
        let view = self
            .collapsed_tape
            .first_weight_grad(x, dim, coords, &mut self.one_hot_entries);
        Some(view.expect("the deferring step's points and dimension"))
    }
}

/// Zeros the first layer's weight gradient a caller left unzeroed (see
/// [`ResidualWork::defer_first_weight`]), for a step that does not defer it.
pub fn zero_first_weight<T: Real>(net: &Mlp<T>, grad: &mut [T]) {
    grad[net.first_weight_range()]
        .par_chunks_mut(1 << 16)
        .for_each(|g| g.fill(T::zero()));
}

impl<T> ResidualWork<T> {
    /// What was computed where the points of the next condition step were drawn: the `(f, ψ)`
    /// of every point ([`point_source`]) and the primal block sums of a weight-shared first
    /// stage; taken by that step (an equation residual's), and used only if there is one entry
    /// per point.
    pub fn set_drawn(&mut self, sources: Vec<(f64, f64)>, block_sums: Option<PrimalBlockSums<T>>) {
        self.point_sources = Some(sources);
        self.block_sums = block_sums;
    }
}

fn eval_err(e: EvalError) -> NnError {
    match e {
        EvalError::Network(e) => e,
        other => NnError::Architecture(other.to_string()),
    }
}

/// A plan of the form `w·Σ_j D²u[v_j, v_j] + Σ_e w_e ∂_{c_e} u`: second-order directions (all
/// coordinates or all dense) with one common weight, plus first-order coordinate terms (such as
/// `∂_t u`) carried to first order only.
#[derive(Debug)]
struct Collapsible {
    summed: Directions,
    w: f64,
    /// `(coordinate, weight)` of the first-order terms.
    first: Vec<(usize, f64)>,
    /// Scratch of [`collapsible`]: the probes read so far.
    read: Vec<bool>,
}

impl Default for Collapsible {
    fn default() -> Self {
        Collapsible {
            summed: Directions::Coords(Vec::new()),
            w: 0.0,
            first: Vec::new(),
            read: Vec::new(),
        }
    }
}

#[derive(Debug)]
enum Directions {
    Coords(Vec<usize>),
    Dense(Vec<Vec<f64>>),
}

/// Whether `plan` is [`Collapsible`], and if so its form in `out` (whose buffers are reused).
fn collapsible(plan: &ProbePlan, out: &mut Collapsible) -> bool {
    if plan.probes.is_empty() || plan.readout.len() != plan.probes.len() {
        return false;
    }
    let mut w = None;
    let (mut coords, mut dense) = match std::mem::replace(&mut out.summed, Directions::Coords(Vec::new())) {
        Directions::Coords(c) => (c, Vec::new()),
        Directions::Dense(v) => (Vec::new(), v),
    };
    coords.clear();
    dense.clear();
    out.first.clear();
    // one read-out per probe: as many as probes, none read twice
    let read = &mut out.read;
    read.clear();
    read.resize(plan.probes.len(), false);
    for r in &plan.readout {
        if read[r.probe] {
            return false;
        }
        read[r.probe] = true;
        match (plan.probes[r.probe].order, r.n, plan.probes[r.probe].slots.as_slice()) {
            (2, 2, [(1, dir)]) => {
                if *w.get_or_insert(r.weight) != r.weight {
                    return false;
                }
                match dir {
                    ProbeDirection::Coord(c) => coords.push(*c),
                    ProbeDirection::Dense(i) => dense.push(plan.directions[*i].clone()),
                    ProbeDirection::Sparse(_) => return false,
                }
            }
            (1, 1, [(1, ProbeDirection::Coord(c))]) => out.first.push((*c, r.weight)),
            _ => return false,
        }
    }
    out.summed = match (coords.is_empty(), dense.is_empty()) {
        (false, true) => Directions::Coords(coords),
        (true, false) => Directions::Dense(dense),
        _ => return false,
    };
    match w {
        Some(w) => {
            out.w = w;
            true
        }
        None => false,
    }
}

impl Collapsible {
    fn summed_len(&self) -> usize {
        match &self.summed {
            Directions::Coords(c) => c.len(),
            Directions::Dense(v) => v.len(),
        }
    }
    /// `(x·v_j, ‖v_j‖²)` of summed direction `j`.
    fn dot<T: Real>(&self, j: usize, x: &[T]) -> (f64, f64) {
        match &self.summed {
            Directions::Coords(c) => (x[c[j]].as_f64(), 1.0),
            Directions::Dense(v) => (
                v[j].iter().zip(x).map(|(a, b)| a * b.as_f64()).sum(),
                v[j].iter().map(|a| a * a).sum(),
            ),
        }
    }
    /// 2-jets `(x; v, 0)`: the summed directions, then the first-order ones (`slots`: an earlier
    /// input's tangent slots, whose buffers are reused).
    fn input<T: Real>(&self, points: Vec<T>, d: usize, mut slots: Vec<Tangent<T>>) -> Result<InputJets<T>, NnError> {
        let bad = |e: crate::jet::InputError| NnError::Architecture(e.to_string());
        let n = points.len() / d;
        let dirs = self.summed_len() + self.first.len();
        let extra = self.first.iter().map(|&(c, _)| c);
        let tangent = match &self.summed {
            Directions::Coords(c) => {
                let mut rows = match slots.first_mut().map(|t| std::mem::replace(t, Tangent::Zero)) {
                    Some(Tangent::OneHot(v)) => v,
                    _ => Vec::new(),
                };
                rows.clear();
                for _ in 0..n {
                    rows.extend(c.iter().copied().chain(extra.clone()));
                }
                Tangent::OneHot(rows)
            }
            Directions::Dense(v) => {
                let mut rows: Vec<T> = v.iter().flatten().map(|&x| T::c(x)).collect();
                for c in extra {
                    rows.extend((0..d).map(|i| if i == c { T::one() } else { T::zero() }));
                }
                Tangent::Shared(rows)
            }
        };
        let mut input = InputJets::new_reusing(2, d, dirs, points, slots).map_err(bad)?;
        input.set(1, tangent).map_err(bad)?;
        Ok(input)
    }
}

/// The loss of `cond` (its weight included) at `points` (`[n × input_dim]`, moved into the jets
/// and handed back); accumulates `∂loss/∂θ` into `grad`.
pub fn condition_step<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    cond: &Condition,
    points: &mut Vec<T>,
    draw: &ConditionDraw,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    condition_part_step(net, problem, cond, points, draw, work, grad, 1.0)
}

/// [`condition_step`] on one rank's part of the batch: the part's mean scaled by `share` (its
/// points over the batch's), so that the ranks' losses and gradients add up to the batch's.
#[allow(clippy::too_many_arguments)]
pub fn condition_part_step<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    cond: &Condition,
    points: &mut Vec<T>,
    draw: &ConditionDraw,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
    share: f64,
) -> Result<f64, NnError> {
    let ansatz = problem.ansatz;
    let weight = cond.weight * share;
    let defer = std::mem::take(&mut work.defer_first_weight);
    work.deferred_first = false;
    if defer && !matches!(cond.term, Term::Residual { .. }) {
        zero_first_weight(net, grad);
    }
    match &cond.term {
        Term::Residual {
            equation,
            gpinn,
            gpinn_form,
            ..
        } => {
            if problem.offset.is_some() {
                return Err(NnError::Architecture(
                    "an equation residual does not support an offset; write the problem's residuals as formulas".into(),
                ));
            }
            residual_loss(
                net,
                ansatz,
                equation.as_ref(),
                (gpinn.unwrap_or(0.0), *gpinn_form),
                (weight, defer),
                points,
                draw,
                work,
                grad,
            )
        }
        Term::Formula { residuals } => {
            let t = std::time::Instant::now();
            // every partial the nonlinear parts read, once, and its route (made once per
            // condition and setting, kept in `work`)
            let sample = (!draw.diagonal.is_empty()).then_some(draw.diagonal.len());
            let key = (residuals.as_ptr() as usize, work.first_order_jets, sample);
            let routes = match work.routes.take() {
                Some((k, r)) if k == key => r,
                _ => PartialRoutes::new(residuals, sample, work.first_order_jets),
            };
            let loss = formula_loss(net, problem, residuals, &routes, weight, points, draw, work, grad);
            work.routes = Some((key, routes));
            work.network_s += t.elapsed().as_secs_f64();
            loss
        }
        Term::Target {
            target,
            gradient_weight,
        } => {
            if *gradient_weight != 0.0 && (ansatz != Ansatz::Identity || problem.offset.is_some()) {
                return Err(NnError::Architecture(
                    "a gradient-matching target needs the identity ansatz and no offset".into(),
                ));
            }
            let t = std::time::Instant::now();
            let space = net.architecture().input_dim - usize::from(cond.domain.has_time());
            let loss = target_loss(
                net,
                problem,
                target.as_ref(),
                space,
                *gradient_weight,
                weight,
                points,
                work,
                grad,
            );
            work.network_s += t.elapsed().as_secs_f64();
            loss
        }
    }
}

/// `Σ_r w_r·mean r²` with `r = L_r u + N_r(x, t, u, ∂u) − f_r(x, t)`: the draws of every `L_r`
/// and the partials the `N_r` read by jets are one [`MultiPlan`] (shared jets) through
/// [`PlanPass`] (with the ansatz `ψ` and the offset `φ`), the others by their routes
/// ([`PartialRoutes`], made once per condition: the gradient sweep, sampled diagonals); `N_r`
/// and its derivatives in `u` and the partials come from the formula's reverse sweep.
#[allow(clippy::too_many_arguments)]
fn formula_loss<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    residuals: &[FormulaResidual],
    routes: &PartialRoutes,
    weight: f64,
    points: &mut Vec<T>,
    draw: &ConditionDraw,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let din = net.architecture().input_dim;
    let n = points.len() / din;
    let nr = residuals.len();
    if draw.plans.len() != nr {
        return Err(NnError::Architecture(format!(
            "{} residuals but {} operator draws",
            nr,
            draw.plans.len()
        )));
    }
    let (partials, maps) = (&routes.partials, &routes.maps);
    let sweep = routes.sweep();
    // the quantity of every partial read from the jets: all jet-routed ones, and the sampled
    // diagonal ones of this step's coordinates (scaled by d/R)
    let mut plans = draw.plans.clone();
    let mut quantity_of: Vec<Option<usize>> = vec![None; partials.len()];
    let mut add = |g: usize, plans: &mut Vec<ProbePlan>| -> Result<(), NnError> {
        quantity_of[g] = Some(plans.len());
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, &partials[g])
            .map_err(|e| NnError::Architecture(e.to_string()))?;
        plans.push(b.finish());
        Ok(())
    };
    for (g, route) in routes.routes.iter().enumerate() {
        if *route == Route::Jets {
            add(g, &mut plans)?;
        }
    }
    let scale = if routes.sampled() {
        problem.dim as f64 / draw.diagonal.len() as f64
    } else {
        0.0
    };
    if routes.sampled() {
        for i in &draw.diagonal {
            if let Some(&g) = routes.sampled_diagonal.get(i) {
                add(g, &mut plans)?;
            }
        }
    }
    let plan = MultiPlan::new(plans);
    let q_count = plan.quantities.len();
    // sources at the (rounded) points the network sees
    let t_source = std::time::Instant::now();
    let mut wide = std::mem::take(&mut work.wide);
    wide.clear();
    wide.par_extend(points.par_iter().map(|v| v.as_f64()));
    let mut source = vec![0.0; n * nr];
    for (r, res) in residuals.iter().enumerate() {
        if let Some(f) = &res.source {
            let threads = rayon::current_num_threads().max(1);
            source
                .par_chunks_mut(nr)
                .zip(wide.par_chunks(din))
                .with_min_len(n.div_ceil(threads).max(1))
                .for_each_init(|| f.workspace(0), |ws, (s, x)| s[r] = f.eval(ws, x, f64::NAN, &[]));
        } else if let Some(exact) = &res.derived_source {
            let values = derived_source(res, exact, din, &wide).map_err(NnError::Architecture)?;
            for p in 0..n {
                source[p * nr + r] = values[p];
            }
        }
    }
    work.source_s += t_source.elapsed().as_secs_f64();
    if sweep {
        *points = work
            .sweep
            .forward(net, problem.ansatz, problem.offset.as_deref(), std::mem::take(points))
            .map_err(eval_err)?;
        work.lambda.clear();
        work.lambda.resize(n * din, 0.0);
    }
    work.pass.set_offset(problem.offset.clone());
    work.pass
        .forward(net, problem.ansatz, &plan, std::mem::take(points), None)
        .map_err(eval_err)?;
    let inv_n = 1.0 / n as f64;
    let mut cot = vec![0.0; n * q_count];
    let mut values = std::mem::take(&mut work.formula_residuals);
    values.clear();
    values.resize(n * nr, 0.0);
    let mut cot_u = vec![0.0; n];
    // λ = ∂loss/∂∇u per point (one unused entry per point without the sweep)
    let lambda_width = if sweep { din } else { 1 };
    let mut lambda = std::mem::take(&mut work.lambda);
    lambda.clear();
    lambda.resize(n * lambda_width, 0.0);
    let mut point_loss = vec![0.0; n];
    let (pass, grad_sweep) = (&work.pass, &work.sweep);
    // where each residual's partials are read, flat (no lookups per point and partial)
    let reads: Vec<Vec<Read>> = maps
        .iter()
        .map(|m| {
            m.iter()
                .map(|&g| match (routes.routes[g], quantity_of[g]) {
                    (Route::Jets, Some(k)) => Read::Plan(k, 1.0),
                    (Route::Sampled, Some(k)) => Read::Plan(k, scale),
                    (Route::GradientSweep, _) => Read::Gradient(partials[g][0]),
                    _ => Read::Zero,
                })
                .collect()
        })
        .collect();
    // the points side by side (each its own formula workspaces), the loss summed in point order
    let threads = rayon::current_num_threads().max(1);
    cot.par_chunks_mut(q_count)
        .zip(cot_u.par_iter_mut())
        .zip(lambda.par_chunks_mut(lambda_width))
        .zip(values.par_chunks_mut(nr))
        .zip(point_loss.par_iter_mut())
        .enumerate()
        .with_min_len(n.div_ceil(threads).max(1))
        .for_each_init(
            || {
                let workspaces: Vec<_> = residuals
                    .iter()
                    .map(|r| r.nonlinear.as_ref().map(|f| f.workspace(1)))
                    .collect();
                (workspaces, Vec::new(), Vec::new())
            },
            |(workspaces, q, dq), (p, ((((cot, cot_u), lambda), values), point_loss))| {
                let x = &wide[p * din..(p + 1) * din];
                let u = pass.u(p);
                let grad_u = if sweep { grad_sweep.gradient(p) } else { &[] };
                for (r, res) in residuals.iter().enumerate() {
                    let mut value = pass.value(p, r) - source[p * nr + r];
                    q.clear();
                    q.push(u);
                    q.extend(reads[r].iter().map(|read| match *read {
                        Read::Plan(k, s) => s * pass.value(p, k),
                        Read::Gradient(c) => grad_u[c],
                        Read::Zero => 0.0,
                    }));
                    dq.clear();
                    dq.resize(q.len(), 0.0);
                    if let (Some(f), Some(ws)) = (&res.nonlinear, workspaces[r].as_mut()) {
                        value += f.eval_with_gradient(ws, x, f64::NAN, q, dq);
                    }
                    values[r] = value;
                    *point_loss += res.weight * value * value * inv_n;
                    let dr = 2.0 * res.weight * value * inv_n * weight;
                    cot[r] += dr;
                    *cot_u += dr * dq[0];
                    for (read, dqk) in reads[r].iter().zip(&dq[1..]) {
                        match *read {
                            Read::Plan(j, s) => cot[j] += dr * s * dqk,
                            Read::Gradient(c) => lambda[c] += dr * dqk,
                            Read::Zero => {}
                        }
                    }
                }
            },
        );
    let loss: f64 = point_loss.iter().sum();
    work.formula_residuals = values;
    work.lambda = lambda;
    work.wide = wide;
    *points = work.pass.backward(net, &plan, &cot, &cot_u, grad).map_err(eval_err)?;
    work.pass.set_offset(None);
    if sweep {
        *points = work
            .sweep
            .backward(net, std::mem::take(points), &work.lambda, grad)
            .map_err(eval_err)?;
    }
    Ok(weight * loss)
}

/// Where a formula residual reads one partial at a point.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// Quantity `k` of the plan pass, times a scale (`d/R` for a sampled diagonal, else 1).
    Plan(usize, f64),
    /// Entry `c` of `∇u` from the gradient sweep.
    Gradient(usize),
    /// A sampled diagonal partial whose coordinate was not drawn.
    Zero,
}

/// The gPINN terms of one step (spec §6.2), each `g = Σ_t a_t·u_{i_t i_t j} + F'(u)u_j − ∂_j f`
/// for one pair's `j`, over the pairs `(i_k, j_k)` (the Laplacian's `I` zipped with `J`).
struct GpinnTerms {
    /// The `(i, j)` of every third-order partial read.
    third: Vec<(usize, usize)>,
    /// The terms.
    list: Vec<GpinnTerm>,
    /// The weight of each `g²` in the loss besides `c_gPINN` and the mean over points.
    weight: f64,
}

struct GpinnTerm {
    /// `(index into GpinnTerms::third, coefficient)`.
    third: Vec<(usize, f64)>,
    /// The pair whose `j` (and `u_j`, `∂_j f`) the term reads.
    pair: usize,
}

impl GpinnTerms {
    fn new(form: GpinnForm, pairs: &[(usize, usize)], d: usize) -> GpinnTerms {
        let r = pairs.len();
        let is = || pairs.iter().map(|&(i, _)| i);
        match form {
            GpinnForm::Zipped => GpinnTerms {
                third: pairs.to_vec(),
                list: (0..r)
                    .map(|k| GpinnTerm {
                        third: vec![(k, 1.0)],
                        pair: k,
                    })
                    .collect(),
                weight: 1.0 / r.max(1) as f64,
            },
            GpinnForm::DoubleSum | GpinnForm::Consistent => {
                // every (i, j) of I × J: entry b·R + a for i = i_a, j = j_b
                let third = pairs.iter().flat_map(|&(_, j)| is().map(move |i| (i, j))).collect();
                let list = if form == GpinnForm::DoubleSum {
                    (0..r * r)
                        .map(|t| GpinnTerm {
                            third: vec![(t, 1.0)],
                            pair: t / r,
                        })
                        .collect()
                } else {
                    let scale = d as f64 / r.max(1) as f64;
                    (0..r)
                        .map(|b| GpinnTerm {
                            third: (0..r).map(|a| (b * r + a, scale)).collect(),
                            pair: b,
                        })
                        .collect()
                };
                let weight = if form == GpinnForm::DoubleSum {
                    1.0
                } else {
                    1.0 / r.max(1) as f64
                };
                GpinnTerms { third, list, weight }
            }
        }
    }
}

/// `(f(x), ψ(x))` of an equation residual at one point: the source and, for the unit-ball
/// ansatz, `ψ = 1 − ‖x‖²` (from the same pass over `x` in f32); `psi` is kept otherwise.
fn source_and_psi<T: Real>(eq: &dyn Equation, unit_ball: bool, x: &[T], psi: f64) -> (f64, f64) {
    let (f, norm2) = match T::view(x) {
        // the source and ‖x‖² in one pass over the point
        Slice::F32(x) => eq.source_f32_and_norm2(x),
        Slice::F64(x) => (eq.source(x), if unit_ball { sum_squares(x) } else { 0.0 }),
    };
    (f, if unit_ball { 1.0 - norm2 } else { psi })
}

/// [`source_and_psi`] of a point handed over by [`crate::pde::Domain::fill_map`] with its last
/// scaling `pending` (applied here, in f32 chunk by chunk right before the source reads them),
/// calling `visit` on growing prefixes of the final point, the last one whole.
fn source_and_psi_drawn<T: Real>(
    eq: &dyn Equation,
    unit_ball: bool,
    x: &mut [T],
    pending: Option<T>,
    visit: &mut dyn FnMut(&[T]),
) -> (f64, f64) {
    if let Some(scale) = pending {
        if let SliceMut::F32(x32) = T::view_mut(x) {
            let mut visit32 = |p: &[f32]| visit(T::of_f32(p).expect("an f32 point"));
            let (f, norm2) = eq.source_f32_and_norm2_scaling(x32, scale.as_f64() as f32, &mut visit32);
            return (f, if unit_ball { 1.0 - norm2 } else { 1.0 });
        }
        x.iter_mut().for_each(|v| *v *= scale);
    }
    visit(x);
    source_and_psi(eq, unit_ball, x, 1.0)
}

/// The per-point work of condition `cond` that can run where each point is drawn, while the
/// point is still in cache ([`crate::pde::Domain::fill_map`], whose `(x, pending)` it takes,
/// with a visitor of the final point's growing prefixes for other per-point work):
/// `(f(x), ψ(x))` of an equation residual without the gPINN term. Hand the results to
/// [`ResidualWork::set_drawn`] before the condition's step. `None` for every other condition.
#[allow(clippy::type_complexity)]
pub fn point_source<'a, T: Real>(
    problem: &Problem,
    cond: &'a Condition,
) -> Option<impl Fn(&mut [T], Option<T>, &mut dyn FnMut(&[T])) -> (f64, f64) + Sync + 'a> {
    match &cond.term {
        Term::Residual { equation, gpinn, .. } if gpinn.unwrap_or(0.0) == 0.0 && problem.offset.is_none() => {
            let unit_ball = problem.ansatz == Ansatz::UnitBall;
            let eq = equation.as_ref();
            Some(move |x: &mut [T], pending: Option<T>, visit: &mut dyn FnMut(&[T])| {
                source_and_psi_drawn(eq, unit_ball, x, pending, visit)
            })
        }
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn residual_loss<T: Real>(
    net: &Mlp<T>,
    ansatz: Ansatz,
    eq: &dyn Equation,
    (gpinn, form): (f64, GpinnForm),
    (weight, defer_first): (f64, bool),
    points: &mut Vec<T>,
    draw: &ConditionDraw,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let d = net.architecture().input_dim;
    let n = points.len() / d;
    let draws = draw.plans.len();
    let r_pairs = draw.pairs.len();
    // sources (and ∂_j f for gPINN) and ψ from the same (rounded) points the network sees
    let t_source = std::time::Instant::now();
    work.source.resize(n, 0.0);
    work.psi.resize(n, 1.0);
    work.source_partials.resize(n * r_pairs.max(1), 0.0);
    let js: Vec<usize> = draw.pairs.iter().map(|&(_, j)| j).collect();
    let unit_ball = ansatz == Ansatz::UnitBall;
    let missing = std::sync::atomic::AtomicBool::new(false);
    let drawn = work.point_sources.take().filter(|v| v.len() == n && r_pairs == 0);
    let block_sums = work.block_sums.take();
    if let Some(drawn) = drawn {
        work.pass.set_block_sums(block_sums);
        // computed where the points were drawn (`point_source`)
        for ((f, psi), (fv, pv)) in work.source.iter_mut().zip(work.psi.iter_mut()).zip(drawn) {
            (*f, *psi) = (fv, pv);
        }
    } else {
        points
            .par_chunks(d)
            .zip(work.source.par_iter_mut().zip(work.psi.par_iter_mut()))
            .zip(work.source_partials.par_chunks_mut(r_pairs.max(1)))
            .for_each(|((x, (f, psi)), df)| {
                if r_pairs > 0 {
                    let wide: Vec<f64> = x.iter().map(|v| v.as_f64()).collect();
                    match eq.source_with_partials(&wide, &js, df) {
                        Some(v) => *f = v,
                        None => missing.store(true, std::sync::atomic::Ordering::Relaxed),
                    }
                    if unit_ball {
                        *psi = 1.0 - sum_squares(x);
                    }
                } else {
                    (*f, *psi) = source_and_psi(eq, unit_ball, x, *psi);
                }
            });
    }
    work.source_s += t_source.elapsed().as_secs_f64();
    if missing.into_inner() {
        return Err(NnError::Architecture(format!(
            "{} does not provide the source gradient the gPINN term needs",
            eq.name()
        )));
    }
    let t_network = std::time::Instant::now();
    if work.collapsed
        && draws == 1
        && r_pairs == 0
        && net.shared_layout().is_none()
        && collapsible(&draw.plans[0], &mut work.collapsible)
    {
        let plan = std::mem::take(&mut work.collapsible);
        let loss = collapsed_loss(net, eq, unit_ball, &plan, (weight, defer_first), points, work, grad);
        work.collapsible = plan;
        work.network_s += t_network.elapsed().as_secs_f64();
        return loss;
    }
    if defer_first {
        zero_first_weight(net, grad);
    }
    // quantities: the draws of L, then the third-order partials u_{i i j} of the gPINN terms,
    // then u_j per pair (its j is the source partial's)
    let terms = GpinnTerms::new(form, &draw.pairs, d);
    let mut plans = draw.plans.clone();
    let partial = |index: &[usize]| -> Result<ProbePlan, NnError> {
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, index)
            .map_err(|e| NnError::Architecture(e.to_string()))?;
        Ok(b.finish())
    };
    for &(i, j) in &terms.third {
        plans.push(partial(&[i, i, j])?);
    }
    for &(_, j) in &draw.pairs {
        plans.push(partial(&[j])?);
    }
    let n_third = terms.third.len();
    let plan = MultiPlan::new(plans);
    let q = plan.quantities.len();
    work.pass
        .forward(
            net,
            ansatz,
            &plan,
            std::mem::take(points),
            unit_ball.then_some(&work.psi[..]),
        )
        .map_err(eval_err)?;
    let inv_n = 1.0 / n as f64;
    let c_g = gpinn;
    let mut cot = vec![0.0; n * q];
    let mut cot_u = vec![0.0; n];
    let mut loss = 0.0;
    let mut r = [0.0; 2];
    for p in 0..n {
        let u = work.pass.u(p);
        let (fu, dfu, ddfu) = eq.nonlinearity(u);
        for (g, rg) in r.iter_mut().enumerate().take(draws) {
            *rg = work.pass.value(p, g) + fu - work.source[p];
        }
        let c = &mut cot[p * q..(p + 1) * q];
        if draws == 1 {
            loss += r[0] * r[0] * inv_n;
            c[0] = 2.0 * r[0] * inv_n;
            cot_u[p] = 2.0 * r[0] * dfu * inv_n;
        } else {
            loss += r[0] * r[1] * inv_n;
            c[0] = r[1] * inv_n;
            c[1] = r[0] * inv_n;
            cot_u[p] = (r[0] + r[1]) * dfu * inv_n;
        }
        for term in &terms.list {
            let first = draws + n_third + term.pair;
            let u1 = work.pass.value(p, first);
            let u3: f64 = term.third.iter().map(|&(t, a)| a * work.pass.value(p, draws + t)).sum();
            let g = u3 + dfu * u1 - work.source_partials[p * r_pairs + term.pair];
            loss += c_g * terms.weight * g * g * inv_n;
            let dg = 2.0 * c_g * terms.weight * g * inv_n;
            for &(t, a) in &term.third {
                c[draws + t] += dg * a;
            }
            c[first] += dg * dfu;
            cot_u[p] += dg * ddfu * u1;
        }
    }
    cot.iter_mut().chain(cot_u.iter_mut()).for_each(|v| *v *= weight);
    *points = work.pass.backward(net, &plan, &cot, &cot_u, grad).map_err(eval_err)?;
    work.network_s += t_network.elapsed().as_secs_f64();
    Ok(weight * loss)
}

/// The biased loss of one collapsible draw: `Σ_j D²N[v_j, v_j]` arrives summed per point
/// (`2·sum2`), first orders per direction. With `u = ψN`, `D²u[v, v] = −2‖v‖²N₀ − 4(x·v)N₁ + ψ₀D²N[v, v]`
/// and `∂_c u = −2x_c N₀ + ψ₀ ∂_c N`; without an ansatz `u = N`.
#[allow(clippy::too_many_arguments)]
fn collapsed_loss<T: Real>(
    net: &Mlp<T>,
    eq: &dyn Equation,
    unit_ball: bool,
    plan: &Collapsible,
    (weight, defer_first): (f64, bool),
    points: &mut Vec<T>,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let d = net.architecture().input_dim;
    let input = plan.input(std::mem::take(points), d, std::mem::take(&mut work.input_slots))?;
    let (n, dirs, ns) = (input.points(), input.dirs(), plan.summed_len());
    let w = plan.w;
    let out = net.forward_collapsed_partly(&input, ns, &mut work.collapsed_tape)?;
    let mut cot = std::mem::take(&mut work.collapsed_cotangent);
    // every entry of the cotangent is written below
    cot.reshape(out.points, out.dirs, out.width);
    let inv_n = 1.0 / n as f64;
    let mut loss = 0.0;
    let mut xv = std::mem::take(&mut work.dots);
    for p in 0..n {
        let x = &input.primal()[p * d..(p + 1) * d];
        let first = &out.first()[p * dirs..(p + 1) * dirs];
        let sum2 = 2.0 * out.sum2()[p].as_f64();
        let n0 = out.primal()[p].as_f64();
        let psi0 = if unit_ball { work.psi[p] } else { 1.0 };
        let (mut vv_sum, mut cross) = (0.0, 0.0);
        xv.clear();
        if unit_ball {
            for j in 0..ns {
                let (xvj, vv) = plan.dot(j, x);
                xv.push(xvj);
                vv_sum += vv;
                cross += xvj * first[j].as_f64();
            }
        }
        // ψ's part of the operator is −2Σ‖v‖²N₀ − 4Σ(x·v)N₁ (second order) and −2x_c N₀ (first)
        let mut lu = w * (-2.0 * vv_sum * n0 - 4.0 * cross + psi0 * sum2);
        let mut dn0 = w * -2.0 * vv_sum;
        for (e, &(c, we)) in plan.first.iter().enumerate() {
            let ball = if unit_ball { -2.0 * x[c].as_f64() } else { 0.0 };
            lu += we * (ball * n0 + psi0 * first[ns + e].as_f64());
            dn0 += we * ball;
        }
        let (fu, dfu, _) = eq.nonlinearity(psi0 * n0);
        let r = lu + fu - work.source[p];
        loss += r * r * inv_n;
        let dr = 2.0 * r * inv_n * weight;
        // ∂L/∂sum2 (normalised) = 2·∂L/∂(Σ y₂)
        cot.sum2_mut()[p] = T::c(2.0 * dr * w * psi0);
        let cf = &mut cot.first_mut()[p * dirs..(p + 1) * dirs];
        for j in 0..ns {
            cf[j] = T::c(if unit_ball { dr * w * -4.0 * xv[j] } else { 0.0 });
        }
        for (e, &(_, we)) in plan.first.iter().enumerate() {
            cf[ns + e] = T::c(dr * we * psi0);
        }
        cot.primal_mut()[p] = T::c(dr * (dn0 + dfu * psi0));
    }
    if defer_first {
        work.deferred_first = net.backward_collapsed_deferring_first(&input, &mut work.collapsed_tape, &cot, grad)?;
    } else {
        net.backward_collapsed(&input, &mut work.collapsed_tape, &cot, grad)?;
    }
    work.collapsed_cotangent = cot;
    work.dots = xv;
    (*points, work.input_slots) = input.into_parts();
    Ok(weight * loss)
}

/// `weight·[mean (u − g)² + c·mean_{points, i < d} (∂_i u − ∂_i g)²]` at `points` (`[n × input]`;
/// the first `d` coordinates are spatial, a time coordinate follows if any).
#[allow(clippy::too_many_arguments)]
fn target_loss<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    target: &dyn Target,
    d: usize,
    c: f64,
    weight: f64,
    points: &mut Vec<T>,
    work: &mut ResidualWork<T>,
    grad: &mut [T],
) -> Result<f64, NnError> {
    let din = net.architecture().input_dim;
    let n = points.len() / din;
    let bad = |e: crate::jet::InputError| NnError::Architecture(e.to_string());
    // g and ∇g
    let mut g = vec![0.0; n];
    let mut grad_g = vec![0.0; n * d];
    // the points widened once, for g, ∇g and a target defined per batch
    let wide: Vec<f64> = points.iter().map(|v| v.as_f64()).collect();
    wide.par_chunks(din)
        .zip(g.par_iter_mut().zip(grad_g.par_chunks_mut(d)))
        .for_each(|(x, (gv, gg))| *gv = target.value_and_gradient(x, gg));
    // a target defined per batch (compat C7) replaces the values, not the gradients
    if let Some(v) = target.batch_value(&wide, din) {
        g.fill(v);
    }
    // ∇_x u by one reverse pass (its parameter gradient is discarded)
    let mut a = vec![T::zero(); n * din];
    if c != 0.0 {
        let input = InputJets::new(1, din, 1, std::mem::take(points)).map_err(bad)?;
        let out = net.forward(&input, &mut work.tape)?;
        let mut cot = std::mem::take(&mut work.cotangent);
        cot.reset(out.order, out.points, out.dirs, out.width, out.support);
        cot.primal.fill(T::one());
        work.scratch.clear();
        work.scratch.resize(net.num_params(), T::zero());
        net.backward(&input, &mut work.tape, &cot, &mut work.scratch, Some(&mut a))?;
        work.cotangent = cot;
        *points = input.into_primal();
    }
    // a = ∇_x u − ∇g (time entry 0), held fixed
    let mut a_norm2 = 0.0;
    for p in 0..n {
        for i in 0..d {
            let v = a[p * din + i].as_f64() - grad_g[p * d + i];
            a[p * din + i] = T::c(v);
            a_norm2 += v * v;
        }
        a[p * din + d..(p + 1) * din].fill(T::zero());
    }
    let mut input = InputJets::new(1, din, 1, std::mem::take(points)).map_err(bad)?;
    if c != 0.0 {
        input.set(1, Tangent::Dense(a)).map_err(bad)?;
    }
    let out = net.forward(&input, &mut work.tape)?;
    let mut cot = std::mem::take(&mut work.cotangent);
    cot.reset(out.order, out.points, out.dirs, out.width, out.support);
    let inv_n = 1.0 / n as f64;
    let mut loss = c * a_norm2 * inv_n / d as f64;
    // u = φ + ψ·N (the identity when the gradient is matched)
    let mut ws = problem.offset.as_ref().map(|f| f.workspace(0)).unwrap_or_default();
    let mut wide = vec![0.0; din];
    for (p, gp) in g.iter().enumerate() {
        let x = &input.primal()[p * din..(p + 1) * din];
        let psi = problem.ansatz.value(x);
        let phi = problem.offset.as_ref().map_or(0.0, |f| {
            wide.iter_mut().zip(x).for_each(|(w, v)| *w = v.as_f64());
            f.eval(&mut ws, &wide, f64::NAN, &[])
        });
        let e = phi + psi * out.derivative(0, p, 0).as_f64() - gp;
        loss += e * e * inv_n;
        cot.add_derivative_cotangent(0, p, 0, T::c(weight * 2.0 * e * psi * inv_n));
        cot.add_derivative_cotangent(1, p, 0, T::c(weight * c * 2.0 * inv_n / d as f64));
    }
    net.backward(&input, &mut work.tape, &cot, grad, None)?;
    work.cotangent = cot;
    *points = input.into_primal();
    Ok(weight * loss)
}

/// `f = L u* + N(x, t, u*, ∂u*)` at every point of `points` (`[n × din]`), every derivative of
/// `u*` taken by the engine: the exact plan of `L` and of `N`'s partials, with `u*`'s Taylor
/// series along every probe curve.
pub fn derived_source(res: &FormulaResidual, exact: &Formula, din: usize, points: &[f64]) -> Result<Vec<f64>, String> {
    let mut plans = vec![ProbePlan::exact(&res.operator, din).map_err(|e| e.to_string())?];
    let partials: &[Vec<usize>] = res.nonlinear.as_ref().map_or(&[], |f| f.partials());
    for idx in partials {
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, idx).map_err(|e| e.to_string())?;
        plans.push(b.finish());
    }
    let plan = MultiPlan::new(plans);
    Ok(points
        .par_chunks(din)
        .map(|x| {
            let q = crate::operator::formula_quantities(&plan, exact, x);
            let mut f = q[0];
            if let Some(n) = &res.nonlinear {
                let mut ws = exact.workspace(0);
                let u = exact.eval(&mut ws, x, f64::NAN, &[]);
                let mut qs = vec![u];
                qs.extend_from_slice(&q[1..]);
                f += n.eval(&mut n.workspace(0), x, f64::NAN, &qs);
            }
            f
        })
        .collect())
}

/// `u` at `points` (`[n × input_dim]`): `φ + ψ·N` for the ansatz `ψ` (`1`, `1 − ‖x‖²` or `t`)
/// and the offset `φ` (initial data; none: 0).
pub fn predict<T: Real>(
    net: &Mlp<T>,
    ansatz: Ansatz,
    offset: Option<&Formula>,
    points: &[T],
    tape: &mut Tape<T>,
) -> Result<Vec<f64>, NnError> {
    let d = net.architecture().input_dim;
    let input = InputJets::new(1, d, 1, points.to_vec()).map_err(|e| NnError::Architecture(e.to_string()))?;
    let out = net.forward(&input, tape)?;
    let mut ws = offset.map(|f| f.workspace(0)).unwrap_or_default();
    let mut wide = vec![0.0; d];
    Ok((0..points.len() / d)
        .map(|p| {
            let x = &points[p * d..(p + 1) * d];
            let n = out.derivative(0, p, 0).as_f64();
            let psi = match ansatz {
                Ansatz::UnitBall => 1.0 - sum_squares(x),
                other => other.value(x),
            };
            let phi = offset.map_or(0.0, |f| {
                wide.iter_mut().zip(x).for_each(|(w, v)| *w = v.as_f64());
                f.eval(&mut ws, &wide, f64::NAN, &[])
            });
            phi + psi * n
        })
        .collect())
}
