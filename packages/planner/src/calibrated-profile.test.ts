// The profile `apb calibrate` wrote on an H200 (bench/results/calibrate-h200.json: GEMMs and
// attention timed alone, under sustained load) against whole prefills the engine ran there in
// the same session (measured.test-helper.ts). The calibration times kernels alone, so it
// predicts a little less time than a prefill takes: launch gaps and small pieces of work it
// does not see (the passing selection, copies around calls). They weigh most at 32K, where
// each of 8 hosts does 4K tokens' work in calls a few tiles long.
import { describe, expect, it } from "vitest";
import { Planner, readHardwareProfileFile } from "./index.js";
import { measured, outside, predict, readResults } from "./measured.test-helper.js";

describe("a profile apb calibrate wrote on an H200", () => {
  it("reads as a profile file, with the link taken from a preset and named so", () => {
    const file = readHardwareProfileFile(readResults("calibrate-h200.json"), "calibrate-h200.json");
    expect(file.device).toMatch(/H200/);
    expect(file.measured).toEqual(["matmulTflops", "attentionTflops", "hbmGBs", "memoryGiB"]);
    expect(file.sources?.linkGBs).toMatch(/^from preset /);
  });

  it("predicts every measured prefill at 64K and 128K within 10%, and at 32K within 20%", async () => {
    const profile = readHardwareProfileFile(readResults("calibrate-h200.json")).profile;
    const rows = predict(await Planner.create(), profile);
    expect(rows.length).toBe(measured.multi.length);
    expect(outside(rows.filter((r) => r.tokens > 32768), 0.1)).toEqual([]);
    expect(outside(rows.filter((r) => r.tokens === 32768), 0.2)).toEqual([]);
  });
});
