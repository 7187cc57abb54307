//! A host's rows for prefill, assembled from the plan: the anchor's parts (prefix, query,
//! document) or the probe, then the local block, with their positions.

use std::ops::Range;

use apb_plan::layout::{HostLayout, PartKind};

pub struct HostRows {
    pub tokens: Vec<u32>,
    pub positions: Vec<u32>,
    /// Rows before the local block (anchor or probe).
    pub anchor_rows: usize,
    /// Rows of the embedded query, for the query-aware passing score.
    pub query_rows: Option<Range<usize>>,
    /// Local tokens (indices into the local block) that may not be passed: every receiver
    /// already holds them in its anchor.
    pub excluded_local: Range<usize>,
}

pub fn host_rows(layout: &HostLayout, context: &[u32], query: &[u32]) -> HostRows {
    let mut tokens = Vec::new();
    let mut query_rows = None;
    for part in &layout.anchor.parts {
        let (start, len) = (part.source_start as usize, part.tokens as usize);
        match part.kind {
            PartKind::Prefix | PartKind::Document => tokens.extend_from_slice(&context[start..start + len]),
            PartKind::Query => {
                query_rows = Some(part.row_start as usize..(part.row_start + part.tokens) as usize);
                tokens.extend_from_slice(&query[start..start + len]);
            }
        }
    }
    let anchor_rows = tokens.len();
    // Anchor rows sit at positions 0..a, as in the paper; local rows keep document positions.
    let mut positions: Vec<u32> = (0..anchor_rows as u32).collect();
    for r in &layout.local {
        let (s, e) = (r.start as usize, r.end as usize);
        tokens.extend_from_slice(&context[s..e]);
        positions.extend(s as u32..e as u32);
    }
    // The plan computes these rows where it counts the passing candidates, so the two agree.
    let excluded = layout.passing.excluded;
    let excluded_local = excluded.start as usize..excluded.end as usize;
    HostRows { tokens, positions, anchor_rows, query_rows, excluded_local }
}
