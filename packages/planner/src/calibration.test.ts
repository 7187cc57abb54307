// The h200-nvlink profile against what the engine measured on an H200 (measured.test-helper.ts
// says which bench). Emulated hosts move no data over a link, so the planner's link time
// (NVLink, small here) is the only part it adds that the measurement lacks.
import { describe, expect, it } from "vitest";
import { Planner } from "./index.js";
import { measured, outside, predict } from "./measured.test-helper.js";

// Ring-zigzag at 32K over 8 hosts cuts the context into sixteen 2K-token chunks: each ring
// step is two attention calls of 2K rows, which run well below the kernel's rate (per-call
// start-up and the last wave's idle SMs, which the model does not count).
const isSmallChunks = (r: { strategy: string; tokens: number }) => r.strategy === "ring-zigzag" && r.tokens === 32768;

describe("the h200-nvlink profile", () => {
  it("was measured on an H200, at 32K, 64K and 128K, for every strategy and for apb's even split", () => {
    expect(measured.gpu).toMatch(/H200/);
    expect(new Set(measured.multi.map((r) => r.tokens))).toEqual(new Set([32768, 65536, 131072]));
    expect(new Set(measured.multi.map((r) => r.strategy))).toEqual(new Set(["full", "apb", "apb-even", "star", "ulysses", "ring", "ring-zigzag"]));
  });

  it("predicts every strategy's prefill within 10% of the measurement, balanced and even apb alike", async () => {
    const rows = predict(await Planner.create(), "h200-nvlink").filter((r) => !isSmallChunks(r));
    expect(rows.length).toBe(20);
    expect(outside(rows, 0.1)).toEqual([]);
  });

  it("predicts ring-zigzag at 32K within 20%: its 2K-row calls run below the kernel's rate", async () => {
    const rows = predict(await Planner.create(), "h200-nvlink").filter(isSmallChunks);
    expect(rows.length).toBe(1);
    expect(outside(rows, 0.2)).toEqual([]);
  });
});
