import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ServerError } from "./errors.js";
import { chatPrompt, completionPrompt, splitLastParagraph } from "./prompt.js";
import type { ChatRequest, CompletionRequest } from "./schema.js";
import { chatBody, closeServers, DOCUMENT, MODEL_ID, QUESTION, startServer, textOf, tinyModel, type ErrorEnvelope, type TinyModel } from "./server.test-helper.js";

const chat = (messages: ChatRequest["messages"], apb?: ChatRequest["apb"]): ChatRequest => ({ model: MODEL_ID, messages, ...(apb ? { apb } : {}) });

function thrown(f: () => unknown): ServerError {
  try {
    f();
  } catch (e) {
    if (e instanceof ServerError) return e;
    throw e;
  }
  throw new Error("did not throw");
}

describe("splitLastParagraph", () => {
  it("takes the question from after the last blank line and the document from before it", () => {
    expect(splitLastParagraph("Part one.\n\nPart two.\n\nThe question?")).toEqual({ document: "Part one.\n\nPart two.", query: "The question?" });
  });

  it("counts a line of spaces as blank and ignores trailing blank lines", () => {
    expect(splitLastParagraph("Doc.\n  \t\nQ?\n\n\n")).toEqual({ document: "Doc.", query: "Q?" });
  });

  it("is null for text with no blank line, or nothing before it", () => {
    expect(splitLastParagraph("One paragraph,\nsplit over lines.")).toBeNull();
    expect(splitLastParagraph("\n\nQ?")).toBeNull();
  });
});

describe("a chat request's prompt", () => {
  it("splits the last user message, and the system prompt and earlier turns become messages", () => {
    const parts = chatPrompt(
      chat([
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
        { role: "user", content: [{ type: "text", text: `${DOCUMENT}\n\n` }, { type: "text", text: QUESTION }] },
      ]),
    );
    expect(parts).toEqual({
      document: DOCUMENT,
      query: QUESTION,
      messages: [
        { role: "system", content: "Be brief." },
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello." },
      ],
      chatTemplate: true,
      fields: { document: "messages[3].content", query: "messages[3].content" },
    });
  });

  it("takes a developer message as the system prompt", () => {
    expect(chatPrompt(chat([{ role: "developer", content: "Be brief." }, { role: "user", content: "D.\n\nQ?" }])).messages).toEqual([{ role: "system", content: "Be brief." }]);
  });

  it("takes apb.document and apb.query over the user message", () => {
    const parts = chatPrompt(chat([{ role: "user", content: "no blank line here" }], { document: "The doc.", query: "The question?" }));
    expect(parts).toMatchObject({ document: "The doc.", query: "The question?", messages: [], fields: { document: "apb.document", query: "apb.query" } });
  });

  it("refuses apb.document without apb.query, and the reverse, naming the missing one", () => {
    const a = thrown(() => chatPrompt(chat([{ role: "user", content: "D.\n\nQ?" }], { document: "The doc." })));
    expect(a).toMatchObject({ code: "MISSING_FIELD", path: "apb.query" });
    const b = thrown(() => chatPrompt(chat([{ role: "user", content: "D.\n\nQ?" }], { query: "Q?" })));
    expect(b).toMatchObject({ code: "MISSING_FIELD", path: "apb.document" });
  });

  it("refuses a message after the last user message, naming it", () => {
    const e = thrown(() => chatPrompt(chat([{ role: "user", content: "D.\n\nQ?" }, { role: "assistant", content: "A." }])));
    expect(e).toMatchObject({ code: "INVALID_INPUT", path: "messages[1]" });
  });

  it("refuses a user message with no blank line, naming its content", () => {
    expect(thrown(() => chatPrompt(chat([{ role: "user", content: "just a question?" }])))).toMatchObject({ code: "INVALID_INPUT", path: "messages[0].content" });
  });
});

describe("a completion request's prompt", () => {
  it("is the text as written, split at its last blank line, without the chat template", () => {
    const body: CompletionRequest = { model: MODEL_ID, prompt: [`${DOCUMENT}\n\n${QUESTION}`] };
    expect(completionPrompt(body)).toEqual({ document: DOCUMENT, query: QUESTION, messages: [], chatTemplate: false, fields: { document: "prompt", query: "prompt" } });
  });
});

describe("prompts over HTTP", () => {
  let tiny: TinyModel;
  beforeAll(async () => (tiny = await tinyModel()));
  afterAll(async () => {
    await closeServers();
    tiny.remove();
  });

  it("send the system prompt, the document and the question to the group", async () => {
    const s = await startServer(tiny.dir);
    const res = await s.post("/v1/chat/completions", chatBody({ messages: [{ role: "system", content: "Answer in French." }, { role: "user", content: `${DOCUMENT}\n\n${QUESTION}` }] }));
    expect(res.status).toBe(200);
    const spec = s.group.jobs[0]!.spec;
    const context = textOf(tiny.dir, spec.context);
    expect(textOf(tiny.dir, spec.context.slice(0, spec.prefixTokens))).toContain("Answer in French.");
    expect(context).toContain(DOCUMENT);
    expect(textOf(tiny.dir, spec.query)).toContain(QUESTION);
  });

  it("answer 400 naming the field for apb.query alone and for a message after the user's", async () => {
    const s = await startServer(tiny.dir);
    const alone = await s.post("/v1/chat/completions", chatBody({ apb: { query: "Q?" } }));
    expect(alone.status).toBe(400);
    expect(((await alone.json()) as ErrorEnvelope).error).toMatchObject({ code: "MISSING_FIELD", param: "apb.document" });
    const after = await s.post("/v1/chat/completions", chatBody({ messages: [{ role: "user", content: "D.\n\nQ?" }, { role: "assistant", content: "A" }] }));
    expect(after.status).toBe(400);
    expect(((await after.json()) as ErrorEnvelope).error).toMatchObject({ code: "INVALID_INPUT", param: "messages[1]" });
    expect(s.group.jobs).toHaveLength(0);
  });
});
