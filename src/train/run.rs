//! The training loop: sample → jets → network → Laplacian estimate → residual → loss → gradient →
//! Adam; evaluation on a streamed test set; metrics, checkpoints, resume, interrupt.
//!
//! Determinism: every random quantity comes from a counter-based stream keyed by
//! `(seed, purpose, step, point)` ([`crate::pde::sampler::stream`]), never from a generator whose
//! state evolves across steps. A resumed run at step `k` therefore draws exactly what the
//! uninterrupted run drew; with one thread (`--threads 1`) the arithmetic order is fixed too, so the
//! losses after a resume are bit-identical.

use super::config::{TEST_BATCH, TrainConfig, test_batch};
use super::head::{self, Head};
use super::optim::{Adam, Ema, GradientFill, Schedule, gradient_norm};
use super::plot;
use super::residual::{ConditionDraw, ResidualWork, condition_part_step, point_source, predict, zero_first_weight};
use super::routes::{PartialRoutes, Route};
use super::slices::{Drawn, Slices, slice_ranges};
use crate::dist::Group;
use crate::nn::checkpoint;
use crate::nn::{Architecture, Mlp, Tape};
use crate::operator::estimator::sample_distinct;
use crate::operator::{Estimator, EstimatorKind, Operator, ProbeDirection, ProbePlan, Sampling};
use crate::pde::sampler::stream;
use crate::pde::{Condition, Domain, Evaluation, Problem, Term};
use crate::real::Real;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Stream purposes (second key of [`stream`]).
const RESIDUAL: u64 = 1;
const INDICES: u64 = 2;
const TEST: u64 = 3;
const GPINN: u64 = 4;
/// Stream purpose of the coordinates of sampled diagonal partials (formula conditions).
const DIAGONAL: u64 = 5;
/// How a run is driven.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Run folder (created if needed).
    pub out: PathBuf,
    /// Continue the run saved in `out`.
    pub resume: bool,
    /// Plain log lines instead of a progress bar.
    pub quiet: bool,
    /// Set (e.g. by Ctrl-C) to save and stop after the current step.
    pub interrupt: Arc<AtomicBool>,
    /// Stop (as if interrupted) once this many steps are done (tests).
    pub stop_after: Option<usize>,
    /// A fresh run into a folder that holds another run's files deletes them first (otherwise
    /// it refuses).
    pub overwrite: bool,
    /// With `resume`: a new total number of steps (recorded in `config.toml`).
    pub steps: Option<usize>,
    /// With `resume`: worker threads for this session.
    pub threads: Option<usize>,
    /// With `quiet`: not even the per-evaluation lines (benchmarks).
    pub silent: bool,
    /// The ranks the batches are split across (one process unless started by `mpirun`).
    pub group: Group,
}

/// The files a run writes into its folder.
pub const RUN_FILES: [&str; 5] = [
    "config.toml",
    "metrics.csv",
    "summary.json",
    "checkpoint.safetensors",
    "curves.png",
];

/// The run's outcome, written to `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Equation name.
    pub equation: String,
    /// Dimension.
    pub dim: usize,
    /// Estimator method.
    pub method: String,
    /// Randomisation batch.
    pub rand_batch: usize,
    /// Weight-sharing block size.
    pub block_size: usize,
    /// Weight of the gPINN term (0: none).
    pub gpinn_weight: f64,
    /// Steps completed.
    pub steps: usize,
    /// Run seed.
    pub seed: u64,
    /// Problem seed (the instance's coefficients).
    pub problem_seed: u64,
    /// Relative L2 error of the final model (null for a point evaluation): the answer.
    pub final_rel_l2: f64,
    /// Best relative L2 error over evaluations.
    pub best_rel_l2: f64,
    /// Relative L1 error at the last evaluation.
    pub final_rel_l1: f64,
    /// Best relative L1 error (for a point evaluation: of `u` at the point, against
    /// `reference_value`; null when no reference exists).
    pub best_rel_l1: f64,
    /// Reference value of `u` at the evaluation point (parabolic problems), if one is published.
    pub reference_value: Option<f64>,
    /// `u` at the evaluation point at the last evaluation (parabolic problems).
    pub final_value: Option<f64>,
    /// Final error over the best evaluated (L1 for a point evaluation, else L2); a warning is
    /// printed above 10.
    pub final_over_best: Option<f64>,
    /// Decay of the parameters' moving average that was evaluated (0: the last iterate).
    pub ema: f64,
    /// The output head's level `c` (`N = c + s·N_raw`, [`crate::train::head`]).
    pub output_level: f64,
    /// The output head's scale `s`.
    pub output_scale: f64,
    /// Training iterations per second (evaluation excluded).
    pub it_per_s: f64,
    /// Wall time of the whole run (all sessions), seconds.
    pub wall_s: f64,
    /// Peak resident memory of this process, MiB.
    pub peak_rss_mb: f64,
    /// Whether the run stopped before its last step (interrupt).
    pub interrupted: bool,
    /// Processes (MPI ranks) this session ran on; figures above are rank 0's.
    pub processes: usize,
    /// Where this session's training time went, in seconds.
    pub time_s: PhaseTimes,
    /// Each step's duration this session, seconds (evaluation excluded; not written to
    /// `summary.json`).
    #[serde(skip)]
    pub step_times_s: Vec<f64>,
}

/// Training time by phase (this session; evaluation excluded), seconds.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct PhaseTimes {
    /// Drawing the residual points.
    pub sample: f64,
    /// The exact source terms `f(x)` (and `ψ`).
    pub source: f64,
    /// Jets through the network, residual, reverse pass.
    pub network: f64,
    /// Adam.
    pub update: f64,
    /// Summing gradients across ranks (0 for one process).
    pub reduce: f64,
}

impl PhaseTimes {
    /// `sample 18 %, source 45 %, network 35 %, update 2 %`.
    pub fn shares(&self) -> String {
        let total = (self.sample + self.source + self.network + self.update + self.reduce).max(1e-12);
        let pct = |v: f64| 100.0 * v / total;
        let mut s = format!(
            "sample {:.0} %, source {:.0} %, network {:.0} %, update {:.0} %",
            pct(self.sample),
            pct(self.source),
            pct(self.network),
            pct(self.update)
        );
        if self.reduce > 0.0 {
            s += &format!(", reduce {:.0} %", pct(self.reduce));
        }
        s
    }
}

/// Training errors: each is one line for the CLI (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Bad configuration or input.
    #[error("{0}")]
    Config(String),
    /// File system problem.
    #[error("{0}")]
    Io(String),
    /// The loss became NaN or infinite.
    #[error(
        "loss became {value} at step {step}; stopped (the last good checkpoint, if one was saved, is kept in {dir})"
    )]
    Diverged {
        /// Step at which it happened.
        step: usize,
        /// The value.
        value: f64,
        /// Run folder.
        dir: String,
    },
    /// Engine error.
    #[error(transparent)]
    Engine(#[from] crate::nn::NnError),
    /// Another rank failed and reported it (this rank has nothing to add; its message is empty).
    #[error("")]
    Peer,
}

/// Where the ranks must agree before going on: every rank learns whether any failed. Rank 0
/// keeps its own error, or reports how many others failed; another rank that failed prints its
/// own message when rank 0 did not fail; every rank but 0 then stops with [`TrainError::Peer`].
fn agree<X>(group: Group, result: Result<X, TrainError>) -> Result<X, TrainError> {
    if group.size() == 1 {
        return result;
    }
    let (failures, root_failed) = group.agree(result.is_err());
    match result {
        Ok(x) if failures == 0 => Ok(x),
        Err(e) if group.is_root() => Err(e),
        Ok(_) if group.is_root() => Err(TrainError::Config(format!(
            "{failures} of {} ranks failed (their messages are above); stopped",
            group.size()
        ))),
        Err(e) => {
            if !root_failed {
                eprintln!("error: rank {} of {}: {e}", group.rank(), group.size());
            }
            Err(TrainError::Peer)
        }
        Ok(_) => Err(TrainError::Peer),
    }
}

/// A rank-local failure after the ranks started stepping together: with several ranks, the
/// others would wait for this one forever, so it prints its message and ends the whole job.
fn local<X>(group: Group, result: Result<X, TrainError>) -> Result<X, TrainError> {
    match result {
        Err(e) if group.size() > 1 => {
            eprintln!("error: rank {} of {}: {e}; ending the job", group.rank(), group.size());
            group.abort(2)
        }
        r => r,
    }
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> TrainError {
    TrainError::Io(format!("{}: {e}", path.display()))
}

/// Peak resident set size of this process in MiB (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// `MemAvailable` of `/proc/meminfo` in bytes (`None` where it cannot be read).
pub fn available_memory() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("MemAvailable:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The estimators of each condition, as configured: one for a residual condition, one per
/// residual for a formula condition, none for a target condition.
pub fn estimators(cfg: &TrainConfig, problem: &Problem) -> Result<Vec<Vec<Estimator>>, String> {
    let kind = match cfg.method.as_str() {
        "exact" => EstimatorKind::Exact,
        "dense" => EstimatorKind::Dense(crate::operator::DenseDistribution::Rademacher),
        _ => EstimatorKind::Sparse(Sampling::Uniform),
    };
    let build = |operator: &Operator, what: &str| {
        Estimator::new(operator, problem.input_dim(), kind, cfg.rand_batch).map_err(|e| {
            format!(
                "--method {} cannot estimate the {what} of {}: {e}",
                cfg.method, problem.name
            )
        })
    };
    problem
        .conditions
        .iter()
        .map(|c| match &c.term {
            Term::Residual { operator, gpinn, .. } => {
                if gpinn.is_some() && cfg.method != "sparse" {
                    return Err(format!(
                        "the gPINN term pairs sampled coordinates: it needs --method sparse, not {}",
                        cfg.method
                    ));
                }
                Ok(vec![build(operator, &format!("{} residual", c.name))?])
            }
            Term::Formula { residuals } => {
                if cfg.unbiased {
                    return Err(format!(
                        "--unbiased is not available for {}: its residuals are nonlinear in the derivatives",
                        problem.name
                    ));
                }
                // a residual without a family (only explicit terms) is always evaluated exactly
                residuals
                    .iter()
                    .map(|r| {
                        if r.operator.families.is_empty() {
                            Estimator::new(&r.operator, problem.input_dim(), EstimatorKind::Exact, 1)
                                .map_err(|e| format!("residual {} of {}: {e}", r.name, problem.name))
                        } else {
                            build(&r.operator, &format!("residual {}", r.name))
                        }
                    })
                    .collect()
            }
            Term::Target { .. } => Ok(Vec::new()),
        })
        .collect()
}

/// Whether condition `c` samples the diagonal partials of its nonlinear parts
/// ([`crate::train::routes`]): a formula condition, a sampling method, more such partials than `R`.
pub fn samples_diagonal(cfg: &TrainConfig, cond: &Condition) -> bool {
    match &cond.term {
        Term::Formula { residuals } => {
            cfg.method != "exact" && PartialRoutes::new(residuals, Some(cfg.rand_batch), false).sampled()
        }
        _ => false,
    }
}

/// What condition `c`'s estimator draws at step `k`: one plan (two for the unbiased loss) and,
/// with the gPINN term, the pairs `(i_k, j_k)` of the first plan's coordinates with an independent
/// uniform subset.
pub(super) fn draw_condition(
    cfg: &TrainConfig,
    cond: &Condition,
    estimators: &mut [Estimator],
    c: usize,
    k: usize,
    sample_diagonal: bool,
    draw: &mut ConditionDraw,
) -> Result<(), TrainError> {
    let purpose = INDICES ^ ((c as u64) << 4);
    draw.pairs.clear();
    draw.diagonal.clear();
    if sample_diagonal {
        let mut rng = stream(cfg.seed, DIAGONAL ^ ((c as u64) << 4), k as u64);
        draw.diagonal = sample_distinct(&mut rng, cfg.dim as u64, cfg.rand_batch)
            .into_iter()
            .map(|i| i as usize)
            .collect();
    }
    // one plan per residual (formula terms) or per draw of L (two for the unbiased loss), each
    // from its own stream; the previous step's plans lend their buffers
    let (n, per_residual) = match cond.term {
        Term::Formula { .. } => (estimators.len(), true),
        _ => (if cfg.unbiased { 2 } else { 1 }, false),
    };
    draw.plans.resize_with(n, ProbePlan::default);
    for (g, plan) in draw.plans.iter_mut().enumerate() {
        let (est, mut rng) = if per_residual {
            (
                &mut estimators[g],
                stream(cfg.seed, purpose ^ ((g as u64) << 32), (k as u64) << 1),
            )
        } else {
            (
                &mut estimators[0],
                stream(cfg.seed, purpose, ((k as u64) << 1) | g as u64),
            )
        };
        est.draw_into(&mut rng, plan)
            .map_err(|e| TrainError::Config(e.to_string()))?;
    }
    if let Term::Residual { gpinn: Some(_), .. } = cond.term {
        let is: Vec<usize> = draw.plans[0]
            .probes
            .iter()
            .filter_map(|p| match p.slots.as_slice() {
                [(1, ProbeDirection::Coord(i))] => Some(*i),
                _ => None,
            })
            .collect();
        let mut rng = stream(cfg.seed, GPINN ^ ((c as u64) << 4), k as u64);
        let js = sample_distinct(&mut rng, cfg.dim as u64, is.len());
        draw.pairs = is.into_iter().zip(js.into_iter().map(|j| j as usize)).collect();
    }
    Ok(())
}

/// The model a run leaves behind: the moving average where there is one, else the last iterate.
fn model<'a, T>(net: &'a Mlp<T>, ema: &'a Option<Ema<T>>) -> &'a Mlp<T> {
    ema.as_ref().map_or(net, |e| &e.net)
}

/// One evaluation: relative L2 and L1 errors (L2 is NaN for a point evaluation) and, for a point
/// evaluation, the value of `u` there.
#[derive(Clone, Copy, Debug)]
struct Scores {
    rel_l2: f64,
    rel_l1: f64,
    value: Option<f64>,
}

impl State {
    /// Records an evaluation's scores (last and best); the metrics' `rel_l2` and `rel_l1`
    /// columns (empty where not finite) and the progress text.
    fn record(&mut self, scores: &Scores) -> (String, String, String) {
        let (l2, l1) = (scores.rel_l2, scores.rel_l1);
        self.last_value = scores.value;
        self.last_l2 = l2;
        self.last_l1 = l1;
        self.best_l2 = self.best_l2.min(l2);
        self.best_l1 = self.best_l1.min(l1);
        let column = |v: f64| if v.is_finite() { format!("{v:e}") } else { String::new() };
        let score = match scores.value {
            Some(v) => format!("u(0) {v:.6}  rel_l1 {l1:.4e}  best {:.4e}", self.best_l1),
            None => format!("rel_l2 {l2:.4e}  best {:.4e}", self.best_l2),
        };
        (column(l2), column(l1), score)
    }
}

/// Scores the network as the problem says: relative L2 and L1 errors over the streamed test set
/// (targets cached after the first call; each rank scores its share of the points and the sums
/// are added across ranks), or the relative L1 error of `u` at a point.
fn evaluate<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    cfg: &TrainConfig,
    group: Group,
    targets: &mut Vec<f64>,
    tape: &mut Tape<T>,
) -> Result<Scores, TrainError> {
    let (domain, equation) = match &problem.evaluation {
        Evaluation::PointValue { at, reference } => {
            let x: Vec<T> = at.iter().map(|&v| T::c(v)).collect();
            let u = predict(net, problem.ansatz, problem.offset.as_deref(), &x, tape)?[0];
            let rel_l1 = reference.map_or(f64::NAN, |r| (u - r).abs() / r.abs());
            return Ok(Scores {
                rel_l2: f64::NAN,
                rel_l1,
                value: Some(u),
            });
        }
        Evaluation::ExactSolution { domain, solution } => (domain, solution),
    };
    let (d, din) = (problem.dim, problem.input_dim());
    let fresh = targets.is_empty();
    let (mut e2, mut n2, mut e1, mut n1) = (0.0, 0.0, 0.0, 0.0);
    let per_batch = test_batch(din);
    let mut buf = vec![T::zero(); per_batch * din];
    let mine = group.share(cfg.test_points);
    let mut start = mine.start;
    while start < mine.end {
        let m = per_batch.min(mine.end - start);
        let pts = &mut buf[..m * din];
        // the same points in every evaluation: the stream is keyed by the batch of TEST_BATCH
        // points, and a smaller batch reads the matching part of it
        fill_test_points(domain, d, cfg.seed, start, m, din, pts);
        if fresh {
            let exact: Vec<f64> = pts
                .par_chunks(din)
                .map(|x| {
                    let x64: Vec<f64> = x.iter().map(|v| v.as_f64()).collect();
                    equation.exact_value(&x64).unwrap_or(0.0)
                })
                .collect();
            targets.extend(exact);
        }
        let u = predict(net, problem.ansatz, problem.offset.as_deref(), pts, tape)?;
        for (i, ui) in u.iter().enumerate() {
            let t = targets[start - mine.start + i];
            e2 += (ui - t).powi(2);
            n2 += t * t;
            e1 += (ui - t).abs();
            n1 += t.abs();
        }
        start += m;
    }
    let mut sums = [e2, n2, e1, n1];
    group.sum(&mut sums);
    let [e2, n2, e1, n1] = sums;
    Ok(Scores {
        rel_l2: (e2 / n2.max(1e-300)).sqrt(),
        rel_l1: e1 / n1.max(1e-300),
        value: None,
    })
}

/// Test points `start .. start + m` into `pts`: point `g` is point `g mod 200` of test batch
/// `g / 200`, whatever the evaluation batch size.
fn fill_test_points<T: Real>(domain: &Domain, d: usize, seed: u64, start: usize, m: usize, din: usize, pts: &mut [T]) {
    let mut done = 0;
    while done < m {
        let g = start + done;
        let (b, p) = ((g / TEST_BATCH) as u64, g % TEST_BATCH);
        let n = (TEST_BATCH - p).min(m - done);
        domain.fill_from(
            d,
            seed ^ 0x7E57,
            TEST ^ (b << 8),
            p,
            &mut pts[done * din..(done + n) * din],
        );
        done += n;
    }
}

/// Saved state besides the network.
struct State {
    step: usize,
    best_l2: f64,
    best_l1: f64,
    last_l2: f64,
    last_l1: f64,
    elapsed: f64,
    train_time: f64,
    last_value: Option<f64>,
    /// The output head (`None` until fitted at the start of a fresh run).
    head: Option<Head>,
}

impl State {
    /// A run at step 0.
    fn fresh() -> State {
        State {
            step: 0,
            best_l2: f64::INFINITY,
            best_l1: f64::INFINITY,
            last_l2: f64::NAN,
            last_l1: f64::NAN,
            elapsed: 0.0,
            train_time: 0.0,
            last_value: None,
            head: None,
        }
    }
}

/// Saves the run: the model it leaves behind (`model`: the moving average, or the last iterate)
/// as the checkpoint's network, and for resuming the optimiser state and, when they differ from
/// the model, the trained parameters (`train.params`).
#[allow(clippy::too_many_arguments)]
fn save_checkpoint<T: Real>(
    dir: &Path,
    model: &Mlp<T>,
    train_params: Option<&[T]>,
    adam: &Adam<T>,
    st: &State,
    cfg: &TrainConfig,
    problem: &Problem,
) -> Result<(), TrainError> {
    let mut meta = HashMap::new();
    meta.insert("step".to_string(), st.step.to_string());
    meta.insert("best_rel_l2".to_string(), format!("{:e}", st.best_l2));
    meta.insert("best_rel_l1".to_string(), format!("{:e}", st.best_l1));
    meta.insert("last_rel_l2".to_string(), format!("{:e}", st.last_l2));
    meta.insert("last_rel_l1".to_string(), format!("{:e}", st.last_l1));
    meta.insert("elapsed_s".to_string(), format!("{:e}", st.elapsed));
    meta.insert("train_s".to_string(), format!("{:e}", st.train_time));
    if let Some(v) = st.last_value {
        meta.insert("last_value".to_string(), format!("{v:e}"));
    }
    let head = st.head.unwrap_or(Head::NONE);
    meta.insert("output_level".to_string(), format!("{:e}", head.level));
    meta.insert("output_scale".to_string(), format!("{:e}", head.scale));
    meta.insert("equation".to_string(), cfg.equation.clone());
    // the input's last coordinate is the time (read by `stde apply` for `d[t]`)
    meta.insert("time".to_string(), problem.time.to_string());
    if let Some(a) = problem.ansatz.metadata() {
        meta.insert("ansatz".to_string(), a);
    }
    if let Some(phi) = &problem.offset {
        meta.insert("offset".to_string(), phi.text().to_string());
    }
    // Adam's moments in the training precision, streamed to the file
    let mut extra = vec![
        ("adam.m".to_string(), checkpoint::Extra::Native(&adam.m[..])),
        ("adam.v".to_string(), checkpoint::Extra::Native(&adam.v[..])),
    ];
    if let Some(p) = train_params {
        extra.push(("train.params".to_string(), checkpoint::Extra::Native(p)));
    }
    let path = dir.join("checkpoint.safetensors");
    checkpoint::save_with(&path, model, &meta, &extra).map_err(|e| TrainError::Io(e.to_string()))
}

/// Memory of the jets a formula residual pushes per step beyond what
/// [`TrainConfig::memory_estimate`] counts: the operator's terms and the jets of the partials its
/// nonlinear parts read, by their routes ([`PartialRoutes`]), through every layer, kept for the
/// reverse pass.
fn formula_jet_bytes(cfg: &TrainConfig) -> u64 {
    let problem = cfg.problem();
    let elem: u128 = if cfg.precision == "f64" { 8 } else { 4 };
    // the jets' features through the layers (their input tangents are one-hot or sparse: the
    // first layer's input is not stored per jet)
    let widths = (cfg.width * cfg.depth) as u128;
    let din = problem.input_dim() as u128;
    let mut total: u128 = 0;
    for c in &problem.conditions {
        if let Term::Formula { residuals } = &c.term {
            let mut coefficients: u128 = 0;
            for r in residuals {
                let terms = if r.operator.families.is_empty() {
                    r.operator.exact_terms(problem.input_dim())
                } else {
                    cfg.rand_batch as u128 + r.operator.terms.len() as u128
                };
                coefficients += terms * (r.operator.order() as u128 + 1);
            }
            // the nonlinear parts' partials by their routes: jets, R sampled 2-jets, the sweep's
            // two 1-jet passes
            let sample = (cfg.method != "exact").then_some(cfg.rand_batch);
            let routes = PartialRoutes::new(residuals, sample, false);
            for (idx, route) in routes.partials.iter().zip(&routes.routes) {
                if *route == Route::Jets {
                    coefficients += idx.len() as u128 + 1;
                }
            }
            if routes.sampled() {
                coefficients += 3 * cfg.rand_batch as u128;
            }
            if routes.sweep() {
                coefficients += 4;
                // the sweep's dense per-point vectors: the tangent λ and ∇N in T, ∇u, λ and ∇ψ
                // in f64, and its discarded parameter gradient
                total += c.points as u128 * din * (2 * elem + 24);
                total += (din * cfg.width as u128 + (cfg.width * cfg.width * cfg.depth) as u128) * elem;
            }
            // values, the tape's derivative series and the cotangents
            total += c.points as u128 * coefficients * widths * elem * 3;
        }
    }
    total.min(u64::MAX as u128) as u64
}

/// Writes `bytes` to `path` atomically: a temporary file beside it, synced, then renamed over it
/// (a crash leaves the old file or the new one, never a mix).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
    f.sync_all().map_err(|e| io_err(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
    // the rename itself is durable once the directory is synced (best effort where unsupported)
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Runs (or resumes) training as configured; returns the summary (also written to the folder).
///
/// With several ranks ([`RunOptions::group`]), rank 0 alone reads and writes the run folder and
/// prints; every rank must be given the same configuration (checked), and each step's batch is
/// split across the ranks.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<Summary, TrainError> {
    let group = opts.group;
    let result = train_in_group(cfg, opts);
    if group.is_root() {
        result
    } else {
        // everything another rank must say was printed where it happened (`agree`, `local`)
        result.map_err(|_| TrainError::Peer)
    }
}

fn train_in_group(cfg: &TrainConfig, opts: &RunOptions) -> Result<Summary, TrainError> {
    let group = opts.group;
    let cfg = if opts.resume {
        let path = opts.out.join("config.toml");
        let text = if group.is_root() {
            std::fs::read_to_string(&path).map_err(|e| io_err(&path, format!("cannot resume: {e}")))
        } else {
            Ok(String::new())
        };
        let mut text = agree(group, text)?.into_bytes();
        group.broadcast_bytes(&mut text);
        let text = String::from_utf8_lossy(&text);
        let mut saved =
            TrainConfig::from_toml(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))?;
        if let Some(t) = opts.threads {
            saved.threads = t;
        }
        if let Some(steps) = opts.steps {
            // recorded in config.toml once the checkpoint's step is known to be within it; the
            // decay keeps its horizon (an extension continues at the rate it reached)
            if steps != saved.steps && saved.decay_steps.is_none() {
                saved.decay_steps = Some(saved.steps);
            }
            saved.steps = steps;
        }
        saved
    } else {
        let clean = if group.is_root() {
            clean_folder(&opts.out, opts.overwrite)
        } else {
            Ok(())
        };
        agree(group, clean)?;
        cfg.clone()
    };
    same_config_everywhere(group, &cfg)?;
    let ready = (|| {
        cfg.validate().map_err(TrainError::Config)?;
        if group.size() > 1 && cfg.compat_batch_max_target {
            return Err(TrainError::Config(
                "--compat-batch-max-target needs the whole terminal batch in one process; run it without mpirun".into(),
            ));
        }
        if group.size() > 1 {
            for c in &cfg.problem().conditions {
                if c.points < group.size() {
                    return Err(TrainError::Config(format!(
                        "the {} condition draws {} points per step, fewer than the {} ranks to split them over",
                        c.name,
                        c.points,
                        group.size()
                    )));
                }
            }
        }
        // the plain estimate first: building the problem to count its formula jets allocates O(d)
        let mut need = cfg.memory_estimate();
        let avail = available_memory();
        if avail.is_none_or(|a| need <= a * 9 / 10) {
            need = need.saturating_add(formula_jet_bytes(&cfg));
        }
        if let Some(avail) = avail
            && need > avail * 9 / 10
        {
            return Err(TrainError::Config(format!(
                "this run needs about {:.1} GiB but only {:.1} GiB is available; reduce --dim, --batch, --rand-batch or --width, or use --block-size",
                need as f64 / 1073741824.0,
                avail as f64 / 1073741824.0
            )));
        }
        let threads = if cfg.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.threads
        };
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| TrainError::Config(e.to_string()))
    })();
    let pool = agree(group, ready)?;
    pool.install(|| {
        if cfg.precision == "f64" {
            train_with::<f64>(&cfg, opts)
        } else {
            train_with::<f32>(&cfg, opts)
        }
    })
}

/// A fresh run's folder: refuses one that holds another run's files, or deletes them with
/// `overwrite`.
fn clean_folder(out: &Path, overwrite: bool) -> Result<(), TrainError> {
    let present: Vec<&str> = RUN_FILES.iter().copied().filter(|f| out.join(f).exists()).collect();
    if present.is_empty() {
        return Ok(());
    }
    if !overwrite {
        return Err(TrainError::Config(format!(
            "{} already holds a run ({}); continue it with --resume {0}, or start clean with --overwrite",
            out.display(),
            present.join(", ")
        )));
    }
    for f in present {
        let path = out.join(f);
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
    }
    Ok(())
}

/// Refuses a job whose ranks were given different configurations (threads may differ).
fn same_config_everywhere(group: Group, cfg: &TrainConfig) -> Result<(), TrainError> {
    if group.size() == 1 {
        return Ok(());
    }
    use std::hash::{Hash, Hasher};
    let mut c = cfg.clone();
    c.threads = 0;
    let mut h = std::hash::DefaultHasher::new();
    c.to_toml().hash(&mut h);
    let all = group.gather(h.finish());
    let differ: Vec<String> = (1..all.len())
        .filter(|&r| all[r] != all[0])
        .map(|r| r.to_string())
        .collect();
    if differ.is_empty() {
        return Ok(());
    }
    if !group.is_root() {
        return Err(TrainError::Peer);
    }
    Err(TrainError::Config(format!(
        "rank(s) {} of {} were started with a configuration other than rank 0's; every rank must get the same arguments",
        differ.join(", "),
        group.size()
    )))
}

/// Rank 0's start of a run: the folder, then the checkpoint, optimiser state and metrics of a
/// resumed run (metrics trimmed to the checkpoint), or a new network, `config.toml` and metrics
/// header.
fn open_run<T: Real>(cfg: &TrainConfig, opts: &RunOptions, arch: &Architecture) -> Result<Opened<T>, TrainError> {
    let dir = &opts.out;
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let metrics_path = dir.join("metrics.csv");
    Ok(if opts.resume {
        let ck = checkpoint::load::<T>(&dir.join("checkpoint.safetensors"))
            .map_err(|e| TrainError::Io(format!("cannot resume: {e}")))?;
        if ck.net.architecture() != arch {
            return Err(TrainError::Config(
                "checkpoint architecture does not match config.toml".into(),
            ));
        }
        let get = |k: &str| ck.metadata.get(k).and_then(|v| v.parse::<f64>().ok());
        let step = ck
            .metadata
            .get("step")
            .and_then(|v| v.parse::<usize>().ok())
            .ok_or_else(|| TrainError::Config("checkpoint lacks its step".into()))?;
        if step > cfg.steps {
            return Err(TrainError::Config(format!(
                "the run is at step {step}, past --steps {}; give at least {step}",
                cfg.steps
            )));
        }
        if opts.steps.is_some() {
            write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        }
        let (m, v) = (ck.extra.get("adam.m").cloned(), ck.extra.get("adam.v").cloned());
        let (Some(m), Some(v)) = (m, v) else {
            return Err(TrainError::Config("checkpoint lacks the optimiser state".into()));
        };
        if m.len() != ck.net.num_params() || v.len() != m.len() {
            return Err(TrainError::Config(format!(
                "checkpoint's optimiser state has {} and {} entries for {} parameters",
                m.len(),
                v.len(),
                ck.net.num_params()
            )));
        }
        let st = State {
            step,
            best_l2: get("best_rel_l2").unwrap_or(f64::INFINITY),
            best_l1: get("best_rel_l1").unwrap_or(f64::INFINITY),
            last_l2: get("last_rel_l2").unwrap_or(f64::NAN),
            last_l1: get("last_rel_l1").unwrap_or(f64::NAN),
            elapsed: get("elapsed_s").unwrap_or(0.0),
            train_time: get("train_s").unwrap_or(0.0),
            last_value: get("last_value"),
            // a checkpoint without a head (older runs) has none
            head: Some(Head {
                level: get("output_level").unwrap_or(0.0),
                scale: get("output_scale").unwrap_or(1.0),
            }),
        };
        // keep the metrics written up to the checkpoint (replaced atomically)
        let text = std::fs::read_to_string(&metrics_path).unwrap_or_default();
        let kept: Vec<&str> = text.lines().take(1 + step).collect();
        write_atomic(&metrics_path, (kept.join("\n") + "\n").as_bytes())?;
        // moments are saved as f64 whatever the precision
        let (m, v) = (m.into_iter().map(T::c).collect(), v.into_iter().map(T::c).collect());
        // the checkpoint's network is the model; the trained parameters, where they differ
        let (net, average) = match ck.extra.get("train.params") {
            Some(p) if p.len() == ck.net.num_params() => {
                let mut net = ck.net.clone();
                net.params_mut().iter_mut().zip(p).for_each(|(x, &v)| *x = T::c(v));
                (net, Some(ck.net))
            }
            Some(_) => {
                return Err(TrainError::Config(
                    "checkpoint's train.params has the wrong length".into(),
                ));
            }
            None => (ck.net, None),
        };
        (net, Adam { m, v, step }, st, average)
    } else {
        let net = Mlp::<T>::new(arch.clone(), cfg.seed)?;
        let n = net.num_params();
        write_atomic(&dir.join("config.toml"), cfg.to_toml().as_bytes())?;
        write_atomic(&metrics_path, b"step,loss,lr,rel_l2,rel_l1,elapsed_s,grad_norm\n")?;
        (net, Adam::new(n), State::fresh(), None)
    })
}

/// What a run starts from: the trained network, the optimiser, the run state and the saved
/// moving average (resumed runs that kept one).
type Opened<T> = (Mlp<T>, Adam<T>, State, Option<Mlp<T>>);

/// What a run trains from: the trained network, the optimiser, the run state and the moving
/// average (the model it leaves behind), if any.
type Started<T> = (Mlp<T>, Adam<T>, State, Option<Ema<T>>);

/// Gives every rank rank 0's parameters, optimiser state and run state (as `f64`, exact for
/// `f32` and `f64` parameters).
fn share_state<T: Real>(
    group: Group,
    net: &mut Mlp<T>,
    adam: &mut Adam<T>,
    st: &mut State,
    average: Option<&mut Mlp<T>>,
) {
    for net in std::iter::once(net).chain(average) {
        let mut params: Vec<f64> = net.params_mut().iter().map(|p| p.as_f64()).collect();
        group.broadcast(&mut params);
        for (p, v) in net.params_mut().iter_mut().zip(&params) {
            *p = T::c(*v);
        }
    }
    for moments in [&mut adam.m, &mut adam.v] {
        let mut wide: Vec<f64> = moments.iter().map(|x| x.as_f64()).collect();
        group.broadcast(&mut wide);
        for (x, w) in moments.iter_mut().zip(&wide) {
            *x = T::c(*w);
        }
    }
    let mut s = [
        st.step as f64,
        st.best_l2,
        st.best_l1,
        st.last_l2,
        st.last_l1,
        st.elapsed,
        st.train_time,
        st.last_value.unwrap_or(f64::NAN),
        f64::from(u8::from(st.last_value.is_some())),
        st.head.map_or(0.0, |h| h.level),
        st.head.map_or(1.0, |h| h.scale),
        f64::from(u8::from(st.head.is_some())),
    ];
    group.broadcast(&mut s);
    *st = State {
        step: s[0] as usize,
        best_l2: s[1],
        best_l1: s[2],
        last_l2: s[3],
        last_l1: s[4],
        elapsed: s[5],
        train_time: s[6],
        last_value: (s[8] > 0.0).then_some(s[7]),
        head: (s[11] > 0.0).then_some(Head {
            level: s[9],
            scale: s[10],
        }),
    };
    adam.step = st.step;
}

/// The state a run starts from, the same on every rank: rank 0 opens the run (its folder,
/// checkpoint and metrics) and the others receive its state; the model the run leaves behind
/// (the parameters' moving average, resumed or from here); on a fresh run the output head,
/// fitted on rank 0 and applied everywhere.
fn start<T: Real>(
    cfg: &TrainConfig,
    opts: &RunOptions,
    problem: &Problem,
    estimators: &mut [Vec<Estimator>],
    sample_diagonal: &[bool],
) -> Result<Started<T>, TrainError> {
    let group = opts.group;
    let arch = cfg.architecture(problem.input_dim());
    // rank 0 opens the run (its folder, checkpoint and metrics); the others start from the seed
    // and then receive rank 0's state
    let opened = if group.is_root() {
        open_run::<T>(cfg, opts, &arch)
    } else {
        Mlp::<T>::new(arch.clone(), cfg.seed)
            .map_err(TrainError::from)
            .map(|net| {
                let n = net.num_params();
                (net, Adam::new(n), State::fresh(), None)
            })
    };
    let (mut net, mut adam, mut st, average) = agree(group, opened)?;
    // the model the run leaves behind: the parameters' moving average (resumed, or from here)
    let mut ema = (cfg.ema > 0.0).then(|| Ema {
        net: average.unwrap_or_else(|| net.clone()),
        decay: cfg.ema,
        every: Ema::<T>::every_for(net.num_params()),
    });
    if group.size() > 1 {
        share_state(group, &mut net, &mut adam, &mut st, ema.as_mut().map(|e| &mut e.net));
    }
    if st.head.is_none() {
        let fitted = match cfg.output_scaling.as_str() {
            "auto" if group.is_root() => head::fit(cfg, problem, estimators, sample_diagonal, &mut net),
            _ => Ok(Head::NONE),
        };
        let mut h = agree(group, fitted).map(|h| [h.level, h.scale])?;
        group.broadcast(&mut h);
        let fitted = Head {
            level: h[0],
            scale: h[1],
        };
        fitted.apply(&mut net);
        if let Some(e) = ema.as_mut() {
            e.net = net.clone();
        }
        if !opts.quiet && group.is_root() && fitted != Head::NONE {
            eprintln!(
                "output head: level {:.4e}, scale {:.4e} (--output-scaling off: none)",
                fitted.level, fitted.scale
            );
        }
        st.head = Some(fitted);
    }
    Ok((net, adam, st, ema))
}

fn train_with<T: Real>(cfg: &TrainConfig, opts: &RunOptions) -> Result<Summary, TrainError> {
    let group = opts.group;
    let dir = &opts.out;
    let problem = cfg.problem();
    let mut estimators = estimators(cfg, &problem).map_err(TrainError::Config)?;
    let sample_diagonal: Vec<bool> = problem.conditions.iter().map(|c| samples_diagonal(cfg, c)).collect();
    let din = problem.input_dim();
    let metrics_path = dir.join("metrics.csv");
    let (mut net, mut adam, mut st, mut ema) = start(cfg, opts, &problem, &mut estimators, &sample_diagonal)?;
    let head_step = st.head.unwrap_or(Head::NONE).step(&net);
    let mut head_before: Vec<T> = Vec::new();
    let mut metrics = if group.is_root() {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&metrics_path)
            .map_err(|e| io_err(&metrics_path, e));
        Some(local(group, f)?)
    } else {
        None
    };
    let schedule = Schedule::parse(&cfg.schedule).expect("validated schedule");
    let mut work = ResidualWork::default();
    work.collapsed = cfg.collapsed;
    let mut eval_tape = Tape::default();
    let mut targets = Vec::new();
    // this rank's part of each condition's batch, and its share of the batch's mean
    let parts: Vec<std::ops::Range<usize>> = problem.conditions.iter().map(|c| group.share(c.points)).collect();
    let mut points: Vec<Vec<T>> = parts.iter().map(|r| vec![T::zero(); r.len() * din]).collect();
    let mut sliced = Slices::default();
    let quiet = opts.quiet || !group.is_root();
    let silent = opts.silent || !group.is_root();
    if !quiet {
        announce(cfg, &problem);
    }
    let mut grad = vec![T::zero(); net.num_params()];
    let bar = progress_bar(cfg.steps, st.step, quiet);
    let session = Instant::now();
    let (elapsed0, train0) = (st.elapsed, st.train_time);
    let mut session_train = 0.0;
    let mut interrupted = false;
    let start_step = st.step;
    let (mut sample_s, mut update_s, mut reduce_s) = (0.0, 0.0, 0.0);
    let mut reduced: Vec<f64> = Vec::new();
    let mut step_times_s = Vec::with_capacity(cfg.steps.saturating_sub(start_step).min(1 << 16));
    // each condition's draw, rebuilt in place at every step, and the gradient norm's partial sums
    let mut norm_parts = Vec::new();
    let mut draws: Vec<ConditionDraw> = problem.conditions.iter().map(|_| ConditionDraw::default()).collect();
    // Where the first layer's weight gradient has one contribution (one condition, one rank)
    // and no clipping needs the norm before the update, it is not zeroed, written and read
    // back: the step leaves it to the update, which makes it a cache-sized block at a time
    // (`Adam::update_streamed`; the same bits). At large d that block is most of the gradient.
    let first_weight = net.first_weight_range();
    let stream_first =
        cfg.clip_grad_norm <= 0.0 && group.size() == 1 && problem.conditions.len() == 1 && first_weight.start == 0;
    for k in start_step..cfg.steps {
        let t0 = Instant::now();
        let zeroed = if stream_first { first_weight.end } else { 0 };
        grad[zeroed..].par_chunks_mut(1 << 16).for_each(|g| g.fill(T::zero()));
        let mut loss = 0.0;
        for (c, cond) in problem.conditions.iter().enumerate() {
            // the operator's draw first (its own streams): its jets per point size the slices
            // that run side by side where that pays (small networks)
            let draw = &mut draws[c];
            if estimators[c].is_empty() {
                draw.plans.clear();
                draw.pairs.clear();
            } else {
                local(
                    group,
                    draw_condition(cfg, cond, &mut estimators[c], c, k, sample_diagonal[c], draw),
                )?;
            }
            let draw = &*draw;
            let rows = draw.plans.iter().map(|p| p.probes.len()).sum::<usize>() + 2;
            let cut = slice_ranges(parts[c].len(), din, net.num_params(), rows);
            // condition 0 keeps the stream key the elliptic trainer always used
            let batch = (RESIDUAL ^ ((c as u64) << 4)) ^ ((k as u64) << 8);
            let at = (cfg.seed, batch, parts[c].start);
            let sliced_drawn = draw_points(
                &net,
                &problem,
                cond,
                at,
                &mut points[c],
                cut.len() > 1,
                &mut work,
                &mut sample_s,
            );
            let part = if cut.len() > 1 {
                if stream_first {
                    zero_first_weight(&net, &mut grad);
                }
                let parts = (&points[c][..], &cut[..], cond.points);
                sliced.step(&net, &problem, cond, parts, sliced_drawn, draw, &mut work, &mut grad)
            } else {
                let share = parts[c].len() as f64 / cond.points as f64;
                work.defer_first_weight = stream_first;
                condition_part_step(&net, &problem, cond, &mut points[c], draw, &mut work, &mut grad, share)
            };
            loss += local(group, part.map_err(TrainError::from))?;
        }
        // every rank's gradient and loss summed (in rank order), and whether any rank was
        // interrupted, so that all take the same step and stop at the same one
        let mut interrupt = opts.interrupt.load(Ordering::Relaxed);
        if group.size() > 1 {
            let t_reduce = Instant::now();
            (loss, interrupt) = sum_over_ranks(group, &mut grad, loss, interrupt, &mut reduced);
            reduce_s += t_reduce.elapsed().as_secs_f64();
        }
        let diverged = |value: f64| TrainError::Diverged {
            step: k + 1,
            value,
            dir: dir.display().to_string(),
        };
        if !loss.is_finite() {
            bar.abandon();
            return Err(diverged(loss));
        }
        let lr = schedule.lr(cfg.lr, k, cfg.decay_steps.unwrap_or(cfg.steps), cfg.exp_decay);
        let t_update = Instant::now();
        if head_step.active() {
            head_step.raw_gradient(&mut grad);
            head_before.clear();
            head_before.extend_from_slice(&net.params()[head_step.start..]);
        }
        let deferred = match stream_first {
            true => work.deferred_first_weight(&points[0], din),
            false => None,
        };
        // the global gradient norm (logged): a non-finite gradient stops the run
        let first_fill = deferred.map(|first| move |range, dst: &mut [T]| first.entries_into(range, dst));
        let streamed = first_fill
            .as_ref()
            .map(|f| (first_weight.end, f as GradientFill<'_, T>));
        let clip = cfg.clip_grad_norm;
        let Some(grad_norm) = adam_step(
            &mut adam,
            net.params_mut(),
            &mut grad,
            lr,
            clip,
            streamed,
            &mut norm_parts,
        ) else {
            bar.abandon();
            return Err(diverged(loss));
        };
        if head_step.active() {
            head_step.scale_step(net.params_mut(), &head_before);
        }
        if let Some(e) = ema.as_mut() {
            e.update(net.params(), k + 1);
        }
        update_s += t_update.elapsed().as_secs_f64();
        let step_s = t0.elapsed().as_secs_f64();
        session_train += step_s;
        step_times_s.push(step_s);
        st.step = k + 1;
        st.elapsed = elapsed0 + session.elapsed().as_secs_f64();
        st.train_time = train0 + session_train;
        let stop = interrupt || opts.stop_after == Some(st.step);
        let eval_now = st.step % cfg.eval_every == 0 || st.step == cfg.steps;
        let (mut l2s, mut l1s) = (String::new(), String::new());
        if eval_now {
            let scores = local(
                group,
                evaluate(model(&net, &ema), &problem, cfg, group, &mut targets, &mut eval_tape),
            )?;
            let score;
            (l2s, l1s, score) = st.record(&scores);
            if quiet && !silent {
                // a closed stdout (e.g. `| head`) must not end the run: progress lines are optional
                let _ = writeln!(
                    std::io::stdout(),
                    "step {:>7}  loss {loss:.4e}  {score}  {:.1} it/s",
                    st.step,
                    (st.step - start_step) as f64 / session_train
                );
            }
            bar.set_message(format!("loss {loss:.3e} {score}"));
        } else if st.step % 20 == 0 && !bar.is_hidden() {
            bar.set_message(format!("loss {loss:.3e}"));
        }
        if let Some(metrics) = metrics.as_mut() {
            let written = writeln!(
                metrics,
                "{},{loss:e},{lr:e},{l2s},{l1s},{:.3},{grad_norm:e}",
                st.step, st.elapsed
            )
            .and_then(|_| if eval_now || stop { metrics.flush() } else { Ok(()) })
            .map_err(|e| io_err(&metrics_path, e));
            local(group, written)?;
            if eval_now || stop {
                let train_params = ema.as_ref().map(|_| net.params());
                let saved = save_checkpoint(dir, model(&net, &ema), train_params, &adam, &st, cfg, &problem);
                local(group, saved)?;
            }
        }
        bar.set_position(st.step as u64);
        if stop && st.step < cfg.steps {
            interrupted = true;
            break;
        }
    }
    bar.finish_and_clear();
    let session = Session {
        interrupted,
        start_step,
        times: PhaseTimes {
            sample: sample_s,
            source: work.source_s,
            network: work.network_s,
            update: update_s,
            reduce: reduce_s,
        },
        step_times_s,
    };
    summarise(cfg, opts, &problem, &st, session, silent)
}

/// Draws this rank's points of condition `cond` into `points` from the stream `at = (seed,
/// batch key, first point)`, with each point's source and, for a weight-shared first layer,
/// its primal block sums computed where the point is drawn (still in cache). The sources go to
/// `work`, or are returned for the slices when the batch is `cut`; the sampling time is added
/// to `sample_s`, the source and block-sum time to `work` (summed over threads ÷ threads).
#[allow(clippy::too_many_arguments)]
fn draw_points<T: Real>(
    net: &Mlp<T>,
    problem: &Problem,
    cond: &Condition,
    (seed, batch, first): (u64, u64, usize),
    points: &mut [T],
    cut: bool,
    work: &mut ResidualWork<T>,
    sample_s: &mut f64,
) -> Option<Drawn<T>> {
    let t_sample = Instant::now();
    let Some(source) = point_source::<T>(problem, cond) else {
        cond.domain.fill_from(problem.dim, seed, batch, first, points);
        *sample_s += t_sample.elapsed().as_secs_f64();
        return None;
    };
    let (source_ns, sums_ns) = (AtomicU64::new(0), AtomicU64::new(0));
    let drawn = cond
        .domain
        .fill_map(problem.dim, seed, batch, first, points, |x, pending| {
            let t = Instant::now();
            // the block sums of each stretch of the point as the source (which finishes the point
            // chunk by chunk) hands it on, while still in cache
            let (mut pre, mut sums) = (Vec::new(), std::time::Duration::ZERO);
            let mut visit = |prefix: &[T]| {
                let t_sums = Instant::now();
                if net.block_pre_activation_prefix(prefix, &mut pre) {
                    sums += t_sums.elapsed();
                }
            };
            let v = source(x, pending, &mut visit);
            let sums = sums.as_nanos() as u64;
            source_ns.fetch_add((t.elapsed().as_nanos() as u64).saturating_sub(sums), Ordering::Relaxed);
            sums_ns.fetch_add(sums, Ordering::Relaxed);
            (v, pre)
        });
    let per_thread = 1e-9 / rayon::current_num_threads() as f64;
    let (source_s, sums_s) = (
        source_ns.into_inner() as f64 * per_thread,
        sums_ns.into_inner() as f64 * per_thread,
    );
    let (sources, pre): (Vec<(f64, f64)>, Vec<Vec<T>>) = drawn.into_iter().unzip();
    work.source_s += source_s;
    work.network_s += sums_s;
    *sample_s += t_sample.elapsed().as_secs_f64() - source_s - sums_s;
    if cut {
        return Some(Drawn { sources, pre });
    }
    let block_sums = net.primal_block_sums(pre.concat());
    work.set_drawn(sources, block_sums);
    None
}

/// Every rank's gradient (into `grad`) and loss summed in rank order, and whether any rank was
/// interrupted, through one f64 reduction (`buffer` reused).
fn sum_over_ranks<T: Real>(
    group: Group,
    grad: &mut [T],
    loss: f64,
    interrupt: bool,
    buffer: &mut Vec<f64>,
) -> (f64, bool) {
    buffer.clear();
    buffer.extend(grad.iter().map(|g| g.as_f64()));
    buffer.push(loss);
    buffer.push(f64::from(u8::from(interrupt)));
    group.sum(buffer);
    for (g, r) in grad.iter_mut().zip(buffer.iter()) {
        *g = T::c(*r);
    }
    let n = grad.len();
    (buffer[n], buffer[n + 1] > 0.0)
}

/// Adam's step on `grad` at rate `lr`, clipped to `clip` when that is set, or fused with the
/// making of the first layer's weight gradient (`streamed`: the range it fills and how); the
/// global gradient norm before clipping, `None` for a non-finite gradient (the streamed update
/// has then happened: the run must stop before any checkpoint saves the parameters).
fn adam_step<T: Real>(
    adam: &mut Adam<T>,
    params: &mut [T],
    grad: &mut [T],
    lr: f64,
    clip: f64,
    streamed: Option<(usize, GradientFill<'_, T>)>,
    norm_parts: &mut Vec<f64>,
) -> Option<f64> {
    if let Some(streamed) = streamed {
        let norm = adam.update_streamed(params, grad, lr, streamed, norm_parts);
        return norm.is_finite().then_some(norm);
    }
    let norm = gradient_norm(grad, norm_parts);
    if !norm.is_finite() && grad.iter().any(|g| !g.as_f64().is_finite()) {
        return None;
    }
    if clip > 0.0 && norm > clip {
        let s = T::c(clip / norm);
        grad.iter_mut().for_each(|g| *g *= s);
    }
    adam.update(params, grad, lr);
    Some(norm)
}

/// What the run prints before its first step: the missing reference value, the partials' routes.
fn announce(cfg: &TrainConfig, problem: &Problem) {
    if let Evaluation::PointValue { reference: None, .. } = problem.evaluation {
        eprintln!(
            "note: no reference value of u(0, 0) exists for {} at d = {} (published: d = 10, 100, 1000, 10000); the value is reported without an error",
            problem.name, problem.dim
        );
    }
    for line in super::routes::describe(problem, (cfg.method != "exact").then_some(cfg.rand_batch)) {
        eprintln!("partials of {line}");
    }
}

/// The progress bar of a run of `steps` at step `at` (hidden when quiet).
fn progress_bar(steps: usize, at: usize, quiet: bool) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let b = indicatif::ProgressBar::new(steps as u64);
    b.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} [{elapsed_precise}<{eta_precise}] {per_sec} {msg}",
        )
        .expect("valid template"),
    );
    b.set_position(at as u64);
    b
}

/// What one process's part of a run did (for [`summarise`]).
struct Session {
    interrupted: bool,
    /// The step it started from (its resume point).
    start_step: usize,
    times: PhaseTimes,
    step_times_s: Vec<f64>,
}

/// The run's summary after the loop: divergence after the best evaluation reported, the
/// summary and `curves.png` written (rank 0); a resumed run with no step left keeps the one of
/// the session that finished it.
fn summarise(
    cfg: &TrainConfig,
    opts: &RunOptions,
    problem: &Problem,
    st: &State,
    session: Session,
    silent: bool,
) -> Result<Summary, TrainError> {
    let (group, dir) = (opts.group, &opts.out);
    let metrics_path = dir.join("metrics.csv");
    let Session {
        interrupted,
        start_step,
        times,
        step_times_s,
    } = session;
    // a final model far worse than the best evaluated one is reported, not hidden
    let (last, best) = match problem.evaluation {
        Evaluation::PointValue { .. } => (st.last_l1, st.best_l1),
        Evaluation::ExactSolution { .. } => (st.last_l2, st.best_l2),
    };
    let final_over_best = last / best;
    if final_over_best > 10.0 && !silent {
        eprintln!(
            "warning: the final model's error {last:.3e} is {final_over_best:.0}× the best evaluated ({best:.3e}): the run diverged after its best evaluation (try a lower --lr, or --schedule linear)"
        );
    }
    // a resumed run with no step left keeps the summary of the session that finished it
    if start_step == cfg.steps
        && group.is_root()
        && let Some(done) = std::fs::read_to_string(dir.join("summary.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Summary>(&t).ok())
            .filter(|s| s.steps == cfg.steps)
    {
        return Ok(done);
    }
    let head = st.head.unwrap_or(Head::NONE);
    let summary = Summary {
        equation: cfg.equation.clone(),
        dim: problem.dim,
        method: cfg.method.clone(),
        rand_batch: cfg.rand_batch,
        block_size: cfg.block_size,
        gpinn_weight: cfg.gpinn_weight,
        steps: st.step,
        seed: cfg.seed,
        problem_seed: cfg.problem_seed,
        final_rel_l2: st.last_l2,
        best_rel_l2: st.best_l2,
        final_rel_l1: st.last_l1,
        best_rel_l1: st.best_l1,
        reference_value: match &problem.evaluation {
            Evaluation::PointValue { reference, .. } => *reference,
            Evaluation::ExactSolution { .. } => None,
        },
        final_value: st.last_value,
        final_over_best: if final_over_best.is_finite() {
            Some(final_over_best)
        } else {
            None
        },
        ema: cfg.ema,
        output_level: head.level,
        output_scale: head.scale,
        it_per_s: st.step as f64 / st.train_time.max(1e-12),
        wall_s: st.elapsed,
        peak_rss_mb: peak_rss_mb(),
        interrupted,
        processes: group.size(),
        time_s: times,
        step_times_s,
    };
    if group.is_root() {
        let json = serde_json::to_string_pretty(&summary).expect("summary serialises");
        write_atomic(&dir.join("summary.json"), json.as_bytes())?;
        if let Err(e) = plot::curves(&metrics_path, &dir.join("curves.png")) {
            eprintln!("warning: could not draw curves.png: {e}");
        }
    }
    Ok(summary)
}
