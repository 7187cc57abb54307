// One set of defaults: `plan`, `run`, `eval` and `demo` lay out over the same number of hosts
// and `run` generates as many tokens as the library does when nothing is said.
import { DEFAULT_HOSTS, DEFAULT_MAX_TOKENS } from "@apb/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb, type Workspace, workspace } from "./cli.test-helper.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("defaults");
});
afterAll(() => ws.remove());

const helpDefault = (command: string, flag: string) => {
  const help = apb([command, "--help"]).out.replace(/\s+/g, " ");
  return new RegExp(`${flag} <[^>]+> .*?\\(default: "([^"]+)"\\)`).exec(help)?.[1];
};

describe("the same defaults in every command", () => {
  it("--hosts is DEFAULT_HOSTS in plan, run, eval and demo", () => {
    for (const command of ["plan", "run", "eval", "demo"]) expect(helpDefault(command, "--hosts"), command).toBe(String(DEFAULT_HOSTS));
  });

  it("--max-tokens is DEFAULT_MAX_TOKENS in run", () => {
    expect(helpDefault("run", "--max-tokens")).toBe(String(DEFAULT_MAX_TOKENS));
  });

  it("plan and run lay out the same number of hosts when none is given", () => {
    const plan = apb(["plan", "--model", ws.model, "--length", "700", "--json"]);
    expect(plan.code, plan.err).toBe(0);
    const run = apb(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key?", "--max-tokens", "1", "--json"]);
    expect(run.code, run.err).toBe(0);
    expect(JSON.parse(plan.out).hosts).toBe(DEFAULT_HOSTS);
    expect(JSON.parse(run.out).layout.hosts).toBe(DEFAULT_HOSTS);
  });

  it("run generates up to DEFAULT_MAX_TOKENS tokens when none is given", () => {
    const run = apb(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key?", "--ignore-eos", "--json"]);
    expect(run.code, run.err).toBe(0);
    expect(JSON.parse(run.out).tokens).toHaveLength(DEFAULT_MAX_TOKENS);
  });
});
