//! Gradient terms (`∇u` in a residual's nonlinear part) by the gradient sweep: the loss and its
//! parameter gradient equal those of one jet per partial (the oracle) to rounding in f64, on every
//! catalogue equation that reads `∇u` and on user PDEs with each ansatz and an offset, with and
//! without first-layer weight sharing; the sweep's gradient matches central differences.

use stde::nn::{Activation, Architecture, Mlp};
use stde::operator::ProbePlan;
use stde::pde::custom::PdeSpec;
use stde::pde::{Problem, SamplerKind, Term};
use stde::train::TrainConfig;
use stde::train::residual::{ConditionDraw, ResidualWork, condition_step};
use stde::train::routes::GRADIENT_SWEEP_MIN_PARTIALS;

fn net(din: usize, block: Option<usize>, seed: u64) -> Mlp<f64> {
    let arch = Architecture {
        input_dim: din,
        hidden: vec![12, 12],
        output_dim: 1,
        activation: Activation::Tanh,
        block_size: block,
    };
    Mlp::<f64>::new(arch, seed).unwrap()
}

/// One step of the formula condition of `problem` at fixed points, with the first-order partials
/// from jets (`jets = true`) or from the sweep and the sampled diagonal coordinates `diagonal`
/// (empty: exact): the loss, its gradient and the residuals.
fn step(problem: &Problem, net: &Mlp<f64>, pts: &[f64], jets: bool, diagonal: &[usize]) -> (f64, Vec<f64>, Vec<f64>) {
    let din = problem.input_dim();
    let cond = problem
        .conditions
        .iter()
        .find(|c| matches!(c.term, Term::Formula { .. }))
        .expect("a formula condition");
    let Term::Formula { residuals } = &cond.term else {
        unreachable!()
    };
    let draw = ConditionDraw {
        plans: residuals
            .iter()
            .map(|r| ProbePlan::exact(&r.operator, din).unwrap())
            .collect(),
        pairs: Vec::new(),
        diagonal: diagonal.to_vec(),
    };
    let mut work = ResidualWork::<f64>::default();
    work.first_order_jets = jets;
    let mut grad = vec![0.0; net.num_params()];
    let mut p = pts.to_vec();
    let loss = condition_step(net, problem, cond, &mut p, &draw, &mut work, &mut grad).unwrap();
    assert_eq!(p, pts, "the points come back unchanged");
    (loss, grad, work.formula_residuals().to_vec())
}

/// Loss and gradient with every partial exact, by jets or by the sweep.
fn loss_and_grad(problem: &Problem, net: &Mlp<f64>, pts: &[f64], jets: bool) -> (f64, Vec<f64>) {
    let (loss, grad, _) = step(problem, net, pts, jets, &[]);
    (loss, grad)
}

fn points(problem: &Problem, n: usize, seed: u64) -> Vec<f64> {
    let din = problem.input_dim();
    let cond = &problem.conditions[0];
    let mut pts = vec![0.0; n * din];
    cond.domain.fill_from(problem.dim, seed, 7, 0, &mut pts);
    pts
}

fn assert_same(name: &str, a: (f64, Vec<f64>), b: (f64, Vec<f64>)) {
    let tol = |x: f64| 1e-10 * x.abs().max(1e-3);
    assert!(
        (a.0 - b.0).abs() <= tol(b.0),
        "{name}: loss {} (sweep) vs {} (jets)",
        a.0,
        b.0
    );
    let scale = b.1.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.1.iter().zip(&b.1).enumerate() {
        assert!(
            (x - y).abs() <= 1e-10 * scale.max(1e-3),
            "{name}: gradient entry {i}: {x} (sweep) vs {y} (jets)"
        );
    }
}

/// Each user-PDE shape the sweep serves, with every ansatz (and an offset).
const USER_PDES: [(&str, &str); 6] = [
    (
        "ball, ‖∇u‖²",
        r#"
domain = "ball"
ansatz = "ball"
exact = "sum(i, 0, d-1, sin(x[i]))"
[[residual]]
operator = "laplacian"
nonlinear = "d*sum(i, 0, d-1, d[i]^2) + u^3"
"#,
    ),
    (
        "cube, |∂u|^1.75 and x·∇u",
        r#"
domain = "cube"
exact = "sum(i, 0, d-1, x[i]^2)"
[[residual]]
operator = "laplacian"
nonlinear = "sum(i, 0, d-1, abs(d[i])^1.75) - sum(i, 0, d-1, x[i]*d[i])"
"#,
    ),
    (
        "initial offset, ∂_t inside the nonlinearity",
        r#"
domain = "ball-time"
ansatz = "initial"
initial = "sum(i, 0, d-1, cos(x[i])*x[i])"
exact = "exp(-t)*sum(i, 0, d-1, cos(x[i])*x[i])"
[[residual]]
operator = "d[t] - laplacian"
nonlinear = "sum(i, 0, d-1, d[i]^2) + d[t]*u + x[0]*d[t]"
"#,
    ),
    (
        "at rest, mixed first and second order",
        r#"
domain = "ball-time"
ansatz = "initial-at-rest"
initial = "sum(i, 0, d-1, sinh(x[i]))"
exact = "cosh(t)*sum(i, 0, d-1, sinh(x[i]))"
[[residual]]
operator = "d[t,t] - laplacian"
nonlinear = "sum(i, 0, d-1, d[i]*d[i,i]) + sin(d[0] + d[1])"
"#,
    ),
    (
        "gaussian-time, x_i² u_ii and x·∇u (Black–Scholes form)",
        r#"
domain = "gaussian-time"
[[residual]]
operator = "d[t]"
nonlinear = "0.08*sum(i, 0, d-1, x[i]^2*d[i,i]) - 0.05*(u - sum(i, 0, d-1, x[i]*d[i]))"
[terminal]
target = "sum(i, 0, d-1, x[i]^2)"
"#,
    ),
    (
        "terminal ansatz u = g + (T − t)·N, |∂u|^1.75 and ∂_t (HJB form)",
        r#"
domain = "gaussian-time"
ansatz = "terminal"
horizon = 0.7
[[residual]]
operator = "laplacian + d[t]"
nonlinear = "-sum(i, 0, d-1, abs(d[i])^1.75)/d + d[t]*u"
source = "-2"
[terminal]
target = "sum(i, 0, d-1, sin(x[i]))"
"#,
    ),
];

#[test]
fn the_sweep_equals_one_jet_per_partial_on_the_catalogue_and_user_pdes() {
    let d = 6;
    assert!(d >= GRADIENT_SWEEP_MIN_PARTIALS, "the sweep is taken at this d");
    let mut problems: Vec<(String, Problem)> = ["hjb-lin", "hjb-lqg", "black-scholes-barenblatt"]
        .iter()
        .map(|name| {
            let mut cfg = TrainConfig::for_equation(name);
            cfg.dim = d;
            cfg.batch = 5;
            (name.to_string(), cfg.problem())
        })
        .collect();
    for (name, text) in USER_PDES {
        let spec = PdeSpec::from_toml(text).unwrap();
        problems.push((
            name.to_string(),
            spec.problem(d, 5, SamplerKind::RadiusUniform).unwrap(),
        ));
    }
    for (name, problem) in &problems {
        let din = problem.input_dim();
        for block in [None, Some(2)] {
            // a block size that divides the input dimension (time included)
            let block = block.map(|_| if din.is_multiple_of(2) { 2 } else { din });
            let net = net(din, block, 3);
            let pts = points(problem, 5, 11);
            let sweep = loss_and_grad(problem, &net, &pts, false);
            let jets = loss_and_grad(problem, &net, &pts, true);
            assert!(
                sweep.0 > 0.0 && sweep.1.iter().any(|g| *g != 0.0),
                "{name}: a live loss"
            );
            assert_same(&format!("{name} (block {block:?})"), sweep, jets);
        }
    }
}

#[test]
fn the_sweep_gradient_matches_central_differences() {
    let d = 5;
    for (name, text) in USER_PDES {
        let spec = PdeSpec::from_toml(text).unwrap();
        let problem = spec.problem(d, 4, SamplerKind::RadiusUniform).unwrap();
        let din = problem.input_dim();
        let mut net = net(din, None, 5);
        let pts = points(&problem, 4, 3);
        let (_, grad) = loss_and_grad(&problem, &net, &pts, false);
        let np = net.num_params();
        for i in [0, 7, din * 12 + 3, np / 2, np - 1] {
            let h = 1e-5;
            let v = net.params()[i];
            net.params_mut()[i] = v + h;
            let lp = loss_and_grad(&problem, &net, &pts, false).0;
            net.params_mut()[i] = v - h;
            let lm = loss_and_grad(&problem, &net, &pts, false).0;
            net.params_mut()[i] = v;
            let fd = (lp - lm) / (2.0 * h);
            assert!(
                (fd - grad[i]).abs() <= 1e-6 * fd.abs().max(1e-1),
                "{name}: parameter {i}: {} vs central difference {fd}",
                grad[i]
            );
        }
    }
}

/// The residuals of the formula condition at `pts` with `diagonal` drawn (empty: exact).
fn residual_values(problem: &Problem, net: &Mlp<f64>, pts: &[f64], diagonal: &[usize]) -> Vec<f64> {
    step(problem, net, pts, false, diagonal).2
}

#[test]
fn sampled_diagonal_terms_are_unbiased_and_exact_without_a_draw() {
    // Black–Scholes–Barenblatt (Σ x_i² u_ii) and a user PDE with a variable coefficient beside a
    // gradient term, at d = 8 with R = 2 coordinates a draw; 10⁴ draws, fixed seed
    let d = 8;
    let r = 2;
    let mut cfg = TrainConfig::for_equation("black-scholes-barenblatt");
    cfg.dim = d;
    cfg.batch = 3;
    let user = PdeSpec::from_toml(
        r#"
domain = "ball"
ansatz = "ball"
[[residual]]
operator = "laplacian"
nonlinear = "sum(i, 0, d-1, (1 + sin(x[i]))*d[i,i]) - 2*d[3,3] + sum(i, 0, d-1, d[i]^2)"
source = "1"
"#,
    )
    .unwrap()
    .problem(d, 3, SamplerKind::RadiusUniform)
    .unwrap();
    for (name, problem) in [("black-scholes-barenblatt", cfg.problem()), ("user", user)] {
        let net = net(problem.input_dim(), None, 9);
        let pts = points(&problem, 3, 5);
        let exact = residual_values(&problem, &net, &pts, &[]);
        const DRAWS: usize = 10_000;
        let mut rng = stde::pde::sampler::stream(17, 3, 0);
        let mut sum = vec![0.0; exact.len()];
        let mut sum2 = vec![0.0; exact.len()];
        for _ in 0..DRAWS {
            let s: Vec<usize> = stde::operator::estimator::sample_distinct(&mut rng, d as u64, r)
                .into_iter()
                .map(|i| i as usize)
                .collect();
            let v = residual_values(&problem, &net, &pts, &s);
            for k in 0..v.len() {
                sum[k] += v[k];
                sum2[k] += v[k] * v[k];
            }
        }
        let mut spread = 0.0f64;
        for k in 0..exact.len() {
            let mean = sum[k] / DRAWS as f64;
            let var = sum2[k] / DRAWS as f64 - mean * mean;
            spread = spread.max(var);
            // five standard errors
            let tol = 5.0 * (var / DRAWS as f64).sqrt() + 1e-12;
            assert!(
                (mean - exact[k]).abs() <= tol,
                "{name}: point {k}: mean {mean} vs exact {}, tolerance {tol}",
                exact[k]
            );
        }
        assert!(spread > 1e-8, "{name}: the draws vary (the test can fail)");
    }
}

#[test]
fn routes_follow_the_formula_shapes() {
    use stde::train::routes::{PartialRoutes, Route};
    let d = 20;
    let route_of = |nonlinear: &str, sample: Option<usize>| {
        let text = format!(
            "domain = \"ball\"\n[[residual]]\noperator = \"laplacian\"\nnonlinear = \"{nonlinear}\"\nsource = \"0\"\n"
        );
        let p = PdeSpec::from_toml(&text)
            .unwrap()
            .problem(d, 2, SamplerKind::RadiusUniform)
            .unwrap();
        let Term::Formula { residuals } = &p.conditions[0].term else {
            unreachable!()
        };
        let r = PartialRoutes::new(residuals, sample, false);
        (
            r.count(Route::GradientSweep),
            r.count(Route::Sampled),
            r.count(Route::Jets),
        )
    };
    assert_eq!(route_of("sum(i, 0, d-1, d[i]^2)", Some(4)), (20, 0, 0));
    assert_eq!(
        route_of("d[0]*d[1] + d[2]", Some(4)),
        (0, 0, 3),
        "three first-order partials: jets"
    );
    assert_eq!(route_of("sum(i, 0, d-1, x[i]^2*d[i,i])", Some(4)), (0, 20, 0));
    assert_eq!(
        route_of("sum(i, 0, d-1, x[i]^2*d[i,i])", None),
        (0, 0, 20),
        "exact: jets"
    );
    assert_eq!(
        route_of("sum(i, 0, d-1, d[i,i]^2)", Some(4)),
        (0, 0, 20),
        "not affine: jets"
    );
    assert_eq!(
        route_of("sum(i, 0, d-1, d[i,i])*u", Some(4)),
        (0, 20, 0),
        "u is a free factor"
    );
    assert_eq!(route_of("sin(sum(i, 0, d-1, d[i,i]))", Some(4)), (0, 0, 20));
    assert_eq!(route_of("d[0,0] + d[1,1]", Some(4)), (0, 0, 2), "no more than R: jets");
}
