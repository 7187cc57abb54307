// What `apb eval` prints: a header naming the run, one row per (length, strategy, hosts) cell;
// on stderr, progress bars on a terminal, else a line per finished cell for logs.
import { SingleBar } from "cli-progress";
import type { CellSummary, EvalProgress, EvalResult } from "@apb/eval";
import { ms, tokens } from "./format.js";
import { formatTable } from "./table.js";

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;
/** KL spans many orders of magnitude (1e-9 for near-exact layouts, 1 for a lost needle). */
const nats = (x: number) => (x === 0 ? "0" : x.toExponential(2));
const hostsOf = (c: CellSummary) => (c.strategy === "full" ? "1" : String(c.hosts));

export function evalHeader(r: EvalResult): string {
  const m = r.model;
  const date = r.startedAt.replace("T", " ").replace(/:\d\d\.\d+Z$/, " UTC");
  return (
    `apb eval: ${m.name} (${m.architecture}, ${m.layers} layers, hidden ${m.hidden}, vocab ${m.vocab}), backend ${r.machine.backend}, ${date}, seed ${r.suite.seed}\n` +
    `tasks ${r.suite.tasks.join(", ")}; ${r.suite.cases} cases per cell; ${r.records.length} generations in ${(r.durationMs / 1000).toFixed(1)} s`
  );
}

export function evalTable(r: EvalResult): string {
  const rows = r.cells.map((c) => [
    tokens(c.length),
    c.strategy,
    hostsOf(c),
    c.cases,
    percent(c.accuracy),
    percent(c.agreement),
    nats(c.meanKl),
    nats(c.maxKl),
    percent(c.top1Agreement),
    c.lostVsFull,
    ms(c.meanPrefillMs),
  ]);
  return formatTable(["length", "strategy", "hosts", "cases", "accuracy", "agree w/ full", "mean KL", "max KL", "top-1 agree", "lost vs full", "prefill ms"], rows);
}

export const EVAL_LEGEND =
  "accuracy: every expected answer appears in the output (case-insensitive). agree w/ full: the same generated tokens as full attention.\n" +
  "KL: KL(full || strategy) of the first generated token, in nats. top-1 agree: the same most likely first token as full attention.\n" +
  "lost vs full: cases full attention answered and this cell did not. prefill ms: the slowest host's own prefill work, averaged\n" +
  "(emulated hosts take turns on this machine, so it is what each of H real hosts would spend).";

export function renderEval(r: EvalResult): string {
  return `${evalHeader(r)}\n\n${evalTable(r)}\n\n${EVAL_LEGEND}`;
}

/** One line per finished cell, for logs (stderr that is not a terminal). */
export function cellLine(c: CellSummary): string {
  const where = c.strategy === "full" ? "full" : `${c.strategy} on ${c.hosts} host${c.hosts === 1 ? "" : "s"}`;
  return (
    `${tokens(c.length)} tokens, ${where}: accuracy ${percent(c.accuracy)}, agrees with full ${percent(c.agreement)}, ` +
    `mean KL ${nats(c.meanKl)}, top-1 ${percent(c.top1Agreement)}, prefill ${ms(c.meanPrefillMs)} ms (${c.cases} cases)`
  );
}

/** A bar on a terminal; otherwise a line per finished cell, which logs keep readable. */
export function progressReporter(): { onProgress: (e: EvalProgress) => void; stop: () => void } {
  if (!process.stderr.isTTY) {
    return { onProgress: (e) => e.kind === "cell" && process.stderr.write(`apb: ${cellLine(e.cell)}\n`), stop: () => {} };
  }
  const bar = new SingleBar({ format: "eval [{bar}] {value}/{total} generations | {what}", stream: process.stderr, hideCursor: true });
  let started = false;
  return {
    onProgress: (e) => {
      if (!started) bar.start(e.total, e.done, { what: "" });
      started = true;
      const what =
        e.kind === "cases" ? `made ${e.count} cases of ${e.length} tokens`
        : e.kind === "case" ? `${e.record.length} tokens, ${e.record.strategy}${e.record.strategy === "full" ? "" : ` on ${e.record.hosts} hosts`}`
        : `finished ${e.cell.length} tokens, ${e.cell.strategy}: accuracy ${(100 * e.cell.accuracy).toFixed(1)}%`;
      bar.update(e.done, { what });
    },
    stop: () => {
      if (started) bar.stop();
      started = false;
    },
  };
}
