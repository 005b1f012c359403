//! Exact probe plans against independent oracles: nested-dual mixed partials of an independent
//! network evaluation (f64, 1e-8 relative: the plans subtract contaminating terms whose
//! coefficients reach ~10³, so a few ulps of the largest term), and the JAX fixture values.

use crate::common::*;
use std::path::PathBuf;
use stde::nn::Ansatz;
use stde::nn::{Activation, Architecture, Mlp, Tape, checkpoint};
use stde::operator::{Operator, ProbePlan, evaluate_plan, evaluate_plan_with, parse};

fn net(d: usize, seed: u64) -> Mlp<f64> {
    let arch = Architecture {
        input_dim: d,
        hidden: vec![8, 8],
        output_dim: 1,
        activation: Activation::Tanh,
        block_size: None,
    };
    Mlp::new(arch, seed).unwrap()
}

fn check_operator(net: &Mlp<f64>, op: &Operator, x: &[f64], oracle: impl Fn(&[f64]) -> f64, what: &str) {
    let d = net.architecture().input_dim;
    let plan = ProbePlan::exact(op, d).unwrap();
    let (_, lu) = evaluate_plan(net, &plan, x, &mut Tape::default()).unwrap();
    for (p, got) in lu.iter().enumerate() {
        let want = oracle(&x[p * d..(p + 1) * d]);
        let e = rel_err(*got, want, 1e-3);
        assert!(e < 1e-8, "{what} point {p}: {got} vs {want} ({e:e})\n{plan}");
    }
}

/// Every derivative of the 2D KdV (x, y, t), 2D KP (x, y, t) and 1D g-KdV (x, t) residuals,
/// plus u_iij and u_xxxy, each as its own operator.
#[test]
fn benchmark_pde_partials() {
    let d = 3;
    let net = net(d, 1);
    let x = TestRng::new(2).vec(2 * d, 0.7);
    let (xx, y, t) = (0usize, 1usize, 2usize);
    let kdv = [
        vec![xx],
        vec![y],
        vec![xx, xx],
        vec![xx, y],
        vec![y, y],
        vec![t, y],
        vec![xx, xx, xx, y],
    ];
    let kp = [vec![t, xx], vec![xx, xx, xx, xx], vec![y, y]];
    // g-KdV on (x, t) = coordinates (0, 1)
    let gkdv = [
        vec![0, 0, 0],
        vec![0, 0, 0, 0],
        vec![0, 0, 0, 0, 0],
        vec![1],
        vec![1, 0],
        vec![1, 0, 0, 0],
        vec![1, 1],
        vec![0, 0, 1],
    ];
    for index in kdv
        .iter()
        .chain(&kp)
        .chain(&gkdv)
        .chain(&[vec![0, 0, 1], vec![2, 2, 1]])
    {
        let op = Operator::partial(index);
        check_operator(&net, &op, &x, |p| mixed_partial(&net, p, index), &format!("d{index:?}"));
    }
}

#[test]
fn laplacian_biharmonic_and_diag4() {
    let d = 3;
    let net = net(d, 3);
    let x = TestRng::new(4).vec(2 * d, 0.7);
    let lap = |p: &[f64]| (0..d).map(|i| mixed_partial(&net, p, &[i, i])).sum::<f64>();
    check_operator(&net, &Operator::laplacian(), &x, lap, "laplacian");
    let bih = |p: &[f64]| {
        (0..d)
            .flat_map(|i| (0..d).map(move |j| (i, j)))
            .map(|(i, j)| mixed_partial(&net, p, &[i, i, j, j]))
            .sum::<f64>()
    };
    check_operator(&net, &Operator::biharmonic(), &x, bih, "biharmonic");
    let diag4 = |p: &[f64]| (0..d).map(|i| mixed_partial(&net, p, &[i, i, i, i])).sum::<f64>();
    check_operator(&net, &Operator::diagonal(4), &x, diag4, "diag4");
}

/// 50 random operators: 1–4 terms, each a mixed partial of total order ≤ 6 over ≤ 4 distinct
/// coordinates of a 5-dimensional input, random coefficients.
#[test]
fn random_operators() {
    let d = 5;
    let net = net(d, 5);
    let x = TestRng::new(6).vec(d, 0.6);
    let mut rng = TestRng::new(7);
    let mut pick = |n: usize| ((rng.next() + 1.0) * 0.5 * n as f64) as usize % n;
    for case in 0..50 {
        let n_terms = 1 + pick(4);
        let mut terms = Vec::new();
        for _ in 0..n_terms {
            let order = 1 + pick(6);
            let distinct = 1 + pick(4.min(order));
            let coords: Vec<usize> = (0..distinct).map(|_| pick(d)).collect();
            let mut index: Vec<usize> = coords.clone();
            while index.len() < order {
                index.push(coords[pick(coords.len())]);
            }
            index.sort_unstable();
            terms.push((pick(7) as f64 - 3.0 + 0.5, index));
        }
        let text = terms
            .iter()
            .map(|(c, i)| format!("{c}*d{i:?}").replace(' ', ""))
            .collect::<Vec<_>>()
            .join(" + ");
        let op = parse(&text).unwrap();
        let oracle = |p: &[f64]| terms.iter().map(|(c, i)| c * mixed_partial(&net, p, i)).sum::<f64>();
        check_operator(&net, &op, &x, oracle, &format!("case {case}: {text}"));
    }
}

/// An operator as `(coefficient, mixed-partial index)` terms.
type Terms = Vec<(f64, Vec<usize>)>;

/// The trainer's ansatz `u = (1 − ‖x‖²)·N`: its value and operators, through the ψ jets multiplied
/// into the output jets, against nested duals of `ψ·N` (one-hot, sparse polarisation and mixed
/// probes, orders 0–6, with and without first-layer weight sharing).
#[test]
fn unit_ball_ansatz_operators() {
    let d = 4;
    let shared = Mlp::new(
        Architecture {
            input_dim: d,
            hidden: vec![8, 8],
            output_dim: 1,
            activation: Activation::Tanh,
            block_size: Some(2),
        },
        9,
    )
    .unwrap();
    for (name, net) in [("plain", net(d, 8)), ("shared", shared)] {
        let x = TestRng::new(10).vec(2 * d, 0.5);
        let ops: [(&str, Terms); 6] = [
            ("d[]", vec![(1.0, vec![])]),
            ("laplacian", (0..d).map(|i| (1.0, vec![i, i])).collect()),
            ("d[1]", vec![(1.0, vec![1])]),
            ("2*d[0,1] - d[2,2,3]", vec![(2.0, vec![0, 1]), (-1.0, vec![2, 2, 3])]),
            ("d[0,0,1,1,2,3]", vec![(1.0, vec![0, 0, 1, 1, 2, 3])]),
            (
                "biharmonic",
                (0..d)
                    .flat_map(|i| (0..d).map(move |j| (1.0, vec![i, i, j, j])))
                    .collect(),
            ),
        ];
        for (text, terms) in ops {
            let plan = ProbePlan::exact(&parse(text).unwrap(), d).unwrap();
            let (u, lu) = evaluate_plan_with(&net, Ansatz::UnitBall, &plan, &x, &mut Tape::default()).unwrap();
            for p in 0..2 {
                let xp = &x[p * d..(p + 1) * d];
                let want_u = mixed_partial_ball(&net, xp, &[]);
                assert!(
                    rel_err(u[p], want_u, 1e-3) < 1e-12,
                    "{name} {text}: u {} vs {want_u}",
                    u[p]
                );
                if text == "d[]" {
                    continue;
                }
                let want: f64 = terms.iter().map(|(c, i)| c * mixed_partial_ball(&net, xp, i)).sum();
                let e = rel_err(lu[p], want, 1e-3);
                assert!(e < 1e-9, "{name} {text} point {p}: {} vs {want} ({e:e})", lu[p]);
                // and the bare network differs (the ansatz is not a no-op here)
                let bare: f64 = terms.iter().map(|(c, i)| c * mixed_partial(&net, xp, i)).sum();
                assert!((bare - want).abs() > 1e-6, "{name} {text}: ψ changed nothing");
            }
        }
    }
}

/// The shared fixture (JAX nested forward mode, float64): every operator it lists, in f64 (1e-9)
/// and in f32 (1e-5 relative to the largest |L u| of that operator).
#[test]
fn fixture_operators() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let ck = checkpoint::load::<f64>(&dir.join("mlp_4_16_16_1.safetensors")).unwrap();
    let pts = stde::io::npy::read(&dir.join("points_8x4.npy")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mlp_4_16_16_1.expected.json")).unwrap()).unwrap();
    let net32 = ck.net.cast::<f32>();
    let x32: Vec<f32> = pts.data.iter().map(|v| *v as f32).collect();
    for (text, values) in expected["operators"].as_object().unwrap() {
        let want: Vec<f64> = values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let plan = ProbePlan::exact(&parse(text).unwrap(), 4).unwrap();
        let (_, got) = evaluate_plan(&ck.net, &plan, &pts.data, &mut Tape::default()).unwrap();
        let (_, got32) = evaluate_plan(&net32, &plan, &x32, &mut Tape::default()).unwrap();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for p in 0..want.len() {
            assert!(
                rel_err(got[p], want[p], 1e-3 * scale) < 1e-9,
                "{text} point {p}: {} vs {}",
                got[p],
                want[p]
            );
            let e32 = (got32[p] as f64 - want[p]).abs() / scale;
            assert!(
                e32 < 1e-5,
                "{text} f32 point {p}: {} vs {} ({e32:e})",
                got32[p],
                want[p]
            );
        }
    }
}
