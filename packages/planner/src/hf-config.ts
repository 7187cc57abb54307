// Reads a Hugging Face config.json into a model shape. Only the Llama family is accepted
// (Llama 2/3/3.1, Mistral, Qwen2/2.5, Yi): what the engine runs.
import { z } from "zod";
import { fromZod, PlannerError } from "./errors.js";
import type { ModelShape } from "./schema.js";

const ARCHITECTURES = ["llama", "mistral", "qwen2", "yi"] as const;
const DTYPE_BYTES: Record<string, number> = { bfloat16: 2, float16: 2, float32: 4 };

const count = z.number().int().positive();
const hfConfigSchema = z.looseObject({
  model_type: z.string(),
  num_hidden_layers: count,
  hidden_size: count,
  num_attention_heads: count,
  num_key_value_heads: count.optional(),
  head_dim: count.optional(),
  intermediate_size: count,
  vocab_size: count,
  tie_word_embeddings: z.boolean().optional(),
  torch_dtype: z.string().optional(),
  dtype: z.string().optional(),
  max_position_embeddings: count.optional(),
});

export interface HfModel {
  shape: ModelShape;
  modelType: string;
  contextLimitTokens: number | null;
}

export function modelFromHfConfig(config: unknown): HfModel {
  const parsed = hfConfigSchema.safeParse(config);
  if (!parsed.success) {
    const e = fromZod(parsed.error, config);
    throw new PlannerError({ ...e.toJSON(), message: `config.json: ${e.message}` });
  }
  const c = parsed.data;
  if (!(ARCHITECTURES as readonly string[]).includes(c.model_type)) {
    throw new PlannerError({
      code: "OUT_OF_RANGE",
      path: "model_type",
      message: `config.json: model_type "${c.model_type}" is not supported; supported: ${ARCHITECTURES.join(", ")}`,
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
  return {
    modelType: c.model_type,
    contextLimitTokens: c.max_position_embeddings ?? null,
    shape: {
      layers: c.num_hidden_layers,
      hidden: c.hidden_size,
      heads: c.num_attention_heads,
      kvHeads: c.num_key_value_heads ?? c.num_attention_heads,
      headDim: c.head_dim ?? Math.floor(c.hidden_size / c.num_attention_heads),
      intermediate: c.intermediate_size,
      vocab: c.vocab_size,
      bytesPerWeight,
      tiedEmbeddings: c.tie_word_embeddings ?? false,
    },
  };
}
