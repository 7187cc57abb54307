// Prefill's progress per layer and per host, on a terminal only: `script` gives the command
// a pseudo-terminal, as a user's shell would; stdout goes to a file, stderr to the terminal.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, type Workspace, workspace } from "./cli.test-helper.js";
import { loadingBar } from "./render/loading-bar.js";
import { MAX_HOST_BARS, prefillProgress } from "./render/prefill-progress.js";

let ws: Workspace;
beforeAll(async () => {
  ws = await workspace("progress");
});
afterAll(() => ws.remove());

const quote = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
const hasScript = spawnSync("script", ["--version"]).status === 0;

/** The run on a terminal: what the terminal showed (stderr) and what went to stdout. */
function onTerminal(extra: string[]): { terminal: string; stdout: string } {
  const stdoutFile = join(ws.dir, `stdout-${extra.join("")}.txt`);
  const args = ["run", "--model", ws.model, "--prompt-file", ws.promptFile, "--query", "What is the key?", "--hosts", "3", "--max-tokens", "2", ...extra];
  // A terminal 120 columns wide (a pseudo-terminal without a size has 0 columns).
  const command = `stty cols 120 rows 40; ${quote(process.execPath)} ${[BIN, ...args].map(quote).join(" ")} > ${quote(stdoutFile)}`;
  const r = spawnSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8" });
  expect(r.status, r.stderr).toBe(0);
  return { terminal: r.stdout, stdout: readFileSync(stdoutFile, "utf8") };
}

describe.skipIf(!hasScript)("prefill progress on a terminal", () => {
  it("shows a bar per host counting its layers", () => {
    const { terminal, stdout } = onTerminal([]);
    for (const host of [0, 1, 2]) expect(terminal).toMatch(new RegExp(`prefill host ${host} \\[[^\\]]*\\] 2/2 layers`));
    expect(stdout).toMatch(/first token after/);
    expect(stdout).not.toMatch(/prefill host/);
  });

  it("shows the same bars when the hosts are processes (each worker reports its layers)", () => {
    const { terminal, stdout } = onTerminal(["--processes"]);
    for (const host of [0, 1, 2]) expect(terminal).toMatch(new RegExp(`prefill host ${host} \\[[^\\]]*\\] 2/2 layers`));
    expect(stdout).toMatch(/first token after/);
  });

  it("is not drawn with --json", () => {
    const { terminal, stdout } = onTerminal(["--json"]);
    expect(terminal).not.toMatch(/prefill host|layers/);
    expect(JSON.parse(stdout).layout.hosts).toBe(3);
  });
});

const tty = () => Object.assign(new PassThrough(), { isTTY: true, columns: 100, cursorTo: () => true, moveCursor: () => true, clearLine: () => true, clearScreenDown: () => true }) as unknown as NodeJS.WriteStream;

describe("loadingBar", () => {
  it("ends on the last step's total, whatever the earlier steps counted", () => {
    const stream = tty();
    let drawn = "";
    stream.on("data", (d: Buffer) => (drawn += d.toString()));
    const onLoad = loadingBar(stream)!;
    onLoad(1, 48);
    onLoad(2, 48);
    onLoad(4, 4);
    onLoad(3, 48); // late, after the end: dropped
    expect(drawn.split("loading weights").at(-1)).toMatch(/^ \[=+\] 4\/4\x1b/);
  });
});

describe("prefillProgress", () => {
  it("draws nothing where stderr is not a terminal", () => {
    expect(prefillProgress(Object.assign(new PassThrough(), { isTTY: false }) as unknown as NodeJS.WriteStream)).toBeNull();
  });

  it("shares one bar among more hosts than fit a terminal", () => {
    const stream = tty();
    let drawn = "";
    stream.on("data", (d: Buffer) => (drawn += d.toString()));
    const progress = prefillProgress(stream)!;
    const hosts = MAX_HOST_BARS + 1;
    for (let host = 0; host < hosts; host++) progress.onLayer({ host, hosts, layer: 1, layers: 2 });
    progress.stop();
    expect(drawn).toMatch(new RegExp(`prefill ${hosts} hosts \\[[^\\]]*\\] ${hosts}/${2 * hosts} layers`));
    expect(drawn).not.toMatch(/prefill host 0/);
  });
});
