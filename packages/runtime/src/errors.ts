import type { z } from "zod";

/**
 * Stable error codes. The first five are the planner's (packages/planner/src/errors.ts) with the
 * same meaning; the rest are about model directories.
 */
export type ErrorCode =
  | "INVALID_JSON" // a JSON file (config, index, safetensors header, tokenizer) does not parse
  | "MISSING_FIELD"
  | "WRONG_TYPE"
  | "OUT_OF_RANGE"
  | "INTERNAL"
  | "MODEL_FILE" // a file is missing, unreadable, truncated or internally inconsistent
  | "TENSOR_MISSING"
  | "TENSOR_SHAPE"
  | "TENSOR_DTYPE"
  | "UNSUPPORTED_ARCHITECTURE" // a model (or a feature of one) the engine does not run
  | "TOKENIZER"
  | "MODEL_FETCH" // a named model could not be downloaded or did not match its pinned hash
  // From the engine (crates/apb-engine/src/error.rs):
  | "INVALID_INPUT" // a request the engine cannot run as given
  | "PLAN" // the planner rejected the layout (its message says why)
  | "COMM" // hosts could not exchange data
  | "NCCL_UNAVAILABLE" // joining GPU hosts needs NCCL, which this machine lacks (the message says how to fix it)
  | "CANCELLED" // the caller aborted (AbortSignal)
  | "NUMERIC" // NaN or Inf in the weights or the logits
  | "PROMPT_TOO_LONG" // the prompt exceeds the model's positions
  | "DISPOSED" // the model was disposed
  | "GPU_MEMORY" // the request or the weights do not fit the GPU's free memory
  | "CUDA" // a CUDA call failed
  | "CUDA_UNAVAILABLE"; // --backend cuda on a machine or build without CUDA

/**
 * Errors are data: a stable code, a message that names the file or tensor, what was expected,
 * what was found and how to fix it, and a path: the JSON field for config errors, the tensor's
 * name for tensor errors, the file for file errors.
 */
export interface ErrorData {
  code: ErrorCode;
  message: string;
  path: string;
}

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

export function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, "");
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
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
