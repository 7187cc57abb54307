// Case generation: deterministic per seed, documents of the asked length with the needles at
// the asked depths, answers that are in the text, filler that is varied and answer-free.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer } from "@apb/runtime";
import { writeTinyModel } from "@apb/runtime/testing";
import { afterAll, describe, expect, it } from "vitest";
import { buildDocument } from "./document.js";
import { createRng } from "./prng.js";
import { generateCases, NEEDLE_TASKS, TASKS, type EvalCase } from "./tasks.js";
import { FILLER_WORDS, KEY_ADJECTIVES, KEY_NOUNS, VALUE_WORDS } from "./words.js";

/** Words and punctuation marks: a stand-in tokenizer that is cheap and predictable. */
const words = (text: string) => text.match(/\w+|[^\w\s]/g)?.length ?? 0;

const depthOf = (c: EvalCase, index = 0) => words(c.document.slice(0, c.needles[index]!.offset)) / words(c.document);

describe("generateCases", () => {
  it("is a function of the seed: the same cases for the same seed, others for another", () => {
    const make = (seed: number) => generateCases({ length: 1024, count: TASKS.length, seed, countTokens: words });
    const a = make(1);
    expect(make(1)).toEqual(a);
    const b = make(2);
    for (let i = 0; i < a.length; i++) {
      expect(b[i]!.task).toBe(a[i]!.task);
      expect(b[i]!.document).not.toBe(a[i]!.document);
      expect(b[i]!.answers).not.toEqual(a[i]!.answers);
    }
    // A case does not change when other lengths or tasks are asked for beside it.
    const alone = generateCases({ length: 1024, count: 1, seed: 1, tasks: ["multi-value"], countTokens: words });
    expect(alone[0]!.document).toBe(a.find((c) => c.task === "multi-value")!.document);
  });

  it("fills every task to the token target with its needles at the asked depth and its answers in the text", () => {
    for (const length of [512, 2048, 8192]) {
      const cases = generateCases({ length, count: 3 * TASKS.length, seed: 7, countTokens: words });
      for (const c of cases) {
        const what = `${c.id} depth ${c.depth}`;
        expect(c.documentTokens, what).toBe(words(c.document));
        expect(c.documentTokens, what).toBeLessThanOrEqual(length);
        expect(c.documentTokens, what).toBeGreaterThanOrEqual(length - 4);
        expect(Math.abs(depthOf(c) - c.depth), what).toBeLessThan(length >= 2048 ? 0.02 : 0.06);
        for (const n of c.needles) expect(c.document.slice(n.offset, n.offset + n.text.length), what).toBe(n.text);
        for (const answer of c.answers) expect(c.document, what).toContain(answer);
        expect(c.query, what).toMatch(/\?/);
      }
    }
  });

  it("spreads each task's cases over depths, or uses the depths given", () => {
    const cases = generateCases({ length: 512, count: 6, seed: 0, tasks: ["needle-number", "needle-word"], countTokens: words });
    expect(cases.map((c) => c.task)).toEqual(["needle-number", "needle-word", "needle-number", "needle-word", "needle-number", "needle-word"]);
    expect(cases.map((c) => c.depth)).toEqual([1 / 6, 1 / 6, 0.5, 0.5, 5 / 6, 5 / 6]);
    const given = generateCases({ length: 512, count: 3, seed: 0, tasks: ["needle-uuid"], depths: [0, 1], countTokens: words });
    expect(given.map((c) => c.depth)).toEqual([0, 1, 0]);
    expect(given[0]!.document.startsWith(given[0]!.needles[0]!.text)).toBe(true);
    // Depth 1: nothing after the needle but the few words that top the document up.
    const last = given[1]!.needles[0]!;
    expect(given[1]!.document.slice(last.offset + last.text.length).match(/\./g)?.length ?? 0).toBeLessThanOrEqual(1);
  });

  it("asks instruct-style questions, one per needle kind", () => {
    const [number, word, uuid] = generateCases({ length: 512, count: 3, seed: 3, tasks: [...NEEDLE_TASKS], countTokens: words });
    expect(number!.answers[0]).toMatch(/^\d{7}$/);
    expect(number!.query).toMatch(/^What is the special magic number for [a-z]+-[a-z]+ mentioned in the text above\? Answer with the number only\.$/);
    expect(VALUE_WORDS).toContain(word!.answers[0]);
    expect(uuid!.answers[0]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it("keeps the multi-needle tasks' structure: distractors, several values, several keys, chains", () => {
    const byTask = Object.fromEntries(generateCases({ length: 1024, count: TASKS.length, seed: 11, countTokens: words }).map((c) => [c.task, c]));
    const multiKey = byTask["multi-key"]!;
    expect(multiKey.needles).toHaveLength(4);
    expect(multiKey.answers).toHaveLength(1);
    expect(multiKey.needles[0]!.text).toContain(multiKey.answers[0]);
    expect(byTask["multi-value"]!.answers).toHaveLength(4);
    expect(new Set(byTask["multi-value"]!.needles.map((n) => n.text.replace(/\d+\.$/, ""))).size).toBe(1); // one key
    expect(byTask["multi-query"]!.answers).toHaveLength(3);
    const vt = byTask["variable-tracking"]!;
    expect(vt.answers).toHaveLength(5);
    // The chain reads in order: each variable is assigned after the one it copies.
    const at = (name: string) => vt.document.indexOf(`VAR ${name} =`);
    for (let i = 1; i < 5; i++) expect(at(vt.answers[i]!)).toBeGreaterThan(at(vt.answers[i - 1]!));
    expect(vt.document).toContain(`VAR ${vt.answers[1]} = VAR ${vt.answers[0]}.`);
    expect(vt.query).toContain(vt.document.slice(at(vt.answers[0]!)).match(/= (\d+)\./)![1]);
  });
});

describe("the filler", () => {
  it("is varied, has no digits, and never contains an answer word or a key", () => {
    const [c] = generateCases({ length: 4096, count: 1, seed: 5, tasks: ["needle-word"], countTokens: words });
    const filler = c!.needles.reduce((text, n) => text.replace(n.text, ""), c!.document);
    const sentences = filler.split(/(?<=\.) /);
    expect(new Set(sentences).size / sentences.length).toBeGreaterThan(0.9);
    expect(filler).not.toMatch(/\d|magic|VAR/);
    const fillerText = FILLER_WORDS.join(" ");
    for (const w of [...VALUE_WORDS, ...KEY_ADJECTIVES, ...KEY_NOUNS]) expect(fillerText, w).not.toContain(w);
    for (const w of VALUE_WORDS) expect([...KEY_ADJECTIVES, ...KEY_NOUNS].join(" "), w).not.toContain(w);
  });
});

describe("buildDocument", () => {
  it("counts the whole text only a few times, so long documents stay cheap", () => {
    let longCalls = 0;
    const counting = (text: string) => (text.length > 1000 && longCalls++, words(text));
    const doc = buildDocument({ targetTokens: 131_072, needles: [{ text: "The key is here.", depth: 0.5 }], rng: createRng(1), countTokens: counting });
    expect(doc.tokens).toBeGreaterThan(131_072 - 4);
    expect(longCalls).toBeLessThan(16);
  });

  it("refuses a target the needles alone exceed", () => {
    expect(() => buildDocument({ targetTokens: 3, needles: [{ text: "A needle of many words.", depth: 0.5 }], rng: createRng(1), countTokens: words })).toThrow(/needles alone take 6 tokens/);
  });
});

describe("with a model's tokenizer", () => {
  const dirs: string[] = [];
  afterAll(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

  it("hits the target in that tokenizer's tokens", async () => {
    const dir = await mkdtemp(join(tmpdir(), "apb-eval-tok-"));
    dirs.push(dir);
    await writeTinyModel(dir, { layers: 1 });
    const tokenizer = await loadTokenizer(dir);
    const count = (text: string) => tokenizer.encode(text, { addSpecialTokens: false }).length;
    for (const c of generateCases({ length: 1500, count: TASKS.length, seed: 2, countTokens: count })) {
      expect(count(c.document), c.id).toBe(c.documentTokens);
      expect(c.documentTokens, c.id).toBeGreaterThanOrEqual(1500 - 8);
      expect(c.documentTokens, c.id).toBeLessThanOrEqual(1500);
      const depth = count(c.document.slice(0, c.needles[0]!.offset)) / c.documentTokens;
      expect(Math.abs(depth - c.depth), c.id).toBeLessThan(0.06);
    }
  });
});
