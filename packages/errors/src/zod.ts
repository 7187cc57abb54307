// Zod issues as apb errors: the one mapper from a zod error to {code, message, path}, which
// the planner, the runtime and the server use (the runtime words its messages its own way,
// through `wording`). The protocol keeps its own copy: it imports nothing of ours, by design.
import type { z } from "zod";
import type { ErrorData } from "./codes.js";

/** A zod path as apb's errors write it: `model.hidden`, `hosts[2].rank`. */
export function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, key) => {
    if (typeof key === "number") return `${acc}[${key}]`;
    return acc ? `${acc}.${String(key)}` : String(key);
  }, "");
}

/** The value at `path` in `input`, or undefined where the path leaves it (so: missing). */
export function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let value = input;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/**
 * A union's issue says only "no branch matched"; the branch that got past its type check
 * says why, so the error names the innermost field (with the union's path in front).
 */
export function innermostIssue(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union") return issue;
  const deeper = issue.errors.find((branch) => branch.some((i) => i.path.length > 0 || i.code !== "invalid_type"));
  const inner = deeper?.[0];
  return inner ? innermostIssue({ ...inner, path: [...issue.path, ...inner.path] }) : issue;
}

/** The codes a zod error becomes (INTERNAL only for an error without an issue, which zod never makes). */
export type ZodErrorCode = "UNKNOWN_FIELD" | "MISSING_FIELD" | "WRONG_TYPE" | "OUT_OF_RANGE" | "INTERNAL";

/** What the mapper found, for a `wording` that writes the message: the code and path it chose, the (innermost) issue and the value at its path. */
export interface ZodProblem {
  code: Exclude<ZodErrorCode, "INTERNAL">;
  /** `model.hidden`; for UNKNOWN_FIELD, the unknown field's own path. */
  path: string;
  issue: z.core.$ZodIssue;
  /** The input's value at the issue's path (undefined for a missing field). */
  found: unknown;
}

/** The wording the planner and the server use: `hosts is required: it must be ...`, `hosts must be ...`. */
export function plainWording({ code, path, issue }: ZodProblem): string {
  if (code === "UNKNOWN_FIELD") return `${path} is not a known field`;
  const subject = path || "the input";
  return code === "MISSING_FIELD" ? `${subject} is required: it ${issue.message}` : `${subject} ${issue.message}`;
}

/**
 * The first issue of a zod error as apb error data naming the field: UNKNOWN_FIELD,
 * MISSING_FIELD (`input` tells a missing field from a wrong one), WRONG_TYPE (a value of
 * another type, or of none of a union's types) or OUT_OF_RANGE (the right type, a wrong
 * value). `wording` writes the message from what was found.
 */
export function errorDataFromZod(error: z.ZodError, input: unknown, wording: (problem: ZodProblem) => string = plainWording): ErrorData<ZodErrorCode> {
  const first = error.issues[0];
  if (!first) return { code: "INTERNAL", message: "validation failed without an issue", path: "" };
  const issue = innermostIssue(first);
  const found = valueAt(input, issue.path);
  let problem: ZodProblem;
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const path = pathOf(issue.path);
    problem = { code: "UNKNOWN_FIELD", path: path ? `${path}.${key}` : key, issue, found };
  } else {
    // A union whose every branch failed its type check stays a union issue (innermostIssue).
    const typeIssue = issue.code === "invalid_type" || issue.code === "invalid_union";
    const code = typeIssue ? (found === undefined ? "MISSING_FIELD" : "WRONG_TYPE") : "OUT_OF_RANGE";
    problem = { code, path: pathOf(issue.path), issue, found };
  }
  return { code: problem.code, path: problem.path, message: wording(problem) };
}
