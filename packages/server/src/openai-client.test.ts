import OpenAI, { BadRequestError, NotFoundError, RateLimitError } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { API_KEY, closeServers, DOCUMENT, idsOf, MODEL_ID, PROMPT, QUESTION, startServer, textOf, tinyModel, until, type Running, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
let s: Running;
let client: OpenAI;
let ids: number[];
beforeAll(async () => {
  tiny = await tinyModel();
  ids = [...idsOf(tiny.dir, " It is made of grey stone."), tiny.dir.config.eosTokenIds[0]!];
  s = await startServer(tiny.dir, { apiKey: API_KEY, tokens: ids, maxQueue: 0 });
  client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: API_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("the official openai client", () => {
  it("gets a chat completion: the text, finish_reason and usage", async () => {
    const r = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "system", content: "Be brief." }, { role: "user", content: PROMPT }], max_tokens: 32 });
    expect(r.choices[0]!.message.content).toBe(textOf(tiny.dir, ids));
    expect(r.choices[0]!.finish_reason).toBe("stop");
    expect(r.model).toBe(MODEL_ID);
    expect(r.usage!.completion_tokens).toBe(ids.length);
    expect(r.usage!.total_tokens).toBe(r.usage!.prompt_tokens + ids.length);
  });

  it("streams a chat completion whose chunks join to the same text, with a usage chunk when asked", async () => {
    const stream = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }], stream: true, stream_options: { include_usage: true } });
    let text = "";
    let finish: string | null = null;
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(" It is made of grey stone.");
    expect(finish).toBe("stop");
    expect(usage?.completion_tokens).toBe(ids.length);
  });

  it("gets a completion, whole and streamed", async () => {
    const whole = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, max_tokens: 32 });
    expect(whole.choices[0]!.text).toBe(" It is made of grey stone.");
    expect(whole.choices[0]!.finish_reason).toBe("stop");
    const stream = await client.completions.create({ model: MODEL_ID, prompt: PROMPT, stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(whole.choices[0]!.text);
  });

  it("passes the document and question apart in extra body fields", async () => {
    const before = s.group.jobs.length;
    await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: "ignored" }], apb: { document: DOCUMENT, query: QUESTION } } as OpenAI.ChatCompletionCreateParamsNonStreaming);
    const spec = s.group.jobs[before]!.spec;
    expect(textOf(tiny.dir, spec.context)).toContain(DOCUMENT);
    expect(textOf(tiny.dir, spec.query)).toContain(QUESTION);
  });

  it("raises BadRequestError naming the field, NotFoundError for another model, RateLimitError when busy", async () => {
    const bad = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }], temperature: 3 }).catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(BadRequestError);
    expect((bad as BadRequestError).param).toBe("temperature");
    const other = await client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: PROMPT }] }).catch((x: unknown) => x);
    expect(other).toBeInstanceOf(NotFoundError);

    const n = s.group.jobs.length;
    s.group.next({ hold: true });
    const held = client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }] });
    await until("the held job runs", () => s.group.jobs[n]?.started === true);
    const busy = await client.chat.completions.create({ model: MODEL_ID, messages: [{ role: "user", content: PROMPT }] }).catch((x: unknown) => x);
    expect(busy).toBeInstanceOf(RateLimitError);
    expect((busy as RateLimitError).code).toBe("BUSY");
    s.group.jobs[n]!.release();
    expect((await held).choices[0]!.message.content).toBe(" It is made of grey stone.");
  });

  it("lists the model", async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([MODEL_ID]);
  });
});
