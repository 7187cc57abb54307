//! Choosing a host's passing block from its keys' scores (computed by the backend, one row
//! per KV head): max-pool the scores along the sequence (kernel 5, as Locret and APB do),
//! and keep the top l_p per head, excluding tokens every receiver already holds in its
//! anchor. Device-neutral: the scores are on the host when this runs, once per layer, so
//! both passes stay linear in the local block and allocate little.

/// Max-pooling along the sequence with kernel 5, stride 1, padding 2 (ignoring padding), in
/// place: each row keeps the two originals behind it as it overwrites them.
pub fn max_pool5(scores: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for row in scores.chunks_mut(n) {
        let (mut back2, mut back1) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for j in 0..row.len() {
            let here = row[j];
            let ahead = row[j + 1..(j + 3).min(row.len())].iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row[j] = back2.max(back1).max(here).max(ahead);
            (back2, back1) = (back1, here);
        }
    }
}

/// A sort key that puts a higher score first and, among equal scores, the earlier token
/// (NaN ranks as -inf): the score's bits in total order, inverted, above the token.
fn rank_key(score: f32, token: u32) -> u64 {
    let s = if score.is_nan() { f32::NEG_INFINITY } else { score };
    let bits = s.to_bits();
    let ascending = if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 };
    (u64::from(!ascending) << 32) | u64::from(token)
}

/// Indices of the `k` highest scores of each KV head among tokens not in `excluded`
/// (a token range), ascending. Ties go to the earlier token. NaN scores rank last.
pub fn top_k(scores: &[f32], n: usize, k: usize, excluded: std::ops::Range<usize>) -> Vec<Vec<u32>> {
    if n == 0 {
        return Vec::new();
    }
    scores
        .chunks(n)
        .map(|row| {
            let mut keys: Vec<u64> = row.iter().enumerate().filter(|(j, _)| !excluded.contains(j)).map(|(j, &s)| rank_key(s, j as u32)).collect();
            if k < keys.len() {
                keys.select_nth_unstable(k);
                keys.truncate(k);
            }
            let mut idx: Vec<u32> = keys.iter().map(|&key| key as u32).collect();
            idx.sort_unstable();
            idx
        })
        .collect()
}

/// The passing tokens by scores ([kv_heads][n]): pooled, then the top `k` of each head.
pub fn pick(mut scores: Vec<f32>, n: usize, k: usize, excluded: std::ops::Range<usize>) -> Vec<Vec<u32>> {
    max_pool5(&mut scores, n);
    top_k(&scores, n, k, excluded)
}

/// The first `k` tokens of each of `kv_heads` heads outside `excluded`: the passing block when
/// nothing ranks the tokens (all equal scores).
pub fn earliest(kv_heads: usize, n: usize, k: usize, excluded: std::ops::Range<usize>) -> Vec<Vec<u32>> {
    top_k(&vec![0.0; kv_heads * n], n, k, excluded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rank_keys_order_as_scores_then_tokens() {
        let order = [(f32::INFINITY, 0), (3.0, 1), (3.0, 2), (0.0, 0), (-0.0, 0), (-1.0, 0), (f32::NEG_INFINITY, 0), (f32::NAN, 0), (f32::NAN, 5)];
        let keys: Vec<u64> = order.iter().map(|&(s, t)| rank_key(s, t)).collect();
        for w in keys.windows(2) {
            assert!(w[0] <= w[1], "{order:?}");
        }
        assert_eq!(rank_key(f32::NAN, 3), rank_key(f32::NEG_INFINITY, 3));
    }

    #[test]
    fn ties_go_to_the_earlier_token_and_nan_ranks_last() {
        let scores = [1.0, f32::NAN, 2.0, 2.0, 1.0, f32::NAN];
        assert_eq!(top_k(&scores, 6, 3, 0..0), vec![vec![0, 2, 3]]);
        assert_eq!(top_k(&scores, 6, 3, 2..3), vec![vec![0, 3, 4]]);
        assert_eq!(top_k(&scores, 6, 10, 0..0), vec![vec![0, 1, 2, 3, 4, 5]]);
    }

    #[test]
    fn pooling_takes_the_window_maximum() {
        let mut s = [1.0, 5.0, 2.0, 0.0, -1.0, 3.0, f32::NAN, 0.5];
        max_pool5(&mut s, 8);
        assert_eq!(s, [5.0, 5.0, 5.0, 5.0, 3.0, 3.0, 3.0, 3.0]);
    }
}
