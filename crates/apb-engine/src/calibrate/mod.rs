//! Measures what the planner's hardware profile holds, on this backend: the GEMM rate of a
//! model's layer, the causal attention rate, the rate of a large device copy and the free
//! memory. Each rate is counted the way the planner counts work (`work.rs`), so a profile
//! written from it predicts this machine's times. Links between hosts are not measured here.

pub mod timer;
pub mod work;

use crate::backend::{Backend, Segment};
use crate::error::{EngineError, Result};
pub use timer::Repeats;
pub use work::{causal_attention_flops, layer_gemm_flops, layer_gemms, Gemm, LayerShape};

/// The sizes of a calibration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Rows of each GEMM (a prefill chunk's tokens).
    pub tokens: usize,
    /// Rows (and keys) of the causal attention.
    pub attention_tokens: usize,
    /// Bytes of the buffer the copy reads (it writes as many).
    pub copy_bytes: usize,
    pub repeats: Repeats,
}

impl Settings {
    /// Prefill-sized work on a GPU (smaller work leaves a GPU idle between launches and
    /// reads low); small on the CPU, so a calibration there takes seconds.
    pub fn for_backend(name: &str) -> Settings {
        match name {
            "cpu" => Settings {
                tokens: 64,
                attention_tokens: 512,
                copy_bytes: 64 << 20,
                repeats: Repeats { warmup: 1, warmup_ms: 0.0, runs: 3, sample_ms: 0.0 },
            },
            // A second of load first, then samples of 200 ms: a GPU's rate under the
            // sustained load of a prefill, not its boost clock's (timer.rs).
            _ => Settings {
                tokens: 8192,
                attention_tokens: 16384,
                copy_bytes: 1 << 30,
                repeats: Repeats { warmup: 2, warmup_ms: 1000.0, runs: 5, sample_ms: 200.0 },
            },
        }
    }
}

/// Largest buffer a calibration makes, in values: beyond it the sizes are a mistake, and an
/// allocation that large could abort the process instead of failing.
pub const MAX_BUFFER_VALUES: usize = 1 << 31;
pub const MAX_RUNS: usize = 1000;
/// Longest warm-up or sample, in milliseconds.
pub const MAX_SUSTAIN_MS: f64 = 60_000.0;

/// One GEMM's median time.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmTime {
    pub gemm: Gemm,
    pub flops: f64,
    pub ms: f64,
}

impl GemmTime {
    pub fn tflops(&self) -> f64 {
        tflops(self.flops, self.ms)
    }
}

/// FLOPs done in `ms` milliseconds, as TFLOP/s.
fn tflops(flops: f64, ms: f64) -> f64 {
    flops / (ms * 1e-3) / 1e12
}

/// Rows (and keys) of the short causal call whose time gives the attention blocks' fixed
/// cost: 16 blocks of 128 rows per head, a few waves on a Hopper GPU, where that cost weighs
/// most (as in the 2K-4K calls each of 8 hosts makes at 32K).
pub const SHORT_ATTENTION_TOKENS: usize = 2048;

/// How the attention kernel's blocks fill the device (the planner's `multiprocessors` and
/// `attentionBlockUs`), where its kernel is the one the block model describes.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionBlocks {
    pub multiprocessors: usize,
    /// The short causal call timed: its rows and its median time.
    pub short_tokens: usize,
    pub short_ms: f64,
    /// The fixed cost per block with which the planner's model gives the short call that time,
    /// its tiles' time set by the long call (`fit_block_us`).
    pub block_us: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    pub settings: Settings,
    pub gemms: Vec<GemmTime>,
    pub attention_flops: f64,
    pub attention_ms: f64,
    /// None where the backend's attention is not cut into the block model's blocks (the CPU).
    pub attention_blocks: Option<AttentionBlocks>,
    /// Bytes the copy read and wrote (twice the buffer), as a bandwidth test counts them.
    pub copy_bytes_moved: f64,
    pub copy_ms: f64,
    /// Free device memory before the calibration allocated anything; None where the backend
    /// does not plan memory (the CPU).
    pub free_memory_bytes: Option<u64>,
}

impl Calibration {
    pub fn gemm_flops(&self) -> f64 {
        self.gemms.iter().map(|g| g.flops).sum()
    }
    pub fn gemm_ms(&self) -> f64 {
        self.gemms.iter().map(|g| g.ms).sum()
    }
    /// The layer's GEMM FLOPs over their summed time: the planner times a layer's GEMMs as
    /// their FLOPs over one rate, so the rate is the total's, not a mean of the GEMMs' rates.
    pub fn matmul_tflops(&self) -> f64 {
        tflops(self.gemm_flops(), self.gemm_ms())
    }
    pub fn attention_tflops(&self) -> f64 {
        tflops(self.attention_flops, self.attention_ms)
    }
    pub fn copy_gbs(&self) -> f64 {
        self.copy_bytes_moved / (self.copy_ms * 1e-3) / 1e9
    }
}

/// The measurement starting now, for a progress line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Memory,
    Gemm(&'static str),
    Attention,
    AttentionBlocks,
    Copy,
}

impl Step {
    pub fn name(self) -> &'static str {
        match self {
            Step::Memory => "memory",
            Step::Gemm(name) => name,
            Step::Attention => "attention",
            Step::AttentionBlocks => "attention blocks",
            Step::Copy => "copy",
        }
    }
}

/// Checks the shape and sizes before anything is allocated; errors name the field.
pub fn check(shape: &LayerShape, s: &Settings) -> Result<()> {
    let fields = [
        ("hidden", shape.hidden),
        ("heads", shape.heads),
        ("kvHeads", shape.kv_heads),
        ("headDim", shape.head_dim),
        ("intermediate", shape.intermediate),
        ("tokens", s.tokens),
        ("attentionTokens", s.attention_tokens),
        ("copyBytes", s.copy_bytes),
        ("runs", s.repeats.runs),
    ];
    if let Some((name, _)) = fields.iter().find(|(_, v)| *v == 0) {
        return Err(EngineError::invalid(*name, format!("{name} must be at least 1, got 0")));
    }
    if !shape.heads.is_multiple_of(shape.kv_heads) {
        return Err(EngineError::invalid("kvHeads", format!("kvHeads ({}) must divide heads ({})", shape.kv_heads, shape.heads)));
    }
    if s.repeats.runs > MAX_RUNS || s.repeats.warmup > MAX_RUNS {
        let name = if s.repeats.runs > MAX_RUNS { "runs" } else { "warmup" };
        return Err(EngineError::invalid(name, format!("{name} must be at most {MAX_RUNS}")));
    }
    for (name, ms) in [("warmupMs", s.repeats.warmup_ms), ("sampleMs", s.repeats.sample_ms)] {
        if !(ms.is_finite() && (0.0..=MAX_SUSTAIN_MS).contains(&ms)) {
            return Err(EngineError::invalid(name, format!("{name} must be from 0 to {MAX_SUSTAIN_MS} milliseconds, got {ms}")));
        }
    }
    let widest = layer_gemms(shape).iter().map(|g| g.n.max(g.k)).max().unwrap_or(0);
    let largest_weight = layer_gemms(shape).iter().map(|g| g.n.saturating_mul(g.k)).max().unwrap_or(0);
    let too_big = |values: usize| values > MAX_BUFFER_VALUES;
    if too_big(largest_weight) {
        return Err(EngineError::invalid("intermediate", format!("the layer's largest weight has {largest_weight} values; at most {MAX_BUFFER_VALUES}")));
    }
    if too_big(s.tokens.saturating_mul(widest)) {
        return Err(EngineError::invalid("tokens", format!("{} tokens make a GEMM buffer of more than {MAX_BUFFER_VALUES} values; use fewer", s.tokens)));
    }
    if too_big(s.attention_tokens.saturating_mul(shape.heads * shape.head_dim)) {
        return Err(EngineError::invalid("attentionTokens", format!("{} tokens make a query buffer of more than {MAX_BUFFER_VALUES} values; use fewer", s.attention_tokens)));
    }
    if too_big(s.copy_bytes / 2) {
        return Err(EngineError::invalid("copyBytes", format!("copyBytes must be at most {} bytes", MAX_BUFFER_VALUES * 2)));
    }
    Ok(())
}

/// Runs every measurement on `backend`; `on_step` hears each one as it starts.
pub fn calibrate<B: Backend>(backend: &B, shape: &LayerShape, s: &Settings, on_step: &mut dyn FnMut(Step)) -> Result<Calibration> {
    check(shape, s)?;
    on_step(Step::Memory);
    let memory = backend.free_memory()?;
    let mut gemms = Vec::new();
    for gemm in layer_gemms(shape) {
        on_step(Step::Gemm(gemm.name));
        gemms.push(time_gemm(backend, gemm, s)?);
    }
    on_step(Step::Attention);
    let attention_ms = time_attention(backend, shape, s.attention_tokens, s)?;
    let attention_flops = causal_attention_flops(shape.heads(), s.attention_tokens);
    let attention_blocks = match backend.attention_multiprocessors(shape.head_dim) {
        Some(multiprocessors) => {
            on_step(Step::AttentionBlocks);
            let short_ms = time_attention(backend, shape, SHORT_ATTENTION_TOKENS, s)?;
            let rate = tflops(attention_flops, attention_ms);
            let (d, heads) = (shape.head_dim as u64, shape.heads as u64);
            apb_plan::kernel::fit_block_us(rate, multiprocessors as u64, d, heads, SHORT_ATTENTION_TOKENS as u64, short_ms * 1e-3)
                .map(|block_us| AttentionBlocks { multiprocessors, short_tokens: SHORT_ATTENTION_TOKENS, short_ms, block_us })
        }
        None => None,
    };
    on_step(Step::Copy);
    // The CPU backend stores f32; a device that plans memory says its value size.
    let value_bytes = memory.map_or(4, |(_, bytes)| bytes);
    let (copy_bytes_moved, copy_ms) = time_copy(backend, s, value_bytes)?;
    Ok(Calibration {
        settings: *s,
        gemms,
        attention_flops,
        attention_ms,
        attention_blocks,
        copy_bytes_moved,
        copy_ms,
        free_memory_bytes: memory.map(|(bytes, _)| bytes),
    })
}

fn time_gemm<B: Backend>(backend: &B, gemm: Gemm, s: &Settings) -> Result<GemmTime> {
    // Random values, not zeros: a GPU draws less power multiplying zeros and runs faster.
    let x = backend.upload(filled(s.tokens * gemm.k, 1.0, 1))?;
    let w = backend.linear_weight(filled(gemm.n * gemm.k, 1.0 / (gemm.k as f32).sqrt(), 2), gemm.n, gemm.k)?;
    let ms = timer::median_ms(backend, s.repeats, || backend.linear(&x, gemm.k, &w, gemm.n, None))?;
    Ok(GemmTime { gemm, flops: gemm.flops(s.tokens), ms })
}

/// Median milliseconds of causal attention over `t` rows (and keys).
fn time_attention<B: Backend>(backend: &B, shape: &LayerShape, t: usize, s: &Settings) -> Result<f64> {
    let q = backend.upload(filled(t * shape.heads * shape.head_dim, 1.0, 3))?;
    let k = backend.upload(filled(t * shape.kv_heads * shape.head_dim, 1.0, 4))?;
    let v = backend.upload(filled(t * shape.kv_heads * shape.head_dim, 1.0, 5))?;
    let segments = [Segment { k: &k, v: &v, start: 0, count: t, causal: true }];
    timer::median_ms(backend, s.repeats, || backend.attention(&q, shape.heads(), &segments))
}

/// A device-to-device copy of a large buffer, built on the device from one uploaded chunk so
/// every page is written before it is read (untouched CPU pages would read as free).
fn time_copy<B: Backend>(backend: &B, s: &Settings, value_bytes: usize) -> Result<(f64, f64)> {
    let values = (s.copy_bytes / value_bytes.max(1)).max(1);
    let chunk_values = values.min(1 << 22);
    let chunks = values.div_ceil(chunk_values);
    let chunk = backend.upload(filled(chunk_values, 1.0, 6))?;
    let parts: Vec<&B::Buf> = std::iter::repeat_n(&chunk, chunks).collect();
    let big = backend.concat_rows(&parts)?;
    drop(parts);
    let ms = timer::median_ms(backend, s.repeats, || backend.rows(&big, chunk_values, 0, chunks))?;
    Ok((2.0 * (chunks * chunk_values * value_bytes) as f64, ms))
}

/// `len` values in [-scale, scale) from a small xorshift generator: fast, deterministic, and
/// free of the zeros and denormals that would make some devices faster than real data.
fn filled(len: usize, scale: f32, seed: u64) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}
