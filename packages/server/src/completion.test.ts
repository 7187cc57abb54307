import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApbReport } from "./completion.js";
import { chatBody, closeServers, completionBody, idsOf, MODEL_ID, startServer, textOf, tinyModel, type TinyModel } from "./server.test-helper.js";

interface Answer {
  id: string;
  object: string;
  model: string;
  choices: { index: number; finish_reason: string; message?: { role: string; content: string }; text?: string }[];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  apb: ApbReport;
}

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("a whole (non-streamed) answer", () => {
  it("of a chat is the text of the ids the group sent, with usage counted from the prompt's tokens", async () => {
    const eos = tiny.dir.config.eosTokenIds[0]!;
    const ids = [...idsOf(tiny.dir, " The bridge is stone."), eos];
    const s = await startServer(tiny.dir, { tokens: ids });
    const res = await s.post("/v1/chat/completions", chatBody());
    expect(res.status).toBe(200);
    const body = (await res.json()) as Answer;
    const spec = s.group.jobs[0]!.spec;
    expect(body).toMatchObject({ object: "chat.completion", model: MODEL_ID });
    expect(body.id).toMatch(/^chatcmpl-/);
    expect(body.choices).toEqual([{ index: 0, message: { role: "assistant", content: textOf(tiny.dir, ids), refusal: null }, logprobs: null, finish_reason: "stop" }]);
    expect(body.choices[0]!.message!.content).toBe(" The bridge is stone.");
    const promptTokens = spec.context.length + spec.query.length;
    expect(body.usage).toEqual({ prompt_tokens: promptTokens, completion_tokens: ids.length, total_tokens: promptTokens + ids.length });
    expect(body.apb.prompt_tokens).toEqual({ prefix: spec.prefixTokens, document: spec.context.length - spec.prefixTokens, query: spec.query.length });
  });

  it("of a completion is the same text, finished by length when the last id is not an end of sequence", async () => {
    const ids = idsOf(tiny.dir, " Stone and more");
    const s = await startServer(tiny.dir, { tokens: ids });
    const res = await s.post("/v1/completions", completionBody());
    expect(res.status).toBe(200);
    const body = (await res.json()) as Answer;
    expect(body.object).toBe("text_completion");
    expect(body.id).toMatch(/^cmpl-/);
    expect(body.choices).toEqual([{ index: 0, text: " Stone and more", logprobs: null, finish_reason: "length" }]);
    expect(body.usage.completion_tokens).toBe(ids.length);
  });

  it("finishes by stop when the last id is one of apb.stop_token_ids", async () => {
    const ids = [...idsOf(tiny.dir, " Stone"), 100];
    const s = await startServer(tiny.dir, { tokens: ids });
    const body = (await (await s.post("/v1/completions", completionBody({ apb: { stop_token_ids: [100] } }))).json()) as Answer;
    expect(body.choices[0]!.finish_reason).toBe("stop");
    expect(s.group.jobs[0]!.spec.stopTokenIds).toEqual([100]);
  });

  it("sends the group the request's sampling and the model's end-of-sequence ids", async () => {
    const s = await startServer(tiny.dir);
    await s.post("/v1/completions", completionBody({ max_tokens: 7, temperature: 0.5, top_p: 0.9, seed: 42 }));
    await s.post("/v1/completions", completionBody({ ignore_eos: true, apb: { strategy: "star" } }));
    expect(s.group.jobs[0]!.spec).toMatchObject({ maxTokens: 7, temperature: 0.5, topP: 0.9, seed: 42, stopTokenIds: tiny.dir.config.eosTokenIds, strategy: "apb" });
    expect(s.group.jobs[1]!.spec).toMatchObject({ stopTokenIds: [], strategy: "star" });
  });

  it("takes max_completion_tokens when max_tokens is not given, and otherwise what the model's positions leave, up to defaultMaxTokens", async () => {
    const s = await startServer(tiny.dir, { defaultMaxTokens: 50, groupWaitMs: 1234 });
    await s.post("/v1/chat/completions", chatBody({ max_tokens: undefined, max_completion_tokens: 9 }));
    await s.post("/v1/chat/completions", chatBody({ max_tokens: undefined }));
    expect(s.group.jobs.map((j) => j.spec.maxTokens)).toEqual([9, 50]);
    // How long a job may wait for the group to form.
    expect(s.group.jobs[0]!.io.groupTimeoutMs).toBe(1234);
  });

  it("reports apb's layout and timings: every host's, and the slowest prefill", async () => {
    const s = await startServer(tiny.dir);
    const body = (await (await s.post("/v1/chat/completions", chatBody())).json()) as Answer;
    expect(body.apb).toMatchObject({ strategy: "apb", hosts: 2, anchor_tokens: 4, passing_tokens: 2, block_tokens: 16 });
    const t = body.apb.timings;
    expect(t.hosts).toEqual([
      { host: 0, prefill_ms: 100, prefill_wall_ms: 150, compute_ms: 90, comm_ms: 5 },
      { host: 1, prefill_ms: 110, prefill_wall_ms: 160, compute_ms: 90, comm_ms: 6 },
    ]);
    expect(t.prefill_wall_ms).toBe(160);
    expect(t.first_token_ms).toBeGreaterThanOrEqual(0);
    expect(t.queue_ms).toBeGreaterThanOrEqual(0);
    expect(t.total_ms).toBeGreaterThanOrEqual(t.first_token_ms!);
  });

  it("lists the served model at GET /v1/models", async () => {
    const s = await startServer(tiny.dir);
    const list = (await (await fetch(`${s.url}/v1/models`)).json()) as { data: { id: string }[] };
    expect(list.data.map((m) => m.id)).toEqual([MODEL_ID]);
    expect((await fetch(`${s.url}/v1/models/${MODEL_ID}`)).status).toBe(200);
    expect((await fetch(`${s.url}/v1/models/other`)).status).toBe(404);
  });
});
