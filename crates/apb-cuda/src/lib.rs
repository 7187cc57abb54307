//! The CUDA kernels, embedded as fatbins and launched through the driver API. The driver is
//! loaded at run time (cudarc's dynamic loading), so this builds and runs where there is no
//! GPU, and says so instead of failing.

use std::ffi::{c_void, CString};
use std::sync::Arc;
use std::time::Instant;

use apb_engine::cpu::attention::{attention as cpu_attention, Heads, KeySegment};
use apb_engine::error::{EngineError, Result};
use cudarc::driver::{result, sys, CudaContext, CudaSlice, CudaStream, DevicePtr, DevicePtrMut};

static ATTENTION_FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention.fatbin"));

pub const CUDA_UNAVAILABLE: &str = "CUDA_UNAVAILABLE";
const MAX_SEGMENTS: usize = 4;
const BLOCK_ROWS: usize = 128;
const THREADS: u32 = 128;
const PAD: usize = 8;

fn unavailable(message: String) -> EngineError {
    EngineError::new(CUDA_UNAVAILABLE, "backend", message)
}

fn driver(what: &str) -> impl Fn(result::DriverError) -> EngineError + '_ {
    move |e| EngineError::new("CUDA", what, format!("{what} failed: {e:?}"))
}

/// Whether this build carries the kernels.
pub fn kernels_built() -> bool {
    cfg!(apb_kernels) && !ATTENTION_FATBIN.is_empty()
}

/// One key segment as the kernel takes it (cuda/attention.h: apb_segment).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Segment {
    k: u64,
    v: u64,
    start: i64,
    count: i64,
    causal: i32,
}

/// cuda/attention.h: apb_segment_list, passed by value.
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct SegmentList {
    s: [Segment; MAX_SEGMENTS],
    n: i32,
}

/// A key segment on the GPU: K, V ([tokens][kv_heads * head_dim] bf16), first token,
/// count, and whether it is the (last, bottom-right aligned) causal one.
pub type GpuSegment<'a> = (&'a CudaSlice<u16>, &'a CudaSlice<u16>, usize, usize, bool);

pub struct Gpu {
    pub name: String,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    attention: [sys::CUfunction; 2],
}

// SAFETY: CUfunction handles are plain driver handles valid in `ctx`, which lives as long as
// this value; every use binds `ctx` to the calling thread first.
unsafe impl Send for Gpu {}
unsafe impl Sync for Gpu {}

impl Gpu {
    /// Opens GPU `ordinal` and loads the kernels, or says why it cannot.
    pub fn open(ordinal: usize) -> Result<Gpu> {
        if !kernels_built() {
            return Err(unavailable("this build has no CUDA kernels (nvcc was not found when it was built)".into()));
        }
        // SAFETY: only probes whether libcuda can be loaded; cudarc would panic otherwise.
        if !unsafe { sys::is_culib_present() } {
            return Err(unavailable("no CUDA driver found (libcuda.so.1); this machine has no NVIDIA GPU driver".into()));
        }
        let ctx = CudaContext::new(ordinal).map_err(driver("opening the GPU"))?;
        let name = ctx.name().unwrap_or_else(|_| "unknown GPU".into());
        let stream = ctx.default_stream();
        ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        // SAFETY: the image is a complete fatbin produced by nvcc, kept alive for the whole
        // program (a static); the module stays loaded as long as the context.
        let module = unsafe { result::module::load_data(ATTENTION_FATBIN.as_ptr() as *const c_void) }.map_err(driver("loading the kernels"))?;
        let mut functions = [std::ptr::null_mut(); 2];
        for (slot, (name, dim)) in functions.iter_mut().zip([("apb_attention_d64", 64usize), ("apb_attention_d128", 128)]) {
            // SAFETY: `module` was just loaded and the names are the kernels' extern "C" entries.
            let f = unsafe { result::module::get_function(module, CString::new(name).expect("no NUL")) }.map_err(driver("finding a kernel"))?;
            let smem = ((BLOCK_ROWS + 128) * (dim + PAD) * 2) as i32;
            // SAFETY: `f` is a valid function of the current context.
            unsafe {
                result::function::set_function_attribute(f, sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem)
            }
            .map_err(driver("raising the shared-memory limit"))?;
            *slot = f;
        }
        Ok(Gpu { name, ctx, stream, attention: functions })
    }

    pub fn upload(&self, data: &[u16]) -> Result<CudaSlice<u16>> {
        self.stream.memcpy_stod(data).map_err(driver("copying to the GPU"))
    }

    /// Attention of `q` ([rows][q_heads * head_dim] bf16) over `segments` (k, v, start,
    /// count, causal), writing `o` and `lse`, checked like the C launcher.
    #[allow(clippy::too_many_arguments)]
    pub fn attention(
        &self,
        q: &CudaSlice<u16>,
        heads: Heads,
        segments: &[GpuSegment<'_>],
        o: &mut CudaSlice<u16>,
        lse: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let d = heads.head_dim;
        let which = match d {
            64 => 0,
            128 => 1,
            _ => return Err(EngineError::invalid("headDim", format!("the GPU kernel takes head_dim 64 or 128, got {d}"))),
        };
        if heads.kv_heads == 0 || !heads.q_heads.is_multiple_of(heads.kv_heads) || segments.len() > MAX_SEGMENTS {
            return Err(EngineError::invalid("segments", "kv_heads must divide q_heads, and at most 4 segments"));
        }
        let rows = q.len() / (heads.q_heads * d);
        if o.len() != q.len() || lse.len() != rows * heads.q_heads {
            return Err(EngineError::invalid("o", "O must match Q and LSE must hold rows x q_heads values"));
        }
        let kvw = heads.kv_heads * d;
        let mut list = SegmentList { n: segments.len() as i32, ..SegmentList::default() };
        let mut guards = Vec::new();
        for (i, (k, v, start, count, causal)) in segments.iter().enumerate() {
            if k.len() != v.len() || (start + count) * kvw > k.len() || (*causal && i + 1 != segments.len()) {
                return Err(EngineError::invalid("segments", format!("segment {i} lies outside its K/V buffer or a causal segment is not last")));
            }
            let (kp, kg) = k.device_ptr(&self.stream);
            let (vp, vg) = v.device_ptr(&self.stream);
            guards.push(kg);
            guards.push(vg);
            list.s[i] = Segment { k: kp, v: vp, start: *start as i64, count: *count as i64, causal: *causal as i32 };
        }
        if rows == 0 {
            return Ok(());
        }
        let (qp, _qg) = q.device_ptr(&self.stream);
        let (op, _og) = o.device_ptr_mut(&self.stream);
        let (lp, _lg) = lse.device_ptr_mut(&self.stream);
        let (mut rows_i, mut hq, mut hkv) = (rows as i64, heads.q_heads as i32, heads.kv_heads as i32);
        let (mut qp, mut op, mut lp) = (qp, op, lp);
        let mut params: [*mut c_void; 7] = [
            &mut qp as *mut _ as *mut c_void,
            &mut op as *mut _ as *mut c_void,
            &mut lp as *mut _ as *mut c_void,
            &mut rows_i as *mut _ as *mut c_void,
            &mut hq as *mut _ as *mut c_void,
            &mut hkv as *mut _ as *mut c_void,
            &mut list as *mut _ as *mut c_void,
        ];
        let grid = (rows.div_ceil(BLOCK_ROWS) as u32, heads.q_heads as u32, 1);
        let smem = ((BLOCK_ROWS + 128) * (d + PAD) * 2) as u32;
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        // SAFETY: the parameters match the kernel's signature in cuda/attention.h (pointers,
        // i64, i32, i32, apb_segment_list by value, #[repr(C)] above); every buffer was sized
        // and checked above and outlives the launch (the guards and `self` hold them).
        unsafe { result::launch_kernel(self.attention[which], grid, (THREADS, 1, 1), smem, self.stream.cu_stream(), &mut params) }
            .map_err(driver("launching attention"))?;
        drop(guards);
        Ok(())
    }

    pub fn synchronize(&self) -> Result<()> {
        self.stream.synchronize().map_err(driver("waiting for the GPU"))
    }
}

/// A check of the GPU kernel against the CPU reference (apb-engine's attention) on fresh
/// random bf16 inputs, and its speed.
#[derive(Debug, Clone)]
pub struct AttentionCheck {
    pub o_rel_err: f64,
    pub lse_max_abs_err: f64,
    pub ms: f64,
    pub tflops: f64,
}

fn bf16_bits(x: f32) -> u16 {
    half::bf16::from_f32(x).to_bits()
}

pub fn check_attention(gpu: &Gpu, rows: usize, heads: Heads, prefix: &[usize], seed: u64) -> Result<AttentionCheck> {
    let mut state = seed | 1;
    let mut rand = |n: usize| -> Vec<u16> {
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bf16_bits(((state >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) as f32)
            })
            .collect()
    };
    let (qw, kvw) = (heads.q_heads * heads.head_dim, heads.kv_heads * heads.head_dim);
    let q = rand(rows * qw);
    // Full segments of the given lengths, then the local block causally (APB's local rows).
    let mut host_kv: Vec<(Vec<u16>, Vec<u16>, usize, bool)> = prefix.iter().map(|&n| (rand(n * kvw), rand(n * kvw), n, false)).collect();
    host_kv.push((rand(rows * kvw), rand(rows * kvw), rows, true));
    let dq = gpu.upload(&q)?;
    let dev: Vec<(CudaSlice<u16>, CudaSlice<u16>)> = host_kv.iter().map(|(k, v, _, _)| Ok((gpu.upload(k)?, gpu.upload(v)?))).collect::<Result<_>>()?;
    let segs: Vec<_> = dev.iter().zip(&host_kv).map(|((k, v), (_, _, n, c))| (k, v, 0usize, *n, *c)).collect();
    let mut o = gpu.stream.alloc_zeros::<u16>(q.len()).map_err(driver("allocating O"))?;
    let mut lse = gpu.stream.alloc_zeros::<f32>(rows * heads.q_heads).map_err(driver("allocating LSE"))?;
    gpu.attention(&dq, heads, &segs, &mut o, &mut lse)?;
    gpu.synchronize()?;
    let iterations = 5;
    let t = Instant::now();
    for _ in 0..iterations {
        gpu.attention(&dq, heads, &segs, &mut o, &mut lse)?;
    }
    gpu.synchronize()?;
    let ms = t.elapsed().as_secs_f64() * 1e3 / iterations as f64;
    let o_gpu: Vec<u16> = gpu.stream.memcpy_dtov(&o).map_err(driver("copying O back"))?;
    let lse_gpu: Vec<f32> = gpu.stream.memcpy_dtov(&lse).map_err(driver("copying LSE back"))?;

    let f32s = |v: &[u16]| v.iter().map(|&b| half::bf16::from_bits(b).to_f32()).collect::<Vec<f32>>();
    let cpu_kv: Vec<(Vec<f32>, Vec<f32>)> = host_kv.iter().map(|(k, v, _, _)| (f32s(k), f32s(v))).collect();
    let cpu_segs: Vec<KeySegment> =
        cpu_kv.iter().zip(&host_kv).map(|((k, v), (_, _, n, c))| KeySegment { k, v, start: 0, count: *n, causal: *c }).collect();
    let mut o_ref = vec![0.0f32; q.len()];
    let mut lse_ref = vec![0.0f32; rows * heads.q_heads];
    cpu_attention(&f32s(&q), heads, &cpu_segs, &mut o_ref, &mut lse_ref);
    let o_gpu = f32s(&o_gpu);
    let num: f64 = o_gpu.iter().zip(&o_ref).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let den: f64 = o_ref.iter().map(|b| (*b as f64).powi(2)).sum();
    let lse_err = lse_gpu.iter().zip(&lse_ref).filter(|(_, b)| b.is_finite()).map(|(a, b)| (a - b).abs() as f64).fold(0.0, f64::max);
    let full: usize = prefix.iter().sum();
    let flops = 4.0 * heads.q_heads as f64 * rows as f64 * (full as f64 + rows as f64 / 2.0) * heads.head_dim as f64;
    Ok(AttentionCheck { o_rel_err: (num / den.max(1e-30)).sqrt(), lse_max_abs_err: lse_err, ms, tflops: flops / ms / 1e9 })
}
