// A request body checked against its schema: the first problem as apb error data naming the
// field (400), and top-level fields the schema does not know logged, then ignored.
import type { FastifyBaseLogger } from "fastify";
import { errorDataFromZod } from "@apb/errors";
import type { z } from "zod";
import { ServerError } from "./errors.js";
import { unknownFields } from "./schema.js";

export function parseBody<S extends z.ZodObject>(schema: S, body: unknown, log: FastifyBaseLogger): z.infer<S> {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new ServerError({ code: "WRONG_TYPE", path: "", message: "the body must be a JSON object" });
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) throw new ServerError(errorDataFromZod(parsed.error, body));
  const ignored = unknownFields(body, schema);
  if (ignored.length) log.warn({ ignored }, `ignored fields apb does not know: ${ignored.join(", ")}`);
  return parsed.data;
}
