//! Who holds which tokens, and which keys each query range sees. This is the one place
//! where layouts are computed; kernels, the engine and the apps consume it.
//!
//! Row coordinates: a host's query rows are [anchor rows; local rows]. Key sources index
//! their own buffers: `Passing` is the gathered passing buffer (host 0's block first),
//! `Anchor` the anchor's KV, `Local` the host's own KV, `Document` document positions (ring
//! strategies receive keys block by block), `Held` the block a ring step holds. A `Causal`
//! segment is bottom-right aligned to its query range: row i of the range sees keys
//! 0..=i + (count - rows) of the segment; it is always the last segment of a range.

use crate::input::{PlanInput, Scorer, Strategy};
use crate::settings::Settings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
    pub fn contains(&self, x: u64) -> bool {
        self.start <= x && x < self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorKind {
    None,
    /// Host 0 (or any host without an anchor) that must still score with the query: only
    /// the prefix and the query, used for scoring and never seen by local rows.
    Probe,
    Block,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartKind {
    Prefix,
    Query,
    Document,
}

/// A run of anchor rows. Positions equal row indices: the anchor occupies positions
/// 0..tokens, as in the paper.
#[derive(Debug, Clone, PartialEq)]
pub struct AnchorPart {
    pub kind: PartKind,
    /// First token taken from its source (document position, or query index).
    pub source_start: u64,
    pub tokens: u64,
    pub row_start: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Anchor {
    pub kind: AnchorKind,
    pub tokens: u64,
    pub parts: Vec<AnchorPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Passing,
    Anchor,
    Local,
    Document,
    /// Ring strategies: the K/V block held at a ring step, its source host's local ranges
    /// stacked in document order (`start` is a row of that block).
    Held,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mask {
    Full,
    Causal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySegment {
    pub source: KeySource,
    pub start: u64,
    pub count: u64,
    pub mask: Mask,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Anchor,
    Local,
    /// Ulysses: every document row, for this host's heads.
    Sequence,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryRange {
    pub rows: RowKind,
    pub row_start: u64,
    pub row_count: u64,
    pub keys: Vec<KeySegment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Passing {
    /// Tokens per KV head this host selects and contributes each layer (0: none).
    pub sends: u64,
    /// Local tokens eligible for selection: the block less `excluded`.
    pub candidates: u64,
    /// Local rows (indices into the local block) that may not be passed: they hold document
    /// tokens every anchored host already has in its anchor. Empty where there are none.
    pub excluded: Range,
    /// Receives the passing blocks of hosts 0..from_hosts.
    pub from_hosts: u64,
    pub receives: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostLayout {
    pub host: u64,
    pub local: Vec<Range>,
    pub local_tokens: u64,
    pub anchor: Anchor,
    pub passing: Passing,
    pub segments: Vec<QueryRange>,
    /// Ring strategies: what the local query ranges see of the block held at each ring step,
    /// in step order (runs of steps that see it alike). Empty for other strategies.
    pub ring_steps: Vec<RingSteps>,
    /// Query and KV heads this host computes attention for: (first, count).
    pub q_heads: (u64, u64),
    pub kv_heads: (u64, u64),
}

/// A run of consecutive ring steps in which a host's query ranges see the held block alike.
/// One entry per step would make a plan quadratic in the hosts (4096 hosts: 16M steps); as
/// runs, plain ring and zigzag need at most three per host (itself, the hosts before it, the
/// hosts after it).
#[derive(Debug, Clone, PartialEq)]
pub struct RingSteps {
    pub first_step: u64,
    pub steps: u64,
    /// The host whose block is held at `first_step`; step `first_step + i` holds the block of
    /// host `first_source - i` (a run never wraps past host 0).
    pub first_source: u64,
    /// Every local query range of the host (the rows of its `segments`), each with the keys
    /// of the held block it attends to (`Held`); a range with no keys sees none of it.
    pub segments: Vec<QueryRange>,
}

impl RingSteps {
    /// The host whose block is held at each step of the run, in step order.
    pub fn sources(&self) -> impl Iterator<Item = u64> {
        let first = self.first_source;
        (0..self.steps).map(move |i| first.saturating_sub(i))
    }
}

impl HostLayout {
    /// Ring strategies: every ring step in order, as (the host whose block is held, what
    /// each local query range sees of it). Empty for other strategies.
    pub fn ring_schedule(&self) -> impl Iterator<Item = (u64, &[QueryRange])> + '_ {
        self.ring_steps.iter().flat_map(|run| run.sources().map(move |source| (source, run.segments.as_slice())))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub settings: Settings,
    pub padding_tokens: u64,
    pub hosts: Vec<HostLayout>,
}

/// Splits the context: the paper pads to a multiple of the hosts and the last host drops
/// the padding; `sizes` (balanced mode) gives each host's length instead.
pub fn local_ranges(input: &PlanInput, s: &Settings, sizes: Option<&[u64]>) -> Vec<Vec<Range>> {
    let n = input.context_tokens;
    let clip = |a: u64, b: u64| Range { start: a.min(n), end: b.min(n) };
    match (s.strategy, sizes) {
        (Strategy::RingZigzag, _) => {
            let chunk = s.padded_tokens / (2 * s.hosts);
            (0..s.hosts)
                .map(|h| {
                    let b = 2 * s.hosts - 1 - h;
                    vec![clip(h * chunk, (h + 1) * chunk), clip(b * chunk, (b + 1) * chunk)]
                })
                .collect()
        }
        (_, Some(sizes)) => {
            let mut start = 0;
            sizes
                .iter()
                .map(|&len| {
                    let r = Range { start, end: start + len };
                    start += len;
                    vec![r]
                })
                .collect()
        }
        _ => (0..s.hosts).map(|h| vec![clip(h * s.block_tokens, (h + 1) * s.block_tokens)]).collect(),
    }
}

/// Document tokens that every anchored host already holds in its anchor.
pub fn anchor_document(input: &PlanInput, s: &Settings) -> Range {
    let embedded = if s.query_in_anchor { input.query_tokens } else { 0 };
    Range { start: 0, end: s.anchor_tokens.saturating_sub(embedded).min(input.context_tokens) }
}

fn anchor_parts(input: &PlanInput, s: &Settings, kind: AnchorKind) -> Vec<AnchorPart> {
    let p = input.prefix_tokens;
    let q = input.query_tokens;
    let mut parts = Vec::new();
    let mut push = |kind: PartKind, source_start: u64, tokens: u64, row_start: u64| {
        if tokens > 0 {
            parts.push(AnchorPart { kind, source_start, tokens, row_start });
        }
    };
    match kind {
        AnchorKind::None => {}
        AnchorKind::Probe => {
            push(PartKind::Prefix, 0, p, 0);
            push(PartKind::Query, 0, q, p);
        }
        AnchorKind::Block if s.query_in_anchor => {
            push(PartKind::Prefix, 0, p, 0);
            push(PartKind::Query, 0, q, p);
            push(PartKind::Document, p, s.anchor_tokens - p - q, p + q);
        }
        AnchorKind::Block => push(PartKind::Document, 0, s.anchor_tokens, 0),
    }
    parts
}

fn make_anchor(input: &PlanInput, s: &Settings, kind: AnchorKind) -> Anchor {
    let parts = anchor_parts(input, s, kind);
    let tokens = parts.iter().map(|p| p.tokens).sum();
    Anchor { kind, tokens, parts }
}

/// The local rows that hold `anchor_doc`'s tokens. The anchor's document tokens are a prefix
/// of the document and local ranges are in document order, so each range's overlap is a
/// prefix of that range and the rows form one run: the span of the overlaps is exact.
fn excluded_rows(local: &[Range], anchor_doc: &Range) -> Range {
    let mut out: Option<Range> = None;
    let mut row = 0;
    for r in local {
        let (lo, hi) = (r.start.max(anchor_doc.start), r.end.min(anchor_doc.end));
        if lo < hi {
            let rows = Range { start: row + (lo - r.start), end: row + (hi - r.start) };
            out = Some(match out {
                None => rows,
                Some(o) => Range { start: o.start, end: rows.end },
            });
        }
        row += r.len();
    }
    out.unwrap_or(Range { start: 0, end: 0 })
}

fn passing_for(input: &PlanInput, s: &Settings, host: u64, local: &[Range]) -> Passing {
    let local_tokens: u64 = local.iter().map(|r| r.len()).sum();
    // Candidates are counted from the excluded rows the engine skips, so they cannot disagree.
    let excluded = excluded_rows(local, &anchor_document(input, s));
    let is_apb = s.strategy == Strategy::Apb && s.passing_tokens > 0;
    // The last host's block would reach nobody, so it selects nothing.
    let sends = if is_apb && host + 1 < s.hosts { s.passing_tokens } else { 0 };
    let from_hosts = if is_apb { host } else { 0 };
    Passing {
        sends,
        candidates: local_tokens.saturating_sub(excluded.len()),
        excluded,
        from_hosts,
        receives: from_hosts * s.passing_tokens,
    }
}

fn anchor_kind(input: &PlanInput, s: &Settings, host: u64, passing: &Passing) -> AnchorKind {
    if host > 0 && s.anchor_tokens > 0 {
        return AnchorKind::Block;
    }
    // A host that selects a strict subset by the query's attention needs the query's rows.
    let scores_with_query = input.scorer == Scorer::Query && passing.sends > 0 && passing.sends < passing.candidates;
    if scores_with_query {
        AnchorKind::Probe
    } else {
        AnchorKind::None
    }
}

fn anchored_segments(host: &HostLayout) -> Vec<QueryRange> {
    let mut out = Vec::new();
    let a = host.anchor.tokens;
    if a > 0 {
        let keys = vec![KeySegment { source: KeySource::Anchor, start: 0, count: a, mask: Mask::Causal }];
        out.push(QueryRange { rows: RowKind::Anchor, row_start: 0, row_count: a, keys });
    }
    let mut keys = Vec::new();
    if host.passing.receives > 0 {
        keys.push(KeySegment { source: KeySource::Passing, start: 0, count: host.passing.receives, mask: Mask::Full });
    }
    if host.anchor.kind == AnchorKind::Block {
        keys.push(KeySegment { source: KeySource::Anchor, start: 0, count: a, mask: Mask::Full });
    }
    keys.push(KeySegment { source: KeySource::Local, start: 0, count: host.local_tokens, mask: Mask::Causal });
    out.push(QueryRange { rows: RowKind::Local, row_start: a, row_count: host.local_tokens, keys });
    out
}

/// Ring strategies: each local range sees every earlier document token in full (they
/// arrive over the ring) and itself causally.
fn ring_segments(host: &HostLayout) -> Vec<QueryRange> {
    let mut out = Vec::new();
    let mut row = 0;
    for r in host.local.iter().filter(|r| !r.is_empty()) {
        let mut keys = Vec::new();
        if r.start > 0 {
            keys.push(KeySegment { source: KeySource::Document, start: 0, count: r.start, mask: Mask::Full });
        }
        keys.push(KeySegment { source: KeySource::Local, start: row, count: r.len(), mask: Mask::Causal });
        out.push(QueryRange { rows: RowKind::Local, row_start: row, row_count: r.len(), keys });
        row += r.len();
    }
    out
}

/// What a local query chunk `q` sees of a held block whose chunks are `held` (stacked in
/// document order), given to `emit` in row order: a chunk that ends at or before `q` starts
/// in full, `q` itself (only held at step 0) causally, any later chunk not at all. Chunks
/// are disjoint, so there is no other case.
fn held_keys(q: &Range, held: &[Range], mut emit: impl FnMut(KeySegment)) {
    let mut row = 0;
    for k in held.iter().filter(|r| !r.is_empty()) {
        let mask = if k.end <= q.start {
            Some(Mask::Full)
        } else if k == q {
            Some(Mask::Causal)
        } else {
            None
        };
        if let Some(mask) = mask {
            emit(KeySegment { source: KeySource::Held, start: row, count: k.len(), mask });
        }
        row += k.len();
    }
}

/// Whether the query ranges would see `held` exactly as `run` lists. Compared in place: a
/// plan scans H steps for each of H hosts, so a step that extends a run allocates nothing.
fn sees_alike(run: &RingSteps, queries: &[(Range, u64)], held: &[Range]) -> bool {
    run.segments.iter().zip(queries).all(|(range, (q, _))| {
        let mut listed = range.keys.iter();
        let mut same = true;
        held_keys(q, held, |k| same = same && listed.next() == Some(&k));
        same && listed.next().is_none()
    })
}

/// Ring strategies: host `h`'s ring steps. Blocks travel to the next host each step, so at
/// step s host h holds the block that started on host (h - s) mod H. Consecutive steps that
/// see the held block alike (and do not wrap past host 0) share one run.
fn ring_steps(locals: &[&[Range]], h: usize) -> Vec<RingSteps> {
    let hosts = locals.len();
    let own = match locals.get(h) {
        Some(own) => *own,
        None => return Vec::new(),
    };
    // The query ranges of `ring_segments`: the non-empty local chunks, rows stacked.
    let mut queries = Vec::new();
    let mut row = 0;
    for r in own.iter().filter(|r| !r.is_empty()) {
        queries.push((*r, row));
        row += r.len();
    }
    let mut runs: Vec<RingSteps> = Vec::new();
    let mut source = h;
    for step in 0..hosts {
        if step > 0 {
            source = if source == 0 { hosts - 1 } else { source - 1 };
        }
        let held = locals[source];
        if let Some(run) = runs.last_mut() {
            // The run's last source is first_source - (steps - 1); this step's must come next.
            if source as u64 + run.steps == run.first_source && sees_alike(run, &queries, held) {
                run.steps += 1;
                continue;
            }
        }
        let segments = queries
            .iter()
            .map(|(q, row)| {
                let mut keys = Vec::new();
                held_keys(q, held, |k| keys.push(k));
                QueryRange { rows: RowKind::Local, row_start: *row, row_count: q.len(), keys }
            })
            .collect();
        runs.push(RingSteps { first_step: step as u64, steps: 1, first_source: source as u64, segments });
    }
    runs
}

fn ulysses_segments(n: u64) -> Vec<QueryRange> {
    let keys = vec![KeySegment { source: KeySource::Document, start: 0, count: n, mask: Mask::Causal }];
    vec![QueryRange { rows: RowKind::Sequence, row_start: 0, row_count: n, keys }]
}

fn heads_for(input: &PlanInput, s: &Settings, host: u64) -> ((u64, u64), (u64, u64)) {
    let (q, kv) = (input.model.heads, input.model.kv_heads);
    if s.strategy != Strategy::Ulysses {
        return ((0, q), (0, kv));
    }
    let qh = q / s.hosts;
    let q_heads = (host * qh, qh);
    // More hosts than KV heads: each KV head is shared by hosts/kv hosts.
    let kv_heads = if kv >= s.hosts { (host * (kv / s.hosts), kv / s.hosts) } else { (host / (s.hosts / kv), 1) };
    (q_heads, kv_heads)
}

/// One host's layout, given the document ranges it holds. Ring steps need the other hosts'
/// blocks, so `build` fills them in.
pub fn build_host(input: &PlanInput, s: &Settings, h: u64, local: Vec<Range>) -> HostLayout {
    let local_tokens = local.iter().map(|r| r.len()).sum();
    let passing = passing_for(input, s, h, &local);
    let kind = if s.strategy.has_anchor() { anchor_kind(input, s, h, &passing) } else { AnchorKind::None };
    let (q_heads, kv_heads) = heads_for(input, s, h);
    let mut host = HostLayout {
        host: h,
        local,
        local_tokens,
        anchor: make_anchor(input, s, kind),
        passing,
        segments: Vec::new(),
        ring_steps: Vec::new(),
        q_heads,
        kv_heads,
    };
    host.segments = match s.strategy {
        Strategy::Apb | Strategy::Star | Strategy::Full => anchored_segments(&host),
        Strategy::Ring | Strategy::RingZigzag => ring_segments(&host),
        Strategy::Ulysses => ulysses_segments(input.context_tokens),
    };
    host
}

pub fn build(input: &PlanInput, s: &Settings, sizes: Option<&[u64]>) -> Layout {
    let mut hosts: Vec<HostLayout> = local_ranges(input, s, sizes)
        .into_iter()
        .enumerate()
        .map(|(h, local)| build_host(input, s, h as u64, local))
        .collect();
    if matches!(s.strategy, Strategy::Ring | Strategy::RingZigzag) {
        let steps: Vec<Vec<RingSteps>> = {
            let locals: Vec<&[Range]> = hosts.iter().map(|h| h.local.as_slice()).collect();
            (0..locals.len()).map(|h| ring_steps(&locals, h)).collect()
        };
        for (host, steps) in hosts.iter_mut().zip(steps) {
            host.ring_steps = steps;
        }
    }
    let padding_tokens = if sizes.is_some() { 0 } else { s.padded_tokens - input.context_tokens };
    Layout { settings: s.clone(), padding_tokens, hosts }
}

/// Checks what only the finished layout shows: every host holds a token, and every host
/// that passes a block has enough eligible tokens to fill it.
pub fn check(layout: &Layout) -> crate::error::PlanResult<()> {
    use crate::error::{code, PlanError};
    for host in &layout.hosts {
        if host.local_tokens == 0 {
            return Err(PlanError::new(
                code::INFEASIBLE,
                "hosts",
                format!(
                    "host {} would hold no tokens ({} hosts, blocks of {}); use fewer hosts",
                    host.host,
                    layout.hosts.len(),
                    layout.settings.block_tokens
                ),
            ));
        }
        if host.passing.sends > host.passing.candidates {
            return Err(PlanError::new(
                code::INFEASIBLE,
                "passingTokens",
                format!(
                    "passingTokens ({}) exceeds the {} tokens host {} can pass (its block minus the anchor's tokens); give at most {}",
                    host.passing.sends, host.passing.candidates, host.host, host.passing.candidates
                ),
            ));
        }
    }
    Ok(())
}
