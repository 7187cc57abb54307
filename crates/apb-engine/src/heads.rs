//! The attention geometry every backend and the forward share: query heads, KV heads (GQA:
//! `q_heads / kv_heads` query heads read each KV head) and the head dimension.

#[derive(Debug, Clone, Copy)]
pub struct Heads {
    pub q_heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}
