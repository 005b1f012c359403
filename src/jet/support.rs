//! Which Taylor orders of a jet can be non-zero: symbolic zeros that cost nothing.

/// The largest jet order the engine supports (`K ≤ MAX_ORDER`).
pub const MAX_ORDER: usize = 31;

/// The set of orders `1..=K` whose coefficient may be non-zero (bit `k` for order `k`).
///
/// The primal (order 0) is always present and not tracked here. A coefficient outside the set is
/// exactly zero and is neither stored nor computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Support(u32);

/// A short list of orders held inline ([`Support::order_list`]).
#[derive(Clone, Copy, Debug)]
pub struct OrderList {
    orders: [usize; MAX_ORDER + 1],
    len: usize,
}

impl OrderList {
    /// The orders.
    pub fn as_slice(&self) -> &[usize] {
        &self.orders[..self.len]
    }
}

impl Support {
    /// No non-zero tangent coefficient.
    pub const EMPTY: Support = Support(0);

    /// Every order `1..=k`.
    pub fn full(k: usize) -> Support {
        assert!(k <= MAX_ORDER);
        Support(((1u64 << (k + 1)) - 2) as u32)
    }

    /// The orders in `orders` (each in `1..=MAX_ORDER`).
    pub fn from_orders(orders: &[usize]) -> Support {
        Support(orders.iter().fold(0u32, |m, &o| {
            assert!((1..=MAX_ORDER).contains(&o));
            m | (1 << o)
        }))
    }

    /// Whether order `k` may be non-zero.
    pub fn contains(self, k: usize) -> bool {
        k <= MAX_ORDER && self.0 & (1 << k) != 0
    }

    /// Adds order `k`.
    pub fn insert(&mut self, k: usize) {
        self.0 |= 1 << k;
    }

    /// The present orders in increasing order.
    pub fn orders(self) -> impl Iterator<Item = usize> {
        (1..=MAX_ORDER).filter(move |&k| self.contains(k))
    }

    /// The present orders in increasing order, after `0` if `with_primal`, as a list on the
    /// stack (for kernels that must not allocate).
    pub fn order_list(self, with_primal: bool) -> OrderList {
        let mut list = OrderList {
            orders: [0; MAX_ORDER + 1],
            len: usize::from(with_primal),
        };
        for k in self.orders() {
            list.orders[list.len] = k;
            list.len += 1;
        }
        list
    }

    /// The number of present orders.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Position of order `k` among the present orders (its plane index in storage).
    pub fn slot(self, k: usize) -> Option<usize> {
        self.contains(k)
            .then(|| (self.0 & ((1u32 << k) - 1)).count_ones() as usize)
    }

    /// The union of two supports.
    pub fn union(self, other: Support) -> Support {
        Support(self.0 | other.0)
    }

    /// Orders reachable as sums of present orders, up to `k`: the support of `φ(u)` for a smooth
    /// non-linear `φ` (and of products of such series).
    pub fn closure(self, k: usize) -> Support {
        let limit = Support::full(k).0 as u64;
        let mut m = self.0 as u64 & limit;
        loop {
            let mut next = m;
            for a in 1..=k {
                if m & (1 << a) != 0 {
                    next |= (m << a) & limit;
                }
            }
            if next == m {
                return Support(m as u32);
            }
            m = next;
        }
    }

    /// Support of the product of two series with these supports (primals non-zero), up to `k`.
    pub fn product(self, other: Support, k: usize) -> Support {
        let mut out = self.union(other);
        for a in self.orders() {
            for b in other.orders() {
                if a + b <= k {
                    out.insert(a + b);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_closure() {
        let s = Support::from_orders(&[2, 3]);
        assert_eq!(s.orders().collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(s.slot(3), Some(1));
        assert_eq!(s.slot(1), None);
        assert_eq!(s.closure(7).orders().collect::<Vec<_>>(), vec![2, 3, 4, 5, 6, 7]);
        assert_eq!(
            Support::from_orders(&[2]).closure(7).orders().collect::<Vec<_>>(),
            vec![2, 4, 6]
        );
        assert_eq!(Support::full(4).count(), 4);
        assert_eq!(Support::EMPTY.closure(5), Support::EMPTY);
        assert_eq!(
            Support::from_orders(&[2]).product(Support::from_orders(&[3]), 6),
            Support::from_orders(&[2, 3, 5])
        );
    }
}
