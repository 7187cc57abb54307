// Turning a zod issue into an error's `path`, and telling a missing field from a wrong one:
// the planner's and the runtime's fromZod share these. (The protocol keeps its own copies:
// it imports nothing of ours, by design.)
import type { z } from "zod";

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
