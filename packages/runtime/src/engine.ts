// The Engine API the apps use: open a model directory, load its weights into the native
// engine, and generate with any strategy over emulated hosts.
import { Engine as NativeEngine, type GenerateResult } from "@apb/native";
import { z } from "zod";
import { RuntimeError } from "./errors.js";
import { openModelDir, type ModelDir } from "./model-dir.js";
import { native } from "./native-errors.js";
import { splitPrompt, type PromptTokens } from "./prompt.js";
import type { ChatMessage } from "./tokenizer.js";

export const STRATEGIES = ["full", "apb", "star", "ring", "ring-zigzag"] as const;
export type Strategy = (typeof STRATEGIES)[number];

export const BACKENDS = ["cpu", "cuda"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface LoadOptions {
  /** "cpu" (default) or "cuda" (GPU 0: bf16 weights, cuBLAS, apb's attention kernels). */
  backend?: BackendName;
  /** A safetensors file of Locret retaining heads. */
  retainingHeads?: string;
  /** Called as weights load: `done` of `total` steps (embeddings, each layer, the final norm). */
  onProgress?: (done: number, total: number) => void;
}

const generateSchema = z.strictObject({
  document: z.string({ error: "must be the document text (the long context)" }),
  query: z.string({ error: "must be the question asked about the document" }).min(1, { error: "must not be empty" }),
  messages: z.array(z.object({ role: z.string(), content: z.string() })).optional(),
  strategy: z.enum(STRATEGIES, { error: `must be one of ${STRATEGIES.join(", ")}` }).default("apb"),
  hosts: z.number().int().min(1).max(4096).default(4),
  anchorTokens: z.number().int().min(0).optional(),
  passingTokens: z.number().int().min(0).optional(),
  balanced: z.boolean().optional(),
  scorer: z.enum(["query", "retaining-heads"]).optional(),
  maxTokens: z.number().int().min(0).max(1_000_000).default(64),
  temperature: z.number().min(0).max(100).default(0),
  topP: z.number().gt(0).max(1).default(1),
  seed: z.number().int().min(0).max(2 ** 32 - 1).default(0),
  stopTokenIds: z.array(z.number().int().min(0)).optional(),
  onToken: z.function().optional(),
});

export interface GenerateOptions {
  document: string;
  query: string;
  /** Extra chat messages placed before the user turn (system prompt, earlier turns). */
  messages?: ChatMessage[];
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
  /** Called once per generated token, in order, with the text it completes (possibly ""; a
   * character split across tokens appears once complete). If generation ends inside a
   * character, one more call with the last id delivers the rest. The pieces join to `text`. */
  onToken?: (text: string, id: number) => void;
}

export interface HostTiming {
  host: number;
  prefillMs: number;
  prefillRows: number;
  phasesMs: Record<string, number>;
}

export interface Generation {
  text: string;
  tokens: number[];
  finishReason: "stop" | "length";
  promptTokens: { prefix: number; document: number; query: number };
  layout: { strategy: Strategy; hosts: number; anchorTokens: number; passingTokens: number; blockTokens: number };
  timings: {
    /** The slowest host's own prefill work: the prefill time H real hosts would see. */
    prefillMs: number;
    /** Wall time of prefill here, where emulated hosts take turns on one machine. */
    prefillWallMs: number;
    totalWallMs: number;
    hosts: HostTiming[];
  };
  /** Logits of the first generated token (after the query pass). */
  firstLogits: Float32Array;
}

function zodError(error: z.ZodError): RuntimeError {
  const issue = error.issues[0]!;
  const path = issue.path.join(".");
  return new RuntimeError({ code: "OUT_OF_RANGE", path, message: `${path || "options"} ${issue.message}` });
}

export class Model {
  private constructor(
    readonly dir: ModelDir,
    private readonly engine: NativeEngine,
  ) {}

  static async load(path: string, options: LoadOptions = {}): Promise<Model> {
    const dir = await openModelDir(path, options.retainingHeads === undefined ? {} : { retainingHeads: options.retainingHeads });
    const progress = options.onProgress;
    // Progress arrives through a queue that may drain after the load resolves; the last
    // step is reported here, once the weights really are loaded.
    const steps = dir.config.layers + 2;
    let lastDone = 0;
    const engine = await native(() =>
      NativeEngine.load(
        {
          config: { ...dir.config, ropeScaling: dir.config.ropeScaling ?? undefined },
          tensors: dir.tensors,
          ...(dir.retaining ? { retaining: dir.retaining.tensors } : {}),
          backend: options.backend ?? "cpu",
        },
        progress
          ? ([done, total]) => {
              if (done > lastDone && done < steps) {
                lastDone = done;
                progress(done, total);
              }
            }
          : undefined,
      ),
    );
    progress?.(steps, steps);
    return new Model(dir, engine);
  }

  get backend(): string {
    return this.engine.backend;
  }

  /** The prompt as APB sees it: BOS/system prefix, document, and the query with the template's tail. */
  tokenize(document: string, query: string, messages?: ChatMessage[]): PromptTokens {
    return splitPrompt(this.dir.tokenizer, messages ? { document, query, messages } : { document, query });
  }

  async generate(options: GenerateOptions): Promise<Generation> {
    const parsed = generateSchema.safeParse(options);
    if (!parsed.success) throw zodError(parsed.error);
    const o = parsed.data;
    const prompt = this.tokenize(o.document, o.query, options.messages);
    const context = [...prompt.prefix, ...prompt.document];
    if (prompt.document.length === 0) {
      throw new RuntimeError({ code: "INVALID_INPUT", path: "document", message: "document is empty: give the long context to read" });
    }
    const stop = o.stopTokenIds ?? this.dir.config.eosTokenIds;
    const tokenizer = this.dir.tokenizer;
    // Tokens arrive through a queue that may drain after generation resolves: whatever has
    // not arrived by then is delivered in order before generate() returns, exactly once.
    // Byte-level tokens can end inside a UTF-8 character, which decodes to U+FFFD until the
    // next token completes it, so a trailing U+FFFD is held back rather than shown.
    const streamed: number[] = [];
    let shown = "";
    let finished = false;
    const emit = (id: number) => {
      streamed.push(id);
      const stable = tokenizer.decode(streamed, { skipSpecialTokens: true }).replace(/\uFFFD+$/, "");
      const fresh = stable.startsWith(shown) ? stable.slice(shown.length) : "";
      if (fresh) shown = stable;
      options.onToken!(fresh, id);
    };
    const onToken = options.onToken ? (id: number) => void (finished || emit(id)) : undefined;
    const result = await native(() =>
      this.engine.generate(
        {
          context,
          prefixTokens: prompt.prefix.length,
          query: prompt.query,
          strategy: o.strategy,
          hosts: o.strategy === "full" ? 1 : o.hosts,
          anchorTokens: o.anchorTokens,
          passingTokens: o.passingTokens,
          balanced: o.balanced,
          scorer: o.scorer,
          maxNewTokens: o.maxTokens,
          stopTokens: stop,
          temperature: o.temperature,
          topP: o.topP,
          seed: o.seed,
        },
        onToken,
      ),
    );
    finished = true;
    if (options.onToken) {
      result.tokens.slice(streamed.length).forEach(emit);
      // Generation ended inside a character: its last call delivers what was held back.
      const text = tokenizer.decode(result.tokens, { skipSpecialTokens: true });
      const last = result.tokens.at(-1);
      if (last !== undefined && text !== shown && text.startsWith(shown)) options.onToken(text.slice(shown.length), last);
    }
    return this.describe(result, o.strategy, prompt, stop);
  }

  private describe(r: GenerateResult, strategy: Strategy, prompt: PromptTokens, stop: number[]): Generation {
    const last = r.tokens.at(-1);
    const hosts = r.hosts.map((h) => ({ host: h.host, prefillMs: h.prefillMs, prefillRows: h.prefillRows, phasesMs: { ...h.phasesMs } }));
    return {
      text: this.dir.tokenizer.decode(r.tokens, { skipSpecialTokens: true }),
      tokens: r.tokens,
      finishReason: last !== undefined && stop.includes(last) ? "stop" : "length",
      promptTokens: { prefix: prompt.prefix.length, document: prompt.document.length, query: prompt.query.length },
      layout: { strategy, hosts: hosts.length, anchorTokens: r.anchorTokens, passingTokens: r.passingTokens, blockTokens: r.blockTokens },
      timings: {
        prefillMs: Math.max(...hosts.map((h) => h.prefillMs)),
        prefillWallMs: r.prefillWallMs,
        totalWallMs: r.totalWallMs,
        hosts,
      },
      firstLogits: r.firstLogits,
    };
  }
}

/** Opens a Hugging Face model directory and loads its weights into the engine. */
export function loadModel(dir: string, options: LoadOptions = {}): Promise<Model> {
  return Model.load(dir, options);
}
