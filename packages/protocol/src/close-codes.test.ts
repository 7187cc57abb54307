import { describe, expect, it } from "vitest";
import { CLOSE_CODES, closeCodeFor, CONTROL_ERROR_CODES, errorCodeForClose, isControlErrorCode, PERMANENT_ERROR_CODES } from "./index.js";

describe("close codes", () => {
  it("are the named constants peers rely on", () => {
    expect(CLOSE_CODES).toMatchObject({ UNAUTHORIZED: 4001, BAD_FRAME: 4002, UNSUPPORTED_VERSION: 4003, DUPLICATE_HELLO: 4004, NOT_ALLOWED: 4005, SHUTDOWN: 4006, TOO_BIG: 1009 });
    expect(new Set(Object.values(CLOSE_CODES)).size).toBe(Object.values(CLOSE_CODES).length);
  });

  it("map each refusal to its close code and back", () => {
    for (const code of ["UNAUTHORIZED", "BAD_FRAME", "UNSUPPORTED_VERSION", "DUPLICATE_HELLO", "NOT_ALLOWED", "MODEL_MISMATCH", "HELLO_TIMEOUT", "SHUTDOWN"]) {
      expect(errorCodeForClose(closeCodeFor(code))).toBe(code);
    }
    expect(closeCodeFor("FRAME_TOO_LARGE")).toBe(1009);
    expect(closeCodeFor("COMM")).toBe(CLOSE_CODES.BAD_FRAME);
    expect(errorCodeForClose(1006)).toBeNull();
  });

  it("permanent refusals are control-plane codes", () => {
    expect(PERMANENT_ERROR_CODES.every(isControlErrorCode)).toBe(true);
    expect(isControlErrorCode("COMM")).toBe(false);
    expect(CONTROL_ERROR_CODES).toContain("GROUP_TIMEOUT");
  });
});
