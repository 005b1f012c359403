//! `cargo bench --bench step_parts`: the hot kernels of a training step outside the matrix
//! products, at the reference step's sizes (100 points, width 128, 16 directions, f32): drawing
//! the residual points (d = 1000 and 10⁵), the collapsed tanh activation forward and backward,
//! the Adam update of 1.3·10⁶ parameters (the d = 10⁴ network); the Gaussians of one point
//! (`NormalLanes`, d = 10⁵), the f32 two-body source with ψ's ‖x‖² and the weight-shared first
//! stage's block sums (B = 100) at one point of d = 10⁵ (and the source finishing an unscaled
//! point chunk by chunk); its `w̄ = Σ ā·x` over a d = 10⁶ batch (400 MB) beside a read of the
//! same bytes; the draw-time work of two d = 10⁶ points in separate passes or one; and
//! the collapsed layer's three products (forward, weight gradient, input cotangents) on the
//! stacked `1800 × 128` rows through `stde::tensor` against faer's own parallel product and
//! against the three row groups (100 / 1600 / 100) one by one; the parabolic width-1024 layer's
//! products (`1000 × 1024` rows by `1024 × 1024`): forward and weight gradient `Aᵀ·B` (which
//! `tensor::matmul_tn` computes on a copy of `Aᵀ`; 2·10⁹ flops each: GFLOP/s = 2.1 / ms).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stde::jet::Unary;
use stde::jet::collapsed::{CollapsedJet, collapsed_activation_backward, collapsed_activation_forward};
use stde::pde::sampler::{NormalLanes, stream};
use stde::pde::{BallProblem, BallSampler, Equation, SamplerKind};
use stde::tensor::{self, Write};
use stde::train::optim::Adam;

fn sampling(c: &mut Criterion) {
    let mut group = c.benchmark_group("sampling_100_points");
    group.sample_size(20);
    for d in [1_000usize, 100_000] {
        let sampler = BallSampler {
            kind: SamplerKind::RadiusUniform,
            dim: d,
        };
        let mut out = vec![0.0f32; 100 * d];
        group.bench_function(format!("ball_d{d}"), |b| {
            b.iter(|| sampler.fill_from(black_box(7), 3, 0, &mut out))
        });
    }
}

fn collapsed_activation(c: &mut Criterion) {
    let (points, dirs, w) = (100usize, 16usize, 128usize);
    let mut z = CollapsedJet::<f32>::default();
    z.reshape(points, dirs, w);
    let fill = |v: &mut [f32], s: f32| v.iter_mut().enumerate().for_each(|(i, x)| *x = ((i as f32) * s).sin());
    let (zp, zf, zs) = z.parts_mut();
    fill(zp, 0.37);
    fill(zf, 0.11);
    fill(zs, 0.23);
    let (mut y, mut local) = (CollapsedJet::default(), Vec::new());
    c.bench_function("collapsed_tanh_forward", |b| {
        b.iter(|| collapsed_activation_forward(Unary::Tanh, black_box(&z), &mut y, &mut local))
    });
    let ybar = CollapsedJet::zeros_like(&y);
    let mut zbar = CollapsedJet::default();
    c.bench_function("collapsed_tanh_backward", |b| {
        b.iter(|| collapsed_activation_backward(black_box(&z), &local, &ybar, &mut zbar))
    });
}

fn adam(c: &mut Criterion) {
    let n = 1_300_000;
    let mut params = vec![0.1f32; n];
    let grad: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    let mut opt = Adam::<f32>::new(n);
    c.bench_function("adam_1.3M_f32", |b| {
        b.iter(|| opt.update(&mut params, black_box(&grad), 1e-3))
    });
    // the d = 10⁵ network's 12.8 M parameters (far beyond the caches): the update against a
    // copy of the same bytes (7 streams of n values: 4 read, 3 written)
    let n = 12_800_000;
    let mut params = vec![0.1f32; n];
    let grad: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    let mut opt = Adam::<f32>::new(n);
    let mut group = c.benchmark_group("adam_12.8M_f32");
    group.sample_size(20);
    group.bench_function("update", |b| b.iter(|| opt.update(&mut params, black_box(&grad), 1e-3)));
    let src = vec![0.5f32; 7 * n / 2];
    let mut dst = vec![0.0f32; 7 * n / 2];
    group.bench_function("copy_same_bytes", |b| {
        b.iter(|| {
            use rayon::prelude::*;
            dst.par_chunks_mut(1 << 16)
                .zip(src.par_chunks(1 << 16))
                .for_each(|(d, s)| d.copy_from_slice(black_box(s)))
        })
    });
    group.finish();
    let n = 1 << 16;
    let mut params = vec![0.1f32; n];
    let grad: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
    let mut opt = Adam::<f32>::new(n);
    // the update's arithmetic alone: one thread, everything in cache (f64 square roots and
    // divisions: 1.9 ns a parameter on the EPYC, as much as the 12.8 M update's memory traffic)
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    c.bench_function("adam_64K_in_cache_1t", |b| {
        b.iter(|| pool.install(|| opt.update(&mut params, black_box(&grad), 1e-3)))
    });
}

fn point_work(c: &mut Criterion) {
    let d = 100_000;
    let mut group = c.benchmark_group("point_d1e5_f32");
    group.sample_size(30);
    let mut x = vec![0.0f32; d];
    group.bench_function("normal_lanes", |b| {
        b.iter(|| {
            let mut rng = stream(1, 2, 3);
            NormalLanes::new(&mut rng).fill_widest(black_box(&mut x))
        })
    });
    BallSampler {
        kind: SamplerKind::RadiusUniform,
        dim: d,
    }
    .fill(1, 0, &mut x);
    let eq = BallProblem::from_name("allen-cahn-two-body", d, 0).unwrap();
    group.bench_function("two_body_source_and_norm2", |b| {
        b.iter(|| eq.source_f32_and_norm2(black_box(&x)))
    });
    // the same point finished by the source (scaled by 1 in place, chunk by chunk) and handed on
    group.bench_function("two_body_source_scaling", |b| {
        b.iter(|| {
            eq.source_f32_and_norm2_scaling(black_box(&mut x), 1.0, &mut |p| {
                black_box(p);
            })
        })
    });
    // the weight-shared first stage's block sums `β + w·x_[block]` (B = 100: 1000 blocks)
    let w: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 1e-2).collect();
    let mut pre = vec![0.0f32; d / 100];
    group.bench_function("block_sums_b100", |b| {
        b.iter(|| stde::nn::first_layer::block_pre_activation(black_box(&x), &w, 0.5, &mut pre))
    });
}

/// The draw-time work of d = 10⁶ points (B = 100), two at a time (one a core): Gaussians, the
/// scaling into the ball, the f32 two-body source and the block sums, as separate passes over
/// each 4 MB point, or with the scaling and block sums inside the source's pass.
fn draw_point_d1e6(c: &mut Criterion) {
    use rayon::prelude::*;
    let (d, b) = (1_000_000usize, 100usize);
    let eq = BallProblem::from_name("allen-cahn-two-body", d, 0).unwrap();
    let sampler = BallSampler {
        kind: SamplerKind::RadiusUniform,
        dim: d,
    };
    let w: Vec<f32> = (0..b).map(|i| (i as f32 - 50.0) * 1e-2).collect();
    let mut points = vec![vec![0.0f32; d]; 2];
    let mut group = c.benchmark_group("draw_point_d1e6");
    group.sample_size(20);
    group.bench_function("separate_passes", |bn| {
        bn.iter(|| {
            points.par_iter_mut().enumerate().for_each(|(p, x)| {
                let mut rng = stream(1, 2, p as u64);
                sampler.point(&mut rng, x);
                black_box(eq.source_f32_and_norm2(x));
                let mut pre = vec![0.0f32; d / b];
                stde::nn::first_layer::block_pre_activation(x, &w, 0.5, &mut pre);
                black_box(pre);
            })
        })
    });
    group.bench_function("fused_pass", |bn| {
        bn.iter(|| {
            points.par_iter_mut().enumerate().for_each(|(p, x)| {
                let mut rng = stream(1, 2, p as u64);
                let scale = sampler.direction(&mut rng, x);
                let mut pre = vec![0.0f32; d / b];
                let mut done = 0;
                let mut visit = |prefix: &[f32]| {
                    let complete = prefix.len() / b;
                    stde::nn::first_layer::block_pre_activation(
                        &prefix[done * b..complete * b],
                        &w,
                        0.5,
                        &mut pre[done..complete],
                    );
                    done = complete;
                };
                black_box(eq.source_f32_and_norm2_scaling(x, scale, &mut visit));
                black_box(pre);
            })
        })
    });
}

/// The weight-shared first stage's `w̄ = Σ ā·x` over a whole d = 10⁶ batch (100 points,
/// B = 100: 400 MB, read from memory as in the step) beside a parallel sum of the same bytes.
fn shared_weight_grad(c: &mut Criterion) {
    use rayon::prelude::*;
    let (points, d, b) = (100usize, 1_000_000usize, 100usize);
    let x: Vec<f32> = (0..points * d).map(|i| ((i % 1013) as f32 - 506.0) * 1e-3).collect();
    let abar: Vec<f32> = (0..points * d / b).map(|i| ((i % 97) as f32 - 48.0) * 1e-2).collect();
    let mut group = c.benchmark_group("shared_weight_grad_d1e6");
    group.sample_size(10);
    group.bench_function("w_bar", |bn| {
        bn.iter(|| {
            let (mut w_bar, mut beta_bar) = (vec![0.0f32; b], 0.0f32);
            stde::nn::first_layer::shared_weight_grad(&abar, black_box(&x), d, &mut w_bar, &mut beta_bar);
            w_bar[0] + beta_bar
        })
    });
    group.bench_function("read_same_bytes", |bn| {
        bn.iter(|| {
            black_box(&x)
                .par_chunks(1 << 16)
                .map(|c| {
                    // sixteen independent sums (a vector register), not one serial chain
                    let mut acc = [0.0f32; 16];
                    for v in c.chunks_exact(16) {
                        acc.iter_mut().zip(v).for_each(|(a, v)| *a += *v);
                    }
                    acc.iter().sum::<f32>()
                })
                .sum::<f32>()
        })
    });
    group.bench_function("read_two_streams", |bn| {
        bn.iter(|| {
            black_box(&x)
                .par_chunks(1 << 20)
                .map(|c| {
                    let (lo, hi) = c.split_at(c.len() / 2);
                    let mut acc = [0.0f32; 16];
                    let mut acc2 = [0.0f32; 16];
                    for (v, u) in lo.chunks_exact(16).zip(hi.chunks_exact(16)) {
                        acc.iter_mut().zip(v).for_each(|(a, v)| *a += *v);
                        acc2.iter_mut().zip(u).for_each(|(a, v)| *a += *v);
                    }
                    acc.iter().sum::<f32>() + acc2.iter().sum::<f32>()
                })
                .sum::<f32>()
        })
    });
    group.bench_function("read_prefetch", |bn| {
        bn.iter(|| {
            black_box(&x)
                .par_chunks(1 << 20)
                .map(|c| {
                    let mut acc = [0.0f32; 16];
                    for (i, v) in c.chunks_exact(16).enumerate() {
                        #[cfg(target_arch = "x86_64")]
                        unsafe {
                            use std::arch::x86_64::*;
                            _mm_prefetch::<_MM_HINT_T0>(c.as_ptr().wrapping_add(i * 16 + 2048) as *const i8);
                        }
                        acc.iter_mut().zip(v).for_each(|(a, v)| *a += *v);
                    }
                    acc.iter().sum::<f32>()
                })
                .sum::<f32>()
        })
    });
}

/// `C = A·B` by faer directly with its own parallelism (the reference for `stde::tensor`).
fn faer_product(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], c: &mut [f32]) {
    use faer::{Accum, MatMut, MatRef, Par};
    let dst = MatMut::from_row_major_slice_mut(c, m, n);
    let lhs = MatRef::from_row_major_slice(a, m, k);
    let rhs = MatRef::from_row_major_slice(b, k, n);
    let par = if rayon::current_num_threads() > 1 {
        Par::rayon(0)
    } else {
        Par::Seq
    };
    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, par);
}

fn collapsed_products(c: &mut Criterion) {
    let (w, groups) = (128usize, [100usize, 1600, 100]);
    let m: usize = groups.iter().sum();
    let x: Vec<f32> = (0..m * w).map(|i| (i as f32 * 0.11).cos()).collect();
    let weight: Vec<f32> = (0..w * w).map(|i| (i as f32 * 0.37).sin()).collect();
    let (mut y, mut h, mut g) = (vec![0.0f32; m * w], vec![0.0f32; m * w], vec![0.0f32; w * w]);
    let mut group = c.benchmark_group("collapsed_layer_products_1800x128x128");
    group.bench_function("stacked_forward", |b| {
        b.iter(|| tensor::matmul(m, w, w, black_box(&x), &weight, &mut y, Write::Overwrite))
    });
    group.bench_function("faer_par_forward", |b| {
        b.iter(|| faer_product(m, w, w, black_box(&x), &weight, &mut y))
    });
    group.bench_function("three_groups_forward", |b| {
        b.iter(|| {
            let mut at = 0;
            for rows in groups {
                let r = at * w..(at + rows) * w;
                tensor::matmul(rows, w, w, &x[r.clone()], &weight, &mut y[r], Write::Overwrite);
                at += rows;
            }
        })
    });
    group.bench_function("stacked_weight_gradient", |b| {
        b.iter(|| tensor::matmul_tn(m, w, w, black_box(&x), &y, &mut g, Write::Accumulate))
    });
    group.bench_function("stacked_input_cotangent", |b| {
        b.iter(|| tensor::matmul_nt(m, w, w, black_box(&y), &weight, &mut h, Write::Overwrite))
    });
}

fn wide_products(c: &mut Criterion) {
    let (m, w) = (1000usize, 1024usize);
    let fill = |n: usize, s: f32| (0..n).map(|i| ((i as f32) * s).sin()).collect::<Vec<f32>>();
    let (a, weight, g) = (fill(m * w, 0.37), fill(w * w, 0.11), fill(m * w, 0.23));
    let (mut out, mut wgrad) = (vec![0.0f32; m * w], vec![0.0f32; w * w]);
    let mut group = c.benchmark_group("parabolic_layer_1000x1024x1024");
    group.sample_size(20);
    group.bench_function("forward", |b| {
        b.iter(|| tensor::matmul(m, w, w, black_box(&a), &weight, &mut out, Write::Overwrite))
    });
    group.bench_function("weight_gradient", |b| {
        b.iter(|| tensor::matmul_tn(m, w, w, black_box(&a), &g, &mut wgrad, Write::Overwrite))
    });
}

/// The first layer's products at d = 10⁴ and 10⁵ (100 points, width 128; 2.56·10⁸ and 2.56·10⁹
/// flops each: GFLOP/s = 256 / ms and 2560 / ms): the forward `X·W` (split-K), the weight
/// gradient `Xᵀ·Z̄` whole (`matmul_tn`, row blocks on two threads) and as the streamed update
/// makes it (512-row blocks, one per task, `matmul_tn_rows`).
fn first_layer_products(c: &mut Criterion) {
    use rayon::prelude::*;
    for (name, d) in [("first_layer_d1e4", 10_000usize), ("first_layer_d1e5", 100_000)] {
        let (m, n) = (100usize, 128usize);
        let x: Vec<f32> = (0..m * d).map(|i| ((i % 89) as f32 - 44.0) * 1e-2).collect();
        let w: Vec<f32> = (0..d * n).map(|i| ((i % 97) as f32 - 48.0) * 1e-3).collect();
        let z: Vec<f32> = (0..m * n).map(|i| ((i % 83) as f32 - 41.0) * 1e-2).collect();
        let mut out = vec![0.0f32; m * n];
        let mut grad = vec![0.0f32; d * n];
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("forward", |b| {
            b.iter(|| tensor::matmul(m, d, n, black_box(&x), &w, &mut out, Write::Overwrite))
        });
        group.bench_function("weight_grad_whole", |b| {
            b.iter(|| tensor::matmul_tn(m, d, n, black_box(&x), &z, &mut grad, Write::Overwrite))
        });
        group.bench_function("weight_grad_blocks", |b| {
            b.iter(|| {
                grad.par_chunks_mut(512 * n).enumerate().for_each(|(i, g)| {
                    let rows = i * 512..(i * 512 + g.len() / n);
                    tensor::matmul_tn_rows(m, d, n, black_box(&x), rows, &z, g)
                })
            })
        });
        group.finish();
    }
}

criterion_group!(
    benches,
    first_layer_products,
    sampling,
    collapsed_activation,
    adam,
    point_work,
    collapsed_products,
    wide_products,
    shared_weight_grad,
    draw_point_d1e6
);
criterion_main!(benches);
