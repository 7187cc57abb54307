//! The work a calibration times, counted the way the planner counts it (apb-plan's cost.rs),
//! so a rate measured here means what the planner divides by: GEMM FLOPs are 2 * M * N * K
//! over a Llama layer's projections and FFN; causal attention counts its square as half.

use crate::heads::Heads;

/// The sizes of one transformer layer that set the calibration's shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerShape {
    pub hidden: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub intermediate: usize,
}

impl LayerShape {
    pub fn heads(&self) -> Heads {
        Heads { q_heads: self.heads, kv_heads: self.kv_heads, head_dim: self.head_dim }
    }
}

/// One GEMM of a layer: [tokens][k] times a weight [n][k] (checkpoint layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gemm {
    pub name: &'static str,
    /// Output width.
    pub n: usize,
    /// Input width.
    pub k: usize,
}

impl Gemm {
    pub fn flops(&self, tokens: usize) -> f64 {
        2.0 * tokens as f64 * self.n as f64 * self.k as f64
    }
}

/// A layer's GEMMs: q, k and v (timed as one GEMM of k's and v's combined width; the forward
/// runs k and v apart, with the same FLOPs), o, gate and up stacked as the forward runs them,
/// and down.
pub fn layer_gemms(s: &LayerShape) -> [Gemm; 5] {
    let (d, q_width, kv_width) = (s.hidden, s.heads * s.head_dim, s.kv_heads * s.head_dim);
    [
        Gemm { name: "q", n: q_width, k: d },
        Gemm { name: "kv", n: 2 * kv_width, k: d },
        Gemm { name: "o", n: d, k: q_width },
        Gemm { name: "gate_up", n: 2 * s.intermediate, k: d },
        Gemm { name: "down", n: d, k: s.intermediate },
    ]
}

/// FLOPs of one layer's GEMMs over `tokens` rows.
pub fn layer_gemm_flops(s: &LayerShape, tokens: usize) -> f64 {
    layer_gemms(s).iter().map(|g| g.flops(tokens)).sum()
}

/// FLOPs of causal self-attention over `tokens` rows, as FlashAttention (and the planner)
/// counts them: 4 * heads * head_dim per visible query-key pair, the causal square as half.
pub fn causal_attention_flops(heads: Heads, tokens: usize) -> f64 {
    let pairs = apb_plan::cost::attention_pairs(tokens as u64, tokens as u64, apb_plan::layout::Mask::Causal);
    4.0 * heads.q_heads as f64 * heads.head_dim as f64 * pairs
}
