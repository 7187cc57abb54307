// Limits checked before work: config sizes no real model has, prompts past the model's
// positions, and NaN or Inf weights are each refused with a named, coded error, at once.
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";
import { buildHostRequest, CONFIG_LIMITS, loadModel, openModelDir, readSafetensorsFile, REQUEST_LIMITS, RuntimeError } from "./index.js";
import { writeTinyGguf, writeTinyModel } from "./testing.js";

const freshDir = tempDirs("limits");

async function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const file = join(dir, "config.json");
  const config = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
  edit(config);
  await writeFile(file, JSON.stringify(config));
}

describe("config sizes", () => {
  it("refuses a size no real model has at once, naming the field (was: 98 s, then out of heap)", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 1 });
    const fields = {
      num_hidden_layers: CONFIG_LIMITS.layers,
      hidden_size: CONFIG_LIMITS.hidden,
      num_attention_heads: CONFIG_LIMITS.heads,
      head_dim: CONFIG_LIMITS.headDim,
      intermediate_size: CONFIG_LIMITS.intermediate,
      vocab_size: CONFIG_LIMITS.vocab,
      max_position_embeddings: CONFIG_LIMITS.maxPositions,
    };
    for (const [field, limit] of Object.entries(fields)) {
      const value = limit + 1 + Math.floor(Math.random() * 1e9);
      await writeTinyModel(dir, { seed: 1 });
      await editConfig(dir, (c) => {
        c[field] = value;
        // Keep heads consistent so the size is what is wrong, not the ratio.
        if (field === "num_attention_heads") c.num_key_value_heads = value;
      });
      const started = performance.now();
      const e = await openModelDir(dir).catch((x: unknown) => x);
      expect(e, field).toBeInstanceOf(RuntimeError);
      expect({ code: (e as RuntimeError).code, path: (e as RuntimeError).path }, field).toEqual({ code: "OUT_OF_RANGE", path: field });
      expect((e as RuntimeError).message).toContain(String(value));
      expect((e as RuntimeError).message).toContain(String(limit));
      expect(performance.now() - started, field).toBeLessThan(5_000);
    }
  });

  it("takes sizes at the limit (the check is not off by one)", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 2, maxPositions: CONFIG_LIMITS.maxPositions });
    expect((await openModelDir(dir)).config.maxPositions).toBe(CONFIG_LIMITS.maxPositions);
  });

  it("refuses the same sizes in a GGUF file's metadata", async () => {
    const dir = await freshDir();
    const { file } = await writeTinyGguf(join(dir, "m.gguf"), { seed: 3, maxPositions: CONFIG_LIMITS.maxPositions });
    expect((await openModelDir(file)).config.maxPositions).toBe(CONFIG_LIMITS.maxPositions);
  });
});

describe("prompts longer than the model's positions", () => {
  it("are refused before prefill with PROMPT_TOO_LONG naming both numbers, unless allowLongPrompt", async () => {
    const dir = await freshDir();
    const maxPositions = 200 + Math.floor(Math.random() * 300);
    await writeTinyModel(dir, { seed: freshSeed() % 100_000, maxPositions });
    const model = await loadModel(dir);
    const query = "What is it?";
    const fits = model.tokenize("x", query);
    const overhead = fits.prefix.length + fits.query.length;
    // One-character words tokenize to about one token each; find a document that just fits.
    let words = maxPositions - overhead - 4;
    let document = "a ".repeat(words);
    while (model.tokenize(document, query).document.length + overhead + 4 > maxPositions) document = "a ".repeat(--words);
    const p = model.tokenize(document, query);
    const maxTokens = maxPositions - (p.prefix.length + p.document.length + p.query.length);
    await model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens }); // exactly the model's positions
    let progress = 0;
    const e = await model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens: maxTokens + 1, onProgress: () => progress++ }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: "PROMPT_TOO_LONG", path: "document" });
    expect((e as RuntimeError).message).toContain(`needs ${maxPositions + 1} positions`);
    expect((e as RuntimeError).message).toContain(`the model has ${maxPositions}`);
    expect(progress).toBe(0);
    const long = await model.generate({ document: document.repeat(2), query, strategy: "apb", hosts: 2, maxTokens: 1, allowLongPrompt: true });
    expect(long.promptTokens.document).toBeGreaterThan(maxPositions);
  });
});

describe("non-finite weights", () => {
  it("are refused at load with NUMERIC naming the tensor (was: exit 0 with an answer of NULs)", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 4, weightStd: Number.NaN });
    const e = await loadModel(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: "NUMERIC", path: "model.embed_tokens.weight" });
  });

  it("finite weights whose activations overflow: generate rejects with NUMERIC (was: an answer of NULs, token 0 from all-zero logits)", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: freshSeed() % 100_000, weightStd: 10 ** (20 + 10 * Math.random()) });
    const model = await loadModel(dir);
    const tokens: number[] = [];
    const e = await model.generate({ document: "The harbour town keeps its ledgers. ".repeat(10), query: "Which town?", onToken: (_, id) => tokens.push(id) }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: "NUMERIC", path: "logits" });
    expect(tokens).toEqual([]);
  });

  it("finds one NaN or Inf anywhere, in any dtype", async () => {
    for (const dtype of ["float32", "bfloat16", "float16"] as const) {
      const dir = await freshDir();
      const { weightFiles } = await writeTinyModel(dir, { seed: freshSeed() % 100_000, dtype, layers: 2 });
      const entries = await readSafetensorsFile(weightFiles[0]!);
      const target = entries[Math.floor(Math.random() * entries.length)]!;
      const width = target.dtype === "F32" ? 4 : 2;
      const index = Math.floor(Math.random() * (target.byteLength / width));
      const bytes = await readFile(weightFiles[0]!);
      const poison = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY][Math.floor(Math.random() * 3)]!;
      const at = target.offset + index * width;
      if (width === 4) bytes.writeFloatLE(poison, at);
      else bytes.writeUInt16LE(dtype === "bfloat16" ? (Number.isNaN(poison) ? 0x7fc0 : poison > 0 ? 0x7f80 : 0xff80) : Number.isNaN(poison) ? 0x7e00 : poison > 0 ? 0x7c00 : 0xfc00, at);
      await writeFile(weightFiles[0]!, bytes);
      const e = await loadModel(dir).catch((x: unknown) => x);
      expect(e, `${dtype} ${target.name}[${index}] = ${poison}`).toMatchObject({ code: "NUMERIC", path: target.name });
      const cols = target.shape.at(-1)!;
      expect((e as RuntimeError).message).toContain(`row ${Math.floor(index / cols)}, column ${index % cols}`);
    }
  });
});

describe("layouts the hosts would refuse", () => {
  it("are refused when the request is built, with the planner's code and words, before any weights load", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: freshSeed() });
    const model = await openModelDir(dir);
    const document = "The quick brown fox jumps over the lazy dog. ".repeat(2);
    // A query longer than a block cannot sit in every host's anchor.
    const query = "Which animal jumps over which other animal, and how quick is it? ".repeat(3);
    expect(() => buildHostRequest(model, { document, query, strategy: "apb", hosts: 4 })).toThrow(expect.objectContaining({ code: "INFEASIBLE", path: "queryTokens" }));
    // More hosts than tokens: there is no block for each.
    expect(() => buildHostRequest(model, { document: "Hi.", query: "Who?", strategy: "ring", hosts: 64 })).toThrow(expect.objectContaining({ code: "INFEASIBLE", path: "hosts" }));
    // The same prompt on fewer hosts is fine.
    expect(buildHostRequest(model, { document: document.repeat(20), query: "Which animal jumps?", strategy: "apb", hosts: 2 }).request.hosts).toBe(2);
  });
});
