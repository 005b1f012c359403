//! Heap allocations per training step, counted by a global allocator around `train`: the steady
//! step (after the first steps sized every buffer) must not allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use stde::train::{RunOptions, TrainConfig, train};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static BYTES: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc_zeroed(l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        BYTES.fetch_add(n, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations and bytes requested by a run of `steps` steps (setup, the steps and the files
/// written at the stop).
fn count(cfg: &TrainConfig, steps: usize) -> (i64, i64) {
    let tmp = tempfile::tempdir().unwrap();
    let opts = RunOptions {
        out: tmp.path().to_path_buf(),
        quiet: true,
        silent: true,
        interrupt: Arc::new(AtomicBool::new(false)),
        stop_after: Some(steps),
        ..Default::default()
    };
    let (a0, b0) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    train(cfg, &opts).unwrap();
    let (a1, b1) = (ALLOCS.load(Ordering::Relaxed), BYTES.load(Ordering::Relaxed));
    ((a1 - a0) as i64, (b1 - b0) as i64)
}

/// Per step, from the difference of a 20-step and a 120-step run (everything else is equal).
fn per_step(cfg: &TrainConfig) -> (f64, f64) {
    let (a, b) = (count(cfg, 20), count(cfg, 120));
    ((b.0 - a.0) as f64 / 100.0, (b.1 - a.1) as f64 / 100.0)
}

/// The default elliptic step (collapsed 2-jets, sparse draw rebuilt in place, two slices) and the
/// general K-jet step of a parabolic problem allocate nothing that grows with the batch, the
/// width or `d`: a few small bookkeeping vectors at most (one thread, so the counts do not
/// depend on scheduling). Before the buffers were kept: 272 allocations and 1.2 MB a step at
/// d = 100 (6.5 and 6.7 KB now), 550 and 10 MB for the parabolic step at width 1024 (62 and
/// 19 KB now). Fails if a per-step buffer of the batch's
/// size comes back (e.g. the first layer's cotangent copy: 410 KB a step).
#[test]
fn steady_training_steps_allocate_almost_nothing() {
    let cases = [
        ("allen-cahn-two-body", 100, 128, 16.0, 16e3),
        ("allen-cahn-two-body", 2000, 128, 16.0, 16e3),
        ("semilinear-heat", 10, 64, 128.0, 64e3),
    ];
    for (equation, dim, width, max_allocs, max_bytes) in cases {
        let cfg = TrainConfig {
            dim,
            width,
            steps: 1000,
            eval_every: 1000,
            test_points: 10,
            threads: 1,
            ..TrainConfig::for_equation(equation)
        };
        let (allocs, bytes) = per_step(&cfg);
        eprintln!("{equation} d = {dim}: {allocs:.1} allocations, {bytes:.0} bytes a step");
        assert!(
            allocs <= max_allocs && bytes <= max_bytes,
            "{equation} d = {dim}: {allocs:.1} allocations and {bytes:.0} bytes a step (at most {max_allocs} and {max_bytes})"
        );
    }
}
