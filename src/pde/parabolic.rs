//! Semilinear parabolic problems in backward time (spec equations §7): `∂_t u + Δ_x u + F(u) = 0`
//! on `R^d × [0, T]`, `u(x, T) = g(x)`, quantity of interest `u(0, 0)`; the input is `(x, t)`, t last.

use super::Equation;

/// The three published equations (Tables 7–9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParabolicKind {
    /// `F(u) = (1 − u²)/(1 + u²)`, `g = 5/(10 + 2‖x‖²)`.
    SemilinearHeat,
    /// `F(u) = u − u³`, `g = arctan(max_i x_i)`.
    AllenCahn,
    /// `F(u) = sin u`, `g = 5/(10 + 2‖x‖²)`, solved for `w = d·u` (`F_w(w) = d·sin(w/d)`, spec §7.1).
    SineGordon,
}

/// One parabolic problem in dimension `d`.
#[derive(Clone, Debug)]
pub struct Parabolic {
    /// Which equation.
    pub kind: ParabolicKind,
    /// Spatial dimension `d`.
    pub dim: usize,
    /// Compat C7 (Allen–Cahn only): every terminal point of a batch gets the target
    /// `arctan(max_{b,i} x_{b,i})` of the whole batch, as the reference code computes it (the
    /// gradient target stays per point). Default: per point.
    pub batch_max_target: bool,
}

/// Reference values of `u(0, 0)` (multilevel Picard, spec §7.2) at d = 10, 100, 1000, 10000; for
/// Sine–Gordon the unscaled `u`.
const REFERENCE: [(ParabolicKind, [f64; 4]); 3] = [
    (ParabolicKind::SemilinearHeat, [0.47006, 0.31674, 0.28753, 0.28433]),
    (ParabolicKind::AllenCahn, [0.89060, 1.04510, 1.09100, 1.11402]),
    (ParabolicKind::SineGordon, [0.3229470, 0.0528368, 0.0055896, 0.0005621]),
];

impl Parabolic {
    /// The equation named `name` (`semilinear-heat`, `allen-cahn-parabolic`, `sine-gordon-parabolic`).
    pub fn from_name(name: &str, dim: usize) -> Option<Parabolic> {
        let kind = match name {
            "semilinear-heat" => ParabolicKind::SemilinearHeat,
            "allen-cahn-parabolic" => ParabolicKind::AllenCahn,
            "sine-gordon-parabolic" => ParabolicKind::SineGordon,
            _ => return None,
        };
        Some(Parabolic {
            kind,
            dim,
            batch_max_target: false,
        })
    }

    /// Factor between the trained quantity and `u` (`d` for the scaled Sine–Gordon form, else 1).
    pub fn scale(&self) -> f64 {
        match self.kind {
            ParabolicKind::SineGordon => self.dim as f64,
            _ => 1.0,
        }
    }

    /// The reference value of the trained quantity at `(0, 0)`, where one is published.
    pub fn reference(&self) -> Option<f64> {
        let col = [10, 100, 1000, 10_000].iter().position(|&d| d == self.dim)?;
        let row = REFERENCE.iter().find(|(k, _)| *k == self.kind)?;
        Some(row.1[col] * self.scale())
    }

    /// Terminal value `g(x)` (of the trained quantity) and `∇g(x)` into `grad` (`x` spatial).
    pub fn terminal(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        match self.kind {
            ParabolicKind::SemilinearHeat | ParabolicKind::SineGordon => {
                let s = self.scale();
                let den = 10.0 + 2.0 * x.iter().map(|v| v * v).sum::<f64>();
                let gscale = -20.0 * s / (den * den);
                grad.iter_mut().zip(x).for_each(|(g, v)| *g = gscale * v);
                5.0 * s / den
            }
            ParabolicKind::AllenCahn => {
                // arctan(max_i x_i); gradient e_{argmax}/(1 + max²) (almost everywhere)
                let (arg, &max) = x.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("d ≥ 1");
                grad.fill(0.0);
                grad[arg] = 1.0 / (1.0 + max * max);
                max.atan()
            }
        }
    }
}

impl Equation for Parabolic {
    fn name(&self) -> String {
        match self.kind {
            ParabolicKind::SemilinearHeat => "semilinear-heat",
            ParabolicKind::AllenCahn => "allen-cahn-parabolic",
            ParabolicKind::SineGordon => "sine-gordon-parabolic",
        }
        .to_string()
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn nonlinearity(&self, u: f64) -> (f64, f64, f64) {
        match self.kind {
            ParabolicKind::SemilinearHeat => {
                let q = 1.0 + u * u;
                (
                    (1.0 - u * u) / q,
                    -4.0 * u / (q * q),
                    (12.0 * u * u - 4.0) / (q * q * q),
                )
            }
            ParabolicKind::AllenCahn => (u - u * u * u, 1.0 - 3.0 * u * u, -6.0 * u),
            ParabolicKind::SineGordon => {
                let d = self.dim as f64;
                let w = u / d;
                (d * w.sin(), w.cos(), -w.sin() / d)
            }
        }
    }

    /// The equations are homogeneous: `f = 0`.
    fn source(&self, _x: &[f64]) -> f64 {
        0.0
    }

    fn source_f32(&self, _x: &[f32]) -> f64 {
        0.0
    }

    fn exact(&self, _x: &[f64]) -> Option<f64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pde::Target;

    /// Compat C7: the batch-wide target is `arctan` of the largest spatial entry of the whole
    /// batch (the time column ignored); per-point targets otherwise.
    #[test]
    fn the_batch_max_target_takes_the_whole_batch_maximum() {
        let mut p = Parabolic::from_name("allen-cahn-parabolic", 3).unwrap();
        // two points (x, t) with t = 5 larger than every x: it must not count
        let pts = [0.1, -0.4, 0.2, 5.0, 0.7, 0.3, -0.9, 5.0];
        assert!(p.batch_value(&pts, 4).is_none(), "per point by default");
        p.batch_max_target = true;
        assert_eq!(p.batch_value(&pts, 4), Some(0.7f64.atan()));
        let heat = Parabolic {
            batch_max_target: true,
            ..Parabolic::from_name("semilinear-heat", 3).unwrap()
        };
        assert!(heat.batch_value(&pts, 4).is_none(), "only Allen–Cahn has a max target");
    }

    #[test]
    fn nonlinearities_and_terminal_gradients_match_finite_differences() {
        for name in ["semilinear-heat", "allen-cahn-parabolic", "sine-gordon-parabolic"] {
            let p = Parabolic::from_name(name, 7).unwrap();
            for u in [-1.3, -0.2, 0.4, 2.1] {
                let h = 1e-5;
                let (f, df, ddf) = p.nonlinearity(u);
                let (fp, dfp, _) = p.nonlinearity(u + h);
                let (fm, dfm, _) = p.nonlinearity(u - h);
                // central differences: error O(h²) ≈ 1e-10 relative to O(1) values
                assert!((df - (fp - fm) / (2.0 * h)).abs() < 1e-8, "{name} F' at {u}");
                assert!((ddf - (dfp - dfm) / (2.0 * h)).abs() < 1e-8, "{name} F'' at {u}");
                assert!(f.is_finite());
            }
            let x = [0.3, -0.7, 0.15, 0.9, -0.2, 0.05, 0.4];
            let mut g = [0.0; 7];
            p.terminal(&x, &mut g);
            for j in 0..7 {
                let h = 1e-6;
                let (mut xp, mut xm) = (x, x);
                xp[j] += h;
                xm[j] -= h;
                let mut scratch = [0.0; 7];
                let fd = (p.terminal(&xp, &mut scratch) - p.terminal(&xm, &mut scratch)) / (2.0 * h);
                assert!((g[j] - fd).abs() < 1e-7, "{name} ∂g/∂x_{j}: {} vs {fd}", g[j]);
            }
        }
        assert_eq!(
            Parabolic::from_name("semilinear-heat", 100).unwrap().reference(),
            Some(0.31674)
        );
        assert!(
            Parabolic::from_name("semilinear-heat", 50)
                .unwrap()
                .reference()
                .is_none()
        );
        let sg = Parabolic::from_name("sine-gordon-parabolic", 10).unwrap();
        assert!((sg.reference().unwrap() - 3.229470).abs() < 1e-12);
    }
}
