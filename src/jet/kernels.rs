//! Batched jet kernels: the rule table applied to whole [`Jet`] batches (element-wise rules fused
//! over all orders, linear rules as one GEMM over every order and direction).

use super::batch::Jet;
use super::rules::{Unary, unary_backward_rows, unary_forward, unary_forward_rows};
use super::support::MAX_ORDER;
use crate::real::Real;
use crate::tensor::{self, Write};
use rayon::prelude::*;

/// Points per parallel task (small enough to balance, large enough to amortise scheduling).
fn chunk_points(points: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    points.div_ceil(threads * 4).max(1)
}

/// Splits `buf` into `n` consecutive chunks of `len` elements (empty chunks if `buf` is empty),
/// one per parallel task.
fn split<T>(buf: &mut [T], len: usize, n: usize) -> Vec<&mut [T]> {
    if buf.is_empty() {
        return (0..n).map(|_| <&mut [T]>::default()).collect();
    }
    buf.chunks_mut(len.max(1)).collect()
}

/// `y = φ(z)` element-wise on a batch, storing the derivative series `g = φ'(z(s))` for backward.
///
/// Each row is processed order-major across all its features at once, so the recurrences run as
/// vectorisable loops over features (rules without a row form fall back to per-element series).
pub fn activation_forward<T: Real>(rule: Unary, z: &Jet<T>, y: &mut Jet<T>, g: &mut Jet<T>) {
    let k_max = z.order;
    let in_sup = z.support;
    let out_sup = in_sup.closure(k_max);
    y.reshape(k_max, z.points, z.dirs, z.width, out_sup);
    g.reshape(k_max, z.points, z.dirs, z.width, out_sup);
    let (w, dirs) = (z.width, z.dirs);
    let (ns_in, ns_out) = (in_sup.count(), out_sup.count());
    // the present orders (slot s holds order k = orders[s]), on the stack
    let (in_list, out_list) = (in_sup.order_list(false), out_sup.order_list(false));
    let (in_orders, out_orders) = (in_list.as_slice(), out_list.as_slice());
    let cp = chunk_points(z.points);
    let t_out = dirs * ns_out * w;
    let n_chunks = z.points.div_ceil(cp);
    let tasks: Vec<_> = split(&mut y.primal, cp * w, n_chunks)
        .into_iter()
        .zip(split(&mut g.primal, cp * w, n_chunks))
        .zip(split(&mut y.tangents, cp * t_out, n_chunks))
        .zip(split(&mut g.tangents, cp * t_out, n_chunks))
        .enumerate()
        .collect();
    let row_form = rule.has_row_form();
    tasks.into_par_iter().for_each(|(c, (((yp, gp), yt), gt))| {
        let n = (k_max + 1) * w;
        // the thread's reusable scratch: no allocation per task
        let mut buf = crate::tensor::Scratch::<T>::zeroed(3 * n);
        let (ub, rest) = buf.split_at_mut(n);
        let (yb, gb) = rest.split_at_mut(n);
        let mut col = [[T::zero(); MAX_ORDER + 1]; 3];
        for lp in 0..yp.len() / w {
            let p = c * cp + lp;
            let z0 = &z.primal[p * w..(p + 1) * w];
            if rule == Unary::Tanh {
                // one vectorisable pass (see `Real::tanh_slice`), then φ' = 1 − y²
                let (yr, gr) = (&mut yp[lp * w..(lp + 1) * w], &mut gp[lp * w..(lp + 1) * w]);
                T::tanh_slice(z0, yr);
                for f in 0..w {
                    gr[f] = T::one() - yr[f] * yr[f];
                }
            } else {
                for f in 0..w {
                    let (y0, g0) = rule.primal(z0[f]);
                    yp[lp * w + f] = y0;
                    gp[lp * w + f] = g0;
                }
            }
            if ns_out == 0 {
                continue;
            }
            ub[..w].copy_from_slice(z0);
            yb[..w].copy_from_slice(&yp[lp * w..(lp + 1) * w]);
            gb[..w].copy_from_slice(&gp[lp * w..(lp + 1) * w]);
            for d in 0..dirs {
                let r = p * dirs + d;
                for (s, &k) in in_orders.iter().enumerate() {
                    ub[k * w..(k + 1) * w].copy_from_slice(&z.tangents[(r * ns_in + s) * w..(r * ns_in + s + 1) * w]);
                }
                if row_form {
                    unary_forward_rows(rule, w, in_orders, out_orders, ub, yb, gb);
                } else {
                    for f in 0..w {
                        let [u, yy, gg] = &mut col;
                        for k in 0..=k_max {
                            u[k] = ub[k * w + f];
                        }
                        unary_forward(rule, &u[..=k_max], in_sup, Some((yb[f], gb[f])), yy, gg);
                        for &k in out_orders {
                            yb[k * w + f] = yy[k];
                            gb[k * w + f] = gg[k];
                        }
                    }
                }
                let base = (lp * dirs + d) * ns_out;
                for (s, &k) in out_orders.iter().enumerate() {
                    yt[(base + s) * w..(base + s + 1) * w].copy_from_slice(&yb[k * w..(k + 1) * w]);
                    gt[(base + s) * w..(base + s + 1) * w].copy_from_slice(&gb[k * w..(k + 1) * w]);
                }
            }
        }
    });
}

/// Backward of [`activation_forward`]: `z̄ = J_φᵀ ȳ`, with the shared primal's cotangent summed
/// over its directions. `zbar` is reshaped to `z`'s support.
pub fn activation_backward<T: Real>(z: &Jet<T>, g: &Jet<T>, ybar: &Jet<T>, zbar: &mut Jet<T>) {
    let k_max = z.order;
    let (in_sup, out_sup) = (z.support, g.support);
    zbar.reshape(k_max, z.points, z.dirs, z.width, in_sup);
    let (w, dirs) = (z.width, z.dirs);
    let (ns_in, ns_out) = (in_sup.count(), out_sup.count());
    // the present orders (slot s holds order k = orders[s]), and 0 followed by the input's
    let (in_list, out_list, target_list) = (
        in_sup.order_list(false),
        out_sup.order_list(false),
        in_sup.order_list(true),
    );
    let (in_orders, out_orders, targets) = (in_list.as_slice(), out_list.as_slice(), target_list.as_slice());
    let cp = chunk_points(z.points);
    let t_in = dirs * ns_in * w;
    let n_chunks = z.points.div_ceil(cp);
    let tasks: Vec<_> = split(&mut zbar.primal, cp * w, n_chunks)
        .into_iter()
        .zip(split(&mut zbar.tangents, cp * t_in, n_chunks))
        .enumerate()
        .collect();
    tasks.into_par_iter().for_each(|(c, (zp, zt))| {
        let n = (k_max + 1) * w;
        // the thread's reusable scratch: no allocation per task
        let mut buf = crate::tensor::Scratch::<T>::zeroed(3 * n);
        let (ub, rest) = buf.split_at_mut(n);
        let (yb, gb) = rest.split_at_mut(n);
        for lp in 0..zp.len() / w {
            let p = c * cp + lp;
            let acc = &mut zp[lp * w..(lp + 1) * w];
            // the primal path y_0 = φ(z_0) counts once per point
            for f in 0..w {
                acc[f] = ybar.primal[p * w + f] * g.primal[p * w + f];
            }
            if ns_out == 0 {
                continue;
            }
            gb[..w].copy_from_slice(&g.primal[p * w..(p + 1) * w]);
            for d in 0..dirs {
                let r = p * dirs + d;
                for (s, &k) in out_orders.iter().enumerate() {
                    let src = (r * ns_out + s) * w;
                    yb[k * w..(k + 1) * w].copy_from_slice(&ybar.tangents[src..src + w]);
                    gb[k * w..(k + 1) * w].copy_from_slice(&g.tangents[src..src + w]);
                }
                unary_backward_rows(w, k_max, targets, out_orders, yb, gb, ub);
                for f in 0..w {
                    acc[f] += ub[f];
                }
                for (s, &k) in in_orders.iter().enumerate() {
                    let dst = ((lp * dirs + d) * ns_in + s) * w;
                    zt[dst..dst + w].copy_from_slice(&ub[k * w..(k + 1) * w]);
                }
            }
        }
    });
}

/// `z = h·W + b` on a batch (`W` is `[in × out]`); the bias enters only the primal.
pub fn affine_forward<T: Real>(h: &Jet<T>, weight: &[T], bias: &[T], out: usize, z: &mut Jet<T>) {
    let fan_in = h.width;
    z.reshape(h.order, h.points, h.dirs, out, h.support);
    tensor::affine(h.points, fan_in, out, &h.primal, weight, bias, &mut z.primal);
    let m = h.rows() * h.support.count();
    tensor::matmul(m, fan_in, out, &h.tangents, weight, &mut z.tangents, Write::Overwrite);
}

/// Backward of [`affine_forward`]: accumulates `W̄ += hᵀ z̄`, `b̄ += Σ z̄_0`, and (if asked)
/// writes `h̄ = z̄ Wᵀ`.
pub fn affine_backward<T: Real>(
    h: &Jet<T>,
    zbar: &Jet<T>,
    weight: &[T],
    weight_grad: &mut [T],
    bias_grad: &mut [T],
    hbar: Option<&mut Jet<T>>,
) {
    let (fan_in, out) = (h.width, zbar.width);
    tensor::matmul_tn(
        h.points,
        fan_in,
        out,
        &h.primal,
        &zbar.primal,
        weight_grad,
        Write::Accumulate,
    );
    let m = h.rows() * h.support.count();
    tensor::matmul_tn(
        m,
        fan_in,
        out,
        &h.tangents,
        &zbar.tangents,
        weight_grad,
        Write::Accumulate,
    );
    tensor::add_column_sums(out, &zbar.primal, bias_grad);
    if let Some(hbar) = hbar {
        hbar.reshape(h.order, h.points, h.dirs, fan_in, h.support);
        tensor::matmul_nt(
            h.points,
            out,
            fan_in,
            &zbar.primal,
            weight,
            &mut hbar.primal,
            Write::Overwrite,
        );
        tensor::matmul_nt(
            m,
            out,
            fan_in,
            &zbar.tangents,
            weight,
            &mut hbar.tangents,
            Write::Overwrite,
        );
    }
}
