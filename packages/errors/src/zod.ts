// Turning a zod issue into an error's `path`, and telling a missing field from a wrong one:
// the planner's and the runtime's fromZod share these. (The protocol keeps its own copies:
// it imports nothing of ours, by design.)
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

/**
 * The first issue of a zod error as apb error data naming the field: UNKNOWN_FIELD,
 * MISSING_FIELD (`input` tells a missing field from a wrong one), WRONG_TYPE or OUT_OF_RANGE.
 */
export function errorDataFromZod(error: z.ZodError, input: unknown): ErrorData {
  const first = error.issues[0];
  if (!first) return { code: "INTERNAL", message: "validation failed without an issue", path: "" };
  const issue = innermostIssue(first);
  let path = pathOf(issue.path);
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    path = path ? `${path}.${key}` : key;
    return { code: "UNKNOWN_FIELD", path, message: `${path} is not a known field` };
  }
  const subject = path || "the input";
  const missing = issue.code === "invalid_type" || issue.code === "invalid_union";
  if (missing && valueAt(input, issue.path) === undefined) return { code: "MISSING_FIELD", path, message: `${subject} is required: it ${issue.message}` };
  return { code: issue.code === "invalid_type" ? "WRONG_TYPE" : "OUT_OF_RANGE", path, message: `${subject} ${issue.message}` };
}
