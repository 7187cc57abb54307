// `apb make-tiny-model <dir>`: a small random Llama-family model for tests and the demo.
import type { Command } from "commander";
// This command is a fixture maker, so it takes the writer from the runtime's testing entry.
import { writeTinyModel } from "@apb/runtime/testing";
import { UsageError } from "../errors.js";
import { parseWhole } from "../parse.js";

interface Options {
  architecture: string;
  dtype: string;
  layers: string;
  hidden: string;
  heads: string;
  kvHeads: string;
  intermediate: string;
  vocab: string;
  shards: string;
  seed: string;
  tied?: boolean;
  llama31?: boolean;
}

const ARCHITECTURES = ["llama", "qwen2", "mistral"] as const;
const DTYPES = ["bfloat16", "float16", "float32"] as const;

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) throw new UsageError(`${flag} must be one of ${allowed.join(", ")}; got '${value}'`);
  return value as T;
}

export function registerMakeTinyModel(program: Command): void {
  program
    .command("make-tiny-model")
    .description("Write a small random Llama-family model (config.json, safetensors, tokenizer.json)")
    .argument("<dir>", "directory to write (created if missing)")
    .option("--architecture <name>", ARCHITECTURES.join("|"), "llama")
    .option("--dtype <name>", DTYPES.join("|"), "bfloat16")
    .option("--layers <n>", "decoder layers", "2")
    .option("--hidden <n>", "hidden size", "64")
    .option("--heads <n>", "query heads", "4")
    .option("--kv-heads <n>", "KV heads", "2")
    .option("--intermediate <n>", "FFN size", "128")
    .option("--vocab <n>", "vocabulary (at least 271: bytes, merges, specials)", "512")
    .option("--shards <n>", "safetensors shards", "1")
    .option("--seed <n>", "random seed", "1")
    .option("--tied", "tie the LM head to the embeddings")
    .option("--llama31", "write Llama 3.1's rope_scaling")
    .action(async (dir: string, o: Options) => {
      const model = await writeTinyModel(dir, {
        architecture: oneOf("--architecture", o.architecture, ARCHITECTURES),
        dtype: oneOf("--dtype", o.dtype, DTYPES),
        layers: parseWhole("--layers", o.layers),
        hidden: parseWhole("--hidden", o.hidden),
        heads: parseWhole("--heads", o.heads),
        kvHeads: parseWhole("--kv-heads", o.kvHeads),
        intermediate: parseWhole("--intermediate", o.intermediate),
        vocab: parseWhole("--vocab", o.vocab),
        shards: parseWhole("--shards", o.shards),
        seed: parseWhole("--seed", o.seed),
        tiedEmbeddings: o.tied === true,
        llama31: o.llama31 === true,
        chatTemplate: true,
      });
      const c = model.config;
      process.stdout.write(
        `wrote ${model.dir}: ${c.architecture}, ${c.layers} layers, hidden ${c.hidden}, ${c.heads}/${c.kvHeads} heads, vocab ${c.vocab}, ${model.weightFiles.length} weight file(s)\n`,
      );
    });
}
