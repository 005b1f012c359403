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
    cbar.sum2_mut().fill(T::one());
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
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
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
    /// The work one step must do (counted over the run, evaluation excluded).
    pub work: StepWork,
    /// This machine's measured rates for that work (same threads).
    pub rates: MachineRates,
    /// The step's lower bound from them, and the measured step's fraction of it.
    pub bound: StepBound,
    /// Time per step inside matrix products (measured over the run), seconds.
    pub product_time_s: f64,
    /// The products by shape, per step (calls and seconds divided by the steps run), the
    /// longest first: where the products' time goes.
    #[serde(default)]
    pub product_shapes: Vec<tensor::ProductShape>,
}

/// The work of one training step: what [`StepBound`] divides by the machine's rates.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepWork {
    /// Floating-point operations in matrix products (`2·m·n·k` each), counted.
    pub gemm_flops: f64,
    /// Bytes the step must move at least: Adam's streams (parameters and moments — stored in
    /// `T` — read and written), the gradient of the parameters outside the first layer written
    /// and read (the first layer's need never be stored: `Adam::update_streamed`), the points
    /// written by the sampler and read by the first layer, the first layer's weights read by the
    /// forward pass. A model, not a count.
    pub bytes: f64,
    /// Sine–cosine pairs of the sources, counted.
    pub sin_cos: f64,
    /// Of those, small-argument pairs (short polynomials), counted apart.
    #[serde(default)]
    pub sin_cos_small: f64,
    /// Of those, pairs of arguments near 1 (no range reduction), counted apart.
    #[serde(default)]
    pub sin_cos_near_one: f64,
    /// Gaussian coordinates drawn, counted.
    pub normals: f64,
    /// Floating-point operations of the sources' term arithmetic around their sines and cosines
    /// (hand-counted per term, `pde::ball::TWO_BODY_TERM_FLOPS`), counted: FLOPs the step must do
    /// outside the products, at the product rate in the bound (since the eleventh pass of issue
    /// #10; counted as nothing before).
    #[serde(default)]
    pub source_flops: f64,
}

impl StepWork {
    /// The byte model of [`StepWork::bytes`]: `params` parameters of `elem` bytes, `point_values`
    /// coordinates drawn per step, `first_layer_weights` weights in the first layer.
    pub fn bytes_model(params: usize, elem: usize, point_values: usize, first_layer_weights: usize) -> f64 {
        let (p, e, first) = (params as f64, elem as f64, first_layer_weights as f64);
        // p, m, v read + written (the trainer's moments are stored in the training precision,
        // `Adam<T>`); the other layers' gradient written + read
        let adam = p * 6.0 * e + (p - first).max(0.0) * 2.0 * e;
        adam + 2.0 * point_values as f64 * e + first * e
    }
}

/// Rates measured on this machine with the step's threads.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MachineRates {
    /// Matrix products of the step's shapes (`M × 128 × 128`, best over M), FLOP/s.
    pub gemm_flop_s: f64,
    /// Memory bandwidth of a parallel in-place add `a += b` over two arrays of 128 MiB (bytes
    /// read + written per second; far beyond the caches). In place, as Adam's streams are: a
    /// copy into a separate buffer also reads the destination before writing it, which a
    /// count of bytes read + written does not see (it measured 1.5× less on the EPYC).
    pub bytes_s: f64,
    /// Sine–cosine pairs per second (`pde::vecmath::sin_cos_slice`, or `sin_cos_slice_f32` for f32 steps; parallel).
    pub sin_cos_s: f64,
    /// Small-argument sine–cosine pairs per second (`sin_cos_slice_f32` on `|x| ≤ 0.1`; f32 steps only).
    #[serde(default)]
    pub sin_cos_small_s: f64,
    /// Sine–cosine pairs of arguments near 1 per second (`sin_cos_near_one_slice_f32` on
    /// `[0.74, 1.26]`; f32 steps only).
    #[serde(default)]
    pub sin_cos_near_one_s: f64,
    /// Gaussian coordinates per second (the ball sampler, parallel).
    pub normals_s: f64,
    /// The cores' f32 fused multiply-add peak, FLOP/s: independent FMA chains held in the widest
    /// vector registers, on every thread (what no product can exceed; not part of the bound).
    #[serde(default)]
    pub fma_peak_flop_s: f64,
    /// The same chains on one thread, FLOP/s: a measurement whose threads did not all get a
    /// core shows as a peak well below `threads ×` this ([`MachineRates::all_cores`]).
    #[serde(default)]
    pub fma_peak_one_thread_flop_s: f64,
}

impl MachineRates {
    /// Each rate the higher of two measurements (a neighbour on a shared machine only ever
    /// slows a run, so the faster measurement is the nearer to the machine's own rate).
    pub fn best(&self, other: &MachineRates) -> MachineRates {
        MachineRates {
            gemm_flop_s: self.gemm_flop_s.max(other.gemm_flop_s),
            bytes_s: self.bytes_s.max(other.bytes_s),
            sin_cos_s: self.sin_cos_s.max(other.sin_cos_s),
            sin_cos_small_s: self.sin_cos_small_s.max(other.sin_cos_small_s),
            sin_cos_near_one_s: self.sin_cos_near_one_s.max(other.sin_cos_near_one_s),
            normals_s: self.normals_s.max(other.normals_s),
            fma_peak_flop_s: self.fma_peak_flop_s.max(other.fma_peak_flop_s),
            fma_peak_one_thread_flop_s: self.fma_peak_one_thread_flop_s.max(other.fma_peak_one_thread_flop_s),
        }
    }

    /// Whether the measurement had a core for each of its `threads` (the FMA peak at least
    /// 3/4 of `threads ×` the one-thread peak; true when that was not measured).
    pub fn all_cores(&self, threads: usize) -> bool {
        self.fma_peak_one_thread_flop_s <= 0.0
            || self.fma_peak_flop_s >= 0.75 * threads as f64 * self.fma_peak_one_thread_flop_s
    }
}

/// `2 · N · rounds` FLOP of fused multiply-adds in `N` independent chains, nothing read from
/// memory. `N` fills most of the vector registers (more chains than the FMA units' latency ×
/// ports, fewer than the registers, so none spill): 256 for AVX-512 (16 of 32 registers), 96 for
/// AVX2 (12 of 16).
#[inline(always)]
fn fma_chains<const N: usize>(rounds: usize, a: f32, b: f32) -> f32 {
    let mut acc = [0.0f32; N];
    for (j, v) in acc.iter_mut().enumerate() {
        *v = j as f32 * 1e-3;
    }
    for _ in 0..rounds {
        for v in acc.iter_mut() {
            *v = v.mul_add(a, b);
        }
    }
    acc.iter().sum()
}

/// [`fma_chains`] in the widest registers this CPU has; returns the FLOP done.
fn fma_chains_widest(rounds: usize, a: f32, b: f32) -> f64 {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
    fn avx512(rounds: usize, a: f32, b: f32) -> f32 {
        fma_chains::<256>(rounds, a, b)
    }
    #[cfg(target_arch = "x86_64")]
    if crate::lanes::has_avx512() {
        // SAFETY: the CPU has the features `avx512` is compiled for (checked above)
        std::hint::black_box(unsafe { avx512(rounds, a, b) });
        return (2 * 256 * rounds) as f64;
    }
    std::hint::black_box(fma_chains::<96>(rounds, a, b));
    (2 * 96 * rounds) as f64
}

/// A step's lower bound: each kind of work at the machine's rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepBound {
    /// Products at the measured product rate, seconds.
    pub product_s: f64,
    /// Bytes at the measured bandwidth, seconds.
    pub memory_s: f64,
    /// Sine–cosine pairs and Gaussians at their measured rates, seconds.
    pub transcendental_s: f64,
    /// The sources' term arithmetic ([`StepWork::source_flops`]) at the product rate, seconds.
    #[serde(default)]
    pub source_arith_s: f64,
    /// The bound: the larger of compute (products, the sources' arithmetic and transcendentals,
    /// which run on the same vector units, so their times add) and memory (which can hide under
    /// compute), seconds.
    pub bound_s: f64,
    /// The largest of the three (as if even products and transcendentals overlapped), seconds.
    #[serde(default)]
    pub overlap_all_s: f64,
    /// Their sum (no overlap at all), seconds.
    pub serial_s: f64,
    /// `bound_s` over the measured median step: 1 is the machine's limit.
    pub fraction: f64,
    /// The same fraction of a bound without the sources' arithmetic (as the bound was counted
    /// before the eleventh pass of issue #10), for comparison with earlier figures.
    #[serde(default)]
    pub fraction_without_source_arith: f64,
}

impl StepBound {
    /// The bound of `work` at `rates`, against a measured median step of `median_s` seconds.
    pub fn of(work: &StepWork, rates: &MachineRates, median_s: f64) -> StepBound {
        let per = |n: f64, rate: f64| if n > 0.0 { n / rate.max(1e-300) } else { 0.0 };
        let product_s = per(work.gemm_flops, rates.gemm_flop_s);
        let memory_s = per(work.bytes, rates.bytes_s);
        let transcendental_s = per(work.sin_cos, rates.sin_cos_s)
            + per(work.sin_cos_small, rates.sin_cos_small_s)
            + per(work.sin_cos_near_one, rates.sin_cos_near_one_s)
            + per(work.normals, rates.normals_s);
        let source_arith_s = per(work.source_flops, rates.gemm_flop_s);
        let flops_s = product_s + source_arith_s;
        let bound_s = (flops_s + transcendental_s).max(memory_s);
        StepBound {
            product_s,
            memory_s,
            transcendental_s,
            source_arith_s,
            bound_s,
            overlap_all_s: flops_s.max(memory_s).max(transcendental_s),
            serial_s: flops_s + memory_s + transcendental_s,
            fraction: bound_s / median_s.max(1e-300),
            fraction_without_source_arith: (product_s + transcendental_s).max(memory_s) / median_s.max(1e-300),
        }
    }
}

/// Rounds of the rate measurements; each rate's best run counts.
const RATE_RUNS: usize = 21;

/// Measures [`MachineRates`] in the current thread pool (several seconds); `f32_lanes` times
/// the sine–cosine kernel of f32 training (else the f64 one). Each rate is its best run over
/// `RATE_RUNS` (21) rounds (two timed runs a round after one that warms the caches), the kinds
/// taken in turn round after round, so that each kind's runs spread over the whole
/// measurement: a neighbour on a shared machine only ever slows a run, so the fastest
/// is the machine's own rate (medians moved the bound by ±10–20 % between sweeps on a VM, and
/// best-of runs bunched in half a second could all fall in one busy spell).
pub fn measure_rates(f32_lanes: bool) -> MachineRates {
    use rayon::prelude::*;
    use std::hint::black_box;
    // each kind: one run, returning the work it did (the rate is work over its time)
    type Kind<'a> = Box<dyn FnMut() -> f64 + 'a>;
    // products: the step's shapes, rows × 128 × 128 in f32
    let (k, n) = (128usize, 128usize);
    let product = |m: usize| -> Kind<'static> {
        let (a, b, mut c) = (vec![0.5f32; m * k], vec![0.25f32; k * n], vec![0.0f32; m * n]);
        Box::new(move || {
            tensor::matmul(m, k, n, &a, &b, &mut c, tensor::Write::Overwrite);
            2.0 * (m * k * n) as f64
        })
    };
    // bandwidth: a parallel in-place add over 2 × 128 MiB (beyond any cache), bytes read + written
    let len = 32 << 20;
    let (src, mut dst) = (vec![1.0f32; len], vec![0.0f32; len]);
    let add: Kind = Box::new(move || {
        dst.par_chunks_mut(1 << 16)
            .zip(src.par_chunks(1 << 16))
            .for_each(|(d, s)| d.iter_mut().zip(s).for_each(|(d, s)| *d += *s));
        3.0 * (len * 4) as f64
    });
    // sine–cosine pairs, in the kernel of the step's precision (f32 lanes for f32 training), on
    // the step's chunk size in cache: 128 passes over the same 2¹⁴ arguments, in parallel
    const CHUNK: usize = 1 << 14;
    const PASSES: usize = 128;
    // arguments in [−900, 900]: inside the f32 kernel's fast range, as the sources' are
    let x: Vec<f64> = (0..CHUNK)
        .map(|i| (i as f64) * (1800.0 / CHUNK as f64) - 900.0)
        .collect();
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    // the same on small arguments (|x| ≤ 0.1: coordinates of points at large d; f32 only)
    let small: Vec<f32> = x32.iter().map(|&v| v * (0.1 / 900.0)).collect();
    // the same near 1 (the two-body source's z at small coordinates; f32 only)
    let near_one: Vec<f32> = small.iter().map(|&v| 1.0 + 2.6 * v).collect();
    let pairs = |x32: Vec<f32>, lanes32: bool| -> Kind<'_> {
        let x = &x;
        Box::new(move || {
            (0..PASSES).into_par_iter().for_each_init(
                || {
                    (
                        vec![0.0; CHUNK],
                        vec![0.0; CHUNK],
                        vec![0.0f32; CHUNK],
                        vec![0.0f32; CHUNK],
                    )
                },
                |(s, c, s32, c32), _| {
                    if lanes32 {
                        crate::pde::vecmath::sin_cos_slice_f32_widest(&x32, s32, c32)
                    } else {
                        crate::pde::vecmath::sin_cos_slice(x, s, c)
                    }
                },
            );
            (PASSES * CHUNK) as f64
        })
    };
    // Gaussians: the ball sampler's points (d normals and one uniform each)
    let d = 1 << 14;
    let sampler = crate::pde::BallSampler {
        kind: crate::pde::SamplerKind::RadiusUniform,
        dim: d,
    };
    let mut pts = vec![0.0f32; 128 * d];
    let normals: Kind = Box::new(move || {
        sampler.fill_from(0, 0, 0, &mut pts);
        (128 * d) as f64
    });
    // the FMA peak: the same register-bound chains on every thread
    const ROUNDS: usize = 1 << 20;
    let threads = rayon::current_num_threads();
    let fma: Kind = Box::new(move || {
        (0..threads)
            .into_par_iter()
            .map(|_| fma_chains_widest(ROUNDS, black_box(0.999), black_box(1e-3)))
            .sum()
    });
    let fma_one: Kind = Box::new(|| fma_chains_widest(ROUNDS, black_box(0.999), black_box(1e-3)));
    let mut kinds: Vec<Kind> = vec![
        product(2048),
        product(8192),
        add,
        pairs(x32.clone(), f32_lanes),
        normals,
        fma,
        fma_one,
    ];
    if f32_lanes {
        kinds.push(pairs(small, true));
        kinds.push(Box::new(move || {
            (0..PASSES).into_par_iter().for_each_init(
                || (vec![0.0f32; CHUNK], vec![0.0f32; CHUNK]),
                |(s, c), _| crate::pde::vecmath::sin_cos_near_one_slice_f32_widest(&near_one, s, c),
            );
            (PASSES * CHUNK) as f64
        }));
    }
    let mut best = vec![0.0f64; kinds.len()];
    for _ in 0..RATE_RUNS {
        for (kind, best) in kinds.iter_mut().zip(&mut best) {
            // back to back within a round, the first run warming the caches (the step's
            // products find their operands in cache too)
            for run in 0..3 {
                let t = Instant::now();
                let work = kind();
                if run > 0 {
                    *best = best.max(work / t.elapsed().as_secs_f64().max(1e-12));
                }
            }
        }
    }
    MachineRates {
        gemm_flop_s: best[0].max(best[1]),
        bytes_s: best[2],
        sin_cos_s: best[3],
        sin_cos_small_s: if f32_lanes { best[7] } else { 0.0 },
        sin_cos_near_one_s: if f32_lanes { best[8] } else { 0.0 },
        normals_s: best[4],
        fma_peak_flop_s: best[5],
        fma_peak_one_thread_flop_s: best[6],
    }
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
    // one step more than run, so that the run stops (as if interrupted) before any evaluation:
    // the counted work is the training steps' alone
    let run = warmup + steps;
    cfg.steps = run + 1;
    cfg.eval_every = cfg.steps;
    cfg.test_points = cfg.test_points.min(100);
    // the output head is fitted once before the first step (a step's cost with or without it
    // is the same): left out, so that the counted work is the steps' alone
    cfg.output_scaling = "off".into();
    let dir = std::env::temp_dir().join(format!("stde-bench-step-{}", std::process::id()));
    let opts = RunOptions {
        out: dir.clone(),
        quiet: true,
        silent: true,
        overwrite: true,
        stop_after: Some(run),
        ..Default::default()
    };
    let threads = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.threads
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| e.to_string())?;
    // a shared machine can take a core away, or slow one, for seconds: then every run of a rate
    // is slow and the bound too low. So the rates are measured before and after the timed steps
    // (each the better of the two), and again (up to three times) while a core is missing; the
    // report says so if it never had them all
    let measure = || pool.install(|| measure_rates(cfg.precision != "f64"));
    // the measurement's 256 MiB must not count in the step's peak RSS: before the steps only
    // where the peak mark can be reset after it (Linux)
    let before = reset_peak_rss().then(|| {
        let r = measure();
        reset_peak_rss();
        r
    });
    tensor::profile_enable(true);
    tensor::profile_reset();
    let summary = train(&cfg, &opts).map_err(|e| e.to_string());
    let counted = tensor::profile_read();
    let shapes = tensor::profile_shapes();
    tensor::profile_enable(false);
    let _ = std::fs::remove_dir_all(&dir);
    let s = summary?;
    let after = measure();
    let mut rates = before.map_or(after, |b| b.best(&after));
    for _ in 0..2 {
        if rates.all_cores(threads) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
        rates = rates.best(&measure());
    }
    let problem = cfg.problem();
    let din = problem.input_dim();
    let point_values: usize = problem.conditions.iter().map(|c| c.points * din).sum();
    let elem = if cfg.precision == "f64" { 8 } else { 4 };
    let first_in = if cfg.block_size > 1 { din / cfg.block_size } else { din };
    let params = crate::nn::Mlp::<f32>::zeros(cfg.architecture(din))
        .map_err(|e| e.to_string())?
        .num_params();
    let work = StepWork {
        gemm_flops: counted.flops / run as f64,
        bytes: StepWork::bytes_model(params, elem, point_values, first_in * cfg.width),
        sin_cos: counted.sin_cos / run as f64,
        sin_cos_small: counted.sin_cos_small / run as f64,
        sin_cos_near_one: counted.sin_cos_near_one / run as f64,
        normals: counted.normals / run as f64,
        source_flops: counted.source_flops / run as f64,
    };
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
        threads,
        steps: t.len(),
        steps_per_s: 1.0 / q(0.5),
        step_s_p10_p90: [q(0.1), q(0.9)],
        step_s_median: q(0.5),
        phase_shares: [p.sample / total, p.source / total, p.network / total, p.update / total],
        peak_rss_mb: s.peak_rss_mb,
        work,
        rates,
        bound: StepBound::of(&work, &rates, q(0.5)),
        product_time_s: counted.seconds / run as f64,
        product_shapes: shapes
            .into_iter()
            .map(|s| tensor::ProductShape {
                calls: s.calls / run as f64,
                seconds: s.seconds / run as f64,
                ..s
            })
            .collect(),
    })
}

/// Resets this process's peak resident set (`VmHWM`, which [`crate::train::run::peak_rss_mb`] reads)
/// to the current one (`/proc/self/clear_refs`, Linux); false where that cannot be done.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// One row of `stde bench step --sweep`: the dimension and its options (the issue #10 table:
/// two-body Allen–Cahn, sparse R = 16, 100 points, 4 × 128 tanh, f32).
pub const SWEEP: [(usize, usize, usize, usize); 5] = [
    // (d, block size, timed steps, warm-up steps)
    (100, 1, 200, 20),
    (1_000, 1, 200, 20),
    (10_000, 1, 100, 10),
    (100_000, 1, 30, 3),
    (1_000_000, 100, 10, 2),
];

/// The markdown table of sweep rows (between the markers in `docs/PERFORMANCE.md`).
pub fn sweep_table(rows: &[StepReport], cpu: &str) -> String {
    let mut t = format!(
        "Machine: {cpu}, {} thread(s). `stde bench step --sweep` (two-body Allen–Cahn, sparse R = 16, \
         100 points, 4 × 128 tanh, f32; d = 10⁶ with B = 100). Bound = the largest of products at the \
         measured product rate plus the sources' term arithmetic (hand-counted FLOPs) at the same rate \
         plus the sine–cosine pairs and Gaussians at their measured rates (all on the same vector \
         units), or the modelled bytes at the measured bandwidth, whichever is \
         larger; rates are the best of 21 runs, measured before and after the timed steps. \"% of max\": against the largest of the three \
         alone.\n\n",
        rows.first().map_or(0, |r| r.threads)
    );
    t += "| d | steps/s (median) | ms/step | p10–p90 ms | in products ms | product GFLOP/s in step | product peak GFLOP/s | FMA peak GFLOP/s | bound ms (products / source arith. / memory / transc.) | % of bound | % of bound without source arith. | % of max | peak RSS MiB |\n";
    t += "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
    for r in rows {
        let d = if r.dim >= 1_000_000 {
            format!("{}M, B = 100", r.dim / 1_000_000)
        } else if r.dim >= 1000 {
            format!("{}K", r.dim / 1000)
        } else {
            r.dim.to_string()
        };
        // rates measured while a core was missing give no bound of this machine
        let pct = |v: f64| match r.rates.all_cores(r.threads) {
            true => format!("{:.0} %", 100.0 * v),
            false => "— (a core was missing during the rates)".to_string(),
        };
        t += &format!(
            "| {d} | {:.2} | {:.2} | {:.2}–{:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {:.2} ({:.2} / {:.2} / {:.2} / {:.2}) | {} | {} | {} | {:.0} |\n",
            r.steps_per_s,
            r.step_s_median * 1e3,
            r.step_s_p10_p90[0] * 1e3,
            r.step_s_p10_p90[1] * 1e3,
            r.product_time_s * 1e3,
            r.work.gemm_flops / r.product_time_s.max(1e-12) * 1e-9,
            r.rates.gemm_flop_s * 1e-9,
            r.rates.fma_peak_flop_s * 1e-9,
            r.bound.bound_s * 1e3,
            r.bound.product_s * 1e3,
            r.bound.source_arith_s * 1e3,
            r.bound.memory_s * 1e3,
            r.bound.transcendental_s * 1e3,
            pct(r.bound.fraction),
            pct(r.bound.fraction_without_source_arith),
            pct(r.bound.overlap_all_s / r.step_s_median.max(1e-300)),
            r.peak_rss_mb
        );
    }
    t
}

/// Replaces the text between `<!-- sweep:start -->` and `<!-- sweep:end -->` in `doc` by `table`.
pub fn replace_sweep(doc: &str, table: &str) -> Option<String> {
    const START: &str = "<!-- sweep:start -->";
    const END: &str = "<!-- sweep:end -->";
    let i = doc.find(START)? + START.len();
    let j = i + doc[i..].find(END)?;
    Some(format!("{}\n{}{}", &doc[..i], table, &doc[j..]))
}

/// The CPU's model name (`/proc/cpuinfo`), or "unknown CPU".
pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|v| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound arithmetic on a case counted by hand.
    #[test]
    fn the_step_bound_of_a_hand_counted_case() {
        // 10 parameters of 4 bytes, 3 of them the first layer's: Adam 10·6·4 = 240 (parameters
        // and moments read and written); the 7 others' gradient written and read: 7·2·4 = 56;
        // 6 coordinates written and read: 2·6·4 = 48; 3 first-layer weights read: 3·4 = 12
        assert_eq!(StepWork::bytes_model(10, 4, 6, 3), 356.0);
        // in f64 every stream doubles
        assert_eq!(StepWork::bytes_model(10, 8, 6, 3), 712.0);
        let work = StepWork {
            gemm_flops: 3e8,
            bytes: 2e7,
            sin_cos: 1e6,
            sin_cos_small: 2e6,
            sin_cos_near_one: 3e6,
            normals: 1e6,
            source_flops: 0.0,
        };
        let rates = MachineRates {
            gemm_flop_s: 1.5e11,
            bytes_s: 1e10,
            sin_cos_s: 1e9,
            sin_cos_small_s: 4e9,
            sin_cos_near_one_s: 6e9,
            normals_s: 5e8,
            fma_peak_flop_s: 3e11,
            fma_peak_one_thread_flop_s: 1.6e11,
        };
        // two threads at 3e11 against 1.6e11 on one: both cores were there; 1.1e11 would not be
        assert!(rates.all_cores(2) && !rates.all_cores(3));
        assert!(
            !MachineRates {
                fma_peak_flop_s: 1.1e11,
                ..rates
            }
            .all_cores(2)
        );
        // two measurements, one in a busy spell (slower products, a core missing): each rate
        // the better of the two
        let busy = MachineRates {
            gemm_flop_s: 1.1e11,
            bytes_s: 1.2e10,
            fma_peak_flop_s: 1.6e11,
            ..rates
        };
        let best = busy.best(&rates);
        assert_eq!(best.gemm_flop_s, 1.5e11);
        assert_eq!(best.bytes_s, 1.2e10);
        assert_eq!(best.fma_peak_flop_s, 3e11);
        assert!(best.all_cores(2) && !busy.all_cores(2));
        assert_eq!(rates.best(&busy).gemm_flop_s, best.gemm_flop_s);
        // products 3e8/1.5e11 = 2 ms; memory 2e7/1e10 = 2 ms;
        // 1e6/1e9 + 2e6/4e9 + 3e6/6e9 + 1e6/5e8 = 4 ms; compute 2 + 4 = 6 ms > memory
        let b = StepBound::of(&work, &rates, 12e-3);
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs();
        assert!(close(b.product_s, 2e-3) && close(b.memory_s, 2e-3), "{b:?}");
        assert!(close(b.transcendental_s, 4e-3), "{b:?}");
        assert!(close(b.bound_s, 6e-3) && close(b.serial_s, 8e-3), "{b:?}");
        assert!(close(b.overlap_all_s, 4e-3) && close(b.fraction, 0.5), "{b:?}");
        assert!(close(b.fraction_without_source_arith, 0.5), "{b:?}");
        // 1.5e8 FLOP of source arithmetic at the product rate: 1 ms more compute (and in the
        // serial sum and the FLOP part of "the largest alone": 2 + 1 = 3 ms < 4 ms)
        let b = StepBound::of(
            &StepWork {
                source_flops: 1.5e8,
                ..work
            },
            &rates,
            14e-3,
        );
        assert!(close(b.source_arith_s, 1e-3) && close(b.bound_s, 7e-3), "{b:?}");
        assert!(close(b.serial_s, 9e-3) && close(b.overlap_all_s, 4e-3), "{b:?}");
        assert!(
            close(b.fraction, 0.5) && close(b.fraction_without_source_arith, 6.0 / 14.0),
            "{b:?}"
        );
        // memory bound: 2e8 bytes take 20 ms
        let b = StepBound::of(&StepWork { bytes: 2e8, ..work }, &rates, 40e-3);
        assert!(close(b.bound_s, 20e-3) && close(b.fraction, 0.5), "{b:?}");
        // work that is absent costs nothing, whatever the rate
        let none = StepBound::of(&StepWork::default(), &MachineRates::default(), 1.0);
        assert_eq!(none.bound_s, 0.0);
    }

    #[test]
    fn the_sweep_table_replaces_only_the_marked_part() {
        let doc = "# P\nbefore\n<!-- sweep:start -->\nold\n<!-- sweep:end -->\nafter\n";
        let new = replace_sweep(doc, "| new |\n").unwrap();
        assert_eq!(
            new,
            "# P\nbefore\n<!-- sweep:start -->\n| new |\n<!-- sweep:end -->\nafter\n"
        );
        assert_eq!(replace_sweep(&new, "| new |\n").unwrap(), new, "idempotent");
        assert!(replace_sweep("no markers", "x").is_none());
    }
}
