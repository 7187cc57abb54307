import { readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { modelFingerprint, openModelDir, splitPrompt } from "./index.js";
import {
  encodeGguf,
  writeGguf,
  writeTinyGguf,
  writeTinyModel,
  writeTinyRetainingHeads,
  type TinyGgufOptions,
  type TinyModelOptions,
} from "./testing.js";
import { ggufToWrite } from "./gguf-writer.js";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("dir");


async function tinyModel(options: TinyModelOptions = {}) {
  const dir = await freshDir();
  return writeTinyModel(dir, { seed: freshSeed(), ...options });
}

type Header = Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;

/** Rewrites a safetensors file's header JSON, keeping its data section. */
async function editHeader(file: string, edit: (header: Header) => void): Promise<void> {
  const bytes = await readFile(file);
  const headerByteLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerByteLength).toString("utf8")) as Header;
  edit(header);
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  await writeFile(file, Buffer.concat([length, json, bytes.subarray(8 + headerByteLength)]));
}

async function editJson(file: string, edit: (value: Record<string, unknown>) => void): Promise<void> {
  const value = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  edit(value);
  await writeFile(file, JSON.stringify(value));
}

describe("openModelDir", () => {
  it("opens a model: config, the checked tensor spec, and the tokenizer", async () => {
    const model = await tinyModel();
    const opened = await openModelDir(model.dir);
    expect(opened.path).toBe(model.dir);
    expect(opened.format).toBe("hf");
    expect(opened.config).toEqual(model.config);
    expect(opened.tensors.map((t) => t.name).slice(0, 3)).toEqual(["model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight"]);
    expect(opened.tensors.at(-1)).toMatchObject({ name: "lm_head.weight", shape: [512, 64], dtype: "F32", file: join(model.dir, "model.safetensors"), byteLength: 512 * 64 * 4 });
    expect(opened.retaining).toBeUndefined();
    const parts = splitPrompt(opened.tokenizer, { document: "doc", query: "q?" });
    expect(parts.prefix[0]).toBe(model.specialIds["<|begin_of_text|>"]);
  });

  it("opens sharded checkpoints, each tensor pointing into its shard", async () => {
    const model = await tinyModel({ shards: 4 });
    const opened = await openModelDir(model.dir);
    expect(new Set(opened.tensors.map((t) => t.file))).toEqual(new Set(model.weightFiles));
    expect(model.weightFiles.map((f) => f.slice(model.dir.length + 1))).toEqual([1, 2, 3, 4].map((i) => `model-0000${i}-of-00004.safetensors`));
  });

  it.each([["bfloat16", "BF16", 2], ["float16", "F16", 2], ["float32", "F32", 4]] as const)("opens %s weights as %s", async (dtype, tensorDtype, elementBytes) => {
    const opened = await openModelDir((await tinyModel({ dtype })).dir);
    expect(opened.tensors.every((t) => t.dtype === tensorDtype && t.byteLength === t.shape.reduce((a, b) => a * b, 1) * elementBytes)).toBe(true);
  });

  it("opens tied embeddings without lm_head", async () => {
    const opened = await openModelDir((await tinyModel({ tiedEmbeddings: true })).dir);
    expect(opened.config.tiedEmbeddings).toBe(true);
    expect(opened.tensors.map((t) => t.name)).not.toContain("lm_head.weight");
    expect(opened.tensors.at(-1)?.name).toBe("model.norm.weight");
  });

  it("opens Qwen2 with its q/k/v biases", async () => {
    const opened = await openModelDir((await tinyModel({ architecture: "qwen2" })).dir);
    expect(opened.config).toMatchObject({ architecture: "qwen2", attentionBias: true });
    expect(opened.tensors.filter((t) => t.name.startsWith("model.layers.0.") && t.name.endsWith(".bias")).map((t) => [t.name, t.shape])).toEqual([
      ["model.layers.0.self_attn.q_proj.bias", [64]],
      ["model.layers.0.self_attn.k_proj.bias", [32]],
      ["model.layers.0.self_attn.v_proj.bias", [32]],
    ]);
  });

  it("opens Locret retaining heads from a separate file", async () => {
    const model = await tinyModel();
    const file = join(await freshDir(), "heads.safetensors");
    await writeTinyRetainingHeads(file, model.config, { intermediate: 8, seed: freshSeed() });
    const opened = await openModelDir(model.dir, { retainingHeads: file });
    expect(opened.retaining?.intermediate).toBe(8);
    expect(opened.retaining?.tensors).toHaveLength(model.config.layers * 2);
    expect(opened.retaining?.tensors.every((t) => t.file === file)).toBe(true);
  });
});

describe("openModelDir errors", () => {
  it("corrupt header JSON: INVALID_JSON naming the file", async () => {
    const model = await tinyModel();
    const file = join(model.dir, "model.safetensors");
    const bytes = await readFile(file);
    bytes[8] = "#".charCodeAt(0);
    await writeFile(file, bytes);
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "INVALID_JSON", path: file, message: expect.stringMatching(/^model.safetensors has a corrupt header: its \d+ bytes of JSON do not parse/) });
  });

  it("truncated file: MODEL_FILE naming the file, what the header says and what the file has", async () => {
    const model = await tinyModel({ shards: 2 });
    const file = model.weightFiles[1]!;
    await truncate(file, 20);
    await expect(openModelDir(model.dir)).rejects.toMatchObject({
      code: "MODEL_FILE", path: file, message: expect.stringMatching(/^model-00002-of-00002.safetensors is truncated: header says \d+ bytes of JSON but the file has 12/),
    });
  });

  it("tensor data out of bounds: MODEL_FILE naming the tensor, its offsets and the data size", async () => {
    const model = await tinyModel();
    const file = join(model.dir, "model.safetensors");
    await truncate(file, (await stat(file)).size - 4);
    await expect(openModelDir(model.dir)).rejects.toMatchObject({
      code: "MODEL_FILE", path: "lm_head.weight",
      message: expect.stringMatching(/^model.safetensors: tensor lm_head.weight has data_offsets \[\d+, (\d+)\] outside the data section of \d+ bytes/),
    });
  });

  it("a missing tensor: TENSOR_MISSING naming the tensor, its shape and the file", async () => {
    const model = await tinyModel();
    await editHeader(join(model.dir, "model.safetensors"), (h) => delete h["model.layers.1.mlp.down_proj.weight"]);
    await expect(openModelDir(model.dir)).rejects.toMatchObject({
      code: "TENSOR_MISSING", path: "model.layers.1.mlp.down_proj.weight",
      message: expect.stringMatching(/^model.layers.1.mlp.down_proj.weight \(expected shape \[64, 128\]\) is missing from model.safetensors; /),
    });
  });

  it("a wrong shape: TENSOR_SHAPE with expected and found", async () => {
    const model = await tinyModel();
    await editHeader(join(model.dir, "model.safetensors"), (h) => (h["model.layers.0.self_attn.k_proj.weight"]!.shape = [64, 32]));
    await expect(openModelDir(model.dir)).rejects.toMatchObject({
      code: "TENSOR_SHAPE", path: "model.layers.0.self_attn.k_proj.weight",
      message: "model.layers.0.self_attn.k_proj.weight in model.safetensors has shape [64, 32] but config.json implies [32, 64] ([kvHeads*headDim, hidden]); the weights and config.json do not belong together",
    });
  });

  it("a config that does not match the weights: TENSOR_SHAPE on the first tensor it changes", async () => {
    const model = await tinyModel();
    await editJson(join(model.dir, "config.json"), (c) => (c.num_key_value_heads = 4));
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "TENSOR_SHAPE", message: expect.stringContaining("has shape [32, 64] but config.json implies [64, 64]") });
  });

  it("an unsupported architecture: UNSUPPORTED_ARCHITECTURE naming the supported ones", async () => {
    const model = await tinyModel();
    await editJson(join(model.dir, "config.json"), (c) => (c.model_type = "mixtral"));
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "model_type", message: expect.stringContaining('model_type "mixtral" is not supported; supported: llama, mistral, qwen2, yi') });
  });

  it("a missing tokenizer: TOKENIZER naming the directory", async () => {
    const model = await tinyModel();
    await rm(join(model.dir, "tokenizer.json"));
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "TOKENIZER", message: expect.stringContaining(`tokenizer.json is missing from ${model.dir}`) });
  });

  it("a tokenizer with ids past vocab_size: TOKENIZER naming both", async () => {
    const model = await tinyModel({ vocab: 271 });
    await editJson(join(model.dir, "config.json"), (c) => (c.vocab_size = 270));
    await editHeader(join(model.dir, "model.safetensors"), (h) => {
      for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) h[name]!.shape = [270, 64];
      for (const name of ["model.embed_tokens.weight", "lm_head.weight"]) h[name]!.data_offsets[1] -= 64 * 4;
    });
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "TOKENIZER", message: "tokenizer.json has token ids up to 270 but config.json's vocab_size is 270; the tokenizer belongs to another model" });
  });

  it("a missing directory, a file in its place, a missing config.json, missing weights", async () => {
    const dir = await freshDir();
    await expect(openModelDir(join(dir, "nope"))).rejects.toMatchObject({
      code: "MODEL_FILE",
      message: `model directory or .gguf file ${join(dir, "nope")} does not exist`,
    });
    await writeFile(join(dir, "file"), "x");
    await expect(openModelDir(join(dir, "file"))).rejects.toMatchObject({
      code: "MODEL_FILE",
      path: join(dir, "file"),
      message: `${join(dir, "file")} is neither a directory nor a GGUF file; pass a Hugging Face model directory (with config.json) or a .gguf file`,
    });
    await expect(openModelDir(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^config.json is missing from/) });
    const model = await tinyModel();
    await rm(join(model.dir, "model.safetensors"));
    await expect(openModelDir(model.dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringMatching(/^no model.safetensors or model.safetensors.index.json in /) });
  });

  it("retaining heads for another model: TENSOR_SHAPE naming the file", async () => {
    const model = await tinyModel();
    const other = await tinyModel({ heads: 8, kvHeads: 4, hidden: 128 });
    const file = join(model.dir, "heads.safetensors");
    await writeTinyRetainingHeads(file, other.config);
    await expect(openModelDir(model.dir, { retainingHeads: file })).rejects.toMatchObject({
      code: "TENSOR_SHAPE", message: expect.stringMatching(/^model.layers.0.self_attn.fc1.weight in heads.safetensors has shape \[16, 256\] but .* implies \[16, 128\]/),
    });
  });
});

describe("openModelDir on a GGUF file", () => {
  /** A tiny model and its GGUF twin (same seed): the directory and the file. */
  async function twins(options: TinyGgufOptions = {}) {
    const seed = freshSeed();
    const dir = await freshDir();
    const hf = await writeTinyModel(dir, { ...options, seed });
    const gguf = await writeTinyGguf(join(dir, "model.gguf"), { ...options, seed });
    return { seed, dir, hf, gguf };
  }

  it("opens it like its Hugging Face twin: same config, same tensors by name and shape, the file's header", async () => {
    const { hf, gguf, seed } = await twins();
    const [fromDir, fromFile] = [await openModelDir(hf.dir), await openModelDir(gguf.file)];
    expect(fromFile).toMatchObject({ path: gguf.file, format: "gguf" });
    expect(fromDir.format).toBe("hf");
    expect(fromFile.config, `seed ${seed}`).toEqual(fromDir.config);
    expect(fromFile.tensors.map((t) => [t.name, t.shape, t.dtype])).toEqual(fromDir.tensors.map((t) => [t.name, t.shape, t.dtype]));
    expect(fromFile.tensors.every((t) => t.file === gguf.file)).toBe(true);
    expect(fromFile.tensors.filter((t) => t.permuteHeads !== undefined).map((t) => [t.name, t.permuteHeads])).toEqual([
      ["model.layers.0.self_attn.q_proj.weight", 4],
      ["model.layers.0.self_attn.k_proj.weight", 2],
      ["model.layers.1.self_attn.q_proj.weight", 4],
      ["model.layers.1.self_attn.k_proj.weight", 2],
    ]);
    expect(fromFile.gguf?.tensors).toHaveLength(fromDir.tensors.length);
    expect(fromDir.gguf).toBeUndefined();
  });

  it("its tokenizer (from the file's metadata) agrees with the twin's tokenizer.json", async () => {
    const { hf, gguf } = await twins({ architecture: "qwen2" });
    const [a, b] = [(await openModelDir(hf.dir)).tokenizer, (await openModelDir(gguf.file)).tokenizer];
    const text = "The theory, 長い文脈 and <|eot_id|> then\n\n  spaces 123";
    expect(b.encode(text)).toEqual(a.encode(text));
    expect(b.decode(a.encode(text))).toBe(a.decode(a.encode(text)));
    expect(b.specialPrefixIds).toEqual(a.specialPrefixIds);
    expect(b.maxTokenId).toBe(511);
    const chat = [{ role: "user", content: "hi there" }];
    expect(b.renderChat(chat, { addGenerationPrompt: true })).toBe(a.renderChat(chat, { addGenerationPrompt: true }));
    expect(splitPrompt(b, { document: "a doc", query: "q?" })).toEqual(splitPrompt(a, { document: "a doc", query: "q?" }));
  });

  it("a .gguf beside a model directory: the file is opened, wherever it is", async () => {
    const { gguf } = await twins({ type: "Q8_0" });
    const opened = await openModelDir(gguf.file);
    expect(new Set(opened.tensors.map((t) => t.dtype))).toEqual(new Set(["Q8_0", "F32"]));
  });

  it("takes Locret retaining heads (safetensors) for a GGUF model", async () => {
    const { gguf, dir } = await twins();
    const file = join(dir, "heads.safetensors");
    await writeTinyRetainingHeads(file, gguf.config, { intermediate: 8, seed: freshSeed() });
    const opened = await openModelDir(gguf.file, { retainingHeads: file });
    expect(opened.retaining?.intermediate).toBe(8);
  });

  it("checks the tokenizer's ids against the file's vocabulary", async () => {
    const { gguf } = await twins({ vocab: 271 });
    const spec = await ggufToWrite(gguf.file);
    const vocab = spec.metadata.find((e) => e.key === "llama.vocab_size")!;
    vocab.value = 270;
    for (const t of spec.tensors) {
      if ((t.name === "token_embd.weight" || t.name === "output.weight") && "bytes" in t) {
        t.dims = [64, 270];
        t.bytes = t.bytes.subarray(0, 270 * 64 * 4);
      }
    }
    await writeGguf(gguf.file, spec);
    await expect(openModelDir(gguf.file)).rejects.toMatchObject({
      code: "TOKENIZER",
      message: "model.gguf's tokenizer (tokenizer.ggml.tokens) has token ids up to 270 but its vocabulary (token_embd.weight) is 270; the tokenizer belongs to another model",
    });
  });

  it("reports a corrupt file, an unsupported architecture and a missing tensor with the file's name", async () => {
    const { gguf } = await twins();
    const spec = await ggufToWrite(gguf.file);
    await writeFile(gguf.file, encodeGguf(spec).subarray(0, 100));
    await expect(openModelDir(gguf.file)).rejects.toMatchObject({ code: "MODEL_FILE", path: gguf.file, message: expect.stringMatching(/^model.gguf is truncated/) });
    await writeGguf(gguf.file, { ...spec, metadata: spec.metadata.map((e) => (e.key === "general.architecture" ? { ...e, value: "phi3" } : e)) });
    await expect(openModelDir(gguf.file)).rejects.toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", message: expect.stringContaining('general.architecture "phi3" is not supported') });
    await writeGguf(gguf.file, { ...spec, tensors: spec.tensors.filter((t) => t.name !== "blk.1.attn_v.weight") });
    await expect(openModelDir(gguf.file)).rejects.toMatchObject({ code: "TENSOR_MISSING", path: "model.layers.1.self_attn.v_proj.weight", message: expect.stringContaining("blk.1.attn_v.weight (model.layers.1.self_attn.v_proj.weight)") });
  });

  it("fingerprints a GGUF model by its header and samples of its data", async () => {
    const { gguf, dir, seed } = await twins();
    const copy = join(await freshDir(), "copy.gguf");
    await writeFile(copy, await readFile(gguf.file));
    const other = await writeTinyGguf(join(dir, "other.gguf"), { seed: seed + 1 });
    const spec = await ggufToWrite(gguf.file);
    const templated = join(dir, "templated.gguf");
    await writeGguf(templated, { ...spec, metadata: spec.metadata.map((e) => (e.key === "tokenizer.chat_template" ? { ...e, value: `${String(e.value)} ` } : e)) });
    const [a, b, c, d] = await Promise.all([gguf.file, copy, other.file, templated].map(async (f) => modelFingerprint(await openModelDir(f))));
    expect(a).toMatch(/^sha256:[0-9a-f]{32}$/);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
    expect(d).not.toBe(a);
    expect(modelFingerprint(await openModelDir(dir))).not.toBe(a);
  });
});
