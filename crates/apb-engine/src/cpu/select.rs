//! The CPU kernels of choosing a host's passing block: score every local key per KV head,
//! and gather each KV head's picked tokens. The choice between the scores (pooling and
//! top-k) is device-neutral: `crate::passing`.

use super::attention::dot;
use super::par;
use crate::heads::Heads;

/// The training-free score: the softmax attention each local key gets from the embedded
/// query's rows, summed over the rows and over the query heads of each KV head's group.
/// `q_rows`: [rows][q_heads * head_dim] (after RoPE); `k`: [n][kv_heads * head_dim].
/// Returns [kv_heads][n].
pub fn query_scores(q_rows: &[f32], k: &[f32], heads: Heads) -> Vec<f32> {
    let d = heads.head_dim;
    let (qw, kvw) = (heads.q_heads * d, heads.kv_heads * d);
    let rows = q_rows.len() / qw;
    let n = k.len() / kvw;
    let group = heads.q_heads / heads.kv_heads;
    let scale = 1.0 / (d as f32).sqrt();
    let per_kv_head = par::map(heads.kv_heads, |g| {
        let mut total = vec![0.0f32; n];
        let mut logits = vec![0.0f32; n];
        for h in g * group..(g + 1) * group {
            for r in 0..rows {
                let q = &q_rows[r * qw + h * d..r * qw + (h + 1) * d];
                let mut m = f32::NEG_INFINITY;
                for (j, l) in logits.iter_mut().enumerate() {
                    *l = dot(q, &k[j * kvw + g * d..j * kvw + (g + 1) * d]) * scale;
                    m = m.max(*l);
                }
                let mut sum = 0.0f32;
                for l in logits.iter_mut() {
                    *l = (*l - m).exp();
                    sum += *l;
                }
                for (t, l) in total.iter_mut().zip(&logits) {
                    *t += l / sum;
                }
            }
        }
        total
    });
    per_kv_head.concat()
}

/// Gathers, for each KV head, its own selected tokens: out[j] holds, in KV head g's
/// columns, token `picked[g][j]`. `kv`: [n][kv_heads * head_dim].
pub fn gather_per_head(kv: &[f32], picked: &[Vec<u32>], head_dim: usize) -> Vec<f32> {
    let kv_heads = picked.len();
    let kvw = kv_heads * head_dim;
    let count = picked.first().map_or(0, |p| p.len());
    let mut out = vec![0.0f32; count * kvw];
    for (g, tokens) in picked.iter().enumerate() {
        for (j, &t) in tokens.iter().enumerate() {
            let src = t as usize * kvw + g * head_dim;
            out[j * kvw + g * head_dim..j * kvw + (g + 1) * head_dim].copy_from_slice(&kv[src..src + head_dim]);
        }
    }
    out
}
