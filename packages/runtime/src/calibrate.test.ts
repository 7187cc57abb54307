// The calibration through the runtime on the CPU backend: typed results whose rates are
// finite and positive (never asserted as numbers: they are this machine's), steps in order,
// and options refused as RuntimeErrors naming the field.
import { describe, expect, it } from "vitest";
import { calibrate, RuntimeError, type CalibrationStep } from "./index.js";

const shape = { hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 96 };
const small = { shape, tokens: 8, attentionTokens: 32, copyBytes: 1 << 20 };

async function refusal(options: unknown): Promise<RuntimeError> {
  try {
    await calibrate(options as Parameters<typeof calibrate>[0]);
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    return e as RuntimeError;
  }
  throw new Error(`accepted ${JSON.stringify(options)}`);
}

describe("calibrate", () => {
  it("measures the CPU: finite positive rates, the GEMMs of a layer, no free memory, no attention blocks", async () => {
    const steps: CalibrationStep[] = [];
    const c = await calibrate({ ...small, onStep: (s) => steps.push(s) });
    expect(c.backend).toBe("cpu");
    for (const rate of [c.matmulTflops, c.attention.tflops, c.copy.gbs, ...c.gemms.map((g) => g.tflops)]) {
      expect(Number.isFinite(rate) && rate > 0, String(rate)).toBe(true);
    }
    expect(c.gemms.map((g) => [g.name, g.n, g.k])).toEqual([["q", 64, 64], ["kv", 64, 64], ["o", 64, 64], ["gate_up", 192, 64], ["down", 64, 96]]);
    expect([c.tokens, c.attentionTokens, c.freeMemoryBytes, c.attentionBlocks]).toEqual([8, 32, null, null]);
    expect(c.copy.bytes).toBe(2 * (1 << 20));
    // Every step is heard before the promise settles.
    expect(steps).toEqual(["memory", "q", "kv", "o", "gate_up", "down", "attention", "copy"]);
  });

  it("refuses options naming the field", async () => {
    expect((await refusal({ ...small, tokens: 0 })).toJSON()).toMatchObject({ code: "OUT_OF_RANGE", path: "tokens" });
    expect((await refusal({ ...small, backend: "tpu" })).toJSON()).toMatchObject({ code: "OUT_OF_RANGE", path: "backend" });
    expect((await refusal({ ...small, shape: { ...shape, heads: undefined } })).toJSON()).toMatchObject({ code: "MISSING_FIELD", path: "shape.heads" });
    expect((await refusal({ ...small, colour: 1 })).toJSON()).toMatchObject({ code: "UNKNOWN_FIELD", path: "colour" });
  });

  it("passes the engine's refusals on with their code, before any GPU is opened", async () => {
    for (const backend of ["cpu", "cuda"] as const) {
      const e = await refusal({ ...small, backend, shape: { ...shape, kvHeads: 3 } });
      expect(e.toJSON()).toMatchObject({ code: "INVALID_INPUT", path: "kvHeads" });
    }
  });

  it("rejects with what onStep threw", async () => {
    const thrown = new Error("stop");
    await expect(calibrate({ ...small, onStep: () => { throw thrown; } })).rejects.toBe(thrown);
  });
});
