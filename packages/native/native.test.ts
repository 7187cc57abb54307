// The addon's edge: errors cross as JS errors carrying {code, message, path}, never as
// crashes; a missing or truncated file is reported, not mapped blindly.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { backends, CancelToken, Engine, type ModelSpec } from "./index.js";

const PREFIX = "APB_ERROR:";

function errorData(e: unknown): { code: string; message: string; path: string } {
  const message = (e as Error).message;
  expect(message.startsWith(PREFIX), message).toBe(true);
  return JSON.parse(message.slice(PREFIX.length));
}

const config = {
  architecture: "llama", vocab: 8, hidden: 4, layers: 1, heads: 2, kvHeads: 1, headDim: 2, intermediate: 8,
  rmsNormEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: true, attentionBias: false, maxPositions: 64,
};

/** One f32 tensor file holding `names` (each of `shape`), all zeros but valid. */
function tensorFile(dir: string, entries: [string, number[]][]) {
  const file = join(dir, "w.bin");
  let offset = 0;
  const tensors = entries.map(([name, shape]) => {
    const byteLength = shape.reduce((a, b) => a * b, 1) * 4;
    const t = { name, file, dtype: "F32", shape, offset, byteLength };
    offset += byteLength;
    return t;
  });
  writeFileSync(file, Buffer.alloc(offset));
  return tensors;
}

function llamaTensors(dir: string) {
  const L = "model.layers.0";
  return tensorFile(dir, [
    ["model.embed_tokens.weight", [8, 4]],
    [`${L}.input_layernorm.weight`, [4]],
    [`${L}.post_attention_layernorm.weight`, [4]],
    [`${L}.self_attn.q_proj.weight`, [4, 4]],
    [`${L}.self_attn.k_proj.weight`, [2, 4]],
    [`${L}.self_attn.v_proj.weight`, [2, 4]],
    [`${L}.self_attn.o_proj.weight`, [4, 4]],
    [`${L}.mlp.gate_proj.weight`, [8, 4]],
    [`${L}.mlp.up_proj.weight`, [8, 4]],
    [`${L}.mlp.down_proj.weight`, [4, 8]],
    ["model.norm.weight", [4]],
  ]);
}

describe("@apb/native", () => {
  it("lists its backends", () => {
    expect(backends()).toContain("cpu");
  });

  it("loads weights with progress and generates", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const progress: [number, number][] = [];
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec, (p) => progress.push(p));
    expect(engine.backend).toBe("cpu");
    for (let waited = 0; progress.length < 3 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(progress).toEqual([[1, 3], [2, 3], [3, 3]]);
    const tokens: number[] = [];
    const out = await engine.generate(
      { context: [1, 2, 3, 4, 5], prefixTokens: 1, query: [6], strategy: "apb", hosts: 2, maxNewTokens: 3, stopTokens: [] },
      (t) => tokens.push(t),
    );
    expect(out.tokens).toHaveLength(3);
    expect(out.firstLogits).toHaveLength(8);
    expect(out.hosts.map((h) => h.host)).toEqual([0, 1]);
    // Token callbacks are queued to this thread and may land after the promise resolves.
    for (let waited = 0; tokens.length < out.tokens.length && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(tokens).toEqual(out.tokens);
  });

  it("runs ulysses, splitting the heads over hosts, to full attention's tokens", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec);
    const request = { context: [1, 2, 3, 4, 5, 6, 7], prefixTokens: 1, query: [6], hosts: 1, maxNewTokens: 3, stopTokens: [] };
    const full = await engine.generate({ ...request, strategy: "full" });
    // 2 hosts: a query head each, sharing the one KV head.
    const ulysses = await engine.generate({ ...request, strategy: "ulysses", hosts: 2 });
    expect(ulysses.tokens).toEqual(full.tokens);
    expect(ulysses.hosts.map((h) => h.host)).toEqual([0, 1]);
    const err = Math.max(...full.firstLogits.map((x, i) => Math.abs(x - ulysses.firstLogits[i]!)));
    expect(err).toBeLessThan(1e-4);
  });

  it("rejects a bad spec with a coded error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const cases: [ModelSpec, string, RegExp][] = [
      [{ config: { ...config, architecture: "gpt2" }, tensors: [] } as ModelSpec, "INVALID_INPUT", /architecture 'gpt2' is not supported/],
      [{ config, tensors: [] } as ModelSpec, "TENSOR_MISSING", /model.embed_tokens.weight is missing/],
      [{ config, tensors: llamaTensors(dir).map((t) => ({ ...t, file: join(dir, "nope.bin") })) } as ModelSpec, "MODEL_FILE", /cannot open .*nope.bin/],
      [{ config, tensors: llamaTensors(dir).map((t) => ({ ...t, offset: t.offset + 1e6 })) } as ModelSpec, "MODEL_FILE", /truncated/],
      [{ config, tensors: llamaTensors(dir), backend: "tpu" } as ModelSpec, "INVALID_INPUT", /backend 'tpu' is not one of: cpu/],
    ];
    for (const [spec, code, message] of cases) {
      const e = errorData(await Engine.load(spec).catch((x) => x));
      expect(e.code).toBe(code);
      expect(e.message).toMatch(message);
    }
  });

  it("rejects a bad request with a coded error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec);
    const base = { context: [1, 2, 3], prefixTokens: 1, query: [4], strategy: "full", hosts: 1, maxNewTokens: 1, stopTokens: [] };
    for (const [patch, path] of [
      [{ strategy: "warp" }, "strategy"],
      // 2 query heads cannot be split over 3 hosts: the planner's INFEASIBLE.
      [{ strategy: "ulysses", hosts: 3, context: [1, 2, 3, 4, 5, 6] }, "hosts"],
      [{ context: [1, 99] }, "tokens"],
      [{ query: [] }, "query"],
      [{ hosts: 9, strategy: "apb" }, "hosts"],
    ] as const) {
      const e = errorData(await engine.generate({ ...base, ...patch }).catch((x) => x));
      expect(e.path).toBe(path);
    }
  });
});

describe("a model under the caller's control", () => {
  const request = { context: [1, 2, 3, 4, 5, 6], prefixTokens: 1, query: [6], strategy: "apb", hosts: 2, maxNewTokens: 2, stopTokens: [] };

  it("a cancelled token rejects load and generate with CANCELLED before any work", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const cancelled = new CancelToken();
    cancelled.cancel();
    expect(cancelled.cancelled).toBe(true);
    const progress: unknown[] = [];
    expect(errorData(await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec, (p) => progress.push(p), cancelled).catch((x) => x)).code).toBe("CANCELLED");
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec, undefined, new CancelToken());
    const layers: unknown[] = [];
    expect(errorData(await engine.generate(request, undefined, (p) => layers.push(p), cancelled).catch((x) => x)).code).toBe("CANCELLED");
    await new Promise((r) => setTimeout(r, 50));
    expect(layers).toEqual([]);
    expect((await engine.generate(request, undefined, undefined, new CancelToken())).tokens).toHaveLength(2);
  });

  it("reports prefill layers and the first token's wall time", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec);
    const layers: { host: number; hosts: number; layer: number; layers: number }[] = [];
    const out = await engine.generate(request, undefined, (p) => layers.push(p));
    for (let waited = 0; layers.length < 2 && waited < 5000; waited += 10) await new Promise((r) => setTimeout(r, 10));
    expect(layers.sort((a, b) => a.host - b.host)).toEqual([{ host: 0, hosts: 2, layer: 1, layers: 1 }, { host: 1, hosts: 2, layer: 1, layers: 1 }]);
    expect(out.firstTokenWallMs).toBeGreaterThanOrEqual(out.prefillWallMs);
    expect(out.firstTokenWallMs).toBeLessThanOrEqual(out.totalWallMs);
  });

  it("dispose frees the model; later calls fail with DISPOSED, and again does nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const engine = await Engine.load({ config, tensors: llamaTensors(dir) } as ModelSpec);
    const running = engine.generate(request);
    engine.dispose();
    expect(engine.disposed).toBe(true);
    expect((await running).tokens).toHaveLength(2);
    let thrown: unknown;
    try {
      await engine.generate(request);
    } catch (e) {
      thrown = e;
    }
    expect(errorData(thrown)).toMatchObject({ code: "DISPOSED", message: expect.stringMatching(/load the model again/) });
    expect(errorData((() => { try { engine.gpuMemory(); } catch (e) { return e; } })()).code).toBe("DISPOSED");
    engine.dispose();
    expect(engine.backend).toBe("cpu");
  });
});

describe("the CUDA kernels through the addon", () => {
  // Each call either runs on GPU 0 and matches the CPU reference, or (no GPU, as in CI)
  // throws a coded error naming what is missing, never crashes.
  async function onGpuOrUnavailable<T>(call: () => T): Promise<T | null> {
    try {
      return call();
    } catch (e) {
      const data = errorData(e);
      expect(data.code).toBe("CUDA_UNAVAILABLE");
      expect(data.message).toMatch(/no CUDA driver|no CUDA kernels|compute capability/);
      return null;
    }
  }

  it("are built in", () => {
    expect(backends()).toContain("cuda");
  });

  it("loads a model on the CUDA backend, or says why not", async () => {
    const dir = mkdtempSync(join(tmpdir(), "apb-native-"));
    const loaded = await Engine.load({ config, tensors: llamaTensors(dir), backend: "cuda" } as ModelSpec).catch((e) => e);
    if (loaded instanceof Engine) {
      expect(loaded.backend).toBe("cuda");
    } else {
      const data = errorData(loaded);
      expect(data.code).toBe("CUDA_UNAVAILABLE");
      expect(data.message).toMatch(/no CUDA driver|no CUDA kernels|cuBLAS not found/);
    }
  });

  it("the testing entry runs a kernel by name, or says why it cannot", async () => {
    const { runKernel } = await import("./testing.js");
    const x = Buffer.from(new Uint16Array([0x3f80, 0x4000, 0xbf80, 0x0000]).buffer); // bf16 1, 2, -1, 0
    const w = Buffer.from(new Uint16Array([0x3f80, 0x3f80]).buffer);
    const r = await onGpuOrUnavailable(() => runKernel({ kernel: "rms_norm", params: JSON.stringify({ eps: 1e-5 }), tensors: { x, w } }));
    if (!r) return;
    // Row [1, 2]: rms = sqrt(2.5); row [-1, 0]: rms = sqrt(0.5). Inputs come back unchanged.
    const out = new Uint16Array(r.tensors.out.buffer, r.tensors.out.byteOffset, 4);
    const f = (b: number) => new Float32Array(new Uint32Array([b << 16]).buffer)[0];
    const want = [1 / Math.sqrt(2.5), 2 / Math.sqrt(2.5), -1 / Math.sqrt(0.5), 0];
    [...out].forEach((b, i) => expect(f(b)).toBeCloseTo(want[i], 2));
    expect(Buffer.compare(r.tensors.x, x)).toBe(0);
  });

  it("rejects an unknown kernel, or attention kernel, with a coded error before touching the GPU", async () => {
    const { runKernel } = await import("./testing.js");
    const thrown = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return errorData(e);
      }
      throw new Error("expected an error");
    };
    const unknown = thrown(() => runKernel({ kernel: "softmax", params: {}, tensors: {} }));
    expect(unknown).toMatchObject({ code: "INVALID_INPUT", path: "kernel" });
    expect(unknown.message).toMatch(/unknown kernel "softmax"; one of attention, merge/);
    const attention = thrown(() => runKernel({ kernel: "attention", params: { kernel: "fast", headDim: 128 }, tensors: {} }));
    expect(attention).toMatchObject({ code: "INVALID_INPUT", path: "kernel" });
    expect(attention.message).toMatch(/"sm90", "portable" or "decode"/);
  });

  it("keeps the kernel runner out of the main entry", async () => {
    const main = await import("./index.js");
    expect(Object.keys(main)).not.toContain("runKernel");
    expect(Object.keys(main).sort()).toEqual(["CancelToken", "DataPlane", "Engine", "TcpEndpoint", "backends", "calibrate", "checkRequest", "doctor", "ncclUniqueId", "tcpListen"]);
  });
});
