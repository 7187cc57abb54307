import { describe, expect, it } from "vitest";
import { architectureOf, hfConfigSchema, hfSizes, modelFromHfConfig, MODEL_TYPES, PlannerError } from "./index.js";

const llama31 = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 14336,
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  vocab_size: 128256,
  max_position_embeddings: 131072,
  rope_scaling: { rope_type: "llama3", factor: 8.0 },
  torch_dtype: "bfloat16",
  tie_word_embeddings: false,
};

describe("modelFromHfConfig", () => {
  it("reads a Llama-3.1 config", () => {
    const m = modelFromHfConfig(llama31);
    expect(m.shape).toEqual({
      layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128,
      intermediate: 14336, vocab: 128256, bytesPerWeight: 2, tiedEmbeddings: false,
    });
    expect(m.contextLimitTokens).toBe(131072);
  });

  it("reads tied embeddings, f32 weights and missing KV heads (plain multi-head)", () => {
    const m = modelFromHfConfig({
      ...llama31, model_type: "qwen2", num_key_value_heads: undefined, torch_dtype: "float32", tie_word_embeddings: true,
    });
    expect(m.shape).toMatchObject({ kvHeads: 32, bytesPerWeight: 4, tiedEmbeddings: true });
  });

  it("names what is wrong", () => {
    const wrong = (config: unknown) => {
      try {
        modelFromHfConfig(config);
      } catch (e) {
        return (e as PlannerError).message;
      }
      throw new Error("no error");
    };
    expect(wrong({ ...llama31, model_type: "gpt2" })).toMatch(/model_type "gpt2" is not supported; supported: llama, mistral, qwen2, yi/);
    expect(wrong({ ...llama31, hidden_size: undefined })).toMatch(/config.json: hidden_size is required/);
    expect(wrong({ ...llama31, torch_dtype: "int4" })).toMatch(/torch_dtype "int4" is not supported/);
  });
});

describe("the one config.json reader (the runtime's engineConfigFromHf extends it)", () => {
  it("derives the sizes a config leaves out as transformers does: KV heads = heads, head_dim = hidden / heads", () => {
    const minimal = { model_type: "llama", vocab_size: 1000, hidden_size: 250, num_hidden_layers: 2, num_attention_heads: 8, intermediate_size: 512 };
    expect(hfSizes(hfConfigSchema.parse(minimal))).toEqual({ layers: 2, hidden: 250, heads: 8, kvHeads: 8, headDim: 31, intermediate: 512, vocab: 1000, tiedEmbeddings: false });
    expect(hfSizes(hfConfigSchema.parse({ ...minimal, num_key_value_heads: null, head_dim: null }))).toMatchObject({ kvHeads: 8, headDim: 31 });
    expect(hfSizes(hfConfigSchema.parse({ ...minimal, num_key_value_heads: 2, head_dim: 64, tie_word_embeddings: true }))).toMatchObject({ kvHeads: 2, headDim: 64, tiedEmbeddings: true });
  });

  it("runs the Llama family: model_type in any case, Yi as Llama", () => {
    expect(Object.keys(MODEL_TYPES)).toEqual(["llama", "mistral", "qwen2", "yi"]);
    expect(["llama", "Yi", "MISTRAL", "qwen2"].map(architectureOf)).toEqual(["llama", "llama", "mistral", "qwen2"]);
    expect(architectureOf("gpt2")).toBeUndefined();
    expect(architectureOf("constructor")).toBeUndefined(); // not fooled by Object.prototype
    expect(modelFromHfConfig({ ...llama31, model_type: "Yi", num_key_value_heads: null }).shape).toMatchObject({ kvHeads: 32 });
  });
});
