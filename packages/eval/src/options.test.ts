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
