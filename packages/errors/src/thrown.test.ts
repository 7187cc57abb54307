import { describe, expect, it } from "vitest";
import { ApbError } from "./error.js";
import { ADDON_ERROR_PREFIX, carriedErrorData, errorDataFromAddonMessage, errorDataFromUnknown, messageOf } from "./thrown.js";

const addon = (data: unknown) => new Error(`${ADDON_ERROR_PREFIX}${JSON.stringify(data)}`);

class ToolError extends ApbError<"MODEL_FILE"> {
  override readonly name = "ToolError";
}

describe("errorDataFromUnknown: whatever was thrown, as {code, message, path}", () => {
  it("an ApbError (or any subclass) is its own data", () => {
    expect(errorDataFromUnknown(new ToolError({ code: "MODEL_FILE", message: "config.json is missing", path: "config.json" }))).toEqual({ code: "MODEL_FILE", message: "config.json is missing", path: "config.json" });
    expect(errorDataFromUnknown(new ApbError({ code: "INTERNAL", message: "x" }))).toEqual({ code: "INTERNAL", message: "x", path: "" });
  });

  it("an addon error is the {code, message, path} its message carries as JSON after APB_ERROR:", () => {
    expect(errorDataFromUnknown(addon({ code: "INFEASIBLE", message: "hosts (500) exceeds contextTokens (2)", path: "hosts" }))).toEqual({ code: "INFEASIBLE", message: "hosts (500) exceeds contextTokens (2)", path: "hosts" });
    expect(errorDataFromUnknown(addon({ code: "CUDA", message: "cuLaunchKernel failed" }))).toEqual({ code: "CUDA", message: "cuLaunchKernel failed", path: "" });
  });

  it("any object with a code and a text message keeps them: an engine's error passed through a host, a Node system error", () => {
    expect(errorDataFromUnknown({ code: "COMM", message: "peer closed", path: "rank 3" })).toEqual({ code: "COMM", message: "peer closed", path: "rank 3" });
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: "ENOENT", path: "x" });
    expect(errorDataFromUnknown(enoent)).toEqual({ code: "ENOENT", message: "ENOENT: no such file or directory, open 'x'", path: "x" });
  });

  it("a path that is not text is no path", () => {
    expect(errorDataFromUnknown({ code: "COMM", message: "m", path: 3 })).toEqual({ code: "COMM", message: "m", path: "" });
  });

  it("a code must look like one (upper-case words joined by _) and the message must be text; otherwise the value carries nothing", () => {
    for (const e of [{ code: "", message: "m" }, { code: "comm", message: "m" }, { code: "1X", message: "m" }, { code: 5, message: "m" }, { code: "COMM", message: 5 }, { code: "COMM" }]) {
      expect(carriedErrorData(e), JSON.stringify(e)).toBeNull();
      expect(errorDataFromUnknown(e).code).toBe("INTERNAL");
    }
  });

  it("anything else is INTERNAL with its message (an Error's own, anything else as text) and no path", () => {
    expect(errorDataFromUnknown(new Error("boom"))).toEqual({ code: "INTERNAL", message: "boom", path: "" });
    expect(errorDataFromUnknown(new TypeError("x is not a function"))).toEqual({ code: "INTERNAL", message: "x is not a function", path: "" });
    expect(errorDataFromUnknown("string thrown")).toEqual({ code: "INTERNAL", message: "string thrown", path: "" });
    expect(errorDataFromUnknown(undefined)).toEqual({ code: "INTERNAL", message: "undefined", path: "" });
    expect(errorDataFromUnknown(null)).toEqual({ code: "INTERNAL", message: "null", path: "" });
    expect(errorDataFromUnknown({ code: "", message: "no code" })).toEqual({ code: "INTERNAL", message: "[object Object]", path: "" });
  });

  it("an addon message that is not error data is an ordinary message", () => {
    expect(errorDataFromUnknown(new Error(`${ADDON_ERROR_PREFIX}{not json`))).toEqual({ code: "INTERNAL", message: `${ADDON_ERROR_PREFIX}{not json`, path: "" });
    expect(errorDataFromUnknown(addon({ message: "no code" })).code).toBe("INTERNAL");
    expect(errorDataFromUnknown(addon("text"))).toMatchObject({ code: "INTERNAL" });
  });
});

describe("carriedErrorData", () => {
  it("is the data a value carries, or null, so a caller can tell an error apb raised from a bug", () => {
    expect(carriedErrorData(new ApbError({ code: "INTERNAL", message: "invariant" }))).toEqual({ code: "INTERNAL", message: "invariant", path: "" });
    expect(carriedErrorData(new Error("boom"))).toBeNull();
    expect(carriedErrorData("boom")).toBeNull();
  });
});

describe("errorDataFromAddonMessage", () => {
  it("reads only messages that start with APB_ERROR:", () => {
    expect(errorDataFromAddonMessage(`${ADDON_ERROR_PREFIX}{"code":"DISPOSED","message":"load the model again","path":""}`)).toEqual({ code: "DISPOSED", message: "load the model again", path: "" });
    expect(errorDataFromAddonMessage(`failed: ${ADDON_ERROR_PREFIX}{"code":"DISPOSED","message":"m"}`)).toBeNull();
  });
});

describe("messageOf", () => {
  it("is an Error's message, or anything else as text", () => {
    expect(messageOf(new Error("boom"))).toBe("boom");
    expect(messageOf(42)).toBe("42");
  });
});
