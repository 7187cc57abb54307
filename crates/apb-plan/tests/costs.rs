//! FLOPs, bytes and memory against closed forms written out by hand.

mod common;

use apb_plan::input::Strategy;
use apb_plan::plan;
use common::input;

const NQ: f64 = 32.0;
const HD: f64 = 128.0;
const KV_TOKEN: f64 = 2.0 * 8.0 * 128.0 * 2.0; // K and V, 8 KV heads, d 128, bf16
const LAYERS: f64 = 32.0;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * b.abs().max(1.0)
}

#[test]
fn full_attention_flops_are_the_flash_attention_count() {
    let n = 131_072.0;
    let p = plan(&input(131_072, 1, Strategy::Full)).unwrap();
    assert!(close(p.hosts[0].work.attention_flops, 4.0 * NQ * n * (n / 2.0) * HD));
    let rows_proj = 2.0 * (4096.0 * 4096.0 * 2.0 + 2.0 * 4096.0 * 1024.0);
    assert!(close(p.hosts[0].work.projection_flops, n * rows_proj));
    assert!(close(p.hosts[0].work.ffn_flops, n * 6.0 * 4096.0 * 14336.0));
}

#[test]
fn apb_host_flops_and_bytes_at_128k_on_8_hosts() {
    let p = plan(&input(131_072, 8, Strategy::Apb)).unwrap();
    let (lb, la, lp) = (16_384.0, 4096.0, 2048.0);
    for h in 1..8 {
        let w = &p.hosts[h].work;
        let anchor = 4.0 * NQ * la * (la / 2.0) * HD;
        let local = 4.0 * NQ * lb * (h as f64 * lp + la + lb / 2.0) * HD;
        assert!(close(w.attention_flops, anchor + local), "host {h}");
        // All-gather (ring algorithm): every host sends and receives 7 blocks per layer.
        assert!(close(w.received_bytes, 7.0 * lp * KV_TOKEN));
        assert!(close(w.sent_bytes, 7.0 * lp * KV_TOKEN));
        // Query-aware scoring: 128 query rows against the local keys, per query head.
        let scoring = if h < 7 { 2.0 * NQ * 128.0 * lb * HD } else { 0.0 };
        assert!(close(w.scoring_flops, scoring), "host {h}");
    }
    // Host 0: its probe (BOS + query, 129 rows) attends causally; local rows see only local keys.
    let w0 = &p.hosts[0].work;
    assert!(close(w0.attention_flops, 4.0 * NQ * HD * (129.0 * 129.0 / 2.0 + lb * lb / 2.0)));
    assert_eq!(w0.rows, 16_384 + 129);
}

#[test]
fn ring_moves_every_block_around_and_ulysses_two_all_to_alls() {
    let ring = plan(&input(65_536, 4, Strategy::Ring)).unwrap();
    assert!(close(ring.hosts[2].work.sent_bytes, 3.0 * 16_384.0 * KV_TOKEN));
    // Host 2 of plain ring attends to hosts 0-1 in full and itself causally.
    assert!(close(ring.hosts[2].work.attention_flops, 4.0 * NQ * HD * 16_384.0 * (32_768.0 + 8192.0)));

    let u = plan(&input(65_536, 4, Strategy::Ulysses)).unwrap();
    // 8 of 32 query heads and 2 of 8 KV heads over the whole sequence.
    let w = &u.hosts[1].work;
    assert!(close(w.attention_flops, 4.0 * 8.0 * 65_536.0 * 32_768.0 * HD));
    let others = 65_536.0 - 16_384.0;
    assert!(close(w.received_bytes, others * (8.0 + 2.0 * 2.0 + 8.0) * HD * 2.0));
}

#[test]
fn memory_counts_weights_kept_kv_and_the_transient_anchor_and_passing() {
    let p = plan(&input(131_072, 8, Strategy::Apb)).unwrap();
    let m = &p.hosts[3].memory;
    let params = 2.0 * 128_256.0 * 4096.0
        + LAYERS * (4096.0 * 4096.0 * 2.0 + 2.0 * 4096.0 * 1024.0 + 3.0 * 4096.0 * 14336.0 + 2.0 * 4096.0)
        + 4096.0;
    assert!(close(m.weights, params * 2.0));
    assert!(close(m.kv_kept, LAYERS * 16_384.0 * KV_TOKEN));
    assert!(close(m.kv_transient, (4096.0 + 8.0 * 2048.0) * KV_TOKEN));
    // The last host also keeps the query's KV: it alone appends new tokens.
    assert!(close(p.hosts[7].memory.kv_kept, LAYERS * (16_384.0 + 128.0) * KV_TOKEN));
}

#[test]
fn predicted_times_rank_strategies_as_the_paper_reports() {
    let t = |s: Strategy| plan(&input(131_072, 8, s)).unwrap().ttft_s();
    let (apb, star, ring, full) = (t(Strategy::Apb), t(Strategy::Star), t(Strategy::Ring), t(Strategy::Full));
    assert!(apb < star && star < ring && ring < full, "apb {apb} star {star} ring {ring} full {full}");
    // Zigzag balances ring's causal work.
    assert!(t(Strategy::RingZigzag) < ring);
}
