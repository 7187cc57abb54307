// The runtime API end to end on tiny models written to disk: tokenize, load with progress,
// prefill with each strategy, generate, stop tokens, chat template, errors.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { tempDirs } from "./temp-dirs.test-helper.js";
import { loadModel, RuntimeError, type Model } from "./index.js";
import { logitAgreement, writeTinyModel, writeTinyRetainingHeads } from "./testing.js";

const freshDir = tempDirs("engine");

async function tiny(options: Parameters<typeof writeTinyModel>[1] = {}): Promise<Model> {
  const dir = await freshDir();
  await writeTinyModel(dir, { seed: Date.now() % 100_000, ...options });
  return loadModel(dir);
}

const document = "The quick brown fox jumps over the lazy dog. ".repeat(30) + "The secret word is lantern. " + "Filler text goes on. ".repeat(20);
const query = "What is the secret word?";

const relError = (a: Float32Array, b: Float32Array) => logitAgreement(a, b).relativeError;

describe("loadModel and generate", () => {
  it("loads with progress and generates with every strategy; exact strategies agree with full", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 11, layers: 2 });
    const steps: number[] = [];
    const model = await loadModel(dir, { onProgress: (done, total) => steps.push(done / total) });
    expect(model.backend).toBe("cpu");
    expect(steps.at(-1)).toBe(1);
    expect(steps).toEqual([...steps].sort((a, b) => a - b));
    const full = await model.generate({ document, query, strategy: "full", maxTokens: 6 });
    expect(full.tokens.length).toBeGreaterThan(0);
    expect(full.promptTokens.document).toBeGreaterThan(500);
    for (const strategy of ["ring", "ring-zigzag"] as const) {
      const out = await model.generate({ document, query, strategy, hosts: 3, maxTokens: 6 });
      expect(relError(out.firstLogits, full.firstLogits), strategy).toBeLessThan(1e-5);
      expect(out.tokens, strategy).toEqual(full.tokens);
    }
    // Ulysses splits the tiny model's 4 query heads (2 KV heads) over 2 hosts, or 4 sharing a KV head.
    for (const hosts of [2, 4]) {
      const out = await model.generate({ document, query, strategy: "ulysses", hosts, maxTokens: 6 });
      expect(out.layout).toMatchObject({ strategy: "ulysses", hosts });
      expect(relError(out.firstLogits, full.firstLogits), `ulysses on ${hosts} hosts`).toBeLessThan(1e-5);
      expect(out.tokens, `ulysses on ${hosts} hosts`).toEqual(full.tokens);
    }
    const apb = await model.generate({ document, query, strategy: "apb", hosts: 4, maxTokens: 6 });
    expect(apb.layout).toMatchObject({ strategy: "apb", hosts: 4 });
    expect(apb.layout.anchorTokens).toBeGreaterThan(0);
    expect(apb.timings.hosts).toHaveLength(4);
    expect(apb.timings.prefillMs).toBeGreaterThan(0);
    const passAll = await model.generate({ document, query, strategy: "apb", hosts: 4, anchorTokens: 0, passingTokens: apb.layout.blockTokens, maxTokens: 6 });
    expect(relError(passAll.firstLogits, full.firstLogits)).toBeLessThan(1e-5);
  });

  it("streams token text that adds up to the answer, and stops at EOS or the limit", async () => {
    const model = await tiny();
    const pieces: string[] = [];
    const ids: number[] = [];
    const out = await model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens: 8, onToken: (text, id) => (pieces.push(text), ids.push(id)) });
    expect(ids.slice(0, out.tokens.length)).toEqual(out.tokens);
    expect(ids.length - out.tokens.length).toBeLessThanOrEqual(1); // a character cut off at the end
    expect(pieces.join("")).toBe(out.text);
    expect(pieces.some((p) => p.includes("\uFFFD") && !out.text.includes("\uFFFD"))).toBe(false);
    expect(out.finishReason === "length" ? out.tokens.length : 8).toBe(8);
    const first = out.tokens[0]!;
    const stopped = await model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens: 8, stopTokenIds: [first] });
    expect(stopped.tokens).toEqual([first]);
    expect(stopped.finishReason).toBe("stop");
  });

  it("uses the chat template to split prefix, document and query", async () => {
    const model = await tiny({ chatTemplate: true });
    const prompt = model.tokenize(document, query);
    expect(prompt.prefix.length).toBeGreaterThan(1);
    const tail = model.dir.tokenizer.decode(prompt.query);
    expect(tail).toContain(query);
    expect(tail).toMatch(/assistant/);
    const out = await model.generate({ document, query, strategy: "star", hosts: 2, maxTokens: 2 });
    expect(out.layout.passingTokens).toBe(0);
  });

  it("scores passing blocks with Locret retaining heads when given them", async () => {
    const dir = await freshDir();
    const tinyModel = await writeTinyModel(dir, { seed: 4 });
    for (const bias of [false, true]) {
      const heads = join(dir, `heads-${bias}.safetensors`);
      await writeTinyRetainingHeads(heads, tinyModel.config, { intermediate: 16, seed: 9, bias });
      const model = await loadModel(dir, { retainingHeads: heads });
      const byHeads = await model.generate({ document, query, strategy: "apb", hosts: 3, scorer: "retaining-heads", maxTokens: 3 });
      const byQuery = await model.generate({ document, query, strategy: "apb", hosts: 3, maxTokens: 3 });
      expect(byHeads.tokens).toHaveLength(3);
      // Different scorers choose different passing keys, so the logits differ.
      expect(relError(byHeads.firstLogits, byQuery.firstLogits)).toBeGreaterThan(0);
    }
  });

  it("loads bf16, f16 and sharded checkpoints to the same model, up to rounding", async () => {
    const logits: Float32Array[] = [];
    for (const [dtype, shards] of [["float32", 1], ["bfloat16", 2], ["float16", 3]] as const) {
      const dir = await freshDir();
      await writeTinyModel(dir, { seed: 21, dtype, shards });
      const model = await loadModel(dir);
      logits.push((await model.generate({ document, query, strategy: "full", maxTokens: 0 })).firstLogits);
    }
    expect(relError(logits[1]!, logits[0]!)).toBeLessThan(3e-2);
    expect(relError(logits[2]!, logits[0]!)).toBeLessThan(5e-3);
    expect(relError(logits[1]!, logits[0]!)).toBeGreaterThan(0);
  });

  it("rejects bad options with coded errors", async () => {
    const model = await tiny();
    const cases: [Record<string, unknown>, string, string][] = [
      [{ document, query, strategy: "warp" }, "OUT_OF_RANGE", "strategy"],
      [{ document, query, hosts: 0 }, "OUT_OF_RANGE", "hosts"],
      [{ document, query: "" }, "OUT_OF_RANGE", "query"],
      [{ document: "", query, strategy: "full", hosts: 1 }, "INVALID_INPUT", "document"],
      [{ document: "ab", query, strategy: "apb", hosts: 500 }, "INFEASIBLE", "hosts"],
      [{ document, query, scorer: "retaining-heads", hosts: 2 }, "INVALID_INPUT", "scorer"],
    ];
    for (const [options, code, path] of cases) {
      const e = await model.generate(options as never).catch((x: unknown) => x);
      expect(e, JSON.stringify(options)).toBeInstanceOf(RuntimeError);
      expect({ code: (e as RuntimeError).code, path: (e as RuntimeError).path }).toEqual({ code, path });
    }
  });
});
