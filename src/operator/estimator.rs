//! Estimators of `L u`: exact plans and the randomised STDE plans (sparse and dense, spec §7).
//! Each draw is a [`ProbePlan`] whose value is an unbiased estimate of `L u`.
//!
//! What is randomised: the operator's families (Laplacian, `diagK`, biharmonic, directional sums);
//! explicit `d[...]` terms are always exact (so `u_t` is never sampled away). An operator without
//! families randomises over its explicit terms instead.

use super::plan::{PlanBuilder, ProbePlan};
use super::{Family, Operator, OperatorError, Term, merge_terms};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use std::collections::HashSet;

/// How sparse STDE picks terms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sampling {
    /// `R` distinct terms, uniformly, weight `N/R` (SDGD for the Laplacian; spec §7.1a).
    Uniform,
    /// `R` i.i.d. terms with probability `∝ |c_α|`, weight `Z/R·sgn(c_α)` (spec §7.1b).
    Importance,
}

/// Probe distribution of dense STDE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DenseDistribution {
    /// `±1` entries (lowest variance for the Laplacian; not valid for the biharmonic).
    Rademacher,
    /// `N(0, 1)` entries.
    Gaussian,
}

/// Which estimator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EstimatorKind {
    /// Every term (no randomness).
    Exact,
    /// Sparse STDE.
    Sparse(Sampling),
    /// Dense STDE (second-order operators; the biharmonic with Gaussian probes).
    Dense(DenseDistribution),
}

/// The randomised part of an operator, as an index space of terms.
#[derive(Clone, Debug)]
enum Pool {
    Families(Vec<Family>),
    Terms(Vec<Term>),
}

/// An estimator of `L u` for one operator and input dimension.
#[derive(Debug)]
pub struct Estimator {
    dim: usize,
    /// Coordinates the families range over (`≤ dim`).
    family_dim: usize,
    kind: EstimatorKind,
    rand_batch: usize,
    pool: Pool,
    exact_terms: Vec<Term>,
    /// Dense: symmetric coefficient matrix of explicit second-order terms, factored as
    /// `C = A₊A₊ᵀ − A₋A₋ᵀ` (columns of `A±` are `√|λ|·u_k`), `[d × d]` row-major each.
    dense_factors: Option<(Vec<f64>, Vec<f64>)>,
    /// Reused across draws (recipes and buffers kept).
    builder: PlanBuilder,
    /// Scratch of the uniform sparse draw (Floyd's algorithm).
    picks: Vec<u64>,
    seen: HashSet<u64>,
}

fn family_size(f: &Family, dim: usize) -> u64 {
    match f {
        Family::Diagonal { .. } => dim as u64,
        Family::Biharmonic { .. } => (dim as u64) * (dim as u64),
        Family::Directional { directions, .. } => directions.len() as u64,
    }
}

fn family_coeff(f: &Family) -> f64 {
    match f {
        Family::Diagonal { coeff, .. } | Family::Biharmonic { coeff } | Family::Directional { coeff, .. } => *coeff,
    }
}

/// `R` distinct integers from `0..n` (Floyd's algorithm).
pub fn sample_distinct<R: Rng>(rng: &mut R, n: u64, r: usize) -> Vec<u64> {
    let mut out = Vec::with_capacity(r);
    sample_distinct_into(rng, n, r, &mut out, &mut HashSet::with_capacity(r));
    out
}

/// [`sample_distinct`] into `out` (replaced), with `chosen` as scratch: the same draws, no
/// allocation once both have room for `r`.
pub fn sample_distinct_into<R: Rng>(rng: &mut R, n: u64, r: usize, out: &mut Vec<u64>, chosen: &mut HashSet<u64>) {
    out.clear();
    chosen.clear();
    for j in (n - r as u64)..n {
        let t = rng.random_range(0..=j);
        let pick = if chosen.contains(&t) { j } else { t };
        chosen.insert(pick);
        out.push(pick);
    }
}

impl Estimator {
    /// Checks the operator, dimension and batch, and prepares the estimator.
    pub fn new(op: &Operator, dim: usize, kind: EstimatorKind, rand_batch: usize) -> Result<Estimator, OperatorError> {
        op.validate(dim)?;
        let (pool, exact_terms) = if op.families.is_empty() {
            (Pool::Terms(merge_terms(op.terms.clone())), vec![])
        } else {
            (Pool::Families(op.families.clone()), merge_terms(op.terms.clone()))
        };
        let mut est = Estimator {
            dim,
            family_dim: op.family_range(dim),
            kind,
            rand_batch,
            pool,
            exact_terms,
            dense_factors: None,
            builder: PlanBuilder::new(),
            picks: Vec::new(),
            seen: HashSet::new(),
        };
        if kind == EstimatorKind::Exact {
            return Ok(est);
        }
        if rand_batch == 0 {
            return Err(OperatorError::Invalid(
                "the randomisation batch R must be positive".into(),
            ));
        }
        match kind {
            EstimatorKind::Sparse(Sampling::Uniform) => {
                let n = est.pool_size();
                if rand_batch as u64 > n {
                    return Err(OperatorError::Invalid(format!(
                        "randomisation batch R = {rand_batch} exceeds the {n} term(s) to sample from"
                    )));
                }
            }
            EstimatorKind::Sparse(Sampling::Importance) => {
                if est.pool_size() == 0 {
                    return Err(OperatorError::Invalid("the operator has no term to sample".into()));
                }
                // probabilities ∝ |c|: they need a finite, non-zero total
                let total: f64 = match &est.pool {
                    Pool::Families(fs) => fs
                        .iter()
                        .map(|f| family_coeff(f).abs() * family_size(f, est.family_dim) as f64)
                        .sum(),
                    Pool::Terms(ts) => ts.iter().map(|t| t.coeff.abs()).sum(),
                };
                if !(total.is_finite() && total > 0.0) {
                    return Err(OperatorError::Invalid(format!(
                        "importance sampling needs finite coefficients that are not all zero (their total |c| is {total})"
                    )));
                }
            }
            EstimatorKind::Dense(dist) => est.prepare_dense(dist)?,
            EstimatorKind::Exact => {}
        }
        Ok(est)
    }

    /// Number of terms sparse sampling draws from (`N`).
    pub fn pool_size(&self) -> u64 {
        match &self.pool {
            Pool::Families(fs) => fs.iter().map(|f| family_size(f, self.family_dim)).sum(),
            Pool::Terms(ts) => ts.len() as u64,
        }
    }

    fn prepare_dense(&mut self, dist: DenseDistribution) -> Result<(), OperatorError> {
        let unsupported = |what: &str| {
            Err(OperatorError::Invalid(format!(
                "dense STDE cannot estimate {what}: it covers second-order operators and the biharmonic (use --estimator sparse)"
            )))
        };
        match &mut self.pool {
            Pool::Families(fs) => {
                let has_bih = fs.iter().any(|f| matches!(f, Family::Biharmonic { .. }));
                for f in fs.iter() {
                    match f {
                        Family::Diagonal { order, .. } if *order != 2 => {
                            return unsupported(&format!("Σ_i ∂^{order}/∂x_i^{order}"));
                        }
                        Family::Directional { order, .. } if *order != 2 => {
                            return unsupported("directional derivatives of order ≠ 2");
                        }
                        Family::Biharmonic { .. } if dist == DenseDistribution::Rademacher => {
                            return Err(OperatorError::Invalid(
                                "the dense biharmonic estimator needs Gaussian probes (Rademacher is biased, spec §7.5)".into(),
                            ));
                        }
                        _ => {}
                    }
                }
                if has_bih && fs.len() > 1 {
                    return unsupported("a biharmonic mixed with other families");
                }
                Ok(())
            }
            Pool::Terms(ts) => {
                // second-order explicit terms form C; the others are evaluated exactly
                let (second, other): (Vec<Term>, Vec<Term>) = ts.drain(..).partition(|t| t.index.len() == 2);
                self.exact_terms.extend(other);
                *ts = second;
                if ts.is_empty() {
                    return Ok(());
                }
                let d = self.dim;
                if d > 4096 {
                    return Err(OperatorError::Invalid(format!(
                        "dense STDE with explicit second-order terms eigendecomposes a d×d matrix; d = {d} is too large"
                    )));
                }
                let mut c = faer::Mat::<f64>::zeros(d, d);
                for t in ts.iter() {
                    let (i, j) = (t.index[0], t.index[1]);
                    if i == j {
                        c[(i, i)] += t.coeff;
                    } else {
                        c[(i, j)] += 0.5 * t.coeff;
                        c[(j, i)] += 0.5 * t.coeff;
                    }
                }
                let evd = c
                    .self_adjoint_eigen(faer::Side::Lower)
                    .map_err(|e| OperatorError::Invalid(format!("eigendecomposition failed: {e:?}")))?;
                let (u, s) = (evd.U(), evd.S().column_vector());
                let (mut plus, mut minus) = (vec![0.0; d * d], vec![0.0; d * d]);
                for k in 0..d {
                    let lam: f64 = s[k];
                    let dst = if lam >= 0.0 { &mut plus } else { &mut minus };
                    let sq = lam.abs().sqrt();
                    for i in 0..d {
                        dst[i * d + k] = u[(i, k)] * sq;
                    }
                }
                self.dense_factors = Some((plus, minus));
                Ok(())
            }
        }
    }

    /// One draw: a plan whose value is an unbiased estimate of `L u` (the exact value for
    /// [`EstimatorKind::Exact`]).
    pub fn draw<R: Rng>(&mut self, rng: &mut R) -> Result<ProbePlan, OperatorError> {
        let mut plan = ProbePlan::default();
        self.draw_into(rng, &mut plan)?;
        Ok(plan)
    }

    /// [`Estimator::draw`] into `plan`, whose buffers (and the estimator's own) are reused: a
    /// training step that draws a plan of the same shape as the last allocates nothing here. The
    /// same random numbers are consumed and the same plan results as with `draw`.
    pub fn draw_into<R: Rng>(&mut self, rng: &mut R, plan: &mut ProbePlan) -> Result<(), OperatorError> {
        let mut b = std::mem::take(&mut self.builder);
        b.reset(std::mem::take(plan));
        let out = self.add_draw(&mut b, rng);
        *plan = b.take_plan();
        self.builder = b;
        out
    }

    /// The terms of one draw, added to `b`.
    fn add_draw<R: Rng>(&mut self, b: &mut PlanBuilder, rng: &mut R) -> Result<(), OperatorError> {
        for t in &self.exact_terms {
            b.add_partial(t.coeff, &t.index)?;
        }
        let r = self.rand_batch;
        match self.kind {
            EstimatorKind::Exact => self.add_all(b)?,
            EstimatorKind::Sparse(Sampling::Uniform) => {
                let n = self.pool_size();
                let scale = n as f64 / r as f64;
                let mut picks = std::mem::take(&mut self.picks);
                sample_distinct_into(rng, n, r, &mut picks, &mut self.seen);
                let out = picks.iter().try_for_each(|&idx| self.add_term(b, idx, scale));
                self.picks = picks;
                out?;
            }
            EstimatorKind::Sparse(Sampling::Importance) => {
                let weights: Vec<f64> = match &self.pool {
                    Pool::Families(fs) => fs
                        .iter()
                        .map(|f| family_coeff(f).abs() * family_size(f, self.family_dim) as f64)
                        .collect(),
                    Pool::Terms(ts) => ts.iter().map(|t| t.coeff.abs()).collect(),
                };
                let z: f64 = weights.iter().sum();
                for _ in 0..r {
                    let mut pick = rng.random::<f64>() * z;
                    let mut g = weights.len() - 1;
                    for (i, w) in weights.iter().enumerate() {
                        if pick < *w {
                            g = i;
                            break;
                        }
                        pick -= w;
                    }
                    // within the chosen group, terms share |c|: uniform; weight Z/R·sgn(c)/|c| per unit coefficient
                    let (offset, size, coeff) = self.group(g);
                    let idx = offset + rng.random_range(0..size);
                    self.add_term(b, idx, z / r as f64 / coeff.abs())?;
                }
            }
            EstimatorKind::Dense(dist) => self.add_dense(b, rng, dist),
        }
        Ok(())
    }

    /// Group `g` of the pool: its first global index, its size and its coefficient.
    fn group(&self, g: usize) -> (u64, u64, f64) {
        match &self.pool {
            Pool::Families(fs) => {
                let offset = fs[..g].iter().map(|f| family_size(f, self.family_dim)).sum();
                (offset, family_size(&fs[g], self.family_dim), family_coeff(&fs[g]))
            }
            Pool::Terms(ts) => (g as u64, 1, ts[g].coeff),
        }
    }

    /// Adds `scale · (term idx of the pool)`.
    fn add_term(&self, b: &mut PlanBuilder, mut idx: u64, scale: f64) -> Result<(), OperatorError> {
        match &self.pool {
            Pool::Terms(ts) => b.add_partial(scale * ts[idx as usize].coeff, &ts[idx as usize].index),
            Pool::Families(fs) => {
                for f in fs {
                    let size = family_size(f, self.family_dim);
                    if idx >= size {
                        idx -= size;
                        continue;
                    }
                    return match f {
                        Family::Diagonal { coeff, order } => b.add_pure_partial(scale * coeff, idx as usize, *order),
                        Family::Biharmonic { coeff } => {
                            let fd = self.family_dim as u64;
                            let (i, j) = ((idx / fd) as usize, (idx % fd) as usize);
                            b.add_partial(scale * coeff, &[i, i, j, j])
                        }
                        Family::Directional {
                            coeff,
                            order,
                            directions,
                        } => {
                            b.add_directional(scale * coeff, *order, &directions[idx as usize]);
                            Ok(())
                        }
                    };
                }
                unreachable!("index below the pool size")
            }
        }
    }

    fn add_all(&self, b: &mut PlanBuilder) -> Result<(), OperatorError> {
        match &self.pool {
            Pool::Terms(ts) => ts.iter().try_for_each(|t| b.add_partial(t.coeff, &t.index)),
            Pool::Families(_) => (0..self.pool_size()).try_for_each(|i| self.add_term(b, i, 1.0)),
        }
    }

    fn add_dense<R: Rng>(&self, b: &mut PlanBuilder, rng: &mut R, dist: DenseDistribution) {
        let (d, fd) = (self.dim, self.family_dim);
        let r = self.rand_batch;
        // `n` random entries, zero-padded to `len` (coordinates outside the families stay 0)
        let mut xi_padded = |n: usize, len: usize| -> Vec<f64> {
            (0..len)
                .map(|i| match dist {
                    _ if i >= n => 0.0,
                    DenseDistribution::Rademacher => {
                        if rng.random::<bool>() {
                            1.0
                        } else {
                            -1.0
                        }
                    }
                    DenseDistribution::Gaussian => StandardNormal.sample(rng),
                })
                .collect()
        };
        match &self.pool {
            Pool::Families(fs) => {
                for f in fs {
                    for _ in 0..r {
                        match f {
                            // E[vvᵀ] = I: y_2 is unbiased for Δu (no factor d; spec §7.2)
                            Family::Diagonal { coeff, .. } => b.add_directional(coeff / r as f64, 2, &xi_padded(fd, d)),
                            // Isserlis: E[D⁴u[v⁴]] = 3Δ²u for Gaussian v (spec §7.5)
                            Family::Biharmonic { coeff } => {
                                b.add_directional(coeff / (3.0 * r as f64), 4, &xi_padded(fd, d))
                            }
                            // Σ_m D²u[w_m, w_m] = E[D²u[(Σ ξ_m w_m)²]] (spec §7.4)
                            Family::Directional { coeff, directions, .. } => {
                                let z = xi_padded(directions.len(), directions.len());
                                let mut v = vec![0.0; d];
                                for (w, zm) in directions.iter().zip(&z) {
                                    v.iter_mut().zip(w).for_each(|(a, b)| *a += zm * b);
                                }
                                b.add_directional(coeff / r as f64, 2, &v);
                            }
                        }
                    }
                }
            }
            Pool::Terms(_) => {
                let Some((plus, minus)) = &self.dense_factors else {
                    return;
                };
                for (factor, sign) in [(plus, 1.0), (minus, -1.0)] {
                    if factor.iter().all(|x| *x == 0.0) {
                        continue;
                    }
                    for _ in 0..r {
                        let z = xi_padded(d, d);
                        let v: Vec<f64> = (0..d).map(|i| (0..d).map(|k| factor[i * d + k] * z[k]).sum()).collect();
                        b.add_directional(sign / r as f64, 2, &v);
                    }
                }
            }
        }
    }
}
