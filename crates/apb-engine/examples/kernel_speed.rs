//! Rough GFLOP/s of the CPU linear and attention kernels (for tuning; not a test).
use apb_engine::cpu::attention::{attention, KeySegment};
use apb_engine::Heads;
use apb_engine::cpu::linear::linear;
use std::time::Instant;

fn main() {
    let (rows, inp, outp) = (2048, 768, 2048);
    let x = vec![0.5f32; rows * inp];
    let wt = vec![0.25f32; inp * outp];
    let mut out = vec![0.0f32; rows * outp];
    let t = Instant::now();
    linear(&x, inp, &wt, outp, None, &mut out);
    let s = t.elapsed().as_secs_f64();
    println!("linear {rows}x{inp}x{outp}: {:.1} GFLOP/s", 2.0 * (rows * inp * outp) as f64 / s / 1e9);

    let heads = Heads { q_heads: 12, kv_heads: 4, head_dim: 64 };
    let n: usize = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2048);
    let q = vec![0.01f32; n * 12 * 64];
    let k = vec![0.01f32; n * 4 * 64];
    let v = vec![0.01f32; n * 4 * 64];
    let mut o = vec![0.0f32; q.len()];
    let mut lse = vec![0.0f32; n * 12];
    let t = Instant::now();
    attention(&q, heads, &[KeySegment { k: &k, v: &v, start: 0, count: n, causal: true }], &mut o, &mut lse);
    let s = t.elapsed().as_secs_f64();
    let flops = 4.0 * 12.0 * (n as f64) * (n as f64 / 2.0) * 64.0;
    println!("attention causal {n}: {:.1} GFLOP/s ({:.2}s)", flops / s / 1e9, s);
}
