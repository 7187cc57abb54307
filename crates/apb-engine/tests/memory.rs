//! Memory is planned before it is used: a backend that reports how much device memory is
//! free gets requests that cannot fit refused up front, with the estimate, and the others run.

mod common;

use apb_engine::backend::{Backend, Segment};
use apb_engine::config::Architecture;
use apb_engine::Heads;
use apb_engine::cpu::backend::Cpu;
use apb_engine::{generate, Model, Result};
use apb_plan::input::Strategy;
use std::sync::atomic::{AtomicUsize, Ordering};
use common::*;

/// The CPU backend, claiming `free_bytes` of device memory and 2 bytes a value (as bf16),
/// and counting the embeddings it computes (the first work of any forward).
struct Limited {
    cpu: Cpu,
    free_bytes: u64,
    embeds: AtomicUsize,
}

impl Backend for Limited {
    type Buf = Vec<f32>;
    fn name(&self) -> &'static str {
        "limited"
    }
    fn free_memory(&self) -> Result<Option<(u64, usize)>> {
        Ok(Some((self.free_bytes, 2)))
    }
    fn upload(&self, data: Vec<f32>) -> Result<Vec<f32>> {
        self.cpu.upload(data)
    }
    fn download(&self, buf: &Vec<f32>) -> Result<Vec<f32>> {
        self.cpu.download(buf)
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        self.cpu.len(buf)
    }
    fn linear_weight(&self, w: Vec<f32>, outp: usize, inp: usize) -> Result<Vec<f32>> {
        self.cpu.linear_weight(w, outp, inp)
    }
    fn embed(&self, table: &Vec<f32>, hidden: usize, ids: &[u32]) -> Result<Vec<f32>> {
        self.embeds.fetch_add(1, Ordering::SeqCst);
        self.cpu.embed(table, hidden, ids)
    }
    fn rms_norm(&self, x: &Vec<f32>, w: &Vec<f32>, eps: f32) -> Result<Vec<f32>> {
        self.cpu.rms_norm(x, w, eps)
    }
    fn linear(&self, x: &Vec<f32>, inp: usize, w: &Vec<f32>, outp: usize, bias: Option<&Vec<f32>>) -> Result<Vec<f32>> {
        self.cpu.linear(x, inp, w, outp, bias)
    }
    fn rope(&self, x: &mut Vec<f32>, heads: usize, head_dim: usize, positions: &[u32], inv_freq: &[f64]) -> Result<()> {
        self.cpu.rope(x, heads, head_dim, positions, inv_freq)
    }
    fn silu_mul(&self, gate_up: &Vec<f32>, width: usize) -> Result<Vec<f32>> {
        self.cpu.silu_mul(gate_up, width)
    }
    fn silu(&self, x: &mut Vec<f32>) -> Result<()> {
        self.cpu.silu(x)
    }
    fn add(&self, x: &mut Vec<f32>, y: &Vec<f32>) -> Result<()> {
        self.cpu.add(x, y)
    }
    fn attention(&self, q: &Vec<f32>, heads: Heads, segments: &[Segment<'_, Vec<f32>>]) -> Result<(Vec<f32>, Vec<f32>)> {
        self.cpu.attention(q, heads, segments)
    }
    fn merge(&self, o: &mut Vec<f32>, lse: &mut Vec<f32>, o2: &Vec<f32>, lse2: &Vec<f32>, head_dim: usize) -> Result<()> {
        self.cpu.merge(o, lse, o2, lse2, head_dim)
    }
    fn rows(&self, x: &Vec<f32>, width: usize, start: usize, count: usize) -> Result<Vec<f32>> {
        self.cpu.rows(x, width, start, count)
    }
    fn concat_rows(&self, parts: &[&Vec<f32>]) -> Result<Vec<f32>> {
        self.cpu.concat_rows(parts)
    }
    fn write_rows(&self, dst: &mut Vec<f32>, width: usize, row_start: usize, src: &Vec<f32>) -> Result<()> {
        self.cpu.write_rows(dst, width, row_start, src)
    }
    fn columns(&self, x: &Vec<f32>, width: usize, start: usize, count: usize) -> Result<Vec<f32>> {
        self.cpu.columns(x, width, start, count)
    }
    fn concat_columns(&self, parts: &[(&Vec<f32>, usize)]) -> Result<Vec<f32>> {
        self.cpu.concat_columns(parts)
    }
    fn query_scores(&self, q_rows: &Vec<f32>, k: &Vec<f32>, heads: Heads) -> Result<Vec<f32>> {
        self.cpu.query_scores(q_rows, k, heads)
    }
    fn gather_per_head(&self, kv: &Vec<f32>, picked: &[Vec<u32>], head_dim: usize) -> Result<Vec<f32>> {
        self.cpu.gather_per_head(kv, picked, head_dim)
    }
}

fn limited_model(free_bytes: u64, rng: &mut Rng) -> Model<Limited> {
    let c = tiny_config(Architecture::Llama);
    let mut source = random_tensors(&c, rng);
    Model::load(Limited { cpu: Cpu, free_bytes, embeds: AtomicUsize::new(0) }, c, &mut source, &mut |_, _| {}).expect("model loads")
}

#[test]
fn a_request_that_cannot_fit_is_refused_before_any_work_and_says_how_much_it_needs() {
    let mut rng = Rng::fresh();
    let c = tiny_config(Architecture::Llama);
    let n = rng.range(300, 500);
    let mut r = full_request(rng.tokens(n, c.vocab), rng.tokens(4, c.vocab));
    r.max_new_tokens = 2;
    // The KV cache alone: every context and query token, every layer, K and V, 2 bytes each.
    let kv_bytes = ((n + 4) * 2 * c.kv_width() * c.layers * 2) as u64;
    for (strategy, hosts) in [(Strategy::Full, 1), (Strategy::Apb, 3), (Strategy::Ring, 2)] {
        let r = apb_engine::Request { strategy, hosts, ..r.clone() };
        let tight = limited_model(kv_bytes / 2, &mut rng);
        let e = generate(&tight, &r, &|_| true).expect_err("must not fit");
        assert_eq!(e.code, "GPU_MEMORY", "{strategy:?}: {e:?}");
        assert_eq!(tight.backend.embeds.load(Ordering::SeqCst), 0, "{strategy:?}: work started before the refusal");
        assert!(e.message.contains("GiB") && e.message.contains("free"), "{}", e.message);
        let out = generate(&limited_model(1 << 40, &mut rng), &r, &|_| true).unwrap_or_else(|e| panic!("{strategy:?}: {e:?}"));
        assert_eq!(out.tokens.len(), 2);
    }
}
