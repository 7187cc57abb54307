//! Attention as apb's kernel runs it, for profiles that give the device's multiprocessors and
//! a block's fixed cost (`AttentionBlocks`). A call (one query range over its key segments) is
//! cut into blocks of `block_rows` query rows per head; each block walks the 128-key tiles its
//! last row can see and also pays a fixed cost (loading its queries, filling and draining
//! its pipeline, writing its output). Blocks run one per multiprocessor, dispatched head by
//! head with the heaviest row block first, each to the first multiprocessor that is free.
//!
//! FLOPs at a rate describe long calls well; short ones lose time to the fixed cost and to
//! their last wave of blocks. On an H200 the kernel alone ran causal attention over 2K, 4K and
//! 16K tokens at 342, 475 and 634 TFLOP/s (bench/results/attention-short-h200.md); these
//! blocks with a fixed 7 us give those times within 1.5%. At 32K on 8 hosts each host's calls
//! are 2K-4K tokens long.

use crate::input::AttentionBlocks;
use crate::layout::{KeySegment, Mask, QueryRange};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Keys per tile of the walk.
pub const KEY_TILE: u64 = 128;

/// Query rows per block: 64 per consumer warpgroup, two at head dim 128 and three at 64
/// (cuda/attention_sm90.cu).
pub fn block_rows(head_dim: u64) -> u64 {
    if head_dim <= 64 {
        192
    } else {
        128
    }
}

/// The call `attentionTflops` is measured on (apb calibrate): causal attention over 16384
/// tokens with 32 query heads.
pub const REFERENCE_TOKENS: u64 = 16384;
pub const REFERENCE_HEADS: u64 = 32;

/// Calls with fewer blocks than multiprocessors cut each block's walk into parts (the
/// launcher's key splits, merged by LSE after), at least this many tiles each and at most
/// MAX_PARTS parts, until the blocks fill the device (crates/apb-cuda/src/attention_sm90.rs).
const MIN_TILES_PER_PART: u64 = 16;
const MAX_PARTS: u64 = 16;

/// How many of a call's last waves of blocks are dispatched one by one (`call_seconds`).
const TAIL_WAVES: u64 = 4;

fn ceil_div(a: u64, b: u64) -> u64 {
    (a + b.saturating_sub(1)).checked_div(b).unwrap_or(0)
}

/// Keys of `key` that query row `row` (of `rows`) sees: all of a full segment; of a causal
/// one, aligned bottom-right, those up to the row's own position.
fn visible_keys(key: &KeySegment, row: u64, rows: u64) -> u64 {
    match key.mask {
        Mask::Full => key.count,
        Mask::Causal => (row + 1 + key.count).saturating_sub(rows).min(key.count),
    }
}

/// Key tiles of each row block of a call, heaviest (last rows) first: the order blocks
/// of one head are dispatched in.
fn block_tiles(range: &QueryRange, head_dim: u64) -> impl Iterator<Item = u64> + '_ {
    let per_block = block_rows(head_dim);
    let blocks = ceil_div(range.row_count, per_block);
    (0..blocks).rev().map(move |b| {
        let last_row = ((b + 1) * per_block).min(range.row_count) - 1;
        range.keys.iter().map(|k| ceil_div(visible_keys(k, last_row, range.row_count), KEY_TILE)).sum()
    })
}

/// Seconds of one key tile of one block: what makes the reference call take the time
/// `attention_tflops` (the profile's `attentionTflops`) gives it, once its blocks' fixed
/// costs are taken out.
pub fn tile_seconds(attention_tflops: f64, blocks: &AttentionBlocks, head_dim: u64) -> f64 {
    let per_block = block_rows(head_dim);
    let row_blocks = ceil_div(REFERENCE_TOKENS, per_block);
    // Causal over its own rows: a block sees the keys up to its last row.
    let tiles_per_head: u64 = (0..row_blocks).map(|b| ceil_div(((b + 1) * per_block).min(REFERENCE_TOKENS), KEY_TILE)).sum();
    let n = REFERENCE_TOKENS as f64;
    let heads = REFERENCE_HEADS as f64;
    let seconds = 4.0 * heads * (n * n / 2.0) * head_dim as f64 / (attention_tflops * 1e12);
    // The reference is 31 waves deep: its blocks fill the multiprocessors evenly.
    let fixed = heads * row_blocks as f64 * blocks.block_us * 1e-6;
    let tile_count = heads * tiles_per_head as f64;
    ((seconds * blocks.multiprocessors as f64 - fixed) / tile_count).max(seconds * 1e-3 / tile_count)
}

/// A multiprocessor's time at which it is next free, ordered so the heap's top is the
/// earliest.
struct Free(f64);

impl PartialEq for Free {
    fn eq(&self, other: &Free) -> bool {
        self.0.total_cmp(&other.0) == Ordering::Equal
    }
}
impl Eq for Free {}
impl PartialOrd for Free {
    fn partial_cmp(&self, other: &Free) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Free {
    fn cmp(&self, other: &Free) -> Ordering {
        other.0.total_cmp(&self.0)
    }
}

/// Dispatches `blocks` (seconds each) in order, each to the first free multiprocessor, all
/// of them free from `from`; returns when the last one ends.
fn dispatch<'a>(blocks: impl Iterator<Item = &'a f64>, sms: u64, from: f64) -> f64 {
    let mut free: BinaryHeap<Free> = (0..sms).map(|_| Free(from)).collect();
    let mut end = from;
    for &b in blocks {
        let start = free.pop().map_or(from, |f| f.0);
        end = end.max(start + b);
        free.push(Free(start + b));
    }
    end
}

/// Seconds of one call on `q_heads` heads: its blocks dispatched as the kernel's grid is.
/// Calls deeper than TAIL_WAVES waves are not dispatched block by block: all but their
/// last TAIL_WAVES waves of blocks keep every multiprocessor busy, so those are spread
/// evenly and only the last ones dispatched (within 3% of dispatching every block on the
/// causal and anchored calls of kernel.rs's tests; a plan makes many calls).
///
/// `spread`: every block spread evenly over the multiprocessors, no wave dispatched (the
/// longest block still bounds the call). Linear in the row blocks, for balance.rs's many
/// trial sizes; it leaves out the last wave's idle time.
/// `tile` is `tile_seconds` for this profile and head dim (the same for every call of a
/// plan, so callers work it out once).
pub fn call_seconds(blocks: &AttentionBlocks, tile: f64, range: &QueryRange, q_heads: u64, head_dim: u64, spread: bool) -> f64 {
    if range.row_count == 0 || q_heads == 0 {
        return 0.0;
    }
    let fixed = blocks.block_us * 1e-6;
    let sms = blocks.multiprocessors.max(1);
    let row_blocks = ceil_div(range.row_count, block_rows(head_dim));
    if spread && row_blocks * q_heads >= sms {
        // No vector of blocks: their sum, and the heaviest (the first) as a bound.
        let (sum, heaviest) = block_tiles(range, head_dim).fold((0u64, 0u64), |(s, m), t| (s + t, m.max(t)));
        let per_head = row_blocks as f64 * fixed + sum as f64 * tile;
        return (per_head * q_heads as f64 / sms as f64).max(fixed + heaviest as f64 * tile);
    }
    let tiles: Vec<u64> = block_tiles(range, head_dim).collect();
    let parts = if row_blocks * q_heads >= sms {
        1
    } else {
        ceil_div(sms, row_blocks * q_heads).min(tiles.iter().sum::<u64>() / MIN_TILES_PER_PART).clamp(1, MAX_PARTS)
    };
    // One head's blocks in dispatch order (heaviest first), each split into its parts.
    let per_head: Vec<f64> = tiles.iter().flat_map(|&t| std::iter::repeat(fixed + ceil_div(t, parts) as f64 * tile).take(parts as usize)).collect();
    let count = per_head.len() as u64 * q_heads;
    if count <= sms {
        // One wave: every block has a multiprocessor of its own.
        return per_head.iter().copied().fold(0.0, f64::max);
    }
    let head_seconds: f64 = per_head.iter().sum();
    if spread {
        return (head_seconds * q_heads as f64 / sms as f64).max(per_head.iter().copied().fold(0.0, f64::max));
    }
    // The last blocks dispatched: the heads repeat one sequence, so block i is per_head[i % n].
    let n = per_head.len() as u64;
    let last: Vec<f64> = (count - (TAIL_WAVES * sms).min(count)..count).map(|i| per_head[(i % n) as usize]).collect();
    let level = ((head_seconds * q_heads as f64 - last.iter().sum::<f64>()) / sms as f64).max(0.0);
    dispatch(last.iter(), sms, level)
}

/// Largest fixed cost per block `fit_block_us` gives: beyond it a short call measured slow
/// says more about the device (or what else ran on it) than about its blocks.
pub const MAX_BLOCK_US: f64 = 100.0;

/// The fixed cost per block (microseconds) with which this model gives a causal call over
/// `tokens` rows on `q_heads` heads the `seconds` measured for it, on a device of
/// `multiprocessors` whose reference call runs at `attention_tflops` (apb calibrate times both
/// calls). A longer fixed cost leaves less of the reference call's time to its tiles, so short
/// calls (many blocks, few tiles each) grow with it: bisection finds it. Clamped to
/// [0, MAX_BLOCK_US]; None for a call or rate that is not a positive time.
pub fn fit_block_us(attention_tflops: f64, multiprocessors: u64, head_dim: u64, q_heads: u64, tokens: u64, seconds: f64) -> Option<f64> {
    if !(attention_tflops.is_finite() && attention_tflops > 0.0 && seconds.is_finite() && seconds > 0.0) || multiprocessors == 0 || tokens == 0 || q_heads == 0 {
        return None;
    }
    let call = QueryRange { rows: crate::layout::RowKind::Local, row_start: 0, row_count: tokens, keys: vec![KeySegment { source: crate::layout::KeySource::Local, start: 0, count: tokens, mask: Mask::Causal }] };
    let modelled = |block_us: f64| {
        let blocks = AttentionBlocks { multiprocessors, block_us };
        call_seconds(&blocks, tile_seconds(attention_tflops, &blocks, head_dim), &call, q_heads, head_dim, false)
    };
    let (mut lo, mut hi) = (0.0, MAX_BLOCK_US);
    if modelled(lo) >= seconds {
        return Some(lo);
    }
    if modelled(hi) <= seconds {
        return Some(hi);
    }
    // 40 halvings: far below a nanosecond.
    for _ in 0..40 {
        let mid = 0.5 * (lo + hi);
        if modelled(mid) < seconds {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::Hardware;
    use crate::layout::{KeySource, RowKind};

    fn h200() -> (Hardware, AttentionBlocks) {
        let blocks = AttentionBlocks { multiprocessors: 132, block_us: 7.0 };
        let hw = Hardware { matmul_tflops: 650.0, attention_tflops: 560.0, hbm_gbs: 4300.0, link_gbs: 360.0, link_latency_us: 3.0, memory_gib: 139.0, attention_blocks: Some(blocks) };
        (hw, blocks)
    }

    /// A call timed as a plan times it (waves dispatched).
    fn seconds(hw: &Hardware, blocks: &AttentionBlocks, range: &QueryRange, q_heads: u64, head_dim: u64) -> f64 {
        call_seconds(blocks, tile_seconds(hw.attention_tflops, blocks, head_dim), range, q_heads, head_dim, false)
    }

    fn causal(tokens: u64) -> QueryRange {
        QueryRange { rows: RowKind::Local, row_start: 0, row_count: tokens, keys: vec![KeySegment { source: KeySource::Local, start: 0, count: tokens, mask: Mask::Causal }] }
    }

    fn tflops(tokens: u64, seconds: f64) -> f64 {
        4.0 * 32.0 * (tokens * tokens) as f64 / 2.0 * 128.0 / seconds / 1e12
    }

    #[test]
    fn the_reference_call_runs_at_the_profiles_rate() {
        let (hw, blocks) = h200();
        let rate = tflops(REFERENCE_TOKENS, seconds(&hw, &blocks, &causal(REFERENCE_TOKENS), 32, 128));
        // Within its last wave's idle time, which the rate spreads over the whole call.
        assert!((rate / 560.0 - 1.0).abs() < 0.01, "{rate}");
    }

    #[test]
    fn short_calls_run_slower_and_long_ones_near_the_tile_rate() {
        let (hw, blocks) = h200();
        let rates: Vec<f64> = [2048, 4096, 16384, 65536].iter().map(|&n| tflops(n, seconds(&hw, &blocks, &causal(n), 32, 128))).collect();
        assert!(rates.windows(2).all(|w| w[0] < w[1]), "{rates:?}");
        // The H200's kernel alone: 2K at 54% of 16K's rate, 4K at 75%.
        assert!((rates[0] / rates[2] - 0.54).abs() < 0.05, "{rates:?}");
        assert!((rates[1] / rates[2] - 0.75).abs() < 0.05, "{rates:?}");
    }

    #[test]
    fn the_fixed_cost_is_found_again_from_a_short_call_it_timed() {
        for (block_us, tokens, heads) in [(7.0, 2048, 32), (3.5, 4096, 32), (12.0, 2048, 28), (0.5, 1024, 32)] {
            let blocks = AttentionBlocks { multiprocessors: 132, block_us };
            let hw = Hardware { attention_blocks: Some(blocks), ..h200().0 };
            let measured = seconds(&hw, &blocks, &causal(tokens), heads, 128);
            let fitted = fit_block_us(hw.attention_tflops, 132, 128, heads, tokens, measured).unwrap_or(f64::NAN);
            assert!((fitted - block_us).abs() < 1e-6, "{block_us} us at {tokens} tokens, {heads} heads: fitted {fitted}");
        }
    }

    #[test]
    fn a_fit_outside_the_model_is_clamped_and_nonsense_refused() {
        let (hw, blocks) = h200();
        let measured = seconds(&hw, &blocks, &causal(2048), 32, 128);
        // Faster than blocks with no fixed cost at all, or far slower than any block.
        assert_eq!(fit_block_us(560.0, 132, 128, 32, 2048, measured * 0.1), Some(0.0));
        assert_eq!(fit_block_us(560.0, 132, 128, 32, 2048, measured * 100.0), Some(MAX_BLOCK_US));
        assert_eq!(fit_block_us(560.0, 132, 128, 32, 2048, f64::NAN), None);
        assert_eq!(fit_block_us(0.0, 132, 128, 32, 2048, measured), None);
        assert_eq!(fit_block_us(560.0, 0, 128, 32, 2048, measured), None);
    }

    #[test]
    fn blocks_walk_the_tiles_their_last_row_sees() {
        let mut range = causal(300);
        range.keys.insert(0, KeySegment { source: KeySource::Anchor, start: 0, count: 129, mask: Mask::Full });
        // Rows 256..299, 128..255, 0..127: 2 anchor tiles plus 3, 2 and 1 causal tiles; at head
        // dim 64, rows 192..299 and 0..191: plus 3 and 2.
        assert_eq!(block_tiles(&range, 128).collect::<Vec<_>>(), vec![5, 4, 3]);
        assert_eq!(block_tiles(&range, 64).collect::<Vec<_>>(), vec![5, 4]);
    }

    #[test]
    fn few_rows_over_many_keys_split_their_walk_to_fill_the_device() {
        let (hw, blocks) = h200();
        let query = |keys: u64| QueryRange { rows: RowKind::Anchor, row_start: 0, row_count: 64, keys: vec![KeySegment { source: KeySource::Local, start: 0, count: keys, mask: Mask::Full }] };
        let tile = tile_seconds(hw.attention_tflops, &blocks, 128);
        // 32 blocks of 512 tiles, cut in 5 parts as the launcher cuts them for 132 SMs: 160
        // parts of 103 tiles and a fixed cost each, so two waves.
        let t = seconds(&hw, &blocks, &query(65536), 32, 128);
        assert!((t / (2.0 * (7e-6 + 103.0 * tile)) - 1.0).abs() < 1e-9, "{t}");
        // 32 tiles: 2 parts of at least 16 tiles.
        let t = seconds(&hw, &blocks, &query(4096), 32, 128);
        assert!((t / (7e-6 + 16.0 * tile) - 1.0).abs() < 1e-9, "{t}");
    }

    #[test]
    fn deep_calls_spread_all_but_their_last_waves_within_3_percent() {
        let (hw, blocks) = h200();
        let tile = tile_seconds(hw.attention_tflops, &blocks, 128);
        for (tokens, heads, anchor) in [(8192, 32, 0), (12000, 4, 2048), (12000, 8, 2048), (16384, 4, 0), (6000, 32, 4096), (65536, 32, 0)] {
            let mut range = causal(tokens);
            if anchor > 0 {
                range.keys.insert(0, KeySegment { source: KeySource::Anchor, start: 0, count: anchor, mask: Mask::Full });
            }
            let per_head: Vec<f64> = block_tiles(&range, 128).map(|t| 7e-6 + t as f64 * tile).collect();
            let every = dispatch((0..heads).flat_map(|_| per_head.iter()), 132, 0.0);
            let modelled = seconds(&hw, &blocks, &range, heads, 128);
            assert!((modelled / every - 1.0).abs() < 0.03, "{tokens} tokens, {heads} heads, anchor {anchor}: {modelled} vs {every}");
        }
    }
}
