import { type ErrorCode as AnyErrorCode, type ErrorData as AnyErrorData, innermostIssue, pathOf, valueAt } from "@apb/errors";
import type { z } from "zod";

/**
 * The codes the planner raises: the Rust planner's (crates/apb-plan/src/error.rs), from the one
 * list in @apb/errors (docs/ERRORS.md says what each means and how to fix it).
 */
export const PLANNER_ERROR_CODES = [
  "INVALID_JSON",
  "MISSING_FIELD",
  "WRONG_TYPE",
  "OUT_OF_RANGE",
  "UNKNOWN_FIELD",
  "INFEASIBLE",
  "UNKNOWN_OP",
  "INTERNAL",
] as const satisfies readonly AnyErrorCode[];

export type ErrorCode = (typeof PLANNER_ERROR_CODES)[number];

/** Errors are data: a stable code, a message that says how to fix it, and the field's path. */
export type ErrorData = AnyErrorData<ErrorCode>;

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

/** The first zod issue as a PlannerError naming the field; `input` tells missing from wrong. */
export function fromZod(error: z.ZodError, input: unknown): PlannerError {
  const first = error.issues[0];
  if (!first) return new PlannerError({ code: "INTERNAL", message: "validation failed without an issue", path: "" });
  const issue = innermostIssue(first);
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
