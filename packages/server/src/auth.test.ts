import OpenAI, { AuthenticationError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_KEY, chatBody, closeServers, MODEL_ID, PROMPT, startServer, tinyModel, type ErrorEnvelope, type Running, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
let s: Running;
beforeAll(async () => {
  tiny = await tinyModel();
  s = await startServer(tiny.dir, { apiKey: API_KEY });
});
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("with an API key", () => {
  it("a request without the header gets 401 UNAUTHORIZED and a WWW-Authenticate challenge", async () => {
    const res = await s.post("/v1/chat/completions", chatBody());
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer /);
    const body = (await res.json()) as ErrorEnvelope;
    expect(body.error).toMatchObject({ code: "UNAUTHORIZED", type: "authentication_error", param: "Authorization" });
    expect((await fetch(`${s.url}/v1/models`)).status).toBe(401);
  });

  it("a wrong key gets 401, and no job runs", async () => {
    const jobs = s.group.jobs.length;
    const res = await s.post("/v1/chat/completions", chatBody(), { authorization: "Bearer sk-not-the-key" });
    expect(res.status).toBe(401);
    expect(((await res.json()) as ErrorEnvelope).error.code).toBe("UNAUTHORIZED");
    expect((await s.post("/v1/chat/completions", chatBody(), { authorization: API_KEY })).status).toBe(401);
    expect(s.group.jobs).toHaveLength(jobs);
  });

  it("the right key gets 200", async () => {
    expect((await s.post("/v1/chat/completions", chatBody(), { authorization: `Bearer ${API_KEY}` })).status).toBe(200);
    expect((await fetch(`${s.url}/v1/models`, { headers: { authorization: `bearer ${API_KEY}` } })).status).toBe(200);
  });

  it("a path that spells /v1/ with percent-escapes still needs the key", async () => {
    // The router decodes "%76" to "v": the key is checked on the route, not on the raw URL.
    const jobs = s.group.jobs.length;
    expect((await fetch(`${s.url}/%761/models`)).status).toBe(401);
    const res = await s.post("/%761/chat/completions", chatBody());
    expect(res.status).toBe(401);
    expect(s.group.jobs).toHaveLength(jobs);
  });

  it("/health and /metrics stay open, for probes and scrapers", async () => {
    expect((await fetch(`${s.url}/health`)).status).toBe(200);
    expect((await fetch(`${s.url}/metrics`)).status).toBe(200);
  });

  it("the openai client with a wrong key raises AuthenticationError (401)", async () => {
    const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: "sk-wrong-key-000", maxRetries: 0 });
    const e = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }] }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(AuthenticationError);
    expect((e as AuthenticationError).status).toBe(401);
    expect((e as AuthenticationError).code).toBe("UNAUTHORIZED");
  });

  it("a key shorter than 8 characters is refused at start", async () => {
    await expect(startServer(tiny.dir, { apiKey: "short" })).rejects.toMatchObject({ code: "INVALID_OPTIONS", path: "apiKey" });
  });
});
