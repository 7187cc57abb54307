//! The plan as JSON: the wire shape every consumer reads (packages/planner types it).
//! Times are milliseconds over all layers; FLOPs are totals over all layers; bytes are
//! per layer where the name says so.

use crate::json::Json;
use crate::layout::{AnchorKind, HostLayout, KeySource, Mask, PartKind, QueryRange, Range, RingSteps, RowKind};
use crate::plan::{HostPlan, Plan};

fn ms(seconds: f64) -> Json {
    // Microsecond resolution keeps the JSON short and identical across platforms.
    Json::Num((seconds * 1e6).round() / 1e3)
}

fn anchor_kind(k: AnchorKind) -> &'static str {
    match k {
        AnchorKind::None => "none",
        AnchorKind::Probe => "probe",
        AnchorKind::Block => "block",
    }
}

fn part_kind(k: PartKind) -> &'static str {
    match k {
        PartKind::Prefix => "prefix",
        PartKind::Query => "query",
        PartKind::Document => "document",
    }
}

fn source(k: KeySource) -> &'static str {
    match k {
        KeySource::Passing => "passing",
        KeySource::Anchor => "anchor",
        KeySource::Local => "local",
        KeySource::Document => "document",
        KeySource::Held => "held",
    }
}

fn rows(k: RowKind) -> &'static str {
    match k {
        RowKind::Anchor => "anchor",
        RowKind::Local => "local",
        RowKind::Sequence => "sequence",
    }
}

fn segment_json(r: &QueryRange) -> Json {
    let keys = r
        .keys
        .iter()
        .map(|k| {
            Json::obj(vec![
                ("source", Json::str(source(k.source))),
                ("start", Json::int(k.start)),
                ("count", Json::int(k.count)),
                ("mask", Json::str(if k.mask == Mask::Causal { "causal" } else { "full" })),
            ])
        })
        .collect();
    Json::obj(vec![
        ("rows", Json::str(rows(r.rows))),
        ("rowStart", Json::int(r.row_start)),
        ("rowCount", Json::int(r.row_count)),
        ("keys", Json::Arr(keys)),
    ])
}

fn range_json(r: &Range) -> Json {
    Json::Arr(vec![Json::int(r.start), Json::int(r.end)])
}

fn ring_steps_json(r: &RingSteps) -> Json {
    Json::obj(vec![
        ("firstStep", Json::int(r.first_step)),
        ("steps", Json::int(r.steps)),
        ("firstSource", Json::int(r.first_source)),
        ("segments", Json::Arr(r.segments.iter().map(segment_json).collect())),
    ])
}

fn layout_fields(h: &HostLayout) -> Vec<(&'static str, Json)> {
    let ranges = h.local.iter().map(range_json).collect();
    let parts = h
        .anchor
        .parts
        .iter()
        .map(|p| {
            Json::obj(vec![
                ("kind", Json::str(part_kind(p.kind))),
                ("sourceStart", Json::int(p.source_start)),
                ("tokens", Json::int(p.tokens)),
                ("rowStart", Json::int(p.row_start)),
            ])
        })
        .collect();
    vec![
        ("host", Json::int(h.host)),
        ("localRanges", Json::Arr(ranges)),
        ("localTokens", Json::int(h.local_tokens)),
        (
            "anchor",
            Json::obj(vec![
                ("kind", Json::str(anchor_kind(h.anchor.kind))),
                ("tokens", Json::int(h.anchor.tokens)),
                ("parts", Json::Arr(parts)),
            ]),
        ),
        (
            "passing",
            Json::obj(vec![
                ("sends", Json::int(h.passing.sends)),
                ("candidates", Json::int(h.passing.candidates)),
                ("excluded", range_json(&h.passing.excluded)),
                ("fromHosts", Json::int(h.passing.from_hosts)),
                ("receives", Json::int(h.passing.receives)),
            ]),
        ),
        ("qHeads", Json::Arr(vec![Json::int(h.q_heads.0), Json::int(h.q_heads.1)])),
        ("kvHeads", Json::Arr(vec![Json::int(h.kv_heads.0), Json::int(h.kv_heads.1)])),
        ("segments", Json::Arr(h.segments.iter().map(segment_json).collect())),
        ("ringSteps", Json::Arr(h.ring_steps.iter().map(ring_steps_json).collect())),
    ]
}

fn host_json(p: &Plan, h: &HostPlan) -> Json {
    let layers = p.input.model.layers as f64;
    let w = &h.work;
    let t = &h.phases;
    let mut fields = layout_fields(&h.layout);
    fields.push((
        "flops",
        Json::obj(vec![
            ("projections", Json::Num(layers * w.projection_flops)),
            ("ffn", Json::Num(layers * w.ffn_flops)),
            ("attention", Json::Num(layers * w.attention_flops)),
            ("scoring", Json::Num(layers * w.scoring_flops)),
            ("total", Json::Num(layers * (w.projection_flops + w.ffn_flops + w.attention_flops + w.scoring_flops))),
        ]),
    ));
    fields.push((
        "bytes",
        Json::obj(vec![
            ("sentPerLayer", Json::Num(w.sent_bytes)),
            ("receivedPerLayer", Json::Num(w.received_bytes)),
            ("sent", Json::Num(layers * w.sent_bytes)),
            ("received", Json::Num(layers * w.received_bytes)),
        ]),
    ));
    let m = &h.memory;
    fields.push((
        "memory",
        Json::obj(vec![
            ("weights", Json::Num(m.weights)),
            ("kvKept", Json::Num(m.kv_kept)),
            ("kvTransient", Json::Num(m.kv_transient)),
            ("activations", Json::Num(m.activations)),
            ("total", Json::Num(m.total)),
            ("fits", Json::Bool(m.total <= p.memory_limit_bytes())),
        ]),
    ));
    fields.push((
        "timeMs",
        Json::obj(vec![
            ("projections", ms(layers * t.projections)),
            ("ffn", ms(layers * t.ffn)),
            ("attention", ms(layers * t.attention)),
            ("scoring", ms(layers * t.scoring)),
            ("elementwise", ms(layers * t.elementwise)),
            ("communication", ms(layers * t.communication)),
            ("total", ms(layers * t.total())),
            ("query", ms(layers * (h.query_compute_s + h.query_merge_s))),
        ]),
    ));
    Json::obj(fields)
}

pub fn summary_json(p: &Plan) -> Json {
    let layers = p.input.model.layers as f64;
    let flops: f64 = p
        .hosts
        .iter()
        .map(|h| layers * (h.work.projection_flops + h.work.ffn_flops + h.work.attention_flops + h.work.scoring_flops))
        .sum();
    let sent: f64 = p.hosts.iter().map(|h| layers * h.work.sent_bytes).sum();
    Json::obj(vec![
        ("prefillMs", ms(p.prefill_s)),
        ("queryMs", ms(p.query_s)),
        ("ttftMs", ms(p.ttft_s())),
        ("slowestHost", Json::int(p.slowest_host())),
        ("prefillFlops", Json::Num(flops)),
        ("bytesSent", Json::Num(sent)),
        ("memoryPeakBytes", Json::Num(p.memory_peak_bytes())),
        ("memoryLimitBytes", Json::Num(p.memory_limit_bytes())),
        ("fits", Json::Bool(p.fits())),
    ])
}

/// The settings a plan resolved to (the paper's defaults filled in).
pub fn settings_fields(p: &Plan) -> Vec<(&'static str, Json)> {
    let s = p.settings();
    vec![
        ("strategy", Json::str(s.strategy.name())),
        ("hosts", Json::int(s.hosts)),
        ("contextTokens", Json::int(p.input.context_tokens)),
        ("queryTokens", Json::int(p.input.query_tokens)),
        ("prefixTokens", Json::int(p.input.prefix_tokens)),
        ("blockTokens", Json::int(s.block_tokens)),
        ("paddingTokens", Json::int(p.layout.padding_tokens)),
        ("anchorTokens", Json::int(s.anchor_tokens)),
        ("passingTokens", Json::int(s.passing_tokens)),
        ("queryInAnchor", Json::Bool(s.query_in_anchor)),
        ("scorer", Json::str(p.input.scorer.name())),
        ("balanced", Json::Bool(p.balance.is_some())),
    ]
}

pub fn plan_json(p: &Plan) -> Json {
    let mut fields = settings_fields(p);
    fields.push(("summary", summary_json(p)));
    let balance = match &p.balance {
        None => Json::Null,
        Some(b) => Json::obj(vec![
            ("evenPrefillMs", ms(b.even_prefill_s)),
            ("balancedPrefillMs", ms(b.balanced_prefill_s)),
            ("gain", Json::Num((b.gain() * 1e4).round() / 1e4)),
        ]),
    };
    fields.push(("balance", balance));
    let warnings = p.settings().warnings.iter().map(|w| Json::string(w.clone())).collect();
    fields.push(("warnings", Json::Arr(warnings)));
    fields.push(("hostPlans", Json::Arr(p.hosts.iter().map(|h| host_json(p, h)).collect())));
    Json::obj(fields)
}
