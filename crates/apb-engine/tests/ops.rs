//! Each CPU kernel against a float64 version on fresh random inputs.

mod common;

use apb_engine::cpu::attention::{attention, merge, visible, KeySegment};
use apb_engine::cpu::elementwise::{rms_norm, rope, silu_mul};
use apb_engine::cpu::linear::{linear, pack};
use apb_engine::cpu::select::{gather_per_head, query_scores};
use apb_engine::passing::{max_pool5, top_k};
use apb_engine::Heads;
use common::*;

fn close(a: &[f32], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let err = rel_error(a, b);
    assert!(err < tol, "{what}: relative error {err}");
}

#[test]
fn linear_matches_float64_for_many_and_few_rows() {
    let mut rng = Rng::fresh();
    for rows in [1, 3, 17, 64] {
        let (inp, outp) = (rng.range(1, 300), rng.range(1, 700));
        let x = rng.vec(rows * inp, 1.0);
        let w = rng.vec(outp * inp, 1.0);
        let bias = rng.vec(outp, 1.0);
        let mut out = vec![f32::NAN; rows * outp];
        linear(&x, inp, &pack(&w, outp, inp), outp, Some(&bias), &mut out);
        let expected: Vec<f64> = (0..rows)
            .flat_map(|r| {
                let (x, w, bias) = (&x, &w, &bias);
                (0..outp).map(move |o| bias[o] as f64 + (0..inp).map(|i| x[r * inp + i] as f64 * w[o * inp + i] as f64).sum::<f64>())
            })
            .collect();
        close(&out, &expected, 1e-5, &format!("linear {rows}x{inp}->{outp}"));
    }
}

#[test]
fn rms_norm_rope_and_swiglu_match_float64() {
    let mut rng = Rng::fresh();
    let (rows, cols) = (9, 48);
    let x = rng.vec(rows * cols, 2.0);
    let w = rng.vec(cols, 1.0);
    let mut out = vec![0.0; rows * cols];
    rms_norm(&x, &w, 1e-5, &mut out);
    let expected: Vec<f64> = x
        .chunks(cols)
        .flat_map(|r| {
            let ms = r.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / cols as f64;
            r.iter().zip(&w).map(move |(v, g)| *v as f64 / (ms + 1e-5).sqrt() * *g as f64).collect::<Vec<_>>()
        })
        .collect();
    close(&out, &expected, 1e-6, "rms_norm");

    for scaled in [false, true] {
        let mut c = tiny_config(apb_engine::Architecture::Llama);
        c.head_dim = 16;
        if scaled {
            c.rope_scaling = llama31_scaling();
        }
        let inv = apb_engine::rope::inv_freq(&c);
        let heads = 3;
        let positions: Vec<u32> = (0..rows).map(|_| rng.range(0u32, 100_000)).collect();
        let mut y = rng.vec(rows * heads * c.head_dim, 1.0);
        let mut expected: Vec<f64> = y.iter().map(|v| *v as f64).collect();
        rope(&mut y, heads, c.head_dim, &positions, &inv);
        let ref_inv = reference_inv_freq(&c);
        for (r, chunk) in expected.chunks_mut(heads * c.head_dim).enumerate() {
            reference_rope(chunk, heads, c.head_dim, positions[r] as f64, &ref_inv);
        }
        close(&y, &expected, 1e-6, &format!("rope (llama3 scaling: {scaled})"));
    }

    let (g, u) = (rng.vec(100, 3.0), rng.vec(100, 1.0));
    let mut out = vec![0.0; 100];
    silu_mul(&g, &u, &mut out);
    let expected: Vec<f64> = g.iter().zip(&u).map(|(a, b)| *a as f64 / (1.0 + (-*a as f64).exp()) * *b as f64).collect();
    close(&out, &expected, 1e-6, "silu_mul");
}

/// Attention over the segments' visible keys, by brute force in float64.
fn reference_attention(q: &[f32], heads: Heads, segs: &[KeySegment]) -> (Vec<f64>, Vec<f64>) {
    let d = heads.head_dim;
    let (qw, kvw) = (heads.q_heads * d, heads.kv_heads * d);
    let rows = q.len() / qw;
    let (mut out, mut lse) = (vec![0.0; q.len()], vec![0.0; rows * heads.q_heads]);
    for r in 0..rows {
        for h in 0..heads.q_heads {
            let g = h / (heads.q_heads / heads.kv_heads);
            let mut keys = Vec::new();
            for s in segs {
                for j in 0..visible(s, r, rows) {
                    let t = s.start + j;
                    let score = (0..d).map(|e| q[r * qw + h * d + e] as f64 * s.k[t * kvw + g * d + e] as f64).sum::<f64>() / (d as f64).sqrt();
                    keys.push((score, &s.v[t * kvw + g * d..t * kvw + (g + 1) * d]));
                }
            }
            if keys.is_empty() {
                lse[r * heads.q_heads + h] = f64::NEG_INFINITY;
                continue;
            }
            let m = keys.iter().map(|k| k.0).fold(f64::NEG_INFINITY, f64::max);
            let z: f64 = keys.iter().map(|k| (k.0 - m).exp()).sum();
            for (s, v) in &keys {
                for e in 0..d {
                    out[r * qw + h * d + e] += (s - m).exp() / z * v[e] as f64;
                }
            }
            lse[r * heads.q_heads + h] = m + z.ln();
        }
    }
    (out, lse)
}

#[test]
fn segment_attention_matches_float64_with_gqa_and_masks() {
    let mut rng = Rng::fresh();
    for (q_heads, kv_heads) in [(4, 2), (6, 1), (3, 3)] {
        let heads = Heads { q_heads, kv_heads, head_dim: 8 };
        let rows = rng.range(1, 40);
        let q = rng.vec(rows * q_heads * 8, 1.0);
        // A passing-like buffer, an anchor and a local block, as apb's local rows see them.
        let bufs: Vec<(Vec<f32>, Vec<f32>, usize)> = (0..3)
            .map(|_| {
                let n = rng.range(rows, rows + 30);
                (rng.vec(n * kv_heads * 8, 1.0), rng.vec(n * kv_heads * 8, 1.0), n)
            })
            .collect();
        let segs: Vec<KeySegment> = bufs
            .iter()
            .enumerate()
            .map(|(i, (k, v, n))| {
                let count = if i == 2 { rows + rng.range(0, n - rows) } else { rng.range(0, *n) };
                let start = rng.range(0, n - count);
                KeySegment { k, v, start, count, causal: i == 2 }
            })
            .collect();
        let mut out = vec![f32::NAN; q.len()];
        let mut lse = vec![f32::NAN; rows * q_heads];
        attention(&q, heads, &segs, &mut out, &mut lse);
        let (eo, el) = reference_attention(&q, heads, &segs);
        close(&out, &eo, 1e-5, &format!("attention O {q_heads}/{kv_heads}"));
        close(&lse, &el, 1e-6, &format!("attention LSE {q_heads}/{kv_heads}"));
    }
}

#[test]
fn rows_that_see_no_key_get_zero_output_and_minus_infinity_lse() {
    let mut rng = Rng::fresh();
    let heads = Heads { q_heads: 2, kv_heads: 1, head_dim: 4 };
    let (k, v) = (rng.vec(3 * 4, 1.0), rng.vec(3 * 4, 1.0));
    // 5 rows over 3 causal keys, bottom-right aligned: rows 0 and 1 see nothing.
    let q = rng.vec(5 * 8, 1.0);
    let mut out = vec![f32::NAN; 40];
    let mut lse = vec![f32::NAN; 10];
    attention(&q, heads, &[KeySegment { k: &k, v: &v, start: 0, count: 3, causal: true }], &mut out, &mut lse);
    assert!(out[..16].iter().all(|x| *x == 0.0));
    assert!(lse[..4].iter().all(|x| *x == f32::NEG_INFINITY));
    assert!(lse[4..].iter().all(|x| x.is_finite()));
}

#[test]
fn merge_of_two_partials_equals_attention_over_both_and_is_minus_infinity_safe() {
    let mut rng = Rng::fresh();
    let heads = Heads { q_heads: 4, kv_heads: 2, head_dim: 8 };
    let rows = 7;
    let q = rng.vec(rows * 32, 1.0);
    let (k1, v1, k2, v2) = (rng.vec(20 * 16, 1.0), rng.vec(20 * 16, 1.0), rng.vec(9 * 16, 1.0), rng.vec(9 * 16, 1.0));
    let seg1 = KeySegment { k: &k1, v: &v1, start: 0, count: 20, causal: false };
    // Causal over 9 keys for 7 rows: every row sees something here; rows of a partial
    // that see nothing are covered below.
    let seg2 = KeySegment { k: &k2, v: &v2, start: 0, count: 9, causal: true };
    let run = |segs: &[KeySegment]| {
        let mut o = vec![0.0; rows * 32];
        let mut l = vec![0.0; rows * 4];
        attention(&q, heads, segs, &mut o, &mut l);
        (o, l)
    };
    let (mut o1, mut l1) = run(&[KeySegment { ..seg1 }]);
    let (o2, l2) = run(&[KeySegment { ..seg2 }]);
    merge(&mut o1, &mut l1, &o2, &l2, 8);
    let (eo, el) = reference_attention(&q, heads, &[seg1, seg2]);
    close(&o1, &eo, 1e-5, "merged O");
    close(&l1, &el, 1e-6, "merged LSE");

    // -inf partials: merging nothing into something changes nothing; nothing with nothing stays empty.
    let (mut a, mut la) = (vec![1.0f32, 2.0], vec![0.5f32]);
    merge(&mut a, &mut la, &[9.0, 9.0], &[f32::NEG_INFINITY], 2);
    assert_eq!((a.clone(), la.clone()), (vec![1.0, 2.0], vec![0.5]));
    let (mut e, mut le) = (vec![0.0f32, 0.0], vec![f32::NEG_INFINITY]);
    merge(&mut e, &mut le, &[0.0, 0.0], &[f32::NEG_INFINITY], 2);
    assert!(e.iter().all(|x| *x == 0.0) && le[0] == f32::NEG_INFINITY);
    let (mut e, mut le) = (vec![0.0f32, 0.0], vec![f32::NEG_INFINITY]);
    merge(&mut e, &mut le, &a, &la, 2);
    assert_eq!((e, le), (a, la));
}

#[test]
fn query_scores_max_pooling_and_top_k_pick_the_true_best_tokens() {
    let mut rng = Rng::fresh();
    let heads = Heads { q_heads: 4, kv_heads: 2, head_dim: 8 };
    let (rows, n) = (5, 60);
    let q = rng.vec(rows * 32, 1.0);
    let k = rng.vec(n * 16, 1.0);
    let scores = query_scores(&q, &k, heads);
    // float64: softmax per query row and head over the keys, summed over rows and the group.
    for g in 0..2 {
        let mut expected = vec![0.0f64; n];
        for h in g * 2..g * 2 + 2 {
            for r in 0..rows {
                let logits: Vec<f64> = (0..n)
                    .map(|j| (0..8).map(|e| q[r * 32 + h * 8 + e] as f64 * k[j * 16 + g * 8 + e] as f64).sum::<f64>() / 8f64.sqrt())
                    .collect();
                let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = logits.iter().map(|l| (l - m).exp()).sum();
                for j in 0..n {
                    expected[j] += (logits[j] - m).exp() / z;
                }
            }
        }
        close(&scores[g * n..(g + 1) * n], &expected, 1e-5, "query scores");
    }

    let mut pooled = scores.clone();
    max_pool5(&mut pooled, n);
    for g in 0..2 {
        for j in 0..n {
            let window = &scores[g * n + j.saturating_sub(2)..g * n + (j + 3).min(n)];
            assert_eq!(pooled[g * n + j], window.iter().cloned().fold(f32::MIN, f32::max));
        }
    }

    let excluded = 3..11;
    let picked = top_k(&pooled, n, 12, excluded.clone());
    for (g, idx) in picked.iter().enumerate() {
        let mut order: Vec<usize> = (0..n).filter(|j| !excluded.contains(j)).collect();
        order.sort_by(|a, b| pooled[g * n + b].total_cmp(&pooled[g * n + a]).then(a.cmp(b)));
        let mut expected: Vec<u32> = order[..12].iter().map(|&j| j as u32).collect();
        expected.sort();
        assert_eq!(idx, &expected, "top-k of head {g}");
    }

    let gathered = gather_per_head(&k, &picked, 8);
    for (g, idx) in picked.iter().enumerate() {
        for (j, &t) in idx.iter().enumerate() {
            assert_eq!(&gathered[j * 16 + g * 8..j * 16 + g * 8 + 8], &k[t as usize * 16 + g * 8..t as usize * 16 + g * 8 + 8]);
        }
    }
}

#[test]
fn columns_take_and_put_back_head_ranges() {
    use apb_engine::backend::Backend;
    use apb_engine::cpu::backend::Cpu;
    let b = Cpu;
    // 3 rows of width 4: row r holds 10r + column.
    let x: Vec<f32> = (0..3).flat_map(|r| (0..4).map(move |c| (10 * r + c) as f32)).collect();
    assert_eq!(b.columns(&x, 4, 1, 2).unwrap(), vec![1.0, 2.0, 11.0, 12.0, 21.0, 22.0]);
    assert_eq!(b.columns(&x, 4, 3, 1).unwrap(), vec![3.0, 13.0, 23.0]);
    assert_eq!(b.columns(&x, 4, 0, 4).unwrap(), x);
    assert_eq!(b.columns(&x, 4, 4, 0).unwrap(), Vec::<f32>::new());
    let (left, right) = (b.columns(&x, 4, 0, 1).unwrap(), b.columns(&x, 4, 1, 3).unwrap());
    assert_eq!(b.concat_columns(&[(&left, 1), (&right, 3)]).unwrap(), x);
    assert_eq!(b.concat_columns(&[(&right, 3), (&left, 1)]).unwrap(), vec![1.0, 2.0, 3.0, 0.0, 11.0, 12.0, 13.0, 10.0, 21.0, 22.0, 23.0, 20.0]);
    assert_eq!(b.concat_columns(&[(&vec![], 2), (&vec![], 3)]).unwrap(), Vec::<f32>::new(), "no rows");
    // Shapes that do not fit are errors, never panics.
    for (width, start, count) in [(4, 3, 2), (5, 0, 1), (0, 0, 0), (4, usize::MAX, 2)] {
        let e = b.columns(&x, width, start, count).expect_err("outside the rows");
        assert_eq!(e.code, "INTERNAL", "{width} {start} {count}");
    }
    assert!(b.concat_columns(&[(&left, 1), (&x, 3)]).is_err(), "rows differ");
    assert!(b.concat_columns(&[(&left, 0)]).is_err(), "no width");
    assert!(b.concat_columns(&[]).is_err(), "nothing to put together");
}
