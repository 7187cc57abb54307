//! One kernel of apb-cuda, run by name on tensors given as little-endian bytes, through the
//! same launcher the engine uses. The GPU checks compute their references elsewhere (PyTorch
//! in float64) and compare; this crate only moves bytes, poisons outputs and times.
//!
//! Write-only outputs are allocated here and filled with NaN first, so an element the kernel
//! did not write shows. Every tensor comes back after one run, inputs too, so a check can see
//! that a read-only input was left alone. With `iterations > 0` the same launch is then
//! timed that many times with GPU events (after the tensors are read back) and the median
//! reported.

use std::collections::BTreeMap;

use apb_cuda::{AttentionKernel, Gpu, GpuSegment};
use apb_engine::error::{EngineError, Result};
use apb_engine::Heads;
use cudarc::driver::CudaSlice;

/// A kernel's parameters: each kernel reads the ones it needs (see `run`).
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub q_heads: Option<usize>,
    pub kv_heads: Option<usize>,
    pub heads: Option<usize>,
    pub head_dim: Option<usize>,
    pub hidden: Option<usize>,
    /// silu_mul: the width of each half of a [gate | up] row.
    pub width: Option<usize>,
    /// passing_select: tokens per row of scores, how many to pick, the excluded token range.
    pub tokens: Option<usize>,
    pub count: Option<usize>,
    pub excluded_start: Option<usize>,
    pub excluded_end: Option<usize>,
    pub eps: Option<f32>,
    /// Attention: "sm90", "portable" or "decode"; by default the one the engine would run.
    pub kernel: Option<String>,
    pub segments: Vec<SegmentParams>,
    pub picked: Vec<Vec<u32>>,
}

#[derive(Debug, Clone, Copy)]
pub struct SegmentParams {
    pub start: usize,
    pub count: usize,
    pub causal: bool,
}

pub struct Run {
    pub gpu: String,
    /// The kernel that ran: for attention "sm90", "portable" or "decode", else the name asked for.
    pub kernel: String,
    pub tensors: BTreeMap<String, Vec<u8>>,
    pub median_ms: Option<f64>,
}

/// The kernels this crate runs.
pub const KERNELS: [&str; 13] = [
    "attention", "merge", "embed", "rms_norm", "add_rms_norm", "rope", "silu_mul", "silu", "add", "add_bias", "query_scores", "passing_select", "gather_per_head",
];

enum Tensor {
    Bf16(CudaSlice<u16>),
    F32(CudaSlice<f32>),
    U32(CudaSlice<u32>),
}

/// Host-side tensors (ids, positions, frequencies: the launchers take them as slices) and
/// device tensors, by name.
struct Tensors {
    host: BTreeMap<String, Vec<u8>>,
    device: BTreeMap<String, Tensor>,
}

fn invalid(path: &str, message: String) -> EngineError {
    EngineError::invalid(path, message)
}

fn from_bytes<T: Copy, const N: usize>(name: &str, bytes: &[u8], convert: fn([u8; N]) -> T) -> Result<Vec<T>> {
    if !bytes.len().is_multiple_of(N) {
        return Err(invalid(name, format!("tensor \"{name}\" has {} bytes, not a whole number of {N}-byte elements", bytes.len())));
    }
    Ok(bytes.chunks_exact(N).map(|c| convert(c.try_into().expect("chunks of N"))).collect())
}

impl Tensors {
    fn bytes(&self, name: &str) -> Result<&[u8]> {
        self.host.get(name).map(Vec::as_slice).ok_or_else(|| invalid(name, format!("this kernel needs a tensor \"{name}\"")))
    }
    fn host_u32(&self, name: &str) -> Result<Vec<u32>> {
        from_bytes(name, self.bytes(name)?, u32::from_le_bytes)
    }
    fn host_f64(&self, name: &str) -> Result<Vec<f64>> {
        from_bytes(name, self.bytes(name)?, f64::from_le_bytes)
    }
    /// Uploads input `name` as bf16 (once).
    fn bf16_in(&mut self, gpu: &Gpu, name: &str) -> Result<()> {
        let v = from_bytes(name, self.bytes(name)?, u16::from_le_bytes)?;
        self.device.insert(name.into(), Tensor::Bf16(gpu.upload(&v)?));
        Ok(())
    }
    fn f32_in(&mut self, gpu: &Gpu, name: &str) -> Result<()> {
        let v = from_bytes(name, self.bytes(name)?, f32::from_le_bytes)?;
        self.device.insert(name.into(), Tensor::F32(gpu.upload(&v)?));
        Ok(())
    }
    /// A write-only output of `len` values, NaN until the kernel writes it.
    fn bf16_out(&mut self, gpu: &Gpu, name: &str, len: usize) -> Result<()> {
        self.device.insert(name.into(), Tensor::Bf16(gpu.upload(&vec![half::bf16::NAN.to_bits(); len])?));
        Ok(())
    }
    fn f32_out(&mut self, gpu: &Gpu, name: &str, len: usize) -> Result<()> {
        self.device.insert(name.into(), Tensor::F32(gpu.upload(&vec![f32::NAN; len])?));
        Ok(())
    }
    /// A write-only index output, u32::MAX (no token) until the kernel writes it.
    fn u32_out(&mut self, gpu: &Gpu, name: &str, len: usize) -> Result<()> {
        self.device.insert(name.into(), Tensor::U32(gpu.upload(&vec![u32::MAX; len])?));
        Ok(())
    }
    fn bf16(&self, name: &str) -> &CudaSlice<u16> {
        match &self.device[name] {
            Tensor::Bf16(t) => t,
            _ => unreachable!("{name} was uploaded as bf16"),
        }
    }
    fn f32(&self, name: &str) -> &CudaSlice<f32> {
        match &self.device[name] {
            Tensor::F32(t) => t,
            _ => unreachable!("{name} was uploaded as f32"),
        }
    }
    /// Takes a device tensor out to write it (put it back with `put`).
    fn take(&mut self, name: &str) -> Tensor {
        self.device.remove(name).expect("uploaded before the launch")
    }
    fn put(&mut self, name: &str, t: Tensor) {
        self.device.insert(name.into(), t);
    }
    fn len(&self, name: &str) -> usize {
        match &self.device[name] {
            Tensor::Bf16(t) => t.len(),
            Tensor::F32(t) => t.len(),
            Tensor::U32(t) => t.len(),
        }
    }
}

fn need(v: Option<usize>, name: &str) -> Result<usize> {
    v.ok_or_else(|| invalid(name, format!("this kernel needs the parameter \"{name}\"")))
}

/// The attention heads the parameters give (qHeads, kvHeads, headDim).
fn heads_of(p: &Params) -> Result<Heads> {
    Ok(Heads { q_heads: need(p.q_heads, "qHeads")?, kv_heads: need(p.kv_heads, "kvHeads")?, head_dim: need(p.head_dim, "headDim")? })
}

fn bf16_mut(t: &mut Tensor) -> &mut CudaSlice<u16> {
    match t {
        Tensor::Bf16(t) => t,
        _ => unreachable!("a bf16 tensor"),
    }
}

fn f32_mut(t: &mut Tensor) -> &mut CudaSlice<f32> {
    match t {
        Tensor::F32(t) => t,
        _ => unreachable!("an f32 tensor"),
    }
}

fn u32_mut(t: &mut Tensor) -> &mut CudaSlice<u32> {
    match t {
        Tensor::U32(t) => t,
        _ => unreachable!("a u32 tensor"),
    }
}

/// The attention kernel asked for by name (None: the one the engine would run), read before
/// the GPU is opened so a wrong name is refused without one.
fn asked_attention_kernel(p: &Params) -> Result<Option<AttentionKernel>> {
    match p.kernel.as_deref() {
        None => Ok(None),
        Some("sm90") => Ok(Some(AttentionKernel::Sm90)),
        Some("portable") => Ok(Some(AttentionKernel::Portable)),
        Some("decode") => Ok(Some(AttentionKernel::Decode)),
        Some(other) => Err(invalid("kernel", format!("unknown attention kernel \"{other}\"; use \"sm90\", \"portable\" or \"decode\""))),
    }
}

/// Uploads the inputs and allocates the outputs `kernel` reads and writes.
fn prepare(gpu: &Gpu, kernel: &str, p: &Params, t: &mut Tensors) -> Result<()> {
    match kernel {
        "attention" => {
            t.bf16_in(gpu, "q")?;
            for i in 0..p.segments.len() {
                t.bf16_in(gpu, &format!("k{i}"))?;
                t.bf16_in(gpu, &format!("v{i}"))?;
            }
            let q = t.len("q");
            t.bf16_out(gpu, "o", q)?;
            t.f32_out(gpu, "lse", q / need(p.head_dim, "headDim")?.max(1))?; // [rows][q_heads]
        }
        "merge" => {
            let parts = t.host.keys().filter(|k| k.starts_with('o') && k[1..].parse::<usize>().is_ok()).count();
            for i in 0..parts {
                t.bf16_in(gpu, &format!("o{i}"))?;
                t.f32_in(gpu, &format!("lse{i}"))?;
            }
            if parts == 0 {
                return Err(invalid("tensors", "merge needs parts o0, lse0, o1, lse1, ...".into()));
            }
            let (o, l) = (t.len("o0"), t.len("lse0"));
            t.bf16_out(gpu, "o", o)?;
            t.f32_out(gpu, "lse", l)?;
        }
        "embed" => {
            t.bf16_in(gpu, "table")?;
            let rows = t.host_u32("ids")?.len();
            t.bf16_out(gpu, "out", rows * need(p.hidden, "hidden")?)?;
        }
        "rms_norm" => {
            t.bf16_in(gpu, "x")?;
            t.bf16_in(gpu, "w")?;
            let n = t.len("x");
            t.bf16_out(gpu, "out", n)?;
        }
        "add_rms_norm" => {
            for name in ["residual", "delta", "w"] {
                t.bf16_in(gpu, name)?;
            }
            let n = t.len("residual");
            t.bf16_out(gpu, "out", n)?;
        }
        "rope" | "silu" => t.bf16_in(gpu, "x")?,
        "silu_mul" => {
            t.bf16_in(gpu, "gateUp")?;
            let n = t.len("gateUp");
            t.bf16_out(gpu, "out", n / 2)?;
        }
        "add" => {
            t.bf16_in(gpu, "x")?;
            t.bf16_in(gpu, "y")?;
        }
        "add_bias" => {
            t.bf16_in(gpu, "x")?;
            t.bf16_in(gpu, "bias")?;
        }
        "query_scores" => {
            t.bf16_in(gpu, "q")?;
            t.f32_in(gpu, "lse")?;
            t.bf16_in(gpu, "k")?;
            let (hkv, d) = (need(p.kv_heads, "kvHeads")?, need(p.head_dim, "headDim")?);
            let n = t.len("k") / (hkv * d).max(1);
            t.f32_out(gpu, "scores", hkv * n)?;
        }
        "passing_select" => {
            t.f32_in(gpu, "scores")?;
            let rows = t.len("scores") / need(p.tokens, "tokens")?.max(1);
            t.u32_out(gpu, "picked", rows * need(p.count, "count")?)?;
        }
        "gather_per_head" => {
            t.bf16_in(gpu, "kv")?;
            let count = p.picked.first().map_or(0, Vec::len);
            t.bf16_out(gpu, "out", count * p.picked.len() * need(p.head_dim, "headDim")?)?;
        }
        other => return Err(invalid("kernel", format!("unknown kernel \"{other}\"; one of {}", KERNELS.join(", ")))),
    }
    Ok(())
}

/// One launch of `kernel` on the prepared tensors; `attention` is the attention kernel `run`
/// chose (for "attention" only).
fn launch(gpu: &Gpu, kernel: &str, p: &Params, attention: Option<AttentionKernel>, t: &mut Tensors) -> Result<()> {
    match kernel {
        "attention" => {
            let heads = heads_of(p)?;
            let which = attention.ok_or_else(|| EngineError::new(apb_engine::error::code::INTERNAL, "kernel", "no attention kernel was chosen"))?;
            let (mut o, mut lse) = (t.take("o"), t.take("lse"));
            let segments: Vec<GpuSegment<'_>> =
                p.segments.iter().enumerate().map(|(i, s)| (t.bf16(&format!("k{i}")), t.bf16(&format!("v{i}")), s.start, s.count, s.causal)).collect();
            let r = gpu.attention_with(which, t.bf16("q"), heads, &segments, bf16_mut(&mut o), f32_mut(&mut lse));
            drop(segments);
            t.put("o", o);
            t.put("lse", lse);
            r
        }
        "merge" => {
            let (mut o, mut lse) = (t.take("o"), t.take("lse"));
            let parts: Vec<(&CudaSlice<u16>, &CudaSlice<f32>)> =
                (0..).map_while(|i| t.device.contains_key(&format!("o{i}")).then(|| (t.bf16(&format!("o{i}")), t.f32(&format!("lse{i}"))))).collect();
            let r = gpu.merge(&parts, need(p.heads, "heads")?, need(p.head_dim, "headDim")?, bf16_mut(&mut o), f32_mut(&mut lse));
            drop(parts);
            t.put("o", o);
            t.put("lse", lse);
            r
        }
        "embed" => {
            let ids = t.host_u32("ids")?;
            let mut out = t.take("out");
            let r = gpu.embed(t.bf16("table"), need(p.hidden, "hidden")?, &ids, bf16_mut(&mut out));
            t.put("out", out);
            r
        }
        "rms_norm" => {
            let mut out = t.take("out");
            let r = gpu.rms_norm(t.bf16("x"), t.bf16("w"), p.eps.unwrap_or(1e-5), bf16_mut(&mut out));
            t.put("out", out);
            r
        }
        "add_rms_norm" => {
            let (mut residual, mut out) = (t.take("residual"), t.take("out"));
            let r = gpu.add_rms_norm(bf16_mut(&mut residual), t.bf16("delta"), t.bf16("w"), p.eps.unwrap_or(1e-5), bf16_mut(&mut out));
            t.put("residual", residual);
            t.put("out", out);
            r
        }
        "rope" => {
            let (positions, inv_freq) = (t.host_u32("positions")?, t.host_f64("invFreq")?);
            let mut x = t.take("x");
            let r = gpu.rope(bf16_mut(&mut x), need(p.heads, "heads")?, need(p.head_dim, "headDim")?, &positions, &inv_freq);
            t.put("x", x);
            r
        }
        "silu_mul" => {
            let mut out = t.take("out");
            let r = gpu.silu_mul(t.bf16("gateUp"), need(p.width, "width")?, bf16_mut(&mut out));
            t.put("out", out);
            r
        }
        "silu" => {
            let mut x = t.take("x");
            let r = gpu.silu(bf16_mut(&mut x));
            t.put("x", x);
            r
        }
        "add" | "add_bias" => {
            let mut x = t.take("x");
            let r = if kernel == "add" { gpu.add(bf16_mut(&mut x), t.bf16("y")) } else { gpu.add_bias(bf16_mut(&mut x), t.bf16("bias")) };
            t.put("x", x);
            r
        }
        "query_scores" => {
            let mut scores = t.take("scores");
            let r = gpu.query_scores(t.bf16("q"), t.f32("lse"), t.bf16("k"), need(p.q_heads, "qHeads")?, need(p.kv_heads, "kvHeads")?, need(p.head_dim, "headDim")?, f32_mut(&mut scores));
            t.put("scores", scores);
            r
        }
        "passing_select" => {
            let excluded = p.excluded_start.unwrap_or(0)..p.excluded_end.unwrap_or(0);
            let mut picked = t.take("picked");
            let r = gpu.passing_select(t.f32("scores"), need(p.tokens, "tokens")?, excluded, need(p.count, "count")?, u32_mut(&mut picked));
            t.put("picked", picked);
            r
        }
        "gather_per_head" => {
            let mut out = t.take("out");
            let r = gpu.gather_per_head(t.bf16("kv"), &p.picked, need(p.head_dim, "headDim")?, bf16_mut(&mut out));
            t.put("out", out);
            r
        }
        other => Err(invalid("kernel", format!("unknown kernel \"{other}\""))),
    }
}

/// Runs `kernel` once on `tensors` on GPU 0 and returns every tensor afterwards; then, with
/// `iterations > 0`, times that many more launches.
pub fn run(kernel: &str, params: &Params, tensors: BTreeMap<String, Vec<u8>>, iterations: usize) -> Result<Run> {
    if !KERNELS.contains(&kernel) {
        return Err(invalid("kernel", format!("unknown kernel \"{kernel}\"; one of {}", KERNELS.join(", "))));
    }
    let asked = if kernel == "attention" { asked_attention_kernel(params)? } else { None };
    let gpu = Gpu::open(0)?;
    let attention = match (kernel, asked) {
        ("attention", Some(k)) => Some(k),
        ("attention", None) => {
            let heads = heads_of(params)?;
            let rows = tensors.get("q").map_or(0, |q| q.len() / 2) / (heads.q_heads * heads.head_dim).max(1);
            Some(gpu.kernel_for(rows, heads))
        }
        _ => None,
    };
    let ran = attention.map_or_else(|| kernel.to_string(), |k| k.name().to_string());
    let mut t = Tensors { host: tensors, device: BTreeMap::new() };
    prepare(&gpu, kernel, params, &mut t)?;
    launch(&gpu, kernel, params, attention, &mut t)?;
    gpu.synchronize()?;
    let mut out = t.host.clone();
    for (name, tensor) in &t.device {
        let bytes = match tensor {
            Tensor::Bf16(d) => gpu.download(d)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::F32(d) => gpu.download(d)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            Tensor::U32(d) => gpu.download(d)?.iter().flat_map(|v| v.to_le_bytes()).collect(),
        };
        out.insert(name.clone(), bytes);
    }
    let median_ms = if iterations > 0 {
        let mut times = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            times.push(gpu.time_ms(|| launch(&gpu, kernel, params, attention, &mut t))?);
        }
        times.sort_by(f64::total_cmp);
        Some(times[times.len() / 2])
    } else {
        None
    };
    Ok(Run { gpu: gpu.name.clone(), kernel: ran, tensors: out, median_ms })
}
