import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadModel, type GenerateOptions } from "./index.js";
import { logitAgreement, writeTinyGguf, writeTinyModel, type TinyGgufOptions } from "./testing.js";
import { tempDirs } from "./temp-dirs.test-helper.js";
import { ggmlTypeByName, type GgufFile, type GgufTensorInfo, type GgufValue } from "./gguf.js";
import { engineConfigFromGguf, ggufTensorName, ggufTensors, hfTensorName, shortestF32 } from "./gguf-model.js";
import { expectedTensors } from "./weights.js";

const freshDir = tempDirs("gguf-model");

type Meta = Record<string, GgufValue | undefined>;

/** llama.cpp's tensors of a 2-layer model (hidden 64, 4/2 heads of 16, MLP 128, vocab 300), dims innermost first. */
function llamaTensors(options: { tied?: boolean; bias?: boolean; vocab?: number } = {}): Array<[string, number[], string?]> {
  const vocab = options.vocab ?? 300;
  const layers = [0, 1].flatMap((i): Array<[string, number[]]> => [
    [`blk.${i}.attn_norm.weight`, [64]],
    [`blk.${i}.attn_q.weight`, [64, 64]],
    [`blk.${i}.attn_k.weight`, [64, 32]],
    [`blk.${i}.attn_v.weight`, [64, 32]],
    ...(options.bias ? ([[`blk.${i}.attn_q.bias`, [64]], [`blk.${i}.attn_k.bias`, [32]], [`blk.${i}.attn_v.bias`, [32]]] as Array<[string, number[]]>) : []),
    [`blk.${i}.attn_output.weight`, [64, 64]],
    [`blk.${i}.ffn_norm.weight`, [64]],
    [`blk.${i}.ffn_gate.weight`, [64, 128]],
    [`blk.${i}.ffn_up.weight`, [64, 128]],
    [`blk.${i}.ffn_down.weight`, [128, 64]],
  ]);
  return [["token_embd.weight", [64, vocab]], ...layers, ["output_norm.weight", [64]], ...(options.tied ? [] : ([["output.weight", [64, vocab]]] as Array<[string, number[]]>))];
}

const TOKENS = Array.from({ length: 300 }, (_, i) => (i === 290 ? "<|im_end|>" : i === 291 ? "<|endoftext|>" : `t${i}`));
const TOKEN_TYPES = TOKENS.map((_, i) => (i >= 290 ? 3 : 1));

function llamaMetadata(arch = "llama"): Meta {
  return {
    "general.architecture": arch,
    [`${arch}.context_length`]: 2048,
    [`${arch}.embedding_length`]: 64,
    [`${arch}.block_count`]: 2,
    [`${arch}.feed_forward_length`]: 128,
    [`${arch}.attention.head_count`]: 4,
    [`${arch}.attention.head_count_kv`]: 2,
    [`${arch}.rope.freq_base`]: Math.fround(500000),
    [`${arch}.attention.layer_norm_rms_epsilon`]: Math.fround(1e-5),
    [`${arch}.rope.dimension_count`]: 16,
    "tokenizer.ggml.model": "gpt2",
    "tokenizer.ggml.tokens": TOKENS,
    "tokenizer.ggml.token_type": TOKEN_TYPES,
    "tokenizer.ggml.bos_token_id": 1,
    "tokenizer.ggml.eos_token_id": 290,
  };
}

/** An in-memory GgufFile (offsets laid out one after another; the data itself is never read here). */
function ggufOf(meta: Meta, tensors: Array<[string, number[], string?]>): GgufFile {
  let offset = 1024;
  const infos: GgufTensorInfo[] = tensors.map(([name, dims, typeName = "F32"]) => {
    const type = ggmlTypeByName(typeName);
    const elements = dims.reduce((a, b) => a * b, 1);
    const byteLength = type ? Math.ceil(elements / type.blockElements) * type.blockBytes : 64;
    const info = { name, dims, typeId: type?.id ?? 99, typeName: type ? typeName : "type 99", offset, byteLength };
    offset += Math.ceil(byteLength / 32) * 32;
    return info;
  });
  const metadata = new Map(Object.entries(meta).filter((e): e is [string, GgufValue] => e[1] !== undefined));
  return { file: "/models/m.gguf", version: 3, metadata, metadataTypes: new Map(), tensors: infos, alignment: 32, dataOffset: 1024, fileByteLength: offset };
}

const configOf = (meta: Meta, tensors = llamaTensors()) => engineConfigFromGguf(ggufOf(meta, tensors));
const errorOf = (meta: Meta, tensors = llamaTensors()) => {
  try {
    configOf(meta, tensors);
  } catch (e) {
    return e as Error;
  }
  throw new Error("no error");
};

describe("engineConfigFromGguf", () => {
  it("maps llama.cpp's metadata onto the engine's config", () => {
    expect(configOf(llamaMetadata())).toEqual({
      architecture: "llama",
      vocab: 300,
      hidden: 64,
      layers: 2,
      heads: 4,
      kvHeads: 2,
      headDim: 16,
      intermediate: 128,
      rmsNormEps: 1e-5, // the f32 9.99999974737875e-6, as the decimal it was written from
      ropeTheta: 500000,
      ropeScaling: null,
      tiedEmbeddings: false,
      attentionBias: false,
      maxPositions: 2048,
      bosTokenId: 1,
      // eos, then the control tokens llama.cpp also ends generation on
      eosTokenIds: [290, 291],
    });
  });

  it("defaults: kv heads = heads, rope base 10000, head dim hidden/heads; vocab from vocab_size over the token list", () => {
    const meta = { ...llamaMetadata(), "llama.attention.head_count_kv": undefined, "llama.rope.freq_base": undefined, "llama.rope.dimension_count": undefined, "llama.vocab_size": 320 };
    const tensors = llamaTensors({ vocab: 320 }).map(([n, d]): [string, number[]] => [n, n.includes("attn_k") || n.includes("attn_v") ? [64, 64] : d]);
    expect(configOf(meta, tensors)).toMatchObject({ kvHeads: 4, ropeTheta: 10000, headDim: 16, vocab: 320 });
    expect(configOf({ ...llamaMetadata(), "tokenizer.ggml.bos_token_id": undefined, "tokenizer.ggml.eos_token_id": undefined, "tokenizer.ggml.eot_token_id": 7 })).toMatchObject({ bosTokenId: null, eosTokenIds: [7, 290, 291] });
  });

  it("key_length sets the head dim (heads wider than hidden/heads)", () => {
    const meta = { ...llamaMetadata(), "llama.attention.key_length": 32, "llama.attention.value_length": 32, "llama.rope.dimension_count": 32 };
    expect(configOf(meta, llamaTensors().map(([n, d]): [string, number[]] => [n, n.includes("attn_q") ? [64, 128] : n.includes("attn_k") || n.includes("attn_v") ? [64, 64] : n.includes("attn_output") ? [128, 64] : d]))).toMatchObject({
      headDim: 32,
      hidden: 64,
      heads: 4,
    });
    // Without key_length, rope.dimension_count gives it (llama.cpp requires the two to agree for these architectures).
    expect(configOf({ ...llamaMetadata(), "llama.rope.dimension_count": 32 })).toMatchObject({ headDim: 32 });
  });

  it("tied embeddings when output.weight is absent; qwen2's biases; mistral", () => {
    expect(configOf(llamaMetadata(), llamaTensors({ tied: true })).tiedEmbeddings).toBe(true);
    expect(configOf(llamaMetadata("qwen2"), llamaTensors({ bias: true }))).toMatchObject({ architecture: "qwen2", attentionBias: true });
    expect(configOf(llamaMetadata("qwen2"))).toMatchObject({ attentionBias: false });
    expect(configOf(llamaMetadata("mistral"))).toMatchObject({ architecture: "mistral" });
  });

  it("an unsupported or missing architecture", () => {
    expect(errorOf({ ...llamaMetadata(), "general.architecture": "gemma2" })).toMatchObject({
      code: "UNSUPPORTED_ARCHITECTURE",
      path: "general.architecture",
      message: 'm.gguf: general.architecture "gemma2" is not supported; supported: llama, mistral, qwen2 (Llama 2/3, Mistral, Qwen2/2.5, SmolLM)',
    });
    expect(errorOf({ ...llamaMetadata(), "general.architecture": undefined })).toMatchObject({ code: "MISSING_FIELD", path: "general.architecture" });
    expect(errorOf({ ...llamaMetadata(), "general.architecture": 3 })).toMatchObject({ code: "WRONG_TYPE", message: "m.gguf: metadata general.architecture must be a string, found 3" });
  });

  it("missing, mistyped and out-of-range hyperparameters name the key", () => {
    expect(errorOf({ ...llamaMetadata(), "llama.block_count": undefined })).toMatchObject({
      code: "MISSING_FIELD",
      path: "llama.block_count",
      message: "m.gguf: metadata llama.block_count (the number of layers) is missing; the file was not converted for this architecture or is incomplete",
    });
    expect(errorOf({ ...llamaMetadata(), "llama.attention.layer_norm_rms_epsilon": undefined })).toMatchObject({ code: "MISSING_FIELD", path: "llama.attention.layer_norm_rms_epsilon" });
    expect(errorOf({ ...llamaMetadata(), "llama.embedding_length": "64" })).toMatchObject({ code: "WRONG_TYPE", message: 'm.gguf: metadata llama.embedding_length must be an integer, found "64"' });
    expect(errorOf({ ...llamaMetadata(), "llama.embedding_length": 0 })).toMatchObject({ code: "OUT_OF_RANGE", message: "m.gguf: metadata llama.embedding_length must be >= 1, found 0" });
    expect(errorOf({ ...llamaMetadata(), "llama.context_length": 2n ** 60n })).toMatchObject({ code: "OUT_OF_RANGE", path: "llama.context_length" });
    expect(configOf({ ...llamaMetadata(), "llama.context_length": 4096n })).toMatchObject({ maxPositions: 4096 });
    expect(errorOf({ ...llamaMetadata(), "llama.rope.freq_base": -1 })).toMatchObject({ code: "OUT_OF_RANGE", message: "m.gguf: metadata llama.rope.freq_base must be > 0, found -1" });
    expect(errorOf({ ...llamaMetadata(), "llama.attention.head_count_kv": 3 })).toMatchObject({
      code: "OUT_OF_RANGE",
      message: "m.gguf: llama.attention.head_count (4) must be a multiple of llama.attention.head_count_kv (3)",
    });
    expect(errorOf({ ...llamaMetadata(), "tokenizer.ggml.tokens": undefined })).toMatchObject({ code: "MISSING_FIELD", path: "llama.vocab_size" });
  });

  it.each([
    ["linear rope scaling", { "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4 }, "llama.rope.scaling.type", 'rope scaling "linear" (factor 4) is not supported'],
    ["yarn", { "llama.rope.scaling.type": "yarn", "llama.rope.scaling.factor": 4 }, "llama.rope.scaling.type", 'rope scaling "yarn" (factor 4) is not supported'],
    ["the old linear key", { "llama.rope.scale_linear": 2 }, "llama.rope.scale_linear", "linear rope scaling (llama.rope.scale_linear 2) is not supported"],
    ["a mixture of experts", { "llama.expert_count": 8 }, "llama.expert_count", "a mixture of experts (llama.expert_count 8, e.g. Mixtral) is not supported"],
    ["partial rotary", { "llama.rope.dimension_count": 8, "llama.attention.key_length": 16 }, "llama.rope.dimension_count", "rotary embedding over 8 of each head's 16 dimensions (partial rotary) is not supported"],
    ["value heads of another size", { "llama.attention.value_length": 8 }, "llama.attention.value_length", "value heads of 8 with key heads of 16 are not supported"],
  ])("refuses %s: UNSUPPORTED_ARCHITECTURE", (_, extra, path, message) => {
    expect(errorOf({ ...llamaMetadata(), ...extra })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path, message: expect.stringContaining(message) });
  });

  it("refuses one part of a split file: MODEL_FILE saying how to merge", () => {
    expect(errorOf({ ...llamaMetadata(), "split.count": 3, "split.no": 0 })).toMatchObject({
      code: "MODEL_FILE",
      path: "/models/m.gguf",
      message: "m.gguf is part 1 of a GGUF split into 3 files, which are not supported; merge them into one with llama.cpp's llama-gguf-split --merge",
    });
    expect(configOf({ ...llamaMetadata(), "split.count": 1 }).layers).toBe(2);
  });

  it("accepts rope scaling none", () => {
    expect(configOf({ ...llamaMetadata(), "llama.rope.scaling.type": "none", "llama.rope.scaling.factor": 1 }).ropeScaling).toBeNull();
  });

  it("needs rope_freqs.weight's values to read Llama 3.1's scaling; refuses biases it cannot run, and Mistral's sliding window", () => {
    expect(errorOf(llamaMetadata(), [...llamaTensors(), ["rope_freqs.weight", [8]]])).toMatchObject({
      code: "UNSUPPORTED_ARCHITECTURE",
      path: "rope_freqs.weight",
      message: expect.stringContaining("pass their values (readRopeDivisors)"),
    });
    expect(errorOf(llamaMetadata("qwen2"), [...llamaTensors({ bias: true }), ["blk.0.attn_output.bias", [64]]])).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "blk.0.attn_output.bias" });
    expect(errorOf(llamaMetadata(), [...llamaTensors(), ["blk.0.ffn_up.bias", [128]]])).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "blk.0.ffn_up.bias" });
    expect(errorOf(llamaMetadata(), llamaTensors({ bias: true }))).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "blk.0.attn_q.bias", message: expect.stringContaining("a llama model with attention biases is not supported") });
    expect(errorOf({ ...llamaMetadata("mistral"), "mistral.attention.sliding_window": 4096 })).toMatchObject({ code: "UNSUPPORTED_ARCHITECTURE", path: "mistral.attention.sliding_window" });
  });
});

describe("ggufTensors", () => {
  it("names and shapes the tensors as Hugging Face does, in the engine's order; q and k rows carry llama.cpp's permutation", () => {
    const gguf = ggufOf(llamaMetadata(), llamaTensors());
    const config = engineConfigFromGguf(gguf);
    const tensors = ggufTensors(gguf, config);
    expect(tensors.map((t) => t.name)).toEqual(expectedTensors(config).map((t) => t.name));
    expect(tensors.map((t) => t.shape)).toEqual(expectedTensors(config).map((t) => t.shape));
    const byName = new Map(tensors.map((t) => [t.name, t]));
    expect(byName.get("model.layers.1.self_attn.q_proj.weight")).toMatchObject({ shape: [64, 64], permuteHeads: 4, dtype: "F32", file: "/models/m.gguf" });
    expect(byName.get("model.layers.1.self_attn.k_proj.weight")).toMatchObject({ shape: [32, 64], permuteHeads: 2 });
    expect(byName.get("model.layers.1.self_attn.v_proj.weight")!.permuteHeads).toBeUndefined();
    expect(byName.get("model.layers.0.mlp.down_proj.weight")!.shape).toEqual([64, 128]);
    const info = gguf.tensors.find((t) => t.name === "blk.0.ffn_down.weight")!;
    expect(byName.get("model.layers.0.mlp.down_proj.weight")).toMatchObject({ offset: info.offset, byteLength: info.byteLength });
  });

  it("mistral permutes too; qwen2 (NeoX rotary in llama.cpp) does not", () => {
    for (const [arch, permuted] of [["mistral", true], ["qwen2", false]] as const) {
      const gguf = ggufOf(llamaMetadata(arch), llamaTensors({ bias: arch === "qwen2" }));
      const tensors = ggufTensors(gguf, engineConfigFromGguf(gguf));
      expect(tensors.filter((t) => t.permuteHeads !== undefined).length).toBe(permuted ? 4 : 0);
    }
  });

  it("accepts the types the engine loads", () => {
    const types = ["Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q5_K", "Q6_K", "F16", "BF16"];
    const tensors = llamaTensors().map(([n, d], i): [string, number[], string] => [n, d, d.length === 2 ? types[i % types.length]! : "F32"]);
    const gguf = ggufOf(llamaMetadata(), tensors);
    expect(new Set(ggufTensors(gguf, engineConfigFromGguf(gguf)).map((t) => t.dtype))).toEqual(new Set(["F32", ...types]));
  });

  it("a needed tensor of a type the engine cannot load: TENSOR_DTYPE naming both names, the type and the supported ones", () => {
    for (const type of ["Q5_0", "IQ4_XS", "unknown"]) {
      const tensors = llamaTensors().map(([n, d]): [string, number[], string?] => (n === "blk.1.ffn_up.weight" ? [n, d, type === "unknown" ? "nope" : type] : [n, d]));
      const gguf = ggufOf(llamaMetadata(), tensors);
      const shown = type === "unknown" ? "type 99" : type;
      expect(() => ggufTensors(gguf, engineConfigFromGguf(gguf))).toThrow(
        expect.objectContaining({
          code: "TENSOR_DTYPE",
          path: "model.layers.1.mlp.up_proj.weight",
          message:
            `m.gguf: tensor blk.1.ffn_up.weight (model.layers.1.mlp.up_proj.weight) is of type ${shown}, which the engine cannot load; ` +
            "it loads F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K. Use a file quantized to one of those (e.g. Q4_K_M, Q6_K or Q8_0)",
        }),
      );
    }
  });

  it("ignores tensors it does not need, whatever their type", () => {
    const gguf = ggufOf(llamaMetadata(), [...llamaTensors({ tied: true }), ["output.weight_not", [64, 300], "nope"], ["blk.0.attn_qkv.weight", [64, 128], "IQ2_XXS"]]);
    const tensors = ggufTensors(gguf, engineConfigFromGguf(gguf));
    expect(tensors).toHaveLength(1 + 2 * 9 + 1);
  });

  it("a missing or misshapen tensor: TENSOR_MISSING / TENSOR_SHAPE naming the GGUF and Hugging Face names", () => {
    const missing = ggufOf(llamaMetadata(), llamaTensors().filter(([n]) => n !== "blk.1.ffn_down.weight"));
    expect(() => ggufTensors(missing, engineConfigFromGguf(missing))).toThrow(
      expect.objectContaining({
        code: "TENSOR_MISSING",
        path: "model.layers.1.mlp.down_proj.weight",
        message:
          "blk.1.ffn_down.weight (model.layers.1.mlp.down_proj.weight) (expected shape [64, 128]) is missing from m.gguf; a llama model with 2 layers needs it: the file is incomplete or of another architecture",
      }),
    );
    const wrong = ggufOf(llamaMetadata(), llamaTensors().map(([n, d]): [string, number[]] => [n, n === "blk.0.attn_k.weight" ? [64, 64] : d]));
    expect(() => ggufTensors(wrong, engineConfigFromGguf(wrong))).toThrow(
      expect.objectContaining({
        code: "TENSOR_SHAPE",
        message:
          "blk.0.attn_k.weight (model.layers.0.self_attn.k_proj.weight) in m.gguf has shape [64, 64] but m.gguf's metadata implies [32, 64] ([kvHeads*headDim, hidden]); the weights and m.gguf's metadata do not belong together",
      }),
    );
  });

  it("maps every tensor name both ways", () => {
    for (const [name] of llamaTensors({ bias: true })) expect(ggufTensorName(hfTensorName(name)!)).toBe(name);
    expect(hfTensorName("blk.12.ffn_gate.weight")).toBe("model.layers.12.mlp.gate_proj.weight");
    expect(hfTensorName("blk.0.attn_qkv.weight")).toBeUndefined();
    expect(hfTensorName("rope_freqs.weight")).toBeUndefined();
    expect(ggufTensorName("model.layers.0.self_attn.fc1.weight")).toBeUndefined();
  });
});

describe("shortestF32", () => {
  it("gives the shortest decimal that is the same f32; leaves other numbers alone", () => {
    expect(shortestF32(Math.fround(1e-5))).toBe(1e-5);
    expect(shortestF32(Math.fround(1e-6))).toBe(1e-6);
    expect(shortestF32(Math.fround(0.1))).toBe(0.1);
    expect(shortestF32(500000)).toBe(500000);
    expect(shortestF32(0.1)).toBe(0.1); // not an f32: unchanged
    expect(shortestF32(Math.fround(1 / 3))).toBe(0.33333334);
  });
});

describe("GGUF twins in the engine: loadModel(file) answers as the safetensors model does", () => {
  const document = "The quick brown fox jumps over the lazy dog. ".repeat(12) + "The secret word is lantern. ";
  const query = "What is the secret word?";

  // Fixed seeds: tolerances for the lossy types were measured on these models.
  async function compare(options: TinyGgufOptions & { seed: number }) {
    const dir = await freshDir();
    await writeTinyModel(dir, { ...options, dtype: "float32" } as Parameters<typeof writeTinyModel>[1]);
    const { file } = await writeTinyGguf(join(dir, "model.gguf"), options);
    const [hf, gguf] = [await loadModel(dir), await loadModel(file)];
    expect(gguf.dir).toMatchObject({ format: "gguf", path: file });
    const request: GenerateOptions = { document, query, strategy: "full", maxTokens: 10, stopTokenIds: [] };
    const [a, b] = [await hf.generate(request), await gguf.generate(request)];
    expect(b.promptTokens).toEqual(a.promptTokens);
    return { a, b, relativeError: logitAgreement(b.firstLogits, a.firstLogits).relativeError, hf, gguf };
  }

  it.each(["llama", "qwen2", "mistral"] as const)("%s, F32: the same logits and tokens (q/k permutation undone exactly)", async (architecture) => {
    const { a, b, relativeError } = await compare({ architecture, seed: 5, tiedEmbeddings: architecture === "qwen2" });
    expect(relativeError).toBeLessThan(1e-6);
    expect(b.tokens).toEqual(a.tokens);
  });

  it.each([
    ["F16", 2e-3],
    ["BF16", 1e-2],
    ["Q8_0", 4e-2],
  ] as const)("llama, %s: the same greedy tokens, logits within %f", async (type, tolerance) => {
    const { a, b, relativeError } = await compare({ seed: 6, type });
    expect(relativeError).toBeGreaterThan(0);
    expect(relativeError).toBeLessThan(tolerance);
    expect(b.tokens).toEqual(a.tokens);
  });

  it("Llama 3.1's rope scaling, stored as rope_freqs.weight, runs as the twin's rope_scaling block", async () => {
    const { a, b, relativeError, gguf } = await compare({ seed: 5, llama31: true });
    expect(gguf.dir.config.ropeScaling).toMatchObject({ type: "llama3", factor: 8, originalMaxPositions: 8192 });
    expect(relativeError).toBeLessThan(1e-5);
    expect(b.tokens).toEqual(a.tokens);
  });

  it("llama, Q4_0: loads and stays near (4 bits lose more)", async () => {
    const { relativeError } = await compare({ seed: 6, type: "Q4_0" });
    expect(relativeError).toBeLessThan(0.5);
  });

  it("APB over emulated hosts runs on a GGUF model as on its twin", async () => {
    const { hf, gguf } = await compare({ seed: 7, type: "F32" });
    const request: GenerateOptions = { document, query, strategy: "apb", hosts: 3, maxTokens: 6, stopTokenIds: [] };
    const [a, b] = [await hf.generate(request), await gguf.generate(request)];
    expect(b.layout).toEqual(a.layout);
    expect(logitAgreement(b.firstLogits, a.firstLogits).relativeError).toBeLessThan(1e-6);
    expect(b.tokens).toEqual(a.tokens);
  });
});
