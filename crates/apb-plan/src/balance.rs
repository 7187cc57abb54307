//! Balanced block sizes for apb and star. With an even split, later hosts attend to more
//! passing keys (host h receives h blocks) while host 0 carries no anchor, so the last host
//! finishes last and every layer waits for it. Here each host gets the local length that
//! makes its per-layer compute equal to the others', with the lengths summing to the
//! context. Host costs come from the same layout and cost code as any plan.

use crate::cost;
use crate::input::{PlanInput, GRANULE};
use crate::layout::{self, Range};
use crate::settings::Settings;
use crate::time;

const ITERATIONS: usize = 40;
/// Relative change of every host's length below which the sizes have settled.
const SETTLED: f64 = 1e-3;
/// Spread of the hosts' times, relative to their mean, that counts as balanced.
const EVEN_ENOUGH: f64 = 0.005;
/// Steps in a row without the slowest host gaining a tenth of EVEN_ENOUGH that end the search.
const STALLED_STEPS: usize = 4;

fn host_seconds(input: &PlanInput, s: &Settings, h: u64, start: u64, len: u64) -> f64 {
    let host = layout::build_host(input, s, h, vec![Range { start, end: start + len }]);
    let work = cost::host_work(input, s, &host);
    time::host_phases(input, s, &host, &work, time::Detail::Spread).compute()
}

fn seconds_for(input: &PlanInput, s: &Settings, sizes: &[f64]) -> Vec<f64> {
    let mut start = 0.0;
    sizes
        .iter()
        .enumerate()
        .map(|(h, &len)| {
            let t = host_seconds(input, s, h as u64, start as u64, len.max(1.0) as u64);
            start += len;
            t
        })
        .collect()
}

/// Local lengths, one per host, summing to the context length. Each step moves every
/// host's length towards the one that would take the mean time (cost grows roughly
/// quadratically with length, hence the square root), then rescales to the context.
pub fn sizes(input: &PlanInput, s: &Settings) -> Vec<u64> {
    let n = input.context_tokens as f64;
    let hosts = s.hosts as usize;
    let mut sizes = vec![n / hosts as f64; hosts];
    // The sizes whose slowest host was fastest so far: steps can overshoot where costs move
    // in steps (whole tiles, fixed costs per block), so the last sizes are not always the best.
    let (mut best, mut best_sizes, mut stalled) = (f64::INFINITY, sizes.clone(), 0);
    for _ in 0..ITERATIONS {
        let t = seconds_for(input, s, &sizes);
        let mean = t.iter().sum::<f64>() / hosts as f64;
        let (fastest, slowest) = t.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let gained = slowest < best * (1.0 - EVEN_ENOUGH / 10.0);
        if slowest < best {
            (best, best_sizes) = (slowest, sizes.clone());
        }
        // Even to within EVEN_ENOUGH of the mean, or the slowest host no longer gaining: more
        // steps would buy little (discrete tiles and anchors can keep hosts from meeting).
        if slowest - fastest <= EVEN_ENOUGH * mean {
            break;
        }
        stalled = if gained { 0 } else { stalled + 1 };
        if stalled == STALLED_STEPS {
            break;
        }
        let before = sizes.clone();
        for (len, secs) in sizes.iter_mut().zip(t.iter()) {
            if *secs > 0.0 {
                *len *= (mean / secs).sqrt();
            }
        }
        let total: f64 = sizes.iter().sum();
        for len in sizes.iter_mut() {
            *len *= n / total;
        }
        // Settled: no host moves by a hundredth of a token's share more (rounding to granules
        // follows), so further steps would only cost time.
        if sizes.iter().zip(&before).all(|(a, b)| (a - b).abs() <= SETTLED * b) {
            break;
        }
    }
    round_sizes(&best_sizes, input.context_tokens)
}

/// Rounds the boundaries between hosts (not the lengths, so errors do not pile up on the
/// last host) to the granule where blocks span at least 16 granules, and keeps every host
/// at one token or more.
fn round_sizes(sizes: &[f64], n: u64) -> Vec<u64> {
    let hosts = sizes.len() as u64;
    let granule = if n / hosts >= 16 * GRANULE { GRANULE } else { 1 };
    let mut out = Vec::with_capacity(sizes.len());
    let (mut exact, mut prev) = (0.0, 0u64);
    for (i, len) in sizes.iter().enumerate() {
        exact += len;
        let left = hosts - i as u64 - 1;
        let boundary = if left == 0 {
            n
        } else {
            let b = (exact / granule as f64).round() as u64 * granule;
            b.max(prev + 1).min(n - left)
        };
        out.push(boundary - prev);
        prev = boundary;
    }
    out
}
