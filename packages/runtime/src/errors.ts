import { ApbError, type ErrorCode as AnyErrorCode, type ErrorData as AnyErrorData, errorDataFromZod, pathOf, type ZodProblem } from "@apb/errors";
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

export class RuntimeError extends ApbError<ErrorCode> {
  override readonly name = "RuntimeError";
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

/**
 * The runtime's wording of a problem in a model's file. It differs from the planner's on
 * purpose: the file is one the user did not write (a checkpoint's config.json), so the message
 * says in plain words what the field must be and what the file holds instead, rather than
 * zod's "expected number, received string".
 */
function fileWording({ code, path, issue, found }: ZodProblem): string {
  if (code === "UNKNOWN_FIELD") return `${path} is not a known field`;
  const subject = path || "the top level";
  if (code === "MISSING_FIELD") return `${subject} is required and ${requirement(issue)}; add it`;
  return `${subject} ${requirement(issue)}, found ${shown(found)}`;
}

/** The first zod issue as a RuntimeError naming the file and the field; `input` tells missing from wrong. */
export function fromZod(error: z.ZodError, input: unknown, fileName: string): RuntimeError {
  const data = errorDataFromZod(error, input, fileWording);
  return new RuntimeError({ ...data, message: `${fileName}: ${data.message}` });
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
