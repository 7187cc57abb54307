import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufFile } from "./gguf.js";
import {
  decodeGgufTensorData,
  encodeGguf,
  encodeGgufTensorData,
  f16BitsToF32,
  ggufEntryType,
  ggufToWrite,
  quantizeQ4_0,
  quantizeQ8_0,
  writeGguf,
  type GgufToWrite,
} from "./gguf-writer.js";
import { f32ToBf16Bits, f32ToF16Bits } from "./safetensors-writer.js";
import { seededNormal } from "./tiny-model.js";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";

const freshDir = tempDirs("gguf-writer");

function normals(n: number, seed: number, std = 1): Float32Array {
  const normal = seededNormal(seed);
  return Float32Array.from({ length: n }, () => normal(0, std));
}

const f16 = (x: number) => f16BitsToF32(f32ToF16Bits(x));

describe("Q8_0", () => {
  it("stores d = absmax/127 as f16 and q = round(x/d), halves away from zero", () => {
    const x = new Float32Array(32);
    x[0] = -127; // absmax: d = 1
    x[1] = 0.5;
    x[2] = -0.5;
    x[3] = 2.5;
    x[4] = 126.4;
    x[5] = 3.49;
    const bytes = quantizeQ8_0(x);
    expect(bytes.length).toBe(34);
    const view = new DataView(bytes.buffer);
    expect(f16BitsToF32(view.getUint16(0, true))).toBe(1);
    expect([0, 1, 2, 3, 4, 5, 6].map((j) => view.getInt8(2 + j))).toEqual([-127, 1, -1, 3, 126, 3, 0]);
  });

  it("an all-zero block has d = 0 and q = 0", () => {
    expect([...quantizeQ8_0(new Float32Array(64))]).toEqual(new Array(68).fill(0));
  });

  it("round-trips random values within half a step (plus the f16 rounding of d)", () => {
    const seed = freshSeed();
    const x = normals(32 * 50, seed);
    const y = decodeGgufTensorData(quantizeQ8_0(x), "Q8_0", x.length);
    for (let b = 0; b < 50; b++) {
      const block = x.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...block.map(Math.abs));
      const d = f16(amax / 127);
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j]! - block[j]!), `seed ${seed}`).toBeLessThanOrEqual(d / 2 + amax * 2 ** -10);
    }
  });
});

describe("Q4_0", () => {
  it("d = max / -8 for the signed value of largest magnitude; q = min(15, trunc(x/d + 8.5)); element j in byte j's low nibble, j+16 in its high", () => {
    const x = new Float32Array(32);
    x[0] = -8; // largest magnitude, negative: d = 1, q = 0
    x[1] = 7; // 15
    x[2] = 7.6; // trunc(16.1) = 16 -> 15
    x[3] = -0.4; // trunc(8.1) = 8
    x[16] = 3; // 11, high nibble of byte 0
    x[17] = -7.5; // trunc(1) = 1
    const bytes = quantizeQ4_0(x);
    expect(bytes.length).toBe(18);
    const view = new DataView(bytes.buffer);
    expect(f16BitsToF32(view.getUint16(0, true))).toBe(1);
    const nibbles = (j: number) => [bytes[2 + j]! & 0x0f, bytes[2 + j]! >> 4];
    expect(nibbles(0)).toEqual([0, 11]);
    expect(nibbles(1)).toEqual([15, 1]);
    expect(nibbles(2)).toEqual([15, 8]);
    expect(nibbles(3)).toEqual([8, 8]);
    expect([...decodeGgufTensorData(bytes, "Q4_0", 32).subarray(0, 4)]).toEqual([-8, 7, 7, 0]);
  });

  it("a positive maximum gives a negative d: the maximum itself decodes exactly", () => {
    const x = new Float32Array(32).fill(1);
    x[5] = 8;
    const bytes = quantizeQ4_0(x);
    expect(f16BitsToF32(new DataView(bytes.buffer).getUint16(0, true))).toBe(-1);
    const y = decodeGgufTensorData(bytes, "Q4_0", 32);
    expect(y[5]).toBe(8);
    expect(y[0]).toBe(1);
  });

  it("an all-zero block stores q = 8 and decodes to zeros", () => {
    const bytes = quantizeQ4_0(new Float32Array(32));
    expect([...bytes.subarray(2)]).toEqual(new Array(16).fill(0x88));
    expect([...decodeGgufTensorData(bytes, "Q4_0", 32)].every((v) => v === 0)).toBe(true);
  });

  it("round-trips random values within one step", () => {
    const seed = freshSeed();
    const x = normals(32 * 50, seed);
    const y = decodeGgufTensorData(quantizeQ4_0(x), "Q4_0", x.length);
    for (let b = 0; b < 50; b++) {
      const block = x.subarray(b * 32, b * 32 + 32);
      const d = Math.max(...block.map(Math.abs)) / 8;
      for (let j = 0; j < 32; j++) expect(Math.abs(y[b * 32 + j]! - block[j]!), `seed ${seed}`).toBeLessThanOrEqual(d * 1.01);
    }
  });
});

describe("encodeGgufTensorData", () => {
  it("F32, F16 and BF16 are the values' little-endian bits", () => {
    const x = normals(10, freshSeed());
    const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset);
    const f32 = encodeGgufTensorData(x, "F32");
    expect(Array.from({ length: 10 }, (_, i) => view(f32).getFloat32(i * 4, true))).toEqual([...x]);
    const h = encodeGgufTensorData(x, "F16");
    expect(Array.from({ length: 10 }, (_, i) => view(h).getUint16(i * 2, true))).toEqual([...x].map(f32ToF16Bits));
    const bf = encodeGgufTensorData(x, "BF16");
    expect(Array.from({ length: 10 }, (_, i) => view(bf).getUint16(i * 2, true))).toEqual([...x].map(f32ToBf16Bits));
    expect([...decodeGgufTensorData(h, "F16", 10)]).toEqual([...x].map(f16).map(Math.fround));
  });

  it("refuses quantized data that does not fill whole blocks", () => {
    expect(() => encodeGgufTensorData(new Float32Array(40), "Q8_0")).toThrow(expect.objectContaining({ code: "INVALID_INPUT", message: "Q8_0 stores blocks of 32 values; 40 values do not fill whole blocks" }));
  });
});

describe("encodeGguf", () => {
  it("writes what readGgufFile reads back: dims from shape (reversed), each tensor aligned", async () => {
    const file = join(await freshDir(), "w.gguf");
    await writeGguf(file, {
      metadata: [{ key: "general.alignment", type: "u32", value: 64 }],
      tensors: [
        { name: "m", shape: [3, 64], type: "Q8_0", data: normals(192, 1) },
        { name: "v", dims: [7], type: "F32", data: normals(7, 2) },
        { name: "n", shape: [2, 32], type: "Q4_0", data: normals(64, 3) },
      ],
    });
    const gguf = await readGgufFile(file);
    expect(gguf.alignment).toBe(64);
    expect(gguf.tensors.map((t) => [t.name, t.dims, t.typeName, t.byteLength, (t.offset - gguf.dataOffset) % 64])).toEqual([
      ["m", [64, 3], "Q8_0", 6 * 34, 0],
      ["v", [7], "F32", 28, 0],
      ["n", [32, 2], "Q4_0", 2 * 18, 0],
    ]);
  });

  it("refuses values that do not fit their type, and tensors given wrongly", () => {
    const bad = (spec: Partial<GgufToWrite>) => () => encodeGguf({ metadata: [], tensors: [], ...spec });
    expect(bad({ metadata: [{ key: "k", type: "u8", value: 256 }] })).toThrow(expect.objectContaining({ code: "INVALID_INPUT", path: "k", message: "metadata k: u8 needs an integer in [0, 255], found 256" }));
    expect(bad({ metadata: [{ key: "k", type: "i32", value: 1.5 }] })).toThrow(/i32 needs an integer/);
    expect(bad({ metadata: [{ key: "k", type: "u64", value: -1n }] })).toThrow("metadata k: u64 needs a bigint or safe integer in range, found -1n");
    expect(bad({ metadata: [{ key: "k", type: "string", value: 3 }] })).toThrow("string needs a string");
    expect(bad({ metadata: [{ key: "k", type: { array: "u32" }, value: 3 }] })).toThrow("an array type needs an array value");
    expect(bad({ metadata: [{ key: "k", type: { array: "u8" }, value: [1, 300] }] })).toThrow("u8 needs an integer");
    expect(bad({ tensors: [{ name: "t", type: "F32", data: new Float32Array(4) }] })).toThrow("tensor t: give dims (innermost first) or shape (outermost first), not neither");
    expect(bad({ tensors: [{ name: "t", dims: [4], shape: [4], type: "F32", data: new Float32Array(4) }] })).toThrow("not both");
    expect(bad({ tensors: [{ name: "t", dims: [4, 2], type: "F32", data: new Float32Array(4) }] })).toThrow("tensor t: dims [4, 2] hold 8 values but 4 were given");
    expect(bad({ tensors: [{ name: "t", dims: [16, 4], type: "Q8_0", data: new Float32Array(64) }] })).toThrow("tensor t: rows of 16 values are not a multiple of Q8_0's block of 32");
  });

  it("ggufToWrite reads a file back into a spec that writes the same bytes", async () => {
    const dir = await freshDir();
    const spec: GgufToWrite = {
      version: 2,
      metadata: [
        { key: "a", type: { array: { array: "i16" } }, value: [[1, -2], []] },
        { key: "b", type: "f64", value: 0.25 },
        { key: "c", type: { array: "string" }, value: [] },
      ],
      tensors: [{ name: "t", dims: [32], type: "Q8_0", data: normals(32, 4) }, { name: "u", dims: [3], typeId: 99, bytes: Uint8Array.of(1, 2, 3) }],
    };
    const bytes = encodeGguf(spec);
    await writeFile(join(dir, "a.gguf"), bytes);
    const again = encodeGguf(await ggufToWrite(join(dir, "a.gguf")));
    expect(Buffer.from(again).equals(Buffer.from(bytes))).toBe(true);
    expect(ggufEntryType("array[array[u8]]")).toEqual({ array: { array: "u8" } });
    expect(() => ggufEntryType("u128")).toThrow("no GGUF value type is called u128");
  });
});
