//! `cargo bench --bench step_parts`: the hot kernels of a training step outside the matrix
//! products, at the reference step's sizes (100 points, width 128, 16 directions, f32): drawing
//! the residual points (d = 1000 and 10⁵), the collapsed tanh activation forward and backward,
//! and the Adam update of 1.3·10⁶ parameters (the d = 10⁴ network).

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stde::jet::Unary;
use stde::jet::collapsed::{CollapsedJet, collapsed_activation_backward, collapsed_activation_forward};
use stde::pde::{BallSampler, SamplerKind};
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
}

criterion_group!(benches, sampling, collapsed_activation, adam);
criterion_main!(benches);
