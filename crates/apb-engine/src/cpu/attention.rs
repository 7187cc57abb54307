//! Attention over key segments with O and LSE: the CPU reference of the APB kernel. Keys
//! and values are read in place from each segment's buffer ([tokens][kv_heads * head_dim]);
//! GQA maps query head h to KV head h / group without replicating K or V. A causal segment
//! is bottom-right aligned: row i sees keys 0..=i + (count - rows) of it.

use super::par;

pub struct KeySegment<'a> {
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// First token of the segment inside `k` / `v`.
    pub start: usize,
    pub count: usize,
    pub causal: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
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

pub fn attention(q: &[f32], heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    let qw = heads.q_heads * heads.head_dim;
    let rows = q.len() / qw;
    // Causal rows differ in cost, so small chunks are dealt round-robin to the threads.
    const CHUNK: usize = 8;
    let threads = par::threads().min(rows.div_ceil(CHUNK)).max(1);
    let mut buckets: Vec<Vec<RowChunk>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, (o, l)) in out.chunks_mut(CHUNK * qw).zip(lse.chunks_mut(CHUNK * heads.q_heads)).enumerate() {
        buckets[i % threads].push((i * CHUNK, o, l));
    }
    std::thread::scope(|s| {
        for bucket in buckets {
            s.spawn(move || {
                for (first, o_chunk, l_chunk) in bucket {
                    for (r, (o_row, l_row)) in o_chunk.chunks_mut(qw).zip(l_chunk.chunks_mut(heads.q_heads)).enumerate() {
                        let row = first + r;
                        attend_row(&q[row * qw..(row + 1) * qw], row, rows, heads, segments, o_row, l_row);
                    }
                }
            });
        }
    });
}

fn attend_row(q: &[f32], row: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if super::simd::has_avx2_fma() {
        // SAFETY: the CPU supports AVX2 and FMA (checked just above).
        unsafe { attend_row_avx2(q, row, rows, heads, segments, out, lse) };
        return;
    }
    attend_row_body(q, row, rows, heads, segments, out, lse);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn attend_row_avx2(q: &[f32], row: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    attend_row_body(q, row, rows, heads, segments, out, lse);
}

/// Keys scored together before one softmax rescale.
const KEY_BLOCK: usize = 32;

/// Online softmax over every visible key, one query row, all heads: keys go in blocks, so
/// the running maximum and the accumulator are rescaled once per block, not per key.
#[inline(always)]
fn attend_row_body(q: &[f32], row: usize, rows: usize, heads: Heads, segments: &[KeySegment], out: &mut [f32], lse: &mut [f32]) {
    let d = heads.head_dim;
    let kvw = heads.kv_heads * d;
    let group = heads.q_heads / heads.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut acc = vec![0.0f32; d];
    let mut scores = [0.0f32; KEY_BLOCK];
    for h in 0..heads.q_heads {
        let qh = &q[h * d..(h + 1) * d];
        let g = h / group;
        let (mut m, mut l) = (f32::NEG_INFINITY, 0.0f32);
        acc.iter_mut().for_each(|a| *a = 0.0);
        for seg in segments {
            let count = visible(seg, row, rows);
            for b0 in (0..count).step_by(KEY_BLOCK) {
                let nb = KEY_BLOCK.min(count - b0);
                let mut block_max = f32::NEG_INFINITY;
                for (j, sc) in scores.iter_mut().enumerate().take(nb) {
                    let t = seg.start + b0 + j;
                    *sc = dot(qh, &seg.k[t * kvw + g * d..t * kvw + (g + 1) * d]) * scale;
                    block_max = block_max.max(*sc);
                }
                if block_max > m {
                    let correction = (m - block_max).exp();
                    l *= correction;
                    acc.iter_mut().for_each(|a| *a *= correction);
                    m = block_max;
                }
                for (j, sc) in scores.iter().enumerate().take(nb) {
                    let p = (sc - m).exp();
                    l += p;
                    let t = seg.start + b0 + j;
                    for (a, vv) in acc.iter_mut().zip(&seg.v[t * kvw + g * d..t * kvw + (g + 1) * d]) {
                        *a += p * vv;
                    }
                }
            }
        }
        let o = &mut out[h * d..(h + 1) * d];
        if l > 0.0 {
            for (o, a) in o.iter_mut().zip(&acc) {
                *o = a / l;
            }
            lse[h] = m + l.ln();
        } else {
            o.iter_mut().for_each(|v| *v = 0.0);
            lse[h] = f32::NEG_INFINITY;
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
