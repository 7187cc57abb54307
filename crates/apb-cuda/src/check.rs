//! The kernels against apb-engine's CPU reference on fresh random bf16 inputs, and their
//! speed measured with GPU events.

use apb_engine::cpu::attention::{attention as cpu_attention, merge as cpu_merge, KeySegment};
use apb_engine::Heads;
use apb_engine::error::Result;
use cudarc::driver::CudaSlice;

use crate::attention::AttentionKernel;
use crate::gpu::Gpu;

#[derive(Debug, Clone)]
pub struct AttentionCheck {
    pub kernel: AttentionKernel,
    pub o_rel_err: f64,
    pub lse_max_abs_err: f64,
    /// Rows whose LSE is finite on one side and not on the other (must be 0).
    pub lse_mismatched_rows: usize,
}

#[derive(Debug, Clone)]
pub struct AttentionTiming {
    pub kernel: AttentionKernel,
    pub median_ms: f64,
    /// FLOPs counted as FlashAttention does (causal keys as half), over the median time.
    pub tflops: f64,
}

#[derive(Debug, Clone)]
pub struct MergeCheck {
    pub o_rel_err: f64,
    pub lse_max_abs_err: f64,
    pub lse_mismatched_rows: usize,
}

fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

fn f32s(v: &[u16]) -> Vec<f32> {
    v.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect()
}

/// Uniform values in [-2, 2) as bf16 bits (xorshift; the seed decides everything).
struct Random(u64);

impl Random {
    fn bf16(&mut self, n: usize) -> Vec<u16> {
        (0..n).map(|_| bf16_bits((self.next() * 4.0 - 2.0) as f32)).collect()
    }
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-30)).sqrt()
}

fn lse_errors(got: &[f32], want: &[f32]) -> (f64, usize) {
    let max = got.iter().zip(want).filter(|(a, b)| a.is_finite() && b.is_finite()).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    let mismatched = got.iter().zip(want).filter(|(a, b)| a.is_finite() != b.is_finite()).count();
    (max, mismatched)
}

/// APB's local-row shape on the GPU: full segments of the `prefix` lengths, then the local
/// block causally; Q and every K/V fresh from `seed`.
struct Case {
    q: Vec<u16>,
    kv: Vec<(Vec<u16>, Vec<u16>, usize, bool)>,
}

fn case(rows: usize, heads: Heads, prefix: &[usize], seed: u64) -> Case {
    let mut r = Random(seed | 1);
    let (qw, kvw) = (heads.q_heads * heads.head_dim, heads.kv_heads * heads.head_dim);
    let q = r.bf16(rows * qw);
    let mut kv: Vec<_> = prefix.iter().map(|&n| (r.bf16(n * kvw), r.bf16(n * kvw), n, false)).collect();
    kv.push((r.bf16(rows * kvw), r.bf16(rows * kvw), rows, true));
    Case { q, kv }
}

struct OnGpu {
    q: CudaSlice<u16>,
    kv: Vec<(CudaSlice<u16>, CudaSlice<u16>)>,
    o: CudaSlice<u16>,
    lse: CudaSlice<f32>,
}

fn upload(gpu: &Gpu, c: &Case, heads: Heads) -> Result<OnGpu> {
    let kv = c.kv.iter().map(|(k, v, _, _)| Ok((gpu.upload(k)?, gpu.upload(v)?))).collect::<Result<_>>()?;
    // Poisoned with NaN (0xFFFF) so an unwritten element cannot pass.
    let o = gpu.upload(&vec![0xFFFFu16; c.q.len()])?;
    let lse = gpu.upload(&vec![f32::NAN; c.q.len() / heads.head_dim])?;
    Ok(OnGpu { q: gpu.upload(&c.q)?, kv, o, lse })
}

fn run(gpu: &Gpu, kernel: AttentionKernel, c: &Case, g: &mut OnGpu, heads: Heads) -> Result<()> {
    let segs: Vec<_> = g.kv.iter().zip(&c.kv).map(|((k, v), (_, _, n, causal))| (k, v, 0usize, *n, *causal)).collect();
    gpu.attention_with(kernel, &g.q, heads, &segs, &mut g.o, &mut g.lse)
}

/// `kernel` against the CPU attention on a fresh APB local-row shape.
pub fn check_attention(gpu: &Gpu, kernel: AttentionKernel, rows: usize, heads: Heads, prefix: &[usize], seed: u64) -> Result<AttentionCheck> {
    let c = case(rows, heads, prefix, seed);
    let mut g = upload(gpu, &c, heads)?;
    run(gpu, kernel, &c, &mut g, heads)?;
    let o_gpu = f32s(&gpu.download(&g.o)?);
    let lse_gpu = gpu.download(&g.lse)?;
    let cpu_kv: Vec<(Vec<f32>, Vec<f32>)> = c.kv.iter().map(|(k, v, _, _)| (f32s(k), f32s(v))).collect();
    let cpu_segs: Vec<KeySegment> = cpu_kv.iter().zip(&c.kv).map(|((k, v), (_, _, n, causal))| KeySegment { k, v, start: 0, count: *n, causal: *causal }).collect();
    let mut o_ref = vec![0.0f32; c.q.len()];
    let mut lse_ref = vec![0.0f32; lse_gpu.len()];
    cpu_attention(&f32s(&c.q), heads, &cpu_segs, &mut o_ref, &mut lse_ref);
    let (lse_max_abs_err, lse_mismatched_rows) = lse_errors(&lse_gpu, &lse_ref);
    let o_rel_err = if o_gpu.iter().any(|x| x.is_nan()) { f64::NAN } else { rel_err(&o_gpu, &o_ref) };
    Ok(AttentionCheck { kernel, o_rel_err, lse_max_abs_err, lse_mismatched_rows })
}

/// The median time of `kernel` on an APB local-row shape over `iterations` event-timed runs
/// (after one warm-up).
pub fn time_attention(gpu: &Gpu, kernel: AttentionKernel, rows: usize, heads: Heads, prefix: &[usize], iterations: usize) -> Result<AttentionTiming> {
    let c = case(rows, heads, prefix, 0x5eed);
    let mut g = upload(gpu, &c, heads)?;
    run(gpu, kernel, &c, &mut g, heads)?;
    let mut times = (0..iterations.max(1)).map(|_| gpu.time_ms(|| run(gpu, kernel, &c, &mut g, heads))).collect::<Result<Vec<f64>>>()?;
    times.sort_by(|a, b| a.total_cmp(b));
    let median_ms = times[times.len() / 2];
    let full: usize = prefix.iter().sum();
    let flops = 4.0 * heads.q_heads as f64 * rows as f64 * (full as f64 + rows as f64 / 2.0) * heads.head_dim as f64;
    Ok(AttentionTiming { kernel, median_ms, tflops: flops / median_ms / 1e9 })
}

/// The merge kernel against the CPU merge: `parts` fresh partial outputs, some (row, head)s
/// of each with LSE -inf, and one row that no part saw.
pub fn check_merge(gpu: &Gpu, rows: usize, heads: usize, head_dim: usize, parts: usize, seed: u64) -> Result<MergeCheck> {
    let mut r = Random(seed | 1);
    let pairs = rows * heads;
    let host: Vec<(Vec<u16>, Vec<f32>)> = (0..parts)
        .map(|p| {
            let lse = (0..pairs).map(|i| if i % 7 == p % 7 || i / heads == rows / 2 { f32::NEG_INFINITY } else { (r.next() * 12.0 - 6.0) as f32 }).collect();
            (r.bf16(pairs * head_dim), lse)
        })
        .collect();
    let dev = host.iter().map(|(o, l)| Ok((gpu.upload(o)?, gpu.upload(l)?))).collect::<Result<Vec<_>>>()?;
    let mut out_o = gpu.upload(&vec![0xFFFFu16; pairs * head_dim])?;
    let mut out_lse = gpu.upload(&vec![f32::NAN; pairs])?;
    let refs: Vec<_> = dev.iter().map(|(o, l)| (o, l)).collect();
    gpu.merge(&refs, heads, head_dim, &mut out_o, &mut out_lse)?;
    let o_gpu = f32s(&gpu.download(&out_o)?);
    let lse_gpu = gpu.download(&out_lse)?;
    let mut o_ref = f32s(&host[0].0);
    let mut lse_ref = host[0].1.clone();
    for (o, l) in &host[1..] {
        cpu_merge(&mut o_ref, &mut lse_ref, &f32s(o), l, head_dim);
    }
    // The CPU merge leaves rows nobody saw as they were; the contract is O = 0 there.
    for (i, l) in lse_ref.iter().enumerate() {
        if *l == f32::NEG_INFINITY {
            o_ref[i * head_dim..(i + 1) * head_dim].iter_mut().for_each(|x| *x = 0.0);
        }
    }
    let (lse_max_abs_err, lse_mismatched_rows) = lse_errors(&lse_gpu, &lse_ref);
    let o_rel_err = if o_gpu.iter().any(|x| x.is_nan()) { f64::NAN } else { rel_err(&o_gpu, &o_ref) };
    Ok(MergeCheck { o_rel_err, lse_max_abs_err, lse_mismatched_rows })
}
