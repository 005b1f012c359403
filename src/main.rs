//! The `stde` command line: parses arguments, calls the library, prints results.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use stde::bench::{self, PreparedStep, StepCase};

#[derive(Parser)]
#[command(
    name = "stde",
    version,
    about = "Stochastic Taylor Derivative Estimator: Taylor-mode AD for PINNs"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train a PINN on a high-dimensional benchmark PDE (default: two-body Allen–Cahn, d = 1000,
    /// sparse STDE, R = 16).
    Train(Box<TrainArgs>),
    /// Time forward+backward of K-jets through an MLP (medians; states the machine's threads).
    Bench(BenchArgs),
    /// Print the exact probe plan (jets and read-out weights) of an operator.
    Plan(PlanArgs),
    /// Evaluate u and L u of a saved network at given points.
    Apply(ApplyArgs),
    /// Redraw a run folder's curves.png from its metrics.csv.
    Plot(PlotArgs),
    /// List every equation: dimensions, operator, derivative order, evaluation, defaults.
    List(ListArgs),
}

#[derive(Args)]
struct ListArgs {
    /// Print JSON (one array of objects) for scripts.
    #[arg(long)]
    json: bool,
}

fn run_list(a: &ListArgs) -> Result<(), String> {
    let all = stde::list::list();
    if a.json {
        let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
        return emit(&format!("{text}\n"));
    }
    let mut out = String::new();
    for e in &all {
        let dims = match e.max_dim {
            Some(m) if m == e.min_dim => format!("d = {m}"),
            Some(m) => format!("d = {}..{m}", e.min_dim),
            None => format!("d ≥ {}", e.min_dim),
        };
        let input = if e.time { "(x, t)" } else { "x" };
        out += &format!("{}  [{dims}, input {input}, order {}]\n", e.name, e.order);
        out += &format!("    {}\n", e.summary);
        for r in &e.residuals {
            out += &format!("    residual   {r}\n");
        }
        out += &format!("    ansatz     {}\n", e.ansatz);
        out += &format!("    conditions {}\n", e.conditions.join(", "));
        out += &format!("    evaluation {}\n", e.evaluation);
        if let Some(p) = &e.exact_plan {
            out += &format!("    exact plan {p}\n");
        }
        for p in &e.partials {
            out += &format!("    partials   {p}\n");
        }
        let c = &e.defaults;
        out += &format!(
            "    defaults   --dim {} --method {} --rand-batch {} --batch {} --width {} --depth {} --steps {} --lr {} --schedule {} --eval-every {}\n\n",
            c.dim, c.method, c.rand_batch, c.batch, c.width, c.depth, c.steps, c.lr, c.schedule, c.eval_every
        );
    }
    emit(&format!("{}\n", out.trim_end()))?;
    Ok(())
}

#[derive(Args)]
struct PlotArgs {
    /// Run folder (holds metrics.csv).
    run: PathBuf,
}

fn run_plot(a: &PlotArgs) -> Result<(), String> {
    let metrics = a.run.join("metrics.csv");
    if !metrics.is_file() {
        return Err(format!("{}: no metrics.csv there", a.run.display()));
    }
    let out = a.run.join("curves.png");
    stde::train::plot::curves(&metrics, &out).map_err(|e| format!("{}: {e}", out.display()))?;
    println!("{}", out.display());
    Ok(())
}

// negative numbers are values (`--lr -1` reaches the check of `--lr`), not unknown flags
#[derive(Args, Clone, Default)]
#[command(allow_negative_numbers = true)]
struct TrainArgs {
    /// TOML config file (flags given here override it).
    #[arg(long)]
    config: Option<PathBuf>,
    /// poisson-two-body, allen-cahn-two-body, sine-gordon-two-body, or -three-body likewise.
    #[arg(long)]
    equation: Option<String>,
    /// Spatial dimension d.
    #[arg(long)]
    dim: Option<usize>,
    /// sparse | dense | exact.
    #[arg(long)]
    method: Option<String>,
    /// Randomisation batch R.
    #[arg(long)]
    rand_batch: Option<usize>,
    /// Optimisation steps.
    #[arg(long)]
    steps: Option<usize>,
    /// Residual points per step.
    #[arg(long)]
    batch: Option<usize>,
    /// Base learning rate.
    #[arg(long)]
    lr: Option<f64>,
    /// constant | linear | cosine | exponential | exponential-per-run.
    #[arg(long)]
    schedule: Option<String>,
    /// Hidden width.
    #[arg(long)]
    width: Option<usize>,
    /// Number of affine layers.
    #[arg(long)]
    depth: Option<usize>,
    /// First-layer weight-sharing block size (1 = none).
    #[arg(long)]
    block_size: Option<usize>,
    /// Run seed.
    #[arg(long)]
    seed: Option<u64>,
    /// Problem seed: draws the coefficients c_i of the problem instance.
    #[arg(long)]
    problem_seed: Option<u64>,
    /// Evaluate every N steps.
    #[arg(long)]
    eval_every: Option<usize>,
    /// Number of test points.
    #[arg(long)]
    test_points: Option<usize>,
    /// Worker threads (0 = all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Weight of the gradient-enhanced (gPINN) term, two-body equations (paper: 0.1, 20000 steps).
    #[arg(long)]
    gpinn_weight: Option<f64>,
    /// How the gPINN term pairs the Laplacian's coordinates I with the gradient's J: consistent
    /// ((d/R)·Σ_I u_iij, unbiased for ∂_j of the residual, default), zipped (the reference code)
    /// or double-sum (every pair, summed, as the paper prints it); consistent and double-sum
    /// push R² jets.
    #[arg(long)]
    gpinn_form: Option<String>,
    /// Parabolic interior points: uniform (times t ~ U[0, T), default) or trajectory (all points
    /// of discretised paths with 20 time steps, the reference code's option; --batch a multiple
    /// of 20, e.g. 2000 = 100 paths).
    #[arg(long)]
    parabolic_sampler: Option<String>,
    /// Horizon T of the parabolic equations (default 0.3).
    #[arg(long)]
    horizon: Option<f64>,
    /// Terminal points per step, parabolic equations (default 20).
    #[arg(long)]
    terminal_batch: Option<usize>,
    /// Weight of the terminal loss, parabolic equations (default 20).
    #[arg(long)]
    terminal_weight: Option<f64>,
    /// Weight of the terminal gradient-matching term relative to the value term (default 0.05).
    #[arg(long)]
    terminal_gradient_weight: Option<f64>,
    /// Clip the global gradient norm to this value before each Adam update (default 0: off).
    #[arg(long)]
    clip_grad_norm: Option<f64>,
    /// Decay of the parameters' moving average, the model the run leaves behind (default
    /// 0.999; 0 = the last iterate).
    #[arg(long)]
    ema: Option<f64>,
    /// auto (default): the output's level fitted to the loss and its scale taken from the
    /// terminal/boundary data before the first step; off: neither.
    #[arg(long)]
    output_scaling: Option<String>,
    /// Boundary points per step, problems with a boundary loss (poisson-cube; default 100).
    #[arg(long)]
    boundary_batch: Option<usize>,
    /// Weight of the boundary loss (default 20).
    #[arg(long)]
    boundary_weight: Option<f64>,
    /// Unbiased two-sample loss.
    #[arg(long)]
    unbiased: bool,
    /// Per-direction 2-jets everywhere (default: collapsed jets, one summed second-order buffer
    /// per point, wherever the loss allows).
    #[arg(long)]
    per_direction: bool,
    /// Volume-uniform sampling instead of the reference's radius-uniform scheme.
    #[arg(long)]
    volume_uniform: bool,
    /// allen-cahn-parabolic: the reference code's terminal target, arctan of the whole batch's
    /// largest coordinate for every point (compat C7; default: per point).
    #[arg(long)]
    compat_batch_max_target: bool,
    /// f64 instead of f32.
    #[arg(long)]
    f64: bool,
    /// Plain log lines instead of a progress bar.
    #[arg(long)]
    quiet: bool,
    /// Run folder (default runs/<equation>-d<dim>-<method>-R<R>-s<seed>, then -B<block size> and
    /// -p<problem seed> where not the default).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run saved in this folder (only --steps and --threads may accompany it; more
    /// --steps extend it, and a decaying schedule then continues at the rate it reached).
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Train your own PDE given by formulas in this TOML file (see README, "Your own PDE").
    #[arg(long)]
    pde: Option<PathBuf>,
    /// Start clean in an --out folder that holds another run's files (deletes them).
    #[arg(long)]
    overwrite: bool,
}

impl TrainArgs {
    /// The flags given that would change a run's definition (all but --steps, --threads,
    /// --quiet, --resume), for refusing them on --resume.
    fn fixed_flags_given(&self) -> Vec<&'static str> {
        let mut given = Vec::new();
        macro_rules! check {
            ($($f:ident => $name:literal),* $(,)?) => { $(if self.$f.is_some() { given.push($name); })* };
        }
        check!(
            config => "--config", equation => "--equation", dim => "--dim", method => "--method",
            rand_batch => "--rand-batch", batch => "--batch", lr => "--lr", schedule => "--schedule",
            width => "--width", depth => "--depth", block_size => "--block-size", seed => "--seed",
            problem_seed => "--problem-seed", eval_every => "--eval-every", test_points => "--test-points",
            gpinn_weight => "--gpinn-weight", gpinn_form => "--gpinn-form",
            parabolic_sampler => "--parabolic-sampler", horizon => "--horizon", terminal_batch => "--terminal-batch",
            terminal_weight => "--terminal-weight", terminal_gradient_weight => "--terminal-gradient-weight",
            boundary_batch => "--boundary-batch", boundary_weight => "--boundary-weight",
            clip_grad_norm => "--clip-grad-norm", out => "--out", pde => "--pde", ema => "--ema",
            output_scaling => "--output-scaling",
        );
        for (on, name) in [
            (self.unbiased, "--unbiased"),
            (self.per_direction, "--per-direction"),
            (self.volume_uniform, "--volume-uniform"),
            (self.compat_batch_max_target, "--compat-batch-max-target"),
            (self.f64, "--f64"),
            (self.overwrite, "--overwrite"),
        ] {
            if on {
                given.push(name);
            }
        }
        given
    }
}

fn run_train(a: &TrainArgs, group: stde::dist::Group) -> Result<(), String> {
    use stde::train::train;
    // every rank reads its arguments; with several ranks they agree on going on before training
    let prepared = prepare_train(a, group);
    let (cfg, opts) = match group.agree(prepared.is_err()) {
        (0, _) => prepared?,
        (failed, root_failed) if group.is_root() || !root_failed => {
            let msg = match prepared {
                Err(e) if group.is_root() => e,
                Err(e) => format!("rank {} of {}: {e}", group.rank(), group.size()),
                Ok(_) if group.is_root() => format!(
                    "{failed} of {} ranks failed (their messages are above); stopped",
                    group.size()
                ),
                Ok(_) => String::new(),
            };
            return Err(msg);
        }
        _ => return Err(String::new()),
    };
    let out = opts.out.clone();
    if !a.quiet && group.is_root() {
        eprintln!(
            "training {} (d = {}, {} R = {}) into {}{}",
            cfg.equation,
            cfg.dim,
            cfg.method,
            cfg.rand_batch,
            out.display(),
            if group.size() > 1 {
                format!(" on {} MPI ranks", group.size())
            } else {
                String::new()
            }
        );
    }
    let s = train(&cfg, &opts).map_err(|e| e.to_string())?;
    if !group.is_root() {
        return Ok(());
    }
    if s.interrupted {
        emit(&format!(
            "interrupted at step {}: checkpoint saved; continue with: stde train --resume {}\n",
            s.steps,
            out.display()
        ))?;
    }
    let score = match (s.final_value, s.reference_value) {
        (Some(v), Some(r)) => format!(
            "u(0, 0) = {v:.6} (reference {r}), final rel-L1 {:.3e} (best evaluated {:.3e})",
            s.final_rel_l1, s.best_rel_l1
        ),
        (Some(v), None) => format!("u(0, 0) = {v:.6} (no reference value exists at this d)"),
        _ => format!(
            "final rel-L2 {:.3e} (best evaluated {:.3e})",
            s.final_rel_l2, s.best_rel_l2
        ),
    };
    emit(&format!(
        "{}: d = {}, {} steps, {score}, {:.1} it/s, {:.0} s, peak RSS {:.0} MiB\ntraining time: {}\nresults: {}/ (summary.json, metrics.csv, curves.png, checkpoint.safetensors)\n",
        s.equation,
        s.dim,
        s.steps,
        s.it_per_s,
        s.wall_s,
        s.peak_rss_mb,
        s.time_s.shares(),
        out.display()
    ))
}

/// The configuration and run options `stde train` was given (no side effects but the Ctrl-C
/// handler).
fn prepare_train(
    a: &TrainArgs,
    group: stde::dist::Group,
) -> Result<(stde::train::TrainConfig, stde::train::RunOptions), String> {
    use stde::train::{RunOptions, TrainConfig};
    if a.resume.is_some() {
        let fixed = a.fixed_flags_given();
        if !fixed.is_empty() {
            return Err(format!(
                "--resume continues the run as its config.toml defines it; {} cannot change it (only --steps and --threads can)",
                fixed.join(", ")
            ));
        }
    }
    // defaults follow the equation (the parabolic problems use the paper's wider network, R and
    // evaluation cadence); a config file's keys and then the flags override them
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
            TrainConfig::from_toml_for(&text, a.equation.as_deref()).map_err(|e| format!("{}: {e}", p.display()))?
        }
        None => TrainConfig::for_equation(a.equation.as_deref().unwrap_or("allen-cahn-two-body")),
    };
    if let Some(p) = &a.pde {
        if a.equation.is_some() {
            return Err("--pde and --equation cannot be combined".into());
        }
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        let spec = stde::pde::custom::PdeSpec::from_toml(&text).map_err(|e| format!("{}: {e}", p.display()))?;
        cfg.equation = spec.name.clone();
        if let Some(d) = spec.dim {
            cfg.dim = d;
        }
        // a low-dimensional PDE is evaluated exactly unless --method says otherwise
        if cfg.dim + usize::from(spec.time()) <= 16 && a.config.is_none() {
            cfg.method = "exact".into();
        }
        cfg.pde = Some(spec);
    }
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = &a.$f { cfg.$f = v.clone(); })* };
    }
    set!(
        equation,
        dim,
        method,
        rand_batch,
        steps,
        batch,
        lr,
        schedule,
        width,
        depth,
        block_size,
        seed,
        problem_seed,
        eval_every,
        test_points,
        threads,
        gpinn_weight,
        gpinn_form,
        parabolic_sampler,
        horizon,
        terminal_batch,
        terminal_weight,
        terminal_gradient_weight,
        boundary_batch,
        boundary_weight,
        clip_grad_norm,
        ema,
        output_scaling
    );
    // a default R larger than a small d means "every coordinate" (R given explicitly is checked)
    if a.rand_batch.is_none() && a.config.is_none() && cfg.dim > 0 && cfg.rand_batch > cfg.dim {
        cfg.rand_batch = cfg.dim;
    }
    if a.unbiased {
        cfg.unbiased = true;
    }
    if a.per_direction {
        cfg.collapsed = false;
    }
    if a.volume_uniform {
        cfg.sampler = stde::pde::SamplerKind::VolumeUniform;
    }
    if a.compat_batch_max_target {
        cfg.compat_batch_max_target = true;
    }
    if a.f64 {
        cfg.precision = "f64".into();
    }
    let (out, resume) = match &a.resume {
        Some(dir) => {
            // the run's own definition, for the banner (the trainer reads it again on rank 0)
            if group.is_root() {
                let path = dir.join("config.toml");
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("cannot resume {}: {} ({e})", dir.display(), path.display()))?;
                cfg = TrainConfig::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                if let Some(steps) = a.steps {
                    cfg.steps = steps;
                }
            }
            (dir.clone(), true)
        }
        None => {
            cfg.validate()?;
            // building the problem allocates O(d): only where the plain memory estimate fits (the
            // trainer refuses the others with the figure)
            let fits = stde::train::run::available_memory().is_none_or(|m| cfg.memory_estimate() <= m * 9 / 10);
            if fits {
                stde::train::flags::refuse_unused(&cfg, &cfg.problem(), &a.fixed_flags_given())?;
            }
            let mut name = format!(
                "runs/{}-d{}-{}-R{}-s{}",
                cfg.equation, cfg.dim, cfg.method, cfg.rand_batch, cfg.seed
            );
            if cfg.block_size > 1 {
                name += &format!("-B{}", cfg.block_size);
            }
            if cfg.problem_seed != 0 {
                name += &format!("-p{}", cfg.problem_seed);
            }
            if cfg.gpinn_weight > 0.0 {
                name += &format!("-gpinn{}", cfg.gpinn_weight);
            }
            (a.out.clone().unwrap_or_else(|| PathBuf::from(name)), false)
        }
    };
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    // the first Ctrl-C (or SIGTERM) saves and stops after the current step; a second one ends
    // the process at once (e.g. during a long evaluation)
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .map_err(|e| format!("cannot install the Ctrl-C handler: {e}"))?;
    let opts = RunOptions {
        out: out.clone(),
        resume,
        quiet: a.quiet,
        interrupt,
        stop_after: None,
        overwrite: a.overwrite,
        steps: a.steps.filter(|_| resume),
        threads: a.threads.filter(|_| resume),
        silent: false,
        group,
    };
    Ok((cfg, opts))
}

#[derive(Args, Clone)]
struct PlanArgs {
    /// Operator, e.g. `laplacian`, `biharmonic`, `diag4`, `2*d[0,0,1] - d[3] + 0.5*d[]`
    /// (a leading minus is part of it: `--operator -laplacian`).
    #[arg(long, allow_hyphen_values = true)]
    operator: String,
    /// Input dimension (default: one more than the largest index; required for laplacian etc.).
    #[arg(long)]
    dim: Option<usize>,
}

#[derive(Args, Clone)]
struct ApplyArgs {
    /// Network checkpoint (safetensors, `layers.{l}.weight` [out, in], `layers.{l}.bias` [out]).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Points: float64/float32 `.npy` [n, d] or headerless CSV.
    #[arg(long)]
    points: PathBuf,
    /// Operator, e.g. `laplacian` or `2*d[0,0,1] - d[3] + 0.5*d[]` (a leading minus is part
    /// of it).
    #[arg(long, allow_hyphen_values = true)]
    operator: String,
    /// exact | sparse | dense.
    #[arg(long, default_value = "exact")]
    estimator: String,
    /// Sparse sampling: uniform | importance.
    #[arg(long, default_value = "uniform")]
    sampling: String,
    /// Dense probes: auto | rademacher | gaussian (auto: Gaussian for the biharmonic).
    #[arg(long, default_value = "auto")]
    probes: String,
    /// Randomisation batch R (sparse: terms drawn; dense: probes).
    #[arg(long, default_value_t = 16)]
    rand_batch: usize,
    /// Seed of the random draw (one draw shared by all points).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Compute in f32 (default f64).
    #[arg(long)]
    f32: bool,
    /// Evaluate the bare network N, ignoring a hard-constraint ansatz recorded in the checkpoint
    /// (trainer checkpoints hold N with u = (1 − ‖x‖²)·N).
    #[arg(long)]
    no_ansatz: bool,
    /// Output file: `.npy` [n, 2] or CSV `u,Lu`; standard output when absent.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn run_plan(a: &PlanArgs) -> Result<(), String> {
    let op = stde::operator::parse(&a.operator).map_err(|e| e.to_string())?;
    let dim = match a.dim {
        Some(d) => d,
        None if op.families.is_empty() => op.terms.iter().flat_map(|t| t.index.iter()).max().map_or(1, |m| m + 1),
        None => return Err("plan: --dim is required for laplacian, biharmonic and diagK".into()),
    };
    let plan = stde::operator::ProbePlan::exact(&op, dim).map_err(|e| e.to_string())?;
    emit(&format!(
        "operator {} in dimension {dim} (derivative convention: x(s) = x0 + Σ v_k s^k/k!, y_n = dⁿu/dsⁿ)\n",
        a.operator
    ))?;
    emit(&plan.to_string())
}

/// Writes to standard output; a closed pipe (e.g. `| head`) ends the output quietly.
fn emit(text: &str) -> Result<(), String> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write output: {e}")),
        _ => Ok(()),
    }
}

fn run_apply(a: &ApplyArgs) -> Result<(), String> {
    let cfg = stde::apply::ApplyConfig {
        checkpoint: a.checkpoint.clone(),
        points: a.points.clone(),
        operator: a.operator.clone(),
        estimator: a.estimator.clone(),
        sampling: a.sampling.clone(),
        probes: a.probes.clone(),
        rand_batch: a.rand_batch,
        seed: a.seed,
        f32: a.f32,
        ignore_ansatz: a.no_ansatz,
    };
    let (u, lu) = stde::apply::apply(&cfg).map_err(|e| e.to_string())?;
    match &a.out {
        Some(path) => stde::io::points::write_values(path, &u, &lu).map_err(|e| e.to_string()),
        None => emit(&stde::io::points::values_csv(&u, &lu)),
    }
}

#[derive(Args, Clone)]
#[command(args_conflicts_with_subcommands = true, allow_negative_numbers = true)]
struct BenchArgs {
    /// `step`: time the whole training step of an equation instead of a jet pass.
    #[command(subcommand)]
    what: Option<BenchWhat>,
    /// Input dimension d.
    #[arg(long, default_value_t = 100)]
    dim: usize,
    /// Points per batch.
    #[arg(long, default_value_t = 100)]
    points: usize,
    /// Directions (jets) per point.
    #[arg(long, default_value_t = 16)]
    dirs: usize,
    /// Hidden width.
    #[arg(long, default_value_t = 128)]
    width: usize,
    /// Number of affine layers.
    #[arg(long, default_value_t = 4)]
    depth: usize,
    /// Jet orders to time (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "2,4")]
    orders: Vec<usize>,
    /// Dense tangents instead of one-hot.
    #[arg(long)]
    dense: bool,
    /// Compute in f64 instead of f32.
    #[arg(long)]
    f64: bool,
    /// Timed runs per case.
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Also time the one-hot first-layer tangent gather at d = 1K and 1M.
    #[arg(long)]
    first_layer: bool,
    /// Also compare collapsed and uncollapsed propagation of one-hot 2-jets (time and tape memory).
    #[arg(long)]
    collapsed: bool,
}

#[derive(Subcommand, Clone)]
enum BenchWhat {
    /// The whole training step (sampling, source, jets, reverse pass, Adam) of any equation,
    /// after warm-up: median steps/s, spread, phase split, peak RSS.
    Step(BenchStepArgs),
}

#[derive(Args, Clone)]
#[command(allow_negative_numbers = true)]
struct BenchStepArgs {
    /// Equation (as for train).
    #[arg(long, default_value = "allen-cahn-two-body")]
    equation: String,
    /// Dimension (default: the equation's).
    #[arg(long)]
    dim: Option<usize>,
    /// exact, sparse or dense (default: the equation's).
    #[arg(long)]
    method: Option<String>,
    /// Randomisation batch R (default: the equation's).
    #[arg(long)]
    rand_batch: Option<usize>,
    /// Residual points per step (default: the equation's).
    #[arg(long)]
    batch: Option<usize>,
    /// Hidden width (default: the equation's).
    #[arg(long)]
    width: Option<usize>,
    /// Number of affine layers (default: the equation's).
    #[arg(long)]
    depth: Option<usize>,
    /// First-layer weight-sharing block size.
    #[arg(long)]
    block_size: Option<usize>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 200)]
    steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 20)]
    warmup: usize,
    /// Decay of the parameters' moving average (default: the trainer's; 0 = none).
    #[arg(long)]
    ema: Option<f64>,
    /// f64 instead of f32.
    #[arg(long)]
    f64: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Run the reference table (d = 100 … 10⁶, two-body Allen–Cahn, R = 16, 100 points, 4 × 128,
    /// f32), each row in its own process, and write it into `--doc` between its sweep markers.
    #[arg(long)]
    sweep: bool,
    /// The document whose sweep table `--sweep` regenerates.
    #[arg(long, default_value = "docs/PERFORMANCE.md")]
    doc: PathBuf,
}

/// `stde bench step --sweep`: every row of [`stde::bench::SWEEP`] in a child process (so that
/// each row's peak RSS is its own), then the table into `a.doc`.
fn run_bench_sweep(a: &BenchStepArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;
    let mut rows = Vec::new();
    for (d, block, steps, warmup) in stde::bench::SWEEP {
        eprintln!("sweep: d = {d} ({steps} steps after {warmup})");
        let out = std::process::Command::new(&exe)
            .args(["bench", "step", "--json", "--threads", &a.threads.to_string()])
            .args(["--dim", &d.to_string(), "--block-size", &block.to_string()])
            .args(["--steps", &steps.to_string(), "--warmup", &warmup.to_string()])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
        if !out.status.success() {
            return Err(format!(
                "sweep row d = {d} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let r: stde::bench::StepReport =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("sweep row d = {d}: unreadable report: {e}"))?;
        rows.push(r);
    }
    let table = stde::bench::sweep_table(&rows, &stde::bench::cpu_name());
    emit(&table)?;
    let doc = std::fs::read_to_string(&a.doc).map_err(|e| format!("{}: {e}", a.doc.display()))?;
    let new = stde::bench::replace_sweep(&doc, &table).ok_or_else(|| {
        format!(
            "{}: no <!-- sweep:start --> … <!-- sweep:end --> markers to write the table between",
            a.doc.display()
        )
    })?;
    let tmp = a.doc.with_extension("md.tmp");
    std::fs::write(&tmp, new)
        .and_then(|_| std::fs::rename(&tmp, &a.doc))
        .map_err(|e| format!("{}: {e}", a.doc.display()))?;
    eprintln!("wrote the table into {}", a.doc.display());
    Ok(())
}

fn run_bench_step(a: &BenchStepArgs) -> Result<(), String> {
    if a.sweep {
        return run_bench_sweep(a);
    }
    let mut cfg = stde::train::TrainConfig::for_equation(&a.equation);
    macro_rules! set {
        ($($f:ident),*) => { $(if let Some(v) = &a.$f { cfg.$f = v.clone(); })* };
    }
    set!(dim, method, rand_batch, batch, width, depth, block_size, ema);
    if a.rand_batch.is_none() && cfg.rand_batch > cfg.dim {
        cfg.rand_batch = cfg.dim;
    }
    cfg.threads = a.threads;
    if a.f64 {
        cfg.precision = "f64".into();
    }
    cfg.validate()?;
    let r = stde::bench::step(&cfg, a.warmup, a.steps)?;
    if a.json {
        return emit(&(serde_json::to_string_pretty(&r).map_err(|e| e.to_string())? + "\n"));
    }
    let pct = |v: f64| format!("{:.0} %", 100.0 * v);
    if !r.rates.all_cores(r.threads) {
        eprintln!(
            "warning: a core was missing while the rates were measured (FMA peak {:.1} GFLOP/s on {} threads, {:.1} on one): the bound below is not this machine's",
            r.rates.fma_peak_flop_s / 1e9,
            r.threads,
            r.rates.fma_peak_one_thread_flop_s / 1e9
        );
    }
    emit(&format!(
        "{} d = {} {} R = {}, {} thread(s), {} timed steps after {} warm-up\n\
         median {:.2} steps/s ({:.3} ms/step; p10–p90 {:.3}–{:.3} ms)\n\
         phases: sample {}, source {}, network {}, update {}; peak RSS {:.0} MiB\n\
         work per step: {:.3e} FLOP in products, {:.3e} FLOP of source arithmetic, {:.1} MB to move (model), {:.3e} sin/cos pairs + {:.3e} of small arguments + {:.3e} near 1, {:.3e} Gaussians\n\
         machine ({} thread(s)): products {:.1} GFLOP/s (FMA peak {:.1}), memory {:.1} GB/s, {:.0} M sin/cos/s ({:.0} M small, {:.0} M near 1), {:.0} M Gaussians/s\n\
         bound: max(products {:.3} ms + source arithmetic {:.3} ms + transcendentals {:.3} ms, memory {:.3} ms) = {:.3} ms; the step runs at {:.0} % of it ({:.0} % without the source arithmetic, {:.0} % of the largest term alone)\n",
        r.equation,
        r.dim,
        r.method,
        r.rand_batch,
        r.threads,
        r.steps,
        a.warmup,
        r.steps_per_s,
        r.step_s_median * 1e3,
        r.step_s_p10_p90[0] * 1e3,
        r.step_s_p10_p90[1] * 1e3,
        pct(r.phase_shares[0]),
        pct(r.phase_shares[1]),
        pct(r.phase_shares[2]),
        pct(r.phase_shares[3]),
        r.peak_rss_mb,
        r.work.gemm_flops,
        r.work.source_flops,
        r.work.bytes / 1e6,
        r.work.sin_cos,
        r.work.sin_cos_small,
        r.work.sin_cos_near_one,
        r.work.normals,
        r.threads,
        r.rates.gemm_flop_s / 1e9,
        r.rates.fma_peak_flop_s / 1e9,
        r.rates.bytes_s / 1e9,
        r.rates.sin_cos_s / 1e6,
        r.rates.sin_cos_small_s / 1e6,
        r.rates.sin_cos_near_one_s / 1e6,
        r.rates.normals_s / 1e6,
        r.bound.product_s * 1e3,
        r.bound.source_arith_s * 1e3,
        r.bound.transcendental_s * 1e3,
        r.bound.memory_s * 1e3,
        r.bound.bound_s * 1e3,
        100.0 * r.bound.fraction,
        100.0 * r.bound.fraction_without_source_arith,
        100.0 * r.bound.overlap_all_s / r.step_s_median.max(1e-300)
    ))?;
    // where the products' time goes: the longest shapes, each at its own rate
    let mut lines = String::from("products by shape (per step; thread time, shapes side by side count whole):\n");
    for s in r.product_shapes.iter().take(8) {
        lines += &format!(
            "  {} × {} × {}: {:.2} calls, {:.3} ms, {:.0} GFLOP/s\n",
            s.m,
            s.n,
            s.k,
            s.calls,
            s.seconds * 1e3,
            s.flop_s() / 1e9
        );
    }
    emit(&lines)
}

impl BenchArgs {
    /// The timing case these arguments describe, at jet order `order`.
    fn case(&self, order: usize, dense: bool) -> StepCase {
        StepCase {
            dim: self.dim,
            points: self.points,
            dirs: self.dirs,
            width: self.width,
            depth: self.depth,
            order,
            dense,
        }
    }
}

fn run_bench(a: &BenchArgs) -> Result<(), String> {
    if let Some(BenchWhat::Step(s)) = &a.what {
        return run_bench_step(s);
    }
    if a.points == 0 || a.dirs == 0 || a.width == 0 || a.depth == 0 || a.dim == 0 || a.runs == 0 {
        return Err("bench: --points, --dirs, --width, --depth, --dim and --runs must be positive".into());
    }
    if let Some(k) = a.orders.iter().find(|&&k| k == 0 || k > stde::jet::MAX_ORDER) {
        return Err(format!(
            "bench: jet order {k} is out of range 1..={}",
            stde::jet::MAX_ORDER
        ));
    }
    println!(
        "jet_mlp: {} points x {} directions, d = {}, {} affine layers of width {}, {} tangents, {}, {} threads",
        a.points,
        a.dirs,
        a.dim,
        a.depth,
        a.width,
        if a.dense { "dense" } else { "one-hot" },
        if a.f64 { "f64" } else { "f32" },
        rayon::current_num_threads()
    );
    println!(
        "{:>3} {:>12} {:>12} {:>12} {:>14}",
        "K", "median ms", "min ms", "GEMM GFLOP/s", "outside GEMM"
    );
    for &order in &a.orders {
        let case = a.case(order, a.dense);
        let t = if a.f64 {
            let mut s = PreparedStep::<f64>::new(&case);
            bench::time(|| s.run(), 3, a.runs)
        } else {
            let mut s = PreparedStep::<f32>::new(&case);
            bench::time(|| s.run(), 3, a.runs)
        };
        println!(
            "{:>3} {:>12.3} {:>12.3} {:>12.1} {:>13.1}%",
            order,
            t.median_s * 1e3,
            t.min_s * 1e3,
            t.gemm_gflops,
            t.outside_gemm_share * 100.0
        );
    }
    if a.collapsed {
        let case = a.case(2, false);
        let (full, coll, mf, mc) = if a.f64 {
            bench::collapsed_vs_full::<f64>(&case, a.runs)
        } else {
            bench::collapsed_vs_full::<f32>(&case, a.runs)
        };
        println!(
            "collapsed 2-jets: uncollapsed {:.3} ms, {:.1} MiB tape; collapsed {:.3} ms, {:.1} MiB tape; speed-up {:.2}x, memory {:.2}x less",
            full.median_s * 1e3,
            mf as f64 / 1048576.0,
            coll.median_s * 1e3,
            mc as f64 / 1048576.0,
            full.median_s / coll.median_s,
            mf as f64 / mc as f64
        );
    }
    if a.first_layer {
        println!(
            "first-layer one-hot tangent gather ({} rows, width {}):",
            a.points * a.dirs,
            a.width
        );
        for dim in [1_000usize, 1_000_000] {
            let t = bench::first_layer_one_hot::<f32>(dim, a.points, a.dirs, a.width, a.runs);
            println!("  d = {dim:>9}: median {:.1} us", t.median_s * 1e6);
        }
    }
    Ok(())
}

/// Clap's error as one line, as every other error of `stde`: `error: …` with what clap lists
/// under it (missing arguments) after the colon, its tips in parentheses, and a pointer to
/// `--help` (clap's usage block and blank lines dropped).
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut out = String::new();
    let (mut listed, mut tips) = (Vec::new(), Vec::new());
    for line in text.lines() {
        let l = line.trim();
        if l.is_empty() || l.starts_with("For more information") {
            continue;
        }
        if l.starts_with("Usage:") {
            break;
        }
        if out.is_empty() {
            out.push_str(l);
        } else if let Some(tip) = l.strip_prefix("tip:") {
            tips.push(tip.trim().to_string());
        } else {
            listed.push(l.to_string());
        }
    }
    if out.is_empty() {
        out.push_str("error: invalid arguments");
    }
    if !listed.is_empty() {
        out.push(' ');
        out.push_str(&listed.join(", "));
    }
    for tip in tips {
        out.push_str(&format!(" (tip: {tip})"));
    }
    out.push_str("; see --help");
    out
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // help and version go to standard output as clap prints them, with status 0
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    let command = cli.command.unwrap_or_else(|| Command::Train(Box::default()));
    // under `mpirun` (feature `mpi`) this process is one rank of the job; it stays in MPI until
    // `_session` drops at the end of main
    let (group, _session) = match stde::dist::init() {
        Ok(g) => g,
        Err(msg) => {
            eprintln!("error: {msg}");
            return ExitCode::from(2);
        }
    };
    if group.size() > 1 && !matches!(command, Command::Train(_)) {
        if group.is_root() {
            eprintln!("error: only `stde train` runs on several MPI ranks; run the other commands without mpirun");
        }
        return ExitCode::from(2);
    }
    let result = match command {
        Command::Train(a) => run_train(&a, group),
        Command::Bench(a) => run_bench(&a),
        Command::Plan(a) => run_plan(&a),
        Command::Apply(a) => run_apply(&a),
        Command::Plot(a) => run_plot(&a),
        Command::List(a) => run_list(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            // an empty message: another MPI rank failed and reported it
            if !msg.is_empty() {
                eprintln!("error: {msg}");
            }
            ExitCode::from(2)
        }
    }
}
