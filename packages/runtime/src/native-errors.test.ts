import { describe, expect, it } from "vitest";
import { RuntimeError } from "./errors.js";
import { fromNative } from "./native-errors.js";

const thrown = (data: unknown) => new Error(`APB_ERROR:${JSON.stringify(data)}`);

describe("fromNative", () => {
  it("turns the addon's {code, message, path} back into a RuntimeError, the planner's codes included", () => {
    const e = fromNative(thrown({ code: "INFEASIBLE", message: "hosts (500) exceeds contextTokens (2)", path: "hosts" }));
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e.toJSON()).toEqual({ code: "INFEASIBLE", message: "hosts (500) exceeds contextTokens (2)", path: "hosts" });
    expect(fromNative(thrown({ code: "CUDA", message: "cuLaunchKernel failed", path: "ops" })).code).toBe("CUDA");
  });

  it("reports a code outside the runtime's list as INTERNAL, keeping the code and message", () => {
    const e = fromNative(thrown({ code: "PLAN", message: "too many hosts", path: "hosts" }));
    expect(e.toJSON()).toEqual({ code: "INTERNAL", path: "hosts", message: 'the native engine raised an unknown code "PLAN": too many hosts' });
  });

  it("reports anything else the addon throws as INTERNAL with its message", () => {
    expect(fromNative(new Error("segfault-ish")).toJSON()).toEqual({ code: "INTERNAL", path: "", message: "the native engine failed: segfault-ish" });
    expect(fromNative(new Error("APB_ERROR:{not json")).code).toBe("INTERNAL");
  });
});
