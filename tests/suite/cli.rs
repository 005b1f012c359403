//! The `stde` binary end to end: `apply` reproduces the committed fixture's operator values
//! (computed independently with JAX nested forward mode in float64, see
//! `tests/fixtures/README.md`, a copy of the shared fixture) to ≤ 1e-5 relative in f32 and ≤ 1e-9 in f64; bad input gives a
//! one-line error and exit code 2.

use std::path::PathBuf;
use std::process::Command;

fn stde(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stde")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn path(p: &std::path::Path) -> String {
    p.display().to_string()
}

#[test]
fn apply_reproduces_fixture() {
    let dir = fixtures();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mlp_4_16_16_1.expected.json")).unwrap()).unwrap();
    let ck = path(&dir.join("mlp_4_16_16_1.safetensors"));
    let pts = path(&dir.join("points_8x4.npy"));
    let u_want: Vec<f64> = expected["u"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    for (op, values) in expected["operators"].as_object().unwrap() {
        let want: Vec<f64> = values.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        for (flag, tol) in [(None, 1e-9), (Some("--f32"), 1e-5)] {
            let mut args = vec!["apply", "--checkpoint", &ck, "--points", &pts, "--operator", op];
            args.extend(flag);
            let (code, out, err) = stde(&args);
            assert_eq!(code, 0, "{op}: {err}");
            let mut lines = out.lines();
            assert_eq!(lines.next(), Some("u,Lu"));
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let lines: Vec<&str> = lines.collect();
            assert_eq!(lines.len(), want.len(), "{op}: one row per point");
            for (p, line) in lines.into_iter().enumerate() {
                let (u, lu) = line.split_once(',').unwrap();
                let (u, lu): (f64, f64) = (u.parse().unwrap(), lu.parse().unwrap());
                assert!(
                    (lu - want[p]).abs() <= tol * scale.max(want[p].abs()),
                    "{op} {flag:?} point {p}: {lu} vs {}",
                    want[p]
                );
                assert!(
                    (u - u_want[p]).abs() <= tol * u_want[p].abs().max(1.0),
                    "u at point {p}"
                );
            }
        }
    }
}

#[test]
fn apply_writes_npy_and_csv_points() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("pts.csv");
    std::fs::write(&csv, "0.1,0.2,0.3,0.4\n-0.1 0.0 0.5 0.2\n").unwrap();
    let out = tmp.path().join("vals.npy");
    let (code, _, err) = stde(&[
        "apply",
        "--checkpoint",
        &path(&dir.join("mlp_4_16_16_1.safetensors")),
        "--points",
        &path(&csv),
        "--operator",
        "laplacian",
        "--estimator",
        "sparse",
        "--rand-batch",
        "2",
        "--seed",
        "3",
        "--out",
        &path(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let a = stde::io::npy::read(&out).unwrap();
    assert_eq!((a.rows, a.cols), (2, 2));
}

fn apply_csv(args: &[&str]) -> Vec<(f64, f64)> {
    let mut full = vec!["apply"];
    full.extend(args);
    let (code, out, err) = stde(&full);
    assert_eq!(code, 0, "{args:?}: {err}");
    out.lines()
        .skip(1)
        .map(|l| {
            let (u, lu) = l.split_once(',').unwrap();
            (u.parse().unwrap(), lu.parse().unwrap())
        })
        .collect()
}

/// A trainer checkpoint holds `N` with `u = ψ·N`, `ψ = 1 − ‖x‖²`: `apply` reports `u` and `Δu`,
/// checked against the bare network (`--no-ansatz`) through `Δ(ψN) = ψΔN − 4x·∇N − 2dN`.
#[test]
fn apply_uses_the_trainers_ansatz() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let d = 5;
    let (code, _, err) = stde(&[
        "train",
        "--equation",
        "allen-cahn-two-body",
        "--dim",
        "5",
        "--method",
        "sparse",
        "--rand-batch",
        "2",
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--test-points",
        "10",
        "--width",
        "8",
        "--quiet",
        "--out",
        &path(&run),
    ]);
    assert_eq!(code, 0, "{err}");
    // `stde plot` redraws the curves from metrics.csv; a folder without one is an error
    std::fs::remove_file(run.join("curves.png")).unwrap();
    let (code, _, err) = stde(&["plot", &path(&run)]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read(run.join("curves.png")).unwrap().starts_with(b"\x89PNG"));
    let (code, _, err) = stde(&["plot", &path(tmp.path())]);
    assert_eq!((code, err.trim().lines().count()), (2, 1), "{err}");
    assert!(err.contains("no metrics.csv"), "{err}");
    let ck = path(&run.join("checkpoint.safetensors"));
    let pts = [[0.1, -0.2, 0.3, 0.05, -0.4], [-0.3, 0.1, 0.0, 0.2, 0.25]];
    let csv = tmp.path().join("pts.csv");
    let text: String = pts
        .iter()
        .map(|p| format!("{}\n", p.map(|v| v.to_string()).join(",")))
        .collect();
    std::fs::write(&csv, text).unwrap();
    let base = ["--checkpoint", &ck, "--points", &path(&csv)];
    let with = |op: &str, bare: bool| {
        let mut a = base.to_vec();
        a.extend(["--operator", op]);
        if bare {
            a.push("--no-ansatz");
        }
        apply_csv(&a)
    };
    let u = with("laplacian", false);
    let n = with("laplacian", true);
    let grads: Vec<Vec<(f64, f64)>> = (0..d).map(|i| with(&format!("d[{i}]"), true)).collect();
    for (p, x) in pts.iter().enumerate() {
        let psi = 1.0 - x.iter().map(|v| v * v).sum::<f64>();
        assert!((u[p].0 - psi * n[p].0).abs() < 1e-12, "u = ψN at point {p}");
        let x_grad: f64 = (0..d).map(|i| x[i] * grads[i][p].1).sum();
        let want = psi * n[p].1 - 4.0 * x_grad - 2.0 * d as f64 * n[p].0;
        assert!(
            (u[p].1 - want).abs() < 1e-10 * want.abs().max(1.0),
            "Δu at point {p}: {} vs {want}",
            u[p].1
        );
    }
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = fixtures();
    let tmp = tempfile::tempdir().unwrap();
    let ck = path(&dir.join("mlp_4_16_16_1.safetensors"));
    let pts = path(&dir.join("points_8x4.npy"));
    // a checkpoint whose layer shapes do not chain
    let bad_ck = tmp.path().join("bad.safetensors");
    {
        use stde::nn::{Architecture, Mlp, checkpoint};
        let net = Mlp::<f64>::new(Architecture::mlp(3, 4, 2), 0).unwrap();
        let mut bytes = checkpoint::to_bytes(&net, &Default::default(), &Default::default());
        // rename layers.1 to layers.2 in the header: the chain now misses a layer
        let pos = bytes.windows(8).position(|w| w == b"layers.1").unwrap();
        bytes[pos + 7] = b'2';
        std::fs::write(&bad_ck, bytes).unwrap();
    }
    let wrong_dim = tmp.path().join("pts3.csv");
    std::fs::write(&wrong_dim, "0.1,0.2,0.3\n").unwrap();
    let garbage = tmp.path().join("garbage.npy");
    std::fs::write(&garbage, b"\x93NUMPY junk").unwrap();
    let missing = path(&tmp.path().join("missing.safetensors"));
    let bc = path(&bad_ck);
    let wd = path(&wrong_dim);
    let gb = path(&garbage);
    // finite in f64, beyond f32: the f32 pass overflows
    let huge = tmp.path().join("huge.csv");
    std::fs::write(&huge, "1e300,1e300,-1e300,1e300\n0.1,0.2,0.3,0.4\n").unwrap();
    let hg = path(&huge);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--checkpoint", &ck, "--points", &hg, "--operator", "laplacian", "--f32"],
            "overflowed; run without --f32",
        ),
        (
            vec!["--checkpoint", &ck, "--points", &pts, "--operator", "2*d[0,,1]"],
            "syntax error",
        ),
        (
            vec!["--checkpoint", &ck, "--points", &pts, "--operator", "lapalcian"],
            "syntax error",
        ),
        (
            vec!["--checkpoint", &ck, "--points", &pts, "--operator", "d[4]"],
            "out of range",
        ),
        (
            vec![
                "--checkpoint",
                &ck,
                "--points",
                &pts,
                "--operator",
                "laplacian",
                "--estimator",
                "sparse",
                "--rand-batch",
                "5",
            ],
            "exceeds",
        ),
        (
            vec![
                "--checkpoint",
                &ck,
                "--points",
                &pts,
                "--operator",
                "laplacian",
                "--estimator",
                "magic",
            ],
            "unknown estimator",
        ),
        (
            vec!["--checkpoint", &missing, "--points", &pts, "--operator", "laplacian"],
            "missing.safetensors",
        ),
        (
            vec!["--checkpoint", &bc, "--points", &pts, "--operator", "laplacian"],
            "bad.safetensors",
        ),
        (
            vec!["--checkpoint", &pts, "--points", &pts, "--operator", "laplacian"],
            "not a safetensors file",
        ),
        (
            vec!["--checkpoint", &ck, "--points", &wd, "--operator", "laplacian"],
            "coordinates",
        ),
        (
            vec!["--checkpoint", &ck, "--points", &gb, "--operator", "laplacian"],
            "garbage.npy",
        ),
        (
            vec![
                "--checkpoint",
                &ck,
                "--points",
                &pts,
                "--operator",
                "diag4",
                "--estimator",
                "dense",
            ],
            "dense STDE cannot",
        ),
    ];
    for (args, needle) in cases {
        let mut full = vec!["apply"];
        full.extend(args.iter());
        let (code, _, err) = stde(&full);
        assert_eq!(code, 2, "{full:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{full:?}: {err}");
        assert!(err.contains(needle), "{full:?}: '{err}' lacks '{needle}'");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = stde(&["plan", "--operator", "laplacian"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = stde(&["plan", "--operator", "d[0,0,1]"]);
    assert_eq!(code, 0);
    assert!(out.contains("7-jet, v2 = e0, v3 = e1"), "{out}");
}

#[test]
fn train_bad_input_exits_2_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let out = path(&tmp.path().join("run"));
    let bad_cfg = tmp.path().join("bad.toml");
    std::fs::write(&bad_cfg, "dimm = 3\n").unwrap();
    let bc = path(&bad_cfg);
    let missing = path(&tmp.path().join("nope.toml"));
    let base = [
        "train",
        "--quiet",
        "--out",
        &out,
        "--test-points",
        "10",
        "--batch",
        "4",
        "--width",
        "8",
    ];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--equation", "heat-two-body"], "unknown equation"),
        (vec!["--method", "magic"], "unknown method"),
        (vec!["--clip-grad-norm=-1"], "--clip-grad-norm"),
        (vec!["--dim", "1"], "too small"),
        (
            vec!["--dim", "10", "--rand-batch", "4", "--block-size", "3"],
            "does not divide",
        ),
        (vec!["--dim", "10", "--rand-batch", "11"], "exceeds"),
        (vec!["--dim", "10", "--rand-batch", "4", "--steps", "0"], "--steps"),
        (vec!["--config", &bc], "unknown field"),
        (vec!["--config", &missing], "nope.toml"),
        (vec!["--dim", "2000000000"], "GiB"),
        (
            vec!["--dim", "10", "--rand-batch", "4", "--steps", "5", "--lr", "1e30"],
            "loss became",
        ),
        (vec!["--resume", &missing], "cannot change it"),
        (
            vec![
                "--equation",
                "allen-cahn-three-body",
                "--dim",
                "10",
                "--rand-batch",
                "4",
                "--gpinn-weight",
                "0.1",
            ],
            "source gradient",
        ),
        (
            vec![
                "--dim",
                "10",
                "--rand-batch",
                "4",
                "--gpinn-weight",
                "0.1",
                "--method",
                "dense",
            ],
            "needs --method sparse",
        ),
        (
            vec!["--dim", "10", "--rand-batch", "4", "--gpinn-weight=-1"],
            "non-negative",
        ),
        (
            vec![
                "--dim",
                "10",
                "--rand-batch",
                "4",
                "--gpinn-weight",
                "0.1",
                "--unbiased",
            ],
            "cannot be combined",
        ),
        (
            vec!["--dim", "10", "--rand-batch", "4", "--horizon", "1"],
            "parabolic equations only",
        ),
        (
            vec!["--equation", "semilinear-heat", "--dim", "10", "--block-size", "2"],
            "elliptic problems only",
        ),
        (
            vec!["--equation", "semilinear-heat", "--dim", "10", "--horizon", "0"],
            "--horizon",
        ),
        (
            vec!["--equation", "semilinear-heat", "--dim", "10", "--terminal-batch", "0"],
            "--terminal-batch",
        ),
        // flags the problem would not use: refused, whatever their value
        (vec!["--equation", "kdv-2d", "--method", "sparse"], "nothing to sample"),
        (vec!["--equation", "kdv-2d", "--rand-batch", "1"], "--rand-batch"),
        (
            vec!["--dim", "10", "--method", "exact", "--rand-batch", "4"],
            "draws none",
        ),
        (
            vec![
                "--equation",
                "black-scholes-barenblatt",
                "--dim",
                "100",
                "--method",
                "dense",
            ],
            "one coordinate at a time",
        ),
        (
            vec!["--equation", "semilinear-heat", "--dim", "10", "--volume-uniform"],
            "radial law",
        ),
        (
            vec!["--equation", "poisson-cube", "--dim", "10", "--volume-uniform"],
            "radial law",
        ),
        (vec!["--dim", "10", "--horizon", "0.3"], "--horizon applies"),
        (
            vec!["--dim", "10", "--terminal-weight", "20"],
            "--terminal-weight applies",
        ),
        (
            vec!["--equation", "hjb-lin", "--dim", "10", "--boundary-batch", "100"],
            "boundary",
        ),
    ];
    for (extra, needle) in cases {
        let mut args: Vec<&str> = base.to_vec();
        args.extend(extra.iter());
        let (code, _, err) = stde(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: '{err}' lacks '{needle}'");
    }
}

/// The parabolic and gPINN problems train from the command line: `summary.json` reports the point
/// error against the reference value (and says when there is none), and a gPINN run works.
#[test]
fn parabolic_and_gpinn_runs_report_their_scores() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, extra: &[&str]| {
        let out = path(&tmp.path().join(name));
        let mut args = vec![
            "train",
            "--quiet",
            "--out",
            &out,
            "--width",
            "16",
            "--steps",
            "12",
            "--eval-every",
            "6",
        ];
        args.extend(extra);
        let (code, stdout, err) = stde(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(name).join("summary.json")).unwrap())
                .unwrap();
        (stdout, summary)
    };
    let (out, s) = run("heat10", &["--equation", "semilinear-heat", "--dim", "10"]);
    assert_eq!(s["reference_value"].as_f64(), Some(0.47006));
    assert_eq!(s["rand_batch"].as_u64(), Some(10), "parabolic default R");
    let value = s["final_value"].as_f64().unwrap();
    let rel = s["final_rel_l1"].as_f64().unwrap();
    assert!((rel - (value - 0.47006).abs() / 0.47006).abs() < 1e-12, "{s}");
    assert!(s["best_rel_l1"].as_f64().unwrap() <= rel);
    assert!(out.contains("reference 0.47006"), "{out}");
    let (out, s) = run(
        "ac7",
        &["--equation", "allen-cahn-parabolic", "--dim", "7", "--rand-batch", "5"],
    );
    assert!(
        s["reference_value"].is_null() && s["final_value"].as_f64().is_some(),
        "{s}"
    );
    assert!(out.contains("no reference value"), "{out}");
    // compat C7: the batch-wide terminal target trains another function, and is recorded
    let (_, c7) = run(
        "ac7-c7",
        &[
            "--equation",
            "allen-cahn-parabolic",
            "--dim",
            "7",
            "--rand-batch",
            "5",
            "--compat-batch-max-target",
        ],
    );
    assert_ne!(c7["final_value"], s["final_value"], "{c7} vs {s}");
    let toml = std::fs::read_to_string(tmp.path().join("ac7-c7").join("config.toml")).unwrap();
    assert!(toml.contains("compat_batch_max_target = true"), "{toml}");
    let (code, _, err) = stde(&[
        "train",
        "--equation",
        "semilinear-heat",
        "--dim",
        "10",
        "--compat-batch-max-target",
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--compat-batch-max-target") && err.contains("semilinear-heat"),
        "{err}"
    );
    let (_, s) = run(
        "gpinn",
        &[
            "--dim",
            "20",
            "--rand-batch",
            "4",
            "--gpinn-weight",
            "0.1",
            "--test-points",
            "50",
        ],
    );
    assert!(s["best_rel_l2"].as_f64().unwrap().is_finite(), "{s}");
    // the other gPINN forms train; a form without a gPINN term, or an unknown one, is refused
    for form in ["double-sum", "consistent"] {
        let (_, s) = run(
            &format!("gpinn-{form}"),
            &[
                "--dim",
                "20",
                "--rand-batch",
                "3",
                "--gpinn-weight",
                "0.1",
                "--gpinn-form",
                form,
                "--test-points",
                "50",
            ],
        );
        assert!(s["best_rel_l2"].as_f64().unwrap().is_finite(), "{form}: {s}");
    }
    let (code, _, err) = stde(&["train", "--dim", "20", "--gpinn-form", "zipped"]);
    assert_eq!(code, 2);
    assert!(err.contains("needs a gPINN term"), "{err}");
    let (code, _, err) = stde(&["train", "--dim", "20", "--gpinn-weight", "0.1", "--gpinn-form", "all"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown --gpinn-form 'all'"), "{err}");
}

#[test]
fn every_listed_equation_trains_a_few_steps() {
    let (code, stdout, err) = stde(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let all = all.as_array().unwrap();
    assert!(all.len() >= 16, "{} equations listed", all.len());
    let (code, text, _) = stde(&["list"]);
    assert_eq!(code, 0);
    let tmp = tempfile::tempdir().unwrap();
    for e in all {
        let name = e["name"].as_str().unwrap();
        assert!(text.contains(name), "{name} missing from the text listing");
        assert!(e["order"].as_u64().unwrap() >= 2, "{name}: {e}");
        assert!(!e["residuals"].as_array().unwrap().is_empty(), "{name}");
        // a small dimension within the equation's range, tiny network, two evaluations
        let min = e["min_dim"].as_u64().unwrap();
        let dim = e["max_dim"].as_u64().unwrap_or(min.max(4)).to_string();
        let out = path(&tmp.path().join(name));
        let rand_batch = if e["time"].as_bool().unwrap() && e["max_dim"].is_null() {
            "2"
        } else {
            "3"
        };
        let mut args = vec![
            "train",
            "--quiet",
            "--equation",
            name,
            "--dim",
            &dim,
            "--out",
            &out,
            "--width",
            "8",
            "--batch",
            "6",
            "--steps",
            "4",
            "--eval-every",
            "2",
            "--test-points",
            "20",
        ];
        // the fixed-dimension high-order problems sample nothing: --rand-batch is refused there
        if e["max_dim"].is_null() {
            args.extend(["--rand-batch", rand_batch]);
        }
        let (code, _, err) = stde(&args);
        assert_eq!(code, 0, "{name}: {err}");
        let s: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join(name).join("summary.json")).unwrap())
                .unwrap();
        let score = s["final_rel_l2"].as_f64().or(s["final_value"].as_f64());
        assert!(score.is_some_and(f64::is_finite), "{name}: {s}");
    }
}

#[test]
fn high_order_problems_refuse_other_dimensions_and_sampled_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let out = path(&tmp.path().join("run"));
    for (args, needle) in [
        (vec!["--equation", "kdv-2d", "--dim", "3"], "d = 2 only"),
        (vec!["--equation", "gkdv-1d", "--unbiased"], "--unbiased"),
        (vec!["--equation", "kp-2d", "--gpinn-weight", "0.1"], "gpinn"),
        (vec!["--equation", "kp-2d", "--horizon", "0.5"], "parabolic"),
        (vec!["--equation", "kp-2d", "--block-size", "2"], "block-size"),
    ] {
        let mut all = vec!["train", "--quiet", "--out", &out, "--steps", "2"];
        all.extend(args.iter().copied());
        let (code, _, err) = stde(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: {err}");
    }
}

#[test]
fn a_pde_file_trains_resumes_and_reports_bad_formulas() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("heat.toml");
    // u_t − Δu = f on the unit disc × [0, 1) with u* = e^{−t}(sin x + cos y); f derived by the engine
    std::fs::write(
        &file,
        r#"
name = "my-heat"
dim = 2
domain = "ball-time"
ansatz = "initial"
initial = "sin(x) + cos(y)"
exact = "exp(-t)*(sin(x) + cos(y))"

[[residual]]
operator = "d[2] - laplacian"

[boundary]
points = 8
"#,
    )
    .unwrap();
    let out = tmp.path().join("run");
    let (f, o) = (path(&file), path(&out));
    let args = |steps: &'static str| {
        vec![
            "train",
            "--quiet",
            "--pde",
            &f,
            "--out",
            &o,
            "--width",
            "8",
            "--batch",
            "6",
            "--steps",
            steps,
            "--eval-every",
            "3",
            "--test-points",
            "30",
        ]
    };
    let (code, stdout, err) = stde(&args("6"));
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("my-heat"), "{stdout}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(config.contains("[pde]") && config.contains("exp(-t)"), "{config}");
    assert!(config.contains("method = \"exact\""), "{config}");
    // the run folder is self-contained: resume after the file is gone
    std::fs::remove_file(&file).unwrap();
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &o]);
    assert_eq!(code, 0, "{err}");
    // malformed files: one line, exit 2, the field and the position named
    for (text, needle) in [
        (
            "domain = \"ball\"\n[[residual]]\noperator = \"laplacian\"\nnonlinear = \"u*(2\"\n",
            "position 4: expected ')'",
        ),
        (
            "domain = \"ball\"\n[[residual]]\noperator = \"laplacian\"\nnonlinear = \"v\"\n",
            "unknown name 'v'",
        ),
        ("domain = \"ball\"\n", "residual"),
        ("domain = ball\n", "invalid PDE file"),
    ] {
        std::fs::write(&file, text).unwrap();
        let out2 = path(&tmp.path().join("bad"));
        let all = ["train", "--quiet", "--pde", &f, "--out", &out2, "--steps", "2"];
        let (code, _, err) = stde(&all);
        assert_eq!(code, 2, "{text}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{text}: {err}");
    }
    let (code, _, err) = stde(&["train", "--pde", &f, "--equation", "kdv-2d"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be combined"), "{err}");
}

/// A high-order checkpoint holds `N` with `u = φ + t·N` (`φ = sin πx`, recorded as a formula):
/// `apply` reports `u` and `u_x`, checked against the bare network through `u_x = π cos πx + t·N_x`.
#[test]
fn apply_evaluates_the_initial_value_ansatz() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let pde = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pde/burgers-viscous.toml");
    let (code, _, err) = stde(&[
        "train",
        "--quiet",
        "--pde",
        &path(&pde),
        "--out",
        &path(&run),
        "--width",
        "8",
        "--steps",
        "3",
        "--test-points",
        "10",
    ]);
    assert_eq!(code, 0, "{err}");
    let pts = tmp.path().join("pts.csv");
    std::fs::write(&pts, "0.3,0.2\n-0.6,0.9\n0.1,0.5\n").unwrap();
    let ck = path(&run.join("checkpoint.safetensors"));
    let p = path(&pts);
    let with = apply_csv(&["--checkpoint", &ck, "--points", &p, "--operator", "d[0]"]);
    let bare = apply_csv(&["--checkpoint", &ck, "--points", &p, "--operator", "d[0]", "--no-ansatz"]);
    let pi = std::f64::consts::PI;
    for ((&(u, ux), &(n, nx)), (x, t)) in with.iter().zip(&bare).zip([(0.3, 0.2), (-0.6, 0.9), (0.1, 0.5)]) {
        let (want_u, want_ux) = ((pi * x).sin() + t * n, pi * (pi * x).cos() + t * nx);
        assert!(
            (u - want_u).abs() < 1e-9 && (ux - want_ux).abs() < 1e-9,
            "{u} {ux} vs {want_u} {want_ux}"
        );
    }
    // the time by name, as in PDE files: d[t] is d[1] here, u_t = sin(πx)·0 + N + t·N_t
    let by_name = apply_csv(&["--checkpoint", &ck, "--points", &p, "--operator", "d[t] + d[0,t]"]);
    let by_index = apply_csv(&["--checkpoint", &ck, "--points", &p, "--operator", "d[1] + d[0,1]"]);
    assert_eq!(by_name, by_index);
    // a checkpoint without a time input refuses it
    let elliptic = tmp.path().join("elliptic");
    let (code, _, err) = stde(&[
        "train",
        "--quiet",
        "--dim",
        "2",
        "--rand-batch",
        "2",
        "--width",
        "8",
        "--steps",
        "2",
        "--test-points",
        "10",
        "--out",
        &path(&elliptic),
    ]);
    assert_eq!(code, 0, "{err}");
    let eck = path(&elliptic.join("checkpoint.safetensors"));
    let (code, _, err) = stde(&["apply", "--checkpoint", &eck, "--points", &p, "--operator", "d[t]"]);
    assert_eq!(code, 2);
    assert!(err.contains("records no time input"), "{err}");
}

/// Run folders: a fresh run refuses a folder holding another run (or starts clean with
/// --overwrite); --resume refuses flags that would change the run, takes more --steps.
#[test]
fn run_folders_are_never_mixed_and_resume_flags_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let out = path(&tmp.path().join("run"));
    let base = [
        "train",
        "--quiet",
        "--out",
        &out,
        "--dim",
        "6",
        "--rand-batch",
        "3",
        "--width",
        "8",
        "--batch",
        "4",
        "--test-points",
        "10",
        "--eval-every",
        "2",
        "--threads",
        "1",
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend(extra);
        stde(&a)
    };
    assert_eq!(with(&["--steps", "4"]).0, 0);
    let (code, _, err) = with(&["--steps", "4"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("already holds a run") && err.contains("--overwrite"),
        "{err}"
    );
    let (code, _, err) = with(&["--steps", "2", "--overwrite"]);
    assert_eq!(code, 0, "{err}");
    let lines = |p: &str| {
        std::fs::read_to_string(std::path::Path::new(p).join("metrics.csv"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines(&out), 3, "a clean start, not appended to the old run");
    // resume: other flags refused, more steps taken and recorded
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &out, "--lr", "0.1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--lr") && err.contains("cannot change"), "{err}");
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &out, "--steps", "6"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(lines(&out), 7);
    let config = std::fs::read_to_string(tmp.path().join("run/config.toml")).unwrap();
    assert!(config.contains("steps = 6"), "{config}");
    // the extension continues at the rate the decay reached, it does not restart the decay
    assert!(config.contains("decay_steps = 2"), "{config}");
    let metrics = std::fs::read_to_string(tmp.path().join("run/metrics.csv")).unwrap();
    let lrs: Vec<f64> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(lrs.len(), 6);
    assert!(lrs[1] < lrs[0], "a decaying schedule: {lrs:?}");
    assert!(lrs[2..].iter().all(|&v| v == lrs[1]), "{lrs:?}");
    // resuming the finished run changes nothing: its summary keeps the totals of the session
    // that finished it
    let summary = std::fs::read(tmp.path().join("run/summary.json")).unwrap();
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &out]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(tmp.path().join("run/summary.json")).unwrap(), summary);
    assert_eq!(lines(&out), 7);
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &out, "--steps", "3"]);
    assert_eq!(code, 2);
    assert!(err.contains("past --steps 3"), "{err}");
    // a missing run is named before anything says a run started
    let (code, stdout, err) = stde(&["train", "--resume", &path(&tmp.path().join("nope"))]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot resume"), "{err}");
    assert!(!err.contains("training") && stdout.is_empty(), "{stdout}{err}");
}

/// A run killed with SIGKILL at a random moment and then resumed ends with the same metrics and
/// parameters as an uninterrupted run (one thread: the arithmetic order is fixed).
#[test]
fn a_run_killed_at_random_moments_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |out: &str| -> Vec<String> {
        [
            "train",
            "--quiet",
            "--out",
            out,
            "--dim",
            "8",
            "--rand-batch",
            "4",
            "--width",
            "16",
            "--batch",
            "16",
            "--steps",
            "3000",
            "--eval-every",
            "25",
            "--test-points",
            "50",
            "--threads",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let reference = path(&tmp.path().join("reference"));
    let a: Vec<String> = args(&reference);
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    assert_eq!(stde(&a).0, 0);
    let strip = |dir: &str| -> Vec<String> {
        // step, loss, lr, errors and gradient norm; not the wall-clock column
        std::fs::read_to_string(std::path::Path::new(dir).join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{},{},{},{},{}", f[0], f[1], f[2], f[3], f[4], f[6])
            })
            .collect()
    };
    let params = |dir: &str| {
        stde::nn::checkpoint::load::<f32>(&std::path::Path::new(dir).join("checkpoint.safetensors"))
            .unwrap()
            .net
            .params()
            .to_vec()
    };
    let killed = path(&tmp.path().join("killed"));
    let mut seed = 0x9E37_79B9u64;
    let mut kills = 0;
    for round in 0..3 {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_stde"));
        if round == 0 {
            cmd.args(args(&killed));
        } else {
            cmd.args(["train", "--quiet", "--resume", &killed]);
        }
        let mut child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
        // wait until a checkpoint exists, then a pseudo-random 0–150 ms more, then SIGKILL
        let ck = std::path::Path::new(&killed).join("checkpoint.safetensors");
        let start = std::time::Instant::now();
        while !ck.exists() && start.elapsed().as_secs() < 60 {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        std::thread::sleep(std::time::Duration::from_millis((seed >> 33) % 300));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            kills += 1;
        }
        child.wait().unwrap();
    }
    let (code, _, err) = stde(&["train", "--quiet", "--resume", &killed]);
    assert_eq!(code, 0, "{err}");
    assert!(kills >= 1, "no run was killed: the test did not test anything");
    println!("{kills} kills");
    assert_eq!(strip(&killed), strip(&reference));
    assert_eq!(params(&killed), params(&reference));
}

/// Resource guards: `plan` and `apply` refuse work that cannot fit, with the figure, before
/// starting (an exact biharmonic at large d, a 30-coordinate mixed partial, an exact Laplacian
/// whose jets for one point exceed the memory).
#[test]
fn plan_and_apply_refuse_work_that_cannot_fit() {
    let idx: Vec<String> = (0..30).map(|i| i.to_string()).collect();
    let big_partial = format!("d[{}]", idx.join(","));
    for (op, dim, needle) in [
        ("biharmonic", "100000", "terms (limit"),
        (big_partial.as_str(), "30", "2^29 jets"),
    ] {
        let (code, _, err) = stde(&["plan", "--operator", op, "--dim", dim]);
        assert_eq!(code, 2, "{op}: {err}");
        assert!(err.contains(needle), "{op}: {err}");
    }
    // a wide input and a tiny network: the exact Laplacian's 200 000 jets per point do not fit
    let d = 200_000;
    let arch = stde::nn::Architecture {
        input_dim: d,
        hidden: vec![2],
        output_dim: 1,
        activation: stde::nn::Activation::Tanh,
        block_size: None,
    };
    let net = stde::nn::Mlp::<f32>::new(arch, 0).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ck = tmp.path().join("wide.safetensors");
    stde::nn::checkpoint::save(&ck, &net, &Default::default(), &Default::default()).unwrap();
    let pts = tmp.path().join("x.npy");
    std::fs::write(&pts, stde::io::npy::encode(1, d, &vec![0.0; d])).unwrap();
    let (code, _, err) = stde(&[
        "apply",
        "--checkpoint",
        &path(&ck),
        "--points",
        &path(&pts),
        "--operator",
        "laplacian",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GiB") && err.contains("--estimator sparse"), "{err}");
    // the sampled estimate of the same operator runs
    let (code, _, err) = stde(&[
        "apply",
        "--checkpoint",
        &path(&ck),
        "--points",
        &path(&pts),
        "--operator",
        "laplacian",
        "--estimator",
        "sparse",
        "--rand-batch",
        "8",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// A `[pde]` table in a config file trains like `--pde` (low-dimensional: exact operators).
#[test]
fn a_pde_table_in_a_config_file_trains() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("run.toml");
    std::fs::write(
        &cfg,
        "steps = 4\nwidth = 8\neval_every = 2\ntest_points = 20\nthreads = 1\n[pde]\nname = \"cube-quadratic\"\n\
         dim = 3\ndomain = \"cube\"\nexact = \"sum(i, 0, d-1, x[i]^2)\"\n[[pde.residual]]\noperator = \"laplacian\"\n\
         [pde.boundary]\npoints = 10\n",
    )
    .unwrap();
    let out = tmp.path().join("run");
    let (code, stdout, err) = stde(&["train", "--quiet", "--config", &path(&cfg), "--out", &path(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("cube-quadratic"), "{stdout}");
    let config = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        config.contains("method = \"exact\"") && config.contains("dim = 3"),
        "{config}"
    );
}

/// `stde train --quiet | head -1`: a closed standard output does not end the run.
#[test]
fn a_closed_stdout_does_not_end_a_run() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_stde"))
        .args([
            "train",
            "--quiet",
            "--dim",
            "6",
            "--rand-batch",
            "3",
            "--width",
            "8",
            "--batch",
            "4",
            "--steps",
            "300",
            "--eval-every",
            "1",
            "--test-points",
            "10",
            "--threads",
            "1",
            "--out",
        ])
        .arg(&out)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("step"), "{first}");
    // the reader is dropped here: later writes hit a closed pipe
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(s["steps"].as_u64(), Some(300));
}

/// `stde bench step` times whole training steps of any equation; `--json` for scripts.
#[test]
fn bench_step_times_any_equation() {
    for eq in ["allen-cahn-two-body", "kp-2d", "semilinear-heat"] {
        let (code, out, err) = stde(&[
            "bench",
            "step",
            "--equation",
            eq,
            "--dim",
            if eq == "kp-2d" { "2" } else { "8" },
            "--width",
            "16",
            "--steps",
            "5",
            "--warmup",
            "2",
            "--threads",
            "1",
            "--json",
        ]);
        assert_eq!(code, 0, "{eq}: {err}");
        let r: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(r["steps"].as_u64(), Some(5), "{r}");
        assert!(
            r["steps_per_s"].as_f64().is_some_and(|v| v.is_finite() && v > 0.0),
            "{r}"
        );
        let shares: f64 = r["phase_shares"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .sum();
        assert!((shares - 1.0).abs() < 1e-9, "{r}");
        let w = &r["work"];
        assert!(w["gemm_flops"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        let b = &r["bound"];
        let [product, memory, transcendental, source_arith] =
            ["product_s", "memory_s", "transcendental_s", "source_arith_s"].map(|k| b[k].as_f64().unwrap());
        // compute (products, the sources' arithmetic and transcendentals on the same units) or
        // memory (a sum read back from JSON may differ in its last bit: serde_json's default
        // parser is not exact)
        let bound = b["bound_s"].as_f64().unwrap();
        let want = (product + source_arith + transcendental).max(memory);
        assert!((bound - want).abs() <= 1e-12 * want, "{r}");
        let largest = (product + source_arith).max(memory).max(transcendental);
        assert!(
            (b["overlap_all_s"].as_f64().unwrap() - largest).abs() <= 1e-12 * largest,
            "{r}"
        );
        assert!(b["fraction"].as_f64().is_some_and(|v| v > 0.0), "{r}");
        // the products by shape account for every counted FLOP, the longest first
        let shapes = r["product_shapes"].as_array().unwrap();
        let field = |s: &serde_json::Value, k: &str| s[k].as_f64().unwrap();
        let by_shape: f64 = shapes
            .iter()
            .map(|s| 2.0 * field(s, "m") * field(s, "n") * field(s, "k") * field(s, "calls"))
            .sum();
        let counted = w["gemm_flops"].as_f64().unwrap();
        assert!(
            (by_shape - counted).abs() <= 1e-9 * counted,
            "{by_shape} vs {counted}: {r}"
        );
        assert!(
            shapes
                .windows(2)
                .all(|p| field(&p[0], "seconds") >= field(&p[1], "seconds")),
            "{r}"
        );
        if eq == "allen-cahn-two-body" {
            // counted by hand: 100 points of d = 8 Gaussian coordinates; the two-body source
            // takes sine and cosine of the 8 coordinates and of the 7 terms' arguments
            // z_i = x_i + cos x_{i+1} + x_{i+1} cos x_i: 100 · 15 pairs, counted as general, as
            // small-argument pairs (a point whose coordinates all lie within 0.125) or near 1
            // (the z of such a point's full sixteen-term blocks: none at d = 8)
            assert_eq!(w["normals"].as_f64(), Some(800.0), "{r}");
            let pairs = w["sin_cos"].as_f64().unwrap()
                + w["sin_cos_small"].as_f64().unwrap()
                + w["sin_cos_near_one"].as_f64().unwrap();
            assert!((pairs - 1500.0).abs() < 1e-9, "{r}");
            // and 23 FLOP of arithmetic for each of the 100 · 7 terms
            assert_eq!(w["source_flops"].as_f64(), Some(16100.0), "{r}");
        } else {
            // no two-body ball source (KP, the semilinear heat equation): none counted
            assert_eq!(w["source_flops"].as_f64(), Some(0.0), "{r}");
        }
    }
    let (code, _, err) = stde(&["bench", "step", "--equation", "nope"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown equation"), "{err}");
}

/// The memory guard counts a formula residual's jets by their routes: a family of second-order
/// partials that no route but one jet each can serve (not affine) at d = 2·10⁵ is refused with
/// the figure instead of being allocated; the gradient terms of `hjb-lin` at that d are not.
#[test]
fn train_refuses_formula_residuals_that_cannot_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let out = path(&tmp.path().join("run"));
    let pde = tmp.path().join("squares.toml");
    std::fs::write(
        &pde,
        "domain = \"ball\"\n[[residual]]\noperator = \"laplacian\"\nnonlinear = \"sum(i, 0, d-1, d[i,i]^2)\"\nsource = \"1\"\n",
    )
    .unwrap();
    let (code, _, err) = stde(&[
        "train",
        "--quiet",
        "--pde",
        &path(&pde),
        "--dim",
        "200000",
        "--steps",
        "2",
        "--out",
        &out,
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("GiB"), "{err}");
    let (code, _, err) = stde(&[
        "train",
        "--quiet",
        "--equation",
        "hjb-lin",
        "--dim",
        "200000",
        "--width",
        "16",
        "--batch",
        "4",
        "--test-points",
        "10",
        "--steps",
        "2",
        "--out",
        &out,
        "--overwrite",
    ]);
    assert_eq!(code, 0, "{err}");
}

/// A build without the `mpi` feature started as one of several MPI ranks (as `mpirun -n 2`
/// would: the launcher's environment) refuses, instead of running the whole job twice into the
/// same folder.
#[cfg(not(feature = "mpi"))]
#[test]
fn several_ranks_without_mpi_support_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stde"))
        .args(["train", "--dim", "4", "--steps", "2", "--quiet", "--out"])
        .arg(dir.path().join("run"))
        .env("OMPI_COMM_WORLD_SIZE", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("built without MPI") && err.contains("--features mpi"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!dir.path().join("run").exists(), "nothing written");
}

/// Sizes at the edge of `usize` are refused with a figure, never an overflow, an allocation
/// failure or a thread storm (`--steps` that large is fine: the run is stopped by Ctrl-C).
#[test]
fn absurd_sizes_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = path(&dir.path().join("run"));
    let max = usize::MAX.to_string();
    for (flag, value, says) in [
        ("--dim", max.as_str(), "GiB"),
        ("--test-points", max.as_str(), "GiB"),
        ("--width", "100000000", "GiB"),
        ("--batch", "1000000000", "GiB"),
        ("--threads", "100000", "--threads 100000"),
    ] {
        let (code, _, err) = stde(&["train", flag, value, "--steps", "1", "--quiet", "--out", &out]);
        assert_eq!(code, 2, "{flag} {value}: {err}");
        assert!(err.contains(says), "{flag} {value}: {err}");
        assert_eq!(err.lines().count(), 1, "{flag} {value}: {err}");
    }
}

/// The first Ctrl-C asks the run to save and stop after the current step; a second one ends the
/// process at once (exit 130), e.g. during a long evaluation, leaving the last checkpoint.
#[test]
fn a_second_ctrl_c_ends_the_process_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // a first evaluation at step 10 over 10⁷ test points takes seconds
    let mut child = Command::new(env!("CARGO_BIN_EXE_stde"))
        .args(["train", "--dim", "4", "--steps", "1000", "--eval-every", "10"])
        .args(["--test-points", "10000000", "--threads", "1", "--quiet", "--out"])
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = std::time::Instant::now();
    // wait until steps 1–9 are logged (the process is then in step 10's evaluation), then
    // interrupt twice
    while std::fs::read_to_string(out.join("metrics.csv")).map_or(true, |m| m.lines().count() < 10) {
        assert!(t.elapsed().as_secs() < 60, "the run did not start");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let pid = child.id().to_string();
    for _ in 0..2 {
        Command::new("kill").args(["-INT", &pid]).status().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status:?}");
    assert!(t.elapsed().as_secs() < 60);
}

/// A batch cut into slices (120 points: three slices of 40) trains to the same bits on one and on
/// two threads: the cut depends on the batch alone and the slices are added in order.
#[test]
fn sliced_steps_give_the_same_run_on_one_and_two_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |threads: &str| {
        let out = path(&tmp.path().join(format!("t{threads}")));
        let args = [
            "train",
            "--quiet",
            "--out",
            &out,
            "--dim",
            "20",
            "--batch",
            "120",
            "--width",
            "16",
            "--steps",
            "12",
            "--eval-every",
            "4",
            "--test-points",
            "50",
            "--threads",
            threads,
        ];
        let (code, _, err) = stde(&args);
        assert_eq!(code, 0, "{err}");
        // every column but the wall clock
        std::fs::read_to_string(std::path::Path::new(&out).join("metrics.csv"))
            .unwrap()
            .lines()
            .map(|l| {
                l.split(',')
                    .enumerate()
                    .filter(|(i, _)| *i != 5)
                    .map(|(_, f)| f.to_string())
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let (one, two) = (run("1"), run("2"));
    assert_eq!(one.len(), 13);
    assert_eq!(one, two);
}

/// Errors from the argument parser are one line too (`error: …`, clap's listed items and tips
/// kept, its usage block dropped), negative numbers are values that reach their checks (not
/// unknown flags), an operator may begin with a minus, and `--help` / `--version` still print
/// to standard output with status 0.
#[test]
fn flag_errors_are_one_line_and_negative_values_are_values() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["train", "--lrr", "1"], "a similar argument exists: '--lr'"),
        (vec!["train", "--dim", "abc"], "invalid value 'abc'"),
        (vec!["trian"], "a similar subcommand exists: 'train'"),
        (vec!["train", "--method"], "a value is required for '--method"),
        (vec!["plot"], "not provided: <RUN>"),
        (
            vec!["apply", "--operator", "laplacian"],
            "not provided: --checkpoint <CHECKPOINT>, --points <POINTS>",
        ),
        (vec!["train", "--lr", "-1"], "--lr -1 must be a positive number"),
        (vec!["train", "--clip-grad-norm", "-1"], "--clip-grad-norm -1 must be"),
        (vec!["train", "--gpinn-weight", "-0.5"], "--gpinn-weight -0.5 must be"),
        (vec!["bench", "step", "--dim", "-5"], "invalid value '-5' for '--dim"),
    ];
    for (args, needle) in cases {
        let (code, _, err) = stde(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: '{err}' lacks '{needle}'");
    }
    // a leading minus belongs to the operator: −Δ has the Laplacian's jets, negated read-out
    let (code, out, err) = stde(&["plan", "--operator", "-laplacian", "--dim", "3"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("operator -laplacian in dimension 3"), "{out}");
    let (_, plain, _) = stde(&["plan", "--operator", "laplacian", "--dim", "3"]);
    let jets = |s: &str| {
        s.lines()
            .filter(|l| l.contains("jet #"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(jets(&out), jets(&plain));
    assert_ne!(
        out.replace("-laplacian", "laplacian"),
        plain,
        "the read-out weights must differ in sign"
    );
    for args in [vec!["--version"], vec!["train", "--help"], vec!["help"]] {
        let (code, out, err) = stde(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!out.trim().is_empty() && err.is_empty(), "{args:?}: {out} / {err}");
    }
}

/// Random combinations of `train` flags, good and bad values, over every listed equation
/// (a fixed seed; small sizes and one to three steps): each run exits 0, or 2 with one line
/// `error: …`; none panics.
#[test]
fn random_train_flags_end_in_a_result_or_one_line() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let (code, stdout, err) = stde(&["list", "--json"]);
    assert_eq!(code, 0, "{err}");
    let all: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let names: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    let options: [(&str, &[&str]); 20] = [
        ("--dim", &["1", "2", "3", "5", "0", "7"]),
        ("--method", &["sparse", "dense", "exact", "bogus"]),
        ("--rand-batch", &["1", "2", "0", "5", "100"]),
        ("--batch", &["1", "2", "0", "3"]),
        ("--width", &["1", "2", "8"]),
        ("--depth", &["1", "2", "0", "3"]),
        ("--block-size", &["1", "2", "3", "0"]),
        ("--lr", &["0", "-1", "nan", "1e-3"]),
        ("--schedule", &["cosine", "exponential", "x"]),
        ("--eval-every", &["1", "0"]),
        ("--test-points", &["1", "0", "3"]),
        ("--threads", &["1", "3", "0"]),
        ("--gpinn-weight", &["0.1", "-1", "nan"]),
        ("--horizon", &["0", "1", "-1"]),
        ("--terminal-batch", &["0", "1", "2"]),
        ("--clip-grad-norm", &["0", "1", "-1", "inf"]),
        ("--boundary-batch", &["0", "1", "3"]),
        ("--boundary-weight", &["1", "-1"]),
        ("--gpinn-form", &["x", "full", "sum"]),
        ("--parabolic-sampler", &["x", "brownian", "uniform"]),
    ];
    let switches = ["--unbiased", "--per-direction", "--volume-uniform", "--f64"];
    let tmp = tempfile::tempdir().unwrap();
    let out = path(&tmp.path().join("run"));
    let mut rng = StdRng::seed_from_u64(13);
    let (mut ran, mut refused) = (0, 0);
    for _ in 0..64 {
        let steps = rng.random_range(1..=3usize).to_string();
        let name = &names[rng.random_range(0..names.len())];
        let mut args: Vec<String> = [
            "train",
            "--quiet",
            "--overwrite",
            "--out",
            &out,
            "--equation",
            name,
            "--steps",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(steps);
        // small by default, so that a run that is accepted ends quickly
        for (flag, value) in [("--width", "8"), ("--batch", "4"), ("--test-points", "8")] {
            args.extend([flag.to_string(), value.to_string()]);
        }
        for _ in 0..rng.random_range(0..=3) {
            let (flag, values) = options[rng.random_range(0..options.len())];
            args.extend([flag.to_string(), values[rng.random_range(0..values.len())].to_string()]);
        }
        if rng.random_range(0..3) == 0 {
            args.push(switches[rng.random_range(0..switches.len())].to_string());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, _, err) = stde(&refs);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        match code {
            0 => ran += 1,
            2 => {
                refused += 1;
                assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
                assert!(err.starts_with("error: "), "{args:?}: {err}");
            }
            _ => panic!("{args:?}: exit {code}: {err}"),
        }
    }
    eprintln!("{ran} runs, {refused} refusals");
    // both outcomes occur, so the test exercises runs as well as refusals
    assert!(ran > 0 && refused > 0, "ran {ran}, refused {refused}");
}
