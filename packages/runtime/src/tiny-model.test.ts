import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { readEngineConfig } from "./config.js";
import { readSafetensorsDir, readSafetensorsFile, type TensorEntry } from "./safetensors.js";
import { f32ToBf16Bits, f32ToF16Bits } from "./safetensors-writer.js";
import { writeTinyModel, writeTinyRetainingHeads } from "./tiny-model.js";
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
