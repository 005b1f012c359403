//! Collapsed second-order propagation against the uncollapsed engine (f64, ≤ 1e-10): the same
//! `Σ_d y₂`, the same `y₁`, and the same parameter gradients for a loss built from both.

use crate::common::*;
use stde::jet::collapsed::CollapsedJet;
use stde::jet::{InputJets, Jet, Tangent};
use stde::nn::{Activation, Architecture, CollapsedTape, Mlp, Tape};

fn inputs(d: usize, points: usize, dense: bool) -> InputJets<f64> {
    let x = TestRng::new(30).vec(points * d, 0.8);
    let mut input = InputJets::new(2, d, d, x).unwrap();
    let t = if dense {
        Tangent::Shared(TestRng::new(31).vec(d * d, 1.0))
    } else {
        Tangent::OneHot((0..points * d).map(|r| r % d).collect())
    };
    input.set(1, t).unwrap();
    input
}

#[test]
fn collapsed_matches_uncollapsed() {
    let (d, points) = (5, 3);
    for act in [Activation::Tanh, Activation::Sin, Activation::Softplus] {
        let arch = Architecture {
            input_dim: d,
            hidden: vec![7, 6],
            output_dim: 1,
            activation: act,
            block_size: None,
        };
        let net = Mlp::<f64>::new(arch, 4).unwrap();
        for dense in [false, true] {
            let input = inputs(d, points, dense);
            // uncollapsed
            let mut tape = Tape::default();
            let out = net.forward(&input, &mut tape).unwrap().clone();
            // collapsed
            let mut ctape = CollapsedTape::default();
            let cout = net.forward_collapsed(&input, &mut ctape).unwrap().clone();
            for p in 0..points {
                let lap: f64 = (0..d).map(|k| out.derivative(2, p * d + k, 0)).sum();
                assert!(
                    (cout.second_sum(p, 0) - lap).abs() <= 1e-10 * lap.abs().max(1.0),
                    "{act:?} point {p}: {} vs {lap}",
                    cout.second_sum(p, 0)
                );
                assert!((cout.primal()[p] - out.derivative(0, p * d, 0)).abs() < 1e-12);
                for k in 0..d {
                    assert!((cout.first()[p * d + k] - out.derivative(1, p * d + k, 0)).abs() < 1e-12);
                }
            }
            // loss L = Σ_p (Σ_d y₂ − 0.1)² + 0.3 Σ_rows y₁² + 0.2 Σ_p u
            let mut bar = Jet::zeros_like(&out);
            let mut cbar = CollapsedJet::zeros_like(&cout);
            for p in 0..points {
                let lap = cout.second_sum(p, 0);
                for k in 0..d {
                    bar.add_derivative_cotangent(2, p * d + k, 0, 2.0 * (lap - 0.1));
                    let y1 = cout.first()[p * d + k];
                    bar.add_derivative_cotangent(1, p * d + k, 0, 0.6 * y1);
                    cbar.first_mut()[p * d + k] = 0.6 * y1;
                }
                bar.add_derivative_cotangent(0, p * d, 0, 0.2);
                cbar.primal_mut()[p] = 0.2;
                cbar.sum2_mut()[p] = 2.0 * 2.0 * (lap - 0.1);
            }
            let mut g = vec![0.0; net.num_params()];
            net.backward(&input, &mut tape, &bar, &mut g, None).unwrap();
            let mut cg = vec![0.0; net.num_params()];
            net.backward_collapsed(&input, &mut ctape, &cbar, &mut cg).unwrap();
            let scale = g.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            for i in 0..g.len() {
                assert!(
                    (g[i] - cg[i]).abs() <= 1e-10 * scale,
                    "{act:?} dense={dense} param {i}: {} vs {}",
                    g[i],
                    cg[i]
                );
            }
        }
    }
}

#[test]
fn collapsed_rejects_unsupported_input() {
    let net = Mlp::<f64>::new(Architecture::mlp(4, 5, 3), 0).unwrap();
    let mut input = InputJets::new(3, 4, 1, vec![0.0; 4]).unwrap();
    input.set(1, Tangent::OneHot(vec![0])).unwrap();
    assert!(net.forward_collapsed(&input, &mut CollapsedTape::default()).is_err());
}
