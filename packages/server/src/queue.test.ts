import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, startServer, tinyModel, until, type ErrorEnvelope, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("the queue", () => {
  it("runs one request, lets maxQueue wait, and refuses the next with 429 BUSY and a Retry-After", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 1 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const second = s.post("/v1/chat/completions", chatBody());
    await until("the second job is queued", () => s.group.jobs.length === 2);
    expect(s.group.jobs[1]!.started).toBe(false);

    const third = await s.post("/v1/chat/completions", chatBody());
    expect(third.status).toBe(429);
    const retryAfter = third.headers.get("retry-after");
    expect(retryAfter).toMatch(/^\d+$/);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect(((await third.json()) as ErrorEnvelope).error).toMatchObject({ code: "BUSY", type: "rate_limit_error" });
    expect(s.group.jobs).toHaveLength(2);

    const health = (await (await fetch(`${s.url}/health`)).json()) as { queue: { waiting: number } };
    expect(health.queue.waiting).toBe(1);

    s.group.jobs[0]!.release();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    expect(s.group.jobs.map((j) => j.ended)).toEqual(["resolved", "resolved"]);
  });

  it("frees a place when a request ends, so the next is taken", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 0 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody());
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    expect((await s.post("/v1/chat/completions", chatBody())).status).toBe(429);
    s.group.jobs[0]!.release();
    expect((await first).status).toBe(200);
    expect((await s.post("/v1/chat/completions", chatBody())).status).toBe(200);
  });

  it("refuses a streamed request beyond it with an ordinary 429 response", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 0 });
    s.group.next({ hold: true });
    const first = s.post("/v1/chat/completions", chatBody({ stream: true }));
    await until("the first job runs", () => s.group.jobs[0]?.started === true);
    const refused = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toMatch(/^application\/json/);
    s.group.jobs[0]!.release();
    expect(await (await first).text()).toContain("data: [DONE]");
  });
});

describe("a refused request", () => {
  it("takes no place in the queue", async () => {
    const s = await startServer(tiny.dir, { maxQueue: 0 });
    for (let i = 0; i < 3; i++) {
      const res = await s.post("/v1/chat/completions", chatBody({ messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "A short document.\n\nA question that is longer than the document is?" }] }));
      expect(res.status).toBe(400);
      expect(((await res.json()) as ErrorEnvelope).error.code).toBe("INFEASIBLE");
    }
    expect((await s.post("/v1/chat/completions", chatBody())).status).toBe(200);
  });
});
