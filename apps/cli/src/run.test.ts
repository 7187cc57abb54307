// `apb make-tiny-model` and `apb run` as a user runs them: real processes, a model on disk.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const apb = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

let dir: string;
let promptFile: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "apb-cli-run-"));
  promptFile = join(dir, "doc.txt");
  writeFileSync(promptFile, "Alpha beta gamma delta. ".repeat(60) + "The key is 42. " + "Epsilon zeta eta. ".repeat(40));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("apb make-tiny-model and apb run", () => {
  it("writes a model that apb run answers with, as text and as JSON", () => {
    const model = join(dir, "tiny");
    const made = apb("make-tiny-model", model, "--layers", "2", "--shards", "2", "--seed", "5");
    expect(made.code, made.err).toBe(0);
    expect(made.out).toMatch(/wrote .*tiny: llama, 2 layers/);

    const text = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "What is the key?", "--strategy", "apb", "--hosts", "3", "--max-tokens", "4");
    expect(text.code, text.err).toBe(0);
    expect(text.out).toMatch(/^first token after [\d.]+ ms \(wall\) for a \d+-token prompt, apb \(block \d+, anchor \d+, passing \d+\) on 3 emulated hosts$/m);
    expect(text.out).toMatch(/^slowest host's own prefill work: [\d.]+ ms/m);
    expect(text.out.split("\n").filter((l) => /^\s+\d\s+\d+\s/.test(l))).toHaveLength(3);

    const full = JSON.parse(apb("run", "--model", model, "--prompt-file", promptFile, "--query", "What is the key?", "--strategy", "full", "--max-tokens", "4", "--json").out);
    const ring = JSON.parse(apb("run", "--model", model, "--prompt-file", promptFile, "--query", "What is the key?", "--strategy", "ring", "--hosts", "2", "--max-tokens", "4", "--json").out);
    expect(ring.tokens).toEqual(full.tokens);
    expect(full.layout.hosts).toBe(1);
    // Ulysses is exact too: 2 hosts with a KV head each, 4 hosts sharing the tiny model's 2.
    for (const hosts of ["2", "4"]) {
      const ulysses = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "What is the key?", "--strategy", "ulysses", "--hosts", hosts, "--max-tokens", "4", "--json");
      expect(ulysses.code, ulysses.err).toBe(0);
      const out = JSON.parse(ulysses.out);
      expect(out.tokens, `ulysses on ${hosts} hosts`).toEqual(full.tokens);
      expect(out.layout.hosts).toBe(Number(hosts));
    }
  });

  it("says in one line why the CUDA backend cannot run, where it cannot", () => {
    // The tiny model's head_dim (16) is not one the GPU kernels take; without a GPU the
    // driver is missing first. Either way: a coded one-line error, no crash.
    const r = apb("run", "--model", join(dir, "tiny"), "--prompt-file", promptFile, "--query", "q", "--backend", "cuda");
    expect(r.code).not.toBe(0);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/\[CUDA_UNAVAILABLE\]/);
    expect(r.err).toMatch(/no CUDA driver|no CUDA kernels|cuBLAS not found|head_dim 64 or 128/);
  });

  it("reports bad input in one line and exits 2", () => {
    const cases: [string[], RegExp][] = [
      [["run", "--model", join(dir, "missing"), "--prompt-file", promptFile, "--query", "q"], /model directory .*missing does not exist \[MODEL_FILE\]/],
      [["run", "--model", join(dir, "tiny"), "--prompt-file", join(dir, "nope.txt"), "--query", "q"], /--prompt-file: cannot read/],
      [["run", "--model", join(dir, "tiny"), "--prompt-file", promptFile, "--query", "q", "--strategy", "warp"], /--strategy must be one of full, apb, star, ring, ring-zigzag, ulysses; got 'warp'/],
      [["run", "--model", join(dir, "tiny"), "--prompt-file", promptFile, "--query", "q", "--strategy", "ulysses", "--hosts", "3"], /ulysses splits heads across hosts: 4 query heads and 2 KV heads cannot be shared by 3 hosts.*\[INFEASIBLE\]/],
      [["run", "--model", join(dir, "tiny"), "--prompt-file", promptFile, "--query", "q", "--backend", "tpu"], /--backend must be one of cpu, cuda; got 'tpu'/],
      [["make-tiny-model", join(dir, "x"), "--architecture", "gpt2"], /--architecture must be one of llama, qwen2, mistral/],
    ];
    for (const [args, message] of cases) {
      const r = apb(...args);
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.err.trim().split("\n")).toHaveLength(1);
      expect(r.err).toMatch(message);
    }
  });
});
