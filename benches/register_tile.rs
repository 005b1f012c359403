//! `cargo bench --bench register_tile`: could a product kernel of our own beat faer on the step's
//! shapes? One core, f32: faer's sequential product against plain AVX-512 register tiles (`R`
//! rows × 32 or 64 columns of `C` held in registers for the whole reduction, `A` broadcast element
//! by element, `B` read in place), on the forward shape (`1008 × 128 × 128`, a slice's rows
//! through a 128-wide layer) and the weight-gradient shape (`Xᵀ·Z̄`: `168 × 128 × 960`, `A` read
//! through the transpose's strides). Each tile kernel is first checked against faer's result.
//! The figures and what was concluded are in docs/PERFORMANCE.md ("A product kernel of our own").
//! Nothing here is used by the library; without AVX-512 only faer is timed.

use criterion::{Criterion, criterion_group, criterion_main};
use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};

/// A product's operands: `A` (`m × k`, strided), `B` (`k × n`, row-major), `C` (`m × n`).
struct Case {
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f32>,
    a_strides: (isize, isize),
    b: Vec<f32>,
}

impl Case {
    fn new(m: usize, n: usize, k: usize, a_transposed: bool) -> Case {
        let a = (0..m * k).map(|i| (i % 17) as f32 * 0.01).collect();
        let b = (0..k * n).map(|i| (i % 13) as f32 * 0.01).collect();
        let a_strides = if a_transposed { (1, m as isize) } else { (k as isize, 1) };
        Case {
            m,
            n,
            k,
            a,
            a_strides,
            b,
        }
    }

    fn faer(&self, c: &mut [f32]) {
        let (m, n, k) = (self.m, self.n, self.k);
        // SAFETY: the buffers hold the described matrices
        unsafe {
            let dst = MatMut::from_raw_parts_mut(c.as_mut_ptr(), m, n, n as isize, 1);
            let lhs = MatRef::from_raw_parts(self.a.as_ptr(), m, k, self.a_strides.0, self.a_strides.1);
            let rhs = MatRef::from_raw_parts(self.b.as_ptr(), k, n, n as isize, 1);
            faer_matmul(dst, Accum::Replace, lhs, rhs, 1.0f32, Par::Seq);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod tiles {
    use super::Case;
    use std::arch::x86_64::*;

    /// The `R × 16·NB` tile of `C` at `c`, its accumulators in registers.
    ///
    /// # Safety
    /// AVX-512 F; the tile's rows of `A`, columns of `B` and entries of `C` are in bounds.
    #[target_feature(enable = "avx512f")]
    unsafe fn tile<const R: usize, const NB: usize>(
        k: usize,
        (a, a_rs, a_cs): (*const f32, isize, isize),
        (b, b_rs): (*const f32, isize),
        (c, c_rs): (*mut f32, isize),
    ) {
        let mut acc = [[_mm512_setzero_ps(); NB]; R];
        let (mut ap, mut bp) = (a, b);
        for _ in 0..k {
            // SAFETY: row kk of B's panel, column kk of the tile's rows of A
            unsafe {
                let mut bv = [_mm512_setzero_ps(); NB];
                for (j, v) in bv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(bp.add(16 * j));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ap.offset(r as isize * a_rs));
                    for (s, v) in row.iter_mut().zip(&bv) {
                        *s = _mm512_fmadd_ps(x, *v, *s);
                    }
                }
                ap = ap.offset(a_cs);
                bp = bp.offset(b_rs);
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                // SAFETY: entry (r, 16j) of the tile
                unsafe { _mm512_storeu_ps(c.offset(r as isize * c_rs).add(16 * j), *v) }
            }
        }
    }

    /// `C = A·B` tile by tile (`m` a multiple of `R`, `n` of `16·NB`).
    pub fn product<const R: usize, const NB: usize>(case: &Case, c: &mut [f32]) {
        let (m, n, k) = (case.m, case.n, case.k);
        let (a_rs, a_cs) = case.a_strides;
        assert!(m % R == 0 && n % (16 * NB) == 0 && c.len() >= m * n);
        assert!(stde::lanes::has_avx512());
        for i0 in (0..m).step_by(R) {
            for p in 0..n / (16 * NB) {
                // SAFETY: the CPU has AVX-512 F (asserted); the tile lies inside the shapes
                unsafe {
                    tile::<R, NB>(
                        k,
                        (case.a.as_ptr().offset(i0 as isize * a_rs), a_rs, a_cs),
                        (case.b.as_ptr().add(16 * NB * p), n as isize),
                        (c.as_mut_ptr().add(i0 * n + 16 * NB * p), n as isize),
                    )
                }
            }
        }
    }
}

fn register_tile(crit: &mut Criterion) {
    let mut group = crit.benchmark_group("register_tile");
    for (name, case) in [
        ("forward_1008x128x128", Case::new(1008, 128, 128, false)),
        ("weight_grad_168x128x960", Case::new(168, 128, 960, true)),
    ] {
        let mut want = vec![0.0f32; case.m * case.n];
        case.faer(&mut want);
        let mut c = vec![0.0f32; case.m * case.n];
        group.bench_function(format!("{name}_faer"), |b| b.iter(|| case.faer(&mut c)));
        #[cfg(target_arch = "x86_64")]
        if stde::lanes::has_avx512() {
            type Kernel = fn(&Case, &mut [f32]);
            let kernels: [(&str, Kernel); 3] = [
                ("14x32", tiles::product::<14, 2>),
                ("12x32", tiles::product::<12, 2>),
                ("6x64", tiles::product::<6, 4>),
            ];
            for (tile, kernel) in kernels {
                kernel(&case, &mut c);
                let scale = want.iter().fold(0.0f32, |s, v| s.max(v.abs()));
                let err = c.iter().zip(&want).fold(0.0f32, |e, (x, y)| e.max((x - y).abs()));
                assert!(err <= 1e-5 * scale, "{name} {tile}: differs from faer by {err}");
                group.bench_function(format!("{name}_{tile}"), |b| b.iter(|| kernel(&case, &mut c)));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, register_tile);
criterion_main!(benches);
