// The whole-model bench the calibration tests read (bench/results/model-h200.json: a
// Llama-3.1-8B-shaped model on an H200, full prefill on one GPU and every strategy on 8 hosts
// emulated on it, at 32K, 64K and 128K) and the planner's prediction of each of its rows,
// planned as model_bench.mjs ran it: "apb-even" is apb with the paper's even split, every
// other row the strategy's default (apb balanced, the rest even).
import { readFileSync } from "node:fs";
import type { HardwareProfile, Planner, Strategy } from "./index.js";

export interface MeasuredRow {
  tokens: number;
  strategy: string;
  hosts: number;
  prefillMs: number;
}

export const readResults = (file: string) => readFileSync(new URL(`../../../bench/results/${file}`, import.meta.url), "utf8");
export const measured = JSON.parse(readResults("model-h200.json")) as { gpu: string; multi: MeasuredRow[] };
const QUERY = 64; // model_bench.mjs's query
const EVEN = "-even";

export interface Predicted extends MeasuredRow {
  predictedMs: number;
  /** predicted / measured - 1 */
  error: number;
}

export function predict(planner: Planner, hardware: string | HardwareProfile, rows: MeasuredRow[] = measured.multi): Predicted[] {
  return rows.map((row) => {
    const even = row.strategy.endsWith(EVEN);
    const strategy = (even ? row.strategy.slice(0, -EVEN.length) : row.strategy) as Strategy;
    const p = planner.plan({ model: "llama-3.1-8b", contextTokens: row.tokens - QUERY, queryTokens: QUERY, hosts: strategy === "full" ? 1 : 8, strategy, hardware, ...(even ? { balanced: false } : {}) });
    const predictedMs = p.summary.prefillMs;
    return { ...row, predictedMs, error: predictedMs / row.prefillMs - 1 };
  });
}

/** Rows whose prediction is more than `bound` off, as readable lines (empty when none is). */
export const outside = (rows: Predicted[], bound: number) =>
  rows.filter((r) => Math.abs(r.error) > bound).map((r) => `${r.strategy} at ${r.tokens}: predicted ${r.predictedMs.toFixed(0)} ms, measured ${r.prefillMs.toFixed(0)} ms (${(r.error * 100).toFixed(1)}%)`);
