//! Shared helpers for the integration tests: the seeded PRNG (apb-test-support) and inputs.
#![allow(dead_code)]

use apb_plan::input::{Hardware, ModelShape, PlanInput, Scorer, Strategy};
pub use apb_test_support::Rng;

pub fn llama8b() -> ModelShape {
    ModelShape {
        layers: 32,
        hidden: 4096,
        heads: 32,
        kv_heads: 8,
        head_dim: 128,
        intermediate: 14336,
        vocab: 128256,
        bytes_per_weight: 2.0,
        tied_embeddings: false,
        retaining_hidden: 1024,
    }
}

pub fn h100() -> Hardware {
    Hardware {
        matmul_tflops: 700.0,
        attention_tflops: 330.0,
        hbm_gbs: 3000.0,
        link_gbs: 45.0,
        link_latency_us: 10.0,
        memory_gib: 80.0,
        attention_blocks: None,
    }
}

pub fn input(context: u64, hosts: u64, strategy: Strategy) -> PlanInput {
    PlanInput {
        context_tokens: context,
        query_tokens: 128,
        prefix_tokens: 1,
        hosts,
        strategy,
        anchor_tokens: None,
        passing_tokens: None,
        balanced: Some(false),
        query_in_anchor: strategy != Strategy::Star,
        scorer: Scorer::Query,
        kv_bytes: 2.0,
        activation_bytes: 2.0,
        model: llama8b(),
        hardware: h100(),
    }
}

/// A random valid input for `strategy`: lengths from tiny to long, odd and even host counts.
pub fn random_input(rng: &mut Rng, strategy: Strategy) -> PlanInput {
    let hosts = if strategy == Strategy::Ulysses { rng.pick(&[1, 2, 4, 8, 16, 32]) } else { rng.range(1, 24) };
    let min_context = hosts * 2 * (1 + 128 + 1);
    let context = rng.range(min_context, min_context.max(300_000));
    let mut i = input(context, hosts, strategy);
    i.query_tokens = rng.range(1, 128);
    i.prefix_tokens = rng.range(0, 16);
    i.balanced = if strategy.has_anchor() && rng.next() % 3 == 0 { Some(true) } else { None };
    i
}
