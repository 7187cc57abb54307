// The request bodies of POST /v1/chat/completions and POST /v1/completions, in OpenAI's
// shapes, plus what apb adds: `ignore_eos` (as vLLM spells it) and an `apb` object. Fields
// OpenAI has but apb cannot honour are refused when set to anything but their default, so a
// client never gets a silently different answer; fields no one knows are ignored (and
// logged), as new OpenAI clients send new ones.
import { STRATEGIES } from "@apb/runtime";
import { z } from "zod";

const count = z.number().int();

/** What apb adds: the document and query given apart, and the layout. */
export const ApbOptionsSchema = z.strictObject({
  document: z.string({ error: "must be the document (the long context) as text" }).optional(),
  query: z.string({ error: "must be the question about the document" }).min(1, { error: "must not be empty" }).optional(),
  strategy: z.enum(STRATEGIES, { error: `must be one of ${STRATEGIES.join(", ")}` }).optional(),
  anchor_tokens: count.min(0).optional(),
  passing_tokens: count.min(0).optional(),
  balanced: z.boolean().optional(),
  stop_token_ids: z.array(count.min(0)).max(64).optional(),
  allow_long_prompt: z.boolean().optional(),
});
export type ApbOptions = z.infer<typeof ApbOptionsSchema>;

const stop = z.union([z.string().min(1), z.array(z.string().min(1)).max(4)]).nullable().optional();

/** Sampling and streaming, the same in both endpoints. */
const common = {
  model: z.string({ error: "must name the model (GET /v1/models lists it)" }).min(1),
  max_tokens: count.min(1).max(1_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().gt(0).max(1).nullable().optional(),
  seed: count.min(0).max(2 ** 32 - 1).nullable().optional(),
  stop,
  stream: z.boolean().nullable().optional(),
  stream_options: z.object({ include_usage: z.boolean().optional() }).nullable().optional(),
  n: z.literal(1, { error: "must be 1: apb returns one choice" }).nullable().optional(),
  presence_penalty: z.literal(0, { error: "must be 0: apb does not apply penalties" }).nullable().optional(),
  frequency_penalty: z.literal(0, { error: "must be 0: apb does not apply penalties" }).nullable().optional(),
  logprobs: z.union([z.literal(false), z.null()], { error: "is not supported: leave it out" }).optional(),
  user: z.string().optional(),
  ignore_eos: z.boolean().optional(),
  apb: ApbOptionsSchema.optional(),
};

const textPart = z.object({ type: z.literal("text", { error: "must be \"text\": apb reads text only" }), text: z.string() });

export const ChatMessageSchema = z.object({
  role: z.enum(["system", "developer", "user", "assistant"], { error: "must be system, developer, user or assistant (apb has no tools)" }),
  content: z.union([z.string(), z.array(textPart)]),
  name: z.string().optional(),
});

export const ChatRequestSchema = z.object({
  ...common,
  messages: z.array(ChatMessageSchema).min(1, { error: "must hold at least one message" }).max(4096),
  max_completion_tokens: count.min(1).max(1_000_000).nullable().optional(),
  tools: z.array(z.unknown()).max(0, { error: "is not supported: apb has no tool calling" }).nullable().optional(),
  response_format: z.object({ type: z.literal("text", { error: "must be text: apb does not constrain output" }) }).nullable().optional(),
});
export type ChatRequest = z.infer<typeof ChatRequestSchema>;

export const CompletionRequestSchema = z.object({
  ...common,
  prompt: z.union(
    [
      z.string(),
      // The count is checked once every element is text, so token ids are refused as such.
      z
        .array(z.string({ error: "must be the prompt as text (token arrays are not supported)" }))
        .refine((prompts) => prompts.length === 1, { error: "must hold one prompt: apb answers one per request", when: (p) => p.issues.length === 0 }),
    ],
    { error: "must be the prompt as text (token arrays are not supported)" },
  ),
  echo: z.literal(false, { error: "is not supported: leave it out" }).nullable().optional(),
  suffix: z.null({ error: "is not supported: leave it out" }).optional(),
  best_of: z.literal(1, { error: "must be 1" }).nullable().optional(),
});
export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;

/** Top-level fields a schema does not know (they are ignored; the server logs them). */
export function unknownFields(body: unknown, schema: z.ZodObject): string[] {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return [];
  return Object.keys(body).filter((k) => !(k in schema.shape));
}
