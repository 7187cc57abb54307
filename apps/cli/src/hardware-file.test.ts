// `apb plan --hardware-file`: a hardware profile file (as apb calibrate writes them) instead of
// a preset; the file checked at the edge, its problems reported with the field's code and path.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb } from "./cli.test-helper.js";

const written = {
  description: "apb calibrate on a test machine (cpu), llama-3.1-8b layer shapes; link from preset h100-ib",
  measuredAt: "2026-12-01T09:00:00.000Z",
  device: "a test machine",
  profile: { matmulTflops: 0.05, attentionTflops: 0.01, hbmGBs: 5, linkGBs: 45, linkLatencyUs: 10, memoryGiB: 16 },
  measured: ["matmulTflops", "attentionTflops", "hbmGBs"],
};

let dir: string;
const file = (name: string, content: unknown) => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === "string" ? content : JSON.stringify(content));
  return path;
};
const plan = (...args: string[]) => apb(["plan", "--model", "llama-3.1-8b", "--length", "32K", "--hosts", "2", ...args]);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "apb-cli-hardware-file-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("apb plan --hardware-file", () => {
  it("plans with the file's profile and names the file in the heading", () => {
    const profile = file("profile.json", written);
    const json = plan("--hardware-file", profile, "--json");
    expect(json.code, json.err).toBe(0);
    const slow = JSON.parse(json.out).summary.prefillMs;
    // The same request on a preset's far faster rates predicts far less time.
    const preset = JSON.parse(plan("--hardware", "h100-ib", "--json").out).summary.prefillMs;
    expect(slow).toBeGreaterThan(preset * 100);
    expect(plan("--hardware-file", profile).out).toContain(`${profile} (a test machine; measured matmulTflops, attentionTflops, hbmGBs)`);
  });

  it("refuses --hardware with --hardware-file", () => {
    const r = plan("--hardware", "h100-ib", "--hardware-file", file("p.json", written));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/--hardware and --hardware-file exclude each other/);
  });

  it("refuses a malformed file with the field's code and path, and says how to fix it", () => {
    const cases: [unknown, string, string][] = [
      [{ ...written, profile: { ...written.profile, matmulTflops: -1 } }, "OUT_OF_RANGE", "profile.matmulTflops"],
      [{ ...written, profile: { ...written.profile, hbmGBs: "fast" } }, "WRONG_TYPE", "profile.hbmGBs"],
      [{ ...written, measured: ["speed"] }, "OUT_OF_RANGE", "measured[0]"],
      [{ ...written, extra: 1 }, "UNKNOWN_FIELD", "extra"],
      ["{", "INVALID_JSON", ""],
    ];
    for (const [content, code, path] of cases) {
      const r = plan("--hardware-file", file("bad.json", content), "--json");
      expect(r.code, path).toBe(2);
      const error = JSON.parse(r.err).error;
      expect(error).toMatchObject({ code, path });
      expect(error.message).toContain("apb calibrate --out");
    }
  });

  it("refuses a file it cannot read in one line", () => {
    const r = plan("--hardware-file", join(dir, "none.json"));
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/^apb: --hardware-file: cannot read /);
  });
});
