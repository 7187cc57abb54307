//! The Hopper attention kernel's launcher (cuda/attention_sm90.cu: TMA + wgmma, head_dim 64
//! and 128, compute capability 9.0): it encodes a tensor map for Q and for each segment's K
//! and V and passes them, with the sizes, as the kernel's one parameter. Shapes are checked by
//! `Gpu::attention_with` (attention.rs) before this runs.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use apb_engine::Heads;
use apb_engine::error::{EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut};

use crate::attention::{GpuSegment, MAX_SEGMENTS};
use crate::gpu::{driver, function, module, Gpu, LaunchShape};

pub(crate) static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention_sm90.fatbin"));

/// What the kernel's `Shape<D>` fixes for one head dim: a producer warpgroup and
/// `consumers` warpgroups of 64 query rows each; shared memory for the Q tile, two stages of
/// K and V tiles, the barriers and 1 KiB of alignment slack (the kernel's static_asserts state
/// the same sums).
struct Variant {
    head_dim: usize,
    consumers: usize,
    smem_bytes: usize,
}

impl Variant {
    fn rows_per_block(&self) -> usize {
        64 * self.consumers
    }
    fn threads(&self) -> u32 {
        128 * (1 + self.consumers as u32)
    }
}

const D128: Variant = Variant { head_dim: 128, consumers: 2, smem_bytes: 163840 + 2048 };
const D64: Variant = Variant { head_dim: 64, consumers: 3, smem_bytes: 90112 + 2048 };
/// Q is read in boxes of 64 columns by 64 rows (one consumer's rows), K and V in boxes of 64
/// columns by 128 rows (one tile of keys).
const Q_BOX_ROWS: u32 = 64;
const KV_BOX_ROWS: u32 = 128;

/// The kernel's entry points, one per head dim.
pub(crate) struct Functions {
    d64: sys::CUfunction,
    d128: sys::CUfunction,
}

impl Functions {
    pub(crate) fn load() -> Result<Functions> {
        let m = module(FATBIN)?;
        Ok(Functions {
            d64: function(m, "apb_attention_sm90_d64", D64.smem_bytes)?,
            d128: function(m, "apb_attention_sm90_d128", D128.smem_bytes)?,
        })
    }
}

/// apb_tensor_map (cuda/attention_sm90.cu) is CUtensorMap: 16 opaque 64-bit words, 128-byte
/// aligned.
const _: () = assert!(size_of::<sys::CUtensorMap>() == 128 && align_of::<sys::CUtensorMap>() == 128, "CUtensorMap is apb_tensor_map");

/// apb_sm90_params (cuda/attention_sm90.cu), the kernel's only parameter.
#[repr(C)]
pub(crate) struct Sm90Params {
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
c_layout!(Sm90Params as "apb_sm90_params" in "attention_sm90.cu": size 1280, align 128,
    q @ 0, k @ 128, v @ 640, o @ 1152, lse @ 1160, rows @ 1168, count @ 1176, causal @ 1208, segment_count @ 1224, q_heads @ 1228, kv_heads @ 1232);

/// A tensor map over a [rows][columns] bf16 matrix at `base`, read in 128-byte-swizzled boxes
/// of 64 columns x `box_rows` rows (what the kernel's TMA copies expect).
fn tensor_map(base: u64, columns: usize, rows: usize, box_rows: u32) -> Result<sys::CUtensorMap> {
    let dims = [columns as u64, rows as u64];
    let strides = [columns as u64 * 2];
    let boxes = [64u32, box_rows];
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
    /// The Hopper kernel on shapes `attention_with` checked (head_dim 64 or 128, this GPU 9.0).
    pub(crate) fn launch_sm90(&self, q: &CudaSlice<u16>, heads: Heads, rows: usize, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let functions = self.kernels.attention_sm90.as_ref().expect("attention_with checked the GPU runs sm90");
        let (f, variant) = match heads.head_dim {
            64 => (functions.d64, &D64),
            128 => (functions.d128, &D128),
            d => return Err(EngineError::invalid("headDim", format!("the sm90 kernel takes head_dim 64 or 128, got {d}"))),
        };
        let (qw, kvw) = (heads.q_heads * variant.head_dim, heads.kv_heads * variant.head_dim);
        let (qp, _qg) = q.device_ptr(&self.stream);
        let (op, _og) = o.device_ptr_mut(&self.stream);
        let (lp, _lg) = lse.device_ptr_mut(&self.stream);
        // SAFETY: an all-zero CUtensorMap is a valid value of the plain-data struct; unused
        // segment slots stay zero and the kernel never reads them.
        let blank: sys::CUtensorMap = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut p = Sm90Params {
            q: tensor_map(qp, qw, rows, Q_BOX_ROWS)?,
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
                p.k[i] = tensor_map(kp + offset, kvw, *count, KV_BOX_ROWS)?;
                p.v[i] = tensor_map(vp + offset, kvw, *count, KV_BOX_ROWS)?;
            }
            p.count[i] = *count as i64;
            p.causal[i] = *causal as i32;
        }
        let shape = LaunchShape { grid: (rows.div_ceil(variant.rows_per_block()), heads.q_heads), threads: variant.threads(), smem_bytes: variant.smem_bytes };
        // SAFETY: the one parameter is apb_sm90_params by value (layout asserted above, the
        // tensor maps 128-byte aligned as CUtensorMap is); the maps describe buffers
        // attention_with checked, which the guards and `self` keep alive until the launch is
        // queued.
        unsafe { self.launch("sm90 attention", f, shape, &mut args![p]) }
    }
}
