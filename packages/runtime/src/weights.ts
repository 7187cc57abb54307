// The Llama-family tensor set: which tensors a config implies, with which shapes ([out, in],
// row-major, as nn.Linear stores them), in the order the engine consumes them.
import { basename } from "node:path";
import type { EngineConfig } from "./config.js";
import { RuntimeError } from "./errors.js";
import type { TensorEntry } from "./safetensors.js";

export interface ExpectedTensor {
  name: string;
  shape: number[];
  /** How the shape follows from config.json, for messages: e.g. "[kvHeads*headDim, hidden]". */
  formula: string;
}

function layerTensors(c: EngineConfig, i: number): ExpectedTensor[] {
  const p = `model.layers.${i}`;
  const q = c.heads * c.headDim;
  const kv = c.kvHeads * c.headDim;
  const bias = (proj: string, size: number, formula: string): ExpectedTensor[] =>
    c.attentionBias ? [{ name: `${p}.self_attn.${proj}.bias`, shape: [size], formula }] : [];
  return [
    { name: `${p}.input_layernorm.weight`, shape: [c.hidden], formula: "[hidden]" },
    { name: `${p}.self_attn.q_proj.weight`, shape: [q, c.hidden], formula: "[heads*headDim, hidden]" },
    ...bias("q_proj", q, "[heads*headDim]"),
    { name: `${p}.self_attn.k_proj.weight`, shape: [kv, c.hidden], formula: "[kvHeads*headDim, hidden]" },
    ...bias("k_proj", kv, "[kvHeads*headDim]"),
    { name: `${p}.self_attn.v_proj.weight`, shape: [kv, c.hidden], formula: "[kvHeads*headDim, hidden]" },
    ...bias("v_proj", kv, "[kvHeads*headDim]"),
    { name: `${p}.self_attn.o_proj.weight`, shape: [c.hidden, q], formula: "[hidden, heads*headDim]" },
    { name: `${p}.post_attention_layernorm.weight`, shape: [c.hidden], formula: "[hidden]" },
    { name: `${p}.mlp.gate_proj.weight`, shape: [c.intermediate, c.hidden], formula: "[intermediate, hidden]" },
    { name: `${p}.mlp.up_proj.weight`, shape: [c.intermediate, c.hidden], formula: "[intermediate, hidden]" },
    { name: `${p}.mlp.down_proj.weight`, shape: [c.hidden, c.intermediate], formula: "[hidden, intermediate]" },
  ];
}

/** Every tensor `config` needs, in the engine's order: embeddings, layers 0.., final norm, lm_head. */
export function expectedTensors(config: EngineConfig): ExpectedTensor[] {
  const layers = Array.from({ length: config.layers }, (_, i) => layerTensors(config, i)).flat();
  return [
    { name: "model.embed_tokens.weight", shape: [config.vocab, config.hidden], formula: "[vocab, hidden]" },
    ...layers,
    { name: "model.norm.weight", shape: [config.hidden], formula: "[hidden]" },
    // Tied embeddings reuse embed_tokens as the output projection; a stray lm_head is ignored.
    ...(config.tiedEmbeddings ? [] : [{ name: "lm_head.weight", shape: [config.vocab, config.hidden], formula: "[vocab, hidden]" }]),
  ];
}

function fileSet(tensors: readonly TensorEntry[]): string {
  const files = [...new Set(tensors.map((t) => basename(t.file)))];
  return files.length === 0 ? "(no tensors)" : files.join(", ");
}

const shapeText = (shape: readonly number[]) => `[${shape.join(", ")}]`;

/** How pick() names things in its messages. */
export interface WeightSource {
  /** What implies the shapes: "config.json", or a GGUF file's metadata. */
  source: string;
  /** The files searched, for "is missing from ..." (default: the files of the tensors given). */
  files?: string;
  /** A tensor's name as shown (default: itself); GGUF shows its name in the file too. */
  label?: (name: string) => string;
  /** Why a missing tensor matters and what to do. */
  missingHint: (name: string) => string;
}

/** Each expected tensor found with its expected shape, in `expected`'s order; else a RuntimeError. */
function pick(expected: readonly ExpectedTensor[], tensors: readonly TensorEntry[], from: WeightSource): TensorEntry[] {
  const byName = new Map(tensors.map((t) => [t.name, t]));
  const label = from.label ?? ((name: string) => name);
  return expected.map((want) => {
    const found = byName.get(want.name);
    if (!found) {
      throw new RuntimeError({
        code: "TENSOR_MISSING",
        path: want.name,
        message: `${label(want.name)} (expected shape ${shapeText(want.shape)}) is missing from ${from.files ?? fileSet(tensors)}; ${from.missingHint(want.name)}`,
      });
    }
    if (found.shape.length !== want.shape.length || found.shape.some((d, k) => d !== want.shape[k])) {
      throw new RuntimeError({
        code: "TENSOR_SHAPE",
        path: want.name,
        message:
          `${label(want.name)} in ${basename(found.file)} has shape ${shapeText(found.shape)} but ${from.source} implies ${shapeText(want.shape)} ` +
          `(${want.formula}); the weights and ${from.source} do not belong together`,
      });
    }
    return found;
  });
}

/** The model's tensors, checked against `config`, in the order of expectedTensors(config); `from` overrides the messages (GGUF). */
export function buildWeightSpec(config: EngineConfig, tensors: readonly TensorEntry[], from?: WeightSource): TensorEntry[] {
  return pick(
    expectedTensors(config),
    tensors,
    from ?? {
      source: "config.json",
      missingHint: (name) =>
        name === "lm_head.weight"
          ? "if the model ties its output projection to the embeddings, set tie_word_embeddings: true in config.json"
          : `a ${config.architecture} model with ${config.layers} layers needs it: the checkpoint is incomplete or of another architecture`,
    },
  );
}

/** Locret retaining heads: a small MLP per layer scoring each KV head's cached entries. */
export interface RetainingHeads {
  /** Width of the hidden layer (R): fc1 is [R, (heads+2*kvHeads)*headDim], fc2 is [kvHeads, R]. */
  intermediate: number;
  /** Per layer: fc1.weight, fc1.bias, fc2.weight, fc2.bias; layers in order. */
  tensors: TensorEntry[];
}

/** Locret's heads: fc1 and fc2 per layer. APB's released heads have no biases; files that
 * have them (`bias: true`) must have them for every layer. */
export function expectedRetainingTensors(config: EngineConfig, intermediate: number, options: { bias?: boolean } = {}): ExpectedTensor[] {
  const input = (config.heads + 2 * config.kvHeads) * config.headDim;
  return Array.from({ length: config.layers }, (_, i) => {
    const p = `model.layers.${i}.self_attn`;
    const weights: ExpectedTensor[] = [
      { name: `${p}.fc1.weight`, shape: [intermediate, input], formula: "[R, (heads+2*kvHeads)*headDim]" },
      { name: `${p}.fc2.weight`, shape: [config.kvHeads, intermediate], formula: "[kvHeads, R]" },
    ];
    const biases: ExpectedTensor[] = [
      { name: `${p}.fc1.bias`, shape: [intermediate], formula: "[R]" },
      { name: `${p}.fc2.bias`, shape: [config.kvHeads], formula: "[kvHeads]" },
    ];
    return options.bias ? [weights[0]!, biases[0]!, weights[1]!, biases[1]!] : weights;
  }).flat();
}

/** Retaining heads from their own safetensors file; R comes from layer 0's fc1 and must hold for all. */
export function buildRetainingHeads(config: EngineConfig, tensors: readonly TensorEntry[]): RetainingHeads {
  const firstName = "model.layers.0.self_attn.fc1.weight";
  const first = tensors.find((t) => t.name === firstName);
  const input = (config.heads + 2 * config.kvHeads) * config.headDim;
  if (!first) {
    throw new RuntimeError({
      code: "TENSOR_MISSING",
      path: firstName,
      message: `${firstName} (expected shape [R, ${input}], [R, (heads+2*kvHeads)*headDim]) is missing from ${fileSet(tensors)}; is this a Locret retaining-heads file?`,
    });
  }
  const intermediate = first.shape[0] ?? 0;
  if (intermediate < 1) {
    throw new RuntimeError({
      code: "TENSOR_SHAPE",
      path: firstName,
      message: `${firstName} in ${basename(first.file)} has shape ${shapeText(first.shape)} but needs [R, ${input}] with R >= 1`,
    });
  }
  const bias = tensors.some((t) => t.name === "model.layers.0.self_attn.fc1.bias");
  const hint = () => `retaining heads need fc1 and fc2 (weights${bias ? " and biases" : ""}) for each of the model's ${config.layers} layers; check that the file was trained for this model`;
  return { intermediate, tensors: pick(expectedRetainingTensors(config, intermediate, { bias }), tensors, { source: "the model's config (with R from layer 0's fc1)", missingHint: hint }) };
}
