//! High-order PDEs (spec §8): exact solutions make every residual vanish with every derivative
//! taken by the engine (probe planner + Taylor-mode formulas); the planned partials of a network
//! with the initial-value ansatz equal nested-dual partials; the spec's corrected jet recipes give
//! the same values as the planner.

use crate::common::{D4, D8, Mixed, Nested, TestRng, curve_oracle, mlp_eval};
use num_dual::Dual;
use stde::nn::{Ansatz, Architecture, Mlp};
use stde::operator::{MultiPlan, PlanBuilder, PlanPass, ProbePlan, formula_quantities};
use stde::pde::highorder::HIGH_ORDER;
use stde::pde::{Term, lookup};
use stde::train::residual::{ConditionDraw, ResidualWork, condition_step};

/// The residuals' plans as the trainer builds them (exact operator plans, then one plan per
/// partial the nonlinear parts read) and, per residual, the global index of each local partial.
fn plans(res: &[stde::pde::FormulaResidual], din: usize) -> (MultiPlan, Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let mut partials: Vec<Vec<usize>> = Vec::new();
    let mut maps = Vec::new();
    for r in res {
        let mut map = Vec::new();
        if let Some(f) = &r.nonlinear {
            for idx in f.partials() {
                let g = partials.iter().position(|p| p == idx).unwrap_or_else(|| {
                    partials.push(idx.clone());
                    partials.len() - 1
                });
                map.push(g);
            }
        }
        maps.push(map);
    }
    let mut all: Vec<ProbePlan> = res
        .iter()
        .map(|r| ProbePlan::exact(&r.operator, din).unwrap())
        .collect();
    for idx in &partials {
        let mut b = PlanBuilder::new();
        b.add_partial(1.0, idx).unwrap();
        all.push(b.finish());
    }
    (MultiPlan::new(all), maps, partials)
}

fn random_point(rng: &mut TestRng, d: usize) -> Vec<f64> {
    let mut x: Vec<f64> = (0..d).map(|_| 0.7 * rng.next()).collect();
    x.push(0.5 * (rng.next() + 1.0));
    x
}

#[test]
fn exact_solutions_make_every_residual_vanish() {
    let mut rng = TestRng::new(5);
    for h in &HIGH_ORDER {
        let res = h.residuals();
        let din = h.dim + 1;
        let (plan, maps, _) = plans(&res, din);
        let exact = h.exact_formula();
        let nr = res.len();
        for _ in 0..20 {
            let x = random_point(&mut rng, h.dim);
            let q = formula_quantities(&plan, &exact, &x);
            let u = exact.eval(&mut exact.workspace(0), &x, f64::NAN, &[]);
            let mut scale = 1.0f64;
            for (r, res_r) in res.iter().enumerate() {
                let mut value = q[r];
                scale = scale.max(q[r].abs());
                if let Some(f) = &res_r.nonlinear {
                    let mut qs = vec![u];
                    qs.extend(maps[r].iter().map(|&g| q[nr + g]));
                    let n = f.eval(&mut f.workspace(0), &x, f64::NAN, &qs);
                    scale = scale.max(n.abs());
                    value += n;
                }
                if let Some(f) = &res_r.source {
                    value -= f.eval(&mut f.workspace(0), &x, f64::NAN, &[]);
                }
                assert!(
                    value.abs() <= 1e-8 * scale,
                    "{} residual {} at {x:?}: {value:e} (scale {scale:e})",
                    h.name,
                    res_r.name
                );
            }
        }
    }
}

/// `∂^index [φ + t·N](x0)` by nested duals, `φ` written in Rust.
fn ansatz_partial<D: Mixed>(net: &Mlp<f64>, phi: &dyn Fn(&[D]) -> D, x0: &[f64], index: &[usize]) -> f64 {
    let mut x: Vec<D> = x0.iter().map(|&v| D::cst(v)).collect();
    for (level, &i) in index.iter().enumerate() {
        x[i] += D::eps(level);
    }
    let n = mlp_eval(net, &x)[0];
    let t = *x.last().unwrap();
    (phi(&x) + t * n).top()
}

type D1 = Dual<f64>;
type D2 = Dual<D1>;
type D3 = Dual<D2>;

fn partial_oracle(net: &Mlp<f64>, kdv: bool, x0: &[f64], index: &[usize]) -> f64 {
    // the initial data of kdv-2d (sin x cos y) and gkdv-1d (sin πx)
    fn phi<D: Nested>(x: &[D], kdv: bool) -> D {
        if kdv {
            x[0].sin() * x[1].cos()
        } else {
            (x[0] * std::f64::consts::PI).sin()
        }
    }
    match index.len() {
        0 => ansatz_partial::<f64>(net, &|x| phi(x, kdv), x0, index),
        1 => ansatz_partial::<D1>(net, &|x| phi(x, kdv), x0, index),
        2 => ansatz_partial::<D2>(net, &|x| phi(x, kdv), x0, index),
        3 => ansatz_partial::<D3>(net, &|x| phi(x, kdv), x0, index),
        4 => ansatz_partial::<D4>(net, &|x| phi(x, kdv), x0, index),
        n => panic!("order {n}"),
    }
}

#[test]
fn planned_partials_of_the_ansatz_match_nested_duals() {
    for name in ["kdv-2d", "kp-2d", "gkdv-1d"] {
        let h = HIGH_ORDER.iter().find(|h| h.name == name).unwrap();
        let kdv = h.dim == 2;
        let din = h.dim + 1;
        let net = test_net(din, 16, 7);
        let res = h.residuals();
        let (plan, _, partials) = plans(&res, din);
        let problem = (lookup(name).unwrap().build)(&stde::pde::ProblemSettings {
            dim: h.dim,
            problem_seed: 0,
            options: Default::default(),
            batch: 4,
            sampler: stde::pde::SamplerKind::RadiusUniform,
            gpinn_weight: 0.0,
            gpinn_form: Default::default(),
            path_steps: None,
            horizon: 0.3,
            terminal_batch: 20,
            terminal_weight: 20.0,
            terminal_gradient_weight: 0.05,
            boundary_batch: 4,
            boundary_weight: 20.0,
        });
        let mut rng = TestRng::new(17);
        let pts: Vec<Vec<f64>> = (0..4).map(|_| random_point(&mut rng, h.dim)).collect();
        let mut pass = PlanPass::<f64>::default();
        pass.set_offset(problem.offset.clone());
        pass.forward(&net, Ansatz::Time, &plan, pts.concat(), None).unwrap();
        let nr = res.len();
        for (p, x) in pts.iter().enumerate() {
            let u = partial_oracle(&net, kdv, x, &[]);
            assert!((pass.u(p) - u).abs() < 1e-12, "{name}: u {} vs {u}", pass.u(p));
            for (g, idx) in partials.iter().enumerate() {
                let want = partial_oracle(&net, kdv, x, idx);
                let have = pass.value(p, nr + g);
                assert!(
                    (have - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{name} d{idx:?}: {have} vs {want}"
                );
            }
            // the linear parts: Σ c·∂^α over the operator's explicit terms
            for (r, res_r) in res.iter().enumerate() {
                let (terms, _) = res_r.operator.expand(din);
                let want: f64 = terms
                    .iter()
                    .map(|t| t.coeff * partial_oracle(&net, kdv, x, &t.index))
                    .sum();
                let have = pass.value(p, r);
                assert!(
                    (have - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{name} L_{r}: {have} vs {want}"
                );
            }
        }
    }
}

/// The spec's corrected recipes (taylor-and-operators, equations §8.1) on a network, by nested
/// duals along the recipe's curves, against the mixed partials.
#[test]
fn the_specs_jet_recipes_hold() {
    let net = test_net(3, 16, 3);
    let x0 = [0.3, -0.2, 0.6];
    let e = |i: usize| -> Vec<f64> { (0..3).map(|j| f64::from(u8::from(i == j))).collect() };
    let zero = vec![0.0; 3];
    let curve = |slots: &[Vec<f64>]| curve_oracle::<D8>(&net, &x0, slots);
    let partial = |idx: &[usize]| crate::common::mixed_partial(&net, &x0, idx);
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() <= 1e-8 * b.abs().max(1.0), "{what}: {a} vs {b}");
    let (x, y, t) = (0, 1, 2);
    // KP: 5-jet v2 = e_t, v3 = e_x gives u_tx = y5/10
    let y5 = curve(&[zero.clone(), e(t), e(x), zero.clone(), zero.clone()]);
    close(y5[5] / 10.0, partial(&[x, t]), "KP u_tx");
    // KdV all-low-order alternative: u_xy = (B5 − A5)/5, u_xxxy = (B7 − A7)/35 with A = 7-jet
    // v1 = e_x, B = 7-jet v1 = e_x, v4 = e_y; u_ty = (D3 − C3)/3 with C = (e_y), D = (e_y, e_t)
    let mut a_slots = vec![zero.clone(); 7];
    a_slots[0] = e(x);
    let mut b_slots = a_slots.clone();
    b_slots[3] = e(y);
    let (a, b) = (curve(&a_slots), curve(&b_slots));
    close((b[5] - a[5]) / 5.0, partial(&[x, y]), "KdV u_xy");
    close((b[7] - a[7]) / 35.0, partial(&[x, x, x, y]), "KdV u_xxxy");
    let c = curve(&[e(y), zero.clone(), zero.clone()]);
    let d = curve(&[e(y), e(t), zero.clone()]);
    close((d[3] - c[3]) / 3.0, partial(&[y, t]), "KdV u_ty");
    // g-KdV (x, t) read as coordinates 0 and 2: u_txxx = (J2_7 − J1_7)/35, u_tx = (J2_5 − J1_5)/5
    let mut j1 = vec![zero.clone(); 7];
    j1[0] = e(x);
    let mut j2 = j1.clone();
    j2[3] = e(t);
    let (j1, j2) = (curve(&j1), curve(&j2));
    close((j2[7] - j1[7]) / 35.0, partial(&[x, x, x, t]), "g-KdV u_txxx");
    close((j2[5] - j1[5]) / 5.0, partial(&[x, t]), "g-KdV u_tx");
    close(j2[4] - j1[4], partial(&[t]), "g-KdV u_t");
}

#[test]
fn the_trainer_loss_of_the_exact_solution_is_zero_and_its_gradient_matches_finite_differences() {
    // loss at a network: check the formula path's gradient against central differences (f64)
    for name in ["kdv-2d", "kp-2d", "gkdv-1d"] {
        let cfg = stde::train::TrainConfig::for_equation(name);
        let mut settings_cfg = cfg.clone();
        settings_cfg.batch = 5;
        settings_cfg.boundary_batch = 3;
        let problem = settings_cfg.problem();
        let din = problem.input_dim();
        let mut net = test_net(din, 8, 11);
        let cond = &problem.conditions[0];
        assert!(matches!(cond.term, Term::Formula { .. }));
        let mut pts = vec![0.0; cond.points * din];
        cond.domain.fill_from(problem.dim, 1, 2, 0, &mut pts);
        let Term::Formula { residuals } = &cond.term else {
            unreachable!()
        };
        let draw = ConditionDraw {
            plans: residuals
                .iter()
                .map(|r| ProbePlan::exact(&r.operator, din).unwrap())
                .collect(),
            pairs: Vec::new(),
            diagonal: Vec::new(),
        };
        let mut work = ResidualWork::<f64>::default();
        let loss_at = |net: &Mlp<f64>, work: &mut ResidualWork<f64>, grad: &mut [f64]| {
            let mut p = pts.clone();
            condition_step(net, &problem, cond, &mut p, &draw, work, grad).unwrap()
        };
        let mut grad = vec![0.0; net.num_params()];
        let l0 = loss_at(&net, &mut work, &mut grad);
        assert!(l0.is_finite() && l0 > 0.0);
        let mut scratch = vec![0.0; net.num_params()];
        for &i in &[0usize, 5, 40, net.num_params() - 1] {
            let h = 1e-5;
            let v = net.params()[i];
            net.params_mut()[i] = v + h;
            let lp = loss_at(&net, &mut work, &mut scratch);
            net.params_mut()[i] = v - h;
            let lm = loss_at(&net, &mut work, &mut scratch);
            net.params_mut()[i] = v;
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() <= 1e-5 * fd.abs().max(1e-2),
                "{name} param {i}: {} vs {fd}",
                grad[i]
            );
        }
    }
}

fn test_net(input: usize, width: usize, seed: u64) -> Mlp<f64> {
    let arch = Architecture {
        input_dim: input,
        hidden: vec![width, width],
        output_dim: 1,
        activation: stde::nn::Activation::Tanh,
        block_size: None,
    };
    Mlp::<f64>::new(arch, seed).unwrap()
}
