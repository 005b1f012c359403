//! Points files: a float64/float32 `.npy` array `[n, d]` or a headerless CSV (comma or whitespace
//! separated), and the `u,Lu` output as CSV or `.npy`.

use super::npy;
use std::path::Path;

/// Errors reading points or writing values; each names the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum PointsError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file content is not a usable points array.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Reads points as `(n, d, row-major values)`.
pub fn read_points(path: &Path) -> Result<(usize, usize, Vec<f64>), PointsError> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| PointsError::Io {
        path: name.clone(),
        source,
    })?;
    parse_points(&name, &bytes, path.extension().is_some_and(|e| e == "npy"))
}

/// Parses a points file's bytes (`name` for messages; `npy`: the name says `.npy`).
pub fn parse_points(name: &str, bytes: &[u8], npy: bool) -> Result<(usize, usize, Vec<f64>), PointsError> {
    let name = name.to_string();
    if npy || bytes.starts_with(b"\x93NUMPY") {
        let a = npy::parse(bytes).map_err(|e| PointsError::Format {
            path: name.clone(),
            message: e.to_string(),
        })?;
        if a.rows == 0 || a.cols == 0 {
            return Err(PointsError::Format {
                path: name,
                message: "the array has no points (or no coordinates)".into(),
            });
        }
        if let Some(i) = a.data.iter().position(|v| !v.is_finite()) {
            return Err(PointsError::Format {
                path: name,
                message: format!(
                    "point {}, coordinate {}: {} is not finite",
                    i / a.cols,
                    i % a.cols,
                    a.data[i]
                ),
            });
        }
        return Ok((a.rows, a.cols, a.data));
    }
    let text = String::from_utf8(bytes.to_vec()).map_err(|_| PointsError::Format {
        path: name.clone(),
        message: "not UTF-8 text (CSV) nor .npy".into(),
    })?;
    let mut data = Vec::new();
    let mut cols = None;
    let mut rows = 0;
    for (ln, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .collect();
        for f in &fields {
            let v: f64 = f.parse().map_err(|_| PointsError::Format {
                path: name.clone(),
                message: format!("line {}: '{f}' is not a number", ln + 1),
            })?;
            if !v.is_finite() {
                return Err(PointsError::Format {
                    path: name.clone(),
                    message: format!("line {}: '{f}' is not finite", ln + 1),
                });
            }
            data.push(v);
        }
        match cols {
            None => cols = Some(fields.len()),
            Some(c) if c != fields.len() => {
                return Err(PointsError::Format {
                    path: name.clone(),
                    message: format!("line {} has {} values, earlier lines have {c}", ln + 1, fields.len()),
                });
            }
            _ => {}
        }
        rows += 1;
    }
    match cols {
        Some(c) if rows > 0 => Ok((rows, c, data)),
        _ => Err(PointsError::Format {
            path: name,
            message: "no points in the file".into(),
        }),
    }
}

/// The `u,Lu` table as CSV text (header `u,Lu`, full f64 precision).
pub fn values_csv(u: &[f64], lu: &[f64]) -> String {
    let mut s = String::from("u,Lu\n");
    for (a, b) in u.iter().zip(lu) {
        s.push_str(&format!("{a:e},{b:e}\n"));
    }
    s
}

/// Writes `u,Lu` to `path`: `[n, 2]` `.npy` if the name ends in `.npy`, CSV otherwise; atomically.
pub fn write_values(path: &Path, u: &[f64], lu: &[f64]) -> Result<(), PointsError> {
    let bytes = if path.extension().is_some_and(|e| e == "npy") {
        let data: Vec<f64> = u.iter().zip(lu).flat_map(|(a, b)| [*a, *b]).collect();
        npy::encode(u.len(), 2, &data)
    } else {
        values_csv(u, lu).into_bytes()
    };
    let io = |source| PointsError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_points_are_refused_in_npy_as_in_csv() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let bytes = crate::io::npy::encode(2, 2, &[0.1, 0.2, bad, 0.4]);
            let e = parse_points("p.npy", &bytes, true).unwrap_err().to_string();
            assert!(e.contains("point 1, coordinate 0") && e.contains("not finite"), "{e}");
            let csv = format!("0.1,0.2\n{bad},0.4\n");
            assert!(parse_points("p.csv", csv.as_bytes(), false).is_err(), "{csv}");
        }
        assert!(parse_points("p.npy", &crate::io::npy::encode(1, 2, &[0.1, 0.2]), true).is_ok());
    }
}
