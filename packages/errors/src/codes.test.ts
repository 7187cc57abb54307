import { describe, expect, it } from "vitest";
import { ERRORS, ERROR_CODES, exitStatusOf, httpStatusOf, isErrorCode } from "./codes.js";

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

describe("HTTP statuses", () => {
  it("are 4xx exactly for what the client can fix (exit status 2), 429 and 499 aside", () => {
    for (const code of ERROR_CODES) {
      const status = httpStatusOf(code);
      if (code === "BUSY") expect(status).toBe(429);
      else if (code === "CANCELLED") expect(status).toBe(499);
      else if (exitStatusOf(code) === 2 && status >= 500) {
        // What the operator must fix (the model files, the machine's setup), not the client.
        expect(["MODEL_FILE", "TENSOR_MISSING", "TENSOR_SHAPE", "TENSOR_DTYPE", "UNSUPPORTED_ARCHITECTURE", "NUMERIC", "CUDA_UNAVAILABLE", "NCCL_UNAVAILABLE", "UNSUPPORTED_VERSION", "MODEL_MISMATCH", "INVALID_OPTIONS", "LISTEN"], code).toContain(code);
      } else expect(status >= 500, code).toBe(exitStatusOf(code) === 1);
    }
  });

  it("name the well-known ones as OpenAI-compatible servers do", () => {
    expect(["OUT_OF_RANGE", "UNAUTHORIZED", "UNKNOWN_MODEL", "REQUEST_TOO_LARGE", "BUSY", "HOST_LOST"].map(httpStatusOf)).toEqual([400, 401, 404, 413, 429, 503]);
    expect(httpStatusOf("SOMETHING_NEW")).toBe(500);
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
