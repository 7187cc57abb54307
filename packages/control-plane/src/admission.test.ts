import { CLOSE_CODES, MAX_FRAME_BYTES } from "@apb/protocol";
import { describe, expect, it } from "vitest";
import { job, RawHost, RawPeer, startAgent, startAgents, startCoordinator, TOKEN, until } from "./harness.test-helper.js";

/** Each refusal: the peer gets an `error` frame and the close code, the coordinator logs one line and serves on. */
async function expectRefused(peer: RawPeer, code: string, closeCode: number, path?: string) {
  const closed = await peer.closed;
  expect(closed.code).toBe(closeCode);
  if (closeCode !== CLOSE_CODES.TOO_BIG) {
    const error = peer.received.find((m) => m.type === "error");
    expect(error).toMatchObject({ type: "error", error: { code, ...(path === undefined ? {} : { path }) } });
  }
}

describe("admission", () => {
  it("refuses a wrong token with 4001 and one log line, in a hello as host or caller", async () => {
    const { coordinator, logs } = await startCoordinator();
    for (const role of ["host", "caller"] as const) {
      const peer = await RawPeer.open(coordinator.url);
      if (role === "host") peer.helloAsHost({ token: "guess" });
      else peer.send({ type: "hello", token: "guess", role });
      await expectRefused(peer, "UNAUTHORIZED", CLOSE_CODES.UNAUTHORIZED, "token");
    }
    expect(logs.filter((l) => l.startsWith("refused"))).toEqual([
      expect.stringMatching(/^refused connection \d+ from 127\.0\.0\.1:\d+: UNAUTHORIZED: hello has the wrong token/),
      expect.stringMatching(/^refused connection \d+ from .*: UNAUTHORIZED/),
    ]);
    expect(coordinator.status().hosts).toEqual([]);
  });

  it("refuses a hello without a token as UNAUTHORIZED too", async () => {
    const { coordinator } = await startCoordinator();
    const peer = await RawPeer.open(coordinator.url);
    peer.send(JSON.stringify({ type: "hello", v: 1, role: "caller" }));
    await expectRefused(peer, "UNAUTHORIZED", 4001, "token");
    expect(peer.received[0]).toMatchObject({ error: { message: "hello has no token: pass the coordinator's token" } });
  });

  it("an agent with the wrong token stops and reports it through onFatal instead of retrying", async () => {
    const { coordinator } = await startCoordinator();
    const { agent, fatal, executor } = startAgent(coordinator.url, {}, { token: "wrong" });
    const error = await fatal;
    expect(error).toMatchObject({ code: "UNAUTHORIZED", message: "the coordinator refused this host: hello has the wrong token: pass the coordinator's token" });
    await expect(agent.finished).resolves.toBe(error);
    expect(executor.calls).toEqual([]);
  });

  it("refuses another protocol version with 4003", async () => {
    const { coordinator, logs } = await startCoordinator();
    const peer = await RawPeer.open(coordinator.url);
    peer.send(JSON.stringify({ type: "hello", v: 2, token: TOKEN, role: "caller" }));
    await expectRefused(peer, "UNSUPPORTED_VERSION", CLOSE_CODES.UNSUPPORTED_VERSION, "v");
    expect(logs).toContainEqual(expect.stringContaining("UNSUPPORTED_VERSION: protocol version 2 is not supported"));
  });

  it("refuses a second hello with 4004 and drops the host", async () => {
    const { coordinator } = await startCoordinator();
    const host = await RawHost.join(coordinator.url);
    await host.next("welcome");
    host.helloAsHost();
    await expectRefused(host, "DUPLICATE_HELLO", CLOSE_CODES.DUPLICATE_HELLO);
    await until(() => coordinator.status().hosts.length === 0);
  });

  it("refuses a submit from a host, and a host's message from a caller, with 4005", async () => {
    const { coordinator } = await startCoordinator();
    const host = await RawHost.join(coordinator.url);
    await host.next("welcome");
    host.send({ type: "submit", requestId: "r1", job: job() });
    await expectRefused(host, "NOT_ALLOWED", CLOSE_CODES.NOT_ALLOWED, "type");

    const caller = await RawPeer.open(coordinator.url);
    caller.send({ type: "hello", token: TOKEN, role: "caller" });
    caller.send({ type: "ready", fingerprint: "x" });
    await expectRefused(caller, "NOT_ALLOWED", CLOSE_CODES.NOT_ALLOWED, "type");
  });

  it("refuses any message before hello with 4005", async () => {
    const { coordinator } = await startCoordinator();
    const peer = await RawPeer.open(coordinator.url);
    peer.send({ type: "heartbeat", seq: 1 });
    await expectRefused(peer, "NOT_ALLOWED", CLOSE_CODES.NOT_ALLOWED);
    expect(peer.received[0]).toMatchObject({ error: { message: "send hello first (got heartbeat)" } });
  });

  it("refuses malformed frames with 4002 and a path naming the field", async () => {
    const { coordinator } = await startCoordinator();
    const notJson = await RawPeer.open(coordinator.url);
    notJson.send("{hello");
    await expectRefused(notJson, "BAD_FRAME", CLOSE_CODES.BAD_FRAME, "");

    const caller = await RawPeer.open(coordinator.url);
    caller.send({ type: "hello", token: TOKEN, role: "caller" });
    caller.send({ type: "submit", requestId: "r1", job: job({ context: [1, 2, 3, -4] }) });
    await expectRefused(caller, "BAD_FRAME", CLOSE_CODES.BAD_FRAME, "job.context[3]");
  });

  it("refuses a frame over MAX_FRAME_BYTES with ws's 1009 before reading it whole", async () => {
    const { coordinator, logs } = await startCoordinator();
    const peer = await RawPeer.open(coordinator.url);
    peer.send(Buffer.alloc(MAX_FRAME_BYTES + 1, 0x20));
    await expectRefused(peer, "FRAME_TOO_LARGE", CLOSE_CODES.TOO_BIG);
    expect(logs.filter((l) => l.startsWith("refused"))).toEqual([expect.stringContaining(`FRAME_TOO_LARGE: a frame is over the limit of ${MAX_FRAME_BYTES} bytes`)]);
  });

  it("closes a connection that sends no hello in time", async () => {
    const { coordinator } = await startCoordinator({ helloTimeoutMs: 100 });
    const peer = await RawPeer.open(coordinator.url);
    await expectRefused(peer, "HELLO_TIMEOUT", CLOSE_CODES.HELLO_TIMEOUT);
  });

  it("refuses a host whose model differs from the coordinator's, naming both fingerprints; its agent stops", async () => {
    const { coordinator, logs } = await startCoordinator({ hosts: 1, model: { path: "/models/llama", fingerprint: "sha256:aaaa" } });
    const { fatal } = startAgent(coordinator.url, { fingerprint: "sha256:bbbb", hostname: "odd" });
    const error = await fatal;
    expect(error).toMatchObject({ code: "MODEL_MISMATCH" });
    expect(error.message).toMatch(/host 0 \(pid \d+ on odd\) loaded a model with fingerprint sha256:bbbb, but the group's is sha256:aaaa \(the coordinator's\)/);
    expect(logs.filter((l) => l.includes("MODEL_MISMATCH"))).toHaveLength(1);
    await until(() => coordinator.status().hosts.length === 0);
  });

  it("takes the first ready host's fingerprint when the coordinator has none", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgent(coordinator.url, { fingerprint: "first", hostname: "a" });
    await until(() => coordinator.status().hosts[0]?.state === "ready");
    const { fatal } = startAgent(coordinator.url, { fingerprint: "second", hostname: "b" });
    expect((await fatal).message).toMatch(/fingerprint second, but the group's is first \(the first ready host's, host 0 \(pid \d+ on a\)\)/);
  });

  it("keeps serving everyone else: a group formed before a flood of refusals still runs jobs", async () => {
    const { coordinator } = await startCoordinator({ hosts: 2 });
    startAgents(coordinator.url, 2);
    await coordinator.waitForGroup(5000);
    const bad = await Promise.all(Array.from({ length: 20 }, () => RawPeer.open(coordinator.url)));
    bad.forEach((peer, i) => peer.send(i % 2 ? "nope" : JSON.stringify({ type: "hello", v: 1, token: "x", role: "host" })));
    await Promise.all(bad.map((peer) => peer.closed));
    await expect(coordinator.submit(job())).resolves.toMatchObject({ jobId: "1" });
    expect(coordinator.status()).toMatchObject({ formed: true, connections: 2 });
  });
});
