//! The launchers of cuda/ops.cu's kernels: embedding, RMSNorm (alone and fused with the
//! residual add), RoPE, SwiGLU, adds, the per-head gather and the query-aware passing score.
//! Each checks its shapes, then launches through `Gpu::launch` with the shape the kernel was
//! written for. Semantics are the CPU backend's (crates/apb-engine/src/cpu): activations bf16,
//! [rows][width] row-major, math in fp32, one rounding to bf16 per output.
//!
//! Launch shapes: 256 threads per block. Element-wise kernels give each thread a chunk of 8
//! consecutive elements of one row (the last chunk of a row may be shorter), so their grid is
//! ceil(rows * ceil(width / 8) / 256); they choose 16-byte accesses themselves when the
//! layout allows, so they have no alignment preconditions. RMSNorm runs a block per row, RoPE
//! a block per 4 rows, the score a block per 256 keys of one KV head.

use apb_engine::error::{code, EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut};

use crate::gpu::{function, module, Gpu, LaunchShape};

pub(crate) static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ops.fatbin"));

const THREADS: u32 = 256;
const CHUNK: usize = 8;
const ROPE_ROWS_PER_BLOCK: usize = 4;
/// RoPE keeps a block's cos and sin tables in 8 KiB of static shared memory.
const ROPE_MAX_HEAD_DIM: usize = 512;
const SCORES_KEYS_PER_BLOCK: usize = 256;
/// The passing selection runs one block of 1024 threads per KV head, holding the row's keys
/// (4 bytes a token) in shared memory when they fit in 96 KiB (every GPU from compute
/// capability 8.0 on gives a block that much): 24K tokens, a host's local block at 192K tokens
/// on 8 hosts.
const SELECT_THREADS: u32 = 1024;
const SELECT_SMEM_BYTES: usize = 96 * 1024;

pub(crate) struct Functions {
    embed: sys::CUfunction,
    rms_norm: sys::CUfunction,
    add_rms_norm: sys::CUfunction,
    rope: sys::CUfunction,
    silu_mul: sys::CUfunction,
    silu: sys::CUfunction,
    add: sys::CUfunction,
    add_bias: sys::CUfunction,
    scores_d64: sys::CUfunction,
    scores_d128: sys::CUfunction,
    select: sys::CUfunction,
    gather: sys::CUfunction,
}

/// Each block holds 256 keys, padded by 8 per row (ldmatrix rows on distinct banks).
fn scores_smem(head_dim: usize) -> usize {
    SCORES_KEYS_PER_BLOCK * (head_dim + 8) * 2
}

impl Functions {
    pub(crate) fn load() -> Result<Functions> {
        let ops = module(FATBIN)?;
        let f = |name: &str| function(ops, name, 0);
        Ok(Functions {
            embed: f("apb_embed_bf16_kernel")?,
            rms_norm: f("apb_rms_norm_bf16_kernel")?,
            add_rms_norm: f("apb_add_rms_norm_bf16_kernel")?,
            rope: f("apb_rope_bf16_kernel")?,
            silu_mul: f("apb_silu_mul_bf16_kernel")?,
            silu: f("apb_silu_bf16_kernel")?,
            add: f("apb_add_bf16_kernel")?,
            add_bias: f("apb_add_bias_bf16_kernel")?,
            scores_d64: function(ops, "apb_query_scores_d64", scores_smem(64))?,
            scores_d128: function(ops, "apb_query_scores_d128", scores_smem(128))?,
            select: function(ops, "apb_passing_select_kernel", SELECT_SMEM_BYTES)?,
            gather: f("apb_gather_per_head_bf16_kernel")?,
        })
    }
}

fn internal(op: &str, what: String) -> EngineError {
    EngineError::new(code::INTERNAL, op, format!("{op}: {what}"))
}

/// The launch of an element-wise kernel over `rows` rows of `width` values.
fn chunks(rows: usize, width: usize) -> LaunchShape {
    LaunchShape { grid: ((rows * width.div_ceil(CHUNK)).div_ceil(THREADS as usize), 1, 1), threads: THREADS, smem_bytes: 0 }
}

/// One block per row (RMSNorm).
fn per_row(rows: usize) -> LaunchShape {
    LaunchShape { grid: (rows, 1, 1), threads: THREADS, smem_bytes: 0 }
}

impl Gpu {
    fn ops(&self) -> &Functions {
        &self.kernels.ops
    }

    /// out[i] = table[ids[i]] (ids checked against the vocabulary on the host first).
    pub fn embed(&self, table: &CudaSlice<u16>, hidden: usize, ids: &[u32], out: &mut CudaSlice<u16>) -> Result<()> {
        let vocab = table.len() / hidden.max(1);
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(EngineError::invalid("tokens", format!("token id {bad} is outside the vocabulary of {vocab}")));
        }
        if out.len() != ids.len() * hidden {
            return Err(internal("embed", format!("out holds {} values for {} x {hidden}", out.len(), ids.len())));
        }
        let dev_ids = self.upload(ids)?;
        let (mut t, _g1) = table.device_ptr(&self.stream);
        let (mut i, _g2) = dev_ids.device_ptr(&self.stream);
        let (mut o, _g3) = out.device_ptr_mut(&self.stream);
        // Ids were checked above, so the kernel's bad-id counter is not needed (null).
        let (mut v, mut h, mut rows, mut bad) = (vocab as i64, hidden as i64, ids.len() as i64, 0u64);
        // SAFETY: apb_embed_bf16_kernel(const bf16* table, int64_t vocab, int64_t hidden, const
        // uint32_t* ids, int64_t rows, bf16* out, int32_t* bad_ids): every id < vocab and out
        // holds rows x hidden (checked above); the guards keep the buffers alive.
        unsafe { self.launch("embed", self.ops().embed, chunks(ids.len(), hidden), &mut args![t, v, h, i, rows, o, bad]) }
    }

    /// out = x / sqrt(mean(x^2) + eps) * w, row by row.
    pub fn rms_norm(&self, x: &CudaSlice<u16>, w: &CudaSlice<u16>, eps: f32, out: &mut CudaSlice<u16>) -> Result<()> {
        let hidden = w.len();
        if hidden == 0 || hidden > i32::MAX as usize || !x.len().is_multiple_of(hidden) || out.len() != x.len() {
            return Err(internal("rms_norm", format!("{} values, width {hidden}, out {}", x.len(), out.len())));
        }
        let (mut xp, _g1) = x.device_ptr(&self.stream);
        let (mut wp, _g2) = w.device_ptr(&self.stream);
        let (mut op, _g3) = out.device_ptr_mut(&self.stream);
        let rows = x.len() / hidden;
        let (mut r, mut h, mut e) = (rows as i64, hidden as i32, eps);
        // SAFETY: apb_rms_norm_bf16_kernel(const bf16* x, const bf16* w, bf16* out, int64_t rows,
        // int32_t hidden, float eps): x and out hold rows x hidden, w hidden (checked above).
        unsafe { self.launch("rms_norm", self.ops().rms_norm, per_row(rows), &mut args![xp, wp, op, r, h, e]) }
    }

    /// The residual add and the next RMSNorm in one pass: residual = bf16(residual + delta) in
    /// place (rounded as `add` rounds), then out = rms_norm(residual) * w (as `rms_norm`).
    pub fn add_rms_norm(&self, residual: &mut CudaSlice<u16>, delta: &CudaSlice<u16>, w: &CudaSlice<u16>, eps: f32, out: &mut CudaSlice<u16>) -> Result<()> {
        let hidden = w.len();
        let n = residual.len();
        if hidden == 0 || hidden > i32::MAX as usize || !n.is_multiple_of(hidden) || delta.len() != n || out.len() != n {
            return Err(internal("add_rms_norm", format!("residual {n}, delta {}, out {} values, width {hidden}", delta.len(), out.len())));
        }
        let (mut rp, _g1) = residual.device_ptr_mut(&self.stream);
        let (mut dp, _g2) = delta.device_ptr(&self.stream);
        let (mut wp, _g3) = w.device_ptr(&self.stream);
        let (mut op, _g4) = out.device_ptr_mut(&self.stream);
        let rows = n / hidden;
        let (mut r, mut h, mut e) = (rows as i64, hidden as i32, eps);
        // SAFETY: apb_add_rms_norm_bf16_kernel(bf16* residual, const bf16* delta, const bf16* w,
        // bf16* out, int64_t rows, int32_t hidden, float eps): residual, delta and out hold rows x
        // hidden, w hidden (checked above); out is a different buffer from residual (the borrow
        // rules make it so), as the kernel needs.
        unsafe { self.launch("add_rms_norm", self.ops().add_rms_norm, per_row(rows), &mut args![rp, dp, wp, op, r, h, e]) }
    }

    /// RoPE in place on x [rows][heads][head_dim] (rotate-half), angles in fp64.
    pub fn rope(&self, x: &mut CudaSlice<u16>, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()> {
        let rows = positions.len();
        if head_dim == 0 || !head_dim.is_multiple_of(2) || head_dim > ROPE_MAX_HEAD_DIM || heads == 0 || inv_freq.len() != head_dim / 2 || x.len() != rows * heads * head_dim {
            return Err(internal("rope", format!("{} values for {rows} rows x {heads} heads x {head_dim}, {} frequencies", x.len(), inv_freq.len())));
        }
        let pos = self.upload(positions)?;
        let freq = self.upload(inv_freq)?;
        let (mut xp, _g1) = x.device_ptr_mut(&self.stream);
        let (mut pp, _g2) = pos.device_ptr(&self.stream);
        let (mut fp, _g3) = freq.device_ptr(&self.stream);
        let (mut r, mut h, mut d, mut stride) = (rows as i64, heads as i32, head_dim as i32, (heads * head_dim) as i64);
        let shape = LaunchShape { grid: (rows.div_ceil(ROPE_ROWS_PER_BLOCK), 1, 1), threads: THREADS, smem_bytes: 0 };
        // SAFETY: apb_rope_bf16_kernel(bf16* x, const uint32_t* positions, const double*
        // inv_freq, int64_t rows, int32_t heads, int32_t head_dim, int64_t row_stride): x holds
        // rows x heads x head_dim, head_dim even and at most 512, one frequency per pair
        // (checked above).
        unsafe { self.launch("rope", self.ops().rope, shape, &mut args![xp, pp, fp, r, h, d, stride]) }
    }

    /// out[r] = silu(gate_up[r][..width]) * gate_up[r][width..], silu(g) = g / (1 + exp(-g)):
    /// the stacked gate and up projections' output [rows][2 * width] read in place.
    pub fn silu_mul(&self, gate_up: &CudaSlice<u16>, width: usize, out: &mut CudaSlice<u16>) -> Result<()> {
        if width == 0 || !gate_up.len().is_multiple_of(2 * width) || out.len() != gate_up.len() / 2 {
            return Err(internal("silu_mul", format!("gate_up {} values, out {}, width {width}", gate_up.len(), out.len())));
        }
        let rows = out.len() / width;
        let (g, _g1) = gate_up.device_ptr(&self.stream);
        let (mut o, _g2) = out.device_ptr_mut(&self.stream);
        // The up half starts `width` elements into each row (2 bytes each).
        let (mut gate, mut up) = (g, g + 2 * width as u64);
        let (mut in_stride, mut up_stride, mut out_stride) = ((2 * width) as i64, (2 * width) as i64, width as i64);
        let (mut r, mut w) = (rows as i64, width as i64);
        // SAFETY: apb_silu_mul_bf16_kernel(const bf16* gate, int64_t gate_stride, const bf16*
        // up, int64_t up_stride, bf16* out, int64_t out_stride, int64_t rows, int64_t width):
        // rows of 2 x width values in gate_up and width in out (checked above); gate and up
        // are its two halves, each read `width` values into a row of stride 2 x width.
        unsafe { self.launch("silu_mul", self.ops().silu_mul, chunks(rows, width), &mut args![gate, in_stride, up, up_stride, o, out_stride, r, w]) }
    }

    /// x = silu(x), element-wise, in place.
    pub fn silu(&self, x: &mut CudaSlice<u16>) -> Result<()> {
        let n = x.len();
        let (mut xp, _g) = x.device_ptr_mut(&self.stream);
        let mut len = n as i64;
        // SAFETY: apb_silu_bf16_kernel(bf16* x, int64_t n) touches x[0..n), exactly x's length;
        // any length is a valid shape.
        unsafe { self.launch("silu", self.ops().silu, chunks(1, n), &mut args![xp, len]) }
    }

    /// x += y.
    pub fn add(&self, x: &mut CudaSlice<u16>, y: &CudaSlice<u16>) -> Result<()> {
        if x.len() != y.len() {
            return Err(internal("add", format!("{} and {} values", x.len(), y.len())));
        }
        let n = x.len();
        let (mut xp, _g1) = x.device_ptr_mut(&self.stream);
        let (mut yp, _g2) = y.device_ptr(&self.stream);
        let mut len = n as i64;
        // SAFETY: apb_add_bf16_kernel(bf16* x, const bf16* y, int64_t n): both hold n values
        // (checked above).
        unsafe { self.launch("add", self.ops().add, chunks(1, n), &mut args![xp, yp, len]) }
    }

    /// Each row of x [rows][bias.len()] += bias.
    pub fn add_bias(&self, x: &mut CudaSlice<u16>, bias: &CudaSlice<u16>) -> Result<()> {
        let width = bias.len();
        if width == 0 || !x.len().is_multiple_of(width) {
            return Err(internal("add_bias", format!("{} values, bias width {width}", x.len())));
        }
        let rows = x.len() / width;
        let (mut xp, _g1) = x.device_ptr_mut(&self.stream);
        let (mut bp, _g2) = bias.device_ptr(&self.stream);
        let (mut r, mut w) = (rows as i64, width as i64);
        // SAFETY: apb_add_bias_bf16_kernel(bf16* x, const bf16* bias, int64_t rows, int64_t
        // width): x holds rows x width, bias width (checked above).
        unsafe { self.launch("add_bias", self.ops().add_bias, chunks(rows, width), &mut args![xp, bp, r, w]) }
    }

    /// scores[g][j] = sum over rows r and heads h of g's group of exp(q[r][h].k[j][g] /
    /// sqrt(d) - lse[r][h]), with lse over the same keys (from attention).
    #[allow(clippy::too_many_arguments)]
    pub fn query_scores(&self, q: &CudaSlice<u16>, lse: &CudaSlice<f32>, k: &CudaSlice<u16>, q_heads: usize, kv_heads: usize, head_dim: usize, scores: &mut CudaSlice<f32>) -> Result<()> {
        let q_rows = q.len() / (q_heads * head_dim);
        let n = k.len() / (kv_heads * head_dim);
        if !crate::attention::HEAD_DIMS.contains(&head_dim) || lse.len() != q_rows * q_heads || scores.len() != kv_heads * n || !q_heads.is_multiple_of(kv_heads) {
            return Err(internal("query_scores", format!("q {} / lse {} / k {} / scores {} values for {q_heads}/{kv_heads} heads of {head_dim}", q.len(), lse.len(), k.len(), scores.len())));
        }
        let (mut qp, _g1) = q.device_ptr(&self.stream);
        let (mut lp, _g2) = lse.device_ptr(&self.stream);
        let (mut kp, _g3) = k.device_ptr(&self.stream);
        let (mut sp, _g4) = scores.device_ptr_mut(&self.stream);
        let (mut rows, mut hq, mut hkv, mut keys) = (q_rows as i64, q_heads as i32, kv_heads as i32, n as i64);
        let f = if head_dim == 64 { self.ops().scores_d64 } else { self.ops().scores_d128 };
        let shape = LaunchShape { grid: (n.div_ceil(SCORES_KEYS_PER_BLOCK), kv_heads, 1), threads: THREADS, smem_bytes: scores_smem(head_dim) };
        // SAFETY: apb_query_scores_d64/d128(const bf16* q, const float* lse, const bf16* k,
        // float* scores, int64_t q_rows, int32_t q_heads, int32_t kv_heads, int64_t n): every
        // buffer holds what these sizes say (checked above); q and k are whole allocations, so
        // 16-byte aligned as the kernel's 16-byte copies need.
        unsafe { self.launch("query_scores", f, shape, &mut args![qp, lp, kp, sp, rows, hq, hkv, keys]) }
    }

    /// The passing block's tokens: for each KV head (a row of `scores`, [kv_heads][n]), the
    /// `count` tokens outside `excluded` whose scores max-pooled along the sequence (kernel 5)
    /// are highest, ties to the earlier token, in ascending order, into `picked`
    /// [kv_heads][count] (the CPU's passing::max_pool5 and top_k).
    pub fn passing_select(&self, scores: &CudaSlice<f32>, n: usize, excluded: std::ops::Range<usize>, count: usize, picked: &mut CudaSlice<u32>) -> Result<()> {
        let kv_heads = scores.len().checked_div(n).unwrap_or(0);
        let excluded_here = excluded.end.min(n).saturating_sub(excluded.start.min(n));
        if n == 0 || !scores.len().is_multiple_of(n) || n > u32::MAX as usize || count > n - excluded_here || picked.len() != kv_heads * count {
            return Err(internal("passing_select", format!("{} scores for rows of {n}, {count} to pick outside {excluded:?}, picked {}", scores.len(), picked.len())));
        }
        if count == 0 {
            return Ok(());
        }
        let (mut sp, _g1) = scores.device_ptr(&self.stream);
        let (mut pp, _g2) = picked.device_ptr_mut(&self.stream);
        let (mut tokens, mut lo, mut hi, mut c) = (n as i64, excluded.start as i64, excluded.end as i64, count as i64);
        let keys_bytes = n * 4;
        let mut in_smem = (keys_bytes <= SELECT_SMEM_BYTES) as i32;
        let shape = LaunchShape { grid: (kv_heads, 1, 1), threads: SELECT_THREADS, smem_bytes: if in_smem == 1 { keys_bytes } else { 0 } };
        // SAFETY: apb_passing_select_kernel(const float* scores, int64_t n, int64_t ex_lo,
        // int64_t ex_hi, int64_t count, uint32_t* picked, int32_t keys_in_smem): scores holds
        // kv_heads rows of n, picked kv_heads x count, and count is at most the tokens outside
        // the excluded range, so every block writes exactly count indices (checked above); the
        // keys go to shared memory only with n x 4 bytes of it, within the limit set at load.
        unsafe { self.launch("passing_select", self.ops().select, shape, &mut args![sp, tokens, lo, hi, c, pp, in_smem]) }
    }

    /// out[i][h] = kv[picked[h][i]][h] for each KV head h, with the picks on the host
    /// (checked here, then uploaded).
    pub fn gather_per_head(&self, kv: &CudaSlice<u16>, picked: &[Vec<u32>], head_dim: usize, out: &mut CudaSlice<u16>) -> Result<()> {
        let kv_heads = picked.len();
        let count = picked.first().map_or(0, |p| p.len());
        let n = kv.len() / (kv_heads.max(1) * head_dim.max(1));
        if kv_heads == 0 || picked.iter().any(|p| p.len() != count) {
            return Err(internal("gather_per_head", format!("{kv_heads} heads with unequal picks")));
        }
        if let Some(bad) = picked.iter().flatten().find(|&&i| i as usize >= n) {
            return Err(internal("gather_per_head", format!("index {bad} outside {n} tokens")));
        }
        let flat: Vec<u32> = picked.iter().flatten().copied().collect();
        self.gather_picked(kv, &self.upload(&flat)?, kv_heads, head_dim, out)
    }

    /// out[i][h] = kv[picked[h * count + i]][h] for each KV head h, with the picks already on
    /// the device, as `passing_select` writes them (every index below the keys' count, which
    /// that kernel guarantees).
    pub fn gather_picked(&self, kv: &CudaSlice<u16>, picked: &CudaSlice<u32>, kv_heads: usize, head_dim: usize, out: &mut CudaSlice<u16>) -> Result<()> {
        let count = picked.len().checked_div(kv_heads).unwrap_or(0);
        let n = kv.len() / (kv_heads.max(1) * head_dim.max(1));
        if kv_heads == 0 || head_dim == 0 || !picked.len().is_multiple_of(kv_heads) || kv.len() != n * kv_heads * head_dim || out.len() != count * kv_heads * head_dim {
            return Err(internal("gather_per_head", format!("{} picks for {kv_heads} heads over {} values, or out {} values", picked.len(), kv.len(), out.len())));
        }
        let (mut kp, _g1) = kv.device_ptr(&self.stream);
        let (mut pp, _g2) = picked.device_ptr(&self.stream);
        let (mut op, _g3) = out.device_ptr_mut(&self.stream);
        let (mut tokens, mut h, mut d, mut c, mut bad) = (n as i64, kv_heads as i32, head_dim as i32, count as i64, 0u64);
        // SAFETY: apb_gather_per_head_bf16_kernel(const bf16* kv, int64_t n, int32_t kv_heads,
        // int32_t head_dim, const uint32_t* picked, int64_t count, bf16* out, int32_t* bad_ids):
        // kv holds n x kv_heads x head_dim, picked kv_heads x count indices below n (the
        // callers' contract: checked on the host, or written so by passing_select), and out
        // count x kv_heads x head_dim (checked above); bad_ids is null since no index is bad.
        unsafe { self.launch("gather_per_head", self.ops().gather, chunks(count * kv_heads, head_dim), &mut args![kp, tokens, h, d, pp, c, op, bad]) }
    }
}
