import { describe, expect, it } from "vitest";
import { agreeingPrefix, argmax, logitAgreement } from "./agreement.js";

describe("logitAgreement", () => {
  it("is exact for identical logits and measures the relative L2 error otherwise", () => {
    const ref = new Float32Array([1, 3, 2]);
    expect(logitAgreement(ref, ref)).toEqual({ sameTop1: true, relativeError: 0 });
    const off = logitAgreement(new Float32Array([1, 3, 5]), ref);
    expect(off.sameTop1).toBe(false);
    expect(off.relativeError).toBeCloseTo(3 / Math.sqrt(14), 6);
  });

  it("takes the first maximum and counts the shared prefix of two generations", () => {
    expect(argmax([2, 5, 5, 1])).toBe(1);
    expect(agreeingPrefix([4, 5, 6], [4, 5, 7, 8])).toBe(2);
    expect(agreeingPrefix([], [1])).toBe(0);
  });
});
