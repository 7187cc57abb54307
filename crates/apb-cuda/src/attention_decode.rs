//! The decode attention kernel's launcher (cuda/attention_decode.cu): a few query rows over
//! many keys, the rows of the query heads that share a KV head packed into one 16-row tensor
//! core tile (at most MAX_PACKED_ROWS), the keys cut into parts that fill the GPU and merged
//! by LSE. Any GPU of compute capability 8.0+; head_dim 64 and 128. Shapes are checked by
//! `Gpu::attention_with` (attention.rs) before this runs.

use apb_engine::error::Result;
use apb_engine::Heads;
use cudarc::driver::{CudaSlice, DevicePtr};

use crate::attention::{ByHeadDim, GpuSegment, SegmentList};
use crate::gpu::{Gpu, LaunchShape};
use crate::merge::MAX_PARTS;

pub(crate) static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/attention_decode.fatbin"));

/// Query rows x (q_heads / kv_heads) the kernel holds (one m16 tile); more go to the prefill
/// kernels.
pub const MAX_PACKED_ROWS: usize = 16;
/// 8 warps; each takes 16 keys a step, so a part's keys are a multiple of 16.
const WARPS: usize = 8;
const THREADS: u32 = 32 * WARPS as u32;
const STEP_KEYS: usize = 16;
/// A part walks at least this many keys (8 steps of each warp), so its start-up and the merge
/// stay small beside its reads.
const MIN_KEYS_PER_PART: usize = 1024;

/// Whether `rows` query rows of `heads` pack into the decode kernel.
pub fn packs(rows: usize, heads: Heads) -> bool {
    heads.kv_heads > 0 && rows * (heads.q_heads / heads.kv_heads) <= MAX_PACKED_ROWS
}

/// How many parts the keys are cut into: one block per (part, KV head), enough parts that the
/// blocks fill the SMs once (the kernel runs one block per SM), each at least
/// MIN_KEYS_PER_PART keys, at most the merge's MAX_PARTS.
fn parts_for(kv_heads: usize, sm_count: usize, keys: usize) -> usize {
    let fill = sm_count / kv_heads.max(1);
    fill.min(keys / MIN_KEYS_PER_PART).clamp(1, MAX_PARTS)
}

/// Dynamic shared memory: each warp's output, maximum and sum for the 16 packed rows, which
/// the block merges at the end (fp32).
const fn smem_bytes(head_dim: usize) -> usize {
    WARPS * MAX_PACKED_ROWS * (head_dim + 2) * 4
}

/// The kernel's entry points, one per head dim.
pub(crate) fn load() -> Result<ByHeadDim> {
    ByHeadDim::load(FATBIN, "apb_attention_decode", smem_bytes)
}

/// apb_decode_params (cuda/attention_decode.cu), the kernel's only parameter.
#[repr(C)]
pub(crate) struct DecodeParams {
    q: u64,
    o: u64,
    lse: u64,
    rows: i64,
    keys_per_part: i64,
    q_heads: i32,
    kv_heads: i32,
    segments: SegmentList,
}
c_layout!(DecodeParams as "apb_decode_params" in "attention_decode.cu": size 216, align 8,
    q @ 0, o @ 8, lse @ 16, rows @ 24, keys_per_part @ 32, q_heads @ 40, kv_heads @ 44, segments @ 48);

impl Gpu {
    /// The decode kernel on shapes `attention_with` checked (head_dim 64 or 128, `packs`).
    pub(crate) fn launch_decode(&self, q: &CudaSlice<u16>, heads: Heads, rows: usize, segments: &[GpuSegment<'_>], o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>) -> Result<()> {
        let f = self.kernels.attention_decode.get(heads.head_dim);
        let keys: usize = segments.iter().map(|s| s.3).sum();
        let parts = parts_for(heads.kv_heads, self.sm_count, keys);
        let keys_per_part = keys.div_ceil(parts).next_multiple_of(STEP_KEYS).max(STEP_KEYS);
        let (list, _guards) = self.segment_list(segments);
        let (qp, _qg) = q.device_ptr(&self.stream);
        let shape = LaunchShape { grid: (parts, heads.kv_heads, 1), threads: THREADS, smem_bytes: smem_bytes(heads.head_dim) };
        let launch = |o: u64, lse: u64| {
            let mut p = DecodeParams {
                q: qp,
                o,
                lse,
                rows: rows as i64,
                keys_per_part: keys_per_part as i64,
                q_heads: heads.q_heads as i32,
                kv_heads: heads.kv_heads as i32,
                segments: list,
            };
            // SAFETY: the one parameter is apb_decode_params by value (layout asserted above);
            // q and the segments passed attention_with's checks, and o / lse address `parts`
            // parts of [rows][q_heads] pairs (in_parts' contract); the guards and `self` keep
            // every buffer alive until the launch is queued.
            unsafe { self.launch("decode attention", f, shape, &mut args![p]) }
        };
        // SAFETY: part p's block row writes every (row, head) pair of its part, for all KV
        // heads (the grid's y) and all packed rows (O = 0 and LSE = -inf where it saw
        // nothing); parts is 1..=MAX_PARTS (parts_for) and head_dim (64 or 128) a multiple of
        // the merge's chunk; attention_with checked o and lse to [rows][q_heads] pairs.
        unsafe { self.in_parts(parts, heads.q_heads, heads.head_dim, o, lse, launch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_the_rows_of_a_kv_heads_query_heads() {
        let llama = Heads { q_heads: 32, kv_heads: 8, head_dim: 128 };
        assert!(packs(1, llama) && packs(4, llama) && !packs(5, llama));
        let qwen = Heads { q_heads: 28, kv_heads: 4, head_dim: 128 };
        assert!(packs(2, qwen) && !packs(3, qwen));
        let mha = Heads { q_heads: 32, kv_heads: 32, head_dim: 128 };
        assert!(packs(16, mha) && !packs(17, mha));
    }

    #[test]
    fn cuts_the_keys_into_parts_that_fill_the_sms_once() {
        // 8 KV heads over 128K keys: 16 parts, 128 blocks on 132 SMs.
        assert_eq!(parts_for(8, 132, 131072), 16);
        // 32 KV heads: 4 parts, 128 blocks.
        assert_eq!(parts_for(32, 132, 131072), 4);
        // More KV heads than SMs, or few keys: one part.
        assert_eq!(parts_for(200, 132, 131072), 1);
        assert_eq!(parts_for(8, 132, MIN_KEYS_PER_PART - 1), 1);
        assert_eq!(parts_for(8, 132, 0), 1);
        // Each part keeps MIN_KEYS_PER_PART keys; never more than the merge takes.
        assert_eq!(parts_for(8, 132, 5 * MIN_KEYS_PER_PART), 5);
        assert_eq!(parts_for(1, 132, 1 << 20), MAX_PARTS);
    }
}
