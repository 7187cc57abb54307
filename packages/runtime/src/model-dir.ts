// A Hugging Face model directory, opened and checked: everything the engine needs to load it.
import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { readEngineConfig, type EngineConfig } from "./config.js";
import { RuntimeError } from "./errors.js";
import { readSafetensorsDir, readSafetensorsFile, type TensorEntry } from "./safetensors.js";
import { loadTokenizer, type ModelTokenizer } from "./tokenizer.js";
import { buildRetainingHeads, buildWeightSpec, type RetainingHeads } from "./weights.js";

export interface ModelDir {
  /** Absolute path of the directory. */
  dir: string;
  config: EngineConfig;
  /** The weights the engine loads, checked against config, in expectedTensors(config) order. */
  tensors: TensorEntry[];
  retaining?: RetainingHeads;
  tokenizer: ModelTokenizer;
}

export interface OpenOptions {
  /** A safetensors file of Locret retaining heads for this model (resolved against the cwd). */
  retainingHeads?: string;
}

async function checkDirectory(dir: string): Promise<void> {
  let isDirectory = false;
  try {
    isDirectory = (await stat(dir)).isDirectory();
  } catch {
    throw new RuntimeError({ code: "MODEL_FILE", path: dir, message: `model directory ${dir} does not exist` });
  }
  if (!isDirectory) {
    throw new RuntimeError({ code: "MODEL_FILE", path: dir, message: `${dir} is not a directory; pass the Hugging Face model directory (with config.json)` });
  }
}

export async function openModelDir(dirArg: string, options: OpenOptions = {}): Promise<ModelDir> {
  const dir = resolve(dirArg);
  await checkDirectory(dir);
  const config = await readEngineConfig(dir);
  const tensors = buildWeightSpec(config, await readSafetensorsDir(dir));
  const retaining = options.retainingHeads === undefined ? undefined : buildRetainingHeads(config, await readSafetensorsFile(options.retainingHeads));
  const tokenizer = await loadTokenizer(dir);
  // An id past the embedding table would read out of bounds in the engine.
  if (tokenizer.maxTokenId >= config.vocab) {
    throw new RuntimeError({
      code: "TOKENIZER",
      path: "vocab_size",
      message: `tokenizer.json has token ids up to ${tokenizer.maxTokenId} but config.json's vocab_size is ${config.vocab}; the tokenizer belongs to another model`,
    });
  }
  return { dir, config, tensors, ...(retaining ? { retaining } : {}), tokenizer };
}
