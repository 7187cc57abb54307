import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readEngineConfig } from "./config.js";
import { readSafetensorsDir, readSafetensorsFile, type TensorEntry } from "./safetensors.js";
import { f32ToBf16Bits, f32ToF16Bits } from "./safetensors-writer.js";
import { readGgufFile } from "./gguf.js";
import { engineConfigFromGguf, ggufTensorName } from "./gguf-model.js";
import { decodeGgufTensorData } from "./gguf-writer.js";
import { permuteRowsForGguf, writeTinyGguf, writeTinyModel, writeTinyRetainingHeads } from "./tiny-model.js";
import { loadTokenizer } from "./tokenizer.js";
import { buildRetainingHeads, buildWeightSpec } from "./weights.js";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("tiny");


async function f32Values(entry: TensorEntry): Promise<Float32Array> {
  const bytes = (await readFile(entry.file)).subarray(entry.offset, entry.offset + entry.byteLength);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
async function u16Values(entry: TensorEntry): Promise<Uint16Array> {
  const bytes = (await readFile(entry.file)).subarray(entry.offset, entry.offset + entry.byteLength);
  return new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}
const mean = (v: Float32Array) => v.reduce((a, b) => a + b, 0) / v.length;
function std(v: Float32Array): number {
  const m = mean(v);
  return Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / v.length);
}

describe("writeTinyModel", () => {
  it("writes a Llama config with the documented defaults", async () => {
    const dir = await freshDir();
    const model = await writeTinyModel(dir);
    const config = JSON.parse(await readFile(join(dir, "config.json"), "utf8"));
    expect(config).toMatchObject({
      architectures: ["LlamaForCausalLM"], model_type: "llama", vocab_size: 512, hidden_size: 64, num_hidden_layers: 2,
      num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 128, rope_theta: 10000, rms_norm_eps: 1e-5,
      max_position_embeddings: 65536, rope_scaling: null, tie_word_embeddings: false, torch_dtype: "float32", hidden_act: "silu",
    });
    expect(await readEngineConfig(dir)).toEqual(model.config);
    expect((await readdir(dir)).sort()).toEqual(["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
  });

  it.each([
    { architecture: "llama", dtype: "bfloat16", shards: 1, tiedEmbeddings: false },
    { architecture: "qwen2", dtype: "float16", shards: 3, tiedEmbeddings: true },
    { architecture: "mistral", dtype: "float32", shards: 2, tiedEmbeddings: false },
  ] as const)("round-trips $architecture, $dtype, $shards shard(s), tied $tiedEmbeddings through the loaders", async (options) => {
    const dir = await freshDir();
    const model = await writeTinyModel(dir, { ...options, seed: freshSeed() });
    const config = await readEngineConfig(dir);
    expect(config).toEqual(model.config);
    expect(config).toMatchObject({ architecture: options.architecture, tiedEmbeddings: options.tiedEmbeddings, attentionBias: options.architecture === "qwen2" });
    const tensors = await readSafetensorsDir(dir);
    const spec = buildWeightSpec(config, tensors);
    expect(new Set(spec.map((t) => t.dtype))).toEqual(new Set([{ bfloat16: "BF16", float16: "F16", float32: "F32" }[options.dtype]]));
    expect(new Set(spec.map((t) => t.file)).size).toBe(options.shards);
    expect(model.weightFiles).toHaveLength(options.shards);
    expect(tensors.some((t) => t.name === "lm_head.weight")).toBe(!options.tiedEmbeddings);
    expect(tensors.some((t) => t.name.endsWith("q_proj.bias"))).toBe(options.architecture === "qwen2");
  });

  it("draws norms near 1 and matrices N(0, weightStd) from the seed", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: freshSeed(), weightStd: 0.05 });
    const spec = buildWeightSpec(await readEngineConfig(dir), await readSafetensorsDir(dir));
    const norm = await f32Values(spec.find((t) => t.name === "model.norm.weight")!);
    expect(mean(norm)).toBeCloseTo(1, 1);
    expect(std(norm)).toBeLessThan(0.05);
    const up = await f32Values(spec.find((t) => t.name === "model.layers.0.mlp.up_proj.weight")!);
    expect(Math.abs(mean(up))).toBeLessThan(0.005);
    expect(std(up)).toBeGreaterThan(0.045);
    expect(std(up)).toBeLessThan(0.055);
  });

  it("writes the same values in every dtype: bf16 and f16 are the f32 values rounded", async () => {
    const seed = freshSeed();
    const specOf = async (dtype: "float32" | "bfloat16" | "float16") => {
      const dir = await freshDir();
      await writeTinyModel(dir, { seed, dtype });
      return buildWeightSpec(await readEngineConfig(dir), await readSafetensorsDir(dir));
    };
    const [f32, bf16, f16] = await Promise.all([specOf("float32"), specOf("bfloat16"), specOf("float16")]);
    for (const k of [0, 5, f32.length - 1]) {
      const exact = await f32Values(f32[k]!);
      expect(await u16Values(bf16[k]!), `seed ${seed}`).toEqual(Uint16Array.from(exact, f32ToBf16Bits));
      expect(await u16Values(f16[k]!), `seed ${seed}`).toEqual(Uint16Array.from(exact, f32ToF16Bits));
    }
  });

  it("is deterministic in its seed", async () => {
    const seed = freshSeed();
    const [a, b, c] = [await freshDir(), await freshDir(), await freshDir()];
    await writeTinyModel(a, { seed });
    await writeTinyModel(b, { seed });
    await writeTinyModel(c, { seed: seed + 1 });
    const weights = (dir: string) => readFile(join(dir, "model.safetensors"));
    expect((await weights(a)).equals(await weights(b))).toBe(true);
    expect((await weights(a)).equals(await weights(c))).toBe(false);
  });

  it("writes Llama 3.1's rope scaling, explicit head_dim and other sizes on request", async () => {
    const dir = await freshDir();
    const model = await writeTinyModel(dir, { llama31: true, layers: 3, hidden: 48, heads: 6, kvHeads: 3, headDim: 16, intermediate: 96, vocab: 300, maxPositions: 1024 });
    expect(model.config).toMatchObject({
      ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      layers: 3, hidden: 48, heads: 6, kvHeads: 3, headDim: 16, intermediate: 96, vocab: 300, maxPositions: 1024,
    });
    expect(buildWeightSpec(model.config, await readSafetensorsDir(dir))).toHaveLength(1 + 3 * 9 + 2);
  });

  it("writes a tokenizer that round-trips text and a chat template that renders", async () => {
    const dir = await freshDir();
    const model = await writeTinyModel(dir);
    const tokenizer = await loadTokenizer(dir);
    const text = "Long context, 長い文脈, контекст 🧠\n\tend";
    expect(tokenizer.decode(tokenizer.encode(text, { addSpecialTokens: false }))).toBe(text);
    expect(tokenizer.maxTokenId).toBeLessThan(model.config.vocab);
    expect(tokenizer.renderChat([{ role: "user", content: "hi" }], { addGenerationPrompt: true })).toBe(
      "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
    );
    expect(model.config.eosTokenIds).toEqual([model.specialIds["<|end_of_text|>"], model.specialIds["<|eot_id|>"]]);
    expect(model.config.bosTokenId).toBe(model.specialIds["<|begin_of_text|>"]);
  });

  it("refuses a vocab that does not cover the tokenizer, and more shards than tensors", async () => {
    await expect(writeTinyModel(await freshDir(), { vocab: 100 })).rejects.toThrow("vocab must cover the tokenizer's 271 ids, got 100");
    await expect(writeTinyModel(await freshDir(), { layers: 1, shards: 20 })).rejects.toThrow("shards must be 1..12, got 20");
  });
});

describe("writeTinyRetainingHeads", () => {
  it("writes Locret heads that the loader reads with their R", async () => {
    const dir = await freshDir();
    const model = await writeTinyModel(dir);
    const file = join(dir, "retaining_heads.safetensors");
    await writeTinyRetainingHeads(file, model.config, { intermediate: 24, seed: freshSeed() });
    const heads = buildRetainingHeads(model.config, await readSafetensorsFile(file));
    expect(heads.intermediate).toBe(24);
    expect(heads.tensors[0]?.shape).toEqual([24, (4 + 2 * 2) * 16]);
  });
});

describe("writeTinyGguf", () => {
  /** The safetensors twin's tensors and the GGUF file's, by HF name, with the GGUF file's bytes. */
  async function twins(options: Parameters<typeof writeTinyGguf>[1] = {}) {
    const seed = freshSeed();
    const dir = await freshDir();
    const hf = await writeTinyModel(dir, { ...options, seed, dtype: "float32" } as Parameters<typeof writeTinyModel>[1]);
    const gguf = await writeTinyGguf(join(dir, "model.gguf"), { ...options, seed });
    const header = await readGgufFile(gguf.file);
    const bytes = await readFile(gguf.file);
    const spec = buildWeightSpec(hf.config, await readSafetensorsDir(dir));
    return { seed, hf, gguf, header, bytes, spec };
  }

  it.each([
    { architecture: "llama", tiedEmbeddings: false },
    { architecture: "qwen2", tiedEmbeddings: true },
    { architecture: "mistral", tiedEmbeddings: false },
  ] as const)("writes $architecture (tied $tiedEmbeddings) as llama.cpp would: metadata that maps back to the same config", async (options) => {
    const { header, gguf, hf, seed } = await twins(options);
    expect(gguf.config).toEqual(hf.config);
    expect(engineConfigFromGguf(header), `seed ${seed}`).toEqual(hf.config);
    const a = options.architecture;
    expect(header.metadata.get("general.architecture")).toBe(a);
    expect(Object.fromEntries([...header.metadataTypes].filter(([k]) => k.startsWith(`${a}.`)))).toEqual({
      [`${a}.vocab_size`]: "u32", [`${a}.context_length`]: "u32", [`${a}.embedding_length`]: "u32", [`${a}.block_count`]: "u32",
      [`${a}.feed_forward_length`]: "u32", [`${a}.attention.head_count`]: "u32", [`${a}.attention.head_count_kv`]: "u32",
      [`${a}.rope.dimension_count`]: "u32", [`${a}.rope.freq_base`]: "f32", [`${a}.attention.layer_norm_rms_epsilon`]: "f32",
    });
    expect(header.tensors.some((t) => t.name === "output.weight")).toBe(!options.tiedEmbeddings);
    expect(header.tensors.some((t) => t.name === "blk.0.attn_q.bias")).toBe(a === "qwen2");
  });

  it("writes the tokenizer as a GPT-2 byte-level BPE padded to the vocab, with its special tokens and chat template", async () => {
    const { header, hf } = await twins();
    const m = header.metadata;
    const tokens = m.get("tokenizer.ggml.tokens") as string[];
    const types = m.get("tokenizer.ggml.token_type") as number[];
    expect([m.get("tokenizer.ggml.model"), m.get("tokenizer.ggml.pre")]).toEqual(["gpt2", "gpt-2"]);
    expect(tokens).toHaveLength(512);
    expect(tokens.slice(31, 35)).toEqual(["ğ", "Ġ", "!", '"']); // bytes in GPT-2's alphabet: id = byte, "Ġ" the space
    expect(tokens[256]).toBe("Ġt");
    expect(tokens[hf.specialIds["<|eot_id|>"]]).toBe("<|eot_id|>");
    expect(tokens[400]).toBe("[PAD400]");
    expect([types[0], types[hf.specialIds["<|begin_of_text|>"]], types[400]]).toEqual([1, 3, 5]);
    expect((m.get("tokenizer.ggml.merges") as string[])[0]).toBe("Ġ t");
    expect(m.get("tokenizer.ggml.bos_token_id")).toBe(hf.specialIds["<|begin_of_text|>"]);
    expect(m.get("tokenizer.ggml.eos_token_id")).toBe(hf.specialIds["<|end_of_text|>"]);
    expect(m.get("tokenizer.ggml.eot_token_id")).toBe(hf.specialIds["<|eot_id|>"]);
    expect(m.get("tokenizer.ggml.add_bos_token")).toBe(true);
    expect(m.get("tokenizer.chat_template")).toContain("<|start_header_id|>");
    const plain = await readGgufFile((await writeTinyGguf(join(await freshDir(), "p.gguf"), { addBos: false, chatTemplate: false })).file);
    expect([plain.metadata.get("tokenizer.ggml.add_bos_token"), plain.metadata.has("tokenizer.ggml.bos_token_id"), plain.metadata.has("tokenizer.chat_template")]).toEqual([false, false, false]);
  });

  it("F32: the twin's values, with llama's q and k rows in llama.cpp's rotary order", async () => {
    const { header, bytes, spec, hf, seed } = await twins();
    const infos = new Map(header.tensors.map((t) => [t.name, t]));
    for (const entry of spec) {
      const info = infos.get(ggufTensorName(entry.name)!)!;
      expect(info.dims).toEqual([...entry.shape].reverse());
      expect(info.typeName).toBe("F32");
      const got = decodeGgufTensorData(bytes.subarray(info.offset, info.offset + info.byteLength), "F32", info.byteLength / 4);
      const want = await f32Values(entry);
      const heads = entry.name.includes("q_proj") ? hf.config.heads : entry.name.includes("k_proj") ? hf.config.kvHeads : 0;
      expect(got, `${entry.name}, seed ${seed}`).toEqual(heads ? permuteRowsForGguf(want, entry.shape[0]!, heads) : want);
    }
  });

  it("permutes each head's rows: row i of the first half goes to 2i, row i of the second half to 2i+1", () => {
    const rows = Float32Array.from({ length: 8 }, (_, i) => i); // 2 heads of 4 rows, 1 column
    expect([...permuteRowsForGguf(rows, 8, 2)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
    const wide = Float32Array.from({ length: 8 }, (_, i) => i); // 1 head of 4 rows, 2 columns
    expect([...permuteRowsForGguf(wide, 4, 1)]).toEqual([0, 1, 4, 5, 2, 3, 6, 7]);
  });

  it("Q8_0: matrices quantized (within a step), norms and biases kept F32", async () => {
    const { header, bytes, spec } = await twins({ type: "Q8_0", architecture: "qwen2" });
    const infos = new Map(header.tensors.map((t) => [t.name, t]));
    expect(header.metadata.get("general.quantization_version")).toBe(2);
    for (const entry of spec) {
      const info = infos.get(ggufTensorName(entry.name)!)!;
      const want = await f32Values(entry);
      expect(info.typeName).toBe(entry.shape.length === 1 ? "F32" : "Q8_0");
      const got = decodeGgufTensorData(bytes.subarray(info.offset, info.offset + info.byteLength), info.typeName as "F32" | "Q8_0", want.length);
      const amax = want.reduce((a, b) => Math.max(a, Math.abs(b)), 0);
      for (let i = 0; i < want.length; i += 7) expect(Math.abs(got[i]! - want[i]!)).toBeLessThanOrEqual(amax / 127);
    }
  });

  it("Llama 3.1's scaling becomes rope_freqs.weight (llama.cpp's per-dimension factors), which the loader refuses for now", async () => {
    const { header } = await twins({ llama31: true });
    const info = header.tensors.find((t) => t.name === "rope_freqs.weight")!;
    expect(info).toMatchObject({ dims: [8], typeName: "F32" });
    const bytes = await readFile(header.file);
    const factors = decodeGgufTensorData(bytes.subarray(info.offset, info.offset + 32), "F32", 8);
    expect(factors[0]).toBe(1); // high frequencies: unscaled
    expect(factors[7]).toBe(8); // low frequencies: the factor
    expect(() => engineConfigFromGguf(header)).toThrow(expect.objectContaining({ code: "UNSUPPORTED_ARCHITECTURE", path: "rope_freqs.weight" }));
  });

  it("is deterministic in its seed", async () => {
    const dir = await freshDir();
    const seed = freshSeed();
    await writeTinyGguf(join(dir, "a.gguf"), { seed, type: "Q4_0" });
    await writeTinyGguf(join(dir, "b.gguf"), { seed, type: "Q4_0" });
    await writeTinyGguf(join(dir, "c.gguf"), { seed: seed + 1, type: "Q4_0" });
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((n) => readFile(join(dir, `${n}.gguf`))));
    expect(a!.equals(b!)).toBe(true);
    expect(a!.equals(c!)).toBe(false);
  });
});
