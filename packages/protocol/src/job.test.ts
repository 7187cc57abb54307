import { describe, expect, it } from "vitest";
import { job } from "./examples.test-helper.js";
import { JobSpecSchema, MAX_TOKEN_ID } from "./index.js";

describe("JobSpec", () => {
  it("takes token ids up to 2^32 - 1 and the optional knobs left out", () => {
    const { anchorTokens: _a, passingTokens: _p, balanced: _b, scorer: _s, ...minimal } = job;
    expect(JobSpecSchema.parse({ ...minimal, context: [0, MAX_TOKEN_ID] })).toEqual({ ...minimal, context: [0, MAX_TOKEN_ID] });
  });

  it("checks a 1M-token context quickly (the coordinator and every host parse it)", () => {
    const context = Array.from({ length: 1_000_000 }, (_, i) => i % 128_000);
    JobSpecSchema.parse({ ...job, context }); // warm up: the bound is for the steady state
    const started = performance.now();
    expect(JobSpecSchema.safeParse({ ...job, context }).success).toBe(true);
    expect(performance.now() - started).toBeLessThan(120) // an element schema takes ~180 ms;
  });

  it("allows an empty context (a query alone) with no prefix, but not a prefix longer than the context", () => {
    expect(JobSpecSchema.safeParse({ ...job, context: [], prefixTokens: 0 }).success).toBe(true);
    expect(JobSpecSchema.safeParse({ ...job, context: [], prefixTokens: 1 }).success).toBe(false);
  });
});
