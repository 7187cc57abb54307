//! Shared helpers for the integration tests: a seeded PRNG (no external crates) and inputs.
#![allow(dead_code)]

use apb_plan::input::{Hardware, ModelShape, PlanInput, Scorer, Strategy};

pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock so each run checks fresh inputs; the seed is printed so a
    /// failure can be replayed with APB_TEST_SEED.
    pub fn fresh() -> Rng {
        let seed = std::env::var("APB_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("APB_TEST_SEED={seed}");
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Uniform in [lo, hi].
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

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
        balanced: false,
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
    i.balanced = strategy.has_anchor() && rng.next() % 3 == 0;
    i
}
