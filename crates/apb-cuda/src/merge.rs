//! The LSE merge's launcher (cuda/merge.cu): partial attention outputs over disjoint keys
//! combined into one, as decode and ring attention need.

use apb_engine::error::{EngineError, Result};
use cudarc::driver::{sys, CudaSlice, DevicePtr, DevicePtrMut};

use crate::gpu::{driver, function, module, Gpu, LaunchShape};

pub(crate) static FATBIN: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/merge.fatbin"));

pub(crate) const MAX_PARTS: usize = 16;
const THREADS: u32 = 256;
/// Elements of a (row, head) each thread merges (one 16-byte access).
const CHUNK: usize = 8;

pub(crate) struct Functions {
    merge: sys::CUfunction,
}

impl Functions {
    pub(crate) fn load() -> Result<Functions> {
        Ok(Functions { merge: function(module(FATBIN)?, "apb_merge_bf16_kernel", 0)? })
    }
}

/// apb_merge_parts (cuda/merge.cu), passed by value.
#[repr(C)]
pub(crate) struct MergeParts {
    pub(crate) o: [u64; MAX_PARTS],
    pub(crate) lse: [u64; MAX_PARTS],
}
c_layout!(MergeParts as "apb_merge_parts" in "merge.cu": size 256, align 8, o @ 0, lse @ 128);

impl Gpu {
    /// Merges partial attention outputs by LSE: `parts` of (O [rows][heads * head_dim] bf16,
    /// LSE [rows][heads]) into `out_o`, `out_lse`. Parts that saw nothing (LSE -inf) weigh
    /// nothing; a row no part saw gets O = 0 and LSE = -inf.
    pub fn merge(&self, parts: &[(&CudaSlice<u16>, &CudaSlice<f32>)], heads: usize, head_dim: usize, out_o: &mut CudaSlice<u16>, out_lse: &mut CudaSlice<f32>) -> Result<()> {
        if parts.is_empty() || parts.len() > MAX_PARTS {
            return Err(EngineError::invalid("parts", format!("merge takes 1 to {MAX_PARTS} parts, got {}", parts.len())));
        }
        if head_dim == 0 || !head_dim.is_multiple_of(CHUNK) || heads == 0 {
            return Err(EngineError::invalid("headDim", format!("merge needs heads > 0 and head_dim a multiple of {CHUNK}, got {heads} heads of {head_dim}")));
        }
        let pairs = out_lse.len();
        if out_o.len() != pairs * head_dim || !pairs.is_multiple_of(heads) || parts.iter().any(|(o, l)| o.len() != out_o.len() || l.len() != pairs) {
            return Err(EngineError::invalid("parts", "every part's O and LSE must have the output's shape ([rows][heads * head_dim] and [rows][heads])"));
        }
        let mut list = MergeParts { o: [0; MAX_PARTS], lse: [0; MAX_PARTS] };
        let mut guards = Vec::with_capacity(2 * parts.len());
        for (i, (o, l)) in parts.iter().enumerate() {
            let (op, og) = o.device_ptr(&self.stream);
            let (lp, lg) = l.device_ptr(&self.stream);
            guards.push(og);
            guards.push(lg);
            list.o[i] = op;
            list.lse[i] = lp;
        }
        // SAFETY: every part was checked to the output's shape above and the guards keep the
        // parts alive until the launch is queued.
        unsafe { self.merge_parts(list, parts.len(), heads, head_dim, out_o, out_lse) }
    }

    /// Runs a kernel that cuts its walk of keys into `parts` parts, each writing its own O and
    /// LSE, and merges them into `o` and `lse` ([rows][heads] pairs of `head_dim`). `launch`
    /// gets the device addresses where part i's O and LSE start (part i at offset i x pairs);
    /// with one part those are `o` and `lse` themselves, and nothing is merged.
    ///
    /// # Safety
    /// `launch` must write every element of each of the `parts` parts (O = 0 and LSE = -inf
    /// where a part saw nothing) and nothing else; `parts` is 1..=MAX_PARTS and head_dim a
    /// multiple of CHUNK (the caller checked), and o / lse hold [rows][heads] pairs.
    pub(crate) unsafe fn in_parts(&self, parts: usize, heads: usize, head_dim: usize, o: &mut CudaSlice<u16>, lse: &mut CudaSlice<f32>, launch: impl FnOnce(u64, u64) -> Result<()>) -> Result<()> {
        if parts == 1 {
            let (op, _og) = o.device_ptr_mut(&self.stream);
            let (lp, _lg) = lse.device_ptr_mut(&self.stream);
            return launch(op, lp);
        }
        let pairs = lse.len();
        // SAFETY: `launch` writes every element of both buffers (this function's contract)
        // before the merge reads them.
        let mut o_parts = unsafe { self.stream.alloc::<u16>(parts * pairs * head_dim) }.map_err(driver("allocating split attention parts"))?;
        // SAFETY: as above.
        let mut lse_parts = unsafe { self.stream.alloc::<f32>(parts * pairs) }.map_err(driver("allocating split attention parts"))?;
        let (op, _og) = o_parts.device_ptr_mut(&self.stream);
        let (lp, _lg) = lse_parts.device_ptr_mut(&self.stream);
        launch(op, lp)?;
        let mut list = MergeParts { o: [0; MAX_PARTS], lse: [0; MAX_PARTS] };
        for i in 0..parts {
            list.o[i] = op + (i * pairs * head_dim * 2) as u64;
            list.lse[i] = lp + (i * pairs * 4) as u64;
        }
        // SAFETY: part i lies at offset i of the workspace allocated above for `parts` parts
        // of the output's shape, written by `launch`; the guards keep the workspace alive
        // until the merge is queued (stream order keeps it until the merge has run).
        unsafe { self.merge_parts(list, parts, heads, head_dim, o, lse) }
    }

    /// Merges `count` parts given by device address into `out_o`, `out_lse`.
    ///
    /// # Safety
    /// Each of the first `count` addresses in `list` must point at a live part of the
    /// output's shape (O [pairs][head_dim] bf16, LSE [pairs] f32, pairs = out_lse.len()) that
    /// stays alive until the launch is queued; `count` is 1..=MAX_PARTS and head_dim a
    /// multiple of CHUNK (the caller checked).
    pub(crate) unsafe fn merge_parts(&self, mut list: MergeParts, count: usize, heads: usize, head_dim: usize, out_o: &mut CudaSlice<u16>, out_lse: &mut CudaSlice<f32>) -> Result<()> {
        let pairs = out_lse.len();
        debug_assert!((1..=MAX_PARTS).contains(&count) && head_dim.is_multiple_of(CHUNK) && out_o.len() == pairs * head_dim && pairs.is_multiple_of(heads));
        let (mut oo, _og) = out_o.device_ptr_mut(&self.stream);
        let (mut ol, _lg) = out_lse.device_ptr_mut(&self.stream);
        let (mut count, mut pairs_i, mut d) = (count as i32, pairs as i64, head_dim as i32);
        let shape = LaunchShape { grid: ((pairs * head_dim / CHUNK).div_ceil(THREADS as usize), 1, 1), threads: THREADS, smem_bytes: 0 };
        // SAFETY: the parameters are apb_merge_bf16_kernel's (apb_merge_parts by value, its
        // layout asserted above; int32_t, bf16*, float*, int64_t, int32_t); the output was
        // checked here and the parts by the caller (each a whole number of 16-byte chunks, as
        // the kernel reads them), and they stay alive until the launch is queued.
        unsafe { self.launch("merge", self.kernels.merge.merge, shape, &mut args![list, count, oo, ol, pairs_i, d]) }
    }
}
