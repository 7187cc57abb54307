import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readGgufFile, RuntimeError, type GgufFile } from "./index.js";
import { encodeGguf, encodeGgufTensorData, type GgufMetadataEntry, type GgufTensorToWrite, type GgufToWrite } from "./gguf-writer.js";
import { GGML_TYPES, ggmlTypeById, ggmlTypeName, isGgufFile, MAX_GGUF_HEADER_BYTES } from "./gguf.js";
import { tempDirs } from "./temp-dirs.test-helper.js";

const freshDir = tempDirs("gguf");

async function writeBytes(bytes: Uint8Array, name = "model.gguf"): Promise<string> {
  const file = join(await freshDir(), name);
  await writeFile(file, bytes);
  return file;
}

const write = (spec: GgufToWrite) => writeBytes(encodeGguf(spec));

const ramp = (n: number, scale = 0.01) => Float32Array.from({ length: n }, (_, i) => (i - n / 2) * scale);

/** A small file of every kind of part: metadata of a few types and five tensors. */
function smallSpec(): GgufToWrite {
  return {
    metadata: [
      // A long first value: cuts after it are past the minimal size the counts imply.
      { key: "general.name", type: "string", value: "a tiny test model ".repeat(12) },
      { key: "general.architecture", type: "string", value: "llama" },
      { key: "llama.block_count", type: "u32", value: 2 },
      { key: "tokenizer.ggml.tokens", type: { array: "string" }, value: ["a", "b", "c"] },
      { key: "llama.rope.freq_base", type: "f32", value: 10000 },
    ],
    tensors: [
      { name: "a.weight", dims: [64, 3], type: "F32", data: ramp(192) },
      { name: "b.weight", dims: [32, 2], type: "F16", data: ramp(64) },
      { name: "c.weight", dims: [5], type: "BF16", data: ramp(5) },
      { name: "d.weight", dims: [64, 2], type: "Q8_0", data: ramp(128) },
      { name: "e.weight", dims: [32, 4], type: "Q4_0", data: ramp(128) },
    ],
  };
}

/** Where tensor `name`'s info starts in `bytes` (its u64 name length), and where its fields are. */
function tensorInfoAt(bytes: Uint8Array, name: string): { start: number; nDims: number; type: number; offset: number } {
  const buffer = Buffer.from(bytes);
  const needle = Buffer.alloc(8 + name.length);
  needle.writeBigUInt64LE(BigInt(name.length));
  needle.write(name, 8, "utf8");
  const start = buffer.indexOf(needle);
  if (start < 0) throw new Error(`no tensor info for ${name}`);
  const nDims = start + 8 + name.length;
  const type = nDims + 4 + 8 * buffer.readUInt32LE(nDims);
  return { start, nDims, type, offset: type + 4 };
}

/** Where metadata key `key`'s value type field is. */
function keyTypeAt(bytes: Uint8Array, key: string): number {
  const buffer = Buffer.from(bytes);
  const needle = Buffer.alloc(8 + key.length);
  needle.writeBigUInt64LE(BigInt(key.length));
  needle.write(key, 8, "utf8");
  const at = buffer.indexOf(needle);
  if (at < 0) throw new Error(`no key ${key}`);
  return at + 8 + key.length;
}

async function rejection(file: string): Promise<RuntimeError> {
  try {
    await readGgufFile(file);
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    return e as RuntimeError;
  }
  throw new Error(`${file} was read without an error`);
}

describe("readGgufFile", () => {
  it("round-trips every metadata value type, nested arrays and empty arrays", async () => {
    const metadata: GgufMetadataEntry[] = [
      { key: "t.u8", type: "u8", value: 255 },
      { key: "t.i8", type: "i8", value: -128 },
      { key: "t.u16", type: "u16", value: 65535 },
      { key: "t.i16", type: "i16", value: -32768 },
      { key: "t.u32", type: "u32", value: 4294967295 },
      { key: "t.i32", type: "i32", value: -2147483648 },
      { key: "t.f32", type: "f32", value: 1.5 },
      { key: "t.f32_inexact", type: "f32", value: 0.1 },
      { key: "t.bool_true", type: "bool", value: true },
      { key: "t.bool_false", type: "bool", value: false },
      { key: "t.string", type: "string", value: "長い文脈 🧠\n\"quoted\"" },
      { key: "t.empty_string", type: "string", value: "" },
      { key: "t.u64", type: "u64", value: 2n ** 64n - 1n },
      { key: "t.i64", type: "i64", value: -(2n ** 63n) },
      { key: "t.f64", type: "f64", value: 1e-300 },
      { key: "t.array_u8", type: { array: "u8" }, value: [0, 1, 255] },
      { key: "t.array_i32", type: { array: "i32" }, value: [-1, 2, 3] },
      { key: "t.array_f32", type: { array: "f32" }, value: [0.5, -2] },
      { key: "t.array_u64", type: { array: "u64" }, value: [1n, 2n ** 40n] },
      { key: "t.array_bool", type: { array: "bool" }, value: [true, false] },
      { key: "t.array_string", type: { array: "string" }, value: ["Ġt", "", "<|eot_id|>"] },
      { key: "t.array_empty", type: { array: "string" }, value: [] },
      { key: "t.array_nested", type: { array: { array: "u32" } }, value: [[1, 2], [], [3]] },
      { key: "t.array_nested2", type: { array: { array: { array: "i8" } } }, value: [[[-1], [2, 3]]] },
    ];
    const gguf = await readGgufFile(await write({ metadata, tensors: [] }));
    const expected = new Map(metadata.map((e) => [e.key, e.key === "t.f32_inexact" ? Math.fround(0.1) : e.value]));
    expect(gguf.metadata).toEqual(expected);
    expect(Object.fromEntries(gguf.metadataTypes)).toMatchObject({
      "t.u8": "u8", "t.i64": "i64", "t.f64": "f64", "t.bool_true": "bool", "t.array_string": "array[string]", "t.array_empty": "array[string]",
      "t.array_nested": "array[array[u32]]", "t.array_nested2": "array[array[array[i8]]]", "t.array_u64": "array[u64]",
    });
    expect(typeof gguf.metadata.get("t.u32")).toBe("number");
    expect(typeof gguf.metadata.get("t.u64")).toBe("bigint");
    expect(gguf).toMatchObject({ version: 3, tensors: [], alignment: 32 });
  });

  it("reads the tensor directory: dims, types, aligned absolute offsets, byte lengths from block sizes", async () => {
    const spec = smallSpec();
    const bytes = encodeGguf(spec);
    const file = await writeBytes(bytes);
    const gguf = await readGgufFile(file);
    expect(gguf.file).toBe(file);
    expect(gguf.fileByteLength).toBe(bytes.length);
    expect(gguf.dataOffset % 32).toBe(0);
    expect(gguf.tensors.map((t) => [t.name, t.dims, t.typeId, t.typeName, t.byteLength])).toEqual([
      ["a.weight", [64, 3], 0, "F32", 192 * 4],
      ["b.weight", [32, 2], 1, "F16", 64 * 2],
      ["c.weight", [5], 30, "BF16", 10],
      ["d.weight", [64, 2], 8, "Q8_0", 4 * 34],
      ["e.weight", [32, 4], 2, "Q4_0", 4 * 18],
    ]);
    for (const [i, t] of gguf.tensors.entries()) {
      expect((t.offset - gguf.dataOffset) % 32).toBe(0);
      const want = spec.tensors[i]!;
      if (!("data" in want)) throw new Error("unreachable");
      expect(Buffer.from(bytes.subarray(t.offset, t.offset + t.byteLength)).equals(Buffer.from(encodeGgufTensorData(want.data, want.type)))).toBe(true);
    }
  });

  it("honors general.alignment and reads version 2", async () => {
    const spec = smallSpec();
    const gguf = await readGgufFile(await write({ ...spec, version: 2, metadata: [...spec.metadata, { key: "general.alignment", type: "u32", value: 64 }] }));
    expect(gguf).toMatchObject({ version: 2, alignment: 64 });
    expect(gguf.dataOffset % 64).toBe(0);
    expect(gguf.tensors.every((t) => (t.offset - gguf.dataOffset) % 64 === 0)).toBe(true);
  });

  it("sizes k-quants by their 256-value blocks and keeps unknown types, spanning to the next tensor", async () => {
    const tensors: GgufTensorToWrite[] = [
      { name: "k4", dims: [256, 2], typeId: 12, bytes: new Uint8Array(2 * 144) },
      { name: "k6", dims: [512], typeId: 14, bytes: new Uint8Array(2 * 210) },
      { name: "mystery", dims: [7, 3], typeId: 99, bytes: new Uint8Array(40) },
      { name: "last", dims: [8], typeId: 0, bytes: new Uint8Array(32) },
      { name: "mystery_last", dims: [1], typeId: 77, bytes: new Uint8Array(5) },
    ];
    const gguf = await readGgufFile(await write({ metadata: [], tensors }));
    const byName = new Map(gguf.tensors.map((t) => [t.name, t]));
    expect(byName.get("k4")).toMatchObject({ typeName: "Q4_K", byteLength: 288 });
    expect(byName.get("k6")).toMatchObject({ typeName: "Q6_K", byteLength: 420 });
    // Unknown: from its offset to the next tensor's (40 bytes padded to 64), and to the end of the file.
    expect(byName.get("mystery")).toMatchObject({ typeId: 99, typeName: "type 99", byteLength: 64 });
    expect(byName.get("mystery_last")).toMatchObject({ typeName: "type 77", byteLength: 5 });
    expect(byName.get("mystery_last")!.offset + 5).toBe(gguf.fileByteLength);
  });

  it("reads headers larger than its first chunk (a 400K-token vocabulary)", async () => {
    const tokens = Array.from({ length: 400_000 }, (_, i) => `token-${i}`);
    const gguf = await readGgufFile(await write({ metadata: [{ key: "tokenizer.ggml.tokens", type: { array: "string" }, value: tokens }], tensors: smallSpec().tensors }));
    expect(gguf.dataOffset).toBeGreaterThan(6 * 1024 * 1024);
    expect((gguf.metadata.get("tokenizer.ggml.tokens") as string[])[399_999]).toBe("token-399999");
    expect(gguf.tensors).toHaveLength(5);
  });

  it("knows ggml's type table", () => {
    expect(GGML_TYPES.map((t) => [t.id, t.name])).toContainEqual([30, "BF16"]);
    expect(ggmlTypeById(12)).toEqual({ id: 12, name: "Q4_K", blockElements: 256, blockBytes: 144 });
    expect(ggmlTypeById(13)).toMatchObject({ blockBytes: 176 });
    expect(ggmlTypeById(14)).toMatchObject({ blockBytes: 210 });
    expect(ggmlTypeById(3)).toMatchObject({ name: "Q4_1", blockElements: 32, blockBytes: 20 });
    expect(ggmlTypeName(4)).toBe("type 4");
    expect(new Set(GGML_TYPES.map((t) => t.id)).size).toBe(GGML_TYPES.length);
  });

  it("isGgufFile looks at the magic only", async () => {
    expect(await isGgufFile(await write(smallSpec()))).toBe(true);
    expect(await isGgufFile(await writeBytes(Buffer.from("GGU")))).toBe(false);
    expect(await isGgufFile(await writeBytes(Buffer.from("{\"a\": 1}")))).toBe(false);
    expect(await isGgufFile(join(await freshDir(), "nope"))).toBe(false);
  });
});

describe("readGgufFile errors (MODEL_FILE, path = the file)", () => {
  it("a missing file, a directory", async () => {
    const dir = await freshDir();
    const missing = join(dir, "nope.gguf");
    expect((await rejection(missing)).toJSON()).toEqual({ code: "MODEL_FILE", path: missing, message: `nope.gguf does not exist (in ${dir})` });
    await mkdir(join(dir, "d.gguf"));
    expect(await rejection(join(dir, "d.gguf"))).toMatchObject({ code: "MODEL_FILE", message: "d.gguf is not a file; pass a .gguf file" });
  });

  it("wrong magic: not a GGUF file, with the bytes found", async () => {
    const file = await writeBytes(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0]), "zip.gguf");
    expect(await rejection(file)).toMatchObject({ code: "MODEL_FILE", path: file, message: 'zip.gguf is not a GGUF file: it starts with bytes 50 4b 03 04, not "GGUF" (47 47 55 46)' });
    expect(await rejection(await writeBytes(Buffer.from("GG"), "short.gguf"))).toMatchObject({ message: 'short.gguf is not a GGUF file: it has 2 bytes, fewer than the 4-byte magic "GGUF"' });
    expect(await rejection(await writeBytes(new Uint8Array(0), "empty.gguf"))).toMatchObject({ message: expect.stringContaining("empty.gguf is not a GGUF file: it has 0 bytes") });
  });

  it.each([
    [1, "is GGUF version 1, which is not supported; supported versions are 2 and 3 (version 1, from before August 2023, stores 32-bit counts)"],
    [4, "is GGUF version 4, which is not supported; supported versions are 2 and 3: it is newer than this reader"],
  ])("version %i: says which versions are supported", async (version, message) => {
    const err = await rejection(await write({ ...smallSpec(), version }));
    expect(err).toMatchObject({ code: "MODEL_FILE", message: expect.stringContaining(`model.gguf ${message}`) });
  });

  it("a big-endian file: says so", async () => {
    const bytes = encodeGguf(smallSpec());
    new DataView(bytes.buffer, bytes.byteOffset).setUint32(4, 3, false);
    expect(await rejection(await writeBytes(bytes))).toMatchObject({ message: expect.stringContaining("is a big-endian GGUF file (version 3); only little-endian files are supported") });
  });

  it("truncated anywhere in the header: a MODEL_FILE error naming the field and what it belongs to", async () => {
    const bytes = encodeGguf(smallSpec());
    const gguf = await readGgufFile(await writeBytes(bytes));
    const file = await writeBytes(bytes, "cut.gguf");
    const infosEnd = gguf.dataOffset;
    for (let cut = 0; cut < infosEnd; cut += cut < 64 ? 1 : 7) {
      await writeFile(file, bytes.subarray(0, cut));
      const err = await rejection(file);
      expect(err.code, `cut at ${cut}`).toBe("MODEL_FILE");
      expect(err.path).toBe(file);
      expect(err.message, `cut at ${cut}`).toMatch(/^cut\.gguf (is not a GGUF file|is truncated)/);
    }
    const at = async (cut: number) => {
      await writeFile(file, bytes.subarray(0, cut));
      return (await rejection(file)).message;
    };
    expect(await at(6)).toBe("cut.gguf is truncated: the version of the header needs 4 bytes at offset 4 but the file ends at 6; re-download it");
    expect(await at(20)).toContain("the tensor count of the header");
    expect(await at(30)).toContain("cut.gguf is truncated or corrupt: the tensor count of the header (at offset 8) says 5 tensors, more than a file of 30 bytes can hold");
    expect(await at(240)).toBe(
      "cut.gguf is truncated or corrupt: the length of a string of metadata key general.name (entry 1 of 5) (at offset 48) says 216 bytes, more than the 184 bytes left in the file can hold; re-download it",
    );
    const key = keyTypeAt(bytes, "llama.block_count");
    expect(await at(key - 4)).toContain("the length of the key of metadata entry 3 of 5 (at offset 317) says 17 bytes, more than the 13 bytes left");
    expect(await at(key + 2)).toContain("the value type of metadata key llama.block_count (entry 3 of 5)");
    expect(await at(key + 6)).toContain("needs 4 bytes at offset");
    const tokens = keyTypeAt(bytes, "tokenizer.ggml.tokens");
    expect(await at(tokens + 4 + 4 + 8 + 8 + 1 + 3)).toContain("the element count of an array of metadata key tokenizer.ggml.tokens (entry 4 of 5) (at offset");
    const info = tensorInfoAt(bytes, "d.weight");
    expect(await at(info.nDims + 6)).toContain("dimension 0 of tensor d.weight (info 4 of 5)");
    expect(await at(info.offset + 3)).toContain("the data offset of tensor d.weight");
  });

  it("truncated in the data section: names the tensor whose data runs past the end", async () => {
    const bytes = encodeGguf(smallSpec());
    const gguf = await readGgufFile(await writeBytes(bytes));
    const last = gguf.tensors.at(-1)!;
    const err = await rejection(await writeBytes(bytes.subarray(0, bytes.length - 1)));
    expect(err.message).toBe(`model.gguf is truncated: tensor e.weight (Q4_0 [32, 4]) needs 72 bytes at ${last.offset} but the file ends at ${bytes.length - 1}; re-download it`);
    const err2 = await rejection(await writeBytes(bytes.subarray(0, gguf.tensors[3]!.offset + 3)));
    expect(err2.message).toMatch(/tensor (e\.weight's data starts at|d\.weight \(Q8_0)/);
  });

  it("absurd counts and lengths: bounded by the file size", async () => {
    const bytes = encodeGguf(smallSpec());
    const edit = async (at: number, value: bigint) => {
      const copy = Buffer.from(bytes);
      copy.writeBigUInt64LE(value, at);
      return (await rejection(await writeBytes(copy))).message;
    };
    expect(await edit(8, 2n ** 40n)).toMatch(/^model.gguf is truncated or corrupt: the tensor count of the header \(at offset 8\) says 1099511627776 tensors, more than a file of \d+ bytes can hold/);
    expect(await edit(16, 2n ** 62n)).toContain(`says ${2n ** 62n} metadata entries`);
    expect(await edit(24, 2n ** 63n)).toContain(`the length of the key of metadata entry 1 of 5 (at offset 24) says ${2n ** 63n} bytes`);
    const tokens = keyTypeAt(bytes, "tokenizer.ggml.tokens");
    expect(await edit(tokens + 8, 10n ** 15n)).toContain(`the element count of an array of metadata key tokenizer.ggml.tokens (entry 4 of 5) (at offset ${tokens + 8}) says 1000000000000000 string elements`);
    const info = tensorInfoAt(bytes, "a.weight");
    expect(await edit(info.nDims + 4, 2n ** 50n)).toContain("is corrupt: tensor a.weight (info 1 of 5) has dimension 0 of 1125899906842624");
  });

  it("an unknown value type, also as an array's element type; a bool that is neither 0 nor 1", async () => {
    const bytes = encodeGguf(smallSpec());
    const copy = Buffer.from(bytes);
    copy.writeUInt32LE(13, keyTypeAt(bytes, "llama.block_count"));
    expect((await rejection(await writeBytes(copy))).message).toContain("is corrupt or too new: metadata key llama.block_count (entry 3 of 5) has value type 13");
    const array = Buffer.from(bytes);
    array.writeUInt32LE(42, keyTypeAt(bytes, "tokenizer.ggml.tokens") + 4);
    expect((await rejection(await writeBytes(array))).message).toMatch(/metadata key tokenizer.ggml.tokens \(entry 4 of 5\) has value type 42 .*GGUF value types are 0-12 \(0 u8, 1 i8/);
    const bool = encodeGguf({ metadata: [{ key: "b", type: "bool", value: true }], tensors: [] });
    Buffer.from(bool.buffer).writeUInt8(2, 24 + 8 + 1 + 4);
    expect((await rejection(await writeBytes(bool))).message).toContain("metadata key b (entry 1 of 1) is a bool of value 2");
  });

  it("tensor data offsets: beyond the file, misaligned, overlapping; too many dims; rows not a multiple of the block", async () => {
    const bytes = encodeGguf(smallSpec());
    const info = tensorInfoAt(bytes, "b.weight");
    const withOffset = async (value: bigint) => {
      const copy = Buffer.from(bytes);
      copy.writeBigUInt64LE(value, info.offset);
      return rejection(await writeBytes(copy));
    };
    expect((await withOffset(32n * 10n ** 9n)).message).toMatch(/^model.gguf is truncated or corrupt: tensor b.weight's data starts at \d+ \(data section at \d+ \+ 32000000000\), beyond the end of the file at \d+/);
    expect((await withOffset(4n)).message).toBe("model.gguf is corrupt: tensor b.weight's data offset 4 is not a multiple of the alignment 32; re-download it");
    expect((await withOffset(0n)).message).toMatch(/the data of tensors (a\.weight|b\.weight) \(\d+ bytes at data offset 0\) and (a\.weight|b\.weight) \(at 0\) overlap/);
    const dims = Buffer.from(bytes);
    dims.writeUInt32LE(5, tensorInfoAt(bytes, "c.weight").nDims);
    expect((await rejection(await writeBytes(dims))).message).toContain("tensor c.weight (info 3 of 5) has 5 dimensions");
    const rows = encodeGguf({ metadata: [], tensors: [{ name: "q", dims: [16, 2], typeId: 8, bytes: new Uint8Array(34) }] });
    expect((await rejection(await writeBytes(rows))).message).toBe("model.gguf is corrupt: tensor q has rows of 16 values (dims [16, 2]), not a multiple of Q8_0's block of 32");
  });

  it("duplicate keys and tensor names; a bad general.alignment", async () => {
    const key = encodeGguf({ metadata: [{ key: "k", type: "u8", value: 1 }, { key: "k", type: "u8", value: 2 }], tensors: [] });
    expect((await rejection(await writeBytes(key))).message).toBe("model.gguf is corrupt: metadata key k appears twice (entry 2); re-download it");
    const t = { name: "t", dims: [8], type: "F32", data: new Float32Array(8) } as const;
    expect((await rejection(await write({ metadata: [], tensors: [t, t] }))).message).toBe("model.gguf is corrupt: tensor t is listed twice (info 2); re-download it");
    for (const value of [0, 24]) {
      const bytes = encodeGguf({ metadata: [{ key: "general.alignment", type: "u32", value: 32 }], tensors: [t] });
      Buffer.from(bytes.buffer).writeUInt32LE(value, keyTypeAt(bytes, "general.alignment") + 4);
      expect((await rejection(await writeBytes(bytes))).message).toBe(`model.gguf has general.alignment ${value}; it must be a power of two (ggml writes 32)`);
    }
  });

  it("never anything but a RuntimeError, whatever byte is corrupted", async () => {
    const bytes = encodeGguf(smallSpec());
    const gguf: GgufFile = await readGgufFile(await writeBytes(bytes));
    const file = await writeBytes(bytes, "flip.gguf");
    for (let at = 4; at < gguf.dataOffset; at += 3) {
      const copy = Buffer.from(bytes);
      copy[at] = copy[at]! ^ 0xa5;
      await writeFile(file, copy);
      try {
        const read = await readGgufFile(file);
        expect(read.tensors.every((t) => Number.isSafeInteger(t.offset) && Number.isSafeInteger(t.byteLength))).toBe(true);
      } catch (e) {
        expect(e, `byte ${at}`).toBeInstanceOf(RuntimeError);
        expect((e as RuntimeError).code).toBe("MODEL_FILE");
      }
    }
  });

  it("refuses a header beyond the limit without reading it", async () => {
    expect(MAX_GGUF_HEADER_BYTES).toBe(256 * 2 ** 20);
    const big = encodeGguf({ metadata: [{ key: "k", type: "string", value: "x" }], tensors: [] });
    // Claim a 300 MiB string in a file that has it (sparse: the file is truncated out to that size).
    const file = await writeBytes(big);
    const copy = Buffer.from(await readFile(file));
    copy.writeBigUInt64LE(300n * 2n ** 20n, 24 + 8 + 1 + 4);
    await writeFile(file, copy);
    const { truncate } = await import("node:fs/promises");
    await truncate(file, 301 * 2 ** 20);
    expect((await rejection(file)).message).toBe("model.gguf is corrupt: its header runs past 256 MiB (no real model's does); re-download it");
  });
});
