import { httpStatusOf } from "@apb/errors";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chatBody, closeServers, completionBody, MODEL_ID, startServer, tinyModel, until, type ErrorEnvelope, type Running, type TinyModel } from "./server.test-helper.js";

let tiny: TinyModel;
let s: Running;
beforeAll(async () => {
  tiny = await tinyModel();
  s = await startServer(tiny.dir, { maxBodyBytes: 4096 });
});
afterAll(async () => {
  await closeServers();
  tiny.remove();
});

async function refusal(res: Response): Promise<ErrorEnvelope["error"] & { status: number }> {
  const body = (await res.json()) as ErrorEnvelope;
  expect(res.status).toBe(httpStatusOf(body.error.code));
  return { status: res.status, ...body.error };
}

describe("a request the server refuses", () => {
  it("with a body over maxBodyBytes gets 413 REQUEST_TOO_LARGE", async () => {
    const e = await refusal(await s.post("/v1/chat/completions", chatBody({ messages: [{ role: "user", content: `${"word ".repeat(1000)}\n\nQ?` }] })));
    expect(e).toMatchObject({ status: 413, code: "REQUEST_TOO_LARGE" });
  });

  it("with broken JSON gets 400 INVALID_JSON", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", '{"model": "x", '))).toMatchObject({ status: 400, code: "INVALID_JSON", type: "invalid_request_error" });
  });

  it("with an empty JSON body gets 400 INVALID_JSON", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", ""))).toMatchObject({ status: 400, code: "INVALID_JSON" });
  });

  it("with a body that is not a JSON object gets 400 WRONG_TYPE", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", "[1, 2]"))).toMatchObject({ status: 400, code: "WRONG_TYPE" });
  });

  it("sent as text/plain gets 415 UNSUPPORTED_MEDIA_TYPE", async () => {
    const res = await fetch(`${s.url}/v1/chat/completions`, { method: "POST", headers: { "content-type": "text/plain" }, body: JSON.stringify(chatBody()) });
    expect(await refusal(res)).toMatchObject({ status: 415, code: "UNSUPPORTED_MEDIA_TYPE" });
  });

  const invalid: [string, Record<string, unknown>, string, string][] = [
    ["missing messages", { model: MODEL_ID }, "MISSING_FIELD", "messages"],
    ["messages that are not an array", chatBody({ messages: "hi" }), "WRONG_TYPE", "messages"],
    ["empty messages", chatBody({ messages: [] }), "OUT_OF_RANGE", "messages"],
    ["a message of an unknown role", chatBody({ messages: [{ role: "tool", content: "x" }] }), "OUT_OF_RANGE", "messages[0].role"],
    ["max_tokens 0", chatBody({ max_tokens: 0 }), "OUT_OF_RANGE", "max_tokens"],
    ["temperature 3", chatBody({ temperature: 3 }), "OUT_OF_RANGE", "temperature"],
    ["n 2", chatBody({ n: 2 }), "OUT_OF_RANGE", "n"],
    ["logprobs true", chatBody({ logprobs: true }), "OUT_OF_RANGE", "logprobs"],
    ["apb.strategy nope", chatBody({ apb: { strategy: "nope" } }), "OUT_OF_RANGE", "apb.strategy"],
    ["an unknown field in apb", chatBody({ apb: { stratgy: "apb" } }), "UNKNOWN_FIELD", "apb.stratgy"],
    ["an image part", chatBody({ messages: [{ role: "user", content: [{ type: "text", text: "D.\n\nQ?" }, { type: "image_url", image_url: { url: "x" } }] }] }), "OUT_OF_RANGE", "messages[0].content[1].type"],
    ["tools", chatBody({ tools: [{ type: "function", function: { name: "f" } }] }), "OUT_OF_RANGE", "tools"],
    ["a JSON response_format", chatBody({ response_format: { type: "json_object" } }), "OUT_OF_RANGE", "response_format.type"],
    ["an empty stop string", chatBody({ stop: "" }), "OUT_OF_RANGE", "stop"],
    ["a prompt as token ids", completionBody({ prompt: [1, 2, 3] }), "WRONG_TYPE", "prompt[0]"],
    ["two prompts", completionBody({ prompt: ["a\n\nb?", "c\n\nd?"] }), "OUT_OF_RANGE", "prompt"],
    ["a stop token id outside the vocabulary", chatBody({ apb: { stop_token_ids: [1, 10_000_000] } }), "OUT_OF_RANGE", "apb.stop_token_ids[1]"],
    ["a scorer (the hosts of a server have no retaining heads)", chatBody({ apb: { scorer: "retaining-heads" } }), "UNKNOWN_FIELD", "apb.scorer"],
  ];
  for (const [what, body, code, field] of invalid) {
    it(`with ${what} gets 400 ${code} naming ${field}`, async () => {
      const path = "prompt" in body ? "/v1/completions" : "/v1/chat/completions";
      const e = await refusal(await s.post(path, body));
      expect(e).toMatchObject({ status: 400, code, path: field, param: field, type: "invalid_request_error" });
      expect(e.message).toContain(field);
    });
  }

  it("for another model gets 404 UNKNOWN_MODEL naming model", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ model: "gpt-4o" })))).toMatchObject({ status: 404, code: "UNKNOWN_MODEL", param: "model", type: "not_found_error" });
  });

  it("for another model gets 404 even when its prompt could not be split", async () => {
    expect(await refusal(await s.post("/v1/completions", completionBody({ model: "gpt-4o", prompt: "one paragraph" })))).toMatchObject({ status: 404, code: "UNKNOWN_MODEL" });
  });

  it("to an unknown route gets 404 UNKNOWN_ROUTE", async () => {
    const e = await refusal(await fetch(`${s.url}/v2/x`));
    expect(e).toMatchObject({ status: 404, code: "UNKNOWN_ROUTE" });
    expect(e.message).toContain("GET /v2/x");
  });

  it("for strategy full on a 2-host group gets 400 naming apb.strategy", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ apb: { strategy: "full" } })))).toMatchObject({ status: 400, code: "INVALID_INPUT", param: "apb.strategy" });
  });

  it("with an empty apb.document gets 400 naming apb.document", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ apb: { document: "", query: "Q?" } })))).toMatchObject({ status: 400, code: "INVALID_INPUT", param: "apb.document" });
  });

  it("longer than the model's positions gets 400 PROMPT_TOO_LONG naming the prompt", async () => {
    expect(await refusal(await s.post("/v1/completions", completionBody({ max_tokens: 1_000_000 })))).toMatchObject({ status: 400, code: "PROMPT_TOO_LONG", param: "prompt" });
  });

  it("with an apb setting the layout cannot take gets 400 naming it as the request does", async () => {
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ apb: { anchor_tokens: 100_000 } })))).toMatchObject({ status: 400, code: "OUT_OF_RANGE", param: "apb.anchor_tokens" });
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ apb: { strategy: "ring", passing_tokens: 4 } })))).toMatchObject({ status: 400, param: "apb.passing_tokens" });
  });

  it("whose question does not fit in a host's anchor gets 400 INFEASIBLE naming the message", async () => {
    const messages = [{ role: "system", content: "Be brief." }, { role: "user", content: "A short document.\n\nA question that is longer than the document is?" }];
    expect(await refusal(await s.post("/v1/chat/completions", chatBody({ messages })))).toMatchObject({ status: 400, code: "INFEASIBLE", param: "messages[1].content" });
  });

  it("never reaches the group", () => {
    expect(s.group.jobs).toHaveLength(0);
  });

  it("with unknown top-level fields is answered, and the fields are logged", async () => {
    expect((await s.post("/v1/chat/completions", chatBody({ store: false, metadata: {} }))).status).toBe(200);
    expect(s.logs.some((l) => JSON.stringify(l.ignored) === JSON.stringify(["store", "metadata"]))).toBe(true);
  });

  it("is logged once, by the server's own line (fastify's request lines are off)", async () => {
    const logged = () => s.logs.filter((l) => l.msg === "request done" && l.url === "/v1/completions?for=log");
    expect((await s.post("/v1/completions?for=log", completionBody({ model: "gpt-4o" }))).status).toBe(404);
    await until("the request is logged", () => logged().length === 1);
    expect(logged()[0]).toMatchObject({ method: "POST", status: 404, outcome: "client_error", code: "UNKNOWN_MODEL" });
    expect(s.logs.some((l) => l.msg === "incoming request" || l.msg === "request completed")).toBe(false);
  });
});
