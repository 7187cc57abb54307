import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, startServer, tinyModel, until, type ErrorEnvelope, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("close() drains", () => {
  it("refusing new requests, letting the running one finish, and resolving after it", async () => {
    const s = await startServer(tiny.dir, { drainTimeoutMs: 60_000 });
    s.group.next({ hold: true });
    const running = s.post("/v1/chat/completions", chatBody());
    await until("the job runs", () => s.group.jobs[0]?.started === true);
    let closed = false;
    const closing = s.server.close().then(() => (closed = true));

    // A new connection is refused: the server stopped listening.
    const late = await s.post("/v1/chat/completions", chatBody()).catch((e: unknown) => e);
    expect(late).toBeInstanceOf(Error);
    expect((late as { cause?: { code?: string } }).cause?.code).toBe("ECONNREFUSED");
    expect(s.group.jobs).toHaveLength(1);
    expect(closed).toBe(false);

    s.group.jobs[0]!.release();
    const res = await running;
    expect(res.status).toBe(200);
    await closing;
    expect(s.group.jobs[0]!.ended).toBe("resolved");
    expect(s.group.jobs[0]!.aborted).toBe(false);
  });

  it("letting queued requests run after the running one", async () => {
    const s = await startServer(tiny.dir, { drainTimeoutMs: 60_000, maxQueue: 1 });
    s.group.next({ hold: true });
    const running = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const queued = s.post("/v1/chat/completions", chatBody());
    await until("the second job is queued", () => s.group.jobs.length === 2);
    const closing = s.server.close();
    s.group.jobs[0]!.release();
    expect((await running).status).toBe(200);
    expect((await queued).status).toBe(200);
    await closing;
    expect(s.group.jobs.map((j) => j.ended)).toEqual(["resolved", "resolved"]);
  });

  it("answering /health with 503 draining and a request on an open connection with 503 SHUTDOWN", async () => {
    const s = await startServer(tiny.dir, { drainTimeoutMs: 60_000 });
    s.group.next({ hold: true });
    const running = s.post("/v1/chat/completions", chatBody());
    await until("the job runs", () => s.group.jobs[0]?.started === true);
    // New connections are refused, so these are injected as on a connection kept open, in
    // the tick close() begins (once closed, fastify takes no injections).
    const closing = s.server.close();
    const [health, late] = await Promise.all([
      s.server.app.inject({ method: "GET", url: "/health" }),
      s.server.app.inject({ method: "POST", url: "/v1/chat/completions", payload: chatBody() }),
    ]);
    expect(health.statusCode).toBe(503);
    expect(health.json()).toMatchObject({ status: "draining" });
    expect(late.statusCode).toBe(503);
    expect(late.json<ErrorEnvelope>().error).toMatchObject({ code: "SHUTDOWN", type: "service_unavailable_error" });
    expect(late.headers["retry-after"]).toBe("5");
    expect(s.group.jobs).toHaveLength(1);
    s.group.jobs[0]!.release();
    expect((await running).status).toBe(200);
    await closing;
  });

  it("cancelling on every host what is left after drainTimeoutMs, which gets 503 SHUTDOWN", async () => {
    const s = await startServer(tiny.dir, { drainTimeoutMs: 50, maxQueue: 1 });
    s.group.next({ hold: true });
    const running = s.post("/v1/chat/completions", chatBody());
    await until("the job runs", () => s.group.jobs[0]?.started === true);
    const queued = s.post("/v1/chat/completions", chatBody());
    await until("the second job is queued", () => s.group.jobs.length === 2);
    await s.server.close();
    expect(s.group.jobs.map((j) => [j.aborted, j.ended])).toEqual([
      [true, "rejected"],
      [true, "rejected"],
    ]);
    for (const res of [await running, await queued]) {
      expect(res.status).toBe(503);
      expect(((await res.json()) as ErrorEnvelope).error.code).toBe("SHUTDOWN");
    }
  });

  it("without waiting for a connection that carries no request", async () => {
    const s = await startServer(tiny.dir, { drainTimeoutMs: 60_000 });
    const url = new URL(s.url);
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once("connect", resolve));
    const ended = new Promise((resolve) => socket.once("close", resolve));
    await s.server.close();
    await ended;
  });
});
