// The loader under fuzzing: over a thousand mutations of a tiny model's config.json,
// safetensors file and tokenizer files each end in a valid load (then a short generation) or
// a RuntimeError with a stable code, never a crash, a hang, another kind of error, or
// INTERNAL (which would mean a case the loader does not know). APB_FUZZ_SEED replays a run,
// APB_FUZZ_CASES runs more cases.
import { link, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";
import { mutate, type ModelFiles } from "./loader-fuzz.test-helper.js";
import { loadModel, RuntimeError } from "./index.js";
import { seededUniform, writeTinyModel } from "./testing.js";

const freshDir = tempDirs("fuzz");
const CASES = Number(process.env.APB_FUZZ_CASES ?? 1200);
const CASE_TIMEOUT_MS = 15_000;

/** Every code a loader or a first generation may answer with: what the user can fix. */
const STABLE_CODES = new Set([
  "INVALID_JSON", "MISSING_FIELD", "WRONG_TYPE", "OUT_OF_RANGE", "MODEL_FILE", "TENSOR_MISSING", "TENSOR_SHAPE", "TENSOR_DTYPE",
  "UNSUPPORTED_ARCHITECTURE", "TOKENIZER", "INVALID_INPUT", "NUMERIC", "PROMPT_TOO_LONG", "PLAN", "INFEASIBLE",
]);

const FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"] as const;

async function baseFiles(dir: string): Promise<ModelFiles> {
  await writeTinyModel(dir, { seed: 8, layers: 1, hidden: 16, heads: 2, kvHeads: 1, intermediate: 32, vocab: 272 });
  const text = (name: string) => readFile(join(dir, name), "utf8");
  return {
    "config.json": await text("config.json"),
    "generation_config.json": await text("generation_config.json"),
    "model.safetensors": await readFile(join(dir, "model.safetensors")),
    "tokenizer.json": await text("tokenizer.json"),
    "tokenizer_config.json": await text("tokenizer_config.json"),
  };
}

/** Writes a case's files; those it left as they were are hard links to the base's. */
async function writeCase(dir: string, baseDir: string, base: ModelFiles, files: ModelFiles): Promise<void> {
  await mkdir(dir);
  for (const name of FILES) {
    if (files[name] === base[name]) await link(join(baseDir, name), join(dir, name));
    else await writeFile(join(dir, name), files[name]);
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** "loaded" or the error's code; throws what is not a RuntimeError with a stable code. */
async function outcome(dir: string): Promise<string> {
  try {
    const model = await loadModel(dir);
    try {
      await model.generate({ document: "The archive keeps the ledgers. ".repeat(8), query: "What does it keep?", strategy: "apb", hosts: 2, maxTokens: 2 });
    } finally {
      model.dispose();
    }
    return "loaded";
  } catch (e) {
    if (!(e instanceof RuntimeError)) throw new Error(`not a RuntimeError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (!STABLE_CODES.has(e.code)) throw new Error(`code ${e.code} is not one the loader should give: ${e.message}`);
    if (!e.message) throw new Error(`code ${e.code} came without a message`);
    return e.code;
  }
}

describe("the loader, fuzzed", () => {
  it(`ends ${CASES} mutated models in a load or a coded RuntimeError`, { timeout: 240_000 }, async () => {
    const seed = Number(process.env.APB_FUZZ_SEED ?? freshSeed());
    const rand = seededUniform(seed);
    const root = await freshDir();
    const baseDir = join(root, "base");
    const base = await baseFiles(baseDir);
    expect(await outcome(baseDir), "the unmutated model loads").toBe("loaded");
    const counts = new Map<string, number>();
    for (let i = 0; i < CASES; i++) {
      const { files, label } = mutate(rand, base);
      const dir = join(root, `case-${i}`);
      await writeCase(dir, baseDir, base, files);
      let result: string;
      try {
        result = await withTimeout(outcome(dir), `case ${i}`);
      } catch (e) {
        throw new Error(`APB_FUZZ_SEED=${seed}, case ${i} (${label}): ${(e as Error).message}`);
      }
      counts.set(result, (counts.get(result) ?? 0) + 1);
    }
    // The mutations reach every layer of the loader, and some still load.
    for (const code of ["INVALID_JSON", "MODEL_FILE", "TOKENIZER", "loaded"]) expect(counts.get(code) ?? 0, `${code} in ${JSON.stringify([...counts])}`).toBeGreaterThan(0);
    console.log(`loader fuzz, APB_FUZZ_SEED=${seed}: ${JSON.stringify(Object.fromEntries(counts))}`);
  });
});
