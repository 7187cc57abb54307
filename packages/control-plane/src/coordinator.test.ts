import { decodeLogits } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { expectedTokens, sleep } from "./fake-executor.test-helper.js";
import { job, RawHost, startAgent, startAgents, startCoordinator, until } from "./harness.test-helper.js";
import { ControlPlaneError } from "./index.js";

describe("group formation", () => {
  it("forms a group of N agents: rank 0's bootstrap, then rendezvous with every rank's data address in rank order", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 3 });
    const agents = [0, 1, 2].map((i) => startAgent(coordinator.url, { hostname: `node-${i}`, dataAddress: `10.0.0.${i}:29500` }, { rankHint: i }));
    await expect(coordinator.waitForGroup(5000)).resolves.toBeUndefined();
    const status = coordinator.status();
    expect(status).toMatchObject({ formed: true, worldSize: 3, missing: 0, runningJobId: null });
    expect(status.hosts.map((h) => [h.rank, h.facts.hostname, h.state])).toEqual([
      [0, "node-0", "joined"],
      [1, "node-1", "joined"],
      [2, "node-2", "joined"],
    ]);
    expect(agents[0]!.executor.calls).toEqual(["load", "bootstrap 3", `join ${status.groupId} 0/3`]);
    expect(agents[2]!.executor.calls).toEqual(["load", `join ${status.groupId} 2/3`]);
    expect(agents[1]!.executor.group).toEqual({ groupId: status.groupId, rank: 1, worldSize: 3, addresses: ["10.0.0.0:29500", "10.0.0.1:29500", "10.0.0.2:29500"], bootstrap: "unique-id-3" });
    expect(agents.map((a) => a.agent.rank)).toEqual([0, 1, 2]);
    expect(logs).toContainEqual(expect.stringMatching(/^group g1 formed: host 0 \(pid \d+ on node-0\), host 1 .*, host 2 /));
  });

  it("honors a rank hint when it is in range and free, and gives the lowest free rank otherwise", async () => {
    const { coordinator } = await startCoordinator({ hosts: 3 });
    const a = startAgent(coordinator.url, { hostname: "a" }, { rankHint: 2 });
    await until(() => coordinator.status().hosts.length === 1);
    const b = startAgent(coordinator.url, { hostname: "b" }, { rankHint: 2 }); // taken: lowest free
    await until(() => coordinator.status().hosts.length === 2);
    const c = startAgent(coordinator.url, { hostname: "c" }, { rankHint: 7 }); // out of range: lowest free
    await coordinator.waitForGroup(5000);
    expect([a, b, c].map((s) => s.agent.rank)).toEqual([2, 0, 1]);
  });

  it("keeps hosts beyond N as standby, and gives one a rank when a member leaves", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const [a, b] = startAgents(coordinator.url, 2);
    await coordinator.waitForGroup(5000);
    const extra = startAgent(coordinator.url, { hostname: "spare" });
    await until(() => coordinator.status().hosts.some((h) => h.state === "standby"));
    expect(coordinator.status().hosts.find((h) => h.facts.hostname === "spare")).toMatchObject({ rank: null, state: "standby" });
    await a!.agent.stop();
    await until(() => coordinator.status().formed && extra.agent.rank !== null, 5000, "the group to re-form with the spare");
    expect(extra.agent.rank).toBe(0);
    expect(b!.agent.rank).toBe(1);
    expect(b!.executor.calls).toContain("leave");
  });

  it("reports a host that never joins as GROUP_TIMEOUT naming how many joined and which rank is missing", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgent(coordinator.url);
    const error = await coordinator.waitForGroup(300).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ControlPlaneError);
    expect(error).toMatchObject({ code: "GROUP_TIMEOUT", message: "only 1 of 2 hosts joined within 0.3 s (rank 1: no host connected)" });
    await expect(coordinator.submit(job(), { groupTimeoutMs: 300 })).rejects.toMatchObject({ code: "GROUP_TIMEOUT", message: expect.stringContaining("only 1 of 2 hosts joined") });
  });

  it("says which host is still loading when that is what holds the group up", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgent(coordinator.url, { hostname: "fast" });
    startAgent(coordinator.url, { hostname: "slow", loadDelayMs: 600 });
    await until(() => coordinator.status().hosts.length === 2);
    await expect(coordinator.waitForGroup(200)).rejects.toMatchObject({ message: expect.stringMatching(/^only 1 of 2 hosts joined within 0.2 s \(host 1 \(pid \d+ on slow\): still loading the model\)$/) });
  });
});

describe("jobs", () => {
  it("streams the last rank's tokens in order and returns every host's report in rank order", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 3 });
    startAgents(coordinator.url, 3, { tokenDelayMs: 5 });
    await coordinator.waitForGroup(5000);
    const spec = job({ maxTokens: 12, seed: 3 });
    const tokens: number[] = [];
    const phases = new Set<string>();
    const result = await coordinator.submit(spec, { onToken: (id) => tokens.push(id), onProgress: (p) => phases.add(`${p.rank}:${p.phase}`) });
    expect(tokens).toEqual(expectedTokens(spec));
    expect(result.tokens).toEqual(expectedTokens(spec));
    expect(result.hosts.map((h) => h.rank)).toEqual([0, 1, 2]);
    expect(result.hosts.map((h) => h.firstLogits === null)).toEqual([true, true, false]);
    expect(decodeLogits(result.firstLogits!)).toEqual(new Float32Array([0.5, -1, tokens[0]!]));
    expect(result.jobId).toBe("1");
    expect(result.firstTokenMs).toBeGreaterThan(0);
    expect(result.wallMs).toBeGreaterThanOrEqual(result.firstTokenMs!);
    expect(phases).toContain("0:prefill");
    expect(phases).toContain("2:decode");
    expect(logs).toContainEqual("job 1 started on group g1: apb, 7 context + 4 query tokens, up to 12 new");
    expect(logs).toContainEqual(expect.stringMatching(/^job 1 done in \d+ ms: 12 tokens$/));
    expect(logs).toContainEqual(expect.stringMatching(/^host 2 \(pid \d+ on node-2\) joined as h3, rank 2; fake, 0 GPUs; loading the model$/));
  });

  it("gives firstTokenMs null for a job that generates nothing", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    startAgents(coordinator.url, 1);
    const result = await coordinator.submit(job({ maxTokens: 0 }));
    expect(result).toMatchObject({ tokens: [], firstTokenMs: null });
  });

  it("queues a second job behind the first (one job at a time on the whole group)", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const agents = startAgents(coordinator.url, 2, { tokenDelayMs: 10 });
    await coordinator.waitForGroup(5000);
    const order: string[] = [];
    const first = coordinator.submit(job({ seed: 1 }), { onToken: () => order.push("first") });
    const second = coordinator.submit(job({ seed: 2 }), { onToken: () => order.push("second") });
    expect(coordinator.status()).toMatchObject({ runningJobId: "1", queuedJobs: 1 });
    const [a, b] = await Promise.all([first, second]);
    expect(a.tokens).toEqual(expectedTokens(job({ seed: 1 })));
    expect(b.tokens).toEqual(expectedTokens(job({ seed: 2 })));
    expect(order).toEqual([...Array(5).fill("first"), ...Array(5).fill("second")]);
    expect(agents[0]!.executor.calls.filter((c) => c.startsWith("run"))).toEqual(["run 1", "run 2"]);
  });

  it("waits for the group: a job submitted before the hosts arrive runs once they do", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const pending = coordinator.submit(job());
    startAgents(coordinator.url, 2);
    await expect(pending).resolves.toMatchObject({ tokens: expectedTokens(job()) });
  });

  it("refuses an invalid job before queueing it, naming the field", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    await expect(coordinator.submit(job({ query: [1, -5] }))).rejects.toMatchObject({ code: "INVALID_JOB", path: "job.query[1]" });
  });

  it("names the host that died, not the one that noticed: a COMM failure followed by a member's death is HOST_LOST", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    // Rank 0 finds its data plane broken (as a survivor of a killed peer does) before rank 1's socket closes.
    startAgent(coordinator.url, { hostname: "survivor", tokenDelayMs: 20, failWith: { code: "COMM", message: "host 1 closed its connection", path: "" } }, { rankHint: 0 });
    const dying = startAgent(coordinator.url, { hostname: "dying", tokenDelayMs: 20 }, { rankHint: 1 });
    await coordinator.waitForGroup(5000);
    const failed = coordinator.submit(job({ maxTokens: 50 })).catch((e: unknown) => e);
    await until(() => coordinator.status().runningJobId !== null, 2000, "the job to start");
    await sleep(100); // the survivor's COMM is in by now
    await dying.agent.stop();
    expect(await failed).toMatchObject({ code: "HOST_LOST", message: expect.stringMatching(/^host 1 \(pid \d+ on dying\) left/) });
  });

  it("keeps a host's error code, names the host in the message, aborts the others and re-forms before the next job", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const good = startAgent(coordinator.url, { hostname: "good", tokenDelayMs: 20 }, { rankHint: 0 });
    const bad = startAgent(coordinator.url, { hostname: "bad", tokenDelayMs: 20, failWith: { code: "COMM", message: "peer reset", path: "" } }, { rankHint: 1 });
    await coordinator.waitForGroup(5000);
    const error = await coordinator.submit(job({ maxTokens: 50 })).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: "COMM", message: expect.stringMatching(/^host 1 \(pid \d+ on bad\): peer reset$/) });
    await until(() => good.executor.calls.some((c) => c.startsWith("abort")), 2000, "the abort");
    expect(good.executor.calls.find((c) => c.startsWith("abort"))).toMatch(/^abort host 1 \(pid \d+ on bad\) failed job 1: COMM: peer reset$/);
    await until(() => coordinator.status().formed && coordinator.status().groupId === "g2", 5000, "the group to re-form");
    expect(good.executor.calls).toContain("leave");
    expect(bad.executor.calls).toContain("leave");
  });

  it("cancels a running job through the caller's AbortSignal: every host aborts, the job rejects CANCELLED, the next one runs", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const agents = startAgents(coordinator.url, 2, { tokenDelayMs: 20 });
    await coordinator.waitForGroup(5000);
    const controller = new AbortController();
    const tokens: number[] = [];
    const running = coordinator.submit(job({ maxTokens: 1000 }), { signal: controller.signal, onToken: (id) => tokens.push(id) });
    await until(() => tokens.length >= 2);
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: "CANCELLED", message: "job 1 was cancelled: the caller cancelled it" });
    await until(() => agents.every((a) => a.executor.calls.some((c) => c.startsWith("abort the caller cancelled it"))), 2000, "both aborts");
    await expect(coordinator.submit(job())).resolves.toMatchObject({ jobId: "2" });
  });

  it("cancels a queued job without touching the running one", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    startAgents(coordinator.url, 1, { tokenDelayMs: 10 });
    await coordinator.waitForGroup(5000);
    const first = coordinator.submit(job());
    const controller = new AbortController();
    const second = coordinator.submit(job(), { signal: controller.signal });
    controller.abort();
    await expect(second).rejects.toMatchObject({ code: "CANCELLED" });
    await expect(first).resolves.toMatchObject({ jobId: "1" });
  });
});

describe("status and close", () => {
  it("counts connections and shows each host's state and how long ago it was heard from", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const host = await RawHost.join(coordinator.url, { hostname: "raw" });
    await until(() => coordinator.status().hosts[0]?.state === "ready");
    const status = coordinator.status();
    expect(status).toMatchObject({ formed: false, groupId: null, missing: 1, connections: 1, queuedJobs: 0 });
    expect(status.hosts[0]).toMatchObject({ hostId: "h1", rank: 0, facts: { hostname: "raw" }, state: "ready" });
    expect(status.hosts[0]!.lastSeenMs).toBeLessThan(1000);
    host.ws.close();
    await until(() => coordinator.status().connections === 0);
  });

  it("close() dissolves the group, fails queued jobs with SHUTDOWN and resolves once the server is closed", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const agents = startAgents(coordinator.url, 2, { hang: true });
    await coordinator.waitForGroup(5000);
    const running = coordinator.submit(job()).catch((e: unknown) => e);
    const queued = coordinator.submit(job()).catch((e: unknown) => e);
    await until(() => agents.every((a) => a.executor.calls.includes("run 1")));
    await coordinator.close();
    expect(await running).toMatchObject({ code: "SHUTDOWN" });
    expect(await queued).toMatchObject({ code: "SHUTDOWN" });
    await expect(coordinator.submit(job())).rejects.toMatchObject({ code: "SHUTDOWN" });
    await until(() => agents.every((a) => a.executor.calls.includes("leave")), 2000, "the agents to leave the group");
  });
});
