// What a generation reports, the same whether its hosts were emulated in this process or
// were processes of a group: the text, the layout's sizes, and each host's own timings.
import type { ModelDir } from "./model-dir.js";
import type { PromptTokens } from "./prompt.js";
import type { Strategy } from "./request.js";

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
    /** Wall time of prefill: where hosts are emulated they take turns on one machine; where
     * they are processes, the slowest host's wall time from its start to its prefill's end. */
    prefillWallMs: number;
    /** Wall time to the first generated token as the caller saw it (processes only: it
     * includes handing the job out and the query pass). */
    firstTokenWallMs?: number;
    totalWallMs: number;
    hosts: HostTiming[];
  };
  /** Logits of the first generated token (after the query pass). */
  firstLogits: Float32Array;
}

export interface GenerationParts {
  strategy: Strategy;
  prompt: PromptTokens;
  stop: number[];
  tokens: number[];
  firstLogits: Float32Array;
  sizes: { anchorTokens: number; passingTokens: number; blockTokens: number };
  hosts: HostTiming[];
  prefillWallMs: number;
  firstTokenWallMs?: number;
  totalWallMs: number;
}

export function describeGeneration(dir: ModelDir, p: GenerationParts): Generation {
  const last = p.tokens.at(-1);
  return {
    text: dir.tokenizer.decode(p.tokens, { skipSpecialTokens: true }),
    tokens: p.tokens,
    finishReason: last !== undefined && p.stop.includes(last) ? "stop" : "length",
    promptTokens: { prefix: p.prompt.prefix.length, document: p.prompt.document.length, query: p.prompt.query.length },
    layout: { strategy: p.strategy, hosts: p.hosts.length, ...p.sizes },
    timings: {
      prefillMs: Math.max(...p.hosts.map((h) => h.prefillMs)),
      prefillWallMs: p.prefillWallMs,
      ...(p.firstTokenWallMs !== undefined ? { firstTokenWallMs: p.firstTokenWallMs } : {}),
      totalWallMs: p.totalWallMs,
      hosts: p.hosts,
    },
    firstLogits: p.firstLogits,
  };
}
