// A model, opened and checked: everything the engine needs to load it. Either a Hugging Face
// model directory (config.json, safetensors, tokenizer.json) or a GGUF file (llama.cpp's
// single file: metadata, tokenizer and weights, possibly quantized).
import { stat } from "node:fs/promises";
import { basename, resolve } from "node:path";
import { readEngineConfig, type EngineConfig } from "./config.js";
import { RuntimeError } from "./errors.js";
import { isGgufFile, readGgufFile, type GgufFile } from "./gguf.js";
import { engineConfigFromGguf, ggufTensors } from "./gguf-model.js";
import { readRopeDivisors } from "./gguf-rope.js";
import { ggufTokenizer } from "./gguf-tokenizer.js";
import { readSafetensorsDir, readSafetensorsFile, type TensorEntry } from "./safetensors.js";
import { loadTokenizer, type ModelTokenizer } from "./tokenizer.js";
import { buildRetainingHeads, buildWeightSpec, type RetainingHeads } from "./weights.js";

export type ModelFormat = "hf" | "gguf";

export interface ModelDir {
  /** Absolute path of the model: the Hugging Face directory, or the .gguf file. */
  path: string;
  format: ModelFormat;
  config: EngineConfig;
  /** The weights the engine loads, checked against config, in expectedTensors(config) order. */
  tensors: TensorEntry[];
  retaining?: RetainingHeads;
  tokenizer: ModelTokenizer;
  /** The file's header (metadata and tensor directory), for format "gguf". */
  gguf?: GgufFile;
}

export interface OpenOptions {
  /** A safetensors file of Locret retaining heads for this model (resolved against the cwd). */
  retainingHeads?: string;
}

/** "hf" for a directory, "gguf" for a file that starts with the GGUF magic; anything else is refused. */
async function formatOf(path: string): Promise<ModelFormat> {
  let stats;
  try {
    stats = await stat(path);
  } catch {
    throw new RuntimeError({ code: "MODEL_FILE", path, message: `model directory or .gguf file ${path} does not exist` });
  }
  if (stats.isDirectory()) return "hf";
  if (stats.isFile() && (await isGgufFile(path))) return "gguf";
  throw new RuntimeError({
    code: "MODEL_FILE",
    path,
    message: `${path} is neither a directory nor a GGUF file; pass a Hugging Face model directory (with config.json) or a .gguf file`,
  });
}

async function openHf(path: string): Promise<Omit<ModelDir, "retaining">> {
  const config = await readEngineConfig(path);
  const tensors = buildWeightSpec(config, await readSafetensorsDir(path));
  return { path, format: "hf", config, tensors, tokenizer: await loadTokenizer(path) };
}

async function openGguf(path: string): Promise<Omit<ModelDir, "retaining">> {
  const gguf = await readGgufFile(path);
  const config = engineConfigFromGguf(gguf, await readRopeDivisors(gguf));
  const tensors = ggufTensors(gguf, config);
  const tokenizer = ggufTokenizer(gguf.metadata, gguf.file);
  return { path, format: "gguf", config, tensors, tokenizer, gguf };
}

/** Opens a Hugging Face model directory or a .gguf file and checks it against itself. */
export async function openModelDir(pathArg: string, options: OpenOptions = {}): Promise<ModelDir> {
  const path = resolve(pathArg);
  const format = await formatOf(path);
  const model = format === "gguf" ? await openGguf(path) : await openHf(path);
  const { config, tokenizer } = model;
  const retaining = options.retainingHeads === undefined ? undefined : buildRetainingHeads(config, await readSafetensorsFile(options.retainingHeads));
  // An id past the embedding table would read out of bounds in the engine.
  if (tokenizer.maxTokenId >= config.vocab) {
    const [tokenizerName, vocabName] =
      format === "gguf" ? [`${basename(path)}'s tokenizer (tokenizer.ggml.tokens)`, "its vocabulary (token_embd.weight)"] : ["tokenizer.json", "config.json's vocab_size"];
    throw new RuntimeError({
      code: "TOKENIZER",
      path: "vocab_size",
      message: `${tokenizerName} has token ids up to ${tokenizer.maxTokenId} but ${vocabName} is ${config.vocab}; the tokenizer belongs to another model`,
    });
  }
  return { ...model, ...(retaining ? { retaining } : {}) };
}
