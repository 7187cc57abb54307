// Every option is checked before any file is read or weights load, and every message names
// only the flags of the command that was run, in the user's words (not a validator's).
import { join } from "node:path";
import { writeTinyModel } from "@apb/runtime/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb, type Workspace, workspace } from "./cli.test-helper.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("options");
});
afterAll(() => ws.remove());

const MISSING = "/nonexistent/apb-test";

function fails(args: string[], message: RegExp, env: Record<string, string> = {}) {
  const r = apb(args, { env });
  expect(r.code, r.err).toBe(2);
  expect(r.out).toBe("");
  expect(r.err.trim().split("\n")).toHaveLength(1);
  expect(r.err).toMatch(message);
  return r.err;
}

describe("options are checked before any file is read", () => {
  // The model and the prompt do not exist: a bad flag must be what is reported.
  it.each([
    [["--hosts", "abc"], /--hosts must be a whole number, got 'abc'/],
    [["--max-tokens", "-1"], /--max-tokens must be a whole number, got '-1'/],
    [["--temperature", "hot"], /--temperature must be a number, got 'hot'/],
    [["--top-p", "0"], /--top-p must be more than 0 and at most 1, got 0/],
    [["--seed", "1.5"], /--seed must be a whole number, got '1.5'/],
    [["--strategy", "warp"], /--strategy must be one of full, apb, star, ring, ring-zigzag, ulysses; got 'warp'/],
    [["--backend", "tpu"], /--backend must be one of cpu, cuda; got 'tpu'/],
    [["--group-timeout-ms", "soon"], /--group-timeout-ms must be a whole number/],
  ])("apb run %j", (flags, message) => {
    fails(["run", "--model", MISSING, "--prompt-file", `${MISSING}.txt`, "--query", "q", ...flags], message);
  });

  it("apb run --prompt-file - reads nothing from stdin when a flag is wrong", () => {
    fails(["run", "--model", MISSING, "--prompt-file", "-", "--query", "q", "--hosts", "0"], /--hosts must be a whole number between 1 and 4096, got 0/);
  });

  it("apb plan", () => {
    fails(["plan", "--model", `${MISSING}/config.json`, "--length", "128K", "--hosts", "abc"], /--hosts must be a whole number, got 'abc'/);
    fails(["plan", "--model", `${MISSING}/config.json`, "--length", "128K", "--hosts", "5000"], /--hosts must be a whole number between 1 and 4096, got 5000/);
    fails(["plan", "--model", `${MISSING}/config.json`, "--length", "128K", "--hardware", "tpu"], /--hardware "tpu" is not a preset/);
  });

  it("apb eval", () => {
    fails(["eval", "--model", MISSING, "--hosts", "x"], /--hosts must be a whole number, got 'x'/);
    fails(["eval", "--model", MISSING, "--backend", "tpu"], /--backend must be one of cpu, cuda; got 'tpu'/);
  });

  it("apb demo", () => {
    fails(["demo", "--model", MISSING, "--seed", "x"], /--seed must be a whole number, got 'x'/);
    fails(["demo", "--model", MISSING, "--hosts", "1"], /--hosts must be a whole number between 2 and 4096, got 1/);
  });

  it("apb serve", () => {
    fails(["serve", "--model", MISSING, "--hosts", "0"], /--hosts must be a whole number between 1 and 4096, got 0/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--backend", "tpu"], /--backend must be one of cpu, cuda; got 'tpu'/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--strategy", "warp"], /--strategy must be one of full, apb, star, ring, ring-zigzag, ulysses; got 'warp'/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--strategy", "full"], /--strategy full runs on one host: serve it with --hosts 1/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--port", "70000"], /--port must be a whole number between 0 and 65535, got 70000/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--api-key", "short"], /--api-key must be at least 8 characters/);
    fails(["serve", "--model", MISSING, "--hosts", "2", "--workers", "remote"], /--token is required with --workers remote/, { APB_TOKEN: "" });
    fails(["serve", "--model", MISSING, "--hosts", "2", "--workers", "cloud"], /--workers must be local or remote, got 'cloud'/);
  });

  it("apb coordinator", () => {
    fails(["coordinator", "--model", MISSING, "--hosts", "2", "--heartbeat-ms", "x", "--token", "t"], /--heartbeat-ms must be a whole number, got 'x'/);
  });
});

describe("messages in the user's words, naming only that command's flags", () => {
  const run = (...flags: string[]) => ["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key of the document?", ...flags];

  it.each([["0"], ["5000"], ["99999999999999999999"]])("apb run --hosts %s gives the real range", (hosts) => {
    const err = fails(run("--hosts", hosts), /--hosts must be a whole number between 1 and 4096, got \d+/);
    expect(err).not.toMatch(/Too (small|big)|expected|9007199254740991/);
  });

  it("apb run: a layout the planner rejects names run's flags, never plan's", () => {
    // 600 hosts leave blocks of about one token: the query cannot fit in the anchor.
    const err = fails(run("--hosts", "600"), /the query's tokens \(\d+\) plus the prompt's prefix tokens \(\d+\) must fit in the anchor/);
    expect(err).not.toMatch(/--query-length|--prefix-length|queryTokens|prefixTokens|contextTokens/);
    const anchor = fails(run("--hosts", "2", "--anchor", "3"), /--anchor \(3\) must hold the prefix/);
    expect(anchor).not.toMatch(/anchorTokens/);
  });

  it("apb run and apb plan give the same code for the same infeasible layout", () => {
    const ran = fails(run("--hosts", "600"), /must fit in the anchor/);
    const planned = fails(["plan", "--model", ws.model, "--length", "700", "--hosts", "600", "--query-length", "20"], /--query-length \(20\) plus --prefix-length \(\d+\) must fit in the anchor/);
    const code = (line: string) => /\[([A-Z_]+)\]$/.exec(line.trim())?.[1];
    expect(code(planned)).toBe("INFEASIBLE");
    expect(code(ran)).toBe(code(planned));
  });

  it("apb plan names its own flags for the same fields", () => {
    fails(["plan", "--model", "llama-3.1-8b", "--length", "100", "--hosts", "101"], /--hosts \(101\) exceeds --length \(100\)/);
  });
});

describe("a prompt past the model's positions", () => {
  it("is refused before the weights load (weights that would fail to load are never read)", async () => {
    // NaN weights fail at load with NUMERIC; PROMPT_TOO_LONG first shows nothing was loaded.
    const model = join(ws.dir, "nan-weights");
    await writeTinyModel(model, { seed: 3, weightStd: Number.NaN });
    const err = fails(["run", "--model", model, "--prompt-file", ws.promptFile, "--query", "q", "--max-tokens", "1000000"], /\[PROMPT_TOO_LONG\]/);
    expect(err).toMatch(/--allow-long-prompt/);
    const loaded = apb(["run", "--model", model, "--prompt-file", ws.promptFile, "--query", "q", "--max-tokens", "2"]);
    expect(loaded.err).toMatch(/\[NUMERIC\]/);
  });
});
