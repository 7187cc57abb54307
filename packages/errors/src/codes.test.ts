import { describe, expect, it } from "vitest";
import { ERRORS, ERROR_CODES, exitStatusOf, isErrorCode } from "./codes.js";

describe("exit statuses", () => {
  it("are 2 for what the user can fix: input, files, flags, layouts, the machine's setup", () => {
    for (const code of ["MISSING_FIELD", "OUT_OF_RANGE", "INFEASIBLE", "MODEL_FILE", "TENSOR_SHAPE", "PROMPT_TOO_LONG", "CUDA_UNAVAILABLE", "GPU_MEMORY", "UNAUTHORIZED", "INVALID_OPTIONS"]) {
      expect(exitStatusOf(code), code).toBe(2);
    }
  });

  it("are 1 for failures at run time and bugs: the CUDA driver, the network, other hosts, invariants", () => {
    for (const code of ["CUDA", "COMM", "HOST_LOST", "CONNECT", "MODEL_FETCH", "INTERNAL"]) expect(exitStatusOf(code), code).toBe(1);
  });

  it("are 1 for a code apb does not know (a newer host's, a library's)", () => {
    expect(exitStatusOf("SOMETHING_NEW")).toBe(1);
    expect(exitStatusOf("toString")).toBe(1); // not fooled by Object.prototype
    expect(isErrorCode("constructor")).toBe(false);
  });
});

describe("the list", () => {
  it("has no duplicates and no retired names", () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    expect(isErrorCode("PLAN")).toBe(false); // the planner's own code passes through instead
  });

  it("says for every code what it means and how to fix it, in sentences", () => {
    for (const code of ERROR_CODES) {
      const { meaning, fix, exitStatus } = ERRORS[code];
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      expect([1, 2], code).toContain(exitStatus);
      expect(meaning, code).toMatch(/^[A-Z].*\.$/);
      expect(fix, code).toMatch(/^[A-Z`].*[.)]$/);
    }
  });
});
