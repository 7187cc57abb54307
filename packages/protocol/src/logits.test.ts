import { describe, expect, it } from "vitest";
import { decodeLogits, encodeLogits } from "./index.js";

describe("logits as base64 of little-endian float32", () => {
  it("round-trips exactly, specials included", () => {
    const logits = new Float32Array([1, 2, -0.5, 3.4028234663852886e38, -Infinity, 1e-45]);
    expect(decodeLogits(encodeLogits(logits))).toEqual(logits);
  });

  it("is little-endian whatever the machine", () => {
    expect(encodeLogits(new Float32Array([1, 2]))).toBe("AACAPwAAAEA=");
  });

  it("refuses bytes that are not whole float32s", () => {
    expect(() => decodeLogits("AAA=")).toThrow(RangeError);
  });
});
