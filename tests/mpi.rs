//! Data-parallel training under `mpirun` (feature `mpi`; needs Open MPI's `mpirun` on PATH):
//! P = 2 ranks against one process with the same seed and total batch, reproducibility,
//! checkpoints across P, and failing ranks. Run with
//! `cargo test --release --features mpi --test mpi` (`.ci/run` does).
#![cfg(feature = "mpi")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_stde");

/// `mpirun -n n` (root allowed, more ranks than cores allowed, no core binding: CI containers).
fn mpirun_cmd(n: usize) -> Command {
    let mut c = Command::new("mpirun");
    c.args(["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n"])
        .arg(n.to_string())
        // containers often forbid the cross-process memory reads Open MPI's shared-memory
        // transport tries first
        .env("OMPI_MCA_btl_vader_single_copy_mechanism", "none");
    c
}

/// Waits for `child`, killing it after `limit` (a hang fails the test instead of stalling CI).
fn wait_within(mut child: Child, limit: Duration) -> (Output, Duration) {
    let t = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            return (child.wait_with_output().expect("output"), t.elapsed());
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn run(mut c: Command) -> Output {
    let child = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mpirun (Open MPI) on PATH");
    wait_within(child, Duration::from_secs(300)).0
}

/// `stde train args --out out` on `ranks` MPI ranks (0: one plain process, no mpirun).
fn train(ranks: usize, args: &[&str], out: &Path) -> Output {
    let mut c = if ranks == 0 {
        Command::new(BIN)
    } else {
        let mut c = mpirun_cmd(ranks);
        c.arg(BIN);
        c
    };
    c.arg("train")
        .args(args)
        .arg("--out")
        .arg(out)
        .args(["--quiet", "--threads", "1"]);
    let o = run(c);
    assert!(
        o.status.success(),
        "ranks {ranks}, {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The metrics rows without the wall-clock column: step, loss, lr, rel_l2, rel_l1, grad_norm.
fn metrics(dir: &Path) -> Vec<Vec<f64>> {
    let text = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 5)
                .map(|(_, v)| v.parse::<f64>().unwrap_or(f64::NAN))
                .collect()
        })
        .collect()
}

/// Largest relative difference between two runs' metrics (NaN cells, no evaluation, must match).
fn max_rel_diff(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    assert_eq!(a.len(), b.len(), "different numbers of steps");
    let mut worst = 0.0f64;
    for (ra, rb) in a.iter().zip(b) {
        for (x, y) in ra.iter().zip(rb) {
            assert_eq!(x.is_nan(), y.is_nan(), "rows {ra:?} vs {rb:?}");
            if !x.is_nan() {
                worst = worst.max((x - y).abs() / x.abs().max(y.abs()).max(1e-300));
            }
        }
    }
    worst
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// P = 2 against one process: every loss, learning rate, error and gradient norm of the run
/// within `tol` (relative).
fn two_ranks_match_one(args: &[&str], tol: f64) {
    let d = tmp();
    let (one, two) = (d.path().join("one"), d.path().join("two"));
    train(0, args, &one);
    train(2, args, &two);
    let diff = max_rel_diff(&metrics(&one), &metrics(&two));
    eprintln!("{args:?}: max relative difference P=2 vs P=1 {diff:.2e}");
    assert!(diff <= tol, "{args:?}: P = 2 differs from P = 1 by {diff:e} > {tol:e}");
}

const ELLIPTIC: &[&str] = &[
    "--equation",
    "allen-cahn-two-body",
    "--dim",
    "20",
    "--steps",
    "30",
    "--batch",
    "16",
    "--eval-every",
    "10",
    "--test-points",
    "300",
];

#[test]
fn elliptic_two_ranks_equal_one_process() {
    let f64_args: Vec<&str> = ELLIPTIC.iter().copied().chain(["--f64"]).collect();
    two_ranks_match_one(&f64_args, 1e-11);
    two_ranks_match_one(ELLIPTIC, 1e-5);
}

#[test]
fn parabolic_two_ranks_equal_one_process() {
    let args = [
        "--equation",
        "allen-cahn-parabolic",
        "--dim",
        "10",
        "--width",
        "32",
        "--steps",
        "20",
        "--eval-every",
        "10",
    ];
    let f64_args: Vec<&str> = args.iter().copied().chain(["--f64"]).collect();
    two_ranks_match_one(&f64_args, 1e-11);
    two_ranks_match_one(&args, 1e-5);
}

#[test]
fn weight_shared_and_gpinn_two_ranks_equal_one_process() {
    let shared = [
        "--equation",
        "sine-gordon-two-body",
        "--dim",
        "40",
        "--block-size",
        "4",
        "--steps",
        "20",
        "--batch",
        "10",
        "--eval-every",
        "10",
        "--test-points",
        "200",
        "--f64",
    ];
    two_ranks_match_one(&shared, 1e-11);
    let gpinn = [
        "--equation",
        "sine-gordon-two-body",
        "--dim",
        "20",
        "--gpinn-weight",
        "0.1",
        "--steps",
        "20",
        "--batch",
        "10",
        "--eval-every",
        "10",
        "--test-points",
        "200",
        "--f64",
    ];
    two_ranks_match_one(&gpinn, 1e-11);
}

#[test]
fn formula_problem_two_ranks_equal_one_process() {
    // a high-order problem: formula residuals, an initial-value ansatz and a lateral target term
    let args = [
        "--equation",
        "kdv-2d",
        "--width",
        "16",
        "--steps",
        "10",
        "--eval-every",
        "5",
        "--test-points",
        "300",
        "--f64",
    ];
    two_ranks_match_one(&args, 1e-11);
}

#[test]
fn one_rank_under_mpirun_is_the_single_process_run_and_two_ranks_reproduce() {
    let d = tmp();
    let plain = d.path().join("plain");
    train(0, ELLIPTIC, &plain);
    let one = d.path().join("one");
    train(1, ELLIPTIC, &one);
    assert_eq!(
        bits(&metrics(&plain)),
        bits(&metrics(&one)),
        "mpirun -n 1 must be the same run, bit for bit"
    );
    let (a, b) = (d.path().join("a"), d.path().join("b"));
    train(2, ELLIPTIC, &a);
    train(2, ELLIPTIC, &b);
    assert_eq!(
        bits(&metrics(&a)),
        bits(&metrics(&b)),
        "two runs with P = 2 must be identical (fixed reduction order)"
    );
    let s: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(a.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["processes"], 2);
}

/// `base` with the value of `flag` replaced.
fn with(base: &[&str], flag: &str, value: &str) -> Vec<String> {
    let mut v: Vec<String> = base.iter().map(|s| s.to_string()).collect();
    let i = v.iter().position(|s| s == flag).unwrap();
    v[i + 1] = value.into();
    v
}

/// Metrics as bits (NaN cells compare equal to themselves).
fn bits(m: &[Vec<f64>]) -> Vec<Vec<u64>> {
    m.iter().map(|r| r.iter().map(|v| v.to_bits()).collect()).collect()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_checkpoint_resumes_at_another_number_of_ranks() {
    // a constant learning rate: the schedule does not depend on the total number of steps
    let base: Vec<&str> = ELLIPTIC
        .iter()
        .copied()
        .chain(["--f64", "--schedule", "constant"])
        .collect();
    let d = tmp();
    let straight = d.path().join("straight");
    train(0, &base, &straight);
    let reference = metrics(&straight);
    for (first, second) in [(2, 0), (0, 2)] {
        let dir: PathBuf = d.path().join(format!("from{first}to{second}"));
        train(first, &strs(&with(&base, "--steps", "20")), &dir);
        let mut c = if second == 0 {
            Command::new(BIN)
        } else {
            let mut c = mpirun_cmd(second);
            c.arg(BIN);
            c
        };
        c.arg("train")
            .arg("--resume")
            .arg(&dir)
            .args(["--steps", "30", "--quiet"]);
        let o = run(c);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let diff = max_rel_diff(&reference, &metrics(&dir));
        assert!(diff <= 1e-11, "resumed {first} → {second} ranks differs by {diff:e}");
    }
}

#[test]
fn a_rank_with_bad_input_ends_the_job_with_its_message() {
    let d = tmp();
    let out = d.path().join("run");
    // MPMD launch: rank 1 gets a dimension the equation refuses
    let mut c = mpirun_cmd(1);
    c.arg(BIN)
        .arg("train")
        .args(ELLIPTIC)
        .arg("--out")
        .arg(&out)
        .arg("--quiet");
    c.args([":", "-n", "1"])
        .arg(BIN)
        .arg("train")
        .args(with(ELLIPTIC, "--dim", "0"));
    c.arg("--out").arg(&out).arg("--quiet");
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (o, took) = wait_within(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a failing rank must fail the job");
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(err.contains("rank 1 of 2"), "{err}");
    assert!(err.contains("1 of 2 ranks failed"), "rank 0 says so: {err}");
    assert!(!out.join("metrics.csv").exists(), "nothing written");

    // ranks given different configurations are refused by rank 0
    let mut c = mpirun_cmd(1);
    c.arg(BIN)
        .arg("train")
        .args(ELLIPTIC)
        .arg("--out")
        .arg(&out)
        .arg("--quiet");
    c.args([":", "-n", "1"]).arg(BIN).arg("train").args(ELLIPTIC);
    c.args(["--seed", "7", "--out"]).arg(&out).arg("--quiet");
    let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (o, _) = wait_within(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("configuration other than rank 0's"), "{err}");
    assert_eq!(err.matches("error:").count(), 1, "one message, from rank 0: {err}");
}

/// The batch-wide terminal target (compat C7) needs the whole batch in one process: two ranks
/// refuse it with one message instead of training on each rank's part.
#[test]
fn the_batch_max_target_is_refused_on_several_ranks() {
    let d = tmp();
    let out = d.path().join("run");
    let mut c = mpirun_cmd(2);
    c.arg(BIN).arg("train").args([
        "--equation",
        "allen-cahn-parabolic",
        "--dim",
        "10",
        "--width",
        "8",
        "--steps",
        "3",
        "--compat-batch-max-target",
        "--quiet",
        "--out",
    ]);
    c.arg(&out);
    let o = run(c);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("--compat-batch-max-target needs the whole terminal batch"),
        "{err}"
    );
    assert!(!out.join("metrics.csv").exists(), "nothing written");
}

/// A two-rank job of a million steps into `out`, returned once its first checkpoint exists.
fn long_job(out: &Path, stdout: Stdio) -> Child {
    let mut c = mpirun_cmd(2);
    c.arg(BIN)
        .arg("train")
        .args(with(ELLIPTIC, "--steps", "1000000"))
        .args(["--quiet", "--out"])
        .arg(out);
    let mut child = c.stdout(stdout).stderr(Stdio::piped()).spawn().unwrap();
    let t = Instant::now();
    while !out.join("checkpoint.safetensors").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the job ended early");
        assert!(t.elapsed() < Duration::from_secs(60), "no checkpoint written");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// The run in `out` resumes from its last checkpoint (in one process) for a few more steps.
fn resumes_in_one_process(out: &Path) {
    let rows = metrics(out).len();
    let mut c = Command::new(BIN);
    c.arg("train")
        .arg("--resume")
        .arg(out)
        .args(["--steps", &(rows + 10).to_string(), "--quiet"]);
    let o = run(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// The pids of `mpirun`'s children that run `stde` (the ranks).
fn ranks_of(mpirun: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...
        let after = &stat[stat.rfind(')').map_or(0, |i| i + 2)..];
        let ppid: u32 = after
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if ppid == mpirun && stat.contains("(stde)") {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn a_killed_rank_ends_the_job_and_the_checkpoint_stays_usable() {
    let d = tmp();
    let out = d.path().join("run");
    let child = long_job(&out, Stdio::null());
    std::thread::sleep(Duration::from_millis(300));
    let ranks = ranks_of(child.id());
    assert_eq!(ranks.len(), 2, "found the two ranks: {ranks:?}");
    let killed = Instant::now();
    Command::new("kill")
        .args(["-9", &ranks[1].to_string()])
        .status()
        .unwrap();
    let (o, _) = wait_within(child, Duration::from_secs(60));
    assert!(!o.status.success(), "a killed rank must fail the job");
    assert!(
        killed.elapsed() < Duration::from_secs(20),
        "ended {:?} after the kill",
        killed.elapsed()
    );
    // the last checkpoint resumes (here in one process)
    resumes_in_one_process(&out);
}

#[test]
fn a_write_failure_on_rank_0_ends_the_job_without_a_hang() {
    let d = tmp();
    let out = d.path().join("run");
    let child = long_job(&out, Stdio::null());
    // a directory where the next checkpoint's temporary file must go: its write fails (while a
    // checkpoint is being written its temporary file is there: wait until it has been renamed)
    let blocker = out.join("checkpoint.safetensors.tmp");
    let start = Instant::now();
    while let Err(e) = std::fs::create_dir(&blocker) {
        assert!(
            e.kind() == std::io::ErrorKind::AlreadyExists && start.elapsed() < Duration::from_secs(20),
            "{e}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let (o, took) = wait_within(child, Duration::from_secs(60));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert!(err.contains("rank 0 of 2") && err.contains("checkpoint"), "{err}");
    // the last complete checkpoint is intact
    std::fs::remove_dir(out.join("checkpoint.safetensors.tmp")).unwrap();
    resumes_in_one_process(&out);
}

#[test]
fn ctrl_c_on_mpirun_saves_and_stops_every_rank_at_the_same_step() {
    let d = tmp();
    let out = d.path().join("run");
    let child = long_job(&out, Stdio::piped());
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let (o, _) = wait_within(child, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&o.stdout);
    // (mpirun itself exits with 1 after passing on a signal, whatever the ranks return)
    assert!(stdout.contains("interrupted at step"), "{stdout}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["interrupted"], true);
    // the checkpoint is at the interrupted step: the metrics end there and the run resumes
    let rows = metrics(&out).len();
    assert_eq!(s["steps"].as_u64().unwrap() as usize, rows);
    let mut c = Command::new(BIN);
    c.arg("train")
        .arg("--resume")
        .arg(&out)
        .args(["--steps", &(rows + 5).to_string(), "--quiet"]);
    let o = run(c);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(metrics(&out).len(), rows + 5);
}
