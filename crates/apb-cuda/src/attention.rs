//! The attention kernels' launcher: the shapes every attention kernel must be given, the
//! choice between the Hopper kernel (attention_sm90.rs) and the portable one, and the portable
//! one's launch (cuda/attention.cu: mma.sync, compute capability 8.0+, head_dim 64 and 128).

use apb_engine::Heads;
use apb_engine::error::{EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut, SyncOnDrop};

use crate::attention_decode;
use crate::gpu::{function, module, Gpu, LaunchShape};

pub(crate) static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention.fatbin"));

/// The head sizes the attention kernels are built for (both kernels take both).
pub const HEAD_DIMS: [usize; 2] = [64, 128];
/// At most this many key segments (passing blocks, anchor, local block): APB_MAX_SEGMENTS.
pub(crate) const MAX_SEGMENTS: usize = 4;
// cuda/attention.cu: 128-row blocks of 128 threads, Q + two 64-key K/V tiles, rows padded.
const BLOCK_ROWS: usize = 128;
const THREADS: u32 = 128;
const PAD: usize = 8;
const SMEM_ROWS: usize = BLOCK_ROWS + 2 * 64;

fn smem_bytes(head_dim: usize) -> usize {
    SMEM_ROWS * (head_dim + PAD) * 2
}

/// An attention kernel's two entry points, `<name>_d64` and `<name>_d128`: every attention
/// kernel is built for the head dims in HEAD_DIMS.
pub(crate) struct ByHeadDim {
    d64: sys::CUfunction,
    d128: sys::CUfunction,
}

impl ByHeadDim {
    /// Loads both entry points of `name` from `fatbin`, each allowed `smem_bytes(head_dim)` of
    /// dynamic shared memory.
    pub(crate) fn load(fatbin: &'static [u8], name: &str, smem_bytes: impl Fn(usize) -> usize) -> Result<ByHeadDim> {
        let m = module(fatbin)?;
        Ok(ByHeadDim { d64: function(m, &format!("{name}_d64"), smem_bytes(64))?, d128: function(m, &format!("{name}_d128"), smem_bytes(128))? })
    }

    /// The entry point for `head_dim`, which the caller checked is one of HEAD_DIMS.
    pub(crate) fn get(&self, head_dim: usize) -> sys::CUfunction {
        if head_dim == 64 {
            self.d64
        } else {
            self.d128
        }
    }
}

/// The portable kernel's entry points.
pub(crate) fn load() -> Result<ByHeadDim> {
    ByHeadDim::load(FATBIN, "apb_attention", smem_bytes)
}

/// Which attention kernel runs: for prefill the Hopper one (TMA + wgmma, compute capability
/// 9.0) or the portable mma.sync one (8.0+); for a few query rows (decode) the decode kernel
/// (attention_decode.rs, 8.0+). All take head_dim 64 and 128.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    Sm90,
    Portable,
    Decode,
}

impl AttentionKernel {
    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Sm90 => "sm90",
            AttentionKernel::Portable => "portable",
            AttentionKernel::Decode => "decode",
        }
    }

    /// The prefill kernel a GPU of compute capability `major.minor` runs, or None where no
    /// kernel of apb runs (before 8.0).
    pub fn for_capability(major: u32, minor: u32) -> Option<AttentionKernel> {
        match (major, minor) {
            (9, 0) => Some(AttentionKernel::Sm90),
            (m, _) if m >= 8 => Some(AttentionKernel::Portable),
            _ => None,
        }
    }
}

/// A key segment on the GPU: K, V ([tokens][kv_heads * head_dim] bf16), first token,
/// count, and whether it is the (last, bottom-right aligned) causal one.
pub type GpuSegment<'a> = (&'a CudaSlice<u16>, &'a CudaSlice<u16>, usize, usize, bool);

/// apb_segment (cuda/common.cuh).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct Segment {
    k: u64,
    v: u64,
    start: i64,
    count: i64,
    causal: i32,
}
c_layout!(Segment as "apb_segment" in "common.cuh": size 40, align 8, k @ 0, v @ 8, start @ 16, count @ 24, causal @ 32);

/// apb_segment_list (cuda/common.cuh), passed by value.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub(crate) struct SegmentList {
    s: [Segment; MAX_SEGMENTS],
    n: i32,
}
c_layout!(SegmentList as "apb_segment_list" in "common.cuh": size 168, align 8, s @ 0, n @ 160);

impl Gpu {
    /// The attention kernel this GPU runs for prefill rows of `head_dim`.
    pub fn attention_kernel(&self, head_dim: usize) -> AttentionKernel {
        if self.kernels.attention_sm90.is_some() && HEAD_DIMS.contains(&head_dim) {
            AttentionKernel::Sm90
        } else {
            AttentionKernel::Portable
        }
    }

    /// Attention of `q` ([rows][q_heads * head_dim] bf16) over `segments`, writing `o` and
    /// `lse` ([rows][q_heads], natural log), with the fastest kernel this GPU has: the decode
    /// kernel where the rows of a KV head's query heads pack into it, else the prefill one.
    pub fn attention(&self, q: &CudaSlice<u16>, heads: Heads, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let rows = q.len() / (heads.q_heads * heads.head_dim).max(1);
        self.attention_with(self.kernel_for(rows, heads), q, heads, segments, o, lse)
    }

    /// The kernel `attention` runs for `rows` query rows of `heads`.
    pub fn kernel_for(&self, rows: usize, heads: Heads) -> AttentionKernel {
        if HEAD_DIMS.contains(&heads.head_dim) && attention_decode::packs(rows, heads) {
            AttentionKernel::Decode
        } else {
            self.attention_kernel(heads.head_dim)
        }
    }

    /// Attention with a chosen kernel (checks and benchmarks compare the two). Every shape
    /// either kernel relies on is checked here, before either launches.
    pub fn attention_with(
        &self,
        kernel: AttentionKernel,
        q: &CudaSlice<u16>,
        heads: Heads,
        segments: &[GpuSegment<'_>],
        o: &mut CudaSlice<u16>,
        lse: &mut CudaSlice<f32>,
    ) -> Result<()> {
        let d = heads.head_dim;
        if !HEAD_DIMS.contains(&d) {
            return Err(EngineError::invalid("headDim", format!("the GPU kernel takes head_dim {HEAD_DIMS:?}, got {d}")));
        }
        if kernel == AttentionKernel::Sm90 && self.kernels.attention_sm90.is_none() {
            return Err(EngineError::invalid("kernel", format!("the sm90 kernel needs compute capability 9.0 ({} is {}.{})", self.name, self.compute_capability.0, self.compute_capability.1)));
        }
        if heads.q_heads == 0 || heads.kv_heads == 0 || !heads.q_heads.is_multiple_of(heads.kv_heads) {
            return Err(EngineError::invalid("heads", format!("kv_heads ({}) must divide q_heads ({})", heads.kv_heads, heads.q_heads)));
        }
        if segments.len() > MAX_SEGMENTS {
            return Err(EngineError::invalid("segments", format!("at most {MAX_SEGMENTS} key segments, got {}", segments.len())));
        }
        if !q.len().is_multiple_of(heads.q_heads * d) {
            return Err(EngineError::invalid("q", "Q must hold whole rows of q_heads x head_dim values"));
        }
        let rows = q.len() / (heads.q_heads * d);
        if o.len() != q.len() || lse.len() != rows * heads.q_heads {
            return Err(EngineError::invalid("o", "O must match Q and LSE must hold rows x q_heads values"));
        }
        let kvw = heads.kv_heads * d;
        for (i, (k, v, start, count, causal)) in segments.iter().enumerate() {
            if k.len() != v.len() || (start + count) * kvw > k.len() || (*causal && i + 1 != segments.len()) {
                return Err(EngineError::invalid("segments", format!("segment {i} lies outside its K/V buffer or a causal segment is not last")));
            }
        }
        if kernel == AttentionKernel::Decode && !attention_decode::packs(rows, heads) {
            let packed = rows * (heads.q_heads / heads.kv_heads);
            return Err(EngineError::invalid("rows", format!("the decode kernel packs at most {} rows x query heads per KV head, got {rows} x {} = {packed}; use a prefill kernel", attention_decode::MAX_PACKED_ROWS, heads.q_heads / heads.kv_heads)));
        }
        if rows == 0 {
            return Ok(());
        }
        match kernel {
            AttentionKernel::Sm90 => self.launch_sm90(q, heads, rows, segments, o, lse),
            AttentionKernel::Portable => self.launch_portable(q, heads, rows, segments, o, lse),
            AttentionKernel::Decode => self.launch_decode(q, heads, rows, segments, o, lse),
        }
    }

    /// The segments as the portable and decode kernels take them (apb_segment_list), and the
    /// guards that keep their buffers usable until the launch is queued.
    pub(crate) fn segment_list<'a>(&'a self, segments: &'a [GpuSegment<'_>]) -> (SegmentList, Vec<SyncOnDrop<'a>>) {
        let mut list = SegmentList { n: segments.len() as i32, ..SegmentList::default() };
        let (addresses, guards) = self.segment_addresses(segments);
        for (i, ((k, v), (_, _, start, count, causal))) in addresses.into_iter().zip(segments).enumerate() {
            list.s[i] = Segment { k, v, start: *start as i64, count: *count as i64, causal: *causal as i32 };
        }
        (list, guards)
    }

    /// Each segment's K and V device addresses, and the guards that keep them usable until
    /// the launch is queued.
    pub(crate) fn segment_addresses<'a>(&'a self, segments: &'a [GpuSegment<'_>]) -> (Vec<(u64, u64)>, Vec<SyncOnDrop<'a>>) {
        let mut guards = Vec::with_capacity(2 * segments.len());
        let addresses = segments
            .iter()
            .map(|(k, v, ..)| {
                let (kp, kg) = k.device_ptr(&self.stream);
                let (vp, vg) = v.device_ptr(&self.stream);
                guards.push(kg);
                guards.push(vg);
                (kp, vp)
            })
            .collect();
        (addresses, guards)
    }

    /// The portable kernel, on shapes `attention_with` checked.
    fn launch_portable(&self, q: &CudaSlice<u16>, heads: Heads, rows: usize, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let d = heads.head_dim;
        let (mut list, _guards) = self.segment_list(segments);
        let (mut qp, _qg) = q.device_ptr(&self.stream);
        let (mut op, _og) = o.device_ptr_mut(&self.stream);
        let (mut lp, _lg) = lse.device_ptr_mut(&self.stream);
        let (mut rows_i, mut hq, mut hkv) = (rows as i64, heads.q_heads as i32, heads.kv_heads as i32);
        let f = self.kernels.attention.get(d);
        let shape = LaunchShape { grid: (rows.div_ceil(BLOCK_ROWS), heads.q_heads, 1), threads: THREADS, smem_bytes: smem_bytes(d) };
        // SAFETY: the parameters are apb_attention_d64/d128's (const bf16* q, bf16* o, float*
        // lse, int64_t rows, int32_t q_heads, int32_t kv_heads, apb_segment_list by value, its
        // layout asserted above); attention_with checked every buffer against the shape, and the
        // guards and `self` keep them alive until the launch is queued.
        unsafe { self.launch("attention", f, shape, &mut args![qp, op, lp, rows_i, hq, hkv, list]) }
    }
}
