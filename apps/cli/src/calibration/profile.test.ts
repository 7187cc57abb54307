// The profile a calibration becomes: what was measured is named so, with how; what was not
// comes from a preset and says which. (calibrate.test.ts runs the whole command on the CPU;
// a GPU's calibration is built here as the runtime returns it.)
import type { Calibration } from "@apb/runtime";
import { describe, expect, it } from "vitest";
import { profileFile } from "./profile.js";

const gpuCalibration: Calibration = {
  backend: "cuda",
  tokens: 8192,
  attentionTokens: 16384,
  warmup: 2,
  warmupMs: 1000,
  runs: 5,
  sampleMs: 200,
  gemms: [{ name: "q", tokens: 8192, n: 4096, k: 4096, flops: 2.75e11, ms: 0.4, tflops: 687 }],
  matmulTflops: 687.2,
  attention: { flops: 4.4e13, ms: 78, tflops: 563.9 },
  attentionBlocks: { multiprocessors: 132, shortTokens: 2048, shortMs: 0.201, blockUs: 6.8712 },
  copy: { bytes: 2 * 2 ** 30, ms: 0.5, gbs: 4236 },
  freeMemoryBytes: 139 * 2 ** 30,
};

const inputs = { device: "NVIDIA H200", modelShape: "llama-3.1-8b", linkFrom: null, memoryGiB: null, totalMemoryBytes: 0, measuredAt: new Date("2026-12-01T00:00:00Z") };

describe("a calibrated profile", () => {
  it("takes a GPU's attention blocks as measured, and says how", () => {
    const { file } = profileFile({ ...inputs, calibration: gpuCalibration });
    expect(file.profile).toMatchObject({ multiprocessors: 132, attentionBlockUs: 6.87 });
    expect(file.measured).toEqual(["matmulTflops", "attentionTflops", "hbmGBs", "memoryGiB", "multiprocessors", "attentionBlockUs"]);
    expect(file.sources?.attentionBlockUs).toMatch(/^measured: .* causal attention over 2048 tokens the 0\.201 ms it took here/);
    expect(file.sources?.multiprocessors).toMatch(/^measured/);
  });

  it("leaves the blocks out where the backend has none to time, rather than borrow a preset's", () => {
    const { file, linkPreset } = profileFile({ ...inputs, calibration: { ...gpuCalibration, attentionBlocks: null } });
    expect(file.profile.multiprocessors).toBeUndefined();
    expect(file.profile.attentionBlockUs).toBeUndefined();
    expect(file.sources?.linkGBs).toContain(`from preset ${linkPreset}`);
  });
});
