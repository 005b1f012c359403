//! `cargo bench --bench jet_mlp`: forward+backward of one-hot K-jets (K = 2, 4) for 100 points ×
//! 16 directions through a 4-layer, width-128 tanh MLP (f32, d = 100), and the one-hot first-layer
//! tangent gather at d = 1K and 1M.

use criterion::{Criterion, criterion_group, criterion_main};
use stde::bench::{PreparedStep, StepCase};
use stde::jet::{InputJets, Tangent};
use stde::nn::first_layer::input_tangent_forward;

fn jet_mlp(c: &mut Criterion) {
    let mut group = c.benchmark_group("jet_mlp");
    group.sample_size(30);
    for order in [2, 4] {
        let case = StepCase {
            dim: 100,
            points: 100,
            dirs: 16,
            width: 128,
            depth: 4,
            order,
            dense: false,
        };
        let mut step = PreparedStep::<f32>::new(&case);
        group.bench_function(format!("fwd_bwd_K{order}"), |b| b.iter(|| step.run()));
    }
    group.finish();
}

fn first_layer(c: &mut Criterion) {
    let mut group = c.benchmark_group("first_layer_one_hot");
    let (points, dirs, width) = (100, 16, 128);
    for dim in [1_000usize, 1_000_000] {
        let weight: Vec<f32> = (0..dim * width).map(|i| (i % 97) as f32 / 97.0).collect();
        let mut input = InputJets::new(2, dim, dirs, vec![0.0f32; points * dim]).unwrap();
        input
            .set(
                1,
                Tangent::OneHot((0..points * dirs).map(|r| (r * 104729) % dim).collect()),
            )
            .unwrap();
        let mut tangents = vec![0.0f32; points * dirs * width];
        group.bench_function(format!("d{dim}"), |b| {
            b.iter(|| input_tangent_forward(&input, &weight, width, &mut tangents))
        });
    }
    group.finish();
}

criterion_group!(benches, jet_mlp, first_layer);
criterion_main!(benches);
