//! Training configuration: defaults (the paper's protocol), TOML files, validation.

use crate::pde::custom::PdeSpec;
use crate::pde::{GpinnForm, Problem, ProblemOptions, ProblemSettings, SamplerKind, equation_names, lookup};
use crate::train::optim::Schedule;
use serde::{Deserialize, Serialize};

/// The most worker threads a run may ask for (each has its own stack; far beyond any core count).
pub const MAX_THREADS: usize = 4096;

/// Time steps per path of the trajectory sampler (the reference code's `n_t`, spec §7.3).
pub const PATH_STEPS: usize = 20;

/// Test points per evaluation batch (fewer at large d, see [`test_batch`]).
pub(crate) const TEST_BATCH: usize = 200;

/// Coordinates per evaluation batch at most (100 MB in f32).
const TEST_BATCH_VALUES: usize = 25_000_000;

/// Test points per evaluation batch at dimension `d`: 200, or fewer so that a batch holds at
/// most `TEST_BATCH_VALUES` coordinates.
pub fn test_batch(d: usize) -> usize {
    (TEST_BATCH_VALUES / d.max(1)).clamp(1, TEST_BATCH)
}

/// Everything that defines a training run (written resolved to `config.toml` in the run folder).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Equation name, e.g. `allen-cahn-two-body`.
    pub equation: String,
    /// Spatial dimension `d`.
    pub dim: usize,
    /// `sparse` (SDGD-style STDE), `dense` (Rademacher Hutchinson) or `exact`.
    pub method: String,
    /// Randomisation batch `R` (ignored by `exact`).
    pub rand_batch: usize,
    /// Optimisation steps `E`.
    pub steps: usize,
    /// Residual points per step `N_r`.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f64,
    /// `constant`, `linear`, `cosine`, `exponential` or `exponential-per-run`.
    pub schedule: String,
    /// `γ` of the exponential schedule (`lr·γ^k`).
    pub exp_decay: f64,
    /// The steps a total-dependent schedule (linear, cosine, exponential-per-run) decays over:
    /// the run's first `steps`, kept when `--resume --steps` changes the total, so that an
    /// extended run continues at the rate it reached instead of restarting the decay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decay_steps: Option<usize>,
    /// Hidden width.
    pub width: usize,
    /// Number of affine layers.
    pub depth: usize,
    /// First-layer weight-sharing block size (1 = none).
    pub block_size: usize,
    /// Run seed (initialisation, test set, residual points, index draws).
    pub seed: u64,
    /// Problem seed (the PDE coefficients `c_i`).
    pub problem_seed: u64,
    /// Evaluate every this many steps (and after the last).
    pub eval_every: usize,
    /// Test points (generated in streamed batches, never all at once).
    pub test_points: usize,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// Ball sampler for residual and test points.
    pub sampler: SamplerKind,
    /// Use the unbiased two-sample loss (twice the jets) instead of the biased single-sample one.
    pub unbiased: bool,
    /// Use the published code's three-body source (Table 6 parity) instead of the correct one.
    pub compat_three_body_source: bool,
    /// Parabolic Allen–Cahn: every terminal point gets `arctan` of the whole batch's largest
    /// coordinate, as the reference code computes it (compat C7), instead of its own target.
    pub compat_batch_max_target: bool,
    /// `f32` (default) or `f64`.
    pub precision: String,
    /// Collapsed 2-jet propagation (one summed second-order buffer per point) wherever the step
    /// allows it (biased loss, no weight sharing); `false` forces per-direction jets. Same loss
    /// and gradient up to rounding.
    pub collapsed: bool,
    /// Weight `c_gPINN` of the gradient-enhanced term (two-body equations; 0 = none; the paper
    /// uses 0.1 with 20 000 steps).
    pub gpinn_weight: f64,
    /// How the gPINN term combines its index sets: `consistent` (default: vanishes at the exact
    /// solution), `zipped` (the reference code), `double-sum`.
    pub gpinn_form: String,
    /// Parabolic interior points: `uniform` times (default) or `trajectory`, along discretised
    /// paths of 20 time steps (the reference code's option; `--batch` a multiple of 20).
    pub parabolic_sampler: String,
    /// Horizon `T` of the parabolic problems.
    pub horizon: f64,
    /// Terminal points per step (parabolic problems).
    pub terminal_batch: usize,
    /// Weight of the terminal loss (parabolic problems).
    pub terminal_weight: f64,
    /// Weight of the terminal gradient-matching part relative to the value part (parabolic).
    pub terminal_gradient_weight: f64,
    /// Boundary points per step (problems with a boundary loss, e.g. `poisson-cube`).
    pub boundary_batch: usize,
    /// Weight of the boundary loss.
    pub boundary_weight: f64,
    /// Clip the global gradient norm to this value before the Adam update (0 = off, the
    /// reference behaviour).
    pub clip_grad_norm: f64,
    /// Decay `β` of the parameters' moving average, the model the run leaves behind (evaluated,
    /// checkpointed, used by `apply`; 0 = the last iterate).
    pub ema: f64,
    /// `auto`: the network's output level fitted to the loss and its scale taken from the
    /// terminal/boundary data before the first step ([`crate::train::head`]); `off`: neither.
    pub output_scaling: String,
    /// A PDE given by formulas (`--pde FILE` or a `[pde]` table) instead of a registered equation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pde: Option<PdeSpec>,
}

/// What validation needs to know about the equation.
struct Traits {
    min_dim: usize,
    max_dim: usize,
    gradient_term: bool,
    time: bool,
    terminal: bool,
    boundary: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            equation: "allen-cahn-two-body".into(),
            dim: 1000,
            method: "sparse".into(),
            rand_batch: 16,
            steps: 10_000,
            batch: 100,
            lr: 1e-3,
            schedule: "linear".into(),
            exp_decay: 0.9995,
            decay_steps: None,
            width: 128,
            depth: 4,
            block_size: 1,
            seed: 0,
            problem_seed: 0,
            eval_every: 1000,
            test_points: 5000,
            threads: 0,
            sampler: SamplerKind::RadiusUniform,
            unbiased: false,
            compat_three_body_source: false,
            compat_batch_max_target: false,
            precision: "f32".into(),
            collapsed: true,
            gpinn_weight: 0.0,
            gpinn_form: "consistent".into(),
            parabolic_sampler: "uniform".into(),
            horizon: 0.3,
            terminal_batch: 20,
            terminal_weight: 20.0,
            terminal_gradient_weight: 0.05,
            boundary_batch: 100,
            boundary_weight: 20.0,
            clip_grad_norm: 0.0,
            ema: 0.999,
            output_scaling: "auto".into(),
            pde: None,
        }
    }
}

impl TrainConfig {
    /// The defaults for `equation`: the paper's protocol (elliptic; for the parabolic problems
    /// width 1024, R = 10, evaluation every 100 steps, spec §7.4–7.5) with a linearly decaying
    /// learning rate everywhere (the published parabolic runs' `lr·0.9995^{k/E}` is
    /// `--schedule exponential-per-run`).
    pub fn for_equation(equation: &str) -> TrainConfig {
        let mut c = TrainConfig {
            equation: equation.to_string(),
            ..TrainConfig::default()
        };
        if let Some(e) = lookup(equation) {
            c.dim = e.default_dim;
        }
        match lookup(equation) {
            Some(e) if e.terminal => {
                c.width = 1024;
                c.rand_batch = 10;
                c.eval_every = 100;
            }
            // high-order low-dimensional problems (spec §8.2): exact operators, 20 000 test points
            Some(e) if e.max_dim < 8 => {
                c.method = "exact".into();
                c.eval_every = 1000;
                c.test_points = 20_000;
            }
            _ => {}
        }
        c
    }

    /// Reads a TOML file: keys it lacks take the defaults of its equation
    /// ([`TrainConfig::for_equation`]; `equation` overrides the file's), unknown keys are errors.
    pub fn from_toml_for(text: &str, equation: Option<&str>) -> Result<TrainConfig, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("invalid config: {}", e.message()))?;
        let pde_name = table
            .get("pde")
            .and_then(|p| p.get("name"))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .or_else(|| table.contains_key("pde").then(|| "custom".to_string()));
        let name = equation
            .map(str::to_string)
            .or(pde_name)
            .or_else(|| table.get("equation").and_then(|v| v.as_str()).map(str::to_string))
            .unwrap_or_else(|| TrainConfig::default().equation);
        let mut merged = toml::Table::try_from(TrainConfig::for_equation(&name)).expect("config serialises");
        // a [pde] table's own dimension is the default
        let pde_dim = table.get("pde").and_then(|p| p.get("dim")).cloned();
        if let (Some(d), false) = (pde_dim, table.contains_key("dim")) {
            merged.insert("dim".into(), d);
        }
        let (has_method, has_r) = (table.contains_key("method"), table.contains_key("rand_batch"));
        merged.extend(table);
        merged.insert("equation".into(), toml::Value::String(name));
        let mut cfg: TrainConfig = merged
            .try_into()
            .map_err(|e: toml::de::Error| format!("invalid config: {}", e.message()))?;
        // defaults that follow the dimension, as on the command line: a PDE file's low-dimensional
        // residuals are exact, and a default R above d means every coordinate
        if let (Some(spec), false) = (&cfg.pde, has_method)
            && cfg.dim + usize::from(spec.time()) <= 16
        {
            cfg.method = "exact".into();
        }
        if !has_r && cfg.dim > 0 && cfg.rand_batch > cfg.dim {
            cfg.rand_batch = cfg.dim;
        }
        Ok(cfg)
    }

    /// Reads a TOML file (see [`TrainConfig::from_toml_for`]).
    pub fn from_toml(text: &str) -> Result<TrainConfig, String> {
        TrainConfig::from_toml_for(text, None)
    }

    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config serialises")
    }

    /// Checks every field; the message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        let entry = self.traits()?;
        self.validate_sizes(&entry)?;
        self.validate_optimiser()?;
        self.validate_gpinn(&entry)?;
        self.validate_parabolic(&entry)?;
        self.validate_layout(&entry)?;
        self.validate_pde()
    }

    /// What validation needs to know of the equation (a PDE file's or the catalogue entry's).
    fn traits(&self) -> Result<Traits, String> {
        Ok(match (&self.pde, lookup(&self.equation)) {
            (Some(spec), _) => Traits {
                min_dim: 1,
                max_dim: usize::MAX,
                gradient_term: false,
                time: spec.time(),
                terminal: false,
                boundary: false,
            },
            (None, Some(e)) => Traits {
                min_dim: e.min_dim,
                max_dim: e.max_dim,
                gradient_term: e.gradient_term,
                time: e.time,
                terminal: e.terminal,
                boundary: e.boundary,
            },
            (None, None) => {
                return Err(format!(
                    "unknown equation '{}' (expected one of: {}, or --pde FILE)",
                    self.equation,
                    equation_names()
                ));
            }
        })
    }

    /// Dimension, method, `R`, steps, threads, batch and network sizes.
    fn validate_sizes(&self, entry: &Traits) -> Result<(), String> {
        let min_dim = entry.min_dim;
        if entry.max_dim == min_dim && self.dim != min_dim {
            return Err(format!(
                "--dim {}: {} is defined for d = {min_dim} only",
                self.dim, self.equation
            ));
        }
        if self.dim < min_dim {
            return Err(format!(
                "--dim {} is too small: {} needs d ≥ {min_dim}",
                self.dim, self.equation
            ));
        }
        if !["sparse", "dense", "exact"].contains(&self.method.as_str()) {
            return Err(format!(
                "unknown method '{}' (expected exact, sparse or dense)",
                self.method
            ));
        }
        if self.method != "exact" && self.rand_batch == 0 {
            return Err("--rand-batch must be positive".into());
        }
        if self.method == "sparse" && self.rand_batch > self.dim {
            return Err(format!(
                "--rand-batch {} exceeds the dimension {} (sparse STDE draws distinct coordinates)",
                self.rand_batch, self.dim
            ));
        }
        if self.steps == 0 {
            return Err("--steps must be positive".into());
        }
        if self.threads > MAX_THREADS {
            return Err(format!(
                "--threads {} is more than {MAX_THREADS}; give the number of cores (0: all of them)",
                self.threads
            ));
        }
        if self.batch == 0 || self.width == 0 || self.depth < 2 || self.test_points == 0 || self.eval_every == 0 {
            return Err(
                "--batch, --width, --test-points and --eval-every must be positive and --depth at least 2".into(),
            );
        }
        Ok(())
    }

    /// Learning rate, schedule, clipping, moving average, output scaling and precision.
    fn validate_optimiser(&self) -> Result<(), String> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("--lr {} must be a positive number", self.lr));
        }
        if Schedule::parse(&self.schedule).is_none() {
            return Err(format!(
                "unknown schedule '{}' (expected constant, linear, cosine, exponential or exponential-per-run)",
                self.schedule
            ));
        }
        if !(self.clip_grad_norm.is_finite() && self.clip_grad_norm >= 0.0) {
            return Err(format!(
                "--clip-grad-norm {} must be a non-negative number",
                self.clip_grad_norm
            ));
        }
        if !(self.ema.is_finite() && (0.0..1.0).contains(&self.ema)) {
            return Err(format!("--ema {} must be in [0, 1) (0: no averaging)", self.ema));
        }
        if !["auto", "off"].contains(&self.output_scaling.as_str()) {
            return Err(format!(
                "unknown --output-scaling '{}' (expected auto or off)",
                self.output_scaling
            ));
        }
        if !["f32", "f64"].contains(&self.precision.as_str()) {
            return Err(format!("unknown precision '{}' (expected f32 or f64)", self.precision));
        }
        Ok(())
    }

    /// The gPINN weight and form.
    fn validate_gpinn(&self, entry: &Traits) -> Result<(), String> {
        if !(self.gpinn_weight.is_finite() && self.gpinn_weight >= 0.0) {
            return Err(format!(
                "--gpinn-weight {} must be a non-negative number",
                self.gpinn_weight
            ));
        }
        match GpinnForm::parse(&self.gpinn_form) {
            None => {
                return Err(format!(
                    "unknown --gpinn-form '{}' (expected zipped, double-sum or consistent)",
                    self.gpinn_form
                ));
            }
            Some(GpinnForm::Consistent) => {}
            Some(_) if self.gpinn_weight == 0.0 => {
                return Err(format!(
                    "--gpinn-form {} needs a gPINN term (--gpinn-weight > 0)",
                    self.gpinn_form
                ));
            }
            Some(_) => {}
        }
        if self.gpinn_weight > 0.0 {
            if !entry.gradient_term {
                return Err(format!(
                    "--gpinn-weight needs an equation with a source gradient; {} has none (gPINN: poisson-, allen-cahn-, sine-gordon-two-body)",
                    self.equation
                ));
            }
            if self.method != "sparse" {
                return Err(format!(
                    "the gPINN term pairs sampled coordinates: it needs --method sparse, not {}",
                    self.method
                ));
            }
            if self.unbiased {
                return Err(
                    "--gpinn-weight and --unbiased cannot be combined (the gPINN loss is the biased form)".into(),
                );
            }
        }
        Ok(())
    }

    /// The parabolic sampler, the reference target switch, the horizon and terminal penalty.
    fn validate_parabolic(&self, entry: &Traits) -> Result<(), String> {
        match self.parabolic_sampler.as_str() {
            "uniform" => {}
            "trajectory" if !entry.terminal => {
                return Err(format!(
                    "--parabolic-sampler trajectory draws the interior points of a parabolic equation; {} is not one",
                    self.equation
                ));
            }
            "trajectory" if !self.batch.is_multiple_of(PATH_STEPS) => {
                return Err(format!(
                    "--parabolic-sampler trajectory draws whole paths of {PATH_STEPS} points: --batch {} is not a multiple of {PATH_STEPS}",
                    self.batch
                ));
            }
            "trajectory" => {}
            other => {
                return Err(format!(
                    "unknown --parabolic-sampler '{other}' (expected uniform or trajectory)"
                ));
            }
        }
        if self.compat_batch_max_target && self.equation != "allen-cahn-parabolic" {
            return Err(format!(
                "--compat-batch-max-target is the reference code's terminal target of allen-cahn-parabolic; {} has none",
                self.equation
            ));
        }
        if entry.terminal {
            if !(self.horizon.is_finite() && self.horizon > 0.0) {
                return Err(format!("--horizon {} must be positive", self.horizon));
            }
            if self.terminal_batch == 0 {
                return Err("--terminal-batch must be positive".into());
            }
            let ok = |w: f64| w.is_finite() && w >= 0.0;
            if !ok(self.terminal_weight) || !ok(self.terminal_gradient_weight) {
                return Err("--terminal-weight and --terminal-gradient-weight must be non-negative numbers".into());
            }
        } else if self.horizon != 0.3
            || self.terminal_batch != 20
            || self.terminal_weight != 20.0
            || self.terminal_gradient_weight != 0.05
        {
            return Err(format!(
                "--horizon and the --terminal-* settings apply to the parabolic equations only, not to {}",
                self.equation
            ));
        }
        Ok(())
    }

    /// Weight sharing and the boundary penalty.
    fn validate_layout(&self, entry: &Traits) -> Result<(), String> {
        if entry.time && self.block_size > 1 {
            return Err("--block-size applies to the elliptic problems only (the time coordinate has no block)".into());
        }
        if self.block_size == 0 || !self.dim.is_multiple_of(self.block_size) {
            return Err(format!(
                "--block-size {} does not divide the dimension {}",
                self.block_size, self.dim
            ));
        }
        if entry.boundary {
            if self.boundary_batch == 0 || !(self.boundary_weight.is_finite() && self.boundary_weight >= 0.0) {
                return Err("--boundary-batch must be positive and --boundary-weight a non-negative number".into());
            }
        } else if self.boundary_batch != 100 || self.boundary_weight != 20.0 {
            return Err(format!(
                "--boundary-batch and --boundary-weight apply to problems with a boundary loss (poisson-cube, the high-order problems), not to {}",
                self.equation
            ));
        }
        Ok(())
    }

    /// A PDE file's own checks.
    fn validate_pde(&self) -> Result<(), String> {
        if let Some(spec) = &self.pde {
            if self.unbiased {
                return Err(
                    "--unbiased is not available for a PDE file (its residuals may be nonlinear in the derivatives)"
                        .into(),
                );
            }
            spec.problem(self.dim, self.batch, self.sampler)
                .map_err(|e| format!("PDE '{}': {e}", spec.name))?;
        }
        Ok(())
    }

    /// The network this configuration trains on `input_dim` inputs (the problem's, time last):
    /// `depth` affine layers of `width`, tanh, weight sharing in blocks of `block_size` if > 1.
    pub fn architecture(&self, input_dim: usize) -> crate::nn::Architecture {
        crate::nn::Architecture {
            block_size: (self.block_size > 1).then_some(self.block_size),
            ..crate::nn::Architecture::mlp(input_dim, self.width, self.depth)
        }
    }

    /// The problem description (after [`TrainConfig::validate`]).
    pub fn problem(&self) -> Problem {
        if let Some(spec) = &self.pde {
            return spec.problem(self.dim, self.batch, self.sampler).expect("validated PDE");
        }
        let entry = lookup(&self.equation).expect("validated equation name");
        (entry.build)(&ProblemSettings {
            dim: self.dim,
            problem_seed: self.problem_seed,
            options: ProblemOptions {
                compat_three_body_source: self.compat_three_body_source,
                compat_batch_max_target: self.compat_batch_max_target,
            },
            batch: self.batch,
            sampler: self.sampler,
            gpinn_weight: self.gpinn_weight,
            gpinn_form: GpinnForm::parse(&self.gpinn_form).unwrap_or_default(),
            path_steps: (self.parabolic_sampler == "trajectory").then_some(PATH_STEPS),
            horizon: self.horizon,
            terminal_batch: self.terminal_batch,
            terminal_weight: self.terminal_weight,
            terminal_gradient_weight: self.terminal_gradient_weight,
            boundary_batch: self.boundary_batch,
            boundary_weight: self.boundary_weight,
        })
    }

    /// Rough memory need in bytes: parameters with gradient and Adam state, the step's jets and
    /// points, and one test batch.
    pub fn memory_estimate(&self) -> u64 {
        let elem = if self.precision == "f64" { 8.0 } else { 4.0 };
        let time = match &self.pde {
            Some(spec) => spec.time(),
            None => lookup(&self.equation).is_some_and(|e| e.time),
        };
        let d = self.dim as f64 + f64::from(u8::from(time));
        let (h, b) = (self.width as f64, self.block_size as f64);
        let first_in = (d / b).floor();
        let params = first_in * h + (self.depth as f64 - 1.0) * h * h + b;
        let dirs = if self.method == "exact" {
            d
        } else if self.gpinn_weight > 0.0 {
            // 7-jets: the orders count like 3.5 second-order directions each; R² of them for the
            // forms over all of I × J
            let pairs = if self.gpinn_form == "zipped" {
                1.0
            } else {
                self.rand_batch as f64
            };
            self.rand_batch as f64 * pairs * 4.0
        } else {
            self.rand_batch as f64 * if self.unbiased { 2.0 } else { 1.0 }
        };
        let rows = self.batch as f64 * dirs;
        // params + grad in T, Adam m/v counted as f64 (an upper bound: they are stored in T)
        let param_bytes = params * (2.0 * elem + 16.0);
        // tape: ~3 jets per layer of (primal + 2 orders per row) × width, plus cotangents
        let jet_bytes = self.depth as f64 * 5.0 * (rows * 2.0 + self.batch as f64) * h * elem;
        // residual points (moved into the jets, not copied), two copies of one test batch, the
        // coefficients c_i and one f64 point per thread
        let test_batch = test_batch(self.dim) as f64;
        let threads = if self.threads == 0 {
            rayon::current_num_threads()
        } else {
            self.threads
        } as f64;
        let point_bytes = self.batch as f64 * d * elem + 2.0 * test_batch * d * elem + d * 8.0 + threads * d * 8.0;
        let dense_dirs = if self.method == "dense" {
            dirs * d * (elem + 8.0)
        } else {
            0.0
        };
        // the exact values at the test points, cached after the first evaluation
        let target_bytes = self.test_points as f64 * 8.0;
        // in f64 so that no dimension can overflow it; saturates at u64::MAX
        (param_bytes + jet_bytes + point_bytes + dense_dirs + target_bytes).min(u64::MAX as f64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pde::Term;

    #[test]
    fn defaults_validate_and_bad_values_are_named() {
        assert!(TrainConfig::default().validate().is_ok());
        let bad = |f: &dyn Fn(&mut TrainConfig)| {
            let mut c = TrainConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(&|c| c.equation = "heat".into()).contains("unknown equation"));
        assert!(bad(&|c| c.dim = 1).contains("too small"));
        assert!(bad(&|c| c.method = "magic".into()).contains("unknown method"));
        assert!(bad(&|c| c.rand_batch = 5000).contains("exceeds"));
        assert!(bad(&|c| c.steps = 0).contains("--steps"));
        assert!(bad(&|c| c.block_size = 7).contains("does not divide"));
        assert!(TrainConfig::from_toml("dim = 100\nsteps = 5").unwrap().dim == 100);
        assert!(
            TrainConfig::from_toml("dimm = 100")
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(bad(&|c| c.ema = 1.0).contains("--ema"));
        assert!(bad(&|c| c.output_scaling = "on".into()).contains("--output-scaling"));
        let c = TrainConfig::default();
        assert_eq!(TrainConfig::from_toml(&c.to_toml()).unwrap(), c);
    }

    /// Accurate by default: a moving average, the fitted output head, a decaying learning rate
    /// on the parabolic problems too, and the gPINN form that vanishes at the exact solution
    /// (the zipped form needs a gPINN term to be named).
    #[test]
    fn defaults_are_the_accurate_ones() {
        let c = TrainConfig::default();
        assert_eq!((c.ema, c.output_scaling.as_str()), (0.999, "auto"));
        assert_eq!(TrainConfig::for_equation("semilinear-heat").schedule, "linear");
        let gpinn = TrainConfig {
            gpinn_weight: 0.1,
            ..TrainConfig::default()
        };
        let problem = gpinn.problem();
        let Term::Residual { gpinn_form, .. } = &problem.conditions[0].term else {
            panic!("a residual condition")
        };
        assert_eq!(*gpinn_form, GpinnForm::Consistent);
        let zipped = TrainConfig {
            gpinn_form: "zipped".into(),
            ..TrainConfig::default()
        };
        assert!(zipped.validate().unwrap_err().contains("needs a gPINN term"));
    }
}
