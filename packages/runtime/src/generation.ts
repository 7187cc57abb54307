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
    /** Wall time from the generate() call to the first generated token being chosen, as the
     * caller saw it (to the first-token logits when maxTokens is 0): tokenizing, prefill and
     * the query pass; where hosts are emulated, all of them taking turns on this machine;
     * where they are processes, handing the job out too. The time a user waits. */
    firstTokenWallMs: number;
    /** Whether the hosts were emulated in this process (they take turns on one machine, so
     * the wall times add up every host's work) or were processes of a group. */
    emulatedHosts: boolean;
    /** The second figure, labelled as such: the slowest host's own prefill work, what H
     * real hosts would wait for (with emulated hosts, one host's turns, not the wall time). */
    prefillMs: number;
    /** Wall time of prefill: where hosts are emulated they take turns on one machine; where
     * they are processes, the slowest host's wall time from its start to its prefill's end. */
    prefillWallMs: number;
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
  /** See Generation.timings.firstTokenWallMs. A group's caller passes the time from sending
   * the job to the first token's arrival (its total wall time if no token came). */
  firstTokenWallMs: number;
  /** true for hosts emulated in this process, false for a group's processes. */
  emulatedHosts: boolean;
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
      firstTokenWallMs: p.firstTokenWallMs,
      emulatedHosts: p.emulatedHosts,
      prefillMs: Math.max(...p.hosts.map((h) => h.prefillMs)),
      prefillWallMs: p.prefillWallMs,
      totalWallMs: p.totalWallMs,
      hosts: p.hosts,
    },
    firstLogits: p.firstLogits,
  };
}
