//! The formula language: values against closed forms, Taylor series along curves against nested
//! dual numbers, gradients against finite differences, and malformed input.

use crate::common::{D8, Nested, TestRng, factorial};
use stde::formula::{Curve, Formula, Scope};

const SPACE_TIME: Scope = Scope {
    dim: 2,
    time: true,
    solution: false,
};

/// A formula exercising every function and operator, and the same function written in Rust over
/// any dual number type (`x`, `y`, `t`).
const MIXED: &str = "exp(-t)*sin(x)*cos(y) + tanh(x*y) - sqrt(2 + t^2) + log(3 + x)/(1.5 + cosh(y)) \
    + atan(x - t) + sech(x)^2 + 2^x + tan(0.3*y) + (1 + x^2)^1.5 + sinh(t)/(x^-2 + 1) - -y^3";

fn mixed<D: Nested>(x: D, y: D, t: D) -> D {
    let one = D::cst(1.0);
    (-t).exp() * x.sin() * y.cos() + (x * y).tanh() - (t.powi(2) + 2.0).sqrt()
        + (x + 3.0).ln() / (y.cosh() + 1.5)
        + (x - t).atan()
        + (one / x.cosh()).powi(2)
        + (x * 2f64.ln()).exp()
        + (y * 0.3).tan()
        + (x * x + 1.0).powf(1.5)
        + t.sinh() / (x.powi(-2) + 1.0)
        + y.powi(3)
}

#[test]
fn values_match_closed_forms() {
    let f = Formula::parse(MIXED, SPACE_TIME).unwrap();
    let mut ws = f.workspace(0);
    let mut rng = TestRng::new(3);
    for _ in 0..20 {
        let (x, y, t) = (rng.next(), rng.next(), rng.next().abs());
        let v = f.eval(&mut ws, &[x, y], t, &[]);
        let want = mixed::<f64>(x, y, t);
        assert!((v - want).abs() < 1e-12 * want.abs().max(1.0), "{v} vs {want}");
    }
    // sums over coordinates, bound variables in indices, d, pi, abs, precedence
    let d = 1000;
    let scope = Scope {
        dim: d,
        time: false,
        solution: false,
    };
    let f = Formula::parse(
        "sum(i, 0, d-1, sin(x[i]) * i) / d + abs(x[d-1] - 3) + 2^3^2 - pi + -2^2",
        scope,
    )
    .unwrap();
    let x: Vec<f64> = (0..d).map(|i| (i as f64 * 0.37).sin()).collect();
    let want = (0..d).map(|i| x[i].sin() * i as f64).sum::<f64>() / d as f64 + (x[d - 1] - 3.0).abs() + 512.0
        - std::f64::consts::PI
        - 4.0;
    let v = f.eval(&mut f.workspace(0), &x, 0.0, &[]);
    assert!((v - want).abs() < 1e-10, "{v} vs {want}");
    // nested sums
    let f = Formula::parse("sum(i, 0, 2, sum(j, i, 2, x[i]*x[j]))", Scope { dim: 3, ..scope }).unwrap();
    let x = [1.0, 2.0, 3.0];
    let want: f64 = (0..3).flat_map(|i| (i..3).map(move |j| x[i] * x[j])).sum();
    assert_eq!(f.eval(&mut f.workspace(0), &x, 0.0, &[]), want);
}

#[test]
fn taylor_series_along_a_curve_match_nested_duals() {
    let f = Formula::parse(MIXED, SPACE_TIME).unwrap();
    let order = 8;
    let mut ws = f.workspace(order);
    let mut rng = TestRng::new(11);
    for _ in 0..5 {
        let x0 = [rng.next(), rng.next(), 0.5 * (rng.next() + 1.0)];
        let tangents: Vec<Vec<f64>> = (0..order).map(|_| rng.vec(3, 0.7)).collect();
        // normalised coefficients of each coordinate: x0 and v_k / k!
        let coord = |i: usize, out: &mut [f64]| {
            out[0] = x0[i];
            for k in 1..out.len() {
                out[k] = tangents[k - 1][i] / factorial(k);
            }
        };
        let mut got = vec![0.0; order + 1];
        f.series(&mut ws, &coord, &mut got);
        // oracle: the curve in nested duals
        let s = D8::var(0.0);
        let c: Vec<D8> = (0..3)
            .map(|i| {
                let mut xi = D8::cst(x0[i]);
                let mut p = D8::cst(1.0);
                for (k, v) in tangents.iter().enumerate() {
                    p *= s;
                    xi += p * (v[i] / factorial(k + 1));
                }
                xi
            })
            .collect();
        let y = mixed(c[0], c[1], c[2]);
        for k in 0..=order {
            let want = y.deriv(k);
            let have = got[k] * factorial(k);
            assert!(
                (have - want).abs() <= 1e-9 * want.abs().max(1.0),
                "order {k}: {have} vs {want}"
            );
        }
    }
}

/// Along curves through a prepared point, [`Formula::series_through_point`] (coordinate sums
/// taken at the point once, then only the touched terms, or for a dense curve each term's series
/// in its coordinate composed with the curve) equals the full [`Formula::series`], for sums it
/// may shortcut and sums it must not (reading time, another coordinate, a nested sum).
#[test]
fn series_through_a_prepared_point_equal_the_full_series() {
    let d = 40;
    let scope = Scope {
        dim: d,
        time: true,
        solution: false,
    };
    let texts = [
        "log((1 + sum(i, 0, d-1, x[i]^2))/2) + sum(i, 0, d-1, x[i])",
        "exp(-t) * sum(i, 0, d-1, sin(x[i]) * i) + sum(i, 1, d-1, x[i]*x[i-1])",
        "sum(i, 0, d-1, x[i]*t) + sum(i, 0, d-1, sum(j, 0, i, x[j]*x[i]))/d + x[3]^3",
        "sum(i, 0, d/2, cos(x[i]))^2 * sum(i, d/2, d-1, x[i]^3)",
    ];
    let mut rng = TestRng::new(5);
    for (text, order) in texts.iter().flat_map(|t| [1, 2, 3].map(|k| (t, k))) {
        let f = Formula::parse(text, scope).unwrap();
        let (mut dense_ws, mut sparse_ws) = (f.workspace(order), f.workspace(order));
        for point in 0..3 {
            let x0: Vec<f64> = rng.vec(d + 1, 1.0);
            f.prepare_point(&mut sparse_ws, &x0);
            let all: Vec<usize> = (0..=d).collect();
            for (support, dense) in [
                (vec![0], false),
                (vec![3, 17], false),
                (vec![2, 20, 39, d], false),
                (vec![d], false),
                (all.clone(), true),
                (all, false),
            ] {
                let tangents: Vec<Vec<f64>> = (0..order).map(|_| rng.vec(support.len(), 1.0)).collect();
                let coord = |i: usize, out: &mut [f64]| {
                    out.fill(0.0);
                    out[0] = x0[i];
                    if let Some(j) = support.iter().position(|&c| c == i) {
                        for k in 1..out.len() {
                            out[k] = tangents[k - 1][j] / factorial(k);
                        }
                    }
                };
                let (mut want, mut got) = (vec![0.0; order + 1], vec![0.0; order + 1]);
                f.series(&mut dense_ws, &coord, &mut want);
                let slots: Vec<Vec<f64>> = (1..=order)
                    .map(|k| {
                        (0..=d)
                            .map(|i| {
                                let mut c = vec![0.0; order + 1];
                                coord(i, &mut c);
                                c[k]
                            })
                            .collect()
                    })
                    .collect();
                let curve = if dense {
                    Curve::Dense { x: &x0, slots: &slots }
                } else {
                    Curve::Touching {
                        coord: &coord,
                        touched: &support,
                    }
                };
                f.series_through_point(&mut sparse_ws, curve, &mut got);
                for k in 0..=order {
                    assert!(
                        (got[k] - want[k]).abs() <= 1e-12 * want[k].abs().max(1.0),
                        "{text}, point {point}, support {support:?} (dense {dense}), order {k}: {} vs {}",
                        got[k],
                        want[k]
                    );
                }
            }
        }
    }
}

#[test]
fn gradients_with_respect_to_the_solution_match_finite_differences() {
    let scope = Scope {
        dim: 2,
        time: true,
        solution: true,
    };
    let f = Formula::parse(
        "3*(d[1]*d[0,0] + d[0]*d[0,1]) + 6*u*d[0,0] + sin(u)*t - x*d[t,0]^2",
        scope,
    )
    .unwrap();
    assert_eq!(f.partials(), &[vec![1], vec![0, 0], vec![0], vec![0, 1], vec![0, 2]]);
    let mut ws = f.workspace(1);
    let q = [0.3, -0.7, 1.1, 0.4, -0.2, 0.9];
    let (x, t) = ([0.2, -0.5], 0.6);
    let mut dq = vec![0.0; q.len()];
    let v = f.eval_with_gradient(&mut ws, &x, t, &q, &mut dq);
    assert!((v - f.eval(&mut ws, &x, t, &q)).abs() < 1e-14);
    for k in 0..q.len() {
        let h = 1e-6;
        let (mut a, mut b) = (q, q);
        a[k] += h;
        b[k] -= h;
        let fd = (f.eval(&mut ws, &x, t, &a) - f.eval(&mut ws, &x, t, &b)) / (2.0 * h);
        assert!((fd - dq[k]).abs() < 1e-7, "quantity {k}: {} vs {fd}", dq[k]);
    }
}

#[test]
fn malformed_formulas_name_the_position_and_the_problem() {
    let scope = Scope {
        dim: 3,
        time: false,
        solution: false,
    };
    let cases: &[(&str, usize, &str)] = &[
        ("", 0, "empty"),
        ("1 +", 3, "end of input"),
        ("sin(x", 5, "expected ')'"),
        ("foo(x)", 0, "unknown function 'foo'"),
        ("2*q", 2, "unknown name 'q'"),
        ("x[3]", 0, "out of range"),
        ("t + 1", 0, "no time coordinate"),
        ("u^2", 0, "'u' is not available"),
        ("d[0]", 0, "partials"),
        ("sum(x, 0, 2, x)", 4, "reserved"),
        ("x[y]", 0, "index"),
        ("1.2.3", 0, "not a finite number"),
        ("1e999", 0, "not a finite number"),
        ("2 # 3", 2, "unexpected character '#'"),
        ("(1))", 3, "unexpected ')'"),
        ("x y", 2, "unexpected 'y'"),
    ];
    for &(text, pos, needle) in cases {
        let e = Formula::parse(text, scope).expect_err(text);
        assert_eq!(e.position, pos, "{text}: {e}");
        assert!(e.to_string().contains(needle), "{text}: {e}");
    }
    // deep nesting is refused, not a stack overflow; a long run of signs is fine
    let deep = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(Formula::parse(&deep, scope).unwrap_err().to_string().contains("nested"));
    let signs = format!("{}1", "-".repeat(100_000));
    let f = Formula::parse(&signs, scope).unwrap();
    assert_eq!(f.eval(&mut f.workspace(0), &[0.0; 3], 0.0, &[]), 1.0);
    // an index computed out of range is caught before use
    let f = Formula::parse("sum(i, 0, d-1, x[i+1])", scope).unwrap();
    assert!(f.validate().unwrap_err().to_string().contains("outside"));
    Formula::parse("sum(i, 0, d-1, x[i])", scope)
        .unwrap()
        .validate()
        .unwrap();
}

#[test]
fn partials_indexed_by_sum_variables_and_their_gradients() {
    let scope = Scope {
        dim: 4,
        time: true,
        solution: true,
    };
    let text = "sum(i, 0, d-1, abs(d[i])^1.75)/d + 0.08*sum(i, 0, d-1, x[i]^2*d[i,i]) \
        - 0.05*(u - sum(i, 0, d-1, x[i]*d[i])) + u*sum(i, 1, d-1, d[i, t]^2) + d[0,0]";
    let f = Formula::parse(text, scope).unwrap();
    let want: Vec<Vec<usize>> = vec![
        vec![0, 0],
        vec![0],
        vec![1],
        vec![2],
        vec![3],
        vec![1, 1],
        vec![2, 2],
        vec![3, 3],
        vec![1, 4],
        vec![2, 4],
        vec![3, 4],
    ];
    assert_eq!(f.partials(), want.as_slice());
    let mut rng = TestRng::new(9);
    let x: Vec<f64> = (0..4).map(|_| rng.next()).collect();
    let t = 0.4;
    let q: Vec<f64> = (0..1 + want.len()).map(|_| rng.next()).collect();
    // closed form
    let p = |idx: &[usize]| q[1 + want.iter().position(|w| w == idx).unwrap()];
    let closed = (0..4).map(|i| p(&[i]).abs().powf(1.75)).sum::<f64>() / 4.0
        + 0.08 * (0..4).map(|i| x[i] * x[i] * p(&[i, i])).sum::<f64>()
        - 0.05 * (q[0] - (0..4).map(|i| x[i] * p(&[i])).sum::<f64>())
        + q[0] * (1..4).map(|i| p(&[i, 4]).powi(2)).sum::<f64>()
        + p(&[0, 0]);
    let mut ws = f.workspace(0);
    let mut dq = vec![0.0; q.len()];
    let v = f.eval_with_gradient(&mut ws, &x, t, &q, &mut dq);
    assert!((v - closed).abs() < 1e-13, "{v} vs {closed}");
    for k in 0..q.len() {
        let h = 1e-6;
        let (mut a, mut b) = (q.clone(), q.clone());
        a[k] += h;
        b[k] -= h;
        let fd = (f.eval(&mut ws, &x, t, &a) - f.eval(&mut ws, &x, t, &b)) / (2.0 * h);
        assert!((fd - dq[k]).abs() < 1e-7, "quantity {k}: {} vs {fd}", dq[k]);
    }
    // a pattern leaving the coordinates is refused when compiled
    let e = Formula::parse("sum(i, 0, d, d[i])", scope).unwrap_err();
    assert!(e.to_string().contains("leaves"), "{e}");
}

#[test]
fn gradients_with_respect_to_the_input_match_finite_differences() {
    let scope = Scope {
        dim: 3,
        time: true,
        solution: true,
    };
    // coordinates inside sums, by computed index, the time, and quantities held fixed
    let f = Formula::parse(
        "sum(i, 0, d-2, sin(x[i] + 3*cos(x[i+1]))*x[i]^2) + exp(-t)*x[2]*u + t^2*d[0] + abs(x[1])^1.5",
        scope,
    )
    .unwrap();
    let mut ws = f.workspace(0);
    let q = [0.7, -0.4];
    let point = [0.2, -0.5, 0.9, 0.35];
    let mut dx = vec![0.0; 4];
    let v = f.eval_with_input_gradient(&mut ws, &point, f64::NAN, &q, &mut dx);
    assert!((v - f.eval(&mut ws, &point, f64::NAN, &q)).abs() < 1e-14);
    for c in 0..4 {
        let h = 1e-6;
        let (mut a, mut b) = (point, point);
        a[c] += h;
        b[c] -= h;
        let fd = (f.eval(&mut ws, &a, f64::NAN, &q) - f.eval(&mut ws, &b, f64::NAN, &q)) / (2.0 * h);
        assert!((fd - dx[c]).abs() < 1e-7, "coordinate {c}: {} vs {fd}", dx[c]);
        assert!(dx[c] != 0.0, "coordinate {c} is live");
    }
}

#[test]
fn sums_evaluated_many_terms_at_once_equal_the_node_by_node_walk() {
    // a body without inner sums is evaluated for runs of terms at once; the same body beside a
    // (zero) inner sum is walked node by node: same value bits, same gradients to rounding, over
    // more terms than one run holds
    let d = 1500;
    let scope = Scope {
        dim: d,
        time: true,
        solution: true,
    };
    let body = "abs(d[i])^1.75/(1 + x[i]^2) + exp(-t)*sin(x[i])*d[i,i] + u*d[i]^2 - (2 + cos(x[i]))^x[0] + i*x[d-1-i]";
    let laned = Formula::parse(&format!("sum(i, 0, d-1, {body})"), scope).unwrap();
    let walked = Formula::parse(&format!("sum(i, 0, d-1, {body} + sum(j, 0, 0, 0*x[j]))"), scope).unwrap();
    assert_eq!(laned.partials().len(), walked.partials().len());
    let x: Vec<f64> = (0..=d).map(|i| 0.8 * ((i as f64) * 0.37).sin()).collect();
    let t = x[d];
    let q: Vec<f64> = (0..=laned.partials().len())
        .map(|k| ((k as f64) * 0.11).cos())
        .collect();
    let (mut wa, mut wb) = (laned.workspace(1), walked.workspace(1));
    let (mut da, mut db) = (vec![0.0; q.len()], vec![0.0; q.len()]);
    let va = laned.eval_with_gradient(&mut wa, &x[..d], t, &q, &mut da);
    let vb = walked.eval_with_gradient(&mut wb, &x[..d], t, &q, &mut db);
    assert_eq!(va.to_bits(), vb.to_bits(), "{va} vs {vb}");
    for k in 0..q.len() {
        assert!(
            (da[k] - db[k]).abs() <= 1e-12 * db[k].abs().max(1.0),
            "quantity {k}: {} vs {}",
            da[k],
            db[k]
        );
    }
    let (mut xa, mut xb) = (vec![0.0; d + 1], vec![0.0; d + 1]);
    laned.eval_with_input_gradient(&mut wa, &x, f64::NAN, &q, &mut xa);
    walked.eval_with_input_gradient(&mut wb, &x, f64::NAN, &q, &mut xb);
    for c in 0..=d {
        assert!(
            (xa[c] - xb[c]).abs() <= 1e-12 * xb[c].abs().max(1.0),
            "coordinate {c}: {} vs {}",
            xa[c],
            xb[c]
        );
    }
    assert!(xa[0] != 0.0 && xa[d] != 0.0 && da[0] != 0.0);
}
