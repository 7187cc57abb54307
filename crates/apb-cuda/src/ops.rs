//! Launching the element-wise, gather and scoring kernels of cuda/ops.cu by name. Each
//! launcher checks its shapes (as cuda/ops.h lists) before the launch.

use std::ffi::c_void;

use apb_engine::error::{code, EngineError, Result};
use cudarc::driver::{result, sys, CudaSlice, DevicePtr, DevicePtrMut};

use crate::gpu::{driver, function, module, Gpu};

static OPS_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/ops.fatbin"));

const THREADS: u32 = 256;
const CHUNK: usize = 8;
const ROPE_ROWS_PER_BLOCK: usize = 4;
const SCORES_KEYS_PER_BLOCK: usize = 256;

pub(crate) fn ops_built() -> bool {
    !OPS_FATBIN.is_empty()
}

pub(crate) struct OpsKernels {
    embed: sys::CUfunction,
    rms_norm: sys::CUfunction,
    rope: sys::CUfunction,
    silu_mul: sys::CUfunction,
    silu: sys::CUfunction,
    add: sys::CUfunction,
    add_bias: sys::CUfunction,
    scores: [sys::CUfunction; 2],
    gather: sys::CUfunction,
}

fn scores_smem(head_dim: usize) -> usize {
    SCORES_KEYS_PER_BLOCK * (head_dim + 8) * 2
}

impl OpsKernels {
    pub(crate) fn load() -> Result<OpsKernels> {
        let ops = module(OPS_FATBIN)?;
        let f = |name: &str| function(ops, name, 0);
        Ok(OpsKernels {
            embed: f("apb_embed_bf16_kernel")?,
            rms_norm: f("apb_rms_norm_bf16_kernel")?,
            rope: f("apb_rope_bf16_kernel")?,
            silu_mul: f("apb_silu_mul_bf16_kernel")?,
            silu: f("apb_silu_bf16_kernel")?,
            add: f("apb_add_bf16_kernel")?,
            add_bias: f("apb_add_bias_bf16_kernel")?,
            scores: [function(ops, "apb_query_scores_d64", scores_smem(64))?, function(ops, "apb_query_scores_d128", scores_smem(128))?],
            gather: f("apb_gather_per_head_bf16_kernel")?,
        })
    }
}

fn internal(op: &str, what: String) -> EngineError {
    EngineError::new(code::INTERNAL, op, format!("{op}: {what}"))
}

fn blocks(items: usize) -> u32 {
    items.div_ceil(THREADS as usize) as u32
}

impl Gpu {
    fn launch(&self, f: sys::CUfunction, grid: u32, grid_y: u32, smem: usize, params: &mut [*mut c_void]) -> Result<()> {
        if grid == 0 || grid_y == 0 {
            return Ok(());
        }
        // Engine hosts are threads; each must have the context current before a raw launch.
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        // SAFETY: every caller passes the kernel's parameters in the order and types cuda/ops.h
        // documents, pointing at buffers it checked and that outlive the launch (stream order).
        unsafe { result::launch_kernel(f, (grid, grid_y, 1), (THREADS, 1, 1), smem as u32, self.stream.cu_stream(), params) }.map_err(driver("launching an op"))
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
        let (mut v, mut h, mut rows, mut bad) = (vocab as i64, hidden as i64, ids.len() as i64, 0u64);
        self.launch(self.ops().embed, blocks(ids.len() * hidden.div_ceil(CHUNK)), 1, 0, &mut args![t, v, h, i, rows, o, bad])
    }

    /// out = x / sqrt(mean(x^2) + eps) * w, row by row.
    pub fn rms_norm(&self, x: &CudaSlice<u16>, w: &CudaSlice<u16>, eps: f32, out: &mut CudaSlice<u16>) -> Result<()> {
        let hidden = w.len();
        if hidden == 0 || !x.len().is_multiple_of(hidden) || out.len() != x.len() {
            return Err(internal("rms_norm", format!("{} values, width {hidden}, out {}", x.len(), out.len())));
        }
        let (mut xp, _g1) = x.device_ptr(&self.stream);
        let (mut wp, _g2) = w.device_ptr(&self.stream);
        let (mut op, _g3) = out.device_ptr_mut(&self.stream);
        let (mut rows, mut h, mut e) = ((x.len() / hidden) as i64, hidden as i32, eps);
        self.launch(self.ops().rms_norm, rows as u32, 1, 0, &mut args![xp, wp, op, rows, h, e])
    }

    /// RoPE in place on x [rows][heads][head_dim] (rotate-half), angles in fp64.
    pub fn rope(&self, x: &mut CudaSlice<u16>, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()> {
        let rows = positions.len();
        if !head_dim.is_multiple_of(2) || head_dim > 512 || inv_freq.len() != head_dim / 2 || x.len() != rows * heads * head_dim {
            return Err(internal("rope", format!("{} values for {rows} rows x {heads} heads x {head_dim}, {} frequencies", x.len(), inv_freq.len())));
        }
        let pos = self.upload(positions)?;
        let freq = self.upload(inv_freq)?;
        let (mut xp, _g1) = x.device_ptr_mut(&self.stream);
        let (mut pp, _g2) = pos.device_ptr(&self.stream);
        let (mut fp, _g3) = freq.device_ptr(&self.stream);
        let (mut r, mut h, mut d, mut stride) = (rows as i64, heads as i32, head_dim as i32, (heads * head_dim) as i64);
        self.launch(self.ops().rope, rows.div_ceil(ROPE_ROWS_PER_BLOCK) as u32, 1, 0, &mut args![xp, pp, fp, r, h, d, stride])
    }

    /// out = silu(gate) * up, element-wise over equal shapes.
    pub fn silu_mul(&self, gate: &CudaSlice<u16>, up: &CudaSlice<u16>, out: &mut CudaSlice<u16>) -> Result<()> {
        let n = gate.len();
        if up.len() != n || out.len() != n {
            return Err(internal("silu_mul", format!("gate {n}, up {}, out {}", up.len(), out.len())));
        }
        let (mut g, _g1) = gate.device_ptr(&self.stream);
        let (mut u, _g2) = up.device_ptr(&self.stream);
        let (mut o, _g3) = out.device_ptr_mut(&self.stream);
        let (mut stride, mut rows, mut width) = (n as i64, 1i64, n as i64);
        let (mut s2, mut s3) = (stride, stride);
        self.launch(self.ops().silu_mul, blocks(n.div_ceil(CHUNK)), 1, 0, &mut args![g, stride, u, s2, o, s3, rows, width])
    }

    pub fn silu(&self, x: &mut CudaSlice<u16>) -> Result<()> {
        let n = x.len();
        let (mut xp, _g) = x.device_ptr_mut(&self.stream);
        let mut len = n as i64;
        self.launch(self.ops().silu, blocks(n.div_ceil(CHUNK)), 1, 0, &mut args![xp, len])
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
        self.launch(self.ops().add, blocks(n.div_ceil(CHUNK)), 1, 0, &mut args![xp, yp, len])
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
        self.launch(self.ops().add_bias, blocks(rows * width.div_ceil(CHUNK)), 1, 0, &mut args![xp, bp, r, w])
    }

    /// scores[g][j] = sum over rows r and heads h of g's group of exp(q[r][h].k[j][g] /
    /// sqrt(d) - lse[r][h]), with lse over the same keys (from attention).
    #[allow(clippy::too_many_arguments)]
    pub fn query_scores(&self, q: &CudaSlice<u16>, lse: &CudaSlice<f32>, k: &CudaSlice<u16>, q_heads: usize, kv_heads: usize, head_dim: usize, scores: &mut CudaSlice<f32>) -> Result<()> {
        let q_rows = q.len() / (q_heads * head_dim);
        let n = k.len() / (kv_heads * head_dim);
        if (head_dim != 64 && head_dim != 128) || lse.len() != q_rows * q_heads || scores.len() != kv_heads * n || !q_heads.is_multiple_of(kv_heads) {
            return Err(internal("query_scores", format!("q {} / lse {} / k {} / scores {} values for {q_heads}/{kv_heads} heads of {head_dim}", q.len(), lse.len(), k.len(), scores.len())));
        }
        let (mut qp, _g1) = q.device_ptr(&self.stream);
        let (mut lp, _g2) = lse.device_ptr(&self.stream);
        let (mut kp, _g3) = k.device_ptr(&self.stream);
        let (mut sp, _g4) = scores.device_ptr_mut(&self.stream);
        let (mut rows, mut hq, mut hkv, mut keys) = (q_rows as i64, q_heads as i32, kv_heads as i32, n as i64);
        let f = self.ops().scores[if head_dim == 64 { 0 } else { 1 }];
        self.launch(f, n.div_ceil(SCORES_KEYS_PER_BLOCK) as u32, kv_heads as u32, scores_smem(head_dim), &mut args![qp, lp, kp, sp, rows, hq, hkv, keys])
    }

    /// out[i][h] = kv[picked[h][i]][h] for each KV head h.
    pub fn gather_per_head(&self, kv: &CudaSlice<u16>, picked: &[Vec<u32>], head_dim: usize, out: &mut CudaSlice<u16>) -> Result<()> {
        let kv_heads = picked.len();
        let count = picked.first().map_or(0, |p| p.len());
        let n = kv.len() / (kv_heads.max(1) * head_dim.max(1));
        if kv_heads == 0 || picked.iter().any(|p| p.len() != count) || out.len() != count * kv_heads * head_dim {
            return Err(internal("gather_per_head", format!("{kv_heads} heads with unequal picks, or out {} values", out.len())));
        }
        if let Some(bad) = picked.iter().flatten().find(|&&i| i as usize >= n) {
            return Err(internal("gather_per_head", format!("index {bad} outside {n} tokens")));
        }
        let flat: Vec<u32> = picked.iter().flatten().copied().collect();
        let dev = self.upload(&flat)?;
        let (mut kp, _g1) = kv.device_ptr(&self.stream);
        let (mut pp, _g2) = dev.device_ptr(&self.stream);
        let (mut op, _g3) = out.device_ptr_mut(&self.stream);
        let (mut tokens, mut h, mut d, mut c, mut bad) = (n as i64, kv_heads as i32, head_dim as i32, count as i64, 0u64);
        self.launch(self.ops().gather, blocks(count * kv_heads * head_dim.div_ceil(CHUNK)), 1, 0, &mut args![kp, tokens, h, d, pp, c, op, bad])
    }
}
