//! The reference code's other equations (spec §9): the exact solutions satisfy the residuals with
//! every derivative taken by the engine, terminal data match the solutions, and the HJB-LQG
//! quadrature solution satisfies its PDE (finite differences) and agrees with seeded Monte Carlo.

use crate::common::TestRng;
use stde::pde::catalogue::{self, HjbLqgExact};
use stde::pde::custom::PdeSpec;
use stde::pde::{ExactValue, SamplerKind, Term};
use stde::train::residual::derived_source;

#[test]
fn exact_solutions_satisfy_the_residuals_through_the_engine() {
    let d = 6;
    let mut rng = TestRng::new(4);
    for name in ["hjb-lin", "black-scholes-barenblatt", "wave", "poisson-houman"] {
        let spec = PdeSpec::from_toml(catalogue::text(name).unwrap()).unwrap();
        let exact = spec.exact.clone().unwrap();
        let p = catalogue::problem(name, d, 4, SamplerKind::RadiusUniform, 4, 20.0);
        let din = p.input_dim();
        let Term::Formula { residuals } = &p.conditions[0].term else {
            panic!()
        };
        let u_star = stde::formula::Formula::parse(
            &exact,
            stde::formula::Scope {
                dim: d,
                time: p.time,
                solution: false,
            },
        )
        .unwrap();
        for _ in 0..10 {
            let mut x: Vec<f64> = (0..d).map(|_| 0.35 * rng.next()).collect();
            if p.time {
                x.push(0.5 * (rng.next() + 1.0));
            }
            for r in residuals {
                // L u* + N(u*) by the engine, against the source (0 where none is given)
                let lhs = derived_source(r, &u_star, din, &x).unwrap()[0];
                let f = r
                    .source
                    .as_ref()
                    .map_or(0.0, |s| s.eval(&mut s.workspace(0), &x, f64::NAN, &[]));
                assert!(
                    (lhs - f).abs() <= 1e-9 * f.abs().max(1.0),
                    "{name}: L u* + N = {lhs} vs f = {f}"
                );
            }
            // penalty targets equal u* where they apply
            for c in &p.conditions[1..] {
                let Term::Target { target, .. } = &c.term else { panic!() };
                let mut pt = vec![0.0; din];
                c.domain.fill_from(d, 1, 2, 0, &mut pt);
                let g = target.value_and_gradient(&pt, &mut vec![0.0; d]);
                let u = u_star.eval(&mut u_star.workspace(0), &pt, f64::NAN, &[]);
                assert!((g - u).abs() < 1e-12, "{name} {}: {g} vs {u}", c.name);
            }
        }
    }
}

#[test]
fn hjb_lqg_solution_satisfies_its_pde_and_matches_monte_carlo() {
    let d = 3;
    let exact = HjbLqgExact { dim: d, horizon: 1.0 };
    let x = [0.3, -0.5, 0.8];
    let t = 0.4;
    // terminal data
    let g = |x: &[f64]| ((1.0 + x.iter().map(|v| v * v).sum::<f64>()) / 2.0).ln();
    assert!((exact.value(&x, 1.0) - g(&x)).abs() < 1e-12);
    // u_t + Δu − ‖∇u‖² = 0 by central differences
    let h = 1e-3;
    let u = |x: &[f64], t: f64| exact.value(x, t);
    let u0 = u(&x, t);
    let ut = (u(&x, t + h) - u(&x, t - h)) / (2.0 * h);
    let mut lap = 0.0;
    let mut grad2 = 0.0;
    for i in 0..d {
        let (mut a, mut b) = (x, x);
        a[i] += h;
        b[i] -= h;
        lap += (u(&a, t) - 2.0 * u0 + u(&b, t)) / (h * h);
        grad2 += ((u(&a, t) - u(&b, t)) / (2.0 * h)).powi(2);
    }
    let r = ut + lap - grad2;
    assert!(r.abs() < 1e-5, "residual {r}");
    // seeded Monte Carlo of −ln E[exp(−g(x + √(2τ) z))], 10⁴ samples: within 4 standard errors
    let n = 10_000;
    let mut rng = TestRng::new(42);
    let tau: f64 = 1.0 - t;
    let mut w = Vec::with_capacity(n);
    for _ in 0..n {
        let pt: Vec<f64> = x.iter().map(|xi| xi + (2.0 * tau).sqrt() * normal(&mut rng)).collect();
        w.push((-g(&pt)).exp());
    }
    let mean = w.iter().sum::<f64>() / n as f64;
    let sd = (w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
    let mc = -mean.ln();
    let se = sd / mean / (n as f64).sqrt();
    assert!((mc - u0).abs() < 4.0 * se, "MC {mc} ± {se} vs quadrature {u0}");
    let full = [x[0], x[1], x[2], t];
    assert_eq!(exact.exact_value(&full), Some(u0));
}

/// A standard normal by Box–Muller from the test generator.
fn normal(rng: &mut TestRng) -> f64 {
    let u1 = 0.5 * (rng.next() + 1.0);
    let u2 = 0.5 * (rng.next() + 1.0);
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}
