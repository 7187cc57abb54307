// One host's part of a request (runHost) over a TCP data plane: every host of a group runs
// the same request and together they give what the same hosts emulated give; a data plane
// aborted from outside ends a running request with an error instead of a hang.
import { describe, expect, it, vi } from "vitest";
import { freshSeed, tempDirs } from "./temp-dirs.test-helper.js";
import { buildHostRequest, loadModel, modelFingerprint, openModelDir, tcpListen, type Model, type PrefillProgress } from "./index.js";
import { logitAgreement, writeTinyModel } from "./testing.js";

const freshDir = tempDirs("hosts");
const document = "Lanterns and ledgers fill the archive. ".repeat(40) + "The code is 7731. " + "More shelves follow. ".repeat(25);
const query = "What is the code?";

async function group(size: number, name: string) {
  const endpoints = Array.from({ length: size }, () => tcpListen("127.0.0.1:0"));
  const addresses = endpoints.map((e) => e.address);
  return Promise.all(endpoints.map((e, rank) => e.connect(name, rank, addresses, 10_000)));
}

async function tiny(seed: number): Promise<{ dir: string; model: Model }> {
  const dir = await freshDir();
  await writeTinyModel(dir, { seed, layers: 2 });
  return { dir, model: await loadModel(dir) };
}

describe("runHost over TCP", () => {
  it("gives, on every host, the tokens and first-token logits of the same hosts emulated", async () => {
    const { model } = await tiny(freshSeed() % 100_000);
    for (const strategy of ["apb", "ring"] as const) {
      const hosts = 2 + Math.floor(Math.random() * 2);
      const { request } = buildHostRequest(model.dir, { document, query, strategy, hosts, maxTokens: 5 });
      const emulated = await model.generate({ document, query, strategy, hosts, maxTokens: 5 });
      const planes = await group(hosts, `${strategy}-${hosts}`);
      const streamed: number[] = [];
      const runs = await Promise.all(planes.map((p) => model.runHost(request, p, (id) => streamed.push(id))));
      for (const run of runs) {
        expect(run.tokens, strategy).toEqual(emulated.tokens);
        expect(logitAgreement(run.firstLogits, emulated.firstLogits).relativeError).toBeLessThanOrEqual(1e-5);
        expect(run.timing.computeMs + run.timing.commMs).toBeCloseTo(run.timing.prefillMs, 6);
      }
      expect(runs.map((r) => r.rank)).toEqual([...Array(hosts).keys()]);
      expect(streamed).toEqual(emulated.tokens); // only the last host streams
    }
  });

  it("reports each layer of each host's prefill, in order, to that host's onProgress", async () => {
    const { model } = await tiny(5);
    const { request } = buildHostRequest(model.dir, { document, query, strategy: "apb", hosts: 2, maxTokens: 2 });
    const planes = await group(2, "progress");
    const seen: PrefillProgress[][] = [[], []];
    await Promise.all(planes.map((p, rank) => model.runHost(request, p, undefined, (e) => seen[rank]!.push(e))));
    // Events cross threads without blocking the host: the last may land just after the call resolves.
    await vi.waitFor(() => expect(seen.map((s) => s.length)).toEqual([2, 2]));
    for (const [rank, events] of seen.entries()) {
      expect(events).toEqual([1, 2].map((layer) => ({ host: rank, hosts: 2, layer, layers: 2 })));
    }
  });

  it("rejects with the error an onProgress throws, once the host's part is done", async () => {
    const { model } = await tiny(6);
    const { request } = buildHostRequest(model.dir, { document, query, strategy: "apb", hosts: 2, maxTokens: 2 });
    const planes = await group(2, "progress-throws");
    const boom = new Error("the caller's progress bar failed");
    const runs = planes.map((p, rank) => model.runHost(request, p, undefined, rank === 0 ? () => { throw boom; } : undefined));
    await expect(runs[0]).rejects.toBe(boom);
    await expect(runs[1]).resolves.toMatchObject({ rank: 1 });
  });

  it("ends a running request with a COMM error when its data plane is aborted", async () => {
    const { model } = await tiny(3);
    const { request } = buildHostRequest(model.dir, { document: document.repeat(4), query, strategy: "ring", hosts: 2, maxTokens: 1000, stopTokenIds: [] });
    const [p0, p1] = await group(2, "aborted");
    // Host 1 never runs: host 0 waits on it at the first exchange until the abort.
    const running = model.runHost(request, p0!);
    setTimeout(() => p0!.abort("the control plane declared host 1 dead"), 200);
    await expect(running).rejects.toMatchObject({ code: "COMM", message: expect.stringContaining("declared host 1 dead") });
    expect(p0!.aborted).toBe(true);
    p1!.abort("test over");
  });

  it("refuses a request planned for another group size, and the group stays usable", async () => {
    const { model } = await tiny(4);
    const planes = await group(2, "sizes");
    const { request } = buildHostRequest(model.dir, { document, query, strategy: "apb", hosts: 2, maxTokens: 2 });
    // runHost plans for the group's size, whatever the request says.
    const runs = await Promise.all(planes.map((p) => model.runHost({ ...request, hosts: 5 }, p)));
    expect(runs.map((r) => r.rank)).toEqual([0, 1]);
  });
});

describe("modelFingerprint", () => {
  it("is the same for the same weights wherever they are, and differs for other weights or shapes", async () => {
    const [a, b, c, d] = [await freshDir(), await freshDir(), await freshDir(), await freshDir()];
    const seed = freshSeed() % 100_000;
    await writeTinyModel(a, { seed, layers: 2 });
    await writeTinyModel(b, { seed, layers: 2 });
    await writeTinyModel(c, { seed: seed + 1, layers: 2 });
    await writeTinyModel(d, { seed, layers: 3 });
    const [fa, fb, fc, fd] = await Promise.all([a, b, c, d].map(async (x) => modelFingerprint(await openModelDir(x))));
    expect(fa).toBe(fb);
    expect(fc).not.toBe(fa);
    expect(fd).not.toBe(fa);
    expect(fa).toMatch(/^sha256:[0-9a-f]{32}$/);
  });
});
