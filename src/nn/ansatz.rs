//! Hard-constraint output transforms `u = ψ(x)·N(x)` applied to output jets.
//!
//! The trainer solves for `u = (1 − ‖x‖²)·N(x)` and records that in the checkpoint's metadata
//! (`ansatz = "1 - |x|^2"`); anything that evaluates `u` or `L u` from such a checkpoint must push
//! the jets of `ψ` along the same input curve and multiply them into the network's output jets
//! (product rule on normalised coefficients, spec §1.2).

use crate::jet::{InputJets, Jet, rules};
use crate::real::{Real, factorial};
use std::collections::HashMap;

/// The metadata value the trainer writes for the unit-ball ansatz.
pub const UNIT_BALL: &str = "1 - |x|^2";
/// The metadata value for the time-factor ansatz (`u = t·N`, `t` the last input coordinate).
pub const TIME: &str = "t";
/// The metadata value for the squared time factor (`u = t²·N`).
pub const TIME_SQUARED: &str = "t^2";
/// The metadata value of the time-to-go factor ends with this (`"T - t"`, `T` the horizon).
pub const TIME_TO_GO_SUFFIX: &str = " - t";

/// What multiplies the network output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ansatz {
    /// `u = N`.
    Identity,
    /// `u = (1 − ‖x‖²)·N`: zero on the unit sphere.
    UnitBall,
    /// `u = t·N` with `t` the last input coordinate: zero at `t = 0` (initial data go in an
    /// offset added to `u`).
    Time,
    /// `u = t²·N`: zero with zero time derivative at `t = 0` (a second-order-in-time problem at
    /// rest initially, e.g. the wave equation).
    TimeSquared,
    /// `u = (T − t)·N`: zero at the horizon `t = T` (terminal data go in an offset added to `u`).
    TimeToGo(Horizon),
}

/// The horizon `T` of [`Ansatz::TimeToGo`] (a finite positive number, kept by its bits so that
/// the ansatz compares exactly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Horizon(u64);

impl Horizon {
    /// `T`; `None` unless finite and positive.
    pub fn new(t: f64) -> Option<Horizon> {
        (t.is_finite() && t > 0.0).then(|| Horizon(t.to_bits()))
    }

    /// `T`.
    pub fn get(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl Ansatz {
    /// Reads the `ansatz` metadata entry (absent: [`Ansatz::Identity`]); unknown values are an error.
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Ansatz, String> {
        match meta.get("ansatz").map(String::as_str) {
            None => Ok(Ansatz::Identity),
            Some(UNIT_BALL) => Ok(Ansatz::UnitBall),
            Some(TIME) => Ok(Ansatz::Time),
            Some(TIME_SQUARED) => Ok(Ansatz::TimeSquared),
            Some(other) => match other.strip_suffix(TIME_TO_GO_SUFFIX).map(|t| t.trim().parse::<f64>()) {
                Some(Ok(t)) if Horizon::new(t).is_some() => Ok(Ansatz::TimeToGo(Horizon::new(t).expect("checked"))),
                _ => Err(format!(
                    "unknown ansatz '{other}' in the checkpoint metadata (known: '{UNIT_BALL}', '{TIME}', '{TIME_SQUARED}', 'T{TIME_TO_GO_SUFFIX}')"
                )),
            },
        }
    }

    /// Normalised coefficients `ψ_0..ψ_K` of `ψ(x(s))` along the input curve of `row`; `psi0`
    /// is `ψ(x₀)` when the caller has it (it costs `O(d)` per call otherwise).
    pub fn series<T: Real>(&self, input: &InputJets<T>, row: usize, psi0: Option<f64>) -> Vec<f64> {
        let order = input.order();
        let mut psi = vec![0.0; order + 1];
        match self {
            Ansatz::Identity => psi[0] = 1.0,
            Ansatz::Time | Ansatz::TimeSquared | Ansatz::TimeToGo(_) => {
                let d = input.dim();
                let p = row / input.dirs();
                let mut t = vec![0.0; order + 1];
                t[0] = input.primal()[p * d + d - 1].as_f64();
                for (k, tk) in t.iter_mut().enumerate().skip(1) {
                    *tk = input.entry(k, row, d - 1).as_f64();
                }
                match self {
                    Ansatz::Time => psi = t,
                    Ansatz::TimeToGo(h) => {
                        psi = t.iter().map(|c| -c).collect();
                        psi[0] += h.get();
                    }
                    _ => rules::mul_forward(&t, &t, &mut psi),
                }
            }
            Ansatz::UnitBall => {
                let d = input.dim();
                let p = row / input.dirs();
                let x = &input.primal()[p * d..(p + 1) * d];
                // the sparse entries (coordinate, a_k) of every slot, sorted by coordinate
                let slots: Vec<Vec<(usize, f64)>> = (1..=order)
                    .map(|k| {
                        let mut e = Vec::new();
                        input.for_each_entry(k, row, |c, a| e.push((c, a.as_f64())));
                        e.sort_unstable_by_key(|&(c, _)| c);
                        // coalesce repeated coordinates so that the merge below sees each once
                        e.dedup_by(|b, a| {
                            let same = a.0 == b.0;
                            if same {
                                a.1 += b.1;
                            }
                            same
                        });
                        e
                    })
                    .collect();
                let dot0 = |k: usize| slots[k - 1].iter().map(|&(c, a)| x[c].as_f64() * a).sum::<f64>();
                let dot = |j: usize, m: usize| merge_dot(&slots[j - 1], &slots[m - 1]);
                psi[0] = psi0.unwrap_or_else(|| 1.0 - x.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>());
                // ψ_k = −Σ_{j=0..k} a_j·a_{k−j}
                for k in 1..=order {
                    let mut s = 2.0 * dot0(k);
                    for j in 1..k {
                        s += dot(j, k - j);
                    }
                    psi[k] = -s;
                }
            }
        }
        psi
    }

    /// The metadata value recorded for this ansatz (`None` for the identity).
    pub fn metadata(&self) -> Option<String> {
        match self {
            Ansatz::Identity => None,
            Ansatz::UnitBall => Some(UNIT_BALL.into()),
            Ansatz::Time => Some(TIME.into()),
            Ansatz::TimeSquared => Some(TIME_SQUARED.into()),
            Ansatz::TimeToGo(h) => Some(format!("{:?}{TIME_TO_GO_SUFFIX}", h.get())),
        }
    }

    /// `ψ(x)` at one input point.
    pub fn value<T: Real>(&self, x: &[T]) -> f64 {
        match self {
            Ansatz::Identity => 1.0,
            Ansatz::UnitBall => 1.0 - x.iter().map(|v| v.as_f64() * v.as_f64()).sum::<f64>(),
            Ansatz::Time => x.last().map_or(1.0, |t| t.as_f64()),
            Ansatz::TimeSquared => x.last().map_or(1.0, |t| t.as_f64() * t.as_f64()),
            Ansatz::TimeToGo(h) => x.last().map_or(1.0, |t| h.get() - t.as_f64()),
        }
    }

    /// `∇ψ(x)` at one input point into `out` (one entry per input coordinate, as [`Ansatz::value`]
    /// reads them).
    pub fn gradient<T: Real>(&self, x: &[T], out: &mut [f64]) {
        out.fill(0.0);
        match self {
            Ansatz::Identity => {}
            Ansatz::UnitBall => out.iter_mut().zip(x).for_each(|(o, v)| *o = -2.0 * v.as_f64()),
            Ansatz::Time => {
                if let Some(o) = out.last_mut() {
                    *o = 1.0;
                }
            }
            Ansatz::TimeSquared => {
                if let (Some(o), Some(t)) = (out.last_mut(), x.last()) {
                    *o = 2.0 * t.as_f64();
                }
            }
            Ansatz::TimeToGo(_) => {
                if let Some(o) = out.last_mut() {
                    *o = -1.0;
                }
            }
        }
    }

    /// Derivative-convention outputs `y_0..y_K` of `u = ψ·N` (output feature 0) in `row`.
    pub fn outputs<T: Real>(&self, input: &InputJets<T>, out: &Jet<T>, row: usize) -> Vec<T> {
        if *self == Ansatz::Identity {
            return out.derivatives(row, 0);
        }
        let order = out.order;
        let psi: Vec<T> = self.series(input, row, None).into_iter().map(T::c).collect();
        let n: Vec<T> = (0..=order).map(|k| out.coefficient(k, row, 0)).collect();
        let mut u = vec![T::zero(); order + 1];
        rules::mul_forward(&psi, &n, &mut u);
        u.iter().enumerate().map(|(k, &v)| v * T::c(factorial(k))).collect()
    }
}

/// `Σ a_c b_c` over two coordinate-sorted sparse vectors.
fn merge_dot(a: &[(usize, f64)], b: &[(usize, f64)]) -> f64 {
    let (mut i, mut j, mut s) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                s += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_the_ansatz() {
        let mut meta = HashMap::new();
        assert_eq!(Ansatz::from_metadata(&meta), Ok(Ansatz::Identity));
        meta.insert("ansatz".to_string(), UNIT_BALL.to_string());
        assert_eq!(Ansatz::from_metadata(&meta), Ok(Ansatz::UnitBall));
        let to_go = Ansatz::TimeToGo(Horizon::new(0.3).unwrap());
        meta.insert("ansatz".to_string(), to_go.metadata().unwrap());
        assert_eq!(Ansatz::from_metadata(&meta), Ok(to_go));
        meta.insert("ansatz".to_string(), "-1 - t".to_string());
        assert!(Ansatz::from_metadata(&meta).is_err());
        meta.insert("ansatz".to_string(), "exp(x)".to_string());
        let e = Ansatz::from_metadata(&meta).unwrap_err();
        assert!(e.contains("exp(x)"), "{e}");
    }

    /// `ψ = T − t` along `x(s) = x₀ + v₁s + v₂s²/2` has the normalised coefficients
    /// `T − t₀, −v₁ₜ, −v₂ₜ/2`; `t` and `t²` as before; value and gradient agree with them.
    #[test]
    fn time_factors_follow_the_input_curve() {
        use crate::jet::Tangent;
        // one point (x, t) = (0.4, 0.25), one direction: v₁ = (0.3, 2), v₂ = (0, −6)
        let mut input = InputJets::new(2, 2, 1, vec![0.4, 0.25]).unwrap();
        input.set(1, Tangent::Dense(vec![0.3, 2.0])).unwrap();
        input.set(2, Tangent::Dense(vec![0.0, -6.0])).unwrap();
        let h = Horizon::new(0.7).unwrap();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-15);
        let to_go = Ansatz::TimeToGo(h).series(&input, 0, None);
        assert!(close(&to_go, &[0.45, -2.0, 3.0]), "{to_go:?}");
        let t = Ansatz::Time.series(&input, 0, None);
        assert!(close(&t, &[0.25, 2.0, -3.0]), "{t:?}");
        // (t(s))² = 0.0625 + s + (4 − 1.5)s² + …
        let t2 = Ansatz::TimeSquared.series(&input, 0, None);
        assert!(close(&t2, &[0.0625, 1.0, 2.5]), "{t2:?}");
        let x = [0.4, 0.25];
        assert!((Ansatz::TimeToGo(h).value(&x) - 0.45).abs() < 1e-15);
        let mut g = [9.0; 2];
        Ansatz::TimeToGo(h).gradient(&x, &mut g);
        assert_eq!(g, [0.0, -1.0]);
        assert_eq!(Horizon::new(0.0), None);
        assert_eq!(Horizon::new(f64::NAN), None);
    }

    #[test]
    fn merge_dot_matches_dense() {
        let a = [(0, 1.0), (3, 2.0), (7, -1.0)];
        let b = [(1, 5.0), (3, 4.0), (7, 3.0), (9, 1.0)];
        assert_eq!(merge_dot(&a, &b), 8.0 - 3.0);
        assert_eq!(merge_dot(&a, &[]), 0.0);
    }
}
