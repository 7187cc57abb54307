// Llama 3.1's rope scaling read back from llama.cpp's per-pair divisors: the llama3 parameters
// found reproduce every divisor, for Llama 3.1's own settings and fresh random ones; divisors
// no llama3 scaling makes are refused.
import { describe, expect, it } from "vitest";
import type { RopeScalingLlama3 } from "./config.js";
import { llama3Divisors, llama3ScalingFromDivisors } from "./gguf-rope.js";
import { freshSeed } from "./temp-dirs.test-helper.js";
import { seededUniform } from "./tiny-model.js";

const LLAMA31: RopeScalingLlama3 = { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 };
const f32 = (xs: number[]) => Array.from(Float32Array.from(xs));

describe("llama3ScalingFromDivisors", () => {
  it("finds Llama 3.1-8B's scaling (theta 500000, head 128) from its float32 divisors", () => {
    const divisors = f32(llama3Divisors(LLAMA31, 500000, 128));
    const s = llama3ScalingFromDivisors(divisors, 500000, 128, "m.gguf", 8192)!;
    expect(s.factor).toBe(8);
    expect(s.lowFreqFactor).toBeCloseTo(1, 3);
    expect(s.highFreqFactor).toBeCloseTo(4, 3);
    const again = llama3Divisors(s, 500000, 128);
    again.forEach((d, i) => expect(Math.abs(d - divisors[i]!) / divisors[i]!).toBeLessThan(1e-5));
  });

  it("reproduces fresh random llama3 settings' divisors, whatever original context it assumes", () => {
    const seed = freshSeed();
    const next = seededUniform(seed);
    const r = Array.from({ length: 40 }, () => next());
    for (let k = 0; k < 10; k++) {
      const low = 0.5 + r[4 * k]! * 2;
      const truth: RopeScalingLlama3 = { type: "llama3", factor: 2 + r[4 * k + 1]! * 30, lowFreqFactor: low, highFreqFactor: low + 0.5 + r[4 * k + 2]! * 6, originalMaxPositions: 2048 + Math.round(r[4 * k + 3]! * 30000) };
      const [theta, head] = k % 2 ? [500000, 128] : [10000, 64];
      const divisors = f32(llama3Divisors(truth, theta, head));
      const s = llama3ScalingFromDivisors(divisors, theta, head, "m.gguf");
      const again = s ? llama3Divisors(s, theta, head) : divisors.map(() => 1);
      again.forEach((d, i) => expect(Math.abs(d - divisors[i]!) / divisors[i]!, `seed ${seed} case ${k} pair ${i}`).toBeLessThan(1e-4));
    }
  });

  it("reproduces a scaling whose band holds a single rotary pair (its slope is free within the neighbours' bounds)", () => {
    const truth: RopeScalingLlama3 = { type: "llama3", factor: 20.226, lowFreqFactor: 2.0824, highFreqFactor: 2.7488, originalMaxPositions: 21558 };
    const divisors = f32(llama3Divisors(truth, 10000, 64));
    expect(divisors.filter((d) => d > 1.0001 && d < truth.factor * 0.9999)).toHaveLength(1);
    const s = llama3ScalingFromDivisors(divisors, 10000, 64, "m.gguf");
    llama3Divisors(s!, 10000, 64).forEach((d, i) => expect(Math.abs(d - divisors[i]!) / divisors[i]!, `pair ${i}`).toBeLessThan(1e-4));
  });

  it("reads all-ones as no scaling", () => {
    expect(llama3ScalingFromDivisors(new Array(64).fill(1), 10000, 128, "m.gguf")).toBeNull();
  });

  it("refuses divisors that are not a llama3 scaling, naming the file", () => {
    const bumpy = llama3Divisors(LLAMA31, 500000, 128).map((d, i) => (i === 40 ? d * 1.5 : d));
    expect(() => llama3ScalingFromDivisors(bumpy, 500000, 128, "m.gguf")).toThrow(/rope_freqs.weight in m.gguf does not follow Llama 3.1's rope scaling/);
    expect(() => llama3ScalingFromDivisors([1, 2, 3], 500000, 128, "m.gguf")).toThrow(/has 3 values; a head of 128 has 64 rotary pairs/);
    expect(() => llama3ScalingFromDivisors(new Array(64).fill(Number.NaN), 500000, 128, "m.gguf")).toThrow(/not a positive number/);
  });
});
