//! Launching the attention and merge kernels (cuda/attention.h, cuda/attention_sm90.h,
//! cuda/merge.h): shapes are checked here, before any launch.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use apb_engine::Heads;
use apb_engine::error::{EngineError, Result};
use cudarc::driver::{result, sys, CudaSlice, DevicePtr, DevicePtrMut, SyncOnDrop};

use crate::gpu::{driver, Gpu};

const MAX_SEGMENTS: usize = 4;
const MAX_MERGE_PARTS: usize = 16;
const MERGE_THREADS: u32 = 256;
// cuda/attention.h: 128-row blocks of 128 threads, Q + two 64-key K/V tiles, rows padded.
const PORTABLE_BLOCK_ROWS: usize = 128;
const PORTABLE_THREADS: u32 = 128;
pub(crate) const PORTABLE_PAD: usize = 8;
pub(crate) const PORTABLE_SMEM_ROWS: usize = PORTABLE_BLOCK_ROWS + 128;
// cuda/attention_sm90.h.
const SM90_BLOCK_ROWS: usize = 128;
const SM90_THREADS: u32 = 384;
pub(crate) const SM90_SMEM_BYTES: usize = 5 * 32768 + 2048;

/// Which attention kernel runs: the Hopper one (TMA + wgmma, head_dim 128, compute
/// capability 9.0) or the portable mma.sync one (8.0+, head_dim 64 and 128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttentionKernel {
    Sm90,
    Portable,
}

impl AttentionKernel {
    pub fn name(self) -> &'static str {
        match self {
            AttentionKernel::Sm90 => "sm90",
            AttentionKernel::Portable => "portable",
        }
    }
}

/// A key segment on the GPU: K, V ([tokens][kv_heads * head_dim] bf16), first token,
/// count, and whether it is the (last, bottom-right aligned) causal one.
pub type GpuSegment<'a> = (&'a CudaSlice<u16>, &'a CudaSlice<u16>, usize, usize, bool);

/// cuda/attention.h: apb_segment.
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

/// cuda/attention_sm90.h: apb_sm90_params, the Hopper kernel's only parameter.
#[repr(C)]
struct Sm90Params {
    q: sys::CUtensorMap,
    k: [sys::CUtensorMap; MAX_SEGMENTS],
    v: [sys::CUtensorMap; MAX_SEGMENTS],
    o: u64,
    lse: u64,
    rows: i64,
    count: [i64; MAX_SEGMENTS],
    causal: [i32; MAX_SEGMENTS],
    segment_count: i32,
    q_heads: i32,
    kv_heads: i32,
}

/// cuda/merge.h: apb_merge_parts, passed by value.
#[repr(C)]
struct MergeParts {
    o: [u64; MAX_MERGE_PARTS],
    lse: [u64; MAX_MERGE_PARTS],
}

/// A tensor map over a [rows][columns] bf16 matrix at `base`, read in 128-byte-swizzled boxes
/// of 64 columns x 128 rows (what the Hopper kernel's TMA copies expect).
fn tensor_map(base: u64, columns: usize, rows: usize) -> Result<sys::CUtensorMap> {
    let dims = [columns as u64, rows as u64];
    let strides = [columns as u64 * 2];
    let boxes = [64u32, 128];
    let element_strides = [1u32, 1];
    let mut map = MaybeUninit::<sys::CUtensorMap>::zeroed();
    // SAFETY: every array has the length the rank (2) asks for and outlives the call; `map`
    // is writable memory of the right size and alignment; the driver only encodes `base`, it
    // does not read through it here.
    let status = unsafe {
        sys::cuTensorMapEncodeTiled(
            map.as_mut_ptr(),
            sys::CUtensorMapDataType::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            base as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
            sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    status.result().map_err(driver("encoding a tensor map"))?;
    // SAFETY: the driver filled the map (it returned success).
    Ok(unsafe { map.assume_init() })
}

impl Gpu {
    /// The attention kernel this GPU runs for `head_dim`.
    pub fn attention_kernel(&self, head_dim: usize) -> AttentionKernel {
        if self.kernels.attention_sm90.is_some() && head_dim == 128 {
            AttentionKernel::Sm90
        } else {
            AttentionKernel::Portable
        }
    }

    /// Attention of `q` ([rows][q_heads * head_dim] bf16) over `segments`, writing `o` and
    /// `lse` ([rows][q_heads], natural log), with the fastest kernel this GPU has.
    pub fn attention(&self, q: &CudaSlice<u16>, heads: Heads, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        self.attention_with(self.attention_kernel(heads.head_dim), q, heads, segments, o, lse)
    }

    /// Attention with a chosen kernel (checks and benchmarks compare the two).
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
        if d != 64 && d != 128 {
            return Err(EngineError::invalid("headDim", format!("the GPU kernel takes head_dim 64 or 128, got {d}")));
        }
        if kernel == AttentionKernel::Sm90 && (self.kernels.attention_sm90.is_none() || d != 128) {
            return Err(EngineError::invalid("kernel", format!("the sm90 kernel needs compute capability 9.0 and head_dim 128 ({} is {}.{}, head_dim {d})", self.name, self.compute_capability.0, self.compute_capability.1)));
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
        if rows == 0 {
            return Ok(());
        }
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        match kernel {
            AttentionKernel::Sm90 => self.launch_sm90(q, heads, rows, segments, o, lse),
            AttentionKernel::Portable => self.launch_portable(q, heads, rows, segments, o, lse),
        }
    }

    /// Each segment's K and V device addresses, and the guards that keep them usable until
    /// the launch is queued.
    fn segment_addresses<'a>(&'a self, segments: &'a [GpuSegment<'_>]) -> (Vec<(u64, u64)>, Vec<SyncOnDrop<'a>>) {
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

    fn launch_portable(&self, q: &CudaSlice<u16>, heads: Heads, rows: usize, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let d = heads.head_dim;
        let mut list = SegmentList { n: segments.len() as i32, ..SegmentList::default() };
        let (addresses, _guards) = self.segment_addresses(segments);
        for (i, ((k, v), (_, _, start, count, causal))) in addresses.into_iter().zip(segments).enumerate() {
            list.s[i] = Segment { k, v, start: *start as i64, count: *count as i64, causal: *causal as i32 };
        }
        let (mut qp, _qg) = q.device_ptr(&self.stream);
        let (mut op, _og) = o.device_ptr_mut(&self.stream);
        let (mut lp, _lg) = lse.device_ptr_mut(&self.stream);
        let (mut rows_i, mut hq, mut hkv) = (rows as i64, heads.q_heads as i32, heads.kv_heads as i32);
        let mut params = args![qp, op, lp, rows_i, hq, hkv, list];
        let grid = (rows.div_ceil(PORTABLE_BLOCK_ROWS) as u32, heads.q_heads as u32, 1);
        let smem = (PORTABLE_SMEM_ROWS * (d + PORTABLE_PAD) * 2) as u32;
        let f = self.kernels.attention[if d == 64 { 0 } else { 1 }];
        // SAFETY: the parameters match the kernel's signature in cuda/attention.h (pointers,
        // i64, i32, i32, apb_segment_list by value, #[repr(C)] above); every buffer was sized
        // and checked by the caller and outlives the launch (the guards and `self` hold them).
        unsafe { result::launch_kernel(f, grid, (PORTABLE_THREADS, 1, 1), smem, self.stream.cu_stream(), &mut params) }.map_err(driver("launching attention"))
    }

    fn launch_sm90(&self, q: &CudaSlice<u16>, heads: Heads, rows: usize, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let f = self.kernels.attention_sm90.expect("checked by attention_with");
        let (qw, kvw) = (heads.q_heads * 128, heads.kv_heads * 128);
        let (qp, _qg) = q.device_ptr(&self.stream);
        let (op, _og) = o.device_ptr_mut(&self.stream);
        let (lp, _lg) = lse.device_ptr_mut(&self.stream);
        // SAFETY: an all-zero CUtensorMap is a valid value of the plain-data struct; unused
        // segment slots stay zero and the kernel never reads them.
        let blank: sys::CUtensorMap = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut p = Sm90Params {
            q: tensor_map(qp, qw, rows)?,
            k: [blank; MAX_SEGMENTS],
            v: [blank; MAX_SEGMENTS],
            o: op,
            lse: lp,
            rows: rows as i64,
            count: [0; MAX_SEGMENTS],
            causal: [0; MAX_SEGMENTS],
            segment_count: segments.len() as i32,
            q_heads: heads.q_heads as i32,
            kv_heads: heads.kv_heads as i32,
        };
        let (addresses, _guards) = self.segment_addresses(segments);
        for (i, ((kp, vp), (_, _, start, count, causal))) in addresses.into_iter().zip(segments).enumerate() {
            if *count > 0 {
                // Each map starts at the segment's first row, so reads past its end are zeros.
                let offset = (*start * kvw * 2) as u64;
                p.k[i] = tensor_map(kp + offset, kvw, *count)?;
                p.v[i] = tensor_map(vp + offset, kvw, *count)?;
            }
            p.count[i] = *count as i64;
            p.causal[i] = *causal as i32;
        }
        let mut params = args![p];
        let grid = (rows.div_ceil(SM90_BLOCK_ROWS) as u32, heads.q_heads as u32, 1);
        // SAFETY: the one parameter is apb_sm90_params by value (#[repr(C)] mirror above, the
        // tensor maps 128-byte aligned as CUtensorMap is); the maps describe buffers checked by
        // the caller, which outlive the launch (the guards and `self` hold them).
        unsafe { result::launch_kernel(f, grid, (SM90_THREADS, 1, 1), SM90_SMEM_BYTES as u32, self.stream.cu_stream(), &mut params) }
            .map_err(driver("launching sm90 attention"))
    }

    /// Merges partial attention outputs by LSE: `parts` of (O [rows][heads * head_dim] bf16,
    /// LSE [rows][heads]) into `out_o`, `out_lse`. Parts that saw nothing (LSE -inf) weigh
    /// nothing; a row no part saw gets O = 0 and LSE = -inf.
    pub fn merge(&self, parts: &[(&CudaSlice<u16>, &CudaSlice<f32>)], heads: usize, head_dim: usize, out_o: &mut CudaSlice<u16>, out_lse: &mut CudaSlice<f32>) -> Result<()> {
        if parts.is_empty() || parts.len() > MAX_MERGE_PARTS {
            return Err(EngineError::invalid("parts", format!("merge takes 1 to {MAX_MERGE_PARTS} parts, got {}", parts.len())));
        }
        if head_dim == 0 || !head_dim.is_multiple_of(8) || heads == 0 {
            return Err(EngineError::invalid("headDim", format!("merge needs heads > 0 and head_dim a multiple of 8, got {heads} heads of {head_dim}")));
        }
        let pairs = out_lse.len();
        if out_o.len() != pairs * head_dim || !pairs.is_multiple_of(heads) || parts.iter().any(|(o, l)| o.len() != out_o.len() || l.len() != pairs) {
            return Err(EngineError::invalid("parts", "every part's O and LSE must have the output's shape ([rows][heads * head_dim] and [rows][heads])"));
        }
        if pairs == 0 {
            return Ok(());
        }
        let mut list = MergeParts { o: [0; MAX_MERGE_PARTS], lse: [0; MAX_MERGE_PARTS] };
        let mut guards = Vec::new();
        for (i, (o, l)) in parts.iter().enumerate() {
            let (op, og) = o.device_ptr(&self.stream);
            let (lp, lg) = l.device_ptr(&self.stream);
            guards.push(og);
            guards.push(lg);
            list.o[i] = op;
            list.lse[i] = lp;
        }
        self.ctx.bind_to_thread().map_err(driver("binding the GPU"))?;
        let (mut oo, _og) = out_o.device_ptr_mut(&self.stream);
        let (mut ol, _lg) = out_lse.device_ptr_mut(&self.stream);
        let (mut count, mut pairs_i, mut d) = (parts.len() as i32, pairs as i64, head_dim as i32);
        let mut params = args![list, count, oo, ol, pairs_i, d];
        let threads = pairs * head_dim / 8;
        let grid = (threads.div_ceil(MERGE_THREADS as usize) as u32, 1, 1);
        // SAFETY: the parameters match apb_merge_bf16_kernel in cuda/merge.h (apb_merge_parts
        // by value, i32, pointers, i64, i32); all buffers were checked to the output's shape
        // above and outlive the launch (the guards hold them).
        unsafe { result::launch_kernel(self.kernels.merge, grid, (MERGE_THREADS, 1, 1), 0, self.stream.cu_stream(), &mut params) }.map_err(driver("launching merge"))
    }
}
