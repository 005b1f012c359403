//! The hardware seam: dense matrix products and the parallel loop helper, on plain row-major slices.
//!
//! Everything above this module works with `&[T]` buffers and shapes; only this module knows how a
//! product is computed (`faer` on CPU today; chosen over the `gemm` crate by `benches/gemm_shapes.rs`). A CUDA backend replaces these functions.

use crate::real::Real;
use faer::linalg::matmul::matmul as faer_matmul;
use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;
use std::any::TypeId;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

static PROFILE: AtomicBool = AtomicBool::new(false);
static GEMM_NANOS: AtomicU64 = AtomicU64::new(0);
static SIN_COS: AtomicU64 = AtomicU64::new(0);
static SIN_COS_SMALL: AtomicU64 = AtomicU64::new(0);
static SIN_COS_NEAR_ONE: AtomicU64 = AtomicU64::new(0);
static NORMALS: AtomicU64 = AtomicU64::new(0);
static SOURCE_FLOPS: AtomicU64 = AtomicU64::new(0);
/// Products in flight and when the first of them began: products that overlap (slices of a
/// batch on several threads) count their wall time once.
static IN_FLIGHT: Mutex<(usize, Option<Instant>)> = Mutex::new((0, None));

/// Marks a product's start while profiling (see [`IN_FLIGHT`]).
fn product_begins() {
    let mut f = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    if f.0 == 0 {
        f.1 = Some(Instant::now());
    }
    f.0 += 1;
}

/// Marks a product's end: the last one in flight adds the wall time since the first began.
fn product_ends() {
    let mut f = IN_FLIGHT.lock().unwrap_or_else(|e| e.into_inner());
    f.0 = f.0.saturating_sub(1);
    if f.0 == 0
        && let Some(start) = f.1.take()
    {
        GEMM_NANOS.fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
    }
}

/// Products timed by shape while profiling (a few dozen shapes: a list searched in order); the
/// profile's FLOP count is summed from it.
static SHAPES: Mutex<Vec<ProductShape>> = Mutex::new(Vec::new());

/// The products of one shape while profiling: how many ran and how long they took.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductShape {
    /// Rows of the result.
    pub m: usize,
    /// Columns of the result.
    pub n: usize,
    /// Reduction length.
    pub k: usize,
    /// Products of this shape.
    pub calls: f64,
    /// Their time, seconds, each product from its start to its end on the thread that called it
    /// (products running side by side on several threads each count whole).
    pub seconds: f64,
}

impl ProductShape {
    /// Floating-point rate of these products, FLOP/s (`2·m·n·k` each).
    pub fn flop_s(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 * self.calls / self.seconds.max(1e-300)
    }
}

/// Runs the product `run` of `m × n × k`, timed and counted when profiling is on.
fn profiled_product(m: usize, n: usize, k: usize, run: impl FnOnce()) {
    if !PROFILE.load(Ordering::Relaxed) {
        return run();
    }
    product_begins();
    let start = Instant::now();
    run();
    let seconds = start.elapsed().as_secs_f64();
    product_ends();
    let mut shapes = SHAPES.lock().unwrap_or_else(|e| e.into_inner());
    match shapes.iter_mut().find(|s| (s.m, s.n, s.k) == (m, n, k)) {
        Some(s) => {
            s.calls += 1.0;
            s.seconds += seconds;
        }
        None => shapes.push(ProductShape {
            m,
            n,
            k,
            calls: 1.0,
            seconds,
        }),
    }
}

/// The products timed by shape since the last [`profile_reset`], the longest first.
pub fn profile_shapes() -> Vec<ProductShape> {
    let mut shapes = SHAPES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    shapes.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
    shapes
}

/// Non-product work the profile counts (the step bound's transcendental part).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// Sine–cosine pairs of the vectorised sources (`pde::vecmath::sin_cos_slice`).
    SinCos,
    /// Sine–cosine pairs that took the short polynomials of small arguments
    /// (`pde::vecmath::sin_cos_small_f32`).
    SinCosSmall,
    /// Sine–cosine pairs of arguments near 1 (`pde::vecmath::sin_cos_near_one_f32`).
    SinCosNearOne,
    /// Gaussian coordinates drawn by the samplers.
    Normals,
    /// Floating-point operations of the sources' term arithmetic around their sines and
    /// cosines (`pde::ball::TWO_BODY_TERM_FLOPS` a two-body term).
    SourceFlops,
}

/// Counts `n` items of `work` while profiling is on (one relaxed load otherwise).
pub fn profile_count(work: Work, n: usize) {
    if PROFILE.load(Ordering::Relaxed) {
        let c = match work {
            Work::SinCos => &SIN_COS,
            Work::SinCosSmall => &SIN_COS_SMALL,
            Work::SinCosNearOne => &SIN_COS_NEAR_ONE,
            Work::Normals => &NORMALS,
            Work::SourceFlops => &SOURCE_FLOPS,
        };
        c.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Time and floating-point operations spent in matrix products, and the other work counted,
/// since the last [`profile_reset`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GemmProfile {
    /// Wall time with at least one product in flight, seconds (overlapping products, e.g. of
    /// slices on two threads, count once).
    pub seconds: f64,
    /// Floating-point operations (`2·m·n·k` per product).
    pub flops: f64,
    /// Sine–cosine pairs counted by [`profile_count`].
    pub sin_cos: f64,
    /// Small-argument sine–cosine pairs counted by [`profile_count`].
    pub sin_cos_small: f64,
    /// Sine–cosine pairs of arguments near 1 counted by [`profile_count`].
    pub sin_cos_near_one: f64,
    /// Gaussian coordinates counted by [`profile_count`].
    pub normals: f64,
    /// Source term operations counted by [`profile_count`].
    pub source_flops: f64,
}

/// Turns product timing on or off (off by default: one relaxed atomic load per product).
pub fn profile_enable(on: bool) {
    PROFILE.store(on, Ordering::Relaxed);
}

/// Clears the product counters.
pub fn profile_reset() {
    SHAPES.lock().unwrap_or_else(|e| e.into_inner()).clear();
    GEMM_NANOS.store(0, Ordering::Relaxed);
    SIN_COS.store(0, Ordering::Relaxed);
    SIN_COS_SMALL.store(0, Ordering::Relaxed);
    SIN_COS_NEAR_ONE.store(0, Ordering::Relaxed);
    NORMALS.store(0, Ordering::Relaxed);
    SOURCE_FLOPS.store(0, Ordering::Relaxed);
}

/// Reads the product counters.
pub fn profile_read() -> GemmProfile {
    GemmProfile {
        seconds: GEMM_NANOS.load(Ordering::Relaxed) as f64 * 1e-9,
        flops: SHAPES
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|s| 2.0 * (s.m * s.n * s.k) as f64 * s.calls)
            .sum(),
        sin_cos: SIN_COS.load(Ordering::Relaxed) as f64,
        sin_cos_small: SIN_COS_SMALL.load(Ordering::Relaxed) as f64,
        sin_cos_near_one: SIN_COS_NEAR_ONE.load(Ordering::Relaxed) as f64,
        normals: NORMALS.load(Ordering::Relaxed) as f64,
        source_flops: SOURCE_FLOPS.load(Ordering::Relaxed) as f64,
    }
}

/// Products smaller than this many multiply-adds run on one thread (threading costs more there).
const PARALLEL_THRESHOLD: usize = 1 << 20;

/// Reduction length per chunk of a split-K product (see [`Split`]).
const SPLIT_K_CHUNK: usize = 256;

/// Split-K is used when the destination has at most this many entries (its partial copies stay
/// in cache and cost less to add than the reduction they save).
const SPLIT_K_MAX_AREA: usize = 256 * 256;

/// How a product is spread over threads. Measured on the collapsed layer's shapes (2 Xeon cores,
/// `cargo bench --bench step_parts -- collapsed_layer`): `1800 × 128 × 128` in contiguous row
/// blocks 213 µs (277 GFLOP/s) against 228 µs for faer's own parallel product and 257 µs for the
/// three row groups one by one; the weight gradient by split-K 253 µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Split {
    /// One sequential product.
    None,
    /// Contiguous blocks of destination rows, one sequential product each (every row is the same
    /// arithmetic as in one product, so the result does not depend on the thread count).
    Rows(usize),
    /// The reduction cut into this many chunks of about [`SPLIT_K_CHUNK`], each into its own copy
    /// of the (small) destination, added in chunk order. The chunk count depends on `k` alone and
    /// is used on one thread too, so the result does not depend on the thread count either.
    Reduction(usize),
    /// faer's own parallel product (few rows, wide destination).
    Faer,
}

/// Where this thread's work runs with respect to [`inline_scope`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    /// Not inside a scope: products and row loops split as they like.
    Outside,
    /// A part sharing the threads with more parts than threads: no split-K.
    Shared,
    /// A part with a thread of its own: no split-K, no splitting over threads.
    Exclusive,
}

thread_local! {
    /// This thread's [`Scope`].
    static SCOPE: std::cell::Cell<Scope> = const { std::cell::Cell::new(Scope::Outside) };
}

/// Runs `f` as one of several parts that run side by side (`train::slices`): its products are
/// not split along their reduction (those partial sums only pay where other threads take them;
/// a product's bits inside the scope are those of one unsplit product, on any number of
/// threads), and with `exclusive` (a thread for each part) neither are they nor its row loops
/// split over threads, so the part's data stays in its core's cache. (Splitting by rows does not
/// change a product's bits, so `exclusive` changes no result.)
pub fn inline_scope<R>(exclusive: bool, f: impl FnOnce() -> R) -> R {
    /// Puts the scope back as it was, also when `f` unwinds.
    struct Restore(Scope);
    impl Drop for Restore {
        fn drop(&mut self) {
            SCOPE.with(|c| c.set(self.0));
        }
    }
    let scope = if exclusive { Scope::Exclusive } else { Scope::Shared };
    let _restore = Restore(SCOPE.with(|c| c.replace(scope)));
    f()
}

/// The least items a rayon job of a row loop takes: all of them inside an exclusive
/// [`inline_scope`] (one job, on this thread), else 1.
pub fn min_len() -> usize {
    if SCOPE.with(|c| c.get()) == Scope::Exclusive {
        usize::MAX
    } else {
        1
    }
}

fn split(m: usize, n: usize, k: usize) -> Split {
    if m.saturating_mul(n).saturating_mul(k) < PARALLEL_THRESHOLD {
        return Split::None;
    }
    let scope = SCOPE.with(|c| c.get());
    if scope == Scope::Outside && m.saturating_mul(n) <= SPLIT_K_MAX_AREA && k >= 2 * SPLIT_K_CHUNK && m < 4 * k {
        // a power of two ≤ k / chunk, at most 16: balanced on 1, 2, 4, 8, 16 threads
        let chunks = (k / SPLIT_K_CHUNK).min(16);
        return Split::Reduction(1 << chunks.ilog2());
    }
    let threads = if scope == Scope::Exclusive {
        1
    } else {
        rayon::current_num_threads()
    };
    if threads <= 1 {
        Split::None
    } else if m >= 16 * threads {
        Split::Rows(threads)
    } else {
        Split::Faer
    }
}

/// A strided matrix view by raw pointer (row stride, column stride, in elements); it may cross
/// to rayon's threads (the chunks of one product it addresses are disjoint).
#[derive(Clone, Copy)]
struct Strided<P> {
    p: P,
    rs: isize,
    cs: isize,
}
// SAFETY: used only for disjoint chunks of one product, joined before the call returns.
unsafe impl<P> Send for Strided<P> {}
unsafe impl<P> Sync for Strided<P> {}

impl<T> Strided<*const T> {
    /// The view starting at `(row, col)`.
    ///
    /// # Safety
    /// `(row, col)` must lie inside the matrix.
    unsafe fn at(self, row: usize, col: usize) -> Self {
        let p = unsafe { self.p.offset(row as isize * self.rs + col as isize * self.cs) };
        Strided { p, ..self }
    }
}

impl<T> Strided<*mut T> {
    /// The view starting at `(row, col)`.
    ///
    /// # Safety
    /// `(row, col)` must lie inside the matrix.
    unsafe fn at(self, row: usize, col: usize) -> Self {
        let p = unsafe { self.p.offset(row as isize * self.rs + col as isize * self.cs) };
        Strided { p, ..self }
    }
}

/// How the product lands in the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// `C = A·B`
    Overwrite,
    /// `C += A·B`
    Accumulate,
}

/// One faer product `C (=|+=) scale·A·B` on strided storage with the given parallelism.
///
/// # Safety
/// As [`gemm_raw`].
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_seq<T: Real>(
    (m, n, k): (usize, usize, usize),
    c: Strided<*mut T>,
    a: Strided<*const T>,
    b: Strided<*const T>,
    write: Write,
    scale: T,
    par: Par,
) {
    if k == 0 {
        if write == Write::Overwrite {
            for i in 0..m {
                for j in 0..n {
                    unsafe { *c.at(i, j).p = T::zero() };
                }
            }
        }
        return;
    }
    let accum = if write == Write::Accumulate {
        Accum::Add
    } else {
        Accum::Replace
    };
    // SAFETY (both arms): T is exactly the type it is cast to (TypeId equality); the caller
    // guarantees the pointers address the described strided matrices.
    if TypeId::of::<T>() == TypeId::of::<f32>() {
        unsafe {
            let dst = MatMut::from_raw_parts_mut(c.p as *mut f32, m, n, c.rs, c.cs);
            let lhs = MatRef::from_raw_parts(a.p as *const f32, m, k, a.rs, a.cs);
            let rhs = MatRef::from_raw_parts(b.p as *const f32, k, n, b.rs, b.cs);
            faer_matmul(dst, accum, lhs, rhs, scale.as_f64() as f32, par);
        }
    } else if TypeId::of::<T>() == TypeId::of::<f64>() {
        unsafe {
            let dst = MatMut::from_raw_parts_mut(c.p as *mut f64, m, n, c.rs, c.cs);
            let lhs = MatRef::from_raw_parts(a.p as *const f64, m, k, a.rs, a.cs);
            let rhs = MatRef::from_raw_parts(b.p as *const f64, k, n, b.rs, b.cs);
            faer_matmul(dst, accum, lhs, rhs, scale.as_f64(), par);
        }
    } else {
        unreachable!("Real is implemented for f32 and f64 only");
    }
}

/// Raw strided product `C[m×n] (=|+=) A[m×k]·B[k×n]`, strides in elements (row stride, column stride).
///
/// # Safety
/// The pointers must address valid, non-overlapping (C with A, B) storage for the given shapes and strides.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    c: *mut T,
    c_rs: isize,
    c_cs: isize,
    a: *const T,
    a_rs: isize,
    a_cs: isize,
    b: *const T,
    b_rs: isize,
    b_cs: isize,
    write: Write,
    scale: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (c, a, b) = (
        Strided {
            p: c,
            rs: c_rs,
            cs: c_cs,
        },
        Strided {
            p: a,
            rs: a_rs,
            cs: a_cs,
        },
        Strided {
            p: b,
            rs: b_rs,
            cs: b_cs,
        },
    );
    // SAFETY (every arm): the caller guarantees the strided matrices; the chunks are disjoint
    // row blocks of C, or reduction chunks writing C (first) and private partials (the others).
    profiled_product(m, n, k, || match split(m, n, k) {
        Split::None => unsafe { gemm_seq((m, n, k), c, a, b, write, scale, Par::Seq) },
        Split::Faer => unsafe { gemm_seq((m, n, k), c, a, b, write, scale, Par::rayon(0)) },
        Split::Rows(parts) => {
            let block = m.div_ceil(parts);
            (0..parts).into_par_iter().with_min_len(min_len()).for_each(|i| {
                let (r0, r1) = (i * block, ((i + 1) * block).min(m));
                if r0 < r1 {
                    unsafe { gemm_seq((r1 - r0, n, k), c.at(r0, 0), a.at(r0, 0), b, write, scale, Par::Seq) }
                }
            });
        }
        Split::Reduction(parts) => {
            let block = k.div_ceil(parts);
            let area = m * n;
            let mut partial = Scratch::<T>::zeroed(area * (parts - 1));
            let pp = Strided {
                p: partial.as_mut_ptr(),
                rs: n as isize,
                cs: 1,
            };
            (0..parts).into_par_iter().with_min_len(min_len()).for_each(|i| {
                let (k0, k1) = (i * block, ((i + 1) * block).min(k));
                // the first chunk lands in C as asked, the others in their own partials
                let (dst, w) = if i == 0 {
                    (c, write)
                } else {
                    (unsafe { pp.at((i - 1) * m, 0) }, Write::Overwrite)
                };
                let shape = (m, n, k1.saturating_sub(k0));
                unsafe { gemm_seq(shape, dst, a.at(0, k0), b.at(k0, 0), w, scale, Par::Seq) }
            });
            for part in partial.chunks_exact(area) {
                for (i, src) in part.chunks_exact(n).enumerate() {
                    if c.cs == 1 {
                        // a contiguous row of C: one vectorisable pass (the same sums)
                        // SAFETY: row i of C holds n elements at unit stride, and no other
                        // reference to them is alive here
                        let row = unsafe { std::slice::from_raw_parts_mut(c.at(i, 0).p, n) };
                        row.iter_mut().zip(src).for_each(|(d, s)| *d += *s);
                    } else {
                        for (j, s) in src.iter().enumerate() {
                            // SAFETY: (i, j) is inside C's described shape
                            unsafe { *c.at(i, j).p += *s };
                        }
                    }
                }
            }
        }
    });
}

/// Largest scratch (values) a thread keeps between uses of [`Scratch`]; larger requests get a
/// buffer of their own.
const MAX_KEPT_SCRATCH: usize = 1 << 22;

/// `len` zeros in this thread's reusable buffer ([`Real::scratch`]), handed back to the thread
/// when dropped, so that a step's repeated products and kernels allocate nothing. A fresh buffer
/// when the thread's is already out further up its stack (a job stolen while waiting) or when
/// `len` exceeds `MAX_KEPT_SCRATCH` (4 M values).
pub struct Scratch<T: Real>(Vec<T>);

impl<T: Real> Scratch<T> {
    /// Takes this thread's buffer, zeroed, of `len` values.
    pub fn zeroed(len: usize) -> Scratch<T> {
        let mut buf = if len <= MAX_KEPT_SCRATCH {
            T::scratch().with(|cell| cell.take())
        } else {
            Vec::new()
        };
        buf.clear();
        buf.resize(len, T::zero());
        Scratch(buf)
    }

    /// Takes this thread's buffer of `len` values without clearing it: its contents are
    /// whatever an earlier use left (plain numbers; zeros where it grew), for a caller that
    /// overwrites every value.
    pub fn reused(len: usize) -> Scratch<T> {
        let mut buf = if len <= MAX_KEPT_SCRATCH {
            T::scratch().with(|cell| cell.take())
        } else {
            Vec::new()
        };
        buf.resize(len, T::zero());
        Scratch(buf)
    }
}

impl<T: Real> std::ops::Deref for Scratch<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T: Real> std::ops::DerefMut for Scratch<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.0
    }
}

impl<T: Real> Drop for Scratch<T> {
    fn drop(&mut self) {
        if self.0.capacity() <= MAX_KEPT_SCRATCH {
            T::scratch().with(|cell| cell.set(std::mem::take(&mut self.0)));
        }
    }
}

/// `a·b` for a matrix size; overflow is a caller bug and panics instead of wrapping (a wrapped
/// size could pass a length check and let the raw product address memory outside the slices).
fn area(a: usize, b: usize) -> usize {
    a.checked_mul(b).expect("matrix size overflows usize")
}

/// `C[m×n] (=|+=) A[m×k] · B[k×n]`, all row-major.
pub fn matmul<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T], write: Write) {
    assert!(
        a.len() >= area(m, k) && b.len() >= area(k, n) && c.len() >= area(m, n),
        "matmul: buffer too small"
    );
    // SAFETY: lengths checked above; c is a distinct &mut borrow.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            c.as_mut_ptr(),
            n as isize,
            1,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            write,
            T::one(),
        )
    }
}

/// The primal of an affine layer: `Z[m×n] = X[m×k]·W[k×n] + b` (bias added to every row).
#[allow(clippy::too_many_arguments)]
pub fn affine<T: Real>(m: usize, k: usize, n: usize, x: &[T], w: &[T], b: &[T], z: &mut [T]) {
    matmul(m, k, n, x, w, z, Write::Overwrite);
    for row in z[..area(m, n)].chunks_mut(n) {
        row.iter_mut().zip(b).for_each(|(v, bi)| *v += *bi);
    }
}

/// `acc[j] += Σ_i A[i, j]` for `A` row-major with `n` columns (bias gradients).
pub fn add_column_sums<T: Real>(n: usize, a: &[T], acc: &mut [T]) {
    for row in a.chunks(n) {
        acc.iter_mut().zip(row).for_each(|(s, x)| *s += *x);
    }
}

/// [`matmul_tn`] transposes `A` first when the product's output has at least this many entries
/// and both the reduction and the output's width are at least [`TRANSPOSE_TN_MIN_SIDE`].
/// Measured (2 Xeon cores, f32, `Aᵀ·B` with `A` and `B` of `1000 × 1024`: the parabolic
/// width-1024 layers' weight gradient): `A` read with swapped strides 192 GFLOP/s, after a copy of
/// `Aᵀ` 324 (the whole parabolic step 14.1 → 17.0 steps/s). Not for the first layer at large d
/// (100 rows, 128 wide: copying 100 × 10⁵ values made the d = 10⁵ step 25 → 22 steps/s), nor
/// for the 128 × 128 weight gradients (split-K).
const TRANSPOSE_TN_MIN_AREA: usize = 1 << 18;
/// See [`TRANSPOSE_TN_MIN_AREA`].
const TRANSPOSE_TN_MIN_SIDE: usize = 256;

thread_local! {
    /// The copy of Aᵀ of [`matmul_tn`], reused (bytes, 8-aligned through `u64`).
    static TRANSPOSED: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `len` values of `T` at the start of `buf` (grown as needed, contents unspecified).
fn scratch<T: Real>(buf: &mut Vec<u64>, len: usize) -> &mut [T] {
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    if buf.len() < words {
        buf.resize(words, 0);
    }
    debug_assert!(std::mem::align_of::<T>() <= 8);
    // SAFETY: the buffer holds at least `len` values of T (f32 or f64: any bit pattern is a valid
    // value, alignment ≤ 8) and is borrowed mutably for the slice's lifetime.
    unsafe { std::slice::from_raw_parts_mut(buf.as_mut_ptr() as *mut T, len) }
}

/// `out[k×m] = Aᵀ` for `A[m×k]` row-major: bands of 16 rows of `out` in parallel, each moved
/// through a 16 × 16 tile in cache (rows of `A` read and rows of `out` written contiguously).
fn transpose<T: Real>(m: usize, k: usize, a: &[T], out: &mut [T]) {
    const TILE: usize = 16;
    out[..area(k, m)]
        .par_chunks_mut(TILE * m)
        .enumerate()
        .with_min_len(min_len())
        .for_each(|(tj, band)| {
            let j0 = tj * TILE;
            let jn = band.len() / m;
            let mut tile = [[T::zero(); TILE]; TILE];
            for i0 in (0..m).step_by(TILE) {
                let in_ = TILE.min(m - i0);
                for (i, t) in tile.iter_mut().enumerate().take(in_) {
                    let row = (i0 + i) * k + j0;
                    t[..jn].copy_from_slice(&a[row..row + jn]);
                }
                for j in 0..jn {
                    let dst = &mut band[j * m + i0..j * m + i0 + in_];
                    for (i, o) in dst.iter_mut().enumerate() {
                        *o = tile[i][j];
                    }
                }
            }
        });
}

/// `C[k×n] (=|+=) Aᵀ · B` with `A[m×k]`, `B[m×n]` row-major (weight gradients).
pub fn matmul_tn<T: Real>(m: usize, k: usize, n: usize, a: &[T], b: &[T], c: &mut [T], write: Write) {
    assert!(
        a.len() >= area(m, k) && b.len() >= area(m, n) && c.len() >= area(k, n),
        "matmul_tn: buffer too small"
    );
    if area(k, n) >= TRANSPOSE_TN_MIN_AREA && m >= TRANSPOSE_TN_MIN_SIDE && n >= TRANSPOSE_TN_MIN_SIDE {
        // read with swapped strides, A is the product's column-strided operand, which runs at
        // half the rate; a copy of Aᵀ makes it an ordinary row-major product
        TRANSPOSED.with(|t| {
            let mut t = t.borrow_mut();
            let at = scratch::<T>(&mut t, area(k, m));
            transpose(m, k, &a[..area(m, k)], at);
            matmul(k, m, n, at, b, c, write);
        });
        return;
    }
    // SAFETY: lengths checked above; Aᵀ is A read with swapped strides.
    unsafe {
        gemm_raw(
            k,
            n,
            m,
            c.as_mut_ptr(),
            n as isize,
            1,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            n as isize,
            1,
            write,
            T::one(),
        )
    }
}

/// Rows `rows` of [`matmul_tn`]'s product, overwritten on the calling thread:
/// `C[rows.len() × n] = (Aᵀ·B)[rows]` with `A[m×k]`, `B[m×n]` row-major. Each entry is the same
/// arithmetic as in [`matmul_tn`] (a test checks the bits on both of its routes), so a caller can
/// build a large weight gradient a cache-sized block at a time.
pub fn matmul_tn_rows<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    rows: std::ops::Range<usize>,
    b: &[T],
    c: &mut [T],
) {
    let len = rows.end.saturating_sub(rows.start);
    assert!(
        rows.end <= k && a.len() >= area(m, k) && b.len() >= area(m, n) && c.len() >= area(len, n),
        "matmul_tn_rows: buffer too small"
    );
    if len == 0 || n == 0 {
        return;
    }
    let (c, a, b) = (
        Strided {
            p: c.as_mut_ptr(),
            rs: n as isize,
            cs: 1,
        },
        Strided {
            p: a.as_ptr(),
            rs: 1,
            cs: k as isize,
        },
        Strided {
            p: b.as_ptr(),
            rs: n as isize,
            cs: 1,
        },
    );
    // SAFETY: lengths checked above; row `rows.start` of Aᵀ is column `rows.start < k` of A.
    let a = unsafe { a.at(rows.start, 0) };
    profiled_product(len, n, m, || unsafe {
        gemm_seq((len, n, m), c, a, b, Write::Overwrite, T::one(), Par::Seq)
    });
}

/// `C[m×k] (=|+=) A · Bᵀ` with `A[m×n]`, `B[k×n]` row-major (input cotangents).
pub fn matmul_nt<T: Real>(m: usize, n: usize, k: usize, a: &[T], b: &[T], c: &mut [T], write: Write) {
    assert!(
        a.len() >= area(m, n) && b.len() >= area(k, n) && c.len() >= area(m, k),
        "matmul_nt: buffer too small"
    );
    // SAFETY: lengths checked above; Bᵀ is B read with swapped strides.
    unsafe {
        gemm_raw(
            m,
            k,
            n,
            c.as_mut_ptr(),
            k as isize,
            1,
            a.as_ptr(),
            n as isize,
            1,
            b.as_ptr(),
            1,
            n as isize,
            write,
            T::one(),
        )
    }
}

/// `C (=|+=) scale · A[m×k] · B[k×n]` where row `i` of `C` starts at `c[i·c_row_stride]`
/// (writes into every `S`-th row of a stacked tangent buffer).
#[allow(clippy::too_many_arguments)]
pub fn matmul_strided<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    c: &mut [T],
    c_row_stride: usize,
    scale: T,
    write: Write,
) {
    assert!(
        a.len() >= area(m, k) && b.len() >= area(k, n) && c_row_stride >= n,
        "matmul_strided: bad shape"
    );
    assert!(
        m == 0
            || c.len()
                >= area(m - 1, c_row_stride)
                    .checked_add(n)
                    .expect("matrix size overflows usize"),
        "matmul_strided: buffer too small"
    );
    // SAFETY: shapes checked above.
    unsafe {
        gemm_raw(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_row_stride as isize,
            1,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            write,
            scale,
        )
    }
}

/// `C[k×n] (=|+=) scale · Aᵀ·B` with `A[m×k]` row-major and row `i` of `B` at `b[i·b_row_stride]`.
#[allow(clippy::too_many_arguments)]
pub fn matmul_tn_strided<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: &[T],
    b: &[T],
    b_row_stride: usize,
    c: &mut [T],
    scale: T,
    write: Write,
) {
    assert!(
        a.len() >= area(m, k) && c.len() >= area(k, n) && b_row_stride >= n,
        "matmul_tn_strided: bad shape"
    );
    assert!(
        m == 0
            || b.len()
                >= area(m - 1, b_row_stride)
                    .checked_add(n)
                    .expect("matrix size overflows usize"),
        "matmul_tn_strided: buffer too small"
    );
    // SAFETY: shapes checked above.
    unsafe {
        gemm_raw(
            k,
            n,
            m,
            c.as_mut_ptr(),
            n as isize,
            1,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_row_stride as isize,
            1,
            write,
            scale,
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    #[should_panic(expected = "overflows")]
    fn overflowing_sizes_panic_instead_of_wrapping() {
        // m·k wraps to 0 in release arithmetic; the check must not pass with empty buffers
        let m = usize::MAX / 2 + 1;
        super::matmul::<f64>(m, 2, 1, &[], &[], &mut [], super::Write::Overwrite);
    }

    use super::*;

    fn naive(m: usize, k: usize, n: usize, a: &[f64], b: &[f64]) -> Vec<f64> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    c[i * n + j] += a[i * k + l] * b[l * n + j];
                }
            }
        }
        c
    }

    fn transpose(r: usize, c: usize, a: &[f64]) -> Vec<f64> {
        let mut t = vec![0.0; r * c];
        for i in 0..r {
            for j in 0..c {
                t[j * r + i] = a[i * c + j];
            }
        }
        t
    }

    /// Inside an exclusive `inline_scope` a product is not split (neither over threads nor
    /// along its reduction) and row loops take one job; inside a shared one only the reduction
    /// split is gone; scopes nest and restore; a product split by rows outside has the same bits
    /// inside.
    #[test]
    fn inline_scope_keeps_work_on_this_thread_with_the_same_bits() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        pool.install(|| {
            let (m, k, n) = (900, 128, 128);
            assert!(matches!(split(m, n, k), Split::Rows(2)));
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let (mut split_c, mut inline_c) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
            matmul(m, k, n, &a, &b, &mut split_c, Write::Overwrite);
            assert_eq!(min_len(), 1);
            assert!(matches!(split(4, 4, 1 << 16), Split::Reduction(_)));
            inline_scope(true, || {
                assert!(matches!(split(m, n, k), Split::None));
                assert!(matches!(split(4, 4, 1 << 16), Split::None));
                assert_eq!(min_len(), usize::MAX);
                inline_scope(false, || {
                    // shared threads: rows may still be split, the reduction may not
                    assert!(matches!(split(m, n, k), Split::Rows(2)));
                    assert!(matches!(split(4, 4, 1 << 16), Split::Faer));
                    assert_eq!(min_len(), 1);
                });
                assert_eq!(min_len(), usize::MAX, "the inner scope must restore, not clear");
                matmul(m, k, n, &a, &b, &mut inline_c, Write::Overwrite);
            });
            assert_eq!(min_len(), 1);
            assert!(split_c.iter().zip(&inline_c).all(|(x, y)| x.to_bits() == y.to_bits()));
        });
    }

    #[test]
    fn products_match_naive_loops() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
        let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
        let want = naive(m, k, n, &a, &b);
        let mut c = vec![1.0; m * n];
        matmul(m, k, n, &a, &b, &mut c, Write::Overwrite);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-13));
        matmul(m, k, n, &a, &b, &mut c, Write::Accumulate);
        assert!(c.iter().zip(&want).all(|(x, y)| (x - 2.0 * y).abs() < 1e-13));

        // Aᵀ·B with A stored [k×m]
        let at = transpose(m, k, &a);
        let mut c2 = vec![0.0; m * n];
        matmul_tn(k, m, n, &at, &b, &mut c2, Write::Overwrite);
        assert!(c2.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-13));

        // A·Bᵀ with B stored [n×k]
        let bt = transpose(k, n, &b);
        let mut c3 = vec![0.0; m * n];
        matmul_nt(m, k, n, &a, &bt, &mut c3, Write::Overwrite);
        assert!(c3.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-13));
    }

    /// Row blocks of `Aᵀ·B` computed one at a time ([`matmul_tn_rows`]) are the rows of the whole
    /// product ([`matmul_tn`]) bit for bit, on the first layer's shape at large d (100 points,
    /// 128 wide) and on two threads; and within rounding of naive loops.
    #[test]
    fn row_blocks_of_a_weight_gradient_are_the_whole_products_rows() {
        // 100 points: A read with swapped strides; 300: matmul_tn copies Aᵀ first
        for m in [100, 300] {
            let (k, n) = (5000, 128);
            let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..m * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let mut whole = vec![0.0f32; k * n];
            let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
            pool.install(|| matmul_tn(m, k, n, &a, &b, &mut whole, Write::Overwrite));
            for rows in [0..512, 512..1024, 300..777, 4999..5000, 4096..5000] {
                let mut block = vec![f32::NAN; rows.len() * n];
                matmul_tn_rows(m, k, n, &a, rows.clone(), &b, &mut block);
                let want = &whole[rows.start * n..rows.end * n];
                assert!(
                    block.iter().zip(want).all(|(x, y)| x.to_bits() == y.to_bits()),
                    "m = {m}: rows {rows:?} differ from the whole product's"
                );
            }
            // the whole product itself against naive loops in f64
            for (i, j) in [(0, 0), (4999, 127), (2500, 64)] {
                let naive: f64 = (0..m).map(|p| a[p * k + i] as f64 * b[p * n + j] as f64).sum();
                assert!((whole[i * n + j] as f64 - naive).abs() < 1e-4 * (1.0 + naive.abs()));
            }
        }
    }

    /// Each way of spreading a product over threads (row blocks, split-K, faer's own, the copied
    /// Aᵀ of a wide weight gradient) gives the naive product, and the same bits on 1, 2 and 3
    /// threads.
    #[test]
    fn split_products_match_naive_loops_on_any_thread_count() {
        // (m, k, n): row blocks; split-K (small destination, long reduction, odd k); faer's own;
        // a wide weight gradient whose Aᵀ is copied first (sides not multiples of the tile)
        let shapes = [(301, 70, 60), (40, 1800 + 7, 30), (20, 90, 700), (520, 300, 513)];
        assert!(matches!(split(30, 40, 1807), Split::Reduction(4)));
        const { assert!(520 * 513 >= TRANSPOSE_TN_MIN_AREA && 300 >= TRANSPOSE_TN_MIN_SIDE && 513 >= TRANSPOSE_TN_MIN_SIDE) };
        for (m, k, n) in shapes {
            let a: Vec<f64> = (0..m * k).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..k * n).map(|i| (i as f64 * 0.11).cos()).collect();
            let want = naive(m, k, n, &a, &b);
            let mut first: Option<Vec<f64>> = None;
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let (c, c_acc, tn) = pool.install(|| {
                    let mut c = vec![9.0; m * n];
                    matmul(m, k, n, &a, &b, &mut c, Write::Overwrite);
                    let mut c_acc = vec![1.0; m * n];
                    matmul(m, k, n, &a, &b, &mut c_acc, Write::Accumulate);
                    // Aᵀ·B with A stored [k×m]
                    let at = transpose(m, k, &a);
                    let mut tn = vec![0.0; m * n];
                    matmul_tn(k, m, n, &at, &b, &mut tn, Write::Overwrite);
                    (c, c_acc, tn)
                });
                let tol = 1e-12 * k as f64;
                for i in 0..m * n {
                    assert!(
                        (c[i] - want[i]).abs() < tol,
                        "{m}×{k}×{n} on {threads}: {} vs {}",
                        c[i],
                        want[i]
                    );
                    assert!((c_acc[i] - 1.0 - want[i]).abs() < tol);
                    assert!((tn[i] - want[i]).abs() < tol);
                }
                let all: Vec<f64> = c.iter().chain(&c_acc).chain(&tn).copied().collect();
                match &first {
                    None => first = Some(all),
                    Some(f) => assert!(
                        f.iter().zip(&all).all(|(x, y)| x.to_bits() == y.to_bits()),
                        "{m}×{k}×{n}: {threads} threads differ from one"
                    ),
                }
            }
        }
    }
}
