// `apb calibrate` then `apb plan --hardware-file`, as a user runs them: real processes, the CPU
// backend and a small layer so it takes seconds. Rates are never asserted as numbers (they are
// this machine's), only that the file holds finite positive ones and says what was measured.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readHardwareProfileFile } from "@apb/planner";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb } from "./cli.test-helper.js";

let dir: string;
let config: string;
let profile: string;
const small = () => ["--backend", "cpu", "--model-shape", config, "--tokens", "8", "--attention-tokens", "64"];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "apb-cli-calibrate-"));
  config = join(dir, "config.json");
  writeFileSync(config, JSON.stringify({ model_type: "llama", vocab_size: 256, hidden_size: 64, num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, intermediate_size: 96 }));
  profile = join(dir, "profile.json");
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("apb calibrate", () => {
  it("measures the CPU, writes a profile the planner reads, and says the link was not measured", () => {
    const r = apb(["calibrate", ...small(), "--link-from", "h100-nvlink", "--out", profile]);
    expect(r.err).toContain("[2/8] GEMM q");
    expect(r.err).toMatch(/linkGBs and linkLatencyUs are not measured: they are preset h100-nvlink's/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^matmulTflops\s/m);
    expect(r.out).toContain(`wrote ${profile}`);
    const file = readHardwareProfileFile(readFileSync(profile, "utf8"), profile);
    expect(file.measured).toEqual(["matmulTflops", "attentionTflops", "hbmGBs"]);
    for (const rate of [file.profile.matmulTflops, file.profile.attentionTflops, file.profile.hbmGBs]) expect(Number.isFinite(rate) && rate > 0).toBe(true);
    expect(file.profile).toMatchObject({ linkGBs: 360, linkLatencyUs: 3 });
    expect(file.sources?.linkGBs).toMatch(/^from preset h100-nvlink \(not measured/);
    expect(file.sources?.memoryGiB).toMatch(/total memory/);
    // A GPU kernel's blocks say nothing about a CPU: they are not borrowed for one.
    expect(file.profile.multiprocessors).toBeUndefined();
    expect(file.profile.attentionBlockUs).toBeUndefined();
    expect(file.conditions).toMatchObject({ backend: "cpu", modelShape: config, tokens: 8, attentionTokens: 64 });
  });

  it("plans with the written profile", () => {
    const r = apb(["plan", "--hardware-file", profile, "--model", "llama-3.1-8b", "--length", "32K", "--hosts", "2", "--json"]);
    expect(r.code, r.err).toBe(0);
    const plan = JSON.parse(r.out);
    expect(plan.summary.prefillMs).toBeGreaterThan(0);
    const text = apb(["plan", "--hardware-file", profile, "--model", "llama-3.1-8b", "--length", "32K", "--hosts", "2"]);
    expect(text.out).toContain(`${profile} (`);
  });

  it("--json prints the profile file itself, and --memory-gib replaces the memory", () => {
    const r = apb(["calibrate", ...small(), "--memory-gib", "12", "--json"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe("");
    const file = readHardwareProfileFile(r.out);
    expect(file.profile.memoryGiB).toBe(12);
    expect(file.sources?.memoryGiB).toBe("given with --memory-gib");
    expect(file.measured).not.toContain("memoryGiB");
  });

  it("refuses bad flags naming the flag", () => {
    const link = apb(["calibrate", ...small(), "--link-from", "tpu", "--json"]);
    expect(link.code).toBe(2);
    expect(JSON.parse(link.err).error).toMatchObject({ code: "OUT_OF_RANGE", path: "--link-from" });
    const tokens = apb(["calibrate", "--tokens", "0"]);
    expect(tokens.code).toBe(2);
    expect(tokens.err).toMatch(/--tokens must be a whole number between 1 and/);
    const model = apb(["calibrate", "--model-shape", "llama-9", "--json"]);
    expect(JSON.parse(model.err).error).toMatchObject({ code: "OUT_OF_RANGE", path: "--model-shape" });
  });
});
