// How the CLI reports what a command throws: one line, the error as data, and an exit status
// from the one list (2: the user can fix it; 1: they cannot).
import { PlannerError } from "@apb/planner";
import { RuntimeError } from "@apb/runtime";
import { describe as group, expect, it } from "vitest";
import { describe, UsageError } from "./errors.js";

group("describe", () => {
  it("exits 2 for an infeasible layout, naming the flag the user typed in the line and the data", () => {
    const error = new PlannerError({ code: "INFEASIBLE", path: "hosts", message: "hosts (101) exceeds contextTokens (100)" });
    expect(describe(error, { hosts: "--hosts" })).toEqual({
      line: "apb: --hosts (101) exceeds contextTokens (100) [INFEASIBLE]",
      exitCode: 2,
      error: { code: "INFEASIBLE", path: "--hosts", message: "--hosts (101) exceeds contextTokens (100)" },
    });
  });

  it("says the same code with the same status for the same layout from `apb run` (the engine passes the plan's code through)", () => {
    const fromRun = new RuntimeError({ code: "INFEASIBLE", path: "hosts", message: "hosts (101) exceeds contextTokens (100)" });
    expect(describe(fromRun, { hosts: "--hosts" }).line).toBe("apb: --hosts (101) exceeds contextTokens (100) [INFEASIBLE]");
    expect(describe(fromRun).exitCode).toBe(2);
  });

  it("takes the command's own flag names when it passes them", () => {
    const error = new RuntimeError({ code: "OUT_OF_RANGE", path: "maxTokens", message: "maxTokens must be at most 4096" });
    expect(describe(error, { maxTokens: "--max-tokens" }).line).toBe("apb: --max-tokens must be at most 4096 [OUT_OF_RANGE]");
    expect(describe(error, { maxTokens: "--max-tokens" }).error).toEqual({ code: "OUT_OF_RANGE", path: "--max-tokens", message: "--max-tokens must be at most 4096" });
    expect(describe(error, {}).line).toBe("apb: maxTokens must be at most 4096 [OUT_OF_RANGE]");
    expect(describe(error, {}).error.path).toBe("maxTokens");
  });

  it("exits 1 for a CUDA driver failure and 2 when CUDA cannot run here at all", () => {
    expect(describe(new RuntimeError({ code: "CUDA", path: "launch", message: "cuLaunchKernel failed" })).exitCode).toBe(1);
    expect(describe(new RuntimeError({ code: "CUDA_UNAVAILABLE", path: "backend", message: "no CUDA driver found" })).exitCode).toBe(2);
  });

  it("reports the control plane's and a host's errors, which are data, by their code", () => {
    const refused = Object.assign(new Error("the coordinator refused this host: wrong token"), { code: "UNAUTHORIZED", path: "token" });
    expect(describe(refused)).toEqual({
      line: "apb: the coordinator refused this host: wrong token [UNAUTHORIZED]",
      exitCode: 2,
      error: { code: "UNAUTHORIZED", message: "the coordinator refused this host: wrong token", path: "token" },
    });
    expect(describe({ code: "HOST_LOST", message: "host 2 stopped answering", path: "" }).exitCode).toBe(1);
    expect(describe({ code: "NEWER_HOSTS_CODE", message: "something new", path: "" }).exitCode).toBe(1);
  });

  it("reports a bad command line as USAGE, exit 2, without a code in the line", () => {
    expect(describe(new UsageError("--coordinator is required"))).toEqual({
      line: "apb: --coordinator is required",
      exitCode: 2,
      error: { code: "USAGE", message: "--coordinator is required", path: "" },
    });
  });

  it("reports anything else as an internal error, exit 1", () => {
    expect(describe(new TypeError("x is undefined"))).toEqual({
      line: "apb: internal error: x is undefined",
      exitCode: 1,
      error: { code: "INTERNAL", message: "x is undefined", path: "" },
    });
    expect(describe("a string").exitCode).toBe(1);
  });
});
