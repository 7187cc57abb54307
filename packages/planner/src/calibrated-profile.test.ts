// The profile `apb calibrate` wrote on an H200 (bench/results/calibrate-h200.json: GEMMs and
// attention timed alone, under sustained load, and the attention blocks' fixed cost fitted to a
// short causal call) against whole prefills the engine ran there in the same session
// (measured.test-helper.ts). The calibration times kernels alone, so it predicts a little less
// time than a prefill takes: launch gaps and small pieces of work it does not see.
import { describe, expect, it } from "vitest";
import { Planner, readHardwareProfileFile } from "./index.js";
import { measured, outside, predict, readResults } from "./measured.test-helper.js";

describe("a profile apb calibrate wrote on an H200", () => {
  it("reads as a profile file: the device's rates and blocks measured, the link taken from a preset and named so", () => {
    const file = readHardwareProfileFile(readResults("calibrate-h200.json"), "calibrate-h200.json");
    expect(file.device).toMatch(/H200/);
    expect(file.measured).toEqual(["matmulTflops", "attentionTflops", "hbmGBs", "memoryGiB", "multiprocessors", "attentionBlockUs"]);
    expect(file.sources?.linkGBs).toMatch(/^from preset /);
    expect(file.sources?.attentionBlockUs).toMatch(/^measured: .* causal attention over 2048 tokens/);
    expect(file.profile.multiprocessors).toBe(132);
  });

  // At 32K each of 8 hosts does 4K tokens' work per layer, where a layer's synchronisations
  // and launches (which timing kernels alone does not see) weigh most.
  it("predicts every measured prefill at 64K and 128K within 10%, and at 32K within 12%", async () => {
    const profile = readHardwareProfileFile(readResults("calibrate-h200.json")).profile;
    const rows = predict(await Planner.create(), profile);
    expect(rows.length).toBe(measured.multi.length);
    expect(outside(rows.filter((r) => r.tokens > 32768), 0.1)).toEqual([]);
    expect(outside(rows.filter((r) => r.tokens === 32768), 0.12)).toEqual([]);
  });
});
