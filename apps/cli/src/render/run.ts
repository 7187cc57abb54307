// The timing table printed by `apb run` and the demo.
import type { Generation } from "@apb/runtime";
import { ms } from "./format.js";
import { formatTable } from "./table.js";

const PHASES = ["embed", "qkv", "scoring", "attention", "ffn", "comm", "wait", "query", "decode"];

export function timingTable(g: Generation): string {
  const rows = g.timings.hosts.map((h) => [h.host, h.prefillRows, ...PHASES.map((p) => ms(h.phasesMs[p] ?? 0)), ms(h.prefillMs)]);
  return formatTable(["host", "rows", ...PHASES.map((p) => `${p} ms`), "prefill ms"], rows);
}

export function summaryLine(g: Generation): string {
  const l = g.layout;
  const prompt = g.promptTokens.prefix + g.promptTokens.document;
  const tokensPerS = prompt / (g.timings.prefillMs / 1000);
  return (
    `${l.strategy} on ${l.hosts} host${l.hosts > 1 ? "s" : ""} (block ${l.blockTokens}, anchor ${l.anchorTokens}, passing ${l.passingTokens}): ` +
    `prefill ${ms(g.timings.prefillMs)} ms for ${prompt} tokens (${tokensPerS.toFixed(0)} tokens/s on the slowest host), ` +
    `${g.tokens.length} tokens generated, ` +
    (g.timings.firstTokenWallMs !== undefined ? `first token after ${ms(g.timings.firstTokenWallMs)} ms wall, ` : "") +
    `${ms(g.timings.totalWallMs)} ms wall`
  );
}
