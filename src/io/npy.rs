//! Minimal `.npy` (NumPy format 1.0–3.0) reading and writing of 2-D little-endian f32/f64 arrays
//! in C order: the only layout stde exchanges.

use std::path::Path;

/// Errors reading an `.npy` file; each names what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    /// The file could not be read or written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The file is not a supported `.npy` array.
    #[error("{0}")]
    Format(String),
}

/// A 2-D array read from `.npy`, widened to f64.
#[derive(Clone, Debug, PartialEq)]
pub struct Array2 {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row-major values.
    pub data: Vec<f64>,
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    if rest.starts_with('(') {
        rest.find(')').map(|e| &rest[..=e])
    } else {
        rest.find([',', '}']).map(|e| rest[..e].trim())
    }
}

/// Parses `.npy` bytes holding a 2-D (or 1-D, read as one column) f32/f64 array.
pub fn parse(bytes: &[u8]) -> Result<Array2, NpyError> {
    let bad = |m: &str| Err(NpyError::Format(m.to_string()));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return bad("not a .npy file (missing magic bytes)");
    }
    let (hlen, hstart): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize, 12),
        v => return Err(NpyError::Format(format!("unsupported .npy version {v}"))),
    };
    let Some(header) = hstart
        .checked_add(hlen)
        .and_then(|end| bytes.get(hstart..end))
        .and_then(|h| std::str::from_utf8(h).ok())
    else {
        return bad("truncated .npy header");
    };
    let descr = header_value(header, "descr").unwrap_or("").trim_matches(['\'', '"']);
    let width = match descr {
        "<f8" => 8,
        "<f4" => 4,
        other => {
            return Err(NpyError::Format(format!(
                "dtype '{other}' is not supported; expected float64 ('<f8') or float32 ('<f4')"
            )));
        }
    };
    if header_value(header, "fortran_order") != Some("False") {
        return bad("Fortran-ordered arrays are not supported; save with C order");
    }
    let shape_s = header_value(header, "shape").unwrap_or("()");
    let dims: Vec<usize> = shape_s
        .trim_matches(['(', ')'])
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| NpyError::Format(format!("bad shape {shape_s}")))?;
    let (rows, cols) = match dims.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        _ => {
            return Err(NpyError::Format(format!(
                "array has shape {shape_s}; expected 2-D [n, d]"
            )));
        }
    };
    let body = &bytes[hstart + hlen..];
    // the shape comes from the file: its byte count must not overflow before it is compared
    let Some(need) = rows.checked_mul(cols).and_then(|n| n.checked_mul(width)) else {
        return Err(NpyError::Format(format!("shape {shape_s} is too large")));
    };
    if body.len() != need {
        return Err(NpyError::Format(format!(
            "data holds {} bytes, shape {shape_s} needs {need}",
            body.len()
        )));
    }
    let data = if width == 8 {
        body.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    } else {
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect()
    };
    Ok(Array2 { rows, cols, data })
}

/// Reads a 2-D f32/f64 `.npy` file.
pub fn read(path: &Path) -> Result<Array2, NpyError> {
    parse(&std::fs::read(path)?)
}

/// Encodes a `[rows × cols]` f64 array as `.npy` version 1.0.
pub fn encode(rows: usize, cols: usize, data: &[f64]) -> Vec<u8> {
    let mut header = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let data = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let a = parse(&encode(3, 2, &data)).unwrap();
        assert_eq!((a.rows, a.cols, a.data), (3, 2, data));
        assert!(parse(b"hello world").is_err());
        let mut bytes = encode(3, 2, &[0.0; 6]);
        bytes.pop();
        assert!(parse(&bytes).is_err());
    }

    #[test]
    fn an_overflowing_shape_is_refused_before_any_allocation() {
        // 2^62 · 4 · 8 bytes wraps to 0 in usize arithmetic: the empty body must not match it
        let mut header = "{'descr': '<f8', 'fortran_order': False, 'shape': (4611686018427387904, 4), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header.as_bytes());
        let e = parse(&bytes).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
    }
}
