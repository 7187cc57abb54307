import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { modelFromHfConfig } from "@apb/planner";
import { describe, expect, it } from "vitest";
import { engineConfigFromHf, readEngineConfig } from "./config.js";
import { tempDirs } from "./temp-dirs.test-helper.js";

// Each test gets its own directory; all are removed when the file's tests end.
const freshDir = tempDirs("config");

// Trimmed from meta-llama/Llama-3.1-8B-Instruct's config.json.
const llama31 = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  hidden_act: "silu",
  max_position_embeddings: 131072,
  rms_norm_eps: 1e-5,
  rope_theta: 500000.0,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: "llama3" },
  attention_bias: false,
  mlp_bias: false,
  tie_word_embeddings: false,
  torch_dtype: "bfloat16",
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
};

// Trimmed from Qwen/Qwen2.5-7B-Instruct's config.json.
const qwen25 = {
  model_type: "qwen2",
  hidden_size: 3584,
  intermediate_size: 18944,
  num_attention_heads: 28,
  num_hidden_layers: 28,
  num_key_value_heads: 4,
  vocab_size: 152064,
  max_position_embeddings: 32768,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  rope_scaling: null,
  sliding_window: 131072,
  use_sliding_window: false,
  tie_word_embeddings: false,
  bos_token_id: 151643,
  eos_token_id: 151645,
};

function failure(config: unknown): unknown {
  try {
    engineConfigFromHf(config);
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("engineConfigFromHf", () => {
  it("reads Llama 3.1 with its llama3 rope scaling", () => {
    expect(engineConfigFromHf(llama31)).toEqual({
      architecture: "llama", vocab: 128256, hidden: 4096, layers: 32, heads: 32, kvHeads: 8, headDim: 128,
      intermediate: 14336, rmsNormEps: 1e-5, ropeTheta: 500000,
      ropeScaling: { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
      tiedEmbeddings: false, attentionBias: false, maxPositions: 131072, bosTokenId: 128000, eosTokenIds: [128001, 128008, 128009],
    });
  });

  it("reads Qwen2.5 with q/k/v biases by default and its (disabled) sliding window ignored", () => {
    const c = engineConfigFromHf(qwen25);
    expect(c).toMatchObject({ architecture: "qwen2", attentionBias: true, kvHeads: 4, headDim: 128, ropeScaling: null, eosTokenIds: [151645] });
  });

  it("applies transformers' defaults to fields left out", () => {
    const minimal = { model_type: "llama", vocab_size: 1000, hidden_size: 256, num_hidden_layers: 2, num_attention_heads: 8, intermediate_size: 512 };
    expect(engineConfigFromHf(minimal)).toEqual({
      architecture: "llama", vocab: 1000, hidden: 256, layers: 2, heads: 8, kvHeads: 8, headDim: 32, intermediate: 512,
      rmsNormEps: 1e-6, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, attentionBias: false,
      maxPositions: 2048, bosTokenId: 1, eosTokenIds: [2],
    });
    expect(engineConfigFromHf({ ...minimal, model_type: "qwen2" })).toMatchObject({ maxPositions: 32768, bosTokenId: null, eosTokenIds: [] });
    expect(engineConfigFromHf({ ...minimal, model_type: "mistral" })).toMatchObject({ maxPositions: 131072, attentionBias: false });
  });

  it("takes head_dim when given (it need not be hidden/heads) and null as absent", () => {
    expect(engineConfigFromHf({ ...llama31, hidden_size: 5120, head_dim: 128 }).headDim).toBe(128);
    expect(engineConfigFromHf({ ...llama31, head_dim: null, num_key_value_heads: null })).toMatchObject({ headDim: 128, kvHeads: 32 });
  });

  it("runs Yi as Llama and tied embeddings as tied", () => {
    expect(engineConfigFromHf({ ...llama31, model_type: "yi", tie_word_embeddings: true })).toMatchObject({ architecture: "llama", tiedEmbeddings: true });
    expect(engineConfigFromHf({ ...llama31, model_type: "Yi" }).architecture).toBe("llama");
  });

  it("reads the sizes the planner reads, through the planner's reader (one reader of config.json)", () => {
    for (const config of [llama31, qwen25, { ...llama31, num_key_value_heads: null, head_dim: null, tie_word_embeddings: true }]) {
      const { bytesPerWeight: _, ...sizes } = modelFromHfConfig(config).shape;
      const c = engineConfigFromHf(config);
      expect({ layers: c.layers, hidden: c.hidden, heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, intermediate: c.intermediate, vocab: c.vocab, tiedEmbeddings: c.tiedEmbeddings }).toEqual(sizes);
    }
    expect(failure({ ...llama31, model_type: "constructor" })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "model_type" });
  });

  it("accepts rope_scaling under the old key `type`, `default` as none, and null or absence as none", () => {
    const { rope_type: _, ...oldStyle } = { ...llama31.rope_scaling, type: "llama3" };
    expect(engineConfigFromHf({ ...llama31, rope_scaling: oldStyle }).ropeScaling?.type).toBe("llama3");
    expect(engineConfigFromHf({ ...llama31, rope_scaling: { rope_type: "default" } }).ropeScaling).toBeNull();
    expect(engineConfigFromHf({ ...llama31, rope_scaling: null }).ropeScaling).toBeNull();
    expect(engineConfigFromHf({ ...llama31, rope_scaling: undefined }).ropeScaling).toBeNull();
  });

  it("reads transformers 5's rope_parameters (theta and scaling together) as the old keys", () => {
    const { rope_theta, rope_scaling, ...rest } = llama31;
    const v5 = engineConfigFromHf({ ...rest, rope_parameters: { ...rope_scaling, rope_theta } });
    const v4 = engineConfigFromHf(llama31);
    expect(v5.ropeTheta).toBe(v4.ropeTheta);
    expect(v5.ropeScaling).toEqual(v4.ropeScaling);
    const plain = engineConfigFromHf({ ...rest, rope_parameters: { rope_type: "default", rope_theta: 1e6 } });
    expect(plain.ropeTheta).toBe(1e6);
    expect(plain.ropeScaling).toBeNull();
    expect(failure({ ...rest, rope_parameters: { rope_type: "yarn", rope_theta: 1e6, factor: 4 } })).toMatchObject({ path: "rope_parameters.rope_type" });
    const { factor: _, ...noFactor } = rope_scaling;
    expect(failure({ ...rest, rope_parameters: { ...noFactor, rope_theta } })).toMatchObject({ code: "MISSING_FIELD", path: "rope_parameters.factor" });
  });

  it.each(["linear", "dynamic", "yarn"])("rejects rope_scaling %s, naming it", (kind) => {
    expect(failure({ ...llama31, rope_scaling: { rope_type: kind, factor: 4 } })).toMatchObject({
      code: "UNSUPPORTED_ARCHITECTURE",
      path: "rope_scaling.rope_type",
      message: expect.stringContaining(`rope_scaling rope_type "${kind}" is not supported`),
    });
    expect(failure({ ...llama31, rope_scaling: { type: kind, factor: 4 } })).toMatchObject({ path: "rope_scaling.type" });
  });

  it("names a llama3 rope_scaling field that is missing", () => {
    const { factor: _, ...noFactor } = llama31.rope_scaling;
    expect(failure({ ...llama31, rope_scaling: noFactor })).toMatchObject({
      code: "MISSING_FIELD", path: "rope_scaling.factor", message: expect.stringMatching(/^config.json: rope_scaling.factor is required/),
    });
  });

  it.each(["gpt2", "mixtral", "gemma2"])("rejects model_type %s, listing the supported ones", (modelType) => {
    expect(failure({ ...llama31, model_type: modelType })).toMatchObject({
      code: "UNSUPPORTED_ARCHITECTURE",
      path: "model_type",
      message: expect.stringContaining(`model_type "${modelType}" is not supported; supported: llama, mistral, qwen2, yi`),
    });
  });

  it("rejects features the engine's kernels lack: sliding windows, other activations, Llama biases", () => {
    expect(failure({ ...llama31, model_type: "mistral", sliding_window: 4096 })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "sliding_window", message: expect.stringContaining("sliding_window 4096") });
    expect(failure({ ...qwen25, use_sliding_window: true })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "sliding_window" });
    expect(engineConfigFromHf({ ...llama31, model_type: "mistral", sliding_window: null }).architecture).toBe("mistral");
    expect(failure({ ...llama31, hidden_act: "gelu" })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", message: expect.stringContaining('hidden_act "gelu"') });
    expect(failure({ ...llama31, attention_bias: true })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "attention_bias" });
    expect(failure({ ...llama31, mlp_bias: true })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "mlp_bias" });
  });

  it("names missing, mistyped and inconsistent fields", () => {
    expect(failure({ ...llama31, hidden_size: undefined })).toMatchObject({ code: "MISSING_FIELD", path: "hidden_size", message: expect.stringMatching(/^config.json: hidden_size is required/) });
    expect(failure({ ...llama31, hidden_size: "4096" })).toMatchObject({ code: "WRONG_TYPE", path: "hidden_size", message: 'config.json: hidden_size must be a number, found "4096"' });
    expect(failure({ ...llama31, num_key_value_heads: 5 })).toMatchObject({
      code: "OUT_OF_RANGE", path: "num_key_value_heads", message: "config.json: num_attention_heads (32) must be a multiple of num_key_value_heads (5)",
    });
    expect(failure({ ...llama31, eos_token_id: "</s>" })).toMatchObject({ code: "WRONG_TYPE", path: "eos_token_id", message: 'config.json: eos_token_id must be a token id, an array of token ids or null, found "</s>"' });
    expect(failure([1, 2])).toMatchObject({ code: "WRONG_TYPE", path: "" });
  });

  it("takes eos ids as a number or an array, generation_config's first, without repeats", () => {
    expect(engineConfigFromHf({ ...llama31, eos_token_id: 7 }).eosTokenIds).toEqual([7]);
    expect(engineConfigFromHf({ ...llama31, eos_token_id: 128009 }, { eos_token_id: [128001, 128009] }).eosTokenIds).toEqual([128001, 128009]);
    expect(engineConfigFromHf({ ...llama31, eos_token_id: [1, 2] }, { eos_token_id: 3 }).eosTokenIds).toEqual([3, 1, 2]);
    expect(engineConfigFromHf({ ...llama31, bos_token_id: undefined }, { bos_token_id: 5 }).bosTokenId).toBe(5);
    expect(engineConfigFromHf({ ...llama31, bos_token_id: null }).bosTokenId).toBeNull();
  });
});

describe("readEngineConfig", () => {

  it("reads config.json and generation_config.json from a directory", async () => {
    const dir = await freshDir();
    await writeFile(join(dir, "config.json"), JSON.stringify({ ...llama31, eos_token_id: 128001 }));
    await writeFile(join(dir, "generation_config.json"), JSON.stringify({ eos_token_id: [128001, 128009] }));
    expect((await readEngineConfig(dir)).eosTokenIds).toEqual([128001, 128009]);
  });

  it("names a missing config.json and the directory, and corrupt JSON by file", async () => {
    const dir = await freshDir();
    await expect(readEngineConfig(dir)).rejects.toMatchObject({ code: "MODEL_FILE", message: expect.stringContaining(`config.json is missing from ${dir}`) });
    await writeFile(join(dir, "config.json"), "{ model_type: llama");
    await expect(readEngineConfig(dir)).rejects.toMatchObject({ code: "INVALID_JSON", path: join(dir, "config.json"), message: expect.stringMatching(/^config.json is not valid JSON/) });
    await writeFile(join(dir, "config.json"), JSON.stringify(llama31));
    await writeFile(join(dir, "generation_config.json"), "not json");
    await expect(readEngineConfig(dir)).rejects.toMatchObject({ code: "INVALID_JSON", message: expect.stringMatching(/^generation_config.json is not valid JSON/) });
  });
});
