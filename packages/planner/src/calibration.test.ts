// The h200-nvlink profile against what the engine measured on an H200 (bench/results/
// model-h200.json: a Llama-3.1-8B-shaped model, full prefill on one GPU and 8 hosts emulated
// on it). Emulated hosts move no data over a link, so the planner's link time (NVLink, small
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
// The same bench at 128K, later, with ulysses and ring-zigzag (model-h200-8hosts-128k.md).
const measured128k = results("model-h200-8hosts-128k.json");
const QUERY = 64; // model_bench.mjs's query

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
  it("was measured on an H200, at 32K, 64K and 128K, for full, apb, star and ring", () => {
    expect(measured.gpu).toMatch(/H200/);
    expect(new Set(measured.multi.map((r) => r.tokens))).toEqual(new Set([32768, 65536, 131072]));
    expect(new Set(measured.multi.map((r) => r.strategy))).toEqual(new Set(["full", "apb", "star", "ring"]));
  });

  it("predicts full, apb and star prefill within 10% of the measurement", async () => {
    const far = (await predictions()).filter((r) => r.strategy !== "ring" && Math.abs(r.error) > 0.1);
    expect(far.map((r) => `${r.strategy} at ${r.tokens}: predicted ${r.predicted.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms`)).toEqual([]);
  });

  it("predicts every strategy at 128K within 10%: full, apb, star, ulysses and ring-zigzag", async () => {
    expect(measured128k.gpu).toMatch(/H200/);
    const rows = await predictions(measured128k.multi);
    expect(new Set(rows.map((r) => r.strategy))).toEqual(new Set(["full", "apb", "ulysses", "ring-zigzag", "star"]));
    for (const r of rows) expect(Math.abs(r.error), `${r.strategy}: predicted ${r.predicted.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms`).toBeLessThan(0.1);
  });

  it("predicts ring within 10% at 32K, 64K and 128K, counting what each step moves besides attending (its copies and LSE merge)", async () => {
    const ring = (await predictions()).filter((r) => r.strategy === "ring");
    expect(ring.length).toBe(3);
    for (const r of ring) expect(Math.abs(r.error), `ring at ${r.tokens}: predicted ${r.predicted.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms`).toBeLessThan(0.1);
  });
});
