import { describe, expect, it } from "vitest";
import { checkHardwareProfileFile, closestHardwarePreset, HARDWARE_PRESETS, plan, PlannerError, readHardwareProfileFile } from "./index.js";

const written = {
  description: "measured by apb calibrate on 1 x NVIDIA H200 (cuda)",
  measuredAt: "2026-12-01T09:00:00.000Z",
  device: "NVIDIA H200",
  profile: { matmulTflops: 640, attentionTflops: 555, hbmGBs: 4100, linkGBs: 360, linkLatencyUs: 3, memoryGiB: 139 },
  measured: ["matmulTflops", "attentionTflops", "hbmGBs", "memoryGiB"],
  sources: { linkGBs: "from preset h200-nvlink", matmulTflops: "measured" },
  conditions: { backend: "cuda", modelShape: "llama-3.1-8b", tokens: 8192, attentionTokens: 16384, warmup: 2, warmupMs: 1000, runs: 5, sampleMs: 200 },
};

function refusal(value: unknown): PlannerError {
  try {
    checkHardwareProfileFile(value, "profile.json");
  } catch (e) {
    expect(e).toBeInstanceOf(PlannerError);
    return e as PlannerError;
  }
  throw new Error(`accepted ${JSON.stringify(value)}`);
}

/** The written file with one change at `path` (undefined removes the field). */
function changed(path: string, value: unknown): unknown {
  const copy = structuredClone(written) as Record<string, unknown>;
  const keys = path.split(".");
  const last = keys.pop()!;
  const parent = keys.reduce((o, k) => o[k] as Record<string, unknown>, copy);
  if (value === undefined) delete parent[last];
  else parent[last] = value;
  return copy;
}

describe("hardware profile files", () => {
  it("reads back what was written, and the planner plans with its profile", async () => {
    const file = readHardwareProfileFile(JSON.stringify(written), "profile.json");
    expect(file).toEqual(written);
    const p = await plan({ model: "llama-3.1-8b", contextTokens: 32_768, hosts: 2, hardware: file.profile });
    expect(p.summary.prefillMs).toBeGreaterThan(0);
  });

  it("takes a file without its optional sections", () => {
    const bare = changed("sources", undefined) as Record<string, unknown>;
    delete bare.conditions;
    expect(checkHardwareProfileFile(bare).profile).toEqual(written.profile);
  });

  it.each([
    ["profile.matmulTflops", -1, "OUT_OF_RANGE"],
    ["profile.matmulTflops", "fast", "WRONG_TYPE"],
    ["profile.hbmGBs", undefined, "MISSING_FIELD"],
    ["profile.linkGbs", 3, "UNKNOWN_FIELD"],
    ["profile.memoryGiB", 0, "OUT_OF_RANGE"],
    ["measuredAt", "yesterday", "OUT_OF_RANGE"],
    ["measuredAt", undefined, "MISSING_FIELD"],
    ["device", 7, "WRONG_TYPE"],
    ["description", undefined, "MISSING_FIELD"],
    ["measured", "all", "WRONG_TYPE"],
    ["conditions.tokens", 0.5, "WRONG_TYPE"],
    ["conditions.tokens", 0, "OUT_OF_RANGE"],
    ["colour", "blue", "UNKNOWN_FIELD"],
  ])("refuses %s = %j as %s, naming the field and the fix", (path, value, code) => {
    const e = refusal(changed(path, value));
    expect(e.toJSON()).toMatchObject({ code, path });
    expect(e.message).toMatch(/^profile\.json: /);
    expect(e.message).toContain("apb calibrate --out");
  });

  it("refuses a measured list naming an unknown or repeated field", () => {
    expect(refusal(changed("measured", ["matmulTflops", "speed"])).toJSON()).toMatchObject({ code: "OUT_OF_RANGE", path: "measured[1]" });
    expect(refusal(changed("measured", ["hbmGBs", "hbmGBs"])).toJSON()).toMatchObject({ code: "OUT_OF_RANGE", path: "measured" });
  });

  it("refuses text that is not JSON, and a file that is not an object", () => {
    expect(() => readHardwareProfileFile("{ not json", "p.json")).toThrow(expect.objectContaining({ code: "INVALID_JSON" }));
    expect(refusal([1, 2]).code).toBe("WRONG_TYPE");
  });
});

describe("closestHardwarePreset", () => {
  it("finds each preset from its own rates", () => {
    expect(closestHardwarePreset(HARDWARE_PRESETS["h200-nvlink"].profile)).toBe("h200-nvlink");
    expect(closestHardwarePreset(HARDWARE_PRESETS["a100-ib"].profile)).toBe("a100-ib");
  });
});
