// `npm run bundle`'s folder runs apb with nothing else installed: no node on PATH, no
// node_modules, no toolchain (what a GPU host offers).
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
let dir: string;
let apb: (...args: string[]) => { code: number | null; out: string; err: string };

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "apb-bundle-test-"));
  const made = spawnSync(process.execPath, [join(ROOT, "scripts", "bundle.mjs"), join(dir, "bundle")], { encoding: "utf8" });
  if (made.status !== 0) throw new Error(`bundle failed: ${made.stderr}`);
  apb = (...args) => {
    // An empty environment: no PATH, so no node or tools of this machine are found.
    const r = spawnSync(join(dir, "bundle", "bin", "apb"), args, { encoding: "utf8", env: {}, cwd: dir });
    return { code: r.status, out: r.stdout, err: r.stderr };
  };
}, 60_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the bundle", () => {
  it("plans with the wasm planner", () => {
    const r = apb("plan", "--model", "llama-3.1-8b", "--length", "131072", "--hosts", "8", "--json");
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out)).toMatchObject({ anchorTokens: 4096, passingTokens: 2048 });
  });

  it("writes a tiny model and runs it through the native addon", () => {
    const model = join(dir, "tiny");
    expect(apb("make-tiny-model", model).code).toBe(0);
    writeFileSync(join(dir, "doc.txt"), "Lorem ipsum dolor sit amet. ".repeat(50));
    const r = apb("run", "--model", model, "--prompt-file", join(dir, "doc.txt"), "--query", "What?", "--strategy", "apb", "--hosts", "2", "--max-tokens", "3", "--json");
    expect(r.code, r.err).toBe(0);
    expect(JSON.parse(r.out).tokens).toHaveLength(3);
  });

  it("runs doctor with nothing set in the environment", () => {
    const r = apb("doctor", "--json");
    expect(r.code, r.err).toBe(0);
    const report = JSON.parse(r.out);
    expect(report.backends).toContain("cpu");
    expect([report.cublas.name, report.nccl.name]).toEqual(["cuBLAS", "NCCL"]);
    expect(report.driver.search.loader).toMatch(/LD_LIBRARY_PATH \(not set\)/);
  });

  it("reports bad input in one line", () => {
    const r = apb("plan", "--model", "llama-3.1-8b", "--length", "0");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--length must be a whole number between 1 and 2147483647/);
  });
});
