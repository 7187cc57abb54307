import { describe, expect, it } from "vitest";
import { encodeSafetensors, encodeTensorData, f32ToBf16Bits, f32ToF16Bits } from "./safetensors-writer.js";

/** Exact values of the encodings, to check rounding against. */
function bf16Value(bits: number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, bits << 16);
  return view.getFloat32(0);
}
function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0x1f) return mantissa ? NaN : sign * Infinity;
  return exponent === 0 ? sign * mantissa * 2 ** -24 : sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

const randomSeed = () => Math.floor(Math.random() * 2 ** 32);
/** A float32 drawn from all exponents, so rounding is tried everywhere. */
function randomF32(next: () => number): number {
  const view = new DataView(new ArrayBuffer(4));
  view.setUint32(0, Math.floor(next() * 2 ** 32));
  return view.getFloat32(0);
}
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

describe("bf16", () => {
  it("is the upper half of f32, rounded to nearest with ties to even", () => {
    expect(f32ToBf16Bits(1)).toBe(0x3f80);
    expect(f32ToBf16Bits(-2)).toBe(0xc000);
    expect(f32ToBf16Bits(1 + 2 ** -8)).toBe(0x3f80); // halfway: down to the even 0x3f80
    expect(f32ToBf16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82); // halfway: up to the even 0x3f82
    expect(f32ToBf16Bits(1 + 2 ** -8 + 2 ** -20)).toBe(0x3f81); // past halfway: up
    expect(f32ToBf16Bits(Infinity)).toBe(0x7f80);
    expect(f32ToBf16Bits(3.4028234663852886e38)).toBe(0x7f80); // the largest f32 rounds to infinity
    expect(bf16Value(f32ToBf16Bits(NaN))).toBeNaN();
  });

  it("picks the nearest bf16 for random f32 values", () => {
    const seed = randomSeed();
    const next = lcg(seed);
    for (let i = 0; i < 20000; i++) {
      const x = randomF32(next);
      if (!Number.isFinite(x) || Math.abs(x) >= 3.3e38) continue;
      const bits = f32ToBf16Bits(x);
      const error = Math.abs(bf16Value(bits) - x);
      // The neighbours in bit order are the next values of the same sign (or NaN/infinity: skipped).
      for (const neighbour of [bits - 1, bits + 1].map(bf16Value).filter(Number.isFinite)) {
        expect(error, `seed ${seed}, x ${x}`).toBeLessThanOrEqual(Math.abs(neighbour - x));
      }
    }
  }, 60_000); // 40,000 checks: seconds on a busy 2-core machine
});

describe("f16", () => {
  it("rounds to nearest with ties to even, with subnormals, overflow and NaN", () => {
    expect(f32ToF16Bits(1)).toBe(0x3c00);
    expect(f32ToF16Bits(-0)).toBe(0x8000);
    expect(f32ToF16Bits(65504)).toBe(0x7bff);
    expect(f32ToF16Bits(65519)).toBe(0x7bff);
    expect(f32ToF16Bits(65520)).toBe(0x7c00); // halfway to 2^16: ties to even = infinity
    expect(f32ToF16Bits(1 + 2 ** -11)).toBe(0x3c00);
    expect(f32ToF16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16Bits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(f32ToF16Bits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(f32ToF16Bits(2 ** -25)).toBe(0x0000); // halfway to it: ties to even = zero
    expect(f32ToF16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(f32ToF16Bits(-Infinity)).toBe(0xfc00);
    expect(f16Value(f32ToF16Bits(NaN))).toBeNaN();
  });

  it("picks the nearest f16 for random values in and below its range", () => {
    const seed = randomSeed();
    const next = lcg(seed);
    for (let i = 0; i < 20000; i++) {
      const x = (next() - 0.5) * 2 ** Math.floor(next() * 46 - 30);
      const bits = f32ToF16Bits(x);
      const error = Math.abs(f16Value(bits) - Math.fround(x));
      for (const neighbour of [bits - 1, bits + 1].map((b) => f16Value(b & 0xffff)).filter(Number.isFinite)) {
        expect(error, `seed ${seed}, x ${x}`).toBeLessThanOrEqual(Math.abs(neighbour - Math.fround(x)));
      }
    }
  });
});

describe("encodeSafetensors", () => {
  it("writes an 8-byte length, a space-padded JSON header to an 8-byte boundary, then little-endian data", () => {
    const bytes = Buffer.from(encodeSafetensors([
      { name: "w", dtype: "F32", shape: [2], values: Float32Array.of(1, -2) },
      { name: "h", dtype: "BF16", shape: [1], values: Float32Array.of(1) },
    ]));
    const headerByteLength = Number(bytes.readBigUInt64LE(0));
    expect((8 + headerByteLength) % 8).toBe(0);
    const header = bytes.subarray(8, 8 + headerByteLength).toString("utf8");
    expect(header.trimEnd()).toBe('{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"h":{"dtype":"BF16","shape":[1],"data_offsets":[8,10]}}');
    expect(header.slice(header.trimEnd().length)).toMatch(/^ *$/);
    const data = bytes.subarray(8 + headerByteLength);
    expect([...data]).toEqual([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x80, 0x3f]);
  });

  it("encodes f16 little-endian and refuses values that do not fill the shape", () => {
    expect([...encodeTensorData(Float32Array.of(1, -2), "F16")]).toEqual([0x00, 0x3c, 0x00, 0xc0]);
    expect(() => encodeSafetensors([{ name: "w", dtype: "F32", shape: [2, 2], values: new Float32Array(3) }])).toThrow("tensor w: shape [2, 2] holds 4 values but 3 were given");
  });
});
