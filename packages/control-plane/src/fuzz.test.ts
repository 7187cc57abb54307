import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { encodeFrame, MAX_FRAME_BYTES, type Message, type Unversioned } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { expectedTokens } from "./fake-executor.test-helper.js";
import { job, startAgents, startCoordinator, TOKEN, until } from "./harness.test-helper.js";

/** A seeded generator (mulberry32), so a failing run can be replayed from the seed it prints. */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}
type Rng = ReturnType<typeof random>;

function randomJson(rng: Rng, depth = 0): unknown {
  switch (rng.int(depth > 2 ? 5 : 7)) {
    case 0: return null;
    case 1: return rng.next() < 0.5;
    case 2: return rng.pick([0, -1, 1.5, 2 ** 32, 2 ** 53, -0, 1e308, rng.int(1000)]);
    case 3: return rng.pick(["", "hello", "submit", "\u0000", "x".repeat(rng.int(300)), "💥"]);
    case 4: return rng.pick(["v", "type", "token", "__proto__", "constructor"]);
    case 5: return Array.from({ length: rng.int(5) }, () => randomJson(rng, depth + 1));
    default: return Object.fromEntries(Array.from({ length: rng.int(5) }, () => [rng.pick(["type", "v", "token", "role", "job", "seq", "requestId", "a", "__proto__"]), randomJson(rng, depth + 1)]));
  }
}

const facts = { backend: "fuzz", hostname: "fuzz", pid: 1, gpus: [], freeMemoryBytes: null };
const valid: Unversioned<Message>[] = [
  { type: "hello", token: TOKEN, role: "host", facts, dataAddress: null },
  { type: "hello", token: TOKEN, role: "caller" },
  { type: "submit", requestId: "r1", job: job() },
  { type: "cancel", requestId: "r1" },
  { type: "ready", fingerprint: "fake-model-1" },
  { type: "heartbeat", seq: 1 },
  { type: "result", jobId: "1", rank: 0, result: { rank: 0, tokens: [1], firstLogits: null, anchorTokens: 0, passingTokens: 0, blockTokens: 0, timings: { prefillMs: 0, prefillWallMs: 0, computeMs: 0, commMs: 0, prefillRows: 0, phasesMs: {} } } },
];
const REQUIRED: Record<string, string[]> = { hello: ["role", "v", "type"], submit: ["requestId", "job", "v"], cancel: ["requestId"], ready: ["fingerprint"], heartbeat: ["seq"], result: ["result", "jobId", "rank"] };

/** A valid message made invalid in one way (never into another valid message). */
function mutated(rng: Rng): string {
  const message = JSON.parse(encodeFrame(structuredClone(rng.pick(valid)))) as Record<string, unknown>;
  const type = message.type as string;
  switch (rng.int(6)) {
    case 0: delete message[rng.pick(REQUIRED[type]!)]; break;
    case 1: message.v = rng.pick([0, 2, 99, -1, 1.5]); break;
    case 2: message.type = rng.pick(["welcome", "job", "abort", "launch", "", "HELLO", "dissolve"]); break;
    case 3: message[rng.pick(["extra", "token2", "vv"])] = randomJson(rng); break;
    case 4: {
      const key = rng.pick(Object.keys(message).filter((k) => k !== "v" && k !== "token"));
      // A value of another JSON type than the field takes (dataAddress takes a string or null).
      const value = message[key];
      message[key] = typeof value === "string" ? rng.pick([1, [], {}]) : value === null ? rng.pick([1, true, {}]) : typeof value === "number" ? rng.pick(["x", null, true]) : rng.pick(["x", 1, true]);
      break;
    }
    default:
      if (type === "submit") (message.job as { context: unknown[] }).context[rng.int(7)] = rng.pick([-1, 2 ** 32, 1.5, "7", null]);
      else message.v = "1";
  }
  return JSON.stringify(message);
}

const [hostHello, callerHello, submit, , ready, heartbeat, result] = valid.map((m) => encodeFrame(m));
/** Well-formed messages from the wrong sender, or at the wrong time. */
const WRONG_SENDER = [
  { before: null, frame: submit! }, // before hello
  { before: null, frame: heartbeat! },
  { before: callerHello!, frame: hostHello! }, // a second hello
  { before: hostHello!, frame: callerHello! },
  { before: callerHello!, frame: ready! }, // a host's message from a caller
  { before: callerHello!, frame: result! },
  { before: hostHello!, frame: submit! }, // a caller's message from a host
];

/** One bad frame, and what (if anything) goes before it on the same connection. */
function badFrame(rng: Rng): { before: string | null; frame: string | Buffer } {
  const before = rng.pick([null, null, callerHello!, hostHello!]);
  switch (rng.int(4)) {
    case 0: return { before, frame: Buffer.from(Array.from({ length: rng.int(200) }, () => rng.int(256))) };
    case 1: return { before, frame: JSON.stringify(randomJson(rng)) ?? "undefined" };
    case 2: return { before, frame: mutated(rng) };
    default: return rng.pick(WRONG_SENDER);
  }
}

/** Sends `before` and the bad frame on a fresh connection and waits for the coordinator to close it. */
function refusedConnection(url: string, before: string | null, frame: string | Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => reject(new Error(`not closed: ${String(before)} then ${String(frame).slice(0, 200)}`)), 10_000);
    ws.on("open", () => {
      if (before) ws.send(before);
      ws.send(frame);
    });
    ws.on("error", () => {});
    ws.on("close", (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

describe("fuzz", () => {
  it("refuses 10,000+ bad frames over many connections, one log line each, then serves a real job with nothing leaked", async () => {
    const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
    const rng = random(seed);
    const { coordinator, logs } = await startCoordinator({ hosts: 2, heartbeatMs: 1000 });
    startAgents(coordinator.url, 2);
    await coordinator.waitForGroup(5000);

    const run = async (count: number, concurrency: number) => {
      const codes = new Map<number, number>();
      let sent = 0;
      const worker = async () => {
        while (sent < count) {
          sent++;
          const { before, frame } = badFrame(rng);
          const code = await refusedConnection(coordinator.url, before, frame);
          codes.set(code, (codes.get(code) ?? 0) + 1);
        }
      };
      await Promise.all(Array.from({ length: concurrency }, worker));
      return codes;
    };

    await run(500, 50); // warm up, so the heap baseline includes what stays allocated anyway
    await until(() => coordinator.status().connections === 2, 5000, "connections to close");
    const heapBefore = heapAfterGc();
    const refusalsBefore = logs.filter((l) => l.startsWith("refused")).length;

    const codes = await run(10_000, 64);
    // Oversized frames, which ws refuses itself with 1009.
    for (let i = 0; i < 3; i++) codes.set(await refusedConnection(coordinator.url, null, Buffer.alloc(MAX_FRAME_BYTES + 1 + i, 0x7b)), 1 + (codes.get(1009) ?? 0));

    const total = [...codes.values()].reduce((a, b) => a + b, 0);
    expect(total, `seed ${seed}`).toBe(10_003);
    expect([...codes.keys()].every((code) => code === 1009 || (code >= 4001 && code <= 4005)), `seed ${seed}: ${JSON.stringify([...codes])}`).toBe(true);
    expect(codes.get(4002), `seed ${seed}`).toBeGreaterThan(1000);
    expect(codes.get(1009)).toBe(3);
    // One log line per refused connection, no more.
    expect(logs.filter((l) => l.startsWith("refused")).length - refusalsBefore, `seed ${seed}`).toBe(10_003);

    // Everyone else is still served: the group is intact and runs a job.
    await until(() => coordinator.status().connections === 2, 5000, "connections to close");
    expect(coordinator.status()).toMatchObject({ formed: true, groupId: "g1", connections: 2, queuedJobs: 0 });
    expect(coordinator.status().hosts.map((h) => h.state)).toEqual(["joined", "joined"]);
    await expect(coordinator.submit(job())).resolves.toMatchObject({ tokens: expectedTokens(job()) });
    const heapGrowthBytes = heapAfterGc() - heapBefore;
    expect(heapGrowthBytes, `seed ${seed}: heap grew by ${heapGrowthBytes} bytes`).toBeLessThan(16 * 1024 * 1024);
    // ~15 s alone; four times that when turbo runs the other packages' tests beside it on two cores.
  }, 240_000);
});
