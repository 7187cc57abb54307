//! The engine's Backend on one GPU: activations and weights in bf16, LSE in fp32, GEMMs on
//! cuBLAS, attention and merge on apb's kernels, the rest on cuda/ops.cu. Every op queues
//! work on the GPU's stream; `synchronize` (called where the engine ends a timed phase)
//! waits for it.

use apb_engine::backend::{column_rows, concat_column_rows, Backend, Segment};
use apb_engine::config::ModelConfig;
use apb_engine::Heads;
use apb_engine::error::{code, EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut, DeviceRepr};

use crate::blas::{Blas, OutType};
use crate::gpu::{driver, Gpu, CUDA_UNAVAILABLE};

/// A buffer on the GPU: bf16 values (activations, weights, K/V, O) or fp32 (LSE, scores).
pub enum GpuBuf {
    Bf16(CudaSlice<u16>),
    F32(CudaSlice<f32>),
}

impl GpuBuf {
    fn len(&self) -> usize {
        match self {
            GpuBuf::Bf16(b) => b.len(),
            GpuBuf::F32(b) => b.len(),
        }
    }
}

fn want_bf16<'a>(op: &str, b: &'a GpuBuf) -> Result<&'a CudaSlice<u16>> {
    match b {
        GpuBuf::Bf16(s) => Ok(s),
        GpuBuf::F32(_) => Err(EngineError::new(code::INTERNAL, op, format!("{op}: expected a bf16 buffer, got fp32"))),
    }
}

fn want_bf16_mut<'a>(op: &str, b: &'a mut GpuBuf) -> Result<&'a mut CudaSlice<u16>> {
    match b {
        GpuBuf::Bf16(s) => Ok(s),
        GpuBuf::F32(_) => Err(EngineError::new(code::INTERNAL, op, format!("{op}: expected a bf16 buffer, got fp32"))),
    }
}

fn want_f32<'a>(op: &str, b: &'a GpuBuf) -> Result<&'a CudaSlice<f32>> {
    match b {
        GpuBuf::F32(s) => Ok(s),
        GpuBuf::Bf16(_) => Err(EngineError::new(code::INTERNAL, op, format!("{op}: expected an fp32 buffer, got bf16"))),
    }
}

/// `f` over `src` into a new vector, on all cores for large buffers (weights, blocks).
fn convert<A: Copy + Sync, B: Copy + Default + Send>(src: &[A], f: impl Fn(A) -> B + Sync) -> Vec<B> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let chunk = src.len().div_ceil(threads).max(1 << 16);
    // Small buffers (decode's partial outputs, every token and layer) skip the threads.
    if src.len() <= chunk {
        return src.iter().map(|x| f(*x)).collect();
    }
    let mut out = vec![B::default(); src.len()];
    let f = &f;
    std::thread::scope(|s| {
        for (from, to) in src.chunks(chunk).zip(out.chunks_mut(chunk)) {
            s.spawn(move || from.iter().zip(to).for_each(|(x, y)| *y = f(*x)));
        }
    });
    out
}

/// f32 -> bf16 bits (round to nearest even).
fn to_bf16(data: &[f32]) -> Vec<u16> {
    convert(data, |x| half::bf16::from_f32(x).to_bits())
}

/// bf16 bits -> f32 (exact).
fn to_f32(data: &[u16]) -> Vec<f32> {
    convert(data, |x| half::bf16::from_bits(x).to_f32())
}

pub struct Cuda {
    pub gpu: Gpu,
    blas: Blas,
}

impl Cuda {
    /// Opens GPU `ordinal` with its kernels and cuBLAS, or says what is missing.
    pub fn open(ordinal: usize) -> Result<Cuda> {
        let gpu = Gpu::open(ordinal)?;
        let blas = Blas::new(gpu.stream())?;
        Ok(Cuda { gpu, blas })
    }

    /// Refuses, before anything is uploaded, a model the kernels cannot run (its head_dim) or
    /// whose bf16 weights (`weight_elements` values, plus the lm_head copy of tied embeddings
    /// and 1 GiB for the work of a short prompt) do not fit in this GPU's free memory.
    pub fn check_fits(&self, config: &ModelConfig, weight_elements: f64) -> Result<()> {
        let d = config.head_dim;
        if !crate::attention::HEAD_DIMS.contains(&d) {
            return Err(EngineError::new(
                CUDA_UNAVAILABLE,
                "headDim",
                format!("the CUDA backend's attention kernels take head_dim {:?}; this model has {d}. Run it with --backend cpu", crate::attention::HEAD_DIMS),
            ));
        }
        let mut needed = weight_elements * 2.0 + (1u64 << 30) as f64;
        if config.tied_embeddings {
            needed += config.vocab as f64 * config.hidden as f64 * 2.0;
        }
        let (_, total) = self.memory()?;
        let free = self.gpu.available_bytes()?;
        if needed > free as f64 {
            let gib = |b: f64| b / (1u64 << 30) as f64;
            return Err(EngineError::new(
                code::GPU_MEMORY,
                "model",
                format!("the model needs about {:.1} GiB on the GPU (bf16 weights + 1 GiB of work) but {} has {:.1} GiB free of {:.1} GiB", gib(needed), self.gpu.name, gib(free as f64), gib(total as f64)),
            ));
        }
        Ok(())
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.gpu.memory()
    }

    fn alloc<T: DeviceRepr>(&self, len: usize) -> Result<CudaSlice<T>> {
        // SAFETY: every caller fully writes the buffer (a kernel, GEMM or copy covering all
        // of it) before anything reads it.
        unsafe { self.gpu.stream().alloc::<T>(len) }.map_err(driver("allocating GPU memory"))
    }

    /// The query-aware passing scores [kv_heads][n] on the device, or None when there is
    /// nothing to score (no keys or no query rows). Each (row, head)'s LSE over the keys comes
    /// from the attention kernel (V unused).
    fn scores_on_device(&self, q: &CudaSlice<u16>, k: &CudaSlice<u16>, heads: Heads) -> Result<Option<CudaSlice<f32>>> {
        let n = k.len() / (heads.kv_heads * heads.head_dim);
        if n == 0 || q.is_empty() {
            return Ok(None);
        }
        let mut o = self.alloc::<u16>(q.len())?;
        let mut lse = self.alloc::<f32>(q.len() / heads.head_dim)?;
        self.gpu.attention(q, heads, &[(k, k, 0, n, false)], &mut o, &mut lse)?;
        let mut scores = self.alloc::<f32>(heads.kv_heads * n)?;
        self.gpu.query_scores(q, &lse, k, heads.q_heads, heads.kv_heads, heads.head_dim, &mut scores)?;
        Ok(Some(scores))
    }

    /// The query-aware passing picks [kv_heads][count] on the device: scores, pooling and
    /// the selection all run there. None when there is nothing to rank (no picks, keys or
    /// query rows): equal scores give the earliest eligible tokens, which the host knows.
    fn picks_on_device(&self, q: &CudaSlice<u16>, k: &CudaSlice<u16>, heads: Heads, count: usize, excluded: std::ops::Range<usize>) -> Result<Option<CudaSlice<u32>>> {
        let scores = match count {
            0 => None,
            _ => self.scores_on_device(q, k, heads)?,
        };
        let Some(scores) = scores else { return Ok(None) };
        let n = k.len() / (heads.kv_heads * heads.head_dim);
        let mut picked = self.alloc::<u32>(heads.kv_heads * count)?;
        self.gpu.passing_select(&scores, n, excluded, count, &mut picked)?;
        Ok(Some(picked))
    }

    fn copy_rows<T: DeviceRepr>(&self, parts: &[(&CudaSlice<T>, usize, usize)]) -> Result<CudaSlice<T>> {
        let total = parts.iter().map(|(_, _, n)| n).sum();
        let mut out = self.alloc::<T>(total)?;
        let mut at = 0;
        for (src, start, n) in parts {
            if *n > 0 {
                self.gpu.stream().memcpy_dtod(&src.slice(*start..start + n), &mut out.slice_mut(at..at + n)).map_err(driver("copying on the GPU"))?;
            }
            at += n;
        }
        Ok(out)
    }

    /// A strided 2-D copy on the stream: `height` rows of `width` values, from column `src_x`
    /// of `src`'s rows of `src_pitch` values into column `dst_x` of `dst`'s rows of
    /// `dst_pitch` values (the driver's cuMemcpy2DAsync: a head range out of [rows][width],
    /// or a column block into its place, with no kernel of ours).
    fn copy_2d<T: DeviceRepr>(&self, src: &CudaSlice<T>, (src_pitch, src_x): (usize, usize), dst: &mut CudaSlice<T>, (dst_pitch, dst_x): (usize, usize), width: usize, height: usize) -> Result<()> {
        if width == 0 || height == 0 {
            return Ok(());
        }
        // Every row read and written lies inside its buffer, and a pitch fits the driver's
        // limit (a signed 32-bit count of bytes on every GPU apb runs on).
        let elem = std::mem::size_of::<T>();
        let fits = |pitch: usize, x: usize, len: usize| {
            x + width <= pitch && (height - 1).checked_mul(pitch).and_then(|r| r.checked_add(x + width)).is_some_and(|end| end <= len) && pitch * elem <= i32::MAX as usize
        };
        if !fits(src_pitch, src_x, src.len()) || !fits(dst_pitch, dst_x, dst.len()) {
            return Err(EngineError::new(
                code::INTERNAL,
                "copy_2d",
                format!("copy_2d: {height} rows of {width} values from column {src_x} of rows of {src_pitch} ({} values) to column {dst_x} of rows of {dst_pitch} ({} values)", src.len(), dst.len()),
            ));
        }
        self.gpu.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let stream = self.gpu.stream();
        let (src_ptr, _read) = src.device_ptr(stream);
        let (dst_ptr, _write) = dst.device_ptr_mut(stream);
        let copy = sys::CUDA_MEMCPY2D {
            srcXInBytes: src_x * elem,
            srcY: 0,
            srcMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            srcHost: std::ptr::null(),
            srcDevice: src_ptr,
            srcArray: std::ptr::null_mut(),
            srcPitch: src_pitch * elem,
            dstXInBytes: dst_x * elem,
            dstY: 0,
            dstMemoryType: sys::CUmemorytype::CU_MEMORYTYPE_DEVICE,
            dstHost: std::ptr::null_mut(),
            dstDevice: dst_ptr,
            dstArray: std::ptr::null_mut(),
            dstPitch: dst_pitch * elem,
            WidthInBytes: width * elem,
            Height: height,
        };
        // SAFETY: both pointers are live device allocations of this context (current on this
        // thread) and every byte the copy touches lies inside them (checked above); the
        // guards order the copy after earlier work on these buffers and keep them alive in
        // stream order; the descriptor is read before the call returns.
        unsafe { sys::cuMemcpy2DAsync_v2(&copy, stream.cu_stream()) }.result().map_err(driver("copying columns on the GPU"))
    }

    /// Columns [start, start + count) of `x`'s rows of `width` values, `rows` of them.
    fn take_columns<T: DeviceRepr>(&self, x: &CudaSlice<T>, width: usize, start: usize, count: usize, rows: usize) -> Result<CudaSlice<T>> {
        let mut out = self.alloc::<T>(rows * count)?;
        self.copy_2d(x, (width, start), &mut out, (count, 0), count, rows)?;
        Ok(out)
    }

    /// Column blocks (each [rows][width]) side by side: [rows][sum of widths].
    fn join_columns<T: DeviceRepr>(&self, parts: &[(&CudaSlice<T>, usize)], rows: usize) -> Result<CudaSlice<T>> {
        let total: usize = parts.iter().map(|(_, w)| w).sum();
        let mut out = self.alloc::<T>(rows * total)?;
        let mut at = 0;
        for (part, width) in parts {
            self.copy_2d(part, (*width, 0), &mut out, (total, at), *width, rows)?;
            at += width;
        }
        Ok(out)
    }
}

impl Backend for Cuda {
    type Buf = GpuBuf;

    fn name(&self) -> &'static str {
        "cuda"
    }
    fn upload(&self, data: Vec<f32>) -> Result<GpuBuf> {
        Ok(GpuBuf::Bf16(self.gpu.upload(&to_bf16(&data))?))
    }
    fn unseen_lse(&self, len: usize) -> Result<GpuBuf> {
        Ok(GpuBuf::F32(self.gpu.filled_f32(len, f32::NEG_INFINITY)?))
    }
    fn upload_lse(&self, data: Vec<f32>) -> Result<GpuBuf> {
        Ok(GpuBuf::F32(self.gpu.upload(&data)?))
    }
    fn free_memory(&self) -> Result<Option<(u64, usize)>> {
        self.gpu.synchronize()?;
        Ok(Some((self.gpu.available_bytes()?, 2)))
    }
    fn zeros(&self, len: usize) -> Result<GpuBuf> {
        Ok(GpuBuf::Bf16(self.gpu.zeros(len)?))
    }
    fn synchronize(&self) -> Result<()> {
        self.gpu.synchronize()
    }
    fn attention_multiprocessors(&self, head_dim: usize) -> Option<usize> {
        (self.gpu.attention_kernel(head_dim) == crate::attention::AttentionKernel::Sm90).then_some(self.gpu.sm_count)
    }
    fn download(&self, buf: &GpuBuf) -> Result<Vec<f32>> {
        match buf {
            GpuBuf::Bf16(b) => Ok(to_f32(&self.gpu.download(b)?)),
            GpuBuf::F32(b) => self.gpu.download(b),
        }
    }
    fn len(&self, buf: &GpuBuf) -> usize {
        buf.len()
    }
    fn linear_weight(&self, w: Vec<f32>, outp: usize, inp: usize) -> Result<GpuBuf> {
        if w.len() != outp * inp {
            return Err(EngineError::new(code::INTERNAL, "linear_weight", format!("{} values for [{outp}][{inp}]", w.len())));
        }
        // cuBLAS reads the checkpoint layout [out][in] as is (see Blas::linear).
        self.upload(w)
    }

    fn embed(&self, table: &GpuBuf, hidden: usize, ids: &[u32]) -> Result<GpuBuf> {
        let mut out = self.alloc::<u16>(ids.len() * hidden)?;
        self.gpu.embed(want_bf16("embed", table)?, hidden, ids, &mut out)?;
        Ok(GpuBuf::Bf16(out))
    }
    fn rms_norm(&self, x: &GpuBuf, w: &GpuBuf, eps: f32) -> Result<GpuBuf> {
        let x = want_bf16("rms_norm", x)?;
        let mut out = self.alloc::<u16>(x.len())?;
        self.gpu.rms_norm(x, want_bf16("rms_norm", w)?, eps, &mut out)?;
        Ok(GpuBuf::Bf16(out))
    }
    fn add_rms_norm(&self, x: &mut GpuBuf, delta: &GpuBuf, w: &GpuBuf, eps: f32) -> Result<GpuBuf> {
        let x = want_bf16_mut("add_rms_norm", x)?;
        let mut out = self.alloc::<u16>(x.len())?;
        self.gpu.add_rms_norm(x, want_bf16("add_rms_norm", delta)?, want_bf16("add_rms_norm", w)?, eps, &mut out)?;
        Ok(GpuBuf::Bf16(out))
    }
    fn linear(&self, x: &GpuBuf, inp: usize, w: &GpuBuf, outp: usize, bias: Option<&GpuBuf>) -> Result<GpuBuf> {
        let x = want_bf16("linear", x)?;
        let rows = x.len() / inp.max(1);
        let mut y = self.alloc::<u16>(rows * outp)?;
        self.blas.linear(self.gpu.stream(), x, want_bf16("linear", w)?, &mut y, OutType::Bf16, rows, inp, outp)?;
        if let Some(b) = bias {
            self.gpu.add_bias(&mut y, want_bf16("linear", b)?)?;
        }
        Ok(GpuBuf::Bf16(y))
    }
    fn rope(&self, x: &mut GpuBuf, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()> {
        self.gpu.rope(want_bf16_mut("rope", x)?, heads, head_dim, positions, inv_freq)
    }
    fn silu_mul(&self, gate_up: &GpuBuf, width: usize) -> Result<GpuBuf> {
        let gate_up = want_bf16("silu_mul", gate_up)?;
        let mut out = self.alloc::<u16>(gate_up.len() / 2)?;
        self.gpu.silu_mul(gate_up, width, &mut out)?;
        Ok(GpuBuf::Bf16(out))
    }
    fn silu(&self, x: &mut GpuBuf) -> Result<()> {
        self.gpu.silu(want_bf16_mut("silu", x)?)
    }
    fn add(&self, x: &mut GpuBuf, y: &GpuBuf) -> Result<()> {
        self.gpu.add(want_bf16_mut("add", x)?, want_bf16("add", y)?)
    }
    fn attention(&self, q: &GpuBuf, heads: Heads, segments: &[Segment<'_, GpuBuf>]) -> Result<(GpuBuf, GpuBuf)> {
        let q = want_bf16("attention", q)?;
        let segs = segments
            .iter()
            .map(|s| Ok((want_bf16("attention", s.k)?, want_bf16("attention", s.v)?, s.start, s.count, s.causal)))
            .collect::<Result<Vec<_>>>()?;
        let mut o = self.alloc::<u16>(q.len())?;
        let mut lse = self.alloc::<f32>(q.len() / heads.head_dim)?;
        self.gpu.attention(q, heads, &segs, &mut o, &mut lse)?;
        Ok((GpuBuf::Bf16(o), GpuBuf::F32(lse)))
    }
    fn merge(&self, o: &mut GpuBuf, lse: &mut GpuBuf, o2: &GpuBuf, lse2: &GpuBuf, head_dim: usize) -> Result<()> {
        let (a, la) = (want_bf16("merge", o)?, want_f32("merge", lse)?);
        let mut out_o = self.alloc::<u16>(a.len())?;
        let mut out_lse = self.alloc::<f32>(la.len())?;
        self.gpu.merge(&[(a, la), (want_bf16("merge", o2)?, want_f32("merge", lse2)?)], 1, head_dim, &mut out_o, &mut out_lse)?;
        *o = GpuBuf::Bf16(out_o);
        *lse = GpuBuf::F32(out_lse);
        Ok(())
    }
    fn rows(&self, x: &GpuBuf, width: usize, start: usize, count: usize) -> Result<GpuBuf> {
        if (start + count) * width > x.len() {
            return Err(EngineError::new(code::INTERNAL, "rows", format!("rows {start}..{} of width {width} outside {} values", start + count, x.len())));
        }
        Ok(match x {
            GpuBuf::Bf16(b) => GpuBuf::Bf16(self.copy_rows(&[(b, start * width, count * width)])?),
            GpuBuf::F32(b) => GpuBuf::F32(self.copy_rows(&[(b, start * width, count * width)])?),
        })
    }
    fn concat_rows(&self, parts: &[&GpuBuf]) -> Result<GpuBuf> {
        if parts.iter().all(|p| matches!(p, GpuBuf::F32(_))) && !parts.is_empty() {
            let list = parts.iter().map(|p| Ok((want_f32("concat_rows", p)?, 0, p.len()))).collect::<Result<Vec<_>>>()?;
            return Ok(GpuBuf::F32(self.copy_rows(&list)?));
        }
        let list = parts.iter().map(|p| Ok((want_bf16("concat_rows", p)?, 0, p.len()))).collect::<Result<Vec<_>>>()?;
        Ok(GpuBuf::Bf16(self.copy_rows(&list)?))
    }
    fn write_rows(&self, dst: &mut GpuBuf, width: usize, row_start: usize, src: &GpuBuf) -> Result<()> {
        let (at, n) = (row_start * width, src.len());
        if at + n > dst.len() {
            return Err(EngineError::new(code::INTERNAL, "write_rows", format!("rows from {row_start} of width {width}: {n} values past the {} of the buffer", dst.len())));
        }
        if n == 0 {
            return Ok(());
        }
        let copied = match (dst, src) {
            (GpuBuf::Bf16(d), GpuBuf::Bf16(s)) => self.gpu.stream().memcpy_dtod(s, &mut d.slice_mut(at..at + n)),
            (GpuBuf::F32(d), GpuBuf::F32(s)) => self.gpu.stream().memcpy_dtod(s, &mut d.slice_mut(at..at + n)),
            _ => return Err(EngineError::new(code::INTERNAL, "write_rows", "write_rows: the buffers differ in precision")),
        };
        copied.map_err(driver("copying on the GPU"))
    }
    fn columns(&self, x: &GpuBuf, width: usize, start: usize, count: usize) -> Result<GpuBuf> {
        let rows = column_rows(x.len(), width, start, count).map_err(|what| EngineError::new(code::INTERNAL, "columns", format!("columns: {what}")))?;
        Ok(match x {
            GpuBuf::Bf16(b) => GpuBuf::Bf16(self.take_columns(b, width, start, count, rows)?),
            GpuBuf::F32(b) => GpuBuf::F32(self.take_columns(b, width, start, count, rows)?),
        })
    }
    fn concat_columns(&self, parts: &[(&GpuBuf, usize)]) -> Result<GpuBuf> {
        let shapes: Vec<(usize, usize)> = parts.iter().map(|(p, w)| (p.len(), *w)).collect();
        let rows = concat_column_rows(&shapes).map_err(|what| EngineError::new(code::INTERNAL, "concat_columns", format!("concat_columns: {what}")))?;
        if parts.iter().all(|(p, _)| matches!(p, GpuBuf::F32(_))) {
            let list = parts.iter().map(|(p, w)| Ok((want_f32("concat_columns", p)?, *w))).collect::<Result<Vec<_>>>()?;
            return Ok(GpuBuf::F32(self.join_columns(&list, rows)?));
        }
        let list = parts.iter().map(|(p, w)| Ok((want_bf16("concat_columns", p)?, *w))).collect::<Result<Vec<_>>>()?;
        Ok(GpuBuf::Bf16(self.join_columns(&list, rows)?))
    }
    fn query_scores(&self, q_rows: &GpuBuf, k: &GpuBuf, heads: Heads) -> Result<Vec<f32>> {
        let (q, k) = (want_bf16("query_scores", q_rows)?, want_bf16("query_scores", k)?);
        let n = k.len() / (heads.kv_heads * heads.head_dim);
        match self.scores_on_device(q, k, heads)? {
            Some(scores) => self.gpu.download(&scores),
            None => Ok(vec![0.0; heads.kv_heads * n]),
        }
    }
    fn pick_passing(&self, q_rows: &GpuBuf, k: &GpuBuf, heads: Heads, count: usize, excluded: std::ops::Range<usize>) -> Result<Vec<Vec<u32>>> {
        let (q, k) = (want_bf16("pick_passing", q_rows)?, want_bf16("pick_passing", k)?);
        match self.picks_on_device(q, k, heads, count, excluded.clone())? {
            Some(picked) => Ok(self.gpu.download(&picked)?.chunks(count).map(<[u32]>::to_vec).collect()),
            None => Ok(apb_engine::passing::earliest(heads.kv_heads, k.len() / (heads.kv_heads * heads.head_dim), count, excluded)),
        }
    }
    fn gather_per_head(&self, kv: &GpuBuf, picked: &[Vec<u32>], head_dim: usize) -> Result<GpuBuf> {
        let count = picked.first().map_or(0, |p| p.len());
        let mut out = self.alloc::<u16>(count * picked.len() * head_dim)?;
        self.gpu.gather_per_head(want_bf16("gather_per_head", kv)?, picked, head_dim, &mut out)?;
        Ok(GpuBuf::Bf16(out))
    }
    fn passing_block(&self, q_rows: &GpuBuf, (k, v): (&GpuBuf, &GpuBuf), heads: Heads, count: usize, excluded: std::ops::Range<usize>) -> Result<(GpuBuf, GpuBuf)> {
        let (q, kb, vb) = (want_bf16("passing_block", q_rows)?, want_bf16("passing_block", k)?, want_bf16("passing_block", v)?);
        // The picks index K's tokens; V must have as many (gather_picked reads V at them).
        if kb.len() != vb.len() {
            return Err(EngineError::new(code::INTERNAL, "passing_block", format!("keys ({} values) and values ({}) differ", kb.len(), vb.len())));
        }
        let Some(picked) = self.picks_on_device(q, kb, heads, count, excluded.clone())? else {
            let picked = apb_engine::passing::earliest(heads.kv_heads, kb.len() / (heads.kv_heads * heads.head_dim), count, excluded);
            return Ok((self.gather_per_head(k, &picked, heads.head_dim)?, self.gather_per_head(v, &picked, heads.head_dim)?));
        };
        let block = |kv: &CudaSlice<u16>| -> Result<GpuBuf> {
            let mut out = self.alloc::<u16>(count * heads.kv_heads * heads.head_dim)?;
            self.gpu.gather_picked(kv, &picked, heads.kv_heads, heads.head_dim, &mut out)?;
            Ok(GpuBuf::Bf16(out))
        };
        Ok((block(kb)?, block(vb)?))
    }
}
