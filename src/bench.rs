//! Reproducible timing of the engine on the reference shapes (used by `stde bench` and
//! the criterion bench `jet_mlp`). Reports medians; no timing is asserted anywhere.

use crate::jet::{InputJets, Jet, Tangent};
use crate::nn::first_layer::input_tangent_forward;
use crate::nn::{Architecture, Mlp, Tape};
use crate::real::Real;
use crate::tensor;
use std::time::Instant;

/// One forward+backward problem: `points × dirs` one-hot `K`-jets through a tanh MLP.
#[derive(Clone, Debug)]
pub struct StepCase {
    /// Input dimension `d`.
    pub dim: usize,
    /// Points per batch.
    pub points: usize,
    /// Directions (jets) per point.
    pub dirs: usize,
    /// Hidden width.
    pub width: usize,
    /// Number of affine layers.
    pub depth: usize,
    /// Jet order `K`.
    pub order: usize,
    /// Dense Gaussian-like tangents instead of one-hot ones.
    pub dense: bool,
}

/// A prepared step: network, inputs, tape, cotangent and gradient buffers.
pub struct PreparedStep<T> {
    net: Mlp<T>,
    input: InputJets<T>,
    tape: Tape<T>,
    cotangent: Jet<T>,
    grad: Vec<T>,
}

impl<T: Real> PreparedStep<T> {
    /// Builds the network (seed 0) and deterministic inputs for `case`.
    pub fn new(case: &StepCase) -> PreparedStep<T> {
        let net = Mlp::new(Architecture::mlp(case.dim, case.width, case.depth), 0).expect("valid bench architecture");
        let rows = case.points * case.dirs;
        let x: Vec<T> = (0..case.points * case.dim)
            .map(|i| T::c(((i * 7919) % 1000) as f64 / 1000.0 - 0.5))
            .collect();
        let mut input = InputJets::new(case.order, case.dim, case.dirs, x).expect("valid bench input");
        let tangent = if case.dense {
            Tangent::Dense(
                (0..rows * case.dim)
                    .map(|i| T::c(if (i * 2654435761) % 7 < 3 { 1.0 } else { -1.0 }))
                    .collect(),
            )
        } else {
            Tangent::OneHot((0..rows).map(|r| (r * 7) % case.dim).collect())
        };
        input.set(1, tangent).expect("valid bench tangent");
        let mut tape = Tape::default();
        let cotangent = {
            let out = net.forward(&input, &mut tape).expect("forward");
            let mut c = Jet::zeros_like(out);
            c.primal.iter_mut().for_each(|v| *v = T::one());
            c.tangents.iter_mut().for_each(|v| *v = T::one());
            c
        };
        let grad = vec![T::zero(); net.num_params()];
        PreparedStep {
            net,
            input,
            tape,
            cotangent,
            grad,
        }
    }

    /// One forward and backward pass (gradient buffer reused).
    pub fn run(&mut self) {
        self.net.forward(&self.input, &mut self.tape).expect("forward");
        self.grad.iter_mut().for_each(|g| *g = T::zero());
        self.net
            .backward(&self.input, &mut self.tape, &self.cotangent, &mut self.grad, None)
            .expect("backward");
    }
}

/// Timing summary of repeated runs.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Median seconds per run.
    pub median_s: f64,
    /// Fastest run, seconds.
    pub min_s: f64,
    /// Runs measured.
    pub runs: usize,
    /// Matrix-product throughput during the runs, GFLOP/s.
    pub gemm_gflops: f64,
    /// Share of the run spent outside matrix products (0..1).
    pub outside_gemm_share: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` `warmup` times, then `runs` times, and summarises (product profile included).
pub fn time<F: FnMut()>(mut f: F, warmup: usize, runs: usize) -> Timing {
    for _ in 0..warmup {
        f();
    }
    let mut samples = Vec::with_capacity(runs);
    tensor::profile_enable(true);
    tensor::profile_reset();
    let total = Instant::now();
    for _ in 0..runs {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    let wall = total.elapsed().as_secs_f64();
    let prof = tensor::profile_read();
    tensor::profile_enable(false);
    Timing {
        min_s: samples.iter().cloned().fold(f64::INFINITY, f64::min),
        median_s: median(samples),
        runs,
        gemm_gflops: prof.flops / prof.seconds.max(1e-12) * 1e-9,
        outside_gemm_share: (1.0 - prof.seconds / wall).clamp(0.0, 1.0),
    }
}

/// Collapsed against uncollapsed propagation of one-hot 2-jets (forward + backward of a loss on
/// `Σ_d y₂`): `(uncollapsed timing, collapsed timing, uncollapsed tape bytes, collapsed tape bytes)`.
pub fn collapsed_vs_full<T: Real>(case: &StepCase, runs: usize) -> (Timing, Timing, usize, usize) {
    use crate::jet::collapsed::CollapsedJet;
    use crate::nn::CollapsedTape;
    let mut full = PreparedStep::<T>::new(&StepCase {
        order: 2,
        dense: false,
        ..case.clone()
    });
    // only the summed top coefficient carries a cotangent, as for a Laplacian residual
    full.cotangent.primal.iter_mut().for_each(|v| *v = T::zero());
    full.cotangent
        .tangents
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = if i % 2 == 1 { T::one() } else { T::zero() });
    let t_full = time(|| full.run(), 3, runs);
    let mut ctape = CollapsedTape::default();
    let out = full
        .net
        .forward_collapsed(&full.input, &mut ctape)
        .expect("collapsed forward")
        .clone();
    let mut cbar = CollapsedJet::zeros_like(&out);
    cbar.sum2.iter_mut().for_each(|v| *v = T::one());
    let mut grad = vec![T::zero(); full.net.num_params()];
    let t_coll = time(
        || {
            full.net
                .forward_collapsed(&full.input, &mut ctape)
                .expect("collapsed forward");
            grad.iter_mut().for_each(|g| *g = T::zero());
            full.net
                .backward_collapsed(&full.input, &mut ctape, &cbar, &mut grad)
                .expect("collapsed backward");
        },
        3,
        runs,
    );
    (t_full, t_coll, full.tape.bytes(), ctape.bytes())
}

/// Times the tangent part of the first layer for one-hot jets at input dimension `dim`
/// (`points × dirs` rows, width `width`): the cost should not depend on `dim`.
pub fn first_layer_one_hot<T: Real>(dim: usize, points: usize, dirs: usize, width: usize, runs: usize) -> Timing {
    let rows = points * dirs;
    let weight: Vec<T> = (0..dim * width).map(|i| T::c((i % 97) as f64 / 97.0)).collect();
    let mut input = InputJets::new(2, dim, dirs, vec![T::zero(); points * dim]).expect("valid input");
    input
        .set(1, Tangent::OneHot((0..rows).map(|r| (r * 104729) % dim).collect()))
        .expect("valid tangent");
    let mut tangents = vec![T::zero(); rows * width];
    time(|| input_tangent_forward(&input, &weight, width, &mut tangents), 3, runs)
}

/// The whole training step of a configured run, timed after warm-up (`stde bench step`).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepReport {
    /// Equation.
    pub equation: String,
    /// Dimension.
    pub dim: usize,
    /// Estimator and `R`.
    pub method: String,
    /// Randomisation batch.
    pub rand_batch: usize,
    /// Worker threads.
    pub threads: usize,
    /// Timed steps (after the warm-up).
    pub steps: usize,
    /// Median steps per second.
    pub steps_per_s: f64,
    /// 10th and 90th percentile of the step time, seconds.
    pub step_s_p10_p90: [f64; 2],
    /// Median step time, seconds.
    pub step_s_median: f64,
    /// Training time by phase over the whole run (sampling, source, network, Adam), shares.
    pub phase_shares: [f64; 4],
    /// Peak resident memory, MiB.
    pub peak_rss_mb: f64,
}

/// Runs `warmup + steps` training steps of `cfg` in a scratch folder (removed afterwards) and
/// reports the timed steps' median rate, spread, phase split and peak memory. Evaluation happens
/// once, after the last step, and is not timed.
pub fn step(cfg: &crate::train::TrainConfig, warmup: usize, steps: usize) -> Result<StepReport, String> {
    use crate::train::{RunOptions, train};
    if steps == 0 {
        return Err("bench step: --steps must be positive".into());
    }
    let mut cfg = cfg.clone();
    cfg.steps = warmup + steps;
    cfg.eval_every = cfg.steps;
    cfg.test_points = cfg.test_points.min(100);
    let dir = std::env::temp_dir().join(format!("stde-bench-step-{}", std::process::id()));
    let opts = RunOptions {
        out: dir.clone(),
        quiet: true,
        silent: true,
        overwrite: true,
        ..Default::default()
    };
    let summary = train(&cfg, &opts).map_err(|e| e.to_string());
    let _ = std::fs::remove_dir_all(&dir);
    let s = summary?;
    let mut t: Vec<f64> = s.step_times_s[warmup.min(s.step_times_s.len())..].to_vec();
    t.sort_by(f64::total_cmp);
    let q = |f: f64| t[((t.len() - 1) as f64 * f).round() as usize];
    let p = s.time_s;
    let total = (p.sample + p.source + p.network + p.update).max(1e-12);
    Ok(StepReport {
        equation: s.equation,
        dim: s.dim,
        method: s.method,
        rand_batch: s.rand_batch,
        threads: if cfg.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cfg.threads
        },
        steps: t.len(),
        steps_per_s: 1.0 / q(0.5),
        step_s_p10_p90: [q(0.1), q(0.9)],
        step_s_median: q(0.5),
        phase_shares: [p.sample / total, p.source / total, p.network / total, p.update / total],
        peak_rss_mb: s.peak_rss_mb,
    })
}
