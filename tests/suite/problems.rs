//! The general residual path against independent oracles: shared-jet plans and their reverse mode
//! vs nested duals and finite differences; the residual of a closed-form solution vanishes for the
//! elliptic and parabolic descriptions; the gPINN loss and the source gradients; the terminal
//! value-and-gradient loss; the parabolic samplers' moments; collapsed = per-direction.

use crate::common::*;
use std::sync::Arc;
use stde::nn::{Activation, Ansatz, Architecture, Mlp};
use stde::operator::{
    Estimator, EstimatorKind, MultiPlan, Operator, PlanBuilder, PlanPass, ProbePlan, formula_quantities,
};
use stde::pde::{BallProblem, Condition, Domain, Equation, GpinnForm, Parabolic, Problem, SamplerKind, Term};
use stde::train::residual::{ConditionDraw, ResidualWork, condition_step, point_source};
use stde::train::slices::{Drawn, Slices};

fn net(input: usize, seed: u64) -> Mlp<f64> {
    let arch = Architecture {
        input_dim: input,
        hidden: vec![12, 12],
        output_dim: 1,
        activation: Activation::Tanh,
        block_size: None,
    };
    Mlp::<f64>::new(arch, seed).unwrap()
}

fn points(n: usize, d: usize, scale: f64, seed: u64) -> Vec<f64> {
    let mut rng = TestRng::new(seed);
    (0..n).flat_map(|_| rng.vec(d, scale)).collect()
}

fn partial(net: &Mlp<f64>, ansatz: Ansatz, x: &[f64], index: &[usize]) -> f64 {
    match ansatz {
        Ansatz::UnitBall => mixed_partial_ball(net, x, index),
        Ansatz::Identity => mixed_partial(net, x, index),
        Ansatz::Time | Ansatz::TimeSquared | Ansatz::TimeToGo(_) => {
            unreachable!("the time ansätze are tested in tests/highorder.rs and tests/gradient_terms.rs")
        }
    }
}

fn plan(f: impl Fn(&mut PlanBuilder)) -> ProbePlan {
    let mut b = PlanBuilder::new();
    f(&mut b);
    b.finish()
}

/// Checks `∂loss/∂θ` of `loss_of` at `net`'s parameters against central differences on a spread
/// of parameters (f64; step 1e-6 gives errors ≈ 1e-9 relative to the largest component).
fn check_gradient(net: &Mlp<f64>, grad: &[f64], loss_of: impl Fn(&Mlp<f64>) -> f64, what: &str) {
    let scale = grad.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-12);
    let n = net.num_params();
    for i in (0..n).step_by(n / 23 + 1).chain([n - 1]) {
        let h = 1e-6;
        let mut plus = net.clone();
        plus.params_mut()[i] += h;
        let mut minus = net.clone();
        minus.params_mut()[i] -= h;
        let fd = (loss_of(&plus) - loss_of(&minus)) / (2.0 * h);
        assert!(
            (fd - grad[i]).abs() <= 1e-6 * scale,
            "{what}: ∂/∂θ[{i}] = {} vs finite differences {fd}",
            grad[i]
        );
    }
}

#[test]
fn plan_pass_matches_nested_duals_and_finite_differences() {
    let d = 4;
    let w = [0.3, -0.5, 0.8, 0.1];
    let plans = || {
        vec![
            plan(|b| (0..d).for_each(|i| b.add_partial(1.0, &[i, i]).unwrap())),
            plan(|b| b.add_partial(1.0, &[0, 0, 1]).unwrap()),
            plan(|b| b.add_partial(1.0, &[2]).unwrap()),
            plan(|b| b.add_partial(-2.0, &[1, 3, 3]).unwrap()),
            plan(|b| b.add_directional(0.5, 2, &w)),
            plan(|b| b.add_partial(1.0, &[]).unwrap()),
        ]
    };
    let expected = |net: &Mlp<f64>, a: Ansatz, x: &[f64]| -> Vec<f64> {
        let p = |i: &[usize]| partial(net, a, x, i);
        let mut dir = 0.0;
        for i in 0..d {
            for j in 0..d {
                dir += 0.5 * w[i] * w[j] * p(&[i, j]);
            }
        }
        vec![
            (0..d).map(|i| p(&[i, i])).sum(),
            p(&[0, 0, 1]),
            p(&[2]),
            -2.0 * p(&[1, 3, 3]),
            dir,
            p(&[]),
        ]
    };
    let mp = MultiPlan::new(plans());
    let xs = points(3, d, 0.3, 1);
    let net = net(d, 2);
    for ansatz in [Ansatz::Identity, Ansatz::UnitBall] {
        let mut pass = PlanPass::<f64>::default();
        pass.forward(&net, ansatz, &mp, xs.clone(), None).unwrap();
        for p in 0..3 {
            let want = expected(&net, ansatz, &xs[p * d..(p + 1) * d]);
            for (q, w) in want.iter().enumerate() {
                let got = pass.value(p, q);
                // nested duals and Taylor rules agree to rounding: 1e-10 relative
                assert!(
                    rel_err(got, *w, 1.0) < 1e-10,
                    "{ansatz:?} point {p} quantity {q}: {got} vs {w}"
                );
            }
            assert!(rel_err(pass.u(p), want[5], 1.0) < 1e-12);
        }
        // reverse mode: L = Σ a_pq Q_q(p) + Σ b_p u_p
        let a: Vec<f64> = (0..3 * 6).map(|i| ((i * 7 % 5) as f64 - 2.0) / 3.0).collect();
        let b = [0.7, -0.4, 1.1];
        let loss_of = |net: &Mlp<f64>| {
            let mut pass = PlanPass::<f64>::default();
            pass.forward(net, ansatz, &mp, xs.clone(), None).unwrap();
            (0..3)
                .map(|p| (0..6).map(|q| a[p * 6 + q] * pass.value(p, q)).sum::<f64>() + b[p] * pass.u(p))
                .sum::<f64>()
        };
        let mut grad = vec![0.0; net.num_params()];
        let back = pass.backward(&net, &mp, &a, &b, &mut grad).unwrap();
        assert_eq!(back, xs, "points handed back");
        check_gradient(&net, &grad, loss_of, &format!("plan pass {ansatz:?}"));
    }
}

/// An offset `φ` (parameter-free, added to `u`) contributes to every quantity exactly the
/// formula's own derivatives: the pass with the offset minus the pass without it equals
/// [`formula_quantities`] (the formula's full series along every probe), for one-hot, two-hot and
/// dense probes at a dimension where the pass takes the offset's coordinate sums by their
/// touched terms only.
#[test]
fn an_offsets_jets_along_structured_probes_equal_its_full_series() {
    let d = 40;
    let din = d + 1;
    let scope = stde::formula::Scope {
        dim: d,
        time: true,
        solution: false,
    };
    let phi = Arc::new(
        stde::formula::Formula::parse(
            "log((1 + sum(i, 0, d-1, x[i]^2))/2) + t*sum(i, 0, d-1, sin(x[i])) + x[0]*x[5]^2",
            scope,
        )
        .unwrap(),
    );
    let w: Vec<f64> = (0..din).map(|i| (i as f64 * 0.7).sin()).collect();
    let mp = MultiPlan::new(vec![
        plan(|b| (0..d).for_each(|i| b.add_partial(1.0, &[i, i]).unwrap())),
        plan(|b| b.add_partial(1.0, &[d]).unwrap()),
        plan(|b| b.add_partial(2.0, &[0, 5]).unwrap()),
        plan(|b| b.add_partial(1.0, &[3, 3, 7]).unwrap()),
        plan(|b| b.add_directional(0.5, 2, &w)),
    ]);
    let xs = points(3, din, 0.5, 4);
    let net = net(din, 3);
    let mut plain = PlanPass::<f64>::default();
    plain.forward(&net, Ansatz::Identity, &mp, xs.clone(), None).unwrap();
    let mut with = PlanPass::<f64>::default();
    with.set_offset(Some(phi.clone()));
    with.forward(&net, Ansatz::Identity, &mp, xs.clone(), None).unwrap();
    for p in 0..3 {
        let x = &xs[p * din..(p + 1) * din];
        let want = formula_quantities(&mp, &phi, x);
        for (q, w) in want.iter().enumerate() {
            let got = with.value(p, q) - plain.value(p, q);
            assert!(rel_err(got, *w, 1.0) < 1e-10, "point {p} quantity {q}: {got} vs {w}");
        }
        let phi0 = phi.eval(&mut phi.workspace(0), x, f64::NAN, &[]);
        assert!(rel_err(with.u(p) - plain.u(p), phi0, 1.0) < 1e-12);
    }
}

/// `u = ansatz·N` is the exact solution of `L u + F(u) = f` when `f` is computed from it: the
/// source by nested duals of the same network, `L` the operator of a problem description.
struct NetSolution {
    net: Mlp<f64>,
    ansatz: Ansatz,
    /// The equation whose `F` is used.
    inner: Arc<dyn Equation>,
    /// `L` as a list of `(coefficient, partial)`.
    terms: Vec<(f64, Vec<usize>)>,
}

impl Equation for NetSolution {
    fn name(&self) -> String {
        "closed-form".into()
    }
    fn dim(&self) -> usize {
        self.inner.dim()
    }
    fn nonlinearity(&self, u: f64) -> (f64, f64, f64) {
        self.inner.nonlinearity(u)
    }
    fn source(&self, x: &[f64]) -> f64 {
        let lu: f64 = self
            .terms
            .iter()
            .map(|(c, i)| c * partial(&self.net, self.ansatz, x, i))
            .sum();
        lu + self.inner.nonlinearity(partial(&self.net, self.ansatz, x, &[])).0
    }
    fn exact(&self, _x: &[f64]) -> Option<f64> {
        None
    }
}

fn exact_draw(op: &Operator, din: usize) -> ConditionDraw {
    let mut est = Estimator::new(op, din, EstimatorKind::Exact, 0).unwrap();
    let mut rng = stde::pde::sampler::stream(0, 0, 0);
    ConditionDraw {
        plans: vec![est.draw(&mut rng).unwrap()],
        pairs: vec![],
        diagonal: vec![],
    }
}

#[test]
fn residual_of_a_closed_form_solution_vanishes() {
    // elliptic descriptions (ansatz ψN, Δu + F(u) = f) for each nonlinearity, and the parabolic
    // ones (∂_t u + Δ_x u + F(u) = 0 on (x, t)) for each of theirs
    let d = 5;
    let mut cases: Vec<(Problem, Arc<dyn Equation>)> = Vec::new();
    for name in ["poisson-two-body", "allen-cahn-two-body", "sine-gordon-two-body"] {
        let eq: Arc<dyn Equation> = Arc::new(BallProblem::from_name(name, d, 1).unwrap());
        cases.push((Problem::elliptic(eq.clone(), 4, SamplerKind::RadiusUniform, None), eq));
    }
    for name in ["semilinear-heat", "allen-cahn-parabolic", "sine-gordon-parabolic"] {
        let eq = Parabolic::from_name(name, d).unwrap();
        cases.push((Problem::parabolic(eq.clone(), 0.3, 4, 3, 20.0, 0.05), Arc::new(eq)));
    }
    let cube: Arc<dyn Equation> = Arc::new(stde::pde::CubePoisson { dim: d });
    cases.push((Problem::cube_poisson(d, 4, 3, 20.0), cube));
    for (problem, inner) in cases {
        let din = problem.input_dim();
        let net = net(din, 9);
        let Term::Residual { operator, .. } = &problem.conditions[0].term else {
            panic!("the interior condition is a residual");
        };
        let mut terms: Vec<(f64, Vec<usize>)> = (0..d).map(|i| (1.0, vec![i, i])).collect();
        if problem.time {
            terms.push((1.0, vec![d]));
        }
        let solution = Arc::new(NetSolution {
            net: net.clone(),
            ansatz: problem.ansatz,
            inner,
            terms,
        });
        let cond = Condition {
            term: Term::Residual {
                operator: operator.clone(),
                equation: solution,
                gpinn: None,
                gpinn_form: GpinnForm::Zipped,
            },
            ..problem.conditions[0].clone()
        };
        let mut pts = points(4, din, 0.3, 3);
        for collapsed in [false, true] {
            let mut work = ResidualWork::default();
            work.collapsed = collapsed;
            let mut grad = vec![0.0; net.num_params()];
            let loss = condition_step(
                &net,
                &problem,
                &cond,
                &mut pts,
                &exact_draw(operator, din),
                &mut work,
                &mut grad,
            )
            .unwrap();
            // mean r² ≤ 1e-16 ⇔ |r| ≤ 1e-8
            assert!(loss <= 1e-16, "{} (collapsed {collapsed}): loss {loss}", problem.name);
        }
    }
}

#[test]
fn source_gradients_match_finite_differences() {
    for name in ["poisson-two-body", "allen-cahn-two-body", "sine-gordon-two-body"] {
        for d in [2usize, 5, 300] {
            let p = BallProblem::from_name(name, d, 4).unwrap();
            let x: Vec<f64> = points(1, d, 0.5 / (d as f64).sqrt(), d as u64);
            let js: Vec<usize> = [0, 1, d / 2, d - 2, d - 1].into_iter().filter(|&j| j < d).collect();
            let mut out = vec![0.0; js.len()];
            let f = p.source_with_partials(&x, &js, &mut out).unwrap();
            assert!(rel_err(f, p.source(&x), 1e-12) < 1e-12, "{name}: f");
            for (&j, got) in js.iter().zip(&out) {
                let h = 1e-5;
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp[j] += h;
                xm[j] -= h;
                let fd = (p.source(&xp) - p.source(&xm)) / (2.0 * h);
                // central differences: O(h²·f''') ≈ 1e-9 of the source's scale (≈ d)
                assert!(
                    (got - fd).abs() <= 1e-7 * (1.0 + fd.abs()),
                    "{name} d={d}: ∂_{j} f = {got} vs {fd}"
                );
            }
        }
    }
    // three-body equations provide no gradient (the gPINN term is refused for them)
    let p = BallProblem::from_name("allen-cahn-three-body", 4, 1).unwrap();
    assert!(p.source_with_partials(&[0.1; 4], &[0], &mut [0.0]).is_none());
}

/// The gPINN loss in each form against nested duals of `ψN` (u and its partials) and the closed
/// form of `f`, `∂_j f`; its parameter gradient against finite differences.
#[test]
fn gpinn_loss_matches_nested_duals_and_its_gradient() {
    let d = 6;
    for name in ["allen-cahn-two-body", "sine-gordon-two-body", "poisson-two-body"] {
        for form in [GpinnForm::Zipped, GpinnForm::DoubleSum, GpinnForm::Consistent] {
            let eq = Arc::new(BallProblem::from_name(name, d, 2).unwrap());
            let problem = Problem::elliptic(eq.clone(), 3, SamplerKind::RadiusUniform, Some(0.1)).with_gpinn_form(form);
            let net = net(d, 5);
            // the sampled Laplacian over I = {1, 4} (weight d/R = 3), zipped with J = (2, 4)
            let draw = ConditionDraw {
                plans: vec![plan(|b| {
                    b.add_partial(3.0, &[1, 1]).unwrap();
                    b.add_partial(3.0, &[4, 4]).unwrap();
                })],
                pairs: vec![(1, 2), (4, 4)],
                diagonal: vec![],
            };
            let xs = points(3, d, 0.3, 8);
            let loss_of = |net: &Mlp<f64>, grad: &mut [f64]| {
                let mut work = ResidualWork::default();
                let mut pts = xs.clone();
                condition_step(net, &problem, &problem.conditions[0], &mut pts, &draw, &mut work, grad).unwrap()
            };
            let mut grad = vec![0.0; net.num_params()];
            let loss = loss_of(&net, &mut grad);
            // independent: u and its partials by nested duals of ψN; f and ∂_j f from the closed form
            let mut want = 0.0;
            for p in 0..3 {
                let x = &xs[p * d..(p + 1) * d];
                let part = |i: &[usize]| mixed_partial_ball(&net, x, i);
                let u = part(&[]);
                let (fu, dfu, _) = eq.nonlinearity(u);
                let mut df = [0.0; 2];
                let f = eq.source_with_partials(x, &[2, 4], &mut df).unwrap();
                let r = 3.0 * (part(&[1, 1]) + part(&[4, 4])) + fu - f;
                // g for (i, j) with j = J[b]
                let g = |i: usize, b: usize| {
                    let j = [2, 4][b];
                    part(&[i, i, j]) + dfu * part(&[j]) - df[b]
                };
                let gpinn = match form {
                    GpinnForm::Zipped => (g(1, 0).powi(2) + g(4, 1).powi(2)) / 2.0,
                    GpinnForm::DoubleSum => [1, 4]
                        .iter()
                        .flat_map(|&i| [0, 1].map(|b| g(i, b).powi(2)))
                        .sum::<f64>(),
                    GpinnForm::Consistent => {
                        let hat = |b: usize| {
                            let j = [2, 4][b];
                            3.0 * (part(&[1, 1, j]) + part(&[4, 4, j])) + dfu * part(&[j]) - df[b]
                        };
                        (hat(0).powi(2) + hat(1).powi(2)) / 2.0
                    }
                };
                want += (r * r + 0.1 * gpinn) / 3.0;
            }
            assert!(
                rel_err(loss, want, 1e-12) < 1e-9,
                "{name} {form:?}: gPINN loss {loss} vs {want}"
            );
            check_gradient(&net, &grad, |n| loss_of(n, &mut vec![0.0; n.num_params()]), name);
        }
    }
}

/// The consistent form with I = every coordinate: each term is `∂_j R` of the network's own
/// residual `R(x) = Δu + F(u) − f`, checked against central differences of `R` (its partials by
/// nested duals, `f` in closed form).
#[test]
fn the_consistent_gpinn_term_is_the_residual_gradient_when_i_is_every_coordinate() {
    let d = 4;
    for name in ["allen-cahn-two-body", "sine-gordon-two-body"] {
        let eq = Arc::new(BallProblem::from_name(name, d, 3).unwrap());
        let problem = Problem::elliptic(eq.clone(), 1, SamplerKind::RadiusUniform, Some(1.0))
            .with_gpinn_form(GpinnForm::Consistent);
        let net = net(d, 7);
        // I = every coordinate (weight d/R = 1), J a permutation of them
        let js = [2, 0, 3, 1];
        let draw = ConditionDraw {
            plans: vec![plan(|b| {
                for i in 0..d {
                    b.add_partial(1.0, &[i, i]).unwrap();
                }
            })],
            pairs: (0..d).map(|i| (i, js[i])).collect(),
            diagonal: vec![],
        };
        let x = points(1, d, 0.3, 5);
        let mut pts = x.clone();
        let mut grad = vec![0.0; net.num_params()];
        let mut work = ResidualWork::default();
        let loss = condition_step(
            &net,
            &problem,
            &problem.conditions[0],
            &mut pts,
            &draw,
            &mut work,
            &mut grad,
        )
        .unwrap();
        let residual = |y: &[f64]| {
            let lap: f64 = (0..d).map(|i| mixed_partial_ball(&net, y, &[i, i])).sum();
            lap + eq.nonlinearity(mixed_partial_ball(&net, y, &[])).0 - eq.source(y)
        };
        let h = 1e-4;
        let mut want = residual(&x).powi(2);
        let mut terms = 0.0;
        for &j in &js {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[j] += h;
            xm[j] -= h;
            terms += ((residual(&xp) - residual(&xm)) / (2.0 * h)).powi(2);
        }
        want += terms / d as f64;
        // central differences: O(h²) ≈ 1e-8 relative
        assert!(rel_err(loss, want, 1e-9) < 1e-6, "{name}: {loss} vs {want}");
    }
}

#[test]
fn terminal_loss_matches_nested_duals_and_its_gradient() {
    let d = 3;
    for name in ["semilinear-heat", "allen-cahn-parabolic"] {
        let eq = Parabolic::from_name(name, d).unwrap();
        let problem = Problem::parabolic(eq.clone(), 0.3, 4, 5, 20.0, 0.05);
        let cond = &problem.conditions[1];
        let net = net(d + 1, 6);
        let mut xs = vec![0.0; 5 * (d + 1)];
        cond.domain.fill_from(d, 3, 0, 0, &mut xs);
        let loss_of = |net: &Mlp<f64>, grad: &mut [f64]| {
            let mut work = ResidualWork::default();
            let mut pts = xs.clone();
            let l = condition_step(
                net,
                &problem,
                cond,
                &mut pts,
                &ConditionDraw::default(),
                &mut work,
                grad,
            )
            .unwrap();
            assert_eq!(pts, xs);
            l
        };
        let mut grad = vec![0.0; net.num_params()];
        let loss = loss_of(&net, &mut grad);
        let mut want = 0.0;
        for p in 0..5 {
            let x = &xs[p * (d + 1)..(p + 1) * (d + 1)];
            let mut gg = vec![0.0; d];
            let g = eq.terminal(&x[..d], &mut gg);
            let e = mixed_partial(&net, x, &[]) - g;
            let grad_err: f64 = (0..d).map(|i| (mixed_partial(&net, x, &[i]) - gg[i]).powi(2)).sum();
            want += 20.0 * (e * e + 0.05 * grad_err / d as f64) / 5.0;
        }
        assert!(
            rel_err(loss, want, 1e-12) < 1e-10,
            "{name}: terminal loss {loss} vs {want}"
        );
        check_gradient(&net, &grad, |n| loss_of(n, &mut vec![0.0; n.num_params()]), name);
    }
}

#[test]
fn cube_boundary_loss_matches_nested_duals_and_its_gradient() {
    let d = 4;
    let problem = Problem::cube_poisson(d, 4, 6, 20.0);
    let cond = &problem.conditions[1];
    let net = net(d, 7);
    let mut xs = vec![0.0; 6 * d];
    cond.domain.fill_from(d, 3, 0, 0, &mut xs);
    let loss_of = |net: &Mlp<f64>, grad: &mut [f64]| {
        let mut work = ResidualWork::default();
        let mut pts = xs.clone();
        condition_step(
            net,
            &problem,
            cond,
            &mut pts,
            &ConditionDraw::default(),
            &mut work,
            grad,
        )
        .unwrap()
    };
    let mut grad = vec![0.0; net.num_params()];
    let loss = loss_of(&net, &mut grad);
    let want: f64 = xs
        .chunks(d)
        .map(|x| {
            let target = x.iter().map(|v| v.exp()).sum::<f64>() / d as f64;
            20.0 * (mixed_partial(&net, x, &[]) - target).powi(2) / 6.0
        })
        .sum();
    assert!(rel_err(loss, want, 1e-12) < 1e-10, "boundary loss {loss} vs {want}");
    check_gradient(
        &net,
        &grad,
        |n| loss_of(n, &mut vec![0.0; n.num_params()]),
        "cube boundary",
    );
}

#[test]
fn cube_samplers_cover_the_cube_and_its_faces() {
    let (d, n) = (3, 6000);
    let mut x = vec![0.0f64; n * d];
    Domain::Cube.fill_from(d, 1, 0, 0, &mut x);
    assert!(x.iter().all(|v| (0.0..1.0).contains(v)));
    let mean = x.iter().sum::<f64>() / x.len() as f64;
    // 18 000 uniform values: SE of the mean ≈ 2e-3
    assert!((mean - 0.5).abs() < 0.01, "E x = {mean}");
    Domain::CubeBoundary.fill_from(d, 1, 0, 0, &mut x);
    let (mut ones, mut zeros) = (0, 0);
    for p in x.chunks(d) {
        let on_face: Vec<&f64> = p.iter().filter(|v| **v == 0.0 || **v == 1.0).collect();
        assert_eq!(on_face.len(), 1, "{p:?} lies on exactly one face");
        if *on_face[0] == 1.0 { ones += 1 } else { zeros += 1 }
    }
    // half the points on a face at 1: binomial SE ≈ 39 of 6000
    assert!((ones as i64 - zeros as i64).abs() < 300, "{ones} at 1, {zeros} at 0");
}

#[test]
fn parabolic_samplers_have_the_stated_moments() {
    // interior: t ~ U[0, T), x ~ N(0, 2t I) ⇒ E t = T/2, E x_i² = T; terminal: t = T, E x_i² = 2T
    let (d, n, horizon) = (5, 20_000, 0.3);
    for (domain, mean_t, mean_x2) in [
        (Domain::ParabolicInterior { horizon }, horizon / 2.0, horizon),
        (Domain::ParabolicTerminal { horizon }, horizon, 2.0 * horizon),
    ] {
        let mut x = vec![0.0f64; n * (d + 1)];
        domain.fill_from(d, 11, 0, 0, &mut x);
        let t: Vec<f64> = x.chunks(d + 1).map(|p| p[d]).collect();
        let mt = t.iter().sum::<f64>() / n as f64;
        assert!(t.iter().all(|&v| (0.0..=horizon).contains(&v)));
        // SE of the mean of t: T/√(12n) ≈ 6e-4
        assert!((mt - mean_t).abs() < 3e-3, "{domain:?}: E t = {mt}");
        let xs: Vec<f64> = x.chunks(d + 1).flat_map(|p| p[..d].to_vec()).collect();
        let m1 = xs.iter().sum::<f64>() / xs.len() as f64;
        let m2 = xs.iter().map(|v| v * v).sum::<f64>() / xs.len() as f64;
        // 10⁵ coordinates: SE of E x ≈ 2.4e-3, of E x² ≈ 2.7e-3 (terminal; less inside)
        assert!(m1.abs() < 0.012, "{domain:?}: E x = {m1}");
        assert!((m2 - mean_x2).abs() < 0.015, "{domain:?}: E x² = {m2} vs {mean_x2}");
        if matches!(domain, Domain::ParabolicTerminal { .. }) {
            assert!(t.iter().all(|&v| v == horizon), "terminal points sit at t = T");
        }
    }
}

/// Collapsed jets (one summed second-order buffer per point) give the same loss and gradient as
/// per-direction jets: sparse, exact and dense Laplacian draws with the unit-ball ansatz, and the
/// parabolic `∂_t u + Δ̂_x u` (the time direction carried to first order only) without it.
#[test]
fn collapsed_residual_step_equals_full() {
    let d = 12;
    let eq = Arc::new(BallProblem::from_name("allen-cahn-two-body", d, 3).unwrap());
    let elliptic = Problem::elliptic(eq, 6, SamplerKind::RadiusUniform, None);
    let heat = Parabolic::from_name("semilinear-heat", d).unwrap();
    let parabolic = Problem::parabolic(heat, 0.3, 6, 3, 20.0, 0.05);
    let dense: Vec<Vec<f64>> = (0..3)
        .map(|k| (0..d).map(|i| if (i * 7 + k) % 3 == 0 { 1.0 } else { -1.0 }).collect())
        .collect();
    let sparse = |t: Option<usize>| {
        plan(move |b| {
            [1, 4, 7, 11]
                .iter()
                .for_each(|&i| b.add_partial(d as f64 / 4.0, &[i, i]).unwrap());
            if let Some(t) = t {
                b.add_partial(1.0, &[t]).unwrap();
                b.add_partial(-0.5, &[2]).unwrap();
            }
        })
    };
    let cases = [
        (&elliptic, sparse(None)),
        (
            &elliptic,
            plan(|b| (0..d).for_each(|i| b.add_partial(1.0, &[i, i]).unwrap())),
        ),
        (
            &elliptic,
            plan(|b| dense.iter().for_each(|v| b.add_directional(1.0 / 3.0, 2, v))),
        ),
        // a first-order term beside the Laplacian, with the ansatz
        (
            &elliptic,
            plan(|b| {
                [0, 5].iter().for_each(|&i| b.add_partial(6.0, &[i, i]).unwrap());
                b.add_partial(0.7, &[3]).unwrap();
            }),
        ),
        (&parabolic, sparse(Some(d))),
        (
            &parabolic,
            plan(|b| {
                dense.iter().for_each(|v| {
                    let mut v = v.clone();
                    v.push(0.0);
                    b.add_directional(1.0 / 3.0, 2, &v)
                });
                b.add_partial(1.0, &[d]).unwrap();
            }),
        ),
    ];
    for (c, (problem, draw)) in cases.iter().enumerate() {
        let din = problem.input_dim();
        let net = net(din, 4);
        let points = points(6, din, 0.25, 5);
        let run = |collapsed: bool| {
            let mut work = ResidualWork::default();
            work.collapsed = collapsed;
            let mut grad = vec![0.0; net.num_params()];
            let mut pts = points.clone();
            let d = ConditionDraw {
                plans: vec![draw.clone()],
                pairs: vec![],
                diagonal: vec![],
            };
            let loss = condition_step(
                &net,
                problem,
                &problem.conditions[0],
                &mut pts,
                &d,
                &mut work,
                &mut grad,
            )
            .unwrap();
            assert_eq!(pts, points, "points handed back");
            (loss, grad)
        };
        let (l_full, g_full) = run(false);
        let (l_col, g_col) = run(true);
        assert!(
            rel_err(l_col, l_full, 1e-12) < 1e-10,
            "case {c}: loss {l_col} vs {l_full}"
        );
        let scale = g_full.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in g_col.iter().zip(&g_full).enumerate() {
            assert!((a - b).abs() <= 1e-10 * scale, "case {c}: grad[{i}] {a} vs {b}");
        }
        // and the collapsed step's gradient against central differences of its own loss (f64)
        let loss_of = |n: &Mlp<f64>| {
            let mut work = ResidualWork::default();
            work.collapsed = true;
            let mut scratch = vec![0.0; n.num_params()];
            let mut pts = points.clone();
            let d = ConditionDraw {
                plans: vec![draw.clone()],
                pairs: vec![],
                diagonal: vec![],
            };
            condition_step(
                n,
                problem,
                &problem.conditions[0],
                &mut pts,
                &d,
                &mut work,
                &mut scratch,
            )
            .unwrap()
        };
        check_gradient(&net, &g_col, loss_of, &format!("case {c}, collapsed"));
    }
}

/// The parabolic operator `Δ_x + ∂_t`: every sparse draw samples spatial coordinates only and
/// carries `∂_t` exactly; dense probes are zero in the time coordinate.
#[test]
fn the_time_derivative_is_never_sampled_away() {
    use stde::operator::{DenseDistribution, ProbeDirection, Sampling};
    let d = 5;
    let problem = Problem::parabolic(
        Parabolic::from_name("semilinear-heat", d).unwrap(),
        0.3,
        4,
        2,
        20.0,
        0.05,
    );
    let Term::Residual { operator, .. } = &problem.conditions[0].term else {
        panic!("residual");
    };
    let mut sparse = Estimator::new(operator, d + 1, EstimatorKind::Sparse(Sampling::Uniform), 2).unwrap();
    assert_eq!(
        sparse.pool_size(),
        d as u64,
        "the Laplacian's pool is the spatial coordinates"
    );
    let mut dense = Estimator::new(operator, d + 1, EstimatorKind::Dense(DenseDistribution::Rademacher), 3).unwrap();
    for k in 0..50 {
        let mut rng = stde::pde::sampler::stream(1, 2, k);
        let p = sparse.draw(&mut rng).unwrap();
        let time: Vec<_> = p
            .readout
            .iter()
            .filter(|r| p.probes[r.probe].slots == [(1, ProbeDirection::Coord(d))])
            .collect();
        assert_eq!(time.len(), 1, "draw {k}: ∂_t once");
        assert_eq!((time[0].n, time[0].weight), (1, 1.0));
        for pr in &p.probes {
            for (_, dir) in &pr.slots {
                if let ProbeDirection::Coord(c) = dir {
                    assert!(*c < d || pr.order == 1, "draw {k}: time in a second-order probe");
                }
            }
        }
        let p = dense.draw(&mut rng).unwrap();
        assert!(p.directions.iter().all(|w| w[d] == 0.0), "dense probes leave t alone");
        assert!(p.probes.iter().any(|pr| pr.slots == [(1, ProbeDirection::Coord(d))]));
    }
}

/// The trajectory sampler: paths start at (0, 0), times lie on the grid mΔt, increments are
/// N(0, 2Δt) per coordinate (moments within 5 standard errors, fixed seed), and a part of the
/// batch that does not start at a path's beginning (another rank's share) gets the same bits as
/// the whole batch.
#[test]
fn trajectory_points_follow_their_paths() {
    let (d, steps, horizon) = (30usize, 20usize, 0.3);
    let domain = Domain::ParabolicPaths { horizon, steps };
    let stride = d + 1;
    let paths = 200;
    let n = paths * steps;
    let mut all = vec![0.0f64; n * stride];
    domain.fill_from(d, 9, 4, 0, &mut all);
    let dt = horizon / steps as f64;
    let (mut sum, mut sum2, mut count) = (0.0, 0.0, 0.0);
    for q in 0..paths {
        for m in 0..steps {
            let x = &all[(q * steps + m) * stride..(q * steps + m + 1) * stride];
            assert!((x[d] - m as f64 * dt).abs() < 1e-15, "time of point {m} of path {q}");
            if m == 0 {
                assert!(x[..d].iter().all(|&v| v == 0.0), "paths start at 0");
            } else {
                let prev = &all[(q * steps + m - 1) * stride..];
                for i in 0..d {
                    let inc = x[i] - prev[i];
                    sum += inc;
                    sum2 += inc * inc;
                    count += 1.0;
                }
            }
        }
    }
    let var = 2.0 * dt;
    let mean = sum / count;
    let second = sum2 / count;
    // SE of the mean √(var/N); of the second moment √(2var²/N) for a normal
    assert!(mean.abs() < 5.0 * (var / count).sqrt(), "mean {mean}");
    assert!(
        (second - var).abs() < 5.0 * (2.0 * var * var / count).sqrt(),
        "variance {second} vs {var}"
    );
    // a part starting mid-path (and ending mid-path) has the whole batch's points
    let (first, len) = (13usize, 50usize);
    let mut part = vec![0.0f64; len * stride];
    domain.fill_from(d, 9, 4, first, &mut part);
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&part), bits(&all[first * stride..(first + len) * stride]));
}

/// A batch cut into slices ([`Slices`]) gives the loss and the gradient of the whole batch in one
/// step, for an elliptic residual (per-direction and collapsed, with the sources drawn beforehand,
/// a weight-shared first layer, and the gPINN term), and for both conditions of a parabolic problem.
#[test]
fn sliced_steps_equal_the_whole_batch() {
    let d = 6;
    let ac = Arc::new(BallProblem::from_name("allen-cahn-two-body", d, 2).unwrap());
    let heat = Parabolic::from_name("semilinear-heat", d).unwrap();
    let cases: Vec<(&str, Problem, Option<usize>)> = vec![
        (
            "elliptic",
            Problem::elliptic(ac.clone(), 7, SamplerKind::RadiusUniform, None),
            None,
        ),
        (
            "weight-shared",
            Problem::elliptic(ac.clone(), 7, SamplerKind::RadiusUniform, None),
            Some(2),
        ),
        (
            "gpinn",
            Problem::elliptic(ac.clone(), 7, SamplerKind::RadiusUniform, Some(0.1)),
            None,
        ),
        ("parabolic", Problem::parabolic(heat, 0.3, 7, 7, 20.0, 0.05), None),
    ];
    let ranges = [0..3, 3..5, 5..7];
    for (what, problem, block) in cases {
        let din = problem.input_dim();
        let arch = Architecture {
            input_dim: din,
            hidden: vec![12, 12],
            output_dim: 1,
            activation: Activation::Tanh,
            block_size: block,
        };
        let net = Mlp::<f64>::new(arch, 4).unwrap();
        for (c, cond) in problem.conditions.iter().enumerate() {
            let draw = match &cond.term {
                Term::Residual { operator, gpinn, .. } => {
                    let mut est = Estimator::new(
                        operator,
                        din,
                        EstimatorKind::Sparse(stde::operator::Sampling::Uniform),
                        3,
                    )
                    .unwrap();
                    let plans = vec![est.draw(&mut stde::pde::sampler::stream(1, 2, 3)).unwrap()];
                    let pairs = if gpinn.is_some() {
                        vec![(0, 1), (2, 2), (5, 3)]
                    } else {
                        vec![]
                    };
                    ConditionDraw {
                        plans,
                        pairs,
                        diagonal: vec![],
                    }
                }
                _ => ConditionDraw::default(),
            };
            let xs = points(7, din, 0.3, 11 + c as u64);
            for collapsed in [false, true] {
                let mut whole = ResidualWork::default();
                whole.collapsed = collapsed;
                let mut want = vec![0.0; net.num_params()];
                let loss = condition_step(&net, &problem, cond, &mut xs.clone(), &draw, &mut whole, &mut want).unwrap();
                // the sliced step, with whatever is computed at draw time
                let drawn = point_source::<f64>(&problem, cond).map(|source| {
                    let mut pre = vec![Vec::new(); 7];
                    let sources = xs
                        .chunks_exact(din)
                        .zip(&mut pre)
                        .map(|(x, p)| {
                            net.block_pre_activation(x, p);
                            source(&mut x.to_vec(), None, &mut |_| ())
                        })
                        .collect();
                    Drawn { sources, pre }
                });
                let mut work = ResidualWork::default();
                work.collapsed = collapsed;
                // a gradient that already holds another condition's part keeps it
                let mut got = vec![0.5; net.num_params()];
                let mut slices = Slices::default();
                let sliced = slices
                    .step(
                        &net,
                        &problem,
                        cond,
                        (&xs, &ranges, 7),
                        drawn,
                        &draw,
                        &mut work,
                        &mut got,
                    )
                    .unwrap();
                let tag = format!("{what} condition {c} collapsed {collapsed}");
                assert!(rel_err(sliced, loss, 1e-12) < 1e-12, "{tag}: loss {sliced} vs {loss}");
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - 0.5 - w).abs() <= 1e-12 * scale,
                        "{tag}: ∂/∂θ[{i}] {} vs {w}",
                        g - 0.5
                    );
                }
            }
        }
    }
}

/// The trainer's draw-time work ([`point_source`] inside [`Domain::fill_map`], the block sums
/// of a weight-shared first layer from the visited prefixes): unit-ball points arrive unscaled
/// and are finished by the source chunk by chunk. The points, sources, `ψ` and block sums are
/// those of drawing whole points first (`fill_from`) and computing each afterwards, bit for bit
/// (f32, d = 40 000 and 1 000: several visits and one; two-body, three-body and Poisson).
#[test]
fn draw_time_work_equals_work_on_the_drawn_points() {
    for (name, d, block) in [
        ("allen-cahn-two-body", 40_000usize, 100usize),
        ("sine-gordon-three-body", 1000, 10),
        ("poisson-two-body", 1000, 8),
    ] {
        let eq = Arc::new(BallProblem::from_name(name, d, 3).unwrap());
        let problem = Problem::elliptic(eq.clone(), 5, SamplerKind::RadiusUniform, None);
        let cond = &problem.conditions[0];
        let arch = Architecture {
            input_dim: d,
            hidden: vec![8],
            output_dim: 1,
            activation: Activation::Tanh,
            block_size: Some(block),
        };
        let net = Mlp::<f32>::new(arch, 2).unwrap();
        let source = point_source::<f32>(&problem, cond).expect("an elliptic residual");
        let mut drawn_points = vec![0.0f32; 5 * d];
        let drawn = cond.domain.fill_map(d, 7, 3, 0, &mut drawn_points, |x, pending| {
            assert!(pending.is_some(), "{name}: a ball point arrives unscaled");
            let mut pre = Vec::new();
            let mut visits = 0;
            let v = source(x, pending, &mut |prefix: &[f32]| {
                visits += 1;
                assert!(net.block_pre_activation_prefix(prefix, &mut pre));
            });
            (v, pre, visits)
        });
        let mut points = vec![0.0f32; 5 * d];
        cond.domain.fill_from(d, 7, 3, 0, &mut points);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&drawn_points), bits(&points), "{name}: points");
        for (x, ((f, psi), pre, visits)) in points.chunks(d).zip(drawn) {
            let (want_f, norm2) = eq.source_f32_and_norm2(x);
            assert_eq!(f.to_bits(), want_f.to_bits(), "{name}: source");
            assert_eq!(psi.to_bits(), (1.0 - norm2).to_bits(), "{name}: ψ");
            let mut want_pre = Vec::new();
            assert!(net.block_pre_activation(x, &mut want_pre));
            assert_eq!(bits(&pre), bits(&want_pre), "{name}: block sums");
            if name.ends_with("two-body") && d > 20_000 {
                assert!(visits > 1, "{name}: the point handed on in stretches ({visits} visits)");
            }
        }
    }
}
