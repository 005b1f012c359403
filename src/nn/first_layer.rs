//! The first layer consumes structured input tangents: one-hot and sparse tangents become row
//! gathers of the weight matrix (`O(width)` per non-zero, independent of `d`), dense ones a GEMM.
//! With first-layer weight sharing the block features stay sparse until the next affine layer.

use crate::jet::rules::{Unary, unary_backward, unary_forward};
use crate::jet::{InputJets, Jet, MAX_ORDER, Support, Tangent};
use crate::real::{Real, Slice, SliceMut};
use crate::tensor::{self, Write};
use rayon::prelude::*;

/// `z = x·W + b` for input jets (`W` is `[d × out]`): the primal by GEMM, tangents by gathers.
pub fn input_affine_forward<T: Real>(input: &InputJets<T>, weight: &[T], bias: &[T], out: usize, z: &mut Jet<T>) {
    let d = input.dim();
    z.reshape(input.order(), input.points(), input.dirs(), out, input.support());
    tensor::affine(input.points(), d, out, input.primal(), weight, bias, &mut z.primal);
    input_tangent_forward(input, weight, out, &mut z.tangents);
}

/// The tangent part of the first affine layer, `z_k = a_k·W` for every present order: a row
/// gather of `W` per non-zero for one-hot and sparse tangents (cost independent of `d`), a GEMM
/// for dense ones. `tangents` is the `[rows × S × out]` buffer of the output jet.
pub fn input_tangent_forward<T: Real>(input: &InputJets<T>, weight: &[T], out: usize, tangents: &mut [T]) {
    let (d, sup) = (input.dim(), input.support());
    let ns = sup.count();
    if ns == 0 {
        return;
    }
    let dirs = input.dirs();
    for (s, k) in sup.orders().enumerate() {
        let scale = T::one() / T::c(crate::real::factorial(k));
        match input.slot(k) {
            Tangent::Dense(v) => tensor::matmul_strided(
                input.rows(),
                d,
                out,
                v,
                weight,
                &mut tangents[s * out..],
                ns * out,
                scale,
                Write::Overwrite,
            ),
            Tangent::Shared(v) => {
                // one product per direction, copied to every point's row of that direction
                let mut per_dir = vec![T::zero(); dirs * out];
                tensor::matmul_strided(dirs, d, out, v, weight, &mut per_dir, out, scale, Write::Overwrite);
                for r in 0..input.rows() {
                    let dir = r % dirs;
                    tangents[(r * ns + s) * out..(r * ns + s + 1) * out]
                        .copy_from_slice(&per_dir[dir * out..(dir + 1) * out]);
                }
            }
            _ => {}
        }
    }
    // (slot position, order) of the sparse slots, on the stack
    let mut sparse = [(0usize, 0usize); MAX_ORDER];
    let mut count = 0;
    for (s, k) in sup.orders().enumerate() {
        if !matches!(input.slot(k), Tangent::Dense(_) | Tangent::Shared(_)) {
            sparse[count] = (s, k);
            count += 1;
        }
    }
    let orders = &sparse[..count];
    if orders.is_empty() {
        return;
    }
    tangents
        .par_chunks_mut(ns * out)
        .enumerate()
        .with_min_len(tensor::min_len())
        .for_each(|(r, zr)| {
            for &(s, k) in orders {
                let dst = &mut zr[s * out..(s + 1) * out];
                dst.iter_mut().for_each(|x| *x = T::zero());
                input.for_each_entry(k, r, |i, a| {
                    dst.iter_mut()
                        .zip(&weight[i * out..(i + 1) * out])
                        .for_each(|(x, w)| *x += a * *w);
                });
            }
        });
}

/// Backward of [`input_affine_forward`]: `W̄ += xᵀz̄_0 + Σ scatter`, `b̄ += Σ z̄_0`, optional `x̄ = z̄_0 Wᵀ`.
pub fn input_affine_backward<T: Real>(
    input: &InputJets<T>,
    zbar: &Jet<T>,
    weight: &[T],
    weight_grad: &mut [T],
    bias_grad: &mut [T],
    xbar: Option<&mut [T]>,
) {
    let cotangent = JetRows {
        width: zbar.width,
        support: zbar.support,
        primal: &zbar.primal,
        tangents: &zbar.tangents,
    };
    let weight_grad = Some((weight_grad, Write::Accumulate));
    input_affine_backward_rows(input, cotangent, weight, weight_grad, bias_grad, xbar);
}

/// A jet cotangent's rows, borrowed (e.g. from a collapsed jet's buffer without a copy).
#[derive(Clone, Copy, Debug)]
pub struct JetRows<'a, T> {
    /// Features per row.
    pub width: usize,
    /// The orders the tangent rows carry.
    pub support: Support,
    /// Primal rows, `[points × width]`.
    pub primal: &'a [T],
    /// Tangent rows, `[rows × support.count() × width]`.
    pub tangents: &'a [T],
}

/// [`input_affine_backward`] on borrowed cotangent rows. `weight_grad`: where `W̄` goes and
/// whether it is added to what is there (`Write::Accumulate`) or replaces it (`Overwrite`: the
/// caller did not zero it); `None` leaves `W̄` to the caller ([`OneHotWeightGrad`]).
pub fn input_affine_backward_rows<T: Real>(
    input: &InputJets<T>,
    zbar: JetRows<'_, T>,
    weight: &[T],
    weight_grad: Option<(&mut [T], Write)>,
    bias_grad: &mut [T],
    xbar: Option<&mut [T]>,
) {
    let (d, out) = (input.dim(), zbar.width);
    tensor::add_column_sums(out, zbar.primal, bias_grad);
    if let Some((weight_grad, write)) = weight_grad {
        input_weight_grad(input, zbar, weight_grad, write);
    }
    if let Some(xbar) = xbar {
        tensor::matmul_nt(input.points(), out, d, zbar.primal, weight, xbar, Write::Accumulate);
    }
}

/// `W̄ (=|+=) xᵀz̄_0 + Σ_k Σ_rows` of the input tangents' parts (products or scatters).
fn input_weight_grad<T: Real>(input: &InputJets<T>, zbar: JetRows<'_, T>, weight_grad: &mut [T], write: Write) {
    let (d, out) = (input.dim(), zbar.width);
    let sup = zbar.support;
    let ns = sup.count();
    tensor::matmul_tn(input.points(), d, out, input.primal(), zbar.primal, weight_grad, write);
    for (s, k) in sup.orders().enumerate() {
        let scale = T::one() / T::c(crate::real::factorial(k));
        if let Tangent::Dense(v) = input.slot(k) {
            tensor::matmul_tn_strided(
                input.rows(),
                d,
                out,
                v,
                &zbar.tangents[s * out..],
                ns * out,
                weight_grad,
                scale,
                Write::Accumulate,
            );
        } else if let Tangent::Shared(v) = input.slot(k) {
            // sum each direction's cotangent over points, then one product per direction
            let dirs = input.dirs();
            let mut per_dir = vec![T::zero(); dirs * out];
            for r in 0..input.rows() {
                let src = &zbar.tangents[(r * ns + s) * out..(r * ns + s + 1) * out];
                per_dir[(r % dirs) * out..(r % dirs + 1) * out]
                    .iter_mut()
                    .zip(src)
                    .for_each(|(a, b)| *a += *b);
            }
            tensor::matmul_tn_strided(dirs, d, out, v, &per_dir, out, weight_grad, scale, Write::Accumulate);
        } else {
            for r in 0..input.rows() {
                let src = &zbar.tangents[(r * ns + s) * out..(r * ns + s + 1) * out];
                input.for_each_entry(k, r, |i, a| {
                    weight_grad[i * out..(i + 1) * out]
                        .iter_mut()
                        .zip(src)
                        .for_each(|(g, x)| *g += a * *x);
                });
            }
        }
    }
}

/// The first layer's weight gradient `W̄ = xᵀz̄₀ + Σ_r e_{i_r} z̄₁,ᵣᵀ` of inputs whose first-order
/// tangents are one-hot (row `r` along coordinate `i_r`), built a block of rows at a time: each
/// block has the bits [`input_affine_backward_rows`] leaves in a zeroed gradient, and the whole
/// `[d × width]` matrix never exists, so an optimiser can use a block while it is in cache
/// (`train::optim::Adam::update_streamed`).
#[derive(Clone, Copy, Debug)]
pub struct OneHotWeightGrad<'a, T> {
    x: &'a [T],
    points: usize,
    dim: usize,
    zbar: JetRows<'a, T>,
    /// `(coordinate, row)` of every one-hot row, sorted: a coordinate's rows in row order.
    entries: &'a [(usize, usize)],
}

impl<'a, T: Real> OneHotWeightGrad<'a, T> {
    /// The gradient of inputs `x` (`[points × dim]`) with one-hot rows `coords` under the
    /// cotangent `zbar` (primal and first order only); `entries` is scratch, kept for reuse.
    /// `None` if the shapes disagree.
    pub fn new(
        x: &'a [T],
        dim: usize,
        coords: &[usize],
        zbar: JetRows<'a, T>,
        entries: &'a mut Vec<(usize, usize)>,
    ) -> Option<Self> {
        let out = zbar.width;
        let points = x.len() / dim.max(1);
        let fits = dim > 0
            && x.len() == points * dim
            && zbar.support == Support::from_orders(&[1])
            && zbar.primal.len() == points * out
            && zbar.tangents.len() == coords.len() * out
            && coords.iter().all(|&i| i < dim);
        if !fits {
            return None;
        }
        entries.clear();
        entries.extend(coords.iter().enumerate().map(|(r, &i)| (i, r)));
        entries.sort_unstable();
        Some(OneHotWeightGrad {
            x,
            points,
            dim,
            zbar,
            entries,
        })
    }

    /// Rows of `W̄` (the input dimension).
    pub fn rows(&self) -> usize {
        self.dim
    }

    /// Columns of `W̄` (the layer's width).
    pub fn width(&self) -> usize {
        self.zbar.width
    }

    /// Entries `range` of `W̄` read row-major (`range.len()` values into `dst`), on this thread:
    /// the whole rows they touch are made, and copied out where `range` cuts a row.
    pub fn entries_into(&self, range: std::ops::Range<usize>, dst: &mut [T]) {
        let width = self.zbar.width;
        let rows = range.start / width..range.end.div_ceil(width);
        if range.start.is_multiple_of(width) && range.end.is_multiple_of(width) {
            self.block_into(rows, dst);
        } else {
            let mut block = tensor::Scratch::<T>::reused(rows.len() * width);
            self.block_into(rows.clone(), &mut block);
            let from = range.start - rows.start * width;
            dst.copy_from_slice(&block[from..from + range.len()]);
        }
    }

    /// Rows `rows` of `W̄` into `dst` (`[rows.len() × width]`, overwritten), on this thread.
    pub fn block_into(&self, rows: std::ops::Range<usize>, dst: &mut [T]) {
        let out = self.zbar.width;
        let (x, z0) = (self.x, self.zbar.primal);
        tensor::matmul_tn_rows(self.points, self.dim, out, x, rows.clone(), z0, dst);
        // the one-hot rows of these coordinates, each coordinate's in row order as the scatter
        // of `input_affine_backward_rows` adds them (its `a = 1/1!` multiplies exactly)
        let first = self.entries.partition_point(|&(i, _)| i < rows.start);
        for &(i, r) in self.entries[first..].iter().take_while(|&&(i, _)| i < rows.end) {
            let src = &self.zbar.tangents[r * out..(r + 1) * out];
            let o = (i - rows.start) * out;
            dst[o..o + out].iter_mut().zip(src).for_each(|(g, x)| *g += *x);
        }
    }
}

/// What the weight-shared first stage keeps for its backward pass.
///
/// Stage: `φ_b = act(w·x_[block b] + β)` for every block, then `z = φ·W + b`. Each row's tangents
/// touch only the blocks its input tangents touch, so they are kept as a sparse list of entries.
#[derive(Clone, Debug, Default)]
pub struct SharedTape<T> {
    blocks: usize,
    /// Block pre-activation primal `[points × blocks]`.
    pre0: Vec<T>,
    /// Block activation primal `[points × blocks]`.
    phi0: Vec<T>,
    /// `φ'(pre0)`, `[points × blocks]`.
    g0: Vec<T>,
    /// Entries of row `r` are `row_ptr[r]..row_ptr[r+1]`.
    row_ptr: Vec<usize>,
    /// Block of each entry.
    block: Vec<usize>,
    /// Per entry, coefficients `0..=K` of the pre-activation (normalised; index 0 unused).
    u: Vec<T>,
    /// Per entry, coefficients of the activation.
    y: Vec<T>,
    /// Per entry, coefficients of `φ'(pre)`.
    g: Vec<T>,
    /// Scratch: entry of each block in the current row (`usize::MAX` if none).
    position: Vec<usize>,
    in_support: Support,
    out_support: Support,
}

/// Parameters of the shared stage, borrowed from the flat parameter vector.
pub struct SharedParams<'a, T> {
    /// Shared block weight, `[B]`.
    pub w: &'a [T],
    /// Shared block bias.
    pub beta: T,
    /// Next affine layer weight `[blocks × out]`.
    pub weight: &'a [T],
    /// Next affine layer bias `[out]`.
    pub bias: &'a [T],
}

/// Gradients of the shared stage, borrowed from the flat gradient vector.
pub struct SharedGrads<'a, T> {
    /// `∂L/∂w`.
    pub w: &'a mut [T],
    /// `∂L/∂β`.
    pub beta: &'a mut T,
    /// `∂L/∂W`.
    pub weight: &'a mut [T],
    /// `∂L/∂b`.
    pub bias: &'a mut [T],
}

/// `Σ a_i b_i` with sixteen independent accumulators added pairwise (no serial chain of
/// additions; the order differs from a sequential sum only by rounding).
#[inline(always)]
fn dot16<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::zero(); 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let mut tail = T::zero();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += *x * *y;
    }
    for (x, y) in ca.zip(cb) {
        let (x, y): (&[T; 16], &[T; 16]) = (x.try_into().unwrap(), y.try_into().unwrap());
        for j in 0..16 {
            acc[j] += x[j] * y[j];
        }
    }
    // through memory once: otherwise LLVM splits the sixteen lanes into eight pairs to match the
    // pairwise sum below, and the loop above runs on two-lane vectors (the block sums of a
    // point took 1.7× longer: `cargo bench --bench step_parts -- block_sums`)
    let mut acc = std::hint::black_box(acc);
    crate::real::pairwise_sum16(&mut acc) + tail
}

/// [`block_pre_activation`]'s body (inlined into its widest build).
#[inline(always)]
fn block_pre_activation_lanes<T: Real>(x: &[T], w: &[T], beta: T, pre: &mut [T]) {
    for (p, xb) in pre.iter_mut().zip(x.chunks_exact(w.len())) {
        *p = beta + dot16(xb, w);
    }
}

crate::widest_fn! {
    /// [`block_pre_activation_lanes`] in the widest vector registers this CPU has (the same bits).
    fn block_pre_activation_widest<T: Real>(x: &[T], w: &[T], beta: T, pre: &mut [T]) -> () = block_pre_activation_lanes
}

/// The primal pre-activations `pre[b] = β + w·x_[block b]` of one point `x` (blocks of
/// `w.len()` coordinates) of the weight-shared first stage: each block's dot product in sixteen
/// lanes added pairwise ([`dot16`]'s order; the same bits on every path). In f32 on x86-64 by
/// [`block_pre_activation_f32_x86`] (its fold in registers: `cargo bench --bench step_parts --
/// block_sums`, one EPYC core, 9.7 → 6.2 µs for 10⁵ coordinates), else generic.
pub fn block_pre_activation<T: Real>(x: &[T], w: &[T], beta: T, pre: &mut [T]) {
    #[cfg(target_arch = "x86_64")]
    if let (Slice::F32(x), Slice::F32(w), SliceMut::F32(pre)) = (T::view(x), T::view(w), T::view_mut(pre))
        && std::arch::is_x86_feature_detected!("avx2")
    {
        let beta = beta.as_f64() as f32;
        // SAFETY: the CPU has AVX2 (checked above)
        unsafe { block_pre_activation_f32_x86(x, w, beta, pre) };
        return;
    }
    block_pre_activation_widest(x, w, beta, pre)
}

/// [`block_pre_activation`] in f32 with AVX2: per block the sixteen lanes of [`dot16`] as two
/// eight-lane registers (`lo` = lanes 0–7, `hi` = 8–15), products and sums unfused as there, and
/// [`crate::real::pairwise_sum16`]'s fold done in registers (`lo + hi`, then the 128-, 64- and
/// 32-bit halves), then the remainder's sequential sum and `β` added as there: the same bits.
/// (The generic code's fold goes through memory: LLVM otherwise reshapes its sixteen lanes,
/// see [`dot16`]. Sixteen lanes in one AVX-512 register instead of two: 3 % faster, not kept.)
///
/// # Safety
/// The CPU must have AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn block_pre_activation_f32_x86(x: &[f32], w: &[f32], beta: f32, pre: &mut [f32]) {
    use std::arch::x86_64::*;
    let b = w.len();
    let full = b - b % 16;
    assert!(x.len() >= pre.len() * b, "block sums: point shorter than its blocks");
    // one block's sum; `xb` holds at least `b` values
    #[inline(always)]
    unsafe fn block(xb: *const f32, w: &[f32], full: usize, beta: f32) -> f32 {
        // SAFETY (whole body): `xb` and `w` hold `w.len() ≥ full` values, every load lies below
        unsafe {
            let mut tail = 0.0f32;
            for (j, &wj) in w.iter().enumerate().skip(full) {
                tail += *xb.add(j) * wj;
            }
            let (mut lo, mut hi) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let wp = w.as_ptr();
            let mut c = 0;
            while c < full {
                lo = _mm256_add_ps(
                    lo,
                    _mm256_mul_ps(_mm256_loadu_ps(xb.add(c)), _mm256_loadu_ps(wp.add(c))),
                );
                hi = _mm256_add_ps(
                    hi,
                    _mm256_mul_ps(_mm256_loadu_ps(xb.add(c + 8)), _mm256_loadu_ps(wp.add(c + 8))),
                );
                c += 16;
            }
            let s8 = _mm256_add_ps(lo, hi);
            let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
            let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
            let s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
            beta + (_mm_cvtss_f32(s1) + tail)
        }
    }
    let xp = x.as_ptr();
    for (k, p) in pre.iter_mut().enumerate() {
        // SAFETY: block k lies within `x` (asserted above)
        *p = unsafe { block(xp.add(k * b), w, full, beta) };
    }
}

/// `φ(pre)` and `φ'(pre)` of a row: tanh through the vectorised [`Real::tanh_slice`]
/// (`φ' = 1 − φ²`), other activations through the rule table.
fn activate_row<T: Real>(act: Unary, pre: &[T], phi: &mut [T], g: &mut [T]) {
    if act == Unary::Tanh {
        T::tanh_slice(pre, phi);
        g.iter_mut().zip(phi.iter()).for_each(|(g, &y)| *g = T::one() - y * y);
    } else {
        for ((&v, y), g) in pre.iter().zip(phi.iter_mut()).zip(g.iter_mut()) {
            (*y, *g) = act.primal(v);
        }
    }
}

fn collect_entries<T: Real>(input: &InputJets<T>, w: &[T], tape: &mut SharedTape<T>) {
    let (b_size, k_max) = (w.len(), input.order());
    let stride = k_max + 1;
    tape.row_ptr.clear();
    tape.block.clear();
    tape.u.clear();
    tape.position.clear();
    tape.position.resize(tape.blocks, usize::MAX);
    tape.row_ptr.push(0);
    for r in 0..input.rows() {
        let start = tape.block.len();
        for k in input.support().orders() {
            input.for_each_entry(k, r, |i, a| {
                let b = i / b_size;
                let e = match tape.position[b] {
                    usize::MAX => {
                        tape.position[b] = tape.block.len();
                        tape.block.push(b);
                        tape.u.resize(tape.u.len() + stride, T::zero());
                        tape.block.len() - 1
                    }
                    e => e,
                };
                tape.u[e * stride + k] += a * w[i % b_size];
            });
        }
        for &b in &tape.block[start..] {
            tape.position[b] = usize::MAX;
        }
        tape.row_ptr.push(tape.block.len());
    }
}

/// Forward pass of the weight-shared first stage into the pre-activation `z` of the first hidden layer.
pub fn shared_forward<T: Real>(
    input: &InputJets<T>,
    act: Unary,
    p: &SharedParams<T>,
    out: usize,
    tape: &mut SharedTape<T>,
    z: &mut Jet<T>,
) {
    let (d, b_size, k_max) = (input.dim(), p.w.len(), input.order());
    let blocks = d / b_size;
    let points = input.points();
    tape.blocks = blocks;
    tape.pre0.resize(points * blocks, T::zero());
    tape.phi0.resize(points * blocks, T::zero());
    tape.g0.resize(points * blocks, T::zero());
    // the block sums computed where the points were drawn, if they are this stage's
    let drawn = input
        .block_sums()
        .filter(|s| s.w == p.w && s.beta == p.beta && s.values.len() == points * blocks);
    tape.pre0
        .par_chunks_mut(blocks)
        .zip(tape.phi0.par_chunks_mut(blocks))
        .zip(tape.g0.par_chunks_mut(blocks))
        .enumerate()
        .for_each(|(pt, ((pre, phi), g))| {
            match drawn {
                Some(s) => pre.copy_from_slice(&s.values[pt * blocks..(pt + 1) * blocks]),
                None => block_pre_activation(&input.primal()[pt * d..(pt + 1) * d], p.w, p.beta, pre),
            }
            activate_row(act, pre, phi, g);
        });
    collect_entries(input, p.w, tape);
    let in_sup = input.support();
    let out_sup = in_sup.closure(k_max);
    tape.in_support = in_sup;
    tape.out_support = out_sup;
    let stride = k_max + 1;
    let nnz = tape.block.len();
    tape.y.clear();
    tape.y.resize(nnz * stride, T::zero());
    tape.g.clear();
    tape.g.resize(nnz * stride, T::zero());
    let dirs = input.dirs();
    for r in 0..input.rows() {
        let pt = r / dirs;
        for e in tape.row_ptr[r]..tape.row_ptr[r + 1] {
            let b = tape.block[e];
            let i0 = pt * blocks + b;
            let u = &mut tape.u[e * stride..(e + 1) * stride];
            u[0] = tape.pre0[i0];
            unary_forward(
                act,
                u,
                in_sup,
                Some((tape.phi0[i0], tape.g0[i0])),
                &mut tape.y[e * stride..(e + 1) * stride],
                &mut tape.g[e * stride..(e + 1) * stride],
            );
        }
    }
    z.reset(k_max, points, dirs, out, out_sup);
    tensor::affine(points, blocks, out, &tape.phi0, p.weight, p.bias, &mut z.primal);
    let ns = out_sup.count();
    if ns == 0 {
        return;
    }
    let orders: Vec<(usize, usize)> = out_sup.orders().enumerate().collect();
    let tape_ref = &*tape;
    z.tangents
        .par_chunks_mut(ns * out)
        .enumerate()
        .with_min_len(tensor::min_len())
        .for_each(|(r, zr)| {
            for e in tape_ref.row_ptr[r]..tape_ref.row_ptr[r + 1] {
                let wrow = &p.weight[tape_ref.block[e] * out..(tape_ref.block[e] + 1) * out];
                for &(s, k) in &orders {
                    let a = tape_ref.y[e * stride + k];
                    zr[s * out..(s + 1) * out]
                        .iter_mut()
                        .zip(wrow)
                        .for_each(|(x, w)| *x += a * *w);
                }
            }
        });
}

/// The primal part of the shared block map's gradient: `w̄ += Σ_points Σ_blocks ā_b x_[block b]`
/// and `β̄ += Σ ā_b`, from the block sums' cotangents `abar` (`[points × blocks]`) and the points
/// `x` (`[points × d]`, blocks of `w̄.len()` coordinates). Parallel over fixed chunks of points
/// whose partial sums are added in chunk order (the same sums on any thread count). At large d
/// one read of the whole batch, the step's one pass over memory after the draw.
pub fn shared_weight_grad<T: Real>(abar: &[T], x: &[T], d: usize, w_bar: &mut [T], beta_bar: &mut T) {
    const POINTS_PER_CHUNK: usize = 4;
    let (b_size, blocks) = (w_bar.len(), d / w_bar.len().max(1));
    let partials: Vec<(Vec<T>, T)> = abar
        .par_chunks(POINTS_PER_CHUNK * blocks)
        .zip(x.par_chunks(POINTS_PER_CHUNK * d))
        .map(|(abar, x)| {
            let (mut gw, mut gb) = (vec![T::zero(); b_size], T::zero());
            for (a_pt, x_pt) in abar.chunks_exact(blocks).zip(x.chunks_exact(d)) {
                for (&a, xb) in a_pt.iter().zip(x_pt.chunks_exact(b_size)) {
                    gb += a;
                    gw.iter_mut().zip(xb).for_each(|(g, xv)| *g += a * *xv);
                }
            }
            (gw, gb)
        })
        .collect();
    for (gw, gb) in partials {
        *beta_bar += gb;
        w_bar.iter_mut().zip(&gw).for_each(|(g, v)| *g += *v);
    }
}

/// Backward pass of the weight-shared first stage.
pub fn shared_backward<T: Real>(
    input: &InputJets<T>,
    p: &SharedParams<T>,
    tape: &SharedTape<T>,
    zbar: &Jet<T>,
    grads: SharedGrads<T>,
    xbar: Option<&mut [T]>,
) {
    let (d, b_size, k_max) = (input.dim(), p.w.len(), input.order());
    let (blocks, points, dirs, out) = (tape.blocks, input.points(), input.dirs(), zbar.width);
    let stride = k_max + 1;
    // next affine layer
    tensor::matmul_tn(
        points,
        blocks,
        out,
        &tape.phi0,
        &zbar.primal,
        grads.weight,
        Write::Accumulate,
    );
    tensor::add_column_sums(out, &zbar.primal, grads.bias);
    let mut pre0_bar = vec![T::zero(); points * blocks];
    tensor::matmul_nt(
        points,
        out,
        blocks,
        &zbar.primal,
        p.weight,
        &mut pre0_bar,
        Write::Overwrite,
    );
    pre0_bar.iter_mut().zip(&tape.g0).for_each(|(x, g)| *x *= *g);
    let ns = tape.out_support.count();
    let out_orders: Vec<(usize, usize)> = tape.out_support.orders().enumerate().collect();
    let mut u_bar = vec![T::zero(); tape.block.len() * stride];
    let mut yb = [T::zero(); MAX_ORDER + 1];
    let mut gl = [T::zero(); MAX_ORDER + 1];
    let mut ub = [T::zero(); MAX_ORDER + 1];
    for r in 0..input.rows() {
        let pt = r / dirs;
        for e in tape.row_ptr[r]..tape.row_ptr[r + 1] {
            let b = tape.block[e];
            let wrow = &p.weight[b * out..(b + 1) * out];
            yb[..stride].iter_mut().for_each(|x| *x = T::zero());
            for &(s, k) in &out_orders {
                let zr = &zbar.tangents[(r * ns + s) * out..(r * ns + s + 1) * out];
                yb[k] = zr.iter().zip(wrow).map(|(a, w)| *a * *w).sum();
                let a = tape.y[e * stride + k];
                grads.weight[b * out..(b + 1) * out]
                    .iter_mut()
                    .zip(zr)
                    .for_each(|(g, x)| *g += a * *x);
            }
            gl[..stride].copy_from_slice(&tape.g[e * stride..(e + 1) * stride]);
            gl[0] = tape.g0[pt * blocks + b];
            ub[..stride].iter_mut().for_each(|x| *x = T::zero());
            unary_backward(&yb[..stride], &gl[..stride], &mut ub[..stride]);
            pre0_bar[pt * blocks + b] += ub[0];
            u_bar[e * stride..(e + 1) * stride].copy_from_slice(&ub[..stride]);
        }
    }
    // shared block map: primal part
    shared_weight_grad(&pre0_bar, input.primal(), d, grads.w, grads.beta);
    if let Some(xbar) = xbar {
        xbar.par_chunks_mut(d)
            .zip(pre0_bar.par_chunks(blocks))
            .for_each(|(xb_pt, a_pt)| {
                for (xb, &a) in xb_pt.chunks_exact_mut(b_size).zip(a_pt) {
                    xb.iter_mut().zip(p.w).for_each(|(x, w)| *x += a * *w);
                }
            });
    }
    // shared block map: tangent part (entries are found by block within their row)
    for r in 0..input.rows() {
        let entries = tape.row_ptr[r]..tape.row_ptr[r + 1];
        for k in tape.in_support.orders() {
            input.for_each_entry(k, r, |i, a| {
                let b = i / b_size;
                let e = entries
                    .clone()
                    .find(|&e| tape.block[e] == b)
                    .expect("entry recorded in forward");
                grads.w[i % b_size] += a * u_bar[e * stride + k];
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block sums in f32 (on x86-64 with AVX2 by the intrinsics) have the bits of the generic
    /// sixteen-lane code, for block sizes with and without a remainder, below and above sixteen;
    /// and are within f32 rounding of an f64 sum.
    #[test]
    fn f32_block_sums_have_the_generic_bits() {
        for b in [1usize, 7, 16, 33, 100, 130] {
            let blocks = 23;
            // values of mixed sign and magnitude, so that the order of the additions shows
            let x: Vec<f32> = (0..blocks * b)
                .map(|i| (i as f32 * 0.731).sin() * 10f32.powi((i % 7) as i32 - 3))
                .collect();
            let w: Vec<f32> = (0..b).map(|i| (i as f32 * 1.37).cos()).collect();
            let (mut got, mut want) = (vec![0.0f32; blocks], vec![0.0f32; blocks]);
            block_pre_activation(&x, &w, 3.7191, &mut got);
            block_pre_activation_lanes(&x, &w, 3.7191, &mut want);
            for (k, (g, v)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), v.to_bits(), "b = {b}, block {k}: {g} vs {v}");
                let exact: f64 = 3.7191f32 as f64 + (0..b).map(|j| x[k * b + j] as f64 * w[j] as f64).sum::<f64>();
                let size: f64 = (0..b).map(|j| (x[k * b + j] * w[j]).abs() as f64).sum::<f64>() + 3.7191;
                assert!((*g as f64 - exact).abs() <= 1e-6 * size, "b = {b}: {g} vs {exact}");
            }
        }
    }

    /// Built block by block, the one-hot inputs' weight gradient has the bits
    /// [`input_affine_backward_rows`] accumulates into zeros (repeated coordinates included), and
    /// matches a naive f64 sum.
    #[test]
    fn one_hot_weight_gradient_blocks_equal_the_whole_backward() {
        let (points, dim, dirs, out) = (7, 300, 5, 24);
        let x: Vec<f32> = (0..points * dim).map(|i| (i as f32 * 0.731).sin()).collect();
        // coordinates repeat across points and within one (row order then decides the sums)
        let coords: Vec<usize> = (0..points * dirs).map(|r| (r * 37 + r / 3) % dim).collect();
        let coords = [&coords[..points * dirs - 2], &[coords[0], coords[0]]].concat();
        let primal: Vec<f32> = (0..points * out).map(|i| (i as f32 * 0.29).cos()).collect();
        let tangents: Vec<f32> = (0..points * dirs * out).map(|i| (i as f32 * 0.113).sin()).collect();
        let zbar = JetRows {
            width: out,
            support: Support::from_orders(&[1]),
            primal: &primal,
            tangents: &tangents,
        };
        let mut input = InputJets::new(2, dim, dirs, x.clone()).unwrap();
        input.set(1, Tangent::OneHot(coords.clone())).unwrap();
        let (mut whole, mut bias) = (vec![0.0f32; dim * out], vec![0.0f32; out]);
        let weight = vec![0.0f32; dim * out];
        let wg = Some((&mut whole[..], Write::Accumulate));
        input_affine_backward_rows(&input, zbar, &weight, wg, &mut bias, None);

        let mut entries = Vec::new();
        let grad = OneHotWeightGrad::new(&x, dim, &coords, zbar, &mut entries).unwrap();
        assert_eq!((grad.rows(), grad.width()), (dim, out));
        for rows in [0..dim, 0..1, 13..150, 150..300, coords[0]..coords[0] + 1] {
            let mut block = vec![f32::NAN; rows.len() * out];
            grad.block_into(rows.clone(), &mut block);
            let want = &whole[rows.start * out..rows.end * out];
            assert!(
                block.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "rows {rows:?}"
            );
        }
        // entries that cut rows: copied out of the rows they touch
        for range in [5..77, 3 * out + 1..7 * out, 0..dim * out] {
            let mut got = vec![f32::NAN; range.len()];
            grad.entries_into(range.clone(), &mut got);
            let want = &whole[range.clone()];
            assert!(
                got.iter().zip(want).all(|(a, b)| a.to_bits() == b.to_bits()),
                "entries {range:?}"
            );
        }
        // naive: W̄[i][j] = Σ_p x[p][i]·z̄₀[p][j] + Σ_{r: coords[r] = i} z̄₁[r][j]
        for (i, j) in [(coords[0], 3), (0, 0), (dim - 1, out - 1), (coords[5], 7)] {
            let mut want: f64 = (0..points)
                .map(|p| x[p * dim + i] as f64 * primal[p * out + j] as f64)
                .sum();
            want += (0..coords.len())
                .filter(|&r| coords[r] == i)
                .map(|r| tangents[r * out + j] as f64)
                .sum::<f64>();
            assert!((whole[i * out + j] as f64 - want).abs() < 1e-5 * (1.0 + want.abs()));
        }
        // shapes that do not fit are refused
        let short = &coords[..coords.len() - 1];
        assert!(OneHotWeightGrad::new(&x, dim, short, zbar, &mut entries).is_none());
        assert!(OneHotWeightGrad::new(&x, dim + 1, &coords, zbar, &mut entries).is_none());
    }
}
