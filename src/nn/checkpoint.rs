//! Network checkpoints in safetensors: `layers.{l}.weight` (`[out, in]`), `layers.{l}.bias`
//! (`[out]`), with first-layer weight sharing `shared.weight` (`[B]`) and `shared.bias` (`[1]`);
//! metadata `format = stde-mlp`, `activation`, plus any caller entries. f32 or f64 on disk.
//! Files are written atomically (temporary file in the same folder, then rename).

use super::mlp::{Activation, Architecture, Mlp};
use crate::real::Real;
use safetensors::{Dtype, SafeTensors, View, tensor::TensorView};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Errors reading or writing a checkpoint; each names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a usable network checkpoint.
    #[error("{path}: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A loaded checkpoint: the network, its metadata, and any extra tensors (e.g. optimiser state).
#[derive(Debug)]
pub struct Checkpoint<T> {
    /// The network.
    pub net: Mlp<T>,
    /// String metadata (includes `activation`).
    pub metadata: HashMap<String, String>,
    /// Tensors other than the network's (e.g. optimiser state), flattened, in f64.
    pub extra: BTreeMap<String, Vec<f64>>,
}

fn format_err(path: &Path, message: impl Into<String>) -> CheckpointError {
    CheckpointError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn to_le_bytes<T: Real>(values: &[T]) -> Vec<u8> {
    if T::NAME == "f32" {
        values.iter().flat_map(|v| (v.as_f64() as f32).to_le_bytes()).collect()
    } else {
        values.iter().flat_map(|v| v.as_f64().to_le_bytes()).collect()
    }
}

fn read_values<T: Real>(path: &Path, name: &str, view: &TensorView) -> Result<Vec<T>, CheckpointError> {
    let data = view.data();
    match view.dtype() {
        Dtype::F64 => Ok(data
            .chunks_exact(8)
            .map(|c| T::c(f64::from_le_bytes(c.try_into().unwrap())))
            .collect()),
        Dtype::F32 => Ok(data
            .chunks_exact(4)
            .map(|c| T::c(f32::from_le_bytes(c.try_into().unwrap()) as f64))
            .collect()),
        other => Err(format_err(
            path,
            format!("tensor '{name}' has dtype {other:?}; expected F32 or F64"),
        )),
    }
}

/// A tensor whose bytes are made when the writer asks for them, so that writing a checkpoint
/// holds at most one tensor's bytes beside the training state (the whole file's bytes and every
/// tensor's copy were held at once before: ≈ 600 MB at d = 10⁵).
struct Lazy<'a> {
    dtype: Dtype,
    shape: Vec<usize>,
    make: Box<dyn Fn() -> Vec<u8> + 'a>,
}

impl View for Lazy<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned((self.make)())
    }
    fn data_len(&self) -> usize {
        let size = if self.dtype == Dtype::F64 { 8 } else { 4 };
        self.shape.iter().product::<usize>() * size
    }
}

/// Extra tensors saved beside the network (e.g. optimiser state), borrowed.
pub enum Extra<'a, T> {
    /// Saved as f64.
    F64(&'a [f64]),
    /// Saved in the network's precision (f32 moments of an f32 run stay f32: half the bytes).
    Native(&'a [T]),
}

fn dtype_of<T: Real>() -> Dtype {
    if T::NAME == "f32" { Dtype::F32 } else { Dtype::F64 }
}

/// The network's tensors (weights transposed to `[out, in]`) and the extras, as lazy views.
fn tensors<'a, T: Real>(net: &'a Mlp<T>, extra: &'a [(String, Extra<'a, T>)]) -> Vec<(String, Lazy<'a>)> {
    let dtype = dtype_of::<T>();
    let p = net.params();
    let lazy = |shape: Vec<usize>, values: &'a [T]| Lazy {
        dtype,
        shape,
        make: Box::new(move || to_le_bytes(values)),
    };
    let mut out = Vec::new();
    for (l, layer) in net.affine_layers().iter().enumerate() {
        let (fi, fo, at) = (layer.fan_in, layer.fan_out, layer.weight);
        out.push((
            format!("layers.{l}.weight"),
            Lazy {
                dtype,
                shape: vec![fo, fi],
                make: Box::new(move || {
                    let mut w = vec![T::zero(); fi * fo];
                    for i in 0..fi {
                        for o in 0..fo {
                            w[o * fi + i] = p[at + i * fo + o];
                        }
                    }
                    to_le_bytes(&w)
                }),
            },
        ));
        out.push((
            format!("layers.{l}.bias"),
            lazy(vec![fo], &p[layer.bias..layer.bias + fo]),
        ));
    }
    if let Some(s) = net.shared_layout() {
        out.push(("shared.weight".into(), lazy(vec![s.block], &p[s.w..s.w + s.block])));
        out.push(("shared.bias".into(), lazy(vec![1], &p[s.beta..s.beta + 1])));
    }
    for (name, values) in extra {
        let view = match values {
            Extra::F64(v) => Lazy {
                dtype: Dtype::F64,
                shape: vec![v.len()],
                make: Box::new(move || to_le_bytes(v)),
            },
            Extra::Native(v) => lazy(vec![v.len()], v),
        };
        out.push((name.clone(), view));
    }
    out
}

fn header<T: Real>(net: &Mlp<T>, metadata: &HashMap<String, String>) -> HashMap<String, String> {
    let mut meta = metadata.clone();
    meta.insert("format".into(), "stde-mlp".into());
    meta.insert("activation".into(), net.architecture().activation.to_string());
    meta
}

fn f64_extras<T>(extra: &BTreeMap<String, Vec<f64>>) -> Vec<(String, Extra<'_, T>)> {
    extra.iter().map(|(n, v)| (n.clone(), Extra::F64(v))).collect()
}

/// Serialises a network (weights transposed to `[out, in]`) with metadata and extra tensors.
pub fn to_bytes<T: Real>(
    net: &Mlp<T>,
    metadata: &HashMap<String, String>,
    extra: &BTreeMap<String, Vec<f64>>,
) -> Vec<u8> {
    let extra = f64_extras(extra);
    safetensors::serialize(tensors(net, &extra), Some(header(net, metadata))).expect("checkpoint tensors are valid")
}

/// Writes a checkpoint atomically: a temporary file beside `path`, then a rename.
pub fn save<T: Real>(
    path: &Path,
    net: &Mlp<T>,
    metadata: &HashMap<String, String>,
    extra: &BTreeMap<String, Vec<f64>>,
) -> Result<(), CheckpointError> {
    save_with(path, net, metadata, &f64_extras(extra))
}

/// As [`save`], with borrowed extras ([`Extra`]), streamed to the file one tensor at a time.
pub fn save_with<T: Real>(
    path: &Path,
    net: &Mlp<T>,
    metadata: &HashMap<String, String>,
    extra: &[(String, Extra<'_, T>)],
) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("safetensors.tmp");
    safetensors::serialize_to_file(tensors(net, extra), Some(header(net, metadata)), &tmp).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(e) => io(e),
        other => format_err(path, other.to_string()),
    })?;
    // on disk before the rename makes it visible: a crash leaves the old or the new file
    std::fs::OpenOptions::new()
        .write(true)
        .open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    // the rename itself is durable once the directory is synced (best effort where unsupported)
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a checkpoint written by [`save`] or by other software in the same layout.
pub fn load<T: Real>(path: &Path) -> Result<Checkpoint<T>, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_bytes(path, &bytes)
}

/// Parses checkpoint bytes (`path` is used in messages only).
pub fn from_bytes<T: Real>(path: &Path, bytes: &[u8]) -> Result<Checkpoint<T>, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format_err(path, format!("not a safetensors file ({e})")))?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(|e| format_err(path, e.to_string()))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let activation: Activation = match metadata.get("activation") {
        Some(a) => a.parse().map_err(|e: super::NnError| format_err(path, e.to_string()))?,
        None => Activation::Tanh,
    };
    let get = |name: &str| -> Result<(Vec<usize>, Vec<T>), CheckpointError> {
        let view = st
            .tensor(name)
            .map_err(|_| format_err(path, format!("missing tensor '{name}'")))?;
        Ok((view.shape().to_vec(), read_values(path, name, &view)?))
    };
    let mut weights = Vec::new();
    let mut biases = Vec::new();
    while st
        .names()
        .contains(&format!("layers.{}.weight", weights.len()).as_str())
    {
        let l = weights.len();
        let (ws, w) = get(&format!("layers.{l}.weight"))?;
        let (bs, b) = get(&format!("layers.{l}.bias"))?;
        if ws.len() != 2 || bs != [ws[0]] {
            return Err(format_err(
                path,
                format!("layer {l}: weight shape {ws:?} and bias shape {bs:?} do not form [out, in] and [out]"),
            ));
        }
        if let Some((prev, _)) = weights.last() {
            let prev: &Vec<usize> = prev;
            if prev[0] != ws[1] {
                return Err(format_err(
                    path,
                    format!("layer {l} takes {} inputs but layer {} gives {}", ws[1], l - 1, prev[0]),
                ));
            }
        }
        weights.push((ws, w));
        biases.push(b);
    }
    if weights.is_empty() {
        return Err(format_err(
            path,
            "no tensor 'layers.0.weight': not a stde network checkpoint",
        ));
    }
    // every layers.* tensor must belong to the consecutive layers read above: a gap would
    // otherwise load a truncated network
    for name in st.names() {
        let Some(rest) = name.strip_prefix("layers.") else {
            continue;
        };
        let (index, field) = rest.split_once('.').unwrap_or((rest, ""));
        match index.parse::<usize>() {
            Ok(l) if l < weights.len() && (field == "weight" || field == "bias") => {}
            Ok(l) if l >= weights.len() => {
                return Err(format_err(
                    path,
                    format!(
                        "tensor '{name}' exists but layer {} is missing (layers must be consecutive)",
                        weights.len()
                    ),
                ));
            }
            _ => return Err(format_err(path, format!("unexpected tensor '{name}'"))),
        }
    }
    let shared = if st.names().contains(&"shared.weight") {
        let (_, w) = get("shared.weight")?;
        let (_, b) = get("shared.bias")?;
        if b.len() != 1 || w.is_empty() {
            return Err(format_err(path, "shared.weight must be [B] and shared.bias [1]"));
        }
        Some((w, b[0]))
    } else {
        None
    };
    let n = weights.len();
    let first_in = weights[0].0[1];
    let (input_dim, block_size) = match &shared {
        Some((w, _)) => (first_in * w.len(), Some(w.len())),
        None => (first_in, None),
    };
    let arch = Architecture {
        input_dim,
        hidden: weights[..n - 1].iter().map(|(s, _)| s[0]).collect(),
        output_dim: weights[n - 1].0[0],
        activation,
        block_size,
    };
    if arch.hidden.is_empty() && block_size.is_some() {
        return Err(format_err(path, "weight sharing needs at least one hidden layer"));
    }
    let mut net = Mlp::zeros(arch).map_err(|e| format_err(path, e.to_string()))?;
    let layouts = net.affine_layers().to_vec();
    let sl = net.shared_layout();
    let p = net.params_mut();
    for (layer, ((shape, w), b)) in layouts.iter().zip(weights.iter().zip(&biases)) {
        let (fo, fi) = (shape[0], shape[1]);
        for o in 0..fo {
            for i in 0..fi {
                p[layer.weight + i * fo + o] = w[o * fi + i];
            }
        }
        p[layer.bias..layer.bias + fo].copy_from_slice(b);
    }
    if let (Some(s), Some((w, beta))) = (sl, shared) {
        p[s.w..s.w + s.block].copy_from_slice(&w);
        p[s.beta] = beta;
    }
    let mut extra = BTreeMap::new();
    for name in st.names() {
        if !name.starts_with("layers.") && !name.starts_with("shared.") {
            let view = st.tensor(name).map_err(|e| format_err(path, e.to_string()))?;
            extra.insert(name.to_string(), read_values::<f64>(path, name, &view)?);
        }
    }
    Ok(Checkpoint { net, metadata, extra })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Activation;

    #[test]
    fn a_missing_middle_layer_is_an_error_not_a_truncated_network() {
        let arch = Architecture {
            input_dim: 3,
            hidden: vec![4, 4],
            output_dim: 1,
            activation: Activation::Tanh,
            block_size: None,
        };
        let net = Mlp::<f64>::new(arch, 1).unwrap();
        let full = to_bytes(&net, &HashMap::new(), &BTreeMap::new());
        let st = SafeTensors::deserialize(&full).unwrap();
        let keep: Vec<(String, TensorView)> = st
            .tensors()
            .into_iter()
            .filter(|(n, _)| !n.starts_with("layers.1."))
            .collect();
        let gap = safetensors::serialize(keep, None).unwrap();
        let e = from_bytes::<f64>(Path::new("gap.safetensors"), &gap)
            .unwrap_err()
            .to_string();
        assert!(e.contains("layer 1 is missing"), "{e}");
        assert!(from_bytes::<f64>(Path::new("full.safetensors"), &full).is_ok());
    }
}
