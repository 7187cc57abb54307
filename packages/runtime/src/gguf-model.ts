// A GGUF file -> what the engine loads: its EngineConfig (from the `{arch}.*` and
// `tokenizer.ggml.*` metadata, as llama.cpp reads them) and its tensors under Hugging Face
// names and shapes, in expectedTensors(config) order. llama.cpp's converter permutes the rows
// of Llama's q_proj and k_proj (its rotary embedding pairs adjacent dimensions, Hugging Face's
// pairs the two halves of each head); those tensors carry `permuteHeads` and the engine undoes it.
import { basename } from "node:path";
import type { Architecture, EngineConfig, RopeScalingLlama3 } from "./config.js";
import { checkConfigLimits, type LimitedField } from "./config-limits.js";
import { RuntimeError, type ErrorCode } from "./errors.js";
import type { GgufFile, GgufTensorInfo, GgufValue } from "./gguf.js";
import { llama3ScalingFromDivisors } from "./gguf-rope.js";
import { WEIGHT_DTYPES, type TensorEntry, type WeightDtype } from "./safetensors.js";
import { buildWeightSpec, expectedTensors } from "./weights.js";

/** general.architecture values accepted. */
export const GGUF_ARCHITECTURES: readonly Architecture[] = ["llama", "mistral", "qwen2"];

/** Token texts llama.cpp also stops on (its end-of-generation set), when the file marks them as control tokens. */
const END_OF_GENERATION_TEXTS = new Set(["<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "<|im_end|>", "<|endoftext|>", "<|end|>", "<end_of_turn>"]);

/** Token type 3: a control (special) token. */
const CONTROL_TOKEN = 3;

function fail(gguf: GgufFile, code: ErrorCode, path: string, message: string): RuntimeError {
  return new RuntimeError({ code, path, message: `${basename(gguf.file)}: ${message}` });
}

const shown = (v: GgufValue | undefined) => (typeof v === "bigint" ? `${v}` : Array.isArray(v) ? `an array of ${v.length}` : JSON.stringify(v));

/** A float read from f32 metadata, as the shortest decimal that is the same f32 (1e-5, not 9.99999974737875e-6). */
export function shortestF32(x: number): number {
  if (!Number.isFinite(x) || x === 0 || Math.fround(x) !== x) return x;
  for (let digits = 1; digits <= 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

/** Typed reads of one file's metadata, with errors that name the key. */
class Fields {
  constructor(private readonly gguf: GgufFile) {}

  has(key: string): boolean {
    return this.gguf.metadata.has(key);
  }

  private missing(key: string, what: string): RuntimeError {
    return fail(this.gguf, "MISSING_FIELD", key, `metadata ${key} (${what}) is missing; the file was not converted for this architecture or is incomplete`);
  }

  string(key: string): string | undefined {
    const v = this.gguf.metadata.get(key);
    if (v === undefined) return undefined;
    if (typeof v !== "string") throw fail(this.gguf, "WRONG_TYPE", key, `metadata ${key} must be a string, found ${shown(v)}`);
    return v;
  }

  /** An integer >= min (of any integer type); undefined when absent. */
  int(key: string, min: number): number | undefined {
    const raw = this.gguf.metadata.get(key);
    if (raw === undefined) return undefined;
    if (typeof raw === "bigint") {
      if (raw < BigInt(min) || raw > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(this.gguf, "OUT_OF_RANGE", key, `metadata ${key} must be >= ${min} and at most 2^53, found ${raw}`);
      return Number(raw);
    }
    if (typeof raw !== "number" || !Number.isInteger(raw)) throw fail(this.gguf, "WRONG_TYPE", key, `metadata ${key} must be an integer, found ${shown(raw)}`);
    if (raw < min) throw fail(this.gguf, "OUT_OF_RANGE", key, `metadata ${key} must be >= ${min}, found ${raw}`);
    return raw;
  }

  requiredInt(key: string, min: number, what: string): number {
    const v = this.int(key, min);
    if (v === undefined) throw this.missing(key, what);
    return v;
  }

  /** A finite number > 0 (float or integer metadata); undefined when absent. */
  positive(key: string): number | undefined {
    const raw = this.gguf.metadata.get(key);
    if (raw === undefined) return undefined;
    const v = typeof raw === "bigint" ? Number(raw) : raw;
    if (typeof v !== "number") throw fail(this.gguf, "WRONG_TYPE", key, `metadata ${key} must be a number, found ${shown(raw)}`);
    if (!Number.isFinite(v) || v <= 0) throw fail(this.gguf, "OUT_OF_RANGE", key, `metadata ${key} must be > 0, found ${v}`);
    return shortestF32(v);
  }

  requiredPositive(key: string, what: string): number {
    const v = this.positive(key);
    if (v === undefined) throw this.missing(key, what);
    return v;
  }

  array(key: string): GgufValue[] | undefined {
    const v = this.gguf.metadata.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw fail(this.gguf, "WRONG_TYPE", key, `metadata ${key} must be an array, found ${shown(v)}`);
    return v;
  }
}

function architectureOf(gguf: GgufFile, f: Fields): Architecture {
  const name = f.string("general.architecture");
  if (name === undefined) {
    throw fail(gguf, "MISSING_FIELD", "general.architecture", "metadata general.architecture is missing; every GGUF model names its architecture (is this a model file?)");
  }
  const architecture = GGUF_ARCHITECTURES.find((a) => a === name);
  if (architecture === undefined) {
    throw fail(
      gguf,
      "UNSUPPORTED_ARCHITECTURE",
      "general.architecture",
      `general.architecture "${name}" is not supported; supported: ${GGUF_ARCHITECTURES.join(", ")} (Llama 2/3, Mistral, Qwen2/2.5, SmolLM)`,
    );
  }
  return architecture;
}

/** Refuses what the engine's forward does not have: MoE, scaled RoPE other than llama3, biases beyond q/k/v, windows. */
function checkFeatures(gguf: GgufFile, f: Fields, arch: Architecture, tensorNames: ReadonlySet<string>): void {
  const unsupported = (path: string, message: string) => fail(gguf, "UNSUPPORTED_ARCHITECTURE", path, message);
  const experts = f.int(`${arch}.expert_count`, 0) ?? 0;
  if (experts > 0) throw unsupported(`${arch}.expert_count`, `a mixture of experts (${arch}.expert_count ${experts}, e.g. Mixtral) is not supported; the engine runs dense models`);
  const scaling = f.string(`${arch}.rope.scaling.type`);
  const scalingFactor = f.positive(`${arch}.rope.scaling.factor`);
  if ((scaling !== undefined && scaling !== "none") || (scaling === undefined && scalingFactor !== undefined && scalingFactor !== 1)) {
    throw unsupported(
      `${arch}.rope.scaling.type`,
      `rope scaling ${JSON.stringify(scaling ?? "linear")} (factor ${scalingFactor ?? "unset"}) is not supported; the engine runs rope scaling "llama3" (Llama 3.1) or none`,
    );
  }
  const linear = f.positive(`${arch}.rope.scale_linear`);
  if (linear !== undefined && linear !== 1) throw unsupported(`${arch}.rope.scale_linear`, `linear rope scaling (${arch}.rope.scale_linear ${linear}) is not supported; the engine runs rope scaling "llama3" or none`);
  const window = f.int(`${arch}.attention.sliding_window`, 0);
  if (arch === "mistral" && window !== undefined && window > 0) {
    throw unsupported(`${arch}.attention.sliding_window`, `sliding-window attention (window ${window}) is not supported; the engine attends to the whole context`);
  }
  if (arch !== "qwen2" && tensorNames.has("blk.0.attn_q.bias")) {
    throw unsupported("blk.0.attn_q.bias", `a ${arch} model with attention biases is not supported; the engine has q/k/v biases for qwen2 only`);
  }
  for (const name of ["blk.0.attn_output.bias", "blk.0.ffn_gate.bias", "blk.0.ffn_up.bias", "blk.0.ffn_down.bias"]) {
    if (tensorNames.has(name)) throw unsupported(name, `the file has ${name}; the engine has biases on q, k and v only (Qwen2's layout), none on the output projection or the MLP`);
  }
}

/** The ids generation stops on: eos, eot and eom, then control tokens llama.cpp also ends generation on. */
function stopIds(f: Fields): number[] {
  const ids: number[] = [];
  for (const key of ["tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"]) {
    const id = f.int(key, 0);
    if (id !== undefined) ids.push(id);
  }
  const tokens = f.array("tokenizer.ggml.tokens");
  const types = f.array("tokenizer.ggml.token_type");
  if (tokens && types) {
    tokens.forEach((token, id) => {
      if (types[id] === CONTROL_TOKEN && typeof token === "string" && END_OF_GENERATION_TEXTS.has(token)) ids.push(id);
    });
  }
  return [...new Set(ids)];
}

/** The hyperparameters of a GGUF model (general.architecture llama, mistral or qwen2) as the engine runs them.
 * `ropeDivisors`: the values of rope_freqs.weight where the file has it (readRopeDivisors). */
export function engineConfigFromGguf(gguf: GgufFile, ropeDivisors: readonly number[] | null = null): EngineConfig {
  const f = new Fields(gguf);
  const splits = f.int("split.count", 0) ?? 1;
  if (splits > 1) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: gguf.file,
      message: `${basename(gguf.file)} is part ${(f.int("split.no", 0) ?? 0) + 1} of a GGUF split into ${splits} files, which are not supported; merge them into one with llama.cpp's llama-gguf-split --merge`,
    });
  }
  const arch = architectureOf(gguf, f);
  const tensorNames = new Set(gguf.tensors.map((t) => t.name));
  checkFeatures(gguf, f, arch, tensorNames);
  const hidden = f.requiredInt(`${arch}.embedding_length`, 1, "the hidden size");
  const heads = f.requiredInt(`${arch}.attention.head_count`, 1, "the number of attention heads");
  const kvHeads = f.int(`${arch}.attention.head_count_kv`, 1) ?? heads;
  if (heads % kvHeads !== 0) {
    throw fail(gguf, "OUT_OF_RANGE", `${arch}.attention.head_count_kv`, `${arch}.attention.head_count (${heads}) must be a multiple of ${arch}.attention.head_count_kv (${kvHeads})`);
  }
  const keyLength = f.int(`${arch}.attention.key_length`, 1);
  const valueLength = f.int(`${arch}.attention.value_length`, 1);
  const ropeDims = f.int(`${arch}.rope.dimension_count`, 1);
  const headDim = keyLength ?? ropeDims ?? Math.floor(hidden / heads);
  if (valueLength !== undefined && valueLength !== headDim) {
    throw fail(gguf, "UNSUPPORTED_ARCHITECTURE", `${arch}.attention.value_length`, `value heads of ${valueLength} with key heads of ${headDim} are not supported; the engine's heads have one size`);
  }
  if (ropeDims !== undefined && ropeDims !== headDim) {
    throw fail(gguf, "UNSUPPORTED_ARCHITECTURE", `${arch}.rope.dimension_count`, `rotary embedding over ${ropeDims} of each head's ${headDim} dimensions (partial rotary) is not supported; the engine rotates whole heads`);
  }
  const tokens = f.array("tokenizer.ggml.tokens");
  const vocab = f.int(`${arch}.vocab_size`, 1) ?? tokens?.length;
  if (vocab === undefined || vocab < 1) {
    throw fail(gguf, "MISSING_FIELD", `${arch}.vocab_size`, `neither ${arch}.vocab_size nor tokenizer.ggml.tokens gives the vocabulary size; the file has no tokenizer`);
  }
  const ropeTheta = f.positive(`${arch}.rope.freq_base`) ?? 10000;
  const config: EngineConfig = {
    architecture: arch,
    vocab,
    hidden,
    layers: f.requiredInt(`${arch}.block_count`, 1, "the number of layers"),
    heads,
    kvHeads,
    headDim,
    intermediate: f.requiredInt(`${arch}.feed_forward_length`, 1, "the MLP's intermediate size"),
    rmsNormEps: f.requiredPositive(`${arch}.attention.layer_norm_rms_epsilon`, "the RMSNorm epsilon"),
    ropeTheta,
    ropeScaling: ropeScalingOf(gguf, f, arch, tensorNames, ropeDivisors, ropeTheta, headDim),
    tiedEmbeddings: !tensorNames.has("output.weight"),
    attentionBias: tensorNames.has("blk.0.attn_q.bias"),
    maxPositions: f.requiredInt(`${arch}.context_length`, 1, "the context length"),
    bosTokenId: f.int("tokenizer.ggml.bos_token_id", 0) ?? null,
    eosTokenIds: stopIds(f),
  };
  const keys: Record<LimitedField, string> = {
    layers: `${arch}.block_count`,
    hidden: `${arch}.embedding_length`,
    heads: `${arch}.attention.head_count`,
    kvHeads: `${arch}.attention.head_count_kv`,
    headDim: `${arch}.attention.key_length`,
    intermediate: `${arch}.feed_forward_length`,
    vocab: `${arch}.vocab_size`,
    maxPositions: `${arch}.context_length`,
  };
  checkConfigLimits(config, basename(gguf.file), (field) => keys[field]);
  return config;
}

/** Llama 3.1's scaling, which llama.cpp stores as rope_freqs.weight (see gguf-rope.ts). */
function ropeScalingOf(gguf: GgufFile, f: Fields, arch: string, tensorNames: ReadonlySet<string>, divisors: readonly number[] | null, ropeTheta: number, headDim: number): RopeScalingLlama3 | null {
  if (!tensorNames.has("rope_freqs.weight")) return null;
  if (divisors === null) {
    throw fail(gguf, "UNSUPPORTED_ARCHITECTURE", "rope_freqs.weight", "the file stores RoPE frequency divisors (rope_freqs.weight); pass their values (readRopeDivisors) to engineConfigFromGguf, as openModelDir does");
  }
  const original = f.int(`${arch}.rope.scaling.original_context_length`, 1);
  return llama3ScalingFromDivisors(divisors, ropeTheta, headDim, gguf.file, original);
}

const LAYER_TENSORS: Readonly<Record<string, string>> = {
  attn_norm: "input_layernorm",
  attn_q: "self_attn.q_proj",
  attn_k: "self_attn.k_proj",
  attn_v: "self_attn.v_proj",
  attn_output: "self_attn.o_proj",
  ffn_norm: "post_attention_layernorm",
  ffn_gate: "mlp.gate_proj",
  ffn_up: "mlp.up_proj",
  ffn_down: "mlp.down_proj",
};
const GLOBAL_TENSORS: Readonly<Record<string, string>> = {
  "token_embd.weight": "model.embed_tokens.weight",
  "output_norm.weight": "model.norm.weight",
  "output.weight": "lm_head.weight",
};

/** The Hugging Face name of a GGUF tensor (blk.3.attn_q.weight -> model.layers.3.self_attn.q_proj.weight), or undefined. */
export function hfTensorName(ggufName: string): string | undefined {
  const global = GLOBAL_TENSORS[ggufName];
  if (global) return global;
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(ggufName);
  const part = m ? LAYER_TENSORS[m[2]!] : undefined;
  return m && part ? `model.layers.${m[1]}.${part}.${m[3]}` : undefined;
}

/** The GGUF name of a Hugging Face tensor name (the inverse of hfTensorName). */
export function ggufTensorName(hfName: string): string | undefined {
  for (const [gguf, hf] of Object.entries(GLOBAL_TENSORS)) if (hf === hfName) return gguf;
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  if (!m) return undefined;
  const part = Object.entries(LAYER_TENSORS).find(([, hf]) => hf === m[2])?.[0];
  return part ? `blk.${m[1]}.${part}.${m[3]}` : undefined;
}

/** Rows the converter permuted (Llama's and Mistral's q and k), and over how many heads. */
function permutedHeads(config: EngineConfig, hfName: string): number | undefined {
  if (config.architecture === "qwen2") return undefined; // llama.cpp's Qwen2 uses the NeoX rotary layout: no permutation
  if (hfName.endsWith(".self_attn.q_proj.weight")) return config.heads;
  if (hfName.endsWith(".self_attn.k_proj.weight")) return config.kvHeads;
  return undefined;
}

/** The model's tensors from a GGUF file, checked against `config`, in expectedTensors(config) order. */
export function ggufTensors(gguf: GgufFile, config: EngineConfig): TensorEntry[] {
  const fileName = basename(gguf.file);
  const byHfName = new Map<string, GgufTensorInfo>();
  for (const t of gguf.tensors) {
    const hf = hfTensorName(t.name);
    if (hf) byHfName.set(hf, t);
  }
  // A needed tensor of a type the engine cannot read is refused; unneeded ones are ignored.
  for (const want of expectedTensors(config)) {
    const t = byHfName.get(want.name);
    if (t && !WEIGHT_DTYPES.includes(t.typeName as WeightDtype)) {
      throw new RuntimeError({
        code: "TENSOR_DTYPE",
        path: want.name,
        message:
          `${fileName}: tensor ${t.name} (${want.name}) is of type ${t.typeName}, which the engine cannot load; it loads ${WEIGHT_DTYPES.join(", ")}. ` +
          `Use a file quantized to one of those (e.g. Q4_K_M, Q6_K or Q8_0)`,
      });
    }
  }
  const entries: TensorEntry[] = [...byHfName].map(([name, t]) => {
    const permuteHeads = permutedHeads(config, name);
    return {
      name,
      file: gguf.file,
      dtype: t.typeName as WeightDtype,
      shape: [...t.dims].reverse(),
      offset: t.offset,
      byteLength: t.byteLength,
      ...(permuteHeads !== undefined ? { permuteHeads } : {}),
    };
  });
  return buildWeightSpec(config, entries, {
    source: `${fileName}'s metadata`,
    files: fileName,
    label: (name) => `${ggufTensorName(name) ?? name} (${name})`,
    missingHint: (name) =>
      name === "lm_head.weight"
        ? "a model without output.weight ties its output projection to token_embd.weight"
        : `a ${config.architecture} model with ${config.layers} layers needs it: the file is incomplete or of another architecture`,
  });
}
