import { RuntimeError } from "@apb/runtime";
import { describe, expect, it } from "vitest";
import { parseEvalOptions, type EvalOptions } from "./options.js";

const refusal = (options: Record<string, unknown>) => {
  try {
    parseEvalOptions(options as unknown as EvalOptions);
  } catch (e) {
    expect(e).toBeInstanceOf(RuntimeError);
    return (e as RuntimeError).toJSON();
  }
  throw new Error("accepted");
};

describe("parseEvalOptions refuses", () => {
  it("an option it does not know as UNKNOWN_FIELD, as the planner does", () => {
    expect(refusal({ lengths: [4096], hostz: [2] })).toEqual({ code: "UNKNOWN_FIELD", path: "hostz", message: "hostz is not a known option" });
  });

  it("a value out of its range as OUT_OF_RANGE naming the option", () => {
    expect(refusal({ lengths: [4096], hosts: [0] })).toMatchObject({ code: "OUT_OF_RANGE", path: "hosts" });
  });
});

describe("parseEvalOptions sizes apb and star blocks", () => {
  it("as the runtime does by default (null: apb balanced, star even), or as asked", () => {
    expect(parseEvalOptions({ lengths: [4096] }).balanced).toBe(null);
    expect(parseEvalOptions({ lengths: [4096], balanced: false }).balanced).toBe(false);
    expect(parseEvalOptions({ lengths: [4096], balanced: true }).balanced).toBe(true);
  });

  it("evenly with passingTokens \"all\", the check that is exact only with equal blocks, and refuses balanced blocks there", () => {
    expect(parseEvalOptions({ lengths: [4096], anchorTokens: 0, passingTokens: "all" }).balanced).toBe(false);
    expect(refusal({ lengths: [4096], passingTokens: "all", balanced: true })).toMatchObject({ code: "OUT_OF_RANGE", path: "balanced" });
  });
});
