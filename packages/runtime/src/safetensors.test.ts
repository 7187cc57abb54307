import { mkdir, open, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readSafetensorsDir, readSafetensorsFile } from "./safetensors.js";
import { encodeSafetensors, encodeTensorData, type TensorToWrite } from "./safetensors-writer.js";
import { tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("st");


/** A file with `header` as its JSON (no padding) and `dataByteLength` zero bytes of data. */
function rawFile(header: unknown, dataByteLength: number): Buffer {
  const json = Buffer.from(typeof header === "string" ? header : JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, Buffer.alloc(dataByteLength)]);
}

const tensor = (name: string, dtype: TensorToWrite["dtype"], shape: number[]): TensorToWrite => ({
  name, dtype, shape, values: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i / 7 - 1),
});

describe("readSafetensorsFile", () => {
  it("lists every tensor with its absolute data offset and byte length, in data order", async () => {
    const file = join(await freshDir(), "model.safetensors");
    const written = [tensor("b.weight", "BF16", [3, 5]), tensor("a.weight", "F32", [4]), tensor("c.bias", "F16", [2, 1, 3])];
    const bytes = encodeSafetensors(written);
    await writeFile(file, bytes);
    const entries = await readSafetensorsFile(file);
    const headerByteLength = Number(Buffer.from(bytes).readBigUInt64LE(0));
    expect(entries).toEqual([
      { name: "b.weight", file, dtype: "BF16", shape: [3, 5], offset: 8 + headerByteLength, byteLength: 30 },
      { name: "a.weight", file, dtype: "F32", shape: [4], offset: 8 + headerByteLength + 30, byteLength: 16 },
      { name: "c.bias", file, dtype: "F16", shape: [2, 1, 3], offset: 8 + headerByteLength + 46, byteLength: 12 },
    ]);
    // The offsets point at exactly the bytes that were written.
    const content = await readFile(file);
    entries.forEach((e, i) => {
      const w = written[i]!;
      expect(content.subarray(e.offset, e.offset + e.byteLength)).toEqual(Buffer.from(encodeTensorData(w.values, w.dtype)));
    });
  });

  it("accepts __metadata__, scalars (shape []) and empty tensors", async () => {
    const file = join(await freshDir(), "x.safetensors");
    const header = {
      __metadata__: { format: "pt" },
      scale: { dtype: "F32", shape: [], data_offsets: [0, 4] },
      empty: { dtype: "BF16", shape: [0, 8], data_offsets: [4, 4] },
    };
    await writeFile(file, rawFile(header, 4));
    expect((await readSafetensorsFile(file)).map((e) => [e.name, e.byteLength])).toEqual([["scale", 4], ["empty", 0]]);
  });

  it("reads only the header: a sparse 3 GiB file opens at once", async () => {
    const file = join(await freshDir(), "big.safetensors");
    const dataByteLength = 3 * 2 ** 30;
    const header = { huge: { dtype: "BF16", shape: [3 * 2 ** 29], data_offsets: [0, dataByteLength] } };
    await writeFile(file, rawFile(header, 0));
    const handle = await open(file, "r+");
    await handle.truncate((await handle.stat()).size + dataByteLength);
    await handle.close();
    const started = performance.now();
    expect((await readSafetensorsFile(file))[0]?.byteLength).toBe(dataByteLength);
    expect(performance.now() - started).toBeLessThan(500);
    await rm(file); // sparse, but 3 GiB to anything that copies /tmp
  });

  it("names a file too short for the length prefix", async () => {
    const file = join(await freshDir(), "model.safetensors");
    await writeFile(file, Buffer.from([1, 2, 3]));
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({
      code: "MODEL_FILE", path: file, message: "model.safetensors is truncated: it has 3 bytes but a safetensors file starts with an 8-byte header length",
    });
  });

  it("names a file cut inside its header", async () => {
    const file = join(await freshDir(), "model.safetensors");
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(12n);
    await writeFile(file, Buffer.concat([length, Buffer.from('{"a":')]));
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({
      code: "MODEL_FILE", message: "model.safetensors is truncated: header says 12 bytes of JSON but the file has 5; re-download it",
    });
  });

  it("rejects a header length over 100 MB as not safetensors", async () => {
    const file = join(await freshDir(), "weights.bin");
    const length = Buffer.alloc(16);
    length.writeBigUInt64LE(2n ** 40n);
    await writeFile(file, length);
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^weights.bin is not a safetensors file: .*1099511627776 bytes \(over the 100 MB limit\)/) });
  });

  it("names corrupt header JSON and a header that is not an object", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "a.safetensors"), rawFile('{"w": {"dtype": "F32",', 0));
    await expect(readSafetensorsFile(join(dir, "a.safetensors"))).rejects.toMatchObject({ code: "INVALID_JSON", message: expect.stringMatching(/^a.safetensors has a corrupt header: its 22 bytes of JSON do not parse/) });
    await writeFile(join(dir, "b.safetensors"), rawFile([1, 2], 0));
    await expect(readSafetensorsFile(join(dir, "b.safetensors"))).rejects.toMatchObject({ code: "INVALID_JSON", message: expect.stringContaining("expected a JSON object of tensors, found [1,2]") });
  });

  it("names a tensor whose data lies past the end of the file", async () => {
    const file = join(await freshDir(), "model.safetensors");
    await writeFile(file, rawFile({ ok: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, cut: { dtype: "F32", shape: [4], data_offsets: [8, 24] } }, 20));
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({
      code: "MODEL_FILE", path: "cut",
      message: "model.safetensors: tensor cut has data_offsets [8, 24] outside the data section of 20 bytes; the file is truncated or corrupt: re-download it",
    });
  });

  it("names a tensor whose byte span does not match its shape and dtype", async () => {
    const file = join(await freshDir(), "model.safetensors");
    await writeFile(file, rawFile({ w: { dtype: "BF16", shape: [2, 3], data_offsets: [0, 24] } }, 24));
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({
      code: "MODEL_FILE", message: "model.safetensors: tensor w spans 24 bytes but its shape [2, 3] of BF16 needs 12; the file is corrupt: re-download it",
    });
  });

  it.each(["I8", "F64", "U8", "F8_E4M3"])("rejects dtype %s with TENSOR_DTYPE naming the tensor", async (dtype) => {
    const file = join(await freshDir(), "model.safetensors");
    await writeFile(file, rawFile({ "model.layers.0.mlp.up_proj.qweight": { dtype, shape: [1], data_offsets: [0, 1] } }, 8));
    await expect(readSafetensorsFile(file)).rejects.toMatchObject({
      code: "TENSOR_DTYPE", path: "model.layers.0.mlp.up_proj.qweight",
      message: expect.stringMatching(new RegExp(`^model.safetensors: tensor model.layers.0.mlp.up_proj.qweight has dtype ${dtype}; the engine loads BF16, F16 or F32`)),
    });
  });

  it("names malformed entries and overlapping tensors", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "a.safetensors"), rawFile({ w: { dtype: "F32", data_offsets: [0, 4] } }, 4));
    await expect(readSafetensorsFile(join(dir, "a.safetensors"))).rejects.toMatchObject({ code: "MODEL_FILE", path: "w", message: expect.stringContaining("a.safetensors: tensor w has a malformed header entry") });
    await writeFile(join(dir, "b.safetensors"), rawFile({ x: { dtype: "F32", shape: [2], data_offsets: [0, 8] }, y: { dtype: "F32", shape: [2], data_offsets: [4, 12] } }, 12));
    await expect(readSafetensorsFile(join(dir, "b.safetensors"))).rejects.toMatchObject({ code: "MODEL_FILE", message: "b.safetensors is corrupt: the data of tensors x and y overlap; re-download it" });
  });

  it("names a file that does not exist, with its directory", async () => {
    const dir = await freshDir();
    await expect(readSafetensorsFile(join(dir, "nope.safetensors"))).rejects.toMatchObject({ code: "MODEL_FILE", message: `nope.safetensors does not exist (in ${dir})` });
  });
});

describe("readSafetensorsDir", () => {
  async function sharded(dir: string, shards: Record<string, TensorToWrite[]>, weightMap?: Record<string, string>): Promise<void> {
    const map: Record<string, string> = {};
    for (const [file, tensors] of Object.entries(shards)) {
      await writeFile(join(dir, file), encodeSafetensors(tensors));
      for (const t of tensors) map[t.name] = file;
    }
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap ?? map }));
  }

  it("reads model.safetensors", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "model.safetensors"), encodeSafetensors([tensor("w", "F32", [2])]));
    expect((await readSafetensorsDir(dir)).map((e) => e.file)).toEqual([join(dir, "model.safetensors")]);
  });

  it("reads the shards named by model.safetensors.index.json, each tensor with its own file", async () => {
    const dir = await freshDir();
    await sharded(dir, { "model-00001-of-00002.safetensors": [tensor("a", "BF16", [4]), tensor("b", "BF16", [2])], "model-00002-of-00002.safetensors": [tensor("c", "BF16", [8])] });
    const entries = await readSafetensorsDir(dir);
    expect(entries.map((e) => [e.name, e.file])).toEqual([
      ["a", join(dir, "model-00001-of-00002.safetensors")],
      ["b", join(dir, "model-00001-of-00002.safetensors")],
      ["c", join(dir, "model-00002-of-00002.safetensors")],
    ]);
  });

  it("names a shard the index lists but the directory lacks", async () => {
    const dir = await freshDir();
    await sharded(dir, { "model-00001-of-00002.safetensors": [tensor("a", "F32", [1])], "model-00002-of-00002.safetensors": [tensor("b", "F32", [1])] });
    await rm(join(dir, "model-00002-of-00002.safetensors"));
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({
      code: "MODEL_FILE", path: join(dir, "model-00002-of-00002.safetensors"),
      message: `model-00002-of-00002.safetensors is listed in model.safetensors.index.json but does not exist in ${dir}; download every shard`,
    });
  });

  it("names an index that places a tensor in a shard lacking it, and shards outside the directory", async () => {
    const dir = await freshDir();
    await sharded(dir, { "s1.safetensors": [tensor("a", "F32", [1])], "s2.safetensors": [tensor("b", "F32", [1])] }, { a: "s1.safetensors", b: "s1.safetensors", x: "s2.safetensors" });
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: "s1.safetensors lacks tensor b, which model.safetensors.index.json places there; the shards and the index do not match" });
    await mkdir(join(dir, "sub"));
    await sharded(join(dir, "sub"), { "s.safetensors": [tensor("a", "F32", [1])] }, { a: "../s1.safetensors" });
    await expect(readSafetensorsDir(join(dir, "sub"))).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringContaining('names shard "../s1.safetensors" outside the model directory') });
  });

  it("names a tensor stored in two shards", async () => {
    const dir = await freshDir();
    await sharded(dir, { "s1.safetensors": [tensor("a", "F32", [1])], "s2.safetensors": [tensor("a", "F32", [1]), tensor("b", "F32", [1])] }, { a: "s1.safetensors", b: "s2.safetensors" });
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^s2.safetensors holds tensor a, which s1.safetensors holds too/) });
  });

  it("names an index without weight_map and a directory without safetensors", async () => {
    const dir = await freshDir();
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", path: dir, message: expect.stringMatching(/^no model.safetensors or model.safetensors.index.json in .*pytorch_model.bin/) });
    await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {} }));
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^model.safetensors.index.json has no weight_map/) });
  });

  it("names a truncated shard", async () => {
    const dir = await freshDir();
    await sharded(dir, { "s1.safetensors": [tensor("a", "F32", [16])] });
    const file = join(dir, "s1.safetensors");
    await truncate(file, (await stat(file)).size - 24);
    await expect(readSafetensorsDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^s1.safetensors: tensor a has data_offsets \[0, 64\] outside the data section of 40 bytes/) });
  });
});
