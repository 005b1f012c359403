//! `cargo bench --bench source`: the exact two-body source term at one point of d = 10⁵ (the
//! `O(d)` cost that dominates a d = 10⁶ training step), against a libm `sin_cos` loop, and the
//! vectorised `sin_cos_slice` alone, the f32 kernel as built (x86-64-v3) and in its AVX-512
//! build where the CPU has it (`sin_cos_slice_f32_widest`); and a formula source (`formula`) summing over the same
//! 10⁵ coordinates, interpreted.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use stde::pde::vecmath::sin_cos_slice;
use stde::pde::{BallProblem, BallSampler, Equation, SamplerKind};

fn source(c: &mut Criterion) {
    let d = 100_000;
    let eq = BallProblem::from_name("allen-cahn-two-body", d, 0).unwrap();
    let mut x = vec![0.0f64; d];
    BallSampler {
        kind: SamplerKind::RadiusUniform,
        dim: d,
    }
    .fill(1, 0, &mut x);
    let mut group = c.benchmark_group("source_d1e5");
    group.sample_size(30);
    group.bench_function("two_body_source", |b| b.iter(|| eq.source(black_box(&x))));
    let (mut s, mut co) = (vec![0.0; d], vec![0.0; d]);
    group.bench_function("sin_cos_slice", |b| {
        b.iter(|| sin_cos_slice(black_box(&x), &mut s, &mut co))
    });
    let x32: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    let (mut s32, mut c32) = (vec![0.0f32; d], vec![0.0f32; d]);
    group.bench_function("sin_cos_slice_f32_x86_64_v3", |b| {
        b.iter(|| stde::pde::vecmath::sin_cos_slice_f32(black_box(&x32), &mut s32, &mut c32))
    });
    group.bench_function("sin_cos_slice_f32_widest", |b| {
        b.iter(|| stde::pde::vecmath::sin_cos_slice_f32_widest(black_box(&x32), &mut s32, &mut c32))
    });
    group.bench_function("libm_sin_cos", |b| {
        b.iter(|| {
            for ((v, s), c) in black_box(&x).iter().zip(s.iter_mut()).zip(co.iter_mut()) {
                (*s, *c) = v.sin_cos();
            }
        })
    });
    let formula = stde::formula::Formula::parse(
        "sum(i, 0, d-1, sin(x[i]) + x[i]^2)",
        stde::formula::Scope {
            dim: d,
            time: false,
            solution: false,
        },
    )
    .unwrap();
    let mut ws = formula.workspace(0);
    group.bench_function("formula_sum", |b| {
        b.iter(|| formula.eval(&mut ws, black_box(&x), 0.0, &[]))
    });
    group.finish();
}

criterion_group!(benches, source);
criterion_main!(benches);
