//! RMSNorm, RoPE, SwiGLU, residual adds and the embedding gather.

use super::par;

/// out = x / sqrt(mean(x^2) + eps) * w, row by row (as transformers' LlamaRMSNorm).
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let cols = w.len();
    par::for_row_chunks(out, cols, 16, |first, chunk| {
        for (r, o) in chunk.chunks_mut(cols).enumerate() {
            let row = &x[(first + r) * cols..(first + r + 1) * cols];
            let mean_sq = row.iter().map(|v| v * v).sum::<f32>() / cols as f32;
            let inv = 1.0 / (mean_sq + eps).sqrt();
            for ((o, v), g) in o.iter_mut().zip(row).zip(w) {
                *o = v * inv * g;
            }
        }
    });
}

/// RoPE in place on [rows][heads * head_dim], rotate-half convention (transformers).
/// `inv_freq` has head_dim / 2 entries; angles are computed in f64 so long positions keep
/// their precision.
pub fn rope(x: &mut [f32], heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) {
    let width = heads * head_dim;
    let half = head_dim / 2;
    par::for_row_chunks(x, width, 16, |first, chunk| {
        let mut cos = vec![0.0f32; half];
        let mut sin = vec![0.0f32; half];
        for (r, row) in chunk.chunks_mut(width).enumerate() {
            let pos = positions[first + r] as f64;
            for i in 0..half {
                let angle = pos * inv_freq[i];
                cos[i] = angle.cos() as f32;
                sin[i] = angle.sin() as f32;
            }
            for head in row.chunks_mut(head_dim) {
                let (a, b) = head.split_at_mut(half);
                for i in 0..half {
                    let (x1, x2) = (a[i], b[i]);
                    a[i] = x1 * cos[i] - x2 * sin[i];
                    b[i] = x2 * cos[i] + x1 * sin[i];
                }
            }
        }
    });
}

/// out = silu(gate) * up.
pub fn silu_mul(gate: &[f32], up: &[f32], out: &mut [f32]) {
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        *o = g / (1.0 + (-g).exp()) * u;
    }
}

pub fn silu(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v /= 1.0 + (-*v).exp();
    }
}

pub fn add_in_place(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Rows of `table` ([vocab][hidden]) for `ids`.
pub fn embed(table: &[f32], hidden: usize, ids: &[u32], out: &mut [f32]) {
    for (o, &id) in out.chunks_mut(hidden).zip(ids) {
        let id = id as usize;
        o.copy_from_slice(&table[id * hidden..(id + 1) * hidden]);
    }
}
