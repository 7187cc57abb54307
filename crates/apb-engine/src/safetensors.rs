//! Tensors read in place from safetensors and GGUF files: each file is memory-mapped once,
//! and a tensor's bytes are decoded to f32 straight from the map (`quant` knows the types).
//! The runtime package parses and checks the headers; the offsets it sends are checked
//! again here against the file.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;

use memmap2::Mmap;

use crate::error::{code, EngineError, Result};
pub use crate::quant::DType;
use crate::quant::{dequantize, dequantize_checked, Rows};

/// Where one tensor's bytes are.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorEntry {
    pub name: String,
    pub file: PathBuf,
    pub dtype: DType,
    pub shape: Vec<usize>,
    pub offset_bytes: usize,
    pub byte_length: usize,
    /// Heads (KV heads for k_proj) of a llama-arch GGUF q_proj/k_proj, whose rows
    /// llama.cpp interleaved; they are put back in HF order when read.
    pub permute_heads: Option<usize>,
}

impl TensorEntry {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
}

/// Tensors by name, with the files they live in mapped on first use.
pub struct TensorFiles {
    entries: HashMap<String, TensorEntry>,
    maps: HashMap<PathBuf, Mmap>,
}

impl TensorFiles {
    pub fn new(entries: Vec<TensorEntry>) -> TensorFiles {
        TensorFiles { entries: entries.into_iter().map(|e| (e.name.clone(), e)).collect(), maps: HashMap::new() }
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        self.entries.get(name)
    }

    fn map(&mut self, file: &PathBuf) -> Result<&Mmap> {
        if !self.maps.contains_key(file) {
            let f = File::open(file).map_err(|e| {
                EngineError::new(code::MODEL_FILE, file.display().to_string(), format!("cannot open {}: {e}", file.display()))
            })?;
            // SAFETY: the map is read-only and lives as long as `self`; the model files are
            // not expected to change while loaded (a concurrent truncation would be the
            // caller's error, as with any mapped file).
            let map = unsafe { Mmap::map(&f) }.map_err(|e| {
                EngineError::new(code::MODEL_FILE, file.display().to_string(), format!("cannot map {}: {e}", file.display()))
            })?;
            self.maps.insert(file.clone(), map);
        }
        Ok(&self.maps[file])
    }

    /// The tensor as f32, checked against the expected shape.
    pub fn read(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let e = self
            .entries
            .get(name)
            .cloned()
            .ok_or_else(|| EngineError::new(code::TENSOR_MISSING, name, format!("tensor {name} is missing from the checkpoint")))?;
        if e.shape != shape {
            return Err(EngineError::new(
                code::TENSOR_SHAPE,
                name,
                format!("tensor {name} in {} has shape {:?}, expected {:?}", e.file.display(), e.shape, shape),
            ));
        }
        let rows = Rows::of(name, e.dtype, &e.shape, e.permute_heads)?;
        if e.byte_length != rows.byte_length() {
            return Err(EngineError::new(
                code::TENSOR_SHAPE,
                name,
                format!("tensor {name} has {} bytes, but {} {:?} needs {}", e.byte_length, e.dtype, e.shape, rows.byte_length()),
            ));
        }
        let map = self.map(&e.file)?;
        let end = e.offset_bytes.checked_add(e.byte_length).filter(|&end| end <= map.len()).ok_or_else(|| {
            EngineError::new(
                code::MODEL_FILE,
                name,
                format!("tensor {name} lies beyond the end of {} ({} bytes): the file is truncated", e.file.display(), map.len()),
            )
        })?;
        match dequantize_checked(&map[e.offset_bytes..end], e.dtype, rows) {
            (values, None) => Ok(values),
            (_, Some(bad)) => {
                let (row, column) = (bad.index / rows.len.max(1), bad.index % rows.len.max(1));
                Err(EngineError::new(
                    code::NUMERIC,
                    name,
                    format!(
                        "tensor {name} in {} holds {} at row {row}, column {column}: a checkpoint's weights must be finite. The file is corrupt or was saved from a diverged model; re-download or re-convert it",
                        e.file.display(),
                        bad.value
                    ),
                ))
            }
        }
    }
}

/// Little-endian bytes to f32, as one row of whole blocks (a partial block at the end is
/// ignored).
pub fn convert(bytes: &[u8], dtype: DType) -> Vec<f32> {
    let (per_block, block_bytes) = dtype.block();
    let blocks = bytes.len() / block_bytes;
    let rows = Rows { count: 1, len: blocks * per_block, row_bytes: blocks * block_bytes, head_dim: None };
    dequantize(&bytes[..rows.row_bytes], dtype, rows)
}
