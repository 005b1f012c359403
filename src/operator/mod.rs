//! Linear differential operators `L = Σ c_α ∂^α`, their text syntax, exact probe plans (jets whose
//! output coefficients combine into `L u` exactly) and the STDE estimators.

/// Randomised (STDE) and exact estimators.
pub mod estimator;
/// Plan evaluation on a network.
pub mod eval;
/// `∇u` by one reverse sweep; the parameter gradient of `λ·∇u` by one jet.
pub mod gradient;
pub mod parse;
pub mod pass;
pub mod plan;

pub use estimator::{DenseDistribution, Estimator, EstimatorKind, Sampling};
pub use eval::{EvalError, evaluate_plan, evaluate_plan_with};
pub use gradient::GradientSweep;
pub use parse::{ParseError, parse};
pub use pass::{PlanPass, formula_quantities};
pub use plan::{MultiPlan, PlanBuilder, Probe, ProbeDirection, ProbePlan, Readout};

/// Errors in building or checking an operator.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OperatorError {
    /// The text could not be parsed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// A coordinate index is not below the input dimension.
    #[error("coordinate index {index} is out of range for dimension {dim} (indices are 0-based)")]
    Index {
        /// The index given.
        index: usize,
        /// The input dimension.
        dim: usize,
    },
    /// Something else about the operator is unusable.
    #[error("{0}")]
    Invalid(String),
}

/// One explicit term `c · ∂^α`: `index` lists one coordinate per differentiation (sorted), empty for `u`.
#[derive(Clone, Debug, PartialEq)]
pub struct Term {
    /// Coefficient `c`.
    pub coeff: f64,
    /// Coordinates differentiated, one per differentiation, sorted.
    pub index: Vec<usize>,
}

/// A family of terms over every coordinate (kept symbolic so that `d = 10⁶` costs nothing).
#[derive(Clone, Debug, PartialEq)]
pub enum Family {
    /// `c · Σ_i ∂_i^k` (`k = 2`: the Laplacian).
    Diagonal {
        /// Coefficient.
        coeff: f64,
        /// Derivative order `k`.
        order: usize,
    },
    /// `c · Σ_{i,j} ∂_i² ∂_j²` (the biharmonic `Δ²`).
    Biharmonic {
        /// Coefficient.
        coeff: f64,
    },
    /// `c · Σ_m D^k u[w_m, …, w_m]`: directional derivatives along given dense vectors, e.g.
    /// `½ tr(σσᵀ ∇²u) = ½ Σ_m D²u[σ e_m, σ e_m]` (the semilinear-parabolic form).
    Directional {
        /// Coefficient.
        coeff: f64,
        /// Derivative order `k`.
        order: usize,
        /// The directions `w_m`, each of length `d`.
        directions: Vec<Vec<f64>>,
    },
}

/// A linear differential operator: symbolic families plus explicit terms.
///
/// Estimators randomise over the families' terms and always evaluate explicit terms exactly (so a
/// time derivative written `d[t]` is never sampled away); an operator with no family randomises
/// over its explicit terms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Operator {
    /// Families over all coordinates.
    pub families: Vec<Family>,
    /// Explicit terms.
    pub terms: Vec<Term>,
    /// The families range over coordinates `0..family_dim` (all input coordinates when `None`):
    /// for an input `(x, t)` the Laplacian is over `x` only, and `t` enters through explicit terms.
    pub family_dim: Option<usize>,
}

impl Operator {
    /// `Δ = Σ_i ∂_i²`.
    pub fn laplacian() -> Operator {
        Operator {
            families: vec![Family::Diagonal { coeff: 1.0, order: 2 }],
            terms: vec![],
            family_dim: None,
        }
    }
    /// `Δ² = Σ_{i,j} ∂_i²∂_j²`.
    pub fn biharmonic() -> Operator {
        Operator {
            families: vec![Family::Biharmonic { coeff: 1.0 }],
            terms: vec![],
            family_dim: None,
        }
    }
    /// `Σ_i ∂_i^k`.
    pub fn diagonal(order: usize) -> Operator {
        Operator {
            families: vec![Family::Diagonal { coeff: 1.0, order }],
            terms: vec![],
            family_dim: None,
        }
    }
    /// One mixed partial, one coordinate per differentiation (`[]` is `u` itself).
    pub fn partial(index: &[usize]) -> Operator {
        let mut index = index.to_vec();
        index.sort_unstable();
        Operator {
            families: vec![],
            terms: vec![Term { coeff: 1.0, index }],
            family_dim: None,
        }
    }
    /// The gradient component `∂_i u`.
    pub fn gradient_component(i: usize) -> Operator {
        Operator::partial(&[i])
    }
    /// The time derivative `∂_t u`, time being input coordinate `t` (the last one by convention).
    pub fn time_derivative(t: usize) -> Operator {
        Operator::partial(&[t])
    }
    /// `½ tr(σσᵀ ∇²_x u)` for `σ` given as its `m` columns (each of length `d`; a time coordinate,
    /// if any, has entry 0).
    pub fn parabolic(sigma_columns: Vec<Vec<f64>>) -> Operator {
        Operator {
            families: vec![Family::Directional {
                coeff: 0.5,
                order: 2,
                directions: sigma_columns,
            }],
            terms: vec![],
            family_dim: None,
        }
    }

    /// The same operator with its families restricted to coordinates `0..dim` (the spatial part
    /// of an `(x, t)` input).
    pub fn over_first(mut self, dim: usize) -> Operator {
        self.family_dim = Some(dim);
        self
    }

    /// Coordinates the families range over, for input dimension `dim`.
    pub fn family_range(&self, dim: usize) -> usize {
        self.family_dim.map_or(dim, |f| f.min(dim))
    }

    /// `self + c·other`.
    pub fn plus(mut self, c: f64, other: Operator) -> Operator {
        for mut f in other.families {
            match &mut f {
                Family::Diagonal { coeff, .. } | Family::Biharmonic { coeff } | Family::Directional { coeff, .. } => {
                    *coeff *= c
                }
            }
            self.families.push(f);
        }
        self.terms.extend(other.terms.into_iter().map(|t| Term {
            coeff: t.coeff * c,
            index: t.index,
        }));
        self
    }

    /// Number of terms (and dense directions) the exact plan in dimension `dim` expands to,
    /// computed without expanding.
    pub fn exact_terms(&self, dim: usize) -> u128 {
        let n = self.family_range(dim) as u128;
        let fam: u128 = self
            .families
            .iter()
            .map(|f| match f {
                Family::Diagonal { .. } => n,
                Family::Biharmonic { .. } => n * (n + 1) / 2,
                Family::Directional { directions, .. } => directions.len() as u128,
            })
            .sum();
        fam + self.terms.len() as u128
    }

    /// Whether every coefficient (of families and terms) is finite.
    pub fn coefficients_finite(&self) -> bool {
        let fam = self.families.iter().all(|f| match f {
            Family::Diagonal { coeff, .. } | Family::Biharmonic { coeff } => coeff.is_finite(),
            Family::Directional { coeff, directions, .. } => {
                coeff.is_finite() && directions.iter().flatten().all(|v| v.is_finite())
            }
        });
        fam && self.terms.iter().all(|t| t.coeff.is_finite())
    }

    /// Highest derivative order of any term.
    pub fn order(&self) -> usize {
        let f = self.families.iter().map(|f| match f {
            Family::Diagonal { order, .. } | Family::Directional { order, .. } => *order,
            Family::Biharmonic { .. } => 4,
        });
        f.chain(self.terms.iter().map(|t| t.index.len())).max().unwrap_or(0)
    }

    /// Checks indices and directions against the input dimension `dim`.
    pub fn validate(&self, dim: usize) -> Result<(), OperatorError> {
        if dim == 0 {
            return Err(OperatorError::Invalid("the input dimension must be positive".into()));
        }
        if let Some(f) = self.family_dim
            && (f == 0 || f > dim)
        {
            return Err(OperatorError::Invalid(format!(
                "the operator's families range over {f} coordinates, which is not in 1..={dim}"
            )));
        }
        for t in &self.terms {
            if let Some(&i) = t.index.iter().find(|&&i| i >= dim) {
                return Err(OperatorError::Index { index: i, dim });
            }
        }
        for f in &self.families {
            match f {
                Family::Diagonal { order, .. } if *order == 0 || *order > crate::jet::MAX_ORDER => {
                    return Err(OperatorError::Invalid(format!(
                        "diagonal order {order} is out of range 1..={}",
                        crate::jet::MAX_ORDER
                    )));
                }
                Family::Directional { directions, .. } => {
                    if let Some(w) = directions.iter().find(|w| w.len() != dim) {
                        return Err(OperatorError::Invalid(format!(
                            "a direction has length {}, expected {dim}",
                            w.len()
                        )));
                    }
                }
                _ => {}
            }
        }
        if self.order() > crate::jet::MAX_ORDER {
            return Err(OperatorError::Invalid(format!(
                "derivative order {} exceeds {}",
                self.order(),
                crate::jet::MAX_ORDER
            )));
        }
        Ok(())
    }

    /// Every term written out explicitly for dimension `dim` (families expanded; directional
    /// families stay as they are). `O(d)` terms for a Laplacian, `O(d²)` for a biharmonic.
    pub fn expand(&self, dim: usize) -> (Vec<Term>, Vec<Family>) {
        let dim = self.family_range(dim);
        let mut terms = Vec::new();
        let mut directional = Vec::new();
        for f in &self.families {
            match f {
                Family::Diagonal { coeff, order } => terms.extend((0..dim).map(|i| Term {
                    coeff: *coeff,
                    index: vec![i; *order],
                })),
                Family::Biharmonic { coeff } => {
                    for i in 0..dim {
                        for j in 0..dim {
                            let mut index = vec![i, i, j, j];
                            index.sort_unstable();
                            terms.push(Term { coeff: *coeff, index });
                        }
                    }
                }
                Family::Directional { .. } => directional.push(f.clone()),
            }
        }
        terms.extend(self.terms.iter().cloned());
        (merge_terms(terms), directional)
    }
}

/// Adds up terms with the same multi-index and drops zero coefficients.
pub fn merge_terms(mut terms: Vec<Term>) -> Vec<Term> {
    terms.sort_by(|a, b| a.index.cmp(&b.index));
    let mut out: Vec<Term> = Vec::with_capacity(terms.len());
    for t in terms {
        match out.last_mut() {
            Some(last) if last.index == t.index => last.coeff += t.coeff,
            _ => out.push(t),
        }
    }
    out.retain(|t| t.coeff != 0.0);
    out
}

/// `c*atom` in the operator syntax (`atom` alone for `c = 1`, `-atom` for `c = −1`).
fn scaled(c: f64, atom: &str) -> String {
    if c == 1.0 {
        atom.to_string()
    } else if c == -1.0 {
        format!("-{atom}")
    } else {
        format!("{c}*{atom}")
    }
}

impl std::fmt::Display for Operator {
    /// The operator in the text syntax of [`parse()`] (a directional family, which has no syntax,
    /// prints as `directional{k}(m directions)`; families restricted to the first `n` coordinates
    /// are marked `[over x0..x{n-1}]`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for fam in &self.families {
            parts.push(match fam {
                Family::Diagonal { coeff, order: 2 } => scaled(*coeff, "laplacian"),
                Family::Diagonal { coeff, order } => scaled(*coeff, &format!("diag{order}")),
                Family::Biharmonic { coeff } => scaled(*coeff, "biharmonic"),
                Family::Directional {
                    coeff,
                    order,
                    directions,
                } => scaled(*coeff, &format!("directional{order}({} directions)", directions.len())),
            });
        }
        if let (Some(n), false) = (self.family_dim, self.families.is_empty()) {
            let last = parts.len() - 1;
            parts[last] = format!("{} [over x0..x{}]", parts[last], n.saturating_sub(1));
        }
        for t in &self.terms {
            let idx: Vec<String> = t.index.iter().map(|i| i.to_string()).collect();
            parts.push(scaled(t.coeff, &format!("d[{}]", idx.join(","))));
        }
        if parts.is_empty() {
            return f.write_str("0");
        }
        let mut s = parts[0].clone();
        for p in &parts[1..] {
            match p.strip_prefix('-') {
                Some(rest) => s += &format!(" - {rest}"),
                None => s += &format!(" + {p}"),
            }
        }
        f.write_str(&s)
    }
}
