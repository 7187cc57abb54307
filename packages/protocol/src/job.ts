import { z } from "zod";

/** Token ids are unsigned 32-bit in every tokenizer apb reads, and in the engine. */
export const MAX_TOKEN_ID = 2 ** 32 - 1;

export const STRATEGIES = ["full", "apb", "star", "ring", "ring-zigzag", "ulysses"] as const;
export const SCORERS = ["query", "retaining-heads"] as const;

const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * An array of token ids, checked in one plain loop: a 1M-token context is a million elements, which
 * an element schema checks in ~180 ms and this in ~4 ms (the coordinator and every host parse it).
 */
function tokenIdArray(minLength = 0, tooShort = `must hold at least ${minLength} token ids`) {
  return z.custom<number[]>((value) => Array.isArray(value), { error: "must be an array of token ids" }).check((ctx) => {
    const ids = ctx.value;
    if (ids.length < minLength) {
      ctx.issues.push({ code: "custom", input: ids, path: [], message: tooShort });
      return;
    }
    for (let i = 0; i < ids.length; i++) {
      const id: unknown = ids[i];
      if (!(typeof id === "number" && Number.isInteger(id) && id >= 0 && id <= MAX_TOKEN_ID)) {
        ctx.issues.push({ code: "custom", input: id, path: [i], message: "must be a token id: an integer in [0, 2^32)" });
        return; // the first bad id is the one reported; the rest would only repeat it
      }
    }
  });
}
const tokenIds = tokenIdArray();
const millis = z.number().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * One job as the coordinator hands it to every host: already tokenized (the caller owns the
 * tokenizer and chat template, so hosts agree on ids without each reading the prompt), with the
 * engine's knobs. The context is the whole long prompt before the query: the BOS/system prefix
 * (`prefixTokens` of it, which every host keeps as part of its anchor) and then the document.
 */
export const JobSpecSchema = z
  .strictObject({
    context: tokenIds,
    prefixTokens: count,
    query: tokenIdArray(1, "must hold at least one token (the query pass yields the first token)"),
    strategy: z.enum(STRATEGIES, { error: `must be one of ${STRATEGIES.join(", ")}` }),
    anchorTokens: count.optional(),
    passingTokens: count.optional(),
    balanced: z.boolean().optional(),
    scorer: z.enum(SCORERS, { error: `must be one of ${SCORERS.join(", ")}` }).optional(),
    maxTokens: count,
    stopTokenIds: tokenIds,
    temperature: z.number().min(0).max(100),
    topP: z.number().gt(0).max(1),
    seed: z.number().int().min(0).max(MAX_TOKEN_ID),
  })
  .check((ctx) => {
    if (ctx.value.prefixTokens > ctx.value.context.length) {
      ctx.issues.push({
        code: "custom",
        input: ctx.value.prefixTokens,
        path: ["prefixTokens"],
        message: `must be <= context's length (${ctx.value.context.length})`,
      });
    }
  });
export type JobSpec = z.infer<typeof JobSpecSchema>;
export type Strategy = (typeof STRATEGIES)[number];

/** What one host's engine did for a job. */
export const HostJobResultSchema = z.strictObject({
  rank: count,
  tokens: tokenIds,
  /** Logits of the first generated token, base64 of little-endian float32; only the last rank sends them. */
  firstLogits: z.string().nullable(),
  anchorTokens: count,
  passingTokens: count,
  blockTokens: count,
  timings: z.strictObject({
    /** This host's own prefill work (what H real hosts would each see). */
    prefillMs: millis,
    /** Prefill as the wall clock saw it here, waits for other hosts included. */
    prefillWallMs: millis,
    computeMs: millis,
    commMs: millis,
    prefillRows: count,
    phasesMs: z.record(z.string().max(128), millis),
  }),
});
export type HostJobResult = z.infer<typeof HostJobResultSchema>;

/** What the caller gets: the last rank's tokens and logits, every host's report, and times the coordinator measured. */
export const JobResultSchema = z.strictObject({
  jobId: z.string(),
  tokens: tokenIds,
  firstLogits: z.string().nullable(),
  /** In rank order. */
  hosts: z.array(HostJobResultSchema),
  /** From submit to done, as the caller sees it (queueing and group formation included). */
  wallMs: millis,
  /** From submit to the first token the coordinator saw; null when the job produced none. */
  firstTokenMs: millis.nullable(),
});
export type JobResult = z.infer<typeof JobResultSchema>;
