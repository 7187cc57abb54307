import { describe, expect, it } from "vitest";
import { ApbError } from "./error.js";

class ToolError extends ApbError<"MODEL_FILE" | "INTERNAL"> {
  override readonly name = "ToolError";
}

describe("ApbError", () => {
  it("is an Error that is data: {code, message, path}, exactly, in JSON", () => {
    const e = new ApbError({ code: "MODEL_FILE", message: "config.json is missing", path: "config.json" });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("ApbError");
    expect(e.message).toBe("config.json is missing");
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: "MODEL_FILE", message: "config.json is missing", path: "config.json" });
  });

  it("writes an empty path when the error is about no field", () => {
    expect(new ApbError({ code: "INTERNAL", message: "x" }).toJSON()).toEqual({ code: "INTERNAL", message: "x", path: "" });
  });

  it("keeps a subclass's name, and instanceof tells subclasses apart", () => {
    const e = new ToolError({ code: "INTERNAL", message: "x" });
    expect(e.name).toBe("ToolError");
    expect(e).toBeInstanceOf(ToolError);
    expect(e).toBeInstanceOf(ApbError);
    expect(new ApbError({ code: "INTERNAL", message: "x" })).not.toBeInstanceOf(ToolError);
    expect(String(e)).toBe("ToolError: x");
  });
});
