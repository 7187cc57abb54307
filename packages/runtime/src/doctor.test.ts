import { describe, expect, it } from "vitest";
import { doctor } from "./doctor.js";

describe("doctor", () => {
  it("reports every field, null where unknown, never undefined", () => {
    const r = doctor();
    const undefinedAt = (value: unknown, path: string): string[] =>
      value === undefined
        ? [path]
        : value !== null && typeof value === "object"
          ? Object.entries(value).flatMap(([k, v]) => undefinedAt(v, `${path}.${k}`))
          : [];
    expect(undefinedAt(r, "report")).toEqual([]);
    expect(r.backends).toContain("cpu");
    for (const lib of [r.cublas, r.cublasLt, r.nccl]) expect(lib.found).toBe(lib.file !== null);
    if (!r.driver.found) expect(r.gpus).toEqual([]);
    for (const g of r.gpus) expect(["sm90", "portable", "none"]).toContain(g.kernel);
  });
});
