//! The time model: a roofline per phase (FLOPs at the profile's TFLOP/s, or bytes at HBM
//! speed, whichever is slower), links as latency + bytes / bandwidth, and the critical path
//! across hosts. APB and Ulysses synchronise every layer at their collective, so a layer
//! takes as long as its slowest host plus the collective; ring steps overlap compute with
//! the transfer of the next block.

use crate::cost::{self, HostWork, QueryWork};
use crate::input::{PlanInput, Strategy};
use crate::layout::{HostLayout, Layout, Mask, Range};
use crate::settings::Settings;

/// Seconds of one host's prefill work per layer, by phase.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhaseTimes {
    pub projections: f64,
    pub ffn: f64,
    pub attention: f64,
    pub scoring: f64,
    pub elementwise: f64,
    pub communication: f64,
}

impl PhaseTimes {
    pub fn compute(&self) -> f64 {
        self.projections + self.ffn + self.attention + self.scoring + self.elementwise
    }
    pub fn total(&self) -> f64 {
        self.compute() + self.communication
    }
}

fn tflops(flops: f64, tflops: f64) -> f64 {
    flops / (tflops * 1e12)
}

fn hbm(input: &PlanInput, bytes: f64) -> f64 {
    bytes / (input.hardware.hbm_gbs * 1e9)
}

pub fn link(input: &PlanInput, bytes: f64, messages: f64) -> f64 {
    messages * input.hardware.link_latency_us * 1e-6 + bytes / (input.hardware.link_gbs * 1e9)
}

/// A GEMM is bound by its FLOPs or by reading its weights once, whichever is slower.
fn gemm(input: &PlanInput, flops: f64, weight_bytes: f64) -> f64 {
    tflops(flops, input.hardware.matmul_tflops).max(hbm(input, weight_bytes))
}

fn attention(input: &PlanInput, flops: f64, kv_bytes: f64) -> f64 {
    tflops(flops, input.hardware.attention_tflops).max(hbm(input, kv_bytes))
}

pub fn projection_weight_bytes(input: &PlanInput) -> f64 {
    let m = &input.model;
    let (d, hd) = (m.hidden as f64, m.head_dim as f64);
    (2.0 * d * m.heads as f64 * hd + 2.0 * d * m.kv_heads as f64 * hd) * m.bytes_per_weight
}

pub fn ffn_weight_bytes(input: &PlanInput) -> f64 {
    3.0 * input.model.hidden as f64 * input.model.intermediate as f64 * input.model.bytes_per_weight
}

/// Norms, RoPE, residual adds and the SwiGLU product: a few passes over each row.
fn elementwise(input: &PlanInput, rows: u64) -> f64 {
    let m = &input.model;
    hbm(input, rows as f64 * (12.0 * m.hidden as f64 + 3.0 * m.intermediate as f64) * input.activation_bytes)
}

/// Per-layer time of one host's own prefill work; `communication` is its collective's time.
pub fn host_phases(input: &PlanInput, s: &Settings, work: &HostWork) -> PhaseTimes {
    let scoring_weights = if work.scoring_flops > 0.0 && input.scorer == crate::input::Scorer::RetainingHeads {
        cost::retaining_parameter_count(input) / input.model.layers as f64 * input.model.bytes_per_weight
    } else {
        0.0
    };
    let h = s.hosts as f64;
    let communication = match s.strategy {
        _ if s.hosts == 1 => 0.0,
        Strategy::Apb if s.passing_tokens > 0 => link(input, work.received_bytes, h - 1.0),
        Strategy::Ring | Strategy::RingZigzag => link(input, work.received_bytes, h - 1.0),
        // Two all-to-alls: q/k/v in, attention output back.
        Strategy::Ulysses => link(input, work.received_bytes, 2.0 * (h - 1.0)),
        _ => 0.0,
    };
    PhaseTimes {
        projections: gemm(input, work.projection_flops, projection_weight_bytes(input)),
        ffn: gemm(input, work.ffn_flops, ffn_weight_bytes(input)),
        attention: attention(input, work.attention_flops, work.attention_kv_bytes),
        scoring: gemm(input, work.scoring_flops, scoring_weights),
        elementwise: elementwise(input, work.rows),
        communication,
    }
}

/// Critical path of one layer of prefill across all hosts, in seconds.
pub fn layer_critical_path(input: &PlanInput, layout: &Layout, phases: &[PhaseTimes]) -> f64 {
    let s = &layout.settings;
    let max = |f: &dyn Fn(&PhaseTimes) -> f64| phases.iter().map(f).fold(0.0, f64::max);
    match s.strategy {
        Strategy::Ring | Strategy::RingZigzag if s.hosts > 1 => {
            let other = max(&|p| p.compute() - p.attention);
            other + ring_attention_steps(input, layout)
        }
        Strategy::Ulysses => {
            max(&|p| p.projections + p.ffn + p.elementwise) + max(&|p| p.attention) + max(&|p| p.communication)
        }
        _ => max(&|p| p.compute()) + max(&|p| p.communication),
    }
}

/// Ring attention runs in H steps; at step s host h attends to the block that started on
/// host (h - s) mod H while the next block is in flight. A step lasts as long as its
/// slowest host or the transfer, whichever is longer.
fn ring_attention_steps(input: &PlanInput, layout: &Layout) -> f64 {
    let s = &layout.settings;
    let hosts = &layout.hosts;
    let kv_token = cost::kv_bytes_per_token(input, input.model.kv_heads);
    let transfer = link(input, s.block_tokens as f64 * kv_token, 1.0);
    let scale = 4.0 * input.model.heads as f64 * input.model.head_dim as f64;
    let mut total = 0.0;
    for step in 0..s.hosts {
        let mut slowest: f64 = 0.0;
        for (h, host) in hosts.iter().enumerate() {
            let from = &hosts[(h + hosts.len() - step as usize) % hosts.len()];
            let flops = scale * visible_pairs(&host.local, &from.local);
            slowest = slowest.max(attention(input, flops, from.local_tokens as f64 * kv_token));
        }
        total += slowest.max(transfer);
    }
    total
}

/// Query-key pairs (FlashAttention-counted) between a host's query ranges and the key
/// ranges of another host, in document order: earlier keys in full, the same range causal.
fn visible_pairs(queries: &[Range], keys: &[Range]) -> f64 {
    let mut pairs = 0.0;
    for q in queries.iter().filter(|r| !r.is_empty()) {
        for k in keys.iter().filter(|r| !r.is_empty()) {
            if k.end <= q.start {
                pairs += cost::attention_pairs(q.len(), k.len(), Mask::Full);
            } else if k.start == q.start {
                pairs += cost::attention_pairs(q.len(), k.len(), Mask::Causal);
            }
        }
    }
    pairs
}

/// Seconds of one layer of the query pass on one host, and of its merge.
pub fn query_layer(input: &PlanInput, work: &QueryWork) -> (f64, f64) {
    let compute = gemm(input, work.projection_flops, projection_weight_bytes(input))
        + gemm(input, work.ffn_flops, ffn_weight_bytes(input))
        + attention(input, work.attention_flops, work.attention_kv_bytes)
        + elementwise(input, input.query_tokens);
    let merge = if work.merge_bytes > 0.0 { link(input, work.merge_bytes, 1.0) } else { 0.0 };
    (compute, merge)
}

/// The language-model head for the last position: produces the first token.
pub fn lm_head(input: &PlanInput) -> f64 {
    let m = &input.model;
    let weights = m.vocab as f64 * m.hidden as f64 * m.bytes_per_weight;
    gemm(input, 2.0 * m.hidden as f64 * m.vocab as f64, weights)
}

pub fn host_query_time(input: &PlanInput, s: &Settings, host: &HostLayout) -> (f64, f64) {
    query_layer(input, &cost::query_work(input, s, host))
}
