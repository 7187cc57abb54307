// POST /v1/chat/completions and POST /v1/completions: the same job, in OpenAI's two shapes,
// whole or streamed.
import { randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { z } from "zod";
import type { Completions, Outcome, Sampling } from "../completion.js";
import { asErrorData, errorBody, ServerError } from "../errors.js";
import { chatPrompt, completionPrompt, type PromptParts } from "../prompt.js";
import { parseBody } from "../request-body.js";
import { ChatRequestSchema, CompletionRequestSchema } from "../schema.js";
import { EventStream } from "../sse.js";
import { noteOutcome, outcomeOfStatus } from "../request-log.js";

/** How one endpoint words its responses. */
interface Shape {
  object: string;
  chunkObject: string;
  idPrefix: string;
  choice(text: string, finishReason: string | null): object;
  /** A streamed piece; `first` marks the chunk that opens the answer. */
  chunkChoice(text: string, finishReason: string | null, first: boolean): object;
}

const CHAT: Shape = {
  object: "chat.completion",
  chunkObject: "chat.completion.chunk",
  idPrefix: "chatcmpl-",
  choice: (text, finishReason) => ({ index: 0, message: { role: "assistant", content: text, refusal: null }, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (text, finishReason, first) => ({ index: 0, delta: first ? { role: "assistant", content: text } : finishReason ? {} : { content: text }, logprobs: null, finish_reason: finishReason }),
};

const TEXT: Shape = {
  object: "text_completion",
  chunkObject: "text_completion",
  idPrefix: "cmpl-",
  choice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (text, finishReason) => ({ index: 0, text, logprobs: null, finish_reason: finishReason }),
};

export interface CompletionRoutes {
  completions: Completions;
  modelId: string;
  /** Keeps a request's job where a draining server can cancel it; the result forgets it. */
  track(job: AbortController): () => void;
}

export function registerCompletionRoutes(app: FastifyInstance, ctx: CompletionRoutes): void {
  app.post("/v1/chat/completions", (request, reply) =>
    serve(ctx, request, reply, CHAT, (raw) => {
      const body = parseBody(ChatRequestSchema, raw, request.log);
      return { body, prompt: () => chatPrompt(body) };
    }),
  );
  app.post("/v1/completions", (request, reply) =>
    serve(ctx, request, reply, TEXT, (raw) => {
      const body = parseBody(CompletionRequestSchema, raw, request.log);
      return { body, prompt: () => completionPrompt(body) };
    }),
  );
}

type Body = z.infer<typeof ChatRequestSchema> | z.infer<typeof CompletionRequestSchema>;

/** The body checked against its schema, and its prompt (read once the model is known to be ours). */
type Parse = (raw: unknown) => { body: Body; prompt(): PromptParts };

async function serve(ctx: CompletionRoutes, request: FastifyRequest, reply: FastifyReply, shape: Shape, parse: Parse) {
  const arrivedAt = performance.now();
  const { body, prompt } = parse(request.body);
  if (body.model !== ctx.modelId) {
    throw new ServerError({ code: "UNKNOWN_MODEL", path: "model", message: `model '${body.model}' is not served here; this server serves '${ctx.modelId}' (GET /v1/models)` });
  }
  const parts = prompt();
  const prepared = ctx.completions.prepare(parts, body as Sampling);
  const id = `${shape.idPrefix}${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const head = { id, object: shape.object, created, model: ctx.modelId };

  // A client that goes away before its answer is complete cancels its job on every host.
  const controller = new AbortController();
  const untrack = ctx.track(controller);
  reply.raw.once("close", () => {
    untrack();
    if (!reply.raw.writableFinished) controller.abort(new ServerError({ code: "CANCELLED", message: "the client closed the connection" }));
  });
  // A client gone while its body was read closed the socket before the listener was there.
  if (request.raw.socket?.destroyed) controller.abort(new ServerError({ code: "CANCELLED", message: "the client closed the connection" }));

  if (!body.stream) {
    const outcome = await ctx.completions.run(prepared, { onStart() {}, onText() {} }, controller.signal, arrivedAt);
    return { ...head, choices: [shape.choice(outcome.text, outcome.finishReason)], usage: outcome.usage, apb: outcome.apb };
  }

  // Streamed: the status line waits for the job to start, so what is refused before (the
  // queue is full, the group is down) is still an ordinary error response.
  const stream = new EventStream(reply.raw);
  const chunk = { id, object: shape.chunkObject, created, model: ctx.modelId };
  let first = true;
  let started = false;
  const onStart = () => {
    started = true;
    reply.hijack();
    stream.open();
    if (shape === CHAT) {
      stream.send({ ...chunk, choices: [shape.chunkChoice("", null, true)] });
      first = false;
    }
  };
  const onText = (piece: string) => {
    // A job may end without having streamed (its ids only in the result): the stream opens now.
    if (!started) onStart();
    stream.send({ ...chunk, choices: [shape.chunkChoice(piece, null, first)] });
    first = false;
  };
  let outcome: Outcome;
  try {
    outcome = await ctx.completions.run(prepared, { onStart, onText }, controller.signal, arrivedAt);
  } catch (e) {
    if (!started) throw e;
    // Counted as the same error would be before the stream began (a client gone, hosts lost).
    const { data, status, internal } = asErrorData(e);
    // As the error handler does for a response: a bug's details go to the log, not the client.
    if (internal) request.log.error({ err: e }, internal);
    noteOutcome(request, data.code, outcomeOfStatus(status));
    stream.fail(errorBody(data));
    return;
  }
  if (!started) onStart();
  stream.send({ ...chunk, choices: [shape.chunkChoice("", outcome.finishReason, false)], apb: outcome.apb });
  const includeUsage = "stream_options" in body && body.stream_options?.include_usage === true;
  if (includeUsage) stream.send({ ...chunk, choices: [], usage: outcome.usage });
  stream.done();
}
