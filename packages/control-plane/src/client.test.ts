import { describe, expect, it } from "vitest";
import { expectedTokens } from "./fake-executor.test-helper.js";
import { job, startAgents, startCoordinator, TOKEN, until } from "./harness.test-helper.js";
import { ControlPlaneError, CoordinatorClient } from "./index.js";

async function connect(url: string) {
  const client = await CoordinatorClient.connect(url, TOKEN, { timeoutMs: 2000 });
  return client;
}

describe("CoordinatorClient", () => {
  it("submits over the network: tokens in order, progress, and the same result as an in-process submit", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgents(coordinator.url, 2, { tokenDelayMs: 2 });
    const client = await connect(coordinator.url);
    const spec = job({ maxTokens: 8, seed: 5 });
    const tokens: number[] = [];
    const ranks = new Set<number>();
    const result = await client.submit(spec, { onToken: (id) => tokens.push(id), onProgress: (p) => ranks.add(p.rank), groupTimeoutMs: 5000 });
    expect(tokens).toEqual(expectedTokens(spec));
    expect(result).toMatchObject({ jobId: "1", tokens: expectedTokens(spec) });
    expect(result.hosts.map((h) => h.rank)).toEqual([0, 1]);
    expect([...ranks].sort()).toEqual([0, 1]);
    await expect(client.status()).resolves.toMatchObject({ formed: true, runningJobId: null, connections: 3 });
    await client.close();
  });

  it("runs two callers' jobs one after the other", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    startAgents(coordinator.url, 1, { tokenDelayMs: 5 });
    const [a, b] = await Promise.all([connect(coordinator.url), connect(coordinator.url)]);
    const results = await Promise.all([a.submit(job({ seed: 1 })), b.submit(job({ seed: 2 }))]);
    expect(results.map((r) => r.jobId).sort()).toEqual(["1", "2"]);
    expect(results[1].tokens).toEqual(expectedTokens(job({ seed: 2 })));
  });

  it("cancels through an AbortSignal: the coordinator aborts the hosts and the submit rejects CANCELLED", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const agents = startAgents(coordinator.url, 2, { hang: true });
    const client = await connect(coordinator.url);
    const controller = new AbortController();
    const running = client.submit(job(), { signal: controller.signal });
    await until(() => agents.every((a) => a.executor.calls.includes("run 1")), 5000, "the job to start");
    controller.abort();
    await expect(running).rejects.toMatchObject({ code: "CANCELLED" });
    await until(() => agents.every((a) => a.executor.calls.some((c) => c.startsWith("abort"))), 2000, "the aborts");
  });

  it("a caller whose socket closes cancels its job", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 1 });
    const [agent] = startAgents(coordinator.url, 1, { hang: true });
    const client = await connect(coordinator.url);
    const running = client.submit(job()).catch((e: unknown) => e);
    await until(() => agent!.executor.calls.includes("run 1"), 5000, "the job to start");
    await client.close();
    expect(await running).toMatchObject({ code: "CANCELLED", message: "the client was closed" });
    await until(() => agent!.executor.calls.some((c) => c === "abort the caller's connection closed"), 2000, "the abort");
    expect(logs).toContainEqual("job 1 aborted: the caller's connection closed");
  });

  it("fails to connect with UNAUTHORIZED for a wrong token and CONNECT where nothing listens", async () => {
    const { coordinator } = await startCoordinator();
    const wrong = await CoordinatorClient.connect(coordinator.url, "nope").catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(ControlPlaneError);
    expect(wrong).toMatchObject({ code: "UNAUTHORIZED", path: "token" });
    await expect(CoordinatorClient.connect("ws://127.0.0.1:1", TOKEN, { timeoutMs: 1000 })).rejects.toMatchObject({ code: "CONNECT" });
  });

  it("checks the job before sending it, and passes the coordinator's refusals on", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1, groupTimeoutMs: 200 });
    const client = await connect(coordinator.url);
    await expect(client.submit(job({ topP: 2 }))).rejects.toMatchObject({ code: "INVALID_JOB", path: "job.topP" });
    await expect(client.submit(job())).rejects.toMatchObject({ code: "GROUP_TIMEOUT", message: "only 0 of 1 hosts joined within 0.2 s (rank 0: no host connected)" });
  });

  it("fails pending work with SHUTDOWN when the coordinator closes", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    const client = await connect(coordinator.url);
    const pending = client.submit(job()).catch((e: unknown) => e);
    await until(() => coordinator.status().queuedJobs === 1);
    await coordinator.close();
    expect(await pending).toMatchObject({ code: "SHUTDOWN" });
    await expect(client.submit(job())).rejects.toMatchObject({ code: "SHUTDOWN" });
  });
});
