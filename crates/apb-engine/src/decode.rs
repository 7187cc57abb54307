//! The query and each generated token after prefill: every host runs the new rows against
//! its own KV, partial outputs are merged by LSE across hosts (the stable form), and only
//! the last host appends the new rows' KV.

use std::time::Instant;

use crate::backend::{Backend, Segment};
use crate::comm::Comm;
use crate::error::Result;
use crate::exchange;
use crate::layer;
use crate::model::Model;
use crate::prefill::KvCache;
use crate::timing::HostTimings;

/// Runs `tokens` at `positions` through every layer; returns the last row's logits. The
/// appending host grows its cache, when full, by `spare` rows beyond these (what it still
/// expects to append).
#[allow(clippy::too_many_arguments)] // each is one thing the step needs; a struct would only rename them
pub fn decode<B: Backend, C: Comm>(
    m: &Model<B>,
    comm: &mut C,
    cache: &mut KvCache<B>,
    tokens: &[u32],
    positions: &[u32],
    spare: usize,
    phase: &'static str,
    timings: &mut HostTimings,
) -> Result<Vec<f32>> {
    let (b, c) = (&m.backend, &m.config);
    let appends = comm.rank() + 1 == comm.size();
    let mut turn = comm.compute_turn();
    let mut t = Instant::now();
    let mut x = b.embed(&m.weights.embed, c.hidden, tokens)?;
    for (l, w) in m.weights.layers.iter().enumerate() {
        comm.check_aborted()?;
        let mut qkv = layer::project(m, w, &x)?;
        layer::rotate(m, &mut qkv, positions)?;
        if appends {
            cache.append(b, c.kv_width(), l, &qkv.k, &qkv.v, spare)?;
        }
        let count = cache.tokens + if appends { tokens.len() } else { 0 };
        // The appending host sees its old keys in full and the new rows causally.
        let segment = Segment { k: &cache.k[l], v: &cache.v[l], start: 0, count, causal: appends };
        let (mut o, lse) = b.attention(&qkv.q, m.heads(), &[segment])?;
        if comm.size() > 1 {
            timings.end(b, phase, t)?;
            drop(turn);
            let t_comm = Instant::now();
            let gathered = exchange::gather_partials(m, comm, o, lse)?;
            timings.add(after_prefill(comm, phase), t_comm);
            turn = comm.compute_turn();
            t = Instant::now();
            // Every host merges all partials in host order, so all hold the same output.
            o = gathered.merged(m)?.0;
        }
        layer::finish(m, w, &mut x, &o)?;
    }
    if appends {
        cache.commit(tokens.len());
    }
    let logits = layer::logits(m, &x)?;
    timings.end(b, phase, t)?;
    drop(turn);
    Ok(logits)
}

/// Where a collective after prefill is counted: in the step that makes the token (`phase`,
/// query or decode), not in `comm`, which belongs to prefill; emulated hosts still count
/// their turn-taking as `wait`.
pub(crate) fn after_prefill<C: Comm>(comm: &C, phase: &'static str) -> &'static str {
    match comm.collective_phase() {
        "wait" => "wait",
        _ => phase,
    }
}
