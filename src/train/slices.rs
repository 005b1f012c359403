//! A condition's batch cut into slices that go through the whole network side by side, one
//! thread each, instead of one batch whose every layer is spread over the threads.
//!
//! At small d the step is a chain of short products and element-wise rules on ≈ 1 MB of jets:
//! spread layer by layer over two cores, every rule wakes the other thread and moves its rows
//! between caches. Measured on 2 Xeon cores (`stde bench step --dim 100`): 100 points on two
//! threads 2.16 ms a step, 50 points on one 1.56 ms. Slices keep each part in one core's cache.
//!
//! The cut depends on the number of points and the jet rows of a point alone (never on the
//! thread count), and the slices' losses and gradients are added in slice order, so a run gives
//! the same bits on any number of threads. Each slice has its own buffers and (but the first)
//! its own gradient, so slicing is used only where the gradient is small and the inputs short
//! (see [`slice_ranges`]).

use super::residual::{ConditionDraw, ResidualWork, condition_part_step};
use crate::nn::{Mlp, NnError};
use crate::pde::{Condition, Problem};
use crate::real::Real;
use crate::tensor;
use rayon::prelude::*;
use std::ops::Range;
use std::time::Instant;

/// Jet rows per slice aimed at: a slice's jets stay within a core's L2 (2 MB here: 1024 rows of
/// 128 f32 features are 0.5 MB an array, and a layer touches three or four).
const SLICE_ROWS: usize = 1024;

/// Most points per slice: two slices for the paper's 100 points, one per core here (slices of 25
/// cost within 2 % per point of 50 on one thread, but four slices' gradients to add cost more
/// than that at d = 1000: 442 against 469 steps/s).
const SLICE_POINTS: usize = 50;

/// Most slices of one condition's batch.
const MAX_SLICES: usize = 8;

/// Networks with more parameters are not sliced (each slice adds a gradient to sum).
const SLICE_MAX_PARAMS: usize = 1 << 20;

/// Inputs with more coordinates are not sliced (the first layer dominates there, and it is
/// already spread over the points).
const SLICE_MAX_INPUT: usize = 4096;

/// The slices of a part of `points` points whose jets have `rows` rows a point: slices of
/// `1024 / rows` points (at most 50; at most 8 slices), contiguous and of near-equal size, or one
/// range where slicing does not pay (a network with more than 2²⁰ parameters, or more than 4096
/// inputs). Sparse R = 16 (18 rows): 50 points a slice; the exact Laplacian at d = 100 (102 rows):
/// 10, so 8 slices of 12–13 for 100 points (114 → 120 steps/s against slices of 50).
pub fn slice_ranges(points: usize, input_dim: usize, params: usize, rows: usize) -> Vec<Range<usize>> {
    if params > SLICE_MAX_PARAMS || input_dim > SLICE_MAX_INPUT {
        return std::iter::once(0..points).collect();
    }
    let per_slice = (SLICE_ROWS / rows.max(1)).clamp(1, SLICE_POINTS);
    let n = points.div_ceil(per_slice).clamp(1, MAX_SLICES);
    let (base, extra) = (points / n, points % n);
    let mut start = 0;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let r = start..start + len;
            start += len;
            r
        })
        .collect()
}

/// Per-slice buffers, kept across steps.
#[derive(Default)]
pub struct Slices<T> {
    works: Vec<ResidualWork<T>>,
    grads: Vec<Vec<T>>,
    points: Vec<Vec<T>>,
}

/// What was computed where the points were drawn, one entry per point of the part.
pub struct Drawn<T> {
    /// `(f, ψ)` of each point.
    pub sources: Vec<(f64, f64)>,
    /// The primal block sums of each point (empty without weight sharing).
    pub pre: Vec<Vec<T>>,
}

impl<T: Real> Slices<T> {
    /// One condition step on `points` (`[part × d]`) cut into `ranges`: each slice's mean scaled
    /// by its points over `batch` (the condition's whole batch), run in parallel; the losses and
    /// the gradients (accumulated into `grad`) added in slice order. `work` receives the time of
    /// the slices (wall time, split between source and network as the slices spent it).
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        net: &Mlp<T>,
        problem: &Problem,
        cond: &Condition,
        (points, ranges, batch): (&[T], &[Range<usize>], usize),
        drawn: Option<Drawn<T>>,
        draw: &ConditionDraw,
        work: &mut ResidualWork<T>,
        grad: &mut [T],
    ) -> Result<f64, NnError> {
        let n = ranges.len();
        let din = problem.input_dim();
        self.works.resize_with(n.max(self.works.len()), ResidualWork::default);
        self.grads.resize_with(n.max(self.grads.len()), Vec::new);
        self.points.resize_with(n.max(self.points.len()), Vec::new);
        let mut drawn = drawn;
        for (s, r) in ranges.iter().enumerate() {
            let w = &mut self.works[s];
            w.collapsed = work.collapsed;
            if let Some(d) = drawn.as_mut() {
                let pre = &d.pre[r.clone()];
                let sums = if pre.iter().all(|p| p.is_empty()) {
                    None
                } else {
                    net.primal_block_sums(pre.concat())
                };
                w.set_drawn(d.sources[r.clone()].to_vec(), sums);
            }
            let p = &mut self.points[s];
            p.clear();
            p.extend_from_slice(&points[r.start * din..r.end * din]);
            if s > 0 {
                self.grads[s].resize(grad.len(), T::zero());
            }
        }
        let before: Vec<(f64, f64)> = self.works[..n].iter().map(|w| (w.source_s, w.network_s)).collect();
        let t = Instant::now();
        // the first slice accumulates into `grad` itself, the others into their own zeroed copies
        let mut targets: Vec<&mut [T]> = Vec::with_capacity(n);
        targets.push(&mut *grad);
        targets.extend(self.grads[1..n].iter_mut().map(|g| g.as_mut_slice()));
        let exclusive = n <= rayon::current_num_threads();
        let losses: Vec<Result<f64, NnError>> = self.works[..n]
            .par_iter_mut()
            .zip(targets.par_iter_mut())
            .zip(self.points[..n].par_iter_mut())
            .zip(ranges.par_iter().enumerate())
            .map(|(((w, g), p), (s, r))| {
                if s > 0 {
                    g.fill(T::zero());
                }
                let share = r.len() as f64 / batch as f64;
                // with a thread for each slice, the slice's products and row loops stay on its
                // thread: no rows stolen into another core's cache (with more slices than
                // threads, a thread left without a slice may still take rows of the last ones)
                tensor::inline_scope(exclusive, || {
                    condition_part_step(net, problem, cond, p, draw, w, g, share)
                })
            })
            .collect();
        drop(targets);
        let wall = t.elapsed().as_secs_f64();
        let (mut source, mut total) = (0.0, 0.0);
        for (w, (s0, n0)) in self.works[..n].iter().zip(&before) {
            source += w.source_s - s0;
            total += (w.source_s - s0) + (w.network_s - n0);
        }
        let source_share = if total > 0.0 { source / total } else { 0.0 };
        work.source_s += wall * source_share;
        work.network_s += wall * (1.0 - source_share);
        // the other slices' gradients added in slice order, chunk by chunk in parallel
        let grads = &self.grads[1..n];
        const CHUNK: usize = 1 << 14;
        grad.par_chunks_mut(CHUNK).enumerate().for_each(|(i, out)| {
            for g in grads {
                for (o, v) in out.iter_mut().zip(&g[i * CHUNK..]) {
                    *o += *v;
                }
            }
        });
        let mut loss = 0.0;
        for l in losses {
            loss += l?;
        }
        Ok(loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_the_part_in_order_and_do_not_depend_on_threads() {
        // sparse R = 16: 18 rows a point
        assert_eq!(slice_ranges(100, 101, 1000, 18), vec![0..50, 50..100]);
        assert_eq!(slice_ranges(10, 101, 1000, 18), vec![0..10]);
        assert_eq!(slice_ranges(101, 10, 1000, 18), vec![0..34, 34..68, 68..101]);
        // 102 rows a point: slices of 10 points, at most 8
        let exact = slice_ranges(100, 101, 1000, 102);
        assert_eq!(exact.len(), MAX_SLICES);
        assert_eq!(exact[0], 0..13);
        assert_eq!(slice_ranges(30, 101, 1000, 102), vec![0..10, 10..20, 20..30]);
        let many = slice_ranges(1003, 10, 1000, 18);
        assert_eq!(many.len(), MAX_SLICES);
        assert_eq!(many.first().unwrap().start, 0);
        assert_eq!(many.last().unwrap().end, 1003);
        assert!(
            many.windows(2)
                .all(|w| w[0].end == w[1].start && w[0].len() >= w[1].len())
        );
        // rows beyond a slice's aim: one point a slice
        assert_eq!(slice_ranges(3, 10, 1000, 5000), vec![0..1, 1..2, 2..3]);
        // large networks and long inputs are not sliced
        assert_eq!(slice_ranges(100, 101, (1 << 20) + 1, 18), vec![0..100]);
        assert_eq!(slice_ranges(100, 4097, 1000, 18), vec![0..100]);
        assert_eq!(slice_ranges(0, 10, 1000, 18), vec![0..0]);
    }
}
