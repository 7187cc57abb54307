// The h200-nvlink profile against what the engine measured on an H200 (bench/results/
// model-h200.json: a Llama-3.1-8B-shaped model, full prefill on one GPU and every strategy on
// 8 hosts emulated on it, at 32K, 64K and 128K). Emulated hosts move no data over a link, so the planner's link time (NVLink, small
// here) is the only part it adds that the measurement lacks.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Planner } from "./index.js";

interface MeasuredRow {
  tokens: number;
  strategy: string;
  hosts: number;
  prefillMs: number;
}

const results = (file: string) => JSON.parse(readFileSync(new URL(`../../../bench/results/${file}`, import.meta.url), "utf8")) as { gpu: string; multi: MeasuredRow[] };
const measured = results("model-h200.json");
const QUERY = 64; // model_bench.mjs's query
// Ring-zigzag at 32K over 8 hosts cuts the context into sixteen 2K-token chunks: each ring
// step is two attention calls of 2K rows, which run well below the kernel's rate (per-call
// start-up and the last wave's idle SMs, which the model does not count).
const SMALL_CHUNKS = { strategy: "ring-zigzag", tokens: 32768, bound: 0.2 };

async function predictions(rows: MeasuredRow[] = measured.multi) {
  const planner = await Planner.create();
  return rows.map((row) => {
    const c = planner.compare({ model: "llama-3.1-8b", contextTokens: row.tokens - QUERY, queryTokens: QUERY, hosts: 8, hardware: "h200-nvlink" });
    const found = c.strategies.find((s) => s.strategy === row.strategy);
    if (!found || !("summary" in found)) throw new Error(`the planner gave no ${row.strategy} row at ${row.tokens} tokens`);
    const predicted = found.summary.prefillMs;
    return { ...row, predicted, error: predicted / row.prefillMs - 1 };
  });
}

describe("the h200-nvlink profile", () => {
  it("was measured on an H200, at 32K, 64K and 128K, for every strategy", () => {
    expect(measured.gpu).toMatch(/H200/);
    expect(new Set(measured.multi.map((r) => r.tokens))).toEqual(new Set([32768, 65536, 131072]));
    expect(new Set(measured.multi.map((r) => r.strategy))).toEqual(new Set(["full", "apb", "star", "ulysses", "ring", "ring-zigzag"]));
  });

  it("predicts every strategy's prefill within 10% of the measurement, counting what each ring step moves besides attending", async () => {
    const rows = (await predictions()).filter((r) => !(r.strategy === SMALL_CHUNKS.strategy && r.tokens === SMALL_CHUNKS.tokens));
    expect(rows.length).toBe(17);
    const far = rows.filter((r) => Math.abs(r.error) > 0.1);
    expect(far.map((r) => `${r.strategy} at ${r.tokens}: predicted ${r.predicted.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms`)).toEqual([]);
  });

  it("predicts ring-zigzag at 32K within 20%: its 2K-row calls run below the kernel's rate", async () => {
    const [r] = (await predictions()).filter((r) => r.strategy === SMALL_CHUNKS.strategy && r.tokens === SMALL_CHUNKS.tokens);
    expect(Math.abs(r.error), `predicted ${r.predicted.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms`).toBeLessThan(SMALL_CHUNKS.bound);
  });
});
