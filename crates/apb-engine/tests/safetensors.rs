//! Reading tensors from mapped files: dtype conversion against known bit patterns, and the
//! checks on shapes and file bounds.

use std::io::Write;

use apb_engine::safetensors::{convert, DType, TensorEntry, TensorFiles};
use apb_test_support::Rng;

#[test]
fn converts_bf16_f16_and_f32_little_endian() {
    // 1.0, -2.0, 0.5 in bf16 (0x3F80, 0xC000, 0x3F00) and f16 (0x3C00, 0xC000, 0x3800).
    assert_eq!(convert(&[0x80, 0x3F, 0x00, 0xC0, 0x00, 0x3F], DType::BF16), vec![1.0, -2.0, 0.5]);
    assert_eq!(convert(&[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38], DType::F16), vec![1.0, -2.0, 0.5]);
    let bytes: Vec<u8> = [3.25f32, -0.125].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(convert(&bytes, DType::F32), vec![3.25, -0.125]);
    // bf16 keeps f32's exponent: 1e30 survives, unlike f16.
    let big = ((1e30f32.to_bits() >> 16) as u16).to_le_bytes();
    assert!((convert(&big, DType::BF16)[0] / 1e30 - 1.0).abs() < 1e-2);
}

fn file_with(bytes: &[u8]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("apb-st-{}-{}.bin", std::process::id(), bytes.len()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes)).unwrap();
    path
}

#[test]
fn reads_checked_tensors_and_reports_bad_entries() {
    let data: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let file = file_with(&data);
    let entry = |name: &str, shape: Vec<usize>, offset: usize, len: usize| TensorEntry {
        name: name.to_string(),
        file: file.clone(),
        dtype: DType::F32,
        shape,
        offset_bytes: offset,
        byte_length: len,
        permute_heads: None,
    };
    let mut files = TensorFiles::new(vec![
        entry("a", vec![2, 2], 8, 16),
        entry("late", vec![4], 16, 16),
        entry("liar", vec![3], 0, 8),
    ]);
    assert_eq!(files.read("a", &[2, 2]).unwrap(), vec![2.0, 3.0, 4.0, 5.0]);
    let e = files.read("a", &[4]).unwrap_err();
    assert_eq!((e.code, e.path.as_str()), ("TENSOR_SHAPE", "a"));
    assert!(e.message.contains("[2, 2]") && e.message.contains("[4]"), "{}", e.message);
    let e = files.read("late", &[4]).unwrap_err();
    assert_eq!(e.code, "MODEL_FILE");
    assert!(e.message.contains("truncated"), "{}", e.message);
    assert_eq!(files.read("liar", &[3]).unwrap_err().code, "TENSOR_SHAPE");
    assert_eq!(files.read("missing", &[1]).unwrap_err().code, "TENSOR_MISSING");
    std::fs::remove_file(&file).ok();
}

#[test]
fn a_nan_or_inf_weight_is_refused_naming_the_tensor_and_where() {
    let mut rng = Rng::fresh();
    for (dtype, poison) in [(DType::F32, f32::NAN), (DType::F32, f32::NEG_INFINITY), (DType::BF16, f32::INFINITY), (DType::F16, f32::NAN)] {
        let (rows, cols) = (1 + (rng.next() % 40) as usize, 1 + (rng.next() % 300) as usize);
        let mut values: Vec<f32> = (0..rows * cols).map(|i| ((i as f32) * 0.37).sin()).collect();
        let bad = (rng.next() % (rows * cols) as u64) as usize;
        values[bad] = poison;
        let bytes: Vec<u8> = match dtype {
            DType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DType::BF16 => values.iter().flat_map(|v| ((v.to_bits() >> 16) as u16).to_le_bytes()).collect(),
            _ => values.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect(),
        };
        let file = std::env::temp_dir().join(format!("apb-st-nan-{}-{}.bin", std::process::id(), rng.next()));
        std::fs::write(&file, &bytes).unwrap();
        let name = format!("model.layers.{}.mlp.up_proj.weight", rng.next() % 30);
        let mut files = TensorFiles::new(vec![TensorEntry {
            name: name.clone(),
            file: file.clone(),
            dtype,
            shape: vec![rows, cols],
            offset_bytes: 0,
            byte_length: bytes.len(),
            permute_heads: None,
        }]);
        let e = files.read(&name, &[rows, cols]).unwrap_err();
        assert_eq!((e.code, e.path.as_str()), ("NUMERIC", name.as_str()), "{dtype}: {e:?}");
        assert!(e.message.contains(&format!("row {}, column {}", bad / cols, bad % cols)), "{dtype}: {}", e.message);
        std::fs::remove_file(&file).ok();
    }
}
