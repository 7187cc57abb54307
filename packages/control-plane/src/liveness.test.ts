import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { CLOSE_CODES } from "@apb/protocol";
import { afterEach, describe, expect, it } from "vitest";
import { expectedTokens } from "./fake-executor.test-helper.js";
import { job, RawHost, startAgent, startCoordinator, TOKEN, until } from "./harness.test-helper.js";

const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill("SIGKILL");
});

/** A HostAgent in a child process (the built dist/), with the lines it prints. */
function spawnAgent(url: string, rankHint: number) {
  const script = fileURLToPath(new URL("./fixtures/slow-agent.mjs", import.meta.url));
  const child = spawn(process.execPath, [script, url, TOKEN, String(rankHint)], { stdio: ["ignore", "pipe", "inherit"] });
  children.push(child);
  const lines: string[] = [];
  createInterface({ input: child.stdout! }).on("line", (line) => lines.push(line));
  return { child, lines };
}

describe("liveness", () => {
  it("a host killed with SIGKILL mid-job: the caller gets HOST_LOST naming its rank and pid, survivors abort, and a replacement runs the next job", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 3 });
    const survivors = [0, 1].map((rank) => startAgent(coordinator.url, { hostname: `node-${rank}`, hang: true }, { rankHint: rank }));
    const { child, lines } = spawnAgent(coordinator.url, 2);
    await coordinator.waitForGroup(10_000);
    const started = Date.now();
    const failed = coordinator.submit(job()).catch((e: unknown) => e);
    await until(() => lines.includes("run 1"), 5000, "the child to start the job");
    child.kill("SIGKILL");
    const error = await failed;
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(error).toMatchObject({ code: "HOST_LOST", message: `host 2 (pid ${child.pid} on killable) died: its socket closed during job 1` });
    for (const survivor of survivors) {
      await until(() => survivor.executor.calls.some((c) => c.startsWith("abort host 2")), 2000, "the survivors' abort");
      await until(() => survivor.executor.calls.includes("leave"), 2000, "the survivors to leave the group");
    }
    expect(logs).toContainEqual(`host 2 (pid ${child.pid} on killable) died: its socket closed`);

    // The survivors now run jobs to completion; a new host takes rank 2 and the group re-forms.
    for (const survivor of survivors) survivor.executor.options.hang = false;
    const replacement = startAgent(coordinator.url, { hostname: "replacement" }, { rankHint: 2 });
    const result = await coordinator.submit(job());
    expect(result).toMatchObject({ jobId: "2", tokens: expectedTokens(job()) });
    expect(replacement.agent.rank).toBe(2);
    expect(coordinator.status().groupId).toBe("g2");
  });

  it("a host that stops answering heartbeats is dead after 3 misses, and its job fails with HOST_LOST saying so", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 2, heartbeatMs: 100, missedHeartbeats: 3 });
    const agent = startAgent(coordinator.url, { hostname: "alive", hang: true }, { rankHint: 0 });
    const mute = await RawHost.join(coordinator.url, { rankHint: 1, hostname: "mute", pid: 4242 });
    await coordinator.waitForGroup(5000);
    const failed = coordinator.submit(job()).catch((e: unknown) => e);
    await until(() => mute.jobs.includes("1"), 2000, "the job to reach the raw host");
    const stoppedAt = Date.now();
    mute.answerHeartbeats = false;
    const error = await failed;
    const deadAfterMs = Date.now() - stoppedAt;
    expect(error).toMatchObject({ code: "HOST_LOST", message: "host 1 (pid 4242 on mute) died: it missed 3 heartbeats in a row (100 ms apart) during job 1" });
    expect(deadAfterMs).toBeGreaterThanOrEqual(200);
    expect(deadAfterMs).toBeLessThan(5000);
    expect((await mute.closed).code).toBe(CLOSE_CODES.HEARTBEAT_TIMEOUT);
    await until(() => agent.executor.calls.some((c) => c.startsWith("abort host 1 (pid 4242 on mute) died")), 2000, "the abort");
    expect(logs.filter((l) => l.includes("missed 3 heartbeats"))).toHaveLength(2); // the host's death, the job's abort
  });

  it("a host that goes quiet while idle is dropped the same way and the group dissolves", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2, heartbeatMs: 100 });
    const agent = startAgent(coordinator.url, {}, { rankHint: 0 });
    const mute = await RawHost.join(coordinator.url, { rankHint: 1 });
    await coordinator.waitForGroup(5000);
    mute.answerHeartbeats = false;
    await mute.closed;
    await until(() => !coordinator.status().formed && agent.executor.calls.includes("leave"), 2000, "the group to dissolve");
    expect(coordinator.status().hosts).toHaveLength(1);
  });

  it("an agent whose coordinator restarts reconnects by itself and rejoins", async () => {
    const first = await startCoordinator({ hosts: 1 });
    const port = Number(new URL(first.coordinator.url).port);
    const disconnects: number[] = [];
    const { agent, executor } = startAgent(first.coordinator.url, {}, { onDisconnect: ({ code }) => disconnects.push(code) });
    await first.coordinator.waitForGroup(5000);
    await first.coordinator.close();
    await until(() => !agent.connected, 2000, "the agent to notice");
    const second = await startCoordinator({ hosts: 1, port });
    await second.coordinator.waitForGroup(5000);
    expect(executor.calls.filter((c) => c === "load")).toHaveLength(2); // load again (an executor caches it)
    expect(disconnects).toEqual([4006]); // once: the failed attempts while the coordinator was down do not count
    expect(executor.calls).toContain("leave");
    await expect(second.coordinator.submit(job())).resolves.toMatchObject({ tokens: expectedTokens(job()) });
  });
});
