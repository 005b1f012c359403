//! Reading and writing arrays: `.npy` files (points in, values out).

pub mod npy;
pub mod points;
