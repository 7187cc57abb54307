// What callers may ask of the planner, checked with zod at the edge. Every message names
// the allowed range and what was given; the path is added by fromZod.
import { z } from "zod";
import { LIMITS, MAX_HOSTS, MAX_RECOMMEND_HOSTS, MAX_TOKENS } from "./limits.js";

/**
 * Every strategy the planner models: what it can lay out and cost. The engine runs all but
 * Ulysses, which has a layout and costs here but no run path in the engine yet, so the list of
 * what the engine runs is the runtime's STRATEGIES (packages/runtime/src/request.ts), and a test
 * there holds this list to it. The order is the one `apb plan --help` and the web page show.
 */
export const STRATEGIES = ["apb", "star", "ring", "ring-zigzag", "ulysses", "full"] as const;
export type Strategy = (typeof STRATEGIES)[number];
export const SCORERS = ["query", "retaining-heads"] as const;

function shown(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return `"${value}"`;
  return value === null ? "null" : Array.isArray(value) ? "an array" : typeof value;
}

function wholeNumber(min: number, max: number) {
  const want = `must be a whole number between ${min} and ${max}`;
  const error = (iss: { input?: unknown }) => `${want}, got ${shown(iss.input)}`;
  return z.number({ error }).int({ error }).min(min, { error }).max(max, { error });
}

function positive(max: number) {
  const error = (iss: { input?: unknown }) => `must be a number greater than 0 and at most ${max}, got ${shown(iss.input)}`;
  return z.number({ error }).gt(0, { error }).max(max, { error });
}

function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  const error = (iss: { input?: unknown }) => `must be one of ${values.join(", ")}, got ${shown(iss.input)}`;
  return z.enum(values, { error });
}

const flag = z.boolean({ error: (iss) => `must be true or false, got ${shown(iss.input)}` });

export const modelShapeSchema = z.strictObject({
  layers: wholeNumber(1, LIMITS.layers),
  hidden: wholeNumber(1, LIMITS.hidden),
  heads: wholeNumber(1, LIMITS.heads),
  kvHeads: wholeNumber(1, LIMITS.heads),
  headDim: wholeNumber(1, LIMITS.headDim),
  intermediate: wholeNumber(1, LIMITS.intermediate),
  vocab: wholeNumber(1, LIMITS.vocab),
  bytesPerWeight: positive(LIMITS.bytes),
  tiedEmbeddings: flag.optional(),
  retainingHidden: wholeNumber(1, LIMITS.retainingHidden).optional(),
}).refine((m) => m.heads % m.kvHeads === 0, {
  path: ["kvHeads"],
  error: "must divide heads (grouped-query attention)",
});
export type ModelShape = z.input<typeof modelShapeSchema>;

export const hardwareProfileSchema = z.strictObject({
  matmulTflops: positive(LIMITS.tflops),
  attentionTflops: positive(LIMITS.tflops),
  hbmGBs: positive(LIMITS.gbs),
  linkGBs: positive(LIMITS.gbs),
  linkLatencyUs: positive(LIMITS.latencyUs),
  memoryGiB: positive(LIMITS.memoryGiB),
  /**
   * How apb's attention kernel fills the device, given together or not at all: its
   * multiprocessors (blocks that run at once) and the fixed microseconds each block of query
   * rows costs beside its key tiles. With them, short attention calls are timed block by
   * block (docs/PLANNER.md); without, attention is FLOPs at attentionTflops.
   */
  multiprocessors: wholeNumber(1, LIMITS.multiprocessors).optional(),
  attentionBlockUs: positive(LIMITS.latencyUs).optional(),
}).refine((h) => (h.multiprocessors === undefined) === (h.attentionBlockUs === undefined), {
  path: ["attentionBlockUs"],
  error: "goes with multiprocessors: give both (from apb calibrate or a preset) or neither",
});
export type HardwareProfile = z.input<typeof hardwareProfileSchema>;

const nameOr = <T extends z.ZodType>(shape: T, what: string) =>
  z.union([z.string({ error: `must be a ${what} name or a ${what} object` }), shape], {
    error: `must be a ${what} preset name or a ${what} object`,
  });

/** Fields shared by plan, compare and recommend. */
const common = {
  contextTokens: wholeNumber(1, MAX_TOKENS),
  queryTokens: wholeNumber(0, MAX_TOKENS).optional(),
  prefixTokens: wholeNumber(0, MAX_TOKENS).optional(),
  queryInAnchor: flag.optional(),
  scorer: oneOf(SCORERS).optional(),
  kvBytes: positive(LIMITS.bytes).optional(),
  activationBytes: positive(LIMITS.bytes).optional(),
  model: nameOr(modelShapeSchema, "model"),
  hardware: nameOr(hardwareProfileSchema, "hardware").optional(),
};

export const planRequestSchema = z.strictObject({
  ...common,
  hosts: wholeNumber(1, MAX_HOSTS).optional(),
  strategy: oneOf(STRATEGIES).optional(),
  anchorTokens: wholeNumber(0, MAX_TOKENS).optional(),
  passingTokens: wholeNumber(0, MAX_TOKENS).optional(),
  balanced: flag.optional(),
});
export type PlanRequest = z.input<typeof planRequestSchema>;

const strategyList = z.array(oneOf(STRATEGIES)).min(1, { error: "must list at least one strategy" });

export const compareRequestSchema = planRequestSchema.extend({ strategies: strategyList.optional() });
export type CompareRequest = z.input<typeof compareRequestSchema>;

export const recommendRequestSchema = z.strictObject({
  ...common,
  maxHosts: wholeNumber(1, MAX_RECOMMEND_HOSTS),
  strategies: strategyList.optional(),
  minAnchorRatio: positive(1).optional(),
  minPassingRatio: positive(1).optional(),
  allowBalanced: flag.optional(),
});
export type RecommendRequest = z.input<typeof recommendRequestSchema>;
