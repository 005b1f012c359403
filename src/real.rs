//! The floating-point element type shared by every layer: `f32` for training, `f64` for tests.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// A real scalar the engine computes in (`f32` or `f64`).
pub trait Real:
    num_traits::Float
    + num_traits::FloatConst
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
{
    /// Converts an `f64` constant (exact for small integers and factorials).
    fn c(x: f64) -> Self;
    /// Widens to `f64` (for reporting and comparison).
    fn as_f64(self) -> f64;
    /// A short name for messages and metadata.
    const NAME: &'static str;
    /// The slice as its concrete type (for paths written once per precision).
    fn view(s: &[Self]) -> Slice<'_>;
}

/// A slice of a [`Real`] seen as its concrete type.
#[derive(Clone, Copy, Debug)]
pub enum Slice<'a> {
    /// `f32` values.
    F32(&'a [f32]),
    /// `f64` values.
    F64(&'a [f64]),
}

impl Real for f32 {
    fn view(s: &[Self]) -> Slice<'_> {
        Slice::F32(s)
    }
    fn c(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    const NAME: &'static str = "f32";
}

impl Real for f64 {
    fn view(s: &[Self]) -> Slice<'_> {
        Slice::F64(s)
    }
    fn c(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "f64";
}

/// `n!` as an `f64` (exact up to 22!).
pub fn factorial(n: usize) -> f64 {
    (1..=n).fold(1.0, |acc, i| acc * i as f64)
}
