// A request as every host runs it: the prompt tokenized and split (prefix, document,
// query), the strategy and its settings, sampling and stop ids. Emulated runs hand it to
// the engine directly; a coordinator hands the same thing to every host of a group.
import { errorDataFromZod } from "@apb/errors";
import { checkRequest, type ConfigSpec, type GenerateSpec } from "@apb/native";
import { MAX_HOSTS } from "@apb/planner";
import type { EngineConfig } from "./config.js";
import { fromNative } from "./native-errors.js";
import { z } from "zod";
import { DEFAULT_HOSTS, DEFAULT_MAX_TOKENS } from "./defaults.js";
import { RuntimeError } from "./errors.js";
import type { ModelDir } from "./model-dir.js";
import { splitPrompt, type PromptTokens } from "./prompt.js";
import type { ChatMessage } from "./tokenizer.js";

/**
 * The strategies the engine runs: the one list of them (the CLI, the server and the eval suite
 * take it from here). Two lists are written out again, and request.test.ts holds both to it:
 * the protocol's (packages/protocol/src/job.ts), since the protocol imports nothing of ours;
 * the planner's (packages/planner/src/schema.ts), which is what the planner models: every
 * strategy the engine runs, in the planner's own order.
 */
export const STRATEGIES = ["full", "apb", "star", "ring", "ring-zigzag", "ulysses"] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** The largest values a request accepts (hosts is the planner's MAX_HOSTS); callers can check their flags against them first. */
export const REQUEST_LIMITS = { maxHosts: MAX_HOSTS, maxNewTokens: 1_000_000, maxTemperature: 100, maxSeed: 2 ** 32 - 1 } as const;

const generateSchema = z.strictObject({
  document: z.string({ error: "must be the document text (the long context)" }),
  query: z.string({ error: "must be the question asked about the document" }).min(1, { error: "must not be empty" }),
  messages: z.array(z.object({ role: z.string(), content: z.string() })).optional(),
  answerPrefix: z.string({ error: "must be the text the answer starts with" }).optional(),
  chatTemplate: z.boolean({ error: "must be true or false" }).optional(),
  strategy: z.enum(STRATEGIES, { error: `must be one of ${STRATEGIES.join(", ")}` }).default("apb"),
  hosts: z.number().int().min(1).max(REQUEST_LIMITS.maxHosts).default(DEFAULT_HOSTS),
  anchorTokens: z.number().int().min(0).optional(),
  passingTokens: z.number().int().min(0).optional(),
  balanced: z.boolean().optional(),
  scorer: z.enum(["query", "retaining-heads"]).optional(),
  maxTokens: z.number().int().min(0).max(REQUEST_LIMITS.maxNewTokens).default(DEFAULT_MAX_TOKENS),
  temperature: z.number().min(0).max(REQUEST_LIMITS.maxTemperature).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.number().int().min(0).max(REQUEST_LIMITS.maxSeed).default(0),
  stopTokenIds: z.array(z.number().int().min(0)).optional(),
  allowLongPrompt: z.boolean({ error: "must be true or false" }).optional(),
  onToken: z.function().optional(),
  onProgress: z.function().optional(),
  signal: z.instanceof(AbortSignal, { error: "must be an AbortSignal" }).optional(),
});

/** One host finished one layer of prefill (emulated hosts; `layer` counts from 1 to `layers`). */
export interface PrefillProgress {
  host: number;
  hosts: number;
  layer: number;
  layers: number;
}

export interface GenerateOptions {
  document: string;
  query: string;
  /** Extra chat messages placed before the user turn (system prompt, earlier turns). */
  messages?: ChatMessage[];
  /** Text the answer starts with, after the assistant header (e.g. "The answer is"); the
   * model continues it and the generated text does not repeat it. */
  answerPrefix?: string;
  /** false: the prompt is the text as written (BOS, document, "\n\n", query), without the
   * model's chat template: a completion rather than a chat. Default true. */
  chatTemplate?: boolean;
  strategy?: Strategy;
  hosts?: number;
  anchorTokens?: number;
  passingTokens?: number;
  balanced?: boolean;
  scorer?: "query" | "retaining-heads";
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  seed?: number;
  /** Token ids that end generation; defaults to the model's EOS ids. */
  stopTokenIds?: number[];
  /** Run a prompt (prefix + document + query + maxTokens) longer than the model's positions
   * (max_position_embeddings); refused with PROMPT_TOO_LONG otherwise, since a model past its
   * trained length reads garbage positions and the run can take minutes. */
  allowLongPrompt?: boolean;
  /** Called once per generated token, in order, with the text it completes (possibly ""; a
   * character split across tokens appears once complete). If generation ends inside a
   * character, one more call with the last id delivers the rest. The pieces join to `text`.
   * If it throws, generation stops and generate() rejects with what it threw. */
  onToken?: (text: string, id: number) => void;
  /** Called as each host finishes each layer of prefill. If it throws, generation stops and
   * generate() rejects with what it threw. */
  onProgress?: (progress: PrefillProgress) => void;
  /** Aborting stops the work within one layer; generate() rejects with CANCELLED. */
  signal?: AbortSignal;
}

/** What every host of a group runs: token ids and settings, nothing host-specific. */
export interface HostRequest {
  /** BOS/system prefix followed by the document. */
  context: number[];
  /** Tokens of `context` that form the prefix (kept ahead of the query in the anchor). */
  prefixTokens: number;
  query: number[];
  strategy: Strategy;
  /** Hosts to plan for; a group runs it on all of its hosts. */
  hosts: number;
  anchorTokens?: number;
  passingTokens?: number;
  balanced?: boolean;
  scorer?: "query" | "retaining-heads";
  maxTokens: number;
  stopTokenIds: number[];
  temperature: number;
  topP: number;
  seed: number;
}

/** Checks `options`, tokenizes the prompt with the model's tokenizer and builds the request. */
export function buildHostRequest(dir: ModelDir, options: GenerateOptions): { request: HostRequest; prompt: PromptTokens } {
  const parsed = generateSchema.safeParse(options);
  if (!parsed.success) throw new RuntimeError(errorDataFromZod(parsed.error, options));
  const o = parsed.data;
  const prompt = splitPrompt(dir.tokenizer, {
    document: o.document,
    query: o.query,
    ...(options.messages ? { messages: options.messages } : {}),
    ...(o.answerPrefix ? { answerPrefix: o.answerPrefix } : {}),
    ...(o.chatTemplate === false ? { chatTemplate: false } : {}),
  });
  if (prompt.document.length === 0) {
    throw new RuntimeError({ code: "INVALID_INPUT", path: "document", message: "document is empty: give the long context to read" });
  }
  if (!o.allowLongPrompt) checkPromptLength(dir.config.maxPositions, prompt, o.maxTokens);
  const request: HostRequest = {
    context: [...prompt.prefix, ...prompt.document],
    prefixTokens: prompt.prefix.length,
    query: prompt.query,
    strategy: o.strategy,
    hosts: o.strategy === "full" ? 1 : o.hosts,
    ...(o.anchorTokens !== undefined ? { anchorTokens: o.anchorTokens } : {}),
    ...(o.passingTokens !== undefined ? { passingTokens: o.passingTokens } : {}),
    ...(o.balanced !== undefined ? { balanced: o.balanced } : {}),
    ...(o.scorer !== undefined ? { scorer: o.scorer } : {}),
    maxTokens: o.maxTokens,
    stopTokenIds: o.stopTokenIds ?? dir.config.eosTokenIds,
    temperature: o.temperature,
    topP: o.topP,
    seed: o.seed,
  };
  // What every host would refuse (a layout the planner cannot make, a token outside the
  // vocabulary) is refused here, before a group runs it and before any weights are read.
  try {
    checkRequest(configSpec(dir.config), nativeSpec(request));
  } catch (e) {
    throw fromNative(e);
  }
  return { request, prompt };
}

/** The model's config as the addon takes it. */
export function configSpec(config: EngineConfig): ConfigSpec {
  return { ...config, ropeScaling: config.ropeScaling ?? undefined };
}

/**
 * Refuses a prompt whose positions (prefix, document, query and the tokens to generate) run
 * past the model's, before any work: positions the model was never trained on give wrong
 * answers, slowly. `allowLongPrompt: true` skips this check.
 */
export function checkPromptLength(maxPositions: number, prompt: PromptTokens, maxTokens: number): void {
  const [prefix, document, query] = [prompt.prefix.length, prompt.document.length, prompt.query.length];
  const needed = prefix + document + query + maxTokens;
  if (needed > maxPositions) {
    throw new RuntimeError({
      code: "PROMPT_TOO_LONG",
      path: "document",
      message:
        `the prompt needs ${needed} positions (prefix ${prefix} + document ${document} + query ${query} + maxTokens ${maxTokens}) but the model has ${maxPositions} ` +
        `(max_position_embeddings); shorten the document by ${needed - maxPositions} tokens or lower maxTokens, or pass allowLongPrompt: true to run past the model's trained length`,
    });
  }
}

/** The request as the addon takes it. */
export function nativeSpec(r: HostRequest): GenerateSpec {
  return {
    context: r.context,
    prefixTokens: r.prefixTokens,
    query: r.query,
    strategy: r.strategy,
    hosts: r.hosts,
    anchorTokens: r.anchorTokens,
    passingTokens: r.passingTokens,
    balanced: r.balanced,
    scorer: r.scorer,
    maxNewTokens: r.maxTokens,
    stopTokens: r.stopTokenIds,
    temperature: r.temperature,
    topP: r.topP,
    seed: r.seed,
  };
}
