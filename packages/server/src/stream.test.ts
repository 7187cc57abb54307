import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, completionBody, idsOf, sseData, startServer, tinyModel, type TinyModel } from "./server.test-helper.js";

interface Chunk {
  object: string;
  choices: { index: number; delta?: { role?: string; content?: string }; text?: string; finish_reason: string | null }[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
  apb?: unknown;
}

let tiny: TinyModel;
beforeAll(async () => (tiny = await tinyModel()));
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

describe("a streamed answer (server-sent events)", () => {
  it("of a chat opens with the assistant's role, sends the text in pieces, a finish chunk, and ends with [DONE]", async () => {
    const ids = [...idsOf(tiny.dir, " Old stone."), tiny.dir.config.eosTokenIds[0]!];
    const s = await startServer(tiny.dir, { tokens: ids });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const raw = await res.text();
    expect(raw.endsWith("data: [DONE]\n\n")).toBe(true);
    const data = sseData(raw);
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Chunk);
    expect(chunks.every((c) => c.object === "chat.completion.chunk")).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: "assistant", content: "" });
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(" Old stone.");
    // One chunk per piece of text: the answer arrives as it is generated.
    expect(chunks.length).toBeGreaterThan(3);
    const last = chunks.at(-1)!;
    expect(last.choices[0]).toMatchObject({ delta: {}, finish_reason: "stop" });
    expect(last.apb).toBeDefined();
    expect(chunks.some((c) => c.usage !== undefined)).toBe(false);
  });

  it("with stream_options.include_usage ends with a usage chunk with no choices", async () => {
    const ids = idsOf(tiny.dir, " Stone");
    const s = await startServer(tiny.dir, { tokens: ids });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true, stream_options: { include_usage: true } }));
    const data = sseData(await res.text());
    const usage = JSON.parse(data.at(-2)!) as Chunk;
    const spec = s.group.jobs[0]!.spec;
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toEqual({ prompt_tokens: spec.context.length + spec.query.length, completion_tokens: ids.length, total_tokens: spec.context.length + spec.query.length + ids.length });
    expect((JSON.parse(data.at(-3)!) as Chunk).choices[0]!.finish_reason).toBe("length");
  });

  it("of a completion sends text chunks and ends with [DONE]", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Made of stone") });
    const res = await s.post("/v1/completions", completionBody({ stream: true }));
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Chunk);
    expect(chunks.every((c) => c.object === "text_completion")).toBe(true);
    expect(chunks.map((c) => c.choices[0]!.text).join("")).toBe(" Made of stone");
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe("length");
  });

  it("of a job that streamed nothing (its ids only in the result) still has the text and [DONE]", async () => {
    const s = await startServer(tiny.dir, { tokens: idsOf(tiny.dir, " Quiet stone") });
    s.group.next({ quiet: true });
    const res = await s.post("/v1/chat/completions", chatBody({ stream: true }));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const data = sseData(await res.text());
    expect(data.at(-1)).toBe("[DONE]");
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d) as Chunk);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? "").join("")).toBe(" Quiet stone");
  });

  it("never shows half a character: a character split over byte tokens arrives whole", async () => {
    const ids = idsOf(tiny.dir, " café ☕ naïve");
    expect(ids.length).toBeGreaterThan(" café ☕ naïve".length);
    const s = await startServer(tiny.dir, { tokens: ids });
    const data = sseData(await (await s.post("/v1/completions", completionBody({ stream: true }))).text());
    const pieces = data.slice(0, -1).map((d) => (JSON.parse(d) as Chunk).choices[0]!.text!);
    expect(pieces.join("")).toBe(" café ☕ naïve");
    expect(pieces.some((p) => p.includes("\uFFFD"))).toBe(false);
  });
});
