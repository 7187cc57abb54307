import { describe, expect, it } from "vitest";
import { z } from "zod";
import { fromZod, pathOf, RuntimeError, wrapErrors } from "./errors.js";

describe("RuntimeError", () => {
  it("is data: {code, message, path}, like the planner's errors", () => {
    const e = new RuntimeError({ code: "TENSOR_MISSING", message: "model.norm.weight is missing", path: "model.norm.weight" });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe("RuntimeError");
    expect(JSON.parse(JSON.stringify(e))).toEqual({ code: "TENSOR_MISSING", message: "model.norm.weight is missing", path: "model.norm.weight" });
  });

  it("turns a zod issue into MISSING_FIELD, WRONG_TYPE or OUT_OF_RANGE naming the file and field", () => {
    const schema = z.object({ rope: z.object({ factor: z.number().positive() }) });
    const first = (input: unknown) => fromZod(schema.safeParse(input).error!, input, "config.json");
    expect(first({ rope: {} })).toMatchObject({ code: "MISSING_FIELD", path: "rope.factor", message: "config.json: rope.factor is required and must be a number; add it" });
    expect(first({ rope: { factor: "8" } })).toMatchObject({ code: "WRONG_TYPE", message: 'config.json: rope.factor must be a number, found "8"' });
    expect(first({ rope: { factor: -1 } })).toMatchObject({ code: "OUT_OF_RANGE", message: "config.json: rope.factor must be > 0, found -1" });
  });

  it("writes paths as the planner does", () => {
    expect(pathOf(["layers", 3, "shape"])).toBe("layers[3].shape");
  });

  it("wraps third-party throws in the given code and keeps RuntimeErrors as they are", () => {
    expect(() => wrapErrors(() => { throw new Error("boom"); }, "TOKENIZER", "tokenizer.json", "tokenizer.json cannot be loaded"))
      .toThrow(expect.objectContaining({ code: "TOKENIZER", message: "tokenizer.json cannot be loaded: boom" }));
    const own = new RuntimeError({ code: "MODEL_FILE", message: "x", path: "y" });
    expect(() => wrapErrors(() => { throw own; }, "TOKENIZER", "", "")).toThrow(own);
  });
});
