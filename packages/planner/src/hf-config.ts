// Hugging Face config.json: the one reader of its fields. The schema of the fields every
// reader reads (the model's type and sizes), the model types apb runs, and how the sizes a
// config may leave out are derived live here; the planner reads a model shape with them
// (modelFromHfConfig, for `apb plan` and the web page) and the runtime extends the schema with
// the numerics it also needs (packages/runtime/src/config.ts: engineConfigFromHf). Each words
// its errors its own way, through its own error class. Only the Llama family is accepted
// (Llama 2/3/3.1, Mistral, Qwen2/2.5, Yi): what the engine runs.
import { z } from "zod";
import { fromZod, PlannerError } from "./errors.js";
import type { ModelShape } from "./schema.js";

/** The layouts the engine runs. */
export type Architecture = "llama" | "mistral" | "qwen2";

/** model_type values accepted (in any case), and the architecture each one runs as ("yi" is Llama's layout). */
export const MODEL_TYPES: Readonly<Record<string, Architecture>> = { llama: "llama", mistral: "mistral", qwen2: "qwen2", yi: "llama" };

/** The architecture a config.json's model_type runs as, or undefined when apb does not run it. */
export function architectureOf(modelType: string): Architecture | undefined {
  const key = modelType.toLowerCase();
  return Object.hasOwn(MODEL_TYPES, key) ? MODEL_TYPES[key] : undefined;
}

const count = z.number().int().positive();

/**
 * The fields of config.json every reader reads. Unknown fields pass (a config has many);
 * `null` is absent where transformers writes it so (num_key_value_heads, head_dim). A reader
 * that needs more fields extends it (`hfConfigSchema.extend({...})`).
 */
export const hfConfigSchema = z.looseObject({
  model_type: z.string(),
  vocab_size: count,
  hidden_size: count,
  num_hidden_layers: count,
  num_attention_heads: count,
  num_key_value_heads: count.nullish(),
  head_dim: count.nullish(),
  intermediate_size: count,
  tie_word_embeddings: z.boolean().optional(),
  max_position_embeddings: count.optional(),
});

export type HfConfig = z.infer<typeof hfConfigSchema>;

/** A config's sizes, with transformers' defaults for those left out. */
export interface HfSizes {
  layers: number;
  hidden: number;
  heads: number;
  /** num_key_value_heads; absent: as many as heads (plain multi-head attention). */
  kvHeads: number;
  /** head_dim; absent: hidden / heads, rounded down. */
  headDim: number;
  intermediate: number;
  vocab: number;
  /** tie_word_embeddings; absent: false. */
  tiedEmbeddings: boolean;
}

/** The sizes of a parsed config, as every reader derives them. */
export function hfSizes(c: HfConfig): HfSizes {
  return {
    layers: c.num_hidden_layers,
    hidden: c.hidden_size,
    heads: c.num_attention_heads,
    kvHeads: c.num_key_value_heads ?? c.num_attention_heads,
    headDim: c.head_dim ?? Math.floor(c.hidden_size / c.num_attention_heads),
    intermediate: c.intermediate_size,
    vocab: c.vocab_size,
    tiedEmbeddings: c.tie_word_embeddings ?? false,
  };
}

const DTYPE_BYTES: Record<string, number> = { bfloat16: 2, float16: 2, float32: 4 };

const plannerSchema = hfConfigSchema.extend({
  torch_dtype: z.string().optional(),
  dtype: z.string().optional(),
});

export interface HfModel {
  shape: ModelShape;
  modelType: string;
  contextLimitTokens: number | null;
}

/** The model shape the planner lays out, from a parsed config.json (its weights' size from torch_dtype). */
export function modelFromHfConfig(config: unknown): HfModel {
  const parsed = plannerSchema.safeParse(config);
  if (!parsed.success) {
    const e = fromZod(parsed.error, config);
    throw new PlannerError({ ...e.toJSON(), message: `config.json: ${e.message}` });
  }
  const c = parsed.data;
  if (architectureOf(c.model_type) === undefined) {
    throw new PlannerError({
      code: "OUT_OF_RANGE",
      path: "model_type",
      message: `config.json: model_type "${c.model_type}" is not supported; supported: ${Object.keys(MODEL_TYPES).join(", ")}`,
    });
  }
  const dtype = c.torch_dtype ?? c.dtype ?? "bfloat16";
  const bytesPerWeight = DTYPE_BYTES[dtype];
  if (bytesPerWeight === undefined) {
    throw new PlannerError({
      code: "OUT_OF_RANGE",
      path: "torch_dtype",
      message: `config.json: torch_dtype "${dtype}" is not supported; supported: ${Object.keys(DTYPE_BYTES).join(", ")}`,
    });
  }
  const s = hfSizes(c);
  return {
    modelType: c.model_type,
    contextLimitTokens: c.max_position_embeddings ?? null,
    shape: { layers: s.layers, hidden: s.hidden, heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim, intermediate: s.intermediate, vocab: s.vocab, bytesPerWeight, tiedEmbeddings: s.tiedEmbeddings },
  };
}
