//! The `stde` command line: parses arguments, calls the library, prints results.

use clap::{Args, Parser, Subcommand};
use std::process::ExitCode;
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
    /// Train a PINN (the trainer is not built yet: prints an engine summary instead).
    Train,
    /// Time forward+backward of K-jets through an MLP (medians; states the machine's threads).
    Bench(BenchArgs),
}

#[derive(Args, Clone)]
struct BenchArgs {
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
}

fn run_bench(a: &BenchArgs) -> Result<(), String> {
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
        let case = StepCase {
            dim: a.dim,
            points: a.points,
            dirs: a.dirs,
            width: a.width,
            depth: a.depth,
            order,
            dense: a.dense,
        };
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Train) {
        Command::Train => {
            println!("stde train: the PINN trainer is not implemented yet (issue #4).");
            println!("Running the Taylor-mode engine's reference step instead (forward+backward, one-hot jets):");
            let args = BenchArgs {
                dim: 100,
                points: 100,
                dirs: 16,
                width: 128,
                depth: 4,
                orders: vec![2, 4],
                dense: false,
                f64: false,
                runs: 10,
                first_layer: false,
            };
            run_bench(&args)
        }
        Command::Bench(a) => run_bench(&a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
    }
}
