// Small random Llama-family models in Hugging Face layout, for engine and loader tests: config,
// (sharded) safetensors, tokenizer.json, tokenizer_config.json and generation_config.json.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { engineConfigFromHf, type EngineConfig } from "./config.js";
import { DTYPE_BYTES, type TensorDtype } from "./safetensors.js";
import { encodeSafetensors, type TensorToWrite } from "./safetensors-writer.js";
import { tinyTokenizerFiles, type SpecialToken } from "./tiny-tokenizer.js";
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

/** Writes a random model into `dir` (created if needed) that openModelDir and the engine load. */
export async function writeTinyModel(dir: string, options: TinyModelOptions = {}): Promise<TinyModel> {
  const architecture = options.architecture ?? "llama";
  const dtype = options.dtype ?? "float32";
  const maxPositions = options.maxPositions ?? 65536;
  const addBos = options.addBos ?? true;
  const tokenizer = tinyTokenizerFiles({ addBos, chatTemplate: options.chatTemplate ?? true, maxLengthTokens: maxPositions });
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
  const tensors = expectedTensors(config).map((t) => randomTensor(t, DTYPES[dtype], normal, options.weightStd ?? 0.05));
  await mkdir(dir, { recursive: true });
  const weightFiles = await writeWeights(dir, tensors, options.shards ?? 1);
  await writeJson(join(dir, "config.json"), hfConfig);
  await writeJson(join(dir, "generation_config.json"), generationConfig);
  await writeJson(join(dir, "tokenizer.json"), tokenizer.tokenizerJson);
  await writeJson(join(dir, "tokenizer_config.json"), tokenizer.tokenizerConfig);
  return { dir, config, specialIds: ids, weightFiles };
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
