import type { Message, StatusSnapshot } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { sleep } from "./fake-executor.test-helper.js";
import { job, RawPeer, startAgent, startAgents, startCoordinator, TOKEN, until } from "./harness.test-helper.js";
import { summarize, Watchers, WATCHER_BUFFER_LIMIT, type WatcherPeer } from "./watchers.js";

/** A caller that says hello and watch, and keeps every frame as it came (to look for what must not travel). */
async function watcher(url: string, token = TOKEN): Promise<RawPeer & { raw: string[] }> {
  const peer = Object.assign(await RawPeer.open(url), { raw: [] as string[] });
  peer.ws.on("message", (data) => peer.raw.push(String(data)));
  peer.send({ type: "hello", token, role: "caller" });
  peer.send({ type: "watch" });
  return peer;
}

const statuses = (peer: RawPeer): StatusSnapshot[] => peer.received.flatMap((m) => (m.type === "status" && "status" in m ? [m.status] : []));

describe("watch", () => {
  it("sends the status at once, then again as hosts join and the group forms", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 2 });
    const w = await watcher(coordinator.url);
    const first = await w.next("status");
    expect("status" in first && first.status).toMatchObject({ formed: false, hosts: [], worldSize: 2, missing: 2 });
    const agents = startAgents(coordinator.url, 2);
    await until(() => statuses(w).some((s) => s.formed), 5000, "a status showing the formed group");
    const formed = statuses(w).find((s) => s.formed)!;
    expect(formed.hosts.map((h) => [h.rank, h.facts.hostname, h.state])).toEqual([
      [0, "node-0", "joined"],
      [1, "node-1", "joined"],
    ]);
    expect(logs).toContainEqual(expect.stringMatching(/^connection \d+ from .* is watching$/));
    // A host leaves: the group dissolves and the watcher is told.
    const seen = statuses(w).length;
    await agents[1]!.agent.stop();
    await until(() => statuses(w).slice(seen).some((s) => !s.formed && s.hosts.length === 1 && s.missing === 1), 5000, "a status showing the host gone");
  });

  it("sends a job's start (sizes, no token ids), its progress per rank, and its end with each host's timings", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgents(coordinator.url, 2, { tokenDelayMs: 2 });
    await coordinator.waitForGroup(5000);
    const w = await watcher(coordinator.url);
    await w.next("status");
    const spec = job({ context: [101, 202, 303, 404, 505, 606, 707, 808], prefixTokens: 2, query: [909, 1010], anchorTokens: 3, maxTokens: 4, seed: 5 });
    const result = await coordinator.submit(spec);
    const started = await w.next("jobStarted");
    expect(started).toEqual({ type: "jobStarted", v: 1, jobId: result.jobId, groupId: expect.any(String), job: summarize(spec, 2) });
    expect(started.job).toMatchObject({ contextTokens: 8, queryTokens: 2, prefixTokens: 2, strategy: "apb", hosts: 2, anchorTokens: 3, passingTokens: null });
    const done = await w.next("jobDone");
    expect(done).toMatchObject({ jobId: result.jobId, wallMs: result.wallMs, firstTokenMs: result.firstTokenMs });
    expect(done.hosts.map((h) => [h.rank, h.timings.prefillMs])).toEqual([
      [0, 1],
      [1, 1],
    ]);
    const progress = w.received.filter((m): m is Extract<Message, { type: "jobProgress" }> => m.type === "jobProgress");
    expect(new Set(progress.map((p) => `${p.rank}:${p.phase}`))).toEqual(new Set(["0:prefill", "1:prefill", "0:decode", "1:decode"]));
    expect(progress.every((p) => p.jobId === result.jobId)).toBe(true);
    // Neither the prompt's ids nor the generated ones reach a watcher.
    const jobFrames = w.raw.filter((f) => f.includes('"job'));
    expect(jobFrames.length).toBeGreaterThan(2);
    for (const frame of jobFrames) {
      expect(frame).not.toMatch(/"(context|query|tokens|tokenId|firstLogits|stopTokenIds)"/);
      // The query's token 909 as a value of its own, not as digits inside a timing (28.13909 ms).
      expect(frame).not.toMatch(/(?<![\d.])909(?![\d.])/);
    }
    await until(() => statuses(w).at(-1)?.runningJobId === null && statuses(w).some((s) => s.runningJobId === result.jobId), 3000, "statuses showing the job run and end");
  });

  it("sends jobFailed with the error when a job is cancelled, and a late watcher gets the running job at once", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgents(coordinator.url, 2, { hang: true });
    await coordinator.waitForGroup(5000);
    const controller = new AbortController();
    const running = coordinator.submit(job(), { signal: controller.signal }).catch((e: unknown) => e);
    await until(() => coordinator.status().runningJobId !== null);
    const w = await watcher(coordinator.url);
    const started = await w.next("jobStarted");
    expect(started.jobId).toBe(coordinator.status().runningJobId);
    controller.abort();
    const failed = await w.next("jobFailed");
    expect(failed).toMatchObject({ jobId: started.jobId, error: { code: "CANCELLED", message: expect.stringContaining("cancelled") } });
    await expect(running).resolves.toMatchObject({ code: "CANCELLED" });
  });

  it("sends jobFailed naming the host when a host dies mid-job", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const [, second] = startAgents(coordinator.url, 2, { hang: true });
    await coordinator.waitForGroup(5000);
    const w = await watcher(coordinator.url);
    await w.next("status");
    const running = coordinator.submit(job()).catch((e: unknown) => e);
    const started = await w.next("jobStarted");
    void second!.agent.stop();
    const failed = await w.next("jobFailed");
    expect(failed).toMatchObject({ jobId: started.jobId, error: { code: "HOST_LOST", message: expect.stringContaining("host 1 (pid") } });
    await expect(running).resolves.toMatchObject({ code: "HOST_LOST" });
    await until(() => statuses(w).some((s) => !s.formed && s.runningJobId === null), 5000, "a status showing the group dissolved");
  });

  it("needs the token like any caller, and hello first", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    const wrong = await watcher(coordinator.url, "not-the-token");
    expect(await wrong.next("error")).toMatchObject({ error: { code: "UNAUTHORIZED" } });
    expect((await wrong.closed).code).toBeGreaterThanOrEqual(4000);
    expect(wrong.received.some((m) => m.type === "status")).toBe(false);
    const early = await RawPeer.open(coordinator.url);
    early.send({ type: "watch" });
    expect(await early.next("error")).toMatchObject({ error: { code: "NOT_ALLOWED", message: "send hello first (got watch)" } });
    const host = await RawPeer.open(coordinator.url);
    host.helloAsHost();
    await host.next("welcome");
    host.send({ type: "watch" });
    expect(await host.next("error")).toMatchObject({ error: { code: "NOT_ALLOWED", message: "a host may not send watch (got watch)" } });
  });

  it("sends at most about 4 statuses a second however fast the group changes", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    startAgent(coordinator.url, { tokenDelayMs: 0 });
    await coordinator.waitForGroup(5000);
    const w = await watcher(coordinator.url);
    await w.next("status");
    const t0 = Date.now();
    // Many short jobs back to back: each queues, starts and ends (three changes apiece).
    for (let i = 0; i < 40; i++) await coordinator.submit(job({ maxTokens: 1, seed: i }));
    await sleep(300);
    const elapsed = (Date.now() - t0) / 1000;
    const count = statuses(w).length;
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThanOrEqual(Math.ceil(elapsed * 4) + 1);
    expect(w.received.filter((m) => m.type === "jobDone")).toHaveLength(40);
  });

  it("a closed or stalled watcher never holds up a job", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgents(coordinator.url, 2, { tokenDelayMs: 1 });
    await coordinator.waitForGroup(5000);
    const stalled = await watcher(coordinator.url);
    await stalled.next("status");
    (stalled.ws as WebSocket & { _socket: { pause(): void } })._socket.pause();
    const closed = await watcher(coordinator.url);
    await closed.next("status");
    const spec = job({ maxTokens: 50 });
    const result = coordinator.submit(spec);
    closed.ws.terminate();
    await expect(result).resolves.toMatchObject({ tokens: expect.any(Array) });
    await expect(coordinator.submit(job({ seed: 2 }))).resolves.toMatchObject({ jobId: expect.any(String) });
  });
});

describe("Watchers", () => {
  it("drops frames for a watcher over its buffer limit, and sends it the state afresh once it drains", () => {
    const status: StatusSnapshot = { formed: true, groupId: "g1", worldSize: 1, hosts: [], missing: 0, queuedJobs: 0, runningJobId: "3", connections: 1 };
    const logs: string[] = [];
    const summary = summarize(job(), 1);
    const watchers = new Watchers({ status: () => status, running: () => ({ jobId: "3", groupId: "g1", summary }) }, (line) => logs.push(line));
    const sent: string[] = [];
    const peer: WatcherPeer = { open: true, label: "connection 9", socket: { bufferedAmount: 0 }, sendFrame: (frame: string) => sent.push(JSON.parse(frame).type) };
    watchers.add(peer);
    expect(sent).toEqual(["status", "jobStarted"]);
    peer.socket.bufferedAmount = WATCHER_BUFFER_LIMIT + 1;
    watchers.jobProgress("3", { rank: 0, phase: "prefill", done: 1, total: 2 });
    watchers.jobProgress("3", { rank: 0, phase: "prefill", done: 2, total: 2 });
    expect(sent).toHaveLength(2);
    expect(logs).toEqual(["connection 9 is watching", "connection 9 is watching too slowly: its updates are dropped until it catches up"]);
    peer.socket.bufferedAmount = 0;
    watchers.jobProgress("3", { rank: 0, phase: "decode", done: 1, total: 5 });
    expect(sent).toEqual(["status", "jobStarted", "status", "jobStarted", "jobProgress"]);
    const closedPeer: WatcherPeer = { ...peer, open: false, sendFrame: () => { throw new Error("must not send to a closed watcher"); } };
    watchers.add(closedPeer);
    watchers.remove(closedPeer);
    watchers.close();
  });
});
