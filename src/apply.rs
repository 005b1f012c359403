//! `stde apply`: `u` and `L u` of a saved network at given points, exactly or by an STDE estimator.
//! A checkpoint that records a hard-constraint ansatz (trainer checkpoints: `u = (1 − ‖x‖²)·N`)
//! is evaluated as `u`, not as the bare network, unless asked otherwise.

use crate::formula::{Formula, Scope};
use crate::io::points::{PointsError, read_points};
use crate::nn::checkpoint::{self, CheckpointError};
use crate::nn::{Ansatz, Mlp, Tape};
use crate::operator::{
    DenseDistribution, Estimator, EstimatorKind, EvalError, Family, MultiPlan, OperatorError, PlanPass, ProbePlan,
    Sampling, evaluate_plan_with, parse,
};
use crate::real::Real;
use rand::{SeedableRng, rngs::StdRng};
use std::path::PathBuf;
use std::sync::Arc;

/// Points evaluated per batch (bounds memory for large inputs).
const CHUNK: usize = 256;

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct ApplyConfig {
    /// Network checkpoint (safetensors).
    pub checkpoint: PathBuf,
    /// Points file (`.npy` or CSV).
    pub points: PathBuf,
    /// Operator text.
    pub operator: String,
    /// `exact`, `sparse` or `dense`.
    pub estimator: String,
    /// Sparse sampling: `uniform` or `importance`.
    pub sampling: String,
    /// Dense probes: `auto`, `rademacher` or `gaussian` (`auto`: Gaussian for the biharmonic).
    pub probes: String,
    /// Randomisation batch `R`.
    pub rand_batch: usize,
    /// Seed of the random draw (one draw shared by all points).
    pub seed: u64,
    /// Compute in f32 instead of f64.
    pub f32: bool,
    /// Evaluate the bare network even if the checkpoint records an ansatz `u = ψ·N`.
    pub ignore_ansatz: bool,
}

/// Everything that can go wrong, each as a one-line message.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Points file problem.
    #[error(transparent)]
    Points(#[from] PointsError),
    /// Checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Operator problem.
    #[error(transparent)]
    Operator(#[from] OperatorError),
    /// Evaluation problem.
    #[error(transparent)]
    Eval(#[from] EvalError),
    /// Bad option or mismatch.
    #[error("{0}")]
    Invalid(String),
}

/// Parses estimator options into an [`EstimatorKind`].
pub fn estimator_kind(
    estimator: &str,
    sampling: &str,
    probes: &str,
    biharmonic: bool,
) -> Result<EstimatorKind, ApplyError> {
    let bad = |what: &str, v: &str, ok: &str| Err(ApplyError::Invalid(format!("unknown {what} '{v}' (expected {ok})")));
    match estimator {
        "exact" => Ok(EstimatorKind::Exact),
        "sparse" => match sampling {
            "uniform" => Ok(EstimatorKind::Sparse(Sampling::Uniform)),
            "importance" => Ok(EstimatorKind::Sparse(Sampling::Importance)),
            v => bad("sampling", v, "uniform or importance"),
        },
        "dense" => match probes {
            "auto" if biharmonic => Ok(EstimatorKind::Dense(DenseDistribution::Gaussian)),
            "auto" | "rademacher" => Ok(EstimatorKind::Dense(DenseDistribution::Rademacher)),
            "gaussian" => Ok(EstimatorKind::Dense(DenseDistribution::Gaussian)),
            v => bad("probe distribution", v, "auto, rademacher or gaussian"),
        },
        v => bad("estimator", v, "exact, sparse or dense"),
    }
}

fn run_with<T: Real>(
    net: &Mlp<T>,
    ansatz: Ansatz,
    offset: Option<&Arc<Formula>>,
    cfg: &ApplyConfig,
    x: &[f64],
    n: usize,
) -> Result<(Vec<f64>, Vec<f64>), ApplyError> {
    let d = net.architecture().input_dim;
    let op = parse(&cfg.operator).map_err(OperatorError::from)?;
    let biharmonic = op.families.iter().any(|f| matches!(f, Family::Biharmonic { .. }));
    let kind = estimator_kind(&cfg.estimator, &cfg.sampling, &cfg.probes, biharmonic)?;
    let mut est = Estimator::new(&op, d, kind, cfg.rand_batch)?;
    let plan = est.draw(&mut StdRng::seed_from_u64(cfg.seed))?;
    let chunk = chunk_points(net, &plan)?;
    if let (Some(phi), false) = (offset, plan.probes.is_empty()) {
        // u = φ + ψ·N: the plan pass adds φ's jets along every probe curve
        let multi = MultiPlan::new(vec![plan]);
        let mut pass = PlanPass::<T>::default();
        pass.set_offset(Some(phi.clone()));
        let (mut u, mut lu) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for chunk in x.chunks(chunk * d) {
            let pts: Vec<T> = chunk.iter().map(|v| T::c(*v)).collect();
            let m = pts.len() / d;
            pass.forward(net, ansatz, &multi, pts, None).map_err(ApplyError::from)?;
            u.extend((0..m).map(|p| pass.u(p)));
            lu.extend((0..m).map(|p| pass.value(p, 0)));
        }
        return Ok((u, lu));
    }
    let mut tape = Tape::default();
    let (mut u, mut lu) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for chunk in x.chunks(chunk * d) {
        let pts: Vec<T> = chunk.iter().map(|v| T::c(*v)).collect();
        let (a, b) = evaluate_plan_with(net, ansatz, &plan, &pts, &mut tape)?;
        u.extend(a.iter().map(|v| v.as_f64()));
        lu.extend(b.iter().map(|v| v.as_f64()));
    }
    Ok((u, lu))
}

/// Points per chunk so that one chunk's jets fit in half the available memory (at most
/// [`CHUNK`]); an error with the figure if not even one point fits.
fn chunk_points<T: Real>(net: &Mlp<T>, plan: &ProbePlan) -> Result<usize, ApplyError> {
    let arch = net.architecture();
    // every probe's Taylor coefficients through every layer, kept for the pass (×2 for the
    // activations' derivative series), in T
    let coefficients: u128 = plan.probes.iter().map(|p| p.order as u128 + 1u128).sum::<u128>().max(1);
    let widths: u128 = arch.hidden.iter().map(|&h| h as u128).sum::<u128>() + arch.input_dim as u128;
    let per_point = coefficients * widths * 2 * std::mem::size_of::<T>() as u128;
    let budget = crate::train::run::available_memory().map_or(8u128 << 30, |b| b as u128 / 2);
    if per_point > budget {
        return Err(ApplyError::Invalid(format!(
            "this operator's plan has {} jets ({coefficients} Taylor coefficients per point): one point needs about {:.1} GiB, more than half the {:.1} GiB available; use --estimator sparse or dense",
            plan.probes.len(),
            per_point as f64 / 1073741824.0,
            budget as f64 * 2.0 / 1073741824.0
        )));
    }
    Ok(((budget / per_point) as usize).clamp(1, CHUNK))
}

/// Loads the network and points, checks them, and returns `(u, L u)` per point.
pub fn apply(cfg: &ApplyConfig) -> Result<(Vec<f64>, Vec<f64>), ApplyError> {
    let ck = checkpoint::load::<f64>(&cfg.checkpoint)?;
    let (n, d, x) = read_points(&cfg.points)?;
    let want = ck.net.architecture().input_dim;
    if d != want {
        return Err(ApplyError::Invalid(format!(
            "{}: points have {d} coordinates but the network takes {want}",
            cfg.points.display()
        )));
    }
    // u = φ + ψ·N with the initial data φ recorded as a formula in x and t (time last)
    let offset = match (ck.metadata.get("offset"), cfg.ignore_ansatz) {
        (Some(text), false) => {
            let scope = Scope {
                dim: want.saturating_sub(1),
                time: true,
                solution: false,
            };
            let f = Formula::parse(text, scope).map_err(|e| {
                ApplyError::Invalid(format!(
                    "{}: offset '{text}' in the metadata: {e}",
                    cfg.checkpoint.display()
                ))
            })?;
            Some(Arc::new(f))
        }
        _ => None,
    };
    let ansatz = if cfg.ignore_ansatz {
        Ansatz::Identity
    } else {
        Ansatz::from_metadata(&ck.metadata)
            .map_err(|e| ApplyError::Invalid(format!("{}: {e}", cfg.checkpoint.display())))?
    };
    // `d[t]`, `d[0,t]`: the time is the last input, where the network has one
    let timed = crate::pde::custom::with_time_index(&cfg.operator, want.saturating_sub(1));
    let cfg = &if timed != cfg.operator {
        let has_time = ck.metadata.get("time").map(String::as_str) == Some("true")
            || ck.metadata.contains_key("offset")
            || matches!(
                Ansatz::from_metadata(&ck.metadata),
                Ok(Ansatz::Time | Ansatz::TimeSquared | Ansatz::TimeToGo(_))
            );
        if !has_time {
            return Err(ApplyError::Invalid(format!(
                "the operator names the time (d[t]) but {} records no time input (a checkpoint of a time-dependent problem has time = true in its metadata)",
                cfg.checkpoint.display()
            )));
        }
        ApplyConfig {
            operator: timed,
            ..cfg.clone()
        }
    } else {
        cfg.clone()
    };
    let (u, lu) = if cfg.f32 {
        run_with(&ck.net.cast::<f32>(), ansatz, offset.as_ref(), cfg, &x, n)?
    } else {
        run_with(&ck.net, ansatz, offset.as_ref(), cfg, &x, n)?
    };
    // finite points and weights give finite values unless the arithmetic overflowed: say so
    // instead of printing NaN
    if let Some(p) = (0..n).find(|&p| !(u[p].is_finite() && lu[p].is_finite()))
        && x[p * d..(p + 1) * d].iter().all(|v| v.is_finite())
    {
        return Err(ApplyError::Invalid(format!(
            "point {p}: u = {}, L u = {}: the {} arithmetic of this operator's jets overflowed{}",
            u[p],
            lu[p],
            if cfg.f32 { "f32" } else { "f64" },
            if cfg.f32 {
                "; run without --f32"
            } else {
                " (an operator of very high order)"
            }
        )));
    }
    Ok((u, lu))
}
