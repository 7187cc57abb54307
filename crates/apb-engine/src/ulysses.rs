//! DeepSpeed-Ulysses attention on one host. Each host holds a contiguous block of the
//! sequence and has projected q/k/v for its rows and all heads; one all-to-all gives every
//! host all N rows of its own heads (the plan's `q_heads`, `kv_heads`), it runs full causal
//! attention over them, and a second all-to-all gives each host the output of its own rows
//! for all heads. Attention is exact, as on one host: only which host computes which head
//! changes. The KV cache stays the host's own rows (prefill keeps `k_local`, `v_local`), so the
//! query pass and decoding merge partials by LSE as for every other strategy.

use std::time::Instant;

use apb_plan::layout::{HostLayout, KeySource, Mask, RowKind};

use crate::backend::{Backend, Segment};
use crate::comm::Comm;
use crate::error::{code, EngineError, Result};
use crate::exchange;
use crate::heads::Heads;
use crate::layer::Qkv;
use crate::model::Model;
use crate::prefill::HostPrefill;
use crate::timing::HostTimings;

fn internal(message: String) -> EngineError {
    EngineError::new(code::INTERNAL, "ulysses", message)
}

/// A host's share, as the plan lays it out: its rows [start, start + rows) of the document,
/// and its query and KV heads (first, count).
struct Share {
    start: usize,
    rows: usize,
    q: (usize, usize),
    kv: (usize, usize),
}

/// Every host's share, checked against what the exchange relies on: hosts hold consecutive
/// blocks in host order (so rows gathered in host order are the document), their query heads
/// tile all heads in host order (so columns put together in host order are every head), and
/// each host's KV heads are the ones its query heads read (GQA).
fn shares(hosts: &[HostLayout], heads: usize, kv_heads: usize) -> Result<Vec<Share>> {
    let group = heads / kv_heads.max(1);
    let (mut row, mut head) = (0, 0);
    let mut out = Vec::with_capacity(hosts.len());
    for h in hosts {
        let start = h.local.first().map_or(row, |r| r.start as usize);
        let contiguous = h.local.len() <= 1 && start == row;
        let s = Share { start, rows: h.local_tokens as usize, q: (h.q_heads.0 as usize, h.q_heads.1 as usize), kv: (h.kv_heads.0 as usize, h.kv_heads.1 as usize) };
        if !contiguous {
            return Err(internal(format!("host {} holds {:?}; ulysses needs each host to hold the block after the previous host's", h.host, h.local)));
        }
        if s.q.0 != head || s.q.1 == 0 || s.kv.1 == 0 || !s.q.1.is_multiple_of(s.kv.1) || group == 0 {
            return Err(internal(format!("host {} computes query heads {:?} and KV heads {:?}; ulysses needs the hosts' query heads to tile all {heads} in order", h.host, s.q, s.kv)));
        }
        // Local query head j reads local KV head j / (q / kv), as the backend's GQA does; that
        // must be the KV head global query head q0 + j reads.
        let local_group = s.q.1 / s.kv.1;
        if (0..s.q.1).any(|j| (s.q.0 + j) / group != s.kv.0 + j / local_group) {
            return Err(internal(format!("host {}'s KV heads {:?} are not the ones its query heads {:?} read", h.host, s.kv, s.q)));
        }
        row += s.rows;
        head += s.q.1;
        out.push(s);
    }
    if head != heads {
        return Err(internal(format!("the hosts compute {head} query heads of {heads}")));
    }
    Ok(out)
}

/// This host's attention output, [its rows][q_width], by Ulysses.
pub fn attention<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, p: &HostPrefill, qkv: &Qkv<B>, timings: &mut HostTimings) -> Result<B::Buf> {
    let (b, c) = (&m.backend, &m.config);
    let (qw, kvw, d) = (c.q_width(), c.kv_width(), c.head_dim);
    let all = shares(&p.layout.hosts, c.heads, c.kv_heads)?;
    let me = &all[p.host];
    if p.rows.anchor_rows != 0 || b.len(&qkv.q) != me.rows * qw {
        return Err(internal(format!("ulysses takes the host's {} local rows only; it was given {} rows", me.rows, b.len(&qkv.q) / qw)));
    }
    // Out: to each host, this host's rows of that host's heads.
    let out = exchange::moving(m, comm, timings, || {
        all.iter()
            .map(|to| Ok(vec![b.columns(&qkv.q, qw, to.q.0 * d, to.q.1 * d)?, b.columns(&qkv.k, kvw, to.kv.0 * d, to.kv.1 * d)?, b.columns(&qkv.v, kvw, to.kv.0 * d, to.kv.1 * d)?]))
            .collect::<Result<Vec<_>>>()
    })?;
    let expected: Vec<Vec<usize>> = all.iter().map(|from| vec![from.rows * me.q.1 * d, from.rows * me.kv.1 * d, from.rows * me.kv.1 * d]).collect();
    let got = exchange::all_to_all(m, comm, out, &expected, timings)?;
    // Every host's rows of this host's heads, stacked in host order: the whole sequence.
    let (q, k, v) = exchange::moving(m, comm, timings, || {
        let parts = got.iter().map(exchange::parts_of::<B>).collect::<Result<Vec<_>>>()?;
        let stack = |i: usize| b.concat_rows(&parts.iter().map(|p| &p[i]).collect::<Vec<_>>());
        Ok((stack(0)?, stack(1)?, stack(2)?))
    })?;
    drop(got);
    let heads = Heads { q_heads: me.q.1, kv_heads: me.kv.1, head_dim: d };
    let o = {
        let _turn = comm.compute_turn();
        let t = Instant::now();
        let o = sequence_attention(b, &p.layout.hosts[p.host], heads, &q, &k, &v)?;
        timings.end(b, "attention", t)?;
        o
    };
    drop((q, k, v));
    // Back: to each host, its rows of this host's heads.
    let back = exchange::moving(m, comm, timings, || all.iter().map(|to| Ok(vec![b.rows(&o, me.q.1 * d, to.start, to.rows)?])).collect::<Result<Vec<_>>>())?;
    drop(o);
    let expected: Vec<Vec<usize>> = all.iter().map(|from| vec![me.rows * from.q.1 * d]).collect();
    let got = exchange::all_to_all(m, comm, back, &expected, timings)?;
    // This host's rows, every host's heads side by side in head order.
    exchange::moving(m, comm, timings, || {
        let parts = got.iter().map(exchange::parts_of::<B>).collect::<Result<Vec<_>>>()?;
        b.concat_columns(&parts.iter().zip(&all).map(|(p, from)| (&p[0], from.q.1 * d)).collect::<Vec<_>>())
    })
}

/// Attention of the whole sequence's rows over its keys, for this host's heads, as the plan's
/// query ranges lay it out (one range of every row, causal over every document key).
fn sequence_attention<B: Backend>(b: &B, me: &HostLayout, heads: Heads, q: &B::Buf, k: &B::Buf, v: &B::Buf) -> Result<B::Buf> {
    let width = heads.q_heads * heads.head_dim;
    let rows = b.len(q) / width;
    let mut parts = Vec::with_capacity(me.segments.len());
    let mut next = 0;
    for range in &me.segments {
        if range.rows != RowKind::Sequence || range.row_start as usize != next {
            return Err(internal(format!("a ulysses query range of {:?} rows from row {}; the ranges take the whole sequence's rows in order", range.rows, range.row_start)));
        }
        next += range.row_count as usize;
        let mut segments = Vec::with_capacity(range.keys.len());
        for key in &range.keys {
            if key.source != KeySource::Document {
                return Err(internal(format!("a ulysses key segment from {:?}; its keys are the document's", key.source)));
            }
            segments.push(Segment { k, v, start: key.start as usize, count: key.count as usize, causal: key.mask == Mask::Causal });
        }
        let (start, count) = (range.row_start as usize, range.row_count as usize);
        // The plan's one range covers every row: attend with q as it is, not a copy of it.
        let o = if start == 0 && count == rows { b.attention(q, heads, &segments)?.0 } else { b.attention(&b.rows(q, width, start, count)?, heads, &segments)?.0 };
        parts.push(o);
    }
    if next != rows {
        return Err(internal(format!("the plan's query ranges take {next} rows of a sequence of {rows}")));
    }
    if parts.len() == 1 {
        return parts.pop().ok_or_else(|| internal("no query ranges".into()));
    }
    b.concat_rows(&parts.iter().collect::<Vec<_>>())
}
