// The apb command as the tests run it: the built CLI as a real process, and a tiny random
// model with a document to ask about.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeTinyModel } from "@apb/runtime/testing";

export const BIN = fileURLToPath(new URL("../dist/bin.js", import.meta.url));
export const ROOT = fileURLToPath(new URL("../../..", import.meta.url));

export interface Ran {
  code: number | null;
  out: string;
  err: string;
}

export function apb(args: string[], o: { input?: string; env?: Record<string, string>; cwd?: string } = {}): Ran {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", input: o.input ?? "", env: { ...process.env, ...o.env }, ...(o.cwd ? { cwd: o.cwd } : {}) });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const live = new Set<ChildProcess>();

/** Kills the live processes a test left running (one that failed before they ended). */
export function killLeftovers(): void {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  live.clear();
}

/** A CLI process the test talks to while it runs; `events` records stdout as it arrives.
 * Call killLeftovers() in afterAll. */
export function apbLive(args: string[]): { child: ChildProcess; events: { at: number; text: string }[]; done: Promise<Ran & { signal: NodeJS.Signals | null }> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  live.add(child);
  const events: { at: number; text: string }[] = [];
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (d: string) => {
    events.push({ at: performance.now(), text: d });
    out += d;
  });
  child.stderr!.setEncoding("utf8").on("data", (d: string) => (err += d));
  const done = new Promise<Ran & { signal: NodeJS.Signals | null }>((resolve) => child.on("close", (code, signal) => resolve({ code, signal, out, err })));
  return { child, events, done };
}

export interface Workspace {
  dir: string;
  model: string;
  promptFile: string;
  remove(): void;
}

/** A tiny random model and a document of about 700 tokens. */
export async function workspace(name: string): Promise<Workspace> {
  const dir = mkdtempSync(join(tmpdir(), `apb-cli-${name}-`));
  const model = join(dir, "tiny");
  // Seed 2 answers this document with printable text (others start with tokens that print nothing).
  await writeTinyModel(model, { seed: 2 });
  const promptFile = join(dir, "doc.txt");
  writeFileSync(promptFile, "Alpha beta gamma delta. ".repeat(60) + "The key is 42. " + "Epsilon zeta eta. ".repeat(40));
  return { dir, model, promptFile, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
