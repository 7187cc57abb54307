//! One host's KV cache: per layer a K and a V buffer ([rows][kv_heads * head_dim]) whose first
//! `tokens` rows are in use. The host that appends (the last one) writes new rows into spare
//! rows behind them, so a generated token costs its own rows rather than a copy of the whole
//! cache (at 128K tokens of an 8B model, 16 GB moved per token).

use crate::backend::Backend;
use crate::error::Result;

pub struct KvCache<B: Backend> {
    pub k: Vec<B::Buf>,
    pub v: Vec<B::Buf>,
    /// Rows in use in every layer; rows after them are spare.
    pub tokens: usize,
}

impl<B: Backend> KvCache<B> {
    /// A cache whose buffers are all in use (as prefill leaves them), `width` values a row.
    pub fn full(b: &B, width: usize, k: Vec<B::Buf>, v: Vec<B::Buf>) -> KvCache<B> {
        let tokens = k.first().map_or(0, |x| b.len(x) / width);
        KvCache { k, v, tokens }
    }

    /// Writes `k` and `v`, new rows of layer `layer`, after the rows in use. Full buffers are
    /// grown first, by `spare_rows(needed, spare)` rows beyond the new ones: callers pass what
    /// they still expect to append, so a generation grows each buffer once, or every eighth
    /// of the cache when it is long. The rows count as in use after `commit`, once every
    /// layer has them.
    pub fn append(&mut self, b: &B, width: usize, layer: usize, k: &B::Buf, v: &B::Buf, spare: usize) -> Result<()> {
        let needed = self.tokens + b.len(k) / width;
        for (buf, rows) in [(&mut self.k[layer], k), (&mut self.v[layer], v)] {
            if b.len(buf) / width < needed {
                let extra = (needed + spare_rows(needed, spare)) * width - b.len(buf);
                *buf = b.concat_rows(&[buf, &b.zeros(extra)?])?;
            }
            b.write_rows(buf, width, self.tokens, rows)?;
        }
        Ok(())
    }

    /// The rows `append` wrote to every layer are now in use.
    pub fn commit(&mut self, rows: usize) {
        self.tokens += rows;
    }
}

/// The spare rows a full cache of `needed` rows grows by when `wanted` more are expected: all
/// of them, up to an eighth of the cache (at least 256), so a long generation does not reserve
/// memory it may never use.
pub fn spare_rows(needed: usize, wanted: usize) -> usize {
    wanted.min((needed / 8).max(256))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::backend::Cpu;

    #[test]
    fn appends_in_place_after_growing_once_by_the_spare_asked_for() {
        let b = Cpu;
        let width = 2;
        let mut cache = KvCache::full(&b, width, vec![vec![1.0, 1.0, 2.0, 2.0]], vec![vec![-1.0, -1.0, -2.0, -2.0]]);
        assert_eq!(cache.tokens, 2);
        // The first append grows the buffers to 2 + 1 + 3 rows.
        cache.append(&b, width, 0, &vec![3.0, 3.0], &vec![-3.0, -3.0], 3).unwrap();
        cache.commit(1);
        assert_eq!((cache.tokens, cache.k[0].len() / width), (3, 6));
        // The next ones go into the spare rows; the buffers stay.
        let before = cache.k[0].as_ptr();
        for t in 4..=6 {
            cache.append(&b, width, 0, &vec![t as f32; 2], &vec![-(t as f32); 2], 0).unwrap();
            cache.commit(1);
        }
        assert_eq!(cache.k[0].as_ptr(), before);
        assert_eq!(cache.k[0], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0]);
        assert_eq!(cache.v[0][10..], [-6.0, -6.0]);
        // Full again: it grows by what is asked, keeping every row.
        cache.append(&b, width, 0, &vec![7.0; 2], &vec![-7.0; 2], 0).unwrap();
        cache.commit(1);
        assert_eq!((cache.tokens, cache.k[0].len() / width), (7, 7));
        assert_eq!(cache.k[0][12..], [7.0, 7.0]);
    }

    #[test]
    fn reserves_what_is_wanted_up_to_an_eighth_of_the_cache() {
        assert_eq!(spare_rows(100, 50), 50);
        assert_eq!(spare_rows(100, 1000), 256);
        assert_eq!(spare_rows(131_072, 100_000), 16_384);
        assert_eq!(spare_rows(131_072, 0), 0);
    }
}
