import { readFile } from "node:fs/promises";
import { describe, expect, it } from "vitest";
import { compare, HARDWARE_PRESETS, MODEL_PRESETS, Planner, plan, PlannerError, recommend, type PlanRequest } from "./index.js";

const base = { model: "llama-3.1-8b", contextTokens: 131_072, hosts: 8 } as const;

async function errorOf(request: unknown): Promise<PlannerError> {
  try {
    await plan(request as PlanRequest);
  } catch (e) {
    expect(e).toBeInstanceOf(PlannerError);
    return e as PlannerError;
  }
  throw new Error(`no error for ${JSON.stringify(request)}`);
}

describe("plan", () => {
  it("uses the paper's defaults for 128K tokens on 8 hosts", async () => {
    const p = await plan(base);
    expect([p.blockTokens, p.anchorTokens, p.passingTokens]).toEqual([16_384, 4096, 2048]);
    expect(p.hostPlans).toHaveLength(8);
    expect(p.hostPlans[7]!.passing).toMatchObject({ fromHosts: 7, receives: 7 * 2048, sends: 0 });
    expect(p.summary.ttftMs).toBeGreaterThan(p.summary.prefillMs);
  });

  it("plans every model preset on every hardware preset", async () => {
    for (const model of Object.keys(MODEL_PRESETS)) {
      for (const hardware of Object.keys(HARDWARE_PRESETS)) {
        const p = await plan({ ...base, model, hardware });
        expect(p.summary.prefillMs, `${model} on ${hardware}`).toBeGreaterThan(0);
      }
    }
  });

  it("accepts a model shape and a hardware profile instead of preset names", async () => {
    const p = await plan({
      contextTokens: 4096,
      hosts: 2,
      model: { layers: 2, hidden: 64, heads: 4, kvHeads: 2, headDim: 16, intermediate: 128, vocab: 1000, bytesPerWeight: 4 },
      hardware: { matmulTflops: 1, attentionTflops: 1, hbmGBs: 50, linkGBs: 1, linkLatencyUs: 50, memoryGiB: 16 },
      balanced: false,
    });
    expect(p.hostPlans.map((h) => h.localRanges)).toEqual([[[0, 2048]], [[2048, 4096]]]);
  });

  it("gives the rows a host may not pass: the anchor's document tokens in its block", async () => {
    const p = await plan({ ...base, queryTokens: 100, balanced: false });
    // Even blocks of 16K; anchors hold doc[0, 4096 - 100): host 0's first rows; later hosts' blocks hold none of it.
    expect(p.hostPlans[0]!.passing).toMatchObject({ excluded: [0, 3996], candidates: 16_384 - 3996 });
    expect(p.hostPlans[1]!.passing).toMatchObject({ excluded: [0, 0], candidates: 16_384 });
  });

  it("lists ring steps for ring-zigzag: itself, the hosts before, the hosts after", async () => {
    const p = await plan({ ...base, contextTokens: 16_000, hosts: 4, strategy: "ring-zigzag" });
    const host2 = p.hostPlans[2]!;
    expect(host2.ringSteps.map((r) => [r.firstStep, r.steps, r.firstSource])).toEqual([[0, 1, 2], [1, 2, 1], [3, 1, 3]]);
    // Hosts 1 and 0 hold chunks before both of host 2's; host 3's second chunk precedes only its later one.
    const keys = (r: (typeof host2.ringSteps)[number]) => r.segments.map((s) => s.keys.map((k) => [k.start, k.count, k.mask]));
    expect(host2.ringSteps.map(keys)).toEqual([
      [[[0, 2000, "causal"]], [[0, 2000, "full"], [2000, 2000, "causal"]]],
      [[[0, 2000, "full"]], [[0, 2000, "full"]]],
      [[], [[0, 2000, "full"], [2000, 2000, "full"]]],
    ]);
    const apb = await plan(base);
    expect(apb.hostPlans.every((h) => h.ringSteps.length === 0)).toBe(true);
  });

  it("reports balanced sizing and its predicted gain", async () => {
    const p = await plan({ ...base, balanced: true });
    expect(p.balance!.gain).toBeGreaterThan(1.05);
    expect(p.hostPlans.reduce((n, h) => n + h.localTokens, 0)).toBe(131_072);
  });

  it("balances apb's blocks by default and keeps star's even unless asked", async () => {
    const apb = await plan(base);
    expect(apb.balanced).toBe(true);
    expect(apb.hostPlans[0]!.localTokens).toBeGreaterThan(apb.hostPlans[7]!.localTokens);
    const even = await plan({ ...base, balanced: false });
    expect(even.balanced).toBe(false);
    expect(new Set(even.hostPlans.map((h) => h.localTokens)).size).toBe(1);
    expect((await plan({ ...base, strategy: "star" })).balanced).toBe(false);
    expect((await plan({ ...base, strategy: "star", balanced: true })).balanced).toBe(true);
  });
});

describe("bad input gets one clear error naming the field and the allowed range", () => {
  const cases: [string, unknown, string, string, RegExp][] = [
    ["zero length", { ...base, contextTokens: 0 }, "OUT_OF_RANGE", "contextTokens", /between 1 and 2147483647, got 0/],
    ["negative length", { ...base, contextTokens: -8 }, "OUT_OF_RANGE", "contextTokens", /got -8/],
    ["NaN", { ...base, contextTokens: Number.NaN }, "WRONG_TYPE", "contextTokens", /got NaN/],
    ["a fraction", { ...base, hosts: 2.5 }, "WRONG_TYPE", "hosts", /whole number/],
    ["over 32 bits", { ...base, contextTokens: 2 ** 32 }, "OUT_OF_RANGE", "contextTokens", /2147483647/],
    ["more hosts than tokens", { ...base, contextTokens: 10, hosts: 11 }, "INFEASIBLE", "hosts", /at most 10 hosts/],
    ["l_p > l_b", { ...base, passingTokens: 20_000 }, "OUT_OF_RANGE", "passingTokens", /at most the block length l_b = 16384/],
    ["l_a > l_b", { ...base, anchorTokens: 20_000 }, "OUT_OF_RANGE", "anchorTokens", /at most the block length/],
    ["unknown strategy", { ...base, strategy: "warp" }, "OUT_OF_RANGE", "strategy", /one of apb, star/],
    ["a typo", { ...base, host: 8 }, "UNKNOWN_FIELD", "host", /not a known field/],
    ["no model", { contextTokens: 100 }, "MISSING_FIELD", "model", /required/],
    ["unknown preset", { ...base, model: "gpt-9" }, "OUT_OF_RANGE", "model", /presets: llama-3.1-8b/],
    ["bad model field", { ...base, model: { ...MODEL_PRESETS["llama-3.1-8b"].shape, kvHeads: 7 } }, "OUT_OF_RANGE", "model.kvHeads", /divide heads/],
    ["negative memory", { ...base, hardware: { ...HARDWARE_PRESETS["h100-ib"].profile, memoryGiB: -1 } }, "OUT_OF_RANGE", "hardware.memoryGiB", /greater than 0/],
    ["multiprocessors alone", { ...base, hardware: { ...HARDWARE_PRESETS["a100-ib"].profile, multiprocessors: 108 } }, "OUT_OF_RANGE", "hardware.attentionBlockUs", /goes with multiprocessors/],
  ];
  for (const [name, request, code, path, message] of cases) {
    it(name, async () => {
      const e = await errorOf(request);
      expect({ code: e.code, path: e.path }).toEqual({ code, path });
      expect(e.message).toMatch(message);
    });
  }
});

describe("compare and recommend", () => {
  it("compares every strategy with speedups over full attention", async () => {
    const c = await compare(base);
    const rows = c.strategies.filter((r) => "summary" in r);
    expect(rows.map((r) => r.strategy)).toEqual(["apb", "star", "ring", "ring-zigzag", "ulysses", "full"]);
    const ttft = Object.fromEntries(rows.map((r) => [r.strategy, r.summary.ttftMs]));
    expect(ttft.apb).toBeLessThan(ttft.star!);
    expect(ttft.star).toBeLessThan(ttft.full!);
  });

  it("recommends within memory and never below the paper's ratios", async () => {
    const r = await recommend({ model: "llama-3.1-8b", contextTokens: 131_072, maxHosts: 16 });
    expect(r.best).not.toBeNull();
    for (const c of r.candidates) {
      expect(c.summary.fits).toBe(true);
      if (c.hosts > 1) {
        expect(c.anchorTokens).toBeGreaterThanOrEqual(c.blockTokens / 4);
        expect(c.passingTokens).toBeGreaterThanOrEqual(c.blockTokens / 8);
      }
    }
    const ttfts = r.candidates.map((c) => c.summary.ttftMs);
    expect(ttfts).toEqual([...ttfts].sort((a, b) => a - b));
  });

  it("says when nothing fits", async () => {
    const r = await recommend({ model: "yi-34b-200k", contextTokens: 1_000_000, maxHosts: 1 });
    expect(r.best).toBeNull();
    expect(r.reason).toMatch(/fits in device memory/);
  });
});

describe("Planner.create", () => {
  it("loads from bytes, as a browser that fetched the module would", async () => {
    const bytes = await readFile(new URL("../wasm/apb_plan.wasm", import.meta.url));
    const planner = await Planner.create(bytes);
    expect(planner.version()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(planner.plan(base).anchorTokens).toBe(4096);
  });
});
