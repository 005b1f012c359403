//! PDEs from formulas: sources derived by the engine equal closed forms; the files' errors name
//! the field, the position and the problem.

use stde::pde::SamplerKind;
use stde::pde::custom::PdeSpec;
use stde::pde::{Problem, Term};
use stde::train::residual::derived_source;

fn spec(text: &str) -> PdeSpec {
    PdeSpec::from_toml(text).unwrap()
}

fn residuals(p: &Problem) -> &[stde::pde::FormulaResidual] {
    match &p.conditions[0].term {
        Term::Formula { residuals } => residuals,
        _ => panic!("formula term expected"),
    }
}

#[test]
fn derived_sources_match_closed_forms() {
    // Δu + u³ with u* = Σ sin(x_i): f = −Σ sin x_i + (Σ sin x_i)³
    let d = 5;
    let s = spec(
        r#"
domain = "ball"
exact = "sum(i, 0, d-1, sin(x[i]))"
[[residual]]
operator = "laplacian"
nonlinear = "u^3"
"#,
    );
    let p = s.problem(d, 4, SamplerKind::RadiusUniform).unwrap();
    let res = &residuals(&p)[0];
    let pts: Vec<f64> = (0..4 * d).map(|i| 0.1 * (i as f64).sin()).collect();
    let f = derived_source(res, res.derived_source.as_ref().unwrap(), d, &pts).unwrap();
    for (k, x) in pts.chunks(d).enumerate() {
        let s: f64 = x.iter().map(|v| v.sin()).sum();
        let want = -s + s * s * s;
        assert!((f[k] - want).abs() < 1e-12, "{} vs {want}", f[k]);
    }
    // time, mixed partials and a nonlinear term in them: u* = e^{−t} x y on (x, y, t),
    // L = ∂_t + ∂_x∂_y, N = u_x·u_y: f = −e^{−t}xy + e^{−t} + e^{−2t}xy
    let s = spec(
        r#"
domain = "ball-time"
exact = "exp(-t)*x*y"
[[residual]]
operator = "d[2] + d[0,1]"
nonlinear = "d[0]*d[1]"
"#,
    );
    let p = s.problem(2, 4, SamplerKind::RadiusUniform).unwrap();
    let res = &residuals(&p)[0];
    let pts = [0.3, -0.4, 0.2, 0.1, 0.5, 0.9];
    let f = derived_source(res, res.derived_source.as_ref().unwrap(), 3, &pts).unwrap();
    for (k, x) in pts.chunks(3).enumerate() {
        let (a, b, t) = (x[0], x[1], x[2]);
        let e = (-t).exp();
        let want = -e * a * b + e + e * e * a * b;
        assert!((f[k] - want).abs() < 1e-12, "{} vs {want}", f[k]);
    }
}

#[test]
fn pde_file_errors_name_the_field_and_the_problem() {
    let base = |extra: &str, residual: &str| {
        format!("domain = \"ball\"\nexact = \"sum(i, 0, d-1, x[i])\"\n{extra}\n[[residual]]\n{residual}\n")
    };
    let cases = [
        (
            base("", "operator = \"laplacian\"\nnonlinear = \"u^^2\""),
            "residual[0].nonlinear: formula error at position 2",
        ),
        (base("", "operator = \"lapl\""), "residual[0].operator"),
        (base("", "operator = \"d[7]\""), "out of range"),
        (
            base("", "operator = \"laplacian\"\nsource = \"u\""),
            "residual[0].source",
        ),
        (base("", "operator = \"laplacian\"\nweight = -1"), "weight"),
        (base("ansatz = \"initial\"", "operator = \"laplacian\""), "ball-time"),
        (base("ansatz = \"square\"", "operator = \"laplacian\""), "unknown"),
        (base("[boundary]\npoints = 0", "operator = \"laplacian\""), "boundary"),
        (
            "domain = \"torus\"\n[[residual]]\noperator = \"laplacian\"\n".to_string(),
            "domain 'torus'",
        ),
        ("domain = \"ball\"\nresidual = []\n".to_string(), "no [[residual]]"),
        (
            "domain = \"ball-time\"\nansatz = \"initial\"\ninitial = \"t*x\"\n[[residual]]\noperator = \"d[3]\"\n"
                .to_string(),
            "must not depend on t",
        ),
        (
            "domain = \"ball\"\nexact = \"x[i]\"\n[[residual]]\noperator = \"laplacian\"\n".to_string(),
            "exact: formula error at position 2",
        ),
        (base("ansatz = \"terminal\"", "operator = \"laplacian\""), "needs a time domain"),
        (
            "domain = \"gaussian-time\"\nansatz = \"terminal\"\n[[residual]]\noperator = \"d[t]\"\n".to_string(),
            "[terminal] target",
        ),
        (
            "domain = \"gaussian-time\"\nansatz = \"terminal\"\n[[residual]]\noperator = \"d[t]\"\n[terminal]\ntarget = \"t*x[0]\"\n"
                .to_string(),
            "must not depend on t",
        ),
        (
            "domain = \"gaussian-time\"\nansatz = \"terminal\"\n[[residual]]\noperator = \"d[t]\"\n[terminal]\ntarget = \"x[0]\"\nweight = 5\n"
                .to_string(),
            "hold exactly",
        ),
    ];
    for (text, needle) in cases {
        let Err(e) = spec(&text).problem(3, 4, SamplerKind::RadiusUniform) else {
            panic!("{text} was accepted")
        };
        assert!(e.contains(needle), "{text}\n=> {e}");
        assert_eq!(e.lines().count(), 1);
    }
    assert!(
        PdeSpec::from_toml("domain = \"ball\"\ncolour = 1\n")
            .unwrap_err()
            .contains("colour")
    );
}

#[test]
fn the_shipped_example_files_are_consistent() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/pde");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let s = spec(&std::fs::read_to_string(&path).unwrap());
        let d = s.dim.unwrap();
        let p = s.problem(d, 4, SamplerKind::RadiusUniform).unwrap();
        let din = p.input_dim();
        let exact = stde::formula::Formula::parse(
            s.exact.as_deref().unwrap(),
            stde::formula::Scope {
                dim: d,
                time: p.time,
                solution: false,
            },
        )
        .unwrap();
        // the exact solution satisfies every residual (given sources: against the engine's own)
        let x: Vec<f64> = (0..din).map(|i| 0.1 + 0.07 * i as f64).collect();
        for r in residuals(&p) {
            let lhs = derived_source(r, &exact, din, &x).unwrap()[0];
            let f = r
                .source
                .as_ref()
                .map_or(lhs, |f| f.eval(&mut f.workspace(0), &x, f64::NAN, &[]));
            assert!((lhs - f).abs() < 1e-10, "{}: {lhs} vs {f}", path.display());
        }
        // the offset is the exact solution at t = 0
        if let Some(phi) = &p.offset {
            let mut x0 = x.clone();
            *x0.last_mut().unwrap() = 0.0;
            let a = phi.eval(&mut phi.workspace(0), &x0, f64::NAN, &[]);
            let b = exact.eval(&mut exact.workspace(0), &x0, f64::NAN, &[]);
            assert!((a - b).abs() < 1e-12, "{}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 2);
}
