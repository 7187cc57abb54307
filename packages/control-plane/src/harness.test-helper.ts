// Test support: coordinators, agents and raw sockets on loopback (random ports), closed after each test.
import { encodeFrame, type JobSpec, type Message, type Unversioned } from "@apb/protocol";
import { afterEach } from "vitest";
import { WebSocket } from "ws";
import { FakeExecutor, type FakeOptions } from "./fake-executor.test-helper.js";
import { Coordinator, HostAgent, type CoordinatorOptions, type HostAgentOptions } from "./index.js";

export const TOKEN = "test-token";

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  const pending = cleanups.splice(0).reverse();
  for (const cleanup of pending) await cleanup();
});

export interface Harness {
  coordinator: Coordinator;
  logs: string[];
}

export async function startCoordinator(options: Partial<CoordinatorOptions> = {}): Promise<Harness> {
  const logs: string[] = [];
  const coordinator = await Coordinator.start({ hosts: 2, token: TOKEN, model: { path: "/models/fake", fingerprint: null }, heartbeatMs: 250, logger: (line) => logs.push(line), ...options });
  cleanups.push(() => coordinator.close());
  return { coordinator, logs };
}

export interface Started {
  agent: HostAgent;
  executor: FakeExecutor;
  logs: string[];
  fatal: Promise<Error>;
}

export function startAgent(url: string, fake: FakeOptions = {}, options: Partial<HostAgentOptions> = {}): Started {
  const executor = new FakeExecutor(fake);
  const logs: string[] = [];
  let onFatal!: (error: Error) => void;
  const fatal = new Promise<Error>((resolve) => (onFatal = resolve));
  const agent = HostAgent.start({ url, token: TOKEN, executor, logger: (line) => logs.push(line), reconnect: { initialMs: 50, maxMs: 200 }, onFatal, ...options });
  cleanups.push(() => agent.stop());
  return { agent, executor, logs, fatal };
}

export function startAgents(url: string, count: number, fake: FakeOptions = {}): Started[] {
  return Array.from({ length: count }, (_, i) => startAgent(url, { hostname: `node-${i}`, ...fake }));
}

export function job(overrides: Partial<JobSpec> = {}): JobSpec {
  return { context: [1, 9906, 1917, 374, 2294, 13, 578], prefixTokens: 1, query: [3923, 374, 433, 30], strategy: "apb", maxTokens: 5, stopTokenIds: [], temperature: 0, topP: 1, seed: 1, ...overrides };
}

/** Polls until `check` is true (for states reached over several messages). */
export async function until(check: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A WebSocket speaking to the coordinator frame by frame: for refusals and hand-driven hosts. */
export class RawPeer {
  readonly ws: WebSocket;
  readonly received: Message[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  private waiters: (() => void)[] = [];

  constructor(url: string) {
    this.ws = new WebSocket(url, { perMessageDeflate: false });
    this.ws.on("message", (data) => {
      this.received.push(JSON.parse(String(data)) as Message);
      for (const wake of this.waiters.splice(0)) wake();
    });
    this.ws.on("error", () => {});
    this.closed = new Promise((resolve) => this.ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })));
    cleanups.push(() => this.ws.terminate());
  }

  static async open(url: string): Promise<RawPeer> {
    const peer = new RawPeer(url);
    await new Promise<void>((resolve, reject) => {
      peer.ws.once("open", () => resolve());
      peer.ws.once("error", reject);
    });
    return peer;
  }

  send(message: Unversioned<Message> | string | Buffer): void {
    this.ws.send(typeof message === "string" || Buffer.isBuffer(message) ? message : encodeFrame(message));
  }

  /** The next message of `type` (waiting for it), skipping heartbeats unless asked for. */
  async next<T extends Message["type"]>(type: T, timeoutMs = 5000): Promise<Extract<Message, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const at = this.received.findIndex((m) => m.type === type);
      if (at !== -1) return this.received.splice(at, 1)[0] as Extract<Message, { type: T }>;
      if (Date.now() > deadline) throw new Error(`no ${type} within ${timeoutMs} ms; got ${this.received.map((m) => m.type).join(", ")}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 50);
      });
    }
  }

  helloAsHost(extra: { rankHint?: number; hostname?: string; pid?: number; token?: string } = {}): void {
    this.send({
      type: "hello",
      token: extra.token ?? TOKEN,
      role: "host",
      rankHint: extra.rankHint,
      facts: { backend: "raw", hostname: extra.hostname ?? "raw-host", pid: extra.pid ?? 1, gpus: [], freeMemoryBytes: null },
      dataAddress: null,
    });
  }
}

/**
 * A host driven by hand: it answers the coordinator as an agent would (ready, bootstrap, joined,
 * heartbeats) but never runs a job, and can stop answering heartbeats while its socket stays open.
 */
export class RawHost extends RawPeer {
  answerHeartbeats = true;
  jobs: string[] = [];

  static async join(url: string, extra: { rankHint?: number; hostname?: string; pid?: number; fingerprint?: string } = {}): Promise<RawHost> {
    const host = new RawHost(url);
    await new Promise<void>((resolve, reject) => {
      host.ws.once("open", () => resolve());
      host.ws.once("error", reject);
    });
    host.ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as Message;
      if (m.type === "heartbeat" && host.answerHeartbeats) host.send({ type: "heartbeat", seq: m.seq });
      if (m.type === "welcome") host.send({ type: "ready", fingerprint: extra.fingerprint ?? "fake-model-1" });
      if (m.type === "bootstrapRequest") host.send({ type: "bootstrap", groupId: m.groupId, bootstrap: "raw" });
      if (m.type === "rendezvous") host.send({ type: "joined", groupId: m.groupId });
      if (m.type === "job") host.jobs.push(m.jobId);
    });
    host.helloAsHost(extra);
    return host;
  }
}
