//! Vector lanes: the dispatch that runs a kernel in the widest registers this CPU has
//! ([`widest_fn!`]) and sums with independent accumulators. The bottom of the module tree: the
//! scalar kernels (`real`), the network (`nn`, `jet`), the sources (`pde`) and the optimiser use
//! it; it uses only [`crate::real`]'s pairwise sum.

/// Whether this CPU runs the AVX-512 code of [`crate::widest_fn!`] functions (x86-64 with AVX-512 F/VL/DQ/BW).
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$wide`, which runs the body of `$lanes` (an `#[inline(always)]` function) compiled
/// for AVX-512 where the CPU has it (else as built: x86-64-v3 by the repo's `.cargo/config.toml`).
/// The body is generated again inside a function with those features, so its loops get 16 f32
/// lanes instead of 8 (`cargo bench --bench source -- sin_cos`, one Xeon core, d = 10⁵: the f32
/// sine–cosine 58 → 33 µs). Same
/// operations in the same order: the same bits either way (tested). A plain function, not a
/// closure: LLVM does not inline a large closure into a function with other target features.
#[macro_export]
macro_rules! widest_fn {
    ($(#[$doc:meta])* $vis:vis fn $wide:ident $(<$($g:ident : $b:path),*>)? (
        $($arg:ident : $ty:ty),* $(,)?) -> $ret:ty = $lanes:path) => {
        $(#[$doc])*
        $vis fn $wide $(<$($g: $b),*>)? ($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx512bw")]
            fn avx512 $(<$($g: $b),*>)? ($($arg: $ty),*) -> $ret {
                $lanes($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::lanes::has_avx512() {
                // SAFETY: the CPU has the features `avx512` is compiled for (checked above)
                return unsafe { avx512($($arg),*) };
            }
            $lanes($($arg),*)
        }
    };
}

pub use crate::widest_fn;

/// The sum of an f32 slice (for chunks of a few hundred terms) in 32 independent f32 lanes, the
/// lanes added pairwise, returned in f64: no serial chain longer than `len/32` additions, and
/// rounding near f32's.
#[inline(always)]
pub fn sum32_f32(v: &[f32]) -> f64 {
    let mut acc = [0.0f32; 32];
    let chunks = v.chunks_exact(32);
    let tail: f64 = chunks.remainder().iter().map(|&a| a as f64).sum();
    for c in chunks {
        for j in 0..32 {
            acc[j] += c[j];
        }
    }
    let (low, high) = acc.split_at_mut(16);
    let low: &mut [f32; 16] = low.try_into().unwrap();
    low.iter_mut().zip(high.iter()).for_each(|(a, b)| *a += *b);
    crate::real::pairwise_sum16(low) as f64 + tail
}

/// The sum of a slice with four independent accumulators (vectorisable; the order differs from a
/// sequential sum only by rounding).
pub fn sum4(v: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().sum();
    for c in chunks {
        for j in 0..4 {
            acc[j] += c[j];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// `Σ v_i²` of an f32 slice: squares in f32 lanes, chunks of 256 summed by [`sum32_f32`] and
/// added in f64 (relative error about 1e-7).
#[inline(always)]
pub fn sum_squares_f32(v: &[f32]) -> f64 {
    let mut sq = [0.0f32; 256];
    let mut total = 0.0;
    for chunk in v.chunks(256) {
        for (s, &a) in sq.iter_mut().zip(chunk) {
            *s = a * a;
        }
        total += sum32_f32(&sq[..chunk.len()]);
    }
    total
}

widest_fn! {
    /// [`sum_squares_f32`] in the widest vector registers this CPU has.
    pub fn sum_squares_f32_widest(v: &[f32]) -> f64 = sum_squares_f32
}

/// `Σ v_i²`: f32 lanes for f32 ([`sum_squares_f32_widest`]), else [`sum_squares4`].
pub fn sum_squares<T: crate::Real>(v: &[T]) -> f64 {
    match T::view(v) {
        crate::real::Slice::F32(v) => sum_squares_f32_widest(v),
        crate::real::Slice::F64(_) => sum_squares4(v),
    }
}

/// `Σ v_i²` with four independent accumulators.
pub fn sum_squares4<T: crate::Real>(v: &[T]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = v.chunks_exact(4);
    let tail: f64 = chunks.remainder().iter().map(|a| a.as_f64() * a.as_f64()).sum();
    for c in chunks {
        for j in 0..4 {
            let a = c[j].as_f64();
            acc[j] += a * a;
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}
