import { describe, expect, it } from "vitest";
import { z } from "zod";
import { innermostIssue, pathOf, valueAt } from "./zod.js";

describe("pathOf", () => {
  it("writes keys with dots and indices in brackets", () => {
    expect(pathOf([])).toBe("");
    expect(pathOf(["model", "hidden"])).toBe("model.hidden");
    expect(pathOf(["hosts", 2, "rank"])).toBe("hosts[2].rank");
    expect(pathOf([0, "a"])).toBe("[0].a");
  });
});

describe("valueAt", () => {
  it("finds the value, or undefined where the path leaves the input", () => {
    const input = { model: { hidden: 4096 }, hosts: [{ rank: 0 }] };
    expect(valueAt(input, ["model", "hidden"])).toBe(4096);
    expect(valueAt(input, ["hosts", 0, "rank"])).toBe(0);
    expect(valueAt(input, ["model", "layers"])).toBeUndefined();
    expect(valueAt(input, ["model", "hidden", "x"])).toBeUndefined();
    expect(valueAt(null, ["a"])).toBeUndefined();
  });
});

describe("innermostIssue", () => {
  const schema = z.object({ model: z.union([z.string(), z.object({ hidden: z.number() })]) });

  it("names the field inside the union branch that got past its type check", () => {
    const issue = schema.safeParse({ model: {} }).error!.issues[0]!;
    expect(issue.code).toBe("invalid_union");
    const inner = innermostIssue(issue);
    expect(pathOf(inner.path)).toBe("model.hidden");
    expect(inner.code).toBe("invalid_type");
  });

  it("keeps the union's issue when no branch got that far", () => {
    const issue = schema.safeParse({ model: 7 }).error!.issues[0]!;
    expect(innermostIssue(issue)).toBe(issue);
  });

  it("returns any other issue as it is", () => {
    const issue = z.object({ a: z.number() }).safeParse({ a: "x" }).error!.issues[0]!;
    expect(innermostIssue(issue)).toBe(issue);
  });
});
