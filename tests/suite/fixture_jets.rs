//! The committed fixture network (values computed with JAX in float64, see
//! `tests/fixtures/README.md`, a copy of the shared fixture): jets through the engine reproduce `jax.experimental.jet`
//! outputs, loaded from the `stde apply` checkpoint layout, to 1e-10 relative.

use std::path::PathBuf;
use stde::io::npy;
use stde::jet::{InputJets, Tangent};
use stde::nn::{Tape, checkpoint};

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    dir.join("mlp_4_16_16_1.safetensors").exists().then_some(dir)
}

#[test]
fn jets_match_jax_fixture() {
    let Some(dir) = fixtures() else {
        panic!("fixture folder tests/fixtures is missing");
    };
    let ck = checkpoint::load::<f64>(&dir.join("mlp_4_16_16_1.safetensors")).unwrap();
    let pts = npy::read(&dir.join("points_8x4.npy")).unwrap();
    assert_eq!((pts.rows, pts.cols), (8, 4));
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("mlp_4_16_16_1.expected.json")).unwrap()).unwrap();
    let jets = expected["jets"].as_array().unwrap();
    assert!(jets.len() >= 4);
    let mut tape = Tape::default();
    for jet in jets {
        let tangents: Vec<Vec<f64>> = jet["tangents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect())
            .collect();
        let k = tangents.len();
        let mut input = InputJets::new(k, 4, 1, pts.data.clone()).unwrap();
        for (slot, v) in tangents.iter().enumerate() {
            if v.iter().any(|x| *x != 0.0) {
                input.set(slot + 1, Tangent::Dense(v.repeat(pts.rows))).unwrap();
            }
        }
        let out = ck.net.forward(&input, &mut tape).unwrap();
        for (p, row) in jet["outputs_y0_to_yK"].as_array().unwrap().iter().enumerate() {
            for (n, want) in row.as_array().unwrap().iter().enumerate() {
                let (got, want) = (out.derivative(n, p, 0), want.as_f64().unwrap());
                let err = (got - want).abs() / want.abs().max(1e-3);
                assert!(err < 1e-10, "{} point {p} y{n}: {got} vs {want}", jet["name"]);
            }
        }
    }
    // u at every point
    let input = InputJets::new(1, 4, 1, pts.data.clone()).unwrap();
    let out = ck.net.forward(&input, &mut tape).unwrap();
    for (p, want) in expected["u"].as_array().unwrap().iter().enumerate() {
        assert!((out.derivative(0, p, 0) - want.as_f64().unwrap()).abs() < 1e-12);
    }
}

#[test]
fn checkpoint_round_trips_and_rejects_garbage() {
    use std::collections::{BTreeMap, HashMap};
    use stde::nn::{Architecture, Mlp};
    let mut arch = Architecture::mlp(6, 5, 3);
    arch.block_size = Some(3);
    let net = Mlp::<f64>::new(arch, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("net.safetensors");
    let mut extra = BTreeMap::new();
    extra.insert("adam.m".to_string(), vec![1.0, 2.0]);
    checkpoint::save(&path, &net, &HashMap::new(), &extra).unwrap();
    let back = checkpoint::load::<f64>(&path).unwrap();
    assert_eq!(back.net.params(), net.params());
    assert_eq!(back.net.architecture(), net.architecture());
    assert_eq!(back.extra["adam.m"], vec![1.0, 2.0]);
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let err = checkpoint::load::<f64>(&path).unwrap_err().to_string();
    assert!(err.contains("not a safetensors file"), "{err}");
    assert!(checkpoint::load::<f64>(&dir.path().join("missing.safetensors")).is_err());
}
