//! The CUDA kernels as the addon exposes them for checks and benchmarks: each call opens
//! GPU 0 and errors with CUDA_UNAVAILABLE where there is no GPU or the build has no kernels.

use apb_cuda::{AttentionKernel, Gpu};
use apb_engine::Heads;
use apb_engine::EngineError;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::guarded;

#[napi(object)]
pub struct CudaAttentionSpec {
    pub rows: u32,
    pub q_heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    /// Lengths of the fully visible segments before the causal local block (passing, anchor).
    pub prefix: Vec<u32>,
    /// "sm90" (Hopper, head_dim 128) or "portable"; by default the one the engine would use.
    pub kernel: Option<String>,
    pub seed: Option<u32>,
    /// Timed runs for cudaAttentionBench (default 20).
    pub iterations: Option<u32>,
}

#[napi(object)]
pub struct CudaAttentionCheckResult {
    pub gpu: String,
    pub kernel: String,
    pub o_rel_err: f64,
    pub lse_max_abs_err: f64,
    pub lse_mismatched_rows: u32,
}

#[napi(object)]
pub struct CudaAttentionBenchResult {
    pub gpu: String,
    pub kernel: String,
    pub median_ms: f64,
    pub tflops: f64,
}

#[napi(object)]
pub struct CudaMergeSpec {
    pub rows: u32,
    pub heads: u32,
    pub head_dim: u32,
    pub parts: u32,
    pub seed: Option<u32>,
}

#[napi(object)]
pub struct CudaMergeCheckResult {
    pub gpu: String,
    pub o_rel_err: f64,
    pub lse_max_abs_err: f64,
    pub lse_mismatched_rows: u32,
}

fn heads_of(spec: &CudaAttentionSpec) -> Heads {
    Heads { q_heads: spec.q_heads as usize, kv_heads: spec.kv_heads as usize, head_dim: spec.head_dim as usize }
}

/// The kernel asked for (checked before the GPU is opened), or the one the engine would use.
fn kernel_of(spec: &CudaAttentionSpec) -> apb_engine::Result<Option<AttentionKernel>> {
    match spec.kernel.as_deref() {
        None => Ok(None),
        Some("sm90") => Ok(Some(AttentionKernel::Sm90)),
        Some("portable") => Ok(Some(AttentionKernel::Portable)),
        Some(other) => Err(EngineError::invalid("kernel", format!("unknown kernel \"{other}\"; use \"sm90\" or \"portable\""))),
    }
}

fn prefix_of(spec: &CudaAttentionSpec) -> Vec<usize> {
    spec.prefix.iter().map(|&n| n as usize).collect()
}

/// Runs an attention kernel on fresh random inputs and checks it against the engine's CPU
/// attention.
#[napi]
pub fn cuda_attention_check(spec: CudaAttentionSpec) -> Result<CudaAttentionCheckResult> {
    guarded("cudaAttentionCheck", || {
        let asked = kernel_of(&spec)?;
        let gpu = Gpu::open(0)?;
        let kernel = asked.unwrap_or_else(|| gpu.attention_kernel(spec.head_dim as usize));
        let seed = spec.seed.map(u64::from).unwrap_or(0x5eed);
        let r = apb_cuda::check_attention(&gpu, kernel, spec.rows as usize, heads_of(&spec), &prefix_of(&spec), seed)?;
        Ok(CudaAttentionCheckResult {
            gpu: gpu.name.clone(),
            kernel: kernel.name().into(),
            o_rel_err: r.o_rel_err,
            lse_max_abs_err: r.lse_max_abs_err,
            lse_mismatched_rows: r.lse_mismatched_rows as u32,
        })
    })
}

/// Times an attention kernel (median of event-timed runs) on an APB local-row shape.
#[napi]
pub fn cuda_attention_bench(spec: CudaAttentionSpec) -> Result<CudaAttentionBenchResult> {
    guarded("cudaAttentionBench", || {
        let asked = kernel_of(&spec)?;
        let gpu = Gpu::open(0)?;
        let kernel = asked.unwrap_or_else(|| gpu.attention_kernel(spec.head_dim as usize));
        let iterations = spec.iterations.unwrap_or(20) as usize;
        let t = apb_cuda::time_attention(&gpu, kernel, spec.rows as usize, heads_of(&spec), &prefix_of(&spec), iterations)?;
        Ok(CudaAttentionBenchResult { gpu: gpu.name.clone(), kernel: kernel.name().into(), median_ms: t.median_ms, tflops: t.tflops })
    })
}

/// Runs the LSE-merge kernel on fresh partial outputs (with -inf parts and a row no part
/// saw) and checks it against the engine's CPU merge.
#[napi]
pub fn cuda_merge_check(spec: CudaMergeSpec) -> Result<CudaMergeCheckResult> {
    guarded("cudaMergeCheck", || {
        let gpu = Gpu::open(0)?;
        let seed = spec.seed.map(u64::from).unwrap_or(0x5eed);
        let r = apb_cuda::check_merge(&gpu, spec.rows as usize, spec.heads as usize, spec.head_dim as usize, spec.parts as usize, seed)?;
        Ok(CudaMergeCheckResult { gpu: gpu.name.clone(), o_rel_err: r.o_rel_err, lse_max_abs_err: r.lse_max_abs_err, lse_mismatched_rows: r.lse_mismatched_rows as u32 })
    })
}
