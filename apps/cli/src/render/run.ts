// What `apb run` prints after the answer: time told as the user waited for it (wall time to
// the first token) first, then the slowest host's own prefill work, labelled as such, with
// emulated hosts said to be emulated (they take turns on one machine, so their wall time is
// not what the same number of real hosts would take). Then each host's phases.
import type { Generation } from "@apb/runtime";
import { ms } from "./format.js";
import { formatTable } from "./table.js";

const PHASES = ["embed", "qkv", "scoring", "attention", "ffn", "comm", "wait", "query", "decode"];

export function timingTable(g: Generation): string {
  const rows = g.timings.hosts.map((h) => [h.host, h.prefillRows, ...PHASES.map((p) => ms(h.phasesMs[p] ?? 0)), ms(h.prefillMs)]);
  return formatTable(["host", "rows", ...PHASES.map((p) => `${p} ms`), "prefill ms"], rows);
}

function hostsPhrase(g: Generation, emulated: boolean): string {
  const n = g.layout.hosts;
  return `${n}${emulated ? " emulated" : ""} host${n > 1 ? "s" : ""}`;
}

export function summaryLines(g: Generation): string[] {
  const t = g.timings;
  const l = g.layout;
  const emulated = t.emulatedHosts;
  const prefillTokens = g.promptTokens.prefix + g.promptTokens.document;
  const prompt = prefillTokens + g.promptTokens.query;
  const layout = l.strategy === "full" ? "full attention" : `${l.strategy} (block ${l.blockTokens}, anchor ${l.anchorTokens}, passing ${l.passingTokens})`;
  const first = `first token after ${ms(t.firstTokenWallMs)} ms (wall)`;
  const tokensPerS = prefillTokens / (t.prefillMs / 1000);
  const own = `slowest host's own prefill work: ${ms(t.prefillMs)} ms (${tokensPerS.toFixed(0)} tokens/s)`;
  const why =
    emulated && l.hosts > 1
      ? `; the hosts are emulated on this machine and take turns, so ${l.hosts} real hosts would wait about this long instead of the wall time`
      : "";
  const ended = g.finishReason === "stop" ? "ended by the model" : "stopped at --max-tokens";
  return [
    `${first} for a ${prompt}-token prompt, ${layout} on ${hostsPhrase(g, emulated)}`,
    `${own}${why}`,
    `${g.tokens.length} token${g.tokens.length === 1 ? "" : "s"} generated (${ended}), ${ms(t.totalWallMs)} ms wall in all`,
  ];
}
