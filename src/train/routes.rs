//! Which path each partial that a formula condition's nonlinear parts read takes:
//!
//! - **gradient sweep**: first-order partials `∂_i u`, `∂_t u`, from `∇u` by one reverse pass and
//!   one jet along `∂loss/∂∇u` ([`crate::operator::GradientSweep`]), where the nonlinear parts read
//!   at least [`GRADIENT_SWEEP_MIN_PARTIALS`] of them;
//! - **sampled**: spatial diagonal second-order partials `∂_i² u` in nonlinear parts that are affine
//!   in them (`Σ_i a(x_i)·∂_i² u`, a variable-coefficient operator), when there are more than `R`:
//!   `R` coordinates `S` drawn uniformly without replacement each step, `∂_i² u` read from one-hot
//!   jets for `i ∈ S`, scaled by `d/R`, and 0 for the others (unbiased for the sum: each
//!   coordinate is drawn with probability `R/d`);
//! - **jets**: every other partial, a planned read-out of the shared jets (one jet each unless the
//!   operator's jets already hold it).

use crate::pde::{FormulaResidual, Problem, Term};
use std::collections::HashMap;

/// Fewest distinct first-order partials (`∂_i u`, `∂_t u`) a formula condition's nonlinear parts
/// must read for them to come from the gradient sweep (two passes at the points and one jet)
/// instead of one jet each.
pub const GRADIENT_SWEEP_MIN_PARTIALS: usize = 4;

/// How one partial is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// A planned read-out of the jets.
    Jets,
    /// From `∇u` by the gradient sweep.
    GradientSweep,
    /// Sampled: `(d/R)·∂_i² u` for the step's drawn coordinates, 0 for the others.
    Sampled,
}

impl Route {
    /// How `stde list` and the plan printout name it.
    pub fn describe(self) -> &'static str {
        match self {
            Route::Jets => "exact jets",
            Route::GradientSweep => "exact gradient sweep",
            Route::Sampled => "sampled (sparse, d/R-scaled one-hot jets)",
        }
    }
}

/// The partials of a formula condition and the route of each.
#[derive(Clone, Debug, Default)]
pub struct PartialRoutes {
    /// Every distinct partial the nonlinear parts read (sorted indices).
    pub partials: Vec<Vec<usize>>,
    /// Per residual: its formula's partial `k` is `partials[maps[r][k]]`.
    pub maps: Vec<Vec<usize>>,
    /// The route of each partial.
    pub routes: Vec<Route>,
    /// Coordinate `i` → index in `partials` of a sampled `∂_i² u`.
    pub sampled_diagonal: HashMap<usize, usize>,
}

impl PartialRoutes {
    /// Routes for `residuals`: `sample` is the number of coordinates `R` drawn per step where the
    /// run estimates (not for `--method exact`); `jets_only` forces one jet per partial (the
    /// oracle in tests).
    pub fn new(residuals: &[FormulaResidual], sample: Option<usize>, jets_only: bool) -> PartialRoutes {
        let mut partials: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<&[usize], usize> = HashMap::new();
        let mut affine = Vec::new();
        let maps: Vec<Vec<usize>> = residuals
            .iter()
            .map(|r| {
                r.nonlinear.as_ref().map_or(Vec::new(), |f| {
                    f.partials()
                        .iter()
                        .map(|idx| {
                            *index.entry(idx.as_slice()).or_insert_with(|| {
                                partials.push(idx.clone());
                                affine.push(true);
                                partials.len() - 1
                            })
                        })
                        .collect()
                })
            })
            .collect();
        // a diagonal partial can be sampled only if every formula reading it is affine in them
        let mut diagonal = vec![false; partials.len()];
        for (r, map) in residuals.iter().zip(&maps) {
            if let Some(f) = &r.nonlinear {
                let ok = f.affine_in_diagonals();
                for (k, &g) in map.iter().enumerate() {
                    if f.is_spatial_diagonal(&f.partials()[k]) {
                        diagonal[g] = true;
                        affine[g] &= ok;
                    }
                }
            }
        }
        let first = partials.iter().filter(|p| p.len() == 1).count();
        let candidates = (0..partials.len()).filter(|&g| diagonal[g] && affine[g]).count();
        let sweep = !jets_only && first >= GRADIENT_SWEEP_MIN_PARTIALS;
        let sampled = !jets_only && sample.is_some_and(|r| candidates > r);
        let mut sampled_diagonal = HashMap::new();
        let routes = partials
            .iter()
            .enumerate()
            .map(|(g, idx)| {
                if sweep && idx.len() == 1 {
                    Route::GradientSweep
                } else if sampled && diagonal[g] && affine[g] {
                    sampled_diagonal.insert(idx[0], g);
                    Route::Sampled
                } else {
                    Route::Jets
                }
            })
            .collect();
        PartialRoutes {
            partials,
            maps,
            routes,
            sampled_diagonal,
        }
    }

    /// Whether some partial takes the gradient sweep.
    pub fn sweep(&self) -> bool {
        self.routes.contains(&Route::GradientSweep)
    }

    /// Whether some partial is sampled (the step must draw coordinates for it).
    pub fn sampled(&self) -> bool {
        !self.sampled_diagonal.is_empty()
    }

    /// How many partials take `route`.
    pub fn count(&self, route: Route) -> usize {
        self.routes.iter().filter(|r| **r == route).count()
    }

    /// Jets per point the partials add (before sharing with the operator's): one per jet-routed
    /// partial, `R` for the sampled ones, two passes and one jet for the sweep.
    pub fn jets(&self, sample: usize) -> usize {
        self.count(Route::Jets) + if self.sampled() { sample } else { 0 } + if self.sweep() { 3 } else { 0 }
    }

    /// One line per route taken: how many partials, by which path.
    pub fn summary(&self) -> Vec<String> {
        [Route::GradientSweep, Route::Sampled, Route::Jets]
            .iter()
            .filter(|r| self.count(**r) > 0)
            .map(|r| format!("{} partial(s) by {}", self.count(*r), r.describe()))
            .collect()
    }
}

/// For each formula condition of `problem`: `condition: N partial(s) by <route>, …` with `sample`
/// coordinates drawn per step where the run estimates (`None`: `--method exact`).
pub fn describe(problem: &Problem, sample: Option<usize>) -> Vec<String> {
    problem
        .conditions
        .iter()
        .filter_map(|c| match &c.term {
            Term::Formula { residuals } => {
                let lines = PartialRoutes::new(residuals, sample, false).summary();
                (!lines.is_empty()).then(|| format!("{}: {}", c.name, lines.join(", ")))
            }
            _ => None,
        })
        .collect()
}
