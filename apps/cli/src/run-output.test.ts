// What `apb run` prints, as a user sees it: the answer streamed as it is generated, then a
// summary that tells wall time to the first token first; JSON only with --json; the document
// from standard input with --prompt-file -.
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apb, apbLive, killLeftovers, type Workspace, workspace } from "./cli.test-helper.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("run-output");
});
afterAll(() => {
  killLeftovers();
  ws.remove();
});

const ask = () => ["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key?"];

describe("apb run prints", () => {
  it("the answer as it is generated, before the summary exists", async () => {
    // Enough tokens that generation takes a while after the first one.
    const run = apbLive([...ask(), "--hosts", "2", "--max-tokens", "400", "--ignore-eos"]);
    const r = await run.done;
    expect(r.code, r.err).toBe(0);
    expect(run.events.length).toBeGreaterThan(1);
    // The first piece reached the pipe on its own: written before the answer was complete.
    expect(run.events[0]!.text).not.toMatch(/first token after/);
    expect(r.out).toMatch(/first token after/);
  });

  it("the answer itself, then a summary (wall time to the first token first), and the same answer with --json", () => {
    const text = apb([...ask(), "--strategy", "apb", "--hosts", "3", "--max-tokens", "6"]);
    expect(text.code, text.err).toBe(0);
    const json = apb([...ask(), "--strategy", "apb", "--hosts", "3", "--max-tokens", "6", "--json"]);
    expect(json.code, json.err).toBe(0);
    const generation = JSON.parse(json.out);
    expect(text.out.startsWith(`${generation.text}\n\n`)).toBe(true);
    const summary = text.out.slice(generation.text.length + 2).split("\n");
    expect(summary[0]).toMatch(/^first token after [\d.]+ ms \(wall\) for a \d+-token prompt, apb \(block \d+, anchor \d+, passing \d+\) on 3 emulated hosts$/);
    expect(summary[1]).toMatch(/^slowest host's own prefill work: [\d.]+ ms \(\d+ tokens\/s\); the hosts are emulated on this machine and take turns/);
    expect(summary[2]).toMatch(/^6 tokens generated \(stopped at --max-tokens\), [\d.]+ ms wall in all$/);
    expect(text.out.split("\n").filter((l) => /^\s+\d\s+\d+\s/.test(l))).toHaveLength(3);
    // The wall time to the first token is the headline, and it is not smaller than the slowest host's own work.
    expect(generation.timings.firstTokenWallMs).toBeGreaterThanOrEqual(generation.timings.prefillMs);
    expect(generation.timings.emulatedHosts).toBe(true);
  });

  it("the document from standard input with --prompt-file -", () => {
    const document = readFileSync(ws.promptFile, "utf8");
    const fromStdin = apb(["run", "--model", ws.model, "--prompt-file", "-", "--query", "What is the key?", "--max-tokens", "4", "--json"], { input: document });
    expect(fromStdin.code, fromStdin.err).toBe(0);
    const fromFile = apb([...ask(), "--max-tokens", "4", "--json"]);
    const [a, b] = [JSON.parse(fromStdin.out), JSON.parse(fromFile.out)];
    expect(a.promptTokens).toEqual(b.promptTokens);
    expect(a.tokens).toEqual(b.tokens);
  });

  it("nothing more, quietly, once the reader of stdout goes away (apb run | head)", async () => {
    // Minutes of tokens: only stopping when the reader goes away ends this run in time.
    const run = apbLive([...ask(), "--hosts", "2", "--max-tokens", "20000", "--ignore-eos"]);
    await new Promise<void>((resolve) => run.child.stdout!.once("data", () => resolve()));
    const gone = performance.now();
    run.child.stdout!.destroy();
    const r = await run.done;
    expect(r.code).toBe(0);
    expect(r.err).toBe("");
    expect(performance.now() - gone).toBeLessThan(30_000);
  });

  it("nothing on stderr when it is not a terminal (no progress bars in logs)", () => {
    const r = apb([...ask(), "--max-tokens", "2"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err).toBe("");
  });
});
