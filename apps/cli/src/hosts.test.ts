// Hosts as processes, as a user runs them: `apb run --processes` (a coordinator and one
// `apb worker` process per host, TCP between them on loopback), `apb coordinator` with
// workers started by hand, and what happens when a worker dies. The answers must be the
// ones the same hosts give emulated in one process.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { logitAgreement } from "@apb/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
const apb = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { ...process.env, APB_TOKEN: "" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
};

let dir: string;
let model: string;
let promptFile: string;
const started: ChildProcess[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "apb-cli-hosts-"));
  model = join(dir, "tiny");
  promptFile = join(dir, "doc.txt");
  // Fresh text each run: a different prompt (and so different passing blocks) every time.
  const words = ["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau", "phi", "rho"];
  const seed = Date.now();
  const doc = Array.from({ length: 500 }, (_, i) => words[(seed + i * 7 + Math.floor(i / 3)) % words.length]).join(" ");
  writeFileSync(promptFile, doc);
  const made = apb("make-tiny-model", model, "--layers", "2", "--seed", String(seed % 1000));
  expect(made.code, made.err).toBe(0);
});

afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

function logits(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

function runJson(extra: string[], name: string) {
  const logitsFile = join(dir, `${name}.f32`);
  const r = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "Which word comes most?", "--max-tokens", "5", "--logits-out", logitsFile, "--json", ...extra);
  expect(r.code, r.err).toBe(0);
  return { result: JSON.parse(r.out), logits: logits(logitsFile) };
}

describe("apb run --processes", () => {
  const cases: [string, number][] = [
    ["full", 1],
    ["apb", 2 + Math.floor(Math.random() * 3)],
    ["star", 2 + Math.floor(Math.random() * 3)],
    ["ring", 2 + Math.floor(Math.random() * 3)],
    ["ring-zigzag", 2 + Math.floor(Math.random() * 3)],
    // Hosts that share the tiny model's 4 query heads and 2 KV heads: 2, or 4 sharing a KV head.
    ["ulysses", 2 * (1 + Math.floor(Math.random() * 2))],
  ];
  it.each(cases)("%s on %i hosts as processes gives the tokens and first-token logits of the same hosts emulated", (strategy, hosts) => {
    const args = ["--strategy", strategy, "--hosts", String(hosts)];
    const emulated = runJson(args, `${strategy}-emulated`);
    const processes = runJson([...args, "--processes"], `${strategy}-processes`);
    expect(processes.result.tokens).toEqual(emulated.result.tokens);
    expect(processes.result.text).toBe(emulated.result.text);
    expect(processes.logits.length).toBe(emulated.logits.length);
    expect(logitAgreement(processes.logits, emulated.logits).relativeError).toBeLessThanOrEqual(1e-5);
    expect(processes.result.layout).toEqual(emulated.result.layout);
    // Each host reports its own time, and the caller's wall time to the first token beside it.
    expect(processes.result.timings.hosts.map((h: { host: number }) => h.host)).toEqual([...Array(hosts).keys()]);
    expect(processes.result.timings.firstTokenWallMs).toBeGreaterThan(0);
    expect([processes.result.timings.emulatedHosts, emulated.result.timings.emulatedHosts]).toEqual([false, true]);
    expect(processes.result.timings.hosts.every((h: { phasesMs: Record<string, number> }) => (h.phasesMs.wait ?? 0) === 0)).toBe(true);
  }, 120_000);

  it("says in one line why CUDA workers cannot start, where they cannot", () => {
    // No GPU (CI), or the tiny model's head_dim (16) that no GPU kernel takes: either way the
    // workers stop on CUDA_UNAVAILABLE and the caller names the worker and the cause.
    const r = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--hosts", "2", "--processes", "--backend", "cuda");
    expect(r.code).not.toBe(0);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/worker \d \(pid \d+\) exited .* before the group formed: .*\[CUDA_UNAVAILABLE\]$/m);
  }, 60_000);

  it("prints what an emulated run prints", () => {
    const r = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--strategy", "apb", "--hosts", "2", "--max-tokens", "3", "--processes");
    expect(r.code, r.err).toBe(0);
    // The answer (streamed as the group's tokens come back) comes first, as emulated hosts give it.
    const emulated = apb("run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--strategy", "apb", "--hosts", "2", "--max-tokens", "3", "--json");
    expect(r.out.startsWith(`${JSON.parse(emulated.out).text}\n\n`)).toBe(true);
    // Hosts that are processes are not called emulated: their wall time is a group's.
    expect(r.out).toMatch(/^first token after [\d.]+ ms \(wall\) for a \d+-token prompt, apb \(block \d+, anchor \d+, passing \d+\) on 2 hosts$/m);
    expect(r.out).toMatch(/^slowest host's own prefill work: [\d.]+ ms \(\d+ tokens\/s\)$/m);
    expect(r.out).not.toMatch(/emulated/);
    expect(r.out.split("\n").filter((l) => /^\s+\d\s+\d+\s/.test(l))).toHaveLength(2);
  }, 60_000);
});

/** Starts a long-running CLI process and collects its stderr. */
function background(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  started.push(child);
  let err = "";
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const t0 = Date.now();
      const poll = setInterval(() => {
        const m = err.match(pattern);
        if (m) {
          clearInterval(poll);
          resolve(m);
        } else if (Date.now() - t0 > timeoutMs || child.exitCode !== null) {
          clearInterval(poll);
          reject(new Error(`waited for ${pattern} in: ${err}`));
        }
      }, 50);
    });
  return { child, waitFor, stderr: () => err };
}

function runAsync(args: string[]): Promise<{ code: number | null; out: string; err: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    started.push(child);
    let out = "";
    let err = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => (out += d));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
    child.on("exit", (code) => resolve({ code, out, err, ms: Date.now() - t0 }));
  });
}

describe("apb coordinator with workers started by hand", () => {
  it("names a worker killed mid-prefill within 15 s, leaves nothing hanging, and runs the next job once it is back", async () => {
    const token = `t-${Math.random().toString(36).slice(2)}`;
    const coordinator = background(["coordinator", "--model", model, "--hosts", "2", "--listen", "127.0.0.1:0", "--token", token]);
    const [, url] = await coordinator.waitFor(/listening on (ws:\/\/[\d.]+:\d+)/);
    const worker = (rank: number) => background(["worker", "--coordinator", url!, "--rank", String(rank)], { APB_TOKEN: token });
    const w0 = worker(0);
    let w1 = worker(1);
    await coordinator.waitFor(/group .*formed/i);

    // A document long enough that prefill is still running when the worker is killed.
    const longDoc = join(dir, "long.txt");
    writeFileSync(longDoc, readFileSync(promptFile, "utf8").repeat(12));
    const job = runAsync(["run", "--model", model, "--prompt-file", longDoc, "--query", "q", "--strategy", "ring", "--max-tokens", "2000", "--ignore-eos", "--coordinator", url!, "--token", token]);
    await w1.waitFor(/job|prefill/i);
    const killedPid = w1.child.pid!;
    w1.child.kill("SIGKILL");
    const killedAt = Date.now();
    const failed = await job;
    expect(failed.code).not.toBe(0);
    expect(failed.err).toMatch(/\[HOST_LOST\]/);
    expect(failed.err).toMatch(new RegExp(`host 1 .*pid ${killedPid}`));
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(failed.err.trim().split("\n")).toHaveLength(1);
    // The survivor did not hang: it is still alive and serving.
    expect(w0.child.exitCode).toBeNull();

    w1 = worker(1);
    await coordinator.waitFor(/group .*formed[\s\S]*group .*formed/i, 60_000);
    const next = await runAsync(["run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--strategy", "apb", "--max-tokens", "3", "--coordinator", url!, "--token", token, "--json"]);
    expect(next.code, next.err).toBe(0);
    expect(JSON.parse(next.out).layout.hosts).toBe(2);

    coordinator.child.kill("SIGTERM");
    await new Promise((r) => coordinator.child.once("exit", r));
    // Workers started by hand reconnect; stopping them with SIGTERM ends them cleanly.
    for (const w of [w0, w1]) {
      w.child.kill("SIGTERM");
      const code = await new Promise((r) => (w.child.exitCode !== null ? r(w.child.exitCode) : w.child.once("exit", (c) => r(c))));
      expect(code).toBe(0);
    }
  }, 240_000);

  it("names a worker that stops answering (SIGSTOP) after three missed heartbeats, and the survivor is not left waiting", async () => {
    const token = "stopped-worker";
    const coordinator = background(["coordinator", "--model", model, "--hosts", "2", "--listen", "127.0.0.1:0", "--token", token, "--heartbeat-ms", "500"]);
    const [, url] = await coordinator.waitFor(/listening on (ws:\/\/[\d.]+:\d+)/);
    const w0 = background(["worker", "--coordinator", url!, "--rank", "0"], { APB_TOKEN: token });
    const w1 = background(["worker", "--coordinator", url!, "--rank", "1"], { APB_TOKEN: token });
    await coordinator.waitFor(/group .*formed/i);
    const job = runAsync(["run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--strategy", "apb", "--max-tokens", "50000", "--ignore-eos", "--coordinator", url!, "--token", token]);
    await w1.waitFor(/job 1/);
    w1.child.kill("SIGSTOP");
    const stoppedAt = Date.now();
    const failed = await job;
    expect(failed.err).toMatch(/\[HOST_LOST\]/);
    expect(failed.err).toMatch(new RegExp(`host 1 .*pid ${w1.child.pid}.*heartbeat`));
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);
    // The survivor's data plane was aborted: it left the job and is still serving.
    await w0.waitFor(/job 1 failed|abort/i);
    expect(w0.child.exitCode).toBeNull();
    w1.child.kill("SIGKILL");
    coordinator.child.kill("SIGTERM");
    w0.child.kill("SIGTERM");
  }, 60_000);

  it("says how many hosts joined when the group never forms", async () => {
    const token = "never-forms";
    const coordinator = background(["coordinator", "--model", model, "--hosts", "3", "--listen", "127.0.0.1:0", "--token", token]);
    const [, url] = await coordinator.waitFor(/listening on (ws:\/\/[\d.]+:\d+)/);
    background(["worker", "--coordinator", url!], { APB_TOKEN: token });
    await coordinator.waitFor(/joined|ready/i);
    const r = await runAsync(["run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--coordinator", url!, "--token", token, "--group-timeout-ms", "3000"]);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(/\[GROUP_TIMEOUT\]/);
    expect(r.err).toMatch(/1 of 3/);
    coordinator.child.kill("SIGTERM");
  }, 60_000);

  it("refuses a worker with the wrong token in one line", async () => {
    const coordinator = background(["coordinator", "--model", model, "--hosts", "1", "--listen", "127.0.0.1:0", "--token", "right"]);
    const [, url] = await coordinator.waitFor(/listening on (ws:\/\/[\d.]+:\d+)/);
    const r = await runAsync(["worker", "--coordinator", url!, "--token", "wrong"]);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/refused this host: .*\[UNAUTHORIZED\]/);
    coordinator.child.kill("SIGTERM");
  }, 30_000);

  it("reports missing flags before any work", () => {
    expect(apb("worker").err).toMatch(/--coordinator is required/);
    expect(apb("worker", "--coordinator", "http://x:1", "--token", "t").err).toMatch(/ws:\/\/ or wss:\/\//);
    expect(apb("coordinator", "--model", model, "--hosts", "2", "--listen", "nowhere").err).toMatch(/--listen must be HOST:PORT/);
    expect(apb("run", "--model", model, "--prompt-file", promptFile, "--query", "q", "--processes", "--coordinator", "ws://x:1").err).toMatch(/give one of them/);
  });
});
