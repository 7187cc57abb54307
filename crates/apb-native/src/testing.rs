//! What `@apb/native/testing` exposes: one kernel run by name on tensors given as bytes, for
//! the GPU checks (apb-kernel-check does the work; this converts the values).

use std::collections::{BTreeMap, HashMap};

use apb_kernel_check::{Params, SegmentParams};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::guarded;

#[napi(object)]
pub struct KernelSegment {
    pub start: u32,
    pub count: u32,
    pub causal: bool,
}

#[napi(object)]
pub struct KernelParams {
    pub q_heads: Option<u32>,
    pub kv_heads: Option<u32>,
    pub heads: Option<u32>,
    pub head_dim: Option<u32>,
    pub hidden: Option<u32>,
    pub width: Option<u32>,
    pub tokens: Option<u32>,
    pub count: Option<u32>,
    pub excluded_start: Option<u32>,
    pub excluded_end: Option<u32>,
    pub eps: Option<f64>,
    /// Attention: "sm90", "portable" or "decode"; by default the one the engine would run.
    pub kernel: Option<String>,
    pub segments: Option<Vec<KernelSegment>>,
    pub picked: Option<Vec<Vec<u32>>>,
}

#[napi(object)]
pub struct KernelCall {
    pub kernel: String,
    pub params: KernelParams,
    /// Each tensor's little-endian element bytes, by the name the kernel reads.
    pub tensors: HashMap<String, Buffer>,
    /// Timed launches after the checked one (0 or absent: none).
    pub iterations: Option<u32>,
}

#[napi(object)]
pub struct KernelRun {
    pub gpu: String,
    pub kernel: String,
    pub tensors: HashMap<String, Buffer>,
    pub median_ms: Option<f64>,
}

/// Runs one kernel on GPU 0 (CUDA_UNAVAILABLE where there is none) and returns every tensor
/// after the run: see apb-kernel-check for what each kernel reads and writes.
#[napi]
pub fn run_kernel(call: KernelCall) -> Result<KernelRun> {
    let p = call.params;
    let params = Params {
        q_heads: p.q_heads.map(|v| v as usize),
        kv_heads: p.kv_heads.map(|v| v as usize),
        heads: p.heads.map(|v| v as usize),
        head_dim: p.head_dim.map(|v| v as usize),
        hidden: p.hidden.map(|v| v as usize),
        width: p.width.map(|v| v as usize),
        tokens: p.tokens.map(|v| v as usize),
        count: p.count.map(|v| v as usize),
        excluded_start: p.excluded_start.map(|v| v as usize),
        excluded_end: p.excluded_end.map(|v| v as usize),
        eps: p.eps.map(|v| v as f32),
        kernel: p.kernel,
        segments: p.segments.unwrap_or_default().iter().map(|s| SegmentParams { start: s.start as usize, count: s.count as usize, causal: s.causal }).collect(),
        picked: p.picked.unwrap_or_default(),
    };
    let tensors: BTreeMap<String, Vec<u8>> = call.tensors.into_iter().map(|(name, b)| (name, b.to_vec())).collect();
    let iterations = call.iterations.unwrap_or(0) as usize;
    let run = guarded("runKernel", || apb_kernel_check::run(&call.kernel, &params, tensors, iterations))?;
    Ok(KernelRun {
        gpu: run.gpu,
        kernel: run.kernel,
        tensors: run.tensors.into_iter().map(|(name, bytes)| (name, Buffer::from(bytes))).collect(),
        median_ms: run.median_ms,
    })
}
