// A model under its caller's control: AbortSignal ends a load or a generation (within one
// layer) with CANCELLED and leaves the model usable; dispose frees it (idempotent, a running
// generation finishes); a throwing callback rejects the call with its error, once, and stops
// the work; prefill progress arrives per host and layer; timings say what the caller waited.
import { getEventListeners } from "node:events";
import { describe, expect, it } from "vitest";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";
import { loadModel, RuntimeError, type Model, type PrefillProgress } from "./index.js";
import { writeTinyModel } from "./testing.js";

const freshDir = tempDirs("control");
const document = "Ledgers, maps and letters from the harbour town fill the archive. ".repeat(60) + "The key is 4417. " + "More shelves follow. ".repeat(30);
const query = "What is the key?";

async function deepModel(layers: number): Promise<{ dir: string; model: Model }> {
  const dir = await freshDir();
  await writeTinyModel(dir, { seed: freshSeed() % 100_000, layers });
  return { dir, model: await loadModel(dir) };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => expect.fail("expected a rejection"),
    (e: unknown) => e,
  );
}

describe("AbortSignal", () => {
  it("stops a generation within one layer with CANCELLED, and the model still generates", async () => {
    const layers = 10 + Math.floor(Math.random() * 6);
    const { model } = await deepModel(layers);
    const hosts = 2 + Math.floor(Math.random() * 3);
    const before = await model.generate({ document, query, strategy: "apb", hosts, maxTokens: 3 });
    const controller = new AbortController();
    const seen: PrefillProgress[] = [];
    const tokens: number[] = [];
    const e = await rejection(
      model.generate({
        document,
        query,
        strategy: "apb",
        hosts,
        maxTokens: 3,
        signal: controller.signal,
        onToken: (_, id) => tokens.push(id),
        onProgress: (p) => {
          seen.push(p);
          controller.abort();
        },
      }),
    );
    expect(e).toBeInstanceOf(RuntimeError);
    expect((e as RuntimeError).code).toBe("CANCELLED");
    expect((e as RuntimeError).message).toMatch(/generate was cancelled/);
    expect(tokens).toEqual([]);
    // Nothing reaches the caller's callbacks after the call rejected.
    const reported = seen.length;
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.length).toBe(reported);
    // The first report aborts: every host stops at its next layer, far short of the last.
    expect(Math.max(...seen.map((p) => p.layer))).toBeLessThanOrEqual(2);
    const after = await model.generate({ document, query, strategy: "apb", hosts, maxTokens: 3 });
    expect(after.tokens).toEqual(before.tokens);
    expect(after.firstLogits).toEqual(before.firstLogits);
  });

  it("rejects at once when the signal is already aborted, before any work", async () => {
    const { dir, model } = await deepModel(2);
    const signal = AbortSignal.abort(new Error("the user pressed Ctrl-C"));
    let called = 0;
    const e = await rejection(model.generate({ document, query, signal, onToken: () => called++, onProgress: () => called++ }));
    expect(e).toMatchObject({ code: "CANCELLED", path: "signal", message: expect.stringContaining("Ctrl-C") });
    expect(called).toBe(0);
    // Loading too: the path is never opened (a missing one would be MODEL_FILE).
    await expect(loadModel(`${dir}/does-not-exist`, { signal })).rejects.toMatchObject({ code: "CANCELLED" });
  });

  it("leaves no listener on a long-lived signal, however the call ends", async () => {
    const { dir, model } = await deepModel(2);
    const signal = new AbortController().signal;
    await model.generate({ document, query, maxTokens: 1, signal });
    await expect(model.generate({ document, query, hosts: 0, signal })).rejects.toMatchObject({ code: "OUT_OF_RANGE" });
    await expect(model.generate({ document, query, maxTokens: 50, stopTokenIds: [], signal, onToken: () => { throw new Error("stop"); } })).rejects.toThrow("stop");
    (await loadModel(dir, { signal })).dispose();
    expect(getEventListeners(signal, "abort")).toHaveLength(0);
  });

  it("stops a load with CANCELLED before its next tensor", async () => {
    const dir = await freshDir();
    const layers = 12 + Math.floor(Math.random() * 8);
    await writeTinyModel(dir, { seed: freshSeed() % 100_000, layers });
    const controller = new AbortController();
    const steps: number[] = [];
    const e = await rejection(
      loadModel(dir, {
        signal: controller.signal,
        onProgress: (done) => {
          steps.push(done);
          controller.abort();
        },
      }),
    );
    expect(e).toMatchObject({ code: "CANCELLED" });
    expect(steps.length).toBeLessThan(layers + 2);
    expect(steps.at(-1)).not.toBe(layers + 2);
  });
});

describe("dispose", () => {
  it("lets a running generation finish, then refuses calls with DISPOSED; again does nothing", async () => {
    const { model } = await deepModel(3);
    const expected = await model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens: 4 });
    const running = model.generate({ document, query, strategy: "apb", hosts: 2, maxTokens: 4 });
    model.dispose();
    expect(model.disposed).toBe(true);
    expect((await running).tokens).toEqual(expected.tokens);
    const e = await rejection(model.generate({ document, query }));
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e).toMatchObject({ code: "DISPOSED", message: expect.stringMatching(/load the model again/) });
    model.dispose();
    await model[Symbol.asyncDispose]();
    expect(() => model.gpuMemory()).toThrow(expect.objectContaining({ code: "DISPOSED" }));
  });

  it("frees the model through Symbol.asyncDispose", async () => {
    const { model } = await deepModel(2);
    await model[Symbol.asyncDispose]();
    await expect(model.generate({ document, query })).rejects.toMatchObject({ code: "DISPOSED" });
  });
});

describe("callbacks that throw", () => {
  it("an onToken that throws rejects generate with its error and stops generating", async () => {
    const { model } = await deepModel(2);
    const boom = new Error(`onToken failed ${freshSeed()}`);
    let calls = 0;
    const e = await rejection(
      model.generate({
        document,
        query,
        maxTokens: 50,
        stopTokenIds: [],
        onToken: () => {
          calls++;
          throw boom;
        },
      }),
    );
    expect(e).toBe(boom);
    expect(calls).toBe(1);
    // The model is fine afterwards.
    expect((await model.generate({ document, query, maxTokens: 2 })).tokens.length).toBeGreaterThan(0);
  });

  it("an onProgress that throws rejects generate with its error", async () => {
    const { model } = await deepModel(6);
    const boom = new TypeError("progress bar broke");
    let calls = 0;
    const e = await rejection(
      model.generate({
        document,
        query,
        hosts: 3,
        onProgress: () => {
          calls++;
          throw boom;
        },
      }),
    );
    expect(e).toBe(boom);
    expect(calls).toBe(1);
  });

  it("a load whose onProgress throws rejects with its error, once", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 5, layers: 6 });
    const boom = new RangeError("cannot draw the bar");
    let calls = 0;
    const e = await rejection(
      loadModel(dir, {
        onProgress: () => {
          calls++;
          throw boom;
        },
      }),
    );
    expect(e).toBe(boom);
    expect(calls).toBe(1);
  });

  it("a load whose last progress step throws rejects too", async () => {
    const dir = await freshDir();
    await writeTinyModel(dir, { seed: 6, layers: 2 });
    const boom = new Error("last step");
    const e = await rejection(
      loadModel(dir, {
        onProgress: (done, total) => {
          if (done === total) throw boom;
        },
      }),
    );
    expect(e).toBe(boom);
  });
});

describe("prefill progress and timings", () => {
  it("reports each host's layers in order, with the request's hosts and the model's layers", async () => {
    const layers = 3 + Math.floor(Math.random() * 4);
    const { model } = await deepModel(layers);
    for (const [strategy, hosts] of [["apb", 2 + Math.floor(Math.random() * 3)], ["full", 1], ["ring", 3]] as const) {
      const seen: PrefillProgress[] = [];
      const g = await model.generate({ document, query, strategy, hosts, maxTokens: 1, onProgress: (p) => seen.push({ ...p }) });
      expect(g.layout.hosts).toBe(hosts);
      // Reports still queued when generate resolves are dropped; those that came are exact.
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.length).toBeLessThanOrEqual(hosts * layers);
      for (const p of seen) expect(p).toEqual({ host: p.host, hosts, layer: p.layer, layers });
      for (let h = 0; h < hosts; h++) {
        const mine = seen.filter((p) => p.host === h).map((p) => p.layer);
        expect(mine, `${strategy} host ${h}`).toEqual(mine.map((_, i) => i + 1));
      }
    }
  });

  it("firstTokenWallMs is what the caller waited, with every emulated host's turns in it", async () => {
    const { model } = await deepModel(2);
    for (const maxTokens of [0, 5]) {
      const hosts = 2 + Math.floor(Math.random() * 3);
      const t0 = performance.now();
      const g = await model.generate({ document, query, strategy: "apb", hosts, maxTokens });
      const waited = performance.now() - t0;
      const t = g.timings;
      expect(t.emulatedHosts).toBe(true);
      expect(t.firstTokenWallMs).toBeGreaterThanOrEqual(t.prefillWallMs);
      expect(t.firstTokenWallMs).toBeLessThanOrEqual(t.totalWallMs);
      expect(t.totalWallMs).toBeLessThanOrEqual(waited + 1);
      // Hosts take turns on one machine: the wait holds all of their prefill work, not just the slowest's.
      const allHosts = t.hosts.reduce((sum, h) => sum + h.prefillMs, 0);
      expect(t.firstTokenWallMs).toBeGreaterThanOrEqual(allHosts);
      expect(t.prefillMs).toBe(Math.max(...t.hosts.map((h) => h.prefillMs)));
    }
  });
});
