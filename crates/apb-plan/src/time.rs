//! The time model: a roofline per phase (FLOPs at the profile's TFLOP/s, or bytes at HBM
//! speed, whichever is slower), links as latency + bytes / bandwidth, and the critical path
//! across hosts. APB and Ulysses synchronise every layer at their collective, so a layer
//! takes as long as its slowest host plus the collective; ring steps overlap compute with
//! the transfer of the next block.

use crate::cost::{self, HostWork, QueryWork};
use crate::kernel;
use crate::input::{PlanInput, Strategy};
use crate::layout::{HostLayout, KeySegment, KeySource, Layout, Mask, QueryRange, RowKind};
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

/// How closely attention calls are timed where the profile describes the kernel's blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Every call's last waves dispatched block by block: a plan's times.
    Waves,
    /// Every call's blocks spread evenly: balance.rs's many trial sizes, which need each
    /// host's cost in proportion, quickly.
    Spread,
}

/// Seconds of attention over these query ranges (one kernel call each) on `q_heads` heads:
/// block by block where the profile describes the kernel's blocks (`kernel.rs`), else their
/// FLOPs at the profile's attention rate.
fn attention_calls(input: &PlanInput, ranges: &[QueryRange], q_heads: u64, detail: Detail) -> f64 {
    let hw = &input.hardware;
    let head_dim = input.model.head_dim;
    let spread = detail == Detail::Spread;
    match &hw.attention_blocks {
        Some(blocks) => {
            let tile = kernel::tile_seconds(hw.attention_tflops, blocks, head_dim);
            ranges.iter().map(|r| kernel::call_seconds(blocks, tile, r, q_heads, head_dim, spread)).sum()
        }
        None => tflops(ranges.iter().map(|r| cost::range_attention_flops(r, q_heads, head_dim)).sum(), hw.attention_tflops),
    }
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

/// The query-aware scorer first runs the query rows' attention over the host's local keys,
/// for the softmax normaliser its scores are taken against (the scores' own FLOPs are in
/// `scoring_flops`).
fn query_scorer_attention(input: &PlanInput, host: &HostLayout, detail: Detail) -> f64 {
    if host.passing.sends == 0 || input.scorer != crate::input::Scorer::Query || input.query_tokens == 0 {
        return 0.0;
    }
    let keys = KeySegment { source: KeySource::Local, start: 0, count: host.local_tokens, mask: Mask::Full };
    let rows = QueryRange { rows: RowKind::Anchor, row_start: 0, row_count: input.query_tokens, keys: vec![keys] };
    attention_calls(input, &[rows], host.q_heads.1, detail)
}

/// Per-layer time of one host's own prefill work; `communication` is its collective's time.
pub fn host_phases(input: &PlanInput, s: &Settings, host: &HostLayout, work: &HostWork, detail: Detail) -> PhaseTimes {
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
        attention: attention_calls(input, &host.segments, host.q_heads.1, detail).max(hbm(input, work.attention_kv_bytes)),
        scoring: gemm(input, work.scoring_flops, scoring_weights) + query_scorer_attention(input, host, detail),
        elementwise: elementwise(input, work.rows),
        communication,
    }
}

/// Critical path of one layer of prefill across all hosts, in seconds.
pub fn layer_critical_path(input: &PlanInput, layout: &Layout, phases: &[PhaseTimes], detail: Detail) -> f64 {
    let s = &layout.settings;
    let max = |f: &dyn Fn(&PhaseTimes) -> f64| phases.iter().map(f).fold(0.0, f64::max);
    match s.strategy {
        Strategy::Ring | Strategy::RingZigzag if s.hosts > 1 => {
            let other = max(&|p| p.compute() - p.attention);
            other + ring_attention_steps(input, layout, detail)
        }
        Strategy::Ulysses => {
            max(&|p| p.projections + p.ffn + p.elementwise) + max(&|p| p.attention) + max(&|p| p.communication)
        }
        _ => max(&|p| p.compute()) + max(&|p| p.communication),
    }
}

/// Ring attention runs in H steps, each overlapping one host's attention to the block it
/// holds (the plan's `ring_steps`) with the transfer of the next block; a step lasts as long
/// as its slowest host or the transfer, whichever is longer. A host's step is bound by its
/// attention calls over what it sees of the held block or by reading that block's KV. The
/// calls are the same for every step of a run, so each run is costed once; and every block is held by
/// exactly one host at every step, so the slowest read at any step is the largest block's.
/// The steps' slowest calls come from a range maximum over the runs, so a layer costs
/// O((H + runs) log H), not a walk of H steps on each of H hosts. Each step also moves its
/// partial output (`ring_step_copies`) before the next transfer is waited for.
fn ring_attention_steps(input: &PlanInput, layout: &Layout, detail: Detail) -> f64 {
    let s = &layout.settings;
    let kv_token = cost::kv_bytes_per_token(input, input.model.kv_heads);
    let transfer = link(input, s.block_tokens as f64 * kv_token, 1.0);
    let largest_read = layout.hosts.iter().map(|h| hbm(input, h.local_tokens as f64 * kv_token)).fold(0.0, f64::max);
    let (first_copies, later_copies) = ring_step_copies(input, layout);
    let mut slowest = StepMax::new(s.hosts as usize);
    for run in layout.hosts.iter().flat_map(|h| h.ring_steps.iter()) {
        slowest.raise(run.first_step, run.steps, attention_calls(input, &run.segments, input.model.heads, detail));
    }
    let mut total = 0.0;
    for step in 0..slowest.steps {
        let copies = if step == 0 { first_copies } else { later_copies };
        total += (slowest.at(step).max(largest_read) + copies).max(transfer);
    }
    total
}

/// Seconds a ring step spends moving its rows' partial output, on the host with the most
/// rows: where a host's rows are split into ranges (zigzag's two chunks), the engine copies
/// each range's rows out of Q and joins the ranges' outputs (O and LSE) into one, two passes
/// over the rows each; after the first step it merges the step's output into the running one
/// by LSE (reads both, writes one). Returns (first step, later steps).
pub fn ring_step_copies(input: &PlanInput, layout: &Layout) -> (f64, f64) {
    let m = &input.model;
    let row_bytes = |h: &HostLayout| h.local_tokens as f64 * h.q_heads.1 as f64 * (m.head_dim as f64 * input.activation_bytes + 4.0);
    let rows = layout.hosts.iter().map(row_bytes).fold(0.0, f64::max);
    let split = layout.hosts.iter().any(|h| h.local.iter().filter(|r| !r.is_empty()).count() > 1);
    let first = if split { hbm(input, 4.0 * rows) } else { 0.0 };
    (first, first + hbm(input, 3.0 * rows))
}

/// The largest value given to each step, where values are given to runs of steps: a
/// segment tree over the steps (bottom-up, any length) whose nodes keep the largest value
/// given to the whole of their span, so a step's value is the largest on its way to the root.
struct StepMax {
    steps: usize,
    tree: Vec<f64>,
}

impl StepMax {
    fn new(steps: usize) -> StepMax {
        StepMax { steps, tree: vec![0.0; 2 * steps] }
    }

    /// Raises steps first..first + count (clipped to the steps) to at least `value`.
    fn raise(&mut self, first: u64, count: u64, value: f64) {
        let n = self.steps as u64;
        let (first, end) = (first.min(n), first.saturating_add(count).min(n));
        let (mut lo, mut hi) = ((first + n) as usize, (end + n) as usize);
        while lo < hi {
            if lo % 2 == 1 {
                self.lift(lo, value);
                lo += 1;
            }
            if hi % 2 == 1 {
                hi -= 1;
                self.lift(hi, value);
            }
            lo /= 2;
            hi /= 2;
        }
    }

    fn lift(&mut self, node: usize, value: f64) {
        if let Some(v) = self.tree.get_mut(node) {
            *v = v.max(value);
        }
    }

    fn at(&self, step: usize) -> f64 {
        let mut node = step + self.steps;
        let mut largest: f64 = 0.0;
        while node > 0 {
            largest = largest.max(self.tree.get(node).copied().unwrap_or(0.0));
            node /= 2;
        }
        largest
    }
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
