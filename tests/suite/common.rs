//! Independent oracles for the engine's tests: nested dual numbers (`num-dual`) and a plain
//! re-implementation of the MLP that shares no code with the engine.
#![allow(dead_code)]

use num_dual::{Dual, DualNum};

/// A nested dual number that can act as the curve parameter `s` and report `dⁿ/dsⁿ`.
pub trait Nested: DualNum<Primitive = f64> + Copy {
    /// The variable `s` at value `x` (derivative 1 at every nesting level).
    fn var(x: f64) -> Self;
    /// The `n`-th derivative with respect to `s` (`n ≤` nesting depth).
    fn deriv(&self, n: usize) -> f64;
    /// A constant.
    fn cst(x: f64) -> Self {
        Self::from(x)
    }
}

impl Nested for f64 {
    fn var(x: f64) -> Self {
        x
    }
    fn deriv(&self, n: usize) -> f64 {
        assert_eq!(n, 0, "derivative deeper than the nesting");
        *self
    }
}

impl<T: Nested> Nested for Dual<T> {
    fn var(x: f64) -> Self {
        Dual::new(T::var(x), T::one())
    }
    fn deriv(&self, n: usize) -> f64 {
        if n == 0 {
            self.re.deriv(0)
        } else {
            self.eps.deriv(n - 1)
        }
    }
}

/// Depth-8 nested dual: derivatives up to order 8.
pub type D8 = Dual<Dual<Dual<Dual<Dual<Dual<Dual<Dual<f64>>>>>>>>;
/// Depth-4 nested dual.
pub type D4 = Dual<Dual<Dual<Dual<f64>>>>;
/// Depth-2 nested dual.
pub type D2 = Dual<Dual<f64>>;

/// Normalised output coefficients `c_0..c_K` of `f(u(s))` where `u(s) = Σ u_k s^k`, by nested duals.
pub fn series_oracle<D: Nested>(u: &[f64], f: impl Fn(D) -> D) -> Vec<f64> {
    let s = D::var(0.0);
    let mut x = D::cst(0.0);
    let mut p = D::cst(1.0);
    for &uk in u {
        x += p * uk;
        p *= s;
    }
    let y = f(x);
    (0..u.len()).map(|n| y.deriv(n) / factorial(n)).collect()
}

/// `n!`.
pub fn factorial(n: usize) -> f64 {
    (1..=n).fold(1.0, |a, i| a * i as f64)
}

/// Deterministic pseudo-random numbers in `[-1, 1)` for test inputs (SplitMix64).
pub struct TestRng(u64);

impl TestRng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        TestRng(seed)
    }
    /// Next value in `[-1, 1)`.
    pub fn next(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E3779B97F4A7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    /// `n` values in `[-scale, scale)`.
    pub fn vec(&mut self, n: usize, scale: f64) -> Vec<f64> {
        (0..n).map(|_| self.next() * scale).collect()
    }
}

/// Relative error `|a − b| / max(|b|, floor)`.
pub fn rel_err(a: f64, b: f64, floor: f64) -> f64 {
    (a - b).abs() / b.abs().max(floor)
}

use stde::nn::{Activation, Mlp};

fn act<D: Nested>(a: Activation, x: D) -> D {
    match a {
        Activation::Tanh => x.tanh(),
        Activation::Sin => x.sin(),
        Activation::Sigmoid => (D::cst(1.0) + (-x).exp()).recip(),
        Activation::Softplus => (D::cst(1.0) + x.exp()).ln(),
    }
}

/// The network evaluated independently of the engine (plain loops over dual numbers), reading
/// only the documented parameter layout.
pub fn mlp_eval<D: Nested>(net: &Mlp<f64>, x: &[D]) -> Vec<D> {
    let p = net.params();
    let a = net.architecture().activation;
    let mut h: Vec<D> = match net.shared_layout() {
        None => x.to_vec(),
        Some(s) => x
            .chunks(s.block)
            .map(|blk| {
                let mut z = D::cst(p[s.beta]);
                for (c, xv) in blk.iter().enumerate() {
                    z += *xv * p[s.w + c];
                }
                act(a, z)
            })
            .collect(),
    };
    let layers = net.affine_layers();
    for (l, layer) in layers.iter().enumerate() {
        let mut z = vec![D::cst(0.0); layer.fan_out];
        for (o, zo) in z.iter_mut().enumerate() {
            let mut acc = D::cst(p[layer.bias + o]);
            for (i, hi) in h.iter().enumerate() {
                acc += *hi * p[layer.weight + i * layer.fan_out + o];
            }
            *zo = acc;
        }
        h = if l + 1 < layers.len() {
            z.into_iter().map(|v| act(a, v)).collect()
        } else {
            z
        };
    }
    h
}

/// Derivative-convention outputs `y_0..y_K` of the network's first output along the curve
/// `x(s) = x0 + Σ_k v_k s^k / k!` (`tangents[k-1] = v_k`), by nested duals of depth ≥ K.
pub fn curve_oracle<D: Nested>(net: &Mlp<f64>, x0: &[f64], tangents: &[Vec<f64>]) -> Vec<f64> {
    let s = D::var(0.0);
    let x: Vec<D> = (0..x0.len())
        .map(|i| {
            let mut xi = D::cst(x0[i]);
            let mut p = D::cst(1.0);
            for (k, v) in tangents.iter().enumerate() {
                p *= s;
                xi += p * (v[i] / factorial(k + 1));
            }
            xi
        })
        .collect();
    let y = mlp_eval(net, &x)[0];
    (0..=tangents.len()).map(|n| y.deriv(n)).collect()
}

/// Nested duals as independent infinitesimals: level `l` perturbs one coordinate, and the
/// coefficient of `ε_0 ε_1 … ε_{q−1}` is the mixed partial.
pub trait Mixed: Nested {
    /// The infinitesimal of nesting level `level` (0 = outermost).
    fn eps(level: usize) -> Self;
    /// The coefficient of the product of the infinitesimals of every level.
    fn top(&self) -> f64;
}

impl Mixed for f64 {
    fn eps(_: usize) -> Self {
        panic!("no infinitesimal at depth 0")
    }
    fn top(&self) -> f64 {
        *self
    }
}

impl<T: Mixed> Mixed for Dual<T> {
    fn eps(level: usize) -> Self {
        if level == 0 {
            Dual::new(T::cst(0.0), T::cst(1.0))
        } else {
            Dual::new(T::eps(level - 1), T::cst(0.0))
        }
    }
    fn top(&self) -> f64 {
        self.eps.top()
    }
}

fn mixed_at<D: Mixed>(net: &Mlp<f64>, x0: &[f64], index: &[usize], ball: bool) -> f64 {
    let mut x: Vec<D> = x0.iter().map(|&v| D::cst(v)).collect();
    for (level, &i) in index.iter().enumerate() {
        x[i] += D::eps(level);
    }
    let n = mlp_eval(net, &x)[0];
    if ball {
        let mut psi = D::cst(1.0);
        for v in &x {
            psi -= *v * *v;
        }
        (psi * n).top()
    } else {
        n.top()
    }
}

/// `∂^index [(1 − ‖x‖²)·N](x0)` by nested duals: the trainer's hard-constraint ansatz.
pub fn mixed_partial_ball(net: &Mlp<f64>, x0: &[f64], index: &[usize]) -> f64 {
    mixed_partial_with(net, x0, index, true)
}

/// `∂^index u(x0)` of the network by nested duals (`index`: one coordinate per differentiation, ≤ 8).
pub fn mixed_partial(net: &Mlp<f64>, x0: &[f64], index: &[usize]) -> f64 {
    mixed_partial_with(net, x0, index, false)
}

fn mixed_partial_with(net: &Mlp<f64>, x0: &[f64], index: &[usize], ball: bool) -> f64 {
    type D1 = Dual<f64>;
    type D3 = Dual<D2>;
    type D5 = Dual<D4>;
    type D6 = Dual<D5>;
    type D7 = Dual<D6>;
    match index.len() {
        0 => mixed_at::<f64>(net, x0, index, ball),
        1 => mixed_at::<D1>(net, x0, index, ball),
        2 => mixed_at::<D2>(net, x0, index, ball),
        3 => mixed_at::<D3>(net, x0, index, ball),
        4 => mixed_at::<D4>(net, x0, index, ball),
        5 => mixed_at::<D5>(net, x0, index, ball),
        6 => mixed_at::<D6>(net, x0, index, ball),
        7 => mixed_at::<D7>(net, x0, index, ball),
        8 => mixed_at::<D8>(net, x0, index, ball),
        n => panic!("order {n} is beyond the oracle"),
    }
}
