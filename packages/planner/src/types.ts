// The planner's output, as crates/apb-plan/src/output.rs writes it. Times are milliseconds
// over all layers, FLOPs totals over all layers, bytes per layer where the name says so.
import type { Strategy } from "./schema.js";

export type KeySource = "passing" | "anchor" | "local" | "document";

/** A run of keys a query range attends to; `causal` is bottom-right aligned and last. */
export interface KeySegment {
  source: KeySource;
  start: number;
  count: number;
  mask: "full" | "causal";
}

export interface QueryRange {
  rows: "anchor" | "local" | "sequence";
  rowStart: number;
  rowCount: number;
  keys: KeySegment[];
}

/** A run of the block a ring step holds: `start` is a row of that block (its source host's
 * local ranges stacked in document order). */
export interface HeldKeySegment {
  source: "held";
  start: number;
  count: number;
  mask: "full" | "causal";
}

/** A local query range and the keys of the held block it attends to (none: it sees none of it). */
export interface HeldQueryRange {
  rows: "local";
  rowStart: number;
  rowCount: number;
  keys: HeldKeySegment[];
}

/** Ring strategies: consecutive ring steps whose query ranges see the held block alike.
 * Step `firstStep + i` holds the block that started on host `firstSource - i`. */
export interface RingSteps {
  firstStep: number;
  steps: number;
  firstSource: number;
  /** Every local query range of the host (the rows of `segments`), in order. */
  segments: HeldQueryRange[];
}

export interface AnchorPart {
  kind: "prefix" | "query" | "document";
  /** First token taken from its source: a document position, or an index into the query. */
  sourceStart: number;
  tokens: number;
  /** Row (and position) where this part starts inside the anchor. */
  rowStart: number;
}

export interface HostPlan {
  host: number;
  /** Document ranges [start, end) this host holds. */
  localRanges: [number, number][];
  localTokens: number;
  anchor: { kind: "none" | "probe" | "block"; tokens: number; parts: AnchorPart[] };
  passing: {
    sends: number;
    /** Local tokens eligible for passing: the block less `excluded`. */
    candidates: number;
    /** Local rows [start, end) that may not be passed: every receiver's anchor holds them. */
    excluded: [number, number];
    fromHosts: number;
    receives: number;
  };
  /** [first, count] of the query and KV heads this host computes. */
  qHeads: [number, number];
  kvHeads: [number, number];
  segments: QueryRange[];
  /** Ring strategies: what the local rows see of the block held at each ring step; empty otherwise. */
  ringSteps: RingSteps[];
  flops: { projections: number; ffn: number; attention: number; scoring: number; total: number };
  bytes: { sentPerLayer: number; receivedPerLayer: number; sent: number; received: number };
  memory: { weights: number; kvKept: number; kvTransient: number; activations: number; total: number; fits: boolean };
  timeMs: {
    projections: number;
    ffn: number;
    attention: number;
    scoring: number;
    elementwise: number;
    communication: number;
    total: number;
    query: number;
  };
}

export interface Summary {
  prefillMs: number;
  queryMs: number;
  /** Predicted time to first token: prefill plus the query pass. */
  ttftMs: number;
  slowestHost: number;
  prefillFlops: number;
  bytesSent: number;
  memoryPeakBytes: number;
  memoryLimitBytes: number;
  fits: boolean;
}

export interface ResolvedSettings {
  strategy: Strategy;
  hosts: number;
  contextTokens: number;
  queryTokens: number;
  prefixTokens: number;
  blockTokens: number;
  paddingTokens: number;
  anchorTokens: number;
  passingTokens: number;
  queryInAnchor: boolean;
  scorer: "query" | "retaining-heads";
  balanced: boolean;
}

export interface Plan extends ResolvedSettings {
  summary: Summary;
  balance: { evenPrefillMs: number; balancedPrefillMs: number; gain: number } | null;
  warnings: string[];
  hostPlans: HostPlan[];
}

export interface ComparisonRow extends ResolvedSettings {
  summary: Summary;
  speedupVsFull: number | null;
}

export interface Comparison {
  contextTokens: number;
  queryTokens: number;
  hosts: number;
  strategies: (ComparisonRow | { strategy: Strategy; error: { code: string; message: string; path: string } })[];
}

export interface RecommendationRow extends ResolvedSettings {
  summary: Summary;
}

export interface Recommendation {
  best: RecommendationRow | null;
  candidates: RecommendationRow[];
  searched: number;
  rejected: { infeasible: number; memory: number };
  minAnchorRatio: number;
  minPassingRatio: number;
  reason: string | null;
}
