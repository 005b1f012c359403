//! Input jets with structured tangents: zero, one-hot, sparse or dense, per slot and row.
//!
//! Tangents are given in the **derivative convention** of spec §1.1: slot `k` holds `v_k` of the
//! curve `x(s) = x_0 + Σ_k v_k s^k / k!`. The first layer turns them into normalised coefficients
//! (`v_k / k!`) as it consumes them, so one-hot and sparse tangents are never densified.

use super::support::{MAX_ORDER, Support};
use crate::real::{Real, factorial};

/// Errors in the shape or content of input jets.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    /// A jet order outside `1..=MAX_ORDER`.
    #[error("jet order {0} is out of range 1..={MAX_ORDER}")]
    Order(usize),
    /// A slot number outside `1..=K`.
    #[error("tangent slot {slot} is out of range 1..={order}")]
    Slot {
        /// The slot given.
        slot: usize,
        /// The jet order.
        order: usize,
    },
    /// A coordinate index `≥ d`.
    #[error("tangent index {index} is out of range for input dimension {dim}")]
    Index {
        /// The index given.
        index: usize,
        /// The input dimension.
        dim: usize,
    },
    /// A buffer with the wrong number of elements.
    #[error("{what} has {got} elements, expected {expected}")]
    Length {
        /// Which buffer.
        what: &'static str,
        /// Its length.
        got: usize,
        /// The required length.
        expected: usize,
    },
}

/// The tangent `v_k` of one slot for every row.
#[derive(Clone, Debug, PartialEq)]
pub enum Tangent<T> {
    /// `v_k = 0` in every row (a symbolic zero).
    Zero,
    /// Row `r` carries `e_{index[r]}`.
    OneHot(Vec<usize>),
    /// Row `r` carries `Σ values[j]·e_{indices[j]}` for `j` in `row_ptr[r]..row_ptr[r+1]`
    /// (compressed sparse rows; an empty row is a zero tangent).
    Sparse {
        /// Row offsets, `rows + 1` entries.
        row_ptr: Vec<usize>,
        /// Coordinate of each non-zero.
        indices: Vec<usize>,
        /// Value of each non-zero.
        values: Vec<T>,
    },
    /// `[rows × d]` dense tangents.
    Dense(Vec<T>),
    /// `[dirs × d]` dense tangents shared by every point: row `r` carries direction `r mod dirs`
    /// (its first-layer product is computed once per direction, not once per row).
    Shared(Vec<T>),
}

/// A batch of input jets: `points` primals in `R^d`, each with `dirs` directions (rows), order `K`.
#[derive(Clone, Debug)]
pub struct InputJets<T> {
    order: usize,
    points: usize,
    dirs: usize,
    dim: usize,
    primal: Vec<T>,
    slots: Vec<Tangent<T>>,
    block_sums: Option<PrimalBlockSums<T>>,
}

/// The primal pre-activations `β + w·x_[block b]` of a weight-shared first stage at every point,
/// computed where the points were drawn (while each was in cache), with the `w` and `β` used:
/// the stage takes them instead of reading the points again only if its own `w` and `β` are
/// these.
#[derive(Clone, Debug, PartialEq)]
pub struct PrimalBlockSums<T> {
    /// The shared block weight used.
    pub w: Vec<T>,
    /// The shared block bias used.
    pub beta: T,
    /// `[points × blocks]`.
    pub values: Vec<T>,
}

impl<T: Real> InputJets<T> {
    /// Jets of order `order` at the points `primal` (`[points × dim]`), `dirs` rows per point,
    /// all tangents zero until set with [`InputJets::set`].
    pub fn new(order: usize, dim: usize, dirs: usize, primal: Vec<T>) -> Result<Self, InputError> {
        Self::new_reusing(order, dim, dirs, primal, Vec::new())
    }

    /// [`InputJets::new`] keeping the tangent slots in `slots` (its contents replaced by zeros):
    /// with the slots of an earlier input ([`InputJets::into_parts`]), nothing is allocated.
    pub fn new_reusing(
        order: usize,
        dim: usize,
        dirs: usize,
        primal: Vec<T>,
        mut slots: Vec<Tangent<T>>,
    ) -> Result<Self, InputError> {
        if order == 0 || order > MAX_ORDER {
            return Err(InputError::Order(order));
        }
        if dim == 0 || !primal.len().is_multiple_of(dim) {
            return Err(InputError::Length {
                what: "primal",
                got: primal.len(),
                expected: dim.max(1),
            });
        }
        Ok(InputJets {
            order,
            points: primal.len() / dim,
            dirs,
            dim,
            primal,
            slots: {
                slots.clear();
                slots.resize(order, Tangent::Zero);
                slots
            },
            block_sums: None,
        })
    }

    /// Attaches the primal block sums of a weight-shared first stage ([`PrimalBlockSums`]).
    pub fn set_block_sums(&mut self, sums: Option<PrimalBlockSums<T>>) {
        self.block_sums = sums;
    }

    /// The attached primal block sums, if any.
    pub fn block_sums(&self) -> Option<&PrimalBlockSums<T>> {
        self.block_sums.as_ref()
    }

    /// Sets the tangent of slot `k` (1-based, derivative convention), validating shape and indices.
    pub fn set(&mut self, k: usize, tangent: Tangent<T>) -> Result<(), InputError> {
        if k == 0 || k > self.order {
            return Err(InputError::Slot {
                slot: k,
                order: self.order,
            });
        }
        let rows = self.rows();
        let check = |i: usize| {
            if i < self.dim {
                Ok(())
            } else {
                Err(InputError::Index {
                    index: i,
                    dim: self.dim,
                })
            }
        };
        match &tangent {
            Tangent::Zero => {}
            Tangent::OneHot(idx) => {
                if idx.len() != rows {
                    return Err(InputError::Length {
                        what: "one-hot indices",
                        got: idx.len(),
                        expected: rows,
                    });
                }
                idx.iter().try_for_each(|&i| check(i))?;
            }
            Tangent::Sparse {
                row_ptr,
                indices,
                values,
            } => {
                if row_ptr.len() != rows + 1 {
                    return Err(InputError::Length {
                        what: "sparse row_ptr",
                        got: row_ptr.len(),
                        expected: rows + 1,
                    });
                }
                let nnz = *row_ptr.last().unwrap_or(&0);
                if indices.len() != nnz
                    || values.len() != nnz
                    || row_ptr[0] != 0
                    || row_ptr.windows(2).any(|w| w[0] > w[1])
                {
                    return Err(InputError::Length {
                        what: "sparse indices/values",
                        got: indices.len().min(values.len()),
                        expected: nnz,
                    });
                }
                indices.iter().try_for_each(|&i| check(i))?;
            }
            Tangent::Dense(v) => {
                if v.len() != rows * self.dim {
                    return Err(InputError::Length {
                        what: "dense tangent",
                        got: v.len(),
                        expected: rows * self.dim,
                    });
                }
            }
            Tangent::Shared(v) => {
                if v.len() != self.dirs * self.dim {
                    return Err(InputError::Length {
                        what: "shared dense tangent",
                        got: v.len(),
                        expected: self.dirs * self.dim,
                    });
                }
            }
        }
        self.slots[k - 1] = tangent;
        Ok(())
    }

    /// Truncation order `K`.
    pub fn order(&self) -> usize {
        self.order
    }
    /// Number of points.
    pub fn points(&self) -> usize {
        self.points
    }
    /// Directions per point.
    pub fn dirs(&self) -> usize {
        self.dirs
    }
    /// Rows (`points × dirs`).
    pub fn rows(&self) -> usize {
        self.points * self.dirs
    }
    /// Input dimension `d`.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// The primals, `[points × d]`.
    pub fn primal(&self) -> &[T] {
        &self.primal
    }
    /// Gives the primal buffer back (to reuse it for the next batch).
    pub fn into_primal(self) -> Vec<T> {
        self.primal
    }

    /// The primal and the tangent slots (for [`InputJets::new_reusing`]).
    pub fn into_parts(self) -> (Vec<T>, Vec<Tangent<T>>) {
        (self.primal, self.slots)
    }
    /// The tangent of slot `k` (1-based).
    pub fn slot(&self, k: usize) -> &Tangent<T> {
        &self.slots[k - 1]
    }

    /// Orders whose tangent is not identically zero.
    pub fn support(&self) -> Support {
        let mut s = Support::EMPTY;
        for (i, t) in self.slots.iter().enumerate() {
            if *t != Tangent::Zero {
                s.insert(i + 1);
            }
        }
        s
    }

    /// Whether any slot is dense (per row or shared).
    pub fn has_dense(&self) -> bool {
        self.slots
            .iter()
            .any(|t| matches!(t, Tangent::Dense(_) | Tangent::Shared(_)))
    }

    /// The normalised coefficient `v/k!` of coordinate `c` in slot `k` of `row` (`O(1)` for
    /// every tangent kind but sparse, which scans the row's entries).
    pub fn entry(&self, k: usize, row: usize, c: usize) -> T {
        let inv = T::one() / T::c(factorial(k));
        let v = match &self.slots[k - 1] {
            Tangent::Zero => T::zero(),
            Tangent::OneHot(idx) if idx[row] == c => T::one(),
            Tangent::OneHot(_) => T::zero(),
            Tangent::Sparse {
                row_ptr,
                indices,
                values,
            } => (row_ptr[row]..row_ptr[row + 1])
                .filter(|&j| indices[j] == c)
                .fold(T::zero(), |acc, j| acc + values[j]),
            Tangent::Dense(v) => v[row * self.dim + c],
            Tangent::Shared(v) => v[(row % self.dirs) * self.dim + c],
        };
        v * inv
    }

    /// Writes the normalised coefficients `v/k!` of every coordinate in slot `k` of `row` into
    /// `out` (`dim` numbers; one contiguous conversion for dense tangents).
    pub fn row_slot(&self, k: usize, row: usize, out: &mut [f64]) {
        let inv = 1.0 / factorial(k);
        let d = self.dim;
        let dense = |v: &[T], out: &mut [f64]| out.iter_mut().zip(v).for_each(|(o, x)| *o = x.as_f64() * inv);
        match &self.slots[k - 1] {
            Tangent::Dense(v) => dense(&v[row * d..(row + 1) * d], out),
            Tangent::Shared(v) => {
                let r = row % self.dirs;
                dense(&v[r * d..(r + 1) * d], out)
            }
            _ => {
                out.fill(0.0);
                self.for_each_entry(k, row, |c, a| out[c] += a.as_f64());
            }
        }
    }

    /// Calls `f(coordinate, a)` for every non-zero of slot `k` in `row`, with `a = v/k!` the
    /// normalised coefficient (dense slots visit every coordinate).
    pub fn for_each_entry(&self, k: usize, row: usize, mut f: impl FnMut(usize, T)) {
        let inv = T::one() / T::c(factorial(k));
        match &self.slots[k - 1] {
            Tangent::Zero => {}
            Tangent::OneHot(idx) => f(idx[row], inv),
            Tangent::Sparse {
                row_ptr,
                indices,
                values,
            } => {
                for j in row_ptr[row]..row_ptr[row + 1] {
                    f(indices[j], values[j] * inv);
                }
            }
            Tangent::Dense(v) => {
                for (i, &x) in v[row * self.dim..(row + 1) * self.dim].iter().enumerate() {
                    if x != T::zero() {
                        f(i, x * inv);
                    }
                }
            }
            Tangent::Shared(v) => {
                let dir = row % self.dirs;
                for (i, &x) in v[dir * self.dim..(dir + 1) * self.dim].iter().enumerate() {
                    if x != T::zero() {
                        f(i, x * inv);
                    }
                }
            }
        }
    }

    /// The same jets with every tangent written densely (for tests and comparisons).
    pub fn densified(&self) -> InputJets<T> {
        let mut out = self.clone();
        for k in 1..=self.order {
            if self.slots[k - 1] == Tangent::Zero {
                continue;
            }
            let mut dense = vec![T::zero(); self.rows() * self.dim];
            let scale = T::c(factorial(k));
            for r in 0..self.rows() {
                self.for_each_entry(k, r, |i, a| dense[r * self.dim + i] += a * scale);
            }
            out.slots[k - 1] = Tangent::Dense(dense);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_shapes_and_indices() {
        let mut j = InputJets::<f64>::new(2, 3, 1, vec![0.0; 6]).unwrap();
        assert_eq!(j.rows(), 2);
        assert_eq!(j.set(3, Tangent::Zero), Err(InputError::Slot { slot: 3, order: 2 }));
        assert_eq!(
            j.set(1, Tangent::OneHot(vec![0, 3])),
            Err(InputError::Index { index: 3, dim: 3 })
        );
        assert!(matches!(
            j.set(1, Tangent::Dense(vec![0.0; 5])),
            Err(InputError::Length { .. })
        ));
        assert!(j.set(1, Tangent::OneHot(vec![0, 2])).is_ok());
        assert_eq!(j.support(), Support::from_orders(&[1]));
        assert!(InputJets::<f64>::new(0, 3, 1, vec![0.0; 3]).is_err());
        assert!(InputJets::<f64>::new(2, 4, 1, vec![0.0; 6]).is_err());
    }

    /// `entry` and `row_slot` read what `for_each_entry` visits (summed per coordinate), for
    /// every tangent kind.
    #[test]
    fn entry_and_row_slot_agree_with_the_entries() {
        let (d, points, dirs) = (4, 2, 2);
        let rows = points * dirs;
        let kinds = [
            Tangent::Zero,
            Tangent::OneHot(vec![0, 3, 1, 3]),
            Tangent::Sparse {
                row_ptr: vec![0, 2, 2, 5, 6],
                indices: vec![1, 2, 0, 0, 3, 2],
                values: vec![0.5, -1.0, 2.0, 0.25, 3.0, -4.0],
            },
            Tangent::Dense((0..rows * d).map(|i| i as f64 * 0.3 - 1.0).collect()),
            Tangent::Shared((0..dirs * d).map(|i| 1.5 - i as f64 * 0.2).collect()),
        ];
        for kind in kinds {
            let mut j = InputJets::<f64>::new(2, d, dirs, vec![0.0; points * d]).unwrap();
            j.set(2, kind).unwrap();
            for row in 0..rows {
                let mut want = vec![0.0; d];
                j.for_each_entry(2, row, |c, a| want[c] += a);
                let mut got = vec![f64::NAN; d];
                j.row_slot(2, row, &mut got);
                assert_eq!(got, want, "row {row}");
                for (c, w) in want.iter().enumerate() {
                    assert_eq!(j.entry(2, row, c), *w, "row {row} coordinate {c}");
                }
            }
        }
    }
}
