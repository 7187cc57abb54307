// runEval end to end on a tiny random model: the cells it makes, full attention as the
// reference, an exact APB layout agreeing totally, progress, cancelling, and bad options.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadModel, RuntimeError, type Model, type Strategy } from "@apb/runtime";
import { writeTinyModel } from "@apb/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { needleCheck } from "./presets.js";
import { runEval, type EvalProgress, type TaskName } from "./index.js";

let dir: string;
let model: Model;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "apb-eval-run-"));
  // The vocabulary is the tiny tokenizer's own size, so every token it generates decodes.
  await writeTinyModel(dir, { layers: 2, hidden: 64, heads: 4, kvHeads: 2, vocab: 271, maxPositions: 2048, seed: 3 });
  model = await loadModel(dir);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function rejection(p: Promise<unknown>): Promise<RuntimeError> {
  const error = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RuntimeError);
  return error as RuntimeError;
}

describe("runEval", () => {
  it("runs full once per case and every other strategy on every host count", async () => {
    const events: EvalProgress[] = [];
    const r = await runEval(model, {
      lengths: [768, 1024],
      strategies: ["apb", "star", "full"],
      hosts: [2, 3],
      cases: 3,
      tasks: ["needle-number", "multi-key", "variable-tracking"],
      maxTokens: 4,
      seed: 9,
      onProgress: (e) => events.push(e),
    });
    const cells = r.cells.map((c) => `${c.length}/${c.strategy}/${c.hosts}`);
    expect(cells).toEqual(["768/full/1", "768/apb/2", "768/apb/3", "768/star/2", "768/star/3", "1024/full/1", "1024/apb/2", "1024/apb/3", "1024/star/2", "1024/star/3"]);
    expect(r.cells.every((c) => c.cases === 3)).toBe(true);
    expect(r.records).toHaveLength(30);
    for (const full of r.cells.filter((c) => c.strategy === "full")) expect(full).toMatchObject({ agreement: 1, top1Agreement: 1, meanKl: 0, maxKl: 0, lostVsFull: 0 });
    for (const rec of r.records) {
      expect(rec.tokens.length).toBeLessThanOrEqual(4);
      expect(rec.promptTokens).toBeGreaterThan(rec.length);
      expect(rec.prefillMs).toBeGreaterThan(0);
      expect(rec.klFromFull).toBeGreaterThanOrEqual(0);
    }
    // Cases are the same for every strategy of a length.
    expect(new Set(r.records.filter((x) => x.length === 768).map((x) => x.caseId)).size).toBe(3);
    expect(r.suite).toMatchObject({ lengths: [768, 1024], strategies: ["apb", "star", "full"], hosts: [2, 3], cases: 3, seed: 9, maxTokens: 4 });
    expect(r.model).toMatchObject({ architecture: "llama", layers: 2, vocab: 271, maxPositions: 2048, path: model.dir.path });
    expect(r.machine.backend).toBe("cpu");
    expect(events.filter((e) => e.kind === "cases")).toHaveLength(2);
    expect(events.filter((e) => e.kind === "case").map((e) => (e.kind === "case" ? e.done : 0))).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    const cellEvents = events.flatMap((e) => (e.kind === "cell" ? [e.cell] : []));
    expect(cellEvents).toEqual(r.cells);
  });

  it("agrees totally with full attention when APB passes every key and has no anchor", async () => {
    const r = await runEval(model, { lengths: [1024], strategies: ["full", "apb"], hosts: [2, 4], cases: 3, anchorTokens: 0, passingTokens: "all", maxTokens: 6, tasks: ["needle-word", "multi-value", "multi-query"] });
    for (const cell of r.cells) {
      expect(cell, `${cell.strategy}/${cell.hosts}`).toMatchObject({ agreement: 1, top1Agreement: 1, meanCommonPrefix: 6 });
      expect(cell.maxKl).toBeLessThan(1e-9);
    }
    // The default layout approximates: the same harness then sees a difference.
    const approx = await runEval(model, { lengths: [1024], strategies: ["apb"], hosts: [2], cases: 3, maxTokens: 6, tasks: ["needle-word", "multi-value", "multi-query"] });
    expect(approx.cells[1]!.maxKl).toBeGreaterThan(1e-9);
  });

  it("runs apb and star with balanced or even blocks as asked, by default apb balanced and star even, and says which in its suite", async () => {
    const options = { lengths: [1024], strategies: ["full", "apb", "star"] as Strategy[], hosts: [4], cases: 3, maxTokens: 4, tasks: ["needle-word", "multi-value", "multi-query"] as TaskName[] };
    const [even, balanced, byDefault] = [await runEval(model, { ...options, balanced: false }), await runEval(model, { ...options, balanced: true }), await runEval(model, options)];
    expect(even.suite.balanced).toBe(false);
    expect(balanced.suite.balanced).toBe(true);
    expect(byDefault.suite.balanced).toBe(null);
    const kl = (r: typeof even, strategy: Strategy) => r.records.filter((x) => x.strategy === strategy).map((x) => x.klFromFull);
    // Full is the same run either way; apb and star see other blocks, so other approximations.
    expect(kl(balanced, "full")).toEqual(kl(even, "full"));
    for (const strategy of ["apb", "star"] as Strategy[]) expect(kl(balanced, strategy), strategy).not.toEqual(kl(even, strategy));
    expect(kl(byDefault, "apb")).toEqual(kl(balanced, "apb"));
    expect(kl(byDefault, "star")).toEqual(kl(even, "star"));
  });

  it("stops between cases when its signal is aborted", async () => {
    const controller = new AbortController();
    let seen = 0;
    const e = await rejection(
      runEval(model, { lengths: [256], strategies: ["full", "ring"], hosts: [2], cases: 4, maxTokens: 2, signal: controller.signal, onProgress: (p) => p.kind === "case" && ++seen === 2 && controller.abort() }),
    );
    expect(e.code).toBe("CANCELLED");
    expect(seen).toBe(2);
  });

  it("has a needle preset whose lost cases are those full answered and a strategy did not", async () => {
    const { result, lost } = await needleCheck(model, { lengths: [768], hosts: [2], maxTokens: 2 });
    expect(result.suite.tasks).toEqual(["needle-number", "needle-word", "needle-uuid"]);
    expect(result.cells.map((c) => c.strategy)).toEqual(["full", "apb", "star"]);
    expect(lost).toEqual([]); // a random model answers nothing, so loses nothing
  });

  it("rejects bad options in one line naming the option, before running anything", async () => {
    const cases: [object, string, RegExp][] = [
      [{ lengths: [4096] }, "lengths", /^lengths 4096 is beyond the model's 2048 positions/],
      [{ lengths: [512, 2000] }, "lengths", /^lengths 2000 makes prompts of \d+ tokens, which with \d+ new tokens exceed the model's 2048 positions/],
      [{ lengths: [] }, "lengths", /^lengths must not be empty/],
      [{ lengths: [64] }, "lengths", /^lengths must be whole numbers of tokens >= 128; got 64/],
      [{ lengths: [512], hosts: [2, 0] }, "hosts", /^hosts must be whole numbers >= 1 \(and at most 4096\); got 0/],
      [{ lengths: [512], tasks: ["needle-number", "haystack"] }, "tasks", /^tasks must be among needle-number, .*variable-tracking; got "haystack"/],
      [{ lengths: [512], strategies: ["warp"] }, "strategies", /^strategies must be among full, apb, star, ring, ring-zigzag, ulysses; got "warp"/],
      [{ lengths: [512], cases: 0 }, "cases", /^cases must be a whole number of cases per cell/],
      [{ lengths: [512], depths: [1.5] }, "depths", /^depths must be from 0 to 1; got 1.5/],
      [{ lengths: [512], passingTokens: "some" }, "passingTokens", /^passingTokens must be a whole number of tokens or "all"/],
    ];
    for (const [options, path, message] of cases) {
      let ran = 0;
      const e = await rejection(runEval(model, { ...(options as { lengths: number[] }), cases: (options as { cases?: number }).cases ?? 1, onProgress: (p) => p.kind === "case" && ran++ }));
      expect(e.code, JSON.stringify(options)).toBe("OUT_OF_RANGE");
      expect(e.path).toBe(path);
      expect(e.message).toMatch(message);
      expect(ran).toBe(0);
    }
  });
});
