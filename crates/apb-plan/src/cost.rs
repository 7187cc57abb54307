//! FLOPs, bytes moved and memory per host, derived from the layout. Attention FLOPs are
//! counted as FlashAttention counts them: 4 * heads * rows * keys * head_dim for fully
//! visible keys, with causal rows counted as half of their own square.

use crate::input::{PlanInput, Scorer, Strategy};
use crate::layout::{HostLayout, KeySource, Mask, QueryRange};
use crate::settings::Settings;

/// Per-layer work of one host during prefill.
#[derive(Debug, Clone, PartialEq)]
pub struct HostWork {
    /// Rows that go through the projections and the FFN (anchor or probe + local).
    pub rows: u64,
    pub projection_flops: f64,
    pub ffn_flops: f64,
    pub attention_flops: f64,
    pub scoring_flops: f64,
    /// Key and value bytes attention reads (each segment once).
    pub attention_kv_bytes: f64,
    pub sent_bytes: f64,
    pub received_bytes: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Memory {
    pub weights: f64,
    pub kv_kept: f64,
    pub kv_transient: f64,
    pub activations: f64,
    pub total: f64,
}

/// Per-layer work of one host in the query pass that follows prefill: the query rows run
/// on every host against its kept KV, and partial outputs are merged on the last host.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryWork {
    pub projection_flops: f64,
    pub ffn_flops: f64,
    pub attention_flops: f64,
    pub attention_kv_bytes: f64,
    pub merge_bytes: f64,
}

pub fn attention_pairs(rows: u64, keys: u64, mask: Mask) -> f64 {
    let (r, k) = (rows as f64, keys as f64);
    match mask {
        Mask::Full => r * k,
        // Bottom-right aligned: rows see (keys - rows) keys in full, then their own square
        // as a triangle (FlashAttention counts it as half).
        Mask::Causal if keys >= rows => r * (k - r) + r * r / 2.0,
        Mask::Causal => k * k / 2.0,
    }
}

pub fn range_attention_flops(range: &QueryRange, q_heads: u64, head_dim: u64) -> f64 {
    let pairs: f64 = range.keys.iter().map(|k| attention_pairs(range.row_count, k.count, k.mask)).sum();
    4.0 * q_heads as f64 * head_dim as f64 * pairs
}

pub fn kv_bytes_per_token(input: &PlanInput, kv_heads: u64) -> f64 {
    2.0 * kv_heads as f64 * input.model.head_dim as f64 * input.kv_bytes
}

/// Projection FLOPs per row: q, k, v and o.
pub fn projection_flops_per_row(input: &PlanInput) -> f64 {
    let m = &input.model;
    let (d, hd) = (m.hidden as f64, m.head_dim as f64);
    2.0 * (d * m.heads as f64 * hd * 2.0 + 2.0 * d * m.kv_heads as f64 * hd)
}

pub fn ffn_flops_per_row(input: &PlanInput) -> f64 {
    2.0 * 3.0 * input.model.hidden as f64 * input.model.intermediate as f64
}

fn scoring_flops(input: &PlanInput, host: &HostLayout) -> f64 {
    if host.passing.sends == 0 {
        return 0.0;
    }
    let m = &input.model;
    let local = host.local_tokens as f64;
    match input.scorer {
        // Logits of the query rows against every local key, per query head.
        Scorer::Query => 2.0 * m.heads as f64 * input.query_tokens as f64 * local * m.head_dim as f64,
        Scorer::RetainingHeads => {
            let qkv = ((m.heads + 2 * m.kv_heads) * m.head_dim) as f64;
            let r = m.retaining_hidden as f64;
            2.0 * local * (qkv * r + r * m.kv_heads as f64)
        }
    }
}

/// Bytes each host sends and receives per layer during prefill.
fn traffic(input: &PlanInput, s: &Settings, host: &HostLayout) -> (f64, f64) {
    let h = s.hosts as f64;
    if s.hosts == 1 {
        return (0.0, 0.0);
    }
    let kv_token = kv_bytes_per_token(input, input.model.kv_heads);
    match s.strategy {
        // One all-gather of every host's passing block (ring algorithm: H-1 blocks each way).
        Strategy::Apb if s.passing_tokens > 0 => {
            let b = (h - 1.0) * s.passing_tokens as f64 * kv_token;
            (b, b)
        }
        Strategy::Ring | Strategy::RingZigzag => {
            let b = (h - 1.0) * s.block_tokens as f64 * kv_token;
            (b, b)
        }
        Strategy::Ulysses => {
            let m = &input.model;
            let others = (input.context_tokens - host.local_tokens) as f64;
            let (qh, kvh) = (host.q_heads.1 as f64, host.kv_heads.1 as f64);
            let per_token = (qh + 2.0 * kvh + qh) * m.head_dim as f64 * input.activation_bytes;
            (others * per_token, others * per_token)
        }
        _ => (0.0, 0.0),
    }
}

pub fn host_work(input: &PlanInput, s: &Settings, host: &HostLayout) -> HostWork {
    let rows = host.anchor.tokens + host.local_tokens;
    let hd = input.model.head_dim;
    let kv_token = kv_bytes_per_token(input, host.kv_heads.1);
    let attention_flops = host.segments.iter().map(|r| range_attention_flops(r, host.q_heads.1, hd)).sum();
    let attention_kv_bytes = host
        .segments
        .iter()
        .flat_map(|r| r.keys.iter())
        .filter(|k| k.source != KeySource::Anchor || k.mask == Mask::Causal)
        .map(|k| k.count as f64 * kv_token)
        .sum();
    let (sent_bytes, received_bytes) = traffic(input, s, host);
    HostWork {
        rows,
        projection_flops: rows as f64 * projection_flops_per_row(input),
        ffn_flops: rows as f64 * ffn_flops_per_row(input),
        attention_flops,
        scoring_flops: scoring_flops(input, host),
        attention_kv_bytes,
        sent_bytes,
        received_bytes,
    }
}

/// Tokens of KV a host keeps after prefill: its local block; the last host also keeps the
/// query's KV (it alone appends new tokens).
pub fn kept_tokens(input: &PlanInput, s: &Settings, host: &HostLayout) -> u64 {
    let last = host.host + 1 == s.hosts;
    let base = if s.strategy == Strategy::Ulysses { input.context_tokens } else { host.local_tokens };
    base + if last { input.query_tokens } else { 0 }
}

pub fn query_work(input: &PlanInput, s: &Settings, host: &HostLayout) -> QueryWork {
    let m = &input.model;
    let q = input.query_tokens;
    let last = host.host + 1 == s.hosts;
    let context_kv = kept_tokens(input, s, host) - if last { q } else { 0 };
    let mut pairs = attention_pairs(q, context_kv, Mask::Full);
    if last {
        pairs += attention_pairs(q, q, Mask::Causal);
    }
    let heads = host.q_heads.1 as f64;
    let merge_bytes = if s.hosts > 1 && !last {
        // Partial O (activations) and LSE (fp32) for the query rows, to the last host.
        q as f64 * heads * (m.head_dim as f64 * input.activation_bytes + 4.0)
    } else {
        0.0
    };
    QueryWork {
        projection_flops: q as f64 * projection_flops_per_row(input),
        ffn_flops: q as f64 * ffn_flops_per_row(input),
        attention_flops: 4.0 * heads * m.head_dim as f64 * pairs,
        attention_kv_bytes: kept_tokens(input, s, host) as f64 * kv_bytes_per_token(input, host.kv_heads.1),
        merge_bytes,
    }
}

pub fn parameter_count(input: &PlanInput) -> f64 {
    let m = &input.model;
    let (d, hd, f) = (m.hidden as f64, m.head_dim as f64, m.intermediate as f64);
    let embeddings = m.vocab as f64 * d * if m.tied_embeddings { 1.0 } else { 2.0 };
    let per_layer = d * m.heads as f64 * hd * 2.0 + 2.0 * d * m.kv_heads as f64 * hd + 3.0 * d * f + 2.0 * d;
    embeddings + m.layers as f64 * per_layer + d
}

pub fn retaining_parameter_count(input: &PlanInput) -> f64 {
    let m = &input.model;
    let r = m.retaining_hidden as f64;
    let qkv = ((m.heads + 2 * m.kv_heads) * m.head_dim) as f64;
    m.layers as f64 * (qkv * r + r * m.kv_heads as f64)
}

pub fn memory(input: &PlanInput, s: &Settings, host: &HostLayout) -> Memory {
    let m = &input.model;
    let act = input.activation_bytes;
    let uses_heads = input.scorer == Scorer::RetainingHeads && s.strategy == Strategy::Apb && s.passing_tokens > 0;
    let weights =
        (parameter_count(input) + if uses_heads { retaining_parameter_count(input) } else { 0.0 }) * m.bytes_per_weight;
    let kv_token = kv_bytes_per_token(input, host.kv_heads.1);
    let kv_kept = m.layers as f64 * kept_tokens(input, s, host) as f64 * kv_token;
    // One layer's worth: anchor and passing KV are dropped once that layer's attention ends.
    let kv_transient = match s.strategy {
        Strategy::Apb | Strategy::Star => {
            let gathered = if s.hosts > 1 { s.hosts * s.passing_tokens } else { 0 };
            (host.anchor.tokens + gathered) as f64 * kv_token
        }
        // Double-buffered block in flight.
        Strategy::Ring | Strategy::RingZigzag if s.hosts > 1 => 2.0 * s.block_tokens as f64 * kv_token,
        Strategy::Ulysses => {
            let per_token = (host.q_heads.1 + 2 * host.kv_heads.1) as f64 * m.head_dim as f64 * act;
            input.context_tokens as f64 * per_token
        }
        _ => 0.0,
    };
    let rows = (host.anchor.tokens + host.local_tokens) as f64;
    let (d, f) = (m.hidden as f64, m.intermediate as f64);
    let qkv_width = ((m.heads + 2 * m.kv_heads) * m.head_dim) as f64;
    // fp32 residual, normed input, q/k/v, attention output and LSE, gate/up/product.
    let per_row = d * 4.0 + d * act + qkv_width * act + m.heads as f64 * (m.head_dim as f64 * act + 4.0) + 3.0 * f * act;
    let scoring_scratch = if host.passing.sends > 0 { m.kv_heads as f64 * host.local_tokens as f64 * 4.0 } else { 0.0 };
    let logits = m.vocab as f64 * 4.0;
    let activations = rows * per_row + scoring_scratch + logits;
    Memory { weights, kv_kept, kv_transient, activations, total: weights + kv_kept + kv_transient + activations }
}
