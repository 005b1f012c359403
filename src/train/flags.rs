//! Which run settings a problem uses: a flag given on the command line that would change
//! nothing in the run is refused with one line naming why, derived from the built problem (its
//! domains, operators and penalties), not from copied defaults.

use super::config::TrainConfig;
use super::run::samples_diagonal;
use crate::pde::{Domain, Evaluation, Problem, Term, lookup};

/// What of the configuration `problem` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uses {
    /// Some operator can be sampled (`--method sparse|dense`, `--rand-batch`).
    pub sampling: bool,
    /// Some condition samples the diagonal partials of a nonlinear part one-hot (only
    /// `--method sparse` and `exact` are honoured there).
    pub one_hot_diagonals: bool,
    /// A domain draws from the unit ball with a radial law (`--volume-uniform`).
    pub ball_law: bool,
    /// The parabolic settings (`--horizon`, `--terminal-*`).
    pub horizon: bool,
    /// A boundary penalty (`--boundary-*`).
    pub boundary: bool,
}

impl Uses {
    /// What `problem`, built from `cfg`, reads.
    pub fn of(cfg: &TrainConfig, problem: &Problem) -> Uses {
        let ball = |d: &Domain| {
            matches!(
                d,
                Domain::Ball(_) | Domain::BallTime { .. } | Domain::BallTerminal { .. }
            )
        };
        let test_ball = match &problem.evaluation {
            Evaluation::ExactSolution { domain, .. } => ball(domain),
            _ => false,
        };
        let sampled_operator = problem.conditions.iter().any(|c| match &c.term {
            Term::Residual { operator, .. } => !operator.families.is_empty(),
            Term::Formula { residuals } => residuals.iter().any(|r| !r.operator.families.is_empty()),
            Term::Target { .. } => false,
        });
        let sampling_cfg = TrainConfig {
            method: "sparse".into(),
            ..cfg.clone()
        };
        let one_hot_diagonals = problem.conditions.iter().any(|c| samples_diagonal(&sampling_cfg, c));
        let catalogue = (cfg.pde.is_none()).then(|| lookup(&cfg.equation)).flatten();
        Uses {
            sampling: sampled_operator || one_hot_diagonals,
            one_hot_diagonals,
            ball_law: test_ball || problem.conditions.iter().any(|c| ball(&c.domain)),
            horizon: catalogue.is_some_and(|e| e.terminal),
            boundary: catalogue.is_some_and(|e| e.boundary),
        }
    }
}

/// Refuses each flag in `given` (the command line's flag names) that `cfg`'s problem does not
/// use, and `--method dense` where a sampled diagonal can only be drawn one-hot.
pub fn refuse_unused(cfg: &TrainConfig, problem: &Problem, given: &[&str]) -> Result<(), String> {
    let uses = Uses::of(cfg, problem);
    let name = &cfg.equation;
    let has = |flag: &str| given.contains(&flag);
    if !uses.sampling && cfg.method != "exact" && has("--method") {
        return Err(format!(
            "--method {}: {name} has nothing to sample at d = {} (explicit partials, and diagonal partials no more than --rand-batch, are evaluated exactly); leave --method out or give exact",
            cfg.method, cfg.dim
        ));
    }
    if has("--rand-batch") && (!uses.sampling || cfg.method == "exact") {
        return Err(format!(
            "--rand-batch sets how many directions a sampling method draws; {name} with --method {} draws none",
            cfg.method
        ));
    }
    if uses.one_hot_diagonals && cfg.method == "dense" {
        return Err(format!(
            "--method dense: {name} samples the diagonal partials of its nonlinear part one coordinate at a time (point-dependent weights such as x[i]^2*d[i,i]); use --method sparse or exact"
        ));
    }
    if has("--volume-uniform") && !uses.ball_law {
        return Err(format!(
            "--volume-uniform sets the radial law of points in the unit ball; {name} draws no such points"
        ));
    }
    for flag in [
        "--horizon",
        "--terminal-batch",
        "--terminal-weight",
        "--terminal-gradient-weight",
    ] {
        if has(flag) && !uses.horizon {
            return Err(format!(
                "{flag} applies to the parabolic equations (a horizon and a terminal penalty); {name} has neither"
            ));
        }
    }
    for flag in ["--boundary-batch", "--boundary-weight"] {
        if has(flag) && !uses.boundary {
            return Err(format!(
                "{flag} applies to problems with a boundary penalty; {name} has none"
            ));
        }
    }
    Ok(())
}
