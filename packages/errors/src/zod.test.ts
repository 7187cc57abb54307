import { describe, expect, it } from "vitest";
import { z } from "zod";
import { errorDataFromZod, innermostIssue, pathOf, valueAt, type ZodProblem } from "./zod.js";

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

describe("errorDataFromZod", () => {
  const schema = z.strictObject({ model: z.string(), n: z.number().int().min(1), parts: z.array(z.strictObject({ text: z.string() })).optional() });
  const data = (input: unknown) => errorDataFromZod(schema.safeParse(input).error!, input);

  it("tells a missing field, a wrong type, a value out of range and an unknown field apart, naming each", () => {
    expect(data({ n: 1 })).toMatchObject({ code: "MISSING_FIELD", path: "model" });
    expect(data({ model: 7, n: 1 })).toMatchObject({ code: "WRONG_TYPE", path: "model" });
    expect(data({ model: "m", n: 0 })).toMatchObject({ code: "OUT_OF_RANGE", path: "n" });
    expect(data({ model: "m", n: 1, parts: [{ text: "a", txet: "b" }] })).toMatchObject({ code: "UNKNOWN_FIELD", path: "parts[0].txet" });
    expect(data({ model: "m", n: 1.5 }).message).toMatch(/^n /);
  });

  it("calls a value of none of a union's types a wrong type, and a wrong value inside one out of range", () => {
    const union = z.strictObject({ stop: z.union([z.string().min(1), z.array(z.string())]) });
    expect(errorDataFromZod(union.safeParse({ stop: 5 }).error!, { stop: 5 })).toMatchObject({ code: "WRONG_TYPE", path: "stop" });
    expect(errorDataFromZod(union.safeParse({ stop: "" }).error!, { stop: "" })).toMatchObject({ code: "OUT_OF_RANGE", path: "stop" });
    expect(errorDataFromZod(union.safeParse({}).error!, {})).toMatchObject({ code: "MISSING_FIELD", path: "stop" });
  });

  it("words the message with `wording`, given the code, path, issue and the value found", () => {
    const seen: ZodProblem[] = [];
    const wording = (p: ZodProblem) => (seen.push(p), `${p.path}: ${p.code} (${JSON.stringify(p.found)})`);
    const input = { model: "m", n: 0 };
    expect(errorDataFromZod(schema.safeParse(input).error!, input, wording)).toEqual({ code: "OUT_OF_RANGE", path: "n", message: "n: OUT_OF_RANGE (0)" });
    expect(seen[0]!.issue.code).toBe("too_small");
  });
});
