//! The parts of a decoder layer that every strategy shares: q/k/v with RoPE, and the
//! output projection plus the SwiGLU FFN with their residual adds.

use crate::backend::Backend;
use crate::error::{code, EngineError, Result};
use crate::model::Model;
use crate::weights::LayerWeights;

pub struct Qkv<B: Backend> {
    pub q: B::Buf,
    pub k: B::Buf,
    pub v: B::Buf,
}

/// q, k and v of `x` before RoPE.
pub fn project<B: Backend>(m: &Model<B>, w: &LayerWeights<B>, x: &B::Buf) -> Result<Qkv<B>> {
    let c = &m.config;
    let b = &m.backend;
    let h = b.rms_norm(x, &w.attn_norm, c.rms_norm_eps)?;
    Ok(Qkv {
        q: b.linear(&h, c.hidden, &w.wq, c.q_width(), w.bq.as_ref())?,
        k: b.linear(&h, c.hidden, &w.wk, c.kv_width(), w.bk.as_ref())?,
        v: b.linear(&h, c.hidden, &w.wv, c.kv_width(), w.bv.as_ref())?,
    })
}

pub fn rotate<B: Backend>(m: &Model<B>, qkv: &mut Qkv<B>, positions: &[u32]) -> Result<()> {
    let c = &m.config;
    m.backend.rope(&mut qkv.q, c.heads, c.head_dim, positions, &m.inv_freq)?;
    m.backend.rope(&mut qkv.k, c.kv_heads, c.head_dim, positions, &m.inv_freq)
}

/// x += o_proj(attention); x += down(silu(gate(norm x)) * up(norm x)).
pub fn finish<B: Backend>(m: &Model<B>, w: &LayerWeights<B>, x: &mut B::Buf, attention: &B::Buf) -> Result<()> {
    let c = &m.config;
    let b = &m.backend;
    let h = b.add_rms_norm(x, &b.linear(attention, c.q_width(), &w.wo, c.hidden, None)?, &w.ffn_norm, c.rms_norm_eps)?;
    let gate_up = b.linear(&h, c.hidden, &w.w_gate_up, 2 * c.intermediate, None)?;
    let act = b.silu_mul(&gate_up, c.intermediate)?;
    b.add(x, &b.linear(&act, c.intermediate, &w.w_down, c.hidden, None)?)
}

/// Logits of the last row of `x`.
pub fn logits<B: Backend>(m: &Model<B>, x: &B::Buf) -> Result<Vec<f32>> {
    let c = &m.config;
    let b = &m.backend;
    let rows = b.len(x) / c.hidden;
    let last = b.rows(x, c.hidden, rows - 1, 1)?;
    check_hidden(&b.download(&last)?)?;
    let h = b.rms_norm(&last, &m.weights.final_norm, c.rms_norm_eps)?;
    b.download(&b.linear(&h, c.hidden, &m.weights.lm_head, c.vocab, None)?)
}

/// A hidden state whose squares overflow float32 normalizes to zeros (RMSNorm divides by an
/// infinite root), so every logit comes out 0 and the sampler answers token 0 forever, or to
/// NaN where a value is itself infinite. Either way the logits mean nothing: refuse them.
fn check_hidden(row: &[f32]) -> Result<()> {
    if row.iter().map(|v| v * v).sum::<f32>().is_finite() {
        return Ok(());
    }
    let largest = row.iter().fold(0.0f32, |m, v| if v.is_nan() || v.abs() > m { v.abs() } else { m });
    Err(EngineError::new(
        code::NUMERIC,
        "logits",
        format!(
            "the model's hidden state overflows float32 (a value of {largest:e}) before its last norm, so its logits would mean nothing: its weights or activations are far too large. Check the checkpoint (weights saved from a diverged run, or scaled wrongly on conversion)"
        ),
    ))
}
