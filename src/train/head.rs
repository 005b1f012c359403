//! The output head: where the network's output starts and how far a step moves it.
//!
//! A randomly initialised network outputs values of order 1, and Adam moves each parameter by
//! about the learning rate a step, so a solution whose level is in the hundreds (the
//! Black–Scholes–Barenblatt `u ≈ 100` at d = 100, the d = 10⁶ two-body problem's `0.84·Σ c_i`)
//! is out of reach of 10⁴ steps at lr 10⁻³. Two numbers, taken from the problem before the first
//! step, make the solution's scale the network's:
//! - the **level** `c`: the constant network `N ≡ c` that minimises the training loss itself
//!   (`u = φ + ψ·c` through every condition: residuals, terminal and boundary data); the root of
//!   `∂loss/∂c` by secant steps on evaluations of the real loss with the last layer's weight set
//!   to zero (exact after two evaluations where the loss is quadratic in `u`);
//! - the **scale** `s`: the spread (standard deviation) of the terminal/boundary data `g` where
//!   the problem has some, at least 1.
//!
//! The network is then trained as `N = c + s·N_raw`: at the start the last layer's weight and
//! bias are multiplied by `s` and `c` is added to the bias; every step is Adam on `N_raw`'s
//! parameters ([`HeadStep`]). Both parametrisations span the same functions, so the loss and its
//! minimisers are unchanged: only the starting point and the last layer's step size differ.

use super::config::TrainConfig;
use super::optim::HeadStep;
use super::residual::{ConditionDraw, ResidualWork, condition_step};
use super::run::{TrainError, draw_condition};
use crate::nn::Mlp;
use crate::operator::Estimator;
use crate::pde::{Problem, Term};
use crate::real::Real;

/// Stream purpose of the points the level is fitted on (low nibble distinct from the residual
/// batches' and the test set's).
const LEVEL: u64 = 6;

/// Secant steps at most.
const MAX_EVALUATIONS: usize = 40;

/// The fitted output head.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Head {
    /// `c`.
    pub level: f64,
    /// `s`.
    pub scale: f64,
}

impl Head {
    /// No head: `N = N_raw`.
    pub const NONE: Head = Head { level: 0.0, scale: 1.0 };

    /// Applies the head to a freshly initialised network: the last layer's weight and bias
    /// times `s`, `c` added to the bias.
    pub fn apply<T: Real>(&self, net: &mut Mlp<T>) {
        let last = *net.affine_layers().last().expect("a network has a layer");
        let end = last.bias + last.fan_out;
        let s = T::c(self.scale);
        for p in &mut net.params_mut()[last.weight..end] {
            *p *= s;
        }
        for b in &mut net.params_mut()[last.bias..end] {
            *b += T::c(self.level);
        }
    }

    /// The optimiser's view of the head for `net` ([`HeadStep`]).
    pub fn step<T: Real>(&self, net: &Mlp<T>) -> HeadStep {
        let last = net.affine_layers().last().expect("a network has a layer");
        HeadStep {
            start: last.weight,
            scale: self.scale,
        }
    }
}

/// Fits the head of `problem` for `net` ([`Head`]); `net` is left as it was.
pub fn fit<T: Real>(
    cfg: &TrainConfig,
    problem: &Problem,
    estimators: &mut [Vec<Estimator>],
    sample_diagonal: &[bool],
    net: &mut Mlp<T>,
) -> Result<Head, TrainError> {
    let mut probe = LevelProbe::new(cfg, problem, estimators, sample_diagonal)?;
    let level = minimise(&mut |c| probe.loss(net, c));
    Ok(Head {
        level: level?,
        scale: probe.spread.std().max(1.0),
    })
}

/// The training loss of the constant networks `N ≡ c` on one fixed draw (points and probes
/// from their own streams), and the spread of the terminal/boundary data at those points.
pub struct LevelProbe<'a, T> {
    problem: &'a Problem,
    points: Vec<Vec<T>>,
    draws: Vec<ConditionDraw>,
    spread: Spread,
    work: ResidualWork<T>,
    grad: Vec<T>,
}

impl<'a, T: Real> LevelProbe<'a, T> {
    /// Draws the points and probes of every condition of `problem`.
    pub fn new(
        cfg: &TrainConfig,
        problem: &'a Problem,
        estimators: &mut [Vec<Estimator>],
        sample_diagonal: &[bool],
    ) -> Result<LevelProbe<'a, T>, TrainError> {
        let din = problem.input_dim();
        let mut probe = LevelProbe {
            problem,
            points: Vec::new(),
            draws: Vec::new(),
            spread: Spread::default(),
            work: ResidualWork::default(),
            grad: Vec::new(),
        };
        probe.work.collapsed = cfg.collapsed;
        for (c, cond) in problem.conditions.iter().enumerate() {
            let mut pts = vec![T::zero(); cond.points * din];
            cond.domain
                .fill_from(problem.dim, cfg.seed, LEVEL ^ ((c as u64) << 4), 0, &mut pts);
            let mut draw = ConditionDraw::default();
            if !estimators[c].is_empty() {
                draw_condition(cfg, cond, &mut estimators[c], c, 0, sample_diagonal[c], &mut draw)?;
            }
            if let Term::Target { target, .. } = &cond.term {
                let (mut grad, mut x) = (vec![0.0; problem.dim], vec![0.0; din]);
                for p in pts.chunks(din) {
                    x.iter_mut().zip(p).for_each(|(x, p)| *x = p.as_f64());
                    probe.spread.add(target.value_and_gradient(&x, &mut grad));
                }
            }
            probe.points.push(pts);
            probe.draws.push(draw);
        }
        Ok(probe)
    }

    /// The loss of `N ≡ c` and its derivative in `c`: `net` with its last weight set to zero and
    /// its bias to `c` (restored afterwards).
    pub fn loss(&mut self, net: &mut Mlp<T>, c: f64) -> Result<(f64, f64), TrainError> {
        let last = *net.affine_layers().last().expect("a network has a layer");
        let saved: Vec<T> = net.params()[last.weight..last.bias + 1].to_vec();
        net.params_mut()[last.weight..last.bias].fill(T::zero());
        net.params_mut()[last.bias] = T::c(c);
        self.grad.clear();
        self.grad.resize(net.num_params(), T::zero());
        let mut loss = Ok(0.0);
        for (k, cond) in self.problem.conditions.iter().enumerate() {
            // moved into the jets and handed back unchanged: no copy per evaluation
            let part = condition_step(
                net,
                self.problem,
                cond,
                &mut self.points[k],
                &self.draws[k],
                &mut self.work,
                &mut self.grad,
            );
            loss = match (loss, part) {
                (Ok(l), Ok(p)) => Ok(l + p),
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
        }
        let slope = self.grad[last.bias].as_f64();
        net.params_mut()[last.weight..last.bias + 1].copy_from_slice(&saved);
        Ok((loss?, slope))
    }

    /// The standard deviation of the terminal/boundary data at the probe's points (0: none).
    pub fn data_spread(&self) -> f64 {
        self.spread.std()
    }
}

/// The point of lowest `f` found by secant steps on `f′` from 0 (`f` and `f′` from `eval`):
/// the minimiser of a quadratic after two evaluations; a step that would go uphill or leave the
/// numbers is replaced by a doubling in the descent direction.
pub fn minimise(eval: &mut dyn FnMut(f64) -> Result<(f64, f64), TrainError>) -> Result<f64, TrainError> {
    let (mut x0, (f0, mut g0)) = (0.0, eval(0.0)?);
    if !f0.is_finite() || !g0.is_finite() || g0 == 0.0 {
        return Ok(0.0);
    }
    let mut best = (f0, 0.0);
    let mut x1 = -g0.signum();
    for _ in 1..MAX_EVALUATIONS {
        let (f1, g1) = eval(x1)?;
        if f1.is_finite() && f1 < best.0 {
            best = (f1, x1);
        }
        if !f1.is_finite() || !g1.is_finite() || g1 == 0.0 {
            break;
        }
        let slope = (g1 - g0) / (x1 - x0);
        let next = if slope > 0.0 {
            x1 - g1 / slope
        } else {
            // not convex between the two points: keep going downhill, twice as far
            x1 - g1.signum() * 2.0 * (x1 - x0).abs()
        };
        if !next.is_finite() || (next - x1).abs() <= 1e-12 * x1.abs().max(1.0) {
            break;
        }
        (x0, g0, x1) = (x1, g1, next);
    }
    Ok(best.1)
}

/// Running mean and variance (Welford).
#[derive(Default)]
struct Spread {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Spread {
    fn add(&mut self, v: f64) {
        if !v.is_finite() {
            return;
        }
        self.n += 1.0;
        let d = v - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (v - self.mean);
    }

    /// The standard deviation (0 without data).
    fn std(&self) -> f64 {
        if self.n < 2.0 {
            0.0
        } else {
            (self.m2 / (self.n - 1.0)).sqrt()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two evaluations (and a third to confirm) find a quadratic's minimiser; a quartic's after
    /// a few more; a flat function leaves 0.
    #[test]
    fn secant_finds_the_minimiser() {
        let mut calls = 0;
        let mut quad = |x: f64| {
            calls += 1;
            Ok((3.0 * (x - 123.4).powi(2) + 1.0, 6.0 * (x - 123.4)))
        };
        let x = minimise(&mut quad).unwrap();
        assert!((x - 123.4).abs() < 1e-9, "{x}");
        assert!(calls <= 4, "{calls} evaluations");
        let mut quartic = |x: f64| Ok(((x + 7.0).powi(4) + x * x, 4.0 * (x + 7.0).powi(3) + 2.0 * x));
        let x = minimise(&mut quartic).unwrap();
        // f′(x) = 0 near −5.71
        assert!((4.0 * (x + 7.0f64).powi(3) + 2.0 * x).abs() < 1e-6, "{x}");
        let mut flat = |_x: f64| Ok((2.0, 0.0));
        assert_eq!(minimise(&mut flat).unwrap(), 0.0);
        let mut nan = |_x: f64| Ok((f64::NAN, f64::NAN));
        assert_eq!(minimise(&mut nan).unwrap(), 0.0);
    }

    /// On real problems the fitted level is the minimiser of the loss over constant networks
    /// (the loss is no lower a little to either side), the network is left as it was, and the
    /// scale is the terminal data's spread where there are data (BSB: `‖x‖²` of Gaussian `x`,
    /// standard deviation `√(2d)`), 1 where there are none.
    #[test]
    fn the_level_minimises_the_loss_over_constant_networks() {
        use crate::train::run::{estimators, samples_diagonal};
        // the Black–Scholes–Barenblatt PDE with a terminal penalty instead of the catalogue's
        // terminal ansatz: data whose spread is known
        let bsb_penalty = crate::pde::custom::PdeSpec::from_toml(
            &crate::pde::catalogue::BSB
                .replace("ansatz = \"terminal\"\n", "")
                .replace(
                    "target = \"sum(i, 0, d-1, x[i]^2)\"",
                    "target = \"sum(i, 0, d-1, x[i]^2)\"\npoints = 400",
                ),
        )
        .unwrap();
        assert!(bsb_penalty.ansatz.is_none() && bsb_penalty.terminal.as_ref().is_some_and(|t| t.points == Some(400)));
        for (equation, dim) in [
            ("poisson-two-body", 20),
            ("allen-cahn-two-body", 20),
            ("bsb-penalty", 50),
            ("black-scholes-barenblatt", 50),
            ("semilinear-heat", 5),
            ("hjb-lin", 30),
        ] {
            let pde = (equation == "bsb-penalty").then(|| bsb_penalty.clone());
            let cfg = TrainConfig {
                dim,
                rand_batch: 4,
                terminal_batch: 400,
                equation: if pde.is_some() {
                    "custom".into()
                } else {
                    equation.into()
                },
                pde,
                ..TrainConfig::for_equation(if equation == "bsb-penalty" {
                    "allen-cahn-two-body"
                } else {
                    equation
                })
            };
            let problem = cfg.problem();
            let mut est = estimators(&cfg, &problem).unwrap();
            let diag: Vec<bool> = problem.conditions.iter().map(|c| samples_diagonal(&cfg, c)).collect();
            let mut net = Mlp::<f64>::new(cfg.architecture(problem.input_dim()), 3).unwrap();
            let before = net.params().to_vec();
            let head = fit(&cfg, &problem, &mut est, &diag, &mut net).unwrap();
            assert_eq!(net.params(), &before[..], "{equation}: the network changed");
            let mut probe = LevelProbe::new(&cfg, &problem, &mut est, &diag).unwrap();
            let c = head.level;
            let at = probe.loss(&mut net, c).unwrap().0;
            for step in [1e-3, -1e-3, 0.1, -0.1] {
                let other = probe.loss(&mut net, c + step * c.abs().max(1.0)).unwrap().0;
                assert!(
                    at <= other * (1.0 + 1e-9),
                    "{equation}: loss {at} at c = {c}, {other} at {step}"
                );
            }
            match equation {
                "bsb-penalty" => {
                    let want = (2.0 * dim as f64).sqrt();
                    assert!(
                        (head.scale / want - 1.0).abs() < 0.2,
                        "{equation}: scale {}",
                        head.scale
                    );
                    // the level is near the solution's mean level, E‖x‖²·e^{0.21(1−t)} ∈ [d, 1.24 d]
                    assert!(c > 0.9 * dim as f64 && c < 1.3 * dim as f64, "{equation}: level {c}");
                }
                // no data (the terminal ansatz holds BSB's exactly): scale 1
                "poisson-two-body" | "allen-cahn-two-body" | "black-scholes-barenblatt" => {
                    assert_eq!(head.scale, 1.0)
                }
                _ => assert!(head.scale >= 1.0),
            }
        }
    }

    #[test]
    fn spread_is_the_sample_standard_deviation() {
        let mut s = Spread::default();
        for v in [1.0, 2.0, 3.0, 4.0] {
            s.add(v);
        }
        assert!((s.std() - (5.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(Spread::default().std(), 0.0);
    }
}
