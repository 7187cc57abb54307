// Errors as the server answers them: apb's {code, message, path} (the one list in
// @apb/errors gives each code its HTTP status) inside OpenAI's error envelope, whose
// `type` and `param` the official clients read.
import { ApbError, carriedErrorData, httpStatusOf, type ErrorCode, type ErrorData, type HttpStatus } from "@apb/errors";

export class ServerError extends ApbError<ErrorCode> {
  override readonly name = "ServerError";
}

/** The body of an error response (and of an error event in a stream). */
export interface ErrorBody {
  error: { code: string; message: string; path: string; type: string; param: string | null };
}

function openAiType(status: number): string {
  if (status === 401) return "authentication_error";
  if (status === 404) return "not_found_error";
  if (status === 429) return "rate_limit_error";
  if (status === 503) return "service_unavailable_error";
  return status >= 500 ? "server_error" : "invalid_request_error";
}

export function errorBody(e: ErrorData): ErrorBody {
  const status = httpStatusOf(e.code);
  return { error: { code: e.code, message: e.message, path: e.path, type: openAiType(status), param: e.path === "" ? null : e.path } };
}

// Fastify's own errors, as apb codes: what its body parser refuses.
const FASTIFY_CODES: readonly { fastify: string; code: ErrorCode }[] = [
  { fastify: "FST_ERR_CTP_BODY_TOO_LARGE", code: "REQUEST_TOO_LARGE" },
  { fastify: "FST_ERR_CTP_INVALID_MEDIA_TYPE", code: "UNSUPPORTED_MEDIA_TYPE" },
  { fastify: "FST_ERR_CTP_INVALID_CONTENT_LENGTH", code: "INVALID_JSON" },
  { fastify: "FST_ERR_CTP_EMPTY_JSON_BODY", code: "INVALID_JSON" },
  { fastify: "FST_ERR_CTP_INVALID_JSON_BODY", code: "INVALID_JSON" },
];

/**
 * Whatever a handler threw, as error data and a status. A fastify refusal gets its apb code;
 * an error that is data keeps its code; anything else is INTERNAL, with its message kept for
 * the log (`internal`) but not shown to the client, which may be anyone.
 */
export function asErrorData(e: unknown): { data: ErrorData; status: HttpStatus; internal: string | null } {
  const o = (e ?? {}) as { code?: unknown; message?: unknown; path?: unknown; statusCode?: unknown };
  const message = typeof o.message === "string" ? o.message : String(e);
  const known = FASTIFY_CODES.find((f) => f.fastify === o.code);
  if (known) {
    const code = known.code;
    const text = code === "REQUEST_TOO_LARGE" ? `${message}: send a shorter document or raise the server's --max-body-bytes` : message;
    return { data: { code, message: text, path: "" }, status: httpStatusOf(code), internal: null };
  }
  if (e instanceof SyntaxError || (o.statusCode === 400 && typeof o.code === "string" && o.code.startsWith("FST_ERR_CTP"))) {
    return { data: { code: "INVALID_JSON", message: `the body is not valid JSON: ${message}`, path: "" }, status: 400, internal: null };
  }
  // Errors that are data (@apb/errors' carriedErrorData) keep their code; a code apb does not list is a 500.
  const carried = carriedErrorData(e);
  if (carried) {
    const data = { ...carried, code: carried.code as ErrorCode };
    return { data, status: httpStatusOf(data.code), internal: data.code === "INTERNAL" ? data.message : null };
  }
  return { data: { code: "INTERNAL", message: "the server failed on this request (its log has the details)", path: "" }, status: 500, internal: e instanceof Error ? (e.stack ?? message) : message };
}
