//! `calibrate()`: the engine's calibration (apb-engine's `calibrate`) on the CPU or a GPU, for
//! `apb calibrate`. Runs on libuv's thread pool; `onStep(name)` hears each measurement start.

use apb_engine::calibrate::{self, Calibration, LayerShape, Repeats, Settings, Step};
use apb_engine::cpu::backend::Cpu;
use apb_engine::EngineError;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::{backends, guarded};

/// What to calibrate: a layer's shape and, where given, sizes other than the backend's defaults.
#[napi(object)]
pub struct CalibrateSpec {
    /// "cpu" (default) or "cuda".
    pub backend: Option<String>,
    /// The GPU to measure (default 0).
    pub gpu: Option<u32>,
    pub hidden: u32,
    pub heads: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub intermediate: u32,
    /// Rows of each GEMM.
    pub tokens: Option<u32>,
    /// Rows and keys of the causal attention.
    pub attention_tokens: Option<u32>,
    /// Bytes of the copied buffer.
    pub copy_bytes: Option<f64>,
    /// Untimed calls at least.
    pub warmup: Option<u32>,
    /// Untimed work at least, in milliseconds.
    pub warmup_ms: Option<f64>,
    /// Timed samples (the median is kept).
    pub runs: Option<u32>,
    /// Work per sample at least, in milliseconds (the call repeated).
    pub sample_ms: Option<f64>,
}

#[napi(object)]
pub struct GemmRate {
    /// "q", "kv", "o", "gate_up" or "down".
    pub name: String,
    pub tokens: u32,
    /// Output and input widths.
    pub n: u32,
    pub k: u32,
    pub flops: f64,
    pub ms: f64,
    pub tflops: f64,
}

/// How the attention kernel's blocks fill the device (apb-engine's `AttentionBlocks`).
#[napi(object)]
pub struct AttentionBlockRate {
    pub multiprocessors: u32,
    /// The short causal call timed: its rows and median time.
    pub short_tokens: u32,
    pub short_ms: f64,
    /// The fixed cost per block the planner's model needs to give the short call that time.
    pub block_us: f64,
}

#[napi(object)]
pub struct CalibrateResult {
    pub backend: String,
    pub tokens: u32,
    pub attention_tokens: u32,
    pub warmup: u32,
    pub warmup_ms: f64,
    pub runs: u32,
    pub sample_ms: f64,
    pub gemms: Vec<GemmRate>,
    /// The layer's GEMM FLOPs over their summed median times.
    pub matmul_tflops: f64,
    pub attention_flops: f64,
    pub attention_ms: f64,
    pub attention_tflops: f64,
    /// Null where the attention kernel is not the one the block model describes (the CPU).
    pub attention_blocks: Option<AttentionBlockRate>,
    /// Bytes read and written by the copy.
    pub copy_bytes: f64,
    pub copy_ms: f64,
    pub copy_gbs: f64,
    /// Free device memory (null on the CPU).
    pub free_memory_bytes: Option<f64>,
}

fn shape_of(s: &CalibrateSpec) -> LayerShape {
    LayerShape {
        hidden: s.hidden as usize,
        heads: s.heads as usize,
        kv_heads: s.kv_heads as usize,
        head_dim: s.head_dim as usize,
        intermediate: s.intermediate as usize,
    }
}

fn settings_of(s: &CalibrateSpec, backend: &str) -> apb_engine::Result<Settings> {
    let d = Settings::for_backend(backend);
    let copy_bytes = match s.copy_bytes {
        Some(b) if !(b.is_finite() && b >= 1.0 && b <= (calibrate::MAX_BUFFER_VALUES * 2) as f64) => {
            return Err(EngineError::invalid("copyBytes", format!("copyBytes must be a number of bytes from 1 to {}, got {b}", calibrate::MAX_BUFFER_VALUES * 2)))
        }
        Some(b) => b as usize,
        None => d.copy_bytes,
    };
    Ok(Settings {
        tokens: s.tokens.map_or(d.tokens, |t| t as usize),
        attention_tokens: s.attention_tokens.map_or(d.attention_tokens, |t| t as usize),
        copy_bytes,
        repeats: Repeats {
            warmup: s.warmup.map_or(d.repeats.warmup, |w| w as usize),
            warmup_ms: s.warmup_ms.unwrap_or(d.repeats.warmup_ms),
            runs: s.runs.map_or(d.repeats.runs, |r| r as usize),
            sample_ms: s.sample_ms.unwrap_or(d.repeats.sample_ms),
        },
    })
}

type StepFn = ThreadsafeFunction<String, (), String, Status, false>;

pub struct CalibrateTask {
    spec: CalibrateSpec,
    on_step: Option<StepFn>,
}

impl Task for CalibrateTask {
    type Output = (Calibration, &'static str);
    type JsValue = CalibrateResult;

    fn compute(&mut self) -> Result<Self::Output> {
        let (spec, on_step) = (&self.spec, self.on_step.take());
        guarded("calibrate", move || {
            let mut report = |step: Step| {
                if let Some(f) = &on_step {
                    f.call(step.name().to_string(), ThreadsafeFunctionCallMode::NonBlocking);
                }
            };
            let shape = shape_of(spec);
            match spec.backend.as_deref() {
                None | Some("cpu") => {
                    let settings = settings_of(spec, "cpu")?;
                    Ok((calibrate::calibrate(&Cpu, &shape, &settings, &mut report)?, "cpu"))
                }
                Some("cuda") => {
                    let settings = settings_of(spec, "cuda")?;
                    // Sizes are checked before the GPU is opened, so a mistake costs no driver start.
                    calibrate::check(&shape, &settings)?;
                    let cuda = apb_cuda::Cuda::open(spec.gpu.unwrap_or(0) as usize)?;
                    Ok((calibrate::calibrate(&cuda, &shape, &settings, &mut report)?, "cuda"))
                }
                Some(other) => Err(EngineError::invalid("backend", format!("backend '{other}' is not one of: {}", backends().join(", ")))),
            }
        })
    }

    fn resolve(&mut self, _env: Env, (c, backend): Self::Output) -> Result<CalibrateResult> {
        let s = c.settings;
        let gemms = c
            .gemms
            .iter()
            .map(|g| GemmRate {
                name: g.gemm.name.to_string(),
                tokens: s.tokens as u32,
                n: g.gemm.n as u32,
                k: g.gemm.k as u32,
                flops: g.flops,
                ms: g.ms,
                tflops: g.tflops(),
            })
            .collect();
        Ok(CalibrateResult {
            backend: backend.to_string(),
            tokens: s.tokens as u32,
            attention_tokens: s.attention_tokens as u32,
            warmup: s.repeats.warmup as u32,
            warmup_ms: s.repeats.warmup_ms,
            runs: s.repeats.runs as u32,
            sample_ms: s.repeats.sample_ms,
            gemms,
            matmul_tflops: c.matmul_tflops(),
            attention_flops: c.attention_flops,
            attention_ms: c.attention_ms,
            attention_tflops: c.attention_tflops(),
            attention_blocks: c.attention_blocks.as_ref().map(|b| AttentionBlockRate {
                multiprocessors: b.multiprocessors as u32,
                short_tokens: b.short_tokens as u32,
                short_ms: b.short_ms,
                block_us: b.block_us,
            }),
            copy_bytes: c.copy_bytes_moved,
            copy_ms: c.copy_ms,
            copy_gbs: c.copy_gbs(),
            free_memory_bytes: c.free_memory_bytes.map(|b| b as f64),
        })
    }
}

/// Measures this machine's GEMM, attention and copy rates and free memory on a backend, for a
/// hardware profile the planner reads. `onStep(name)` is called as each measurement starts.
#[napi(ts_return_type = "Promise<CalibrateResult>")]
#[allow(clippy::type_complexity)] // spelled out so napi's typings show the callback's argument
pub fn calibrate(spec: CalibrateSpec, on_step: Option<ThreadsafeFunction<String, (), String, Status, false>>) -> AsyncTask<CalibrateTask> {
    AsyncTask::new(CalibrateTask { spec, on_step })
}
