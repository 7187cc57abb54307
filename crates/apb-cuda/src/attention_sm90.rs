//! The Hopper attention kernel's launcher (cuda/attention_sm90.cu: TMA + wgmma, head_dim 64
//! and 128, compute capability 9.0): it encodes a tensor map for Q and for each segment's K
//! and V and passes them, with the sizes, as the kernel's one parameter. Shapes are checked by
//! `Gpu::attention_with` (attention.rs) before this runs.

use std::ffi::c_void;
use std::mem::MaybeUninit;

use apb_engine::Heads;
use apb_engine::error::{EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr};

use crate::attention::{ByHeadDim, GpuSegment, MAX_SEGMENTS};
use crate::gpu::{driver, Gpu, LaunchShape};
use crate::merge::MAX_PARTS;

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
const TILE_KEYS: usize = 128;
/// A split part walks at least this many key tiles, so its start-up and the merge stay small
/// beside its work.
const MIN_TILES_PER_SPLIT: usize = 16;

/// How many parts the walk of key tiles is cut into (the kernel's `splits`): 1 when the
/// row blocks already fill the SMs; otherwise enough parts to fill them, each at least
/// MIN_TILES_PER_SPLIT tiles, at most the merge's MAX_PARTS. Few rows over many keys (the
/// query pass, decode) would otherwise run one block per head and leave most SMs idle.
fn splits_for(blocks: usize, sm_count: usize, key_tiles: usize) -> usize {
    if blocks == 0 || blocks >= sm_count {
        return 1;
    }
    sm_count.div_ceil(blocks).min(key_tiles / MIN_TILES_PER_SPLIT).clamp(1, MAX_PARTS)
}

/// The variant a head dim runs, if the kernel is built for it.
fn variant_for(head_dim: usize) -> Option<&'static Variant> {
    [&D64, &D128].into_iter().find(|v| v.head_dim == head_dim)
}

/// The kernel's entry points, one per head dim.
pub(crate) fn load() -> Result<ByHeadDim> {
    ByHeadDim::load(FATBIN, "apb_attention_sm90", |d| variant_for(d).map_or(0, |v| v.smem_bytes))
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
    splits: i32,
}
c_layout!(Sm90Params as "apb_sm90_params" in "attention_sm90.cu": size 1280, align 128,
    q @ 0, k @ 128, v @ 640, o @ 1152, lse @ 1160, rows @ 1168, count @ 1176, causal @ 1208, segment_count @ 1224, q_heads @ 1228, kv_heads @ 1232, splits @ 1236);

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
        let d = heads.head_dim;
        let variant = variant_for(d).ok_or_else(|| EngineError::invalid("headDim", format!("the sm90 kernel takes head_dim 64 or 128, got {d}")))?;
        let f = functions.get(d);
        let blocks = (rows.div_ceil(variant.rows_per_block()), heads.q_heads);
        let key_tiles = segments.iter().map(|s| s.3.div_ceil(TILE_KEYS)).sum();
        let splits = splits_for(blocks.0 * blocks.1, self.sm_count, key_tiles);
        let walk = Walk { f, variant, heads, rows, blocks, splits };
        // SAFETY: launch_walk writes every element of each of the `splits` parts (O = 0 and
        // LSE = -inf where a part saw nothing) at the addresses it is given; splits is
        // 1..=MAX_PARTS (splits_for) and head_dim (64 or 128) a multiple of the merge's chunk;
        // attention_with checked o and lse to [rows][q_heads] pairs.
        unsafe { self.in_parts(splits, heads.q_heads, variant.head_dim, o, lse, |op, lp| self.launch_walk(&walk, q, segments, op, lp)) }
    }

    /// Encodes the tensor maps and launches the kernel, its `splits` parts writing O and LSE
    /// at `o` and `lse` (part i at offset i x rows x q_heads pairs).
    ///
    /// # Safety
    /// `o` and `lse` must address `walk.splits` parts of [rows][q_heads] pairs (bf16 x head_dim
    /// and f32) that stay alive until the launch is queued; `q` and `segments` must have
    /// passed attention_with's checks.
    unsafe fn launch_walk(&self, walk: &Walk, q: &CudaSlice<u16>, segments: &[GpuSegment<'_>], o: u64, lse: u64) -> Result<()> {
        let (heads, rows) = (walk.heads, walk.rows);
        let (qw, kvw) = (heads.q_heads * walk.variant.head_dim, heads.kv_heads * walk.variant.head_dim);
        let (qp, _qg) = q.device_ptr(&self.stream);
        // SAFETY: an all-zero CUtensorMap is a valid value of the plain-data struct; unused
        // segment slots stay zero and the kernel never reads them.
        let blank: sys::CUtensorMap = unsafe { MaybeUninit::zeroed().assume_init() };
        let mut p = Sm90Params {
            q: tensor_map(qp, qw, rows, Q_BOX_ROWS)?,
            k: [blank; MAX_SEGMENTS],
            v: [blank; MAX_SEGMENTS],
            o,
            lse,
            rows: rows as i64,
            count: [0; MAX_SEGMENTS],
            causal: [0; MAX_SEGMENTS],
            segment_count: segments.len() as i32,
            q_heads: heads.q_heads as i32,
            kv_heads: heads.kv_heads as i32,
            splits: walk.splits as i32,
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
        let shape = LaunchShape { grid: (walk.blocks.0, walk.blocks.1, walk.splits), threads: walk.variant.threads(), smem_bytes: walk.variant.smem_bytes };
        // SAFETY: the one parameter is apb_sm90_params by value (layout asserted above, the
        // tensor maps 128-byte aligned as CUtensorMap is); the maps describe buffers
        // attention_with checked and o / lse hold `splits` parts (this function's contract);
        // the guards and `self` keep them alive until the launch is queued.
        unsafe { self.launch("sm90 attention", walk.f, shape, &mut args![p]) }
    }
}

/// One launch of the kernel: its entry point and variant, the rows and heads, the grid of
/// row blocks by heads, and into how many parts the walk of key tiles is cut.
struct Walk {
    f: sys::CUfunction,
    variant: &'static Variant,
    heads: Heads,
    rows: usize,
    blocks: (usize, usize),
    splits: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_keys_only_when_the_row_blocks_leave_sms_idle() {
        // 128K rows of 32 heads: thousands of blocks, no split.
        assert_eq!(splits_for(1024 * 32, 132, 1024), 1);
        assert_eq!(splits_for(132, 132, 1024), 1);
        // The query pass (one row block) over 128K keys, 32 heads: 5 parts fill 132 SMs.
        assert_eq!(splits_for(32, 132, 1024), 5);
        // One head, one row: as many parts as the merge takes.
        assert_eq!(splits_for(1, 132, 1024), MAX_PARTS);
        // Each part keeps at least MIN_TILES_PER_SPLIT tiles; too few keys, no split.
        assert_eq!(splits_for(32, 132, 40), 40 / MIN_TILES_PER_SPLIT);
        assert_eq!(splits_for(32, 132, MIN_TILES_PER_SPLIT - 1), 1);
        assert_eq!(splits_for(0, 132, 1024), 1);
    }
}
