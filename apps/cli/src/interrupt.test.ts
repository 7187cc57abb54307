// Ctrl-C during `apb run`: the generation is aborted (not left to finish), the command says
// so in one line and exits 130, as a shell expects of a command stopped by SIGINT.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { apbLive, killLeftovers, type Workspace, workspace } from "./cli.test-helper.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("interrupt");
});
afterAll(() => {
  killLeftovers();
  ws.remove();
});

describe("Ctrl-C (SIGINT) during apb run", () => {
  it("aborts the generation, prints one line and exits 130", async () => {
    // Far more tokens than the test waits for: only the abort ends this run in time.
    const run = apbLive(["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key?", "--hosts", "2", "--max-tokens", "100000", "--ignore-eos", "--allow-long-prompt"]);
    // The first piece of the answer on stdout: generation is under way.
    await new Promise<void>((resolve) => run.child.stdout!.once("data", () => resolve()));
    const sent = performance.now();
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(r.err).toBe("apb: run stopped by Ctrl-C (SIGINT) [CANCELLED]\n");
    // What was generated so far stays on stdout; no summary follows an aborted answer.
    expect(r.out.length).toBeGreaterThan(0);
    expect(r.out).not.toMatch(/first token after/);
    expect(performance.now() - sent).toBeLessThan(30_000);
  });
});
