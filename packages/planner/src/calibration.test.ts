// The h200-nvlink profile against what the engine measured on an H200 (measured.test-helper.ts
// says which bench). Emulated hosts move no data over a link, so the planner's link time
// (NVLink, small here) is the only part it adds that the measurement lacks.
import { describe, expect, it } from "vitest";
import { HARDWARE_PRESETS, Planner } from "./index.js";
import { measured, outside, predict } from "./measured.test-helper.js";

describe("the h200-nvlink profile", () => {
  it("was measured on an H200, at 32K, 64K and 128K, for every strategy and for apb's even split", () => {
    expect(measured.gpu).toMatch(/H200/);
    expect(new Set(measured.multi.map((r) => r.tokens))).toEqual(new Set([32768, 65536, 131072]));
    expect(new Set(measured.multi.map((r) => r.strategy))).toEqual(new Set(["full", "apb", "apb-even", "star", "ulysses", "ring", "ring-zigzag"]));
  });

  it("predicts every strategy's prefill within 10% of the measurement, balanced and even apb alike", async () => {
    const rows = predict(await Planner.create(), "h200-nvlink");
    expect(rows.length).toBe(21);
    expect(outside(rows, 0.1)).toEqual([]);
  });

  it("needs the attention kernel's blocks for the short calls at 32K: FLOPs at the attention rate miss ring-zigzag", async () => {
    const { multiprocessors: _m, attentionBlockUs: _b, ...flopsOnly } = HARDWARE_PRESETS["h200-nvlink"].profile;
    const zigzag = predict(await Planner.create(), flopsOnly).filter((r) => r.strategy === "ring-zigzag" && r.tokens === 32768);
    expect(outside(zigzag, 0.1)).toHaveLength(1);
  });
});
