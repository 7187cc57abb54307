//! What the transformer forward needs from a device. The forward is written once against
//! this trait; the CPU backend implements it in `cpu`, the CUDA backend in apb-cuda.
//! Buffers hold f32 values on the CPU and bf16 activations (fp32 LSE) on the GPU; uploads and
//! downloads speak f32. Shapes are passed explicitly and checked by each backend.

use crate::heads::Heads;
use crate::error::Result;

/// A run of keys (and their values) a range of query rows attends to, read in place.
pub struct Segment<'a, B> {
    pub k: &'a B,
    pub v: &'a B,
    pub start: usize,
    pub count: usize,
    /// Bottom-right aligned causal mask relative to the query rows.
    pub causal: bool,
}

pub trait Backend: Send + Sync {
    /// Owned and thread-safe, so emulated hosts can hand buffers to each other in place.
    type Buf: Send + Sync + 'static;

    fn name(&self) -> &'static str;
    fn upload(&self, data: Vec<f32>) -> Result<Self::Buf>;
    /// Uploads log-sum-exp values (kept in fp32 where activations are not).
    fn upload_lse(&self, data: Vec<f32>) -> Result<Self::Buf> {
        self.upload(data)
    }
    /// Log-sum-exp values of rows that see no keys: `len` values of -inf, made where the
    /// buffers live (a device fills them itself; nothing is uploaded mid-layer).
    fn unseen_lse(&self, len: usize) -> Result<Self::Buf> {
        self.upload_lse(vec![f32::NEG_INFINITY; len])
    }
    /// A buffer of `len` zeros, made where the buffers live.
    fn zeros(&self, len: usize) -> Result<Self::Buf> {
        self.upload(vec![0.0; len])
    }
    /// Free device memory in bytes and the bytes of one stored value, where memory is
    /// scarce enough to plan (a GPU); None where it is not checked (the CPU).
    fn free_memory(&self) -> Result<Option<(u64, usize)>> {
        Ok(None)
    }
    /// The multiprocessors that prefill attention at `head_dim` fills, where its kernel cuts
    /// work as the planner's block model says (apb-plan's kernel.rs: the Hopper kernel's
    /// blocks of query rows walking 128-key tiles); None where it does not (the CPU).
    fn attention_multiprocessors(&self, _head_dim: usize) -> Option<usize> {
        None
    }
    /// Waits until all queued work is done: phase timings of an asynchronous device end here.
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn download(&self, buf: &Self::Buf) -> Result<Vec<f32>>;
    fn len(&self, buf: &Self::Buf) -> usize;
    /// A linear layer's weight as stored in checkpoints, [out][in]; the backend keeps it in
    /// the layout its GEMM wants.
    fn linear_weight(&self, w: Vec<f32>, outp: usize, inp: usize) -> Result<Self::Buf>;

    fn embed(&self, table: &Self::Buf, hidden: usize, ids: &[u32]) -> Result<Self::Buf>;
    fn rms_norm(&self, x: &Self::Buf, w: &Self::Buf, eps: f32) -> Result<Self::Buf>;
    /// x += delta, then the RMSNorm of the new x: a residual add and the norm after it, which
    /// a backend may fuse into one pass (the result must equal the two steps').
    fn add_rms_norm(&self, x: &mut Self::Buf, delta: &Self::Buf, w: &Self::Buf, eps: f32) -> Result<Self::Buf> {
        self.add(x, delta)?;
        self.rms_norm(x, w, eps)
    }
    /// x [rows][inp] times W^T plus bias: [rows][outp].
    fn linear(&self, x: &Self::Buf, inp: usize, w: &Self::Buf, outp: usize, bias: Option<&Self::Buf>) -> Result<Self::Buf>;
    fn rope(&self, x: &mut Self::Buf, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()>;
    /// silu(gate) * up from one [rows][2 * width] buffer whose rows are [gate | up] (the
    /// stacked gate and up projections' output): [rows][width].
    fn silu_mul(&self, gate_up: &Self::Buf, width: usize) -> Result<Self::Buf>;
    fn silu(&self, x: &mut Self::Buf) -> Result<()>;
    fn add(&self, x: &mut Self::Buf, y: &Self::Buf) -> Result<()>;
    /// Attention of `q` ([rows][q_heads * head_dim]) over `segments`: (O, LSE [rows][q_heads]).
    fn attention(&self, q: &Self::Buf, heads: Heads, segments: &[Segment<'_, Self::Buf>]) -> Result<(Self::Buf, Self::Buf)>;
    /// Merges partial attention (o2, lse2) into (o, lse).
    fn merge(&self, o: &mut Self::Buf, lse: &mut Self::Buf, o2: &Self::Buf, lse2: &Self::Buf, head_dim: usize) -> Result<()>;
    /// Rows [start, start + count) of a [rows][width] buffer.
    fn rows(&self, x: &Self::Buf, width: usize, start: usize, count: usize) -> Result<Self::Buf>;
    fn concat_rows(&self, parts: &[&Self::Buf]) -> Result<Self::Buf>;
    /// Writes the rows of `src` into `dst` ([rows][width]) from row `row_start` on, in place
    /// (a KV cache taking new rows into its spare ones).
    fn write_rows(&self, dst: &mut Self::Buf, width: usize, row_start: usize, src: &Self::Buf) -> Result<()>;
    /// Columns [start, start + count) of every row of a [rows][width] buffer: [rows][count]
    /// (a range of heads, as Ulysses hands each host its heads of every row).
    fn columns(&self, x: &Self::Buf, width: usize, start: usize, count: usize) -> Result<Self::Buf>;
    /// Column blocks side by side: each part is [rows][its width], all with the same rows;
    /// the result is [rows][sum of the widths] (Ulysses putting every host's heads back together).
    fn concat_columns(&self, parts: &[(&Self::Buf, usize)]) -> Result<Self::Buf>;
    /// The query-aware passing score, [kv_heads][n], on the host.
    fn query_scores(&self, q_rows: &Self::Buf, k: &Self::Buf, heads: Heads) -> Result<Vec<f32>>;
    /// The passing block's tokens by the query-aware score: for each KV head, the `count`
    /// tokens outside `excluded` whose scores, max-pooled along the sequence, are highest (ties
    /// to the earlier token), ascending. A device backend keeps the scores on the device.
    fn pick_passing(&self, q_rows: &Self::Buf, k: &Self::Buf, heads: Heads, count: usize, excluded: std::ops::Range<usize>) -> Result<Vec<Vec<u32>>> {
        let scores = self.query_scores(q_rows, k, heads)?;
        let n = scores.len() / heads.kv_heads.max(1);
        Ok(crate::passing::pick(scores, n, count, excluded))
    }
    fn gather_per_head(&self, kv: &Self::Buf, picked: &[Vec<u32>], head_dim: usize) -> Result<Self::Buf>;
    /// A passing block by the query-aware score: the K and V rows ([count][kv_heads][head_dim]
    /// each) of the tokens `pick_passing` picks. A device backend keeps the picks on the
    /// device too, so the layer never waits mid-way for them to come back.
    fn passing_block(&self, q_rows: &Self::Buf, (k, v): (&Self::Buf, &Self::Buf), heads: Heads, count: usize, excluded: std::ops::Range<usize>) -> Result<(Self::Buf, Self::Buf)> {
        let picked = self.pick_passing(q_rows, k, heads, count, excluded)?;
        Ok((self.gather_per_head(k, &picked, heads.head_dim)?, self.gather_per_head(v, &picked, heads.head_dim)?))
    }
}

/// The rows of a [rows][width] buffer of `len` values whose columns [start, start + count)
/// `Backend::columns` takes, or what is wrong with the shape (every backend checks the same way).
pub fn column_rows(len: usize, width: usize, start: usize, count: usize) -> std::result::Result<usize, String> {
    if width == 0 || !len.is_multiple_of(width) {
        return Err(format!("{len} values are not rows of width {width}"));
    }
    match start.checked_add(count) {
        Some(end) if end <= width => Ok(len / width),
        _ => Err(format!("columns [{start}, +{count}) outside rows of width {width}")),
    }
}

/// The rows every part of `Backend::concat_columns` has (each part as (values, width)), or
/// what is wrong with them.
pub fn concat_column_rows(parts: &[(usize, usize)]) -> std::result::Result<usize, String> {
    let Some(&(len, width)) = parts.first() else { return Err("no column blocks to put together".into()) };
    if width == 0 || !len.is_multiple_of(width) {
        return Err(format!("the first block's {len} values are not rows of width {width}"));
    }
    let rows = len / width;
    match parts.iter().position(|&(l, w)| w == 0 || w.checked_mul(rows) != Some(l)) {
        Some(i) => Err(format!("block {i} has {} values for width {}; the first block has {rows} rows", parts[i].0, parts[i].1)),
        None => Ok(rows),
    }
}
