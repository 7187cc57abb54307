// Hugging Face config.json (+ generation_config.json) -> EngineConfig, the hyperparameters the
// engine runs with. Defaults are transformers' (LlamaConfig, MistralConfig, Qwen2Config), so a
// config that leaves a field out means what it means in Python. The fields every reader reads,
// the model types apb runs and the sizes' defaults are the planner's (@apb/planner's
// hfConfigSchema, MODEL_TYPES, hfSizes: the one config.json reader); this extends that schema
// with the numerics, features and token ids the engine needs, and words errors as the runtime does.
import { join } from "node:path";
import { architectureOf, hfConfigSchema, hfSizes, MODEL_TYPES, type Architecture } from "@apb/planner";
import { z } from "zod";
import { checkConfigLimits, type LimitedField } from "./config-limits.js";
import { fromZod, RuntimeError } from "./errors.js";
import { exists, readJson } from "./files.js";

export { MODEL_TYPES, type Architecture };

export interface RopeScalingLlama3 {
  type: "llama3";
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPositions: number;
}

export interface EngineConfig {
  architecture: Architecture;
  vocab: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  intermediate: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScalingLlama3 | null;
  tiedEmbeddings: boolean;
  /** Biases on q_proj, k_proj and v_proj (not o_proj): Qwen2's layout. */
  attentionBias: boolean;
  maxPositions: number;
  bosTokenId: number | null;
  eosTokenIds: number[];
}

/** transformers' defaults where the architectures differ. */
const DEFAULTS: Record<Architecture, { maxPositions: number; bosTokenId: number | null; eosTokenId: number | null }> = {
  llama: { maxPositions: 2048, bosTokenId: 1, eosTokenId: 2 },
  mistral: { maxPositions: 4096 * 32, bosTokenId: 1, eosTokenId: 2 },
  qwen2: { maxPositions: 32768, bosTokenId: null, eosTokenId: null },
};

const count = z.number().int().positive();
const positive = z.number().positive();
const tokenIds = z.union([z.number().int().nonnegative(), z.array(z.number().int().nonnegative()), z.null()], {
  error: "must be a token id, an array of token ids or null",
});

/** The planner's schema of the fields every reader reads, and what the engine also needs. */
const engineConfigSchema = hfConfigSchema.extend({
  hidden_act: z.string().optional(),
  rms_norm_eps: positive.optional(),
  rope_theta: positive.optional(),
  rope_scaling: z.looseObject({}).nullish(),
  // transformers 5 writes rope_theta and the scaling together here instead.
  rope_parameters: z.looseObject({ rope_theta: positive.optional() }).nullish(),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().optional(),
  sliding_window: z.number().int().nullish(),
  use_sliding_window: z.boolean().optional(),
  bos_token_id: z.number().int().nonnegative().nullish(),
  eos_token_id: tokenIds.optional(),
});

const generationConfigSchema = z.looseObject({
  bos_token_id: z.number().int().nonnegative().nullish(),
  eos_token_id: tokenIds.optional(),
});

const llama3ScalingSchema = z.looseObject({
  factor: positive,
  low_freq_factor: positive,
  high_freq_factor: positive,
  original_max_position_embeddings: count,
});

function unsupported(path: string, message: string): RuntimeError {
  return new RuntimeError({ code: "UNSUPPORTED_ARCHITECTURE", path, message: `config.json: ${message}` });
}

function ropeScalingOf(raw: Record<string, unknown> | null | undefined, key: "rope_scaling" | "rope_parameters"): RopeScalingLlama3 | null {
  if (raw === null || raw === undefined) return null;
  // transformers renamed "type" to "rope_type"; both occur in published configs.
  const field = raw.rope_type !== undefined ? "rope_type" : "type";
  const kind = raw[field];
  if (kind === "default") return null;
  if (kind !== "llama3") {
    throw unsupported(
      `${key}.${field}`,
      `${key} ${field} ${JSON.stringify(kind)} is not supported; the engine runs rope scaling "llama3" ` +
        `(Llama 3.1) or none. Remove the scaling to run at the model's original context length`,
    );
  }
  // Parsed under its key so errors name "rope_scaling.factor", not "factor".
  const input = { [key]: raw };
  const parsed = z.object({ [key]: llama3ScalingSchema }).safeParse(input);
  if (!parsed.success) throw fromZod(parsed.error, input, "config.json");
  const s = (parsed.data as Record<string, z.infer<typeof llama3ScalingSchema>>)[key]!;
  return {
    type: "llama3",
    factor: s.factor,
    lowFreqFactor: s.low_freq_factor,
    highFreqFactor: s.high_freq_factor,
    originalMaxPositions: s.original_max_position_embeddings,
  };
}

function idList(ids: number | number[] | null | undefined): number[] {
  if (ids === null || ids === undefined) return [];
  return Array.isArray(ids) ? ids : [ids];
}

/** Rejects features of otherwise supported architectures that the engine's kernels do not have. */
function checkFeatures(c: z.infer<typeof engineConfigSchema>, architecture: Architecture): void {
  if (c.hidden_act !== undefined && c.hidden_act !== "silu") {
    throw unsupported("hidden_act", `hidden_act "${c.hidden_act}" is not supported; the engine's MLP is SwiGLU ("silu")`);
  }
  if (architecture === "llama" && c.attention_bias === true) {
    throw unsupported("attention_bias", "attention_bias: true (a Llama with biases on q, k, v and o) is not supported; only Qwen2's q/k/v biases are");
  }
  if (c.mlp_bias === true) throw unsupported("mlp_bias", "mlp_bias: true is not supported; the engine's MLP has no biases");
  // Qwen2 configs carry sliding_window even when it is off; Mistral applies it whenever it is set.
  const windowed = architecture === "qwen2" ? c.use_sliding_window === true : architecture === "mistral" && typeof c.sliding_window === "number";
  if (windowed) {
    throw unsupported(
      "sliding_window",
      `sliding-window attention (sliding_window ${String(c.sliding_window)}) is not supported; the engine attends to the whole ` +
        `context. Use a checkpoint without a window (e.g. Mistral-7B v0.2 or later)`,
    );
  }
  const { heads, kvHeads } = hfSizes(c);
  if (heads % kvHeads !== 0) {
    throw new RuntimeError({
      code: "OUT_OF_RANGE",
      path: "num_key_value_heads",
      message: `config.json: num_attention_heads (${heads}) must be a multiple of num_key_value_heads (${kvHeads})`,
    });
  }
}

/** config.json's name for each bounded EngineConfig field. */
const HF_FIELDS: Record<LimitedField, string> = {
  layers: "num_hidden_layers",
  hidden: "hidden_size",
  heads: "num_attention_heads",
  kvHeads: "num_key_value_heads",
  headDim: "head_dim",
  intermediate: "intermediate_size",
  vocab: "vocab_size",
  maxPositions: "max_position_embeddings",
};

/** Converts parsed config.json (and generation_config.json, when given) into an EngineConfig. */
export function engineConfigFromHf(config: unknown, generationConfig?: unknown): EngineConfig {
  const parsed = engineConfigSchema.safeParse(config);
  if (!parsed.success) throw fromZod(parsed.error, config, "config.json");
  const c = parsed.data;
  const architecture = architectureOf(c.model_type);
  if (architecture === undefined) {
    throw unsupported(
      "model_type",
      `model_type "${c.model_type}" is not supported; supported: ${Object.keys(MODEL_TYPES).join(", ")} (Llama 2/3/3.1, Mistral, Qwen2/2.5, Yi)`,
    );
  }
  checkFeatures(c, architecture);
  let generation: z.infer<typeof generationConfigSchema> = {};
  if (generationConfig !== undefined) {
    const g = generationConfigSchema.safeParse(generationConfig);
    if (!g.success) throw fromZod(g.error, generationConfig, "generation_config.json");
    generation = g.data;
  }
  const defaults = DEFAULTS[architecture];
  // generate() stops on generation_config's ids; config.json's may list more (or older) ones.
  const configEos = c.eos_token_id === undefined ? idList(defaults.eosTokenId) : idList(c.eos_token_id);
  const eosTokenIds = [...new Set([...idList(generation.eos_token_id), ...configEos])];
  const sizes = hfSizes(c);
  const engineConfig: EngineConfig = {
    architecture,
    vocab: sizes.vocab,
    hidden: sizes.hidden,
    layers: sizes.layers,
    heads: sizes.heads,
    kvHeads: sizes.kvHeads,
    headDim: sizes.headDim,
    intermediate: sizes.intermediate,
    rmsNormEps: c.rms_norm_eps ?? 1e-6,
    ropeTheta: c.rope_theta ?? c.rope_parameters?.rope_theta ?? 10000,
    ropeScaling: c.rope_scaling ? ropeScalingOf(c.rope_scaling, "rope_scaling") : ropeScalingOf(c.rope_parameters, "rope_parameters"),
    tiedEmbeddings: sizes.tiedEmbeddings,
    // Qwen2 always has q/k/v biases (transformers hard-codes bias=True); Mistral never has them.
    attentionBias: architecture === "qwen2" ? (c.attention_bias ?? true) : false,
    maxPositions: c.max_position_embeddings ?? defaults.maxPositions,
    // An explicit null in config.json means "no BOS"; absent means transformers' default.
    bosTokenId: c.bos_token_id ?? generation.bos_token_id ?? (c.bos_token_id === null ? null : defaults.bosTokenId),
    eosTokenIds,
  };
  checkConfigLimits(engineConfig, "config.json", (field) => HF_FIELDS[field]);
  return engineConfig;
}

/** Reads `dir`/config.json and, if present, `dir`/generation_config.json. */
export async function readEngineConfig(dir: string): Promise<EngineConfig> {
  const configFile = join(dir, "config.json");
  if (!(await exists(configFile))) {
    throw new RuntimeError({
      code: "MODEL_FILE",
      path: configFile,
      message: `config.json is missing from ${dir}; a Hugging Face model directory needs config.json, the safetensors weights and tokenizer.json`,
    });
  }
  const config = await readJson(configFile, "config.json");
  const generationFile = join(dir, "generation_config.json");
  const generation = (await exists(generationFile)) ? await readJson(generationFile, "generation_config.json") : undefined;
  return engineConfigFromHf(config, generation);
}
