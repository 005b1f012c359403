//! Jets through whole networks against nested dual numbers on an independent evaluation of the
//! same parameters (tolerance 1e-8 relative, f64), structured tangents against dense ones, and
//! reverse-mode gradients against central finite differences.

use crate::common::*;
use stde::jet::{InputJets, Jet, Tangent};
use stde::nn::{Activation, Architecture, Mlp, Tape};

fn net(d: usize, hidden: &[usize], act: Activation, block: Option<usize>, seed: u64) -> Mlp<f64> {
    let arch = Architecture {
        input_dim: d,
        hidden: hidden.to_vec(),
        output_dim: 1,
        activation: act,
        block_size: block,
    };
    Mlp::new(arch, seed).unwrap()
}

/// Engine outputs y_0..y_K (derivative convention) for each row.
fn engine(net: &Mlp<f64>, input: &InputJets<f64>) -> Vec<Vec<f64>> {
    let mut tape = Tape::default();
    let out = net.forward(input, &mut tape).unwrap();
    (0..input.rows()).map(|r| out.derivatives(r, 0)).collect()
}

fn one_hot(d: usize, i: usize) -> Vec<f64> {
    let mut v = vec![0.0; d];
    v[i] = 1.0;
    v
}

#[test]
fn hessian_diagonal_from_one_hot_2_jets() {
    let d = 5;
    for act in [
        Activation::Tanh,
        Activation::Sin,
        Activation::Sigmoid,
        Activation::Softplus,
    ] {
        let net = net(d, &[8, 8], act, None, 3);
        let x0 = TestRng::new(9).vec(d, 0.8);
        let mut input = InputJets::new(2, d, d, x0.clone()).unwrap();
        input.set(1, Tangent::OneHot((0..d).collect())).unwrap();
        let got = engine(&net, &input);
        for i in 0..d {
            let want = curve_oracle::<D2>(&net, &x0, &[one_hot(d, i), vec![0.0; d]]);
            for n in 0..=2 {
                let e = rel_err(got[i][n], want[n], 1e-6);
                assert!(e < 1e-8, "{act:?} i={i} y{n}: {} vs {} ({e:e})", got[i][n], want[n]);
            }
        }
    }
}

#[test]
fn fourth_directional_derivative_from_dense_4_jet() {
    let d = 5;
    let net = net(d, &[8, 8], Activation::Tanh, None, 4);
    let mut rng = TestRng::new(10);
    let points = 3;
    let x = rng.vec(points * d, 0.8);
    let v = rng.vec(points * d, 1.0);
    let mut input = InputJets::new(4, d, 1, x.clone()).unwrap();
    input.set(1, Tangent::Dense(v.clone())).unwrap();
    let got = engine(&net, &input);
    for p in 0..points {
        let t = vec![v[p * d..(p + 1) * d].to_vec(), vec![0.0; d], vec![0.0; d], vec![0.0; d]];
        let want = curve_oracle::<D4>(&net, &x[p * d..(p + 1) * d], &t);
        for n in 0..=4 {
            assert!(
                rel_err(got[p][n], want[n], 1e-6) < 1e-8,
                "p={p} y{n}: {} vs {}",
                got[p][n],
                want[n]
            );
        }
    }
}

/// Multi-slot sparse jets (the gPINN 7-jet v2=e_i, v3=e_j), every output order, with and without
/// first-layer weight sharing.
#[test]
fn multi_slot_sparse_7_jets() {
    let d = 6;
    for block in [None, Some(2)] {
        let net = net(d, &[6, 5], Activation::Tanh, block, 5);
        let x0 = TestRng::new(11).vec(d, 0.7);
        let pairs = [(0usize, 1usize), (2, 2), (5, 3)];
        let mut input = InputJets::new(7, d, pairs.len(), x0.clone()).unwrap();
        input
            .set(2, Tangent::OneHot(pairs.iter().map(|p| p.0).collect()))
            .unwrap();
        input
            .set(3, Tangent::OneHot(pairs.iter().map(|p| p.1).collect()))
            .unwrap();
        let got = engine(&net, &input);
        for (r, &(i, j)) in pairs.iter().enumerate() {
            let mut t = vec![vec![0.0; d]; 7];
            t[1] = one_hot(d, i);
            t[2] = one_hot(d, j);
            let want = curve_oracle::<D8>(&net, &x0, &t);
            for n in 0..=7 {
                assert!(
                    rel_err(got[r][n], want[n], 1e-5) < 1e-8,
                    "block {block:?} ({i},{j}) y{n}: {} vs {}",
                    got[r][n],
                    want[n]
                );
            }
            assert_eq!(got[r][1], 0.0, "y1 is a symbolic zero");
        }
    }
}

#[test]
fn one_hot_and_sparse_equal_dense() {
    let d = 7;
    for block in [None, Some(7)] {
        let net = net(d, &[9, 9], Activation::Tanh, block, 6);
        let mut rng = TestRng::new(12);
        let (points, dirs) = (3, 4);
        let x = rng.vec(points * d, 0.9);
        let mut input = InputJets::new(4, d, dirs, x).unwrap();
        input
            .set(1, Tangent::OneHot((0..points * dirs).map(|r| (r * 5) % d).collect()))
            .unwrap();
        let rows = points * dirs;
        let mut row_ptr = vec![0];
        let (mut indices, mut values) = (vec![], vec![]);
        for r in 0..rows {
            for j in 0..(r % 3) {
                indices.push((r + 2 * j) % d);
                values.push(rng.next());
            }
            row_ptr.push(indices.len());
        }
        input
            .set(
                3,
                Tangent::Sparse {
                    row_ptr,
                    indices,
                    values,
                },
            )
            .unwrap();
        let structured = engine(&net, &input);
        let dense = engine(&net, &input.densified());
        for r in 0..rows {
            for n in 0..=4 {
                let (a, b) = (structured[r][n], dense[r][n]);
                assert!(
                    (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                    "block {block:?} row {r} y{n}: {a} vs {b}"
                );
            }
        }
    }
}

/// A loss built from orders 0, 2 and 4: L = Σ_rows (y2 − 0.3)² + 0.1·y4·y0 + 0.5·y0².
fn loss_and_cotangent(out: &Jet<f64>) -> (f64, Jet<f64>) {
    let mut bar = Jet::zeros_like(out);
    let mut loss = 0.0;
    for r in 0..out.rows() {
        let (y0, y2, y4) = (
            out.derivative(0, r, 0),
            out.derivative(2, r, 0),
            out.derivative(4, r, 0),
        );
        loss += (y2 - 0.3).powi(2) + 0.1 * y4 * y0 + 0.5 * y0 * y0;
        bar.add_derivative_cotangent(2, r, 0, 2.0 * (y2 - 0.3));
        bar.add_derivative_cotangent(4, r, 0, 0.1 * y0);
        bar.add_derivative_cotangent(0, r, 0, 0.1 * y4 + y0);
    }
    (loss, bar)
}

fn check_gradients(mut net: Mlp<f64>, input: &InputJets<f64>) {
    let mut tape = Tape::default();
    let out = net.forward(input, &mut tape).unwrap().clone();
    let (_, bar) = loss_and_cotangent(&out);
    let mut grad = vec![0.0; net.num_params()];
    let mut xgrad = vec![0.0; input.points() * input.dim()];
    net.backward(input, &mut tape, &bar, &mut grad, Some(&mut xgrad))
        .unwrap();
    let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let h = 1e-5;
    let mut eval =
        |net: &Mlp<f64>, input: &InputJets<f64>| loss_and_cotangent(net.forward(input, &mut tape).unwrap()).0;
    for i in 0..net.num_params() {
        let orig = net.params()[i];
        net.params_mut()[i] = orig + h;
        let lp = eval(&net, input);
        net.params_mut()[i] = orig - h;
        let lm = eval(&net, input);
        net.params_mut()[i] = orig;
        let fd = (lp - lm) / (2.0 * h);
        assert!(
            rel_err(grad[i], fd, 1e-3 * scale) < 1e-6,
            "param {i}: {} vs {fd}",
            grad[i]
        );
    }
    // input primal gradient
    for j in 0..xgrad.len() {
        let shifted = |delta: f64| {
            let mut x = input.primal().to_vec();
            x[j] += delta;
            let mut inp = InputJets::new(input.order(), input.dim(), input.dirs(), x).unwrap();
            for k in 1..=input.order() {
                inp.set(k, input.slot(k).clone()).unwrap();
            }
            inp
        };
        let fd = (eval(&net, &shifted(h)) - eval(&net, &shifted(-h))) / (2.0 * h);
        assert!(
            rel_err(xgrad[j], fd, 1e-3 * scale) < 1e-6,
            "x {j}: {} vs {fd}",
            xgrad[j]
        );
    }
}

#[test]
fn parameter_gradients_match_finite_differences() {
    let d = 4;
    let x = TestRng::new(13).vec(2 * d, 0.8);
    // one-hot 4-jets, two directions per point
    let mut input = InputJets::new(4, d, 2, x.clone()).unwrap();
    input.set(1, Tangent::OneHot(vec![0, 3, 1, 2])).unwrap();
    check_gradients(net(d, &[5, 4], Activation::Tanh, None, 7), &input);
    // dense tangents in two slots
    let mut dense = InputJets::new(4, d, 1, x.clone()).unwrap();
    dense.set(1, Tangent::Dense(TestRng::new(14).vec(2 * d, 1.0))).unwrap();
    dense.set(2, Tangent::Dense(TestRng::new(15).vec(2 * d, 1.0))).unwrap();
    check_gradients(net(d, &[5, 4], Activation::Sin, None, 8), &dense);
}

#[test]
fn weight_shared_gradients_match_finite_differences() {
    let d = 6;
    let x = TestRng::new(16).vec(2 * d, 0.8);
    let mut input = InputJets::new(4, d, 3, x.clone()).unwrap();
    input.set(1, Tangent::OneHot(vec![0, 1, 5, 2, 3, 4])).unwrap();
    input.set(2, Tangent::OneHot(vec![1, 1, 0, 5, 3, 2])).unwrap();
    check_gradients(net(d, &[5, 4], Activation::Tanh, Some(2), 9), &input);
    let mut dense = InputJets::new(4, d, 1, x).unwrap();
    dense.set(1, Tangent::Dense(TestRng::new(17).vec(2 * d, 1.0))).unwrap();
    check_gradients(net(d, &[5, 4], Activation::Tanh, Some(3), 10), &dense);
}

/// f32 agrees with f64 to f32 precision (relative 1e-4 on O(1) outputs through 3 layers, K = 4).
#[test]
fn f32_agrees_with_f64() {
    let d = 10;
    let net64 = net(d, &[32, 32], Activation::Tanh, None, 11);
    let net32 = net64.cast::<f32>();
    let x = TestRng::new(18).vec(4 * d, 0.8);
    let mut in64 = InputJets::new(4, d, d, x.clone()).unwrap();
    in64.set(1, Tangent::OneHot((0..4 * d).map(|r| r % d).collect()))
        .unwrap();
    let mut in32 = InputJets::new(4, d, d, x.iter().map(|v| *v as f32).collect()).unwrap();
    in32.set(1, Tangent::OneHot((0..4 * d).map(|r| r % d).collect()))
        .unwrap();
    let (mut t64, mut t32) = (Tape::default(), Tape::default());
    let o64 = net64.forward(&in64, &mut t64).unwrap();
    let o32 = net32.forward(&in32, &mut t32).unwrap();
    let scale = (0..in64.rows())
        .flat_map(|r| o64.derivatives(r, 0))
        .fold(0.0f64, |m, v| m.max(v.abs()));
    for r in 0..in64.rows() {
        for n in 0..=4 {
            let (a, b) = (o32.derivative(n, r, 0) as f64, o64.derivative(n, r, 0));
            assert!((a - b).abs() <= 1e-5 * scale, "row {r} y{n}: {a} vs {b}");
        }
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let net = net(4, &[3], Activation::Tanh, None, 1);
    let input = InputJets::new(2, 5, 1, vec![0.0; 5]).unwrap();
    assert!(net.forward(&input, &mut Tape::default()).is_err());
    let bad = Architecture {
        input_dim: 6,
        hidden: vec![3],
        output_dim: 1,
        activation: Activation::Tanh,
        block_size: Some(4),
    };
    assert!(Mlp::<f64>::new(bad, 0).is_err());
    assert!("relu".parse::<Activation>().is_err());
}

/// Block sums computed where the points are drawn (`Mlp::block_pre_activation`, attached to the
/// input jets) give the same outputs, bit for bit, as the stage's own; sums made with other
/// weights are ignored.
#[test]
fn drawn_block_sums_give_the_same_bits_and_stale_ones_are_ignored() {
    let (d, n, dirs) = (12, 3, 2);
    let mut net = net(d, &[8, 8], Activation::Tanh, Some(4), 5);
    let x = TestRng::new(4).vec(n * d, 0.7);
    let jets = |x: &[f64]| {
        let mut input = InputJets::new(2, d, dirs, x.to_vec()).unwrap();
        input
            .set(1, Tangent::OneHot((0..n * dirs).map(|r| (5 * r) % d).collect()))
            .unwrap();
        input
    };
    let sums = |net: &Mlp<f64>| {
        let mut values = Vec::new();
        let mut pre = Vec::new();
        for p in x.chunks(d) {
            assert!(net.block_pre_activation(p, &mut pre));
            assert_eq!(pre.len(), d / 4);
            values.extend_from_slice(&pre);
        }
        net.primal_block_sums(values).unwrap()
    };
    let bits = |v: Vec<Vec<f64>>| v.into_iter().flatten().map(f64::to_bits).collect::<Vec<_>>();
    let plain = bits(engine(&net, &jets(&x)));
    let mut with = jets(&x);
    with.set_block_sums(Some(sums(&net)));
    assert_eq!(bits(engine(&net, &with)), plain, "drawn block sums change the outputs");
    // sums made before the weights changed are not used
    let stale = sums(&net);
    net.params_mut().iter_mut().for_each(|p| *p *= 1.1);
    let fresh = bits(engine(&net, &jets(&x)));
    assert_ne!(fresh, plain);
    let mut with_stale = jets(&x);
    with_stale.set_block_sums(Some(stale));
    assert_eq!(bits(engine(&net, &with_stale)), fresh, "stale block sums were used");
    // no weight sharing: nothing to compute
    let plain_net = self::net(d, &[8], Activation::Tanh, None, 5);
    assert!(!plain_net.block_pre_activation(&x[..d], &mut Vec::new()));
    assert!(plain_net.primal_block_sums(vec![]).is_none());
}
