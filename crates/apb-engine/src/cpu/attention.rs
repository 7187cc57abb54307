//! Attention over key segments with O and LSE: the CPU reference of the APB kernel. Keys
//! and values are read in place from each segment's buffer ([tokens][kv_heads * head_dim]);
//! GQA maps query head h to KV head h / group without replicating K or V. A causal segment
//! is bottom-right aligned: row i sees keys 0..=i + (count - rows) of it.

use super::par;
use crate::heads::Heads;

pub struct KeySegment<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// First token of the segment inside `k` / `v`.
    pub start: usize,
    pub count: usize,
    pub causal: bool,
}

/// Keys of `seg` that query row `row` (of `rows`) may see.
pub fn visible(seg: &KeySegment, row: usize, rows: usize) -> usize {
    if !seg.causal {
        return seg.count;
    }
    let limit = row as i64 + 1 + seg.count as i64 - rows as i64;
    limit.clamp(0, seg.count as i64) as usize
}

/// `q`: [rows][q_heads * head_dim]; writes `out` (same shape) and `lse` ([rows][q_heads],
/// natural log; -inf and a zero output for a row that sees no key).
/// First row of a chunk, its outputs and its LSE entries.
type RowChunk<'a> = (usize, &'a mut [f32], &'a mut [f32]);

/// Query rows attended together: each key block is loaded once for all of them (the
/// FlashAttention tiling), so long contexts stay compute-bound rather than memory-bound.
const ROW_BLOCK: usize = 16;
/// Keys scored together before one softmax rescale per row.
const KEY_BLOCK: usize = 64;

pub fn attention(q: &[f32], heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    let qw = heads.q_heads * heads.head_dim;
    let rows = q.len() / qw;
    // Causal rows differ in cost, so row blocks are dealt round-robin to the threads.
    let threads = par::threads().min(rows.div_ceil(ROW_BLOCK)).max(1);
    let mut buckets: Vec<Vec<RowChunk>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (o, l)) in out.chunks_mut(ROW_BLOCK * qw).zip(lse.chunks_mut(ROW_BLOCK * heads.q_heads)).enumerate() {
        buckets[i % threads].push((i * ROW_BLOCK, o, l));
    }
    std::thread::scope(|s| {
        for bucket in buckets {
            s.spawn(move || {
                for (first, o_chunk, l_chunk) in bucket {
                    attend_rows(q, first, rows, heads, segments, o_chunk, l_chunk);
                }
            });
        }
    });
}

fn attend_rows(q: &[f32], first: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { attend_rows_avx2(q, first, rows, heads, segments, out, lse) };
        return;
    }
    attend_rows_body(q, first, rows, heads, segments, out, lse);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_rows_avx2(q: &[f32], first: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    attend_rows_body(q, first, rows, heads, segments, out, lse);
}

/// Online softmax for a block of query rows (all heads): per head, each key block is scored
/// for every row of the block before moving on; each row rescales once per key block.
#[inline(always)]
fn attend_rows_body(q: &[f32], first: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    let d = heads.head_dim;
    let (qw, kvw) = (heads.q_heads * d, heads.kv_heads * d);
    let n = out.len() / qw;
    let group = heads.q_heads / heads.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut acc = vec![0.0f32; n * d];
    let mut m = vec![f32::NEG_INFINITY; n];
    let mut l = vec![0.0f32; n];
    let mut scores = [0.0f32; KEY_BLOCK];
    for h in 0..heads.q_heads {
        let g = h / group;
        acc.iter_mut().for_each(|a| *a = 0.0);
        m.iter_mut().for_each(|x| *x = f32::NEG_INFINITY);
        l.iter_mut().for_each(|x| *x = 0.0);
        for seg in segments {
            let most = visible(seg, first + n - 1, rows);
            for b0 in (0..most).step_by(KEY_BLOCK) {
                for r in 0..n {
                    let seen = visible(seg, first + r, rows);
                    if b0 >= seen {
                        continue;
                    }
                    let nb = KEY_BLOCK.min(seen - b0);
                    let row = first + r;
                    let qh = &q[row * qw + h * d..row * qw + (h + 1) * d];
                    let mut block_max = f32::NEG_INFINITY;
                    for (j, sc) in scores.iter_mut().enumerate().take(nb) {
                        let t = seg.start + b0 + j;
                        *sc = dot(qh, &seg.k[t * kvw + g * d..t * kvw + (g + 1) * d]) * scale;
                        block_max = block_max.max(*sc);
                    }
                    let a = &mut acc[r * d..(r + 1) * d];
                    if block_max > m[r] {
                        let correction = (m[r] - block_max).exp();
                        l[r] *= correction;
                        a.iter_mut().for_each(|x| *x *= correction);
                        m[r] = block_max;
                    }
                    for (j, sc) in scores.iter().enumerate().take(nb) {
                        let p = (sc - m[r]).exp();
                        l[r] += p;
                        let t = seg.start + b0 + j;
                        for (x, vv) in a.iter_mut().zip(&seg.v[t * kvw + g * d..t * kvw + (g + 1) * d]) {
                            *x += p * vv;
                        }
                    }
                }
            }
        }
        for r in 0..n {
            let o = &mut out[r * qw + h * d..r * qw + (h + 1) * d];
            if l[r] > 0.0 {
                for (o, a) in o.iter_mut().zip(&acc[r * d..(r + 1) * d]) {
                    *o = a / l[r];
                }
                lse[r * heads.q_heads + h] = m[r] + l[r].ln();
            } else {
                o.iter_mut().for_each(|v| *v = 0.0);
                lse[r * heads.q_heads + h] = f32::NEG_INFINITY;
            }
        }
    }
}

#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight partial sums let the compiler vectorise the reduction.
    let mut lanes = [0.0f32; 8];
    let chunks = a.len() / 8;
    for c in 0..chunks {
        for l in 0..8 {
            lanes[l] += a[c * 8 + l] * b[c * 8 + l];
        }
    }
    let mut sum: f32 = lanes.iter().sum();
    for i in chunks * 8..a.len() {
        sum += a[i] * b[i];
    }
    sum
}

/// Merges partial attention (o_b, lse_b) into (o_a, lse_a), row by row and head by head,
/// in the stable form: weights exp(lse - max), so nothing overflows and -inf rows (no
/// keys seen) contribute nothing.
pub fn merge(o_a: &mut [f32], lse_a: &mut [f32], o_b: &[f32], lse_b: &[f32], head_dim: usize) {
    for (i, (la, &lb)) in lse_a.iter_mut().zip(lse_b).enumerate() {
        let m = la.max(lb);
        if m == f32::NEG_INFINITY {
            continue;
        }
        let (wa, wb) = ((*la - m).exp(), (lb - m).exp());
        let sum = wa + wb;
        let oa = &mut o_a[i * head_dim..(i + 1) * head_dim];
        let ob = &o_b[i * head_dim..(i + 1) * head_dim];
        for (a, b) in oa.iter_mut().zip(ob) {
            *a = (wa * *a + wb * b) / sum;
        }
        *la = m + sum.ln();
    }
}
