//! Choosing a host's passing block from its keys' scores (computed by the backend, one row
//! per KV head): max-pool the scores along the sequence (kernel 5, as Locret and APB do),
//! and keep the top l_p per head, excluding tokens every receiver already holds in its
//! anchor. Device-neutral: the scores are on the host when this runs.

/// Max-pooling along the sequence with kernel 5, stride 1, padding 2 (ignoring padding).
pub fn max_pool5(scores: &mut [f32], n: usize) {
    for row in scores.chunks_mut(n) {
        let src = row.to_vec();
        for (j, out) in row.iter_mut().enumerate() {
            let lo = j.saturating_sub(2);
            let hi = (j + 3).min(n);
            *out = src[lo..hi].iter().copied().fold(f32::NEG_INFINITY, f32::max);
        }
    }
}

/// Indices of the `k` highest scores of each KV head among tokens not in `excluded`
/// (a token range), ascending. Ties go to the earlier token. NaN scores rank last.
pub fn top_k(scores: &[f32], n: usize, k: usize, excluded: std::ops::Range<usize>) -> Vec<Vec<u32>> {
    scores
        .chunks(n)
        .map(|row| {
            let mut idx: Vec<u32> = (0..n as u32).filter(|j| !excluded.contains(&(*j as usize))).collect();
            let key = |j: &u32| {
                let s = row[*j as usize];
                if s.is_nan() { f32::NEG_INFINITY } else { s }
            };
            if k < idx.len() {
                idx.select_nth_unstable_by(k, |a, b| key(b).total_cmp(&key(a)).then(a.cmp(b)));
                idx.truncate(k);
            }
            idx.sort_unstable();
            idx
        })
        .collect()
}
