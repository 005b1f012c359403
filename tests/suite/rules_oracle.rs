//! Every scalar Taylor rule, orders up to 8, against nested dual numbers (an implementation that
//! shares no code with the rule table). Tolerance 1e-10 relative in f64: the recurrences are
//! O(K²) sums of O(1) terms, so rounding stays within a few hundred ulps.

use crate::common::*;
use num_dual::DualNum;
use stde::jet::rules::{self, Unary};

const K: usize = 8;

fn check(rule: Unary, u0: f64, oracle: impl Fn(D8) -> D8, seed: u64) {
    let mut rng = TestRng::new(seed);
    let mut u = vec![u0];
    u.extend(rng.vec(K, 0.8));
    let got = rules::apply(rule, &u);
    let want = series_oracle::<D8>(&u, &oracle);
    for n in 0..=K {
        let e = rel_err(got[n], want[n], 1e-3);
        assert!(
            e <= 1e-10,
            "{rule:?} u0={u0} order {n}: got {} want {} (rel {e:e})",
            got[n],
            want[n]
        );
    }
}

#[test]
fn unary_rules_match_nested_duals() {
    for (seed, u0) in [(1u64, 0.3), (2, -0.7), (3, 1.4)] {
        check(Unary::Tanh, u0, |x| x.tanh(), seed);
        check(Unary::Sin, u0, |x| x.sin(), seed);
        check(Unary::Cos, u0, |x| x.cos(), seed);
        check(Unary::Sinh, u0, |x| x.sinh(), seed);
        check(Unary::Cosh, u0, |x| x.cosh(), seed);
        check(Unary::Exp, u0, |x| x.exp(), seed);
        check(Unary::Sigmoid, u0, |x| (D8::cst(1.0) + (-x).exp()).recip(), seed);
        check(Unary::Softplus, u0, |x| (D8::cst(1.0) + x.exp()).ln(), seed);
        check(Unary::Square, u0, |x| x * x, seed);
        check(Unary::Powi(3), u0, |x| x.powi(3), seed);
        check(Unary::Powi(-2), u0, |x| x.powi(-2), seed);
        check(Unary::Recip, u0, |x| x.recip(), seed);
        check(Unary::Arctan, u0, |x| x.atan(), seed);
        let pos = u0.abs() + 0.5;
        check(Unary::Log, pos, |x| x.ln(), seed);
        check(Unary::Sqrt, pos, |x| x.sqrt(), seed);
        check(Unary::Powf(1.7), pos, |x| x.powf(1.7), seed);
        check(Unary::Powf(-0.5), pos, |x| x.powf(-0.5), seed);
    }
}

#[test]
fn powi_is_exact_at_zero_primal() {
    let u = [0.0, 1.0, 0.5, 0.0, 0.0];
    let got = rules::apply(Unary::Powi(3), &u);
    let want = series_oracle::<D4>(&u, |x| x.powi(3));
    for n in 0..u.len() {
        assert!((got[n] - want[n]).abs() < 1e-14, "order {n}: {} vs {}", got[n], want[n]);
    }
}

#[test]
fn binary_rules_match_nested_duals() {
    let mut rng = TestRng::new(7);
    let u: Vec<f64> = std::iter::once(0.6).chain(rng.vec(K, 0.7)).collect();
    let w: Vec<f64> = std::iter::once(-1.3).chain(rng.vec(K, 0.7)).collect();
    // u·w and u/w as functions of s, via the oracle on a combined curve
    let both = |f: &dyn Fn(D8, D8) -> D8| -> Vec<f64> {
        let s = D8::var(0.0);
        let (mut a, mut b, mut p) = (D8::cst(0.0), D8::cst(0.0), D8::cst(1.0));
        for k in 0..=K {
            a += p * u[k];
            b += p * w[k];
            p *= s;
        }
        let y = f(a, b);
        (0..=K).map(|n| y.deriv(n) / factorial(n)).collect()
    };
    let mut y = vec![0.0; K + 1];
    rules::mul_forward(&u, &w, &mut y);
    for (n, want) in both(&|a, b| a * b).into_iter().enumerate() {
        assert!(rel_err(y[n], want, 1e-3) < 1e-12, "mul order {n}");
    }
    rules::div_forward(&u, &w, &mut y);
    for (n, want) in both(&|a, b| a / b).into_iter().enumerate() {
        assert!(rel_err(y[n], want, 1e-3) < 1e-10, "div order {n}");
    }
}

/// tanh(sin(x)·exp(x)) / (1 + x²), composed from the rule table, against the oracle.
#[test]
fn composition_matches_nested_duals() {
    for seed in 0..4u64 {
        let mut rng = TestRng::new(100 + seed);
        let mut u = vec![rng.next()];
        u.extend(rng.vec(K, 1.0));
        let s = rules::apply(Unary::Sin, &u);
        let e = rules::apply(Unary::Exp, &u);
        let mut se = vec![0.0; K + 1];
        rules::mul_forward(&s, &e, &mut se);
        let t = rules::apply(Unary::Tanh, &se);
        let sq = rules::apply(Unary::Square, &u);
        let mut den = vec![0.0; K + 1];
        rules::linear_combination(1.0, &sq, 0.0, &sq, &mut den);
        den[0] += 1.0;
        let mut y = vec![0.0; K + 1];
        rules::div_forward(&t, &den, &mut y);
        let want = series_oracle::<D8>(&u, |x| (x.sin() * x.exp()).tanh() / (D8::cst(1.0) + x * x));
        for n in 0..=K {
            assert!(
                rel_err(y[n], want[n], 1e-3) <= 1e-10,
                "order {n}: {} vs {}",
                y[n],
                want[n]
            );
        }
    }
}

/// The shared backward rule (Toeplitz adjoint with `g`) against central differences of the forward rule.
#[test]
fn unary_backward_matches_finite_differences() {
    let rules_list = [
        Unary::Tanh,
        Unary::Sin,
        Unary::Exp,
        Unary::Sigmoid,
        Unary::Softplus,
        Unary::Log,
        Unary::Sqrt,
        Unary::Powf(2.5),
        Unary::Arctan,
        Unary::Recip,
    ];
    let mut rng = TestRng::new(42);
    for rule in rules_list {
        let mut u = vec![0.9];
        u.extend(rng.vec(6, 0.5));
        let ybar = rng.vec(7, 1.0);
        let (mut y, mut g) = (vec![0.0; 7], vec![0.0; 7]);
        rules::unary_forward(rule, &u, stde::jet::Support::full(6), None, &mut y, &mut g);
        let mut ubar = vec![0.0; 7];
        rules::unary_backward(&ybar, &g, &mut ubar);
        let loss = |u: &[f64]| rules::apply(rule, u).iter().zip(&ybar).map(|(a, b)| a * b).sum::<f64>();
        for j in 0..7 {
            let h = 1e-6;
            let (mut up, mut um) = (u.clone(), u.clone());
            up[j] += h;
            um[j] -= h;
            let fd = (loss(&up) - loss(&um)) / (2.0 * h);
            assert!(rel_err(ubar[j], fd, 1e-2) < 1e-7, "{rule:?} j={j}: {} vs {fd}", ubar[j]);
        }
    }
}

#[test]
fn sparse_support_skipping_is_exact() {
    // v2 only: odd orders stay zero and the rest equals the full computation.
    let u = [0.4f64, 0.0, 0.7, 0.0, -0.2, 0.0, 0.0];
    let sup = stde::jet::Support::from_orders(&[2, 4]);
    let (mut y, mut g) = (vec![0.0; 7], vec![0.0; 7]);
    rules::unary_forward(Unary::Tanh, &u, sup, None, &mut y, &mut g);
    let full = rules::apply(Unary::Tanh, &u);
    for n in 0..7 {
        assert!((y[n] - full[n]).abs() < 1e-15);
    }
    assert_eq!(y[1], 0.0);
    assert_eq!(y[5], 0.0);
}

#[test]
fn conventions_round_trip() {
    let mut v = vec![1.0, 2.0, 6.0, 24.0];
    rules::to_normalised(&mut v);
    assert_eq!(v, vec![1.0, 2.0, 3.0, 4.0]);
    rules::to_derivative(&mut v);
    assert_eq!(v, vec![1.0, 2.0, 6.0, 24.0]);
}
