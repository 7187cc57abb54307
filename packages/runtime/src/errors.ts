import { type ErrorCode as AnyErrorCode, type ErrorData as AnyErrorData, pathOf, valueAt } from "@apb/errors";
import type { z } from "zod";

export { pathOf };

/**
 * The codes the runtime raises, from the one list in @apb/errors (docs/ERRORS.md says what each
 * means, the CLI's exit status and how to fix it): its own (model directories, tokenizers,
 * named models) and every code of the engine (crates/apb-engine/src/error.rs), which passes the
 * planner's through unchanged.
 */
export const RUNTIME_ERROR_CODES = [
  // The planner's, through the engine (and the runtime's own config checks):
  "INVALID_JSON",
  "MISSING_FIELD",
  "WRONG_TYPE",
  "OUT_OF_RANGE",
  "UNKNOWN_FIELD",
  "INFEASIBLE",
  "UNKNOWN_OP",
  "INTERNAL",
  // Model directories and files:
  "MODEL_FILE",
  "MODEL_FETCH",
  "TENSOR_MISSING",
  "TENSOR_SHAPE",
  "TENSOR_DTYPE",
  "UNSUPPORTED_ARCHITECTURE",
  "TOKENIZER",
  "NUMERIC",
  // The engine's:
  "INVALID_INPUT",
  "PROMPT_TOO_LONG",
  "COMM",
  "CANCELLED",
  "DISPOSED",
  "GPU_MEMORY",
  "CUDA",
  "CUDA_UNAVAILABLE",
  "NCCL_UNAVAILABLE",
] as const satisfies readonly AnyErrorCode[];

export type ErrorCode = (typeof RUNTIME_ERROR_CODES)[number];

/**
 * Errors are data: a stable code, a message that names the file or tensor, what was expected,
 * what was found and how to fix it, and a path: the JSON field for config errors, the tensor's
 * name for tensor errors, the file for file errors.
 */
export type ErrorData = AnyErrorData<ErrorCode>;

export class RuntimeError extends Error implements ErrorData {
  readonly code: ErrorCode;
  readonly path: string;

  constructor(data: ErrorData) {
    super(data.message);
    this.name = "RuntimeError";
    this.code = data.code;
    this.path = data.path;
  }

  toJSON(): ErrorData {
    return { code: this.code, message: this.message, path: this.path };
  }
}

function shown(value: unknown): string {
  const text = JSON.stringify(value);
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const KIND_NAMES: Record<string, string> = { int: "an integer", number: "a number", string: "a string", object: "an object", array: "an array", boolean: "a boolean" };

/** "must be a number", "must be > 0", ... (zod's own wording as the fallback). */
function requirement(issue: z.core.$ZodIssue): string {
  if (issue.code === "invalid_union" && issue.message.startsWith("must")) return issue.message; // a schema's own wording
  if (issue.code === "invalid_type") return `must be ${KIND_NAMES[issue.expected] ?? issue.expected}`;
  if (issue.code === "too_small" && issue.origin === "number") return `must be ${issue.inclusive ? ">=" : ">"} ${String(issue.minimum)}`;
  if (issue.code === "too_big" && issue.origin === "number") return `must be ${issue.inclusive ? "<=" : "<"} ${String(issue.maximum)}`;
  return `is wrong (${issue.message})`;
}

/** The first zod issue as a RuntimeError naming the file and the field; `input` tells missing from wrong. */
export function fromZod(error: z.ZodError, input: unknown, fileName: string): RuntimeError {
  const issue = error.issues[0];
  if (!issue) return new RuntimeError({ code: "INTERNAL", message: `${fileName}: validation failed without an issue`, path: "" });
  const path = pathOf(issue.path);
  const subject = path || "the top level";
  const found = valueAt(input, issue.path);
  const typeIssue = issue.code === "invalid_type" || issue.code === "invalid_union";
  if (found === undefined && typeIssue) {
    return new RuntimeError({ code: "MISSING_FIELD", path, message: `${fileName}: ${subject} is required and ${requirement(issue)}; add it` });
  }
  return new RuntimeError({
    code: typeIssue ? "WRONG_TYPE" : "OUT_OF_RANGE",
    path,
    message: `${fileName}: ${subject} ${requirement(issue)}, found ${shown(found)}`,
  });
}

/** `fn()` with any non-RuntimeError turned into one of `code` (for third-party throws). */
export function wrapErrors<T>(fn: () => T, code: ErrorCode, path: string, context: string): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof RuntimeError) throw e;
    const reason = e instanceof Error ? e.message : String(e);
    throw new RuntimeError({ code, path, message: `${context}: ${reason}` });
  }
}
