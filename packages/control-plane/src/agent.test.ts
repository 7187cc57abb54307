import { describe, expect, it } from "vitest";
import { expectedTokens } from "./fake-executor.test-helper.js";
import { job, startAgent, startAgents, startCoordinator, until } from "./harness.test-helper.js";

describe("HostAgent", () => {
  it("drives the executor in order: load, bootstrap (rank 0), join, run, and leave on dissolve", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const [zero, one] = startAgents(coordinator.url, 2);
    await coordinator.waitForGroup(5000);
    await coordinator.submit(job());
    expect(zero!.executor.calls).toEqual(["load", "bootstrap 2", "join g1 0/2", "run 1"]);
    expect(one!.executor.calls).toEqual(["load", "join g1 1/2", "run 1"]);
    await one!.agent.stop();
    await until(() => zero!.executor.calls.includes("leave"), 2000, "rank 0 to leave the dissolved group");
    expect(one!.executor.calls.at(-1)).toBe("leave");
  });

  it("stops for good when the model does not load, reporting the executor's error", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 1 });
    const { fatal, agent } = startAgent(coordinator.url, { hostname: "broken", loadFails: { code: "MODEL_FILE", message: "config.json is missing", path: "config.json" } });
    expect(await fatal).toMatchObject({ code: "MODEL_FILE", message: "the model did not load: config.json is missing", path: "config.json" });
    await expect(agent.finished).resolves.toMatchObject({ code: "MODEL_FILE" });
    await until(() => logs.some((l) => /^host 0 \(pid \d+ on broken\) reported MODEL_FILE: config.json is missing$/.test(l)), 2000, "the coordinator's log line");
  });

  it("a data plane that fails to connect: the group dissolves, waits, and forms again", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 2 });
    startAgent(coordinator.url, { hostname: "a" }, { rankHint: 0 });
    const flaky = startAgent(coordinator.url, { hostname: "b", joinFailures: 2 }, { rankHint: 1 });
    await coordinator.waitForGroup(5000);
    expect(coordinator.status().groupId).toBe("g3");
    expect(flaky.executor.calls.filter((c) => c.startsWith("join"))).toEqual(["join g1 1/2", "join g2 1/2", "join g3 1/2"]);
    expect(logs).toContainEqual(expect.stringMatching(/^group g1 dissolved: it failed to form: host 1 \(pid \d+ on b\): COMM: rank 1 could not reach rank 0; retrying in 0.25 s$/));
    expect(logs).toContainEqual(expect.stringContaining("group g2 dissolved: it failed to form: host 1 (pid"));
    expect(logs).toContainEqual(expect.stringContaining("retrying in 0.5 s"));
    await expect(coordinator.submit(job())).resolves.toMatchObject({ tokens: expectedTokens(job()) });
  });

  it("onDisconnect fires when a welcomed connection drops; stopping there ends the agent instead of reconnecting", async () => {
    const { coordinator } = await startCoordinator({ hosts: 1 });
    let stopped: Promise<void> | null = null;
    const { agent } = startAgent(coordinator.url, {}, { onDisconnect: () => (stopped = agent.stop()) });
    await coordinator.waitForGroup(5000);
    await coordinator.close();
    await expect(agent.finished).resolves.toBeNull();
    expect(stopped).not.toBeNull();
    expect(agent.connected).toBe(false);
  });

  it("stop() aborts the running job and leaves the group; the coordinator fails the job with HOST_LOST", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    const [a, b] = startAgents(coordinator.url, 2, { hang: true });
    await coordinator.waitForGroup(5000);
    const failed = coordinator.submit(job()).catch((e: unknown) => e);
    await until(() => b!.executor.calls.includes("run 1"));
    await b!.agent.stop();
    expect(b!.executor.calls.slice(-2)).toEqual(["abort lost the coordinator (close 1000)", "leave"]);
    expect(await failed).toMatchObject({ code: "HOST_LOST", message: expect.stringMatching(/^host 1 \(pid \d+ on node-1\) left: it closed its connection during job 1$/) });
    await until(() => a!.executor.calls.includes("leave"), 2000, "the other host to leave");
    await expect(b!.agent.finished).resolves.toBeNull();
  });
});
