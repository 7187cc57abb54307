// The wasm module (browser, CLI) and the native build (engine) must give the same plan,
// byte for byte, on any input: one source of truth compiled twice.
import { describe, expect, it } from "vitest";
import { MODEL_PRESETS, Planner, STRATEGIES } from "@apb/planner";
import { nativeCall } from "./native.js";

function rng(seed: number) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 32;
  };
}

const SEED = Number(process.env.APB_TEST_SEED ?? Date.now() % 2 ** 31);
console.log(`APB_TEST_SEED=${SEED}`);

function randomRequest(r: () => number): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const strategy = pick(STRATEGIES);
  const hosts = strategy === "ulysses" ? pick([1, 2, 4, 8]) : int(1, 64);
  const request: Record<string, unknown> = {
    model: pick(Object.keys(MODEL_PRESETS)),
    hardware: pick(["h100-ib", "h100-nvlink", "h200-nvlink", "a100-ib"]),
    contextTokens: int(hosts * 300, Math.max(hosts * 300, pick([8_000, 131_072, 1_048_576]))),
    hosts,
    strategy,
    queryTokens: int(1, 256),
    prefixTokens: int(0, 32),
  };
  if (strategy === "apb" && r() < 0.3) request.passingTokens = int(0, 512);
  if (strategy === "apb" && r() < 0.3) request.anchorTokens = int(300, 1024);
  if ((strategy === "apb" || strategy === "star") && r() < 0.3) request.balanced = true;
  if (r() < 0.2) request.scorer = "retaining-heads";
  return request;
}

describe("wasm and native planners", () => {
  it("give identical plans on random valid inputs", async () => {
    const planner = await Planner.create();
    const r = rng(SEED);
    const inputs = Array.from({ length: 200 }, () => JSON.stringify(Planner.wireInput("plan", randomRequest(r))));
    const native = nativeCall("plan", inputs);
    let plans = 0;
    inputs.forEach((input, i) => {
      const wasm = planner.raw("plan", input);
      expect(wasm, `input ${input}`).toBe(native[i]);
      if (!wasm.startsWith('{"error"')) plans += 1;
    });
    // Most random inputs are feasible; the rest must fail the same way in both builds.
    expect(plans).toBeGreaterThan(150);
  });

  it("give identical comparisons and recommendations", async () => {
    const planner = await Planner.create();
    const compare = [JSON.stringify(Planner.wireInput("compare", { model: "yi-34b-200k", contextTokens: 200_000, hosts: 8 }))];
    expect(planner.raw("compare", compare[0]!)).toBe(nativeCall("compare", compare)[0]);
    const recommend = [JSON.stringify(Planner.wireInput("recommend", { model: "llama-3-8b-1m", contextTokens: 1_048_576, maxHosts: 32, strategies: ["apb", "ring-zigzag"] }))];
    expect(planner.raw("recommend", recommend[0]!)).toBe(nativeCall("recommend", recommend)[0]);
  });

  it("reject malformed JSON the same way", async () => {
    const planner = await Planner.create();
    for (const bad of ["{", "[]", '{"contextTokens": 1e400}', "\"\\ud800\""]) {
      expect(planner.raw("plan", bad)).toBe(nativeCall("plan", [bad])[0]);
    }
  });
});
