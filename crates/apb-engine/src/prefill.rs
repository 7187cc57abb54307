//! Prefill on one host, for every strategy, as the plan lays it out. Written SPMD: every
//! host runs this with its own rank; collectives go through `Comm`.

use std::sync::Arc;
use std::time::Instant;

use apb_plan::input::{Scorer, Strategy};
use apb_plan::layout::{HostLayout, KeySegment, KeySource, Layout, Mask, QueryRange};

use crate::backend::{Backend, Segment};
use crate::comm::{Comm, Handoff, InFlight};
use crate::control::LayerDone;
use crate::exchange::{self, KvBlock, Passing};
use crate::error::{EngineError, Result};
use crate::host::HostRows;
pub use crate::kv_cache::KvCache;
use crate::layer::{self, Qkv};
use crate::model::Model;
use crate::passing;
use crate::timing::HostTimings;

/// What one host's prefill reads: the plan's layout, this host's rank and rows, the scorer
/// of passing candidates, and whom to tell as each layer ends.
pub struct HostPrefill<'a> {
    pub layout: &'a Layout,
    pub host: usize,
    pub rows: &'a HostRows,
    pub scorer: Scorer,
    /// Told as this host finishes each layer (progress for the caller; must not block).
    pub on_layer: Option<&'a (dyn Fn(LayerDone) + Sync)>,
}

pub fn prefill<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, p: &HostPrefill, timings: &mut HostTimings) -> Result<KvCache<B>> {
    let (b, c) = (&m.backend, &m.config);
    let me = &p.layout.hosts[p.host];
    let (a, n) = (p.rows.anchor_rows, me.local_tokens as usize);
    timings.prefill_rows = a + n;
    let mut x = {
        let _turn = comm.compute_turn();
        let t = Instant::now();
        let x = b.embed(&m.weights.embed, c.hidden, &p.rows.tokens)?;
        timings.end(&m.backend, "embed", t)?;
        x
    };
    let (mut cache_k, mut cache_v) = (Vec::with_capacity(c.layers), Vec::with_capacity(c.layers));
    for (l, w) in m.weights.layers.iter().enumerate() {
        comm.check_aborted()?;
        let turn = comm.compute_turn();
        let t = Instant::now();
        let mut qkv = layer::project(m, w, &x)?;
        let retaining = if me.passing.sends > 0 && p.scorer == Scorer::RetainingHeads { Some(retaining_scores(m, l, &qkv, a, n)?) } else { None };
        layer::rotate(m, &mut qkv, &p.rows.positions)?;
        // The local block's keys and values: what this host keeps, and what it may pass.
        let k_local = b.rows(&qkv.k, c.kv_width(), a, n)?;
        let v_local = b.rows(&qkv.v, c.kv_width(), a, n)?;
        timings.end(&m.backend, "qkv", t)?;
        let block = if me.passing.sends > 0 {
            let t = Instant::now();
            let block = passing_block(m, p, &qkv.q, (&k_local, &v_local), retaining)?;
            timings.end(&m.backend, "scoring", t)?;
            Some(block)
        } else {
            None
        };
        drop(turn);
        let attention = match p.layout.settings.strategy {
            Strategy::Ring | Strategy::RingZigzag => ring_attention(m, comm, p, &qkv, timings)?,
            Strategy::Ulysses => crate::ulysses::attention(m, comm, p, &qkv, timings)?,
            _ => match exchange_passing(m, comm, p, block, timings)? {
                Passing::Ready(passing) => {
                    let _turn = comm.compute_turn();
                    let t = Instant::now();
                    let out = anchored_attention(m, me, &qkv, a, passing.as_ref())?;
                    timings.end(&m.backend, "attention", t)?;
                    out
                }
                Passing::InFlight(pending) => overlapped_attention(m, comm, me, &qkv, a, pending, timings)?,
            },
        };
        let _turn = comm.compute_turn();
        let t = Instant::now();
        layer::finish(m, w, &mut x, &attention)?;
        cache_k.push(k_local);
        cache_v.push(v_local);
        timings.end(&m.backend, "ffn", t)?;
        if let Some(f) = p.on_layer {
            f(LayerDone { host: p.host, hosts: p.layout.hosts.len(), layer: l + 1, layers: c.layers });
        }
    }
    Ok(KvCache::full(&m.backend, c.kv_width(), cache_k, cache_v))
}

/// Locret: fc2(act(fc1([q; k; v]))) per local token, before RoPE, as [kv_heads][n].
fn retaining_scores<B: Backend>(m: &Model<B>, layer: usize, qkv: &Qkv<B>, a: usize, n: usize) -> Result<Vec<f32>> {
    let (b, c) = (&m.backend, &m.config);
    let heads = m.weights.retaining.as_ref().ok_or_else(|| {
        EngineError::invalid("scorer", "scorer 'retaining-heads' needs a retaining-heads file; load one or use the query scorer")
    })?;
    let head = &heads[layer];
    let (qw, kvw) = (c.q_width(), c.kv_width());
    let (q, k, v) = (b.download(&qkv.q)?, b.download(&qkv.k)?, b.download(&qkv.v)?);
    let width = qw + 2 * kvw;
    let mut cat = Vec::with_capacity(n * width);
    for r in a..a + n {
        cat.extend_from_slice(&q[r * qw..(r + 1) * qw]);
        cat.extend_from_slice(&k[r * kvw..(r + 1) * kvw]);
        cat.extend_from_slice(&v[r * kvw..(r + 1) * kvw]);
    }
    let mut hidden = b.linear(&b.upload(cat)?, width, &head.fc1, head.hidden, head.fc1_bias.as_ref())?;
    b.silu(&mut hidden)?;
    let per_token = b.download(&b.linear(&hidden, head.hidden, &head.fc2, c.kv_heads, head.fc2_bias.as_ref())?)?;
    let mut scores = vec![0.0; c.kv_heads * n];
    for j in 0..n {
        for g in 0..c.kv_heads {
            scores[g * n + j] = per_token[j * c.kv_heads + g];
        }
    }
    Ok(scores)
}

/// This host's passing block: [K rows; V rows] of its top-l_p local keys per KV head.
fn passing_block<B: Backend>(
    m: &Model<B>,
    p: &HostPrefill,
    q: &B::Buf,
    (k_local, v_local): (&B::Buf, &B::Buf),
    retaining: Option<Vec<f32>>,
) -> Result<(B::Buf, B::Buf)> {
    let (b, c) = (&m.backend, &m.config);
    let me = &p.layout.hosts[p.host];
    let n = me.local_tokens as usize;
    let (sends, excluded) = (me.passing.sends as usize, p.rows.excluded_local.clone());
    let picked = match retaining {
        Some(scores) => passing::pick(scores, n, sends, excluded),
        // Passing every eligible token needs no ranking (and the plan gives no query rows).
        None if me.passing.sends >= me.passing.candidates => passing::earliest(c.kv_heads, n, sends, excluded),
        None => {
            let rows = p.rows.query_rows.clone().ok_or_else(|| EngineError::invalid("queryTokens", "the query-aware scorer needs query tokens"))?;
            let q_rows = b.rows(q, c.q_width(), rows.start, rows.len())?;
            return b.passing_block(&q_rows, (k_local, v_local), m.heads(), sends, excluded);
        }
    };
    Ok((b.gather_per_head(k_local, &picked, c.head_dim)?, b.gather_per_head(v_local, &picked, c.head_dim)?))
}

/// APB's passing blocks, once per layer: this host keeps the blocks of the hosts before it.
fn exchange_passing<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, p: &HostPrefill, block: Option<KvBlock<B>>, timings: &mut HostTimings) -> Result<Passing<B>> {
    let s = &p.layout.settings;
    if s.strategy != Strategy::Apb || s.hosts < 2 || s.passing_tokens == 0 {
        return Ok(Passing::Ready(None));
    }
    exchange::start_passing(m, comm, p.layout, p.host, block, timings)
}

/// The plan's key segment as the attention reads it: which buffer, from which row.
fn segment_of<'a, B: Backend>(key: &KeySegment, qkv: &'a Qkv<B>, a: usize, passing: Option<&'a KvBlock<B>>) -> Result<Segment<'a, B::Buf>> {
    let (k, v, base) = match key.source {
        KeySource::Passing => {
            let (pk, pv) = passing.ok_or_else(|| EngineError::new(crate::error::code::INTERNAL, "passing", "plan expects passing keys that never arrived"))?;
            (pk, pv, 0)
        }
        KeySource::Anchor => (&qkv.k, &qkv.v, 0),
        KeySource::Local => (&qkv.k, &qkv.v, a),
        KeySource::Document | KeySource::Held => return Err(EngineError::new(crate::error::code::INTERNAL, "segments", "document and held keys belong to ring strategies")),
    };
    Ok(Segment { k, v, start: base + key.start as usize, count: key.count as usize, causal: key.mask == Mask::Causal })
}

/// Attention for apb, star and full: each query range of the plan over its key segments.
fn anchored_attention<B: Backend>(m: &Model<B>, me: &HostLayout, qkv: &Qkv<B>, a: usize, passing: Option<&KvBlock<B>>) -> Result<B::Buf> {
    let (b, c) = (&m.backend, &m.config);
    let mut parts = Vec::with_capacity(me.segments.len());
    for range in &me.segments {
        let q = b.rows(&qkv.q, c.q_width(), range.row_start as usize, range.row_count as usize)?;
        let segments = range.keys.iter().map(|key| segment_of(key, qkv, a, passing)).collect::<Result<Vec<_>>>()?;
        parts.push(b.attention(&q, m.heads(), &segments)?.0);
    }
    b.concat_rows(&parts.iter().collect::<Vec<_>>())
}

/// APB's attention while the passing blocks are on their way: each range over its anchor
/// and local keys first; then, once the blocks are here, over the passing keys, merged by
/// LSE (the same softmax over all keys, summed in two parts). Only what is still moving
/// after the first part is done counts as comm: that is the transfer's share of the
/// critical path.
fn overlapped_attention<B: Backend, C: Comm>(m: &Model<B>, comm: &C, me: &HostLayout, qkv: &Qkv<B>, a: usize, pending: Box<dyn InFlight>, timings: &mut HostTimings) -> Result<B::Buf> {
    let (b, c) = (&m.backend, &m.config);
    let t = Instant::now();
    let mut parts = Vec::with_capacity(me.segments.len());
    for range in &me.segments {
        let rows = range.row_count as usize;
        let q = b.rows(&qkv.q, c.q_width(), range.row_start as usize, rows)?;
        let own = range.keys.iter().filter(|k| k.source != KeySource::Passing).map(|key| segment_of(key, qkv, a, None)).collect::<Result<Vec<_>>>()?;
        let part = if own.is_empty() { unseen(m, rows)? } else { b.attention(&q, m.heads(), &own)? };
        parts.push((q, part));
    }
    timings.end(&m.backend, "attention", t)?;
    let passing = exchange::arrived(m, comm, pending, timings)?;
    let t = Instant::now();
    let mut outs = Vec::with_capacity(parts.len());
    for (range, (q, (mut o, mut lse))) in me.segments.iter().zip(parts) {
        let keys = range.keys.iter().filter(|k| k.source == KeySource::Passing).map(|key| segment_of(key, qkv, a, passing.as_ref())).collect::<Result<Vec<_>>>()?;
        if !keys.is_empty() {
            let (po, pl) = b.attention(&q, m.heads(), &keys)?;
            b.merge(&mut o, &mut lse, &po, &pl, c.head_dim)?;
        }
        outs.push(o);
    }
    let out = b.concat_rows(&outs.iter().collect::<Vec<_>>())?;
    timings.end(&m.backend, "attention", t)?;
    Ok(out)
}

/// Ring attention: H steps; at step s this host holds the block that started on host
/// (h - s) mod H, attends to what of it the plan's ring step lists, and merges partial
/// results by LSE. Where the transport moves blocks in the background, each step's
/// transfer runs under its attention (RingAttention's overlap).
fn ring_attention<B: Backend, C: Comm>(m: &Model<B>, comm: &mut C, p: &HostPrefill, qkv: &Qkv<B>, timings: &mut HostTimings) -> Result<B::Buf> {
    let (b, c) = (&m.backend, &m.config);
    let hosts = p.layout.hosts.len();
    let me = &p.layout.hosts[p.host];
    // Every host passes its block on at each step; a schedule of another length would leave
    // the ring waiting, so refuse it before the first transfer.
    let steps: u64 = me.ring_steps.iter().map(|r| r.steps).sum();
    if steps != hosts as u64 {
        return Err(EngineError::new(crate::error::code::INTERNAL, "ring", format!("the plan gives {steps} ring steps for {hosts} hosts")));
    }
    // The block this host sends first: its own K/V, copied out of this layer's q/k/v.
    let mut held: Handoff = exchange::moving(m, comm, timings, || {
        let n = b.len(&qkv.k) / c.kv_width();
        let own: KvBlock<B> = (b.rows(&qkv.k, c.kv_width(), 0, n)?, b.rows(&qkv.v, c.kv_width(), 0, n)?);
        Ok(Arc::new(own) as Handoff)
    })?;
    let mut acc: Option<(B::Buf, B::Buf)> = None;
    let schedule: Vec<(u64, &[QueryRange])> = me.ring_schedule().collect();
    for (step, &(source, ranges)) in schedule.iter().enumerate() {
        let next_source = schedule.get(step + 1).map(|&(s, _)| s as usize);
        // Where the transport can, the held block moves on while this host attends to it.
        let pending = match next_source {
            Some(next) => exchange::start_ring_step(m, comm, p.layout, (p.host, source as usize, next), &held, timings)?,
            None => None,
        };
        {
            let _turn = comm.compute_turn();
            let t = Instant::now();
            let (k, v) = exchange::kv_of::<B>(&held)?;
            let (o, lse) = ring_partial(m, &qkv.q, ranges, k, v)?;
            acc = Some(match acc {
                None => (o, lse),
                Some((mut ao, mut al)) => {
                    b.merge(&mut ao, &mut al, &o, &lse, c.head_dim)?;
                    (ao, al)
                }
            });
            timings.end(&m.backend, "attention", t)?;
        }
        if next_source.is_some() {
            held = match pending {
                Some(pending) => exchange::ring_step_arrived(comm, pending, timings)?,
                None => exchange::ring_step(m, comm, held, timings)?,
            };
        }
    }
    acc.map(|(o, _)| o).ok_or_else(|| EngineError::new(crate::error::code::INTERNAL, "ring", "no ring steps"))
}

/// Partial attention of this host's query ranges over the held block, as one ring step of
/// the plan lists it (keys are rows of the held block). A range that sees none of the block
/// gets output 0 with LSE -inf, so merging leaves it as it was. A range of all the rows (plain
/// ring) attends with Q as it is and keeps its output as it comes; only ranges of some of the
/// rows (zigzag's two chunks) are copied out of Q and their outputs joined.
fn ring_partial<B: Backend>(m: &Model<B>, q: &B::Buf, ranges: &[QueryRange], k: &B::Buf, v: &B::Buf) -> Result<(B::Buf, B::Buf)> {
    let (b, c) = (&m.backend, &m.config);
    let all_rows = b.len(q) / c.q_width();
    let (mut outs, mut lses) = (Vec::with_capacity(ranges.len()), Vec::with_capacity(ranges.len()));
    for range in ranges {
        let rows = range.row_count as usize;
        let mut segments = Vec::with_capacity(range.keys.len());
        for key in &range.keys {
            if key.source != KeySource::Held {
                return Err(EngineError::new(crate::error::code::INTERNAL, "ringSteps", "a ring step attends to the held block only"));
            }
            segments.push(Segment { k, v, start: key.start as usize, count: key.count as usize, causal: key.mask == Mask::Causal });
        }
        let (o, lse) = if segments.is_empty() {
            unseen(m, rows)?
        } else if range.row_start == 0 && rows == all_rows {
            b.attention(q, m.heads(), &segments)?
        } else {
            b.attention(&b.rows(q, c.q_width(), range.row_start as usize, rows)?, m.heads(), &segments)?
        };
        outs.push(o);
        lses.push(lse);
    }
    if outs.len() == 1 {
        if let (Some(o), Some(lse)) = (outs.pop(), lses.pop()) {
            return Ok((o, lse));
        }
    }
    Ok((b.concat_rows(&outs.iter().collect::<Vec<_>>())?, b.concat_rows(&lses.iter().collect::<Vec<_>>())?))
}

/// The attention of `rows` query rows that see no keys: output 0 with LSE -inf, which merging
/// by LSE leaves as it was.
fn unseen<B: Backend>(m: &Model<B>, rows: usize) -> Result<(B::Buf, B::Buf)> {
    let (b, c) = (&m.backend, &m.config);
    Ok((b.zeros(rows * c.q_width())?, b.unseen_lse(rows * c.heads)?))
}
