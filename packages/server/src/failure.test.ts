import OpenAI, { APIError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, MODEL_ID, PROMPT, sseData, startServer, tinyModel, until, type ErrorEnvelope, type TinyModel } from "./server.test-helper.js";

const LOST = { code: "HOST_LOST", message: "host 1 (pid 42 on node) stopped answering during the job" };

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("a job the group fails", () => {
  it("answers 503 with the group's code and message", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ fail: LOST });
    const res = await s.post("/v1/chat/completions", chatBody());
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("5");
    expect(((await res.json()) as ErrorEnvelope).error).toEqual({ ...LOST, path: "", type: "service_unavailable_error", param: null });
    await until("the request is logged", () => s.logs.some((l) => l.msg === "request done"));
    expect(s.logs.find((l) => l.msg === "request done")).toMatchObject({ status: 503, outcome: "unavailable", code: "HOST_LOST" });
    // The failed job gave its place back.
    expect((await s.post("/v1/chat/completions", chatBody())).status).toBe(200);
  });

  it("answers a streamed request with an ordinary 503 when it fails before it began", async () => {
    const s = await startServer(tiny.dir);
    const timeout = { code: "GROUP_TIMEOUT", message: "the group did not form within 30 s: host 1 is missing" };
    s.group.next({ fail: timeout, failFirst: true });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(res.status).toBe(503);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(((await res.json()) as ErrorEnvelope).error).toMatchObject(timeout);
  });

  it("that fails after it began, before any token, ends the stream with an error event", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ tokens: [], fail: LOST });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(res.status).toBe(200);
    const data = sseData(await res.text());
    expect(data).not.toContain("[DONE]");
    expect(JSON.parse(data.at(-1)!)).toMatchObject({ error: LOST });
  });

  it("that fails after tokens were streamed ends the stream with an error event and no [DONE]", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ fail: LOST });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(res.status).toBe(200);
    const raw = await res.text();
    expect(raw).not.toContain("[DONE]");
    const data = sseData(raw);
    const pieces = data.slice(0, -1).map((d) => JSON.parse(d) as { choices: { delta: { content?: string } }[] });
    expect(pieces.map((p) => p.choices[0]!.delta.content ?? "").join("")).toBe(" Stone, old stone.");
    expect(JSON.parse(data.at(-1)!)).toEqual({ error: { ...LOST, path: "", type: "service_unavailable_error", param: null } });
    // Counted as a non-streamed HOST_LOST is: the hosts are not there (503), not a failure of the server's.
    await until("the request is logged", () => s.logs.some((l) => l.url === "/v1/chat/completions"));
    expect(s.logs.find((l) => l.url === "/v1/chat/completions")).toMatchObject({ outcome: "unavailable", code: "HOST_LOST" });
  });

  it("makes the openai client's stream raise with the group's message", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ fail: LOST });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused-key", maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }], stream: true });
    let text = "";
    const e = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    })().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIError);
    expect((e as APIError).message).toContain("host 1 (pid 42 on node)");
    expect(text).toBe(" Stone, old stone.");
  });

  it("makes the openai client raise a 503 APIError for a whole answer", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ fail: LOST });
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "unused-key", maxRetries: 0 });
    const e = await client.completions.create({ model: MODEL_ID, prompt: PROMPT }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(APIError);
    expect((e as APIError).status).toBe(503);
    expect((e as APIError).code).toBe("HOST_LOST");
  });

  it("that fails with an unexpected error answers 500 INTERNAL without its details, and logs them", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ crash: new TypeError("cannot read properties of undefined (secret detail)") });
    const res = await s.post("/v1/chat/completions", chatBody());
    expect(res.status).toBe(500);
    const body = (await res.json()) as ErrorEnvelope;
    expect(body.error).toMatchObject({ code: "INTERNAL", type: "server_error" });
    expect(body.error.message).not.toContain("secret detail");
    expect(s.logs.some((l) => l.level === 50 && String(l.msg).includes("secret detail"))).toBe(true);
  });

  it("that fails with an unexpected error mid-stream sends INTERNAL without its details, and logs them", async () => {
    const s = await startServer(tiny.dir);
    s.group.next({ crash: new TypeError("cannot read properties of undefined (secret detail)") });
    const data = sseData(await (await s.post("/v1/chat/completions", chatBody({ stream: true }))).text());
    const last = JSON.parse(data.at(-1)!) as ErrorEnvelope;
    expect(last.error).toMatchObject({ code: "INTERNAL", type: "server_error" });
    expect(last.error.message).not.toContain("secret detail");
    await until("the error is logged", () => s.logs.some((l) => l.level === 50 && String(l.msg).includes("secret detail")));
    await until("the request is logged", () => s.logs.some((l) => l.msg === "request failed"));
    expect(s.logs.find((l) => l.msg === "request failed")).toMatchObject({ outcome: "failed", code: "INTERNAL" });
  });
});
