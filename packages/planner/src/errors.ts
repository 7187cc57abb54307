import type { z } from "zod";

/** Stable error codes, shared with the Rust planner (crates/apb-plan/src/error.rs). */
export type ErrorCode =
  | "INVALID_JSON"
  | "MISSING_FIELD"
  | "WRONG_TYPE"
  | "OUT_OF_RANGE"
  | "UNKNOWN_FIELD"
  | "INFEASIBLE"
  | "UNKNOWN_OP"
  | "INTERNAL";

/** Errors are data: a stable code, a message that says how to fix it, and the field's path. */
export interface ErrorData {
  code: ErrorCode;
  message: string;
  path: string;
}

export class PlannerError extends Error implements ErrorData {
  readonly code: ErrorCode;
  readonly path: string;

  constructor(data: ErrorData) {
    super(data.message);
    this.name = "PlannerError";
    this.code = data.code;
    this.path = data.path;
  }

  toJSON(): ErrorData {
    return { code: this.code, message: this.message, path: this.path };
  }
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** A union's issue says only "none matched"; the branch that got past the type check says why. */
function innermost(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union") return issue;
  const deeper = issue.errors.find((branch) => branch.some((i) => i.path.length > 0 || i.code !== "invalid_type"));
  const inner = deeper?.[0];
  return inner ? innermost({ ...inner, path: [...issue.path, ...inner.path] }) : issue;
}

export function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, "");
}

/** The first zod issue as a PlannerError naming the field; `input` tells missing from wrong. */
export function fromZod(error: z.ZodError, input: unknown): PlannerError {
  const first = error.issues[0];
  if (!first) return new PlannerError({ code: "INTERNAL", message: "validation failed without an issue", path: "" });
  const issue = innermost(first);
  let path = pathOf(issue.path);
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    path = path ? `${path}.${key}` : key;
    return new PlannerError({ code: "UNKNOWN_FIELD", path, message: `${path} is not a known field` });
  }
  const subject = path || "the input";
  const missing = issue.code === "invalid_type" || issue.code === "invalid_union";
  if (missing && valueAt(input, issue.path) === undefined) {
    return new PlannerError({ code: "MISSING_FIELD", path, message: `${subject} is required: it ${issue.message}` });
  }
  const code: ErrorCode = issue.code === "invalid_type" ? "WRONG_TYPE" : "OUT_OF_RANGE";
  return new PlannerError({ code, path, message: `${subject} ${issue.message}` });
}
