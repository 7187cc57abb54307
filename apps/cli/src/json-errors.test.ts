// With --json, a failure is JSON too: one object {"error": {code, message, path}} on stderr,
// nothing on stdout, the same exit code as in text mode. For every command that has --json.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb, type Workspace, workspace } from "./cli.test-helper.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("json-errors");
});
afterAll(() => ws.remove());

function jsonError(args: string[], env: Record<string, string> = {}) {
  const text = apb(args, { env });
  const json = apb([...args, "--json"], { env });
  expect(json.out).toBe("");
  expect(json.err.trim().split("\n")).toHaveLength(1);
  const parsed = JSON.parse(json.err);
  expect(Object.keys(parsed)).toEqual(["error"]);
  expect(Object.keys(parsed.error).sort()).toEqual(["code", "message", "path"]);
  expect(json.code).toBe(text.code);
  expect(json.code).not.toBe(0);
  // The text line carries the same message.
  expect(text.err).toContain(parsed.error.message);
  return parsed.error as { code: string; message: string; path: string };
}

describe("errors as JSON with --json", () => {
  it("apb plan", () => {
    expect(jsonError(["plan", "--model", "llama-3.1-8b", "--length", "0"])).toEqual({
      code: "OUT_OF_RANGE",
      message: "--length must be a whole number between 1 and 2147483647, got 0",
      path: "--length",
    });
    // A layout the planner rejects names plan's flag in both message and path.
    const e = jsonError(["plan", "--model", "llama-3.1-8b", "--length", "128K", "--hosts", "8", "--passing", "20000"]);
    expect(e.message).toMatch(/^--passing \(20000\) must be at most the block length/);
    expect(e.path).toBe("--passing");
  });

  it("apb run", () => {
    expect(jsonError(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "q", "--hosts", "abc"])).toMatchObject({ code: "WRONG_TYPE", path: "--hosts" });
    expect(jsonError(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "q", "--anchor", "3", "--hosts", "2"]).message).toMatch(/^--anchor \(3\) must hold/);
    expect(jsonError(["run", "--model", ws.model, "--prompt-file", `${ws.dir}/missing.txt`, "--query", "q"]).message).toMatch(/--prompt-file: cannot read/);
  });

  it("apb eval", () => {
    expect(jsonError(["eval", "--model", ws.model, "--hosts", "0"])).toMatchObject({ path: "--hosts" });
  });

  it("apb models", () => {
    // `models fetch` has no --json; `models` does: an unknown option is reported as JSON.
    expect(jsonError(["models", "--bogus"]).message).toMatch(/unknown option '--bogus'/);
  });

  it("apb doctor", () => {
    expect(jsonError(["doctor", "--bogus"]).message).toMatch(/unknown option '--bogus'/);
  });

  it("a missing required option", () => {
    expect(jsonError(["run", "--model", ws.model, "--query", "q"]).message).toMatch(/required option '--prompt-file <file>' not specified/);
  });
});

describe("without --json", () => {
  it("errors are one line, apb: ... [CODE]", () => {
    const r = apb(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "q", "--hosts", "abc"]);
    expect(r.code).toBe(2);
    expect(r.err).toBe("apb: --hosts must be a whole number, got 'abc' [WRONG_TYPE]\n");
  });
});
