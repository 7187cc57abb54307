// Small random Llama-family models in Hugging Face layout, for engine and loader tests: config,
// (sharded) safetensors, tokenizer.json, tokenizer_config.json and generation_config.json; and
// their GGUF twins (the same weights, metadata and tokenizer in one .gguf file, as llama.cpp's
// converter would write them).
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { engineConfigFromHf, type EngineConfig } from "./config.js";
import { ggufTensorName } from "./gguf-model.js";
import { llama3Divisors } from "./gguf-rope.js";
import { writeGguf, type GgufMetadataEntry, type GgufTensorToWrite, type GgufWriteType } from "./gguf-writer.js";
import { DTYPE_BYTES, type TensorDtype } from "./safetensors.js";
import { encodeSafetensors, type TensorToWrite } from "./safetensors-writer.js";
import { TINY_CHAT_TEMPLATE, tinyTokenizerFiles, type SpecialToken, type TinyTokenizerFiles } from "./tiny-tokenizer.js";
import { expectedRetainingTensors, expectedTensors, type ExpectedTensor } from "./weights.js";

export interface TinyModelOptions {
  architecture?: "llama" | "qwen2" | "mistral";
  dtype?: "bfloat16" | "float16" | "float32";
  tiedEmbeddings?: boolean;
  /** 1 writes model.safetensors; more write model-0000i-of-0000n.safetensors and the index. */
  shards?: number;
  vocab?: number;
  hidden?: number;
  layers?: number;
  heads?: number;
  kvHeads?: number;
  /** Written as head_dim only when given (else hidden/heads, as transformers derives it). */
  headDim?: number;
  intermediate?: number;
  ropeTheta?: number;
  rmsNormEps?: number;
  maxPositions?: number;
  /** Llama 3.1's rope_scaling block (factor 8, low 1, high 4, original 8192). */
  llama31?: boolean;
  /** Whether the tokenizer puts <|begin_of_text|> before text (Llama) or nothing (Qwen). */
  addBos?: boolean;
  chatTemplate?: boolean;
  /** Standard deviation of projection and embedding weights. */
  weightStd?: number;
  seed?: number;
}

export interface TinyModel {
  dir: string;
  config: EngineConfig;
  specialIds: Record<SpecialToken, number>;
  /** The safetensors files written, in order. */
  weightFiles: string[];
}

/** mulberry32: a tiny seeded PRNG with uniform floats in [0, 1). */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Normal samples by Box-Muller. */
export function seededNormal(seed: number): (mean: number, std: number) => number {
  const uniform = seededUniform(seed);
  return (mean, std) => mean + std * Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

const DTYPES: Record<NonNullable<TinyModelOptions["dtype"]>, TensorDtype> = { bfloat16: "BF16", float16: "F16", float32: "F32" };
const CLASSES = { llama: "LlamaForCausalLM", qwen2: "Qwen2ForCausalLM", mistral: "MistralForCausalLM" } as const;

/** Random values for one tensor: norms near 1, biases small, matrices N(0, std). */
function randomTensor(t: ExpectedTensor, dtype: TensorDtype, normal: (mean: number, std: number) => number, std: number): TensorToWrite {
  const values = new Float32Array(t.shape.reduce((a, b) => a * b, 1));
  const isNorm = t.name.endsWith("norm.weight");
  const isBias = t.name.endsWith(".bias");
  for (let i = 0; i < values.length; i++) values[i] = isNorm ? normal(1, 0.02) : normal(0, isBias ? 0.02 : std);
  return { name: t.name, dtype, shape: t.shape, values };
}

const pad5 = (n: number) => String(n).padStart(5, "0");

async function writeWeights(dir: string, tensors: TensorToWrite[], shards: number): Promise<string[]> {
  if (!Number.isInteger(shards) || shards < 1 || shards > tensors.length) throw new Error(`shards must be 1..${tensors.length}, got ${shards}`);
  if (shards === 1) {
    await writeFile(join(dir, "model.safetensors"), encodeSafetensors(tensors));
    return [join(dir, "model.safetensors")];
  }
  const weightMap: Record<string, string> = {};
  const files: string[] = [];
  let totalByteLength = 0;
  for (let s = 0; s < shards; s++) {
    const part = tensors.slice(Math.floor((s * tensors.length) / shards), Math.floor(((s + 1) * tensors.length) / shards));
    const name = `model-${pad5(s + 1)}-of-${pad5(shards)}.safetensors`;
    const bytes = encodeSafetensors(part);
    await writeFile(join(dir, name), bytes);
    for (const t of part) weightMap[t.name] = name;
    totalByteLength += part.reduce((sum, t) => sum + t.values.length * DTYPE_BYTES[t.dtype], 0);
    files.push(join(dir, name));
  }
  const index = { metadata: { total_size: totalByteLength }, weight_map: weightMap };
  await writeFile(join(dir, "model.safetensors.index.json"), JSON.stringify(index, null, 2));
  return files;
}

const writeJson = (file: string, value: unknown) => writeFile(file, `${JSON.stringify(value, null, 2)}\n`);

interface TinyParts {
  architecture: NonNullable<TinyModelOptions["architecture"]>;
  hfConfig: Record<string, unknown>;
  generationConfig: { bos_token_id: unknown; eos_token_id: number[] };
  config: EngineConfig;
  tokenizer: TinyTokenizerFiles;
  addBos: boolean;
  chatTemplate: boolean;
  /** Every tensor of expectedTensors(config), in that order, as f32 values (dtype F32). */
  tensors: TensorToWrite[];
}

/** The config, tokenizer and random weights of a tiny model: the same for a seed in either format. */
function tinyParts(options: TinyModelOptions): TinyParts {
  const architecture = options.architecture ?? "llama";
  const dtype = options.dtype ?? "float32";
  const maxPositions = options.maxPositions ?? 65536;
  const addBos = options.addBos ?? true;
  const chatTemplate = options.chatTemplate ?? true;
  const tokenizer = tinyTokenizerFiles({ addBos, chatTemplate, maxLengthTokens: maxPositions });
  const vocab = options.vocab ?? 512;
  if (vocab < tokenizer.tokenCount) throw new Error(`vocab must cover the tokenizer's ${tokenizer.tokenCount} ids, got ${vocab}`);
  const ids = tokenizer.specialIds;
  const eos = [ids["<|end_of_text|>"], ids["<|eot_id|>"]];
  const hfConfig: Record<string, unknown> = {
    architectures: [CLASSES[architecture]],
    model_type: architecture,
    vocab_size: vocab,
    hidden_size: options.hidden ?? 64,
    intermediate_size: options.intermediate ?? 128,
    num_hidden_layers: options.layers ?? 2,
    num_attention_heads: options.heads ?? 4,
    num_key_value_heads: options.kvHeads ?? 2,
    ...(options.headDim !== undefined ? { head_dim: options.headDim } : {}),
    hidden_act: "silu",
    max_position_embeddings: maxPositions,
    rms_norm_eps: options.rmsNormEps ?? 1e-5,
    rope_theta: options.ropeTheta ?? 10000,
    rope_scaling: options.llama31 ? { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } : null,
    tie_word_embeddings: options.tiedEmbeddings ?? false,
    torch_dtype: dtype,
    bos_token_id: addBos ? ids["<|begin_of_text|>"] : null,
    eos_token_id: eos,
    ...(architecture === "llama" ? { attention_bias: false, mlp_bias: false } : {}),
    ...(architecture === "mistral" ? { sliding_window: null } : {}),
    ...(architecture === "qwen2" ? { use_sliding_window: false, sliding_window: maxPositions } : {}),
  };
  const generationConfig = { bos_token_id: hfConfig.bos_token_id, eos_token_id: eos };
  const config = engineConfigFromHf(hfConfig, generationConfig);
  const normal = seededNormal(options.seed ?? 1);
  const tensors = expectedTensors(config).map((t) => randomTensor(t, "F32", normal, options.weightStd ?? 0.05));
  return { architecture, hfConfig, generationConfig, config, tokenizer, addBos, chatTemplate, tensors };
}

/** Writes a random model into `dir` (created if needed) that openModelDir and the engine load. */
export async function writeTinyModel(dir: string, options: TinyModelOptions = {}): Promise<TinyModel> {
  const parts = tinyParts(options);
  const dtype = DTYPES[options.dtype ?? "float32"];
  const tensors = parts.tensors.map((t) => ({ ...t, dtype }));
  await mkdir(dir, { recursive: true });
  const weightFiles = await writeWeights(dir, tensors, options.shards ?? 1);
  await writeJson(join(dir, "config.json"), parts.hfConfig);
  await writeJson(join(dir, "generation_config.json"), parts.generationConfig);
  await writeJson(join(dir, "tokenizer.json"), parts.tokenizer.tokenizerJson);
  await writeJson(join(dir, "tokenizer_config.json"), parts.tokenizer.tokenizerConfig);
  return { dir, config: parts.config, specialIds: parts.tokenizer.specialIds, weightFiles };
}

export interface TinyGgufOptions extends Omit<TinyModelOptions, "dtype" | "shards"> {
  /** Type of the matrices (embeddings and projections); norms, biases and rope_freqs stay F32, as llama.cpp writes them. Default F32. */
  type?: GgufWriteType;
}

export interface TinyGguf {
  file: string;
  /** The config of the safetensors twin (writeTinyModel with the same options), which the file's metadata describes. */
  config: EngineConfig;
  specialIds: Record<SpecialToken, number>;
}

/**
 * llama.cpp's converter's row order for Llama's q_proj and k_proj: within each head, rows
 * i (first half) and D/2 + i (second half) become rows 2i and 2i + 1.
 */
export function permuteRowsForGguf(values: Float32Array, rows: number, heads: number): Float32Array {
  const cols = values.length / rows;
  const headRows = rows / heads;
  const half = headRows / 2;
  const out = new Float32Array(values.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const from = h * headRows + j * half + i;
        const to = h * headRows + 2 * i + j;
        out.set(values.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

/** tokenizer.ggml.* and tokenizer.chat_template for the tiny tokenizer: a GPT-2-style byte-level BPE. */
function tokenizerMetadata(parts: TinyParts): GgufMetadataEntry[] {
  const json = parts.tokenizer.tokenizerJson as { model: { vocab: Record<string, number>; merges: [string, string][] }; added_tokens: { id: number; content: string }[] };
  const tokens: string[] = [];
  const types: number[] = [];
  for (const [token, id] of Object.entries(json.model.vocab)) [tokens[id], types[id]] = [token, 1];
  for (const { id, content } of json.added_tokens) [tokens[id], types[id]] = [content, 3];
  // The converter pads the token list to the model's vocab with unused placeholders.
  for (let id = 0; id < parts.config.vocab; id++) if (tokens[id] === undefined) [tokens[id], types[id]] = [`[PAD${id}]`, 5];
  const ids = parts.tokenizer.specialIds;
  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: "u32", value });
  return [
    { key: "tokenizer.ggml.model", type: "string", value: "gpt2" },
    { key: "tokenizer.ggml.pre", type: "string", value: "gpt-2" },
    { key: "tokenizer.ggml.tokens", type: { array: "string" }, value: tokens },
    { key: "tokenizer.ggml.token_type", type: { array: "i32" }, value: types },
    { key: "tokenizer.ggml.merges", type: { array: "string" }, value: json.model.merges.map(([a, b]) => `${a} ${b}`) },
    ...(parts.addBos ? [u32("tokenizer.ggml.bos_token_id", ids["<|begin_of_text|>"])] : []),
    u32("tokenizer.ggml.eos_token_id", ids["<|end_of_text|>"]),
    u32("tokenizer.ggml.eot_token_id", ids["<|eot_id|>"]),
    { key: "tokenizer.ggml.add_bos_token", type: "bool", value: parts.addBos },
    { key: "tokenizer.ggml.add_eos_token", type: "bool", value: false },
    ...(parts.chatTemplate ? [{ key: "tokenizer.chat_template", type: "string" as const, value: TINY_CHAT_TEMPLATE }] : []),
  ];
}

/**
 * Writes the GGUF twin of writeTinyModel(dir, options): the same weights (Q and K rows permuted
 * for llama and mistral, as llama.cpp's converter does), the config as `{arch}.*` metadata and
 * the tokenizer as `tokenizer.ggml.*`. Matrices are written as `type`; 1-D tensors as F32.
 */
export async function writeTinyGguf(file: string, options: TinyGgufOptions = {}): Promise<TinyGguf> {
  const parts = tinyParts(options);
  const c = parts.config;
  const arch = parts.architecture;
  const type = options.type ?? "F32";
  const u32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: "u32", value });
  const f32 = (key: string, value: number): GgufMetadataEntry => ({ key, type: "f32", value });
  const metadata: GgufMetadataEntry[] = [
    { key: "general.architecture", type: "string", value: arch },
    { key: "general.name", type: "string", value: `apb tiny ${arch}` },
    u32("general.alignment", 32),
    ...(type === "Q8_0" || type === "Q4_0" ? [u32("general.quantization_version", 2)] : []),
    u32(`${arch}.vocab_size`, c.vocab),
    u32(`${arch}.context_length`, c.maxPositions),
    u32(`${arch}.embedding_length`, c.hidden),
    u32(`${arch}.block_count`, c.layers),
    u32(`${arch}.feed_forward_length`, c.intermediate),
    u32(`${arch}.attention.head_count`, c.heads),
    u32(`${arch}.attention.head_count_kv`, c.kvHeads),
    ...(options.headDim !== undefined ? [u32(`${arch}.attention.key_length`, c.headDim), u32(`${arch}.attention.value_length`, c.headDim)] : []),
    u32(`${arch}.rope.dimension_count`, c.headDim),
    f32(`${arch}.rope.freq_base`, c.ropeTheta),
    f32(`${arch}.attention.layer_norm_rms_epsilon`, c.rmsNormEps),
    ...tokenizerMetadata(parts),
  ];
  const permute = arch !== "qwen2";
  const tensors: GgufTensorToWrite[] = parts.tensors.map((t) => {
    const rows = t.shape[0]!;
    const heads = /q_proj\./.test(t.name) ? c.heads : /k_proj\./.test(t.name) ? c.kvHeads : 0;
    const data = permute && heads > 0 ? permuteRowsForGguf(t.values, rows, heads) : t.values;
    return { name: ggufTensorName(t.name)!, shape: t.shape, type: t.shape.length === 1 ? "F32" : type, data };
  });
  if (c.ropeScaling) tensors.push({ name: "rope_freqs.weight", dims: [c.headDim / 2], type: "F32", data: Float32Array.from(llama3Divisors(c.ropeScaling, c.ropeTheta, c.headDim)) });
  await mkdir(dirname(file), { recursive: true });
  await writeGguf(file, { metadata, tensors });
  return { file, config: c, specialIds: parts.tokenizer.specialIds };
}

/** Writes random Locret retaining heads for `config` (fc1 [R, (heads+2*kvHeads)*headDim], fc2 [kvHeads, R]). */
export async function writeTinyRetainingHeads(
  file: string,
  config: EngineConfig,
  options: { intermediate?: number; dtype?: TinyModelOptions["dtype"]; seed?: number; bias?: boolean } = {},
): Promise<void> {
  const normal = seededNormal(options.seed ?? 2);
  const dtype = DTYPES[options.dtype ?? "float32"];
  const expected = expectedRetainingTensors(config, options.intermediate ?? 16, { bias: options.bias ?? false });
  const tensors = expected.map((t) => randomTensor(t, dtype, normal, 0.05));
  await writeFile(file, encodeSafetensors(tensors));
}
