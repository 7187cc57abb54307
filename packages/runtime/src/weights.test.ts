import { describe, expect, it } from "vitest";
import type { EngineConfig } from "./config.js";
import { DTYPE_BYTES, type TensorEntry } from "./safetensors.js";
import { buildRetainingHeads, buildWeightSpec, expectedRetainingTensors, expectedTensors } from "./weights.js";

const config: EngineConfig = {
  architecture: "llama", vocab: 100, hidden: 32, layers: 2, heads: 4, kvHeads: 2, headDim: 8, intermediate: 48,
  rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: null, tiedEmbeddings: false, attentionBias: false,
  maxPositions: 4096, bosTokenId: 1, eosTokenIds: [2],
};

/** Entries as a checkpoint would list them (offsets are irrelevant to these checks). */
function entries(list: ReadonlyArray<{ name: string; shape: number[] }>, file = "/models/x/model.safetensors"): TensorEntry[] {
  let offset = 8;
  return list.map(({ name, shape }) => {
    const byteLength = shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES.BF16;
    const entry: TensorEntry = { name, file, dtype: "BF16", shape, offset, byteLength };
    offset += byteLength;
    return entry;
  });
}

function failure(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("expectedTensors", () => {
  it("lists the Llama tensor set in the engine's order, [out, in] shapes", () => {
    expect(expectedTensors(config).map((t) => `${t.name} [${t.shape.join(", ")}]`)).toEqual([
      "model.embed_tokens.weight [100, 32]",
      ...[0, 1].flatMap((i) => [
        `model.layers.${i}.input_layernorm.weight [32]`,
        `model.layers.${i}.self_attn.q_proj.weight [32, 32]`,
        `model.layers.${i}.self_attn.k_proj.weight [16, 32]`,
        `model.layers.${i}.self_attn.v_proj.weight [16, 32]`,
        `model.layers.${i}.self_attn.o_proj.weight [32, 32]`,
        `model.layers.${i}.post_attention_layernorm.weight [32]`,
        `model.layers.${i}.mlp.gate_proj.weight [48, 32]`,
        `model.layers.${i}.mlp.up_proj.weight [48, 32]`,
        `model.layers.${i}.mlp.down_proj.weight [32, 48]`,
      ]),
      "model.norm.weight [32]",
      "lm_head.weight [100, 32]",
    ]);
  });

  it("adds q/k/v biases after their weights when attentionBias (Qwen2), and drops lm_head when tied", () => {
    const names = expectedTensors({ ...config, attentionBias: true, tiedEmbeddings: true, layers: 1 }).map((t) => `${t.name} [${t.shape.join(", ")}]`);
    expect(names.slice(2, 9)).toEqual([
      "model.layers.0.self_attn.q_proj.weight [32, 32]",
      "model.layers.0.self_attn.q_proj.bias [32]",
      "model.layers.0.self_attn.k_proj.weight [16, 32]",
      "model.layers.0.self_attn.k_proj.bias [16]",
      "model.layers.0.self_attn.v_proj.weight [16, 32]",
      "model.layers.0.self_attn.v_proj.bias [16]",
      "model.layers.0.self_attn.o_proj.weight [32, 32]",
    ]);
    expect(names.at(-1)).toBe("model.norm.weight [32]");
  });

  it("uses headDim, not hidden/heads, for the attention projections", () => {
    const wide = expectedTensors({ ...config, headDim: 16, layers: 1 });
    expect(wide.find((t) => t.name.endsWith("q_proj.weight"))?.shape).toEqual([64, 32]);
    expect(wide.find((t) => t.name.endsWith("o_proj.weight"))?.shape).toEqual([32, 64]);
  });
});

describe("buildWeightSpec", () => {
  it("returns the checkpoint's entries in the engine's order, whatever order the file has", () => {
    const list = entries([...expectedTensors(config)].reverse());
    const spec = buildWeightSpec(config, list);
    expect(spec.map((e) => e.name)).toEqual(expectedTensors(config).map((t) => t.name));
    expect(spec[0]).toBe(list.at(-1));
  });

  it("ignores tensors it does not know, and lm_head when embeddings are tied", () => {
    const tied = { ...config, tiedEmbeddings: true };
    const list = entries([...expectedTensors(config), { name: "model.layers.0.self_attn.rotary_emb.inv_freq", shape: [4] }]);
    expect(buildWeightSpec(tied, list).map((e) => e.name)).not.toContain("lm_head.weight");
    expect(buildWeightSpec(tied, list)).toHaveLength(expectedTensors(tied).length);
  });

  it("names a missing tensor, its expected shape and the files searched", () => {
    const list = [
      ...entries(expectedTensors(config).slice(0, 10), "/m/model-00001-of-00002.safetensors"),
      ...entries(expectedTensors(config).slice(11), "/m/model-00002-of-00002.safetensors"),
    ];
    expect(failure(() => buildWeightSpec(config, list))).toMatchObject({
      code: "TENSOR_MISSING",
      path: "model.layers.1.input_layernorm.weight",
      message: "model.layers.1.input_layernorm.weight (expected shape [32]) is missing from model-00001-of-00002.safetensors, model-00002-of-00002.safetensors; " +
        "a llama model with 2 layers needs it: the checkpoint is incomplete or of another architecture",
    });
  });

  it("suggests tie_word_embeddings when only lm_head is missing", () => {
    const list = entries(expectedTensors(config).filter((t) => t.name !== "lm_head.weight"));
    expect(failure(() => buildWeightSpec(config, list))).toMatchObject({
      code: "TENSOR_MISSING", path: "lm_head.weight", message: expect.stringContaining("set tie_word_embeddings: true in config.json"),
    });
  });

  it("names a wrong shape with what config.json implies and why", () => {
    const list = entries(expectedTensors(config).map((t) => (t.name === "model.layers.0.self_attn.k_proj.weight" ? { ...t, shape: [32, 32] } : t)));
    expect(failure(() => buildWeightSpec(config, list))).toMatchObject({
      code: "TENSOR_SHAPE",
      path: "model.layers.0.self_attn.k_proj.weight",
      message: "model.layers.0.self_attn.k_proj.weight in model.safetensors has shape [32, 32] but config.json implies [16, 32] " +
        "([kvHeads*headDim, hidden]); the weights and config.json do not belong together",
    });
  });

  it("requires Qwen2's biases when attentionBias", () => {
    expect(failure(() => buildWeightSpec({ ...config, attentionBias: true }, entries(expectedTensors(config))))).toMatchObject({
      code: "TENSOR_MISSING", path: "model.layers.0.self_attn.q_proj.bias",
    });
  });
});

describe("buildRetainingHeads", () => {
  // fc1 reads [q; k; v] of a token: (heads + 2*kvHeads) * headDim = (4 + 4) * 8 = 64 inputs.
  it("reads APB's released heads, which have no biases", () => {
    const heads = buildRetainingHeads(config, entries(expectedRetainingTensors(config, 24)));
    expect(heads.tensors.map((t) => t.name)).toEqual([0, 1].flatMap((i) => [`model.layers.${i}.self_attn.fc1.weight`, `model.layers.${i}.self_attn.fc2.weight`]));
  });

  it("infers R from layer 0's fc1 and lists fc1/fc2 per layer, with biases when the file has them", () => {
    const heads = buildRetainingHeads(config, entries(expectedRetainingTensors(config, 24, { bias: true })));
    expect(heads.intermediate).toBe(24);
    expect(heads.tensors.map((t) => `${t.name} [${t.shape.join(", ")}]`)).toEqual([0, 1].flatMap((i) => [
      `model.layers.${i}.self_attn.fc1.weight [24, 64]`,
      `model.layers.${i}.self_attn.fc1.bias [24]`,
      `model.layers.${i}.self_attn.fc2.weight [2, 24]`,
      `model.layers.${i}.self_attn.fc2.bias [2]`,
    ]));
  });

  it("names a layer whose R differs, a missing piece, and a file without retaining heads", () => {
    const mixed = [...expectedRetainingTensors(config, 24, { bias: true }).slice(0, 4), ...expectedRetainingTensors(config, 12, { bias: true }).slice(4)];
    expect(failure(() => buildRetainingHeads(config, entries(mixed, "/locret/heads.safetensors")))).toMatchObject({
      code: "TENSOR_SHAPE", path: "model.layers.1.self_attn.fc1.weight",
      message: expect.stringMatching(/^model.layers.1.self_attn.fc1.weight in heads.safetensors has shape \[12, 64\] but .* implies \[24, 64\]/),
    });
    const noBias = expectedRetainingTensors(config, 24, { bias: true }).filter((t) => t.name !== "model.layers.1.self_attn.fc2.bias");
    expect(failure(() => buildRetainingHeads(config, entries(noBias)))).toMatchObject({ code: "TENSOR_MISSING", path: "model.layers.1.self_attn.fc2.bias" });
    expect(failure(() => buildRetainingHeads(config, entries(expectedTensors(config), "/m/model.safetensors")))).toMatchObject({
      code: "TENSOR_MISSING", message: expect.stringContaining("(expected shape [R, 64], [R, (heads+2*kvHeads)*headDim]) is missing from model.safetensors"),
    });
  });
});
