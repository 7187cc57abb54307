import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, startServer, tinyModel, until, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("a client that disconnects", () => {
  it("cancels its running job on the group", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ hold: true });
    const client = new AbortController();
    const res = s.post("/v1/chat/completions", chatBody(), {}, client.signal).catch((e: unknown) => e);
    await until("the job runs", () => s.group.jobs[0]?.started === true);
    client.abort();
    expect(await res).toBeInstanceOf(Error);
    await until("the job's signal aborts", () => s.group.jobs[0]!.aborted);
    await until("the job ends", () => s.group.jobs[0]!.ended === "rejected");
    // Its place is free again: the next request runs.
    expect((await s.post("/v1/chat/completions", chatBody())).status).toBe(200);
  });

  it("cancels its streamed job after the stream began", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ hold: true });
    const client = new AbortController();
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }), {}, client.signal);
    expect(res.status).toBe(200);
    await until("every token was sent", () => s.group.jobs[0]!.sent.length === s.group.tokens.length);
    client.abort();
    await until("the job's signal aborts", () => s.group.jobs[0]!.aborted);
    // Counted and logged as cancelled, not as a failure of the server's.
    await until("the request is logged", () => s.logs.some((l) => l.url === "/v1/chat/completions"));
    expect(s.logs.find((l) => l.url === "/v1/chat/completions")).toMatchObject({ outcome: "cancelled", level: 30 });
  });

  it("takes its queued job out of the queue, and the running one goes on", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 1 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const client = new AbortController();
    const second = s.post("/v1/chat/completions", chatBody(), {}, client.signal).catch((e: unknown) => e);
    await until("the second job is queued", () => s.group.jobs.length === 2);
    client.abort();
    expect(await second).toBeInstanceOf(Error);
    await until("the queued job's signal aborts", () => s.group.jobs[1]!.aborted);
    await until("the queued job ends", () => s.group.jobs[1]!.ended === "rejected");
    expect(s.group.jobs[1]!.started).toBe(false);
    expect(s.group.jobs[0]!.aborted).toBe(false);
    // Its place in the queue is free: a new request waits instead of getting 429.
    const third = s.post("/v1/chat/completions", chatBody());
    await until("the third job is queued", () => s.group.jobs.length === 3);
    s.group.jobs[0]!.release();
    expect((await first).status).toBe(200);
    expect((await third).status).toBe(200);
  });

  it("takes its queued streamed job out of the queue before its stream began", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 1 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const client = new AbortController();
    const second = s.post("/v1/chat/completions", chatBody({ stream: true }), {}, client.signal).catch((e: unknown) => e);
    await until("the second job is queued", () => s.group.jobs.length === 2);
    client.abort();
    expect(await second).toBeInstanceOf(Error);
    await until("the queued job ends", () => s.group.jobs[1]!.ended === "rejected");
    expect(s.group.jobs[1]!.started).toBe(false);
    s.group.jobs[0]!.release();
    expect((await first).status).toBe(200);
  });
});
