//! `cargo bench --features gemm --bench gemm_shapes`: the matrix-product backend stde uses
//! (`faer`, through `stde::tensor`) against the `gemm` crate on the products of one jet_mlp step
//! (f32, 100 points × 16 directions, width 128): stacked tangents × W and the weight gradient
//! Hᵀ·Z̄, for K = 2 and 4. This measurement chose the backend (see docs/PERFORMANCE.md).

use criterion::{Criterion, criterion_group, criterion_main};
use gemm::Parallelism;
use stde::tensor::{self, Write};

fn gemm_par() -> Parallelism {
    if rayon::current_num_threads() > 1 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// `C[m×n] (=|+=) A·B` with the gemm crate; `a_t` reads A stored as `[k×m]` (transposed).
#[allow(clippy::too_many_arguments)]
fn gemm_crate(m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], c: &mut [f32], acc: bool) {
    let (a_rs, a_cs) = if a_t { (1, m as isize) } else { (k as isize, 1) };
    // SAFETY: buffers hold the described matrices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            acc,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            1,
            n as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_par(),
        )
    }
}

fn shapes(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm_shapes");
    let w = 128;
    for order in [2usize, 4] {
        let m = 100 * 16 * order + 100;
        let a: Vec<f32> = (0..m * w).map(|i| (i % 13) as f32 * 0.1).collect();
        let b: Vec<f32> = (0..w * w).map(|i| (i % 7) as f32 * 0.1).collect();
        let mut out = vec![0.0f32; m * w];
        let mut wgrad = vec![0.0f32; w * w];
        group.bench_function(format!("forward_K{order}_faer"), |bn| {
            bn.iter(|| tensor::matmul(m, w, w, &a, &b, &mut out, Write::Overwrite))
        });
        group.bench_function(format!("forward_K{order}_gemm"), |bn| {
            bn.iter(|| gemm_crate(m, w, w, &a, false, &b, &mut out, false))
        });
        group.bench_function(format!("weight_grad_K{order}_faer"), |bn| {
            bn.iter(|| tensor::matmul_tn(m, w, w, &a, &out, &mut wgrad, Write::Accumulate))
        });
        group.bench_function(format!("weight_grad_K{order}_gemm"), |bn| {
            bn.iter(|| gemm_crate(w, m, w, &a, true, &out, &mut wgrad, true))
        });
    }
    group.finish();
}

criterion_group!(benches, shapes);
criterion_main!(benches);
